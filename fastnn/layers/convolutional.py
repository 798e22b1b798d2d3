"""Convolution layers: ``Conv2D`` (images, (h, w, channels)) and ``Conv1D`` (sequences,
(steps, channels)), their transposes ``Conv2DTranspose`` and ``Conv1DTranspose``, with Keras'
arguments, output sizes and weight layouts.

A convolution slides a small kernel of weights over the input: each output position is a
neuron that sees only a window of the input (its receptive field), and all positions share the
same weights. ``y[i, j, :] = act(bias + sum over taps (ky, kx) of x[i*sh + ky*dh - top,
j*sw + kx*dw - left, :] @ kernel[ky, kx])``, with zeros outside the input (the padding).

Kernels: the compiled backend runs it as an implicit GEMM on the packed product (patches gathered
a bounded chunk at a time; see src_c/fnn_conv.h), the NumPy backend as one product of the whole
patch matrix (fastnn/backends/numpy_conv.py). ``Conv1D`` runs as a one-row ``Conv2D``.
With ``groups`` (Keras'), each group of input channels has its own convolution: the backends'
``conv2d_grouped_forward/backward`` (one implicit GEMM a group; see fastnn/_ext/_conv.pyx), or
the depthwise kernels when each group is one channel.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from fastnn import activations as A
from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec, rows_of
from fastnn.layers.core import (_AutoKernel, _initializer, _regularizer, _zeros, activation_of,
                                forward_keeping_z, kernel_layer_config, saved_for_derivative)

_PADDINGS = ("valid", "same")


def conv_tuple(name: str, value: Any, rank: int) -> tuple[int, ...]:
    """An int or a tuple/list of ``rank`` ints, each >= 1, as a tuple (Keras' kernel_size,
    strides, dilation_rate, pool_size)."""
    items = value if isinstance(value, (tuple, list)) else (value,) * rank
    if len(items) != rank:
        many = f"a tuple of {rank} integers" if rank > 1 else "a tuple of one integer"
        raise ValueError(f"{name} must be an integer or {many}. Received: "
                         f"{name}={V._describe(value)}")
    out = tuple(V.check_int(name, v, low=1) for v in items)
    if any(v >= 2**31 for v in out):
        raise ValueError(f"{name} must be below 2**31. Received: {name}={V._describe(value)}")
    return out


def conv_padding(value: Any, allowed: Sequence[str] = _PADDINGS) -> str:
    """'valid' or 'same' (any case), as Keras takes them."""
    if not isinstance(value, str) or value.lower() not in allowed:
        raise ValueError(f"padding must be one of {list(allowed)}. Received: "
                         f"padding={V._describe(value)}")
    return value.lower()


def output_length(size: int, kernel: int, stride: int, dilation: int,
                  padding: str) -> tuple[int, int]:
    """Keras' output length along one axis and the padding before the first element:
    ``valid``: ceil((size - span + 1) / stride), none; ``same``: ceil(size / stride), half of
    what the windows need (the extra one after), where span = (kernel - 1) * dilation + 1."""
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        return (size - span) // stride + 1 if size >= span else 0, 0
    if padding == "causal":
        return (size - 1) // stride + 1, span - 1
    out = -(-size // stride)
    return out, max((out - 1) * stride + span - size, 0) // 2


def window_geometry(spatial: Sequence[int], windows: Sequence[int], strides: Sequence[int],
                    dilations: Sequence[int], padding: str
                    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(output sizes, paddings before) per spatial axis (``output_length`` on each)."""
    pairs = [output_length(size, k, s, d, padding)
             for size, k, s, d in zip(spatial, windows, strides, dilations)]
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


#: the widest window (its span, (size - 1) * dilation + 1) a padded layer takes beyond twice its
#: input: wider ones would see the whole input from every position through the padding
MAX_PADDED_SPAN = 4096


def check_window_span(layer: Any, spatial: Sequence[int], windows: Sequence[int],
                      dilations: Sequence[int], padding: str, argument: str) -> None:
    """ValueError when a padded window is wider than twice the input and than
    ``MAX_PADDED_SPAN``: every output would then see the whole input, and padding it out to the
    window costs memory and time in proportion to the window, not the data."""
    if padding == "valid":
        return                  # a window wider than the input does not fit: caught by sizes
    for size, k, d in zip(spatial, windows, dilations):
        span = (k - 1) * d + 1
        if span > max(2 * size, MAX_PADDED_SPAN):
            raise ValueError(f"{layer.name}: {argument} gives a window spanning {span} positions "
                             f"over an input of {size}: more than twice the input and than "
                             f"{MAX_PADDED_SPAN}, so every output would see the whole input "
                             f"through padding='{padding}'. Use a smaller window (or a global "
                             f"pooling layer)")


