"""The low-level loop: model.forward, model.backward, model.grads, zero_grad, opt.step(model).

What a PyTorch user writes by hand, and what a GAN needs, must give what train_on_batch gives.
"""

import numpy as np
import pytest

import fastnn as fnn

BACKENDS = ["numpy", "fast"]
DTYPES = ["float32", "float64"]


def _mlp(backend, dtype, last="linear", seed=0):
    return fnn.Sequential([fnn.Dense(7, activation="tanh"), fnn.Dense(5, activation="relu"),
                           fnn.Dense(3, activation=last)], input_dim=4, seed=seed, dtype=dtype,
                          backend=backend)


def _batch(dtype, n=9, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)).astype(dtype), rng.standard_normal((n, 3)).astype(dtype)


def _manual_step(model, opt, x, y, loss="mse"):
    out = model.forward(x, training=True)
    value, dout = fnn.losses.get(loss).value_and_grad(y, out)
    model.zero_grad()
    model.backward(dout)
    opt.step(model)
    return value


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make_opt", [lambda: fnn.SGD(lr=0.05, momentum=0.9),
                                      lambda: fnn.Adam(learning_rate=0.01)], ids=["sgd", "adam"])
def test_the_low_level_loop_equals_train_on_batch_bitwise(backend, dtype, make_opt):
    x, y = _batch(dtype)
    reference = _mlp(backend, dtype).compile(loss="mse", optimizer=make_opt())
    model, opt = _mlp(backend, dtype), make_opt()
    for step in range(4):
        expected = reference.train_on_batch(x, y)
        value = _manual_step(model, opt, x, y)
        assert value == pytest.approx(expected, rel=1e-6 if dtype == "float32" else 1e-15)
        for a, b in zip(model.get_weights(), reference.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert opt.iterations == reference.optimizer.iterations == step + 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_with_cross_entropy_by_hand_matches_the_fused_step(backend):
    """train_on_batch fuses softmax with cross-entropy ((p - y) / n); the low-level loop goes
    through dL/dp and the softmax backward: the same to rounding (float64)."""
    rng = np.random.default_rng(1)
    x, labels = rng.standard_normal((12, 4)), rng.integers(0, 3, 12)
    onehot = np.eye(3)[labels]
    reference = _mlp(backend, "float64", "softmax").compile(
        loss="cross_entropy", optimizer=fnn.SGD(lr=0.1))
    model, opt = _mlp(backend, "float64", "softmax"), fnn.SGD(lr=0.1)
    for _ in range(3):
        expected = reference.train_on_batch(x, labels)
        value = _manual_step(model, opt, x, onehot, "categorical_crossentropy")
        assert value == pytest.approx(expected, rel=1e-12)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_returns_the_input_gradient_and_accumulates(backend):
    """dL/dx against finite differences (float64); parameter gradients add up over backward
    calls until zero_grad, and equal loss_and_gradients' for the same loss."""
    x, y = _batch("float64", seed=2)
    model = _mlp(backend, "float64", "sigmoid", seed=3)
    loss = fnn.losses.get("mse")
    out = model.forward(x)
    _, dout = loss.value_and_grad(y, out)
    dx = model.backward(dout)
    h = 1e-6
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        for sign in (1, -1):
            probe = x.copy()
            probe[idx] += sign * h
            numeric[idx] += sign * loss.value_and_grad(y, model(probe))[0] / (2 * h)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-10)
    once = [g.copy() for g in model.grads]
    model.compile(loss="mse")
    _, expected = model.loss_and_gradients(x, y)
    for a, b in zip(once, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    model.forward(x)
    model.backward(dout)
    for a, b in zip(model.grads, once):
        np.testing.assert_allclose(a, 2 * b, rtol=1e-12, atol=1e-15)
    model.zero_grad()
    assert all(not g.any() for g in model.grads)


@pytest.mark.parametrize("backend", BACKENDS)
def test_calling_a_model_is_inference(backend):
    x, _ = _batch("float32", n=5000)
    model = _mlp(backend, "float32")
    np.testing.assert_array_equal(model(x), model.predict(x))
    np.testing.assert_array_equal(model.forward(x, training=False), model.predict(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_low_level_misuse_is_refused_clearly(backend):
    x, y = _batch("float32")
    model = _mlp(backend, "float32")
    with pytest.raises(ValueError, match="needs a forward"):
        model.backward(np.ones((9, 3)))
    model.forward(x)
    with pytest.raises(ValueError, match="dout must have the 9 rows"):
        model.backward(np.ones((4, 3)))
    with pytest.raises(ValueError, match="dout"):
        model.backward(np.ones((9, 2)))
    with pytest.raises(ValueError, match="dout"):
        model.backward(np.full((9, 3), np.nan))
    model.forward(x, training=False)                     # inference keeps nothing
    with pytest.raises(ValueError, match="needs a forward"):
        model.backward(np.ones((9, 3)))
    with pytest.raises(TypeError, match="training"):
        model.forward(x, training="yes")
    opt = fnn.Adam()
    opt.step(_mlp(backend, "float32"))                   # built for that model's weights
    other = fnn.Sequential([fnn.Dense(2)], input_dim=2, backend=backend)
    with pytest.raises(ValueError, match="one optimizer per model"):
        opt.step(other)
    unbuilt = fnn.Sequential([fnn.Dense(2)], backend=backend)
    # (forward and model(x) on a batch build it, as in Keras; one sample has no batch axis)
    for call in (lambda: unbuilt.forward(x[0]), lambda: unbuilt.grads, unbuilt.zero_grad,
                 lambda: unbuilt(x[0]), lambda: fnn.SGD().step(unbuilt)):
        with pytest.raises(ValueError, match="built"):
            call()
