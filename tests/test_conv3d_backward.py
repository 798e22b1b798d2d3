"""Conv3D's kernel and bias gradients without the depth stack (src_c/fnn_conv3d.h, backend
conv3d_backward_kernel): the compiled kernel and its NumPy twin against an explicit sum over
taps in float64 (strides, dilations, front padding, odd sizes), on every flavour (the generic
one declines and the layer goes tap by tap), the layer's whole backward against PyTorch in
float64 and finite differences, 1 and 2 threads giving the same bits, and malformed arguments
raising ValueError."""

import numpy as np
import pytest
from _flavours import run_in_flavour

import fastnn as fnn
from fastnn.backends import fast_backend, numpy_backend

#: (n, d, h, w, c, filters, (kd, kh, kw), (sd, sh, sw), (dd, dh, dw), (front, top, left))
CASES = [
    (2, 5, 6, 7, 3, 16, (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1)),
    (1, 7, 5, 9, 4, 12, (2, 3, 2), (2, 1, 2), (1, 1, 1), (0, 1, 0)),
    (3, 6, 8, 8, 8, 16, (3, 3, 3), (1, 1, 1), (2, 2, 1), (2, 2, 1)),
    (2, 4, 6, 6, 2, 10, (3, 3, 3), (1, 2, 1), (1, 1, 1), (1, 1, 1)),
    (2, 4, 5, 6, 8, 32, (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1)),   # two vectors (AVX-512)
    (1, 3, 4, 11, 5, 9, (1, 3, 3), (1, 1, 1), (1, 1, 1), (0, 0, 0)),   # valid, odd sizes
    (2, 6, 5, 5, 3, 16, (4, 2, 2), (3, 2, 1), (1, 1, 1), (2, 1, 0)),   # front past a stride
    (1, 2, 3, 4, 1, 4, (1, 3, 3), (1, 1, 1), (1, 1, 1), (0, 1, 1)),    # 1 channel
    (2, 9, 5, 6, 16, 7, (3, 1, 3), (1, 1, 2), (3, 1, 1), (0, 0, 0)),   # 16 channels a slice
]


def _outs(case):
    n, d, h, w, c, f, ks, ss, ds, pads = case
    sizes = (d, h, w)
    return tuple((sizes[i] + 2 * pads[i] - (ks[i] - 1) * ds[i] - 1) // ss[i] + 1
                 for i in range(3))


def _data(case, dtype, seed):
    n, d, h, w, c, f = case[:6]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d, h, w, c)).astype(dtype)
    dz = rng.standard_normal((n, *_outs(case), f)).astype(dtype)
    return x, dz


def _explicit(x, dz, case):
    """dkernel (kd, kh, kw, c, f) and dbias as the plain sum over taps and positions, on a
    zero-padded copy of x: apart from both kernels under test."""
    n, d, h, w, c, f, ks, ss, ds, pads = case
    od, oh, ow = _outs(case)
    big = [max(ks[i] * ds[i] + o * ss[i], s) + pads[i] for i, (o, s) in
           enumerate(zip((od, oh, ow), (d, h, w)))]
    xp = np.zeros((n, *big, c))
    xp[:, pads[0]:pads[0] + d, pads[1]:pads[1] + h, pads[2]:pads[2] + w] = x
    dk = np.zeros((*ks, c, f))
    for kz in range(ks[0]):
        for ky in range(ks[1]):
            for kx in range(ks[2]):
                z0, y0, x0 = kz * ds[0], ky * ds[1], kx * ds[2]
                win = xp[:, z0:z0 + (od - 1) * ss[0] + 1:ss[0],
                         y0:y0 + (oh - 1) * ss[1] + 1:ss[1], x0:x0 + (ow - 1) * ss[2] + 1:ss[2]]
                dk[kz, ky, kx] = np.einsum("bpyxc,bpyxf->cf", win, dz)
    return dk, dz.reshape(-1, f).sum(axis=0)


