"""Merge layers, which take a list of tensors (functional API): ``Add``, ``Concatenate``, and
Keras' ``Multiply``, ``Subtract``, ``Average``, ``Maximum``, ``Minimum``.

Backward: ``Add`` hands ``dy`` to every input; ``Concatenate`` splits ``dy`` along the axis;
``Multiply`` gives input i ``dy`` times the other inputs (in input order: no division, so zeros
are fine); ``Subtract`` ``dy`` and ``-dy``; ``Average`` ``dy / k``; ``Maximum`` and ``Minimum``
all of ``dy`` to the input that won each element (the earliest on a tie, as their forward).
The kernels (``binary_op``, ``divide_scalar``, ``select_update``, ``select_grad`` in
fastnn/_ext/_layer_ops.pyx) take one pass per input, in input order.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot, rows_of


def _shapes(layer: Layer, input_shape: Any) -> list[tuple[int, ...]]:
    if not isinstance(input_shape, list) or len(input_shape) < 2:
        raise ValueError(f"{layer.name} takes a list of at least two inputs. Received: "
                         f"input shape {input_shape}")
    return input_shape


class Add(Layer):
    """Element-wise sum of its inputs, all of one shape: ``y = x_1 + x_2 + ...`` (summed in
    input order). The residual connection of ResNets and Transformers.

    Examples
    --------
    >>> import fastnn as fnn
    >>> inp = fnn.Input((4,))
    >>> out = fnn.Add()([fnn.Dense(4)(inp), inp])
    >>> fnn.Model(inp, out, backend="numpy").output_shape
    (4,)
    """

    supports_masking = True     # see Layer.compute_mask

    n_inputs = None

    def compute_output_shape(self, input_shape: Any) -> Any:
        shapes = _shapes(self, input_shape)
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"{self.name} needs inputs of one shape. Received: {shapes}")
        return shapes[0]

    def forward(self, ctx: Slot, xs: list[FloatArray], training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        ctx.be.add_forward([x.reshape(-1) for x in xs], y.reshape(-1))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> list[FloatArray]:
        return [dy] * len(self.input_shape)


class Concatenate(Layer):
    """Join its inputs along the last axis (channels-last: features, channels).

    Parameters
    ----------
    axis : int, default -1
        The axis; the last one (-1, or its positive index counting the batch axis).

    Examples
    --------
    >>> import fastnn as fnn
    >>> a, b = fnn.Input((3,)), fnn.Input((2,))
    >>> fnn.Model([a, b], fnn.Concatenate()([a, b]), backend="numpy").output_shape
    (5,)
    """

    supports_masking = True     # see Layer.compute_mask

    n_inputs = None

    def __init__(self, axis: int = -1, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.axis = V.check_int("axis", axis)

    def compute_output_shape(self, input_shape: Any) -> Any:
        shapes = _shapes(self, input_shape)
        rank = len(shapes[0])
        if self.axis not in (-1, rank) or any(len(s) != rank or s[:-1] != shapes[0][:-1]
                                              for s in shapes):
            raise ValueError(f"{self.name} joins inputs along the last axis (axis=-1 or "
                             f"{rank}), all other dimensions equal. Received: axis={self.axis}, "
                             f"input shapes {shapes}")
        return (*shapes[0][:-1], sum(s[-1] for s in shapes))

    def forward(self, ctx: Slot, xs: list[FloatArray], training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        ctx.be.concat_forward([rows_of(x) for x in xs], rows_of(y))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> list[FloatArray]:
        dxs = []
        for i, shape in enumerate(self.input_shape):
            target = ctx.dx_target(i)
            dxs.append(ctx.rows_buffer(f"dx{i}", shape) if target is None else target)
        ctx.be.concat_backward(rows_of(dy), [rows_of(d) for d in dxs])
        return dxs

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.axis != -1:
            config["axis"] = self.axis
        return config


class _Elementwise(Layer):
    """What Multiply, Subtract, Average, Maximum and Minimum share: inputs of one shape."""

    supports_masking = True     # see Layer.compute_mask

    n_inputs = None
    _exactly: Optional[int] = None

    def compute_output_shape(self, input_shape: Any) -> Any:
        shapes = _shapes(self, input_shape)
        if self._exactly is not None and len(shapes) != self._exactly:
            raise ValueError(f"{self.name} takes exactly {self._exactly} inputs. Received: "
                             f"{len(shapes)}")
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"{self.name} needs inputs of one shape. Received: {shapes}")
        return shapes[0]

    def _target(self, ctx: Slot, i: int) -> FloatArray:
        """Where input i's gradient goes: the engine's buffer, or one of this slot's."""
        target = ctx.dx_target(i)
        return ctx.rows_buffer(f"dx{i}", self.input_shape[i]) if target is None else target

    def _targets(self, ctx: Slot) -> list[FloatArray]:
        return [self._target(ctx, i) for i in range(len(self.input_shape))]


