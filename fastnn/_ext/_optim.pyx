# Optimizer kernels of the fast backend: one fused pass over the flat parameter vector.
#
# The model keeps all parameters (and all gradients) of a network in one flat array each, so an
# optimizer step is a single element-wise loop, split in contiguous static chunks over threads.
# Each element is updated on its own, so the result does not depend on the thread count.
# The hyper-parameters are rounded to the array dtype once, and each formula keeps the operation
# order of the plain NumPy expression in the contract, so both backends agree to the last bits.

from cython cimport floating
from libc.float cimport DBL_MAX, FLT_MAX
from libc.stdint cimport int64_t

from fastnn._ext._optim_core cimport (_sgd, _adam, _rmsprop, _adamw, _adagrad, _adamax,
                                      _nadam, _clip_grads,
                                      fnn_max_abs_f32, fnn_max_abs_f64)
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


def rmsprop_update(floating[::1] params,        # OUT (N,) updated in place
                   const floating[::1] grads,   # IN  (N,)
                   floating[::1] mean_square,   # OUT (N,) v, the mean of squared gradients
                   floating[::1] mean_grad,     # OUT (N,) a, the mean gradient (centered only)
                   floating[::1] buffer,        # OUT (N,) b, the momentum buffer (momentum > 0)
                   double lr, double rho, double momentum, double eps, bint centered,
                   int64_t[::1] counter=None):  # OUT (1,) the step count, + 1 after the update
    """v := rho v + (1 - rho) g^2;  p -= lr g / sqrt(v + eps)  (Keras' RMSprop; centered: v - a^2
    clamped at 0 under the root; momentum: b := momentum b + that step, p -= b)

    The step count moves in the same call as the weights (see sgd_update)."""
    cdef Py_ssize_t n = params.shape[0]
    cdef floating *a = NULL
    cdef floating *b = NULL
    if grads.shape[0] != n or mean_square.shape[0] != n:
        raise ValueError("fastnn kernel called with inconsistent shapes: rmsprop_update")
    if centered:
        if mean_grad is None or mean_grad.shape[0] != n:
            raise ValueError("fastnn kernel called with inconsistent shapes: rmsprop_update "
                             "mean_grad")
        if n > 0:
            a = &mean_grad[0]
    if momentum != 0:
        if buffer is None or buffer.shape[0] != n:
            raise ValueError("fastnn kernel called with inconsistent shapes: rmsprop_update "
                             "buffer")
        if n > 0:
            b = &buffer[0]
    if counter is not None and counter.shape[0] != 1:
        raise ValueError("fastnn kernel called with inconsistent shapes: rmsprop_update counter")
    if n > 0:
        with nogil:
            _rmsprop(&params[0], &grads[0], &mean_square[0], a, b, n, <floating>lr,
                     <floating>rho, <floating>(1 - rho), <floating>momentum, <floating>eps,
                     centered, PARALLEL_MIN_WORK)
    if counter is not None:
        counter[0] += 1


def adamw_update(floating[::1] params,       # OUT (N,) updated in place
                 const floating[::1] grads,  # IN  (N,)
                 floating[::1] m,            # OUT (N,) first-moment estimate
                 floating[::1] v,            # OUT (N,) second-moment estimate
                 long step, double lr, double beta1, double beta2, double eps,
                 double weight_decay,
                 int64_t[::1] counter=None):  # OUT (1,) the step count, + 1 after the update
    """p -= (lr * weight_decay) p;  then adam_update's step with weight_decay 0 (decoupled decay)

    The step count moves in the same call as the weights (see sgd_update)."""
    cdef Py_ssize_t n = params.shape[0]
    if grads.shape[0] != n or m.shape[0] != n or v.shape[0] != n:
        raise ValueError("fastnn kernel called with inconsistent shapes: adamw_update")
    if step < 1:
        raise ValueError(f"step counts from 1. Received: step={step}")
    if counter is not None and counter.shape[0] != 1:
        raise ValueError("fastnn kernel called with inconsistent shapes: adamw_update counter")
    cdef double bc1 = 1 - beta1 ** step
    cdef double bc2 = 1 - beta2 ** step
    if n > 0:
        with nogil:
            _adamw(&params[0], &grads[0], &m[0], &v[0], n, <floating>lr, <floating>beta1,
                   <floating>beta2, <floating>(1 - beta1), <floating>(1 - beta2), <floating>bc1,
                   <floating>bc2, <floating>eps, <floating>(lr * weight_decay),
                   PARALLEL_MIN_WORK)
    if counter is not None:
        counter[0] += 1


def adagrad_update(floating[::1] params,        # OUT (N,) updated in place
                   const floating[::1] grads,   # IN  (N,)
                   floating[::1] accumulator,   # OUT (N,) a, the sum of squared gradients
                   double lr, double eps,
                   int64_t[::1] counter=None):  # OUT (1,) the step count, + 1 after the update
    """a := min(a + g^2, finfo.max);  p -= lr g / sqrt(a + eps)  (Keras' Adagrad)

    The step count moves in the same call as the weights (see sgd_update)."""
    cdef Py_ssize_t n = params.shape[0]
    if grads.shape[0] != n or accumulator.shape[0] != n:
        raise ValueError("fastnn kernel called with inconsistent shapes: adagrad_update")
    if counter is not None and counter.shape[0] != 1:
        raise ValueError("fastnn kernel called with inconsistent shapes: adagrad_update counter")
    cdef floating a_max = FLT_MAX if floating is float else DBL_MAX
    if n > 0:
        with nogil:
            _adagrad(&params[0], &grads[0], &accumulator[0], n, <floating>lr, <floating>eps,
                     a_max, PARALLEL_MIN_WORK)
    if counter is not None:
        counter[0] += 1


