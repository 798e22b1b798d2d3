"""Keras' image sizing layers: ``Resizing``, ``CenterCrop``, ``RandomCrop``.

Images of any size in, one size out: a model that takes (height, width, channels) images
resizes them itself (``Resizing(224, 224)``), or crops their centre (``CenterCrop``), or in
training a random window (``RandomCrop``, an augmentation). Each output pixel reads the input
at a point of a grid (the same for every image of a call), by bilinear or nearest
interpolation. The grid is separable (its rows and columns are read independently), so it is
turned once into per-row and per-column taps (``grid_tables``) and applied by the compiled
kernel ``resize_separable`` (fastnn/_ext/_layer_ops.pyx): each input row resampled along
itself, then two such rows blended per output row; it reads what ``resample_grid`` reads.
Its backward pass is the adjoint, so these layers also work inside a network.

Resizing follows Keras (and ``keras.ops.image.resize`` without antialiasing): output pixel o of
n, from m input pixels, is centred at (o + 0.5) m / n - 0.5 and reads the two pixels around it
(bilinear, the edge pixel past an edge) or the pixel floor((o + 0.5) m / n) (nearest).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.backends.numpy_layer_ops import grid_tables
from fastnn.layers.augmentation import check_image
from fastnn.layers.base import FloatArray, Slot
from fastnn.layers.regularization import SeededRandom

CONSTANT, NEAREST = 0, 1          # the kernel's fill modes (fastnn/layers/augmentation.py)


def _axis(m: int, n: int, interpolation: str, start: int = 0, crop: Optional[int] = None,
          pad: int = 0) -> Any:
    """Source coordinates of n output pixels resized from the window [start, start + crop)
    of an axis of m pixels (crop None: all of it), the window widened by ``pad`` fill pixels
    each side."""
    size = (m if crop is None else crop) + 2 * pad
    centres = (np.arange(n, dtype=np.float64) + 0.5) * size / n
    if interpolation == "nearest":
        points = np.minimum(np.floor(centres), size - 1)
    else:
        points = np.clip(centres - 0.5, 0.0, size - 1.0)
    return np.ascontiguousarray(points + start - pad)


def _aspect_crop(h: int, w: int, height: int, width: int) -> tuple[int, int, int, int]:
    """Keras' centred window of the target's aspect ratio: (top, left, rows, columns)."""
    rows = max(min(h, int(float(w * height) / width)), 1)
    cols = max(min(w, int(float(h * width) / height)), 1)
    return int(float(h - rows) / 2), int(float(w - cols) / 2), rows, cols


class _Grid(SeededRandom):
    """What the sizing layers share: the output size, the kernel's calls."""

    supports_masking = False

    def __init__(self, height: int, width: int, seed: Optional[int], data_format: Any,
                 name: Optional[str], trainable: bool) -> None:
        from fastnn.layers.convolutional import check_channels_last
        check_channels_last(data_format)
        self.height = V.check_dim("height", height)
        self.width = V.check_dim("width", width)
        self._tables: Optional[tuple[Any, Any]] = None
        super().__init__(seed, name, trainable)

    @property
    def draws(self) -> bool:
        return False

    def compute_output_shape(self, input_shape: Any) -> Any:
        check_image(self, input_shape)
        return (self.height, self.width, input_shape[2])

    def grid(self, training: bool) -> tuple[Any, Any, bool, int, float]:
        """(rows, cols, bilinear, fill mode, fill value) of this call."""
        raise NotImplementedError

    def tables(self, training: bool) -> tuple[Any, Any, Any, Any, bool, float]:
        """This call's grid in separable form (grid_tables: row and column taps), and whether
        it interpolates and its fill value; kept while the grid cannot change (all but
        RandomCrop's random windows in training)."""
        key = tuple(self.input_shape)
        if not (training and self.draws) and self._tables is not None \
                and self._tables[0] == key:
            return self._tables[1]
        rows, cols, bilinear, mode, fill = self.grid(training)
        h, w = self.input_shape[0], self.input_shape[1]
        plan = (*grid_tables(rows, cols, h, w, bilinear, mode), bilinear, fill)
        if not (training and self.draws):
            self._tables = (key, plan)
        return plan

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        row_index, row_weight, col_index, col_weight, bilinear, fill = plan = \
            self.tables(training)
        ctx.saved["plan"] = plan
        y = ctx.rows_buffer("y", self.output_shape)
        ctx.be.resize_separable(np.ascontiguousarray(x), row_index, row_weight, col_index,
                                col_weight, bilinear, fill, y)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is not None:
            row_index, row_weight, col_index, col_weight, _, _ = ctx.saved["plan"]
            ctx.be.resize_separable_backward(np.ascontiguousarray(dy), row_index, row_weight,
                                             col_index, col_weight, dx)
        return dx

    def _resized(self, crop: bool) -> tuple[Any, Any, bool, int, float]:
        """The whole image (or its centred window of the target's aspect ratio) resized
        bilinearly: Keras' smart_resize."""
        h, w = self.input_shape[0], self.input_shape[1]
        top, left, rows, cols = _aspect_crop(h, w, self.height, self.width) if crop else \
            (0, 0, h, w)
        return (_axis(h, self.height, "bilinear", top, rows),
                _axis(w, self.width, "bilinear", left, cols), True, NEAREST, 0.0)

    def _window(self, top: int, left: int) -> tuple[Any, Any, bool, int, float]:
        """The window at (top, left) of the output's size, copied."""
        return (np.arange(top, top + self.height, dtype=np.float64),
                np.arange(left, left + self.width, dtype=np.float64), False, NEAREST, 0.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "height": self.height, "width": self.width}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.height}, {self.width})"


