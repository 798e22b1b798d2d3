"""The compiled inference plan of general-path models (fastnn/models/inference.py, the
backend's InferPlan in fastnn/_ext/_infer.pxi): a chain of convolution, pooling, recurrent,
Dense and activation layers predicted in one call.

The plan must give bitwise the outputs of the per-layer path (``predict`` with a batch_size
takes that path), take only what it can run (anything else falls back with the same results and
errors), follow the weights as they change, and refuse any step description that would let a
kernel read or write outside its arrays.
"""

import threading

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import fast_backend
from fastnn.io import model_from_bytes, model_to_bytes

InferPlan = fast_backend.InferPlan


def lenet(dtype):
    return fnn.Sequential([
        fnn.Conv2D(6, 5, padding="same", activation="relu"), fnn.MaxPooling2D(),
        fnn.Conv2D(16, 3, activation="tanh"), fnn.AveragePooling2D(3, strides=2, padding="same"),
        fnn.Flatten(), fnn.Dense(32, activation="relu"), fnn.Dropout(0.5),
        fnn.Dense(10, activation="softmax")], input_shape=(16, 16, 1), seed=1, dtype=dtype)


def strided(dtype):
    return fnn.Sequential([
        fnn.Conv2D(8, 3, strides=2, dilation_rate=1, padding="same", activation="leaky_relu"),
        fnn.Conv2D(5, 2, dilation_rate=2, activation="gelu"), fnn.MaxPooling2D(3, padding="same"),
        fnn.GlobalMaxPooling2D(), fnn.Dense(3, activation="sigmoid")],
        input_shape=(13, 11, 3), seed=2, dtype=dtype)


def sequence_cnn(dtype):
    return fnn.Sequential([
        fnn.Conv1D(7, 3, padding="same", activation="relu"), fnn.MaxPooling1D(2),
        fnn.Conv1D(4, 2, use_bias=False), fnn.AveragePooling1D(2, padding="same"),
        fnn.GlobalAveragePooling1D(), fnn.Dense(2)], input_shape=(21, 5), seed=3, dtype=dtype)


def recurrent(dtype):
    return fnn.Sequential([
        fnn.LSTM(9, return_sequences=True), fnn.GRU(6, go_backwards=True, return_sequences=True),
        fnn.Dense(4), fnn.LeakyReLU(0.1), fnn.SimpleRNN(5, activation="relu"),
        fnn.Dense(3, activation="softmax")], input_shape=(11, 4), seed=4, dtype=dtype)


def sequence_out(dtype):
    return fnn.Sequential([
        fnn.Reshape((6, 4)), fnn.GRU(8, return_sequences=True), fnn.Dense(5), fnn.Softmax()],
        input_shape=(24,), seed=5, dtype=dtype)


def lstm_classifier(dtype):
    return fnn.Sequential([fnn.LSTM(16), fnn.Dense(10, activation="softmax")],
                          input_shape=(12, 7), seed=6, dtype=dtype)


def transformer(dtype):
    return fnn.Sequential([
        fnn.TransformerBlock(2, 4, 16), fnn.TransformerBlock(1, 8, 8, activation="gelu_tanh"),
        fnn.Flatten(), fnn.Dense(3, activation="softmax")],
        input_shape=(9, 8), seed=7, dtype=dtype)


def post_norm_transformer(dtype):
    return fnn.Sequential([
        fnn.Dense(6), fnn.TransformerBlock(
            num_heads=3, key_dim=5, ff_dim=12, causal=True, norm_first=False, dropout=0.1,
            activation="leaky_relu", value_dim=4, use_bias=False),
        fnn.GlobalAveragePooling1D(), fnn.Dense(2)], input_shape=(50, 3), seed=8, dtype=dtype)


