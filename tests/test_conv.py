"""Conv2D and Conv1D: parity with PyTorch in float64 (outputs and the gradients of input, kernel
and bias) over a grid of strides, paddings, dilations, kernel sizes, image sizes, channels and
batches, on both backends; the layers' Keras API; bitwise results at 1 and 2 threads on sizes
that run the parallel code; and the memory a call takes, bounded by its chunks, not the batch.
"""

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import fast_backend, numpy_backend
from fastnn.layers.convolutional import output_length

BACKENDS = {"fast": fast_backend, "numpy": numpy_backend}


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _torch_conv2d(torch, x, kernel, bias, dz, strides, dilations, padding_mode):
    """y and the gradients of sum(y * dz) by PyTorch, NHWC in and out; 'same' padded
    explicitly (PyTorch pads both sides alike, Keras puts the odd zero after)."""
    F = torch.nn.functional
    n, h, w, c = x.shape
    kh, kw = kernel.shape[:2]
    (sh, sw), (dh, dw) = strides, dilations
    oh, top = output_length(h, kh, sh, dh, padding_mode)
    ow, left = output_length(w, kw, sw, dw, padding_mode)
    need_h, need_w = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    kt = torch.tensor(kernel.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    xp = F.pad(xt, (left, max(need_w - w - left, 0), top, max(need_h - h - top, 0)))
    yt = F.conv2d(xp, kt, bt, stride=(sh, sw), dilation=(dh, dw))
    assert yt.shape[2:] == (oh, ow)
    (yt * torch.tensor(dz.transpose(0, 3, 1, 2).copy())).sum().backward()
    return (yt.detach().numpy().transpose(0, 2, 3, 1), xt.grad.numpy().transpose(0, 2, 3, 1),
            kt.grad.numpy().transpose(2, 3, 1, 0), bt.grad.numpy()), (top, left), (oh, ow)


def _grid():
    """Every kernel size, stride, dilation and padding, with image sizes, channels and batches
    cycled through them (odd and even sizes, 1 to 64 channels, batches 1 and 17)."""
    sizes = [(7, 7), (8, 10), (13, 6), (9, 12), (6, 8)]
    channels = [(1, 4), (3, 8), (16, 5), (2, 64), (64, 3), (5, 16)]
    cases = []
    for i, (k, s, d, pad) in enumerate(itertools.product(
            [(1, 1), (2, 2), (3, 3), (5, 5), (7, 7), (3, 2), (1, 4)], [1, 2, 3], [1, 2],
            ["valid", "same"])):
        (h, w), (c, f) = sizes[i % len(sizes)], channels[i % len(channels)]
        n = 17 if i % 2 else 1
        span_h, span_w = (k[0] - 1) * d + 1, (k[1] - 1) * d + 1
        if pad == "valid" and (span_h > h or span_w > w):
            h, w = max(h, span_h + 1), max(w, span_w)
        cases.append((n, h, w, c, f, k, (s, s), (d, d), pad))
    # unequal strides and dilations per axis
    cases += [(3, 11, 9, 4, 6, (3, 3), (1, 2), (2, 1), "same"),
              (2, 10, 13, 3, 5, (2, 4), (3, 1), (1, 2), "valid")]
    return cases


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("case", _grid(), ids=lambda c: "n%d-%dx%dx%d-f%d-k%s-s%s-d%s-%s" % (
    c[0], c[1], c[2], c[3], c[4], "x".join(map(str, c[5])), "x".join(map(str, c[6])),
    "x".join(map(str, c[7])), c[8]))
def test_conv2d_kernels_match_pytorch_in_float64(case, backend):
    torch = pytest.importorskip("torch")
    n, h, w, c, f, k, strides, dilations, pad = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.standard_normal((n, h, w, c))
    kernel = rng.standard_normal((*k, c, f))
    bias = rng.standard_normal(f)
    oh, top = output_length(h, k[0], strides[0], dilations[0], pad)
    ow, left = output_length(w, k[1], strides[1], dilations[1], pad)
    dz = rng.standard_normal((n, oh, ow, f))
    ref, pads, _ = _torch_conv2d(torch, x, kernel, bias, dz, strides, dilations, pad)
    be = BACKENDS[backend]
    y = np.full((n, oh, ow, f), np.nan)
    be.conv2d_forward(x, kernel, bias, strides, dilations, pads, 0, 0.0, y)
    dkernel, dbias, dx = (np.full_like(kernel, np.nan), np.full_like(bias, np.nan),
                          np.full_like(x, np.nan))
    be.conv2d_backward(x, kernel, dz, strides, dilations, pads, dkernel, dbias, dx)
    for name, got, want in zip(("y", "dx", "dkernel", "dbias"), (y, dx, dkernel, dbias), ref):
        assert got.shape == want.shape
        assert _rel(got, want) <= 1e-10, (name, _rel(got, want))


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize("kernel_size, strides, dilation", [(1, 1, 1), (3, 1, 1), (4, 2, 1),
                                                            (3, 1, 3), (5, 3, 1)])
def test_conv1d_layer_matches_pytorch_in_float64(backend, padding, kernel_size, strides,
                                                 dilation):
    torch = pytest.importorskip("torch")
    if padding == "causal" and strides > 1 and kernel_size == 1:
        pytest.skip("covered by the other causal cases")
    F = torch.nn.functional
    n, steps, c, f = 17, 23, 3, 7
    layer = fnn.Conv1D(f, kernel_size, strides=strides, padding=padding,
                       dilation_rate=dilation, activation="tanh")
    model = fnn.Sequential([layer], input_shape=(steps, c), dtype="float64", backend=backend,
                           seed=3)
    kernel, bias = model.get_weights()
    assert kernel.shape == (kernel_size, c, f) and bias.shape == (f,)
    rng = np.random.default_rng(4)
    model.set_weights([kernel, rng.standard_normal(f)])
    kernel, bias = model.get_weights()
    x = rng.standard_normal((n, steps, c))
    out = model.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    model.zero_grad()
    dx = model.backward(dout)
    span = (kernel_size - 1) * dilation + 1
    length, before = output_length(steps, kernel_size, strides, dilation, padding)
    after = max((length - 1) * strides + span - steps - before, 0)
    xt = torch.tensor(x.transpose(0, 2, 1).copy(), requires_grad=True)
    kt = torch.tensor(kernel.transpose(2, 1, 0).copy(), requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    yt = torch.tanh(F.conv1d(F.pad(xt, (before, after)), kt, bt, stride=strides,
                             dilation=dilation))
    (yt * torch.tensor(dout.transpose(0, 2, 1).copy())).sum().backward()
    assert out.shape == (n, length, f)
    assert _rel(out, yt.detach().numpy().transpose(0, 2, 1)) <= 1e-10
    assert _rel(dx, xt.grad.numpy().transpose(0, 2, 1)) <= 1e-10
    dkernel, dbias = model.grads
    assert _rel(dkernel, kt.grad.numpy().transpose(2, 1, 0)) <= 1e-10
    assert _rel(dbias, bt.grad.numpy()) <= 1e-10
    if padding == "causal":     # output step t sees inputs up to t only
        x2 = x.copy()
        x2[:, -1] += 1.0
        changed = np.any(model.predict(x2) != model.predict(x), axis=(0, 2))
        assert not changed[:-1].any()


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "leaky_relu", "softmax", "gelu",
                                        "gelu_tanh", "elu", "selu", "softplus", "silu"])
