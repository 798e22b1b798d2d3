"""Recurrent layers (fastnn/layers/recurrent.py, fastnn/backends/numpy_recurrent.py,
fastnn/_ext/_recurrent.pyx over src_c/fnn_rnn.c).

- PyTorch parity in float64 (nn.RNN / nn.LSTM / nn.GRU with weights mapped from Keras' layout):
  outputs and every gradient through time, go_backwards, return_state, initial states,
  Bidirectional in every merge mode, on both backends;
- finite differences of stacked models; compiled = NumPy twin (float64, float32); bitwise at 1
  and 2 threads; every SIMD flavour in a subprocess (the float gates of each against float64);
- a table of bad inputs; configs and model files; Keras' initialisation; a small learning task.

Expected values come from PyTorch, central differences or the NumPy twin, never from the code
under test alone.
"""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend
from fastnn.layers import layer_from_config

torch = pytest.importorskip("torch")

BACKENDS = ["fast", "numpy"]
CELLS = {"simple": fnn.SimpleRNN, "lstm": fnn.LSTM, "gru": fnn.GRU}


@pytest.fixture(autouse=True, scope="module")
def _torch_on_one_thread():
    """The reference modules are tiny: PyTorch's thread pool only competes with fastnn's."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _rel(got, want):
    """max |got - want| / max |want| (absolute when want is all zero)"""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = np.abs(want).max() if want.size else 0.0
    return np.abs(got - want).max() / (scale if scale > 0 else 1.0) if want.size else 0.0


# ---------------------------------------------------------------------------- Keras <-> PyTorch
def _gru_order(a, u):
    """Keras' GRU gate blocks z, r, h <-> PyTorch's r, z, n along the last axis (its own
    inverse: it swaps the first two blocks)."""
    return np.concatenate([a[..., u:2 * u], a[..., :u], a[..., 2 * u:]], axis=-1)


def _torch_module(kind, d, u, act="tanh", bidirectional=False):
    if kind == "simple":
        mod = torch.nn.RNN(d, u, nonlinearity=act, batch_first=True,
                           bidirectional=bidirectional)
    else:
        mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](
            d, u, batch_first=True, bidirectional=bidirectional)
    return mod.double()


def _load_torch(kind, weights, mod, u, suffix=""):
    """Copy Keras-layout [kernel, recurrent_kernel, bias] into mod's *_l0{suffix} parameters:
    weight_ih = kernel^T, weight_hh = recurrent_kernel^T; the GRU's bias rows are PyTorch's
    bias_ih and bias_hh; the other cells' single bias goes to bias_ih (bias_hh = 0)."""
    W, U, b = weights
    if kind == "gru":
        W, U, b = _gru_order(W, u), _gru_order(U, u), _gru_order(b.reshape(2, 3 * u), u)
        bi, bh = b[0], b[1]
    else:
        bi, bh = b.reshape(-1), np.zeros(b.size)
    with torch.no_grad():
        for name, value in (("weight_ih", W.T), ("weight_hh", U.T), ("bias_ih", bi),
                            ("bias_hh", bh)):
            getattr(mod, f"{name}_l0{suffix}").copy_(torch.tensor(np.ascontiguousarray(value)))


