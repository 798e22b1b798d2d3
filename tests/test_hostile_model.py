"""Hostile use of a model: concurrent edits and calls, shared layers, custom losses, deep stacks.

Each case once crashed the process or corrupted a model silently; crash cases run in a
subprocess so that a regression fails its test instead of killing the run.
"""

import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc

import numpy as np
import pytest

import fastnn as fnn
from fastnn import losses as L

BACKENDS = ["numpy", "fast"]
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fnn.__file__)))


def run_python(code, timeout=120):
    """Run ``code`` in a fresh interpreter importing this fastnn; its CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_labels_edited_by_another_thread_during_train_on_batch():
    """The compiled step reads the int64 labels once (a copy), so a thread writing
    out-of-range values into them meanwhile gives a ValueError or a finite loss, never an
    out-of-bounds write."""
    result = run_python("""
        import threading
        import numpy as np
        import fastnn as fnn
        model = fnn.Sequential([fnn.Dense(64, activation="relu"),
                                fnn.Dense(10, activation="softmax")], input_dim=64, seed=0)
        model.compile(loss="cross_entropy", optimizer="adam")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((256, 64)).astype(np.float32)
        y = rng.integers(0, 10, 256).astype(np.int64)
        stop = False
        def vandal():
            while not stop:
                y[::7] = 1 << 40
                y[::7] = -(1 << 40)
                y[::7] = 3
        t = threading.Thread(target=vandal)
        t.start()
        refused = finite = 0
        try:
            for _ in range(3000):
                try:
                    loss = model.train_on_batch(x, y)
                    assert np.isfinite(loss)
                    finite += 1
                except ValueError as exc:
                    assert "label" in str(exc) or "y" in str(exc), exc
                    refused += 1
        finally:
            stop = True
            t.join()
        assert all(np.isfinite(w).all() for w in model.get_weights())
        print("ok", finite, refused)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_dense_layer_used_twice_is_refused(backend):
    shared = fnn.Dense(4, activation="tanh")
    with pytest.raises(ValueError, match="already in this model"):
        fnn.Sequential([fnn.Dense(4), shared, shared], input_dim=4, backend=backend)
    model = fnn.Sequential([shared], backend=backend)
    with pytest.raises(ValueError, match="already in this model"):
        model.add(shared)
    # Two models holding one layer: the second build is refused, the first keeps its weights.
    first = fnn.Sequential([shared, fnn.Dense(2)], backend=backend)
    second = fnn.Sequential([shared, fnn.Dense(3)], backend=backend)
    first.build(4)
    before = first.get_weights()
    with pytest.raises(ValueError, match="already belongs to a built model"):
        second.build(4)
    assert all(np.array_equal(a, b) for a, b in zip(before, first.get_weights()))
    # Activation layers hold no weights: the same one may appear twice.
    relu = fnn.ReLU()
    model = fnn.Sequential([fnn.Dense(3), relu, fnn.Dense(3), relu], input_dim=2,
                           backend=backend)
    assert model.count_params() == 2 * 3 + 3 + 3 * 3 + 3


class _UnknownKind(L.MeanSquaredError):
    def kind(self, final_act):
        return 42


class _FloatKind(L.MeanSquaredError):
    def kind(self, final_act):
        return 0.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", [_UnknownKind(), _FloatKind()], ids=["42", "0.0"])
