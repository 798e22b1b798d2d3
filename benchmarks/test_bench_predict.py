"""Single-sample predict latency through a 16-32-1 network (relu, sigmoid)."""

import pytest

from fastnn import benchmarking as B

KINDS = ("predict",)


@pytest.mark.parametrize("workload, engine", B.cases_of(*KINDS), ids=str)
def test_predict(run_workload, workload, engine):
    run_workload(workload, engine)