def _call(be, x, dz, case, dk, db):
    ks, ss, ds, pads = case[6:]
    return be.conv3d_backward_kernel(x, dz, (ks[0], ss[0], ds[0], pads[0]), ss[1:], ds[1:],
                                     pads[1:], dk, db)


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_numpy_twin_matches_the_explicit_sum(case):
    x, dz = _data(case, "float64", 1)
    dk = np.full((*case[6], case[4], case[5]), np.nan)
    db = np.full(case[5], np.nan)
    assert _call(numpy_backend, x, dz, case, dk, db) is True
    want_k, want_b = _explicit(x, dz, case)
    assert _rel(dk, want_k) <= 1e-12
    assert _rel(db, want_b) <= 1e-12


_FLAVOUR_SCRIPT = r"""
import numpy as np, sys
sys.path.insert(0, "tests")
from fastnn.backends import fast_backend
import test_conv3d_backward as T
taken = 0
for case in T.CASES:
    for dtype, tol in (("float64", 1e-10), ("float32", 2e-5)):
        x, dz = T._data(case, dtype, 2)
        dk = np.full((*case[6], case[4], case[5]), 7.0, dtype)
        db = np.full(case[5], 7.0, dtype)
        done = T._call(fast_backend, x, dz, case, dk, db)
        if not done:        # declined: nothing written
            assert (dk == 7).all() and (db == 7).all(), case
            continue
        taken += 1
        want_k, want_b = T._explicit(x.astype("float64"), dz.astype("float64"), case)
        assert T._rel(dk, want_k) <= tol, (case, dtype, T._rel(dk, want_k))
        assert T._rel(db, want_b) <= tol, (case, dtype, T._rel(db, want_b))
print(fast_backend.kernel_name(), taken)
"""


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_compiled_kernel_matches_the_explicit_sum_on_every_flavour(flavour):
    name, taken = run_in_flavour(_FLAVOUR_SCRIPT, flavour)
    if flavour == "generic":        # no filter-vectorised kernel there: the layer goes by tap
        assert int(taken) == 0
    else:   # up to two vectors of filters: AVX-512 all but the f64 32-filter case; AVX2 all
        # f32 cases but that one, and the f64 cases of at most 8 filters (two)
        assert int(taken) == {"avx2": 10, "avx512": 17}[flavour]


