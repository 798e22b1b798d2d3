"""Sequential, Dense and the optimizers at the public API: the contract of DESIGN.md."""

import math

import numpy as np
import pytest

import fastnn as fnn
import _reference as ref


def _model(backend, dtype="float64", final="softmax", loss="cross_entropy", optimizer=None,
           seed=0, hidden=("relu", "tanh")):
    layers = [fnn.Dense(w, activation=a) for w, a in zip((16, 8), hidden)]
    model = fnn.Sequential(layers + [fnn.Dense(3, activation=final)], input_dim=5, seed=seed,
                           dtype=dtype, backend=backend)
    model.compile(loss=loss, optimizer=optimizer or fnn.SGD(lr=0.1), metrics=["accuracy"])
    return model


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)), rng.integers(0, 3, n)


@pytest.mark.parametrize("final", ref.ACTIVATIONS)
def test_predict_matches_hand_forward(backend, dtype, final):
    model = fnn.Sequential([fnn.Dense(7, activation="leaky_relu"), fnn.Dense(6, activation="sigmoid"),
                            fnn.Dense(3, activation=final)],
                           input_dim=5, seed=2, dtype=dtype, backend=backend)
    X, _ = _data(33)
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(5, 7), (7,), (7, 6), (6,), (6, 3), (3,)]
    assert all(w.dtype == np.dtype(dtype) for w in weights)
    expected = ref.forward(weights, ["leaky_relu", "sigmoid", final], X.astype(dtype))[1][-1]
    got = model.predict(X)
    assert got.shape == (33, 3) and got.dtype == np.dtype(dtype) and got.flags.c_contiguous
    ref.assert_close(got, expected, dtype, scale=np.max(np.abs(expected)) + 1.0)
    # any batch_size gives the same rows (up to rounding: BLAS kernels depend on the row count)
    ref.assert_close(model.predict(X, batch_size=4), got, dtype, scale=np.max(np.abs(got)) + 1.0)


def test_initialisation(backend):
    model = fnn.Sequential([fnn.Dense(400, activation="relu"), fnn.Dense(300, activation="tanh")],
                           input_dim=500, seed=0, backend=backend)
    W1, b1, W2, b2 = model.get_weights()
    assert np.all(b1 == 0) and np.all(b2 == 0)
    # He normal before ReLU: std sqrt(2 / fan_in); Glorot uniform otherwise
    assert np.std(W1) == pytest.approx(math.sqrt(2 / 500), rel=0.02)
    assert abs(np.mean(W1)) < 0.01 * math.sqrt(2 / 500) * 10
    limit = math.sqrt(6 / (400 + 300))
    assert np.max(np.abs(W2)) <= limit and np.max(np.abs(W2)) > 0.99 * limit
    assert np.std(W2) == pytest.approx(limit / math.sqrt(3), rel=0.02)


def test_seed_determines_weights(backend):
    a, b, c = (_model(backend, seed=s) for s in (5, 5, 6))
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    X, y = _data()
    ha = a.fit(X, y, epochs=3, batch_size=8, verbose=0).history
    hb = b.fit(X, y, epochs=3, batch_size=8, verbose=0).history
    assert ha == hb
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def test_weights_are_copies(backend):
    model = _model(backend)
    weights = model.get_weights()
    weights[0][...] = 123.0
    assert not np.any(model.get_weights()[0] == 123.0)
    new = [np.full_like(w, 0.5) for w in weights]
    model.set_weights(new)
    new[0][...] = 7.0
    assert np.all(model.get_weights()[0] == 0.5)
    # Dense layers expose [W, b] too
    dense = model.dense_layers[0] if hasattr(model, "dense_layers") else model.layers[0]
    W, b = dense.get_weights()
    assert W.shape == (5, 16) and b.shape == (16,)


