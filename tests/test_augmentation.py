"""Keras' image augmentation layers (fastnn/layers/augmentation.py) and the affine resampling
kernel under them (fastnn/_ext/_layer_ops.pyx, twin in fastnn/backends/numpy_layer_ops.py).

- the kernel against Keras' own ``keras.ops.image.affine_transform`` (numpy backend) for every
  fill mode and interpolation, maps that reach far outside the image included; compiled =
  twin, bitwise; 1 and 2 threads, bitwise;
- its backward pass is its adjoint: <A x, g> = <x, A^T g> in float64, and finite differences
  through a model with the layers in the middle, on both backends;
- the layers against Keras' layers where a draw is fixed (a range of one value), Keras' flip
  and contrast formulas written out, inference unchanged, seeds, files, bad arguments;
- learning: on the bundled digits, a network trained with random shifts classifies shifted
  held-out digits better than the same network trained without.
"""

import os

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients
from fastnn.backends import get_backend

BACKENDS = ["fast", "numpy"]
MODES = ["constant", "nearest", "wrap", "reflect", "mirror"]
keras = None


def _keras():
    global keras
    if keras is None:
        os.environ.setdefault("KERAS_BACKEND", "numpy")
        keras = pytest.importorskip("keras")
    return keras


def _maps(rng, n, h, w):
    """Rotations with zooms (out to 3x: reads far past the edges) and shifts."""
    angle = rng.uniform(-np.pi, np.pi, n)
    scale = rng.uniform(0.4, 3.0, n)
    return np.stack([scale * np.cos(angle), -scale * np.sin(angle), rng.uniform(-2 * w, 2 * w, n),
                     scale * np.sin(angle), scale * np.cos(angle), rng.uniform(-2 * h, 2 * h, n)],
                    axis=1)


def _resample(backend, x, T, bilinear, mode, fill=0.0):
    y = np.full_like(x, np.nan)
    get_backend(backend).affine_resample(x, T, bilinear, MODES.index(mode), fill, y)
    return y


def _adjoint(backend, g, T, bilinear, mode):
    dx = np.full_like(g, np.nan)
    get_backend(backend).affine_resample_backward(g, T, bilinear, MODES.index(mode), dx)
    return dx


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_kernel_matches_keras_affine_transform(mode, interpolation):
    k = _keras()
    rng = np.random.default_rng(MODES.index(mode))
    x = rng.standard_normal((6, 7, 10, 3)).astype(np.float32)
    T = _maps(rng, 6, 7, 10).astype(np.float32).astype(np.float64)
    want = np.asarray(k.ops.image.affine_transform(
        x, np.concatenate([T, np.zeros((6, 2))], axis=1).astype(np.float32),
        interpolation=interpolation, fill_mode=mode, fill_value=0.7))
    for backend in BACKENDS:
        got = _resample(backend, x, T, interpolation == "bilinear", mode, 0.7)
        assert np.abs(got - want).max() <= 2e-5, backend


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
def test_compiled_equals_twin_and_threads_bitwise(mode, dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 9, 8, 2)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    T = _maps(rng, 5, 9, 8)
    T[0] = [1, 0, 0, 0, 1, 0]                    # the identity: an exact copy
    T[1] = [-1, 0, 7, 0, 1, 0]                   # a flip
    previous = fnn.get_num_threads()
    try:
        for bilinear in (False, True):
            results = []
            for backend, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
                fnn.set_num_threads(threads)
                results.append((_resample(backend, x, T, bilinear, mode, 0.5),
                                _adjoint(backend, g, T, bilinear, mode)))
            (ref_y, ref_dx), (y1, dx1), (y2, dx2) = results
            assert ref_y[0].tobytes() == x[0].tobytes()
            assert ref_y[1].tobytes() == x[1, :, ::-1].tobytes()
            assert y1.tobytes() == ref_y.tobytes() and y2.tobytes() == ref_y.tobytes()
            assert dx2.tobytes() == dx1.tobytes()
            if dtype == "float64":
                assert dx1.tobytes() == ref_dx.tobytes()
            else:                 # float32 sums: the twin rounds once, the kernel each add
                assert np.abs(dx1 - ref_dx).max() <= 1e-5 * np.abs(ref_dx).max()
    finally:
        fnn.set_num_threads(previous)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bilinear", [False, True])