class Resizing(_Grid):
    """Resize images to (height, width) (Keras' layer), in training and inference.

    Parameters
    ----------
    height, width : int
        The output's size.
    interpolation : {"bilinear", "nearest"}, default "bilinear"
        (Keras' "bicubic", "lanczos3", "lanczos5" and "area" are not provided.)
    crop_to_aspect_ratio : bool, default False
        Resize the largest centred window of the output's aspect ratio instead of the whole
        image (no distortion; the sides are lost).
    pad_to_aspect_ratio : bool, default False
        Pad the image with ``fill_value`` to the output's aspect ratio first (no distortion;
        bars at the sides).
    fill_mode : {"constant"}, default "constant"
    fill_value : float, default 0.0

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Resizing(2, 2)], input_shape=(4, 4, 1), backend="numpy")
    >>> model.predict(np.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0]   # 2x2 block means
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """

    def __init__(self, height: int, width: int, interpolation: str = "bilinear",
                 crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False,
                 fill_mode: str = "constant", fill_value: float = 0.0,
                 data_format: Optional[str] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        if interpolation in ("bicubic", "lanczos3", "lanczos5", "area"):
            raise ValueError(f"interpolation={interpolation!r} is not provided by fastnn: use "
                             f"'bilinear' or 'nearest'")
        self.interpolation = V.check_choice("interpolation", interpolation,
                                            ("bilinear", "nearest"))
        self.crop_to_aspect_ratio = V.check_bool("crop_to_aspect_ratio", crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = V.check_bool("pad_to_aspect_ratio", pad_to_aspect_ratio)
        if self.crop_to_aspect_ratio and self.pad_to_aspect_ratio:
            raise ValueError("Only one of crop_to_aspect_ratio and pad_to_aspect_ratio can be "
                             "True. Received: crop_to_aspect_ratio=True, "
                             "pad_to_aspect_ratio=True")
        self.fill_mode = V.check_choice("fill_mode", fill_mode, ("constant",))
        self.fill_value = V.check_float("fill_value", fill_value)
        super().__init__(height, width, None, data_format, name, trainable)

    def check_dtype(self, dtype: Any) -> None:
        super().check_dtype(dtype)
        V.check_in_dtype("fill_value", self.fill_value, V.check_dtype(dtype), zero_ok=True,
                         owner=repr(self))

    def grid(self, training: bool) -> tuple[Any, Any, bool, int, float]:
        h, w = self.input_shape[0], self.input_shape[1]
        how = self.interpolation
        if self.crop_to_aspect_ratio:
            top, left, rows, cols = _aspect_crop(h, w, self.height, self.width)
            return (_axis(h, self.height, how, top, rows), _axis(w, self.width, how, left, cols),
                    how == "bilinear", NEAREST, 0.0)
        pad_rows = pad_cols = 0
        if self.pad_to_aspect_ratio:        # Keras: the same bar each side, of the floor half
            pad_rows = int(float(max(h, int(float(w * self.height) / self.width)) - h) / 2)
            if not pad_rows:
                pad_cols = int(float(max(w, int(float(h * self.width) / self.height)) - w) / 2)
        return (_axis(h, self.height, how, pad=pad_rows), _axis(w, self.width, how, pad=pad_cols),
                how == "bilinear", CONSTANT if pad_rows or pad_cols else NEAREST,
                self.fill_value)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value}


class CenterCrop(_Grid):
    """Crop the centre (height, width) window of each image (Keras' layer); an image smaller
    than that is resized instead, from its largest centred window of that aspect ratio.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.CenterCrop(2, 2)], input_shape=(4, 4, 1), backend="numpy")
    >>> model.predict(np.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0]
    array([[ 5.,  6.],
           [ 9., 10.]], dtype=float32)
    """

    def __init__(self, height: int, width: int, data_format: Optional[str] = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(height, width, None, data_format, name, trainable)

    def grid(self, training: bool) -> tuple[Any, Any, bool, int, float]:
        h, w = self.input_shape[0], self.input_shape[1]
        if h >= self.height and w >= self.width:
            return self._window((h - self.height) // 2, (w - self.width) // 2)
        return self._resized(crop=True)


class RandomCrop(_Grid):
    """In training, a random (height, width) window of the batch's images (one place per
    batch, as Keras 3); in inference, and in training when the images are not larger in both
    sizes, the largest centred window of that aspect ratio resized to (height, width), as
    Keras documents.

    Parameters
    ----------
    height, width : int
    seed : int, optional
    """

    def __init__(self, height: int, width: int, seed: Optional[int] = None,
                 data_format: Optional[str] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(height, width, seed, data_format, name, trainable)

    @property
    def draws(self) -> bool:
        return True

    def grid(self, training: bool) -> tuple[Any, Any, bool, int, float]:
        h, w = self.input_shape[0], self.input_shape[1]
        if training and h > self.height and w > self.width:
            rng = self.next_generator()
            return self._window(int(rng.integers(0, h - self.height + 1)),
                                int(rng.integers(0, w - self.width + 1)))
        return self._resized(crop=True)

    def get_config(self) -> dict[str, Any]:
        return self._with_seed(super().get_config())


SIZING_LAYERS = (Resizing, CenterCrop, RandomCrop)
