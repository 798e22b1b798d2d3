"""Permute, SpatialDropout1D/2D, GaussianNoise, GaussianDropout and Sequential.pop: Keras'
outputs (Permute, bitwise) and statistics (the random layers), the kernels bitwise on both
backends and at 1 and 2 threads, gradients by hand and by finite differences (the noise
replayed), configs and files, summary, ONNX, bad arguments. (The graph suite,
test_layers_graph, runs a model with all of them too.)"""

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients
from fastnn.backends import get_backend

RNG = np.random.default_rng(0)
RANDOM = [("SpatialDropout1D", dict(rate=0.4), (6, 5)),
          ("SpatialDropout2D", dict(rate=0.4), (3, 4, 5)),
          ("GaussianNoise", dict(stddev=0.3), (4, 5)),
          ("GaussianDropout", dict(rate=0.3), (4, 5))]


# --------------------------------------------------------------------------- Permute
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("dims, shape", [((2, 1), (4, 7)), ((1,), (5,)), ((3, 1, 2), (2, 3, 4)),
                                         ((1, 3, 2), (2, 3, 4)), ((2, 4, 1, 3), (2, 3, 1, 4))])
def test_permute_matches_keras_bitwise(keras, backend, dims, shape):
    x = RNG.normal(size=(3, *shape)).astype(np.float32)
    model = fnn.Sequential([fnn.Permute(dims)], input_shape=shape, backend=backend)
    theirs = np.asarray(keras.layers.Permute(dims)(x))
    ours = model.predict(x)
    assert ours.shape == theirs.shape and ours.tobytes() == theirs.tobytes()
    assert model.forward(x).tobytes() == theirs.tobytes()


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_permute_gradient_is_the_inverse_permutation(backend):
    model = fnn.Sequential([fnn.Permute((3, 1, 2))], input_shape=(2, 3, 4), dtype="float64",
                           backend=backend)
    x = RNG.normal(size=(5, 2, 3, 4))
    model.forward(x)
    dy = RNG.normal(size=(5, 4, 2, 3))
    assert model.backward(dy).tobytes() == np.ascontiguousarray(
        np.transpose(dy, (0, 2, 3, 1))).tobytes()


def test_permute_kernel_bitwise_on_both_backends_and_threads():
    for dtype in (np.float32, np.float64):
        x = RNG.normal(size=(37, 9, 13, 6)).astype(dtype)
        for perm in [(0, 3, 1, 2), (0, 2, 1, 3), (0, 1, 2, 3), (2, 0, 3, 1)]:
            want = np.ascontiguousarray(np.transpose(x, perm))
            for name, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
                y = np.full(want.shape, 7.0, dtype)
                with fnn.threads(threads):
                    get_backend(name).permute_axes(x, perm, y)
                assert y.tobytes() == want.tobytes(), (name, threads, perm)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("perm, yshape, xorder", [
    ((0, 2, 1), (2, 3, 4), "C"),        # y not x transposed
    ((0, 1), (2, 4, 3), "C"),           # not a permutation of x's axes
    ((0, 2, 2), (2, 4, 4), "C"),
    ((0, 2, 1), (2, 4, 3), "F"),        # x not C-contiguous
])
def test_permute_kernel_refuses_bad_arguments(backend, perm, yshape, xorder):
    x = np.zeros((2, 3, 4), order=xorder)
    with pytest.raises(ValueError, match="permute_axes"):
        get_backend(backend).permute_axes(x, perm, np.zeros(yshape))


# --------------------------------------------------------------------------- the noise kernels
def test_noise_kernels_bitwise_on_both_backends_and_threads():
    for dtype in (np.float32, np.float64):
        results = []
        x = RNG.normal(size=(37, 11, 13)).astype(dtype)
        for name, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
            be = get_backend(name)
            noise = np.empty(20011, dtype)
            mask = np.empty((37, 13), dtype)
            out = np.empty_like(x)
            with fnn.threads(threads):
                be.gaussian_noise(2**63 + 5, 3, 1.0, 0.7, noise)
                be.dropout_mask(9, 4, 0.3, mask.reshape(-1))
                be.scale_channels(x, mask, out)
            results.append((noise.tobytes(), out.tobytes()))
            np.testing.assert_array_equal(out, x * mask[:, None, :])
        assert results[0] == results[1] == results[2]


