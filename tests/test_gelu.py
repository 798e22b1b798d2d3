"""GELU, exact (``gelu``) and tanh-approximated (``gelu_tanh``), on both backends.

The kernels write gelu with erfc and sigmoid(2u) (src_c/fnn_gelu.h); PyTorch and Keras write
0.5 z (1 + erf(z / sqrt 2)) and 0.5 z (1 + tanh u), the same functions, whose sums cancel for
negative z. So:
- against PyTorch (float64, values and autograd derivatives): <= 1e-12 relative where its form
  is well conditioned (z >= -3), and over the whole range (|z| up to 30, tiny values) within
  1e-12 relative plus the absolute error its own form carries there, 4 eps (1 + |z| + 0.134 |z|^3)
  (the cancelled sum times z, and for the tanh derivative times du/dz);
- against 100-digit mpmath, where available: <= 1e-13 relative everywhere (its own, uncancelled
  formulas), which holds fastnn to the truth in that tail;
- compiled against NumPy twin: float64 1e-12, float32 1e-5; bitwise at 1 and 2 threads.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn import activations as A
from fastnn.backends import get_backend
from fastnn.layers import layer_from_config
from fastnn.models import fastpath
import _reference as ref

NP = get_backend("numpy")
EPS = np.finfo(np.float64).eps
APPROX = {"gelu": "none", "gelu_tanh": "tanh"}


@pytest.fixture(scope="module")
def FAST():
    return get_backend("fast")


def _backends(FAST):
    return {"numpy": NP, "fast": FAST}


def _grid():
    tiny = [1e-300, 1e-200, 1e-100, 1e-20, 1e-12, 1e-8, 1e-4]
    return np.concatenate([np.linspace(-10.0, 10.0, 2001), np.linspace(-30, 30, 61),
                           tiny, [-t for t in tiny], [0.0]]).reshape(1, -1)


def _value_and_derivative(be, z, name):
    code = A.CODES[name]
    y = be.activation_forward(z, code, 0.0, np.empty_like(z))
    d = be.activation_backward(z, np.ones_like(z), code, 0.0, np.empty_like(z))
    return y, d


# --------------------------------------------------------------------------- the function
@pytest.mark.parametrize("name", ["gelu", "gelu_tanh"])
@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_matches_pytorch_in_float64(FAST, backend, name):
    torch = pytest.importorskip("torch")
    z = _grid()
    y, d = _value_and_derivative(_backends(FAST)[backend], z, name)
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.functional.gelu(zt, approximate=APPROX[name])
    yt.sum().backward()
    ty, td = yt.detach().numpy(), zt.grad.numpy()
    good = z >= -3.0
    for got, want, what in ((y, ty, "gelu"), (d, td, "derivative")):
        rel = np.abs(got - want)[good] / np.maximum(np.abs(want[good]), 1e-300)
        assert np.max(rel) <= 1e-12, f"{name} {what}: {np.max(rel)} relative for z >= -3"
        floor = 4 * EPS * (1 + np.abs(z) + 0.134145 * np.abs(z) ** 3)
        assert np.all(np.abs(got - want) <= 1e-12 * np.abs(want) + floor), f"{name} {what}"
    # the tiny values: gelu(z) = z / 2 + O(z^2), derivative 1/2 + O(z)
    small = np.abs(z) <= 1e-12
    assert np.allclose(y[small], 0.5 * z[small], rtol=1e-8, atol=0)
    assert np.allclose(d[small], 0.5, rtol=1e-8, atol=0)


def _mp_reference(name, values):
    mpmath = pytest.importorskip("mpmath")
    mp = mpmath.mp.clone() if hasattr(mpmath.mp, "clone") else mpmath.mp
    mp.dps = 100
    c, k = mp.sqrt(2 / mp.pi), mp.mpf(0.044715)     # 0.044715 as the double the kernels use
    ys, ds = [], []
    for v in values:
        x = mp.mpf(float(v))
        if name == "gelu":
            cdf = mp.erfc(-x / mp.sqrt(2)) / 2
            ys.append(x * cdf)
            ds.append(cdf + x * mp.exp(-x * x / 2) / mp.sqrt(2 * mp.pi))
        else:
            u = c * (x + k * x ** 3)
            s = 1 / (1 + mp.exp(-2 * u))
            ys.append(x * s)
            ds.append(s + 2 * x * s * (1 - s) * c * (1 + 3 * k * x * x))
    return (np.array([float(v) for v in ys]), np.array([float(v) for v in ds]))


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh"])
@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_accurate_everywhere_against_mpmath(FAST, backend, name):
    z = np.concatenate([np.linspace(-12.0, 12.0, 193), [-37.5, -25.0, 1e-300, -1e-300, 1e-20,
                                                         -1e-8, 3e-5]]).reshape(1, -1)
    y, d = _value_and_derivative(_backends(FAST)[backend], z, name)
    ey, ed = _mp_reference(name, z[0])
    for got, want, what in ((y[0], ey, "gelu"), (d[0], ed, "derivative")):
        nz = want != 0
        rel = np.abs(got - want)[nz] / np.abs(want[nz])
        assert np.max(rel) <= 1e-13, f"{name} {what}: {np.max(rel)} at z={z[0][nz][np.argmax(rel)]}"
        assert np.all(got[~nz] == 0)


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh"])
def test_float32_compiled_against_float64(FAST, name):
    z64 = np.linspace(-10.0, 10.0, 4001).reshape(1, -1)
    z = z64.astype(np.float32)
    y, d = _value_and_derivative(FAST, z, name)
    ey, ed = _value_and_derivative(NP, z.astype(np.float64), name)
    ref.assert_close(y, ey, "float32", scale=1e-30, what=name)          # relative 1e-5
    ref.assert_close(d, ed, "float32", scale=1.0, what=name + " derivative")
    yn, dn = _value_and_derivative(NP, z, name)
    ref.assert_close(y, yn, "float32", scale=1e-30, what=name + " vs numpy float32")
    ref.assert_close(d, dn, "float32", scale=1.0, what=name + " derivative vs numpy float32")


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_limits_and_nan(FAST, name, dtype):
    z = np.array([[-np.inf, np.inf, np.nan, -1e30, 1e30]], dtype)
    for be in (NP, FAST):
        with np.errstate(all="ignore"):
            y, d = _value_and_derivative(be, z, name)
        assert y[0, 0] == 0 and y[0, 1] == np.inf and np.isnan(y[0, 2])
        assert y[0, 3] == 0 and y[0, 4] == z[0, 4]
        assert d[0, 0] == 0 and d[0, 1] == 1 and np.isnan(d[0, 2])
        assert d[0, 3] == 0 and d[0, 4] == 1


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh"])
@pytest.mark.parametrize("n, k, m", [(1, 1, 1), (5, 3, 4), (37, 50, 70), (64, 48, 10),
                                     (1040, 300, 10), (200, 300, 150)])
def test_fused_epilogue_equals_product_then_activation(FAST, dtype, threads, name, n, k, m):
    """dense_forward with gelu (the GEMM's epilogue on every path: direct tiles, packed, the
    narrow transposed store) gives the bits of the linear product then activation_forward,
    which is how a layer computes it in training."""
    rng = np.random.default_rng(n + k + m)
    x, w = rng.standard_normal((n, k)).astype(dtype), rng.standard_normal((k, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    code = A.CODES[name]
    fused = FAST.dense_forward(x, w, b, code, 0.0, np.full((n, m), np.nan, dtype))
    z = FAST.dense_forward(x, w, b, A.LINEAR, 0.0, np.full((n, m), np.nan, dtype))
    after = FAST.activation_forward(z, code, 0.0, np.full((n, m), np.nan, dtype))
    assert np.array_equal(fused, after)
    ref.assert_close(after, NP.activation_forward(z, code, 0.0, np.empty_like(z)), dtype,
                     scale=1e-30)


# --------------------------------------------------------------------------- models
def _mlp(backend, dtype, seed=0, widths=(16, 8)):
    return fnn.Sequential([fnn.Dense(widths[0], activation="gelu"), fnn.Dense(widths[1]),
                           fnn.Activation("gelu_tanh"), fnn.Dense(widths[1]), fnn.GELU(),
                           fnn.Dense(3, activation="softmax")],
                          input_dim=5, seed=seed, dtype=dtype, backend=backend)


def _trained(backend, dtype, X, y, epochs=3, **kw):
    model = _mlp(backend, dtype, **kw)
    model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.1, momentum=0.9))
    model.fit(X, y, epochs=epochs, batch_size=16, shuffle=False, verbose=0)
    return model


def test_gelu_models_take_the_general_path():
    model = _mlp("fast", "float64")
    assert not model._fast
    assert not fastpath.eligible(model.layers, (5,))
    assert fastpath.eligible([fnn.Dense(4, activation="tanh")], (5,))


def test_trained_models_compiled_equal_numpy(dtype):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((96, 5)), rng.integers(0, 3, 96)
    fast, slow = _trained("fast", dtype, X, y), _trained("numpy", dtype, X, y)
    for a, b in zip(fast.get_weights(), slow.get_weights()):
        ref.assert_close(a, b, dtype, scale=np.max(np.abs(b)) + 1.0)
    ref.assert_close(fast.predict(X), slow.predict(X), dtype, scale=1.0)


def test_a_gelu_network_learns_the_digits():
    from fastnn.datasets import load_digits
    X, y = load_digits()
    X = X / 16.0
    model = fnn.Sequential([fnn.Dense(32, activation="gelu"), fnn.Dense(10, activation="softmax")],
                           input_dim=X.shape[1], seed=0)
    model.compile(loss="cross_entropy", optimizer=fnn.Adam(lr=0.01), metrics=["accuracy"])
    model.fit(X[:1200], y[:1200], epochs=15, batch_size=32, verbose=0)
    assert np.mean(np.argmax(model.predict(X[1200:]), axis=1) == y[1200:]) >= 0.9


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_finite_difference_gradients(backend):
    model = _mlp(backend, "float64", widths=(6, 4))
    model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.1))
    rng = np.random.default_rng(3)
    weights = [w + 0.5 * rng.standard_normal(w.shape) for w in model.get_weights()]
    model.set_weights(weights)
    x, y = 1.5 * rng.standard_normal((7, 5)), rng.integers(0, 3, 7)
    _, grads = model.loss_and_gradients(x, y)
    h = 1e-6
    for k, w in enumerate(weights):
        fd = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            values = []
            for sign in (1.0, -1.0):
                trial = [u.copy() for u in weights]
                trial[k][idx] += sign * h
                model.set_weights(trial)
                values.append(model.loss_and_gradients(x, y)[0])
            fd[idx] = (values[0] - values[1]) / (2 * h)
        model.set_weights(weights)
        err = np.linalg.norm(grads[k] - fd) / (np.linalg.norm(grads[k]) + np.linalg.norm(fd))
        assert err <= 1e-7, f"weight {k}: {err}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bitwise_at_one_and_two_threads(dtype, fixed_threads, thread_count):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((512, 5)), rng.integers(0, 3, 512)
    runs = []
    for t in (1, 2):
        thread_count(t)
        model = _mlp("fast", dtype, widths=(256, 256))
        model.compile(loss="cross_entropy", optimizer=fnn.Adam(lr=1e-3))
        model.fit(X, y, epochs=2, batch_size=256, shuffle=False, verbose=0)
        runs.append(model.get_weights() + [model.predict(X)])
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


def test_predict_equals_training_forward(FAST):
    """Inference applies gelu in the GEMM's epilogue; training keeps z and applies it after:
    the same bits."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((70, 5))
    for dtype in ("float32", "float64"):
        model = _mlp("fast", dtype, widths=(40, 20))
        assert np.array_equal(model.predict(X), model.forward(X, training=True))
        conv = fnn.Sequential([fnn.Conv2D(6, 3, activation="gelu", padding="same"),
                               fnn.Conv2D(4, 2, activation="gelu_tanh")],
                              input_shape=(7, 6, 3), seed=0, dtype=dtype)
        x = rng.standard_normal((5, 7, 6, 3))
        assert np.array_equal(conv.predict(x), conv.forward(x, training=True))


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["gelu", "gelu_tanh"])
def test_value_and_kept_derivative_in_one_pass(FAST, backend, dtype, name):
    """activation_forward_deriv (a training forward) gives activation_forward's values and, in
    z, the derivative that activation_backward with DERIV_GIVEN multiplies by: bitwise what the
    backward from z gives, over a grid with the limits and NaN."""
    be = _backends(FAST)[backend]
    code = A.CODES[name]
    z = np.concatenate([_grid()[0], [np.inf, -np.inf, np.nan]]).reshape(4, -1).astype(dtype)
    dy = np.random.default_rng(1).standard_normal(z.shape).astype(dtype)
    y_want = be.activation_forward(z, code, 0.0, np.empty_like(z))
    dz_want = be.activation_backward(z, dy, code, 0.0, np.empty_like(z))
    kept = z.copy()
    y = be.activation_forward_deriv(kept, code, np.empty_like(z))
    assert np.array_equal(y, y_want, equal_nan=True)
    assert np.array_equal(kept, be.activation_backward(z, np.ones_like(z), code, 0.0,
                                                       np.empty_like(z)), equal_nan=True)
    dz = be.activation_backward(kept, dy, A.DERIV_GIVEN, 0.0, np.empty_like(z))
    assert np.array_equal(dz, dz_want, equal_nan=True)
    want = dy * kept                # the compiled kernels flush results below the normal range
    normal = ~(np.abs(want) < np.finfo(dtype).tiny)
    assert np.array_equal(dz[normal], want[normal], equal_nan=True)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_value_and_derivative_refuses_other_activations_and_one_buffer(FAST, backend):
    be = _backends(FAST)[backend]
    z = np.ones((2, 3), np.float32)
    for code in (A.RELU, A.SIGMOID, A.DERIV_GIVEN, 99, -1):
        with pytest.raises(ValueError, match="gelu"):
            be.activation_forward_deriv(z, code, np.empty_like(z))
    with pytest.raises(ValueError, match="different arrays"):
        be.activation_forward_deriv(z, A.GELU, z)
    with pytest.raises(ValueError):
        be.activation_forward_deriv(z, A.GELU, np.empty((3, 2), np.float32))


