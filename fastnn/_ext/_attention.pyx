# Scaled dot-product attention of the fast backend, forward and backward, over
# src_c/fnn_attn.c: tiles of queries and keys with an online softmax (scale, causal, key
# padding or (query, key) masks fused), so no call holds a (query x key) score matrix; see
# src_c/fnn_attn.h.
#
# q, k, v, out, dout, dq, dk, dv may be views whose rows are contiguous (a layer passes its
# projection's heads in place): the C code takes each one's strides as its layout.
# Every shape, dtype, layout and overlap is checked (fastnn/_validation.py, shared with the
# NumPy twin) before the GIL is released; the C code trusts them. The arguments a layer passes
# on every call (float arrays of one native dtype, consistent shapes, rows contiguous, outputs
# writeable and apart) are first recognised here in C (_accepted): ~80 us of Python checks per
# training step of a small Transformer block; anything else goes through the Python checks,
# which accept it too or raise their error. The scratch the kernels need (bounded by the tile
# sizes, per thread) is a NumPy array made here, so the call allocates nothing in C and
# tracemalloc sees all of its memory.

cimport numpy as cnp

import numpy as np

from fastnn._validation import (_attention_scale, _overlap, check_attention_backward,
                                check_attention_dropout, check_attention_forward)

from fastnn._ext.attn cimport (fnn_attn_geom, fnn_attn_layout, fnn_attn_threads,
                              fnn_attn_scratch, fnn_attn_scratch_shared, fnn_attn_contiguous,
                              fnn_attn_set_small,
                              fnn_attn_forward_f32, fnn_attn_forward_f64,
                              fnn_attn_backward_f32, fnn_attn_backward_f64)

cnp.import_array()

cdef object _F32 = np.dtype(np.float32), _F64 = np.dtype(np.float64)


# ------------------------------------------------------------------ the common case, in C
# Each test below is one of fastnn/_validation.py's (_attention_array, _rows_contiguous,
# _rows_apart, _attention_rest), made stricter where that is simpler (an ndarray subclass, a
# dtype that is not the native singleton, a size-0 array, a key mask view: the Python checks
# decide); none accepts what they would refuse.

cdef bint _shaped(cnp.ndarray a, int ndim, Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t d2,
                  Py_ssize_t d3):
    """a has ndim axes of these lengths (-1: any)."""
    cdef cnp.npy_intp *shape = cnp.PyArray_DIMS(a)
    cdef Py_ssize_t want[4]
    cdef int i
    want[0], want[1], want[2], want[3] = d0, d1, d2, d3
    if cnp.PyArray_NDIM(a) != ndim:
        return False
    for i in range(ndim):
        if want[i] >= 0 and shape[i] != want[i]:
            return False
    return True


cdef bint _rows_ok(cnp.ndarray a, bint written):
    """C-contiguous, or rows contiguous with no negative stride (_rows_contiguous) and, when
    written, elements apart (_rows_apart); a 4-axis array of no zero length."""
    cdef cnp.npy_intp *shape = cnp.PyArray_DIMS(a)
    cdef cnp.npy_intp *stride = cnp.PyArray_STRIDES(a)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(a), extent, ts, tz
    cdef Py_ssize_t st[3]
    cdef Py_ssize_t sz[3]
    cdef int i, j, n = 0
    if cnp.PyArray_IS_C_CONTIGUOUS(a):
        return True
    for i in range(4):
        if shape[i] > 1 and stride[i] < 0:
            return False
    if shape[3] > 1 and stride[3] != item:
        return False
    if not written:
        return True
    extent = shape[3] * item
    for i in range(3):                  # the outer axes longer than 1, by increasing stride
        if shape[i] > 1:
            st[n], sz[n] = stride[i], shape[i]
            j = n
            while j > 0 and st[j - 1] > st[j]:
                ts, tz = st[j - 1], sz[j - 1]
                st[j - 1], sz[j - 1] = st[j], sz[j]
                st[j], sz[j] = ts, tz
                j -= 1
            n += 1
    for i in range(n):
        if st[i] < extent:
            return False
        extent = st[i] * (sz[i] - 1) + extent
    return True


