"""Recurrent layers: ``SimpleRNN``, ``LSTM`` and ``GRU`` (``Bidirectional``: bidirectional.py),
with Keras' arguments, equations, weight layouts and gate orders.

A recurrent layer reads a sequence (n, steps, features) one step at a time, carrying a state
from each step to the next: the same neurons (weights) at every step, so a sequence of any
length is learnt from its steps. Keras' equations (``act`` = ``activation``, ``rec`` =
``recurrent_activation``; kernel W (features, k units), recurrent kernel U (units, k units)):

- SimpleRNN: ``h_t = act(x_t W + h_{t-1} U + b)``
- LSTM, gates in Keras' order i, f, c, o: ``[i, f, g, o] = [rec, rec, act, rec](x_t W +
  h_{t-1} U + b)``, ``c_t = f c_{t-1} + i g``, ``h_t = o act(c_t)``
- GRU (``reset_after=True``, Keras' default), gates z, r, h: ``z = rec(x_t W_z + h_{t-1} U_z +
  b_z)``, ``r`` the same, ``hh = act(x_t W_h + b_h + r (h_{t-1} U_h + b'_h))``,
  ``h_t = z h_{t-1} + (1 - z) hh``; the bias is (2, 3 units): input bias, recurrent bias.
  With ``reset_after=False`` (Cho et al., 2014; Keras 2-era models) the reset gate meets h before
  the product: ``hh = act(x_t W_h + (r h_{t-1}) U_h + b_h)``, one bias (3 units,).

Backpropagation through time runs in one compiled call per layer (src_c/fnn_rnn.h): the input
projection of all steps and the weight gradients of all steps are single products; each step is
one product plus its gates. The NumPy backend runs the same equations step by step
(fastnn/backends/numpy_recurrent.py).

Initial states are a layer's extra inputs (``layer(x, initial_state=[h0, c0])`` in the
functional API); ``return_state=True`` makes the layer return ``[output, h]`` (LSTM:
``[output, h, c]``); ``stateful=True`` starts each batch from the last batch's final states.
"""

from __future__ import annotations

import math

from typing import Any, Optional, Sequence

import numpy as np

from fastnn import activations as A
from fastnn import _validation as V
from fastnn.layers.recurrent_dropout import RecurrentDropout
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec
from fastnn.layers.core import _initializer, _regularizer, _serialize, activation_of

SIMPLE, LSTM_CELL, GRU_CELL, GRU_RESET_BEFORE = 0, 1, 2, 3
_ALLOWED = {A.LINEAR: "linear", A.SIGMOID: "sigmoid", A.TANH: "tanh", A.RELU: "relu"}


def _gate_activation(name: str, value: Any) -> int:
    code, _ = activation_of("linear" if value is None else value)
    if code not in _ALLOWED:
        raise ValueError(f"{name} of a recurrent layer must be one of "
                         f"{sorted(_ALLOWED.values())}. Received: {name}={V._describe(value)}")
    return code


class _ForgetBias:
    """Keras' ``unit_forget_bias``: the bias initialiser's values with the forget gate's
    quarter set to 1."""

    def __init__(self, base: Any, units: int) -> None:
        self.base, self.units = base, units

    def __call__(self, shape: Sequence[int], dtype: Any, rng: Any) -> Any:
        values = np.array(self.base(shape, dtype, rng), dtype=np.float64)
        values[self.units:2 * self.units] = 1.0
        return values


class RecurrentArguments:
    """The arguments the recurrent layers share (RNNBase's, ConvLSTM2D's), checked once."""

    def set_recurrent_arguments(self, activation: Any, recurrent_activation: Any,
                                use_bias: Any, kernel_initializer: Any,
                                recurrent_initializer: Any, bias_initializer: Any,
                                kernel_regularizer: Any, recurrent_regularizer: Any,
                                bias_regularizer: Any, return_sequences: Any,
                                return_state: Any, go_backwards: Any) -> None:
        self.act = _gate_activation("activation", activation)
        self.rec_act = _gate_activation("recurrent_activation", recurrent_activation)
        self.use_bias = V.check_bool("use_bias", use_bias)
        self.kernel_initializer = _initializer("kernel_initializer", kernel_initializer)
        self.recurrent_initializer = _initializer("recurrent_initializer",
                                                  recurrent_initializer)
        self.bias_initializer = _initializer("bias_initializer", bias_initializer)
        self.kernel_regularizer = _regularizer("kernel_regularizer", kernel_regularizer)
        self.recurrent_regularizer = _regularizer("recurrent_regularizer",
                                                  recurrent_regularizer)
        self.bias_regularizer = _regularizer("bias_regularizer", bias_regularizer)
        self.return_sequences = V.check_bool("return_sequences", return_sequences)
        self.return_state = V.check_bool("return_state", return_state)
        self.go_backwards = V.check_bool("go_backwards", go_backwards)


