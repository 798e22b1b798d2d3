"""ConvLSTM2D: a PyTorch float64 reference written here (F.conv2d and the gates, autograd) for
outputs, states and every gradient across geometries, Keras 3's own layer on the same weights,
finite differences on both backends, the compiled gate kernels against their NumPy twins, the
compiled backend against the NumPy one, bitwise results at 1 and 2 threads, bad arguments
refused by name, configs and files, and a model that learns which way a square moves."""

import json

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend

from _finite_differences import check_model_gradients

torch = pytest.importorskip("torch")
F = torch.nn.functional

_TORCH_ACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
              "linear": lambda z: z}


def _same_pads(size, k, s, d):
    """Keras' 'same' padding along one axis: (before, after), the odd one after."""
    span = (k - 1) * d + 1
    total = max((-(-size // s) - 1) * s + span - size, 0)
    return total // 2, total - total // 2


def torch_conv_lstm(x, kernel, rkernel, bias, strides=(1, 1), padding="valid",
                    dilation=(1, 1), go_backwards=False, act="tanh", rec="sigmoid", h0=None,
                    c0=None):
    """Keras' ConvLSTM2D written from its equations: x (n, T, H, W, C) and the weights in
    Keras' layouts as float64 tensors, optional initial states h0, c0 (n, oh, ow, filters);
    returns (every step's h in step order, h_T, c_T), h and c channels-last."""
    n, T, H, W, _ = x.shape
    kh, kw, _, K = kernel.shape
    f = K // 4
    Wt, Ut = kernel.permute(3, 2, 0, 1), rkernel.permute(3, 2, 0, 1)
    xs = x.permute(0, 1, 4, 2, 3)
    if padding == "same":
        (t, b), (le, r) = (_same_pads(H, kh, strides[0], dilation[0]),
                           _same_pads(W, kw, strides[1], dilation[1]))
    else:
        t = b = le = r = 0
    rt, rl = (kh - 1) // 2, (kw - 1) // 2
    a, g = _TORCH_ACT[act], _TORCH_ACT[rec]
    h = None if h0 is None else h0.permute(0, 3, 1, 2)
    c = None if c0 is None else c0.permute(0, 3, 1, 2)
    outs = []
    for step in (range(T - 1, -1, -1) if go_backwards else range(T)):
        z = F.conv2d(F.pad(xs[:, step], (le, r, t, b)), Wt, bias, stride=strides,
                     dilation=dilation)
        if h is None:
            h = torch.zeros(n, f, *z.shape[2:], dtype=z.dtype)
            c = torch.zeros_like(h)
        z = z + F.conv2d(F.pad(h, (rl, kw - 1 - rl, rt, kh - 1 - rt)), Ut)
        i, fg, gg, o = z.split(f, dim=1)
        c = g(fg) * c + g(i) * a(gg)
        h = g(o) * a(c)
        outs.append(h.permute(0, 2, 3, 1))
    return torch.stack(outs, 1), h.permute(0, 2, 3, 1), c.permute(0, 2, 3, 1)


def _state_model(layer, shape, backend, dtype="float64", seed=0):
    """A functional model returning [output, h, c] of ``layer`` (made with return_state)."""
    inp = fnn.Input(shape)
    return fnn.Model(inp, layer(inp), dtype=dtype, backend=backend, seed=seed)


#: (sample shape (T, H, W, C), filters, kernel_size, strides, padding, dilation, batch)
CASES = [
    ((3, 6, 5, 2), 3, 3, 1, "same", 1, 2),
    ((1, 5, 5, 1), 2, 3, 1, "valid", 1, 3),           # one step
    ((5, 7, 6, 3), 2, 1, 1, "valid", 1, 2),           # 1x1 kernels
    ((4, 7, 8, 2), 3, (3, 2), (2, 1), "same", 1, 2),  # strides, an even kernel
    ((2, 9, 7, 2), 2, (3, 3), (2, 3), "valid", 1, 1),
    ((3, 8, 8, 1), 2, 3, 1, "same", (2, 1), 2),       # dilation (input convolution only)
    ((4, 4, 3, 2), 4, (2, 3), 1, "same", 1, 2),
]
IDS = [f"{c[0]}-f{c[1]}-k{c[2]}-s{c[3]}-{c[4]}-d{c[5]}-n{c[6]}".replace(" ", "") for c in CASES]


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _random_weights(model, rng):
    return [rng.standard_normal(w.shape) * 0.4 for w in model.get_weights()]


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_outputs_states_and_gradients_match_pytorch(case, go_backwards, backend, rng):
    shape, f, k, s, pad, d, n = case
    acts = [("tanh", "sigmoid"), ("relu", "sigmoid"), ("tanh", "tanh"), ("linear", "sigmoid")]
    act, rec = acts[CASES.index(case) % len(acts)]
    layer = fnn.ConvLSTM2D(f, k, strides=s, padding=pad, dilation_rate=d, activation=act,
                           recurrent_activation=rec, return_sequences=True, return_state=True,
                           go_backwards=go_backwards)
    model = _state_model(layer, shape, backend)
    weights = _random_weights(model, rng)
    model.set_weights(weights)
    x = rng.standard_normal((n, *shape))
    y, h, c = model.forward(x, training=True)
    R = [rng.standard_normal(a.shape) for a in (y, h, c)]
    model.zero_grad()
    dx = model.backward(R)

    xt = torch.tensor(x, requires_grad=True)
    wt = [torch.tensor(w, requires_grad=True) for w in weights]
    ty, th, tc = torch_conv_lstm(xt, *wt, strides=_pair(s), padding=pad, dilation=_pair(d),
                                 go_backwards=go_backwards, act=act, rec=rec)
    loss = sum((a * torch.tensor(r)).sum() for a, r in zip((ty, th, tc), R))
    loss.backward()

    def close(got, want, what):
        want = want.detach().numpy()
        assert got.shape == want.shape, what
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * max(1, abs(want).max()),
                                   err_msg=what)

    close(y, ty, "sequence")
    close(h, th, "h")
    close(c, tc, "c")
    close(dx, xt.grad, "dx")
    for name, got, want in zip(("kernel", "recurrent_kernel", "bias"), layer._grads, wt):
        close(got, want.grad, name)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_last_output_without_bias_matches_pytorch(return_sequences, backend, rng):
    shape, f = (4, 6, 6, 2), 3
    layer = fnn.ConvLSTM2D(f, 3, padding="same", use_bias=False,
                           return_sequences=return_sequences)
    model = fnn.Sequential([layer], input_shape=shape, dtype="float64", backend=backend)
    weights = _random_weights(model, rng)
    model.set_weights(weights)
    assert len(weights) == 2
    x = rng.standard_normal((3, *shape))
    y = model.forward(x, training=True)
    r = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(r)
    xt = torch.tensor(x, requires_grad=True)
    wt = [torch.tensor(w, requires_grad=True) for w in weights]
    ty, th, _ = torch_conv_lstm(xt, *wt, None, padding="same")
    want = ty if return_sequences else th
    (want * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for got, w in zip(layer._grads, wt):
        np.testing.assert_allclose(got, w.grad.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 2e-6)])
@pytest.mark.parametrize("act,rec", [(3, 2), (4, 2), (0, 3), (2, 4), (3, 3)])
def test_compiled_gate_kernels_match_their_numpy_twins(act, rec, dtype, tol, rng):
    # the flavour is the process's (FASTNN_KERNEL): CI runs this file under generic as well
    fast, ref = get_backend("fast"), get_backend("numpy")
    rows, f = 150, 5         # blocks of 64 rows and a partial one; 5 units: vector tails
    draw = lambda *s: (rng.standard_normal(s) * 2).astype(dtype).reshape(-1)  # noqa: E731
    zx, zh, c_prev = draw(rows, 4 * f), draw(rows, 4 * f), draw(rows, f)
    outs = []
    for be in (fast, ref):
        gates, c, a, h = (np.empty(rows * w * f, dtype) for w in (4, 1, 1, 1))
        be.conv_lstm_gates_forward(rows, f, zx, zh, c_prev, act, rec, gates, c, a, h)
        outs.append([gates, c, a, h])
    for got, want in zip(*outs):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    gates, _, a, _ = outs[1]
    dh, dc0 = draw(rows, f), draw(rows, f)
    back = []
    for be in (fast, ref):
        dc, dz = dc0.copy(), np.empty(rows * 4 * f, dtype)
        be.conv_lstm_gates_backward(rows, f, gates, c_prev, a, dh, dc, act, rec, dz)
        back.append([dc, dz])
    for got, want in zip(*back):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_gate_kernels_refuse_wrong_lengths_and_codes(backend):
    be = get_backend(backend)
    a4, a1 = np.zeros(8), np.zeros(2)
    with pytest.raises(ValueError, match="zh"):
        be.conv_lstm_gates_forward(2, 1, a4, np.zeros(7), a1, 3, 2, a4.copy(), a1.copy(),
                                   a1.copy(), a1.copy())
    with pytest.raises(ValueError, match="activation"):
        be.conv_lstm_gates_forward(2, 1, a4, a4, a1, 6, 2, a4.copy(), a1.copy(), a1.copy(),
                                   a1.copy())
    with pytest.raises(ValueError, match=r"\ba\b"):
        be.conv_lstm_gates_forward(2, 1, a4, a4, a1, 3, 2, a4.copy(), a1.copy(), np.zeros(3),
                                   a1.copy())
    with pytest.raises(ValueError, match="dz"):
        be.conv_lstm_gates_backward(2, 1, a4, a1, a1, a1, a1.copy(), 3, 2, np.zeros(4))


def _small_model(backend, dtype="float64", seed=3, **kwargs):
    return fnn.Sequential([fnn.ConvLSTM2D(3, 3, padding="same", **kwargs),
                           fnn.Flatten(), fnn.Dense(2)],
                          input_shape=(3, 5, 4, 2), dtype=dtype, backend=backend, seed=seed)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("kwargs", [dict(), dict(go_backwards=True, strides=2,
                                                 activation="relu")])
def test_finite_differences_through_a_small_model(kwargs, backend, rng):
    model = _small_model(backend, **kwargs)
    model.set_weights(_random_weights(model, rng))
    x = rng.standard_normal((2, 3, 5, 4, 2))
    check_model_gradients(model, x, rng.standard_normal((2, 2)), tol=1e-6,
                          what=f"{backend} {kwargs}")


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-4)])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_the_compiled_backend_matches_the_numpy_one(return_sequences, dtype, tol, rng):
    x = rng.standard_normal((3, 4, 7, 6, 2)).astype(dtype)
    outs = []
    for backend in ("fast", "numpy"):
        model = fnn.Sequential([fnn.ConvLSTM2D(4, (3, 2), strides=(1, 2), padding="same",
                                               return_sequences=return_sequences)],
                               input_shape=x.shape[1:], dtype=dtype, backend=backend, seed=7)
        y = model.forward(x, training=True)
        model.zero_grad()
        dx = model.backward(np.cos(np.arange(y.size)).reshape(y.shape).astype(dtype))
        outs.append([y, dx, *[g.copy() for g in model.layers[0]._grads]])
    for got, want in zip(*outs):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_one_and_two_threads_give_the_same_bits(rng):
    x = rng.standard_normal((8, 6, 16, 16, 4)).astype(np.float32)
    previous = fnn.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 1, 2):
            fnn.set_num_threads(threads)
            inp = fnn.Input(x.shape[1:])
            outs = fnn.ConvLSTM2D(16, 3, padding="same", return_sequences=True,
                                  return_state=True)(inp)
            model = fnn.Model(inp, outs, seed=2)
            ys = model.forward(x, training=True)
            model.zero_grad()
            dx = model.backward([np.ones_like(y) for y in ys])
            grads = [g.tobytes() for g in model.layers[0]._grads]
            results.append(b"".join([*(y.tobytes() for y in ys), dx.tobytes(), *grads]))
    finally:
        fnn.set_num_threads(previous)
    assert len(set(results)) == 1


