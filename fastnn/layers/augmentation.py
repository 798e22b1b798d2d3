"""Keras' image augmentation layers: ``RandomFlip``, ``RandomRotation``, ``RandomZoom``,
``RandomTranslation``, ``RandomContrast``.

A network that sees each training image a little turned, shifted, zoomed or flipped learns
what does not change under those moves, and overfits a small dataset less. These layers do it
inside the model, on each training batch (a new draw each pass); in inference they pass their
input unchanged, so ``predict`` sees the images as they are. Put them first, as Keras'
tutorials do: ``Sequential([RandomFlip("horizontal"), RandomRotation(0.1), Conv2D(...)])``.

The geometric ones move each image (n, height, width, channels) by an affine map in Keras'
convention, resampled by the compiled kernel ``affine_resample`` (nearest or bilinear, five
ways to fill what comes from outside the image; fastnn/_ext/_layer_ops.pyx), whose backward
pass is its adjoint, so they also work inside a network. Each pass's parameters (an angle, a
zoom per image...) come from a generator seeded by (seed, the layer's count of training
passes): the same on both backends and at any thread count, and saved with the model.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Slot
from fastnn.layers.regularization import SeededRandom

FILL_MODES = ("constant", "nearest", "wrap", "reflect", "mirror")   # the kernel's codes 0..4
INTERPOLATIONS = ("nearest", "bilinear")


def _factor_range(name: str, factor: Any, low: float = -1.0, high: float = 1.0,
                  low_open: bool = False) -> tuple[float, float]:
    """Keras' factor argument: a number f (the range (-|f|, |f|)) or a pair (lower, upper),
    both ends within [low, high] (``low_open``: above low)."""
    if isinstance(factor, (list, tuple)):
        if len(factor) != 2:
            raise ValueError(f"{name} must be a number or a pair (lower, upper). Received: "
                             f"{name}={V._describe(factor)}")
        lower, upper = sorted(V.check_float(name, f) for f in factor)
    else:
        upper = abs(V.check_float(name, factor))
        lower = -upper
    if lower < low or (low_open and lower == low) or upper > high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be in {interval} (a number f: -f and f). Received: "
                         f"{name}={V._describe(factor)}")
    return lower, upper


def check_image(layer: Any, input_shape: Any) -> Any:
    """The input shape of an image layer: (height, width, channels), or ValueError."""
    if not isinstance(input_shape, tuple) or len(input_shape) != 3:
        raise ValueError(f"{layer.name} takes images of shape (height, width, channels) per "
                         f"sample. Received: input shape {input_shape}")
    return input_shape


class _RandomAffine(SeededRandom):
    """What the geometric layers share: the draw, the kernel's call, the config."""

    supports_masking = False

    def __init__(self, fill_mode: str, interpolation: str, seed: Optional[int],
                 fill_value: float, data_format: Optional[str], name: Optional[str],
                 trainable: bool) -> None:
        from fastnn.layers.convolutional import check_channels_last
        check_channels_last(data_format)
        self.fill_mode = V.check_choice("fill_mode", fill_mode, FILL_MODES)
        self.interpolation = V.check_choice("interpolation", interpolation, INTERPOLATIONS)
        self.fill_value = V.check_float("fill_value", fill_value)
        super().__init__(seed, name, trainable)

    @property
    def draws(self) -> bool:
        return True

    def compute_output_shape(self, input_shape: Any) -> Any:
        return check_image(self, input_shape)

    def check_dtype(self, dtype: Any) -> None:
        super().check_dtype(dtype)
        V.check_in_dtype("fill_value", self.fill_value, V.check_dtype(dtype), zero_ok=True,
                         owner=repr(self))

    def transforms(self, n: int, rng: np.random.Generator) -> Any:
        """(n, 6) float64: each image's map a0 a1 a2 b0 b1 b2 (the output pixel (i, j) reads
        the input at column a0 j + a1 i + a2, row b0 j + b1 i + b2)."""
        raise NotImplementedError

    def _draw(self, n: int) -> Any:
        return np.ascontiguousarray(self.transforms(n, self.next_generator()),
                                    dtype=np.float64)

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        if not training:
            ctx.saved["T"] = None
            return x
        T = ctx.saved["T"] = self._draw(x.shape[0])
        y = ctx.rows_buffer("y", self.input_shape)
        ctx.be.affine_resample(np.ascontiguousarray(x), T, self.interpolation == "bilinear",
                               FILL_MODES.index(self.fill_mode), self.fill_value, y)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        T = ctx.saved.get("T")
        if T is None:
            return dy
        dx = ctx.dx_target(0)
        if dx is not None:
            ctx.be.affine_resample_backward(np.ascontiguousarray(dy), T,
                                            self.interpolation == "bilinear",
                                            FILL_MODES.index(self.fill_mode), dx)
        return dx

    def _config(self, **values: Any) -> dict[str, Any]:
        return self._with_seed({**super().get_config(), **values, "fill_mode": self.fill_mode,
                                "interpolation": self.interpolation,
                                "fill_value": self.fill_value})