def _torch_grads(kind, mod, u, suffix=""):
    """mod's parameter gradients in Keras' layout [dkernel, drecurrent_kernel, dbias] (the
    non-GRU bias gets both PyTorch biases' gradient, which are equal)."""
    g = {name: getattr(mod, f"{name}_l0{suffix}").grad.numpy()
         for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    dW, dU = g["weight_ih"].T, g["weight_hh"].T
    if kind == "gru":
        return [_gru_order(dW, u), _gru_order(dU, u),
                np.stack([_gru_order(g["bias_ih"], u), _gru_order(g["bias_hh"], u)])]
    return [dW, dU, g["bias_ih"]]


def _perturbed(model, rng, scale=0.3):
    """The model's initial weights plus noise (nonzero biases, a generic recurrent kernel)."""
    weights = [w + rng.normal(0.0, scale, w.shape) for w in model.get_weights()]
    model.set_weights(weights)
    return weights


def _layer(kind, u, act="tanh", **kwargs):
    return CELLS[kind](u, activation=act, **kwargs)


# ---------------------------------------------------------------------------- 1. PyTorch parity
PARITY_CASES = [
    (kind, act, seq, back, T, n, backend)
    for (kind, act), seq, back, (T, n), backend in itertools.product(
        [("simple", "tanh"), ("simple", "relu"), ("lstm", "tanh"), ("gru", "tanh")],
        [False, True], [False, True],
        [(1, 1), (1, 17), (2, 1), (2, 17), (7, 1), (7, 17), (50, 1), (50, 17)],
        BACKENDS)
]


@pytest.mark.parametrize("kind,act,seq,back,T,n,backend", PARITY_CASES)
def test_layer_matches_torch(kind, act, seq, back, T, n, backend):
    """Output, dx, dkernel, drecurrent_kernel and dbias through time equal PyTorch's to 1e-10
    in float64. With go_backwards the layer reads x last step first and returns its outputs in
    that (processing) order: PyTorch on the time-flipped input, dx flipped back."""
    d, u = 5, 6
    rng = np.random.default_rng([T, n, seq, back, len(kind), len(act)])
    model = fnn.Sequential([_layer(kind, u, act, return_sequences=seq, go_backwards=back)],
                           input_shape=(T, d), dtype="float64", backend=backend, seed=1)
    weights = _perturbed(model, rng)
    mod = _torch_module(kind, d, u, act)
    _load_torch(kind, weights, mod, u)
    x = rng.normal(size=(n, T, d))
    xt = torch.tensor(x[:, ::-1].copy() if back else x, requires_grad=True)
    out, _ = mod(xt)
    ref = out if seq else out[:, -1]
    g = rng.normal(size=ref.shape)
    ref.backward(torch.tensor(g))

    y = model.forward(x, training=True)
    assert _rel(np.reshape(y, ref.shape), ref.detach().numpy()) <= 1e-10
    model.zero_grad()
    dx = np.reshape(model.backward(g), (n, T, d))
    dx_ref = xt.grad.numpy()
    assert _rel(dx, dx_ref[:, ::-1] if back else dx_ref) <= 1e-10
    for name, got, want in zip(("dkernel", "drecurrent_kernel", "dbias"), model.grads,
                               _torch_grads(kind, mod, u)):
        assert _rel(got, want) <= 1e-10, name


# ------------------------------------------------------------- 2. states in and out, vs PyTorch
STATE_CASES = [
    (kind, seq, back, initial, ret, backend)
    for kind, seq, back, (initial, ret), backend in itertools.product(
        ["simple", "lstm", "gru"], [False, True], [False, True],
        [(True, True), (True, False), (False, True)], BACKENDS)
]


@pytest.mark.parametrize("kind,seq,back,initial,ret,backend", STATE_CASES)
def test_states_match_torch(kind, seq, back, initial, ret, backend):
    """Initial states h0 (, c0) as model inputs and the final states h (, c) as model outputs:
    forward values, dx, dh0, dc0 and the weight gradients with gradients arriving at every
    output (the sequence and the states) equal PyTorch's."""
    T, d, u, n = 6, 4, 5, 7
    k = 2 if kind == "lstm" else 1
    rng = np.random.default_rng([T, seq, back, initial, ret, len(kind)])
    x_in = fnn.Input((T, d))
    state_ins = [fnn.Input((u,)) for _ in range(k)] if initial else []
    layer = _layer(kind, u, return_sequences=seq, return_state=ret, go_backwards=back)
    outs = layer(x_in, initial_state=state_ins) if initial else layer(x_in)
    inputs = [x_in, *state_ins] if initial else x_in
    model = fnn.Model(inputs, outs, dtype="float64", backend=backend, seed=3)
    weights = _perturbed(model, rng)
    mod = _torch_module(kind, d, u)
    _load_torch(kind, weights, mod, u)

    x = rng.normal(size=(n, T, d))
    states = [rng.normal(size=(n, u)) for _ in range(k)] if initial else []
    xt = torch.tensor(x[:, ::-1].copy() if back else x, requires_grad=True)
    st = [torch.tensor(s[None], requires_grad=True) for s in states]
    if initial:
        out, fin = mod(xt, (st[0], st[1]) if kind == "lstm" else st[0])
    else:
        out, fin = mod(xt)
    fin = list(fin) if kind == "lstm" else [fin]
    refs = [out if seq else out[:, -1]] + ([f[0] for f in fin] if ret else [])
    gs = [rng.normal(size=r.shape) for r in refs]
    sum((r * torch.tensor(g)).sum() for r, g in zip(refs, gs)).backward()

    got = model.forward([x, *states] if initial else x, training=True)
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(refs)
    for a, r in zip(got, refs):
        assert _rel(np.reshape(a, r.shape), r.detach().numpy()) <= 1e-10
    model.zero_grad()
    dins = model.backward(gs if len(gs) > 1 else gs[0])
    dins = dins if isinstance(dins, list) else [dins]
    dx_ref = xt.grad.numpy()
    assert _rel(np.reshape(dins[0], (n, T, d)), dx_ref[:, ::-1] if back else dx_ref) <= 1e-10
    for i, s in enumerate(st):
        assert _rel(dins[1 + i], s.grad.numpy()[0]) <= 1e-10, f"d state {i}"
    for name, a, b in zip(("dkernel", "drecurrent_kernel", "dbias"), model.grads,
                          _torch_grads(kind, mod, u)):
        assert _rel(a, b) <= 1e-10, name


# ------------------------------------------------------------------ 3. Bidirectional vs PyTorch
def _merge(mode, f, b):
    if mode == "concat":
        return [torch.cat([f, b], dim=-1)]
    if mode == "sum":
        return [f + b]
    if mode == "ave":
        return [(f + b) * 0.5]
    if mode == "mul":
        return [f * b]
    return [f, b]


BIDI_CASES = list(itertools.product(["simple", "lstm", "gru"],
                                    ["concat", "sum", "ave", "mul", None], [False, True],
                                    BACKENDS))


@pytest.mark.parametrize("kind,mode,seq,backend", BIDI_CASES)
def test_bidirectional_matches_torch(kind, mode, seq, backend):
    """Bidirectional = PyTorch's bidirectional=True: its output's first half of features is
    the forward direction, the second half the backward one already in time order (the last
    output of the backward direction is at step 0); weights forward then backward
    (*_l0_reverse); outputs, dx and all six weight gradients."""
    T, d, u, n = 7, 3, 4, 5
    rng = np.random.default_rng([T, seq, len(kind), len(str(mode))])
    x_in = fnn.Input((T, d))
    out = fnn.Bidirectional(_layer(kind, u, return_sequences=seq), merge_mode=mode)(x_in)
    model = fnn.Model(x_in, out, dtype="float64", backend=backend, seed=5)
    weights = _perturbed(model, rng)
    mod = _torch_module(kind, d, u, bidirectional=True)
    _load_torch(kind, weights[:3], mod, u)
    _load_torch(kind, weights[3:], mod, u, "_reverse")

    x = rng.normal(size=(n, T, d))
    xt = torch.tensor(x, requires_grad=True)
    o, _ = mod(xt)
    f, b = o[..., :u], o[..., u:]
    if not seq:
        f, b = f[:, -1], b[:, 0]
    refs = _merge(mode, f, b)
    gs = [rng.normal(size=r.shape) for r in refs]
    sum((r * torch.tensor(g)).sum() for r, g in zip(refs, gs)).backward()

    got = model.forward(x, training=True)
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(refs)
    for a, r in zip(got, refs):
        assert _rel(np.reshape(a, r.shape), r.detach().numpy()) <= 1e-10
    model.zero_grad()
    dx = model.backward(gs if len(gs) > 1 else gs[0])
    assert _rel(np.reshape(dx, (n, T, d)), xt.grad.numpy()) <= 1e-10
    want = _torch_grads(kind, mod, u) + _torch_grads(kind, mod, u, "_reverse")
    assert len(model.grads) == 6
    for i, (a, w) in enumerate(zip(model.grads, want)):
        assert _rel(a, w) <= 1e-10, f"gradient {i}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_bidirectional_with_states_matches_torch(backend):
    """Bidirectional(LSTM(return_state)) with initial states [h0_f, c0_f, h0_b, c0_b]: outputs
    [merged, h_f, c_f, h_b, c_b] and the gradients of the sequence and of the four states."""
    T, d, u, n = 5, 3, 4, 6
    rng = np.random.default_rng(11)
    x_in = fnn.Input((T, d))
    s_in = [fnn.Input((u,)) for _ in range(4)]
    outs = fnn.Bidirectional(fnn.LSTM(u, return_sequences=True, return_state=True),
                             merge_mode="concat")(x_in, initial_state=s_in)
    model = fnn.Model([x_in, *s_in], outs, dtype="float64", backend=backend, seed=2)
    weights = _perturbed(model, rng)
    mod = _torch_module("lstm", d, u, bidirectional=True)
    _load_torch("lstm", weights[:3], mod, u)
    _load_torch("lstm", weights[3:], mod, u, "_reverse")
    x = rng.normal(size=(n, T, d))
    states = [rng.normal(size=(n, u)) for _ in range(4)]
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states]
    h0 = torch.stack([st[0], st[2]])
    c0 = torch.stack([st[1], st[3]])
    o, (hn, cn) = mod(xt, (h0, c0))
    refs = [o, hn[0], cn[0], hn[1], cn[1]]
    gs = [rng.normal(size=r.shape) for r in refs]
    sum((r * torch.tensor(g)).sum() for r, g in zip(refs, gs)).backward()
    got = model.forward([x, *states], training=True)
    assert len(got) == 5
    for a, r in zip(got, refs):
        assert _rel(a, r.detach().numpy()) <= 1e-10
    model.zero_grad()
    dins = model.backward(gs)
    assert _rel(dins[0], xt.grad.numpy()) <= 1e-10
    for i in range(4):
        assert _rel(dins[1 + i], st[i].grad.numpy()) <= 1e-10, f"d state {i}"
    want = _torch_grads("lstm", mod, u) + _torch_grads("lstm", mod, u, "_reverse")
    for i, (a, w) in enumerate(zip(model.grads, want)):
        assert _rel(a, w) <= 1e-10, f"gradient {i}"


