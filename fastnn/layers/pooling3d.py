"""3-D pooling (channels-last volumes (n, depth, height, width, channels)) with Keras' names,
arguments and output sizes: ``MaxPooling3D``, ``AveragePooling3D`` (windows) and
``GlobalMaxPooling3D``, ``GlobalAveragePooling3D`` (all positions), with the short aliases
``MaxPool3D``, ``AvgPool3D``, ``GlobalMaxPool3D``, ``GlobalAvgPool3D``.

Kernels: a 3-D window is a box, the product of a depth range and a (height, width) window, so
both poolings are separable and run as two passes of the backends' 2-D pooling kernels (compiled
or their NumPy twins): the (height, width) window on each depth slice, (n*d, h, w, c), then the
depth window on that result viewed as (n, d, oh*ow, c) with a (pd, 1) pool. The largest of maxima
is the box's maximum, and the first in window order wins ties as in the 2-D kernels (the lowest
depth, then the first (row, column) within it); the input elements of a box are the product of
its depth and plane counts, so the mean of the planes' means is the box's mean, with
``padding="same"`` too. The backward passes are the two kernels' backward passes in reverse.
Global pooling is the 2-D layers' on all d*h*w positions.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn.layers.base import FloatArray, Slot
from fastnn.layers.pooling import _GlobalPooling, _Pooling


class _Pooling3D(_Pooling):
    """The two-pass windowed pooling of the 3-D layers."""

    rank = 3

    def build(self, input_shape: Any, dtype: Any) -> Any:
        out = super().build(input_shape, dtype)
        d, h, w, c = input_shape
        od, oh, ow, _ = out
        _, (front, top, left) = self._geometry(input_shape[:-1])
        pd, ph, pw = self.pool_size
        sd, sh, sw = self.strides
        self._plane = ((d, h, w, c), (d, oh, ow, c), (ph, pw, sh, sw, top, left))
        self._depth = ((d, oh * ow, c), (od, oh * ow, c), (pd, 1, sd, 1, front, 0))
        return out

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        n = x.shape[0]
        (x1, t1, a1), (x2, y2, a2) = self._plane, self._depth
        t = ctx.rows_buffer("planes", t1)
        xs = np.ascontiguousarray(x).reshape(n * x1[0], *x1[1:])
        ts = t.reshape(n * t1[0], *t1[1:])
        if self.mode == "max":
            am1 = ctx.saved["argmax_planes"] = ctx.rows_buffer("argmax_planes", t1, np.int64)
            am2 = ctx.saved["argmax"] = ctx.rows_buffer("argmax", y2, np.int64)
            ctx.be.maxpool2d_forward(xs, *a1, ts, am1.reshape(ts.shape))
            ctx.be.maxpool2d_forward(t.reshape(n, *x2), *a2, y.reshape(n, *y2), am2)
        else:
            ctx.be.avgpool2d_forward(xs, *a1, ts)
            ctx.be.avgpool2d_forward(t.reshape(n, *x2), *a2, y.reshape(n, *y2))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        n = dy.shape[0]
        (x1, t1, a1), (x2, y2, a2) = self._plane, self._depth
        dt = ctx.rows_buffer("dplanes", t1)
        dys = np.ascontiguousarray(dy).reshape(n, *y2)
        dts = dt.reshape(n * t1[0], *t1[1:])
        dxs = dx.reshape(n * x1[0], *x1[1:])
        if self.mode == "max":
            ctx.be.maxpool2d_backward(dys, ctx.saved["argmax"], dt.reshape(n, *x2))
            ctx.be.maxpool2d_backward(dts, ctx.saved["argmax_planes"].reshape(dts.shape), dxs)
        else:
            ctx.be.avgpool2d_backward(dys, *a2, dt.reshape(n, *x2))
            ctx.be.avgpool2d_backward(dts, *a1, dxs)
        return dx


class MaxPooling3D(_Pooling3D):
    """The largest value of each ``pool_size`` box, per channel, every ``strides`` positions
    (ties: the gradient goes to the first one in (depth, row, column) order).

    Parameters
    ----------
    pool_size : int or (int, int, int), default (2, 2, 2)
    strides : int or (int, int, int), default None (= pool_size)
    padding : {"valid", "same"}, default "valid"
        ``same``: boxes may reach past the input (output size ceil(size / stride)); those
        positions are ignored.
    data_format : None or "channels_last"
    name, trainable
        See ``Layer``.

    Raises
    ------
    ValueError
        For sizes below 1, an unknown padding, channels-first data, or (at build) an input that
        is not (depth, height, width, channels) or a pool that does not fit it with "valid".
    TypeError
        For sizes that are not integers.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.MaxPooling3D()], input_shape=(2, 2, 2, 1), backend="numpy")
    >>> model.predict(np.arange(8.0).reshape(1, 2, 2, 2, 1)).ravel()
    array([7.], dtype=float32)
    """

    def __init__(self, pool_size: Any = (2, 2, 2), strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(pool_size, strides, padding, data_format, name, trainable)


class AveragePooling3D(_Pooling3D):
    """The mean of each ``pool_size`` box, per channel, every ``strides`` positions
    (``padding="same"``: over the box's input elements only, as in Keras).

    Parameters and errors as ``MaxPooling3D``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.AveragePooling3D()], input_shape=(2, 2, 2, 1),
    ...                        backend="numpy")
    >>> model.predict(np.arange(8.0).reshape(1, 2, 2, 2, 1)).ravel()
    array([3.5], dtype=float32)
    """

    mode = "avg"

    def __init__(self, pool_size: Any = (2, 2, 2), strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(pool_size, strides, padding, data_format, name, trainable)


class GlobalAveragePooling3D(_GlobalPooling):
    """The mean over all depth, height and width positions, per channel: (n, c), or
    (n, 1, 1, 1, c) with ``keepdims=True``. Arguments and errors as
    ``GlobalAveragePooling2D``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.GlobalAveragePooling3D()], input_shape=(2, 1, 2, 1),
    ...                        backend="numpy")
    >>> model.predict(np.array([1.0, 2.0, 3.0, 6.0]).reshape(1, 2, 1, 2, 1))
    array([[3.]], dtype=float32)
    """

    rank = 3


class GlobalMaxPooling3D(_GlobalPooling):
    """The largest value over all depth, height and width positions, per channel: (n, c), or
    (n, 1, 1, 1, c) with ``keepdims=True``; the gradient goes to the first largest position.
    Arguments and errors as ``GlobalAveragePooling2D``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.GlobalMaxPooling3D()], input_shape=(2, 1, 2, 1),
    ...                        backend="numpy")
    >>> model.predict(np.array([1.0, 2.0, 3.0, 6.0]).reshape(1, 2, 1, 2, 1))
    array([[6.]], dtype=float32)
    """

    rank = 3
    mode = "max"


MaxPool3D, AvgPool3D = MaxPooling3D, AveragePooling3D
GlobalAvgPool3D, GlobalMaxPool3D = GlobalAveragePooling3D, GlobalMaxPooling3D
POOLING3D_LAYERS = (MaxPooling3D, AveragePooling3D, GlobalAveragePooling3D, GlobalMaxPooling3D)
ALIASES3D = ("MaxPool3D", "AvgPool3D", "GlobalAvgPool3D", "GlobalMaxPool3D")
__all__ = ["MaxPooling3D", "AveragePooling3D", "GlobalAveragePooling3D", "GlobalMaxPooling3D",
           *ALIASES3D]
