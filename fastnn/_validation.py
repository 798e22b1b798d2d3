"""Every check of user input, in one place.

Kernels run with bounds checking off and trust their arguments, so whatever reaches them must
already be right: shapes, dtypes, finiteness, label ranges. Each failure raises ValueError or
TypeError whose message names the argument, what was expected, and what was received.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

FLOAT_DTYPES: dict[str, type[np.floating[Any]]] = {"float32": np.float32, "float64": np.float64}

try:    # one compiled pass each (the NumPy backend runs without the extension)
    from fastnn._ext._loss import one_hot as _compiled_one_hot
    from fastnn._ext._optim import max_abs as _compiled_max_abs
except ImportError:  # pragma: no cover - depends on how fastnn was installed
    _compiled_max_abs = _compiled_one_hot = None


def _compiled_flat(x: Any) -> Optional[NDArray[Any]]:
    """x as a flat view the compiled passes read (contiguous native float32 or float64), else
    None (then NumPy's calls run)."""
    if (_compiled_max_abs is not None and isinstance(x, np.ndarray) and x.flags.c_contiguous
            and x.dtype.char in "fd" and x.dtype.isnative):
        return x.reshape(-1)
    return None


def max_abs(x: NDArray[Any]) -> float:
    """max |x_i| of a float array (0.0 when empty); NaN or inf when some x_i is NaN or inf.

    A contiguous float32 or float64 array takes one compiled pass with no temporary; NumPy's
    max and min take two, and their code is what another library's work evicts from the
    caches between two training steps (in an app that alternates them, several times the
    pass itself)."""
    flat = _compiled_flat(x)
    if flat is not None:
        return float(_compiled_max_abs(flat))
    return max(float(x.max()), -float(x.min())) if x.size else 0.0


def plain(value: Any) -> Any:
    """``value`` with NumPy scalars as Python ones, inside tuples and lists too, so that messages
    print ``10``, not ``np.int64(10)``."""
    if isinstance(value, np.generic):
        return value.item()
    if type(value) in (tuple, list):
        return type(value)(plain(v) for v in value)
    return value


def _describe(value: object) -> str:
    text = repr(plain(value))
    return text if len(text) <= 80 else text[:77] + "..."


def check_int(name: str, value: Any, low: Optional[int] = None) -> int:
    """An int (not bool) >= low."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer. Received: {name}={_describe(value)} "
                        f"of type {type(value).__name__}")
    value = operator.index(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be an integer >= {low}. Received: {name}={value}")
    return value


def check_positive_int(name: str, value: Any) -> int:
    return check_int(name, value, low=1)


def check_dim(name: str, value: Any) -> int:
    """A size or width: an int (not bool) in [1, 2**31), what the kernels index with."""
    dim = check_positive_int(name, value)
    if dim >= 2**31:
        raise ValueError(f"{name} must be below 2**31. Received: {name}={dim}")
    return dim


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False. Received: {name}={_describe(value)}")
    return bool(value)


def check_float(name: str, value: Any, low: Optional[float] = None, high: Optional[float] = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in the given interval; returns a Python float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number. Received: {name}={_describe(value)} "
                        f"of type {type(value).__name__}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        interval = ("(" if low_open or low is None else "[") + f"{lo}, {hi}" + \
                   (")" if high_open or high is None else "]")
        raise ValueError(f"{name} must be a finite number in {interval}. "
                         f"Received: {name}={_describe(value)}")
    return value


# Magnitudes every float dtype fastnn computes in holds as normal numbers (float32's smallest
# normal 1.1754944e-38 and largest 3.4028235e38, with room for rounding): the common case of
# check_in_dtype answers without np.finfo or np.errstate (~6 us a call, several per forward).
_SAFE_LOW, _SAFE_HIGH = 1.2e-38, 3.4e38


def check_in_dtype(name: str, value: float, dtype: DTypeLike, zero_ok: bool = False,
                   owner: str = "") -> float:
    """``value`` (a finite float) if ``dtype`` holds it as a normal number (or it is 0 and
    ``zero_ok``): ``finfo.tiny <= |value|`` and ``dtype(value)`` finite.

    Anything else would change silently on its way into a kernel: to inf above the dtype's
    range, and to 0 below ``tiny``, directly or as a subnormal that the compiled kernels flush
    to zero (``src_c/fnn_ftz.h``) while NumPy keeps it. ``owner`` (e.g. ``"LeakyReLU(1e+39)"``)
    prefixes the message.
    """
    if _SAFE_LOW <= abs(value) <= _SAFE_HIGH:   # a normal float32, so a normal float64 too
        return value
    dt = np.dtype(dtype)
    info = np.finfo(dt)
    if value == 0.0 and zero_ok:
        return value
    with np.errstate(over="ignore", under="ignore"):
        held = float(dt.type(value))          # type: ignore[call-overload]  # a float dtype
    if math.isfinite(held) and abs(value) >= float(info.tiny):
        return value
    if not math.isfinite(held):
        becomes = f"overflows to {held}"
    elif held == 0.0:
        becomes = "becomes 0"
    else:
        becomes = "is subnormal (the compiled kernels flush it to 0)"
    allowed = f"0 or a {dt.name} normal number" if zero_ok else f"a {dt.name} normal number"
    prefix = f"{owner}: " if owner else ""
    raise ValueError(f"{prefix}{name} must be {allowed}, {float(info.tiny):.6g} <= |{name}| <= "
                     f"{float(info.max):.6g}. "
                     f"Received: {name}={_describe(value)}, which in {dt.name} "
                     f"{becomes}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}. "
                         f"Received: {name}={_describe(value)}")
    return value


def check_dtype(dtype: DTypeLike) -> type[np.floating[Any]]:
    """'float32' or 'float64' (also the NumPy types) -> the NumPy scalar type."""
    try:
        key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    except TypeError:
        key = None
    if key not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64'. "
                         f"Received: dtype={_describe(dtype)}")
    return FLOAT_DTYPES[key]


def as_real_array(name: str, x: ArrayLike) -> NDArray[Any]:
    """x as a NumPy array of real numbers (any real dtype), refusing object, complex, strings."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} must be a rectangular array of numbers. "
                             f"Received: {name} of type {type(x).__name__} ({exc})") from None
    kind = arr.dtype.kind
    if kind not in "fiub":
        hint = ""
        if kind in "USO" and name.split("[")[0] in ("y", "y_true", "labels"):
            hint = (" Class labels that are strings (or other objects) must be encoded as "
                    "integers 0..k-1 first: np.unique(y, return_inverse=True)[1], or "
                    "sklearn.preprocessing.LabelEncoder; fastnn.sklearn.MLPClassifier takes "
                    "any labels and encodes them itself.")
        raise TypeError(f"{name} must hold real numbers. Received: {name} with dtype "
                        f"{arr.dtype} (kind {kind!r}).{hint}")
    return arr


