"""An independent NumPy model of what fastnn computes, written from the spec (DESIGN.md).

Tests compare the library against these few lines instead of against its own code: a forward
pass, the three losses in their probability and logit forms, and backpropagation (with the
straight-through gradient of ``step``). Everything runs in float64.
"""

import math

import numpy as np

ACTIVATIONS = ("linear", "step", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "gelu",
               "gelu_tanh", "elu", "selu", "softplus", "silu")
# activations whose derivative the kernels take from the pre-activation z, not the output y
FROM_INPUT = ("gelu", "gelu_tanh", "silu")
# Keras' selu constants
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_erf = np.vectorize(math.erf, otypes=[np.float64])
_C = math.sqrt(2.0 / math.pi)
DEFAULT_PARAM = {"step": 0.5, "leaky_relu": 0.01, "elu": 1.0}


def act_forward(z, act, param=None):
    if param is None:
        param = DEFAULT_PARAM.get(act, 0.0)
    if act == "linear":
        return z.copy()
    if act == "step":
        return (z >= param).astype(np.float64)
    if act == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if act == "tanh":
        return np.tanh(z)
    if act == "relu":
        return np.maximum(z, 0.0)
    if act == "leaky_relu":
        return np.where(z > 0, z, param * z)
    if act == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if act == "gelu":          # Keras' and PyTorch's textbook forms
        return 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))
    if act == "gelu_tanh":
        return 0.5 * z * (1.0 + np.tanh(_C * (z + 0.044715 * z ** 3)))
    if act == "elu":           # the papers' forms (Keras: expm1; here exp - 1)
        return np.where(z > 0, z, param * (np.exp(np.minimum(z, 0.0)) - 1.0))
    if act == "selu":
        return SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * (np.exp(np.minimum(z, 0.0)) - 1.0))
    if act == "softplus":
        return np.log(1.0 + np.exp(z))
    if act == "silu":
        return z / (1.0 + np.exp(-z))
    raise KeyError(act)


def act_backward(z, y, dy, act, param=None):
    """dL/dz from dL/dy, given z and y = act(z). ``step`` passes dy straight through."""
    if param is None:
        param = DEFAULT_PARAM.get(act, 0.0)
    if act in ("linear", "step"):
        return dy.copy()
    if act == "sigmoid":
        return dy * y * (1.0 - y)
    if act == "tanh":
        return dy * (1.0 - y * y)
    if act == "relu":
        return dy * (z > 0)
    if act == "leaky_relu":
        return dy * np.where(z > 0, 1.0, param)
    if act == "softmax":
        return y * (dy - np.sum(dy * y, axis=1, keepdims=True))
    if act == "gelu":
        return dy * (0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
                     + z * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi))
    if act == "gelu_tanh":
        t = np.tanh(_C * (z + 0.044715 * z ** 3))
        return dy * (0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _C * (1.0 + 3 * 0.044715 * z * z))
    if act == "elu":
        return dy * np.where(z > 0, 1.0, param * np.exp(np.minimum(z, 0.0)))
    if act == "selu":
        return dy * SELU_SCALE * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(z, 0.0)))
    if act in ("softplus", "silu"):
        s = 1.0 / (1.0 + np.exp(-z))
        return dy * (s if act == "softplus" else s * (1.0 + z * (1.0 - s)))
    raise KeyError(act)


def forward(weights, acts, x, params=None):
    """Pre-activations and outputs of every Dense layer. ``acts`` one name per layer."""
    params = params or [None] * len(acts)
    h = np.asarray(x, dtype=np.float64)
    zs, ys = [], []
    for i, act in enumerate(acts):
        W, b = weights[2 * i], weights[2 * i + 1]
        z = h @ np.asarray(W, np.float64) + np.asarray(b, np.float64)
        h = act_forward(z, act, params[i])
        zs.append(z)
        ys.append(h)
    return zs, ys


def one_hot(labels, n_classes):
    t = np.zeros((len(labels), n_classes))
    t[np.arange(len(labels)), np.asarray(labels, dtype=np.intp)] = 1.0
    return t


def loss_and_output_grad(loss, final_act, out, t):
    """The mean loss and dL/d(out), reading ``out`` as probabilities after a final sigmoid
    or softmax and as logits otherwise. ``t`` is dense (n, C)."""
    probs = final_act in ("sigmoid", "softmax")
    n = out.shape[0]
    if loss == "mse":
        d = out - t
        return np.mean(d * d), 2.0 * d / out.size
    if loss == "binary_cross_entropy":
        if probs:
            p = out
            value = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
            return value, (p - t) / (p * (1 - p)) / out.size
        z = out
        value = np.mean(np.logaddexp(0.0, z) - z * t)
        return value, (1.0 / (1.0 + np.exp(-z)) - t) / out.size
    if loss == "cross_entropy":
        if probs:
            value = -np.sum(t * np.log(out)) / n
            return value, -t / out / n
        lse = np.logaddexp.reduce(out, axis=1, keepdims=True)
        value = np.sum(t * (lse - out)) / n
        soft = np.exp(out - lse)
        return value, (soft * t.sum(axis=1, keepdims=True) - t) / n
    raise KeyError(loss)


def loss_and_gradients(weights, acts, x, t, loss, params=None):
    """The loss and its gradients ``[dW1, db1, ...]`` by hand-written backpropagation."""
    params = params or [None] * len(acts)
    x = np.asarray(x, dtype=np.float64)
    zs, ys = forward(weights, acts, x, params)
    value, dy = loss_and_output_grad(loss, acts[-1], ys[-1], t)
    grads = [None] * len(weights)
    for i in range(len(acts) - 1, -1, -1):
        dz = act_backward(zs[i], ys[i], dy, acts[i], params[i])
        h = x if i == 0 else ys[i - 1]
        grads[2 * i] = h.T @ dz
        grads[2 * i + 1] = dz.sum(axis=0)
        dy = dz @ np.asarray(weights[2 * i], np.float64).T
    return value, grads


def rel_error(a, b):
    """||a - b|| / (||a|| + ||b||), 0 when both are zero."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / max(denom, 1e-300))


def tolerances(dtype):
    """(rtol, atol factor): fast vs reference agreement required for ``dtype``."""
    return (1e-5, 1e-5) if np.dtype(dtype) == np.float32 else (1e-12, 1e-12)


def assert_close(actual, expected, dtype, scale=None, what=""):
    """|actual - expected| <= rtol |expected| + atol_factor * scale, elementwise.

    ``scale`` (default max |expected|, at least 1e-30) is the magnitude of the computation,
    so that values that cancel to near zero are judged against the size of their terms.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    rtol, afac = tolerances(dtype)
    if scale is None:
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    atol = afac * max(float(np.max(scale)) if np.size(scale) else 0.0, 1e-30)
    bad = np.abs(actual - expected) > rtol * np.abs(expected) + atol
    if bad.any():
        idx = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {bad.sum()} of {bad.size} elements differ (rtol={rtol}, atol={atol:.3g}); "
            f"first at {idx}: {actual[idx]!r} vs {expected[idx]!r}")
