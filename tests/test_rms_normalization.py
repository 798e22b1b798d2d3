"""RMSNormalization (Keras 3's layer, PyTorch's nn.RMSNorm): PyTorch float64 forward and every
gradient, Keras 3 and its weight files, finite differences on both backends, compiled = NumPy
bit for bit (the twin sums in the kernel's order), threads bitwise, files, learning, bad
arguments."""

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients

CASES = [((4, 6), -1), ((4, 6), [-2, -1]), ((3, 4, 5), [1, 2, 3]), ((37,), -1), ((2, 9), [2]),
         ((5, 130), -1)]


def _model(sample, axis, backend, dtype="float64", epsilon=1e-6):
    model = fnn.Sequential([fnn.RMSNormalization(axis=axis, epsilon=epsilon)],
                           input_shape=sample, dtype=dtype, backend=backend, seed=0)
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(1.0, 0.5, w.shape) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("sample,axis", CASES, ids=str)
@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_matches_torch_rms_norm_forward_and_gradients(sample, axis, backend):
    torch = pytest.importorskip("torch")
    model = _model(sample, axis, backend, epsilon=1e-5)
    (scale,) = model.get_weights()
    k = len(axis) if isinstance(axis, list) else 1
    assert scale.shape == sample[len(sample) - k:]          # Keras' layout: the axes' shape
    rng = np.random.default_rng(3)
    x = rng.normal(0.5, 2.0, (6, *sample))
    R = rng.normal(size=x.shape)
    rms = torch.nn.RMSNorm(scale.shape, eps=1e-5).double()
    with torch.no_grad():
        rms.weight.copy_(torch.tensor(scale))
    xt = torch.tensor(x, requires_grad=True)
    want = rms(xt)
    (want * torch.tensor(R)).sum().backward()
    np.testing.assert_allclose(model.forward(x, training=True), want.detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    model.zero_grad()
    np.testing.assert_allclose(model.backward(R), xt.grad.numpy(), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(model.grads[0], rms.weight.grad.numpy(), rtol=1e-10,
                               atol=1e-11)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("axis", [-1, [1, 2]])
def test_gradients_by_finite_differences(backend, axis):
    model = fnn.Sequential([fnn.Dense(5), fnn.RMSNormalization(axis=axis), fnn.Dense(3)],
                           input_shape=(4, 6), dtype="float64", backend=backend, seed=2)
    rng = np.random.default_rng(4)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    check_model_gradients(model, rng.normal(size=(3, 4, 6)), rng.normal(size=(3, 4, 3)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_equals_numpy_bitwise_at_one_and_two_threads(dtype):
    """Large enough that two threads split the rows and the column blocks."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 200)).astype(dtype)
    dy = rng.normal(size=x.shape).astype(dtype)
    scale = rng.normal(1.0, 0.3, 200).astype(dtype)
    results = []
    for backend, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
        be = fnn.backends.get_backend(backend)
        y, dx = np.empty_like(x), np.empty_like(x)
        dscale = np.full(200, 0.25, dtype)                 # accumulated into
        with fnn.threads(threads):
            be.rmsnorm_forward(x, scale, 1e-6, y)
            be.rmsnorm_backward(x, dy, scale, 1e-6, dx, dscale)
        results.append((y, dx, dscale))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_backward_without_an_input_gradient_still_accumulates_the_scale_gradient():
    rng = np.random.default_rng(6)
    x, dy = rng.normal(size=(7, 10)), rng.normal(size=(7, 10))
    scale = rng.normal(size=10)
    for backend in ("numpy", "fast"):
        be = fnn.backends.get_backend(backend)
        full, alone = np.zeros(10), np.zeros(10)
        be.rmsnorm_backward(x, dy, scale, 1e-6, np.empty_like(x), full)
        be.rmsnorm_backward(x, dy, scale, 1e-6, None, alone)
        r = 1.0 / np.sqrt(np.mean(x * x, axis=1) + 1e-6)
        np.testing.assert_allclose(alone, (dy * x * r[:, None]).sum(axis=0), rtol=1e-12)
        assert np.array_equal(full, alone)


@pytest.fixture(scope="module")
def keras(keras64):
    if not hasattr(keras64.layers, "RMSNormalization"):
        pytest.skip("this Keras has no RMSNormalization")
    return keras64


@pytest.mark.parametrize("axis", [-1, [1, 2]])
def test_matches_keras_and_loads_its_weight_files(keras, tmp_path, axis):
    k = keras.layers
    rng = np.random.default_rng(7)
    ref = keras.Sequential([keras.Input((4, 6)), k.RMSNormalization(axis=axis), k.Dense(2)])
    ref.set_weights([rng.normal(1.0, 0.5, w.shape) for w in ref.get_weights()])
    path = str(tmp_path / "rms.weights.h5")
    ref.save_weights(path)
    model = fnn.Sequential([fnn.RMSNormalization(axis=axis), fnn.Dense(2)], input_shape=(4, 6),
                           dtype="float64", seed=0)
    model.load_weights(path)
    x = rng.normal(size=(3, 4, 6))
    # Keras' numpy backend takes rsqrt in float32 (its float64 normalizations differ from
    # PyTorch's by ~1e-7): the bound is Keras' agreement; PyTorch holds the values to 1e-10
    np.testing.assert_allclose(model.predict(x), ref.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-5)


def test_saved_and_loaded_and_learns(tmp_path):
    """A small pre-norm residual network with RMSNormalization learns the digits."""
    from fastnn import datasets
    X, y = datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(X))
    X, y = (X[order] / 16.0).astype(np.float32), y[order]
    inp = fnn.Input((64,))
    h = fnn.Dense(64, activation="relu")(inp)
    h = fnn.Add()([h, fnn.Dense(64, activation="relu")(fnn.RMSNormalization()(h))])
    out = fnn.Dense(10, activation="softmax")(fnn.RMSNormalization()(h))
    model = fnn.Model(inp, out, seed=0)
    model.compile(loss="cross_entropy", optimizer=fnn.Adam(0.003), metrics=["accuracy"])
    model.fit(X[:1400], y[:1400], epochs=20, batch_size=32, verbose=0)
    assert model.evaluate(X[1400:], y[1400:], verbose=0)["accuracy"] >= 0.95
    path = str(tmp_path / "rms.fnn")
    model.save(path)
    loaded = fnn.load(path)
    assert np.array_equal(loaded.predict(X[1400:]), model.predict(X[1400:]))


def test_onnx_export_refuses_it_by_name(tmp_path):
    pytest.importorskip("onnx")
    model = _model((4, 6), -1, "fast", dtype="float32")
    with pytest.raises(ValueError, match="RMSNormalization"):
        fnn.onnx.export(model, str(tmp_path / "rms.onnx"))


@pytest.mark.parametrize("make,exc,pattern", [
    (lambda: fnn.RMSNormalization(epsilon=0.0), ValueError, "epsilon"),
    (lambda: fnn.RMSNormalization(epsilon=-1e-6), ValueError, "epsilon"),
    (lambda: fnn.RMSNormalization(epsilon=float("nan")), ValueError, "epsilon"),
    (lambda: fnn.RMSNormalization(axis=[]), ValueError, "list of 1 to 32 ints"),
    (lambda: fnn.RMSNormalization(axis="last"), TypeError, "axis"),
    (lambda: fnn.Sequential([fnn.RMSNormalization(axis=1)], input_shape=(4, 6)), ValueError,
     r"last axis or the last few axes.*axis=1"),
    (lambda: fnn.Sequential([fnn.RMSNormalization(axis=[1, 3])], input_shape=(4, 5, 6)),
     ValueError, r"axis=\[1, 3\]"),
])
def test_bad_arguments_are_refused_by_name(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()
