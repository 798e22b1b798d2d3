"""The compiled kernels as functions on NumPy arrays, for code that embeds them.

Inputs are validated and converted like model inputs (any real dtype, lists, strided or
Fortran-ordered arrays); the result is float32 when both operands are float32 (or float16),
float64 otherwise.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastnn import _validation as V
from fastnn.backends import default_backend


def _operand(name: str, x: ArrayLike) -> NDArray[np.generic]:
    arr = V.as_real_array(name, x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D. Received: {name} with shape {arr.shape}")
    return arr


def matmul(a: ArrayLike, b: ArrayLike, out: Optional[NDArray[np.floating[Any]]] = None
           ) -> NDArray[np.floating[Any]]:
    """out := a @ b for 2-D arrays a (m, k) and b (k, n); returns out (m, n).

    The compiled GEMM (the NumPy reference without the extension). Each entry is summed over k
    in order, whatever the thread count.

    Parameters
    ----------
    a : array_like, shape (m, k)
        Real and finite; any real dtype, list, strided or Fortran-ordered array.
    b : array_like, shape (k, n)
        Real and finite.
    out : ndarray, shape (m, n), optional
        Where to write the result: a writeable C-contiguous array of the result dtype (float32
        when both operands are float32 or float16, float64 otherwise) that does not overlap
        ``a`` or ``b``. A new array when None.

    Returns
    -------
    ndarray, shape (m, n)
        ``out`` (or the new array), holding ``a @ b``.

    Raises
    ------
    TypeError
        If an operand does not hold real numbers, or ``out`` is not a NumPy array.
    ValueError
        If an operand is not 2-D, the inner dimensions differ, a value is NaN or inf, or ``out``
        has the wrong shape, dtype or layout or overlaps an operand.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> fnn.ops.matmul([[1, 2], [3, 4]], [[1], [1]])
    array([[3.],
           [7.]])
    >>> out = np.empty((2, 2), dtype=np.float32)
    >>> fnn.ops.matmul(np.eye(2, dtype=np.float32), np.ones((2, 2), np.float32), out=out) is out
    True
    """
    a = _operand("a", a)
    b = _operand("b", b)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"a and b have mismatched inner dimensions: a is {a.shape}, "
                         f"b is {b.shape}")
    single = (np.float16, np.float32)
    dtype = np.float32 if a.dtype.type in single and b.dtype.type in single else np.float64
    a = V.as_float(a, dtype)
    b = V.as_float(b, dtype)
    V.check_finite("a", a)
    V.check_finite("b", b)
    shape = (a.shape[0], b.shape[1])
    if out is None:
        out = np.empty(shape, dtype=dtype)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a NumPy array. Received: out of type "
                            f"{type(out).__name__}")
        if out.shape != shape or out.dtype != dtype:
            raise ValueError(f"out must have shape {shape} and dtype {np.dtype(dtype).name}. "
                             f"Received: out with shape {out.shape} and dtype {out.dtype}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be C-contiguous and writeable. Received: out with "
                             f"c_contiguous={out.flags.c_contiguous}, "
                             f"writeable={out.flags.writeable}")
        if np.shares_memory(out, a) or np.shares_memory(out, b):
            raise ValueError("out must not overlap a or b")
    if out.size == 0:
        return out
    return default_backend().matmul(a, b, out)


def _lead_mask(name: str, mask: Any, lead: tuple[int, ...], tail: tuple[int, ...],
               form: str) -> tuple[Any, int]:
    """(the mask as a bool array of shape (*lead[:t], *tail), t), or (None, 0)."""
    if mask is None:
        return None, 0
    try:
        m = np.asarray(mask)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} must be a rectangular array of bool or uint8 values. "
                         f"Received: {name} of type {type(mask).__name__} ({exc})") from None
    if m.dtype not in (np.bool_, np.uint8):
        raise ValueError(f"{name} must hold bool or uint8 values. Received: {name} with dtype "
                         f"{m.dtype}")
    t = m.ndim - len(tail)
    if t < 0 or m.shape[t:] != tail or t > len(lead) or m.shape[:t] != lead[:t]:
        sizes = " and ".join(f"{a} {n}" for a, n in zip(("Lq", "Lk")[-len(tail):], tail))
        raise ValueError(f"{name} must have shape {form} with lead {lead} and {sizes}. "
                         f"Received: {name} with shape {m.shape}")
    return m.astype(bool, copy=False), t


def scaled_dot_product_attention(q: ArrayLike, k: ArrayLike, v: ArrayLike,
                                 mask: Optional[ArrayLike] = None, causal: bool = False,
                                 scale: Optional[float] = None,
                                 attn_mask: Optional[ArrayLike] = None
                                 ) -> NDArray[np.floating[Any]]:
    """softmax(scale q k^T, masked) v over the last two axes; returns a new array (..., Lq, Dv).

    The compiled kernel works in tiles of queries and keys with an online softmax, so it never
    holds the (Lq, Lk) score matrix: memory grows linearly with the sequence lengths. Leading
    axes (batch, heads, ...) are independent problems. Results do not depend on the thread count.

    Parameters
    ----------
    q : array_like, shape (..., Lq, D)
        Queries; real and finite.
    k : array_like, shape (..., Lk, D)
        Keys, with the leading axes of ``q``.
    v : array_like, shape (..., Lk, Dv)
        Values, with the leading axes of ``q``.
    mask : array_like of bool or uint8, shape (*lead[:t], Lk), optional
        Key padding mask, True (nonzero) where a key takes part (PyTorch's boolean ``attn_mask``
        meaning), shared by the leading axes it omits: for q (B, H, Lq, D), a (B, Lk) mask masks
        each batch row's keys in every head, an (Lk,) mask every problem's.
    causal : bool, default False
        Query i sees keys j <= i only: PyTorch's ``is_causal=True`` (``tril(ones(Lq, Lk))``,
        aligned at the top left also when Lq != Lk).
    scale : float, optional
        Factor of the scores; ``1 / sqrt(D)`` when None.
    attn_mask : array_like of bool or uint8, shape (*lead[:t], Lq, Lk), optional
        True (nonzero) where query i may attend to key j (PyTorch's boolean ``attn_mask``,
        Keras' ``attention_mask``), shared by the leading axes it omits as ``mask`` is: for q
        (B, H, Lq, D), a (B, Lq, Lk) mask serves every head, an (Lq, Lk) mask every problem.
        It is fused into the tiled kernel (the mask itself is the only (Lq, Lk) array); with
        ``mask`` or ``causal`` too, a key takes part only where every mask lets it.

    Returns
    -------
    ndarray, shape (..., Lq, Dv)
        float32 when q, k and v are all float32 (or float16), float64 otherwise. A query that
        sees no key at all (every key masked) gets zeros (older PyTorch gives NaN). Scores
        that overflow the dtype (float32 q, k near 1e19) follow PyTorch: -inf counts as a
        masked key; a query with a score of +inf or NaN gets NaN (no error: the inputs were
        finite, as matmul gives inf when its products overflow).

    Raises
    ------
    TypeError
        If an operand does not hold real numbers, or ``causal`` is not True or False.
    ValueError
        If shapes do not match (widths of q and k, lengths of k and v, leading axes, the
        masks), a mask is not bool or uint8, a value is NaN or inf, an axis has length 0 where a
        length >= 1 is needed, or ``scale`` is not a finite number the result's dtype holds.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> k = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> v = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> fnn.ops.scaled_dot_product_attention(q, k, v, scale=0.0)      # uniform weights
    array([[2., 3.],
           [2., 3.]])
    >>> fnn.ops.scaled_dot_product_attention(q, k, v, causal=True)    # row 0 sees key 0 only
    array([[1.       , 2.       ],
           [2.3395231, 3.3395231]])
    >>> fnn.ops.scaled_dot_product_attention(q, k, v, mask=[True, False])
    array([[1., 2.],
           [1., 2.]])
    >>> fnn.ops.scaled_dot_product_attention(q, k, v, attn_mask=[[False, True], [True, False]])
    array([[3., 4.],
           [1., 2.]])
    """
    arrays = []
    for name, x in (("q", q), ("k", k), ("v", v)):
        arr = V.as_real_array(name, x)
        if arr.ndim < 2:
            raise ValueError(f"{name} must have at least 2 axes (..., length, width). "
                             f"Received: {name} with shape {arr.shape}")
        arrays.append(arr)
    q, k, v = arrays
    lead = q.shape[:-2]
    if k.shape[:-2] != lead or v.shape[:-2] != lead:
        raise ValueError(f"q, k and v must have the same leading axes. Received: q with shape "
                         f"{q.shape}, k with shape {k.shape}, v with shape {v.shape}")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(f"q and k must have the same width D (last axis). Received: q with "
                         f"shape {q.shape}, k with shape {k.shape}")
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(f"k and v must have the same length Lk (second-to-last axis). "
                         f"Received: k with shape {k.shape}, v with shape {v.shape}")
    Lq, D, Lk, Dv = q.shape[-2], q.shape[-1], k.shape[-2], v.shape[-1]
    if min(Lq, D, Lk, Dv) < 1:
        raise ValueError(f"lengths and widths must be >= 1. Received: q with shape {q.shape}, "
                         f"k with shape {k.shape}, v with shape {v.shape}")
    key_mask, t = _lead_mask("mask", mask, lead, (Lk,), "(*lead[:t], Lk)")
    full, tf = _lead_mask("attn_mask", attn_mask, lead, (Lq, Lk), "(*lead[:t], Lq, Lk)")
    if full is not None:
        # one (B, Lq, Lk) mask over the leading axes both masks name (the key mask's rows
        # repeated over the queries)
        t = max(t, tf)
        full = full.reshape(lead[:tf] + (1,) * (t - tf) + (Lq, Lk))
        if key_mask is not None:
            full = full & key_mask.reshape(key_mask.shape[:-1] + (1,) * (t + 1 - key_mask.ndim)
                                           + (1, Lk))
        key_mask = np.ascontiguousarray(np.broadcast_to(full, lead[:t] + (Lq, Lk)))
        key_mask = key_mask.reshape(-1, Lq, Lk)
    elif key_mask is not None:
        key_mask = np.ascontiguousarray(key_mask).reshape(-1, Lk)
    causal = V.check_bool("causal", causal)
    single = (np.float16, np.float32)
    dtype = np.float32 if all(a.dtype.type in single for a in (q, k, v)) else np.float64
    for name, arr in (("q", q), ("k", k), ("v", v)):
        V.check_finite(name, arr)
    if scale is not None:
        if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.integer,
                                                                          np.floating)):
            raise ValueError(f"scale must be a real number or None. Received: scale={scale!r}")
        if not np.isfinite(scale):
            raise ValueError(f"scale must be finite. Received: scale={scale}")
    B = int(np.prod(lead[:t], dtype=np.int64))
    H = int(np.prod(lead[t:], dtype=np.int64))
    out = np.empty(lead + (Lq, Dv), dtype=dtype)
    if out.size == 0:
        return out
    q4 = V.as_float(q, dtype).reshape(B, H, Lq, D)
    k4 = V.as_float(k, dtype).reshape(B, H, Lk, D)
    v4 = V.as_float(v, dtype).reshape(B, H, Lk, Dv)
    lse = np.empty((B, H, Lq), dtype=dtype)
    default_backend().attention_forward(q4, k4, v4, key_mask, causal, scale,
                                        out.reshape(B, H, Lq, Dv), lse)
    return out


def sinusoidal_positions(length: int, width: int, max_wavelength: float = 10000.0
                         ) -> NDArray[np.floating[Any]]:
    """The sinusoidal position encoding of Vaswani et al. (2017), shape (length, width), float64:
    ``P[t, 2i] = sin(t / max_wavelength ** (2i / width))``, ``P[t, 2i + 1] = cos(t /
    max_wavelength ** (2i / width))``. ``fastnn.SinePositionEncoding`` adds it to a sequence.

    >>> import fastnn as fnn
    >>> fnn.ops.sinusoidal_positions(2, 4).round(4)
    array([[0.    , 1.    , 0.    , 1.    ],
           [0.8415, 0.5403, 0.01  , 1.    ]])
    """
    from fastnn.layers.embedding import sinusoidal_positions as table
    return table(length, width, max_wavelength)
