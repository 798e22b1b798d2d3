"""GRU(reset_after=False): Keras' other GRU (Cho et al., 2014), the reset gate applied to h before
the recurrent product, hh = act(x W_h + (r h) U_h + b_h), one bias (3 units,).

- PyTorch float64 autograd of the recurrence written in torch ops (PyTorch has no such GRU) as
  the oracle of outputs and every gradient (weights, x, h0), with masks, go_backwards and
  dropout masks, on both backends (1e-10);
- Keras 3 itself (float64) with copied weights: sequences, states, go_backwards, Embedding masks,
  Bidirectional, RNN(GRUCell) and StackedRNNCells, stateful batches;
- finite differences (float64, both backends); compiled = NumPy twin; 1 vs 2 threads bitwise;
  every kernel flavour in a subprocess;
- the compiled inference plan, model files, pickle, a loader fuzz of forged configs, ONNX export
  (linear_before_reset=0) against onnxruntime and its import back; bad arguments; learning.

Expected values come from PyTorch, Keras, central differences or the NumPy twin, never from the
code under test alone.
"""

import copy
import itertools
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend
from fastnn.io import model_from_bytes, model_to_bytes
from fastnn.layers import layer_from_config
from fastnn.layers.recurrent_dropout import _BACKWARDS_SALT, _REC_SALT
from _finite_differences import check_model_gradients

torch = pytest.importorskip("torch")

BACKENDS = ["fast", "numpy"]


def _rel(got, want):
    """max |got - want| / max |want|"""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = np.abs(want).max()
    return np.abs(got - want).max() / (scale if scale > 0 else 1.0)


def _perturb(model, seed=1, scale=0.3):
    """Initial weights plus noise: nonzero biases, a generic recurrent kernel."""
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, scale, w.shape).astype(w.dtype)
                       for w in model.get_weights()])


def _gru(units, **kwargs):
    return fnn.GRU(units, reset_after=False, **kwargs)


# ---------------------------------------------------------------------------- 1. PyTorch
def _torch_gru(x, on, W, U, b, im, rm, back, h0):
    """Keras' reset_after=False GRU in torch ops: per step [xz xr xh] = (x im) W + b,
    z, r = sigmoid([xz xr] + (h rm) U_zr), hh = tanh(xh + (r (h rm)) U_h),
    h = z h + (1 - z) hh where the step is on (else h carries over). Outputs in step order."""
    n, T, _ = x.shape
    u = U.shape[0]
    h, outs = h0, []
    for t in (range(T - 1, -1, -1) if back else range(T)):
        xp = (x[:, t] * im) @ W + b
        hm = h * rm
        gates = torch.sigmoid(xp[:, :2 * u] + hm @ U[:, :2 * u])
        z, r = gates[:, :u], gates[:, u:]
        hh = torch.tanh(xp[:, 2 * u:] + (r * hm) @ U[:, 2 * u:])
        h = torch.where(on[:, t:t + 1], z * h + (1 - z) * hh, h)
        outs.append(h)
    return torch.stack(outs, 1), h


