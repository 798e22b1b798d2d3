"""Ctrl-C in the middle of fit: the weights, the optimizer state and its step count stay together.

A timer thread interrupts the main thread (``_thread.interrupt_main``, what Ctrl-C does) at
several moments of a long fit. Whatever step it stops in, the model must hold exactly the state
of ``optimizer.iterations`` complete steps, so that training on from there equals a run that was
never interrupted.
"""

import _thread
import threading

import numpy as np
import pytest

import fastnn as fnn

BATCH = 16


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((320, 24)).astype(np.float32)
    onehot = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 320)]
    return x, onehot


def _model(backend, optimizer):
    model = fnn.Sequential([fnn.Dense(32, activation="relu"), fnn.Dense(5, activation="softmax")],
                           input_dim=24, seed=7, backend=backend)
    opt = fnn.SGD(lr=0.05, momentum=0.9) if optimizer == "sgd" else fnn.Adam(lr=0.01)
    return model.compile(loss="cross_entropy", optimizer=opt)


def _state(model):
    return model.get_weights() + [np.asarray(a).copy() for a in model.optimizer.state().values()]


def _assert_same(a, b):
    assert len(_state(a)) == len(_state(b))
    for u, v in zip(_state(a), _state(b)):
        np.testing.assert_array_equal(u, v)
    assert a.optimizer.iterations == b.optimizer.iterations


def _batch(data, i):
    x, y = data
    start = (i % -(-x.shape[0] // BATCH)) * BATCH
    return x[start:start + BATCH], y[start:start + BATCH]


# the fast backend runs an epoch without metrics as compiled chunks (run_epoch), with metrics
# as a Python loop of compiled steps; the NumPy backend has only the Python loop
@pytest.mark.parametrize("backend,loop", [("numpy", "python"), ("fast", "python"),
                                          ("fast", "compiled")])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("delay", [0.0, 0.002, 0.03, 0.15])
def test_an_interrupted_fit_resumes_as_if_never_interrupted(data, backend, optimizer, loop,
                                                           delay):
    model = _model(backend, optimizer)
    metrics = ["accuracy"] if loop == "python" else None
    model.compile(loss="cross_entropy", optimizer=model.optimizer, metrics=metrics)
    timer = threading.Timer(delay, _thread.interrupt_main)
    with pytest.raises(KeyboardInterrupt):
        try:
            timer.start()
            model.fit(*data, epochs=10**6, batch_size=BATCH, shuffle=False, verbose=0)
        finally:
            timer.join()
    steps = model.optimizer.iterations
    reference = _model(backend, optimizer)
    for i in range(steps):
        reference.train_on_batch(*_batch(data, i))
    _assert_same(model, reference)
    for i in range(steps, steps + 5):            # and training on is the same as well
        ours = model.train_on_batch(*_batch(data, i))
        if metrics:                              # Keras' [loss, accuracy]
            ours = ours[0]
        assert ours == reference.train_on_batch(*_batch(data, i))
    _assert_same(model, reference)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_every_optimizer_counts_its_steps(data, backend, optimizer):
    model = _model(backend, optimizer)
    assert model.optimizer.iterations == 0
    model.fit(*data, epochs=2, batch_size=BATCH, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 2 * 20
    model.train_on_batch(*_batch(data, 0))
    assert model.optimizer.iterations == 41
    model.loss_and_gradients(*_batch(data, 0))      # no update, no step
    assert model.optimizer.iterations == 41
