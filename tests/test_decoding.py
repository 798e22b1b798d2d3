"""Generation with a key/value cache (fastnn/models/decoding.py, generation.py) and its kernel
``attention_decode`` (fastnn/_ext/_decode.pyx, fastnn/backends/numpy_decode.py)."""

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend
from fastnn.models.decoding import Decoder

VOCAB, L = 11, 8
RTOL = {"float64": 1e-10, "float32": 1e-5}


def small_gpt(backend="numpy", dtype="float64", norm_first=True, seed=0, sine=False,
              softmax=True, extra=None):
    inp = fnn.Input((L,))
    h = fnn.Embedding(VOCAB, 16)(inp)
    h = (fnn.SinePositionEncoding() if sine else fnn.PositionalEmbedding(L))(h)
    for _ in range(2):
        h = fnn.TransformerBlock(num_heads=2, key_dim=8, ff_dim=32, causal=True,
                                 norm_first=norm_first)(h)
    if extra is not None:
        h = extra(h)
    h = fnn.LayerNormalization()(h)
    out = fnn.Dense(VOCAB, activation="softmax" if softmax else "linear")(h)
    return fnn.Model(inp, out, seed=seed, backend=backend, dtype=dtype)


def _close(a, b, dtype):
    scale = max(np.abs(b).max(), 1e-30)
    assert np.abs(a - b).max() / scale <= RTOL[dtype], np.abs(a - b).max() / scale


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_decoder_equals_predict_at_every_position(backend, dtype, norm_first, batch):
    model = small_gpt(backend, dtype, norm_first)
    ids = np.random.default_rng(1).integers(0, VOCAB, (batch, L))
    full = model.predict(ids)
    dec = Decoder(model, batch, L)
    for t in range(L):
        _close(dec.step(ids[:, t]), full[:, t], dtype)
    assert dec.position == L
    with pytest.raises(ValueError, match="max_length"):
        dec.step(ids[:, 0])
    dec.reset()
    _close(dec.step(ids[:, 0]), full[:, 0], dtype)


def test_decoder_through_attention_layers_dropout_and_add(backend, dtype):
    """A GPT written with MultiHeadAttention, Add, Dropout and Activation layers."""
    inp = fnn.Input((L,))
    x = fnn.SinePositionEncoding()(fnn.Embedding(VOCAB, 16)(inp))
    a = fnn.MultiHeadAttention(2, 8)(fnn.LayerNormalization()(x), use_causal_mask=True)
    x = fnn.Add()([x, fnn.Dropout(0.3)(a)])
    f = fnn.Dense(16)(fnn.Activation("gelu")(fnn.Dense(32)(x)))
    out = fnn.Dense(VOCAB)(fnn.Add()([x, f]))
    model = fnn.Model(inp, out, seed=2, backend=backend, dtype=dtype)
    ids = np.random.default_rng(3).integers(0, VOCAB, (2, L))
    full = model.predict(ids)
    dec = Decoder(model, 2, L)
    for t in range(L):
        _close(dec.step(ids[:, t]), full[:, t], dtype)


@pytest.mark.parametrize("norm_first", [True, False])
def test_compiled_equals_numpy(dtype, norm_first):
    fast, ref = small_gpt("fast", dtype, norm_first), small_gpt("numpy", dtype, norm_first)
    ids = np.random.default_rng(4).integers(0, VOCAB, (3, L))
    a, b = Decoder(fast, 3, L), Decoder(ref, 3, L)
    for t in range(L):
        _close(a.step(ids[:, t]), b.step(ids[:, t]), dtype)


def test_bitwise_at_1_and_2_threads(dtype, fixed_threads, thread_count):
    model = small_gpt("fast", dtype)
    ids = np.random.default_rng(5).integers(0, VOCAB, (16, L))
    runs = []
    for n in (1, 2):
        thread_count(n)
        dec = Decoder(model, 16, L)
        runs.append(np.stack([dec.step(ids[:, t]) for t in range(L)]))
        runs.append(model.generate(ids[:, :2], 5, temperature=0.8, seed=3))
    assert np.array_equal(runs[0], runs[2]) and np.array_equal(runs[1], runs[3])


def test_reset_reads_the_current_weights(backend):
    model = small_gpt(backend)
    ids = np.arange(L).reshape(1, L) % VOCAB
    dec = Decoder(model, 1, L)
    model.set_weights([w * 1.1 for w in model.get_weights()])
    before = dec.step(ids[:, 0])
    dec.reset()
    after = dec.step(ids[:, 0])
    full = model.predict(ids)[:, 0]
    _close(after, full, "float64")
    assert np.abs(before - full).max() > 1e-6


