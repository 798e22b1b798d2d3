"""pytest-benchmark suite: fastnn against its NumPy backend, PyTorch and scikit-learn.

Not part of the default test run (pyproject sets ``testpaths = ["tests"]``). Run it with
``pytest benchmarks/ --benchmark-only`` (see README.md). The workloads themselves live in
``fastnn.benchmarking``, so ``python -m fastnn bench`` times exactly the same code.
"""

import time

import pytest

from fastnn import benchmarking as B
from fastnn._bench_table import SETTLE

THREADS = (1, 2)


@pytest.fixture(params=THREADS, ids=lambda n: f"{n}thr")
def threads(request):
    """Every engine runs with this many threads during the test; yields the count."""
    with B.threads(request.param):
        yield request.param


@pytest.fixture
def run_workload(benchmark, threads):
    """``run_workload(workload, engine)`` times one workload on one engine. fastnn, numpy and
    torch (and sklearn) share a group per workload and thread count, so they print side by side."""

    def run(workload, engine):
        if engine in ("torch", "sklearn"):
            pytest.importorskip(engine)
        if not B.engine_available(engine):
            pytest.skip(f"engine {engine!r} is not available (compiled backend not built?)")
        case = B.build(workload, engine)
        if threads > 1:
            # let the previous test's engine park its busy-waiting threads first (see
            # fastnn._bench_table.measure_row): each engine is timed as it runs alone
            time.sleep(SETTLE)
        benchmark.group = f"{workload.key} | {threads} thr"
        benchmark.extra_info.update(engine=engine, threads=threads)
        if workload.slow:
            benchmark.pedantic(case.run, rounds=3, iterations=1, warmup_rounds=1)
        else:
            benchmark(case.run)
        stats = getattr(benchmark, "stats", None)
        if workload.flops and stats is not None:
            benchmark.extra_info["gflops"] = round(workload.flops / stats.stats.median / 1e9, 2)
        if case.score is not None:
            benchmark.extra_info["accuracy"] = case.score()

    return run


@pytest.fixture
def run_torch_pair(benchmark, threads):
    """``run_torch_pair(family, row, engine)`` times one row of a fastnn-against-PyTorch table
    (``fastnn/_bench_cnn.py``, ``fastnn/_bench_rnn.py``: rows ``(name, flops, mine, theirs)``,
    where ``mine()`` and ``theirs(torch)`` set up and return the call) on ``engine`` ("fastnn" or
    "torch"): five warm-up calls, then 20 timed rounds, in the group ``"<family>: <name> |
    <threads>thr"`` so that both engines print side by side."""

    def run(family, row, engine):
        name, _, mine, theirs = row
        call = theirs(pytest.importorskip("torch")) if engine == "torch" else mine()
        for _ in range(5):
            call()
        benchmark.group = f"{family}: {name} | {threads}thr"
        benchmark.pedantic(call, rounds=20, iterations=1)

    return run