def as_number_array(name: str, x: ArrayLike) -> NDArray[Any]:
    """``as_real_array``, refusing booleans too: for arrays of values (statistics, constants),
    where True would silently mean 1.0."""
    arr = as_real_array(name, x)
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} must hold numbers, not booleans. Received: {name} with dtype "
                        f"bool")
    return arr


def float_matrix(name: str, x: ArrayLike, dtype: DTypeLike, width: Optional[int] = None,
                 allow_empty: bool = False) -> NDArray[np.floating[Any]]:
    """A C-contiguous (n, d) array of ``dtype``, finite, copied only if needed.

    Accepts lists, integer and float16 arrays, strided, Fortran-ordered, read-only and
    memory-mapped arrays; a 1-D array is refused (ambiguous: one sample or one feature?).
    """
    arr = as_real_array(name, x)
    if arr.ndim != 2:
        hint = ""
        if arr.ndim == 1:
            hint = (f" For one sample, pass {name}.reshape(1, -1); for one feature, "
                    f"{name}.reshape(-1, 1).")
        raise ValueError(f"{name} must be 2-D (samples, features). Received: {name} with "
                         f"shape {arr.shape}.{hint}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} must hold at least one sample. Received: {name} with "
                         f"shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one feature. Received: {name} with "
                         f"shape {arr.shape}")
    if width is not None and arr.shape[1] != width:
        raise ValueError(f"{name} must have {width} features (columns). Received: {name} with "
                         f"shape {arr.shape}")
    out = as_float(arr, dtype)
    check_finite(name, out)
    return out


