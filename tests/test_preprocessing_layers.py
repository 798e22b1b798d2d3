"""Rescaling and Normalization (Keras' preprocessing layers inside a model): against Keras'
own layers (outputs, adapt's statistics, weights), the input gradient against finite
differences in float64, the compiled kernel against its NumPy twin (bitwise, 1 and 2 threads),
statistics that training leaves alone, files, Keras .weights.h5, ONNX, bad arguments."""


import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend

RNG = np.random.default_rng(0)
DATA = RNG.normal(size=(200, 4)) * np.array([1.0, 10.0, 0.1, 3.0]) + np.array([5, -2, 0, 100])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("invert", [False, True])
def test_normalization_adapt_and_outputs_match_keras(keras, invert):
    theirs = keras.layers.Normalization(invert=invert)
    theirs.adapt(DATA.astype(np.float32))
    ours = fnn.Normalization(invert=invert)
    ours.adapt(DATA)
    model = fnn.Sequential([ours], input_dim=4, dtype="float64")
    mine, keras_weights = ours.get_weights(), theirs.get_weights()
    assert [w.shape for w in mine] == [w.shape for w in keras_weights]     # mean, variance, count
    for a, b in zip(mine[:2], keras_weights[:2]):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert mine[2] == 200.0           # the samples adapt saw (Keras 3 leaves its count at 0)
    x = RNG.normal(size=(7, 4)) * 3 + 1
    np.testing.assert_allclose(model.predict(x), np.asarray(theirs(x.astype(np.float32))),
                               rtol=2e-5, atol=2e-5)
    by_hand = (x - DATA.mean(0)) / DATA.std(0)
    if invert:
        by_hand = DATA.mean(0) + x * DATA.std(0)
    np.testing.assert_allclose(model.predict(x), by_hand, rtol=1e-12)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("scale, offset", [(1 / 255, 0.0), (1 / 127.5, -1.0), (-2.0, 3.5)])
def test_rescaling_matches_keras_on_images(keras, scale, offset):
    x = RNG.uniform(0, 255, size=(3, 5, 4, 2))
    model = fnn.Sequential([fnn.Rescaling(scale, offset=offset)], input_shape=(5, 4, 2),
                           dtype="float32")
    theirs = np.asarray(keras.layers.Rescaling(scale, offset=offset)(x.astype(np.float32)))
    np.testing.assert_allclose(model.predict(x), theirs, rtol=1e-6, atol=1e-6)
    f64 = fnn.Sequential([fnn.Rescaling(scale, offset=offset)], input_shape=(5, 4, 2),
                         dtype="float64")
    assert f64.predict(x).tobytes() == (x * scale + offset).tobytes()


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_input_gradients_match_finite_differences(backend):
    norm = fnn.Normalization(mean=[1.0, -2.0, 0.5], variance=[4.0, 0.25, 9.0])
    model = fnn.Sequential([fnn.Rescaling(0.5, offset=1.0), fnn.Dense(3, activation="tanh"),
                            norm, fnn.Dense(2), fnn.Normalization(invert=True,
                                                                  mean=3.0, variance=2.0)],
                           input_dim=3, seed=1, dtype="float64", backend=backend)
    x = RNG.normal(size=(5, 3))
    R = RNG.normal(size=(5, 2))
    model.forward(x)
    model.zero_grad()
    dx = model.backward(R)
    fd = np.zeros_like(x)
    h = 1e-6
    for idx in np.ndindex(x.shape):
        for sign in (1, -1):
            xs = x.copy()
            xs[idx] += sign * h
            fd[idx] += sign * float(np.sum(model.forward(xs) * R)) / (2 * h)
    assert np.linalg.norm(dx - fd) <= 1e-7 * np.linalg.norm(fd)
    # the statistics are not trained: their gradients stay zero
    specs = [spec for layer in model.layers for spec in layer._specs]
    assert [s.name for s in specs] == ["kernel", "bias", "mean", "variance", "count", "kernel",
                                       "bias", "mean", "variance", "count"]
    for spec, g in zip(specs, model.grads):
        assert np.any(g) == spec.trainable, spec.name


