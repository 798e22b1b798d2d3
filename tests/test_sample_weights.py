"""Sample and class weights in fit, train_on_batch and evaluate, with Keras' meaning:
the loss of a batch is sum(w_i * loss_i) / n. Checked against PyTorch in float64."""

import numpy as np
import pytest

import fastnn as fnn

BACKENDS = ["numpy", "fast"]


def _data(seed=0, n=24):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5)), rng.integers(0, 3, n), rng.uniform(0, 2, n)


def _model(backend, loss="cross_entropy", act="softmax", units=3):
    model = fnn.Sequential([fnn.Dense(6, activation="tanh"), fnn.Dense(units, activation=act)],
                           input_dim=5, seed=0, dtype="float64", backend=backend)
    return model.compile(loss=loss, optimizer=fnn.SGD(lr=0.1))


def _torch_step(model, x, onehot, w, lr=0.1):
    """One SGD step of the same network in PyTorch on the weighted cross-entropy."""
    torch = pytest.importorskip("torch")
    W1, b1, W2, b2 = (torch.tensor(a, requires_grad=True) for a in model.get_weights())
    x, onehot, w = torch.tensor(x), torch.tensor(onehot), torch.tensor(w)
    p = torch.softmax(torch.tanh(x @ W1 + b1) @ W2 + b2, dim=1)
    loss = (w * -(onehot * torch.log(p)).sum(dim=1)).sum() / x.shape[0]
    loss.backward()
    with torch.no_grad():
        return float(loss), [(t - lr * t.grad).numpy() for t in (W1, b1, W2, b2)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_weighted_step_matches_pytorch(backend):
    x, y, w = _data()
    onehot = np.eye(3)[y]
    class_weight = {0: 0.5, 1: 2.0, 2: 1.0}
    both = w * np.array([0.5, 2.0, 1.0])[y]
    for kwargs, weights in [({"sample_weight": w}, w), ({"class_weight": class_weight},
                                                        np.array([0.5, 2.0, 1.0])[y]),
                            ({"sample_weight": w, "class_weight": class_weight}, both)]:
        model = _model(backend)
        expected_loss, expected = _torch_step(model, x, onehot, weights)
        assert model.train_on_batch(x, y, **kwargs) == pytest.approx(expected_loss, rel=1e-12)
        for a, b in zip(model.get_weights(), expected):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
        model = _model(backend)
        model.fit(x, y, batch_size=x.shape[0], epochs=1, shuffle=False, verbose=0, **kwargs)
        for a, b in zip(model.get_weights(), expected):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_weights_the_loss_and_unit_weights_change_nothing(backend):
    x, y, w = _data(1)
    model = _model(backend)
    per_sample = [model.evaluate(x[i:i + 1], y[i:i + 1])["loss"] for i in range(len(y))]
    weighted = model.evaluate(x, y, sample_weight=w)["loss"]
    assert weighted == pytest.approx(np.dot(w, per_sample) / len(y), rel=1e-12)
    assert model.evaluate(x, y, sample_weight=np.ones(len(y)))["loss"] == pytest.approx(
        model.evaluate(x, y)["loss"], rel=1e-15)
    plain, ones = _model(backend), _model(backend)
    plain.fit(x, y, batch_size=8, epochs=2, verbose=0)
    ones.fit(x, y, batch_size=8, epochs=2, verbose=0, sample_weight=np.ones(len(y)))
    for a, b in zip(plain.get_weights(), ones.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_follow_their_samples_through_shuffling_and_validation_split(backend):
    """Zero weight on the samples of class 2: training never sees their gradient, so a
    model fit on all samples equals one fit on the others (the same order, no shuffle)."""
    x, y, _ = _data(2, n=30)
    keep = y != 2
    w = keep.astype(float)
    a = _model(backend)
    a.fit(x, y, batch_size=30, epochs=3, shuffle=True, verbose=0, sample_weight=w)
    b = _model(backend)
    b.fit(x, y, batch_size=30, epochs=3, shuffle=True, verbose=0, class_weight={2: 0.0})
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-15)
    c = _model(backend)
    history = c.fit(x, y, batch_size=8, epochs=1, verbose=0, sample_weight=w,
                    validation_split=0.2)
    assert np.isfinite(history.history["val_loss"][0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_class_weight_reads_the_0_1_target(backend):
    x, y, _ = _data(3)
    y = (y > 0).astype(int)
    model = _model(backend, "binary_cross_entropy", "sigmoid", 1)
    loss = model.evaluate(x, y)["loss"]
    m0 = _model(backend, "binary_cross_entropy", "sigmoid", 1)
    w = np.where(y == 1, 3.0, 1.0)
    assert m0.train_on_batch(x, y, class_weight={1: 3.0}) == pytest.approx(
        model.evaluate(x, y, sample_weight=w)["loss"], rel=1e-12)
    assert loss != pytest.approx(model.evaluate(x, y, sample_weight=w)["loss"])


BAD = [
    ({"sample_weight": np.ones(5)}, ValueError, r"sample_weight must have shape \(24,\)"),
    ({"sample_weight": -np.ones(24)}, ValueError, r"sample_weight must be >= 0"),
    ({"sample_weight": np.full(24, np.nan)}, ValueError, "sample_weight"),
    ({"sample_weight": ["a"] * 24}, TypeError, "sample_weight"),
    ({"class_weight": [1.0, 2.0]}, TypeError, r"class_weight must be a dict"),
    ({"class_weight": {"a": 1.0}}, ValueError, r"class_weight keys must be class indices"),
    ({"class_weight": {-1: 1.0}}, ValueError, r"class_weight keys must be class indices"),
    ({"class_weight": {0: -2.0}}, ValueError, r"class_weight\[0\]"),
    ({"class_weight": {0: float("inf")}}, ValueError, r"class_weight\[0\]"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kwargs, error, message", BAD)
def test_bad_weights_are_refused_naming_the_argument(backend, kwargs, error, message):
    x, y, _ = _data()
    model = _model(backend)
    before = model.get_weights()
    for call in (lambda: model.fit(x, y, verbose=0, **kwargs),
                 lambda: model.train_on_batch(x, y, **kwargs)):
        with pytest.raises(error, match=message):
            call()
    if "class_weight" not in kwargs:
        with pytest.raises(error, match=message):
            model.evaluate(x, y, **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