# ------------------------------------------------------------ 4. finite-difference gradients
def _stacked_sequential(backend):
    return fnn.Sequential([fnn.LSTM(5, return_sequences=True),
                           fnn.GRU(4, go_backwards=True, return_sequences=True),
                           fnn.SimpleRNN(3, activation="tanh"), fnn.Dense(2)],
                          input_shape=(6, 3), dtype="float64", backend=backend, seed=7)


def _stacked_functional(backend):
    x = fnn.Input((5, 3))
    h0 = fnn.Input((4,))
    seq, h = fnn.SimpleRNN(4, return_sequences=True, return_state=True)(x, initial_state=[h0])
    merged = fnn.Bidirectional(fnn.LSTM(3, go_backwards=False), merge_mode="mul")(seq)
    out = fnn.Dense(2)(fnn.Concatenate()([merged, h]))
    return fnn.Model([x, h0], out, dtype="float64", backend=backend, seed=9)


def _stacked_embedding(backend):
    """The issue's stack: Embedding -> LSTM -> GRU -> Dense on integer ids."""
    return fnn.Sequential([fnn.Embedding(7, 3), fnn.LSTM(5, return_sequences=True),
                           fnn.GRU(4), fnn.Dense(2)],
                          input_shape=(6,), dtype="float64", backend=backend, seed=11)


def _loss(out, target):
    return 0.5 * float(np.sum((np.asarray(out) - target) ** 2))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("build", [_stacked_sequential, _stacked_functional,
                                   _stacked_embedding],
                         ids=["sequential", "functional", "embedding"])
def test_stacked_model_gradients_match_finite_differences(build, backend):
    """Weight and input gradients of a stacked recurrent model with the loss
    0.5 sum((out - t)^2) equal central differences (eps 1e-6) to rtol 1e-6, with an absolute
    floor of 1e-7 of the array's largest gradient (the differences' rounding error)."""
    rng = np.random.default_rng(13)
    model = build(backend)
    weights = _perturbed(model, rng, 0.2)
    multi = isinstance(model.input_shape, list)
    shapes = model.input_shape if multi else [model.input_shape]
    ids = build is _stacked_embedding          # integer inputs: no input gradient to check
    xs = [rng.integers(0, 7, size=(3, *s)).astype(np.float64) if ids else
          rng.normal(size=(3, *s)) for s in shapes]
    feed = (lambda a: a) if multi else (lambda a: a[0])
    out = model.forward(feed(xs), training=True)
    target = rng.normal(size=np.shape(out))
    model.zero_grad()
    dxs = model.backward(np.asarray(out) - target)
    dxs = dxs if multi else [dxs]
    grads = [g.copy() for g in model.grads]
    eps = 1e-6

    def loss_at():
        return _loss(model.predict(feed(xs), batch_size=3), target)

    def check(array, analytic, what):
        numeric = np.empty_like(array)
        flat, num = array.reshape(-1), numeric.reshape(-1)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + eps
            refresh()
            plus = loss_at()
            flat[i] = keep - eps
            refresh()
            minus = loss_at()
            flat[i] = keep
            num[i] = (plus - minus) / (2 * eps)
        refresh()
        np.testing.assert_allclose(np.reshape(analytic, numeric.shape), numeric, rtol=1e-6,
                                   atol=1e-7 * np.abs(numeric).max(), err_msg=what)

    def refresh():
        model.set_weights(weights)

    for i, w in enumerate(weights):
        check(w, grads[i], f"weight {i} {w.shape}")
    for i, x in enumerate(xs if not ids else []):
        check(x, np.reshape(dxs[i], x.shape), f"input {i}")


# ------------------------------------------------------------ 5. compiled = NumPy twin
def _states_model(kind, u, seq, back, act, dtype, backend, T, d):
    k = 2 if kind == "lstm" else 1
    x_in = fnn.Input((T, d))
    s_in = [fnn.Input((u,)) for _ in range(k)]
    layer = _layer(kind, u, act, return_sequences=seq, return_state=True, go_backwards=back)
    outs = layer(x_in, initial_state=s_in)
    return fnn.Model([x_in, *s_in], outs, dtype=dtype, backend=backend, seed=4)


def _run_states_model(model, rng_seed, n, dtype):
    """forward outputs, input gradients and weight gradients for random inputs and dout"""
    rng = np.random.default_rng(rng_seed)
    model.set_weights([(w + rng.normal(0.0, 0.3, w.shape)).astype(dtype)
                       for w in model.get_weights()])
    xs = [rng.normal(size=(n, *s)).astype(dtype) for s in model.input_shape]
    outs = model.forward(xs, training=True)
    douts = [rng.normal(size=np.shape(o)).astype(dtype) for o in outs]
    model.zero_grad()
    dins = model.backward(douts)
    return [np.array(a) for a in [*outs, *dins, *model.grads]]


TWIN_CASES = list(itertools.product(["simple", "lstm", "gru"], [1, 7, 16, 33],
                                    [False, True], ["float64", "float32"]))


@pytest.mark.parametrize("kind,u,back,dtype", TWIN_CASES)
def test_compiled_matches_numpy_twin(kind, u, back, dtype):
    """Every output (sequence, h, c), input gradient (x, h0, c0) and weight gradient of the
    fast backend equals the NumPy backend's: 1e-12 relative in float64, 1e-5 in float32 (the
    compiled float32 gates use their own vectorised sigmoid and tanh). Units 1, 7, 16, 33 reach
    the vector loops' full vectors and remainders; relu and sigmoid candidates too."""
    T, d, n = 9, 5, 11
    act = {"simple": "relu", "lstm": "tanh", "gru": "sigmoid"}[kind]
    seq = u % 2 == 1
    res = {be: _run_states_model(_states_model(kind, u, seq, back, act, dtype, be, T, d),
                                 [u, back, len(kind)], n, dtype) for be in BACKENDS}
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert len(res["fast"]) == len(res["numpy"])
    for i, (a, b) in enumerate(zip(res["fast"], res["numpy"])):
        assert a.dtype == np.dtype(dtype)
        assert _rel(a, b) <= tol, f"array {i}"


# A few sequences (batch <= 4) take row updates that read the recurrent kernel in blocks of 128
# gate columns, odd steps last block first: K = gates * units above 128 and not a multiple of it
# (two blocks, the second partial), an odd number of steps, every cell.
FEW_CASES = list(itertools.product([("simple", 130), ("lstm", 33), ("gru", 50)], [1, 3],
                                   ["float64", "float32"]))


