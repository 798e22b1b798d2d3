# Scaled dot-product attention of the fast backend, forward and backward, over
# src_c/fnn_attn.c: tiles of queries and keys with an online softmax (scale, causal and key
# padding masks fused), so no call holds a (query x key) matrix; see src_c/fnn_attn.h.
#
# q, k, v, out, dout, dq, dk, dv may be views whose rows are contiguous (a layer passes its
# projection's heads in place): the C code takes each one's strides as its layout.
# Every shape, dtype, layout and overlap is checked (fastnn/_validation.py, shared with the
# NumPy twin) before the GIL is released; the C code trusts them. The scratch the kernels need
# (bounded by the tile sizes, per thread) is a NumPy array made here, so the call allocates
# nothing in C and tracemalloc sees all of its memory.

from cython cimport floating

import numpy as np

from fastnn._validation import check_attention_backward, check_attention_forward

from fastnn._ext.attn cimport (fnn_attn_geom, fnn_attn_layout, fnn_attn_threads,
                              fnn_attn_scratch, fnn_attn_contiguous, fnn_attn_forward_f32, fnn_attn_forward_f64,
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
    fnn_attn_contiguous(&g)
    return g


cdef fnn_attn_layout _layout(object a):
    """The layout of a (B, H, L, W) array whose rows are contiguous (checked by the caller,
    fastnn/_validation.py: the memoryviews below are declared strided in every axis, as a view
    contiguous in its last axis only is not C-contiguous to NumPy's buffer export): its strides
    in values."""
    cdef fnn_attn_layout o
    cdef Py_ssize_t item = a.itemsize
    o.bs, o.hs, o.rs = a.strides[0] // item, a.strides[1] // item, a.strides[2] // item
    return o


cdef void _forward(const fnn_attn_geom *g, double scale,
                   const floating[:, :, :, :] q,   # IN  (B, H, Lq, D)
                   const floating[:, :, :, :] k,   # IN  (B, H, Lk, D)
                   const floating[:, :, :, :] v,   # IN  (B, H, Lk, Dv)
                   floating[:, :, :, :] out,       # OUT (B, H, Lq, Dv)
                   floating[::1] lse,                # OUT (B, H, Lq)
                   floating[::1] scratch,            # OUT nt * fnn_attn_scratch(g, 0)
                   int nt) noexcept:
    with nogil:
        if floating is float:
            fnn_attn_forward_f32(g, <float>scale, &q[0, 0, 0, 0], &k[0, 0, 0, 0],
                                 &v[0, 0, 0, 0], &out[0, 0, 0, 0], &lse[0], &scratch[0], nt)
        else:
            fnn_attn_forward_f64(g, scale, &q[0, 0, 0, 0], &k[0, 0, 0, 0], &v[0, 0, 0, 0],
                                 &out[0, 0, 0, 0], &lse[0], &scratch[0], nt)


cdef void _backward(const fnn_attn_geom *g, double scale,
                    const floating[:, :, :, :] q,     # IN  (B, H, Lq, D)
                    const floating[:, :, :, :] k,     # IN  (B, H, Lk, D)
                    const floating[:, :, :, :] v,     # IN  (B, H, Lk, Dv)
                    const floating[:, :, :, :] out,   # IN  (B, H, Lq, Dv)
                    const floating[:, :, :, :] dout,  # IN  (B, H, Lq, Dv)
                    const floating[::1] lse,            # IN  (B, H, Lq)
                    floating[:, :, :, :] dq,          # OUT (B, H, Lq, D)
                    floating[:, :, :, :] dk,          # OUT (B, H, Lk, D)
                    floating[:, :, :, :] dv,          # OUT (B, H, Lk, Dv)
                    floating[::1] scratch,              # OUT nt * fnn_attn_scratch(g, 1)
                    int nt) noexcept:
    with nogil:
        if floating is float:
            fnn_attn_backward_f32(g, <float>scale, &q[0, 0, 0, 0], &k[0, 0, 0, 0],
                                  &v[0, 0, 0, 0], &out[0, 0, 0, 0], &dout[0, 0, 0, 0], &lse[0],
                                  &dq[0, 0, 0, 0], &dk[0, 0, 0, 0], &dv[0, 0, 0, 0],
                                  &scratch[0], nt)
        else:
            fnn_attn_backward_f64(g, scale, &q[0, 0, 0, 0], &k[0, 0, 0, 0], &v[0, 0, 0, 0],
                                  &out[0, 0, 0, 0], &dout[0, 0, 0, 0], &lse[0],
                                  &dq[0, 0, 0, 0], &dk[0, 0, 0, 0], &dv[0, 0, 0, 0],
                                  &scratch[0], nt)


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
    g.q, g.k, g.v, g.out = _layout(q), _layout(k), _layout(v), _layout(out)
    nt = fnn_attn_threads(&g, 0)
    scratch = np.empty(nt * fnn_attn_scratch(&g, 0), dtype=q.dtype)
    if q.dtype == np.float32:
        _forward[float](&g, s, q, k, v, out, lse.reshape(-1), scratch, nt)
    else:
        _forward[double](&g, s, q, k, v, out, lse.reshape(-1), scratch, nt)


def attention_backward(q, k, v, out, dout, lse, key_mask, causal, scale, dq, dk, dv):
    """dq, dk, dv := the gradients of attention_forward's out (given dout), from its lse"""
    dims, mask, s, c = check_attention_backward(q, k, v, out, dout, lse, key_mask, causal,
                                                scale, dq, dk, dv)
    cdef const unsigned char[::1] mv = _mask_view(mask)
    cdef fnn_attn_geom g = _geometry(dims, mask, c, mv)
    cdef int nt
    if g.pairs == 0:
        return
    g.q, g.k, g.v, g.out = _layout(q), _layout(k), _layout(v), _layout(out)
    g.dout = _layout(dout)
    g.dq, g.dk, g.dv_ = _layout(dq), _layout(dk), _layout(dv)
    nt = fnn_attn_threads(&g, 1)
    scratch = np.empty(nt * fnn_attn_scratch(&g, 1), dtype=q.dtype)
    if q.dtype == np.float32:
        _backward[float](&g, s, q, k, v, out, dout, lse.reshape(-1), dq, dk, dv, scratch, nt)
    else:
        _backward[double](&g, s, q, k, v, out, dout, lse.reshape(-1), dq, dk, dv, scratch, nt)
