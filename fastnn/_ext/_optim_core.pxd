# Optimizer loops shared by the update kernels (_optim.pyx) and the compiled training step
# (_train.pxi): inline, so each module compiles its own copy of one source.

from cython cimport floating
from cython.parallel cimport prange

from fastnn._ext._elementwise cimport f_sqrt
from fastnn._ext._parallel cimport threads_for


cdef inline void _sgd(floating *p, const floating *grad, floating *vel, Py_ssize_t n, floating lr,
               floating mu, bint nesterov, floating wd) noexcept nogil:
    """g := grad + wd p;  v := mu v + g;  p -= lr (nesterov ? g + mu v : v)  (mu == 0: p -= lr g)"""
    cdef Py_ssize_t i
    cdef floating g, v
    cdef int nt = threads_for(n)
    if mu == 0:
        for i in prange(n, schedule='static', num_threads=nt):
            g = grad[i] + wd * p[i]
            p[i] = p[i] - lr * g
    elif nesterov:
        for i in prange(n, schedule='static', num_threads=nt):
            g = grad[i] + wd * p[i]
            v = mu * vel[i] + g
            vel[i] = v
            p[i] = p[i] - lr * (g + mu * v)
    else:
        for i in prange(n, schedule='static', num_threads=nt):
            g = grad[i] + wd * p[i]
            v = mu * vel[i] + g
            vel[i] = v
            p[i] = p[i] - lr * v


cdef inline void _adam(floating *p, const floating *grad, floating *m, floating *v, Py_ssize_t n,
                floating lr, floating b1, floating b2, floating one_b1, floating one_b2,
                floating bc1, floating bc2, floating eps, floating wd) noexcept nogil:
    """g := grad + wd p;  m := b1 m + (1 - b1) g;  v := b2 v + (1 - b2) g^2;
    p -= lr (m / bc1) / (sqrt(v / bc2) + eps)"""
    cdef Py_ssize_t i
    cdef floating g, mi, vi
    cdef int nt = threads_for(n)
    for i in prange(n, schedule='static', num_threads=nt):
        g = grad[i] + wd * p[i]
        mi = b1 * m[i] + one_b1 * g
        vi = b2 * v[i] + one_b2 * (g * g)
        m[i] = mi
        v[i] = vi
        p[i] = p[i] - lr * (mi / bc1) / (f_sqrt(vi / bc2) + eps)