# ---------------------------------------------------------------------------- Keras
KERAS_CASES = [
    dict(filters=3, kernel_size=3, padding="same"),
    dict(filters=2, kernel_size=(2, 3), strides=(2, 1), return_sequences=True),
    dict(filters=4, kernel_size=3, padding="same", go_backwards=True, return_sequences=True,
         activation="relu"),
    dict(filters=2, kernel_size=1, use_bias=False, recurrent_activation="tanh"),
    dict(filters=2, kernel_size=3, dilation_rate=2, padding="same"),
]


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("kwargs", KERAS_CASES, ids=[str(i) for i in range(len(KERAS_CASES))])
def test_keras_gives_the_same_outputs_for_the_same_weights(keras, kwargs, backend, rng):
    shape = (4, 7, 6, 2)
    ours = fnn.Sequential([fnn.ConvLSTM2D(**kwargs)], input_shape=shape, backend=backend,
                          seed=4)
    theirs = keras.layers.ConvLSTM2D(**kwargs)
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    theirs(x)
    assert [w.shape for w in theirs.get_weights()] == [w.shape for w in ours.get_weights()]
    weights = [w * 0.5 for w in _random_weights(ours, rng)]
    ours.set_weights(weights)
    theirs.set_weights([w.astype(np.float32) for w in weights])
    np.testing.assert_allclose(ours.predict(x), np.asarray(theirs(x)), rtol=1e-5, atol=1e-5)


