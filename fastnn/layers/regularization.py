"""``Dropout``: during training, zero each value with probability ``rate`` and scale the rest
by ``1 / (1 - rate)`` (inverted dropout: inference is the identity).

The mask comes from a counter-based generator (``seed``, the layer's count of training passes,
the element's index), so it is the same on both backends and at any thread count, and a seeded
model trains to the same weights every time.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot


class Dropout(Layer):
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
        super().__init__(name=name, trainable=trainable)
        self.rate = V.check_float("rate", rate, 0.0, 1.0, False, True)
        self.seed = None if seed is None else V.check_int("seed", seed, low=0)
        if self.seed is not None and self.seed >= 2**64:
            raise ValueError(f"seed must be below 2**64. Received: seed={seed}")
        self._mask_seed = self.seed
        self.calls = 0           # training passes so far: the mask generator's counter

    def init_seed(self, rng: np.random.Generator) -> None:
        """Take a mask seed from the model's generator when none was given (or restored)."""
        if self._mask_seed is None:
            self._mask_seed = int(rng.integers(0, 2**63))

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
        config = {**super().get_config(), "rate": self.rate}
        if self.seed is not None:
            config["seed"] = self.seed
        if self._mask_seed is not None and (self.calls or self.seed is None):
            # where the mask stream stands: a loaded model goes on with the same masks
            config["state"] = {"mask_seed": self._mask_seed, "calls": self.calls}
        return config

    def set_state(self, state: Any) -> None:
        if not isinstance(state, dict) or set(state) != {"mask_seed", "calls"}:
            raise ValueError(f"Dropout's state must be {{'mask_seed': int, 'calls': int}}. "
                             f"Received: {state!r:.80}")
        mask_seed = V.check_int("mask_seed", state["mask_seed"], low=0)
        calls = V.check_int("calls", state["calls"], low=0)
        if mask_seed >= 2**64 or calls >= 2**63:
            raise ValueError(f"Dropout's state is out of range. Received: {state!r:.80}")
        self._mask_seed, self.calls = mask_seed, calls

    def __repr__(self) -> str:
        return f"Dropout({self.rate})"
