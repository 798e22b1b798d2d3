# Kernels of Keras' Dot, UnitNormalization, Attention (Luong) and AdditiveAttention (Bahdanau)
# layers on the fast backend (fastnn/layers/dot.py, fastnn/layers/score_attention.py); their NumPy
# twins are fastnn/backends/numpy_keras_attention.py.
#
# Products run on the C GEMM (src_c/fnn_gemm.h), which never splits k across threads, so every
# output element is summed in one order at any thread count. The row kernels give each row to one
# thread; the additive scores' weight gradients are summed per sample (one thread each) and the
# samples' parts then added in sample order by the caller: bitwise the same at any thread count.
# The one-call kernels (dot_attention_*, cosine_*) give each thread whole samples (each sample
# serial), or, with fewer samples than threads, run the samples in turn on the threaded GEMM.
# The shapes are checked by the public boundary (the layers); the checks here only keep a wrong
# call from reading out of bounds.

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, fabs, sqrt, tanh

from fastnn._ext.attn cimport fnn_attn_geom, fnn_attn_keep


cdef extern from "fnn_vexp.h":
    # float exp without a libm call, within 2 ulp (src_c/fnn_vexp.h): its loops vectorise
    float fnn_expf(float x) noexcept nogil
cdef extern from "fnn_vec.h":
    # rows' softmax, each row on its own (y may be z): the bits do not depend on the flavour
    void fnn_softmax_rows_f32(const float *z, float *y, Py_ssize_t n, Py_ssize_t m) noexcept nogil
    void fnn_softmax_rows_f64(const double *z, double *y, Py_ssize_t n,
                              Py_ssize_t m) noexcept nogil

cdef extern from *:
    """
    /* sum_j a[j] b[j] in double over eight lanes (lane l takes j = l, l + 8, ...), the lanes
     * added in a fixed tree, then the tail in order: one order whatever the thread or flavour,
     * and loops the compiler keeps in vector registers (a serial double sum is latency bound) */
    #define FNN_KA_DOT(NAME, FT)                                                              \
    static inline double NAME(const FT *a, const FT *b, Py_ssize_t n)                        \
    {                                                                                         \
        double s[8] = {0, 0, 0, 0, 0, 0, 0, 0}, t;                                            \
        Py_ssize_t j = 0;                                                                     \
        int l;                                                                                \
        for (; j + 8 <= n; j += 8)                                                            \
            for (l = 0; l < 8; l++)                                                           \
                s[l] += (double)a[j + l] * (double)b[j + l];                                  \
        t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));                \
        for (; j < n; j++)                                                                    \
            t += (double)a[j] * (double)b[j];                                                 \
        return t;                                                                             \
    }
    FNN_KA_DOT(fnn_ka_dot_f32, float)
    FNN_KA_DOT(fnn_ka_dot_f64, double)
    """
    double fnn_ka_dot_f32(const float *a, const float *b, Py_ssize_t n) noexcept nogil
    double fnn_ka_dot_f64(const double *a, const double *b, Py_ssize_t n) noexcept nogil

from fastnn._ext._parallel cimport fnn_max_threads, threads_for, fnn_ftz_enter, fnn_ftz_leave
from fastnn._ext.gemm cimport (fnn_sgemm, fnn_dgemm, fnn_epilogue_f32, fnn_epilogue_f64,
                               fnn_par_min_work, FNN_ACT_LINEAR)

import numpy as np


cdef inline void _gemm1(bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        floating alpha, const floating *A, Py_ssize_t lda, const floating *B,
                        Py_ssize_t ldb, floating beta, floating *C, Py_ssize_t ldc,
                        double par_min) noexcept nogil:
    """C := alpha op(A) op(B) + beta C; threads from par_min multiply-adds (0: the default)."""
    cdef fnn_epilogue_f32 e32
    cdef fnn_epilogue_f64 e64
    if floating is float:
        e32.bias, e32.act, e32.param, e32.amax = NULL, FNN_ACT_LINEAR, 0, NULL
        e32.min_parallel_work = par_min
        fnn_sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, &e32)
    else:
        e64.bias, e64.act, e64.param, e64.amax = NULL, FNN_ACT_LINEAR, 0, NULL
        e64.min_parallel_work = par_min
        fnn_dgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, &e64)


def _bad(name):
    raise ValueError(f"fastnn kernel {name} called with inconsistent shapes")


