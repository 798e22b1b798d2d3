"""The layers of session 32 (stacked LSTM cells, Attention, AdditiveAttention, Dot,
UnitNormalization, ConvLSTM2D, Conv3DTranspose, MultiHeadAttention with dropout) and 33
(RMSNormalization, LayerNormalization over three axes, a stateful LSTM over two consecutive
batches), forward and backward, against their NumPy twins and PyTorch (see
fastnn/_bench_more_layers.py); the weightless rows' (and AdditiveAttention's, the
normalizations', the stateful LSTM's) torch formulas agree with the layers first."""

import importlib.util

import pytest

from fastnn import _bench_more_layers
from fastnn import benchmarking as B

KINDS = (_bench_more_layers.KIND,)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
@pytest.mark.parametrize("name", ["attention", "additive", "dot", "unitnorm", "rmsnorm",
                                  "layernorm_axes", "stateful_lstm"])
def test_the_torch_rows_compute_the_layers(name):
    assert _bench_more_layers.disagreement(name) < 1e-5


@pytest.mark.parametrize("workload, engine", B.cases_of(*KINDS), ids=str)
def test_more_layers(run_workload, workload, engine):
    run_workload(workload, engine)
