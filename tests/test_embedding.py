"""Embedding: forward and weight gradient against torch.nn.Embedding in float64 (repeated ids,
batch 1 and 17, ids (n,) and (n, T)); the compiled kernels against their NumPy twin; bitwise
results at 1 and 2 threads; a table of bad ids and bad arguments; training through Embedding ->
Flatten -> Dense on both backends; a finite-difference check of the table's gradient; configs
and model files (hostile ones refused before allocation).
"""

import copy
import json

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import fast_backend, get_backend, numpy_backend
from fastnn.io import model_from_bytes, model_to_bytes
from fastnn.layers import LAYERS, layer_from_config
from fastnn.layers.base import Slot
from test_model_files import build, memory_cap, parse

BACKENDS = {"fast": fast_backend, "numpy": numpy_backend}


def _run_layer(backend, ids, table, dy, dtype="float64", want_dx=False):
    """One forward and backward of an Embedding on ``ids`` (n, ...) outside any model: the
    output, the table's gradient and what backward returned for the ids."""
    dtype = np.dtype(dtype)
    layer = fnn.Embedding(*table.shape)
    layer.build(tuple(ids.shape[1:]), dtype)
    grad = np.zeros(table.shape, dtype)
    layer.bind([table.astype(dtype)], [grad])
    slot = Slot(get_backend(backend), dtype)
    slot.set_rows(ids.shape[0])
    y = layer.forward(slot, ids, True).copy()
    slot._dx = [np.full(ids.shape, 7.0, dtype)] if want_dx else []
    dx = layer.backward(slot, dy.astype(dtype))
    return y, grad, dx


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("batch", [1, 17])
@pytest.mark.parametrize("sample", [(), (6,)], ids=["ids_n", "ids_nT"])
def test_forward_and_table_gradient_match_pytorch(backend, batch, sample):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(batch + len(sample))
    vocab, dim = 11, 5
    ids = rng.integers(0, vocab, (batch, *sample))
    ids.reshape(-1)[::3] = 4                                          # repeated ids
    table = rng.standard_normal((vocab, dim))
    dy = rng.standard_normal((batch, *sample, dim))
    ref = torch.nn.Embedding(vocab, dim, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(table))
    yt = ref(torch.tensor(ids))
    (yt * torch.tensor(dy)).sum().backward()
    for given in (ids.astype(np.float64), ids.astype(np.int64)):
        y, grad, dx = _run_layer(backend, given, table, dy, want_dx=True)
        np.testing.assert_array_equal(y, yt.detach().numpy())        # a gather is exact
        np.testing.assert_allclose(grad, ref.weight.grad.numpy(), rtol=1e-13, atol=1e-15)
        assert dx.shape == ids.shape and not dx.any()                  # ids have no gradient


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_model_matches_pytorch_and_gives_zero_input_gradients(backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    layer = fnn.Embedding(9, 4)
    model = fnn.Sequential([layer], input_shape=(7,), dtype="float64", seed=0, backend=backend)
    ids = rng.integers(0, 9, (17, 7))
    out = model.forward(ids, training=True)
    g = rng.standard_normal(out.shape)
    dx = model.backward(g)
    ref = torch.nn.Embedding(9, 4, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.get_weights()[0]))
    yt = ref(torch.tensor(ids))
    (yt * torch.tensor(g)).sum().backward()
    assert out.shape == (17, 7, 4) and dx.shape == (17, 7) and not dx.any()
    np.testing.assert_array_equal(out, yt.detach().numpy())
    np.testing.assert_allclose(model.grads[0], ref.weight.grad.numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("table_dtype", ["float32", "float64"])
@pytest.mark.parametrize("id_dtype", ["int64", "float32", "float64"])
@pytest.mark.parametrize("dim", [1, 3, 8, 17])
def test_compiled_kernels_equal_the_numpy_twin_bitwise(table_dtype, id_dtype, dim):
    rng = np.random.default_rng(dim)
    ids = rng.integers(0, 6, 500).astype(id_dtype)                   # many repeats per row
    table = rng.standard_normal((6, dim)).astype(table_dtype)
    dy = rng.standard_normal((500, dim)).astype(table_dtype)
    results = []
    for be in (fast_backend, numpy_backend):
        out, rows = np.empty((500, dim), table_dtype), np.empty(500, np.int64)
        assert be.embedding_forward(ids, table, out, rows) == -1
        dtable = np.ones_like(table)                                   # backward accumulates
        be.embedding_backward(rows, dy, dtable)
        results.append((out, rows, dtable))
    for a, b in zip(*results):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bitwise_the_same_at_one_and_two_threads(dtype, fixed_threads, thread_count):
    """4096 x 64 values (above the kernels' threading threshold), 50 rows hit ~80 times each."""
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 50, 4096).astype(dtype)
    table = rng.standard_normal((50, 64)).astype(dtype)
    dy = rng.standard_normal((4096, 64)).astype(dtype)
    runs = []
    for count in (1, 2):
        thread_count(count)
        out, rows = np.empty((4096, 64), dtype), np.empty(4096, np.int64)
        assert fast_backend.embedding_forward(ids, table, out, rows) == -1
        dtable = np.zeros_like(table)
        fast_backend.embedding_backward(rows, dy, dtable)
        runs.append((out, dtable))
    out, rows = np.empty((4096, 64), dtype), np.empty(4096, np.int64)
    numpy_backend.embedding_forward(ids, table, out, rows)
    dtable = np.zeros_like(table)
    numpy_backend.embedding_backward(rows, dy, dtable)
    runs.append((out, dtable))
    assert all(r[0].tobytes() == out.tobytes() and r[1].tobytes() == dtable.tobytes()
               for r in runs)
    # the first bad id in id order is reported whichever thread's chunk holds it
    ids[[100, 3000]] = [0.5, 50]
    for count in (1, 2):
        thread_count(count)
        assert fast_backend.embedding_forward(ids, table, out, rows) == 100
        assert fast_backend.embedding_forward(ids[200:], table, out[200:], rows[200:]) == 2800


