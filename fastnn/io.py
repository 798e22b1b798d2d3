"""The model file format: a fixed preamble, a JSON header, raw little-endian arrays. Never pickle.

    offset 0   8 bytes   magic  b"\\x89FNN\\r\\n\\x1a\\n"
    offset 8   uint32 LE format version (2; version 1 files still load)
    offset 12  uint32 LE header length H in bytes (at most MAX_HEADER)
    offset 16  H bytes   UTF-8 JSON header
    then zero padding to a multiple of 64; the data section starts there.

The header holds ``model`` (version 2: the topology, see ``fastnn.models.saving``: a
Sequential's layer configs, or a functional Model's layer configs with the node indices each
reads; version 1: a chain of Dense and activation layers with input_dim), ``compile`` (loss,
optimizer settings and step count, metrics; or null) and ``arrays``: a list of ``{"name",
"dtype", "shape", "offset"}`` with ``offset`` relative to the data section. Arrays are ``<f4``
or ``<f8``.
The data section is a whole number of 64-byte blocks (the last array is padded too; bytes after
it are ignored).

The loader trusts nothing and reads no more than the header announces: the preamble first
(magic, version, header length), then exactly the header, then only the bytes the arrays span,
each length checked against the file's size beforehand, so a forged file (or ``/dev/zero``)
cannot make it allocate more than the file holds. It checks the JSON (strict: no NaN or
Infinity, no repeated or unknown keys, integers of at most 40 digits, nesting at most 32 deep),
every integer's range (``fastnn._header_checks``: at most ``MAX_LAYERS`` = 10000 layers, 8-D
arrays, dimensions below 2**31, optimizer step counts in [0, 2**53)), the dtype allow-list,
that spans are in bounds and disjoint, the graph (known layer kinds, connections to earlier
nodes only: no cycles, no dangling references; every layer able to take its input's shape),
that the weights the architecture needs fit in the file (sized from the configs before
anything is allocated), that no input or layer output holds more than
``fastnn.models.saving.MAX_SAMPLE_VALUES`` (2**28) values a sample, and that the arrays match
the architecture. Every
failure raises ValueError "'path' is not a valid fastnn model file: ...". FIFOs, devices and
directories: see ``load_model``; atomic, symlink-safe saving: ``save_model``.

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
import os
import stat
import struct
import warnings
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Union

import numpy as np
from numpy.typing import NDArray

from fastnn import _header_checks as H
from fastnn._header_checks import BadModelFile
from fastnn._safe_files import (PathIsADirectoryError, describe_non_regular,
                                open_without_blocking, read_up_to, write_atomically)
from fastnn._validation import check_bool
from fastnn.metrics import storable

if TYPE_CHECKING:
    from fastnn.models.base import BaseModel as Sequential

PathLike = Union[str, "os.PathLike[str]"]

MAGIC = b"\x89FNN\r\n\x1a\n"
VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_HEADER = 1 << 20
ALIGN = 64
DTYPES: dict[str, np.dtype[Any]] = {"<f4": np.dtype("<f4"), "<f8": np.dtype("<f8")}
_PREAMBLE = struct.Struct("<8sII")



def _version_for(model: Sequential) -> int:
    """1 for a plain MLP that version 1 describes (earlier fastnn reads it), else 2."""
    v1_keys = {"class", "units", "activation", "threshold", "alpha"}
    if type(model).__name__ != "Sequential" or not model._fast or model._name is not None:
        return 2
    return 1 if all(set(layer.get_config()) <= v1_keys for layer in model.layers) else 2


def _arrays_of(model: Sequential, version: int, with_compile: bool
               ) -> list[tuple[str, NDArray[Any]]]:
    from fastnn.models.saving import state_arrays, v1_weight_names, weight_arrays

    arrays = (v1_weight_names(model) if version == 1
              else weight_arrays(model) + state_arrays(model))
    if with_compile and model.optimizer is not None and _stores_compile(model):
        for key, value in model.optimizer.state().items():
            arrays.append((f"optimizer/{key}", value))
    return arrays


def _stores_compile(model: Sequential) -> bool:
    """Whether the file can hold the compile settings: a loss ``get_loss`` rebuilds and a
    learning rate that is a number or one of fastnn's schedules (a Python loss or schedule of
    the user's cannot be rebuilt; the file then holds the architecture and weights, and the
    loaded model is compiled again by its user)."""
    from fastnn.losses import get_loss
    from fastnn.schedules import deserialize

    if model.loss is None:
        return False
    try:
        for loss in (model.loss if isinstance(model.loss, list) else [model.loss]):
            if loss is not None:              # several outputs: None for an untrained one
                get_loss(_loss_entry(loss))
        if getattr(model.optimizer, "_schedule", None) is not None:
            deserialize(model.optimizer.get_config()["lr"])
    except (ValueError, TypeError, NotImplementedError):
        return False
    return True


def _loss_entry(loss: Any) -> Any:
    """The loss as the header stores it: its name, or its config when it has settings (Huber's
    delta), which ``get_loss`` reads back either way."""
    config = loss.get_config()
    return loss.name if config == {"name": loss.name} else config


def model_to_bytes(model: Sequential, include_optimizer: bool = True) -> bytes:
    """The model file's bytes (what ``save_model`` writes): architecture, weights, and the
    compile settings and optimizer state when the model is compiled.

    With ``include_optimizer=False`` (as in Keras) the bytes hold the architecture and weights
    only, what inference needs: no loss, optimizer or optimizer state (an Adam-compiled model's
    bytes shrink to about a third), and the model they load into is not compiled.

    Raises ValueError if the model is beyond what the loader accepts (more than
    ``MAX_LAYERS`` layers, a seed >= 2**128, a step count >= 2**53, a header over
    ``MAX_HEADER`` bytes), so no file is written that ``load_model`` would refuse.
    """
    with_compile = check_bool("include_optimizer", include_optimizer)
    version = _version_for(model)
    arrays = _arrays_of(model, version, with_compile)
    entries: list[dict[str, Any]] = []
    offset = 0
    for name, arr in arrays:
        little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        entries.append({"name": name, "dtype": little.dtype.str, "shape": list(arr.shape),
                        "offset": offset})
        offset += little.nbytes
        offset += -offset % ALIGN
    compiled = None
    if with_compile and model.loss is not None and not _stores_compile(model):
        warnings.warn(f"the loss {model.loss!r} or the learning-rate schedule of "
                      f"{model.optimizer!r} is not one fastnn can rebuild from a file: the "
                      f"file holds the architecture and weights, not the compile settings "
                      f"(compile the loaded model again)", UserWarning, stacklevel=3)
    elif with_compile and model.loss is not None:
        heads = getattr(model, "_heads", None)
        if heads is not None:         # several outputs: a loss, weight and metrics list each
            compiled = heads.compile_entry(_loss_entry)
        else:
            compiled = {"loss": _loss_entry(model.loss),
                        # names only: a metric function of the user's is not stored
                        "metrics": [name for name in map(storable, getattr(
                            model, "_metric_items", model.metrics)) if name is not None]}
        compiled.update(optimizer=model.optimizer.get_config(),
                        iterations=getattr(model.optimizer, "iterations", 0))
    from fastnn.models.saving import check_v2, describe

    description = (dict(model.get_config(), backend=model.backend)   # type: ignore[attr-defined]
                   if version == 1
                   else describe(model))
    header_dict = {"model": description, "compile": compiled, "arrays": entries}
    try:
        H.check_top(header_dict)
        if version == 1:
            H.check_description(header_dict, offset)     # the reader's own checks
        else:
            H.check_compile(header_dict)
            check_v2(description, offset)
        header = json.dumps(header_dict, allow_nan=False).encode()
        if len(header) > MAX_HEADER:
            raise BadModelFile(f"its header takes {len(header)} bytes, over the format's "
                               f"limit of {MAX_HEADER}")
    except (BadModelFile, ValueError) as exc:
        raise ValueError(f"cannot save this model in the fastnn file format: {exc}") from None
    data_start = _PREAMBLE.size + len(header)
    data_start += -data_start % ALIGN
    blob = bytearray(data_start + offset)
    _PREAMBLE.pack_into(blob, 0, MAGIC, version, len(header))
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


def save_model(model: Sequential, path: PathLike, include_optimizer: bool = True) -> None:
    """Write ``model`` to ``path`` atomically (``Sequential.save(path)`` calls this).

    The bytes go to a new, uniquely named temporary file in the destination's directory
    (created exclusively, never through a symlink), which is fsynced and then renamed onto
    the destination: readers, and concurrent savers in other threads or processes, see the
    complete old file or the complete new one, never a partial one. On failure the temporary
    file is removed and the destination is untouched. An existing destination keeps its
    permission bits; a new one gets 0o666 less the umask. If ``path`` is a symlink, the
    file it points to is replaced and the link is kept.

    Parameters
    ----------
    model : Sequential
        A built model, compiled or not.
    path : str or os.PathLike
        The file to write (replaced if it exists).
    include_optimizer : bool, default True
        False: the architecture and weights alone (``save_weights``; see ``model_to_bytes``).

    Raises
    ------
    TypeError
        If ``path`` is not a path.
    IsADirectoryError
        If ``path`` is a directory (the error is also a ValueError).
    ValueError
        If ``path`` is another kind of non-regular file (FIFO, device), or the model is beyond
        the format's limits (see ``model_to_bytes``).
    OSError
        If the file cannot be written.
    """
    path = _check_path(path)
    write_atomically(path, model_to_bytes(model, include_optimizer))


def _fail(path: object, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a valid fastnn model file: {why}")


def load_model(path: PathLike, backend: Optional[Literal["fast", "numpy"]] = None) -> Sequential:
    """Read a model written by ``Sequential.save`` (``fastnn.load`` is this function).

    The path may be a symlink to a model file. It is opened without blocking and refused
    unless it is a regular file, so a FIFO or a device (``/dev/zero``) raises at once; the
    loader then reads only as many bytes as the header announces, after checking them against
    the file's size.

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
        For any malformed file or one that is not a regular file (never executes anything from
        it: there is no pickle). A directory raises an error that is both a ValueError and an
        IsADirectoryError.
    TypeError
        If ``path`` is not a path.
    OSError
        If the file cannot be opened or read.
    """
    path = _check_path(path)
    f, st = open_without_blocking(path)
    if f is None:
        why = describe_non_regular(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            raise PathIsADirectoryError(str(_fail(path, why)))
        raise _fail(path, why)
    with f:
        return _decode(lambda n: read_up_to(f, n), st.st_size, backend, path)


def model_from_bytes(blob: bytes, backend: Optional[Literal["fast", "numpy"]] = None,
                     name: object = "<bytes>") -> Sequential:
    """Rebuild a model from ``model_to_bytes`` output, checking everything (ValueError).

    ``backend`` is as in ``load_model``; ``name`` stands for the file in error messages.
    """
    view = memoryview(blob).cast("B")
    position = 0

    def read(n: int) -> memoryview:
        nonlocal position
        chunk = view[position:position + n]
        position += len(chunk)
        return chunk

    return _decode(read, len(view), backend, name)


Reader = Callable[[int], Union[bytes, bytearray, memoryview]]
Backend = Optional[Literal["fast", "numpy"]]


def _decode(read: Reader, size: int, backend: Backend, path: object) -> Sequential:
    """The model in the ``size`` bytes that ``read(n)`` returns in order (fewer only at the
    end); every refusal becomes ``_fail(path, ...)`` here."""
    try:
        return _decode_checked(read, size, backend, path)
    except BadModelFile as exc:
        raise _fail(path, str(exc)) from None


def _read(read: Reader, n: int, what: str) -> Union[bytes, bytearray, memoryview]:
    chunk = read(n)
    if len(chunk) < n:      # the size was checked: the file shrank while being read
        raise BadModelFile(f"the file ended {n - len(chunk)} bytes short while reading {what} "
                           f"(truncated, or changed while loading)")
    return chunk


def _read_preamble(read: Reader, size: int) -> tuple[int, int]:
    """(format version, header length), after checking the preamble."""
    if size < _PREAMBLE.size:
        raise BadModelFile(f"{size} bytes is shorter than the {_PREAMBLE.size}-byte preamble")
    magic, version, header_size = _PREAMBLE.unpack(_read(read, _PREAMBLE.size, "the preamble"))
    if magic != MAGIC:
        raise BadModelFile(f"bad magic {magic!r}")
    if version not in READABLE_VERSIONS:
        raise BadModelFile(f"format version {version}; this fastnn reads versions "
                           f"{READABLE_VERSIONS}")
    if header_size > MAX_HEADER or _PREAMBLE.size + header_size > size:
        raise BadModelFile(f"header length {header_size} exceeds the limit or the file")
    return version, header_size


def _decode_checked(read: Reader, size: int, backend: Backend, path: object
                    ) -> Sequential:
    version, header_size = _read_preamble(read, size)
    header = H.check_top(H.parse_header(_read(read, header_size, "the header")))
    padding = -(_PREAMBLE.size + header_size) % ALIGN
    data_size = max(0, size - _PREAMBLE.size - header_size - padding)
    # every span is checked against the file's size before a byte of data is read
    entries = H.check_list("the header's 'arrays'", header.get("arrays"), H.MAX_ARRAYS)
    checked, names = [], set()
    for entry in entries:
        name, dtype, shape, offset, nbytes = H.check_array_entry(entry, DTYPES, data_size)
        if name in names:
            raise BadModelFile(f"bad or repeated array name {name!r}")
        names.add(name)
        checked.append((name, dtype, shape, offset, nbytes))
    H.check_disjoint([(offset, offset + nbytes, name)
                      for name, _, _, offset, nbytes in checked])
    if version == 1:
        config, compiled = H.check_description(header, data_size)
    else:
        from fastnn.models.saving import check_v2

        config, compiled = header["model"], H.check_compile(header)
        check_v2(config, data_size)
    end = max((offset + nbytes for _, _, _, offset, nbytes in checked), default=0)
    if data_size < end + (-end % ALIGN):    # the writer pads the last array too
        raise BadModelFile(f"truncated: the arrays need {end + (-end % ALIGN)} bytes of data "
                           f"(whole {ALIGN}-byte blocks), the file holds {data_size}")
    data = _read(read, padding + end, "the arrays")
    arrays = {name: np.frombuffer(data, dtype=dtype, count=nbytes // dtype.itemsize,
                                  offset=padding + offset).reshape(shape)
              for name, dtype, shape, offset, nbytes in checked}
    return _build(config, compiled, arrays, backend, version)


def _build(config: dict[str, Any], compiled: Optional[dict[str, Any]],
           arrays: dict[str, NDArray[Any]], backend: Backend, version: int) -> Sequential:
    """The model a checked description and its arrays describe."""
    from fastnn.models.saving import build

    model, weights = build(config, version, arrays, backend)
    for (_, layer, k), source in zip(model._entries(), weights):
        layer._weights[k][...] = source
    from fastnn.models.saving import restore_states
    restore_states(model, arrays)
    for layer in model._weight_layers():
        try:
            layer.check_values(layer._weights)
        except ValueError as exc:
            raise BadModelFile(f"the arrays of layer {layer.name!r} are invalid: {exc}") from None
    try:
        if compiled is not None:
            model.compile(compiled["loss"], compiled["optimizer"], compiled.get("metrics"),
                          loss_weights=compiled.get("loss_weights"))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise BadModelFile(f"the compile settings are invalid ({type(exc).__name__}: {exc})") \
            from None
    if compiled is not None:
        expected = {f"optimizer/{key}": arr for key, arr in model.optimizer.state().items()
                    if arr is not None}
        stored = {name for name in arrays if name.startswith("optimizer/")}
        if stored != set(expected):
            raise BadModelFile(f"the optimizer arrays {sorted(stored)} do not match the "
                               f"optimizer, which needs {sorted(expected)}")
        for name, target in expected.items():
            source = arrays[name]
            if source.shape != target.shape or source.dtype.newbyteorder("=") != target.dtype:
                raise BadModelFile(f"array {name!r} is {source.dtype.str}{list(source.shape)}, "
                                   f"the model needs {target.dtype.str}{list(target.shape)}")
            if not np.isfinite(source).all():
                raise BadModelFile(f"array {name!r} holds NaN or inf")
            target[...] = source
        # the step count and the state must be ones a real run could produce: a forged state
        # (v < 0, a huge m at step 0, ...) would make the first step overflow
        try:
            model.optimizer.iterations = compiled.get("iterations", 0)
            model.optimizer.check_state(_trainable_params(model))
        except (TypeError, ValueError) as exc:
            raise BadModelFile(f"the optimizer state is invalid ({exc})") from None
    elif any(name.startswith("optimizer/") for name in arrays):
        raise BadModelFile("the file holds optimizer arrays but no compile settings")
    return model


def _trainable_params(model: Sequential) -> NDArray[Any]:
    """The parameters the optimizer steps, as one array (check_state compares shapes)."""
    runs = model._runs or []
    if len(runs) == 1:
        owner, start, size = runs[0]
        return owner._params[start:start + size]
    return np.concatenate([owner._params[start:start + size] for owner, start, size in runs]
                          or [np.zeros(0, model.dtype)])
