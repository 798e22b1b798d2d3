"""The compiled backend against the NumPy reference, kernel by kernel and model by model.

Tolerances: float32 rtol 1e-5, float64 rtol 1e-12, each with an absolute term of the same size
times the magnitude of the computation (so sums that cancel are judged against their terms).
The compiled results must also be bitwise identical at 1 and 2 threads (fixed reduction order).
The NumPy backend itself is held to hand-written formulas (tests/_reference.py).
"""

import numpy as np
import pytest

import fastnn as fnn
from fastnn import activations as A
from fastnn import losses as L
from fastnn.backends import get_backend
import _reference as ref

NP = get_backend("numpy")
ACTS = {name: A.CODES[name] for name in ref.ACTIVATIONS}
PARAM = {"step": 0.5, "leaky_relu": 0.01, "elu": 1.0}
KINDS = {"mse": L.MSE_KIND, "bce_logits": L.BCE_LOGITS, "bce_probs": L.BCE_PROBS,
         "bce_sigmoid": L.BCE_SIGMOID, "ce_logits": L.CE_LOGITS, "ce_probs": L.CE_PROBS,
         "ce_softmax": L.CE_SOFTMAX}


@pytest.fixture(scope="module")
def FAST():
    return get_backend("fast")


def test_fast_backend_is_built(FAST):
    from fastnn.backends import fast_available
    assert fast_available()
    assert FAST.get_num_threads() >= 1


def _rand(rng, shape, dtype, scale=1.0):
    return np.ascontiguousarray(scale * rng.standard_normal(shape), dtype=dtype)


# --------------------------------------------------------------------------- matmul
MATMUL_SHAPES = [(1, 1, 1), (1, 7, 1), (7, 5, 3), (3, 1, 9), (16, 16, 16), (33, 130, 17),
                 (129, 67, 65), (200, 300, 150),
                 # few rows: an untransposed B read in place, with a partial last sliver, and k
                 # over several blocks
                 (50, 300, 70), (64, 520, 256), (40, 1000, 33),
                 # a transposed B of 16 or more columns with k < 16 or a k tail (the direct
                 # path's staging through the flavour's masked 16 x k transposes)
                 (32, 10, 64), (24, 21, 48),
                 # C narrower than a vector, computed transposed: on the direct path (k >= 32),
                 # in blocks of 512 rows on the packed path, and with a row tail
                 (64, 48, 10), (1040, 300, 10), (600, 40, 7),
                 # direct tiles of every height up to 6 rows over whole 16-column blocks, and a
                 # transposed A staged whole on the direct path (m >= 6, m * k small)
                 (64, 32, 64), (30, 48, 32), (11, 9, 24), (6, 20, 8),
                 # one row wider than a direct tile (the flavour's gemv): whole 8-vector blocks,
                 # tails of 1 to 7 vectors, partial last vectors, k below and off its 4-step loop
                 (1, 400, 120), (1, 7, 17), (1, 3, 64), (1, 130, 65), (1, 1000, 300),
                 (1, 50, 33), (1, 2, 200),
                 # C of one to four columns as dot products of an untransposed A's rows (as many
                 # rows at once as the column count allows, a short last block, k tails, B's
                 # columns copied or, transposed, read in place), one above the thread floor
                 (2, 16, 1), (9, 17, 1), (37, 70, 1), (2100, 513, 1), (16, 33, 2), (50, 129, 3),
                 (67, 1000, 4), (45, 257, 4), (700, 600, 3)]