class TakesInitialState(Layer):
    """A layer called as ``layer(x)`` or ``layer(x, initial_state=[...])`` on symbolic tensors
    (or ``layer([x, *states])``): the states become extra inputs after the sequence."""

    _initial_state = False        # called with initial states (extra inputs)

    def __call__(self, inputs: Any, initial_state: Any = None, **kwargs: Any) -> Any:
        if initial_state is not None:
            states = initial_state if isinstance(initial_state, (list, tuple)) else [
                initial_state]
            inputs = [inputs, *states]
        if isinstance(inputs, (list, tuple)):
            self.expect_inputs(len(inputs))
        return super().__call__(inputs, **kwargs)

    def expect_inputs(self, count: int) -> None:
        if count > 1:                 # the sequence, then the initial states
            self._initial_state, self.n_inputs = True, None


class CarriedStates:
    """``stateful=True``: the states a layer carries from batch to batch (sample i from sample
    i), with Keras' ``reset_states``/``reset_state`` and ``states``. The layer stores its last
    batch's final states in ``_carried`` (new arrays each batch, never written in place) and
    names their per-sample ``state_shape`` and count ``n_states``."""

    n_states = 1
    stateful = False
    _carried: Optional[list[FloatArray]] = None
    name: str
    built: bool

    @property
    def state_shape(self) -> tuple[int, ...]:
        """The shape of each state per sample (once built)."""
        raise NotImplementedError

    def _state_dtype(self) -> Any:
        raise NotImplementedError

    @property
    def _state_names(self) -> str:
        return "[h, c]" if self.n_states == 2 else "[h]"

    def _carried_for(self, n: int) -> list[FloatArray]:
        """A stateful layer's initial states for a batch of ``n`` sequences: the last batch's
        final states (none before the first batch or after a reset: zeros)."""
        if self._carried is None:
            return []
        held = self._carried[0].shape[0]
        if held != n:
            raise ValueError(f"{self.name} is stateful: it holds the states of batches of {held} "
                             f"sequences, and this batch has {n}. Feed batches of {held} "
                             f"(batch_size={held} in fit, evaluate and predict, with a sample "
                             f"count divisible by it), or call reset_states() to start again")
        return list(self._carried)     # never written in place: each batch stores new arrays

    @property
    def states(self) -> Optional[list[FloatArray]]:
        """A stateful layer's carried states (copies, each (batch, *state_shape): ``[h]``,
        LSTM and ConvLSTM2D ``[h, c]``), or None when they are zeros (no batch yet, or after
        ``reset_states``)."""
        return None if self._carried is None else [s.copy() for s in self._carried]

    def reset_states(self, states: Any = None) -> None:
        """Zero a stateful layer's carried states (Keras' ``reset_states``), or set them.

        Parameters
        ----------
        states : list of array_like, optional
            The states the next batch starts from: ``n_states`` arrays (``[h]``; LSTM and
            ConvLSTM2D ``[h, c]``) of shape (batch, *state_shape), finite, one batch size.
            Without it, zeros, and the next batch may have any size.

        Raises
        ------
        ValueError
            If the layer is not stateful and ``states`` is given, the layer is not built, or
            ``states`` has the wrong count, shapes or values (TypeError: not real numbers).
        """
        if states is None:
            self._carried = None
            return
        names = self._state_names
        if not self.stateful:
            raise ValueError(f"{self.name} is not stateful (stateful=False): it has no states to "
                             f"set; pass initial_state={names} when calling it instead")
        if not self.built:
            raise ValueError(f"{self.name}: build the model before setting its states")
        given = list(states) if isinstance(states, (list, tuple)) else [states]
        if len(given) != self.n_states:
            count = f"{self.n_states} array{'s' if self.n_states > 1 else ''}"
            raise ValueError(f"{self.name}: states must be {count} {names}. Received: "
                             f"{len(given)}")
        dtype = self._state_dtype()
        out: list[FloatArray] = []
        for i, value in enumerate(given):
            arr = V.float_array(f"states[{i}]", value, dtype, self.state_shape)
            if out and arr.shape[0] != out[0].shape[0]:
                raise ValueError(f"{self.name}: states {names} must share one batch size. "
                                 f"Received: shapes {out[0].shape} and {arr.shape}")
            out.append(np.array(arr, dtype=dtype, order="C"))
        self._carried = out

    reset_state = reset_states      # Keras 3's name


