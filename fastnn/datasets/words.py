"""A real English word list shipped with fastnn, and the pieces for character-level models.

``words.txt.gz`` next to this module holds 51,231 words of 2 to 15 lowercase letters from the
public-domain web2 list (Webster's Second International Dictionary, 1934), taken from the PyPI
package english-words 2.0.2; see ``WORDS_LICENSE.txt``. The train/validation split is fixed by
the words' CRC-32, so it is the same on every machine and Python version.
"""

from __future__ import annotations

import gzip
import numbers
import os
import zlib
from collections.abc import Iterable
from typing import Any, NamedTuple, Optional

import numpy as np
from numpy.typing import NDArray

from fastnn import _validation as V

__all__ = ["load_words", "CharVocab", "char_sequences", "load_word_sequences",
           "WordSequences", "bits_per_char"]

_WORDS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "words.txt.gz")
_SPLITS = (None, "train", "validation")


def _is_validation(word: str) -> bool:
    # zlib.crc32 is fixed by its standard, unlike hash(), which is salted per process
    return zlib.crc32(word.encode("ascii")) % 10 == 0


def load_words(split: Optional[str] = None) -> list[str]:
    """Load the English word list: 51,231 words of 2 to 15 letters a-z, sorted.

    The web2 list (Webster's Second International Dictionary, 1934, public domain) from the
    PyPI package english-words 2.0.2, kept to the entries made only of lowercase ASCII letters
    (no proper nouns) of length 2 to 15, without duplicates; of those, the quarter whose
    reversed word's ``zlib.crc32`` is divisible by 4 (a fixed sample independent of the split).

    Parameters
    ----------
    split : {None, "train", "validation"}, default None
        None: every word. ``"validation"``: the 5,119 words whose ``zlib.crc32`` (of the ASCII
        bytes) is divisible by 10, about a tenth. ``"train"``: the other 46,112. The two are
        disjoint, cover the list, and are the same on every machine.

    Returns
    -------
    list of str
        The words in alphabetical order (a new list on every call).

    Raises
    ------
    ValueError
        If ``split`` is not one of None, ``"train"``, ``"validation"``.

    Examples
    --------
    >>> from fastnn.datasets import load_words
    >>> words = load_words()
    >>> len(words), words[:3], "rabbit" in words
    (51231, ['aalii', 'aardvark', 'abacination'], True)
    >>> len(load_words("train")), load_words("validation")[:3]
    (46112, ['aalii', 'abaciscus', 'abandoner'])
    """
    if split not in _SPLITS:
        raise ValueError(
            f"split must be None, 'train' or 'validation'. Received: split={V._describe(split)}")
    with gzip.open(_WORDS_FILE, "rt", encoding="ascii") as f:
        words = f.read().split()
    if split is None:
        return words
    validation = split == "validation"
    return [w for w in words if _is_validation(w) == validation]


def _check_words(words: Any) -> list[str]:
    if isinstance(words, (str, bytes)) or not isinstance(words, Iterable):
        raise TypeError(f"words must be an iterable of strings. Received: words={words!r:.60}")
    words = list(words)
    for w in words:
        if not isinstance(w, str):
            raise TypeError(f"words must hold only strings. Received: an item {w!r:.60}")
    return words


