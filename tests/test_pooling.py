"""Pooling layers: max pooling against PyTorch and average pooling against a plain loop (Keras'
'same' average does not count the padding, which PyTorch cannot pad asymmetrically), in float64
on both backends; global pooling; the layers' Keras API; bitwise results at 1 and 2 threads on
sizes that run the parallel loops.
"""

import itertools
import json
import zlib

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import fast_backend, numpy_backend

BACKENDS = {"fast": fast_backend, "numpy": numpy_backend}
GRID = [case for case in itertools.product([1, 17], [(5, 7), (8, 8), (1, 1), (6, 3)], [1, 3, 16],
                                           [(1, 1), (2, 2), (3, 2), (2, 3), (3, 3)], [1, 2, 3],
                                           ["valid", "same"])
        if case[4] <= 2 or case[2] == 3]


def _axis(size, k, s, pad):
    """Keras' output size and padding before, along one axis (written here from Keras' rule,
    not taken from fastnn): valid floor((size - k) / s) + 1; same ceil(size / s), with half of
    max((out - 1) * s + k - size, 0) before (the odd one after)."""
    if pad == "valid":
        return (size - k) // s + 1 if size >= k else 0, 0
    out = -(-size // s)
    return out, max((out - 1) * s + k - size, 0) // 2


def _geometry(h, w, pool, s, pad):
    oh, top = _axis(h, pool[0], s, pad)
    ow, left = _axis(w, pool[1], s, pad)
    return oh, ow, top, left


def _average_reference(x, dy, pool, s, top, left):
    """Average pooling by loops: the mean of each window's input elements, and its gradient."""
    n, h, w, c = x.shape
    oh, ow = dy.shape[1:3]
    y, dx = np.zeros((n, oh, ow, c)), np.zeros_like(x)
    for i in range(oh):
        for j in range(ow):
            y0, y1 = max(i * s - top, 0), min(i * s - top + pool[0], h)
            x0, x1 = max(j * s - left, 0), min(j * s - left + pool[1], w)
            count = (y1 - y0) * (x1 - x0)
            y[:, i, j] = x[:, y0:y1, x0:x1].sum(axis=(1, 2)) / count
            dx[:, y0:y1, x0:x1] += dy[:, i:i + 1, j:j + 1] / count
    return y, dx


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("case", [c for c in GRID if _geometry(*c[1], c[3], c[4], c[5])[0] > 0
                                  and _geometry(*c[1], c[3], c[4], c[5])[1] > 0], ids=str)
def test_pooling_kernels_match_pytorch_and_the_loop_reference(case, backend):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    n, (h, w), c, pool, s, pad = case
    oh, ow, top, left = _geometry(h, w, pool, s, pad)
    rng = np.random.default_rng(zlib.crc32(str(case).encode()))    # the same data every run
    x = rng.standard_normal((n, h, w, c))
    dy = rng.standard_normal((n, oh, ow, c))
    be = BACKENDS[backend]
    # max pooling: PyTorch on the input padded with -inf
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    need_h, need_w = (oh - 1) * s + pool[0], (ow - 1) * s + pool[1]
    xp = F.pad(xt, (left, max(need_w - w - left, 0), top, max(need_h - h - top, 0)),
               value=-np.inf)
    yt = F.max_pool2d(xp, pool, s)
    (yt * torch.tensor(dy.transpose(0, 3, 1, 2).copy())).sum().backward()
    y, argmax = np.full((n, oh, ow, c), np.nan), np.full((n, oh, ow, c), -7, np.int64)
    be.maxpool2d_forward(x, *pool, s, s, top, left, y, argmax)
    dx = np.full_like(x, np.nan)
    be.maxpool2d_backward(dy, argmax, dx)
    np.testing.assert_array_equal(y, yt.detach().numpy().transpose(0, 2, 3, 1))
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-12,
                               atol=1e-12)
    # average pooling
    want_y, want_dx = _average_reference(x, dy, pool, s, top, left)
    y = np.full((n, oh, ow, c), np.nan)
    be.avgpool2d_forward(x, *pool, s, s, top, left, y)
    be.avgpool2d_backward(dy, *pool, s, s, top, left, dx)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)
    bottom, right = max(need_h - h - top, 0), max(need_w - w - left, 0)
    if (bottom, right) == (top, left) and 2 * top <= pool[0] and 2 * left <= pool[1]:
        # padding PyTorch can express (symmetric, at most half the pool): its average without
        # the padding counted is Keras', the gradient by autograd
        xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
        yt = F.avg_pool2d(xt, pool, s, padding=(top, left), count_include_pad=False)
        (yt * torch.tensor(dy.transpose(0, 3, 1, 2).copy())).sum().backward()
        np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_max_pooling_ties_go_to_the_first_element_and_nan_propagates(backend):
    be = BACKENDS[backend]
    x = np.array([[[[1.0], [1.0]], [[0.0], [1.0]]]])            # (1, 2, 2, 1): three tied maxima
    y, argmax = np.empty((1, 1, 1, 1)), np.empty((1, 1, 1, 1), np.int64)
    be.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, y, argmax)
    assert y[0, 0, 0, 0] == 1.0 and argmax[0, 0, 0, 0] == 0
    dx = np.empty_like(x)
    be.maxpool2d_backward(np.ones((1, 1, 1, 1)), argmax, dx)
    assert dx.ravel().tolist() == [1.0, 0.0, 0.0, 0.0]
    x[0, 1, 0, 0] = np.nan
    be.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, y, argmax)
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 2


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_global_pooling_kernels(backend):
    be = BACKENDS[backend]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7, 3))
    x[1, 4, 2] = x[1, 1, 2] = 10.0                               # a tie: the first one wins
    y, argmax = np.empty((5, 3)), np.empty((5, 3), np.int64)
    be.global_maxpool_forward(x, y, argmax)
    np.testing.assert_array_equal(y, x.max(axis=1))
    assert argmax[1, 2] == 1
    dy = rng.standard_normal((5, 3))
    dx = np.full_like(x, np.nan)
    be.global_maxpool_backward(dy, argmax, dx)
    want = np.zeros_like(x)
    for b in range(5):
        for k in range(3):
            want[b, argmax[b, k], k] = dy[b, k]
    np.testing.assert_array_equal(dx, want)
    be.global_avgpool_forward(x, y)
    np.testing.assert_allclose(y, x.mean(axis=1), rtol=1e-14)
    be.global_avgpool_backward(dy, dx)
    np.testing.assert_allclose(dx, np.repeat(dy[:, None, :] / 7, 7, axis=1), rtol=1e-15)


