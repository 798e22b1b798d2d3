"""Layers on N-D arrays and the functional API: gradients, backends, threads, paths, files.

Every model here is checked through the low-level loop (``forward``, ``backward``, ``grads``):
the gradient of ``L = sum(out * R)`` for a fixed random ``R`` against central finite
differences in float64 (relative error <= 1e-6 per array, inputs included), the compiled
backend against the NumPy one, bitwise results at 1 and 2 threads, and a save/load round
trip that is bitwise.
"""

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients

H = 1e-6
TOL = 1e-6


# --------------------------------------------------------------------------- models under test
def _residual(backend, dtype, seed=0):
    inp = fnn.Input((6,))
    h = fnn.Dense(6, activation="tanh")(inp)
    h = fnn.Add()([inp, h])                         # residual: fan-out of inp
    out = fnn.Dense(3)(fnn.LayerNormalization()(h))
    return fnn.Model(inp, out, seed=seed, dtype=dtype, backend=backend)


def _two_inputs(backend, dtype, seed=0):
    a, b = fnn.Input((4,)), fnn.Input((2, 3))
    ha = fnn.Dense(5, activation="sigmoid")(a)
    hb = fnn.Flatten()(fnn.Dense(2, activation="tanh")(b))        # Dense on (n, 2, 3)
    joined = fnn.Concatenate()([ha, hb, ha])                       # ha read twice
    return fnn.Model([a, b], fnn.Dense(2)(joined), seed=seed, dtype=dtype, backend=backend)


def _image_stack(backend, dtype, seed=0):
    return fnn.Sequential([fnn.Dense(4, activation="relu"), fnn.BatchNormalization(),
                           fnn.Reshape((3, -1)), fnn.Dense(3, activation="softmax"),
                           fnn.Flatten(), fnn.Dense(2)],
                          input_shape=(3, 2, 5), seed=seed, dtype=dtype, backend=backend)


def _frozen_regularized(backend, dtype, seed=0):
    return fnn.Sequential([
        fnn.Dense(5, activation="tanh", kernel_regularizer=fnn.regularizers.l2(0.01),
                  bias_regularizer=fnn.regularizers.l1(0.02)),
        fnn.Dense(4, activation="sigmoid", trainable=False),
        fnn.Dense(3, use_bias=False, kernel_initializer="he_normal")],
        input_dim=4, seed=seed, dtype=dtype, backend=backend)


def _dropout(backend, dtype, seed=0):
    return fnn.Sequential([fnn.Dense(8, activation="relu"), fnn.Dropout(0.3, seed=5),
                           fnn.Dense(2)], input_dim=3, seed=seed, dtype=dtype, backend=backend)


def _nested(backend, dtype, seed=0):
    inner = fnn.Sequential([fnn.Dense(4, activation="tanh"), fnn.Dense(3)], input_dim=3,
                           seed=seed + 1, dtype=dtype, backend=backend, name="inner")
    inp = fnn.Input((3,))
    out = fnn.Dense(2)(fnn.Add()([inner(inp), inp]))
    return fnn.Model(inp, out, seed=seed, dtype=dtype, backend=backend)


def _cnn(backend, dtype, seed=0):
    return fnn.Sequential([
        fnn.Conv2D(3, 3, padding="same", activation="tanh"), fnn.MaxPooling2D(),
        fnn.Conv2D(4, 2, activation="relu"), fnn.AveragePooling2D(padding="same"),
        fnn.Flatten(), fnn.Dense(3, activation="tanh")],
        input_shape=(6, 7, 2), seed=seed, dtype=dtype, backend=backend)


def _cnn1d(backend, dtype, seed=0):
    return fnn.Sequential([
        fnn.Conv1D(3, 3, padding="causal", dilation_rate=2, activation="sigmoid"),
        fnn.Conv1D(4, 2, strides=2), fnn.GlobalMaxPooling1D(), fnn.Dense(2)],
        input_shape=(9, 2), seed=seed, dtype=dtype, backend=backend)


