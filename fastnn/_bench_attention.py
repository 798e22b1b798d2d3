"""The attention benchmark of issue #18: fastnn's tiled attention kernels against PyTorch's
``F.scaled_dot_product_attention`` on the CPU, forward + backward, float32.

Rows: batch 1, 4 heads, sequence length 1024, head width 64, with and without ``causal``, and
with a random (L, L) boolean mask (Keras' attention_mask; PyTorch's boolean attn_mask), which
neither engine can skip tiles of.
fastnn calls the fast backend's ``attention_forward`` then ``attention_backward`` (outputs into
preallocated buffers, as a layer does); PyTorch runs SDPA on tensors that require gradients and
``backward(dout)``. FLOPs count the products: forward 2 (S, then A v), backward 5 (S again, dv,
dP, dq, dk), each 2 B H L^2 D; half of it with ``causal``. The target (check_targets in
fastnn/_bench_table.py): fastnn at least as fast as PyTorch at every thread count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

B, H, L, D = 1, 4, 1024, 64


def workloads(workload_class: Any) -> list:
    """The three rows (plain, causal, masked), as ``fastnn.benchmarking.Workload``s."""
    flops = 7 * 2.0 * B * H * L * L * D
    return [workload_class(f"attention fwd+bwd L{L}" + suffix, "attention", (causal, masked),
                           ("fastnn", "torch"), flops=flops / (2 if causal else 1))
            for causal, masked, suffix in ((False, False, ""), (True, False, " causal"),
                                           (False, True, " masked"))]


def build(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    """A Case whose ``run()`` is one forward + backward on ``engine``."""
    causal, masked = w.params
    q, k, v, dout = (rng.standard_normal((B, H, L, D)).astype(np.float32) for _ in range(4))
    scale = 1.0 / np.sqrt(D)
    mask = None
    if masked:                      # 70% of the pairs, key 0 for every query
        mask = rng.random((B, L, L)) < 0.7
        mask[:, :, 0] = True
    if engine == "fastnn":
        from fastnn.backends import fast_backend as fb
        out, dq, dk, dv = (np.empty_like(q) for _ in range(4))
        lse = np.empty((B, H, L), np.float32)

        def run() -> None:
            fb.attention_forward(q, k, v, mask, causal, scale, out, lse)
            fb.attention_backward(q, k, v, out, dout, lse, mask, causal, scale, dq, dk, dv)
        return case_class(w, engine, run, keep=[q, k, v, dout, out, lse, dq, dk, dv, mask])
    import torch
    import torch.nn.functional as F
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    tdout = torch.tensor(dout)
    tmask = None if mask is None else torch.tensor(mask[:, None])

    def run_torch() -> None:
        tq.grad = tk.grad = tv.grad = None
        F.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask, is_causal=causal,
                                       scale=scale).backward(tdout)
    return case_class(w, engine, run_torch, keep=[tq, tk, tv, tdout, tmask])


def check(key: str, n: int, ratio: float | None) -> tuple[bool, str] | None:
    """The target line for a row: fastnn >= 1.0x PyTorch (None when it is not an attention row
    or torch was not measured)."""
    if not key.startswith("attention fwd+bwd") or ratio is None:
        return None
    return ratio >= 1.0, f"{key}, {n} thr: fastnn >= 1.0x PyTorch SDPA: {ratio:.2f}x"
