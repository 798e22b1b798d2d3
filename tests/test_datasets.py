"""fastnn.datasets: the bundled digits, sunspots and words, and the seeded generators."""

import gzip
import hashlib
import os
import zlib

import numpy as np
import pytest

from fastnn import datasets
from fastnn.datasets import (CharVocab, bits_per_char, char_sequences, frown, load_digits,
                             load_sunspots, load_word_sequences, load_words, make_faces,
                             make_spirals, make_xor, smiley, train_test_split)

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


def _text_sha256(name):
    with gzip.open(os.path.join(DATA_DIR, name), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_new_loaders_are_exported():
    for name in ("load_sunspots", "load_words", "CharVocab", "char_sequences",
                 "load_word_sequences", "WordSequences", "bits_per_char"):
        assert name in datasets.__all__ and getattr(datasets, name) is not None


def test_sunspots_monthly_values():
    t, r = load_sunspots()
    assert t.shape == r.shape == (3120,) and t.dtype == r.dtype == np.float64
    assert r.flags.c_contiguous and t.flags.c_contiguous
    # January 1749 .. December 2008, one value per month, evenly spaced
    assert t[0] == 1749.0 and np.isclose(t[-1], 2008 + 11 / 12)
    assert np.allclose(np.diff(t), 1 / 12)
    # the first and last year as printed in statsmodels' sunspots_monthly.dat
    assert r[:12].tolist() == [58.0, 62.6, 70.0, 55.7, 85.0, 83.5, 94.8, 66.3, 75.9, 75.5,
                               158.6, 85.2]
    assert r[-12:].tolist() == [3.3, 2.1, 9.3, 2.9, 3.2, 3.4, 0.8, 0.5, 1.1, 2.9, 4.1, 0.8]
    assert r.min() == 0.0 and r.max() == 253.8 and np.isclose(t[np.argmax(r)], 1957 + 9 / 12)
    assert np.all(r >= 0) and np.all(np.round(r * 10) == r * 10)    # one decimal


def test_sunspots_yearly_values_and_agreement_with_the_monthly_means():
    t, r = load_sunspots("yearly")
    assert t.shape == r.shape == (309,) and t.dtype == r.dtype == np.float64
    assert t.tolist() == [float(y) for y in range(1700, 2009)]
    assert r[:5].tolist() == [5.0, 11.0, 16.0, 23.0, 36.0] and r[-2:].tolist() == [7.5, 2.9]
    assert r.max() == 190.2 and t[np.argmax(r)] == 1957.0
    # the yearly numbers are the monthly means' yearly averages, rounded (1749-2008)
    _, monthly = load_sunspots("monthly")
    assert np.max(np.abs(monthly.reshape(260, 12).mean(axis=1) - r[49:])) < 0.5
    # the ~11-year solar cycle: the strongest period of the monthly series
    spectrum = np.abs(np.fft.rfft(monthly - monthly.mean()))
    period_years = len(monthly) / (1 + np.argmax(spectrum[1:])) / 12
    assert 10 < period_years < 12


@pytest.mark.parametrize("frequency", ["daily", "Monthly", "", None, 12])
def test_sunspots_reject_bad_frequency(frequency):
    with pytest.raises(ValueError, match=r"frequency.*" + repr(frequency).replace("'", ".")):
        load_sunspots(frequency)


def test_sequence_data_files_are_small_reproducible_and_licensed():
    sizes = {name: os.path.getsize(os.path.join(DATA_DIR, name))
             for name in ("sunspots_monthly.csv.gz", "sunspots_yearly.csv.gz", "words.txt.gz")}
    assert sizes["sunspots_monthly.csv.gz"] < 20_000 and sizes["sunspots_yearly.csv.gz"] < 5_000
    assert sizes["words.txt.gz"] < 200_000
    assert _text_sha256("sunspots_monthly.csv.gz") == \
        "1cb2906a4db5d7ac16efb595d3acac67a39b7ff609e93df868340f82f8b5e57c"
    assert _text_sha256("sunspots_yearly.csv.gz") == \
        "c0740c96ce2ae2d190a099d8ed7bb2a8e35c77e4d9a358439bcd9e65394c15a6"
    assert _text_sha256("words.txt.gz") == \
        "d4913a61f575a8ce31cd0b1dd5d9f245d4267b6c763f369061c3a04f716853bd"
    with open(os.path.join(DATA_DIR, "SUNSPOTS_LICENSE.txt"), encoding="utf-8") as f:
        text = f.read()
    assert "This data is public domain." in text and "statsmodels 0.15.0" in text
    assert "1cb2906a4db5d7ac16efb595d3acac67a39b7ff609e93df868340f82f8b5e57c" in text
    with open(os.path.join(DATA_DIR, "WORDS_LICENSE.txt"), encoding="utf-8") as f:
        text = f.read()
    assert "The 1934 copyright has lapsed." in text and "english-words 2.0.2" in text
    assert "MIT License" in text
    assert "d4913a61f575a8ce31cd0b1dd5d9f245d4267b6c763f369061c3a04f716853bd" in text


def test_words_content():
    words = load_words()
    assert len(words) == 51231 and all(isinstance(w, str) for w in words)
    assert words == sorted(set(words))                       # sorted, no duplicates
    assert all(2 <= len(w) <= 15 and w.isascii() and w.isalpha() and w.islower() for w in words)
    assert set("".join(words)) == set("abcdefghijklmnopqrstuvwxyz")
    assert words[:3] == ["aalii", "aardvark", "abacination"] and words[-1] == "zymotoxic"
    for w in ("winter", "summer", "silver", "bridge", "castle", "engine", "guitar", "rabbit"):
        assert w in words
    assert "a" not in words and "aaron" not in words       # one letter; a proper noun in web2
    words.clear()
    assert len(load_words()) == 51231                        # a new list on every call


def test_words_split_is_fixed_disjoint_and_complete():
    everything = load_words()
    train, validation = load_words("train"), load_words("validation")
    assert (len(train), len(validation)) == (46112, 5119)
    assert validation[:3] == ["aalii", "abaciscus", "abandoner"]
    assert train[:3] == ["aardvark", "abacination", "abacist"]
    assert not set(train) & set(validation)
    assert sorted(train + validation) == everything
    assert train == sorted(train) and validation == sorted(validation)
    # the rule written in the docs: CRC-32 of the ASCII bytes divisible by 10
    assert all(zlib.crc32(w.encode("ascii")) % 10 == 0 for w in validation)
    assert load_words(split="validation") == validation


@pytest.mark.parametrize("split", ["test", "valid", "Train", "", 0, ["train"]])
def test_words_reject_bad_split(split):
    with pytest.raises(ValueError, match=r"split.*Received: split="):
        load_words(split)


def test_char_vocab_ids_and_round_trip():
    vocab = CharVocab(["hello", "world"])
    assert vocab.chars == ("d", "e", "h", "l", "o", "r", "w") and vocab.size == 8
    assert vocab.encode("hello") == [3, 2, 4, 4, 5] and vocab.encode("") == []
    assert vocab.decode([3, 2, 4, 4, 5]) == "hello"
    assert vocab.decode(np.array([0, 7, 5, 6, 4, 1, 0, 0])) == "world"     # 0s are skipped
    assert vocab.decode(np.array([[0, 1], [2, 0]], dtype=np.int32)) == "de"
    assert CharVocab(iter(["world", "hello"])).chars == vocab.chars          # order-independent
    assert "size=8" in repr(vocab)
    words = load_words()
    full = CharVocab(words)
    assert full.size == 27 and full.encode("abz") == [1, 2, 26]
    assert all(full.decode(full.encode(w)) == w for w in words[::50])


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: CharVocab("hello"), TypeError, r"words.*hello"),
    (lambda: CharVocab([]), ValueError, r"at least one character"),
    (lambda: CharVocab(["", ""]), ValueError, r"at least one character"),
    (lambda: CharVocab(["ab", 3]), TypeError, r"strings.*3"),
    (lambda: CharVocab(5), TypeError, r"words.*5"),
    (lambda: CharVocab(["ab"]).encode("abc"), ValueError, r"'c'.*word='abc'"),
    (lambda: CharVocab(["ab"]).encode(["a"]), TypeError, r"word.*\['a'\]"),
    (lambda: CharVocab(["ab"]).decode([1, 3]), ValueError, r"0\.\.2.*3"),
    (lambda: CharVocab(["ab"]).decode([-1]), ValueError, r"-1"),
    (lambda: CharVocab(["ab"]).decode([1.0]), TypeError, r"integers.*1\.0"),
    (lambda: CharVocab(["ab"]).decode(np.array([1.5])), TypeError, r"1\.5"),
])
def test_char_vocab_rejects_bad_arguments(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_char_sequences_on_a_hand_written_example():
    vocab = CharVocab(["abc"])                               # a=1, b=2, c=3
    X, y = char_sequences(["cab", "b", "ba"], vocab, length=6)
    assert X.dtype == y.dtype == np.int64 and X.shape == y.shape == (3, 6)
    assert X.tolist() == [[0, 3, 1, 2, 0, 0], [0, 2, 0, 0, 0, 0], [0, 2, 1, 0, 0, 0]]
    assert y.tolist() == [[3, 1, 2, 0, 0, 0], [2, 0, 0, 0, 0, 0], [2, 1, 0, 0, 0, 0]]
    # default length: the longest word + 1 (its start token and characters)
    X2, y2 = char_sequences(["cab", "b", "ba"], vocab)
    assert X2.tolist() == X[:, :4].tolist() and y2.tolist() == y[:, :4].tolist()
    X3, _ = char_sequences(["cab"], vocab, length=np.int64(4))
    assert X3.shape == (1, 4)


def test_char_sequences_on_the_word_list():
    words = load_words("validation")
    vocab = CharVocab(load_words())
    X, y = char_sequences(words, vocab, length=16)
    assert X.shape == y.shape == (5119, 16)
    assert np.all(X[:, 0] == 0)                              # every row starts at the boundary
    assert np.array_equal(X[:, 1:], y[:, :-1]) and np.all(y[:, -1] == 0)
    lengths = np.array([len(w) for w in words])
    assert np.array_equal((y > 0).sum(axis=1), lengths)      # one target per character, then 0
    assert [vocab.decode(row) for row in X[:50]] == words[:50]
    assert [vocab.decode(row) for row in y[:50]] == words[:50]


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"length": 3}, ValueError, r"length.*4.*length=3"),
    ({"length": 0}, ValueError, r"length=0"),
    ({"length": 4.0}, TypeError, r"length.*4\.0"),
    ({"length": True}, TypeError, r"length.*True"),
    ({"words": []}, ValueError, r"words.*at least one"),
    ({"words": "cab"}, TypeError, r"words.*cab"),
    ({"words": ["cab", "dab"]}, ValueError, r"'d'.*dab"),
    ({"vocab": {"a": 1}}, TypeError, r"vocab.*CharVocab"),
])
def test_char_sequences_rejects_bad_arguments(kwargs, exc, pattern):
    args = {"words": ["cab", "a"], "vocab": CharVocab(["abc"]), **kwargs}
    with pytest.raises(exc, match=pattern):
        char_sequences(**args)


