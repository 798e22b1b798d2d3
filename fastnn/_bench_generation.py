"""The generation benchmark (issue #18): tokens per second of the tiny GPT through its key/value
cache, fastnn's ``model.generate`` against PyTorch CPU running the same cached decoding loop.

The model: vocabulary 28, Embedding(28, 64) -> PositionalEmbedding(16) -> 2 x
TransformerBlock(num_heads=4, key_dim=16, ff_dim=256, causal=True, pre-norm, gelu) ->
LayerNormalization -> Dense(28, softmax). A call generates 15 tokens greedily after a 1-token
prompt, for 1 row (``b1``) or 16 rows (``b16``).

PyTorch's side is written here with the same weights: per token, the embedding row plus the
position row, then per block F.layer_norm, one F.linear for Q, K and V, the new key and value
written into preallocated (batch, heads, 16, 16) caches, F.scaled_dot_product_attention of the
one query over positions 0..t, F.linear, the residual, F.layer_norm, F.linear, F.gelu,
F.linear, the residual; the final F.layer_norm and F.linear, argmax (under
torch.inference_mode). Both are greedy, so they must produce the same tokens (checked when the
rows are made). Calls alternate in one run (fastnn/_bench_cnn.py's ``measure``); the table gives
tokens per second and PyTorch's time over fastnn's.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import fastnn as fnn
from fastnn._bench_cnn import Row

VOCAB, WIDTH, POSITIONS, HEADS, KEY_DIM, FF_DIM, BLOCKS = 28, 64, 16, 4, 16, 256, 2
NEW_TOKENS = 15


def tiny_gpt(seed: int = 0, backend: Any = "fast", dtype: Any = "float32") -> Any:
    """The tiny GPT of issue #18 (token ids (n, 16) -> next-token probabilities (n, 16, 28))."""
    inp = fnn.Input((POSITIONS,))
    h = fnn.PositionalEmbedding(POSITIONS)(fnn.Embedding(VOCAB, WIDTH)(inp))
    for _ in range(BLOCKS):
        h = fnn.TransformerBlock(num_heads=HEADS, key_dim=KEY_DIM, ff_dim=FF_DIM,
                                 causal=True)(h)
    out = fnn.Dense(VOCAB, activation="softmax")(fnn.LayerNormalization()(h))
    return fnn.Model(inp, out, seed=seed, backend=backend, dtype=dtype)


