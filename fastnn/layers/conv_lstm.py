"""``ConvLSTM2D``: an LSTM whose products are convolutions (Shi et al., 2015), with Keras 3's
arguments, equations and weight layout (keras/src/layers/rnn/conv_lstm.py).

The input is a sequence of images (n, steps, rows, cols, channels); the states h and c are
images (oh, ow, filters). At each step, in Keras' gate order i, f, c, o (``*`` a convolution):
``[i, f, g, o] = [rec, rec, act, rec](x_t * W + b + h_{t-1} * U)``, ``c_t = f c_{t-1} + i g``,
``h_t = o act(c_t)``. ``x_t * W`` uses the layer's strides, padding and dilation; the recurrent
``h * U`` always stride 1 and padding "same" (so h keeps its size), as in Keras.

How it runs (both backends, the same calls): the input convolution of every step is one
convolution of the batch's n * steps images; each step then runs the recurrent convolution of
h_{t-1} and the gate kernel (``conv_lstm_gates_forward``: compiled in fastnn/_ext/_conv_lstm.pyx,
its NumPy twin in fastnn/backends/numpy_conv_lstm.py). Backpropagation through time runs the
gate kernel's backward and the recurrent convolution's input gradient per step; the weight
gradients of both convolutions are then one call each over all steps. Buffers are time-major
(steps, n, ...), in the order the steps are taken, so each step's slice is contiguous: the
input in step order xt, the pre-activations zx (reused for their gradients backward), the gates
G, the states H and C (H[0], C[0] the initial states, else 0) and A = act(c_t). Dropout's
masks scale the input once (xt holds it masked) and h_{t-1} into a buffer Hr per step.

``stateful=True`` works as the recurrent layers' (fastnn/layers/recurrent.py): each batch starts
from the last batch's final h and c (copies, never written in place), which are then initial
states whose gradients are not computed (truncated backpropagation through time); model files
keep them (fastnn/models/saving.py ``stateful_layers``).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from fastnn import activations as A
from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Slot, WeightSpec
from fastnn.layers.convolutional import (check_channels_last, check_window_span, conv_padding,
                                         conv_tuple, window_geometry)
from fastnn.layers.core import _serialize
from fastnn.layers.recurrent import (_ALLOWED, CarriedStates, _ForgetBias,
                                     RecurrentArguments, TakesInitialState)
from fastnn.layers.recurrent_dropout import RecurrentDropout


class ConvLSTM2D(CarriedStates, RecurrentArguments, RecurrentDropout,
                 TakesInitialState):
    """2-D convolutional LSTM over sequences of images (channels-last), as Keras'.

    Parameters
    ----------
    filters : int
        Channels of the states h and c (the output), > 0.
    kernel_size : int or (int, int)
        Height and width of both kernels (input and recurrent).
    strides, dilation_rate : int or (int, int), default 1
        Of the input convolution (not both above 1, as in Keras).
    padding : {"valid", "same"}, default "valid"
        Of the input convolution (the recurrent one is always "same").
    data_format : None or "channels_last"
    activation : default "tanh"; recurrent_activation : default "sigmoid"
        Each one of ``tanh, sigmoid, relu, linear``.
    use_bias : bool, default True
    kernel_initializer, recurrent_initializer, bias_initializer
        Keras' defaults: ``"glorot_uniform"``, ``"orthogonal"``, ``"zeros"``.
    unit_forget_bias : bool, default True
        Start the forget gate's bias at 1, as Keras does.
    kernel_regularizer, recurrent_regularizer, bias_regularizer : optional
    return_sequences : bool, default False
        Return h after every step (n, steps, oh, ow, filters), not only the last.
    return_state : bool, default False
        Return ``[output, h, c]`` (functional API).
    go_backwards : bool, default False
        Read the sequence last step first (outputs in that order, as in Keras).
    stateful : bool, default False
        Keras' stateful layer, as ``LSTM``'s: each batch starts from the last batch's final
        h and c (sample i from sample i) in ``fit``, ``evaluate``, ``predict`` and the
        low-level loop; gradients stop at the carried states (truncated backpropagation
        through time). Every batch must have the same size until ``reset_states()`` (or
        ``model.reset_states()``) zeroes them; ``layer.states`` reads them and
        ``layer.reset_states([h, c])`` sets them, each (batch, oh, ow, filters). Model files
        and pickles keep them.
    dropout, recurrent_dropout : float in [0, 1), default 0
        In training, the fraction of the input values (per sample, the same at every step)
        zeroed before the input convolution, and of the state values before the recurrent
        one; the rest scaled by 1 / (1 - rate). One mask serves the four gates (Keras draws
        one per gate); the draws are the recurrent layers' (fastnn/layers/recurrent_dropout.py).
    seed : int, optional
        Seed of the dropout masks (default: from the model's seed when it is built).
    name, trainable
        See ``Layer``.

    Shapes: x (n, steps, rows, cols, c); kernel (kh, kw, c, 4 filters), recurrent_kernel
    (kh, kw, filters, 4 filters), bias (4 filters,), gates in the order i, f, c, o (Keras').
    ``layer(x, initial_state=[h0, c0])`` starts from the states h0, c0 (n, oh, ow, filters)
    (gradients flow into them). A step mask (``Masking``) is not taken (ValueError).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.ConvLSTM2D(4, 3, padding="same")],
    ...                        input_shape=(5, 8, 8, 2), backend="numpy")
    >>> model.predict(np.zeros((2, 5, 8, 8, 2))).shape
    (2, 8, 8, 4)
    >>> [w.shape for w in model.get_weights()]
    [(3, 3, 2, 16), (3, 3, 4, 16), (16,)]
    """

    n_states = 2

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1,
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = 1, activation: Any = "tanh",
                 recurrent_activation: Any = "sigmoid", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 unit_forget_bias: bool = True, kernel_regularizer: Any = None,
                 recurrent_regularizer: Any = None, bias_regularizer: Any = None,
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, seed: Optional[int] = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.filters = V.check_positive_int("filters", filters)
        if self.filters >= 2**29:      # 4 * filters channels must stay below 2**31
            raise ValueError(f"filters must be below 2**29. Received: filters={filters}")
        self.kernel_size = conv_tuple("kernel_size", kernel_size, 2)
        self.strides = conv_tuple("strides", strides, 2)
        self.dilation_rate = conv_tuple("dilation_rate", dilation_rate, 2)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"strides > 1 is not compatible with dilation_rate > 1 (as in "
                             f"Keras). Received: strides={V._describe(strides)} and "
                             f"dilation_rate={V._describe(dilation_rate)}")
        self.padding = conv_padding(padding)
        check_channels_last(data_format)
        self.set_recurrent_arguments(activation, recurrent_activation, use_bias,
                                     kernel_initializer, recurrent_initializer,
                                     bias_initializer, kernel_regularizer,
                                     recurrent_regularizer, bias_regularizer,
                                     return_sequences, return_state, go_backwards)
        self.unit_forget_bias = V.check_bool("unit_forget_bias", unit_forget_bias)
        self.stateful = V.check_bool("stateful", stateful)
        self._init_dropout(dropout, recurrent_dropout, seed)

    # ------------------------------------------------------------------ calls and shapes

    def output_masked(self, masked: Any) -> bool:
        if (any(masked) if isinstance(masked, list) else masked):
            raise ValueError(f"{self.name} does not take a step mask (Masking, "
                             f"Embedding(mask_zero=True)). Received: a masked input")
        return False

    def compute_mask(self, ctx: Slot, x: Any, mask: Any) -> Any:
        return [None] * (1 + self.n_states) if self.return_state else None

    def _geometry(self, spatial: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return window_geometry(spatial, self.kernel_size, self.strides, self.dilation_rate,
                               self.padding)

    def compute_output_shape(self, input_shape: Any) -> Any:
        states = None
        if isinstance(input_shape, list):
            input_shape, states = input_shape[0], input_shape[1:]
        if not isinstance(input_shape, tuple) or len(input_shape) != 4:
            raise ValueError(f"{self.name} takes sequences of images: input (batch, steps, rows, "
                             f"cols, channels). Received: input shape {input_shape} per sample")
        check_window_span(self, input_shape[1:3], self.kernel_size, self.dilation_rate,
                          self.padding, f"kernel_size={list(self.kernel_size)} with "
                                        f"dilation_rate={list(self.dilation_rate)}")
        sizes, _ = self._geometry(input_shape[1:3])
        if min(sizes) < 1:
            raise ValueError(f"{self.name}: a {'x'.join(map(str, self.kernel_size))} kernel "
                             f"(dilation {self.dilation_rate}) does not fit images of shape "
                             f"{input_shape[1:]} with padding='{self.padding}'")
        state = (*sizes, self.filters)
        if states is not None and [tuple(s) if isinstance(s, (tuple, list)) else s
                                   for s in states] != [state, state]:
            raise ValueError(f"{self.name}: initial_state must be 2 tensors [h, c] of shape "
                             f"(batch, {', '.join(map(str, state))}). Received: initial_state "
                             f"of {len(states)} tensor(s), shapes "
                             f"{[(None, *s) for s in states]}")
        out = (input_shape[0], *state) if self.return_sequences else state
        return [out, state, state] if self.return_state else out

    def weight_specs(self) -> Sequence[WeightSpec]:
        K = 4 * self.filters
        specs = [WeightSpec("kernel", (*self.kernel_size, self._x_shape[-1], K),
                            self.kernel_initializer, self.kernel_regularizer),
                 WeightSpec("recurrent_kernel", (*self.kernel_size, self.filters, K),
                            self.recurrent_initializer, self.recurrent_regularizer)]
        if self.use_bias:
            init = (_ForgetBias(self.bias_initializer, self.filters) if self.unit_forget_bias
                    else self.bias_initializer)
            specs.append(WeightSpec("bias", (K,), init, self.bias_regularizer))
        return specs

    @property
    def _x_shape(self) -> tuple[int, ...]:
        """The sequence's shape per sample (the first input's, with initial states)."""
        shape = self.input_shape
        return shape[0] if isinstance(shape, list) else shape

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        K = 4 * self.filters
        self.kernel, self.dkernel = weights[0], grads[0]
        self.recurrent_kernel, self.drecurrent_kernel = weights[1], grads[1]
        dtype = weights[0].dtype
        if self.use_bias:
            self.bias, self.dbias = weights[2], grads[2]
        else:                       # the kernels take a bias: a constant zero one
            self.bias, self.dbias = np.zeros(K, dtype), np.zeros(K, dtype)
        self._zero_bias = np.zeros(K, dtype)      # the recurrent convolution has none
        self._scratch_dbias = np.zeros(K, dtype)  # its bias gradient, discarded
        T, rows, cols, _ = self._x_shape
        sizes, self._pads = self._geometry((rows, cols))
        self._steps, self._P = T, sizes[0] * sizes[1]
        self._x3, self._h3 = tuple(self._x_shape[1:]), (*sizes, self.filters)
        # the recurrent convolution: stride 1, "same" (pad (k - 1) // 2 before), no dilation
        _, self._rpads = window_geometry(sizes, self.kernel_size, (1, 1), (1, 1), "same")

    # ------------------------------------------------------------------ compute
    def _buffers(self, ctx: Slot, n: int) -> dict[str, FloatArray]:
        """The time-major buffers of one pass (views made once per rows)."""
        T, F, P = self._steps, self.filters, self._P

        def build() -> dict[str, FloatArray]:
            def tm(key: str, shape: Sequence[int], steps: int = T) -> FloatArray:
                flat = ctx.rows_buffer(key, (steps * int(np.prod(shape)),)).reshape(-1)
                return flat.reshape(steps, n, *shape)
            return {"xt": tm("xt", self._x3), "zx": tm("zx", (*self._h3[:2], 4 * F)),
                    "G": tm("G", (P, 4 * F)), "H": tm("H", self._h3, T + 1),
                    "C": tm("C", (P, F), T + 1), "A": tm("A", (P, F)), "zh": ctx.rows_buffer("zh", (*self._h3[:2],
                                                                             4 * F))}
        return ctx.views("conv_lstm", build)

    def forward(self, ctx: Slot, x: Any, training: bool) -> Any:
        be, T, F = ctx.be, self._steps, self.filters
        xs = x if isinstance(x, list) else [x]
        x = np.ascontiguousarray(xs[0])
        n = x.shape[0]
        if self.stateful and len(xs) == 1:
            xs = [x, *self._carried_for(n)]
        b = self._buffers(ctx, n)
        xt, zx, G, H, C, zh = b["xt"], b["zx"], b["G"], b["H"], b["C"], b["zh"]
        A_ = b["A"]
        # dropout's masks (per sample and input value, per sample and state value), drawn once
        # per training pass and kept over the steps and the gates
        in_mask, rec_mask = self.masks(ctx, int(np.prod(self._x3)), training,
                                       int(np.prod(self._h3)))
        ctx.saved["drop"] = (in_mask, rec_mask)
        # time-major, in the order the steps are taken (the input convolution sees x masked)
        np.copyto(xt, np.swapaxes(x[:, ::-1] if self.go_backwards else x, 0, 1))
        if in_mask is not None:
            xt *= in_mask.reshape(1, n, *self._x3)
        be.conv2d_forward(xt.reshape(T * n, *self._x3), self.kernel, self.bias, self.strides,
                          self.dilation_rate, self._pads, A.LINEAR, 0.0,
                          zx.reshape(T * n, *self._h3[:2], 4 * F))
        given = len(xs) > 1
        ctx.saved["given"] = given
        if given:
            np.copyto(H[0], xs[1])
            np.copyto(C[0], np.reshape(xs[2], C[0].shape))
        else:
            H[0] = 0
            C[0] = 0
        Hr = self._recurrent_inputs(ctx, b, n, rec_mask)
        rows = n * self._P
        for t in range(T):
            if t or given:
                if rec_mask is not None:
                    np.multiply(H[t], rec_mask.reshape(n, *self._h3), out=Hr[t])
                be.conv2d_forward(Hr[t], self.recurrent_kernel, self._zero_bias, (1, 1), (1, 1),
                                  self._rpads, A.LINEAR, 0.0, zh)
            else:
                zh[...] = 0         # h_0 = 0: no recurrent term at the first step
            be.conv_lstm_gates_forward(rows, F, zx[t].reshape(-1), zh.reshape(-1),
                                       C[t].reshape(-1), self.act, self.rec_act,
                                       G[t].reshape(-1), C[t + 1].reshape(-1),
                                       A_[t].reshape(-1), H[t + 1].reshape(-1))
        if self.stateful:     # the next batch starts where this one ended (copies: buffers)
            self._carried = [H[T].copy(), C[T].reshape(n, *self._h3).copy()]
        if self.return_sequences:
            y = ctx.rows_buffer("y", (T, *self._h3))
            np.copyto(y, np.swapaxes(H[1:], 0, 1))
        else:
            y = ctx.rows_buffer("y", self._h3)
            np.copyto(y, H[T])
        if not self.return_state:
            return y
        h_last, c_last = ctx.rows_buffer("h", self._h3), ctx.rows_buffer("c", self._h3)
        np.copyto(h_last, H[T])
        np.copyto(c_last, C[T].reshape(n, *self._h3))
        return [y, h_last, c_last]

    def _recurrent_inputs(self, ctx: Slot, b: dict[str, Any], n: int, rec_mask: Any) -> Any:
        """What the recurrent convolution reads at each step: H[t], or (recurrent dropout)
        H[t] times the mask in a buffer of its own (the weight gradient reads it back)."""
        if rec_mask is None:
            return b["H"]
        return ctx.rows_buffer("Hr", (self._steps * int(np.prod(self._h3)),)).reshape(
            -1).reshape(self._steps, n, *self._h3)

    def backward(self, ctx: Slot, dy: Any) -> Any:
        be, T, F = ctx.be, self._steps, self.filters
        dys = dy if isinstance(dy, list) else [dy]
        n = ctx.rows
        b = self._buffers(ctx, n)
        xt, G, C, A_ = b["xt"], b["G"], b["C"], b["A"]
        in_mask, rec_mask = ctx.saved["drop"]
        given = ctx.saved["given"]
        Hr = self._recurrent_inputs(ctx, b, n, rec_mask)
        dZ = b["zx"]                # the pre-activations' gradients overwrite zx (not needed)
        dh = ctx.rows_buffer("dh", self._h3)
        dc = ctx.rows_buffer("dc", self._h3)
        for target, grad in ((dh, dys[1] if len(dys) > 1 else None),
                             (dc, dys[2] if len(dys) > 2 else None)):
            if grad is None:
                target[...] = 0
            else:
                np.copyto(target, grad)
        d_out = np.asarray(dys[0]) if dys[0] is not None else None
        if d_out is not None and not self.return_sequences:
            dh += d_out
        rows = n * self._P
        first = 0 if given else 1   # the first step whose recurrent term is computed
        for t in range(T - 1, -1, -1):
            if d_out is not None and self.return_sequences:
                dh += d_out[:, t]
            be.conv_lstm_gates_backward(rows, F, G[t].reshape(-1), C[t].reshape(-1),
                                        A_[t].reshape(-1), dh.reshape(-1), dc.reshape(-1),
                                        self.act, self.rec_act, dZ[t].reshape(-1))
            # dL/dh_{t-1} through the recurrent convolution (not into carried states)
            if t >= first and (t or self._initial_state):
                be.conv2d_backward_input(self.recurrent_kernel, dZ[t], (1, 1), (1, 1),
                                         self._rpads, dh)
                if rec_mask is not None:
                    dh *= rec_mask.reshape(n, *self._h3)
        if T > first:               # the steps with a recurrent term pair Hr[t] with dZ[t]
            be.conv2d_backward(Hr[first:T].reshape((T - first) * n, *self._h3),
                               self.recurrent_kernel,
                               dZ[first:].reshape((T - first) * n, *self._h3[:2], 4 * F),
                               (1, 1), (1, 1), self._rpads, self.drecurrent_kernel,
                               self._scratch_dbias, None)
        else:
            self.drecurrent_kernel[...] = 0
        dx = ctx.dx_target(0)
        dxt = None if dx is None else ctx.rows_buffer("dxt", (T * int(np.prod(self._x3)),)
                                                      ).reshape(T * n, *self._x3)
        be.conv2d_backward(xt.reshape(T * n, *self._x3), self.kernel,
                           dZ.reshape(T * n, *self._h3[:2], 4 * F), self.strides,
                           self.dilation_rate, self._pads, self.dkernel,
                           self.dbias if self.use_bias else self._scratch_dbias, dxt)
        if dx is not None and dxt is not None:
            back = np.swapaxes(dxt.reshape(T, n, *self._x3), 0, 1)
            np.copyto(dx, back[:, ::-1] if self.go_backwards else back)
            if in_mask is not None:
                dx *= in_mask.reshape(n, 1, *self._x3)
        if not self._initial_state:
            return dx
        states = []
        for i, grad in ((1, dh), (2, dc)):
            given_target = ctx.dx_target(i)
            target = (ctx.rows_buffer(f"dstate{i}", self._h3) if given_target is None
                      else given_target)
            np.copyto(target, grad)
            states.append(target)
        return [dx, *states]

    # ------------------------------------------------------------------ stateful
    @property
    def state_shape(self) -> tuple[int, ...]:
        """The shape of h and of c per sample: (oh, ow, filters) (once built)."""
        return self._h3

    def _state_dtype(self) -> Any:
        return self.kernel.dtype

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": list(self.kernel_size),
                       "strides": list(self.strides), "padding": self.padding,
                       "dilation_rate": list(self.dilation_rate),
                       "activation": _ALLOWED[self.act],
                       "recurrent_activation": _ALLOWED[self.rec_act]})
        for key in ("use_bias", "unit_forget_bias", "return_sequences", "return_state",
                    "go_backwards"):
            config[key] = getattr(self, key)
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
        return (f"ConvLSTM2D({self.filters}, {self.kernel_size}, "
                f"return_sequences={self.return_sequences})")


__all__ = ["ConvLSTM2D"]
