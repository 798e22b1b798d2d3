"""fastnn under interference (see fastnn/_bench_interference.py): each workload at one thread
and at two, under each condition the benchmark makes itself (quiet; a NumPy 256x256 product
before every call; another process busy 50% or 100% of a core). Groups are per workload and
condition, so the two thread counts print side by side; ``python -m fastnn bench`` prints the
same measurements as one table of ratios."""

import pytest

import fastnn as fnn
from fastnn import _bench_interference as BI

pytest.importorskip("fastnn.backends.fast_backend")
WORKLOADS = dict(BI.workloads())


@pytest.mark.parametrize("threads", [1, 2], ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("condition", BI.CONDITIONS)
@pytest.mark.parametrize("name", list(WORKLOADS))
def test_interference(benchmark, name, condition, threads):
    run = WORKLOADS[name]()
    with BI._Condition(condition) as cond, fnn.threads(threads):
        for _ in range(20):                      # plans built, the thread choice measured
            if cond.before:
                cond.before()
            run()
        benchmark.group = f"interference: {name} | {condition}"
        benchmark.pedantic(run, setup=cond.before, rounds=30, iterations=1)
