"""Keras' elu, selu, softplus and silu (swish): PyTorch float64 parity of values and gradients
through Dense and Activation layers on both backends, finite differences, the compiled kernels
against the NumPy twin bit for bit (every route: element-wise, GEMM epilogue, derivative with
column sums, forward-with-derivative), Keras' own functions in float32, thread counts, learning
on the bundled digits, model files, names and bad inputs."""

import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn import activations as A
from fastnn.backends import get_backend

NEW = ["elu", "selu", "softplus", "silu"]
TORCH = {"elu": "elu", "selu": "selu", "softplus": "softplus", "silu": "silu"}
FAST = get_backend("fast")
NP = get_backend("numpy")


def _torch_act(name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    if name == "softplus":          # PyTorch returns x itself above 20; Keras never does
        return lambda t: F.softplus(t, threshold=1e9)
    return getattr(F, TORCH[name])


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-300)


def _same_bits(a, b):
    """Equal bit for bit (-0.0 not equal to 0.0), NaN where NaN (whatever its sign and payload)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    nan = np.isnan(a)
    if not np.array_equal(nan, np.isnan(b)):
        return False
    return np.ascontiguousarray(a[~nan]).tobytes() == np.ascontiguousarray(b[~nan]).tobytes()


# edge values and a spread of ordinary ones, in rows of 7 (odd, so no row is a whole vector)
def _values(dtype, rows=40, seed=0):
    rng = np.random.default_rng(seed)
    edge = [0.0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 0.5, -0.5, 20.0, -20.0, 40.0, -40.0,
            88.0, -88.0, 100.0, -100.0, 700.0, -700.0, 1e30, -1e30, np.inf, -np.inf, np.nan]
    body = np.concatenate([rng.normal(scale=3.0, size=rows * 7 - len(edge)), edge])
    return body.reshape(rows, 7).astype(dtype)


# ------------------------------------------------------------------ names and the registry
def test_names_codes_and_alias():
    assert [A.activation_code(n) for n in NEW] == [A.ELU, A.SELU, A.SOFTPLUS, A.SILU]
    assert A.activation_code("swish") == A.SILU and A.NAMES[A.SILU] == "silu"
    assert A.DERIV_GIVEN not in A.NAMES and len(set(A.NAMES)) == len(A.NAMES)
    assert A.SILU in A.FROM_INPUT and not {A.ELU, A.SELU, A.SOFTPLUS} & A.FROM_INPUT
    assert fnn.Dense(3, activation="swish").activation == "silu"
    assert fnn.Activation("swish").activation == "silu"
    assert A.swish is A.silu


@pytest.mark.parametrize("bad", [
    lambda: fnn.Activation("elu", param=-0.5),         # elu: alpha >= 0
    lambda: fnn.Activation("selu", param=1.0),
    lambda: fnn.Dense(3, activation="Swish"),
    lambda: FAST.activation_forward(np.zeros((2, 2)), A.DERIV_GIVEN, 0.0, np.zeros((2, 2))),
    lambda: FAST.activation_forward(np.zeros((2, 2)), 14, 0.0, np.zeros((2, 2))),
    lambda: FAST.activation_backward(np.zeros((2, 2)), np.zeros((2, 2)), -1, 0.0,
                                     np.zeros((2, 2))),
    lambda: FAST.dense_forward(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(2), 14, 0.0,
                               np.zeros((2, 2))),
    lambda: FAST.activation_forward_deriv(np.zeros((2, 2)), A.ELU, np.zeros((2, 2))),
    lambda: NP.activation_forward_deriv(np.zeros((2, 2)), A.SOFTPLUS, np.zeros((2, 2))),
])
def test_bad_inputs(bad):
    with pytest.raises(ValueError):
        bad()


# ------------------------------------------------------------------ PyTorch, float64
def _dense_model(act, backend, layer, dtype="float64"):
    layers = ([fnn.Dense(6, activation=act)] if layer == "dense"
              else [fnn.Dense(6), fnn.Activation(act)])
    return fnn.Sequential(layers + [fnn.Dense(3)], input_dim=4, seed=1, dtype=dtype,
                          backend=backend)


@pytest.mark.parametrize("layer", ["dense", "activation"])
@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("act", NEW)
def test_matches_pytorch_float64(act, backend, layer):
    torch = pytest.importorskip("torch")
    f = _torch_act(act)
    model = _dense_model(act, backend, layer)
    rng = np.random.default_rng(3)
    model.set_weights([w + rng.normal(size=w.shape) for w in model.get_weights()])
    w1, b1, w2, b2 = model.get_weights()
    x = rng.normal(size=(9, 4)) * 1.5
    out = model.forward(x, training=True)
    dout = rng.normal(size=out.shape)
    model.zero_grad()
    dx = model.backward(dout)
    grads = [np.array(g) for g in model.grads]
    t = [torch.tensor(a, requires_grad=True) for a in (x, w1, b1, w2, b2)]
    yt = f(t[0] @ t[1] + t[2]) @ t[3] + t[4]
    (yt * torch.tensor(dout)).sum().backward()
    assert _rel(out, yt.detach().numpy()) <= 1e-13
    assert _rel(dx, t[0].grad.numpy()) <= 1e-12
    for g, tt in zip(grads, t[1:]):
        assert _rel(g, tt.grad.numpy()) <= 1e-12
    # silu's backward needs z, which the compiled MLP plan does not keep
    assert model.path == ("general" if act == "silu" else "fast")


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("act", NEW)
def test_train_step_matches_pytorch(act, backend):
    """fit's step (the compiled training plan for elu, selu, softplus; layer by layer for silu)
    against PyTorch's SGD step in float64."""
    torch = pytest.importorskip("torch")
    f = _torch_act(act)
    model = _dense_model(act, backend, "dense")
    model.compile(loss="mse", optimizer=fnn.SGD(lr=0.1))
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(8, 4)), rng.normal(size=(8, 3))
    t = [torch.tensor(w, requires_grad=True) for w in model.get_weights()]
    model.train_on_batch(x, y)
    loss = ((f(torch.tensor(x) @ t[0] + t[1]) @ t[2] + t[3] - torch.tensor(y)) ** 2).mean()
    loss.backward()
    for w, tt in zip(model.get_weights(), t):
        assert _rel(w, (tt - 0.1 * tt.grad).detach().numpy()) <= 1e-12


