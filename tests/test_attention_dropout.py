"""Dropout on the attention weights: the draw (against a pure-Python SplitMix64 written here),
the tiled kernel against PyTorch float64 autograd given the same keep pattern (forward and
gradients, causal and padding masks, lengths across tiles), compiled = NumPy, threads bitwise,
memory still linear; MultiHeadAttention(dropout, seed) and TransformerBlock(dropout): training
passes, finite differences, the expectation, files, bad arguments."""

import tracemalloc

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients
from fastnn.backends import get_backend
from fastnn.backends.numpy_attention import dropout_keep
from fastnn.layers.attention import dropout_key

M64 = 2**64 - 1


def splitmix_keep(key, index, rate):
    """The documented draw, in Python integers: SplitMix64's finalizer over key + index *
    golden, the top 53 bits as a fraction, kept when >= rate."""
    z = (key + index * 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    z ^= z >> 31
    return (z >> 11) / 2.0**53 >= rate


def test_the_twin_draws_what_the_definition_says():
    dims = (2, 3, 5, 7, 4, 4)
    key, rate = 0xDEADBEEF12345678, 0.37
    keep = dropout_keep(dims, rate, key)
    want = np.array([splitmix_keep(key, e, rate) for e in range(2 * 3 * 5 * 7)]).reshape(
        keep.shape)
    assert np.array_equal(keep, want)
    big = dropout_keep((4, 4, 64, 64, 1, 1), 0.25, 99)
    # 65536 Bernoulli(0.75) draws: within 5 standard deviations (0.0085) of 0.75
    assert abs(big.mean() - 0.75) < 0.0085


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("L", [5, 33, 130])
def test_the_kernel_draws_the_same_pattern(dtype, L):
    """With q = 0 every visible weight is 1/L, and with v the identity out = Z / L: the
    compiled kernel's Z, read off its output, is the twin's."""
    B, H, rate, key = 2, 2, 0.4, 2024
    q = np.zeros((B, H, L, 4), dtype)
    k = np.random.default_rng(0).normal(size=(B, H, L, 4)).astype(dtype)
    v = np.broadcast_to(np.eye(L, dtype=dtype), (B, H, L, L)).copy()
    out = np.empty((B, H, L, L), dtype)
    lse = np.empty((B, H, L), dtype)
    get_backend("fast").attention_forward(q, k, v, None, False, 1.0, out, lse, dropout=rate,
                                          dropout_key=key)
    keep = dropout_keep((B, H, L, L, 4, L), rate, key)
    assert np.array_equal(out > 0, keep)
    np.testing.assert_allclose(out[keep], 1.0 / (L * (1 - rate)), rtol=1e-6)


def _problem(B, H, Lq, Lk, D, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(B, H, L, D)).astype(dtype) for L in (Lq, Lk, Lk, Lq)]


def _run(backend, q, k, v, dout, mask, causal, rate, key):
    be = get_backend(backend)
    out = np.empty(q.shape[:3] + (v.shape[-1],), q.dtype)
    lse = np.empty(q.shape[:3], q.dtype)
    be.attention_forward(q, k, v, mask, causal, None, out, lse, dropout=rate, dropout_key=key)
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    be.attention_backward(q, k, v, out, dout, lse, mask, causal, None, dq, dk, dv,
                          dropout=rate, dropout_key=key)
    return out, dq, dk, dv


CASES = [(1, 1, 1, 1, 4, False, False), (2, 3, 17, 17, 8, True, False),
         (1, 2, 97, 120, 16, False, True), (2, 4, 200, 200, 8, True, True),
         (1, 8, 49, 300, 4, False, True)]