#: layer arguments, sample shape (d, h, w, c)
LAYERS = [
    (dict(filters=16, kernel_size=3, padding="same"), (6, 7, 8, 8)),
    (dict(filters=5, kernel_size=(2, 3, 3), strides=(2, 1, 2)), (7, 6, 9, 3)),
    (dict(filters=12, kernel_size=3, dilation_rate=(2, 1, 2), padding="same"), (6, 5, 7, 4)),
    (dict(filters=8, kernel_size=(3, 2, 3), strides=(1, 2, 1), padding="same"), (5, 7, 5, 6)),
    (dict(filters=20, kernel_size=(4, 3, 2), strides=(3, 1, 1), padding="same"), (7, 5, 4, 2)),
    (dict(filters=3, kernel_size=(1, 3, 3), padding="valid"), (3, 6, 5, 9)),
]


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("kwargs, shape", LAYERS, ids=[str(i) for i in range(len(LAYERS))])
def test_layer_gradients_match_pytorch_float64(kwargs, shape, backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, *shape))
    model = fnn.Sequential([fnn.Conv3D(activation="tanh", **kwargs)], input_shape=shape,
                           dtype="float64", backend=backend, seed=1)
    kernel, _ = model.get_weights()
    bias = rng.standard_normal(kwargs["filters"])
    model.set_weights([kernel, bias])
    layer = model.layers[0]
    y = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dy)
    # Keras' padding: the odd one after, as torch pads explicitly here
    pads = []
    for size, k, s, r in zip(shape[:3], layer.kernel_size, layer.strides, layer.dilation_rate):
        total = max((-(-size // s) - 1) * s + (k - 1) * r + 1 - size, 0) \
            if kwargs.get("padding") == "same" else 0
        pads.append((total // 2, total - total // 2))
    xt = torch.tensor(x.transpose(0, 4, 1, 2, 3), requires_grad=True)
    kt = torch.tensor(kernel, requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    xpad = torch.nn.functional.pad(xt, (*pads[2], *pads[1], *pads[0]))
    yt = torch.tanh(torch.nn.functional.conv3d(xpad, kt.permute(4, 3, 0, 1, 2), bt,
                                               stride=layer.strides,
                                               dilation=layer.dilation_rate))
    yt.backward(torch.tensor(dy.transpose(0, 4, 1, 2, 3)))
    want = [yt.detach().numpy().transpose(0, 2, 3, 4, 1),
            xt.grad.numpy().transpose(0, 2, 3, 4, 1), kt.grad.numpy(), bt.grad.numpy()]
    for got, exp in zip([y, dx, *model.grads], want):
        np.testing.assert_allclose(got, exp, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kwargs, shape", LAYERS[:3], ids=["same", "sd2", "dil"])
def test_kernel_gradient_matches_finite_differences(kwargs, shape):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, *shape))
    model = fnn.Sequential([fnn.Conv3D(activation="tanh", **kwargs)], input_shape=shape,
                           dtype="float64", seed=2)
    kernel, bias = model.get_weights()
    dy = rng.standard_normal(model.predict(x).shape)

    def loss(k, b):
        model.set_weights([k, b])
        return float(np.sum(model.predict(x) * dy))

    model.set_weights([kernel, bias])
    model.forward(x, training=True)
    model.zero_grad()
    model.backward(dy)
    dk, db = [g.copy() for g in model.grads]
    eps = 1e-6
    for idx in [tuple(rng.integers(0, s) for s in kernel.shape) for _ in range(12)]:
        kp, km = kernel.copy(), kernel.copy()
        kp[idx] += eps
        km[idx] -= eps
        num = (loss(kp, bias) - loss(km, bias)) / (2 * eps)
        assert abs(num - dk[idx]) <= 1e-6 * max(1.0, abs(num)), (idx, num, dk[idx])
    for j in range(0, bias.shape[0], 3):
        bp, bm = bias.copy(), bias.copy()
        bp[j] += eps
        bm[j] -= eps
        num = (loss(kernel, bp) - loss(kernel, bm)) / (2 * eps)
        assert abs(num - db[j]) <= 1e-6 * max(1.0, abs(num)), (j, num, db[j])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_backward_is_bitwise_the_same_at_one_and_two_threads(dtype):
    rng = np.random.default_rng(6)
    shape = (8, 12, 12, 8)
    x = rng.standard_normal((4, *shape)).astype(dtype)
    model = fnn.Sequential([fnn.Conv3D(16, 3, padding="same", activation="relu")],
                           input_shape=shape, dtype=dtype, seed=3)
    dy = rng.standard_normal((4, 8, 12, 12, 16)).astype(dtype)
    previous = fnn.get_num_threads()
    outs = []
    try:
        for threads in (1, 2, 1, 2):
            fnn.set_num_threads(threads)
            model.forward(x, training=True)
            model.zero_grad()
            dx = model.backward(dy)
            outs.append(b"".join([dx.tobytes()] + [g.tobytes() for g in model.grads]))
    finally:
        fnn.set_num_threads(previous)
    assert len(set(outs)) == 1


def test_compiled_kernel_is_bitwise_the_same_at_one_and_two_threads():
    case = (4, 8, 12, 12, 8, 16, (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1))
    x, dz = _data(case, "float32", 7)
    previous = fnn.get_num_threads()
    outs = []
    try:
        for threads in (1, 2, 1, 2):
            fnn.set_num_threads(threads)
            dk, db = np.zeros((3, 3, 3, 8, 16), "f4"), np.zeros(16, "f4")
            _call(fast_backend, x, dz, case, dk, db)
            outs.append(dk.tobytes() + db.tobytes())
    finally:
        fnn.set_num_threads(previous)
    assert len(set(outs)) == 1


def _bad(**change):
    case = CASES[0]
    x, dz = _data(case, "float32", 0)
    args = dict(x=x, dz=dz, depth=(3, 1, 1, 1), strides=(1, 1), dilations=(1, 1),
                padding=(1, 1), dkernel=np.zeros((3, 3, 3, 3, 16), "f4"),
                dbias=np.zeros(16, "f4"))
    args.update(change)
    return args


@pytest.mark.parametrize("change, match", [
    (dict(depth=(0, 1, 1, 1)), "depth=\\(0, 1, 1, 1\\)"),
    (dict(depth=(3, 1, 1, -1)), "depth=\\(3, 1, 1, -1\\)"),
    (dict(depth=(2, 1, 1, 1)), "dkernel \\(3, 3, 3, 3, 16\\) must have 2 depth taps"),
    (dict(dkernel=np.zeros((3, 3, 3, 4, 16), "f4")), "shapes do not match"),   # channels
    (dict(dz=np.zeros((1, 5, 6, 7, 16), "f4")), "shapes do not match"),       # batch
    (dict(dbias=np.zeros(3, "f4")), "dbias must have 16 values. Received: 3"),
    (dict(strides=(0, 1)), "strides=\\(0, 1\\)"),
    (dict(padding=(-1, 1)), "padding=\\(-1, 1\\)"),
], ids=["kd", "front", "taps", "channels", "batch", "bias", "stride", "pad"])
def test_bad_arguments_raise_value_error_naming_them(change, match):
    a = _bad(**change)
    with pytest.raises(ValueError, match=match):
        fast_backend.conv3d_backward_kernel(a["x"], a["dz"], a["depth"], a["strides"],
                                            a["dilations"], a["padding"], a["dkernel"],
                                            a["dbias"])


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unstack_adds_each_taps_gradient_back_to_its_slice(case, dtype):
    """conv3d_unstack (both backends) against the stack's transpose written out: every (output
    depth, tap) pair that reads an input slice adds its channels there."""
    n, d, h, w, c, f, ks, ss, ds, pads = case
    od = _outs(case)[0]
    rng = np.random.default_rng(11)
    dstack = rng.standard_normal((n, od, h, w, ks[0] * c)).astype(dtype)
    want = np.zeros((n, d, h, w, c))
    for p in range(od):
        for kz in range(ks[0]):
            iz = p * ss[0] + kz * ds[0] - pads[0]
            if 0 <= iz < d:
                want[:, iz] += dstack[:, p, :, :, kz * c:(kz + 1) * c]
    depth = (ks[0], ss[0], ds[0], pads[0])
    for be in (fast_backend, numpy_backend):
        dx = np.full((n, d, h, w, c), np.nan, dtype)
        be.conv3d_unstack(dstack, depth, dx)
        np.testing.assert_allclose(dx, want, rtol=1e-6 if dtype == "float32" else 1e-14,
                                   atol=1e-6 if dtype == "float32" else 1e-14)


def test_unstack_is_bitwise_the_same_at_one_and_two_threads():
    rng = np.random.default_rng(12)
    dstack = rng.standard_normal((4, 8, 12, 12, 24)).astype("f4")
    previous = fnn.get_num_threads()
    outs = []
    try:
        for threads in (1, 2, 1, 2):
            fnn.set_num_threads(threads)
            dx = np.zeros((4, 8, 12, 12, 8), "f4")
            fast_backend.conv3d_unstack(dstack, (3, 1, 1, 1), dx)
            outs.append(dx.tobytes())
    finally:
        fnn.set_num_threads(previous)
    assert len(set(outs)) == 1


@pytest.mark.parametrize("depth, dx_shape, match", [
    ((3, 0, 1, 1), (2, 5, 6, 7, 3), "depth=\\(3, 0, 1, 1\\)"),
    ((2, 1, 1, 1), (2, 5, 6, 7, 3), "must be dx's"),                 # kd*c != channels
    ((3, 1, 1, 1), (1, 5, 6, 7, 3), "must be dx's"),                 # batch
    ((3, 1, 1, 1), (2, 5, 6, 8, 3), "must be dx's"),                 # width
], ids=["sd", "taps", "batch", "width"])
def test_unstack_refuses_mismatched_shapes(depth, dx_shape, match):
    dstack = np.zeros((2, 5, 6, 7, 9), "f4")
    with pytest.raises(ValueError, match=match):
        fast_backend.conv3d_unstack(dstack, depth, np.zeros(dx_shape, "f4"))
