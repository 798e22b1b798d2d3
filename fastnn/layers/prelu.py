"""Keras' ``PReLU`` (a leaky relu whose slope is learnt) and ``Identity``.

``PReLU``: ``y = x`` where ``x > 0``, else ``alpha * x``, with ``alpha`` a weight of the input's
shape per sample, shared along ``shared_axes`` (``shared_axes=[1, 2]`` on images: one slope per
channel, PyTorch's ``nn.PReLU(channels)``). He et al., "Delving deep into rectifiers" (2015).
Gradients: ``dx = dy`` where ``x > 0``, else ``alpha * dy``; ``dalpha`` sums ``dy * min(x, 0)``
over the batch and the shared axes. Compiled kernels (``prelu_forward``/``prelu_backward`` in
fastnn/_ext/_layer_ops.pyx, one pass each; the slope's sums in double in a fixed order) with
their NumPy twins in fastnn/backends/numpy_layer_ops.py.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec
from fastnn.layers.core import _initializer, _regularizer, _serialize


class PReLU(Layer):
    """Parametric relu (Keras' layer): ``y = max(x, 0) + alpha * min(x, 0)``, ``alpha`` learnt.

    Parameters
    ----------
    alpha_initializer : str or initializer, default "zeros"
        A relu to start with (Keras' default); PyTorch starts at 0.25 (``"constant"`` with
        ``value=0.25``, or ``fnn.initializers.Constant(0.25)``).
    alpha_regularizer : regularizer, optional
    alpha_constraint : None
        Keras' argument; fastnn has no constraints (anything but None is refused).
    shared_axes : int or list of int, optional
        The axes (Keras' numbering: 1 is the first axis after the batch) along which one slope
        is shared: ``[1, 2]`` for images (a slope per channel), ``[1]`` for sequences.

    Weights: ``alpha``, the input's per-sample shape with 1 on the shared axes.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.PReLU()], input_dim=2, backend="numpy")
    >>> model.layers[0].set_weights([np.array([0.1, 0.5])])
    >>> model.predict(np.array([[-2.0, -2.0], [3.0, 3.0]]))
    array([[-0.2, -1. ],
           [ 3. ,  3. ]], dtype=float32)
    """

    supports_masking = True

    def __init__(self, alpha_initializer: Any = "zeros", alpha_regularizer: Any = None,
                 alpha_constraint: Any = None, shared_axes: Any = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        if alpha_constraint is not None:
            raise ValueError(f"alpha_constraint is not supported by fastnn (no weight "
                             f"constraints); pass None. Received: "
                             f"alpha_constraint={V._describe(alpha_constraint)}")
        if alpha_initializer is None:     # alpha needs values (Dense's None means its default)
            raise ValueError("alpha_initializer must be a name, a dict, an Initializer or a "
                             "function f(shape, dtype). Received: alpha_initializer=None")
        self.alpha_initializer = _initializer("alpha_initializer", alpha_initializer)
        self.alpha_regularizer = _regularizer("alpha_regularizer", alpha_regularizer)
        if shared_axes is None:
            axes: tuple[int, ...] = ()
        elif isinstance(shared_axes, (list, tuple)):
            axes = tuple(V.check_int("shared_axes", a, low=1) for a in shared_axes)
        else:
            axes = (V.check_int("shared_axes", shared_axes, low=1),)
        if len(set(axes)) != len(axes):
            raise ValueError(f"shared_axes must not repeat an axis. Received: "
                             f"shared_axes={V._describe(shared_axes)}")
        self.shared_axes = tuple(sorted(axes))
        self._slope_index: Optional[tuple[Any, np.ndarray]] = None

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple):
            raise ValueError(f"{self.name} takes one input. Received: {input_shape}")
        if self.shared_axes and self.shared_axes[-1] > len(input_shape):
            raise ValueError(f"{self.name}: shared_axes must be axes of the input, 1 to "
                             f"{len(input_shape)} (Keras' numbering, after the batch). "
                             f"Received: shared_axes={list(self.shared_axes)} for samples of "
                             f"shape {input_shape}")
        return input_shape

    def _alpha_shape(self) -> tuple[int, ...]:
        return tuple(1 if k + 1 in self.shared_axes else d
                     for k, d in enumerate(self.input_shape))

    def weight_specs(self) -> Sequence[WeightSpec]:
        return [WeightSpec("alpha", self._alpha_shape(), self.alpha_initializer,
                           self.alpha_regularizer)]

    def _index(self) -> np.ndarray:
        """The slope of each of a sample's values (int64, the sample's size): alpha's flat
        index broadcast along the shared axes (built once; the input shape is fixed)."""
        shape = tuple(self.input_shape)
        if self._slope_index is None or self._slope_index[0] != shape:
            flat = np.arange(math.prod(self._alpha_shape()), dtype=np.int64)
            index = np.ascontiguousarray(
                np.broadcast_to(flat.reshape(self._alpha_shape()), shape)).reshape(-1)
            self._slope_index = (shape, index)
        return self._slope_index[1]

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        n = x.shape[0]
        y = ctx.rows_buffer("y", self.output_shape)
        ctx.be.prelu_forward(x.reshape(n, -1), self._weights[0].reshape(-1), self._index(),
                             y.reshape(n, -1))
        ctx.saved["x"] = x
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        x = ctx.saved["x"]
        n = x.shape[0]
        dx = ctx.dx_target(0)
        ctx.be.prelu_backward(x.reshape(n, -1), dy.reshape(n, -1),
                              self._weights[0].reshape(-1), self._index(),
                              None if dx is None else dx.reshape(n, -1),
                              self._grads[0].reshape(-1))
        return dx

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(),
                  "alpha_initializer": _serialize(self.alpha_initializer),
                  "shared_axes": list(self.shared_axes) or None}
        if self.alpha_regularizer is not None:
            config["alpha_regularizer"] = _serialize(self.alpha_regularizer)
        return config

    def __repr__(self) -> str:
        return f"PReLU(shared_axes={list(self.shared_axes) or None})"


class Identity(Layer):
    """Keras' ``Identity``: the input, unchanged (a placeholder in a model's structure); the
    gradient passes through. Masks pass on."""

    supports_masking = True
    shape_only = True

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        return x

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        return dy

    def __repr__(self) -> str:
        return "Identity()"
