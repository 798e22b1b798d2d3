"""The argument checks of the attention kernels, shared by the compiled kernels
(fastnn/_ext/_attention.pyx) and their NumPy twin (fastnn/backends/numpy_attention.py), so that
both refuse the same inputs with the same messages before any work is done.

    q (B, H, Lq, D), k (B, H, Lk, D), v (B, H, Lk, Dv), out / dout (B, H, Lq, Dv), lse (B, H, Lq),
    key_mask (B, Lk) of bool or uint8 or None; dq, dk, dv shaped as q, k, v.
All float arrays of one dtype (float32 or float64), C-contiguous; outputs writeable and apart
from every other argument.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _array(name: str, a: Any, shape: tuple, dtype: Any = None, out: bool = False) -> Any:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"attention: {name} must be a NumPy array. Received: {name} of type "
                        f"{type(a).__name__}")
    if a.ndim != len(shape) or any(w is not None and s != w for s, w in zip(a.shape, shape)):
        want = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
        raise ValueError(f"attention: {name} must have shape {want}. Received: {name} with "
                         f"shape {a.shape}")
    if dtype is None:
        if a.dtype not in _FLOATS:
            raise ValueError(f"attention: {name} must be float32 or float64. Received: {name} "
                             f"with dtype {a.dtype}")
    elif a.dtype != dtype:
        raise ValueError(f"attention: {name} must have the dtype of q ({np.dtype(dtype).name}). "
                         f"Received: {name} with dtype {a.dtype} and shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"attention: {name} must be C-contiguous. Received: {name} with shape "
                         f"{a.shape} and strides {a.strides}")
    if out and not a.flags.writeable:
        raise ValueError(f"attention: {name} must be writeable")
    return a


def _key_mask(key_mask: Any, B: int, Lk: int) -> Optional[Any]:
    """The mask as uint8 (a view: bool and uint8 share a layout), or None."""
    if key_mask is None:
        return None
    if not isinstance(key_mask, np.ndarray) or key_mask.dtype not in (np.bool_, np.uint8):
        what = (f"dtype {key_mask.dtype}" if isinstance(key_mask, np.ndarray)
                else f"type {type(key_mask).__name__}")
        raise ValueError(f"attention: key_mask must be a bool or uint8 array of shape ({B}, "
                         f"{Lk}). Received: key_mask with {what}")
    _array("key_mask", key_mask, (B, Lk), key_mask.dtype)
    return key_mask.view(np.uint8)


def _scale(scale: Any, D: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(D)
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.integer,
                                                                      np.floating)):
        raise ValueError(f"attention: scale must be a real number or None. Received: "
                         f"scale={scale!r}")
    value = float(scale)
    if not math.isfinite(value):
        raise ValueError(f"attention: scale must be finite. Received: scale={value}")
    return value


def _apart(outputs: list, inputs: list) -> None:
    for i, (oname, o) in enumerate(outputs):
        for iname, x in inputs + outputs[i + 1:]:
            if x is not None and np.may_share_memory(o, x):
                raise ValueError(f"attention: {oname} must not overlap {iname}")


def check_forward(q: Any, k: Any, v: Any, key_mask: Any, causal: Any, scale: Any, out: Any,
                  lse: Any) -> tuple:
    """(dims (B, H, Lq, Lk, D, Dv), key_mask as uint8 or None, scale as a float)"""
    q = _array("q", q, (None,) * 4)
    B, H, Lq, D = q.shape
    dt = q.dtype
    k = _array("k", k, (B, H, None, D), dt)
    Lk = k.shape[2]
    v = _array("v", v, (B, H, Lk, None), dt)
    Dv = v.shape[3]
    if min(Lq, Lk, D, Dv) < 1:
        raise ValueError(f"attention: sequence lengths and widths must be >= 1. Received: "
                         f"Lq={Lq}, Lk={Lk}, D={D}, Dv={Dv}")
    _array("out", out, (B, H, Lq, Dv), dt, out=True)
    _array("lse", lse, (B, H, Lq), dt, out=True)
    mask = _key_mask(key_mask, B, Lk)
    _apart([("out", out), ("lse", lse)], [("q", q), ("k", k), ("v", v), ("key_mask", key_mask)])
    return (B, H, Lq, Lk, D, Dv), mask, _scale(scale, D), bool(causal)


def check_backward(q: Any, k: Any, v: Any, out: Any, dout: Any, lse: Any, key_mask: Any,
                   causal: Any, scale: Any, dq: Any, dk: Any, dv: Any) -> tuple:
    """(dims (B, H, Lq, Lk, D, Dv), key_mask as uint8 or None, scale as a float)"""
    q = _array("q", q, (None,) * 4)
    B, H, Lq, D = q.shape
    dt = q.dtype
    k = _array("k", k, (B, H, None, D), dt)
    Lk = k.shape[2]
    v = _array("v", v, (B, H, Lk, None), dt)
    Dv = v.shape[3]
    if min(Lq, Lk, D, Dv) < 1:
        raise ValueError(f"attention: sequence lengths and widths must be >= 1. Received: "
                         f"Lq={Lq}, Lk={Lk}, D={D}, Dv={Dv}")
    _array("out", out, (B, H, Lq, Dv), dt)
    _array("dout", dout, (B, H, Lq, Dv), dt)
    _array("lse", lse, (B, H, Lq), dt)
    _array("dq", dq, (B, H, Lq, D), dt, out=True)
    _array("dk", dk, (B, H, Lk, D), dt, out=True)
    _array("dv", dv, (B, H, Lk, Dv), dt, out=True)
    mask = _key_mask(key_mask, B, Lk)
    _apart([("dq", dq), ("dk", dk), ("dv", dv)],
           [("q", q), ("k", k), ("v", v), ("out", out), ("dout", dout), ("lse", lse),
            ("key_mask", key_mask)])
    return (B, H, Lq, Lk, D, Dv), mask, _scale(scale, D), bool(causal)
