"""Keras' Attention(dropout) and AdditiveAttention(dropout): dropout on the attention weights
(after the softmax) in training, drawn as MultiHeadAttention's (fnn_attn_keep, one head per
sample). The draw against a pure-Python SplitMix64 written here; forward and gradients against
PyTorch float64 autograd given the same keep pattern (both backends, the returned scores are
the dropped weights as in Keras); threads bitwise; the expectation; finite differences with the
draws replayed; compiled = NumPy over training steps; files continue the stream; bad
arguments."""

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients
from _stream_files import reload_and_train_alike
from fastnn.backends import get_backend
from fastnn.layers.attention import dropout_key

M64 = 2**64 - 1


def keep_of(key, B, Tq, Tv, rate):
    """The documented draw in Python integers: SplitMix64's finalizer over key + the weight's
    index (b Tq + i) Tv + j times the golden ratio, the top 53 bits as a fraction >= rate."""
    out = np.empty((B, Tq, Tv), bool)
    for e in range(B * Tq * Tv):
        z = (key + e * 0x9E3779B97F4A7C15) & M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        z ^= z >> 31
        out.flat[e] = (z >> 11) / 2.0**53 >= rate
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_weights_dropout_draws_the_documented_pattern(backend, dtype):
    B, Tq, Tv, rate, key = 3, 5, 7, 0.35, 0xC0FFEE1234567
    x = np.random.default_rng(0).uniform(0.5, 1.5, size=(B, Tq, Tv)).astype(dtype)
    out = np.empty_like(x)
    get_backend(backend).weights_dropout(x, rate, key, out)
    keep = keep_of(key, B, Tq, Tv, rate)
    assert 0 < keep.sum() < keep.size
    want = np.where(keep, x.astype(np.float64) / (1 - rate), 0.0)
    np.testing.assert_allclose(out, want, rtol=1e-6 if dtype == np.float32 else 1e-15)


def _model(cls, backend, rate=0.3, seed=5, causal=False, scores=False, key=False,
           masked=False, **kw):
    q, v = fnn.Input((4, 3)), fnn.Input((6, 3))
    ins = [q, v]
    if key:
        k = fnn.Input((6, 3))
        ins.append(k)
    layer = cls(dropout=rate, seed=seed, **kw)
    mask = None
    if masked:
        vm = fnn.Input((6,))
        ins.append(vm)
        mask = [None, vm]
    out = layer(ins[:3] if key else ins[:2], mask=mask, return_attention_scores=scores,
                use_causal_mask=causal)
    return fnn.Model(ins, out, seed=0, dtype="float64", backend=backend), layer


def _inputs(seed=1, key=False, masked=False, n=2):
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(n, 4, 3)), rng.normal(size=(n, 6, 3))]
    if key:
        xs.append(rng.normal(size=(n, 6, 3)))
    if masked:
        vm = np.ones((n, 6))
        vm[0, 4:] = 0
        xs.append(vm)
    return xs


KINDS = [(fnn.Attention, dict(score_mode="dot")), (fnn.Attention, dict(score_mode="dot",
                                                                     use_scale=True)),
         (fnn.Attention, dict(score_mode="concat", use_scale=True)),
         (fnn.AdditiveAttention, dict(use_scale=True)), (fnn.AdditiveAttention,
                                                          dict(use_scale=False))]


def _torch_reference(torch, layer, xs, key_given, masked, causal, Z, R, R2):
    weights = [torch.tensor(w, requires_grad=True) for w in layer.get_weights()]
    q = torch.tensor(xs[0], requires_grad=True)
    v = torch.tensor(xs[1], requires_grad=True)
    k = torch.tensor(xs[2], requires_grad=True) if key_given else v
    use_scale = layer.use_scale
    if isinstance(layer, fnn.AdditiveAttention):
        s = weights[0] if use_scale else torch.ones(q.shape[2], dtype=torch.float64)
        S = (s * torch.tanh(q[:, :, None, :] + k[:, None, :, :])).sum(-1)
    elif layer.score_mode == "dot":
        S = q @ k.transpose(1, 2)
        if use_scale:
            S = S * weights[0]
    else:
        c = weights[0] if use_scale else 1.0
        S = weights[-1] * torch.tanh(c * (q[:, :, None, :] + k[:, None, :, :])).sum(-1)
    Tq, Tv = S.shape[1], S.shape[2]
    hidden = torch.zeros(S.shape, dtype=torch.bool)
    if masked:
        hidden = hidden | torch.tensor(xs[-1] == 0)[:, None, :]
    if causal:
        hidden = hidden | torch.triu(torch.ones(Tq, Tv, dtype=torch.bool), 1)
    A = torch.softmax(torch.where(hidden, S - 1e9, S), dim=-1) * torch.tensor(Z)
    O = A @ v
    loss = (O * torch.tensor(R)).sum() + (A * torch.tensor(R2)).sum()
    loss.backward()
    grads = [q.grad, v.grad] + ([k.grad] if key_given else [])
    return O.detach().numpy(), A.detach().numpy(), [g.numpy() for g in grads], \
        [w.grad.numpy() for w in weights]


@pytest.mark.parametrize("cls,kw", KINDS)
@pytest.mark.parametrize("key_given,masked,causal", [(False, False, False),
                                                      (True, True, False),
                                                      (False, True, True)])
