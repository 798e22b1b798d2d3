"""``Dropout``: during training, zero each value with probability ``rate`` and scale the rest
by ``1 / (1 - rate)`` (inverted dropout: inference is the identity). ``SpatialDropout1D`` and
``SpatialDropout2D`` drop whole channels instead: one mask value per (sample, channel).

The mask comes from a counter-based generator (``seed``, the layer's count of training passes,
the element's index), so it is the same on both backends and at any thread count, and a seeded
model trains to the same weights every time. ``SeededRandom`` holds that stream's state for
every layer that draws from it (these, and fastnn/layers/noise.py's Gaussian layers).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot
from fastnn.layers.convolutional import check_channels_last


def check_seed(seed: Any) -> Optional[int]:
    """A layer's ``seed`` argument: None, or an integer in [0, 2**64)."""
    checked = None if seed is None else V.check_int("seed", seed, low=0)
    if checked is not None and checked >= 2**64:
        raise ValueError(f"seed must be below 2**64. Received: seed={seed}")
    return checked


def stream_state(kind: str, state: Any) -> tuple[int, int]:
    """(mask_seed, calls) from a config's ``state`` (where a layer's stream stands), checked:
    ``{"mask_seed": int in [0, 2**64), "calls": int in [0, 2**63)}``."""
    if not isinstance(state, dict) or set(state) != {"mask_seed", "calls"}:
        raise ValueError(f"{kind}'s state must be {{'mask_seed': int, 'calls': int}}. "
                         f"Received: {state!r:.80}")
    mask_seed = V.check_int("mask_seed", state["mask_seed"], low=0)
    calls = V.check_int("calls", state["calls"], low=0)
    if mask_seed >= 2**64 or calls >= 2**63:
        raise ValueError(f"{kind}'s state is out of range. Received: {state!r:.80}")
    return mask_seed, calls


class SeededRandom(Layer):
    """A layer that draws from the counter-based stream in training: its seed (given, or drawn
    from the model's generator at build), and ``calls``, the training passes that drew so
    far. Both go into the model file (``get_config()["state"]``), so a loaded model goes on
    with the same draws."""

    supports_masking = True     # see Layer.compute_mask

    def __init__(self, seed: Optional[int], name: Optional[str], trainable: bool) -> None:
        super().__init__(name=name, trainable=trainable)
        self.seed = check_seed(seed)
        self._mask_seed = self.seed
        self.calls = 0           # training passes so far: the generator's counter

    @property
    def draws(self) -> bool:
        """Whether a training pass draws (and advances ``calls``): rate or stddev > 0."""
        raise NotImplementedError

    def init_seed(self, rng: np.random.Generator) -> None:
        """Take a seed from the model's generator when none was given (or restored)."""
        if self._mask_seed is None:
            self._mask_seed = int(rng.integers(0, 2**63))

    def next_generator(self) -> np.random.Generator:
        """A NumPy generator for this training pass's host-side draws (an augmentation
        layer's angles, a crop's place), from (seed, calls); advances ``calls``."""
        rng = np.random.default_rng((self._mask_seed or 0, self.calls))
        self.calls += 1
        return rng

    def _with_seed(self, config: dict[str, Any]) -> dict[str, Any]:
        if self.seed is not None:
            config["seed"] = self.seed
        if self._mask_seed is not None and (self.calls or self.seed is None):
            # where the stream stands: a loaded model goes on with the same draws
            config["state"] = {"mask_seed": self._mask_seed, "calls": self.calls}
        return config

    def set_state(self, state: Any) -> None:
        self._mask_seed, self.calls = stream_state(type(self).__name__, state)