@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (-0.5, 0.0), (1.0, 1.0), (2.0, 0.7)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m, k, n", MATMUL_SHAPES)
def test_matmul(FAST, dtype, threads, m, k, n, trans_a, trans_b, alpha, beta):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a = _rand(rng, (k, m) if trans_a else (m, k), dtype)
    b = _rand(rng, (n, k) if trans_b else (k, n), dtype)
    c0 = _rand(rng, (m, n), dtype)
    opa = a.T.astype(np.float64) if trans_a else a.astype(np.float64)
    opb = b.T.astype(np.float64) if trans_b else b.astype(np.float64)
    exact = alpha * (opa @ opb) + beta * c0.astype(np.float64)
    scale = abs(alpha) * np.max(np.abs(opa) @ np.abs(opb)) + abs(beta) * np.max(np.abs(c0))
    results = {}
    for name, be in (("numpy", NP), ("fast", FAST)):
        out = c0.copy() if beta != 0.0 else np.full((m, n), np.nan, dtype=dtype)
        got = be.matmul(a, b, out, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta)
        assert got is out or got is None
        results[name] = out
        # beta == 0 ignores the old contents of out, even NaN (workspaces come from np.empty)
        ref.assert_close(out, exact, dtype, scale=scale, what=f"{name} matmul vs float64")
    ref.assert_close(results["fast"], results["numpy"], dtype, scale=scale, what="fast vs numpy")


def test_matmul_bitwise_across_threads(FAST, dtype, thread_count):
    rng = np.random.default_rng(0)
    a, b = _rand(rng, (301, 257), dtype), _rand(rng, (257, 263), dtype)
    outs = []
    for n in (1, 2, 1):
        thread_count(n)
        for ta, tb in ((False, False), (True, True)):
            out = np.empty((301, 263), dtype=dtype)
            FAST.matmul(a if not ta else np.ascontiguousarray(a.T),
                        b if not tb else np.ascontiguousarray(b.T), out, trans_a=ta, trans_b=tb)
            outs.append(out)
    for i in range(2):
        assert np.array_equal(outs[i], outs[i + 2]) and np.array_equal(outs[i], outs[i + 4])


# --------------------------------------------------------------------------- activations
def _act_input(rng, shape, dtype, act):
    z = _rand(rng, shape, dtype, scale=2.0)
    if act in ("step", "relu", "leaky_relu", "elu", "selu"):
        # keep clear of the kink / threshold, where rounding could flip the branch
        thr = PARAM.get(act, 0.0)
        z[np.abs(z - thr) < 1e-3] += np.asarray(0.01, dtype=dtype)
    return z


@pytest.mark.parametrize("act", ref.ACTIVATIONS)
@pytest.mark.parametrize("shape", [(1, 1), (3, 10), (257, 33), (1000, 7)])
def test_activation_forward_backward(FAST, dtype, threads, act, shape):
    rng = np.random.default_rng(shape[0] + len(act))
    z = _act_input(rng, shape, dtype, act)
    dy = _rand(rng, shape, dtype)
    code, param = ACTS[act], PARAM.get(act, 0.0)
    y_ref = NP.activation_forward(z, code, param, np.empty_like(z))
    y_fast = FAST.activation_forward(z, code, param, np.empty_like(z))
    ref.assert_close(y_ref, ref.act_forward(z.astype(np.float64), act), dtype, scale=1.0,
                     what="numpy forward vs formula")
    ref.assert_close(y_fast, y_ref, dtype, what="forward")
    # in place: out is z
    zc = z.copy()
    FAST.activation_forward(zc, code, param, zc)
    ref.assert_close(zc, y_ref, dtype, what="forward in place")

    saved = z if act in ref.FROM_INPUT else y_ref       # what the derivative is taken from
    d_ref = NP.activation_backward(saved, dy, code, param, np.empty_like(dy))
    d_fast = FAST.activation_backward(saved, dy, code, param, np.empty_like(dy))
    expected = ref.act_backward(z.astype(np.float64), y_ref.astype(np.float64),
                                dy.astype(np.float64), act)
    ref.assert_close(d_ref, expected, dtype, scale=np.max(np.abs(dy)), what="numpy backward")
    ref.assert_close(d_fast, d_ref, dtype, scale=np.max(np.abs(dy)), what="backward")
    dyc = dy.copy()
    FAST.activation_backward(saved, dyc, code, param, dyc)
    ref.assert_close(dyc, d_ref, dtype, scale=np.max(np.abs(dy)), what="backward in place")


