"""The compiled training step (TrainPlan) against the per-kernel path it replaces.

A fast-backend model normally trains through ``TrainPlan.step``: forward, loss, backward, the
gradient screen and the update in one call. The same model with its plan switched off
(``_compiled_steps = False``) trains through one kernel call per layer plus the loss and optimizer
kernels. Both must give bitwise-identical weights, optimizer state and losses -- the plan calls the
same routines in the same order -- for every optimizer setting, activation, loss, dtype, target
form and batch shape (including a short last batch), at 1 and 2 threads. The plan must also refuse
what it cannot take (so that the validating path raises its usual errors) and leave the model
untouched when it does.

The element-wise kernels of src_c/fnn_vec.c are compiled once per instruction set; a subprocess
per flavour checks that all flavours give bitwise-identical results.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn

OPTIMIZERS = {
    "sgd": lambda: fnn.SGD(lr=0.05),
    "momentum": lambda: fnn.SGD(lr=0.05, momentum=0.9),
    "nesterov_wd": lambda: fnn.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3),
    "adam": lambda: fnn.Adam(lr=2e-3),
    "adam_wd": lambda: fnn.Adam(lr=2e-3, beta1=0.5, beta2=0.9, weight_decay=1e-2),
    # gradient clipping, in the plan and on the per-kernel route (tests/test_clipping.py)
    "sgd_clipnorm": lambda: fnn.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3, clipnorm=0.05),
    "sgd_clipvalue": lambda: fnn.SGD(lr=0.05, clipvalue=0.01),
    "adam_global_clipnorm": lambda: fnn.Adam(lr=2e-3, global_clipnorm=0.1),
}

# (layers, loss, targets): targets "labels" (int64 classes) or "dense" (float rows)
NETWORKS = {
    "relu_softmax_ce": (lambda: [fnn.Dense(24, activation="relu"),
                                 fnn.Dense(5, activation="softmax")], "cross_entropy", "labels"),
    "tanh_logits_ce": (lambda: [fnn.Dense(16, activation="tanh"), fnn.Dense(4)],
                       "cross_entropy", "labels"),
    "sigmoid_bce": (lambda: [fnn.Dense(12, activation="leaky_relu"), fnn.Sigmoid(),
                             fnn.Dense(3, activation="sigmoid")],
                    "binary_cross_entropy", "dense"),
    "mse_linear": (lambda: [fnn.Dense(20, activation="sigmoid"), fnn.Dense(8),
                            fnn.ReLU(), fnn.Dense(2)], "mse", "dense"),
    "softmax_layer_probs_ce": (lambda: [fnn.Dense(10, activation="relu"), fnn.Dense(6),
                                        fnn.Softmax()], "cross_entropy", "dense"),
    # Keras' activations whose derivative the plan takes from y (silu's needs z: never planned)
    "elu_selu_softplus_ce": (lambda: [fnn.Dense(16, activation="elu"),
                                      fnn.Dense(12, activation="selu"), fnn.Dense(8),
                                      fnn.Activation("softplus"), fnn.Dense(4)],
                             "cross_entropy", "labels"),
}


def _pair(net, opt, dtype):
    layers, loss, _ = NETWORKS[net]
    models = []
    for _ in range(2):
        model = fnn.Sequential(layers(), input_dim=7, seed=3, dtype=dtype, backend="fast")
        model.compile(loss, OPTIMIZERS[opt]())
        models.append(model)
    models[1]._compiled_steps = False        # the per-kernel path
    return models


def _data(net, n, rng):
    _, loss, form = NETWORKS[net]
    X = rng.standard_normal((n, 7))
    n_out = {"relu_softmax_ce": 5, "tanh_logits_ce": 4, "sigmoid_bce": 3, "mse_linear": 2,
             "softmax_layer_probs_ce": 6, "elu_selu_softplus_ce": 4}[net]
    if form == "labels":
        y = rng.integers(0, n_out, n)
    elif loss == "binary_cross_entropy":
        y = (rng.random((n, n_out)) < 0.5).astype(float)
    elif loss == "cross_entropy":
        y = np.eye(n_out)[rng.integers(0, n_out, n)]
    else:
        y = rng.standard_normal((n, n_out))
    return X, y


def _state(model):
    return model.get_weights() + [a.copy() for a in model.optimizer.state().values()]


@pytest.mark.parametrize("net", sorted(NETWORKS))
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_fit_plan_equals_per_kernel_path(net, opt, dtype, threads):
    rng = np.random.default_rng(len(net) + len(opt))
    X, y = _data(net, 53, rng)                # 53 = 3 batches of 16 and a short one of 5
    planned, plain = _pair(net, opt, dtype)
    h1 = planned.fit(X, y, epochs=3, batch_size=16, verbose=0)
    h2 = plain.fit(X, y, epochs=3, batch_size=16, verbose=0)
    assert planned._train_plan, "the fast model did not build its compiled step"
    assert not plain._train_plan
    assert h1.history == h2.history
    for a, b in zip(_state(planned), _state(plain)):
        assert np.array_equal(a, b)
    if opt.startswith("adam"):
        assert planned.optimizer.iterations == plain.optimizer.iterations == 12


@pytest.mark.parametrize("net", sorted(NETWORKS))
def test_train_on_batch_plan_equals_per_kernel_path(net, dtype):
    rng = np.random.default_rng(7)
    planned, plain = _pair(net, "adam", dtype)
    for rows in (16, 16, 3, 16, 1):
        X, y = _data(net, rows, rng)
        X = X.astype(dtype)               # the plan's exact form; labels stay int64
        assert planned.train_on_batch(X, y) == plain.train_on_batch(X, y)
    for a, b in zip(_state(planned), _state(plain)):
        assert np.array_equal(a, b)


def test_label_fast_path_equals_one_hot_targets(dtype):
    rng = np.random.default_rng(1)
    a, b = _pair("relu_softmax_ce", "momentum", dtype)
    b._compiled_steps = True                  # both planned: labels vs validated one-hot rows
    for _ in range(4):
        X = rng.standard_normal((9, 7)).astype(dtype)
        labels = rng.integers(0, 5, 9)
        assert a.train_on_batch(X, labels) == b.train_on_batch(X, np.eye(5)[labels])
    for x, z in zip(_state(a), _state(b)):
        assert np.array_equal(x, z)


@pytest.mark.parametrize("bad", ["label_high", "label_negative", "nan_x", "inf_x"])
def test_refused_batches_raise_and_leave_the_model_untouched(bad):
    rng = np.random.default_rng(2)
    model = _pair("relu_softmax_ce", "momentum", "float32")[0]
    model.train_on_batch(rng.standard_normal((8, 7)).astype(np.float32), rng.integers(0, 5, 8))
    before = _state(model)
    X = rng.standard_normal((8, 7)).astype(np.float32)
    y = rng.integers(0, 5, 8)
    if bad == "label_high":
        y[3] = 5
    elif bad == "label_negative":
        y[0] = -1
    else:
        X[2, 4] = np.nan if bad == "nan_x" else np.inf
    with pytest.raises(ValueError, match=r"\by\b|\bx\b"):
        model.train_on_batch(X, y)
    for a, b in zip(before, _state(model)):
        assert np.array_equal(a, b)


def test_batch_larger_than_the_plan_rebuilds_it():
    rng = np.random.default_rng(4)
    planned, plain = _pair("tanh_logits_ce", "sgd", "float64")
    for rows in (4, 40, 4):                   # the workspace (and so the plan) grows at 40
        X, y = _data("tanh_logits_ce", rows, rng)
        assert planned.train_on_batch(X, y) == plain.train_on_batch(X, y)
    assert planned._train_plan.capacity == 40
    for a, b in zip(_state(planned), _state(plain)):
        assert np.array_equal(a, b)


def test_recompile_builds_a_new_plan_for_the_new_optimizer():
    rng = np.random.default_rng(5)
    X, y = _data("relu_softmax_ce", 20, rng)
    planned, plain = _pair("relu_softmax_ce", "momentum", "float64")
    planned.fit(X, y, epochs=1, batch_size=8, verbose=0)
    plain.fit(X, y, epochs=1, batch_size=8, verbose=0)
    first = planned._train_plan
    for m in (planned, plain):
        m.compile("cross_entropy", fnn.Adam(lr=1e-2))
    planned.fit(X, y, epochs=2, batch_size=8, verbose=0)
    plain.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert planned._train_plan is not first
    for a, b in zip(_state(planned), _state(plain)):
        assert np.array_equal(a, b)


def test_large_gradient_takes_the_exact_check():
    """A gradient past the screen makes the plan hand over to check_update, which raises when
    the update would overflow, before anything changes (float32, huge inputs and rate)."""
    model = fnn.Sequential([fnn.Dense(3)], input_dim=2, seed=0, backend="fast")
    model.compile("mse", fnn.SGD(lr=1e30))
    before = _state(model)
    X = np.full((4, 2), 1e18, dtype=np.float32)
    y = np.zeros((4, 3), dtype=np.float32)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError):
        model.train_on_batch(X, y)
    for a, b in zip(before, _state(model)):
        assert np.array_equal(a, b)


# Larger than NETWORKS: packed products with the epilogue fused into the micro-kernel and edge
# tiles ("deep": 300 -> 200 -> 40 -> 10 at batch 80), and one product split over threads whose
# output holds the largest gradient ("wide": dW is 300 x 80 x 200, past the GEMM's thread
# threshold, with inputs large enough that dW, not db, has the maximum).
LARGE = {"deep": (lambda: [fnn.Dense(200, activation="relu"),
                           fnn.Dense(40, activation="leaky_relu"),
                           fnn.Dense(10, activation="softmax")], "cross_entropy", 10, 1.0),
         "wide": (lambda: [fnn.Dense(200)], "mse", 200, 10.0)}


@pytest.mark.parametrize("net", sorted(NETWORKS) + sorted(LARGE))
def test_gradient_screen_is_the_max_of_the_whole_gradient(net, dtype, threads):
    """The plan's screen, max |g|, is gathered layer by layer from the GEMM's output tiles (dW)
    and the bias sums (db) as they are written: it must equal the maximum over the gradient
    buffer, for direct tiles, the fused micro-kernel epilogue, edge tiles and threads."""
    rng = np.random.default_rng(11)
    if net in LARGE:
        layers, loss, n_out, scale = LARGE[net]
        model = fnn.Sequential(layers(), input_dim=300, seed=5, dtype=dtype, backend="fast")
        model.compile(loss, fnn.SGD(lr=1e-3, momentum=0.9))
        X = scale * rng.standard_normal((80, 300))
        y = rng.integers(0, n_out, 80) if loss == "cross_entropy" else rng.random((80, n_out))
    else:
        model = _pair(net, "momentum", dtype)[0]
        X, y = _data(net, 23, rng)
    X = X.astype(dtype)
    for _ in range(3):
        model.train_on_batch(X, y)
        plan = model._train_plan
        assert plan is not None and plan.status == 0
        assert plan.max_grad == np.abs(model._grads).max()
    if net == "wide":
        g = np.abs(model._grads)
        assert g.argmax() < 300 * 200         # in dW


def test_a_gradient_overflowing_in_one_layer_takes_the_exact_check():
    """dW overflows to -inf (x = 1e30, dz ~ -1e9) while the loss and db stay finite: the screen
    must see the inf in the GEMM's tiles and hand over to check_update, which raises before
    anything changes."""
    model = fnn.Sequential([fnn.Dense(3)], input_dim=2, seed=0, backend="fast")
    model.compile("mse", fnn.SGD(lr=0.1, momentum=0.9))
    model.set_weights([np.zeros((2, 3), np.float32), np.zeros(3, np.float32)])
    before = _state(model)
    X = np.full((4, 2), 1e30, dtype=np.float32)
    y = np.full((4, 3), 1e10, dtype=np.float32)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError):
        model.train_on_batch(X, y)
    assert np.isnan(model._train_plan.max_grad)
    assert np.isneginf(model._grads[:6]).all() and np.isfinite(model._grads[6:]).all()
    for a, b in zip(before, _state(model)):
        assert np.array_equal(a, b)


_FLAVOUR_SCRIPT = r"""
import json, sys
import numpy as np
import itertools
from fastnn.backends import get_backend
fb = get_backend("fast")
rng = np.random.default_rng(0)
out = {"kernel": fb.kernel_name()}
for dt in ("float32", "float64"):
    n = 1031
    p, g = rng.standard_normal(n).astype(dt), rng.standard_normal(n).astype(dt)
    v, m, s = np.zeros(n, dt), np.zeros(n, dt), np.zeros(n, dt)
    for _ in range(3):
        fb.sgd_update(p, g, v, 0.05, 0.9, True, 1e-3)
        fb.adam_update(p, g, m, s, 2, 1e-3, 0.9, 0.999, 1e-7, 1e-2)
    x = rng.standard_normal((37, 11)).astype(dt)
    res = [p, v, m, s]
    # gradient clipping: the norms' fixed-order sums of squares, the scale and clamp passes
    bounds = np.array([0, 5, 16, 17, 600, n], dtype=np.int64)
    for setting in ((0.5, 0, 0), (0, 0.3, 0), (0, 0, 0.7)):
        clipped = np.zeros(n, dt)
        fb.clip_gradients(g * 7, clipped, bounds, *setting)
        res.append(clipped)
    # linear, step, sigmoid, tanh, relu, leaky relu, elu, selu, softplus, silu; a row narrower
    # than a vector, and 64 columns plus a tail; dz written apart from dy and over it
    for act, cols, in_place in itertools.product((0, 1, 2, 3, 4, 5, 10, 11, 12, 13), (13, 70),
                                                 (False, True)):
        w = rng.standard_normal((11, cols)).astype(dt)
        z = rng.standard_normal((37, cols)).astype(dt)      # not from a product: the GEMM
        y = fb.activation_forward(z, act, 0.1, np.empty_like(z))   # differs by flavour
        dy = rng.standard_normal((37, cols)).astype(dt)
        dz = dy if in_place else np.empty_like(dy)
        dw, db = np.empty((11, cols), dt), np.empty(cols, dt)
        fb.dense_backward(x, w, y, dy, act, 0.1, dz, dw, db, None)
        res += [dz, db]
    # the GEMM epilogue of every flavour on exact products (small integers: any order of the
    # sums gives the same z) and the element-wise loops after it
    xi = rng.integers(-3, 4, (23, 9)).astype(dt)
    wi = rng.integers(-3, 4, (9, 37)).astype(dt) / 4
    bi = rng.integers(-8, 9, 37).astype(dt) / 8
    for act in (2, 3, 7, 8, 10, 11, 12, 13):
        res.append(fb.dense_forward(xi, wi, bi, act, 1.0, np.empty((23, 37), dt)))
        z = fb.dense_forward(xi, wi, bi, 0, 0.0, np.empty((23, 37), dt))
        res.append(fb.activation_forward(z, act, 1.0, np.empty_like(z)))
    # softmax: 16-row (AVX-512) and 8-row (AVX2) blocks with row tails, a whole and a partial
    # vector of columns, wide rows
    for shape in ((29, 10), (16, 16), (5, 1), (6, 37), (11, 8), (9, 3), (8, 12)):
        z = rng.standard_normal(shape).astype(dt) * 30
        res.append(fb.activation_forward(z, 6, 0.0, np.empty_like(z)))
    out[dt] = [a.tobytes().hex() for a in res]
