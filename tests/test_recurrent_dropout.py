"""Keras' ``dropout`` and ``recurrent_dropout`` on SimpleRNN, LSTM and GRU
(fastnn/layers/recurrent_dropout.py; the masks are applied in the kernels, src_c/fnn_rnn.h).

1. With the layer's masks, outputs and every gradient equal a PyTorch float64 recurrence that
   applies the same masks through autograd (step masks, go_backwards, initial states).
2. Finite differences in float64 through a model using both dropouts, masks held fixed (the
   layer's ``calls`` reset before each evaluation), both backends.
3. Compiled == NumPy twin (Bidirectional too); 4. the same bits at 1 and 2 threads.
5. Inference ignores the rates; 6. the masks' rate and their constancy across steps.
7. Keras 3 with the same masks injected; 8. a small task still learns; model files keep
   the rates, seed and stream state; forged values are refused.
"""

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend
from fastnn.layers import layer_from_config
from fastnn.layers.recurrent_dropout import _BACKWARDS_SALT, _REC_SALT

torch = pytest.importorskip("torch")

BACKENDS = ["fast", "numpy"]
CELLS = {"simple": fnn.SimpleRNN, "lstm": fnn.LSTM, "gru": fnn.GRU}


def _rel(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = np.abs(want).max()
    return np.abs(got - want).max() / (scale if scale > 0 else 1.0)


def _masks(layer, n, d):
    """The masks the layer's next training pass draws (recomputed from its stream)."""
    be = get_backend("numpy")
    seed = (layer._mask_seed or 0) ^ (_BACKWARDS_SALT if layer.go_backwards else 0)
    im = np.ones(n * d)
    rm = np.ones(n * layer.units)
    if layer.dropout:
        be.dropout_mask(seed, layer.calls, layer.dropout, im)
    if layer.recurrent_dropout:
        be.dropout_mask(seed ^ _REC_SALT, layer.calls, layer.recurrent_dropout, rm)
    return im.reshape(n, d), rm.reshape(n, layer.units)


def _perturb(model, seed=1, scale=0.3):
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, scale, w.shape).astype(w.dtype)
                       for w in model.get_weights()])


