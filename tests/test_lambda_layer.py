"""Keras' Lambda layer (fastnn/layers/lambda_layer.py): a NumPy function as a layer, with an
optional gradient. Checked: the same steps as precomputed inputs (bitwise), finite differences
of given gradients on both backends (one and several inputs), output shapes (inferred, given,
computed), and every refusal: a missing gradient where one must pass, results of the wrong
shape or kind, bad arguments, saving to a model file."""

import numpy as np
import pytest

import fastnn as fnn

BACKENDS = ["fast", "numpy"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_preprocessing_lambda_trains_as_the_precomputed_inputs(backend):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 6)).astype(np.float32)
    y = rng.standard_normal((40, 2))
    runs = []
    for layers, data in (([fnn.Lambda(lambda x: x / 255.0)], X), ([], X / np.float32(255.0))):
        model = fnn.Sequential([*layers, fnn.Dense(5, activation="tanh"), fnn.Dense(2)],
                               input_dim=6, seed=1, backend=backend)
        model.compile("mse", fnn.Adam(learning_rate=0.01))
        history = model.fit(data, y, epochs=3, batch_size=8, verbose=0, shuffle=False)
        runs.append((history.history["loss"], model.get_weights()))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        assert a.tobytes() == b.tobytes()


def _fd_check(model, xs, H=1e-6, tol=1e-7):
    """Weights' and inputs' gradients of sum(out * R) against central differences."""
    out = model.forward(xs, training=True)
    R = np.random.default_rng(5).standard_normal(out.shape)
    model.zero_grad()
    dx = model.backward(R)
    grads = [g.copy() for g in model.grads]

    def loss():
        return float(np.sum(model.forward(xs, training=True) * R))

    weights = model.get_weights()
    for k, w in enumerate(weights):
        fd = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            for sign in (1, -1):
                shifted = [v.copy() for v in weights]
                shifted[k][idx] += sign * H
                model.set_weights(shifted)
                fd[idx] += sign * loss() / (2 * H)
        model.set_weights(weights)
        assert np.linalg.norm(grads[k] - fd) <= tol * max(np.linalg.norm(fd), 1.0)
    for x, d in zip(xs if isinstance(xs, list) else [xs], dx if isinstance(xs, list) else [dx]):
        fd = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            for sign in (1, -1):
                saved = x[idx]
                x[idx] = saved + sign * H
                fd[idx] += sign * loss() / (2 * H)
                x[idx] = saved
        assert np.linalg.norm(d - fd) <= tol * max(np.linalg.norm(fd), 1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_given_gradients_match_finite_differences(backend):
    square = fnn.Lambda(lambda x, p: np.sin(x) * p, arguments={"p": 1.5},
                        gradient=lambda x, dy: 1.5 * np.cos(x) * dy)
    model = fnn.Sequential([fnn.Dense(4, activation="tanh"), square, fnn.Dense(3)],
                           input_dim=3, seed=2, dtype="float64", backend=backend)
    _fd_check(model, np.random.default_rng(1).standard_normal((5, 3)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_several_inputs_and_their_gradients(backend):
    a, b = fnn.Input((3,)), fnn.Input((3,))
    prod = fnn.Lambda(lambda t: t[0] * t[1], gradient=lambda t, dy: [dy * t[1], dy * t[0]])
    h = prod([fnn.Dense(3, activation="tanh")(a), b])
    model = fnn.Model([a, b], fnn.Dense(2)(h), seed=3, dtype="float64", backend=backend)
    rng = np.random.default_rng(2)
    _fd_check(model, [rng.standard_normal((4, 3)), rng.standard_normal((4, 3))])


def test_output_shapes():
    model = fnn.Sequential([fnn.Lambda(lambda x: x.reshape(len(x), 2, 3).sum(axis=2))],
                           input_dim=6)
    assert model.output_shape == (2,)
    given = fnn.Sequential([fnn.Lambda(lambda x: x[:, :2], output_shape=(2,))], input_dim=6)
    assert given.output_shape == (2,)
    computed = fnn.Sequential([fnn.Lambda(lambda x: x[:, ::2], output_shape=lambda s: (
        s[0] // 2,))], input_dim=6)
    assert computed.output_shape == (3,)
    x = np.arange(12.0).reshape(2, 6)
    assert computed.predict(x).tolist() == [[0, 2, 4], [6, 8, 10]]
    assert model.predict(x).dtype == np.float32          # cast to the model's dtype


def test_a_missing_gradient_is_an_error_only_where_one_must_pass():
    model = fnn.Sequential([fnn.Dense(2), fnn.Lambda(np.tanh)], input_dim=3)
    model.compile("mse", "sgd")
    before = model.get_weights()
    with pytest.raises(ValueError, match="a Lambda has no gradient of its own"):
        model.train_on_batch(np.ones((4, 3)), np.zeros((4, 2)))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(before, model.get_weights()))
    assert model.predict(np.ones((1, 3))).shape == (1, 2)      # inference needs none


def test_saving_is_refused_and_the_weights_round_trip(tmp_path):
    """A model file holds no code: save and save_weights refuse a Lambda, saying what works."""
    model = fnn.Sequential([fnn.Lambda(lambda x: 2 * x), fnn.Dense(2)], input_dim=3, seed=0)
    for save in (model.save, model.save_weights):
        with pytest.raises(ValueError, match=r"Lambda.*holds no code.*np\.savez"):
            save(tmp_path / "m.fnn")
    np.savez(tmp_path / "w.npz", *model.get_weights())
    twin = fnn.Sequential([fnn.Lambda(lambda x: 2 * x), fnn.Dense(2)], input_dim=3, seed=9)
    stored = np.load(tmp_path / "w.npz")
    twin.set_weights([stored[f"arr_{i}"] for i in range(len(stored.files))])
    x = np.ones((2, 3))
    assert twin.predict(x).tobytes() == model.predict(x).tobytes()


BAD = [
    (lambda: fnn.Lambda(3), TypeError, "function must be callable"),
    (lambda: fnn.Lambda(np.tanh, gradient="x"), TypeError, "gradient must be callable"),
    (lambda: fnn.Lambda(np.tanh, arguments=[1]), TypeError, "arguments must be a dict"),
    (lambda: fnn.Lambda(np.tanh, output_shape=(0,)), ValueError, "output_shape"),
    (lambda: fnn.Sequential([fnn.Lambda(lambda x: "text")], input_dim=2), TypeError,
     "must return a real array"),
    (lambda: fnn.Sequential([fnn.Lambda(lambda x: x[:1], output_shape=(2,))], input_dim=2)
     .predict(np.ones((3, 2))), ValueError, r"function must return an array of shape \(3, 2\)"),
    (lambda: _wrong_gradient(), ValueError, r"gradient must return an array of shape \(4, 2\)"),
]


def _wrong_gradient():
    model = fnn.Sequential([fnn.Dense(2), fnn.Lambda(np.tanh, gradient=lambda x, dy: dy[:, :1])],
                           input_dim=3)
    model.compile("mse", "sgd")
    model.train_on_batch(np.ones((4, 3)), np.zeros((4, 2)))


@pytest.mark.parametrize("make, error, match", BAD)
def test_bad_uses_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()
