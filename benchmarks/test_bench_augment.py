"""One training-mode pass of RandomRotation(0.1) over 32 images of 64x64x3: fastnn's compiled
affine resampling kernel against its NumPy twin and PyTorch's affine_grid + grid_sample (see
fastnn/_bench_augment.py)."""

import pytest

from fastnn import benchmarking as B

KINDS = ("augment",)


@pytest.mark.parametrize("workload, engine", B.cases_of(*KINDS), ids=str)
def test_augment(run_workload, workload, engine):
    run_workload(workload, engine)
