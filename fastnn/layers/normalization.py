"""Normalization layers: ``BatchNormalization`` over the last (channels) axis,
``LayerNormalization`` and ``RMSNormalization`` over the last axis or the last few together,
with Keras' arguments, defaults and weight order.

Each sees its input as a 2-D matrix: batch normalization the (samples x positions, channels)
one, taking statistics per channel over its rows; layer and RMS normalization the (samples x
positions, normalized values) one (the normalized values: the last axis, or the trailing axes
``axis`` names, flattened), taking statistics per row.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec, rows_of
from fastnn.layers.core import _initializer, _regularizer, _serialize


def _ones(shape: Sequence[int], dtype: Any, rng: Any = None) -> Any:
    return np.ones(tuple(shape), dtype)


def _zeros(shape: Sequence[int], dtype: Any, rng: Any = None) -> Any:
    return np.zeros(tuple(shape), dtype)


class _Rows:
    """The kernels' 2-D view of a normalization layer's input: rows of ``_width`` values, the
    normalized axes' (``_param_shape_of``, the subclass's)."""

    input_shape: Any

    def _param_shape_of(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def _width(self) -> int:
        """The values one statistic covers (BatchNormalization: the channels)."""
        return math.prod(self._param_shape_of(self.input_shape))

    def _rows(self, x: FloatArray) -> FloatArray:
        """``x`` as the kernels' 2-D matrix, rows of ``_width``."""
        return x.reshape(-1, self._width)


class _Normalization(_Rows, Layer):
    """What both layers share: axis, epsilon, center/scale, gamma and beta."""

    supports_masking = True     # see Layer.compute_mask

    _defaults = {"gamma_initializer": "ones", "beta_initializer": "zeros"}

    def __init__(self, axis: int, epsilon: float, center: bool, scale: bool,
                 beta_initializer: Any, gamma_initializer: Any, beta_regularizer: Any,
                 gamma_regularizer: Any, name: Optional[str], trainable: bool) -> None:
        super().__init__(name=name, trainable=trainable)
        self.axis: Any = self._check_axis(axis)
        self.epsilon = V.check_float("epsilon", epsilon, 0.0, None, True)
        self.center = V.check_bool("center", center)
        self.scale = V.check_bool("scale", scale)
        self.beta_initializer = (None if beta_initializer == "zeros"
                                 else _initializer("beta_initializer", beta_initializer))
        self.gamma_initializer = (None if gamma_initializer == "ones"
                                  else _initializer("gamma_initializer", gamma_initializer))
        self.beta_regularizer = _regularizer("beta_regularizer", beta_regularizer)
        self.gamma_regularizer = _regularizer("gamma_regularizer", gamma_regularizer)

    @staticmethod
    def _check_axis(axis: Any) -> Any:
        return V.check_int("axis", axis)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple):
            raise ValueError(f"{self.name} takes one input. Received: {input_shape}")
        self._param_shape_of(input_shape)
        return input_shape

    def _param_shape_of(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of gamma and beta (the normalized axes' sizes), once the axis is checked
        against a sample's shape."""
        if self.axis not in (-1, len(input_shape)):
            raise ValueError(f"{self.name} normalizes over the last (channels) axis: axis=-1 "
                             f"or {len(input_shape)}. Received: axis={self.axis}")
        return (input_shape[-1],)

    def _affine_specs(self) -> list[WeightSpec]:
        c = self._param_shape_of(self.input_shape)
        specs = []
        if self.scale:
            specs.append(WeightSpec("gamma", c, self.gamma_initializer or _ones,
                                    self.gamma_regularizer))
        if self.center:
            specs.append(WeightSpec("beta", c, self.beta_initializer or _zeros,
                                    self.beta_regularizer))
        return specs

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        c, dtype = self._width, self.dtype
        # gamma and beta flat (views): LayerNormalization's over several axes have their shape
        w = [a.reshape(-1) if i < self.scale + self.center else a for i, a in enumerate(weights)]
        g = [a.reshape(-1) if i < self.scale + self.center else a for i, a in enumerate(grads)]
        # without scale or center the kernels get a constant gamma = 1 or beta = 0
        self.gamma: FloatArray
        self.dgamma: FloatArray
        self.beta: FloatArray
        self.dbeta: FloatArray
        self.gamma, self.dgamma = ((w.pop(0), g.pop(0)) if self.scale
                                   else (np.ones(c, dtype), np.zeros(c, dtype)))
        self.beta, self.dbeta = ((w.pop(0), g.pop(0)) if self.center
                                 else (np.zeros(c, dtype), np.zeros(c, dtype)))
        self._rest = w

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                       "scale": self.scale})
        for key in ("beta_initializer", "gamma_initializer", "beta_regularizer",
                    "gamma_regularizer"):
            value = getattr(self, key)
            if value is not None:
                config[key] = _serialize(value)
        return config


