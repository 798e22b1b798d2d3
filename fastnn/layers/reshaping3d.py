"""The 3-D layers that move values without weights, Keras' names and arguments:
``UpSampling3D`` (nearest-neighbour), ``ZeroPadding3D`` and ``Cropping3D`` on volumes
(n, depth, height, width, channels).

Kernels: the 2-D ones of fastnn/layers/reshaping.py (``upsample2d_forward/backward`` and
``copy_window``, compiled in fastnn/_ext/_layer_ops.pyx, NumPy twins in
fastnn/backends/numpy_layer_ops.py). Upsampling repeats each depth slice (the 2-D kernel on
(n, d, 1, h*w*c) with sizes (sd, 1)), then each plane's positions (on (n*D, h, w, c)); its
gradient sums the planes' blocks, then the depth copies, in a fixed order. Padding and cropping
copy each depth slice's window with the 2-D kernel (a sample's slices in one call, every
sample's when the depth is neither padded nor cropped) and zero the depth slices outside it.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn.layers.base import FloatArray, Slot
from fastnn.layers.convolutional import check_channels_last, check_spatial_input
from fastnn.layers.reshaping import _UpSampling, _Window, _pairs


class UpSampling3D(_UpSampling):
    """Repeat each position ``size`` = (depth, rows, columns) times: (n, d, h, w, c) ->
    (n, d*sd, h*sh, w*sw, c) (Keras' default (2, 2, 2)).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.UpSampling3D((2, 1, 2))], input_shape=(1, 1, 2, 1),
    ...                        backend="numpy")
    >>> model.predict(np.array([1.0, 2.0]).reshape(1, 1, 1, 2, 1))[0, :, 0, :, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.]], dtype=float32)
    """

    rank = 3

    def __init__(self, size: Any = (2, 2, 2), data_format: Optional[str] = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        check_channels_last(data_format)
        super().__init__(size, name, trainable)

    def _views(self, n: int) -> tuple[tuple[int, ...], ...]:
        """(x by depth slices, the depth-repeated scratch by slices, the same as planes, y as
        planes) for the 2-D kernels."""
        d, h, w, c = self.input_shape
        big_d = self.output_shape[0]
        return ((n, d, 1, h * w * c), (n, big_d, 1, h * w * c), (n * big_d, h, w, c),
                (n * big_d, *self.output_shape[1:]))

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        n = x.shape[0]
        xd, td, tp, yp = self._views(n)
        t = ctx.rows_buffer("depths", (self.output_shape[0], *self.input_shape[1:]))
        sd, sh, sw = self.size
        ctx.be.upsample2d_forward(np.ascontiguousarray(x).reshape(xd), sd, 1, t.reshape(td))
        ctx.be.upsample2d_forward(t.reshape(tp), sh, sw, y.reshape(yp))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        n = dy.shape[0]
        xd, td, tp, yp = self._views(n)
        dt = ctx.rows_buffer("ddepths", (self.output_shape[0], *self.input_shape[1:]))
        sd, sh, sw = self.size
        ctx.be.upsample2d_backward(np.ascontiguousarray(dy).reshape(yp), sh, sw, dt.reshape(tp))
        ctx.be.upsample2d_backward(dt.reshape(td), sd, 1, dx.reshape(xd))
        return dx


class _Window3D(_Window):
    """Padding and cropping of volumes: the 2-D window copy on each depth slice."""

    rank = 3

    def _slices(self, src: FloatArray, src_front: int, dst: FloatArray, dst_front: int,
                depth: int, src_at: tuple[int, int], dst_at: tuple[int, int],
                size: tuple[int, int], zero_rest: bool, be: Any) -> None:
        """dst[:, dst_front + z] := src[:, src_front + z]'s window, z < depth; with
        ``zero_rest``, every other element of dst := 0."""
        if src.shape[1] == dst.shape[1] == depth:             # all slices of all samples
            be.copy_window(src.reshape(-1, *src.shape[2:]), *src_at,
                           dst.reshape(-1, *dst.shape[2:]), *dst_at, *size, zero_rest)
            return
        if zero_rest:
            dst[:, :dst_front] = 0
            dst[:, dst_front + depth:] = 0
        for b in range(src.shape[0]):         # a sample's slices are one contiguous block
            be.copy_window(src[b, src_front:src_front + depth], *src_at,
                           dst[b, dst_front:dst_front + depth], *dst_at, *size, zero_rest)


class ZeroPadding3D(_Window3D):
    """Zeros around each volume: ``padding`` = 1 (all sides), (depth, rows, columns), or
    ((front, back), (top, bottom), (left, right)), as Keras.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.ZeroPadding3D(((1, 0), (0, 0), (0, 1)))],
    ...                        input_shape=(1, 1, 1, 1), backend="numpy")
    >>> model.predict(np.ones((1, 1, 1, 1, 1)))[0, :, 0, :, 0]
    array([[0., 0.],
           [1., 0.]], dtype=float32)
    """

    def __init__(self, padding: Any = (1, 1, 1), data_format: Optional[str] = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        check_channels_last(data_format)
        super().__init__(name=name, trainable=trainable)
        self.pairs = _pairs("padding", padding, self.rank)

    def compute_output_shape(self, input_shape: Any) -> Any:
        check_spatial_input(self, input_shape)
        sizes = tuple(n + a + b for n, (a, b) in zip(input_shape[:-1], self.pairs))
        if max(sizes) >= 2**31:
            raise ValueError(f"{self.name}: padded sizes {sizes} must be below 2**31")
        return (*sizes, input_shape[-1])

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        d, h, w, _ = self.input_shape
        (front, _), (top, _), (left, _) = self.pairs
        self._slices(np.ascontiguousarray(x), 0, y, front, d, (0, 0), (top, left), (h, w), True,
                     ctx.be)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        d, h, w, _ = self.input_shape
        (front, _), (top, _), (left, _) = self.pairs
        self._slices(np.ascontiguousarray(dy), front, dx, 0, d, (top, left), (0, 0), (h, w),
                     False, ctx.be)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": self._config_value()}


class Cropping3D(_Window3D):
    """Cut slices, rows and columns off each volume: ``cropping`` = 1 (all sides), (depth,
    rows, columns), or ((front, back), (top, bottom), (left, right)), as Keras.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Cropping3D(((1, 0), (0, 0), (1, 1)))],
    ...                        input_shape=(2, 1, 3, 1), backend="numpy")
    >>> model.predict(np.arange(6.0).reshape(1, 2, 1, 3, 1)).ravel()
    array([4.], dtype=float32)
    """

    def __init__(self, cropping: Any = ((1, 1), (1, 1), (1, 1)),
                 data_format: Optional[str] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        check_channels_last(data_format)
        super().__init__(name=name, trainable=trainable)
        self.pairs = _pairs("cropping", cropping, self.rank)

    def compute_output_shape(self, input_shape: Any) -> Any:
        check_spatial_input(self, input_shape)
        sizes = tuple(n - a - b for n, (a, b) in zip(input_shape[:-1], self.pairs))
        if min(sizes) < 1:
            raise ValueError(f"{self.name}: cropping {self._config_value()} leaves nothing of "
                             f"an input of shape {input_shape}")
        return (*sizes, input_shape[-1])

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        d, h, w, _ = self.output_shape
        (front, _), (top, _), (left, _) = self.pairs
        self._slices(np.ascontiguousarray(x), front, y, 0, d, (top, left), (0, 0), (h, w), False,
                     ctx.be)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        d, h, w, _ = self.output_shape
        (front, _), (top, _), (left, _) = self.pairs
        self._slices(np.ascontiguousarray(dy), 0, dx, front, d, (0, 0), (top, left), (h, w),
                     True, ctx.be)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cropping": self._config_value()}


__all__ = ["UpSampling3D", "ZeroPadding3D", "Cropping3D"]