def _dropout_masks(layer, n, d):
    """The masks of the layer's next training pass (recomputed from its stream)."""
    be = get_backend("numpy")
    seed = (layer._mask_seed or 0) ^ (_BACKWARDS_SALT if layer.go_backwards else 0)
    im, rm = np.ones(n * d), np.ones(n * layer.units)
    if layer.dropout:
        be.dropout_mask(seed, layer.calls, layer.dropout, im)
    if layer.recurrent_dropout:
        be.dropout_mask(seed ^ _REC_SALT, layer.calls, layer.recurrent_dropout, rm)
    return im.reshape(n, d), rm.reshape(n, layer.units)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("back", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("drop", [False, True])
@pytest.mark.parametrize("u", [7, 33])
def test_matches_torch_autograd(u, drop, masked, back, backend):
    """Sequence output and final state (return_state) and the gradients of both w.r.t. every
    weight, x and h0 equal PyTorch's autograd of the recurrence in float64 to 1e-10."""
    n, T, d = 5, 6, 4
    rng = np.random.default_rng(u)
    x = rng.normal(size=(n, T, d))
    if masked:
        for b, k in enumerate([6, 3, 5, 1, 4]):
            x[b, k:] = 0.0
    inp, h0_in = fnn.Input((T, d)), fnn.Input((u,))
    seq = fnn.Masking(0.0)(inp) if masked else inp
    layer = _gru(u, return_sequences=True, return_state=True, go_backwards=back,
                 dropout=0.3 if drop else 0.0, recurrent_dropout=0.4 if drop else 0.0, seed=11)
    y, h = layer(seq, initial_state=[h0_in])
    model = fnn.Model([inp, h0_in], [y, h], dtype="float64", backend=backend, seed=2)
    _perturb(model)
    h0 = rng.normal(size=(n, u))
    im, rm = _dropout_masks(layer, n, d)
    if drop:
        assert 0 < (im == 0).sum() < im.size and 0 < (rm == 0).sum() < rm.size
    out, hl = model.forward([x, h0], training=True)
    gy, gh = rng.normal(size=out.shape), rng.normal(size=hl.shape)
    model.zero_grad()
    dx, dh0 = model.backward([gy, gh])

    tt = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    W, U, b = (tt(w) for w in layer.get_weights())
    assert tuple(b.shape) == (3 * u,)
    xt, h0t = tt(x), tt(h0)
    on = torch.tensor(np.abs(x).sum(-1) != 0 if masked else np.ones((n, T), bool))
    outs, last = _torch_gru(xt, on, W, U, b, torch.tensor(im), torch.tensor(rm), back, h0t)
    ((outs * torch.tensor(gy)).sum() + (last * torch.tensor(gh)).sum()).backward()
    assert _rel(out, outs.detach().numpy()) < 1e-10
    assert _rel(hl, last.detach().numpy()) < 1e-10
    for got, want in zip(model.grads, [W.grad, U.grad, b.grad]):
        assert _rel(got, want.numpy()) < 1e-10
    assert _rel(dx, xt.grad.numpy()) < 1e-10
    assert _rel(dh0, h0t.grad.numpy()) < 1e-10


# ---------------------------------------------------------------------------- 2. Keras 3
# Keras' numpy backend agrees with fastnn's (and PyTorch's) float64 to ~1.2e-7 relative here
# only (its activations are not float64-exact; fastnn's other recurrent layers' Keras tests see
# the same): the bound is Keras' own agreement, PyTorch above holds 1e-10.
KERAS_TOL = 1e-6


@pytest.fixture(scope="module")
def keras(keras64):
    return keras64


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seq,back", list(itertools.product([False, True], [False, True])))
def test_sequences_and_states_match_keras(keras, seq, back, backend):
    n, T, d, u = 4, 7, 3, 6
    k = keras.layers
    inp = fnn.Input((T, d))
    outs = _gru(u, return_sequences=seq, return_state=True, go_backwards=back)(inp)
    model = fnn.Model(inp, outs, dtype="float64", backend=backend, seed=1)
    _perturb(model)
    kin = keras.Input((T, d))
    ref = keras.Model(kin, k.GRU(u, reset_after=False, return_sequences=seq, return_state=True,
                                 go_backwards=back)(kin))
    ref.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=(n, T, d))
    for got, want in zip(model.predict(x), ref.predict_on_batch(x)):
        assert _rel(got, np.asarray(want)) < KERAS_TOL


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seq,back", list(itertools.product([False, True], [False, True])))
def test_embedding_masks_match_keras(keras, seq, back, backend):
    n, T, vocab, d, u = 5, 6, 9, 3, 5
    k = keras.layers
    model = fnn.Sequential([fnn.Embedding(vocab, d, mask_zero=True),
                            _gru(u, return_sequences=seq, go_backwards=back)],
                           input_shape=(T,), dtype="float64", backend=backend, seed=2)
    _perturb(model)
    ref = keras.Sequential([keras.Input((T,)), k.Embedding(vocab, d, mask_zero=True),
                            k.GRU(u, reset_after=False, return_sequences=seq,
                                  go_backwards=back)])
    ref.set_weights(model.get_weights())
    ids = np.random.default_rng(3).integers(1, vocab, (n, T))
    for b, length in enumerate([6, 2, 4, 1, 5]):
        ids[b, length:] = 0
    assert _rel(model.predict(ids), np.asarray(ref.predict_on_batch(ids))) < KERAS_TOL


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("seq", [False, True])
def test_bidirectional_matches_keras(keras, mode, seq, backend):
    n, T, d, u = 3, 5, 4, 6
    k = keras.layers
    model = fnn.Sequential([fnn.Bidirectional(_gru(u, return_sequences=seq), merge_mode=mode)],
                           input_shape=(T, d), dtype="float64", backend=backend, seed=3)
    _perturb(model)
    ref = keras.Sequential([keras.Input((T, d)), k.Bidirectional(
        k.GRU(u, reset_after=False, return_sequences=seq), merge_mode=mode)])
    ref.set_weights(model.get_weights())
    x = np.random.default_rng(4).normal(size=(n, T, d))
    assert _rel(model.predict(x), np.asarray(ref.predict_on_batch(x))) < KERAS_TOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_cells_and_stateful_batches_match_keras(keras, backend):
    """RNN(GRUCell(reset_after=False)), a StackedRNNCells with an LSTM cell, and a stateful
    layer over consecutive batches (then reset) against Keras' own."""
    n, T, d = 4, 5, 3
    k = keras.layers
    x = [np.random.default_rng(s).normal(size=(n, T, d)) for s in range(3)]
    for make, kmake in (
            (lambda: fnn.RNN(fnn.GRUCell(5, reset_after=False), return_sequences=True),
             lambda: k.RNN(k.GRUCell(5, reset_after=False), return_sequences=True)),
            (lambda: fnn.RNN([fnn.GRUCell(5, reset_after=False), fnn.LSTMCell(4)]),
             lambda: k.RNN([k.GRUCell(5, reset_after=False), k.LSTMCell(4)])),
            (lambda: _gru(6, stateful=True, return_sequences=True),
             lambda: k.GRU(6, reset_after=False, stateful=True, return_sequences=True))):
        model = fnn.Sequential([make()], input_shape=(T, d), dtype="float64",
                               backend=backend, seed=4)
        _perturb(model)
        ref = keras.Sequential([keras.Input(batch_shape=(n, T, d)), kmake()])
        ref.set_weights(model.get_weights())
        for xb in x:
            assert _rel(model.predict(xb), np.asarray(ref.predict_on_batch(xb))) < KERAS_TOL
        if model.layers[0].stateful:
            model.reset_states()
            ref.layers[0].reset_states()
            assert _rel(model.predict(x[0]), np.asarray(ref.predict_on_batch(x[0]))) < KERAS_TOL