# ------------------------------------------------------------------------ the kernel

def _reference(q, K, V, scale):
    s = np.einsum("bhd,bhjd->bhj", q.astype(np.float64), K.astype(np.float64)) * scale
    p = np.exp(s - s.max(-1, keepdims=True))
    return np.einsum("bhj,bhjd->bhd", p / p.sum(-1, keepdims=True), V.astype(np.float64))


@pytest.mark.parametrize("B,H,Lmax,D,Dv", [(1, 1, 1, 1, 1), (2, 3, 7, 5, 4), (3, 4, 40, 16, 24)])
def test_attention_decode_against_a_softmax_reference(backend, dtype, B, H, Lmax, D, Dv):
    be, dt = get_backend(backend), np.dtype(dtype)
    rng = np.random.default_rng(6)
    kc, vc = np.zeros((B, H, Lmax, D), dt), np.zeros((B, H, Lmax, Dv), dt)
    K, V = rng.standard_normal((B, H, Lmax, D)), rng.standard_normal((B, H, Lmax, Dv))
    for t in range(Lmax):
        q = rng.standard_normal((B, H, D)).astype(dt)
        out = np.empty((B, H, Dv), dt)
        be.attention_decode(q, K[:, :, t].astype(dt), V[:, :, t].astype(dt), kc, vc, t, 0.3,
                            out)
        assert np.array_equal(kc[:, :, t], K[:, :, t].astype(dt))
        want = _reference(q, kc[:, :, :t + 1], vc[:, :, :t + 1], 0.3)
        np.testing.assert_allclose(out, want, rtol=RTOL[dtype] * 10, atol=RTOL[dtype])


@pytest.mark.parametrize("B,H,Lmax,D,Dv", [(2, 2, 150, 16, 16), (1, 1, 131, 5, 3)])
def test_attention_decode_over_several_chunks(backend, dtype, B, H, Lmax, D, Dv):
    """Past the compiled kernel's 64 keys per chunk (its online softmax rescales between them):
    every position up to 150 against the reference, the chunk edges 63/64/65 and 127/128/129
    among them; keys growing along the cache, so later chunks bring new maxima."""
    be, dt = get_backend(backend), np.dtype(dtype)
    rng = np.random.default_rng(8)
    kc, vc = np.zeros((B, H, Lmax, D), dt), np.zeros((B, H, Lmax, Dv), dt)
    ramp = np.linspace(0.2, 3.0, Lmax)[None, None, :, None]
    K = rng.standard_normal((B, H, Lmax, D)) * ramp
    V = rng.standard_normal((B, H, Lmax, Dv))
    q = rng.standard_normal((B, H, D)).astype(dt)
    for t in range(Lmax):
        out = np.empty((B, H, Dv), dt)
        be.attention_decode(q, K[:, :, t].astype(dt), V[:, :, t].astype(dt), kc, vc, t, 0.5,
                            out)
        want = _reference(q, kc[:, :, :t + 1], vc[:, :, :t + 1], 0.5)
        np.testing.assert_allclose(out, want, rtol=RTOL[dtype] * 10, atol=RTOL[dtype])


DECODE_SPECIALS = {
    # name: (key value at the special position, query value), times BIG: their scores overflow
    "-inf score": (-1.0, 1.0),
    "+inf score": (1.0, 1.0),
    "nan query": (None, float("nan")),
}