def as_float(arr: ArrayLike, dtype: DTypeLike) -> NDArray[np.floating[Any]]:
    """``arr`` as a C-contiguous array of ``dtype`` (no copy when it already is one).

    Values too large for ``dtype`` become inf, which ``check_finite`` then reports; NumPy's
    overflow warning is silenced so that ``np.seterr(all="raise")`` cannot turn the refusal into
    a FloatingPointError.
    """
    if (type(arr) is np.ndarray and arr.dtype == dtype and arr.flags.c_contiguous
            and arr.dtype.isnative):
        return arr                   # already so: skip the errstate context (~1 us)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(arr, dtype=dtype)


_SMALL = 1 << 16    # elements: check_finite's temporary boolean array stays under 64 KiB


def check_finite(name: str, arr: NDArray[Any]) -> None:
    flat = _compiled_flat(arr)
    if flat is not None:
        finite = math.isfinite(_compiled_max_abs(flat))
    elif arr.size <= _SMALL:
        # isfinite().all() raises no floating-point warnings, so it needs no errstate context,
        # which costs more than the check itself on a small array
        finite = bool(np.isfinite(arr).all())
    else:
        # One reduction instead of isfinite().all(): no temporary boolean array. inf * 0 is NaN,
        # which is the point, so the "invalid" warning is silenced (see as_float).
        with np.errstate(over="ignore", invalid="ignore"):
            finite = math.isfinite(float(np.add.reduce(arr, axis=None) * 0))
    if not finite:
        bad_mask = ~np.isfinite(arr)
        if not bad_mask.any():      # the sum overflowed, the values are fine
            return
        bad = np.argwhere(bad_mask)[0]
        raise ValueError(f"{name} must be finite (no NaN or inf). Received: {name}"
                         f"[{', '.join(map(str, bad))}]={plain(arr[tuple(bad)])!r}")


def dense_targets(y: ArrayLike, n_outputs: int, dtype: DTypeLike, n_rows: Optional[int] = None,
                  name: str = "y") -> NDArray[np.floating[Any]]:
    """Regression/binary targets: (n,) when there is one output, or (n, n_outputs)."""
    arr = as_real_array(name, y)
    if arr.ndim == 1 and n_outputs == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != n_outputs:
        expected = "(n,) or (n, 1)" if n_outputs == 1 else f"(n, {n_outputs})"
        raise ValueError(f"{name} must have shape {expected} to match the model's "
                         f"{n_outputs} outputs. Received: {name} with shape {arr.shape}")
    check_rows(name, arr, n_rows)
    out = as_float(arr, dtype)
    check_finite(name, out)
    return out