@pytest.mark.parametrize("layer, shape, torch_fn", [
    (lambda: fnn.MaxPooling1D(3, strides=2), (11, 4), "max_pool1d"),
    (lambda: fnn.AveragePooling1D(2), (9, 3), "avg_pool1d"),
    (lambda: fnn.GlobalAveragePooling2D(), (5, 6, 3), "gap2d"),
    (lambda: fnn.GlobalMaxPooling2D(keepdims=True), (5, 6, 3), "gmp2d"),
    (lambda: fnn.GlobalAveragePooling1D(), (8, 3), "gap1d"),
    (lambda: fnn.GlobalMaxPooling1D(), (8, 3), "gmp1d"),
])
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_pooling_layers_match_pytorch_through_a_model(layer, shape, torch_fn, backend):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    model = fnn.Sequential([layer()], input_shape=shape, dtype="float64", backend=backend)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, *shape))
    out = model.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = model.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    if torch_fn == "max_pool1d":
        yt = F.max_pool1d(xt.transpose(1, 2), 3, 2).transpose(1, 2)
    elif torch_fn == "avg_pool1d":
        yt = F.avg_pool1d(xt.transpose(1, 2), 2).transpose(1, 2)
    elif torch_fn in ("gap2d", "gap1d"):
        yt = xt.mean(dim=tuple(range(1, len(shape))))
    elif torch_fn == "gmp2d":
        yt = xt.amax(dim=(1, 2), keepdim=True)
    else:
        yt = xt.amax(dim=1)
    (yt * torch.tensor(dout)).sum().backward()
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pooling_is_bitwise_the_same_at_one_and_two_threads(mode, dtype, fixed_threads,
                                                            thread_count):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 28, 28, 8)).astype(dtype)      # above the threading threshold
    dy = rng.standard_normal((64, 14, 14, 8)).astype(dtype)
    results = []
    for t in (1, 2):
        thread_count(t)
        y, dx = np.empty((64, 14, 14, 8), dtype), np.empty_like(x)
        if mode == "max":
            argmax = np.empty(y.shape, np.int64)
            fast_backend.maxpool2d_forward(x, 3, 3, 2, 2, 0, 0, y, argmax)
            fast_backend.maxpool2d_backward(dy, argmax, dx)
        else:
            fast_backend.avgpool2d_forward(x, 3, 3, 2, 2, 0, 0, y)
            fast_backend.avgpool2d_backward(dy, 3, 3, 2, 2, 0, 0, dx)
        results.append((y, dx))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(*results))
    y2 = np.empty_like(results[0][0])
    if mode == "max":
        numpy_backend.maxpool2d_forward(x, 3, 3, 2, 2, 0, 0, y2, np.empty(y2.shape, np.int64))
        np.testing.assert_array_equal(results[0][0], y2)


