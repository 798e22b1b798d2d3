"""Keras' losses and optimizers: mean absolute error, Huber, sample weights, value_and_grad,
RMSprop and AdamW, and the Keras argument names.

Each new kernel against its NumPy twin (both dtypes), against PyTorch in float64 (and against
Keras' own update rules written out where PyTorch differs), finite differences for the new
losses' gradients, model files, and a table of bad inputs.
"""

import numpy as np
import pytest

import fastnn as fnn
from fastnn import losses as L
from fastnn.backends import fast_available, get_backend

NP = get_backend("numpy")
BACKENDS = ["numpy"] + (["fast"] if fast_available() else [])
needs_fast = pytest.mark.skipif(not fast_available(), reason="compiled backend not built")
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
DTYPES = [np.float32, np.float64]
ALL_KINDS = range(L.CE_SOFTMAX + 1)


def _case(kind, dtype, n=37, m=3, seed=0):
    """(output, dense target) that suit the loss kind: probabilities where it reads them."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, m)) * 2
    if kind in (L.BCE_PROBS, L.BCE_SIGMOID):
        out = 1 / (1 + np.exp(-z))
    elif kind in (L.CE_PROBS, L.CE_SOFTMAX):
        out = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    else:
        out = z
    if kind >= L.CE_LOGITS:
        t = np.eye(m)[rng.integers(0, m, n)]
    elif kind >= L.BCE_LOGITS:
        t = rng.integers(0, 2, (n, m)).astype(float)
    else:
        t = rng.standard_normal((n, m))
    return np.ascontiguousarray(out, dtype=dtype), np.ascontiguousarray(t, dtype=dtype)


# --------------------------------------------------------------------------- kernels vs twins
@needs_fast
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,param", [(k, 1.0) for k in ALL_KINDS] + [(L.HUBER_KIND, 0.3)])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_kernel_matches_its_numpy_twin(dtype, kind, param, weighted):
    out, t = _case(kind, dtype)
    w = np.random.default_rng(1).random(out.shape[0]).astype(dtype) * 2 if weighted else None
    fast = get_backend("fast")
    g_fast, g_np = np.empty_like(out), np.empty_like(out)
    v_fast = fast.loss(kind, out, t, g_fast, w, param)
    v_np = NP.loss(kind, out, t, g_np, w, param)
    np.testing.assert_allclose(v_fast, v_np, rtol=RTOL[dtype])
    np.testing.assert_allclose(g_fast, g_np, rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-3)
    assert fast.loss(kind, out, t, None, w, param) == v_fast       # value alone: the same


@needs_fast
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_unit_weights_give_the_unweighted_result_bit_for_bit(dtype, kind):
    out, t = _case(kind, dtype, n=300)
    fast = get_backend("fast")
    g0, g1 = np.empty_like(out), np.empty_like(out)
    v0 = fast.loss(kind, out, t, g0)
    v1 = fast.loss(kind, out, t, g1, np.ones(out.shape[0], dtype))
    assert v0 == v1 and np.array_equal(g0, g1)


@needs_fast
@pytest.mark.parametrize("kind", [L.MAE_KIND, L.HUBER_KIND, L.BCE_LOGITS, L.CE_SOFTMAX])
def test_weighted_loss_is_the_same_at_any_thread_count(kind):
    out, t = _case(kind, np.float32, n=40000, m=4)        # above the kernels' parallel threshold
    w = np.random.default_rng(1).random(40000).astype(np.float32)
    results = []
    for threads in (1, 2):
        g = np.empty_like(out)
        with fnn.threads(threads):
            results.append((get_backend("fast").loss(kind, out, t, g, w, 0.5), g))
    assert results[0][0] == results[1][0] and np.array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_weights_follow_keras_sum_over_batch_size(backend, kind):
    """L = sum_i w_i l_i / n, l_i the sample's loss; the gradient of exactly that."""
    be = get_backend(backend)
    out, t = _case(kind, np.float64, n=9)
    w = np.random.default_rng(2).random(9) * 3
    w[4] = 0.0
    per_sample = np.empty(9)
    grads = np.empty_like(out)
    for i in range(9):                       # each sample alone: its loss is the n = 1 mean
        g = np.empty((1, out.shape[1]))
        per_sample[i] = be.loss(kind, out[i:i + 1], t[i:i + 1], g)
        grads[i] = g[0] * w[i] / 9
    g = np.empty_like(out)
    value = be.loss(kind, out, t, g, w)
    np.testing.assert_allclose(value, np.dot(w, per_sample) / 9, rtol=1e-12)
    np.testing.assert_allclose(g, grads, rtol=1e-12, atol=1e-300)