def test_a_model_is_bitwise_the_same_at_one_and_two_threads(fixed_threads, thread_count):
    rng = np.random.default_rng(8)
    X, y = rng.integers(0, 40, (256, 16)), rng.integers(0, 3, 256)
    weights = []
    for count in (1, 2):
        thread_count(count)
        model = fnn.Sequential([fnn.Embedding(40, 32), fnn.Flatten(),
                                fnn.Dense(3, activation="softmax")], input_shape=(16,), seed=1)
        model.compile("cross_entropy", fnn.Adam(learning_rate=0.01))
        model.fit(X, y, epochs=2, batch_size=256, verbose=0, shuffle=False)
        weights.append([w.tobytes() for w in model.get_weights()])
    assert weights[0] == weights[1]


BAD_IDS = [(10.0, "10.0"), (-1.0, "-1.0"), (1.5, "1.5"), (np.nan, "nan"), (np.inf, "inf"),
           (-np.inf, "-inf"), (1e9, "1000000000.0"), (-1e30, "-1e+30"), (9.999, "9.999")]


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("value,shown", BAD_IDS, ids=[s for _, s in BAD_IDS])
def test_bad_ids_are_refused_naming_the_layer_value_and_position(backend, dtype, value, shown):
    ids = np.zeros((3, 4), dtype)
    ids[2, 1] = value
    ids[2, 3] = value                                                  # the first one is named
    shown = repr(float(np.dtype(dtype).type(value)))
    with pytest.raises(ValueError, match=rf"embedding: ids must be integers in \[0, "
                                         rf"input_dim=10\)\. Received: ids\[2, 1\]="
                                         rf"{shown.replace('+', '[+]')}$"):
        _run_layer(backend, ids, np.zeros((10, 2)), np.zeros((3, 4, 2)), dtype)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_bad_int_ids_and_bad_ids_through_a_model(backend):
    with pytest.raises(ValueError, match=r"ids\[1\]=10$"):
        _run_layer(backend, np.array([3, 10, -1]), np.zeros((10, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"ids\[0\]=-5$"):
        _run_layer(backend, np.array([-5, 1]), np.zeros((10, 2)), np.zeros((2, 2)))
    model = fnn.Sequential([fnn.Embedding(5, 2, name="words")], input_shape=(3,),
                           backend=backend)
    for bad, where in (([[0, 1, 2], [4, 5, 0]], r"ids\[1, 1\]=5\.0"),
                       ([[0, 0.5, 2]], r"ids\[0, 1\]=0\.5"), ([[-1, 0, 0]], r"ids\[0, 0\]")):
        with pytest.raises(ValueError, match=rf"^words: ids must be integers.*{where}"):
            model.predict(np.array(bad))
    with pytest.raises(ValueError, match="finite"):           # the model's boundary comes first
        model.predict(np.array([[0.0, np.nan, 1.0]]))


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_kernels_report_the_first_bad_position_and_handle_empty_input(backend):
    be = BACKENDS[backend]
    table = np.arange(12.0).reshape(4, 3)
    ids = np.array([0, 3, 2, 4, 1, 9, -1], np.int64)
    out, rows = np.empty((7, 3)), np.empty(7, np.int64)
    assert be.embedding_forward(ids, table, out, rows) == 3
    assert be.embedding_forward(ids.astype(np.float64), table, out, rows) == 3
    empty, none = np.empty((0, 3)), np.empty(0, np.int64)
    assert be.embedding_forward(none, table, empty, none.copy()) == -1
    dtable = np.zeros((4, 3))
    be.embedding_backward(none, empty, dtable)
    assert not dtable.any()


BAD_ARGUMENTS = [
    (lambda: fnn.Embedding(-3, 4), ValueError, r"positive integer\. Received: input_dim=-3"),
    (lambda: fnn.Embedding(0, 4), ValueError, r"Received: input_dim=0"),
    (lambda: fnn.Embedding(4, 0), ValueError, r"Received: output_dim=0"),
    (lambda: fnn.Embedding(2**31, 4), ValueError, r"below 2\*\*31\. Received: input_dim="),
    (lambda: fnn.Embedding(4, 2**31), ValueError, r"below 2\*\*31\. Received: output_dim="),
    (lambda: fnn.Embedding(4.0, 4), TypeError, r"input_dim must be an integer"),
    (lambda: fnn.Embedding("10", 4), TypeError, r"input_dim must be an integer"),
    (lambda: fnn.Embedding(True, 4), TypeError, r"input_dim must be an integer"),
    (lambda: fnn.Embedding(4, None), TypeError, r"output_dim must be an integer"),
    (lambda: fnn.Sequential([fnn.Embedding(4, 2, mask_zero=True)], input_shape=(3, 2)),
     ValueError, r"mask_zero=True marks the padded steps of sequences of ids"),
    (lambda: fnn.Embedding(4, 2, mask_zero="no"), TypeError, r"mask_zero"),
    (lambda: fnn.Embedding(4, 2, input_length=0), ValueError, r"input_length=0"),
    (lambda: fnn.Embedding(4, 2, embeddings_initializer="nope"), ValueError,
     r"embeddings_initializer"),
    (lambda: fnn.Embedding(4, 2, embeddings_regularizer="nope"), ValueError,
     r"embeddings_regularizer"),
    (lambda: fnn.Sequential([fnn.Embedding(2**24 + 1, 2)], input_shape=(3,)), ValueError,
     r"float32.*2\*\*24.*float64.*Received: input_dim=16777217"),
    (lambda: fnn.Sequential([fnn.Embedding(5, 2, input_length=4)], input_shape=(3,)),
     ValueError, r"input_length=4"),
]


@pytest.mark.parametrize("make,exc,pattern", BAD_ARGUMENTS)
def test_bad_arguments_are_refused(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_keras_api_defaults_and_a_float64_vocabulary_above_float32s_limit():
    layer = fnn.Embedding(1000, 8)
    assert fnn.layers.LAYERS["Embedding"] is fnn.Embedding is fnn.layers.Embedding
    assert "Embedding" in fnn.__all__ and "Embedding" in fnn.layers.__all__
    model = fnn.Sequential([layer], input_shape=(2,), seed=0)
    (table,) = layer.get_weights()
    assert layer.name == "embedding" and table.shape == (1000, 8) and table.dtype == np.float32
    assert -0.05 <= table.min() < -0.04 and 0.04 < table.max() < 0.05   # Keras' "uniform"
    assert model.count_params() == 8000 and layer.embeddings is layer._weights[0]
    assert type(layer.embeddings_initializer).__name__ == "RandomUniform"
    # the float32 refusal is a build-time one: float64 takes the same vocabulary size
    big = fnn.Embedding(2**24 + 1, 2)
    assert big.build((3,), np.dtype("float64")) == (3, 2)
    ok = fnn.Sequential([fnn.Embedding(5, 2, input_length=3)], input_shape=(3,))
    assert ok.output_shape == (3, 2)


def _sequences(n=300, steps=5, vocab=12, seed=0):
    """Label: which of three id groups the first id falls in (a rule the embedding learns)."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, vocab, (n, steps))
    return X, X[:, 0] % 3


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_embedding_flatten_dense_learns(backend):
    X, y = _sequences()
    model = fnn.Sequential([fnn.Embedding(12, 6), fnn.Flatten(),
                            fnn.Dense(3, activation="softmax")], input_shape=(5,), seed=0,
                           backend=backend)
    model.compile("cross_entropy", fnn.Adam(learning_rate=0.02), metrics=["accuracy"])
    history = model.fit(X, y, epochs=15, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert model.evaluate(X, y)["accuracy"] > 0.9


def test_both_backends_train_to_the_same_weights():
    X, y = _sequences(n=64)
    weights = []
    for backend in BACKENDS:
        model = fnn.Sequential([fnn.Embedding(12, 6, embeddings_regularizer=fnn.regularizers.l2(
            1e-3)), fnn.Flatten(), fnn.Dense(3, activation="softmax")], input_shape=(5,),
            seed=3, dtype="float64", backend=backend)
        model.compile("cross_entropy", fnn.SGD(lr=0.1, momentum=0.9))
        model.fit(X, y, epochs=3, batch_size=16, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_finite_difference_gradient_of_the_table(backend):
    """L = sum(G * model(x)) through Embedding -> Dense (per step) -> Flatten -> Dense, float64:
    dL/d(embeddings) from backward against central differences, for used and unused rows."""
    rng = np.random.default_rng(9)
    model = fnn.Sequential([fnn.Embedding(7, 3), fnn.Dense(4, activation="tanh"),
                            fnn.Flatten(), fnn.Dense(2)], input_shape=(4,), seed=2,
                           dtype="float64", backend=backend)
    X = rng.integers(0, 6, (5, 4))                                   # row 6 unused
    X[:, 1] = 2                                                      # a repeated row
    G = rng.standard_normal((5, 2))
    model.zero_grad()
    model.forward(X, training=True)
    model.backward(G)
    analytic = model.grads[0].copy()
    weights = model.get_weights()
    numeric = np.zeros_like(weights[0])
    eps = 1e-6
    for idx in np.ndindex(*weights[0].shape):
        total = []
        for sign in (1, -1):
            w = [a.copy() for a in weights]
            w[0][idx] += sign * eps
            model.set_weights(w)
            total.append(np.sum(G * model.predict(X)))
        numeric[idx] = (total[0] - total[1]) / (2 * eps)
    model.set_weights(weights)
    assert not analytic[6].any() and np.abs(analytic[2]).max() > 1e-3
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_config_round_trip():
    layer = fnn.Embedding(30, 4, embeddings_initializer=fnn.initializers.RandomNormal(
        stddev=0.1, seed=4), embeddings_regularizer="l2", input_length=6, name="tokens",
        trainable=False, mask_zero=True)
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["class"] == "Embedding" and config["input_dim"] == 30
    back = layer_from_config(config)
    assert back.get_config() == config and repr(back) == "Embedding(30, 4)"
    for attr in ("input_dim", "output_dim", "input_length", "name", "trainable", "mask_zero"):
        assert getattr(back, attr) == getattr(layer, attr)
    default = fnn.Embedding(5, 2).get_config()
    assert default["embeddings_initializer"]["class_name"] == "RandomUniform"
    assert "embeddings_regularizer" not in default and "input_length" not in default
    assert layer_from_config(default).get_config() == default


def _functional(backend="numpy"):
    ids = fnn.Input((6,))
    h = fnn.Flatten()(fnn.Embedding(20, 3, name="emb")(ids))
    model = fnn.Model(ids, fnn.Dense(2, activation="softmax", name="head")(h), seed=0,
                      backend=backend)
    return model.compile("cross_entropy", fnn.Adam(learning_rate=0.01))


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_file_round_trip(backend, tmp_path):
    rng = np.random.default_rng(10)
    X, y = rng.integers(0, 20, (24, 6)), rng.integers(0, 2, 24)
    seq = fnn.Sequential([fnn.Embedding(20, 3), fnn.Flatten(), fnn.Dense(2, activation="softmax")],
                         input_shape=(6,), seed=0, dtype="float64", backend=backend)
    seq.compile("cross_entropy", fnn.SGD(lr=0.05))
    for model in (seq, _functional(backend)):
        model.fit(X, y, epochs=2, batch_size=8, verbose=0)
        model.save(tmp_path / "m.fnn")
        assert parse((tmp_path / "m.fnn").read_bytes())[0] == 2
        loaded = fnn.load(tmp_path / "m.fnn")
        assert [w.tobytes() for w in loaded.get_weights()] == \
               [w.tobytes() for w in model.get_weights()]
        assert loaded.predict(X).tobytes() == model.predict(X).tobytes()
        assert loaded.train_on_batch(X, y) == model.train_on_batch(X, y)


HOSTILE = {
    "negative_input_dim": ({"input_dim": -3}, r"input_dim=-3"),
    "zero_output_dim": ({"output_dim": 0}, r"output_dim=0"),
    "huge_dims": ({"input_dim": 2**24, "output_dim": 2**31 - 1},
                  r"'embeddings' would have shape \(16777216, 2147483647\).*over the limit"),
    "over_2_31": ({"input_dim": 2**31}, r"below 2\*\*31"),
    "float32_limit": ({"input_dim": 2**25}, r"2\*\*24"),
    "mask_zero": ({"mask_zero": "yes"}, r"mask_zero"),
    "float_dim": ({"input_dim": 20.0}, r"must be an integer"),
    "unknown_argument": ({"kernel_size": 3}, r"kernel_size"),
    "bad_initializer": ({"embeddings_initializer": {"class_name": "Nope", "config": {}}},
                        r"Nope"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_embedding_configs_are_refused_before_allocation(name):
    change, pattern = HOSTILE[name]
    blob = model_to_bytes(_functional())
    _, header, start = parse(blob)
    header = copy.deepcopy(header)
    (entry,) = [e for e in header["model"]["layers"] if e["config"]["class"] == "Embedding"]
    entry["config"].update(change)
    with memory_cap():
        with pytest.raises(ValueError, match="not a valid fastnn model file") as info:
            model_from_bytes(build(header, blob[start:], version=2))
    assert info.match(pattern), str(info.value)