def test_load_word_sequences_is_the_split_through_char_sequences():
    data = load_word_sequences()
    assert data.train == load_words("train") and data.validation == load_words("validation")
    assert data.vocab.chars == CharVocab(load_words()).chars and data.length == 16
    for words, X, y in ((data.train, data.X_train, data.y_train),
                        (data.validation, data.X_val, data.y_val)):
        X_ref, y_ref = char_sequences(words, data.vocab, 16)
        assert np.array_equal(X, X_ref) and np.array_equal(y, y_ref)
    vocab, length, *_ = data                                  # a tuple, unpacked in examples
    assert vocab is data.vocab and length == 16


def test_bits_per_char_scores_each_word_and_its_end_only():
    vocab = CharVocab(["abc"])                                # a=1, b=2, c=3; V = 4
    words = ["cab", "b"]
    X, y = char_sequences(words, vocab, length=5)
    probs = np.full((2, 5, 4), 0.25)
    probs[0, 0] = [0.1, 0.1, 0.1, 0.7]                        # 'c' first: p = 0.7
    probs[:, 4] = [0.0, 0.0, 0.0, 1.0]                        # padding steps: not scored
    probs[1, 3] = 0.0                                         # (p = 0 there is fine)
    expected = -(np.log2(0.7) + 3 * np.log2(0.25) + 2 * np.log2(0.25)) / 6     # 4 + 2 scored
    assert bits_per_char(probs, y, words) == pytest.approx(expected, rel=1e-12)
    assert bits_per_char(probs.astype(np.float32), y, words) == pytest.approx(expected,
                                                                              rel=1e-6)