json.dump(out, sys.stdout)
"""


def _flavour_results(kernel):
    env = dict(os.environ, FASTNN_KERNEL=kernel)
    done = subprocess.run([sys.executable, "-c", _FLAVOUR_SCRIPT], env=env, check=True,
                          capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout)


def test_element_wise_kernels_are_bitwise_equal_across_instruction_sets():
    """dz/db, SGD, Adam, gradient clipping and softmax give the same bits from the portable, AVX2 and AVX-512
    builds of the element-wise kernels (whichever this CPU can run; at least two)."""
    runs = {}
    for kernel in ("generic", "avx2", "avx512"):
        result = _flavour_results(kernel)
        runs.setdefault(result.pop("kernel"), result)   # an unsupported request falls back
    assert "generic" in runs and len(runs) >= 2 or os.uname().machine not in ("x86_64", "AMD64")
    first = next(iter(runs.values()))
    for name, result in runs.items():
        for dt in ("float32", "float64"):
            differ = [i for i, (a, b) in enumerate(zip(result[dt], first[dt])) if a != b]
            assert not differ, f"{name} differs from {next(iter(runs))}: {dt} arrays {differ}"


def test_fast_exp_accuracy():
    """Softmax's vectorised float exp: within 2 ulp of the correctly rounded exp over the normal
    float range (the division adds up to 1 more); results below the smallest normal number are
    flushed to zero (the kernels run in flush-to-zero mode on x86, src_c/fnn_ftz.h)."""
    from fastnn.backends import get_backend
    fb = get_backend("fast")
    z = np.concatenate([np.linspace(-104.0, 0.0, 200001), -np.logspace(-8, 2, 1001), [0.0]])
    z = z.astype(np.float32)
    rows = np.stack([z, np.zeros_like(z)], axis=1)       # softmax([z, 0]) = e^z / (e^z + 1)
    got = fb.activation_forward(rows, 6, 0.0, np.empty_like(rows))[:, 0].astype(np.float64)
    e = np.exp(z.astype(np.float64))
    exact = e / (e + 1.0)
    tiny = np.finfo(np.float32).tiny
    normal = exact >= tiny * 1.0001
    ulp = np.spacing(exact[normal].astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[normal] - exact[normal]) / ulp) <= 3.0
    below = exact < tiny * 0.9999
    assert below.any()
    if os.uname().machine in ("x86_64", "AMD64"):
        assert np.all(got[below] == 0)
    else:
        assert np.all(np.abs(got[below] - exact[below]) <= 2 ** -149 * 3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_updates_flush_subnormals_and_restore_the_fp_mode(dtype):
    """SGD and Adam flush subnormal state to zero (the slow x86 path of dead units' decaying
    momentum), and every kernel leaves the caller's floating-point mode as it was."""
    from fastnn.backends import get_backend
    fb = get_backend("fast")
    tiny = np.finfo(dtype).tiny                      # smallest normal number
    n = 64
    p = np.ones(n, dtype)
    g = np.zeros(n, dtype)
    v = np.full(n, tiny * 0.5, dtype)                # subnormal momentum of a dead unit
    fb.sgd_update(p, g, v, 0.1, 0.9, False, 0.0)
    if os.uname().machine in ("x86_64", "AMD64"):
        assert np.all(v == 0)
    else:                                            # no FTZ switch elsewhere: plain IEEE
        assert np.all(v == np.asarray(tiny * 0.5 * 0.9, dtype))
    m, s = np.full(n, tiny * 0.5, dtype), np.full(n, tiny * 0.25, dtype)
    fb.adam_update(p, g, m, s, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0)
    assert np.all(np.isfinite(p))
    x = np.full((3, 4), tiny, dtype)
    fb.matmul(x, np.full((4, 2), 0.1, dtype), np.empty((3, 2), dtype))
    fb.activation_forward(x, 2, 0.0, np.empty_like(x))
    fb.loss(0, x, np.zeros_like(x), np.empty_like(x))
    model = fnn.Sequential([fnn.Dense(2)], input_dim=4, dtype=dtype, backend="fast")
    model.compile("mse", "sgd")
    model.train_on_batch(x, np.zeros((3, 2), dtype))
    model.predict(x)
    # the mode is restored: NumPy in this thread still produces subnormals
    half = np.asarray(tiny, dtype) * np.asarray(0.5, dtype)
    assert 0 < half < tiny