def batched_matmul(const floating[:, :, ::1] a,     # IN  (B, m, k), or (B, k, m) with trans_a
                   const floating[:, :, ::1] b,     # IN  (B, k, n), or (B, n, k) with trans_b
                   floating[:, :, ::1] out,         # OUT (B, m, n) (also IN when beta != 0)
                   bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """out[i] := alpha op(a[i]) @ op(b[i]) + beta out[i] for each i of the batch"""
    cdef Py_ssize_t B = a.shape[0], i, nt
    cdef Py_ssize_t m = a.shape[2] if trans_a else a.shape[1]
    cdef Py_ssize_t k = a.shape[1] if trans_a else a.shape[2]
    cdef Py_ssize_t n = b.shape[1] if trans_b else b.shape[2]
    cdef Py_ssize_t sa = a.shape[1] * a.shape[2], sb = b.shape[1] * b.shape[2], so = m * n
    cdef double work = <double>m * n * k
    cdef unsigned int csr, csr_t
    if (b.shape[0] != B or out.shape[0] != B or (b.shape[2] if trans_b else b.shape[1]) != k
            or out.shape[1] != m or out.shape[2] != n):
        _bad("batched_matmul")
    if B == 0 or m == 0 or n == 0:
        return
    if k == 0:                              # an empty sum: out := beta out (0 when beta is)
        arr = np.asarray(out)
        if beta == 0:
            arr[...] = 0
        else:
            arr *= beta
        return
    with nogil:
        csr = fnn_ftz_enter()
        if work >= fnn_par_min_work():      # big products: the GEMM threads each one
            for i in range(B):
                _gemm1(trans_a, trans_b, m, n, k, <floating>alpha, &a[0, 0, 0] + i * sa,
                       a.shape[2], &b[0, 0, 0] + i * sb, b.shape[2], <floating>beta,
                       &out[0, 0, 0] + i * so, n, 0)
        else:                               # small ones: a product per thread, each serial
            nt = threads_for(<Py_ssize_t>(B * work))
            for i in prange(B, schedule="static", num_threads=nt):
                csr_t = fnn_ftz_enter()     # each thread in the GEMM's float mode
                _gemm1(trans_a, trans_b, m, n, k, <floating>alpha, &a[0, 0, 0] + i * sa,
                       a.shape[2], &b[0, 0, 0] + i * sb, b.shape[2], <floating>beta,
                       &out[0, 0, 0] + i * so, n, 1e300)
                fnn_ftz_leave(csr_t)
        fnn_ftz_leave(csr)


def unit_norm_forward(const floating[:, ::1] x,     # IN  (R, C)
                      double epsilon,
                      floating[:, ::1] y,           # OUT (R, C)
                      floating[::1] inv):           # OUT (R,)
    """inv[r] := min(1 / sqrt(sum_c x[r, c]^2), 1 / epsilon);  y[r] := x[r] * inv[r]"""
    cdef Py_ssize_t R = x.shape[0], C = x.shape[1], r, c
    cdef double s, cap = 1.0 / epsilon, v
    if y.shape[0] != R or y.shape[1] != C or inv.shape[0] != R:
        _bad("unit_norm_forward")
    for r in prange(R, nogil=True, schedule="static", num_threads=threads_for(R * C)):
        s = 0                                       # the sum in double, in column order
        for c in range(C):
            s = s + <double>x[r, c] * x[r, c]
        v = 1.0 / sqrt(s)                           # s = 0: inf, then the cap (Keras' rule)
        if not (v <= cap):
            v = cap if s == s else v
        inv[r] = <floating>v
        for c in range(C):
            y[r, c] = x[r, c] * inv[r]


def unit_norm_backward(const floating[:, ::1] y,    # IN  (R, C) the forward's output
                       const floating[::1] inv,     # IN  (R,)
                       double epsilon,
                       const floating[:, ::1] dy,   # IN  (R, C)
                       floating[:, ::1] dx):        # OUT (R, C)
    """dx[r] := inv[r] (dy[r] - y[r] <dy[r], y[r]>), or inv[r] dy[r] where the cap held"""
    cdef Py_ssize_t R = y.shape[0], C = y.shape[1], r, c
    cdef double s, cap = 1.0 / epsilon
    if (inv.shape[0] != R or dy.shape[0] != R or dy.shape[1] != C or dx.shape[0] != R
            or dx.shape[1] != C):
        _bad("unit_norm_backward")
    for r in prange(R, nogil=True, schedule="static", num_threads=threads_for(R * C)):
        s = 0
        if inv[r] != <floating>cap:                 # the norm's own gradient (not clamped)
            for c in range(C):
                s = s + <double>dy[r, c] * y[r, c]
        for c in range(C):
            dx[r, c] = <floating>(inv[r] * (dy[r, c] - s * y[r, c]))


def masked_softmax(const floating[:, :, ::1] s,     # IN  (B, Tq, Tv) scores
                   const unsigned char[:, ::1] vmask,   # IN  (B, Tv) 1 = take part; or None
                   bint causal,
                   floating[:, :, ::1] out):        # OUT (B, Tq, Tv)
    """out[b, i] := softmax_j(s[b, i, j] - 1e9 [where key j is masked for query i])  (Keras)"""
    cdef Py_ssize_t B = s.shape[0], Tq = s.shape[1], Tv = s.shape[2], row, b, i, j
    cdef bint has_mask = vmask is not None
    cdef floating big = <floating>1e9, m, t
    cdef double total
    if out.shape[0] != B or out.shape[1] != Tq or out.shape[2] != Tv or (
            has_mask and (vmask.shape[0] != B or vmask.shape[1] != Tv)):
        _bad("masked_softmax")
    if Tv == 0:
        return
    for row in prange(B * Tq, nogil=True, schedule="static",
                      num_threads=threads_for(B * Tq * Tv)):
        b = row // Tq
        i = row - b * Tq
        for j in range(Tv):                         # the masked scores, then their maximum
            t = s[b, i, j]
            if (has_mask and vmask[b, j] == 0) or (causal and j > i):
                t = t - big
            out[b, i, j] = t
        m = out[b, i, 0]
        for j in range(1, Tv):
            if out[b, i, j] > m:
                m = out[b, i, j]
        for j in range(Tv):                         # a loop of its own: it vectorises
            if floating is float:
                out[b, i, j] = fnn_expf(out[b, i, j] - m)
            else:
                out[b, i, j] = exp(out[b, i, j] - m)
        total = 0
        for j in range(Tv):
            total = total + out[b, i, j]
        for j in range(Tv):
            out[b, i, j] = <floating>(out[b, i, j] / total)


def weights_dropout(const floating[:, :, ::1] x,     # IN  (B, Tq, Tv)
                    double rate,
                    unsigned long long key,
                    floating[:, :, ::1] out):       # OUT (B, Tq, Tv) (may be x)
    """out[b, i, j] := x[b, i, j] keep(b, i, j) / (1 - rate)  (keep: fnn_attn_keep's draw, the
    one MultiHeadAttention's dropout takes, with one head per sample)"""
    cdef Py_ssize_t B = x.shape[0], Tq = x.shape[1], Tv = x.shape[2], row, b, i, j
    cdef fnn_attn_geom g
    cdef floating scale
    if out.shape[0] != B or out.shape[1] != Tq or out.shape[2] != Tv:
        _bad("weights_dropout")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"weights_dropout: rate must be in [0, 1). Received: rate={rate}")
    if B == 0 or Tq == 0 or Tv == 0:
        return
    g.pairs, g.heads, g.lq, g.lk = B, 1, Tq, Tv
    g.drop_rate, g.drop_key = rate, key
    scale = <floating>(1.0 / (1.0 - rate))
    for row in prange(B * Tq, nogil=True, schedule="static",
                      num_threads=threads_for(B * Tq * Tv * 4)):
        b = row // Tq
        i = row - b * Tq
        for j in range(Tv):
            if fnn_attn_keep(&g, b, i, j):
                out[b, i, j] = x[b, i, j] * scale
            else:
                out[b, i, j] = 0


