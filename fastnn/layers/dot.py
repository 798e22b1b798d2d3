"""Keras' ``UnitNormalization`` and ``Dot`` (the merge layer of two inputs).

``UnitNormalization``: ``y = x * min(1 / ||x||, 1 / 1e-12)`` along the axes (Keras'
``ops.normalize(order=2, epsilon=1e-12)``: an rsqrt capped at 1/epsilon, so a zero vector stays
zero). ``Dot``: the batched product of two inputs over one axis each (``normalize=True``
first normalizes both along that axis, with Keras' epsilon 1e-7 there: a cosine similarity).
Both run on fastnn/_ext/_keras_attention.pyx (row normalization, batched GEMM; the cosine
similarity of two (batch, steps, features) inputs along the features, normalization and product
in one kernel call: cosine_forward/backward); the NumPy twin is
fastnn/backends/numpy_keras_attention.py.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot

UNIT_EPSILON = 1e-12      # keras.layers.UnitNormalization
DOT_EPSILON = 1e-7        # keras.layers.Dot(normalize=True): backend.epsilon()


def _axes_of(name: str, axis: Any) -> tuple[int, ...]:
    items = axis if isinstance(axis, (list, tuple)) else [axis]
    if not items:
        raise ValueError(f"{name} must name at least one axis. Received: {name}={axis!r}")
    return tuple(V.check_int(name, a) for a in items)


def _moved(x: FloatArray, axes: tuple[int, ...]) -> tuple[Any, tuple[int, ...], bool]:
    """x with ``axes`` (of the batched array) moved last (a view), the permutation, and whether
    it is x's own order."""
    rest = [a for a in range(x.ndim) if a not in axes]
    perm = (*rest, *axes)
    natural = perm == tuple(range(x.ndim))
    return (x if natural else np.transpose(x, perm)), perm, natural


def normalize_forward(ctx: Slot, key: str, x: FloatArray, axes: tuple[int, ...], eps: float,
                      y: FloatArray) -> tuple[Any, ...]:
    """y := x / max(||x||, eps) along ``axes`` (rows of the slot's buffers ``key``...); returns
    what the backward needs."""
    moved, perm, natural = _moved(x, axes)
    width = math.prod(x.shape[a] for a in axes)
    per = math.prod(moved.shape[1:]) // max(width, 1)
    if natural:
        rows, yr = x.reshape(-1, width), y.reshape(-1, width)
    else:                              # the axes gathered last, in the slot's buffers
        buf = ctx.rows_buffer(key + "x", moved.shape[1:])
        buf[...] = moved
        rows = buf.reshape(-1, width)
        yr = ctx.rows_buffer(key + "y", (per, width)).reshape(-1, width)
    inv = ctx.rows_buffer(key + "inv", (per,)).reshape(-1)
    ctx.be.unit_norm_forward(np.ascontiguousarray(rows), eps, yr, inv)
    if not natural:
        np.transpose(y, perm)[...] = yr.reshape(moved.shape)
    return yr, inv, perm, natural, key


def normalize_backward(ctx: Slot, saved: tuple[Any, ...], eps: float, dy: FloatArray,
                       dx: FloatArray) -> None:
    yr, inv, perm, natural, key = saved
    if natural:
        ctx.be.unit_norm_backward(yr, inv, eps, np.ascontiguousarray(dy).reshape(yr.shape),
                                  dx.reshape(yr.shape))
        return
    moved = np.transpose(dy, perm)
    dyr = ctx.rows_buffer(key + "dy", moved.shape[1:])
    dyr[...] = moved
    dxr = ctx.rows_buffer(key + "dx", moved.shape[1:])
    ctx.be.unit_norm_backward(yr, inv, eps, dyr.reshape(yr.shape), dxr.reshape(yr.shape))
    np.transpose(dx, perm)[...] = dxr


