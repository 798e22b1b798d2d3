"""AlphaDropout (Keras 3's layer): its formula and statistics against Keras, noise_shape, the
same bits on both backends and at 1 and 2 threads, gradients by hand, the identity at inference,
training a SELU network, configs and files (the stream goes on after loading; forged files),
ONNX (an Identity at inference), bad arguments."""

import numpy as np
import pytest

import fastnn as fnn
from fastnn.layers.noise import SELU_SATURATION

RNG = np.random.default_rng(0)


def _coefficients(rate):
    a = ((1 - rate) * (1 + rate * SELU_SATURATION ** 2)) ** -0.5
    return a, -a * SELU_SATURATION * rate


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_keras_formula_kept_and_dropped_values(backend, rate):
    """Kept values become a x + b, dropped ones a a' + b (float64: to rounding)."""
    model = fnn.Sequential([fnn.AlphaDropout(rate, seed=3)], input_shape=(50, 40),
                           dtype="float64", backend=backend)
    x = RNG.normal(size=(20, 50, 40))
    y = model.forward(x)
    a, b = _coefficients(rate)
    dropped = np.isclose(y, a * SELU_SATURATION + b, rtol=0, atol=1e-12)
    kept = ~dropped
    np.testing.assert_allclose(y[kept], a * x[kept] + b, rtol=1e-14, atol=1e-14)
    assert abs(dropped.mean() - rate) < 5 * np.sqrt(rate * (1 - rate) / x.size)


def test_statistics_against_keras(keras):
    """On N(0, 1) inputs both keep mean 0 and variance 1 and drop the same fraction."""
    x = RNG.normal(size=(400, 500)).astype(np.float32)
    n = x.size
    for rate in (0.1, 0.3):
        ours = fnn.Sequential([fnn.AlphaDropout(rate, seed=1)], input_dim=500).forward(x)
        theirs = np.asarray(keras.layers.AlphaDropout(rate, seed=1)(x, training=True))
        a, b = _coefficients(rate)
        for y in (ours, theirs):
            assert abs(y.mean()) < 5 / np.sqrt(n) + 1e-3
            assert abs(y.std() - 1.0) < 5 / np.sqrt(n) + 2e-3
            low = np.isclose(y, a * SELU_SATURATION + b, rtol=1e-6).mean()
            assert abs(low - rate) < 5 * np.sqrt(rate * (1 - rate) / n)
        np.testing.assert_allclose(np.sort(ours[ours > -1.5])[::1000],
                                   np.sort(theirs[theirs > -1.5])[::1000], atol=0.05)


def test_noise_shape_shares_the_mask_along_axes_of_one(keras):
    model = fnn.Sequential([fnn.AlphaDropout(0.4, noise_shape=(None, 1, 6), seed=2)],
                           input_shape=(5, 6))
    x = np.ones((300, 5, 6), np.float32)
    y = model.forward(x)
    assert np.array_equal(y, np.broadcast_to(y[:, :1], y.shape))     # the same at every step
    theirs = np.asarray(keras.layers.AlphaDropout(0.4, noise_shape=(None, 1, 6), seed=2)(
        x, training=True))
    assert np.array_equal(theirs, np.broadcast_to(theirs[:, :1], theirs.shape))
    assert abs((y[:, 0] < 0).mean() - 0.4) < 0.05 and abs((theirs[:, 0] < 0).mean() - 0.4) < 0.05
    dy = RNG.normal(size=y.shape).astype(np.float32)
    dx = model.backward(dy)
    a, _ = _coefficients(0.4)
    np.testing.assert_allclose(dx, np.where(y > 0, np.float32(a) * dy, 0), rtol=1e-6)
    same = fnn.Sequential([fnn.AlphaDropout(0.4, noise_shape=[None, 5, None], seed=2)],
                          input_shape=(5, 6))
    assert same.layers[0].noise_shape == (None, 5, None)


