"""Small datasets for examples and tests: real data shipped in the package, seeded generators.

Nothing here touches the network. Next to this file: the UCI digits (``digits.csv.gz``, CC BY 4.0,
``DIGITS_LICENSE.txt``), the sunspot numbers (``sunspots_*.csv.gz``, public domain,
``SUNSPOTS_LICENSE.txt``; :mod:`fastnn.datasets.time_series`) and an English word list
(``words.txt.gz``, public domain, ``WORDS_LICENSE.txt``; :mod:`fastnn.datasets.words`). Every
generator takes a ``seed`` and returns the same arrays for the same arguments.
"""

from __future__ import annotations

import gzip
import numbers
import os
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastnn import _validation as V

from .time_series import load_sunspots
from .words import (CharVocab, WordSequences, bits_per_char, char_sequences,
                    load_word_sequences, load_words)

__all__ = [
    "load_digits",
    "load_sunspots",
    "load_words",
    "CharVocab",
    "char_sequences",
    "load_word_sequences",
    "WordSequences",
    "bits_per_char",
    "train_test_split",
    "make_xor",
    "make_spirals",
    "smiley",
    "frown",
    "make_faces",
    "make_gaussian_ring",
]

_DIGITS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.csv.gz")


def load_digits(return_images: bool = False) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Load the UCI hand-written digits (1797 samples of 8x8 pixels, 10 classes).

    Alpaydin & Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine Learning
    Repository (1998), doi:10.24432/C50P49, licensed CC BY 4.0.

    Parameters
    ----------
    return_images : bool, default False
        If True, return the pixels as images of shape (1797, 8, 8) instead of rows of 64.

    Returns
    -------
    X : ndarray of float64, shape (1797, 64) or (1797, 8, 8)
        Raw pixel counts, integers 0..16 (divide by 16 to scale into [0, 1]).
    y : ndarray of int64, shape (1797,)
        The digit shown, 0..9, in file order.

    Examples
    --------
    >>> from fastnn.datasets import load_digits
    >>> X, y = load_digits()
    >>> X.shape, y.shape, float(X.max()), sorted(set(y.tolist()))
    ((1797, 64), (1797,), 16.0, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    >>> load_digits(return_images=True)[0].shape
    (1797, 8, 8)
    """
    with gzip.open(_DIGITS_FILE, "rt", encoding="ascii") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.int64)
    X = data[:, :64].astype(np.float64)
    y = np.ascontiguousarray(data[:, 64])
    if return_images:
        X = X.reshape(-1, 8, 8)
    return X, y


def _check_int(name: str, value: Any, low: Optional[int] = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer. Received: {name}={V._describe(value)}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be an integer >= {low}. "
                         f"Received: {name}={V._describe(value)}")
    return int(value)


def _check_float(name: str, value: Any, low: Optional[float] = None) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number. Received: {name}={V._describe(value)}")
    if not np.isfinite(value) or (low is not None and value < low):  # type: ignore[call-overload]
        raise ValueError(f"{name} must be a finite number >= {low}. "
                         f"Received: {name}={V._describe(value)}")
    return float(value)


def _split_counts(sizes, n_test):
    """Share n_test among groups in proportion to sizes (largest remainder, stable)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    exact = sizes * (n_test / sizes.sum())
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n_test - counts.sum()]] += 1
    return counts


