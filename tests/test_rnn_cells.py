"""RNN(cell) with SimpleRNNCell, LSTMCell, GRUCell and StackedRNNCells: Keras 3 itself as the
oracle (same weights, masks, go_backwards, return_state), finite differences through models
with initial and returned states on both backends, compiled = NumPy, files, bad arguments."""

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients

CELL = {"simple": fnn.SimpleRNNCell, "lstm": fnn.LSTMCell, "gru": fnn.GRUCell}
LAYER = {"simple": fnn.SimpleRNN, "lstm": fnn.LSTM, "gru": fnn.GRU}
STACKS = [("lstm",), ("gru",), ("simple",), ("lstm", "gru"), ("gru", "simple", "lstm")]


@pytest.fixture(scope="module")
def keras(keras64):
    return keras64


def _cells(kinds, units=(5, 4, 3), **kwargs):
    return [CELL[k](u, **kwargs) for k, u in zip(kinds, units)]


def _padded_ids(rng, n, T, vocab):
    ids = rng.integers(1, vocab, (n, T))
    for i, length in enumerate([T, 3, 1, T - 2, 0][:n]):
        ids[i, length:] = 0                  # right padding; the last sample is all padding
    return ids


def _randomized(model, seed=5):
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])


@pytest.mark.parametrize("kinds", STACKS, ids="-".join)
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("back", [False, True])
@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_matches_keras_rnn_with_a_mask(keras, kinds, seq, back, backend):
    """Embedding(mask_zero=True) then RNN(cells): padded steps carry each cell's state over
    (with go_backwards the later cells' steps are reversed too), as Keras' RNN."""
    V, T = 11, 6
    ids = _padded_ids(np.random.default_rng(1), 5, T, V)
    model = fnn.Sequential([fnn.Embedding(V, 4, mask_zero=True),
                            fnn.RNN(_cells(kinds), return_sequences=seq, go_backwards=back)],
                           input_shape=(T,), seed=2, dtype="float64", backend=backend)
    _randomized(model)
    k = keras.layers
    kcells = [{"simple": k.SimpleRNNCell, "lstm": k.LSTMCell, "gru": k.GRUCell}[kind](u)
              for kind, u in zip(kinds, (5, 4, 3))]
    ref = keras.Sequential([keras.Input((T,)), k.Embedding(V, 4, mask_zero=True),
                            k.RNN(kcells if len(kcells) > 1 else kcells[0],
                                  return_sequences=seq, go_backwards=back)])
    ref.set_weights(model.get_weights())
    got, want = model.predict(ids), ref.predict(ids, verbose=0)
    assert got.shape == want.shape
    # Keras' numpy backend agrees with fastnn's own LSTM layer to ~3e-8 in float64 (its
    # activations are not float64-exact): the bound is Keras' own agreement, not fastnn's
    assert np.abs(got - want).max() <= 1e-6


@pytest.mark.parametrize("kinds", [("lstm", "gru"), ("simple",)], ids="-".join)
def test_return_state_matches_keras(keras, kinds):
    """Every cell's final states, flat, in order (Keras 3 nests an LSTM cell's [h, c])."""
    T = 5
    x = np.random.default_rng(3).normal(size=(4, T, 3))
    inp = fnn.Input((T, 3))
    outs = fnn.RNN(_cells(kinds), return_state=True)(inp)
    model = fnn.Model(inp, outs, seed=1, dtype="float64")
    _randomized(model)
    k = keras.layers
    kcells = [{"simple": k.SimpleRNNCell, "lstm": k.LSTMCell, "gru": k.GRUCell}[kind](u)
              for kind, u in zip(kinds, (5, 4))]
    kin = keras.Input((T, 3))
    kout = keras.tree.flatten(k.RNN(kcells if len(kcells) > 1 else kcells[0],
                                    return_state=True)(kin))
    ref = keras.Model(kin, kout)
    ref.set_weights(model.get_weights())
    got, want = model.predict(x), ref.predict(x, verbose=0)
    assert len(got) == len(want) == 1 + sum(2 if kd == "lstm" else 1 for kd in kinds)
    for g, w in zip(got, want):
        assert np.abs(g - w).max() <= 1e-6


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_one_cell_is_its_layer_and_a_stack_is_the_chain(backend):
    """RNN(LSTMCell(u)) computes LSTM(u) (the same kernels, bitwise), and a stack computes the
    chain of layers that return sequences, forward and backward."""
    x = np.random.default_rng(4).normal(size=(3, 7, 2)).astype(np.float32)
    for cells, layers in (
            ([fnn.LSTMCell(6)], [fnn.LSTM(6)]),
            ([fnn.GRUCell(5), fnn.SimpleRNNCell(3, activation="relu")],
             [fnn.GRU(5, return_sequences=True), fnn.SimpleRNN(3, activation="relu")])):
        a = fnn.Sequential([fnn.RNN(cells)], input_shape=(7, 2), seed=0, backend=backend)
        b = fnn.Sequential(layers, input_shape=(7, 2), seed=0, backend=backend)
        _randomized(a)
        b.set_weights(a.get_weights())
        ya, yb = a.forward(x, training=True), b.forward(x, training=True)
        assert np.array_equal(ya, yb)
        a.zero_grad(), b.zero_grad()
        R = np.random.default_rng(5).normal(size=ya.shape).astype(np.float32)
        assert np.array_equal(a.backward(R), b.backward(R))
        for ga, gb in zip(a.grads, b.grads):
            assert np.array_equal(ga, gb)


