"""Keras' helpers (``keras.utils``): ``to_categorical``, ``set_random_seed``."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastnn import _validation as V

# set_random_seed's sequence: each model made without a seed takes the next child of it
_global_seeds: Optional[np.random.SeedSequence] = None


def set_random_seed(seed: int) -> None:
    """Make a whole program's randomness repeat, as Keras' ``set_random_seed``.

    After it, models made without ``seed=`` draw their initial weights, dropout masks and
    shuffling from a sequence that starts at ``seed``: the same program gives the same models
    in the same order. It also seeds Python's ``random`` and NumPy's global generator, as
    Keras does. A model's own ``seed=`` still decides for that model alone.

    Raises
    ------
    TypeError, ValueError
        If ``seed`` is not an integer >= 0.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.utils.set_random_seed(7)
    >>> a = fnn.Sequential([fnn.Dense(2)], input_dim=3).get_weights()[0]
    >>> fnn.utils.set_random_seed(7)
    >>> b = fnn.Sequential([fnn.Dense(2)], input_dim=3).get_weights()[0]
    >>> bool((a == b).all())
    True
    """
    import random
    global _global_seeds
    seed = V.check_int("seed", seed, low=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    _global_seeds = np.random.SeedSequence(seed)


def _seed_sequence(seed: Optional[int]) -> np.random.SeedSequence:
    """A model's seed sequence: its own seed's, else the next from ``set_random_seed``'s,
    else fresh entropy."""
    if seed is None and _global_seeds is not None:
        return _global_seeds.spawn(1)[0]
    return np.random.SeedSequence(seed)


def to_categorical(y: ArrayLike, num_classes: Optional[int] = None,
                   dtype: Any = "float32") -> NDArray[Any]:
    """One-hot rows from integer class labels, as Keras' ``to_categorical``.

    fastnn's cross-entropy takes the labels themselves too; this is for code written for
    Keras' ``categorical_crossentropy``.

    Parameters
    ----------
    y : array_like of int
        Labels in [0, num_classes), of any shape; a last axis of length 1 is dropped (a column
        of labels), as in Keras.
    num_classes : int, optional
        The number of classes, >= 1. Default: the largest label + 1.
    dtype : str or NumPy type, default "float32"

    Returns
    -------
    ndarray of shape y.shape + (num_classes,)

    Raises
    ------
    ValueError
        If a label is negative, not a whole number, or >= num_classes.
    TypeError
        If ``y`` does not hold numbers, or ``num_classes`` is not an integer.

    Examples
    --------
    >>> from fastnn.utils import to_categorical
    >>> to_categorical([0, 2, 1])
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    """
    labels = np.asarray(y)
    if labels.dtype.kind == "f":
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            raise ValueError(f"y must hold whole-number class labels. Received: a label "
                             f"{float(labels[~whole].ravel()[0])}")
    elif labels.dtype.kind not in "iub":
        raise TypeError(f"y must hold integer class labels. Received: y of dtype "
                        f"{labels.dtype}")
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"y must hold class labels >= 0. Received: {int(labels.min())}")
    top = int(labels.max()) + 1 if labels.size else 0
    if num_classes is None:
        num_classes = max(top, 1)
    else:
        num_classes = V.check_positive_int("num_classes", num_classes)
        if top > num_classes:
            raise ValueError(f"y holds the label {top - 1}, not below num_classes="
                             f"{num_classes}")
    out = np.zeros(labels.shape + (num_classes,), dtype=np.dtype(dtype))
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return out
