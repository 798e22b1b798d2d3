"""Keras' image sizing layers (fastnn/layers/image_resizing.py) and the per-pixel grid
resampling kernel (``resample_grid`` in fastnn/_ext/_layer_ops.pyx, twin in
fastnn/backends/numpy_layer_ops.py; the layers run on its separable form, ``resize_separable``,
tests/test_resizing_separable.py): Keras' own layers on the same images (Resizing in every
interpolation and aspect-ratio mode, CenterCrop, RandomCrop where its output is certain),
RandomCrop's windows, compiled = twin bitwise at 1 and 2 threads, the backward pass as the
adjoint and by finite differences on both backends, files, bad arguments."""

import os

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients
from fastnn.backends import get_backend

BACKENDS = ["fast", "numpy"]
SHAPES = [(7, 10), (12, 5), (6, 6)]
TARGETS = [(4, 4), (9, 13), (5, 8), (6, 6)]
keras = None


def _keras():
    global keras
    if keras is None:
        os.environ.setdefault("KERAS_BACKEND", "numpy")
        keras = pytest.importorskip("keras")
    return keras


def _images(H, W, n=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, H, W, 3)).astype(np.float32)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("aspect", ["stretch", "crop", "pad"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_resizing_matches_keras(interpolation, aspect, backend):
    k = _keras()
    kw = {"stretch": {}, "crop": {"crop_to_aspect_ratio": True},
          "pad": {"pad_to_aspect_ratio": True, "fill_value": 7.0}}[aspect]
    for H, W in SHAPES:
        x = _images(H, W)
        for h, w in TARGETS:
            want = np.asarray(k.layers.Resizing(h, w, interpolation=interpolation, **kw)(x))
            model = fnn.Sequential([fnn.Resizing(h, w, interpolation=interpolation, **kw)],
                                   input_shape=(H, W, 3), backend=backend)
            assert np.abs(model.predict(x) - want).max() <= 1e-3, (H, W, h, w)


@pytest.mark.parametrize("backend", BACKENDS)
def test_center_crop_and_random_crop_match_keras(backend):
    k = _keras()
    for H, W in SHAPES:
        x = _images(H, W, seed=1)
        for h, w in TARGETS:
            crop = fnn.Sequential([fnn.CenterCrop(h, w)], input_shape=(H, W, 3), backend=backend)
            assert np.abs(crop.predict(x) - np.asarray(k.layers.CenterCrop(h, w)(x))).max() \
                <= 1e-3, (H, W, h, w)
            # RandomCrop in inference, and in training on images not larger than its window:
            # the largest centred window of the aspect ratio, resized, as Keras documents
            # (Keras 3's code returns the images unchanged in inference, and in training
            # slices the window's size from that window's corner before resizing)
            rand = fnn.Sequential([fnn.RandomCrop(h, w, seed=1)], input_shape=(H, W, 3),
                                  backend=backend)
            want = np.asarray(k.layers.Resizing(h, w, crop_to_aspect_ratio=True)(x))
            assert np.abs(rand.predict(x) - want).max() <= 1e-3
            if not (H > h and W > w):
                assert np.abs(rand.forward(x, training=True) - want).max() <= 1e-3


def test_random_crop_takes_random_windows():
    x = _images(12, 15, n=3, seed=2)
    model = fnn.Sequential([fnn.RandomCrop(5, 6, seed=3)], input_shape=(12, 15, 3))
    seen = set()
    for _ in range(40):
        y = model.forward(x, training=True)
        places = [(t, l) for t in range(12 - 5 + 1) for l in range(15 - 6 + 1)
                  if np.array_equal(y, x[:, t:t + 5, l:l + 6])]
        assert len(places) == 1                   # one window, the same for the batch
        seen.add(places[0])
    assert len(seen) > 20
    again = fnn.Sequential([fnn.RandomCrop(5, 6, seed=3)], input_shape=(12, 15, 3))
    first = fnn.Sequential([fnn.RandomCrop(5, 6, seed=3)], input_shape=(12, 15, 3))
    assert again.forward(x, training=True).tobytes() == first.forward(x, training=True).tobytes()


def _grid(backend, x, rows, cols, bilinear, mode, fill=0.0):
    n, c = x.shape[0], x.shape[3]
    y = np.full((n, len(rows), len(cols), c), np.nan, x.dtype)
    get_backend(backend).resample_grid(x, rows, cols, bilinear, mode, fill, y)
    return y


def _grid_adjoint(backend, g, rows, cols, bilinear, mode, shape):
    dx = np.full(shape, np.nan, g.dtype)
    get_backend(backend).resample_grid_backward(g, rows, cols, bilinear, mode, dx)
    return dx


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", range(5))
def test_grid_kernel_equals_twin_at_any_threads_and_is_its_adjoint(mode, dtype):
    rng = np.random.default_rng(mode)
    x = rng.standard_normal((5, 9, 7, 3)).astype(dtype)
    rows = rng.uniform(-12, 20, 11)
    cols = rng.uniform(-9, 15, 6)
    rows[0], cols[0] = 2.0, 3.0                  # exact pixels
    g = rng.standard_normal((5, 11, 6, 3)).astype(dtype)
    previous = fnn.get_num_threads()
    try:
        for bilinear in (False, True):
            out = []
            for backend, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
                fnn.set_num_threads(threads)
                out.append((_grid(backend, x, rows, cols, bilinear, mode, 0.25),
                            _grid_adjoint(backend, g, rows, cols, bilinear, mode, x.shape)))
            (y0, d0), (y1, d1), (y2, d2) = out
            assert y1.tobytes() == y0.tobytes() and y2.tobytes() == y0.tobytes()
            assert d2.tobytes() == d1.tobytes()
            tol = 0 if dtype == "float64" else 1e-5 * np.abs(d0).max()
            assert np.abs(d1 - d0).max() <= tol
            assert y0[:, 0, 0].tobytes() == x[:, 2, 3].tobytes()
            if dtype == "float64":
                Ax = _grid("fast", x, rows, cols, bilinear, mode, 0.0)
                assert abs(np.sum(Ax * g) - np.sum(x * d1)) <= 1e-12 * np.sum(np.abs(Ax * g))
    finally:
        fnn.set_num_threads(previous)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_finite_differences(backend):
    model = fnn.Sequential([
        fnn.Dense(5 * 6 * 2, activation="tanh"), fnn.Reshape((5, 6, 2)),
        fnn.Resizing(7, 4, pad_to_aspect_ratio=True, fill_value=0.5), fnn.CenterCrop(5, 3),
        fnn.Resizing(3, 3, interpolation="nearest"), fnn.RandomCrop(2, 2, seed=1),
        fnn.Flatten(), fnn.Dense(2)], input_dim=3, seed=0, dtype="float64", backend=backend)
    crop = model.layers[5]
    x = np.random.default_rng(1).standard_normal((4, 3))
    R = np.random.default_rng(2).standard_normal((4, 2))

    def same_window():
        crop.calls = 0

    check_model_gradients(model, x, R, before_pass=same_window)


def test_files_round_trip(tmp_path):
    model = fnn.Sequential([fnn.Resizing(6, 6, crop_to_aspect_ratio=True), fnn.RandomCrop(4, 4),
                            fnn.CenterCrop(3, 3), fnn.Flatten(), fnn.Dense(2)],
                           input_shape=(8, 11, 2), seed=0)
    x = _images(8, 11, n=5)[..., :2]
    model.compile("mse", "sgd")
    model.train_on_batch(x, np.zeros((5, 2)))
    model.save(tmp_path / "m.fnn")
    loaded = fnn.load(tmp_path / "m.fnn")
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
    assert loaded.train_on_batch(x, np.zeros((5, 2))) == model.train_on_batch(x, np.zeros((5, 2)))


BAD = [
    (lambda: fnn.Resizing(0, 4), ValueError, "height"),
    (lambda: fnn.Resizing(4, 2.5), TypeError, "width"),
    (lambda: fnn.Resizing(4, 4, interpolation="bicubic"), ValueError, "not provided"),
    (lambda: fnn.Resizing(4, 4, interpolation="cubic"), ValueError, "interpolation"),
    (lambda: fnn.Resizing(4, 4, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), ValueError,
     "Only one"),
    (lambda: fnn.Resizing(4, 4, fill_mode="reflect"), ValueError, "fill_mode"),
    (lambda: fnn.Resizing(4, 4, fill_value=float("inf")), ValueError, "fill_value"),
    (lambda: fnn.CenterCrop(4, 4, data_format="channels_first"), ValueError, "channels"),
    (lambda: fnn.RandomCrop(4, -1), ValueError, "width"),
    (lambda: fnn.Sequential([fnn.CenterCrop(2, 2)], input_shape=(5, 5)), ValueError,
     r"\(height, width, channels\)"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_arguments_are_refused(case):
    make, error, match = BAD[case]
    with pytest.raises(error, match=match):
        make()
