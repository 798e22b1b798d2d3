"""Resizing (inference), PReLU and GroupNormalization (forward and backward) against their NumPy
twins and PyTorch (see fastnn/_bench_layers.py); the Resizing row's outputs agree with
PyTorch's first."""

import importlib.util

import pytest

from fastnn import _bench_layers
from fastnn import benchmarking as B

KINDS = ("layers",)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_resizing_row_agrees_with_torch():
    assert _bench_layers.resizing_disagreement() < 1e-5


@pytest.mark.parametrize("workload, engine", B.cases_of(*KINDS), ids=str)
def test_layers(run_workload, workload, engine):
    run_workload(workload, engine)
