"""Shared (tied) layers in the functional API: one layer, or one model, called at several
places of a model. Its weights exist once and their gradient is the sum over the calls.

Gradients against central differences in float64 on both backends (every layer family with
weights, shared between two calls), against PyTorch modules called twice, and against Keras 3;
the compiled backend against the NumPy one; 1 vs 2 threads bitwise; files, pickle, clone."""

import numpy as np
import pytest

import fastnn as fnn
from tests._finite_differences import check_model_gradients


def _call(layer, t):
    return layer(t)


def _self_attention(layer, t):
    return layer(t, t)


def _pair(layer, t):
    return layer([t, t])


# (name, layer factory, sample shape, integer ids in [0, high) or None, how the layer is called)
FAMILIES = [
    ("Dense", lambda: fnn.Dense(3, activation="tanh"), (4,), None, _call),
    ("Dense3D", lambda: fnn.Dense(2), (3, 4), None, _call),
    ("Conv1D", lambda: fnn.Conv1D(2, 3, activation="tanh"), (6, 2), None, _call),
    ("Conv2D", lambda: fnn.Conv2D(2, 3, activation="tanh"), (5, 5, 2), None, _call),
    ("Conv2Dstrided", lambda: fnn.Conv2D(2, 2, strides=2, padding="same"), (5, 5, 2), None,
     _call),
    ("Conv3D", lambda: fnn.Conv3D(2, 2), (3, 3, 3, 1), None, _call),
    ("Conv1DTranspose", lambda: fnn.Conv1DTranspose(2, 3), (4, 2), None, _call),
    ("Conv2DTranspose", lambda: fnn.Conv2DTranspose(2, 3), (3, 3, 2), None, _call),
    ("Conv3DTranspose", lambda: fnn.Conv3DTranspose(1, 2), (2, 2, 2, 2), None, _call),
    ("DepthwiseConv1D", lambda: fnn.DepthwiseConv1D(3, depth_multiplier=2), (5, 2), None,
     _call),
    ("DepthwiseConv2D", lambda: fnn.DepthwiseConv2D(3, depth_multiplier=2), (4, 4, 2), None,
     _call),
    ("SeparableConv1D", lambda: fnn.SeparableConv1D(2, 3), (5, 2), None, _call),
    ("SeparableConv2D", lambda: fnn.SeparableConv2D(2, 3), (4, 4, 2), None, _call),
    ("Embedding", lambda: fnn.Embedding(7, 3), (4,), 7, _call),
    ("PositionalEmbedding", lambda: fnn.PositionalEmbedding(3), (3, 2), None, _call),
    ("SimpleRNN", lambda: fnn.SimpleRNN(3), (4, 2), None, _call),
    ("LSTM", lambda: fnn.LSTM(3, return_sequences=True), (4, 2), None, _call),
    ("GRU", lambda: fnn.GRU(3), (4, 2), None, _call),
    ("RNNcell", lambda: fnn.RNN(fnn.LSTMCell(2)), (3, 2), None, _call),
    ("StackedRNNCells", lambda: fnn.RNN(fnn.StackedRNNCells([fnn.GRUCell(2),
                                                             fnn.SimpleRNNCell(2)])),
     (3, 2), None, _call),
    ("Bidirectional", lambda: fnn.Bidirectional(fnn.LSTM(2)), (3, 2), None, _call),
    ("ConvLSTM2D", lambda: fnn.ConvLSTM2D(1, 2), (2, 3, 3, 1), None, _call),
    ("TimeDistributed", lambda: fnn.TimeDistributed(fnn.Dense(2)), (3, 4), None, _call),
    ("BatchNormalization", lambda: fnn.BatchNormalization(), (4,), None, _call),
    ("LayerNormalization", lambda: fnn.LayerNormalization(), (3, 4), None, _call),
    ("GroupNormalization", lambda: fnn.GroupNormalization(groups=2), (3, 4), None, _call),
    ("RMSNormalization", lambda: fnn.RMSNormalization(), (4,), None, _call),
    ("PReLU", lambda: fnn.PReLU(alpha_initializer="random_normal"), (4,), None, _call),
    ("MultiHeadAttention", lambda: fnn.MultiHeadAttention(num_heads=2, key_dim=2), (3, 4),
     None, _self_attention),
    ("Attention", lambda: fnn.Attention(use_scale=True), (3, 4), None, _pair),
    ("AdditiveAttention", lambda: fnn.AdditiveAttention(), (3, 4), None, _pair),
    ("TransformerBlock", lambda: fnn.TransformerBlock(num_heads=2, key_dim=2, ff_dim=4),
     (3, 4), None, _call),
]