def train_test_split(X: ArrayLike, y: ArrayLike, test_size: float = 0.25, seed: int = 0,
                     stratify: bool = True) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any],
                                                     NDArray[Any]]:
    """Split ``X`` and ``y`` into a training part and a test part, deterministically.

    Parameters
    ----------
    X : array_like, shape (n, ...)
        Samples; only the first axis is split.
    y : array_like, shape (n,) or (n, k)
        Targets, split along with ``X``. With ``stratify`` each distinct value (or row) is a class.
    test_size : float in (0, 1) or int in [1, n - 1], default 0.25
        The fraction of samples (float) or the number of samples (int) that go to the test part.
    seed : int, default 0
        Seed of ``numpy.random.default_rng``; the same seed gives the same split.
    stratify : bool, default True
        Split every class with the same proportion, so both parts keep the class balance. The test
        count of each class is its share of the total test size, rounded by largest remainder.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
        Rows of ``X`` and ``y`` (as NumPy arrays of their original dtype), each part in a shuffled order.

    Raises
    ------
    ValueError
        If ``X`` and ``y`` differ in length, hold fewer than 2 samples, or ``test_size`` or
        ``seed`` is out of range.
    TypeError
        If ``test_size``, ``seed`` or ``stratify`` has the wrong type.

    Examples
    --------
    >>> from fastnn.datasets import load_digits, train_test_split
    >>> X, y = load_digits()
    >>> X_train, X_test, y_train, y_test = train_test_split(X / 16, y, test_size=0.25, seed=0)
    >>> X_train.shape, X_test.shape
    ((1348, 64), (449, 64))
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim == 0:
        raise ValueError(f"X must have at least one dimension. Received: X with shape {X.shape}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D. Received: y with shape {y.shape}")
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(
            f"X and y must have the same number of samples. Received: X with {n}, y with {y.shape[0]}"
        )
    if n < 2:
        raise ValueError(f"need at least 2 samples to split. Received: X with shape {X.shape}")
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, numbers.Real):
        raise TypeError(f"test_size must be a float or an int. "
                        f"Received: test_size={V._describe(test_size)}")
    if isinstance(test_size, numbers.Integral):
        if not 1 <= test_size <= n - 1:
            raise ValueError(f"test_size must be in [1, {n - 1}]. "
                             f"Received: test_size={V._describe(test_size)}")
        n_test = int(test_size)
    else:
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size must be in (0, 1). "
                             f"Received: test_size={V._describe(test_size)}")
        n_test = min(max(int(round(test_size * n)), 1), n - 1)
    seed = _check_int("seed", seed, low=0)
    if not isinstance(stratify, (bool, np.bool_)):
        raise TypeError(f"stratify must be True or False. "
                        f"Received: stratify={V._describe(stratify)}")

    rng = np.random.default_rng(seed)
    if stratify:
        _, group = np.unique(y.reshape(n, -1), axis=0, return_inverse=True)
        group = group.reshape(-1)
        members = [np.flatnonzero(group == g) for g in range(group.max() + 1)]
        counts = _split_counts([len(m) for m in members], n_test)
        test_parts, train_parts = [], []
        for idx, k in zip(members, counts):
            idx = rng.permutation(idx)
            test_parts.append(idx[:k])
            train_parts.append(idx[k:])
        test_idx = rng.permutation(np.concatenate(test_parts))
        train_idx = rng.permutation(np.concatenate(train_parts))
    else:
        perm = rng.permutation(n)
        test_idx, train_idx = perm[:n_test], perm[n_test:]
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


def make_xor() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The four points of XOR.

    Returns
    -------
    X : ndarray of float64, shape (4, 2)
        ``[[0, 0], [0, 1], [1, 0], [1, 1]]``.
    y : ndarray of int64, shape (4,)
        ``[0, 1, 1, 0]``, the exclusive or of the two columns.
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return X, y


def make_spirals(n_per_class: int = 100, noise: float = 0.05, turns: float = 1.25,
                 seed: int = 0) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Two interleaved Archimedean spirals in the plane, one per class.

    Point ``i`` of class ``c`` sits at radius ``r = 0.1 + 0.9 * i / (n - 1)`` and angle
    ``2 * pi * turns * (r - 0.1) / 0.9 + c * pi``, plus Gaussian noise of standard deviation
    ``noise`` on each coordinate, so both spirals fill the disc of radius about 1 and their
    arms lie ``0.9 / (2 * turns)`` apart along a ray.

    Parameters
    ----------
    n_per_class : int, default 100
        Points per spiral (>= 2).
    noise : float, default 0.05
        Standard deviation of the Gaussian noise added to each coordinate (>= 0).
    turns : float, default 1.25
        How many full turns each spiral makes (> 0).
    seed : int, default 0
        Seed of ``numpy.random.default_rng`` for the noise.

    Returns
    -------
    X : ndarray of float64, shape (2 * n_per_class, 2)
        The points, class 0 first, then class 1.
    y : ndarray of int64, shape (2 * n_per_class,)
        The spiral each point belongs to, 0 or 1.

    Raises
    ------
    TypeError
        If an argument is not a number of the right kind.
    ValueError
        If an argument is out of its range.

    Examples
    --------
    >>> from fastnn.datasets import make_spirals
    >>> X, y = make_spirals(n_per_class=50, seed=1)
    >>> X.shape, y.shape, int(y.sum())
    ((100, 2), (100,), 50)
    """
    n = _check_int("n_per_class", n_per_class, low=2)
    noise = _check_float("noise", noise, low=0.0)
    turns = _check_float("turns", turns, low=0.0)
    if turns == 0.0:
        raise ValueError(f"turns must be > 0. Received: turns={V._describe(turns)}")
    seed = _check_int("seed", seed, low=0)
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, n)
    r = 0.1 + 0.9 * t
    X = np.empty((2 * n, 2), dtype=np.float64)
    for c in (0, 1):
        angle = 2.0 * np.pi * turns * t + c * np.pi
        X[c * n:(c + 1) * n, 0] = r * np.cos(angle)
        X[c * n:(c + 1) * n, 1] = r * np.sin(angle)
    X += noise * rng.standard_normal(X.shape)
    y = np.repeat(np.arange(2, dtype=np.int64), n)
    return X, y