def test_training_leaves_the_statistics_alone():
    norm = fnn.Normalization()
    norm.adapt(DATA)
    model = fnn.Sequential([norm, fnn.Dense(1)], input_dim=4, seed=0)
    model.compile("mse", fnn.Adam(learning_rate=0.1))
    before = norm.get_weights()
    model.fit(DATA, DATA[:, :1] * 0.5, epochs=3, verbose=0)
    for a, b in zip(before, norm.get_weights()):
        assert a.tobytes() == b.tobytes()
    assert model.count_params() == 4 + 4 + 1 + 5


def test_adapt_after_build_writes_the_weights_and_changes_predictions():
    norm = fnn.Normalization()
    model = fnn.Sequential([norm], input_dim=4, dtype="float64")
    x = DATA[:3]
    assert model.predict(x).tobytes() == x.tobytes()          # not adapted: the identity
    norm.adapt(DATA)
    np.testing.assert_allclose(model.predict(x), (x - DATA.mean(0)) / DATA.std(0), rtol=1e-12)
    assert norm.get_weights()[2] == 200.0
    with pytest.raises(ValueError, match="normalises 4 features. Received: data with 3"):
        norm.adapt(DATA[:, :3])
    images = RNG.normal(size=(10, 5, 5, 2)) * 4 + 1          # per channel, over every pixel
    img = fnn.Normalization()
    img.adapt(images)
    np.testing.assert_allclose(img._adapted[0], images.reshape(-1, 2).mean(0), rtol=1e-12)


def test_kernel_bitwise_on_both_backends_and_threads():
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        x = rng.normal(size=(301, 37)).astype(dtype)
        shift, scale, offset = (rng.normal(size=37).astype(dtype) for _ in range(3))
        outs = []
        for name, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
            out = np.empty_like(x)
            with fnn.threads(threads):
                get_backend(name).affine_rows(x, shift, scale, offset, out)
            outs.append(out.tobytes())
        assert outs[0] == outs[1] == outs[2] == ((x - shift) * scale + offset).tobytes()
        for name in ("numpy", "fast"):
            with pytest.raises(ValueError, match="affine_rows: x and out must be"):
                get_backend(name).affine_rows(x, shift[:3], scale, offset, np.empty_like(x))


