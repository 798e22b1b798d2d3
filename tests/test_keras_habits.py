"""What a Keras user writes in the first hour works: a Sequential compiled before it is built
(built on its first fit, predict or evaluate, from the data), ``Input(shape=...)`` as its first
element, ``input_shape=`` / ``input_dim=`` on its first layer, ``compile(optimizer, loss)`` in
Keras' order, ``build((None, ...))``. Each form must give bitwise the model (weights, training)
of fastnn's own form with the same seed."""

import pickle

import numpy as np
import pytest

import fastnn as fnn

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)


def _layers(**first):
    return [fnn.Dense(8, activation="relu", **first), fnn.Dense(3, activation="softmax")]


def _reference(backend):
    model = fnn.Sequential(_layers(), input_dim=4, seed=3, backend=backend)
    return model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                         metrics=["accuracy"])


def _same(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb):
        assert u.shape == v.shape and u.tobytes() == v.tobytes()


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_compiled_before_built_builds_on_the_first_fit_from_its_data(backend):
    ref = _reference(backend)
    model = fnn.Sequential(seed=3, backend=backend)
    model.add(fnn.Dense(8, activation="relu"))
    model.add(fnn.Dense(3, activation="softmax"))
    assert model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                         metrics=["accuracy"]) is model
    # the objects at once, as in Keras; the build completes the compile with them
    assert not model.built and type(model.loss).__name__ == "CrossEntropy"
    opt = model.optimizer
    h = model.fit(X, Y, epochs=3, batch_size=16, verbose=0)
    h_ref = ref.fit(X, Y, epochs=3, batch_size=16, verbose=0)
    assert model.built and model.input_dim == 4 and model.metrics == ["accuracy"]
    assert type(model.optimizer) is type(ref.optimizer) and model.optimizer is opt
    assert h.history == h_ref.history
    _same(model, ref)


@pytest.mark.parametrize("call", ["predict", "evaluate", "train_on_batch", "forward"])
def test_other_first_calls_build_from_their_data(call):
    ref = _reference("fast")
    model = fnn.Sequential(_layers(), seed=3).compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    args = (X,) if call in ("predict", "forward") else (X, Y)
    got, want = getattr(model, call)(*args), getattr(ref, call)(*args)
    if isinstance(got, np.ndarray):
        assert got.tobytes() == want.tobytes()
    else:
        assert got == want
    _same(model, ref)


def test_an_uncompiled_model_builds_on_predict_and_lists_of_rows_build_too():
    ref = fnn.Sequential(_layers(), input_dim=4, seed=3)
    model = fnn.Sequential(_layers(), seed=3)
    assert model.predict(X.tolist()).tobytes() == ref.predict(X).tobytes()
    _same(model, ref)


@pytest.mark.parametrize("form", ["input", "input_shape", "input_dim", "build_none"])
def test_the_input_forms_of_keras_build_the_same_model(form):
    ref = _reference("fast")
    if form == "input":
        model = fnn.Sequential([fnn.Input(shape=(4,))] + _layers(), seed=3)
    elif form == "build_none":
        model = fnn.Sequential(_layers(), seed=3).build((None, 4))
    else:
        model = fnn.Sequential(_layers(**{form: (4,) if form == "input_shape" else 4}), seed=3)
    assert model.built and model.input_dim == 4       # at once, as in Keras
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])  # Keras' order
    assert model.fit(X, Y, epochs=2, verbose=0).history == ref.fit(X, Y, epochs=2,
                                                                   verbose=0).history
    _same(model, ref)


def test_input_added_first_builds_on_first_use_and_survives_pickling():
    model = fnn.Sequential(seed=3)
    model.add(fnn.Input(shape=(4,)))
    for layer in _layers():
        model.add(layer)
    again = pickle.loads(pickle.dumps(model))
    assert model.count_params() == 8 * 4 + 8 + 3 * 8 + 3     # built by the call
    _same(model, fnn.Sequential(_layers(), input_dim=4, seed=3))
    assert again.built and again.input_dim == 4


