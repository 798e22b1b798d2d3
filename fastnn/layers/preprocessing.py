"""Keras' preprocessing layers that belong inside a model: ``Rescaling`` (pixels 0-255 to
0-1) and ``Normalization`` (features to mean 0, variance 1, from statistics ``adapt`` computes
on the training data), so the model saved is the model that takes raw data.

Both are an affine map of each channel (the last axis): ``y = (x - shift) * scale + offset``,
one compiled kernel (``affine_rows`` in fastnn/_ext/_layer_ops.pyx, NumPy twin in
fastnn/backends/numpy_layer_ops.py, the same operations in the same order), and their input
gradient is ``dy * scale`` through the same kernel. Neither has trainable weights.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec, rows_of

#: Keras' backend epsilon: the smallest standard deviation Normalization divides by
EPSILON = 1e-7


def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number. Received: {name}={V._describe(value)}")
    return float(value)


class _Affine(Layer):
    """What both share: the forward and backward through ``affine_rows``."""

    supports_masking = True     # see Layer.compute_mask

    def _coefficients(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        raise NotImplementedError

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        shift, scale, offset = self._coefficients()
        ctx.be.affine_rows(rows_of(np.ascontiguousarray(x)), shift, scale, offset, rows_of(y))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        _, scale, _ = self._coefficients()
        zeros = ctx.buffer("zeros", scale.shape)
        zeros[...] = 0
        ctx.be.affine_rows(rows_of(np.ascontiguousarray(dy)), zeros, scale, zeros, rows_of(dx))
        return dx


class Rescaling(_Affine):
    """``y = x * scale + offset``, e.g. ``Rescaling(1 / 255)`` for pixels, or ``Rescaling(1 /
    127.5, offset=-1)`` for [-1, 1] (Keras' layer; any input shape).

    Raises
    ------
    ValueError
        If ``scale`` or ``offset`` is not a finite number.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Rescaling(1 / 255)], input_shape=(2, 2, 1), backend="numpy")
    >>> model.predict(np.full((1, 2, 2, 1), 255.0)).ravel()
    array([1., 1., 1., 1.], dtype=float32)
    """

    def __init__(self, scale: float, offset: float = 0.0, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.scale = _finite_number("scale", scale)
        self.offset = _finite_number("offset", offset)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple):
            raise ValueError(f"{self.name} takes one input. Received: {input_shape}")
        return input_shape

    def build(self, input_shape: Any, dtype: Any) -> Any:
        for name in ("scale", "offset"):     # as the model's dtype holds them, or refused
            V.check_in_dtype(name, getattr(self, name), dtype, zero_ok=True, owner=repr(self))
        return super().build(input_shape, dtype)

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        c = self.input_shape[-1]
        self._coef = (np.zeros(c, self.dtype), np.full(c, self.scale, self.dtype),
                      np.full(c, self.offset, self.dtype))

    def _coefficients(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        return self._coef

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}

    def __repr__(self) -> str:
        return f"Rescaling({self.scale!r}, offset={self.offset!r})"


class Normalization(_Affine):
    """Standardise each feature (the last axis): ``y = (x - mean) / max(sqrt(variance), 1e-7)``,
    with ``mean`` and ``variance`` from ``adapt(data)`` or given (Keras' layer). With
    ``invert=True``, the inverse: ``y = mean + x * max(sqrt(variance), 1e-7)`` (a regression
    target's scale put back).

    Weights (not trainable, Keras' order): ``mean`` (c,), ``variance`` (c,), ``count`` (): the
    number of samples ``adapt`` saw.

    Parameters
    ----------
    axis : -1, default -1
        The axis with a statistic per entry (Keras' default; others are refused).
    mean, variance : float or array of shape (c,), optional
        Fixed statistics instead of ``adapt``'s (both or neither; variance >= 0; numbers:
        booleans are refused).
    invert : bool, default False
    name, trainable
        See ``Layer``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> norm = fnn.Normalization()
    >>> norm.adapt(np.array([[0.0, 10.0], [2.0, 30.0]]))
    >>> model = fnn.Sequential([norm], input_dim=2, backend="numpy")
    >>> model.predict(np.array([[1.0, 20.0], [2.0, 30.0]]))
    array([[0., 0.],
           [1., 1.]], dtype=float32)
    >>> [w.tolist() for w in norm.get_weights()]
    [[1.0, 20.0], [1.0, 100.0], 2.0]
    """

    def __init__(self, axis: Any = -1, mean: Any = None, variance: Any = None,
                 invert: bool = False, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        if axis not in (-1, (-1,), [-1]):
            raise ValueError(f"Normalization takes statistics along the last axis: axis must "
                             f"be -1. Received: axis={V._describe(axis)}")
        self.invert = V.check_bool("invert", invert)
        if (mean is None) != (variance is None):
            raise ValueError("Normalization takes both mean and variance, or neither (then "
                             "adapt(data) computes them)")
        self._given: Optional[tuple[np.ndarray, np.ndarray]] = None
        if mean is not None:
            m = V.as_number_array("mean", mean).astype(np.float64)
            v = V.as_number_array("variance", variance).astype(np.float64)
            for key, arr in (("mean", m), ("variance", v)):
                if arr.ndim > 1:
                    raise ValueError(f"{key} must be a number or a 1-D array (one per "
                                     f"feature). Received: {key} with shape {arr.shape}")
                V.check_finite(key, arr)
            if (v < 0).any():
                raise ValueError(f"variance must be >= 0. Received: {v.min()}")
            self._given = (m, v)
        self._adapted: Optional[tuple[np.ndarray, np.ndarray, float]] = None

    # ------------------------------------------------------------------ statistics
    def adapt(self, data: ArrayLike) -> None:
        """Compute ``mean`` and ``variance`` of each feature over all of ``data``'s samples
        (and positions: every axis but the last), in float64. Before the model is built, they
        become the layer's initial weights; after, they are written into them.

        Raises
        ------
        ValueError, TypeError
            If ``data`` is not a real, finite array of at least one sample, or (when built)
            its last axis differs from the layer's input's.
        """
        arr = V.as_real_array("data", data)
        if arr.ndim < 1 or arr.size == 0:
            raise ValueError(f"data must hold at least one sample. Received: shape {arr.shape}")
        V.check_finite("data", arr)
        flat = arr.reshape(-1, arr.shape[-1] if arr.ndim > 1 else 1).astype(np.float64)
        if self.built and flat.shape[1] != self.input_shape[-1]:
            raise ValueError(f"{self.name} normalises {self.input_shape[-1]} features. "
                             f"Received: data with {flat.shape[1]} on its last axis")
        with np.errstate(over="ignore", invalid="ignore"):   # refused by name just below
            mean = flat.mean(axis=0)
            variance = ((flat - mean) ** 2).mean(axis=0)
        if not np.isfinite(variance).all():
            raise ValueError("data: its variance overflows float64 (values near 1e154 or "
                             "beyond); scale the data first")
        if self.built and self._weights:
            with np.errstate(over="ignore"):
                held = [np.asarray(s, dtype=self.dtype) for s in (mean, variance)]
            if not all(np.isfinite(h).all() for h in held):
                raise ValueError(f"{self.name}: the data's mean or variance overflows "
                                 f"{self.dtype}; use a float64 model or scale the data")
        self._adapted = (mean, variance, float(flat.shape[0]))
        if self.built and self._weights:
            self._weights[0][...] = mean
            self._weights[1][...] = variance
            self._weights[2][...] = flat.shape[0]

    def _initial(self, k: int) -> Any:
        def fill(shape: Sequence[int], dtype: Any, rng: Any) -> np.ndarray:
            if self._adapted is not None:
                value: Any = self._adapted[k]
            elif self._given is not None and k < 2:
                value = self._given[k]
            else:
                value = (0.0, 1.0, 0.0)[k]        # not adapted: the identity
            out = np.broadcast_to(np.asarray(value, np.float64), tuple(shape))
            return np.array(out, dtype=dtype)
        return fill

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple):
            raise ValueError(f"{self.name} takes one input. Received: {input_shape}")
        c = input_shape[-1]
        for stats in (self._adapted, self._given):
            if stats is not None:
                for s in stats[:2]:
                    if np.ndim(s) == 1 and s.shape[0] not in (1, c):
                        raise ValueError(f"{self.name} has statistics for {s.shape[0]} "
                                         f"features; its input has {c}")
        return input_shape

    def build(self, input_shape: Any, dtype: Any) -> Any:
        for stats in (self._adapted, self._given):
            if stats is not None:
                with np.errstate(over="ignore"):
                    held = [np.asarray(s, dtype=dtype) for s in stats[:2]]
                if not all(np.isfinite(h).all() for h in held):
                    raise ValueError(f"{self.name}: its mean or variance overflows "
                                     f"{np.dtype(dtype).name}; use a float64 model or smaller "
                                     f"values")
        return super().build(input_shape, dtype)

    def weight_specs(self) -> Sequence[WeightSpec]:
        c = (self.input_shape[-1],)
        return [WeightSpec("mean", c, self._initial(0), None, False),
                WeightSpec("variance", c, self._initial(1), None, False),
                WeightSpec("count", (), self._initial(2), None, False)]

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        c = self.input_shape[-1]
        self._zeros = np.zeros(c, self.dtype)
        self._scale = np.empty(c, self.dtype)

    def check_values(self, weights: Sequence[FloatArray]) -> None:
        for key, arr in (("variance", weights[1]), ("count", weights[2])):
            if arr.size and arr.min() < 0:
                raise ValueError(f"{key} of {self.name} must be >= 0. Received: "
                                 f"{arr.min().item()!r}")

    def _coefficients(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        mean, variance, std = self._weights[0], self._weights[1], self._scale
        np.maximum(variance, 0.0, out=std)           # in place: nothing allocated per step
        np.sqrt(std, out=std)
        np.maximum(std, EPSILON, out=std)
        if self.invert:
            return self._zeros, std, mean
        np.divide(1.0, std, out=std)
        return mean, std, self._zeros

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.invert:
            config["invert"] = True
        if self._given is not None:
            config["mean"], config["variance"] = (self._given[0].tolist(),
                                                  self._given[1].tolist())
        return config

    def __repr__(self) -> str:
        return f"Normalization(invert={self.invert})" if self.invert else "Normalization()"


__all__ = ["Normalization", "Rescaling"]