def test_a_keras_weights_file_loads(keras, tmp_path):
    """model.load_weights reads Keras' own .weights.h5 of reset_after=False GRUs."""
    pytest.importorskip("h5py")
    k = keras.layers
    ref = keras.Sequential([keras.Input((5, 3)),
                            k.GRU(4, reset_after=False, return_sequences=True),
                            k.Bidirectional(k.GRU(3, reset_after=False))])
    rng = np.random.default_rng(6)
    ref.set_weights([w + rng.normal(0, 0.3, w.shape) for w in ref.get_weights()])
    path = tmp_path / "k.weights.h5"
    ref.save_weights(path)
    model = fnn.Sequential([_gru(4, return_sequences=True), fnn.Bidirectional(_gru(3))],
                           input_shape=(5, 3), dtype="float64", backend="numpy")
    model.load_weights(path)
    x = rng.normal(size=(4, 5, 3))
    assert _rel(model.predict(x), np.asarray(ref.predict_on_batch(x))) < KERAS_TOL


def test_keras_builds_the_same_weight_shapes(keras):
    layer = keras.layers.GRU(4, reset_after=False)
    layer.build((None, 6, 3))
    ours = fnn.Sequential([_gru(4)], input_shape=(6, 3), backend="numpy")
    assert [tuple(w.shape) for w in layer.get_weights()] == \
        [w.shape for w in ours.get_weights()] == [(3, 12), (4, 12), (12,)]