def class_targets(y: ArrayLike, n_classes: int, dtype: DTypeLike, n_rows: Optional[int] = None,
                  name: str = "y") -> NDArray[np.floating[Any]]:
    """Integer labels (n,) in [0, n_classes) or one-hot / probability rows (n, n_classes)."""
    arr = as_real_array(name, y)
    if arr.ndim == 1:
        check_rows(name, arr, n_rows)
        labels = arr
        if (_compiled_one_hot is not None and labels.dtype.kind == "i"
                and labels.dtype.itemsize in (4, 8) and labels.dtype.isnative
                and labels.flags.c_contiguous and np.dtype(dtype).char in "fd"):
            # the range check and the one-hot rows in one compiled pass (as below)
            out = np.empty((labels.shape[0], n_classes), dtype=dtype)
            first_bad = _compiled_one_hot(labels, out)
            if first_bad >= 0:
                raise ValueError(f"{name} labels must be in [0, {n_classes - 1}] for a model "
                                 f"with {n_classes} outputs. Received: label "
                                 f"{labels[first_bad].item()!r}")
            return out
        if labels.dtype.kind == "f":
            check_finite(name, labels)
            if labels.size and np.any(labels != np.round(labels)):
                frac = labels[labels != np.round(labels)][0]
                raise ValueError(f"{name} must hold integer class labels. "
                                 f"Received: a fractional label {name}={frac.item()!r}")
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            bad = labels[(labels < 0) | (labels >= n_classes)][0]
            raise ValueError(f"{name} labels must be in [0, {n_classes - 1}] for a model with "
                             f"{n_classes} outputs. Received: label {bad.item()!r}")
        out = np.zeros((arr.shape[0], n_classes), dtype=dtype)
        out[np.arange(arr.shape[0]), labels.astype(np.intp)] = 1
        return out
    if arr.ndim != 2 or arr.shape[1] != n_classes:
        raise ValueError(f"{name} must be integer labels (n,) or one-hot (n, {n_classes}). "
                         f"Received: {name} with shape {arr.shape}")
    check_rows(name, arr, n_rows)
    out = as_float(arr, dtype)
    check_finite(name, out)
    if out.size:
        tol = 1e-3 if dtype == np.float32 else 1e-6
        sums = out.sum(axis=1, dtype=np.float64)
        if out.min() < 0 or np.any(np.abs(sums - 1) > tol):
            raise ValueError(f"{name} rows must be one-hot (or class probabilities summing to "
                             f"1). Received: row sums in [{sums.min():.6g}, {sums.max():.6g}], "
                             f"min value {out.min()!r}")
    return out


def predictions(name: str, y: ArrayLike) -> tuple[NDArray[np.floating[Any]], tuple[int, ...]]:
    """(n,) or (n, m) predictions as a C-contiguous finite (n, m) array -- float32 if they are
    float32, else float64 -- and their shape as given (for the gradient)."""
    arr = as_real_array(name, y)
    if arr.ndim not in (1, 2) or arr.size == 0:
        raise ValueError(f"{name} must have shape (n,) or (n, m) with n, m >= 1. Received: "
                         f"{name} with shape {arr.shape}")
    dtype = np.float32 if arr.dtype == np.float32 else np.float64
    return float_matrix(name, arr.reshape(arr.shape[0], -1), dtype), arr.shape


def sample_weights(w: ArrayLike, n_rows: int, dtype: DTypeLike,
                   name: str = "sample_weight") -> NDArray[np.floating[Any]]:
    """Sample weights: a C-contiguous (n_rows,) array of ``dtype``, finite and >= 0."""
    arr = as_real_array(name, w)
    if arr.shape != (n_rows,):
        raise ValueError(f"{name} must have shape ({n_rows},): one weight per sample. "
                         f"Received: {name} with shape {arr.shape}")
    out = as_float(arr, dtype)
    check_finite(name, out)
    if out.size and out.min() < 0:
        i = int(np.argmax(out < 0))
        raise ValueError(f"{name} must be >= 0. Received: {name}[{i}]={float(out[i])!r}")
    return out