def test_loss_and_gradients_do_not_update(backend):
    model = _model(backend)
    X, y = _data()
    before = model.get_weights()
    l1, g1 = model.loss_and_gradients(X, y)
    l2, g2 = model.loss_and_gradients(X, y)
    assert l1 == l2 and all(np.array_equal(a, b) for a, b in zip(g1, g2))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    g1[0][...] = 0.0          # a copy: the next call is unaffected
    assert np.array_equal(model.loss_and_gradients(X, y)[1][0], g2[0])


def test_train_on_batch_is_one_sgd_step(backend):
    model = _model(backend, optimizer=fnn.SGD(lr=0.1))
    X, y = _data()
    w0 = model.get_weights()
    loss0, grads = model.loss_and_gradients(X, y)
    p0 = model.predict(X)
    loss, accuracy = model.train_on_batch(X, y)          # Keras 3: [loss, metrics...]
    assert isinstance(loss, float) and loss == loss0       # the loss before the step
    assert accuracy == np.mean(p0.argmax(axis=1) == y)     # on the outputs before the step
    for w_new, w, g in zip(model.get_weights(), w0, grads):
        np.testing.assert_allclose(w_new, w - 0.1 * g, rtol=1e-12, atol=1e-15)
    assert model.train_on_batch(X, y)[0] < loss


def test_momentum_and_weight_decay_steps(backend):
    lr, mu, wd = 0.05, 0.9, 0.01
    model = _model(backend, optimizer=fnn.SGD(lr=lr, momentum=mu, nesterov=True, weight_decay=wd))
    X, y = _data()
    w = model.get_weights()
    v = [np.zeros_like(a) for a in w]
    for _ in range(3):
        _, grads = model.loss_and_gradients(X, y)
        model.train_on_batch(X, y)
        for i, g in enumerate(grads):
            gg = g + wd * w[i]
            v[i] = mu * v[i] + gg
            w[i] = w[i] - lr * (gg + mu * v[i])
        for a, b in zip(model.get_weights(), w):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


def test_adam_steps(backend):
    lr, b1, b2, eps = 1e-2, 0.8, 0.99, 1e-7
    model = _model(backend, optimizer=fnn.Adam(lr=lr, beta1=b1, beta2=b2, eps=eps))
    X, y = _data()
    w = model.get_weights()
    m = [np.zeros_like(a) for a in w]
    v = [np.zeros_like(a) for a in w]
    for t in range(1, 4):
        _, grads = model.loss_and_gradients(X, y)
        model.train_on_batch(X, y)
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            w[i] = w[i] - lr * (m[i] / (1 - b1 ** t)) / (np.sqrt(v[i] / (1 - b2 ** t)) + eps)
        for a, b in zip(model.get_weights(), w):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_fit_history_and_evaluate(backend, dtype):
    model = _model(backend, dtype)
    X, y = _data(50)
    Xv, yv = _data(20, seed=1)
    h = model.fit(X, y, epochs=4, batch_size=16, validation_data=(Xv, yv), verbose=0)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 4 and all(isinstance(x, float) for x in v) for v in h.history.values())
    scores = model.evaluate(Xv, yv)
    assert set(scores) == {"loss", "accuracy"}
    assert scores["loss"] == pytest.approx(h.history["val_loss"][-1])
    p = model.predict(Xv).astype(np.float64)
    assert scores["accuracy"] == pytest.approx(np.mean(p.argmax(axis=1) == yv))
    assert scores["loss"] == pytest.approx(-np.mean(np.log(p[np.arange(20), yv])),
                                           rel=1e-5 if dtype == "float32" else 1e-12)


def test_fit_edge_cases(backend):
    model = _model(backend)
    X, y = _data(7)
    before = model.get_weights()
    h = model.fit(X, y, epochs=0, verbose=0)
    assert all(len(v) == 0 for v in h.history.values())
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    # a batch larger than the data, a single sample, a last partial batch
    model.fit(X, y, epochs=1, batch_size=100, verbose=0)
    model.fit(X[:1], y[:1], epochs=1, batch_size=1, verbose=0)
    h = model.fit(X, y, epochs=2, batch_size=3, verbose=0, shuffle=False)
    assert all(np.isfinite(h.history["loss"]))


