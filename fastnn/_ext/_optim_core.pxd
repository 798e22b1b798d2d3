# Optimizer loops shared by the update kernels (_optim.pyx) and the compiled training step
# (_train.pxi): inline, so each module compiles its own copy of one source.

from cython cimport floating
from cython.parallel cimport prange
from libc.float cimport DBL_MAX
from libc.math cimport sqrt, fabs
from libc.stdint cimport int64_t
from libc.string cimport memcpy

from fastnn._ext._parallel cimport threads_for

cdef extern from "fnn_vec.h" nogil:
    void fnn_sgd_f32(float *p, const float *grad, float *v, Py_ssize_t n, float lr, float mu,
                     int nesterov, float wd)
    void fnn_sgd_f64(double *p, const double *grad, double *v, Py_ssize_t n, double lr,
                     double mu, int nesterov, double wd)
    void fnn_adam_f32(float *p, const float *grad, float *m, float *v, Py_ssize_t n, float lr,
                      float b1, float b2, float one_b1, float one_b2, float bc1, float bc2,
                      float eps, float wd)
    void fnn_adam_f64(double *p, const double *grad, double *m, double *v, Py_ssize_t n,
                      double lr, double b1, double b2, double one_b1, double one_b2, double bc1,
                      double bc2, double eps, double wd)
    void fnn_rmsprop_f32(float *p, const float *grad, float *v, float *a, float *b, Py_ssize_t n,
                         float lr, float rho, float one_rho, float mu, float eps, int centered)
    void fnn_rmsprop_f64(double *p, const double *grad, double *v, double *a, double *b,
                         Py_ssize_t n, double lr, double rho, double one_rho, double mu,
                         double eps, int centered)
    void fnn_adamw_f32(float *p, const float *grad, float *m, float *v, Py_ssize_t n, float lr,
                       float b1, float b2, float one_b1, float one_b2, float bc1, float bc2,
                       float eps, float lr_wd)
    void fnn_adamw_f64(double *p, const double *grad, double *m, double *v, Py_ssize_t n,
                       double lr, double b1, double b2, double one_b1, double one_b2, double bc1,
                       double bc2, double eps, double lr_wd)
    void fnn_adagrad_f32(float *p, const float *grad, float *a, Py_ssize_t n, float lr, float eps,
                         float a_max)
    void fnn_adamax_f32(float *p, const float *grad, float *m, float *u, Py_ssize_t n, float lr,
                        float one_b1, float b2, float bc1, float eps)
    void fnn_nadam_f32(float *p, const float *grad, float *m, float *v, Py_ssize_t n, float lr,
                       float one_b1, float one_b2, float mu1, float d1, float one_mu, float d2,
                       float bc2, float eps)
    void fnn_adagrad_f64(double *p, const double *grad, double *a, Py_ssize_t n, double lr, double eps,
                         double a_max)
    void fnn_adamax_f64(double *p, const double *grad, double *m, double *u, Py_ssize_t n, double lr,
                        double one_b1, double b2, double bc1, double eps)
    void fnn_nadam_f64(double *p, const double *grad, double *m, double *v, Py_ssize_t n, double lr,
                       double one_b1, double one_b2, double mu1, double d1, double one_mu, double d2,
                       double bc2, double eps)
    double fnn_max_abs_f32(const float *x, Py_ssize_t n)
    double fnn_max_abs_f64(const double *x, Py_ssize_t n)
    double fnn_sum_squares_f32(const float *x, Py_ssize_t n)
    double fnn_sum_squares_f64(const double *x, Py_ssize_t n)
    void fnn_scale_copy_f32(const float *x, float *out, Py_ssize_t n, float s)
    void fnn_scale_copy_f64(const double *x, double *out, Py_ssize_t n, double s)
    void fnn_clamp_copy_f32(const float *x, float *out, Py_ssize_t n, float c)
    void fnn_clamp_copy_f64(const double *x, double *out, Py_ssize_t n, double c)


