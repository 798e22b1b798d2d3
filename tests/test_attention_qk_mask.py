"""Query-key attention masks (Keras' ``attention_mask`` (B, T, S), PyTorch's boolean
``attn_mask``): fused into the tiled attention kernel (src_c/fnn_attn_tmpl.h ``qk_mask``) and its
NumPy twin, through ``fnn.ops.scaled_dot_product_attention(attn_mask=...)`` and
``MultiHeadAttention(q, v, attention_mask=m)`` with m of shape (n, Lq, Lv).

Oracles: PyTorch's ``F.scaled_dot_product_attention`` with the boolean mask in float64 (forward
and every gradient), Keras 3's MultiHeadAttention with the same weights, finite differences,
the NumPy twin, onnxruntime; the compiled kernel at 1 and 2 threads bitwise."""

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import fast_backend, numpy_backend

BACKENDS = {"fast": fast_backend, "numpy": numpy_backend}
# (Lq, Lk): one tile, tile edges (48 query rows, 96 keys a tile), several tiles each way
SIZES = [(1, 1), (5, 7), (47, 97), (48, 96), (49, 130), (130, 49), (200, 200)]


def _masks(rng, B, Lq, Lk, key=False):
    """A random (B, Lq, Lk) mask, and a (B, Lk) key mask or None; key 0 always visible (so
    every query, causal too, sees a key: PyTorch gives NaN rows otherwise)."""
    full = rng.random((B, Lq, Lk)) < 0.6
    full[:, :, 0] = True
    km = None
    if key:
        km = rng.random((B, Lk)) < 0.7
        km[:, 0] = True
    return full, km


def _torch_visible(full, km, causal, Lq, Lk):
    vis = full.copy()
    if km is not None:
        vis &= km[:, None, :]
    if causal:
        vis &= np.tril(np.ones((Lq, Lk), bool))
    return vis[:, None]                             # shared by the heads


@pytest.mark.parametrize("Lq, Lk", SIZES)
@pytest.mark.parametrize("causal, key", [(False, False), (True, False), (False, True),
                                         (True, True)])