# ---------------------------------------------------------------------------- 3. gradients
def _stacked(backend):
    return fnn.Sequential([_gru(5, return_sequences=True, go_backwards=True),
                           _gru(3, activation="sigmoid", recurrent_activation="tanh"),
                           fnn.Dense(2)],
                          input_shape=(4, 3), dtype="float64", backend=backend, seed=5)


def _masked(backend):
    return fnn.Sequential([fnn.Embedding(7, 3, mask_zero=True), _gru(4, return_sequences=True),
                           fnn.Bidirectional(_gru(3, use_bias=False))],
                          input_shape=(5,), dtype="float64", backend=backend, seed=6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("build", [_stacked, _masked], ids=["stacked", "masked"])
def test_gradients_match_finite_differences(build, backend):
    """Every weight gradient and dL/dx (float inputs) against central differences, 1e-6."""
    model = build(backend)
    _perturb(model, seed=7, scale=0.2)
    rng = np.random.default_rng(8)
    if build is _masked:
        x = rng.integers(1, 7, (3, 5)).astype(np.float64)
        x[1, 3:] = 0
        x[2, 1:] = 0
    else:
        x = rng.normal(size=(3, 4, 3))
    R = rng.normal(size=(3, *model.output_shape))
    check_model_gradients(model, x, R, check_input=build is _stacked, what=build.__name__)


# ---------------------------------------------------------------------------- 4. twins
def _states_model(u, seq, back, act, dtype, backend, T, d, mask=False, rdrop=0.0):
    x_in, h_in = fnn.Input((T, d)), fnn.Input((u,))
    seq_in = fnn.Masking(0.0)(x_in) if mask else x_in
    layer = _gru(u, activation=act, return_sequences=seq, return_state=True, go_backwards=back,
                 recurrent_dropout=rdrop, seed=3)
    return fnn.Model([x_in, h_in], layer(seq_in, initial_state=[h_in]), dtype=dtype,
                     backend=backend, seed=4)


def _run(model, seed, n, dtype, mask=False):
    """Outputs, input gradients and weight gradients for random inputs and douts."""
    rng = np.random.default_rng(seed)
    _perturb(model, seed)
    xs = [rng.normal(size=(n, *s)).astype(dtype) for s in model.input_shape]
    if mask:
        xs[0][::2, -2:] = 0
        xs[0][1::3, 1] = 0
    outs = model.forward(xs, training=True)
    douts = [rng.normal(size=np.shape(o)).astype(dtype) for o in outs]
    model.zero_grad()
    dins = model.backward(douts)
    return [np.array(a) for a in [*outs, *dins, *model.grads]]


TWIN_CASES = list(itertools.product([1, 7, 16, 33, 50], [3, 11, 37], [False, True],
                                    ["float64", "float32"]))


@pytest.mark.parametrize("u,n,back,dtype", TWIN_CASES)
def test_compiled_matches_numpy_twin(u, n, back, dtype):
    """Every output, input gradient (x, h0) and weight gradient of the fast backend equals the
    NumPy backend's: 1e-12 relative in float64, 5e-5 in float32 (the compiled float32 gates use
    their own vectorised sigmoid and tanh). Batch 3 takes the few-row step products, 11 the
    GEMM's, 37 two row groups; units 1-50 the vector loops' whole vectors and tails (50: 150
    gate columns, two column blocks of the row updates); a mask, recurrent dropout and a
    sigmoid candidate in some."""
    T, d = 8, 5
    mask = (u + n) % 2 == 0
    rdrop = 0.3 if u in (7, 50) else 0.0
    act = "sigmoid" if u == 16 else "tanh"
    res = {be: _run(_states_model(u, u % 2 == 1, back, act, dtype, be, T, d, mask, rdrop),
                    u + n, n, dtype, mask) for be in BACKENDS}
    tol = 1e-12 if dtype == "float64" else 5e-5
    for i, (a, b) in enumerate(zip(res["fast"], res["numpy"])):
        assert a.dtype == np.dtype(dtype)
        assert _rel(a, b) <= tol, f"array {i}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", [(64, 20, 32, 256), (53, 40, 7, 64), (32, 12, 32, 64)],
                         ids=["gemm", "groups", "step-tiles"])
