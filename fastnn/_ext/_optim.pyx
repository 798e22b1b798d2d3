# Optimizer kernels of the fast backend: one fused pass over the flat parameter vector.
#
# The model keeps all parameters (and all gradients) of a network in one flat array each, so an
# optimizer step is a single element-wise loop, split in contiguous static chunks over threads.
# Each element is updated on its own, so the result does not depend on the thread count.
# The hyper-parameters are rounded to the array dtype once, and each formula keeps the operation
# order of the plain NumPy expression in the contract, so both backends agree to the last bits.

from cython cimport floating
from libc.stdint cimport int64_t

from fastnn._ext._optim_core cimport _sgd, _adam
from fastnn._ext._parallel cimport PARALLEL_MIN_WORK


def sgd_update(floating[::1] params,         # OUT (N,) updated in place
               const floating[::1] grads,    # IN  (N,)
               floating[::1] velocity,       # OUT (N,) momentum buffer (unused when momentum == 0)
               double lr, double momentum, bint nesterov, double weight_decay,
               int64_t[::1] counter=None):   # OUT (1,) the step count, + 1 after the update
    """p -= lr * (nesterov ? g + momentum v : v),  v := momentum v + g,  g := grad + wd p

    The step count moves in the same call as the weights, so a KeyboardInterrupt (seen by Python
    only between calls) cannot separate them."""
    cdef Py_ssize_t n = params.shape[0]
    cdef floating *vel = NULL
    if grads.shape[0] != n:
        raise ValueError("fastnn kernel called with inconsistent shapes: sgd_update")
    if momentum != 0:
        if velocity is None or velocity.shape[0] != n:
            raise ValueError("fastnn kernel called with inconsistent shapes: sgd_update velocity")
        vel = &velocity[0]
    if counter is not None and counter.shape[0] != 1:
        raise ValueError("fastnn kernel called with inconsistent shapes: sgd_update counter")
    if n > 0:
        with nogil:
            _sgd(&params[0], &grads[0], vel, n, <floating>lr, <floating>momentum, nesterov,
                 <floating>weight_decay, PARALLEL_MIN_WORK)
    if counter is not None:
        counter[0] += 1


def adam_update(floating[::1] params,        # OUT (N,) updated in place
                const floating[::1] grads,   # IN  (N,)
                floating[::1] m,             # OUT (N,) first-moment estimate
                floating[::1] v,             # OUT (N,) second-moment estimate
                long step, double lr, double beta1, double beta2, double eps,
                double weight_decay,
                int64_t[::1] counter=None):  # OUT (1,) the step count, + 1 after the update
    """p -= lr * m_hat / (sqrt(v_hat) + eps);  m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)

    The step count moves in the same call as the weights (see sgd_update)."""
    cdef Py_ssize_t n = params.shape[0]
    if grads.shape[0] != n or m.shape[0] != n or v.shape[0] != n:
        raise ValueError("fastnn kernel called with inconsistent shapes: adam_update")
    if step < 1:
        raise ValueError(f"step counts from 1. Received: step={step}")
    if counter is not None and counter.shape[0] != 1:
        raise ValueError("fastnn kernel called with inconsistent shapes: adam_update counter")
    # The bias corrections once per step, in double like Python's `1 - beta1 ** step`.
    cdef double bc1 = 1 - beta1 ** step
    cdef double bc2 = 1 - beta2 ** step
    if n > 0:
        with nogil:
            _adam(&params[0], &grads[0], &m[0], &v[0], n, <floating>lr, <floating>beta1,
                  <floating>beta2, <floating>(1 - beta1), <floating>(1 - beta2), <floating>bc1,
                  <floating>bc2, <floating>eps, <floating>weight_decay, PARALLEL_MIN_WORK)
    if counter is not None:
        counter[0] += 1
