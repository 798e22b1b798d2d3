"""The float32 elu, selu, softplus and silu (src_c/fnn_act_keras.h's float functions): every SIMD
flavour gives the portable C's bits on every route (element-wise forward and backward, silu's
one-pass value and derivative, the GEMM epilogue, the backward's column sums), the NumPy twin
(fastnn/backends/numpy_keras_f32.py) gives them too, and all are within a few float32 ulps of
the exact functions on a dense sweep of float32 values, the limits and edges included."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import activations as A
from fastnn.backends import get_backend
from fastnn.backends.numpy_keras_f32 import keras_act_f32, keras_deriv_f32

FAST = get_backend("fast")
NP = get_backend("numpy")
F32 = np.float32
NEW = ["elu", "selu", "softplus", "silu"]
ALPHA = {"elu": (1.0, 0.3)}                      # elu's alpha: Keras' default and another
#: The stated bounds (README, Limitations): float32 ulps of the exact value, normal results
#: (silu's derivative: ulps of the larger of its size and its two terms' sum).
ULPS = {"elu": 3.0, "selu": 3.0, "softplus": 3.0, "silu": 4.0}
ULPS_DERIV = {"elu": 0.501, "selu": 0.501, "softplus": 1.0, "silu": 5.0}   # elu', selu': rounded once
SELU_S, SELU_A = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    nan = np.isnan(a)
    return (np.array_equal(nan, np.isnan(b))
            and np.ascontiguousarray(a[~nan]).tobytes() == np.ascontiguousarray(b[~nan]).tobytes())


def _bits(v):
    return np.asarray(v, F32).view(np.int32)


def _inputs():
    """The edges, every float near the formulas' boundaries, random bit patterns of every
    exponent (subnormals included), a fine grid over [-30, 30]."""
    rng = np.random.default_rng(11)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45, 1e-40,
                        -1e-40, 1.1754942e-38, -1.1754942e-38, 1.1754944e-38, -1.1754944e-38,
                        3.4028235e38, -3.4028235e38, 1e30, -1e30, -1.2784645, 0.34657359,
                        -0.34657359, 87.33655, -87.33655, 88.72284, -88.72284], F32)
    near = [(_bits(b) + np.arange(-200, 201, dtype=np.int32)).view(F32)
            for v in (20.0, 24.0, 104.0, 17.3, 1.0, 0.5, 2.0, 87.3, 92.0, 103.3)
            for b in (v, -v)]
    near.append(np.arange(0, 401, dtype=np.int32).view(F32))
    near.append(-np.arange(0, 401, dtype=np.int32).view(F32))
    exps = rng.integers(0, _bits(200.0), 150000, dtype=np.int32).view(F32)
    exps = exps * rng.choice(np.array([-1, 1], F32), exps.size)
    grid = np.linspace(-30, 30, 200001, dtype=F32)
    return np.concatenate([special, *near, rng.permutation(np.concatenate([exps, grid]))])


_SCRIPT = """
import sys, numpy as np
from fastnn import activations as A
from fastnn.backends import get_backend
fast = get_backend("fast")
z, g = np.load(sys.argv[1]), np.load(sys.argv[2])
out = {"kernel": np.array(fast.kernel_name())}
for name, param in (("elu", 1.0), ("elu", 0.3), ("selu", 0.0), ("softplus", 0.0),
                    ("silu", 0.0)):
    code = A.CODES[name]
    for width in (1, 7, 8, 9, 16, 17, 31, 33, 64, 1003):
        k = (z.size // width) * width
        zr, gr = z[:k].reshape(-1, width), g[:k].reshape(-1, width)
        tag = "%s%g_w%d_" % (name, param, width)
        y = fast.activation_forward(zr, code, param, np.empty_like(zr))
        out[tag + "fwd"] = y
        yy = zr.copy()
        out[tag + "fwd_in_place"] = fast.activation_forward(yy, code, param, yy)
        # the derivative's input: z itself (any value, also for those taking y) and y
        for src, saved in (("z", zr), ("y", zr if code in A.FROM_INPUT else y)):
            out[tag + src + "_bwd"] = fast.activation_backward(saved, gr, code, param,
                                                               np.empty_like(zr))
            dz, db = np.empty_like(zr), np.empty(width, np.float32)
            with np.errstate(all="ignore"):
                fast.dense_backward(np.ones((zr.shape[0], 1), np.float32),
                                    np.zeros((1, width), np.float32), saved, gr, code, param,
                                    dz, np.empty((1, width), np.float32), db, None)
            out[tag + src + "_colsum"] = dz
        if code in A.FROM_INPUT:
            kept = zr.copy()
            out[tag + "both_y"] = fast.activation_forward_deriv(kept, code, np.empty_like(zr))
            out[tag + "both_d"] = kept
        if width in (7, 17, 64, 1003):            # the GEMM epilogue: x1 @ w has rows w
            w = z[:width].reshape(1, width)
            out[tag + "epi"] = fast.dense_forward(np.ones((5, 1), np.float32), w, None, code,
                                                  param, np.empty((5, width), np.float32))
np.savez(sys.argv[3], **out)
"""


@pytest.fixture(scope="module")
def flavour_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keras_simd")
    z = _inputs()
    g = np.random.default_rng(12).standard_normal(z.size).astype(F32)
    np.save(tmp / "z.npy", z)
    np.save(tmp / "g.npy", g)
    results = {}
    for flavour in ("generic", "avx2", "avx512"):
        out = tmp / f"{flavour}.npz"
        subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp / "z.npy"), str(tmp / "g.npy"),
                        str(out)], env=dict(os.environ, FASTNN_KERNEL=flavour), check=True,
                       timeout=600)
        with np.load(out) as data:
            results[flavour] = {key: data[key] for key in data.files}
    return z, g, results


@pytest.mark.parametrize("flavour", ["avx2", "avx512"])
def test_simd_flavours_give_the_portable_bits(flavour_results, flavour):
    z, g, results = flavour_results
    want = results["generic"]
    assert str(want["kernel"]) == "generic"
    got = results[flavour]
    if str(got["kernel"]) != flavour:
        pytest.skip(f"this CPU runs {str(got['kernel'])!r}, not {flavour!r}")
    assert set(got) == set(want)
    bad = [key for key in want if key != "kernel" and not _same_bits(got[key], want[key])]
    assert not bad, bad


def test_routes_agree_and_numpy_twin_gives_the_same_bits(flavour_results):
    """In the portable flavour: in place == out of place, the epilogue == the element-wise
    forward, column sums == the element-wise backward, one pass == two; and the NumPy twin."""
    z, g, results = flavour_results
    r = results["generic"]
    for name, param in (("elu", 1.0), ("elu", 0.3), ("selu", 0.0), ("softplus", 0.0),
                        ("silu", 0.0)):
        code = A.CODES[name]
        for width in (1, 7, 8, 9, 16, 17, 31, 33, 64, 1003):
            tag = "%s%g_w%d_" % (name, param, width)
            k = (z.size // width) * width
            zr, gr = z[:k].reshape(-1, width), g[:k].reshape(-1, width)
            y = r[tag + "fwd"]
            assert _same_bits(r[tag + "fwd_in_place"], y), tag
            for src in ("z", "y"):
                assert _same_bits(r[tag + src + "_colsum"], r[tag + src + "_bwd"]), tag + src
            if code in A.FROM_INPUT:
                assert _same_bits(r[tag + "both_y"], y), tag
                assert _same_bits(r[tag + "both_d"], keras_deriv_f32(zr, code, param)), tag
            if tag + "epi" in r:
                zw = FAST.dense_forward(np.ones((1, 1), F32), z[:width].reshape(1, width), None,
                                        A.LINEAR, 0.0, np.empty((1, width), F32))  # -0 is +0
                for row in r[tag + "epi"]:
                    assert _same_bits(row, keras_act_f32(zw[0], code, param)), tag
            if width in (7, 1003):                # the twin, through the NumPy backend
                assert _same_bits(y, NP.activation_forward(zr, code, param, np.empty_like(zr)))
                saved = zr if code in A.FROM_INPUT else y
                assert _same_bits(r[tag + "y_bwd"],
                                  NP.activation_backward(saved, gr, code, param,
                                                         np.empty_like(gr))), tag
                assert _same_bits(r[tag + "z_bwd"],
                                  NP.activation_backward(zr, gr, code, param,
                                                         np.empty_like(gr))), tag


# ------------------------------------------------------------------ accuracy
def _exact(name, z, alpha):
    """The exact function in float64 on float32 inputs (alpha as the kernels take it, float32)."""
    z, alpha = z.astype(np.float64), float(F32(alpha))
    with np.errstate(all="ignore"):
        em1 = np.expm1(np.minimum(z, 0.0))
        if name == "elu":
            return np.where(z > 0, z, alpha * em1)
        if name == "selu":
            return np.where(z > 0, SELU_S * z, SELU_S * SELU_A * em1)
        if name == "softplus":
            return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
        return z / (1.0 + np.exp(-z))


def _exact_deriv(name, v, alpha):
    """The exact derivative from the kernels' input v (y for elu, selu, softplus; z for silu),
    and the size of its terms (silu's crosses zero near z = -1.278, where they cancel)."""
    v, alpha = v.astype(np.float64), float(F32(alpha))
    with np.errstate(all="ignore"):
        if name == "elu":
            d = np.where(v > 0, 1.0, v + alpha)
        elif name == "selu":
            d = np.where(v > 0, SELU_S, v + SELU_S * SELU_A)
        elif name == "softplus":
            d = -np.expm1(-v)
        else:
            s = 1.0 / (1.0 + np.exp(-v))
            term = v * s * (1.0 - s)
            return s + term, np.abs(s) + np.abs(term)
    return d, np.abs(d)


def _ulps(got, want, scale=None):
    """|got - want| in float32 ulps of |want| (of ``scale`` where given), over normal wants."""
    scale = np.abs(want) if scale is None else scale
    normal = (np.abs(want) >= np.finfo(F32).tiny) & (np.abs(want) <= np.finfo(F32).max)
    ulp = np.spacing(scale[normal].astype(F32)).astype(np.float64)
    return np.abs(got[normal].astype(np.float64) - want[normal]) / ulp, normal


def _sweep():
    """Every 157th float32 of magnitude up to 120, both signs, and the edges (subnormal inputs,
    which the kernels read as zeros, left out)."""
    top = int(_bits(120.0))
    mags = np.arange(0, top, 157, dtype=np.int32).view(F32)
    z = np.concatenate([mags, -mags, _inputs()[:5000]])
    return z[(np.abs(z) >= np.finfo(F32).tiny) | (z == 0) | ~np.isfinite(z)]


@pytest.mark.parametrize("name, alpha", [("elu", 1.0), ("elu", 0.3), ("selu", 0.0),
                                         ("softplus", 0.0), ("silu", 0.0)])
def test_within_a_few_ulps_of_the_exact_functions(name, alpha):
    code = A.CODES[name]
    z = _sweep().reshape(1, -1)
    y = FAST.activation_forward(z, code, alpha, np.empty_like(z))[0]
    want = _exact(name, z[0], alpha)
    err, normal = _ulps(y, want)
    assert err.max() <= ULPS[name], (name, z[0][normal][np.argmax(err)], err.max())
    # results below the smallest normal float are zeros (flush-to-zero), never wrong in sign
    tiny = np.isfinite(want) & (np.abs(want) < np.finfo(F32).tiny)
    assert np.all((y[tiny] == 0) | (np.abs(y[tiny]) >= np.finfo(F32).tiny))
    # the derivative from its input (y, or z for silu), for every float of the sweep
    v = z if code in A.FROM_INPUT else FAST.activation_forward(z, code, alpha, np.empty_like(z))
    d = FAST.activation_backward(v, np.ones_like(z), code, alpha, np.empty_like(z))[0]
    want_d, terms = _exact_deriv(name, v[0], alpha)
    err, normal = _ulps(d, want_d, np.maximum(np.abs(want_d), terms))
    assert err.max() <= ULPS_DERIV[name], (name, v[0][normal][np.argmax(err)], err.max())


@pytest.mark.parametrize("name", NEW)
def test_limits_edges_and_nan(name):
    code = A.CODES[name]
    z = np.array([[np.inf, -np.inf, 1e30, -1e30, 200.0, -200.0, 20.5, -20.5, 0.0, -0.0, 1e-40,
                   -1e-40, np.nan]], F32)
    y = FAST.activation_forward(z, code, 1.0, np.empty_like(z))[0]
    saved = z if code in A.FROM_INPUT else y.reshape(1, -1)
    d = FAST.activation_backward(saved, np.ones_like(z), code, 1.0, np.empty_like(z))[0]
    s = SELU_S if name == "selu" else 1.0
    # exact: the limits, and z itself where the formulas return it
    want_y = {"elu": [np.inf, -1, 1e30, -1, 200, -1, 20.5, -1],
              "selu": [np.inf, -SELU_S * SELU_A, SELU_S * 1e30, -SELU_S * SELU_A, s * 200,
                       -SELU_S * SELU_A, s * 20.5, -SELU_S * SELU_A],
              "softplus": [np.inf, 0, 1e30, 0, 200, 0, 20.5, math.log1p(math.exp(-20.5))],
              "silu": [np.inf, 0, 1e30, 0, 200, 0, 20.5, -20.5 / (1 + math.exp(20.5))]}[name]
    np.testing.assert_allclose(y[:8], np.array(want_y, F32), rtol=4e-7, atol=0)
    assert np.array_equal(y[:6], np.array(want_y[:6], F32))          # the limits exactly
    zero = F32(math.log(2.0)) if name == "softplus" else 0.0
    assert np.all(np.abs(y[8:12] - zero) <= 1e-7)                    # subnormals read as 0
    assert np.isnan(y[12]) and np.isnan(d[12])
    assert d[0] == (F32(SELU_S) if name == "selu" else 1.0)
    assert np.all(np.isfinite(d[:12]))
    if name == "silu":
        assert d[1] == 0 and d[2] == 1 and d[3] == 0 and d[8] == 0.5


def test_the_tests_see_a_wrong_bit():
    """The twin's comparison catches a one-ulp change (the tests above can fail)."""
    z = np.linspace(-5, 5, 101, dtype=F32).reshape(1, -1)
    y = FAST.activation_forward(z, A.SOFTPLUS, 0.0, np.empty_like(z))
    wrong = y.copy()
    wrong[0, 50] = np.nextafter(wrong[0, 50], F32(np.inf))
    assert _same_bits(y, keras_act_f32(z, A.SOFTPLUS, 0.0))
    assert not _same_bits(wrong, keras_act_f32(z, A.SOFTPLUS, 0.0))