def test_keras_states_and_initial_bias_agree(keras, rng):
    shape = (3, 5, 5, 1)
    inp = fnn.Input(shape)
    ours = fnn.Model(inp, fnn.ConvLSTM2D(2, 3, return_state=True)(inp), seed=1)
    theirs = keras.layers.ConvLSTM2D(2, 3, return_state=True)
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    theirs(x)
    bias = ours.layers[0].get_weights()[2]
    np.testing.assert_array_equal(bias, theirs.get_weights()[2])      # unit_forget_bias
    theirs.set_weights(ours.layers[0].get_weights())
    for got, want in zip(ours.predict(x), theirs(x)):
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(filters=0), ValueError, r"filters"),
    (dict(filters=2.5), TypeError, r"filters"),
    (dict(kernel_size=(3, 3, 3)), ValueError, r"kernel_size"),
    (dict(strides=0), ValueError, r"strides"),
    (dict(padding="causal"), ValueError, r"padding='causal'"),
    (dict(data_format="channels_first"), ValueError, r"data_format='channels_first'"),
    (dict(activation="softmax"), ValueError, r"activation='softmax'"),
    (dict(recurrent_activation="gelu"), ValueError, r"recurrent_activation='gelu'"),
    (dict(strides=2, dilation_rate=2), ValueError, r"strides=2 and dilation_rate=2"),
    (dict(stateful="yes"), TypeError, r"stateful='yes'"),
    (dict(dropout=1.0), ValueError, r"dropout=1.0"),
    (dict(recurrent_dropout=-0.1), ValueError, r"recurrent_dropout=-0.1"),
    (dict(dropout=1.5), ValueError, r"dropout"),
    (dict(return_sequences="yes"), TypeError, r"return_sequences"),
    (dict(seed=-1), ValueError, r"seed"),
])
def test_bad_arguments_are_refused_by_name(kwargs, exc, pattern):
    args = dict(filters=2, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        fnn.ConvLSTM2D(**args)


@pytest.mark.parametrize("shape,pattern", [
    ((6, 6, 2), r"input shape \(6, 6, 2\)"),
    ((3, 2, 2, 1), r"does not fit"),
])
def test_inputs_of_the_wrong_shape_are_refused(shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        fnn.Sequential([fnn.ConvLSTM2D(2, 3)], input_shape=shape)


def test_masks_and_wrong_initial_states_are_refused_by_name():
    # no fastnn layer passes a step mask on to 5-D data today (Masking takes (steps, features),
    # Reshape drops masks), so the refusal at build is asked directly, as the graph asks it
    with pytest.raises(ValueError, match="step mask"):
        fnn.ConvLSTM2D(2, 3).output_masked(True)
    assert fnn.ConvLSTM2D(2, 3).output_masked(False) is False
    inp = fnn.Input((3, 4, 4, 1))
    wrong = fnn.Input((3, 3, 2))            # the states are (2, 2, 2) here
    with pytest.raises(ValueError, match=r"initial_state must be 2 tensors \[h, c\]"):
        fnn.ConvLSTM2D(2, 3)(inp, initial_state=[wrong, wrong])
    h0 = fnn.Input((2, 2, 2))
    with pytest.raises(ValueError, match="initial_state of 1 tensor"):
        fnn.ConvLSTM2D(2, 3)(inp, initial_state=[h0])


def test_onnx_export_is_refused_by_name(tmp_path):
    pytest.importorskip("onnx")
    model = fnn.Sequential([fnn.ConvLSTM2D(2, 3)], input_shape=(3, 5, 5, 1))
    with pytest.raises(ValueError, match="ConvLSTM2D"):
        fnn.onnx.export(model, tmp_path / "m.onnx")


# ---------------------------------------------------------------------------- files
def test_config_weights_and_files_round_trip(tmp_path, rng):
    model = fnn.Sequential([
        fnn.ConvLSTM2D(3, (3, 2), strides=(2, 1), padding="same", activation="relu",
                       recurrent_activation="tanh", unit_forget_bias=False,
                       kernel_initializer="he_normal", bias_initializer="ones",
                       recurrent_regularizer=fnn.regularizers.L2(1e-3), return_sequences=True,
                       go_backwards=True, seed=5, name="clstm"),
        fnn.ConvLSTM2D(2, 1, use_bias=False), fnn.Flatten(), fnn.Dense(2)],
        input_shape=(4, 6, 5, 2), seed=5)
    model.compile("mse", fnn.Adam())
    x = rng.standard_normal((4, 4, 6, 5, 2)).astype(np.float32)
    model.fit(x, rng.standard_normal((4, 2)), epochs=2, verbose=0)
    path = tmp_path / "clstm.fnn"
    model.save(path)
    back = fnn.load(path)
    assert [layer.get_config() for layer in back.layers] == [
        layer.get_config() for layer in model.layers]
    assert [w.tobytes() for w in back.get_weights()] == [w.tobytes() for w in model.get_weights()]
    assert back.predict(x).tobytes() == model.predict(x).tobytes()
    config = json.loads(json.dumps(model.layers[0].get_config()))
    assert config["kernel_size"] == [3, 2] and config["strides"] == [2, 1]
    assert config["recurrent_activation"] == "tanh" and config["go_backwards"] is True
    assert fnn.layers.layer_from_config(config).get_config() == config
    assert model.layers[0].count_params() == 3 * 2 * 2 * 12 + 3 * 2 * 3 * 12 + 12
    with pytest.raises(ValueError, match="kernel"):
        model.layers[0].set_weights([np.ones((3, 3, 2, 12)), np.ones((3, 2, 3, 12)),
                                     np.ones(12)])


# ---------------------------------------------------------------------------- learning
_DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))      # right, left, down, up


