"""Input validation: a table of bad inputs, and the accepted forms that must act like clean arrays.

Each row of BAD_INPUTS is a callable, the exception it must raise and a regex that the message
must match: it names the argument and quotes what was received.
"""

import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend

N, D, C = 10, 4, 3
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, D))
LABELS = RNG.integers(0, C, N)


def _model(loss="cross_entropy", final="softmax", units=C, compiled=True, backend="numpy",
           dtype="float64"):
    model = fnn.Sequential([fnn.Dense(5, activation="tanh"), fnn.Dense(units, activation=final)],
                           input_dim=D, seed=0, dtype=dtype, backend=backend)
    if compiled:
        model.compile(loss=loss, optimizer=fnn.SGD(lr=0.1))
    return model


def _fit(X_=X, y=LABELS, loss="cross_entropy", final="softmax", units=C, **kwargs):
    kwargs.setdefault("verbose", 0)
    return _model(loss, final, units).fit(X_, y, **kwargs)


def _with(value, index, arr=X):
    arr = np.array(arr, dtype=np.float64)
    arr[index] = value
    return arr


BAD_INPUTS = [
    # ---- constructor arguments
    (lambda: fnn.Dense(-3), ValueError, r"units.*Received: units=-3"),
    (lambda: fnn.Dense(0), ValueError, r"units.*Received: units=0"),
    (lambda: fnn.Dense(2.5), TypeError, r"units.*Received: units=2\.5"),
    (lambda: fnn.Dense("8"), TypeError, r"units.*Received: units='8'"),
    (lambda: fnn.Dense(True), TypeError, r"units.*Received: units=True"),
    (lambda: fnn.Dense(4, activation="relux"), ValueError, r"activation.*'relux'"),
    (lambda: fnn.Dense(4, activation=""), ValueError, r"activation.*''"),
    (lambda: fnn.LeakyReLU(alpha=-0.1), ValueError, r"alpha.*-0\.1"),
    (lambda: fnn.Step(threshold=float("nan")), ValueError, r"threshold.*nan"),
    (lambda: fnn.Sequential([fnn.Dense(2)], input_dim=0), ValueError, r"input_dim.*0"),
    (lambda: fnn.Sequential([fnn.Dense(2)], input_dim=-5), ValueError, r"input_dim.*-5"),
    (lambda: fnn.Sequential([fnn.Dense(2)], input_dim=4, dtype="float16"), ValueError,
     r"dtype.*float16"),
    (lambda: fnn.Sequential([fnn.Dense(2)], input_dim=4, dtype="int32"), ValueError,
     r"dtype.*int32"),
    (lambda: fnn.Sequential([fnn.Dense(2)], input_dim=4, backend="gpu"), ValueError,
     r"backend.*'gpu'"),
    (lambda: fnn.Sequential([fnn.Dense(2)], input_dim=4, seed=-1), ValueError, r"seed.*-1"),
    (lambda: fnn.Sequential([fnn.Dense(2), "relu"], input_dim=4), TypeError, r"layer.*'relu'"),
    (lambda: fnn.Sequential([], input_dim=4), ValueError, r"at least one layer"),
    (lambda: get_backend("cuda"), ValueError, r"backend.*'cuda'"),
    # ---- compile and optimizers
    (lambda: _model(compiled=False).compile(loss="hinge"), ValueError, r"loss.*'hinge'"),
    (lambda: _model(compiled=False).compile(loss="mse", optimizer="adadelta"), ValueError,
     r"optimizer.*'adadelta'"),
    (lambda: _model(compiled=False).compile(loss="mse", metrics=["f1"]), ValueError,
     r"metrics.*'f1'"),
    (lambda: fnn.SGD(lr=0), ValueError, r"lr.*Received: lr=0\.0"),
    (lambda: fnn.SGD(lr=-0.1), ValueError, r"lr.*-0\.1"),
    (lambda: fnn.SGD(lr=float("nan")), ValueError, r"lr.*nan"),
    (lambda: fnn.SGD(lr="0.1"), TypeError, r"lr.*'0\.1'"),
    (lambda: fnn.SGD(lr=0.1, momentum=1.0), ValueError, r"momentum.*1\.0"),
    (lambda: fnn.SGD(lr=0.1, momentum=-0.5), ValueError, r"momentum.*-0\.5"),
    (lambda: fnn.SGD(lr=0.1, nesterov=True), ValueError, r"nesterov.*momentum=0\.0"),
    (lambda: fnn.SGD(lr=0.1, nesterov="yes"), TypeError, r"nesterov.*'yes'"),
    (lambda: fnn.SGD(lr=0.1, weight_decay=-1), ValueError, r"weight_decay.*-1"),
    (lambda: fnn.Adam(lr=float("inf")), ValueError, r"lr.*inf"),
    (lambda: fnn.Adam(beta1=1.0), ValueError, r"beta1.*1\.0"),
    (lambda: fnn.Adam(beta2=-0.1), ValueError, r"beta2.*-0\.1"),
    (lambda: fnn.Adam(eps=0.0), ValueError, r"eps.*0\.0"),
    # ---- fit arguments and call order
    (lambda: _fit(batch_size=0), ValueError, r"batch_size.*0"),
    (lambda: _fit(batch_size=-4), ValueError, r"batch_size.*-4"),
    (lambda: _fit(batch_size=2.0), TypeError, r"batch_size.*2\.0"),
    (lambda: _fit(epochs=-1), ValueError, r"epochs.*-1"),
    (lambda: _fit(epochs=1.5), TypeError, r"epochs.*1\.5"),
    (lambda: _fit(shuffle="yes"), TypeError, r"shuffle.*'yes'"),
    (lambda: _fit(validation_split=1.0), ValueError, r"validation_split.*1\.0"),
    (lambda: _fit(validation_data=X), ValueError, r"validation_data"),
    (lambda: _fit(validation_data=(X[:, :3], LABELS)), ValueError, r"X_val.*\(10, 3\)"),
    (lambda: _fit(validation_data=(X, LABELS[:9])), ValueError, r"y_val.*9"),
    (lambda: _model(compiled=False).fit(X, LABELS, verbose=0), ValueError, r"compile"),
    (lambda: _model(compiled=False).evaluate(X, LABELS), ValueError, r"compile"),
    (lambda: _model(compiled=False).train_on_batch(X, LABELS), ValueError, r"compile"),
    (lambda: _model(compiled=False).loss_and_gradients(X, LABELS), ValueError, r"compile"),
    (lambda: fnn.Sequential([fnn.Dense(2)]).predict(X[0]), ValueError, r"input_dim|built"),
    # ---- X: shape, width, values, type
    (lambda: _fit(X_=X[:, 0]), ValueError, r"X.*2-D.*\(10,\)"),
    (lambda: _fit(X_=X.reshape(10, 2, 2)), ValueError, r"X.*\(10, 2, 2\)"),
    (lambda: _fit(X_=np.hstack([X, X[:, :1]])), ValueError, r"X.*4 features.*\(10, 5\)"),
    (lambda: _fit(X_=np.empty((0, D)), y=np.empty(0, int)), ValueError, r"X.*\(0, 4\)"),
    (lambda: _fit(X_=_with(np.nan, (3, 1))), ValueError, r"X.*finite.*\[3, 1\].*nan"),
    (lambda: _fit(X_=_with(np.inf, (0, 0))), ValueError, r"X.*finite.*inf"),
    (lambda: _fit(X_=_with(-np.inf, (9, 3))), ValueError, r"X.*\[9, 3\].*-inf"),
    (lambda: _fit(X_=X.astype(str)), TypeError, r"X.*real.*<U"),
    (lambda: _fit(X_=X.astype(complex)), TypeError, r"X.*real.*complex"),
    (lambda: _fit(X_=[[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]], y=[0, 1]), ValueError,
     r"X.*rectangular"),
    (lambda: _model().predict(X[:, :2]), ValueError, r"X.*4 features.*\(10, 2\)"),
    (lambda: _model().predict(_with(np.nan, (0, 0))), ValueError, r"X.*nan"),
    (lambda: _model().train_on_batch(_with(np.nan, (2, 2)), LABELS), ValueError, r"x.*nan"),
    (lambda: _model().loss_and_gradients(X[:, :3], LABELS), ValueError, r"x.*\(10, 3\)"),
    # ---- y: rows, labels, one-hot, targets
    (lambda: _fit(y=LABELS[:9]), ValueError, r"y.*10.*9"),
    (lambda: _fit(y=np.r_[LABELS[:9], 3]), ValueError, r"y.*\[0, 2\].*3"),
    (lambda: _fit(y=np.r_[LABELS[:9], -1]), ValueError, r"y.*\[0, 2\].*-1"),
    (lambda: _fit(y=np.r_[LABELS[:9], 1.5]), ValueError, r"y.*fractional.*1\.5"),
    (lambda: _fit(y=np.r_[LABELS[:9], np.nan]), ValueError, r"y.*nan"),
    (lambda: _fit(y=np.eye(4)[LABELS]), ValueError, r"y.*\(10, 4\)"),
    (lambda: _fit(y=2 * np.eye(3)[LABELS]), ValueError, r"y.*one-hot.*row sums"),
    (lambda: _fit(y=LABELS.reshape(10, 1, 1)), ValueError, r"y.*\(10, 1, 1\)"),
    (lambda: _fit(y=LABELS.astype(str)), TypeError, r"y.*real"),
    (lambda: _fit(y=_with(np.inf, (1, 1), np.zeros((N, C))), loss="mse", final="linear"),
     ValueError, r"y.*inf"),
    (lambda: _fit(y=np.zeros((N, 2)), loss="mse", final="linear"), ValueError,
     r"y.*\(n, 3\).*\(10, 2\)"),
    (lambda: _fit(y=np.zeros(N), loss="mse", final="linear"), ValueError, r"y.*\(10,\)"),
    (lambda: _fit(y=_with(2.0, (0, 0), np.zeros((N, C))), loss="binary_cross_entropy",
                  final="sigmoid"), ValueError, r"y.*binary.*2\.0"),
    (lambda: _fit(y=np.full(N, -0.5), loss="binary_cross_entropy", final="sigmoid", units=1),
     ValueError, r"y.*-0\.5"),
    (lambda: _model().evaluate(X, np.r_[LABELS[:9], 7]), ValueError, r"y.*7"),
    # ---- weights and threads
    (lambda: _model().set_weights([np.zeros((5, 4)), np.zeros(5), np.zeros((5, 3)),
                                   np.zeros(3)]), ValueError, r"kernel.*\(4, 5\).*\(5, 4\)"),
    (lambda: _model().set_weights([np.zeros((4, 5)), np.zeros(4), np.zeros((5, 3)),
                                   np.zeros(3)]), ValueError, r"b.*\(5,\).*\(4,\)"),
    (lambda: _model().set_weights([np.zeros((4, 5)), np.zeros(5), np.zeros((5, 3))]),
     ValueError, r"weights.*4.*Received: 3"),
    (lambda: _model().set_weights([_with(np.nan, (1, 1), np.zeros((4, 5))), np.zeros(5),
                                   np.zeros((5, 3)), np.zeros(3)]), ValueError, r"kernel.*nan"),
    (lambda: fnn.Dense(3).set_weights([np.zeros((2, 3)), np.zeros(3)]), ValueError,
     r"Dense.*weights"),
    (lambda: fnn.set_num_threads(0), ValueError, r"\bn\b.*Received: n=0"),
    (lambda: fnn.set_num_threads(-2), ValueError, r"\bn\b.*-2"),
    (lambda: fnn.set_num_threads(1.5), TypeError, r"\bn\b.*1\.5"),
]