cdef inline void _sgd(floating *p, const floating *grad, floating *vel, Py_ssize_t n, floating lr,
                      floating mu, bint nesterov, floating wd,
                      Py_ssize_t min_work) noexcept nogil:
    """g := grad + wd p;  v := mu v + g;  p -= lr (nesterov ? g + mu v : v)  (mu == 0: p -= lr g)
    Contiguous chunks over threads from `min_work` parameters on (PARALLEL_MIN_WORK outside a
    training step), each the vectorised loop of src_c/fnn_vec.h."""
    cdef Py_ssize_t b, lo, hi
    cdef int nt = threads_for(n) if n >= min_work else 1
    if nt == 1:
        _sgd_chunk(p, grad, vel, n, lr, mu, nesterov, wd)
        return
    for b in prange(nt, schedule='static', num_threads=nt):
        lo = b * n // nt
        hi = (b + 1) * n // nt
        _sgd_chunk(p + lo, grad + lo, NULL if vel == NULL else vel + lo, hi - lo, lr, mu,
                   nesterov, wd)


cdef inline void _sgd_chunk(floating *p, const floating *grad, floating *vel, Py_ssize_t n,
                            floating lr, floating mu, bint nesterov, floating wd) noexcept nogil:
    if floating is float:
        fnn_sgd_f32(p, grad, vel, n, lr, mu, nesterov, wd)
    else:
        fnn_sgd_f64(p, grad, vel, n, lr, mu, nesterov, wd)


cdef inline void _adam(floating *p, const floating *grad, floating *m, floating *v, Py_ssize_t n,
                       floating lr, floating b1, floating b2, floating one_b1, floating one_b2,
                       floating bc1, floating bc2, floating eps, floating wd,
                       Py_ssize_t min_work) noexcept nogil:
    """g := grad + wd p;  m := b1 m + (1 - b1) g;  v := b2 v + (1 - b2) g^2;
    p -= lr (m / bc1) / (sqrt(v / bc2) + eps)   (chunks over threads, as _sgd)"""
    cdef Py_ssize_t b, lo, hi
    cdef int nt = threads_for(n) if n >= min_work else 1
    if nt == 1:
        _adam_chunk(p, grad, m, v, n, lr, b1, b2, one_b1, one_b2, bc1, bc2, eps, wd)
        return
    for b in prange(nt, schedule='static', num_threads=nt):
        lo = b * n // nt
        hi = (b + 1) * n // nt
        _adam_chunk(p + lo, grad + lo, m + lo, v + lo, hi - lo, lr, b1, b2, one_b1, one_b2,
                    bc1, bc2, eps, wd)


cdef inline void _adam_chunk(floating *p, const floating *grad, floating *m, floating *v,
                             Py_ssize_t n, floating lr, floating b1, floating b2,
                             floating one_b1, floating one_b2, floating bc1, floating bc2,
                             floating eps, floating wd) noexcept nogil:
    if floating is float:
        fnn_adam_f32(p, grad, m, v, n, lr, b1, b2, one_b1, one_b2, bc1, bc2, eps, wd)
    else:
        fnn_adam_f64(p, grad, m, v, n, lr, b1, b2, one_b1, one_b2, bc1, bc2, eps, wd)


cdef inline void _rmsprop(floating *p, const floating *grad, floating *v, floating *a,
                          floating *b, Py_ssize_t n, floating lr, floating rho, floating one_rho,
                          floating mu, floating eps, bint centered,
                          Py_ssize_t min_work) noexcept nogil:
    """v := rho v + (1 - rho) g^2;  d := centered ? max(v - a^2, 0) + eps : v + eps (a := rho a +
    (1 - rho) g);  inc := lr g / sqrt(d);  p -= mu > 0 ? (b := mu b + inc) : inc
    (chunks over threads, as _sgd; a and b may be NULL when unused)"""
    cdef Py_ssize_t blk, lo, hi
    cdef int nt = threads_for(n) if n >= min_work else 1
    if nt == 1:
        _rmsprop_chunk(p, grad, v, a, b, n, lr, rho, one_rho, mu, eps, centered)
        return
    for blk in prange(nt, schedule='static', num_threads=nt):
        lo = blk * n // nt
        hi = (blk + 1) * n // nt
        _rmsprop_chunk(p + lo, grad + lo, v + lo, NULL if a == NULL else a + lo,
                       NULL if b == NULL else b + lo, hi - lo, lr, rho, one_rho, mu, eps,
                       centered)