def adamax_update(floating[::1] params,       # OUT (N,) updated in place
                  const floating[::1] grads,  # IN  (N,)
                  floating[::1] m,            # OUT (N,) first-moment estimate
                  floating[::1] u,            # OUT (N,) exponentially weighted infinity norm
                  long step, double lr, double beta1, double beta2, double eps,
                  int64_t[::1] counter=None):  # OUT (1,) the step count, + 1 after the update
    """m := m + (g - m)(1 - b1);  u := max(b2 u, |g|);  p -= lr m / ((1 - b1^t)(u + eps))
    (Keras' Adamax; the step count moves with the weights, see sgd_update)"""
    cdef Py_ssize_t n = params.shape[0]
    if grads.shape[0] != n or m.shape[0] != n or u.shape[0] != n:
        raise ValueError("fastnn kernel called with inconsistent shapes: adamax_update")
    if step < 1:
        raise ValueError(f"step counts from 1. Received: step={step}")
    if counter is not None and counter.shape[0] != 1:
        raise ValueError("fastnn kernel called with inconsistent shapes: adamax_update counter")
    cdef double bc1 = 1 - beta1 ** step
    if n > 0:
        with nogil:
            _adamax(&params[0], &grads[0], &m[0], &u[0], n, <floating>lr, <floating>(1 - beta1),
                    <floating>beta2, <floating>bc1, <floating>eps, PARALLEL_MIN_WORK)
    if counter is not None:
        counter[0] += 1


def nadam_update(floating[::1] params,       # OUT (N,) updated in place
                 const floating[::1] grads,  # IN  (N,)
                 floating[::1] m,            # OUT (N,) first-moment estimate
                 floating[::1] v,            # OUT (N,) second-moment estimate
                 long step, double lr, double beta1, double beta2, double eps,
                 double mu_t, double mu_next, double prod_t, double prod_next,
                 int64_t[::1] counter=None):  # OUT (1,) the step count, + 1 after the update
    """m := m + (g - m)(1 - b1);  v := v + (g^2 - v)(1 - b2);
    p -= (mu_next m / (1 - prod_next) + (1 - mu_t) g / (1 - prod_t)) lr / (sqrt(v_hat) + eps)
    with v_hat = v / (1 - b2^t) (Keras' Nadam; mu_t and the products of the momentum schedule
    from the caller; the step count moves with the weights, see sgd_update)"""
    cdef Py_ssize_t n = params.shape[0]
    if grads.shape[0] != n or m.shape[0] != n or v.shape[0] != n:
        raise ValueError("fastnn kernel called with inconsistent shapes: nadam_update")
    if step < 1:
        raise ValueError(f"step counts from 1. Received: step={step}")
    if counter is not None and counter.shape[0] != 1:
        raise ValueError("fastnn kernel called with inconsistent shapes: nadam_update counter")
    cdef double bc2 = 1 - beta2 ** step
    if n > 0:
        with nogil:
            _nadam(&params[0], &grads[0], &m[0], &v[0], n, <floating>lr, <floating>(1 - beta1),
                   <floating>(1 - beta2), <floating>mu_next, <floating>(1 - prod_next),
                   <floating>(1 - mu_t), <floating>(1 - prod_t), <floating>bc2, <floating>eps,
                   PARALLEL_MIN_WORK)
    if counter is not None:
        counter[0] += 1


def clip_gradients(const floating[::1] grads,   # IN  (N,) finite (the caller screens them)
                   floating[::1] out,           # OUT (N,) the clipped gradient, when True
                   const int64_t[::1] bounds,   # IN  (K + 1,) 0 = b0 <= b1 <= ... <= bK = N
                   double clipnorm, double clipvalue, double global_clipnorm):
    """out := clip(grads): clipvalue c: min(max(g, -c), c); clipnorm c: each tensor
    [b_k, b_k+1) times c / max(||g_k||, c); global_clipnorm c: all times c / max(||g||, c)
    (0: off; at most one on). Returns False, out untouched, when nothing changes."""
    cdef Py_ssize_t n = grads.shape[0], k, nseg = bounds.shape[0] - 1
    cdef bint wrote
    if out.shape[0] != n or nseg < 1 or bounds[0] != 0 or bounds[nseg] != n:
        raise ValueError("fastnn kernel called with inconsistent shapes: clip_gradients")
    for k in range(nseg):
        if bounds[k + 1] < bounds[k]:
            raise ValueError("clip_gradients: bounds must not decrease")
    if (clipnorm > 0) + (clipvalue > 0) + (global_clipnorm > 0) > 1:
        raise ValueError("clip_gradients: at most one of clipnorm, clipvalue and "
                         "global_clipnorm may be on")
    if n == 0:
        return False
    with nogil:
        wrote = _clip_grads(&grads[0], &out[0], &bounds[0], nseg, clipnorm, clipvalue,
                            global_clipnorm, PARALLEL_MIN_WORK)
    return wrote


def max_abs(const floating[::1] x):            # IN  (N,)
    """max |x_i| (0.0 for N == 0), or NaN when any x_i is NaN or inf: one pass in C, no
    temporary (the optimizers' gradient screens and the finiteness checks of user input; NumPy's
    isfinite-then-all or max-and-min take two passes and, after another library's work has
    evicted the caches, several times this call's time in cold code)."""
    cdef Py_ssize_t n = x.shape[0]
    cdef double r
    if n == 0:
        return 0.0
    if n <= 65536:                  # releasing the GIL would cost more than the pass
        return _max_abs_of(&x[0], n)
    with nogil:                     # a large array: other Python threads run meanwhile
        r = _max_abs_of(&x[0], n)
    return r


cdef inline double _max_abs_of(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fnn_max_abs_f32(x, n)
    else:
        return fnn_max_abs_f64(x, n)