def test_backward_needs_a_training_forward(FAST):
    model = _mlp("fast", "float64")
    model.forward(np.zeros((2, 5)), training=False)
    with pytest.raises(ValueError, match="training=True"):
        model.backward(np.zeros((2, 3)))


def test_config_and_file_round_trip(tmp_path):
    for layer in (fnn.GELU(), fnn.GELU(approximate=True), fnn.Activation("gelu"),
                  fnn.Activation("gelu_tanh"), fnn.Dense(3, activation="gelu_tanh"),
                  fnn.Dense(3, activation=fnn.GELU(approximate=True)),
                  fnn.Conv2D(2, 3, activation="gelu")):
        config = layer.get_config()
        again = layer_from_config(config)
        assert type(again) is type(layer) and again.act == layer.act
        assert again.get_config() == config
    assert fnn.GELU(approximate=True).get_config() == {"class": "GELU", "approximate": True}
    assert fnn.Dense(3, activation=fnn.GELU(approximate=True)).activation == "gelu_tanh"
    assert repr(fnn.GELU()) == "GELU()" and fnn.GELU(True).approximate

    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    model = _trained("fast", "float64", X, y, epochs=1)
    path = tmp_path / "gelu.fnn"
    model.save(path)
    same = fnn.load(path)
    assert [type(a) for a in same.layers] == [type(b) for b in model.layers]
    assert [a.act for a in same.layers] == [b.act for b in model.layers]
    assert np.array_equal(same.predict(X), model.predict(X))


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_gelu_approximate_must_be_a_bool(bad):
    with pytest.raises(TypeError, match="approximate"):
        fnn.GELU(approximate=bad)