cdef inline void _rmsprop_chunk(floating *p, const floating *grad, floating *v, floating *a,
                                floating *b, Py_ssize_t n, floating lr, floating rho,
                                floating one_rho, floating mu, floating eps,
                                bint centered) noexcept nogil:
    if floating is float:
        fnn_rmsprop_f32(p, grad, v, a, b, n, lr, rho, one_rho, mu, eps, centered)
    else:
        fnn_rmsprop_f64(p, grad, v, a, b, n, lr, rho, one_rho, mu, eps, centered)


cdef inline void _adamw(floating *p, const floating *grad, floating *m, floating *v, Py_ssize_t n,
                        floating lr, floating b1, floating b2, floating one_b1, floating one_b2,
                        floating bc1, floating bc2, floating eps, floating lr_wd,
                        Py_ssize_t min_work) noexcept nogil:
    """p -= lr_wd p;  then _adam's update with the plain gradient (chunks over threads, as _sgd)"""
    cdef Py_ssize_t blk, lo, hi
    cdef int nt = threads_for(n) if n >= min_work else 1
    if nt == 1:
        _adamw_chunk(p, grad, m, v, n, lr, b1, b2, one_b1, one_b2, bc1, bc2, eps, lr_wd)
        return
    for blk in prange(nt, schedule='static', num_threads=nt):
        lo = blk * n // nt
        hi = (blk + 1) * n // nt
        _adamw_chunk(p + lo, grad + lo, m + lo, v + lo, hi - lo, lr, b1, b2, one_b1, one_b2,
                     bc1, bc2, eps, lr_wd)


cdef inline void _adamw_chunk(floating *p, const floating *grad, floating *m, floating *v,
                              Py_ssize_t n, floating lr, floating b1, floating b2,
                              floating one_b1, floating one_b2, floating bc1, floating bc2,
                              floating eps, floating lr_wd) noexcept nogil:
    if floating is float:
        fnn_adamw_f32(p, grad, m, v, n, lr, b1, b2, one_b1, one_b2, bc1, bc2, eps, lr_wd)
    else:
        fnn_adamw_f64(p, grad, m, v, n, lr, b1, b2, one_b1, one_b2, bc1, bc2, eps, lr_wd)


cdef inline void _adagrad(floating *p, const floating *grad, floating *a, Py_ssize_t n,
                          floating lr, floating eps, floating a_max,
                          Py_ssize_t min_work) noexcept nogil:
    """a := min(a + g^2, a_max);  p -= lr g / sqrt(a + eps)   (chunks over threads, as _sgd)"""
    cdef Py_ssize_t blk, lo, hi
    cdef int nt = threads_for(n) if n >= min_work else 1
    if nt == 1:
        _adagrad_chunk(p, grad, a, n, lr, eps, a_max)
        return
    for blk in prange(nt, schedule='static', num_threads=nt):
        lo = blk * n // nt
        hi = (blk + 1) * n // nt
        _adagrad_chunk(p + lo, grad + lo, a + lo, hi - lo, lr, eps, a_max)


cdef inline void _adagrad_chunk(floating *p, const floating *grad, floating *a, Py_ssize_t n,
                                floating lr, floating eps, floating a_max) noexcept nogil:
    if floating is float:
        fnn_adagrad_f32(p, grad, a, n, lr, eps, a_max)
    else:
        fnn_adagrad_f64(p, grad, a, n, lr, eps, a_max)


cdef inline void _adamax(floating *p, const floating *grad, floating *m, floating *u,
                         Py_ssize_t n, floating lr, floating one_b1, floating b2, floating bc1,
                         floating eps, Py_ssize_t min_work) noexcept nogil:
    """m := m + (g - m)(1 - b1);  u := max(b2 u, |g|);  p -= lr m / (bc1 (u + eps))
    (chunks over threads, as _sgd)"""
    cdef Py_ssize_t blk, lo, hi
    cdef int nt = threads_for(n) if n >= min_work else 1
    if nt == 1:
        _adamax_chunk(p, grad, m, u, n, lr, one_b1, b2, bc1, eps)
        return
    for blk in prange(nt, schedule='static', num_threads=nt):
        lo = blk * n // nt
        hi = (blk + 1) * n // nt
        _adamax_chunk(p + lo, grad + lo, m + lo, u + lo, hi - lo, lr, one_b1, b2, bc1, eps)