@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_matches_pytorch_float64_with_the_same_pattern(backend, cls, kw, key_given, masked,
                                                       causal):
    torch = pytest.importorskip("torch")
    rate = 0.3
    model, layer = _model(cls, backend, rate, causal=causal, scores=True, key=key_given,
                          masked=masked, **kw)
    rng = np.random.default_rng(9)
    model.set_weights([rng.uniform(0.5, 1.5, size=w.shape) for w in model.get_weights()])
    xs = _inputs(key=key_given, masked=masked)
    layer.calls = 7
    out, scores = model.forward(xs, training=True)
    Z = keep_of(dropout_key(layer._mask_seed, 7), 2, 4, 6, rate) / (1 - rate)
    R = rng.normal(size=out.shape)
    R2 = rng.normal(size=scores.shape)
    model.zero_grad()
    dxs = model.backward([R, R2])
    wO, wA, wdx, wdw = _torch_reference(torch, layer, xs, key_given, masked, causal, Z, R, R2)
    for got, want in [(out, wO), (scores, wA)] + list(zip(dxs, wdx)) + list(
            zip(layer._grads, wdw)):
        assert np.abs(got - want).max() <= 1e-10 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("cls,kw", KINDS[::2])
def test_threads_give_the_same_bits(cls, kw):
    runs = []
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(64, 4, 3)).astype(np.float32),
          rng.normal(size=(64, 6, 3)).astype(np.float32)]
    for n in (1, 2):
        q, v = fnn.Input((4, 3)), fnn.Input((6, 3))
        model = fnn.Model([q, v], cls(dropout=0.4, seed=2, **kw)([q, v]), seed=0)
        with fnn.threads(n):
            y = model.forward(xs, training=True)
            dx = model.backward(np.ones_like(y))
        runs.append([y.copy(), *[d.copy() for d in dx], *[g.copy() for g in model.grads]])
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("cls,kw", KINDS[:1] + KINDS[3:4])
def test_training_only_new_draw_each_pass_and_unbiased(backend, cls, kw):
    model, layer = _model(cls, backend, 0.5, **kw)
    xs = _inputs(2)
    a = model.forward(xs, training=True)
    b = model.forward(xs, training=True)
    assert not np.allclose(a, b)
    ref = model.predict(xs)
    plain, _ = _model(cls, backend, 0.0, **kw)
    plain.set_weights(model.get_weights())
    assert np.abs(plain.predict(xs) - ref).max() <= 1e-12
    mean = np.mean([model.forward(xs, training=True) for _ in range(3000)], axis=0)
    # E[Z] = 1: 3000 passes put the mean within a few percent of inference's output
    assert np.abs(mean - ref).max() <= 0.06 * np.abs(ref).max()


@pytest.mark.parametrize("cls,kw", KINDS)
@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_gradients_by_finite_differences_with_the_draws_replayed(backend, cls, kw):
    model, layer = _model(cls, backend, 0.4, key=True, masked=True, causal=True, **kw)
    xs = _inputs(4, key=True, masked=True)
    R = np.random.default_rng(5).normal(size=(2, 4, 3))

    def replay():
        layer.calls = 3
    check_model_gradients(model, xs, R, before_pass=replay,
                          input_skip=None, what=(backend, cls.__name__))


@pytest.mark.parametrize("cls,kw", KINDS[:1] + KINDS[2:4])
def test_compiled_equals_numpy_over_training(cls, kw):
    xs = _inputs(6, n=8)
    y = np.random.default_rng(7).normal(size=(8, 4, 3))
    runs = []
    for backend in ("numpy", "fast"):
        model, _ = _model(cls, backend, 0.3, seed=None, **kw)
        model.compile("mse", optimizer=fnn.SGD(0.1))
        for _ in range(4):
            model.train_on_batch(xs, y)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        assert np.abs(a - b).max() <= 1e-12


@pytest.mark.parametrize("cls,kw", KINDS[:1] + KINDS[3:4])
def test_files_continue_the_stream(tmp_path, cls, kw):
    q, v = fnn.Input((4, 3)), fnn.Input((6, 3))
    h = fnn.Dense(3)(q)
    model = fnn.Model([q, v], cls(dropout=0.3, **kw)([h, v]), seed=3)
    xs = [a.astype(np.float32) for a in _inputs(8)]
    y = np.random.default_rng(9).normal(size=(2, 4, 3)).astype(np.float32)
    layer = reload_and_train_alike(model, xs, y, str(tmp_path / "m.fnn"), cls)
    assert layer.dropout == 0.3 and layer.calls == 3


@pytest.mark.parametrize("cls", [fnn.Attention, fnn.AdditiveAttention])
@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(dropout=1.0), ValueError, r"dropout must be a finite number in \[0.0, 1.0\)"),
    (dict(dropout=-0.1), ValueError, "dropout=-0.1"),
    (dict(dropout="0.1"), TypeError, "dropout"),
    (dict(dropout=float("nan")), ValueError, "dropout"),
    (dict(dropout=0.1, seed=-3), ValueError, "seed"),
    (dict(dropout=0.1, seed=2**64), ValueError, "seed must be below"),
])
def test_bad_arguments_are_refused_by_name(cls, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        cls(**kwargs)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_kernel_refuses_a_bad_rate(backend):
    x = np.ones((1, 2, 2))
    with pytest.raises(ValueError, match="rate"):
        get_backend(backend).weights_dropout(x, 1.0, 0, np.empty_like(x))
