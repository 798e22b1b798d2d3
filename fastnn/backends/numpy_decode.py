"""The NumPy twin of ``attention_decode`` (fastnn/_ext/_decode.pyx): one query per (batch,
head) against a key/value cache, as generation with a cache needs it, written as the textbook
two-pass softmax the compiled kernel is tested against.

    K[:, :, t] := k_new,  V[:, :, t] := v_new,
    out[b, h] := softmax(scale q[b, h] K[b, h, :t+1]^T) V[b, h, :t+1]

As in the tiled kernels (fastnn/backends/numpy_attention.py), a score that overflows to -inf
takes no part (all -inf: out = 0), a score of +inf or NaN makes the row NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn._validation import check_attention_decode as check_decode


def attention_decode(q: Any, k_new: Any, v_new: Any, k_cache: Any, v_cache: Any, t: Any,
                     scale: Any, out: Any) -> None:
    """caches[:, :, t] := k_new, v_new;  out := softmax(scale q K[:t+1]^T) V[:t+1]"""
    _, t, s = check_decode(q, k_new, v_new, k_cache, v_cache, t, scale, out)
    k_cache[:, :, t] = k_new
    v_cache[:, :, t] = v_new
    if out.size == 0:
        return
    K, V = k_cache[:, :, :t + 1], v_cache[:, :, :t + 1]
    with np.errstate(over="ignore", invalid="ignore"):   # overflowing scores: NaN, as compiled
        scores = np.einsum("bhd,bhjd->bhj", q, K) * q.dtype.type(s)
        m = scores.max(axis=-1, keepdims=True)
        blind = m == -np.inf
        p = np.exp(scores - np.where(blind, 0, m))
        out[...] = np.where(blind, 0, np.einsum("bhj,bhjd->bhd", p, V) /
                            np.where(blind, 1, p.sum(axis=-1, keepdims=True)))
