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
G, the states H and C (H[0] = C[0] = 0) and A = act(c_t).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from fastnn import activations as A
from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec
from fastnn.layers.convolutional import (check_channels_last, check_window_span, conv_padding,
                                         conv_tuple, window_geometry)
from fastnn.layers.core import _initializer, _regularizer, _serialize
from fastnn.layers.recurrent import _ALLOWED, _ForgetBias, _gate_activation
from fastnn.layers.regularization import check_seed


class ConvLSTM2D(Layer):
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
        Only False (True raises ValueError, as for fastnn's LSTM).
    dropout, recurrent_dropout : float, default 0
        Only 0 (other values raise ValueError: not implemented for this layer).
    seed : int, optional
        Kept in the config (Keras' argument; no draws without dropout).
    name, trainable
        See ``Layer``.

    Shapes: x (n, steps, rows, cols, c); kernel (kh, kw, c, 4 filters), recurrent_kernel
    (kh, kw, filters, 4 filters), bias (4 filters,), gates in the order i, f, c, o (Keras').
    A step mask (``Masking``) and initial states are not taken (ValueError).

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
        self.act = _gate_activation("activation", activation)
        self.rec_act = _gate_activation("recurrent_activation", recurrent_activation)
        self.use_bias = V.check_bool("use_bias", use_bias)
        self.kernel_initializer = _initializer("kernel_initializer", kernel_initializer)
        self.recurrent_initializer = _initializer("recurrent_initializer",
                                                  recurrent_initializer)
        self.bias_initializer = _initializer("bias_initializer", bias_initializer)
        self.unit_forget_bias = V.check_bool("unit_forget_bias", unit_forget_bias)
        self.kernel_regularizer = _regularizer("kernel_regularizer", kernel_regularizer)
        self.recurrent_regularizer = _regularizer("recurrent_regularizer",
                                                  recurrent_regularizer)
        self.bias_regularizer = _regularizer("bias_regularizer", bias_regularizer)
        self.return_sequences = V.check_bool("return_sequences", return_sequences)
        self.return_state = V.check_bool("return_state", return_state)
        self.go_backwards = V.check_bool("go_backwards", go_backwards)
        if V.check_bool("stateful", stateful):
            raise ValueError("ConvLSTM2D does not implement stateful=True (nor does fastnn's "
                             "LSTM). Received: stateful=True")
        for key, value in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if V.check_float(key, value, 0.0, 1.0, False, True) != 0.0:
                raise ValueError(f"ConvLSTM2D implements {key}=0 only. Received: "
                                 f"{key}={V._describe(value)}")
        self.dropout = self.recurrent_dropout = 0.0
        self.seed = check_seed(seed)

    # ------------------------------------------------------------------ calls and shapes
    def __call__(self, inputs: Any, initial_state: Any = None, **kwargs: Any) -> Any:
        if initial_state is not None or isinstance(inputs, (list, tuple)):
            raise ValueError(f"{self.name} takes one input, the sequence (initial states are "
                             f"not implemented). Received: initial_state="
                             f"{V._describe(initial_state)}, inputs of type "
                             f"{type(inputs).__name__}")
        return super().__call__(inputs, **kwargs)

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
        out = (input_shape[0], *state) if self.return_sequences else state
        return [out, state, state] if self.return_state else out

    def weight_specs(self) -> Sequence[WeightSpec]:
        K = 4 * self.filters
        specs = [WeightSpec("kernel", (*self.kernel_size, self.input_shape[-1], K),
                            self.kernel_initializer, self.kernel_regularizer),
                 WeightSpec("recurrent_kernel", (*self.kernel_size, self.filters, K),
                            self.recurrent_initializer, self.recurrent_regularizer)]
        if self.use_bias:
            init = (_ForgetBias(self.bias_initializer, self.filters) if self.unit_forget_bias
                    else self.bias_initializer)
            specs.append(WeightSpec("bias", (K,), init, self.bias_regularizer))
        return specs

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
        T, rows, cols, _ = self.input_shape
        sizes, self._pads = self._geometry((rows, cols))
        self._steps, self._P = T, sizes[0] * sizes[1]
        self._x3, self._h3 = tuple(self.input_shape[1:]), (*sizes, self.filters)
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

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> Any:
        be, T, F = ctx.be, self._steps, self.filters
        x = np.ascontiguousarray(x)
        n = x.shape[0]
        b = self._buffers(ctx, n)
        xt, zx, G, H, C, zh = b["xt"], b["zx"], b["G"], b["H"], b["C"], b["zh"]
        A_ = b["A"]
        # time-major, in the order the steps are taken
        np.copyto(xt, np.swapaxes(x[:, ::-1] if self.go_backwards else x, 0, 1))
        be.conv2d_forward(xt.reshape(T * n, *self._x3), self.kernel, self.bias, self.strides,
                          self.dilation_rate, self._pads, A.LINEAR, 0.0,
                          zx.reshape(T * n, *self._h3[:2], 4 * F))
        H[0] = 0
        C[0] = 0
        zh[...] = 0                 # h_0 = 0: no recurrent term at the first step
        rows = n * self._P
        for t in range(T):
            if t:
                be.conv2d_forward(H[t], self.recurrent_kernel, self._zero_bias, (1, 1), (1, 1),
                                  self._rpads, A.LINEAR, 0.0, zh)
            be.conv_lstm_gates_forward(rows, F, zx[t].reshape(-1), zh.reshape(-1),
                                       C[t].reshape(-1), self.act, self.rec_act,
                                       G[t].reshape(-1), C[t + 1].reshape(-1),
                                       A_[t].reshape(-1), H[t + 1].reshape(-1))
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

    def backward(self, ctx: Slot, dy: Any) -> Optional[FloatArray]:
        be, T, F = ctx.be, self._steps, self.filters
        dys = dy if isinstance(dy, list) else [dy]
        n = ctx.rows
        b = self._buffers(ctx, n)
        xt, G, H, C, A_ = b["xt"], b["G"], b["H"], b["C"], b["A"]
        dZ = b["zx"]                # the pre-activations' gradients overwrite zx (not needed)
        dh = ctx.rows_buffer("dh", self._h3)
        dc = ctx.rows_buffer("dc", self._h3)
        for target, given in ((dh, dys[1] if len(dys) > 1 else None),
                              (dc, dys[2] if len(dys) > 2 else None)):
            if given is None:
                target[...] = 0
            else:
                np.copyto(target, given)
        d_out = np.asarray(dys[0]) if dys[0] is not None else None
        if d_out is not None and not self.return_sequences:
            dh += d_out
        rows = n * self._P
        for t in range(T - 1, -1, -1):
            if d_out is not None and self.return_sequences:
                dh += d_out[:, t]
            be.conv_lstm_gates_backward(rows, F, G[t].reshape(-1), C[t].reshape(-1),
                                        A_[t].reshape(-1), dh.reshape(-1), dc.reshape(-1),
                                        self.act, self.rec_act, dZ[t].reshape(-1))
            if t:                   # dL/dh_{t-1} through the recurrent convolution
                be.conv2d_backward_input(self.recurrent_kernel, dZ[t], (1, 1), (1, 1),
                                         self._rpads, dh)
        if T > 1:                   # h_0 = 0 adds nothing: steps 1.. pair h_t with dZ[t]
            be.conv2d_backward(H[1:T].reshape((T - 1) * n, *self._h3), self.recurrent_kernel,
                               dZ[1:].reshape((T - 1) * n, *self._h3[:2], 4 * F), (1, 1),
                               (1, 1), self._rpads, self.drecurrent_kernel,
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
        if dx is None or dxt is None:
            return None
        back = np.swapaxes(dxt.reshape(T, n, *self._x3), 0, 1)
        np.copyto(dx, back[:, ::-1] if self.go_backwards else back)
        return dx

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
        if self.seed is not None:
            config["seed"] = self.seed
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