# --------------------------------------------------------------------------- PyTorch parity
def _torch_loss(torch, kind, out, t, delta=1.0):
    """The mean loss (reduction as fastnn's) in PyTorch, on y_pred as given."""
    if kind == L.MAE_KIND:
        return torch.nn.L1Loss()(out, t)
    if kind == L.HUBER_KIND:
        return torch.nn.HuberLoss(delta=delta)(out, t)
    if kind == L.MSE_KIND:
        return torch.nn.MSELoss()(out, t)
    if kind == L.BCE_PROBS:
        return torch.nn.BCELoss()(out, t)
    return -(t * torch.log(out)).sum(dim=1).mean()           # CE_PROBS


@pytest.mark.parametrize("loss,kind", [
    (fnn.MeanAbsoluteError(), L.MAE_KIND), (fnn.Huber(), L.HUBER_KIND),
    (fnn.Huber(delta=0.4), L.HUBER_KIND), (fnn.MeanSquaredError(), L.MSE_KIND),
    (fnn.BinaryCrossEntropy(), L.BCE_PROBS), (fnn.CrossEntropy(), L.CE_PROBS)])
@pytest.mark.parametrize("weighted", [False, True])
def test_value_and_grad_matches_pytorch(loss, kind, weighted):
    torch = pytest.importorskip("torch")
    out, t = _case(kind, np.float64, n=23, m=4)
    w = np.random.default_rng(3).random(23) * 2 if weighted else None
    value, grad = loss.value_and_grad(t, out, sample_weight=w)
    o = torch.tensor(out, requires_grad=True)
    tt = torch.tensor(t)
    if weighted:      # by hand: the per-sample losses (reduction none), weighted, over n
        per = {L.MAE_KIND: lambda: (o - tt).abs().mean(1),
               L.HUBER_KIND: lambda: torch.nn.HuberLoss(reduction="none",
                                                        delta=loss.param)(o, tt).mean(1),
               L.MSE_KIND: lambda: ((o - tt) ** 2).mean(1),
               L.BCE_PROBS: lambda: torch.nn.BCELoss(reduction="none")(o, tt).mean(1),
               L.CE_PROBS: lambda: -(tt * torch.log(o)).sum(1)}[kind]()
        ref = (torch.tensor(w) * per).sum() / 23
    else:
        ref = _torch_loss(torch, kind, o, tt, loss.param)
    ref.backward()
    np.testing.assert_allclose(value, ref.item(), rtol=1e-10)
    np.testing.assert_allclose(grad, o.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_torch_huber_is_keras_huber():
    """PyTorch's HuberLoss(delta) and Keras' huber(delta) are one function: d^2/2 inside,
    delta (|d| - delta/2) outside (Keras writes delta |d| - delta^2/2; PyTorch's threshold is
    |d| < delta, Keras' |d| <= delta: both branches agree there)."""
    torch = pytest.importorskip("torch")
    d = np.array([-3.0, -0.7, -0.5, 0.0, 0.2, 0.5, 2.5])
    delta = 0.5
    keras = np.where(np.abs(d) <= delta, 0.5 * d ** 2, delta * np.abs(d) - 0.5 * delta ** 2)
    t = torch.nn.HuberLoss(reduction="none", delta=delta)(torch.tensor(d), torch.zeros(7))
    np.testing.assert_allclose(keras, t.numpy(), rtol=1e-15)
    np.testing.assert_allclose(fnn.Huber(delta).value_and_grad(np.zeros(7), d)[0],
                               keras.mean(), rtol=1e-15)


@pytest.mark.parametrize("loss", [fnn.MeanAbsoluteError(), fnn.Huber(), fnn.Huber(delta=0.3)])
@pytest.mark.parametrize("weighted", [False, True])
def test_new_loss_gradients_match_finite_differences(loss, weighted):
    rng = np.random.default_rng(4)
    t = rng.standard_normal((6, 3))
    out = t + rng.choice([-1.0, 1.0], (6, 3)) * rng.uniform(0.05, 2.0, (6, 3))
    d = np.abs(out - t)
    assert np.all(np.abs(d - loss.param) > 1e-3)    # away from the kinks (0 and delta)
    w = rng.random(6) if weighted else None
    _, grad = loss.value_and_grad(t, out, w)
    h = 1e-6
    numeric = np.empty_like(out)
    for idx in np.ndindex(out.shape):
        up, down = out.copy(), out.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (loss(t, up, w) - loss(t, down, w)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- the loss API
def test_value_and_grad_reads_probabilities_as_given():
    p = np.array([[0.9], [0.2]])
    value, grad = fnn.losses.get("binary_crossentropy").value_and_grad([1, 0], p)
    assert value == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2, rel=1e-12)
    np.testing.assert_allclose(grad, [[-1 / 0.9 / 2], [1 / 0.8 / 2]], rtol=1e-12)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    for name in ("categorical_crossentropy", "sparse_categorical_crossentropy", "cross_entropy"):
        targets = [0, 2] if name.startswith("sparse") else np.eye(3)[[0, 2]]
        value, grad = fnn.losses.get(name).value_and_grad(targets, probs)
        assert value == pytest.approx(-(np.log(0.7) + np.log(0.8)) / 2, rel=1e-12)
        assert grad[0, 0] == pytest.approx(-1 / 0.7 / 2) and grad[0, 1] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_value_and_grad_keeps_shape_and_float_dtype(dtype):
    y = np.array([0.5, -1.0, 2.0], dtype=dtype)
    value, grad = fnn.Huber().value_and_grad([0, 0, 0], y)
    assert isinstance(value, float) and grad.shape == (3,) and grad.dtype == dtype
    _, grad = fnn.MeanAbsoluteError().value_and_grad([[1, 2]], [[3, 1]])      # ints: float64
    assert grad.dtype == np.float64 and grad.tolist() == [[0.5, -0.5]]


def test_value_and_grad_agrees_across_backends(monkeypatch):
    out, t = _case(L.HUBER_KIND, np.float32, n=50)
    w = np.linspace(0, 2, 50, dtype=np.float32)
    results = []
    for name in BACKENDS:
        monkeypatch.setattr("fastnn.backends.default_backend", lambda n=name: get_backend(n))
        results.append(fnn.Huber(0.5).value_and_grad(t, out, w))
    for value, grad in results[1:]:
        np.testing.assert_allclose(value, results[0][0], rtol=1e-5)
        np.testing.assert_allclose(grad, results[0][1], rtol=1e-5, atol=1e-9)


def test_names_aliases_and_configs():
    expected = {"mse": fnn.MeanSquaredError, "mean_squared_error": fnn.MeanSquaredError,
                "mae": fnn.MeanAbsoluteError, "mean_absolute_error": fnn.MeanAbsoluteError,
                "huber": fnn.Huber, "binary_crossentropy": fnn.BinaryCrossEntropy,
                "binary_cross_entropy": fnn.BinaryCrossEntropy,
                "categorical_crossentropy": fnn.CrossEntropy,
                "sparse_categorical_crossentropy": fnn.CrossEntropy,
                "cross_entropy": fnn.CrossEntropy}
    for name, cls in expected.items():
        loss = fnn.losses.get(name)
        assert type(loss) is cls and L.get_loss(name).name == loss.name
        assert type(L.get_loss(loss.get_config())) is cls
    assert len({cls.name for cls in expected.values()}) == len(L.LOSSES)     # one name each
    huber = L.get_loss({"name": "huber", "delta": 2.5})
    assert huber.delta == 2.5 and huber.get_config() == {"name": "huber", "delta": 2.5}
    assert repr(huber) == "Huber(delta=2.5)"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["mae", "mean_absolute_error", "huber"])