# ---------------------------------------------------------------------------- 1. PyTorch
def _torch_run(kind, x, steps_on, W, U, b, im, rm, back, h0, c0):
    """Keras' equations with the masks explicit; outputs in step order (n, T, u)."""
    n, T, _ = x.shape
    u = U.shape[0]
    xm = x * im[:, None, :]
    h, c = h0, c0
    outs = []
    order = range(T - 1, -1, -1) if back else range(T)
    for t in order:
        xt, hr = xm[:, t], h * rm
        if kind == "simple":
            hn, cn = torch.tanh(xt @ W + hr @ U + b), c
        elif kind == "lstm":
            z = xt @ W + hr @ U + b
            i, f = torch.sigmoid(z[:, :u]), torch.sigmoid(z[:, u:2 * u])
            g, o = torch.tanh(z[:, 2 * u:3 * u]), torch.sigmoid(z[:, 3 * u:])
            cn = f * c + i * g
            hn = o * torch.tanh(cn)
        else:
            xz, rz = xt @ W + b[0], hr @ U + b[1]
            z = torch.sigmoid(xz[:, :u] + rz[:, :u])
            r = torch.sigmoid(xz[:, u:2 * u] + rz[:, u:2 * u])
            hh = torch.tanh(xz[:, 2 * u:] + r * rz[:, 2 * u:])
            hn, cn = z * h + (1 - z) * hh, c       # the blend keeps the unmasked h (Keras)
        on = steps_on[:, t:t + 1]
        h = torch.where(on, hn, h)
        c = torch.where(on, cn, c)
        outs.append(h)
    return torch.stack(outs, 1), h, c


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("back", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("kind", ["simple", "lstm", "gru"])
def test_matches_torch_with_the_same_masks(kind, masked, back, backend):
    n, T, d, u = 5, 6, 4, 7
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, T, d))
    lengths = [6, 3, 5, 1, 4]
    if masked:
        for b, k in enumerate(lengths):
            x[b, k:] = 0.0
    inp = fnn.Input((T, d))
    h0_in = fnn.Input((u,))
    states = [h0_in]
    if kind == "lstm":
        c0_in = fnn.Input((u,))
        states.append(c0_in)
    seq = fnn.Masking(0.0)(inp) if masked else inp
    layer = CELLS[kind](u, return_sequences=True, go_backwards=back, dropout=0.3,
                        recurrent_dropout=0.4, seed=11)
    y = layer(seq, initial_state=states)
    model = fnn.Model([inp, *states], y, dtype="float64", backend=backend, seed=2)
    _perturb(model)
    h0 = rng.normal(size=(n, u))
    c0 = rng.normal(size=(n, u))
    feeds = [x, h0] + ([c0] if kind == "lstm" else [])
    model.layers[-1].calls = 3
    im, rm = _masks(layer, n, d)
    assert 0 < (im == 0).sum() < im.size and 0 < (rm == 0).sum() < rm.size   # masks drop
    out = model.forward(feeds, training=True)
    g = rng.normal(size=out.shape)
    model.zero_grad()
    grads_in = model.backward(g)

    tt = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    W, U, b = (tt(w) for w in layer.get_weights())
    xt, h0t, c0t = tt(x), tt(h0), tt(c0)
    on = torch.tensor(np.abs(x).sum(-1) != 0 if masked else np.ones((n, T), bool))
    outs, _, _ = _torch_run(kind, xt, on, W, U, b, torch.tensor(im), torch.tensor(rm), back,
                            h0t, c0t)
    (outs * torch.tensor(g)).sum().backward()
    assert _rel(out, outs.detach().numpy()) < 1e-10
    grads = [np.array(gw) for gw in model.grads]
    for got, want in zip(grads, [W.grad, U.grad, b.grad]):
        assert _rel(got, want.numpy()) < 1e-10
    assert _rel(grads_in[0], xt.grad.numpy()) < 1e-10
    assert _rel(grads_in[1], h0t.grad.numpy()) < 1e-10
    if kind == "lstm":
        assert _rel(grads_in[2], c0t.grad.numpy()) < 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_returned_states_match_torch(kind, backend):
    """return_state (the last output and states, gradients reaching them) with both masks."""
    n, T, d, u = 4, 5, 3, 6
    rng = np.random.default_rng(4)
    x = rng.normal(size=(n, T, d))
    inp = fnn.Input((T, d))
    layer = CELLS[kind](u, return_state=True, go_backwards=True, dropout=0.4,
                        recurrent_dropout=0.3, seed=2)
    outs = layer(inp)
    model = fnn.Model(inp, outs, dtype="float64", backend=backend, seed=1)
    _perturb(model)
    im, rm = _masks(layer, n, d)
    got = model.forward(x, training=True)
    gs = [rng.normal(size=o.shape) for o in got]
    model.zero_grad()
    dx = model.backward(gs)

    tt = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    W, U, b = (tt(w) for w in layer.get_weights())
    xt = tt(x)
    zeros = torch.zeros(n, u, dtype=torch.float64)
    _, h, c = _torch_run(kind, xt, torch.ones(n, T, dtype=torch.bool), W, U, b,
                         torch.tensor(im), torch.tensor(rm), True, zeros, zeros)
    want = [h, h, c] if kind == "lstm" else [h, h]
    sum((w * torch.tensor(g)).sum() for w, g in zip(want, gs)).backward()
    for o, w in zip(got, want):
        assert _rel(o, w.detach().numpy()) < 1e-10
    for gw, w in zip(model.grads, [W, U, b]):
        assert _rel(gw, w.grad.numpy()) < 1e-10
    assert _rel(dx, xt.grad.numpy()) < 1e-10


