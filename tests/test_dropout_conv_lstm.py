"""ConvLSTM2D(dropout, recurrent_dropout, seed) and ConvLSTM2D(...)(x, initial_state=[h0, c0]).

The masks (fastnn/layers/recurrent_dropout.py): one per (sample, input value) on x_t and one
per (sample, state value) on h_{t-1} where it meets the recurrent kernel, fixed over the steps
and shared by the four gates, drawn per training pass from the recurrent layers' counter-based
stream. Checked here: outputs, states and every gradient (weights, x, h0, c0) against a PyTorch
float64 recurrence written here that applies the same masks through autograd (both backends);
1 and 2 threads bitwise; the masks' rate and their constancy over steps (read off dx); finite
differences with the draws replayed (gradients into h0 and c0 too); compiled = NumPy over
training steps; files continue the stream; Keras 3 on the same weights with initial states;
wrong states and bad rates refused by name."""

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend
from fastnn.layers.recurrent_dropout import _BACKWARDS_SALT, _REC_SALT

from _finite_differences import check_model_gradients
from _stream_files import reload_and_train_alike

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _masks(layer, n, x3, h3):
    """The masks the layer's next training pass draws (recomputed from its stream by the NumPy
    twin of the draw, which tests/test_recurrent_dropout.py holds to its definition)."""
    be = get_backend("numpy")
    seed = (layer._mask_seed or 0) ^ (_BACKWARDS_SALT if layer.go_backwards else 0)
    im, rm = np.ones(n * int(np.prod(x3))), np.ones(n * int(np.prod(h3)))
    if layer.dropout:
        be.dropout_mask(seed, layer.calls, layer.dropout, im)
    if layer.recurrent_dropout:
        be.dropout_mask(seed ^ _REC_SALT, layer.calls, layer.recurrent_dropout, rm)
    return im.reshape(n, *x3), rm.reshape(n, *h3)


def _same(size, k):
    total = k - 1
    return total // 2, total - total // 2


def torch_reference(x, W, U, b, im, rm, h0, c0, padding, back):
    """Keras' ConvLSTM equations (stride 1, no dilation) with the masks explicit: x (n, T, H,
    W, C), masks and states channels-last; returns (h of every step, h_T, c_T)."""
    kh, kw, _, K = W.shape
    f = K // 4
    Wt, Ut = W.permute(3, 2, 0, 1), U.permute(3, 2, 0, 1)
    xs = (x * im[:, None]).permute(0, 1, 4, 2, 3)
    pads = (*_same(x.shape[3], kw), *_same(x.shape[2], kh)) if padding == "same" else (0,) * 4
    rpad = ((kw - 1) // 2, kw - 1 - (kw - 1) // 2, (kh - 1) // 2, kh - 1 - (kh - 1) // 2)
    h, c = h0.permute(0, 3, 1, 2), c0.permute(0, 3, 1, 2)
    r = rm.permute(0, 3, 1, 2)
    outs = []
    T = x.shape[1]
    for t in (range(T - 1, -1, -1) if back else range(T)):
        z = F.conv2d(F.pad(xs[:, t], pads), Wt, b) + F.conv2d(F.pad(h * r, rpad), Ut)
        i, fg, g, o = z.split(f, dim=1)
        c = torch.sigmoid(fg) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h.permute(0, 2, 3, 1))
    return torch.stack(outs, 1), h.permute(0, 2, 3, 1), c.permute(0, 2, 3, 1)


def _model(backend, shape, filters, k, padding, rate, rec_rate, states, back=False,
           seq=True, dtype="float64", seed=7, return_state=True):
    inp = fnn.Input(shape)
    layer = fnn.ConvLSTM2D(filters, k, padding=padding, dropout=rate,
                           recurrent_dropout=rec_rate, seed=seed, return_sequences=seq,
                           return_state=return_state, go_backwards=back)
    if not states:
        return fnn.Model(inp, layer(inp), seed=0, dtype=dtype, backend=backend), layer
    sizes = shape[1:3] if padding == "same" else (shape[1] - k + 1, shape[2] - k + 1)
    h0, c0 = fnn.Input((*sizes, filters)), fnn.Input((*sizes, filters))
    out = layer(inp, initial_state=[h0, c0])
    return fnn.Model([inp, h0, c0], out, seed=0, dtype=dtype, backend=backend), layer


