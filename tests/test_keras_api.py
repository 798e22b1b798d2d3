"""Keras' names for what fastnn already does: metric names and classes, ``test_on_batch``,
``evaluate(return_dict=...)``, ``InputLayer`` and ``Input``'s other arguments,
``fastnn.models.load_model`` / ``clone_model``, ``from_config``, ``set_random_seed``,
``validation_data`` with sample weights, and ``save_weights`` to a ``.weights.h5`` name.

Metric values are checked against Keras' own metric classes where Keras is installed (CI
installs it), and against formulas written out here."""

import pickle
import random

import numpy as np
import pytest

import fastnn as fnn
from fastnn import metrics as M

RNG = np.random.default_rng(0)
X = RNG.normal(size=(120, 5))
LABELS = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.8)
ONE_HOT = np.eye(3)[LABELS]


def _classifier(metrics, backend="fast", seed=4, dtype="float64"):
    model = fnn.Sequential([fnn.Dense(6, activation="tanh"), fnn.Dense(3, activation="softmax")],
                           input_dim=5, seed=seed, backend=backend, dtype=dtype)
    return model.compile("adam", "sparse_categorical_crossentropy", metrics=metrics)


# ---------------------------------------------------------------------------- metrics

def _by_hand(name, p, labels):
    """Each metric written out on the predicted probabilities ``p`` and integer labels."""
    t = np.eye(p.shape[1])[labels]
    if name in ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy"):
        return float(np.mean(p.argmax(1) == labels))
    if name in ("mse", "mean_squared_error"):
        return float(np.mean((p - t) ** 2))
    if name in ("mae", "mean_absolute_error"):
        return float(np.mean(np.abs(p - t)))
    raise AssertionError(name)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_keras_metric_names_are_reported_under_the_name_given(backend):
    names = ["acc", "sparse_categorical_accuracy", "categorical_accuracy", "mse",
             "mean_squared_error", "mae", "mean_absolute_error"]
    model = _classifier(names, backend)
    history = model.fit(X, LABELS, epochs=2, batch_size=120, shuffle=False, verbose=0,
                        validation_data=(X[:40], LABELS[:40]))
    assert list(history.history) == (["loss"] + names + ["val_loss"]
                                      + ["val_" + n for n in names])
    p = model.predict(X)
    scores = model.evaluate(X, LABELS)
    assert list(scores) == ["loss"] + names
    for name in names:
        assert scores[name] == pytest.approx(_by_hand(name, p, LABELS), rel=1e-12, abs=1e-15)
    # one batch of all samples before the update: the epoch's metric is the batch's
    p0 = _classifier(names, backend).predict(X)
    for name in names:
        assert history.history[name][0] == pytest.approx(_by_hand(name, p0, LABELS), rel=1e-12)


def test_metric_classes_match_keras_own(keras):
    model = _classifier([M.SparseCategoricalAccuracy(), M.CategoricalAccuracy(name="cat"),
                         M.MeanSquaredError(), M.MeanAbsoluteError(name="l1")])
    scores = model.evaluate(X, LABELS)
    assert list(scores) == ["loss", "sparse_categorical_accuracy", "cat", "mean_squared_error",
                            "l1"]
    p = model.predict(X)
    km = keras.metrics
    expected = {"sparse_categorical_accuracy": (km.SparseCategoricalAccuracy(), LABELS),
                "cat": (km.CategoricalAccuracy(), ONE_HOT),
                "mean_squared_error": (km.MeanSquaredError(), ONE_HOT),
                "l1": (km.MeanAbsoluteError(), ONE_HOT)}
    for name, (metric, target) in expected.items():
        metric.update_state(target, p)
        assert scores[name] == pytest.approx(float(metric.result()), rel=1e-6), name


@pytest.mark.parametrize("threshold", [None, 0.3, 0.7])
def test_binary_accuracy_threshold_as_keras(keras, threshold):
    x = RNG.normal(size=(64, 3))
    y = (x[:, :2] > 0).astype(np.float64)
    model = fnn.Sequential([fnn.Dense(2, activation="sigmoid")], input_dim=3, seed=1,
                           dtype="float64")
    model.compile("binary_crossentropy", "sgd",
                  metrics=[M.BinaryAccuracy(name="ba", threshold=threshold), "binary_accuracy"])
    scores = model.evaluate(x, y)
    assert list(scores) == ["loss", "ba", "binary_accuracy"]
    p = model.predict(x)
    cut = 0.5 if threshold is None else threshold
    for name, at in (("ba", cut), ("binary_accuracy", 0.5)):
        metric = keras.metrics.BinaryAccuracy(threshold=at)
        metric.update_state(y, p)
        assert scores[name] == pytest.approx(float(metric.result()), rel=1e-6)
        assert scores[name] == pytest.approx(np.mean((p >= at) == (y >= 0.5)), rel=1e-12)


