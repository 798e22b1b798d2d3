"""Keras' Adagrad, Adamax and Nadam.

Each update kernel against its NumPy twin (bitwise, both dtypes, at 1 and 2 threads), against
Keras' own optimizer objects in float64 (and float32), against PyTorch in float64 where the two
define the same rule, against the rule written out by hand, training through fit and a model
file, and the bad settings and states they refuse.
"""

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import fast_available, get_backend

BACKENDS = ["numpy"] + (["fast"] if fast_available() else [])
needs_fast = pytest.mark.skipif(not fast_available(), reason="compiled backend not built")
DTYPES = [np.float32, np.float64]

CASES = {
    "adagrad": lambda: fnn.Adagrad(learning_rate=0.05),
    "adagrad_from_zero": lambda: fnn.Adagrad(0.05, initial_accumulator_value=0.0),
    "adamax": lambda: fnn.Adamax(learning_rate=0.02),
    "adamax_betas": lambda: fnn.Adamax(0.02, beta_1=0.5, beta_2=0.8),
    "nadam": lambda: fnn.Nadam(learning_rate=0.02),
    "nadam_betas": lambda: fnn.Nadam(0.02, beta_1=0.7, beta_2=0.95, epsilon=1e-5),
}


def _run(opt, backend, dtype, steps=7, n=1001, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n).astype(dtype)
    opt.build(n, dtype)
    for _ in range(steps):
        g = (rng.standard_normal(n) * 0.3).astype(dtype)
        g[::17] = 0                                  # zero gradients: u, a and v stay put
        opt.step(get_backend(backend), w, g)
    return w


@needs_fast
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_is_its_numpy_twin_bit_for_bit(dtype, case):
    results = []
    for backend in ("fast", "numpy"):
        opt = CASES[case]()
        results.append((_run(opt, backend, dtype), opt.state(), opt.iterations))
    (w0, s0, t0), (w1, s1, t1) = results
    assert np.array_equal(w0, w1)
    assert s0.keys() == s1.keys() and len(s0) >= 1
    for key in s0:
        assert np.array_equal(s0[key], s1[key]), key
    assert t0 == t1 == 7


@needs_fast
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_same_bits_at_any_thread_count(case):
    results = []
    for threads in (1, 2):
        with fnn.threads(threads):
            results.append(_run(CASES[case](), "fast", np.float32, steps=2, n=300_001))
    assert np.array_equal(results[0], results[1])


def _fastnn_steps(opt, w0, grads, backend):
    w = w0.copy()
    opt.build(w.size, w.dtype)
    for g in grads:
        opt.step(get_backend(backend), w, g.astype(w.dtype))
    return w


def _keras_steps(keras, make, w0, grads):
    var = keras.Variable(w0.copy(), dtype=w0.dtype.name)
    opt = make(keras.optimizers)
    for g in grads:
        opt.apply_gradients([(g.astype(w0.dtype), var)])
    return np.asarray(var)


