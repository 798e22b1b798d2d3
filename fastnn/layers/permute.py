"""``Permute(dims)``: Keras' reordering of a sample's axes, ``dims`` 1-indexed (the batch axis
stays first and is not named): ``Permute((2, 1))`` turns (n, steps, features) into
(n, features, steps).

Kernel: ``permute_axes`` (fastnn/_ext/_layer_ops.pyx), a copy that writes the output row by
row (threads own whole rows) and reads the input along the permuted strides; its NumPy twin is
``np.transpose``. Both copy values, so they agree bit for bit. The backward pass is the same
copy by the inverse permutation.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot


def _check_dims(dims: Any) -> tuple[int, ...]:
    items = list(dims) if isinstance(dims, (tuple, list)) else None
    if (not items or not all(isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_))
                             for d in items)
            or sorted(int(d) for d in items) != list(range(1, len(items) + 1))):
        raise ValueError(f"dims must be a permutation of 1, ..., k (a sample's axes, 1-indexed: "
                         f"the batch axis is not named), e.g. (2, 1). Received: "
                         f"dims={V._describe(dims)}")
    return tuple(int(d) for d in items)


class Permute(Layer):
    """Reorder the axes of each sample: output axis i is input axis ``dims[i]`` (1-indexed).

    Parameters
    ----------
    dims : tuple of int
        A permutation of 1, ..., k for samples of k dimensions.
    name, trainable
        See ``Layer``.

    Raises
    ------
    ValueError
        If ``dims`` is not such a permutation, or the samples do not have ``len(dims)``
        dimensions.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Permute((2, 1))], input_shape=(2, 3), backend="numpy")
    >>> model.predict(np.arange(6.0).reshape(1, 2, 3))[0]
    array([[0., 3.],
           [1., 4.],
           [2., 5.]], dtype=float32)
    """

    def __init__(self, dims: Any, name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.dims = _check_dims(dims)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple) or len(input_shape) != len(self.dims):
            raise ValueError(f"{self.name}: dims={self.dims} permutes samples of "
                             f"{len(self.dims)} dimensions. Received: input shape "
                             f"{input_shape}")
        return tuple(input_shape[d - 1] for d in self.dims)

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        x = np.ascontiguousarray(x).reshape(x.shape[0], *self.input_shape)
        ctx.be.permute_axes(x, (0, *self.dims), y)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        inverse = tuple(int(i) + 1 for i in np.argsort(self.dims))
        dy = np.ascontiguousarray(dy).reshape(dy.shape[0], *self.output_shape)
        ctx.be.permute_axes(dy, (0, *inverse), dx.reshape(dy.shape[0], *self.input_shape))
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dims": list(self.dims)}

    def __repr__(self) -> str:
        return f"Permute({self.dims})"


__all__ = ["Permute"]
