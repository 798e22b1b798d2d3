"""Property-based tests (hypothesis): random shapes, dtypes and values through the public API.

- predict, train_on_batch, fit and ``fastnn.ops.matmul`` never crash, and raise only ValueError
  or TypeError. An independent oracle says which inputs are valid: valid ones must succeed
  (finite results of the right shape and dtype), invalid ones must raise, and a refused training
  call leaves the weights untouched.
- softmax rows sum to 1 and are shift-invariant (through a model and through each backend's kernel);
- losses are >= 0 (through evaluate and through each backend's loss kernel, every kind);
- splitting a batch does not change the forward result.

Splitting is NOT bitwise on the fast backend: the compiled path depends on the batch size (a
single row goes through the small-batch forward plan, a few rows of C take the GEMM's direct
path, larger batches the packed path, which sums k per block of kc = 256), and each sums the dot
products in its own order. Measured: one row at a time vs the whole batch differs by up to
~2.6e-6 on outputs of size ~5 in float32 (a few ulps) and ~4.4e-15 in float64; two halves of a
200-row batch agree bitwise. So the check uses a tight tolerance scaled by sum |x| |w|.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnn as fnn
from fastnn import activations as A
from fastnn import losses as L
from fastnn.backends import get_backend

BACKENDS = ["numpy", "fast"]
DTYPES = ["float32", "float64"]
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ACCEPTED = (ValueError, TypeError)
EPS = {"float32": np.finfo(np.float32).eps, "float64": np.finfo(np.float64).eps}

REAL_DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool"]
OTHER_DTYPES = ["complex64", "complex128", "object", "<U3", "|S2"]


# --------------------------------------------------------------------------- strategies
@st.composite
def any_array(draw, width, rows=st.integers(0, 9), finite_only=False, max_abs=None):
    """Mostly (n, width) real arrays, sometimes other shapes, dtypes or non-finite values.

    With ``finite_only``: always a real (rows, width) array of finite values.
    """
    dtype = draw(st.sampled_from(REAL_DTYPES) if finite_only else
                 st.one_of(st.sampled_from(REAL_DTYPES), st.sampled_from(REAL_DTYPES),
                           st.sampled_from(OTHER_DTYPES)))
    shape = draw(st.tuples(rows, st.just(width)) if finite_only else
                 st.one_of(st.tuples(rows, st.just(width)), st.tuples(rows, st.just(width)),
                           hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)))
    np_dtype = np.dtype(dtype)
    width_bits = 16 if dtype == "float16" else 64
    if np_dtype.kind in "fcOUS":
        if max_abs is not None:
            elements = st.floats(-max_abs, max_abs, width=width_bits)
        else:
            elements = st.floats(allow_nan=not finite_only, allow_infinity=not finite_only,
                                 width=width_bits)
        values = draw(hnp.arrays(np.float16 if dtype == "float16" else np.float64, shape,
                                 elements=elements))
        with np.errstate(over="ignore", invalid="ignore"):   # float64 -> float32 may overflow
            arr = values.astype(np_dtype)
    elif np_dtype.kind in "iu" and max_abs is not None:
        info = np.iinfo(np_dtype)
        arr = draw(hnp.arrays(np_dtype, shape, elements=st.integers(
            max(info.min, -int(max_abs)), min(info.max, int(max_abs)))))
    else:
        arr = draw(hnp.arrays(np_dtype, shape))
    layout = draw(st.sampled_from(["c", "fortran", "strided", "list"]))
    if layout == "fortran":
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim >= 1:
        arr = np.repeat(arr, 2, axis=0)[::2]
    elif layout == "list" and arr.dtype.kind in "fiub":
        arr = arr.tolist()
    return arr


def valid_matrix(x, width, dtype):
    """The oracle: is ``x`` an acceptable (n >= 1, width) finite real input for ``dtype``?"""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub" or arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        return False
    if width is not None and arr.shape[1] != width:
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(arr.astype(dtype)).all())


def labels_case(draw, n, classes):
    """(labels, is_valid) for cross-entropy: valid integer labels or one of the ways to be wrong."""
    kind = draw(st.sampled_from(["ok", "ok", "ok_float", "too_large", "negative", "fractional",
                                 "nan", "rows", "onehot_width", "complex"]))
    y = np.asarray(draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, classes - 1))))
    if n == 0:
        return y, kind in ("ok", "ok_float", "too_large", "negative", "fractional", "nan")
    if kind == "ok_float":
        return y.astype(np.float32), True
    if kind == "too_large":
        y[draw(st.integers(0, n - 1))] = classes
    elif kind == "negative":
        y[draw(st.integers(0, n - 1))] = -1
    elif kind == "fractional":
        y = y.astype(np.float64)
        y[draw(st.integers(0, n - 1))] += 0.5
    elif kind == "nan":
        y = y.astype(np.float64)
        y[draw(st.integers(0, n - 1))] = np.nan
    elif kind == "rows":
        y = np.append(y, 0)
    elif kind == "onehot_width":
        y = np.eye(classes + 1)[y]
    elif kind == "complex":
        y = y.astype(np.complex128)
    return y, kind in ("ok", "ok_float")


def make_model(backend, dtype, input_dim, hidden, classes, final="softmax", seed=0):
    return fnn.Sequential([fnn.Dense(hidden, activation="tanh"),
                           fnn.Dense(classes, activation=final)],
                          input_dim=input_dim, seed=seed, dtype=dtype, backend=backend)


def assert_weights_equal(before, after):
    for a, b in zip(before, after):
        assert a.tobytes() == b.tobytes(), "a refused call changed the weights"


# --------------------------------------------------------------------------- never crash
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(data=st.data(), width=st.integers(1, 6))
def test_predict_any_input(backend, dtype, data, width):
    model = make_model(backend, dtype, width, 5, 3)
    x = data.draw(any_array(width))
    batch = data.draw(st.integers(1, 4))
    try:
        out = model.predict(x, batch_size=batch)
    except ACCEPTED:
        event("refused")
        assert not valid_matrix(x, width, dtype), "a valid input was refused"
        return
    event("accepted")
    assert valid_matrix(x, width, dtype), f"an invalid input was accepted: {x!r}"
    assert out.shape == (np.asarray(x).shape[0], 3) and out.dtype == np.dtype(dtype)
    if np.abs(np.asarray(x, dtype=np.float64)).max() <= 1e30:
        # (beyond that x @ W itself may overflow: predict does not check its outputs)
        assert np.isfinite(out).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(data=st.data(), width=st.integers(1, 5), classes=st.integers(2, 4))
def test_train_on_batch_any_input(backend, dtype, data, width, classes):
    model = make_model(backend, dtype, width, 4, classes)
    model.compile("cross_entropy", fnn.Adam(lr=0.01))
    x = data.draw(any_array(width, max_abs=1e3))
    n = np.asarray(x).shape[0] if np.asarray(x).ndim else 0
    y, y_ok = labels_case(data.draw, n, classes)
    before = model.get_weights()
    try:
        loss = model.train_on_batch(x, y)
    except ACCEPTED:
        event("refused")
        assert not (valid_matrix(x, width, dtype) and y_ok), "a valid batch was refused"
        assert_weights_equal(before, model.get_weights())
        return
    event("accepted")
    assert valid_matrix(x, width, dtype) and y_ok, "an invalid batch was accepted"
    assert math.isfinite(loss) and loss >= 0
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(data=st.data(), width=st.integers(1, 4), dtype=st.sampled_from(DTYPES),
       epochs=st.sampled_from([-1, 0, 1, 2, 2]), batch_size=st.sampled_from([-1, 0, 1, 4, 5, 64]),
       shuffle=st.sampled_from([True, False]))
def test_fit_any_input(backend, data, width, dtype, epochs, batch_size, shuffle):
    model = make_model(backend, dtype, width, 3, 3)
    model.compile("cross_entropy", fnn.SGD(lr=0.05, momentum=0.5))
    if data.draw(st.booleans()):        # half the examples: valid data
        x = data.draw(any_array(width, rows=st.integers(1, 12), finite_only=True, max_abs=1e2))
        y = data.draw(hnp.arrays(np.int64, (len(x),), elements=st.integers(0, 2)))
        y_ok = True
    else:
        x = data.draw(any_array(width, rows=st.integers(0, 12), max_abs=1e2))
        n = np.asarray(x).shape[0] if np.asarray(x).ndim else 0
        y, y_ok = labels_case(data.draw, n, 3)
    before = model.get_weights()
    valid = valid_matrix(x, width, dtype) and y_ok and epochs >= 0 and batch_size >= 1
    try:
        history = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                            verbose=0)
    except ACCEPTED:
        event("refused")
        assert not valid, "a valid fit was refused"
        assert_weights_equal(before, model.get_weights())
        return
    event("accepted")
    assert valid, "an invalid fit was accepted"
    assert len(history.history.get("loss", [])) == epochs
    assert all(math.isfinite(v) and v >= 0 for v in history.history.get("loss", []))
    assert all(np.isfinite(w).all() for w in model.get_weights())


@SETTINGS
@given(data=st.data())
def test_matmul_any_input(data):
    m, k, n = (data.draw(st.integers(0, 7)) for _ in range(3))
    a = data.draw(any_array(k, rows=st.just(m)))
    k2 = data.draw(st.sampled_from([k, k, k + 1]))
    b = data.draw(any_array(n, rows=st.just(k2)))
    A_, B_ = np.asarray(a), np.asarray(b)
    real = A_.dtype.kind in "fiub" and B_.dtype.kind in "fiub"
    shapes = A_.ndim == 2 and B_.ndim == 2 and A_.shape[1] == B_.shape[0]
    single = real and A_.dtype in (np.float16, np.float32) and B_.dtype in (np.float16,
                                                                            np.float32)
    dtype = np.float32 if single else np.float64
    with np.errstate(over="ignore", invalid="ignore"):
        finite = real and np.isfinite(A_.astype(dtype)).all() and np.isfinite(
            B_.astype(dtype)).all()
    try:
        out = fnn.ops.matmul(a, b)
    except ACCEPTED:
        event("refused")
        assert not (real and shapes and finite), "valid operands were refused"
        return
    event("accepted")
    assert real and shapes and finite, "invalid operands were accepted"
    assert out.shape == (A_.shape[0], B_.shape[1]) and out.dtype == dtype
    exact = A_.astype(np.float64) @ B_.astype(np.float64)
    scale = np.abs(A_.astype(np.float64)) @ np.abs(B_.astype(np.float64))
    with np.errstate(over="ignore", invalid="ignore"):
        ok = np.abs(out - exact) <= 8 * k * np.finfo(dtype).eps * scale + np.finfo(dtype).tiny
    # where a partial sum may overflow the result dtype, the value is not checked
    assert (ok | ~(scale < np.finfo(dtype).max)).all()


# --------------------------------------------------------------------------- softmax
def _logits(dtype, max_rows=6, max_cols=6):
    # integer logits: logits + shift is exact, so the two softmax inputs differ only by the shift
    return hnp.arrays(np.int64, st.tuples(st.integers(1, max_rows), st.integers(1, max_cols)),
                      elements=st.integers(-60, 60)).map(lambda a: a.astype(dtype))


def _check_softmax(p, q, dtype):
    tol = 8 * EPS[dtype] * p.shape[1]
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    assert np.abs(p.sum(axis=1, dtype=np.float64) - 1).max() <= tol
    assert np.abs(p - q).max() <= tol


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(data=st.data(), shift=st.integers(-10**4, 10**4))
def test_softmax_layer_sums_to_one_and_is_shift_invariant(backend, dtype, data, shift):
    z = data.draw(_logits(dtype))
    c = z.shape[1]
    # an identity Dense layer feeding a Softmax layer: the model computes softmax(x)
    model = fnn.Sequential([fnn.Dense(c), fnn.Softmax()], input_dim=c, dtype=dtype,
                           backend=backend)
    model.set_weights([np.eye(c), np.zeros(c)])
    p, q = model.predict(z), model.predict(z + shift)
    _check_softmax(p, q, dtype)
    # the largest logit gets the largest probability
    assert (p[np.arange(len(z)), np.argmax(z, axis=1)] == p.max(axis=1)).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(data=st.data(), shift=st.integers(-10**4, 10**4))
def test_softmax_kernel_sums_to_one_and_is_shift_invariant(backend, dtype, data, shift):
    be = get_backend(backend)
    z = data.draw(_logits(dtype))
    p, q = np.empty_like(z), np.empty_like(z)
    be.activation_forward(z, A.SOFTMAX, 0.0, p)
    be.activation_forward(np.ascontiguousarray(z + shift), A.SOFTMAX, 0.0, q)
    _check_softmax(p, q, dtype)
    # in place (out is z) gives the same
    w = z.copy()
    be.activation_forward(w, A.SOFTMAX, 0.0, w)
    assert w.tobytes() == p.tobytes()


# --------------------------------------------------------------------------- losses >= 0
FINAL_FOR_KIND = {L.MSE_KIND: "linear", L.BCE_LOGITS: "linear", L.BCE_PROBS: "softmax",
                  L.BCE_SIGMOID: "sigmoid", L.CE_LOGITS: "linear", L.CE_PROBS: "sigmoid",
                  L.CE_SOFTMAX: "softmax"}


def _targets(kind, draw, n, c, dtype):
    if kind in (L.CE_LOGITS, L.CE_PROBS, L.CE_SOFTMAX):
        w = draw(hnp.arrays(np.float64, (n, c), elements=st.floats(0, 1)))
        w[:, 0] += 1e-3                               # rows of probabilities summing to 1
        return (w / w.sum(axis=1, keepdims=True)).astype(dtype)
    if kind == L.MSE_KIND:
        return draw(hnp.arrays(np.float64, (n, c), elements=st.floats(-1e3, 1e3))).astype(dtype)
    return draw(hnp.arrays(np.float64, (n, c), elements=st.floats(0, 1))).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(data=st.data(), kind=st.sampled_from(sorted(FINAL_FOR_KIND)),
       n=st.integers(1, 6), c=st.integers(1, 5), scale=st.sampled_from([1.0, 30.0, 1e3]))
def test_loss_kernels_are_nonnegative(backend, dtype, data, kind, n, c, scale):
    be = get_backend(backend)
    logits = data.draw(hnp.arrays(np.float64, (n, c), elements=st.floats(-1, 1))) * scale
    out = np.ascontiguousarray(logits, dtype=dtype)
    final = FINAL_FOR_KIND[kind]
    if final != "linear":
        be.activation_forward(out, A.CODES[final], 0.0, out)
    t = _targets(kind, data.draw, n, c, dtype)
    grad = np.empty_like(out)
    value = be.loss(kind, out, t, grad)
    assert math.isfinite(value) and value >= 0, (kind, value)
    assert np.isfinite(grad).all()
    assert be.loss(kind, out, t, None) == value


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(data=st.data(), dtype=st.sampled_from(DTYPES),
       loss=st.sampled_from(["mse", "binary_cross_entropy", "cross_entropy"]),
       final=st.sampled_from(["linear", "sigmoid", "softmax", "tanh", "relu"]),
       n=st.integers(1, 8), width=st.integers(1, 4), c=st.integers(1, 4))
def test_evaluate_loss_is_nonnegative(backend, data, dtype, loss, final, n, width, c):
    if loss == "cross_entropy" and c == 1:
        c = 2
    model = make_model(backend, dtype, width, 4, c, final=final, seed=data.draw(st.integers(0, 9)))
    model.compile(loss)
    x = data.draw(hnp.arrays(np.float64, (n, width), elements=st.floats(-50, 50)))
    if loss == "cross_entropy":
        y = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    else:
        lo = -5.0 if loss == "mse" else 0.0
        y = data.draw(hnp.arrays(np.float64, (n, c), elements=st.floats(lo, 1.0)))
    scores = model.evaluate(x, y)
    assert math.isfinite(scores["loss"]) and scores["loss"] >= 0


# --------------------------------------------------------------------------- batch splitting
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(data=st.data(), n=st.integers(2, 70), width=st.sampled_from([1, 3, 17, 64, 300]),
       hidden=st.sampled_from([1, 8, 33]), final=st.sampled_from(["linear", "softmax"]))
def test_splitting_a_batch_does_not_change_predict(backend, dtype, data, n, width, hidden, final):
    model = fnn.Sequential([fnn.Dense(hidden, activation="relu"), fnn.Dense(5, activation=final)],
                           input_dim=width, seed=1, dtype=dtype, backend=backend)
    x = data.draw(hnp.arrays(np.float64, (n, width), elements=st.floats(-4, 4))).astype(dtype)
    cut = data.draw(st.integers(1, n - 1))
    whole = model.predict(x)
    parts = np.concatenate([model.predict(x[:cut]), model.predict(x[cut:])])
    in_batches = model.predict(x, batch_size=data.draw(st.integers(1, n)))
    # error bound: a few ulps of the magnitude of each output's dot products, through two layers
    W1, b1, W2, b2 = (w.astype(np.float64) for w in model.get_weights())
    h = np.abs(x.astype(np.float64)) @ np.abs(W1) + np.abs(b1)
    mag = h @ np.abs(W2) + np.abs(b2)
    tol = 8 * EPS[dtype] * (mag + 1) * (width + hidden)
    if final == "softmax":
        tol = np.broadcast_to(tol.max(axis=1, keepdims=True), tol.shape)
    for other in (parts, in_batches):
        assert other.shape == whole.shape
        assert (np.abs(other - whole) <= tol).all()
