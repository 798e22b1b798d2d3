"""Keras' Dot, UnitNormalization, Attention and AdditiveAttention (fastnn/layers/dot.py,
fastnn/layers/score_attention.py): Keras 3 as the oracle on the same weights (outputs and
attention scores, with masks and the causal mask), PyTorch float64 autograd of the same
formulas for the gradients, finite differences through models on both backends, the compiled
kernels against their NumPy twins and at 1 and 2 threads, bad inputs, files, ONNX, learning."""

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend
from fastnn.layers import layer_from_config
from _finite_differences import check_model_gradients

# Keras' own rsqrt of a zero norm warns (its result is then capped, as fastnn's)
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")

BACKENDS = ["fast", "numpy"]
FAST, NP = get_backend("fast"), get_backend("numpy")
VARIANTS = [("Attention", {}), ("Attention", {"use_scale": True}),
            ("Attention", {"score_mode": "concat"}),
            ("Attention", {"score_mode": "concat", "use_scale": True}),
            ("AdditiveAttention", {}), ("AdditiveAttention", {"use_scale": False})]


def _weights_for(layer, rng):
    return [rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()]


def _attention_model(name, kw, backend, dtype, key=True, masks=True, causal=False,
                     scores=False, Tq=3, Tv=5, dim=4, dv=3):
    q, v = fnn.Input((Tq, dim)), fnn.Input((Tv, dv))
    inputs = [q, v]
    if key:
        inputs.append(fnn.Input((Tv, dim)))
    mask_inputs = [fnn.Input((Tq,)), fnn.Input((Tv,))] if masks else []
    layer = getattr(fnn, name)(**kw)
    out = layer(inputs, mask=mask_inputs or None, return_attention_scores=scores,
                use_causal_mask=causal)
    if scores:
        out = fnn.Concatenate()(out)
    return fnn.Model(inputs + mask_inputs, out, backend=backend, dtype=dtype, seed=0), layer


def _data(rng, n=4, Tq=3, Tv=5, dim=4, dv=3, key=True, masks=True, dtype=np.float64):
    xs = [rng.standard_normal((n, Tq, dim)), rng.standard_normal((n, Tv, dv))]
    if key:
        xs.append(rng.standard_normal((n, Tv, dim)))
    if masks:
        qm = np.ones((n, Tq))
        qm[1, -1] = 0
        vm = np.ones((n, Tv))
        vm[0, -2:] = 0
        vm[2, :] = 0                               # a sample that sees no value at all
        xs += [qm, vm]
    return [x.astype(dtype) for x in xs]


# ------------------------------------------------------------------ Keras as the oracle
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, kw", VARIANTS)
@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_keras(keras, backend, name, kw, causal):
    rng = np.random.default_rng(0)
    xs = _data(rng, dtype=np.float32)
    if name == "Attention" and kw.get("score_mode") != "concat":
        xs[0] *= 0.5
    model, layer = _attention_model(name, kw, backend, "float32", causal=causal, scores=True)
    layer.set_weights(_weights_for(layer, rng))
    ref = getattr(keras.layers, name)(**kw)
    qm, vm = xs[3] != 0, xs[4] != 0
    ref(xs[:3], mask=[qm, vm])
    ref.set_weights(layer.get_weights())
    want, want_scores = ref(xs[:3], mask=[qm, vm], return_attention_scores=True,
                            use_causal_mask=causal)
    got = model.predict(xs)
    assert np.abs(got[..., :3] - np.asarray(want)).max() <= 2e-6
    assert np.abs(got[..., 3:] - np.asarray(want_scores)).max() <= 2e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_attention_without_key_and_masks_matches_keras(keras, backend):
    rng = np.random.default_rng(1)
    q, v = (rng.standard_normal((3, L, 6)).astype(np.float32) for L in (4, 7))
    for name, kw in VARIANTS:
        model, layer = _attention_model(name, kw, backend, "float32", key=False, masks=False,
                                        Tq=4, Tv=7, dim=6, dv=6)
        layer.set_weights(_weights_for(layer, rng))
        ref = getattr(keras.layers, name)(**kw)
        ref([q, v])
        ref.set_weights(layer.get_weights())
        assert np.abs(model.predict([q, v]) - np.asarray(ref([q, v]))).max() <= 2e-6


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shapes, axes, normalize", [
    (((5,), (5,)), 1, False), (((5,), (5,)), -1, True), (((3, 4), (5, 4)), 2, False),
    (((3, 4), (3, 5)), (1, 1), True), (((3, 4), (4, 5)), (2, 1), False),
    (((4,), (4, 6)), (1, 1), False), (((2, 3, 4), (3, 5)), (2, 1), True),
    (((3, 4), (4,)), (-1, -1), False)])