@pytest.mark.parametrize("act, param", [("step", 0.0), ("step", -1.5), ("leaky_relu", 0.3)])
def test_activation_parameter(FAST, dtype, act, param):
    rng = np.random.default_rng(1)
    z = _rand(rng, (50, 9), dtype, scale=2.0)
    z[np.abs(z - (param if act == "step" else 0.0)) < 1e-3] += np.asarray(0.01, dtype)
    expected = ref.act_forward(z.astype(np.float64), act, param)
    for be in (NP, FAST):
        y = be.activation_forward(z, ACTS[act], param, np.empty_like(z))
        ref.assert_close(y, expected, dtype, scale=1.0, what=act)
        dy = _rand(rng, z.shape, dtype)
        d = be.activation_backward(y, dy, ACTS[act], param, np.empty_like(dy))
        ref.assert_close(d, ref.act_backward(z.astype(np.float64), expected, dy, act, param),
                         dtype, scale=np.max(np.abs(dy)), what=act + " backward")


# --------------------------------------------------------------------------- dense layers
def _dense_inputs(rng, n, k, m, dtype, act):
    x, w = _rand(rng, (n, k), dtype), _rand(rng, (k, m), dtype, scale=1 / np.sqrt(k))
    b = _rand(rng, (m,), dtype, scale=0.1)
    if act in ("step", "relu", "leaky_relu", "elu", "selu"):
        z = x.astype(np.float64) @ w + b
        thr = PARAM.get(act, 0.0)
        # nudge the biases so that no pre-activation sits within 1e-3 of the kink
        for _ in range(100):
            near = np.abs(z - thr) < 1e-3
            if not near.any():
                break
            cols = np.unique(np.nonzero(near)[1])
            b[cols] += np.asarray(0.0037, dtype)
            z = x.astype(np.float64) @ w + b
    return x, w, b


@pytest.mark.parametrize("act", ref.ACTIVATIONS)
@pytest.mark.parametrize("n, k, m", [(1, 1, 1), (5, 3, 4), (37, 50, 70), (64, 64, 256),
                                     (100, 257, 10), (64, 48, 10), (1040, 300, 10),
                                     (1, 400, 120), (1, 37, 201),
                                     # one to four outputs as dot products of x's rows
                                     (2100, 300, 1), (33, 16, 1), (40, 65, 3), (200, 129, 4)])
