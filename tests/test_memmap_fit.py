"""fit on a memory-mapped X (#20): shuffled batches are gathered by index, never a shuffled copy
of the whole array, and the training is the same to the bit as on the array in memory."""

import tracemalloc

import numpy as np
import pytest

import fastnn as fnn


def model(features, seed=0, backend="fast"):
    net = fnn.Sequential([fnn.Dense(16, activation="relu"), fnn.Dense(3, activation="softmax")],
                         input_dim=features, seed=seed, backend=backend)
    return net.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.05, momentum=0.9),
                       metrics=["accuracy"])


def memmap_of(path, array):
    mm = np.lib.format.open_memmap(str(path), mode="w+", dtype=array.dtype, shape=array.shape)
    mm[...] = array
    mm.flush()
    return np.load(str(path), mmap_mode="r")          # read-only, as a data set usually is


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("options", [dict(verbose=0), dict(verbose=0, validation_split=0.2),
                                     dict(verbose=2, sample_weight="w"),
                                     dict(verbose=0, batch_size=7)])
def test_memmap_training_equals_in_memory_training_bitwise(tmp_path, backend, options, capsys):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((203, 12)).astype(np.float32)
    y = rng.integers(0, 3, 203)
    options = dict(options)
    if options.get("sample_weight") == "w":
        options["sample_weight"] = rng.uniform(0.5, 2.0, 203)
    options.setdefault("batch_size", 16)
    mm = memmap_of(tmp_path / "x.npy", X)
    assert isinstance(mm, np.memmap)
    a, b = model(12, backend=backend), model(12, backend=backend)
    ha = a.fit(X, y, epochs=3, **options)
    hb = b.fit(mm, y, epochs=3, **options)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb)
    assert ha.history == hb.history


def test_a_1gb_memmap_is_shuffled_without_copying_it(tmp_path):
    rows, features = 1 << 18, 1024                  # 2**28 float32: 1 GiB on disk
    path = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(str(path), mode="w+", dtype=np.float32,
                                   shape=(rows, features))
    block = np.random.default_rng(0).standard_normal((4096, features)).astype(np.float32)
    for i in range(0, rows, block.shape[0]):
        mm[i:i + block.shape[0]] = block
    mm.flush()
    del mm
    X = np.load(str(path), mmap_mode="r")
    assert X.nbytes == 1 << 30
    y = np.arange(rows) % 3
    net = model(features)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        history = net.fit(X, y, epochs=1, batch_size=256, verbose=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.isfinite(history.history["loss"][0])
    # the targets' shuffled copy (2 MiB) and the batch buffers: far below the data's 1 GiB
    assert peak < 100 * 2**20, f"fit allocated {peak / 2**20:.0f} MiB at its peak"
