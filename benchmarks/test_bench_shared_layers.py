"""Shared (tied) layers: a Siamese model's training step (one Dense or Conv2D tower on two
inputs) against its NumPy twin and the same model in PyTorch (see fastnn/_bench_shared.py);
the torch rows' steps agree with fastnn's first."""

import importlib.util

import pytest

from fastnn import _bench_shared
from fastnn import benchmarking as B

KINDS = (_bench_shared.KIND,)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_the_torch_rows_take_the_same_step(kind):
    assert _bench_shared.disagreement(kind) < 1e-3


@pytest.mark.parametrize("workload, engine", B.cases_of(*KINDS), ids=str)
def test_shared_layers(run_workload, workload, engine):
    run_workload(workload, engine)