def _states_model(kinds, back, backend, seq=True):
    """x and every cell's initial state in; the sequence and every final state out."""
    T, F = 4, 3
    cells = _cells(kinds, units=(3, 2, 2))
    n_states = sum(2 if k == "lstm" else 1 for k in kinds)
    sizes = [c.units for c in cells for _ in range(2 if isinstance(c, fnn.LSTMCell) else 1)]
    inp = fnn.Input((T, F))
    states = [fnn.Input((u,)) for u in sizes]
    outs = fnn.RNN(cells, return_sequences=seq, return_state=True, go_backwards=back)(
        inp, initial_state=states)
    model = fnn.Model([inp, *states], outs, seed=3, dtype="float64", backend=backend)
    assert len(states) == n_states
    rng = np.random.default_rng(6)
    xs = [rng.normal(size=(2, T, F))] + [rng.normal(size=(2, u)) for u in sizes]
    return model, xs


@pytest.mark.parametrize("kinds", [("lstm",), ("gru", "lstm"), ("simple", "gru", "lstm")],
                         ids="-".join)
@pytest.mark.parametrize("back", [False, True])
@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_gradients_by_finite_differences(kinds, back, backend):
    """Every weight, the sequence and every initial state, with every returned output (the
    sequence and each cell's final states) in the loss."""
    model, xs = _states_model(kinds, back, backend)
    _randomized(model)
    outs = model.forward(xs, training=True)
    rng = np.random.default_rng(7)
    R = [rng.normal(size=o.shape) for o in outs]

    class Weighted:          # check_model_gradients weighs one output: sum them here
        def __getattr__(self, name):
            return getattr(model, name)

        def forward(self, x, training):
            return np.concatenate([o.reshape(len(o), -1) for o in
                                   model.forward(x, training=training)], axis=1)

        def backward(self, dy):
            parts, i = [], 0
            for r in R:
                w = r[0].size
                parts.append(dy[:, i:i + w].reshape(r.shape))
                i += w
            return model.backward(parts)

    flat_R = np.concatenate([r.reshape(len(r), -1) for r in R], axis=1)
    check_model_gradients(Weighted(), xs, flat_R, what=(kinds, back, backend))


def test_compiled_equals_numpy_with_dropout_and_states():
    """The same training passes (dropout masks drawn from the same stream) on both backends."""
    x = np.random.default_rng(8).normal(size=(6, 5, 3))
    y = np.random.default_rng(9).normal(size=(6, 2))
    runs = []
    for backend in ("numpy", "fast"):
        model = fnn.Sequential([fnn.RNN([fnn.LSTMCell(4, dropout=0.3, recurrent_dropout=0.2),
                                         fnn.GRUCell(2, dropout=0.1)])],
                               input_shape=(5, 3), seed=4, dtype="float64", backend=backend)
        model.compile("mse", optimizer=fnn.SGD(0.1))
        for _ in range(3):
            model.train_on_batch(x, y)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        assert np.abs(a - b).max() <= 1e-12