def _cnn_softmax(backend, dtype, seed=0):
    """The issue's small CNN: conv, pool, flatten, dense, softmax."""
    return fnn.Sequential([
        fnn.Conv2D(2, 3, activation="relu"), fnn.MaxPooling2D(), fnn.Flatten(),
        fnn.Dense(3, activation="softmax")],
        input_shape=(7, 6, 1), seed=seed, dtype=dtype, backend=backend)


def _views(backend, dtype, seed=0):
    """Shape-only layers in the graph: a Reshape then a Flatten (each one's input gradient is a
    view of its own, and the backward pass skips both), and a Flatten whose input another layer
    also reads (its input keeps a buffer of its own, the gradients summed there)."""
    inp = fnn.Input((2, 6))
    h = fnn.Dense(4, activation="tanh")(inp)                           # (2, 4)
    chain = fnn.Flatten()(fnn.Reshape((4, 2))(h))
    g = fnn.Dense(3, activation="sigmoid")(inp)                        # (2, 3), read twice
    shared = fnn.Flatten()(g)
    other = fnn.Flatten()(fnn.Dense(2)(g))
    joined = fnn.Concatenate()([fnn.Dense(2)(chain), shared, other])
    return fnn.Model(inp, fnn.Dense(3)(joined), seed=seed, dtype=dtype, backend=backend)


def _generator(backend, dtype, seed=0):
    """A DCGAN-style generator: transposed convolutions (strided "same"; "valid" with
    output_padding, a gelu and a sigmoid) and nearest upsampling, then a convolution."""
    return fnn.Sequential([
        fnn.Dense(12, activation="tanh"), fnn.Reshape((2, 2, 3)),
        fnn.Conv2DTranspose(4, 3, strides=2, padding="same", activation="gelu"),   # (4, 4, 4)
        fnn.UpSampling2D((1, 2)),                                                    # (4, 8, 4)
        fnn.Conv2DTranspose(2, (2, 3), strides=(2, 1), output_padding=(1, 0),
                            activation="sigmoid"),                                   # (9, 10, 2)
        fnn.Conv2D(1, 3, activation="tanh"), fnn.Flatten()],                        # 7 x 8
        input_dim=3, seed=seed, dtype=dtype, backend=backend)


def _upsampled_sequence(backend, dtype, seed=0):
    return fnn.Sequential([
        fnn.Conv1D(3, 2, activation="tanh"), fnn.UpSampling1D(3),
        fnn.Conv1D(2, 3, strides=2), fnn.Flatten(), fnn.Dense(2)],
        input_shape=(5, 2), seed=seed, dtype=dtype, backend=backend)


def _time_distributed(backend, dtype, seed=0):
    """Frames through a TimeDistributed convolution and flatten, then a recurrent layer, and a
    TimeDistributed Dense on its sequence."""
    return fnn.Sequential([
        fnn.TimeDistributed(fnn.Conv2D(2, 3, activation="tanh")),
        fnn.TimeDistributed(fnn.Flatten()), fnn.SimpleRNN(3, return_sequences=True),
        fnn.TimeDistributed(fnn.Dense(2, activation="sigmoid")), fnn.Flatten()],
        input_shape=(3, 4, 5, 1), seed=seed, dtype=dtype, backend=backend)


def _padded_cropped(backend, dtype, seed=0):
    """ZeroPadding2D and Cropping2D around a convolution, then RepeatVector into a sequence:
    padding, cropping and repeating with their 1-D forms."""
    return fnn.Sequential([
        fnn.ZeroPadding2D(((1, 0), (2, 1))), fnn.Conv2D(2, 3, activation="tanh"),
        fnn.Cropping2D(((0, 1), (1, 0))), fnn.Flatten(), fnn.Dense(3, activation="sigmoid"),
        fnn.RepeatVector(4), fnn.ZeroPadding1D((0, 2)), fnn.Conv1D(2, 2),
        fnn.Cropping1D((1, 1)), fnn.Flatten()],
        input_shape=(4, 3, 2), seed=seed, dtype=dtype, backend=backend)


