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
