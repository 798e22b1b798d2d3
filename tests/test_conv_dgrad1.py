"""The kernel gradient of single-channel convolutions on the direct path
(src_c/fnn_conv_dgrad1_tmpl.h: dz's (position, filter) rows against the input expanded to the
same interleaving, taken for one input channel, unit vertical stride and at most 64 filters
when the filter-vectorised path does not take the layer): per flavour against the NumPy twin,
in float64 against PyTorch, NaN passing through, and bitwise at 1 and 2 threads.
"""

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import fast_backend
from test_conv_small_backward import _backward, _data, run_in_flavour

# (n, h, w, c, kh, kw, f, strides, dilations, padding), c = 1: LeNet-5's first layer; filters
# that fill no vector (1, 5, 7, 17, 63); kernels past the 5x5 (AVX-512) and 3x3 (AVX2)
# register blocks and 1-wide; images shorter than the kernel's reach with "same", taller than a
# block of 32 rows, 1-row and 1-column; vertical and horizontal dilation; horizontal stride
# (the vertical stride goes to the general path, checked too)
CASES = [
    (3, 28, 28, 1, 5, 5, 6, (1, 1), (1, 1), "same"),
    (2, 9, 13, 1, 3, 3, 1, (1, 1), (1, 1), "valid"),
    (2, 40, 11, 1, 7, 7, 5, (1, 1), (1, 1), "same"),
    (1, 3, 17, 1, 6, 4, 7, (1, 1), (1, 1), "same"),
    (2, 19, 6, 1, 2, 6, 17, (1, 1), (2, 1), "valid"),
    (1, 12, 12, 1, 3, 3, 63, (1, 1), (3, 2), "same"),
    (2, 1, 30, 1, 1, 5, 9, (1, 1), (1, 1), "same"),
    (2, 25, 1, 1, 4, 1, 11, (1, 1), (1, 1), "same"),
    (3, 10, 15, 1, 3, 5, 6, (1, 2), (1, 1), "valid"),
    (2, 11, 9, 1, 3, 3, 6, (2, 1), (1, 1), "same"),    # vertical stride: grad_rows
]

@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_single_channel_kernel_gradient_equals_the_numpy_twin_in_every_flavour(flavour):
    run_in_flavour(flavour, "test_conv_dgrad1")


@pytest.mark.parametrize("case", CASES)
def test_single_channel_kernel_gradient_matches_pytorch_in_float64(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, kernel, dz, strides, dilations, (top, left) = _data(case, np.float64,
                                                         np.random.default_rng(1))
    h, w = x.shape[1:3]
    kh, kw = kernel.shape[:2]
    oh, ow = dz.shape[1:3]
    need_h = (oh - 1) * strides[0] + (kh - 1) * dilations[0] + 1
    need_w = (ow - 1) * strides[1] + (kw - 1) * dilations[1] + 1
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy())
    kt = torch.tensor(kernel.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.zeros(kernel.shape[-1], dtype=torch.float64, requires_grad=True)
    xp = F.pad(xt, (left, max(need_w - w - left, 0), top, max(need_h - h - top, 0)))
    yt = F.conv2d(xp, kt, bt, stride=strides, dilation=dilations)
    (yt * torch.tensor(dz.transpose(0, 3, 1, 2).copy())).sum().backward()
    dk, db, _ = _backward(fast_backend, x, kernel, dz, strides, dilations, (top, left))
    np.testing.assert_allclose(dk, kt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_single_channel_kernel_gradient_is_bitwise_the_same_at_one_and_two_threads(dtype):
    rng = np.random.default_rng(2)
    before = fnn.get_num_threads()
    try:
        for case in [(64, 28, 28, 1, 5, 5, 6, (1, 1), (1, 1), "same"),
                     (37, 20, 13, 1, 7, 3, 5, (1, 1), (2, 1), "same")]:
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