def test_gaussian_noise_statistics_and_stream():
    be = get_backend("fast")
    z = np.empty(400_000)
    be.gaussian_noise(1, 0, 0.0, 1.0, z)
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n) and abs(z.std() - 1) < 5 / np.sqrt(2 * n)
    assert abs(np.mean(z > 1.0) - 0.158655) < 0.003          # the normal's tail, not a uniform's
    assert abs(np.mean(z ** 3)) < 0.03 and abs(np.mean(z ** 4) - 3) < 0.06
    scaled = np.empty(n)
    be.gaussian_noise(1, 0, 2.0, 0.5, scaled)
    np.testing.assert_allclose(scaled, 2.0 + 0.5 * z, rtol=0, atol=1e-15)
    again, other = np.empty(n), np.empty(n)
    be.gaussian_noise(1, 1, 0.0, 1.0, again)                  # the next pass: new values
    be.gaussian_noise(2, 0, 0.0, 1.0, other)                  # another seed: new values
    assert abs(np.corrcoef(z, again)[0, 1]) < 0.01 and abs(np.corrcoef(z, other)[0, 1]) < 0.01
    assert np.isfinite(z).all()


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_scale_channels_refuses_mismatched_shapes(backend):
    with pytest.raises(ValueError, match="scale_channels"):
        get_backend(backend).scale_channels(np.zeros((2, 3, 4)), np.zeros((2, 3)),
                                            np.zeros((2, 3, 4)))


# --------------------------------------------------------------------------- the layers
@pytest.mark.parametrize("cls", [fnn.SpatialDropout1D, fnn.SpatialDropout2D])
def test_spatial_dropout_drops_whole_channels(cls, keras):
    shape = (50, 64) if cls is fnn.SpatialDropout1D else (6, 7, 64)
    x = np.ones((200, *shape), np.float32)
    model = fnn.Sequential([cls(0.25, seed=7)], input_shape=shape, backend="fast")
    assert model.predict(x).tobytes() == x.tobytes()
    y = model.forward(x).reshape(200, -1, 64)
    assert (y == y[:, :1]).all()                              # a channel is one value throughout
    kept = y[:, 0] != 0
    assert abs(kept.mean() - 0.75) < 0.015
    assert np.all(y[:, 0][kept] == np.float32(1 / 0.75))
    # Keras' layer: the same structure and scale (its own random stream)
    theirs = np.asarray(getattr(keras.layers, cls.__name__)(0.25, seed=7)(x, training=True))
    theirs = theirs.reshape(200, -1, 64)
    assert (theirs == theirs[:, :1]).all() and abs((theirs[:, 0] != 0).mean() - 0.75) < 0.015
    assert set(np.unique(theirs).tolist()) == set(np.unique(y).tolist())


@pytest.mark.parametrize("name, kwargs, shape", RANDOM)
def test_random_layers_are_the_same_on_both_backends_and_threads(name, kwargs, shape):
    outs = []
    for backend, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
        for dtype in ("float32", "float64"):
            with fnn.threads(threads):
                model = fnn.Sequential([getattr(fnn, name)(**kwargs, seed=3)],
                                       input_shape=shape, dtype=dtype, backend=backend)
                x = np.random.default_rng(1).normal(size=(9, *shape))
                first, second = model.forward(x), model.forward(x)
                dx = model.backward(np.ones_like(second))
                outs.append((first.tobytes(), second.tobytes(), dx.tobytes()))
            assert first.tobytes() != second.tobytes()        # new draws every pass
            assert model.predict(x).tobytes() == x.astype(dtype).tobytes()  # inference
    assert outs[0::2] == [outs[0]] * 3 and outs[1::2] == [outs[1]] * 3


