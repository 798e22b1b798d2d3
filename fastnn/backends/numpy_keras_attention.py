"""The NumPy twins of fastnn/_ext/_keras_attention.pyx (Dot, UnitNormalization, Attention,
AdditiveAttention): the same functions and signatures, written as the textbook formulas (the
additive scores materialise the (B, Tq, Tv, D) tensor that the compiled kernels recompute)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.backends.numpy_attention import dropout_keep


def batched_matmul(a: Any, b: Any, out: Any, trans_a: bool = False, trans_b: bool = False,
                   alpha: float = 1.0, beta: float = 0.0) -> None:
    """out[i] := alpha op(a[i]) @ op(b[i]) + beta out[i]"""
    A = np.swapaxes(a, 1, 2) if trans_a else a
    B = np.swapaxes(b, 1, 2) if trans_b else b
    prod = np.matmul(A, B)
    if alpha != 1.0:
        prod *= out.dtype.type(alpha)
    if beta == 0.0:
        out[...] = prod
    else:
        out *= out.dtype.type(beta)
        out += prod


def unit_norm_forward(x: Any, epsilon: float, y: Any, inv: Any) -> None:
    """inv := min(1 / sqrt(sum x^2), 1 / epsilon) per row;  y := x inv"""
    s = np.sum(np.square(x, dtype=np.float64), axis=1)
    with np.errstate(divide="ignore"):
        v = 1.0 / np.sqrt(s)
    inv[...] = np.minimum(v, 1.0 / epsilon)
    np.multiply(x, inv[:, None], out=y)


def unit_norm_backward(y: Any, inv: Any, epsilon: float, dy: Any, dx: Any) -> None:
    """dx := inv (dy - y <dy, y>) per row, or inv dy where the cap held"""
    free = inv != inv.dtype.type(1.0 / epsilon)
    s = np.where(free, np.sum(dy.astype(np.float64) * y, axis=1), 0.0)
    dx[...] = inv[:, None] * (dy - s[:, None] * y)


def masked_softmax(s: Any, vmask: Any, causal: bool, out: Any) -> None:
    """out[b, i] := softmax_j(s[b, i, j] - 1e9 where key j is masked for query i)  (Keras)"""
    B, Tq, Tv = s.shape
    hidden = np.zeros((B, Tq, Tv), dtype=bool)
    if vmask is not None:
        hidden |= (vmask == 0)[:, None, :]
    if causal:
        hidden |= np.triu(np.ones((Tq, Tv), dtype=bool), 1)[None]
    t = np.where(hidden, s - s.dtype.type(1e9), s)
    e = np.exp(t - t.max(axis=-1, keepdims=True))
    out[...] = e / e.sum(axis=-1, keepdims=True, dtype=np.float64)


def weights_dropout(x: Any, rate: float, key: int, out: Any) -> None:
    """out[b, i, j] := x[b, i, j] keep(b, i, j) / (1 - rate)  (numpy_attention.dropout_keep's
    draw with one head per sample)"""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"weights_dropout: rate must be in [0, 1). Received: rate={rate}")
    B, Tq, Tv = x.shape
    keep = dropout_keep((B, 1, Tq, Tv, 0, 0), rate, key)[:, 0]
    scale = x.dtype.type(1.0 / (1.0 - rate))
    out[...] = np.where(keep, x * scale, x.dtype.type(0))


def softmax_backward(a: Any, da: Any, ds: Any) -> None:
    """ds := a (da - <da, a>) per row"""
    d = np.sum(da.astype(np.float64) * a, axis=1, keepdims=True)
    ds[...] = a * (da - d)


def additive_scores(q: Any, k: Any, inner: float, outer: Any, out: Any) -> None:
    """out[b, i, j] := sum_d outer[d] tanh(inner (q[b, i, d] + k[b, j, d]))"""
    c = q.dtype.type(inner)
    t = np.tanh(c * (q[:, :, None, :] + k[:, None, :, :]))
    out[...] = np.sum(t * outer, axis=-1)


def additive_scores_backward(q: Any, k: Any, inner: float, outer: Any, ds: Any, dq: Any,
                             dk: Any, douter: Any, dinner: Any) -> None:
    """The gradients of additive_scores: dq, dk, and per sample douter (B, D), dinner (B,)"""
    c = q.dtype.type(inner)
    u = q[:, :, None, :] + k[:, None, :, :]
    t = np.tanh(c * u)
    g = ds[..., None]
    douter[...] = np.sum(g * t, axis=(1, 2))
    h = g * outer * (1 - t * t)
    dinner[...] = np.sum(h.astype(np.float64) * u, axis=(1, 2, 3))
    dq[...] = c * h.sum(axis=2)
    dk[...] = c * h.sum(axis=1)
