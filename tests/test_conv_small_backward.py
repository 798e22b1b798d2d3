"""The backward kernels of convolutions with few channels or filters (src_c/fnn_conv_wgrad*.h:
the kernel gradient vectorised along the filters, taken with AVX2 and AVX-512 for at most 16
input channels, two vectors of filters and unit horizontal dilation): per flavour against the
NumPy twin, in float64 against PyTorch, NaN passing through, and bitwise at 1 and 2 threads.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import fast_backend, numpy_backend
from fastnn.layers.convolutional import output_length

# (n, h, w, c, kh, kw, f, strides, dilations, padding): channels 1 to 16 around the limits of
# the path (16 channels, 2 vectors of filters), filters on and off the vector widths, 1-row
# and 1-column images and kernels, strides, a vertical dilation, both paddings; the LeNet-5 and
# digits CNN layers
CASES = [
    (3, 14, 14, 6, 5, 5, 16, (1, 1), (1, 1), "valid"),
    (2, 28, 28, 1, 5, 5, 6, (1, 1), (1, 1), "same"),
    (2, 8, 8, 1, 3, 3, 16, (1, 1), (1, 1), "same"),
    (2, 4, 4, 16, 3, 3, 32, (1, 1), (1, 1), "same"),
    (1, 7, 9, 3, 3, 2, 5, (1, 1), (1, 1), "same"),
    (2, 9, 7, 2, 2, 3, 17, (2, 1), (1, 1), "valid"),
    (3, 6, 11, 5, 3, 3, 8, (1, 2), (2, 1), "same"),
    (1, 1, 12, 4, 1, 4, 15, (1, 1), (1, 1), "valid"),
    (2, 12, 1, 7, 3, 1, 9, (1, 1), (1, 1), "same"),
    (1, 5, 5, 16, 5, 5, 31, (1, 1), (1, 1), "same"),
    (2, 6, 6, 9, 1, 1, 24, (2, 2), (1, 1), "valid"),
    (2, 10, 10, 12, 4, 4, 1, (3, 3), (1, 1), "same"),
    (1, 6, 8, 17, 3, 3, 16, (1, 1), (1, 1), "valid"),      # past the channel limit: the GEMM
    (1, 6, 8, 4, 3, 3, 33, (1, 1), (1, 1), "valid"),       # past two vectors: the GEMM
]


def _geometry(h, w, kh, kw, strides, dilations, padding):
    oh, top = output_length(h, kh, strides[0], dilations[0], padding)
    ow, left = output_length(w, kw, strides[1], dilations[1], padding)
    return (oh, ow), (top, left)


def _data(case, dtype, rng):
    n, h, w, c, kh, kw, f, strides, dilations, padding = case
    (oh, ow), pads = _geometry(h, w, kh, kw, strides, dilations, padding)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    kernel = rng.standard_normal((kh, kw, c, f)).astype(dtype)
    dz = rng.standard_normal((n, oh, ow, f)).astype(dtype)
    return x, kernel, dz, strides, dilations, pads


def _backward(be, x, kernel, dz, strides, dilations, pads):
    dk, db, dx = np.empty_like(kernel), np.empty(kernel.shape[-1], x.dtype), np.empty_like(x)
    be.conv2d_backward(x, kernel, dz, strides, dilations, pads, dk, db, dx)
    return dk, db, dx


_FLAVOUR_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
from {module} import CASES
from test_conv_small_backward import _data, _backward
from fastnn.backends import fast_backend, numpy_backend
rng = np.random.default_rng(0)
for case in CASES:
    for dtype, tol in (("float32", 2e-5), ("float64", 1e-12)):
        args = _data(case, dtype, rng)
        for got, want in zip(_backward(fast_backend, *args), _backward(numpy_backend, *args)):
            err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)
            assert err < tol, (case, dtype, err)
        x, kernel, dz = args[:3]
        for at in ((0, 0, 0, 0), (-1, -1, -1, 0)):  # a NaN of dz in the first and last position
            d = dz.copy()                            # reaches every tap of its filter and its bias
            d[at] = np.nan
            dk, db, _ = _backward(fast_backend, x, kernel, d, *args[3:])
            assert np.isnan(db[0]) and not np.isnan(db[1:]).any(), case
            assert np.isnan(dk[..., 0]).any() and not np.isnan(dk[..., 1:]).any(), case
        xn = x.copy()                                # an input NaN reaches only the taps that
        xn[0, 0, 0, 0] = np.nan                      # read it
        got = _backward(fast_backend, xn, kernel, dz, *args[3:])[0]
        want = _backward(numpy_backend, xn, kernel, dz, *args[3:])[0]
        assert np.array_equal(np.isnan(got), np.isnan(want)), case
print(fast_backend.kernel_name())
"""