def class_weight_table(name: str, table: Any, classes: NDArray[np.integer[Any]],
                       dtype: DTypeLike) -> NDArray[np.floating[Any]]:
    """The weight of each sample's class from ``table`` {class index: weight}, as Keras'
    ``class_weight``: a dict of integer classes to finite weights >= 0; a class of the data that
    the dict does not list keeps weight 1."""
    if not isinstance(table, Mapping):
        raise TypeError(f"{name} must be a dict {{class index: weight}}. Received: "
                        f"{name}={_describe(table)}")
    lookup: dict[int, float] = {}
    for key, value in table.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
            raise ValueError(f"{name} keys must be class indices (integers >= 0). Received: "
                             f"key {key!r}")
        lookup[int(key)] = check_float(f"{name}[{key}]", value, low=0.0)
    weights = np.ones(classes.shape[0], dtype=dtype)
    for key, value in lookup.items():
        weights[classes == key] = value
    return weights


def check_rows(name: str, arr: NDArray[Any], n_rows: Optional[int]) -> None:
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{name} must have one row per sample of X ({n_rows}). "
                         f"Received: {name} with {arr.shape[0]} rows")


def float_array(name: str, x: ArrayLike, dtype: DTypeLike,
                sample_shape: tuple[int, ...]) -> NDArray[np.floating[Any]]:
    """A C-contiguous (n, *sample_shape) array of ``dtype``, finite, with n >= 1; copied only
    if needed. 2-D inputs go through ``float_matrix`` (its messages speak of features)."""
    if len(sample_shape) == 1:
        return float_matrix(name, x, dtype, width=sample_shape[0])
    arr = as_real_array(name, x)
    if arr.shape[1:] != tuple(sample_shape) or arr.ndim != len(sample_shape) + 1:
        hint = ""
        if arr.shape == tuple(sample_shape):
            hint = (f". For one sample, add the batch axis: {name}[np.newaxis] (shape "
                    f"(1, {', '.join(map(str, sample_shape))}))")
        raise ValueError(f"{name} must have shape (n, {', '.join(map(str, sample_shape))}). "
                         f"Received: {name} with shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample. Received: {name} with "
                         f"shape {arr.shape}")
    out = as_float(arr, dtype)
    check_finite(name, out)
    return out