def test_files_config_and_keras_weights(tmp_path, keras):
    norm = fnn.Normalization()
    norm.adapt(DATA)
    model = fnn.Sequential([fnn.Rescaling(2.0, offset=-1.0), norm, fnn.Dense(2),
                            fnn.Normalization(mean=[0.5, 1.0], variance=[4.0, 1.0],
                                              invert=True)], input_dim=4, seed=0)
    model.save(tmp_path / "m.fnn")
    loaded = fnn.load(tmp_path / "m.fnn")
    assert loaded.predict(DATA).tobytes() == model.predict(DATA).tobytes()
    assert model.get_config()["layers"][0] == {"class": "Rescaling", "scale": 2.0,
                                               "offset": -1.0}
    assert model.get_config()["layers"][3]["invert"] is True
    pytest.importorskip("h5py")
    km = keras.Sequential([keras.Input((4,)), keras.layers.Normalization(),
                           keras.layers.Dense(2)])
    km.layers[0].adapt(DATA.astype(np.float32))
    km.save_weights(tmp_path / "k.weights.h5")
    ours = fnn.Sequential([fnn.Normalization(), fnn.Dense(2)], input_dim=4)
    ours.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(ours.predict(DATA), km.predict(DATA.astype(np.float32),
                                                              verbose=0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: fnn.Rescaling("x"), ValueError, r"scale must be a finite number"),
    (lambda: fnn.Rescaling(1.0, offset=float("inf")), ValueError, r"offset"),
    (lambda: fnn.Normalization(axis=0), ValueError, r"axis must be -1"),
    (lambda: fnn.Normalization(mean=1.0), ValueError, r"both mean and variance"),
    (lambda: fnn.Normalization(mean=[1.0], variance=[-1.0]), ValueError, r"variance must be >= 0"),
    (lambda: fnn.Normalization(mean=[[1.0]], variance=[[1.0]]), ValueError, r"1-D array"),
    (lambda: fnn.Normalization(mean=[np.nan], variance=[1.0]), ValueError, r"mean"),
    (lambda: fnn.Normalization(invert="yes"), TypeError, r"invert"),
    (lambda: fnn.Normalization().adapt(np.zeros((0, 3))), ValueError, r"at least one sample"),
    (lambda: fnn.Normalization().adapt([[1.0, np.inf]]), ValueError, r"data"),
    (lambda: fnn.Normalization().adapt("abc"), TypeError, r"data"),
    (lambda: fnn.Sequential([fnn.Normalization(mean=[1.0, 2.0], variance=[1.0, 1.0])],
                            input_dim=3), ValueError, r"statistics for 2 features; its input has 3"),
    (lambda: fnn.Sequential([fnn.Rescaling(1e300)], input_dim=3), ValueError,
     r"scale.*overflows"),
    (lambda: fnn.Sequential([fnn.Normalization(mean=1e300, variance=1.0)], input_dim=3),
     ValueError, r"overflows float32"),
    (lambda: fnn.Normalization().adapt([[1e200], [-1e200]]), ValueError, r"overflows float64"),
    (lambda: fnn.Sequential([fnn.Normalization()], input_dim=1).layers[0].adapt([[1e30], [-1e30]]),
     ValueError, r"overflows float32"),
])
def test_bad_arguments_are_refused_naming_them(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_export_matches_onnxruntime_and_imports_back(dtype, tmp_path):
    """Exported as Sub, Mul, Add per channel; onnxruntime agrees, and fastnn's importer reads it
    back (as an affine BatchNormalization: close, not bitwise)."""
    ort = pytest.importorskip("onnxruntime")
    model = fnn.Sequential([
        fnn.Rescaling(0.5, offset=-1.0), fnn.Dense(4),
        fnn.Normalization(mean=[0.5, -1.0, 2.0, 0.0], variance=[4.0, 0.25, 1.0, 9.0]),
        fnn.Normalization(mean=1.0, variance=2.0, invert=True)], input_dim=3, seed=0,
        dtype=dtype)
    path = fnn.onnx.export(model, tmp_path / "m.onnx")
    x = RNG.normal(size=(7, 3)).astype(dtype)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    rtol = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(got, model.predict(x), rtol=rtol, atol=rtol)
    back = fnn.onnx.load(path)
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=rtol * 10, atol=rtol)


def test_a_negative_variance_is_refused_by_set_weights_and_the_loader(tmp_path):
    """The constructor refuses variance < 0; so do set_weights and a model file holding one
    (the weights written past the public API, as a damaged or forged file would hold them)."""
    model = fnn.Sequential([fnn.Normalization(mean=[0.0, 1.0], variance=[1.0, 2.0])],
                           input_dim=2)
    before = model.get_weights()
    for bad, pattern in (([np.zeros(2), np.array([1.0, -1.0]), np.array(3.0)], r"variance"),
                         ([np.zeros(2), np.ones(2), np.array(-1.0)], r"count")):
        with pytest.raises(ValueError, match=pattern + r" of normalization must be >= 0"):
            model.set_weights(bad)
        for a, b in zip(model.get_weights(), before):
            assert np.array_equal(a, b)                      # nothing changed
    model.layers[0]._weights[1][...] = [1.0, -0.5]
    model.save(tmp_path / "m.fnn")
    with pytest.raises(ValueError, match=r"normalization.*variance.*must be >= 0"):
        fnn.load(tmp_path / "m.fnn")
