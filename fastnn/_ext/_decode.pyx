# Generation with a key/value cache (fastnn/models/decoding.py): one new position per call.
#
# - attention_decode: one query per (batch, head) against that head's cache, after writing the
#   new key and value at position t. An online softmax (Milakov & Gimelshein, 2018: the running
#   maximum rescales the running sum and the accumulated output) needs no scratch, so the
#   kernel allocates nothing. OpenMP over the (batch, head) pairs; each output is computed by
#   one thread in key order, so the result is bitwise the same at any thread count.
# - BlockStep: a whole TransformerBlock for one position in ONE call (layer norms, the QKV
#   product, attention_decode, the output projection, residuals, the feed-forward layers with
#   their activation in the GEMM epilogue). Its buffers and weights are bound once, at
#   creation, as raw pointers, so a step costs one Python call and no memoryview acquisition:
#   the per-kernel path pays ~4 us per kernel call, a dozen per block and token.
#
# Arguments are checked before the GIL is released (fastnn/_validation.py, shared with the
# NumPy twin fastnn/backends/numpy_decode.py; BlockStep checks its arrays at creation); the
# loops trust them (boundscheck and wraparound off).

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY, NAN, exp, expf

import numpy as np

from fastnn._validation import check_attention_decode as check_decode
from fastnn._ext._parallel cimport threads_for, fnn_ftz_enter, fnn_ftz_leave
from fastnn._ext.gemm cimport (fnn_sgemm, fnn_dgemm, fnn_epilogue_f32, fnn_epilogue_f64,
                               FNN_ACT_LINEAR)


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef extern from "fnn_vec.h" nogil:
    void fnn_exp_f32(const float *x, float *y, Py_ssize_t n)
    void fnn_dot_rows_f32(const float *q, const float *k, Py_ssize_t D, Py_ssize_t n, float *s)


cdef enum:
    # keys scored at a time: their scores, then their exps (one vector call), then their values
    DECODE_CHUNK = 64


cdef void _decode_pair(const floating *q, const floating *kn, const floating *vn,
                       floating *kc, floating *vc, Py_ssize_t t, Py_ssize_t D, Py_ssize_t Dv,
                       floating scale, floating *o) noexcept nogil:
    """kc[t] := kn, vc[t] := vn;  o := softmax(scale q kc[:t+1]^T) vc[:t+1] (online softmax over
    chunks of DECODE_CHUNK keys). As the tiled kernel (src_c/fnn_attn.h): a score of -inf
    (overflow) takes no part, all -inf gives o = 0; a score of +inf or NaN makes o NaN.
    A chunk's scores come from fnn_dot_rows_f32 for float (fnn_vec.h: eight keys at a time in
    vectors) and, for double, are summed over the width for all its keys at once (each score's
    terms in width order: the keys' sums overlap instead of waiting on one another); for float
    their exps go through one call of the vectorised exp (fnn_vec.h)."""
    cdef Py_ssize_t i, j0, jj, nj
    cdef floating s, m = -INFINITY, l = 0, c, p, cmax, qi
    cdef floating sc[DECODE_CHUNK]
    cdef floating pe[DECODE_CHUNK]
    cdef bint nan = False
    cdef const floating *kj
    cdef const floating *vj
    for i in range(D):
        kc[t * D + i] = kn[i]
    for i in range(Dv):
        vc[t * Dv + i] = vn[i]
        o[i] = 0
    j0 = 0
    while j0 <= t:
        nj = min(<Py_ssize_t>DECODE_CHUNK, t + 1 - j0)
        kj = kc + j0 * D
        if floating is float:
            fnn_dot_rows_f32(q, kj, D, nj, sc)
        else:
            for jj in range(nj):
                sc[jj] = 0
            for i in range(D):
                qi = q[i]
                for jj in range(nj):
                    sc[jj] = sc[jj] + qi * kj[jj * D + i]
        cmax = -INFINITY
        for jj in range(nj):
            s = sc[jj] * scale
            sc[jj] = s
            if s > cmax:
                cmax = s
            elif s != s:
                nan = True
        if cmax > m:                 # a new maximum: rescale what was summed so far
            c = _exp(m - cmax)
            l = l * c
            for i in range(Dv):
                o[i] = o[i] * c
            m = cmax
        if m != -INFINITY:           # else every score so far is -inf (or NaN: `nan`)
            for jj in range(nj):
                pe[jj] = sc[jj] - m
            if floating is float:
                fnn_exp_f32(pe, pe, nj)
            else:
                for jj in range(nj):
                    pe[jj] = exp(pe[jj])
            for jj in range(nj):
                if sc[jj] == -INFINITY:
                    continue
                p = pe[jj]
                l = l + p
                vj = vc + (j0 + jj) * Dv
                for i in range(Dv):
                    o[i] = o[i] + p * vj[i]
        j0 = j0 + nj
    if nan:
        for i in range(Dv):
            o[i] = NAN
        return
    if l == 0:                       # every score -inf: o stays 0
        return
    c = 1 / l
    for i in range(Dv):
        o[i] = o[i] * c


