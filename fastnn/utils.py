"""Keras' helpers (``keras.utils``): ``to_categorical``, ``pad_sequences``,
``set_random_seed``, ``plot_model`` and ``model_to_dot`` (fastnn/model_plot.py)."""

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


def pad_sequences(sequences: Any, maxlen: Optional[int] = None, dtype: Any = "int32",
                  padding: str = "pre", truncating: str = "pre",
                  value: float = 0.0) -> NDArray[Any]:
    """Sequences of different lengths as one array (n, maxlen), as Keras' ``pad_sequences``:
    each padded with ``value`` before (``padding="pre"``, Keras' default) or after it
    (``"post"``), and one longer than ``maxlen`` cut at its start (``truncating="pre"``) or
    end. With ``value`` 0 it is what ``Embedding(mask_zero=True)`` and ``Masking`` skip.

    Parameters
    ----------
    sequences : sequence of sequences
        Each a list or array of numbers (or of vectors, all of one shape).
    maxlen : int, optional
        The length of the result, >= 0; default the longest sequence's.
    dtype : str or NumPy type, default "int32"
        A numeric dtype.
    padding, truncating : {"pre", "post"}
    value : float, default 0.0

    Returns
    -------
    ndarray of shape (len(sequences), maxlen, *vector shape)

    Raises
    ------
    TypeError
        If ``sequences`` is not a sequence of sequences of numbers, or ``dtype`` is not
        numeric.
    ValueError
        For a negative ``maxlen``, an unknown ``padding`` or ``truncating``, or vectors of
        different shapes.

    Examples
    --------
    >>> from fastnn.utils import pad_sequences
    >>> pad_sequences([[1, 2, 3], [4], [5, 6]])
    array([[1, 2, 3],
           [0, 0, 4],
           [0, 5, 6]], dtype=int32)
    >>> pad_sequences([[1, 2, 3], [4]], maxlen=2, padding="post", truncating="post")
    array([[1, 2],
           [4, 0]], dtype=int32)
    """
    padding = V.check_choice("padding", padding, ["pre", "post"])
    truncating = V.check_choice("truncating", truncating, ["pre", "post"])
    kind = np.dtype(dtype)
    if kind.kind not in "biuf":
        raise TypeError(f"dtype must be a numeric dtype. Received: dtype={kind}")
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise TypeError(f"sequences must be a list of sequences. Received: "
                        f"{V._describe(sequences)}")
    rows = []
    for i, seq in enumerate(sequences):
        if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__"):
            raise TypeError(f"sequences[{i}] must be a sequence of numbers. Received: "
                            f"{V._describe(seq)}")
        arr = np.asarray(seq)
        if arr.size and arr.dtype.kind not in "biuf":
            raise TypeError(f"sequences[{i}] must hold numbers. Received: dtype {arr.dtype}")
        rows.append(arr)
    vector = next((r.shape[1:] for r in rows if len(r)), ())
    longest = max((len(r) for r in rows), default=0)
    length = longest if maxlen is None else V.check_int("maxlen", maxlen, low=0)
    out = np.full((len(rows), length, *vector), value, dtype=kind)
    for i, arr in enumerate(rows):
        if not len(arr) or not length:
            continue
        if arr.shape[1:] != vector:
            raise ValueError(f"sequences[{i}] holds steps of shape {arr.shape[1:]}, others "
                             f"{vector}: every step must have one shape")
        kept = arr[-length:] if truncating == "pre" else arr[:length]
        if padding == "pre":
            out[i, length - len(kept):] = kept
        else:
            out[i, :len(kept)] = kept
    return out


def plot_model(model: Any, to_file: Any = "model.png", **options: Any) -> Any:
    """Draw the model's graph into ``to_file`` (Keras' ``plot_model``): see
    ``fastnn.model_plot.plot_model`` for the options and file forms."""
    from fastnn.model_plot import plot_model as draw
    return draw(model, to_file, **options)


def model_to_dot(model: Any, **options: Any) -> str:
    """The model's graph in Graphviz's DOT language (Keras' ``model_to_dot``): see
    ``fastnn.model_plot.model_to_dot``."""
    from fastnn.model_plot import model_to_dot as dot
    return dot(model, **options)