def softmax_backward(const floating[:, ::1] a,      # IN  (R, C) softmax output
                     const floating[:, ::1] da,     # IN  (R, C)
                     floating[:, ::1] ds):          # OUT (R, C) (may be da)
    """ds[r] := a[r] * (da[r] - <da[r], a[r]>)"""
    cdef Py_ssize_t R = a.shape[0], C = a.shape[1], r, c
    cdef double d
    if da.shape[0] != R or da.shape[1] != C or ds.shape[0] != R or ds.shape[1] != C:
        _bad("softmax_backward")
    for r in prange(R, nogil=True, schedule="static", num_threads=threads_for(R * C)):
        d = 0
        for c in range(C):
            d = d + <double>da[r, c] * a[r, c]
        for c in range(C):
            ds[r, c] = <floating>(a[r, c] * (da[r, c] - d))


# ---------------------------------------------------------------- Attention(score_mode="dot")
# The layer's forward and backward in one call each: every sample's products (the packed GEMM),
# masks, softmax, dropout and row sums run back to back while its (Tq, Tv) matrices sit in cache.
# Threads take whole samples (each sample serial) when there are at least as many samples as
# threads; otherwise the samples run in turn and the GEMM threads each product. Either way every
# value is computed in one order (the GEMM never splits k; rows never depend on other rows):
# bitwise the same at any thread count.

cdef inline bint _is3(const Py_ssize_t *shape, Py_ssize_t a, Py_ssize_t b,
                      Py_ssize_t c) noexcept:
    return shape[0] == a and shape[1] == b and shape[2] == c