def test_conv2d_layer_activations_match_pytorch(activation):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    model = fnn.Sequential([fnn.Conv2D(5, (3, 2), strides=(2, 1), padding="same",
                                       activation=activation)],
                           input_shape=(9, 8, 3), dtype="float64", backend="fast", seed=1)
    rng = np.random.default_rng(5)
    kernel, _ = model.get_weights()
    model.set_weights([kernel, rng.standard_normal(5)])
    kernel, bias = model.get_weights()
    x = rng.standard_normal((4, 9, 8, 3))
    out = model.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    model.zero_grad()
    dx = model.backward(dout)
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    kt = torch.tensor(kernel.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    z = F.conv2d(F.pad(xt, (0, 1, 1, 1)), kt, torch.tensor(bias), stride=(2, 1))
    act = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
           "leaky_relu": lambda t: F.leaky_relu(t, model.layers[0].param),
           "softmax": lambda t: t.softmax(1), "gelu": F.gelu,
           "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "elu": F.elu, "selu": F.selu,
           "softplus": lambda t: F.softplus(t, threshold=1e9), "silu": F.silu}
    yt = act[activation](z)
    (yt * torch.tensor(dout.transpose(0, 3, 1, 2).copy())).sum().backward()
    assert _rel(out, yt.detach().numpy().transpose(0, 2, 3, 1)) <= 1e-10
    assert _rel(dx, xt.grad.numpy().transpose(0, 2, 3, 1)) <= 1e-10
    assert _rel(model.grads[0], kt.grad.numpy().transpose(2, 3, 1, 0)) <= 1e-10


