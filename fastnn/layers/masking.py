"""Keras' ``Masking`` layer: mark the padded steps of sequences of vectors.

Sequences of different lengths are padded to one length to make a batch. A step mask says
which steps are real: ``Masking(mask_value)`` marks a step padding when all its features equal
``mask_value`` (``Embedding(mask_zero=True)`` does the same for id 0). The mask travels with the
tensor through the layers that compute each step on its own (``Layer.supports_masking``), and
the layers that read it skip the padding: the recurrent layers carry their state over a
padded step, attention does not attend to padded keys, ``GlobalAveragePooling1D`` averages the
real steps only, and the loss of a per-step output leaves the padded steps out.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot


class Masking(Layer):
    """``y = x`` where a step has a feature other than ``mask_value``, else 0; the output's step
    mask is True at those steps and False at the padding (as Keras).

    Parameters
    ----------
    mask_value : float, default 0.0
        The padding value: a step whose features all equal it is padding. Finite, and held
        exactly enough by the model's dtype not to overflow or vanish (``check_dtype``).
    name, trainable
        See ``Layer``.

    Shapes: x and y (n, steps, features); the mask (n, steps). The input gradient is dy at the
    real steps and 0 at the padding.

    Raises
    ------
    TypeError
        For a ``mask_value`` that is not a real number.
    ValueError
        For a non-finite ``mask_value``, one the model's dtype does not hold, or (at build) an
        input that is not (steps, features) per sample.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> x = np.array([[[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]])    # the last step is padding
    >>> model = fnn.Sequential([fnn.Masking(0.0), fnn.SimpleRNN(2)], input_shape=(3, 2),
    ...                        seed=0, backend="numpy")
    >>> short = fnn.Sequential([fnn.SimpleRNN(2)], input_shape=(2, 2), backend="numpy")
    >>> short.set_weights(model.get_weights())
    >>> bool(np.allclose(model.predict(x), short.predict(x[:, :2])))
    True
    """

    supports_masking = True

    def __init__(self, mask_value: float = 0.0, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.mask_value = V.check_float("mask_value", mask_value)

    def check_dtype(self, dtype: Any) -> None:
        super().check_dtype(dtype)
        V.check_in_dtype("mask_value", self.mask_value, V.check_dtype(dtype), zero_ok=True,
                         owner=repr(self))

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple) or len(input_shape) != 2:
            raise ValueError(f"{self.name} takes sequences of shape (steps, features) per "
                             f"sample. Received: input shape {input_shape}")
        return input_shape

    def output_masked(self, masked: Any) -> bool:
        return True

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        # the kernel writes the mask as bytes 0/1: the same buffer read as bools
        mask: Any = ctx.rows_buffer("mask", self.input_shape[:1], dtype=bool)
        y = ctx.rows_buffer("y", self.input_shape)
        ctx.be.masking_forward(np.ascontiguousarray(x), self.mask_value, y, mask.view(np.uint8))
        ctx.saved["mask"] = mask
        return y

    def compute_mask(self, ctx: Slot, x: Any, mask: Any) -> Any:
        return ctx.saved["mask"]

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        ctx.be.masking_backward(np.ascontiguousarray(dy), ctx.saved["mask"].view(np.uint8), dx)
        return dx

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["mask_value"] = self.mask_value
        return config

    def __repr__(self) -> str:
        return f"Masking({self.mask_value})"