def check_spatial_input(layer: Any, input_shape: Any) -> None:
    """ValueError unless ``input_shape`` is (steps, channels) for a layer of rank 1,
    (height, width, channels) for rank 2 or (depth, height, width, channels) for rank 3."""
    if not isinstance(input_shape, tuple) or len(input_shape) != layer.rank + 1:
        dims = {1: "(steps, channels)", 2: "(height, width, channels)"}.get(
            layer.rank, "(depth, height, width, channels)")
        raise ValueError(f"{layer.name} takes one input of shape {dims}. Received: "
                         f"input shape {input_shape}")


def output_gradient(ctx: Slot, layer: Any, dy: FloatArray, act: int) -> FloatArray:
    """dL/dz of a convolution whose output is act(z): dy itself (contiguous) when ``act`` is
    linear (or the loss or layer after took the derivative), else the activation's derivative
    applied, on one row per sample (the kernels' rows are the fastest when wide), softmax
    across each position's channels."""
    if act == A.LINEAR:
        return np.ascontiguousarray(dy)
    n = dy.shape[0]
    dz = ctx.rows_buffer("dz", layer.output_shape)
    view = rows_of if act == A.SOFTMAX else (lambda a: a.reshape(n, -1))
    saved, code = saved_for_derivative(ctx, layer, act)
    ctx.be.activation_backward(view(saved), view(np.ascontiguousarray(dy)), code, layer.param,
                               view(dz))
    return dz


def check_groups(groups: Any, filters: int) -> int:
    """Keras' groups: a positive integer dividing ``filters`` (the input channels are checked
    at build)."""
    value = V.check_positive_int("groups", groups)
    if value >= 2**31 or filters % value:
        raise ValueError(f"filters must be a multiple of groups (each group gives filters // "
                         f"groups of them). Received: groups={value}, filters={filters}")
    return value


def check_channels_last(data_format: Any) -> None:
    """Keras' data_format argument: None or 'channels_last' (fastnn is channels-last)."""
    if data_format not in (None, "channels_last"):
        raise ValueError(f"fastnn arrays are channels-last: data_format must be None or "
                         f"'channels_last'. Received: data_format={V._describe(data_format)}")