# ---------------------------------------------------------------------------- 2. FD
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["simple", "lstm", "gru"])
def test_gradients_match_finite_differences(kind, backend):
    n, T, d, u = 3, 5, 3, 4
    model = fnn.Sequential([CELLS[kind](u, return_sequences=True, dropout=0.25,
                                        recurrent_dropout=0.35, seed=4),
                            CELLS[kind](3, go_backwards=True, dropout=0.2,
                                        recurrent_dropout=0.3, seed=5), fnn.Dense(2)],
                           input_shape=(T, d), dtype="float64", backend=backend, seed=0)
    _perturb(model, 2, 0.4)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, T, d))
    g = rng.normal(size=(n, 2))
    rnns = model.layers[:2]

    def loss(xv):
        for layer in rnns:
            layer.calls = 1          # the same masks at every evaluation
        return float((model.forward(xv, training=True) * g).sum())

    loss(x)
    model.zero_grad()
    dx = model.backward(g)
    analytic = [np.array(w) for w in model.grads]
    eps = 1e-6
    weights = model.get_weights()
    for k, w in enumerate(weights):
        num = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            for sign in (1, -1):
                w2 = [v.copy() for v in weights]
                w2[k][idx] += sign * eps
                model.set_weights(w2)
                num[idx] += sign * loss(x) / (2 * eps)
        model.set_weights(weights)
        assert _rel(analytic[k], num) < 1e-6, k
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        num[idx] = (loss(xp) - loss(xm)) / (2 * eps)
    assert _rel(dx, num) < 1e-6


# ---------------------------------------------------------------------------- 3. twins
def _train_pass(model, x, seed=9):
    y = model.forward(x, training=True)
    g = np.random.default_rng(seed).normal(size=np.shape(y)).astype(x.dtype)
    model.zero_grad()
    dx = model.backward(g)
    return [np.array(y), np.array(dx), *[np.array(w) for w in model.grads]]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch", [3, 19])
@pytest.mark.parametrize("kind", ["simple", "lstm", "gru"])
def test_compiled_matches_numpy_twin(kind, batch, dtype):
    res = {}
    for be in BACKENDS:
        model = fnn.Sequential([fnn.Masking(0.0),
                                fnn.Bidirectional(CELLS[kind](9, return_sequences=True,
                                                              dropout=0.3,
                                                              recurrent_dropout=0.3)),
                                CELLS[kind](5, go_backwards=True, recurrent_dropout=0.5)],
                               input_shape=(7, 4), dtype=dtype, backend=be, seed=3)
        _perturb(model)
        x = np.random.default_rng(1).normal(size=(batch, 7, 4)).astype(dtype)
        x[0, 5:] = 0
        res[be] = _train_pass(model, x)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for a, b in zip(res["fast"], res["numpy"]):
        assert _rel(a, b) < tol


def test_bidirectional_directions_draw_their_own_masks():
    layer = fnn.Bidirectional(fnn.LSTM(6, dropout=0.5, recurrent_dropout=0.5, seed=8))
    model = fnn.Sequential([layer], input_shape=(4, 5), dtype="float64", backend="numpy")
    f, b = layer.forward_layer, layer.backward_layer
    assert f._mask_seed == b._mask_seed == 8
    (fi, fr), (bi, br) = _masks(f, 10, 5), _masks(b, 10, 5)
    assert not np.array_equal(fi, bi) and not np.array_equal(fr, br)
    model.forward(np.ones((10, 4, 5)), training=True)
    assert f.calls == b.calls == 1


