"""The separable grid kernel under the sizing layers (``resize_separable`` and its adjoint in
fastnn/_ext/_layer_ops.pyx, twin in fastnn/backends/numpy_layer_ops.py, tables from
``grid_tables``): the same values as the per-pixel grid sampler ``resample_grid`` in every mode
of Resizing, PyTorch's ``F.interpolate`` in float64 (values and input gradients), compiled =
twin bitwise at 1 and 2 threads, the adjoint identity, finite differences, inf and nan kept to
their pixels, bad tables refused."""

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients
from fastnn.backends import get_backend
from fastnn.backends.numpy_layer_ops import grid_tables

BACKENDS = ["fast", "numpy"]
# (input h, w) -> (output h, w): up, down, mixed, same, to and from one pixel
SIZES = [((7, 10), (12, 15)), ((16, 13), (5, 4)), ((9, 6), (4, 11)), ((8, 8), (8, 8)),
         ((1, 5), (3, 2)), ((6, 7), (1, 1))]
MODES = [{}, {"crop_to_aspect_ratio": True}, {"pad_to_aspect_ratio": True, "fill_value": 2.5}]


def _old(layer, x, training=False):
    """The layer's grid through the per-pixel sampler (the path before the separable one)."""
    rows, cols, bilinear, mode, fill = layer.grid(training)
    n, c = x.shape[0], x.shape[3]
    y = np.full((n, len(rows), len(cols), c), np.nan, x.dtype)
    get_backend("fast").resample_grid(x, rows, cols, bilinear, mode, fill, y)
    return y


def _old_adjoint(layer, g, shape):
    rows, cols, bilinear, mode, _ = layer.grid(False)
    dx = np.full(shape, np.nan, g.dtype)
    get_backend("fast").resample_grid_backward(g, rows, cols, bilinear, mode, dx)
    return dx


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-6), ("float64", 1e-12)])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("mode", range(len(MODES)))
@pytest.mark.parametrize("backend", BACKENDS)
def test_same_values_as_the_grid_sampler(backend, mode, interpolation, dtype, tol):
    rng = np.random.default_rng(mode)
    for (H, W), (h, w) in SIZES:
        x = rng.uniform(-3, 3, (3, H, W, 2)).astype(dtype)
        model = fnn.Sequential([fnn.Resizing(h, w, interpolation=interpolation,
                                             **MODES[mode])],
                               input_shape=(H, W, 2), dtype=dtype, backend=backend)
        layer = model.layers[0]
        y = model.predict(x)
        want = _old(layer, x)
        assert np.abs(y - want).max() <= tol * max(1.0, np.abs(want).max()), (H, W, h, w)
        g = rng.standard_normal(y.shape).astype(dtype)
        dx = np.full(x.shape, np.nan, dtype)
        get_backend(backend).resize_separable_backward(g, *layer.tables(False)[:4], dx)
        want = _old_adjoint(layer, g, x.shape)
        assert np.abs(dx - want).max() <= tol * max(1.0, np.abs(want).max()), (H, W, h, w)


torch = None


def _torch():
    global torch
    if torch is None:
        torch = pytest.importorskip("torch")
    return torch


@pytest.mark.parametrize("interpolation,torch_mode", [("bilinear", "bilinear"),
                                                       ("nearest", "nearest-exact")])
@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_pytorch_in_float64(backend, interpolation, torch_mode):
    t = _torch()
    rng = np.random.default_rng(3)
    for (H, W), (h, w) in SIZES:
        x = rng.standard_normal((2, H, W, 3))
        g = rng.standard_normal((2, h, w, 3))
        model = fnn.Sequential([fnn.Resizing(h, w, interpolation=interpolation)],
                               input_shape=(H, W, 3), dtype="float64", backend=backend)
        y = model.predict(x)
        xt = t.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
        yt = t.nn.functional.interpolate(xt, size=(h, w), mode=torch_mode,
                                         **({"align_corners": False}
                                            if torch_mode == "bilinear" else {}))
        want = yt.detach().numpy().transpose(0, 2, 3, 1)
        assert np.abs(y - want).max() <= 1e-10 * np.abs(want).max(), (H, W, h, w)
        (yt * t.tensor(g.transpose(0, 3, 1, 2))).sum().backward()
        want_dx = xt.grad.numpy().transpose(0, 2, 3, 1)
        dx = np.empty_like(x)
        get_backend(backend).resize_separable_backward(g, *model.layers[0].tables(False)[:4], dx)
        assert np.abs(dx - want_dx).max() <= 1e-10 * np.abs(want_dx).max(), (H, W, h, w)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("mode", range(len(MODES)))
