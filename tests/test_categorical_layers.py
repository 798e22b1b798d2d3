"""IntegerLookup, CategoryEncoding, Hashing, Discretization (fastnn/layers/categorical.py,
fastnn/layers/adapted.py): Keras 3 (numpy backend) as the oracle for CategoryEncoding and
Discretization (its adapt's quantile summary too); IntegerLookup against Keras' documented
outputs and a reference from Keras' code (its IntegerLookup needs TensorFlow); Hashing to the
buckets Keras' own tests expect (FarmHash, SipHash with a salt); every layer in models on both
backends, model files, pickling, bad inputs.
"""

import pickle
from collections import Counter

import numpy as np
import pytest

import fastnn as fnn

BACKENDS = ["numpy", "fast"]


# ---------------------------------------------------------------------- Keras parity
@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("mode", ["one_hot", "multi_hot", "count"])
def test_category_encoding_matches_keras(keras, seed, mode):
    k = keras
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    shape = [(5,), (5, 1), (5, 3)][seed % 3]
    x = rng.integers(0, n, shape)
    ours = fnn.CategoryEncoding(num_tokens=n, output_mode=mode)(x)
    theirs = np.asarray(k.layers.CategoryEncoding(num_tokens=n, output_mode=mode)(x))
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("seed", range(16))
def test_discretization_adapt_matches_keras(keras, seed):
    k = keras
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    data = [rng.standard_normal(n), rng.exponential(size=n), rng.integers(0, 5, n) * 1.0,
            rng.uniform(-3, 3, (n, 2))][seed % 4]
    num_bins = int(rng.integers(2, 12))
    eps = [0.01, 0.1, 0.001, 0.05][seed % 4]
    ours = fnn.Discretization(num_bins=num_bins, epsilon=eps)
    ours.adapt(data)
    theirs = k.layers.Discretization(num_bins=num_bins, epsilon=eps)
    theirs.update_state(data)      # what its adapt does with an array (adapt itself
    theirs.finalize_state()        # checks for tf.data first, and needs TensorFlow)
    assert ours.bin_boundaries == list(theirs.bin_boundaries)
    x = rng.standard_normal((7, 3)) * 2
    for mode in ("int", "one_hot", "multi_hot", "count"):
        a = fnn.Discretization(bin_boundaries=ours.bin_boundaries, output_mode=mode)(x)
        b = np.asarray(k.layers.Discretization(bin_boundaries=ours.bin_boundaries,
                                               output_mode=mode)(x))
        np.testing.assert_array_equal(a, b)


def test_discretization_boundaries_are_near_numpy_quantiles():
    data = np.random.default_rng(0).standard_normal(20000)
    layer = fnn.Discretization(num_bins=5, epsilon=0.001)
    layer.adapt(data)
    np.testing.assert_allclose(layer.bin_boundaries,
                               np.quantile(data, [0.2, 0.4, 0.6, 0.8]), atol=0.01)


# ---------------------------------------------------------------------- IntegerLookup
def test_integer_lookup_keras_documentation():
    vocab = [12, 36, 1138, 42]
    data = np.array([[12, 1138, 42], [42, 1000, 36]])
    assert fnn.IntegerLookup(vocabulary=vocab)(data).tolist() == [[1, 3, 4], [4, 0, 2]]
    layer = fnn.IntegerLookup()
    layer.adapt(data)
    assert layer.get_vocabulary() == [-1, 42, 1138, 1000, 36, 12]
    assert fnn.IntegerLookup(vocabulary=vocab, num_oov_indices=2)(data).tolist() == \
        [[2, 4, 5], [5, 0, 3]]                       # 1000 % 2: Keras' floormod
    assert fnn.IntegerLookup(vocabulary=vocab, output_mode="multi_hot")(data).tolist() == \
        [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]]
    assert fnn.IntegerLookup(vocabulary=vocab, invert=True)([[1, 3, 4], [4, 0, 2]]).tolist() \
        == [[12, 1138, 42], [42, -1, 36]]
    masked = fnn.IntegerLookup(vocabulary=vocab, mask_token=0)
    assert masked([[12, 0, 7]]).tolist() == [[2, 0, 1]]
    tfidf = fnn.IntegerLookup(output_mode="tf_idf", vocabulary=vocab,
                              idf_weights=[0.25, 0.75, 0.6, 0.4])(
        [[12, 1138, 42, 42], [42, 7, 36, 7]])
    np.testing.assert_allclose(tfidf, [[0, 0.25, 0, 0.6, 0.8], [1.0, 0, 0.75, 0, 0.4]],
                               rtol=1e-6)


