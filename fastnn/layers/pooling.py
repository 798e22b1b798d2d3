"""Pooling layers (channels-last), with Keras' names, arguments and output sizes:
``MaxPooling2D``, ``AveragePooling2D``, ``MaxPooling1D``, ``AveragePooling1D`` (windows), and
``GlobalAveragePooling2D/1D``, ``GlobalMaxPooling2D/1D`` (all positions), with Keras' short
aliases (``MaxPool2D``, ``AvgPool2D``, ...).

Pooling summarises each window of positions per channel: its largest value (max pooling, whose
gradient goes to that element: the first one in window order on ties) or its mean (average
pooling, whose gradient is shared equally; with ``padding="same"`` the mean is over the input
elements only, as in Keras). The 1-D layers run the 2-D kernels on images of one row.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot
from fastnn.layers.convolutional import (check_channels_last, check_spatial_input,
                                         check_window_span, conv_padding, conv_tuple,
                                         window_geometry)


class _Pooling(Layer):
    """Windowed pooling: what the four layers share (``rank`` 1 or 2, ``mode`` max or avg)."""

    rank = 2
    mode = "max"

    def __init__(self, pool_size: Any, strides: Any, padding: str, data_format: Optional[str],
                 name: Optional[str], trainable: bool) -> None:
        super().__init__(name=name, trainable=trainable)
        self.pool_size = conv_tuple("pool_size", pool_size, self.rank)
        self.strides = (self.pool_size if strides is None
                        else conv_tuple("strides", strides, self.rank))
        self.padding = conv_padding(padding)
        check_channels_last(data_format)

    def _geometry(self, spatial: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return window_geometry(spatial, self.pool_size, self.strides, (1,) * self.rank,
                               self.padding)

    def compute_output_shape(self, input_shape: Any) -> Any:
        check_spatial_input(self, input_shape)
        check_window_span(self, input_shape[:-1], self.pool_size, [1] * self.rank,
                          self.padding, f"pool_size={list(self.pool_size)}")
        sizes, _ = self._geometry(input_shape[:-1])
        if min(sizes) < 1:
            raise ValueError(f"{self.name}: a pool of {self.pool_size} does not fit an input "
                             f"of shape {input_shape} with padding='valid'")
        return (*sizes, input_shape[-1])

    def build(self, input_shape: Any, dtype: Any) -> Any:
        out = super().build(input_shape, dtype)
        sizes, before = self._geometry(input_shape[:-1])
        self._args: tuple[int, ...]
        if self.rank == 1:      # the 2-D kernels on one-row images
            self._x4 = (1, *input_shape)
            self._y4 = (1, *out)
            self._args = (1, self.pool_size[0], 1, self.strides[0], 0, before[0])
        else:
            self._x4, self._y4 = tuple(input_shape), tuple(out)
            self._args = (*self.pool_size, *self.strides, *before)
        return out

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        n = x.shape[0]
        x4, y4 = np.ascontiguousarray(x).reshape(n, *self._x4), y.reshape(n, *self._y4)
        if self.mode == "max":
            argmax = ctx.saved["argmax"] = ctx.rows_buffer("argmax", self._y4, np.int64)
            ctx.be.maxpool2d_forward(x4, *self._args, y4, argmax)
        else:
            ctx.be.avgpool2d_forward(x4, *self._args, y4)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        n = dy.shape[0]
        dy4, dx4 = np.ascontiguousarray(dy).reshape(n, *self._y4), dx.reshape(n, *self._x4)
        if self.mode == "max" and ctx.relu_fused:      # see Slot: the relu's derivative too
            y4 = ctx.rows_buffer("y", self.output_shape).reshape(n, *self._y4)
            ctx.be.maxpool2d_backward_relu(dy4, ctx.saved["argmax"], y4, *self._args, dx4)
        elif self.mode == "max":
            ctx.be.maxpool2d_backward(dy4, ctx.saved["argmax"], dx4)
        else:
            ctx.be.avgpool2d_backward(dy4, *self._args, dx4)
        return dx

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"pool_size": list(self.pool_size), "strides": list(self.strides),
                       "padding": self.padding})
        return config

    def __repr__(self) -> str:
        size = self.pool_size[0] if self.rank == 1 else self.pool_size
        return f"{type(self).__name__}(pool_size={size})"


class MaxPooling2D(_Pooling):
    """The largest value of each ``pool_size`` window, per channel, every ``strides`` positions.

    Parameters
    ----------
    pool_size : int or (int, int), default (2, 2)
    strides : int or (int, int), default None (= pool_size)
    padding : {"valid", "same"}, default "valid"
        ``same``: windows may reach past the input (output size ceil(size / stride)); those
        positions are ignored.
    data_format : None or "channels_last"
    name, trainable
        See ``Layer``.

    Raises
    ------
    ValueError
        For sizes below 1, an unknown padding, channels-first data, or (at build) a pool that
        does not fit the input with ``padding="valid"``.
    TypeError
        For sizes that are not integers.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.MaxPooling2D()], input_shape=(4, 4, 1), backend="numpy")
    >>> model.predict(np.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """

    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(pool_size, strides, padding, data_format, name, trainable)


class AveragePooling2D(_Pooling):
    """The mean of each ``pool_size`` window, per channel, every ``strides`` positions.

    Parameters
    ----------
    pool_size : int or (int, int), default (2, 2)
    strides : int or (int, int), default None (= pool_size)
    padding : {"valid", "same"}, default "valid"
        ``same``: windows may reach past the input (output size ceil(size / stride)); the mean
        is over the window's input elements only (Keras; PyTorch's count_include_pad=False).
    data_format : None or "channels_last"
    name, trainable
        See ``Layer``.

    Raises
    ------
    ValueError
        For sizes below 1, an unknown padding, channels-first data, or (at build) a pool that
        does not fit the input with ``padding="valid"``.
    TypeError
        For sizes that are not integers.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.AveragePooling2D()], input_shape=(4, 4, 1),
    ...                        backend="numpy")
    >>> model.predict(np.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """

    mode = "avg"

    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(pool_size, strides, padding, data_format, name, trainable)


class MaxPooling1D(_Pooling):
    """The largest value of each window of ``pool_size`` steps of a sequence (steps, channels),
    per channel, every ``strides`` steps (ties: the gradient goes to the first one).

    Parameters
    ----------
    pool_size : int, default 2
    strides : int, default None (= pool_size)
    padding : {"valid", "same"}, default "valid"
    data_format : None or "channels_last"
    name, trainable
        See ``Layer``.

    Raises
    ------
    ValueError
        As ``MaxPooling2D``.
    TypeError
        For sizes that are not integers.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.MaxPooling1D(2)], input_shape=(5, 1), backend="numpy")
    >>> model.predict(np.array([[[1.0], [3.0], [2.0], [0.0], [9.0]]]))[0, :, 0]
    array([3., 2.], dtype=float32)
    """

    rank = 1

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(pool_size, strides, padding, data_format, name, trainable)


class AveragePooling1D(_Pooling):
    """The mean of each window of ``pool_size`` steps of a sequence (steps, channels), per
    channel, every ``strides`` steps (``padding="same"``: over the input steps only).

    Parameters
    ----------
    pool_size : int, default 2
    strides : int, default None (= pool_size)
    padding : {"valid", "same"}, default "valid"
    data_format : None or "channels_last"
    name, trainable
        See ``Layer``.

    Raises
    ------
    ValueError
        As ``AveragePooling2D``.
    TypeError
        For sizes that are not integers.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.AveragePooling1D(2, padding="same")], input_shape=(3, 1),
    ...                        backend="numpy")
    >>> model.predict(np.array([[[1.0], [3.0], [8.0]]]))[0, :, 0]
    array([2., 8.], dtype=float32)
    """

    rank = 1
    mode = "avg"

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(pool_size, strides, padding, data_format, name, trainable)


class _GlobalPooling(Layer):
    """Pooling over all positions: (h, w, c) or (steps, c) -> (c,) (or keepdims: ones)."""

    rank = 2
    mode = "avg"

    def __init__(self, data_format: Optional[str] = None, keepdims: bool = False,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        check_channels_last(data_format)
        self.keepdims = V.check_bool("keepdims", keepdims)

    def compute_output_shape(self, input_shape: Any) -> Any:
        check_spatial_input(self, input_shape)
        c = input_shape[-1]
        return (*([1] * self.rank), c) if self.keepdims else (c,)

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        n, c = x.shape[0], self.input_shape[-1]
        x3 = np.ascontiguousarray(x).reshape(n, -1, c)
        y = ctx.rows_buffer("y", self.output_shape)
        y2 = y.reshape(n, c)
        if self.mode == "max":
            argmax = ctx.saved["argmax"] = ctx.rows_buffer("argmax", (c,), np.int64)
            ctx.be.global_maxpool_forward(x3, y2, argmax)
        else:
            ctx.be.global_avgpool_forward(x3, y2)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        n, c = dy.shape[0], self.input_shape[-1]
        dy2, dx3 = np.ascontiguousarray(dy).reshape(n, c), dx.reshape(n, -1, c)
        if self.mode == "max":
            ctx.be.global_maxpool_backward(dy2, ctx.saved["argmax"], dx3)
        else:
            ctx.be.global_avgpool_backward(dy2, dx3)
        return dx

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.keepdims:
            config["keepdims"] = True
        return config


class GlobalAveragePooling2D(_GlobalPooling):
    """The mean over all positions of each channel: (h, w, c) -> (c,), or (1, 1, c) with
    ``keepdims=True``.

    Parameters
    ----------
    data_format : None or "channels_last"
    keepdims : bool, default False
        Keep the pooled axes, of size 1.
    name, trainable
        See ``Layer``.

    Raises
    ------
    ValueError
        For channels-first data, or (at build) an input that is not (height, width, channels).
    TypeError
        For a ``keepdims`` that is not a bool.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.GlobalAveragePooling2D()], input_shape=(2, 2, 1),
    ...                        backend="numpy")
    >>> model.predict(np.array([[[[1.0], [2.0]], [[3.0], [6.0]]]]))
    array([[3.]], dtype=float32)
    """


class GlobalMaxPooling2D(_GlobalPooling):
    """The largest value over all positions of each channel: (h, w, c) -> (c,), or (1, 1, c)
    with ``keepdims=True``; the gradient goes to the first largest position (row-major).
    Arguments and errors as ``GlobalAveragePooling2D``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.GlobalMaxPooling2D(keepdims=True)], input_shape=(2, 2, 1),
    ...                        backend="numpy")
    >>> model.predict(np.array([[[[1.0], [2.0]], [[3.0], [6.0]]]])).shape
    (1, 1, 1, 1)
    """

    mode = "max"


class GlobalAveragePooling1D(_GlobalPooling):
    """The mean over the steps of each channel: (steps, c) -> (c,), or (1, c) with
    ``keepdims=True``; with a step mask (``Embedding(mask_zero=True)``, ``Masking``), over the
    real steps only. Arguments as ``GlobalAveragePooling2D``; ValueError (at build) for an
    input that is not (steps, channels).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.GlobalAveragePooling1D()], input_shape=(3, 2),
    ...                        backend="numpy")
    >>> model.predict(np.array([[[1.0, 0.0], [2.0, 0.0], [6.0, 3.0]]]))
    array([[3., 1.]], dtype=float32)
    """

    rank = 1
    uses_mask = True

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        """With a step mask, the mean over each sample's real steps (Keras; a sample with
        none gives 0, where Keras' 0/0 gives NaN): y = w x with w = mask / count."""
        mask = ctx.mask
        ctx.saved["w"] = None
        if mask is None:
            return super().forward(ctx, x, training)
        n, c = x.shape[0], self.input_shape[-1]
        w = ctx.rows_buffer("w", self.input_shape[:1])
        np.copyto(w, mask)
        count = w.sum(axis=1, keepdims=True)
        np.divide(w, count, out=w, where=count > 0)
        y = ctx.rows_buffer("y", self.output_shape)
        np.matmul(w[:, None, :], np.ascontiguousarray(x), out=y.reshape(n, 1, c))
        ctx.saved["w"] = w
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        w = ctx.saved["w"]
        if w is None:
            return super().backward(ctx, dy)
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        n, c = dy.shape[0], self.input_shape[-1]
        np.multiply(w[:, :, None], dy.reshape(n, 1, c), out=dx)
        return dx