def test_gaussian_layers_statistics_against_keras(keras):
    x = np.full((400, 500), 2.0, np.float32)
    noise = fnn.Sequential([fnn.GaussianNoise(0.5, seed=1)], input_dim=500, backend="fast")
    drop = fnn.Sequential([fnn.GaussianDropout(0.2, seed=1)], input_dim=500, backend="fast")
    n = x.size
    for ours, theirs, mean, std in [
            (noise.forward(x), keras.layers.GaussianNoise(0.5, seed=1)(x, training=True),
             2.0, 0.5),
            (drop.forward(x), keras.layers.GaussianDropout(0.2, seed=1)(x, training=True),
             2.0, 2.0 * np.sqrt(0.2 / 0.8))]:
        for y in (ours, np.asarray(theirs)):
            assert abs(y.mean() - mean) < 5 * std / np.sqrt(n)
            assert abs(y.std() - std) < 5 * std / np.sqrt(2 * n)
    assert np.array_equal(noise.predict(x), x) and np.array_equal(drop.predict(x), x)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_gradients_by_hand(backend):
    x = RNG.normal(size=(4, 3, 2, 5))
    dy = RNG.normal(size=(4, 3, 2, 5))
    sd = fnn.Sequential([fnn.SpatialDropout2D(0.5, seed=2)], input_shape=(3, 2, 5),
                        dtype="float64", backend=backend)
    y = sd.forward(x)
    scale = np.where(y[:, :1, :1] == 0, 0.0, 2.0) * np.ones_like(x)
    assert sd.backward(dy).tobytes() == (dy * scale).tobytes()
    gd = fnn.Sequential([fnn.GaussianDropout(0.3, seed=2)], input_shape=(3, 2, 5),
                        dtype="float64", backend=backend)
    y = gd.forward(x)
    np.testing.assert_allclose(gd.backward(dy), dy * (y / x), rtol=1e-12)
    gn = fnn.Sequential([fnn.GaussianNoise(0.3, seed=2)], input_shape=(3, 2, 5),
                        dtype="float64", backend=backend)
    gn.forward(x)
    assert gn.backward(dy).tobytes() == dy.tobytes()


def _mixed(backend):
    return fnn.Sequential([
        fnn.Conv1D(4, 2, activation="tanh"), fnn.SpatialDropout1D(0.3, seed=1),
        fnn.GaussianNoise(0.2, seed=2), fnn.Permute((2, 1)), fnn.Dense(3, activation="tanh"),
        fnn.GaussianDropout(0.25, seed=3), fnn.Reshape((2, 2, 3)),
        fnn.SpatialDropout2D(0.4, seed=4), fnn.Permute((3, 1, 2)), fnn.Flatten(),
        fnn.Dense(2)], input_shape=(5, 3), seed=0, dtype="float64", backend=backend)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_gradients_match_finite_differences_with_the_noise_replayed(backend):
    model = _mixed(backend)
    x = RNG.normal(size=(3, 5, 3))
    R = RNG.normal(size=(3, 2))

    def replay():
        for layer in model.layers:
            if hasattr(layer, "calls"):
                layer.calls = 0

    check_model_gradients(model, x, R, before_pass=replay)


def test_configs_files_and_summary(tmp_path):
    model = fnn.Sequential([fnn.SpatialDropout1D(0.2), fnn.GaussianNoise(0.1, seed=4),
                            fnn.Permute((2, 1)), fnn.GaussianDropout(0.3),
                            fnn.Reshape((2, 3, 2)), fnn.SpatialDropout2D(0.5, seed=1)],
                           input_shape=(6, 2), seed=5)
    layers = model.get_config()["layers"]
    assert layers[1] == {"class": "GaussianNoise", "stddev": 0.1, "seed": 4}
    assert layers[2] == {"class": "Permute", "dims": [2, 1]}
    assert layers[0]["class"] == "SpatialDropout1D" and layers[0]["rate"] == 0.2
    assert set(layers[0]["state"]) == {"mask_seed", "calls"}       # the seed drawn at build
    x = RNG.normal(size=(4, 6, 2))
    for _ in range(3):
        model.forward(x)
    model.save(tmp_path / "m.fnn")
    loaded = fnn.load(tmp_path / "m.fnn")
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
    assert loaded.forward(x).tobytes() == model.forward(x).tobytes()   # the streams go on
    assert [repr(layer) for i, layer in enumerate(loaded.layers) if i != 4] == [
        "SpatialDropout1D(0.2)", "GaussianNoise(0.1)", "Permute((2, 1))",
        "GaussianDropout(0.3)", "SpatialDropout2D(0.5)"]
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for name in ("spatial_dropout1d", "gaussian_noise", "permute", "gaussian_dropout",
                 "spatial_dropout2d"):
        assert name in text
    assert "(None, 2, 6)" in text or "(2, 6)" in text


