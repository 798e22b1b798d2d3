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


def _settle(threads):
    """Before a timing at 2+ threads, let the previous test's engine park its busy-waiting
    threads (see fastnn._bench_table.measure_row): each engine is timed as it runs alone."""
    if threads > 1:
        time.sleep(SETTLE)


def _record_gflops(benchmark, flops):
    stats = getattr(benchmark, "stats", None)
    if flops and stats is not None:
        benchmark.extra_info["gflops"] = round(flops / stats.stats.median / 1e9, 2)


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
        _settle(threads)
        benchmark.group = f"{workload.key} | {threads} thr"
        benchmark.extra_info.update(engine=engine, threads=threads)
        if workload.slow:
            benchmark.pedantic(case.run, rounds=3, iterations=1, warmup_rounds=1)
        else:
            benchmark(case.run)
        _record_gflops(benchmark, workload.flops)
        if case.score is not None:
            benchmark.extra_info["accuracy"] = case.score()

    return run


@pytest.fixture
def run_torch_pair(benchmark, threads):
    """``run_torch_pair(family, row, engine)`` times one row of a fastnn-against-PyTorch table
    (``fastnn/_bench_cnn.py``, ``fastnn/_bench_rnn.py``: rows ``(name, flops, mine, theirs)``,
    where ``mine()`` and ``theirs(torch)`` set up and return the call) on ``engine`` ("fastnn" or
    "torch"): the settling pause at 2+ threads, five warm-up calls, then 20 timed rounds, in the
    group ``"<family>: <name> | <threads>thr"`` so that both engines print side by side."""

    def run(family, row, engine):
        name, flops, mine, theirs = row
        call = theirs(pytest.importorskip("torch")) if engine == "torch" else mine()
        _settle(threads)
        for _ in range(5):
            call()
        benchmark.group = f"{family}: {name} | {threads}thr"
        benchmark.extra_info.update(engine=engine, threads=threads)
        benchmark.pedantic(call, rounds=20, iterations=1)
        _record_gflops(benchmark, flops)

    return run
