"""Keras' noise regularization layers, active in training only (the identity in inference):
``GaussianNoise(stddev)`` adds N(0, stddev^2) noise, ``GaussianDropout(rate)`` multiplies by
N(1, rate / (1 - rate)) noise, ``AlphaDropout(rate)`` sets a fraction ``rate`` to SELU's
saturation value and keeps the mean and variance (self-normalizing networks).

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


#: SELU's negative saturation value, -scale * alpha (Klambauer et al., 2017; Keras' constants)
SELU_SATURATION = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946


class AlphaDropout(SeededRandom):
    """Alpha dropout (Klambauer et al., 2017), Keras' layer: in training each value is kept
    with probability 1 - ``rate`` or replaced by SELU's saturation value a' = -1.7581, then
    ``y = a * x' + b`` with ``a = ((1 - rate) (1 + rate a'^2))^-1/2`` and ``b = -a a' rate``,
    which keeps a zero mean and unit variance (for SELU networks); the identity in inference.
    Its input gradient is ``a * dy`` where kept, 0 where dropped.

    The keep mask is ``Dropout``'s (the same counter-based stream: both backends and any
    thread count give the same bits); the factor ``a * keep`` and the term ``b + a a' (1 -
    keep)`` are made from it by the compiled ``affine_rows`` kernel, and ``y = x * factor +
    term`` by ``binary_op``.

    Parameters
    ----------
    rate : float
        The fraction dropped, in [0, 1) (Keras also takes 1, where a is infinite; fastnn
        does not).
    noise_shape : tuple, optional
        Keras' shape of the mask, batch first: ``(None, 1, features)`` draws one mask per
        sample and feature, the same at every step. The batch entry must be None (a mask per
        sample); each other entry None (the input's size), 1 (shared along that axis) or the
        input's size.
    seed : int, optional
        Seed of the masks (>= 0); by default drawn from the model's seed when it is built.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.AlphaDropout(0.2, seed=0)], input_dim=4, backend="numpy")
    >>> model.predict(np.ones((1, 4)))               # inference: the identity
    array([[1., 1., 1., 1.]], dtype=float32)
    """

    def __init__(self, rate: float, noise_shape: Any = None, seed: Optional[int] = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        self.rate = V.check_float("rate", rate, 0.0, 1.0, False, True)
        self.noise_shape = _noise_shape(noise_shape)
        super().__init__(seed, name, trainable)

    @property
    def draws(self) -> bool:
        return self.rate > 0.0

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self.noise_shape is not None:
            if (not isinstance(input_shape, tuple)
                    or len(self.noise_shape) != len(input_shape) + 1
                    or any(d not in (None, 1, size)
                           for d, size in zip(self.noise_shape[1:], input_shape))):
                raise ValueError(f"{self.name}: noise_shape {list(self.noise_shape)} does not "
                                 f"fit samples of shape {input_shape}: it needs the batch "
                                 f"(None) and one entry per axis, each None, 1 or the size")
        return super().compute_output_shape(input_shape)

    def _mask_shape(self) -> tuple[int, ...]:
        """The per-sample shape of the mask drawn."""
        if self.noise_shape is None:
            return tuple(self.input_shape)
        return tuple(size if d is None else d
                     for d, size in zip(self.noise_shape[1:], self.input_shape))

    def build(self, input_shape: Any, dtype: Any) -> Any:
        out = super().build(input_shape, dtype)
        dt = np.dtype(dtype)
        a = ((1.0 - self.rate) * (1.0 + self.rate * SELU_SATURATION ** 2)) ** -0.5
        b = -a * SELU_SATURATION * self.rate
        kept = float(np.asarray(1.0 / (1.0 - self.rate), dt))   # dropout_mask's kept value
        # factor = mask * a / kept: a where kept, 0 where dropped; term = mask * (-a a' / kept)
        # + (b + a a'): b where kept, b + a a' where dropped
        self._coefs = tuple(np.array([v], dt) for v in (
            0.0, a / kept, 0.0, -a * SELU_SATURATION / kept, b + a * SELU_SATURATION))
        return out

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        if not training or self.rate == 0.0:
            ctx.saved["factor"] = None
            return x
        shape = self._mask_shape()
        mask = ctx.rows_buffer("mask", shape)
        ctx.be.dropout_mask(self._mask_seed or 0, self.calls, self.rate, mask.reshape(-1))
        self.calls += 1
        zero, scale, _, term_scale, term_offset = self._coefs
        full = shape == tuple(self.input_shape)
        factor = ctx.rows_buffer("factor", self.input_shape)
        term = ctx.rows_buffer("term", self.input_shape)
        small = (factor, term) if full else (ctx.rows_buffer("factor_small", shape),
                                             ctx.rows_buffer("term_small", shape))
        column = mask.reshape(-1, 1)
        ctx.be.affine_rows(column, zero, scale, zero, small[0].reshape(-1, 1))
        ctx.be.affine_rows(column, zero, term_scale, term_offset, small[1].reshape(-1, 1))
        if not full:                     # the noise shape's axes of 1, broadcast
            np.copyto(factor, small[0])
            np.copyto(term, small[1])
        y = ctx.rows_buffer("y", self.input_shape)
        flat = y.reshape(-1)
        ctx.be.binary_op(np.ascontiguousarray(x).reshape(-1), factor.reshape(-1), 0, flat)
        ctx.be.binary_op(flat, term.reshape(-1), 4, flat)
        ctx.saved["factor"] = factor
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        factor = ctx.saved.get("factor")
        if factor is None:
            return dy
        dx = ctx.dx_target(0)
        if dx is not None:
            ctx.be.dropout_backward(np.ascontiguousarray(dy), factor, dx)
        return dx

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "rate": self.rate}
        if self.noise_shape is not None:
            config["noise_shape"] = list(self.noise_shape)
        return self._with_seed(config)

    def __repr__(self) -> str:
        return f"AlphaDropout({self.rate})"


def _noise_shape(value: Any) -> Optional[tuple[Optional[int], ...]]:
    """Keras' noise_shape: None, or a tuple/list whose first (batch) entry is None and whose
    others are None or integers >= 1."""
    if value is None:
        return None
    if (not isinstance(value, (tuple, list)) or len(value) < 2 or value[0] is not None
            or len(value) > 9):
        raise ValueError(f"noise_shape must be None or a tuple (None, ...) with None for the "
                         f"batch and one entry per axis of a sample. Received: noise_shape="
                         f"{V._describe(value)}")
    dims = [None if d is None else V.check_int("noise_shape", d, low=1) for d in value[1:]]
    if any(d is not None and d >= 2**31 for d in dims):
        raise ValueError(f"noise_shape entries must be below 2**31. Received: noise_shape="
                         f"{V._describe(value)}")
    return (None, *dims)


__all__ = ["GaussianNoise", "GaussianDropout", "AlphaDropout"]