def test_the_random_layers_are_views_of_the_compiled_inference_plan():
    from fastnn.backends.fast_backend import InferPlan
    layers = [fnn.Conv2D(3, 3, activation="relu"), fnn.SpatialDropout2D(0.3),
              fnn.GaussianNoise(0.5), fnn.Flatten(), fnn.GaussianDropout(0.4),
              fnn.Dense(4), fnn.Dropout(0.2)]
    model = fnn.Sequential(layers, input_shape=(6, 5, 2), seed=0, backend="fast")
    assert isinstance(model._forward_plan, InferPlan)
    x = RNG.normal(size=(3, 6, 5, 2)).astype(np.float32)
    want = model.forward(x, training=False).copy()
    assert model._forward_plan.predict(x).tobytes() == want.tobytes()
    assert model.predict(x).tobytes() == want.tobytes()
    with_permute = fnn.Sequential([fnn.Permute((2, 1, 3)), fnn.Flatten(), fnn.Dense(2)],
                                  input_shape=(6, 5, 2), seed=0, backend="fast")
    assert with_permute._forward_plan is None                   # no plan step: per layer


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_export_matches_onnxruntime(dtype, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = fnn.Sequential([fnn.SpatialDropout1D(0.2), fnn.Permute((2, 1)),
                            fnn.GaussianNoise(0.1), fnn.GaussianDropout(0.3),
                            fnn.Reshape((2, 2, 2)), fnn.SpatialDropout2D(0.5),
                            fnn.Permute((3, 1, 2))],
                           input_shape=(4, 2), seed=0, dtype=dtype)
    path = fnn.onnx.export(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = RNG.normal(size=(5, 4, 2)).astype(dtype)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert got.tobytes() == model.predict(x).tobytes()


@pytest.mark.parametrize("dims, shape", [((2, 1), (4, 3)), ((3, 1, 2), (2, 3, 4)),
                                         ((2, 3, 1), (2, 3, 4)), ((1, 3, 2), (2, 5, 3))])
def test_onnx_transpose_imports_as_permute(dims, shape, tmp_path):
    """fastnn's Permute exported (an ONNX Transpose) and read back: a Permute layer with the
    same dims, bitwise the same predictions, at the end of the model or before a Dense."""
    pytest.importorskip("onnx")
    for layers in ([fnn.Conv1D(3, 1) if len(shape) == 2 else fnn.Dense(3), fnn.Permute(dims)],
                   [fnn.Permute(dims), fnn.Dense(2)]):
        model = fnn.Sequential(layers, input_shape=shape, seed=0)
        back = fnn.onnx.load(fnn.onnx.export(model, tmp_path / "m.onnx"))
        assert [type(layer).__name__ for layer in back.layers] == \
            [type(layer).__name__ for layer in model.layers]
        permute = next(layer for layer in back.layers if isinstance(layer, fnn.Permute))
        assert permute.dims == dims
        x = RNG.normal(size=(5, *shape)).astype(np.float32)
        assert back.predict(x).tobytes() == model.predict(x).tobytes()


@pytest.mark.parametrize("i, change, pattern", [
    (0, dict(dims=[1, 1]), r"layer 0 \(Permute\) is invalid.*dims must be a permutation"),
    (0, dict(dims=[2, 1, 3]), r"permutes samples of 3 dimensions"),
    (1, dict(stddev=None), r"layer 1 \(GaussianNoise\).*stddev=None"),
    (1, dict(state={"mask_seed": 1, "calls": 2**70}), r"GaussianNoise's state is out of range"),
    (1, dict(stddev=1e39), r"GaussianNoise\(1e\+39\): stddev must be 0 or a float32 normal "
                           r"number.*stddev=1e\+39, which in float32 overflows to inf"),
    (1, dict(stddev=1e-40), r"stddev=1e-40, which in float32 is subnormal"),
    (2, dict(rate=2), r"SpatialDropout1D.*rate=2.0"),
    (3, dict(seed=2**80), r"GaussianDropout.*seed must be below 2\*\*64"),
])
def test_forged_files_are_refused_by_name(i, change, pattern):
    import copy
    from fastnn.io import model_from_bytes, model_to_bytes
    from test_model_files import build, parse
    model = fnn.Sequential([fnn.Permute((2, 1)), fnn.GaussianNoise(0.1, seed=1),
                            fnn.SpatialDropout1D(0.2), fnn.GaussianDropout(0.3)],
                           input_shape=(3, 4), seed=0)
    version, header, start = parse(model_to_bytes(model))
    header = copy.deepcopy(header)
    header["model"]["layers"][i].update(change)           # a Sequential's layer configs
    blob = build(header, model_to_bytes(model)[start:], version=version)
    with pytest.raises(ValueError, match="not a valid fastnn model file") as info:
        model_from_bytes(blob)
    assert info.match(pattern), str(info.value)


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: fnn.Permute((1, 3)), ValueError, r"dims must be a permutation .* dims=\(1, 3\)"),
    (lambda: fnn.Permute((0, 1)), ValueError, r"dims=\(0, 1\)"),
    (lambda: fnn.Permute([]), ValueError, r"dims=\[\]"),
    (lambda: fnn.Permute(2), ValueError, r"dims=2"),
    (lambda: fnn.Permute((1.0, 2)), ValueError, r"dims=\(1.0, 2\)"),
    (lambda: fnn.Permute((True, 2)), ValueError, r"dims"),
    (lambda: fnn.Sequential([fnn.Permute((2, 1))], input_shape=(2, 3, 4)), ValueError,
     r"permutes samples of 2 dimensions"),
    (lambda: fnn.SpatialDropout1D(1.0), ValueError, r"rate.*Received: rate=1.0"),
    (lambda: fnn.SpatialDropout2D(-0.1), ValueError, r"rate"),
    (lambda: fnn.SpatialDropout2D(0.5, data_format="channels_first"), ValueError,
     r"channels-last"),
    (lambda: fnn.SpatialDropout1D("0.5"), TypeError, r"rate"),
    (lambda: fnn.SpatialDropout1D(0.5, seed=-1), ValueError, r"seed"),
    (lambda: fnn.Sequential([fnn.SpatialDropout1D(0.5)], input_shape=(2, 3, 4)), ValueError,
     r"\(steps, channels\)"),
    (lambda: fnn.Sequential([fnn.SpatialDropout2D(0.5)], input_dim=4), ValueError,
     r"\(height, width, channels\)"),
    (lambda: fnn.GaussianNoise(-0.5), ValueError, r"stddev.*-0.5"),
    (lambda: fnn.GaussianNoise(float("nan")), ValueError, r"stddev"),
    (lambda: fnn.GaussianNoise(None), TypeError, r"stddev"),
    (lambda: fnn.Sequential([fnn.GaussianNoise(1e39)], input_dim=3), ValueError,
     r"stddev must be 0 or a float32 normal number.*stddev=1e\+39, which in float32 overflows"),
    (lambda: fnn.Sequential([fnn.Dense(2), fnn.GaussianNoise(1e-40)], input_dim=3,
                            dtype="float32"), ValueError, r"stddev=1e-40.*subnormal"),
    (lambda: fnn.Model(*(lambda x: (x, fnn.GaussianNoise(3.5e38)(x)))(fnn.Input((3,)))),
     ValueError, r"stddev=3\.5e\+38, which in float32 overflows"),
    (lambda: fnn.GaussianDropout(1.0), ValueError, r"rate"),
    (lambda: fnn.GaussianDropout(0.5, seed=2**64), ValueError, r"seed must be below 2\*\*64"),
    (lambda: fnn.GaussianNoise(0.1).set_state({"calls": 1}), ValueError,
     r"GaussianNoise's state must be"),
    (lambda: fnn.TimeDistributed(fnn.GaussianNoise(0.1)), TypeError, r"TimeDistributed"),
])
def test_bad_arguments_are_refused(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_gaussian_noise_stddev_is_checked_against_the_models_dtype():
    """1e39 overflows float32, not float64; the refusal changes nothing (the layer can go into
    a float64 model afterwards)."""
    layer = fnn.GaussianNoise(1e39, seed=0)
    with pytest.raises(ValueError, match=r"stddev=1e\+39"):
        fnn.Sequential([layer], input_dim=3)
    model = fnn.Sequential([layer], input_dim=3, dtype="float64")
    assert np.all(np.isfinite(model.forward(np.ones((2, 3)))))
    assert fnn.Sequential([fnn.GaussianNoise(0.0)], input_dim=3).predict(np.ones((1, 3))).shape \
        == (1, 3)


# --------------------------------------------------------------------------- Sequential.pop
@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_pop_keeps_the_remaining_weights_and_rebuilds(backend):
    model = fnn.Sequential([fnn.Dense(8, activation="relu"), fnn.Dropout(0.2, seed=1),
                            fnn.BatchNormalization(), fnn.Dense(3, activation="softmax")],
                           input_dim=4, seed=0, backend=backend)
    model.compile("cross_entropy", fnn.Adam(0.01))
    X, y = RNG.normal(size=(32, 4)), RNG.integers(0, 3, 32)
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    kept = [layer.get_weights() for layer in model.layers[:3]]
    head = model.layers[-1]
    head_weights = head.get_weights()
    calls = model.layers[1].calls
    assert model.pop() is head
    assert len(model.layers) == 3 and model.output_shape == (8,) and model.built
    assert [w.tobytes() for layer, ws in zip(model.layers, kept) for w in ws] == \
        [w.tobytes() for layer in model.layers for w in layer.get_weights()]
    assert [w.tobytes() for w in head.get_weights()] == [w.tobytes() for w in head_weights]
    assert model.layers[1].calls == calls
    assert model.optimizer is None and model.loss is None            # compile again
    h = model.layers[2]
    expect = np.maximum(X @ kept[0][0] + kept[0][1], 0)
    expect = (expect - kept[2][2]) / np.sqrt(kept[2][3] + h.epsilon) * kept[2][0] + kept[2][1]
    np.testing.assert_allclose(model.predict(X), expect, rtol=1e-4, atol=1e-5)
    model.compile("mse", "sgd")
    model.fit(X, RNG.normal(size=(32, 8)), epochs=1, batch_size=8, verbose=0)
    assert [layer.name for layer in model.layers] == ["dense", "dropout", "batch_normalization"]
    wider = fnn.Sequential([model, fnn.Dense(2)], seed=1, backend=backend)  # a new head
    assert wider.predict(X).shape == (32, 2)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_pop_switches_between_the_fast_and_general_paths(backend):
    model = fnn.Sequential([fnn.Dense(5, activation="tanh"), fnn.Dense(4), fnn.Permute((1,))],
                           input_dim=3, seed=0, backend=backend)
    assert model.path == "general"
    x = RNG.normal(size=(6, 3)).astype(np.float32)
    before = model.predict(x)
    model.pop()
    assert model.path == "fast" and model.predict(x).tobytes() == before.tobytes()
    model.pop()
    assert model.output_shape == (5,) and len(model.get_weights()) == 2


def test_pop_on_unbuilt_and_bad_uses():
    model = fnn.Sequential([fnn.Dense(3), fnn.Dense(2)])
    last = model.layers[-1]
    assert model.pop() is last and not model.built and len(model.layers) == 1
    model.pop()
    with pytest.raises(IndexError, match="no layers"):
        model.pop()
    built = fnn.Sequential([fnn.Dense(3), fnn.Dense(2)], input_dim=2)
    with pytest.raises(ValueError, match="rebuild=False"):
        built.pop(rebuild=False)
    with pytest.raises(TypeError, match="rebuild"):
        built.pop(rebuild="yes")
    built.pop()
    with pytest.raises(ValueError, match="at least one layer"):
        built.pop()
    assert len(built.layers) == 1 and built.built


# --------------------------------------------------------------------------- Sequential.add, built
@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_add_on_a_built_model_rebuilds_it_keeping_the_weights(backend):
    """Keras' model.pop(); model.add(new_head): the kept layers' weights bitwise, the new
    layer's initialised, the compile settings gone (compile again), predict and fit work."""
    model = fnn.Sequential([fnn.Dense(8, activation="relu"), fnn.Dropout(0.2, seed=1),
                            fnn.BatchNormalization(), fnn.Dense(3, activation="softmax")],
                           input_dim=4, seed=0, backend=backend)
    model.compile("cross_entropy", fnn.Adam(0.01))
    X, y = RNG.normal(size=(32, 4)), RNG.integers(0, 3, 32)
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    model.pop()
    kept = [w.tobytes() for w in model.get_weights()]
    calls = model.layers[1].calls
    head = fnn.Dense(5, activation="softmax", kernel_initializer="ones", bias_initializer="ones")
    model.add(head)
    assert model.built and model.output_shape == (5,) and model.layers[-1] is head
    assert [w.tobytes() for w in model.get_weights()[:len(kept)]] == kept
    assert model.layers[1].calls == calls
    assert np.all(head.get_weights()[0] == 1) and np.all(head.get_weights()[1] == 1)
    assert head.get_weights()[0].shape == (8, 5)
    assert model.loss is None and model.optimizer is None
    k, b = head.get_weights()
    hidden = fnn.Sequential([fnn.Dense(8, activation="relu"), fnn.Dropout(0.2),
                             fnn.BatchNormalization()], input_dim=4, backend=backend)
    hidden.set_weights(model.get_weights()[:len(kept)])
    z = hidden.predict(X).astype(np.float64) @ k + b
    expect = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict(X), expect / expect.sum(axis=1, keepdims=True),
                               rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="compile"):
        model.fit(X, y, epochs=1, verbose=0)
    model.compile("cross_entropy", fnn.SGD(0.1))
    before = model.get_weights()
    model.fit(X, RNG.integers(0, 5, 32), epochs=2, batch_size=8, verbose=0)
    assert model.optimizer.iterations == 8
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights())
               if a.ndim == 2)
    # a Dense head on a random (not "ones") initializer: drawn from the model's seed
    model.add(fnn.Dense(2))
    assert np.std(model.layers[-1].get_weights()[0]) > 0 and model.output_shape == (2,)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_add_of_a_layer_that_cannot_take_the_output_leaves_the_model_as_it_was(backend):
    model = fnn.Sequential([fnn.Dense(6, activation="tanh", name="first"), fnn.Dense(4)],
                           input_dim=3, seed=0, backend=backend)
    model.compile("mse", fnn.Adam(0.01))
    x = RNG.normal(size=(5, 3))
    model.fit(x, RNG.normal(size=(5, 4)), epochs=1, verbose=0)
    before, out = [w.tobytes() for w in model.get_weights()], model.predict(x)
    opt = model.optimizer
    for layer, pattern in ((fnn.Conv2D(2, 3), r"\(height, width, channels\)|4"),
                           (fnn.Dense(2, name="first"), r"two layers are named 'first'"),
                           (fnn.GaussianNoise(1e39), r"stddev=1e\+39")):
        with pytest.raises(ValueError, match=pattern):
            model.add(layer)
        assert len(model.layers) == 2 and model.output_shape == (4,)
        assert [w.tobytes() for w in model.get_weights()] == before
        assert model.optimizer is opt and model.predict(x).tobytes() == out.tobytes()
    model.fit(x, RNG.normal(size=(5, 4)), epochs=1, verbose=0)          # still compiled
    assert opt.iterations == 2
    before = [w.tobytes() for w in model.get_weights()]
    with pytest.raises(ValueError, match="already belongs to a built model"):
        model.add(model.layers[0])
    wide = fnn.Sequential([fnn.Dense(4)], input_dim=4, seed=1, backend=backend)
    model.add(wide)                                      # a built model as the last layer
    assert model.output_shape == (4,) and model.predict(x).shape == (5, 4)
    assert [w.tobytes() for w in model.get_weights()[:4]] == before