class RandomRotation(_RandomAffine):
    """Rotate each training image by a random angle about its centre (Keras' layer).

    Parameters
    ----------
    factor : float or (float, float)
        The angle's range as a fraction of a full turn: ``0.1`` draws from [-36, 36] degrees,
        ``(-0.1, 0.3)`` from [-36, 108]. Each in [-1, 1].
    fill_mode : {"reflect", "wrap", "constant", "nearest", "mirror"}, default "reflect"
        What the corners that come from outside the image show: the image reflected
        (d c b a | a b c d | d c b a), tiled, ``fill_value``, its edge, or mirrored about the
        edge pixel (d c b | a b c d | c b a).
    interpolation : {"bilinear", "nearest"}, default "bilinear"
    seed : int, optional
    fill_value : float, default 0.0
        For ``fill_mode="constant"``.

    Inference passes the images unchanged. Output: the input's shape.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> image = np.arange(9.0).reshape(1, 3, 3, 1)
    >>> turn = fnn.Sequential([fnn.RandomRotation((0.25, 0.25), interpolation="nearest")],
    ...                       input_shape=(3, 3, 1), backend="numpy")
    >>> turn.forward(image, training=True)[0, :, :, 0]     # a quarter turn
    array([[2., 5., 8.],
           [1., 4., 7.],
           [0., 3., 6.]], dtype=float32)
    >>> bool((turn.predict(image) == image).all())          # inference: unchanged
    True
    """

    def __init__(self, factor: Any, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: Optional[int] = None,
                 fill_value: float = 0.0, data_format: Optional[str] = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        self.factor = _factor_range("factor", factor)
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, name,
                         trainable)

    def transforms(self, n: int, rng: np.random.Generator) -> Any:
        h, w = self.input_shape[0], self.input_shape[1]
        angle = np.radians(rng.uniform(self.factor[0] * 360.0, self.factor[1] * 360.0, n))
        cos, sin = np.cos(angle), np.sin(angle)
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        # Keras' map about the centre: the output pixel p reads R (p - c) + c
        return np.stack([cos, -sin, cx - cx * cos + cy * sin,
                         sin, cos, cy - cx * sin - cy * cos], axis=1)

    def get_config(self) -> dict[str, Any]:
        return self._config(factor=list(self.factor))

    def __repr__(self) -> str:
        return f"RandomRotation({self.factor})"