# ------------------------------------------------------------------ finite differences
@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("act", NEW)
def test_derivative_matches_finite_differences(act, backend):
    be = get_backend(backend)
    code, param = A.CODES[act], A.DEFAULT_PARAM.get(act, 0.0)
    z = np.random.default_rng(5).normal(scale=3.0, size=(6, 11))
    z[np.abs(z) < 1e-3] = 0.5                    # selu's derivative jumps at 0
    h = 1e-6
    up = be.activation_forward(z + h, code, param, np.empty_like(z))
    down = be.activation_forward(z - h, code, param, np.empty_like(z))
    fd = (up - down) / (2 * h)
    y = be.activation_forward(z, code, param, np.empty_like(z))
    saved = z if code in A.FROM_INPUT else y
    d = be.activation_backward(saved, np.ones_like(z), code, param, np.empty_like(z))
    assert np.max(np.abs(d - fd)) <= 1e-8


# ------------------------------------------------------------------ compiled == NumPy, bitwise
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", NEW)
def test_compiled_equals_numpy_bitwise(act, dtype):
    code, param = A.CODES[act], A.DEFAULT_PARAM.get(act, 0.0)
    z = _values(dtype)
    y = FAST.activation_forward(z, code, param, np.empty_like(z))
    assert _same_bits(y, NP.activation_forward(z, code, param, np.empty_like(z)))
    zc = z.copy()
    FAST.activation_forward(zc, code, param, zc)            # in place
    assert _same_bits(zc, y)
    dy = np.random.default_rng(6).normal(size=z.shape).astype(dtype)
    saved = z if code in A.FROM_INPUT else y
    d = FAST.activation_backward(saved, dy, code, param, np.empty_like(dy))
    assert _same_bits(d, NP.activation_backward(saved, dy, code, param, np.empty_like(dy)))
    if code in A.FROM_INPUT:                   # silu's training forward keeps its derivative
        for be in (FAST, NP):
            zd, out = z.copy(), np.empty_like(z)
            be.activation_forward_deriv(zd, code, out)
            assert _same_bits(out, y)
            g = be.activation_backward(zd, dy, A.DERIV_GIVEN, 0.0, np.empty_like(dy))
            assert _same_bits(g, d)
    # the values the formulas promise at the ends
    finite = np.isfinite(z)
    assert not np.isnan(y[~np.isnan(z)]).any() and np.isnan(y[np.isnan(z)]).all()
    assert np.all(np.isfinite(d[finite]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, k, m", [(1, 3, 1), (5, 3, 4), (37, 50, 70), (64, 64, 256),
                                     (1, 400, 120), (200, 129, 4), (300, 40, 64)])
