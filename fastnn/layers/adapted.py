"""Keras' categorical layers that learn from data with ``adapt``: ``IntegerLookup`` (a
vocabulary of integer tokens) and ``Discretization`` (bin boundaries at quantiles). See
fastnn/layers/categorical.py for what they share (eager calls, shapes, no gradient); what they
learned is in their config, so model files carry it.

Discretization's ``adapt`` is Keras' approximate quantile summary, step for step: each batch
sorted (float32) and sampled every ``len / (1 / epsilon)`` values with that weight, merged with
the running summary and compressed by interpolating the cumulative weights at ``epsilon``
steps; the boundaries are the summary compressed to ``1 / num_bins`` steps, last dropped.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn._index_lookup import VocabularyTable, encode
from fastnn.layers.categorical import _Categorical, integers


def _int_key(value: Any) -> int:
    """A vocabulary entry as a Python int (a float holding one too)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return int(value)
        raise TypeError(f"vocabulary must hold integers. Received: a vocabulary entry "
                        f"{V._describe(value)}")
    return int(value)


class IntegerLookup(_Categorical):
    """Integer tokens to indices (Keras' layer): ``[mask] [OOV x num_oov_indices] tokens``,
    the tokens by descending frequency from ``adapt`` or as given by ``vocabulary``.
    ``invert=True`` maps indices back to tokens. Outputs as in StringLookup.

    Examples
    --------
    >>> import fastnn as fnn
    >>> lookup = fnn.IntegerLookup()
    >>> lookup.adapt([12, 36, 1138, 36, 42, 36, 42])
    >>> lookup.get_vocabulary()
    [-1, 36, 42, 1138, 12]
    >>> lookup([[12, 1138, 7]]).tolist()
    [[4, 3, 0]]
    """

    def __init__(self, max_tokens: Optional[int] = None, num_oov_indices: int = 1,
                 mask_token: Optional[int] = None, oov_token: int = -1, vocabulary: Any = None,
                 vocabulary_dtype: str = "int64", idf_weights: Any = None,
                 invert: bool = False, output_mode: str = "int", sparse: bool = False,
                 pad_to_max_tokens: bool = False, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        if vocabulary_dtype not in ("int64", "int32"):
            raise ValueError(f"vocabulary_dtype must be 'int64' or 'int32'. Received: "
                             f"vocabulary_dtype={V._describe(vocabulary_dtype)}")
        if V.check_bool("sparse", sparse):
            raise ValueError("sparse=True is not supported: fastnn outputs dense arrays")
        for key, tok in (("mask_token", mask_token), ("oov_token", oov_token)):
            if tok is not None:
                V.check_int(key, tok)
        if oov_token is None:
            raise TypeError("oov_token must be an integer. Received: oov_token=None")
        self._args = dict(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                          mask_token=mask_token, oov_token=oov_token, invert=invert,
                          output_mode=output_mode, pad_to_max_tokens=pad_to_max_tokens)
        self._table = VocabularyTable(**self._args, key=_int_key)  # type: ignore
        self.output_mode = self._table.output_mode
        self._refresh()
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        elif idf_weights is not None:
            raise ValueError("idf_weights needs vocabulary=")

    def build(self, input_shape: Any, dtype: Any) -> Any:
        t = self._table
        exact = 2.0 ** (np.finfo(dtype).nmant + 1)      # float32: every integer up to 2**24
        # named by argument, so that a message (a forged file's too) says which one is wrong
        named = [("mask_token", t.mask_token), ("oov_token", t.oov_token)] + [
            ("vocabulary", v) for v in t.tokens]
        for key, value in named:
            if value is not None and abs(value) > exact:
                received = (f"{key}={V._describe(value)}" if key != "vocabulary" else
                            f"vocabulary holding {V._describe(value)}")
                raise ValueError(f"{self.name}: tokens must be integers that "
                                 f"{np.dtype(dtype).name} holds exactly (up to {int(exact)}); "
                                 f"use a float64 model. Received: {received}")
        return super().build(input_shape, dtype)

    # the table's interface, as Keras
    def get_vocabulary(self, include_special_tokens: bool = True) -> list[Any]:
        return self._table.get_vocabulary(include_special_tokens)

    def vocabulary_size(self) -> int:
        return self._table.vocabulary_size()

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        if self.built:
            raise ValueError(f"{self.name} is built into a model: its vocabulary (and so its "
                             f"output shape) is fixed")
        self._table.set_vocabulary(vocabulary, idf_weights)
        self._refresh()

    def adapt(self, data: Any) -> None:
        """Learn the vocabulary from ``data`` (integers; 2-D: a document per row for tf_idf)."""
        if self.built:
            raise ValueError(f"{self.name} is built into a model: adapt it before")
        ids = integers("data", data)
        docs = ids.reshape(-1, 1) if ids.ndim <= 1 else ids.reshape(ids.shape[0], -1)
        self._table.adapt([int(v) for v in row] for row in docs)
        self._refresh()

    def _refresh(self) -> None:
        """Sorted keys for a vectorised lookup (np.searchsorted)."""
        tokens = np.array(self._table.tokens, np.int64)
        order = np.argsort(tokens, kind="stable")
        self._keys = tokens[order]
        self._values = (order + self._table.token_start).astype(np.int64)

    def _depth(self) -> int:
        if self.output_mode != "int" and self._table.depth() == 0:
            raise ValueError(f"{self.name} has no vocabulary: adapt(data) or give vocabulary=")
        return self._table.depth()

    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        t = self._table
        pos = np.searchsorted(self._keys, keys)
        pos_c = np.minimum(pos, max(len(self._keys) - 1, 0))
        found = (self._keys[pos_c] == keys) if len(self._keys) else np.zeros(keys.shape, bool)
        out = np.where(found, self._values[pos_c] if len(self._keys) else 0, -1)
        miss = ~found
        if t.mask_token is not None:
            out[miss & (keys == t.mask_token)] = 0
            miss &= keys != t.mask_token
        if miss.any():
            if t.num_oov_indices == 0:
                raise ValueError(f"with num_oov_indices=0 every input must be in the "
                                 f"vocabulary. Received: {keys[miss].reshape(-1)[0]}, not in it")
            out[miss] = t.oov_start + np.mod(keys[miss], t.num_oov_indices)
        return out

    def _compute(self, x: Any) -> np.ndarray:
        keys = integers(f"inputs of {self.name}", x)
        t = self._table
        if t.invert:
            vocab = np.array(t.get_vocabulary(), np.int64)
            ok = (keys >= t.token_start) & (keys < len(vocab))
            out = np.where(ok, vocab[np.clip(keys, 0, max(len(vocab) - 1, 0))], t.oov_token)
            if t.mask_token is not None:
                out[keys == 0] = t.mask_token
            return out
        ids = self._lookup(keys)
        if self.output_mode == "tf_idf" and t.idf is None:
            raise ValueError("output_mode='tf_idf' needs idf weights: adapt(data) or give "
                             "vocabulary= and idf_weights=")
        return encode(ids, self.output_mode, self._depth(), t.idf, dtype=np.float64)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), **self._args}
        if self._table.tokens:
            config["vocabulary"] = self.get_vocabulary()
            if self._table.idf is not None:
                config["idf_weights"] = self._table.idf[:self.vocabulary_size()].tolist()
        return config

    def __repr__(self) -> str:
        return f"IntegerLookup(vocabulary_size={self.vocabulary_size()})"


