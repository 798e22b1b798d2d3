"""Keras' ``TensorBoard`` callback: training curves and weight histograms in TensorBoard's event
files, written without TensorFlow (``pip install tensorboard`` only to view them:
``tensorboard --logdir logs``).

An event file is a sequence of TFRecords, each a length, its masked CRC-32C, a serialized
``Event`` protocol buffer and its masked CRC-32C (TensorFlow's ``record_writer``). The few
messages needed are encoded by hand (protocol buffers' wire format: a varint key ``field << 3 |
type`` before each field):

    Event     wall_time: double = 1, step: int64 = 2, file_version: string = 3,
              summary: Summary = 5
    Summary   value: repeated Value = 1
    Value     tag: string = 1, simple_value: float = 2, histo: HistogramProto = 5
    Histogram min = 1, max = 2, num = 3, sum = 4, sum_squares = 5 (doubles),
              bucket_limit = 6, bucket = 7 (packed doubles)
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import Any, Optional, Union

import numpy as np

from fastnn import _validation as V
from fastnn.callbacks import Callback, Logs

# ---------------------------------------------------------------------------- CRC-32C
# Castagnoli's polynomial (reflected 0x82F63B78), as TFRecord frames use: a table of 256
# remainders, one byte at a time (the records here are a few hundred bytes).
_CRC_TABLE = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ 0x82F63B78 if _crc & 1 else _crc >> 1
    _CRC_TABLE.append(_crc)


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data`` (``crc32c(b"123456789") == 0xE3069283``, the standard check)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    """TFRecord's masked CRC: rotated right by 15 bits, plus a constant."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """One TFRecord frame around ``data``."""
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", _masked(crc32c(length))) + data
            + struct.pack("<I", _masked(crc32c(data))))


