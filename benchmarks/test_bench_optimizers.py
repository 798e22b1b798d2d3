"""One optimizer update of 1M float32 parameters in one flat tensor (Adagrad, Adamax, Nadam and,
for scale, Adam): fastnn's fused compiled kernels against its NumPy backend and torch.optim with
``foreach=True`` (see fastnn/_bench_optimizers.py)."""

import pytest

from fastnn import benchmarking as B

KINDS = ("optimizer",)


@pytest.mark.parametrize("workload, engine", B.cases_of(*KINDS), ids=str)
def test_optimizer_update(run_workload, workload, engine):
    run_workload(workload, engine)
