"""The model file format: a fixed preamble, a JSON header, raw little-endian arrays. Never pickle.

    offset 0   8 bytes   magic  b"\\x89FNN\\r\\n\\x1a\\n"
    offset 8   uint32 LE format version (1)
    offset 12  uint32 LE header length H in bytes (at most MAX_HEADER)
    offset 16  H bytes   UTF-8 JSON header
    then zero padding to a multiple of 64; the data section starts there.

The header holds ``model`` (layers, input_dim, seed, dtype, backend), ``compile`` (loss, optimizer
settings and step count, metrics; or null) and ``arrays``: a list of ``{"name", "dtype", "shape",
"offset"}`` with ``offset`` relative to the data section. Arrays are ``<f4`` or ``<f8``.
The loader trusts nothing: it checks the magic, version, header size, JSON structure, dtype
allow-list, that shape x itemsize matches each span, that spans are in bounds and disjoint, and
that the arrays match the architecture. Every failure raises ValueError.

Examples
--------
>>> import numpy as np
>>> import fastnn as fnn
>>> from fastnn.io import model_from_bytes, model_to_bytes
>>> model = fnn.Sequential([fnn.Dense(2, activation="relu")], input_dim=3, seed=0,
...                        backend="numpy")
>>> blob = model_to_bytes(model)
>>> blob[:4]
b'\x89FNN'
>>> same = model_from_bytes(blob)
>>> all(np.array_equal(a, b) for a, b in zip(same.get_weights(), model.get_weights()))
True
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from fastnn.model import Sequential

PathLike = Union[str, "os.PathLike[str]"]

MAGIC = b"\x89FNN\r\n\x1a\n"
VERSION = 1
MAX_HEADER = 1 << 20
ALIGN = 64
DTYPES: dict[str, np.dtype[Any]] = {"<f4": np.dtype("<f4"), "<f8": np.dtype("<f8")}
_PREAMBLE = struct.Struct("<8sII")


def _arrays_of(model: Sequential) -> list[tuple[str, NDArray[Any]]]:
    arrays = []
    for i, layer in enumerate(model.dense_layers):
        arrays += [(f"dense_{i}/W", layer.W), (f"dense_{i}/b", layer.b)]
    if model.optimizer is not None:
        for key, value in model.optimizer.state().items():
            arrays.append((f"optimizer/{key}", value))
    return arrays


def model_to_bytes(model: Sequential) -> bytes:
    """The model file's bytes (what ``save_model`` writes): architecture, weights, and the
    compile settings and optimizer state when the model is compiled."""
    arrays = _arrays_of(model)
    entries: list[dict[str, Any]] = []
    offset = 0
    for name, arr in arrays:
        little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        entries.append({"name": name, "dtype": little.dtype.str, "shape": list(arr.shape),
                        "offset": offset})
        offset += little.nbytes
        offset += -offset % ALIGN
    compiled = None
    if model.loss is not None:
        compiled = {"loss": model.loss.name, "optimizer": model.optimizer.get_config(),
                    "iterations": getattr(model.optimizer, "iterations", 0),
                    "metrics": model.metrics}
    config = dict(model.get_config(), backend=model.backend)
    header = json.dumps({"model": config, "compile": compiled, "arrays": entries}).encode()
    data_start = _PREAMBLE.size + len(header)
    data_start += -data_start % ALIGN
    blob = bytearray(data_start + offset)
    _PREAMBLE.pack_into(blob, 0, MAGIC, VERSION, len(header))
    blob[_PREAMBLE.size:_PREAMBLE.size + len(header)] = header
    for entry, (_, arr) in zip(entries, arrays):
        raw = np.ascontiguousarray(arr, dtype=entry["dtype"]).tobytes()
        start = data_start + entry["offset"]
        blob[start:start + len(raw)] = raw
    return bytes(blob)


def _check_path(path: object) -> str:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike). "
                        f"Received: path={path!r}")
    return os.fsdecode(os.fspath(path))     # bytes paths as str, like the rest of the module


def _parameter_bytes(config: dict[str, Any], itemsize: int) -> Optional[int]:
    """Bytes of weights the described architecture needs, or None if it cannot be told."""
    width, total = config.get("input_dim"), 0
    for layer in config.get("layers", []):
        if isinstance(layer, dict) and layer.get("class") == "Dense":
            units = layer.get("units")
            if not isinstance(width, int) or not isinstance(units, int):
                return None
            total += (width + 1) * units
            width = units
    return total * itemsize


def save_model(model: Sequential, path: PathLike) -> None:
    """Write ``model`` to ``path`` (atomically: a temporary file, then a rename).

    ``Sequential.save(path)`` calls this.

    Parameters
    ----------
    model : Sequential
        A built model, compiled or not.
    path : str or os.PathLike
        The file to write (replaced if it exists); ``path + ".tmp"`` is used on the way.

    Raises
    ------
    TypeError
        If ``path`` is not a path.
    OSError
        If the file cannot be written.
    """
    path = _check_path(path)
    tmp = path + ".tmp"     # path is a str by now
    with open(tmp, "wb") as f:
        f.write(model_to_bytes(model))
    os.replace(tmp, path)


def _fail(path: object, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a valid fastnn model file: {why}")


def _read_header(blob: bytes, path: object) -> tuple[dict[str, Any], int]:
    if len(blob) < _PREAMBLE.size:
        raise _fail(path, f"{len(blob)} bytes is shorter than the {_PREAMBLE.size}-byte preamble")
    magic, version, size = _PREAMBLE.unpack_from(blob)
    if magic != MAGIC:
        raise _fail(path, f"bad magic {magic!r}")
    if version != VERSION:
        raise _fail(path, f"format version {version}; this fastnn reads version {VERSION}")
    if size > MAX_HEADER or _PREAMBLE.size + size > len(blob):
        raise _fail(path, f"header length {size} exceeds the limit or the file")
    try:
        header = json.loads(blob[_PREAMBLE.size:_PREAMBLE.size + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _fail(path, f"the header is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), list) \
            or not isinstance(header.get("model"), dict):
        raise _fail(path, "the header lacks 'model' and 'arrays'")
    data_start = _PREAMBLE.size + size
    return header, data_start + (-data_start % ALIGN)


def _read_arrays(blob: bytes, entries: list[Any], data_start: int, path: object
                 ) -> dict[str, NDArray[Any]]:
    arrays: dict[str, NDArray[Any]] = {}
    spans: list[tuple[int, int, str]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise _fail(path, "an array entry is not an object")
        name, dtype, shape, offset = (entry.get(k) for k in ("name", "dtype", "shape", "offset"))
        if not isinstance(name, str) or name in arrays:
            raise _fail(path, f"bad or repeated array name {name!r}")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise _fail(path, f"array {name!r} has dtype {dtype!r}; allowed: {sorted(DTYPES)}")
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape):
            raise _fail(path, f"array {name!r} has a bad shape {shape!r}")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise _fail(path, f"array {name!r} has a bad offset {offset!r}")
        nbytes = math.prod(shape) * DTYPES[dtype].itemsize     # Python ints: no overflow
        start = data_start + offset
        if start + nbytes > len(blob):
            raise _fail(path, f"array {name!r} spans bytes [{start}, {start + nbytes}) beyond "
                              f"the file's {len(blob)} bytes")
        spans.append((start, start + nbytes, name))
        arrays[name] = np.frombuffer(blob, dtype=DTYPES[dtype], count=nbytes // DTYPES[dtype].itemsize,
                                     offset=start).reshape(shape)
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise _fail(path, f"arrays {first!r} and {second!r} overlap")
    return arrays


def load_model(path: PathLike, backend: Optional[Literal["fast", "numpy"]] = None) -> Sequential:
    """Read a model written by ``Sequential.save`` (``fastnn.load`` is this function).

    Parameters
    ----------
    path : str or os.PathLike
        The model file.
    backend : {"fast", "numpy"}, optional
        The backend of the loaded model; by default the one it was saved with.

    Returns
    -------
    Sequential
        The model with its weights and, if it was compiled, its loss, optimizer (with its state
        and step count) and metrics.

    Raises
    ------
    ValueError
        For any malformed file (never executes anything from it: there is no pickle).
    TypeError
        If ``path`` is not a path.
    OSError
        If the file cannot be read.
    """
    path = _check_path(path)
    with open(path, "rb") as f:
        blob = f.read()
    return model_from_bytes(blob, backend, name=path)


def model_from_bytes(blob: bytes, backend: Optional[Literal["fast", "numpy"]] = None,
                     name: object = "<bytes>") -> Sequential:
    """Rebuild a model from ``model_to_bytes`` output, checking everything (ValueError).

    ``backend`` is as in ``load_model``; ``name`` stands for the file in error messages.
    """
    from fastnn.layers import layer_from_config
    from fastnn.model import Sequential

    path = name
    header, data_start = _read_header(blob, path)
    arrays = _read_arrays(blob, header["arrays"], data_start, path)
    config, compiled = header["model"], header.get("compile")
    if not isinstance(config.get("layers"), list) or not (
            compiled is None or isinstance(compiled, dict)):
        raise _fail(path, "the model description is invalid: 'model.layers' must be a list "
                          "and 'compile' an object or null")
    itemsize = DTYPES["<f8"].itemsize if config.get("dtype") == "float64" else 4
    needed = _parameter_bytes(config, itemsize)
    if needed is not None and needed > len(blob):
        # refuse before building: a forged architecture must not allocate beyond the file
        raise _fail(path, f"the architecture needs {needed} bytes of weights, more than the "
                          f"file's {len(blob)} bytes")
    try:
        layers = [layer_from_config(c) for c in config["layers"]]
        model = Sequential(layers, input_dim=config["input_dim"], seed=config.get("seed"),
                           dtype=config["dtype"], backend=backend or config.get("backend", "fast"))
        if compiled is not None:
            model.compile(compiled["loss"], compiled["optimizer"], compiled.get("metrics"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _fail(path, f"the model description is invalid ({type(exc).__name__}: {exc})") \
            from None
    expected = dict(_arrays_of(model))
    if set(expected) != set(arrays):
        raise _fail(path, f"the arrays {sorted(arrays)} do not match the architecture, which "
                          f"needs {sorted(expected)}")
    for name, target in expected.items():
        source = arrays[name]
        if source.shape != target.shape or source.dtype.newbyteorder("=") != target.dtype:
            raise _fail(path, f"array {name!r} is {source.dtype.str}{list(source.shape)}, the "
                              f"model needs {target.dtype.str}{list(target.shape)}")
        if not np.isfinite(source).all():
            raise _fail(path, f"array {name!r} holds NaN or inf")
        target[...] = source
    if compiled is not None and hasattr(model.optimizer, "iterations"):
        iterations = compiled.get("iterations", 0)
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 0:
            raise _fail(path, f"bad optimizer step count {iterations!r}")
        model.optimizer.iterations = iterations
    return model