def test_saved_and_loaded_with_the_dropout_stream(tmp_path):
    model = fnn.Sequential([fnn.RNN(fnn.StackedRNNCells(
        [fnn.LSTMCell(4, recurrent_dropout=0.25, seed=3), fnn.SimpleRNNCell(2)]),
        return_sequences=True, go_backwards=True)], input_shape=(5, 3), seed=1)
    model.compile("mse", optimizer="sgd")
    x = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    y = np.zeros((4, 5, 2), np.float32)
    model.train_on_batch(x, y)
    path = str(tmp_path / "rnn.fnn")
    model.save(path)
    again = fnn.load(path)
    assert again.layers[0].get_config() == model.layers[0].get_config()
    assert np.array_equal(again.predict(x), model.predict(x))
    again.compile("mse", optimizer="sgd")
    model.train_on_batch(x, y), again.train_on_batch(x, y)     # the same next masks
    for a, b in zip(model.get_weights(), again.get_weights()):
        assert np.array_equal(a, b)
    config = model.layers[0].get_config()
    assert config["cell"]["class_name"] == "StackedRNNCells"
    assert [c["class_name"] for c in config["cell"]["config"]["cells"]] == [
        "LSTMCell", "SimpleRNNCell"]


def test_learns_the_sign_of_a_running_sum():
    """A stacked RNN tells whether a sequence of 8 numbers sums above 0 (held out)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 8, 1)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
    model = fnn.Sequential([fnn.RNN([fnn.GRUCell(8), fnn.LSTMCell(8)]),
                            fnn.Dense(2, activation="softmax")], input_shape=(8, 1), seed=0)
    model.compile("cross_entropy", optimizer=fnn.Adam(0.01), metrics=["accuracy"])
    model.fit(x[:1000], y[:1000], epochs=15, batch_size=32, verbose=0)
    assert model.evaluate(x[1000:], y[1000:])["accuracy"] >= 0.95


class PythonCell:
    state_size = 4

    def call(self, inputs, states):
        return inputs, states


@pytest.mark.parametrize("make,exc,pattern", [
    (lambda: fnn.RNN(PythonCell()), ValueError, "cannot run a cell written in Python"),
    (lambda: fnn.RNN(fnn.LSTM(3)), ValueError, "Received: cell=.*LSTM"),
    (lambda: fnn.RNN([]), ValueError, "non-empty list of cells"),
    (lambda: fnn.RNN([fnn.LSTMCell(3), "gru"]), ValueError, "Received: cell='gru'"),
    (lambda: fnn.RNN(fnn.LSTMCell(3), stateful="yes"), TypeError, "stateful"),
    (lambda: fnn.RNN(fnn.LSTMCell(3), unroll="yes"), TypeError, "unroll"),
    (lambda: fnn.LSTMCell(3, return_sequences=True), TypeError, "argument of RNN"),
    (lambda: fnn.LSTMCell(0), ValueError, "units"),
    (lambda: fnn.GRUCell(3, dropout=1.5), ValueError, "dropout"),
    (lambda: fnn.SimpleRNNCell(3, activation="softmax"), ValueError, "activation"),
    (lambda: fnn.layers.layer_from_config({"class": "RNN", "cell": {"class_name": "Cell",
                                                                   "config": {}}}),
     ValueError, "unknown RNN cell class 'Cell'"),
    (lambda: fnn.layers.layer_from_config({"class": "RNN", "cell": [1]}), ValueError,
     "'cell' must be a cell config"),
    (lambda: fnn.layers.layer_from_config({"class": "RNN", "cell": {
        "class_name": "StackedRNNCells", "config": {"cells": 3}}}), ValueError,
     "'cells' must be a list"),
    (lambda: fnn.layers.layer_from_config({"class": "RNN", "state": [None], "cell": {
        "class_name": "StackedRNNCells", "config": {"cells": [
            {"class_name": "GRUCell", "config": {"units": 2}}] * 2}}}), ValueError,
     "'state' must be a list of 2"),
])
def test_bad_arguments_are_refused_by_name(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_wrong_initial_states_are_refused_by_name():
    inp = fnn.Input((4, 3))
    with pytest.raises(ValueError, match="initial_state must be 3 tensors"):
        fnn.RNN([fnn.LSTMCell(3), fnn.GRUCell(2)])(inp, initial_state=[fnn.Input((3,))])
    with pytest.raises(ValueError, match="initial_state must be"):
        fnn.RNN([fnn.GRUCell(2)])(inp, initial_state=[fnn.Input((5,))])


@pytest.mark.parametrize("stacked", [False, True])
def test_load_weights_written_by_keras(keras, tmp_path, stacked):
    """Keras' .weights.h5 of RNN(cell) and RNN(StackedRNNCells), two cells of one class among
    them (lstm_cell, lstm_cell_1), read into the same fastnn model: the same outputs."""
    pytest.importorskip("h5py")
    k = keras.layers
    T = 5
    if stacked:
        kcell = [k.LSTMCell(4), k.GRUCell(3), k.LSTMCell(2)]
        cells = [fnn.LSTMCell(4), fnn.GRUCell(3), fnn.LSTMCell(2)]
    else:
        kcell, cells = k.SimpleRNNCell(3), fnn.SimpleRNNCell(3)
    ref = keras.Sequential([keras.Input((T, 2)), k.RNN(kcell), k.Dense(1)])
    rng = np.random.default_rng(0)
    ref.set_weights([rng.normal(0, 0.5, w.shape) for w in ref.get_weights()])
    path = str(tmp_path / "k.weights.h5")
    ref.save_weights(path)
    model = fnn.Sequential([fnn.RNN(cells), fnn.Dense(1)], input_shape=(T, 2),
                           dtype="float64")
    model.load_weights(path)
    x = rng.normal(size=(3, T, 2))
    assert np.abs(model.predict(x) - ref.predict(x, verbose=0)).max() <= 1e-6


@pytest.mark.parametrize("back", [False, True])
def test_onnx_export_matches_onnxruntime(tmp_path, back):
    """A stack of three cells (go_backwards: the later cells go on in the reversed order)
    with every final state returned, run by onnxruntime."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from fastnn import onnx as fonnx
    inp = fnn.Input((6, 3))
    outs = fnn.RNN([fnn.LSTMCell(4), fnn.GRUCell(3), fnn.SimpleRNNCell(2)],
                   return_sequences=True, return_state=True, go_backwards=back)(inp)
    model = fnn.Model(inp, outs, seed=0)       # onnxruntime's RNN op has no float64 kernel
    _randomized(model)
    path = str(tmp_path / "m.onnx")
    fonnx.export(model, path)
    x = np.random.default_rng(1).normal(size=(2, 6, 3)).astype(np.float32)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})
    want = model.predict(x)
    assert len(got) == len(want) == 5
    for g, w in zip(got, want):
        assert g.shape == w.shape and np.abs(g - w).max() <= 2e-6