def test_a_custom_loss_with_an_unknown_kernel_code_is_refused_at_compile(backend, loss):
    model = fnn.Sequential([fnn.Dense(2)], input_dim=3, backend=backend)
    with pytest.raises(TypeError, match=r"kind\(\) must return one of the loss kernel codes"):
        model.compile(loss=loss)
    assert model.loss is None or model.loss is not loss


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_memory_does_not_grow_with_the_number_of_activation_layers(backend):
    """A 1000-wide layer and 100 activation layers: predict keeps two buffers whatever the
    depth, fit one output and one derivative product for the whole run of activations."""
    rows, width = 2048, 1000
    model = fnn.Sequential([fnn.Dense(width)] + [fnn.Sigmoid() for _ in range(100)],
                           input_dim=1, seed=0, backend=backend)
    layer_bytes = rows * width * 4
    peak = _peak_bytes(lambda: model.predict(np.ones((rows, 1), np.float32)))
    # the output, two buffers, and NumPy's temporaries for one sigmoid
    assert peak < 6 * layer_bytes, peak / layer_bytes
    model.compile(loss="mse", optimizer="adam")
    x, y = np.ones((rows, 1), np.float32), np.full((rows, width), 0.5, np.float32)
    peak = _peak_bytes(lambda: model.fit(x, y, batch_size=rows, epochs=1, verbose=0))
    assert peak < 10 * layer_bytes, peak / layer_bytes


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss,last", [("mse", "tanh"), ("binary_cross_entropy", "sigmoid")])
def test_a_run_of_activation_layers_backpropagates_exactly(backend, loss, last):
    """The derivative product of a run of activations against finite differences (float64),
    with the loss fused into the run's last activation or not."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3))
    y = rng.uniform(0.1, 0.9, (6, 2))
    layers = [fnn.Dense(5, activation="relu"), fnn.Tanh(), fnn.LeakyReLU(0.2), fnn.Sigmoid(),
              fnn.Dense(2), fnn.Sigmoid(), fnn.Tanh(), fnn.Activation(last)]
    model = fnn.Sequential(layers, input_dim=3, seed=3, dtype="float64", backend=backend)
    model.compile(loss=loss)
    assert [s.chain is not None for s in model._plan] == [False, True, False, True]
    _, grads = model.loss_and_gradients(x, y)
    weights = model.get_weights()
    h = 1e-6
    for k, w in enumerate(weights):
        numeric = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            for sign in (1, -1):
                probe = [a.copy() for a in weights]
                probe[k][idx] += sign * h
                model.set_weights(probe)
                numeric[idx] += sign * model.evaluate(x, y)["loss"] / (2 * h)
        model.set_weights(weights)
        np.testing.assert_allclose(grads[k], numeric, rtol=1e-6, atol=1e-9)


def test_a_run_of_activation_layers_agrees_across_backends():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 4))
    y = rng.integers(0, 3, 40)
    layers = lambda: [fnn.Dense(8), fnn.Sigmoid(), fnn.Tanh(), fnn.ReLU(),  # noqa: E731
                      fnn.Dense(3, activation="softmax")]
    out = {}
    for backend in BACKENDS:
        model = fnn.Sequential(layers(), input_dim=4, seed=0, dtype="float64", backend=backend)
        model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.1, momentum=0.9))
        model.fit(x, y, epochs=3, batch_size=8, verbose=0)
        out[backend] = (model.get_weights(), model.predict(x))
    for a, b in zip(out["numpy"][0] + [out["numpy"][1]], out["fast"][0] + [out["fast"][1]]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_in_two_threads_at_once_is_refused(backend):
    """A second thread that trains or changes a model while fit runs gets RuntimeError; the
    model's own callbacks (same thread) may still call these methods."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((512, 8)), rng.integers(0, 2, 512)
    model = fnn.Sequential([fnn.Dense(16, activation="relu"), fnn.Dense(2, activation="softmax")],
                           input_dim=8, seed=0, backend=backend)
    model.compile(loss="cross_entropy")
    inside, release, errors = threading.Event(), threading.Event(), []

    class Hold(fnn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.set_weights(self.model.get_weights())     # same thread: allowed
            inside.set()
            release.wait(10)

    def train():
        model.fit(x, y, epochs=1, verbose=0, callbacks=[Hold()])

    t = threading.Thread(target=train)
    t.start()
    try:
        assert inside.wait(10)
        for call in (lambda: model.train_on_batch(x[:4], y[:4]),
                     lambda: model.fit(x, y, verbose=0),
                     lambda: model.compile(loss="cross_entropy"),
                     lambda: model.set_weights(model.get_weights()),
                     lambda: model.loss_and_gradients(x[:4], y[:4])):
            with pytest.raises(RuntimeError, match="another thread"):
                call()
        assert model.predict(x[:3]).shape == (3, 2)          # inference needs no lock
    finally:
        release.set()
        t.join()
    assert np.isfinite(model.train_on_batch(x[:4], y[:4]))   # free again


class _FusedKindOnLinear(L.MeanSquaredError):
    def kind(self, final_act):
        return L.CE_SOFTMAX          # takes a linear output for softmax probabilities


class _BadTargets(L.MeanSquaredError):
    def __init__(self, make):
        self.make = make

    def targets(self, y, n_outputs, dtype, n_rows=None, name="y"):
        return self.make(n_rows, n_outputs, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_custom_loss_is_held_to_what_the_kernels_read(backend):
    """A fused kernel code on the wrong final activation, or targets of another shape, dtype
    or layout, would be read by the kernels as they are: refused with TypeError instead."""
    model = fnn.Sequential([fnn.Dense(3)], input_dim=3, backend=backend)
    with pytest.raises(TypeError, match="fuses with a final softmax"):
        model.compile(loss=_FusedKindOnLinear())
    x, y = np.ones((50, 3)), np.ones((50, 3))
    for make in (lambda n, c, dt: np.zeros((1, 1), dt),                 # too small
                 lambda n, c, dt: np.zeros((n, c), np.float64 if dt == np.float32 else "f4"),
                 lambda n, c, dt: np.zeros((c, n), dt).T,               # not C-contiguous
                 lambda n, c, dt: [[0.0] * c] * n):
        model.compile(loss=_BadTargets(make))
        for call in (lambda: model.train_on_batch(x, y), lambda: model.fit(x, y, verbose=0),
                     lambda: model.evaluate(x, y)):
            with pytest.raises(TypeError, match=r"targets\(\) must return"):
                call()


class _NoKernels(fnn.layers.Layer):
    """A layer kind fastnn has no kernels for (it would have run as the identity)."""


@pytest.mark.parametrize("backend", BACKENDS)
def test_layers_without_kernels_or_with_unknown_codes_are_refused(backend):
    with pytest.raises(TypeError, match="must implement forward and backward"):
        fnn.Sequential([fnn.Dense(4), _NoKernels(), fnn.Dense(2)], input_dim=3, backend=backend)
    for make in (lambda: fnn.Activation("relu"), lambda: fnn.Dense(4)):
        layer = make()
        layer.act = 77
        model = fnn.Sequential([fnn.Dense(4), layer], backend=backend)
        with pytest.raises(ValueError, match="act must be one of the activation codes"):
            model.build(3)
        assert not model.built


@pytest.mark.parametrize("backend", BACKENDS)
def test_set_ups_that_cannot_learn_what_was_meant_warn(backend):
    """Softmax over one unit, cross-entropy after a multi-output sigmoid, MSE on integer
    labels: each trains without error today, so each warns and names the fix."""
    import warnings
    x = np.random.default_rng(0).random((20, 4))
    cases = [
        ([fnn.Dense(1, activation="softmax")], "binary_cross_entropy", np.arange(20) % 2,
         "softmax over a single unit"),
        ([fnn.Dense(4, activation="relu"), fnn.Dense(1), fnn.Softmax()], "mse",
         np.ones((20, 1)), "softmax over a single unit"),
        ([fnn.Dense(3, activation="sigmoid")], "cross_entropy", np.arange(20) % 3,
         "after a final sigmoid"),
        ([fnn.Dense(1)], "mse", np.arange(20) % 3, "mse on integer targets"),
        ([fnn.Dense(1)], "mse", list(range(20)), "mse on integer targets"),
    ]
    for layers, loss, y, message in cases:
        model = fnn.Sequential(layers, input_dim=4, seed=0, backend=backend)
        with pytest.warns(UserWarning, match=message):
            model.compile(loss=loss)
            model.fit(x, y, epochs=1, verbose=0)
    fine = [([fnn.Dense(3, activation="softmax")], "cross_entropy", np.arange(20) % 3),
            ([fnn.Dense(1, activation="sigmoid")], "binary_cross_entropy", np.arange(20) % 2),
            ([fnn.Dense(1)], "mse", np.arange(20, dtype=np.float64))]
    for layers, loss, y in fine:
        model = fnn.Sequential(layers, input_dim=4, seed=0, backend=backend)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.compile(loss=loss)
            model.fit(x, y, epochs=1, verbose=0)


class _Quartic(L.Loss):
    name = "quartic"

    def value(self, y_true, y_pred):
        return float(np.mean((y_pred - y_true) ** 4))

    def gradient(self, y_true, y_pred):
        return 4 * (y_pred - y_true) ** 3 / y_pred.size


class _ValueOnly(L.Loss):
    def value(self, y_true, y_pred):
        return 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_python_loss_trains_through_value_and_gradient(backend):
    """A Loss subclass with value and gradient: the gradients the model computes from it equal
    finite differences of its value (float64); one method missing is a TypeError at compile."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    model = fnn.Sequential([fnn.Dense(4, activation="tanh"), fnn.Dense(2)], input_dim=3, seed=0,
                           dtype="float64", backend=backend)
    model.compile(loss=_Quartic(), optimizer=fnn.SGD(lr=0.01))
    loss, grads = model.loss_and_gradients(x, y)
    assert loss == pytest.approx(np.mean((model.predict(x) - y) ** 4), rel=1e-12)
    weights, h = model.get_weights(), 1e-6
    numeric = np.zeros_like(weights[0])
    for idx in np.ndindex(weights[0].shape):
        for sign in (1, -1):
            probe = [w.copy() for w in weights]
            probe[0][idx] += sign * h
            model.set_weights(probe)
            numeric[idx] += sign * model.evaluate(x, y)["loss"] / (2 * h)
    model.set_weights(weights)
    np.testing.assert_allclose(grads[0], numeric, rtol=1e-6, atol=1e-10)
    first = model.train_on_batch(x, y)
    model.fit(x, y, epochs=5, batch_size=7, verbose=0)
    assert model.evaluate(x, y)["loss"] < first
    with pytest.raises(TypeError, match="sample_weight"):
        model.fit(x, y, sample_weight=np.ones(7), verbose=0)
    value, grad = _Quartic().value_and_grad(y, model.predict(x))
    assert grad.shape == y.shape and value == pytest.approx(model.evaluate(x, y)["loss"])
    with pytest.raises(TypeError, match=r"must implement gradient\(y_true, y_pred\)"):
        model.compile(loss=_ValueOnly())
    with pytest.raises(TypeError, match=r"must implement value\(y_true, y_pred\) and gradient"):
        model.compile(loss=L.Loss())


def test_a_model_with_a_python_loss_saves_its_weights_and_says_so(tmp_path):
    from fastnn.io import model_from_bytes, model_to_bytes
    model = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=0, backend="numpy")
    model.compile(loss=_Quartic(), optimizer="adam")
    model.train_on_batch(np.ones((4, 3)), np.zeros((4, 2)))
    with pytest.warns(UserWarning, match="not one fastnn can rebuild"):
        blob = model_to_bytes(model)
    same = model_from_bytes(blob)
    assert same.loss is None
    for a, b in zip(model.get_weights(), same.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_metric_functions_are_reported_as_batch_means(backend):
    """A metric given as a function f(y_true, y_pred): fit and evaluate report the mean over
    samples of its batch means (weighted by the batch sizes) under its __name__."""
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((50, 3)), rng.integers(0, 2, 50)

    def max_error(y_true, y_pred):
        return float(np.abs(y_true - y_pred).max(axis=1).mean())

    model = fnn.Sequential([fnn.Dense(2, activation="softmax")], input_dim=3, seed=0,
                           backend=backend)
    model.compile(loss="cross_entropy", metrics=["accuracy", max_error])
    assert model.metrics == ["accuracy", "max_error"]
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert len(history.history["max_error"]) == 2
    scores = model.evaluate(x, y)
    expected = max_error(np.eye(2)[y], model.predict(x))
    assert scores["max_error"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="distinct names"):
        model.compile(loss="cross_entropy", metrics=[max_error, max_error])
    model.compile(loss="cross_entropy", metrics=[lambda t, p: "x"])
    with pytest.raises(TypeError, match="must return a number"):
        model.evaluate(x, y)