def check_shape(name: str, value: Any, allow_none_first: bool = False) -> tuple[int, ...]:
    """A shape: a positive int or a non-empty tuple/list of positive ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not value:
        raise TypeError(f"{name} must be a tuple of positive integers such as (28, 28, 1). "
                        f"Received: {name}={_describe(value)}")
    dims = []
    for d in value:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"{name} must be a tuple of positive integers such as (28, 28, "
                             f"1). Received: {name}={_describe(value)}")
        if d >= 2**31:
            raise ValueError(f"{name} has a dimension of {d}, over 2**31 - 1. Received: "
                             f"{name}={_describe(value)}")
        dims.append(int(d))
    if len(dims) > 8:
        raise ValueError(f"{name} may have at most 8 dimensions. Received: {name}="
                         f"{_describe(value)}")
    return tuple(dims)


# ---------------------------------------------------------------- the attention kernels' arguments
# Shared by the compiled kernels (fastnn/_ext/_attention.pyx) and their NumPy twin
# (fastnn/backends/numpy_attention.py), so both refuse the same inputs with the same messages
# before any work is done:
#     q (B, H, Lq, D), k (B, H, Lk, D), v (B, H, Lk, Dv), out / dout (B, H, Lq, Dv), lse (B, H, Lq),
#     key_mask (B, Lk) of bool or uint8 or None; dq, dk, dv shaped as q, k, v.
# All float arrays of one dtype (float32 or float64); outputs writeable and apart from every
# other argument. The (B, H, L, W) arrays may be views whose rows are contiguous (the kernels
# take their strides: a layer passes its projection's heads in place), with no two elements of
# an output at one address; lse and the mask are C-contiguous.

_ATTENTION_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _rows_contiguous(a: Any) -> bool:
    """Whether a view's last axis is contiguous and no stride is negative (axes of length 1,
    which the kernels never step along, whatever their strides)."""
    return all(stride >= 0 for size, stride in zip(a.shape, a.strides) if size > 1) and (
        a.shape[-1] <= 1 or a.strides[-1] == a.itemsize)


def _rows_apart(a: Any) -> bool:
    """Whether the views' strides keep its elements apart: non-negative, the last axis
    contiguous, and each stride (in increasing order, over axes longer than 1) past the extent
    of the axes inside it."""
    item = a.itemsize
    if a.size == 0:
        return True
    if a.shape[-1] > 1 and a.strides[-1] != item:
        return False
    extent = a.shape[-1] * item
    for size, stride in sorted(zip(a.shape[:-1], a.strides[:-1]), key=lambda t: t[1]):
        if size == 1:
            continue
        if stride < extent:
            return False
        extent = stride * (size - 1) + extent
    return True


def _attention_array(name: str, a: Any, shape: tuple, dtype: Any = None,
                     out: bool = False, rows: bool = False) -> Any:
    """``a`` if it is an array of ``shape`` (None: any length) and ``dtype`` (None: float32 or
    float64), writeable when ``out``, and C-contiguous, or with ``rows`` a view whose rows are
    contiguous and (``out``) whose elements are apart (``_rows_apart``)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"attention: {name} must be a NumPy array. Received: {name} of type "
                        f"{type(a).__name__}")
    if a.shape != shape and (a.ndim != len(shape)            # (equal tuples: the fast case)
                             or any(w is not None and s != w for s, w in zip(a.shape, shape))):
        want = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
        raise ValueError(f"attention: {name} must have shape {want}. Received: {name} with "
                         f"shape {a.shape}")
    if dtype is None:
        if a.dtype not in _ATTENTION_FLOATS:
            raise ValueError(f"attention: {name} must be float32 or float64. Received: {name} "
                             f"with dtype {a.dtype}")
    elif a.dtype != dtype:
        raise ValueError(f"attention: {name} must have the dtype of q ({np.dtype(dtype).name}). "
                         f"Received: {name} with dtype {a.dtype} and shape {a.shape}")
    if not a.flags.c_contiguous and not (rows and _rows_contiguous(a)
                                         and (not out or _rows_apart(a))):
        want = ("C-contiguous or a view with contiguous rows" + (", its elements apart" if out
                                                                 else "")) if rows else \
            "C-contiguous"
        raise ValueError(f"attention: {name} must be {want}. Received: {name} with shape "
                         f"{a.shape} and strides {a.strides}")
    if out and not a.flags.writeable:
        raise ValueError(f"attention: {name} must be writeable")
    return a


# NumPy >= 1.25 has it in np.exceptions, older ones at the top level only
_TOO_HARD = getattr(getattr(np, "exceptions", np), "TooHardError")


def _overlap(a: Any, b: Any) -> bool:
    """Whether two arrays share an element: exactly for views side by side in one buffer (a
    layer's heads), and counted as sharing when that is too hard to tell quickly."""
    if not np.may_share_memory(a, b):
        return False
    try:
        # (a bounded search: NumPy takes any max_work, its type stubs only -1 and 0)
        return bool(np.shares_memory(a, b, max_work=100_000))  # type: ignore[arg-type]
    except _TOO_HARD:
        return True


def _attention_qkv(q: Any, k: Any, v: Any) -> tuple:
    """(dims (B, H, Lq, Lk, D, Dv), q's dtype) of a consistent q, k, v."""
    _attention_array("q", q, (None,) * 4, rows=True)
    B, H, Lq, D = q.shape
    _attention_array("k", k, (B, H, None, D), q.dtype, rows=True)
    Lk = k.shape[2]
    _attention_array("v", v, (B, H, Lk, None), q.dtype, rows=True)
    Dv = v.shape[3]
    if min(Lq, Lk, D, Dv) < 1:
        raise ValueError(f"attention: sequence lengths and widths must be >= 1. Received: "
                         f"Lq={Lq}, Lk={Lk}, D={D}, Dv={Dv}")
    return (B, H, Lq, Lk, D, Dv), q.dtype