cdef bint _array_ok(object a, object dtype, bint written):
    """An ndarray (not a subclass) of this native float dtype, writeable when written."""
    if type(a) is not np.ndarray or (<cnp.ndarray>a).dtype is not dtype:
        return False
    return not written or cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a)


cdef void _extent(cnp.ndarray a, char **lo, char **hi):
    """The bytes [lo, hi) a spans (no negative stride along an axis longer than 1)."""
    cdef cnp.npy_intp *shape = cnp.PyArray_DIMS(a)
    cdef cnp.npy_intp *stride = cnp.PyArray_STRIDES(a)
    cdef char *p = <char *>cnp.PyArray_DATA(a)
    cdef Py_ssize_t span = cnp.PyArray_ITEMSIZE(a)
    cdef int i
    for i in range(cnp.PyArray_NDIM(a)):
        if shape[i] > 1:
            span += (shape[i] - 1) * stride[i]
    lo[0], hi[0] = p, p + span


cdef bint _apart(list outputs, list inputs):
    """No output shares an element with an input or a later output: disjoint byte spans, or
    else _overlap's answer (a layer's heads side by side in one buffer)."""
    cdef char *alo
    cdef char *ahi
    cdef char *blo
    cdef char *bhi
    cdef Py_ssize_t i
    for i, o in enumerate(outputs):
        _extent(<cnp.ndarray>o, &alo, &ahi)
        for x in inputs + outputs[i + 1:]:
            _extent(<cnp.ndarray>x, &blo, &bhi)
            if alo < bhi and blo < ahi and _overlap(o, x):
                return False
    return True


cdef object _mask_ok(object key_mask, Py_ssize_t B, Py_ssize_t Lq, Py_ssize_t Lk):
    """The mask as uint8 when it is a C-contiguous bool or uint8 ndarray of (B, Lk) or
    (B, Lq, Lk), else False (None: no mask)."""
    if key_mask is None:
        return None
    if type(key_mask) is not np.ndarray:
        return False
    m = <cnp.ndarray>key_mask
    if (cnp.PyArray_TYPE(m) != cnp.NPY_BOOL and cnp.PyArray_TYPE(m) != cnp.NPY_UINT8) or \
            not (_shaped(m, 2, B, Lk, -1, -1) or _shaped(m, 3, B, Lq, Lk, -1)) or \
            not cnp.PyArray_IS_C_CONTIGUOUS(m):
        return False
    return m.view(np.uint8)


cdef object _accepted(object q, object k, object v, object key_mask, object causal, object scale,
                      list more):
    """check_attention_forward's / _backward's result, when the arguments are the common case
    (more: (array, shape, written) for the arrays after q, k, v, shape "lse" or two letters:
    q or k for Lq or Lk rows, d or v for D or Dv columns); None otherwise."""
    cdef cnp.ndarray a
    cdef Py_ssize_t B, H, Lq, Lk, D, Dv
    if type(q) is not np.ndarray:
        return None
    dtype = (<cnp.ndarray>q).dtype
    if dtype is not _F32 and dtype is not _F64:
        return None
    if not _array_ok(k, dtype, False) or not _array_ok(v, dtype, False):
        return None
    a = <cnp.ndarray>q
    if cnp.PyArray_NDIM(a) != 4 or cnp.PyArray_NDIM(<cnp.ndarray>k) != 4 \
            or cnp.PyArray_NDIM(<cnp.ndarray>v) != 4:
        return None
    B, H, Lq, D = a.shape[0], a.shape[1], a.shape[2], a.shape[3]
    Lk, Dv = (<cnp.ndarray>k).shape[2], (<cnp.ndarray>v).shape[3]
    if min(B, H, Lq, Lk, D, Dv) < 1:
        return None
    if not (_shaped(<cnp.ndarray>k, 4, B, H, Lk, D) and _shaped(<cnp.ndarray>v, 4, B, H, Lk, Dv)
            and _rows_ok(a, False) and _rows_ok(<cnp.ndarray>k, False)
            and _rows_ok(<cnp.ndarray>v, False)):
        return None
    outputs, inputs = [], [q, k, v]
    for x, role, written in more:
        if not _array_ok(x, dtype, written):
            return None
        a = <cnp.ndarray>x
        if role == "lse":
            if not _shaped(a, 3, B, H, Lq, -1) or not cnp.PyArray_IS_C_CONTIGUOUS(a):
                return None
        elif not _shaped(a, 4, B, H, Lq if role[0] == "q" else Lk,
                         Dv if role[1] == "v" else D) or not _rows_ok(a, written):
            return None
        (outputs if written else inputs).append(x)
    mask = _mask_ok(key_mask, B, Lq, Lk)
    if mask is False:
        return None
    if key_mask is not None:
        inputs.append(key_mask)
    if not _apart(outputs, inputs):
        return None
    return (B, H, Lq, Lk, D, Dv), mask, _attention_scale(scale, D, dtype), bool(causal)


