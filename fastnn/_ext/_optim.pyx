# Optimizer kernels of the fast backend: one fused pass over the flat parameter vector.
#
# The model keeps all parameters (and all gradients) of a network in one flat array each, so an
# optimizer step is a single element-wise loop, split in contiguous static chunks over threads.
# Each element is updated on its own, so the result does not depend on the thread count.
# The hyper-parameters are rounded to the array dtype once, and each formula keeps the operation
# order of the plain NumPy expression in the contract, so both backends agree to the last bits.

from cython cimport floating
from cython.parallel cimport prange

from fastnn._ext._elementwise cimport f_sqrt
from fastnn._ext._parallel cimport threads_for


cdef void _sgd(floating *p, const floating *grad, floating *vel, Py_ssize_t n, floating lr,
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


cdef void _adam(floating *p, const floating *grad, floating *m, floating *v, Py_ssize_t n,
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


def sgd_update(floating[::1] params,         # OUT (N,) updated in place
               const floating[::1] grads,    # IN  (N,)
               floating[::1] velocity,       # OUT (N,) momentum buffer (unused when momentum == 0)
               double lr, double momentum, bint nesterov, double weight_decay):
    """p -= lr * (nesterov ? g + momentum v : v),  v := momentum v + g,  g := grad + wd p"""
    cdef Py_ssize_t n = params.shape[0]
    cdef floating *vel = NULL
    if grads.shape[0] != n:
        raise ValueError("fastnn kernel called with inconsistent shapes: sgd_update")
    if momentum != 0:
        if velocity is None or velocity.shape[0] != n:
            raise ValueError("fastnn kernel called with inconsistent shapes: sgd_update velocity")
        vel = &velocity[0]
    if n == 0:
        return
    with nogil:
        _sgd(&params[0], &grads[0], vel, n, <floating>lr, <floating>momentum, nesterov,
             <floating>weight_decay)


def adam_update(floating[::1] params,        # OUT (N,) updated in place
                const floating[::1] grads,   # IN  (N,)
                floating[::1] m,             # OUT (N,) first-moment estimate
                floating[::1] v,             # OUT (N,) second-moment estimate
                long step, double lr, double beta1, double beta2, double eps,
                double weight_decay):
    """p -= lr * m_hat / (sqrt(v_hat) + eps);  m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)"""
    cdef Py_ssize_t n = params.shape[0]
    if grads.shape[0] != n or m.shape[0] != n or v.shape[0] != n:
        raise ValueError("fastnn kernel called with inconsistent shapes: adam_update")
    if step < 1:
        raise ValueError(f"step counts from 1. Received: step={step}")
    # The bias corrections once per step, in double like Python's `1 - beta1 ** step`.
    cdef double bc1 = 1 - beta1 ** step
    cdef double bc2 = 1 - beta2 ** step
    if n == 0:
        return
    with nogil:
        _adam(&params[0], &grads[0], &m[0], &v[0], n, <floating>lr, <floating>beta1,
              <floating>beta2, <floating>(1 - beta1), <floating>(1 - beta2), <floating>bc1,
              <floating>bc2, <floating>eps, <floating>weight_decay)