def run_in_flavour(flavour, module):
    """The script above over `module`'s CASES with FASTNN_KERNEL=flavour, in a subprocess."""
    env = dict(os.environ, FASTNN_KERNEL=flavour)
    script = _FLAVOUR_SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__)),
                                    module=module)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    if done.stdout.strip() != flavour:
        pytest.skip(f"this CPU runs {done.stdout.strip()!r}, not {flavour!r}")


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_small_conv_backward_equals_the_numpy_twin_in_every_flavour(flavour):
    run_in_flavour(flavour, "test_conv_small_backward")


@pytest.mark.parametrize("case", CASES[:8])
def test_small_conv_backward_matches_pytorch_in_float64(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, kernel, dz, strides, dilations, (top, left) = _data(case, np.float64,
                                                         np.random.default_rng(1))
    n, h, w, c = x.shape
    kh, kw = kernel.shape[:2]
    oh, ow = dz.shape[1:3]
    need_h = (oh - 1) * strides[0] + (kh - 1) * dilations[0] + 1
    need_w = (ow - 1) * strides[1] + (kw - 1) * dilations[1] + 1
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    kt = torch.tensor(kernel.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.zeros(kernel.shape[-1], dtype=torch.float64, requires_grad=True)
    xp = F.pad(xt, (left, max(need_w - w - left, 0), top, max(need_h - h - top, 0)))
    yt = F.conv2d(xp, kt, bt, stride=strides, dilation=dilations)
    (yt * torch.tensor(dz.transpose(0, 3, 1, 2).copy())).sum().backward()
    dk, db, dx = _backward(fast_backend, x, kernel, dz, strides, dilations, (top, left))
    np.testing.assert_allclose(dk, kt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-11,
                               atol=1e-11)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-11,
                               atol=1e-11)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_conv_backward_is_bitwise_the_same_at_one_and_two_threads(dtype):
    rng = np.random.default_rng(2)
    cases = [(64, 14, 14, 6, 5, 5, 16, (1, 1), (1, 1), "valid"),
             (64, 8, 8, 1, 3, 3, 16, (1, 1), (1, 1), "same"),
             (64, 28, 28, 1, 5, 5, 6, (1, 1), (1, 1), "same")]
    before = fnn.get_num_threads()
    try:
        for case in cases:
            args = _data(case, dtype, rng)
            results = []
            for threads in (1, 2, 1):
                fnn.set_num_threads(threads)
                results.append(_backward(fast_backend, *args))
            for other in results[1:]:
                for a, b in zip(results[0], other):
                    assert np.array_equal(a, b), case
    finally:
        fnn.set_num_threads(before)


def _lenet5(backend):
    return fnn.Sequential([
        fnn.Conv2D(6, 5, padding="same", activation="relu"), fnn.MaxPooling2D(),
        fnn.Conv2D(16, 5, activation="relu"), fnn.MaxPooling2D(), fnn.Flatten(),
        fnn.Dense(120, activation="relu"), fnn.Dense(84, activation="relu"),
        fnn.Dense(10, activation="softmax")], input_shape=(28, 28, 1), seed=0,
        dtype="float64", backend=backend)


def test_numpy_twin_and_fast_backend_agree_on_lenet5_training():
    """Ten steps of LeNet-5 on both backends stay together (float64)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 28, 28, 1))
    y = np.arange(8) % 10
    models = [_lenet5(backend) for backend in ("fast", "numpy")]
    for m in models:
        m.compile(loss="cross_entropy", optimizer=fnn.SGD(0.01, momentum=0.9))
    for _ in range(10):
        losses = [m.train_on_batch(x, y) for m in models]
        np.testing.assert_allclose(losses[0], losses[1], rtol=1e-9)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
