"""The direct convolution of few input channels (src_c/fnn_conv_direct_tmpl.h: first layers, 1 to
4 channels, vectors along the output row): every group width of its row kernels (4, 6, 8 and 16
filters, alone and after others), output widths off the vector widths, its transposing stores
(which write whole vectors over the next position's filters and must stop at the end of y), per
flavour against the NumPy twin with every activation, against PyTorch in float64, and bitwise at
1 and 2 threads. The script and helpers are test_conv_strided's (the same stride-1 case format).
"""

import numpy as np
import pytest

from fastnn.backends import fast_backend
from tests.test_conv_strided import (_data, _forward, _pads, _rel,
                                     check_bitwise_at_one_and_two_threads, run_in_flavour)

# (n, h, w, c, f, (kh, kw), (dh, dw), padding), all stride 1 and at most 4 channels: LeNet-5's
# first layer (6 filters: one group of 6 on AVX2); 5, 3, 8 filters alone; 12, 13, 14 and 17
# filters in groups of 8 then 4, 5, 6 and 8 + 1; output widths 1 to 40 (partial vector blocks,
# one block, an odd number of blocks); dilations (one channel with a horizontal dilation: the
# single-plane tap loop) and explicit padding
CASES = [
    (2, 28, 28, 1, 6, (5, 5), (1, 1), "same"),
    (1, 7, 9, 1, 5, (3, 3), (1, 1), "same"),
    (2, 5, 17, 2, 3, (3, 2), (1, 1), "valid"),
    (1, 6, 20, 3, 14, (3, 3), (1, 2), "same"),
    (2, 4, 12, 4, 13, (2, 2), (2, 1), "valid"),
    (1, 3, 8, 1, 8, (3, 3), (1, 1), "same"),
    (1, 5, 16, 1, 12, (1, 3), (1, 1), "same"),
    (2, 6, 6, 2, 6, (3, 3), (1, 1), (1, 2)),
    (1, 9, 40, 1, 17, (5, 5), (1, 1), "same"),
    (1, 6, 1, 1, 6, (3, 1), (1, 1), "same"),
    (3, 8, 24, 1, 4, (3, 3), (1, 1), "same"),
    (2, 7, 19, 1, 6, (3, 3), (2, 2), "same"),
]


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_direct_forward_and_gradients_equal_the_numpy_twin_in_every_flavour(flavour):
    run_in_flavour(flavour, "test_conv_direct")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_direct_forward_matches_pytorch_in_float64(case):
    torch = pytest.importorskip("torch")
    x, kernel, bias = _data(case, np.float64, 5)
    (oh, ow), (top, left) = _pads(case)
    kh, kw = case[5]
    dh, dw = case[6]
    right = (ow - 1) + (kw - 1) * dw + 1 - x.shape[2] - left
    bottom = (oh - 1) + (kh - 1) * dh + 1 - x.shape[1] - top
    xt = torch.nn.functional.pad(torch.tensor(x.transpose(0, 3, 1, 2).copy()),
                                 (left, max(right, 0), top, max(bottom, 0)))
    yt = torch.nn.functional.conv2d(xt, torch.tensor(kernel.transpose(3, 2, 0, 1).copy()),
                                    torch.tensor(bias), dilation=(dh, dw))[:, :, :oh, :ow]
    want = torch.relu(yt).numpy().transpose(0, 2, 3, 1)
    assert _rel(_forward(fast_backend, x, kernel, bias, case, 4, 0.0), want) <= 1e-12


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[8]], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_direct_path_is_bitwise_the_same_at_one_and_two_threads(case, dtype, thread_count):
    check_bitwise_at_one_and_two_threads(case, dtype, thread_count)