# ---------------------------------------------------------------------------- 4. threads
@pytest.mark.parametrize("kind", ["lstm", "gru", "simple"])
@pytest.mark.parametrize("size", [(53, 40, 7, 64), (64, 12, 32, 128)], ids=["groups", "gemm"])
def test_bitwise_equal_at_one_and_two_threads(kind, size):
    n, T, d, u = size
    model = fnn.Sequential([CELLS[kind](u, return_sequences=True, dropout=0.2,
                                        recurrent_dropout=0.3, seed=1,
                                        recurrent_initializer="glorot_uniform")],
                           input_shape=(T, d), dtype="float32", backend="fast", seed=21)
    x = np.random.default_rng(5).normal(size=(n, T, d)).astype("float32")
    adaptive = fnn.get_adaptive_threads()
    fnn.set_adaptive_threads(False)
    results = {}
    try:
        for threads in (1, 2):
            with fnn.threads(threads):
                model.layers[0].calls = 0
                results[threads] = _train_pass(model, x)
    finally:
        fnn.set_adaptive_threads(adaptive)
    for a, b in zip(results[1], results[2]):
        assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------- 5. inference
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["simple", "lstm", "gru"])
def test_inference_ignores_the_rates(kind, backend):
    x = np.random.default_rng(0).normal(size=(4, 6, 3))
    plain = fnn.Sequential([CELLS[kind](5, return_sequences=True)], input_shape=(6, 3),
                           dtype="float64", backend=backend, seed=1)
    drop = fnn.Sequential([CELLS[kind](5, return_sequences=True, dropout=0.5,
                                       recurrent_dropout=0.5)], input_shape=(6, 3),
                          dtype="float64", backend=backend, seed=1)
    drop.set_weights(plain.get_weights())
    assert np.array_equal(drop.predict(x), plain.predict(x))
    assert np.array_equal(drop.forward(x, training=False), plain.forward(x, training=False))
    assert drop.layers[0].calls == 0
    assert not np.allclose(drop.forward(x, training=True), plain.forward(x, training=True))
    assert drop.layers[0].calls == 1


# ---------------------------------------------------------------------------- 6. the masks
@pytest.mark.parametrize("backend", BACKENDS)
def test_masks_have_the_rate_and_hold_across_steps(backend):
    n, T, d, rate = 400, 5, 30, 0.3
    # y_t = x_t W with W = I: every step's output is the input mask
    layer = fnn.SimpleRNN(d, activation="linear", use_bias=False, return_sequences=True,
                          dropout=rate, seed=3)
    model = fnn.Sequential([layer], input_shape=(T, d), dtype="float64", backend=backend)
    model.set_weights([np.eye(d), np.zeros((d, d))])
    y = model.forward(np.ones((n, T, d)), training=True)
    assert np.array_equal(y, np.broadcast_to(y[:, :1], y.shape))
    assert set(np.unique(y)) == {0.0, 1 / (1 - rate)}
    assert abs((y[:, 0] == 0).mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / (n * d))
    # h_t = (h_{t-1} * m) U with U = I, h0 = 1: h_t = m^t, zero where the mask is
    inp, h0 = fnn.Input((T, d)), fnn.Input((d,))
    rec = fnn.SimpleRNN(d, activation="linear", use_bias=False, return_sequences=True,
                        recurrent_dropout=rate, seed=4)
    m2 = fnn.Model([inp, h0], rec(inp, initial_state=[h0]), dtype="float64", backend=backend)
    m2.set_weights([np.zeros((d, d)), np.eye(d)])
    y = m2.forward([np.zeros((n, T, d)), np.ones((n, d))], training=True)
    on = y[:, 0] != 0
    assert abs((~on).mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / (n * d))
    for t in range(T):
        assert np.allclose(y[:, t], np.where(on, (1 / (1 - rate)) ** (t + 1), 0))
    # a new training pass draws new masks; the two backends draw the same ones
    y2 = m2.forward([np.zeros((n, T, d)), np.ones((n, d))], training=True)
    assert not np.array_equal(y2[:, 0] != 0, on)


def test_both_backends_draw_the_same_masks():
    ys = []
    for be in BACKENDS:
        model = fnn.Sequential([fnn.GRU(6, dropout=0.4, recurrent_dropout=0.4)],
                               input_shape=(5, 3), dtype="float64", backend=be, seed=12)
        ys.append(model.forward(np.ones((8, 5, 3)), training=True))
    assert _rel(ys[0], ys[1]) < 1e-13


