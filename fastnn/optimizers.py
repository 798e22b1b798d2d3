"""Optimizers: gradient descent with a learning rate, as one fused pass over all parameters.

The model keeps every parameter in one flat buffer (each layer's W and b are views into it) and
every gradient in another of the same layout, so an update is a single kernel call over the flat
arrays, whatever the number of layers. State buffers (velocity, moments) share that layout.

In the update rules below ``w`` is the flat parameter array, ``g`` its gradient (the mean over
the batch), ``lr`` the learning rate; every operation is element-wise.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Literal, Union

import numpy as np
from numpy.typing import DTypeLike, NDArray

from fastnn import _validation as V
from fastnn._memory import aligned_zeros

if TYPE_CHECKING:
    FloatArray = NDArray[np.floating[Any]]


def _max_abs(x: FloatArray) -> float:
    # two read-only reductions instead of np.abs(x).max(): no temporary array; NaN propagates
    return max(float(x.max()), -float(x.min())) if x.size else 0.0


def _diverged() -> FloatingPointError:
    return FloatingPointError("a gradient or its update is NaN or inf: training diverged "
                              "(weights left unchanged). Lower the learning rate or scale the "
                              "inputs.")


def check_update(optimizer: Optimizer, params: FloatArray, grads: FloatArray) -> None:
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
    """Base class. ``build(n, dtype)`` allocates state; ``step(backend, params, grads)`` updates.

    Parameters
    ----------
    lr : float
        The learning rate, finite and > 0. It may be changed between steps (as
        ``LearningRateScheduler`` does).

    Raises
    ------
    TypeError
        If ``lr`` is not a real number.
    ValueError
        If ``lr`` is not finite and > 0.
    """

    name = ""
    # Subclasses set these: the constructor arguments (for get_config and repr), the L2 weight
    # decay, and an upper bound on |parameter| after the next update (for check_update).
    _hyper: tuple[str, ...]
    weight_decay: float
    _bound: Callable[[FloatArray, float], float]

    def __init__(self, lr: float) -> None:
        self.lr = V.check_float("lr", lr, low=0.0, low_open=True)

    def build(self, size: int, dtype: DTypeLike) -> None:
        """Allocate the state for ``size`` parameters (zeroed)."""

    def step(self, backend: ModuleType, params: FloatArray, grads: FloatArray) -> None:
        """Update ``params`` in place from ``grads`` (flat arrays of the size given to ``build``).

        Raises
        ------
        FloatingPointError
            If a gradient is NaN or inf or the update could overflow; nothing is changed then.
        """
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """``{"name": ..., **hyper-parameters}``: what ``get_optimizer`` rebuilds it from."""
        return {"name": self.name, **{k: getattr(self, k) for k in self._hyper}}

    def state(self) -> dict[str, FloatArray | None]:
        """Named state arrays (views, for saving and loading in place)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper)
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    g = grad + weight_decay * w;  v = momentum * v + g;  w -= lr * (nesterov ? g + momentum * v : v)
    With momentum 0 this is plain gradient descent, w -= lr * g (PyTorch's convention).

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate, > 0.
    momentum : float, default 0.0
        Momentum factor in [0, 1); 0 keeps no velocity.
    nesterov : bool, default False
        Use Nesterov momentum (needs ``momentum > 0``).
    weight_decay : float, default 0.0
        L2 penalty coefficient, >= 0, added to the gradient (biases included).

    Raises
    ------
    TypeError
        If a number is not a real number or ``nesterov`` is not a bool.
    ValueError
        If a value is out of its range, or ``nesterov=True`` with ``momentum=0``.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.SGD(lr=0.05, momentum=0.9)
    SGD(lr=0.05, momentum=0.9, nesterov=False, weight_decay=0.0)

    One step by hand (``Sequential.train_on_batch`` does this for a model):

    >>> import numpy as np
    >>> from fastnn.backends import get_backend
    >>> w, g = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    >>> opt = fnn.SGD(lr=0.1)
    >>> opt.build(w.size, w.dtype)
    >>> opt.step(get_backend("numpy"), w, g)          # w -= 0.1 * g
    >>> w
    array([0.95, 2.1 ])
    """

    name = "sgd"
    _hyper = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.momentum = V.check_float("momentum", momentum, low=0.0, high=1.0, high_open=True)
        self.nesterov = V.check_bool("nesterov", nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0. Received: momentum=0.0")
        self.weight_decay = V.check_float("weight_decay", weight_decay, low=0.0)
        self._velocity: FloatArray | None = None

    def build(self, size: int, dtype: DTypeLike) -> None:
        self._velocity = aligned_zeros(size, dtype)

    def _bound(self, params: FloatArray, G: float) -> float:
        # |g'| <= G + wd |p|;  |v'| <= mu |v| + |g'|;  |p'| <= |p| + lr (1 + mu) |v'|
        P = _max_abs(params)
        V_ = _max_abs(self._velocity) if self.momentum else 0.0    # type: ignore[arg-type]
        v_new = self.momentum * V_ + G + self.weight_decay * P
        return max(v_new, P + self.lr * (1 + self.momentum) * v_new)

    def step(self, backend: ModuleType, params: FloatArray, grads: FloatArray) -> None:
        check_update(self, params, grads)
        backend.sgd_update(params, grads, self._velocity, self.lr, self.momentum,
                           self.nesterov, self.weight_decay)

    def state(self) -> dict[str, FloatArray | None]:
        return {"velocity": self._velocity}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction and L2 weight decay added to the gradient.

    g = grad + weight_decay * w;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    w -= lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m / (1 - b1^t) and v_hat = v / (1 - b2^t)
    at step t = 1, 2, ... (``iterations`` counts the steps taken).

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, > 0.
    beta1 : float, default 0.9
        Decay of the first-moment (mean) estimate, in [0, 1).
    beta2 : float, default 0.999
        Decay of the second-moment (uncentred variance) estimate, in [0, 1).
    eps : float, default 1e-8
        Added to ``sqrt(v_hat)`` for stability, > 0.
    weight_decay : float, default 0.0
        L2 penalty coefficient, >= 0, added to the gradient (not decoupled as in AdamW).

    Raises
    ------
    TypeError
        If a value is not a real number.
    ValueError
        If a value is out of its range.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.Adam(lr=1e-3)
    Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.0)

    The first step moves every weight by about ``lr`` against the sign of its gradient:

    >>> import numpy as np
    >>> from fastnn.backends import get_backend
    >>> w, g = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    >>> opt = fnn.Adam(lr=0.1)
    >>> opt.build(w.size, w.dtype)
    >>> opt.step(get_backend("numpy"), w, g)
    >>> w.round(6), opt.iterations
    (array([0.9, 2.1]), 1)
    """

    name = "adam"
    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.beta1 = V.check_float("beta1", beta1, low=0.0, high=1.0, high_open=True)
        self.beta2 = V.check_float("beta2", beta2, low=0.0, high=1.0, high_open=True)
        self.eps = V.check_float("eps", eps, low=0.0, low_open=True)
        self.weight_decay = V.check_float("weight_decay", weight_decay, low=0.0)
        self._m: FloatArray | None = None
        self._v: FloatArray | None = None
        self.iterations = 0

    def build(self, size: int, dtype: DTypeLike) -> None:
        self._m = aligned_zeros(size, dtype)
        self._v = aligned_zeros(size, dtype)
        self.iterations = 0

    def _bound(self, params: FloatArray, G: float) -> float:
        # |g'| <= G + wd |p|; |m'| <= max(|m|, |g'|); v' <= max(v, g'^2);
        # |p'| <= |p| + lr |m'| / (1 - b1^t) / eps   (sqrt(v_hat) + eps >= eps)
        P = _max_abs(params)
        g = G + self.weight_decay * P
        m_new = max(_max_abs(self._m), g)       # type: ignore[arg-type]
        v_new = max(_max_abs(self._v), g * g)   # type: ignore[arg-type]
        t = self.iterations + 1
        return max(v_new, P + self.lr * m_new / (1 - self.beta1 ** t) / self.eps)

    def step(self, backend: ModuleType, params: FloatArray, grads: FloatArray) -> None:
        check_update(self, params, grads)
        self.iterations += 1
        backend.adam_update(params, grads, self._m, self._v, self.iterations, self.lr,
                            self.beta1, self.beta2, self.eps, self.weight_decay)

    def state(self) -> dict[str, FloatArray | None]:
        return {"m": self._m, "v": self._v}


OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {"sgd": SGD, "adam": Adam}


def get_optimizer(optimizer: Union[Literal["sgd", "adam"], Optimizer, dict[str, Any]]
                  ) -> Optimizer:
    """An Optimizer from an instance, a name (default settings) or a config dict.

    Parameters
    ----------
    optimizer : {"sgd", "adam"}, Optimizer or dict
        An instance is returned as it is; a name gives one with default settings; a dict such
        as ``{"name": "sgd", "lr": 0.1}`` (the form ``get_config`` returns) gives one with
        those settings.

    Raises
    ------
    ValueError
        If ``optimizer`` is none of these, or a setting is out of range.
    TypeError
        If a dict holds an unknown setting or one of the wrong type.

    Examples
    --------
    >>> from fastnn.optimizers import get_optimizer
    >>> get_optimizer({"name": "sgd", "lr": 0.1})
    SGD(lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0)
    """
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        return OPTIMIZERS[optimizer]()
    if isinstance(optimizer, dict) and optimizer.get("name") in OPTIMIZERS:
        config = dict(optimizer)
        return OPTIMIZERS[config.pop("name")](**config)
    raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or an Optimizer instance. "
                     f"Received: optimizer={optimizer!r}")
