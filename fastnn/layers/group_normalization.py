"""Keras' ``GroupNormalization`` (Wu and He, "Group Normalization", 2018): the channels split
into ``groups``; each sample's group is normalized over its positions and channels together,
then each channel gets its own ``gamma`` and ``beta``. ``groups=1`` is a layer normalization over
positions and channels; ``groups=-1`` (one channel a group) an instance normalization. Unlike
batch normalization it does not depend on the batch, so it behaves the same in training and
inference, at any batch size.

It runs on compiled channels-last kernels (``groupnorm_forward``/``groupnorm_backward`` in
fastnn/_ext/_normalization.pyx over the C loops of src_c/fnn_gn_tmpl.h, NumPy twins in
fastnn/backends/numpy_normalization.py): the threads take (sample, block of groups) tasks; each
(sample, group)'s statistics are summed in double per channel over the positions (vector lanes
along the contiguous channels), then over the group's channels, in a fixed order at any thread
count; the normalize-and-affine maps use per-channel coefficients computed in double and are
applied in the element type; dgamma and dbeta add the samples' sums in order.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence


from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Slot, WeightSpec
from fastnn.layers.normalization import _Normalization

# the largest epsilon that float32 holds (np.float32 rounds anything above this to inf)
_F32_MAX = float.fromhex("0x1.fffffefffffffp+127")


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
        Added to the variance (PyTorch's default is 1e-5); positive and finite in float32
        (at most about 3.4e38: a larger one is inf as a float32, the dtype Keras holds it in
        for a float32 model).
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
        if self.epsilon > _F32_MAX:
            # inf as a float32 (Keras' dtype for it in a float32 model); refused for any dtype,
            # since the layer's dtype is not known before the model builds it
            raise ValueError(f"epsilon must be finite in float32 (at most {_F32_MAX!r}). "
                             f"Received: epsilon={self.epsilon!r}")
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
        y = ctx.rows_buffer("y", self.output_shape)
        mean, invstd = ctx.rows_buffer("mean", (G,)), ctx.rows_buffer("invstd", (G,))
        ctx.be.groupnorm_forward(x.reshape(n, P, G * k), self.gamma, self.beta, G,
                                 self.epsilon, y.reshape(n, P, G * k), mean, invstd)
        ctx.saved.update(x=x, mean=mean, invstd=invstd)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        P, G, k = self._shapes()
        n = dy.shape[0]
        s = ctx.saved
        dx = ctx.dx_target(0)
        ctx.be.groupnorm_backward(s["x"].reshape(n, P, G * k), dy.reshape(n, P, G * k),
                                  self.gamma, s["mean"], s["invstd"],
                                  None if dx is None else dx.reshape(n, P, G * k),
                                  self.dgamma, self.dbeta)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "groups": self.groups}

    def __repr__(self) -> str:
        return f"GroupNormalization(groups={self.groups})"
