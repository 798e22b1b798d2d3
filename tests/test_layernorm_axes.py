"""LayerNormalization over the last few axes together (Keras' ``axis=[1, 2, 3]``): PyTorch's
LayerNorm over the same trailing shape in float64 (forward and every gradient), Keras 3 itself
and its weight files, finite differences on both backends, compiled = NumPy, threads bitwise,
the compiled inference plan, ONNX through onnxruntime, files and bad axes."""

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients

CASES = [((4, 5, 6), [1, 2, 3]), ((4, 5, 6), [-2, -1]), ((7, 9), [1, 2]), ((4, 5, 6), -1),
         ((3, 17), [2]), ((2, 3, 4, 5), [2, 3, 4])]


def _normalized_shape(sample, axis):
    axes = axis if isinstance(axis, list) else [axis]
    return tuple(sample[len(sample) - len(axes):])


def _model(sample, axis, backend, dtype="float64", seed=0, **kwargs):
    model = fnn.Sequential([fnn.LayerNormalization(axis=axis, **kwargs)], input_shape=sample,
                           dtype=dtype, backend=backend, seed=seed)
    rng = np.random.default_rng(seed + 1)
    model.set_weights([rng.normal(1.0, 0.5, w.shape) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("sample,axis", CASES, ids=str)
@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_matches_torch_layer_norm_forward_and_gradients(sample, axis, backend):
    torch = pytest.importorskip("torch")
    model = _model(sample, axis, backend, epsilon=1e-5)
    shape = _normalized_shape(sample, axis)
    gamma, beta = model.get_weights()
    assert gamma.shape == beta.shape == shape             # Keras' layout: the axes' shape
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, (5, *sample))
    R = rng.normal(size=x.shape)
    ln = torch.nn.LayerNorm(shape, eps=1e-5).double()
    with torch.no_grad():
        ln.weight.copy_(torch.tensor(gamma))
        ln.bias.copy_(torch.tensor(beta))
    xt = torch.tensor(x, requires_grad=True)
    want = ln(xt)
    (want * torch.tensor(R)).sum().backward()
    got = model.forward(x, training=True)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    model.zero_grad()
    dx = model.backward(R)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-11)
    for g, w in zip(model.grads, (ln.weight.grad, ln.bias.grad)):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("sample,axis", CASES[:3], ids=str)
@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_gradients_by_finite_differences(sample, axis, backend):
    model = fnn.Sequential([fnn.Dense(4), fnn.LayerNormalization(axis=axis), fnn.Dense(3)],
                           input_shape=sample, dtype="float64", backend=backend, seed=2)
    rng = np.random.default_rng(4)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    x = rng.normal(size=(3, *sample))
    R = rng.normal(size=(3, *sample[:-1], 3))
    check_model_gradients(model, x, R)


def _trained(backend, threads=1):
    model = fnn.Sequential([fnn.Conv2D(6, 3, padding="same"),
                            fnn.LayerNormalization(axis=[1, 2, 3]), fnn.ReLU(),
                            fnn.Flatten(), fnn.Dense(3, activation="softmax")],
                           input_shape=(8, 8, 2), seed=3, backend=backend, dtype="float64")
    model.compile(loss="cross_entropy", optimizer=fnn.Adam(0.01))
    rng = np.random.default_rng(5)
    with fnn.threads(threads):
        for _ in range(4):
            model.train_on_batch(rng.normal(size=(16, 8, 8, 2)), rng.integers(0, 3, 16))
    return model


def test_compiled_training_equals_numpy_and_threads_agree_bitwise():
    fast, ref, two = _trained("fast"), _trained("numpy"), _trained("fast", threads=2)
    for a, b, c in zip(fast.get_weights(), ref.get_weights(), two.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        assert np.array_equal(a, c)


def test_the_inference_plan_gives_the_layers_bits():
    model = fnn.Sequential([fnn.Conv2D(4, 3), fnn.LayerNormalization(axis=[-3, -2, -1]),
                            fnn.Flatten(), fnn.Dense(2)], input_shape=(6, 6, 3), seed=1)
    x = np.random.default_rng(6).normal(size=(5, 6, 6, 3)).astype(np.float32)
    assert model._forward_plan is not None                  # the compiled plan takes it
    assert np.array_equal(model.predict(x), model.forward(x, training=False))


@pytest.fixture(scope="module")
def keras(keras64):
    return keras64


@pytest.mark.parametrize("axis", [[1, 2, 3], [-2, -1], -1])
def test_matches_keras_and_loads_its_weight_files(keras, tmp_path, axis):
    sample = (4, 5, 6)
    k = keras.layers
    rng = np.random.default_rng(7)
    ref = keras.Sequential([keras.Input(sample), k.LayerNormalization(axis=axis), k.Dense(2)])
    ref.set_weights([rng.normal(1.0, 0.5, w.shape) for w in ref.get_weights()])
    path = str(tmp_path / "ln.weights.h5")
    ref.save_weights(path)
    model = fnn.Sequential([fnn.LayerNormalization(axis=axis), fnn.Dense(2)],
                           input_shape=sample, dtype="float64", seed=0)
    model.load_weights(path)
    x = rng.normal(size=(3, *sample))
    # Keras' numpy backend is not float64-exact here (its own float64 LayerNormalization
    # differs from PyTorch's by ~6e-7): the bound is Keras' agreement; a wrong weight layout
    # would be off by O(1), and PyTorch holds the values to 1e-10 above
    np.testing.assert_allclose(model.predict(x), ref.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-5)


def test_onnx_export_matches_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _model((4, 5, 6), [1, 2, 3], "fast", dtype="float32")
    path = str(tmp_path / "ln.onnx")
    fnn.onnx.export(model, path)
    x = np.random.default_rng(8).normal(size=(3, 4, 5, 6)).astype(np.float32)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-5)


def test_saved_and_loaded(tmp_path):
    model = _model((4, 5, 6), [2, 3], "fast", dtype="float32")
    path = str(tmp_path / "ln.fnn")
    model.save(path)
    loaded = fnn.load(path)
    assert loaded.layers[0].axis == [2, 3]
    x = np.random.default_rng(9).normal(size=(2, 4, 5, 6)).astype(np.float32)
    assert np.array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("axis,sample,pattern", [
    (1, (4, 5), r"last axis or the last few axes.*\[1, 2\].*axis=1"),
    ([1, 3], (4, 5, 6), r"axis=\[1, 3\]"),
    ([2, 2], (4, 5, 6), r"axis=\[2, 2\]"),
    ([0, 1, 2], (4, 5), r"axis=\[0, 1, 2\]"),
    ([5], (4, 5), r"axis=\[5\]"),
    ([-4, -3, -2, -1], (4, 5, 6), r"axis=\[-4, -3, -2, -1\]"),
])
def test_axes_that_are_not_trailing_are_refused_by_name(axis, sample, pattern):
    with pytest.raises(ValueError, match=pattern):
        fnn.Sequential([fnn.LayerNormalization(axis=axis)], input_shape=sample)


@pytest.mark.parametrize("axis,exc,pattern", [
    ([], ValueError, "list of 1 to 32 ints"),
    (list(range(1, 40)), ValueError, "list of 1 to 32 ints"),
    ([1, "2"], TypeError, r"axis\[1\]"),
    ([1.5], TypeError, r"axis\[0\]"),
    ("last", TypeError, "axis"),
])
def test_bad_axis_values_are_refused_at_construction(axis, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fnn.LayerNormalization(axis=axis)