def test_dot_matches_keras(keras, backend, shapes, axes, normalize):
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((6, *s)).astype(np.float32) for s in shapes]
    xs[0][0] = 0.0                                  # a zero vector: Keras' epsilon rule
    inputs = [fnn.Input(s) for s in shapes]
    model = fnn.Model(inputs, fnn.Dot(axes, normalize=normalize)(inputs), backend=backend)
    want = np.asarray(keras.layers.Dot(axes, normalize=normalize)(xs))
    assert model.output_shape == want.shape[1:]
    assert np.abs(model.predict(xs) - want).max() <= 2e-6 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, axis", [((7,), -1), ((4, 5), -1), ((4, 5), 1),
                                         ((3, 4, 5), [1, 2]), ((3, 4, 5), [-1, 1])])
def test_unit_normalization_matches_keras(keras, backend, shape, axis):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, *shape)).astype(np.float32)
    x[0] = 0.0
    x[1] *= 1e-20                                   # below the cap: Keras' x / 1e-12
    model = fnn.Sequential([fnn.UnitNormalization(axis=axis)], input_shape=shape,
                           backend=backend)
    want = np.asarray(keras.layers.UnitNormalization(axis=axis)(x))
    assert np.allclose(model.predict(x), want, rtol=2e-6, atol=1e-7)