def test_bitwise_equal_at_one_and_two_threads(dtype, size):
    """Outputs, dx and weight gradients are the same bits at 1 and 2 threads: GEMMs split over
    threads (batch 64, 256 units), row groups on threads (batch 53), 4-row step tiles (32)."""
    n, T, d, u = size
    model = fnn.Sequential([_gru(u, return_sequences=True,
                                 recurrent_initializer="glorot_uniform")],
                           input_shape=(T, d), dtype=dtype, backend="fast", seed=21)
    results = {}
    adaptive = fnn.get_adaptive_threads()
    fnn.set_adaptive_threads(False)
    try:
        for threads in (1, 2):
            with fnn.threads(threads):
                assert fnn.get_num_threads() == threads
                rng = np.random.default_rng(5)
                x = rng.normal(size=(n, T, d)).astype(dtype)
                y = model.forward(x, training=True)
                g = rng.normal(size=np.shape(y)).astype(dtype)
                model.zero_grad()
                dx = model.backward(g)
                results[threads] = [np.array(y), np.array(dx),
                                    *[np.array(w) for w in model.grads]]
    finally:
        fnn.set_adaptive_threads(adaptive)
    for i, (a, b) in enumerate(zip(results[1], results[2])):
        assert a.tobytes() == b.tobytes(), f"array {i} differs"


_FLAVOUR_SCRIPT = r"""
import json, sys
import numpy as np
import fastnn as fnn
from fastnn.backends import get_backend
out = {"kernel": get_backend("fast").kernel_name(), "errors": {}}
# batch 19 (the steps' GEMM), 3 (row updates, 70 units: 140 + 70 columns), 37 (two row groups),
# 32 (groups of 16: AVX2's 4-row step tiles where a product has 128+ columns, 2u = 128)
for batch, (u1, u2) in ((19, (29, 9)), (3, (70, 40)), (37, (12, 5)), (32, (64, 6))):
    for dtype in ("float64", "float32"):
        res = {}
        for be in ("fast", "numpy"):
            model = fnn.Sequential([fnn.GRU(u1, reset_after=False, return_sequences=True,
                                            go_backwards=True),
                                    fnn.GRU(u2, reset_after=False)], input_shape=(8, 5),
                                   dtype=dtype, backend=be, seed=3)
            rng = np.random.default_rng(1)
            model.set_weights([(w + rng.normal(0, 0.3, w.shape)).astype(dtype)
                               for w in model.get_weights()])
            x = rng.normal(size=(batch, 8, 5)).astype(dtype)
            y = model.forward(x, training=True)
            g = rng.normal(size=y.shape).astype(dtype)
            model.zero_grad()
            dx = model.backward(g)
            res[be] = [np.array(a, np.float64) for a in (y, dx, *model.grads)]
        out["errors"][f"{batch}-{dtype}"] = max(
            float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(res["fast"],
                                                                         res["numpy"]))
json.dump(out, sys.stdout)
"""


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_each_kernel_flavour_matches_numpy_twin(flavour):
    """With FASTNN_KERNEL=generic / avx2 / avx512 (a subprocess: the flavour is chosen on first
    use), stacked GRU(reset_after=False) outputs and gradients equal the NumPy backend's (1e-12
    float64, 5e-5 float32). A flavour this CPU cannot run is skipped."""
    env = dict(os.environ, FASTNN_KERNEL=flavour)
    done = subprocess.run([sys.executable, "-c", _FLAVOUR_SCRIPT], env=env, check=True,
                          capture_output=True, text=True, timeout=300)
    result = json.loads(done.stdout)
    if result["kernel"] != flavour:
        pytest.skip(f"this CPU runs {result['kernel']!r}, not {flavour!r}")
    assert len(result["errors"]) == 8
    for case, err in result["errors"].items():
        assert err <= (1e-12 if case.endswith("float64") else 5e-5), (case, err)


