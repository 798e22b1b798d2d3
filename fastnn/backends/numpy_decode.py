"""The NumPy twin of ``attention_decode`` (fastnn/_ext/_decode.pyx): one query per (batch,
head) against a key/value cache, as generation with a cache needs it, written as the textbook
two-pass softmax the compiled kernel is tested against.

    K[:, :, t] := k_new,  V[:, :, t] := v_new,
    out[b, h] := softmax(scale q[b, h] K[b, h, :t+1]^T) V[b, h, :t+1]
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
    scores = np.einsum("bhd,bhjd->bhj", q, K) * q.dtype.type(s)
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    out[...] = np.einsum("bhj,bhjd->bhd", p, V) / p.sum(axis=-1, keepdims=True)