class RNNBase(CarriedStates, RecurrentArguments, RecurrentDropout,
              TakesInitialState):
    """What SimpleRNN, LSTM and GRU share: arguments, weights, states, the kernels' calls."""

    cell = SIMPLE
    gates = 1
    n_states = 1
    uses_mask = True      # a padded step (a mask's False) carries the states over

    def __init__(self, units: int, activation: Any = "tanh",
                 recurrent_activation: Any = "sigmoid", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False,
                 name: Optional[str] = None, trainable: bool = True,
                 zero_output_for_mask: bool = False, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, seed: Optional[int] = None,
                 stateful: bool = False) -> None:
        super().__init__(name=name, trainable=trainable)
        self.units = V.check_positive_int("units", units)
        if self.units >= 2**31:
            raise ValueError(f"units must be below 2**31. Received: units={units}")
        self.set_recurrent_arguments(activation, recurrent_activation, use_bias,
                                     kernel_initializer, recurrent_initializer,
                                     bias_initializer, kernel_regularizer,
                                     recurrent_regularizer, bias_regularizer,
                                     return_sequences, return_state, go_backwards)
        self.zero_output_for_mask = V.check_bool("zero_output_for_mask", zero_output_for_mask)
        self._initial_state = False       # called with initial states (extra inputs)
        self._init_dropout(dropout, recurrent_dropout, seed)
        self.stateful = V.check_bool("stateful", stateful)
        # stateful: the last batch's final states, each (batch, units); None: zeros
        self._carried: Optional[list[FloatArray]] = None

    # ------------------------------------------------------------------ calls and shapes
    def output_masked(self, masked: Any) -> bool:
        """A sequence output keeps the input's step mask (Keras); the last step's does not."""
        first = masked[0] if isinstance(masked, list) else masked
        return bool(first) and self.return_sequences

    def compute_mask(self, ctx: Slot, x: Any, mask: Any) -> Any:
        steps = mask[0] if isinstance(mask, list) else mask
        out = steps if self.return_sequences else None
        return [out, *([None] * self.n_states)] if self.return_state else out

    @property
    def _state_units(self) -> list[int]:
        return [self.units] * self.n_states

    def _check_sequence(self, shape: Any) -> tuple[int, int]:
        if not isinstance(shape, tuple) or len(shape) != 2:
            raise ValueError(f"{self.name} takes sequences of shape (steps, features): input "
                             f"(batch, steps, features). Received: input shape {shape} per "
                             f"sample (a 2-D input needs a steps axis: reshape it to "
                             f"(batch, steps, 1) or add Reshape)")
        return shape

    def compute_output_shape(self, input_shape: Any) -> Any:
        if isinstance(input_shape, list):
            x_shape, states = input_shape[0], input_shape[1:]
            want = [(u,) for u in self._state_units]
            if [tuple(s) if isinstance(s, tuple) else s for s in states] != want:
                raise ValueError(f"{self.name}: initial_state must be {len(want)} tensor(s) of "
                                 f"shape {want[0]} (one per state: "
                                 f"{'h, c' if self.n_states == 2 else 'h'}). Received: "
                                 f"shapes {states}")
        else:
            x_shape = input_shape
        steps, _ = self._check_sequence(x_shape)
        out = (steps, self.units) if self.return_sequences else (self.units,)
        if self.return_state:
            return [out, *[(u,) for u in self._state_units]]
        return out

    def weight_specs(self) -> Sequence[WeightSpec]:
        shape = self.input_shape[0] if isinstance(self.input_shape, list) else self.input_shape
        K = self.gates * self.units
        specs = [WeightSpec("kernel", (shape[-1], K), self.kernel_initializer,
                            self.kernel_regularizer),
                 WeightSpec("recurrent_kernel", (self.units, K), self.recurrent_initializer,
                            self.recurrent_regularizer)]
        if self.use_bias:
            specs.append(WeightSpec("bias", self._bias_shape(), self._bias_init(),
                                    self.bias_regularizer))
        return specs

    def _bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    def _bias_init(self) -> Any:
        return self.bias_initializer

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        self.kernel, self.dkernel = weights[0], grads[0]
        self.recurrent_kernel, self.drecurrent_kernel = weights[1], grads[1]
        size = math.prod(self._bias_shape())
        if self.use_bias:
            self.bias, self.dbias = weights[2].reshape(-1), grads[2].reshape(-1)
        else:                       # the kernels take a bias: a constant zero one
            self.bias = np.zeros(size, weights[0].dtype)
            self.dbias = np.zeros(size, weights[0].dtype)
        shape = self.input_shape[0] if isinstance(self.input_shape, list) else self.input_shape
        self._steps, self._features = shape

    # ------------------------------------------------------------------ compute
    def _dims(self, n: int) -> tuple[int, int, int, int, int]:
        return self.cell, n, self._steps, self._features, self.units

    def _sizes(self, be: Any, rec: bool = False) -> tuple[int, int]:
        """The kernels' (forward, backward) workspace values per sample (asked once); with
        ``rec`` (a recurrent dropout mask) room for the masked states."""
        key = (be, self.cell, self._steps, self._features, self.units, rec)
        sizes = self.__dict__.get("_sizes_of")
        if sizes is None or sizes[0] != key:
            sizes = self.__dict__["_sizes_of"] = (key, be.rnn_sizes(*key[1:5],
                                                                    rec_dropout=rec))
        return sizes[1]

    def forward(self, ctx: Slot, x: Any, training: bool) -> Any:
        xs = x if isinstance(x, list) else [x]
        if self.stateful and len(xs) == 1:
            xs = [xs[0], *self._carried_for(xs[0].shape[0])]
        # the LSTM's backward consumes the workspace (src_c/fnn_rnn.h): a second backward of
        # this forward runs it again from these inputs
        ctx.saved["inputs"], ctx.saved["fresh"] = xs, True
        mask = ctx.mask[0] if isinstance(ctx.mask, list) else ctx.mask
        ctx.saved["mask"] = (None if mask is None
                             else np.ascontiguousarray(mask).view(np.uint8).reshape(-1))
        # dropout's masks: drawn once per training pass, kept for the backward (and its rerun)
        ctx.saved["drop"] = self.masks(ctx, self._features, training)
        out = self._run(ctx, xs)
        if self.stateful:     # the next batch starts where this one ended (copies: buffers)
            self._carried = [ctx.rows_buffer(f"state{i}", (self.units,)).copy()
                             for i in range(self.n_states)]
        return out

    def _run(self, ctx: Slot, xs: list[Any]) -> Any:
        seq = np.ascontiguousarray(xs[0])
        n = seq.shape[0]
        be = ctx.be
        fwd, _ = self._sizes(be, self._rec_masked(ctx))
        ws = ctx.rows_buffer("ws", (fwd,))
        out_shape = (self._steps, self.units) if self.return_sequences else (self.units,)
        y = ctx.rows_buffer("y", out_shape)
        states = [np.ascontiguousarray(s).reshape(-1) for s in xs[1:]]
        h0 = states[0] if states else None
        c0 = states[1] if len(states) > 1 else None
        last = ([ctx.rows_buffer(f"state{i}", (self.units,)) for i in range(self.n_states)]
                if self.return_state or self.stateful else [])
        be.rnn_forward(*self._dims(n), seq.reshape(-1), self.kernel.reshape(-1),
                       self.recurrent_kernel.reshape(-1), self.bias, h0, c0, self.act,
                       self.rec_act, self.go_backwards, ws.reshape(-1), y.reshape(-1),
                       self.return_sequences,
                       last[0].reshape(-1) if last else None,
                       last[1].reshape(-1) if len(last) > 1 else None,
                       ctx.saved["mask"], self.zero_output_for_mask,
                       **self._drop_args(ctx))
        return [y, *last] if self.return_state else y

    # ------------------------------------------------------------------ stateful
    @property
    def state_shape(self) -> tuple[int, ...]:
        """The shape of each state per sample: (units,)."""
        return (self.units,)

    def _state_dtype(self) -> Any:
        return self.kernel.dtype

    def _drop_args(self, ctx: Slot) -> dict[str, Any]:
        """The kernels' dropout arguments (none without masks: the calls stay as they were)."""
        in_mask, rec_mask = ctx.saved.get("drop") or (None, None)
        args = {}
        if in_mask is not None:
            args["in_mask"] = in_mask
        if rec_mask is not None:
            args["rec_mask"] = rec_mask
        return args

    def backward(self, ctx: Slot, dy: Any) -> Any:
        dys = dy if isinstance(dy, list) else [dy]
        n = ctx.rows
        be = ctx.be
        if not ctx.saved.pop("fresh", False):
            self._run(ctx, ctx.saved["inputs"])
        _, bwd = self._sizes(be, self._rec_masked(ctx))
        bws = ctx.rows_buffer("bws", (bwd,))
        ut = ctx.buffer("ut", (self.gates * self.units * self.units,))
        dx = ctx.dx_target(0)
        wanted = [ctx.dx_target(i + 1) for i in range(self.n_states)] if self._initial_state \
            else []
        flat = [None if t is None else t.reshape(-1) for t in wanted]
        dstates = [np.ascontiguousarray(d).reshape(-1) for d in dys[1:]]
        be.rnn_backward(*self._dims(n), self.kernel.reshape(-1),
                        self.recurrent_kernel.reshape(-1), self.act, self.rec_act,
                        self.go_backwards, self._ws(ctx), np.ascontiguousarray(dys[0]).reshape(-1),
                        self.return_sequences, dstates[0] if dstates else None,
                        dstates[1] if len(dstates) > 1 else None, bws.reshape(-1),
                        ut, self.dkernel.reshape(-1), self.drecurrent_kernel.reshape(-1),
                        self.dbias, None if dx is None else dx.reshape(-1),
                        flat[0] if flat else None, flat[1] if len(flat) > 1 else None,
                        ctx.saved["mask"], self.zero_output_for_mask,
                        **self._drop_args(ctx))
        if not self._initial_state:
            return dx
        return [dx, *wanted]

    def _rec_masked(self, ctx: Slot) -> bool:
        """Whether this pass runs with a recurrent dropout mask (as drawn, whatever the rate
        now: the workspace's size follows the pass)."""
        drop = ctx.saved.get("drop")
        return drop is not None and drop[1] is not None

    def _ws(self, ctx: Slot) -> FloatArray:
        fwd, _ = self._sizes(ctx.be, self._rec_masked(ctx))
        return ctx.rows_buffer("ws", (fwd,)).reshape(-1)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"units": self.units, "activation": _ALLOWED[self.act]})
        if self.gates > 1:
            config["recurrent_activation"] = _ALLOWED[self.rec_act]
        for key in ("use_bias", "return_sequences", "return_state", "go_backwards"):
            config[key] = getattr(self, key)
        if self.zero_output_for_mask:
            config["zero_output_for_mask"] = True
        if self.stateful:
            config["stateful"] = True
        self._dropout_config(config)
        for key in ("kernel_initializer", "recurrent_initializer", "bias_initializer",
                    "kernel_regularizer", "recurrent_regularizer", "bias_regularizer"):
            value = getattr(self, key)
            if value is not None:
                config[key] = _serialize(value)
        return config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.units}, return_sequences={self.return_sequences})"