def normalized(dtype):
    model = fnn.Sequential([
        fnn.Conv2D(6, 3, padding="same", use_bias=False), fnn.BatchNormalization(),
        fnn.ReLU(), fnn.MaxPooling2D(), fnn.Reshape((16, 6)),
        fnn.LayerNormalization(epsilon=1e-3, center=False), fnn.Flatten(),
        fnn.BatchNormalization(scale=False), fnn.Dense(4)],
        input_shape=(8, 8, 2), seed=9, dtype=dtype)
    rng = np.random.default_rng(9)           # moving statistics away from 0 and 1
    weights = model.get_weights()
    model.set_weights([w + rng.uniform(0.1, 0.5, w.shape).astype(w.dtype) for w in weights])
    return model


def mobilenet(dtype):
    return fnn.Sequential([
        fnn.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        fnn.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu"),
        fnn.SeparableConv2D(12, 3, strides=2, padding="same", activation="relu"),
        fnn.DepthwiseConv2D((2, 3), dilation_rate=(2, 1), use_bias=False, activation="softmax"),
        fnn.SeparableConv2D(5, 2, use_bias=False, activation="softmax"),
        fnn.GlobalAveragePooling2D(), fnn.Dense(3)], input_shape=(17, 16, 3), seed=10,
        dtype=dtype)