cdef fnn_attn_geom _geometry(tuple dims, object mask, bint causal) except *:
    """The geometry of checked arguments (mask: None or a C-contiguous uint8 array of (B, Lk)
    or (B, Lq, Lk), which the caller keeps alive through the kernel's call)."""
    cdef fnn_attn_geom g
    B, H, Lq, Lk, D, Dv = dims
    # every offset the C code forms stays far below 2**62
    full = mask is not None and (<cnp.ndarray>mask).ndim == 3
    if max(B * H * Lq * max(D, Dv), B * H * Lk * max(D, Dv), B * Lk,
           B * Lq * Lk if full else 0) >= 2**56:
        raise ValueError(f"attention: sizes too large. Received: {dims}")
    g.pairs, g.heads = B * H, max(H, 1)
    g.lq, g.lk, g.d, g.dv = Lq, Lk, D, Dv
    g.causal = causal
    g.key_mask = NULL
    fnn_attn_contiguous(&g)
    if full:
        g.qk_mask = <const unsigned char *>cnp.PyArray_DATA(<cnp.ndarray>mask)
    elif mask is not None:
        g.key_mask = <const unsigned char *>cnp.PyArray_DATA(<cnp.ndarray>mask)
    return g


cdef fnn_attn_layout _layout(object a):
    """The layout of a checked (B, H, L, W) array whose rows are contiguous: its strides in
    values."""
    cdef fnn_attn_layout o
    cdef cnp.npy_intp *stride = cnp.PyArray_STRIDES(<cnp.ndarray>a)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(<cnp.ndarray>a)
    o.bs, o.hs, o.rs = stride[0] // item, stride[1] // item, stride[2] // item
    return o


cdef inline void *_data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef void _forward(const fnn_attn_geom *g, double scale, object q, object k, object v,
                   object out, object lse, object scratch, int nt):
    """The kernel on checked arrays (their data pointers; the layouts are in g)."""
    cdef void *pq = _data(q)
    cdef void *pk = _data(k)
    cdef void *pv = _data(v)
    cdef void *po = _data(out)
    cdef void *pl = _data(lse)
    cdef void *ps = _data(scratch)
    cdef bint single = (<cnp.ndarray>q).dtype is _F32
    with nogil:
        if single:
            fnn_attn_forward_f32(g, <float>scale, <const float *>pq, <const float *>pk,
                                 <const float *>pv, <float *>po, <float *>pl, <float *>ps, nt)
        else:
            fnn_attn_forward_f64(g, scale, <const double *>pq, <const double *>pk,
                                 <const double *>pv, <double *>po, <double *>pl, <double *>ps,
                                 nt)