# ------------------------------------------------------------------ PyTorch float64 gradients
def _torch_attention(torch, name, kw, weights, q, v, k, qm, vm, causal):
    """Keras' formulas in PyTorch (the -1e9 offset included)."""
    w = [torch.tensor(a, requires_grad=True) for a in weights]
    if name == "Attention" and kw.get("score_mode", "dot") == "dot":
        S = q @ k.transpose(1, 2)
        if kw.get("use_scale"):
            S = S * w[0]
    elif name == "Attention":
        inner = q[:, :, None, :] + k[:, None, :, :]
        if kw.get("use_scale"):
            inner = w[0] * inner
        S = w[-1] * torch.tanh(inner).sum(-1)
    else:
        t = torch.tanh(q[:, :, None, :] + k[:, None, :, :])
        S = (w[0] * t).sum(-1) if kw.get("use_scale", True) else t.sum(-1)
    hidden = (vm == 0)[:, None, :].expand_as(S)
    if causal:
        hidden = hidden | torch.triu(torch.ones(S.shape[1:], dtype=torch.bool), 1)
    S = torch.where(hidden, S - 1e9, S)
    A = torch.softmax(S, -1)
    O = torch.where(qm[..., None] != 0, A @ v, torch.zeros(()).double())
    return O, A, w


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, kw", VARIANTS)
def test_gradients_match_torch(backend, name, kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    xs = _data(rng)
    xs[4][2] = 1.0                                  # (all-masked rows: no gradient to test)
    for causal in (False, True):
        model, layer = _attention_model(name, kw, backend, "float64", causal=causal,
                                        scores=True)
        weights = _weights_for(layer, rng)
        layer.set_weights(weights)
        R = rng.standard_normal((4, 3, 8))
        model.zero_grad()
        model.forward(xs, training=True)
        dxs = model.backward(R)
        tq, tv, tk = (torch.tensor(x, requires_grad=True) for x in xs[:3])
        O, A, w = _torch_attention(torch, name, kw, weights, tq, tv, tk, torch.tensor(xs[3]),
                                   torch.tensor(xs[4]), causal)
        Rt = torch.tensor(R)
        ((O * Rt[..., :3]).sum() + (A * Rt[..., 3:]).sum()).backward()
        for got, t in zip(dxs[:3], (tq, tv, tk)):
            want = t.grad.numpy()
            assert np.abs(got - want).max() <= 1e-10 * max(1.0, np.abs(want).max())
        for got, t in zip(model.grads, w):
            want = t.grad.numpy()
            assert np.abs(got - want).max() <= 1e-10 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("backend", BACKENDS)
def test_dot_and_unit_normalization_gradients_match_torch(backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    a, b = fnn.Input((3, 4)), fnn.Input((3, 5))
    out = fnn.Dot((1, 1), normalize=True)([fnn.UnitNormalization(axis=[1, 2])(a), b])
    model = fnn.Model([a, b], out, backend=backend, dtype="float64")
    xa, xb = rng.standard_normal((4, 3, 4)), rng.standard_normal((4, 3, 5))
    R = rng.standard_normal((4, 4, 5))
    model.forward([xa, xb], training=True)
    dxa, dxb = model.backward(R)
    ta, tb = torch.tensor(xa, requires_grad=True), torch.tensor(xb, requires_grad=True)
    u = ta / ta.pow(2).sum((1, 2), keepdim=True).sqrt()
    un = u / u.pow(2).sum(1, keepdim=True).sqrt()
    bn = tb / tb.pow(2).sum(1, keepdim=True).sqrt()
    (torch.einsum("nki,nkj->nij", un, bn) * torch.tensor(R)).sum().backward()
    assert np.abs(dxa - ta.grad.numpy()).max() <= 1e-10 * np.abs(ta.grad.numpy()).max()
    assert np.abs(dxb - tb.grad.numpy()).max() <= 1e-10 * np.abs(tb.grad.numpy()).max()


# ------------------------------------------------------------------ finite differences
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, kw", VARIANTS)
def test_gradients_match_finite_differences(backend, name, kw):
    rng = np.random.default_rng(6)
    q, v = fnn.Input((3, 4)), fnn.Input((5, 3))
    qm, vm = fnn.Input((3,)), fnn.Input((5,))
    layer = getattr(fnn, name)(**kw)
    h = fnn.Dense(4, activation="tanh")(v)
    out = layer([fnn.Dense(4)(q), fnn.UnitNormalization()(v), h], mask=[qm, vm],
                use_causal_mask=True, return_attention_scores=True)
    out = fnn.Dot(axes=(1, 1))([out[0], fnn.Dense(2)(fnn.Reshape((3, 5))(
        fnn.Dense(15)(fnn.Flatten()(out[1]))))])
    model = fnn.Model([q, v, qm, vm], out, backend=backend, dtype="float64", seed=0)
    layer.set_weights(_weights_for(layer, rng))
    xs = _data(rng, dv=3)
    del xs[2]
    xs[3][2] = 1.0
    check_model_gradients(model, xs, rng.standard_normal((4, 3, 2)),
                          input_skip=lambda idx: len(idx) == 2)     # the masks: 0 or 1


# ------------------------------------------------------------------ kernels, threads
def _kernel_calls(dtype, rng):
    B, Tq, Tv, D = 8, 33, 41, 24
    q = rng.standard_normal((B, Tq, D)).astype(dtype)
    k = rng.standard_normal((B, Tv, D)).astype(dtype)
    S = rng.standard_normal((B, Tq, Tv)).astype(dtype) * 4
    vm = (rng.random((B, Tv)) > 0.3).astype(np.uint8)
    outer = rng.standard_normal(D).astype(dtype)
    q[0, 1, 2], k[1, 2, 3] = 300, -300        # |2 * 0.7 x| > 300: those rows take libm's tanh
    x = rng.standard_normal((700, 200)).astype(dtype)
    x[3] = 0

    def run(be):
        out = {}
        out["mm"] = np.empty((B, Tq, Tv), dtype)
        be.batched_matmul(q, k, out["mm"], trans_b=True, alpha=0.5)
        out["mmT"] = np.ones((B, D, Tv), dtype)
        be.batched_matmul(q, S, out["mmT"], trans_a=True, beta=2.0)
        out["sm"] = np.empty_like(S)
        be.masked_softmax(S, vm, True, out["sm"])
        out["smb"] = np.empty((B * Tq, Tv), dtype)
        be.softmax_backward(out["sm"].reshape(-1, Tv), S.reshape(-1, Tv), out["smb"])
        out["un"], out["inv"] = np.empty_like(x), np.empty(len(x), dtype)
        be.unit_norm_forward(x, 1e-12, out["un"], out["inv"])
        out["unb"] = np.empty_like(x)
        be.unit_norm_backward(out["un"], out["inv"], 1e-12, x[::-1].copy(), out["unb"])
        out["add"] = np.empty((B, Tq, Tv), dtype)
        be.additive_scores(q, k, 0.7, outer, out["add"])
        dq, dk = np.empty_like(q), np.empty_like(k)
        do, di = np.empty((B, D), dtype), np.empty(B, dtype)
        be.additive_scores_backward(q, k, 0.7, outer, S, dq, dk, do, di)
        out.update(dq=dq, dk=dk, do=do, di=di)
        return out
    return run


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_match_numpy_twins_and_threads_bitwise(dtype):
    run = _kernel_calls(dtype, np.random.default_rng(7))
    want = run(NP)
    before = fnn.get_num_threads()
    try:
        fnn.set_num_threads(1)
        one = run(FAST)
        fnn.set_num_threads(2)
        two = run(FAST)
    finally:
        fnn.set_num_threads(before)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for key in want:
        assert one[key].tobytes() == two[key].tobytes(), key
        scale = max(1.0, np.abs(want[key]).max())
        assert np.abs(one[key] - want[key]).max() <= tol * scale, key


def test_empty_products_are_zero():
    """k = 0: out := 0 (beta 0, NaN in out ignored) or beta out, on both backends."""
    for be in (FAST, NP):
        out = np.full((2, 3, 4), np.nan)
        be.batched_matmul(np.ones((2, 3, 0)), np.ones((2, 0, 4)), out)
        assert not out.any()
        out = np.full((2, 3, 4), 2.0)
        be.batched_matmul(np.ones((2, 3, 0)), np.ones((2, 0, 4)), out, beta=0.5)
        assert (out == 1.0).all()


def test_model_threads_bitwise_and_backends_agree():
    rng = np.random.default_rng(8)
    xs = _data(rng, n=64, Tq=20, Tv=30, dim=16, dv=8)
    R = rng.standard_normal((64, 20, 8 + 30))
    results = {}
    for backend, threads in (("fast", 1), ("fast", 2), ("numpy", 1)):
        fnn.set_num_threads(threads)
        got = []
        for name, kw in VARIANTS:
            model, layer = _attention_model(name, kw, backend, "float64", causal=True,
                                            scores=True, Tq=20, Tv=30, dim=16, dv=8)
            layer.set_weights(_weights_for(layer, np.random.default_rng(9)))
            model.zero_grad()
            got.append(model.forward(xs, training=True).copy())
            got.extend(d.copy() for d in model.backward(R)[:3])
            got.extend(g.copy() for g in model.grads)
        results[(backend, threads)] = got
    fnn.set_num_threads(2)
    for a, b, c in zip(results[("fast", 1)], results[("fast", 2)], results[("numpy", 1)]):
        assert a.tobytes() == b.tobytes()
        assert np.abs(a - c).max() <= 1e-11 * max(1.0, np.abs(c).max())


# ------------------------------------------------------------------ files, configs, ONNX
def test_configs_and_files_round_trip(tmp_path):
    rng = np.random.default_rng(10)
    xs = _data(rng, dtype=np.float32)
    for i, (name, kw) in enumerate(VARIANTS):
        model, layer = _attention_model(name, kw, "fast", "float32", causal=True, scores=True)
        layer.set_weights(_weights_for(layer, rng))
        model.save(tmp_path / f"m{i}.fnn")
        loaded = fnn.load(tmp_path / f"m{i}.fnn")
        assert loaded.predict(xs).tobytes() == model.predict(xs).tobytes()
        again = [lay for lay in loaded.layers if type(lay) is type(layer)][0]
        assert again.get_config() == layer.get_config()
    a, b = fnn.Input((3, 4)), fnn.Input((4, 5))
    dot = fnn.Model([a, b], fnn.Dot((2, 1), normalize=True)(
        [fnn.UnitNormalization(axis=[1, 2])(a), b]), seed=0)
    dot.save(tmp_path / "dot.fnn")
    xd = [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5))]
    assert fnn.load(tmp_path / "dot.fnn").predict(xd).tobytes() == dot.predict(xd).tobytes()
    for layer in (fnn.Dot((2, 1), True), fnn.UnitNormalization([1, -1])):
        assert layer_from_config(layer.get_config()).get_config() == layer.get_config()