def test_new_losses_train_and_round_trip_through_files(backend, name, tmp_path):
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((40, 4)), rng.standard_normal((40, 2))
    model = fnn.Sequential([fnn.Dense(6, activation="tanh"), fnn.Dense(2)], input_dim=4, seed=0,
                           dtype="float64", backend=backend)
    model.compile(loss=name, optimizer=fnn.SGD(learning_rate=0.1))
    history = model.fit(X, Y, epochs=5, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "m.fnn")
    loaded = fnn.load(tmp_path / "m.fnn")
    assert type(loaded.loss) is type(model.loss)
    assert loaded.evaluate(X, Y) == model.evaluate(X, Y)


@needs_fast
@pytest.mark.parametrize("name", ["mae", "huber"])
def test_compiled_plan_agrees_with_the_per_kernel_path(name):
    """The compiled training plan takes the new codes through the shared loss rows; MAE and Huber
    average over the outputs (the plan's count for codes below CE_LOGITS) and take no labels."""
    rng = np.random.default_rng(6)
    X, Y = rng.standard_normal((48, 5)), rng.standard_normal((48, 3))
    models = []
    for planned in (True, False):
        model = fnn.Sequential([fnn.Dense(7, activation="relu"), fnn.Dense(3)], input_dim=5,
                               seed=2, backend="fast")
        model._compiled_steps = planned
        models.append(model.compile(loss=name, optimizer=fnn.SGD(lr=0.05, momentum=0.9)))
        model.fit(X, Y, epochs=3, batch_size=16, verbose=0)
    assert models[0]._train_plan and not models[1]._train_plan
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match=r"y must have shape \(n, 3\)"):
        models[0].train_on_batch(X[:4].astype(np.float32), np.array([0, 1, 2, 1]))


