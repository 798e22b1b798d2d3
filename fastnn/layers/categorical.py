"""Keras' numeric categorical preprocessing, usable inside a model (at its input) or on its
own (``layer(array)`` computes at once, as in Keras): ``IntegerLookup`` (integer tokens to
indices), ``CategoryEncoding`` (indices to one-hot / multi-hot / counts), ``Hashing``
(integers or strings to ``num_bins`` buckets) and ``Discretization`` (values to bins).

Inside a model they read float arrays holding the values (integers where integers are
meant) and write the model's dtype; they are lookups and binning in vectorised NumPy, the same
on both backends. They have no weights: what they learned (vocabulary, bin boundaries) is in
their config, so a model file carries it, and a model node computed from the inputs by them is
given no gradient target (``graph.grad_free_nodes``). When ``model.backward`` asks for dL/dx
of the model's input through them, it is 0: their output is constant between category
boundaries (as Embedding's integer ids).

Output shapes of one sample ``s``: ``"int"`` s; ``"one_hot"`` ``s + (depth,)`` (an ``s``
ending in 1 loses that axis); ``"multi_hot"``, ``"count"``, ``"tf_idf"`` ``s[:-1] + (depth,)``
(the last axis is one sample's set of tokens, Keras' rule).
"""

from __future__ import annotations

import numbers
from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn._farmhash import fingerprint64, siphash24
from fastnn._index_lookup import encode
from fastnn.layers.base import FloatArray, Layer, Slot

def _encoded_shape(s: tuple[int, ...], mode: str, depth: int) -> tuple[int, ...]:
    if mode == "int":
        return s
    if mode == "one_hot":
        return (s[:-1] if s and s[-1] == 1 else s) + (depth,)
    return s[:-1] + (depth,)


def integers(name: str, x: Any) -> np.ndarray:
    """``x`` (numbers holding integers) as int64, or ValueError naming ``name``."""
    arr = V.as_real_array(name, x)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(arr) | (arr != np.floor(arr)) | (np.abs(arr) >= 2.0**63)
    if bad.any():
        raise ValueError(f"{name} must hold integers. Received: {arr[bad].reshape(-1)[0]!r}")
    return arr.astype(np.int64)


class _Categorical(Layer):
    """What all four share: eager calls, the model's forward, no backward."""

    output_mode = "int"

    def _compute(self, x: Any) -> np.ndarray:
        """The layer's output for a batch ``x`` (any shape; a 1-D x is one sample for the
        encoding modes), int64 indices for "int" mode, else float."""
        raise NotImplementedError

    def _depth(self) -> int:
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and isinstance(
                args[0], (np.ndarray, list, tuple, numbers.Number, str, bytes)):
            out = self._compute(args[0])
            return out if self.output_mode == "int" and out.dtype.kind in "iuO" \
                else out.astype(np.float32)
        return super().__call__(*args, **kwargs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple):
            raise ValueError(f"{self.name} takes one input. Received: {input_shape}")
        return _encoded_shape(input_shape, self.output_mode, self._depth())

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        y[...] = self._compute(x).reshape(y.shape)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        dx[...] = 0      # piecewise constant in its input: as Embedding's integer ids
        return dx


class CategoryEncoding(_Categorical):
    """Integer indices in [0, num_tokens) to ``"multi_hot"`` (default), ``"one_hot"`` or
    ``"count"`` vectors of length ``num_tokens`` (Keras' layer).

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.CategoryEncoding(num_tokens=4, output_mode="count")([[0, 1, 1], [3, 3, 2]]).tolist()
    [[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, 2.0]]
    """

    def __init__(self, num_tokens: Optional[int] = None, output_mode: str = "multi_hot",
                 sparse: bool = False, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        if num_tokens is None:
            raise ValueError("num_tokens must be set (a positive integer). Received: "
                             "num_tokens=None")
        self.num_tokens = V.check_dim("num_tokens", num_tokens)
        self.output_mode = V.check_choice("output_mode", output_mode,
                                          ("one_hot", "multi_hot", "count"))
        if V.check_bool("sparse", sparse):
            raise ValueError("sparse=True is not supported: fastnn outputs dense arrays")

    def _depth(self) -> int:
        return self.num_tokens

    def _compute(self, x: Any) -> np.ndarray:
        ids = integers(f"inputs of {self.name}", x)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_tokens):
            raise ValueError(f"inputs of {self.name} must be in [0, num_tokens="
                             f"{self.num_tokens}). Received: values in [{ids.min()}, "
                             f"{ids.max()}]")
        return encode(ids, self.output_mode, self.num_tokens, dtype=np.float64)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_tokens": self.num_tokens,
                "output_mode": self.output_mode}

    def __repr__(self) -> str:
        return f"CategoryEncoding(num_tokens={self.num_tokens}, output_mode={self.output_mode!r})"