@pytest.mark.parametrize("case", sorted(DECODE_SPECIALS))
@pytest.mark.parametrize("where", [0, 5, 70])
def test_attention_decode_special_values_as_the_twin(dtype, case, where):
    """A score that overflows to -inf takes no part, +inf or NaN makes the output NaN, in the
    first chunk or a later one, as the NumPy twin; a row of only -inf scores gives 0."""
    dt = np.dtype(dtype)
    B, H, Lmax, D, Dv = 1, 2, 90, 4, 3
    key, qv = DECODE_SPECIALS[case]
    big = 1e30 if dt == np.float32 else 1e200
    rng = np.random.default_rng(9)
    K = rng.standard_normal((B, H, Lmax, D)).astype(dt)
    V = rng.standard_normal((B, H, Lmax, Dv)).astype(dt)
    q = rng.standard_normal((B, H, D)).astype(dt)
    if key is None:                   # head 0: the special key or query; head 1 stays ordinary
        q[0, 0, 0] = qv
    else:
        K[0, 0, where, 0] = key * big    # the other keys' scores stay finite (big * ~1)
        q[0, 0] = [qv * big] + [0.0] * (D - 1)
    outs = []
    for name in ("fast", "numpy"):
        be = get_backend(name)
        kc, vc = np.zeros((B, H, Lmax, D), dt), np.zeros((B, H, Lmax, Dv), dt)
        got = []
        for t in range(Lmax):
            out = np.empty((B, H, Dv), dt)
            with np.errstate(over="ignore", invalid="ignore"):
                be.attention_decode(q, np.ascontiguousarray(K[:, :, t]),
                                    np.ascontiguousarray(V[:, :, t]), kc, vc, t, 1.0, out)
            got.append(out.copy())
        outs.append(np.stack(got))
    fast, twin = outs
    assert np.array_equal(np.isnan(fast), np.isnan(twin))
    np.testing.assert_allclose(fast, twin, rtol=RTOL[dtype] * 10, atol=RTOL[dtype],
                               equal_nan=True)
    if case == "-inf score" and where == 0:
        assert np.array_equal(fast[0, 0, 0], np.zeros(Dv))    # only a -inf score: 0
    if case == "-inf score":                      # the other keys' softmax, finite
        assert np.isfinite(fast[:, 0, 0]).all()
    if case == "+inf score":
        assert np.isnan(fast[where:, 0, 0]).all() and not np.isnan(fast[:where, 0, 0]).any()
    if case == "nan query":
        assert np.isnan(fast[:, 0, 0]).all()
    assert np.isfinite(fast[:, 0, 1]).all()        # the other head is untouched


def test_attention_decode_against_torch_sdpa(backend):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    be, rng = get_backend(backend), np.random.default_rng(7)
    B, H, Lmax, D = 2, 3, 9, 8
    kc, vc = np.zeros((B, H, Lmax, D)), np.zeros((B, H, Lmax, D))
    for t in range(Lmax):
        q, k, v = (rng.standard_normal((B, H, D)) for _ in range(3))
        out = np.empty((B, H, D))
        be.attention_decode(q, k, v, kc, vc, t, 1 / np.sqrt(D), out)
        want = F.scaled_dot_product_attention(torch.tensor(q)[:, :, None],
                                              torch.tensor(kc[:, :, :t + 1]),
                                              torch.tensor(vc[:, :, :t + 1]))[:, :, 0]
        np.testing.assert_allclose(out, want.numpy(), rtol=1e-12, atol=1e-13)


def test_attention_decode_compiled_equals_numpy_and_is_bitwise_across_threads(
        dtype, fixed_threads, thread_count):
    fast, ref = get_backend("fast"), get_backend("numpy")
    rng, dt = np.random.default_rng(8), np.dtype(dtype)
    B, H, Lmax, D = 64, 8, 300, 32              # large enough for two threads
    q, k, v = (rng.standard_normal((B, H, D)).astype(dt) for _ in range(3))
    base = rng.standard_normal((B, H, Lmax, D)).astype(dt)
    outs = []
    for n, be in ((1, fast), (2, fast), (1, ref)):
        thread_count(n)
        kc, vc, out = base.copy(), base[::-1].copy(), np.empty((B, H, D), dt)
        be.attention_decode(q, k, v, kc, vc, Lmax - 1, 0.2, out)
        outs.append(out)
    assert np.array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[0], outs[2], rtol=RTOL[dtype] * 10, atol=RTOL[dtype])


def _decode_args(**change):
    args = dict(q=np.zeros((2, 3, 4)), k_new=np.zeros((2, 3, 4)), v_new=np.zeros((2, 3, 5)),
                k_cache=np.zeros((2, 3, 6, 4)), v_cache=np.zeros((2, 3, 6, 5)), t=2,
                scale=0.5, out=np.zeros((2, 3, 5)))
    args.update(change)
    return args


_KC = np.zeros((2, 3, 6, 4))
BAD_KERNEL_ARGS = [
    (dict(q=[[0.0]]), TypeError, "q"),
    (dict(q=np.zeros((2, 3, 4), np.int64)), ValueError, "q"),
    (dict(k_new=np.zeros((2, 3, 5))), ValueError, "k_new"),
    (dict(v_new=np.zeros((2, 3, 5), np.float32)), ValueError, "v_new"),
    (dict(k_cache=np.zeros((2, 3, 6, 8))[..., ::2]), ValueError, "k_cache"),
    (dict(v_cache=np.zeros((2, 3, 7, 5))), ValueError, "v_cache"),
    (dict(out=np.zeros((2, 3, 4))), ValueError, "out"),
    (dict(t=6), ValueError, "t"),
    (dict(t=-1), ValueError, "t"),
    (dict(t=1.0), TypeError, "t"),
    (dict(scale=float("nan")), ValueError, "scale"),
    (dict(k_cache=_KC, k_new=_KC[:, :, 0].copy()), None, None),
    (dict(k_cache=_KC, q=_KC[:, :, 1]), ValueError, "C-contiguous"),
    (dict(v_new=None), TypeError, "v_new"),
]