def torch_generator(torch: Any, model: Any) -> Callable[[Any, int], Any]:
    """``generate(prompt (n, p) int64 tensor, new) -> (n, p + new)``: greedy decoding of
    ``model`` (built by ``tiny_gpt``) in PyTorch, with a key/value cache."""
    F = torch.nn.functional
    nodes = [node.layer for node in model._nodes[1:]]
    emb, pos, blocks, norm, dense = nodes[0], nodes[1], nodes[2:-2], nodes[-2], nodes[-1]

    def t(a: Any) -> Any:
        return torch.tensor(np.ascontiguousarray(a))
    table, positions = t(emb.embeddings), t(pos.positions(0, POSITIONS))
    params = []
    for block in blocks:
        w = block.attention.get_weights()
        wqkv = np.concatenate([w[i].reshape(WIDTH, -1) for i in (0, 2, 4)], axis=1)
        bqkv = np.concatenate([w[i].reshape(-1) for i in (1, 3, 5)])
        ff1, ff2 = block.feedforward_intermediate, block.feedforward_output
        params.append((t(block.attention_norm.gamma), t(block.attention_norm.beta),
                       t(wqkv.T), t(bqkv), t(w[6].reshape(-1, WIDTH).T), t(w[7]),
                       t(block.feedforward_norm.gamma), t(block.feedforward_norm.beta),
                       t(ff1.W.T), t(ff1.b), t(ff2.W.T), t(ff2.b), block.layer_norm_epsilon))
    head = (t(norm.gamma), t(norm.beta), norm.epsilon, t(dense.W.T), t(dense.b))
    scale = 1.0 / KEY_DIM ** 0.5

    def generate(prompt: Any, new: int) -> Any:
        n, p = prompt.shape
        total = p + new
        caches = [(torch.zeros(n, HEADS, total, KEY_DIM), torch.zeros(n, HEADS, total, KEY_DIM))
                  for _ in blocks]
        out = torch.empty(n, total, dtype=torch.int64)
        out[:, :p] = prompt
        with torch.inference_mode():
            for i in range(total - 1):
                x = F.embedding(out[:, i], table) + positions[i]
                for (g1, b1, wqkv, bqkv, wo, bo, g2, b2, w1, c1, w2, c2, eps), (kc, vc) in zip(
                        params, caches):
                    h = F.layer_norm(x, (WIDTH,), g1, b1, eps)
                    q, k, v = F.linear(h, wqkv, bqkv).view(n, 3, HEADS, KEY_DIM).unbind(1)
                    kc[:, :, i] = k
                    vc[:, :, i] = v
                    a = F.scaled_dot_product_attention(q.unsqueeze(2), kc[:, :, :i + 1],
                                                       vc[:, :, :i + 1], scale=scale)
                    x = x + F.linear(a.reshape(n, HEADS * KEY_DIM), wo, bo)
                    h = F.layer_norm(x, (WIDTH,), g2, b2, eps)
                    x = x + F.linear(F.gelu(F.linear(h, w1, c1)), w2, c2)
                if i >= p - 1:
                    g, b, eps, wd, bd = head
                    logits = F.linear(F.layer_norm(x, (WIDTH,), g, b, eps), wd, bd)
                    out[:, i + 1] = logits.argmax(-1)
        return out
    return generate


def rows() -> list[Row]:
    """(name, tokens per call, fastnn setup -> call, torch setup(torch) -> call); the "flops"
    column of the shared measuring code holds the tokens a call generates."""
    out: list[Row] = []
    for n in (1, 16):
        prompt = (np.arange(n) % VOCAB).reshape(n, 1)

        def mine(prompt: Any = prompt) -> Callable[[], Any]:
            net = tiny_gpt()
            return lambda: net.generate(prompt, NEW_TOKENS, temperature=0)

        def theirs(torch: Any, prompt: Any = prompt) -> Callable[[], Any]:
            net = tiny_gpt()
            ours = net.generate(prompt, NEW_TOKENS, temperature=0)
            gen = torch_generator(torch, net)
            tp = torch.tensor(prompt)
            if not np.array_equal(gen(tp, NEW_TOKENS).numpy(), ours):
                raise AssertionError("PyTorch's greedy tokens differ from fastnn's")
            return lambda: gen(tp, NEW_TOKENS)
        out.append((f"tiny GPT generate 15 tok b{n}", float(NEW_TOKENS * n), mine, theirs))
    return out


def run(thread_counts: tuple[int, ...] = (1, 2), repeats: int = 30,
        log: Callable[[str], None] | None = None) -> dict[int, dict[str, Any]]:
    from fastnn import _bench_cnn as BC
    return BC.run(thread_counts, repeats, log, make_rows=rows)


def format_table(by_threads: dict[int, dict[str, Any]]) -> str:
    lines = ["Generation (tiny GPT, key/value cache, greedy): fastnn against PyTorch CPU, calls "
             "alternating in one run (ratio = fastnn tokens/s / PyTorch tokens/s)"]
    for threads, res in by_threads.items():
        lines.append(f"{threads} thread(s)")
        lines.append(f"  {'workload':32s} {'fastnn tok/s':>13s} {'PyTorch tok/s':>14s} "
                     f"{'ratio':>7s}")
        for name, (ta, tb, tokens) in res["rows"].items():
            theirs = f"{tokens / tb:14.0f}" if tb is not None else f"{'n/a':>14s}"
            ratio = f"{tb / ta:6.2f}x" if tb is not None else "    n/a"
            lines.append(f"  {name:32s} {tokens / ta:13.0f} {theirs} {ratio}")
    return "\n".join(lines)