cdef inline double _ka_dot(const floating *a, const floating *b, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fnn_ka_dot_f32(a, b, n)
    else:
        return fnn_ka_dot_f64(a, b, n)


cdef void _dot_fwd_sample(Py_ssize_t b, Py_ssize_t Tq, Py_ssize_t Tv, Py_ssize_t D,
                          Py_ssize_t Dv, const floating *q, const floating *k, const floating *v,
                          floating c, bint scaled, const unsigned char *vm, bint causal,
                          const unsigned char *qm, const fnn_attn_geom *g, floating keep_scale,
                          floating *raw, floating *A0, floating *A, floating *y,
                          double par) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef const floating *qb = q + b * Tq * D
    cdef const floating *kb = k + b * Tv * D
    cdef const floating *vb = v + b * Tv * Dv
    cdef floating *rb = raw + b * Tq * Tv
    cdef floating *a0 = A0 + b * Tq * Tv
    cdef floating *ab = A + b * Tq * Tv
    cdef floating *yb = y + b * Tq * Dv
    cdef floating *src = rb
    cdef floating big = <floating>1e9, t
    _gemm1(False, True, Tq, Tv, D, 1, qb, D, kb, D, 0, rb, Tv, par)           # raw = q k^T
    if scaled or vm != NULL or causal:          # S = c raw, lowered by 1e9 where hidden (Keras)
        for i in range(Tq):
            for j in range(Tv):
                t = rb[i * Tv + j]
                if scaled:
                    t = t * c
                if (vm != NULL and vm[b * Tv + j] == 0) or (causal and j > i):
                    t = t - big
                a0[i * Tv + j] = t
        src = a0
    if floating is float:
        fnn_softmax_rows_f32(src, a0, Tq, Tv)
    else:
        fnn_softmax_rows_f64(src, a0, Tq, Tv)
    if g.drop_rate > 0:
        for i in range(Tq):
            for j in range(Tv):
                ab[i * Tv + j] = a0[i * Tv + j] * keep_scale if fnn_attn_keep(g, b, i, j) else 0
    _gemm1(False, False, Tq, Dv, Tv, 1, ab, Tv, vb, Dv, 0, yb, Dv, par)       # y = A v
    if qm != NULL:
        for i in range(Tq):
            if qm[b * Tq + i] == 0:
                for j in range(Dv):
                    yb[i * Dv + j] = 0


def dot_attention_forward(const floating[:, :, ::1] q,       # IN  (B, Tq, D)
                          const floating[:, :, ::1] k,       # IN  (B, Tv, D)
                          const floating[:, :, ::1] v,       # IN  (B, Tv, Dv)
                          double scale, bint scaled,
                          const unsigned char[:, ::1] vmask,   # IN  (B, Tv) or None
                          bint causal,
                          const unsigned char[:, ::1] qmask,   # IN  (B, Tq) or None
                          double rate, unsigned long long key,
                          floating[:, :, ::1] raw,           # OUT (B, Tq, Tv) q k^T (may be A0)
                          floating[:, :, ::1] A0,            # OUT (B, Tq, Tv) the softmax
                          floating[:, :, ::1] A,             # OUT (B, Tq, Tv) A0 dropped, or A0
                          floating[:, :, ::1] y):            # OUT (B, Tq, Dv)
    """Keras' dot-product Attention: raw := q k^T, A0 := masked_softmax(c raw) (c = scale when
    ``scaled``; hidden keys lowered by 1e9), A := weights_dropout(A0) when rate > 0,
    y := A v with the rows of masked queries zeroed. All sizes >= 1."""
    cdef Py_ssize_t B = q.shape[0], Tq = q.shape[1], D = q.shape[2], Tv = k.shape[1]
    cdef Py_ssize_t Dv = v.shape[2], b, nt
    cdef fnn_attn_geom g
    cdef const unsigned char *vm = NULL
    cdef const unsigned char *qm = NULL
    cdef unsigned int csr, csr_t
    cdef floating c = <floating>scale
    cdef floating keep_scale
    if (B < 1 or Tq < 1 or Tv < 1 or D < 1 or Dv < 1 or k.shape[0] != B or k.shape[2] != D
            or v.shape[0] != B or v.shape[1] != Tv):
        _bad("dot_attention_forward")
    if not (_is3(raw.shape, B, Tq, Tv) and _is3(A0.shape, B, Tq, Tv) and _is3(A.shape, B, Tq, Tv)
            and _is3(y.shape, B, Tq, Dv)):
        _bad("dot_attention_forward")
    if vmask is not None:
        if vmask.shape[0] != B or vmask.shape[1] != Tv:
            _bad("dot_attention_forward")
        vm = &vmask[0, 0]
    if qmask is not None:
        if qmask.shape[0] != B or qmask.shape[1] != Tq:
            _bad("dot_attention_forward")
        qm = &qmask[0, 0]
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dot_attention_forward: rate must be in [0, 1). Received: rate={rate}")
    g.pairs, g.heads, g.lq, g.lk = B, 1, Tq, Tv
    g.drop_rate, g.drop_key = rate, key
    keep_scale = <floating>(1.0 / (1.0 - rate))
    nt = threads_for(<Py_ssize_t>(B * Tq * Tv * (D + Dv)))
    with nogil:
        csr = fnn_ftz_enter()
        if nt > 1 and B >= nt:                  # whole samples per thread, each one serial
            for b in prange(B, schedule="static", num_threads=nt):
                csr_t = fnn_ftz_enter()
                _dot_fwd_sample(b, Tq, Tv, D, Dv, &q[0, 0, 0], &k[0, 0, 0], &v[0, 0, 0], c,
                                scaled, vm, causal, qm, &g, keep_scale, &raw[0, 0, 0],
                                &A0[0, 0, 0], &A[0, 0, 0], &y[0, 0, 0], 1e300)
                fnn_ftz_leave(csr_t)
        else:                                   # the samples in turn, the GEMM threads each
            for b in range(B):
                _dot_fwd_sample(b, Tq, Tv, D, Dv, &q[0, 0, 0], &k[0, 0, 0], &v[0, 0, 0], c,
                                scaled, vm, causal, qm, &g, keep_scale, &raw[0, 0, 0],
                                &A0[0, 0, 0], &A[0, 0, 0], &y[0, 0, 0], 0)
        fnn_ftz_leave(csr)


cdef void _dot_bwd_sample(Py_ssize_t b, Py_ssize_t Tq, Py_ssize_t Tv, Py_ssize_t D,
                          Py_ssize_t Dv, const floating *q, const floating *k, const floating *v,
                          floating c, bint scaled, const unsigned char *qm,
                          const fnn_attn_geom *g, floating keep_scale, const floating *raw,
                          const floating *A0, const floating *A, const floating *dy,
                          const floating *dsc, floating *dA, floating *dO, floating *dq,
                          floating *dk, floating *dv, double *parts, double par) noexcept nogil:
    cdef Py_ssize_t i, j, n = Tq * Tv
    cdef const floating *qb = q + b * Tq * D
    cdef const floating *kb = k + b * Tv * D
    cdef const floating *vb = v + b * Tv * Dv
    cdef const floating *a0 = A0 + b * n
    cdef const floating *ab = A + b * n
    cdef const floating *dob = dy + b * Tq * Dv
    cdef floating *da = dA + b * n
    cdef floating *dvb = dv + b * Tv * Dv
    cdef double d, acc
    if qm != NULL:                              # dO = dy, the rows of masked queries zeroed
        for i in range(Tq):
            for j in range(Dv):
                dO[b * Tq * Dv + i * Dv + j] = dob[i * Dv + j] if qm[b * Tq + i] else 0
        dob = dO + b * Tq * Dv
    _gemm1(False, True, Tq, Tv, Dv, 1, dob, Dv, vb, Dv, 0, da, Tv, par)       # dA = dO v^T
    if dsc != NULL:                             # + the gradient of the scores output
        for i in range(n):
            da[i] = da[i] + dsc[b * n + i]
    _gemm1(True, False, Tv, Dv, Tq, 1, ab, Tv, dob, Dv, 0, dvb, Dv, par)      # dv = A^T dO
    if g.drop_rate > 0:                         # A = A0 Z: dA0 = dA Z
        for i in range(Tq):
            for j in range(Tv):
                da[i * Tv + j] = da[i * Tv + j] * keep_scale if fnn_attn_keep(g, b, i, j) else 0
    acc = 0
    for i in range(Tq):                         # dS = A0 (dA0 - <dA0, A0>) per row
        d = _ka_dot(&da[i * Tv], &a0[i * Tv], Tv)
        for j in range(Tv):
            da[i * Tv + j] = <floating>(a0[i * Tv + j] * (da[i * Tv + j] - d))
        if scaled:                              # d(scale) = sum dS raw
            acc = acc + _ka_dot(&da[i * Tv], &raw[b * n + i * Tv], Tv)
    if scaled:
        parts[b] = acc
    _gemm1(False, False, Tq, D, Tv, c, da, Tv, kb, D, 0, dq + b * Tq * D, D, par)  # dq = c dS k
    if dk == NULL:                              # the value is the key: dv += c dS^T q
        _gemm1(True, False, Tv, D, Tq, c, da, Tv, qb, D, 1, dvb, Dv, par)
    else:                                       # dk = c dS^T q
        _gemm1(True, False, Tv, D, Tq, c, da, Tv, qb, D, 0, dk + b * Tv * D, D, par)


def dot_attention_backward(const floating[:, :, ::1] q,      # IN  (B, Tq, D)
                           const floating[:, :, ::1] k,      # IN  (B, Tv, D)
                           const floating[:, :, ::1] v,      # IN  (B, Tv, Dv)
                           double scale, bint scaled,
                           const unsigned char[:, ::1] qmask,  # IN  (B, Tq) or None
                           double rate, unsigned long long key,
                           const floating[:, :, ::1] raw,    # IN  (B, Tq, Tv) (read if scaled)
                           const floating[:, :, ::1] A0,     # IN  (B, Tq, Tv)
                           const floating[:, :, ::1] A,      # IN  (B, Tq, Tv)
                           const floating[:, :, ::1] dy,     # IN  (B, Tq, Dv)
                           const floating[:, :, ::1] dscores,  # IN  (B, Tq, Tv) or None
                           floating[:, :, ::1] dA,           # OUT (B, Tq, Tv) scratch: dS
                           floating[:, :, ::1] dO,           # OUT (B, Tq, Dv) scratch (qmask)
                           floating[:, :, ::1] dq,           # OUT (B, Tq, D)
                           floating[:, :, ::1] dk,           # OUT (B, Tv, D) or None: k is v
                           floating[:, :, ::1] dv,           # OUT (B, Tv, Dv)
                           double[::1] parts):               # OUT (B,) or None (scaled only)
    """dot_attention_forward's gradients: dO := dy (masked query rows zeroed), dv := A^T dO,
    dA := dO v^T (+ dscores), dropped as the forward's weights when rate > 0, dS := A0 (dA -
    <dA, A0>) per row (left in dA), dq := c dS k, dk := c dS^T q (added into dv when dk is None:
    the value was the key), parts[b] := sum dS raw (the scale's gradient of sample b, double)."""
    cdef Py_ssize_t B = q.shape[0], Tq = q.shape[1], D = q.shape[2], Tv = k.shape[1]
    cdef Py_ssize_t Dv = v.shape[2], b, nt
    cdef fnn_attn_geom g
    cdef const unsigned char *qm = NULL
    cdef const floating *dsc = NULL
    cdef floating *dkp = NULL
    cdef floating *dop = NULL
    cdef double *pp = NULL
    cdef unsigned int csr, csr_t
    cdef floating c = <floating>scale
    cdef floating keep_scale
    if (B < 1 or Tq < 1 or Tv < 1 or D < 1 or Dv < 1 or k.shape[0] != B or k.shape[2] != D
            or v.shape[0] != B or v.shape[1] != Tv):
        _bad("dot_attention_backward")
    if not (_is3(raw.shape, B, Tq, Tv) and _is3(A0.shape, B, Tq, Tv) and _is3(A.shape, B, Tq, Tv)
            and _is3(dA.shape, B, Tq, Tv) and _is3(dy.shape, B, Tq, Dv)
            and _is3(dq.shape, B, Tq, D) and _is3(dv.shape, B, Tv, Dv)):
        _bad("dot_attention_backward")
    if dO is not None and not _is3(dO.shape, B, Tq, Dv):
        _bad("dot_attention_backward")
    if dk is not None:
        if not _is3(dk.shape, B, Tv, D):
            _bad("dot_attention_backward")
        dkp = &dk[0, 0, 0]
    elif D != Dv:
        _bad("dot_attention_backward")
    if dscores is not None:
        if not _is3(dscores.shape, B, Tq, Tv):
            _bad("dot_attention_backward")
        dsc = &dscores[0, 0, 0]
    if qmask is not None:
        if qmask.shape[0] != B or qmask.shape[1] != Tq or dO is None:
            _bad("dot_attention_backward")
        qm = &qmask[0, 0]
        dop = &dO[0, 0, 0]
    if scaled:
        if parts is None or parts.shape[0] != B:
            _bad("dot_attention_backward")
        pp = &parts[0]
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dot_attention_backward: rate must be in [0, 1). Received: "
                         f"rate={rate}")
    g.pairs, g.heads, g.lq, g.lk = B, 1, Tq, Tv
    g.drop_rate, g.drop_key = rate, key
    keep_scale = <floating>(1.0 / (1.0 - rate))
    nt = threads_for(<Py_ssize_t>(B * Tq * Tv * (D + Dv)))
    with nogil:
        csr = fnn_ftz_enter()
        if nt > 1 and B >= nt:
            for b in prange(B, schedule="static", num_threads=nt):
                csr_t = fnn_ftz_enter()
                _dot_bwd_sample(b, Tq, Tv, D, Dv, &q[0, 0, 0], &k[0, 0, 0], &v[0, 0, 0], c,
                                scaled, qm, &g, keep_scale, &raw[0, 0, 0], &A0[0, 0, 0],
                                &A[0, 0, 0], &dy[0, 0, 0], dsc, &dA[0, 0, 0], dop,
                                &dq[0, 0, 0], dkp, &dv[0, 0, 0], pp, 1e300)
                fnn_ftz_leave(csr_t)
        else:
            for b in range(B):
                _dot_bwd_sample(b, Tq, Tv, D, Dv, &q[0, 0, 0], &k[0, 0, 0], &v[0, 0, 0], c,
                                scaled, qm, &g, keep_scale, &raw[0, 0, 0], &A0[0, 0, 0],
                                &A[0, 0, 0], &dy[0, 0, 0], dsc, &dA[0, 0, 0], dop,
                                &dq[0, 0, 0], dkp, &dv[0, 0, 0], pp, 0)
        fnn_ftz_leave(csr)


