"""Keras' Gaussian regularization layers, active in training only (the identity in
inference): ``GaussianNoise(stddev)`` adds N(0, stddev^2) noise, ``GaussianDropout(rate)``
multiplies by N(1, rate / (1 - rate)) noise.

The noise is drawn by ``gaussian_noise`` (fastnn/_ext/_layer_ops.pyx): the counter-based
stream of ``Dropout``'s masks (seed, training pass, element) through the Box-Muller transform,
with a NumPy twin that gives the same bits, at any thread count. The values come from libm's
log and cos, so two machines with different C libraries may differ in the last bit.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Slot
from fastnn.layers.regularization import SeededRandom


class GaussianNoise(SeededRandom):
    """Add zero-mean Gaussian noise of standard deviation ``stddev`` in training:
    ``y = x + stddev * z``, z ~ N(0, 1) drawn anew for every element and pass; the identity in
    inference. Its input gradient is dy.

    Parameters
    ----------
    stddev : float
        The noise's standard deviation, >= 0 (Keras also caps it at 1; fastnn does not): 0 or
        a normal number of the model's dtype (checked when the model is built, also for a
        loaded file: 1e39 overflows float32).
    seed : int, optional
        Seed of the noise (>= 0); by default drawn from the model's seed when it is built.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.GaussianNoise(0.1, seed=0)], input_dim=3, backend="numpy")
    >>> model.predict(np.ones((1, 3)))               # inference: the identity
    array([[1., 1., 1.]], dtype=float32)
    >>> bool(np.all(model.forward(np.ones((1, 3))) != 1))   # training: noise added
    True
    """

    def __init__(self, stddev: float, seed: Optional[int] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        self.stddev = V.check_float("stddev", stddev, low=0.0)
        super().__init__(seed, name, trainable)

    @property
    def draws(self) -> bool:
        return self.stddev > 0.0

    def check_dtype(self, dtype: Any) -> None:
        super().check_dtype(dtype)
        V.check_in_dtype("stddev", self.stddev, V.check_dtype(dtype), zero_ok=True,
                         owner=repr(self))

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        if not training or self.stddev == 0.0:
            return x
        y = ctx.rows_buffer("y", self.input_shape)
        flat = y.reshape(-1)
        ctx.be.gaussian_noise(self._mask_seed or 0, self.calls, 0.0, self.stddev, flat)
        self.calls += 1
        ctx.be.binary_op(flat, np.ascontiguousarray(x).reshape(-1), 4, flat)   # noise + x
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        return dy

    def get_config(self) -> dict[str, Any]:
        return self._with_seed({**super().get_config(), "stddev": self.stddev})

    def __repr__(self) -> str:
        return f"GaussianNoise({self.stddev})"


class GaussianDropout(SeededRandom):
    """Multiply by Gaussian noise of mean 1 in training: ``y = x * m``, m ~ N(1, rate /
    (1 - rate)) drawn anew for every element and pass (the standard deviation
    ``sqrt(rate / (1 - rate))``, as Keras); the identity in inference. Its input gradient is
    ``dy * m`` with the same m.

    Parameters
    ----------
    rate : float
        In [0, 1), as for ``Dropout`` (Keras also takes 1, an infinite deviation; fastnn
        does not).
    seed : int, optional
        Seed of the noise (>= 0); by default drawn from the model's seed when it is built.
    """

    def __init__(self, rate: float, seed: Optional[int] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        self.rate = V.check_float("rate", rate, 0.0, 1.0, False, True)
        super().__init__(seed, name, trainable)

    @property
    def draws(self) -> bool:
        return self.rate > 0.0

    @property
    def stddev(self) -> float:
        return math.sqrt(self.rate / (1.0 - self.rate))

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        if not training or self.rate == 0.0:
            ctx.saved["mask"] = None
            return x
        mask = ctx.rows_buffer("mask", self.input_shape)
        ctx.be.gaussian_noise(self._mask_seed or 0, self.calls, 1.0, self.stddev,
                              mask.reshape(-1))
        self.calls += 1
        y = ctx.rows_buffer("y", self.input_shape)
        ctx.be.dropout_forward(np.ascontiguousarray(x), mask, y)
        ctx.saved["mask"] = mask
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        mask = ctx.saved.get("mask")
        if mask is None:
            return dy
        dx = ctx.dx_target(0)
        if dx is not None:
            ctx.be.dropout_backward(np.ascontiguousarray(dy), mask, dx)
        return dx

    def get_config(self) -> dict[str, Any]:
        return self._with_seed({**super().get_config(), "rate": self.rate})

    def __repr__(self) -> str:
        return f"GaussianDropout({self.rate})"


__all__ = ["GaussianNoise", "GaussianDropout"]
