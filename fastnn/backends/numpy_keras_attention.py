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


def dot_attention_forward(q: Any, k: Any, v: Any, scale: float, scaled: bool, vmask: Any,
                          causal: bool, qmask: Any, rate: float, key: int, raw: Any, A0: Any,
                          A: Any, y: Any) -> None:
    """Keras' dot-product Attention: raw := q k^T, A0 := masked_softmax(c raw) (c = scale when
    ``scaled``), A := weights_dropout(A0) when rate > 0, y := A v with the rows of masked
    queries (qmask 0) zeroed. ``raw`` may be ``A0`` and ``A`` may be ``A0``."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dot_attention_forward: rate must be in [0, 1). Received: rate={rate}")
    batched_matmul(q, k, raw, trans_b=True)
    S = raw * raw.dtype.type(scale) if scaled else raw
    masked_softmax(S, vmask, causal, A0)
    if rate > 0:
        weights_dropout(A0, rate, key, A)
    batched_matmul(A, v, y)
    if qmask is not None:
        y[qmask == 0] = 0


def dot_attention_backward(q: Any, k: Any, v: Any, scale: float, scaled: bool, qmask: Any,
                           rate: float, key: int, raw: Any, A0: Any, A: Any, dy: Any,
                           dscores: Any, dA: Any, dO: Any, dq: Any, dk: Any, dv: Any,
                           parts: Any) -> None:
    """dot_attention_forward's gradients: dv := A^T dO, dA := dS (the scores' gradient),
    dq := c dS k, dk := c dS^T q (added into dv when dk is None: the value was the key),
    parts[b] := sum dS raw when ``scaled``; dO (dy with masked query rows zeroed) is scratch."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dot_attention_backward: rate must be in [0, 1). Received: "
                         f"rate={rate}")
    if qmask is not None:
        dO[...] = dy
        dO[qmask == 0] = 0
        dy = dO
    batched_matmul(dy, v, dA, trans_b=True)
    if dscores is not None:
        dA += dscores
    batched_matmul(A, dy, dv, trans_a=True)
    if rate > 0:
        weights_dropout(dA, rate, key, dA)
    Tv = dA.shape[2]
    softmax_backward(A0.reshape(-1, Tv), dA.reshape(-1, Tv), dA.reshape(-1, Tv))
    if scaled:
        parts[...] = np.sum(dA.astype(np.float64) * raw, axis=(1, 2))
    batched_matmul(dA, k, dq, alpha=scale)
    if dk is None:
        batched_matmul(dA, q, dv, trans_a=True, alpha=scale, beta=1.0)
    else:
        batched_matmul(dA, q, dk, trans_a=True, alpha=scale)


def cosine_forward(x: Any, z: Any, epsilon: float, xn: Any, zn: Any, invx: Any, invz: Any,
                   y: Any) -> None:
    """Dot(axes=-1, normalize=True) on (B, M, K) and (B, N, K): xn, zn := the rows normalized
    (unit_norm_forward, inverse norms in invx (B, M), invz (B, N)), y[b] := xn[b] zn[b]^T."""
    K = x.shape[2]
    unit_norm_forward(x.reshape(-1, K), epsilon, xn.reshape(-1, K), invx.reshape(-1))
    unit_norm_forward(z.reshape(-1, K), epsilon, zn.reshape(-1, K), invz.reshape(-1))
    batched_matmul(xn, zn, y, trans_b=True)


def cosine_backward(xn: Any, zn: Any, invx: Any, invz: Any, epsilon: float, g: Any, dx: Any,
                    dz: Any) -> None:
    """cosine_forward's gradients: unit_norm_backward of g zn and of g^T xn."""
    K = xn.shape[2]
    batched_matmul(g, zn, dx)
    batched_matmul(g, xn, dz, trans_a=True)
    for y, inv, d in ((xn, invx, dx), (zn, invz, dz)):
        rows = d.reshape(-1, K)
        unit_norm_backward(y.reshape(-1, K), inv.reshape(-1), epsilon, rows.copy(), rows)