def test_a_changed_optimizer_state_rebuilds_the_plan():
    """The optimizer's state buffers rebuilt under a compiled model (``optimizer.build``, as a
    user resetting it does): the model's plan must follow them (as the per-kernel path does)
    instead of updating buffers the optimizer no longer holds."""
    rng = np.random.default_rng(9)
    X, y = _data("relu_softmax_ce", 16, rng)
    planned, plain = _pair("relu_softmax_ce", "momentum", "float64")
    for m in (planned, plain):
        m.train_on_batch(X, y)
        size = m.optimizer.state()["velocity"].size
        m.optimizer.build(size, "float64")            # new zeroed state buffers
    for _ in range(3):
        assert planned.train_on_batch(X, y) == plain.train_on_batch(X, y)
    for a, b in zip(_state(planned), _state(plain)):
        assert np.array_equal(a, b)


def test_one_optimizer_is_refused_by_a_second_model():
    """Sharing one optimizer object between two live models is refused at compile (its state
    belongs to one model); the first model's plan keeps its state."""
    rng = np.random.default_rng(9)
    X, y = _data("relu_softmax_ce", 16, rng)
    planned, plain = _pair("relu_softmax_ce", "momentum", "float64")
    for m in (planned, plain):
        m.train_on_batch(X, y)
        other = fnn.Sequential([fnn.Dense(24, activation="relu"),
                                fnn.Dense(5, activation="softmax")], input_dim=7, seed=3,
                               dtype="float64")
        with pytest.raises(ValueError, match="already trains another model"):
            other.compile("cross_entropy", m.optimizer)
    for _ in range(3):
        assert planned.train_on_batch(X, y) == plain.train_on_batch(X, y)
    for a, b in zip(_state(planned), _state(plain)):
        assert np.array_equal(a, b)