def test_epoch_loss_is_the_mean_over_samples(backend):
    """With shuffle off the epoch loss is the sample-weighted mean of the batch losses."""
    a, b = _model(backend), _model(backend)
    X, y = _data(10)
    h = a.fit(X, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    losses = [b.train_on_batch(X[i:i + 4], y[i:i + 4])[0] for i in (0, 4, 8)]
    assert h.history["loss"][0] == pytest.approx((4 * losses[0] + 4 * losses[1] + 2 * losses[2]) / 10)
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def test_threads_roundtrip():
    previous = fnn.get_num_threads()
    try:
        fnn.set_num_threads(1)
        assert fnn.get_num_threads() == 1
        fnn.set_num_threads(2)
        assert fnn.get_num_threads() == 2
    finally:
        fnn.set_num_threads(previous)
    assert fnn.get_num_threads() == previous


def test_predict_from_several_threads(backend):
    """predict is documented as safe to call from several Python threads at once."""
    from concurrent.futures import ThreadPoolExecutor
    model = _model(backend, dtype="float32")
    inputs = [_data(50 + 7 * i, seed=i)[0] for i in range(8)]
    serial = [model.predict(x) for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            parallel = list(pool.map(model.predict, inputs))
            assert all(np.array_equal(a, b) for a, b in zip(serial, parallel))


@pytest.mark.parametrize("args, error, match", [
    (("leaky_relu", float("nan")), ValueError, r"param=nan"),
    (("leaky_relu", -1.0), ValueError, r"param=-1\.0"),
    (("step", "x"), TypeError, r"param='x'"),
    (("tanh", 0.3), ValueError, r"'tanh' takes no parameter.*param=0\.3"),
])
def test_activation_layer_checks_its_parameter(args, error, match):
    with pytest.raises(error, match=match):
        fnn.Activation(*args)


def test_activation_layer_repr_names_the_activation():
    assert repr(fnn.Activation("tanh")) == "Activation('tanh')"
    assert repr(fnn.Activation("leaky_relu", 0.2)) == "Activation('leaky_relu', 0.2)"
    assert repr(fnn.Step(0.3)) == "Step(0.3)" and repr(fnn.ReLU()) == "ReLU()"


def test_summary_shows_each_layers_activation_argument_for_composite_layers_too(backend):
    """The Activation column is the layer's ``activation`` argument: a TransformerBlock's
    feed-forward one, a Bidirectional layer's wrapped layer's; the block's output is still not
    an activation for the loss (final_activation stays linear)."""
    x = fnn.Input((6, 4))
    h = fnn.LSTM(4, return_sequences=True, activation="relu")(x)
    h = fnn.Bidirectional(fnn.GRU(2, return_sequences=True))(h)
    h = fnn.MultiHeadAttention(2, 2)(h, h)
    h = fnn.TransformerBlock(2, 2, 8, activation="gelu_tanh", name="ff_gelu_tanh")(h)
    h = fnn.TransformerBlock(2, 2, 8, activation=fnn.LeakyReLU(0.3), name="ff_leaky")(h)
    model = fnn.Model(x, fnn.TransformerBlock(2, 2, 8, name="ff_gelu")(h), backend=backend)
    lines = []
    model.summary(print_fn=lines.append)
    rows = {row.split()[0]: row.split()[2] for row in lines[0].splitlines()[4:-2]}
    assert rows == {"lstm": "relu", "bidirectional": "tanh", "multi_head_attention": "linear",
                    "ff_gelu_tanh": "gelu_tanh", "ff_leaky": "leaky_relu", "ff_gelu": "gelu"}
    assert model.final_activation == fnn.activations.LINEAR