def test_raw_kernels_take_a_single_bias():
    """The compiled and NumPy kernels take the reset-before cell's (3u,) bias and refuse the
    reset-after cell's (2, 3u) one."""
    n, T, d, u = 2, 3, 4, 5
    cell = 3
    for name in BACKENDS:
        be = get_backend(name)
        fwd, _ = be.rnn_sizes(cell, T, d, u)
        args = [np.zeros(n * T * d), np.zeros(d * 3 * u), np.zeros(u * 3 * u)]
        for bias, ok in ((np.zeros(3 * u), True), (np.zeros(6 * u), False)):
            call = lambda: be.rnn_forward(cell, n, T, d, u, *args, bias, None, None, 3, 2,  # noqa
                                          False, np.zeros(n * fwd), np.zeros(n * u), False,
                                          None, None)
            if ok:
                call()
            else:
                with pytest.raises(ValueError, match="bias"):
                    call()


# ---------------------------------------------------------------------------- 5. inference
def _classifier(dtype="float32", backend="fast"):
    model = fnn.Sequential([_gru(9, return_sequences=True),
                            _gru(6, go_backwards=True), fnn.Dense(3, activation="softmax")],
                           input_shape=(7, 4), seed=8, dtype=dtype, backend=backend)
    _perturb(model, seed=8)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_compiled_plan_runs_it_with_the_per_layer_bits(dtype):
    from fastnn._ext._kernels import InferPlan
    model = _classifier(dtype)
    assert isinstance(model._forward_plan, InferPlan)
    for n in (1, 7, 40):
        x = np.random.default_rng(n).normal(size=(n, 7, 4)).astype(dtype)
        got = model._forward_plan.predict(x)
        assert got is not None
        np.testing.assert_array_equal(got, model.predict(x, batch_size=4096))
        np.testing.assert_array_equal(model.predict(x), got)
    twin = model_from_bytes(model_to_bytes(model), backend="numpy")
    x = np.random.default_rng(0).normal(size=(5, 7, 4)).astype(dtype)
    np.testing.assert_allclose(model.predict(x), twin.predict(x),
                               rtol=1e-10 if dtype == "float64" else 1e-5, atol=1e-7)


# ---------------------------------------------------------------------------- 6. files
def test_config_round_trip_keeps_reset_after():
    for layer in (_gru(4, go_backwards=True), fnn.GRU(4)):
        config = layer.get_config()
        assert config["reset_after"] is layer.reset_after
        again = layer_from_config(copy.deepcopy(config))
        assert again.get_config() == config and again.reset_after is layer.reset_after
    cell = fnn.GRUCell(3, reset_after=False)
    assert cell.get_config()["config"]["reset_after"] is False
    rnn = fnn.RNN([cell, fnn.GRUCell(2)])
    back = layer_from_config(rnn.get_config())
    assert [inner.reset_after for inner in back.layers] == [False, True]


def _every_form(backend="fast"):
    inp = fnn.Input((6, 3))
    h = fnn.Bidirectional(_gru(4, return_sequences=True, recurrent_dropout=0.2))(inp)
    h = fnn.RNN([fnn.GRUCell(5, reset_after=False), fnn.GRUCell(3)], return_sequences=True)(h)
    out = fnn.Dense(2)(_gru(3, dropout=0.1)(h))
    model = fnn.Model(inp, out, seed=9, backend=backend)
    return model.compile("mse", fnn.Adam(0.01))


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_file_and_pickle_round_trip_bitwise(backend, tmp_path):
    model = _every_form(backend)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 6, 3)).astype("float32"), rng.normal(size=(8, 2))
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "m.fnn")
    copies = [fnn.load(tmp_path / "m.fnn"), pickle.loads(pickle.dumps(model))]
    for loaded in copies:
        assert [w.tobytes() for w in loaded.get_weights()] == \
            [w.tobytes() for w in model.get_weights()]
        bi = next(layer for layer in loaded.layers if isinstance(layer, fnn.Bidirectional))
        assert bi.forward_layer.reset_after is bi.backward_layer.reset_after is False
        assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
    # training goes on alike (the optimizer's state and the dropout streams kept)
    losses = [loaded.train_on_batch(x, y) for loaded in copies]
    assert losses == [model.train_on_batch(x, y)] * 2
    for loaded in copies:
        assert [w.tobytes() for w in loaded.get_weights()] == \
            [w.tobytes() for w in model.get_weights()]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stateful_layer_keeps_its_states_in_files(backend, tmp_path):
    model = fnn.Sequential([_gru(4, stateful=True)], input_shape=(5, 2), seed=1,
                           dtype="float64", backend=backend)
    x = np.random.default_rng(1).normal(size=(3, 5, 2))
    model.predict(x)
    model.save(tmp_path / "s.fnn")
    loaded = fnn.load(tmp_path / "s.fnn")
    assert np.array_equal(loaded.predict(x), model.predict(x))


