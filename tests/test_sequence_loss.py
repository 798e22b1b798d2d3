"""Cross-entropy on sequence outputs (n, steps, classes): each position is one prediction, as in
Keras (the loss is the mean over every position; integer labels (n, steps) or one-hot
(n, steps, classes)); metrics likewise. Expected values are written out with NumPy here."""

import numpy as np
import pytest

import fastnn as fnn

BACKENDS = ["fast", "numpy"]
STEPS, CLASSES = 5, 4


def _model(backend, activation="softmax"):
    return fnn.Sequential([fnn.Dense(CLASSES, activation=activation)],
                          input_shape=(STEPS, 3), dtype="float64", backend=backend, seed=0)


def _data(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, STEPS, 3)), rng.integers(0, CLASSES, size=(n, STEPS))


def _expected_loss(proba, labels, weights=None):
    """-log p of each position's label; the mean over positions (Keras' sum over batch size:
    sample weights multiply each sample's positions, then divide by the count)."""
    picked = np.take_along_axis(proba, labels[..., None], axis=-1)[..., 0]
    losses = -np.log(picked)
    if weights is not None:
        losses = losses * weights[:, None]
    return losses.mean()


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_labels_per_position(backend):
    X, y = _data()
    model = _model(backend).compile(loss="sparse_categorical_crossentropy",
                                    metrics=["accuracy"])
    proba = model.predict(X)
    assert proba.shape == (6, STEPS, CLASSES)
    np.testing.assert_allclose(proba.sum(axis=-1), 1.0, rtol=1e-12)   # softmax per position
    scores = model.evaluate(X, y)
    np.testing.assert_allclose(scores["loss"], _expected_loss(proba, y), rtol=1e-10)
    np.testing.assert_allclose(scores["accuracy"], np.mean(proba.argmax(-1) == y), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_hot_targets_give_the_same_loss(backend):
    X, y = _data(seed=1)
    model = _model(backend).compile(loss="categorical_crossentropy")
    one_hot = np.eye(CLASSES)[y]
    assert model.evaluate(X, one_hot)["loss"] == pytest.approx(model.evaluate(X, y)["loss"],
                                                                rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sample_weights_weigh_every_position_of_a_sample(backend):
    X, y = _data(seed=2)
    w = np.array([1.0, 0.0, 2.0, 1.0, 0.5, 3.0])
    model = _model(backend).compile(loss="cross_entropy")
    proba = model.predict(X)
    got = model.evaluate(X, y, sample_weight=w)["loss"]
    np.testing.assert_allclose(got, _expected_loss(proba, y, w), rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_gradient_is_the_mean_over_positions(backend):
    """One SGD step (lr 1) moves the kernel by minus dL/dW, with dL/dz = (p - onehot) / (n T)
    for the fused softmax: checked against that formula."""
    X, y = _data(n=3, seed=3)
    model = _model(backend).compile(loss="cross_entropy", optimizer=fnn.SGD(learning_rate=1.0))
    W, b = (a.copy() for a in model.get_weights())
    proba = model.predict(X)
    dz = (proba - np.eye(CLASSES)[y]) / (3 * STEPS)
    model.train_on_batch(X, y)
    W2, b2 = model.get_weights()
    np.testing.assert_allclose(W - W2, X.reshape(-1, 3).T @ dz.reshape(-1, CLASSES), rtol=1e-10,
                               atol=1e-14)
    np.testing.assert_allclose(b - b2, dz.reshape(-1, CLASSES).sum(axis=0), rtol=1e-10,
                               atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_sequence_model_learns_per_position_labels(backend):
    """Label each position by the sign of its first feature: a per-step Dense learns it."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, STEPS, 3))
    y = (X[..., 0] > 0).astype(np.int64)
    model = fnn.Sequential([fnn.Dense(8, activation="tanh"), fnn.Dense(2, activation="softmax")],
                           input_shape=(STEPS, 3), backend=backend, seed=0)
    model.compile(loss="cross_entropy", optimizer=fnn.Adam(learning_rate=0.05),
                  metrics=["accuracy"])
    history = model.fit(X, y, epochs=15, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.95


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("y_shape", [(6,), (6, STEPS + 1), (6, STEPS, CLASSES + 1),
                                     (6, STEPS * CLASSES)])
def test_targets_of_another_shape_are_refused(backend, y_shape):
    X, _ = _data()
    model = _model(backend).compile(loss="cross_entropy")
    with pytest.raises(ValueError, match=r"y must be integer labels of shape \(n, 5\) or "
                                         r"one-hot \(n, 5, 4\)"):
        model.evaluate(X, np.zeros(y_shape))


@pytest.mark.parametrize("backend", BACKENDS)
def test_labels_out_of_range_are_refused(backend):
    X, y = _data()
    y[2, 3] = CLASSES
    model = _model(backend).compile(loss="cross_entropy")
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\].*label 4"):
        model.evaluate(X, y)
