"""Generation through the key/value cache, fastnn against PyTorch CPU (see
fastnn/_bench_generation.py): the tiny GPT of issue #18 generating 15 tokens greedily after a
1-token prompt, for 1 and 16 rows, PyTorch running the same cached decoding loop with the same
weights (its tokens are checked to be fastnn's). Each workload and thread count is one group, so
the engines print side by side; ``python -m fastnn bench`` prints tokens per second and ratios."""

import pytest

import fastnn as fnn
from fastnn import _bench_generation as BG

pytest.importorskip("fastnn.backends.fast_backend")
ROWS = {name: (mine, theirs) for name, _, mine, theirs in BG.rows()}


@pytest.mark.parametrize("threads", [1, 2], ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("engine", ["fastnn", "torch"])
@pytest.mark.parametrize("name", list(ROWS))
def test_generation(benchmark, name, engine, threads):
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
            benchmark.group = f"generation: {name} | {threads}thr"
            benchmark.extra_info["tokens_per_call"] = BG.NEW_TOKENS * (16 if "b16" in name
                                                                       else 1)
            benchmark.pedantic(call, rounds=30, iterations=1)
    finally:
        if engine == "torch":
            torch.set_num_threads(previous)