@pytest.mark.parametrize("act", NEW)
def test_epilogue_and_colsum_routes_agree(act, dtype, n, k, m):
    """The GEMM's epilogue == the element-wise kernel == the NumPy twin on the same z, and
    dense_backward's derivative-with-column-sums == activation_backward, bit for bit."""
    code, param = A.CODES[act], A.DEFAULT_PARAM.get(act, 0.0)
    rng = np.random.default_rng(n + k + m)
    x = rng.normal(size=(n, k)).astype(dtype)
    w = (rng.normal(size=(k, m)) * 2 / math.sqrt(k)).astype(dtype)
    b = rng.normal(size=m).astype(dtype)
    z = FAST.dense_forward(x, w, b, A.LINEAR, 0.0, np.empty((n, m), dtype))
    y = FAST.dense_forward(x, w, b, code, param, np.full((n, m), np.nan, dtype))
    assert _same_bits(y, FAST.activation_forward(z, code, param, np.empty_like(z)))
    assert _same_bits(y, NP.activation_forward(z, code, param, np.empty_like(z)))
    dy = rng.normal(size=(n, m)).astype(dtype)
    saved = z if code in A.FROM_INPUT else y
    dz, dw, db = np.empty_like(dy), np.empty_like(w), np.empty_like(b)
    FAST.dense_backward(x, w, saved, dy, code, param, dz, dw, db, np.empty_like(x))
    want = NP.activation_backward(saved, dy, code, param, np.empty_like(dy))
    assert _same_bits(dz, want)
    assert _same_bits(db, np.sum(want.astype(np.float64), axis=0).astype(dtype)) or \
        _rel(db, np.sum(want.astype(np.float64), axis=0)) <= 1e-6


# ------------------------------------------------------------------ Keras, float32
@pytest.mark.parametrize("act", NEW + ["swish"])
def test_matches_keras_float32(act, keras):
    x = _values(np.float32)
    x = x[np.isfinite(x)]
    want = np.asarray(getattr(keras.activations, act)(x))
    got = getattr(fnn.activations, act)(x)
    assert got.dtype == np.float32
    # Keras computes in float, fastnn in double rounded once: an ulp or two apart
    np.testing.assert_allclose(got, want, rtol=4e-7, atol=1e-37)


def test_keras_elu_alpha_and_functional_forms(keras):
    x = np.linspace(-5, 5, 41).astype(np.float32)
    np.testing.assert_allclose(fnn.activations.elu(x, alpha=0.3),
                               np.asarray(keras.activations.elu(x, alpha=0.3)), rtol=4e-7)
    assert fnn.activations.elu(np.float64(-1.0)) == math.expm1(-1.0)
    assert fnn.activations.selu([0.0])[0] == 0.0
    assert fnn.activations.softplus(0.0) == math.log(2.0)
    assert fnn.activations.silu([-np.inf, np.inf]).tolist() == [0.0, np.inf]


@pytest.mark.parametrize("act", NEW)
def test_dense_layer_matches_keras_float32(act, keras):
    model = fnn.Sequential([fnn.Dense(5, activation=act)], input_dim=4, seed=0)
    kd = keras.layers.Dense(5, activation=act)
    kd.build((None, 4))
    kd.set_weights(model.get_weights())
    x = np.random.default_rng(7).normal(size=(10, 4)).astype(np.float32) * 3
    np.testing.assert_allclose(model.predict(x), np.asarray(kd(x)), rtol=2e-6, atol=2e-6)


