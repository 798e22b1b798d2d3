"""TransformerBlock (fastnn/layers/transformer.py), PositionalEmbedding and SinePositionEncoding
(fastnn/layers/embedding.py):

- PyTorch parity in float64 (<= 1e-10 relative): ``nn.TransformerEncoderLayer(batch_first=True,
  dropout=0, activation="gelu")`` pre-norm and post-norm, causal and padding masks, lengths
  1 to 300, heads 1 to 8: the output, dL/dx and every weight's gradient;
- compiled = NumPy backend; bitwise at 1 and 2 threads;
- finite differences through a small GPT (Embedding, PositionalEmbedding, two blocks, Dense);
- the position layers against their formulas; model files; bad inputs.
"""

import numpy as np
import pytest

import fastnn as fnn

BACKENDS = ["fast", "numpy"]


def _block_model(backend, L, d, H, ff, causal=False, norm_first=True, masked=False,
                 dtype="float64", dropout=0.0, seed=0):
    x = fnn.Input((L, d))
    block = fnn.TransformerBlock(num_heads=H, key_dim=d // H, ff_dim=ff, causal=causal,
                                 norm_first=norm_first, dropout=dropout)
    if masked:
        m = fnn.Input((L,))
        model = fnn.Model([x, m], block(x, padding_mask=m), seed=seed, dtype=dtype,
                          backend=backend)
    else:
        model = fnn.Model(x, block(x), seed=seed, dtype=dtype, backend=backend)
    return model, block


def _random_weights(block, rng):
    ws = [rng.standard_normal(w.shape) * 0.4 for w in block.get_weights()]
    for k in (8, 10):                                   # the norms' gammas: near 1
        ws[k] = 1.0 + 0.2 * rng.standard_normal(ws[k].shape)
    block.set_weights(ws)
    return ws


def _torch_layer(ws, d, H, ff, norm_first):
    torch = pytest.importorskip("torch")
    Wq, bq, Wk, bk, Wv, bv, Wo, bo, g1, b1, g2, b2, W1, c1, W2, c2 = ws
    layer = torch.nn.TransformerEncoderLayer(d, H, ff, dropout=0.0, activation="gelu",
                                             batch_first=True, norm_first=norm_first,
                                             layer_norm_eps=1e-5, dtype=torch.float64)
    T = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)    # noqa: E731
    with torch.no_grad():
        sa = layer.self_attn
        sa.in_proj_weight.copy_(T(np.concatenate([Wq.reshape(d, d).T, Wk.reshape(d, d).T,
                                                  Wv.reshape(d, d).T])))
        sa.in_proj_bias.copy_(T(np.concatenate([bq.ravel(), bk.ravel(), bv.ravel()])))
        sa.out_proj.weight.copy_(T(Wo.reshape(d, d).T))
        sa.out_proj.bias.copy_(T(bo))
        layer.norm1.weight.copy_(T(g1))
        layer.norm1.bias.copy_(T(b1))
        layer.norm2.weight.copy_(T(g2))
        layer.norm2.bias.copy_(T(b2))
        layer.linear1.weight.copy_(T(W1.T))
        layer.linear1.bias.copy_(T(c1))
        layer.linear2.weight.copy_(T(W2.T))
        layer.linear2.bias.copy_(T(c2))
    return layer


def _torch_grads(layer, d):
    sa = layer.self_attn
    gw, gb = sa.in_proj_weight.grad.numpy(), sa.in_proj_bias.grad.numpy()
    H = sa.num_heads
    heads = lambda a: a.T.reshape(d, H, d // H)                        # noqa: E731
    return [heads(gw[:d]), gb[:d].reshape(H, -1), heads(gw[d:2 * d]), gb[d:2 * d].reshape(H, -1),
            heads(gw[2 * d:]), gb[2 * d:].reshape(H, -1),
            sa.out_proj.weight.grad.numpy().T.reshape(H, d // H, d),
            sa.out_proj.bias.grad.numpy(), layer.norm1.weight.grad.numpy(),
            layer.norm1.bias.grad.numpy(), layer.norm2.weight.grad.numpy(),
            layer.norm2.bias.grad.numpy(), layer.linear1.weight.grad.numpy().T,
            layer.linear1.bias.grad.numpy(), layer.linear2.weight.grad.numpy().T,
            layer.linear2.bias.grad.numpy()]


def _rel(a, b, floor=1e-30):
    """max |a - b| relative to max |b|, or to ``floor`` when b is smaller (a gradient that is
    zero in exact arithmetic, the queries' at one step, is rounding noise in both)."""
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), floor))