def test_backward_is_the_adjoint(mode, bilinear, backend):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6, 5, 3))
    g = rng.standard_normal(x.shape)
    T = _maps(rng, 4, 6, 5)
    Ax = _resample(backend, x, T, bilinear, mode, 0.0)
    Atg = _adjoint(backend, g, T, bilinear, mode)
    assert abs(np.sum(Ax * g) - np.sum(x * Atg)) <= 1e-12 * np.sum(np.abs(Ax * g))


def _model(backend, dtype="float64", seed=0):
    """Dense -> the augmentation layers in the middle -> Conv -> Dense."""
    return fnn.Sequential([
        fnn.Dense(4 * 5 * 2, activation="tanh"), fnn.Reshape((4, 5, 2)),
        fnn.RandomFlip(seed=1), fnn.RandomRotation(0.2, fill_mode="wrap", seed=2),
        fnn.RandomZoom(0.3, (-0.2, 0.1), fill_mode="constant", fill_value=0.3, seed=3),
        fnn.RandomTranslation(0.3, 0.2, fill_mode="mirror", seed=4),
        fnn.RandomContrast((0.3, 0.2), value_range=(-0.8, 0.8), seed=5),
        fnn.Conv2D(3, 2, activation="tanh"), fnn.Flatten(), fnn.Dense(2)],
        input_dim=3, seed=seed, dtype=dtype, backend=backend)


def _replay(model):
    """Make every pass draw what the first one did."""
    for layer in model.layers:
        if hasattr(layer, "calls"):
            layer.calls = 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_finite_differences(backend):
    model = _model(backend)
    x = np.random.default_rng(1).standard_normal((6, 3))
    R = np.random.default_rng(2).standard_normal((6, 2))
    check_model_gradients(model, x, R, before_pass=lambda: _replay(model))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backends_and_threads_train_alike(dtype):
    runs = []
    for backend, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
        with fnn.threads(threads):
            model = _model(backend, dtype)
            model.compile("mse", fnn.SGD(learning_rate=0.1, momentum=0.9))
            x = np.random.default_rng(3).standard_normal((16, 3))
            y = np.random.default_rng(4).standard_normal((16, 2))
            losses = [model.train_on_batch(x, y) for _ in range(4)]
            runs.append((losses, model.get_weights()))
    for losses, weights in runs[1:]:
        assert np.allclose(losses, runs[0][0], rtol=1e-5 if dtype == "float32" else 1e-12)
    assert runs[1][0] == runs[2][0]
    for a, b in zip(runs[1][1], runs[2][1]):
        assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------- the layers
def _one(layer, x, backend="fast", dtype="float32"):
    model = fnn.Sequential([layer], input_shape=x.shape[1:], backend=backend, dtype=dtype)
    return model, model.forward(x, training=True)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_fixed_draws_match_keras_layers(interpolation):
    """A range of one value makes a layer's draw certain: Keras' layer gives the output."""
    k = _keras()
    x = np.random.default_rng(6).uniform(0, 255, (3, 9, 12, 2)).astype(np.float32)
    cases = [
        (fnn.RandomRotation((0.1, 0.1), fill_mode="constant", interpolation=interpolation,
                            fill_value=9.0),
         k.layers.RandomRotation((0.1, 0.1), fill_mode="constant", interpolation=interpolation,
                                 fill_value=9.0)),
        (fnn.RandomRotation((-0.3, -0.3), interpolation=interpolation),
         k.layers.RandomRotation((-0.3, -0.3), interpolation=interpolation)),
        (fnn.RandomZoom((0.4, 0.4), (-0.3, -0.3), fill_mode="wrap",
                        interpolation=interpolation),
         k.layers.RandomZoom((0.4, 0.4), (-0.3, -0.3), fill_mode="wrap",
                             interpolation=interpolation)),
        (fnn.RandomTranslation((0.25, 0.25), (-0.4, -0.4), fill_mode="nearest",
                               interpolation=interpolation),
         k.layers.RandomTranslation((0.25, 0.25), (-0.4, -0.4), fill_mode="nearest",
                                    interpolation=interpolation)),
    ]
    for ours, theirs in cases:
        got = _one(ours, x)[1]
        want = np.asarray(theirs(x, training=True))
        assert np.abs(got - want).max() <= 2e-3, ours       # on values up to 255


