"""``Embedding``: integer ids to dense vectors, Keras' layer with its names and weight layout.

Forward gathers rows of the ``embeddings`` table (``input_dim``, ``output_dim``); backward adds
each ``dy`` row into the gradient of the row it came from, in the order of the ids (so the
result is bitwise the same at any thread count). The ids have no gradient.

A model hands its layers arrays of its own dtype, so the ids arrive as floats: the layer takes
any float array whose values are integer ids (float32 holds every integer up to 2**24 exactly,
hence the limit on ``input_dim`` in a float32 model) and int64 arrays. The kernels check each id
as they read it (no extra pass): a non-integer, NaN, inf or out-of-range id raises ValueError
naming the layer, the value and its position, before any row is read for it.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec
from fastnn.layers.core import _initializer, _regularizer, _serialize

# float32 holds every integer up to 2**24 exactly, not beyond (2**24 + 1 rounds to 2**24)
FLOAT32_MAX_IDS = 2**24


def _dim(name: str, value: Any) -> int:
    dim = V.check_int(name, value)
    if dim < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={dim}")
    if dim >= 2**31:
        raise ValueError(f"{name} must be below 2**31. Received: {name}={dim}")
    return dim


class Embedding(Layer):
    """Turns integer ids into dense vectors: ``y[..., :] = embeddings[x[...], :]``.

    Parameters
    ----------
    input_dim : int
        Size of the vocabulary: ids are integers in [0, input_dim). At most 2**24 in a float32
        model (float32 holds larger integers inexactly: use ``dtype="float64"``).
    output_dim : int
        Size of each embedding vector.
    embeddings_initializer : str, Initializer or callable, default "uniform"
        As in Keras: ``RandomUniform(-0.05, 0.05)``.
    embeddings_regularizer : Regularizer or str, optional
        A penalty on the table added to the loss (``fastnn.regularizers.l2(1e-4)``, ...).
    mask_zero : bool, default False
        Id 0 is padding (Keras): the output carries a step mask, False where the id is 0, and
        the recurrent layers, attention, ``GlobalAveragePooling1D`` and the loss after it skip
        those steps (see ``fastnn.Masking``). The embedding of id 0 is still looked up (and
        learnt from the steps that read it), as in Keras. Needs ids of shape (steps,) per
        sample.
    input_length : int, optional
        Keras 2's argument, accepted for old code: when given, the layer's input must be
        sequences of that length (checked at build). The model's input shape is what counts.
    name, trainable
        See ``Layer``.

    Shapes: x (n, ...) integer ids (as floats or int64), embeddings (input_dim, output_dim),
    y (n, ..., output_dim).

    Raises
    ------
    TypeError
        If ``input_dim``, ``output_dim`` or ``input_length`` is not an integer.
    ValueError
        If a dimension is not in [1, 2**31), an initializer or regularizer is unknown; at
        build, ``input_dim`` > 2**24 in a float32 model, or ``mask_zero`` with ids that are not
        (steps,) per sample; at run time,
        an id that is not an integer in [0, input_dim).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> layer = fnn.Embedding(10, 3)
    >>> model = fnn.Sequential([layer], input_shape=(4,), seed=0, backend="numpy")
    >>> layer.get_weights()[0].shape
    (10, 3)
    >>> y = model.predict(np.array([[1, 2, 2, 9]]))
    >>> y.shape, bool((y[0, 1] == layer.get_weights()[0][2]).all())
    ((1, 4, 3), True)
    """

    def __init__(self, input_dim: int, output_dim: int,
                 embeddings_initializer: Any = "uniform", embeddings_regularizer: Any = None,
                 mask_zero: bool = False, input_length: Optional[int] = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.input_dim = _dim("input_dim", input_dim)
        self.output_dim = _dim("output_dim", output_dim)
        self.embeddings_initializer = _initializer("embeddings_initializer",
                                                   embeddings_initializer)
        self.embeddings_regularizer = _regularizer("embeddings_regularizer",
                                                   embeddings_regularizer)
        self.mask_zero = V.check_bool("mask_zero", mask_zero)
        self.input_length = None if input_length is None else _dim("input_length",
                                                                   input_length)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple):
            raise ValueError(f"{self.name} takes one input of ids. Received: input shape "
                             f"{input_shape}")
        if self.input_length is not None and input_shape[-1:] != (self.input_length,):
            raise ValueError(f"{self.name} was given input_length={self.input_length}, its "
                             f"input has shape {input_shape}")
        if self.mask_zero and len(input_shape) != 1:
            raise ValueError(f"{self.name}: mask_zero=True marks the padded steps of sequences "
                             f"of ids, shape (steps,) per sample. Received: input shape "
                             f"{input_shape}")
        return (*input_shape, self.output_dim)

    def output_masked(self, masked: Any) -> bool:
        return self.mask_zero

    def compute_mask(self, ctx: Slot, x: Any, mask: Any) -> Any:
        """Keras' ``mask_zero``: True where the id is not 0 (the ids were checked by forward)."""
        out = ctx.rows_buffer("mask", self.input_shape, dtype=bool)
        np.not_equal(ctx.saved["rows"], 0, out=out)
        return out

    def build(self, input_shape: Any, dtype: Any) -> Any:
        if np.dtype(dtype) == np.float32 and self.input_dim > FLOAT32_MAX_IDS:
            raise ValueError(f"{self.name}: a float32 model passes ids as float32, which holds "
                             f"integers exactly only up to 2**24 = {FLOAT32_MAX_IDS}; use "
                             f"dtype='float64' for a larger vocabulary. Received: "
                             f"input_dim={self.input_dim}")
        return super().build(input_shape, dtype)

    def weight_specs(self) -> Sequence[WeightSpec]:
        return [WeightSpec("embeddings", (self.input_dim, self.output_dim),
                           self.embeddings_initializer, self.embeddings_regularizer)]

    @property
    def embeddings(self) -> FloatArray:
        """The table (a view of the model's buffer), (input_dim, output_dim)."""
        self._check_built()
        return self._weights[0]

    def forward(self, ctx: Slot, x: Any, training: bool) -> FloatArray:
        x = np.asarray(x)
        if x.dtype.kind in "biu":
            x = x.astype(np.int64)
        elif x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{self.name} takes ids as an integer or float32/float64 array. "
                            f"Received: dtype {x.dtype}")
        x = np.ascontiguousarray(x)
        y = ctx.rows_buffer("y", self.output_shape)
        rows = ctx.rows_buffer("ids", self.input_shape, np.int64)
        bad = ctx.be.embedding_forward(x.reshape(-1), self._weights[0],
                                       y.reshape(-1, self.output_dim), rows.reshape(-1))
        if bad >= 0:
            where = np.unravel_index(bad, x.shape)
            raise ValueError(f"{self.name}: ids must be integers in [0, input_dim="
                             f"{self.input_dim}). Received: ids[{', '.join(map(str, where))}]="
                             f"{x.reshape(-1)[bad].item()!r}")
        ctx.saved["rows"] = rows
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        rows = ctx.saved["rows"]
        ctx.be.embedding_backward(rows.reshape(-1), np.ascontiguousarray(dy).reshape(
            -1, self.output_dim), self._grads[0])
        dx = ctx.dx_target(0)
        if dx is None:
            return None
        dx[...] = 0          # integer ids have no gradient
        return dx

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"input_dim": self.input_dim, "output_dim": self.output_dim,
                       "embeddings_initializer": _serialize(self.embeddings_initializer)})
        if self.embeddings_regularizer is not None:
            config["embeddings_regularizer"] = _serialize(self.embeddings_regularizer)
        if self.input_length is not None:
            config["input_length"] = self.input_length
        if self.mask_zero:
            config["mask_zero"] = True
        return config

    def __repr__(self) -> str:
        return f"Embedding({self.input_dim}, {self.output_dim})"