# ---------------------------------------------------------------- Dot(axes=-1, normalize=True)
# Two (B, M, K) and (B, N, K) inputs normalized along K, then y[b] = xn[b] zn[b]^T, forward and
# backward in one call each, threads taking whole samples as the attention kernels above.

cdef inline void _unit_rows(const floating *x, Py_ssize_t R, Py_ssize_t C, double cap,
                            floating *y, floating *inv) noexcept nogil:
    """inv[r] := min(1 / ||x[r]||, cap) (the sum of squares over _ka_dot's lanes; NaN stays),
    y[r] := x[r] inv[r]"""
    cdef Py_ssize_t r, c
    cdef double s, v
    cdef floating f
    for r in range(R):
        s = _ka_dot(&x[r * C], &x[r * C], C)
        v = 1.0 / sqrt(s)                       # s = 0: inf, then the cap (Keras' rule)
        if not (v <= cap):
            v = cap if s == s else v
        f = <floating>v
        inv[r] = f
        for c in range(C):
            y[r * C + c] = x[r * C + c] * f


cdef inline void _unit_rows_back(const floating *y, const floating *inv, Py_ssize_t R,
                                 Py_ssize_t C, floating cap, floating *d) noexcept nogil:
    """d[r] := inv[r] (d[r] - y[r] <d[r], y[r]>) in place, or inv[r] d[r] where the cap held"""
    cdef Py_ssize_t r, c
    cdef double s
    for r in range(R):
        s = 0
        if inv[r] != cap:
            s = _ka_dot(&d[r * C], &y[r * C], C)
        for c in range(C):
            d[r * C + c] = <floating>(inv[r] * (d[r * C + c] - s * y[r * C + c]))