def _merges(backend, dtype, seed=0):
    """Keras' element-wise merges, one tensor read by several of them (and twice by one)."""
    inp = fnn.Input((5,))
    a = fnn.Dense(4, activation="tanh")(inp)
    b = fnn.Dense(4, activation="sigmoid")(inp)
    c = fnn.Dense(4)(inp)
    gated = fnn.Multiply()([a, b, c])
    squared = fnn.Multiply()([a, a])
    joined = fnn.Concatenate()([gated, squared, fnn.Subtract()([b, c]),
                                fnn.Average()([a, b, c]), fnn.Maximum()([a, b, c]),
                                fnn.Minimum()([c, a])])
    return fnn.Model(inp, fnn.Dense(2)(joined), seed=seed, dtype=dtype, backend=backend)


def _noise_and_permute(backend, dtype, seed=0):
    """Keras' spatial dropout, Gaussian noise layers and Permute between a convolution and
    Dense layers (the noise replayed for the finite differences, as Dropout's masks)."""
    return fnn.Sequential([
        fnn.Conv1D(3, 2, activation="tanh"), fnn.SpatialDropout1D(0.3, seed=1),
        fnn.Permute((2, 1)), fnn.GaussianNoise(0.2, seed=2), fnn.Dense(4, activation="tanh"),
        fnn.GaussianDropout(0.25, seed=3), fnn.Reshape((3, 2, 2)),
        fnn.SpatialDropout2D(0.4, seed=4), fnn.Permute((3, 1, 2)), fnn.Flatten(),
        fnn.Dense(2)],
        input_shape=(5, 2), seed=seed, dtype=dtype, backend=backend)


# checked by finite differences only: the other tests back-propagate ones, and through a final
# softmax that is a zero gradient
FD_ONLY = {"cnn_softmax": _cnn_softmax}

MODELS = {"cnn": _cnn, "cnn1d": _cnn1d, "residual": _residual, "two_inputs": _two_inputs, "image_stack": _image_stack,
          "frozen_regularized": _frozen_regularized, "dropout": _dropout, "nested": _nested,
          "views": _views, "generator": _generator, "upsampled_sequence": _upsampled_sequence,
          "time_distributed": _time_distributed, "padded_cropped": _padded_cropped,
          "merges": _merges, "noise_and_permute": _noise_and_permute}


def _inputs(model, n, seed=1):
    rng = np.random.default_rng(seed)
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    xs = [rng.standard_normal((n, *s)) for s in shapes]
    return xs if isinstance(model.input_shape, list) else xs[0]


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("name", list(MODELS) + list(FD_ONLY))
def test_gradients_match_finite_differences(name, backend):
    model = {**MODELS, **FD_ONLY}[name](backend, "float64")
    x = _inputs(model, 5)
    R = np.random.default_rng(2).standard_normal(model.forward(x).shape)

    def replay():                             # the same dropout masks and noise every pass
        for layer in model.layers:
            if hasattr(layer, "calls"):
                layer.calls = 0

    check_model_gradients(model, x, R, H, 2 * TOL, before_pass=replay, penalty=True, what=name)


def _run(name, backend, dtype, threads=None):
    previous = fnn.get_num_threads()
    if threads:
        fnn.set_num_threads(threads)
    try:
        model = MODELS[name](backend, dtype)
        x = _inputs(model, 37)
        out = model.forward(x)
        model.backward(np.ones_like(out))
        fnn.SGD(lr=0.05, momentum=0.9).step(model)
        return [model.predict(x), out, *model.grads, *model.get_weights()]
    finally:
        fnn.set_num_threads(previous)


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("name", list(MODELS))
def test_compiled_backend_equals_numpy_backend(name, dtype, rtol):
    for a, b in zip(_run(name, "fast", dtype), _run(name, "numpy", dtype)):
        scale = np.max(np.abs(b)) or 1.0
        assert np.max(np.abs(a - b)) <= rtol * 10 * scale


@pytest.mark.parametrize("name", list(MODELS))
def test_bitwise_equal_at_one_and_two_threads(name):
    for a, b in zip(_run(name, "fast", "float32", 1), _run(name, "fast", "float32", 2)):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("name", list(MODELS))
