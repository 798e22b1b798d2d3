"""Reading an ONNX file as strictly as fastnn reads its own model files.

The file is opened only if it is a regular file and read no further than its size; the
protobuf is parsed without following external data. Each initializer's size is checked
against its dims before any array is made: stored bytes must match ``prod(dims) * itemsize``,
no tensor may hold more than ``MAX_ELEMENTS`` values, and external data must be a regular
file inside the model's directory (no absolute paths, no ``..``, no symlink out), its
offset and length within that file.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from fastnn._safe_files import describe_non_regular, open_without_blocking, read_up_to

#: the largest model file read (protobuf's own limit)
MAX_FILE_BYTES = 2**31 - 1
#: the most values one tensor may hold
MAX_ELEMENTS = 2**28


def _dtype_of(onnx: Any, tensor: Any) -> np.dtype[Any]:
    if tensor.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                                onnx.TensorProto.INT64, onnx.TensorProto.INT32):
        raise ValueError(f"tensor {tensor.name!r}: element type "
                         f"{onnx.TensorProto.DataType.Name(tensor.data_type)} is not supported "
                         f"(float, double, int64, int32)")
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))


def _external(tensor: Any, base: str, nbytes: int) -> None:
    """Check external data's location, offset and length, then load it into ``tensor``."""
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    if not location or os.path.isabs(location) or ".." in location.replace("\\", "/").split("/"):
        raise ValueError(f"tensor {tensor.name!r}: external data location {location!r} must be "
                         f"a relative path inside the model's directory")
    root = os.path.realpath(base)
    full = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, full]) != root:
        raise ValueError(f"tensor {tensor.name!r}: external data {location!r} resolves outside "
                         f"the model's directory")
    offset = int(info.get("offset", "0") or 0)
    length = int(info.get("length", str(nbytes)) or nbytes)
    if offset < 0 or length != nbytes:
        raise ValueError(f"tensor {tensor.name!r}: external data holds {length} bytes at offset "
                         f"{offset}; its dims need {nbytes}")
    f, st = open_without_blocking(full)
    if f is None:
        raise ValueError(f"tensor {tensor.name!r}: external data {location!r} is "
                         f"{describe_non_regular(st.st_mode)}")
    with f:
        if offset + nbytes > st.st_size:
            raise ValueError(f"tensor {tensor.name!r}: external data {location!r} has "
                             f"{st.st_size} bytes, fewer than offset {offset} + {nbytes}")
        f.seek(offset)
        tensor.raw_data = bytes(read_up_to(f, nbytes))
    del tensor.external_data[:]
    tensor.data_location = 0


def check_tensor(onnx: Any, tensor: Any, base: str) -> np.ndarray:
    """The array of an initializer or Constant, after its size checks."""
    dtype = _dtype_of(onnx, tensor)
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise ValueError(f"tensor {tensor.name!r}: negative dims {dims}")
    count = math.prod(dims)
    if count > MAX_ELEMENTS:
        raise ValueError(f"tensor {tensor.name!r}: dims {dims} hold {count} values, more than "
                         f"{MAX_ELEMENTS}")
    nbytes = count * dtype.itemsize
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        _external(tensor, base, nbytes)
    if tensor.HasField("raw_data"):
        stored = len(tensor.raw_data)
    else:
        field = {np.float32: tensor.float_data, np.float64: tensor.double_data,
                 np.int64: tensor.int64_data, np.int32: tensor.int32_data}[dtype.type]
        stored = len(field) * dtype.itemsize
    if stored != nbytes:
        raise ValueError(f"tensor {tensor.name!r}: dims {dims} need {nbytes} bytes of "
                         f"{dtype.name}; the file holds {stored}")
    return np.asarray(onnx.numpy_helper.to_array(tensor)).copy()


def check_model(proto: Any, path: Any) -> None:
    """onnx.checker's verdict as a ValueError (run once the initializers passed ours)."""
    import onnx
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:          # onnx.checker.ValidationError
        raise ValueError(f"{os.fspath(path)!r} fails onnx.checker: {exc}") from None


def read_model(path: Any) -> tuple[Any, str]:
    """The parsed ModelProto (external data not followed) and the model's directory."""
    import onnx
    import onnx.numpy_helper  # noqa: F401
    path = os.fspath(path)
    f, st = open_without_blocking(path)
    if f is None:
        raise ValueError(f"{path!r} is {describe_non_regular(st.st_mode)}, not an ONNX file")
    with f:
        if st.st_size > MAX_FILE_BYTES:
            raise ValueError(f"{path!r} has {st.st_size} bytes, more than {MAX_FILE_BYTES}")
        data = bytes(read_up_to(f, st.st_size))
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:          # protobuf's DecodeError and kin
        raise ValueError(f"{path!r} is not an ONNX model: {exc}") from None
    return proto, os.path.dirname(os.path.abspath(path))


__all__ = ["read_model", "check_model", "check_tensor", "MAX_ELEMENTS"]