def _samples(rng, n, shape, high):
    if high is not None:
        return rng.integers(0, high, size=(n, *shape)).astype(np.float64)
    return rng.normal(size=(n, *shape))


def _shared_model(make, shape, call, backend, calls=2, seed=0):
    layer = make()
    ins = [fnn.Input(shape) for _ in range(calls)]
    outs = [fnn.Flatten()(call(layer, t)) for t in ins]
    out = fnn.Concatenate()(outs) if calls > 1 else outs[0]
    model = fnn.Model(ins, out, seed=seed, dtype="float64", backend=backend)
    return model, layer


@pytest.mark.parametrize("name, make, shape, high, call", FAMILIES,
                         ids=[f[0] for f in FAMILIES])
def test_every_family_shared_gradients_match_finite_differences(backend, name, make, shape,
                                                                high, call):
    model, layer = _shared_model(make, shape, call, backend)
    assert sum(1 for m in model.layers if m is layer) == 1
    assert model.count_params() == sum(w.size for w in layer.get_weights()) > 0
    rng = np.random.default_rng(1)
    x = [_samples(rng, 3, shape, high) for _ in range(2)]
    R = rng.normal(size=(3, model.output_dim))
    # the key bias's gradient is 0 (softmax ignores a shift along the keys): the central
    # differences' rounding (~1e-9 on this loss) is all there is, over the 1e-9 absolute floor
    tol = 1e-5 if name == "TransformerBlock" else 1e-6
    check_model_gradients(model, x, R, tol=tol, check_input=high is None, what=name)


@pytest.mark.parametrize("name, make, shape, high, call", FAMILIES,
                         ids=[f[0] for f in FAMILIES])
def test_every_family_fast_equals_numpy(name, make, shape, high, call):
    rng = np.random.default_rng(2)
    x = [_samples(rng, 5, shape, high) for _ in range(2)]
    results = []
    for backend in ("numpy", "fast"):
        model, _ = _shared_model(make, shape, call, backend)
        out = model.forward(x, training=True)
        R = np.random.default_rng(3).normal(size=out.shape)
        model.zero_grad()
        dx = model.backward(R)
        results.append((out, dx, [g.copy() for g in model.grads]))
    (o1, d1, g1), (o2, d2, g2) = results
    np.testing.assert_allclose(o2, o1, rtol=1e-9, atol=1e-11)
    for a, b in zip(d1 + g1, d2 + g2):
        np.testing.assert_allclose(b, a, rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- against PyTorch (float64)
def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _abs_layer():
    return fnn.Lambda(np.abs, gradient=lambda x, dy: np.sign(x) * dy)


def _check_against_torch(model, x, torch_forward, R_seed=7):
    """``model``'s output and every weight gradient (sum(out * R)) against ``torch_forward(
    xs, params)`` on the model's weights as torch leaves (the same order)."""
    torch = pytest.importorskip("torch")
    weights = model.get_weights()
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    out_t = torch_forward([torch.tensor(v) for v in x], params)
    R = np.random.default_rng(R_seed).normal(size=tuple(out_t.shape))
    (out_t * torch.tensor(R)).sum().backward()
    out = model.forward(x, training=True)
    model.zero_grad()
    model.backward(R)
    assert _rel(out, out_t.detach().numpy()) <= 1e-10
    assert len(model.grads) == len(params)
    for k, (g, p) in enumerate(zip(model.grads, params)):
        assert g.shape == tuple(p.shape)
        assert _rel(g, p.grad.numpy()) <= 1e-10, k


def test_siamese_dense_tower_matches_torch(backend):
    torch = pytest.importorskip("torch")
    h1, h2 = fnn.Dense(8, activation="tanh"), fnn.Dense(4, activation="tanh")
    a, b = fnn.Input((6,)), fnn.Input((6,))
    ta, tb = h2(h1(a)), h2(h1(b))
    out = fnn.Dense(1, activation="sigmoid")(_abs_layer()(fnn.Subtract()([ta, tb])))
    model = fnn.Model([a, b], out, seed=0, dtype="float64", backend=backend)
    assert [layer.name for layer in model.layers] == ["dense", "dense_1", "subtract", "lambda",
                                                      "dense_2"]
    assert model.count_params() == (6 * 8 + 8) + (8 * 4 + 4) + (4 + 1)
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(9, 6)), rng.normal(size=(9, 6))]

    def forward(xs, p):
        W1, b1, W2, b2, W3, b3 = p

        def tower(v):
            return torch.tanh(torch.tanh(v @ W1 + b1) @ W2 + b2)
        return torch.sigmoid(torch.abs(tower(xs[0]) - tower(xs[1])) @ W3 + b3)
    _check_against_torch(model, x, forward)


