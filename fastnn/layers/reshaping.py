"""Layers that move values without weights, Keras' names and arguments: ``UpSampling2D/1D``
(nearest-neighbour), ``ZeroPadding2D/1D``, ``Cropping2D/1D`` and ``RepeatVector``.

Padding and cropping copy a window (``copy_window`` in fastnn/_ext/_layer_ops.pyx, zeros
around it where asked); each one's backward is the other's forward. ``RepeatVector(r)`` is an
upsampling of a one-step sequence (its gradient sums the r copies in order).

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


def _pairs(name: str, value: Any, rank: int) -> tuple[tuple[int, int], ...]:
    """Keras' padding / cropping forms as ((before, after), ...) per spatial axis: an int
    (everywhere), one int per axis (both sides), or a (before, after) pair per axis (rank 1:
    an int or one pair; rank 3 as rank 2 with depth first)."""
    def side(v: Any) -> int:
        n = V.check_int(name, v, low=0)
        if n >= 2**31:
            raise ValueError(f"{name} must be below 2**31. Received: {name}={V._describe(value)}")
        return n
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return ((side(value), side(value)),) * rank
    items = list(value) if isinstance(value, (tuple, list)) else None
    if rank == 1 and items is not None and len(items) == 2 and all(
            isinstance(v, (int, np.integer)) for v in items):
        return ((side(items[0]), side(items[1])),)
    if rank >= 2 and items is not None and len(items) == rank:
        out = []
        for v in items:
            if isinstance(v, (tuple, list)) and len(v) == 2:
                out.append((side(v[0]), side(v[1])))
            elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
                out.append((side(v), side(v)))
            else:
                break
        else:
            return tuple(out)
    forms = {1: "an int or a pair (before, after)",
             2: "an int, a pair (rows, columns) or ((top, bottom), (left, right))"}.get(
        rank, "an int, a triple (depth, rows, columns) or ((front, back), (top, bottom), "
              "(left, right))")
    raise ValueError(f"{name} must be {forms} of integers >= 0. Received: "
                     f"{name}={V._describe(value)}")


class _Window(Layer):
    """What padding and cropping share: the 2-D kernel's view and the window's place."""

    rank = 2

    def _views(self, n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if self.rank == 1:
            (a, c), (b, _) = self.input_shape, self.output_shape
            return (n, a, 1, c), (n, b, 1, c)
        return (n, *self.input_shape), (n, *self.output_shape)

    def _pairs2(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return self.pairs if self.rank == 2 else (self.pairs[0], (0, 0))   # type: ignore

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._config_value()!r})"

    def _config_value(self) -> Any:
        pairs = [list(p) for p in self.pairs]                     # type: ignore[attr-defined]
        return pairs[0] if self.rank == 1 else pairs


class _ZeroPadding(_Window):
    def __init__(self, padding: Any, name: Optional[str], trainable: bool) -> None:
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
        small, big = self._views(x.shape[0])
        (top, _), (left, _) = self._pairs2()
        ctx.be.copy_window(np.ascontiguousarray(x).reshape(small), 0, 0, y.reshape(big), top,
                           left, small[1], small[2], True)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        small, big = self._views(dy.shape[0])
        (top, _), (left, _) = self._pairs2()
        ctx.be.copy_window(np.ascontiguousarray(dy).reshape(big), top, left, dx.reshape(small),
                           0, 0, small[1], small[2], False)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": self._config_value()}


class ZeroPadding2D(_ZeroPadding):
    """Zeros around each image: ``padding`` = 1 (all sides), (rows, columns), or
    ((top, bottom), (left, right)), as Keras.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.ZeroPadding2D(((1, 0), (0, 2)))], input_shape=(1, 1, 1),
    ...                        backend="numpy")
    >>> model.predict(np.ones((1, 1, 1, 1)))[0, :, :, 0]
    array([[0., 0., 0.],
           [1., 0., 0.]], dtype=float32)
    """

    rank = 2

    def __init__(self, padding: Any = (1, 1), data_format: Optional[str] = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        check_channels_last(data_format)
        super().__init__(padding, name, trainable)


class ZeroPadding1D(_ZeroPadding):
    """Zeros before and after each sequence: ``padding`` = 1 or (before, after)."""

    rank = 1

    def __init__(self, padding: Any = 1, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(padding, name, trainable)


class _Cropping(_Window):
    def __init__(self, cropping: Any, name: Optional[str], trainable: bool) -> None:
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
        big, small = self._views(x.shape[0])
        (top, _), (left, _) = self._pairs2()
        ctx.be.copy_window(np.ascontiguousarray(x).reshape(big), top, left, y.reshape(small),
                           0, 0, small[1], small[2], False)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        big, small = self._views(dy.shape[0])
        (top, _), (left, _) = self._pairs2()
        ctx.be.copy_window(np.ascontiguousarray(dy).reshape(small), 0, 0, dx.reshape(big), top,
                           left, small[1], small[2], True)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cropping": self._config_value()}


class Cropping2D(_Cropping):
    """Cut rows and columns off each image: ``cropping`` = 1 (all sides), (rows, columns), or
    ((top, bottom), (left, right)), as Keras.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Cropping2D(((1, 0), (0, 1)))], input_shape=(2, 3, 1),
    ...                        backend="numpy")
    >>> model.predict(np.arange(6.0).reshape(1, 2, 3, 1))[0, :, :, 0]
    array([[3., 4.]], dtype=float32)
    """

    rank = 2

    def __init__(self, cropping: Any = ((0, 0), (0, 0)), data_format: Optional[str] = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        check_channels_last(data_format)
        super().__init__(cropping, name, trainable)


class Cropping1D(_Cropping):
    """Cut steps off each sequence: ``cropping`` = 1 or (before, after)."""

    rank = 1

    def __init__(self, cropping: Any = (1, 1), name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(cropping, name, trainable)


class RepeatVector(Layer):
    """(n, features) -> (n, n_repeats, features): each sample repeated as a sequence (an
    encoder's summary fed to every step of a decoder, as in Keras' seq2seq examples).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.RepeatVector(3)], input_dim=2, backend="numpy")
    >>> model.predict(np.array([[1.0, 2.0]]))[0]
    array([[1., 2.],
           [1., 2.],
           [1., 2.]], dtype=float32)
    """

    def __init__(self, n: int, name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.n = V.check_positive_int("n", n)
        if self.n >= 2**31:
            raise ValueError(f"n must be below 2**31. Received: n={n}")

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple) or len(input_shape) != 1:
            raise ValueError(f"{self.name} takes samples of one dimension (features,). "
                             f"Received: input shape {input_shape}")
        return (self.n, input_shape[0])

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        n, f = x.shape
        ctx.be.upsample2d_forward(np.ascontiguousarray(x).reshape(n, 1, 1, f), self.n, 1,
                                  y.reshape(n, self.n, 1, f))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        n, f = dx.shape
        ctx.be.upsample2d_backward(np.ascontiguousarray(dy).reshape(n, self.n, 1, f), self.n, 1,
                                   dx.reshape(n, 1, 1, f))
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n": self.n}

    def __repr__(self) -> str:
        return f"RepeatVector({self.n})"


__all__ = ["UpSampling1D", "UpSampling2D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D",
           "Cropping2D", "RepeatVector"]
