"""Depthwise and separable convolutions: ``DepthwiseConv2D`` / ``DepthwiseConv1D`` (each input
channel convolved with its own ``depth_multiplier`` filters, no mixing across channels) and
``SeparableConv2D`` / ``SeparableConv1D`` (that, then a 1x1 convolution mixing the channels:
MobileNet's and Xception's block), with Keras' arguments, output sizes and weight layouts.

``y[i, j, ci*dm + m] = act(bias + sum over taps (ky, kx) of x[i*sh + ky*dh - top,
j*sw + kx*dw - left, ci] * depthwise_kernel[ky, kx, ci, m])``, zeros outside the input.
A separable convolution is that without bias or activation, then ``act(z @ pointwise + bias)``
at every position: a fraction of a full convolution's weights and multiply-adds.

Kernels: the depthwise part runs in src_c/fnn_dwconv.c (rows of channels, vectorised; see
fastnn/_ext/_depthwise.pyx), its NumPy twin in fastnn/backends/numpy_depthwise.py; the
pointwise part is the backends' 1x1 ``conv2d`` (the packed GEMM). The 1-D forms run as one-row
images.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from fastnn import activations as A
from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec, rows_of
from fastnn.layers.convolutional import (check_channels_last, check_spatial_input,
                                         check_window_span, conv_padding, conv_tuple,
                                         window_geometry)
from fastnn.layers.core import (_initializer, _regularizer, _serialize, _zeros, activation_of,
                                forward_keeping_z, saved_for_derivative)


def _glorot_uniform() -> Any:
    from fastnn.initializers import GlorotUniform
    return GlorotUniform()


class _Depthwise(Layer):
    """What the depthwise and separable layers share: the depthwise part's arguments, weights,
    geometry and kernel calls, and the activation around the layer's last product."""

    rank = 2
    separable = False

    def __init__(self, kernel_size: Any, strides: Any, padding: str, depth_multiplier: int,
                 data_format: Optional[str], dilation_rate: Any, activation: Any, use_bias: bool,
                 depthwise_initializer: Any, bias_initializer: Any, depthwise_regularizer: Any,
                 bias_regularizer: Any, name: Optional[str], trainable: bool) -> None:
        super().__init__(name=name, trainable=trainable)
        self.kernel_size = conv_tuple("kernel_size", kernel_size, self.rank)
        self.strides = conv_tuple("strides", strides, self.rank)
        self.dilation_rate = conv_tuple("dilation_rate", dilation_rate, self.rank)
        self.padding = conv_padding(padding)
        self.depth_multiplier = V.check_positive_int("depth_multiplier", depth_multiplier)
        if self.depth_multiplier >= 2**31:
            raise ValueError(f"depth_multiplier must be below 2**31. Received: "
                             f"depth_multiplier={depth_multiplier}")
        check_channels_last(data_format)
        self.act, self.param = activation_of("linear" if activation is None else activation)
        self.use_bias = V.check_bool("use_bias", use_bias)
        self.depthwise_initializer = (None if depthwise_initializer in (None, "glorot_uniform")
                                      else _initializer("depthwise_initializer",
                                                        depthwise_initializer))
        self.bias_initializer = (None if bias_initializer in (None, "zeros")
                                 else _initializer("bias_initializer", bias_initializer))
        self.depthwise_regularizer = _regularizer("depthwise_regularizer", depthwise_regularizer)
        self.bias_regularizer = _regularizer("bias_regularizer", bias_regularizer)
        self.depthwise_kernel: FloatArray
        self.bias: FloatArray

    # ------------------------------------------------------------------ shapes and weights
    def _depth_channels(self, input_shape: Any) -> int:
        channels = input_shape[-1] * self.depth_multiplier
        if channels >= 2**31:
            raise ValueError(f"{self.name}: {input_shape[-1]} channels times depth_multiplier="
                             f"{self.depth_multiplier} must be below 2**31")
        return int(channels)

    def _out_channels(self, input_shape: Any) -> int:
        return self._depth_channels(input_shape)

    def compute_output_shape(self, input_shape: Any) -> Any:
        check_spatial_input(self, input_shape)
        check_window_span(self, input_shape[:-1], self.kernel_size, self.dilation_rate,
                          self.padding, f"kernel_size={list(self.kernel_size)} with "
                                        f"dilation_rate={list(self.dilation_rate)}")
        sizes, _ = window_geometry(input_shape[:-1], self.kernel_size, self.strides,
                                   self.dilation_rate, self.padding)
        if min(sizes) < 1:
            raise ValueError(f"{self.name}: a {'x'.join(map(str, self.kernel_size))} kernel "
                             f"(dilation {self.dilation_rate}) does not fit an input of shape "
                             f"{input_shape} with padding='{self.padding}'")
        return (*sizes, self._out_channels(input_shape))

    def weight_specs(self) -> Sequence[WeightSpec]:
        shape = (*self.kernel_size, self.input_shape[-1], self.depth_multiplier)
        specs = [WeightSpec("depthwise_kernel", shape,
                            self.depthwise_initializer or _glorot_uniform(),
                            self.depthwise_regularizer)]
        specs += self._more_specs()
        if self.use_bias:
            specs.append(WeightSpec("bias", (self.output_shape[-1],),
                                    self.bias_initializer or _zeros, self.bias_regularizer))
        return specs

    def _more_specs(self) -> list[WeightSpec]:
        return []

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        self.depthwise_kernel, self.ddepthwise_kernel = weights[0], grads[0]
        out = self.output_shape[-1]
        if self.use_bias:
            self.bias, self.dbias = weights[-1], grads[-1]
        else:                        # the kernels take a bias: a constant zero one
            self.bias, self.dbias = np.zeros(out, weights[0].dtype), np.zeros(out, weights[0].dtype)
        # the 2-D kernels' view: (n, h, w, c) inputs, (kh, kw, c, dm) kernels
        spatial = tuple(self.input_shape[:-1])
        sizes, before = window_geometry(spatial, self.kernel_size, self.strides,
                                        self.dilation_rate, self.padding)
        depth = self._depth_channels(self.input_shape)
        if self.rank == 1:
            self._x4 = (1, *spatial, self.input_shape[-1])
            self._d4 = (1, *sizes, depth)
            self._k4 = (1, *self.depthwise_kernel.shape)
            self._strides, self._dilations = (1, *self.strides), (1, *self.dilation_rate)
            self._pads = (0, *before)
        else:
            self._x4, self._d4 = tuple(self.input_shape), (*sizes, depth)
            self._k4 = tuple(self.depthwise_kernel.shape)
            self._strides, self._dilations, self._pads = (self.strides, self.dilation_rate,
                                                          before)

    # ------------------------------------------------------------------ compute
    def _depthwise(self, ctx: Slot, x: FloatArray, bias: FloatArray, act: int,
                   out: FloatArray) -> None:
        """out := act(depthwise(x) + bias), softmax applied after the kernel."""
        n = x.shape[0]
        ctx.be.depthwise_conv2d_forward(x.reshape(n, *self._x4),
                                        self.depthwise_kernel.reshape(self._k4), bias,
                                        self._strides, self._dilations, self._pads,
                                        A.LINEAR if act == A.SOFTMAX else act, self.param,
                                        out.reshape(n, *self._d4))
        if act == A.SOFTMAX:
            ctx.be.activation_forward(rows_of(out), act, self.param, rows_of(out))

    def _dz(self, ctx: Slot, dy: FloatArray, n: int) -> FloatArray:
        """dL/d(pre-activation) of the layer's output from dy."""
        act = A.LINEAR if ctx.fuse_act else self.act
        if act == A.LINEAR:
            return np.ascontiguousarray(dy)
        dz = ctx.rows_buffer("dz", self.output_shape)
        view = rows_of if act == A.SOFTMAX else (lambda a: a.reshape(n, -1))
        saved, code = saved_for_derivative(ctx, self, act)
        ctx.be.activation_backward(view(saved), view(np.ascontiguousarray(dy)), code,
                                   self.param, view(dz))
        return dz

    def _depthwise_backward(self, ctx: Slot, x: FloatArray, dz: FloatArray,
                            dbias: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        n = x.shape[0]
        ctx.be.depthwise_conv2d_backward(x.reshape(n, *self._x4),
                                         self.depthwise_kernel.reshape(self._k4),
                                         dz.reshape(n, *self._d4), self._strides,
                                         self._dilations, self._pads,
                                         self.ddepthwise_kernel.reshape(self._k4), dbias,
                                         None if dx is None else dx.reshape(n, *self._x4))
        return dx

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"kernel_size": list(self.kernel_size), "strides": list(self.strides),
                       "padding": self.padding, "depth_multiplier": self.depth_multiplier,
                       "dilation_rate": list(self.dilation_rate),
                       "activation": self.activation})
        if self.act == A.STEP:
            config["threshold"] = self.param
        elif self.act == A.LEAKY_RELU:
            config["alpha"] = self.param
        if not self.use_bias:
            config["use_bias"] = False
        for key in ("depthwise_initializer", "pointwise_initializer", "bias_initializer",
                    "depthwise_regularizer", "pointwise_regularizer", "bias_regularizer"):
            value = getattr(self, key, None)
            if value is not None:
                config[key] = _serialize(value)
        return config


