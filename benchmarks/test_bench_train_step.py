"""One training step (forward, cross-entropy, backward, SGD with momentum 0.9) of
784-256-128-10 at batch 64 and 256, and of 64-64-10 at batch 32."""

import pytest

from fastnn import benchmarking as B

KINDS = ("train_step",)


@pytest.mark.parametrize("workload, engine", B.cases_of(*KINDS), ids=str)
def test_train_step(run_workload, workload, engine):
    run_workload(workload, engine)