@pytest.mark.parametrize("cell,n,dtype", FEW_CASES)
def test_few_sequences_with_wide_gates_match_numpy_twin(cell, n, dtype):
    kind, u = cell
    T, d = 7, 4
    act = {"simple": "tanh", "lstm": "tanh", "gru": "tanh"}[kind]
    res = {be: _run_states_model(_states_model(kind, u, True, n == 3, act, dtype, be, T, d),
                                 [u, n], n, dtype) for be in BACKENDS}
    # float32: 1.5e-5 seen (the same before the blocked reads): wider sums than the twin test's
    tol = 1e-12 if dtype == "float64" else 5e-5
    for i, (a, b) in enumerate(zip(res["fast"], res["numpy"])):
        assert _rel(a, b) <= tol, f"array {i}"


# ------------------------------------------------------------ 6. bitwise at 1 and 2 threads
@pytest.mark.parametrize("cls,u", [(fnn.LSTM, 32), (fnn.LSTM, 64), (fnn.LSTM, 34), (fnn.GRU, 48),
                                   (fnn.SimpleRNN, 160)],
                         ids=["lstm32", "lstm64", "lstm34", "gru", "simple"])
def test_a_rows_steps_do_not_depend_on_the_step_tiles(cls, u):
    """Rows are independent through time, so a row's outputs and input gradient must not depend
    on how its group's step products are tiled: batch 32 runs two groups of 16 rows (AVX2's
    4-row step tiles where the gates have 128+ columns, a multiple of 16), batch 33 a second group
    of 17 (the GEMM's tiles); rows 16-31 agree bit for bit, float32 and float64. (An LSTM of 34
    units, 136 columns: the GEMM's last tile of one vector splits k in two, which the step tiles
    do not, so they must not take it.)"""
    T, d = 6, 5
    for dtype in ("float32", "float64"):
        model = fnn.Sequential([cls(u, return_sequences=True)], input_shape=(T, d), seed=2,
                               dtype=dtype)
        rng = np.random.default_rng(4)
        x = rng.normal(size=(33, T, d)).astype(dtype)
        g = rng.normal(size=(33, T, u)).astype(dtype)
        res = []
        for n in (32, 33):
            y = model.forward(x[:n], training=True)
            dx = model.backward(g[:n])
            res.append((np.array(y[16:32]), np.array(dx[16:32])))
        for a, b in zip(*res):
            assert a.tobytes() == b.tobytes(), dtype


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "simple"])
@pytest.mark.parametrize("size", [(64, 20, 32, 256), (53, 40, 7, 64), (32, 12, 32, 64)],
                         ids=["gemm", "groups", "step-tiles"])
def test_bitwise_equal_at_one_and_two_threads(kind, dtype, size):
    """Forward outputs, dx and weight gradients are the same bits at 1 and 2 threads on a size
    whose GEMMs are split over threads (batch 64, 256 units, 20 steps), and on one whose rows
    run in groups, each group's time loop on a thread (batch 53: 3 groups of 17-18 rows, 64
    units, 40 steps: above the floor for threads of every CPU); adaptive thread choice off so
    that 2 threads are really used."""
    n, T, d, u = size
    results = {}
    # glorot rather than the orthogonal default: the (256, 1024) QR would dominate the runtime
    model = fnn.Sequential([_layer(kind, u, return_sequences=True,
                                   recurrent_initializer="glorot_uniform")],
                           input_shape=(T, d), dtype=dtype, backend="fast", seed=21)
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


# ------------------------------------------------------------ 7. every SIMD flavour
_FLAVOUR_SCRIPT = r"""
import json, sys
import numpy as np
import fastnn as fnn
from fastnn.backends import get_backend
out = {"kernel": get_backend("fast").kernel_name(), "errors": {}}
# batch 19 (the steps' GEMM) and 3 (the row updates of up to 4 rows, small_gemm) with gates of
# 280 and 160 columns (LSTM; GRU 210 and 120): whole blocks of 8 vectors, single vectors and
# a masked tail in every flavour; 29 units: the AVX2 LSTM gates' pair of vectors, then one
# whole vector and a masked one (70: two blocks of 4); batch 37: two row groups (of 18 and 19
# rows, each with its own time loop). The LSTM's steps multiply [x_t | h_t-1] by [W; U] laid
# out once: with rows spread over L1 for direct tiles (batch 19 on AVX2), packed for the GEMM's
# micro-kernel (batch 40 with 190 units: one group too large for direct tiles, in every flavour).
# Batch 32 (groups of 16 rows) with 128 or more gate columns, a multiple of 16, takes AVX2's
# 4-row step tiles of 3 vectors, then 2 (SimpleRNN 160: its beta-1 product; forward and
# backward) or 1 (LSTM 32: 128 columns) at the end
wide = {"lstm": 32, "gru": 48, "simple": 160}
for kind, cls in (("lstm", fnn.LSTM), ("gru", fnn.GRU), ("simple", fnn.SimpleRNN)):
  for batch, (u1, u2) in (((19, (29, 9)), (3, (70, 40)), (37, (12, 5)), (32, (wide[kind], 6)))
                          + (((40, (190, 7)),) if kind == "lstm" else ())):
    for dtype in ("float64", "float32"):
        res = {}
        for be in ("fast", "numpy"):
            model = fnn.Sequential([cls(u1, return_sequences=True, go_backwards=True),
                                    cls(u2)], input_shape=(8, 5), dtype=dtype, backend=be,
                                   seed=3)
            rng = np.random.default_rng(1)
            model.set_weights([(w + rng.normal(0, 0.3, w.shape)).astype(dtype)
                               for w in model.get_weights()])
            x = rng.normal(size=(batch, 8, 5)).astype(dtype)
            y = model.forward(x, training=True)
            g = rng.normal(size=y.shape).astype(dtype)
            model.zero_grad()
            dx = model.backward(g)
            res[be] = [np.array(a, np.float64) for a in (y, dx, *model.grads)]
        out["errors"][f"{kind}-{batch}-{dtype}"] = max(
            float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(res["fast"],
                                                                         res["numpy"]))
json.dump(out, sys.stdout)
"""


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_each_kernel_flavour_matches_numpy_twin(flavour):
    """With FASTNN_KERNEL=generic / avx2 / avx512 (in a subprocess: the flavour is chosen on
    first use), stacked LSTM, GRU and SimpleRNN outputs and gradients equal the NumPy
    backend's (1e-12 float64, 1e-5 float32). A flavour this CPU cannot run is skipped."""
    env = dict(os.environ, FASTNN_KERNEL=flavour)
    done = subprocess.run([sys.executable, "-c", _FLAVOUR_SCRIPT], env=env, check=True,
                          capture_output=True, text=True, timeout=120)
    result = json.loads(done.stdout)
    if result["kernel"] != flavour:
        pytest.skip(f"this CPU runs {result['kernel']!r}, not {flavour!r}")
    for case, err in result["errors"].items():
        # float32, batch 32: up to 2.1e-5 seen with the portable loops too (136 units' sums)
        wide = case.split("-")[1] == "32"
        assert err <= (1e-12 if case.endswith("float64") else 5e-5 if wide else 1e-5), (case, err)