def test_activation_gelu_takes_no_parameter():
    with pytest.raises(ValueError, match="takes no parameter"):
        fnn.Activation("gelu", 0.5)


def test_train_plan_refuses_gelu(FAST):
    W, b = np.zeros((3, 2)), np.zeros(2)
    with pytest.raises(ValueError, match="gelu"):
        FAST.TrainPlan([(W, b, W.copy(), b.copy(), A.GELU, 0.0, 2)], 3, np.float64, 0, False,
                       [np.zeros((4, 2))], [np.zeros((4, 2))], np.zeros(8), np.zeros(8), 0,
                       (), np.zeros((4, 2)), 1e100, np.zeros(1, np.int64))


# --------------------------------------------------------------------------- convolution
@pytest.mark.parametrize("name", ["gelu", "gelu_tanh"])
@pytest.mark.parametrize("shape", [(3, 9, 8, 3, 5, 3), (2, 16, 16, 8, 16, 3), (4, 6, 6, 2, 7, 1)])
def test_conv2d_with_gelu_compiled_equals_numpy(dtype, name, shape):
    n, h, w, c, f, k = shape
    rng = np.random.default_rng(h * f)
    x = rng.standard_normal((n, h, w, c))
    results = []
    for backend in ("fast", "numpy"):
        model = fnn.Sequential([fnn.Conv2D(f, k, padding="same", activation=name),
                                fnn.Flatten(), fnn.Dense(3)],
                               input_shape=(h, w, c), seed=3, dtype=dtype, backend=backend)
        out = model.forward(x, training=True)
        dout = np.random.default_rng(0).standard_normal(out.shape)
        model.zero_grad()
        dx = model.backward(dout)
        results.append([model.predict(x), out, dx] + [g.copy() for g in model.grads])
    for a, b in zip(*results):
        ref.assert_close(a, b, dtype, scale=np.max(np.abs(b)) + 1e-30)


