"""Keras' string preprocessing, used before the model (fastnn models take numbers, not
strings): ``TextVectorization`` (text to token indices, multi-hot, counts or tf-idf) and
``StringLookup`` (strings to indices and back). Each is a plain object: ``adapt(data)``,
``__call__(data) -> np.ndarray``, ``get_vocabulary()``, ``get_config()`` / ``from_config``,
``save_assets(dir)`` / ``load_assets(dir)`` (a JSON file), and pickling.

The vocabulary rules are Keras' (fastnn/_index_lookup.py). Standardisation as Keras' TensorFlow
ops: ``lower`` lowercases ASCII letters only (``tf.strings.lower``'s default encoding is ASCII:
"É" stays), ``strip_punctuation`` removes the ASCII set ``!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'``;
``whitespace`` splits at runs of ASCII whitespace (space, \\t \\n \\v \\f \\r), not at other
Unicode spaces; ``character`` gives the code points.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Optional, Sequence

import numpy as np

from fastnn import _validation as V
from fastnn._index_lookup import VocabularyTable

PUNCTUATION = re.compile(r'[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~\']')
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
ASCII_SPACE = re.compile(r"[ \t\n\v\f\r]+")
STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
SPLIT = ("whitespace", "character")
ASSET_FILE = "vocabulary.json"


def _as_text(token: Any) -> str:
    if isinstance(token, bytes):
        return token.decode("utf-8")
    if not isinstance(token, (str, np.str_)):
        raise TypeError(f"data must hold strings. Received: {V._describe(token)} of type "
                        f"{type(token).__name__}")
    return str(token)


def _strings(name: str, data: Any) -> np.ndarray:
    """``data`` as an object array of str (bytes decoded as UTF-8)."""
    if isinstance(data, (str, bytes)):
        data = [data]
    arr = np.asarray(data, dtype=object)
    flat = np.array([_as_text(t) for t in arr.reshape(-1)] or [], dtype=object)
    return flat.reshape(arr.shape)


class _Lookup:
    """What both share: the table, state files, pickling."""

    _table: VocabularyTable

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[Any]:
        return self._table.get_vocabulary(include_special_tokens)

    def vocabulary_size(self) -> int:
        return self._table.vocabulary_size()

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        self._table.set_vocabulary(vocabulary, idf_weights)

    @property
    def idf_weights(self) -> Optional[np.ndarray]:
        return None if self._table.idf is None else self._table.idf.copy()

    def save_assets(self, dir_path: str) -> None:
        """Write the vocabulary (and idf weights) to ``dir_path/vocabulary.json``."""
        os.makedirs(dir_path, exist_ok=True)
        with open(os.path.join(dir_path, ASSET_FILE), "w", encoding="utf-8") as f:
            json.dump(self._table.state(), f, ensure_ascii=False)

    def load_assets(self, dir_path: str) -> None:
        with open(os.path.join(dir_path, ASSET_FILE), encoding="utf-8") as f:
            state = json.load(f)
        if not isinstance(state, dict) or not isinstance(state.get("vocabulary"), list):
            raise ValueError(f"{ASSET_FILE}: expected {{'vocabulary': [...]}}")
        self._table.restore(state["vocabulary"], state.get("idf_weights"))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        return cls(**config)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_table"] = None
        state["_saved"] = (self._table.state(), self._table.from_input)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        saved, from_input = state.pop("_saved")
        self.__dict__.update(state)
        self._table = self._new_table()
        self._table.restore(saved["vocabulary"], saved["idf_weights"])
        self._table.from_input = from_input

    def _new_table(self) -> VocabularyTable:
        raise NotImplementedError


class StringLookup(_Lookup):
    """Strings to indices (Keras' layer): ``StringLookup(vocabulary=["a", "b"])(["a", "c"])``
    gives ``[1, 0]`` (0 is the OOV index ``"[UNK]"``). ``invert=True`` maps indices back.
    ``output_mode``: ``"int"``, ``"one_hot"``, ``"multi_hot"``, ``"count"``, ``"tf_idf"``.

    Examples
    --------
    >>> import fastnn as fnn
    >>> lookup = fnn.StringLookup()
    >>> lookup.adapt(["b", "a", "b", "c", "b", "a"])
    >>> lookup.get_vocabulary()
    ['[UNK]', 'b', 'a', 'c']
    >>> lookup(["a", "b", "z"]).tolist()
    [2, 1, 0]
    """

    def __init__(self, max_tokens: Optional[int] = None, num_oov_indices: int = 1,
                 mask_token: Optional[str] = None, oov_token: str = "[UNK]",
                 vocabulary: Any = None, idf_weights: Any = None, invert: bool = False,
                 output_mode: str = "int", pad_to_max_tokens: bool = False,
                 sparse: bool = False, encoding: str = "utf-8",
                 name: Optional[str] = None) -> None:
        if V.check_bool("sparse", sparse):
            raise ValueError("sparse=True is not supported: fastnn outputs dense arrays")
        if str(encoding).lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise ValueError(f"encoding must be 'utf-8'. Received: encoding={encoding!r}")
        for key, tok in (("mask_token", mask_token), ("oov_token", oov_token)):
            if tok is not None and not isinstance(tok, str):
                raise TypeError(f"{key} must be a string. Received: {key}={V._describe(tok)}")
        if oov_token is None:
            raise TypeError("oov_token must be a string. Received: oov_token=None")
        self._args: dict[str, Any] = dict(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                          mask_token=mask_token, oov_token=oov_token, invert=invert,
                          output_mode=output_mode, pad_to_max_tokens=pad_to_max_tokens)
        self.name = name or "string_lookup"
        self._table = self._new_table()
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        elif idf_weights is not None:
            raise ValueError("idf_weights needs vocabulary=")

    def _new_table(self) -> VocabularyTable:
        return VocabularyTable(**self._args, key=_as_text)

    def adapt(self, data: Any) -> None:
        """Learn the vocabulary from ``data`` (strings; a 1-D array is one document per
        string for tf_idf, as Keras, a 2-D one a document per row)."""
        arr = _strings("data", data)
        docs = arr.reshape(-1, 1) if arr.ndim <= 1 else arr.reshape(arr.shape[0], -1)
        self._table.adapt(list(row) for row in docs)

    def __call__(self, data: Any) -> np.ndarray:
        if self._table.invert:
            ids = V.as_real_array("data", data)
            if ids.size and not np.array_equal(ids, np.round(ids)):
                raise ValueError("data must hold integer indices when invert=True")
            return self._table.call(ids.astype(np.int64))
        return self._table.call(_strings("data", data))

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {**self._args, "name": self.name, "sparse": False, "encoding": "utf-8"}
        if self._table.from_input:
            config["vocabulary"] = self.get_vocabulary()
            if self._table.idf is not None:
                config["idf_weights"] = self._table.idf[:self.vocabulary_size()].tolist()
        return config

    def __repr__(self) -> str:
        return f"StringLookup(vocabulary_size={self.vocabulary_size()})"


class TextVectorization(_Lookup):
    """Text to numbers (Keras' layer): standardise each string, split it into tokens, add
    ``ngrams``, look the tokens up in a vocabulary ``adapt`` learns (index 0 ``""`` padding, 1
    ``"[UNK]"``, then by frequency) and return, by ``output_mode``:

    - ``"int"``: (n, length) int64 indices, padded with 0 or cut to ``output_sequence_length``
      (None: the longest text's length);
    - ``"multi_hot"``, ``"count"``, ``"tf_idf"``: (n, vocabulary size) float32.

    Examples
    --------
    >>> import fastnn as fnn
    >>> vec = fnn.TextVectorization(output_sequence_length=4)
    >>> vec.adapt(["The cat sat.", "The dog sat!", "the end"])
    >>> vec.get_vocabulary()
    ['', '[UNK]', 'the', 'sat', 'end', 'dog', 'cat']
    >>> vec(["the cat ran"]).tolist()
    [[2, 6, 1, 0]]
    """

    def __init__(self, max_tokens: Optional[int] = None,
                 standardize: Any = "lower_and_strip_punctuation",
                 split: Any = "whitespace", ngrams: Any = None, output_mode: str = "int",
                 output_sequence_length: Optional[int] = None, pad_to_max_tokens: bool = False,
                 vocabulary: Any = None, idf_weights: Any = None, sparse: bool = False,
                 ragged: bool = False, encoding: str = "utf-8",
                 name: Optional[str] = None) -> None:
        if V.check_bool("sparse", sparse) or V.check_bool("ragged", ragged):
            raise ValueError("sparse=True and ragged=True are not supported: fastnn outputs "
                             "dense arrays")
        if str(encoding).lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise ValueError(f"encoding must be 'utf-8'. Received: encoding={encoding!r}")
        if not (standardize is None or callable(standardize) or standardize in STANDARDIZE):
            raise ValueError(f"standardize must be one of {STANDARDIZE}, None or a callable. "
                             f"Received: standardize={V._describe(standardize)}")
        if not (split is None or callable(split) or split in SPLIT):
            raise ValueError(f"split must be one of {SPLIT}, None or a callable. Received: "
                             f"split={V._describe(split)}")
        if isinstance(ngrams, list):
            ngrams = tuple(ngrams)
        if ngrams is not None:
            widths = (ngrams,) if not isinstance(ngrams, tuple) else ngrams
            if not widths or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                                 for n in widths):
                raise ValueError(f"ngrams must be None, a positive integer or a tuple of "
                                 f"them. Received: ngrams={V._describe(ngrams)}")
        mode = "tf_idf" if output_mode == "tf-idf" else output_mode
        if mode not in ("int", "multi_hot", "count", "tf_idf"):
            raise ValueError(f"output_mode must be one of 'int', 'multi_hot', 'count', "
                             f"'tf_idf'. Received: output_mode={V._describe(output_mode)}")
        if output_sequence_length is not None:
            if mode != "int":
                raise ValueError(f"output_sequence_length is only for output_mode='int'. "
                                 f"Received: output_mode={mode!r}")
            V.check_dim("output_sequence_length", output_sequence_length)
        self._ngrams_arg = ngrams
        self._ngrams = (tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams)
        self._standardize, self._split = standardize, split
        self._args: dict[str, Any] = dict(max_tokens=max_tokens, output_mode=mode,
                          pad_to_max_tokens=pad_to_max_tokens)
        self.output_sequence_length = output_sequence_length
        self.name = name or "text_vectorization"
        self._table = self._new_table()
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        elif idf_weights is not None:
            raise ValueError("idf_weights needs vocabulary=")

    def _new_table(self) -> VocabularyTable:
        return VocabularyTable(num_oov_indices=1, mask_token="", oov_token="[UNK]",
                               invert=False, key=_as_text, **self._args)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ text to tokens
    def _standardized(self, texts: list[str]) -> list[str]:
        s = self._standardize
        if callable(s):
            # as Keras on its non-TensorFlow backends: the callable takes a NumPy array of str
            # (np.char / np.strings operations) and gives one of the same shape
            out = np.asarray(s(np.array(texts, dtype=str).reshape(len(texts))))
            if out.shape != (len(texts),) or out.dtype.kind not in "UO":
                raise TypeError(f"standardize must return an array of {len(texts)} strings. "
                                f"Received: {out.dtype} array of shape {out.shape}")
            return [str(t) for t in out]
        if s in ("lower", "lower_and_strip_punctuation"):
            texts = [t.translate(ASCII_LOWER) for t in texts]
        if s in ("strip_punctuation", "lower_and_strip_punctuation"):
            texts = [PUNCTUATION.sub("", t) for t in texts]
        return texts

    def _tokens(self, text: str) -> list[str]:
        """One standardised text's tokens: split (a callable split takes one str and gives a
        list of str), then the ngrams."""
        if self._split is None:
            words = [text]
        elif self._split == "whitespace":
            words = [w for w in ASCII_SPACE.split(text) if w]
        elif self._split == "character":
            words = list(text)
        else:
            words = [_as_text(w) for w in self._split(text)]
        if self._ngrams is None:
            return words
        out: list[str] = []
        for n in self._ngrams:          # Keras' order: all 1-grams, then all 2-grams, ...
            out.extend(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
        return out

    def _texts(self, data: Any) -> list[str]:
        arr = _strings("data", data)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"data must be a list of strings, shape (n,) or (n, 1). "
                             f"Received: shape {arr.shape}")
        return self._standardized(list(arr))

    def adapt(self, data: Any) -> None:
        """Learn the vocabulary (and idf weights) from ``data``, strings of shape (n,)."""
        self._table.adapt(self._tokens(t) for t in self._texts(data))

    def __call__(self, data: Any) -> np.ndarray:
        docs = [self._tokens(t) for t in self._texts(data)]
        table = self._table
        if table.output_mode != "int":
            # every document's tokens looked up in one pass, then counted per document
            flat = np.array([t for doc in docs for t in doc], dtype=object)
            ids = table.lookup(flat)
            owner = np.repeat(np.arange(len(docs)), [len(doc) for doc in docs])
            depth = table.depth()
            if table.output_mode == "tf_idf" and table.idf is None:
                raise ValueError("output_mode='tf_idf' needs idf weights: adapt(data) or give "
                                 "vocabulary= and idf_weights=")
            # float32 throughout, as Keras (counts are exact; count * idf is one rounding)
            counts = np.zeros((len(docs), depth), np.float32)
            cells, times = np.unique(owner * depth + ids, return_counts=True)  # np.add.at is slow
            counts.reshape(-1)[cells] = times
            if table.output_mode == "multi_hot":
                np.minimum(counts, 1, out=counts)
            elif table.output_mode == "tf_idf":
                counts *= table.idf[:depth].astype(np.float32)   # type: ignore[index]
            return counts
        length = self.output_sequence_length
        if length is None:
            length = max((len(d) for d in docs), default=0)
        out = np.zeros((len(docs), length), np.int64)
        for i, doc in enumerate(docs):
            ids = table.lookup(np.array(doc[:length], dtype=object))
            out[i, :len(ids)] = ids
        return out

    def get_config(self) -> dict[str, Any]:
        def named(f: Any) -> Any:
            if callable(f):
                raise ValueError("a callable standardize or split cannot go in a config")
            return f
        config = {**self._args, "standardize": named(self._standardize),
                  "split": named(self._split), "ngrams": self._ngrams_arg,
                  "output_sequence_length": self.output_sequence_length, "name": self.name}
        if self._table.from_input:
            config["vocabulary"] = self.get_vocabulary()
            if self._table.idf is not None:
                config["idf_weights"] = self._table.idf[:self.vocabulary_size()].tolist()
        return config

    def __repr__(self) -> str:
        return f"TextVectorization(vocabulary_size={self.vocabulary_size()})"


__all__ = ["StringLookup", "TextVectorization"]