# ---------------------------------------------------------------------------- 7. Keras 3
@pytest.mark.parametrize("rates", [(0.0, 0.0), (0.3, 0.0), (0.3, 0.4)])
@pytest.mark.parametrize("kind", ["simple", "lstm", "gru"])
def test_keras_with_the_same_masks(kind, rates, keras):
    n, T, d, u = 4, 5, 3, 6
    drop, rdrop = rates
    model = fnn.Sequential([CELLS[kind](u, return_sequences=True, dropout=drop,
                                        recurrent_dropout=rdrop, seed=6)],
                           input_shape=(T, d), dtype="float64", backend="numpy", seed=1)
    _perturb(model)
    layer = model.layers[0]
    x = np.random.default_rng(2).normal(size=(n, T, d))
    im, rm = _masks(layer, n, d)
    ours = model.forward(x, training=True)
    kcls = {"simple": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
            "gru": keras.layers.GRU}[kind]
    floatx = keras.config.floatx()
    keras.config.set_floatx("float64")      # Keras' states otherwise start as float32
    try:
        klayer = kcls(u, return_sequences=True, dropout=drop, recurrent_dropout=rdrop)
        klayer.build((n, T, d))
        klayer.set_weights(layer.get_weights())
        cell = klayer.cell
        per_gate = getattr(cell, "dropout_mask_count", None)
        # Keras' masks replaced by ours: per-gate lists (its implementation 1) hold ours for each
        cell.get_dropout_mask = lambda _: [im] * per_gate if per_gate else im
        cell.get_recurrent_dropout_mask = lambda _: [rm] * per_gate if per_gate else rm
        theirs = np.asarray(klayer(x, training=True))
    finally:
        keras.config.set_floatx(floatx)
    # Keras' numpy backend lands ~2e-7 from float64 here (the PyTorch test holds 1e-10)
    assert _rel(ours, theirs) < 1e-6


# ---------------------------------------------------------------------------- 8. learning
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_small_task_still_learns(backend):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8, 2)).astype("float32")
    y = (x[:, :, 0].sum(1) > 0).astype("float32").reshape(-1, 1)
    model = fnn.Sequential([fnn.LSTM(16, dropout=0.1, recurrent_dropout=0.1, seed=1),
                            fnn.Dense(1, activation="sigmoid")],
                           input_shape=(8, 2), backend=backend, seed=0)
    model.compile(loss="binary_crossentropy", optimizer=fnn.Adam(0.01), metrics=["accuracy"])
    hist = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.85


# ---------------------------------------------------------------------------- files, config
@pytest.mark.parametrize("backend", BACKENDS)
def test_model_file_keeps_rates_seed_and_stream(tmp_path, backend):
    model = fnn.Sequential([fnn.Bidirectional(fnn.GRU(4, return_sequences=True,
                                                      dropout=0.2, recurrent_dropout=0.3)),
                            fnn.LSTM(3, recurrent_dropout=0.25, seed=9)],
                           input_shape=(5, 2), dtype="float64", backend=backend, seed=4)
    x = np.random.default_rng(0).normal(size=(6, 5, 2))
    model.forward(x, training=True)
    path = str(tmp_path / "m.fnn")
    model.save(path)
    loaded = fnn.load(path)
    lstm = loaded.layers[1]
    assert (lstm.dropout, lstm.recurrent_dropout, lstm.seed, lstm.calls) == (0.0, 0.25, 9, 1)
    assert loaded.layers[0].forward_layer.recurrent_dropout == 0.3
    assert np.array_equal(loaded.forward(x, training=True), model.forward(x, training=True))


@pytest.mark.parametrize("change, error", [
    ({"dropout": 1.0}, ValueError), ({"dropout": -0.1}, ValueError),
    ({"recurrent_dropout": float("nan")}, ValueError), ({"dropout": "0.2"}, TypeError),
    ({"seed": -1}, ValueError), ({"seed": 2**64}, ValueError), ({"seed": 1.5}, TypeError),
    ({"state": {"mask_seed": 1}}, ValueError),
    ({"state": {"mask_seed": -3, "calls": 0}}, ValueError),
    ({"state": {"mask_seed": 1, "calls": 2**63}}, ValueError),
])
def test_forged_configs_are_refused(change, error):
    config = fnn.LSTM(3, dropout=0.1).get_config()
    config.update(change)
    with pytest.raises(error):
        layer_from_config(config)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="recurrent_dropout"):
        fnn.GRU(3, recurrent_dropout=1.5)
    with pytest.raises(ValueError, match="dropout"):
        fnn.SimpleRNN(3, dropout=1.0)