cdef void _decode_pairs(const floating *q, Py_ssize_t ldq, const floating *kn, Py_ssize_t ldk,
                        const floating *vn, Py_ssize_t ldv, floating *kc, floating *vc,
                        floating *out, Py_ssize_t ldo, Py_ssize_t B, Py_ssize_t H,
                        Py_ssize_t Lmax, Py_ssize_t D, Py_ssize_t Dv, Py_ssize_t t,
                        floating scale) noexcept nogil:
    """Every (batch, head) pair: rows b of q, kn, vn, out at strides ld*, head h at h * D (or
    h * Dv) within the row; caches (B, H, Lmax, D / Dv)."""
    cdef Py_ssize_t p, b, h
    cdef unsigned int csr
    cdef int nt = threads_for(B * H * (t + 1) * (D + Dv))
    if nt == 1:
        for p in range(B * H):
            b = p // H
            h = p - b * H
            _decode_pair(q + b * ldq + h * D, kn + b * ldk + h * D, vn + b * ldv + h * Dv,
                         kc + p * Lmax * D, vc + p * Lmax * Dv, t, D, Dv, scale,
                         out + b * ldo + h * Dv)
        return
    for p in prange(B * H, schedule="static", num_threads=nt):
        csr = fnn_ftz_enter()
        b = p // H
        h = p - b * H
        _decode_pair(q + b * ldq + h * D, kn + b * ldk + h * D, vn + b * ldv + h * Dv,
                     kc + p * Lmax * D, vc + p * Lmax * Dv, t, D, Dv, scale,
                     out + b * ldo + h * Dv)
        fnn_ftz_leave(csr)


cdef void _decode(const floating[::1] q,        # IN  (B, H, D)
                  const floating[::1] k_new,    # IN  (B, H, D)
                  const floating[::1] v_new,    # IN  (B, H, Dv)
                  floating[::1] k_cache,        # OUT (B, H, Lmax, D): position t written
                  floating[::1] v_cache,        # OUT (B, H, Lmax, Dv): position t written
                  floating[::1] out,            # OUT (B, H, Dv)
                  Py_ssize_t B, Py_ssize_t H, Py_ssize_t Lmax, Py_ssize_t D, Py_ssize_t Dv,
                  Py_ssize_t t, floating scale) noexcept:
    cdef unsigned int csr
    with nogil:
        csr = fnn_ftz_enter()
        _decode_pairs(&q[0], H * D, &k_new[0], H * D, &v_new[0], H * Dv, &k_cache[0],
                      &v_cache[0], &out[0], H * Dv, B, H, Lmax, D, Dv, t, scale)
        fnn_ftz_leave(csr)


def attention_decode(q, k_new, v_new, k_cache, v_cache, t, scale, out):
    """caches[:, :, t] := k_new, v_new;  out := softmax(scale q K[:t+1]^T) V[:t+1]"""
    dims, pos, s = check_decode(q, k_new, v_new, k_cache, v_cache, t, scale, out)
    B, H, Lmax, D, Dv = dims
    if B * H == 0 or D == 0 or Dv == 0:      # nothing to multiply: the NumPy twin's answer
        from fastnn.backends.numpy_decode import attention_decode as twin
        twin(q, k_new, v_new, k_cache, v_cache, pos, s, out)
        return
    if q.dtype == np.float32:
        _decode[float](q.reshape(-1), k_new.reshape(-1), v_new.reshape(-1),
                       k_cache.reshape(-1), v_cache.reshape(-1), out.reshape(-1),
                       B, H, Lmax, D, Dv, pos, <float>s)
    else:
        _decode[double](q.reshape(-1), k_new.reshape(-1), v_new.reshape(-1),
                        k_cache.reshape(-1), v_cache.reshape(-1), out.reshape(-1),
                        B, H, Lmax, D, Dv, pos, s)