CASES = [  # (sample shape, filters, kernel, padding, dropout, recurrent_dropout, states, back)
    ((3, 5, 4, 2), 2, 3, "same", 0.3, 0.0, False, False),
    ((3, 5, 4, 2), 2, 3, "same", 0.0, 0.4, True, False),
    ((4, 6, 5, 1), 3, 3, "valid", 0.25, 0.35, True, True),
    ((2, 4, 4, 3), 2, 2, "same", 0.0, 0.0, True, False),      # initial states alone
    ((1, 5, 5, 2), 2, 3, "valid", 0.5, 0.5, False, False),    # one step
]


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_matches_pytorch_float64_with_the_same_masks(backend, case):
    shape, filters, k, padding, rate, rec_rate, states, back = case
    model, layer = _model(backend, shape, filters, k, padding, rate, rec_rate, states, back)
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0, 0.4, w.shape) for w in model.get_weights()])
    n = 3
    x = rng.normal(size=(n, *shape))
    h3 = layer.output_shape[1][1:] if isinstance(layer.output_shape[1], tuple) and len(
        layer.output_shape[1]) == 4 else layer.output_shape[1]
    h3 = tuple(h3)
    h0 = rng.normal(size=(n, *h3)) if states else np.zeros((n, *h3))
    c0 = rng.normal(size=(n, *h3)) if states else np.zeros((n, *h3))
    layer.calls = 4
    im, rm = _masks(layer, n, shape[1:], h3)
    outs = model.forward([x, h0, c0] if states else x, training=True)
    R = [rng.normal(size=o.shape) for o in outs]
    model.zero_grad()
    dxs = model.backward(R)
    dxs = dxs if isinstance(dxs, list) else [dxs]
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    tw = [torch.tensor(w, requires_grad=True) for w in layer.get_weights()]
    seq, hT, cT = torch_reference(tx, tw[0], tw[1], tw[2], torch.tensor(im), torch.tensor(rm),
                                  th0, tc0, padding, back)
    want = [seq, hT, cT]
    sum(((o * torch.tensor(r)).sum() for o, r in zip(want, R))).backward()
    pairs = list(zip(outs, [w.detach().numpy() for w in want]))
    pairs += [(g, w.grad.numpy()) for g, w in zip(layer._grads, tw)]
    pairs.append((dxs[0], tx.grad.numpy()))
    if states:
        pairs += [(dxs[1], th0.grad.numpy()), (dxs[2], tc0.grad.numpy())]
    for got, w in pairs:
        assert got.shape == w.shape
        assert np.abs(got - w).max() <= 1e-10 * max(1.0, np.abs(w).max())


def test_threads_give_the_same_bits():
    runs = []
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 3, 8, 8, 2)).astype(np.float32)
    h0 = rng.normal(size=(4, 8, 8, 4)).astype(np.float32)
    for nt in (1, 2):
        model, _ = _model("fast", (3, 8, 8, 2), 4, 3, "same", 0.3, 0.3, True, dtype="float32")
        with fnn.threads(nt):
            outs = model.forward([x, h0, h0], training=True)
            dxs = model.backward([np.ones_like(o) for o in outs])
        runs.append([*[o.copy() for o in outs], *[d.copy() for d in dxs],
                     *[g.copy() for g in model.grads]])
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_masks_have_the_rate_stay_over_steps_and_change_per_pass(backend):
    """dx = mask * (the gradient through the input convolution): its exact zeros are the
    dropped input values, the same at every step, about ``rate`` of them, new each pass."""
    rate = 0.3
    model, layer = _model(backend, (4, 6, 6, 3), 4, 3, "same", rate, 0.2, False)
    x = np.random.default_rng(5).normal(size=(32, 4, 6, 6, 3))
    drops = []
    for _ in range(2):
        outs = model.forward(x, training=True)
        dx = model.backward([np.ones_like(o) for o in outs])
        zero = dx == 0
        assert np.array_equal(zero, np.broadcast_to(zero[:, :1], zero.shape))
        drops.append(zero[:, 0])
    for z in drops:       # 3456 Bernoulli(0.3) draws: within 5 standard deviations (0.039)
        assert abs(z.mean() - rate) < 0.039
    assert not np.array_equal(*drops)
    # inference draws nothing and ignores the rates
    plain, _ = _model(backend, (4, 6, 6, 3), 4, 3, "same", 0.0, 0.0, False)
    plain.set_weights(model.get_weights())
    for a, b in zip(model.predict(x), plain.predict(x)):
        assert np.abs(a - b).max() <= 1e-12


@pytest.mark.parametrize("states", [False, True])
@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_gradients_by_finite_differences_with_the_draws_replayed(backend, states):
    model, layer = _model(backend, (3, 4, 4, 2), 2, 3, "same", 0.3, 0.4, states,
                          return_state=False)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 3, 4, 4, 2))
    xs = [x, rng.normal(size=(2, 4, 4, 2)), rng.normal(size=(2, 4, 4, 2))] if states else x
    R = rng.normal(size=(2, 3, 4, 4, 2))

    def replay():
        layer.calls = 2
    check_model_gradients(model, xs, R, before_pass=replay, what=(backend, states))