def test_the_readme_snippet_runs(capsys):
    import pathlib
    import re
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    section = text.split("### Cells: `RNN(cell)`\n", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "[(3, 64), (16, 64), (64,)]"


@pytest.mark.parametrize("make", [lambda: fnn.LSTM(5, return_state=True),
                                  lambda: fnn.RNN([fnn.GRUCell(4), fnn.LSTMCell(5)],
                                                  return_state=True)])
@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_a_model_reading_one_of_several_outputs_builds_and_trains(make, backend):
    """Input -> layer with return_state -> the pick of its last h -> Dense is a line of nodes,
    but not a Sequential chain (it was refused as one, with advice to use fastnn.Model). The
    last h is the last output, so it trains as the model without return_state."""
    x = np.random.default_rng(0).normal(size=(6, 7, 3))
    y = np.random.default_rng(1).normal(size=(6, 2))
    inp = fnn.Input((7, 3))
    outs = make()(inp)
    h_last = outs[-2]                       # the last cell's h (then its c)
    picked = fnn.Model(inp, fnn.Dense(2)(h_last), seed=0, dtype="float64", backend=backend)
    layer = make()
    if isinstance(layer, fnn.LSTM):
        plain_layer = fnn.LSTM(5)
    else:
        plain_layer = fnn.RNN([fnn.GRUCell(4), fnn.LSTMCell(5)])
    plain = fnn.Sequential([plain_layer, fnn.Dense(2)], input_shape=(7, 3), seed=0,
                           dtype="float64", backend=backend)
    plain.set_weights(picked.get_weights())
    for m in (picked, plain):
        m.compile("mse", optimizer=fnn.SGD(0.1))
        for _ in range(2):
            m.train_on_batch(x, y)
    for a, b in zip(picked.get_weights(), plain.get_weights()):
        assert np.abs(a - b).max() <= 1e-13
