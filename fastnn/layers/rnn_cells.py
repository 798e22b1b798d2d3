"""Keras' ``RNN(cell)``: ``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``, ``StackedRNNCells``, and
the ``RNN`` layer that runs them over a sequence on the compiled recurrent kernels.

A cell describes one step. ``RNN(LSTMCell(u))`` computes what ``LSTM(u)`` computes, and runs
as one. A stack runs as a chain of those layers, each passing its whole output sequence to the
next: a stacked cell feeds cell k's step-t output to cell k+1 at step t, and nothing flows
back from cell k+1 to cell k, so the chain is the same computation (with ``go_backwards``, the
first layer reads the sequence backwards and the later ones go on in that order, with the step
mask reversed to match). fastnn cannot differentiate an arbitrary Python cell: a cell of
another class is refused by name, pointing to the built-in ones.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional, Sequence

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec
from fastnn.layers.recurrent import GRU, LSTM, RNNBase, SimpleRNN, TakesInitialState

# what the RNN layer decides, not the cell (Keras' cells do not take them either)
_RNN_ARGS = ("return_sequences", "return_state", "go_backwards", "zero_output_for_mask",
             "stateful", "name", "trainable")


class _Cell:
    """One step of a recurrent layer: its arguments, checked by the layer they make."""

    layer_class: type[RNNBase]

    def __init__(self, units: int, **kwargs: Any) -> None:
        for key in _RNN_ARGS[:5]:
            if key in kwargs:
                raise TypeError(f"{type(self).__name__} does not take {key}: it is an argument "
                                f"of RNN (RNN({type(self).__name__}(...), {key}=...))")
        known = inspect.signature(self.layer_class.__init__).parameters
        open_ended = any(p.kind is p.VAR_KEYWORD for p in known.values())
        for key in kwargs:
            if not open_ended and (key not in known or key in ("self", "units")):
                raise TypeError(f"{type(self).__name__} got an unexpected argument {key!r}. "
                                f"Received: {key}={V._describe(kwargs[key])}")
        self._template = self.layer_class(units, **kwargs)     # checks every argument
        self.units = self._template.units

    @property
    def state_size(self) -> Any:
        """Keras': ``units``, or ``[units, units]`` for the LSTM's (h, c)."""
        n = self.layer_class.n_states
        return self.units if n == 1 else [self.units] * n

    @property
    def output_size(self) -> int:
        return self.units

    def make_layer(self, **rnn_args: Any) -> RNNBase:
        """A new recurrent layer of this cell's arguments and the RNN's (its own weights)."""
        from fastnn.layers import layer_from_config
        config = self._template.get_config()
        config.pop("state", None)
        config.update(rnn_args)
        return layer_from_config(config)       # type: ignore[return-value]

    def get_config(self) -> dict[str, Any]:
        """``{"class_name": ..., "config": {...}}`` as Keras serializes a cell."""
        config = self._template.get_config()
        for key in ("class", "state", *_RNN_ARGS):
            config.pop(key, None)
        return {"class_name": type(self).__name__, "config": config}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.units})"


class SimpleRNNCell(_Cell):
    """The step of ``SimpleRNN``: ``h_t = act(x_t W + h_{t-1} U + b)``; the arguments of
    ``SimpleRNN`` but those of the RNN layer (``return_sequences``, ...)."""

    layer_class = SimpleRNN


class LSTMCell(_Cell):
    """The step of ``LSTM`` (gates i, f, c, o as Keras); its states are ``[h, c]``."""

    layer_class = LSTM


class GRUCell(_Cell):
    """The step of ``GRU`` (``reset_after=True``, Keras' default, or False: Keras' other
    variant, the reset gate applied before the recurrent product)."""

    layer_class = GRU


CELLS: dict[str, type[_Cell]] = {c.__name__: c for c in (SimpleRNNCell, LSTMCell, GRUCell)}


class StackedRNNCells:
    """Cells run one above the other at each step: cell k's output is cell k+1's input."""

    def __init__(self, cells: Sequence[Any]) -> None:
        if not isinstance(cells, (list, tuple)) or not cells:
            raise ValueError(f"StackedRNNCells takes a non-empty list of cells. Received: "
                             f"cells={V._describe(cells)}")
        self.cells = [_check_cell(c) for c in cells]

    @property
    def state_size(self) -> list[Any]:
        return [c.state_size for c in self.cells]

    @property
    def output_size(self) -> int:
        return self.cells[-1].units

    def get_config(self) -> dict[str, Any]:
        return {"class_name": "StackedRNNCells",
                "config": {"cells": [c.get_config() for c in self.cells]}}

    def __repr__(self) -> str:
        return f"StackedRNNCells({self.cells!r})"


def _check_cell(cell: Any) -> _Cell:
    if isinstance(cell, _Cell):
        return cell
    raise ValueError(f"RNN runs fastnn's SimpleRNNCell, LSTMCell and GRUCell (and "
                     f"StackedRNNCells of them): fastnn computes gradients with its own "
                     f"kernels, so it cannot run a cell written in Python. Received: "
                     f"cell={V._describe(cell)}")


def cell_from_config(config: Any) -> Any:
    """A cell (or StackedRNNCells) from its ``get_config()``."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ValueError(f"RNN: 'cell' must be a cell config {{'class_name': ..., 'config': "
                         f"{{...}}}}. Received: {config!r:.80}")
    kind, args = config.get("class_name"), dict(config["config"])
    if kind == "StackedRNNCells":
        cells = args.get("cells")
        if not isinstance(cells, list):
            raise ValueError(f"StackedRNNCells: 'cells' must be a list. Received: {cells!r:.80}")
        return StackedRNNCells([cell_from_config(c) for c in cells])
    if kind not in CELLS:
        raise ValueError(f"unknown RNN cell class {kind!r} (known: "
                         f"{sorted(CELLS) + ['StackedRNNCells']})")
    from fastnn.layers import _with_objects
    return CELLS[kind](**_with_objects(args))


class RNN(TakesInitialState):
    """Run a cell (or a stack of cells) over a sequence, as Keras' ``RNN``.

    Parameters
    ----------
    cell : SimpleRNNCell, LSTMCell, GRUCell, StackedRNNCells, or a list of cells
        A list is a ``StackedRNNCells``.
    return_sequences, return_state, go_backwards, zero_output_for_mask
        As for ``LSTM``. ``return_state`` returns the output, then every cell's states in
        order, flat: ``[output, h1, c1, h2, c2]`` for two LSTM cells (Keras 3 nests each
        cell's list).
    stateful : bool, default False
        As for ``LSTM``: each batch starts from the last batch's final states (every cell's);
        ``reset_states()`` zeroes them.
    unroll : bool, default False
        Accepted and ignored: the kernels run every step in a loop either way.
    name, trainable
        See ``Layer``.

    Weights: each cell's ``kernel``, ``recurrent_kernel``, ``bias`` in order, Keras' layouts.
    Called as ``rnn(x)`` or ``rnn(x, initial_state=[every cell's states, flat])``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> rnn = fnn.RNN([fnn.LSTMCell(8), fnn.GRUCell(4)], return_sequences=True)
    >>> model = fnn.Sequential([rnn], input_shape=(5, 3), backend="numpy")
    >>> model.predict(np.zeros((2, 5, 3))).shape
    (2, 5, 4)
    >>> [w.shape for w in model.get_weights()]
    [(3, 32), (8, 32), (32,), (8, 12), (4, 12), (2, 12)]
    """

    uses_mask = True

    def __init__(self, cell: Any, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 zero_output_for_mask: bool = False, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        elif not isinstance(cell, StackedRNNCells):
            cell = _check_cell(cell)
        self.stateful = V.check_bool("stateful", stateful)
        self.unroll = V.check_bool("unroll", unroll)
        self.cell = cell
        self.return_sequences = V.check_bool("return_sequences", return_sequences)
        self.return_state = V.check_bool("return_state", return_state)
        self.go_backwards = V.check_bool("go_backwards", go_backwards)
        self.zero_output_for_mask = V.check_bool("zero_output_for_mask", zero_output_for_mask)
        cells = cell.cells if isinstance(cell, StackedRNNCells) else [cell]
        last = len(cells) - 1
        self.layers: list[RNNBase] = [
            c.make_layer(return_sequences=return_sequences or k < last,
                         return_state=return_state, go_backwards=go_backwards and k == 0,
                         zero_output_for_mask=zero_output_for_mask if k == last else False,
                         stateful=self.stateful, name=None)
            for k, c in enumerate(cells)]
        for k, inner in enumerate(self.layers):
            inner._auto_name = f"cell_{k}_{type(inner).__name__.lower()}"
        self._initial_state = False

    # ------------------------------------------------------------------ calls and shapes
    @property
    def n_states(self) -> int:
        return sum(inner.n_states for inner in self.layers)

    def output_masked(self, masked: Any) -> bool:
        return self.layers[-1].output_masked(masked)

    def compute_mask(self, ctx: Slot, x: Any, mask: Any) -> Any:
        steps = mask[0] if isinstance(mask, list) else mask
        out = steps if self.return_sequences else None
        return [out, *([None] * self.n_states)] if self.return_state else out

    def _inputs_of(self, given: Any) -> list[Any]:
        """Each inner layer's input (shapes or arrays) from the RNN's: the sequence only
        (None for the later layers: they read the one before), or with its initial states."""
        if not isinstance(given, list):
            return [given] + [None] * (len(self.layers) - 1)
        if len(given) != 1 + self.n_states:
            raise ValueError(f"{self.name}: initial_state must be {self.n_states} tensors (every "
                             f"cell's states in order). Received: {len(given) - 1}")
        out: list[Any] = []
        i = 1
        for inner in self.layers:
            out.append([given[0] if not out else None, *given[i:i + inner.n_states]])
            i += inner.n_states
        return out

    def compute_output_shape(self, input_shape: Any) -> Any:
        outs, states = self._shapes(input_shape)
        return [outs, *states] if self.return_state else outs

    def _shapes(self, input_shape: Any) -> tuple[Any, list[Any]]:
        shape: Any = None
        states: list[Any] = []
        for inner, given in zip(self.layers, self._inputs_of(input_shape)):
            seq = shape if shape is not None else (given[0] if isinstance(given, list) else given)
            inner_in = [seq, *given[1:]] if isinstance(given, list) else seq
            out = inner.compute_output_shape(inner_in)
            shape = out[0] if inner.return_state else out
            states += out[1:] if inner.return_state else []
        return shape, states

    def build(self, input_shape: Any, dtype: np.dtype[Any]) -> Any:
        shape = None
        for inner, given in zip(self.layers, self._inputs_of(input_shape)):
            seq = shape if shape is not None else (given[0] if isinstance(given, list) else given)
            if isinstance(given, list):
                inner._initial_state, inner.n_inputs = True, None
                out = inner.build([seq, *given[1:]], dtype)
            else:
                out = inner.build(seq, dtype)
            shape = out[0] if inner.return_state else out
        return super().build(input_shape, dtype)

    @property
    def sublayers(self) -> tuple[Layer, ...]:
        return tuple(self.layers)

    @property
    def draws(self) -> bool:
        return any(inner.draws for inner in self.layers)

    def init_seed(self, rng: np.random.Generator) -> None:
        for inner in self.layers:
            inner.init_seed(rng)

    @property
    def activation(self) -> str:
        return self.layers[-1].activation

    def weight_specs(self) -> Sequence[WeightSpec]:
        return [spec for inner in self.layers for spec in inner._specs]

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        i = 0
        for inner in self.layers:
            k = len(inner._specs)
            inner.bind(weights[i:i + k], grads[i:i + k])
            i += k

    # ------------------------------------------------------------------ compute
    def _slots(self, ctx: Slot) -> list[Slot]:
        slots = ctx.saved.get("slots")
        if slots is None:
            slots = ctx.saved["slots"] = [Slot(ctx.be, ctx.dtype) for _ in self.layers]
        return slots

    def forward(self, ctx: Slot, x: Any, training: bool) -> Any:
        mask = ctx.mask[0] if isinstance(ctx.mask, list) else ctx.mask
        later_mask = mask
        if mask is not None and self.go_backwards and len(self.layers) > 1:
            # the first layer's output runs backwards in time: so do the later layers' steps
            later_mask = np.ascontiguousarray(mask[:, ::-1])
        seq: Any = None
        states: list[Any] = []
        for k, (inner, s, given) in enumerate(zip(self.layers, self._slots(ctx),
                                                  self._inputs_of(x))):
            s.set_rows(ctx.rows)
            s.training = training
            s.mask = mask if k == 0 else later_mask
            if seq is not None:
                given = [seq, *given[1:]] if isinstance(given, list) else seq
            out = inner.forward(s, given, training)
            seq = out[0] if inner.return_state else out
            states += out[1:] if inner.return_state else []
        return [seq, *states] if self.return_state else seq

    def backward(self, ctx: Slot, dy: Any) -> Any:
        dys = dy if isinstance(dy, list) else [dy]
        slots = self._slots(ctx)
        # each layer's share of the state gradients (return_state), in order
        dstates, i = [], 1
        for inner in self.layers:
            dstates.append(dys[i:i + inner.n_states] if self.return_state else [])
            i += inner.n_states if self.return_state else 0
        need_x = ctx.dx_target(0) is not None
        d_seq: Any = dys[0]
        d_init: list[list[Any]] = [[] for _ in self.layers]
        j = 1 + self.n_states
        for k in range(len(self.layers) - 1, -1, -1):
            inner, s = self.layers[k], slots[k]
            j -= inner.n_states
            in_shape = inner.input_shape[0] if isinstance(inner.input_shape, list) \
                else inner.input_shape
            target = (ctx.dx_target(0) if k == 0 else s.rows_buffer("dx_in", in_shape)) \
                if (k > 0 or need_x) else None
            targets = [target]
            if inner._initial_state:
                targets += [s.rows_buffer(f"ds{m}", (inner.units,))
                            if ctx.dx_target(j + m) is not None else None
                            for m in range(inner.n_states)]
            s._dx = targets
            dy_in = np.ascontiguousarray(d_seq)
            result = inner.backward(s, [dy_in, *dstates[k]] if inner.return_state else dy_in)
            result = result if isinstance(result, list) else [result]
            d_seq = result[0]
            d_init[k] = result[1:]
        dx = d_seq if need_x else None
        if not self._initial_state:
            return dx
        return [dx, *[d for per in d_init for d in per]]

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["cell"] = self.cell.get_config()
        for key in ("return_sequences", "return_state", "go_backwards", "stateful"):
            if getattr(self, key):
                config[key] = True
        if self.zero_output_for_mask:
            config["zero_output_for_mask"] = True
        if self.unroll:
            config["unroll"] = True
        states = [inner.get_config().get("state") for inner in self.layers]
        if any(s is not None for s in states):
            config["state"] = states
        return config

    @property
    def states(self) -> Optional[list[FloatArray]]:
        """A stateful RNN's carried states, every cell's in order, flat (copies), or None when
        they are zeros."""
        held = [inner.states for inner in self.layers]
        return None if held[0] is None else [s for cell in held for s in (cell or [])]

    def reset_states(self, states: Any = None) -> None:
        """Zero a stateful RNN's carried states, or set them: every cell's, in order, flat
        (``[h1, c1, h2]`` for an LSTM cell then a GRU cell). See ``LSTM.reset_states``."""
        if states is None:
            for inner in self.layers:
                inner.reset_states()
            return
        given = list(states) if isinstance(states, (list, tuple)) else [states]
        if len(given) != self.n_states:
            raise ValueError(f"{self.name}: states must be {self.n_states} arrays (every cell's "
                             f"states in order). Received: {len(given)}")
        i = 0
        for inner in self.layers:
            inner.reset_states(given[i:i + inner.n_states])
            i += inner.n_states

    reset_state = reset_states      # Keras 3's name

    def set_state(self, state: Any) -> None:
        """Restore ``get_config()["state"]``: each cell's dropout stream."""
        if not isinstance(state, list) or len(state) != len(self.layers):
            raise ValueError(f"RNN: 'state' must be a list of {len(self.layers)} entries (one "
                             f"per cell). Received: {state!r:.80}")
        for inner, s in zip(self.layers, state):
            if s is not None:
                inner.set_state(s)

    def __repr__(self) -> str:
        return f"RNN({self.cell!r}, return_sequences={self.return_sequences})"


__all__ = ["RNN", "SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells"]