def test_pooling_layers_follow_keras():
    layer = fnn.MaxPool2D(pool_size=3, strides=(2, 1), padding="Same", name="p")
    model = fnn.Sequential([layer], input_shape=(7, 5, 2))
    assert model.output_shape == (4, 5, 2) and model.get_weights() == []
    config = layer.get_config()
    assert config == {"class": "MaxPooling2D", "name": "p", "pool_size": [3, 3],
                      "strides": [2, 1], "padding": "same"}
    assert fnn.layers.layer_from_config(json.loads(json.dumps(config))).get_config() == config
    assert fnn.AvgPool2D is fnn.AveragePooling2D and fnn.MaxPool1D is fnn.MaxPooling1D
    assert fnn.AveragePooling2D().strides == (2, 2)
    assert fnn.MaxPooling1D().pool_size == (2,)
    gmp = fnn.GlobalMaxPooling2D(keepdims=True)
    assert fnn.layers.layer_from_config(gmp.get_config()).keepdims
    assert fnn.Sequential([fnn.GlobalAveragePooling1D()],
                          input_shape=(6, 4)).output_shape == (4,)


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: fnn.MaxPooling2D(0), ValueError, "pool_size"),
    (lambda: fnn.MaxPooling2D(-2), ValueError, "pool_size"),
    (lambda: fnn.MaxPooling2D((2, 2, 2)), ValueError, "pool_size"),
    (lambda: fnn.AveragePooling2D(2, padding="full"), ValueError, "padding"),
    (lambda: fnn.AveragePooling2D(2, strides="2"), TypeError, "strides"),
    (lambda: fnn.MaxPooling1D(2.0), TypeError, "pool_size"),
    (lambda: fnn.MaxPooling2D(data_format="channels_first"), ValueError, "channels"),
    (lambda: fnn.GlobalMaxPooling2D(keepdims=1), TypeError, "keepdims"),
    (lambda: fnn.Sequential([fnn.MaxPooling2D(5)], input_shape=(4, 8, 1)), ValueError,
     "does not fit"),
    (lambda: fnn.Sequential([fnn.MaxPooling2D()], input_shape=(8, 1)), ValueError,
     "height, width, channels"),
])
def test_bad_pooling_arguments_are_refused(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_kernels_refuse_mismatched_shapes():
    x = np.zeros((2, 4, 4, 3))
    with pytest.raises(ValueError, match="argmax"):
        fast_backend.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, np.zeros((2, 2, 2, 3)),
                                       np.zeros((2, 2, 2, 2), np.int64))
    with pytest.raises(ValueError, match="batch and channels"):
        fast_backend.avgpool2d_forward(x, 2, 2, 2, 2, 0, 0, np.zeros((2, 2, 2, 4)))
    with pytest.raises(ValueError, match="strides"):
        fast_backend.avgpool2d_forward(x, 2, 2, 0, 2, 0, 0, np.zeros((2, 2, 2, 3)))
    with pytest.raises(ValueError, match="below 2"):
        fast_backend.avgpool2d_forward(x, 2, 2, 2**40, 2, 0, 0, np.zeros((2, 2, 2, 3)))
    # an out-of-range argmax (never made by forward) is dropped, not followed
    dx = np.ones_like(x)
    fast_backend.maxpool2d_backward(np.ones((2, 2, 2, 3)),
                                    np.full((2, 2, 2, 3), 10**12, np.int64), dx)
    assert not dx.any()


def test_default_names_follow_keras():
    """Keras' snake case keeps a digit and the capital after it together (conv2d, not conv2_d)."""
    names = [fnn.MaxPooling2D().name, fnn.AveragePooling1D().name,
             fnn.GlobalAveragePooling2D().name, fnn.GlobalMaxPool1D().name, fnn.Conv2D(1, 1).name,
             fnn.LeakyReLU().name, fnn.BatchNormalization().name]
    assert names == ["max_pooling2d", "average_pooling1d", "global_average_pooling2d",
                     "global_max_pooling1d", "conv2d", "leaky_re_lu", "batch_normalization"]
    model = fnn.Sequential([fnn.MaxPooling2D(), fnn.MaxPooling2D()], input_shape=(8, 8, 1))
    assert [layer.name for layer in model.layers] == ["max_pooling2d", "max_pooling2d_1"]


