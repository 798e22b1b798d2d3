"""fit on a generator or other iterable of batches (steps_per_epoch), and initial_epoch."""

import numpy as np
import pytest

import fastnn as fnn

BACKENDS = ["numpy", "fast"]


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def _model(backend, metrics=None):
    model = fnn.Sequential([fnn.Dense(8, activation="tanh"), fnn.Dense(3, activation="softmax")],
                           input_dim=4, seed=0, dtype="float64", backend=backend)
    return model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.1, momentum=0.9),
                         metrics=metrics)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_generator_of_batches_trains_as_the_same_batches_in_arrays(backend):
    x, y = _data()

    def batches():
        while True:                                          # endless, as Keras allows
            for i in range(0, 48, 16):
                yield x[i:i + 16], y[i:i + 16]

    by_arrays = _model(backend, ["accuracy"])
    expected = by_arrays.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    by_source = _model(backend, ["accuracy"])
    history = by_source.fit(batches(), epochs=3, steps_per_epoch=3, verbose=0)
    for a, b in zip(by_arrays.get_weights(), by_source.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert history.history == expected.history


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reiterable_source_restarts_each_epoch_and_weights_ride_along(backend):
    x, y = _data()
    w = np.linspace(0.5, 2.0, 48)
    source = [(x[i:i + 12], y[i:i + 12], w[i:i + 12]) for i in range(0, 48, 12)]

    class Batches:                                # a re-iterable object, not an array
        def __iter__(self):
            return iter(source)

    model = _model(backend)
    history = model.fit(Batches(), epochs=2, verbose=0, validation_data=(x, y))
    assert history.epoch == [0, 1] and "val_loss" in history.history
    reference = _model(backend)
    for _ in range(2):
        for xb, yb, wb in source:
            reference.train_on_batch(xb, yb, sample_weight=wb)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_source_that_runs_out_stops_training_with_a_warning(backend):
    x, y = _data()
    model = _model(backend)
    batches = iter([(x[:16], y[:16]), (x[16:32], y[16:32])])
    with pytest.warns(UserWarning, match="ran out in epoch 2"):
        history = model.fit(batches, epochs=5, steps_per_epoch=2, verbose=0)
    assert history.epoch == [0, 1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_initial_epoch_resumes_the_count(backend):
    x, y = _data()
    model = _model(backend)
    history = model.fit(x, y, epochs=5, initial_epoch=3, verbose=0)
    assert history.epoch == [3, 4]
    seen = []

    class Record(fnn.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    model.fit(iter([(x, y)] * 2), epochs=4, initial_epoch=2, steps_per_epoch=1, verbose=0,
              callbacks=[Record()])
    assert seen == [2, 3]


BAD = [
    (lambda x, y: dict(X=iter([(x, y)]), y=y), TypeError, "pass y=None"),
    (lambda x, y: dict(X=iter([(x, y)]), steps_per_epoch=0), ValueError, "steps_per_epoch"),
    (lambda x, y: dict(X=x, y=y, steps_per_epoch=2), TypeError, "steps_per_epoch applies"),
    (lambda x, y: dict(X=iter([x])), ValueError, r"a tuple \(x, y\).*batch 1 of epoch 1"),
    (lambda x, y: dict(X=iter([(x[:, :2], y)])), ValueError, r"x \(batch 1 of epoch 1\)"),
    (lambda x, y: dict(X=iter([(x, y + 5)])), ValueError, r"y \(batch 1 of epoch 1\)"),
    (lambda x, y: dict(X=iter([(x, y, -np.ones(len(y)))])), ValueError, "sample_weight"),
    (lambda x, y: dict(X=x, y=y, initial_epoch=-1), ValueError, "initial_epoch"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make, error, message", BAD)
def test_bad_batch_sources_are_refused_naming_the_batch(backend, make, error, message):
    x, y = _data()
    model = _model(backend)
    with pytest.raises(error, match=message):
        model.fit(verbose=0, **make(x, y))
