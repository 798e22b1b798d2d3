"""The pure-NumPy reference backend: the test oracle and the benchmark baseline.

Written for clarity over speed, but without waste: every result goes into the caller's ``out``
buffer, as in the compiled backend. See ``fastnn.backends`` for the contract.
"""

import os

import math

import numpy as np

from fastnn import activations as A
from fastnn._interrupts import deferred_interrupts
# The layer kernels beyond Dense live in modules named as the compiled ones in fastnn/_ext/.
from fastnn.backends.numpy_conv import (conv2d_backward, conv2d_backward_input,  # noqa: F401
                                        conv2d_backward_pooled, conv2d_forward,
                                        conv2d_grouped_backward, conv2d_grouped_forward)
from fastnn.backends.numpy_conv import (conv2d_dx_on_gemm, conv3d_backward_kernel,  # noqa: F401
                                        conv3d_forward, conv3d_unstack)
from fastnn.backends.numpy_depthwise import (depthwise_conv2d_backward,  # noqa: F401
                                             depthwise_conv2d_forward)
from fastnn.backends.numpy_embedding import embedding_backward, embedding_forward  # noqa: F401
from fastnn.backends.numpy_pooling import (avgpool2d_backward, avgpool2d_forward,  # noqa: F401
                                           global_avgpool_backward, global_avgpool_forward,
                                           global_maxpool_backward, global_maxpool_forward,
                                           maxpool2d_backward, maxpool2d_backward_relu,
                                           maxpool2d_forward)
from fastnn.backends.numpy_recurrent import rnn_backward, rnn_forward, rnn_sizes  # noqa: F401
from fastnn.backends.numpy_conv_lstm import (conv_lstm_gates_backward,  # noqa: F401
                                             conv_lstm_gates_forward)
from fastnn.backends.numpy_attention import attention_backward, attention_forward  # noqa: F401
from fastnn.backends.numpy_decode import attention_decode  # noqa: F401
from fastnn.backends.numpy_keras_f32 import keras_act_f32, keras_deriv_f32
from fastnn.backends.numpy_keras_attention import (additive_scores,  # noqa: F401
                                                   additive_scores_backward, batched_matmul,
                                                   cosine_backward, cosine_forward,
                                                   dot_attention_backward,
                                                   dot_attention_forward,
                                                   masked_softmax, softmax_backward,
                                                   unit_norm_backward, unit_norm_forward,
                                                   weights_dropout)
from fastnn.backends.numpy_layer_ops import (add_forward, add_row_vector,  # noqa: F401
                                             concat_backward, concat_forward, dropout_backward,
                                             dropout_forward, dropout_mask, sum_rows_into,
                                             upsample2d_backward, upsample2d_forward,
                                             affine_rows, copy_window, binary_op,
                                             divide_scalar, select_update, select_grad,
                                             gaussian_noise, scale_channels, permute_axes,
                                             masking_forward, masking_backward,
                                             prelu_forward, prelu_backward,
                                             affine_resample, affine_resample_backward,
                                             resample_grid, resample_grid_backward,
                                             resize_separable, resize_separable_backward)
from fastnn.backends.numpy_normalization import (batchnorm_backward,  # noqa: F401
                                                 batchnorm_forward_infer,
                                                 batchnorm_forward_train, layernorm_backward,
                                                 layernorm_forward, groupnorm_forward,
                                                 groupnorm_backward, rmsnorm_forward,
                                                 rmsnorm_backward)
from fastnn.losses import (BCE_LOGITS, BCE_PROBS, BCE_SIGMOID, CE_LOGITS, CE_PROBS, CE_SOFTMAX,
                           HUBER_KIND, MAE_KIND, MSE_KIND)