class SimpleRNN(RNNBase):
    """A fully connected recurrent layer: ``h_t = act(x_t W + h_{t-1} U + b)``.

    Parameters
    ----------
    units : int
        Neurons (the state's size), > 0.
    activation : {"tanh", "sigmoid", "relu", "linear"} or None, default "tanh"
    use_bias : bool, default True
    kernel_initializer, recurrent_initializer, bias_initializer
        Keras' defaults: ``"glorot_uniform"``, ``"orthogonal"``, ``"zeros"``.
    kernel_regularizer, recurrent_regularizer, bias_regularizer : optional
    return_sequences : bool, default False
        Return the state after every step (n, steps, units) rather than the last (n, units).
    return_state : bool, default False
        Return ``[output, h_last]`` (functional API).
    go_backwards : bool, default False
        Read the sequence last step first (outputs in that order, as in Keras).
    name, trainable
        See ``Layer``.
    zero_output_for_mask : bool, default False
        With a step mask (``Embedding(mask_zero=True)``, ``Masking``), a padded step is
        skipped: the states carry over it, and a sequence output there is the carried h, or 0
        with this set (Keras' argument; ``Bidirectional`` sets it to ``return_sequences``).
        The input gradient at a padded step is 0.
    dropout, recurrent_dropout : float in [0, 1), default 0
        In training, the fraction of the input features (of h_{t-1} where it meets the
        recurrent kernel) zeroed, the rest scaled by 1 / (1 - rate): one mask per sample for
        all steps and gates, drawn each training pass (fastnn/layers/recurrent_dropout.py).
        Inference ignores them.
    seed : int, optional
        Seed of those masks (>= 0); by default drawn from the model's seed at build.
    stateful : bool, default False
        Keras' stateful layer: each batch starts from the last batch's final states (sample i
        from sample i), in ``fit``, ``evaluate``, ``predict`` and the low-level loop alike, so
        a long series can be fed in consecutive chunks. Gradients stop at the carried states
        (truncated backpropagation through time). Every batch must have the same size until
        ``reset_states()`` zeroes the states (``layer.reset_states()``, or
        ``model.reset_states()`` for every layer); ``layer.states`` reads them and
        ``layer.reset_states([h])`` sets them. Model files (and pickles) keep them, as
        Keras' do: a loaded model goes on from where the saved one stood. The compiled
        inference plan and ONNX export do not take stateful layers, and one model's
        ``predict`` should not run in several threads at once (they would share the states).

    Shapes: x (n, steps, features), kernel (features, units), recurrent_kernel (units, units),
    bias (units,).

    Raises
    ------
    ValueError
        For a non-positive ``units``, an activation other than the four above, or (at build)
        an input that is not (steps, features) per sample.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.SimpleRNN(4)], input_shape=(5, 3), backend="numpy")
    >>> model.predict(np.zeros((2, 5, 3))).shape
    (2, 4)
    >>> [w.shape for w in model.get_weights()]
    [(3, 4), (4, 4), (4,)]
    """

    cell, gates, n_states = SIMPLE, 1, 1

    def __init__(self, units: int, activation: Any = "tanh", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False,
                 name: Optional[str] = None, trainable: bool = True,
                 zero_output_for_mask: bool = False,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: Optional[int] = None, stateful: bool = False) -> None:
        super().__init__(units, activation, "sigmoid", use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, kernel_regularizer,
                         recurrent_regularizer, bias_regularizer, return_sequences,
                         return_state, go_backwards, name, trainable, zero_output_for_mask,
                         dropout, recurrent_dropout, seed, stateful)


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber, 1997), Keras' equations: gates
    ``i, f, o = rec(...)``, candidate ``g = act(...)`` from ``x_t W + h_{t-1} U + b``;
    ``c_t = f c_{t-1} + i g``, ``h_t = o act(c_t)``.

    Parameters
    ----------
    units : int
    activation : default "tanh"
    recurrent_activation : default "sigmoid"
        Each one of ``tanh, sigmoid, relu, linear``.
    unit_forget_bias : bool, default True
        Start the forget gate's bias at 1 (Jozefowicz et al., 2015), as Keras does.
    use_bias, initializers, regularizers, return_sequences, return_state, go_backwards,
    name, trainable, zero_output_for_mask, dropout, recurrent_dropout, seed, stateful
        As for ``SimpleRNN``; ``return_state`` returns ``[output, h, c]``; a stateful LSTM
        carries ``[h, c]``.

    Shapes: kernel (features, 4 units), recurrent_kernel (units, 4 units), bias (4 units,),
    each in the gate order i, f, c, o (Keras' layout; PyTorch's ``weight_ih_l0`` is
    ``kernel.T`` with the same order).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.LSTM(8, return_sequences=True), fnn.Dense(1)],
    ...                        input_shape=(10, 2), backend="numpy")
    >>> model.predict(np.zeros((3, 10, 2))).shape
    (3, 10, 1)
    >>> [w.shape for w in model.layers[0].get_weights()]
    [(2, 32), (8, 32), (32,)]
    """

    cell, gates, n_states = LSTM_CELL, 4, 2

    def __init__(self, units: int, activation: Any = "tanh",
                 recurrent_activation: Any = "sigmoid", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 unit_forget_bias: bool = True, kernel_regularizer: Any = None,
                 recurrent_regularizer: Any = None, bias_regularizer: Any = None,
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, name: Optional[str] = None,
                 trainable: bool = True, zero_output_for_mask: bool = False,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: Optional[int] = None, stateful: bool = False) -> None:
        super().__init__(units, activation, recurrent_activation, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, kernel_regularizer,
                         recurrent_regularizer, bias_regularizer, return_sequences,
                         return_state, go_backwards, name, trainable, zero_output_for_mask,
                         dropout, recurrent_dropout, seed, stateful)
        self.unit_forget_bias = V.check_bool("unit_forget_bias", unit_forget_bias)

    def _bias_init(self) -> Any:
        if self.unit_forget_bias:
            return _ForgetBias(self.bias_initializer, self.units)
        return self.bias_initializer

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["unit_forget_bias"] = self.unit_forget_bias
        return config


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al., 2014) as Keras computes it. With ``reset_after=True``
    (its default, and cuDNN's and PyTorch's): ``z = rec(x W_z + h U_z + b_z)``, ``r`` the
    same, ``hh = act(x W_h + b_h + r (h U_h + b'_h))``, ``h_t = z h_{t-1} + (1 - z) hh``.
    With ``reset_after=False`` (the original GRU, Keras 2-era models): one bias, ``z = rec(x
    W_z + h U_z + b_z)``, ``r`` the same, ``hh = act(x W_h + (r h) U_h + b_h)``, the same h_t.

    Parameters
    ----------
    units : int
    activation : default "tanh"
    recurrent_activation : default "sigmoid"
    reset_after : bool, default True
        Whether the reset gate multiplies the recurrent product (True) or the state before
        it (False; then each step takes two recurrent products, z and r's, then the
        candidate's).
    use_bias, initializers, regularizers, return_sequences, return_state, go_backwards,
    name, trainable, zero_output_for_mask, dropout, recurrent_dropout, seed, stateful
        As for ``SimpleRNN``.

    Shapes: kernel (features, 3 units), recurrent_kernel (units, 3 units), bias (2, 3 units)
    (input bias, recurrent bias; ``reset_after=False``: (3 units,)), gates in Keras' order
    z, r, h (PyTorch's is r, z, n).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.GRU(4)], input_shape=(6, 3), backend="numpy")
    >>> [w.shape for w in model.get_weights()]
    [(3, 12), (4, 12), (2, 12)]
    >>> [w.shape for w in fnn.Sequential([fnn.GRU(4, reset_after=False)], input_shape=(6, 3),
    ...                                  backend="numpy").get_weights()]
    [(3, 12), (4, 12), (12,)]
    """

    cell, gates, n_states = GRU_CELL, 3, 1

    def __init__(self, units: int, activation: Any = "tanh",
                 recurrent_activation: Any = "sigmoid", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False,
                 reset_after: bool = True, name: Optional[str] = None,
                 trainable: bool = True, zero_output_for_mask: bool = False,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: Optional[int] = None, stateful: bool = False) -> None:
        super().__init__(units, activation, recurrent_activation, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, kernel_regularizer,
                         recurrent_regularizer, bias_regularizer, return_sequences,
                         return_state, go_backwards, name, trainable, zero_output_for_mask,
                         dropout, recurrent_dropout, seed, stateful)
        self.reset_after = V.check_bool("reset_after", reset_after)
        if not self.reset_after:        # the kernels' other GRU cell (src_c/fnn_rnn.h)
            self.cell = GRU_RESET_BEFORE

    def _bias_shape(self) -> tuple[int, ...]:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["reset_after"] = self.reset_after
        return config


RECURRENT_LAYERS = (SimpleRNN, LSTM, GRU)
__all__ = ["SimpleRNN", "LSTM", "GRU", "RNNBase", "TakesInitialState"]