def _steps_and_width(layer: Layer, input_shape: Any) -> tuple[int, int]:
    if not isinstance(input_shape, tuple) or len(input_shape) != 2:
        raise ValueError(f"{layer.name} takes sequences (batch, steps, features). Received: "
                         f"input shape {input_shape} (one sample's)")
    return input_shape


class _AddPositions(Layer):
    """A (steps, features) table added to every sample: ``y[n] = x[n] + table[:steps]``; the
    gradient passes through (dx = dy)."""

    supports_masking = True     # see Layer.compute_mask

    def _table(self) -> FloatArray:
        raise NotImplementedError

    def positions(self, start: int, length: int) -> FloatArray:
        """Rows ``start .. start + length - 1`` of the table (a view): what positions
        ``start ...`` add (generation with a key/value cache feeds one position at a time)."""
        start, length = V.check_int("start", start, 0), V.check_int("length", length, 0)
        table = self._table()
        if start + length > table.shape[0]:
            raise ValueError(f"{self.name}: positions {start}..{start + length - 1} are past "
                             f"its {table.shape[0]} positions")
        return table[start:start + length]

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        steps, width = self.input_shape
        table = self.positions(0, steps)
        ctx.be.add_row_vector(np.ascontiguousarray(x).reshape(x.shape[0], -1),
                              table.reshape(-1), y.reshape(y.shape[0], -1))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        return dy