def _torch_pool_nhwc(torch, x, mode, pool, strides, padding):
    """Keras pooling of NHWC x by PyTorch ops (autograd-ready): the input padded explicitly
    (-inf for max; zeros for average, divided by the pooled count of an all-ones padded
    input, so the padding is not counted even where it is asymmetric)."""
    F = torch.nn.functional
    h, w = x.shape[1:3]
    oh, ow, top, left = _axis_pair(h, w, pool, strides, padding)
    pads = (left, max((ow - 1) * strides[1] + pool[1] - w - left, 0),
            top, max((oh - 1) * strides[0] + pool[0] - h - top, 0))
    xc = x.permute(0, 3, 1, 2)
    if mode == "max":
        y = F.max_pool2d(F.pad(xc, pads, value=-np.inf), pool, strides)
    else:
        total = F.avg_pool2d(F.pad(xc, pads), pool, strides)
        count = F.avg_pool2d(F.pad(torch.ones_like(xc[:1, :1]), pads), pool, strides)
        y = total / count
    return y.permute(0, 2, 3, 1)


def _axis_pair(h, w, pool, strides, padding):
    (oh, top), (ow, left) = (_axis(h, pool[0], strides[0], padding),
                             _axis(w, pool[1], strides[1], padding))
    return oh, ow, top, left