class _Silent(fnn.Callback):
    """Does nothing; its presence makes fit take the Python batch loop."""


def _epoch_case(case, opt, dtype):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((61, 8))                 # 7 batches of 9, the last one of 7
    y = X @ rng.standard_normal((8, 1)) + 0.1 * rng.standard_normal((61, 1))
    lr = {"plain": 0.01, "diverges": 1e4 if opt == "momentum" else None}.get(case)
    if case == "diverges" and opt == "adam":
        lr = 1e12 if dtype == "float32" else 1e200
    if case == "exact_check":
        # gradients past the screen (sqrt(max) / 1000) with an update far from overflowing:
        # every step hands over to check_update, which applies it
        scale, lr = (1e9, 1e-20) if dtype == "float32" else (1e76, 1e-160)
        X = X * scale
    optimizer = (fnn.SGD(lr=lr, momentum=0.9) if opt == "momentum" else fnn.Adam(lr=lr))
    model = fnn.Sequential([fnn.Dense(16, activation="relu"), fnn.Dense(1)], input_dim=8,
                           seed=0, dtype=dtype, backend="fast")
    model.compile("mse", optimizer)
    return model, X, y


@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
@pytest.mark.parametrize("case", ["plain", "exact_check", "diverges"])
@pytest.mark.parametrize("opt", ["momentum", "adam"])
def test_epoch_runner_equals_the_batch_loop(case, opt, dtype, chunked):
    """fit without callbacks, metrics or progress output runs each epoch as compiled calls
    (TrainPlan.run_epoch): weights, optimizer state and History must equal the Python batch
    loop's (taken when any callback is given) bit for bit, also when steps go through the exact
    update check, and when training diverges the error names the same epoch and batch.
    "chunked": run_epoch returns to Python after every batch (as it does every few tens of
    milliseconds in a long epoch, so that Ctrl-C is seen) and fit calls it again."""
    runs = []
    for callbacks in ([], [_Silent()]):
        model, X, y = _epoch_case(case, opt, dtype)
        if chunked:
            model._compiled_step(9).chunk_work = 1.0     # the plan fit will use
        with np.errstate(all="ignore"):
            try:
                result = model.fit(X, y, epochs=6, batch_size=9, verbose=0,
                                   callbacks=callbacks).history
            except FloatingPointError as exc:
                result = str(exc)
        runs.append((result, _state(model), getattr(model.optimizer, "iterations", None)))
        if case == "exact_check":
            assert model._train_plan.status == 2      # the last step took the exact check
    (r1, s1, o1), (r2, s2, o2) = runs
    if case == "diverges":
        assert isinstance(r1, str) and "epoch" in r1 and "batch" in r1
    assert r1 == r2
    for a, b in zip(s1, s2):
        assert np.array_equal(a, b)
    assert o1 == o2                                   # Adam's step count