def test_input_shape_on_n_d_first_layers_and_its_own_input_dim_for_embedding():
    conv = fnn.Sequential([fnn.Conv2D(2, 3, input_shape=(6, 6, 1)), fnn.Flatten(),
                           fnn.Dense(2)], seed=0)
    assert conv.built and conv.input_shape == (6, 6, 1)
    flat = fnn.Sequential([fnn.Flatten(input_shape=(2, 3)), fnn.Dense(2)], seed=0)
    assert flat.input_shape == (2, 3)
    emb = fnn.Embedding(input_dim=10, output_dim=4)           # the vocabulary, Keras' name
    assert emb.get_config()["input_dim"] == 10
    seq = fnn.Sequential([fnn.Embedding(10, 4, input_shape=(7,)), fnn.Flatten(), fnn.Dense(1)])
    assert seq.input_shape == (7,)
    # not on the first layer: ignored, as in Keras
    later = fnn.Sequential([fnn.Dense(3), fnn.Dense(2, input_dim=99)], input_dim=4)
    assert [w.shape for w in later.get_weights()][2] == (3, 2)


def test_compile_takes_either_order_and_says_which_when_the_loss_is_missing():
    for args in (("mse", "adam"), ("adam", "mse"), (fnn.Adam(), "mse"), ("mse", fnn.Adam())):
        model = fnn.Sequential([fnn.Dense(1)], input_dim=2).compile(*args)
        assert type(model.loss).__name__ == "MeanSquaredError"
        assert type(model.optimizer).__name__ == "Adam"
    with pytest.raises(ValueError, match=r"first argument is the loss.*optimizer='adam'"):
        fnn.Sequential([fnn.Dense(1)], input_dim=2).compile("adam")