class RandomZoom(_RandomAffine):
    """Zoom each training image in or out by a random factor about its centre (Keras' layer).

    Parameters
    ----------
    height_factor : float or (float, float)
        The vertical zoom's range as a fraction, each in (-1, 1]: the image is read at
        ``1 + u`` times its scale, u drawn from the range, so a positive u zooms out (the
        image smaller, the border filled) and a negative one zooms in. ``0.2``: (-0.2, 0.2).
    width_factor : float or (float, float), optional
        The horizontal zoom's range; None (default) zooms both ways by the same factor.
    fill_mode, interpolation, seed, fill_value
        As ``RandomRotation``.

    Inference passes the images unchanged. Output: the input's shape.
    """

    def __init__(self, height_factor: Any, width_factor: Any = None,
                 fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: Optional[int] = None, fill_value: float = 0.0,
                 data_format: Optional[str] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        self.height_factor = _factor_range("height_factor", height_factor, low_open=True)
        self.width_factor = (None if width_factor is None else
                             _factor_range("width_factor", width_factor, low_open=True))
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, name,
                         trainable)

    def transforms(self, n: int, rng: np.random.Generator) -> Any:
        h, w = self.input_shape[0], self.input_shape[1]
        zy = 1.0 + rng.uniform(*self.height_factor, n)
        zx = zy if self.width_factor is None else 1.0 + rng.uniform(*self.width_factor, n)
        zero = np.zeros(n)
        return np.stack([zx, zero, (w - 1) / 2.0 * (1.0 - zx),
                         zero, zy, (h - 1) / 2.0 * (1.0 - zy)], axis=1)

    def get_config(self) -> dict[str, Any]:
        return self._config(height_factor=list(self.height_factor),
                            width_factor=(None if self.width_factor is None
                                          else list(self.width_factor)))

    def __repr__(self) -> str:
        return f"RandomZoom({self.height_factor}, {self.width_factor})"


class RandomTranslation(_RandomAffine):
    """Shift each training image by a random fraction of its height and width (Keras' layer).

    Parameters
    ----------
    height_factor, width_factor : float or (float, float)
        The shifts' ranges as fractions of the height and width, each in [-1, 1]: ``0.1``
        shifts by up to 10% either way; a positive shift moves the image down (right).
    fill_mode, interpolation, seed, fill_value
        As ``RandomRotation``.

    Inference passes the images unchanged. Output: the input's shape.
    """

    def __init__(self, height_factor: Any, width_factor: Any, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: Optional[int] = None,
                 fill_value: float = 0.0, data_format: Optional[str] = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        self.height_factor = _factor_range("height_factor", height_factor)
        self.width_factor = _factor_range("width_factor", width_factor)
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, name,
                         trainable)

    def transforms(self, n: int, rng: np.random.Generator) -> Any:
        h, w = self.input_shape[0], self.input_shape[1]
        dy = rng.uniform(*self.height_factor, n) * h
        dx = rng.uniform(*self.width_factor, n) * w
        one, zero = np.ones(n), np.zeros(n)
        return np.stack([one, zero, -dx, zero, one, -dy], axis=1)

    def get_config(self) -> dict[str, Any]:
        return self._config(height_factor=list(self.height_factor),
                            width_factor=list(self.width_factor))

    def __repr__(self) -> str:
        return f"RandomTranslation({self.height_factor}, {self.width_factor})"