def test_shared_conv2d_tower_matches_torch(backend):
    torch = pytest.importorskip("torch")
    conv, dense = fnn.Conv2D(3, 3, activation="tanh"), fnn.Dense(4, activation="tanh")
    pool, flat = fnn.MaxPooling2D(2), fnn.Flatten()
    a, b = fnn.Input((8, 8, 2)), fnn.Input((8, 8, 2))
    ta, tb = dense(flat(pool(conv(a)))), dense(flat(pool(conv(b))))
    out = fnn.Dense(2)(fnn.Concatenate()([ta, tb]))
    model = fnn.Model([a, b], out, seed=0, dtype="float64", backend=backend)
    rng = np.random.default_rng(1)
    x = [rng.normal(size=(5, 8, 8, 2)), rng.normal(size=(5, 8, 8, 2))]

    def forward(xs, p):
        K, bk, W, bw, W2, b2 = p

        def tower(v):
            z = torch.tanh(torch.nn.functional.conv2d(v.permute(0, 3, 1, 2),
                                                      K.permute(3, 2, 0, 1), bk))
            z = torch.nn.functional.max_pool2d(z, 2).permute(0, 2, 3, 1)
            return torch.tanh(z.reshape(z.shape[0], -1) @ W + bw)
        return torch.cat([tower(xs[0]), tower(xs[1])], dim=1) @ W2 + b2
    _check_against_torch(model, x, forward)


def test_shared_embedding_and_lstm_match_torch(backend):
    torch = pytest.importorskip("torch")
    emb, lstm = fnn.Embedding(10, 4), fnn.LSTM(5)
    a, b = fnn.Input((6,)), fnn.Input((6,))
    out = fnn.Dense(1)(fnn.Concatenate()([lstm(emb(a)), lstm(emb(b))]))
    model = fnn.Model([a, b], out, seed=0, dtype="float64", backend=backend)
    rng = np.random.default_rng(2)
    x = [rng.integers(0, 10, size=(4, 6)).astype(np.float64) for _ in range(2)]
    weights = model.get_weights()
    weights[3] = rng.normal(size=weights[3].shape) * 0.3      # a bias with no zeros
    model.set_weights(weights)

    def forward(xs, p):
        E, W, U, bias, Wd, bd = p
        cell = torch.nn.LSTM(4, 5, batch_first=True).double()
        # Keras' gates (i, f, c, o) are PyTorch's (i, f, g, o); one bias, PyTorch's bias_ih
        weights = {"weight_ih_l0": W.T, "weight_hh_l0": U.T, "bias_ih_l0": bias,
                   "bias_hh_l0": torch.zeros(20, dtype=torch.float64)}
        finals = []
        for ids in xs:
            seq = torch.nn.functional.embedding(ids.long(), E)
            _, (h, _) = torch.func.functional_call(cell, weights, (seq,))
            finals.append(h[0])
        return torch.cat(finals, dim=1) @ Wd + bd
    _check_against_torch(model, x, forward)