def test_flip_flips_half_the_images_as_keras():
    x = np.random.default_rng(7).standard_normal((400, 4, 5, 2)).astype(np.float32)
    for mode, flipped in (("horizontal", x[:, :, ::-1]), ("vertical", x[:, ::-1]),
                          ("horizontal_and_vertical", x[:, ::-1, ::-1])):
        _, y = _one(fnn.RandomFlip(mode, seed=3), x)
        same = (y == x).all(axis=(1, 2, 3))
        flip = (y == flipped).all(axis=(1, 2, 3))
        assert (same ^ flip).all()
        assert 160 < flip.sum() < 240


def test_contrast_formula():
    """Per image and channel, y = clip((x - mean) f + mean) with one f per image in
    [1 - lower, 1 + upper]; the draws spread over that range."""
    x = np.random.default_rng(8).uniform(0, 255, (300, 5, 6, 3))
    for backend in BACKENDS:
        _, y = _one(fnn.RandomContrast((0.2, 0.3), seed=1), x, backend, "float64")
        mean = x.mean(axis=(1, 2), keepdims=True)
        inside = (y > 0) & (y < 255)
        ratio = np.where(inside, (y - mean) / (x - mean), np.nan)      # f where not clipped
        f = np.nanmedian(ratio.reshape(len(x), -1), axis=1).reshape(-1, 1, 1, 1)
        want = np.clip((x - mean) * f + mean, 0, 255)
        assert np.allclose(y, want, rtol=0, atol=1e-9)
        assert inside.mean() < 1                    # some values were clipped
        assert 0.8 - 1e-9 <= f.min() < 0.85 and 1.25 < f.max() <= 1.3 + 1e-9


@pytest.mark.parametrize("backend", BACKENDS)
def test_inference_passes_images_unchanged_and_seeds_repeat(backend):
    x = np.random.default_rng(9).uniform(0, 1, (4, 6, 6, 3))
    layers = lambda: [fnn.RandomFlip(seed=1), fnn.RandomRotation(0.2, seed=2),  # noqa: E731
                      fnn.RandomZoom(0.2, seed=3), fnn.RandomTranslation(0.1, 0.1, seed=4),
                      fnn.RandomContrast(0.3, value_range=(0, 1), seed=5)]
    a = fnn.Sequential(layers(), input_shape=(6, 6, 3), backend=backend, dtype="float64")
    b = fnn.Sequential(layers(), input_shape=(6, 6, 3), backend=backend, dtype="float64")
    assert a.predict(x).tobytes() == x.tobytes()
    first = a.forward(x, training=True).copy()
    assert not np.allclose(first, x)
    assert b.forward(x, training=True).tobytes() == first.tobytes()     # the same seeds
    assert not np.allclose(a.forward(x, training=True), first)          # a new draw


def test_files_keep_the_layers_and_their_stream(tmp_path):
    model = _model("fast", "float32")
    model.compile("mse", "adam")
    x = np.random.default_rng(3).standard_normal((8, 3))
    y = np.random.default_rng(4).standard_normal((8, 2))
    model.train_on_batch(x, y)
    model.save(tmp_path / "aug.fnn")
    loaded = fnn.load(tmp_path / "aug.fnn")
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    assert loaded.train_on_batch(x, y) == model.train_on_batch(x, y)
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()