@pytest.mark.parametrize("call, exc, pattern", BAD_INPUTS,
                         ids=[f"case{i:02d}" for i in range(len(BAD_INPUTS))])
def test_bad_input_is_refused(call, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        call()
    assert type(info.value) is exc          # exactly the documented class, not a subclass


def test_the_table_is_big_enough():
    assert len(BAD_INPUTS) >= 30


def test_refused_batch_leaves_the_model_untouched():
    model = _model()
    before = model.get_weights()
    with pytest.raises(ValueError):
        model.train_on_batch(X, np.r_[LABELS[:9], 5])
    with pytest.raises(ValueError):
        model.fit(_with(np.nan, (5, 0)), LABELS, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


# --------------------------------------------------------------------------- accepted forms
def _read_only(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


FORMS = {
    "list": lambda a: a.tolist(),
    "fortran": np.asfortranarray,
    "strided": lambda a: np.repeat(a, 3, axis=1)[:, ::3],
    "reversed-view": lambda a: a[::-1][::-1],
    "read-only": _read_only,
    "float16": lambda a: a.astype(np.float16),
    "int": lambda a: a.astype(np.int32),
}


def _grid_inputs():
    rng = np.random.default_rng(3)
    # values exact in every dtype of FORMS (small integers), so the conversions lose nothing
    return rng.integers(-3, 4, size=(24, D)).astype(np.float64), rng.integers(0, C, 24)


@pytest.mark.parametrize("form", list(FORMS))
def test_accepted_input_forms_act_like_a_clean_copy(backend, dtype, form):
    Xg, yg = _grid_inputs()
    clean = np.ascontiguousarray(Xg, dtype=dtype)
    other = FORMS[form](Xg)
    results = []
    for x in (clean, other):
        model = _model(backend=backend, dtype=dtype)
        p = model.predict(x)
        lg = model.loss_and_gradients(x, yg)
        model.fit(x, yg, epochs=2, batch_size=8, verbose=0)
        results.append((p, lg, model.get_weights(), model.evaluate(x, yg)))
    (p1, (l1, g1), w1, e1), (p2, (l2, g2), w2, e2) = results
    assert np.array_equal(p1, p2) and l1 == l2 and e1 == e2
    assert all(np.array_equal(a, b) for a, b in zip(g1 + w1, g2 + w2))


LABEL_FORMS = {
    "int64": lambda y: y,
    "int32": lambda y: y.astype(np.int32),
    "uint8": lambda y: y.astype(np.uint8),
    "float": lambda y: y.astype(np.float64),
    "list": lambda y: y.tolist(),
    "one-hot": lambda y: np.eye(C)[y],
    "one-hot-int": lambda y: np.eye(C, dtype=int)[y].tolist(),
    "read-only": _read_only,
}


@pytest.mark.parametrize("form", list(LABEL_FORMS))
def test_accepted_label_forms(backend, form):
    Xg, yg = _grid_inputs()
    reference = _model(backend=backend)
    model = _model(backend=backend)
    l1, g1 = reference.loss_and_gradients(Xg, yg)
    l2, g2 = model.loss_and_gradients(Xg, LABEL_FORMS[form](yg))
    assert l1 == l2 and all(np.array_equal(a, b) for a, b in zip(g1, g2))
    reference.fit(Xg, yg, epochs=1, batch_size=8, verbose=0)
    model.fit(Xg, LABEL_FORMS[form](yg), epochs=1, batch_size=8, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(reference.get_weights(), model.get_weights()))


def test_inputs_are_not_modified(backend):
    Xg, yg = _grid_inputs()
    X0, y0 = Xg.copy(), yg.copy()
    model = _model(backend=backend)
    model.fit(Xg, yg, epochs=2, batch_size=5, verbose=0)
    model.predict(Xg)
    model.train_on_batch(Xg, yg)
    assert np.array_equal(Xg, X0) and np.array_equal(yg, y0)


def test_single_output_accepts_flat_targets(backend):
    Xg, _ = _grid_inputs()
    t = (Xg[:, 0] > 0).astype(np.float64)
    a = _model("binary_cross_entropy", "sigmoid", 1, backend=backend)
    b = _model("binary_cross_entropy", "sigmoid", 1, backend=backend)
    assert a.loss_and_gradients(Xg, t)[0] == b.loss_and_gradients(Xg, t[:, None])[0]


def test_dense_activation_none_is_linear_as_in_keras():
    """Keras reads activation=None as linear (so do fastnn's convolutions); it used to be refused."""
    layer = fnn.Dense(4, activation=None)
    assert layer.activation == "linear"
    X = np.random.default_rng(0).standard_normal((5, 3))
    made = [fnn.Sequential([fnn.Dense(4, activation=act)], input_dim=3, seed=1, dtype="float64")
            for act in (None, "linear")]
    assert np.array_equal(made[0].predict(X), made[1].predict(X))
    w, b = made[0].get_weights()
    np.testing.assert_allclose(made[0].predict(X), X @ w + b, rtol=1e-12)
    assert made[0].layers[0].get_config()["activation"] == "linear"


def test_flatten_and_reshape_widths_are_exact_past_2_to_the_63():
    """Widths are Python integers (np.prod wrapped at 2**63): a Flatten (or Reshape) over three
    dimensions of 2**31 - 1 is 2**93-ish wide, and is refused by its output's true size."""
    big = (2**31 - 1,) * 3
    exact = r"output would hold 9903520300447984150353281023 values a sample"
    with pytest.raises(ValueError, match=r"flatten: its " + exact):
        fnn.Sequential([fnn.Flatten(), fnn.Dense(2)], input_shape=big)
    with pytest.raises(ValueError, match=r"reshape: its " + exact):
        fnn.Sequential([fnn.Reshape((-1,))], input_shape=big)


MAX_ABS_CASES = {
    "plain": lambda dt: np.array([1.5, -3.25, 2.0], dt),
    "empty": lambda dt: np.array([], dt),
    "nan": lambda dt: np.array([1.0, np.nan, -2.0], dt),
    "inf": lambda dt: np.array([1.0, -np.inf], dt),
    "tiny": lambda dt: np.array([0.0, -np.finfo(dt).tiny / 4], dt),      # subnormal
    "largest": lambda dt: np.array([np.finfo(dt).max, -1.0], dt),
    "large": lambda dt: np.linspace(-7e4, 3e4, 100_003).astype(dt),      # releases the GIL
    "strided": lambda dt: np.arange(-20.0, 20.0, dtype=dt)[::3],         # the NumPy path
    "swapped": lambda dt: np.array([1.0, -9.0], np.dtype(dt).newbyteorder()),
    "matrix": lambda dt: np.array([[1.0, 2.0], [-8.0, 4.0]], dt),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", list(MAX_ABS_CASES))
def test_max_abs_matches_numpy(case, dtype):
    """The screens' max |x| (one compiled pass on contiguous float arrays): the exact largest
    magnitude when all values are finite, NaN or inf otherwise; finiteness as np.isfinite."""
    from fastnn import _validation as V
    x = MAX_ABS_CASES[case](dtype)
    got = V.max_abs(x)
    finite = bool(np.isfinite(x).all())
    assert math.isfinite(got) == finite
    if finite:
        assert got == (float(np.abs(x).max()) if x.size else 0.0)
    if finite:
        V.check_finite("x", x)
    else:
        with pytest.raises(ValueError, match=r"x must be finite \(no NaN or inf\). Received: "
                                             r"x\[\d+\]=(nan|-?inf)$"):
            V.check_finite("x", x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("labels", ["int64", "int32", "int16", "uint8", "float64", "strided",
                                    "bad_high", "bad_low", "empty", "int32_bad"])
def test_class_labels_become_one_hot_rows(labels, dtype):
    """Integer labels become one-hot rows (int32 and int64 in one compiled pass, other forms in
    NumPy): the rows of the identity, or the first label out of range named."""
    from fastnn import _validation as V
    base = np.array([2, 0, 1, 1, 2, 0, 0], np.int64)
    y = {"strided": np.repeat(base, 2)[::2], "bad_high": np.array([0, 1, 3, 7, -1]),
         "bad_low": np.array([1, -2, 5]), "empty": np.array([], np.int64),
         "int32_bad": np.array([2, 1, 9], np.int32)}.get(labels)
    if y is None:
        y = base.astype(labels)
    bad = [v for v in y.tolist() if not 0 <= v < 3]
    if bad:
        with pytest.raises(ValueError, match=rf"y labels must be in \[0, 2\] for a model with 3 "
                                             rf"outputs. Received: label {bad[0]}$"):
            V.class_targets(y, 3, np.dtype(dtype))
        return
    out = V.class_targets(y, 3, np.dtype(dtype))
    assert out.dtype == np.dtype(dtype) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, np.eye(3, dtype=dtype)[y.astype(np.intp)])