# --------------------------------------------------------------------------- each SIMD flavour
# The float32 gelus are branch-free C (src_c/fnn_gelu.h) that each flavour's loops vectorise:
# forward and derivative in the dense epilogue (dense_forward, dense_backward) and in the
# element-wise path (activation_forward, activation_backward). In a subprocess per
# FASTNN_KERNEL (the flavour is chosen on first use), against float64 math.erfc / exp on the same
# float32 inputs: relative 1e-6 (a few float32 ulps) plus an absolute 1e-37 (results near the
# float's smallest normal number, which the kernels flush to zero); the derivative's floor is
# 1e-6 times the sum of its two terms' sizes (it crosses zero at z = -0.75, where the terms
# cancel). The limits are exact: gelu(inf) = inf, gelu(-inf) = 0, NaN stays NaN, and beyond
# |z| ~ 14 the values are z or 0, the derivatives 1 or 0.
_GELU_FLAVOUR_SCRIPT = """
import hashlib, json, math, numpy as np
from fastnn import activations as A
from fastnn.backends import get_backend
fast = get_backend("fast")
special = np.array([1e-30, -1e-30, 20, -20, 1e30, -1e30, np.inf, -np.inf, np.nan, 0.0, -0.0,
                    -13.3, -14.5, 14.5, -10.4, -10.6, 10.6, 0.6, -0.6, 0.59999996, -0.75179],
                   np.float32)
z = np.concatenate([np.linspace(-12, 12, 48001, dtype=np.float32), special])
m = z.size
out = {"kernel": fast.kernel_name()}
for name in ("gelu", "gelu_tanh"):
    code = A.CODES[name]
    zr = z.reshape(1, m)
    ones = np.ones((1, m), np.float32)
    ew_y = fast.activation_forward(zr, code, 0.0, np.empty_like(zr))
    ew_d = fast.activation_backward(zr, ones, code, 0.0, np.empty_like(zr))
    x1, w = np.ones((3, 1), np.float32), zr.copy()           # x @ w: each row is z, exactly
    de_y = fast.dense_forward(x1, w, None, code, 0.0, np.empty((3, m), np.float32))
    zz, dz = np.repeat(zr, 3, axis=0), np.empty((3, m), np.float32)
    with np.errstate(all="ignore"):
        fast.dense_backward(x1, w, zz, np.ones((3, m), np.float32), code, 0.0, dz,
                            np.empty((1, m), np.float32), np.empty(m, np.float32), None)
    # a training forward's one pass: value, and the derivative kept for the backward pass
    zc = zr.copy()
    fd_y = fast.activation_forward_deriv(zc, code, np.empty_like(zr))
    fd_d = fast.activation_backward(zc, ones, A.DERIV_GIVEN, 0.0, np.empty_like(zr))
    gd = np.empty((3, m), np.float32)
    with np.errstate(all="ignore"):
        fast.dense_backward(x1, w, np.repeat(zc, 3, axis=0), np.ones((3, m), np.float32),
                            A.DERIV_GIVEN, 0.0, gd, np.empty((1, m), np.float32),
                            np.empty(m, np.float32), None)
    out[name] = {"ew_y": ew_y[0].tolist(), "ew_d": ew_d[0].tolist(),
                 "de_y": de_y.tolist(), "de_d": dz.tolist(),
                 "fd_y": fd_y[0].tolist(), "fd_d": fd_d[0].tolist(), "fd_dense": gd.tolist(),
                 "hash": hashlib.sha1(ew_y.tobytes() + ew_d.tobytes()).hexdigest()}
out["z"] = z.tolist()
print(json.dumps(out))
"""