BAD = [
    (lambda: fnn.RandomRotation(1.5), ValueError, r"factor must be in \[-1, 1\]"),
    (lambda: fnn.RandomRotation((0.1, 0.2, 0.3)), ValueError, "pair"),
    (lambda: fnn.RandomRotation("x"), TypeError, "factor"),
    (lambda: fnn.RandomRotation(0.1, fill_mode="edge"), ValueError, "fill_mode"),
    (lambda: fnn.RandomRotation(0.1, interpolation="cubic"), ValueError, "interpolation"),
    (lambda: fnn.RandomRotation(0.1, fill_value=float("nan")), ValueError, "fill_value"),
    (lambda: fnn.RandomRotation(0.1, data_format="channels_first"), ValueError, "channels"),
    (lambda: fnn.RandomZoom(1.0), ValueError, r"height_factor must be in \(-1, 1\]"),
    (lambda: fnn.RandomZoom((-1.0, 0.2)), ValueError, "height_factor"),
    (lambda: fnn.RandomZoom(0.2, 3.0), ValueError, "width_factor"),
    (lambda: fnn.RandomTranslation(0.1, -1.5), ValueError, "width_factor"),
    (lambda: fnn.RandomFlip("diagonal"), ValueError, "mode"),
    (lambda: fnn.RandomContrast(1.5), ValueError, "factor"),
    (lambda: fnn.RandomContrast(0.2, value_range=(1, 0)), ValueError, "value_range"),
    (lambda: fnn.RandomContrast(0.2, value_range=5), ValueError, "value_range"),
    (lambda: fnn.RandomFlip(seed=-1), ValueError, "seed"),
    (lambda: fnn.Sequential([fnn.RandomFlip()], input_shape=(4, 4)), ValueError,
     r"\(height, width, channels\)"),
    (lambda: fnn.Sequential([fnn.RandomRotation(0.1, fill_value=1e39)], input_shape=(4, 4, 1)),
     ValueError, "fill_value"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_arguments_are_refused(case):
    make, error, match = BAD[case]
    with pytest.raises(error, match=match):
        make()


def test_learning_with_random_shifts_generalises_to_shifted_digits():
    """Two seeded copies of a small network on the bundled 8x8 digits, one with
    RandomTranslation in front: on held-out digits shifted by a pixel, the augmented one is
    clearly better."""
    from fastnn.datasets import load_digits
    X, y = load_digits()
    X = (X / 16.0).reshape(-1, 8, 8, 1).astype(np.float32)
    train, test = slice(0, 1400), slice(1400, None)
    shifted = np.zeros_like(X[test])
    rng = np.random.default_rng(0)
    for i, image in enumerate(X[test]):
        dy, dx = rng.choice([-1, 1], 2)
        shifted[i] = np.roll(image, (dy, dx), axis=(0, 1))
    scores = {}
    for augment in (False, True):
        front = [fnn.RandomTranslation(0.15, 0.15, fill_mode="constant", seed=1)] if augment \
            else []
        model = fnn.Sequential(front + [fnn.Conv2D(16, 3, activation="relu"), fnn.Flatten(),
                                        fnn.Dense(10, activation="softmax")],
                               input_shape=(8, 8, 1), seed=0)
        model.compile("sparse_categorical_crossentropy", fnn.Adam(learning_rate=0.01),
                      metrics=["accuracy"])
        model.fit(X[train], y[train], epochs=12, batch_size=32, verbose=0)
        scores[augment] = (model.evaluate(X[test], y[test])["accuracy"],
                           model.evaluate(shifted, y[test])["accuracy"])
    assert scores[True][0] > 0.9
    assert scores[True][1] > scores[False][1] + 0.1, scores