def _attention_key_mask(key_mask: Any, B: int, Lq: int, Lk: int) -> Optional[Any]:
    """The mask as uint8 (a view: bool and uint8 share a layout), or None: a key padding mask
    (B, Lk) or a query-key mask (B, Lq, Lk) (both shared by the heads)."""
    if key_mask is None:
        return None
    if not isinstance(key_mask, np.ndarray) or key_mask.dtype not in (np.bool_, np.uint8):
        what = (f"dtype {key_mask.dtype}" if isinstance(key_mask, np.ndarray)
                else f"type {type(key_mask).__name__}")
        raise ValueError(f"attention: key_mask must be a bool or uint8 array of shape ({B}, "
                         f"{Lk}) or ({B}, {Lq}, {Lk}). Received: key_mask with {what}")
    shape = (B, Lq, Lk) if key_mask.ndim == 3 else (B, Lk)
    _attention_array("key_mask", key_mask, shape, key_mask.dtype)
    return key_mask.view(np.uint8)


def _attention_scale(scale: Any, D: int, dtype: Any) -> float:
    """The scale as a float, one that ``dtype`` holds as itself (a float32 kernel given 1e39
    would multiply by inf; a subnormal one would be flushed to 0 by the compiled kernels only)."""
    if scale is None:
        return 1.0 / math.sqrt(D)
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.integer,
                                                                      np.floating)):
        raise ValueError(f"attention: scale must be a real number or None. Received: "
                         f"scale={scale!r}")
    value = float(scale)
    if not math.isfinite(value):
        raise ValueError(f"attention: scale must be finite. Received: scale={value}")
    return check_in_dtype("scale", value, dtype, zero_ok=True, owner="attention")


def _attention_rest(dims: tuple, dtype: Any, key_mask: Any, causal: Any, scale: Any,
                    outputs: list, inputs: list) -> tuple:
    """The checks after the arrays': the mask, outputs apart from every other argument (named
    pairs), the scale; returns what check_attention_forward / _backward return."""
    mask = _attention_key_mask(key_mask, dims[0], dims[2], dims[3])
    inputs = inputs + [("key_mask", key_mask)]
    for i, (oname, o) in enumerate(outputs):
        for iname, x in inputs + outputs[i + 1:]:
            if x is not None and _overlap(o, x):
                raise ValueError(f"attention: {oname} must not overlap {iname}")
    return dims, mask, _attention_scale(scale, dims[4], dtype), bool(causal)


def check_attention_dropout(dropout: Any, dropout_key: Any) -> tuple[float, int]:
    """(rate in [0, 1), key in [0, 2**64)): the attention kernels' dropout arguments."""
    rate = check_float("dropout", dropout, low=0.0, high=1.0, high_open=True)
    key = check_int("dropout_key", dropout_key, low=0)
    if key >= 2**64:
        raise ValueError(f"attention: dropout_key must be below 2**64. Received: "
                         f"dropout_key={dropout_key}")
    return rate, key


def check_attention_forward(q: Any, k: Any, v: Any, key_mask: Any, causal: Any, scale: Any,
                            out: Any, lse: Any) -> tuple:
    """(dims (B, H, Lq, Lk, D, Dv), key_mask as uint8 or None, scale as a float, causal)"""
    dims, dt = _attention_qkv(q, k, v)
    B, H, Lq, _, _, Dv = dims
    _attention_array("out", out, (B, H, Lq, Dv), dt, out=True, rows=True)
    _attention_array("lse", lse, (B, H, Lq), dt, out=True)
    return _attention_rest(dims, dt, key_mask, causal, scale, [("out", out), ("lse", lse)],
                           [("q", q), ("k", k), ("v", v)])