def test_shared_batch_normalization_matches_torch_module_called_twice(backend):
    """Training mode: each call normalises its own batch, the moving statistics update once
    per call (in call order), gamma's and beta's gradients are the sums (PyTorch's module
    called twice)."""
    torch = pytest.importorskip("torch")
    momentum, eps = 0.9, 1e-3
    bn = fnn.BatchNormalization(momentum=momentum, epsilon=eps)
    a, b = fnn.Input((5,)), fnn.Input((5,))
    out = fnn.Dense(2, activation="tanh")(fnn.Concatenate()([bn(a), bn(b)]))
    model = fnn.Model([a, b], out, seed=0, dtype="float64", backend=backend)
    rng = np.random.default_rng(3)
    weights = model.get_weights()
    weights[0], weights[1] = rng.uniform(0.5, 1.5, 5), rng.normal(size=5)
    weights[2], weights[3] = rng.normal(size=5) * 0.1, rng.uniform(0.5, 2.0, 5)
    model.set_weights(weights)
    x = [rng.normal(size=(7, 5)) * 2 + 1, rng.normal(size=(7, 5)) - 0.5]
    module = torch.nn.BatchNorm1d(5, eps=eps, momentum=1 - momentum).double().train()
    with torch.no_grad():
        module.weight.copy_(torch.tensor(weights[0]))
        module.bias.copy_(torch.tensor(weights[1]))
        module.running_mean.copy_(torch.tensor(weights[2]))
        module.running_var.copy_(torch.tensor(weights[3]))
    W = torch.tensor(weights[4], requires_grad=True)
    c = torch.tensor(weights[5], requires_grad=True)
    out_t = torch.tanh(torch.cat([module(torch.tensor(x[0])), module(torch.tensor(x[1]))],
                                 dim=1) @ W + c)
    R = rng.normal(size=(7, 2))
    (out_t * torch.tensor(R)).sum().backward()
    out = model.forward(x, training=True)
    model.zero_grad()
    model.backward(R)
    assert _rel(out, out_t.detach().numpy()) <= 1e-10
    grads = model.grads
    assert _rel(grads[0], module.weight.grad.numpy()) <= 1e-10
    assert _rel(grads[1], module.bias.grad.numpy()) <= 1e-10
    assert _rel(grads[4], W.grad.numpy()) <= 1e-10
    after = model.get_weights()
    assert _rel(after[2], module.running_mean.numpy()) <= 1e-12
    assert _rel(after[3], module.running_var.numpy()) <= 1e-12
    assert not np.allclose(after[2], weights[2])


# ---------------------------------------------------------------- more calls, nested models
@pytest.mark.parametrize("name", ["Dense", "Conv2D", "LSTM", "BatchNormalization"])
def test_a_layer_called_three_times(backend, name):
    _, make, shape, high, call = next(f for f in FAMILIES if f[0] == name)
    model, layer = _shared_model(make, shape, call, backend, calls=3)
    assert model.count_params() == sum(w.size for w in layer.get_weights())
    rng = np.random.default_rng(4)
    x = [_samples(rng, 3, shape, high) for _ in range(3)]
    R = rng.normal(size=(3, model.output_dim))
    check_model_gradients(model, x, R, what=name)


def test_a_layer_called_twice_on_one_tensor_and_in_a_chain(backend):
    """The same Dense twice in a row (tied weights, a square kernel) and on one tensor twice."""
    d = fnn.Dense(4, activation="tanh")
    inp = fnn.Input((4,))
    chain = fnn.Model(inp, d(d(inp)), seed=0, dtype="float64", backend=backend)
    assert chain.path == "general" and chain.count_params() == 20
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 4))
    W, b = chain.get_weights()
    assert np.allclose(chain.predict(x), np.tanh(np.tanh(x @ W + b) @ W + b), rtol=1e-12)
    check_model_gradients(chain, x, rng.normal(size=(6, 4)))
    e = fnn.Dense(3, activation="tanh")
    inp = fnn.Input((4,))
    both = fnn.Model(inp, fnn.Add()([e(inp), e(inp)]), seed=0, dtype="float64", backend=backend)
    check_model_gradients(both, x, rng.normal(size=(6, 3)))