def test_dense_forward_backward(FAST, dtype, threads, act, n, k, m):
    rng = np.random.default_rng(n + k + m)
    x, w, b = _dense_inputs(rng, n, k, m, dtype, act)
    code, param = ACTS[act], PARAM.get(act, 0.0)
    scale_z = np.max(np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64))) + 1
    y_ref = NP.dense_forward(x, w, b, code, param, np.empty((n, m), dtype))
    out = np.full((n, m), np.nan, dtype)
    y_fast = FAST.dense_forward(x, w, b, code, param, out)
    assert y_fast is out or y_fast is None
    exact = ref.act_forward(x.astype(np.float64) @ w + b, act)
    ref.assert_close(y_ref, exact, dtype, scale=scale_z, what="numpy dense_forward")
    ref.assert_close(out, y_ref, dtype, scale=scale_z, what="dense_forward")

    dy = _rand(rng, (n, m), dtype)
    # what the derivative is taken from: the output, or gelu's pre-activation
    saved = (NP.dense_forward(x, w, b, A.LINEAR, 0.0, np.empty((n, m), dtype))
             if act in ref.FROM_INPUT else y_ref)
    res = {}
    for name, be in (("numpy", NP), ("fast", FAST)):
        bufs = [np.full(s, np.nan, dtype) for s in ((n, m), (k, m), (m,), (n, k))]
        be.dense_backward(x, w, saved, dy, code, param, *bufs)
        res[name] = bufs
    dz = ref.act_backward(x.astype(np.float64) @ w + b, y_ref.astype(np.float64),
                          dy.astype(np.float64), act)
    exact = [dz, x.T.astype(np.float64) @ dz, dz.sum(axis=0), dz @ w.T.astype(np.float64)]
    # dz carries a rounding error of about eps * |dy| (1 - y*y cancels when tanh saturates),
    # so the magnitudes that judge dw, db, dx are those of the products with |dy|
    ady = np.abs(dy.astype(np.float64))
    scales = [np.max(ady), np.max(np.abs(x.T.astype(np.float64)) @ ady),
              np.max(np.sum(ady, axis=0)), np.max(ady @ np.abs(w.T.astype(np.float64)))]
    for i, what in enumerate(("dz", "dw", "db", "dx")):
        ref.assert_close(res["numpy"][i], exact[i], dtype, scale=scales[i], what="numpy " + what)
        ref.assert_close(res["fast"][i], res["numpy"][i], dtype, scale=scales[i], what=what)

    # dx=None skips the input gradient; dz may be dy itself
    dyc = dy.copy()
    dw, db = np.empty((k, m), dtype), np.empty((m,), dtype)
    FAST.dense_backward(x, w, saved, dyc, code, param, dyc, dw, db, None)
    ref.assert_close(dyc, res["numpy"][0], dtype, scale=scales[0], what="dz in place")
    ref.assert_close(dw, res["numpy"][1], dtype, scale=scales[1], what="dw (dx=None)")
    ref.assert_close(db, res["numpy"][2], dtype, scale=scales[2], what="db (dx=None)")


@pytest.mark.parametrize("n, k, m", [(32, 64, 10), (64, 48, 10), (48, 33, 3), (1040, 300, 10),
                                     (37, 50, 7), (20, 8, 40), (600, 300, 300)])
def test_softmax_in_the_product_equals_softmax_after_it(FAST, dtype, threads, n, k, m):
    """dense_forward with softmax hands the activation to the GEMM, which applies it in its
    transposed store for a narrow output (in registers) and after the product otherwise: the
    same bits as the product with its bias, then the softmax kernel on its rows."""
    rng = np.random.default_rng(n * k + m)
    x, w, b = _rand(rng, (n, k), dtype, 3.0), _rand(rng, (k, m), dtype), _rand(rng, (m,), dtype)
    fused = FAST.dense_forward(x, w, b, A.SOFTMAX, 0.0, np.full((n, m), np.nan, dtype))
    z = FAST.dense_forward(x, w, b, A.LINEAR, 0.0, np.full((n, m), np.nan, dtype))
    after = FAST.activation_forward(z, A.SOFTMAX, 0.0, np.full((n, m), np.nan, dtype))
    assert np.array_equal(fused, after)
    assert np.allclose(after.sum(axis=1), 1.0, atol=1e-5)