def test_binary_accuracy_without_threshold_splits_logits_at_zero():
    x = RNG.normal(size=(50, 3))
    y = (x[:, 0] > 0).astype(np.float64)
    model = fnn.Sequential([fnn.Dense(1)], input_dim=3, seed=2, dtype="float64")
    model.compile(fnn.losses.BinaryCrossentropy(from_logits=True), "sgd",
                  metrics=[M.BinaryAccuracy(name="at0"), M.BinaryAccuracy(name="at05",
                                                                          threshold=0.5)])
    scores, z = model.evaluate(x, y), model.predict(x)[:, 0]
    assert scores["at0"] == pytest.approx(np.mean((z >= 0) == (y >= 0.5)))
    assert scores["at05"] == pytest.approx(np.mean((z >= 0.5) == (y >= 0.5)))
    assert scores["at0"] != scores["at05"]


def test_metric_objects_repr_config_and_files(tmp_path):
    assert repr(M.SparseCategoricalAccuracy()) == "SparseCategoricalAccuracy()"
    assert repr(M.BinaryAccuracy(threshold=0.25)) == "BinaryAccuracy(threshold=0.25)"
    assert M.MeanSquaredError(name="m").get_config() == {"name": "m"}
    model = _classifier([M.SparseCategoricalAccuracy(), "acc", M.MeanSquaredError(name="own"),
                         M.BinaryAccuracy(threshold=0.2)])
    model.save(tmp_path / "m.fnn")
    loaded = fnn.load(tmp_path / "m.fnn")
    # names that say the same metric are kept; one with a name or threshold of its own is not
    # (as a metric function is not)
    assert loaded.metrics == ["sparse_categorical_accuracy", "acc"]
    assert loaded.evaluate(X, LABELS) == {k: v for k, v in model.evaluate(X, LABELS).items()
                                          if k in ("loss", "sparse_categorical_accuracy", "acc")}
    assert pickle.loads(pickle.dumps(model)).metrics == loaded.metrics    # pickled as saved


