"""LayerNormalization's compiled kernels around their blocks: the backward takes rows in blocks
of 32 (dx and each block's gamma/beta sums while the rows are in cache, then the blocks added in
order), the forward takes rows of fewer than 256 values four at a time. Row counts around 32,
widths around the 8 lanes and 256, one row: against PyTorch in float64 (~1e-10), the NumPy twin
in float32, 1 and 2 threads bit for bit, the same bits in every SIMD flavour."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend

FAST = pytest.importorskip("fastnn.backends.fast_backend")
NP = get_backend("numpy")
ROWS = [1, 31, 32, 33, 65]
WIDTHS = [1, 7, 8, 9, 17, 255, 256, 300]


def _data(n, c, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c)) * 3 + rng.standard_normal(c)).astype(dtype)
    dy = rng.standard_normal((n, c)).astype(dtype)
    gamma, beta = rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype)
    return x, dy, gamma, beta


def _run(be, x, dy, gamma, beta, eps=1e-5):
    """y, mean, invstd, dx, dgamma, dbeta (the parameter gradients added to nonzero starts),
    and dgamma, dbeta again from a call without dx."""
    n, c = x.shape
    dt = x.dtype
    y, mean, inv = np.full_like(x, 7), np.full(n, 7, dt), np.full(n, 7, dt)
    be.layernorm_forward(x, gamma, beta, eps, y, mean, inv)
    dx, dg, db = np.full_like(x, 7), np.full(c, 0.5, dt), np.full(c, -0.25, dt)
    be.layernorm_backward(x, dy, gamma, mean, inv, dx, dg, db)
    dg2, db2 = np.full(c, 0.5, dt), np.full(c, -0.25, dt)
    be.layernorm_backward(x, dy, gamma, mean, inv, None, dg2, db2)
    return [y, mean, inv, dx, dg, db, dg2, db2]


def _close(got, want, rtol):
    scale = max(float(np.abs(want).max()), 1.0)     # values of order 1 (c = 1: dx is 0)
    assert float(np.abs(got - want).max()) <= rtol * scale


@pytest.mark.parametrize("c", WIDTHS)
@pytest.mark.parametrize("n", ROWS)
def test_float64_kernels_match_torch(n, c):
    torch = pytest.importorskip("torch")
    x, dy, gamma, beta = _data(n, c, np.float64, seed=n * 1000 + c)
    y, mean, inv, dx, dg, db, dg2, db2 = _run(FAST, x, dy, gamma, beta)
    xt = torch.tensor(x, requires_grad=True)
    gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    want = torch.nn.functional.layer_norm(xt, (c,), gt, bt, 1e-5)
    want.backward(torch.tensor(dy))
    _close(y, want.detach().numpy(), 1e-10)
    _close(mean, x.mean(axis=1), 1e-12)
    _close(inv, 1 / np.sqrt(x.var(axis=1) + 1e-5), 1e-10)
    _close(dx, xt.grad.numpy(), 1e-9)
    _close(dg - 0.5, gt.grad.numpy(), 1e-10)
    _close(db + 0.25, bt.grad.numpy(), 1e-10)
    assert dg.tobytes() == dg2.tobytes() and db.tobytes() == db2.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, c", [(33, 9), (97, 512), (1000, 130), (700, 67), (70, 300)])
def test_threads_bitwise_and_the_twin(n, c, dtype):
    """Sizes above the threading threshold (16384 values): 1 and 2 threads give the same bits;
    the NumPy twin (pairwise sums) agrees within float32's or float64's tolerance."""
    args = _data(n, c, dtype, seed=c)
    with fnn.threads(1):
        one = _run(FAST, *args)
    with fnn.threads(2):
        two = _run(FAST, *args)
    assert [a.tobytes() for a in one] == [b.tobytes() for b in two]
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for mine, theirs in zip(one, _run(NP, *args)):
        _close(mine, theirs, rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [256, 300])
def test_wide_rows_have_the_bits_of_a_row_alone(c, dtype):
    x, _, g, b = _data(9, c, dtype, seed=c)
    y, m, s = np.empty_like(x), np.empty(9, dtype), np.empty(9, dtype)
    FAST.layernorm_forward(x, g, b, 1e-5, y, m, s)
    for i in range(9):
        yi, mi, si = np.empty((1, c), dtype), np.empty(1, dtype), np.empty(1, dtype)
        FAST.layernorm_forward(x[i:i + 1].copy(), g, b, 1e-5, yi, mi, si)
        assert yi.tobytes() == y[i:i + 1].tobytes() and (mi[0], si[0]) == (m[i], s[i]), i


_FLAVOUR_SCRIPT = """
import hashlib, numpy as np
from fastnn.backends import fast_backend as fb
rng = np.random.default_rng(5)
h = hashlib.sha1()
for dtype in ("float32", "float64"):
    for n, c in ((70, 7), (33, 8), (65, 17), (40, 300)):
        x = (rng.standard_normal((n, c)) * 3 + 1).astype(dtype)
        dy = rng.standard_normal((n, c)).astype(dtype)
        g, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
        y, m, s = np.empty_like(x), np.empty(n, dtype), np.empty(n, dtype)
        fb.layernorm_forward(x, g, b, 1e-5, y, m, s)
        dx, dg, db = np.empty_like(x), np.ones(c, dtype), np.ones(c, dtype)
        fb.layernorm_backward(x, dy, g, m, s, dx, dg, db)
        for a in (y, m, s, dx, dg, db):
            h.update(a.tobytes())
