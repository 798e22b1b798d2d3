"""The digits: one epoch of 64-256-128-10 at batch 32, and 20 epochs against scikit-learn's
MLPClassifier (each engine's test accuracy lands in the benchmark's extra_info)."""

import pytest

from fastnn import benchmarking as B

KINDS = ("epoch", "digits20")


@pytest.mark.parametrize("workload, engine", B.cases_of(*KINDS), ids=str)
def test_digits(run_workload, workload, engine):
    run_workload(workload, engine)