def test_save_load_round_trip_is_bitwise(name, backend, tmp_path):
    model = MODELS[name](backend, "float32")
    x = _inputs(model, 9)
    if not isinstance(x, list):
        y = np.random.default_rng(3).standard_normal((9, *model.output_shape))
        model.compile("mse", fnn.Adam(learning_rate=0.01))
        model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "m.fnn")
    loaded = fnn.load(tmp_path / "m.fnn")
    assert type(loaded) is type(model) and loaded.path == model.path
    assert [w.tobytes() for w in loaded.get_weights()] == \
        [w.tobytes() for w in model.get_weights()]
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    if model.optimizer is not None:
        assert loaded.optimizer.iterations == model.optimizer.iterations
        assert loaded.train_on_batch(x, y) == model.train_on_batch(x, y)
        assert [w.tobytes() for w in loaded.get_weights()] == \
            [w.tobytes() for w in model.get_weights()]


# --------------------------------------------------------------------------- semantics
@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_frozen_layers_and_moving_statistics_do_not_train(backend):
    model = _frozen_regularized(backend, "float32")
    x = _inputs(model, 20)
    y = np.random.default_rng(4).standard_normal((20, 3))
    frozen, first = model.layers[1].get_weights(), model.layers[0].get_weights()
    model.compile("mse", "adam")
    model.fit(x, y, epochs=3, batch_size=5, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen, model.layers[1].get_weights()))
    assert not np.array_equal(first[0], model.layers[0].get_weights()[0])
    # a BatchNormalization's moving statistics change only through its forward pass
    bn = fnn.Sequential([fnn.Dense(3), fnn.BatchNormalization(momentum=0.5)], input_dim=2,
                        backend=backend, seed=0, dtype="float64")
    bn.compile("mse", fnn.SGD(lr=0.1))
    xb = np.random.default_rng(5).standard_normal((8, 2)) * 3 + 1
    before = bn.layers[1].get_weights()
    bn.train_on_batch(xb, np.zeros((8, 3)))
    gamma, beta, mean, var = bn.layers[1].get_weights()
    assert not np.array_equal(mean, before[2]) and not np.array_equal(var, before[3])
    assert np.all(var > 0)


