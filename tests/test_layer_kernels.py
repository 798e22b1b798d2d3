"""The compiled kernels of the layers beyond Dense against their NumPy twins, one call at a
time: batch and layer normalization (forward in training and inference, backward), Dropout's
mask and products, Add and Concatenate. Odd sizes, sizes across the kernels' column blocks (64)
and above the threading threshold (131072 elements); float32 rtol 1e-5, float64 rtol 1e-12;
bitwise the same at 1 and 2 threads. The twins themselves are checked against closed forms.
"""

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend

NP = get_backend("numpy")
FAST = pytest.importorskip("fastnn.backends.fast_backend")
SHAPES = [(1, 1), (2, 3), (7, 65), (33, 130), (700, 200)]     # the last: 140k elements
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def _close(a, b, dtype):
    scale = max(float(np.max(np.abs(b))), 1.0) if b.size else 1.0
    assert np.max(np.abs(a - b), initial=0.0) <= RTOL[dtype] * scale


def _batchnorm(be, x, dy, gamma, beta):
    n, c = x.shape
    dt = x.dtype
    mm, mv = np.linspace(-0.5, 0.5, c).astype(dt), np.linspace(0.5, 2.0, c).astype(dt)
    out, mean, inv = np.empty_like(x), np.empty(c, dt), np.empty(c, dt)
    be.batchnorm_forward_train(x, gamma, beta, 1e-3, 0.9, mm, mv, out, mean, inv)
    infer = np.empty_like(x)
    be.batchnorm_forward_infer(x, gamma, beta, mm, mv, 1e-3, infer)
    dx, dg, db = np.empty_like(x), np.full(c, 0.5, dt), np.full(c, -0.25, dt)  # accumulates
    be.batchnorm_backward(x, dy, gamma, mean, inv, dx, dg, db)
    dg2, db2 = np.zeros(c, dt), np.zeros(c, dt)
    be.batchnorm_backward(x, dy, gamma, mean, inv, None, dg2, db2)      # no dx wanted
    return [out, mean, inv, mm, mv, infer, dx, dg, db, dg2, db2]


def _layernorm(be, x, dy, gamma, beta):
    n, c = x.shape
    dt = x.dtype
    out, mean, inv = np.empty_like(x), np.empty(n, dt), np.empty(n, dt)
    be.layernorm_forward(x, gamma, beta, 1e-5, out, mean, inv)
    dx, dg, db = np.empty_like(x), np.full(c, 0.5, dt), np.full(c, -0.25, dt)
    be.layernorm_backward(x, dy, gamma, mean, inv, dx, dg, db)
    dg2, db2 = np.zeros(c, dt), np.zeros(c, dt)
    be.layernorm_backward(x, dy, gamma, mean, inv, None, dg2, db2)
    return [out, mean, inv, dx, dg, db, dg2, db2]


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    n, c = shape
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    return (x, rng.standard_normal(shape).astype(dtype),
            rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kernel", [_batchnorm, _layernorm])
def test_normalization_kernels_match_the_numpy_twins(kernel, shape, dtype):
    args = _data(shape, dtype)
    for mine, theirs in zip(kernel(FAST, *args), kernel(NP, *args)):
        assert mine.dtype == theirs.dtype == dtype
        _close(mine, theirs, dtype)
    with fnn.threads(1):
        one = kernel(FAST, *args)
    with fnn.threads(2):
        two = kernel(FAST, *args)
    assert [a.tobytes() for a in one] == [b.tobytes() for b in two]


def test_the_normalization_twins_follow_the_formulas():
    x, dy, gamma, beta = _data((9, 4), np.float64, seed=3)
    out, mean, inv, mm, mv, infer, dx, dg, db, dg2, db2 = _batchnorm(NP, x, dy, gamma, beta)
    mu, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(out, gamma * (x - mu) / np.sqrt(var + 1e-3) + beta, rtol=1e-12)
    np.testing.assert_allclose(mm, 0.9 * np.linspace(-0.5, 0.5, 4) + 0.1 * mu, rtol=1e-12)
    np.testing.assert_allclose(mv, 0.9 * np.linspace(0.5, 2.0, 4) + 0.1 * x.var(0, ddof=1),
                               rtol=1e-12)
    xhat = (x - mu) / np.sqrt(var + 1e-3)
    np.testing.assert_allclose(dg2, (dy * xhat).sum(0), rtol=1e-12)
    np.testing.assert_allclose(dg, 0.5 + (dy * xhat).sum(0), rtol=1e-12)
    np.testing.assert_allclose(db, -0.25 + dy.sum(0), rtol=1e-12)
    out, mean, inv, dx, dg, db, dg2, db2 = _layernorm(NP, x, dy, gamma, beta)
    mu, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    np.testing.assert_allclose(out, gamma * (x - mu) / np.sqrt(var + 1e-5) + beta, rtol=1e-12)
    # dx by finite differences of sum(out * dy) in float64
    h, fd = 1e-6, np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        for sign in (1, -1):
            shifted = x.copy()
            shifted[idx] += sign * h
            o = np.empty_like(x)
            NP.layernorm_forward(shifted, gamma, beta, 1e-5, o, np.empty(9), np.empty(9))
            fd[idx] += sign * float(np.sum(o * dy)) / (2 * h)
    np.testing.assert_allclose(dx, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 1000, 150001])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_dropout_masks_are_the_same_on_both_backends_and_any_thread_count(n, rate, dtype):
    masks = []
    for be, threads in ((NP, 1), (FAST, 1), (FAST, 2)):
        mask = np.full(n, -1, dtype)
        with fnn.threads(threads):
            be.dropout_mask(2**64 - 5, 3, rate, mask)
        masks.append(mask)
    assert masks[0].tobytes() == masks[1].tobytes() == masks[2].tobytes()
    scale = dtype(1 / (1 - rate))
    assert set(np.unique(masks[0])) <= {dtype(0), scale}
    if n >= 1000:
        assert abs((masks[0] == 0).mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / n) + 1e-12
    other = np.empty(n, dtype)
    FAST.dropout_mask(2**64 - 5, 4, rate, other)              # the next call: a new mask
    assert rate in (0.0,) or n < 7 or other.tobytes() != masks[0].tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_merge_and_dropout_products_are_exact(shape, dtype):
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    for threads in (1, 2):
        with fnn.threads(threads):
            out = np.empty(a.size, dtype)
            FAST.add_forward([a.ravel(), b.ravel(), c.ravel()], out)
            assert out.tobytes() == ((a + b) + c).ravel().tobytes()
            y = np.empty_like(a)
            FAST.dropout_forward(a, b, y)
            assert y.tobytes() == (a * b).tobytes()
            FAST.dropout_backward(b, c, y)
            assert y.tobytes() == (b * c).tobytes()
            parts = [a, np.ascontiguousarray(b[:, :1]), np.ascontiguousarray(c[:, 1:])]
            joined = np.empty((shape[0], sum(p.shape[1] for p in parts)), dtype)
            FAST.concat_forward(parts, joined)
            assert joined.tobytes() == np.concatenate(parts, axis=1).tobytes()
            back = [np.empty_like(p) for p in parts]
            FAST.concat_backward(joined, back)
            assert all(x.tobytes() == p.tobytes() for x, p in zip(back, parts))
    out = np.empty(a.size, dtype)
    NP.add_forward([a.ravel(), b.ravel(), c.ravel()], out)
    assert out.tobytes() == ((a + b) + c).ravel().tobytes()


