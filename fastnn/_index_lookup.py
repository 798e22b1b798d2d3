"""The vocabulary table behind StringLookup, TextVectorization and IntegerLookup (Keras'
``IndexLookup``), in plain Python and NumPy: no string tensors, no model.

Index layout (Keras'): ``[mask] [oov x num_oov_indices] tokens...``; the mask slot exists only
when ``mask_token`` is set and ``output_mode == "int"``. ``adapt`` orders the learned tokens by
descending count, ties broken by the descending token (Keras' ``np.lexsort((tokens,
counts))[::-1]``), and keeps the first ``max_tokens - (mask + oov slots)``. The tf_idf weight of
a token is ``log(1 + documents / (1 + documents holding it))``; the OOV slots get the mean of
the learned weights, and slots past the vocabulary (``pad_to_max_tokens``) 0.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from fastnn import _validation as V
from fastnn._farmhash import fingerprint64

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")


def stable_hash(token: Any) -> int:
    """Keras' hash of an OOV string (``tf.strings.to_hash_bucket_fast``): FarmHash
    Fingerprint64 of its UTF-8 bytes, the same in every process and machine."""
    return fingerprint64(str(token).encode("utf-8"))


def encode(indices: np.ndarray, mode: str, depth: int, idf: Optional[np.ndarray] = None,
           dtype: Any = np.float32) -> np.ndarray:
    """Keras' ``encode_categorical_inputs`` on int indices (< 0: dropped): ``int`` as they
    are; ``one_hot`` a new last axis (an input of shape (..., 1) loses that axis);
    ``multi_hot``/``count``/``tf_idf`` the last axis (of a 1-D input: all of it) counted into
    ``depth`` slots (tf_idf: counts times ``idf``)."""
    if mode == "int":
        return indices.astype(np.int64)
    if mode == "one_hot":
        base = indices[..., 0] if indices.ndim > 1 and indices.shape[-1] == 1 else indices
        out = np.zeros(base.shape + (depth,), dtype)
        flat = out.reshape(-1, depth)
        ids = base.reshape(-1)
        keep = (ids >= 0) & (ids < depth)
        flat[np.flatnonzero(keep), ids[keep]] = 1
        return out
    docs = indices.reshape(1, -1) if indices.ndim <= 1 else indices
    lead = docs.shape[:-1]
    rows = docs.reshape(-1, docs.shape[-1])
    r = np.repeat(np.arange(rows.shape[0]), rows.shape[1])
    ids = rows.reshape(-1)
    keep = (ids >= 0) & (ids < depth)
    out = np.bincount(r[keep] * depth + ids[keep], minlength=rows.shape[0] * depth
                      ).astype(np.float64).reshape(rows.shape[0], depth)
    if mode == "multi_hot":
        np.minimum(out, 1.0, out=out)
    elif mode == "tf_idf":
        out *= idf[:depth]                           # type: ignore[index]
    out = out.reshape(lead + (depth,))
    return (out[0] if indices.ndim <= 1 else out).astype(dtype)


class VocabularyTable:
    """Tokens to indices and back (see the module docstring)."""

    def __init__(self, max_tokens: Optional[int], num_oov_indices: int, mask_token: Any,
                 oov_token: Any, output_mode: str, invert: bool, pad_to_max_tokens: bool,
                 key: Callable[[Any], Any]) -> None:
        if max_tokens is not None:
            max_tokens = V.check_int("max_tokens", max_tokens)
            if max_tokens <= 1:
                raise ValueError(f"max_tokens must be greater than 1 (or None). Received: "
                                 f"max_tokens={max_tokens}")
            if max_tokens >= 2**31:
                raise ValueError(f"max_tokens must be below 2**31. Received: "
                                 f"max_tokens={max_tokens}")
        self.max_tokens = max_tokens
        self.num_oov_indices = V.check_int("num_oov_indices", num_oov_indices, low=0)
        if self.num_oov_indices >= 2**31:      # indices are below 2**31, as max_tokens
            raise ValueError(f"num_oov_indices must be below 2**31. Received: "
                             f"num_oov_indices={self.num_oov_indices}")
        self.output_mode = V.check_choice(
            "output_mode", "tf_idf" if output_mode == "tf-idf" else output_mode, OUTPUT_MODES)
        self.invert = V.check_bool("invert", invert)
        if self.invert and self.output_mode != "int":
            raise ValueError(f"invert=True needs output_mode='int'. Received: "
                             f"output_mode={self.output_mode!r}")
        self.pad_to_max_tokens = V.check_bool("pad_to_max_tokens", pad_to_max_tokens)
        if self.pad_to_max_tokens and max_tokens is None:
            raise ValueError("pad_to_max_tokens=True needs max_tokens to be set")
        self.key = key
        self.mask_token = None if mask_token is None else key(mask_token)
        self.oov_token = key(oov_token)
        self.tokens: list[Any] = []
        self.index: dict[Any, int] = {}
        self.idf: Optional[np.ndarray] = None
        self.from_input = False

    # ------------------------------------------------------------------ layout
    @property
    def oov_start(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    @property
    def token_start(self) -> int:
        return self.oov_start + self.num_oov_indices

    def vocabulary_size(self) -> int:
        return self.token_start + len(self.tokens)

    def depth(self) -> int:
        return self.max_tokens if self.pad_to_max_tokens else self.vocabulary_size()  # type: ignore

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[Any]:
        if not include_special_tokens:
            return list(self.tokens)
        head = [self.mask_token] * self.oov_start + [self.oov_token] * self.num_oov_indices
        return head + list(self.tokens)

    # ------------------------------------------------------------------ vocabulary
    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        if self.output_mode == "tf_idf" and idf_weights is None:
            raise ValueError("idf_weights must be set when output_mode='tf_idf'")
        if self.output_mode != "tf_idf" and idf_weights is not None:
            raise ValueError(f"idf_weights is only for output_mode='tf_idf'. Received: "
                             f"output_mode={self.output_mode!r}")
        if isinstance(vocabulary, (str, bytes)) or not isinstance(
                vocabulary, (list, tuple, np.ndarray)):
            raise TypeError(f"vocabulary must be a list, tuple or 1-D array of tokens. "
                            f"Received: vocabulary={V._describe(vocabulary)}")
        vocab = [self.key(t) for t in np.asarray(vocabulary, dtype=object).reshape(-1)] \
            if np.ndim(vocabulary) == 1 or len(vocabulary) == 0 else None
        if vocab is None:
            raise ValueError(f"vocabulary must be 1-D. Received: shape {np.shape(vocabulary)}")
        if not vocab:
            raise ValueError("vocabulary must not be empty. Received: vocabulary=[]")
        # the special tokens' head, no longer than vocab: a large num_oov_indices (a forged
        # file's 2**31 - 1) must not become a list of that many tokens here
        k = min(self.token_start, len(vocab))
        special = ([self.mask_token] * min(self.oov_start, k)
                   + [self.oov_token] * (k - min(self.oov_start, k)))
        found_special = len(vocab) >= self.token_start and vocab[:self.token_start] == special
        tokens = vocab[self.token_start:] if found_special else vocab
        seen: set[Any] = set()
        repeated = [t for t in tokens if t in seen or seen.add(t)]     # type: ignore[func-returns-value]
        if repeated:
            raise ValueError(f"vocabulary has repeated tokens: {V._describe(repeated[:5])}")
        if self.mask_token is not None and self.mask_token in seen:
            raise ValueError(f"vocabulary holds the mask token {self.mask_token!r} after its "
                             f"start; give the special tokens only first, in order {special}")
        if self.invert and self.oov_token in seen:
            raise ValueError(f"vocabulary holds the OOV token {self.oov_token!r} after its "
                             f"start; give the special tokens only first, in order {special}")
        size = self.token_start + len(tokens)
        if self.max_tokens is not None and size > self.max_tokens:
            raise ValueError(f"vocabulary of size {size} is larger than max_tokens="
                             f"{self.max_tokens}")
        idf = None
        if self.output_mode == "tf_idf":
            w = V.as_real_array("idf_weights", idf_weights).astype(np.float64)
            if w.ndim != 1 or w.shape[0] != len(vocab):
                raise ValueError(f"idf_weights must be 1-D, one per vocabulary entry "
                                 f"({len(vocab)}). Received: shape {w.shape}")
            V.check_finite("idf_weights", w)
            front = 0 if found_special else self.token_start
            back = (self.max_tokens - front - len(w)) if self.pad_to_max_tokens else 0  # type: ignore
            idf = np.concatenate([np.full(front, w.mean()), w, np.zeros(back)])
        self._install(tokens, idf)
        self.from_input = True

    def _install(self, tokens: Sequence[Any], idf: Optional[np.ndarray]) -> None:
        self.tokens = list(tokens)
        self.index = {t: i + self.token_start for i, t in enumerate(self.tokens)}
        self.idf = idf

    def adapt(self, documents: Iterable[Sequence[Any]]) -> None:
        """Count the tokens of ``documents`` (each a sequence of keys) and keep the vocabulary
        (see the module docstring)."""
        if self.from_input:
            raise ValueError("cannot adapt a layer whose vocabulary was given (vocabulary= or "
                             "set_vocabulary)")
        counts: Counter[Any] = Counter()
        doc_counts: Counter[Any] = Counter()
        n_docs = 0
        for doc in documents:
            counts.update(doc)
            doc_counts.update(set(doc))
            n_docs += 1
        for special in (self.mask_token, self.oov_token):
            counts.pop(special, None)
        order = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        if self.max_tokens:
            order = order[:self.max_tokens - self.token_start]
        tokens = [t for t, _ in order]
        idf = None
        if self.output_mode == "tf_idf":
            dc = np.array([doc_counts[t] for t in tokens], np.float64)
            w = np.log(1.0 + n_docs / (1.0 + dc)).astype(np.float32).astype(np.float64)
            mean = float(np.float32(w.mean())) if w.size else 0.0
            back = (self.max_tokens or 0) - self.token_start - len(w) \
                if self.pad_to_max_tokens else 0
            idf = np.concatenate([np.full(self.token_start, mean), w, np.zeros(back)])
        self._install(tokens, idf)

    # ------------------------------------------------------------------ lookups
    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """int64 indices of ``keys`` (an object array of keys), OOV and mask as Keras."""
        flat = keys.reshape(-1)
        out = np.empty(flat.shape, np.int64)
        index, mask = self.index, self.mask_token
        n_oov, start = self.num_oov_indices, self.oov_start
        for i, k in enumerate(flat):
            j = index.get(k)
            if j is None:
                if mask is not None and k == mask:
                    j = 0
                elif n_oov == 0:
                    raise ValueError(f"with num_oov_indices=0 every input must be in the "
                                     f"vocabulary. Received: {k!r}, not in it")
                elif n_oov == 1:
                    j = start
                else:
                    j = start + self.oov_bucket(k, n_oov)
            out[i] = j
        return out.reshape(keys.shape)

    def oov_bucket(self, key: Any, n: int) -> int:
        if isinstance(key, (int, np.integer)):
            return int(key) % n                 # Keras' floormod for integer keys
        return stable_hash(key) % n

    def invert_lookup(self, indices: np.ndarray) -> np.ndarray:
        vocab = self.get_vocabulary()
        flat = indices.reshape(-1)
        out = np.empty(flat.shape, object)
        for i, j in enumerate(flat):
            j = int(j)
            if self.mask_token is not None and j == 0:
                out[i] = self.mask_token
            elif 0 <= j < len(vocab) and j >= self.token_start:
                out[i] = vocab[j]
            else:
                out[i] = self.oov_token
        return out.reshape(indices.shape)

    def call(self, keys: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        if self.invert:
            return self.invert_lookup(keys)
        ids = self.lookup(keys)
        if self.output_mode == "int":
            return ids
        if not self.tokens and not self.pad_to_max_tokens and self.vocabulary_size() == 0:
            raise ValueError("the layer has no vocabulary: call adapt(data) or give vocabulary=")
        if self.output_mode == "tf_idf" and self.idf is None:
            raise ValueError("output_mode='tf_idf' needs idf weights: adapt(data) or give "
                             "vocabulary= and idf_weights=")
        return encode(ids, self.output_mode, self.depth(), self.idf, dtype)

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {"vocabulary": [V.plain(t) for t in self.get_vocabulary()],
                "idf_weights": None if self.idf is None else self.idf.tolist()}

    def restore(self, vocabulary: Sequence[Any], idf: Optional[Sequence[float]]) -> None:
        tokens = [self.key(t) for t in vocabulary[self.token_start:]]
        if vocabulary and [self.key(t) for t in vocabulary[:self.token_start]] != \
                self.get_vocabulary()[:self.token_start]:
            raise ValueError("saved vocabulary does not start with the layer's special tokens")
        weights = None if idf is None else V.as_real_array("idf_weights", idf).astype(np.float64)
        self._install(tokens, weights)
