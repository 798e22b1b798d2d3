"""Accepted input forms give bitwise the results of a C-contiguous copy of the same dtype.

Forms: Python lists, integer and float16 arrays, strided and reversed views, Fortran order,
read-only arrays, memory-mapped files and non-native byte order. Each goes through predict, evaluate, train_on_batch
(from the same starting weights), fit (same seed) and ``fastnn.ops.matmul``, and must come back
unchanged (the library never writes into its inputs).
"""

import numpy as np
import pytest

import fastnn as fnn

N, D, C = 13, 5, 3


def _base(dtype=np.float64, shape=(N, D), seed=0, low=-3, high=4):
    # small integers: exact in every dtype below, so all forms hold the same numbers
    return np.random.default_rng(seed).integers(low, high, shape).astype(dtype)


def _readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def _memmap(a, tmp_path, mode):
    path = tmp_path / f"data_{a.dtype.name}_{mode}.bin"
    mm = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
    mm[...] = a
    mm.flush()
    del mm
    return np.memmap(path, dtype=a.dtype, mode=mode, shape=a.shape)


# Each form builds an input of the given shape from the data in ``a`` (float64, integers).
FORMS = {
    "list": lambda a, tmp: a.tolist(),
    "list_of_ints": lambda a, tmp: a.astype(int).tolist(),
    "int64": lambda a, tmp: a.astype(np.int64),
    "int32": lambda a, tmp: a.astype(np.int32),
    "int8": lambda a, tmp: a.astype(np.int8),
    "uint8": lambda a, tmp: (a - a.min()).astype(np.uint8),
    "float16": lambda a, tmp: a.astype(np.float16),
    "float32": lambda a, tmp: a.astype(np.float32),
    "float64": lambda a, tmp: a.astype(np.float64),
    "strided": lambda a, tmp: np.repeat(np.repeat(a, 2, axis=0), 3, axis=1)[::2, ::3],
    "reversed": lambda a, tmp: a[::-1].copy()[::-1],
    "fortran": lambda a, tmp: np.asfortranarray(a),
    "transposed_view": lambda a, tmp: np.ascontiguousarray(a.T).T,
    "readonly": lambda a, tmp: _readonly(a),
    "readonly_float32_fortran": lambda a, tmp: _readonly(np.asfortranarray(a, np.float32)),
    "memmap_readonly": lambda a, tmp: _memmap(a, tmp, "r"),
    "memmap_float32_rw": lambda a, tmp: _memmap(a.astype(np.float32), tmp, "r+"),
    "big_endian_float32": lambda a, tmp: a.astype(">f4"),
    "big_endian_float64": lambda a, tmp: a.astype(">f8"),
    "little_endian_float32": lambda a, tmp: a.astype("<f4"),
}
# labels (n,) in their accepted forms
LABEL_FORMS = {
    "list": lambda y, tmp: y.tolist(),
    "int8": lambda y, tmp: y.astype(np.int8),
    "uint16": lambda y, tmp: y.astype(np.uint16),
    "float32": lambda y, tmp: y.astype(np.float32),
    "strided": lambda y, tmp: np.repeat(y, 2)[::2],
    "readonly": lambda y, tmp: _readonly(y),
    "memmap": lambda y, tmp: _memmap(y.astype(np.int32), tmp, "r"),
    "big_endian_int64": lambda y, tmp: y.astype(">i8"),
}


def contiguous_copy(form):
    """The reference: a fresh C-contiguous ndarray of the same dtype in native byte order (lists
    become arrays)."""
    out = np.array(form, copy=True, order="C")
    out = out.astype(out.dtype.newbyteorder("="), copy=False)
    assert type(out) is np.ndarray and out.flags.c_contiguous and out.dtype.isnative
    return out


def snapshot(form):
    return np.array(form, copy=True)


def assert_unchanged(form, before):
    assert np.array_equal(np.asarray(form), before), "the library wrote into its input"