class Hashing(_Categorical):
    """Values to ``num_bins`` buckets by a hash (Keras' layer, the same buckets): each value's
    text (integers in decimal; floats are first truncated to int64, as Keras) hashed by FarmHash
    Fingerprint64, or by SipHash-2-4 keyed by ``salt`` (an int s: the key (s, s); or a pair),
    modulo ``num_bins``. With ``mask_value`` (and num_bins > 1), that value goes to bin 0 and
    the rest to bins 1..num_bins-1. Strings work outside a model (``layer(["a", "b"])``).

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.Hashing(num_bins=3)([["A"], ["B"], ["C"], ["D"], ["E"]]).ravel().tolist()
    [1, 0, 1, 1, 2]
    >>> fnn.Hashing(num_bins=3, salt=133)([0, 1, 2, 3, 4]).tolist() == fnn.Hashing(
    ...     num_bins=3, salt=[133, 133])([0, 1, 2, 3, 4]).tolist()
    True
    """

    def __init__(self, num_bins: int, mask_value: Any = None, salt: Any = None,
                 output_mode: str = "int", sparse: bool = False, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.num_bins = V.check_dim("num_bins", num_bins)
        self.output_mode = V.check_choice("output_mode", output_mode,
                                          ("int", "one_hot", "multi_hot", "count"))
        if V.check_bool("sparse", sparse):
            raise ValueError("sparse=True is not supported: fastnn outputs dense arrays")
        if mask_value is not None and not isinstance(mask_value, (str, numbers.Integral)) \
                or isinstance(mask_value, bool):
            raise TypeError(f"mask_value must be an integer, a string or None. Received: "
                            f"mask_value={V._describe(mask_value)}")
        self.mask_value = mask_value
        if isinstance(salt, (list, tuple)):
            if len(salt) != 2:
                raise ValueError(f"salt must be an integer or a pair of integers. Received: "
                                 f"salt={V._describe(salt)}")
            salt = [V.check_int("salt", v, low=0) for v in salt]
        elif salt is not None:
            salt = [V.check_int("salt", salt, low=0)] * 2
        if salt is not None and max(salt) >= 2**64:
            raise ValueError(f"salt must be below 2**64. Received: salt={salt}")
        self.salt = salt

    def _depth(self) -> int:
        return self.num_bins

    def _hash(self, text: str) -> int:
        data = text.encode("utf-8")
        if self.salt is None:
            return fingerprint64(data)
        return siphash24(self.salt[0], self.salt[1], data)

    def _compute(self, x: Any) -> np.ndarray:
        arr = np.asarray(x) if not isinstance(x, (str, bytes)) else np.asarray([x])
        if arr.dtype.kind in "USO":
            keys: np.ndarray = np.array([t.decode("utf-8") if isinstance(t, bytes) else str(t)
                                         for t in arr.reshape(-1)], dtype=object)
            keys = keys.reshape(arr.shape).astype(str) if keys.size else keys.astype(str)
            masked = keys == self.mask_value if isinstance(self.mask_value, str) else None
        else:
            values = V.as_real_array(f"inputs of {self.name}", arr)
            V.check_finite(f"inputs of {self.name}", values)
            if values.dtype.kind == "f" and values.size and np.abs(values).max() >= 2.0**63:
                raise ValueError(f"inputs of {self.name} must be below 2**63 in size (they "
                                 f"are hashed as int64)")
            masked = values == self.mask_value \
                if isinstance(self.mask_value, numbers.Integral) else None
            keys = np.trunc(values).astype(np.int64)          # Keras: tf.cast to int64
        bins = self.num_bins
        if self.mask_value is not None and bins > 1:
            bins -= 1
        else:
            masked = None
        uniq, inverse = np.unique(keys.reshape(-1), return_inverse=True)  # hash each once
        cache = self.__dict__.setdefault("_seen", {})    # across calls: a model's batches
        if len(cache) > 1 << 16:
            cache.clear()
        codes = []
        for u in uniq.tolist():
            h = cache.get(u)
            if h is None:
                h = cache[u] = self._hash(str(u))
            codes.append(h)
        hashed = (np.array(codes, np.uint64) % np.uint64(bins)).astype(np.int64)
        ids = hashed[inverse].reshape(keys.shape)
        if masked is not None:
            ids = np.where(masked, 0, ids + 1)
        return encode(ids, self.output_mode, self.num_bins, dtype=np.float64)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_bins": self.num_bins, "mask_value":
                V.plain(self.mask_value), "salt": self.salt, "output_mode": self.output_mode}

    def __repr__(self) -> str:
        return f"Hashing(num_bins={self.num_bins})"


__all__ = ["CategoryEncoding", "Hashing", "integers"]