cdef inline void _adamax_chunk(floating *p, const floating *grad, floating *m, floating *u,
                               Py_ssize_t n, floating lr, floating one_b1, floating b2,
                               floating bc1, floating eps) noexcept nogil:
    if floating is float:
        fnn_adamax_f32(p, grad, m, u, n, lr, one_b1, b2, bc1, eps)
    else:
        fnn_adamax_f64(p, grad, m, u, n, lr, one_b1, b2, bc1, eps)


cdef inline void _nadam(floating *p, const floating *grad, floating *m, floating *v, Py_ssize_t n,
                        floating lr, floating one_b1, floating one_b2, floating mu1, floating d1,
                        floating one_mu, floating d2, floating bc2, floating eps,
                        Py_ssize_t min_work) noexcept nogil:
    """m := m + (g - m)(1 - b1);  v := v + (g^2 - v)(1 - b2);
    p -= (mu1 m / d1 + one_mu g / d2) lr / (sqrt(v / bc2) + eps)   (chunks, as _sgd)"""
    cdef Py_ssize_t blk, lo, hi
    cdef int nt = threads_for(n) if n >= min_work else 1
    if nt == 1:
        _nadam_chunk(p, grad, m, v, n, lr, one_b1, one_b2, mu1, d1, one_mu, d2, bc2, eps)
        return
    for blk in prange(nt, schedule='static', num_threads=nt):
        lo = blk * n // nt
        hi = (blk + 1) * n // nt
        _nadam_chunk(p + lo, grad + lo, m + lo, v + lo, hi - lo, lr, one_b1, one_b2, mu1, d1,
                     one_mu, d2, bc2, eps)


cdef inline void _nadam_chunk(floating *p, const floating *grad, floating *m, floating *v,
                              Py_ssize_t n, floating lr, floating one_b1, floating one_b2,
                              floating mu1, floating d1, floating one_mu, floating d2,
                              floating bc2, floating eps) noexcept nogil:
    if floating is float:
        fnn_nadam_f32(p, grad, m, v, n, lr, one_b1, one_b2, mu1, d1, one_mu, d2, bc2, eps)
    else:
        fnn_nadam_f64(p, grad, m, v, n, lr, one_b1, one_b2, mu1, d1, one_mu, d2, bc2, eps)


# ------------------------------------------------------------------------------ gradient clipping
# Keras' clipnorm, clipvalue and global_clipnorm, written from the gradient into a separate buffer
# (the model's gradients stay as backward left them). Norms are sums of squares in double in a
# fixed order (src_c/fnn_vec.h: fnn_sum_squares), segment after segment, so they do not depend on
# the thread count; the element-wise passes split over threads like the updates.

cdef inline double _sum_squares(const floating *g, Py_ssize_t n) noexcept nogil:
    """sum g_i^2 in double, fixed order"""
    if floating is float:
        return fnn_sum_squares_f32(g, n)
    else:
        return fnn_sum_squares_f64(g, n)


cdef inline double _rescaled_norm(const floating *g, Py_ssize_t n) noexcept nogil:
    """||g||_2 as M sqrt(sum (g_i / M)^2), M = max |g_i|: for when sum g_i^2 overflows a double
    (float64 gradients beyond ~1e154); serial, in index order."""
    cdef Py_ssize_t i
    cdef double big = 0, s = 0, r
    for i in range(n):
        if fabs(<double>g[i]) > big:
            big = fabs(<double>g[i])
    if big == 0:
        return 0.0
    for i in range(n):
        r = <double>g[i] / big
        s += r * r
    return big * sqrt(s)


cdef inline double _norm_of(const floating *g, Py_ssize_t n) noexcept nogil:
    """||g||_2 = sqrt(sum g_i^2) (rescaled when the sum overflows)"""
    cdef double s = _sum_squares(g, n)
    return sqrt(s) if s <= DBL_MAX else _rescaled_norm(g, n)


