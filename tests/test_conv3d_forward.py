"""Conv3D's forward without the depth stack (src_c/fnn_conv3d.h, backend conv3d_forward): the
compiled kernel gives bitwise what the 2-D convolution of the stack gives (on every flavour,
both types, every activation), the NumPy twin agrees, shapes the kernel declines leave y alone,
the layer matches PyTorch in float64 on shapes that take it, 1 and 2 threads give the same
bits, and malformed arguments raise ValueError."""

import numpy as np
import pytest
from _flavours import run_in_flavour

import fastnn as fnn
from fastnn.backends import fast_backend, numpy_backend

#: (n, d, h, w, c, filters, (kd, kh, kw), depth stride, depth dilation, front, (top, left))
CASES = [
    (2, 5, 6, 7, 3, 16, (3, 3, 3), 1, 1, 1, (1, 1)),
    (1, 7, 5, 9, 4, 12, (2, 3, 2), 2, 1, 0, (0, 1)),
    (3, 6, 8, 8, 8, 16, (3, 3, 3), 1, 2, 2, (1, 1)),
    (2, 4, 6, 6, 2, 10, (3, 3, 3), 1, 1, 1, (1, 1)),
    (2, 4, 6, 6, 8, 40, (3, 3, 3), 1, 1, 1, (1, 1)),       # two slivers of filters
    (1, 3, 4, 20, 5, 9, (1, 3, 3), 1, 1, 0, (0, 0)),
    (2, 6, 5, 5, 3, 16, (4, 2, 2), 3, 1, 2, (1, 0)),        # front padding past a stride
    (1, 2, 3, 4, 1, 4, (1, 3, 3), 1, 1, 0, (1, 1)),         # 1 channel: the direct path
]

#: activation codes (fastnn.activations) and their parameters: linear ... silu, softmax
ACTS = [(0, 0.0), (2, 0.0), (3, 0.0), (4, 0.0), (5, 0.2), (6, 0.0), (7, 0.0), (8, 0.0),
        (10, 1.0), (11, 0.0), (12, 0.0), (13, 0.0)]


def _out_depth(case):
    n, d, h, w, c, f, (kd, kh, kw), sd, dd, front, _ = case
    return (d + 2 * front - (kd - 1) * dd - 1) // sd + 1


