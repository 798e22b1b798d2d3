"""Optimizers: gradient descent with a learning rate, as one fused pass over all parameters.

The model keeps every parameter in one flat buffer (each layer's W and b are views into it) and
every gradient in another of the same layout, so an update is a single kernel call over the flat
arrays, whatever the number of layers. State buffers (velocity, moments) share that layout.
"""

import math

import numpy as np

from fastnn import _validation as V


def _max_abs(x):
    # two read-only reductions instead of np.abs(x).max(): no temporary array; NaN propagates
    return max(float(x.max()), -float(x.min())) if x.size else 0.0


def _diverged():
    return FloatingPointError("a gradient or its update is NaN or inf: training diverged "
                              "(weights left unchanged). Lower the learning rate or scale the "
                              "inputs.")


def check_update(optimizer, params, grads):
    """Raise FloatingPointError before any parameter or state is touched when a gradient is NaN
    or inf, or when the update could overflow the dtype (the loss is summed in double, so it can
    stay finite while float32 gradients or ``lr * gradient`` overflow).

    The common case costs two reductions over the gradients (max |g|); the exact bound over the
    parameters and state (``optimizer._bound``) runs only when max |g|, the learning rate or the
    weight decay are large enough to make overflow possible.
    """
    G = _max_abs(grads)
    if not math.isfinite(G):
        raise _diverged()
    limit = float(np.finfo(params.dtype).max)
    screen = math.sqrt(limit) * 1e-3         # far below overflow, whatever the state holds
    if G < screen and optimizer.lr * G < screen and optimizer.weight_decay < screen:
        return
    if not optimizer._bound(params, G) < limit:
        raise _diverged()


class Optimizer:
    """Base class. ``build(n, dtype)`` allocates state; ``step(backend, params, grads)`` updates."""

    name = ""

    def __init__(self, lr):
        self.lr = V.check_float("lr", lr, low=0.0, low_open=True)

    def build(self, size, dtype):
        """Allocate the state for ``size`` parameters (zeroed)."""

    def step(self, backend, params, grads):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, **{k: getattr(self, k) for k in self._hyper}}

    def state(self):
        """Named state arrays (views, for saving and loading in place)."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper)
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    g = grad + weight_decay * w;  v = momentum * v + g;  w -= lr * (nesterov ? g + momentum * v : v)
    With momentum 0 this is plain gradient descent, w -= lr * g (PyTorch's convention).
    """

    name = "sgd"
    _hyper = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr)
        self.momentum = V.check_float("momentum", momentum, low=0.0, high=1.0, high_open=True)
        self.nesterov = V.check_bool("nesterov", nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0. Received: momentum=0.0")
        self.weight_decay = V.check_float("weight_decay", weight_decay, low=0.0)
        self._velocity = None

    def build(self, size, dtype):
        self._velocity = np.zeros(size, dtype=dtype)

    def _bound(self, params, G):
        # |g'| <= G + wd |p|;  |v'| <= mu |v| + |g'|;  |p'| <= |p| + lr (1 + mu) |v'|
        P = _max_abs(params)
        V_ = _max_abs(self._velocity) if self.momentum else 0.0
        v_new = self.momentum * V_ + G + self.weight_decay * P
        return max(v_new, P + self.lr * (1 + self.momentum) * v_new)

    def step(self, backend, params, grads):
        check_update(self, params, grads)
        backend.sgd_update(params, grads, self._velocity, self.lr, self.momentum,
                           self.nesterov, self.weight_decay)

    def state(self):
        return {"velocity": self._velocity}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction and L2 weight decay added to the gradient.

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  w -= lr * m_hat / (sqrt(v_hat) + eps),
    with m_hat = m / (1 - b1^t) and v_hat = v / (1 - b2^t) at step t = 1, 2, ...
    """

    name = "adam"
    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        self.beta1 = V.check_float("beta1", beta1, low=0.0, high=1.0, high_open=True)
        self.beta2 = V.check_float("beta2", beta2, low=0.0, high=1.0, high_open=True)
        self.eps = V.check_float("eps", eps, low=0.0, low_open=True)
        self.weight_decay = V.check_float("weight_decay", weight_decay, low=0.0)
        self._m = self._v = None
        self.iterations = 0

    def build(self, size, dtype):
        self._m = np.zeros(size, dtype=dtype)
        self._v = np.zeros(size, dtype=dtype)
        self.iterations = 0

    def _bound(self, params, G):
        # |g'| <= G + wd |p|; |m'| <= max(|m|, |g'|); v' <= max(v, g'^2);
        # |p'| <= |p| + lr |m'| / (1 - b1^t) / eps   (sqrt(v_hat) + eps >= eps)
        P = _max_abs(params)
        g = G + self.weight_decay * P
        m_new = max(_max_abs(self._m), g)
        v_new = max(_max_abs(self._v), g * g)
        t = self.iterations + 1
        return max(v_new, P + self.lr * m_new / (1 - self.beta1 ** t) / self.eps)

    def step(self, backend, params, grads):
        check_update(self, params, grads)
        self.iterations += 1
        backend.adam_update(params, grads, self._m, self._v, self.iterations, self.lr,
                            self.beta1, self.beta2, self.eps, self.weight_decay)

    def state(self):
        return {"m": self._m, "v": self._v}


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def get_optimizer(optimizer):
    """An Optimizer from an instance, a name (default settings) or a config dict."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        return OPTIMIZERS[optimizer]()
    if isinstance(optimizer, dict) and optimizer.get("name") in OPTIMIZERS:
        config = dict(optimizer)
        return OPTIMIZERS[config.pop("name")](**config)
    raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or an Optimizer instance. "
                     f"Received: optimizer={optimizer!r}")
