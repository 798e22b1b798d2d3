"""Gradient checks in float64: ``loss_and_gradients`` against central finite differences.

Every activation (as the final layer and as hidden layers), every loss (cross-entropy with integer
labels and with one-hot rows), depth 1 to 3, both backends. The finite-difference loss is
``loss_and_gradients(x, y)[0]`` after ``set_weights``; the error measure is, per array,
||g - fd|| / (||g|| + ||fd||) <= 1e-6. Data are redrawn until no ReLU-family pre-activation lies
within 1e-3 of its kink, so the central differences never straddle it.

``step`` has derivative 0 almost everywhere, and fastnn defines its gradient as straight-through
(the identity). Finite differences cannot see that, so networks with a step are checked two ways:
every gradient against the hand-written backpropagation of ``tests/_reference.py`` (which passes
the gradient straight through a step), and the layers after the last step against finite
differences, which holds the reference itself to the truth there.
"""

import numpy as np
import pytest

import fastnn as fnn
import _reference as ref

SMOOTH = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "gelu", "gelu_tanh", "elu",
          "selu", "softplus", "silu"]
LOSSES = ["mse", "binary_cross_entropy", "cross_entropy", "cross_entropy_onehot"]
H = 1e-6
TOL = 1e-6
WIDTHS = {1: [3], 2: [5, 3], 3: [5, 4, 3]}
N_IN, BATCH = 4, 5


def _build(backend, acts, widths, loss, params=None, seed=0):
    params = params or [None] * len(acts)
    layers = []
    for units, act, param in zip(widths, acts, params):
        if act == "step" and param is not None:
            layers.append(fnn.Dense(units, activation=fnn.Step(threshold=param)))
        elif act == "leaky_relu" and param is not None:
            layers.append(fnn.Dense(units, activation=fnn.LeakyReLU(alpha=param)))
        else:
            layers.append(fnn.Dense(units, activation=act))
    model = fnn.Sequential(layers, input_dim=N_IN, seed=seed, dtype="float64", backend=backend)
    model.compile(loss=loss.replace("_onehot", ""), optimizer=fnn.SGD(lr=0.1))
    return model


def _targets(loss, rng, n, c):
    """(y given to the model, dense y for the reference)."""
    if loss == "mse":
        t = rng.normal(size=(n, c))
        return t, t
    if loss == "binary_cross_entropy":
        t = rng.integers(0, 2, size=(n, c)).astype(np.float64)
        return t, t
    labels = rng.integers(0, c, size=n)
    dense = ref.one_hot(labels, c)
    return (dense, dense) if loss.endswith("onehot") else (labels, dense)


def _data(weights, acts, params, rng, avoid=1e-3):
    """Inputs whose pre-activations keep clear of every kink (relu at 0, step at its threshold)."""
    for _ in range(200):
        x = rng.normal(size=(BATCH, N_IN))
        zs, _ = ref.forward(weights, acts, x, params)
        ok = True
        for z, act, p in zip(zs, acts, params):
            if act in ("relu", "leaky_relu", "selu") and np.min(np.abs(z)) < avoid:
                ok = False
            if act == "step" and np.min(np.abs(z - (0.5 if p is None else p))) < avoid:
                ok = False
        if ok:
            return x
    raise AssertionError("could not draw kink-free data")  # pragma: no cover


def _perturb_weights(model, rng):
    """Non-zero biases and weights of order one, so that every term of the gradient matters."""
    weights = [w + 0.3 * rng.normal(size=w.shape) for w in model.get_weights()]
    model.set_weights(weights)
    return weights


def _finite_differences(model, weights, x, y, only=None):
    fd = []
    for k, w in enumerate(weights):
        g = np.zeros_like(w)
        if only is None or k in only:
            for idx in np.ndindex(w.shape):
                values = []
                for sign in (1.0, -1.0):
                    trial = [u.copy() for u in weights]
                    trial[k][idx] += sign * H
                    model.set_weights(trial)
                    values.append(model.loss_and_gradients(x, y)[0])
                g[idx] = (values[0] - values[1]) / (2 * H)
        fd.append(g)
    model.set_weights(weights)
    return fd


