"""MultiHeadAttention (fastnn/layers/attention.py): PyTorch parity in float64 (forward and every
gradient), the compiled backend against the NumPy one, finite differences, threads, bad inputs
and model files."""

import numpy as np
import pytest

import fastnn as fnn

BACKENDS = ["fast", "numpy"]
KD = 4                     # key_dim: torch's head width, so embed_dim = 4 * heads


def _model(backend, H, Lq, Lv, dims, kind, use_mask, causal, dtype="float64", seed=0):
    """A functional model around one MHA; ``dims`` = (dq, dv, dk). kind "self": mha(x, x);
    "cross": mha(q, v, k) with three inputs."""
    dq, dv, dk = dims
    mha = fnn.MultiHeadAttention(num_heads=H, key_dim=KD, value_dim=dq // H)
    if kind == "self":
        x = fnn.Input((Lq, dq))
        inputs = [x]
        args = (x, x)
    else:
        q, v, k = fnn.Input((Lq, dq)), fnn.Input((Lv, dv)), fnn.Input((Lv, dk))
        inputs = [q, v, k]
        args = (q, v, k)
    mask = None
    if use_mask:
        mask = fnn.Input((Lv,))
        inputs.append(mask)
    y = mha(*args, attention_mask=mask, use_causal_mask=causal)
    model = fnn.Model(inputs if len(inputs) > 1 else inputs[0], y, seed=seed, dtype=dtype,
                      backend=backend)
    return model, mha


def _data(rng, n, H, Lq, Lv, dims, kind, use_mask):
    dq, dv, dk = dims
    if kind == "self":
        arrays = [rng.standard_normal((n, Lq, dq))]
    else:
        arrays = [rng.standard_normal((n, Lq, dq)), rng.standard_normal((n, Lv, dv)),
                  rng.standard_normal((n, Lv, dk))]
    mask = None
    if use_mask:
        mask = rng.random((n, Lv)) < 0.7
        mask[:, 0] = True                      # every query sees a key (torch gives NaN rows)
        arrays.append(mask.astype(np.float64))
    return arrays, mask


def _set_random_weights(mha, rng):
    ws = [rng.standard_normal(w.shape) * 0.5 for w in mha.get_weights()]
    mha.set_weights(ws)
    return ws


def _run(model, arrays, G):
    model.zero_grad()
    out = model.forward(arrays if len(arrays) > 1 else arrays[0], training=True)
    dx = model.backward(G)
    dx = dx if isinstance(dx, list) else [dx]
    return out.reshape(G.shape), dx, [g.copy() for g in model.grads]


def _torch_reference(ws, arrays, mask, H, kind, causal, G):
    torch = pytest.importorskip("torch")
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = ws
    dq, E = Wq.shape[0], Wq.shape[1] * Wq.shape[2]
    dk, dv = Wk.shape[0], Wv.shape[0]
    mha = torch.nn.MultiheadAttention(E, H, batch_first=True, kdim=dk, vdim=dv,
                                      dtype=torch.float64)
    T = lambda a: torch.tensor(a, dtype=torch.float64)           # noqa: E731
    with torch.no_grad():
        if mha._qkv_same_embed_dim:
            mha.in_proj_weight.copy_(T(np.concatenate([Wq.reshape(dq, E).T, Wk.reshape(dk, E).T,
                                                       Wv.reshape(dv, E).T])))
        else:
            mha.q_proj_weight.copy_(T(Wq.reshape(dq, E).T))
            mha.k_proj_weight.copy_(T(Wk.reshape(dk, E).T))
            mha.v_proj_weight.copy_(T(Wv.reshape(dv, E).T))
        mha.in_proj_bias.copy_(T(np.concatenate([bq.ravel(), bk.ravel(), bv.ravel()])))
        mha.out_proj.weight.copy_(T(Wo.reshape(E, -1).T))
        mha.out_proj.bias.copy_(T(bo))
    if kind == "self":
        x = T(arrays[0]).requires_grad_()
        q = k = v = x
        leaves = [x]
    else:
        q, v, k = (T(a).requires_grad_() for a in arrays[:3])
        leaves = [q, v, k]
    Lq, Lv = q.shape[1], v.shape[1]
    attn_mask = torch.triu(torch.ones(Lq, Lv, dtype=torch.bool), 1) if causal else None
    # torch's key_padding_mask: True = IGNORE (fastnn's and Keras': True = attend)
    kpm = None if mask is None else torch.tensor(~mask)
    out, _ = mha(q, k, v, key_padding_mask=kpm, attn_mask=attn_mask, need_weights=False)
    (out * T(G)).sum().backward()
    if mha._qkv_same_embed_dim:
        gw = mha.in_proj_weight.grad.numpy()
        gq, gk, gv = gw[:E], gw[E:2 * E], gw[2 * E:]
    else:
        gq, gk, gv = (p.grad.numpy() for p in (mha.q_proj_weight, mha.k_proj_weight,
                                                mha.v_proj_weight))
    gb = mha.in_proj_bias.grad.numpy()
    grads = [gq.T.reshape(Wq.shape), gb[:E].reshape(bq.shape), gk.T.reshape(Wk.shape),
             gb[E:2 * E].reshape(bk.shape), gv.T.reshape(Wv.shape), gb[2 * E:].reshape(bv.shape),
             mha.out_proj.weight.grad.numpy().T.reshape(Wo.shape),
             mha.out_proj.bias.grad.numpy()]
    return out.detach().numpy(), [t.grad.numpy() for t in leaves], grads


def _close(a, b, rtol=1e-10, floor=1e-300):
    # relative to the largest entry; ``floor`` (the largest of a set of gradients) is for
    # tensors zero in exact arithmetic (the key gradients when one key is seen: the softmax of
    # one entry is constant), whose rounding errors follow the others' size
    scale = max(np.abs(b).max(), floor)
    assert np.abs(a - b).max() <= rtol * scale, (np.abs(a - b).max(), scale)


CASES = [("self", False, False), ("self", True, False), ("self", False, True),
         ("cross", False, False), ("cross", True, True)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("H", [1, 2, 4, 8])
@pytest.mark.parametrize("L", [1, 7, 33, 100])
@pytest.mark.parametrize("kind,causal,use_mask", CASES)
def test_torch_parity(backend, H, L, kind, causal, use_mask):
    pytest.importorskip("torch")
    rng = np.random.default_rng(H * 1000 + L)
    E = KD * H
    Lv = L if kind == "self" else L + 5
    dims = (E, E, E) if kind == "self" else (E, 3, 5)
    model, mha = _model(backend, H, L, Lv, dims, kind, use_mask, causal)
    ws = _set_random_weights(mha, rng)
    arrays, mask = _data(rng, 2, H, L, Lv, dims, kind, use_mask)
    G = rng.standard_normal((2, L, E))
    out, dx, grads = _run(model, arrays, G)
    t_out, t_dx, t_grads = _torch_reference(ws, arrays, mask, H, kind, causal, G)
    _close(out, t_out)
    for a, b in zip(dx, t_dx):
        _close(a, b, floor=max(np.abs(d).max() for d in t_dx))
    if use_mask:
        assert not dx[-1].any()                     # the mask gets no gradient
    floor = max(np.abs(g).max() for g in t_grads)
    for a, b in zip(grads, t_grads):
        _close(a, b, floor=floor)


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("kind,causal,use_mask", CASES)
def test_fast_equals_numpy(dtype, rtol, kind, causal, use_mask):
    rng = np.random.default_rng(7)
    H, L = 2, 37
    Lv = L if kind == "self" else 20
    dims = (8, 8, 8) if kind == "self" else (8, 6, 3)
    arrays, _ = _data(rng, 3, H, L, Lv, dims, kind, use_mask)
    G = rng.standard_normal((3, L, 8))
    results = []
    for backend in BACKENDS:
        model, mha = _model(backend, H, L, Lv, dims, kind, use_mask, causal, dtype=dtype)
        _set_random_weights(mha, np.random.default_rng(3))
        results.append(_run(model, [a.astype(dtype) for a in arrays], G.astype(dtype)))
    (o1, d1, g1), (o2, d2, g2) = results
    _close(o1, o2, rtol)
    for a, b in zip(d1, d2):
        _close(a, b, rtol, floor=max(np.abs(d).max() for d in d2))
    for a, b in zip(g1, g2):            # the key bias's gradient is zero in exact arithmetic
        _close(a, b, rtol, floor=max(np.abs(g).max() for g in g2))


@pytest.mark.parametrize("kind,causal,use_mask", CASES)
def test_bitwise_at_1_and_2_threads(kind, causal, use_mask):
    rng = np.random.default_rng(11)
    H, L = 4, 70
    Lv = L if kind == "self" else 45
    dims = (16, 16, 16) if kind == "self" else (16, 9, 5)
    arrays, _ = _data(rng, 4, H, L, Lv, dims, kind, use_mask)
    G = rng.standard_normal((4, L, 16))
    model, mha = _model("fast", H, L, Lv, dims, kind, use_mask, causal, dtype="float32")
    _set_random_weights(mha, rng)
    arrays = [a.astype(np.float32) for a in arrays]
    G = G.astype(np.float32)
    previous = fnn.get_num_threads()
    try:
        fnn.set_num_threads(1)
        r1 = _run(model, arrays, G)
        fnn.set_num_threads(2)
        r2 = _run(model, arrays, G)
    finally:
        fnn.set_num_threads(previous)
    for a, b in zip([r1[0], *r1[1], *r1[2]], [r2[0], *r2[1], *r2[2]]):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("causal", [False, True])
def test_finite_differences(backend, causal):
    rng = np.random.default_rng(5)
    L, E = 6, 8
    x = fnn.Input((L, E))
    mha = fnn.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=5)
    h = mha(x, x, use_causal_mask=causal)
    model = fnn.Model(x, fnn.Dense(3)(fnn.Flatten()(h)), seed=1, dtype="float64",
                      backend=backend)
    _set_random_weights(mha, rng)
    X = rng.standard_normal((2, L, E))
    G = rng.standard_normal((2, 3))
    model.zero_grad()
    model.forward(X, training=True)
    dx = model.backward(G)
    grads = [g.copy() for g in model.grads]
    loss = lambda: float(np.sum(model.predict(X) * G))        # noqa: E731
    eps = 1e-6
    for idx in [tuple(rng.integers(0, s) for s in X.shape) for _ in range(8)]:
        old = X[idx]
        X[idx] = old + eps
        up = loss()
        X[idx] = old - eps
        down = loss()
        X[idx] = old
        assert abs((up - down) / (2 * eps) - dx[idx]) < 1e-7 * max(1.0, abs(dx[idx]))
    weights = mha.get_weights()
    for k, w in enumerate(weights):
        for _ in range(3):
            idx = tuple(rng.integers(0, s) for s in w.shape)
            old = w[idx]
            w[idx] = old + eps
            mha.set_weights(weights)
            up = loss()
            w[idx] = old - eps
            mha.set_weights(weights)
            down = loss()
            w[idx] = old
            mha.set_weights(weights)
            num = (up - down) / (2 * eps)
            assert abs(num - grads[k][idx]) < 1e-7 * max(1.0, abs(num)), (k, idx)


def test_sequential_is_self_attention_and_key_defaults_to_value():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3, 5, 8))
    seq = fnn.Sequential([fnn.MultiHeadAttention(2, 4)], input_shape=(5, 8), seed=0,
                         dtype="float64", backend="numpy")
    x = fnn.Input((5, 8))
    mha = fnn.MultiHeadAttention(2, 4)
    func = fnn.Model(x, mha(x), seed=0, dtype="float64", backend="numpy")
    mha.set_weights(seq.layers[0].get_weights())
    np.testing.assert_array_equal(seq.predict(X), func.predict(X))
    # key=None is key=value: two inputs (query, then value as key and value)
    q, v = fnn.Input((4, 8)), fnn.Input((5, 6))
    m2 = fnn.MultiHeadAttention(2, 4)
    m2(q, v)
    assert m2.input_roles == ["q", "kv"]