# --------------------------------------------------------------------------- optimizers
def _run(opt, backend, dtype, steps=6, n=257, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n).astype(dtype)
    opt.build(n, dtype)
    for _ in range(steps):
        opt.step(get_backend(backend), w, rng.standard_normal(n).astype(dtype) * 0.3)
    return w


OPTIMIZER_CASES = {
    "rmsprop": lambda: fnn.RMSprop(learning_rate=0.01),
    "rmsprop_momentum": lambda: fnn.RMSprop(0.01, momentum=0.9),
    "rmsprop_centered": lambda: fnn.RMSprop(0.01, rho=0.8, centered=True),
    "rmsprop_centered_momentum": lambda: fnn.RMSprop(0.01, momentum=0.5, centered=True),
    "adamw": lambda: fnn.AdamW(learning_rate=0.01, weight_decay=0.1),
}


@needs_fast
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_update_kernel_matches_its_numpy_twin(dtype, case):
    results = []
    for backend in ("fast", "numpy"):
        opt = OPTIMIZER_CASES[case]()
        results.append((_run(opt, backend, dtype), opt.state(), opt.iterations))
    (w0, s0, t0), (w1, s1, t1) = results
    np.testing.assert_allclose(w0, w1, rtol=RTOL[dtype])
    for key in s0:
        np.testing.assert_allclose(s0[key], s1[key], rtol=RTOL[dtype], atol=1e-30)
    assert t0 == t1 == 6


@needs_fast
@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_update_is_the_same_at_any_thread_count(case):
    results = []
    for threads in (1, 2):
        opt = OPTIMIZER_CASES[case]()
        with fnn.threads(threads):
            results.append(_run(opt, "fast", np.float32, steps=2, n=300_001))
    assert np.array_equal(results[0], results[1])


def _torch_steps(torch, make, w0, grads):
    p = torch.tensor(w0.copy(), requires_grad=True)
    opt = make([p])
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    return p.detach().numpy()


def _fastnn_steps(opt, w0, grads, backend):
    w = w0.copy()
    opt.build(w.size, w.dtype)
    for g in grads:
        opt.step(get_backend(backend), w, g)
    return w


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rmsprop_matches_pytorch_where_their_eps_agree(backend, centered, momentum):
    """PyTorch adds eps to sqrt(v), Keras (and fastnn) under the root: with eps negligible
    (PyTorch 0, fastnn 1e-300) the two are the same algorithm; PyTorch's momentum buffer leaves
    lr out, which is the same while lr is constant."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    w0, grads = rng.standard_normal(50), rng.standard_normal((8, 50))
    ref = _torch_steps(torch, lambda p: torch.optim.RMSprop(
        p, lr=0.01, alpha=0.85, eps=0.0, momentum=momentum, centered=centered), w0, grads)
    ours = _fastnn_steps(fnn.RMSprop(0.01, rho=0.85, momentum=momentum, eps=1e-300,
                                     centered=centered), w0, grads, backend)
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def _keras_rmsprop(w, grads, lr, rho, momentum, eps, centered):
    """Keras 3's RMSprop.update_step, written out in NumPy."""
    v, a, b = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for g in grads:
        v = rho * v + (1 - rho) * g ** 2
        if centered:
            a = rho * a + (1 - rho) * g
            denominator = v - a ** 2 + eps
        else:
            denominator = v + eps
        increment = lr * g / np.sqrt(denominator)
        if momentum > 0:
            b = momentum * b + increment
            w = w - b
        else:
            w = w - increment
    return w


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_is_keras_rmsprop(backend, centered):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    w0, grads = rng.standard_normal(40), rng.standard_normal((6, 40)) * 1e-3   # eps matters
    ours = _fastnn_steps(fnn.RMSprop(learning_rate=0.01, momentum=0.5, epsilon=1e-7,
                                     centered=centered), w0, grads, backend)
    keras = _keras_rmsprop(w0, grads, 0.01, 0.9, 0.5, 1e-7, centered)
    np.testing.assert_allclose(ours, keras, rtol=1e-12)
    ref = _torch_steps(torch, lambda p: torch.optim.RMSprop(
        p, lr=0.01, alpha=0.9, eps=1e-7, momentum=0.5, centered=centered), w0, grads)
    assert not np.allclose(ours, ref, rtol=1e-6)       # PyTorch's eps placement differs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("weight_decay", [0.0, 0.004, 0.3])