def test_dense_bitwise_across_threads(FAST, dtype, thread_count):
    rng = np.random.default_rng(3)
    n, k, m = 512, 300, 257
    x, w, b = _rand(rng, (n, k), dtype), _rand(rng, (k, m), dtype), _rand(rng, (m,), dtype)
    dy = _rand(rng, (n, m), dtype)
    runs = []
    for t in (1, 2):
        thread_count(t)
        y = FAST.dense_forward(x, w, b, ACTS["tanh"], 0.0, np.empty((n, m), dtype))
        bufs = [np.empty(s, dtype) for s in ((n, m), (k, m), (m,), (n, k))]
        FAST.dense_backward(x, w, y, dy, ACTS["tanh"], 0.0, *bufs)
        runs.append([y.copy()] + bufs)
    for a, c in zip(*runs):
        assert np.array_equal(a, c)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_narrow_dots_rows_alike_and_bitwise(FAST, dtype, thread_count, n):
    """A C of one to four columns is computed as dot products of A's rows: each row's bits are
    those of the same row in a product of any other number of rows from 2 on (whatever block of
    rows it falls in, the short last block included) and at any thread count."""
    rng = np.random.default_rng(n)
    m, k = 2100, 517
    a, b = _rand(rng, (m, k), dtype), _rand(rng, (k, n), dtype)
    outs = []
    for t in (1, 2):
        thread_count(t)
        outs.append(FAST.matmul(a, b, np.empty((m, n), dtype)))
    assert np.array_equal(outs[0], outs[1])
    exact = a.astype(np.float64) @ b
    ref.assert_close(outs[0], exact, dtype, scale=np.max(np.abs(a) @ np.abs(b)), what="dots")
    for rows, start in ((2, 0), (2, 7), (5, 100), (8 * n + 3, 0), (8 * n + 3, m - 8 * n - 3)):
        part = FAST.matmul(np.ascontiguousarray(a[start:start + rows]), b,
                           np.empty((rows, n), dtype))
        assert np.array_equal(part, outs[0][start:start + rows]), (rows, start)


# --------------------------------------------------------------------------- losses
def _loss_inputs(rng, kind, n, c, dtype):
    z = rng.standard_normal((n, c)) * 2
    if kind == "mse":
        out, t = z, rng.standard_normal((n, c))
    elif kind.startswith("bce"):
        t = rng.integers(0, 2, (n, c)).astype(np.float64)
        if kind == "bce_probs" and c > 1:
            out = ref.act_forward(z, "softmax")
        else:
            out = z if kind == "bce_logits" else ref.act_forward(z, "sigmoid")
    else:
        t = ref.one_hot(rng.integers(0, c, n), c)
        if kind == "ce_probs":
            out = ref.act_forward(z, "sigmoid")
        else:
            out = z if kind == "ce_logits" else ref.act_forward(z, "softmax")
    return np.ascontiguousarray(out, dtype), np.ascontiguousarray(t, dtype)


# kind -> (loss name, final activation) in the reference
_REF_LOSS = {"mse": ("mse", "linear"), "bce_logits": ("binary_cross_entropy", "linear"),
             "bce_probs": ("binary_cross_entropy", "softmax"),
             "bce_sigmoid": ("binary_cross_entropy", "sigmoid"),
             "ce_logits": ("cross_entropy", "linear"), "ce_probs": ("cross_entropy", "sigmoid"),
             "ce_softmax": ("cross_entropy", "softmax")}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("n, c", [(1, 1), (1, 3), (7, 2), (64, 10), (1000, 10)])
def test_loss(FAST, dtype, threads, kind, n, c):
    if kind in ("ce_softmax", "bce_probs") and c == 1:
        c = 2   # a softmax over one output is constant
    rng = np.random.default_rng(n * 10 + c)
    out, t = _loss_inputs(rng, kind, n, c, dtype)
    value_np = NP.loss(KINDS[kind], out, t, None)
    grad_np = np.full_like(out, np.nan)
    grad_fast = np.full_like(out, np.nan)
    assert NP.loss(KINDS[kind], out, t, grad_np) == value_np
    value_fast = FAST.loss(KINDS[kind], out, t, grad_fast)
    assert isinstance(value_fast, float)
    assert FAST.loss(KINDS[kind], out, t, None) == value_fast

    # the reference formulas, in float64 on the same (rounded) inputs
    name, final = _REF_LOSS[kind]
    exact, dout = ref.loss_and_output_grad(name, final, out.astype(np.float64),
                                           t.astype(np.float64))
    count = out.size if name != "cross_entropy" else n
    if kind == "bce_sigmoid" or kind == "ce_softmax":
        dout = (out.astype(np.float64) - t) / count     # fused: d/d(pre-activation)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    assert value_np == pytest.approx(exact, rel=rtol * 10, abs=rtol)
    assert value_fast == pytest.approx(value_np, rel=rtol, abs=rtol * 1e-3)
    gscale = np.max(np.abs(dout))
    ref.assert_close(grad_np, dout, dtype, scale=gscale, what="numpy grad vs formula")
    ref.assert_close(grad_fast, grad_np, dtype, scale=gscale, what="grad")