class GlobalMaxPooling1D(_GlobalPooling):
    """The largest value over the steps of each channel: (steps, c) -> (c,), or (1, c) with
    ``keepdims=True``; the gradient goes to the first largest step. Arguments as
    ``GlobalAveragePooling2D``; ValueError (at build) for an input that is not (steps, channels).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.GlobalMaxPooling1D()], input_shape=(3, 2), backend="numpy")
    >>> model.predict(np.array([[[1.0, 0.0], [2.0, 0.0], [6.0, 3.0]]]))
    array([[6., 3.]], dtype=float32)
    """

    rank = 1
    mode = "max"


MaxPool2D, AvgPool2D = MaxPooling2D, AveragePooling2D
MaxPool1D, AvgPool1D = MaxPooling1D, AveragePooling1D
GlobalAvgPool2D, GlobalMaxPool2D = GlobalAveragePooling2D, GlobalMaxPooling2D
GlobalAvgPool1D, GlobalMaxPool1D = GlobalAveragePooling1D, GlobalMaxPooling1D

POOLING_LAYERS = (MaxPooling2D, AveragePooling2D, MaxPooling1D, AveragePooling1D,
                  GlobalAveragePooling2D, GlobalMaxPooling2D, GlobalAveragePooling1D,
                  GlobalMaxPooling1D)
ALIASES = ("MaxPool2D", "AvgPool2D", "MaxPool1D", "AvgPool1D", "GlobalAvgPool2D",
           "GlobalMaxPool2D", "GlobalAvgPool1D", "GlobalMaxPool1D")