@pytest.mark.parametrize("metrics, exc, pattern", [
    (["f1"], ValueError, r"names from \[.*'sparse_categorical_accuracy'.*Received: metrics="),
    (["acc", M.CategoricalAccuracy(name="acc")], ValueError, r"distinct names"),
    (5, TypeError, r"metrics=5"),
])
def test_bad_metrics_are_refused_naming_them(metrics, exc, pattern):
    model = fnn.Sequential([fnn.Dense(3, activation="softmax")], input_dim=5)
    with pytest.raises(exc, match=pattern):
        model.compile("sparse_categorical_crossentropy", "sgd", metrics=metrics)


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: M.BinaryAccuracy(threshold="0.5"), ValueError, r"threshold must be a finite"),
    (lambda: M.BinaryAccuracy(threshold=float("nan")), ValueError, r"threshold=nan"),
    (lambda: M.BinaryAccuracy(threshold=True), ValueError, r"threshold=True"),
    (lambda: M.MeanSquaredError(name=""), TypeError, r"name must be a non-empty string"),
    (lambda: M.SparseCategoricalAccuracy(name=3), TypeError, r"name=3"),
])
def test_bad_metric_arguments(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


# ---------------------------------------------------------------------- test_on_batch, evaluate

@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_test_on_batch_is_evaluate_in_one_pass_in_keras_form(backend):
    model = _classifier(["accuracy", "mae"], backend)
    model.fit(X, LABELS, epochs=1, verbose=0)
    before = model.get_weights()
    xb, yb = X[:32], LABELS[:32]
    scores = model.evaluate(xb, yb)
    assert model.test_on_batch(xb, yb) == [scores["loss"], scores["accuracy"], scores["mae"]]
    assert model.test_on_batch(xb, yb, return_dict=True) == scores
    assert model.evaluate(xb, yb, return_dict=False) == list(scores.values())
    w = np.linspace(0.0, 2.0, 32)
    weighted = model.test_on_batch(xb, yb, sample_weight=w, return_dict=True)
    assert weighted == model.evaluate(xb, yb, sample_weight=w)
    assert weighted["loss"] != scores["loss"] and weighted["mae"] == scores["mae"]
    for a, b in zip(before, model.get_weights()):          # nothing trained
        assert a.tobytes() == b.tobytes()
    only_loss = _classifier(None, backend)
    value = only_loss.test_on_batch(xb, yb)
    assert isinstance(value, float) and value == only_loss.evaluate(xb, yb)["loss"]
    assert only_loss.evaluate(xb, yb, return_dict=False) == value


def test_test_on_batch_against_keras(keras):
    km = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    km.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model = fnn.Sequential([fnn.Dense(3, activation="softmax")], input_dim=5, dtype="float32")
    model.set_weights([w.astype(np.float32) for w in km.get_weights()])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    xb = X[:40].astype(np.float32)
    ours, theirs = model.test_on_batch(xb, LABELS[:40]), km.test_on_batch(xb, LABELS[:40])
    assert len(ours) == len(theirs) == 2
    np.testing.assert_allclose(ours, [float(v) for v in theirs], rtol=1e-5)


def test_test_on_batch_refuses_what_evaluate_refuses():
    model = _classifier(["accuracy"])
    with pytest.raises(ValueError, match="x must be 2-D"):
        model.test_on_batch(X[0], LABELS[:1])
    with pytest.raises(TypeError, match="return_dict"):
        model.test_on_batch(X, LABELS, return_dict="yes")
    with pytest.raises(TypeError, match="return_dict"):
        model.evaluate(X, LABELS, return_dict=None)
    with pytest.raises(ValueError, match="compile"):
        fnn.Sequential([fnn.Dense(3)], input_dim=5).test_on_batch(X, LABELS)


# ------------------------------------------------------------------- Input, InputLayer, models

def test_input_layer_and_input_keras_arguments_build_the_same_model():
    ref = fnn.Sequential([fnn.Dense(4), fnn.Dense(2)], input_dim=5, seed=1)
    forms = [
        [fnn.InputLayer(shape=(5,))],
        [fnn.InputLayer(input_shape=(5,))],
        [fnn.layers.InputLayer((5,), batch_size=8)],
        [fnn.Input(batch_shape=(None, 5))],
        [fnn.Input(shape=(5,), dtype="int32", batch_size=16)],
        [fnn.layers.Input(batch_shape=(32, 5))],
    ]
    for first in forms:
        model = fnn.Sequential(first + [fnn.Dense(4), fnn.Dense(2)], seed=1)
        assert model.input_shape == (5,)
        for a, b in zip(ref.get_weights(), model.get_weights()):
            assert a.tobytes() == b.tobytes()
    image = fnn.Input(batch_shape=(None, 8, 8, 1))
    assert image.shape == (8, 8, 1)


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: fnn.Input(), TypeError, r"one of shape=\(\.\.\.\) and batch_shape"),
    (lambda: fnn.Input((3,), batch_shape=(None, 3)), TypeError, r"one of shape"),
    (lambda: fnn.Input(batch_shape=(None,)), ValueError, r"batch_shape must be \(batch"),
    (lambda: fnn.Input(batch_shape=5), ValueError, r"batch_shape must be"),
    (lambda: fnn.Input(batch_shape=(0, 3)), ValueError, r"batch_shape\[0\]"),
    (lambda: fnn.Input(batch_shape=(None, -3)), ValueError, r"batch_shape\[1:\]"),
    (lambda: fnn.Input((3,), batch_size=0), ValueError, r"batch_size"),
    (lambda: fnn.Input((3,), dtype="floaty"), TypeError, r"dtype must be a NumPy dtype"),
    (lambda: fnn.InputLayer((3,), input_shape=(3,)), TypeError, r"not both"),
    (lambda: fnn.InputLayer(), TypeError, r"one of shape"),
])
def test_bad_inputs_are_refused_naming_the_argument(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_models_load_model_clone_model_and_from_config(tmp_path):
    model = _classifier(["accuracy"])
    model.fit(X, LABELS, epochs=1, verbose=0)
    model.save(tmp_path / "m.fnn")
    loaded = fnn.models.load_model(tmp_path / "m.fnn")
    assert loaded.evaluate(X, LABELS) == model.evaluate(X, LABELS)

    twin = fnn.models.clone_model(model)                 # the architecture, fresh weights
    fresh = _classifier(["accuracy"])                    # what the same seed gives
    assert twin.get_config() == model.get_config() and twin.loss is None
    for a, b, c in zip(twin.get_weights(), fresh.get_weights(), model.get_weights()):
        assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()

    inp = fnn.Input((5,))
    graph = fnn.Model(inp, fnn.Dense(2)(fnn.Dense(3, activation="relu")(inp)))
    again = fnn.Model.from_config(graph.get_config(), backend="numpy")
    assert isinstance(again, fnn.Model) and again.backend == "numpy"
    assert again.get_config() == graph.get_config()
    seq = fnn.Sequential.from_config(model.get_config())
    assert isinstance(seq, fnn.Sequential) and seq.get_config() == model.get_config()


@pytest.mark.parametrize("config, exc, pattern", [
    ([1, 2], TypeError, r"config must be the dict get_config\(\) returns"),
    ({}, ValueError, r"config has no 'layers' entry"),
    ({"layers": 5}, ValueError, r"does not describe a Sequential"),
    ({"layers": [{"class": "Nope"}], "input_dim": 3}, ValueError, r"Nope"),
])
def test_from_config_refuses_what_is_not_a_config(config, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fnn.Sequential.from_config(config)
    with pytest.raises(TypeError, match="clone_model takes a fastnn model"):
        fnn.models.clone_model("model")


def test_set_random_seed_repeats_unseeded_models_and_training(monkeypatch):
    monkeypatch.setattr(fnn.utils, "_global_seeds", None)      # the process's state, restored

    def run():
        model = fnn.Sequential([fnn.Dense(6, activation="relu"), fnn.Dropout(0.3),
                                fnn.Dense(3, activation="softmax")], input_dim=5)
        model.compile("sparse_categorical_crossentropy", "adam")
        model.fit(X, LABELS, epochs=2, batch_size=16, verbose=0)      # shuffles, drops
        return [w.tobytes() for w in model.get_weights()], random.random(), np.random.rand()
    fnn.utils.set_random_seed(11)
    first = run()
    fnn.utils.set_random_seed(11)
    assert run() == first
    fnn.utils.set_random_seed(12)
    assert run()[0] != first[0]
    seeded = [fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=5).get_weights()[0]
              for _ in range(2)]                          # a model's own seed still decides
    fnn.utils.set_random_seed(0)
    assert seeded[0].tobytes() == seeded[1].tobytes() == fnn.Sequential(
        [fnn.Dense(2)], input_dim=3, seed=5).get_weights()[0].tobytes()
    with pytest.raises(ValueError, match="seed"):
        fnn.utils.set_random_seed(-1)
    with pytest.raises(TypeError, match="seed"):
        fnn.utils.set_random_seed(1.5)


# ---------------------------------------------------------------- validation weights, files

@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_validation_data_with_sample_weights_weighs_val_loss(backend):
    Xv, yv = X[:50], LABELS[:50]
    wv = np.where(yv == 0, 3.0, 0.5)
    model = _classifier(["accuracy"], backend)
    history = model.fit(X, LABELS, epochs=1, verbose=0, validation_data=(Xv, yv, wv))
    scores = model.evaluate(Xv, yv, sample_weight=wv)
    assert history.history["val_loss"] == [scores["loss"]]
    assert history.history["val_accuracy"] == [scores["accuracy"]]
    p = model.predict(Xv)
    by_hand = np.sum(wv * -np.log(p[np.arange(50), yv])) / 50
    assert scores["loss"] == pytest.approx(by_hand, rel=1e-12)
    plain = _classifier(["accuracy"], backend).fit(X, LABELS, epochs=1, verbose=0,
                                                    validation_data=(Xv, yv, None))
    assert plain.history["val_loss"] == [model.evaluate(Xv, yv)["loss"]]
    with pytest.raises(ValueError, match=r"\(X_val, y_val, sample_weight_val\). Received: "
                                         r"tuple of 4 items"):
        model.fit(X, LABELS, verbose=0, validation_data=(Xv, yv, wv, wv))
    with pytest.raises(ValueError, match="sample_weight"):
        model.fit(X, LABELS, verbose=0, validation_data=(Xv, yv, wv[:10]))


def test_save_weights_to_a_keras_name_loads_back(tmp_path):
    model = _classifier(None)
    model.fit(X, LABELS, epochs=1, verbose=0)
    path = tmp_path / "model.weights.h5"
    model.save_weights(path)
    other = _classifier(None, seed=9)
    other.load_weights(path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        assert a.tobytes() == b.tobytes()
    (tmp_path / "junk.weights.h5").write_bytes(b"not a model")
    with pytest.raises((ValueError, ImportError)):
        other.load_weights(tmp_path / "junk.weights.h5")


# ------------------------------------------------------------ weights views, activations

def test_weights_are_read_only_views_that_follow_training():
    model = fnn.Sequential([fnn.Dense(3), fnn.BatchNormalization(),
                            fnn.Dense(2, trainable=False)], input_dim=5, seed=0)
    assert [w.shape for w in model.weights] == [w.shape for w in model.get_weights()]
    assert [w.shape for w in model.trainable_weights] == [(5, 3), (3,), (3,), (3,)]
    assert [w.shape for w in model.non_trainable_weights] == [(3,), (3,), (3, 2), (2,)]
    kernel = model.layers[0].kernel
    assert kernel is not None and kernel.shape == (5, 3) and model.layers[0].bias.shape == (3,)
    with pytest.raises(ValueError, match="read-only"):
        kernel[0, 0] = 1.0
    before = kernel.copy()
    model.compile("mse", "sgd").fit(X, np.zeros((120, 2)), epochs=1, verbose=0)
    assert not np.array_equal(before, kernel)                 # a view: it moved with training
    assert np.array_equal(kernel, model.get_weights()[0])
    assert fnn.Dense(2).kernel is None and fnn.Dense(2, use_bias=False).bias is None
    with pytest.raises(ValueError, match="weights"):
        fnn.Sequential([fnn.Dense(2)]).weights


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_functional_activations_match_pytorch(dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    from fastnn import activations as A
    x = (RNG.normal(size=(4, 7)) * 3).astype(dtype)
    t = torch.tensor(x)
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    pairs = [(A.relu(x), F.relu(t)), (A.sigmoid(x), torch.sigmoid(t)), (A.tanh(x), torch.tanh(t)),
             (A.leaky_relu(x), F.leaky_relu(t, 0.2)),
             (A.leaky_relu(x, negative_slope=0.05), F.leaky_relu(t, 0.05)),
             (A.softmax(x), F.softmax(t, dim=-1)), (A.softmax(x, axis=0), F.softmax(t, dim=0)),
             (A.gelu(x), F.gelu(t)), (A.gelu(x, approximate=True), F.gelu(t, approximate="tanh")),
             (A.linear(x), t), (A.elu(x), F.elu(t)), (A.elu(x, alpha=0.5), F.elu(t, 0.5)),
             (A.selu(x), F.selu(t)), (A.softplus(x), F.softplus(t, threshold=1e9)),
             (A.silu(x), F.silu(t)), (A.swish(x), F.silu(t))]
    for ours, theirs in pairs:
        assert ours.dtype == dtype and ours.shape == x.shape
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=rtol, atol=rtol)
    assert A.relu(-3).shape == () and A.relu(-3) == 0 and A.relu([1, -1]).dtype == np.float64


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda A: A.relu(["a"]), TypeError, r"real numbers"),
    (lambda A: A.softmax([1.0, 2.0], axis=1), ValueError, r"axis must name an axis"),
    (lambda A: A.softmax(3.0), ValueError, r"axis"),
    (lambda A: A.leaky_relu(np.ones(2, np.float32), negative_slope=1e300), ValueError,
     r"negative_slope"),
    (lambda A: A.gelu([1.0], approximate="yes"), TypeError, r"approximate"),
    (lambda A: A.elu(np.ones(2, np.float32), alpha=1e300), ValueError, r"alpha"),
    (lambda A: A.silu(["a"]), TypeError, r"real numbers"),
])
def test_functional_activations_refuse_bad_arguments(call, exc, pattern):
    from fastnn import activations as A
    with pytest.raises(exc, match=pattern):
        call(A)
