"""The NumPy twins of the attention kernels (fastnn/_ext/_attention.pyx): the same functions and
signatures, written as the textbook, materialising computation (the whole (Lq, Lk) score matrix
of every head at once), which the tiled compiled kernels are tested against.

    S = scale q k^T (masked entries -inf),  A = softmax_rows(S),  out = A v,
    lse = logsumexp_rows(S)
    backward: D = rowsum(dout * out), dv = A^T dout, dA = dout v^T, dS = A (dA - D) scale,
              dq = dS k, dk = dS^T q

With ``causal`` query i sees keys j <= i (PyTorch's is_causal, top-left aligned); key_mask
(B, Lk), True = take part. A query row that sees no key gets out = 0, lse = -inf and zero
gradients; a score that overflows to -inf counts as masked (PyTorch's safe softmax). A row with
a score of +inf (overflow) or NaN gets out = NaN and lse = NaN, as PyTorch gives, and NaN
gradients, except through scores of -inf (no gradient there).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn._validation import check_attention_backward, check_attention_forward


def _visible(dims: tuple, mask: Any, causal: bool) -> Any:
    """(B, 1 or H, Lq, Lk) booleans: may query i look at key j?"""
    B, H, Lq, Lk, _, _ = dims
    vis = np.ones((B, 1, Lq, Lk), dtype=bool)
    if causal:
        vis &= np.tril(np.ones((Lq, Lk), dtype=bool))
    if mask is not None:
        vis &= mask.astype(bool)[:, None, None, :]
    return vis


def _scores(q: Any, k: Any, vis: Any, scale: float) -> Any:
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * q.dtype.type(scale)
    return np.where(vis, s, -np.inf).astype(q.dtype, copy=False)


def attention_forward(q: Any, k: Any, v: Any, key_mask: Any, causal: Any, scale: Any, out: Any,
                      lse: Any) -> None:
    """out := softmax(scale q k^T, masked) v per (batch, head); lse := its row log-sum-exp"""
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
    out[...] = np.where(seen, np.matmul(P, v) / safe, lost)
    with np.errstate(divide="ignore"):
        lse[...] = np.where(seen, m + np.log(safe), np.where(blind, -np.inf, np.nan))[..., 0]


def attention_backward(q: Any, k: Any, v: Any, out: Any, dout: Any, lse: Any, key_mask: Any,
                       causal: Any, scale: Any, dq: Any, dk: Any, dv: Any) -> None:
    """dq, dk, dv := the gradients of attention_forward's out (given dout), from its lse"""
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
        dv[...] = np.matmul(np.swapaxes(P, -1, -2), dout)
        dP = np.matmul(dout, np.swapaxes(v, -1, -2))
        dS = np.where(live, P * (dP - D) * q.dtype.type(s), 0).astype(q.dtype, copy=False)
    dq[...] = np.matmul(dS, k)
    dk[...] = np.matmul(np.swapaxes(dS, -1, -2), q)