@pytest.mark.parametrize("limit", ["none", "work", "seconds"])
def test_epoch_runner_returns_after_its_work_or_time_limit(limit, dtype):
    """run_epoch stops after the batch that reaches chunk_work multiply-adds or chunk_seconds
    of time (whichever comes first; a slow machine or build reaches the time first), with the
    batches left for the next call; with neither reached it runs the whole epoch."""
    model, X, y = _epoch_case("plain", "momentum", dtype)
    plan = model._compiled_step(9)
    plan.chunk_work, plan.chunk_seconds = 1e30, 1e9
    if limit == "work":
        plan.chunk_work = 1.0
    elif limit == "seconds":
        plan.chunk_seconds = 0.0
    hyper = model._plan_hyper()
    Xs, Ts = np.ascontiguousarray(X, dtype), np.ascontiguousarray(y, dtype)
    count, status, total, value = plan.run_epoch(Xs, Ts, 9, 0, 0.0, *hyper)
    assert status == 0 and np.isfinite(total) and total > 0
    assert count == (-(-X.shape[0] // 9) if limit == "none" else 1)


def test_ctrl_c_interrupts_a_long_compiled_epoch():
    """One epoch of ~0.5 G multiply-adds per batch (seconds in all) runs as compiled calls;
    they return to Python every few tens of milliseconds, so a Ctrl-C (here interrupt_main from
    a timer) stops fit long before the epoch would end."""
    import _thread
    import threading
    import time

    rng = np.random.default_rng(0)
    X = rng.standard_normal((8192, 512)).astype(np.float32)
    y = rng.integers(0, 10, 8192)
    model = fnn.Sequential([fnn.Dense(2048, activation="relu"),
                            fnn.Dense(2048, activation="relu"),
                            fnn.Dense(10, activation="softmax")], input_dim=512, seed=0)
    model.compile("cross_entropy", fnn.SGD(lr=0.01, momentum=0.9))
    epoch_work = 3 * model.count_params() * 8192          # multiply-adds, forward + backward
    assert epoch_work > 10 * model._compiled_step(32).chunk_work   # many chunks in one epoch
    timer = threading.Timer(0.3, _thread.interrupt_main)
    with fnn.threads(1):
        started = time.perf_counter()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, y, epochs=1, batch_size=32, verbose=0)
        elapsed = time.perf_counter() - started
    timer.cancel()
    # the whole epoch takes ~3 s on the reference machine; a chunk ~60 ms
    assert elapsed < 2.0, f"fit ran {elapsed:.2f} s after the interrupt was raised at 0.3 s"
