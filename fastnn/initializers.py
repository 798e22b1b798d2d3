"""Weight initializers, Keras' names and defaults.

An initializer is called as ``init(shape, dtype, rng)`` and returns an array of that shape and
dtype; the model passes its own generator (``Sequential(..., seed=)``), so a model's weights
follow from its seed. An initializer given its own ``seed`` uses it instead, and then draws the
same values at every call (as Keras' seeded initializers do). Layers take an instance, a name
(``"he_normal"`` or ``"HeNormal"``), a ``{"class_name", "config"}`` dict, or a function
``f(shape, dtype)`` of the user's (checked at each call; not storable in a model file).

Fans, as in Keras: a (fan_in, fan_out) matrix for Dense; for a kernel
(..., in, out) of a convolution, the receptive field times in and out.

Examples
--------
>>> import numpy as np
>>> import fastnn as fnn
>>> w = fnn.initializers.HeNormal(seed=0)((256, 128), "float32")
>>> w.shape, w.dtype, bool(abs(w.std() - np.sqrt(2 / 256)) < 0.01)
((256, 128), dtype('float32'), True)
>>> fnn.initializers.get("glorot_uniform")
GlorotUniform(seed=None)
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import numpy as np
from numpy.typing import DTypeLike, NDArray

from fastnn import _validation as V

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform",
           "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform",
           "HeNormal", "LecunUniform", "LecunNormal", "Orthogonal", "Identity", "get",
           "serialize"]

FloatArray = NDArray[np.floating[Any]]
# std of a standard normal truncated to [-2, 2]: VarianceScaling divides by it (Keras' constant)
_TRUNCATED_STD = 0.87962566103423978


def _fans(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> NDArray[np.float64]:
    """Standard normal draws, those outside [-2, 2] redrawn."""
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out


class Initializer:
    """Base class: subclasses implement ``_sample(shape, rng) -> float64 array``."""

    _seeded = False

    def __init__(self, seed: Optional[int] = None) -> None:
        self.seed = None if seed is None else V.check_int("seed", seed, low=0)

    def __call__(self, shape: Sequence[int], dtype: DTypeLike = "float32",
                 rng: Optional[np.random.Generator] = None) -> FloatArray:
        shape = tuple(V.check_int("shape entry", int(s) if isinstance(s, np.integer) else s,
                                  low=0) for s in shape)
        dtype = V.check_dtype(dtype)
        if self.seed is not None or rng is None:
            rng = np.random.default_rng(self.seed)
        return np.asarray(self._sample(shape, rng), dtype=dtype).reshape(shape)

    def _sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed} if "seed" in self._params() else {}

    def _params(self) -> list[str]:
        import inspect
        return [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Initializer":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._params())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    __hash__ = None  # type: ignore[assignment]


class Zeros(Initializer):
    """All zeros."""

    def __init__(self) -> None:
        super().__init__()

    def _sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        return np.zeros(shape)


class Ones(Initializer):
    """All ones."""

    def __init__(self) -> None:
        super().__init__()

    def _sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        return np.ones(shape)


class Constant(Initializer):
    """Every entry ``value``."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.value = V.check_float("value", value)

    def _sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        return np.full(shape, self.value)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


class RandomNormal(Initializer):
    """Normal draws with ``mean`` and ``stddev``."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05,
                 seed: Optional[int] = None) -> None:
        super().__init__(seed)
        self.mean = V.check_float("mean", mean)
        self.stddev = V.check_float("stddev", stddev, low=0.0)

    def _sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        return self.mean + self.stddev * rng.standard_normal(shape)

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(RandomNormal):
    """Normal draws with ``mean`` and ``stddev``, those beyond two ``stddev`` redrawn."""

    def _sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        return self.mean + self.stddev * _truncated_normal(rng, shape)


class RandomUniform(Initializer):
    """Uniform draws in [``minval``, ``maxval``)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05,
                 seed: Optional[int] = None) -> None:
        super().__init__(seed)
        self.minval = V.check_float("minval", minval)
        self.maxval = V.check_float("maxval", maxval, low=self.minval)

    def _sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class VarianceScaling(Initializer):
    """Draws of variance ``scale / n``, n the fan in, the fan out or their mean (``mode``);
    ``distribution`` "truncated_normal", "untruncated_normal" or "uniform" (limit
    sqrt(3 scale / n))."""

    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: Optional[int] = None) -> None:
        super().__init__(seed)
        self.scale = V.check_float("scale", scale, low=0.0, low_open=True)
        self.mode = V.check_choice("mode", mode, self.MODES)
        self.distribution = V.check_choice("distribution", distribution, self.DISTRIBUTIONS)

    def _sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape)
        if self.distribution == "untruncated_normal":
            return math.sqrt(variance) * rng.standard_normal(shape)
        return math.sqrt(variance) / _TRUNCATED_STD * _truncated_normal(rng, shape)

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


def _scaling(name: str, scale: float, mode: str, distribution: str,
             doc: str) -> type[VarianceScaling]:
    def __init__(self: VarianceScaling, seed: Optional[int] = None) -> None:
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self: VarianceScaling) -> dict[str, Any]:
        return {"seed": self.seed}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                           "__doc__": doc, "__module__": __name__})


