"""Keras' ``GroupNormalization`` (Wu and He, "Group Normalization", 2018): the channels split
into ``groups``; each sample's group is normalized over its positions and channels together,
then each channel gets its own ``gamma`` and ``beta``. ``groups=1`` is a layer normalization over
positions and channels; ``groups=-1`` (one channel a group) an instance normalization. Unlike
batch normalization it does not depend on the batch, so it behaves the same in training and
inference, at any batch size.

It runs on the compiled layer-normalization kernels (fastnn/_ext/_normalization.pyx): each
(sample, group) is gathered into one row of positions x channels, normalized as a row (sums in
double, a fixed order at any thread count), and scattered back, where the channels' affine map
is applied.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Slot, WeightSpec
from fastnn.layers.normalization import _Normalization


class GroupNormalization(_Normalization):
    """Normalize groups of channels per sample: ``y = gamma * (x - mean_g) / sqrt(var_g +
    epsilon) + beta`` with the mean and (biased) variance of the sample's group g over its
    positions and channels (Keras' layer; PyTorch's ``nn.GroupNorm(groups, channels)``).

    Parameters
    ----------
    groups : int, default 32
        Divides the channels; -1 for one group a channel.
    axis : int, default -1
        The channels axis (the last one).
    epsilon : float, default 1e-3
        Added to the variance (PyTorch's default is 1e-5).
    center, scale, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer
        As ``LayerNormalization``: beta and gamma are per channel.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.GroupNormalization(groups=2, epsilon=1e-6)],
    ...                        input_shape=(2, 4), backend="numpy", dtype="float64")
    >>> x = np.array([[[1.0, 3.0, 0.0, 0.0], [1.0, 3.0, 2.0, 6.0]]])
    >>> np.round(model.predict(x)[0], 4)   # channels (0, 1): mean 2, std 1; (2, 3): 2, sqrt(6)
    array([[-1.    ,  1.    , -0.8165, -0.8165],
           [-1.    ,  1.    ,  0.    ,  1.633 ]])
    """

    supports_masking = False      # the statistics would include padded steps

    def __init__(self, groups: int = 32, axis: int = -1, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, name, trainable)
        self.groups = V.check_int("groups", groups, low=-1)
        if self.groups == 0:
            raise ValueError("groups must be a positive integer or -1 (one group a channel). "
                             "Received: groups=0")

    def compute_output_shape(self, input_shape: Any) -> Any:
        super().compute_output_shape(input_shape)
        channels = input_shape[-1]
        if self.groups > channels or channels % self._groups(channels):
            raise ValueError(f"{self.name}: groups must divide the {channels} channels. "
                             f"Received: groups={self.groups}")
        return input_shape

    def _groups(self, channels: int) -> int:
        return channels if self.groups == -1 else self.groups

    def weight_specs(self) -> Sequence[WeightSpec]:
        return self._affine_specs()

    def _shapes(self) -> tuple[int, int, int]:
        """(positions, groups, channels a group)."""
        c = self.input_shape[-1]
        g = self._groups(c)
        return math.prod(self.input_shape[:-1]), g, c // g

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        P, G, k = self._shapes()
        n = x.shape[0]
        # (n, P, G, k) -> rows (n G, P k): a group's values side by side
        rows = ctx.rows_buffer("rows", (G, P * k))
        rows.reshape(n, G, P, k)[...] = x.reshape(n, P, G, k).transpose(0, 2, 1, 3)
        normed = ctx.rows_buffer("normed", (G, P * k))
        mean, invstd = ctx.rows_buffer("mean", (G,)), ctx.rows_buffer("invstd", (G,))
        ones, zeros = ctx.buffer("ones", (P * k,)), ctx.buffer("zeros", (P * k,))
        ones[...], zeros[...] = 1, 0
        ctx.be.layernorm_forward(rows.reshape(n * G, -1), ones, zeros, self.epsilon,
                                 normed.reshape(n * G, -1), mean.reshape(-1),
                                 invstd.reshape(-1))
        xhat = ctx.rows_buffer("xhat", self.input_shape)
        xhat.reshape(n, P, G, k)[...] = normed.reshape(n, G, P, k).transpose(0, 2, 1, 3)
        y = ctx.rows_buffer("y", self.output_shape)
        np.multiply(xhat, self.gamma, out=y)
        y += self.beta
        ctx.saved.update(rows=rows, xhat=xhat, mean=mean, invstd=invstd)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        P, G, k = self._shapes()
        n = dy.shape[0]
        s = ctx.saved
        axes = tuple(range(dy.ndim - 1))
        self.dgamma += np.sum(dy * s["xhat"], axis=axes)
        self.dbeta += np.sum(dy, axis=axes)
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        dnormed = ctx.rows_buffer("dnormed", (G, P * k))
        dnormed.reshape(n, G, P, k)[...] = (dy * self.gamma).reshape(n, P, G, k).transpose(
            0, 2, 1, 3)
        drows = ctx.rows_buffer("drows", (G, P * k))
        ones = ctx.buffer("ones", (P * k,))
        unused = ctx.buffer("unused_dgamma", (P * k,)), ctx.buffer("unused_dbeta", (P * k,))
        for buffer in unused:           # the row kernel's own gamma/beta sums: not wanted
            buffer[...] = 0
        ctx.be.layernorm_backward(s["rows"].reshape(n * G, -1), dnormed.reshape(n * G, -1),
                                  ones, s["mean"].reshape(-1), s["invstd"].reshape(-1),
                                  drows.reshape(n * G, -1), *unused)
        dx.reshape(n, P, G, k)[...] = drows.reshape(n, G, P, k).transpose(0, 2, 1, 3)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "groups": self.groups}

    def __repr__(self) -> str:
        return f"GroupNormalization(groups={self.groups})"
