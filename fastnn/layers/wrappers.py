"""``TimeDistributed``: one layer applied to every step of a sequence (Keras' wrapper).

Input (n, steps, *sample) runs through the wrapped layer as n * steps samples of ``sample``
(one call of its kernels, a reshape on each side), so ``TimeDistributed(Conv2D(...))`` reads a
video of frames and ``TimeDistributed(Dense(...))`` a sequence (where it gives what ``Dense``
on the sequence gives: fastnn's ``Dense`` already acts on the last axis). The wrapped layer's
weights are the wrapper's, shared by every step; its gradients are summed over the steps by its
own kernels.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec, check_weight_sizes


class TimeDistributed(Layer):
    """Apply ``layer`` to each step of the input's second axis: (n, steps, *sample) ->
    (n, steps, *layer's output for sample).

    Raises
    ------
    TypeError
        If ``layer`` is not a fastnn layer of one input, or it holds Dropout (whose masks the
        wrapper would have to seed per step).
    ValueError
        At build, if the input has no steps axis (samples of one dimension).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.TimeDistributed(fnn.Conv2D(2, 3))],
    ...                        input_shape=(5, 8, 8, 1), backend="numpy")
    >>> model.predict(np.zeros((3, 5, 8, 8, 1))).shape
    (3, 5, 6, 6, 2)
    """

    supports_masking = True     # see Layer.compute_mask

    def __init__(self, layer: Layer, name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        if not isinstance(layer, Layer) or type(layer).forward is Layer.forward:
            raise TypeError(f"TimeDistributed wraps a fastnn layer such as Dense(10) or "
                            f"Conv2D(8, 3). Received: layer={layer!r}")
        if layer.n_inputs != 1:
            raise TypeError(f"TimeDistributed wraps a layer of one input. Received: "
                            f"{type(layer).__name__}")
        if getattr(layer, "init_seed", None) is not None and getattr(layer, "draws", True):
            raise TypeError(f"TimeDistributed does not wrap {type(layer).__name__}: its dropout "
                            f"masks are seeded per call (put the Dropout outside the wrapper, "
                            f"where it masks every step alike)")
        if layer.output_shape is not None:
            raise TypeError(f"TimeDistributed wraps a layer not yet built (each model builds "
                            f"its own). Received: {layer!r}")
        self.layer = layer

    # ------------------------------------------------------------------ shapes and weights
    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple) or len(input_shape) < 2:
            raise ValueError(f"{self.name} takes sequences (steps, *sample). Received: input "
                             f"shape {input_shape}")
        inner = self.layer.compute_output_shape(tuple(input_shape[1:]))
        if not isinstance(inner, tuple):
            raise ValueError(f"{self.name}: {type(self.layer).__name__} gives several "
                             f"outputs; TimeDistributed takes a layer of one output")
        return (input_shape[0], *inner)

    def build(self, input_shape: Any, dtype: Any) -> Any:
        out = super().build(input_shape, dtype)
        self.layer.build(tuple(input_shape[1:]), dtype)
        self._specs = list(self.weight_specs())
        check_weight_sizes(self, self._specs)
        return out

    @property
    def sublayers(self) -> tuple[Layer, ...]:
        return (self.layer,)

    @property
    def act(self) -> int:                          # type: ignore[override]
        """The wrapped layer's activation (the model's output activation when last)."""
        return self.layer.act

    @property
    def param(self) -> float:                      # type: ignore[override]
        return self.layer.param

    @property
    def activation(self) -> str:
        return self.layer.activation

    def weight_specs(self) -> Sequence[WeightSpec]:
        return list(self.layer._specs)              # empty until the wrapped layer is built

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        self.layer.bind(weights, grads)

    # ------------------------------------------------------------------ compute
    def _child(self, ctx: Slot) -> Slot:
        child = ctx.saved.get("child")
        if child is None:
            child = ctx.saved["child"] = Slot(ctx.be, ctx.dtype)
        return child

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        child = self._child(ctx)
        steps = self.input_shape[0]
        child.set_rows(ctx.rows * steps)
        child.training = training
        flat = np.ascontiguousarray(x).reshape(ctx.rows * steps, *self.input_shape[1:])
        y = self.layer.forward(child, flat, training)
        return y.reshape(ctx.rows, *self.output_shape)

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        child = self._child(ctx)
        steps = self.input_shape[0]
        child.fuse_act = ctx.fuse_act          # the loss took the final activation's derivative
        need_x = ctx.dx_target(0) is not None
        child._dx = [child.rows_buffer("dx_in", self.input_shape[1:]) if need_x else None]
        flat = np.ascontiguousarray(dy).reshape(ctx.rows * steps, *self.output_shape[1:])
        dx = self.layer.backward(child, flat)
        if not need_x or dx is None:
            return None
        return dx.reshape(ctx.rows, *self.input_shape)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": self.layer.get_config()}

    def __repr__(self) -> str:
        return f"TimeDistributed({self.layer!r})"


__all__ = ["TimeDistributed"]