# ------------------------------------------------- 7b. the steps' GEMM on a pre-packed operand
# The recurrent kernel is packed once per call and each step's product reads the packed copy
# (src_c/fnn_gemm.h: fnn_sgemm_bp); it must give the plain GEMM's bits on every path: direct
# (few rows), read in place, packed, several k / n / m blocks, narrow, threaded (the floor
# lowered so that the larger products split), per flavour in a subprocess.
_PACKED_SCRIPT = r"""
import json, sys
import numpy as np
import fastnn as fnn
from fastnn.backends import get_backend
from fastnn._ext._kernels import matmul
from fastnn._ext._recurrent import matmul_packed_b
out = {"kernel": get_backend("fast").kernel_name(), "checked": 0, "differ": []}
shapes = [(1, 1, 1), (3, 7, 5), (5, 256, 64), (32, 256, 64), (32, 64, 256), (33, 70, 300),
          (70, 1030, 9), (150, 40, 520), (64, 1000, 256), (200, 300, 200), (40, 10, 100),
          (100, 5, 50), (6, 33, 17), (4, 3, 0)]
rng = np.random.default_rng(7)
for m, n, k in shapes:
    for dtype in (np.float32, np.float64):
        for ta, tb in ((0, 0), (1, 0), (0, 1), (1, 1)):
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
            c0 = rng.standard_normal((m, n)).astype(dtype)
            for alpha, beta in ((1.0, 0.0), (0.5, 1.0)):
                for threads in (1, 2):
                    with fnn.threads(threads):
                        want = matmul(a, b, c0.copy(), ta, tb, alpha, beta)
                        got = matmul_packed_b(a, b, c0.copy(), ta, tb, alpha, beta)
                    out["checked"] += 1
                    if want.tobytes() != got.tobytes():
                        out["differ"].append([m, n, k, str(np.dtype(dtype)), ta, tb, beta,
                                              threads])
json.dump(out, sys.stdout)
"""


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_packed_operand_gemm_gives_the_plain_gemm_bits(flavour):
    """matmul_packed_b (op(b) packed once, then fnn_*gemm_bp) equals the plain GEMM bit for bit
    over odd shapes, both transposes, beta 0 and 1, at 1 and 2 threads."""
    env = dict(os.environ, FASTNN_KERNEL=flavour, FASTNN_PAR_MIN_WORK="100000")
    done = subprocess.run([sys.executable, "-c", _PACKED_SCRIPT], env=env, check=True,
                          capture_output=True, text=True, timeout=300)
    result = json.loads(done.stdout)
    if result["kernel"] != flavour:
        pytest.skip(f"this CPU runs {result['kernel']!r}, not {flavour!r}")
    assert result["checked"] == 14 * 2 * 4 * 2 * 2
    assert result["differ"] == []


def test_packed_operand_gemm_checks_shapes():
    from fastnn._ext._recurrent import matmul_packed_b
    a, b = np.ones((3, 4), np.float32), np.ones((5, 6), np.float32)
    with pytest.raises(ValueError, match="matmul_packed_b"):
        matmul_packed_b(a, b, np.zeros((3, 6), np.float32))
    with pytest.raises(ValueError, match="matmul_packed_b"):
        matmul_packed_b(a, np.ones((4, 6), np.float32), np.zeros((3, 5), np.float32))


# ---------------------------------------------------- 7c. the float gates of every flavour
# The AVX2 and AVX-512 flavours run the float gates on intrinsics (src_c/fnn_rnn_gates_simd.h:
# FMAs, a reciprocal by vrcp14ps and a Newton step on AVX-512, masked tails); one step from a
# zero state with U = 0 and W = I gives each gate's pre-activation directly, so the outputs are
# held to float64 sigmoid and tanh within a few float ulps, per flavour in a subprocess, over
# unit counts with and without a partial vector (1, 7, 8, 9, 15, 16, 17, 33, 64), pre-activations
# across both of tanh's branches (|z| < 0.5 or not), saturation (|z| up to 200) and NaN.
_GATES_SCRIPT = r"""
import json, sys
import numpy as np
from fastnn.backends import get_backend
from fastnn._ext import _recurrent as R
out = {"kernel": get_backend("fast").kernel_name(), "err": 0.0, "nan": [], "sat": []}

def sig(z):
    return 1.0 / (1.0 + np.exp(-z))

def run(cell, act, rec, z, c0, bias=None):
    n, d = z.shape
    G = (1, 4, 3)[cell]
    u = d // G
    fwd, _ = R.rnn_sizes(cell, 1, d, u)
    ws = np.zeros(n * fwd, np.float32)
    y = np.zeros(n * u, np.float32)
    c_last = np.zeros(n * u, np.float32)
    R.rnn_forward(cell, n, 1, d, u, z.reshape(-1), np.eye(d, dtype=np.float32).reshape(-1),
                  np.zeros(u * d, np.float32),
                  np.zeros(d, np.float32) if bias is None else bias, None,
                  None if c0 is None else c0.reshape(-1), act, rec, False, ws, y, False, None,
                  c_last if cell == 1 else None)
    return y.reshape(n, u), c_last.reshape(n, u)

rng = np.random.default_rng(3)
for u in (1, 7, 8, 9, 15, 16, 17, 33, 64):
    for scale in (0.3, 3.0, 60.0):
        n = 5
        z = (rng.standard_normal((n, 4 * u)) * scale).astype(np.float32)
        c0 = (rng.standard_normal((n, u)) * scale).astype(np.float32)
        zd, cd = z.astype(np.float64), c0.astype(np.float64)
        i, f, g, o = (sig(zd[:, :u]), sig(zd[:, u:2 * u]), np.tanh(zd[:, 2 * u:3 * u]),
                      sig(zd[:, 3 * u:]))
        c = f * cd + i * g
        h, cl = run(1, 3, 2, z, c0)        # tanh, sigmoid: the one-pass LSTM row
        # errors relative to the terms' size (c sums two products of float inputs)
        out["err"] = max(out["err"], float(np.abs(cl - c).max() / (np.abs(f * cd).max() +
                                                                     np.abs(i * g).max())))
        out["err"] = max(out["err"], float(np.abs(h - o * np.tanh(cl.astype(np.float64))).max()))
        for act, fn in ((2, sig), (3, np.tanh)):   # SimpleRNN: the act loop alone
            y, _ = run(0, act, act, z[:, :u].copy(), None)
            out["err"] = max(out["err"], float(np.abs(y - fn(zd[:, :u])).max()))
# saturation: exact limits far out
z = np.array([[200.0, -200.0, 90.0, -90.0]], np.float32)
y, _ = run(0, 2, 2, z, None)
out["sat"].append(y.ravel().tolist())
y, _ = run(0, 3, 3, z, None)
out["sat"].append(y.ravel().tolist())
# NaN in one pre-activation (by the bias: through the product x W it would reach the whole row)
# reaches that unit only
for u in (9, 17):
    z = np.full((2, 4 * u), 0.25, np.float32)
    b = np.zeros(4 * u, np.float32)
    b[3 * u - 1] = np.nan                   # the candidate gate of the last unit
    h, _ = run(1, 3, 2, z, None, b)
    out["nan"].append(np.argwhere(np.isnan(h)).tolist())
    for act in (2, 3):
        y, _ = run(0, act, act, z[:, :u].copy(), None, b[2 * u:3 * u].copy())
        out["nan"].append(np.argwhere(np.isnan(y)).tolist())
json.dump(out, sys.stdout)
"""


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_float_gates_of_each_flavour_hold_float64(flavour):
    """LSTM gates, cell and state, and SimpleRNN's sigmoid and tanh, within 1e-6 of float64 at
    every unit count (partial vectors too), the exact limits when saturated, NaN in place."""
    env = dict(os.environ, FASTNN_KERNEL=flavour)
    done = subprocess.run([sys.executable, "-c", _GATES_SCRIPT], env=env, check=True,
                          capture_output=True, text=True, timeout=120)
    result = json.loads(done.stdout)
    if result["kernel"] != flavour:
        pytest.skip(f"this CPU runs {result['kernel']!r}, not {flavour!r}")
    assert result["err"] < 1e-6, result["err"]
    assert result["sat"] == [[1.0, 0.0, 1.0, 0.0], [1.0, -1.0, 1.0, -1.0]]
    for k, u in enumerate((9, 17)):    # LSTM, then SimpleRNN's sigmoid and tanh
        assert result["nan"][3 * k:3 * k + 3] == [[[0, u - 1], [1, u - 1]]] * 3, (u, result["nan"])


