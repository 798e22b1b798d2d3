"""fnn.ops.matmul against NumPy: shapes with 0 and 1, transposed views, both dtypes, out=."""

import numpy as np
import pytest

import fastnn as fnn
import _reference as ref

SHAPES = [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0), (1, 1, 1), (1, 5, 1), (5, 1, 5),
          (1, 64, 64), (64, 64, 1), (17, 31, 13), (128, 96, 80), (250, 1, 250)]


def _operands(rng, m, k, n, dtype, transposed):
    if transposed:      # non-contiguous views of transposed storage
        a = rng.standard_normal((k, m)).astype(dtype).T
        b = rng.standard_normal((n, k)).astype(dtype).T
    else:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
    return a, b


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_matmul_matches_numpy(dtype, threads, m, k, n, transposed):
    rng = np.random.default_rng(m + 7 * k + 13 * n)
    a, b = _operands(rng, m, k, n, dtype, transposed)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    scale = float(np.max(np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)),
                         initial=0.0))
    c = fnn.ops.matmul(a, b)
    assert c.shape == (m, n) and c.dtype == np.dtype(dtype)
    ref.assert_close(c, expected, dtype, scale=scale, what="matmul")
    assert np.array_equal(c, np.zeros((m, n))) or k > 0      # an empty sum is zero

    out = np.full((m, n), np.nan, dtype=dtype)
    got = fnn.ops.matmul(a, b, out=out)
    assert got is out
    assert np.array_equal(out, c)


def test_matmul_does_not_modify_inputs(dtype):
    rng = np.random.default_rng(0)
    a, b = _operands(rng, 20, 30, 10, dtype, False)
    a0, b0 = a.copy(), b.copy()
    fnn.ops.matmul(a, b)
    assert np.array_equal(a, a0) and np.array_equal(b, b0)


@pytest.mark.parametrize("make", [
    lambda a: a.tolist(),
    lambda a: np.asfortranarray(a),
    lambda a: np.repeat(a, 2, axis=1)[:, ::2],
    lambda a: (lambda v: (v.setflags(write=False), v)[1])(a.copy()),
])
def test_matmul_accepts_other_layouts(make):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((9, 7)), rng.standard_normal((7, 5))
    expected = fnn.ops.matmul(a, b)
    np.testing.assert_allclose(expected, a @ b, rtol=1e-12)
    assert np.array_equal(fnn.ops.matmul(make(a), make(b)), expected)


def test_matmul_result_dtypes():
    a32 = np.ones((2, 3), np.float32)
    a64 = np.ones((2, 3), np.float64)
    bi = np.ones((3, 2), np.int64)
    assert fnn.ops.matmul(a32, a32.T).dtype == np.float32
    assert fnn.ops.matmul(a32, a64.T).dtype == np.float64
    assert fnn.ops.matmul(a64, bi).dtype == np.float64
    assert fnn.ops.matmul(np.ones((2, 3), np.float16), a32.T).dtype == np.float32
    np.testing.assert_array_equal(fnn.ops.matmul(np.arange(6).reshape(2, 3), bi),
                                  np.arange(6).reshape(2, 3) @ bi)


@pytest.mark.parametrize("args, exc, pattern", [
    ((np.ones((2, 3)), np.ones((4, 2))), ValueError, r"a.*b.*\(2, 3\).*\(4, 2\)"),
    ((np.ones(3), np.ones((3, 2))), ValueError, r"\ba\b.*2-D.*\(3,\)"),
    ((np.ones((2, 3)), np.ones((3, 2, 1))), ValueError, r"\bb\b.*2-D.*\(3, 2, 1\)"),
    ((np.array([[1.0, np.nan]]), np.ones((2, 1))), ValueError, r"\ba\b.*finite.*nan"),
    ((np.ones((1, 2)), np.array([[np.inf], [1.0]])), ValueError, r"\bb\b.*finite.*inf"),
    ((np.array([["x", "y"]]), np.ones((2, 1))), TypeError, r"\ba\b.*real.*<U1"),
    ((np.ones((2, 2), complex), np.ones((2, 2))), TypeError, r"\ba\b.*real.*complex"),
])
def test_matmul_rejects_bad_operands(args, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fnn.ops.matmul(*args)


@pytest.mark.parametrize("out, exc, pattern", [
    (np.empty((3, 3)), ValueError, r"out.*\(2, 3\).*\(3, 3\)"),
    (np.empty((2, 3), np.float32), ValueError, r"out.*float64.*float32"),
    (np.empty((3, 2)).T, ValueError, r"out.*C-contiguous"),
    ([[0.0] * 3] * 2, TypeError, r"out.*list"),
])
def test_matmul_rejects_bad_out(out, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fnn.ops.matmul(np.ones((2, 4)), np.ones((4, 3)), out=out)


def test_matmul_rejects_overlapping_out():
    a = np.ones((3, 3))
    with pytest.raises(ValueError, match="overlap"):
        fnn.ops.matmul(a, np.eye(3), out=a)