class CharVocab:
    """The characters of a set of words, numbered 1..V; id 0 marks a word's start and end.

    Characters are numbered in sorted (code point) order, so the same characters give the same
    ids whatever the order of the words. Id 0 is no character: it is the boundary before and
    after each word (and the padding of :func:`char_sequences`).

    Parameters
    ----------
    words : iterable of str
        The words whose characters make the vocabulary (at least one character in all).

    Attributes
    ----------
    chars : tuple of str
        The V characters; ``chars[i - 1]`` has id ``i``.
    size : int
        ``V + 1``, the number of ids including 0: the ``input_dim`` of an Embedding and the
        number of classes a next-character softmax needs.

    Raises
    ------
    TypeError
        If ``words`` is a single string or holds anything but strings.
    ValueError
        If the words have no characters at all.

    Examples
    --------
    >>> from fastnn.datasets import CharVocab
    >>> vocab = CharVocab(["cab", "bad"])
    >>> vocab.chars, vocab.size
    (('a', 'b', 'c', 'd'), 5)
    >>> vocab.encode("dab"), vocab.decode([0, 4, 1, 2, 0])
    ([4, 1, 2], 'dab')
    """

    def __init__(self, words: Iterable[str]):
        chars = sorted(set("".join(_check_words(words))))
        if not chars:
            raise ValueError(
                f"words must contain at least one character. Received: words={words!r:.60}")
        self.chars: tuple[str, ...] = tuple(chars)
        self.size: int = len(chars) + 1
        self._ids = {c: i + 1 for i, c in enumerate(chars)}

    def __repr__(self) -> str:
        return f"CharVocab({''.join(self.chars)!r}, size={self.size})"

    def encode(self, word: str) -> list[int]:
        """The ids of ``word``'s characters, in order, without boundary ids.

        Raises ValueError if ``word`` has a character outside the vocabulary, TypeError if it
        is not a string.
        """
        if not isinstance(word, str):
            raise TypeError(f"word must be a string. Received: word={word!r:.60}")
        try:
            return [self._ids[c] for c in word]
        except KeyError as e:
            raise ValueError(f"word has the character {e.args[0]!r}, which is not in the "
                             f"vocabulary {''.join(self.chars)!r}. "
                             f"Received: word={V._describe(word)}"
                             ) from None

    def decode(self, ids: Iterable[Any]) -> str:
        """The string of the ids 1..V in ``ids``; the boundary id 0 is skipped wherever it is.

        So ``decode(encode(w)) == w``, and a row of :func:`char_sequences` decodes to its word.
        Raises ValueError for an id outside 0..V, TypeError for a non-integer.
        """
        if isinstance(ids, np.ndarray):
            ids = ids.reshape(-1).tolist()
        out = []
        for item in ids:
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, numbers.Integral):
                raise TypeError(f"ids must be integers. Received: an id {item!r:.60}")
            i = int(item)
            if not 0 <= i < self.size:
                raise ValueError(f"ids must be in 0..{self.size - 1}. Received: an id {i!r}")
            if i:
                out.append(self.chars[i - 1])
        return "".join(out)