def test_a_frozen_model_inside_a_combined_model_is_not_trained():
    """The GAN pattern: train the generator through a frozen discriminator."""
    gen = fnn.Sequential([fnn.Dense(8, activation="relu"), fnn.Dense(2)], input_dim=3, seed=0,
                         backend="fast", name="generator")
    disc = fnn.Sequential([fnn.Dense(8, activation="relu"), fnn.Dense(1, activation="sigmoid")],
                          input_dim=2, seed=1, backend="fast", name="discriminator")
    disc.compile("binary_crossentropy", fnn.Adam(learning_rate=1e-3))
    disc.trainable = False
    z = fnn.Input((3,))
    combined = fnn.Model(z, disc(gen(z)))
    combined.compile("binary_crossentropy", fnn.Adam(learning_rate=1e-3))
    d_before, g_before = disc.get_weights(), gen.get_weights()
    noise = np.random.default_rng(0).standard_normal((16, 3))
    combined.fit(noise, np.ones(16), epochs=2, batch_size=8, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(d_before, disc.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(g_before, gen.get_weights()))
    # the discriminator compiled while trainable still trains on its own
    disc.train_on_batch(np.zeros((4, 2)), np.ones(4))
    assert not all(np.array_equal(a, b) for a, b in zip(d_before, disc.get_weights()))
    assert [layer.name for layer in combined.layers] == ["generator", "discriminator"]
    assert combined.get_layer("generator") is gen


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_fast_path_and_general_path_are_bitwise_equal(backend):
    """A Dense chain takes the compiled plan; the same chain with a no-op Reshape inside takes
    the general path: the same weights, losses and predictions, to the bit."""
    def make(extra):
        layers = [fnn.Dense(16, activation="relu"), fnn.Dense(8), *extra, fnn.Tanh(),
                  fnn.Dense(3, activation="softmax")]
        model = fnn.Sequential(layers, input_dim=5, seed=3, backend=backend)
        return model.compile("cross_entropy", fnn.SGD(lr=0.1, momentum=0.9))
    fast, general = make([]), make([fnn.Reshape((8,))])
    assert (fast.path, general.path) == ("fast", "general")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((50, 5)).astype(np.float32), rng.integers(0, 3, 50)
    h1 = fast.fit(X, y, epochs=3, batch_size=8, verbose=0)
    h2 = general.fit(X, y, epochs=3, batch_size=8, verbose=0)
    assert h1.history["loss"] == h2.history["loss"]
    assert [w.tobytes() for w in fast.get_weights()] == [w.tobytes() for w in general.get_weights()]
    assert fast.predict(X).tobytes() == general.predict(X).tobytes()


@pytest.mark.parametrize("after", [fnn.Flatten, lambda: fnn.Reshape((3, 1))])
def test_a_loss_reads_probabilities_through_shape_only_layers(after):
    """softmax then Flatten/Reshape: cross-entropy of the probabilities (not of logits)."""
    model = fnn.Sequential([fnn.Dense(3, activation="softmax"), after()], input_dim=4, seed=0,
                           dtype="float64", backend="fast")
    assert model.final_activation == fnn.activations.SOFTMAX
    model.compile("cross_entropy" if isinstance(model.layers[-1], fnn.Flatten) else "mse",
                  fnn.SGD(lr=0.1))
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((7, 4)), rng.integers(0, 3, 7)
    p = model.predict(X).reshape(7, 3)
    if isinstance(model.layers[-1], fnn.Flatten):
        expected = -np.mean(np.log(p[np.arange(7), y]))
        assert model.evaluate(X, y)["loss"] == pytest.approx(expected, rel=1e-12)
    else:
        t = np.eye(3)[y].reshape(7, 3, 1)
        assert model.evaluate(X, t)["loss"] == pytest.approx(np.mean((p - t[..., 0]) ** 2),
                                                             rel=1e-12)


def test_low_level_loop_equals_train_on_batch_on_the_general_path():
    def make():
        model = _image_stack("fast", "float64", seed=4)
        return model.compile("mse", fnn.SGD(lr=0.05))
    a, b = make(), make()
    x = _inputs(a, 6)
    y = np.random.default_rng(7).standard_normal((6, 2))
    a.train_on_batch(x, y)
    out = b.forward(x)
    b.zero_grad()
    _, dout = fnn.losses.get_loss("mse").value_and_grad(y, out)
    b.backward(dout)
    fnn.SGD(lr=0.05).step(b)
    assert [w.tobytes() for w in a.get_weights()] == [w.tobytes() for w in b.get_weights()]


def test_dropout_is_seeded_inverted_and_off_in_inference():
    model = fnn.Sequential([fnn.Dropout(0.25, seed=11)], input_dim=1000, backend="fast")
    x = np.ones((4, 1000), np.float32)
    assert np.array_equal(model.predict(x), x)
    out = model.forward(x)
    kept = out != 0
    assert abs(kept.mean() - 0.75) < 0.02
    assert np.allclose(out[kept], 1 / 0.75)
    again = fnn.Sequential([fnn.Dropout(0.25, seed=11)], input_dim=1000, backend="numpy")
    assert again.forward(x).tobytes() == out.tobytes()        # same mask on both backends
    assert not np.array_equal(model.forward(x), out)          # a new mask every pass


def test_multiple_outputs_in_the_low_level_loop():
    inp = fnn.Input((3,))
    h = fnn.Dense(4, activation="tanh")(inp)
    model = fnn.Model(inp, [fnn.Dense(2)(h), fnn.Dense(1)(h)], seed=0, dtype="float64",
                      backend="fast")
    x = np.random.default_rng(0).standard_normal((5, 3))
    a, b = model.predict(x)
    assert a.shape == (5, 2) and b.shape == (5, 1)
    outs = model.forward(x)
    model.zero_grad()
    model.backward([np.ones((5, 2)), np.zeros((5, 1))])
    grads = model.grads
    assert np.all(grads[-2:][0] == 0)                  # the second head got no gradient
    assert np.allclose(outs[0], a)
    # compile takes it too (Keras' multi-output forms: tests/test_multi_output_fit.py)
    model.compile("mse")
    assert model.evaluate(x, [a, b])["loss"] == 0.0


# --------------------------------------------------------------------------- bad inputs
def _reuse():
    # a shared layer (tests/test_shared_layers.py) takes the input shape of its first call
    d = fnn.Dense(3)
    inp = fnn.Input((2,))
    return fnn.Model(inp, d(d(inp)))


BAD = [
    (lambda: fnn.Sequential([fnn.Dense(2)], input_shape=(0, 3)), ValueError, r"input_shape.*0"),
    (lambda: fnn.Sequential([fnn.Dense(2)], input_shape="3"), TypeError, r"input_shape='3'"),
    (lambda: fnn.Sequential([fnn.Dense(2)], input_dim=3, input_shape=(3,)), ValueError,
     r"input_dim or input_shape"),
    (lambda: fnn.Input((2, -1)), ValueError, r"shape=\(2, -1\)"),
    (lambda: fnn.Dropout(1.0), ValueError, r"rate.*1\.0"),
    (lambda: fnn.Dropout(-0.1), ValueError, r"rate.*-0\.1"),
    (lambda: fnn.Dropout("half"), TypeError, r"rate"),
    (lambda: fnn.Reshape((2, 0)), ValueError, r"target_shape"),
    (lambda: fnn.Sequential([fnn.Reshape((4, 4))], input_dim=6), ValueError,
     r"cannot reshape.*\(6,\).*\(4, 4\)"),
    (lambda: fnn.Model(fnn.Input((2,)), fnn.Dense(1)(fnn.Input((2,)))), ValueError,
     r"not in inputs"),
    (lambda: fnn.Model(fnn.Input((2,)), "out"), TypeError, r"outputs.*'out'"),
    (_reuse, ValueError, r"'dense' \(Dense\) is shared.*\(2,\).*\(3,\)"),
    (lambda: fnn.Add()([fnn.Input((2,)), fnn.Input((3,))]), ValueError, r"one shape"),
    (lambda: fnn.Add()(fnn.Input((2,))), TypeError, r"list of tensors"),
    (lambda: fnn.Concatenate(axis=1)([fnn.Input((2, 3)), fnn.Input((2, 3))]), ValueError,
     r"last axis.*axis=1"),
    (lambda: fnn.BatchNormalization(momentum=1.5), ValueError, r"momentum.*1\.5"),
    (lambda: fnn.LayerNormalization(epsilon=0), ValueError, r"epsilon.*0"),
    (lambda: fnn.Dense(2, name="a b"), ValueError, r"name='a b'"),
    (lambda: fnn.Dense(2, use_bias=1), TypeError, r"use_bias"),
    (lambda: fnn.Sequential([fnn.Dense(2, name="x"), fnn.Dense(2, name="x")], input_dim=2),
     ValueError, r"named 'x'"),
    (lambda: _residual("numpy", "float32").set_weights([np.zeros((6, 6))]), ValueError,
     r"weights must be a list of 6 arrays.*Received: 1"),
    (lambda: _residual("numpy", "float32").predict(np.zeros((2, 5))), ValueError,
     r"X must have 6 features"),
    (lambda: _two_inputs("numpy", "float32").predict(np.zeros((2, 4))), ValueError,
     r"list of 2 arrays"),
    (lambda: _two_inputs("numpy", "float32").predict([np.zeros((2, 4)), np.zeros((3, 2, 3))]),
     ValueError, r"same number of samples"),
    (lambda: _image_stack("numpy", "float32").predict(np.zeros((2, 3, 5, 2))), ValueError,
     r"X must have shape \(n, 3, 2, 5\).*\(2, 3, 5, 2\)"),
    (lambda: _image_stack("numpy", "float32").backward(np.zeros((2, 2))), ValueError,
     r"backward needs a forward"),
    (lambda: fnn.Dense(3, kernel_initializer="glorot_unknown"), ValueError,
     r"kernel_initializer.*glorot_unknown"),
    (lambda: fnn.Dense(3, kernel_regularizer="l3"), ValueError, r"kernel_regularizer.*l3"),
]


@pytest.mark.parametrize("call, exc, pattern", BAD)
def test_bad_input_is_refused_with_a_clear_message(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()