# --------------------------------------------------------------------------- a whole block

cdef void *_ptr(object a) except NULL:
    """The address of a NumPy array's data (the array is kept alive by its owner)."""
    cdef Py_ssize_t address = a.ctypes.data
    return <void *>address


cdef struct Block:
    Py_ssize_t B, d, H, kd, vd, ff, Lmax, nqkv
    int norm_first, act
    double eps, param, scale
    void *x       # IN  (B, d)
    void *y       # OUT (B, d)
    void *wqkv    # (d, nqkv): query, key, value kernels side by side (head-major columns)
    void *bqkv    # (nqkv,)
    void *wo      # (H vd, d)
    void *bo      # (d,)
    void *g1      # attention norm gamma, beta (d,)
    void *b1
    void *g2      # feed-forward norm gamma, beta (d,)
    void *b2
    void *w1      # (d, ff), (ff,)
    void *c1
    void *w2      # (ff, d), (d,)
    void *c2
    void *kc      # (B, H, Lmax, kd)
    void *vc      # (B, H, Lmax, vd)
    void *h       # scratch (B, d)
    void *r       # scratch (B, d)
    void *qkv     # scratch (B, nqkv)
    void *o       # scratch (B, H vd)
    void *f       # scratch (B, ff)


cdef void _dense(const floating *x, const void *w, const void *b, floating *y, Py_ssize_t m,
                 Py_ssize_t k, Py_ssize_t n, int act, double param,
                 floating beta) noexcept nogil:
    """y := act(x @ w + beta y + b);  x (m, k), w (k, n), y (m, n)"""
    cdef fnn_epilogue_f32 e32
    cdef fnn_epilogue_f64 e64
    if floating is float:
        e32.bias, e32.act, e32.param = <const float *>b, act, <float>param
        e32.amax, e32.min_parallel_work = NULL, 0
        fnn_sgemm(0, 0, m, n, k, 1, x, k, <const float *>w, n, beta, y, n, &e32)
    else:
        e64.bias, e64.act, e64.param = <const double *>b, act, param
        e64.amax, e64.min_parallel_work = NULL, 0
        fnn_dgemm(0, 0, m, n, k, 1, x, k, <const double *>w, n, beta, y, n, &e64)


cdef extern from "fnn_norm.h" nogil:
    void fnn_ln_rows_f32(const float *x, Py_ssize_t n, Py_ssize_t c, const float *gamma,
                         const float *beta, double eps, float *out, float *mean, float *invstd)
    void fnn_ln_rows_f64(const double *x, Py_ssize_t n, Py_ssize_t c, const double *gamma,
                         const double *beta, double eps, double *out, double *mean,
                         double *invstd)


cdef enum:
    NORM_ROWS = 64      # rows normalised per call (their means and invstds on the stack)


cdef void _norm(const floating *x, const void *gamma, const void *beta, floating *y,
                Py_ssize_t m, Py_ssize_t c, double eps) noexcept nogil:
    """y := gamma (x - mean_row) / sqrt(var_row + eps) + beta: layernorm_forward's row kernel
    (src_c/fnn_norm.h, in double, the same bits), a scalar loop here before (Zen 3, the tiny
    GPT's 16 rows of 64: ~9% of a generated token's time)."""
    cdef floating mean[NORM_ROWS]
    cdef floating inv[NORM_ROWS]
    cdef Py_ssize_t i0, n
    i0 = 0
    while i0 < m:
        n = min(<Py_ssize_t>NORM_ROWS, m - i0)
        if floating is float:
            fnn_ln_rows_f32(x + i0 * c, n, c, <const float *>gamma, <const float *>beta, eps,
                            y + i0 * c, mean, inv)
        else:
            fnn_ln_rows_f64(x + i0 * c, n, c, <const double *>gamma, <const double *>beta, eps,
                            y + i0 * c, mean, inv)
        i0 = i0 + n