# ---------------------------------------------------------------------- Discretization
def _summarize(values: np.ndarray, epsilon: float) -> np.ndarray:
    values = np.sort(values.reshape(-1))
    step = max(values.size / (1.0 / epsilon), 1)      # Keras' arithmetic, to the bit
    picked = values[int(step - 1)::int(step)]
    return np.stack([picked, np.full(picked.shape, step, picked.dtype)])


def _compress(summary: np.ndarray, epsilon: float) -> np.ndarray:
    if summary.shape[1] * epsilon < 1:
        return summary
    percents = epsilon + np.arange(0.0, 1.0, epsilon)
    cum = summary[1].cumsum()
    fraction = cum / cum[-1]
    bins = np.interp(percents, fraction, summary[0])
    cum_new = np.interp(percents, fraction, cum)
    weights = cum_new - np.concatenate(([0.0], cum_new[:-1]))
    return np.stack((bins, weights)).astype(np.float32)


class Discretization(_Categorical):
    """Values to bin indices (Keras' layer): ``bin_boundaries=[0., 1., 2.]`` gives bins
    ``(-inf, 0), [0, 1), [1, 2), [2, inf)`` as 0..3; or ``num_bins`` and ``adapt(data)``
    (quantile boundaries, Keras' algorithm, error ``epsilon``). ``output_mode``: ``"int"``,
    ``"one_hot"``, ``"multi_hot"``, ``"count"``.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.Discretization(bin_boundaries=[0.0, 1.0, 2.0])([[-1.5, 1.0, 3.4, 0.5]]).tolist()
    [[0, 2, 3, 1]]
    """

    def __init__(self, bin_boundaries: Any = None, num_bins: Optional[int] = None,
                 epsilon: float = 0.01, output_mode: str = "int", sparse: bool = False,
                 dtype: Any = None, name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.output_mode = V.check_choice("output_mode", output_mode,
                                          ("int", "one_hot", "multi_hot", "count"))
        if V.check_bool("sparse", sparse):
            raise ValueError("sparse=True is not supported: fastnn outputs dense arrays")
        self.epsilon = V.check_float("epsilon", epsilon, low=0.0, high=1.0, low_open=True)
        self.num_bins = None if num_bins is None else V.check_dim("num_bins", num_bins)
        self.bin_boundaries: Optional[list[float]] = None
        if bin_boundaries is not None:
            b = V.as_real_array("bin_boundaries", bin_boundaries).astype(np.float64)
            if b.ndim != 1:
                raise ValueError(f"bin_boundaries must be a 1-D list. Received: shape {b.shape}")
            V.check_finite("bin_boundaries", b)
            if b.size > 1 and (np.diff(b) < 0).any():
                raise ValueError(f"bin_boundaries must be sorted (non-decreasing). Received: "
                                 f"bin_boundaries={V._describe(b.tolist())}")
            if b.size >= 2**31 - 1:
                raise ValueError(f"bin_boundaries is too long. Received: {b.size} values")
            if self.num_bins is not None and self.num_bins != b.size + 1:
                raise ValueError(f"num_bins must be len(bin_boundaries) + 1 when both are "
                                 f"given. Received: num_bins={num_bins}, {b.size} boundaries")
            self.bin_boundaries = b.tolist()
        elif self.num_bins is None:
            raise ValueError("give bin_boundaries or num_bins (then adapt(data)). Received: "
                             "neither")

    def adapt(self, data: Any) -> None:
        """Boundaries at the quantiles of ``data`` (Keras' summary; see the module)."""
        if self.num_bins is None:
            raise ValueError("adapt needs num_bins (bin_boundaries were given)")
        if self.built:
            raise ValueError(f"{self.name} is built into a model: adapt it before")
        arr = V.as_real_array("data", data)
        if arr.size == 0:
            raise ValueError("data must hold at least one value")
        V.check_finite("data", arr)
        summary = _compress(_summarize(arr.astype(np.float32), self.epsilon), self.epsilon)
        bounds = _compress(summary, 1.0 / self.num_bins)[0, :-1]
        self.bin_boundaries = [float(v) for v in bounds]

    def _depth(self) -> int:
        if self.bin_boundaries is None:
            return self.num_bins                         # type: ignore[return-value]
        return len(self.bin_boundaries) + 1

    def _compute(self, x: Any) -> np.ndarray:
        if self.bin_boundaries is None:
            raise ValueError(f"{self.name} has no bin boundaries: adapt(data) first or give "
                             f"bin_boundaries=")
        arr = V.as_real_array("inputs", x)
        ids = np.digitize(arr, np.asarray(self.bin_boundaries, np.float64)).astype(np.int64)
        return encode(ids, self.output_mode, self._depth(), dtype=np.float64)

    def build(self, input_shape: Any, dtype: Any) -> Any:
        if self.bin_boundaries is None:
            raise ValueError(f"{self.name} has no bin boundaries: adapt(data) before building "
                             f"the model, or give bin_boundaries=")
        return super().build(input_shape, dtype)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "bin_boundaries": self.bin_boundaries,
                  "epsilon": self.epsilon, "output_mode": self.output_mode}
        if self.bin_boundaries is None:
            config["num_bins"] = self.num_bins
        return config

    def __repr__(self) -> str:
        return f"Discretization(bins={self._depth()})"


__all__ = ["IntegerLookup", "Discretization"]
