"""A dense 784->256 ReLU layer at batch 64 and 256: forward and backward kernels on
preallocated buffers."""

import pytest

from fastnn import benchmarking as B

KINDS = ("dense_fwd", "dense_bwd")


@pytest.mark.parametrize("workload, engine", B.cases_of(*KINDS), ids=str)
def test_dense(run_workload, workload, engine):
    run_workload(workload, engine)
