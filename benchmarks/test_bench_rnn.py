"""Recurrent networks, fastnn against PyTorch CPU (see fastnn/_bench_rnn.py for the rows):
LSTM, GRU and SimpleRNN training steps (batch 32, 32 steps of 32 features, 64 units), one
sequence through the LSTM, and the large LSTM step (batch 64, 50 steps, 64 -> 256). Each
workload and thread count is one group, so the engines print side by side; ``python -m fastnn
bench`` prints the same rows as one table with GFLOP/s and ratios."""

import pytest

pytest.importorskip("fastnn.backends.fast_backend")
from fastnn import _bench_rnn as BR  # noqa: E402


@pytest.mark.parametrize("engine", ["fastnn", "torch"])
@pytest.mark.parametrize("row", BR.rows(), ids=lambda row: row[0])
def test_rnn(run_torch_pair, row, engine):
    run_torch_pair("rnn", row, engine)