@pytest.mark.parametrize("change,exc,word", BAD_KERNEL_ARGS)
def test_attention_decode_refuses_bad_arguments(backend, change, exc, word):
    args = _decode_args(**change)
    if exc is None:                   # a fine call
        get_backend(backend).attention_decode(**args)
        return
    with pytest.raises(exc, match=word):
        get_backend(backend).attention_decode(**args)


def test_attention_decode_refuses_overlapping_outputs(backend):
    be, kc, vc = get_backend(backend), np.zeros((2, 3, 6, 4)), np.zeros((2, 3, 6, 5))
    with pytest.raises(ValueError, match="out must not overlap v_cache"):
        be.attention_decode(**_decode_args(v_cache=vc, out=vc.reshape(-1)[:30].reshape(2, 3, 5)))
    with pytest.raises(ValueError, match="k_cache must not overlap q"):
        be.attention_decode(**_decode_args(k_cache=kc, q=kc.reshape(-1)[:24].reshape(2, 3, 4)))


# ------------------------------------------------------------------------ generate

def test_greedy_is_deterministic_and_follows_predict(backend):
    model = small_gpt(backend)
    prompt = np.array([[1, 2], [3, 4], [5, 6]])
    out = model.generate(prompt, L - 2, temperature=0)
    assert out.dtype == np.int64 and out.shape == (3, L)
    assert np.array_equal(out[:, :2], prompt)
    assert np.array_equal(out, model.generate(prompt, L - 2, temperature=0))
    for t in range(2, L):                  # argmax of predict on the sequence so far
        ids = np.zeros((3, L), np.int64)
        ids[:, :t] = out[:, :t]
        assert np.array_equal(model.predict(ids)[:, t - 1].argmax(1), out[:, t])


@pytest.mark.parametrize("softmax", [True, False])
def test_sampling_is_reproducible_and_follows_the_distribution(softmax):
    model = small_gpt("fast", "float64", softmax=softmax)
    prompt = np.zeros((400, 1), np.int64)
    a = model.generate(prompt, 1, temperature=1.0, seed=11)
    assert np.array_equal(a, model.generate(prompt, 1, temperature=1.0, seed=11))
    assert not np.array_equal(a, model.generate(prompt, 1, temperature=1.0, seed=12))
    p = model.predict(np.zeros((1, L), np.int64))[0, 0]
    if not softmax:
        p = np.exp(p - p.max()) / np.exp(p - p.max()).sum()
    freq = np.bincount(a[:, 1], minlength=VOCAB) / len(a)
    assert np.abs(freq - p).max() < 0.1
    cold = model.generate(prompt[:20], 3, temperature=1e-6, seed=1)
    assert np.array_equal(cold, model.generate(prompt[:20], 3, temperature=0))


def test_top_k_keeps_the_most_likely_tokens():
    model = small_gpt("fast")
    p = model.predict(np.zeros((1, L), np.int64))[0, 0]
    out = model.generate(np.zeros((300, 1), np.int64), 1, temperature=5.0, top_k=2, seed=0)
    assert set(out[:, 1]) <= set(np.argsort(p)[-2:])
    one = model.generate(np.zeros((5, 1), np.int64), 4, top_k=1, seed=0)
    assert np.array_equal(one, model.generate(np.zeros((5, 1), np.int64), 4, temperature=0))


def test_end_id_repeats_after_it_appears():
    model = small_gpt("fast")
    greedy = model.generate(np.array([[0], [1]]), L - 1, temperature=0)
    end = int(greedy[0, 2])
    out = model.generate(np.array([[0], [1]]), L - 1, temperature=0, end_id=end)
    for row, g in zip(out, greedy):
        hits = np.flatnonzero(g[1:] == end)
        if hits.size:
            k = hits[0] + 1
            assert np.array_equal(row[:k + 1], g[:k + 1]) and (row[k:] == end).all()
        else:
            assert np.array_equal(row, g)