PARITY = [  # (H, L, d, ff)
    (1, 1, 8, 16), (2, 7, 16, 32), (4, 33, 16, 24), (8, 65, 16, 40), (4, 130, 32, 64),
    (2, 300, 16, 32)]


def _parity_grid():
    """Every (backend, H, L, d, ff, norm_first, causal, masked) but the long padded sequences
    (L >= 130) on the NumPy backend or post-norm: the other long cases cover them, and leaving
    them out keeps the grid's time down."""
    grid = []
    for causal, masked, call in [(False, False, "plain"), (True, False, "causal"),
                                 (False, True, "padding")]:
        for norm_first, norm in [(True, "pre"), (False, "post")]:
            for H, L, d, ff in PARITY:
                for backend in BACKENDS:
                    if L >= 130 and masked and (not norm_first or backend == "numpy"):
                        continue
                    grid.append(pytest.param(backend, H, L, d, ff, norm_first, causal, masked,
                                             id=f"{call}-{norm}-{(H, L, d, ff)}-{backend}"))
    return grid


@pytest.mark.parametrize("backend,H,L,d,ff,norm_first,causal,masked", _parity_grid())
def test_torch_parity_encoder_layer(backend, H, L, d, ff, norm_first, causal, masked):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(L * 31 + H)
    model, block = _block_model(backend, L, d, H, ff, causal, norm_first, masked)
    ws = _random_weights(block, rng)
    n = 3 if L < 100 else 2
    X = rng.standard_normal((n, L, d))
    G = rng.standard_normal((n, L, d))
    mask = None
    if masked:
        mask = rng.random((n, L)) < 0.7
        mask[:, 0] = True
    model.zero_grad()
    out = model.forward([X, mask.astype(np.float64)] if masked else X, training=True)
    dx = model.backward(G)
    dx = dx[0] if isinstance(dx, list) else dx
    grads = [g.copy() for g in model.grads]

    layer = _torch_layer(ws, d, H, ff, norm_first)
    xt = torch.tensor(X, requires_grad=True)
    src_mask = torch.nn.Transformer.generate_square_subsequent_mask(L, dtype=torch.float64) \
        if causal else None
    kpm = None if mask is None else torch.tensor(~mask)
    yt = layer(xt, src_mask=src_mask, src_key_padding_mask=kpm, is_causal=causal)
    (yt * torch.tensor(G)).sum().backward()
    assert _rel(out, yt.detach().numpy()) <= 1e-10
    assert _rel(dx, xt.grad.numpy()) <= 1e-10
    expected = _torch_grads(layer, d)
    floor = 1e-2 * max(np.max(np.abs(t)) for t in expected)
    for k, (g, t) in enumerate(zip(grads, expected)):
        assert g.shape == t.shape, k
        assert _rel(g, t, floor) <= 1e-10, (k, _rel(g, t, floor))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("norm_first,masked", [(True, False), (False, False), (True, True)])
def test_a_block_on_the_input_skips_its_input_gradient_alone(backend, norm_first, masked):
    """A block reading the model's input is asked for no dL/dx (the first norm's dx and the
    residual add, or the attention's input product, are skipped): its weight gradients must be
    those of the same block behind a Reshape, which asks for dL/dx, bit for bit (one SGD step of
    lr 1 from the same weights, then the weights compared)."""
    rng = np.random.default_rng(11)
    L, d, H, ff = 9, 16, 4, 24
    X = rng.standard_normal((6, L, d))
    y = np.arange(6) % 3
    mask = (rng.random((6, L)) < 0.7).astype(np.float64)
    mask[:, 0] = 1
    after = []
    for reshape in (False, True):
        x = fnn.Input((L, d))
        h = fnn.Reshape((L, d))(x) if reshape else x
        block = fnn.TransformerBlock(num_heads=H, key_dim=d // H, ff_dim=ff,
                                     norm_first=norm_first)
        inputs = x
        if masked:
            m = fnn.Input((L,))
            inputs = [x, m]
            h = block(h, padding_mask=m)
        else:
            h = block(h)
        out = fnn.Dense(3, activation="softmax")(fnn.Flatten()(h))
        model = fnn.Model(inputs, out, seed=2, dtype="float64", backend=backend)
        model.compile(loss="cross_entropy", optimizer=fnn.SGD(1.0))
        model.train_on_batch([X, mask] if masked else X, y)
        after.append(model.get_weights())
    for a, b in zip(*after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-11), ("float32", 2e-4)])