@pytest.mark.parametrize("shape, noise_shape", [((7, 3), None), ((4, 3, 5), (None, 4, 1, 5))])
def test_the_same_bits_on_both_backends_and_thread_counts(shape, noise_shape):
    results = {}
    for backend, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
        for dtype in ("float32", "float64"):
            model = fnn.Sequential([fnn.AlphaDropout(0.3, noise_shape=noise_shape)],
                                   input_shape=shape, seed=4, dtype=dtype, backend=backend)
            x = np.random.default_rng(1).normal(size=(9, *shape)).astype(dtype)
            dy = np.random.default_rng(2).normal(size=(9, *shape)).astype(dtype)
            with fnn.threads(threads):
                out = []
                for _ in range(2):              # a new mask on each pass
                    y = model.forward(x)
                    out += [y.copy(), model.backward(dy).copy()]
            assert not np.array_equal(out[0], out[2])
            results[backend, threads, dtype] = [a.tobytes() for a in out]
    for dtype in ("float32", "float64"):
        assert results["numpy", 1, dtype] == results["fast", 1, dtype] == \
            results["fast", 2, dtype]


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_gradient_by_hand_and_identity_at_inference(backend):
    model = fnn.Sequential([fnn.AlphaDropout(0.25, seed=5)], input_shape=(6, 4),
                           dtype="float64", backend=backend)
    x = RNG.normal(size=(8, 6, 4))
    y = model.forward(x)
    dy = RNG.normal(size=y.shape)
    a, b = _coefficients(0.25)
    dropped = np.isclose(y, a * SELU_SATURATION + b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.backward(dy), np.where(dropped, 0.0, a * dy), rtol=1e-15)
    assert model.predict(x).tobytes() == x.tobytes()
    assert model.forward(x, training=False).tobytes() == x.tobytes()
    none = fnn.Sequential([fnn.AlphaDropout(0.0)], input_shape=(6, 4), backend=backend)
    assert none.forward(x.astype(np.float32)).tobytes() == x.astype(np.float32).tobytes()
    assert none.layers[0].calls == 0


def test_a_selu_network_with_alpha_dropout_learns_the_digits():
    X, y = fnn.datasets.load_digits()
    X_train, X_test, y_train, y_test = fnn.datasets.train_test_split(X / 16.0, y,
                                                                     test_size=0.25, seed=0)
    model = fnn.Sequential([fnn.Dense(128, activation="selu", kernel_initializer="lecun_normal"),
                            fnn.AlphaDropout(0.1),
                            fnn.Dense(10, activation="softmax")], input_dim=64, seed=0)
    model.compile("sparse_categorical_crossentropy", fnn.Adam(0.003), metrics=["accuracy"])
    model.fit(X_train, y_train, epochs=15, batch_size=32, verbose=0)
    assert model.evaluate(X_test, y_test)["accuracy"] > 0.94