cdef void _copy(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = x[i]


cdef void _attention(const Block *k, const floating *x, floating *r, Py_ssize_t t) noexcept nogil:
    """r := r + attention(x) (r holds the residual on entry); the cache gets position t."""
    cdef floating *qkv = <floating *>k.qkv
    cdef Py_ssize_t hk = k.H * k.kd
    _dense(x, k.wqkv, k.bqkv, qkv, k.B, k.d, k.nqkv, FNN_ACT_LINEAR, 0.0, <floating>0)
    _decode_pairs(qkv, k.nqkv, qkv + hk, k.nqkv, qkv + 2 * hk, k.nqkv, <floating *>k.kc,
                  <floating *>k.vc, <floating *>k.o, k.H * k.vd, k.B, k.H, k.Lmax, k.kd, k.vd,
                  t, <floating>k.scale)
    _dense(<floating *>k.o, k.wo, k.bo, r, k.B, k.H * k.vd, k.d, FNN_ACT_LINEAR, 0.0,
           <floating>1)


cdef void _feedforward(const Block *k, const floating *x, floating *r) noexcept nogil:
    """r := r + feedforward(x)"""
    _dense(x, k.w1, k.c1, <floating *>k.f, k.B, k.d, k.ff, k.act, k.param, <floating>0)
    _dense(<floating *>k.f, k.w2, k.c2, r, k.B, k.ff, k.d, FNN_ACT_LINEAR, 0.0, <floating>1)


cdef void _block_step(const Block *k, floating *x, Py_ssize_t t) noexcept nogil:
    """k.y := the block at position t of k.x (x is k.x, typed)"""
    cdef floating *y = <floating *>k.y
    cdef floating *h = <floating *>k.h
    cdef floating *r = <floating *>k.r
    cdef Py_ssize_t n = k.B * k.d
    if k.norm_first:                 # y = r + ff(ln2(r)),  r = x + attn(ln1(x))
        _norm(x, k.g1, k.b1, h, k.B, k.d, k.eps)
        _copy(x, r, n)
        _attention(k, h, r, t)
        _norm(r, k.g2, k.b2, h, k.B, k.d, k.eps)
        _copy(r, y, n)
        _feedforward(k, h, y)
    else:                            # y = ln2(h + ff(h)),  h = ln1(x + attn(x))
        _copy(x, r, n)
        _attention(k, x, r, t)
        _norm(r, k.g1, k.b1, h, k.B, k.d, k.eps)
        _copy(h, r, n)
        _feedforward(k, h, r)
        _norm(r, k.g2, k.b2, y, k.B, k.d, k.eps)


cdef class BlockStep:
    """One TransformerBlock position for every row: ``step(t)`` reads ``x`` (B, d), writes
    ``y`` (B, d), and appends position t to its key/value caches. The arrays are bound at
    creation (kept alive here) and checked then; ``step`` only checks t."""

    cdef Block k
    cdef bint f32
    cdef readonly object arrays

    def __init__(self, x, y, wqkv, bqkv, wo, bo, g1, b1, g2, b2, w1, c1, w2, c2, k_cache,
                 v_cache, int num_heads, int key_dim, int value_dim, bint norm_first,
                 double epsilon, int act, double param, double scale):
        dt = x.dtype
        if dt not in (np.float32, np.float64):
            raise ValueError(f"BlockStep: x must be float32 or float64. Received: {dt}")
        B, d = x.shape
        H, kd, vd, ff = num_heads, key_dim, value_dim, w1.shape[1]
        Lmax = k_cache.shape[2]
        nqkv = H * (2 * kd + vd)
        shapes = dict(x=(B, d), y=(B, d), wqkv=(d, nqkv), bqkv=(nqkv,), wo=(H * vd, d),
                      bo=(d,), g1=(d,), b1=(d,), g2=(d,), b2=(d,), w1=(d, ff), c1=(ff,),
                      w2=(ff, d), c2=(d,), k_cache=(B, H, Lmax, kd), v_cache=(B, H, Lmax, vd))
        given = dict(x=x, y=y, wqkv=wqkv, bqkv=bqkv, wo=wo, bo=bo, g1=g1, b1=b1, g2=g2, b2=b2,
                     w1=w1, c1=c1, w2=w2, c2=c2, k_cache=k_cache, v_cache=v_cache)
        for name, a in given.items():
            if (not isinstance(a, np.ndarray) or a.shape != shapes[name] or a.dtype != dt
                    or not a.flags.c_contiguous):
                raise ValueError(f"BlockStep: {name} must be a C-contiguous {dt} array of "
                                 f"shape {shapes[name]}. Received: {a!r:.80}")
        for name in ("y", "k_cache", "v_cache"):
            if not given[name].flags.writeable:
                raise ValueError(f"BlockStep: {name} must be writeable")
            for other, a in given.items():
                if other != name and np.may_share_memory(given[name], a):
                    raise ValueError(f"BlockStep: {name} must not overlap {other}")
        if min(B, d, H, kd, vd, ff, Lmax) < 1:
            raise ValueError(f"BlockStep: every size must be positive. Received: "
                             f"{(B, d, H, kd, vd, ff, Lmax)}")
        scratch = [np.zeros(s, dt) for s in ((B, d), (B, d), (B, nqkv), (B, H * vd), (B, ff))]
        self.arrays = (given, scratch)
        self.f32 = dt == np.float32
        k = &self.k
        k.B, k.d, k.H, k.kd, k.vd, k.ff, k.Lmax, k.nqkv = B, d, H, kd, vd, ff, Lmax, nqkv
        k.norm_first, k.act, k.eps, k.param, k.scale = norm_first, act, epsilon, param, scale
        k.x, k.y = _ptr(x), _ptr(y)
        k.wqkv, k.bqkv, k.wo, k.bo = _ptr(wqkv), _ptr(bqkv), _ptr(wo), _ptr(bo)
        k.g1, k.b1, k.g2, k.b2 = _ptr(g1), _ptr(b1), _ptr(g2), _ptr(b2)
        k.w1, k.c1, k.w2, k.c2 = _ptr(w1), _ptr(c1), _ptr(w2), _ptr(c2)
        k.kc, k.vc = _ptr(k_cache), _ptr(v_cache)
        k.h, k.r, k.qkv = _ptr(scratch[0]), _ptr(scratch[1]), _ptr(scratch[2])
        k.o, k.f = _ptr(scratch[3]), _ptr(scratch[4])

    def step(self, Py_ssize_t t):
        """y := the block's output at position t (0 <= t < Lmax; positions < t are cached)"""
        cdef unsigned int csr
        if t < 0 or t >= self.k.Lmax:
            raise ValueError(f"BlockStep: t must be in [0, {self.k.Lmax}). Received: t={t}")
        with nogil:
            csr = fnn_ftz_enter()
            if self.f32:
                _block_step(&self.k, <float *>self.k.x, t)
            else:
                _block_step(&self.k, <double *>self.k.x, t)
            fnn_ftz_leave(csr)


# --------------------------------------------------------------------------- bound row kernels
# The other layers of a decoder, one position for every row, each bound to its arrays at
# creation like BlockStep (a call then costs ~0.3 us instead of the ~2-5 us of a backend kernel
# call that acquires a memoryview per argument). Same math as the backend kernels.

cdef void _check(str who, dict given, dict shapes, tuple writes, object dt) except *:
    for name, a in given.items():
        if (not isinstance(a, np.ndarray) or a.shape != shapes[name] or a.dtype != dt
                or not a.flags.c_contiguous or min(a.shape) < 1):
            raise ValueError(f"{who}: {name} must be a C-contiguous {dt} array of shape "
                             f"{shapes[name]}. Received: {a!r:.80}")
    for name in writes:
        if not given[name].flags.writeable:
            raise ValueError(f"{who}: {name} must be writeable")
        for other, a in given.items():
            if other != name and np.may_share_memory(given[name], a):
                raise ValueError(f"{who}: {name} must not overlap {other}")


cdef class RowStep:
    """Base of the bound row kernels: ``step(t)`` computes position t for every row."""

    cdef Py_ssize_t B, n, m, limit
    cdef bint f32
    cdef void *x
    cdef void *w
    cdef void *b
    cdef void *out
    cdef int act
    cdef double param
    cdef readonly object arrays

    cdef void _bind(self, object x, object w, object b, object out) except *:
        self.arrays = (x, w, b, out)
        self.f32 = out.dtype == np.float32
        self.x, self.w, self.b, self.out = _ptr(x), _ptr(w), _ptr(b), _ptr(out)


cdef class EmbedStep(RowStep):
    """out[r] := table[ids[r]] (+ positions[t] when given); step returns the first row whose
    id is not in [0, vocab), before reading its row, or -1."""

    def __init__(self, ids, table, positions, out):
        V, d = table.shape
        B = out.shape[0]
        P = positions if positions is not None else np.zeros((1, d), out.dtype)
        _check("EmbedStep", dict(table=table, positions=P, out=out),
               dict(table=(V, d), positions=(P.shape[0], d), out=(B, d)), ("out",), out.dtype)
        if not isinstance(ids, np.ndarray) or ids.shape != (B,) or ids.dtype != np.int64 \
                or not ids.flags.c_contiguous:
            raise ValueError(f"EmbedStep: ids must be a C-contiguous int64 array of shape "
                             f"({B},)")
        self.B, self.n, self.m = B, V, d
        self.limit = P.shape[0] if positions is not None else 0
        self._bind(ids, table, P, out)

    def step(self, Py_ssize_t t):
        cdef Py_ssize_t bad
        if self.limit and not 0 <= t < self.limit:
            raise ValueError(f"EmbedStep: t must be in [0, {self.limit}). Received: t={t}")
        with nogil:
            if self.f32:
                bad = _embed(self, <float *>self.out, t)
            else:
                bad = _embed(self, <double *>self.out, t)
        return bad


cdef Py_ssize_t _embed(RowStep s, floating *out, Py_ssize_t t) noexcept nogil:
    cdef const long long *ids = <const long long *>s.x
    cdef const floating *table = <const floating *>s.w
    cdef const floating *pos = <const floating *>s.b + t * s.m
    cdef Py_ssize_t r, j, i
    for r in range(s.B):
        i = ids[r]
        if i < 0 or i >= s.n:
            return r
        if s.limit:
            for j in range(s.m):
                out[r * s.m + j] = table[i * s.m + j] + pos[j]
        else:
            for j in range(s.m):
                out[r * s.m + j] = table[i * s.m + j]
    return -1


cdef class AddRowStep(RowStep):
    """out[r] := x[r] + table[t] (a position layer)."""

    def __init__(self, x, table, out):
        B, d = out.shape
        _check("AddRowStep", dict(x=x, table=table, out=out),
               dict(x=(B, d), table=(table.shape[0], d), out=(B, d)), ("out",), out.dtype)
        self.B, self.m, self.limit = B, d, table.shape[0]
        self._bind(x, table, table, out)

    def step(self, Py_ssize_t t):
        if not 0 <= t < self.limit:
            raise ValueError(f"AddRowStep: t must be in [0, {self.limit}). Received: t={t}")
        with nogil:
            if self.f32:
                _add_row(self, <float *>self.out, t)
            else:
                _add_row(self, <double *>self.out, t)


cdef void _add_row(RowStep s, floating *out, Py_ssize_t t) noexcept nogil:
    cdef const floating *x = <const floating *>s.x
    cdef const floating *p = <const floating *>s.w + t * s.m
    cdef Py_ssize_t r, j
    for r in range(s.B):
        for j in range(s.m):
            out[r * s.m + j] = x[r * s.m + j] + p[j]


cdef class NormStep(RowStep):
    """out := gamma (x - mean_row) / sqrt(var_row + eps) + beta (a LayerNormalization)."""

    def __init__(self, x, gamma, beta, double epsilon, out):
        B, d = out.shape
        _check("NormStep", dict(x=x, gamma=gamma, beta=beta, out=out),
               dict(x=(B, d), gamma=(d,), beta=(d,), out=(B, d)), ("out",), out.dtype)
        self.B, self.m, self.param = B, d, epsilon
        self._bind(x, gamma, beta, out)

    def step(self, Py_ssize_t t=0):
        with nogil:
            if self.f32:
                _norm(<const float *>self.x, self.w, self.b, <float *>self.out, self.B, self.m,
                      self.param)
            else:
                _norm(<const double *>self.x, self.w, self.b, <double *>self.out, self.B,
                      self.m, self.param)


cdef class DenseStep(RowStep):
    """out := act(x @ w + b) (a Dense layer; softmax row-wise)."""

    def __init__(self, x, w, b, int act, double param, out):
        B, n = out.shape
        k = w.shape[0]
        _check("DenseStep", dict(x=x, w=w, b=b, out=out),
               dict(x=(B, k), w=(k, n), b=(n,), out=(B, n)), ("out",), out.dtype)
        self.B, self.n, self.m, self.act, self.param = B, k, n, act, param
        self._bind(x, w, b, out)

    def step(self, Py_ssize_t t=0):
        cdef unsigned int csr
        with nogil:
            csr = fnn_ftz_enter()
            if self.f32:
                _dense(<const float *>self.x, self.w, self.b, <float *>self.out, self.B,
                       self.n, self.m, self.act, self.param, <float>0)
            else:
                _dense(<const double *>self.x, self.w, self.b, <double *>self.out, self.B,
                       self.n, self.m, self.act, self.param, <double>0)
            fnn_ftz_leave(csr)
