"""fastnn.datasets: the bundled digits and the seeded generators."""

import gzip
import hashlib
import os

import numpy as np
import pytest

from fastnn import datasets
from fastnn.datasets import (frown, load_digits, make_faces, make_spirals, make_xor, smiley,
                             train_test_split)

DATA_DIR = os.path.dirname(datasets.__file__)


def test_digits_shape_dtype_and_values():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.flags.c_contiguous
    assert np.array_equal(X, np.round(X))
    assert X.min() == 0 and X.max() == 16
    assert set(np.unique(y)) == set(range(10))
    # the class counts of the UCI test set
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # the first sample is a zero, pixel rows as in the UCI file
    assert y[0] == 0 and y[:10].tolist() == list(range(10))
    assert X[0, :8].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_digits_images_match_rows():
    X, y = load_digits()
    images, y2 = load_digits(return_images=True)
    assert images.shape == (1797, 8, 8)
    assert np.array_equal(images.reshape(1797, 64), X) and np.array_equal(y, y2)


def test_digits_file_is_small_reproducible_and_licensed():
    path = os.path.join(DATA_DIR, "digits.csv.gz")
    assert os.path.getsize(path) < 100_000
    with gzip.open(path, "rb") as f:
        raw = f.read()
    assert hashlib.sha256(raw).hexdigest() == \
        "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8"
    with open(os.path.join(DATA_DIR, "DIGITS_LICENSE.txt"), encoding="utf-8") as f:
        text = f.read()
    assert "CC BY 4.0" in text and "10.24432/C50P49" in text and "Alpaydin" in text


def test_digits_match_scikit_learn_copy():
    sk = pytest.importorskip("sklearn.datasets")
    X, y = load_digits()
    ref = sk.load_digits()
    assert np.array_equal(X, ref.data) and np.array_equal(y, ref.target)


@pytest.mark.parametrize("test_size", [0.25, 0.2, 0.5, 100])
def test_split_is_stratified_and_a_partition(test_size):
    X, y = load_digits()
    ids = np.arange(len(y), dtype=np.float64)[:, None]
    Xa = np.hstack([X, ids])
    Xtr, Xte, ytr, yte = train_test_split(Xa, y, test_size=test_size, seed=3)
    n_test = test_size if isinstance(test_size, int) else round(test_size * len(y))
    assert len(yte) == n_test and len(ytr) == len(y) - n_test
    # a partition: every sample exactly once, rows kept whole
    seen = np.sort(np.concatenate([Xtr[:, -1], Xte[:, -1]])).astype(int)
    assert np.array_equal(seen, np.arange(len(y)))
    assert np.array_equal(y[Xte[:, -1].astype(int)], yte)
    assert np.array_equal(X[Xtr[:, -1].astype(int)], Xtr[:, :-1])
    # each class within one sample of its exact share
    share = np.bincount(y) * (n_test / len(y))
    assert np.all(np.abs(np.bincount(yte, minlength=10) - share) < 1.0)


def test_split_deterministic_and_seeded():
    X, y = load_digits()
    a = train_test_split(X, y, seed=0)
    b = train_test_split(X, y, seed=0)
    c = train_test_split(X, y, seed=1)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)
    assert not np.array_equal(a[3], c[3])


def test_split_without_stratify():
    X = np.arange(40.0).reshape(20, 2)
    y = np.array([0] * 18 + [1] * 2)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.5, seed=0, stratify=False)
    assert len(yte) == 10 and len(ytr) == 10
    assert sorted(np.concatenate([Xtr[:, 0], Xte[:, 0]]).tolist()) == X[:, 0].tolist()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.5, seed=0, stratify=True)
    assert np.bincount(yte).tolist() == [9, 1]


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"test_size": 0.0}, ValueError, r"test_size.*0\.0"),
    ({"test_size": 1.0}, ValueError, r"test_size.*1\.0"),
    ({"test_size": -0.1}, ValueError, r"test_size.*-0\.1"),
    ({"test_size": 20}, ValueError, r"test_size.*20"),
    ({"test_size": "half"}, TypeError, r"test_size.*half"),
    ({"seed": -1}, ValueError, r"seed.*-1"),
    ({"seed": 1.5}, TypeError, r"seed.*1\.5"),
    ({"stratify": "yes"}, TypeError, r"stratify.*yes"),
    ({"y": np.zeros(19)}, ValueError, r"X.*y.*20.*19"),
])
def test_split_rejects_bad_arguments(kwargs, exc, pattern):
    args = {"X": np.zeros((20, 3)), "y": np.zeros(20), **kwargs}
    with pytest.raises(exc, match=pattern):
        train_test_split(**args)


