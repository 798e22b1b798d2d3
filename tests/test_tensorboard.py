"""The TensorBoard callback (fastnn/tensorboard.py): event files written without TensorFlow,
read back by TensorBoard's own loader (the oracle: its event accumulator parses the records,
their protocol buffers and their scalars and histograms), and the CRC-32C against the standard
check values."""

import os

import numpy as np
import pytest

import fastnn as fnn
from fastnn.tensorboard import crc32c, record

EA = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_crc32c_check_values():
    # the standard check value of CRC-32C, and RFC 3720's (iSCSI) test vectors
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"") == 0


def _read(path, part):
    acc = EA.EventAccumulator(os.path.join(path, part),
                              size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def _fit(tmp_path, **kwargs):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3))
    y = (X @ [1.0, -2.0, 0.5] > 0).astype(int)
    model = fnn.Sequential([fnn.Dense(4, activation="tanh"), fnn.Dense(1, activation="sigmoid")],
                           input_dim=3, seed=0)
    model.compile("binary_crossentropy", fnn.SGD(learning_rate=0.1), metrics=["accuracy"])
    board = fnn.TensorBoard(tmp_path / "logs", **kwargs)
    history = model.fit(X, y, epochs=4, batch_size=16, validation_split=0.2, verbose=0,
                        callbacks=[board, fnn.ReduceLROnPlateau("loss", factor=0.5,
                                                                patience=0)])
    return model, history.history, str(tmp_path / "logs")


def test_epoch_curves_are_what_tensorboard_reads(tmp_path):
    model, logs, path = _fit(tmp_path)
    assert sorted(os.listdir(path)) == ["train", "validation"]
    train, val = _read(path, "train"), _read(path, "validation")
    assert sorted(train.Tags()["scalars"]) == ["epoch_accuracy", "epoch_learning_rate",
                                               "epoch_loss"]
    assert sorted(val.Tags()["scalars"]) == ["epoch_accuracy", "epoch_loss"]
    for acc, prefix in ((train, ""), (val, "val_")):
        for name in ("loss", "accuracy"):
            events = acc.Scalars(f"epoch_{name}")
            assert [e.step for e in events] == [0, 1, 2, 3]
            np.testing.assert_allclose([e.value for e in events], logs[prefix + name],
                                       rtol=1e-6)   # float32 in the file
    rates = [e.value for e in train.Scalars("epoch_learning_rate")]
    np.testing.assert_allclose(rates, logs["lr"], rtol=1e-6)
    name = os.listdir(os.path.join(path, "train"))[0]
    assert name.startswith("events.out.tfevents.") and name.endswith(".v2")


def test_batch_curves_and_histograms(tmp_path):
    model, logs, path = _fit(tmp_path, histogram_freq=2, update_freq=2)
    train = _read(path, "train")
    steps = [e.step for e in train.Scalars("batch_loss")]
    assert steps == list(range(2, 17, 2))          # 4 batches an epoch, every second one
    tags = sorted(train.Tags()["histograms"])
    assert tags == ["dense/bias", "dense/kernel", "dense_1/bias", "dense_1/kernel"]
    events = train.Histograms("dense/kernel")
    assert [e.step for e in events] == [0, 2]
    last = events[-1].histogram_value
    # the last histogram is of epoch 2's weights; the kernel has changed since: compare its
    # size and check its sums are of a weight of that shape and range
    assert last.num == 12 and len(last.bucket) == len(last.bucket_limit) == 30
    assert sum(last.bucket) == 12 and last.min <= last.max
    board = fnn.TensorBoard(tmp_path / "one", histogram_freq=1)
    board.set_model(model)
    board.on_train_begin()
    board.on_epoch_end(0, {"loss": 1.0})
    board.on_train_end()
    h = _read(str(tmp_path / "one"), "train").Histograms("dense_1/kernel")[0].histogram_value
    w = model.layers[1].get_weights()[0].astype(np.float64)
    assert h.num == w.size and h.min == w.min() and h.max == w.max()
    assert h.sum == pytest.approx(w.sum(), rel=1e-12)
    assert h.sum_squares == pytest.approx((w * w).sum(), rel=1e-12)


def test_a_corrupted_record_is_refused_by_tensorboards_reader(tmp_path):
    """The frames' CRCs are TFRecord's: TensorBoard's reader takes the file whole, and stops
    at the record whose data has a flipped byte (the epochs before it survive)."""
    _, logs, path = _fit(tmp_path)
    folder = os.path.join(path, "validation")
    name = os.path.join(folder, os.listdir(folder)[0])
    data = bytearray(open(name, "rb").read())
    data[-10] ^= 0x01                             # inside the last record's data
    open(name, "wb").write(bytes(data))
    steps = [e.step for e in _read(path, "validation").Scalars("epoch_loss")]
    assert steps == [0, 1, 2]
    assert record(b"x")[:8] == (1).to_bytes(8, "little")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"log_dir": 3}, TypeError, "log_dir"),
    ({"histogram_freq": -1}, ValueError, "histogram_freq"),
    ({"histogram_freq": 1.5}, TypeError, "histogram_freq"),
    ({"update_freq": "step"}, ValueError, "update_freq"),
    ({"update_freq": 0}, ValueError, "update_freq"),
    ({"write_graph": "yes"}, TypeError, "write_graph"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fnn.TensorBoard(**kwargs)