@pytest.mark.parametrize("kind", ["bce_logits", "ce_logits"])
def test_loss_logits_are_stable(FAST, dtype, kind):
    """Huge logits give finite losses and gradients (log-sum-exp / softplus forms)."""
    out = np.array([[80.0, -90.0], [-700.0, 60.0]], dtype=dtype)
    if dtype == "float32":
        out = np.array([[80.0, -90.0], [-85.0, 60.0]], dtype=dtype)
    t = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)
    name = "binary_cross_entropy" if kind == "bce_logits" else "cross_entropy"
    exact, dout = ref.loss_and_output_grad(name, "linear", out.astype(np.float64), t)
    for be in (NP, FAST):
        grad = np.empty_like(out)
        value = be.loss(KINDS[kind], out, t, grad)
        assert np.isfinite(value) and value == pytest.approx(exact, rel=1e-5)
        ref.assert_close(grad, dout, dtype, scale=np.max(np.abs(dout)), what=kind)


@pytest.mark.parametrize("kind", ["bce_probs", "bce_sigmoid", "ce_probs", "ce_softmax"])
def test_loss_of_saturated_probabilities_is_finite(FAST, dtype, kind):
    """Probabilities of exactly 0 and 1 (saturated float32 sigmoid/softmax) give finite losses."""
    out = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=dtype)
    t = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], dtype=dtype)
    values = []
    for be in (NP, FAST):
        grad = np.empty_like(out)
        values.append(be.loss(KINDS[kind], out, t, grad))
        assert np.isfinite(values[-1]) and values[-1] > 1.0       # the wrong row costs a lot
        assert np.all(np.isfinite(grad))
    assert values[1] == pytest.approx(values[0], rel=1e-5)


def test_loss_bitwise_across_threads(FAST, dtype, thread_count):
    rng = np.random.default_rng(5)
    for kind in KINDS:
        out, t = _loss_inputs(rng, kind, 20000, 10, dtype)
        results = []
        for n in (1, 2):
            thread_count(n)
            grad = np.empty_like(out)
            results.append((FAST.loss(KINDS[kind], out, t, grad), grad))
        assert results[0][0] == results[1][0], kind
        assert np.array_equal(results[0][1], results[1][1]), kind


# --------------------------------------------------------------------------- optimizers
SGD_CONFIGS = [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 0.0), (0.5, True, 1e-2),
               (0.0, False, 1e-2), (0.99, False, 1e-4)]


@pytest.mark.parametrize("momentum, nesterov, wd", SGD_CONFIGS)
@pytest.mark.parametrize("size", [1, 7, 10007, 200003])   # the last is split over threads
def test_sgd_update(FAST, dtype, threads, momentum, nesterov, wd, size):
    rng = np.random.default_rng(size)
    p0 = _rand(rng, size, dtype)
    state = {name: [p0.copy(), np.zeros(size, dtype)] for name in ("numpy", "fast")}
    p_exact, v_exact = p0.astype(np.float64), np.zeros(size)
    lr = 0.05
    for _ in range(3):
        g = _rand(rng, size, dtype)
        for name, be in (("numpy", NP), ("fast", FAST)):
            be.sgd_update(state[name][0], g, state[name][1], lr, momentum, nesterov, wd)
        # by hand, from the contract in fastnn/backends/__init__.py
        gg = g + wd * p_exact
        if momentum == 0.0:
            p_exact = p_exact - lr * gg
        else:
            v_exact = momentum * v_exact + gg
            p_exact = p_exact - lr * (gg + momentum * v_exact if nesterov else v_exact)
    for name in ("numpy", "fast"):
        ref.assert_close(state[name][0], p_exact, dtype, scale=np.max(np.abs(p_exact)),
                         what=name + " params")
        if momentum:
            ref.assert_close(state[name][1], v_exact, dtype, scale=np.max(np.abs(v_exact)),
                             what=name + " velocity")
    assert np.array_equal(state["fast"][1], state["numpy"][1]) or momentum


