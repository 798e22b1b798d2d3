"""No memory growth over many steps, and (almost) no allocation inside a training step.

tracemalloc sees every Python and NumPy allocation (NumPy reports its data buffers to it); the
resident set size (/proc/self/statm) also sees what the C kernels and OpenMP allocate.
Figures measured on the reference machine (fast backend, 64-128-10 model, batch 32, float32),
as the peak of traced memory over the baseline during 200 train_on_batch calls: about 5 KB with
one-hot float32 targets, 6.4 KB with integer labels. None of it is a data buffer of the step
(the batch is 8 KB, the workspace 35 KB, the parameters 33 KB): it is small Python and NumPy
objects that live for one call. Measured piece by piece: input validation ~1.8 KB (array views,
the errstate context), target validation ~4.4 KB with one-hot targets (the (32,) float64 row sums
and |sums - 1| temporaries) and ~6.1 KB with labels (the (32, 10) one-hot array, 1.3 KB, plus
arange/astype index arrays), kernel calls ~1.6-1.8 KB each (Cython memoryview objects for the
arguments), the optimizer's overflow check ~1.8 KB (scalars). The bound below (8 KB) is below
any data-sized buffer of this model, so a per-step copy of X, an activation or the parameters
fails it.
"""

import gc
import resource
import tracemalloc

import numpy as np
import pytest

import fastnn as fnn


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _model(backend="fast", dtype="float32", opt="adam"):
    model = fnn.Sequential([fnn.Dense(128, activation="relu"), fnn.Dense(10, activation="softmax")],
                           input_dim=64, seed=0, dtype=dtype, backend=backend)
    model.compile("cross_entropy", fnn.Adam(1e-3) if opt == "adam" else
                  fnn.SGD(0.01, momentum=0.9), metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.random((512, 64), dtype=np.float32)
    y = rng.integers(0, 10, 512)
    return X, y, np.eye(10, dtype=np.float32)[y]


def _growth(run, warmup, more):
    """tracemalloc's current size after ``more`` calls minus after ``warmup`` calls."""
    tracemalloc.start()
    try:
        for i in range(warmup):
            run(i)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(more):
            run(warmup + i)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_train_on_batch_does_not_grow(backend, opt, data):
    X, y, _ = data
    model = _model(backend, opt=opt)
    growth = _growth(lambda i: model.train_on_batch(X[(i % 16) * 32:(i % 16) * 32 + 32],
                                                    y[(i % 16) * 32:(i % 16) * 32 + 32]),
                     50, 500)
    assert growth < 16 * 1024, growth


def test_fit_does_not_grow(backend, data):
    X, y, _ = data
    model = _model(backend)
    growth = _growth(lambda i: model.fit(X, y, epochs=1, batch_size=32, verbose=0), 3, 30)
    assert growth < 32 * 1024, growth


def test_predict_and_evaluate_do_not_grow(backend, data):
    X, y, _ = data
    model = _model(backend)

    def run(i):
        model.predict(X[: 1 + (i * 37) % 512], batch_size=64)
        model.evaluate(X, y)
    assert _growth(run, 20, 400) < 16 * 1024


def test_rss_does_not_grow(data):
    X, y, onehot = data
    model = _model("fast")
    for _ in range(3):
        model.fit(X, y, epochs=2, batch_size=32, verbose=0)
        model.predict(X)
    gc.collect()
    before = _rss()
    for _ in range(40):                                    # 40 x 16 = 640 fit steps
        model.fit(X, y, epochs=1, batch_size=32, verbose=0)
        for i in range(16):
            model.train_on_batch(X[i * 32:i * 32 + 32], onehot[i * 32:i * 32 + 32])
        model.predict(X)
        fnn.ops.matmul(X, X.T)
    gc.collect()
    growth = _rss() - before
    assert growth < 4 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB"


@pytest.mark.parametrize("targets, bound, metrics, kept", [
    ("onehot", 8192, False, 4096), ("labels", 8192, False, 4096),
    # with metrics, train_on_batch returns Keras' [loss, accuracy] (a list and floats each
    # step, which Python's free lists keep a few of: bounded, not growing with the steps)
    ("onehot", 32768, True, 16384), ("labels", 32768, True, 16384)])
def test_a_training_step_allocates_almost_nothing(targets, bound, metrics, kept, data):
    """Peak traced memory during 200 train_on_batch calls, over the baseline before them."""
    X, y, onehot = data
    model = _model("fast")
    if not metrics:
        model.compile("cross_entropy", model.optimizer)
    t = onehot if targets == "onehot" else y
    xb, tb = X[:32], t[:32]
    for _ in range(5):
        model.train_on_batch(xb, tb)                      # workspace and state exist by now
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(200):
            model.train_on_batch(xb, tb)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_step_peak = peak - baseline
    print(f"\ntrain_on_batch ({targets}): peak over baseline {per_step_peak} bytes, "
          f"left over {current - baseline} bytes")
    assert per_step_peak < bound
    assert current - baseline < kept                      # nothing kept from the steps


def test_the_allocation_probe_can_see_an_allocation(data):
    """Guard: the same measurement does see a step that allocates (a fresh (32, 64) copy)."""
    X, y, onehot = data
    model = _model("fast")
    xb = X[:32].astype(np.float64)                         # converted to float32: a copy per call
    model.train_on_batch(xb, onehot[:32])
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(20):
            model.train_on_batch(xb, onehot[:32])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - baseline >= 8192


def test_buffers_the_kernels_stream_are_cache_line_aligned(data):
    """Parameters, gradients, optimizer state and the training workspace start on 64-byte
    boundaries (full-width AVX-512 loads and stores never straddle two cache lines)."""
    from fastnn._memory import aligned_empty, aligned_zeros

    x, y, _ = data
    for opt in (fnn.SGD(lr=0.01, momentum=0.9), fnn.Adam()):
        model = fnn.Sequential([fnn.Dense(17, activation="relu"), fnn.Dense(10)],
                               input_dim=x.shape[1], seed=0, dtype="float32")
        model.compile(loss="cross_entropy", optimizer=opt)
        model.fit(x, y, epochs=1, batch_size=7, verbose=0)
        ws = model._train_ws
        buffers = [model._params, model._grads, *opt.state().values(), *ws.Y, *ws.G]
        assert len(buffers) >= 7
        assert [arr.ctypes.data % 64 for arr in buffers] == [0] * len(buffers)
    for shape, dtype in [(0, np.float32), (1, np.float64), ((3, 5), np.float32), ((7,), "i8")]:
        for make in (aligned_empty, aligned_zeros):
            a = make(shape, dtype)
            assert a.flags.c_contiguous and a.flags.writeable
            assert a.size == 0 or a.ctypes.data % 64 == 0
            assert a.shape == ((shape,) if isinstance(shape, int) else shape)
            assert a.dtype == np.dtype(dtype)
        assert not np.any(aligned_zeros(shape, dtype))
    with pytest.raises(ValueError, match="power of two"):
        aligned_empty(4, np.float32, align=48)
