"""Convolutional networks, fastnn against PyTorch CPU (see fastnn/_bench_cnn.py for the rows):
LeNet-5 and the digits CNN training steps, one-image LeNet-5 predict, and a 64->64 3x3
convolution. Each workload and thread count is one group, so the engines print side by side;
``python -m fastnn bench`` prints the same rows as one table with GFLOP/s and ratios."""

import pytest

import fastnn as fnn
from fastnn import _bench_cnn as BC

pytest.importorskip("fastnn.backends.fast_backend")
ROWS = {name: (mine, theirs) for name, _, mine, theirs in BC.rows()}


@pytest.mark.parametrize("threads", [1, 2], ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("engine", ["fastnn", "torch"])
@pytest.mark.parametrize("name", list(ROWS))
def test_cnn(benchmark, name, engine, threads):
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
            benchmark.group = f"cnn: {name} | {threads}thr"
            benchmark.pedantic(call, rounds=20, iterations=1)
    finally:
        if engine == "torch":
            torch.set_num_threads(previous)