MODEL_CASES = [  # (layer kind, pool, strides, padding, input (h, w, c))
    ("max", (2, 2), (2, 2), "valid", (8, 8, 3)), ("max", (3, 3), (2, 2), "same", (5, 7, 16)),
    ("max", (3, 2), (1, 3), "same", (6, 5, 1)), ("max", (3, 3), (3, 3), "same", (1, 1, 3)),
    ("avg", (2, 2), (2, 2), "valid", (8, 8, 3)), ("avg", (3, 3), (2, 2), "same", (5, 7, 16)),
    ("avg", (2, 3), (3, 1), "same", (6, 5, 1)), ("avg", (2, 2), (1, 1), "same", (4, 4, 3)),
    ("avg", (3, 1), (2, 1), "valid", (7, 3, 2)),
]


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("case", MODEL_CASES, ids=str)
def test_2d_pooling_layers_match_pytorch_through_a_model(case, backend):
    """Output shape, forward and input gradient of a Sequential holding the layer."""
    torch = pytest.importorskip("torch")
    mode, pool, strides, padding, shape = case
    cls = fnn.MaxPooling2D if mode == "max" else fnn.AveragePooling2D
    model = fnn.Sequential([cls(pool, strides, padding.upper())], input_shape=shape,
                           dtype="float64", backend=backend)
    oh, ow, _, _ = _axis_pair(shape[0], shape[1], pool, strides, padding)
    assert model.output_shape == (oh, ow, shape[2])
    rng = np.random.default_rng(zlib.crc32(str(case).encode()))
    x = rng.standard_normal((17, *shape))
    out = model.forward(x, training=True)
    g = rng.standard_normal(out.shape)
    dx = model.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = _torch_pool_nhwc(torch, xt, mode, pool, strides, padding)
    (yt * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("pool, strides, steps", [(3, 2, 11), (2, None, 9), (4, 3, 6), (3, 1, 2)])
def test_1d_pooling_with_same_padding_matches_pytorch(pool, strides, steps, mode, backend):
    """The 1-D layers are the 2-D ones on one-row images: checked against the 2-D oracle on
    inputs of height 1."""
    torch = pytest.importorskip("torch")
    cls = fnn.MaxPooling1D if mode == "max" else fnn.AveragePooling1D
    model = fnn.Sequential([cls(pool, strides, "same")], input_shape=(steps, 5),
                           dtype="float64", backend=backend)
    s = pool if strides is None else strides
    assert model.output_shape == (-(-steps // s), 5)
    rng = np.random.default_rng(steps * 10 + pool)
    x = rng.standard_normal((3, steps, 5))
    out = model.forward(x, training=True)
    g = rng.standard_normal(out.shape)
    dx = model.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = _torch_pool_nhwc(torch, xt[:, None], mode, (1, pool), (1, s), "same")[:, 0]
    (yt * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_max_pooling_ties_in_overlapping_windows_match_pytorch(backend):
    """Inputs of a few integer values tie often; with overlapping windows (stride 1 < pool 3)
    an element can win several windows. PyTorch, like fastnn, sends each window's gradient to
    its first largest element in row-major window order, so the gradients agree exactly."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, (4, 9, 8, 6)).astype(np.float64)
    model = fnn.Sequential([fnn.MaxPooling2D(3, 1)], input_shape=(9, 8, 6), dtype="float64",
                           backend=backend)
    out = model.forward(x, training=True)
    g = rng.integers(1, 5, out.shape).astype(np.float64)      # exact sums
    dx = model.backward(g)
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, 3, 1)
    (yt * torch.tensor(g.transpose(0, 3, 1, 2).copy())).sum().backward()
    np.testing.assert_array_equal(dx, xt.grad.numpy().transpose(0, 2, 3, 1))
    assert (dx != 0).sum() < (g != 0).sum()        # ties were resolved, not split


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 33])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_max_pooling_equals_the_numpy_twin_at_every_channel_remainder(channels, dtype):
    """The compiled max pooling takes channels 16 bytes at a time, the last vector overlapping
    (or padded below one vector): every remainder, both dtypes, with ties and a NaN."""
    rng = np.random.default_rng(channels)
    x = rng.integers(-3, 4, (3, 7, 6, channels)).astype(dtype)
    x[1, 2, 3, channels // 2] = np.nan
    results = []
    for be in (fast_backend, numpy_backend):
        y, argmax = np.full((3, 4, 3, channels), 7, dtype), np.full((3, 4, 3, channels), -7)
        be.maxpool2d_forward(x, 3, 3, 2, 2, 1, 1, y, argmax)
        dx = np.full_like(x, np.nan)
        be.maxpool2d_backward(np.arange(y.size, dtype=dtype).reshape(y.shape), argmax, dx)
        results.append((y, argmax, dx))
    (y, argmax, dx), (y2, argmax2, dx2) = results
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(argmax, argmax2)
    np.testing.assert_array_equal(dx, dx2)
    # windows cover rows 2*oy - 1 .. 2*oy + 1 and columns 2*ox - 1 .. 2*ox + 1: the NaN at
    # row 2, column 3 is in windows (1, 1) and (1, 2) only, and wins both
    nan_at = np.argwhere(np.isnan(y))
    assert nan_at.tolist() == [[1, 1, 1, channels // 2], [1, 1, 2, channels // 2]]
    assert (argmax[1, 1, 1:3, channels // 2] == 2 * 6 + 3).all()
    avg, avg2 = np.empty_like(y), np.empty_like(y)
    fast_backend.avgpool2d_forward(x, 3, 3, 2, 2, 1, 1, avg)
    numpy_backend.avgpool2d_forward(x, 3, 3, 2, 2, 1, 1, avg2)
    np.testing.assert_allclose(avg, avg2, rtol=1e-6 if dtype == "float32" else 1e-14)


def _pooling_models(backend):
    return [fnn.Sequential(layers, input_shape=(24, 24, 8), dtype="float64", backend=backend,
                           seed=0)
            for layers in ([fnn.MaxPooling2D(3, 2, "same")], [fnn.AveragePooling2D(3, 2, "same")],
                           [fnn.MaxPooling2D(3, 1)], [fnn.AveragePooling2D(2, 1, "same")],
                           [fnn.GlobalMaxPooling2D()], [fnn.GlobalAveragePooling2D()])]


def test_pooling_models_are_bitwise_the_same_at_any_thread_count_and_match_numpy(threads):
    """32 images of 24x24x8 (147456 values: above the kernels' threading threshold), the
    compiled backend at this thread count against a one-thread run, and against NumPy."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 24, 24, 8))
    x[:, ::5, ::3] = 1.5                              # ties
    runs = {}
    for label, count, backend in (("now", threads, "fast"), ("one", 1, "fast"),
                                  ("numpy", threads, "numpy")):
        fnn.set_num_threads(count)
        runs[label] = []
        for model in _pooling_models(backend):
            out = model.forward(x, training=True).copy()
            g = np.random.default_rng(4).standard_normal(out.shape)
            runs[label].append((out, model.backward(g).copy()))
    fnn.set_num_threads(threads)
    for (out, dx), (out1, dx1), (outn, dxn) in zip(runs["now"], runs["one"], runs["numpy"]):
        assert out.tobytes() == out1.tobytes() and dx.tobytes() == dx1.tobytes()
        np.testing.assert_allclose(out, outn, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(dx, dxn, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_kernels_on_an_empty_batch_are_no_ops(backend):
    be = BACKENDS[backend]
    x, y = np.zeros((0, 5, 5, 3)), np.zeros((0, 3, 3, 3))
    argmax, dx = np.zeros((0, 3, 3, 3), np.int64), np.zeros((0, 5, 5, 3))
    be.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, y, argmax)
    be.maxpool2d_backward(y, argmax, dx)
    be.avgpool2d_forward(x, 3, 3, 2, 2, 1, 1, y)
    be.avgpool2d_backward(y, 3, 3, 2, 2, 1, 1, dx)
    x3, y2, a2 = np.zeros((0, 4, 3)), np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    be.global_maxpool_forward(x3, y2, a2)
    be.global_maxpool_backward(y2, a2, x3)
    be.global_avgpool_forward(x3, y2)
    be.global_avgpool_backward(y2, x3)


ALL_CLASSES = {"MaxPooling2D": "MaxPool2D", "AveragePooling2D": "AvgPool2D",
               "MaxPooling1D": "MaxPool1D", "AveragePooling1D": "AvgPool1D",
               "GlobalAveragePooling2D": "GlobalAvgPool2D", "GlobalMaxPooling2D": "GlobalMaxPool2D",
               "GlobalAveragePooling1D": "GlobalAvgPool1D", "GlobalMaxPooling1D": "GlobalMaxPool1D"}


@pytest.mark.parametrize("name", list(ALL_CLASSES))
def test_every_pooling_class_is_exported_aliased_and_round_trips_its_config(name):
    cls = getattr(fnn, name)
    assert getattr(fnn, ALL_CLASSES[name]) is cls and getattr(fnn.layers, name) is cls
    assert {name, ALL_CLASSES[name]} <= set(fnn.__all__) and name in fnn.layers.__all__
    assert fnn.layers.LAYERS[name] is cls
    if "Global" in name:
        layers = [cls(), cls(keepdims=True, name="g", trainable=False)]
    elif name.endswith("1D"):
        layers = [cls(), cls(3, 2, "same", name="p")]
    else:
        layers = [cls(), cls((3, 1), (1, 2), "SAME", name="p")]
    for layer in layers:
        config = json.loads(json.dumps(layer.get_config()))
        again = fnn.layers.layer_from_config(config)
        assert type(again) is cls and again.get_config() == config
        for attr in ("pool_size", "strides", "padding", "keepdims", "name", "trainable"):
            assert getattr(again, attr, None) == getattr(layer, attr, None), attr
        for key in ("pool_size", "strides"):
            if key in config:
                assert isinstance(config[key], list)


@pytest.mark.parametrize("cls, shape, want, want_keep", [
    (fnn.GlobalAveragePooling2D, (5, 6, 3), (3,), (1, 1, 3)),
    (fnn.GlobalMaxPooling2D, (5, 6, 3), (3,), (1, 1, 3)),
    (fnn.GlobalAveragePooling1D, (8, 4), (4,), (1, 4)),
    (fnn.GlobalMaxPooling1D, (8, 4), (4,), (1, 4)),
])
def test_global_pooling_keepdims(cls, shape, want, want_keep):
    x = np.random.default_rng(0).standard_normal((2, *shape))
    flat = fnn.Sequential([cls()], input_shape=shape, dtype="float64")
    kept = fnn.Sequential([cls(keepdims=True)], input_shape=shape, dtype="float64")
    assert flat.output_shape == want and kept.output_shape == want_keep
    np.testing.assert_array_equal(kept.predict(x).reshape(2, -1), flat.predict(x))
    reduce = np.max if "Max" in cls.__name__ else np.mean
    np.testing.assert_allclose(flat.predict(x), reduce(x.reshape(2, -1, shape[-1]), axis=1),
                               rtol=1e-14)


# Max pooling rows of 16 channels or more whose windows lie inside the image take a loop of
# their own in each SIMD flavour (src_c/fnn_pool.c): in a subprocess per FASTNN_KERNEL (the
# flavour is chosen on first use), its maxima, indices and gradients equal the NumPy twin's bit
# for bit, with ties (small integers) and NaNs, for channel counts on and off the vector width.
_MAXPOOL_FLAVOUR_SCRIPT = """
import numpy as np
from fastnn.backends import fast_backend, numpy_backend
rng = np.random.default_rng(0)
for channels in (16, 17, 24, 32, 48):
    for dtype in ("float32", "float64"):
        for (ph, pw, sh, sw, h, w) in ((2, 2, 2, 2, 8, 8), (3, 3, 2, 2, 9, 7), (3, 2, 1, 1, 6, 5),
                                       (2, 2, 2, 2, 7, 9)):
            x = rng.integers(-3, 4, (3, h, w, channels)).astype(dtype)
            x.reshape(-1)[rng.integers(0, x.size, 5)] = np.nan
            oh, ow = (h - ph) // sh + 1, (w - pw) // sw + 1
            out = []
            for be in (fast_backend, numpy_backend):
                y = np.full((3, oh, ow, channels), 7, dtype)
                am = np.full((3, oh, ow, channels), -7, np.int64)
                be.maxpool2d_forward(x, ph, pw, sh, sw, 0, 0, y, am)
                dx = np.full_like(x, np.nan)
                be.maxpool2d_backward(np.arange(y.size, dtype=dtype).reshape(y.shape), am, dx)
                out.append((y, am, dx))
            for a, b in zip(*out):
                assert np.array_equal(a, b, equal_nan=True), (channels, dtype, ph, pw, sh, sw)
            assert np.isnan(out[0][0]).any()
print(fast_backend.kernel_name())
"""


def _run_in_flavour(script, flavour):
    """Run ``script`` in a subprocess with FASTNN_KERNEL=flavour (the flavour is chosen on first
    use); it prints the kernel it ran, and the test is skipped when the CPU lacks the flavour."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, FASTNN_KERNEL=flavour)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    if done.stdout.strip() != flavour:
        pytest.skip(f"this CPU runs {done.stdout.strip()!r}, not {flavour!r}")


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_max_pooling_inside_windows_equal_the_numpy_twin_in_every_flavour(flavour):
    _run_in_flavour(_MAXPOOL_FLAVOUR_SCRIPT, flavour)


# Rows of fewer than 16 channels whose windows lie inside the image take masked-vector loops of
# their own with AVX2 and AVX-512 (src_c/fnn_pool.c), with a plainer compare when the rows read
# hold no NaN: per flavour, every channel count below 16 (and the neighbours above), against the
# NumPy twin bit for bit (the bytes, so NaN payloads and signed zeros count), with ties, NaNs of
# several payloads in some images only, and windows inside, overlapping, clipped and padded;
# nothing written past the outputs (AVX2 stores whole vectors over later positions).
_MAXPOOL_FEW_CHANNELS_SCRIPT = """
import numpy as np
from fastnn.backends import fast_backend, numpy_backend
rng = np.random.default_rng(1)
nans = {"float32": np.array([0x7FC00000, 0xFFC00001, 0x7F800003], np.uint32).view(np.float32),
        "float64": np.array([0x7FF8000000000000, 0xFFF8000000000001, 0x7FF0000000000005],
                            np.uint64).view(np.float64)}
for channels in list(range(1, 18)) + [31]:
    for dtype in ("float32", "float64"):
        for (ph, pw, sh, sw, top, left, h, w) in (
                (2, 2, 2, 2, 0, 0, 8, 8), (2, 2, 2, 2, 0, 0, 7, 11), (3, 3, 2, 2, 0, 0, 9, 7),
                (3, 2, 1, 1, 0, 0, 6, 5), (2, 3, 1, 2, 0, 0, 5, 12), (1, 1, 1, 1, 0, 0, 3, 4),
                (5, 4, 3, 1, 0, 0, 11, 13), (3, 3, 2, 2, 1, 1, 9, 7), (2, 2, 2, 2, 1, 0, 7, 6)):
            x = rng.integers(-2, 3, (4, h, w, channels)).astype(dtype)
            x[x == 0] = rng.choice(np.array([0.0, -0.0], dtype), (x == 0).sum())
            img = x[1:3].reshape(-1)                      # images 0 and 3 have no NaN
            img[rng.integers(0, img.size, 6)] = rng.choice(nans[dtype], 6)
            oh, ow = (h + 2 * top - ph) // sh + 1, (w + 2 * left - pw) // sw + 1
            out = []
            for be in (fast_backend, numpy_backend):
                y_, am_ = (np.full((5, oh, ow, channels), 7, dtype),   # a sentinel image after
                           np.full((5, oh, ow, channels), -7, np.int64))   # the outputs
                y, am = y_[:4], am_[:4]
                be.maxpool2d_forward(x, ph, pw, sh, sw, top, left, y, am)
                assert (y_[4] == 7).all() and (am_[4] == -7).all(), (channels, ph, pw, sh, sw)
                dx = np.full_like(x, np.nan)
                be.maxpool2d_backward(np.arange(y.size, dtype=dtype).reshape(y.shape), am, dx)
                out.append((y, am, dx))
            for a, b in zip(*out):
                assert a.tobytes() == b.tobytes(), (channels, dtype, ph, pw, sh, sw, top, left)
            assert np.isnan(out[0][0][1:3]).any() and not np.isnan(out[0][0][[0, 3]]).any()
print(fast_backend.kernel_name())
"""


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_max_pooling_of_few_channels_equals_the_numpy_twin_in_every_flavour(flavour):
    _run_in_flavour(_MAXPOOL_FEW_CHANNELS_SCRIPT, flavour)


# A relu convolution read only by a max pooling with windows that do not overlap hands the
# relu's derivative to the pooling's backward (maxpool2d_backward_relu; fastnn.models.graph's
# relu_pool_nodes picks the pairs): the kernel equals its NumPy twin and the two passes it
# replaces bit for bit, and a model with the pairs fused trains to the same bits as without.
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("geometry", [(2, 2, 2, 2, 0, 0, 8, 8), (2, 2, 2, 2, 0, 0, 7, 9),
                                      (3, 3, 3, 3, 0, 0, 10, 8), (2, 3, 2, 4, 0, 0, 6, 13),
                                      (2, 2, 2, 2, 1, 1, 5, 7), (1, 1, 1, 1, 0, 0, 3, 4),
                                      (3, 2, 4, 3, 1, 0, 9, 8)])
@pytest.mark.parametrize("channels", [1, 6, 16, 17])
def test_max_pooling_backward_with_the_relu_equals_the_two_passes(dtype, geometry, channels):
    ph, pw, sh, sw, top, left, h, w = geometry
    rng = np.random.default_rng(channels)
    oh = -(-(h + top - ph + 1) // sh) if top else (h - ph) // sh + 1
    ow = -(-(w + left - pw + 1) // sw) if left else (w - pw) // sw + 1
    x = np.maximum(rng.integers(-2, 3, (3, h, w, channels)), 0).astype(dtype)   # ties, zeros
    x.reshape(-1)[rng.integers(0, x.size, 3)] = np.nan
    dy = rng.standard_normal((3, oh, ow, channels)).astype(dtype)
    dy.reshape(-1)[:4] = [np.nan, np.inf, -0.0, -np.inf]
    results = []
    for be in (fast_backend, numpy_backend):
        y = np.empty_like(dy)
        am = np.empty(dy.shape, np.int64)
        be.maxpool2d_forward(x, ph, pw, sh, sw, top, left, y, am)
        fused = np.full_like(x, 7)
        be.maxpool2d_backward_relu(dy, am, y, ph, pw, sh, sw, top, left, fused)
        scattered, two = np.full_like(x, 7), np.empty_like(x)
        be.maxpool2d_backward(dy, am, scattered)
        be.activation_backward(x.reshape(3, -1), scattered.reshape(3, -1), 4, 0.0,
                               two.reshape(3, -1))
        assert fused.tobytes() == two.tobytes()
        results.append(fused)
    assert results[0].tobytes() == results[1].tobytes()


def test_max_pooling_backward_with_the_relu_refuses_overlaps_and_bad_shapes():
    dy = np.zeros((1, 2, 2, 3))
    am = np.zeros((1, 2, 2, 3), np.int64)
    for be in (fast_backend, numpy_backend):
        with pytest.raises(ValueError, match="overlap"):
            be.maxpool2d_backward_relu(dy, am, dy, 3, 3, 2, 2, 0, 0, np.zeros((1, 5, 5, 3)))
    with pytest.raises(ValueError, match="do not match"):
        fast_backend.maxpool2d_backward_relu(dy, am, dy[:, :1], 2, 2, 2, 2, 0, 0,
                                             np.zeros((1, 4, 4, 3)))
    dx = np.full((1, 4, 4, 3), 7.0)
    bad = np.full((1, 2, 2, 3), 16, np.int64)      # out of the image: dropped, not followed
    bad[0, 0, 0, 0] = -5
    fast_backend.maxpool2d_backward_relu(np.ones((1, 2, 2, 3)), bad, np.ones((1, 2, 2, 3)), 2,
                                         2, 2, 2, 0, 0, dx)
    assert not dx.any()


def _relu_pool_model(backend, activation="relu", pool=None):
    return fnn.Sequential([
        fnn.Conv2D(6, 3, padding="same", activation=activation), pool or fnn.MaxPooling2D(),
        fnn.Conv2D(5, 3, activation="relu"), fnn.MaxPooling2D(padding="same"), fnn.Flatten(),
        fnn.Dense(10, activation="softmax")], input_shape=(11, 11, 2), seed=0,
        dtype="float64", backend=backend)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_relu_pool_fusion_trains_to_the_same_bits(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 11, 11, 2))
    y = np.arange(16) % 10
    fused, plain = _relu_pool_model(backend), _relu_pool_model(backend)
    assert len(fused._relu_fused) == 4
    plain._relu_fused = frozenset()
    fused._pooled_grad = plain._pooled_grad = {}     # (test_conv_pooled.py: that other path)
    for m in (fused, plain):
        m.compile(loss="cross_entropy", optimizer=fnn.SGD(0.05, momentum=0.9))
    for _ in range(5):
        assert fused.train_on_batch(x, y) == plain.train_on_batch(x, y)
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        assert a.tobytes() == b.tobytes()


def test_relu_pool_fusion_takes_only_its_pairs():
    assert len(_relu_pool_model("fast", activation="tanh")._relu_fused) == 2
    overlapping = fnn.MaxPooling2D(3, strides=2)
    assert len(_relu_pool_model("fast", pool=overlapping)._relu_fused) == 2
    inp = fnn.Input((8, 8, 1))                     # the convolution read twice: no fusion
    h = fnn.Conv2D(4, 3, activation="relu")(inp)
    out = fnn.Dense(3)(fnn.Flatten()(fnn.Concatenate()([fnn.MaxPooling2D()(h),
                                                        fnn.MaxPooling2D()(h)])))
    assert fnn.Model(inp, out)._relu_fused == frozenset()