cdef void _backward(const fnn_attn_geom *g, double scale, object q, object k, object v,
                    object out, object dout, object lse, object dq, object dk, object dv,
                    object scratch, int nt):
    """The kernel on checked arrays (their data pointers; the layouts are in g)."""
    cdef void *pq = _data(q)
    cdef void *pk = _data(k)
    cdef void *pv = _data(v)
    cdef void *po = _data(out)
    cdef void *pdo = _data(dout)
    cdef void *pl = _data(lse)
    cdef void *pdq = _data(dq)
    cdef void *pdk = _data(dk)
    cdef void *pdv = _data(dv)
    cdef void *ps = _data(scratch)
    cdef bint single = (<cnp.ndarray>q).dtype is _F32
    with nogil:
        if single:
            fnn_attn_backward_f32(g, <float>scale, <const float *>pq, <const float *>pk,
                                  <const float *>pv, <const float *>po, <const float *>pdo,
                                  <const float *>pl, <float *>pdq, <float *>pdk, <float *>pdv,
                                  <float *>ps, nt)
        else:
            fnn_attn_backward_f64(g, scale, <const double *>pq, <const double *>pk,
                                  <const double *>pv, <const double *>po, <const double *>pdo,
                                  <const double *>pl, <double *>pdq, <double *>pdk,
                                  <double *>pdv, <double *>ps, nt)


def _set_small(bint on):
    """Whether small float pairs take the register kernels (src_c/fnn_attn_small_avx2.h; the
    default) or the tiled path: for tests, which compare the two. Not thread-safe."""
    fnn_attn_set_small(on)


def attention_forward(q, k, v, key_mask, causal, scale, out, lse, dropout=0.0, dropout_key=0):
    """out := (softmax(scale q k^T, masked) * Z) v per (batch, head); lse := the row
    log-sum-exp of the scores (Z: dropout's keep / (1 - dropout), drawn from dropout_key)"""
    rate, key = check_attention_dropout(dropout, dropout_key)
    checked = _accepted(q, k, v, key_mask, causal, scale, [(out, "qv", True), (lse, "lse", True)])
    if checked is None:
        checked = check_attention_forward(q, k, v, key_mask, causal, scale, out, lse)
    dims, mask, s, c = checked
    cdef fnn_attn_geom g = _geometry(dims, mask, c)
    cdef int nt
    if g.pairs == 0:
        return
    g.drop_rate, g.drop_key = rate, key
    g.q, g.k, g.v, g.out = _layout(q), _layout(k), _layout(v), _layout(out)
    nt = fnn_attn_threads(&g, 0)
    scratch = np.empty(nt * fnn_attn_scratch(&g, 0), dtype=q.dtype)
    _forward(&g, s, q, k, v, out, lse, scratch, nt)


def attention_backward(q, k, v, out, dout, lse, key_mask, causal, scale, dq, dk, dv,
                       dropout=0.0, dropout_key=0):
    """dq, dk, dv := the gradients of attention_forward's out (given dout), from its lse (and
    the forward's dropout and dropout_key)"""
    rate, key = check_attention_dropout(dropout, dropout_key)
    checked = _accepted(q, k, v, key_mask, causal, scale,
                        [(out, "qv", False), (dout, "qv", False), (lse, "lse", False),
                         (dq, "qd", True), (dk, "kd", True), (dv, "kv", True)])
    if checked is None:
        checked = check_attention_backward(q, k, v, out, dout, lse, key_mask, causal, scale,
                                           dq, dk, dv)
    dims, mask, s, c = checked
    cdef fnn_attn_geom g = _geometry(dims, mask, c)
    cdef int nt
    if g.pairs == 0:
        return
    g.drop_rate, g.drop_key = rate, key
    g.q, g.k, g.v, g.out = _layout(q), _layout(k), _layout(v), _layout(out)
    g.dout = _layout(dout)
    g.dq, g.dk, g.dv_ = _layout(dq), _layout(dk), _layout(dv)
    nt = fnn_attn_threads(&g, 1)
    # the threads' scratch, then the key chunks' partial dq sums
    scratch = np.empty(nt * fnn_attn_scratch(&g, 1) + fnn_attn_scratch_shared(&g),
                       dtype=q.dtype)
    _backward(&g, s, q, k, v, out, dout, lse, dq, dk, dv, scratch, nt)