@pytest.mark.parametrize("wd", [0.0, 1e-2])
@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9)])
@pytest.mark.parametrize("size", [1, 7, 10007, 200003])   # the last is split over threads
def test_adam_update(FAST, dtype, threads, wd, betas, size):
    rng = np.random.default_rng(size + 1)
    b1, b2 = betas
    lr, eps = 1e-2, 1e-8 if dtype == "float64" else 1e-6
    p0 = _rand(rng, size, dtype)
    state = {name: [p0.copy(), np.zeros(size, dtype), np.zeros(size, dtype)]
             for name in ("numpy", "fast")}
    p, m, v = p0.astype(np.float64), np.zeros(size), np.zeros(size)
    for step in range(1, 5):
        g = _rand(rng, size, dtype)
        for name, be in (("numpy", NP), ("fast", FAST)):
            pp, mm, vv = state[name]
            be.adam_update(pp, g, mm, vv, step, lr, b1, b2, eps, wd)
        gg = g + wd * p
        m = b1 * m + (1 - b1) * gg
        v = b2 * v + (1 - b2) * gg * gg
        p = p - lr * (m / (1 - b1 ** step)) / (np.sqrt(v / (1 - b2 ** step)) + eps)
    for name in ("numpy", "fast"):
        got_p, got_m, got_v = state[name]
        ref.assert_close(got_p, p, dtype, scale=np.max(np.abs(p)), what=name + " params")
        ref.assert_close(got_m, m, dtype, scale=np.max(np.abs(m)), what=name + " m")
        ref.assert_close(got_v, v, dtype, scale=np.max(np.abs(v)), what=name + " v")


# --------------------------------------------------------------------------- models
def _model_pair(dtype, layers_fn, loss, optimizer_fn, input_dim=20, seed=3):
    models = {}
    for name in ("numpy", "fast"):
        model = fnn.Sequential(layers_fn(), input_dim=input_dim, seed=seed, dtype=dtype,
                               backend=name)
        model.compile(loss=loss, optimizer=optimizer_fn())
        models[name] = model
    return models


MODEL_CASES = {
    "relu-softmax-ce-sgd": (lambda: [fnn.Dense(64, activation="relu"),
                                     fnn.Dense(32, activation="leaky_relu"),
                                     fnn.Dense(5, activation="softmax")],
                            "cross_entropy", lambda: fnn.SGD(lr=0.05, momentum=0.9)),
    "tanh-sigmoid-bce-adam": (lambda: [fnn.Dense(48, activation="tanh"),
                                       fnn.Dense(5, activation="sigmoid")],
                              "binary_cross_entropy", lambda: fnn.Adam(lr=1e-3)),
    "sigmoid-linear-mse-nesterov": (lambda: [fnn.Dense(33, activation="sigmoid"),
                                             fnn.Dense(5)],
                                    "mse", lambda: fnn.SGD(lr=0.01, momentum=0.5, nesterov=True,
                                                           weight_decay=1e-3)),
}