def assert_bitwise(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def make_model(backend, dtype, compiled=True):
    m = fnn.Sequential([fnn.Dense(7, activation="tanh"), fnn.Dense(C, activation="softmax")],
                       input_dim=D, seed=3, dtype=dtype, backend=backend)
    if compiled:
        m.compile("cross_entropy", optimizer=fnn.SGD(lr=0.1, momentum=0.9),
                  metrics=["accuracy"])
    return m


def labels():
    return np.random.default_rng(1).integers(0, C, N)


def test_forms_are_what_they_claim(tmp_path):
    """Guard: each form really is the non-standard layout it names, and holds the same numbers."""
    a = _base()
    forms = {name: make(a, tmp_path) for name, make in FORMS.items()}
    assert not forms["strided"].flags.c_contiguous and not forms["strided"].flags.f_contiguous
    assert forms["reversed"].strides[0] < 0
    assert forms["fortran"].flags.f_contiguous and not forms["fortran"].flags.c_contiguous
    assert not forms["transposed_view"].flags.c_contiguous
    assert not forms["readonly"].flags.writeable
    assert isinstance(forms["memmap_readonly"], np.memmap)
    assert not forms["memmap_readonly"].flags.writeable
    for name, form in forms.items():
        if name != "uint8":
            assert np.array_equal(np.asarray(form, dtype=np.float64), a), name


@pytest.mark.parametrize("form", sorted(FORMS))
def test_predict(form, backend, dtype, tmp_path):
    model = make_model(backend, dtype, compiled=False)
    X = FORMS[form](_base(), tmp_path)
    before = snapshot(X)
    got = model.predict(X, batch_size=4)
    assert_unchanged(X, before)
    assert_bitwise(got, model.predict(contiguous_copy(X), batch_size=4))
    assert got.dtype == np.dtype(dtype)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_evaluate(form, backend, dtype, tmp_path):
    model = make_model(backend, dtype)
    X = FORMS[form](_base(), tmp_path)
    y = labels()
    got = model.evaluate(X, y, batch_size=5)
    want = model.evaluate(contiguous_copy(X), y, batch_size=5)
    assert got.keys() == want.keys() == {"loss", "accuracy"}
    for key in want:
        assert_bitwise(np.float64(got[key]), np.float64(want[key]))


@pytest.mark.parametrize("form", sorted(LABEL_FORMS))
def test_evaluate_label_forms(form, backend, dtype, tmp_path):
    model = make_model(backend, dtype)
    X = _base()
    y = LABEL_FORMS[form](labels(), tmp_path)
    before = snapshot(y)
    got = model.evaluate(X, y)
    assert_unchanged(y, before)
    want = model.evaluate(X, contiguous_copy(y))
    assert got == want


def _train_pair(backend, dtype, X, y, steps=3):
    """Train two models with the same starting weights, one on the form, one on the copy."""
    a, b = make_model(backend, dtype), make_model(backend, dtype)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert_bitwise(wa, wb)
    Xc, yc = contiguous_copy(X), contiguous_copy(y)
    for _ in range(steps):
        assert_bitwise(np.float64(a.train_on_batch(X, y)), np.float64(b.train_on_batch(Xc, yc)))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert_bitwise(wa, wb)
    return a


@pytest.mark.parametrize("form", sorted(FORMS))
def test_train_on_batch(form, backend, dtype, tmp_path):
    X = FORMS[form](_base(), tmp_path)
    before = snapshot(X)
    model = _train_pair(backend, dtype, X, labels())
    assert_unchanged(X, before)
    # the weights moved: the comparison above was between trained models
    assert not np.array_equal(model.get_weights()[0], make_model(backend, dtype).get_weights()[0])


@pytest.mark.parametrize("form", sorted(LABEL_FORMS))
def test_train_on_batch_label_forms(form, backend, dtype, tmp_path):
    y = LABEL_FORMS[form](labels(), tmp_path)
    before = snapshot(y)
    _train_pair(backend, dtype, _base(), y)
    assert_unchanged(y, before)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_fit(form, backend, dtype, tmp_path):
    X = FORMS[form](_base(), tmp_path)
    y = LABEL_FORMS["strided"](labels(), tmp_path) if form == "strided" else labels()
    before = snapshot(X)
    a, b = make_model(backend, dtype), make_model(backend, dtype)
    ha = a.fit(X, y, epochs=2, batch_size=4, shuffle=True, verbose=0)
    hb = b.fit(contiguous_copy(X), contiguous_copy(y), epochs=2, batch_size=4, shuffle=True,
               verbose=0)
    assert_unchanged(X, before)
    assert ha.history == hb.history
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert_bitwise(wa, wb)


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("side", ["a", "b", "both"])
def test_matmul(form, side, tmp_path):
    base_a = _base(shape=(9, 6), seed=5)
    base_b = _base(shape=(6, 11), seed=6)
    a = FORMS[form](base_a, tmp_path / "a") if side in ("a", "both") else base_a
    b = FORMS[form](base_b, tmp_path / "b") if side in ("b", "both") else base_b
    before_a, before_b = snapshot(a), snapshot(b)
    got = fnn.ops.matmul(a, b)
    assert_unchanged(a, before_a)
    assert_unchanged(b, before_b)
    assert_bitwise(got, fnn.ops.matmul(contiguous_copy(a), contiguous_copy(b)))
    # and the numbers are right (small integers: exact in float32 and float64)
    assert np.array_equal(got, np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64))


@pytest.fixture(autouse=True)
def _tmp_subdirs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