def test_empty_batches_are_no_ops():
    for be in (NP, FAST):
        x = np.empty((0, 5))
        g, b = np.ones(5), np.zeros(5)
        mm, mv = np.zeros(5), np.ones(5)
        be.batchnorm_forward_train(x, g, b, 1e-3, 0.9, mm, mv, np.empty((0, 5)), np.empty(5),
                                   np.empty(5))
        assert np.array_equal(mm, np.zeros(5)) and np.array_equal(mv, np.ones(5))
        dg = np.zeros(5)
        be.layernorm_backward(x, x, g, np.empty(0), np.empty(0), None, dg, dg.copy())
        assert not dg.any()


# Layer normalization's row kernels are compiled per SIMD flavour (src_c/fnn_norm.c) with no FP
# contraction: every flavour gives the same bits. Each FASTNN_KERNEL in a subprocess (the flavour
# is chosen on first use) hashes its forward and backward results on rows of several widths.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [1, 7, 8, 64, 67, 130])
def test_layer_norm_rows_do_not_depend_on_their_group_of_four(c, dtype):
    """The compiled forward takes rows four at a time (interleaved, src_c/fnn_norm_tmpl.h
    ln_row4), the last n % 4 one at a time: each row's bits must be those of the row alone."""
    x, _, g, b = _data((11, c), dtype, seed=c)
    y, m, s = np.empty_like(x), np.empty(11, dtype), np.empty(11, dtype)
    FAST.layernorm_forward(x, g, b, 1e-5, y, m, s)
    for i in range(11):
        yi, mi, si = np.empty((1, c), dtype), np.empty(1, dtype), np.empty(1, dtype)
        FAST.layernorm_forward(x[i:i + 1].copy(), g, b, 1e-5, yi, mi, si)
        assert yi.tobytes() == y[i:i + 1].tobytes(), i
        assert (mi[0], si[0]) == (m[i], s[i]), i


_LN_FLAVOUR_SCRIPT = """
import hashlib, numpy as np
from fastnn.backends import fast_backend as fb
rng = np.random.default_rng(3)
h = hashlib.sha1()
for dtype in ("float32", "float64"):
    for c in (1, 7, 8, 64, 67, 130):
        x, dy = (rng.standard_normal((9, c)) * 3 + 1).astype(dtype), rng.standard_normal((9, c)).astype(dtype)
        g, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
        y, m, s = np.empty_like(x), np.empty(9, dtype), np.empty(9, dtype)
        fb.layernorm_forward(x, g, b, 1e-5, y, m, s)
        dx, dg, db = np.empty_like(x), np.ones(c, dtype), np.ones(c, dtype)
        fb.layernorm_backward(x, dy, g, m, s, dx, dg, db)
        for a in (y, m, s, dx, dg, db):
            h.update(a.tobytes())
print(fb.kernel_name(), h.hexdigest())
"""


def test_layer_norm_kernels_give_the_same_bits_in_every_flavour():
    import os
    import subprocess
    import sys
    seen = {}
    for flavour in ("generic", "avx2", "avx512"):
        done = subprocess.run([sys.executable, "-c", _LN_FLAVOUR_SCRIPT], capture_output=True,
                              text=True, timeout=300, env=dict(os.environ, FASTNN_KERNEL=flavour))
        assert done.returncode == 0, done.stderr[-2000:]
        name, digest = done.stdout.split()
        seen[name] = digest
    assert "generic" in seen
    assert len(set(seen.values())) == 1, seen