@pytest.mark.parametrize("causal,masked,norm_first", [(False, False, True), (True, False, True),
                                                      (False, True, False)])
def test_fast_equals_numpy(dtype, rtol, causal, masked, norm_first):
    rng = np.random.default_rng(3)
    L, d, H, ff = 37, 16, 4, 48
    X = rng.standard_normal((5, L, d)).astype(dtype)
    G = rng.standard_normal((5, L, d)).astype(dtype)
    mask = (rng.random((5, L)) < 0.8).astype(dtype)
    mask[:, 0] = 1
    results = []
    for backend in BACKENDS:
        model, block = _block_model(backend, L, d, H, ff, causal, norm_first, masked, dtype)
        model.zero_grad()
        out = model.forward([X, mask] if masked else X, training=True)
        dx = model.backward(G.copy())
        dx = dx[0] if isinstance(dx, list) else dx
        results.append([out.copy(), dx.copy(), *[g.copy() for g in model.grads]])
    # the key bias's gradient is zero in exact arithmetic (softmax ignores a shift shared by
    # all keys): rounding noise, measured against the gradients' scale
    floor = 1e-2 * max(float(np.max(np.abs(g))) for g in results[1][2:])
    for a, b in zip(*results):
        assert _rel(a, b, floor) <= rtol


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bitwise_at_1_and_2_threads(dtype, fixed_threads):
    rng = np.random.default_rng(4)
    L, d = 45, 32
    X = rng.standard_normal((6, L, d)).astype(dtype)
    G = rng.standard_normal((6, L, d)).astype(dtype)
    results = []
    previous = fnn.get_num_threads()
    try:
        for threads in (1, 2):
            fnn.set_num_threads(threads)
            model, _ = _block_model("fast", L, d, 4, 64, causal=True, dtype=dtype, seed=2)
            model.zero_grad()
            out = model.forward(X, training=True)
            dx = model.backward(G.copy())
            results.append([out.copy(), dx.copy(), *map(np.copy, model.grads)])
    finally:
        fnn.set_num_threads(previous)
    for a, b in zip(*results):
        assert np.array_equal(a, b)