class Dropout(SeededRandom):
    """Randomly zero a fraction ``rate`` of the inputs in training, scaling the others by
    ``1 / (1 - rate)``; the identity in inference.

    Parameters
    ----------
    rate : float
        The fraction dropped, in [0, 1).
    seed : int, optional
        Seed of the masks (>= 0); by default drawn from the model's seed when it is built.

    Raises
    ------
    ValueError
        If ``rate`` is outside [0, 1) or ``seed`` < 0.
    TypeError
        If ``rate`` is not a real number or ``seed`` not an integer.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Dropout(0.5, seed=1)], input_dim=4, backend="numpy")
    >>> model.predict(np.ones((1, 4)))               # inference: the identity
    array([[1., 1., 1., 1.]], dtype=float32)
    >>> sorted(set(model.forward(np.ones((8, 4))).ravel().tolist()))   # training
    [0.0, 2.0]
    """

    def __init__(self, rate: float, seed: Optional[int] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        self.rate = V.check_float("rate", rate, 0.0, 1.0, False, True)
        super().__init__(seed, name, trainable)

    @property
    def draws(self) -> bool:
        return self.rate > 0.0

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        if not training or self.rate == 0.0:
            ctx.saved["mask"] = None
            return x
        mask = ctx.rows_buffer("mask", self.input_shape)
        ctx.be.dropout_mask(self._mask_seed or 0, self.calls, self.rate, mask.reshape(-1))
        self.calls += 1
        y = ctx.rows_buffer("y", self.input_shape)
        ctx.be.dropout_forward(x, mask, y)
        ctx.saved["mask"] = mask
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        mask = ctx.saved.get("mask")
        if mask is None:
            return dy
        dx = ctx.dx_target(0)
        if dx is not None:
            ctx.be.dropout_backward(dy, mask, dx)
        return dx

    def get_config(self) -> dict[str, Any]:
        return self._with_seed({**super().get_config(), "rate": self.rate})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.rate})"


class _SpatialDropout(Dropout):
    """Dropout with Keras' noise shape (n, 1, C) / (n, 1, 1, C): the mask is drawn for the
    (n, C) (sample, channel) pairs from the same stream as Dropout's, and each channel of a
    sample is kept whole (times 1 / (1 - rate)) or zeroed whole."""

    rank = 1

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple) or len(input_shape) != self.rank + 1:
            form = {1: "(steps, channels)", 2: "(height, width, channels)"}.get(
                self.rank, "(depth, height, width, channels)")
            raise ValueError(f"{self.name} takes samples of shape {form}. Received: input "
                             f"shape {input_shape}")
        return input_shape

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        if not training or self.rate == 0.0:
            ctx.saved["mask"] = None
            return x
        n, c = x.shape[0], self.input_shape[-1]
        mask = ctx.rows_buffer("mask", (c,))
        ctx.be.dropout_mask(self._mask_seed or 0, self.calls, self.rate, mask.reshape(-1))
        self.calls += 1
        y = ctx.rows_buffer("y", self.input_shape)
        ctx.be.scale_channels(np.ascontiguousarray(x).reshape(n, -1, c), mask,
                              y.reshape(n, -1, c))
        ctx.saved["mask"] = mask
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        mask = ctx.saved.get("mask")
        if mask is None:
            return dy
        dx = ctx.dx_target(0)
        if dx is not None:
            n, c = mask.shape
            ctx.be.scale_channels(np.ascontiguousarray(dy).reshape(n, -1, c), mask,
                                  dx.reshape(n, -1, c))
        return dx


class SpatialDropout1D(_SpatialDropout):
    """Dropout of whole channels of sequences (n, steps, channels): in training each channel of
    each sample is zeroed with probability ``rate`` at every step, or kept and scaled by
    ``1 / (1 - rate)``; the identity in inference. Arguments as ``Dropout``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.SpatialDropout1D(0.5, seed=3)], input_shape=(4, 3),
    ...                        backend="numpy")
    >>> y = model.forward(np.ones((2, 4, 3)))
    >>> bool((y == y[:, :1]).all())                  # each channel the same at every step
    True
    """

    rank = 1


class SpatialDropout2D(_SpatialDropout):
    """Dropout of whole feature maps of images (n, height, width, channels): in training each
    channel of each sample is zeroed everywhere with probability ``rate``, or kept and scaled
    by ``1 / (1 - rate)``; the identity in inference. ``data_format``: None or
    "channels_last" (fastnn is channels-last); other arguments as ``Dropout``."""

    rank = 2

    def __init__(self, rate: float, data_format: Optional[str] = None,
                 seed: Optional[int] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        check_channels_last(data_format)
        super().__init__(rate, seed=seed, name=name, trainable=trainable)


class SpatialDropout3D(SpatialDropout2D):
    """Dropout of whole feature volumes (n, depth, height, width, channels): in training each
    channel of each sample is zeroed everywhere with probability ``rate``, or kept and scaled
    by ``1 / (1 - rate)``; the identity in inference (Keras' noise shape (n, 1, 1, 1, C)).
    Arguments as ``SpatialDropout2D``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.SpatialDropout3D(0.5, seed=3)], input_shape=(2, 2, 2, 3),
    ...                        backend="numpy")
    >>> y = model.forward(np.ones((2, 2, 2, 2, 3)))
    >>> bool((y == y[:, :1, :1, :1]).all())          # each channel the same everywhere
    True
    """

    rank = 3


__all__ = ["SeededRandom", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"]