def _data(case, dtype, seed):
    n, d, h, w, c, f, (kd, kh, kw), sd, dd, front, (pt, pl) = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d, h, w, c)).astype(dtype)
    kernel = rng.standard_normal((kh, kw, kd * c, f)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    shape = (n, _out_depth(case), h + 2 * pt - kh + 1, w + 2 * pl - kw + 1, f)
    return x, kernel, bias, shape


def _stack(x, case):
    """The depth stack built slice by slice, apart from both kernels under test."""
    n, d, h, w, c, f, (kd, kh, kw), sd, dd, front, _ = case
    od = _out_depth(case)
    out = np.zeros((n * od, h, w, kd * c), x.dtype)
    for b in range(n):
        for p in range(od):
            for kz in range(kd):
                iz = p * sd + kz * dd - front
                if 0 <= iz < d:
                    out[b * od + p, :, :, kz * c:(kz + 1) * c] = x[b, iz]
    return out


def _call(be, x, kernel, bias, case, act, param, y):
    kd, sd, dd, front, pads = case[6][0], case[7], case[8], case[9], case[10]
    return be.conv3d_forward(x, kernel, bias, (kd, sd, dd, front), (1, 1), (1, 1), pads, act,
                             param, y)


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


_FLAVOUR_SCRIPT = """
import numpy as np
from fastnn.backends import fast_backend, numpy_backend
from tests.test_conv3d_forward import ACTS, CASES, _call, _data, _rel, _stack
taken = 0
for i, case in enumerate(CASES):
    for dtype, tol in (("float32", 2e-5), ("float64", 1e-12)):
        x, kernel, bias, shape = _data(case, dtype, i)
        for act, param in ACTS:
            y = np.full((shape[0] + 1, *shape[1:]), 7.0, dtype)   # y, then a sentinel sample
            done = _call(fast_backend, x, kernel, bias, case, act, param, y[:-1])
            assert (y[-1] == 7.0).all(), case
            if not done:
                assert (y == 7.0).all(), case      # declined: nothing written
                continue
            taken += 1
            want = np.zeros((shape[0] * shape[1], *shape[2:]), dtype)
            fast_backend.conv2d_forward(_stack(x, case), kernel, bias, (1, 1), (1, 1),
                                        case[10], act, param, want)
            assert np.array_equal(y[:-1].reshape(want.shape), want), (case, dtype, act)
            twin = np.zeros(shape, dtype)
            assert _call(numpy_backend, x, kernel, bias, case, act, param, twin) is True
            assert _rel(y[:-1], twin) <= tol, (case, dtype, act, _rel(y[:-1], twin))
print(fast_backend.kernel_name(), taken)
"""


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_stackless_forward_is_the_stacks_bitwise_and_near_the_numpy_twin(flavour):
    name, taken = run_in_flavour(_FLAVOUR_SCRIPT, flavour, FASTNN_CONV_WINOGRAD="0")
    # the generic flavour keeps the GEMM path (the stack); the x86 ones take most cases (not
    # the 1-channel one, which is the direct path's, nor rows their tiles would overshoot)
    if flavour == "generic":
        assert int(taken) == 0
    else:
        assert int(taken) >= len(ACTS) * len(CASES)


def test_numpy_twin_matches_an_explicit_sum_over_taps():
    case = CASES[6]
    x, kernel, bias, shape = _data(case, "float64", 3)
    n, d, h, w, c, f, (kd, kh, kw), sd, dd, front, (pt, pl) = case
    y = np.zeros(shape)
    numpy_backend.conv3d_forward(x, kernel, bias, (kd, sd, dd, front), (1, 1), (1, 1),
                                 (pt, pl), 0, 0.0, y)
    k5 = kernel.reshape(kh, kw, kd, c, f)
    want = np.zeros(shape) + bias
    xp = np.pad(x, ((0, 0), (0, 0), (pt, kh), (pl, kw), (0, 0)))
    for p in range(shape[1]):
        for kz in range(kd):
            iz = p * sd + kz * dd - front
            if not 0 <= iz < d:
                continue
            for ky in range(kh):
                for kx in range(kw):
                    win = xp[:, iz, ky:ky + shape[2], kx:kx + shape[3]]
                    want[:, p] += win @ k5[ky, kx, kz]
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("kwargs", [dict(kernel_size=3, padding="same"),
                                    dict(kernel_size=(2, 3, 3), strides=(2, 1, 1)),
                                    dict(kernel_size=3, dilation_rate=(2, 1, 1),
                                         padding="same")], ids=["same", "sd2", "dd2"])
def test_layer_on_the_stackless_path_matches_pytorch_float64(backend, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 7, 8, 8))
    model = fnn.Sequential([fnn.Conv3D(16, activation="relu", **kwargs)],
                           input_shape=x.shape[1:], dtype="float64", backend=backend, seed=1)
    kernel, _ = model.get_weights()
    bias = rng.standard_normal(16)
    model.set_weights([kernel, bias])
    y = model.predict(x)
    layer = model.layers[0]
    kd, kh, kw = layer.kernel_size
    pad = [((k - 1) * r) // 2 for k, r in zip(layer.kernel_size, layer.dilation_rate)] \
        if kwargs.get("padding") == "same" else [0, 0, 0]
    yt = torch.relu(torch.nn.functional.conv3d(
        torch.tensor(x.transpose(0, 4, 1, 2, 3)), torch.tensor(kernel).permute(4, 3, 0, 1, 2),
        torch.tensor(bias), stride=layer.strides, padding=pad, dilation=layer.dilation_rate))
    np.testing.assert_allclose(y, yt.numpy().transpose(0, 2, 3, 4, 1), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stackless_forward_is_bitwise_the_same_at_one_and_two_threads(dtype):
    case = (4, 8, 12, 12, 8, 16, (3, 3, 3), 1, 1, 1, (1, 1))
    x, kernel, bias, shape = _data(case, dtype, 7)
    previous = fnn.get_num_threads()
    outs = []
    try:
        for threads in (1, 2, 1, 2):
            fnn.set_num_threads(threads)
            y = np.zeros(shape, dtype)
            _call(fast_backend, x, kernel, bias, case, 4, 0.0, y)
            outs.append(y.tobytes())
    finally:
        fnn.set_num_threads(previous)
    assert len(set(outs)) == 1


def _bad(**change):
    x, kernel, bias, shape = _data(CASES[0], "float32", 0)
    args = dict(x=x, kernel=kernel, bias=bias, depth=(3, 1, 1, 1), strides=(1, 1),
                dilations=(1, 1), padding=(1, 1), act=4, param=0.0, y=np.zeros(shape, "f4"))
    args.update(change)
    return args


@pytest.mark.parametrize("change, match", [
    (dict(depth=(0, 1, 1, 1)), "depth=\\(0, 1, 1, 1\\)"),
    (dict(depth=(3, 0, 1, 1)), "depth=\\(3, 0, 1, 1\\)"),
    (dict(depth=(3, 1, 1, -1)), "depth=\\(3, 1, 1, -1\\)"),
    (dict(depth=(2, 1, 1, 1)), "shapes do not match"),                # kernel != kd * c
    (dict(y=np.zeros((1, 5, 6, 7, 16), "f4")), "shapes do not match"),  # batch
    (dict(y=np.zeros((2, 5, 6, 7, 8), "f4")), "shapes do not match"),   # filters
    (dict(bias=np.zeros(3, "f4")), "bias must have 16 values. Received: 3"),
    (dict(act=9), "unknown activation code 9"),
    (dict(strides=(0, 1)), "strides=\\(0, 1\\)"),
    (dict(padding=(-1, 1)), "padding=\\(-1, 1\\)"),
], ids=["kd", "sd", "front", "kernel", "batch", "filters", "bias", "act", "stride", "pad"])
def test_bad_arguments_raise_value_error_naming_them(change, match):
    a = _bad(**change)
    with pytest.raises(ValueError, match=match):
        fast_backend.conv3d_forward(a["x"], a["kernel"], a["bias"], a["depth"], a["strides"],
                                    a["dilations"], a["padding"], a["act"], a["param"], a["y"])


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_both_stride_one_backwards_match_pytorch_float64(backend, monkeypatch):
    """A depth stride of 1 runs the taps-on-output backward or, where its input gradient would
    take the GEMM's transposed gather and the stacked one's would not (AVX-512 with 8
    channels), the stacked backward: both forced here, both held to PyTorch."""
    torch = pytest.importorskip("torch")
    from fastnn.layers.convolutional3d import Conv3D
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 5, 6, 7, 8))
    dy = rng.standard_normal((2, 5, 6, 7, 16))
    kernel = rng.standard_normal((3, 3, 3, 8, 16)) * 0.1
    bias = rng.standard_normal(16)
    xt = torch.tensor(x.transpose(0, 4, 1, 2, 3), requires_grad=True)
    kt = torch.tensor(kernel, requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    yt = torch.tanh(torch.nn.functional.conv3d(xt, kt.permute(4, 3, 0, 1, 2), bt, padding=1))
    yt.backward(torch.tensor(dy.transpose(0, 4, 1, 2, 3)))
    want = [yt.detach().numpy().transpose(0, 2, 3, 4, 1), xt.grad.numpy().transpose(
        0, 2, 3, 4, 1), kt.grad.numpy(), bt.grad.numpy()]
    for stacked in (False, True):
        monkeypatch.setattr(Conv3D, "_stacked_dx_pays", lambda self, be, s=stacked: s)
        model = fnn.Sequential([fnn.Conv3D(16, 3, padding="same", activation="tanh")],
                               input_shape=x.shape[1:], dtype="float64", backend=backend)
        model.set_weights([kernel, bias])
        y = model.forward(x, training=True)
        model.zero_grad()
        dx = model.backward(dy)
        for got, exp in zip([y, dx, *model.grads], want):
            np.testing.assert_allclose(got, exp, rtol=1e-10, atol=1e-12)


def test_input_gradient_path_query():
    shapes = ((1, 16, 16, 8), (3, 3, 8, 48), (1, 16, 16, 48))
    geometry = ((1, 1), (1, 1), (1, 1))
    assert numpy_backend.conv2d_dx_on_gemm(*shapes, *geometry) is True
    # 8 channels of dx: AVX2's stride-1 kernels take them (8 lanes), AVX-512's (16) do not
    got = fast_backend.conv2d_dx_on_gemm(*shapes, *geometry)
    assert got is (fast_backend.kernel_name() != "avx2")
    if fast_backend.kernel_name() == "generic":        # no stride-1 or Winograd dx there
        assert fast_backend.conv2d_dx_on_gemm((1, 16, 16, 24), (3, 3, 24, 16), (1, 16, 16, 16),
                                              *geometry) is True
    with pytest.raises(ValueError, match="shapes do not match"):
        fast_backend.conv2d_dx_on_gemm((1, 16, 16, 7), (3, 3, 8, 48), (1, 16, 16, 48),
                                       *geometry)
