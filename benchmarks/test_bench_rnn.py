"""Recurrent networks, fastnn against PyTorch CPU (see fastnn/_bench_rnn.py for the rows):
LSTM, GRU and SimpleRNN training steps (batch 32, 32 steps of 32 features, 64 units), one
sequence through the LSTM, and the large LSTM step (batch 64, 50 steps, 64 -> 256). Each
workload and thread count is one group, so the engines print side by side; ``python -m fastnn
bench`` prints the same rows as one table with GFLOP/s and ratios."""

import pytest

import fastnn as fnn
from fastnn import _bench_rnn as BR

pytest.importorskip("fastnn.backends.fast_backend")
ROWS = {name: (mine, theirs) for name, _, mine, theirs in BR.rows()}


@pytest.mark.parametrize("threads", [1, 2], ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("engine", ["fastnn", "torch"])
@pytest.mark.parametrize("name", list(ROWS))
def test_rnn(benchmark, name, engine, threads):
    mine, theirs = ROWS[name]
    if engine == "torch":
        torch = pytest.importorskip("torch")
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        call = theirs(torch)
    else:
        call = mine()
    try:
        with fnn.threads(threads):
            for _ in range(5):
                call()
            benchmark.group = f"rnn: {name} | {threads}thr"
            benchmark.pedantic(call, rounds=20, iterations=1)
    finally:
        if engine == "torch":
            torch.set_num_threads(previous)
