"""GEMM float32: square sizes and the shapes of a 784->256 layer, forward and backward
(fastnn's backend matmul, np.matmul and torch.mm, all into preallocated outputs)."""

import pytest

from fastnn import benchmarking as B

KINDS = ("gemm",)


@pytest.mark.parametrize("workload, engine", B.cases_of(*KINDS), ids=str)
def test_gemm(run_workload, workload, engine):
    run_workload(workload, engine)