# learning rates a float32 holds exactly: Keras keeps its rate in a float32 variable
KERAS_PAIRS = {
    "adagrad": (lambda k: k.Adagrad(learning_rate=0.0625),
                lambda: fnn.Adagrad(learning_rate=0.0625)),
    "adagrad_settings": (lambda k: k.Adagrad(0.125, initial_accumulator_value=0.5, epsilon=1e-3),
                         lambda: fnn.Adagrad(0.125, initial_accumulator_value=0.5, epsilon=1e-3)),
    "adamax": (lambda k: k.Adamax(learning_rate=0.015625),
               lambda: fnn.Adamax(learning_rate=0.015625)),
    "adamax_settings": (lambda k: k.Adamax(0.0078125, beta_1=0.6, beta_2=0.9, epsilon=1e-3),
                        lambda: fnn.Adamax(0.0078125, beta_1=0.6, beta_2=0.9, epsilon=1e-3)),
    "nadam": (lambda k: k.Nadam(learning_rate=0.015625),
              lambda: fnn.Nadam(learning_rate=0.015625)),
    "nadam_settings": (lambda k: k.Nadam(0.0078125, beta_1=0.8, beta_2=0.99, epsilon=1e-3),
                       lambda: fnn.Nadam(0.0078125, beta_1=0.8, beta_2=0.99, epsilon=1e-3)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(KERAS_PAIRS))
def test_keras_optimizer_gives_the_same_weights(keras, backend, case):
    """Keras' own optimizer objects (on its NumPy backend, which computes in float32 whatever
    the variable's dtype), the same float32 gradients, 12 steps: within a few float32 ulps
    (the momentum schedule's powers are computed apart). Gradients near eps make eps's
    placement matter; float64 is held to the rules written out and to PyTorch below."""
    make_keras, make_ours = KERAS_PAIRS[case]
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal(64)
    grads = rng.standard_normal((12, 64)) * np.logspace(-4, 0, 64)
    ref = _keras_steps(keras, make_keras, w0.astype(np.float32), grads)
    ours = _fastnn_steps(make_ours(), w0.astype(np.float32), grads, backend)
    np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nadam_is_pytorch_nadam_with_momentum_decay_one(backend):
    """Keras' schedule mu_t = b1 (1 - 0.5 * 0.96^t) is PyTorch's with momentum_decay=1; both add
    eps to sqrt(v_hat)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    w0, grads = rng.standard_normal(50), rng.standard_normal((30, 50))
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)      # else PyTorch keeps its mu product in float32
    try:
        p = torch.tensor(w0.copy(), requires_grad=True)
        opt = torch.optim.NAdam([p], lr=0.01, betas=(0.85, 0.99), eps=1e-7, momentum_decay=1.0)
        for g in grads:
            p.grad = torch.tensor(g)
            opt.step()
    finally:
        torch.set_default_dtype(saved)
    ours = _fastnn_steps(fnn.Nadam(0.01, beta1=0.85, beta2=0.99, eps=1e-7), w0, grads, backend)
    np.testing.assert_allclose(ours, p.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adagrad_and_adamax_match_pytorch_where_their_eps_agree(backend):
    """PyTorch adds Adagrad's eps to sqrt(a) and Adamax's to |g| inside the max: with eps
    negligible and the accumulator starting at 0 (PyTorch's default) the rules are the same."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    w0, grads = rng.standard_normal(40), rng.standard_normal((9, 40))
    for make_torch, ours in (
            (lambda q: torch.optim.Adagrad(q, lr=0.1, eps=0.0),
             fnn.Adagrad(0.1, initial_accumulator_value=0.0, eps=1e-300)),
            (lambda q: torch.optim.Adamax(q, lr=0.05, betas=(0.7, 0.9), eps=1e-150),
             fnn.Adamax(0.05, beta1=0.7, beta2=0.9, eps=1e-150))):
        p = torch.tensor(w0.copy(), requires_grad=True)
        opt = make_torch([p])
        for g in grads:
            p.grad = torch.tensor(g)
            opt.step()
        np.testing.assert_allclose(_fastnn_steps(ours, w0, grads, backend), p.detach().numpy(),
                                   rtol=1e-12)


def test_the_rules_written_out():
    """Two steps by hand (float64), independent of every implementation above."""
    w0, g1, g2 = np.array([1.0, -2.0]), np.array([0.5, -1.0]), np.array([-0.25, 2.0])
    a1 = 0.1 + g1 ** 2
    a2 = a1 + g2 ** 2
    w = w0 - 0.1 * g1 / np.sqrt(a1 + 1e-7)
    w = w - 0.1 * g2 / np.sqrt(a2 + 1e-7)
    assert np.allclose(_fastnn_steps(fnn.Adagrad(0.1), w0, [g1, g2], "numpy"), w, rtol=1e-15)

    m1, u1 = 0.1 * g1, np.abs(g1)
    m2, u2 = 0.9 * m1 + 0.1 * g2, np.maximum(0.999 * u1, np.abs(g2))
    w = w0 - 0.1 * m1 / ((1 - 0.9) * (u1 + 1e-7))
    w = w - 0.1 * m2 / ((1 - 0.81) * (u2 + 1e-7))
    assert np.allclose(_fastnn_steps(fnn.Adamax(0.1), w0, [g1, g2], "numpy"), w, rtol=1e-14)

    mu = [0.9 * (1 - 0.5 * 0.96 ** t) for t in (1, 2, 3)]
    m1, v1 = 0.1 * g1, 0.001 * g1 ** 2
    m2, v2 = 0.9 * m1 + 0.1 * g2, 0.999 * v1 + 0.001 * g2 ** 2
    mh1 = mu[1] * m1 / (1 - mu[0] * mu[1]) + (1 - mu[0]) * g1 / (1 - mu[0])
    mh2 = mu[2] * m2 / (1 - mu[0] * mu[1] * mu[2]) + (1 - mu[1]) * g2 / (1 - mu[0] * mu[1])
    w = w0 - 0.1 * mh1 / (np.sqrt(v1 / 0.001) + 1e-7)
    w = w - 0.1 * mh2 / (np.sqrt(v2 / (1 - 0.999 ** 2)) + 1e-7)
    assert np.allclose(_fastnn_steps(fnn.Nadam(0.1), w0, [g1, g2], "numpy"), w, rtol=1e-14)


def test_nadam_products_after_a_jump_in_iterations():
    """The running product resumes from any step count (a loaded model): the same value as
    stepping there, and the tail of the schedule is beta1 itself."""
    opt = fnn.Nadam()
    stepped = [opt._product(t) for t in range(1, 3001)]
    fresh = fnn.Nadam()
    assert fresh._product(2500) == pytest.approx(stepped[2499], rel=1e-12)
    assert fresh._product(3000) == pytest.approx(stepped[2999], rel=1e-12)
    assert fnn.Nadam()._product(2 ** 40) == 0.0          # underflows, as Keras' float product


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["adagrad", "adamax", "nadam"])
def test_they_learn_the_digits(backend, name):
    X, y = fnn.datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order] / 16.0, y[order]
    model = fnn.Sequential([fnn.Dense(32, activation="relu"), fnn.Dense(10, activation="softmax")],
                           input_dim=64, seed=0, backend=backend)
    rate = {"adagrad": 0.1, "adamax": 0.02, "nadam": 0.01}[name]
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer={"name": name, "learning_rate": rate}, metrics=["accuracy"])
    model.fit(X[:1400], y[:1400], epochs=8, batch_size=32, verbose=0)
    assert model.evaluate(X[1400:], y[1400:])["accuracy"] > 0.95     # Adam: 0.977


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make", [lambda: fnn.Adagrad(0.05, initial_accumulator_value=0.2),
                                  lambda: fnn.Adamax(0.01, beta_1=0.8),
                                  lambda: fnn.Nadam(0.01, beta_2=0.99)],
                         ids=["adagrad", "adamax", "nadam"])
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
    model.fit(X, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    loaded.fit(X, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)
    assert loaded.optimizer.iterations == model.optimizer.iterations == 16


def test_configs_and_keras_names():
    assert fnn.Adagrad().get_config() == {"name": "adagrad", "lr": 0.001,
                                          "initial_accumulator_value": 0.1, "eps": 1e-7}
    assert fnn.Adamax().get_config() == {"name": "adamax", "lr": 0.001, "beta1": 0.9,
                                         "beta2": 0.999, "eps": 1e-7}
    assert fnn.Nadam().get_config() == {"name": "nadam", "lr": 0.001, "beta1": 0.9,
                                        "beta2": 0.999, "eps": 1e-7}
    for make in (fnn.Adagrad, fnn.Adamax, fnn.Nadam):
        config = make(learning_rate=0.01, epsilon=1e-5, clipnorm=1.0).get_config()
        assert fnn.optimizers.get_optimizer(config).get_config() == config
        assert make().weight_decay == 0.0
    nadam = fnn.optimizers.get_optimizer({"name": "nadam", "learning_rate": 0.1, "beta_1": 0.5})
    assert (nadam.lr, nadam.beta1, nadam.beta_1) == (0.1, 0.5, 0.5)
    assert isinstance(fnn.optimizers.get_optimizer("adamax"), fnn.Adamax)
    assert not isinstance(fnn.Adamax(), fnn.Adam)             # as in Keras: its own rule


def test_a_schedule_and_clipping_apply():
    sched = fnn.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    w0, g = np.array([1.0, -1.0]), np.array([[2.0, 2.0]] * 2)
    ours = _fastnn_steps(fnn.Adagrad(sched, initial_accumulator_value=0.0, eps=1e-300,
                                     clipvalue=1.0), w0, g, "numpy")
    # clipped to 1: a = 1 then 2; rates 0.1 then 0.05
    expected = w0 - 0.1 * 1 / np.sqrt(1.0) - 0.05 * 1 / np.sqrt(2.0)
    np.testing.assert_allclose(ours, expected, rtol=1e-15)


def test_adagrad_accumulator_stops_at_the_dtype_maximum():
    for backend in BACKENDS:
        opt = fnn.Adagrad(0.1, initial_accumulator_value=3e38)
        w = np.ones(3, dtype=np.float32)
        opt.build(3, np.float32)
        opt.step(get_backend(backend), w, np.full(3, 1e19, dtype=np.float32))
        assert np.all(np.isfinite(opt.state()["accumulator"]))
        assert np.all(opt.state()["accumulator"] == np.finfo(np.float32).max)
        assert np.all(np.isfinite(w))


BAD = [
    (lambda: fnn.Adagrad(initial_accumulator_value=-0.1), ValueError,
     r"initial_accumulator_value"),
    (lambda: fnn.Adagrad(initial_accumulator_value="0.1"), TypeError,
     r"initial_accumulator_value"),
    (lambda: fnn.Adagrad(eps=0.0), ValueError, r"eps"),
    (lambda: fnn.Adagrad(lr=0.1, learning_rate=0.1), TypeError, r"not both"),
    (lambda: fnn.Adagrad(initial_accumulator_value=1e300).build(3, "float32"), ValueError,
     r"initial_accumulator_value"),
    (lambda: fnn.Adamax(beta_1=1.0), ValueError, r"beta1"),
    (lambda: fnn.Adamax(beta2=1 - 1e-9).build(3, "float32"), ValueError, r"beta2.*below 1"),
    (lambda: fnn.Adamax(eps=1e-45).build(3, "float32"), ValueError, r"eps"),
    (lambda: fnn.Nadam(beta1=-0.1), ValueError, r"beta1"),
    (lambda: fnn.Nadam(lr=1.0, eps=1e-30).build(3, "float32"), ValueError, r"eps must be >"),
    (lambda: fnn.Nadam(epsilon=1e-7, eps=1e-7), TypeError, r"not both"),
    (lambda: setattr(fnn.Nadam(), "weight_decay", 0.1), AttributeError, r"weight_decay"),
    (lambda: fnn.optimizers.get_optimizer({"name": "adagrad", "rho": 0.9}), TypeError, r"rho"),
]


@pytest.mark.parametrize("call, exc, pattern", BAD)
def test_bad_settings_are_refused_by_name(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize("make, key, value, pattern", [
    (fnn.Adagrad, "accumulator", -1.0, r"'accumulator' must be >= 0"),
    (fnn.Adamax, "u", -1.0, r"'u' must be >= 0"),
    (fnn.Nadam, "v", -1.0, r"'v' must be >= 0"),
    (fnn.Nadam, "m", np.nan, r"'m' must be finite"),
    (fnn.Adamax, "m", 0.5, r"'m' must be 0 at iterations=0"),
])
def test_a_forged_state_is_refused(make, key, value, pattern):
    opt = make()
    w = np.zeros(4)
    opt.build(4, w.dtype)
    opt.state()[key][2] = value
    with pytest.raises(ValueError, match=pattern):
        opt.check_state(w)


def test_a_step_that_could_overflow_is_refused_and_changes_nothing():
    """A gradient past the screen takes the exact bound, which refuses this one (1e37 against
    weights near the float32 maximum), touching nothing."""
    for make in (lambda: fnn.Adagrad(1.0, initial_accumulator_value=0.0),
                 lambda: fnn.Adamax(1.0), lambda: fnn.Nadam(1.0)):
        opt = make()
        w = np.full(3, 3e38, dtype=np.float32)
        opt.build(3, np.float32)
        before = {k: v.copy() for k, v in opt.state().items()}
        with pytest.raises(FloatingPointError):
            opt.step(get_backend("numpy"), w, np.full(3, -1e37, dtype=np.float32))
        assert np.all(w == np.float32(3e38)) and opt.iterations == 0
        for key, arr in opt.state().items():
            assert np.array_equal(arr, before[key])
