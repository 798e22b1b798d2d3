"""Messages that say what to do (#20): string labels, a 1-D sample, NumPy scalars printed
plainly, and one optimizer compiled into two models."""

import gc
import pickle

import numpy as np
import pytest

import fastnn as fnn


def dense_model(inputs=4, classes=3, seed=0):
    model = fnn.Sequential([fnn.Dense(8, activation="relu"),
                            fnn.Dense(classes, activation="softmax")], input_dim=inputs,
                           seed=seed)
    return model.compile(loss="cross_entropy", optimizer="sgd")


@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "cat", "dog"]),
                                    ["cat", "dog", "cat", "dog"],
                                    np.array(["a", "b", "a", "b"], dtype=object)])
def test_string_labels_point_to_an_encoder_or_the_sklearn_wrapper(labels):
    model = dense_model()
    with pytest.raises(TypeError) as exc:
        model.fit(np.ones((4, 4)), labels, epochs=1, verbose=0)
    text = str(exc.value)
    assert "y must hold real numbers" in text
    assert "np.unique(y, return_inverse=True)" in text
    assert "LabelEncoder" in text and "fastnn.sklearn.MLPClassifier" in text


def test_strings_as_inputs_get_no_label_advice():
    with pytest.raises(TypeError) as exc:
        dense_model().predict(np.array([["a"] * 4]))
    assert "X must hold real numbers" in str(exc.value)
    assert "LabelEncoder" not in str(exc.value)


def test_a_1d_sample_points_to_reshape():
    with pytest.raises(ValueError) as exc:
        dense_model().predict(np.ones(4))
    text = str(exc.value)
    assert "X must be 2-D (samples, features)" in text
    assert "X.reshape(1, -1)" in text and "X.reshape(-1, 1)" in text


def test_a_2d_input_without_its_own_hint():
    # a 3-D array for a Dense model: no reshape(1, -1) advice (it is not one sample)
    with pytest.raises(ValueError) as exc:
        dense_model().predict(np.ones((2, 2, 4)))
    assert "reshape(1, -1)" not in str(exc.value)


def test_one_image_without_its_batch_axis_points_to_newaxis():
    model = fnn.Sequential([fnn.Conv2D(2, 3), fnn.Flatten(), fnn.Dense(3)],
                           input_shape=(8, 8, 1), seed=0)
    with pytest.raises(ValueError) as exc:
        model.predict(np.ones((8, 8, 1)))
    text = str(exc.value)
    assert "X[np.newaxis]" in text and "(1, 8, 8, 1)" in text
    with pytest.raises(ValueError) as exc:
        model.predict(np.ones((2, 8, 8)))             # another mistake: no such hint
    assert "np.newaxis" not in str(exc.value)


@pytest.mark.parametrize("make, shown", [
    (lambda: fnn.Reshape((np.int64(2), np.int64(-5))), "target_shape=(2, -5)"),
    (lambda: fnn.Dropout(np.float64(1.5)), "rate=1.5"),
    (lambda: fnn.SGD(lr=np.float32(-1.0)), "lr=-1.0"),
    (lambda: fnn.datasets.train_test_split(np.ones((10, 2)), np.zeros(10),
                                           test_size=np.float64(1.5)), "test_size=1.5"),
    (lambda: fnn.datasets.train_test_split(np.ones((10, 2)), np.zeros(10),
                                           test_size=np.int64(10)), "test_size=10"),
    (lambda: fnn.Sequential([fnn.Dense(3)], input_dim=4, dtype=np.str_("float16")),
     "dtype='float16'"),
])
def test_numpy_scalars_are_printed_plainly(make, shown):
    with pytest.raises((ValueError, TypeError)) as exc:
        make()
    text = str(exc.value)
    assert shown in text, text
    assert "np." not in text.split("Received:")[-1], text


def test_one_optimizer_compiled_into_two_models_is_refused_at_compile():
    opt = fnn.SGD(lr=0.1, momentum=0.9)
    first, second = dense_model(4, 3), dense_model(5, 2)
    first.compile(loss="cross_entropy", optimizer=opt)
    with pytest.raises(ValueError) as exc:
        second.compile(loss="cross_entropy", optimizer=opt)
    text = str(exc.value)
    assert "already trains another model" in text and "optimizer.get_config()" in text
    # the refusal changed nothing: the first model still trains with its optimizer's state
    X, y = np.random.default_rng(0).random((16, 4)), np.arange(16) % 3
    first.fit(X, y, epochs=2, verbose=0)
    assert opt.iterations > 0 and first.optimizer is opt
    # what the message suggests works: the same settings, a state of its own
    second.compile(loss="cross_entropy", optimizer=opt.get_config())
    assert second.optimizer is not opt and second.optimizer.get_config() == opt.get_config()
    second.fit(np.ones((4, 5)), np.array([0, 1, 0, 1]), epochs=1, verbose=0)


def test_recompiling_the_same_model_or_after_the_first_is_gone_is_allowed():
    opt = fnn.Adam(lr=0.01)
    model = dense_model()
    model.compile(loss="cross_entropy", optimizer=opt)
    model.compile(loss="cross_entropy", optimizer=opt)      # the same model again
    pickle.loads(pickle.dumps(opt))                          # still pickles
    del model
    gc.collect()
    other = dense_model(5, 2)
    other.compile(loss="cross_entropy", optimizer=opt)       # its model no longer exists
    assert other.optimizer is opt


@pytest.mark.parametrize("layers, path", [
    ([fnn.Dense(4, activation=fnn.Step(threshold=0.25)), fnn.LeakyReLU(0.3)], "fast"),
    ([fnn.Dense(4, activation=fnn.Step(threshold=0.25)), fnn.LeakyReLU(0.3),
      fnn.Dropout(0.1)], "general"),
])
def test_summary_shows_an_activations_parameter(layers, path):
    model = fnn.Sequential(layers, input_dim=3, seed=0)
    lines = []
    model.summary(print_fn=lines.append)
    table = lines[0]
    assert f"path={path}" in table
    assert "step(threshold=0.25)" in table
    assert "leaky_relu(alpha=0.3)" in table
    plain = fnn.Sequential([fnn.Dense(4, activation="relu")], input_dim=3)
    plain.summary(print_fn=lines.append)
    assert " relu " in lines[1] and "relu(" not in lines[1]