def check_attention_backward(q: Any, k: Any, v: Any, out: Any, dout: Any, lse: Any,
                             key_mask: Any, causal: Any, scale: Any, dq: Any, dk: Any,
                             dv: Any) -> tuple:
    """(dims (B, H, Lq, Lk, D, Dv), key_mask as uint8 or None, scale as a float, causal)"""
    dims, dt = _attention_qkv(q, k, v)
    B, H, Lq, Lk, D, Dv = dims
    for name, a, shape, written in (("out", out, (B, H, Lq, Dv), False),
                                    ("dout", dout, (B, H, Lq, Dv), False),
                                    ("lse", lse, (B, H, Lq), False),
                                    ("dq", dq, (B, H, Lq, D), True),
                                    ("dk", dk, (B, H, Lk, D), True),
                                    ("dv", dv, (B, H, Lk, Dv), True)):
        _attention_array(name, a, shape, dt, out=written, rows=name != "lse")
    return _attention_rest(dims, dt, key_mask, causal, scale, [("dq", dq), ("dk", dk), ("dv", dv)],
                           [("q", q), ("k", k), ("v", v), ("out", out), ("dout", dout),
                            ("lse", lse)])


def _decode_name(message: str) -> str:
    return message.replace("attention:", "attention_decode:", 1)


def check_attention_decode(q: Any, k_new: Any, v_new: Any, k_cache: Any, v_cache: Any, t: Any,
                 scale: Any, out: Any) -> tuple[tuple[int, int, int, int, int], int, float]:
    """``attention_decode``'s arguments (fastnn/_ext/_decode.pyx and its NumPy twin
    fastnn/backends/numpy_decode.py): q (B, H, D), k_new (B, H, D), v_new (B, H, Dv),
    k_cache (B, H, Lmax, D), v_cache (B, H, Lmax, Dv), out (B, H, Dv), 0 <= t < Lmax; one float
    dtype, C-contiguous, the caches and out writeable and apart from the rest. Returns
    ((B, H, Lmax, D, Dv), t, scale)."""
    try:
        q = _attention_array("q", q, (None,) * 3)
        B, H, D = q.shape
        _attention_array("k_new", k_new, (B, H, D), q.dtype)
        v_new = _attention_array("v_new", v_new, (B, H, None), q.dtype)
        Dv = v_new.shape[2]
        k_cache = _attention_array("k_cache", k_cache, (B, H, None, D), q.dtype, out=True)
        Lmax = k_cache.shape[2]
        _attention_array("v_cache", v_cache, (B, H, Lmax, Dv), q.dtype, out=True)
        _attention_array("out", out, (B, H, Dv), q.dtype, out=True)
    except (TypeError, ValueError) as exc:
        raise type(exc)(_decode_name(str(exc))) from None
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
        raise TypeError(f"attention_decode: t must be an integer. Received: t={_describe(t)}")
    if not 0 <= t < Lmax:
        raise ValueError(f"attention_decode: t must be in [0, Lmax={Lmax}) (the position to "
                         f"write). Received: t={t}")
    if isinstance(scale, (bool, np.bool_)) or not isinstance(
            scale, (int, float, np.integer, np.floating)) or not math.isfinite(float(scale)):
        raise ValueError(f"attention_decode: scale must be a finite real number. Received: "
                         f"scale={scale!r}")
    named = [("q", q), ("k_new", k_new), ("v_new", v_new)]
    writes = [("out", out), ("k_cache", k_cache), ("v_cache", v_cache)]
    for i, (oname, o) in enumerate(writes):
        for iname, x in named + writes[i + 1:]:
            if np.may_share_memory(o, x):
                raise ValueError(f"attention_decode: {oname} must not overlap {iname}")
    if max(B * H * Lmax * max(D, Dv, 1), 1) >= 2**56:
        raise ValueError(f"attention_decode: sizes too large. Received: {(B, H, Lmax, D, Dv)}")
    return (B, H, Lmax, D, Dv), int(t), float(scale)
