"""``Bidirectional``: a recurrent layer run over the sequence both ways, the two outputs merged;
and ``OutputOf``, the pick of one output of a layer that returns several (``return_state``).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec
from fastnn.layers.recurrent import RNNBase, TakesInitialState

_MERGE_MODES = ("concat", "sum", "ave", "mul", None)


class Bidirectional(TakesInitialState):
    """Run a recurrent layer over the sequence both ways and merge the two outputs.

    The backward copy is made from ``layer``'s config with ``go_backwards`` flipped (its own
    weights); with ``return_sequences`` its outputs are put back in time order before merging,
    so step t of the result sees the whole sequence.

    Parameters
    ----------
    layer : SimpleRNN, LSTM or GRU
        The forward layer (not yet in a model).
    merge_mode : {"concat", "sum", "ave", "mul", None}, default "concat"
        How the two outputs combine; None returns both ``[forward, backward]``.
    backward_layer : optional
        The backward layer, instead of a copy of ``layer`` (same units and
        ``return_sequences``, ``go_backwards`` the opposite of ``layer``'s).
    name, trainable
        See ``Layer``.

    Weights: the forward layer's then the backward layer's (``get_weights()`` as in Keras).
    With ``return_state`` the outputs are ``[merged, forward states..., backward states...]``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Bidirectional(fnn.LSTM(4, return_sequences=True))],
    ...                        input_shape=(5, 3), backend="numpy")
    >>> model.predict(np.zeros((2, 5, 3))).shape
    (2, 5, 8)
    >>> len(model.get_weights())
    6
    """

    uses_mask = True

    def __init__(self, layer: Any, merge_mode: Optional[str] = "concat",
                 backward_layer: Any = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        if not isinstance(layer, RNNBase):
            raise ValueError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU layer. Received: "
                             f"layer={V._describe(layer)}")
        if layer.built or layer._owner is not None:
            raise ValueError(f"Bidirectional needs a recurrent layer that is not in a model yet "
                             f"(it builds its own copy for the backward direction). Received: "
                             f"layer={layer!r}, already built")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {list(_MERGE_MODES)}. Received: "
                             f"merge_mode={V._describe(merge_mode)}")
        self.merge_mode = merge_mode
        if backward_layer is None:
            from fastnn.layers import layer_from_config
            config = layer.get_config()
            config["go_backwards"] = not layer.go_backwards
            config.pop("name", None)
            backward_layer = layer_from_config(config)
        elif not isinstance(backward_layer, RNNBase) or (
                backward_layer.units != layer.units
                or backward_layer.return_sequences != layer.return_sequences
                or backward_layer.return_state != layer.return_state
                or backward_layer.stateful != layer.stateful
                or backward_layer.go_backwards == layer.go_backwards):
            raise ValueError("backward_layer must be a recurrent layer with the forward layer's "
                             "units, return_sequences, return_state and stateful, and the "
                             f"opposite go_backwards. Received: backward_layer="
                             f"{V._describe(backward_layer)}")
        self.forward_layer, self.backward_layer = layer, backward_layer
        # Keras: a padded step's output is 0 in both directions' sequences (each direction's
        # carried state would otherwise show the other end's padding)
        for inner in (layer, backward_layer):
            inner.zero_output_for_mask = inner.return_sequences
        for inner, side in ((layer, "forward"), (backward_layer, "backward")):
            if inner._name is None:
                inner._auto_name = f"{side}_{type(inner).__name__.lower()}"
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self._initial_state = False

    def output_masked(self, masked: Any) -> bool:
        return self.forward_layer.output_masked(masked)

    def compute_mask(self, ctx: Slot, x: Any, mask: Any) -> Any:
        steps = mask[0] if isinstance(mask, list) else mask
        out = steps if self.return_sequences else None
        merged = [out] if self.merge_mode is not None else [out, out]
        if self.return_state:
            return [*merged, *([None] * (2 * self.forward_layer.n_states))]
        return merged[0] if len(merged) == 1 else merged

    def _halves(self, shapes: Any) -> tuple[Any, Any]:
        if not isinstance(shapes, list):
            return shapes, shapes
        k = self.forward_layer.n_states
        if len(shapes) != 1 + 2 * k:
            raise ValueError(f"{self.name}: initial_state must be {2 * k} tensors (the forward "
                             f"layer's states, then the backward layer's). Received: "
                             f"{len(shapes) - 1}")
        return [shapes[0], *shapes[1:1 + k]], [shapes[0], *shapes[1 + k:]]

    def compute_output_shape(self, input_shape: Any) -> Any:
        fwd_in, bwd_in = self._halves(input_shape)
        f = self.forward_layer.compute_output_shape(fwd_in)
        b = self.backward_layer.compute_output_shape(bwd_in)
        f_out, b_out = (f[0], b[0]) if self.return_state else (f, b)
        if self.merge_mode == "concat":
            merged = [(*f_out[:-1], 2 * f_out[-1])]
        elif self.merge_mode is None:
            merged = [f_out, b_out]
        else:
            merged = [f_out]
        if self.return_state:
            return [*merged, *f[1:], *b[1:]]
        return merged[0] if len(merged) == 1 else merged

    def build(self, input_shape: Any, dtype: np.dtype[Any]) -> Any:
        fwd_in, bwd_in = self._halves(input_shape)
        if isinstance(input_shape, list):
            for inner in (self.forward_layer, self.backward_layer):
                inner._initial_state, inner.n_inputs = True, None
        self.forward_layer.build(fwd_in, dtype)
        self.backward_layer.build(bwd_in, dtype)
        return super().build(input_shape, dtype)

    @property
    def sublayers(self) -> tuple[Layer, ...]:
        return (self.forward_layer, self.backward_layer)

    @property
    def draws(self) -> bool:
        """Whether a training pass draws dropout masks (each direction its own)."""
        return self.forward_layer.draws or self.backward_layer.draws

    def init_seed(self, rng: np.random.Generator) -> None:
        """Seed each direction's dropout masks from the model's generator."""
        self.forward_layer.init_seed(rng)
        self.backward_layer.init_seed(rng)

    @property
    def activation(self) -> str:
        """The wrapped layer's activation (what ``summary()`` shows)."""
        return self.forward_layer.activation

    def weight_specs(self) -> Sequence[WeightSpec]:
        return [*self.forward_layer._specs, *self.backward_layer._specs]

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        k = len(self.forward_layer._specs)
        self.forward_layer.bind(weights[:k], grads[:k])
        self.backward_layer.bind(weights[k:], grads[k:])

    # ------------------------------------------------------------------ compute
    def _slots(self, ctx: Slot) -> tuple[Slot, Slot]:
        slots = ctx.saved.get("slots")
        if slots is None:
            slots = ctx.saved["slots"] = (Slot(ctx.be, ctx.dtype), Slot(ctx.be, ctx.dtype))
        return slots

    def forward(self, ctx: Slot, x: Any, training: bool) -> Any:
        fs, bs = self._slots(ctx)
        for s in (fs, bs):
            s.set_rows(ctx.rows)
            s.training = training
            s.mask = ctx.mask
        if isinstance(x, list):
            k = self.forward_layer.n_states
            fx, bx = [x[0], *x[1:1 + k]], [x[0], *x[1 + k:]]
        else:
            fx = bx = x
        f = self.forward_layer.forward(fs, fx, training)
        b = self.backward_layer.forward(bs, bx, training)
        f_out, b_out = (f[0], b[0]) if self.return_state else (f, b)
        if self.return_sequences:
            b_out = b_out[:, ::-1]            # back in time order
        mode = self.merge_mode
        if mode is None:
            merged = [f_out, np.ascontiguousarray(b_out)]
        else:
            out = ctx.rows_buffer("y", (*f_out.shape[1:-1], f_out.shape[-1] * (
                2 if mode == "concat" else 1)))
            if mode == "concat":
                u = f_out.shape[-1]
                out[..., :u] = f_out
                out[..., u:] = b_out
            elif mode == "sum":
                np.add(f_out, b_out, out=out)
            elif mode == "ave":
                np.add(f_out, b_out, out=out)
                out *= 0.5
            else:
                np.multiply(f_out, b_out, out=out)
            merged = [out]
            ctx.saved["halves"] = (f_out, b_out)
        if self.return_state:
            return [*merged, *f[1:], *b[1:]]
        return merged[0] if len(merged) == 1 else merged

    def backward(self, ctx: Slot, dy: Any) -> Any:
        fs, bs = self._slots(ctx)
        dys = dy if isinstance(dy, list) else [dy]
        mode = self.merge_mode
        n_merged = 2 if mode is None else 1
        if mode is None:
            df, db = dys[0], dys[1]
        elif mode == "concat":
            u = self.forward_layer.units
            df, db = dys[0][..., :u], dys[0][..., u:]
        elif mode == "sum":
            df = db = dys[0]
        elif mode == "ave":
            df = db = dys[0] * 0.5
        else:
            f_out, b_out = ctx.saved["halves"]
            df, db = dys[0] * b_out, dys[0] * f_out
        if self.return_sequences:
            db = db[:, ::-1]
        k = self.forward_layer.n_states
        states = dys[n_merged:]
        f_in = [np.ascontiguousarray(df), *states[:k]] if self.return_state else \
            np.ascontiguousarray(df)
        b_in = [np.ascontiguousarray(db), *states[k:]] if self.return_state else \
            np.ascontiguousarray(db)
        need_x = ctx.dx_target(0) is not None
        x_shape = self.input_shape[0] if isinstance(self.input_shape, list) else self.input_shape
        for s, side in ((fs, 0), (bs, 1)):
            targets = [s.rows_buffer("dx_in", x_shape) if need_x else None]
            if self._initial_state:
                targets += [s.rows_buffer(f"ds{i}", (self.forward_layer.units,))
                            if ctx.dx_target(1 + side * k + i) is not None else None
                            for i in range(k)]
            s._dx = targets
        rf = self.forward_layer.backward(fs, f_in)
        rb = self.backward_layer.backward(bs, b_in)
        rf, rb = (rf if isinstance(rf, list) else [rf]), (rb if isinstance(rb, list) else [rb])
        dx = None
        if need_x:
            dx = ctx.dx_target(0)
            np.add(rf[0], rb[0], out=dx)
        if not self._initial_state:
            return dx
        return [dx, *rf[1:], *rb[1:]]

    # ------------------------------------------------------------------ weights and config
    @property
    def stateful(self) -> bool:
        return bool(getattr(self.forward_layer, "stateful", False))

    @property
    def states(self) -> Any:
        """A stateful layer's carried states: the forward layer's then the backward layer's
        (copies), or None when they are zeros."""
        f, b = self.forward_layer.states, self.backward_layer.states
        return None if f is None else [*f, *b]

    def reset_states(self, states: Any = None) -> None:
        """Zero both directions' carried states (stateful layers), or set them: the forward
        layer's then the backward layer's. See ``LSTM.reset_states``."""
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        given = list(states) if isinstance(states, (list, tuple)) else [states]
        k = self.forward_layer.n_states
        if len(given) != 2 * k:
            raise ValueError(f"{self.name}: states must be {2 * k} arrays (the forward layer's "
                             f"states, then the backward layer's). Received: {len(given)}")
        self.forward_layer.reset_states(given[:k])
        self.backward_layer.reset_states(given[k:])

    reset_state = reset_states      # Keras 3's name

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["layer"] = self.forward_layer.get_config()
        config["merge_mode"] = self.merge_mode
        config["backward_layer"] = self.backward_layer.get_config()
        return config

    def __repr__(self) -> str:
        return f"Bidirectional({self.forward_layer!r}, merge_mode={self.merge_mode!r})"


class OutputOf(Layer):
    """One of the outputs of a layer that returns several (``return_state=True``,
    ``Bidirectional(merge_mode=None)``): the functional API adds one per output, so each is a
    tensor of its own. It computes nothing: forward picks, backward passes the gradient on."""

    supports_masking = True     # see Layer.compute_mask

    def __init__(self, index: int, name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.index = V.check_int("index", index, low=0)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, list) or self.index >= len(input_shape):
            raise ValueError(f"{self.name} picks output {self.index} of a layer with several "
                             f"outputs. Received: input shape {input_shape}")
        return input_shape[self.index]

    def compute_mask(self, ctx: Slot, x: Any, mask: Any) -> Any:
        return mask[self.index] if isinstance(mask, list) else mask

    def forward(self, ctx: Slot, x: Any, training: bool) -> Any:
        return x[self.index]

    def backward(self, ctx: Slot, dy: FloatArray) -> Any:
        return dy

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["index"] = self.index
        return config


__all__ = ["Bidirectional", "OutputOf"]