class Multiply(_Elementwise):
    """Element-wise product of its inputs, all of one shape (a gate: ``x * sigmoid(g)``).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> a, b = fnn.Input((2,)), fnn.Input((2,))
    >>> model = fnn.Model([a, b], fnn.Multiply()([a, b]), backend="numpy")
    >>> model.predict([np.array([[2.0, 3.0]]), np.array([[4.0, 0.5]])])
    array([[8. , 1.5]], dtype=float32)
    """

    def forward(self, ctx: Slot, xs: list[FloatArray], training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        ctx.saved["xs"] = xs
        flat = [x.reshape(-1) for x in xs]
        out = y.reshape(-1)
        ctx.be.binary_op(flat[0], flat[1], 0, out)
        for x in flat[2:]:
            ctx.be.binary_op(out, x, 0, out)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> list[FloatArray]:
        flat = [x.reshape(-1) for x in ctx.saved["xs"]]
        g = np.ascontiguousarray(dy).reshape(-1)
        dxs = self._targets(ctx)
        for i, dx in enumerate(dxs):
            out = dx.reshape(-1)
            others = [x for j, x in enumerate(flat) if j != i]
            ctx.be.binary_op(g, others[0], 0, out)
            for x in others[1:]:
                ctx.be.binary_op(out, x, 0, out)
        return dxs


class Subtract(_Elementwise):
    """``y = x_1 - x_2``: exactly two inputs of one shape.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> a, b = fnn.Input((2,)), fnn.Input((2,))
    >>> model = fnn.Model([a, b], fnn.Subtract()([a, b]), backend="numpy")
    >>> model.predict([np.array([[2.0, 3.0]]), np.array([[4.0, 0.5]])])
    array([[-2. ,  2.5]], dtype=float32)
    """

    _exactly = 2

    def forward(self, ctx: Slot, xs: list[FloatArray], training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        ctx.be.binary_op(xs[0].reshape(-1), xs[1].reshape(-1), 3, y.reshape(-1))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> list[FloatArray]:
        g = np.ascontiguousarray(dy)
        negative = self._target(ctx, 1)
        # -dy in one pass: a division by -1 is exact (no zeros buffer to fill for 0 - dy)
        ctx.be.divide_scalar(g.reshape(-1), -1.0, negative.reshape(-1))
        return [g, negative]


class Average(_Elementwise):
    """Element-wise mean of its inputs: ``(x_1 + ... + x_k) / k`` (summed in input order, then
    divided, as Keras).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> a, b = fnn.Input((2,)), fnn.Input((2,))
    >>> model = fnn.Model([a, b], fnn.Average()([a, b]), backend="numpy")
    >>> model.predict([np.array([[2.0, 3.0]]), np.array([[4.0, 0.5]])])
    array([[3.  , 1.75]], dtype=float32)
    """

    def forward(self, ctx: Slot, xs: list[FloatArray], training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        out = y.reshape(-1)
        ctx.be.add_forward([x.reshape(-1) for x in xs], out)
        ctx.be.divide_scalar(out, float(len(xs)), out)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> list[FloatArray]:
        g = ctx.rows_buffer("g", self.output_shape)
        ctx.be.divide_scalar(np.ascontiguousarray(dy).reshape(-1), float(len(self.input_shape)),
                             g.reshape(-1))
        return [g] * len(self.input_shape)


class _Select(_Elementwise):
    _largest = True

    def forward(self, ctx: Slot, xs: list[FloatArray], training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        index = ctx.rows_buffer("index", self.output_shape, np.int32)
        best, idx = y.reshape(-1), index.reshape(-1)
        best[...] = xs[0].reshape(-1)
        idx[...] = 0
        for i, x in enumerate(xs[1:], start=1):
            ctx.be.select_update(best, idx, x.reshape(-1), i, self._largest)
        ctx.saved["index"] = index
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> list[FloatArray]:
        g = np.ascontiguousarray(dy).reshape(-1)
        idx = ctx.saved["index"].reshape(-1)
        dxs = self._targets(ctx)
        for i, dx in enumerate(dxs):
            ctx.be.select_grad(g, idx, i, dx.reshape(-1))
        return dxs


class Maximum(_Select):
    """Element-wise maximum of its inputs (the earliest input on a tie, which also takes the
    gradient).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> a, b = fnn.Input((2,)), fnn.Input((2,))
    >>> model = fnn.Model([a, b], fnn.Maximum()([a, b]), backend="numpy")
    >>> model.predict([np.array([[2.0, 3.0]]), np.array([[4.0, 0.5]])])
    array([[4., 3.]], dtype=float32)
    """

    _largest = True


class Minimum(_Select):
    """Element-wise minimum of its inputs (the earliest input on a tie)."""

    _largest = False