# ------------------------------------------------------------------ threads
@pytest.mark.parametrize("act", NEW)
def test_bitwise_at_one_and_two_threads(act):
    code, param = A.CODES[act], A.DEFAULT_PARAM.get(act, 0.0)
    rng = np.random.default_rng(8)
    z = rng.normal(scale=3, size=(4000, 129)).astype(np.float32)
    dy = rng.normal(size=z.shape).astype(np.float32)
    X, y = rng.normal(size=(256, 64)), rng.integers(0, 10, 256)
    results = []
    for n in (1, 2):
        with fnn.threads(n):
            a = FAST.activation_forward(z, code, param, np.empty_like(z))
            saved = z if code in A.FROM_INPUT else a
            d = FAST.activation_backward(saved, dy, code, param, np.empty_like(dy))
            model = fnn.Sequential([fnn.Dense(256, activation=act), fnn.Dense(10, "softmax")],
                                   input_dim=64, seed=0)
            model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.05))
            model.fit(X, y, epochs=2, batch_size=64, verbose=0, shuffle=False)
            results.append((a, d, model.get_weights()))
    (a1, d1, w1), (a2, d2, w2) = results
    assert _same_bits(a1, a2) and _same_bits(d1, d2)
    assert all(_same_bits(u, v) for u, v in zip(w1, w2))


# ------------------------------------------------------------------ learning, files
@pytest.fixture(scope="module")
def digits():
    X, y = fnn.datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order] / 16.0, y[order]
    return X[:1400], y[:1400], X[1400:], y[1400:]


@pytest.mark.parametrize("act", NEW)
def test_learns_digits(act, digits):
    X, y, Xt, yt = digits
    model = fnn.Sequential([fnn.Dense(64, activation=act), fnn.Dense(10, activation="softmax")],
                           input_dim=64, seed=0)
    model.compile(loss="cross_entropy", optimizer=fnn.Adam(lr=3e-3), metrics=["accuracy"])
    model.fit(X, y, epochs=15, batch_size=32, verbose=0)
    accuracy = np.mean(np.argmax(model.predict(Xt), axis=1) == yt)
    assert accuracy >= 0.93, accuracy


@pytest.mark.parametrize("act", NEW + ["swish"])
def test_save_load_config_and_summary(act, tmp_path):
    inp = fnn.Input((5,))
    h = fnn.Dense(4, activation=act)(inp)
    h = fnn.Activation(act)(fnn.Dense(3)(h))
    model = fnn.Model(inp, h, seed=0)
    name = "silu" if act == "swish" else act
    acts = [getattr(layer, "activation", None) for layer in model.layers]
    assert acts == [name, "linear", name], acts
    assert model.layers[0].get_config()["activation"] == name
    lines = []
    model.summary(print_fn=lines.append)
    assert name in "\n".join(lines)
    path = model.save(tmp_path / "m.fnn") or tmp_path / "m.fnn"
    back = fnn.load(path)
    x = np.random.default_rng(9).normal(size=(6, 5)).astype(np.float32)
    assert _same_bits(back.predict(x), model.predict(x))
    assert [getattr(layer, "activation", None) for layer in back.layers] == acts