# the shapes big enough for the chunked, threaded code (over FNN_PAR_MIN_WORK = 8e6 products;
# on the direct path of few channels a product weighs FNN_CONV_DIRECT_COST = 4)
BIG = [(8, 32, 32, 16, 32, 3, 1, "same"), (24, 28, 28, 1, 6, 5, 1, "same"),
       (40, 8, 8, 3, 16, 3, 1, "valid"), (5, 30, 30, 8, 8, 5, 2, "valid"),
       (4, 16, 16, 64, 64, 1, 1, "valid"), (3, 64, 64, 4, 8, 7, 1, "same")]


@pytest.mark.parametrize("case", BIG, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv2d_is_bitwise_the_same_at_one_and_two_threads(case, dtype, fixed_threads,
                                                           thread_count):
    n, h, w, c, f, k, s, pad = case
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    kernel = rng.standard_normal((k, k, c, f)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    oh, top = output_length(h, k, s, 1, pad)
    ow, left = output_length(w, k, s, 1, pad)
    dz = rng.standard_normal((n, oh, ow, f)).astype(dtype)
    results = []
    for t in (1, 2):
        thread_count(t)
        y = np.empty((n, oh, ow, f), dtype)
        fast_backend.conv2d_forward(x, kernel, bias, (s, s), (1, 1), (top, left), 4, 0.0, y)
        grads = np.empty_like(kernel), np.empty_like(bias), np.empty_like(x)
        fast_backend.conv2d_backward(x, kernel, dz, (s, s), (1, 1), (top, left), *grads)
        results.append([y, *grads])
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()
    # and the same numbers as the NumPy twin (float32: to rounding)
    y = np.empty_like(results[0][0])
    numpy_backend.conv2d_forward(x, kernel, bias, (s, s), (1, 1), (top, left), 4, 0.0, y)
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert _rel(results[0][0], y) <= tol


# kernel gradients whose (kh*kw*c) x f partial is beyond a core's L2 (>= 131072 values: the deeper
# chunks of FNN_CONV_WGRAD_ELEMS), with chunks of whole images and chunks within images
DEEP_WGRAD = [(20, 9, 9, 128, 128, 3, 1, "same"), (3, 40, 40, 64, 256, 3, 2, "same"),
              (70, 4, 4, 96, 192, 3, 1, "same"), (5, 12, 12, 512, 256, 1, 1, "valid")]


@pytest.mark.parametrize("case", DEEP_WGRAD, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_large_kernel_gradients_match_numpy_and_are_bitwise_at_any_threads(case, dtype,
                                                                          fixed_threads,
                                                                          thread_count):
    n, h, w, c, f, k, s, pad = case
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    kernel = rng.standard_normal((k, k, c, f)).astype(dtype)
    oh, top = output_length(h, k, s, 1, pad)
    ow, left = output_length(w, k, s, 1, pad)
    dz = rng.standard_normal((n, oh, ow, f)).astype(dtype)
    results = []
    for t in (1, 2):
        thread_count(t)
        grads = np.empty_like(kernel), np.empty(f, dtype), np.empty_like(x)
        fast_backend.conv2d_backward(x, kernel, dz, (s, s), (1, 1), (top, left), *grads)
        results.append(grads)
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()
    want = np.empty_like(kernel), np.empty(f, dtype), np.empty_like(x)
    numpy_backend.conv2d_backward(x, kernel, dz, (s, s), (1, 1), (top, left), *want)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for got, ref in zip(results[0], want):
        assert _rel(got, ref) <= tol


def test_conv2d_layer_api_follows_keras():
    layer = fnn.Conv2D(8, 3, strides=(2, 1), padding="SAME", dilation_rate=1,
                       activation="relu", name="c1")
    model = fnn.Sequential([layer], input_shape=(11, 7, 3), backend="fast", seed=0)
    assert model.output_shape == (6, 7, 8)
    kernel, bias = model.get_weights()
    assert kernel.shape == (3, 3, 3, 8) and bias.shape == (8,) and not bias.any()
    # He normal before ReLU: std sqrt(2 / fan_in), fan_in = 3 * 3 * 3
    assert abs(kernel.std() - np.sqrt(2 / 27)) < 0.25 * np.sqrt(2 / 27)
    config = layer.get_config()
    assert config == {"class": "Conv2D", "name": "c1", "filters": 8, "kernel_size": [3, 3],
                      "strides": [2, 1], "padding": "same", "dilation_rate": [1, 1],
                      "activation": "relu"}
    rebuilt = fnn.layers.layer_from_config(json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config
    leaky = fnn.Conv2D(2, 1, activation=fnn.LeakyReLU(alpha=0.1), use_bias=False)
    assert fnn.layers.layer_from_config(leaky.get_config()).param == pytest.approx(0.1)
    assert fnn.Conv2D is fnn.Convolution2D and fnn.Conv1D is fnn.Convolution1D


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"filters": 0, "kernel_size": 3}, ValueError, "filters"),
    ({"filters": 2.5, "kernel_size": 3}, TypeError, "filters"),
    ({"filters": 2, "kernel_size": (3, 3, 3)}, ValueError, "kernel_size"),
    ({"filters": 2, "kernel_size": 0}, ValueError, "kernel_size"),
    ({"filters": 2, "kernel_size": "3"}, TypeError, "kernel_size"),
    ({"filters": 2, "kernel_size": 3, "strides": -1}, ValueError, "strides"),
    ({"filters": 2, "kernel_size": 3, "padding": "full"}, ValueError, "padding"),
    ({"filters": 2, "kernel_size": 3, "padding": "causal"}, ValueError, "padding"),
    ({"filters": 2, "kernel_size": 3, "dilation_rate": 2**40}, ValueError, "dilation_rate"),
    ({"filters": 2, "kernel_size": 3, "data_format": "channels_first"}, ValueError,
     "channels"),
    ({"filters": 2, "kernel_size": 3, "activation": "swishy"}, ValueError, "activation"),
])
def test_bad_conv2d_arguments_are_refused(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fnn.Conv2D(**kwargs)


def test_bad_shapes_are_refused_at_build_and_at_call():
    with pytest.raises(ValueError, match="does not fit"):
        fnn.Sequential([fnn.Conv2D(2, 5)], input_shape=(4, 8, 1))
    with pytest.raises(ValueError, match="height, width, channels"):
        fnn.Sequential([fnn.Conv2D(2, 3)], input_shape=(8, 8))
    with pytest.raises(ValueError, match="steps, channels"):
        fnn.Sequential([fnn.Conv1D(2, 3)], input_shape=(8, 8, 1))
    model = fnn.Sequential([fnn.Conv2D(2, 3)], input_shape=(8, 8, 1))
    with pytest.raises(ValueError):
        model.predict(np.zeros((2, 8, 8, 2), np.float32))
    with pytest.raises(ValueError):
        model.predict(np.zeros((2, 8, 8), np.float32))
    # the kernels check every shape relation they rely on
    x = np.zeros((2, 8, 8, 1), np.float32)
    kernel = np.zeros((3, 3, 1, 2), np.float32)
    with pytest.raises(ValueError, match="shapes do not match"):
        fast_backend.conv2d_forward(x, kernel, np.zeros(2, np.float32), (1, 1), (1, 1), (0, 0),
                                    0, 0.0, np.zeros((2, 6, 6, 3), np.float32))
    with pytest.raises(ValueError, match="bias"):
        fast_backend.conv2d_forward(x, kernel, np.zeros(3, np.float32), (1, 1), (1, 1), (0, 0),
                                    0, 0.0, np.zeros((2, 6, 6, 2), np.float32))
    with pytest.raises(ValueError, match="strides"):
        fast_backend.conv2d_forward(x, kernel, np.zeros(2, np.float32), (0, 1), (1, 1), (0, 0),
                                    0, 0.0, np.zeros((2, 6, 6, 2), np.float32))
    with pytest.raises(ValueError, match="below 2"):
        fast_backend.conv2d_forward(x, kernel, np.zeros(2, np.float32), (2**62, 1), (1, 1),
                                    (0, 0), 0, 0.0, np.zeros((2, 6, 6, 2), np.float32))
    with pytest.raises(ValueError, match="dx"):
        fast_backend.conv2d_backward(x, kernel, np.zeros((2, 6, 6, 2), np.float32), (1, 1),
                                     (1, 1), (0, 0), np.zeros_like(kernel),
                                     np.zeros(2, np.float32), np.zeros((2, 8, 7, 1), np.float32))


def test_an_output_bigger_than_the_input_allows_reads_only_zeros():
    """The kernels never read outside x, whatever output size they are given: positions past
    the input see only padding (the bias)."""
    x = np.ones((1, 4, 4, 1))
    kernel = np.ones((3, 3, 1, 1))
    y = np.full((1, 9, 9, 1), np.nan)
    fast_backend.conv2d_forward(x, kernel, np.array([0.5]), (1, 1), (1, 1), (0, 0), 0, 0.0, y)
    assert np.all(y[0, 4:, 4:, 0] == 0.5) and y[0, 0, 0, 0] == 9.5


def test_empty_batches_give_zero_gradients():
    for be in BACKENDS.values():
        dk, db = np.full((3, 3, 2, 3), np.nan), np.full(3, np.nan)
        be.conv2d_backward(np.zeros((0, 5, 5, 2)), np.zeros((3, 3, 2, 3)),
                           np.zeros((0, 5, 5, 3)), (1, 1), (1, 1), (1, 1), dk, db,
                           np.zeros((0, 5, 5, 2)))
        assert not dk.any() and not db.any()


MEMORY_SCRIPT = """
import resource, sys
import numpy as np
from fastnn.backends import fast_backend
x = np.random.default_rng(0).standard_normal((256, 28, 28, 32)).astype(np.float32)
kernel = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
bias = np.zeros(32, np.float32)
y = np.ones_like(x)
dz, dk, db, dx = np.ones_like(x), np.zeros_like(kernel), np.zeros_like(bias), np.ones_like(x)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
fast_backend.conv2d_forward(x, kernel, bias, (1, 1), (1, 1), (1, 1), 4, 0.0, y)
fast_backend.conv2d_backward(x, kernel, dz, (1, 1), (1, 1), (1, 1), dk, db, dx)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024)
"""


def test_a_conv_call_takes_memory_bounded_by_its_chunks_not_the_batch():
    """256 images of 28x28x32 through a 3x3 convolution: the batch's patch matrix would be
    231 MB (float32); the call's extra memory stays under 16 MB (its chunk buffers)."""
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "2"}, timeout=300)
    assert out.returncode == 0, out.stderr
    extra = int(out.stdout.strip())
    assert extra < 16e6, f"conv2d took {extra / 1e6:.1f} MB beyond its arrays"