def _moving_squares(rng, n, frames=6, size=8):
    """Clips of a 2x2 square moving one pixel a frame in one of four directions (the class),
    from a random start that keeps it inside, over noise."""
    x = rng.normal(0.0, 0.1, (n, frames, size, size, 1))
    y = rng.integers(0, 4, n)
    for i, label in enumerate(y):
        dy, dx = _DIRECTIONS[label]
        span = size - 2 - (frames - 1)
        r0 = rng.integers(0, size - 1) if dy == 0 else (
            rng.integers(0, span + 1) if dy > 0 else rng.integers(frames - 1, size - 1))
        c0 = rng.integers(0, size - 1) if dx == 0 else (
            rng.integers(0, span + 1) if dx > 0 else rng.integers(frames - 1, size - 1))
        for t in range(frames):
            r, c = r0 + dy * t, c0 + dx * t
            x[i, t, r:r + 2, c:c + 2, 0] += 1.0
    return x.astype(np.float32), y


def test_it_learns_which_way_a_square_moves(rng):
    x, y = _moving_squares(rng, 600)
    model = fnn.Sequential([fnn.ConvLSTM2D(6, 3, padding="same"),
                            fnn.GlobalAveragePooling2D(), fnn.Dense(4, activation="softmax")],
                           input_shape=x.shape[1:], seed=0)
    model.compile("sparse_categorical_crossentropy", fnn.Adam(0.01), metrics=["accuracy"])
    model.fit(x[:450], y[:450], epochs=15, batch_size=32, verbose=0)
    assert model.evaluate(x[450:], y[450:], verbose=0)["accuracy"] >= 0.95


def test_the_readme_example_runs(capsys):
    import pathlib
    import re
    readme = pathlib.Path(__file__).parent.parent / "README.md"
    if not readme.exists():             # scripts/asan_check.sh's copy holds no README
        pytest.skip("no README.md next to the tests")
    text = readme.read_text()
    section = text.split("### Convolutional LSTM: ConvLSTM2D\n", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "(64, 4)"
