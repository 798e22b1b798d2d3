"""The Transformer encoder layer, fastnn against PyTorch CPU (see fastnn/_bench_transformer.py
for the rows): the training step (batch 16, 32 steps of 64 features, TransformerBlock of 4
heads and ff 256, pre-norm, then Flatten and Dense 10; gelu and relu) and one sequence
through it. Each workload and thread count is one group, so the engines print side by side;
``python -m fastnn bench`` prints the same rows with GFLOP/s, % of the GEMM peak and the
issue's targets."""

import pytest

import fastnn as fnn
from fastnn import _bench_transformer as BT

pytest.importorskip("fastnn.backends.fast_backend")
ROWS = {name: (mine, theirs) for name, _, mine, theirs in BT.rows()}


@pytest.mark.parametrize("threads", [1, 2], ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("engine", ["fastnn", "torch"])
@pytest.mark.parametrize("name", list(ROWS))
def test_transformer(benchmark, name, engine, threads):
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
            benchmark.group = f"transformer: {name} | {threads}thr"
            benchmark.pedantic(call, rounds=20, iterations=1)
    finally:
        if engine == "torch":
            torch.set_num_threads(previous)