# ---------------------------------------------------------------------------- protocol buffers
def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1            # int64: two's complement as 10 bytes when negative
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes_field(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _double(field: int, value: float) -> bytes:
    return _key(field, 1) + struct.pack("<d", value)


def histogram(values: Any, buckets: int = 30) -> bytes:
    """A HistogramProto of ``values``: ``buckets`` equal-width buckets over [min, max] (one
    bucket when they are all equal), ``bucket_limit`` their right edges."""
    v = np.asarray(values, np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        lo = hi = 0.0
        counts, limits = np.zeros(1), np.zeros(1)
    else:
        lo, hi = float(v.min()), float(v.max())
        if lo == hi:
            counts, limits = np.array([float(v.size)]), np.array([hi])
        else:
            counts, edges = np.histogram(v, bins=buckets, range=(lo, hi))
            limits = edges[1:]
    packed_limits = np.asarray(limits, "<f8").tobytes()
    packed_counts = np.asarray(counts, "<f8").tobytes()
    return (_double(1, lo) + _double(2, hi) + _double(3, float(v.size))
            + _double(4, float(v.sum())) + _double(5, float(np.dot(v, v)))
            + _bytes_field(6, packed_limits) + _bytes_field(7, packed_counts))


def event(step: int, wall_time: float, values: Optional[list[bytes]] = None,
          file_version: Optional[str] = None) -> bytes:
    """A serialized Event: a summary of ``values`` (encoded Value messages) at ``step``, or the
    file's version line."""
    out = _double(1, wall_time) + _key(2, 0) + _varint(step)
    if file_version is not None:
        out += _bytes_field(3, file_version.encode())
    if values:
        out += _bytes_field(5, b"".join(_bytes_field(1, v) for v in values))
    return out


def scalar_value(tag: str, value: float) -> bytes:
    return _bytes_field(1, tag.encode()) + _key(2, 5) + struct.pack("<f", value)


def histogram_value(tag: str, values: Any) -> bytes:
    return _bytes_field(1, tag.encode()) + _bytes_field(5, histogram(values))


class EventFileWriter:
    """One event file in ``directory`` (made if missing), named as TensorFlow names them:
    ``events.out.tfevents.<seconds>.<host>.<pid>.<n>.v2``; each write is flushed."""

    _count = 0

    def __init__(self, directory: Union[str, os.PathLike[str]]) -> None:
        os.makedirs(directory, exist_ok=True)
        EventFileWriter._count += 1
        name = (f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}."
                f"{os.getpid()}.{EventFileWriter._count}.v2")
        self.path = os.path.join(os.fspath(directory), name)
        self._file: Any = open(self.path, "wb")
        self._write(event(0, time.time(), file_version="brain.Event:2"))

    def _write(self, data: bytes) -> None:
        self._file.write(record(data))
        self._file.flush()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self._write(event(step, time.time(), [scalar_value(k, float(v))
                                             for k, v in values.items()]))

    def histograms(self, step: int, values: dict[str, Any]) -> None:
        self._write(event(step, time.time(), [histogram_value(k, v)
                                             for k, v in values.items()]))

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()


# ---------------------------------------------------------------------------- the callback
class TensorBoard(Callback):
    """Write the training curves (and weight histograms) for TensorBoard, as Keras does:
    ``log_dir/train`` gets ``epoch_loss``, ``epoch_<metric>`` and ``epoch_learning_rate`` at
    each epoch, ``log_dir/validation`` the ``val_`` entries under the same names, so TensorBoard
    draws training and validation on one chart.

    Parameters
    ----------
    log_dir : str or os.PathLike, default "logs"
        Where the ``train`` and ``validation`` folders go (``tensorboard --logdir logs``).
    histogram_freq : int, default 0
        Every this many epochs (0: never), a histogram of each weight, tagged
        ``<layer>/<weight>`` (``dense/kernel``), in ``train``.
    write_graph : bool, default True
        Accepted for Keras code; fastnn writes no graph (TensorBoard's graph is TensorFlow's).
    update_freq : "epoch", "batch" or int, default "epoch"
        Also write ``batch_loss`` every batch (``"batch"``) or every this many batches (an
        int), at the batch's number counted over the whole training.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or value.

    Examples
    --------
    >>> import fastnn as fnn
    >>> from fastnn.datasets import make_xor
    >>> X, y = make_xor()
    >>> model = fnn.Sequential([fnn.Dense(1, activation="sigmoid")], input_dim=2, seed=0,
    ...                        backend="numpy").compile(loss="binary_cross_entropy")
    >>> history = model.fit(X, y, epochs=2, verbose=0, callbacks=[fnn.TensorBoard("tb_logs")])
    >>> import os
    >>> sorted(os.listdir("tb_logs"))
    ['train']
    """

    def __init__(self, log_dir: Union[str, os.PathLike[str]] = "logs", histogram_freq: int = 0,
                 write_graph: bool = True, update_freq: Union[str, int] = "epoch") -> None:
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"log_dir must be a path. Received: log_dir={V._describe(log_dir)}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = V.check_int("histogram_freq", histogram_freq, low=0)
        self.write_graph = V.check_bool("write_graph", write_graph)
        if isinstance(update_freq, str):
            self.update_freq: Union[str, int] = V.check_choice("update_freq", update_freq,
                                                               ["epoch", "batch"])
        else:
            self.update_freq = V.check_int("update_freq", update_freq, low=1)
        self._writers: dict[str, EventFileWriter] = {}
        self._batches = 0

    def set_model(self, model: Any) -> None:
        self.model = model

    def _writer(self, part: str) -> EventFileWriter:
        writer = self._writers.get(part)
        if writer is None:
            writer = self._writers[part] = EventFileWriter(os.path.join(self.log_dir, part))
        return writer

    def on_train_begin(self, logs: Logs = None) -> None:
        self._close()
        self._batches = 0

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._batches += 1
        every = 1 if self.update_freq == "batch" else self.update_freq
        if isinstance(every, int) and self._batches % every == 0 and logs:
            values = {f"batch_{k}": v for k, v in logs.items() if _is_number(v)}
            if values:
                self._writer("train").scalars(self._batches, values)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = dict(logs or {})
        train = {f"epoch_{k}": v for k, v in logs.items()
                 if not k.startswith("val_") and k != "lr" and _is_number(v)}
        rate = logs.get("lr", logs.get("learning_rate"))
        if rate is None:
            rate = getattr(getattr(self.model, "optimizer", None), "lr", None)
        if _is_number(rate):
            train["epoch_learning_rate"] = rate
        if train:
            self._writer("train").scalars(epoch, train)
        val = {f"epoch_{k[4:]}": v for k, v in logs.items()
               if k.startswith("val_") and _is_number(v)}
        if val:
            self._writer("validation").scalars(epoch, val)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._writer("train").histograms(epoch, {
                f"{layer.name}/{spec.name}": w
                for layer in self.model.layers for spec, w in zip(layer._specs, layer._weights)})

    def on_train_end(self, logs: Logs = None) -> None:
        self._close()

    def _close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))
            and np.isfinite(value))
