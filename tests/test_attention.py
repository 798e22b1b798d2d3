"""Scaled dot-product attention (fastnn/_ext/_attention.pyx over src_c/fnn_attn.c, its NumPy twin
fastnn/backends/numpy_attention.py, and fnn.ops.scaled_dot_product_attention).

- PyTorch parity in float64 (<= 1e-10 relative): F.scaled_dot_product_attention's output and the
  autograd gradients of q, k, v, with and without causal, with a key padding mask, lengths across
  the tile boundaries (1 to 300), Lq != Lk, 1 to 8 heads, D in {8, 16, 64};
- compiled = NumPy twin (float64 1e-12, float32 1e-5); bitwise at 1 and 2 threads;
- rows that see no key: zeros (older PyTorch gives NaN there); scores that overflow: -inf counts
  as masked, a row with +inf or NaN gives NaN, as PyTorch's SDPA does, with the same NaN
  positions in out, lse and the gradients on both backends and in every kernel flavour;
- memory: forward + backward at L = 2048 within 1/4 of one materialised (L x L) score matrix per
  head, growing about linearly from L = 1024 (tracemalloc sees every buffer of the call: the
  kernels allocate nothing in C), and the process' peak RSS agrees;
- a table of bad inputs.
"""

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend

BACKENDS = ["fast", "numpy"]


def _rel(got, want, floor=1e-5):
    """max |got - want| / max(max |want|, floor): relative, except for values that vanish
    mathematically (one visible key: dq = 0 up to rounding, ~1e-16 on either side)"""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    if not want.size:
        return 0.0
    return np.abs(got - want).max() / max(np.abs(want).max(), floor)


def _problem(B, H, Lq, Lk, D, Dv=None, dtype=np.float64, masked=False, seed=0):
    rng = np.random.default_rng(seed)
    Dv = D if Dv is None else Dv
    q = rng.standard_normal((B, H, Lq, D)).astype(dtype)
    k = rng.standard_normal((B, H, Lk, D)).astype(dtype)
    v = rng.standard_normal((B, H, Lk, Dv)).astype(dtype)
    dout = rng.standard_normal((B, H, Lq, Dv)).astype(dtype)
    mask = None
    if masked:
        mask = rng.random((B, Lk)) < 0.7
        mask[:, 0] = True          # every query (causal ones too) sees a key: torch gives NaN else
    return q, k, v, dout, mask


def _run(backend, q, k, v, dout, mask, causal, scale=None):
    """(out, lse, dq, dk, dv) of the backend's kernels"""
    be = get_backend(backend)
    B, H, Lq, _ = q.shape
    out = np.empty(q.shape[:3] + (v.shape[3],), q.dtype)
    lse = np.empty((B, H, Lq), q.dtype)
    be.attention_forward(q, k, v, mask, causal, scale, out, lse)
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    be.attention_backward(q, k, v, out, dout, lse, mask, causal, scale, dq, dk, dv)
    return out, lse, dq, dk, dv


def _torch_reference(q, k, v, dout, mask, causal, scale=None):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    kwargs = {} if scale is None else {"scale": scale}
    if mask is None:
        out = F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal, **kwargs)
    else:
        # torch refuses attn_mask together with is_causal: the causal part joins the mask
        am = torch.tensor(mask)[:, None, None, :]
        if causal:
            am = am & torch.ones(q.shape[2], k.shape[2], dtype=torch.bool).tril()
        out = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=am, **kwargs)
    out.backward(torch.tensor(dout))
    return [t.detach().numpy() for t in (out, tq.grad, tk.grad, tv.grad)]


# (B, H, Lq, Lk, D, Dv): every length of the brief, Lq != Lk, heads 1..8, D in {8, 16, 64}
CASES = [(2, 1, 1, 1, 8, 8), (1, 2, 2, 2, 16, 16), (2, 3, 31, 31, 64, 64), (1, 4, 32, 32, 8, 8),
         (2, 5, 33, 33, 16, 16), (1, 6, 64, 64, 64, 64), (1, 7, 100, 100, 8, 8),
         (1, 8, 300, 300, 16, 16), (2, 2, 31, 100, 16, 8), (1, 3, 100, 33, 64, 16),
         (2, 1, 1, 300, 8, 8), (1, 2, 300, 64, 16, 16), (1, 1, 65, 129, 8, 24),
         (1, 2, 150, 700, 16, 16)]   # the last: the backward cuts each pair's keys in 4 chunks


@pytest.fixture(scope="module", autouse=True)
def _torch_one_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "B%dH%dq%dk%dD%dv%d" % c)
def test_torch_parity_float64(case, causal, masked, backend):
    B, H, Lq, Lk, D, Dv = case
    q, k, v, dout, mask = _problem(B, H, Lq, Lk, D, Dv, masked=masked, seed=sum(case))
    want = _torch_reference(q, k, v, dout, mask, causal)
    out, _, dq, dk, dv = _run(backend, q, k, v, dout, mask, causal)
    for name, got, ref in zip(("out", "dq", "dk", "dv"), (out, dq, dk, dv), want):
        assert _rel(got, ref) <= 1e-10, (name, _rel(got, ref))


@pytest.mark.parametrize("scale", [0.3, 2.0])
def test_torch_parity_explicit_scale(scale):
    q, k, v, dout, mask = _problem(2, 2, 70, 90, 16, masked=True, seed=5)
    want = _torch_reference(q, k, v, dout, mask, True, scale=scale)
    got = _run("fast", q, k, v, dout, mask, True, scale=scale)
    for g, w in zip((got[0], got[2], got[3], got[4]), want):
        assert _rel(g, w) <= 1e-10


