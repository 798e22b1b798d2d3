"""ConvLSTM2D(stateful=True): a sequence cut in two equals the whole sequence bitwise; Keras 3's
stateful ConvLSTM2D over consecutive batches; PyTorch float64 autograd of the truncated
gradients (a ConvLSTM written from the equations, the carried states detached); finite
differences with the carried states replayed; compiled = NumPy over training with dropout;
1 and 2 threads bitwise; predict, fit and evaluate carry the states; reset_states and setting
states; files and pickles keep them (forged state arrays refused); ONNX refuses; bad inputs
refused by name."""

import json
import pickle

import numpy as np
import pytest

import fastnn as fnn
from _finite_differences import check_model_gradients

N, T, SHAPE, FILTERS = 3, 3, (5, 4, 2), 3       # batch, steps per batch, image, filters


def _layer(**kwargs):
    kwargs.setdefault("padding", "same")
    return fnn.ConvLSTM2D(FILTERS, 3, **kwargs)


def _model(backend="fast", steps=T, dtype="float64", seed=1, head=True, **kwargs):
    layers = [_layer(**kwargs)]
    if head:
        layers += [fnn.Flatten(), fnn.Dense(2)]
    return fnn.Sequential(layers, input_shape=(steps, *SHAPE), seed=seed, dtype=dtype,
                          backend=backend)


def _randomized(model, seed=5):
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])


def _batches(k=3, seed=0, n=N, steps=T):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, steps, *SHAPE)) for _ in range(k)]


# -------------------------------------------------------------------------- exact invariants

@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("kwargs", [dict(return_sequences=True), dict(),
                                    dict(return_sequences=True, strides=2, padding="valid")])
def test_chunks_of_a_sequence_give_the_whole_sequence_bitwise(kwargs, backend):
    """A sequence cut in two and fed as consecutive batches of a stateful layer gives what the
    whole sequence gives a layer that is not stateful (the same kernels, bitwise)."""
    x = np.random.default_rng(1).normal(size=(N, 2 * T, *SHAPE))
    whole = _model(backend, steps=2 * T, head=False, **kwargs)
    _randomized(whole)
    parts = _model(backend, head=False, stateful=True, **kwargs)
    parts.set_weights(whole.get_weights())
    first, second = parts.predict(x[:, :T]), parts.predict(x[:, T:])
    want = whole.predict(x)
    if kwargs.get("return_sequences"):
        assert np.array_equal(np.concatenate([first, second], axis=1), want)
    else:
        assert np.array_equal(second, want)
    h, c = parts.layers[0].states
    assert h.shape == c.shape == (N, *parts.layers[0].state_shape)
    assert np.abs(h).max() > 1e-3 and np.abs(c).max() > 1e-3


