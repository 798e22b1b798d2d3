"""The stride-1 convolution for many channels (src_c/fnn_conv_strided.c: A read from the padded
input rows, no patch matrix), its forward and the input gradient computed as a forward of the
same path: against the NumPy twin in every flavour (the generic one keeps the GEMM path, and
must still agree), against PyTorch in float64, bitwise at 1 and 2 threads, with the edges of
its tiles (output widths off the tile heights, filters off the sliver width), dilations,
paddings, every activation, and NaNs reaching only the outputs that read them.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import fast_backend, numpy_backend
from fastnn.layers.convolutional import output_length

# (n, h, w, c, f, (kh, kw), (dh, dw), padding): all stride 1, at least 8 channels in and
# 32 filters out (most with 32 channels and more, so that dx takes the path too); output widths
# 6 to 32 (whole, partial and short tiles), filters 32 to 80 (slivers of 16 or 32, partial
# ones), k blocks cut inside a kernel row (c = 96, 3x3: 864 steps in 4 blocks); and the narrow
# kernels (one vector of filters): 9 to 16 filters from 5 channels (LeNet-5's second layer, 5x5
# 6 -> 16; 16 -> 16 whose dx is narrow too; a dilated 5 -> 9; explicit padding with 15)
CASES = [
    (2, 14, 14, 6, 16, (5, 5), (1, 1), "valid"),
    (2, 9, 16, 16, 16, (3, 3), (1, 1), "same"),
    (1, 7, 13, 8, 12, (3, 3), (1, 1), "same"),
    (2, 6, 10, 5, 9, (3, 2), (2, 1), "same"),
    (2, 4, 8, 10, 15, (1, 1), (1, 1), (1, 2)),
    (2, 6, 6, 8, 32, (3, 3), (1, 1), "same"),
    (1, 5, 9, 16, 36, (3, 3), (1, 1), "valid"),
    (2, 9, 16, 32, 32, (3, 3), (1, 1), "same"),
    (1, 7, 32, 64, 64, (3, 3), (1, 1), "same"),
    (3, 6, 13, 40, 33, (3, 3), (1, 1), "valid"),
    (2, 5, 20, 32, 80, (5, 5), (1, 1), "same"),
    (1, 11, 12, 48, 40, (2, 4), (1, 1), "same"),
    (2, 8, 14, 32, 48, (3, 3), (2, 2), "same"),
    (1, 9, 19, 36, 65, (3, 2), (1, 3), "valid"),
    (2, 10, 9, 33, 32, (3, 3), (3, 1), "same"),
    (1, 6, 24, 96, 40, (3, 3), (1, 1), "same"),
    (2, 4, 8, 32, 32, (1, 1), (1, 1), (1, 2)),
    (1, 3, 10, 32, 32, (3, 3), (1, 1), (2, 0)),
]


def _pads(case):
    n, h, w, c, f, k, d, pad = case
    if isinstance(pad, tuple):  # explicit (top, left), the bottom and right alike
        top, left = pad
        return (h + 2 * top - (k[0] - 1) * d[0], w + 2 * left - (k[1] - 1) * d[1]), pad
    oh, top = output_length(h, k[0], 1, d[0], pad)
    ow, left = output_length(w, k[1], 1, d[1], pad)
    return (oh, ow), (top, left)


def _forward(be, x, kernel, bias, case, act, param):
    (oh, ow), pads = _pads(case)
    y = np.full((x.shape[0], oh, ow, kernel.shape[3]), np.nan, x.dtype)
    be.conv2d_forward(x, kernel, bias, (1, 1), case[6], pads, act, param, y)
    return y


def _data(case, dtype, seed):
    n, h, w, c, f, k = case[:6]
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, h, w, c)).astype(dtype),
            (rng.standard_normal((*k, c, f)) / np.sqrt(k[0] * k[1] * c)).astype(dtype),
            rng.standard_normal(f).astype(dtype))


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# in a subprocess per FASTNN_KERNEL (the flavour is chosen on first use): every case, both types,
# every activation code (0 linear ... 8 gelu_tanh, 10 elu ... 13 silu; softmax across the
# filters), against the NumPy twin; nothing written past y; and a NaN in the input reaches
# exactly the outputs whose window holds it
_FLAVOUR_SCRIPT = """
import numpy as np
from fastnn.backends import fast_backend, numpy_backend
from tests.test_conv_strided import _data, _forward, _pads, _rel
from tests.{module} import CASES
for i, case in enumerate(CASES):
    for dtype, tol in (("float32", 2e-5), ("float64", 1e-12)):
        x, kernel, bias = _data(case, dtype, i)
        for act, param in ((0, 0.0), (1, 0.1), (2, 0.0), (3, 0.0), (4, 0.0), (5, 0.2),
                           (6, 0.0), (7, 0.0), (8, 0.0), (10, 1.0), (11, 0.0), (12, 0.0),
                           (13, 0.0)):
            got = _forward(fast_backend, x, kernel, bias, case, act, param)
            want = _forward(numpy_backend, x, kernel, bias, case, act, param)
            if act == 1:  # a step: only where the pre-activation is not at the threshold
                pre = _forward(numpy_backend, x, kernel, bias, case, 0, 0.0)
                keep = np.abs(pre - param) > 1e-4
                assert np.array_equal(got[keep], want[keep]), (case, dtype)
            else:
                assert _rel(got, want) <= tol, (case, dtype, act, _rel(got, want))
        (oh, ow), pads = _pads(case)
        dz = np.random.default_rng(i).standard_normal((x.shape[0], oh, ow, case[4])).astype(dtype)
        grads = []
        for be in (fast_backend, numpy_backend):
            g = np.full_like(kernel, np.nan), np.full_like(bias, np.nan), np.full_like(x, np.nan)
            be.conv2d_backward(x, kernel, dz, (1, 1), case[6], pads, *g)
            grads.append(g)
        for got, want in zip(*grads):
            assert _rel(got, want) <= 10 * tol, (case, dtype, _rel(got, want))
        big = np.full((x.shape[0] + 1, oh, ow, case[4]), 7.0, x.dtype)  # y, then a sentinel
        fast_backend.conv2d_forward(x, kernel, bias, (1, 1), case[6], pads, 4, 0.0, big[:-1])
        assert (big[-1] == 7.0).all() and np.array_equal(big[:-1], _forward(
            fast_backend, x, kernel, bias, case, 4, 0.0)), case
        x[0, x.shape[1] // 2, 0, min(1, x.shape[3] - 1)] = np.nan
        got = _forward(fast_backend, x, kernel, bias, case, 0, 0.0)
        want = _forward(numpy_backend, x, kernel, bias, case, 0, 0.0)
        assert np.isnan(want).any() and np.array_equal(np.isnan(got), np.isnan(want)), case
print(fast_backend.kernel_name())
"""


def run_in_flavour(flavour, module, **env):
    """_FLAVOUR_SCRIPT over `module`'s CASES with FASTNN_KERNEL=flavour (and `env`), in a
    subprocess; skips when this CPU cannot run that flavour."""
    env = dict(os.environ, FASTNN_KERNEL=flavour, **env)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", _FLAVOUR_SCRIPT.format(module=module)],
                          env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    if done.stdout.strip() != flavour:
        pytest.skip(f"this CPU runs {done.stdout.strip()!r}, not {flavour!r}")


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_stride_one_forward_and_gradients_equal_the_numpy_twin_in_every_flavour(flavour):
    # the 3x3 cases of many channels would take the Winograd path (test_conv_wino.py)
    run_in_flavour(flavour, "test_conv_strided", FASTNN_CONV_WINOGRAD="0")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_stride_one_forward_and_dx_match_pytorch_in_float64(case):
    torch = pytest.importorskip("torch")
    x, kernel, bias = _data(case, np.float64, 3)
    (oh, ow), (top, left) = _pads(case)
    kh, kw = case[5]
    dh, dw = case[6]
    right = (ow - 1) + (kw - 1) * dw + 1 - x.shape[2] - left
    bottom = (oh - 1) + (kh - 1) * dh + 1 - x.shape[1] - top
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    xp = torch.nn.functional.pad(xt, (left, max(right, 0), top, max(bottom, 0)))
    yt = torch.nn.functional.conv2d(xp, torch.tensor(kernel.transpose(3, 2, 0, 1).copy()),
                                    torch.tensor(bias), dilation=(dh, dw))[:, :, :oh, :ow]
    dz = np.random.default_rng(4).standard_normal((x.shape[0], oh, ow, case[4]))
    (yt * torch.tensor(dz.transpose(0, 3, 1, 2).copy())).sum().backward()
    got = _forward(fast_backend, x, kernel, bias, case, 0, 0.0)
    assert _rel(got, yt.detach().numpy().transpose(0, 2, 3, 1)) <= 1e-10
    dx = np.full_like(x, np.nan)
    fast_backend.conv2d_backward(x, kernel, dz, (1, 1), (dh, dw), (top, left),
                                 np.empty_like(kernel), np.empty_like(bias), dx)
    assert _rel(dx, xt.grad.numpy().transpose(0, 2, 3, 1)) <= 1e-10


# big enough for threads (over FNN_PAR_MIN_WORK products), and tasks that end mid-image (24
# channels in: 3x3 convolutions of 32 and more take the Winograd path, test_conv_wino.py)
@pytest.mark.parametrize("case", [(6, 32, 32, 24, 64, (3, 3), (1, 1), "same"),
                                  (3, 17, 20, 48, 40, (5, 5), (1, 1), "same"),
                                  (1, 30, 13, 96, 33, (3, 3), (2, 1), "valid")], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stride_one_forward_and_dx_are_bitwise_the_same_at_one_and_two_threads(case, dtype,
                                                                              fixed_threads,
                                                                              thread_count):
    check_bitwise_at_one_and_two_threads(case, dtype, thread_count)


def check_bitwise_at_one_and_two_threads(case, dtype, thread_count):
    """Forward (relu) and dx of a case at 1 and 2 threads: the same bytes, and the forward held
    to the NumPy twin."""
    x, kernel, bias = _data(case, dtype, 11)
    (oh, ow), pads = _pads(case)
    dz = np.random.default_rng(12).standard_normal((x.shape[0], oh, ow, case[4])).astype(dtype)
    results = []
    for t in (1, 2):
        thread_count(t)
        dx = np.full_like(x, np.nan)
        fast_backend.conv2d_backward(x, kernel, dz, (1, 1), case[6], pads, np.empty_like(kernel),
                                     np.empty_like(bias), dx)
        results.append((_forward(fast_backend, x, kernel, bias, case, 4, 0.0), dx))
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()
    want = _forward(numpy_backend, x, kernel, bias, case, 4, 0.0)
    assert _rel(results[0][0], want) <= (2e-5 if dtype == "float32" else 1e-12)


def test_stride_one_conv2d_layer_trains_the_same_on_both_backends():
    """A Conv2D of 32 -> 40 filters in a model: forward outputs of the two backends agree."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 10, 12, 32))
    outs = []
    for backend in ("fast", "numpy"):
        model = fnn.Sequential([fnn.Conv2D(40, 3, padding="same", activation="relu")],
                               input_shape=(10, 12, 32), seed=0, dtype="float64",
                               backend=backend)
        outs.append(model.predict(x))
    assert _rel(outs[0], outs[1]) <= 1e-12