def matmul(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """out := alpha * op(a) @ op(b) + beta * out"""
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    if beta == 0.0:
        np.matmul(opa, opb, out=out)
        if alpha != 1.0:
            out *= alpha
    else:
        product = opa @ opb
        out *= beta
        out += alpha * product
    return out


def _sigmoid(z, out):
    # exp of -|z| never overflows: sigmoid(z) = 1/(1+e^-z) for z >= 0, e^z/(1+e^z) otherwise.
    e = np.exp(-np.abs(z))
    np.divide(np.where(z >= 0, 1.0, e), 1.0 + e, out=out)
    return out


# GELU in float64 whatever the dtype, with the formulas of src_c/fnn_gelu.h (see there why erfc
# and sigmoid(2u) rather than 1 + erf and 1 + tanh). NumPy has no erf: math.erfc per element
# (correctly rounded to within an ulp or so, and slow: this is the reference backend).
_erfc = np.frompyfunc(math.erfc, 1, 1)
_SQRT1_2 = 0.70710678118654752440
_INV_SQRT_2PI = 0.39894228040143267794
_SQRT_2_PI = 0.79788456080286535588


def _gelu_cdf(z):
    """Phi(z) = erfc(-z / sqrt(2)) / 2, float64."""
    return 0.5 * _erfc(-z * _SQRT1_2).astype(np.float64)


def _gelu_tanh_s(z):
    """s = sigmoid(2u) and 1 - s, u = sqrt(2/pi) (z + 0.044715 z^3), float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        t = 2.0 * _SQRT_2_PI * (z + 0.044715 * z * z * z)
        e = np.exp(-np.abs(t))
    s, s1 = 1.0 / (1.0 + e), e / (1.0 + e)
    neg = t < 0
    return np.where(neg, s1, s), np.where(neg, s, s1)


def _gelu(z, approximate):
    z = np.asarray(z, np.float64)
    with np.errstate(invalid="ignore"):
        if approximate:
            s = _gelu_tanh_s(z)[0]
            return np.where(s == 0, 0.0, z * s)
        c = 2.0 * _gelu_cdf(z)
        return np.where(c == 0, 0.0, 0.5 * z * c)


def _gelu_deriv(z, approximate):
    z = np.asarray(z, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if approximate:
            s, s1 = _gelu_tanh_s(z)
            q = s * s1
            return np.where(q == 0, s,
                            s + (2.0 * z * _SQRT_2_PI * (1.0 + 0.134145 * z * z)) * q)
        cdf = _gelu_cdf(z)
        pdf = np.exp(-0.5 * z * z) * _INV_SQRT_2PI
        return np.where(pdf == 0, cdf, cdf + z * pdf)


# Keras' elu, selu, softplus and silu in float64 whatever the dtype, with the operations of
# src_c/fnn_act_keras.h (libm's expm1, log1p and exp, per element as math.* calls them: the same
# functions, so the same bits as the compiled kernels), rounded once to the dtype.
_expm1 = np.frompyfunc(math.expm1, 1, 1)
_log1p = np.frompyfunc(math.log1p, 1, 1)
_exp = np.frompyfunc(math.exp, 1, 1)
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SELU_SCALE_ALPHA = 1.7580993408473768599402175208123


def _f64(values):
    return np.asarray(values).astype(np.float64)


def _flushed(values, dtype):
    """``values`` rounded to ``dtype``, subnormal results made zeros of their sign, as the
    compiled kernels leave them (they run flush-to-zero, src_c/fnn_ftz.h)."""
    out = np.asarray(values).astype(dtype)
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(out) < np.finfo(dtype).tiny, out * 0, out)


def _keras_act(z, act, param):
    """act(z) for elu (param: alpha, taken in z's dtype as the kernels take it), selu, softplus,
    silu; float64."""
    a = float(np.asarray(param, z.dtype))
    z = np.asarray(z, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        if act == A.SOFTPLUS:
            return np.where(z > 0, z, 0.0) + _f64(_log1p(_f64(_exp(-np.abs(z)))))
        if act == A.SILU:
            s = _silu_s(z)[0]
            return np.where(s == 0, 0.0, z * s)
        em1 = _f64(_expm1(np.where(z > 0, 0.0, z)))   # expm1 of z <= 0 only (no overflow)
        if act == A.ELU:
            return np.where(z > 0, z, a * em1)
        return np.where(z > 0, _SELU_SCALE * z, _SELU_SCALE * (_SELU_ALPHA * em1))


def _silu_s(z):
    """s = sigmoid(z) and 1 - s, float64, as fnn_silu_s_f64."""
    e = _f64(_exp(-np.abs(z)))
    s, s1 = 1.0 / (1.0 + e), e / (1.0 + e)
    neg = z < 0
    return np.where(neg, s1, s), np.where(neg, s, s1)


def _keras_deriv(y, act, param):
    """act'(z) from y (elu, selu, softplus) or from z (silu); float64."""
    a = float(np.asarray(param, y.dtype))
    y = np.asarray(y, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        if act == A.ELU:
            return np.where(y > 0, 1.0, y + a)
        if act == A.SELU:
            return np.where(y > 0, _SELU_SCALE, y + _SELU_SCALE_ALPHA)
        if act == A.SOFTPLUS:
            return -_f64(_expm1(-y))
        s, s1 = _silu_s(y)
        q = s * s1
        return np.where(q == 0, s, s + y * q)


_KERAS = frozenset({A.ELU, A.SELU, A.SOFTPLUS, A.SILU})


def _keras_value(z, act, param, dtype):
    """act(z) in ``dtype``: float32 by the float formulas of the kernels (numpy_keras_f32, the
    same bits), float64 by libm's functions (as above)."""
    if dtype == np.float32:
        return keras_act_f32(z, act, param)
    return _flushed(_keras_act(z, act, param), dtype)


def _keras_slope(y, act, param, dtype):
    """act'(z) from y (silu: from z) in ``dtype``, as _keras_value."""
    if dtype == np.float32:
        return keras_deriv_f32(y, act, param)
    return _flushed(_keras_deriv(y, act, param), dtype)


def _softmax(z, out):
    np.subtract(z, z.max(axis=1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def activation_forward(z, act, param, out):
    """out := act(z)"""
    if act == A.LINEAR:
        if out is not z:
            out[...] = z
    elif act == A.STEP:
        np.greater_equal(z, param, out=out, casting="unsafe")
    elif act == A.SIGMOID:
        _sigmoid(z, out)
    elif act == A.TANH:
        np.tanh(z, out=out)
    elif act == A.RELU:
        np.maximum(z, 0, out=out)
    elif act == A.LEAKY_RELU:
        np.multiply(z, np.where(z > 0, 1.0, param).astype(z.dtype), out=out)
    elif act == A.SOFTMAX:
        _softmax(z, out)
    elif act in _KERAS:
        out[...] = _keras_value(z, act, param, out.dtype)
    elif act in A.FROM_INPUT:
        out[...] = _gelu(z, act == A.GELU_TANH)
    else:
        raise ValueError(f"unknown activation code {act}")
    return out


def activation_forward_deriv(z, act, out):
    """out := act(z), then z := act'(z) (gelu, gelu_tanh and silu; out must not be z)"""
    if act not in A.FROM_INPUT:
        raise ValueError(f"activation_forward_deriv takes gelu (7), gelu_tanh (8) or silu (13). "
                         f"Received: act={act}")
    if np.shares_memory(z, out):
        raise ValueError("activation_forward_deriv writes the derivative into z and act(z) into "
                         "out: they must be different arrays")
    if act == A.SILU:
        value = _keras_value(z, act, 0.0, out.dtype)
        z[...] = _keras_slope(z, act, 0.0, z.dtype)
        out[...] = value
        return out
    out[...] = _gelu(z, act == A.GELU_TANH)
    z[...] = _gelu_deriv(z, act == A.GELU_TANH)
    return out


def activation_backward(y, dy, act, param, out):
    """out := dL/dz from y = act(z) and dy = dL/dy (step passes the gradient straight through);
    for gelu, gelu_tanh and silu (A.FROM_INPUT) y is the pre-activation z"""
    if act in (A.LINEAR, A.STEP):
        if out is not dy:
            out[...] = dy
    elif act == A.SIGMOID:
        np.multiply(dy, y * (1 - y), out=out)
    elif act == A.TANH:
        np.multiply(dy, 1 - y * y, out=out)
    elif act == A.RELU:
        np.multiply(dy, y > 0, out=out)
    elif act == A.LEAKY_RELU:
        np.multiply(dy, np.where(y > 0, 1.0, param).astype(y.dtype), out=out)
    elif act == A.SOFTMAX:
        inner = np.sum(dy * y, axis=1, keepdims=True)
        np.multiply(y, dy - inner, out=out)
    elif act in _KERAS:
        with np.errstate(over="ignore", invalid="ignore"):   # products flushed as the kernels'
            out[...] = _flushed(dy * _keras_slope(y, act, param, y.dtype), out.dtype)
    elif act in A.FROM_INPUT:
        np.multiply(dy, _gelu_deriv(y, act == A.GELU_TANH).astype(y.dtype), out=out)
    elif act == A.DERIV_GIVEN:
        np.multiply(dy, y, out=out)
    else:
        raise ValueError(f"unknown activation code {act}")
    return out


def dense_forward(x, w, b, act, param, out):
    """out := act(x @ w + b)"""
    np.matmul(x, w, out=out)
    out += b
    return activation_forward(out, act, param, out)


def dense_backward(x, w, y, dy, act, param, dz, dw, db, dx):
    """dz := act'(y) * dy;  dw := x.T @ dz;  db := sum(dz, 0);  dx := dz @ w.T (unless None)"""
    activation_backward(y, dy, act, param, dz)
    np.matmul(x.T, dz, out=dw)
    np.sum(dz, axis=0, out=db)
    if dx is not None:
        np.matmul(dz, w.T, out=dx)


def _summed(terms, weights):
    """sum(terms) in double; with sample weights, sum_i w_i * (row i's sum)."""
    if weights is None:
        return np.sum(terms, dtype=np.float64)
    return np.dot(np.sum(terms, axis=1, dtype=np.float64), weights.astype(np.float64))


def loss(kind, output, target, grad, weights=None, param=1.0):
    """The mean loss of ``output`` against ``target`` (with sample ``weights``: the weighted sum of
    the per-sample losses over n); also its gradient into ``grad`` if given. ``param`` is
    Huber's delta; for the cross-entropies ``keep = 1 - label smoothing``: each target is read as
    ``t keep + (1 - keep) / C`` (binary: ``/ 2``), and as it is when ``keep`` is 1."""
    eps = np.finfo(output.dtype).eps
    n = output.shape[0]
    count = output.size if kind <= BCE_SIGMOID else n
    if kind >= BCE_LOGITS and param != 1:
        dt = output.dtype.type
        keep = dt(param)
        share = dt(0.5) if kind <= BCE_SIGMOID else dt(output.shape[1])
        off = (dt(1) - keep) * share if kind <= BCE_SIGMOID else (dt(1) - keep) / share
        target = target * keep + off
    if kind == MSE_KIND:
        diff = output - target
        value = _summed(diff * diff, weights)
        if grad is not None:
            np.multiply(diff, 2.0 / count, out=grad)
    elif kind == MAE_KIND:
        diff = output - target
        value = _summed(np.abs(diff), weights)
        if grad is not None:
            np.multiply(np.sign(diff), 1.0 / count, out=grad)
    elif kind == HUBER_KIND:
        dt = output.dtype.type
        delta, half = dt(param), dt(0.5)
        diff = output - target
        a = np.abs(diff)
        value = _summed(np.where(a <= delta, half * (diff * diff),
                                 delta * a - half * (delta * delta)), weights)
        if grad is not None:
            np.multiply(np.clip(diff, -delta, delta), 1.0 / count, out=grad)
    elif kind == BCE_LOGITS:
        z = output
        # log(1 + e^z) - z t, written so that exp never overflows.
        value = _summed(np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z))), weights)
        if grad is not None:
            _sigmoid(z, grad)
            grad -= target
            grad /= count
    elif kind in (BCE_PROBS, BCE_SIGMOID):
        p = np.clip(output, eps, 1 - eps)
        value = -_summed(target * np.log(p) + (1 - target) * np.log(1 - p), weights)
        if grad is not None:
            if kind == BCE_SIGMOID:
                np.subtract(output, target, out=grad)
            else:
                np.divide(p - target, p * (1 - p), out=grad)
            grad /= count
    elif kind == CE_LOGITS:
        zmax = output.max(axis=1, keepdims=True)
        shifted = output - zmax
        lse = np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        value = _summed(target * (lse - shifted), weights)
        if grad is not None:
            _softmax(output, grad)
            grad *= target.sum(axis=1, keepdims=True)
            grad -= target
            grad /= count
    elif kind in (CE_PROBS, CE_SOFTMAX):
        p = np.maximum(output, eps)
        value = -_summed(target * np.log(p), weights)
        if grad is not None:
            if kind == CE_SOFTMAX:
                np.subtract(output, target, out=grad)
            else:
                np.divide(-target, p, out=grad)
            grad /= count
    else:
        raise ValueError(f"unknown loss code {kind}")
    if weights is not None and grad is not None:
        grad *= weights[:, None]
    return float(value / count)


def sgd_update(params, grads, velocity, lr, momentum, nesterov, weight_decay, counter=None):
    """g := grad + wd p;  v := mu v + g;  p -= lr (g + mu v if nesterov else v);  counter += 1"""
    with deferred_interrupts():          # the arrays and the count change together or not at all
        g = grads + weight_decay * params if weight_decay else grads
        if momentum == 0.0:
            params -= lr * g
        else:
            velocity *= momentum
            velocity += g
            if nesterov:
                params -= lr * (g + momentum * velocity)
            else:
                params -= lr * velocity
        if counter is not None:
            counter[0] += 1


def adam_update(params, grads, m, v, step, lr, beta1, beta2, eps, weight_decay, counter=None):
    """m := b1 m + (1-b1) g;  v := b2 v + (1-b2) g^2;  p -= lr mhat / (sqrt(vhat) + eps)"""
    with deferred_interrupts():          # the arrays and the count change together or not at all
        g = grads + weight_decay * params if weight_decay else grads
        _adam_step(params, g, m, v, step, lr, beta1, beta2, eps)
        if counter is not None:
            counter[0] += 1


def _adam_step(params, g, m, v, step, lr, beta1, beta2, eps):
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * (g * g)
    correction1 = 1 - beta1 ** step
    correction2 = 1 - beta2 ** step
    params -= lr * (m / correction1) / (np.sqrt(v / correction2) + eps)


def rmsprop_update(params, grads, mean_square, mean_grad, buffer, lr, rho, momentum, eps,
                   centered, counter=None):
    """v := rho v + (1-rho) g^2;  d := v + eps, or max(v - a^2, 0) + eps with a := rho a + (1-rho) g
    when centered;  inc := lr g / sqrt(d);  p -= inc, or b := momentum b + inc and p -= b"""
    with deferred_interrupts():          # the arrays and the count change together or not at all
        g = grads
        mean_square *= rho
        mean_square += (1 - rho) * (g * g)
        if centered:
            mean_grad *= rho
            mean_grad += (1 - rho) * g
            denominator = np.maximum(mean_square - mean_grad * mean_grad, 0) + eps
        else:
            denominator = mean_square + eps
        increment = lr * g / np.sqrt(denominator)
        if momentum == 0.0:
            params -= increment
        else:
            buffer *= momentum
            buffer += increment
            params -= buffer
        if counter is not None:
            counter[0] += 1


def adamw_update(params, grads, m, v, step, lr, beta1, beta2, eps, weight_decay, counter=None):
    """p -= (lr wd) p;  then adam_update's step of the decayed p with weight_decay 0"""
    with deferred_interrupts():          # the arrays and the count change together or not at all
        params -= (lr * weight_decay) * params
        _adam_step(params, grads, m, v, step, lr, beta1, beta2, eps)
        if counter is not None:
            counter[0] += 1


def adagrad_update(params, grads, accumulator, lr, eps, counter=None):
    """a := min(a + g^2, finfo.max);  p -= lr g / sqrt(a + eps)"""
    with deferred_interrupts():          # the arrays and the count change together or not at all
        g = grads
        with np.errstate(over="ignore"):             # a sum past the maximum stops there
            np.minimum(accumulator + g * g, np.finfo(accumulator.dtype).max, out=accumulator)
        params -= lr * g / np.sqrt(accumulator + eps)
        if counter is not None:
            counter[0] += 1


def adamax_update(params, grads, m, u, step, lr, beta1, beta2, eps, counter=None):
    """m := m + (g - m)(1-b1);  u := max(b2 u, |g|);  p -= lr m / ((1 - b1^t)(u + eps))"""
    with deferred_interrupts():          # the arrays and the count change together or not at all
        g = grads
        m += (g - m) * (1 - beta1)
        np.maximum(beta2 * u, np.abs(g), out=u)
        params -= lr * m / ((1 - beta1 ** step) * (u + eps))
        if counter is not None:
            counter[0] += 1


def nadam_update(params, grads, m, v, step, lr, beta1, beta2, eps, mu_t, mu_next, prod_t,
                 prod_next, counter=None):
    """m := m + (g - m)(1-b1);  v := v + (g^2 - v)(1-b2);
    p -= (mu_next m / (1 - prod_next) + (1 - mu_t) g / (1 - prod_t)) lr / (sqrt(v_hat) + eps)"""
    with deferred_interrupts():          # the arrays and the count change together or not at all
        g = grads
        m += (g - m) * (1 - beta1)
        v += (g * g - v) * (1 - beta2)
        m_hat = mu_next * m / (1 - prod_next) + (1 - mu_t) * g / (1 - prod_t)
        params -= m_hat * lr / (np.sqrt(v / (1 - beta2 ** step)) + eps)
        if counter is not None:
            counter[0] += 1


def _norm(g):
    """||g||_2 with the squares summed in float64 (rescaled by max |g| if that overflows)."""
    g64 = g.astype(np.float64)
    with np.errstate(over="ignore"):
        s = float(np.dot(g64, g64))
    if math.isfinite(s):
        return math.sqrt(s)
    big = float(np.abs(g64).max())
    r = g64 / big
    return big * math.sqrt(float(np.dot(r, r)))


def clip_gradients(grads, out, bounds, clipnorm, clipvalue, global_clipnorm):
    """out := clipvalue c: clip(g, -c, c);  clipnorm c: each tensor [b_k, b_k+1) times
    c / max(||g_k||, c);  global_clipnorm c: all times c / max(||g||, c)  (0: off, at most one
    on; g finite). The scale in double, rounded once to the dtype. Returns False, out untouched,
    when nothing changes."""
    if clipvalue > 0:
        np.clip(grads, -clipvalue, clipvalue, out=out)
        return True
    segments = [grads[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    if global_clipnorm > 0:
        with np.errstate(over="ignore"):
            total = sum(float(np.dot(g.astype(np.float64), g.astype(np.float64)))
                        for g in segments)
        if math.isfinite(total):
            norm = math.sqrt(total)
        else:
            norms = [_norm(g) for g in segments]
            big = max(norms)
            norm = big * math.sqrt(sum((x / big) ** 2 for x in norms))
        if not norm > global_clipnorm:
            return False
        np.multiply(grads, grads.dtype.type(global_clipnorm / norm), out=out)
        return True
    if clipnorm > 0:
        scales = [clipnorm / norm if norm > clipnorm else 1.0
                  for norm in (_norm(g) for g in segments)]
        if all(s == 1.0 for s in scales):
            return False
        for (a, b), s in zip(zip(bounds[:-1], bounds[1:]), scales):
            np.multiply(grads[a:b], grads.dtype.type(s), out=out[a:b])
        return True
    return False


def set_num_threads(n):
    """The reference backend has no threads of its own; NumPy's BLAS keeps its own pool."""


def get_num_threads():
    return 1


def thread_limit():
    """The compiled backend's bound on thread counts, min(max(64, 4 * CPUs), 4096)
    (src_c/fnn_threads.h), so that set_num_threads accepts the same values on either."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):        # not on Linux
        cpus = os.cpu_count() or 1
    return min(max(64, 4 * min(cpus, 4096)), 4096)