@pytest.mark.parametrize("B,H,Lq,Lk,D,causal,masked", CASES)
@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_matches_pytorch_float64_with_the_same_pattern(B, H, Lq, Lk, D, causal, masked,
                                                       backend):
    torch = pytest.importorskip("torch")
    rate, key = 0.3, 77
    q, k, v, dout = _problem(B, H, Lq, Lk, D)
    mask = None
    if masked:
        mask = np.ones((B, Lk), bool)
        mask[0, Lk // 2:] = False
    got = _run(backend, q, k, v, dout, mask, causal, rate, key)
    Z = torch.tensor(dropout_keep((B, H, Lq, Lk, D, D), rate, key) / (1 - rate))
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    S = tq @ tk.transpose(-1, -2) / np.sqrt(D)
    visible = torch.ones(Lq, Lk, dtype=torch.bool)
    if causal:
        visible = torch.tril(visible)
    visible = visible.expand(B, H, Lq, Lk)
    if mask is not None:
        visible = visible & torch.tensor(mask)[:, None, None, :]
    A = torch.softmax(S.masked_fill(~visible, -torch.inf), dim=-1)
    out = (A * Z) @ tv
    out.backward(torch.tensor(dout))
    want = (out.detach(), tq.grad, tk.grad, tv.grad)
    for g, w in zip(got, want):
        w = w.numpy()
        assert np.abs(g - w).max() <= 1e-10 * max(1.0, np.abs(w).max())


def test_threads_give_the_same_bits():
    args = _problem(2, 4, 150, 190, 16, dtype=np.float32)
    runs = []
    for n in (1, 2):
        with fnn.threads(n):
            runs.append(_run("fast", *args, None, True, 0.2, 5))
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


def test_memory_stays_linear_with_dropout():
    """The draw happens inside the tiles: no (L x L) buffer appears."""
    def peak(L):
        q, k, v, dout = _problem(1, 4, L, L, 64, seed=1, dtype=np.float32)
        tracemalloc.start()
        try:
            _run("fast", q, k, v, dout, None, False, 0.1, 3)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    p1024, p2048 = peak(1024), peak(2048)
    assert p2048 <= 4 * 2048 * 2048 * 4 / 4
    assert 1.6 <= p2048 / p1024 <= 2.4


def _mha_model(backend, rate=0.25, seed=11, causal=False):
    x = fnn.Input((6, 8))
    mha = fnn.MultiHeadAttention(num_heads=2, key_dim=4, dropout=rate, seed=seed)
    return fnn.Model(x, mha(x, x, use_causal_mask=causal), seed=0, dtype="float64",
                     backend=backend)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_mha_drops_in_training_only_and_draws_anew_each_pass(backend):
    model = _mha_model(backend)
    x = np.random.default_rng(0).normal(size=(3, 6, 8))
    a = model.forward(x, training=True)
    b = model.forward(x, training=True)
    assert not np.allclose(a, b)                       # a new draw each training pass
    assert np.array_equal(model.predict(x), model.predict(x))
    plain = _mha_model(backend, rate=0.0)
    plain.set_weights(model.get_weights())
    assert np.abs(model.predict(x) - plain.predict(x)).max() <= 1e-12   # no dropout in inference


def test_mha_dropout_is_unbiased():
    """E[Z] = 1: the mean of many training outputs approaches the inference output."""
    model = _mha_model("fast", rate=0.5)
    x = np.random.default_rng(1).normal(size=(2, 6, 8))
    mean = np.mean([model.forward(x, training=True) for _ in range(4000)], axis=0)
    ref = model.predict(x)
    assert np.abs(mean - ref).max() <= 0.05 * np.abs(ref).max()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_mha_gradients_by_finite_differences(backend, causal):
    model = _mha_model(backend, causal=causal)
    mha = model.layers[-1]
    x = np.random.default_rng(2).normal(size=(2, 6, 8))
    R = np.random.default_rng(3).normal(size=(2, 6, 8))

    def same_draw():
        mha.calls = 5
    check_model_gradients(model, x, R, before_pass=same_draw, what=(backend, causal))


def test_mha_compiled_equals_numpy_over_training():
    x = np.random.default_rng(4).normal(size=(4, 6, 8))
    y = np.random.default_rng(5).normal(size=(4, 6, 8))
    runs = []
    for backend in ("numpy", "fast"):
        model = _mha_model(backend, seed=None)
        model.compile("mse", optimizer=fnn.SGD(0.1))
        for _ in range(3):
            model.train_on_batch(x, y)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        assert np.abs(a - b).max() <= 1e-12


def test_files_keep_the_stream(tmp_path):
    """MultiHeadAttention's and TransformerBlock's draws go on after save and load."""
    inp = fnn.Input((6, 8))
    h = fnn.TransformerBlock(num_heads=2, key_dim=4, ff_dim=16, dropout=0.2)(inp)
    model = fnn.Model(inp, fnn.MultiHeadAttention(2, 4, dropout=0.3)(h, h), seed=3)
    model.compile("mse", optimizer="sgd")
    x = np.random.default_rng(6).normal(size=(4, 6, 8)).astype(np.float32)
    model.train_on_batch(x, x)
    path = str(tmp_path / "m.fnn")
    model.save(path)
    again = fnn.load(path)
    again.compile("mse", optimizer="sgd")
    block = [layer for layer in again.layers if isinstance(layer, fnn.TransformerBlock)][0]
    assert block.attention.dropout == 0.2 and block.attention.calls == 1
    model.train_on_batch(x, x), again.train_on_batch(x, x)
    for a, b in zip(model.get_weights(), again.get_weights()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_transformer_block_drops_attention_weights(backend):
    """TransformerBlock(dropout) passes it to its attention (PyTorch's encoder layer does):
    with the three other Dropouts' draws fixed, the attention's draw still changes the
    output, and finite differences hold with every draw replayed."""
    inp = fnn.Input((5, 8))
    block = fnn.TransformerBlock(num_heads=2, key_dim=4, ff_dim=12, dropout=0.3)
    model = fnn.Model(inp, block(inp), seed=1, dtype="float64", backend=backend)
    x = np.random.default_rng(7).normal(size=(2, 5, 8))

    def replay(attention_calls=2):
        for d in block._drops:
            d.calls = 4
        block.attention.calls = attention_calls
    replay(2)
    a = model.forward(x, training=True)
    replay(3)
    b = model.forward(x, training=True)
    assert not np.allclose(a, b)
    R = np.random.default_rng(8).normal(size=a.shape)
    # the key bias's gradient is exactly 0 (a shift of every score of a query); the
    # differences of this O(10) loss carry ~5e-9 of rounding there: tol 1e-5 of the 1e-3 floor
    check_model_gradients(model, x, R, tol=1e-5, before_pass=replay, what=backend)


def test_dropout_key_mixes_seed_and_pass():
    keys = {dropout_key(s, c) for s in range(20) for c in range(20)}
    assert len(keys) == 400 and all(0 <= k < 2**64 for k in keys)


@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(dropout=1.0), ValueError, r"dropout must be a finite number in \[0.0, 1.0\)"),
    (dict(dropout=-0.1), ValueError, "dropout"),
    (dict(dropout="0.1"), TypeError, "dropout"),
    (dict(dropout_key=-1), ValueError, "dropout_key"),
    (dict(dropout_key=2**64), ValueError, "dropout_key must be below 2\\*\\*64"),
    (dict(dropout_key=1.5), TypeError, "dropout_key"),
])
@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_bad_dropout_arguments_are_refused_by_name(backend, kwargs, exc, pattern):
    q, k, v, _ = _problem(1, 1, 3, 3, 2)
    out, lse = np.empty_like(q), np.empty(q.shape[:3])
    with pytest.raises(exc, match=pattern):
        get_backend(backend).attention_forward(q, k, v, None, False, None, out, lse, **kwargs)


@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(dropout=1.0), ValueError, "dropout"),
    (dict(dropout=0.1, seed=-3), ValueError, "seed"),
    (dict(dropout=0.1, seed=2**64), ValueError, "seed must be below"),
])
def test_bad_layer_arguments_are_refused_by_name(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fnn.MultiHeadAttention(2, 4, **kwargs)