def test_ops_matches_torch_float64(Lq, Lk, causal, key):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(Lq * 1000 + Lk)
    B, H, D, Dv = 2, 3, 8, 5
    q, k = rng.standard_normal((B, H, Lq, D)), rng.standard_normal((B, H, Lk, D))
    v = rng.standard_normal((B, H, Lk, Dv))
    full, km = _masks(rng, B, Lq, Lk, key)
    got = fnn.ops.scaled_dot_product_attention(q, k, v, mask=km, causal=causal,
                                               attn_mask=full)
    T = torch.tensor
    want = torch.nn.functional.scaled_dot_product_attention(
        T(q), T(k), T(v), attn_mask=T(_torch_visible(full, km, causal, Lq, Lk))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("Lq, Lk", [(5, 7), (49, 130), (130, 49), (200, 200)])
@pytest.mark.parametrize("causal", [False, True])
def test_kernel_gradients_match_torch_float64(backend, Lq, Lk, causal):
    torch = pytest.importorskip("torch")
    be = BACKENDS[backend]
    rng = np.random.default_rng(Lq + 7 * Lk)
    B, H, D, Dv = 2, 2, 16, 8
    q, k = rng.standard_normal((B, H, Lq, D)), rng.standard_normal((B, H, Lk, D))
    v, G = rng.standard_normal((B, H, Lk, Dv)), rng.standard_normal((B, H, Lq, Dv))
    full, _ = _masks(rng, B, Lq, Lk)
    scale = 0.3
    out, lse = np.empty((B, H, Lq, Dv)), np.empty((B, H, Lq))
    be.attention_forward(q, k, v, full, causal, scale, out, lse)
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    be.attention_backward(q, k, v, out, G, lse, full, causal, scale, dq, dk, dv)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    to = torch.nn.functional.scaled_dot_product_attention(
        tq, tk, tv, attn_mask=torch.tensor(_torch_visible(full, None, causal, Lq, Lk)),
        scale=scale)
    (to * torch.tensor(G)).sum().backward()
    np.testing.assert_allclose(out, to.detach().numpy(), rtol=1e-10, atol=1e-12)
    for got, t in ((dq, tq), (dk, tk), (dv, tv)):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_query_that_sees_no_key_gets_zeros(backend):
    """Row 1's mask is all False: its output and lse are 0 and -inf, and it passes no gradient;
    the other rows are what the rows alone give."""
    be = BACKENDS[backend]
    rng = np.random.default_rng(3)
    B, H, Lq, Lk, D = 1, 2, 4, 6, 3
    q, k, v = (rng.standard_normal((B, H, n, D)) for n in (Lq, Lk, Lk))
    full = np.ones((B, Lq, Lk), bool)
    full[0, 1] = False
    full[0, 2, 3:] = False
    out, lse = np.empty((B, H, Lq, D)), np.empty((B, H, Lq))
    be.attention_forward(q, k, v, full, False, 1.0, out, lse)
    assert np.all(out[:, :, 1] == 0) and np.all(lse[:, :, 1] == -np.inf)
    s = np.einsum("hd,hkd->hk", q[0, :, 2], k[0, :, :3])
    a = np.exp(s - s.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out[0, :, 2], np.einsum("hk,hkd->hd", a, v[0, :, :3]),
                               rtol=1e-12)
    G = rng.standard_normal(out.shape)
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    be.attention_backward(q, k, v, out, G, lse, full, False, 1.0, dq, dk, dv)
    assert np.all(dq[:, :, 1] == 0)
    # keys 3.. are seen by rows 0 and 3 only: row 2's gradient does not reach them
    G2 = G.copy()
    G2[:, :, 2] = 0
    dq2, dk2, dv2 = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    be.attention_backward(q, k, v, out, G2, lse, full, False, 1.0, dq2, dk2, dv2)
    np.testing.assert_array_equal(dv[:, :, 3:], dv2[:, :, 3:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_matches_numpy_twin_and_threads_are_bitwise(dtype):
    rng = np.random.default_rng(11)
    B, H, Lq, Lk, D = 2, 2, 150, 230, 16
    q = rng.standard_normal((B, H, Lq, D)).astype(dtype)
    k = rng.standard_normal((B, H, Lk, D)).astype(dtype)
    v = rng.standard_normal((B, H, Lk, D)).astype(dtype)
    G = rng.standard_normal((B, H, Lq, D)).astype(dtype)
    full, _ = _masks(rng, B, Lq, Lk)

    def run(be):
        out, lse = np.empty_like(q), np.empty((B, H, Lq), dtype)
        be.attention_forward(q, k, v, full, True, 0.25, out, lse)
        grads = [np.empty_like(a) for a in (q, k, v)]
        be.attention_backward(q, k, v, out, G, lse, full, True, 0.25, *grads)
        return [out, lse] + grads

    before = fnn.get_num_threads()
    try:
        fnn.set_num_threads(1)
        one = run(fast_backend)
        fnn.set_num_threads(2)
        two = run(fast_backend)
    finally:
        fnn.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    tol = 2e-4 if dtype == np.float32 else 1e-11
    for a, b in zip(one, run(numpy_backend)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_ops_mask_forms_broadcast_over_the_leading_axes():
    """An (Lq, Lk) mask serves every problem, a (B, Lq, Lk) one every head; with a key mask too,
    both apply: the same values as the mask written out for every (batch, head)."""
    rng = np.random.default_rng(5)
    B, H, Lq, Lk, D = 2, 3, 6, 9, 4
    q, k, v = (rng.standard_normal((B, H, n, D)) for n in (Lq, Lk, Lk))
    shared, _ = _masks(rng, 1, Lq, Lk)
    per_batch, km = _masks(rng, B, Lq, Lk, key=True)

    def by_head(m):                 # one problem at a time, its mask written out
        out = np.empty((B, H, Lq, D))
        for b in range(B):
            for h in range(H):
                out[b, h] = fnn.ops.scaled_dot_product_attention(
                    q[b, h], k[b, h], v[b, h], attn_mask=m[b, h])
        return out

    got = fnn.ops.scaled_dot_product_attention(q, k, v, attn_mask=shared[0])
    np.testing.assert_array_equal(got, by_head(np.broadcast_to(shared[0], (B, H, Lq, Lk))))
    got = fnn.ops.scaled_dot_product_attention(q, k, v, attn_mask=per_batch, mask=km)
    both = (per_batch & km[:, None, :])[:, None]
    np.testing.assert_array_equal(got, by_head(np.broadcast_to(both, (B, H, Lq, Lk))))
    # a (B, H, Lq, Lk) mask: one per problem
    per_pair = rng.random((B, H, Lq, Lk)) < 0.5
    per_pair[..., 0] = True
    got = fnn.ops.scaled_dot_product_attention(q, k, v, attn_mask=per_pair)
    np.testing.assert_array_equal(got, by_head(per_pair))


# ------------------------------------------------------------------ MultiHeadAttention

def _mha_model(backend, Lq, Lv, causal=False, dtype="float64", H=2, key_dim=4):
    q, v, m = fnn.Input((Lq, 6)), fnn.Input((Lv, 5)), fnn.Input((Lq, Lv))
    mha = fnn.MultiHeadAttention(num_heads=H, key_dim=key_dim)
    y = mha(q, v, attention_mask=m, use_causal_mask=causal)
    return fnn.Model([q, v, m], y, seed=0, dtype=dtype, backend=backend), mha


def _mha_data(rng, n, Lq, Lv):
    mask = rng.random((n, Lq, Lv)) < 0.6
    mask[:, :, 0] = True
    return [rng.standard_normal((n, Lq, 6)), rng.standard_normal((n, Lv, 5)),
            mask.astype(np.float64)]


@pytest.mark.parametrize("causal", [False, True])
def test_mha_matches_keras_with_a_query_key_mask(keras64, causal):
    rng = np.random.default_rng(1)
    n, Lq, Lv = 3, 7, 9
    model, mha = _mha_model("fast", Lq, Lv, causal)
    xs = _mha_data(rng, n, Lq, Lv)
    ws = [rng.standard_normal(w.shape) * 0.5 for w in mha.get_weights()]
    mha.set_weights(ws)
    kl = keras64.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    want = kl(xs[0], xs[1], attention_mask=xs[2].astype(bool), use_causal_mask=causal)
    kl.set_weights(ws)
    want = np.asarray(kl(xs[0], xs[1], attention_mask=xs[2].astype(bool),
                         use_causal_mask=causal))
    # Keras 3's MultiHeadAttention returns float32 on its numpy backend even with a float64
    # floatx (today's versions), so float32's tolerance then; a wrong mask is off by ~0.1
    tol = (1e-10, 1e-12) if want.dtype == np.float64 else (1e-5, 2e-6)
    np.testing.assert_allclose(model.predict(xs), want, rtol=tol[0], atol=tol[1])


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_mha_gradients_by_finite_differences(backend):
    rng = np.random.default_rng(2)
    n, Lq, Lv = 2, 5, 6
    model, _ = _mha_model(backend, Lq, Lv, causal=True)
    xs = _mha_data(rng, n, Lq, Lv)
    G = rng.standard_normal((n, Lq, 6))

    def loss():
        return float(np.sum(model.forward(xs, training=False) * G))

    model.zero_grad()
    model.forward(xs, training=True)
    dxs = model.backward(G)
    grads = [g.copy() for g in model.grads]
    eps = 1e-6
    for which in (0, 1):                       # the query and value inputs
        x = xs[which]
        for idx in [(0, 0, 0), (1, 3, 2), (1, Lq - 1 if which == 0 else Lv - 1, 4)]:
            old = x[idx]
            x[idx] = old + eps
            up = loss()
            x[idx] = old - eps
            down = loss()
            x[idx] = old
            assert dxs[which][idx] == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-8)
    params = model.get_weights()
    for wi, idx in [(0, (1, 0, 2)), (4, (2, 1, 3)), (6, (1, 2, 0))]:
        w = params[wi]
        old = w[idx]
        w[idx] = old + eps
        model.set_weights(params)
        up = loss()
        w[idx] = old - eps
        model.set_weights(params)
        down = loss()
        w[idx] = old
        model.set_weights(params)
        flat = grads[wi]
        assert flat.reshape(w.shape)[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-6,
                                                           abs=1e-8)


def test_mha_compiled_matches_numpy_and_threads_bitwise():
    rng = np.random.default_rng(4)
    n, Lq, Lv = 4, 60, 110
    xs = _mha_data(rng, n, Lq, Lv)
    G = rng.standard_normal((n, Lq, 6))
    results = {}
    before = fnn.get_num_threads()
    try:
        for name, backend, threads in (("fast1", "fast", 1), ("fast2", "fast", 2),
                                       ("numpy", "numpy", 1)):
            fnn.set_num_threads(threads)
            model, _ = _mha_model(backend, Lq, Lv, causal=True)
            model.zero_grad()
            out = model.forward(xs, training=True).copy()
            dxs = [d.copy() for d in model.backward(G)]
            results[name] = [out] + dxs[:2] + [g.copy() for g in model.grads]
    finally:
        fnn.set_num_threads(before)
    for a, b in zip(results["fast1"], results["fast2"]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(results["fast1"], results["numpy"]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


def test_mha_step_masks_combine_with_the_query_key_mask():
    """Embedding(mask_zero=True)'s step mask on the keys and an explicit (n, L, L) mask: the
    same outputs as the combination written into the mask by hand, without the step mask."""
    rng = np.random.default_rng(6)
    n, L, vocab = 3, 8, 7
    tokens = rng.integers(1, vocab, size=(n, L))
    tokens[0, 5:] = 0
    tokens[2, 3:] = 0
    mask = rng.random((n, L, L)) < 0.7
    mask[:, :, 0] = True

    def build(mask_zero):
        t, m = fnn.Input((L,)), fnn.Input((L, L))
        e = fnn.Embedding(vocab, 6, mask_zero=mask_zero)(t)
        y = fnn.MultiHeadAttention(num_heads=2, key_dim=3)(e, e, attention_mask=m)
        return fnn.Model([t, m], y, seed=0, dtype="float64")

    by_steps = build(True).predict([tokens.astype(np.float64), mask.astype(np.float64)])
    written = mask & (tokens != 0)[:, None, :]
    by_hand = build(False).predict([tokens.astype(np.float64), written.astype(np.float64)])
    np.testing.assert_array_equal(by_steps, by_hand)
    assert not np.array_equal(by_steps, build(False).predict(
        [tokens.astype(np.float64), mask.astype(np.float64)]))


def test_mha_query_key_mask_round_trips_through_files(tmp_path):
    rng = np.random.default_rng(8)
    model, _ = _mha_model("fast", 4, 5)
    xs = _mha_data(rng, 2, 4, 5)
    model.save(tmp_path / "m.fnn")
    np.testing.assert_array_equal(fnn.load(tmp_path / "m.fnn").predict(xs), model.predict(xs))


def test_mha_query_key_mask_exports_to_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(9)
    model, _ = _mha_model("fast", 4, 5, dtype="float32")
    xs = [a.astype(np.float32) for a in _mha_data(rng, 3, 4, 5)]
    path = fnn.onnx.export(model, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(path), full_check=True)
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = s.run(None, {i.name: a for i, a in zip(s.get_inputs(), xs)})[0]
    np.testing.assert_allclose(got, model.predict(xs), rtol=1e-5, atol=1e-6)