@pytest.fixture(scope="module")
def gru_file():
    import test_model_files as tmf
    model = fnn.Sequential([_gru(3, return_sequences=True), fnn.GRU(2)], input_shape=(4, 2),
                           seed=0, backend="numpy")
    blob = model_to_bytes(model)
    version, header, start = tmf.parse(blob)
    return {"blob": blob, "header": header, "data": blob[start:], "version": version,
            "build": tmf.build, "memory_cap": tmf.memory_cap}


def _set(i, value):
    def change(model):
        model["layers"][i]["reset_after"] = value      # a Sequential's layers: flat configs
    return change


HOSTILE = {
    "string": (_set(0, "no"), r"reset_after='no'"),
    "int": (_set(0, 0), r"reset_after=0\b"),
    "none": (_set(0, None), r"reset_after=None"),
    "list": (_set(0, [False]), r"reset_after=\[False\]"),
    "dict": (_set(0, {"value": False}), r"reset_after=\{'value': False\}"),
    # the flag flipped without the weights: the biases' shapes then disagree with the file's
    "flipped_to_true": (_set(0, True), r"gru/bias' is <f4\[9\], the model needs <f4\[2, 9\]"),
    "flipped_to_false": (_set(1, False),
                         r"gru_1/bias' is <f4\[2, 6\], the model needs <f4\[6\]"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_the_loader_refuses_forged_reset_after(gru_file, name):
    """A forged reset_after (a wrong type, or flipped so the weights no longer fit) raises the
    loader's ValueError naming it, within a capped address space, with no large allocation."""
    import tracemalloc
    change, pattern = HOSTILE[name]
    header = copy.deepcopy(gru_file["header"])
    change(header["model"])
    blob = gru_file["build"](header, gru_file["data"], version=gru_file["version"])
    tracemalloc.start()
    try:
        with gru_file["memory_cap"]():
            with pytest.raises(ValueError, match="not a valid fastnn model file") as info:
                model_from_bytes(blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.match(pattern), str(info.value)
    assert peak < 2 << 20


def test_the_unforged_file_loads(gru_file):
    model = model_from_bytes(gru_file["blob"])
    assert [layer.reset_after for layer in model.layers] == [False, True]
    assert [w.shape for w in model.get_weights()] == [(2, 9), (3, 9), (9,), (3, 6), (2, 6),
                                                      (2, 6)]


# ---------------------------------------------------------------------------- 7. bad inputs
@pytest.mark.parametrize("make", [fnn.GRU, fnn.GRUCell])
@pytest.mark.parametrize("value", ["False", 0, 1, None, 0.0, [False], np.array([True])])
def test_reset_after_of_a_wrong_type_is_refused(make, value):
    with pytest.raises(TypeError, match=r"reset_after must be True or False. Received: "
                                        r"reset_after="):
        make(3, reset_after=value)


def test_numpy_bools_are_accepted():
    assert fnn.GRU(3, reset_after=np.False_).reset_after is False


# ---------------------------------------------------------------------------- 8. ONNX
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _ort(path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    s = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})


ONNX_MODELS = {
    # (the importer takes a reverse-direction layer's last state, not its sequence)
    "seq_back": lambda: [_gru(5, return_sequences=True), _gru(4, go_backwards=True)],
    "relu_no_bias": lambda: [_gru(5, activation="relu", use_bias=False, return_sequences=True)],
    "bidirectional": lambda: [fnn.Bidirectional(_gru(4, return_sequences=True)),
                              fnn.Bidirectional(_gru(3), merge_mode="sum")],
    "cells": lambda: [fnn.RNN([fnn.GRUCell(4, reset_after=False), fnn.GRUCell(3)])],
}


@pytest.mark.parametrize("name", list(ONNX_MODELS))
def test_onnx_export_matches_onnxruntime_and_imports_back(name, tmp_path):
    model = fnn.Sequential(ONNX_MODELS[name](), input_shape=(6, 3), seed=3)
    _perturb(model, seed=3)
    path = fnn.onnx.export(model, tmp_path / "m.onnx")
    graph = onnx.load(path)
    onnx.checker.check_model(graph, full_check=True)
    lbr = [a.i for node in graph.graph.node if node.op_type == "GRU"
           for a in node.attribute if a.name == "linear_before_reset"]
    assert 0 in lbr and set(lbr) <= {0, 1}
    back = fnn.onnx.load(path)
    for rows in (1, 7):
        x = np.random.default_rng(rows).normal(size=(rows, 6, 3)).astype(np.float32)
        want = model.predict(x)
        np.testing.assert_allclose(_ort(path, x)[0], want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(back.predict(x), want, rtol=1e-6, atol=1e-7)
    layers = [inner for layer in back.layers for inner in
              getattr(layer, "sublayers", ()) or (layer,) if isinstance(inner, fnn.GRU)]
    assert any(not layer.reset_after for layer in layers)


def test_onnx_refuses_other_linear_before_reset(tmp_path):
    model = fnn.Sequential([_gru(3)], input_shape=(4, 2), seed=0)
    path = fnn.onnx.export(model, tmp_path / "m.onnx")
    graph = onnx.load(path)
    for node in graph.graph.node:
        for a in node.attribute:
            if a.name == "linear_before_reset":
                a.i = 2
    onnx.save(graph, tmp_path / "bad.onnx")
    with pytest.raises(ValueError, match=r"linear_before_reset=2"):
        fnn.onnx.load(tmp_path / "bad.onnx")


# ---------------------------------------------------------------------------- 9. learning
def _sunspot_windows(window=16):
    from fastnn.datasets import load_sunspots
    _, values = load_sunspots("yearly")
    cut = int(round(len(values) * 0.8))
    mean, scale = values[:cut].mean(), values[:cut].std()
    z = (values - mean) / scale

    def windows(targets):
        return np.stack([z[t - window:t] for t in targets])[..., None], z[targets][:, None]
    return windows(np.arange(window, cut)), windows(np.arange(cut, len(values))), values, cut, \
        (mean, scale)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forecasts_sunspots_as_well_as_the_default_gru(backend):
    """On next year's sunspot number from the 16 before, GRU(16, reset_after=False) beats the
    persistence forecast by >= 20% in MAE on the held-out last 20%, and comes within 15% of
    GRU(16) (reset_after=True) trained the same way (when written, fast backend: MAE 14.1 and
    15.9, persistence 25.4)."""
    (Xtr, ytr), (Xte, _), values, cut, (mean, scale) = _sunspot_windows()
    mae = {}
    for reset_after in (False, True):
        model = fnn.Sequential([fnn.GRU(16, reset_after=reset_after), fnn.Dense(1)],
                               input_shape=(16, 1), seed=0, backend=backend)
        model.compile(loss="mse", optimizer=fnn.Adam(learning_rate=0.005))
        model.fit(Xtr, ytr, epochs=80, batch_size=16, verbose=0)
        forecast = model.predict(Xte)[:, 0] * scale + mean
        mae[reset_after] = np.abs(forecast - values[cut:]).mean()
    persistence = np.abs(values[cut - 1:-1] - values[cut:]).mean()
    assert mae[False] <= 0.8 * persistence, (mae, persistence)
    assert mae[False] <= 1.15 * mae[True], (mae, persistence)
