"""Upsampling layers: ``UpSampling2D`` (images) and ``UpSampling1D`` (sequences), Keras' names
and arguments, nearest-neighbour.

Each input position is repeated ``size`` times along each axis: ``y[i*sh + a, j*sw + q, :] =
x[i, j, :]``. The gradient adds each block of the output's gradient back into its position, in
a fixed order. With a ``Conv2D`` after it, this is the other common way to grow images in a
generator (besides ``Conv2DTranspose``).

Kernels: ``upsample2d_forward`` / ``upsample2d_backward`` (fastnn/_ext/_layer_ops.pyx, threads
over rows of the input; their NumPy twins in fastnn/backends/numpy_layer_ops.py add in the same
order, so both backends give the same bits). ``UpSampling1D`` runs as a one-column
``UpSampling2D``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot
from fastnn.layers.convolutional import check_channels_last, check_spatial_input, conv_tuple


class _UpSampling(Layer):
    rank = 2

    def __init__(self, size: Any, name: Optional[str], trainable: bool) -> None:
        super().__init__(name=name, trainable=trainable)
        self.size = conv_tuple("size", size, self.rank)

    def compute_output_shape(self, input_shape: Any) -> Any:
        check_spatial_input(self, input_shape)
        sizes = tuple(n * s for n, s in zip(input_shape[:-1], self.size))
        if max(sizes) >= 2**31:
            raise ValueError(f"{self.name}: an input of shape {input_shape} upsampled by "
                             f"{list(self.size)} has {sizes} positions: each must be below "
                             f"2**31")
        return (*sizes, input_shape[-1])

    def _shapes(self, n: int) -> tuple[tuple[int, ...], tuple[int, ...], int, int]:
        """The 2-D kernels' view: (n, h, w, c) in, (n, h*sh, w*sw, c) out, and (sh, sw)."""
        if self.rank == 1:
            (steps, c), (out_steps, _) = self.input_shape, self.output_shape
            return (n, steps, 1, c), (n, out_steps, 1, c), self.size[0], 1
        sh, sw = self.size
        return (n, *self.input_shape), (n, *self.output_shape), sh, sw

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        small, big, sh, sw = self._shapes(x.shape[0])
        ctx.be.upsample2d_forward(np.ascontiguousarray(x).reshape(small), sh, sw,
                                  y.reshape(big))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        small, big, sh, sw = self._shapes(dy.shape[0])
        ctx.be.upsample2d_backward(np.ascontiguousarray(dy).reshape(big), sh, sw,
                                   dx.reshape(small))
        return dx

    def get_config(self) -> dict[str, Any]:
        size = self.size[0] if self.rank == 1 else list(self.size)
        return {**super().get_config(), "size": size}

    def __repr__(self) -> str:
        size = self.size[0] if self.rank == 1 else self.size
        return f"{type(self).__name__}({size})"


class UpSampling2D(_UpSampling):
    """Repeat each pixel ``size`` = (rows, columns) times: (n, h, w, c) -> (n, h*rows, w*cols, c).

    Parameters
    ----------
    size : int or (int, int), default (2, 2)
        The repeats along the height and the width, each >= 1.
    data_format : None or "channels_last"
        fastnn is channels-last only.
    interpolation : {"nearest"}, default "nearest"
        Keras' other modes ("bilinear", ...) are not implemented and are refused.
    name, trainable
        See ``Layer``.

    Raises
    ------
    ValueError
        For a size below 1, channels-first data or another interpolation.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.UpSampling2D(2)], input_shape=(2, 2, 1), backend="numpy")
    >>> model.predict(np.arange(4.0).reshape(1, 2, 2, 1))[0, :, :, 0]
    array([[0., 0., 1., 1.],
           [0., 0., 1., 1.],
           [2., 2., 3., 3.],
           [2., 2., 3., 3.]], dtype=float32)
    """

    rank = 2

    def __init__(self, size: Any = (2, 2), data_format: Optional[str] = None,
                 interpolation: str = "nearest", name: Optional[str] = None,
                 trainable: bool = True) -> None:
        check_channels_last(data_format)
        if interpolation != "nearest":
            raise ValueError(f"UpSampling2D implements interpolation='nearest' only. Received: "
                             f"interpolation={V._describe(interpolation)}")
        super().__init__(size, name, trainable)


class UpSampling1D(_UpSampling):
    """Repeat each step ``size`` times: (n, steps, c) -> (n, steps * size, c).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.UpSampling1D(3)], input_shape=(2, 1), backend="numpy")
    >>> model.predict(np.array([[[1.0], [2.0]]]))[0, :, 0]
    array([1., 1., 1., 2., 2., 2.], dtype=float32)
    """

    rank = 1

    def __init__(self, size: int = 2, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(size, name, trainable)


__all__ = ["UpSampling1D", "UpSampling2D"]
