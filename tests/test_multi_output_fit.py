"""compile/fit/evaluate of a model with several outputs (Keras 3's forms): against Keras 3 in
float64 (a subprocess on its torch backend, tests/_keras_multi_output_worker.py), gradients
against PyTorch's autograd and central differences, the backends and thread counts against each
other, the list and dict forms against each other, untrained outputs, per-output sample weights
by hand, callbacks on the per-output keys, files and pickles, learning on the digits, and a
table of bad inputs.
"""

import csv
import json
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn

BACKENDS = ["fast", "numpy"]
N, D, HIDDEN, CLASSES, TARGETS = 20, 4, 5, 3, 2


def _model(backend="fast", dtype="float64", seed=0):
    """Input (4) -> Dense 5 tanh ('hid') -> 'out_a' Dense 3 softmax and 'out_b' Dense 2."""
    inp = fnn.Input((D,))
    h = fnn.Dense(HIDDEN, activation="tanh", name="hid")(inp)
    a = fnn.Dense(CLASSES, activation="softmax", name="out_a")(h)
    b = fnn.Dense(TARGETS, name="out_b")(h)
    return fnn.Model(inp, [a, b], seed=seed, dtype=dtype, backend=backend)


def _data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, D)), rng.integers(0, CLASSES, n),
            rng.standard_normal((n, TARGETS)))


def _compiled(backend="fast", lr=0.1, weight_b=0.5, dtype="float64", **kwargs):
    kwargs.setdefault("metrics", [["accuracy"], ["mae"]])
    return _model(backend, dtype).compile(
        loss=["sparse_categorical_crossentropy", "mse"], optimizer=fnn.SGD(lr=lr),
        loss_weights=[1.0, weight_b], **kwargs)


