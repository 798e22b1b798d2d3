"""Pooling layers: max pooling against PyTorch and average pooling against a plain loop (Keras'
'same' average does not count the padding, which PyTorch cannot pad asymmetrically), in float64
on both backends; global pooling; the layers' Keras API; bitwise results at 1 and 2 threads on
sizes that run the parallel loops.
"""

import itertools
import json

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import fast_backend, numpy_backend
from fastnn.layers.convolutional import output_length

BACKENDS = {"fast": fast_backend, "numpy": numpy_backend}
GRID = [case for case in itertools.product([1, 17], [(5, 7), (8, 8), (1, 1), (6, 3)], [1, 3, 16],
                                           [(1, 1), (2, 2), (3, 2), (2, 3), (3, 3)], [1, 2, 3],
                                           ["valid", "same"])
        if case[4] <= 2 or case[2] == 3]


def _geometry(h, w, pool, s, pad):
    oh, top = output_length(h, pool[0], s, 1, pad)
    ow, left = output_length(w, pool[1], s, 1, pad)
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
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
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
    if pad == "valid" and (top, left) == (0, 0):      # where PyTorch's average is Keras'
        np.testing.assert_allclose(
            y, F.avg_pool2d(torch.tensor(x.transpose(0, 3, 1, 2).copy()), pool, s)
            .numpy().transpose(0, 2, 3, 1), rtol=1e-12)


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