def test_predict_and_evaluate_carry_the_states_batch_by_batch():
    x = np.random.default_rng(2).normal(size=(2 * N, T, *SHAPE)).astype(np.float32)
    model = _model(dtype="float32", stateful=True)
    first, second = model.predict(x[:N]), model.predict(x[N:])
    model.reset_states()
    both = model.predict(x, batch_size=N)
    assert np.array_equal(both, np.concatenate([first, second]))
    model.reset_states()
    fresh = model.predict(x[N:])
    assert not np.array_equal(fresh, second)       # the carried states make a difference
    model.compile(loss="mse", optimizer=fnn.SGD(0.1))
    model.reset_states()
    model.predict(x[:N])
    loss = model.evaluate(x[N:], second, batch_size=N, verbose=0)
    loss = loss["loss"] if isinstance(loss, dict) else loss
    assert loss == 0.0


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_consecutive_batches_match_keras(keras64, backend):
    """Keras 3's own stateful layer on the same weights over consecutive batches and after a
    reset (to float32's precision: its NumPy backend's convolution runs through JAX in
    float32; PyTorch is the float64 oracle below)."""
    keras = keras64
    model = _model(backend, head=False, stateful=True, return_sequences=True)
    _randomized(model)
    ref = keras.Sequential([keras.Input(batch_shape=(N, T, *SHAPE)),
                            keras.layers.ConvLSTM2D(FILTERS, 3, padding="same",
                                                    return_sequences=True, stateful=True)])
    ref.set_weights(model.get_weights())
    for x in _batches(3, seed=3):
        np.testing.assert_allclose(model.predict(x), np.asarray(ref.predict_on_batch(x)),
                                   rtol=1e-5, atol=1e-6)
    model.reset_states()
    ref.layers[0].reset_states()
    x = _batches(1, seed=4)[0]
    np.testing.assert_allclose(model.predict(x), np.asarray(ref.predict_on_batch(x)),
                               rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_truncated_gradients_match_torch(backend, go_backwards):
    """The last of three consecutive batches: outputs, every weight gradient and dL/dx against
    PyTorch float64 autograd from the carried (detached) states."""
    torch = pytest.importorskip("torch")
    from test_conv_lstm import torch_conv_lstm
    model = _model(backend, head=False, stateful=True, return_sequences=True,
                   go_backwards=go_backwards)
    _randomized(model)
    xs = _batches(3, seed=4)
    for x in xs[:-1]:
        model.forward(x, training=True)
    model.zero_grad()
    y = model.forward(xs[-1], training=True)
    R = np.random.default_rng(6).normal(size=y.shape)
    dx = model.backward(R)

    weights = [torch.tensor(w, requires_grad=True) for w in model.get_weights()]
    h = c = None
    for x in xs[:-1]:
        with torch.no_grad():
            _, h, c = torch_conv_lstm(torch.tensor(x), *weights, padding="same",
                                      go_backwards=go_backwards, h0=h, c0=c)
    xt = torch.tensor(xs[-1], requires_grad=True)
    ty, _, _ = torch_conv_lstm(xt, *weights, padding="same", go_backwards=go_backwards,
                               h0=h.detach(), c0=c.detach())
    (ty * torch.tensor(R)).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for got, want in zip(model.grads, weights):
        np.testing.assert_allclose(got, want.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_gradients_by_finite_differences_from_carried_states(backend):
    model = _model(backend, stateful=True, return_sequences=True)
    _randomized(model)
    first, x = _batches(2, seed=7)
    model.predict(first)
    held = model.layers[0].states
    assert held is not None and np.abs(held[0]).max() > 1e-3
    R = np.random.default_rng(8).normal(size=(N, 2))
    check_model_gradients(model, x, R,
                          before_pass=lambda: model.layers[0].reset_states(held))


def _train(backend, threads=None, steps=4, dtype="float64"):
    model = fnn.Sequential([_layer(return_sequences=True, stateful=True, dropout=0.2,
                                   recurrent_dropout=0.1, seed=3),
                            _layer(stateful=True), fnn.Flatten(), fnn.Dense(2)],
                           input_shape=(T, *SHAPE), seed=5, dtype=dtype, backend=backend)
    model.compile(loss="mse", optimizer=fnn.Adam(0.01))
    rng = np.random.default_rng(9)
    previous = fnn.get_num_threads()
    try:
        if threads:
            fnn.set_num_threads(threads)
        for _ in range(steps):
            model.train_on_batch(rng.normal(size=(N, T, *SHAPE)).astype(dtype),
                                 rng.normal(size=(N, 2)).astype(dtype))
    finally:
        fnn.set_num_threads(previous)
    return model


def test_compiled_training_equals_numpy():
    fast, ref = _train("fast"), _train("numpy")
    for a, b in zip(fast.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for layer_a, layer_b in zip(fast.layers[:2], ref.layers[:2]):
        for a, b in zip(layer_a.states, layer_b.states):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_and_two_threads_train_bitwise_alike(dtype):
    one, two = _train("fast", 1, dtype=dtype), _train("fast", 2, dtype=dtype)
    for a, b in zip(one.get_weights() + one.layers[0].states + one.layers[1].states,
                    two.get_weights() + two.layers[0].states + two.layers[1].states):
        assert np.array_equal(a, b)


def test_fit_carries_states_across_batches_and_learns():
    """Each batch of an epoch is the next chunk of every clip; the target is whether a bright
    frame appeared in any chunk so far: only a layer that carries its states across batches
    can know it."""
    rng = np.random.default_rng(0)
    clips, chunks, steps = 16, 4, 2
    flash = rng.integers(0, chunks * steps, clips)      # the frame of each clip's flash
    on = rng.random(clips) < 0.5
    x = rng.normal(0, 0.1, (clips, chunks * steps, 3, 3, 1))
    x[np.arange(clips)[on], flash[on]] += 1.0
    seen = np.zeros((clips, chunks))
    for c in range(chunks):
        seen[:, c] = on & (flash < (c + 1) * steps)
    X = np.concatenate([x[:, c * steps:(c + 1) * steps] for c in range(chunks)])
    Y = np.concatenate([seen[:, c:c + 1] for c in range(chunks)])
    errors = {}
    for stateful in (True, False):
        model = fnn.Sequential([fnn.ConvLSTM2D(4, 1, stateful=stateful),
                                fnn.GlobalMaxPooling2D(), fnn.Dense(1, activation="sigmoid")],
                               input_shape=(steps, 3, 3, 1), seed=1, dtype="float64")
        model.compile(loss="mse", optimizer=fnn.Adam(0.02))

        class Reset(fnn.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                model.reset_states()
        model.fit(X, Y, batch_size=clips, epochs=120, shuffle=False, verbose=0,
                  callbacks=[Reset()])
        model.reset_states()
        errors[stateful] = float(np.mean((model.predict(X, batch_size=clips) - Y) ** 2))
    assert errors[True] < 0.01 and errors[True] < 0.1 * errors[False], errors


# -------------------------------------------------------------------------- the API

def test_reset_states_and_setting_states():
    model = _model(head=False, stateful=True)
    layer = model.layers[0]
    assert layer.states is None and layer.get_config()["stateful"] is True
    x, x2 = _batches(2, seed=1)
    model.predict(x)
    h, c = layer.states
    layer.states[0][...] = 7.0          # copies: the carried states stay as they were
    assert np.array_equal(layer.states[0], h)
    after = model.predict(x2)
    # setting the states equals a functional model given them as initial_state
    inp, h0, c0 = fnn.Input((T, *SHAPE)), fnn.Input(h.shape[1:]), fnn.Input(c.shape[1:])
    given = fnn.Model([inp, h0, c0], _layer()(inp, initial_state=[h0, c0]), dtype="float64")
    given.set_weights(model.get_weights())
    assert np.array_equal(given.predict([x2, h, c]), after)
    layer.reset_states([h, c])
    assert np.array_equal(model.predict(x2), after)
    layer.reset_state()                 # Keras 3's name
    assert layer.states is None
    model.predict(x)
    model.reset_states()
    assert layer.states is None
    model.predict(x[:1])                # after a reset, any batch size
    assert layer.states[0].shape[0] == 1


def test_a_stateful_layer_given_initial_states_uses_them_and_their_gradients():
    inp, h0, c0 = fnn.Input((T, *SHAPE)), fnn.Input((*SHAPE[:2], FILTERS)), \
        fnn.Input((*SHAPE[:2], FILTERS))
    model = fnn.Model([inp, h0, c0], _layer(stateful=True)(inp, initial_state=[h0, c0]),
                      dtype="float64", seed=2)
    _randomized(model)
    x = _batches(1, seed=2)[0]
    rng = np.random.default_rng(3)
    h, c = rng.normal(size=(2, N, *SHAPE[:2], FILTERS))
    check_model_gradients(model, [x, h, c], rng.normal(size=(N, *SHAPE[:2], FILTERS)))


def test_a_batch_of_another_size_is_refused_by_name():
    model = _model(stateful=True)
    model.compile(loss="mse", optimizer=fnn.SGD(0.1))
    model.predict(_batches(1)[0])
    with pytest.raises(ValueError, match=r"conv_lstm2d is stateful: .*batches of 3 sequences, "
                                         r"and this batch has 2"):
        model.predict(_batches(1, n=2)[0])
    model.reset_states()
    x = _batches(1, n=5)[0]
    with pytest.raises(ValueError, match=r"batches of 4 sequences, and this batch has 1"):
        model.fit(x, np.zeros((5, 2)), batch_size=4, shuffle=False, verbose=0)


_H = (N, *SHAPE[:2], FILTERS)


@pytest.mark.parametrize("states,exc,pattern", [
    ([np.zeros(_H)], ValueError, r"states must be 2 arrays \[h, c\]. Received: 1\b"),
    ([np.zeros(_H)] * 3, ValueError, r"states must be 2 arrays \[h, c\]. Received: 3\b"),
    ([np.zeros(_H), np.zeros((N, 5, 4, 4))], ValueError,
     r"states\[1\] must have shape \(n, 5, 4, 3\). Received: states\[1\] with shape "
     r"\(3, 5, 4, 4\)"),
    ([np.zeros((N, 20, 3)), np.zeros(_H)], ValueError,
     r"Received: states\[0\] with shape \(3, 20, 3\)"),
    ([np.zeros(_H), np.zeros((2, *_H[1:]))], ValueError,
     r"one batch size. Received: shapes \(3, 5, 4, 3\) and \(2, 5, 4, 3\)"),
    ([np.zeros((0, *_H[1:]))] * 2, ValueError,
     r"at least one sample. Received: states\[0\] with shape \(0, 5, 4, 3\)"),
    ([np.zeros(_H, complex), np.zeros(_H)], TypeError,
     r"states\[0\] must hold real numbers. Received: states\[0\] with dtype complex128"),
    ([np.zeros(_H), np.full(_H, "a")], TypeError, r"Received: states\[1\] with dtype <U1"),
    ([np.full(_H, np.nan), np.zeros(_H)], ValueError,
     r"states\[0\] must be finite.*Received: states\[0\]\[0, 0, 0, 0\]=nan"),
    ([np.zeros(_H), np.full(_H, np.inf)], ValueError,
     r"states\[1\] must be finite.*=inf"),
])
def test_bad_states_are_refused_by_name(states, exc, pattern):
    layer = _model(stateful=True).layers[0]
    with pytest.raises(exc, match=pattern):
        layer.reset_states(states)
    assert layer.states is None


def test_states_of_a_layer_that_is_not_stateful_or_not_built_are_refused():
    with pytest.raises(ValueError, match=r"not stateful \(stateful=False\).*initial_state"):
        _model().layers[0].reset_states([np.zeros(_H)] * 2)
    with pytest.raises(ValueError, match="build the model before setting its states"):
        _layer(stateful=True).reset_states([np.zeros(_H)] * 2)
    with pytest.raises(TypeError, match=r"stateful must be True or False. Received: "
                                        r"stateful=1\b"):
        _layer(stateful=1)


def test_onnx_export_refuses_it_by_name(tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(ValueError, match="ConvLSTM2D"):
        fnn.onnx.export(_model(stateful=True), str(tmp_path / "m.onnx"))


# -------------------------------------------------------------------------- files

def _saved_after_a_batch():
    inp = fnn.Input((T, *SHAPE))
    h = fnn.LSTM(4, stateful=True)(fnn.Reshape((T, -1))(inp))
    g = fnn.Flatten()(_layer(stateful=True, name="clstm")(inp))
    model = fnn.Model(inp, fnn.Dense(2)(fnn.Concatenate()([h, g])), seed=1)
    model.predict(_batches(1)[0].astype(np.float32))
    return model


def test_files_and_pickles_keep_the_carried_states(tmp_path):
    model = _saved_after_a_batch()
    x2 = _batches(2)[1].astype(np.float32)
    path = str(tmp_path / "m.fnn")
    for loaded in (None, "pickle"):
        model.save(path)
        back = pickle.loads(pickle.dumps(model)) if loaded else fnn.load(path)
        layer = back.get_layer("clstm")
        assert layer.stateful
        assert all(np.array_equal(a, b) for a, b in zip(layer.states,
                                                        model.get_layer("clstm").states))
        assert np.array_equal(back.predict(x2), model.predict(x2))
        back.reset_states()
        model.reset_states()
        assert np.array_equal(back.predict(x2), model.predict(x2))
        model.predict(_batches(1)[0].astype(np.float32))
    fresh = _model(stateful=True)
    fresh.save(path)
    assert fnn.load(path).layers[0].states is None


def _forged(tmp_path, edit):
    """_saved_after_a_batch's file with its header's array entries edited by ``edit``; its
    path."""
    from fastnn.io import _PREAMBLE
    blob = bytearray(fnn.io.model_to_bytes(_saved_after_a_batch()))
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


# the stateful layers in file order: LSTM 0, ConvLSTM2D 1 (its states (N, 5, 4, 3))
@pytest.mark.parametrize("edit,pattern", [
    (lambda a: a.remove(_entry(a, "rnn_state/1/1")), r"needs all of"),
    (lambda a: _entry(a, "rnn_state/1/1").update(name="rnn_state/1/2"),
     r"not states of the model"),
    (lambda a: _entry(a, "rnn_state/1/0").update(shape=[N, 4, 5, 3]),
     r"rnn_state/1/0.*\(batch, 5, 4, 3\)"),
    (lambda a: _entry(a, "rnn_state/1/0").update(shape=[N * 5, 4, 3]),
     r"rnn_state/1/0.*\(batch, 5, 4, 3\)"),
    (lambda a: _entry(a, "rnn_state/1/0").update(shape=[N * 5 * 4 * 3]),
     r"rnn_state/1/0.*\(batch, 5, 4, 3\)"),
    (lambda a: _entry(a, "rnn_state/1/1").update(dtype="<f8", shape=[N, 5, 2, 3]),
     r"rnn_state/1/1.*float32"),
])
def test_forged_state_arrays_are_refused(tmp_path, edit, pattern):
    with pytest.raises(ValueError, match=pattern):
        fnn.load(_forged(tmp_path, edit))


def test_nan_in_a_state_array_is_refused(tmp_path):
    model = _saved_after_a_batch()
    model.get_layer("clstm")._carried[1][0, 1, 2, 0] = np.nan
    path = tmp_path / "nan.fnn"
    path.write_bytes(fnn.io.model_to_bytes(model))
    with pytest.raises(ValueError, match=r"rnn_state/1/1.*NaN"):
        fnn.load(str(path))