def test_ops_matches_torch_with_leading_axes():
    torch = pytest.importorskip("torch")
    q, k, v, _, mask = _problem(2, 3, 40, 50, 16, masked=True, seed=3)
    got = fnn.ops.scaled_dot_product_attention(q, k, v, mask=mask, causal=False)
    am = torch.tensor(mask)[:, None, None, :]
    want = torch.nn.functional.scaled_dot_product_attention(
        torch.tensor(q), torch.tensor(k), torch.tensor(v), attn_mask=am).numpy()
    assert got.shape == want.shape and _rel(got, want) <= 1e-10
    # (B, L, D) problems and an (Lk,) mask shared by all; causal with Lq != Lk as torch aligns it
    got = fnn.ops.scaled_dot_product_attention(q[:, 0], k[:, 0], v[:, 0], causal=True)
    want = torch.nn.functional.scaled_dot_product_attention(
        torch.tensor(q[:, 0]), torch.tensor(k[:, 0]), torch.tensor(v[:, 0]),
        is_causal=True).numpy()
    assert _rel(got, want) <= 1e-10
    got = fnn.ops.scaled_dot_product_attention(q[0], k[0], v[0], mask=mask[0])
    want = torch.nn.functional.scaled_dot_product_attention(
        torch.tensor(q[0]), torch.tensor(k[0]), torch.tensor(v[0]),
        attn_mask=torch.tensor(mask[0])).numpy()
    assert _rel(got, want) <= 1e-10


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", [(2, 3, 100, 77, 16, 8), (1, 2, 129, 129, 64, 64),
                                  (3, 1, 5, 200, 8, 8), (4, 4, 32, 32, 16, 16),
                                  (3, 2, 5, 7, 3, 5), (2, 1, 48, 32, 16, 9),
                                  (1, 2, 40, 500, 16, 8), (1, 1, 450, 450, 8, 8)])
def test_compiled_equals_numpy_twin(case, causal, dtype, tol):
    q, k, v, dout, mask = _problem(*case, dtype=dtype, masked=True, seed=7)
    fast = _run("fast", q, k, v, dout, mask, causal)
    ref = _run("numpy", q, k, v, dout, mask, causal)
    for name, g, w in zip(("out", "lse", "dq", "dk", "dv"), fast, ref):
        assert g.dtype == dtype
        assert _rel(g, w) <= tol, (name, _rel(g, w))


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_that_see_no_key_give_zeros(backend):
    q, k, v, dout, _ = _problem(2, 2, 40, 70, 8, seed=9)
    mask = np.ones((2, 70), bool)
    mask[1, :] = False                      # batch row 1: no key at all
    mask[0, :3] = False                     # causal rows 0..2 of batch row 0 see nothing
    for causal in (False, True):
        out, lse, dq, dk, dv = _run(backend, q, k, v, dout, mask, causal)
        assert np.all(np.isfinite(out)) and np.all(np.isfinite(dq))
        assert np.all(out[1] == 0) and np.all(lse[1] == -np.inf)
        assert np.all(dq[1] == 0) and np.all(dk[1] == 0) and np.all(dv[1] == 0)
        if causal:
            assert np.all(out[0, :, :3] == 0) and np.all(dq[0, :, :3] == 0)
        assert np.all(dk[0, :, :3] == 0) and np.all(dv[0, :, :3] == 0)   # masked keys
    fast = _run("fast", q, k, v, dout, mask, True)
    ref = _run("numpy", q, k, v, dout, mask, True)
    for g, w in zip(fast, ref):
        assert np.array_equal(np.isinf(g), np.isinf(w))
        fin = np.isfinite(w)
        assert _rel(g[fin], w[fin]) <= 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", [(1, 2, 300, 260, 64), (16, 4, 32, 32, 16),
                                  (1, 2, 300, 800, 16)],
                         ids=["tiled", "small-pairs", "key-chunks"])
def test_bitwise_at_one_and_two_threads(dtype, causal, case, fixed_threads):
    # big enough for threads (the call's work is above the GEMM's floor): 2 long pairs, the
    # 64 pairs of a small Transformer's batch (float: fnn_attn_small_avx2.h's kernels), or 2
    # pairs of 800 keys, whose backward cuts each pair's keys in 4 chunks, each with its own
    # partial dq (fnn_attn_key_chunks)
    q, k, v, dout, mask = _problem(*case, dtype=dtype, masked=True, seed=11)
    previous = fnn.get_num_threads()
    try:
        fnn.set_num_threads(1)
        one = _run("fast", q, k, v, dout, mask, causal)
        fnn.set_num_threads(2)
        two = _run("fast", q, k, v, dout, mask, causal)
    finally:
        fnn.set_num_threads(previous)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


