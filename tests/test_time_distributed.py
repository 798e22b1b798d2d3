"""TimeDistributed: each step through the wrapped layer, as Keras' wrapper (its outputs with
the same weights), as a loop over the steps of the unwrapped layer (bitwise), as Dense on the
sequence for a Dense (bitwise, training included, with the final softmax fused into the loss).
Finite differences, backends, threads and files: tests/test_layers_graph.py."""


import numpy as np
import pytest

import fastnn as fnn

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_time_distributed_dense_trains_bitwise_as_dense_on_the_sequence(backend):
    X = RNG.normal(size=(24, 6, 3))
    y = RNG.integers(0, 4, size=(24, 6))

    def make(wrap):
        top = fnn.Dense(4, activation="softmax")
        model = fnn.Sequential([fnn.LSTM(5, return_sequences=True),
                                fnn.TimeDistributed(top) if wrap else top],
                               input_shape=(6, 3), seed=2, backend=backend)
        return model.compile("sparse_categorical_crossentropy", "adam", metrics=["accuracy"])
    plain, wrapped = make(False), make(True)
    h1 = plain.fit(X, y, epochs=2, batch_size=8, verbose=0).history
    h2 = wrapped.fit(X, y, epochs=2, batch_size=8, verbose=0).history
    assert h1 == h2
    for a, b in zip(plain.get_weights(), wrapped.get_weights()):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_each_step_is_the_wrapped_layer_on_that_step(backend):
    frames = RNG.normal(size=(3, 4, 7, 6, 2))
    conv = fnn.Conv2D(3, 3, strides=2, padding="same", activation="relu")
    model = fnn.Sequential([fnn.TimeDistributed(conv)], input_shape=(4, 7, 6, 2), seed=1,
                           dtype="float64", backend=backend)
    single = fnn.Sequential([fnn.Conv2D(3, 3, strides=2, padding="same", activation="relu")],
                            input_shape=(7, 6, 2), seed=9, dtype="float64", backend=backend)
    single.set_weights(model.get_weights())
    out = model.predict(frames)
    assert out.shape == (3, 4, 4, 3, 3)
    for t in range(4):
        assert out[:, t].tobytes() == np.ascontiguousarray(single.predict(frames[:, t])).tobytes()
    # gradients: the kernel's sums over the steps, dx per step
    dy = RNG.normal(size=out.shape)
    model.forward(frames)
    model.zero_grad()
    dx = model.backward(dy)
    total = [np.zeros_like(w) for w in single.get_weights()]
    for t in range(4):
        single.forward(frames[:, t])
        single.zero_grad()
        np.testing.assert_allclose(dx[:, t], single.backward(np.ascontiguousarray(dy[:, t])),
                                   rtol=1e-12, atol=1e-12)
        total = [a + g for a, g in zip(total, single.grads)]
    for g, want in zip(model.grads, total):
        np.testing.assert_allclose(g, want, rtol=1e-10)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_outputs_match_keras_time_distributed(keras):
    L = keras.layers
    km = keras.Sequential([keras.Input((5, 8, 8, 1)), L.TimeDistributed(L.Conv2D(4, 3)),
                           L.TimeDistributed(L.MaxPooling2D()), L.TimeDistributed(L.Flatten()),
                           L.GRU(3), L.Dense(2)])
    ours = fnn.Sequential([fnn.TimeDistributed(fnn.Conv2D(4, 3)),
                           fnn.TimeDistributed(fnn.MaxPooling2D()),
                           fnn.TimeDistributed(fnn.Flatten()), fnn.GRU(3), fnn.Dense(2)],
                          input_shape=(5, 8, 8, 1), seed=0)
    ours.set_weights([w.astype(np.float32) for w in km.get_weights()])
    x = RNG.normal(size=(3, 5, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x), np.asarray(km(x)), rtol=1e-5, atol=1e-5)


def test_config_file_and_summary(tmp_path):
    model = fnn.Sequential([fnn.TimeDistributed(fnn.Dense(3, activation="tanh"), name="td")],
                           input_shape=(4, 2), seed=0)
    assert model.get_config()["layers"][0] == {
        "class": "TimeDistributed", "name": "td",
        "layer": {"class": "Dense", "units": 3, "activation": "tanh"}}
    model.save(tmp_path / "m.fnn")
    x = RNG.normal(size=(5, 4, 2))
    assert fnn.load(tmp_path / "m.fnn").predict(x).tobytes() == model.predict(x).tobytes()
    assert repr(model.layers[0]) == "TimeDistributed(Dense(3, activation='tanh'))"
    assert model.layers[0].activation == "tanh" and model.count_params() == 9


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: fnn.TimeDistributed("Dense"), TypeError, r"wraps a fastnn layer"),
    (lambda: fnn.TimeDistributed(fnn.Dropout(0.5)), TypeError, r"Dropout outside the wrapper"),
    (lambda: fnn.TimeDistributed(fnn.Add()), TypeError, r"a layer of one input"),
    (lambda: fnn.Sequential([fnn.TimeDistributed(fnn.Dense(2))], input_dim=3), ValueError,
     r"takes sequences \(steps, \*sample\)"),
    (lambda: fnn.Sequential([fnn.TimeDistributed(fnn.Conv2D(2, 5))], input_shape=(3, 4, 4, 1)),
     ValueError, r"does not fit"),
])
def test_bad_uses_are_refused(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_a_layer_built_elsewhere_is_refused():
    dense = fnn.Dense(2)
    fnn.Sequential([dense], input_dim=3)
    with pytest.raises(TypeError, match="not yet built"):
        fnn.TimeDistributed(dense)