@pytest.mark.parametrize("inner_kind", ["sequential", "functional"])
def test_a_model_called_twice(backend, inner_kind):
    """A tower model called on two inputs: its weights once in the outer model (and still the
    standalone model's), gradients summed; the inner model may share a layer itself."""
    if inner_kind == "sequential":   # a Dense chain: the inner model runs its fast path
        tower = fnn.Sequential([fnn.Dense(5, activation="tanh"), fnn.Dense(3)], input_dim=4,
                               seed=1, dtype="float64", backend=backend)
    else:
        d = fnn.Dense(4, activation="tanh")
        t_in = fnn.Input((4,))
        tower = fnn.Model(t_in, fnn.Dense(3)(d(d(t_in))), seed=1, dtype="float64",
                          backend=backend)
    a, b = fnn.Input((4,)), fnn.Input((4,))
    model = fnn.Model([a, b], fnn.Dense(1)(fnn.Concatenate()([tower(a), tower(b)])), seed=0,
                      dtype="float64", backend=backend)
    assert model.layers[0] is tower and len(model.layers) == 3
    assert model.count_params() == tower.count_params() + 7
    assert len(model.get_weights()) == len(tower.get_weights()) + 2
    rng = np.random.default_rng(6)
    x = [rng.normal(size=(5, 4)), rng.normal(size=(5, 4))]
    check_model_gradients(model, x, rng.normal(size=(5, 1)))
    # the standalone tower sees the outer model's training
    model.compile(loss="mse", optimizer=fnn.SGD(lr=0.1))
    before = tower.get_weights()[0].copy()
    model.train_on_batch(x, np.ones((5, 1)))
    assert not np.array_equal(tower.get_weights()[0], before)
    assert np.array_equal(tower.get_weights()[0], model.get_weights()[0])


# ---------------------------------------------------------------- training: fit's own path
def _relu_conv_siamese(backend, dtype="float64", seed=0):
    """A shared relu Conv2D before a max pooling that reads the model input: fit's backward
    pass takes the convolution's gradients from the pooling's (graph.pooled_grad_nodes)."""
    conv, dense = fnn.Conv2D(3, 3, activation="relu"), fnn.Dense(4, activation="tanh")
    a, b = fnn.Input((6, 6, 1)), fnn.Input((6, 6, 1))
    ta = dense(fnn.Flatten()(fnn.MaxPooling2D(2)(conv(a))))
    tb = dense(fnn.Flatten()(fnn.MaxPooling2D(2)(conv(b))))
    out = fnn.Dense(1)(fnn.Concatenate()([ta, tb]))
    return fnn.Model([a, b], out, seed=seed, dtype=dtype, backend=backend)


def test_train_on_batch_steps_each_shared_weight_once_by_the_summed_gradient(backend):
    """One SGD step of train_on_batch = the weights minus lr times the central differences of
    the mean squared error: the optimizer steps each weight once, by the sum over the calls."""
    from tests._finite_differences import central_differences
    model = _relu_conv_siamese(backend)
    assert model._pooled_grad        # the path under test
    rng = np.random.default_rng(8)
    x = [rng.normal(size=(6, 6, 6, 1)), rng.normal(size=(6, 6, 6, 1))]
    t = rng.normal(size=(6, 1))
    weights = model.get_weights()

    def loss():
        return float(np.mean((model.predict(x, batch_size=6) - t) ** 2))
    expected = []
    for k in range(len(weights)):
        shifted = [w.copy() for w in weights]

        def nudged():
            model.set_weights(shifted)
            return loss()
        expected.append(weights[k] - 0.05 * central_differences(nudged, shifted[k]))
    model.set_weights(weights)
    model.compile(loss="mse", optimizer=fnn.SGD(lr=0.05))
    assert model.optimizer.state() == {} or all(
        v is None or v.size == model.count_params() for v in model.optimizer.state().values())
    model.train_on_batch(x, t)
    for k, (w, e) in enumerate(zip(model.get_weights(), expected)):
        assert np.allclose(w, e, rtol=1e-7, atol=1e-9), k