def _check(backend, acts, loss, params=None, seed=0, fd_layers=None):
    params = params or [None] * len(acts)
    widths = WIDTHS[len(acts)]
    model = _build(backend, acts, widths, loss, params, seed)
    rng = np.random.default_rng(seed + 100)
    weights = _perturb_weights(model, rng)
    x = _data(weights, acts, params, rng)
    y, dense = _targets(loss, rng, BATCH, widths[-1])

    value, grads = model.loss_and_gradients(x, y)
    assert isinstance(value, float)
    assert len(grads) == len(weights)
    for g, w in zip(grads, weights):
        assert g.shape == w.shape and g.dtype == np.float64

    ref_value, ref_grads = ref.loss_and_gradients(weights, acts, x, dense,
                                                  loss.replace("_onehot", ""), params)
    assert value == pytest.approx(ref_value, rel=1e-12, abs=1e-14)
    for k, (g, r) in enumerate(zip(grads, ref_grads)):
        assert ref.rel_error(g, r) <= 1e-10, f"array {k} against the reference backprop"

    only = None if fd_layers is None else {i for l in fd_layers for i in (2 * l, 2 * l + 1)}
    fd = _finite_differences(model, weights, x, y, only)
    for k, (g, f) in enumerate(zip(grads, fd)):
        if only is None or k in only:
            err = ref.rel_error(g, f)
            assert err <= TOL, f"array {k} ({'W' if k % 2 == 0 else 'b'}{k // 2 + 1}): " \
                               f"relative error {err:.3g}"
    # the gradient does not move the weights
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))
    return grads


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("final", SMOOTH)
def test_final_activation(backend, final, loss, depth):
    hidden = ["tanh", "sigmoid"][: depth - 1]
    _check(backend, hidden + [final], loss, seed=depth)


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("loss, final", [("mse", "linear"), ("binary_cross_entropy", "sigmoid"),
                                         ("cross_entropy", "softmax"),
                                         ("cross_entropy_onehot", "linear")])
@pytest.mark.parametrize("hidden", SMOOTH)
def test_hidden_activation(backend, hidden, loss, final, depth):
    _check(backend, [hidden] * (depth - 1) + [final], loss, seed=10 + depth)


def test_activation_parameters(backend):
    """A LeakyReLU slope other than the default reaches the gradient."""
    grads = _check(backend, ["leaky_relu", "leaky_relu", "softmax"], "cross_entropy",
                   params=[0.2, 0.5, None], seed=3)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_activation_layers_equal_fused_form(backend):
    """Dense(units) followed by an activation layer has the gradients of Dense(units, act)."""
    rng = np.random.default_rng(7)
    layered = fnn.Sequential([fnn.Dense(5), fnn.LeakyReLU(alpha=0.2), fnn.Dense(4), fnn.Tanh(),
                              fnn.Dense(3), fnn.Sigmoid(), fnn.Dense(3), fnn.Softmax()],
                             input_dim=N_IN, seed=1, dtype="float64", backend=backend)
    layered.compile(loss="cross_entropy", optimizer="sgd")
    weights = [w + 0.3 * rng.normal(size=w.shape) for w in layered.get_weights()]
    layered.set_weights(weights)
    acts, params = ["leaky_relu", "tanh", "sigmoid", "softmax"], [0.2, None, None, None]
    x = _data(weights, acts, params, rng)
    labels = rng.integers(0, 3, size=BATCH)
    value, grads = layered.loss_and_gradients(x, labels)
    ref_value, ref_grads = ref.loss_and_gradients(weights, acts, x, ref.one_hot(labels, 3),
                                                  "cross_entropy", params)
    assert value == pytest.approx(ref_value, rel=1e-12)
    for g, r in zip(grads, ref_grads):
        assert ref.rel_error(g, r) <= 1e-10
    np.testing.assert_allclose(layered.predict(x), ref.forward(weights, acts, x, params)[1][-1],
                               rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- step
def test_step_single_layer_is_the_perceptron_rule(backend):
    """One Step layer with MSE: dL/dW = x.T @ (2 (step(xW + b) - y) / size), by hand."""
    model = _build(backend, ["step"], [3], "mse")
    rng = np.random.default_rng(0)
    weights = _perturb_weights(model, rng)
    x = _data(weights, ["step"], [None], rng)
    t = rng.integers(0, 2, size=(BATCH, 3)).astype(np.float64)
    out = (x @ weights[0] + weights[1] >= 0.5).astype(np.float64)
    assert np.array_equal(model.predict(x), out)
    value, (dW, db) = model.loss_and_gradients(x, t)
    delta = 2.0 * (out - t) / out.size
    assert value == pytest.approx(np.mean((out - t) ** 2), rel=1e-12)
    np.testing.assert_allclose(dW, x.T @ delta, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(db, delta.sum(axis=0), rtol=1e-12, atol=1e-15)
    assert np.linalg.norm(dW) > 0


@pytest.mark.parametrize("acts, params, loss, fd_layers", [
    (["step", "sigmoid"], [None, None], "binary_cross_entropy", [1]),
    (["tanh", "step", "linear"], [None, 0.2, None], "mse", [2]),
    (["step", "softmax"], [-0.3, None], "cross_entropy", [1]),
    (["sigmoid", "tanh", "step"], [None, None, 0.1], "mse", []),
])
def test_step_straight_through(backend, acts, params, loss, fd_layers):
    grads = _check(backend, acts, loss, params=params, seed=5, fd_layers=fd_layers)
    first_step = acts.index("step")
    # the gradient does flow back through the step (it is not the a.e. derivative 0)
    assert np.linalg.norm(grads[0]) > 0 and first_step >= 0