# ------------------------------------------------------------ 8. bad inputs
def _seq_model(layer, shape=(5, 3)):
    return fnn.Sequential([layer], input_shape=shape, backend="numpy")


def _functional(make):
    def run():
        x = fnn.Input((5, 3))
        return make(x)
    return run


BAD_LAYERS = [
    ("2-D input to SimpleRNN", lambda: _seq_model(fnn.SimpleRNN(4), (3,)), r"steps"),
    ("2-D input to LSTM", lambda: _seq_model(fnn.LSTM(4), (3,)), r"steps"),
    ("2-D functional input to GRU", lambda: fnn.GRU(4)(fnn.Input((3,))), r"steps"),
    ("3-D samples", lambda: _seq_model(fnn.GRU(4), (5, 3, 2)), r"steps"),
    ("LSTM one initial state",
     _functional(lambda x: fnn.LSTM(4)(x, initial_state=[fnn.Input((4,))])), r"initial_state"),
    ("LSTM three initial states",
     _functional(lambda x: fnn.LSTM(4)(x, initial_state=[fnn.Input((4,))] * 3)),
     r"initial_state"),
    ("GRU two initial states",
     _functional(lambda x: fnn.GRU(4)(x, initial_state=[fnn.Input((4,)), fnn.Input((4,))])),
     r"initial_state"),
    ("SimpleRNN state of wrong width",
     _functional(lambda x: fnn.SimpleRNN(4)(x, initial_state=[fnn.Input((5,))])),
     r"initial_state"),
    ("LSTM state of wrong rank",
     _functional(lambda x: fnn.LSTM(4)(x, initial_state=[fnn.Input((4,)),
                                                         fnn.Input((4, 1))])),
     r"initial_state"),
    ("Bidirectional two states for an LSTM pair",
     _functional(lambda x: fnn.Bidirectional(fnn.LSTM(4))(
         x, initial_state=[fnn.Input((4,)), fnn.Input((4,))])), r"initial_state"),
    ("units 0 SimpleRNN", lambda: fnn.SimpleRNN(0), r"Received: units="),
    ("units -3 LSTM", lambda: fnn.LSTM(-3), r"Received: units="),
    ("units 0 GRU", lambda: fnn.GRU(0), r"Received: units="),
    ("softmax activation", lambda: fnn.SimpleRNN(4, activation="softmax"), r"activation"),
    ("softmax LSTM activation", lambda: fnn.LSTM(4, activation="softmax"), r"activation"),
    ("softmax recurrent_activation", lambda: fnn.GRU(4, recurrent_activation="softmax"),
     r"recurrent_activation"),
    ("unknown activation name", lambda: fnn.LSTM(4, activation="swishy"), r"swishy"),
    ("Bidirectional of a Dense", lambda: fnn.Bidirectional(fnn.Dense(3)), r"layer=Dense"),
    ("Bidirectional merge_mode", lambda: fnn.Bidirectional(fnn.LSTM(3), merge_mode="max"),
     r"merge_mode"),
    ("backward_layer with other units",
     lambda: fnn.Bidirectional(fnn.LSTM(3), backward_layer=fnn.LSTM(4, go_backwards=True)),
     r"backward_layer"),
    ("backward_layer same direction",
     lambda: fnn.Bidirectional(fnn.LSTM(3), backward_layer=fnn.LSTM(3)), r"backward_layer"),
    ("return_state in a Sequential LSTM",
     lambda: _seq_model(fnn.LSTM(4, return_state=True)), r"return_state|several outputs"),
    ("merge_mode=None in a Sequential",
     lambda: _seq_model(fnn.Bidirectional(fnn.LSTM(4), merge_mode=None)), r"several"),
    ("return_state in a Sequential GRU",
     lambda: _seq_model(fnn.GRU(4, return_state=True, return_sequences=True)),
     r"return_state|several outputs"),
]


@pytest.mark.parametrize("make,match", [(m, r) for _, m, r in BAD_LAYERS],
                         ids=[label for label, _, _ in BAD_LAYERS])
def test_bad_layer_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


BAD_STATE_ARRAYS = [
    ("h0 of wrong width", lambda n: [np.zeros((n, 5, 3)), np.zeros((n, 5)), np.zeros((n, 4))],
     r"(?i)x\[1\]"),
    ("c0 of wrong width", lambda n: [np.zeros((n, 5, 3)), np.zeros((n, 4)), np.zeros((n, 3))],
     r"(?i)x\[2\]"),
    ("c0 missing", lambda n: [np.zeros((n, 5, 3)), np.zeros((n, 4))], r"3 arrays"),
    ("h0 of other batch", lambda n: [np.zeros((n, 5, 3)), np.zeros((n + 1, 4)),
                                     np.zeros((n, 4))], r"samples"),
    ("sequence of other length", lambda n: [np.zeros((n, 6, 3)), np.zeros((n, 4)),
                                            np.zeros((n, 4))], r"(?i)x\[0\]"),
]


