"""Keras' step masks: ``Embedding(mask_zero=True)``, ``Masking``, and the layers and losses that
skip padded steps (fastnn/layers/masking.py, Layer.compute_mask, the recurrent kernels' mask in
src_c/fnn_rnn_tmpl.h and its NumPy twin).

- Keras' own layers (NumPy backend) on the same weights: SimpleRNN, LSTM, GRU in every
  return_sequences / go_backwards combination, zero_output_for_mask, Bidirectional,
  GlobalAveragePooling1D, Masking, merges and Dense passing the mask on, the masked loss and
  metrics of ``evaluate``;
- PyTorch in float64: packed sequences (right padding: PyTorch's own skipping of padded
  steps) and, for masks with holes anywhere, the recurrences written in torch with the masked
  steps held by ``torch.where``, differentiated by autograd: outputs, every weight gradient and
  the input gradient;
- finite differences through masked models on both backends; compiled = NumPy twin; bitwise at
  1 and 2 threads; files; the warning where a layer drops a mask; bad inputs; learning a task
  that needs the mask (the last letter of a padded word).

Expected values come from Keras, PyTorch, central differences or shorter unpadded sequences,
never from the code under test alone.
"""

import os
import warnings

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients

BACKENDS = ["fast", "numpy"]
CELLS = {"simple": fnn.SimpleRNN, "lstm": fnn.LSTM, "gru": fnn.GRU}


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = np.abs(b).max() if b.size else 0.0
    return float(np.abs(a - b).max() / (scale if scale > 0 else 1.0)) if b.size else 0.0


def _ids(rng, n, T, V, lengths, lead=()):
    """Ids in [1, V) padded with 0 after each sample's length (and at the given leading
    (sample, step) places: holes a mask must skip too)."""
    ids = rng.integers(1, V, (n, T))
    for i, L in enumerate(lengths):
        ids[i, L:] = 0
    for i, t in lead:
        ids[i, t] = 0
    return ids


def _padded(rng, n, T, d, lengths, holes=()):
    x = rng.standard_normal((n, T, d))
    for i, L in enumerate(lengths):
        x[i, L:] = 0.0
    for i, t in holes:
        x[i, t] = 0.0
    return x


# ---------------------------------------------------------------------------- 1. against the
# same network on the unpadded sequences (no mask needed there)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_padding_changes_nothing_against_the_unpadded_sequences(kind, backend, go_backwards):
    """Masking + a recurrent layer on right-padded sequences gives each sample's last state
    on its own unpadded sequence (read backwards: the padding comes first and is skipped)."""
    rng = np.random.default_rng(len(kind))
    n, T, d, u = 5, 7, 3, 4
    lengths = [7, 4, 1, 6, 2]
    x = _padded(rng, n, T, d, lengths)
    model = fnn.Sequential([fnn.Masking(), CELLS[kind](u, go_backwards=go_backwards)],
                           input_shape=(T, d), seed=1, backend=backend, dtype="float64")
    y = model.predict(x)
    for i, L in enumerate(lengths):
        short = fnn.Sequential([CELLS[kind](u, go_backwards=go_backwards)], input_shape=(L, d),
                               backend=backend, dtype="float64")
        short.set_weights(model.get_weights())
        assert _rel(y[i], short.predict(x[i:i + 1, :L])[0]) <= 1e-12


# ---------------------------------------------------------------------------- 2. Keras
keras = None


def _keras():
    global keras
    if keras is None:
        os.environ.setdefault("KERAS_BACKEND", "numpy")
        keras = pytest.importorskip("keras")
    return keras


def _both(fnn_layers, keras_layers, T, ids, dtype="float32"):
    k = _keras()
    model = fnn.Sequential(fnn_layers, input_shape=(T,), seed=3, dtype=dtype)
    rng = np.random.default_rng(7)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    ref = k.Sequential([k.Input((T,)), *keras_layers])
    ref.set_weights(model.get_weights())
    return model.predict(ids), ref.predict(ids, verbose=0)