def _gelu_reference(name, z):
    """Values, derivatives and the size of the derivative's two terms, in float64."""
    z = z.astype(np.float64)
    if name == "gelu":
        cdf = 0.5 * np.vectorize(math.erfc)(-z / math.sqrt(2.0))
        pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        return z * cdf, cdf + z * pdf, np.abs(cdf) + np.abs(z * pdf)
    c = math.sqrt(2.0 / math.pi)
    t = 2.0 * c * (z + 0.044715 * z ** 3)
    e = np.exp(-np.abs(t))
    s = np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    s1 = np.where(t >= 0, e / (1.0 + e), 1.0 / (1.0 + e))
    term = 2.0 * z * c * (1.0 + 3 * 0.044715 * z * z) * s * s1
    return z * s, s + term, np.abs(s) + np.abs(term)


def _run_gelu_flavour(flavour):
    env = dict(os.environ, FASTNN_KERNEL=flavour)
    done = subprocess.run([sys.executable, "-c", _GELU_FLAVOUR_SCRIPT], env=env, check=True,
                          capture_output=True, text=True, timeout=300)
    result = json.loads(done.stdout)
    if result["kernel"] != flavour:
        pytest.skip(f"this CPU runs {result['kernel']!r}, not {flavour!r}")
    return result


def gelu_float32_errors(result, name):
    """(max relative error, max error in float32 ulps) of value and derivative over the finite
    grid, and asserts the bounds and limits above; also used by hand to report accuracy."""
    z = np.array(result["z"], np.float32)
    r = result[name]
    ew_y, ew_d = np.array(r["ew_y"], np.float32), np.array(r["ew_d"], np.float32)
    de_y, de_d = np.array(r["de_y"], np.float32), np.array(r["de_d"], np.float32)
    for row in range(de_y.shape[0]):                  # the epilogue's bits are the element-wise
        assert np.array_equal(de_y[row], ew_y, equal_nan=True), f"{name} dense forward row {row}"
        assert np.array_equal(de_d[row], ew_d, equal_nan=True), f"{name} dense backward row {row}"
        assert np.array_equal(np.array(r["fd_dense"][row], np.float32), ew_d, equal_nan=True), \
            f"{name} dense backward from the kept derivative, row {row}"
    # value and derivative in one pass: the same bits as each taken apart
    assert np.array_equal(np.array(r["fd_y"], np.float32), ew_y, equal_nan=True), name
    assert np.array_equal(np.array(r["fd_d"], np.float32), ew_d, equal_nan=True), name
    finite = np.isfinite(z)
    with np.errstate(all="ignore"):
        want_y, want_d, terms = _gelu_reference(name, z[finite])
    report = {}
    for got, want, floor, what in ((ew_y[finite], want_y, 1e-37, "value"),
                                   (ew_d[finite], want_d, 1e-6 * terms + 1e-37, "derivative")):
        err = np.abs(got.astype(np.float64) - want)
        bad = err > 1e-6 * np.abs(want) + floor
        assert not np.any(bad), (f"{name} {what}: z={z[finite][bad][:5]} got={got[bad][:5]} "
                                 f"want={want[bad][:5]}")
        normal = np.abs(want) >= np.finfo(np.float32).tiny
        if what == "derivative":
            normal &= np.abs(want) >= 0.01 * terms     # away from the derivative's zero
        ulp = np.spacing(np.abs(want[normal]).astype(np.float32)).astype(np.float64)
        report[what] = (float(np.max(err[normal] / np.abs(want[normal]))),
                        float(np.max(err[normal] / ulp)))
    special = {float(v): i for i, v in enumerate(z) if not np.isfinite(v) or abs(v) >= 20}
    for v, y, d in ((np.inf, np.inf, 1.0), (-np.inf, 0.0, 0.0), (20.0, 20.0, 1.0),
                    (-20.0, 0.0, 0.0), (1e30, float(np.float32(1e30)), 1.0), (-1e30, 0.0, 0.0)):
        i = special[float(np.float32(v))]
        assert ew_y[i] == y and ew_d[i] == d, (name, v, ew_y[i], ew_d[i])
    nan = np.isnan(z)
    assert np.all(np.isnan(ew_y[nan])) and np.all(np.isnan(ew_d[nan]))
    return report


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_each_flavour_float32_within_a_few_ulps(flavour):
    result = _run_gelu_flavour(flavour)
    for name in ("gelu", "gelu_tanh"):
        gelu_float32_errors(result, name)


