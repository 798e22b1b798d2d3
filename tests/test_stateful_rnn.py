"""stateful=True for SimpleRNN, LSTM, GRU, RNN(cells) and Bidirectional: Keras 3 itself as the
oracle over consecutive batches (with masks, go_backwards, Bidirectional and stacked cells),
PyTorch float64 autograd for the truncated gradients (the carried state is a constant), finite
differences with the states replayed, compiled = NumPy over training, threads bitwise,
reset_states, batch-size errors, files and ONNX."""

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients

LAYER = {"simple": fnn.SimpleRNN, "lstm": fnn.LSTM, "gru": fnn.GRU}
CELL = {"simple": fnn.SimpleRNNCell, "lstm": fnn.LSTMCell, "gru": fnn.GRUCell}
N, T, F = 4, 5, 3


@pytest.fixture(scope="module")
def keras(keras64):
    return keras64


def _randomized(model, seed=5):
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])


def _batches(k=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(N, T, F)) for _ in range(k)]


def _keras_layer(keras, kind, **kwargs):
    k = keras.layers
    return {"simple": k.SimpleRNN, "lstm": k.LSTM, "gru": k.GRU}[kind](6, **kwargs)


# -------------------------------------------------------------------------- Keras 3 parity

@pytest.mark.parametrize("kind", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("back", [False, True])
@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_consecutive_batches_match_keras(keras, kind, seq, back, backend):
    """Each batch starts from the last one's final states, as Keras' stateful layers; after
    reset_states both start from zeros again."""
    model = fnn.Sequential([LAYER[kind](6, return_sequences=seq, go_backwards=back,
                                        stateful=True)],
                           input_shape=(T, F), seed=1, dtype="float64", backend=backend)
    _randomized(model)
    ref = keras.Sequential([keras.Input(batch_shape=(N, T, F)),
                            _keras_layer(keras, kind, return_sequences=seq, go_backwards=back,
                                         stateful=True)])
    ref.set_weights(model.get_weights())
    outs = []
    for x in _batches():
        got, want = model.predict(x), ref.predict_on_batch(x)
        outs.append(got)
        # Keras' numpy backend agrees with fastnn's non-stateful layers to ~3e-8 in float64
        # (its activations are not float64-exact): the bound is Keras' own agreement
        assert np.abs(got - want).max() <= 1e-6
    assert np.abs(outs[1] - outs[0]).max() > 1e-3       # the states did carry over
    model.reset_states()
    ref.layers[0].reset_states()
    x = _batches(1, seed=9)[0]
    assert np.abs(model.predict(x) - ref.predict_on_batch(x)).max() <= 1e-6


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_masked_batches_match_keras(keras, backend):
    """A padded step carries the state over, and the carried state is the last real step's."""
    vocab = 9
    rng = np.random.default_rng(3)
    model = fnn.Sequential([fnn.Embedding(vocab, F, mask_zero=True),
                            fnn.LSTM(6, stateful=True)],
                           input_shape=(T,), seed=2, dtype="float64", backend=backend)
    _randomized(model)
    k = keras.layers
    ref = keras.Sequential([keras.Input(batch_shape=(N, T)), k.Embedding(vocab, F,
                                                                         mask_zero=True),
                            k.LSTM(6, stateful=True)])
    ref.set_weights(model.get_weights())
    for length in (T, 2, 4):
        ids = rng.integers(1, vocab, (N, T))
        ids[1:, length:] = 0
        assert np.abs(model.predict(ids) - ref.predict_on_batch(ids)).max() <= 1e-6


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_bidirectional_and_stacked_cells_match_keras(keras, backend):
    k = keras.layers
    for make, kmake in (
            (lambda: fnn.Bidirectional(fnn.GRU(6, return_sequences=True, stateful=True)),
             lambda: k.Bidirectional(k.GRU(6, return_sequences=True, stateful=True))),
            (lambda: fnn.RNN([fnn.LSTMCell(5), fnn.GRUCell(4)], stateful=True),
             lambda: k.RNN([k.LSTMCell(5), k.GRUCell(4)], stateful=True))):
        model = fnn.Sequential([make()], input_shape=(T, F), seed=4, dtype="float64",
                               backend=backend)
        _randomized(model)
        ref = keras.Sequential([keras.Input(batch_shape=(N, T, F)), kmake()])
        ref.set_weights(model.get_weights())
        for x in _batches():
            assert np.abs(model.predict(x) - ref.predict_on_batch(x)).max() <= 1e-6


# -------------------------------------------------------------------------- exact invariants

@pytest.mark.parametrize("kind", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_chunks_of_a_sequence_give_the_whole_sequence_bitwise(kind, backend):
    """A sequence cut in two and fed as consecutive batches of a stateful layer gives what the
    whole sequence gives a layer that is not stateful (the same kernels, bitwise)."""
    x = np.random.default_rng(1).normal(size=(N, 2 * T, F))
    whole = fnn.Sequential([LAYER[kind](6, return_sequences=True)], input_shape=(2 * T, F),
                           seed=1, backend=backend)
    _randomized(whole)
    parts = fnn.Sequential([LAYER[kind](6, return_sequences=True, stateful=True)],
                           input_shape=(T, F), seed=1, backend=backend)
    parts.set_weights(whole.get_weights())
    got = np.concatenate([parts.predict(x[:, :T]), parts.predict(x[:, T:])], axis=1)
    assert np.array_equal(got, whole.predict(x))


def test_predict_runs_the_stateful_layer_per_batch():
    """predict's batches of one call follow each other (the compiled inference plan, which
    does not carry states, is not used)."""
    x = np.random.default_rng(2).normal(size=(2 * N, T, F)).astype(np.float32)
    model = fnn.Sequential([fnn.LSTM(6, stateful=True), fnn.Dense(2)], input_shape=(T, F),
                           seed=3)
    first = model.predict(x[:N])
    second = model.predict(x[N:])
    model.reset_states()
    both = model.predict(x, batch_size=N)
    assert np.array_equal(both, np.concatenate([first, second]))


# -------------------------------------------------------------------------- gradients

def _torch_lstm_grads(torch, W, U, b, xs, R):
    """PyTorch float64 autograd of sum(h_last * R) for the last of batches ``xs`` run one
    after the other, each from the last one's final states, detached (truncated)."""
    units = U.shape[0]
    lstm = torch.nn.LSTM(W.shape[0], units, batch_first=True).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(W.T))
        lstm.weight_hh_l0.copy_(torch.tensor(U.T))
        lstm.bias_ih_l0.copy_(torch.tensor(b))
        lstm.bias_hh_l0.zero_()
    state = None
    for x in xs[:-1]:
        with torch.no_grad():
            _, state = lstm(torch.tensor(x), state)
    out, _ = lstm(torch.tensor(xs[-1]), state)
    (out[:, -1] * torch.tensor(R)).sum().backward()
    return [lstm.weight_ih_l0.grad.numpy().T, lstm.weight_hh_l0.grad.numpy().T,
            lstm.bias_ih_l0.grad.numpy()]


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_truncated_gradients_match_torch(backend):
    torch = pytest.importorskip("torch")
    model = fnn.Sequential([fnn.LSTM(6, stateful=True)], input_shape=(T, F), seed=1,
                           dtype="float64", backend=backend)
    _randomized(model)
    xs = _batches(3, seed=4)
    R = np.random.default_rng(6).normal(size=(N, 6))
    for x in xs[:-1]:
        model.forward(x, training=True)
    model.zero_grad()
    model.forward(xs[-1], training=True)
    model.backward(R)
    want = _torch_lstm_grads(torch, *model.get_weights(), xs, R)
    for g, w in zip(model.grads, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_gradients_by_finite_differences_from_carried_states(kind, backend):
    model = fnn.Sequential([LAYER[kind](4, return_sequences=True, stateful=True),
                            fnn.Dense(2)], input_shape=(T, F), seed=2, dtype="float64",
                           backend=backend)
    _randomized(model)
    first, x = _batches(2, seed=7)
    model.predict(first)
    held = model.layers[0].states
    assert held is not None and np.abs(held[0]).max() > 1e-3
    R = np.random.default_rng(8).normal(size=(N, T, 2))
    check_model_gradients(model, x, R,
                          before_pass=lambda: model.layers[0].reset_states(held))


def _train(backend, threads=None, steps=4):
    model = fnn.Sequential([fnn.GRU(8, return_sequences=True, stateful=True, dropout=0.2,
                                    recurrent_dropout=0.1, seed=3),
                            fnn.LSTM(5, stateful=True), fnn.Dense(2)],
                           input_shape=(T, F), seed=5, dtype="float64", backend=backend)
    model.compile(loss="mse", optimizer=fnn.Adam(0.01))
    rng = np.random.default_rng(9)
    with fnn.threads(threads) if threads else _nothing():
        for _ in range(steps):
            model.train_on_batch(rng.normal(size=(N, T, F)), rng.normal(size=(N, 2)))
    return model


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_compiled_training_equals_numpy():
    fast, ref = _train("fast"), _train("numpy")
    for a, b in zip(fast.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for layer_a, layer_b in zip(fast.layers[:2], ref.layers[:2]):
        for a, b in zip(layer_a.states, layer_b.states):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_one_and_two_threads_train_bitwise_alike():
    one, two = _train("fast", threads=1), _train("fast", threads=2)
    for a, b in zip(one.get_weights() + one.layers[1].states,
                    two.get_weights() + two.layers[1].states):
        assert np.array_equal(a, b)


def test_fit_carries_states_across_batches_and_learns():
    """A running sum cut into chunks: only a layer that carries its state across batches can
    know the sum so far (the target), so the stateful layer learns it and the other cannot.
    In float64: in float32 the outcome of 150 epochs depends on the micro-kernel's rounding
    (0.018 to 0.047 over FASTNN_KERNEL=avx512, generic, avx2), in float64 it does not."""
    rng = np.random.default_rng(0)
    chunks, steps = 8, 4
    x = rng.choice([-1.0, 1.0], size=(32, chunks * steps, 1))
    target = np.cumsum(x[:, :, 0], axis=1)[:, steps - 1::steps] / 8.0
    # batch i of an epoch is chunk i of every sequence
    X = np.concatenate([x[:, c * steps:(c + 1) * steps] for c in range(chunks)])
    Y = np.concatenate([target[:, c:c + 1] for c in range(chunks)])
    errors = {}
    for stateful in (True, False):
        model = fnn.Sequential([fnn.SimpleRNN(16, stateful=stateful), fnn.Dense(1)],
                               input_shape=(steps, 1), seed=1, dtype="float64")
        model.compile(loss="mse", optimizer=fnn.Adam(0.01))

        class Reset(fnn.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                model.reset_states()
        model.fit(X, Y, batch_size=32, epochs=150, shuffle=False, verbose=0,
                  callbacks=[Reset()])
        model.reset_states()
        errors[stateful] = float(np.mean((model.predict(X, batch_size=32) - Y) ** 2))
    assert errors[True] < 0.03 and errors[True] < 0.2 * errors[False], errors


# -------------------------------------------------------------------------- the API

def test_reset_states_and_setting_states():
    model = fnn.Sequential([fnn.LSTM(6, stateful=True)], input_shape=(T, F), seed=1,
                           dtype="float64")
    x = _batches(1)[0]
    assert model.layers[0].states is None
    fresh = model.predict(x)
    model.predict(x)
    h, c = model.layers[0].states
    assert h.shape == c.shape == (N, 6)
    model.reset_states()
    assert model.layers[0].states is None
    assert np.array_equal(model.predict(x), fresh)
    # set states by hand: the same as initial_state on a layer that is not stateful
    inp = fnn.Input((T, F))
    s0, s1 = fnn.Input((6,)), fnn.Input((6,))
    plain = fnn.Model([inp, s0, s1], fnn.LSTM(6)(inp, initial_state=[s0, s1]), seed=1,
                      dtype="float64")
    plain.set_weights(model.get_weights())
    model.layers[0].reset_states([h, c])
    assert np.array_equal(model.predict(x), plain.predict([x, h, c]))
    # a batch of another size after a reset
    model.reset_states()
    assert model.predict(x[:2]).shape == (2, 6)


def test_a_batch_of_another_size_is_refused_by_name():
    model = fnn.Sequential([fnn.GRU(3, stateful=True)], input_shape=(T, F), seed=0)
    model.predict(np.zeros((4, T, F)))
    with pytest.raises(ValueError, match="stateful.*batches of 4.*has 3.*reset_states"):
        model.predict(np.zeros((3, T, F)))
    model.compile(loss="mse", optimizer="sgd")
    with pytest.raises(ValueError, match="batches of 4.*has 2"):
        model.fit(np.zeros((6, T, F)), np.zeros((6, 3)), batch_size=4, shuffle=False,
                  verbose=0)


@pytest.mark.parametrize("call,pattern", [
    (lambda layer: layer.reset_states([np.zeros((4, 6))]), r"2 arrays \[h, c\]"),
    (lambda layer: layer.reset_states([np.zeros((4, 5)), np.zeros((4, 6))]),
     r"states\[0\] must have 6 features"),
    (lambda layer: layer.reset_states([np.zeros((4, 6)), np.zeros((3, 6))]),
     "one batch size"),
    (lambda layer: layer.reset_states([np.full((4, 6), np.nan), np.zeros((4, 6))]),
     r"states\[0\]"),
    (lambda layer: layer.reset_states([np.zeros(6), np.zeros(6)]), r"states\[0\] must be 2-D"),
])
def test_bad_states_are_refused_by_name(call, pattern):
    model = fnn.Sequential([fnn.LSTM(6, stateful=True)], input_shape=(T, F), seed=0)
    with pytest.raises(ValueError, match=pattern):
        call(model.layers[0])


def test_states_of_a_layer_that_is_not_stateful_or_not_built_are_refused():
    with pytest.raises(ValueError, match="not stateful"):
        fnn.Sequential([fnn.LSTM(2)], input_shape=(T, F)).layers[0].reset_states(
            [np.zeros((1, 2)), np.zeros((1, 2))])
    with pytest.raises(ValueError, match="build the model"):
        fnn.LSTM(2, stateful=True).reset_states([np.zeros((1, 2)), np.zeros((1, 2))])
    with pytest.raises(TypeError, match="stateful"):
        fnn.LSTM(2, stateful="yes")
    with pytest.raises(TypeError, match="does not take stateful"):
        fnn.LSTMCell(2, stateful=True)
    with pytest.raises(ValueError, match="stateful"):
        fnn.Bidirectional(fnn.LSTM(2, stateful=True),
                          backward_layer=fnn.LSTM(2, go_backwards=True))


def _stateful_model():
    inp = fnn.Input((T, F))
    h = fnn.Bidirectional(fnn.LSTM(4, stateful=True, return_sequences=True))(inp)
    h = fnn.RNN([fnn.GRUCell(3), fnn.SimpleRNNCell(2)], stateful=True)(h)
    return fnn.Model(inp, fnn.Dense(2)(h), seed=1)


def test_files_keep_the_carried_states(tmp_path):
    """As Keras' files keep its states: a loaded model goes on from where the saved one was
    (every direction and cell), and one saved before any batch starts from zeros."""
    model = _stateful_model()
    x, x2 = [b.astype(np.float32) for b in _batches(2)]
    path = str(tmp_path / "zero.fnn")
    model.save(path)
    assert all(layer.states is None for layer in fnn.load(path).layers[0:2])
    model.predict(x)
    model.save(path)
    loaded = fnn.load(path)
    for a, b in zip(loaded.layers[0:2], model.layers[0:2]):
        assert a.stateful and all(np.array_equal(s, t) for s, t in zip(a.states, b.states))
    assert np.array_equal(loaded.predict(x2), model.predict(x2))
    loaded.reset_states()
    model.reset_states()
    assert np.array_equal(loaded.predict(x2), model.predict(x2))


def _forged(tmp_path, edit):
    """The saved _stateful_model's bytes with its header's state entries edited by ``edit``
    (entries, arrays) -> arrays; the file's path."""
    import json
    model = _stateful_model()
    model.predict(_batches(1)[0].astype(np.float32))
    blob = bytearray(fnn.io.model_to_bytes(model))
    from fastnn.io import _PREAMBLE
    _, _, size = _PREAMBLE.unpack_from(blob, 0)
    header = json.loads(bytes(blob[_PREAMBLE.size:_PREAMBLE.size + size]))
    edit(header["arrays"])
    new = json.dumps(header, separators=(",", ":")).encode().ljust(size)    # JSON allows the pad
    assert len(new) == size
    blob[_PREAMBLE.size:_PREAMBLE.size + size] = new
    path = tmp_path / "forged.fnn"
    path.write_bytes(bytes(blob))
    return str(path)


def _entry(arrays, name):
    return next(a for a in arrays if a["name"] == name)


@pytest.mark.parametrize("edit,pattern", [
    (lambda a: _entry(a, "rnn_state/0/1").update(name="rnn_state/0/7"),
     "not states of the model"),
    (lambda a: _entry(a, "rnn_state/0/1").update(name="rnn_state/9/0"),
     "not states of the model"),
    (lambda a: a.remove(_entry(a, "rnn_state/1/1")), "needs all of"),
    (lambda a: _entry(a, "rnn_state/0/0").update(shape=[2, 8]), r"\(batch, 4\)"),
    (lambda a: _entry(a, "rnn_state/3/0").update(shape=[4, 1, 3]), r"\(batch, 2\)"),
    (lambda a: _entry(a, "rnn_state/0/0").update(dtype="<f8", shape=[2, 4]), "float32"),
])
def test_forged_state_arrays_are_refused(tmp_path, edit, pattern):
    path = _forged(tmp_path, edit)
    with pytest.raises(ValueError, match=pattern):
        fnn.load(path)


def test_nan_in_a_state_array_is_refused(tmp_path):
    model = _stateful_model()
    model.predict(_batches(1)[0].astype(np.float32))
    model.layers[0].forward_layer._carried[1][0, 0] = np.nan
    blob = fnn.io.model_to_bytes(model)
    path = tmp_path / "nan.fnn"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match="rnn_state/0/1.*NaN"):
        fnn.load(str(path))


def test_onnx_export_refuses_a_stateful_layer(tmp_path):
    pytest.importorskip("onnx")
    for layer in (fnn.LSTM(3, stateful=True), fnn.Bidirectional(fnn.GRU(3, stateful=True)),
                  fnn.RNN([fnn.SimpleRNNCell(3)], stateful=True)):
        model = fnn.Sequential([layer], input_shape=(T, F), seed=0)
        with pytest.raises(ValueError, match="stateful recurrent layer has no ONNX form"):
            fnn.onnx.export(model, str(tmp_path / "m.onnx"))