KERAS_RNN = {"simple": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("seq,zero", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("back", [False, True])
def test_recurrent_layers_match_keras_with_a_mask(kind, seq, back, zero):
    """Embedding(mask_zero=True) then a recurrent layer, right padding, a leading pad and an
    all-padding sample: Keras' outputs (the carried state, or 0 with zero_output_for_mask, at
    padded steps of a sequence). zero_output_for_mask is documented by Keras for sequences
    only; its code also zeroes a last output whose last step is padding, which fastnn does
    not (the last real state is the output, with or without it)."""
    k = _keras()
    V, T = 13, 8
    ids = _ids(np.random.default_rng(1), 6, T, V, [8, 3, 1, 5, 0, 6], lead=[(3, 0), (5, 2)])
    args = dict(return_sequences=seq, go_backwards=back, zero_output_for_mask=zero)
    got, want = _both([fnn.Embedding(V, 4, mask_zero=True), CELLS[kind](5, **args)],
                      [k.layers.Embedding(V, 4, mask_zero=True),
                       getattr(k.layers, KERAS_RNN[kind])(5, **args)], T, ids)
    assert np.abs(got - want).max() <= 2e-6


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_bidirectional_and_masked_average_match_keras(kind, merge_mode):
    """Bidirectional (which zeroes padded outputs in both directions, as Keras forces), a
    Dense on every step and GlobalAveragePooling1D over the real steps only."""
    k = _keras()
    V, T = 11, 7
    ids = _ids(np.random.default_rng(2), 5, T, V, [7, 2, 5, 1, 4], lead=[(2, 0)])
    got, want = _both(
        [fnn.Embedding(V, 4, mask_zero=True),
         fnn.Bidirectional(CELLS[kind](3, return_sequences=True), merge_mode=merge_mode),
         fnn.Dense(4, activation="tanh"), fnn.GlobalAveragePooling1D()],
        [k.layers.Embedding(V, 4, mask_zero=True),
         k.layers.Bidirectional(getattr(k.layers, KERAS_RNN[kind])(3, return_sequences=True),
                                merge_mode=merge_mode),
         k.layers.Dense(4, activation="tanh"), k.layers.GlobalAveragePooling1D()], T, ids)
    assert np.abs(got - want).max() <= 2e-6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("value", [0.0, -1.5])
def test_masking_kernel_equals_its_twin_and_the_definition(dtype, value):
    """The compiled Masking kernels against the NumPy twin and the definition written out
    (a step is padding when every feature equals the value; NaN differs from everything, and
    -0.0 equals 0.0), forward and backward, at 1 and 2 threads."""
    from fastnn.backends import get_backend
    rng = np.random.default_rng(9)
    x = rng.standard_normal((7, 33, 5)).astype(dtype)
    x[rng.random((7, 33)) < 0.4] = value
    x[0, 3] = value
    x[0, 3, 2] = np.nan                   # real
    x[1, 4] = value
    x[1, 4, 0] = np.inf                   # real
    x[2, 5] = -0.0 if value == 0.0 else value     # padding either way
    dy = rng.standard_normal(x.shape).astype(dtype)
    real = np.array([[any(f != value for f in step) for step in row] for row in x])
    want_y = np.where(real[..., None], x, 0).astype(dtype)
    want_dx = np.where(real[..., None], dy, 0).astype(dtype)
    previous = fnn.get_num_threads()
    try:
        for name, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
            fnn.set_num_threads(threads)
            be = get_backend(name)
            y, dx = np.full_like(x, 7), np.full_like(x, 7)
            mask = np.zeros((7, 33), np.uint8)
            be.masking_forward(x, value, y, mask)
            be.masking_backward(dy, mask, dx)
            assert mask.astype(bool).tolist() == real.tolist(), name
            assert y.tobytes() == want_y.tobytes(), name
            assert dx.tobytes() == want_dx.tobytes(), name
    finally:
        fnn.set_num_threads(previous)


def test_masking_layer_matches_keras():
    """Masking (a step is padding when all its features equal mask_value) then LSTM, with
    mask_value 0.5 and a step with only some features equal to it (real)."""
    k = _keras()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    x[0, 4:] = 0.5
    x[1, 1] = 0.5
    x[2, 2, :2] = 0.5                    # not all features: a real step
    x[3] = 0.5                           # nothing real
    model = fnn.Sequential([fnn.Masking(0.5), fnn.LSTM(3, return_sequences=True)],
                           input_shape=(6, 3), seed=5)
    ref = k.Sequential([k.Input((6, 3)), k.layers.Masking(0.5),
                        k.layers.LSTM(3, return_sequences=True)])
    ref.set_weights(model.get_weights())
    assert np.abs(model.predict(x) - ref.predict(x, verbose=0)).max() <= 2e-6
    # Masking's own output: 0 at padded steps, x elsewhere
    out = fnn.Sequential([fnn.Masking(0.5)], input_shape=(6, 3)).predict(x)
    want = np.where((x != 0.5).any(axis=-1, keepdims=True), x, 0)
    assert out.tobytes() == want.tobytes()


def test_functional_merge_and_attention_masks_match_keras():
    """Functional: two masked branches added (the mask: real in both), and a self-attention
    whose padded keys are not attended, compared at the real queries. (A padded query's row
    differs: fastnn's attends to the real keys; Keras' default path gives it uniform weights
    over every key, padded ones included, and its path with dropout zero weights.)"""
    k = _keras()
    V, T = 9, 6
    rng = np.random.default_rng(5)
    ids = _ids(rng, 4, T, V, [6, 3, 5, 2])
    inp = fnn.Input((T,))
    e = fnn.Embedding(V, 8, mask_zero=True)(inp)
    a = fnn.LSTM(8, return_sequences=True)(e)
    h = fnn.Add()([e, a])
    att = fnn.MultiHeadAttention(num_heads=2, key_dim=4)(h, h)
    model = fnn.Model(inp, att, seed=6)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    ki = k.Input((T,))
    ke = k.layers.Embedding(V, 8, mask_zero=True)(ki)
    ka = k.layers.LSTM(8, return_sequences=True)(ke)
    kh = k.layers.Add()([ke, ka])
    kt = k.layers.MultiHeadAttention(num_heads=2, key_dim=4)(kh, kh)
    ref = k.Model(ki, kt)
    ref.set_weights(model.get_weights())
    got, want = model.predict(ids), ref.predict(ids, verbose=0)
    real = ids != 0
    assert np.abs(got[real] - want[real]).max() <= 2e-5


def test_batch_normalization_statistics_skip_padded_steps_as_keras():
    """A training call of Embedding(mask_zero) -> BatchNormalization -> LSTM: the batch
    statistics of the real steps only (every step normalized with them), as Keras 3. Keras'
    moving variance takes the biased batch variance, fastnn's the unbiased one (documented):
    the test converts Keras' with the count of real steps."""
    k = _keras()
    V, T, m = 10, 7, 0.75
    ids = _ids(np.random.default_rng(5), 6, T, V, [7, 2, 5, 1, 0, 4], lead=[(2, 0)])
    model = fnn.Sequential([fnn.Embedding(V, 3, mask_zero=True),
                            fnn.BatchNormalization(momentum=m),
                            fnn.LSTM(4, return_sequences=True)], input_shape=(T,), seed=2)
    rng = np.random.default_rng(8)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    ref = k.Sequential([k.Input((T,)), k.layers.Embedding(V, 3, mask_zero=True),
                        k.layers.BatchNormalization(momentum=m),
                        k.layers.LSTM(4, return_sequences=True)])
    ref.set_weights(model.get_weights())
    before = model.get_weights()
    got = model.forward(ids.astype(np.float32), training=True).reshape(6, T, 4)
    want = np.asarray(ref(ids, training=True))
    assert np.abs(got - want).max() <= 2e-6
    mean0, var0 = before[3], before[4]
    mean, var = model.get_weights()[3:5]
    k_mean, k_var = ref.layers[1].get_weights()[2:4]
    assert np.abs(mean - k_mean).max() <= 1e-6
    count = int((ids != 0).sum())
    biased = (k_var - m * var0) / (1 - m)
    assert np.abs(var - (m * var0 + (1 - m) * biased * count / (count - 1))).max() <= 1e-5
    # and not the statistics of every step
    emb = model.layers[0].get_weights()[0][ids].reshape(-1, 3)
    assert np.abs(mean - (m * mean0 + (1 - m) * emb.mean(axis=0))).max() > 1e-3


def test_masked_loss_and_metrics_match_keras_evaluate():
    """A per-step classifier on padded sequences: evaluate's loss is the mean over the real
    steps (Keras' masked loss), accuracy the share of real steps right."""
    k = _keras()
    V, T, C = 12, 7, 4
    rng = np.random.default_rng(8)
    ids = _ids(rng, 9, T, V, [7, 3, 5, 1, 6, 2, 4, 7, 3])
    y = rng.integers(0, C, (9, T))
    layers = [fnn.Embedding(V, 5, mask_zero=True), fnn.GRU(6, return_sequences=True),
              fnn.Dense(C, activation="softmax")]
    model = fnn.Sequential(layers, input_shape=(T,), seed=9, dtype="float64")
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    model.compile("sparse_categorical_crossentropy", "adam", metrics=["accuracy"])
    ref = k.Sequential([k.Input((T,)), k.layers.Embedding(V, 5, mask_zero=True),
                        k.layers.GRU(6, return_sequences=True),
                        k.layers.Dense(C, activation="softmax")])
    ref.set_weights(model.get_weights())
    ref.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    want = ref.evaluate(ids, y, verbose=0, return_dict=True)
    got = model.evaluate(ids, y)
    assert abs(got["loss"] - want["loss"]) <= 1e-5 * abs(want["loss"])
    assert abs(got["accuracy"] - want["accuracy"]) <= 1e-6
    # and by hand: the padded steps' targets change nothing
    p = model.predict(ids)
    real = ids != 0
    ce = -np.log(np.take_along_axis(p, y[..., None], -1)[..., 0])
    assert abs(got["loss"] - ce[real].mean()) <= 1e-12 * ce[real].mean()
    y2 = np.where(real, y, (y + 1) % C)
    assert model.evaluate(ids, y2) == got


# ---------------------------------------------------------------------------- 3. PyTorch
torch = None


def _torch():
    global torch
    if torch is None:
        torch = pytest.importorskip("torch")
    return torch


def _gru_order(a, u):
    """Keras' GRU gate blocks z, r, h <-> PyTorch's r, z, n (its own inverse)."""
    return np.concatenate([a[..., u:2 * u], a[..., :u], a[..., 2 * u:]], axis=-1)


def _packed_module(kind, d, u, weights, bidirectional=False):
    """nn.RNN/LSTM/GRU holding Keras-layout weights (forward direction, then reverse)."""
    t = _torch()
    mod = {"simple": t.nn.RNN, "lstm": t.nn.LSTM, "gru": t.nn.GRU}[kind](
        d, u, batch_first=True, bidirectional=bidirectional).double()
    for suffix, (W, U, b) in zip(["", "_reverse"], [weights[:3], weights[3:6]]):
        if kind == "gru":
            W, U, b = _gru_order(W, u), _gru_order(U, u), _gru_order(b.reshape(2, 3 * u), u)
            bi, bh = b[0], b[1]
        else:
            bi, bh = b.reshape(-1), np.zeros(b.size)
        with t.no_grad():
            for name, value in (("weight_ih", W.T), ("weight_hh", U.T), ("bias_ih", bi),
                                ("bias_hh", bh)):
                getattr(mod, f"{name}_l0{suffix}").copy_(t.tensor(np.ascontiguousarray(value)))
        if not bidirectional:
            break
    return mod


def _packed_grads(kind, mod, u, suffix=""):
    g = {name: getattr(mod, f"{name}_l0{suffix}").grad.numpy()
         for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    dW, dU = g["weight_ih"].T, g["weight_hh"].T
    if kind == "gru":
        return [_gru_order(dW, u), _gru_order(dU, u),
                np.stack([_gru_order(g["bias_ih"], u), _gru_order(g["bias_hh"], u)])]
    return [dW, dU, g["bias_ih"]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("seq", [False, True])
def test_bidirectional_matches_torch_packed_sequences(kind, seq, backend):
    """Right-padded sequences through Masking + Bidirectional: PyTorch's packed sequences skip
    the padding in both directions. Outputs (0 at padded steps, as pad_packed_sequence),
    every weight gradient and the input gradient, float64, to 1e-10."""
    t = _torch()
    rng = np.random.default_rng([len(kind), seq])
    n, T, d, u = 6, 9, 3, 4
    lengths = [9, 4, 1, 7, 2, 5]
    x = _padded(rng, n, T, d, lengths)
    model = fnn.Sequential([fnn.Masking(), fnn.Bidirectional(
        CELLS[kind](u, return_sequences=seq), merge_mode="concat")],
        input_shape=(T, d), seed=2, backend=backend, dtype="float64")
    weights = [w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()]
    model.set_weights(weights)
    mod = _packed_module(kind, d, u, weights, bidirectional=True)
    xt = t.tensor(x, requires_grad=True)
    packed = t.nn.utils.rnn.pack_padded_sequence(xt, t.tensor(lengths), batch_first=True,
                                                 enforce_sorted=False)
    out, state = mod(packed)
    if seq:
        ref, _ = t.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    else:
        h = state[0] if kind == "lstm" else state
        ref = t.cat([h[0], h[1]], dim=1)         # each direction's last real state
    g = rng.standard_normal(ref.shape)
    ref.backward(t.tensor(g))
    y = model.forward(x, training=True)
    assert _rel(y, ref.detach().numpy()) <= 1e-10
    model.zero_grad()
    dx = model.backward(g)
    want = _packed_grads(kind, mod, u) + _packed_grads(kind, mod, u, "_reverse")
    for got_g, want_g in zip(model.grads, want):
        assert _rel(got_g, want_g) <= 1e-10
    assert _rel(dx, xt.grad.numpy()) <= 1e-10


def _torch_masked_rnn(kind, x, mask, W, U, b, u, reverse, seq, zero):
    """Keras' masked recurrence written in torch: a padded step keeps the states (torch.where),
    its sequence output is the carried h (or 0 with ``zero``)."""
    t = _torch()
    n, T, _ = x.shape
    h = t.zeros((n, u), dtype=t.float64)
    c = t.zeros((n, u), dtype=t.float64)
    outs = []
    steps = range(T - 1, -1, -1) if reverse else range(T)
    for step in steps:
        keep = mask[:, step:step + 1]
        xt = x[:, step]
        if kind == "simple":
            h_new, c_new = t.tanh(xt @ W + h @ U + b), c
        elif kind == "lstm":
            z = xt @ W + h @ U + b
            i, f = t.sigmoid(z[:, :u]), t.sigmoid(z[:, u:2 * u])
            g, o = t.tanh(z[:, 2 * u:3 * u]), t.sigmoid(z[:, 3 * u:])
            c_new = f * c + i * g
            h_new = o * t.tanh(c_new)
        else:
            zx = xt @ W + b[0]
            zh = h @ U + b[1]
            zg = t.sigmoid(zx[:, :u] + zh[:, :u])
            r = t.sigmoid(zx[:, u:2 * u] + zh[:, u:2 * u])
            hh = t.tanh(zx[:, 2 * u:] + r * zh[:, 2 * u:])
            h_new, c_new = zg * h + (1 - zg) * hh, c
        h = t.where(keep, h_new, h)
        c = t.where(keep, c_new, c)
        outs.append(t.where(keep, h, t.zeros_like(h)) if zero else h)
    return t.stack(outs, dim=1) if seq else h


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("seq,back,zero", [(False, False, False), (False, True, False),
                                           (True, False, False), (True, True, True),
                                           (True, False, True)])
def test_masks_with_holes_match_a_torch_recurrence(kind, seq, back, zero, backend):
    """Masks with padding anywhere (leading, in the middle, everything, nothing), through
    Masking and a recurrent layer: outputs, weight and input gradients against autograd of
    the recurrence written in torch, float64, to 1e-10; 17 samples (the kernel's row groups
    and its GEMM steps)."""
    t = _torch()
    rng = np.random.default_rng([len(kind), seq, back, zero])
    n, T, d, u = 17, 8, 3, 5
    x = rng.standard_normal((n, T, d))
    mask = rng.random((n, T)) > 0.35
    mask[0] = True
    mask[1] = False
    x[~mask] = 0.0
    model = fnn.Sequential([fnn.Masking(), CELLS[kind](
        u, return_sequences=seq, go_backwards=back, zero_output_for_mask=zero)],
        input_shape=(T, d), seed=4, backend=backend, dtype="float64")
    weights = [w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()]
    model.set_weights(weights)
    tw = [t.tensor(w, requires_grad=True) for w in weights]
    xt = t.tensor(x, requires_grad=True)
    ref = _torch_masked_rnn(kind, xt, t.tensor(mask), *tw, u, back, seq, zero)
    g = rng.standard_normal(ref.shape)
    ref.backward(t.tensor(g))
    y = model.forward(x, training=True)
    assert _rel(y, ref.detach().numpy()) <= 1e-10
    model.zero_grad()
    dx = model.backward(g)
    for got_g, w in zip(model.grads, tw):
        assert _rel(got_g, w.grad.numpy()) <= 1e-10
    assert _rel(dx, xt.grad.numpy()) <= 1e-10
    assert not dx[~mask].any()               # a padded step's input has no gradient


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_batch_normalization_matches_torch(backend):
    """Masking -> BatchNormalization, training, float64: the masked moments written in torch
    and differentiated by autograd (outputs at every step, gamma's and beta's gradients over
    every step, the input gradient), and the moving averages (unbiased, over the real steps)."""
    t = _torch()
    rng = np.random.default_rng(11)
    n, T, c, eps, m = 5, 6, 4, 1e-3, 0.9
    x = rng.standard_normal((n, T, c)) * 2 + 1
    real = rng.random((n, T)) < 0.6
    real[1] = False                          # a sample with no real step
    x[~real] = 0.0
    model = fnn.Sequential([fnn.Masking(0.0), fnn.BatchNormalization(momentum=m, epsilon=eps)],
                           input_shape=(T, c), dtype="float64", backend=backend)
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    mm0, mv0 = rng.standard_normal(c), rng.random(c) + 0.5
    model.set_weights([gamma, beta, mm0, mv0])
    R = rng.standard_normal((n, T, c))
    model.zero_grad()
    y = model.forward(x, training=True).reshape(n, T, c)
    dx = model.backward(R).reshape(n, T, c)

    tx = t.tensor(x, requires_grad=True)
    tg, tb = t.tensor(gamma, requires_grad=True), t.tensor(beta, requires_grad=True)
    w = t.tensor(real, dtype=t.float64)[..., None]
    count = w.sum()
    mean = (w * tx).sum(dim=(0, 1)) / count
    var = (w * (tx - mean) ** 2).sum(dim=(0, 1)) / count
    ty = tg * (tx - mean) / t.sqrt(var + eps) + tb
    (ty * t.tensor(R)).sum().backward()
    assert _rel(y, ty.detach().numpy()) <= 1e-12
    assert _rel(model.grads[0], tg.grad.numpy()) <= 1e-12
    assert _rel(model.grads[1], tb.grad.numpy()) <= 1e-12
    assert _rel(dx, tx.grad.numpy() * real[..., None]) <= 1e-12   # Masking: 0 at padding
    count = int(real.sum())
    mv = var.detach().numpy() * count / (count - 1)
    assert _rel(model.get_weights()[2], m * mm0 + (1 - m) * mean.detach().numpy()) <= 1e-12
    assert _rel(model.get_weights()[3], m * mv0 + (1 - m) * mv) <= 1e-12


# ---------------------------------------------------------------------------- 4. gradients,
# backends, threads, files
def _tagger(backend, dtype, seed=0):
    """Embedding(mask_zero) -> Bidirectional GRU -> Dense per step -> LSTM -> GAP: the mask
    through every kind of layer that passes it on or reads it."""
    return fnn.Sequential([
        fnn.Embedding(9, 4, mask_zero=True), fnn.Bidirectional(fnn.GRU(3, return_sequences=True)),
        fnn.Dense(4, activation="tanh"), fnn.Dropout(0.0), fnn.LayerNormalization(),
        fnn.LSTM(3, return_sequences=True, go_backwards=True), fnn.GlobalAveragePooling1D(),
        fnn.Dense(2)], input_shape=(6,), seed=seed, dtype=dtype, backend=backend)


def _masked_vectors(backend, dtype, seed=0):
    inp = fnn.Input((6, 3))
    m = fnn.Masking(0.0)(inp)
    a = fnn.SimpleRNN(3, return_sequences=True)(m)
    b = fnn.Dense(3)(m)
    h = fnn.Concatenate()([a, b])
    h = fnn.TransformerBlock(num_heads=2, key_dim=2, ff_dim=5)(h)
    out = fnn.GRU(2)(h)
    return fnn.Model(inp, out, seed=seed, dtype=dtype, backend=backend)


def _data(model, n, seed=1):
    rng = np.random.default_rng(seed)
    if model.input_shape == (6,):
        return _ids(rng, n, 6, 9, rng.integers(0, 7, n), lead=[(0, 0)]).astype(np.float64)
    x = rng.standard_normal((n, 6, 3))
    x[rng.random((n, 6)) < 0.3] = 0.0
    return x


def _attended(backend, dtype, seed=0):
    """Masking -> Dense -> MultiHeadAttention(query, value) with every step an output: the
    padded queries' rows (attending to the real keys) reach the loss too."""
    inp = fnn.Input((6, 3))
    m = fnn.Masking(0.0)(inp)
    h = fnn.Dense(4, activation="tanh")(m)
    out = fnn.MultiHeadAttention(num_heads=2, key_dim=2)(h, m)
    return fnn.Model(inp, out, seed=seed, dtype=dtype, backend=backend)


def _normalized(backend, dtype, seed=0):
    """Masking -> Dense -> BatchNormalization -> Dense, every step an output: the padded
    steps' rows are normalized with the real steps' statistics, and their outputs reach the
    loss, so both of BatchNormalization's input-gradient forms are checked."""
    return fnn.Sequential([fnn.Masking(0.0), fnn.Dense(3, activation="tanh"),
                           fnn.BatchNormalization(momentum=0.8), fnn.Dense(2)],
                          input_shape=(6, 3), seed=seed, dtype=dtype, backend=backend)


MODELS = {"tagger": _tagger, "masked_vectors": _masked_vectors, "normalized": _normalized,
          "attended": _attended}
H, TOL = 1e-6, 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(MODELS))
def test_gradients_match_finite_differences(name, backend):
    """Every weight and (for the models of vectors) the input at the real steps: a nudge at
    a padded step would make it real. (The attention's key bias has a zero gradient: softmax
    ignores a shift of a row.)"""
    model = MODELS[name](backend, "float64")
    x = _data(model, 5)
    R = np.random.default_rng(2).standard_normal(model.forward(x).shape)
    real = x.any(axis=-1) if x.ndim == 3 else None
    check_model_gradients(model, x, R, H, TOL, check_input=name != "tagger",
                          input_skip=None if real is None else lambda idx: not real[idx[:2]],
                          what=name)


def _run(name, backend, dtype, threads=None):
    previous = fnn.get_num_threads()
    if threads:
        fnn.set_num_threads(threads)
    try:
        model = MODELS[name](backend, dtype)
        x = _data(model, 37)
        out = model.forward(x, training=True)
        model.backward(np.ones_like(out))
        fnn.SGD(lr=0.05, momentum=0.9).step(model)
        return [model.predict(x), out, *model.grads, *model.get_weights()]
    finally:
        fnn.set_num_threads(previous)


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("name", list(MODELS))
def test_compiled_backend_equals_numpy_backend(name, dtype, rtol):
    for a, b in zip(_run(name, "fast", dtype), _run(name, "numpy", dtype)):
        scale = max(np.max(np.abs(b)), 1e-2)    # the key bias' gradient is 0 but for rounding
        assert np.max(np.abs(a - b)) <= rtol * 10 * scale


@pytest.mark.parametrize("name", list(MODELS))
def test_bitwise_equal_at_one_and_two_threads(name):
    for a, b in zip(_run(name, "fast", "float32", 1), _run(name, "fast", "float32", 2)):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(MODELS))
def test_files_keep_the_masks(name, backend, tmp_path):
    model = MODELS[name](backend, "float32")
    x = _data(model, 9)
    y = np.random.default_rng(3).standard_normal((9, *model.output_shape))
    model.compile("mse", fnn.Adam(learning_rate=0.01))
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "m.fnn")
    loaded = fnn.load(tmp_path / "m.fnn")
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
    assert loaded.train_on_batch(x, y) == model.train_on_batch(x, y)
    configs = [layer.get_config() for layer in loaded.layers]
    assert configs == [layer.get_config() for layer in model.layers]


def test_configs_round_trip():
    from fastnn.layers import layer_from_config
    for layer in (fnn.Masking(-1.5), fnn.Embedding(5, 3, mask_zero=True),
                  fnn.LSTM(3, return_sequences=True, zero_output_for_mask=True)):
        config = layer.get_config()
        assert layer_from_config(config).get_config() == config
    assert fnn.Masking(-1.5).get_config()["mask_value"] == -1.5
    assert fnn.Embedding(5, 3, mask_zero=True).get_config()["mask_zero"] is True
    assert "mask_zero" not in fnn.Embedding(5, 3).get_config()


# ---------------------------------------------------------------------------- 5. semantics
@pytest.mark.parametrize("backend", BACKENDS)
def test_padded_targets_do_not_change_the_training_step(backend):
    """The masked loss: the targets at padded steps change neither the loss nor the update,
    and the loss is the mean over the real steps (sample weights included)."""
    V, T = 8, 5
    ids = _ids(np.random.default_rng(3), 6, T, V, [5, 2, 4, 1, 3, 5]).astype(np.float64)
    y = np.random.default_rng(4).standard_normal((6, T, 2))
    y2 = y.copy()
    y2[ids == 0] = 100.0
    w = np.arange(1.0, 7.0)
    results = []
    for targets in (y, y2):
        model = fnn.Sequential([fnn.Embedding(V, 3, mask_zero=True),
                                fnn.LSTM(4, return_sequences=True), fnn.Dense(2)],
                               input_shape=(T,), seed=5, backend=backend, dtype="float64")
        model.compile("mse", "sgd")
        p = model.predict(ids)
        loss = model.train_on_batch(ids, targets, sample_weight=w)
        results.append((loss, model.get_weights()))
        real = ids != 0
        err = ((p - targets) ** 2).mean(axis=-1) * w[:, None]
        assert abs(loss - err[real].sum() / real.sum()) <= 1e-12 * loss
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        assert a.tobytes() == b.tobytes()


class _SquaredError(fnn.Loss):
    """A user's loss: the mean squared error over the rows it is given, and a log of them."""
    name = "users_squared_error"

    def __init__(self):
        self.seen = []

    def value(self, y_true, y_pred):
        self.seen.append(y_pred.shape)
        return float(np.mean((y_pred - y_true) ** 2))

    def gradient(self, y_true, y_pred):
        return 2 * (y_pred - y_true) / y_pred.size


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_custom_loss_gets_the_real_steps_only(backend):
    """A Loss subclass on a masked per-step output sees the real steps as rows (real steps,
    features), so its mean is Keras' masked mean: the same training as the built-in "mse",
    and the padded targets change nothing; a batch without a real step has loss 0."""
    V, T = 8, 5
    ids = _ids(np.random.default_rng(3), 6, T, V, [5, 2, 4, 1, 3, 5]).astype(np.float64)
    y = np.random.default_rng(4).standard_normal((6, T, 2))
    y2 = y.copy()
    y2[ids == 0] = 100.0
    runs = []
    for loss, targets in (("mse", y), (_SquaredError(), y), (_SquaredError(), y2)):
        model = fnn.Sequential([fnn.Embedding(V, 3, mask_zero=True),
                                fnn.LSTM(4, return_sequences=True), fnn.Dense(2)],
                               input_shape=(T,), seed=5, backend=backend, dtype="float64")
        model.compile(loss, fnn.SGD(learning_rate=0.1))
        losses = [model.train_on_batch(ids, targets) for _ in range(3)]
        runs.append((losses, model.get_weights(), model.evaluate(ids, targets)))
        if not isinstance(loss, str):
            assert set(loss.seen) == {(int((ids != 0).sum()), 2)}
    (l0, w0, e0), (l1, w1, e1), (l2, w2, e2) = runs
    assert np.allclose(l0, l1, rtol=1e-12, atol=0) and e1 == pytest.approx(e0, rel=1e-12)
    for a, b in zip(w0, w1):
        assert np.allclose(a, b, rtol=1e-10, atol=1e-14)
    assert l1 == l2 and e1 == e2
    for a, b in zip(w1, w2):
        assert a.tobytes() == b.tobytes()
    empty = np.zeros((2, T))
    model.compile(_SquaredError(), fnn.SGD(learning_rate=0.1))
    before = model.get_weights()
    assert model.train_on_batch(empty, np.ones((2, T, 2))) == 0.0
    for a, b in zip(before, model.get_weights()):
        assert a.tobytes() == b.tobytes()


def test_a_layer_that_drops_the_mask_warns():
    with pytest.warns(UserWarning, match="flatten.*does not support"):
        fnn.Sequential([fnn.Embedding(5, 3, mask_zero=True), fnn.Flatten(), fnn.Dense(2)],
                       input_shape=(4,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fnn.Sequential([fnn.Embedding(5, 3, mask_zero=True), fnn.LSTM(2), fnn.Dense(2)],
                       input_shape=(4,))
        fnn.Sequential([fnn.Embedding(5, 3), fnn.Flatten()], input_shape=(4,))


def test_all_padding_averages_to_zero_not_nan():
    model = fnn.Sequential([fnn.Masking(), fnn.GlobalAveragePooling1D()], input_shape=(3, 2))
    x = np.array([[[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]], [[0.0, 0.0]] * 3])
    assert model.predict(x).tolist() == [[2.0, 1.0], [0.0, 0.0]]


def test_unmasked_models_do_not_change():
    """Without a mask producer the model has no masks at all (and keeps its inference plan)."""
    model = fnn.Sequential([fnn.LSTM(3), fnn.Dense(2)], input_shape=(4, 2))
    assert model._masked is None
    masked = fnn.Sequential([fnn.Masking(), fnn.LSTM(3), fnn.Dense(2)], input_shape=(4, 2))
    assert masked._masked == [False, True, False, False]
    assert masked._forward_plan is None


BAD = [
    (lambda: fnn.Masking("0"), TypeError, "mask_value"),
    (lambda: fnn.Masking(float("nan")), ValueError, "mask_value"),
    (lambda: fnn.Masking(True), TypeError, "mask_value"),
    (lambda: fnn.Sequential([fnn.Masking(1e39)], input_shape=(3, 2)), ValueError,
     "mask_value"),
    (lambda: fnn.Sequential([fnn.Masking()], input_shape=(3,)), ValueError, "steps, features"),
    (lambda: fnn.Sequential([fnn.Masking()], input_shape=(3, 2, 2)), ValueError,
     "steps, features"),
    (lambda: fnn.Embedding(5, 3, mask_zero="yes"), TypeError, "mask_zero"),
    (lambda: fnn.Sequential([fnn.Embedding(5, 3, mask_zero=True)], input_shape=(3, 2)),
     ValueError, "mask_zero"),
    (lambda: fnn.LSTM(3, zero_output_for_mask=1), TypeError, "zero_output_for_mask"),
]


@pytest.mark.parametrize("make,error,match", BAD)
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_float64_mask_value_in_a_float64_model():
    model = fnn.Sequential([fnn.Masking(1e39), fnn.SimpleRNN(2)], input_shape=(3, 2),
                           dtype="float64")
    x = np.full((1, 3, 2), 1e39)
    x[0, 0] = 1.0
    short = fnn.Sequential([fnn.SimpleRNN(2)], input_shape=(1, 2), dtype="float64")
    short.set_weights(model.get_weights())
    assert model.predict(x).tobytes() == short.predict(x[:, :1]).tobytes()


# ---------------------------------------------------------------------------- 6. learning
def test_learns_the_last_letter_of_padded_words():
    """The last letter of a word from the shipped word list, its letters right-padded with id
    0 to 12 steps, learnt by a SimpleRNN; then the same weights on the words padded to 150
    steps. With mask_zero the padding is skipped: held-out accuracy >= 0.98 at both lengths,
    the same predictions. Without it the state drifts over the padding it was not trained on
    (here 0.96 at 12 steps, 0.48 at 150)."""
    words = [w for w in fnn.datasets.load_words() if 3 <= len(w) <= 12 and w.isalpha()
             and w.isascii() and w.islower()]
    rng = np.random.default_rng(0)
    words = [words[i] for i in rng.permutation(len(words))[:3000]]

    def encode(T):
        ids = np.zeros((len(words), T))
        for i, w in enumerate(words):
            ids[i, :len(w)] = [ord(ch) - 96 for ch in w]
        return ids

    y = np.array([ord(w[-1]) - 97 for w in words])
    train, test = slice(0, 2400), slice(2400, None)
    scores, outputs = {}, {}
    for mask_zero in (True, False):
        for T in (12, 150):
            model = fnn.Sequential([fnn.Embedding(27, 16, mask_zero=mask_zero),
                                    fnn.SimpleRNN(32), fnn.Dense(26, activation="softmax")],
                                   input_shape=(T,), seed=2)
            model.compile("sparse_categorical_crossentropy", fnn.Adam(learning_rate=0.01),
                          metrics=["accuracy"])
            if T == 12:
                model.fit(encode(T)[train], y[train], epochs=8, batch_size=32, verbose=0)
                weights = model.get_weights()
            else:
                model.set_weights(weights)
            scores[mask_zero, T] = model.evaluate(encode(T)[test], y[test])["accuracy"]
            outputs[mask_zero, T] = model.predict(encode(T)[test])
    assert scores[True, 12] >= 0.98 and scores[True, 150] >= 0.98, scores
    assert np.abs(outputs[True, 12] - outputs[True, 150]).max() <= 1e-5
    assert scores[False, 150] <= scores[True, 150] - 0.1, scores


# ---------------------------------------------------------------------------- 7. generation
# and export
def _gpt(seed=0):
    return fnn.Sequential([
        fnn.Embedding(7, 8, mask_zero=True), fnn.PositionalEmbedding(10),
        fnn.TransformerBlock(num_heads=2, key_dim=4, ff_dim=8, causal=True),
        fnn.Dense(7, activation="softmax")], input_shape=(10,), seed=seed)


def test_generation_never_feeds_the_padding_id():
    """With mask_zero, id 0 is padding: a prompt holding it is refused, and sampling never
    picks it (here the output favours it by far) — what generate feeds back then agrees with
    the masked full forward pass, which skips nothing."""
    model = _gpt()
    weights = model.get_weights()
    weights[-1] = weights[-1].copy()
    weights[-1][0] = 20.0                       # the output bias of id 0
    model.set_weights(weights)
    prompt = np.array([[3, 1], [2, 5]])
    for temperature, top_k in ((0.0, None), (1.0, None), (1.0, 3)):
        out = model.generate(prompt, 6, temperature=temperature, top_k=top_k, seed=1)
        assert out.shape == (2, 8) and (out[:, 2:] != 0).all()
    greedy = model.generate(prompt, 6, temperature=0.0)
    full = model.predict(np.pad(greedy, ((0, 0), (0, 2))).astype(np.float64))
    for t in range(2, 8):
        assert (np.argmax(full[:, t - 1, 1:], axis=1) + 1 == greedy[:, t]).all()
    with pytest.raises(ValueError, match="prompt holds id 0, the padding"):
        model.generate(np.array([[3, 0]]), 2)


def test_onnx_export_refuses_masks(tmp_path):
    pytest.importorskip("onnx")
    for model in (_gpt(), fnn.Sequential([fnn.Masking(), fnn.LSTM(2)], input_shape=(3, 2))):
        with pytest.raises(ValueError, match="step masks .* not supported"):
            fnn.onnx.export(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


# ---------------------------------------------------------------------------- 8. forged files
def _masked_file_model():
    """Layers 0-3: Embedding(mask_zero) and LSTM(zero_output_for_mask) on ids (6,), Masking(0.5)
    and GRU on vectors (5, 2)."""
    ids, vec = fnn.Input((6,)), fnn.Input((5, 2))
    a = fnn.LSTM(3, return_sequences=True, zero_output_for_mask=True)(
        fnn.Embedding(9, 4, mask_zero=True)(ids))
    b = fnn.GRU(2)(fnn.Masking(0.5)(vec))
    return fnn.Model([ids, vec], [a, b], seed=0, backend="numpy")


def _set(i, **values):
    def change(model):
        model["layers"][i]["config"].update(values)
    return change


HOSTILE_MASKS = {
    "mask_zero_string": (_set(0, mask_zero="yes"), r"mask_zero"),
    "mask_zero_int": (_set(0, mask_zero=1), r"mask_zero"),
    "mask_zero_null": (_set(0, mask_zero=None), r"mask_zero"),
    "zero_output_string": (_set(1, zero_output_for_mask="no"), r"zero_output_for_mask"),
    "zero_output_int": (_set(1, zero_output_for_mask=0), r"zero_output_for_mask"),
    "mask_value_string": (_set(2, mask_value="0.5"), r"mask_value"),
    "mask_value_bool": (_set(2, mask_value=True), r"mask_value"),
    "mask_value_null": (_set(2, mask_value=None), r"mask_value"),
    "mask_value_overflows_float32": (_set(2, mask_value=1e39), r"mask_value.*overflows"),
    "mask_value_subnormal": (_set(2, mask_value=1e-40), r"mask_value.*subnormal"),
    "masking_unknown_argument": (_set(2, mask_zero=True), r"mask_zero"),
}


@pytest.mark.parametrize("name", list(HOSTILE_MASKS))
def test_the_loader_refuses_hostile_mask_configs(name):
    import copy
    import fastnn.io as fio
    from test_model_files import build, parse
    from test_model_files_v2 import _refused_before_allocation
    blob = fio.model_to_bytes(_masked_file_model())
    _, header, start = parse(blob)
    header = copy.deepcopy(header)
    change, pattern = HOSTILE_MASKS[name]
    assert [e["config"]["class"] for e in header["model"]["layers"]] == \
        ["Embedding", "LSTM", "Masking", "GRU"]
    change(header["model"])
    _refused_before_allocation(build(header, blob[start:], version=2), pattern)


def test_the_masked_file_loads():
    import fastnn.io as fio
    model = _masked_file_model()
    loaded = fio.model_from_bytes(fio.model_to_bytes(model))
    rng = np.random.default_rng(0)
    xs = [_ids(rng, 3, 6, 9, [6, 2, 0]).astype(np.float64), _padded(rng, 3, 5, 2, [5, 1, 3])]
    for a, b in zip(loaded.predict(xs), model.predict(xs)):
        assert a.tobytes() == b.tobytes()
    assert not loaded.predict(xs)[0][1, 2:].any()    # zero_output_for_mask kept


# ---------------------------------------------------------------------------- 9. pad_sequences
def test_pad_sequences_matches_keras():
    k = _keras()
    from fastnn.utils import pad_sequences
    rng = np.random.default_rng(9)
    for trial in range(60):
        n = int(rng.integers(1, 6))
        seqs = [list(rng.integers(1, 50, int(rng.integers(0, 8)))) for _ in range(n)]
        if not any(seqs):
            seqs[0] = [3]
        kwargs = dict(padding=["pre", "post"][trial % 2], truncating=["pre", "post"][trial % 3 % 2],
                      value=[0.0, -1.0][trial % 5 == 0])
        if trial % 4:
            kwargs["maxlen"] = int(rng.integers(1, 9))
        got = pad_sequences(seqs, **kwargs)
        want = k.utils.pad_sequences(seqs, **kwargs)
        assert got.dtype == want.dtype and got.tolist() == want.tolist(), (seqs, kwargs)
    vectors = [rng.standard_normal((3, 2)), rng.standard_normal((1, 2)), np.zeros((0, 2))]
    got = pad_sequences(vectors, dtype="float32", padding="post")
    want = k.utils.pad_sequences(vectors, dtype="float32", padding="post")
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("args, error, match", [
    (([[1], [2]], -1), ValueError, "maxlen"),
    (([[1]], None, "int32", "mid"), ValueError, "padding"),
    (([[1]], None, "int32", "pre", "both"), ValueError, "truncating"),
    (([[1]], None, "U5"), TypeError, "numeric dtype"),
    (("abc",), TypeError, "list of sequences"),
    (([[1], 2],), TypeError, r"sequences\[1\] must be a sequence"),
    (([["a"]],), TypeError, r"sequences\[0\] must hold numbers"),
    (([np.zeros((2, 3)), np.zeros((2, 2))],), ValueError, "one shape"),
])
def test_pad_sequences_refuses(args, error, match):
    from fastnn.utils import pad_sequences
    with pytest.raises(error, match=match):
        pad_sequences(*args)