_FLAVOUR_SCRIPT = """
import json, numpy as np
from fastnn.backends import get_backend
fast, ref = get_backend("fast"), get_backend("numpy")
errors = {}
for dtype in (np.float32, np.float64):
    for causal in (False, True):
        rng = np.random.default_rng(3)
        q, k, v = (rng.standard_normal((2, 2, 97, 40)).astype(dtype) for _ in range(3))
        dout = rng.standard_normal(q.shape).astype(dtype)
        mask = rng.random((2, 97)) < 0.8
        mask[:, 0] = True
        res = []
        for be in (fast, ref):
            out, lse = np.empty_like(q), np.empty(q.shape[:3], dtype)
            be.attention_forward(q, k, v, mask, causal, None, out, lse)
            dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
            be.attention_backward(q, k, v, out, dout, lse, mask, causal, None, dq, dk, dv)
            res.append((out, lse, dq, dk, dv))
        errors[f"{causal}-{np.dtype(dtype).name}"] = max(
            float(np.abs(a.astype(float) - b).max() / np.abs(b).max()) for a, b in zip(*res))
import sys
sys.path.insert(0, sys.argv[1])
from test_attention import _check_overflow_rows
problems = [f"{np.dtype(dt).name} causal={c}: {p}" for dt in (np.float32, np.float64)
            for c in (False, True) for p in _check_overflow_rows("fast", "numpy", dt, c)]
print(json.dumps({"kernel": fast.kernel_name(), "errors": errors, "overflow": problems}))
"""


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_each_kernel_flavour_matches_numpy_twin(flavour):
    """With FASTNN_KERNEL=generic / avx2 / avx512 (in a subprocess: the flavour is chosen on
    first use), outputs and gradients equal the NumPy twin's (1e-12 float64, 1e-5 float32),
    and rows whose scores overflow give NaN at the same places (_check_overflow_rows).
    A flavour this CPU cannot run is skipped."""
    env = dict(os.environ, FASTNN_KERNEL=flavour)
    done = subprocess.run([sys.executable, "-c", _FLAVOUR_SCRIPT, os.path.dirname(__file__)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    if result["kernel"] != flavour:
        pytest.skip(f"this CPU runs {result['kernel']!r}, not {flavour!r}")
    for case, err in result["errors"].items():
        assert err <= (1e-12 if case.endswith("float64") else 1e-5), (case, err)
    assert result["overflow"] == []


def _overflow_problem(dtype, causal):
    """q, k, v, dout, mask (B=3, H=2, Lq=100, Lk=130: three query tiles, two key tiles) with
    rows whose scores overflow the dtype one product at a time (so in any order of the sums):
    row (0, 0, 5) scores +inf against keys 3 and 100, row (0, 1, 50) NaN (+inf - inf) against
    key 40, row (1, 1, 30) NaN against every key, every row of pair (1, 0) -inf against every
    key (as if masked); batch row 2 sees no key. The other rows of those pairs are 0 along the
    huge directions (their scores stay moderate).
    Returns the arrays and (rows that must be NaN, rows that must be 0)."""
    big = 1e20 if dtype == np.float32 else 1e160        # big * big overflows, big does not
    q, k, v, dout, _ = _problem(3, 2, 100, 130, 16, 8, dtype=np.float64, seed=21)
    q[0, :, :, :2] = 0
    q[0, 0, 5] = 0
    q[0, 0, 5, 0] = big
    k[0, 0, [3, 100]] = 0
    k[0, 0, [3, 100], 0] = big
    q[0, 1, 50, :2] = [big, -big]
    k[0, 1, 40, :2] = [big, big]
    q[1, 0, :, 0] = -big
    k[1, 0, :, 0] = big
    q[1, 1, :, :2] = 0
    k[1, 1, :, :2] = big
    q[1, 1, 30, :2] = [big, -big]
    mask = np.ones((3, 130), bool)
    mask[0, [7, 60, 120]] = False
    mask[1, 1::3] = False
    mask[2] = False
    nan_rows = [(0, 0, 5), (0, 1, 50), (1, 1, 30)]
    zero_rows = [(1, 0, i) for i in range(100)] + [(2, h, i) for h in range(2) for i in range(100)]
    arrays = [a.astype(dtype) for a in (q, k, v, dout)]
    return (*arrays, mask), (nan_rows, zero_rows)


def _check_overflow_rows(fast, ref, dtype, causal):
    """Failures (strings) of the overflow rows' contract: NaN rows NaN, rows seeing no key zero,
    everything else finite; compiled and NumPy with the same NaN positions in out, lse and the
    gradients and their finite values close."""
    (q, k, v, dout, mask), (nan_rows, zero_rows) = _overflow_problem(dtype, causal)
    problems = []
    results = [_run(be, q, k, v, dout, mask, causal) for be in (fast, ref)]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for name, got, want in zip(("out", "lse", "dq", "dk", "dv"), *results):
        if not np.array_equal(np.isnan(got), np.isnan(want)):
            problems.append(f"{name}: NaN at {np.argwhere(np.isnan(got) != np.isnan(want))[:3]}")
        fin = np.isfinite(want)
        if not np.array_equal(fin, np.isfinite(got)):
            problems.append(f"{name}: finite at different places")
        elif _rel(got[fin], want[fin]) > tol:
            problems.append(f"{name}: {_rel(got[fin], want[fin])}")
    for backend, (out, lse, dq, dk, dv) in zip(("fast", "numpy"), results):
        nan = np.zeros(out.shape[:3], bool)
        nan[tuple(np.array(nan_rows).T)] = True
        zero = np.zeros(out.shape[:3], bool)
        zero[tuple(np.array(zero_rows).T)] = True
        if not (np.isnan(out[nan]).all() and np.isnan(lse[nan]).all()):
            problems.append(f"{backend}: an overflowing row is not NaN")
        if not ((out[zero] == 0).all() and (lse[zero] == -np.inf).all()):
            problems.append(f"{backend}: a row that sees no key is not 0")
        if not (np.isfinite(out[~nan]).all() and np.isfinite(lse[~nan & ~zero]).all()):
            problems.append(f"{backend}: a NaN or inf outside the overflowing rows")
        if not all(np.isnan(dq[row]).all() for row in nan_rows):
            problems.append(f"{backend}: dq of an overflowing row is not NaN")
        seen = 6 if causal else 130              # the keys row (0, 0, 5) sees
        if not np.isnan(dk[0, 0, 3]).all() or np.isnan(dk[0, 0, seen:]).any():
            problems.append(f"{backend}: dk's NaN reaches other keys than row 5 sees")
        if not (dq[1, 0] == 0).all() or not (dk[1, 0] == 0).all():
            problems.append(f"{backend}: -inf scores pass a gradient")
    return problems


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
def test_overflowing_scores_give_nan_rows_on_both_backends(dtype, causal):
    assert _check_overflow_rows("fast", "numpy", dtype, causal) == []


def test_overflowing_scores_give_nan_where_torch_does():
    torch = pytest.importorskip("torch")
    (q, k, v, _, mask), (nan_rows, _) = _overflow_problem(np.float32, False)
    seen = mask[:2]                      # older PyTorch gives NaN for rows that see no key
    got = fnn.ops.scaled_dot_product_attention(q[:2], k[:2], v[:2], mask=seen)
    want = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(a[:2]) for a in (q, k, v)), attn_mask=torch.tensor(seen)[:, None, None, :])
    assert np.array_equal(np.isnan(got), np.isnan(want.numpy()))
    assert np.isnan(got).any(axis=-1).sum() == len(nan_rows)
    fin = np.isfinite(got)
    assert _rel(got[fin], want.numpy()[fin]) <= 1e-5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_decode_treats_overflowing_scores_as_the_tiled_kernels(dtype):
    """attention_decode (generation) as attention_forward: head 0's query scores +inf against the
    last key (NaN), head 1's -inf against every key (0), head 2's are moderate; both backends,
    and the tiled kernel on the same causal last row."""
    big = 1e20 if dtype == np.float32 else 1e160
    rng = np.random.default_rng(5)
    q = rng.standard_normal((1, 3, 4))
    K, V = rng.standard_normal((1, 3, 3, 4)), rng.standard_normal((1, 3, 3, 2))
    q[0, :2, 0], K[0, :2, :, 0] = [big, -big], big
    K[0, 0, :2, 0] = 0
    q, K, V = (a.astype(dtype) for a in (q, K, V))
    outs = []
    for backend in BACKENDS:
        kc, vc = np.zeros((1, 3, 5, 4), dtype), np.zeros((1, 3, 5, 2), dtype)
        out = np.empty((1, 3, 2), dtype)
        for t in range(3):
            get_backend(backend).attention_decode(q, K[:, :, t].copy(), V[:, :, t].copy(), kc, vc,
                                                  t, 0.5, out)
        outs.append(out)
        assert np.isnan(out[0, 0]).all() and (out[0, 1] == 0).all()
        assert np.isfinite(out[0, 2]).all()
    tiled, _, _, _, _ = _run("fast", q[:, :, None].repeat(3, axis=2), K, V,
                             np.zeros((1, 3, 3, 2), dtype), None, True, 0.5)
    for out in outs:
        assert np.array_equal(np.isnan(out), np.isnan(tiled[:, :, 2]))
        np.testing.assert_allclose(out[0, 1:], tiled[0, 1:, 2], rtol=1e-5, atol=0)


