"""The Winograd F(2x2, 3x3) convolution (src_c/fnn_conv_wino.h: 3x3, stride 1, undilated, at
least 32 channels in and out), its forward and the input gradient computed as its forward of dz:
against the NumPy twin in every flavour (transforms and products run on each), against PyTorch
in float64, bitwise at 1 and 2 threads, with odd output sizes (partial tiles), blocks that end
inside an image, every activation and padding, NaNs reaching exactly the outputs that read them;
and proof that the path is taken (its float32 sums differ from the stride-1 path's, by rounding
only).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn.backends import fast_backend, numpy_backend
from tests.test_conv_strided import (_data, _forward, _pads, _rel,
                                     check_bitwise_at_one_and_two_threads, run_in_flavour)

# (n, h, w, c, f, (kh, kw), (dh, dw), padding), all 3x3 undilated: even and odd outputs (the
# last tile row and column half used), "valid", "same" and explicit paddings (the dx of a
# padding of 2 reads no padding at all), channels and filters off the micro-kernel's sizes,
# tile rows of 1 to 32 tiles (blocks of 64 tiles: several images per block, or an image over
# several blocks), and the path's smallest sizes (32 -> 64, 5x5 outputs)
CASES = [
    (2, 8, 8, 32, 64, (3, 3), (1, 1), "same"),
    (1, 7, 9, 64, 32, (3, 3), (1, 1), "same"),
    (3, 7, 8, 48, 48, (3, 3), (1, 1), "valid"),
    (2, 5, 5, 64, 64, (3, 3), (1, 1), "same"),
    (1, 9, 64, 40, 72, (3, 3), (1, 1), "same"),
    (2, 6, 11, 65, 33, (3, 3), (1, 1), (2, 0)),
    (5, 4, 4, 64, 64, (3, 3), (1, 1), (1, 1)),
    (1, 12, 10, 96, 40, (3, 3), (1, 1), "valid"),
]


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_winograd_forward_and_gradients_equal_the_numpy_twin_in_every_flavour(flavour):
    run_in_flavour(flavour, "test_conv_wino")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_winograd_forward_and_gradients_match_pytorch_in_float64(case):
    torch = pytest.importorskip("torch")
    x, kernel, bias = _data(case, np.float64, 3)
    (oh, ow), (top, left) = _pads(case)
    right = (ow - 1) + 3 - x.shape[2] - left
    bottom = (oh - 1) + 3 - x.shape[1] - top
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    kt = torch.tensor(kernel.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    xp = torch.nn.functional.pad(xt, (left, right, top, bottom))
    yt = torch.nn.functional.conv2d(xp, kt, bt)
    dz = np.random.default_rng(4).standard_normal((x.shape[0], oh, ow, case[4]))
    (yt * torch.tensor(dz.transpose(0, 3, 1, 2).copy())).sum().backward()
    got = _forward(fast_backend, x, kernel, bias, case, 0, 0.0)
    assert _rel(got, yt.detach().numpy().transpose(0, 2, 3, 1)) <= 1e-10
    dk, db, dx = np.full_like(kernel, np.nan), np.full_like(bias, np.nan), np.full_like(x, np.nan)
    fast_backend.conv2d_backward(x, kernel, dz, (1, 1), (1, 1), (top, left), dk, db, dx)
    assert _rel(dx, xt.grad.numpy().transpose(0, 2, 3, 1)) <= 1e-10
    assert _rel(dk, kt.grad.numpy().transpose(2, 3, 1, 0)) <= 1e-10
    assert _rel(db, bt.grad.numpy()) <= 1e-10


# big enough for threads, with blocks that end mid-image and odd outputs
@pytest.mark.parametrize("case", [(6, 32, 32, 64, 64, (3, 3), (1, 1), "same"),
                                  (4, 15, 17, 32, 96, (3, 3), (1, 1), "same"),
                                  (3, 21, 9, 80, 48, (3, 3), (1, 1), "valid")], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_winograd_forward_and_dx_are_bitwise_the_same_at_one_and_two_threads(case, dtype,
                                                                             fixed_threads,
                                                                             thread_count):
    check_bitwise_at_one_and_two_threads(case, dtype, thread_count)


_OFF_SCRIPT = """
import sys
import numpy as np
from fastnn.backends import fast_backend
from tests.test_conv_wino import CASES
from tests.test_conv_strided import _data, _forward, _pads
case = CASES[0]
x, kernel, bias = _data(case, "float32", 5)
(oh, ow), pads = _pads(case)
dz = np.random.default_rng(6).standard_normal((x.shape[0], oh, ow, case[4])).astype("float32")
dx = np.empty_like(x)
fast_backend.conv2d_backward(x, kernel, dz, (1, 1), (1, 1), pads, np.empty_like(kernel),
                             np.empty_like(bias), dx)
np.save(sys.argv[1], np.concatenate([_forward(fast_backend, x, kernel, bias, case, 0, 0.0).ravel(),
                                     dx.ravel()]))
"""


def test_the_path_is_taken_and_fastnn_conv_winograd_0_turns_it_off(tmp_path):
    """The same float32 forward and dx with the path on (default) and off: equal to rounding,
    and not bitwise (the transforms round differently from the direct sums), so the cases above
    do run it; FASTNN_CONV_WINOGRAD=0 makes the stride-1 path's results."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outs = []
    for setting in (None, "0", "off"):
        env = dict(os.environ)
        env.pop("FASTNN_CONV_WINOGRAD", None)
        if setting is not None:
            env["FASTNN_CONV_WINOGRAD"] = setting
        path = str(tmp_path / f"out_{setting}.npy")
        done = subprocess.run([sys.executable, "-c", _OFF_SCRIPT, path], env=env, cwd=root,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        outs.append(np.load(path))
    on, off, off2 = outs
    assert off.tobytes() == off2.tobytes()
    assert on.tobytes() != off.tobytes()
    assert _rel(on, off) <= 2e-6