def test_float32_flavours_give_the_same_bits():
    """No FP contraction and the same operations in every flavour: identical results."""
    hashes = {}
    for flavour in ("generic", "avx2", "avx512"):
        env = dict(os.environ, FASTNN_KERNEL=flavour)
        done = subprocess.run([sys.executable, "-c", _GELU_FLAVOUR_SCRIPT], env=env, check=True,
                              capture_output=True, text=True, timeout=300)
        result = json.loads(done.stdout)
        hashes[result["kernel"]] = (result["gelu"]["hash"], result["gelu_tanh"]["hash"])
    assert len(set(hashes.values())) == 1, hashes


# --------------------------------------------------------------------------- exact gelu's bits
# The AVX2 and AVX-512 flavours compute the exact float32 gelu with intrinsics
# (src_c/fnn_gelu_simd.h: value and derivative sharing one tail), the portable flavour with the
# scalar functions of fnn_gelu.h; every lane must do the same IEEE operations. Checked on a dense
# set: a fine grid over [-15, 15], every float within 300 of the regions' boundaries (0.6, 10.5,
# 14, and 0), random bit patterns of every exponent below 16 (subnormals and tiny values
# included), the limits and NaNs; through every entry point that reaches the flavour's loops
# (forward, backward also in place, the one-pass forward with the kept derivative, the dense
# backward's column sums, the GEMM epilogue), at row lengths around multiples of 8 and 16.
_GELU_BITS_SCRIPT = """
import sys, numpy as np
from fastnn import activations as A
from fastnn.backends import get_backend
fast = get_backend("fast")
z, g = np.load(sys.argv[1]), np.load(sys.argv[2])
G, out = A.GELU, {"kernel": np.array(fast.kernel_name())}

def entry_points(tag, zr, gr):
    n, m = zr.shape
    out[tag + "fwd"] = fast.activation_forward(zr, G, 0.0, np.empty_like(zr))
    out[tag + "bwd"] = fast.activation_backward(zr, gr, G, 0.0, np.empty_like(zr))
    dz = gr.copy()
    out[tag + "bwd_in_place"] = fast.activation_backward(zr, dz, G, 0.0, dz)
    kept = zr.copy()
    out[tag + "both_y"] = fast.activation_forward_deriv(kept, G, np.empty_like(zr))
    out[tag + "both_d"] = kept
    dz, db = np.empty_like(zr), np.empty(m, np.float32)
    with np.errstate(all="ignore"):
        fast.dense_backward(np.ones((n, 1), np.float32), np.zeros((1, m), np.float32), zr, gr,
                            G, 0.0, dz, np.empty((1, m), np.float32), db, None)
    out[tag + "colsum_dz"], out[tag + "colsum_db"] = dz, db

def epilogue(tag, zr):
    x1, w = np.ones((3, 1), np.float32), zr.reshape(1, -1)   # x1 @ w: each row is zr
    m = w.shape[1]
    out[tag + "epi_z"] = fast.dense_forward(x1, w, None, A.LINEAR, 0.0,
                                            np.empty((3, m), np.float32))
    out[tag + "epi_y"] = fast.dense_forward(x1, w, None, G, 0.0, np.empty((3, m), np.float32))

rows = z.size // 1003
entry_points("long_", z[:rows * 1003].reshape(rows, 1003), g[:rows * 1003].reshape(rows, 1003))
epilogue("long_", z)
for width in (1, 3, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 47, 63, 64, 65, 100):
    k = (4099 // width) * width                       # the specials come first
    entry_points("w%d_" % width, z[:k].reshape(-1, width), g[:k].reshape(-1, width))
    epilogue("w%d_" % width, z[:width])
np.savez(sys.argv[3], **out)
"""


