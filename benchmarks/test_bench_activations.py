"""One training step (Dense 256-256-256, MSE, SGD) at batch 256 in float32 with each of relu,
gelu, elu, selu, silu and softplus: fastnn, NumPy and PyTorch (see fastnn/_bench_activations.py)."""

import pytest

from fastnn import benchmarking as B

KINDS = ("activation",)


@pytest.mark.parametrize("workload, engine", B.cases_of(*KINDS), ids=str)
def test_activation_step(run_workload, workload, engine):
    run_workload(workload, engine)