class DepthwiseConv2D(_Depthwise):
    """Depthwise 2-D convolution (channels-last): each input channel convolved with its own
    ``depth_multiplier`` filters of ``kernel_size``; channels are not mixed.

    Parameters
    ----------
    kernel_size : int or (int, int)
        Height and width of the filters.
    strides, padding, data_format, dilation_rate, activation, use_bias
        As in ``Conv2D``.
    depth_multiplier : int, default 1
        Filters per input channel: the output has ``channels * depth_multiplier`` channels,
        channel ``ci * depth_multiplier + m`` from input channel ci and filter m.
    depthwise_initializer : default "glorot_uniform" (Keras' fans of the (kh, kw, c, dm) kernel)
    bias_initializer : default "zeros"
    depthwise_regularizer, bias_regularizer : optional
    name, trainable
        See ``Layer``.

    Shapes: x (n, h, w, c), depthwise_kernel (kh, kw, c, depth_multiplier) as in Keras, bias
    (c * depth_multiplier,), y (n, oh, ow, c * depth_multiplier). PyTorch's
    ``Conv2d(c, c * dm, k, groups=c)`` weight is this kernel reshaped to (kh, kw, c * dm) and
    transposed by (2, 0, 1), with a unit axis inserted at 1.

    Raises
    ------
    ValueError
        For a non-positive size or depth_multiplier, an unknown padding or activation,
        channels-first data, or (at build) a kernel that does not fit the input.
    TypeError
        For sizes that are not integers.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.DepthwiseConv2D(3, depth_multiplier=2, padding="same")],
    ...                        input_shape=(8, 8, 3), backend="numpy")
    >>> model.predict(np.zeros((2, 8, 8, 3))).shape
    (2, 8, 8, 6)
    >>> [w.shape for w in model.get_weights()]
    [(3, 3, 3, 2), (6,)]
    """

    rank = 2

    def __init__(self, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 depth_multiplier: int = 1, data_format: Optional[str] = None,
                 dilation_rate: Any = 1, activation: Any = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 depthwise_regularizer: Any = None, bias_regularizer: Any = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, activation, use_bias, depthwise_initializer,
                         bias_initializer, depthwise_regularizer, bias_regularizer, name,
                         trainable)

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        x = np.ascontiguousarray(x)
        ctx.saved["x"] = x
        ctx.saved["z"] = forward_keeping_z(ctx, self, training, y, lambda act, out: (
            self._depthwise(ctx, x, self.bias, act, out)))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        x = ctx.saved["x"]
        dz = self._dz(ctx, dy, x.shape[0])
        return self._depthwise_backward(ctx, x, dz, self.dbias)

    def __repr__(self) -> str:
        size = self.kernel_size[0] if self.rank == 1 else self.kernel_size
        return (f"{type(self).__name__}({size}, depth_multiplier={self.depth_multiplier}, "
                f"activation={self.activation!r})")