def _peak_bytes(L, dtype=np.float32, H=4, D=64):
    q, k, v, dout, _ = _problem(1, H, L, L, D, dtype=dtype, seed=1)
    fast = get_backend("fast")
    _run("fast", *(a[:, :, :64].copy() for a in (q, k, v, dout)), None, True)   # warm-up
    tracemalloc.start()
    try:
        out = np.empty_like(q)
        lse = np.empty(q.shape[:3], dtype)
        fast.attention_forward(q, k, v, None, False, None, out, lse)
        dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
        fast.attention_backward(q, k, v, out, dout, lse, None, False, None, dq, dk, dv)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def test_memory_is_linear_in_sequence_length():
    """The call's own buffers (outputs, lse and the per-thread scratch) against one (L x L) score
    matrix per head, which a materialised implementation holds at least (it keeps the
    probabilities for the backward and builds dP beside them)."""
    H, D, item = 4, 64, 4
    peak2048 = _peak_bytes(2048, H=H, D=D)
    peak1024 = _peak_bytes(1024, H=H, D=D)
    materialised = H * 2048 * 2048 * item
    assert peak2048 <= materialised / 4, (peak2048, materialised)
    assert 1.6 <= peak2048 / peak1024 <= 2.4, (peak1024, peak2048)


def test_peak_rss_of_the_compiled_call_is_small():
    """The C side (the GEMM's packing buffers, OpenMP) is invisible to tracemalloc: the process'
    peak RSS across forward + backward at L = 2048, after a small warm-up call, in a fresh
    process."""
    code = textwrap.dedent("""
        import resource, numpy as np
        from fastnn.backends import get_backend
        fast = get_backend("fast")
        H, L, D = 4, 2048, 64
        rng = np.random.default_rng(0)
        q, k, v, dout = (rng.standard_normal((1, H, L, D)).astype(np.float32) for _ in range(4))
        out, dq, dk, dv = (np.zeros_like(q) for _ in range(4))
        lse = np.zeros((1, H, L), np.float32)
        s = slice(0, 128)
        o2, l2 = np.zeros_like(q[:, :, s]), np.zeros_like(lse[:, :, s])
        fast.attention_forward(q[:, :, s].copy(), k[:, :, s].copy(), v[:, :, s].copy(), None,
                               True, None, o2, l2)
        fast.attention_backward(q[:, :, s].copy(), k[:, :, s].copy(), v[:, :, s].copy(), o2,
                                dout[:, :, s].copy(), l2, None, True, None,
                                np.zeros_like(o2), np.zeros_like(o2), np.zeros_like(o2))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fast.attention_forward(q, k, v, None, False, None, out, lse)
        fast.attention_backward(q, k, v, out, dout, lse, None, False, None, dq, dk, dv)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) * 1024)
    """)
    env = dict(os.environ)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    growth = int(res.stdout.split()[-1])
    assert growth <= 4 * 2048 * 2048 * 4 / 4, growth


# ------------------------------------------------------------------------------- bad inputs
def _good(dtype=np.float64):
    q, k, v, dout, mask = _problem(2, 2, 5, 6, 4, 3, dtype=dtype, masked=True)
    return dict(q=q, k=k, v=v, key_mask=mask, causal=False, scale=None,
                out=np.empty((2, 2, 5, 3), dtype), lse=np.empty((2, 2, 5), dtype))


def _fortran(a):
    return np.asfortranarray(a)