class _Conv(Layer):
    """What Conv1D and Conv2D share: arguments, weights, config and the kernels' calls."""

    rank = 2

    def __init__(self, filters: int, kernel_size: Any, strides: Any, padding: str,
                 data_format: Optional[str], dilation_rate: Any, activation: Any,
                 use_bias: bool, kernel_initializer: Any, bias_initializer: Any,
                 kernel_regularizer: Any, bias_regularizer: Any, name: Optional[str],
                 trainable: bool, paddings: Sequence[str] = _PADDINGS, groups: int = 1) -> None:
        super().__init__(name=name, trainable=trainable)
        self.filters = V.check_positive_int("filters", filters)
        if self.filters >= 2**31:
            raise ValueError(f"filters must be below 2**31. Received: filters={filters}")
        self.groups = check_groups(groups, self.filters)
        self.kernel_size = conv_tuple("kernel_size", kernel_size, self.rank)
        self.strides = conv_tuple("strides", strides, self.rank)
        self.dilation_rate = conv_tuple("dilation_rate", dilation_rate, self.rank)
        self.padding = conv_padding(padding, paddings)
        check_channels_last(data_format)
        self.act, self.param = activation_of("linear" if activation is None else activation)
        self.use_bias = V.check_bool("use_bias", use_bias)
        self.kernel_initializer = (None if kernel_initializer is None
                                   else _initializer("kernel_initializer", kernel_initializer))
        self.bias_initializer = (None if bias_initializer in (None, "zeros")
                                 else _initializer("bias_initializer", bias_initializer))
        self.kernel_regularizer = _regularizer("kernel_regularizer", kernel_regularizer)
        self.bias_regularizer = _regularizer("bias_regularizer", bias_regularizer)
        self.kernel: FloatArray
        self.bias: FloatArray

    # ------------------------------------------------------------------ shapes and weights
    def _geometry(self, spatial: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Output sizes and paddings before, per spatial axis."""
        return window_geometry(spatial, self.kernel_size, self.strides, self.dilation_rate,
                               self.padding)

    def compute_output_shape(self, input_shape: Any) -> Any:
        check_spatial_input(self, input_shape)
        check_window_span(self, input_shape[:-1], self.kernel_size, self.dilation_rate,
                          self.padding, f"kernel_size={list(self.kernel_size)} with "
                                        f"dilation_rate={list(self.dilation_rate)}")
        if input_shape[-1] % self.groups:
            raise ValueError(f"{self.name}: the input channels must be a multiple of groups "
                             f"(each group convolves c_in // groups of them into filters // "
                             f"groups outputs). Received: groups={self.groups}, "
                             f"c_in={input_shape[-1]}, filters={self.filters}")
        sizes, _ = self._geometry(input_shape[:-1])
        if min(sizes) < 1:
            raise ValueError(f"{self.name}: a {'x'.join(map(str, self.kernel_size))} kernel "
                             f"(dilation {self.dilation_rate}) does not fit an input of shape "
                             f"{input_shape} with padding='{self.padding}'")
        return (*sizes, self.filters)

    def _kernel_shape(self) -> tuple[int, ...]:
        """The kernel in Keras' layout: (*kernel_size, input channels // groups, filters)."""
        return (*self.kernel_size, self.input_shape[-1] // self.groups, self.filters)

    def weight_specs(self) -> Sequence[WeightSpec]:
        shape = self._kernel_shape()
        kernel = self.kernel_initializer or _AutoKernel(self.act)
        specs = [WeightSpec("kernel", shape, kernel, self.kernel_regularizer)]
        if self.use_bias:
            specs.append(WeightSpec("bias", (self.filters,), self.bias_initializer or _zeros,
                                    self.bias_regularizer))
        return specs

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        self.kernel, self.dkernel = weights[0], grads[0]
        if self.use_bias:
            self.bias, self.dbias = weights[1], grads[1]
        else:                        # the kernels take a bias: a constant zero one
            self.bias = np.zeros(self.filters, weights[0].dtype)
            self.dbias = np.zeros(self.filters, weights[0].dtype)
        # the 2-D kernels' view of everything: (n, h, w, c) inputs, (kh, kw, c, f) kernels
        spatial = tuple(self.input_shape[:-1])
        sizes, before = self._geometry(spatial)
        if self.rank == 1:
            self._x4 = (1, *spatial, self.input_shape[-1])
            self._y4 = (1, *sizes, self.filters)
            self._k4 = (1, *self.kernel.shape)
            self._strides, self._dilations = (1, *self.strides), (1, *self.dilation_rate)
            self._pads = (0, *before)
        else:
            self._x4, self._y4 = tuple(self.input_shape), (*sizes, self.filters)
            self._k4 = tuple(self.kernel.shape)
            self._strides, self._dilations, self._pads = (self.strides, self.dilation_rate,
                                                          before)

    # ------------------------------------------------------------------ compute
    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        x = np.ascontiguousarray(x)
        ctx.saved["x"] = x
        n = x.shape[0]
        if self.groups > 1:
            ctx.saved["z"] = forward_keeping_z(ctx, self, training, y, lambda act, out: (
                self._grouped_forward(ctx.be, x.reshape(n, *self._x4), act,
                                      out.reshape(n, *self._y4))))
            return y
        ctx.saved["z"] = forward_keeping_z(ctx, self, training, y, lambda act, out: (
            ctx.be.conv2d_forward(x.reshape(n, *self._x4), self.kernel.reshape(self._k4),
                                  self.bias, self._strides, self._dilations, self._pads, act,
                                  self.param, out.reshape(n, *self._y4))))
        return y

    # grouped (groups > 1): one convolution per group of c_in // groups channels; with one
    # channel a group (groups == c_in) that is the depthwise kernel's product, multiplier
    # filters // c_in, whose kernel (kh, kw, c, m) is this one's (kh, kw, 1, filters) as it is
    def _depthwise_kernel(self, weights: FloatArray) -> Optional[FloatArray]:
        c = self._x4[-1]
        if self.groups != c:
            return None
        return weights.reshape(*self._k4[:2], c, self.filters // c)

    def _grouped_forward(self, be: Any, x4: FloatArray, act: int, y4: FloatArray) -> None:
        """y4 := act(grouped conv(x4) + bias) (softmax: across all filters, after)."""
        inner = A.LINEAR if act == A.SOFTMAX else act
        dw = self._depthwise_kernel(self.kernel)
        if dw is not None:
            be.depthwise_conv2d_forward(x4, dw, self.bias, self._strides, self._dilations,
                                        self._pads, inner, self.param, y4)
        else:
            be.conv2d_grouped_forward(x4, self.kernel.reshape(self._k4), self.bias,
                                      self._strides, self._dilations, self._pads, self.groups,
                                      inner, self.param, y4)
        if inner != act:
            rows = rows_of(y4)
            be.activation_forward(rows, act, self.param, rows)

    def _grouped_backward(self, be: Any, x4: FloatArray, dz4: FloatArray,
                          dx4: Optional[FloatArray]) -> None:
        """The kernel, bias and (unless dx4 is None) input gradients from dz4 = dL/dz."""
        dw = self._depthwise_kernel(self.kernel)
        if dw is not None:
            be.depthwise_conv2d_backward(x4, dw, dz4, self._strides, self._dilations,
                                         self._pads, self._depthwise_kernel(self.dkernel),
                                         self.dbias, dx4)
        else:
            be.conv2d_grouped_backward(x4, self.kernel.reshape(self._k4), dz4, self._strides,
                                       self._dilations, self._pads, self.groups,
                                       self.dkernel.reshape(self._k4), self.dbias, dx4)

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        # dy is dL/dz already when the loss or the max pooling after took the derivative
        act = A.LINEAR if ctx.fuse_act or ctx.relu_fused else self.act
        x, dx = ctx.saved["x"], ctx.dx_target(0)
        n = x.shape[0]
        dz = output_gradient(ctx, self, dy, act)
        if self.groups > 1:
            self._grouped_backward(ctx.be, x.reshape(n, *self._x4), dz.reshape(n, *self._y4),
                                   None if dx is None else dx.reshape(n, *self._x4))
            return dx
        ctx.be.conv2d_backward(x.reshape(n, *self._x4), self.kernel.reshape(self._k4),
                               dz.reshape(n, *self._y4), self._strides, self._dilations,
                               self._pads, self.dkernel.reshape(self._k4), self.dbias,
                               None if dx is None else dx.reshape(n, *self._x4))
        return dx

    def backward_from_pool(self, ctx: Slot, pool: Any, pool_ctx: Slot, dy: FloatArray) -> None:
        """The kernel and bias gradients when a max pooling is this relu convolution's only
        reader and the input's gradient is not wanted (graph.pooled_grad_nodes): from the
        pooling's output gradient ``dy``, argmax and output, without forming dL/dz (zero but
        at each window's argmax)."""
        x = ctx.saved["x"]
        n = x.shape[0]
        yp = pool_ctx.rows_buffer("y", pool.output_shape).reshape(n, *pool._y4)
        if self.groups > 1:         # dL/dz formed (the pooled kernel has no groups)
            dz = ctx.rows_buffer("dz", self.output_shape)
            ctx.be.maxpool2d_backward_relu(np.ascontiguousarray(dy).reshape(n, *pool._y4),
                                           pool_ctx.saved["argmax"], yp, *pool._args,
                                           dz.reshape(n, *self._y4))
            self._grouped_backward(ctx.be, x.reshape(n, *self._x4), dz.reshape(n, *self._y4),
                                   None)
            return
        ctx.be.conv2d_backward_pooled(x.reshape(n, *self._x4),
                                      np.ascontiguousarray(dy).reshape(n, *pool._y4),
                                      pool_ctx.saved["argmax"], yp, self._y4[:2], self._strides,
                                      self._dilations, self._pads,
                                      self.dkernel.reshape(self._k4), self.dbias)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": list(self.kernel_size),
                       "strides": list(self.strides), "padding": self.padding,
                       "dilation_rate": list(self.dilation_rate)})
        if self.groups != 1:
            config["groups"] = self.groups
        return kernel_layer_config(self, config)

    def __repr__(self) -> str:
        size = self.kernel_size[0] if self.rank == 1 else self.kernel_size
        return (f"{type(self).__name__}({self.filters}, {size}, "
                f"activation={self.activation!r})")


class Conv2D(_Conv):
    """2-D convolution over images (channels-last): ``filters`` kernels of
    ``kernel_size`` x input channels, each giving one output channel.

    Parameters
    ----------
    filters : int
        Output channels (kernels), > 0.
    kernel_size : int or (int, int)
        Height and width of the kernels.
    strides : int or (int, int), default 1
        Step between windows.
    padding : {"valid", "same"}, default "valid"
        ``valid``: windows inside the input; ``same``: zeros around the input so that the
        output has ceil(size / stride) positions (the extra zero after, as in Keras).
    data_format : None or "channels_last"
        fastnn is channels-last only.
    dilation_rate : int or (int, int), default 1
        Spacing between a kernel's taps.
    activation : str or Activation, default None (linear)
    use_bias : bool, default True
    kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer
        As in ``Dense`` (the default kernel initializer is He normal before the ReLU family,
        Glorot uniform otherwise, with Keras' fans for convolution kernels).
    name, trainable
        See ``Layer``.
    groups : int, default 1
        Keras' (and PyTorch's) grouped convolution: the input channels in ``groups`` equal
        runs, run g convolved with its own filters g*filters/groups .. (g+1)*filters/groups - 1
        alone; c and filters must be multiples of it. The kernel is then (kh, kw, c // groups,
        filters).

    Shapes: x (n, h, w, c), kernel (kh, kw, c // groups, filters) as in Keras, bias (filters,),
    y (n, oh, ow, filters).

    Raises
    ------
    ValueError
        For a non-positive size, an unknown padding or activation, channels-first data, groups
        not dividing filters, or (at build) a kernel that does not fit the input or input
        channels that groups does not divide.
    TypeError
        For sizes that are not integers.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Conv2D(4, 3, padding="same", activation="relu")],
    ...                        input_shape=(8, 8, 1), backend="numpy")
    >>> model.predict(np.zeros((2, 8, 8, 1))).shape
    (2, 8, 8, 4)
    >>> [w.shape for w in model.get_weights()]
    [(3, 3, 1, 4), (4,)]
    """

    rank = 2

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1,
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = 1, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 name: Optional[str] = None, trainable: bool = True, groups: int = 1) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, name, trainable, groups=groups)