class DepthwiseConv1D(DepthwiseConv2D):
    """Depthwise 1-D convolution over sequences (channels-last): ``DepthwiseConv2D``'s
    arguments with single integers. Shapes: x (n, steps, c), depthwise_kernel (kernel_size, c,
    depth_multiplier), bias (c * depth_multiplier,), y (n, out_steps, c * depth_multiplier).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.DepthwiseConv1D(3)], input_shape=(10, 4), backend="numpy")
    >>> model.predict(np.zeros((1, 10, 4))).shape
    (1, 8, 4)
    """

    rank = 1


class SeparableConv2D(_Depthwise):
    """Depthwise separable 2-D convolution (channels-last): a depthwise convolution (each input
    channel with its own ``depth_multiplier`` filters, no bias, no activation), then a 1x1
    convolution of ``filters`` outputs mixing the channels, plus the bias, then the activation.

    Parameters
    ----------
    filters : int
        Output channels, > 0.
    kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate
        Of the depthwise step, as in ``DepthwiseConv2D``.
    activation, use_bias
        Of the whole layer (after the pointwise step), as in ``Conv2D``.
    depthwise_initializer, pointwise_initializer : default "glorot_uniform"
    bias_initializer : default "zeros"
    depthwise_regularizer, pointwise_regularizer, bias_regularizer : optional
    name, trainable
        See ``Layer``.

    Shapes: x (n, h, w, c), depthwise_kernel (kh, kw, c, depth_multiplier), pointwise_kernel
    (1, 1, c * depth_multiplier, filters), bias (filters,) as in Keras, y (n, oh, ow, filters).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.SeparableConv2D(8, 3, padding="same", activation="relu")],
    ...                        input_shape=(8, 8, 3), backend="numpy")
    >>> model.predict(np.zeros((2, 8, 8, 3))).shape
    (2, 8, 8, 8)
    >>> [w.shape for w in model.get_weights()]
    [(3, 3, 3, 1), (1, 1, 3, 8), (8,)]
    """

    rank = 2
    separable = True

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 depth_multiplier: int = 1, data_format: Optional[str] = None,
                 dilation_rate: Any = 1, activation: Any = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform",
                 pointwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 depthwise_regularizer: Any = None, pointwise_regularizer: Any = None,
                 bias_regularizer: Any = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, activation, use_bias, depthwise_initializer,
                         bias_initializer, depthwise_regularizer, bias_regularizer, name,
                         trainable)
        self.filters = V.check_positive_int("filters", filters)
        if self.filters >= 2**31:
            raise ValueError(f"filters must be below 2**31. Received: filters={filters}")
        self.pointwise_initializer = (None if pointwise_initializer in (None, "glorot_uniform")
                                      else _initializer("pointwise_initializer",
                                                        pointwise_initializer))
        self.pointwise_regularizer = _regularizer("pointwise_regularizer", pointwise_regularizer)
        self.pointwise_kernel: FloatArray

    def _out_channels(self, input_shape: Any) -> int:
        self._depth_channels(input_shape)
        return self.filters

    def _more_specs(self) -> list[WeightSpec]:
        shape = (1, 1, self._depth_channels(self.input_shape), self.filters)
        return [WeightSpec("pointwise_kernel", shape,
                           self.pointwise_initializer or _glorot_uniform(),
                           self.pointwise_regularizer)]

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        self.pointwise_kernel, self.dpointwise_kernel = weights[1], grads[1]
        depth = self._d4[-1]
        self._no_bias = np.zeros(depth, weights[0].dtype)          # the depthwise step's
        self._no_dbias = np.zeros(depth, weights[0].dtype)         # discarded
        self._y4 = (*self._d4[:-1], self.filters)

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        x = np.ascontiguousarray(x)
        n = x.shape[0]
        ctx.saved["x"] = x
        d = ctx.rows_buffer("depthwise", self._d4)
        self._depthwise(ctx, x, self._no_bias, A.LINEAR, d)
        ctx.saved["z"] = forward_keeping_z(ctx, self, training, y, lambda act, out: (
            self._pointwise(ctx, d, act, out.reshape(n, *self._y4))))
        return y

    def _pointwise(self, ctx: Slot, d: FloatArray, act: int, out: FloatArray) -> None:
        ctx.be.conv2d_forward(d, self.pointwise_kernel, self.bias, (1, 1), (1, 1), (0, 0),
                              A.LINEAR if act == A.SOFTMAX else act, self.param, out)
        if act == A.SOFTMAX:
            ctx.be.activation_forward(rows_of(out), act, self.param, rows_of(out))

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        x = ctx.saved["x"]
        n = x.shape[0]
        dz = self._dz(ctx, dy, n)
        d = ctx.rows_buffer("depthwise", self._d4)
        dd = ctx.rows_buffer("ddepthwise", self._d4)
        ctx.be.conv2d_backward(d, self.pointwise_kernel, dz.reshape(n, *self._y4), (1, 1),
                               (1, 1), (0, 0), self.dpointwise_kernel, self.dbias, dd)
        return self._depthwise_backward(ctx, x, dd, self._no_dbias)

    def get_config(self) -> dict[str, Any]:
        return {"filters": self.filters, **super().get_config()}

    def __repr__(self) -> str:
        size = self.kernel_size[0] if self.rank == 1 else self.kernel_size
        return f"{type(self).__name__}({self.filters}, {size}, activation={self.activation!r})"