# --------------------------------------------------------------------------- Keras 3
@pytest.fixture(scope="module")
def keras_results(tmp_path_factory):
    import importlib.util
    for name in ("keras", "torch"):            # not imported here: the subprocess does
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed")
    folder = tmp_path_factory.mktemp("keras_multi_output")
    X, ya, yb = _data()
    rng = np.random.default_rng(7)
    weights = _model().get_weights()
    source, target = folder / "in.npz", folder / "out.npz"
    np.savez(source, X=X, ya=ya, yb=yb, lr=0.1, weight_b=0.5, epochs=2, batch_size=8,
             swa=rng.uniform(0, 2, N), swb=rng.uniform(0, 2, N),
             **{f"w{i}": w for i, w in enumerate(weights)})
    worker = pathlib.Path(__file__).parent / "_keras_multi_output_worker.py"
    run = subprocess.run([sys.executable, str(worker), str(source), str(target)],
                         env=dict(os.environ, KERAS_BACKEND="torch"), capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    with open(str(target) + ".json") as f:
        keys = json.load(f)
    return dict(np.load(source)), dict(np.load(target)), keys


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_matches_keras(backend, keras_results):
    data, keras, keys = keras_results
    model = _compiled(backend)
    model.set_weights([data[f"w{i}"] for i in range(6)])
    scores = model.evaluate(data["X"], [data["ya"], data["yb"]])
    for key, ref in (("out_a_loss", "loss_a"), ("out_b_loss", "loss_b"), ("loss", "total")):
        assert scores[key] == pytest.approx(float(keras[ref]), rel=1e-10, abs=0), key
    assert set(scores) == set(keys["evaluate_keys"])
    # Keras' own evaluate sums in float32 trackers: its list (Keras' order: the losses, then
    # the metrics) to 1e-6
    listed = model.evaluate(data["X"], [data["ya"], data["yb"]], return_dict=False)
    np.testing.assert_allclose(listed, keras["evaluate"], rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_matches_keras(backend, keras_results):
    data, keras, keys = keras_results
    model = _compiled(backend)
    model.set_weights([data[f"w{i}"] for i in range(6)])
    history = model.fit(data["X"], [data["ya"], data["yb"]], epochs=2, batch_size=8,
                        shuffle=False, verbose=0,
                        validation_data=(data["X"], [data["ya"], data["yb"]]))
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, keras[f"fit_{i}"], rtol=1e-10, atol=1e-13)
    assert set(history.history) == set(keys["history_keys"])
    for key in keys["history_keys"]:      # Keras' trackers are float32
        np.testing.assert_allclose(history.history[key], keras[f"history_{key}"], rtol=2e-6,
                                   err_msg=key)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_with_per_output_sample_weights_matches_keras(backend, keras_results):
    data, keras, _ = keras_results
    model = _compiled(backend)
    model.set_weights([data[f"w{i}"] for i in range(6)])
    model.fit(data["X"], [data["ya"], data["yb"]], epochs=2, batch_size=8, shuffle=False,
              verbose=0, sample_weight=[data["swa"], data["swb"]])
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, keras[f"sw_fit_{i}"], rtol=1e-10, atol=1e-13)


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("weighted", [False, True])
def test_gradients_match_torch_autograd(backend, weighted):
    torch = pytest.importorskip("torch")
    X, ya, yb = _data(3)
    sw = np.random.default_rng(4).uniform(0, 2, (2, N)) if weighted else np.ones((2, N))
    model = _compiled(backend, weight_b=0.7)
    if weighted:
        model.fit(X, [ya, yb], epochs=1, batch_size=N, shuffle=False, verbose=0,
                  sample_weight={"out_a": sw[0], "out_b": sw[1]})
        model.set_weights(_model(backend).get_weights())
    params = [torch.tensor(w, requires_grad=True) for w in model.get_weights()]
    x = torch.tensor(X)
    h = torch.tanh(x @ params[0] + params[1])
    p = torch.softmax(h @ params[2] + params[3], dim=1)
    o = h @ params[4] + params[5]
    ce = -torch.log(p[torch.arange(N), torch.tensor(ya)])
    se = ((o - torch.tensor(yb)) ** 2).mean(dim=1)
    loss = (torch.tensor(sw[0]) * ce).mean() + 0.7 * (torch.tensor(sw[1]) * se).mean()
    loss.backward()
    if weighted:      # loss_and_gradients has no weights: one weighted step's gradients
        before = model.get_weights()
        model.fit(X, [ya, yb], epochs=1, batch_size=N, shuffle=False, verbose=0,
                  sample_weight=[sw[0], sw[1]])
        grads = [(b - a) / 0.1 for a, b in zip(model.get_weights(), before)]
        value = None
    else:
        value, grads = model.loss_and_gradients(X, [ya, yb])
        assert value == pytest.approx(loss.item(), rel=1e-12)
    for g, t in zip(grads, params):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9 if weighted else 1e-10,
                                   atol=1e-12)


