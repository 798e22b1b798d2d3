"""Merge layers: ``Add`` and ``Concatenate``, which take a list of tensors (functional API).

Backward: ``Add`` hands ``dy`` to every input; ``Concatenate`` splits ``dy`` along the axis.
"""

from __future__ import annotations

from typing import Any, Optional

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