class SeparableConv1D(SeparableConv2D):
    """Depthwise separable 1-D convolution over sequences (channels-last): ``SeparableConv2D``'s
    arguments with single integers. Shapes: x (n, steps, c), depthwise_kernel (kernel_size, c,
    depth_multiplier), pointwise_kernel (1, c * depth_multiplier, filters), bias (filters,),
    y (n, out_steps, filters).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.SeparableConv1D(5, 3)], input_shape=(10, 4),
    ...                        backend="numpy")
    >>> model.predict(np.zeros((1, 10, 4))).shape
    (1, 8, 5)
    >>> [w.shape for w in model.get_weights()]
    [(3, 4, 1), (1, 4, 5), (5,)]
    """

    rank = 1

    def _more_specs(self) -> list[WeightSpec]:
        shape = (1, self._depth_channels(self.input_shape), self.filters)
        return [WeightSpec("pointwise_kernel", shape,
                           self.pointwise_initializer or _glorot_uniform(),
                           self.pointwise_regularizer)]

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        shape = (1, 1, *weights[1].shape[1:])          # (1, 1, c*dm, filters) for the kernels
        self.pointwise_kernel = weights[1].reshape(shape)
        self.dpointwise_kernel = grads[1].reshape(shape)


__all__ = ["DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"]