def char_sequences(words: Iterable[str], vocab: CharVocab, length: Optional[int] = None
                   ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Inputs and next-character targets, one row per word, for a character-level model.

    Each word ``w`` becomes the id sequence ``s = [0] + vocab.encode(w) + [0]`` (start, the
    characters, end). Its row of ``X`` is ``s[:-1]`` and its row of ``y`` is ``s[1:]``, both
    padded with 0 on the right to ``length``: at step ``t`` the model sees ``X[i, t]`` (and the
    steps before) and must predict ``y[i, t]``, the next character, or 0 after the last one.
    The steps ``t <= len(w)`` are the word's ``len(w) + 1`` predictions; the steps after are
    padding (X = 0, y = 0), to be left out of a per-character loss or score, e.g. with the mask
    ``np.arange(length) <= lengths[:, None]``.

    Parameters
    ----------
    words : iterable of str
        The words, each made of ``vocab``'s characters.
    vocab : CharVocab
        Maps characters to ids 1..V.
    length : int, optional
        Steps per row, at least the longest word's length + 1. Default: exactly that.

    Returns
    -------
    X : ndarray of int64, shape (len(words), length)
        Input ids: 0 (start), the word's ids, then 0s.
    y : ndarray of int64, shape (len(words), length)
        Target ids: ``X`` shifted left by one step, i.e. the word's ids, 0 (end), then 0s.

    Raises
    ------
    TypeError
        If ``vocab`` is not a CharVocab, ``words`` not an iterable of strings, or ``length``
        not an integer.
    ValueError
        If ``words`` is empty, a word has a character outside ``vocab``, or a word is too long
        for ``length``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnn.datasets import CharVocab, char_sequences
    >>> vocab = CharVocab(["cab", "bad"])
    >>> X, y = char_sequences(["cab", "a"], vocab, length=5)
    >>> X
    array([[0, 3, 1, 2, 0],
           [0, 1, 0, 0, 0]])
    >>> y
    array([[3, 1, 2, 0, 0],
           [1, 0, 0, 0, 0]])
    >>> lengths = np.array([3, 1])
    >>> np.arange(5) <= lengths[:, None]        # the steps that are real predictions
    array([[ True,  True,  True,  True, False],
           [ True,  True, False, False, False]])
    """
    if not isinstance(vocab, CharVocab):
        raise TypeError(f"vocab must be a CharVocab. Received: vocab={vocab!r:.60}")
    words = _check_words(words)
    if not words:
        raise ValueError("words must hold at least one word. Received: words=[]")
    longest = max(len(w) for w in words)
    if length is None:
        length = longest + 1
    if isinstance(length, (bool, np.bool_)) or not isinstance(length, numbers.Integral):
        raise TypeError(f"length must be an integer. Received: length={V._describe(length)}")
    if length < longest + 1:
        raise ValueError(f"length must be at least the longest word's length + 1 ({longest + 1}) "
                         f"to hold the end of every word. Received: length={V._describe(length)}")
    X = np.zeros((len(words), int(length)), dtype=np.int64)
    y = np.zeros_like(X)
    for i, w in enumerate(words):
        ids = vocab.encode(w)
        X[i, 1:len(ids) + 1] = ids
        y[i, :len(ids)] = ids
    return X, y


class WordSequences(NamedTuple):
    """The word list's fixed split as next-character sequences (see ``load_word_sequences``)."""

    vocab: CharVocab
    length: int
    train: list[str]
    validation: list[str]
    X_train: NDArray[np.int64]
    y_train: NDArray[np.int64]
    X_val: NDArray[np.int64]
    y_val: NDArray[np.int64]


def load_word_sequences() -> WordSequences:
    """The word list's train/validation split, ready for a character-level language model.

    The vocabulary is ``CharVocab`` of all the words (27 ids: 0 for a word's start and end,
    then a-z), ``length`` is the longest word's length + 1 (16), and each split goes through
    ``char_sequences(words, vocab, length)``, so every model trained and scored on it sees the
    same arrays (``examples/char_rnn.py``, ``examples/tiny_gpt.py``).

    Returns
    -------
    WordSequences
        A named tuple ``(vocab, length, train, validation, X_train, y_train, X_val, y_val)``:
        the vocabulary, the steps per row, the two lists of words (``load_words("train")``,
        ``load_words("validation")``) and their (words, length) int64 inputs and targets.

    Examples
    --------
    >>> from fastnn.datasets import load_word_sequences
    >>> data = load_word_sequences()
    >>> data.vocab.size, data.length, data.X_train.shape, data.y_val.shape
    (27, 16, (46112, 16), (5119, 16))
    >>> data.vocab.decode(data.X_val[0]), data.validation[0]
    ('aalii', 'aalii')
    """
    train, validation = load_words("train"), load_words("validation")
    vocab = CharVocab(train + validation)
    length = max(map(len, train + validation)) + 1
    X_train, y_train = char_sequences(train, vocab, length)
    X_val, y_val = char_sequences(validation, vocab, length)
    return WordSequences(vocab, length, train, validation, X_train, y_train, X_val, y_val)


def bits_per_char(probs: Any, targets: Any, words: Iterable[str]) -> float:
    """The cross-entropy in bits per character of next-character predictions, over each
    word's characters and its end (``len(w) + 1`` predictions), not the padding after it:
    ``mean over scored (i, t) of -log2 probs[i, t, targets[i, t]]``.

    Parameters
    ----------
    probs : array_like, shape (n, length, V)
        Predicted distributions over the next id at each step (a softmax output).
    targets : array_like of int, shape (n, length)
        The ``y`` of ``char_sequences(words, vocab, length)``.
    words : iterable of str
        The n words the rows were made from (their lengths pick the scored steps).

    Returns
    -------
    float
        Bits per character; log2(V) for uniform predictions, 0 for certain right ones.

    Raises
    ------
    ValueError
        If the shapes disagree, a word is too long for ``length``, a target is outside
        0..V-1, or a scored probability is not positive and finite.
    TypeError
        If ``words`` is not an iterable of strings.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnn.datasets import CharVocab, bits_per_char, char_sequences
    >>> vocab = CharVocab(["cab", "bad"])
    >>> X, y = char_sequences(["cab", "a"], vocab, length=5)
    >>> uniform = np.full((2, 5, vocab.size), 1 / vocab.size)
    >>> round(bits_per_char(uniform, y, ["cab", "a"]), 4), round(float(np.log2(5)), 4)
    (2.3219, 2.3219)
    """
    words = _check_words(words)
    probs, targets = np.asarray(probs), np.asarray(targets)
    if probs.ndim != 3 or targets.shape != probs.shape[:2] or len(words) != probs.shape[0]:
        raise ValueError(f"probs must be (n, length, V) and targets (n, length) for n words. "
                         f"Received: probs {probs.shape}, targets {targets.shape}, "
                         f"{len(words)} words")
    in_range = targets.size == 0 or (targets.min() >= 0 and targets.max() < probs.shape[2])
    if not np.issubdtype(targets.dtype, np.integer) or not in_range:
        raise ValueError(f"targets must be integer ids in 0..{probs.shape[2] - 1}. "
                         f"Received: targets of dtype {targets.dtype}")
    lengths = np.array([len(w) for w in words], dtype=np.int64)
    if lengths.size and lengths.max() >= probs.shape[1]:
        raise ValueError(f"every word must be shorter than length ({probs.shape[1]}). "
                         f"Received: a word of {lengths.max()} characters")
    scored = np.arange(probs.shape[1])[None, :] <= lengths[:, None]
    p = np.take_along_axis(probs, targets[..., None], axis=-1)[..., 0][scored]
    p = p.astype(np.float64)
    bad = ~(np.isfinite(p) & (p > 0))
    if bad.any():
        raise ValueError("probs must be positive and finite at every scored target (a softmax "
                         f"output). Received: {p[bad][:3]}")
    return float(-np.log2(p).mean())