print(fb.kernel_name(), h.hexdigest())
"""


def test_every_flavour_gives_the_same_bits_over_several_blocks():
    seen = {}
    for flavour in ("generic", "avx2", "avx512"):
        done = subprocess.run([sys.executable, "-c", _FLAVOUR_SCRIPT], capture_output=True,
                              text=True, timeout=300, env=dict(os.environ, FASTNN_KERNEL=flavour))
        assert done.returncode == 0, done.stderr[-2000:]
        name, digest = done.stdout.split()
        seen[name] = digest
    assert "generic" in seen
    assert len(set(seen.values())) == 1, seen


def test_model_input_gradient_is_written_in_place_and_matches_torch():
    """The model's backward hands the first layer the returned dx as its gradient buffer (no
    copy from the workspace): dx, gamma and beta gradients against PyTorch in float64, and a
    second backward of the same pass gives the same dx in a new array."""
    torch = pytest.importorskip("torch")
    x, dy, gamma, beta = _data(40, 12, np.float64, seed=2)
    model = fnn.Sequential([fnn.LayerNormalization(epsilon=1e-5)], input_shape=(12,),
                           dtype="float64", seed=0)
    model.set_weights([gamma, beta])
    model.forward(x, training=True)
    dx = model.backward(dy)
    again = model.backward(dy)
    assert again is not dx and again.tobytes() == dx.tobytes()
    xt = torch.tensor(x, requires_grad=True)
    gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    torch.nn.functional.layer_norm(xt, (12,), gt, bt, 1e-5).backward(torch.tensor(dy))
    _close(dx, xt.grad.numpy(), 1e-9)
    dg, db = model.grads
    _close(dg, 2 * gt.grad.numpy(), 1e-10)          # two backward calls accumulate
    _close(db, 2 * bt.grad.numpy(), 1e-10)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_input_read_by_two_layers_gets_the_sum_of_their_gradients(backend):
    """Fan-out at the model input: the second layer's gradient is added to the first's in the
    returned dx itself. Against finite differences of sum(output * R) in float64."""
    from _finite_differences import check_model_gradients
    inp = fnn.Input((6,))
    a = fnn.LayerNormalization(epsilon=1e-3)(inp)
    b = fnn.Dense(6, activation="tanh")(inp)
    model = fnn.Model(inp, fnn.Add()([a, b]), seed=0, dtype="float64", backend=backend)
    rng = np.random.default_rng(4)
    x, R = rng.standard_normal((5, 6)), rng.standard_normal((5, 6))
    check_model_gradients(model, x, R)