def test_onnx_export_refuses_by_name(tmp_path):
    pytest.importorskip("onnx")
    q, v = fnn.Input((3, 4)), fnn.Input((5, 4))
    for layer in (fnn.Attention(), fnn.AdditiveAttention(), fnn.Dot(axes=2)):
        model = fnn.Model([q, v], layer([q, v]))
        with pytest.raises(ValueError, match=f"{type(layer).__name__} layer .* has no ONNX"):
            fnn.onnx.export(model, tmp_path / "a.onnx")
    model = fnn.Sequential([fnn.UnitNormalization(), fnn.Dense(2)], input_dim=3)
    with pytest.raises(ValueError, match="UnitNormalization layer .* has no ONNX"):
        fnn.onnx.export(model, tmp_path / "u.onnx")
    assert not (tmp_path / "a.onnx").exists() and not (tmp_path / "u.onnx").exists()


# ------------------------------------------------------------------ bad inputs
def _call(layer, shapes, **kw):
    inputs = [fnn.Input(s) for s in shapes]
    return layer(inputs, **kw)


BAD = [
    (lambda: fnn.Attention(score_mode="general"), ValueError, "score_mode=.general"),
    (lambda: fnn.Attention(dropout=1.0), ValueError, "dropout=1.0"),
    (lambda: fnn.AdditiveAttention(dropout=2.0), ValueError, "dropout"),
    (lambda: fnn.Attention(use_scale="yes"), TypeError, "use_scale"),
    (lambda: fnn.Attention(seed=-1), ValueError, "seed"),
    (lambda: _call(fnn.Attention(), [(3, 4), (5, 6)]), ValueError, "query and key"),
    (lambda: _call(fnn.Attention(), [(3, 4), (5, 6), (6, 4)]), ValueError, "same number of"),
    (lambda: _call(fnn.AdditiveAttention(), [(3, 4), (5, 4), (5, 5)]), ValueError,
     "query and key"),
    (lambda: _call(fnn.Attention(), [(3, 4)]), ValueError, "inputs="),
    (lambda: _call(fnn.Attention(), [(4,), (4,)]), ValueError, "query must be"),
    (lambda: fnn.Attention()([fnn.Input((3, 4)), fnn.Input((5, 4))], mask=[fnn.Input((4,)),
                                                                          None]),
     ValueError, r"query_mask must have shape \(batch, 3\).*\(None, 4\)"),
    (lambda: fnn.Attention()([fnn.Input((3, 4)), fnn.Input((5, 4))],
                             mask=[None, fnn.Input((5, 2))]),
     ValueError, r"value_mask must have shape \(batch, 5\)"),
    (lambda: fnn.Attention()([fnn.Input((3, 4)), fnn.Input((5, 4))], mask="x"), ValueError,
     "mask=.x"),
    (lambda: _call(fnn.Attention(), [(3, 4), (5, 4)], use_causal_mask=1), TypeError,
     "use_causal_mask"),
    (lambda: fnn.Dot(axes="1"), TypeError, "axes='1'"),
    (lambda: fnn.Dot(axes=(1, 2, 3)), ValueError, r"axes=\(1, 2, 3\)"),
    (lambda: fnn.Dot(axes=(1, 1), normalize=1), TypeError, "normalize"),
    (lambda: _call(fnn.Dot(axes=1), [(3,), (4,)]), ValueError, "lengths 3 and 4"),
    (lambda: _call(fnn.Dot(axes=0), [(3,), (3,)]), ValueError, "axes=0"),
    (lambda: _call(fnn.Dot(axes=3), [(3,), (3,)]), ValueError, "axes=3"),
    (lambda: _call(fnn.Dot(axes=1), [(3,), (3,), (3,)]), ValueError, "exactly two"),
    (lambda: fnn.UnitNormalization(axis=[]), ValueError, "axis"),
    (lambda: fnn.UnitNormalization(axis=1.5), TypeError, "axis"),
    (lambda: fnn.Sequential([fnn.UnitNormalization(axis=2)], input_dim=3), ValueError,
     r"axis=\[2\]"),
    (lambda: fnn.Sequential([fnn.UnitNormalization(axis=[1, -1])], input_dim=3), ValueError,
     "distinct"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_inputs_are_refused(case):
    make, error, match = BAD[case]
    with pytest.raises(error, match=match):
        make()


def test_a_second_call_must_match():
    layer = fnn.Attention()
    q, v = fnn.Input((3, 4)), fnn.Input((5, 4))
    layer([q, v])
    with pytest.raises(ValueError, match="second call must match"):
        layer([q, v], use_causal_mask=True)


# ------------------------------------------------------------------ learning
@pytest.mark.parametrize("name, kw", [("Attention", {"use_scale": True}),
                                      ("AdditiveAttention", {})])
def test_learns_a_key_value_lookup(name, kw):
    """Each sample holds 6 (key, value) pairs: a one-hot key among 6 and a number; the query
    is one of the keys, the target its value. Without attention to the matching pair the best
    guess is the mean (MSE ~ the values' variance, 1)."""
    rng = np.random.default_rng(11)
    n, T = 1024, 6
    keys = np.stack([np.eye(T)[rng.permutation(T)] for _ in range(n)])
    vals = rng.standard_normal((n, T, 1))
    pick = rng.integers(0, T, n)
    query = keys[np.arange(n), pick][:, None, :]
    target = vals[np.arange(n), pick]
    q, k, v = fnn.Input((1, T)), fnn.Input((T, T)), fnn.Input((T, 1))
    qp, kp = fnn.Dense(8)(q), fnn.Dense(8)(k)
    out = fnn.Flatten()(getattr(fnn, name)(**kw)([qp, v, kp]))
    model = fnn.Model([q, k, v], out, seed=0)
    model.compile("mse", fnn.Adam(learning_rate=0.02))
    model.fit([query, keys, vals], target, epochs=40, batch_size=64, verbose=0)
    mse = float(np.mean((model.predict([query, keys, vals]) - target) ** 2))
    assert mse < 0.05, mse


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_masks_of_the_inputs_count_as_masks(backend):
    """Embedding(mask_zero=True) on the query and value: the same as the mask tensors (Keras
    takes an input's _keras_mask when mask= is not given); the output keeps the query's mask."""
    rng = np.random.default_rng(12)
    ids_q, ids_v = rng.integers(1, 9, (5, 4)), rng.integers(1, 9, (5, 6))
    ids_q[0, -1] = 0
    ids_v[1, -3:] = 0
    results = []
    for explicit in (False, True):
        iq, iv = fnn.Input((4,)), fnn.Input((6,))
        embs = [fnn.Embedding(9, 3, mask_zero=not explicit) for _ in range(2)]
        masks = [fnn.Input((4,)), fnn.Input((6,))] if explicit else []
        layer = fnn.AdditiveAttention()
        att = layer([embs[0](iq), embs[1](iv)], mask=masks or None)
        pooled = fnn.GlobalAveragePooling1D()(att)
        model = fnn.Model([iq, iv, *masks], pooled, backend=backend, seed=0, dtype="float64")
        for i, e in enumerate(embs):
            e.set_weights([np.random.default_rng(20 + i).standard_normal((9, 3))])
        layer.set_weights([np.array([0.5, -1.0, 2.0])])
        xs = [ids_q, ids_v] + ([ids_q != 0, ids_v != 0] if explicit else [])
        results.append(model.predict([x.astype(np.float64) for x in xs]))
    # the masked query's zero row is averaged out only where the step mask passed on
    att_rows = results[1] * 4                      # explicit: the mean over all 4 steps
    assert np.allclose(results[0][1:], results[1][1:], rtol=1e-12)
    assert np.allclose(results[0][0] * 3, att_rows[0], rtol=1e-12)


CALL_BAD = [
    ({"input_roles": ["v", "q"]}, "input_roles"),
    ({"input_roles": ["q", "v", "vm", "k"]}, "input_roles"),
    ({"input_roles": ["q", "v"], "use_causal_mask": "yes"}, "use_causal_mask"),
    ({"input_roles": ["q", "v"], "extra": 1}, "extra"),
    ("qv", "call must be a dict"),
]


@pytest.mark.parametrize("call, match", CALL_BAD)
def test_bad_call_records_in_configs_are_refused(call, match):
    config = fnn.Attention().get_config()
    config["call"] = call
    with pytest.raises((ValueError, TypeError), match=match):
        layer_from_config(config)


@pytest.mark.parametrize("backend", BACKENDS)
def test_self_attention_on_one_tensor(backend):
    """layer([x, x]): the query, value and key are one tensor, whose gradient sums all three."""
    rng = np.random.default_rng(13)
    for name, kw in VARIANTS:
        x = fnn.Input((5, 4))
        h = fnn.Dense(4, activation="tanh")(x)
        layer = getattr(fnn, name)(**kw)
        model = fnn.Model(x, layer([h, h], use_causal_mask=True), backend=backend,
                          dtype="float64", seed=0)
        layer.set_weights(_weights_for(layer, rng))
        check_model_gradients(model, rng.standard_normal((3, 5, 4)),
                              rng.standard_normal((3, 5, 4)), what=name)