class UnitNormalization(Layer):
    """Scale each sample to unit L2 norm along ``axis``: ``y = x / max(||x||, 1e-12)``
    (Keras' layer; the norm over several axes at once when ``axis`` is a list).

    Gradient: ``dx = (dy - y <dy, y>) / ||x||`` (``dy / 1e-12`` where the cap held).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.UnitNormalization()], input_dim=2, backend="numpy")
    >>> model.predict(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]], dtype=float32)
    """

    supports_masking = True

    def __init__(self, axis: Any = -1, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.axis = _axes_of("axis", axis)

    def _full_axes(self, rank: int, shape: Any = None) -> tuple[int, ...]:
        """The axes in the batched array (Keras' numbering: 0 is the batch)."""
        full = sorted({a + rank if a < 0 else a for a in self.axis})
        if any(a < 1 or a >= rank for a in full) or len(full) != len(self.axis):
            raise ValueError(f"{self.name}: axis must name distinct axes of the input other "
                             f"than the batch axis (1 to {rank - 1}, or -1 to {1 - rank}). "
                             f"Received: axis={list(self.axis)} for samples of shape "
                             f"{shape or self.input_shape}")
        return tuple(full)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple):
            raise ValueError(f"{self.name} takes one input. Received: {input_shape}")
        self._full_axes(len(input_shape) + 1, input_shape)
        return input_shape

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        ctx.saved["n"] = normalize_forward(ctx, "n", x, self._full_axes(x.ndim), UNIT_EPSILON,
                                           y)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            dx = ctx.rows_buffer("dx", self.input_shape)
        normalize_backward(ctx, ctx.saved["n"], UNIT_EPSILON, dy, dx)
        return dx

    def get_config(self) -> dict[str, Any]:
        axis = list(self.axis) if len(self.axis) > 1 else self.axis[0]
        return {**super().get_config(), "axis": axis}

    def __repr__(self) -> str:
        return f"UnitNormalization(axis={self.get_config()['axis']})"


