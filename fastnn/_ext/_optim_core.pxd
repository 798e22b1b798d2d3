# Optimizer loops shared by the update kernels (_optim.pyx) and the compiled training step
# (_train.pxi): inline, so each module compiles its own copy of one source.

from cython cimport floating
from cython.parallel cimport prange

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