class BatchNormalization(_Normalization):
    uses_mask = True      # padded steps stay out of the batch statistics
    """Normalize each channel with the batch's statistics in training, with moving averages
    of them in inference: ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``.

    With a step mask on its input (``Embedding(mask_zero=True)``, ``Masking``), the batch
    statistics are those of the real steps, as in Keras; every step is normalized with them.

    In training, ``moving = moving * momentum + batch * (1 - momentum)`` (the batch variance
    unbiased, as PyTorch's running variance). A frozen layer (``trainable=False``) runs in
    inference mode, as in Keras. Weights, in order: gamma, beta, moving_mean, moving_variance.

    Parameters
    ----------
    axis : int, default -1
        The channels axis (the last one).
    momentum : float, default 0.99
        Of the moving averages, in [0, 1].
    epsilon : float, default 1e-3
        Added to the variance, > 0.
    center, scale : bool, default True
        Whether to learn beta (shift) and gamma (scale).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.BatchNormalization()], input_dim=2, backend="numpy",
    ...                        dtype="float64")
    >>> out = model.forward(np.array([[1.0, 10.0], [3.0, 30.0]]))
    >>> np.round(out, 4)                            # (x - mean) / sqrt(var + 1e-3)
    array([[-0.9995, -1.    ],
           [ 0.9995,  1.    ]])
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", moving_mean_initializer: Any = "zeros",
                 moving_variance_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, name, trainable)
        self.momentum = V.check_float("momentum", momentum, 0.0, 1.0)
        self.moving_mean_initializer = (None if moving_mean_initializer == "zeros" else
                                        _initializer("moving_mean_initializer",
                                                     moving_mean_initializer))
        self.moving_variance_initializer = (None if moving_variance_initializer == "ones" else
                                            _initializer("moving_variance_initializer",
                                                         moving_variance_initializer))

    def weight_specs(self) -> Sequence[WeightSpec]:
        c = (self.input_shape[-1],)
        return self._affine_specs() + [
            WeightSpec("moving_mean", c, self.moving_mean_initializer or _zeros, None, False),
            WeightSpec("moving_variance", c, self.moving_variance_initializer or _ones, None,
                       False)]

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        self.moving_mean, self.moving_variance = self._rest

    def _real_rows(self, ctx: Slot) -> Optional[Any]:
        """With a step mask on the input, the rows of ``rows_of(x)`` that are real steps (one
        byte a row): Keras leaves padded steps out of the batch statistics."""
        mask = ctx.mask
        if mask is None or len(self.input_shape) < 2:
            return None
        real = ctx.rows_buffer("real", self.input_shape[:-1], dtype=np.uint8)
        real.reshape(mask.shape + (-1,))[...] = mask[:, :, None]
        return real.reshape(-1)

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        training = training and self.trainable
        ctx.saved["x"], ctx.saved["training"] = x, training
        if training:
            c = self.input_shape[-1]
            mean, invstd = ctx.buffer("mean", (c,)), ctx.buffer("invstd", (c,))
            real = ctx.saved["real"] = self._real_rows(ctx)
            ctx.be.batchnorm_forward_train(rows_of(x), self.gamma, self.beta, self.epsilon,
                                           self.momentum, self.moving_mean,
                                           self.moving_variance, rows_of(y), mean, invstd,
                                           real)
        else:
            ctx.be.batchnorm_forward_infer(rows_of(x), self.gamma, self.beta, self.moving_mean,
                                           self.moving_variance, self.epsilon, rows_of(y))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        c = self.input_shape[-1]
        if not ctx.saved["training"]:       # frozen: an affine map with fixed statistics,
            if dx is not None:              # dx = gamma / sqrt(moving_var + eps) * dy
                zeros = ctx.buffer("zeros", (c,))
                zeros[...] = 0
                ctx.be.batchnorm_forward_infer(rows_of(dy), self.gamma, zeros, zeros,
                                               self.moving_variance, self.epsilon, rows_of(dx))
            return dx
        ctx.be.batchnorm_backward(rows_of(ctx.saved["x"]), rows_of(dy), self.gamma,
                                  ctx.buffer("mean", (c,)), ctx.buffer("invstd", (c,)),
                                  None if dx is None else rows_of(dx), self.dgamma, self.dbeta,
                                  ctx.saved["real"])
        return dx

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "momentum": self.momentum}
        for key in ("moving_mean_initializer", "moving_variance_initializer"):
            value = getattr(self, key)
            if value is not None:
                config[key] = _serialize(value)
        return config


class _TrailingAxes:
    """The axes of LayerNormalization and RMSNormalization: the last one, or the last few
    together (Keras counts axis 0 as the batch's), their values one row of the kernels."""

    axis: Any
    name: str
    input_shape: Any

    @staticmethod
    def _check_axis(axis: Any) -> Any:
        if isinstance(axis, (list, tuple)):
            if not 1 <= len(axis) <= 32:
                raise ValueError(f"axis must be an int or a list of 1 to 32 ints. Received: "
                                 f"axis={V._describe(axis)}")
            return [V.check_int(f"axis[{i}]", a) for i, a in enumerate(axis)]
        return V.check_int("axis", axis)

    def _param_shape_of(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        rank = len(input_shape) + 1                       # Keras counts the batch axis
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        where = sorted(a + rank if a < 0 else a for a in axes)
        first = rank - len(where)
        if len(set(where)) != len(where) or where != list(range(first, rank)) or first < 1:
            raise ValueError(f"{self.name} normalizes over the last axis or the last few axes "
                             f"together: for samples of shape {input_shape}, axis=-1 or a list "
                             f"of trailing axes such as {list(range(max(rank - 2, 1), rank))}"
                             f" (0 is the batch axis; put a Permute first to normalize other "
                             f"axes). Received: axis={self.axis}")
        return tuple(input_shape[first - 1:])



class LayerNormalization(_TrailingAxes, _Normalization):
    """Normalize each sample (each position) over its last axis, or over its last few axes
    together: ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``, mean and (biased)
    variance taken over the normalized values. The same in training and inference. Weights:
    gamma, beta, of the normalized axes' shape (Keras').

    Parameters
    ----------
    axis : int or list of int, default -1
        The normalized axes, counted as Keras does (0 is the batch axis; negative from the
        end): the last one (-1), or trailing ones together, such as ``[1, 2, 3]`` (or
        ``[-3, -2, -1]``) for the whole (h, w, c) image of a sample, as a GAN critic without
        batch statistics uses. Axes that are not trailing (normalizing over the steps of
        each feature, say) are refused with ValueError: put a ``Permute`` first.
    epsilon : float, default 1e-3
        Added to the variance, > 0 (Keras' default; PyTorch's is 1e-5).
    center, scale : bool, default True
        Whether to learn beta and gamma.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.LayerNormalization(epsilon=1e-6)], input_dim=3,
    ...                        backend="numpy", dtype="float64")
    >>> np.round(model.predict(np.array([[1.0, 2.0, 3.0]])), 4)
    array([[-1.2247,  0.    ,  1.2247]])
    """

    def __init__(self, axis: int = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, name, trainable)

    def weight_specs(self) -> Sequence[WeightSpec]:
        return self._affine_specs()

    def _buffers(self, ctx: Slot) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """y, y as rows, and the rows' means and inverse deviations (flat)."""
        y = ctx.rows_buffer("y", self.output_shape)
        positions = self.input_shape[:len(self.input_shape) - len(self._param_shape_of(
            self.input_shape))]
        return (y, self._rows(y), ctx.rows_buffer("mean", positions).reshape(-1),
                ctx.rows_buffer("invstd", positions).reshape(-1))

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y, y2, mean, invstd = ctx.views("ln", lambda: self._buffers(ctx))
        ctx.saved["x"] = x
        ctx.be.layernorm_forward(self._rows(x), self.gamma, self.beta, self.epsilon, y2, mean,
                                 invstd)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        _, _, mean, invstd = ctx.views("ln", lambda: self._buffers(ctx))
        ctx.be.layernorm_backward(self._rows(ctx.saved["x"]), self._rows(dy), self.gamma, mean,
                                  invstd, None if dx is None else self._rows(dx), self.dgamma,
                                  self.dbeta)
        return dx


class RMSNormalization(_TrailingAxes, _Rows, Layer):
    """Root-mean-square normalization (Zhang & Sennrich, 2019), Keras 3's layer and PyTorch's
    ``nn.RMSNorm``: ``y = x * scale / sqrt(mean(x^2) + epsilon)``, the mean of squares taken over
    the normalized values of each sample (each position), with no centring and no offset (what
    LLaMA-style Transformers use in place of LayerNormalization). Weight: scale.

    Parameters
    ----------
    axis : int or list of int, default -1
        As for ``LayerNormalization``: the last axis, or trailing axes together.
    epsilon : float, default 1e-6
        Added to the mean of squares, > 0 (Keras' default).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.RMSNormalization()], input_dim=2, backend="numpy",
    ...                        dtype="float64")
    >>> np.round(model.predict(np.array([[3.0, 4.0]])), 4)      # rms 3.5355...
    array([[0.8485, 1.1314]])
    """

    supports_masking = True     # each position on its own (see Layer.compute_mask)

    def __init__(self, axis: Any = -1, epsilon: float = 1e-6, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.axis = self._check_axis(axis)
        self.epsilon = V.check_float("epsilon", epsilon, 0.0, None, True)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple):
            raise ValueError(f"{self.name} takes one input. Received: {input_shape}")
        self._param_shape_of(input_shape)
        return input_shape

    def weight_specs(self) -> Sequence[WeightSpec]:
        return [WeightSpec("scale", self._param_shape_of(self.input_shape), _ones, None)]

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        self.scale, self.dscale = weights[0].reshape(-1), grads[0].reshape(-1)

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        ctx.saved["x"] = x
        ctx.be.rmsnorm_forward(self._rows(x), self.scale, self.epsilon, self._rows(y))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        ctx.be.rmsnorm_backward(self._rows(ctx.saved["x"]), self._rows(dy), self.scale,
                                self.epsilon, None if dx is None else self._rows(dx),
                                self.dscale)
        return dx

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config