def separable_sequence(dtype):
    model = fnn.Sequential([
        fnn.DepthwiseConv1D(3, strides=2, depth_multiplier=3, activation="tanh"),
        fnn.SeparableConv1D(6, 3, padding="same", depth_multiplier=2, activation="gelu"),
        fnn.SeparableConv1D(4, 2, dilation_rate=2), fnn.Flatten(), fnn.Dense(2)],
        input_shape=(23, 4), seed=11, dtype=dtype)
    rng = np.random.default_rng(11)          # biases that are not zero
    model.set_weights([w + rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    return model


MODELS = [lenet, strided, sequence_cnn, recurrent, sequence_out, lstm_classifier, transformer,
          post_norm_transformer, normalized, mobilenet, separable_sequence]


def inputs(model, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *model.input_shape)).astype(model.dtype)


@pytest.mark.parametrize("make", MODELS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_plan_gives_the_per_layer_paths_bits(make, dtype):
    model = make(dtype)
    assert isinstance(model._forward_plan, InferPlan)
    for n in (1, 7, 64):
        x = inputs(model, n, seed=n)
        got = model._forward_plan.predict(x)
        assert got is not None and got.shape == (n, *model.output_shape)
        assert got.dtype == model.dtype
        expected = model.predict(x, batch_size=4096)           # the per-layer path
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(model.predict(x), expected)
        np.testing.assert_array_equal(model(x), expected)


@pytest.mark.parametrize("make", MODELS)
def test_the_plan_agrees_with_the_numpy_backend(make):
    model = make("float64")
    twin = model_from_bytes(model_to_bytes(model), backend="numpy")   # the same weights
    assert twin._forward_plan is None
    x = inputs(model, 5)
    np.testing.assert_allclose(model.predict(x), twin.predict(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("make", [lenet, mobilenet])
def test_bitwise_equal_at_one_and_two_threads(threads, make):
    model = make("float32")
    x = inputs(model, 64)
    with fnn.threads(1):
        one = model.predict(x)
    with fnn.threads(threads):
        np.testing.assert_array_equal(model.predict(x), one)


def test_the_plan_follows_the_weights():
    model = lstm_classifier("float32")
    x = inputs(model, 3)
    before = model.predict(x)
    weights = model.get_weights()
    model.set_weights([w * 0.5 for w in weights])
    after = model.predict(x)
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, model.predict(x, batch_size=4096))
    model.compile(loss="cross_entropy", optimizer=fnn.SGD(0.1))
    model.fit(inputs(model, 32, seed=9), np.arange(32) % 10, epochs=1, verbose=0)
    np.testing.assert_array_equal(model.predict(x), model.predict(x, batch_size=4096))


def test_other_forms_fall_back_with_the_same_results_and_errors():
    model = lenet("float32")
    plan = model._forward_plan
    x = inputs(model, 70)
    assert plan.predict(x) is None                               # more than 64 rows
    np.testing.assert_array_equal(model.predict(x), model.predict(x, batch_size=4096))
    x64 = x[:4].astype(np.float64)
    assert plan.predict(x64) is None                             # another dtype: converted
    np.testing.assert_array_equal(model.predict(x64), model.predict(x[:4]))
    strided_x = np.asfortranarray(x[:4])
    assert plan.predict(strided_x) is None
    np.testing.assert_array_equal(model.predict(strided_x), model.predict(x[:4]))
    assert plan.predict(x[:4].tolist()) is None
    np.testing.assert_array_equal(model.predict(x[:4].tolist()), model.predict(x[:4]))
    assert plan.predict(x[:0]) is None
    assert plan.predict(x[:2, :15]) is None                      # wrong sample shape
    with pytest.raises(ValueError, match="shape"):
        model.predict(x[:2, :15])
    bad = x[:3].copy()
    bad[1, 2, 3, 0] = np.nan
    assert plan.predict(bad) is None
    with pytest.raises(ValueError, match="NaN|finite"):
        model.predict(bad)
    with pytest.raises(ValueError, match="NaN|finite"):
        model(bad)


class MyDense(fnn.Dense):
    """A user's layer (another forward could stand here): never taken for a plain Dense."""


class Doubled(fnn.ReLU):
    """A user's activation layer with a forward of its own."""

    def forward(self, ctx, x, training):
        return 2 * super().forward(ctx, x, training)


@pytest.mark.parametrize("layers, shape", [
    ([fnn.Embedding(10, 4), fnn.LSTM(3)], (5,)),
    ([fnn.Bidirectional(fnn.LSTM(3)), fnn.Dense(2)], (5, 2)),
    ([fnn.Conv2D(3, 3), fnn.Flatten(), MyDense(2)], (6, 6, 1)),      # a subclass: its own forward
    ([fnn.Flatten()], (3, 2)),
])
def test_models_with_other_layers_keep_the_per_layer_path(layers, shape):
    model = fnn.Sequential(layers, input_shape=shape, seed=0)
    assert model._forward_plan is None


def test_recurrent_states_keep_the_per_layer_path():
    inp = fnn.Input((5, 2))
    y, h, c = fnn.LSTM(3, return_state=True)(inp)
    assert fnn.Model(inp, [fnn.Dense(2)(y), h], seed=0)._forward_plan is None
    h0, c0 = fnn.Input((3,)), fnn.Input((3,))
    out = fnn.LSTM(3)(inp, initial_state=[h0, c0])
    assert fnn.Model([inp, h0, c0], out, seed=0)._forward_plan is None


def test_subclasses_of_the_plans_layers_keep_their_own_forward():
    plain = fnn.Sequential([fnn.Conv2D(2, 3), fnn.Flatten(), fnn.ReLU()],
                           input_shape=(4, 4, 1), seed=0)
    doubled = fnn.Sequential([fnn.Conv2D(2, 3), fnn.Flatten(), Doubled()],
                             input_shape=(4, 4, 1), seed=0)
    assert plain._forward_plan is not None and doubled._forward_plan is None
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 1)).astype(np.float32)
    np.testing.assert_array_equal(doubled.predict(x), 2 * plain.predict(x))


def test_a_masked_transformer_block_keeps_the_per_layer_path():
    x, mask = fnn.Input((6, 4)), fnn.Input((6,))
    out = fnn.TransformerBlock(2, 2, 8)(x, padding_mask=mask)
    assert fnn.Model([x, mask], out, seed=0)._forward_plan is None


def test_a_branching_model_keeps_the_per_layer_path():
    inp = fnn.Input((8, 8, 2))
    a = fnn.Conv2D(2, 3, padding="same")(inp)
    out = fnn.Dense(3)(fnn.Flatten()(fnn.Add()([a, inp])))
    assert fnn.Model(inp, out, seed=0)._forward_plan is None


def test_numpy_backend_models_have_no_plan():
    model = fnn.Sequential([fnn.Conv2D(2, 3), fnn.Flatten(), fnn.Dense(2)],
                           input_shape=(5, 5, 1), seed=0, backend="numpy")
    assert model._forward_plan is None


def test_threads_may_share_a_plan():
    model = recurrent("float32")
    xs = [inputs(model, 1 + i, seed=i) for i in range(6)]
    expected = [model.predict(x, batch_size=4096) for x in xs]
    errors = []

    def work(k):
        try:
            for _ in range(30):
                for x, e in zip(xs, expected):
                    np.testing.assert_array_equal(model.predict(x), e)
        except AssertionError as exc:          # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# -- the plan's own checks: nothing it is given can make a kernel step outside its arrays

F32 = np.float32


def dense_step(in_w=4, units=3, W=None, b=None):
    W = np.ones((in_w, units), F32) if W is None else W
    b = np.zeros(units, F32) if b is None else b
    return ("dense", in_w, units, (1, in_w, units, 0), 0.0, (W, b))


def block_step(c=4, H=1, D=4, Dv=4, ff=8, L=2, eps=1e-5, sizes=None, ints=None):
    sizes = sizes or (c, c, c * H * D, H * D, c * H * D, H * D, c * H * Dv, H * Dv, H * Dv * c, c,
                      c, c, c * ff, ff, ff * c, c)
    ints = ints or (L, c, H, D, Dv, ff, 0, 1, 0)
    return [("transformer_block", L * c, L * c, ints, (0.0, eps),
             tuple(np.ones(k, F32) for k in sizes))]


def test_a_hand_made_block_step_is_accepted():
    plan = InferPlan(block_step(), (2, 4), (2, 4), np.float32)
    assert plan.predict(np.ones((3, 2, 4), F32)).shape == (3, 2, 4)


@pytest.mark.parametrize("steps, shapes", [
    (block_step(eps=0.0), ((2, 4), (2, 4))),
    (block_step(sizes=(4,) * 16), ((2, 4), (2, 4))),             # weight sizes
    (block_step(ints=(2, 4, 1, 4, 4, 8, 2, 1, 0)), ((2, 4), (2, 4))),   # causal flag
    (block_step(ints=(2, 4, 0, 4, 4, 8, 0, 1, 0)), ((2, 4), (2, 4))),   # no heads
    (block_step(L=3), ((2, 4), (2, 4))),                          # input width
    ([], ((4,), (3,))),
    ([dense_step()], ((5,), (3,))),                               # input width
    ([dense_step()], ((4,), (2,))),                               # output width
    ([dense_step(W=np.ones((4, 2), F32))], ((4,), (3,))),        # kernel size
    ([dense_step(W=np.ones((4, 3)))], ((4,), (3,))),             # kernel dtype
    ([dense_step(W=np.ones((3, 4), F32).T)], ((4,), (3,))),      # not C-contiguous
    ([dense_step(b=np.zeros(4, F32))], ((4,), (3,))),            # bias size
    ([("dense", 4, 3, (1, 4, 3, 99), 0.0, (np.ones((4, 3), F32), None))], ((4,), (3,))),
    ([("dense", 4, 3, (1, 4, -3, 0), 0.0, (np.ones((4, 3), F32), None))], ((4,), (3,))),
    ([("dense", 4, 3, (1, 4, 3), 0.0, (np.ones((4, 3), F32), None))], ((4,), (3,))),
    ([("softmax", 4, 4, (1, 4, 0), 0.0, ())], ((4,), (4,))),
    ([("activation", 4, 4, (1, 5, 0), 0.0, ())], ((4,), (4,))),
    ([("conv2d", 16, 9, (4, 4, 1, 2, 2, 1, 1, 1, 1, 1, 0, 0, 4, 4, 0), 0.0,
       (np.ones((2, 2, 1, 1), F32), np.zeros(1, F32)))], ((4, 4, 1), (3, 3, 1))),
    ([("conv2d", 16, 9, (4, 4, 1, 2, 2, 1, 1, 1, 1, 1, 0, 0, 3, 3, 0), 0.0,
       (np.ones((3, 2, 1, 1), F32), np.zeros(1, F32)))], ((4, 4, 1), (3, 3, 1))),
    ([("conv2d", 16, 9, (4, 4, 1, 2**30, 2**30, 2**8, 1, 1, 1, 1, 0, 0, 3, 3, 0), 0.0,
       (np.ones((2, 2, 1, 1), F32), np.zeros(1, F32)))], ((4, 4, 1), (3, 3, 1))),  # huge kernel
    ([("dwconv2d", 16, 9, (4, 4, 1, 2, 2, 2, 1, 1, 1, 1, 0, 0, 3, 3, 0), 0.0,
       (np.ones((2, 2, 1, 2), F32), np.zeros(2, F32)))], ((4, 4, 1), (3, 3, 1))),  # width
    ([("dwconv2d", 16, 18, (4, 4, 1, 2, 2, 2, 1, 1, 1, 1, 0, 0, 3, 3, 0), 0.0,
       (np.ones((2, 2, 1, 1), F32), np.zeros(2, F32)))], ((4, 4, 1), (3, 3, 2))),  # kernel
    ([("dwconv2d", 16, 9, (4, 4, 1, 2, 2, 1, 0, 1, 1, 1, 0, 0, 3, 3, 0), 0.0,
       (np.ones((2, 2, 1, 1), F32), np.zeros(1, F32)))], ((4, 4, 1), (3, 3, 1))),  # stride 0
    ([("dwconv2d", 16, 9, (4, 4, 1, 2, 2, 1, 1, 1, 1, 1, 0, 0, 3, 3, 6), 0.0,
       (np.ones((2, 2, 1, 1), F32), np.zeros(1, F32)))], ((4, 4, 1), (3, 3, 1))),  # softmax
    ([("dwconv2d", 16, 9, (4, 4, 1, 2, 2, 1, 1, 1, 1, 1, 0, 0, 3, 3, 0), 0.0,
       (np.ones((2, 2, 1, 1), F32), np.zeros(3, F32)))], ((4, 4, 1), (3, 3, 1))),  # bias
    ([("maxpool2d", 16, 9, (4, 4, 1, 3, 3, 2, 2, 0, 1, 0, 0), 0.0, ())],
     ((4, 4, 1), (3, 3, 1))),                                     # stride 0
    ([("avgpool2d", 16, 16, (4, 4, 1, 3, 3, 2, 2, 1, 1, 0, 0), 0.0, ())],
     ((4, 4, 1), (4, 4, 1))),                                     # output width
    ([("global_avgpool", 16, 2, (7, 2), 0.0, ())], ((16,), (2,))),
    ([("rnn", 12, 5, (1, 4, 3, 5, 3, 2, 0, 0), 0.0,
       (np.ones((3, 20), F32), np.ones((5, 20), F32), np.zeros(19, F32)))], ((4, 3), (5,))),
    ([("rnn", 12, 5, (1, 4, 3, 5, 6, 2, 0, 0), 0.0,
       (np.ones((3, 20), F32), np.ones((5, 20), F32), np.zeros(20, F32)))], ((4, 3), (5,))),
    ([("rnn", 12, 5, (3, 4, 3, 5, 3, 2, 0, 0), 0.0,
       (np.ones((3, 20), F32), np.ones((5, 20), F32), np.zeros(20, F32)))], ((4, 3), (5,))),
    ([("rnn", 12, 20, (1, 4, 3, 5, 3, 2, 0, 0), 0.0,
       (np.ones((3, 20), F32), np.ones((5, 20), F32), np.zeros(20, F32)))], ((4, 3), (4, 5))),
])
def test_inconsistent_steps_are_refused(steps, shapes):
    with pytest.raises(ValueError, match="InferPlan"):
        InferPlan(steps, shapes[0], shapes[1], np.float32)


def test_a_consistent_hand_made_plan_computes():
    W = np.arange(12, dtype=F32).reshape(4, 3) / 10
    plan = InferPlan([dense_step(W=W, b=np.ones(3, F32))], (4,), (3,), np.float32)
    x = np.ones((2, 4), F32)
    np.testing.assert_allclose(plan.predict(x), x @ W + 1, rtol=1e-6)