class Conv1D(_Conv):
    """1-D convolution over sequences (channels-last): a window of ``kernel_size`` steps.

    Parameters are those of ``Conv2D`` with single integers, and ``padding`` may also be
    ``"causal"``: zeros before the sequence only, so output step t sees input steps <= t
    (as in Keras, for time series).

    Shapes: x (n, steps, c), kernel (kernel_size, c, filters) as in Keras, bias (filters,),
    y (n, out_steps, filters).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Conv1D(3, 2, padding="causal")], input_shape=(5, 1),
    ...                        backend="numpy")
    >>> model.predict(np.zeros((1, 5, 1))).shape
    (1, 5, 3)
    """

    rank = 1

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1,
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = 1, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 name: Optional[str] = None, trainable: bool = True, groups: int = 1) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, name, trainable,
                         paddings=("valid", "same", "causal"), groups=groups)


def transposed_length(size: int, kernel: int, stride: int, dilation: int, padding: str,
                      output_padding: Optional[int]) -> tuple[int, int]:
    """Keras' output length of a transposed convolution along one axis, and the padding before
    the first element of the convolution it is the transpose of. Without ``output_padding``:
    ``valid`` gives size * stride + max(span - stride, 0), ``same`` size * stride; with it,
    (size - 1) * stride + span - 2 * pad + output_padding, pad = span // 2 for ``same`` and 0
    for ``valid``. ``valid`` pads nothing before; ``same`` pads half of what the windows
    overhang the output, the odd one after (TensorFlow's and Keras' placement)."""
    span = (kernel - 1) * dilation + 1
    if output_padding is None:
        out = size * stride + (max(span - stride, 0) if padding == "valid" else 0)
    else:
        out = (size - 1) * stride + span - 2 * (span // 2 if padding == "same" else 0) \
            + output_padding
    if padding == "valid":
        return out, 0
    return out, max((size - 1) * stride + span - out, 0) // 2


class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution ("deconvolution"): the layer that grows images, as in a
    DCGAN's generator. Each input position spreads its channels over a ``kernel_size`` window
    of the output, windows ``strides`` apart, and overlapping windows add up: the exact
    transpose of a ``Conv2D`` with the same kernel, strides and padding (its input gradient).

    Parameters
    ----------
    filters : int
        Output channels, > 0.
    kernel_size, strides, dilation_rate : int or (int, int)
        As in ``Conv2D`` (strides 2 doubles the height and width).
    padding : {"valid", "same"}, default "valid"
        ``same``: the output is input * strides; ``valid``: input * strides + max(span -
        strides, 0), span = (kernel_size - 1) * dilation_rate + 1 (Keras' lengths).
    output_padding : int or (int, int), optional
        Rows and columns added at the end of the output, each below its stride (Keras' and
        PyTorch's): the output is then (input - 1) * strides + span - 2 * pad +
        output_padding, pad = span // 2 for ``same``, 0 for ``valid``.
    data_format, activation, use_bias, kernel_initializer, bias_initializer,
    kernel_regularizer, bias_regularizer, name, trainable
        As in ``Conv2D``.

    Shapes: x (n, h, w, c), kernel (kh, kw, filters, c) as in Keras, bias (filters,),
    y (n, oh, ow, filters). PyTorch's ``ConvTranspose2d`` weight (c, filters, kh, kw) is this
    kernel transposed by (3, 2, 0, 1).

    Kernels: the forward is the compiled convolution's input gradient with this layer's input
    as the output gradient, plus the bias; the backward is a convolution forward (the input's
    gradient) and the convolution's kernel gradient with the roles of input and output
    swapped. No new arithmetic: the same implicit GEMM, bitwise alike at any thread count.

    Raises
    ------
    ValueError
        For a non-positive size, an output_padding not below its stride, an unknown padding
        or activation, channels-first data, or (at build) an output of no rows or of more
        than 2**31 - 1.
    TypeError
        For sizes that are not integers.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Conv2DTranspose(4, 3, strides=2, padding="same")],
    ...                        input_shape=(7, 7, 8), backend="numpy")
    >>> model.predict(np.zeros((2, 7, 7, 8))).shape
    (2, 14, 14, 4)
    >>> [w.shape for w in model.get_weights()]
    [(3, 3, 4, 8), (4,)]
    """

    rank = 2

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1,
                 padding: str = "valid", output_padding: Any = None,
                 data_format: Optional[str] = None, dilation_rate: Any = 1,
                 activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, name, trainable)
        self.output_padding: Optional[tuple[int, ...]] = None
        if output_padding is not None:
            items = (output_padding if isinstance(output_padding, (tuple, list))
                     else (output_padding,) * self.rank)
            if len(items) != self.rank:
                many = (f"a tuple of {self.rank} integers" if self.rank > 1
                        else "a tuple of one integer")
                raise ValueError(f"output_padding must be an integer or {many}. "
                                 f"Received: output_padding={V._describe(output_padding)}")
            pads = tuple(V.check_int("output_padding", v, low=0) for v in items)
            if any(p >= s for p, s in zip(pads, self.strides)):
                raise ValueError(f"output_padding must be below the strides {self.strides} "
                                 f"on each axis. Received: output_padding="
                                 f"{V._describe(output_padding)}")
            self.output_padding = pads

    def _geometry(self, spatial: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Output sizes, and the paddings before of the convolution this is the transpose of."""
        extra = self.output_padding or (None,) * self.rank
        pairs = [transposed_length(size, k, s, d, self.padding, o) for size, k, s, d, o in
                 zip(spatial, self.kernel_size, self.strides, self.dilation_rate, extra)]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        check_spatial_input(self, input_shape)
        sizes, _ = self._geometry(input_shape[:-1])
        if min(sizes) < 1 or max(sizes) >= 2**31:
            raise ValueError(f"{self.name}: an input of shape {input_shape} gives an output of "
                             f"{sizes} positions with kernel_size={list(self.kernel_size)}, "
                             f"strides={list(self.strides)}, padding='{self.padding}' and "
                             f"output_padding={self.output_padding}: each must be from 1 to "
                             f"2**31 - 1")
        return (*sizes, self.filters)

    def _kernel_shape(self) -> tuple[int, ...]:
        """Keras' transposed layout: (*kernel_size, filters, input channels)."""
        return (*self.kernel_size, self.filters, self.input_shape[-1])

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        # the convolution this is the transpose of: its input is this layer's output (a 1-D
        # one is the 2-D one on a height of 1, as Conv1D: _Conv.bind's views)
        self._k4 = (1,) * (2 - self.rank) + tuple(self.kernel.shape)
        self._conv_bias = np.zeros(self.input_shape[-1], weights[0].dtype)     # dx's: none
        self._conv_dbias = np.zeros(self.input_shape[-1], weights[0].dtype)    # discarded

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        x = np.ascontiguousarray(x)
        ctx.saved["x"] = x
        n = x.shape[0]

        def kernel(act: int, out: FloatArray) -> None:
            ctx.be.conv2d_backward_input(self.kernel.reshape(self._k4),
                                         x.reshape(n, *self._x4), self._strides,
                                         self._dilations, self._pads, out.reshape(n, *self._y4))
            self._bias_and_activation(ctx, out, act)
        ctx.saved["z"] = forward_keeping_z(ctx, self, training, y, kernel)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        act = A.LINEAR if ctx.fuse_act else self.act
        x, dx = ctx.saved["x"], ctx.dx_target(0)
        n = x.shape[0]
        dz = output_gradient(ctx, self, dy, act)
        dz4 = dz.reshape(n, *self._y4)
        # the kernel's gradient is the convolution's, with this layer's output gradient as the
        # convolution's input and this layer's input as its output gradient
        ctx.be.conv2d_backward(dz4, self.kernel.reshape(self._k4), x.reshape(n, *self._x4),
                               self._strides, self._dilations, self._pads,
                               self.dkernel.reshape(self._k4), self._conv_dbias, None)
        self._bias_gradient(ctx, dz)
        if dx is not None:
            ctx.be.conv2d_forward(dz4, self.kernel.reshape(self._k4), self._conv_bias,
                                  self._strides,
                                  self._dilations, self._pads, A.LINEAR, 0.0,
                                  dx.reshape(n, *self._x4))
        return dx

    def _bias_and_activation(self, ctx: Slot, out: FloatArray, act: int) -> None:
        """out := act(out + bias), in place: the forward's tail after the transposed product
        (which has no bias of its own)."""
        rows = rows_of(out)
        if self.use_bias:
            ctx.be.add_row_vector(rows, self.bias, rows)
        if act != A.LINEAR:
            ctx.be.activation_forward(rows, act, self.param, rows)

    def _bias_gradient(self, ctx: Slot, dz: FloatArray) -> None:
        """dbias := dz summed over the samples and positions (zero without a bias)."""
        self.dbias[...] = 0
        if self.use_bias:
            ctx.be.sum_rows_into(rows_of(dz), self.dbias)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.output_padding is not None:
            config["output_padding"] = list(self.output_padding)
        return config


class Conv1DTranspose(Conv2DTranspose):
    """Transposed 1-D convolution over sequences (channels-last): each input step spreads its
    channels over a ``kernel_size`` window of the output, windows ``strides`` apart,
    overlapping windows adding up (the transpose of a ``Conv1D``; strides 2 doubles the
    length, e.g. to upsample a signal or a sequence).

    Parameters are those of ``Conv2DTranspose`` with single integers (``padding`` "valid" or
    "same"; ``output_padding`` below ``strides``).

    Shapes: x (n, steps, c), kernel (kernel_size, filters, c) as in Keras, bias (filters,),
    y (n, out_steps, filters), out_steps as in ``Conv2DTranspose``. PyTorch's
    ``ConvTranspose1d`` weight (c, filters, k) is this kernel transposed by (2, 1, 0).

    Kernels: ``Conv2DTranspose``'s on a height of 1 (the compiled implicit GEMM).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Conv1DTranspose(3, 4, strides=2, padding="same")],
    ...                        input_shape=(5, 2), backend="numpy")
    >>> model.predict(np.zeros((1, 5, 2))).shape
    (1, 10, 3)
    >>> [w.shape for w in model.get_weights()]
    [(4, 3, 2), (3,)]
    """

    rank = 1


Convolution1DTranspose, Convolution2DTranspose = Conv1DTranspose, Conv2DTranspose
Convolution1D, Convolution2D = Conv1D, Conv2D
__all__ = ["Conv1D", "Conv2D", "Conv1DTranspose", "Conv2DTranspose", "Convolution1D",
           "Convolution2D", "Convolution1DTranspose", "Convolution2DTranspose", "conv_tuple", "conv_padding", "output_length",
           "check_window_span"]