def test_compiled_equals_twin_bitwise_at_1_and_2_threads(mode, interpolation, dtype):
    # large enough for two threads (the kernels run small calls on one)
    rng = np.random.default_rng(10 + mode)
    x = rng.standard_normal((16, 37, 29, 3)).astype(dtype)
    layer = fnn.Resizing(48, 64, interpolation=interpolation, **MODES[mode])
    fnn.Sequential([layer], input_shape=x.shape[1:], dtype=dtype)
    tables = layer.tables(False)
    g = rng.standard_normal((16, 48, 64, 3)).astype(dtype)
    previous = fnn.get_num_threads()
    out = []
    try:
        for backend, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
            fnn.set_num_threads(threads)
            be = get_backend(backend)
            y = np.full(g.shape, np.nan, dtype)
            be.resize_separable(x, *tables, y)
            dx = np.full(x.shape, np.nan, dtype)
            be.resize_separable_backward(g, *tables[:4], dx)
            out.append((y.tobytes(), dx.tobytes()))
    finally:
        fnn.set_num_threads(previous)
    assert out[1] == out[0] and out[2] == out[0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bilinear", [False, True])
@pytest.mark.parametrize("mode", [0, 1, 2, 3, 4])
def test_backward_is_the_adjoint_on_any_grid(mode, bilinear, backend):
    # arbitrary separable grids (outside the image, repeated, exact pixels), every fill mode
    rng = np.random.default_rng(mode)
    x = rng.standard_normal((3, 9, 7, 2))
    rows, cols = rng.uniform(-12, 20, 11), rng.uniform(-9, 15, 6)
    rows[0], cols[0], rows[1] = 2.0, 3.0, 2.0
    tables = grid_tables(rows, cols, 9, 7, bilinear, mode)
    be = get_backend(backend)
    y = np.empty((3, 11, 6, 2))
    be.resize_separable(x, *tables, bilinear, 0.0, y)
    want = np.empty_like(y)
    get_backend("fast").resample_grid(x, rows, cols, bilinear, mode, 0.0, want)
    assert np.abs(y - want).max() <= 1e-12 * np.abs(want).max()
    g = rng.standard_normal(y.shape)
    dx = np.empty_like(x)
    be.resize_separable_backward(g, *tables, dx)
    assert abs(np.sum(y * g) - np.sum(x * dx)) <= 1e-12 * np.sum(np.abs(y * g))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_finite_differences(backend):
    model = fnn.Sequential([
        fnn.Dense(6 * 5 * 2, activation="tanh"), fnn.Reshape((6, 5, 2)),
        fnn.Resizing(9, 4, crop_to_aspect_ratio=True), fnn.Resizing(5, 7),
        fnn.Resizing(4, 4, pad_to_aspect_ratio=True, fill_value=-1.0),
        fnn.Flatten(), fnn.Dense(2)], input_dim=3, seed=0, dtype="float64", backend=backend)
    x = np.random.default_rng(1).standard_normal((4, 3))
    R = np.random.default_rng(2).standard_normal((4, 2))
    check_model_gradients(model, x, R)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inf_and_nan_stay_at_their_pixels(backend):
    # (models refuse them at the input; a kernel may still meet them inside a network) an exact
    # copy (same size) reads no neighbour of weight 0, and an upscale spreads them only where
    # the per-pixel sampler does
    be = get_backend(backend)
    x = np.random.default_rng(0).standard_normal((2, 6, 5, 3)).astype(np.float32)
    x[0, 2, 3, 1], x[1, 5, 4, 0] = np.inf, np.nan
    for size in ((6, 5), (9, 8)):
        layer = fnn.Resizing(*size)
        fnn.Sequential([layer], input_shape=(6, 5, 3))
        y = np.empty((2,) + size + (3,), np.float32)
        be.resize_separable(x, *layer.tables(False), y)
        want = _old(layer, x)
        if size == (6, 5):
            assert y.tobytes() == x.tobytes()
        assert np.array_equal(np.isinf(y), np.isinf(want))
        assert np.array_equal(np.isnan(y), np.isnan(want))
        finite = np.isfinite(want)
        assert np.abs(y[finite] - want[finite]).max() <= 1e-6 * np.abs(want[finite]).max()


def _good():
    x = np.zeros((2, 4, 5, 3))
    tables = grid_tables(np.arange(3.0), np.arange(2.0), 4, 5, True, 1)
    return x, list(tables), np.zeros((2, 3, 2, 3))


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_bad_tables_are_refused(backend):
    be = get_backend(backend)
    x, t, y = _good()
    be.resize_separable(x, *t, True, 0.0, y)           # the good call runs
    cases = []
    for k, name in enumerate(["row_index", "row_weight", "col_index", "col_weight"]):
        bad = list(t)
        bad[k] = np.ascontiguousarray(bad[k][:, 1:])
        cases.append((bad, name))
    for k, name, value in ((0, "row_index", 4), (0, "row_index", -2), (2, "col_index", 5),
                           (2, "col_index", -3)):
        bad = [a.copy() for a in t]
        bad[k][1, 0] = value
        cases.append((bad, name))
    for bad, name in cases:
        with pytest.raises(ValueError, match=name):
            be.resize_separable(x, *bad, True, 0.0, y)
        with pytest.raises(ValueError, match=name):
            be.resize_separable_backward(y, *bad, np.zeros_like(x))
    with pytest.raises(ValueError, match="y must have shape"):
        be.resize_separable(x, *t, True, 0.0, np.zeros((3, 3, 2, 3)))
    with pytest.raises(ValueError, match="dy must have shape"):
        be.resize_separable_backward(np.zeros((2, 3, 2, 2)), *t, np.zeros_like(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_crop_layers_read_what_the_grid_sampler_reads(backend):
    rng = np.random.default_rng(5)
    for (H, W), (h, w) in [((9, 12), (4, 5)), ((5, 6), (7, 7)), ((8, 8), (8, 3))]:
        x = rng.standard_normal((3, H, W, 2))
        for layer in (fnn.CenterCrop(h, w), fnn.RandomCrop(h, w, seed=2)):
            model = fnn.Sequential([layer], input_shape=(H, W, 2), dtype="float64",
                                   backend=backend)
            y = model.predict(x)
            assert np.abs(y - _old(layer, x)).max() <= 1e-12 * np.abs(x).max(), (H, W, h, w)
            if isinstance(layer, fnn.RandomCrop) and H > h and W > w:
                for _ in range(3):              # a window: copied exactly
                    y = model.forward(x, training=True)
                    layer.calls -= 1            # the same draw again for the oracle
                    assert y.tobytes() == _old(layer, x, training=True).tobytes()