GlorotUniform = _scaling("GlorotUniform", 1.0, "fan_avg", "uniform",
                         "Uniform in +-sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010).")
GlorotNormal = _scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                        "Truncated normal, std sqrt(2 / (fan_in + fan_out)).")
HeUniform = _scaling("HeUniform", 2.0, "fan_in", "uniform",
                     "Uniform in +-sqrt(6 / fan_in) (He et al., 2015).")
HeNormal = _scaling("HeNormal", 2.0, "fan_in", "truncated_normal",
                    "Truncated normal, std sqrt(2 / fan_in): for the ReLU family.")
LecunUniform = _scaling("LecunUniform", 1.0, "fan_in", "uniform",
                        "Uniform in +-sqrt(3 / fan_in).")
LecunNormal = _scaling("LecunNormal", 1.0, "fan_in", "truncated_normal",
                       "Truncated normal, std sqrt(1 / fan_in): for selu.")


class Orthogonal(Initializer):
    """An orthogonal matrix (rows or columns orthonormal) times ``gain``, from the QR
    decomposition of a normal draw; an N-D shape is the matrix (prod(shape[:-1]), shape[-1])."""

    def __init__(self, gain: float = 1.0, seed: Optional[int] = None) -> None:
        super().__init__(seed)
        self.gain = V.check_float("gain", gain)

    def _sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        if len(shape) < 2:
            raise ValueError(f"Orthogonal needs a shape of 2 or more dimensions. "
                             f"Received: shape={shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        if rows * cols == 0:
            return np.zeros(shape)
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.where(np.diag(r) == 0, 1.0, np.diag(r)))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only; a non-square one gets the eye)."""

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = V.check_float("gain", gain)

    def _sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        if len(shape) != 2:
            raise ValueError(f"Identity needs a 2-D shape. Received: shape={shape}")
        return self.gain * np.eye(*shape)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain}


class _UserInitializer:
    """A function ``f(shape, dtype)`` of the user's, its result checked at each call."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, shape: Sequence[int], dtype: DTypeLike = "float32",
                 rng: Optional[np.random.Generator] = None) -> FloatArray:
        shape, dtype = tuple(shape), V.check_dtype(dtype)
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        value = V.as_real_array(f"the initializer {name}'s result", self.fn(shape, dtype))
        if value.shape != shape:
            raise ValueError(f"the initializer {name} returned an array of shape {value.shape} "
                             f"for the weight shape {shape}")
        value = value.astype(dtype)
        V.check_finite(f"the initializer {name}'s result", value)
        return value

    def __repr__(self) -> str:
        return f"<initializer {getattr(self.fn, '__name__', self.fn)!r}>"


_CLASSES: dict[str, type[Initializer]] = {
    c.__name__: c for c in (Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal,
                            VarianceScaling, GlorotUniform, GlorotNormal, HeUniform, HeNormal,
                            LecunUniform, LecunNormal, Orthogonal, Identity)}
_NAMES = {"zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
          "random_uniform": RandomUniform, "normal": RandomNormal, "uniform": RandomUniform, "truncated_normal": TruncatedNormal,
          "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
          "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
          "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal, "orthogonal": Orthogonal,
          "identity": Identity}


def _from_registry(kind: str, identifier: Any, names: dict[str, Any],
                   classes: dict[str, Any]) -> Any:
    """Look a name or a {"class_name", "config"} dict up (shared with fastnn.regularizers)."""
    if isinstance(identifier, str):
        cls = names.get(identifier) or classes.get(identifier)
        if cls is None:
            raise ValueError(f"unknown {kind} {V._describe(identifier)}; known: "
                             f"{', '.join(sorted(names))}")
        return cls()
    if set(identifier) != {"class_name", "config"} or not isinstance(identifier["config"], dict):
        raise ValueError(f"a {kind} given as a dict needs exactly the keys 'class_name' and "
                         f"'config' (a dict). Received: {V._describe(identifier)}")
    name = identifier["class_name"]
    cls = classes.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown {kind} class {V._describe(name)}; known: "
                         f"{', '.join(sorted(classes))}")
    config = identifier["config"]
    try:
        return cls(**config)
    except TypeError:
        import inspect
        allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        raise TypeError(f"{name} takes the arguments {allowed}. Received: "
                        f"{V._describe(config)}") from None


def get(identifier: Any) -> Any:
    """The initializer for ``identifier``: None, an Initializer, a name, a dict from
    ``serialize``, or a function ``f(shape, dtype)``."""
    if identifier is None or isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, (str, dict)):
        return _from_registry("initializer", identifier, _NAMES, _CLASSES)
    if callable(identifier) and not isinstance(identifier, type):
        return _UserInitializer(identifier)
    raise TypeError(f"an initializer must be a name, a dict, an Initializer or a function "
                    f"f(shape, dtype). Received: {V._describe(identifier)}")


def serialize(initializer: Initializer) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}``, which ``get`` turns back into the initializer."""
    if not isinstance(initializer, Initializer):
        raise TypeError(f"only fastnn's initializers can be serialized. Received: "
                        f"{V._describe(initializer)}")
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