def _gelu_bits_inputs():
    f32 = np.float32
    rng = np.random.default_rng(7)
    bits = lambda v: np.asarray(v, f32).view(np.int32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45,
                        1.1754942e-38, -1.1754942e-38, 1.1754944e-38, -1.1754944e-38,
                        3.4028235e38, -3.4028235e38, 1e30, -1e30, 14.000001, -14.000001,
                        13.999999, -13.999999, 0.6, -0.6, 10.5, -10.5, -0.75179], f32)
    payload_nans = np.array([0x7FC00001, 0xFFC00123, 0x7F800001, 0xFF812345],
                            np.uint32).view(f32)
    near = [(bits(b) + np.arange(-300, 301, dtype=np.int32)).view(f32)
            for v in (0.6, 10.5, 14.0, 4.0, 1.0) for b in (v, -v)]
    near.append(np.arange(0, 301, dtype=np.int32).view(f32))       # 0 and the subnormals above
    near.append(-np.arange(0, 301, dtype=np.int32).view(f32))
    every_exponent = rng.integers(0, bits(16.0), 200000, dtype=np.int32).view(f32)
    every_exponent = every_exponent * rng.choice(np.array([-1, 1], f32), every_exponent.size)
    grid = np.linspace(-15, 15, 480001, dtype=f32)
    z = np.concatenate([special, payload_nans, *near, rng.permutation(np.concatenate(
        [every_exponent, grid]))]).astype(f32)
    g = rng.standard_normal(z.size).astype(f32)
    return z, g