def test_gradients_match_central_differences():
    X, ya, yb = _data(5)
    model = _compiled("numpy", weight_b=0.3, metrics=None)
    _, grads = model.loss_and_gradients(X, [ya, yb])
    weights = model.get_weights()

    def loss():
        model.set_weights(weights)
        return model.evaluate(X, [ya, yb])["loss"]
    from _finite_differences import central_differences
    for w, g in zip(weights, grads):
        np.testing.assert_allclose(g, central_differences(loss, w), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_saturated_softmax_head_keeps_its_gradient(backend):
    """float32, a confidently wrong softmax head (the true class' probability underflows):
    its loss fuses with the softmax, so dL/d(bias) is (p - t) / n, not the vanishing product a
    probability-then-softmax backward would give."""
    X, ya, yb = _data(15)
    model = _compiled(backend, dtype="float32", metrics=None)
    weights = model.get_weights()
    weights[2] = weights[2] * 0
    weights[3] = np.array([0.0, 0.0, 0.0], np.float32)
    weights[3][(ya[0] + 1) % CLASSES] = 200.0        # every row predicts that class
    model.set_weights(weights)
    _, grads = model.loss_and_gradients(X, [ya, yb])
    onehot = np.eye(CLASSES)[ya]
    p = np.zeros((N, CLASSES))
    p[:, (ya[0] + 1) % CLASSES] = 1.0
    np.testing.assert_allclose(grads[3], (p - onehot).mean(axis=0), atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_output_read_by_another_layer_is_not_fused(backend):
    """out_a (softmax) also feeds out_b: its gradient sums the loss's and out_b's, so the loss
    reads probabilities there; gradients against central differences (float64)."""
    X, ya, yb = _data(16)
    inp = fnn.Input((D,))
    a = fnn.Dense(CLASSES, activation="softmax", name="out_a")(
        fnn.Dense(HIDDEN, activation="tanh")(inp))
    b = fnn.Dense(TARGETS, name="out_b")(a)
    model = fnn.Model(inp, [a, b], seed=0, dtype="float64", backend=backend)
    model.compile(loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 2.0])
    _, grads = model.loss_and_gradients(X, [ya, yb])
    weights = model.get_weights()

    def loss():
        model.set_weights(weights)
        return model.evaluate(X, [ya, yb])["loss"]
    from _finite_differences import central_differences
    for w, g in zip(weights, grads):
        np.testing.assert_allclose(g, central_differences(loss, w), rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- agreement
def _fit_run(backend, **kwargs):
    X, ya, yb = _data(1, 64)
    model = _compiled(backend, lr=0.05)
    kwargs.setdefault("y", [ya, yb])
    history = model.fit(X, epochs=3, batch_size=16, verbose=0, validation_split=0.25, **kwargs)
    return model.get_weights(), history.history


def test_compiled_backend_agrees_with_numpy():
    fast, hist_fast = _fit_run("fast")
    ref, hist_ref = _fit_run("numpy")
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    assert list(hist_fast) == list(hist_ref)
    for key in hist_ref:
        np.testing.assert_allclose(hist_fast[key], hist_ref[key], rtol=1e-11)


def test_one_and_two_threads_bitwise(thread_count):
    runs = []
    for threads in (1, 2):
        thread_count(threads)
        runs.append(_fit_run("fast"))
    for a, b in zip(runs[0][0], runs[1][0]):
        assert np.array_equal(a, b)
    assert runs[0][1] == runs[1][1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_dict_and_list_forms_give_the_same_training(backend):
    X, ya, yb = _data(2, 40)
    sw = np.random.default_rng(3).uniform(0.5, 2, (2, 40))
    by_list = _compiled(backend)
    by_dict = _model(backend).compile(
        loss={"out_b": "mse", "out_a": "sparse_categorical_crossentropy"},
        optimizer=fnn.SGD(lr=0.1), loss_weights={"out_b": 0.5},
        metrics={"out_a": ["accuracy"], "out_b": "mae"})
    h1 = by_list.fit(X, [ya, yb], epochs=2, batch_size=8, verbose=0, shuffle=True,
                     sample_weight=[sw[0], sw[1]], validation_data=(X, [ya, yb]))
    h2 = by_dict.fit(X, {"out_b": yb, "out_a": ya}, epochs=2, batch_size=8, verbose=0,
                     shuffle=True, sample_weight={"out_a": sw[0], "out_b": sw[1]},
                     validation_data=(X, {"out_a": ya, "out_b": yb}))
    for a, b in zip(by_list.get_weights(), by_dict.get_weights()):
        assert np.array_equal(a, b)
    assert h1.history == h2.history
    assert by_list.evaluate(X, [ya, yb]) == by_dict.evaluate(X, {"out_a": ya, "out_b": yb})


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_output_without_a_loss_gets_no_gradient(backend):
    X, ya, yb = _data(6)
    model = _model(backend).compile(loss={"out_a": "sparse_categorical_crossentropy",
                                          "out_b": None}, optimizer=fnn.SGD(lr=0.1))
    _, grads = model.loss_and_gradients(X, [ya, yb])
    assert np.any(grads[0] != 0) and np.any(grads[2] != 0)
    assert np.all(grads[4] == 0) and np.all(grads[5] == 0)
    before = model.get_weights()
    # the untrained output's targets may be left out (Keras) or be None
    for y in ([ya, yb], [ya], [ya, None], {"out_a": ya}):
        history = model.fit(X, y, epochs=1, batch_size=8, verbose=0)
        assert list(history.history) == ["loss"]     # Keras: no per-output loss for one
    after = model.get_weights()
    assert np.array_equal(after[4], before[4]) and np.array_equal(after[5], before[5])
    assert not np.array_equal(after[2], before[2])
    # its loss is the trained output's alone
    ref = _model(backend)
    ref.set_weights(after)
    p = ref.predict(X)[0]
    expected = -np.mean(np.log(p[np.arange(N), ya]))
    assert model.evaluate(X, {"out_a": ya})["loss"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_output_sample_weights_by_hand(backend):
    X, ya, yb = _data(8)
    rng = np.random.default_rng(9)
    wa, wb = rng.uniform(0, 3, N), rng.uniform(0, 3, N)
    model = _compiled(backend, weight_b=0.25, metrics=None)
    p, o = model.predict(X)
    ce = -np.log(p[np.arange(N), ya])
    se = np.mean((o - yb) ** 2, axis=1)
    for sample_weight, (a, b) in (({"out_a": wa, "out_b": wb}, (wa, wb)),
                                  ([wa, None], (wa, np.ones(N))),
                                  (wb, (wb, wb))):
        scores = model.evaluate(X, [ya, yb], sample_weight=sample_weight)
        la, lb = np.sum(a * ce) / N, np.sum(b * se) / N
        assert scores["out_a_loss"] == pytest.approx(la, rel=1e-12)
        assert scores["out_b_loss"] == pytest.approx(lb, rel=1e-12)
        assert scores["loss"] == pytest.approx(la + 0.25 * lb, rel=1e-12)
    scores = model.test_on_batch(X, [ya, yb], sample_weight=[wa, wb], return_dict=True)
    assert scores["loss"] == pytest.approx(np.sum(wa * ce) / N + 0.25 * np.sum(wb * se) / N,
                                           rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_and_test_on_batch(backend):
    X, ya, yb = _data(10)
    model = _compiled(backend)
    p, o = model.predict(X)
    expected = -np.mean(np.log(p[np.arange(N), ya])) + 0.5 * np.mean((o - yb) ** 2)
    listed = model.test_on_batch(X, [ya, yb])
    assert listed[0] == pytest.approx(expected, rel=1e-12)
    assert listed == model.evaluate(X, [ya, yb], return_dict=False)
    assert model.train_on_batch(X, {"out_a": ya, "out_b": yb}) == pytest.approx(expected,
                                                                             rel=1e-12)
    assert model.test_on_batch(X, [ya, yb])[0] < expected


def test_one_loss_and_one_metric_for_every_output():
    X, _, yb = _data(11)
    model = _model("numpy").compile(loss="mse", optimizer="sgd", metrics="mae")
    ya = np.random.default_rng(0).standard_normal((N, CLASSES))
    p, o = model.predict(X)
    scores = model.evaluate(X, [ya, yb])
    assert list(scores) == ["loss", "out_a_loss", "out_b_loss", "out_a_mae", "out_b_mae"]
    assert scores["out_a_loss"] == pytest.approx(np.mean((p - ya) ** 2), rel=1e-12)
    assert scores["out_b_mae"] == pytest.approx(np.mean(np.abs(o - yb)), rel=1e-12)
    assert scores["loss"] == pytest.approx(np.mean((p - ya) ** 2) + np.mean((o - yb) ** 2),
                                           rel=1e-12)


class _Quartic(fnn.Loss):
    name = "quartic"

    def value(self, y_true, y_pred):
        return float(np.mean((y_pred - y_true) ** 4))

    def gradient(self, y_true, y_pred):
        return 4 * (y_pred - y_true) ** 3 / y_pred.size


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_python_loss_on_one_output(backend):
    X, ya, yb = _data(17)
    model = _model(backend).compile(loss=["sparse_categorical_crossentropy", _Quartic()],
                                    optimizer=fnn.SGD(lr=0.05), loss_weights=[1.0, 0.5])
    p, o = model.predict(X)
    la, lb = -np.mean(np.log(p[np.arange(N), ya])), np.mean((o - yb) ** 4)
    scores = model.evaluate(X, [ya, yb])
    assert scores["out_b_loss"] == pytest.approx(lb, rel=1e-12)
    assert scores["loss"] == pytest.approx(la + 0.5 * lb, rel=1e-12)
    _, grads = model.loss_and_gradients(X, [ya, yb])
    h = np.tanh(X @ model.get_weights()[0] + model.get_weights()[1])
    np.testing.assert_allclose(grads[5], 0.5 * 4 * np.sum((o - yb) ** 3, axis=0) / o.size,
                               rtol=1e-10)
    np.testing.assert_allclose(grads[4], h.T @ (0.5 * 4 * (o - yb) ** 3 / o.size), rtol=1e-10)
    with pytest.raises(TypeError, match=r"sample_weight needs built-in losses.*'out_b'"):
        model.fit(X, [ya, yb], sample_weight=np.ones(N), verbose=0)


# --------------------------------------------------------------------------- callbacks, files
def test_callbacks_see_the_per_output_keys(tmp_path):
    X, ya, yb = _data(12, 60)
    model = _compiled("fast", lr=0.05)
    log = tmp_path / "log.csv"
    stop = fnn.EarlyStopping(monitor="val_out_b_loss", patience=1, mode="min")
    plateau = fnn.ReduceLROnPlateau(monitor="out_a_loss", factor=0.5, patience=0)
    checkpoint = fnn.ModelCheckpoint(str(tmp_path / "m_{epoch}_{val_out_b_loss:.4f}.fnn"),
                                     monitor="val_out_a_accuracy")
    history = model.fit(X, [ya, yb], epochs=3, batch_size=16, verbose=0,
                        validation_split=0.25,
                        callbacks=[stop, plateau, fnn.CSVLogger(str(log)), checkpoint])
    with open(log) as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"epoch"} | set(history.history)
    last = history.history["val_out_b_loss"][-1]
    assert float(rows[-1]["val_out_b_loss"]) == pytest.approx(last, rel=1e-12)
    saved = sorted(p.name for p in tmp_path.glob("m_*.fnn"))
    assert f"m_{len(history.epoch)}_{last:.4f}.fnn" in saved


@pytest.mark.parametrize("backend", BACKENDS)
def test_files_and_pickles_keep_the_compile_settings(backend, tmp_path):
    X, ya, yb = _data(13, 32)
    model = _model(backend).compile(
        loss={"out_a": "sparse_categorical_crossentropy", "out_b": {"name": "huber",
                                                                    "delta": 0.5}},
        optimizer=fnn.Adam(learning_rate=0.01), loss_weights={"out_b": 2.0},
        metrics={"out_a": "accuracy"})
    model.fit(X, [ya, yb], epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "two_heads.fnn"
    model.save(path)
    for copy in (fnn.load(path), pickle.loads(pickle.dumps(model))):
        assert [type(loss).__name__ for loss in copy.loss] == ["CrossEntropy", "Huber"]
        assert copy.loss[1].delta == 0.5
        assert copy.metrics == ["out_a_accuracy"]
        assert copy.evaluate(X, [ya, yb]) == model.evaluate(X, [ya, yb])
        copy.fit(X, [ya, yb], epochs=1, batch_size=8, verbose=0, shuffle=False)
        twin = pickle.loads(pickle.dumps(model))
        twin.fit(X, [ya, yb], epochs=1, batch_size=8, verbose=0, shuffle=False)
        for a, b in zip(copy.get_weights(), twin.get_weights()):
            assert np.array_equal(a, b)
    untrained = _model(backend).compile(loss=[None, "mse"], optimizer="sgd")
    again = pickle.loads(pickle.dumps(untrained))
    assert again.loss[0] is None and again.evaluate(X, [None, yb]) == untrained.evaluate(
        X, [None, yb])


# --------------------------------------------------------------------------- learning
def test_two_heads_learn_the_digits(digits_split):
    X_tr, X_te, y_tr, y_te = digits_split
    intensity_tr, intensity_te = X_tr.mean(axis=1), X_te.mean(axis=1)
    inp = fnn.Input((64,))
    h = fnn.Dense(64, activation="relu")(inp)
    digit = fnn.Dense(10, activation="softmax", name="digit")(h)
    mean = fnn.Dense(1, name="intensity")(h)
    model = fnn.Model(inp, [digit, mean], seed=0)
    model.compile(loss={"digit": "sparse_categorical_crossentropy", "intensity": "mse"},
                  optimizer=fnn.Adam(learning_rate=0.005), loss_weights={"intensity": 10.0},
                  metrics={"digit": "accuracy", "intensity": "mae"})
    model.fit(X_tr, {"digit": y_tr, "intensity": intensity_tr}, epochs=30, batch_size=32,
              verbose=0)
    scores = model.evaluate(X_te, [y_te, intensity_te])
    assert scores["digit_accuracy"] > 0.95                  # 0.969 when written
    # R^2 of the intensity head on the test set (0.83 when written; the mean predicts 0)
    assert 1 - scores["intensity_loss"] / intensity_te.var() > 0.75
    assert scores["intensity_mae"] < 0.5 * np.mean(np.abs(intensity_te - intensity_tr.mean()))


# --------------------------------------------------------------------------- bad inputs
X0, YA0, YB0 = _data(14)
BAD = [
    ("compile: loss list too short", lambda m: m.compile(loss=["mse"]),
     ValueError, r"loss must have one entry per output.*'out_a', 'out_b'.*Received: 1"),
    ("compile: loss dict names an unknown output",
     lambda m: m.compile(loss={"out_a": "mse", "out_c": "mse"}),
     ValueError, r"loss names outputs the model does not have: \['out_c'\].*'out_a', 'out_b'"),
    ("compile: loss dict leaves an output out", lambda m: m.compile(loss={"out_a": "mse"}),
     ValueError, r"loss has no entry for the outputs \['out_b'\].*None"),
    ("compile: no output trained", lambda m: m.compile(loss=[None, None]),
     ValueError, r"at least one of the outputs"),
    ("compile: loss_weights of the wrong length",
     lambda m: m.compile(loss="mse", loss_weights=[1.0, 2.0, 3.0]),
     ValueError, r"loss_weights must have one entry per output.*Received: 3"),
    ("compile: negative loss weight", lambda m: m.compile(loss="mse", loss_weights=[1, -1]),
     ValueError, r"loss_weights\['out_b'\]"),
    ("compile: loss_weights a number", lambda m: m.compile(loss="mse", loss_weights=2.0),
     TypeError, r"loss_weights must be a list.*or a dict"),
    ("compile: metrics dict names an unknown output",
     lambda m: m.compile(loss="mse", metrics={"out_z": "mae"}),
     ValueError, r"metrics names outputs the model does not have: \['out_z'\]"),
    ("fit: one target array", lambda m: _c(m).fit(X0, YA0, verbose=0),
     ValueError, r"y must be a list of one target array per output \(2: \['out_a', 'out_b'\]"),
    ("fit: three target arrays", lambda m: _c(m).fit(X0, [YA0, YB0, YB0], verbose=0),
     ValueError, r"y must hold one target array per output.*Received: a list of 3"),
    ("fit: unknown output name in y", lambda m: _c(m).fit(X0, {"out_a": YA0, "zz": YB0},
                                                          verbose=0),
     ValueError, r"y names outputs the model does not have: \['zz'\]"),
    ("fit: a target missing", lambda m: _c(m).fit(X0, {"out_a": YA0}, verbose=0),
     ValueError, r"y\['out_b'\] is None"),
    ("fit: target of the wrong width", lambda m: _c(m).fit(X0, [YA0, YB0[:, :1]], verbose=0),
     ValueError, r"y\[1\] \(output 'out_b'\)"),
    ("fit: target with too few rows", lambda m: _c(m).fit(X0, [YA0[:5], YB0], verbose=0),
     ValueError, r"y\[0\] \(output 'out_a'\)"),
    ("fit: label out of range", lambda m: _c(m).fit(X0, [YA0 + 3, YB0], verbose=0),
     ValueError, r"y\[0\] \(output 'out_a'\)"),
    ("fit: class_weight", lambda m: _c(m).fit(X0, [YA0, YB0], class_weight={0: 2.0},
                                              verbose=0),
     ValueError, r"class_weight is only supported for models with a single output"),
    ("fit: sample_weight list of the wrong length",
     lambda m: _c(m).fit(X0, [YA0, YB0], sample_weight=[np.ones(N)] * 3, verbose=0),
     ValueError, r"sample_weight must have one entry per output"),
    ("fit: sample_weight of an unknown output",
     lambda m: _c(m).fit(X0, [YA0, YB0], sample_weight={"zz": np.ones(N)}, verbose=0),
     ValueError, r"sample_weight names outputs the model does not have: \['zz'\]"),
    ("fit: negative sample weight",
     lambda m: _c(m).fit(X0, [YA0, YB0], sample_weight=[np.ones(N), -np.ones(N)], verbose=0),
     ValueError, r"sample_weight\['out_b'\]"),
    ("fit: validation targets one short",
     lambda m: _c(m).fit(X0, [YA0, YB0], validation_data=(X0, [YA0]), verbose=0),
     ValueError, r"y_val must hold one target array per output"),
    ("evaluate: targets not a list", lambda m: _c(m).evaluate(X0, "labels"),
     ValueError, r"y must be a list of one target array per output.*Received: str"),
]


def _c(model):
    return model.compile(loss=["sparse_categorical_crossentropy", "mse"], optimizer="sgd")


@pytest.mark.parametrize("call,error,match", [row[1:] for row in BAD],
                         ids=[row[0] for row in BAD])
def test_bad_inputs_name_the_argument(call, error, match):
    model = _model("fast")
    before = model.get_weights()
    with pytest.raises(error, match=match):
        call(model)
    for a, b in zip(model.get_weights(), before):
        assert np.array_equal(a, b)


def test_single_output_forms():
    """One output: a loss given as a list of one or a dict by its name is that loss; loss
    weights are refused (they weigh several outputs)."""
    model = fnn.Sequential([fnn.Dense(2, name="head")], input_dim=3, seed=0, backend="numpy")
    x, y = np.ones((4, 3)), np.zeros((4, 2))
    reference = model.compile(loss="mse").evaluate(x, y)
    assert model.compile(loss=["mse"]).evaluate(x, y) == reference
    assert model.compile(loss={"head": "mse"}).evaluate(x, y) == reference
    for one_output in (model, fnn.Sequential([fnn.Dense(2)])):      # built, and not yet
        with pytest.raises(ValueError, match=r"loss_weights weighs the losses of several "
                                             r"outputs.*Received: loss_weights=\[2.0\]"):
            one_output.compile(loss="mse", loss_weights=[2.0])


def test_the_readme_example_runs(capsys):
    """README "Several outputs": the two-head digits model trains and prints Keras' keys."""
    import re
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    section = text.split("## Several outputs\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    keys = ["digit_accuracy", "digit_loss", "ink_loss", "loss"]
    assert capsys.readouterr().out.strip() == str(sorted(keys + ["val_" + k for k in keys]))
    history = namespace["history"].history
    assert history["val_digit_accuracy"][-1] > 0.85
    assert [a.shape for a in (namespace["probabilities"], namespace["ink_values"])] == [
        (5, 10), (5, 1)]


def test_a_masked_output_is_refused():
    inp = fnn.Input((4,))
    seq = fnn.Embedding(5, 3, mask_zero=True)(inp)
    model = fnn.Model(inp, [fnn.Dense(2)(seq), fnn.Dense(1)(inp)], seed=0)
    with pytest.raises(ValueError, match=r"output 'dense(_\d+)?' carries a step mask"):
        model.compile(loss="mse")


def test_distributed_fit_refuses_several_outputs():
    class OneRank:       # what fit asks of a communicator (tests/test_distributed.py's)
        def Get_rank(self):
            return 0

        def Get_size(self):
            return 1

        def allgather(self, obj):
            return [obj]

        def bcast(self, obj, root=0):
            return obj

    X, ya, yb = _data(18)
    with pytest.raises(ValueError, match=r"one output.*\['out_a', 'out_b'\].*model\.fit"):
        fnn.distributed.fit(_compiled(), X, [ya, yb], comm=OneRank())