def test_adamw_matches_pytorch(backend, weight_decay):
    """Both decay the weights by lr * wd before the Adam step (Keras too), and both add eps to
    sqrt(v_hat)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    w0, grads = rng.standard_normal(60), rng.standard_normal((7, 60))
    ref = _torch_steps(torch, lambda p: torch.optim.AdamW(
        p, lr=0.02, betas=(0.8, 0.99), eps=1e-7, weight_decay=weight_decay), w0, grads)
    ours = _fastnn_steps(fnn.AdamW(0.02, weight_decay, beta_1=0.8, beta_2=0.99), w0, grads,
                         backend)
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_adamw_without_decay_is_adam():
    rng = np.random.default_rng(10)
    w0, grads = rng.standard_normal(30), rng.standard_normal((4, 30))
    a = _fastnn_steps(fnn.AdamW(weight_decay=0.0, eps=1e-8), w0, grads, "numpy")
    b = _fastnn_steps(fnn.Adam(), w0, grads, "numpy")
    assert np.array_equal(a, b)


def test_keras_argument_names_and_defaults():
    assert fnn.RMSprop().get_config() == {"name": "rmsprop", "lr": 0.001, "rho": 0.9,
                                          "momentum": 0.0, "eps": 1e-7, "centered": False}
    assert fnn.AdamW().get_config() == {"name": "adamw", "lr": 0.001, "weight_decay": 0.004,
                                        "beta1": 0.9, "beta2": 0.999, "eps": 1e-7}
    # files depend on these keys
    assert list(fnn.SGD(learning_rate=0.1).get_config()) == ["name", "lr", "momentum",
                                                             "nesterov", "weight_decay"]
    assert list(fnn.Adam().get_config()) == ["name", "lr", "beta1", "beta2", "eps",
                                             "weight_decay"]
    adam = fnn.Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-6)
    assert (adam.lr, adam.beta1, adam.beta2, adam.eps) == (0.01, 0.8, 0.95, 1e-6)
    adam.beta_1 = 0.7
    assert adam.beta1 == 0.7 and adam.epsilon == 1e-6 and adam.learning_rate == 0.01
    assert fnn.AdamW(0.01, 0.1).weight_decay == 0.1        # Keras' positional order
    for config in (fnn.RMSprop(momentum=0.3, centered=True).get_config(),
                   fnn.AdamW(weight_decay=0.2).get_config()):
        assert fnn.optimizers.get_optimizer(config).get_config() == config
    keras_named = fnn.optimizers.get_optimizer({"name": "rmsprop", "learning_rate": 0.1,
                                                "epsilon": 1e-6})
    assert (keras_named.lr, keras_named.eps) == (0.1, 1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make", [lambda: fnn.RMSprop(0.01, momentum=0.5, centered=True),
                                  lambda: fnn.AdamW(0.01)], ids=["rmsprop", "adamw"])
def test_training_resumes_from_a_model_file(backend, make, tmp_path):
    rng = np.random.default_rng(11)
    X, y = rng.standard_normal((32, 3)), rng.integers(0, 2, 32)
    model = fnn.Sequential([fnn.Dense(4, activation="relu"), fnn.Dense(1, activation="sigmoid")],
                           input_dim=3, seed=3, backend=backend, dtype="float64")
    model.compile(loss="binary_crossentropy", optimizer=make())
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "m.fnn")
    loaded = fnn.load(tmp_path / "m.fnn")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 8
    for m in (model, loaded):
        m.train_on_batch(X[:8], y[:8])
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)


def test_state_rules_and_overflow_screen():
    opt = fnn.RMSprop()
    opt.build(4, "float32")
    params = np.ones(4, np.float32)
    opt.check_state(params)
    opt.state()["mean_square"][1] = -1.0
    with pytest.raises(ValueError, match=r"'mean_square' must be >= 0"):
        opt.check_state(params)
    opt.state()["mean_square"][1] = 0.0
    opt.state()["momentum"][2] = 0.5
    with pytest.raises(ValueError, match=r"'momentum' must be 0 at iterations=0"):
        opt.check_state(params)
    for opt in (fnn.RMSprop(momentum=0.9, centered=True), fnn.AdamW()):
        opt.build(4, "float32")
        w = np.ones(4, np.float32)
        with pytest.raises(FloatingPointError):      # g^2 overflows float32
            opt.step(NP, w, np.full(4, 1e30, np.float32))
        assert np.array_equal(w, np.ones(4, np.float32)) and opt.iterations == 0


# --------------------------------------------------------------------------- bad inputs
BAD = [
    ("weight_negative", lambda: fnn.losses.get("mse").value_and_grad([1.0, 2.0], [0.0, 0.0],
                                                                     [1.0, -0.5]),
     ValueError, r"sample_weight must be >= 0. Received: sample_weight\[1\]=-0.5"),
    ("weight_nan", lambda: fnn.MeanAbsoluteError()([1.0, 2.0], [0.0, 0.0], [np.nan, 1.0]),
     ValueError, r"sample_weight must be finite"),
    ("weight_shape", lambda: fnn.Huber().value_and_grad([1.0, 2.0], [0.0, 0.0], [1.0]),
     ValueError, r"sample_weight must have shape \(2,\)"),
    ("weight_2d", lambda: fnn.Huber().value_and_grad([1.0, 2.0], [0.0, 0.0], [[1.0], [1.0]]),
     ValueError, r"sample_weight must have shape \(2,\)"),
    ("weight_text", lambda: fnn.Huber().value_and_grad([1.0], [0.0], ["a"]),
     TypeError, r"sample_weight must hold real numbers"),
    ("pred_3d", lambda: fnn.MeanAbsoluteError().value_and_grad(np.zeros((2, 1, 1)),
                                                               np.zeros((2, 1, 1))),
     ValueError, r"y_pred must have shape \(n,\) or \(n, m\)"),
    ("pred_empty", lambda: fnn.MeanAbsoluteError().value_and_grad([], []),
     ValueError, r"y_pred must have shape"),
    ("pred_inf", lambda: fnn.Huber().value_and_grad([0.0], [np.inf]),
     ValueError, r"y_pred must be finite"),
    ("true_rows", lambda: fnn.MeanAbsoluteError().value_and_grad([1.0, 2.0, 3.0], [0.0, 0.0]),
     ValueError, r"y_true must have one row per sample"),
    ("true_width", lambda: fnn.Huber().value_and_grad(np.zeros((2, 3)), np.zeros((2, 2))),
     ValueError, r"y_true must have shape \(n, 2\)"),
    ("label_range", lambda: fnn.CrossEntropy().value_and_grad([3], [[0.5, 0.5]]),
     ValueError, r"y_true labels must be in \[0, 1\]"),
    ("delta_zero", lambda: fnn.Huber(delta=0.0), ValueError, r"delta must be a finite number"),
    ("delta_nan", lambda: fnn.Huber(delta=float("nan")), ValueError, r"delta must be a finite"),
    ("delta_text", lambda: fnn.Huber(delta="1"), TypeError, r"delta must be a real number"),
    ("delta_float32", lambda: fnn.Huber(delta=1e20).value_and_grad(
        np.zeros(2, np.float32), np.zeros(2, np.float32)), ValueError, r"Huber: delta must be <"),
    ("loss_unknown", lambda: fnn.losses.get("hinge"), ValueError, r"loss must be one of"),
    ("loss_config_key", lambda: fnn.losses.get({"name": "mae", "delta": 2.0}),
     TypeError, r"loss config \{'name': 'mae', 'delta': 2.0\} does not suit"),
    ("sgd_both_lr", lambda: fnn.SGD(lr=0.1, learning_rate=0.1), TypeError,
     r"give lr or learning_rate .*not both"),
    ("adam_both_lr", lambda: fnn.Adam(0.1, learning_rate=0.1), TypeError, r"not both"),
    ("adam_both_beta", lambda: fnn.Adam(beta1=0.9, beta_1=0.9), TypeError,
     r"give beta1 or beta_1"),
    ("rmsprop_both_lr", lambda: fnn.RMSprop(lr=0.1, learning_rate=0.1), TypeError, r"not both"),
    ("rmsprop_both_eps", lambda: fnn.RMSprop(eps=1e-7, epsilon=1e-7), TypeError,
     r"give eps or epsilon"),
    ("adamw_both_lr", lambda: fnn.AdamW(lr=0.1, learning_rate=0.1), TypeError, r"not both"),
    ("rmsprop_rho_one", lambda: fnn.RMSprop(rho=1.0), ValueError, r"rho must be a finite"),
    ("rmsprop_rho_rounds_to_one", lambda: fnn.RMSprop(rho=1 - 1e-9).build(3, "float32"),
     ValueError, r"rho must round to a number below 1 in float32"),
    ("rmsprop_centered_int", lambda: fnn.RMSprop(centered=1), TypeError,
     r"centered must be True or False"),
    ("rmsprop_no_weight_decay", lambda: setattr(fnn.RMSprop(), "weight_decay", 0.1),
     AttributeError, r"weight_decay"),
    ("adamw_decay_flips", lambda: fnn.AdamW(learning_rate=0.5, weight_decay=3.0), ValueError,
     r"lr \* weight_decay must be <= 1"),
    ("adamw_decay_subnormal", lambda: fnn.AdamW(1e-20, 1e-20).build(3, "float32"), ValueError,
     r"lr \* weight_decay must be 0 or a float32 normal number|lr \* weight_decay must be a "
     r"float32 normal"),
    ("adamw_negative_decay", lambda: fnn.AdamW(weight_decay=-0.1), ValueError,
     r"weight_decay must be a finite number"),
]


@pytest.mark.parametrize("make,exc,pattern", [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])
def test_bad_input(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_refused_assignment_leaves_the_optimizer_unchanged(backend):
    opt = fnn.AdamW(learning_rate=0.1, weight_decay=5.0)
    with pytest.raises(ValueError, match=r"lr \* weight_decay"):
        opt.lr = 0.5
    assert opt.lr == 0.1
    opt = fnn.RMSprop(momentum=0.5)
    opt.build(3, "float32")
    with pytest.raises(ValueError, match="momentum must round"):
        opt.momentum = 1 - 1e-9
    assert opt.momentum == 0.5


def test_huber_delta_reaches_every_training_path_and_the_model_file():
    """Huber(delta) in a model: the compiled plan, the per-kernel path and the NumPy backend
    train the same (float64), the loss matches PyTorch's, and a saved model keeps its delta."""
    torch = pytest.importorskip("torch")
    from fastnn.io import model_from_bytes, model_to_bytes
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 4)), rng.standard_normal((32, 2)) * 3
    runs = {}
    for backend, plan in [("numpy", True), ("fast", True), ("fast", False)]:
        model = fnn.Sequential([fnn.Dense(8, activation="tanh"), fnn.Dense(2)], input_dim=4,
                               seed=0, dtype="float64", backend=backend)
        model._compiled_steps = plan
        model.compile(loss=fnn.losses.Huber(delta=0.5), optimizer=fnn.SGD(lr=0.1))
        out = model.predict(x)
        expected = float(torch.nn.HuberLoss(delta=0.5)(torch.tensor(out), torch.tensor(y)))
        assert model.evaluate(x, y)["loss"] == pytest.approx(expected, rel=1e-12)
        losses = [model.train_on_batch(x, y) for _ in range(3)]
        runs[(backend, plan)] = (losses, model.get_weights())
        same = model_from_bytes(model_to_bytes(model))
        assert same.loss.get_config() == {"name": "huber", "delta": 0.5}
        assert same.evaluate(x, y)["loss"] == model.evaluate(x, y)["loss"]
    assert runs[("fast", True)][0] == runs[("fast", False)][0]
    for key, (losses, weights) in runs.items():
        np.testing.assert_allclose(losses, runs[("numpy", True)][0], rtol=1e-12)
        for a, b in zip(weights, runs[("numpy", True)][1]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