_SMILEY = """
.......
.#...#.
.#...#.
.......
#.....#
.#...#.
..###..
"""

_FROWN = """
.......
.#...#.
.#...#.
.......
..###..
.#...#.
#.....#
"""


def _picture(text: str) -> NDArray[np.float64]:
    return np.array([[ch == "#" for ch in row] for row in text.split()], dtype=np.float64)


def smiley() -> NDArray[np.float64]:
    """The 7x7 smiley face: two eyes and a smiling mouth.

    Returns
    -------
    ndarray of float64, shape (7, 7)
        1.0 where a pixel is ink, 0.0 elsewhere (a fresh copy on every call).
    """
    return _picture(_SMILEY)


def frown() -> NDArray[np.float64]:
    """The 7x7 frowning face: the smiley with its mouth upside down.

    Returns
    -------
    ndarray of float64, shape (7, 7)
        1.0 where a pixel is ink, 0.0 elsewhere.
    """
    return _picture(_FROWN)


def make_faces(n_per_class: int = 50, flip_prob: float = 0.05, seed: int = 0
               ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """A tiny dataset of noisy 7x7 faces: smiley (label 1) against frown (label 0).

    Parameters
    ----------
    n_per_class : int, default 50
        Faces of each kind (>= 1).
    flip_prob : float in [0, 0.5), default 0.05
        Probability that each pixel of each sample is flipped (0 <-> 1).
    seed : int, default 0
        Seed of ``numpy.random.default_rng`` for the pixel flips and the sample order.

    Returns
    -------
    X : ndarray of float64, shape (2 * n_per_class, 49)
        Flattened faces, pixels 0.0 or 1.0, in a shuffled order.
    y : ndarray of int64, shape (2 * n_per_class,)
        1 for a smiley, 0 for a frown.

    Raises
    ------
    TypeError
        If an argument is not a number of the right kind.
    ValueError
        If an argument is out of its range.

    Examples
    --------
    >>> from fastnn.datasets import make_faces
    >>> X, y = make_faces(n_per_class=10, flip_prob=0.0)
    >>> X.shape, int(y.sum())
    ((20, 49), 10)
    """
    n = _check_int("n_per_class", n_per_class, low=1)
    flip_prob = _check_float("flip_prob", flip_prob, low=0.0)
    if flip_prob >= 0.5:
        raise ValueError(f"flip_prob must be in [0, 0.5). "
                         f"Received: flip_prob={V._describe(flip_prob)}")
    seed = _check_int("seed", seed, low=0)
    rng = np.random.default_rng(seed)
    clean = np.concatenate([np.repeat(smiley().reshape(1, 49), n, axis=0),
                            np.repeat(frown().reshape(1, 49), n, axis=0)])
    y = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    flips = rng.random(clean.shape) < flip_prob
    X = np.abs(clean - flips)
    order = rng.permutation(2 * n)
    return X[order], y[order]


def make_gaussian_ring(n: int = 1000, modes: int = 8, radius: float = 2.0, std: float = 0.02,
                       seed: int = 0) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Points from ``modes`` Gaussians evenly spaced on a circle: the standard test of whether
    a GAN covers every mode of a distribution or collapses onto a few.

    Mode ``k`` is centred at ``radius * (cos(2 pi k / modes), sin(2 pi k / modes))``; each point
    picks a mode uniformly and adds isotropic Gaussian noise of standard deviation ``std``.

    Parameters
    ----------
    n : int, default 1000
        Number of points, >= 1.
    modes : int, default 8
        Number of Gaussians, >= 1.
    radius : float, default 2.0
        Radius of the circle, >= 0.
    std : float, default 0.02
        Standard deviation of each Gaussian, >= 0.
    seed : int, default 0
        Seed of the sampling (>= 0).

    Returns
    -------
    X : ndarray of float64, shape (n, 2)
        The points.
    centers : ndarray of float64, shape (modes, 2)
        The modes' centres.

    Examples
    --------
    >>> from fastnn.datasets import make_gaussian_ring
    >>> X, centers = make_gaussian_ring(n=4, seed=0)
    >>> X.shape, centers.shape
    ((4, 2), (8, 2))
    """
    n = _check_int("n", n, low=1)
    modes = _check_int("modes", modes, low=1)
    radius = _check_float("radius", radius, low=0.0)
    std = _check_float("std", std, low=0.0)
    rng = np.random.default_rng(_check_int("seed", seed, low=0))
    angles = 2 * np.pi * np.arange(modes) / modes
    centers = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    X = centers[rng.integers(0, modes, n)] + std * rng.standard_normal((n, 2))
    return X, centers