def _targets_for(loss, rng, n, c):
    if loss == "cross_entropy":
        return rng.integers(0, c, n)
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, (n, c)).astype(np.float64)
    return rng.standard_normal((n, c))


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_model_fast_equals_numpy(dtype, threads, case):
    layers_fn, loss, opt_fn = MODEL_CASES[case]
    models = _model_pair(dtype, layers_fn, loss, opt_fn)
    for a, c in zip(models["numpy"].get_weights(), models["fast"].get_weights()):
        assert np.array_equal(a, c)            # same seed, same initial weights
    rng = np.random.default_rng(0)
    X = rng.standard_normal((70, 20))
    y = _targets_for(loss, rng, 70, 5)
    ref.assert_close(models["fast"].predict(X), models["numpy"].predict(X), dtype, scale=1.0,
                     what="predict")
    lv = {name: m.loss_and_gradients(X, y) for name, m in models.items()}
    rtol = ref.tolerances(dtype)[0]
    assert lv["fast"][0] == pytest.approx(lv["numpy"][0], rel=rtol)
    for g_fast, g_np in zip(lv["fast"][1], lv["numpy"][1]):
        ref.assert_close(g_fast, g_np, dtype, scale=np.max(np.abs(g_np)) + 1e-30, what="grad")
    for step in range(3):
        xb, yb = X[step * 20:(step + 1) * 20], y[step * 20:(step + 1) * 20]
        losses = {name: m.train_on_batch(xb, yb) for name, m in models.items()}
        assert losses["fast"] == pytest.approx(losses["numpy"], rel=10 * rtol)
    for w_fast, w_np in zip(models["fast"].get_weights(), models["numpy"].get_weights()):
        ref.assert_close(w_fast, w_np, dtype, scale=np.max(np.abs(w_np)), what="weights")
    e_fast, e_np = models["fast"].evaluate(X, y), models["numpy"].evaluate(X, y)
    assert e_fast["loss"] == pytest.approx(e_np["loss"], rel=10 * rtol)


def _fit_digits(dtype, digits_split, threads_n, backend="fast"):
    Xtr, Xte, ytr, yte = digits_split
    with fnn.threads(threads_n):
        model = fnn.Sequential([fnn.Dense(256, activation="relu"),
                                fnn.Dense(128, activation="tanh"),
                                fnn.Dense(10, activation="softmax")],
                               input_dim=64, seed=11, dtype=dtype, backend=backend)
        model.compile(loss="cross_entropy", optimizer=fnn.Adam(lr=1e-3), metrics=["accuracy"])
        hist = model.fit(Xtr[:700], ytr[:700], epochs=2, batch_size=128, verbose=0,
                         validation_data=(Xte, yte))
        return model.get_weights(), hist.history, model.predict(Xte)


def test_fit_bitwise_across_threads(dtype, digits_split):
    w1, h1, p1 = _fit_digits(dtype, digits_split, 1)
    w2, h2, p2 = _fit_digits(dtype, digits_split, 2)
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))
    assert h1 == h2
    assert np.array_equal(p1, p2)


@pytest.mark.parametrize("name, param", [("relu", 0.0), ("leaky_relu", 0.2), ("step", 0.5)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activation_specials_are_the_same_on_both_backends_and_in_the_epilogue(name, param,
                                                                               dtype):
    """NaN, infinities and signed zeros through the element-wise activation (a standalone
    layer's path) and through the GEMM epilogue (Dense's fused path): the compiled backend gives
    the NumPy twin's values bit for bit; relu and leaky_relu pass NaN on (the compiled relu
    loop once made it 0)."""
    from fastnn import activations as A
    from fastnn.backends import fast_backend, numpy_backend
    code = A.CODES[name]
    z = np.array([[np.nan, -np.inf, np.inf, -0.0, 0.0, -3.0, 0.5, 7.0]], dtype)
    got = fast_backend.activation_forward(z, code, param, np.empty_like(z))
    want = numpy_backend.activation_forward(z, code, param, np.empty_like(z))
    with np.errstate(invalid="ignore"):
        fused = fast_backend.dense_forward(z.reshape(-1, 1), np.ones((1, 1), dtype), None, code,
                                           param, np.empty((z.size, 1), dtype)).reshape(1, -1)
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))
    np.testing.assert_array_equal(fused, want)       # (the product 1 x -0.0 + 0 gives 0.0 there)
    if name != "step":
        assert np.isnan(got[0, 0])