@pytest.mark.parametrize("seed", range(10))
def test_integer_lookup_matches_the_reference(seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(-3, 30, (int(rng.integers(1, 40)), 4))
    max_tokens = [None, 5, 12][seed % 3]
    n_oov = [1, 2, 3][seed % 3]
    mask = 0 if seed % 2 else None
    layer = fnn.IntegerLookup(max_tokens=max_tokens, num_oov_indices=n_oov, mask_token=mask)
    layer.adapt(data)
    counts = Counter(data.reshape(-1).tolist())
    for s in (mask, -1):
        counts.pop(s, None)
    tokens = np.array(list(counts))
    order = np.lexsort((tokens, np.array([counts[t] for t in tokens])))[::-1]
    specials = ([mask] if mask is not None else []) + [-1] * n_oov
    if max_tokens:
        order = order[:max_tokens - len(specials)]
    vocab = specials + tokens[order].tolist()
    assert layer.get_vocabulary() == vocab
    q = rng.integers(-5, 40, (6, 4))
    index = {t: i for i, t in enumerate(vocab) if i >= len(specials)}
    start = 1 if mask is not None else 0
    expect = [[0 if (mask is not None and v == mask) else index.get(v, start + v % n_oov)
               for v in row] for row in q.tolist()]
    assert layer(q).tolist() == expect
    assert layer(q.astype(np.float64)).tolist() == expect


# ---------------------------------------------------------------------- Hashing
# Keras' own expectations (keras/src/layers/preprocessing/hashing_test.py): FarmHash
# Fingerprint64 without a salt, SipHash-2-4 with one
WIRE = [["omar"], ["stringer"], ["marlo"], ["wire"], ["skywalker"]]
KERAS_HASHING = [
    (dict(num_bins=3), [["A"], ["B"], ["C"], ["D"], ["E"]], [[1], [0], [1], [1], [2]]),
    (dict(num_bins=3, mask_value=""), [["A"], ["B"], [""], ["C"], ["D"]],
     [[1], [1], [0], [2], [2]]),
    (dict(num_bins=3, salt=[133, 137]), [["A"], ["B"], ["C"], ["D"], ["E"]],
     [[1], [2], [1], [0], [2]]),
    (dict(num_bins=3, salt=133), [["A"], ["B"], ["C"], ["D"], ["E"]], [[0], [0], [2], [1], [0]]),
    (dict(num_bins=3), [0, 1, 2, 3, 4], [1, 0, 1, 0, 2]),
    (dict(num_bins=1), [["A"], ["B"], ["C"], ["D"], ["E"]], [[0]] * 5),
    (dict(num_bins=2), WIRE, [[0], [0], [1], [0], [0]]),
    (dict(num_bins=3, mask_value=""), WIRE, [[1], [1], [2], [1], [1]]),
    (dict(num_bins=3, mask_value="omar"), WIRE, [[0], [1], [2], [1], [1]]),
    (dict(num_bins=3), [[0], [1], [2], [3], [4]], [[1], [0], [1], [0], [2]]),
    (dict(num_bins=2, salt=[133, 137]), WIRE, [[0], [1], [0], [1], [0]]),
    (dict(num_bins=2, salt=[211, 137]), WIRE, [[1], [0], [1], [0], [1]]),
    (dict(num_bins=3, salt=[133, 137]), [[0], [1], [2], [3], [4]], [[1], [1], [2], [0], [1]]),
    (dict(num_bins=2), [[1, 2], [2, 3], [3, 4]], [[1, 1], [1, 1], [1, 1]]),
    (dict(num_bins=2), [[[1], [2]], [[2], [3]], [[3], [4]]], [[[1], [1]], [[1], [1]], [[1], [1]]]),
    (dict(num_bins=3, output_mode="one_hot"), [0, 1, 2, 3, 4],
     [[0, 1, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]]),
    (dict(num_bins=3, output_mode="multi_hot"), [[0, 1, 2, 3, 4]], [[1, 1, 1]]),
]


@pytest.mark.parametrize("kw,data,expect", KERAS_HASHING,
                         ids=[f"keras{i}" for i in range(len(KERAS_HASHING))])
def test_hashing_gives_keras_buckets(kw, data, expect):
    assert fnn.Hashing(**kw)(data).tolist() == expect


def test_fingerprint64_and_siphash_against_references():
    """FarmHash Fingerprint64 against pyfarmhash (when installed) at every length path (0-16,
    17-32, 33-64, the 64-byte loop); SipHash-2-4 against its paper's test vector."""
    from fastnn._farmhash import fingerprint64, siphash24
    k0 = int.from_bytes(bytes(range(8)), "little")
    k1 = int.from_bytes(bytes(range(8, 16)), "little")
    assert siphash24(k0, k1, bytes(range(15))) == 0xA129CA6149BE45E5
    farmhash = pytest.importorskip("farmhash")
    rng = np.random.default_rng(0)
    for n in [*range(0, 200), 255, 256, 257, 1000, 4099]:
        data = bytes(rng.integers(0, 256, n, dtype=np.uint8))
        assert fingerprint64(data) == farmhash.fingerprint64(data), n


def test_hashing_floats_and_strings_as_keras():
    """Floats are truncated to int64 before hashing (Keras' cast); in a model, the float
    inputs give the integer buckets."""
    ints = fnn.Hashing(num_bins=97)(np.arange(-20, 20))
    np.testing.assert_array_equal(fnn.Hashing(num_bins=97)(np.arange(-20, 20) + 0.25 *
                                                           np.sign(np.arange(-20, 20))), ints)
    np.testing.assert_array_equal(fnn.Hashing(num_bins=97)([str(v) for v in range(-20, 20)]),
                                  ints)
    model = fnn.Sequential([fnn.Hashing(num_bins=97)], input_dim=40, backend="numpy")
    np.testing.assert_array_equal(model.predict(np.arange(-20, 20)[None] * 1.0)[0], ints)


def test_hashing_mask_salt_and_modes():
    x = np.arange(-50, 50)
    plain = fnn.Hashing(num_bins=7)(x)
    assert plain.min() >= 0 and plain.max() < 7 and len(set(plain.tolist())) == 7
    masked = fnn.Hashing(num_bins=7, mask_value=3)(x)
    assert masked[x == 3].tolist() == [0] and masked[x != 3].min() >= 1
    salted = fnn.Hashing(num_bins=7, salt=42)(x)
    assert not np.array_equal(salted, plain)
    np.testing.assert_array_equal(fnn.Hashing(num_bins=7, salt=[42, 0])(x),
                                  fnn.Hashing(num_bins=7, salt=[42, 0])(x))
    s = fnn.Hashing(num_bins=5, mask_value="")(["", "a", b"a"])
    assert s[0] == 0 and s[1] == s[2] >= 1
    onehot = fnn.Hashing(num_bins=7, output_mode="one_hot")(x[:, None])
    np.testing.assert_array_equal(onehot, np.eye(7)[plain])
    counts = fnn.Hashing(num_bins=7, output_mode="count")(x.reshape(10, 10))
    np.testing.assert_array_equal(counts.sum(axis=1), 10)


# ---------------------------------------------------------------------- in models
def _layers(mode):
    lookup = fnn.IntegerLookup(output_mode=mode if mode != "one_hot" else "int")
    lookup.adapt(np.array([3, 5, 5, 7, 9, 9, 9, 11]))
    disc = fnn.Discretization(num_bins=4, output_mode=mode if mode != "one_hot" else "int")
    disc.adapt(np.linspace(0, 30, 50))
    return [lookup, disc, fnn.Hashing(num_bins=6, output_mode=mode),
            fnn.CategoryEncoding(num_tokens=12, output_mode=mode if mode != "int" else "count")]


def _functional(mode, backend):
    inp = fnn.Input((3,))
    outs = [fnn.Flatten()(layer(inp)) if mode == "one_hot" and i >= 2 else layer(inp)
            for i, layer in enumerate(_layers(mode))]
    h = fnn.Concatenate()(outs)
    return fnn.Model(inp, fnn.Dense(2, activation="softmax")(h), backend=backend, seed=3,
                     dtype="float64")


X = np.array([[3, 5, 10], [9, 9, 9], [0, 11, 7], [5, 3, 3]], float)


@pytest.mark.parametrize("mode", ["int", "multi_hot", "count", "one_hot"])
def test_models_agree_across_backends_train_and_round_trip(mode, tmp_path):
    preds = []
    for backend in BACKENDS:
        model = _functional(mode, backend)
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        model.fit(X, np.array([0, 1, 0, 1]), epochs=3, verbose=0)
        p = model.predict(X)
        path = str(tmp_path / f"{backend}.fnn")
        model.save(path)
        again = fnn.load(path)
        np.testing.assert_array_equal(again.predict(X), p)
        preds.append(p)
        layer_outputs = [lay for lay in again.layers if type(lay).__name__ in (
            "IntegerLookup", "Discretization", "Hashing", "CategoryEncoding")]
        assert len(layer_outputs) == 4
    np.testing.assert_allclose(preds[0], preds[1], rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_model_output_equals_the_eager_call(backend):
    for mode in ("int", "multi_hot", "count"):
        for layer in _layers(mode):
            eager = layer(X.astype(np.int64))
            model = fnn.Sequential([layer], input_dim=3, backend=backend, dtype="float64")
            np.testing.assert_array_equal(model.predict(X), eager)


@pytest.mark.parametrize("backend", BACKENDS)
def test_input_gradient_through_them_is_zero(backend):
    model = fnn.Sequential([fnn.Discretization(bin_boundaries=[0.5, 2.0]),
                            fnn.Dense(2)], input_dim=3, backend=backend, seed=0)
    model.forward(X, training=True)
    dx = model.backward(np.ones((4, 2)))
    assert dx.shape == (4, 3) and not dx.any()


def test_large_integer_tokens_in_a_float64_model():
    layer = fnn.IntegerLookup(vocabulary=[1, 2**24, 2**40 + 1])
    model = fnn.Sequential([layer], input_dim=2, dtype="float64")
    np.testing.assert_array_equal(model.predict(np.array([[2.0**40 + 1, 2.0**24]])), [[3, 2]])
    fnn.Sequential([fnn.IntegerLookup(vocabulary=[2**24])], input_dim=1)   # float32 holds it


def test_pickling_the_layers():
    for mode in ("int", "count"):
        for layer in _layers(mode):
            same = pickle.loads(pickle.dumps(layer))
            np.testing.assert_array_equal(same(X.astype(np.int64)), layer(X.astype(np.int64)))


# ---------------------------------------------------------------------- bad inputs
BAD = [
    (lambda: fnn.CategoryEncoding(), ValueError, "num_tokens"),
    (lambda: fnn.CategoryEncoding(num_tokens=0), ValueError, "num_tokens"),
    (lambda: fnn.CategoryEncoding(num_tokens=2**40), ValueError, "num_tokens"),
    (lambda: fnn.CategoryEncoding(3, output_mode="int"), ValueError, "output_mode"),
    (lambda: fnn.CategoryEncoding(3)([[0, 3]]), ValueError, "num_tokens"),
    (lambda: fnn.CategoryEncoding(3)([[0.5]]), ValueError, "integers"),
    (lambda: fnn.CategoryEncoding(3, sparse=True), ValueError, "sparse"),
    (lambda: fnn.Hashing(num_bins=0), ValueError, "num_bins"),
    (lambda: fnn.Hashing(num_bins=3, mask_value=1.5), TypeError, "mask_value"),
    (lambda: fnn.Hashing(num_bins=3, salt=-1), ValueError, "salt"),
    (lambda: fnn.Hashing(num_bins=3, salt=[1, 2, 3]), ValueError, "salt"),
    (lambda: fnn.Hashing(num_bins=3)([np.nan]), ValueError, "inputs of hashing"),
    (lambda: fnn.Hashing(num_bins=3, salt=2**64), ValueError, "salt"),
    (lambda: fnn.Discretization(), ValueError, "bin_boundaries"),
    (lambda: fnn.Discretization(bin_boundaries=[2.0, 1.0]), ValueError, "sorted"),
    (lambda: fnn.Discretization(bin_boundaries=[1.0, np.inf]), ValueError, "bin_boundaries"),
    (lambda: fnn.Discretization(bin_boundaries=[1.0], num_bins=5), ValueError, "num_bins"),
    (lambda: fnn.Discretization(num_bins=3, epsilon=0), ValueError, "epsilon"),
    (lambda: fnn.Discretization(num_bins=3)([1.0]), ValueError, "adapt"),
    (lambda: fnn.Discretization(num_bins=3).adapt([]), ValueError, "data"),
    (lambda: fnn.Discretization(num_bins=3).adapt([1.0, np.nan]), ValueError, "data"),
    (lambda: fnn.Discretization(bin_boundaries=[0.0]).adapt([1.0]), ValueError, "num_bins"),
    (lambda: fnn.IntegerLookup(vocabulary_dtype="string"), ValueError, "vocabulary_dtype"),
    (lambda: fnn.IntegerLookup(oov_token="x"), TypeError, "oov_token"),
    (lambda: fnn.IntegerLookup(vocabulary=[1, 1]), ValueError, "repeated"),
    (lambda: fnn.IntegerLookup(vocabulary=["a"]), TypeError, "vocabulary"),
    (lambda: fnn.IntegerLookup(num_oov_indices=0, vocabulary=[1])([2]), ValueError,
     "num_oov_indices"),
    (lambda: fnn.IntegerLookup().adapt([1.5]), ValueError, "data"),
    (lambda: fnn.Sequential([fnn.Discretization(num_bins=3)], input_dim=2), ValueError,
     "adapt"),
    (lambda: fnn.Sequential([fnn.IntegerLookup(vocabulary=[1, 2**24 + 1])], input_dim=2),
     ValueError, "float64"),
]


@pytest.mark.parametrize("make,exc,word", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_inputs_are_refused_by_name(make, exc, word):
    with pytest.raises(exc, match=word):
        make()


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_values_in_a_model_are_refused(backend):
    model = fnn.Sequential([fnn.CategoryEncoding(num_tokens=4)], input_dim=2, backend=backend)
    with pytest.raises(ValueError, match="num_tokens"):
        model.predict(np.array([[0.0, 4.0]]))
    with pytest.raises(ValueError, match="integers"):
        model.predict(np.array([[0.0, 1.5]]))


FORGED = [
    ({"class": "CategoryEncoding", "num_tokens": 2**45}, ValueError, "num_tokens"),
    ({"class": "Hashing", "num_bins": 10**12}, ValueError, "num_bins"),
    ({"class": "Discretization", "bin_boundaries": [3.0, 1.0]}, ValueError, "sorted"),
    ({"class": "Discretization", "bin_boundaries": "abc"}, (TypeError, ValueError), "bin"),
    ({"class": "IntegerLookup", "vocabulary": [1, 2, 2]}, ValueError, "repeated"),
    ({"class": "IntegerLookup", "max_tokens": 2**40}, ValueError, "max_tokens"),
    ({"class": "IntegerLookup", "output_mode": "tf_idf", "vocabulary": [1, 2],
      "idf_weights": [1.0]}, ValueError, "idf_weights"),
]


@pytest.mark.parametrize("config,exc,word", FORGED, ids=[f"forged{i}" for i in range(len(FORGED))])
def test_forged_configs_are_refused_before_allocation(config, exc, word):
    from fastnn.layers import layer_from_config
    with pytest.raises(exc, match=word):
        layer_from_config(config)


@pytest.mark.parametrize("pad", [False, True])
def test_tf_idf_lookup_round_trips_through_a_model_file(pad, tmp_path):
    layer = fnn.IntegerLookup(output_mode="tf_idf", max_tokens=10, pad_to_max_tokens=pad)
    layer.adapt(np.array([[1, 2, 2], [3, 1, 1], [7, 7, 7]]))
    model = fnn.Sequential([layer], input_dim=3, dtype="float64")
    x = np.array([[1, 2, 5], [7, 7, 3]], float)
    model.save(str(tmp_path / "m.fnn"))
    again = fnn.load(str(tmp_path / "m.fnn"))
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    np.testing.assert_allclose(model.predict(x), layer(x), rtol=1e-6)
    assert model.predict(x).shape == (2, 10 if pad else 5)