def _tiny_gpt(backend, L=6, vocab=7, d=8, seed=0, sine=False, dtype="float64"):
    ids = fnn.Input((L,))
    h = fnn.Embedding(vocab, d)(ids)
    h = (fnn.SinePositionEncoding() if sine else fnn.PositionalEmbedding(L + 2))(h)
    h = fnn.TransformerBlock(num_heads=2, key_dim=4, ff_dim=12, causal=True)(h)
    h = fnn.TransformerBlock(num_heads=1, key_dim=6, ff_dim=10, causal=True,
                             norm_first=False, activation="gelu_tanh")(h)
    h = fnn.LayerNormalization(epsilon=1e-5)(h)
    out = fnn.Dense(vocab)(h)
    return fnn.Model(ids, out, seed=seed, dtype=dtype, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sine", [False, True], ids=["learned", "sine"])
def test_finite_differences_through_a_small_gpt(backend, sine):
    rng = np.random.default_rng(7)
    model = _tiny_gpt(backend, sine=sine)
    model.set_weights([w + 0.3 * rng.standard_normal(w.shape) for w in model.get_weights()])
    ids = rng.integers(0, 7, size=(3, 6)).astype(np.float64)
    G = rng.standard_normal((3, 6, 7))
    model.zero_grad()
    model.forward(ids, training=True)
    model.backward(G)
    grads = [g.copy() for g in model.grads]
    weights = model.get_weights()
    eps = 1e-6
    checked = 0
    for k, w in enumerate(weights):
        for _ in range(2):
            idx = tuple(int(rng.integers(0, s)) for s in w.shape)
            old = w[idx]
            values = []
            for delta in (eps, -eps):
                w[idx] = old + delta
                model.set_weights(weights)
                values.append(float(np.sum(model.predict(ids) * G)))
            w[idx] = old
            model.set_weights(weights)
            fd = (values[0] - values[1]) / (2 * eps)
            if k == 1 and not sine and idx[0] >= 6:
                assert grads[k][idx] == 0 and abs(fd) < 1e-9     # positions past the input
            assert abs(fd - grads[k][idx]) <= 1e-6 * max(1.0, abs(fd)), (k, idx)
            checked += 1
    assert checked == 2 * len(weights)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-norm", "post-norm"])
def test_finite_differences_with_dropout(backend, norm_first):
    """A block with dropout, its masks replayed (every pass starts the block's Dropouts from the
    same call count): dL/dx and the weights' gradients against central differences. The
    residual path's gradient takes dy as the feed-forward's backward leaves it."""
    rng = np.random.default_rng(3)
    model, block = _block_model(backend, 5, 8, 2, 12, norm_first=norm_first, dropout=0.3,
                                seed=1)
    _random_weights(block, rng)
    X, G = rng.standard_normal((3, 5, 8)), rng.standard_normal((3, 5, 8))

    def forward():                       # the same masks every pass
        for drop in block._drops:
            drop.calls = 0
        block.attention.calls = 0        # and the same draw of the attention weights' dropout
        return model.forward(X, training=True)

    def loss():
        return float(np.sum(forward() * G))

    model.zero_grad()
    out = forward()
    dx = model.backward(G)
    assert not np.allclose(model.forward(X, training=False), out)   # the masks drop values
    grads, weights = [g.copy() for g in model.grads], model.get_weights()
    eps = 1e-6
    for k, w in enumerate(weights):
        for _ in range(2):
            idx = tuple(int(rng.integers(0, s)) for s in w.shape)
            old, values = w[idx], []
            for delta in (eps, -eps):
                w[idx] = old + delta
                model.set_weights(weights)
                values.append(loss())
            w[idx] = old
            model.set_weights(weights)
            fd = (values[0] - values[1]) / (2 * eps)
            assert abs(fd - grads[k][idx]) <= 1e-6 * max(1.0, abs(fd)), (k, idx)
    for _ in range(6):
        idx = tuple(int(rng.integers(0, s)) for s in X.shape)
        old, values = X[idx], []
        for delta in (eps, -eps):
            X[idx] = old + delta
            values.append(loss())
        X[idx] = old
        fd = (values[0] - values[1]) / (2 * eps)
        assert abs(fd - dx[idx]) <= 1e-6 * max(1.0, abs(fd)), idx


@pytest.mark.parametrize("backend", BACKENDS)
def test_positional_embedding_adds_its_rows_and_sums_their_gradient(backend):
    rng = np.random.default_rng(1)
    layer = fnn.PositionalEmbedding(9)
    model = fnn.Sequential([layer], input_shape=(5, 3), seed=0, dtype="float64",
                           backend=backend)
    table = rng.standard_normal((9, 3))
    layer.set_weights([table])
    X = rng.standard_normal((4, 5, 3))
    np.testing.assert_array_equal(model.predict(X), X + table[:5])
    G = rng.standard_normal((4, 5, 3))
    model.zero_grad()
    model.forward(X, training=True)
    dx = model.backward(G)
    np.testing.assert_array_equal(dx, G)
    expected = np.zeros((9, 3))
    expected[:5] = G[0] + G[1] + G[2] + G[3]
    np.testing.assert_array_equal(model.grads[0], expected)


def test_sine_position_encoding_follows_the_formula():
    model = fnn.Sequential([fnn.SinePositionEncoding(max_wavelength=100.0)],
                           input_shape=(7, 6), dtype="float64", backend="fast")
    got = model.predict(np.zeros((2, 7, 6)))[1]
    t = np.arange(7)[:, None]
    i = np.arange(6)[None, :]
    angle = t / 100.0 ** (2 * (i // 2) / 6)
    np.testing.assert_allclose(got, np.where(i % 2 == 0, np.sin(angle), np.cos(angle)),
                               rtol=0, atol=1e-15)
    assert model.count_params() == 0
    np.testing.assert_allclose(fnn.ops.sinusoidal_positions(7, 6, 100.0), got, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_model_file_round_trip(tmp_path, backend, dropout):
    model = _tiny_gpt(backend)
    if dropout:
        ids = fnn.Input((6,))
        h = fnn.PositionalEmbedding(6)(fnn.Embedding(7, 8)(ids))
        h = fnn.TransformerBlock(2, 4, 16, causal=True, dropout=dropout)(h)
        model = fnn.Model(ids, fnn.Dense(7, activation="softmax")(h), seed=1, backend=backend)
    model.compile(loss="cross_entropy", optimizer=fnn.Adam(1e-3))
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, size=(10, 6))
    y = rng.integers(0, 7, size=(10, 6))
    model.fit(ids, y, epochs=1, batch_size=5, verbose=0)
    path = tmp_path / "gpt.fnn"
    model.save(path)
    loaded = fnn.load(path)
    np.testing.assert_array_equal(loaded.predict(ids), model.predict(ids))
    # training goes on with the same dropout masks and the same steps
    model.fit(ids, y, epochs=1, batch_size=5, verbose=0, shuffle=False)
    loaded.fit(ids, y, epochs=1, batch_size=5, verbose=0, shuffle=False)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_follow_keras_hub_order():
    model, block = _block_model("numpy", 5, 8, 2, 12)
    shapes = [w.shape for w in block.get_weights()]
    assert shapes == [(8, 2, 4), (2, 4), (8, 2, 4), (2, 4), (8, 2, 4), (2, 4), (2, 4, 8), (8,),
                      (8,), (8,), (8,), (8,), (8, 12), (12,), (12, 8), (8,)]
    assert block.count_params() == sum(int(np.prod(s)) for s in shapes)
    names = [spec.name for spec in block._specs]
    assert names[0] == "self_attention/query_kernel"
    assert names[8:10] == ["self_attention_layer_norm/gamma", "self_attention_layer_norm/beta"]
    assert names[-1] == "feedforward_output_dense/bias"


BAD_CONSTRUCTORS = [
    (dict(num_heads=0, key_dim=4, ff_dim=8), ValueError, "num_heads"),
    (dict(num_heads=2, key_dim=4, ff_dim=0), ValueError, "ff_dim"),
    (dict(num_heads=2, key_dim=4, ff_dim=1.5), TypeError, "ff_dim"),
    (dict(num_heads=2, key_dim=4, ff_dim=8, dropout=1.0), ValueError, "dropout"),
    (dict(num_heads=2, key_dim=4, ff_dim=8, causal="yes"), TypeError, "causal"),
    (dict(num_heads=2, key_dim=4, ff_dim=8, layer_norm_epsilon=0.0), ValueError,
     "layer_norm_epsilon"),
    (dict(num_heads=2, key_dim=4, ff_dim=8, activation="nope"), ValueError, "nope"),
]


@pytest.mark.parametrize("kwargs,exc,word", BAD_CONSTRUCTORS)
def test_bad_constructor_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        fnn.TransformerBlock(**kwargs)


def test_bad_shapes_are_refused_by_name():
    with pytest.raises(ValueError, match="sequences"):
        fnn.Sequential([fnn.TransformerBlock(2, 4, 8)], input_dim=8)
    x, m = fnn.Input((5, 8)), fnn.Input((4,))
    with pytest.raises(ValueError, match="padding_mask"):
        fnn.TransformerBlock(2, 4, 8)(x, padding_mask=m)
    with pytest.raises(ValueError, match="sequence_length"):
        fnn.Sequential([fnn.PositionalEmbedding(4)], input_shape=(5, 3))
    with pytest.raises(ValueError, match="sequence_length"):
        fnn.PositionalEmbedding(0)
    with pytest.raises(ValueError, match="max_wavelength"):
        fnn.SinePositionEncoding(max_wavelength=0.5)
    model = fnn.Sequential([fnn.TransformerBlock(2, 4, 8)], input_shape=(5, 8))
    with pytest.raises(ValueError):
        model.predict(np.zeros((2, 6, 8), np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_batches_of_changing_sizes_give_what_fresh_models_give(backend):
    """The attention layer keeps its buffers' views between calls (Slot.views) while the rows
    stay the same: batches of 5, 3, 5 and 7 rows in turn must give, bit for bit, the outputs,
    dL/dx and gradients of a fresh model (the same weights) on each batch alone."""
    rng = np.random.default_rng(5)
    L, d, H, ff = 6, 8, 2, 12
    model, block = _block_model(backend, L, d, H, ff, causal=True, masked=True)
    weights = model.get_weights()
    for n in (5, 3, 5, 7):
        X = rng.standard_normal((n, L, d))
        G = rng.standard_normal((n, L, d))
        mask = (rng.random((n, L)) < 0.8).astype(np.float64)
        mask[:, 0] = 1
        got = []
        for m in (model, _block_model(backend, L, d, H, ff, causal=True, masked=True)[0]):
            m.set_weights(weights)
            m.zero_grad()
            out = m.forward([X, mask], training=True).copy()
            dx = m.backward(G)[0].copy()
            got.append([out, dx, *[g.copy() for g in m.grads]])
        for a, b in zip(*got):
            np.testing.assert_array_equal(a, b)