@pytest.mark.parametrize("geometry", [((1, 2), (1, 1), (2, 1)), ((2, 1), (1, 2), (0, 3))])
def test_kernels_give_the_same_results_for_any_spelling_of_the_geometry(geometry):
    """The compiled kernels check tuples of Python ints without building objects and pass any
    other spelling (lists, NumPy integers) to the general check: the same outputs either way."""
    rng = np.random.default_rng(5)
    strides, dilations, padding = geometry
    x, kernel = rng.standard_normal((2, 9, 8, 3)), rng.standard_normal((3, 2, 3, 4))
    bias = rng.standard_normal(4)
    oh = (9 + 2 * padding[0] - 2 * dilations[0] - 1) // strides[0] + 1
    ow = (8 + 2 * padding[1] - dilations[1] - 1) // strides[1] + 1
    dz = rng.standard_normal((2, oh, ow, 4))
    results = []
    for spell in (tuple, list, lambda t: tuple(np.int64(v) for v in t)):
        args = [spell(t) for t in geometry]
        y = np.empty((2, oh, ow, 4))
        fast_backend.conv2d_forward(x, kernel, bias, *args, 4, 0.0, y)
        grads = np.empty_like(kernel), np.empty_like(bias), np.empty_like(x)
        fast_backend.conv2d_backward(x, kernel, dz, *args, *grads)
        results.append([y, *grads])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert a.tobytes() == b.tobytes()
    want = np.empty_like(results[0][0])
    numpy_backend.conv2d_forward(x, kernel, bias, *geometry, 4, 0.0, want)
    np.testing.assert_allclose(results[0][0], want, rtol=1e-12, atol=1e-12)