class PositionalEmbedding(_AddPositions):
    """Adds a learned vector per position to a sequence: ``y[n, t] = x[n, t] + embeddings[t]``
    (GPT's position embeddings). Unlike keras_hub's ``PositionEmbedding``, which returns the
    table for the caller to add, this layer adds it.

    Parameters
    ----------
    sequence_length : int
        The most positions the layer holds (an input's steps must not exceed it).
    initializer : str, Initializer or callable, default "glorot_uniform"
        How the table starts (keras_hub's default).
    regularizer : Regularizer or str, optional
        A penalty on the table.
    name, trainable
        See ``Layer``.

    Weights: ``embeddings`` (sequence_length, features). Gradient: ``dembeddings[t] =
    sum_n dy[n, t]`` (in batch order), ``dx = dy``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> layer = fnn.PositionalEmbedding(8)
    >>> model = fnn.Sequential([layer], input_shape=(5, 3), seed=0, backend="numpy")
    >>> layer.get_weights()[0].shape
    (8, 3)
    >>> bool(np.allclose(model.predict(np.zeros((2, 5, 3)))[1], layer.get_weights()[0][:5]))
    True
    """

    def __init__(self, sequence_length: int, initializer: Any = "glorot_uniform",
                 regularizer: Any = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.sequence_length = _dim("sequence_length", sequence_length)
        self.initializer = _initializer("initializer", initializer)
        self.regularizer = _regularizer("regularizer", regularizer)

    def compute_output_shape(self, input_shape: Any) -> Any:
        steps, _ = _steps_and_width(self, input_shape)
        if steps > self.sequence_length:
            raise ValueError(f"{self.name} holds {self.sequence_length} positions (its "
                             f"sequence_length). Received: sequences of {steps} steps")
        return input_shape

    def weight_specs(self) -> Sequence[WeightSpec]:
        return [WeightSpec("embeddings", (self.sequence_length, self.input_shape[1]),
                           self.initializer, self.regularizer)]

    def _table(self) -> FloatArray:
        self._check_built()
        return self._weights[0]

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        steps, width = self.input_shape
        dy = np.ascontiguousarray(dy)
        ctx.be.sum_rows_into(dy.reshape(dy.shape[0], -1),
                             self._grads[0][:steps].reshape(-1))
        return dy

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"sequence_length": self.sequence_length,
                       "initializer": _serialize(self.initializer)})
        if self.regularizer is not None:
            config["regularizer"] = _serialize(self.regularizer)
        return config

    def __repr__(self) -> str:
        return f"PositionalEmbedding({self.sequence_length})"


def sinusoidal_positions(length: int, width: int, max_wavelength: float = 10000.0,
                         dtype: Any = np.float64) -> FloatArray:
    """The sinusoidal position encoding of Vaswani et al. (2017), (length, width):
    ``P[t, 2i] = sin(t / max_wavelength ** (2i / width))``, ``P[t, 2i + 1] = cos(...)`` (the
    same angle), computed in float64 (keras_hub's ``SinePositionEncoding`` layout)."""
    length, width = _dim("length", length), _dim("width", width)
    wavelength = V.check_float("max_wavelength", max_wavelength, low=1.0)
    if length * width > 2**28:
        raise ValueError(f"sinusoidal_positions: length * width must be at most 2**28. "
                         f"Received: length={length}, width={width}")
    pairs = 2 * (np.arange(width) // 2)
    rates = np.power(wavelength, -pairs / width)
    angles = np.arange(length, dtype=np.float64)[:, None] * rates[None, :]
    table = np.where(np.arange(width) % 2 == 0, np.sin(angles), np.cos(angles))
    return table.astype(dtype)


class SinePositionEncoding(_AddPositions):
    """Adds the fixed sinusoidal encoding (``sinusoidal_positions``) to a sequence:
    ``y[n, t] = x[n, t] + P[t]``. No weights; the table is computed at build for the input's
    steps. Unlike keras_hub's layer of this name (which returns P), this layer adds it.

    Parameters
    ----------
    max_wavelength : float, default 10000
        The longest wavelength of the sinusoids.
    name, trainable
        See ``Layer``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.SinePositionEncoding()], input_shape=(3, 4),
    ...                        backend="numpy", dtype="float64")
    >>> np.round(model.predict(np.zeros((1, 3, 4)))[0, 1], 4)
    array([0.8415, 0.5403, 0.01  , 1.    ])
    """

    def __init__(self, max_wavelength: float = 10000.0, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.max_wavelength = V.check_float("max_wavelength", max_wavelength, low=1.0)
        self._cached: Optional[FloatArray] = None

    def compute_output_shape(self, input_shape: Any) -> Any:
        _steps_and_width(self, input_shape)
        return input_shape

    def build(self, input_shape: Any, dtype: Any) -> Any:
        out = super().build(input_shape, dtype)
        steps, width = input_shape
        self._cached = sinusoidal_positions(steps, width, self.max_wavelength, dtype)
        return out

    def extend(self, length: int) -> None:
        """Hold ``length`` positions (generation past the input's steps)."""
        self._check_built()
        length = _dim("length", length)
        if length > len(self._table()):
            self._cached = sinusoidal_positions(length, self.input_shape[1],
                                                self.max_wavelength, self.dtype)

    def _table(self) -> FloatArray:
        self._check_built()
        assert self._cached is not None
        return self._cached

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["max_wavelength"] = self.max_wavelength
        return config

    def __repr__(self) -> str:
        return "SinePositionEncoding()"