class Dot(Layer):
    """The product of two inputs over one axis each, per sample (Keras' ``Dot``): inputs
    (n, *s1) and (n, *s2) with ``s1[a1] == s2[a2]`` give (n, *s1 without a1, *s2 without a2),
    or (n, 1) when nothing remains (two vectors).

    Parameters
    ----------
    axes : int or (int, int)
        The axis of each input (Keras' numbering: 1 is the first after the batch; negative
        counts from the end); an int is the same axis for both.
    normalize : bool, default False
        L2-normalize both inputs along those axes first (a cosine similarity).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> a, b = fnn.Input((2,)), fnn.Input((2,))
    >>> model = fnn.Model([a, b], fnn.Dot(axes=1)([a, b]), backend="numpy")
    >>> model.predict([np.array([[1.0, 2.0]]), np.array([[3.0, 4.0]])])
    array([[11.]], dtype=float32)
    """

    n_inputs = None

    def __init__(self, axes: Any, normalize: bool = False, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2:
                raise ValueError(f"axes must be an int or two ints (one per input). Received: "
                                 f"axes={axes!r}")
            self.axes: Any = tuple(V.check_int("axes", a) for a in axes)
        elif isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
            self.axes = int(axes)
        else:
            raise TypeError(f"axes must be an int or two ints. Received: "
                            f"axes={V._describe(axes)}")
        self.normalize = V.check_bool("normalize", normalize)

    def _pair(self, shapes: list[tuple[int, ...]]) -> tuple[int, int]:
        """Each input's axis in its batched array (1 .. rank-1)."""
        ranks = [len(s) + 1 for s in shapes]
        given = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        pair = tuple(a % r if a < 0 else a for a, r in zip(given, ranks))
        if any(a < 1 or a >= r for a, r in zip(pair, ranks)):
            raise ValueError(f"{self.name}: axes must be axes of the inputs other than the "
                             f"batch axis. Received: axes={self.axes!r} for input shapes "
                             f"{[(None, *s) for s in shapes]}")
        return pair[0], pair[1]

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, list) or len(input_shape) != 2:
            raise ValueError(f"{self.name} takes a list of exactly two inputs. Received: "
                             f"input shape {input_shape}")
        s1, s2 = input_shape
        a1, a2 = self._pair(input_shape)
        if s1[a1 - 1] != s2[a2 - 1]:
            raise ValueError(f"{self.name}: the axes must have one length. Received: axes="
                             f"{self.axes!r}, input shapes {[(None, *s) for s in input_shape]}"
                             f" (lengths {s1[a1 - 1]} and {s2[a2 - 1]})")
        out = (*s1[:a1 - 1], *s1[a1:], *s2[:a2 - 1], *s2[a2:])
        return out or (1,)

    def _cosine(self, xs: list[FloatArray]) -> bool:
        """Whether the call runs on cosine_forward/backward: two (batch, steps, features)
        inputs normalized and multiplied along their last axes."""
        return (self.normalize and all(len(s) == 2 for s in self.input_shape)
                and self._pair(self.input_shape) == (2, 2) and xs[0].size > 0 and xs[1].size > 0)

    def forward(self, ctx: Slot, xs: list[FloatArray], training: bool) -> FloatArray:
        a1, a2 = self._pair(self.input_shape)
        x, z = xs
        ctx.saved["cosine"] = self._cosine(xs)
        if ctx.saved["cosine"]:                   # both normalized and multiplied in one call
            x, z = np.ascontiguousarray(x), np.ascontiguousarray(z)
            xn = ctx.rows_buffer("xn", self.input_shape[0])
            zn = ctx.rows_buffer("zn", self.input_shape[1])
            invx = ctx.rows_buffer("invx", self.input_shape[0][:1])
            invz = ctx.rows_buffer("invz", self.input_shape[1][:1])
            y = ctx.rows_buffer("y", self.output_shape)
            ctx.be.cosine_forward(x, z, DOT_EPSILON, xn, zn, invx, invz, y)
            ctx.saved.update(xn=xn, zn=zn, invx=invx, invz=invz)
            return y
        if self.normalize:
            xn = ctx.rows_buffer("xn", self.input_shape[0])
            zn = ctx.rows_buffer("zn", self.input_shape[1])
            ctx.saved["nx"] = normalize_forward(ctx, "nx", x, (a1,), DOT_EPSILON, xn)
            ctx.saved["nz"] = normalize_forward(ctx, "nz", z, (a2,), DOT_EPSILON, zn)
            x, z = xn, zn
        # X (n, M, K) with the axis last, Z (n, K, N) with it first after the batch
        X = self._gathered(ctx, "X", np.moveaxis(x, a1, -1), x.ndim - 1)
        Z = self._gathered(ctx, "Z", np.moveaxis(z, a2, 1), 2)
        y = ctx.rows_buffer("y", self.output_shape)
        ctx.be.batched_matmul(X, Z, y.reshape(X.shape[0], X.shape[1], Z.shape[2]))
        ctx.saved.update(X=X, Z=Z)
        return y

    @staticmethod
    def _gathered(ctx: Slot, key: str, view: Any, split: int) -> Any:
        """``view`` as a C-contiguous (n, rows, cols) array, the axes before ``split`` (after
        the batch) as rows: the array itself when it is one already, else a slot buffer."""
        n = view.shape[0]
        shape = (n, math.prod(view.shape[1:split]), math.prod(view.shape[split:]))
        if view.flags.c_contiguous:
            return view.reshape(shape)
        buf = ctx.rows_buffer(key, shape[1:])
        buf.reshape(view.shape)[...] = view
        return buf

    def backward(self, ctx: Slot, dy: FloatArray) -> list[FloatArray]:
        if ctx.saved["cosine"]:
            xn, zn = ctx.saved["xn"], ctx.saved["zn"]
            dx, dz = (self._written_in(ctx, i, a) for i, a in enumerate((xn, zn)))
            ctx.be.cosine_backward(xn, zn, ctx.saved["invx"], ctx.saved["invz"], DOT_EPSILON,
                                   np.ascontiguousarray(dy), dx, dz)
            for i, d in enumerate((dx, dz)):
                target = ctx.dx_target(i)
                if target is not None and target is not d:
                    target[...] = d
            return [dx, dz]
        a1, a2 = self._pair(self.input_shape)
        X, Z = ctx.saved["X"], ctx.saved["Z"]
        n = X.shape[0]
        g = np.ascontiguousarray(dy).reshape(n, X.shape[1], Z.shape[2])
        dX, dZ = ctx.rows_buffer("dX", X.shape[1:]), ctx.rows_buffer("dZ", Z.shape[1:])
        ctx.be.batched_matmul(g, Z, dX, trans_b=True)        # dX = g Z^T
        ctx.be.batched_matmul(X, g, dZ, trans_a=True)        # dZ = X^T g
        dxs = []
        for i, (d, src, dst) in enumerate(((dX, -1, a1), (dZ, 1, a2))):
            target = ctx.dx_target(i)
            if target is None:
                target = ctx.rows_buffer(f"dx{i}", self.input_shape[i])
            if self.normalize:
                grad = ctx.rows_buffer(f"dn{i}", self.input_shape[i])
                np.moveaxis(grad, dst, src)[...] = d.reshape(np.moveaxis(grad, dst, src).shape)
                normalize_backward(ctx, ctx.saved["nx" if i == 0 else "nz"], DOT_EPSILON,
                                   grad, target)
            else:
                moved = np.moveaxis(target, dst, src)
                moved[...] = d.reshape(moved.shape)
            dxs.append(target)
        return dxs

    @staticmethod
    def _written_in(ctx: Slot, i: int, like: Any) -> Any:
        """The engine's target for input i's gradient when it is a C-contiguous array shaped as
        ``like``, else a slot buffer."""
        target = ctx.dx_target(i)
        if (target is not None and target.shape == like.shape and target.dtype == like.dtype
                and target.flags.c_contiguous):
            return target
        return ctx.rows_buffer(f"dx{i}", like.shape[1:])

    def get_config(self) -> dict[str, Any]:
        axes = self.axes if isinstance(self.axes, int) else list(self.axes)
        return {**super().get_config(), "axes": axes, "normalize": self.normalize}

    def __repr__(self) -> str:
        return f"Dot(axes={self.get_config()['axes']}, normalize={self.normalize})"
