"""The NumPy twins of the attention kernels (fastnn/_ext/_attention.pyx): the same functions and
signatures, written as the textbook, materialising computation (the whole (Lq, Lk) score matrix
of every head at once), which the tiled compiled kernels are tested against.

    S = scale q k^T (masked entries -inf),  A = softmax_rows(S),  out = A v,
    lse = logsumexp_rows(S)
    backward: D = rowsum(dout * out), dv = A^T dout, dA = dout v^T, dS = A (dA - D) scale,
              dq = dS k, dk = dS^T q
    with dropout (training): A Z in place of A in out and dv, and dA = Z (dout v^T), where
    Z = keep / (1 - rate) (``dropout_keep``: the kernels' counter-based draw)

With ``causal`` query i sees keys j <= i (PyTorch's is_causal, top-left aligned); key_mask
(B, Lk), True = take part, or (B, Lq, Lk), True = query i may see key j (shared by the heads). A query row that sees no key gets out = 0, lse = -inf and zero
gradients; a score that overflows to -inf counts as masked (PyTorch's safe softmax). A row with
a score of +inf (overflow) or NaN gets out = NaN and lse = NaN, as PyTorch gives, and NaN
gradients, except through scores of -inf (no gradient there).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn._validation import (check_attention_backward, check_attention_dropout,
                                check_attention_forward)


def _visible(dims: tuple, mask: Any, causal: bool) -> Any:
    """(B, 1 or H, Lq, Lk) booleans: may query i look at key j?"""
    B, H, Lq, Lk, _, _ = dims
    vis = np.ones((B, 1, Lq, Lk), dtype=bool)
    if causal:
        vis &= np.tril(np.ones((Lq, Lk), dtype=bool))
    if mask is not None and mask.ndim == 3:
        vis &= mask.astype(bool)[:, None, :, :]
    elif mask is not None:
        vis &= mask.astype(bool)[:, None, None, :]
    return vis


def dropout_keep(dims: tuple, rate: float, key: int) -> Any:
    """(B, H, Lq, Lk) booleans: does attention dropout keep weight (i, j) of pair (b, h)? The
    draw of fnn_attn_keep (src_c/fnn_attn.h): SplitMix64's finalizer over key + the element's
    index (b H + h) Lq Lk + i Lk + j times the golden ratio, in wrapping uint64 arithmetic,
    its top 53 bits as a fraction of 1, kept when >= rate."""
    B, H, Lq, Lk, _, _ = dims
    e = np.arange(B * H * Lq * Lk, dtype=np.uint64).reshape(B, H, Lq, Lk)
    z = e * np.uint64(0x9E3779B97F4A7C15) + np.uint64(key)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53 >= rate


def _dropped(dims: tuple, rate: float, key: int, dtype: Any) -> Any:
    """Z: keep / (1 - rate) where kept, else 0 (in the arrays' dtype, as the kernels scale)."""
    scale = np.asarray(1.0 / (1.0 - rate), dtype=dtype)
    return np.where(dropout_keep(dims, rate, key), scale, np.zeros((), dtype))


def _scores(q: Any, k: Any, vis: Any, scale: float) -> Any:
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * q.dtype.type(scale)
    return np.where(vis, s, -np.inf).astype(q.dtype, copy=False)


def attention_forward(q: Any, k: Any, v: Any, key_mask: Any, causal: Any, scale: Any, out: Any,
                      lse: Any, dropout: Any = 0.0, dropout_key: Any = 0) -> None:
    """out := (softmax(scale q k^T, masked) * Z) v per (batch, head); lse := the row
    log-sum-exp of the scores (Z: dropout's keep / (1 - dropout), drawn from dropout_key)"""
    rate, key = check_attention_dropout(dropout, dropout_key)
    dims, mask, s, c = check_attention_forward(q, k, v, key_mask, causal, scale, out, lse)
    if q.size == 0:
        return
    vis = _visible(dims, mask, c)
    with np.errstate(over="ignore", invalid="ignore"):
        S = _scores(q, k, vis, s)
    m = S.max(axis=-1, keepdims=True)          # NaN if a visible score is NaN
    seen = np.isfinite(m)                      # the row's softmax is defined
    blind = m == -np.inf                       # every score -inf: zeros; +inf or NaN: NaN
    m = np.where(seen, m, 0).astype(q.dtype, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        P = np.where(vis & seen, np.exp(S - m), 0).astype(q.dtype, copy=False)
    ell = P.sum(axis=-1, keepdims=True)
    safe = np.where(seen, ell, 1).astype(q.dtype, copy=False)
    lost = np.where(blind, 0, np.nan).astype(q.dtype, copy=False)
    if rate > 0.0:
        P = P * _dropped(dims, rate, key, q.dtype)      # the sum ell is of the undropped A
    out[...] = np.where(seen, np.matmul(P, v) / safe, lost)
    with np.errstate(divide="ignore"):
        lse[...] = np.where(seen, m + np.log(safe), np.where(blind, -np.inf, np.nan))[..., 0]


def attention_backward(q: Any, k: Any, v: Any, out: Any, dout: Any, lse: Any, key_mask: Any,
                       causal: Any, scale: Any, dq: Any, dk: Any, dv: Any, dropout: Any = 0.0,
                       dropout_key: Any = 0) -> None:
    """dq, dk, dv := the gradients of attention_forward's out (given dout), from its lse (and
    the forward's dropout and dropout_key)"""
    rate, key = check_attention_dropout(dropout, dropout_key)
    dims, mask, s, c = check_attention_backward(q, k, v, out, dout, lse, key_mask, causal,
                                                scale, dq, dk, dv)
    if q.size == 0:
        return
    vis = _visible(dims, mask, c)
    with np.errstate(over="ignore", invalid="ignore"):
        S = _scores(q, k, vis, s)
    L = lse[..., None]
    live = S != -np.inf                        # not masked, not overflowed to -inf
    with np.errstate(over="ignore", invalid="ignore"):
        P = np.where(live, np.exp(S - L), 0).astype(q.dtype, copy=False)
        D = np.sum(dout * out, axis=-1, keepdims=True)
        dP = np.matmul(dout, np.swapaxes(v, -1, -2))
        if rate > 0.0:                         # out = (A Z) v: dv = (A Z)^T dout, dA = Z dP
            Z = _dropped(dims, rate, key, q.dtype)
            dP = dP * Z
            dv[...] = np.matmul(np.swapaxes(P * Z, -1, -2), dout)
        else:
            dv[...] = np.matmul(np.swapaxes(P, -1, -2), dout)
        dS = np.where(live, P * (dP - D) * q.dtype.type(s), 0).astype(q.dtype, copy=False)
    dq[...] = np.matmul(dS, k)
    dk[...] = np.matmul(np.swapaxes(dS, -1, -2), q)