@pytest.mark.parametrize("make,match", [(m, r) for _, m, r in BAD_STATE_ARRAYS],
                         ids=[label for label, _, _ in BAD_STATE_ARRAYS])
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_state_arrays_raise(make, match, backend):
    """Arrays fed for the initial states are checked like any model input."""
    x, h0, c0 = fnn.Input((5, 3)), fnn.Input((4,)), fnn.Input((4,))
    model = fnn.Model([x, h0, c0], fnn.LSTM(4)(x, initial_state=[h0, c0]), backend=backend)
    for call in (model.predict, model.forward):
        with pytest.raises(ValueError, match=match):
            call(make(3))


def _raw_arrays(cell, dtype, n=3, T=4, d=2, u=5):
    """Correctly sized arguments of rnn_forward and rnn_backward (fast backend's sizes)."""
    K = (1, 4, 3)[cell] * u
    fwd, bwd = get_backend("fast").rnn_sizes(cell, T, d, u)
    z = lambda size: np.zeros(size, dtype)
    rng = np.random.default_rng(0)
    r = lambda size: rng.normal(size=size).astype(dtype)
    f = dict(x=r(n * T * d), kernel=r(d * K), rkernel=r(u * K),
             bias=r(2 * K if cell == 2 else K), h0=r(n * u), c0=r(n * u), ws=z(n * fwd),
             y=z(n * u), h_last=z(n * u), c_last=z(n * u))
    b = dict(dy=r(n * u), dh_last=r(n * u), dc_last=r(n * u), bws=z(n * bwd), ut=z(K * u),
             dkernel=z(d * K), drkernel=z(u * K), dbias=z(2 * K if cell == 2 else K),
             dx=z(n * T * d), dh0=z(n * u), dc0=z(n * u))
    return (n, T, d, u), f, b


def _call_forward(module, cell, dims, f):
    module.rnn_forward(cell, *dims, f["x"], f["kernel"], f["rkernel"], f["bias"], f["h0"],
                       f["c0"], 3, 2, False, f["ws"], f["y"], False, f["h_last"], f["c_last"])


def _call_backward(module, cell, dims, f, b):
    module.rnn_backward(cell, *dims, f["kernel"], f["rkernel"], 3, 2, False, f["ws"], b["dy"],
                        False, b["dh_last"], b["dc_last"], b["bws"], b["ut"], b["dkernel"],
                        b["drkernel"], b["dbias"], b["dx"], b["dh0"], b["dc0"])


RAW_FORWARD = ["x", "kernel", "rkernel", "bias", "h0", "c0", "ws", "y", "h_last", "c_last"]
RAW_BACKWARD = ["dy", "dh_last", "dc_last", "bws", "ut", "dkernel", "drkernel", "dbias", "dx",
                "dh0", "dc0"]
RAW_NAMES = {"rkernel": "recurrent kernel", "ws": "workspace", "bws": "workspace",
             "drkernel": "drecurrent_kernel"}


def _raw_modules():
    from fastnn._ext import _recurrent
    from fastnn.backends import numpy_recurrent
    return {"compiled": _recurrent, "numpy": numpy_recurrent}


def _twin_ignores(cell, name):
    """Arguments the NumPy twin never reads or writes: the compiled kernels' scratch, and the
    cell state of a cell without one (the layer never passes it)."""
    return name in ("bws", "ut") or (cell != 1 and name in ("c0", "c_last"))


RAW_CASES = [(side, cell, which, name, delta)
             for side in ("compiled", "numpy") for cell in (0, 1, 2)
             for which, names in (("forward", RAW_FORWARD), ("backward", RAW_BACKWARD))
             for name in names for delta in (-1, 1)
             if not (delta == 1 and name in ("ws", "bws"))     # larger workspaces are fine
             and not (side == "numpy" and _twin_ignores(cell, name))]


@pytest.mark.parametrize("side,cell,which,name,delta", RAW_CASES)
def test_raw_kernels_refuse_wrong_sizes(side, cell, which, name, delta):
    """rnn_forward / rnn_backward refuse an array one value short or long with a ValueError;
    the compiled ones name it and write nothing (every output keeps its sentinel)."""
    module = _raw_modules()[side]
    dims, f, b = _raw_arrays(cell, np.float64)
    if which == "backward":
        _call_forward(_raw_modules()["compiled"], cell, dims, f)   # a valid workspace
    table = f if which == "forward" else b
    table[name] = np.full(table[name].size + delta, 7.0)
    outputs = ["ws", "y", "h_last", "c_last"] if which == "forward" else [
        "bws", "ut", "dkernel", "drkernel", "dbias", "dx", "dh0", "dc0"]
    for key in outputs:
        table[key][...] = 7.0
    with pytest.raises(ValueError) as info:
        if which == "forward":
            _call_forward(module, cell, dims, f)
        else:
            _call_backward(module, cell, dims, f, b)
    if side == "compiled":
        expected = RAW_NAMES.get(name, name)
        assert (expected if expected == "workspace" else f"{expected} must hold") in str(
            info.value)
        for key in outputs:
            assert np.all(table[key] == 7.0), f"{key} was written"


def test_raw_kernels_refuse_bad_dimensions_and_codes():
    from fastnn._ext import _recurrent
    dims, f, _ = _raw_arrays(1, np.float64)
    for bad_cell in (-1, 4):      # 3: the GRU with reset_after=False
        with pytest.raises(ValueError, match="cell"):
            _recurrent.rnn_sizes(bad_cell, 4, 2, 5)
    for T, d, u in ((0, 2, 5), (4, 0, 5), (4, 2, 0)):
        with pytest.raises(ValueError, match="steps"):
            _recurrent.rnn_sizes(1, T, d, u)
    with pytest.raises(ValueError, match="activation"):
        _recurrent.rnn_forward(1, *dims, f["x"], f["kernel"], f["rkernel"], f["bias"], None,
                               None, 6, 2, False, f["ws"], f["y"], False, None, None)


# ------------------------------------------------------------ 9. configs, files, initialisers
CONFIG_LAYERS = [
    lambda: fnn.SimpleRNN(3, activation="relu", use_bias=False, return_sequences=True,
                          go_backwards=True, kernel_regularizer=fnn.regularizers.l2(0.01)),
    lambda: fnn.LSTM(4, activation="sigmoid", recurrent_activation="tanh",
                     unit_forget_bias=False, return_state=True, recurrent_initializer="zeros",
                     name="my_lstm"),
    lambda: fnn.GRU(5, recurrent_activation="relu", bias_initializer="ones",
                    return_sequences=True, trainable=False),
    lambda: fnn.Bidirectional(fnn.LSTM(3, return_sequences=True), merge_mode="ave"),
    lambda: fnn.Bidirectional(fnn.GRU(3), merge_mode=None,
                              backward_layer=fnn.GRU(3, go_backwards=True, activation="relu")),
]