def test_fit_fast_equals_numpy_and_one_thread_equals_two(thread_count, fixed_threads):
    rng = np.random.default_rng(9)
    x = [rng.normal(size=(40, 6, 6, 1)), rng.normal(size=(40, 6, 6, 1))]
    t = rng.normal(size=(40, 1))
    runs = {}
    for backend, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
        thread_count(threads)
        model = _relu_conv_siamese(backend, dtype="float64")
        model.compile(loss="mse", optimizer=fnn.Adam(lr=0.01))
        history = model.fit(x, t, epochs=2, batch_size=16, shuffle=False, verbose=0)
        runs[backend, threads] = (history.history["loss"], model.get_weights(),
                                  model.predict(x))
    one, two = runs["fast", 1], runs["fast", 2]
    assert one[0] == two[0]
    assert all(np.array_equal(a, b) for a, b in zip(one[1], two[1]))
    assert np.array_equal(one[2], two[2])
    ref = runs["numpy", 1]
    np.testing.assert_allclose(one[0], ref[0], rtol=1e-9)
    for a, b in zip(one[1], ref[1]):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_low_level_loop_and_evaluate_on_a_shared_model(backend):
    model = _relu_conv_siamese(backend)
    rng = np.random.default_rng(10)
    x = [rng.normal(size=(4, 6, 6, 1)), rng.normal(size=(4, 6, 6, 1))]
    opt = fnn.SGD(lr=0.1)
    out = model.forward(x)
    model.zero_grad()
    dx = model.backward(out - 1.0)
    assert len(dx) == 2 and dx[0].shape == (4, 6, 6, 1)
    grads = [g.copy() for g in model.grads]
    before = model.get_weights()
    opt.step(model)
    assert all(np.allclose(w, b - 0.1 * g) for w, b, g in zip(model.get_weights(), before,
                                                              grads))
    model.compile(loss="mse", optimizer="sgd")
    value = model.evaluate(x, np.ones((4, 1)), verbose=0)["loss"]
    assert np.isclose(value, np.mean((model.predict(x) - 1.0) ** 2), rtol=1e-10)


# ---------------------------------------------------------------- refusals
def _second_call_other_width():
    d = fnn.Dense(3)
    a, b = fnn.Input((4,)), fnn.Input((5,))
    return fnn.Model([a, b], fnn.Concatenate()([d(a), d(b)]))


def _second_call_other_steps():
    lstm = fnn.LSTM(3, return_sequences=True)
    a, b = fnn.Input((4, 2)), fnn.Input((6, 2))
    return fnn.Model([a, b], [lstm(a), lstm(b)])


def _second_call_other_channels():
    conv = fnn.Conv2D(2, 3)
    a, b = fnn.Input((5, 5, 1)), fnn.Input((5, 5, 3))
    return fnn.Model([a, b], fnn.Concatenate()([conv(a), conv(b)]))


def _stateful_twice():
    lstm = fnn.LSTM(3, stateful=True)
    a, b = fnn.Input((4, 2)), fnn.Input((4, 2))
    return fnn.Model([a, b], fnn.Concatenate()([lstm(a), lstm(b)]))


def _stateful_model_twice():
    inner = fnn.Sequential([fnn.SimpleRNN(2, stateful=True)], input_shape=(4, 2))
    a, b = fnn.Input((4, 2)), fnn.Input((4, 2))
    return fnn.Model([a, b], fnn.Concatenate()([inner(a), inner(b)]))


def _wrapped_and_alone():
    lstm = fnn.LSTM(3)
    a = fnn.Input((4, 2))
    return fnn.Model(a, fnn.Concatenate()([fnn.Bidirectional(lstm)(a), lstm(a)]))


def _sequential_twice():
    d = fnn.Dense(4)
    return fnn.Sequential([d, d], input_dim=4)


def _model_other_shape():
    inner = fnn.Sequential([fnn.Dense(2)], input_dim=4)
    a, b = fnn.Input((4,)), fnn.Input((3,))
    return fnn.Model([a, b], fnn.Concatenate()([inner(a), inner(b)]))