def test_positions_past_the_model_are_refused_unless_they_extend():
    model = small_gpt("numpy")
    model.generate(np.zeros((1, 1), np.int64), L, temperature=0)       # L positions fed
    with pytest.raises(ValueError, match="sequence_length"):
        model.generate(np.zeros((1, 1), np.int64), L + 1, temperature=0)
    sine = small_gpt("fast", sine=True)
    long = sine.generate(np.zeros((2, 3), np.int64), 3 * L, temperature=0)
    assert long.shape == (2, 3 + 3 * L)


def _flatten_model():
    inp = fnn.Input((L,))
    h = fnn.Flatten()(fnn.Embedding(VOCAB, 4)(inp))
    return fnn.Model(inp, fnn.Dense(VOCAB, activation="softmax")(h), backend="numpy")


def _non_causal_model():
    inp = fnn.Input((L,))
    h = fnn.TransformerBlock(num_heads=2, key_dim=4, ff_dim=8)(fnn.Embedding(VOCAB, 8)(inp))
    return fnn.Model(inp, fnn.Dense(VOCAB, activation="softmax")(h), backend="numpy")


def _gru_model():
    inp = fnn.Input((L,))
    h = fnn.GRU(8, return_sequences=True)(fnn.Embedding(VOCAB, 8)(inp))
    return fnn.Model(inp, fnn.Dense(VOCAB, activation="softmax")(h), backend="numpy")


BAD_GENERATE = [
    (dict(prompt=np.zeros((1, 2))), TypeError, "prompt"),
    (dict(prompt=np.array([[1, -1]])), ValueError, "prompt"),
    (dict(prompt=np.array([[VOCAB]])), ValueError, "prompt"),
    (dict(prompt=np.zeros((1, 0), np.int64)), ValueError, "prompt"),
    (dict(prompt=np.zeros(3, np.int64)), ValueError, "prompt"),
    (dict(max_new_tokens=-1), ValueError, "max_new_tokens"),
    (dict(max_new_tokens=2.5), TypeError, "max_new_tokens"),
    (dict(temperature=-0.1), ValueError, "temperature"),
    (dict(temperature="hot"), TypeError, "temperature"),
    (dict(top_k=0), ValueError, "top_k"),
    (dict(end_id=VOCAB), ValueError, "end_id"),
]


@pytest.mark.parametrize("change,exc,word", BAD_GENERATE)
def test_generate_refuses_bad_arguments(change, exc, word):
    args = dict(prompt=np.zeros((1, 1), np.int64), max_new_tokens=2)
    args.update(change)
    with pytest.raises(exc, match=word):
        small_gpt("numpy").generate(**args)


@pytest.mark.parametrize("make,word", [(_flatten_model, "flatten"),
                                       (_non_causal_model, "causal"),
                                       (_gru_model, "gru")])
def test_layers_that_cannot_decode_are_named(make, word):
    model = make()
    with pytest.raises(ValueError, match=word):
        Decoder(model, 1, 2)
    with pytest.raises(ValueError, match=word):
        model.generate(np.zeros((1, 1), np.int64), 2)


def test_max_new_tokens_zero_returns_the_prompt():
    out = small_gpt("numpy").generate(np.array([[1, 2]], np.int32), 0)
    assert out.dtype == np.int64 and np.array_equal(out, [[1, 2]])


def test_decoder_step_refuses_bad_ids(backend):
    dec = Decoder(small_gpt(backend), 2, L)
    with pytest.raises(ValueError, match=r"ids\[1\]"):
        dec.step(np.array([0, VOCAB]))
    with pytest.raises(TypeError, match="ids"):
        dec.step(np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="ids"):
        dec.step(np.array([0, 1, 2]))


def test_bound_kernels_check_their_arrays_at_creation():
    fast = get_backend("fast")
    x, out = np.zeros((2, 4)), np.zeros((2, 3))
    with pytest.raises(ValueError, match="b must be"):
        fast.DenseStep(x, np.zeros((4, 3)), np.zeros(4), 0, 0.0, out)
    with pytest.raises(ValueError, match="out must not overlap x"):
        fast.NormStep(x, np.ones(4), np.zeros(4), 1e-5, x)
    with pytest.raises(ValueError, match="table"):
        fast.AddRowStep(x, np.zeros((3, 4), np.float32), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="ids"):
        fast.EmbedStep(np.zeros(2), np.zeros((5, 4)), None, np.zeros((2, 4)))
    step = fast.AddRowStep(x, np.zeros((3, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="t must be"):
        step.step(3)
    model = small_gpt("fast")
    dec = Decoder(model, 1, 3)
    block = [op for op in dec._ops if getattr(op, "compiled", None) is not None and
             type(op.compiled).__name__ == "BlockStep"][0].compiled
    with pytest.raises(ValueError, match="t must be"):
        block.step(3)