def test_configs_files_summary_and_onnx(tmp_path):
    model = fnn.Sequential([fnn.Dense(6), fnn.AlphaDropout(0.2, seed=7),
                            fnn.Reshape((2, 3)), fnn.AlphaDropout(0.1, noise_shape=(None, 1, 3))],
                           input_dim=4, seed=5)
    layers = model.get_config()["layers"]
    assert layers[1] == {"class": "AlphaDropout", "rate": 0.2, "seed": 7}
    assert layers[3]["noise_shape"] == [None, 1, 3] and set(layers[3]["state"]) == {
        "mask_seed", "calls"}
    x = RNG.normal(size=(5, 4))
    for _ in range(3):
        model.forward(x)
    model.save(tmp_path / "m.fnn")
    loaded = fnn.load(tmp_path / "m.fnn")
    assert loaded.get_config() == model.get_config()
    assert loaded.forward(x).tobytes() == model.forward(x).tobytes()   # the streams go on
    assert repr(loaded.layers[1]) == "AlphaDropout(0.2)"
    lines = []
    model.summary(print_fn=lines.append)
    assert "alpha_dropout" in "\n".join(lines)
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = fnn.onnx.export(model, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(path), full_check=True)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x32 = x.astype(np.float32)
    (got,) = session.run(None, {session.get_inputs()[0].name: x32})
    np.testing.assert_allclose(got, model.predict(x32), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("i, change, pattern", [
    (0, dict(rate=1.0), r"layer 0 \(AlphaDropout\).*rate=1\.0"),
    (0, dict(rate="0.1"), r"rate='0\.1'"),
    (0, dict(noise_shape=[1, 3]), r"noise_shape must be None or a tuple \(None, \.\.\.\)"),
    (0, dict(noise_shape=[None, 4]), r"noise_shape \[None, 4\] does not fit samples of shape "
                                     r"\(3,\)"),
    (0, dict(noise_shape=[None, 3, 1]), r"does not fit"),
    (0, dict(noise_shape=[None, 0]), r"noise_shape=0\b"),
    (0, dict(noise_shape=[None, 2**40]), r"below 2\*\*31|does not fit"),
    (0, dict(noise_shape="(None, 3)"), r"noise_shape='\(None, 3\)'"),
    (0, dict(state={"mask_seed": 1, "calls": 2**70}), r"AlphaDropout's state is out of range"),
    (0, dict(seed=-1), r"seed"),
])
def test_forged_files_are_refused_by_name(i, change, pattern):
    import copy
    from fastnn.io import model_from_bytes, model_to_bytes
    from test_model_files import build, parse
    model = fnn.Sequential([fnn.AlphaDropout(0.2, seed=1)], input_dim=3, seed=0)
    model.forward(np.ones((2, 3)))
    version, header, start = parse(model_to_bytes(model))
    header = copy.deepcopy(header)
    header["model"]["layers"][i].update(change)
    blob = build(header, model_to_bytes(model)[start:], version=version)
    with pytest.raises(ValueError, match="not a valid fastnn model file") as info:
        model_from_bytes(blob)
    assert info.match(pattern), str(info.value)


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: fnn.AlphaDropout(1.0), ValueError, r"rate.*Received: rate=1\.0"),
    (lambda: fnn.AlphaDropout(-0.1), ValueError, r"rate=-0\.1"),
    (lambda: fnn.AlphaDropout("0.5"), TypeError, r"rate='0\.5'"),
    (lambda: fnn.AlphaDropout(float("nan")), ValueError, r"rate=nan"),
    (lambda: fnn.AlphaDropout(0.5, seed=-1), ValueError, r"seed"),
    (lambda: fnn.AlphaDropout(0.5, seed=2**64), ValueError, r"seed must be below 2\*\*64"),
    (lambda: fnn.AlphaDropout(0.5, noise_shape=(5, 1)), ValueError,
     r"noise_shape must be None or a tuple \(None, \.\.\.\).*noise_shape=\(5, 1\)"),
    (lambda: fnn.AlphaDropout(0.5, noise_shape=(None,)), ValueError, r"noise_shape"),
    (lambda: fnn.AlphaDropout(0.5, noise_shape=(None, 2.0)), TypeError, r"noise_shape=2\.0"),
    (lambda: fnn.AlphaDropout(0.5, noise_shape=(None, -1)), ValueError, r"noise_shape=-1\b"),
    (lambda: fnn.AlphaDropout(0.5, noise_shape=3), ValueError, r"noise_shape=3\b"),
    (lambda: fnn.Sequential([fnn.AlphaDropout(0.5, noise_shape=(None, 2))], input_dim=3),
     ValueError, r"noise_shape \[None, 2\] does not fit samples of shape \(3,\)"),
    (lambda: fnn.Sequential([fnn.AlphaDropout(0.5, noise_shape=(None, 1))],
                            input_shape=(2, 3)), ValueError, r"does not fit"),
    (lambda: fnn.AlphaDropout(0.5).set_state({"calls": 1}), ValueError,
     r"AlphaDropout's state must be"),
])
def test_bad_arguments_are_refused(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()