@pytest.mark.parametrize("make", CONFIG_LAYERS, ids=range(len(CONFIG_LAYERS)))
def test_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    again = layer_from_config(config)
    assert type(again) is type(layer)
    assert again.get_config() == config
    inner = [(layer, again)]
    if isinstance(layer, fnn.Bidirectional):
        assert again.merge_mode == layer.merge_mode
        inner = [(layer.forward_layer, again.forward_layer),
                 (layer.backward_layer, again.backward_layer)]
    for a, b in inner:
        for key in ("units", "act", "rec_act", "use_bias", "return_sequences", "return_state",
                    "go_backwards"):
            assert getattr(a, key) == getattr(b, key), key


def _files_functional():
    x = fnn.Input((6, 3))
    h0, c0 = fnn.Input((4,)), fnn.Input((4,))
    seq, h, c = fnn.LSTM(4, return_sequences=True, return_state=True)(
        x, initial_state=[h0, c0])
    y = fnn.GRU(3, go_backwards=True)(seq)
    return fnn.Model([x, h0, c0], [y, h, c], dtype="float64", backend="numpy", seed=1), \
        [(6, 3), (4,), (4,)]


def _files_bidirectional():
    model = fnn.Sequential([fnn.Bidirectional(fnn.GRU(4, return_sequences=True),
                                              merge_mode="sum"),
                            fnn.Bidirectional(fnn.SimpleRNN(3), merge_mode="concat"),
                            fnn.Dense(2)], input_shape=(6, 3), dtype="float64",
                           backend="fast", seed=1)
    return model, [(6, 3)]


@pytest.mark.parametrize("build", [_files_functional, _files_bidirectional],
                         ids=["functional_states", "bidirectional"])
def test_model_file_round_trip(build, tmp_path):
    model, shapes = build()
    rng = np.random.default_rng(2)
    _perturbed(model, rng)
    xs = [rng.normal(size=(5, *s)) for s in shapes]
    feed = xs if len(xs) > 1 else xs[0]
    before = model.predict(feed)
    path = tmp_path / "rnn.fnn"
    model.save(path)
    loaded = fnn.load(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)
    after = loaded.predict(feed)
    before = before if isinstance(before, list) else [before]
    after = after if isinstance(after, list) else [after]
    assert len(before) == len(after)
    for a, b in zip(before, after):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("u", [1, 5])
def test_unit_forget_bias(u):
    """LSTM's bias starts at 0 except the forget gate's quarter (i, f, c, o), at 1; without
    unit_forget_bias all zeros."""
    on = fnn.Sequential([fnn.LSTM(u)], input_shape=(3, 2), backend="numpy", seed=0)
    want = np.zeros(4 * u)
    want[u:2 * u] = 1.0
    assert np.array_equal(on.get_weights()[2], want)
    off = fnn.Sequential([fnn.LSTM(u, unit_forget_bias=False)], input_shape=(3, 2),
                         backend="numpy", seed=0)
    assert np.array_equal(off.get_weights()[2], np.zeros(4 * u))


@pytest.mark.parametrize("kind,u", [("simple", 6), ("lstm", 6), ("gru", 6), ("simple", 1)])
def test_default_initializers(kind, u):
    """Keras' defaults: the recurrent kernel (u, k u) orthogonal as one matrix (rows
    orthonormal: U U^T = I; for SimpleRNN, square, also U^T U = I); bias zeros (LSTM: forget
    gate 1); kernel glorot_uniform (within +-sqrt(6 / (fan_in + fan_out)))."""
    d = 3
    model = fnn.Sequential([_layer(kind, u)], input_shape=(4, d), dtype="float64",
                           backend="numpy", seed=0)
    W, U, b = model.get_weights()
    k = {"simple": 1, "lstm": 4, "gru": 3}[kind]
    assert U.shape == (u, k * u)
    np.testing.assert_allclose(U @ U.T, np.eye(u), atol=1e-12)
    if kind == "simple":
        np.testing.assert_allclose(U.T @ U, np.eye(u), atol=1e-12)
    limit = np.sqrt(6.0 / (d + k * u))
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.3 * limit
    if kind != "lstm":
        assert np.array_equal(b, np.zeros(b.shape))


# ------------------------------------------------------------ 10. it learns
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_learns_the_sign_of_a_sum(backend):
    """A small LSTM learns whether a sequence's sum is positive: the training loss falls by a
    factor of 3 within a few epochs."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 10, 1))
    y = (x.sum(axis=(1, 2)) > 0).astype(np.float64)[:, None]
    model = fnn.Sequential([fnn.LSTM(8), fnn.Dense(1, activation="sigmoid")],
                           input_shape=(10, 1), backend=backend, seed=0)
    model.compile(loss="binary_crossentropy", optimizer=fnn.Adam(lr=0.02))
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] / 3, losses


def test_a_wrapped_layer_cannot_also_be_used_elsewhere():
    """Bidirectional runs its layer inside itself: the same layer object also used as a node,
    or already built in another model, would share (and overwrite) one set of weight views."""
    lstm = fnn.LSTM(4)
    x = fnn.Input((5, 3))
    wrapped = fnn.Bidirectional(lstm)(x)
    with pytest.raises(ValueError, match=r"LSTM\(4.*used twice in this model"):
        fnn.Model(x, fnn.Concatenate()([wrapped, lstm(x)]), backend="numpy")
    built = fnn.LSTM(4)
    fnn.Sequential([built], input_shape=(5, 3), backend="numpy")
    with pytest.raises(ValueError, match=r"Bidirectional needs a recurrent layer that is not in "
                                         r"a model yet.*already built"):
        fnn.Bidirectional(built)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("make", [lambda: fnn.LSTM(8), lambda: fnn.GRU(8),
                                  lambda: fnn.SimpleRNN(8),
                                  lambda: fnn.Bidirectional(fnn.LSTM(8, return_sequences=True))],
                         ids=["lstm", "gru", "simple", "bidirectional"])
def test_backward_twice_from_one_forward_gives_the_same_gradients(backend, make):
    """The low-level loop may run backward again on the same forward, with the same or another
    dL/dout. The LSTM's backward consumes its forward's workspace (the gates are replaced by
    their gradients, src_c/fnn_rnn.h): the layer runs its forward again first, so the second
    backward's gradients are those of a fresh forward, bit for bit."""
    def build():
        return fnn.Sequential([make(), fnn.Flatten(), fnn.Dense(3)], input_shape=(5, 4), seed=0,
                              backend=backend)
    model, fresh = build(), build()
    x = np.random.default_rng(0).standard_normal((6, 5, 4)).astype(np.float32)
    y = model.forward(x, training=True)
    g1, g2 = (np.random.default_rng(i).standard_normal(y.shape).astype(np.float32)
              for i in (1, 2))
    grads = []
    for g in (g1, g1, g2):
        model.zero_grad()
        dx = model.backward(g)
        grads.append([np.array(w) for w in [dx, *model.grads]])
    fresh.forward(x, training=True)
    dx = fresh.backward(g2)
    want = [np.array(w) for w in [dx, *fresh.grads]]
    for a, b, c, w in zip(*grads, want):
        assert a.tobytes() == b.tobytes()
        assert c.tobytes() == w.tobytes()
    assert not np.array_equal(grads[0][0], grads[2][0])