def test_xor():
    X, y = make_xor()
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert X.shape == (4, 2) and y.shape == (4,)
    assert np.array_equal(y, np.logical_xor(X[:, 0], X[:, 1]).astype(int))
    assert {tuple(row) for row in X} == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_spirals_shape_determinism_and_geometry():
    X, y = make_spirals(n_per_class=50, noise=0.0, seed=0)
    assert X.shape == (100, 2) and X.dtype == np.float64
    assert y.dtype == np.int64 and np.bincount(y).tolist() == [50, 50]
    # without noise, class 1 is class 0 turned by 180 degrees
    assert np.allclose(X[y == 1], -X[y == 0])
    r = np.hypot(X[:, 0], X[:, 1])
    assert np.isclose(r.min(), 0.1) and np.isclose(r.max(), 1.0)
    a1, b1 = make_spirals(seed=7)
    a2, b2 = make_spirals(seed=7)
    a3, _ = make_spirals(seed=8)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
    assert not np.array_equal(a1, a3)
    noisy, _ = make_spirals(n_per_class=50, noise=0.05, seed=0)
    assert 0.02 < np.std(noisy - X) < 0.08


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"n_per_class": 1}, ValueError, r"n_per_class.*1"),
    ({"n_per_class": 2.0}, TypeError, r"n_per_class.*2\.0"),
    ({"noise": -0.1}, ValueError, r"noise.*-0\.1"),
    ({"noise": float("nan")}, ValueError, r"noise.*nan"),
    ({"turns": 0.0}, ValueError, r"turns.*0\.0"),
    ({"seed": -2}, ValueError, r"seed.*-2"),
])
def test_spirals_reject_bad_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make_spirals(**kwargs)


def test_smiley_and_frown():
    s, f = smiley(), frown()
    assert s.shape == (7, 7) and s.dtype == np.float64
    assert set(np.unique(s)) == {0.0, 1.0}
    # eyes in rows 1-2 at columns 1 and 5; the frown is the smiley with the mouth flipped
    assert s[1, 1] == s[1, 5] == s[2, 1] == s[2, 5] == 1
    assert np.array_equal(s[:4], f[:4]) and np.array_equal(s[4:], f[4:][::-1])
    assert np.array_equal(s, s[:, ::-1])        # left-right symmetric
    assert s[6, 2:5].tolist() == [1, 1, 1] and s[4, 0] == s[4, 6] == 1
    s[0, 0] = 5
    assert smiley()[0, 0] == 0                  # a fresh copy each call


def test_make_faces():
    X, y = make_faces(n_per_class=30, flip_prob=0.0, seed=0)
    assert X.shape == (60, 49) and y.shape == (60,) and np.bincount(y).tolist() == [30, 30]
    assert np.array_equal(X[y == 1], np.tile(smiley().ravel(), (30, 1)))
    assert np.array_equal(X[y == 0], np.tile(frown().ravel(), (30, 1)))
    Xn, yn = make_faces(n_per_class=200, flip_prob=0.1, seed=1)
    clean = np.where(yn[:, None] == 1, smiley().ravel(), frown().ravel())
    assert 0.08 < np.mean(Xn != clean) < 0.12
    assert set(np.unique(Xn)) == {0.0, 1.0}
    X2, y2 = make_faces(n_per_class=200, flip_prob=0.1, seed=1)
    assert np.array_equal(Xn, X2) and np.array_equal(yn, y2)
    with pytest.raises(ValueError, match=r"flip_prob.*0\.5"):
        make_faces(flip_prob=0.5)