# ------------------------------------------------------------------ other paths
@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_from_torch_and_cnn_inference(backend):
    """PyTorch's nn.ELU, nn.SELU, nn.Softplus, nn.SiLU through interop.from_torch; a CNN with
    each activation in its convolutions (the compiled inference plan on the fast backend)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ELU(), nn.Linear(8, 8), nn.SELU(), nn.Linear(8, 8),
                        nn.Softplus(), nn.Linear(8, 8), nn.SiLU(), nn.Linear(8, 2)).double()
    model = fnn.interop.from_torch(net, (5,), backend=backend)
    x = np.random.default_rng(10).normal(size=(7, 5)) * 2
    assert _rel(model.predict(x), net(torch.tensor(x)).detach().numpy()) <= 1e-12
    with pytest.raises(ValueError, match="alpha"):
        fnn.interop.from_torch(nn.Sequential(nn.Linear(2, 2), nn.ELU(-0.5)), (2,))
    cnn = fnn.Sequential([fnn.Conv2D(4, 3, activation="elu"), fnn.Conv2D(4, 2, activation="selu"),
                          fnn.Activation("softplus"), fnn.Flatten(),
                          fnn.Dense(6, activation="silu"), fnn.Dense(3)],
                         input_shape=(6, 6, 2), seed=0, dtype="float64", backend=backend)
    xs = np.random.default_rng(11).normal(size=(5, 6, 6, 2))
    got = cnn.predict(xs)
    assert _rel(got, cnn.forward(xs, training=False)) <= 1e-12
    other = fnn.Sequential([fnn.Conv2D(4, 3, activation="elu"),
                            fnn.Conv2D(4, 2, activation="selu"), fnn.Activation("softplus"),
                            fnn.Flatten(), fnn.Dense(6, activation="silu"), fnn.Dense(3)],
                           input_shape=(6, 6, 2), seed=0, dtype="float64",
                           backend="numpy" if backend == "fast" else "fast")
    other.set_weights(cnn.get_weights())
    assert _rel(got, other.predict(xs)) <= 1e-12


# ------------------------------------------------------------------ the ELU layer (Keras' ELU)
@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("alpha", [1.0, 0.3, 2.5, 0.0])
def test_elu_layer_matches_torch_elu_float64(alpha, backend):
    """fnn.ELU(alpha) as a layer and as Dense's activation against torch.nn.ELU(alpha): values
    and gradients in float64; interop.from_torch maps nn.ELU(alpha) to it."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    x = rng.normal(size=(9, 4)) * 2
    dout = rng.normal(size=(9, 3))
    for layers in ([fnn.Dense(6), fnn.ELU(alpha)], [fnn.Dense(6, activation=fnn.ELU(alpha))]):
        model = fnn.Sequential(layers + [fnn.Dense(3)], input_dim=4, seed=2, dtype="float64",
                               backend=backend)
        w1, b1, w2, b2 = model.get_weights()
        out = model.forward(x, training=True)
        model.zero_grad()
        dx = model.backward(dout)
        t = [torch.tensor(a, requires_grad=True) for a in (x, w1, b1, w2, b2)]
        yt = torch.nn.ELU(alpha)(t[0] @ t[1] + t[2]) @ t[3] + t[4]
        (yt * torch.tensor(dout)).sum().backward()
        assert _rel(out, yt.detach().numpy()) <= 1e-13
        assert _rel(dx, t[0].grad.numpy()) <= 1e-12
        for g, tt in zip(model.grads, t[1:]):
            assert _rel(np.array(g), tt.grad.numpy()) <= 1e-12
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ELU(alpha)).double()
    model = fnn.interop.from_torch(net, (4,), backend=backend)
    assert _rel(model.predict(x), net(torch.tensor(x)).detach().numpy()) <= 1e-12


def test_elu_layer_config_files_and_summary(tmp_path):
    layer = fnn.ELU(alpha=0.5)
    assert repr(layer) == "ELU(0.5)" and layer.activation == "elu" and layer.param == 0.5
    assert layer.get_config()["alpha"] == 0.5 and fnn.ELU().get_config()["alpha"] == 1.0
    assert "alpha" not in fnn.Activation("elu").get_config()
    inp = fnn.Input((5,))
    h = fnn.Dense(4, activation=fnn.ELU(0.25))(inp)
    h = fnn.ELU(2.0)(fnn.Dense(3)(h))
    h = fnn.Activation("elu", param=0.75)(h)
    model = fnn.Model(inp, h, seed=0)
    lines = []
    model.summary(print_fn=lines.append)
    assert "elu(alpha=0.25)" in "\n".join(lines)
    back = fnn.load(model.save(tmp_path / "m.fnn") or tmp_path / "m.fnn")
    assert [getattr(layer, "param", None) for layer in back.layers] == \
        [getattr(layer, "param", None) for layer in model.layers]
    assert isinstance(back.layers[2], fnn.ELU) and type(back.layers[3]) is fnn.Activation
    x = np.random.default_rng(14).normal(size=(6, 5)).astype(np.float32)
    assert _same_bits(back.predict(x), model.predict(x))
    again = fnn.Model.from_config(model.get_config())
    assert [getattr(layer, "param", None) for layer in again.layers] == \
        [getattr(layer, "param", None) for layer in model.layers]