def test_compiled_equals_numpy_over_training():
    rng = np.random.default_rng(7)
    x = [rng.normal(size=(4, 3, 5, 5, 2)), rng.normal(size=(4, 3, 3, 2)),
         rng.normal(size=(4, 3, 3, 2))]
    ys = None
    runs = []
    for backend in ("numpy", "fast"):
        inp, h0, c0 = fnn.Input((3, 5, 5, 2)), fnn.Input((3, 3, 2)), fnn.Input((3, 3, 2))
        out = fnn.ConvLSTM2D(2, 3, dropout=0.3, recurrent_dropout=0.3)(
            inp, initial_state=[h0, c0])
        model = fnn.Model([inp, h0, c0], out, seed=2, dtype="float64", backend=backend)
        model.compile("mse", optimizer=fnn.SGD(0.1))
        ys = rng.normal(size=(4, 3, 3, 2)) if ys is None else ys
        for _ in range(4):
            model.train_on_batch(x, ys)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        assert np.abs(a - b).max() <= 1e-12


def test_files_continue_the_stream(tmp_path):
    inp, h0, c0 = fnn.Input((3, 5, 5, 1)), fnn.Input((5, 5, 2)), fnn.Input((5, 5, 2))
    out = fnn.ConvLSTM2D(2, 3, padding="same", dropout=0.2, recurrent_dropout=0.3)(
        inp, initial_state=[h0, c0])
    model = fnn.Model([inp, h0, c0], out, seed=3)
    rng = np.random.default_rng(8)
    xs = [rng.normal(size=s).astype(np.float32) for s in
          ((4, 3, 5, 5, 1), (4, 5, 5, 2), (4, 5, 5, 2))]
    y = rng.normal(size=(4, 5, 5, 2)).astype(np.float32)
    layer = reload_and_train_alike(model, xs, y, str(tmp_path / "m.fnn"), fnn.ConvLSTM2D)
    assert (layer.dropout, layer.recurrent_dropout, layer.calls) == (0.2, 0.3, 3)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("kwargs", [dict(padding="same"),
                                    dict(padding="valid", return_sequences=True,
                                         go_backwards=True)])
def test_keras_gives_the_same_outputs_with_initial_states(keras, backend, kwargs):
    rng = np.random.default_rng(9)
    shape, f = (3, 6, 5, 2), 3
    sizes = (6, 5) if kwargs["padding"] == "same" else (4, 3)
    inp, h0, c0 = fnn.Input(shape), fnn.Input((*sizes, f)), fnn.Input((*sizes, f))
    ours_layer = fnn.ConvLSTM2D(f, 3, return_state=True, **kwargs)
    ours = fnn.Model([inp, h0, c0], ours_layer(inp, initial_state=[h0, c0]), seed=1,
                     dtype="float64", backend=backend)
    theirs = keras.layers.ConvLSTM2D(f, 3, return_state=True, dtype="float64", **kwargs)
    x = rng.normal(size=(2, *shape))
    s = [rng.normal(size=(2, *sizes, f)) for _ in range(2)]
    theirs(x, initial_state=s)
    theirs.set_weights([rng.normal(0, 0.3, w.shape) for w in ours.get_weights()])
    ours.set_weights(theirs.get_weights())
    for got, want in zip(ours.predict([x, *s]), theirs(x, initial_state=s)):
        # Keras' NumPy backend runs this layer in float32 (its convolutions): float32's
        # tolerance, as tests/test_conv_lstm.py's Keras checks
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(dropout=1.0), r"dropout must be a finite number in \[0.0, 1.0\)"),
    (dict(recurrent_dropout=-0.5), r"recurrent_dropout"),
    (dict(dropout=float("nan")), r"dropout"),
    (dict(dropout=0.1, seed=2**64), r"seed must be below"),
])
def test_bad_rates_are_refused_by_name(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        fnn.ConvLSTM2D(2, 3, **kwargs)


@pytest.mark.parametrize("states,pattern", [
    ([(4, 4, 2)], r"initial_state of 1 tensor"),
    ([(4, 4, 2), (4, 4, 2), (4, 4, 2)], r"initial_state of 3 tensor"),
    ([(4, 4, 3), (4, 4, 2)], r"initial_state must be 2 tensors \[h, c\] of shape "
                             r"\(batch, 4, 4, 2\)"),
    ([(4, 4, 2), (2, 2, 2)], r"shapes \[\(None, 4, 4, 2\), \(None, 2, 2, 2\)\]"),
])
def test_wrong_initial_states_are_refused_naming_the_argument(states, pattern):
    inp = fnn.Input((3, 4, 4, 1))
    given = [fnn.Input(s) for s in states]
    with pytest.raises(ValueError, match=pattern):
        fnn.ConvLSTM2D(2, 3, padding="same")(inp, initial_state=given)