@pytest.mark.parametrize("probs, targets, words, exc, pattern", [
    (np.full((2, 5, 4), 0.25), np.zeros((2, 4), np.int64), ["ab", "b"], ValueError, "targets"),
    (np.full((2, 5, 4), 0.25), np.zeros((2, 5), np.int64), ["ab"], ValueError, "1 words"),
    (np.full((2, 5), 0.25), np.zeros((2, 5), np.int64), ["ab", "b"], ValueError, "probs"),
    (np.full((1, 5, 4), 0.25), np.full((1, 5), 4), ["ab"], ValueError, r"0\.\.3"),
    (np.full((1, 5, 4), 0.25), np.zeros((1, 5)), ["ab"], ValueError, "float64"),
    (np.full((1, 5, 4), 0.25), np.zeros((1, 5), np.int64), ["abcde"], ValueError, "shorter"),
    (np.zeros((1, 5, 4)), np.zeros((1, 5), np.int64), ["ab"], ValueError, "positive"),
    (np.full((1, 5, 4), np.nan), np.zeros((1, 5), np.int64), ["ab"], ValueError, "finite"),
    (np.full((1, 5, 4), 0.25), np.zeros((1, 5), np.int64), "ab", TypeError, "words"),
])
def test_bits_per_char_rejects_bad_arguments(probs, targets, words, exc, pattern):
    with pytest.raises(exc, match=pattern):
        bits_per_char(probs, targets, words)
