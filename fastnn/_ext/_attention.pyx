# Scaled dot-product attention of the fast backend, forward and backward, over
# src_c/fnn_attn.c: tiles of queries and keys with an online softmax (scale, causal and key
# padding masks fused), so no call holds a (query x key) matrix; see src_c/fnn_attn.h.
#
# Every shape, dtype, layout and overlap is checked (fastnn/_validation.py, shared with the
# NumPy twin) before the GIL is released; the C code trusts them. The scratch the kernels need
# (bounded by the tile sizes, per thread) is a NumPy array made here, so the call allocates
# nothing in C and tracemalloc sees all of its memory.

from cython cimport floating

import numpy as np

from fastnn._validation import check_attention_backward, check_attention_forward

from fastnn._ext.attn cimport (fnn_attn_geom, fnn_attn_threads, fnn_attn_scratch,
                              fnn_attn_forward_f32, fnn_attn_forward_f64,
                              fnn_attn_backward_f32, fnn_attn_backward_f64)


cdef fnn_attn_geom _geometry(tuple dims, object mask, bint causal,
                             const unsigned char[::1] mask_view) except *:
    cdef fnn_attn_geom g
    B, H, Lq, Lk, D, Dv = dims
    # every offset the C code forms stays far below 2**62
    if max(B * H * Lq * max(D, Dv), B * H * Lk * max(D, Dv), B * Lk) >= 2**56:
        raise ValueError(f"attention: sizes too large. Received: {dims}")
    g.pairs, g.heads = B * H, max(H, 1)
    g.lq, g.lk, g.d, g.dv = Lq, Lk, D, Dv
    g.causal = causal
    g.key_mask = &mask_view[0] if mask is not None else NULL
    return g


cdef void _forward(const fnn_attn_geom *g, double scale,
                   const floating[::1] q,      # IN  (B, H, Lq, D)
                   const floating[::1] k,      # IN  (B, H, Lk, D)
                   const floating[::1] v,      # IN  (B, H, Lk, Dv)
                   floating[::1] out,          # OUT (B, H, Lq, Dv)
                   floating[::1] lse,          # OUT (B, H, Lq)
                   floating[::1] scratch,      # OUT nt * fnn_attn_scratch(g, 0)
                   int nt) noexcept:
    with nogil:
        if floating is float:
            fnn_attn_forward_f32(g, <float>scale, &q[0], &k[0], &v[0], &out[0], &lse[0],
                                 &scratch[0], nt)
        else:
            fnn_attn_forward_f64(g, scale, &q[0], &k[0], &v[0], &out[0], &lse[0],
                                 &scratch[0], nt)


cdef void _backward(const fnn_attn_geom *g, double scale,
                    const floating[::1] q,     # IN  (B, H, Lq, D)
                    const floating[::1] k,     # IN  (B, H, Lk, D)
                    const floating[::1] v,     # IN  (B, H, Lk, Dv)
                    const floating[::1] out,   # IN  (B, H, Lq, Dv)
                    const floating[::1] dout,  # IN  (B, H, Lq, Dv)
                    const floating[::1] lse,   # IN  (B, H, Lq)
                    floating[::1] dq,          # OUT (B, H, Lq, D)
                    floating[::1] dk,          # OUT (B, H, Lk, D)
                    floating[::1] dv,          # OUT (B, H, Lk, Dv)
                    floating[::1] scratch,     # OUT nt * fnn_attn_scratch(g, 1)
                    int nt) noexcept:
    with nogil:
        if floating is float:
            fnn_attn_backward_f32(g, <float>scale, &q[0], &k[0], &v[0], &out[0], &dout[0],
                                  &lse[0], &dq[0], &dk[0], &dv[0], &scratch[0], nt)
        else:
            fnn_attn_backward_f64(g, scale, &q[0], &k[0], &v[0], &out[0], &dout[0], &lse[0],
                                  &dq[0], &dk[0], &dv[0], &scratch[0], nt)


cdef const unsigned char[::1] _mask_view(object mask):
    return mask.reshape(-1) if mask is not None else np.ones(1, np.uint8)


def attention_forward(q, k, v, key_mask, causal, scale, out, lse):
    """out := softmax(scale q k^T, masked) v per (batch, head); lse := its row log-sum-exp"""
    dims, mask, s, c = check_attention_forward(q, k, v, key_mask, causal, scale, out, lse)
    cdef const unsigned char[::1] mv = _mask_view(mask)
    cdef fnn_attn_geom g = _geometry(dims, mask, c, mv)
    cdef int nt
    if g.pairs == 0:
        return
    nt = fnn_attn_threads(&g, 0)
    scratch = np.empty(nt * fnn_attn_scratch(&g, 0), dtype=q.dtype)
    if q.dtype == np.float32:
        _forward[float](&g, s, q.reshape(-1), k.reshape(-1), v.reshape(-1), out.reshape(-1),
                        lse.reshape(-1), scratch, nt)
    else:
        _forward[double](&g, s, q.reshape(-1), k.reshape(-1), v.reshape(-1), out.reshape(-1),
                         lse.reshape(-1), scratch, nt)


def attention_backward(q, k, v, out, dout, lse, key_mask, causal, scale, dq, dk, dv):
    """dq, dk, dv := the gradients of attention_forward's out (given dout), from its lse"""
    dims, mask, s, c = check_attention_backward(q, k, v, out, dout, lse, key_mask, causal,
                                                scale, dq, dk, dv)
    cdef const unsigned char[::1] mv = _mask_view(mask)
    cdef fnn_attn_geom g = _geometry(dims, mask, c, mv)
    cdef int nt
    if g.pairs == 0:
        return
    nt = fnn_attn_threads(&g, 1)
    scratch = np.empty(nt * fnn_attn_scratch(&g, 1), dtype=q.dtype)
    if q.dtype == np.float32:
        _backward[float](&g, s, q.reshape(-1), k.reshape(-1), v.reshape(-1), out.reshape(-1),
                         dout.reshape(-1), lse.reshape(-1), dq.reshape(-1), dk.reshape(-1),
                         dv.reshape(-1), scratch, nt)
    else:
        _backward[double](&g, s, q.reshape(-1), k.reshape(-1), v.reshape(-1), out.reshape(-1),
                          dout.reshape(-1), lse.reshape(-1), dq.reshape(-1), dk.reshape(-1),
                          dv.reshape(-1), scratch, nt)