BAD_FORWARD = [
    ("q and k widths differ", dict(k=np.zeros((2, 2, 6, 5))), "k"),
    ("k and v lengths differ", dict(v=np.zeros((2, 2, 7, 3))), "v"),
    ("q is 3-D", dict(q=np.zeros((2, 5, 4))), "q"),
    ("mask of the wrong shape", dict(key_mask=np.ones((2, 5), bool)), "key_mask"),
    ("mask of the wrong dtype", dict(key_mask=np.ones((2, 6), np.float64)), "key_mask"),
    ("mask per head", dict(key_mask=np.ones((2, 2, 6), bool)), "key_mask"),
    ("non-contiguous q", dict(q=np.zeros((2, 2, 5, 8))[..., ::2]), "q"),
    ("Fortran-ordered v", dict(v=_fortran(np.zeros((2, 2, 6, 3)))), "v"),
    ("float32 k with float64 q", dict(k=np.zeros((2, 2, 6, 4), np.float32)), "k"),
    ("integer q", dict(q=np.zeros((2, 2, 5, 4), np.int64)), "q"),
    ("out of the wrong shape", dict(out=np.empty((2, 2, 5, 4))), "out"),
    ("out of the wrong dtype", dict(out=np.empty((2, 2, 5, 3), np.float32)), "out"),
    ("lse of the wrong shape", dict(lse=np.empty((2, 2, 6))), "lse"),
    ("infinite scale", dict(scale=float("inf")), "scale"),
    ("zero width", dict(q=np.zeros((2, 2, 5, 0)), k=np.zeros((2, 2, 6, 0))), "width"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("what, change, word", BAD_FORWARD, ids=[b[0] for b in BAD_FORWARD])
def test_bad_forward_inputs(backend, what, change, word):
    args = _good()
    args.update(change)
    with pytest.raises(ValueError, match=word):
        get_backend(backend).attention_forward(**args)


def test_forward_refuses_outputs_that_overlap_inputs():
    args = _good()
    args["out"] = args["v"][:, :, :5]
    for backend in BACKENDS:
        with pytest.raises(ValueError, match="out"):
            get_backend(backend).attention_forward(**args)


BAD_BACKWARD = [
    ("dout of the wrong shape", "dout", lambda a: np.zeros((2, 2, 5, 4))),
    ("lse of the wrong dtype", "lse", lambda a: a.astype(np.float32)),
    ("dq of the wrong shape", "dq", lambda a: np.empty((2, 2, 6, 4))),
    ("dk non-contiguous", "dk", lambda a: np.empty((2, 2, 6, 8))[..., ::2]),
    ("dv read-only", "dv", lambda a: np.broadcast_to(np.empty((1, 2, 6, 3)), (2, 2, 6, 3))),
    ("dq is q", "dq", None),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("what, name, make", BAD_BACKWARD, ids=[b[0] for b in BAD_BACKWARD])
def test_bad_backward_inputs(backend, what, name, make):
    g = _good()
    be = get_backend(backend)
    be.attention_forward(**g)
    args = dict(q=g["q"], k=g["k"], v=g["v"], out=g["out"], dout=np.ones_like(g["out"]),
                lse=g["lse"], key_mask=g["key_mask"], causal=False, scale=None,
                dq=np.empty_like(g["q"]), dk=np.empty_like(g["k"]), dv=np.empty_like(g["v"]))
    args[name] = g["q"] if make is None else make(args[name])
    with pytest.raises(ValueError, match=name):
        be.attention_backward(**args)


BAD_OPS = [
    ("q and k widths differ", dict(k=np.zeros((2, 6, 5))), "width"),
    ("k and v lengths differ", dict(v=np.zeros((2, 7, 3))), "length"),
    ("leading axes differ", dict(v=np.zeros((3, 6, 3))), "leading"),
    ("mask of the wrong shape", dict(mask=np.ones((2, 5), bool)), "mask"),
    ("mask of the wrong dtype", dict(mask=np.ones((2, 6), np.float32)), "mask"),
    ("mask with too many axes", dict(mask=np.ones((2, 1, 6), bool)), "mask"),
    ("1-D q", dict(q=np.zeros(4)), "q"),
    ("NaN in k", dict(k=np.full((2, 6, 4), np.nan)), "k"),
    ("scale a string", dict(scale="2"), "scale"),
]


@pytest.mark.parametrize("what, change, word", BAD_OPS, ids=[b[0] for b in BAD_OPS])
def test_bad_ops_inputs(what, change, word):
    rng = np.random.default_rng(0)
    args = dict(q=rng.standard_normal((2, 5, 4)), k=rng.standard_normal((2, 6, 4)),
                v=rng.standard_normal((2, 6, 3)))
    args.update(change)
    with pytest.raises(ValueError, match=word):
        fnn.ops.scaled_dot_product_attention(**args)


def test_ops_dtypes_and_new_array():
    q = np.ones((3, 4), np.float32)
    out = fnn.ops.scaled_dot_product_attention(q, q, q)
    assert out.dtype == np.float32 and out.shape == (3, 4) and not np.shares_memory(out, q)
    out = fnn.ops.scaled_dot_product_attention(q, q.astype(np.float64), q)
    assert out.dtype == np.float64
    assert fnn.ops.scaled_dot_product_attention(np.ones((0, 3, 4)), np.ones((0, 2, 4)),
                                                np.ones((0, 2, 5))).shape == (0, 3, 5)


# ------------------------------------------------------------------------------- layouts
def _interleaved(arrays):
    """The arrays (B, H, L, W_i) copied side by side into one (B, L, sum H W_i) buffer, as a
    layer's projection holds them, and returned as (B, H, L, W_i) views of it."""
    B, H, L = arrays[0].shape[:3]
    widths = [a.shape[3] for a in arrays]
    buf = np.zeros((B, L, H * sum(widths)), arrays[0].dtype)
    views, col = [], 0
    for a, w in zip(arrays, widths):
        view = buf[:, :, col:col + H * w].reshape(B, L, H, w).transpose(0, 2, 1, 3)
        view[...] = a
        views.append(view)
        col += H * w
    return views


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case, causal, masked", [((2, 3, 37, 37, 16, 8), False, True),
                                                  ((3, 4, 50, 50, 8, 8), True, False),
                                                  ((2, 1, 7, 130, 1, 3), False, False),
                                                  ((1, 2, 100, 100, 16, 16), True, True)])
def test_heads_read_and_written_in_place_give_the_same_bits(backend, dtype, case, causal, masked,
                                                            fixed_threads):
    """q, k, v read where a projection holds them side by side, out written into merged rows,
    dout read from them, dq, dk, dv written side by side (one buffer: the views' elements are
    apart though their bounds overlap): bitwise what contiguous arrays give,
    at 1 and 2 threads (the layer passes its heads so, with no copies)."""
    B, H, Lq, Lk, D, Dv = case
    q, k, v, dout, mask = _problem(B, H, Lq, Lk, D, Dv, dtype=dtype, masked=masked)
    want = None
    for threads in (1, 2):
        with fnn.threads(threads):
            if want is None:
                want = _run(backend, q, k, v, dout, mask, causal)
            be = get_backend(backend)
            qv, = _interleaved([q])
            kv, vv = _interleaved([k, v])
            ov, dov = (_interleaved([np.zeros((B, H, Lq, Dv), dtype)])[0],
                       _interleaved([dout])[0])
            lse = np.empty((B, H, Lq), dtype)
            be.attention_forward(qv, kv, vv, mask, causal, None, ov, lse)
            if Lq == Lk:             # one buffer, as a self-attention layer's gradient
                dq, dk, dv = _interleaved([np.zeros_like(a) for a in (q, k, v)])
            else:
                dq, dk, dv = (_interleaved([np.zeros_like(a)])[0] for a in (q, k, v))
            be.attention_backward(qv, kv, vv, ov, dov, lse, mask, causal, None, dq, dk, dv)
            for got, ref in zip((ov, lse, dq, dk, dv), want):
                assert np.array_equal(got, ref, equal_nan=True)
            assert H == 1 or not (ov.flags.c_contiguous or dq.flags.c_contiguous)


LAYOUT_REFUSED = [
    ("q with its rows reversed", "q", lambda a: np.ascontiguousarray(a[:, :, ::-1])[:, :, ::-1]),
    ("k columns strided", "k", lambda a: np.repeat(a, 2, axis=3)[..., ::2]),
    ("out with two heads at one address", "out",
     lambda a: np.lib.stride_tricks.as_strided(np.empty(a.size, a.dtype), a.shape,
                                               (a.strides[0], 0) + a.strides[2:])),
    ("out whose rows overlap", "out",
     lambda a: np.lib.stride_tricks.as_strided(np.empty(a.size, a.dtype), a.shape,
                                               a.strides[:2] + (a.itemsize,) + a.strides[3:])),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("what, name, make", LAYOUT_REFUSED, ids=[b[0] for b in LAYOUT_REFUSED])
def test_layouts_the_kernels_cannot_take_are_refused(backend, what, name, make):
    args = _good()
    args[name] = make(args[name])
    with pytest.raises(ValueError, match=name):
        get_backend(backend).attention_forward(**args)


def test_backward_refuses_gradients_whose_elements_collide():
    g = _good()
    be = get_backend("fast")
    be.attention_forward(**g)
    dk = np.empty_like(g["k"])
    for bad in (np.lib.stride_tricks.as_strided(dk, dk.shape, (0,) + dk.strides[1:]),
                np.lib.stride_tricks.as_strided(dk, dk.shape, dk.strides[:3] + (0,))):
        with pytest.raises(ValueError, match="dk"):
            be.attention_backward(g["q"], g["k"], g["v"], g["out"], np.ones_like(g["out"]),
                                  g["lse"], g["key_mask"], False, None, np.empty_like(g["q"]),
                                  bad, np.empty_like(g["v"]))


def test_overlap_too_hard_to_tell_counts_as_overlap(monkeypatch):
    """Outputs apart from the inputs element by element, though within their bounds, are
    accepted; when NumPy gives up on that question (its search is bounded) they are refused
    rather than trusted."""
    from fastnn import _validation as V

    def too_hard(a, b, max_work=None):
        raise V._TOO_HARD("too hard")
    g = _good()
    buf = np.zeros((2, 6, 12))                  # v in columns 6-11, out in columns 0-5
    v = buf[:, :, 6:].reshape(2, 6, 2, 3).transpose(0, 2, 1, 3)
    v[...] = g["v"]
    g["v"], g["out"] = v, buf[:, :5, :6].reshape(2, 5, 2, 3).transpose(0, 2, 1, 3)
    get_backend("fast").attention_forward(**g)
    monkeypatch.setattr(V.np, "shares_memory", too_hard)
    with pytest.raises(ValueError, match="out must not overlap v"):
        get_backend("fast").attention_forward(**g)


# ------------------------------------------------------------- the compiled checks' common case
def _layer_like(dtype, masked):
    """A self-attention layer's arguments: q, k, v side by side in one buffer, out and dout in
    merged rows, dq, dk, dv side by side in another buffer (fastnn/layers/attention.py)."""
    B, H, L, D = 2, 3, 7, 4
    q, k, v, dout, mask = _problem(B, H, L, L, D, dtype=dtype, masked=masked)
    qv, kv, vv = _interleaved([q, k, v])
    ov, dov = _interleaved([np.zeros_like(dout)])[0], _interleaved([dout])[0]
    dq, dk, dv = _interleaved([np.zeros_like(a) for a in (q, k, v)])
    return dict(q=qv, k=kv, v=vv, out=ov, dout=dov, lse=np.empty((B, H, L), dtype),
                key_mask=mask, dq=dq, dk=dk, dv=dv)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("layout", ["layer", "contiguous"])
def test_the_common_arguments_skip_the_python_checks(monkeypatch, dtype, masked, layout):
    """The compiled wrappers recognise a layer's arguments (and contiguous ones) in C; the
    Python checks, which cost ~80 us a training step, are then not called (here they would
    fail the test), and the results are those of the checked call."""
    from fastnn._ext import _attention
    a = _layer_like(dtype, masked)
    if layout == "contiguous":
        a = {n: (np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x)
             for n, x in a.items()}
    be = get_backend("fast")
    fwd = dict(q=a["q"], k=a["k"], v=a["v"], key_mask=a["key_mask"], causal=False, scale=None,
               out=a["out"], lse=a["lse"])
    bwd = dict(q=a["q"], k=a["k"], v=a["v"], out=a["out"], dout=a["dout"], lse=a["lse"],
               key_mask=a["key_mask"], causal=False, scale=0.5, dq=a["dq"], dk=a["dk"],
               dv=a["dv"])
    be.attention_forward(**fwd)
    be.attention_backward(**bwd)
    want = [x.copy() for x in (a["out"], a["lse"], a["dq"], a["dk"], a["dv"])]

    def refuse(*args, **kwargs):
        raise AssertionError("the Python checks were called")
    monkeypatch.setattr(_attention, "check_attention_forward", refuse)
    monkeypatch.setattr(_attention, "check_attention_backward", refuse)
    for x in (a["out"], a["lse"], a["dq"], a["dk"], a["dv"]):
        x[...] = np.nan
    be.attention_forward(**fwd)
    be.attention_backward(**bwd)
    for x, w in zip((a["out"], a["lse"], a["dq"], a["dk"], a["dv"]), want):
        assert np.array_equal(x, w)


def _swapped(a):
    return a.astype(a.dtype.newbyteorder())


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


class _Sub(np.ndarray):
    pass


# (what, the argument, how it changes, the forward or the backward): each a case the compiled
# common-case test must pass on to the Python checks, which refuse it naming the argument
NOT_COMMON = [
    ("byte-swapped q", "q", _swapped, "forward"),
    ("byte-swapped lse", "lse", _swapped, "backward"),
    ("read-only out", "out", _read_only, "forward"),
    ("read-only lse", "lse", _read_only, "forward"),
    ("non-contiguous lse", "lse", lambda a: np.empty(a.shape + (2,), a.dtype)[..., 0], "forward"),
    ("non-contiguous mask", "key_mask", lambda m: np.repeat(m, 2, axis=1)[:, ::2], "forward"),
    ("mask of int8", "key_mask", lambda m: m.astype(np.int8), "forward"),
    ("dk over dv's first column", "dk", None, "backward"),
    ("dq over dout", "dq", None, "backward"),
    ("out over k", "out", None, "forward"),
    ("dv with reversed rows", "dv", lambda a: np.ascontiguousarray(a[:, :, ::-1])[:, :, ::-1],
     "backward"),
    ("dq whose heads collide", "dq",
     lambda a: np.lib.stride_tricks.as_strided(np.zeros(a.size, a.dtype), a.shape,
                                               (a.strides[0], 0) + a.strides[2:]), "backward"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("what, name, make, call", NOT_COMMON, ids=[c[0] for c in NOT_COMMON])
def test_what_the_common_case_leaves_to_the_python_checks_is_refused(what, name, make, call,
                                                                      dtype):
    a = _layer_like(dtype, masked=True)
    B, H, L, D = a["q"].shape
    if what == "dk over dv's first column":      # one buffer, dk shifted one column right
        buf = np.zeros((B, L, 3 * H * D), dtype)
        a["dk"] = buf[:, :, H * D + 1:2 * H * D + 1].reshape(B, L, H, D).transpose(0, 2, 1, 3)
        a["dv"] = buf[:, :, 2 * H * D:].reshape(B, L, H, D).transpose(0, 2, 1, 3)
    elif what == "dq over dout":
        a["dq"] = a["dout"]
    elif what == "out over k":
        a["out"] = a["k"]
    else:
        a[name] = make(a[name])
    be = get_backend("fast")
    with pytest.raises(ValueError, match=name):
        if call == "forward":
            be.attention_forward(a["q"], a["k"], a["v"], a["key_mask"], False, None, a["out"],
                                 a["lse"])
        else:
            be.attention_backward(a["q"], a["k"], a["v"], a["out"], a["dout"], a["lse"],
                                  a["key_mask"], False, None, a["dq"], a["dk"], a["dv"])


def test_an_ndarray_subclass_takes_the_python_checks(monkeypatch):
    from fastnn._ext import _attention
    a = _layer_like(np.float64, masked=False)
    calls = []
    real = _attention.check_attention_forward
    monkeypatch.setattr(_attention, "check_attention_forward",
                        lambda *args: calls.append(1) or real(*args))
    q = np.ascontiguousarray(a["q"]).view(_Sub)
    get_backend("fast").attention_forward(q, a["k"], a["v"], None, False, None, a["out"],
                                          a["lse"])
    assert calls == [1]


# ------------------------------------------------------------------ small pairs in registers
# Float pairs of at most 32 keys, 48 queries and 16-value heads run fnn_attn_small_avx2.h's
# kernels (the AVX2 flavour); _attention._set_small(False) sends them down the tiled
# path, which they must match: the same NaN, inf and zero positions, the finite values within
# float rounding, every edge of the limits (a partial 4-row block, keys short of a vector,
# widths short of 16). Past the limits the tiled path runs.

@pytest.fixture
def tiled_and_small():
    from fastnn._ext import _attention

    def both(*args, **kwargs):
        try:
            _attention._set_small(True)
            small = _run("fast", *args, **kwargs)
            _attention._set_small(False)
            tiled = _run("fast", *args, **kwargs)
        finally:
            _attention._set_small(True)
        return small, tiled
    return both


def _assert_same_attention(small, tiled, values=("out", "lse", "dq", "dk", "dv")):
    """The same NaN and +-inf positions; the finite values of ``values`` close"""
    for name, a, b in zip(("out", "lse", "dq", "dk", "dv"), small, tiled):
        assert np.array_equal(np.isnan(a), np.isnan(b)), name
        assert np.array_equal(np.isinf(a) & (a > 0), np.isinf(b) & (b > 0)), name
        assert np.array_equal(np.isinf(a) & (a < 0), np.isinf(b) & (b < 0)), name
        fin = np.isfinite(b)
        if name in values:
            assert _rel(a[fin], b[fin]) <= 2e-5, (name, _rel(a[fin], b[fin]))


SMALL_CASES = [(2, 4, 32, 32, 16, 16), (1, 1, 1, 1, 1, 1), (3, 2, 5, 7, 3, 5),
               (2, 3, 48, 32, 16, 8), (1, 2, 17, 32, 9, 16), (2, 1, 33, 31, 16, 13),
               (1, 2, 47, 8, 8, 16), (2, 2, 4, 9, 15, 1), (1, 3, 6, 30, 16, 7)]


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("case", SMALL_CASES, ids=lambda c: "B%dH%dq%dk%dD%dv%d" % c)
def test_small_pairs_match_the_tiled_path(case, causal, masked, tiled_and_small):
    q, k, v, dout, mask = _problem(*case, dtype=np.float32, masked=masked, seed=5)
    if masked:
        mask[0, :] = False                      # batch 0: rows that see no key
    small, tiled = tiled_and_small(q, k, v, dout, mask, causal)
    _assert_same_attention(small, tiled)
    if masked:
        assert (small[0][0] == 0).all() and (small[1][0] == -np.inf).all()
        assert (small[2][0] == 0).all() and (small[3][0] == 0).all()
    if case == SMALL_CASES[0] and get_backend("fast").kernel_name() == "avx2":
        # the register kernels ran: another order of sums, so some bits differ
        assert not all(np.array_equal(a, b) for a, b in zip(small, tiled))


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("special", ["nan-q", "nan-k", "nan-v", "inf-v", "overflow",
                                     "minus-overflow", "nan-dout"])
def test_small_pairs_treat_special_values_as_the_tiled_path(special, causal, tiled_and_small):
    q, k, v, dout, mask = _problem(2, 2, 12, 20, 16, 8, dtype=np.float32, seed=9)
    big = np.float32(3e38)
    if special == "nan-q":
        q[0, 1, 4, 3] = np.nan
    elif special == "nan-k":
        k[1, 0, 7, 0] = np.nan
    elif special == "nan-v":
        v[0, 0, 15, 2] = np.nan                 # a key the first causal rows do not see
    elif special == "inf-v":
        v[1, 1, 3, 5] = np.inf
    elif special == "overflow":                 # a score of +inf: the row is NaN
        q[0, 0, 5, :2] = [big, -big]
        k[0, 0, 3, :2] = [big, big]
        q[1, 1, 8, 0], k[1, 1, 2, 0] = big, big
    elif special == "minus-overflow":           # scores of -inf count as masked
        q[1, 0, :, 0] = -big
        k[1, 0, :, 0] = big
        q[0, 1, 6, 0], k[0, 1, 11, 0] = -big, big
    else:
        dout[0, 1, 2, 1] = np.nan
    small, tiled = tiled_and_small(q, k, v, dout, mask, causal)
    # with entries of 3e38 in q and k, dq = dS k and dk = dS^T q are rounding noise times 3e38
    # on both paths: their NaN and inf positions are compared, not their values
    _assert_same_attention(small, tiled, ("out", "lse", "dv") if "overflow" in special
                           else ("out", "lse", "dq", "dk", "dv"))


def test_past_the_small_limits_the_tiled_path_runs(tiled_and_small):
    for case in [(1, 2, 49, 32, 16, 16), (1, 2, 32, 33, 16, 16), (1, 2, 32, 32, 17, 16),
                 (1, 2, 32, 32, 16, 17)]:
        q, k, v, dout, mask = _problem(*case, dtype=np.float32, seed=2)
        small, tiled = tiled_and_small(q, k, v, dout, mask, False)
        assert all(np.array_equal(a, b) for a, b in zip(small, tiled)), case


def test_small_pairs_in_a_layer_match_the_tiled_path(tiled_and_small):
    # heads read and written in place in a (batch, steps, heads * width) projection, as the
    # layers pass them: rows 64 floats apart, 16 of them a head
    rng = np.random.default_rng(4)
    p = rng.standard_normal((3, 32, 3 * 64)).astype(np.float32)

    def heads(x):
        return [x[:, :, i * 64:(i + 1) * 64].reshape(3, 32, 4, 16).transpose(0, 2, 1, 3)
                for i in range(3)]
    q, k, v = heads(p)
    dout = rng.standard_normal((3, 4, 32, 16)).astype(np.float32)
    for causal in (False, True):
        small, tiled = tiled_and_small(q, k, v, dout, None, causal)
        _assert_same_attention(small, tiled)
        want = _run("numpy", *(np.ascontiguousarray(a) for a in (q, k, v, dout)), None, causal)
        for a, b in zip(small, want):
            assert _rel(a, b) <= 1e-5


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("case", SMALL_CASES[:4], ids=lambda c: "B%dH%dq%dk%dD%dv%d" % c)
def test_small_pairs_match_torch(case, causal, masked):
    # float32 through the register kernels against PyTorch in float64 on the same values
    q, k, v, dout, mask = _problem(*case, dtype=np.float32, masked=masked, seed=13)
    got = _run("fast", q, k, v, dout, mask, causal)
    want = _torch_reference(*(a.astype(np.float64) for a in (q, k, v, dout)), mask, causal)
    for name, g, w in zip(("out", "dq", "dk", "dv"), (got[0], *got[2:]), want):
        assert _rel(g, w) <= 2e-5, (name, _rel(g, w))