cdef void _cos_fwd_sample(Py_ssize_t b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                          const floating *x, const floating *z, double cap, floating *xn,
                          floating *zn, floating *invx, floating *invz, floating *y,
                          double par) noexcept nogil:
    _unit_rows(x + b * M * K, M, K, cap, xn + b * M * K, invx + b * M)
    _unit_rows(z + b * N * K, N, K, cap, zn + b * N * K, invz + b * N)
    _gemm1(False, True, M, N, K, 1, xn + b * M * K, K, zn + b * N * K, K, 0, y + b * M * N, N,
           par)


def cosine_forward(const floating[:, :, ::1] x,     # IN  (B, M, K)
                   const floating[:, :, ::1] z,     # IN  (B, N, K)
                   double epsilon,
                   floating[:, :, ::1] xn,          # OUT (B, M, K) x's rows normalized
                   floating[:, :, ::1] zn,          # OUT (B, N, K)
                   floating[:, ::1] invx,           # OUT (B, M) min(1 / ||row||, 1 / epsilon)
                   floating[:, ::1] invz,           # OUT (B, N)
                   floating[:, :, ::1] y):          # OUT (B, M, N)
    """Keras' Dot(axes=-1, normalize=True) on (B, M, K) and (B, N, K): xn := unit_norm(x),
    zn := unit_norm(z) along K (as unit_norm_forward), y[b] := xn[b] zn[b]^T. Sizes >= 1."""
    cdef Py_ssize_t B = x.shape[0], M = x.shape[1], K = x.shape[2], N = z.shape[1], b, nt
    cdef double cap = 1.0 / epsilon
    cdef unsigned int csr, csr_t
    if (B < 1 or M < 1 or N < 1 or K < 1 or not _is3(z.shape, B, N, K)
            or not _is3(xn.shape, B, M, K) or not _is3(zn.shape, B, N, K)
            or not _is3(y.shape, B, M, N) or invx.shape[0] != B or invx.shape[1] != M
            or invz.shape[0] != B or invz.shape[1] != N):
        _bad("cosine_forward")
    nt = threads_for(<Py_ssize_t>(B * M * N * K))
    with nogil:
        csr = fnn_ftz_enter()
        if nt > 1 and B >= nt:
            for b in prange(B, schedule="static", num_threads=nt):
                csr_t = fnn_ftz_enter()
                _cos_fwd_sample(b, M, N, K, &x[0, 0, 0], &z[0, 0, 0], cap, &xn[0, 0, 0],
                                &zn[0, 0, 0], &invx[0, 0], &invz[0, 0], &y[0, 0, 0], 1e300)
                fnn_ftz_leave(csr_t)
        else:
            for b in range(B):
                _cos_fwd_sample(b, M, N, K, &x[0, 0, 0], &z[0, 0, 0], cap, &xn[0, 0, 0],
                                &zn[0, 0, 0], &invx[0, 0], &invz[0, 0], &y[0, 0, 0], 0)
        fnn_ftz_leave(csr)