def test_a_deferred_compile_refuses_bad_arguments_at_once():
    model = fnn.Sequential(_layers())
    with pytest.raises(ValueError, match="hinge"):
        model.compile(loss="hinge")
    with pytest.raises(ValueError, match="metric"):
        model.compile(loss="mse", metrics=["nonsense"])
    assert model._pending_compile is None and not model.built


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_a_deferred_compile_sets_loss_optimizer_and_metrics_at_once(backend):
    """As in Keras: model.loss and model.optimizer are the compiled objects before the model
    is built, and the same objects train it once fit builds it."""
    model = fnn.Sequential(_layers(), seed=0, backend=backend)
    opt = fnn.Adam(0.01)
    assert model.compile(loss="cross_entropy", optimizer=opt, metrics=["accuracy"]) is model
    assert not model.built and model.optimizer is opt and model.metrics == ["accuracy"]
    assert type(model.loss).__name__ == "CrossEntropy"
    loss = model.loss
    with pytest.raises(ValueError, match="hinge"):          # a refused compile changes nothing
        model.compile(loss="hinge")
    assert model.loss is loss and model.optimizer is opt
    rng = np.random.default_rng(0)
    history = model.fit(rng.normal(size=(16, 4)), rng.integers(0, 3, 16), epochs=2,
                        batch_size=8, verbose=0)
    assert model.built and model.loss is loss and model.optimizer is opt
    assert opt.iterations == 4 and set(history.history) == {"loss", "accuracy"}
    again = fnn.Sequential(_layers(), seed=0, backend=backend)
    again.compile("cross_entropy", "sgd")
    assert type(again.optimizer).__name__ == "SGD" and again.metrics == []
    sgd = again.optimizer
    again.build(4)
    assert again.optimizer is sgd and again.optimizer.iterations == 0


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: fnn.Sequential([fnn.Dense(2), fnn.Input(shape=(3,))]), ValueError,
     r"Input\(shape=\.\.\.\) can only begin a Sequential"),
    (lambda: fnn.Sequential([fnn.Input(shape=(3,)), fnn.Input(shape=(3,))]), ValueError,
     r"can only begin"),
    (lambda: fnn.Sequential([fnn.Dense(2)(fnn.Input(shape=(3,)))]), TypeError,
     r"functional API"),
    (lambda: fnn.Dense(2, input_shape=(3,), input_dim=3), ValueError,
     r"input_shape or input_dim, not both"),
    (lambda: fnn.Dense(2, input_shape=(0,)), ValueError, r"input_shape"),
    (lambda: fnn.Dense(2, input_dim=2.5), TypeError, r"input_dim"),
    (lambda: fnn.Sequential([fnn.Dense(2)]).build((None,)), ValueError, r"input_shape"),
])
def test_misused_keras_forms_are_refused_naming_them(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize("keras_loss, name, final, targets", [
    (lambda: fnn.losses.SparseCategoricalCrossentropy(), "sparse_categorical_crossentropy",
     "softmax", "labels"),
    (lambda: fnn.losses.SparseCategoricalCrossentropy(from_logits=True), "cross_entropy",
     "linear", "labels"),
    (lambda: fnn.losses.CategoricalCrossentropy(), "categorical_crossentropy", "softmax",
     "one_hot"),
    (lambda: fnn.losses.BinaryCrossentropy(), "binary_crossentropy", "sigmoid", "binary"),
    (lambda: fnn.losses.BinaryCrossentropy(from_logits=True), "binary_crossentropy", "linear",
     "binary"),
])
def test_keras_loss_classes_train_as_fastnns_names(keras_loss, name, final, targets):
    units = 1 if targets == "binary" else 3
    y = {"labels": Y, "one_hot": fnn.utils.to_categorical(Y, 3),
         "binary": (Y > 0).astype(np.float64)}[targets]
    runs = []
    for loss in (keras_loss(), name):
        model = fnn.Sequential([fnn.Dense(8, activation="relu"),
                                fnn.Dense(units, activation=final)], input_dim=4, seed=3)
        model.compile(optimizer="adam", loss=loss)
        runs.append((model.fit(X, y, epochs=2, batch_size=16, verbose=0).history, model))
    assert runs[0][0] == runs[1][0]
    _same(runs[0][1], runs[1][1])


@pytest.mark.parametrize("loss, final, pattern", [
    (lambda: fnn.losses.SparseCategoricalCrossentropy(), "linear",
     r"from_logits=False\) reads the outputs as probabilities.*activation='softmax'"),
    (lambda: fnn.losses.CategoricalCrossentropy(from_logits=True), "softmax",
     r"from_logits=True\) reads the outputs as logits, but the model ends in softmax"),
    (lambda: fnn.losses.BinaryCrossentropy(), "tanh", r"activation='sigmoid'"),
    (lambda: fnn.losses.BinaryCrossentropy(from_logits=True), "sigmoid",
     r"ends in sigmoid"),
])
def test_a_from_logits_the_model_contradicts_is_refused_at_compile(loss, final, pattern):
    model = fnn.Sequential([fnn.Dense(3, activation=final)], input_dim=4)
    with pytest.raises(ValueError, match=pattern):
        model.compile(optimizer="adam", loss=loss())
    assert model.loss is None
    with pytest.raises(TypeError, match="from_logits"):
        fnn.losses.BinaryCrossentropy(from_logits="yes")


def test_to_categorical_follows_keras():
    got = fnn.utils.to_categorical([2, 0, 1])
    assert got.dtype == np.float32
    assert got.tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    assert fnn.utils.to_categorical(np.array([[1], [0]]), 4, dtype="float64").tolist() == [
        [0, 1, 0, 0], [1, 0, 0, 0]]                      # a column of labels: its axis dropped
    assert fnn.utils.to_categorical([[0, 1], [1, 1]]).shape == (2, 2, 2)
    assert fnn.utils.to_categorical([1.0, 0.0]).tolist() == [[0, 1], [1, 0]]
    for bad, exc, pattern in (([-1], ValueError, r">= 0. Received: -1"),
                              ([0.5], ValueError, r"whole-number.*0\.5"),
                              ([np.nan], ValueError, r"whole-number.*nan"),
                              (["a"], TypeError, r"integer class labels"),
                              ([3], ValueError, r"label 3, not below num_classes=3")):
        with pytest.raises(exc, match=pattern):
            fnn.utils.to_categorical(bad, 3 if bad == [3] else None)


def test_default_layer_names_are_keras_names():
    """Every public layer class gets Keras 3's default name (its to_snake_case): ConvLSTM2D is
    conv_lstm2d, LeakyReLU leaky_re_lu, Conv2DTranspose conv2d_transpose."""
    import os
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    pytest.importorskip("keras")
    from keras.src.utils.naming import to_snake_case
    from fastnn.layers import LAYERS
    from fastnn.layers.base import snake_name
    names = set(LAYERS) | {n for n in fnn.__all__ if n[:1].isupper()}
    assert {n: snake_name(n) for n in names} == {n: to_snake_case(n) for n in names}
    assert snake_name("ConvLSTM2D") == "conv_lstm2d"