class RandomFlip(_RandomAffine):
    """Flip half of the training images (each with probability 1/2; Keras' layer).

    Parameters
    ----------
    mode : {"horizontal_and_vertical", "horizontal", "vertical"}, default
        "horizontal_and_vertical"
        Left-right, top-bottom, or both at once (as Keras 3: one draw per image for both, so
        a flipped image is turned half a turn).
    seed : int, optional

    Inference passes the images unchanged. Output: the input's shape.
    """

    MODES = ("horizontal_and_vertical", "horizontal", "vertical")

    def __init__(self, mode: str = "horizontal_and_vertical", seed: Optional[int] = None,
                 data_format: Optional[str] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        self.mode = V.check_choice("mode", mode, self.MODES)
        super().__init__("reflect", "nearest", seed, 0.0, data_format, name, trainable)

    def transforms(self, n: int, rng: np.random.Generator) -> Any:
        h, w = self.input_shape[0], self.input_shape[1]
        flip = rng.uniform(size=n) <= 0.5
        across = flip & (self.mode != "vertical")
        down = flip & (self.mode != "horizontal")
        zero = np.zeros(n)
        return np.stack([np.where(across, -1.0, 1.0), zero, np.where(across, w - 1.0, 0.0),
                         zero, np.where(down, -1.0, 1.0), np.where(down, h - 1.0, 0.0)],
                        axis=1)

    def get_config(self) -> dict[str, Any]:
        return self._with_seed({**SeededRandom.get_config(self), "mode": self.mode})

    def __repr__(self) -> str:
        return f"RandomFlip({self.mode!r})"


class RandomContrast(SeededRandom):
    """Scale each training image's contrast by a random factor (Keras' layer): per image and
    channel, ``y = clip((x - mean) * f + mean, *value_range)`` with the mean over the pixels.

    Parameters
    ----------
    factor : float or (float, float)
        ``f`` is drawn from [1 - lower, 1 + upper]; a single number is both (``0.2``: [0.8,
        1.2], as Keras documents; Keras 3's code draws from [1, 1.2] then). Each in [0, 1].
    value_range : (float, float), default (0, 255)
        The images' range, where the output is clipped.
    seed : int, optional

    Inference passes the images unchanged. NumPy operations in the layer on both backends
    (element-wise, no kernel of its own).
    """

    supports_masking = False

    def __init__(self, factor: Any, value_range: Any = (0, 255), seed: Optional[int] = None,
                 data_format: Optional[str] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        from fastnn.layers.convolutional import check_channels_last
        check_channels_last(data_format)
        if isinstance(factor, (list, tuple)):
            self.factor = _factor_range("factor", factor, 0.0, 1.0)
        else:
            f = V.check_float("factor", factor, 0.0, 1.0)
            self.factor = (f, f)
        if not isinstance(value_range, (list, tuple)) or len(value_range) != 2:
            raise ValueError(f"value_range must be a pair (low, high). Received: "
                             f"value_range={V._describe(value_range)}")
        low, high = (V.check_float("value_range", v) for v in value_range)
        if not low < high:
            raise ValueError(f"value_range must have low < high. Received: "
                             f"value_range={V._describe(value_range)}")
        self.value_range = (low, high)
        super().__init__(seed, name, trainable)

    def check_dtype(self, dtype: Any) -> None:
        # the clip bounds must be numbers of the model's dtype (1e300 is inf in float32)
        super().check_dtype(dtype)
        for v in self.value_range:
            V.check_in_dtype("value_range", v, V.check_dtype(dtype), zero_ok=True,
                             owner=repr(self))

    @property
    def draws(self) -> bool:
        return True

    def compute_output_shape(self, input_shape: Any) -> Any:
        return check_image(self, input_shape)

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        if not training:
            ctx.saved["f"] = None
            return x
        rng = self.next_generator()
        n = x.shape[0]
        f = np.asarray(rng.uniform(1.0 - self.factor[0], 1.0 + self.factor[1], n),
                       dtype=x.dtype).reshape(n, 1, 1, 1)
        mean = x.mean(axis=(1, 2), keepdims=True)
        y = ctx.rows_buffer("y", self.input_shape)
        np.subtract(x, mean, out=y)
        y *= f
        y += mean
        inside = (y >= self.value_range[0]) & (y <= self.value_range[1])
        np.clip(y, *self.value_range, out=y)
        ctx.saved.update(f=f, inside=inside)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        f = ctx.saved.get("f")
        if f is None:
            return dy
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        g = np.where(ctx.saved["inside"], dy, 0).astype(dy.dtype)
        # y = f x + (1 - f) mean(x): dx = f g + (1 - f) mean(g), per image and channel
        np.multiply(g, f, out=dx)
        dx += (1 - f) * g.mean(axis=(1, 2), keepdims=True)
        return dx

    def get_config(self) -> dict[str, Any]:
        return self._with_seed({**super().get_config(), "factor": list(self.factor),
                                "value_range": list(self.value_range)})

    def __repr__(self) -> str:
        return f"RandomContrast({self.factor})"


AUGMENTATION_LAYERS = (RandomFlip, RandomRotation, RandomZoom, RandomTranslation,
                       RandomContrast)
