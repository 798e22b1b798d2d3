"""Warnings for set-ups that train without an error but cannot learn what the user meant.

Each is a mistake a newcomer makes and that fails silently (no exception, a loss that moves, a
model that learns nothing useful); the warning names the fix. Refused outright elsewhere: binary
targets outside [0, 1], targets whose shape does not match the outputs.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from fastnn import activations as A
from fastnn import losses as L


def warn_about_setup(loss: L.Loss, acts_and_widths: Sequence[tuple[int, int]]) -> None:
    """At compile: ``acts_and_widths`` lists each layer's (activation code, output width), the
    last one the model's output."""
    for act, width in acts_and_widths:
        if act == A.SOFTMAX and width == 1:
            warnings.warn("softmax over a single unit always outputs 1, so nothing can be "
                          "learned through it: use activation='sigmoid' for one output (or "
                          "softmax over 2 or more)", UserWarning, stacklevel=4)
            break
    act, width = acts_and_widths[-1]
    if isinstance(loss, L.CrossEntropy) and act == A.SIGMOID and width > 1:
        warnings.warn(f"cross_entropy over {width} classes after a final sigmoid treats each "
                      f"output as its own probability, so they do not sum to 1: use "
                      f"activation='softmax' for one class per sample (or "
                      f"binary_cross_entropy for several labels per sample)", UserWarning,
                      stacklevel=4)


def warn_about_targets(loss: L.Loss, y: Any) -> None:
    """At fit: MSE (or MAE) on integer targets is usually classification by mistake."""
    if not isinstance(loss, L.MeanSquaredError):
        return
    dtype = y.dtype if isinstance(y, np.ndarray) else np.asarray(y).dtype
    if np.issubdtype(dtype, np.integer):
        warnings.warn(f"{loss.name} on integer targets ({dtype}): if they are class labels, "
                      f"use loss='cross_entropy' with a softmax output (or "
                      f"binary_cross_entropy with a sigmoid for two classes); convert the "
                      f"targets to float to silence this for a regression", UserWarning,
                      stacklevel=4)