REFUSED = [
    (_second_call_other_width, r"layer 'dense' \(Dense\) is shared: its first call takes "
                               r"inputs of shape \(4,\), a later call gives \(5,\)"),
    (_second_call_other_steps, r"'lstm' \(LSTM\) is shared.*\(4, 2\).*\(6, 2\)"),
    (_second_call_other_channels, r"'conv2d' \(Conv2D\) is shared.*\(5, 5, 1\).*\(5, 5, 3\)"),
    (_stateful_twice, r"LSTM\(3.*is stateful.*called twice.*cannot be shared"),
    (_stateful_model_twice, r"is stateful.*called twice"),
    (_wrapped_and_alone, r"LSTM\(3.*used twice in this model, once inside another layer"),
    (_sequential_twice, r"already in this model.*functional fastnn.Model to tie"),
    (_model_other_shape, r"takes inputs of shape \(4,\)\. Received: \(3,\)"),
]


@pytest.mark.parametrize("make, pattern", REFUSED, ids=[r[0].__name__ for r in REFUSED])
def test_sharing_refusals_name_the_layer_and_the_shapes(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_a_weightless_layer_is_shared_on_one_shape_too():
    """A layer without weights called on another shape than at its first call is refused at
    build (it sizes its buffers from its shapes: it used to fail at the first pass), and works
    on the same shape."""
    relu = fnn.ReLU()
    a, b = fnn.Input((4,)), fnn.Input((6,))
    with pytest.raises(ValueError, match=r"'re_lu' \(ReLU\) is shared.*\(4,\).*\(6,\)"):
        fnn.Model([a, b], fnn.Concatenate()([relu(a), relu(b)]), backend="numpy")
    relu = fnn.ReLU()
    a, b = fnn.Input((4,)), fnn.Input((4,))
    model = fnn.Model([a, b], fnn.Concatenate()([relu(a), relu(b)]), backend="numpy")
    out = model.predict([-np.ones((2, 4)), np.ones((2, 4))])
    assert out.shape == (2, 8) and out[:, :4].max() == 0 and out[:, 4:].min() == 1


# ---------------------------------------------------------------- against Keras 3
@pytest.fixture(scope="module")
def keras(keras64):
    return keras64


def test_a_functional_model_with_shared_layers_matches_keras(keras, backend, tmp_path):
    """The same graph in Keras 3 (float64): a shared Embedding, a shared LSTM and a shared
    Dense on two inputs; the weights copied in get_weights() order (a shared layer once in
    both), the same outputs."""
    k = keras.layers
    ka, kb = keras.Input((5,)), keras.Input((5,))
    kemb, klstm, kdense = k.Embedding(9, 3), k.LSTM(4), k.Dense(3, activation="tanh")
    kout = k.Dense(1, activation="sigmoid")(k.Concatenate()([kdense(klstm(kemb(ka))),
                                                             kdense(klstm(kemb(kb)))]))
    ref = keras.Model([ka, kb], kout)
    emb, lstm, dense = fnn.Embedding(9, 3), fnn.LSTM(4), fnn.Dense(3, activation="tanh")
    a, b = fnn.Input((5,)), fnn.Input((5,))
    out = fnn.Dense(1, activation="sigmoid")(fnn.Concatenate()([dense(lstm(emb(a))),
                                                                dense(lstm(emb(b)))]))
    model = fnn.Model([a, b], out, seed=0, dtype="float64", backend=backend)
    rng = np.random.default_rng(11)
    weights = [rng.normal(size=w.shape) * 0.5 for w in ref.get_weights()]
    ref.set_weights(weights)
    assert [w.shape for w in model.get_weights()] == [w.shape for w in weights]
    assert model.count_params() == ref.count_params()
    model.set_weights(weights)
    x = [rng.integers(0, 9, size=(6, 5)), rng.integers(0, 9, size=(6, 5))]
    # Keras' numpy backend returns these outputs at float32 precision (~1e-7) even in float64:
    # the bound is Keras' own; a wrong weight or an untied call would be off by O(0.1), and
    # PyTorch holds the values to 1e-10 above
    np.testing.assert_allclose(model.predict([v.astype(float) for v in x]),
                               ref.predict(x, verbose=0), rtol=1e-6, atol=1e-9)
    # Keras' weight file maps a shared layer once too
    path = str(tmp_path / "shared.weights.h5")
    ref.save_weights(path)
    again = fnn.Model.from_config(model.get_config(), backend=backend)
    again.load_weights(path)
    assert all(np.array_equal(u, v) for u, v in zip(again.get_weights(), weights))


# ---------------------------------------------------------------- learning
def _pairs(X, y, n, rng):
    """n pairs of digits, half of the same class (target 1), half of different classes."""
    by_class = [np.flatnonzero(y == c) for c in range(10)]
    first = rng.integers(0, len(y), size=n)
    second = np.empty(n, dtype=np.int64)
    same = np.arange(n) % 2 == 0
    for i in range(n):
        c = y[first[i]]
        if same[i]:
            second[i] = rng.choice(by_class[c])
        else:
            other = (c + rng.integers(1, 10)) % 10
            second[i] = rng.choice(by_class[other])
    return [X[first], X[second]], same.astype(np.float64)[:, None]


def test_a_siamese_model_learns_same_or_different_digit(digits_split):
    """Two digits through one Dense tower, |a - b|, a logistic head: is it the same digit?
    Trained on pairs of the training digits, scored on pairs of held-out digits."""
    X_tr, X_te, y_tr, y_te = digits_split
    rng = np.random.default_rng(0)
    train, t_train = _pairs(X_tr, y_tr, 6000, rng)
    test, t_test = _pairs(X_te, y_te, 2000, rng)
    h1, h2 = fnn.Dense(64, activation="relu"), fnn.Dense(32, activation="relu")
    a, b = fnn.Input((64,)), fnn.Input((64,))
    out = fnn.Dense(1, activation="sigmoid")(_abs_layer()(fnn.Subtract()([h2(h1(a)),
                                                                          h2(h1(b))])))
    model = fnn.Model([a, b], out, seed=0)
    model.compile(loss="binary_crossentropy", optimizer=fnn.Adam(lr=0.003),
                  metrics=["accuracy"])
    chance = model.evaluate(test, t_test, verbose=0)["accuracy"]
    model.fit(train, t_train, epochs=8, batch_size=64, verbose=0)
    accuracy = model.evaluate(test, t_test, verbose=0)["accuracy"]
    assert chance < 0.7 and accuracy > 0.9, (chance, accuracy)


@pytest.mark.parametrize("name", ["LSTM", "MultiHeadAttention", "Dropout"])
def test_shared_layers_with_dropout_keep_each_calls_mask(backend, name):
    """Each call draws its own mask (the layer's draw counter moves on per call) and its
    backward pass uses that call's mask: the gradients match central differences when every
    pass replays the same draws."""
    if name == "LSTM":
        layer = fnn.LSTM(3, dropout=0.3, recurrent_dropout=0.3, seed=1, return_sequences=True)
        shape, call = (4, 2), _call
    elif name == "MultiHeadAttention":
        layer = fnn.MultiHeadAttention(num_heads=2, key_dim=2, dropout=0.3, seed=1)
        shape, call = (3, 4), _self_attention
    else:               # Dropout between a shared Dense's calls and the merge
        layer = fnn.Dense(3, activation="tanh")
        drop = fnn.Dropout(0.4, seed=2)
        shape, call = (4,), (lambda d, t: drop(d(t)))
    model, _ = _shared_model(lambda: layer, shape, call, backend)
    drawing = drop if name == "Dropout" else layer
    start = drawing.calls
    rng = np.random.default_rng(12)
    same = rng.normal(size=(4, *shape))
    x = [same, same.copy()]            # one input twice: only the masks tell the calls apart
    out = model.forward(x, training=True)
    assert drawing.calls == start + 2
    half = out.shape[1] // 2
    assert not np.allclose(out[:, :half], out[:, half:])
    R = rng.normal(size=out.shape)

    def replay():
        drawing.calls = start
    check_model_gradients(model, x, R, before_pass=replay, what=name)