cdef void _cos_bwd_sample(Py_ssize_t b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                          const floating *xn, const floating *zn, const floating *invx,
                          const floating *invz, floating cap, const floating *g, floating *dx,
                          floating *dz, double par) noexcept nogil:
    cdef const floating *gb = g + b * M * N
    _gemm1(False, False, M, K, N, 1, gb, N, zn + b * N * K, K, 0, dx + b * M * K, K, par)
    _gemm1(True, False, N, K, M, 1, gb, N, xn + b * M * K, K, 0, dz + b * N * K, K, par)
    _unit_rows_back(xn + b * M * K, invx + b * M, M, K, cap, dx + b * M * K)
    _unit_rows_back(zn + b * N * K, invz + b * N, N, K, cap, dz + b * N * K)


def cosine_backward(const floating[:, :, ::1] xn,   # IN  (B, M, K) the forward's
                    const floating[:, :, ::1] zn,   # IN  (B, N, K)
                    const floating[:, ::1] invx,    # IN  (B, M)
                    const floating[:, ::1] invz,    # IN  (B, N)
                    double epsilon,
                    const floating[:, :, ::1] g,    # IN  (B, M, N) dL/dy
                    floating[:, :, ::1] dx,         # OUT (B, M, K)
                    floating[:, :, ::1] dz):        # OUT (B, N, K)
    """cosine_forward's gradients: dxn := g zn, dzn := g^T xn, then unit_norm_backward of
    each (dx := invx (dxn - xn <dxn, xn>) per row, invx dxn where the cap held)."""
    cdef Py_ssize_t B = xn.shape[0], M = xn.shape[1], K = xn.shape[2], N = zn.shape[1], b, nt
    cdef floating cap = <floating>(1.0 / epsilon)
    cdef unsigned int csr, csr_t
    if (B < 1 or M < 1 or N < 1 or K < 1 or not _is3(zn.shape, B, N, K)
            or not _is3(g.shape, B, M, N) or not _is3(dx.shape, B, M, K)
            or not _is3(dz.shape, B, N, K) or invx.shape[0] != B or invx.shape[1] != M
            or invz.shape[0] != B or invz.shape[1] != N):
        _bad("cosine_backward")
    nt = threads_for(<Py_ssize_t>(B * M * N * K))
    with nogil:
        csr = fnn_ftz_enter()
        if nt > 1 and B >= nt:
            for b in prange(B, schedule="static", num_threads=nt):
                csr_t = fnn_ftz_enter()
                _cos_bwd_sample(b, M, N, K, &xn[0, 0, 0], &zn[0, 0, 0], &invx[0, 0],
                                &invz[0, 0], cap, &g[0, 0, 0], &dx[0, 0, 0], &dz[0, 0, 0],
                                1e300)
                fnn_ftz_leave(csr_t)
        else:
            for b in range(B):
                _cos_bwd_sample(b, M, N, K, &xn[0, 0, 0], &zn[0, 0, 0], &invx[0, 0],
                                &invz[0, 0], cap, &g[0, 0, 0], &dx[0, 0, 0], &dz[0, 0, 0], 0)
        fnn_ftz_leave(csr)


# tanh(c (q + k)) = (P - 1) / (P + 1) with P = exp(2 c q) exp(2 c k): the exponentials are taken
# once per query and key element (O((Tq + Tv) D) instead of O(Tq Tv D) calls of tanh), the pair
# costs a product and a division, in double (absolute error a few double ulps, whatever the
# dtype). A row holding an argument |2 c x| > 300 (where the product could overflow, or lose
# q + k when one is huge) or a NaN takes libm's tanh for all its pairs instead.
cdef enum:
    _EXP_LIMIT = 300


cdef void _exp_rows(const floating[:, :, ::1] x, double c, double[:, :, ::1] e,  # OUT
                    unsigned char[:, ::1] ok) noexcept nogil:               # OUT
    """e := exp(2 c x);  ok[b, i] := every |2 c x[b, i, :]| <= _EXP_LIMIT"""
    cdef Py_ssize_t B = x.shape[0], T = x.shape[1], D = x.shape[2], row, b, i, d
    cdef double a
    cdef unsigned char good
    for row in prange(B * T, schedule="static", num_threads=threads_for(B * T * D * 8)):
        b = row // T
        i = row - b * T
        good = 1
        for d in range(D):
            a = 2.0 * c * x[b, i, d]
            if not (fabs(a) <= _EXP_LIMIT):
                good = 0
                a = 0
            e[b, i, d] = exp(a)
        ok[b, i] = good