def test_weights_layout_and_names():
    q, v = fnn.Input((4, 8)), fnn.Input((5, 6))
    mha = fnn.MultiHeadAttention(num_heads=3, key_dim=2, value_dim=5, output_shape=7)
    model = fnn.Model([q, v], mha(q, v), backend="numpy")
    assert model.output_shape == (4, 7)
    assert [w.shape for w in mha.get_weights()] == [(8, 3, 2), (3, 2), (6, 3, 2), (3, 2),
                                                   (6, 3, 5), (3, 5), (3, 5, 7), (7,)]
    nobias = fnn.MultiHeadAttention(num_heads=3, key_dim=2, use_bias=False)
    fnn.Model(q, nobias(q, q), backend="numpy")
    assert [w.shape for w in nobias.get_weights()] == [(8, 3, 2), (8, 3, 2), (8, 3, 2),
                                                      (3, 2, 8)]


def test_bad_inputs():
    with pytest.raises(ValueError, match="num_heads"):
        fnn.MultiHeadAttention(num_heads=0, key_dim=4)
    with pytest.raises(ValueError, match="num_heads"):
        fnn.MultiHeadAttention(num_heads=-2, key_dim=4)
    with pytest.raises(ValueError, match="key_dim"):
        fnn.MultiHeadAttention(num_heads=2, key_dim=0)
    with pytest.raises(ValueError, match="value_dim"):
        fnn.MultiHeadAttention(num_heads=2, key_dim=2, value_dim=0)
    with pytest.raises(ValueError, match="dropout"):
        fnn.MultiHeadAttention(num_heads=2, key_dim=2, dropout=1.0)
    q, v, k = fnn.Input((4, 8)), fnn.Input((5, 6)), fnn.Input((6, 6))
    with pytest.raises(ValueError, match="key and value"):
        fnn.MultiHeadAttention(2, 2)(q, v, k)
    with pytest.raises(ValueError, match="attention_mask"):
        fnn.MultiHeadAttention(2, 2)(q, v, attention_mask=fnn.Input((5, 4)))
    with pytest.raises(ValueError, match="attention_mask"):
        fnn.MultiHeadAttention(2, 2)(q, v, attention_mask=fnn.Input((4,)))
    with pytest.raises(ValueError, match="query"):
        fnn.MultiHeadAttention(2, 2)(fnn.Input((8,)), v)
    with pytest.raises(ValueError, match="value"):
        fnn.MultiHeadAttention(2, 2)(q, fnn.Input((2, 3, 4)))
    with pytest.raises(TypeError, match="use_causal_mask"):
        fnn.MultiHeadAttention(2, 2)(q, v, use_causal_mask="yes")
    with pytest.raises(ValueError, match="input_roles"):
        fnn.MultiHeadAttention(2, 2).set_call(["q", "k"])
    shared = fnn.MultiHeadAttention(2, 2)
    shared(q, v)
    with pytest.raises(ValueError, match="use_causal_mask"):
        shared(q, v, use_causal_mask=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_learns_a_copy_task(backend):
    """Attention must find the marked position: y = the value of the step whose flag is on."""
    rng = np.random.default_rng(0)
    n, L = 512, 6
    vals = rng.standard_normal((n, L))
    where = rng.integers(0, L, n)
    flags = np.zeros((n, L))
    flags[np.arange(n), where] = 1.0
    X = np.stack([vals, flags], axis=-1)
    y = vals[np.arange(n), where][:, None]
    x = fnn.Input((L, 2))
    h = fnn.MultiHeadAttention(num_heads=2, key_dim=8)(fnn.Dense(16)(x), fnn.Dense(16)(x))
    model = fnn.Model(x, fnn.Dense(1)(fnn.Flatten()(h)), seed=0, backend=backend)
    model.compile(loss="mse", optimizer=fnn.Adam(lr=0.01))
    first = model.evaluate(X, y)["loss"]
    model.fit(X, y, epochs=40, batch_size=50, verbose=0)     # 50 does not divide 512
    last = model.evaluate(X, y)["loss"]
    assert last < 0.01 * first, (first, last)


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_file_round_trip(tmp_path, backend):
    rng = np.random.default_rng(9)
    q, v = fnn.Input((4, 8)), fnn.Input((6, 5))
    mask = fnn.Input((6,))
    mha = fnn.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, output_shape=7,
                                 kernel_regularizer="l2")
    h = mha(q, v, attention_mask=mask, use_causal_mask=True)
    x = fnn.Input((5, 8))
    s = fnn.MultiHeadAttention(num_heads=4, key_dim=2)(x, x)
    model = fnn.Model([q, v, mask, x], [h, s], seed=3, dtype="float64", backend=backend)
    arrays = [rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 6, 5)),
              (rng.random((2, 6)) < 0.6).astype(float), rng.standard_normal((2, 5, 8))]
    arrays[2][:, 0] = 1
    path = tmp_path / "mha.fnn"
    model.save(str(path))
    same = fnn.load(str(path))
    for a, b in zip(model.predict(arrays), same.predict(arrays)):
        np.testing.assert_array_equal(a, b)
    loaded = [layer for layer in same.layers if isinstance(layer, fnn.MultiHeadAttention)]
    assert loaded[0].use_causal_mask and loaded[0].input_roles == ["q", "kv", "m"]
    assert loaded[1].input_roles == ["qkv"] and not loaded[1].use_causal_mask
    from fastnn.layers import layer_from_config
    again = layer_from_config(mha.get_config())
    assert again.get_config() == mha.get_config()


@pytest.mark.parametrize("backend", BACKENDS)
def test_self_attention_projects_qkv_in_one_product(backend, monkeypatch):
    """The issue's "QKV projection as one GEMM": mha(x, x) runs two dense products forward
    (Q|K|V side by side, then the output) and two backward."""
    from fastnn.backends import get_backend
    be = get_backend(backend)
    calls = {"dense_forward": [], "dense_backward": []}
    for name in calls:
        real = getattr(be, name)
        monkeypatch.setattr(be, name, lambda *a, _real=real, _name=name: (
            calls[_name].append(a[1].shape), _real(*a))[1])
    x = fnn.Input((5, 8))
    mha = fnn.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4)
    model = fnn.Model(x, mha(x, x), seed=0, dtype="float64", backend=backend)
    model.forward(np.ones((2, 5, 8)), training=True)
    model.backward(np.ones((2, 5, 8)))
    assert calls["dense_forward"] == [(8, 3 * 2 + 3 * 2 + 4 * 2), (8, 8)]
    assert sorted(calls["dense_backward"]) == [(8, 8), (8, 20)]
