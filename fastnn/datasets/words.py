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
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

__all__ = ["load_words", "CharVocab", "char_sequences"]

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
            f"split must be None, 'train' or 'validation'. Received: split={split!r}")
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
                             f"vocabulary {''.join(self.chars)!r}. Received: word={word!r}"
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
        raise TypeError(f"length must be an integer. Received: length={length!r}")
    if length < longest + 1:
        raise ValueError(f"length must be at least the longest word's length + 1 ({longest + 1}) "
                         f"to hold the end of every word. Received: length={length!r}")
    X = np.zeros((len(words), int(length)), dtype=np.int64)
    y = np.zeros_like(X)
    for i, w in enumerate(words):
        ids = vocab.encode(w)
        X[i, 1:len(ids) + 1] = ids
        y[i, :len(ids)] = ids
    return X, y