@pytest.fixture(scope="module")
def gelu_bits(tmp_path_factory):
    """Each flavour's results on the dense set, by flavour (the CPU's fallback is not run)."""
    tmp = tmp_path_factory.mktemp("gelu_bits")
    z, g = _gelu_bits_inputs()
    np.save(tmp / "z.npy", z)
    np.save(tmp / "g.npy", g)
    results = {}
    for flavour in ("generic", "avx2", "avx512"):
        out = tmp / f"{flavour}.npz"
        subprocess.run([sys.executable, "-c", _GELU_BITS_SCRIPT, str(tmp / "z.npy"),
                        str(tmp / "g.npy"), str(out)],
                       env=dict(os.environ, FASTNN_KERNEL=flavour), check=True, timeout=600)
        with np.load(out) as data:
            results[flavour] = {key: data[key] for key in data.files}
    return z, results


@pytest.mark.parametrize("flavour", ["avx2", "avx512"])
def test_exact_gelu_simd_flavours_give_the_portable_bits(gelu_bits, flavour):
    z, results = gelu_bits
    got, want = results[flavour], results["generic"]
    assert str(want["kernel"]) == "generic"
    if str(got["kernel"]) != flavour:
        pytest.skip(f"this CPU runs {str(got['kernel'])!r}, not {flavour!r}")
    assert set(got) == set(want)
    assert len(want) > 100
    for key in sorted(want):
        if key == "kernel":
            continue
        a, b = got[key].view(np.uint32), want[key].view(np.uint32)
        assert a.shape == b.shape, key
        bad = np.flatnonzero(a != b)
        assert bad.size == 0, (f"{key}: {bad.size} of {a.size} differ, first at flat index "
                               f"{bad[:5]}: got {a.ravel()[bad[:5]]} want {b.ravel()[bad[:5]]}")
    # the epilogue saw the whole set: x1 @ w is z (0 where z is 0 or subnormal, which the
    # kernels read as 0)
    tiny = np.abs(z) < np.finfo(np.float32).tiny
    assert np.array_equal(want["long_epi_z"][0], np.where(tiny, np.float32(0), z), equal_nan=True)
