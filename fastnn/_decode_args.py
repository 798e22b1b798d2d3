"""The argument checks of ``attention_decode``, shared by the compiled kernel
(fastnn/_ext/_decode.pyx) and its NumPy twin (fastnn/backends/numpy_decode.py), so that both
refuse the same inputs with the same messages before any work is done.

    q (B, H, D), k_new (B, H, D), v_new (B, H, Dv), k_cache (B, H, Lmax, D),
    v_cache (B, H, Lmax, Dv), out (B, H, Dv); 0 <= t < Lmax.
All float arrays of one dtype (float32 or float64), C-contiguous; the caches and out writeable;
out apart from every other argument, the caches apart from each other and from the inputs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastnn._attention_args import _array


def _name(message: str) -> str:
    return message.replace("attention:", "attention_decode:", 1)


def check_decode(q: Any, k_new: Any, v_new: Any, k_cache: Any, v_cache: Any, t: Any,
                 scale: Any, out: Any) -> tuple[tuple[int, int, int, int, int], int, float]:
    """((B, H, Lmax, D, Dv), t, scale) after checking every argument."""
    try:
        q = _array("q", q, (None,) * 3)
        B, H, D = q.shape
        _array("k_new", k_new, (B, H, D), q.dtype)
        v_new = _array("v_new", v_new, (B, H, None), q.dtype)
        Dv = v_new.shape[2]
        k_cache = _array("k_cache", k_cache, (B, H, None, D), q.dtype, out=True)
        Lmax = k_cache.shape[2]
        _array("v_cache", v_cache, (B, H, Lmax, Dv), q.dtype, out=True)
        _array("out", out, (B, H, Dv), q.dtype, out=True)
    except (TypeError, ValueError) as exc:
        raise type(exc)(_name(str(exc))) from None
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
        raise TypeError(f"attention_decode: t must be an integer. Received: t={t!r}")
    if not 0 <= t < Lmax:
        raise ValueError(f"attention_decode: t must be in [0, Lmax={Lmax}) (the position to "
                         f"write). Received: t={t}")
    if isinstance(scale, (bool, np.bool_)) or not isinstance(
            scale, (int, float, np.integer, np.floating)) or not math.isfinite(float(scale)):
        raise ValueError(f"attention_decode: scale must be a finite real number. Received: "
                         f"scale={scale!r}")
    named = [("q", q), ("k_new", k_new), ("v_new", v_new)]
    writes = [("out", out), ("k_cache", k_cache), ("v_cache", v_cache)]
    for i, (oname, o) in enumerate(writes):
        for iname, x in named + writes[i + 1:]:
            if np.may_share_memory(o, x):
                raise ValueError(f"attention_decode: {oname} must not overlap {iname}")
    if max(B * H * Lmax * max(D, Dv, 1), 1) >= 2**56:
        raise ValueError(f"attention_decode: sizes too large. Received: {(B, H, Lmax, D, Dv)}")
    return (B, H, Lmax, D, Dv), int(t), float(scale)