cdef inline void _scale_part(const floating *g, floating *out, Py_ssize_t n, floating s,
                             Py_ssize_t min_work) noexcept nogil:
    """out := g * s (s == 1: a copy), in contiguous chunks over threads from min_work on"""
    cdef Py_ssize_t blk, lo, hi
    cdef int nt = threads_for(n) if n >= min_work else 1
    if nt == 1:
        _scale_chunk(g, out, n, s)
        return
    for blk in prange(nt, schedule='static', num_threads=nt):
        lo = blk * n // nt
        hi = (blk + 1) * n // nt
        _scale_chunk(g + lo, out + lo, hi - lo, s)


cdef inline void _scale_chunk(const floating *g, floating *out, Py_ssize_t n,
                              floating s) noexcept nogil:
    if n <= 0:
        return
    if s == 1:
        memcpy(out, g, n * sizeof(floating))
    elif floating is float:
        fnn_scale_copy_f32(g, out, n, s)
    else:
        fnn_scale_copy_f64(g, out, n, s)


cdef inline void _clamp_part(const floating *g, floating *out, Py_ssize_t n, floating c,
                             Py_ssize_t min_work) noexcept nogil:
    """out := min(max(g, -c), c), in chunks over threads as _scale_part"""
    cdef Py_ssize_t blk, lo, hi
    cdef int nt = threads_for(n) if n >= min_work else 1
    if nt == 1:
        _clamp_chunk(g, out, n, c)
        return
    for blk in prange(nt, schedule='static', num_threads=nt):
        lo = blk * n // nt
        hi = (blk + 1) * n // nt
        _clamp_chunk(g + lo, out + lo, hi - lo, c)


cdef inline void _clamp_chunk(const floating *g, floating *out, Py_ssize_t n,
                              floating c) noexcept nogil:
    if n <= 0:
        return
    if floating is float:
        fnn_clamp_copy_f32(g, out, n, c)
    else:
        fnn_clamp_copy_f64(g, out, n, c)


cdef inline bint _clip_grads(const floating *g, floating *out, const int64_t *bounds,
                             Py_ssize_t nseg, double clipnorm, double clipvalue,
                             double global_clipnorm, Py_ssize_t min_work) noexcept nogil:
    """The clipped gradient into out, for finite g of bounds[nseg] values whose weight tensors
    are [bounds[k], bounds[k + 1]); at most one setting > 0 (0: off).
    clipvalue c:        out := min(max(g, -c), c)
    clipnorm c:         out[seg] := g[seg] * (c / max(||g[seg]||, c)) for each tensor
    global_clipnorm c:  out := g * (c / max(sqrt(sum_seg ||g[seg]||^2), c))
    The scale is computed in double and rounded once to the dtype. Returns False, out untouched,
    when nothing would change (every norm within its bound): the update then reads g itself."""
    cdef Py_ssize_t k, lo, hi, n = bounds[nseg]
    cdef double total, norm, big, r
    cdef bint scaled = False
    if clipvalue > 0:
        _clamp_part(g, out, n, <floating>clipvalue, min_work)
        return True
    if global_clipnorm > 0:
        total = 0
        for k in range(nseg):
            total += _sum_squares(g + bounds[k], bounds[k + 1] - bounds[k])
        if total <= DBL_MAX:
            norm = sqrt(total)
        else:                       # overflowed: each tensor's norm, rescaled by the largest
            big = 0
            for k in range(nseg):
                big = max(big, _norm_of(g + bounds[k], bounds[k + 1] - bounds[k]))
            total = 0
            for k in range(nseg):
                r = _norm_of(g + bounds[k], bounds[k + 1] - bounds[k]) / big
                total += r * r
            norm = big * sqrt(total)
        if not norm > global_clipnorm:
            return False
        _scale_part(g, out, n, <floating>(global_clipnorm / norm), min_work)
        return True
    if clipnorm > 0:
        for k in range(nseg):
            lo = bounds[k]
            hi = bounds[k + 1]
            norm = _norm_of(g + lo, hi - lo)
            if norm > clipnorm:
                if not scaled:          # the tensors before it were within the bound: copied
                    _scale_part(g, out, lo, <floating>1, min_work)
                    scaled = True
                _scale_part(g + lo, out + lo, hi - lo, <floating>(clipnorm / norm), min_work)
            elif scaled:
                _scale_part(g + lo, out + lo, hi - lo, <floating>1, min_work)
        return scaled
    return False