def _exp_scratch(q, k, double c):
    """exp(2 c q), exp(2 c k) (double) and their rows' flags, for the additive kernels."""
    eq = np.empty(np.shape(q), np.float64)
    ek = np.empty(np.shape(k), np.float64)
    okq = np.empty(np.shape(q)[:2], np.uint8)
    okk = np.empty(np.shape(k)[:2], np.uint8)
    return eq, ek, okq, okk


def additive_scores(const floating[:, :, ::1] q,    # IN  (B, Tq, D)
                    const floating[:, :, ::1] k,    # IN  (B, Tv, D)
                    double inner,
                    const floating[::1] outer,      # IN  (D,)
                    floating[:, :, ::1] out):       # OUT (B, Tq, Tv)
    """out[b, i, j] := sum_d outer[d] tanh(inner (q[b, i, d] + k[b, j, d]))"""
    cdef Py_ssize_t B = q.shape[0], Tq = q.shape[1], D = q.shape[2], Tv = k.shape[1]
    cdef Py_ssize_t row, b, i, j, d
    cdef double acc, p, c = inner
    cdef double[:, :, ::1] eq, ek
    cdef unsigned char[:, ::1] okq, okk
    if (k.shape[0] != B or k.shape[2] != D or outer.shape[0] != D or out.shape[0] != B
            or out.shape[1] != Tq or out.shape[2] != Tv):
        _bad("additive_scores")
    eq, ek, okq, okk = _exp_scratch(q, k, inner)
    with nogil:
        _exp_rows(q, c, eq, okq)
        _exp_rows(k, c, ek, okk)
        for row in prange(B * Tq, schedule="static", num_threads=threads_for(B * Tq * Tv * D)):
            b = row // Tq
            i = row - b * Tq
            for j in range(Tv):
                acc = 0
                if okq[b, i] and okk[b, j]:
                    for d in range(D):
                        p = eq[b, i, d] * ek[b, j, d]
                        acc = acc + outer[d] * ((p - 1) / (p + 1))
                else:
                    for d in range(D):
                        acc = acc + outer[d] * tanh(c * (<double>q[b, i, d] + k[b, j, d]))
                out[b, i, j] = <floating>acc


def additive_scores_backward(const floating[:, :, ::1] q,      # IN  (B, Tq, D)
                             const floating[:, :, ::1] k,      # IN  (B, Tv, D)
                             double inner,
                             const floating[::1] outer,        # IN  (D,)
                             const floating[:, :, ::1] ds,     # IN  (B, Tq, Tv)
                             floating[:, :, ::1] dq,           # OUT (B, Tq, D)
                             floating[:, :, ::1] dk,           # OUT (B, Tv, D)
                             floating[:, ::1] douter,          # OUT (B, D) per sample
                             floating[::1] dinner):            # OUT (B,) per sample
    """With t = tanh(inner u), u = q[b, i] + k[b, j], h = ds[b, i, j] outer (1 - t^2):
    dq[b, i] := sum_j inner h,  dk[b, j] := sum_i inner h,  douter[b] := sum_ij ds t,
    dinner[b] := sum_ij <h, u>.  The (Tq, Tv, D) tensor is recomputed, never stored; each
    sample's sums are one thread's, in (i, j) order, in double."""
    cdef Py_ssize_t B = q.shape[0], Tq = q.shape[1], D = q.shape[2], Tv = k.shape[1]
    cdef Py_ssize_t b, i, j, d
    cdef double c = inner, g, u, t, h, p, di
    cdef double[:, :, ::1] eq, ek, gq, gk
    cdef double[:, ::1] go
    cdef unsigned char[:, ::1] okq, okk
    cdef bint fast
    if (k.shape[0] != B or k.shape[2] != D or outer.shape[0] != D or ds.shape[0] != B
            or ds.shape[1] != Tq or ds.shape[2] != Tv or dq.shape[0] != B or dq.shape[1] != Tq
            or dq.shape[2] != D or dk.shape[0] != B or dk.shape[1] != Tv or dk.shape[2] != D
            or douter.shape[0] != B or douter.shape[1] != D or dinner.shape[0] != B):
        _bad("additive_scores_backward")
    eq, ek, okq, okk = _exp_scratch(q, k, inner)
    gq = np.zeros(np.shape(q), np.float64)          # the sums, in double
    gk = np.zeros(np.shape(k), np.float64)
    go = np.zeros((B, D), np.float64)
    with nogil:
        _exp_rows(q, c, eq, okq)
        _exp_rows(k, c, ek, okk)
        for b in prange(B, schedule="static", num_threads=threads_for(B * Tq * Tv * D)):
            di = 0
            for i in range(Tq):
                for j in range(Tv):
                    g = ds[b, i, j]
                    fast = okq[b, i] and okk[b, j]
                    for d in range(D):
                        u = <double>q[b, i, d] + k[b, j, d]
                        if fast:
                            p = eq[b, i, d] * ek[b, j, d]
                            t = (p - 1) / (p + 1)
                        else:
                            t = tanh(c * u)
                        go[b, d] += g * t
                        h = g * outer[d] * (1 - t * t)
                        di = di + h * u
                        gq[b, i, d] += c * h
                        gk[b, j, d] += c * h
            for i in range(Tq):
                for d in range(D):
                    dq[b, i, d] = <floating>gq[b, i, d]
            for j in range(Tv):
                for d in range(D):
                    dk[b, j, d] = <floating>gk[b, j, d]
            for d in range(D):
                douter[b, d] = <floating>go[b, d]
            dinner[b] = <floating>di
