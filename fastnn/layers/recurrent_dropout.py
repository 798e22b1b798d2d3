"""Keras' ``dropout`` and ``recurrent_dropout`` for SimpleRNN, LSTM and GRU: what the layers
hold (rates, seed, the mask stream's state) and the masks of one training pass.

One mask per (sample, input feature) scales every step's x_t and one per (sample, unit) every
step's h_{t-1} where it meets the recurrent kernel, each value 0 or ``1 / (1 - rate)``, drawn
once per training pass (Keras' ``get_dropout_mask``: the same mask at every step). The kernels
apply them (src_c/fnn_rnn.h). Keras 3 draws one input mask shared by the gates when
``recurrent_dropout`` is 0; with it, Keras switches to its per-gate cell (``implementation=1``)
and draws a mask per gate; here one mask serves all gates in both cases (the input projection
and the recurrent product stay one product each).

The masks come from the counter-based generator of fastnn/layers/regularization.py (the seed,
``calls``: the training passes that drew so far, the element's index), so both backends and
every thread count draw the same ones. The two masks take distinct streams, and a layer reading
the sequence backwards (``go_backwards``, Bidirectional's second direction) others again, so a
Bidirectional with one ``seed`` still masks each direction its own way.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers.regularization import check_seed, stream_state

# stream salts (xor-ed into the seed): the recurrent mask's, and the backward direction's
_REC_SALT = 0x5851F42D4C957F2D
_BACKWARDS_SALT = 0x14057B7EF767814F


class RecurrentDropout:
    """The dropout side of RNNBase (a mixin: RNNBase calls ``_init_dropout`` and ``masks``)."""

    dropout: float
    recurrent_dropout: float
    go_backwards: bool

    def _init_dropout(self, dropout: Any, recurrent_dropout: Any, seed: Any) -> None:
        self.dropout = V.check_float("dropout", dropout, 0.0, 1.0, False, True)
        self.recurrent_dropout = V.check_float("recurrent_dropout", recurrent_dropout, 0.0, 1.0,
                                               False, True)
        self.seed = check_seed(seed)
        self._mask_seed: Optional[int] = self.seed
        self.calls = 0           # training passes that drew: the generator's counter

    @property
    def draws(self) -> bool:
        """Whether a training pass draws masks (and advances ``calls``)."""
        return self.dropout > 0.0 or self.recurrent_dropout > 0.0

    def init_seed(self, rng: np.random.Generator) -> None:
        """Take a seed from the model's generator when none was given (or restored)."""
        if self._mask_seed is None:
            self._mask_seed = int(rng.integers(0, 2**63))

    def masks(self, ctx: Any, features: int, training: bool,
              state_size: Optional[int] = None) -> tuple[Optional[Any], Optional[Any]]:
        """This pass's (input mask (n*features,), recurrent mask (n*state_size,), state_size
        by default the units) in ctx's buffers, None where off (inference, or a rate of 0); a
        pass that draws advances ``calls``."""
        if not training or not self.draws:
            return None, None
        seed = (self._mask_seed or 0) ^ (_BACKWARDS_SALT if self.go_backwards else 0)
        in_mask = rec_mask = None
        if self.dropout > 0.0:
            in_mask = ctx.rows_buffer("in_mask", (features,)).reshape(-1)
            ctx.be.dropout_mask(seed, self.calls, self.dropout, in_mask)
        if self.recurrent_dropout > 0.0:
            units = self.units if state_size is None else state_size  # type: ignore[attr-defined]
            rec_mask = ctx.rows_buffer("rec_mask", (units,)).reshape(-1)
            ctx.be.dropout_mask(seed ^ _REC_SALT, self.calls, self.recurrent_dropout, rec_mask)
        self.calls += 1
        return in_mask, rec_mask

    def _dropout_config(self, config: dict[str, Any]) -> dict[str, Any]:
        for key in ("dropout", "recurrent_dropout"):
            if getattr(self, key):
                config[key] = getattr(self, key)
        if self.seed is not None:
            config["seed"] = self.seed
        if self._mask_seed is not None and self.draws and (self.calls or self.seed is None):
            # where the stream stands: a loaded model goes on with the same masks
            config["state"] = {"mask_seed": self._mask_seed, "calls": self.calls}
        return config

    def set_state(self, state: Any) -> None:
        """Restore ``get_config()["state"]`` (the mask stream's seed and counter)."""
        self._mask_seed, self.calls = stream_state(type(self).__name__, state)
