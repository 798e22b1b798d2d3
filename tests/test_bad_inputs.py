"""A table of bad inputs to every public entry point, run by one test.

Each row: an id, a callable ``call(backend, tmp_path)``, the exception type (ValueError or
TypeError) and a regex that the message must match. The regex names the argument and the value
received, so a message that only says "invalid input" fails. Rows whose call builds a model run
on both backends; the others (constructors, ops, thread control) run once.
"""

import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn.callbacks import EarlyStopping, LearningRateScheduler, ModelCheckpoint, TerminateOnNaN

N, D, C = 6, 4, 3                       # samples, features, classes of the standard model
X = np.linspace(-1.0, 1.0, N * D).reshape(N, D)
Y = np.array([0, 1, 2, 0, 1, 2])


def model(backend, loss="cross_entropy", final="softmax", units=C, compiled=True, **kw):
    m = fnn.Sequential([fnn.Dense(5, activation="relu"), fnn.Dense(units, activation=final)],
                       input_dim=D, seed=0, backend=backend, **kw)
    if compiled:
        m.compile(loss=loss, optimizer=fnn.SGD(lr=0.1))
    return m


def unbuilt(backend):
    return fnn.Sequential([fnn.Dense(2)], backend=backend)


def with_nan(a, index=(1, 2), value=math.nan):
    a = np.array(a, dtype=np.float64)
    a[index] = value
    return a


def fit(backend, X_=X, y=Y, **kw):
    kw.setdefault("verbose", 0)
    return model(backend).fit(X_, y, **kw)


def mse_fit(backend, X_=X, y=None, **kw):
    y = np.zeros((N, C)) if y is None else y
    return model(backend, loss="mse", final="linear").fit(X_, y, verbose=0, **kw)


def bce_fit(backend, y):
    return model(backend, loss="binary_cross_entropy", final="sigmoid", units=1).fit(
        X, y, verbose=0)


def write(tmp_path, data):
    path = tmp_path / "bad.fnn"
    path.write_bytes(data)
    return path


def saved(backend, tmp_path):
    path = tmp_path / "good.fnn"
    model(backend).save(path)
    return path


def dense_built(backend):
    return model(backend).dense_layers[0]      # W (4, 5), b (5,)


def good_weights(backend):
    return model(backend).get_weights()


def strict(call):
    """Run ``call`` with NumPy floating-point errors raising, as some host applications set."""
    with np.errstate(all="raise"):
        return call()


def replace(seq, i, value):
    seq = list(seq)
    seq[i] = value
    return seq



# ---------------------------------------------------------------- convolution, pooling, recurrent
def shaped(backend, layers, input_shape, compiled=False):
    """A Sequential model over samples of ``input_shape`` (built at once: shape errors raise)."""
    m = fnn.Sequential(layers, input_shape=input_shape, seed=0, backend=backend)
    if compiled:
        m.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.1))
    return m


T, F, U = 5, 2, 3                        # steps, features, units of the recurrent models
XS = np.linspace(-1.0, 1.0, N * T * F).reshape(N, T, F)


def rnn_model(backend, layer=None):
    """A compiled classifier over (T, F) sequences: ``layer`` (an LSTM by default), then Dense."""
    return shaped(backend, [layer or fnn.LSTM(U), fnn.Dense(C, activation="softmax")], (T, F),
                  compiled=True)


def conv1d_transpose_backward(backend, dout):
    """backward with ``dout`` after a forward through Conv1DTranspose(2, 3, strides=2) on
    (5, 1) samples (its output: (11, 2))."""
    m = shaped(backend, [fnn.Conv1DTranspose(2, 3, strides=2)], (5, 1))
    m.forward(np.ones((N, 5, 1)))
    return m.backward(dout)


def added_then_built(backend, layer, input_shape):
    m = fnn.Sequential([fnn.Dense(input_shape[-1])], backend=backend)
    m.add(layer)
    return m.build(input_shape)


def with_states(backend, layer, state_shapes):
    """A functional model feeding Inputs of ``state_shapes`` as ``layer``'s initial states."""
    x, states = fnn.Input((T, F)), [fnn.Input(s) for s in state_shapes]
    return fnn.Model([x, *states], layer(x, initial_state=states), backend=backend)


def lstm_with_states(backend):
    x, h0, c0 = fnn.Input((T, F)), fnn.Input((U,)), fnn.Input((U,))
    out = fnn.Dense(C, activation="softmax")(fnn.LSTM(U)(x, initial_state=[h0, c0]))
    m = fnn.Model([x, h0, c0], out, seed=0, backend=backend)
    return m.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.1))


def states(h=(N, U), c=(N, U), steps=T):
    return [XS[:, :1].repeat(steps, axis=1) if steps != T else XS, np.zeros(h), np.zeros(c)]



# ---------------------------------------------------------------- attention
LQ, LV, DQ, DV = 4, 5, 8, 6              # query steps, value steps, their widths
QA = np.linspace(-1.0, 1.0, N * LQ * DQ).reshape(N, LQ, DQ)
VA = np.linspace(1.0, -1.0, N * LV * DV).reshape(N, LV, DV)
MHA = fnn.MultiHeadAttention


def mha_model(backend, mask=False):
    """query (LQ, DQ) attends to value (LV, DV) through 2 heads of 3; a key padding mask input
    when ``mask``."""
    q, v = fnn.Input((LQ, DQ)), fnn.Input((LV, DV))
    m = fnn.Input((LV,)) if mask else None
    out = MHA(2, 3)(q, v, attention_mask=m)
    return fnn.Model([q, v] + ([m] if mask else []), out, seed=0, backend=backend)


def mha_call(query=(LQ, DQ), value=(LV, DV), key=None, mask=None, **kw):
    """A MultiHeadAttention called on Inputs of the given sample shapes."""
    return MHA(2, 3)(fnn.Input(query), fnn.Input(value), key=key and fnn.Input(key),
                     attention_mask=mask and fnn.Input(mask), **kw)


def sdpa(**change):
    """scaled_dot_product_attention on (2, 3, 4) queries and (2, 5, 4|6) keys/values, changed."""
    args = dict(q=np.ones((2, 3, 4)), k=np.ones((2, 5, 4)), v=np.ones((2, 5, 6)))
    args.update(change)
    return fnn.ops.scaled_dot_product_attention(**args)


# ---------------------------------------------------------------- the layers of session 32
XR = np.linspace(-1.0, 1.0, N * 5 * 2).reshape(N, 5, 2)       # RNN(cell) rows: 5 steps, 2 features


def two_inputs(backend, layer, first, second, **kw):
    """A model over two Inputs of sample shapes ``first`` and ``second``: ``layer([a, b])``."""
    a, c = fnn.Input(first), fnn.Input(second)
    return fnn.Model([a, c], layer([a, c], **kw), seed=0, backend=backend)


def score_call(layer, shapes, mask=None, **kw):
    """``layer`` (Attention, AdditiveAttention) called on Inputs of ``shapes`` (2 or 3 of them),
    with value masks of the ``mask`` shapes (None: no mask)."""
    inputs = [fnn.Input(s) for s in shapes]
    masks = None if mask is None else [None if m is None else fnn.Input(m) for m in mask]
    return layer(inputs, mask=masks, **kw)


def rnn_with_state(backend, cell, state_shapes):
    """RNN(cell) over (5, 2) sequences, called with initial states of ``state_shapes``."""
    x = fnn.Input((5, 2))
    states = [fnn.Input(s) for s in state_shapes]
    return fnn.Model([x] + states, fnn.RNN(cell)(x, initial_state=states), seed=0,
                     backend=backend)


def c3t(backend, layer, shape=(4, 4, 4, 1)):
    return shaped(backend, [layer], shape)


# ---------------------------------------------------------------- Transformer layers
TL, TD = 5, 8                            # steps and features of the transformer models
XT = np.linspace(-1.0, 1.0, N * TL * TD).reshape(N, TL, TD)
MT = np.ones((N, TL))                    # a padding mask: every step real
TB = fnn.TransformerBlock


def block_model(backend, mask=False, **kw):
    """A TransformerBlock (2 heads of 4, ff_dim 16) over (TL, TD) sequences, with a padding mask
    input when ``mask``."""
    x = fnn.Input((TL, TD))
    m = fnn.Input((TL,)) if mask else None
    out = TB(2, 4, 16, **kw)(x, padding_mask=m)
    return fnn.Model([x, m] if mask else x, out, seed=0, backend=backend)


def block_call(x=(TL, TD), mask=None):
    """A TransformerBlock called on Inputs of the given sample shapes."""
    return TB(2, 4, 16)(fnn.Input(x), padding_mask=mask and fnn.Input(mask))


def position_model(backend, layer, input_shape=(TL, TD)):
    return shaped(backend, [layer], input_shape)


def built_position(layer, input_shape=(TL, TD)):
    """``layer`` built in a NumPy model over ``input_shape`` (its table exists)."""
    shaped("numpy", [layer], input_shape)
    return layer


# ---------------------------------------------------------------- reshaping, merge, preprocessing
IMG = (4, 6, 1)                          # the images of the padding / cropping / upsampling rows
XI = np.linspace(-1.0, 1.0, N * 24).reshape(N, *IMG)
TW = fnn.TimeDistributed                 # (TD is the transformer rows' width)


def merged(backend, name="Multiply", k=2):
    """A functional model of the merge ``name`` over k Inputs of (D,)."""
    inputs = [fnn.Input((D,)) for _ in range(k)]
    return fnn.Model(inputs, getattr(fnn, name)()(inputs), seed=0, backend=backend)


def merged_backward(backend, dout):
    m = merged(backend)
    m.forward([X, X])
    return m.backward(dout)


def built_normalization(features=D, **kw):
    """A Normalization built in a NumPy model over (features,) samples."""
    layer = fnn.Normalization(**kw)
    shaped("numpy", [layer], (features,))
    return layer


def adapted_then_built(backend, data, input_shape):
    layer = fnn.Normalization()
    layer.adapt(data)
    return shaped(backend, [layer], input_shape)



# ---------------------------------------------------------------- stateful recurrent layers
def stateful_model(backend, layer=None):
    """A compiled model over (T, F) sequences whose first layer is stateful (an LSTM)."""
    m = shaped(backend, [layer or fnn.LSTM(U, stateful=True), fnn.Dense(C)], (T, F))
    return m.compile(loss="mse", optimizer=fnn.SGD(lr=0.1))


def stateful_two_sizes(backend, how):
    """A stateful LSTM fed a batch of 4 sequences, then one of 3 (or a fit of 6 by 4)."""
    m = stateful_model(backend)
    if how == "fit":
        return m.fit(XS, np.zeros((N, C)), batch_size=4, shuffle=False, verbose=0)
    first, second = XS[:4], XS[:3]
    if how == "train_on_batch":
        m.train_on_batch(first, np.zeros((4, C)))
        return m.train_on_batch(second, np.zeros((3, C)))
    if how == "forward":
        m.forward(first)
        return m.forward(second)
    m.predict(first, batch_size=4)
    return m.predict(second, batch_size=3)


def stateful_reset(backend, states, layer=None):
    """reset_states(states) on a built stateful layer (an LSTM of U units by default)."""
    return stateful_model(backend, layer).layers[0].reset_states(states)


XC = np.linspace(-1.0, 1.0, 2 * 2 * 3 * 3 * 1).reshape(2, 2, 3, 3, 1)


def stateful_conv_lstm(backend, batches, states=None):
    """A stateful ConvLSTM2D(2, 3, same) over (2, 3, 3, 1) clips fed ``batches`` in turn, then
    (given) reset_states(states)."""
    m = shaped(backend, [fnn.ConvLSTM2D(2, 3, padding="same", stateful=True)], (2, 3, 3, 1))
    for x in batches:
        m.predict(x)
    return m.layers[0].reset_states(states)

def _hc(h=(4, U), c=(4, U), dtype=float, h_value=0.0, c_value=0.0):
    return [np.full(h, h_value, dtype=dtype), np.full(c, c_value, dtype=dtype)]


OBJ = np.array([[1, "a", None, 2.0]] * N, dtype=object)
CPLX = X.astype(np.complex128)
STR = np.array([["1", "2", "3", "4"]] * N)

# (id, uses a backend, call(backend, tmp_path), exception, regex)
CASES = [
    # ---------------------------------------------------------------- Sequential(...)
    ("seq_layers_is_a_layer", True, lambda b, t: fnn.Sequential(fnn.Dense(3), backend=b),
     TypeError, r"layers=Dense\(3"),
    ("seq_layer_not_a_layer", True, lambda b, t: fnn.Sequential([fnn.Dense(3), 5], backend=b),
     TypeError, r"layer=5\b"),
    ("seq_no_layers", True, lambda b, t: fnn.Sequential([], input_dim=3, backend=b),
     ValueError, r"layers=\[\]"),
    ("seq_input_dim_zero", True, lambda b, t: fnn.Sequential([fnn.Dense(2)], input_dim=0,
                                                              backend=b),
     ValueError, r"input_dim=0\b"),
    ("seq_input_dim_negative", True, lambda b, t: fnn.Sequential([fnn.Dense(2)], input_dim=-3,
                                                                  backend=b),
     ValueError, r"input_dim=-3\b"),
    ("seq_input_dim_float", True, lambda b, t: fnn.Sequential([fnn.Dense(2)], input_dim=3.5,
                                                              backend=b),
     TypeError, r"input_dim=3\.5"),
    ("seq_build_twice", True, lambda b, t: model(b).build(D), ValueError, r"input_dim=4\b"),
    ("seq_dtype_int", True, lambda b, t: model(b, dtype="int32"), ValueError, r"dtype='int32'"),
    ("seq_dtype_float16", True, lambda b, t: model(b, dtype=np.float16), ValueError,
     r"dtype=.*float16"),
    ("seq_backend_unknown", False, lambda b, t: model("gpu"), ValueError, r"backend='gpu'"),
    ("seq_seed_negative", True, lambda b, t: fnn.Sequential([fnn.Dense(2)], seed=-1, backend=b),
     ValueError, r"seed=-1\b"),
    ("seq_seed_float", True, lambda b, t: fnn.Sequential([fnn.Dense(2)], seed=1.5, backend=b),
     TypeError, r"seed=1\.5"),

    # ---------------------------------------------------------------- Dense and activation layers
    ("dense_units_zero", False, lambda b, t: fnn.Dense(0), ValueError, r"units=0\b"),
    ("dense_units_negative", False, lambda b, t: fnn.Dense(-3), ValueError, r"units=-3\b"),
    ("dense_units_float", False, lambda b, t: fnn.Dense(2.5), TypeError, r"units=2\.5"),
    ("dense_units_str", False, lambda b, t: fnn.Dense("8"), TypeError, r"units='8'"),
    ("dense_units_bool", False, lambda b, t: fnn.Dense(True), TypeError, r"units=True"),
    ("dense_activation_unknown", False, lambda b, t: fnn.Dense(3, activation="swishy"),
     ValueError, r"activation='swishy'"),
    ("dense_activation_int", False, lambda b, t: fnn.Dense(3, activation=3), ValueError,
     r"activation=3\b"),
    ("activation_layer_unknown", False, lambda b, t: fnn.Activation("swishy"), ValueError,
     r"activation='swishy'"),
    ("leaky_relu_alpha_negative", False, lambda b, t: fnn.LeakyReLU(alpha=-0.1), ValueError,
     r"alpha=-0\.1"),
    ("leaky_relu_alpha_nan", False, lambda b, t: fnn.LeakyReLU(alpha=math.nan), ValueError,
     r"alpha=nan"),
    ("elu_alpha_negative", False, lambda b, t: fnn.ELU(alpha=-1.0), ValueError,
     r"alpha=-1\.0"),
    ("elu_alpha_nan", False, lambda b, t: fnn.ELU(alpha=math.nan), ValueError, r"alpha=nan"),
    ("elu_alpha_inf", False, lambda b, t: fnn.ELU(alpha=math.inf), ValueError, r"alpha=inf"),
    ("elu_alpha_str", False, lambda b, t: fnn.ELU(alpha="1"), TypeError, r"alpha='1'"),
    ("elu_alpha_bool", False, lambda b, t: fnn.ELU(alpha=True), TypeError, r"alpha=True"),
    ("elu_activation_param_negative", False,
     lambda b, t: fnn.Activation("elu", param=-0.5), ValueError, r"param=-0\.5"),
    ("step_threshold_inf", False, lambda b, t: fnn.Step(threshold=math.inf), ValueError,
     r"threshold=inf"),
    ("step_threshold_str", False, lambda b, t: fnn.Step(threshold="0.5"), TypeError,
     r"threshold='0\.5'"),

    # ---------------------------------------------------------------- compile
    # compiled unbuilt (Keras' deferred build), then given nothing to build from
    ("compile_unbuilt", True, lambda b, t: unbuilt(b).compile("mse").train_on_batch(
        [1.0, 2.0], [0.0, 1.0]), ValueError, r"built before train_on_batch.*input_dim"),
    ("compile_empty", True, lambda b, t: fnn.Sequential(backend=b).compile("mse").fit(X, Y),
     ValueError, r"built before fit.*input_dim"),
    ("compile_loss_unknown", True, lambda b, t: model(b, compiled=False).compile("hinge"),
     ValueError, r"loss='hinge'"),
    ("compile_loss_none", True, lambda b, t: model(b, compiled=False).compile(None),
     ValueError, r"loss=None"),
    ("compile_optimizer_unknown", True,
     lambda b, t: model(b, compiled=False).compile("mse", optimizer="adadelta"),
     ValueError, r"optimizer='adadelta'"),
    ("compile_optimizer_class", True,
     lambda b, t: model(b, compiled=False).compile("mse", optimizer=fnn.SGD),
     ValueError, r"optimizer=<class 'fastnn\.optimizers\.SGD'>"),
    ("compile_optimizer_dict_bad_lr", True,
     lambda b, t: model(b, compiled=False).compile("mse", optimizer={"name": "sgd", "lr": -1}),
     ValueError, r"lr=-1\.0"),
    ("compile_metrics_unknown", True,
     lambda b, t: model(b, compiled=False).compile("mse", metrics=["f1"]),
     ValueError, r"metrics=\['f1'\]"),
    ("compile_metrics_not_a_list", True,
     lambda b, t: model(b, compiled=False).compile("mse", metrics=5),
     TypeError, r"metrics=5\b"),

    # ---------------------------------------------------------------- fit: arguments
    ("fit_before_compile", True, lambda b, t: model(b, compiled=False).fit(X, Y, verbose=0),
     ValueError, r"compile\(loss=.*before fit"),
    ("fit_epochs_negative", True, lambda b, t: fit(b, epochs=-1), ValueError, r"epochs=-1\b"),
    ("fit_epochs_float", True, lambda b, t: fit(b, epochs=2.0), TypeError, r"epochs=2\.0"),
    ("fit_batch_size_zero", True, lambda b, t: fit(b, batch_size=0), ValueError,
     r"batch_size=0\b"),
    ("fit_batch_size_negative", True, lambda b, t: fit(b, batch_size=-4), ValueError,
     r"batch_size=-4\b"),
    ("fit_batch_size_none", True, lambda b, t: fit(b, batch_size=None), TypeError,
     r"batch_size=None"),
    ("fit_validation_split_one", True, lambda b, t: fit(b, validation_split=1.0), ValueError,
     r"validation_split=1\.0"),
    ("fit_validation_split_negative", True, lambda b, t: fit(b, validation_split=-0.1),
     ValueError, r"validation_split=-0\.1"),
    ("fit_shuffle_str", True, lambda b, t: fit(b, shuffle="yes"), TypeError, r"shuffle='yes'"),
    ("fit_verbose_negative", True, lambda b, t: fit(b, verbose=-1), ValueError, r"verbose=-1\b"),
    ("fit_callbacks_not_callbacks", True, lambda b, t: fit(b, callbacks=[3]), TypeError,
     r"callbacks.*Received: 3\b"),
    ("fit_callbacks_single_instance", True, lambda b, t: fit(b, callbacks=TerminateOnNaN()),
     TypeError, r"callbacks.*TerminateOnNaN"),
    ("fit_validation_data_one_item", True, lambda b, t: fit(b, validation_data=(X,)),
     ValueError, r"validation_data.*Received: tuple"),
    ("fit_validation_data_width", True,
     lambda b, t: fit(b, validation_data=(np.ones((2, 5)), [0, 1])),
     ValueError, r"X_val.*shape \(2, 5\)"),
    ("fit_validation_data_label", True,
     lambda b, t: fit(b, validation_data=(np.ones((2, D)), [0, 7])),
     ValueError, r"y_val.*label .*7"),

    # ---------------------------------------------------------------- fit: X
    ("fit_X_1d", True, lambda b, t: fit(b, X_=X[0]), ValueError, r"X .*shape \(4,\)"),
    ("fit_X_3d", True, lambda b, t: fit(b, X_=X[None]), ValueError, r"X .*shape \(1, 6, 4\)"),
    ("fit_X_scalar", True, lambda b, t: fit(b, X_=5.0), ValueError, r"X .*shape \(\)"),
    ("fit_X_width", True, lambda b, t: fit(b, X_=np.ones((N, 5))), ValueError,
     r"X must have 4 features.*shape \(6, 5\)"),
    ("fit_X_nan", True, lambda b, t: fit(b, X_=with_nan(X)), ValueError, r"X\[1, 2\]=.*nan"),
    ("fit_X_inf", True, lambda b, t: fit(b, X_=with_nan(X, (5, 3), -math.inf)), ValueError,
     r"X\[5, 3\]=.*-inf"),
    ("fit_X_overflows_float32", True, lambda b, t: fit(b, X_=with_nan(X, (2, 0), 1e300)),
     ValueError, r"X\[2, 0\]=.*inf"),
    ("predict_X_inf_strict_numpy", True,
     lambda b, t: strict(lambda: model(b).predict(with_nan(X, (3, 1), math.inf))), ValueError,
     r"X\[3, 1\]=.*inf"),
    ("fit_X_overflows_float32_strict_numpy", True,
     lambda b, t: strict(lambda: fit(b, X_=with_nan(X, (4, 3), -1e300))), ValueError,
     r"X\[4, 3\]=.*-inf"),
    ("fit_X_empty", True, lambda b, t: fit(b, X_=np.ones((0, D)), y=[]), ValueError,
     r"X .*shape \(0, 4\)"),
    ("fit_X_zero_features", True, lambda b, t: fit(b, X_=np.ones((N, 0))), ValueError,
     r"X .*feature.*shape \(6, 0\)"),
    ("fit_X_object", True, lambda b, t: fit(b, X_=OBJ), TypeError, r"X .*dtype object"),
    ("fit_X_complex", True, lambda b, t: fit(b, X_=CPLX), TypeError, r"X .*dtype complex128"),
    ("fit_X_string", True, lambda b, t: fit(b, X_=STR), TypeError, r"X .*dtype <U1"),
    ("fit_X_ragged_list", True, lambda b, t: fit(b, X_=[[1, 2, 3, 4], [1, 2]]), ValueError,
     r"X .*rectangular.*list"),
    ("fit_X_none", True, lambda b, t: fit(b, X_=None), TypeError, r"X .*dtype object"),

    # ---------------------------------------------------------------- fit: y
    ("fit_y_label_too_large", True, lambda b, t: fit(b, y=[0, 1, 2, 3, 0, 1]), ValueError,
     r"y labels must be in \[0, 2\].*label .*3"),
    ("fit_y_label_negative", True, lambda b, t: fit(b, y=[0, 1, -1, 0, 1, 2]), ValueError,
     r"y labels.*label .*-1"),
    ("fit_y_label_fractional", True, lambda b, t: fit(b, y=[0, 1, 0.5, 0, 1, 2]), ValueError,
     r"integer class labels.*y=.*0\.5"),
    ("fit_y_label_nan", True, lambda b, t: fit(b, y=[0, 1, math.nan, 0, 1, 2]), ValueError,
     r"y\[2\]=.*nan"),
    ("fit_y_label_huge", True, lambda b, t: fit(b, y=[0, 1, 1e20, 0, 1, 2]), ValueError,
     r"y labels.*label .*1e\+20"),
    ("fit_y_label_string", True, lambda b, t: fit(b, y=np.array(list("abcabc"))), TypeError,
     r"y .*dtype <U1"),
    ("fit_y_label_complex", True, lambda b, t: fit(b, y=Y.astype(complex)), TypeError,
     r"y .*dtype complex128"),
    ("fit_y_onehot_wrong_width", True, lambda b, t: fit(b, y=np.eye(2)[[0, 1, 0, 1, 0, 1]]),
     ValueError, r"y .*one-hot \(n, 3\).*shape \(6, 2\)"),
    ("fit_y_onehot_not_onehot", True, lambda b, t: fit(b, y=2 * np.eye(3)[Y]), ValueError,
     r"y rows must be one-hot.*row sums in \[2, 2\]"),
    ("fit_y_onehot_negative", True, lambda b, t: fit(b, y=np.eye(3)[Y] * [[2, -1, 0]]),
     ValueError, r"y rows must be one-hot.*min value .*-1"),
    ("fit_y_onehot_inf", True, lambda b, t: fit(b, y=with_nan(np.eye(3)[Y], (0, 0), math.inf)),
     ValueError, r"y\[0, 0\]=.*inf"),
    ("fit_y_3d", True, lambda b, t: fit(b, y=np.eye(3)[Y][..., None]), ValueError,
     r"y .*shape \(6, 3, 1\)"),
    ("fit_y_rows_mismatch", True, lambda b, t: fit(b, y=Y[:5]), ValueError,
     r"y must have one row per sample of X \(6\).*5 rows"),
    ("fit_y_empty", True, lambda b, t: fit(b, y=[]), ValueError, r"y .*\(6\).*0 rows"),
    ("mse_y_wrong_width", True, lambda b, t: mse_fit(b, y=np.zeros((N, 2))), ValueError,
     r"y must have shape \(n, 3\).*shape \(6, 2\)"),
    ("mse_y_1d_for_3_outputs", True, lambda b, t: mse_fit(b, y=np.zeros(N)), ValueError,
     r"y must have shape \(n, 3\).*shape \(6,\)"),
    ("mse_y_nan", True, lambda b, t: mse_fit(b, y=with_nan(np.zeros((N, C)))), ValueError,
     r"y\[1, 2\]=.*nan"),
    ("mse_y_object", True, lambda b, t: mse_fit(b, y=np.zeros((N, C), dtype=object)), TypeError,
     r"y .*dtype object"),
    ("bce_y_above_one", True, lambda b, t: bce_fit(b, [0, 1, 2.0, 0, 1, 1]), ValueError,
     r"y must hold binary targets in \[0, 1\].*2\.0"),
    ("bce_y_negative", True, lambda b, t: bce_fit(b, [0, 1, -0.5, 0, 1, 1]), ValueError,
     r"y must hold binary targets.*-0\.5"),

    # ---------------------------------------------------------------- train_on_batch
    ("tob_before_compile", True, lambda b, t: model(b, compiled=False).train_on_batch(X, Y),
     ValueError, r"compile\(loss=.*before train_on_batch"),
    ("tob_x_1d", True, lambda b, t: model(b).train_on_batch(X[0], Y[:1]), ValueError,
     r"x must be 2-D.*shape \(4,\)"),
    ("tob_x_nan", True, lambda b, t: model(b).train_on_batch(with_nan(X), Y), ValueError,
     r"x\[1, 2\]=.*nan"),
    ("tob_x_complex", True, lambda b, t: model(b).train_on_batch(CPLX, Y), TypeError,
     r"x .*dtype complex128"),
    ("tob_y_label_too_large", True, lambda b, t: model(b).train_on_batch(X, Y + 1), ValueError,
     r"y labels.*label .*3"),
    ("tob_y_rows_mismatch", True, lambda b, t: model(b).train_on_batch(X, Y[:2]), ValueError,
     r"y .*\(6\).*2 rows"),

    # ---------------------------------------------------------------- predict
    ("predict_unbuilt", True, lambda b, t: unbuilt(b).predict(X[0]), ValueError,
     r"built before predict.*input_dim"),
    ("predict_X_width", True, lambda b, t: model(b).predict(np.ones((3, 7))), ValueError,
     r"X must have 4 features.*shape \(3, 7\)"),
    ("predict_X_nan", True, lambda b, t: model(b).predict(with_nan(X)), ValueError,
     r"X\[1, 2\]=.*nan"),
    ("predict_X_empty", True, lambda b, t: model(b).predict(np.ones((0, D))), ValueError,
     r"X .*shape \(0, 4\)"),
    ("predict_X_object", True, lambda b, t: model(b).predict(OBJ), TypeError,
     r"X .*dtype object"),
    ("predict_X_bytes", True, lambda b, t: model(b).predict(STR.astype("S1")), TypeError,
     r"X .*dtype \|S1"),
    ("predict_batch_size_zero", True, lambda b, t: model(b).predict(X, batch_size=0), ValueError,
     r"batch_size=0\b"),
    ("predict_batch_size_float", True, lambda b, t: model(b).predict(X, batch_size=2.0),
     TypeError, r"batch_size=2\.0"),

    # ---------------------------------------------------------------- evaluate
    ("evaluate_before_compile", True, lambda b, t: model(b, compiled=False).evaluate(X, Y),
     ValueError, r"compile\(loss=.*before evaluate"),
    ("evaluate_X_inf", True, lambda b, t: model(b).evaluate(with_nan(X, (0, 0), math.inf), Y),
     ValueError, r"X\[0, 0\]=.*inf"),
    ("evaluate_y_label_negative", True, lambda b, t: model(b).evaluate(X, Y - 1), ValueError,
     r"y labels.*label .*-1"),
    ("evaluate_batch_size_negative", True, lambda b, t: model(b).evaluate(X, Y, batch_size=-1),
     ValueError, r"batch_size=-1\b"),

    # ---------------------------------------------------------------- optimizers
    ("sgd_lr_zero", False, lambda b, t: fnn.SGD(lr=0), ValueError, r"lr=0\.0"),
    ("sgd_lr_negative", False, lambda b, t: fnn.SGD(lr=-0.1), ValueError, r"lr=-0\.1"),
    ("sgd_lr_nan", False, lambda b, t: fnn.SGD(lr=math.nan), ValueError, r"lr=nan"),
    ("sgd_lr_inf", False, lambda b, t: fnn.SGD(lr=math.inf), ValueError, r"lr=inf"),
    ("sgd_lr_str", False, lambda b, t: fnn.SGD(lr="0.1"), TypeError, r"lr='0\.1'"),
    ("sgd_momentum_one", False, lambda b, t: fnn.SGD(momentum=1.0), ValueError,
     r"momentum=1\.0"),
    ("sgd_momentum_negative", False, lambda b, t: fnn.SGD(momentum=-0.5), ValueError,
     r"momentum=-0\.5"),
    ("sgd_nesterov_without_momentum", False, lambda b, t: fnn.SGD(nesterov=True), ValueError,
     r"nesterov.*momentum=0"),
    ("sgd_nesterov_int", False, lambda b, t: fnn.SGD(momentum=0.9, nesterov=1), TypeError,
     r"nesterov=1\b"),
    ("sgd_weight_decay_negative", False, lambda b, t: fnn.SGD(weight_decay=-1e-4), ValueError,
     r"weight_decay=-0\.0001"),
    ("adam_lr_zero", False, lambda b, t: fnn.Adam(lr=0.0), ValueError, r"lr=0\.0"),
    ("adam_lr_nan", False, lambda b, t: fnn.Adam(lr=float("nan")), ValueError, r"lr=nan"),
    ("adam_beta1_one", False, lambda b, t: fnn.Adam(beta1=1.0), ValueError, r"beta1=1\.0"),
    ("adam_beta1_negative", False, lambda b, t: fnn.Adam(beta1=-0.1), ValueError,
     r"beta1=-0\.1"),
    ("adam_beta2_above_one", False, lambda b, t: fnn.Adam(beta2=1.5), ValueError,
     r"beta2=1\.5"),
    ("adam_beta2_nan", False, lambda b, t: fnn.Adam(beta2=math.nan), ValueError, r"beta2=nan"),
    ("adam_eps_zero", False, lambda b, t: fnn.Adam(eps=0.0), ValueError, r"eps=0\.0"),
    ("adam_beta1_str", False, lambda b, t: fnn.Adam(beta1="0.9"), TypeError, r"beta1='0\.9'"),

    # ---------------------------------------------------------------- set_weights
    ("model_set_weights_count", True,
     lambda b, t: model(b).set_weights(good_weights(b)[:3]), ValueError,
     r"weights must be a list of 4 arrays.*Received: 3\b"),
    ("model_set_weights_array", True,
     lambda b, t: model(b).set_weights(np.zeros(4)), ValueError,
     r"weights must be a list.*Received: ndarray"),
    ("model_set_weights_W_shape", True,
     lambda b, t: model(b).set_weights(replace(good_weights(b), 0, np.zeros((5, 4)))),
     ValueError, r"kernel of dense\w* must have shape \(4, 5\).*shape \(5, 4\)"),
    ("model_set_weights_b_shape", True,
     lambda b, t: model(b).set_weights(replace(good_weights(b), 3, np.zeros((1, 3)))),
     ValueError, r"bias of dense\w* must have shape \(3,\).*shape \(1, 3\)"),
    ("model_set_weights_nan", True,
     lambda b, t: model(b).set_weights(replace(good_weights(b), 2, with_nan(np.zeros((5, 3))))),
     ValueError, r"kernel\[1, 2\]=.*nan"),
    ("model_set_weights_object", True,
     lambda b, t: model(b).set_weights(replace(good_weights(b), 1, np.zeros(5, dtype=object))),
     TypeError, r"bias .*dtype object"),
    ("dense_set_weights_transposed", True,
     lambda b, t: dense_built(b).set_weights([np.zeros((5, 4)), np.zeros(5)]), ValueError,
     r"kernel of dense\w* must have shape \(4, 5\).*shape \(5, 4\)"),
    ("dense_set_weights_one_array", True,
     lambda b, t: dense_built(b).set_weights([np.zeros((4, 5))]), ValueError,
     r"weights of dense\w* must be a list of 2 arrays \['kernel', 'bias'\].*Received: \[array"),
    ("dense_set_weights_b_inf", True,
     lambda b, t: dense_built(b).set_weights([np.zeros((4, 5)), with_nan(np.zeros(5), 3,
                                                                          math.inf)]),
     ValueError, r"bias\[3\]=.*inf"),
    ("dense_set_weights_overflow_strict_numpy", True,
     lambda b, t: strict(lambda: dense_built(b).set_weights([np.full((4, 5), 1e300),
                                                              np.zeros(5)])),
     ValueError, r"kernel\[0, 0\]=.*inf"),
    ("dense_set_weights_complex", True,
     lambda b, t: dense_built(b).set_weights([np.zeros((4, 5), complex), np.zeros(5)]),
     TypeError, r"kernel .*dtype complex128"),
    ("dense_set_weights_unbuilt", False,
     lambda b, t: fnn.Dense(3).set_weights([np.zeros((2, 3)), np.zeros(3)]), ValueError,
     r"Dense layer has no weights yet.*input_dim"),

    # ---------------------------------------------------------------- save / load
    ("save_unbuilt", True, lambda b, t: unbuilt(b).save(t / "m.fnn"), ValueError,
     r"built before save.*input_dim"),
    ("save_path_int", True, lambda b, t: model(b).save(123), TypeError, r"path.*123"),
    ("load_path_int", False, lambda b, t: fnn.load(123), TypeError, r"path.*123"),
    ("load_random_bytes", False, lambda b, t: fnn.load(write(t, b"not a model file at all!")),
     ValueError, r"bad\.fnn.*not a valid fastnn model file: bad magic b'not a mo'"),
    ("load_empty_file", False, lambda b, t: fnn.load(write(t, b"")), ValueError,
     r"not a valid fastnn model file: 0 bytes"),
    ("load_backend_unknown", True, lambda b, t: fnn.load(saved(b, t), backend="gpu"),
     ValueError, r"backend='gpu'"),

    # ---------------------------------------------------------------- thread control
    ("set_num_threads_zero", False, lambda b, t: fnn.set_num_threads(0), ValueError, r"n=0\b"),
    ("set_num_threads_negative", False, lambda b, t: fnn.set_num_threads(-2), ValueError,
     r"n=-2\b"),
    ("set_num_threads_float", False, lambda b, t: fnn.set_num_threads(2.0), TypeError,
     r"n=2\.0"),
    ("set_num_threads_str", False, lambda b, t: fnn.set_num_threads("2"), TypeError, r"n='2'"),
    ("threads_context_zero", False, lambda b, t: fnn.threads(0).__enter__(), ValueError,
     r"n=0\b"),

    # ---------------------------------------------------------------- fastnn.ops.matmul
    ("matmul_a_1d", False, lambda b, t: fnn.ops.matmul(np.ones(3), np.ones((3, 2))),
     ValueError, r"a must be 2-D.*shape \(3,\)"),
    ("matmul_b_3d", False, lambda b, t: fnn.ops.matmul(np.ones((2, 3)), np.ones((3, 2, 1))),
     ValueError, r"b must be 2-D.*shape \(3, 2, 1\)"),
    ("matmul_inner_mismatch", False, lambda b, t: fnn.ops.matmul(np.ones((2, 3)), np.ones((4, 2))),
     ValueError, r"a is \(2, 3\), b is \(4, 2\)"),
    ("matmul_a_nan", False, lambda b, t: fnn.ops.matmul(with_nan(np.ones((2, 3)), (1, 0)),
                                                        np.ones((3, 2))),
     ValueError, r"a\[1, 0\]=.*nan"),
    ("matmul_b_inf", False, lambda b, t: fnn.ops.matmul(np.ones((2, 3)),
                                                        with_nan(np.ones((3, 2)), (2, 1), math.inf)),
     ValueError, r"b\[2, 1\]=.*inf"),
    ("matmul_b_inf_strict_numpy", False,
     lambda b, t: strict(lambda: fnn.ops.matmul(np.ones((2, 3), np.float32),
                                                with_nan(np.ones((3, 2)), (0, 1), math.inf)
                                                .astype(np.float32))),
     ValueError, r"b\[0, 1\]=.*inf"),
    ("matmul_a_complex", False, lambda b, t: fnn.ops.matmul(np.ones((2, 3), complex),
                                                            np.ones((3, 2))),
     TypeError, r"a .*dtype complex128"),
    ("matmul_b_object", False, lambda b, t: fnn.ops.matmul(np.ones((2, 3)),
                                                           np.ones((3, 2), dtype=object)),
     TypeError, r"b .*dtype object"),
    ("matmul_a_string", False, lambda b, t: fnn.ops.matmul([["1", "2"]], np.ones((2, 2))),
     TypeError, r"a .*dtype <U1"),
    ("matmul_a_ragged", False, lambda b, t: fnn.ops.matmul([[1, 2], [3]], np.ones((2, 2))),
     ValueError, r"a .*rectangular.*list"),
    ("matmul_out_shape", False, lambda b, t: fnn.ops.matmul(np.ones((2, 3)), np.ones((3, 2)),
                                                            out=np.empty((2, 3))),
     ValueError, r"out must have shape \(2, 2\).*Received: out with shape \(2, 3\)"),
    ("matmul_out_dtype", False, lambda b, t: fnn.ops.matmul(np.ones((2, 3)), np.ones((3, 2)),
                                                            out=np.empty((2, 2), np.float32)),
     ValueError, r"out must have .*dtype float64.*dtype float32"),
    ("matmul_out_strided", False, lambda b, t: fnn.ops.matmul(np.ones((2, 3)), np.ones((3, 2)),
                                                              out=np.empty((2, 4))[:, ::2]),
     ValueError, r"out must be C-contiguous.*c_contiguous=False"),
    ("matmul_out_readonly", False, lambda b, t: fnn.ops.matmul(
        np.ones((2, 3)), np.ones((3, 2)), out=np.frombuffer(bytes(32)).reshape(2, 2)),
     ValueError, r"out must be .*writeable.*writeable=False"),
    ("matmul_out_list", False, lambda b, t: fnn.ops.matmul(np.ones((2, 3)), np.ones((3, 2)),
                                                           out=[[0, 0], [0, 0]]),
     TypeError, r"out must be a NumPy array.*out of type list"),

    # ---------------------------------------------------------------- callbacks
    ("early_stopping_patience_negative", False, lambda b, t: EarlyStopping(patience=-1),
     ValueError, r"patience=-1\b"),
    ("early_stopping_monitor_int", False, lambda b, t: EarlyStopping(monitor=3), TypeError,
     r"monitor=3\b"),
    ("early_stopping_mode_unknown", False, lambda b, t: EarlyStopping(mode="up"), ValueError,
     r"mode='up'"),
    ("early_stopping_min_delta_nan", False, lambda b, t: EarlyStopping(min_delta=math.nan),
     ValueError, r"min_delta=nan"),
    ("early_stopping_restore_str", False,
     lambda b, t: EarlyStopping(restore_best_weights="yes"), TypeError,
     r"restore_best_weights='yes'"),
    ("early_stopping_monitor_missing", True,
     lambda b, t: fit(b, callbacks=[EarlyStopping(monitor="val_loss")]), ValueError,
     r"monitor='val_loss' is not in the epoch logs"),
    ("checkpoint_filepath_int", False, lambda b, t: ModelCheckpoint(3), TypeError,
     r"filepath=3\b"),
    ("checkpoint_save_best_only_str", False,
     lambda b, t: ModelCheckpoint("m.fnn", save_best_only="no"), TypeError,
     r"save_best_only='no'"),
    ("lr_scheduler_not_callable", False, lambda b, t: LearningRateScheduler(0.1), TypeError,
     r"schedule=0\.1"),
    ("lr_scheduler_returns_negative", True,
     lambda b, t: fit(b, callbacks=[LearningRateScheduler(lambda epoch: -1.0)]), ValueError,
     r"lr=-1\.0"),
    ("lr_scheduler_returns_nan", True,
     lambda b, t: fit(b, callbacks=[LearningRateScheduler(lambda epoch, lr: math.nan)]),
     ValueError, r"lr=nan"),

    # ---------------------------------------------------------------- depthwise / separable
    ("dwconv2d_samples_2d", True, lambda b, t: shaped(b, [fnn.DepthwiseConv2D(3)], (8, 1)),
     ValueError, r"depthwise_conv2d takes .*\(height, width, channels\).*input shape \(8, 1\)"),
    ("sepconv1d_samples_3d", True, lambda b, t: shaped(b, [fnn.SeparableConv1D(2, 3)], (8, 8, 1)),
     ValueError, r"separable_conv1d takes .*\(steps, channels\).*input shape \(8, 8, 1\)"),
    ("dwconv2d_channels_first", False,
     lambda b, t: fnn.DepthwiseConv2D(3, data_format="channels_first"), ValueError,
     r"channels-last.*data_format='channels_first'"),
    ("dwconv2d_kernel_larger_than_input", True,
     lambda b, t: shaped(b, [fnn.DepthwiseConv2D(5)], (4, 4, 2)), ValueError,
     r"5x5 kernel .*does not fit an input of shape \(4, 4, 2\) with padding='valid'"),
    ("sepconv2d_dilated_kernel_larger", True,
     lambda b, t: shaped(b, [fnn.SeparableConv2D(2, 3, dilation_rate=(1, 3))], (8, 6, 1)),
     ValueError, r"3x3 kernel \(dilation \(1, 3\)\) does not fit .*\(8, 6, 1\)"),
    ("dwconv2d_depth_multiplier_zero", False,
     lambda b, t: fnn.DepthwiseConv2D(3, depth_multiplier=0), ValueError,
     r"depth_multiplier=0\b"),
    ("dwconv2d_depth_multiplier_float", False,
     lambda b, t: fnn.DepthwiseConv2D(3, depth_multiplier=1.5), TypeError,
     r"depth_multiplier=1\.5"),
    ("sepconv2d_depth_multiplier_2_31", False,
     lambda b, t: fnn.SeparableConv2D(2, 3, depth_multiplier=2**31), ValueError,
     r"depth_multiplier=2147483648"),
    ("dwconv2d_channels_times_multiplier_2_31", True,
     lambda b, t: shaped(b, [fnn.DepthwiseConv2D(1, depth_multiplier=2**30)], (1, 1, 2)),
     ValueError, r"2 channels times depth_multiplier=1073741824 must be below 2\*\*31"),
    ("dwconv2d_kernel_size_zero", False, lambda b, t: fnn.DepthwiseConv2D(0), ValueError,
     r"kernel_size=0\b"),
    ("dwconv1d_kernel_size_two_axes", False, lambda b, t: fnn.DepthwiseConv1D((3, 3)),
     ValueError, r"kernel_size=\(3, 3\)"),
    ("sepconv2d_strides_negative", False,
     lambda b, t: fnn.SeparableConv2D(2, 3, strides=(1, -2)), ValueError, r"strides=-2\b"),
    ("dwconv2d_padding_causal", False, lambda b, t: fnn.DepthwiseConv2D(3, padding="causal"),
     ValueError, r"padding='causal'"),
    ("sepconv2d_filters_zero", False, lambda b, t: fnn.SeparableConv2D(0, 3), ValueError,
     r"filters=0\b"),
    ("sepconv1d_filters_float", False, lambda b, t: fnn.SeparableConv1D(2.0, 3), TypeError,
     r"filters=2\.0"),
    ("sepconv2d_pointwise_initializer_unknown", False,
     lambda b, t: fnn.SeparableConv2D(2, 3, pointwise_initializer="magic"), ValueError,
     r"pointwise_initializer.*magic"),
    ("dwconv2d_depthwise_regularizer_unknown", False,
     lambda b, t: fnn.DepthwiseConv2D(3, depthwise_regularizer="l3"), ValueError,
     r"depthwise_regularizer.*l3"),
    ("dwconv2d_activation_unknown", False,
     lambda b, t: fnn.DepthwiseConv2D(3, activation="swishy"), ValueError,
     r"activation='swishy'"),
    ("sepconv2d_use_bias_str", False, lambda b, t: fnn.SeparableConv2D(2, 3, use_bias="no"),
     TypeError, r"use_bias='no'"),
    ("dwconv2d_predict_channels", True,
     lambda b, t: shaped(b, [fnn.DepthwiseConv2D(3)], (5, 5, 1)).predict(np.ones((2, 5, 5, 2))),
     ValueError, r"X must have shape \(n, 5, 5, 1\).*shape \(2, 5, 5, 2\)"),
    ("sepconv2d_predict_nan", True,
     lambda b, t: shaped(b, [fnn.SeparableConv2D(2, 3)], (5, 5, 1)).predict(
         with_nan(np.ones((2, 5, 5, 1)), (1, 3, 2, 0))),
     ValueError, r"X\[1, 3, 2, 0\]=.*nan"),
    ("dwconv2d_set_weights_shape", True,
     lambda b, t: shaped(b, [fnn.DepthwiseConv2D(3, depth_multiplier=2)], (5, 5, 3)).layers[0]
     .set_weights([np.ones((3, 3, 3, 1)), np.ones(6)]), ValueError,
     r"depthwise_kernel of depthwise_conv2d must have shape \(3, 3, 3, 2\).*\(3, 3, 3, 1\)"),

    # ---------------------------------------------------------------- Conv2D / Conv1D
    ("conv2d_samples_2d", True, lambda b, t: shaped(b, [fnn.Conv2D(2, 3)], (8, 1)), ValueError,
     r"conv2d takes one input of shape \(height, width, channels\).*input shape \(8, 1\)"),
    ("conv2d_samples_4d", True, lambda b, t: shaped(b, [fnn.Conv2D(2, 3)], (8, 8, 1, 1)),
     ValueError, r"conv2d takes .*\(height, width, channels\).*input shape \(8, 8, 1, 1\)"),
    ("conv1d_samples_3d", True, lambda b, t: shaped(b, [fnn.Conv1D(2, 3)], (8, 8, 1)),
     ValueError, r"conv1d takes .*\(steps, channels\).*input shape \(8, 8, 1\)"),
    ("conv2d_functional_flat_input", True,
     lambda b, t: fnn.Model(fnn.Input((16,)), fnn.Conv2D(2, 3)(fnn.Input((16,))), backend=b),
     ValueError, r"conv2d\w* takes .*\(height, width, channels\).*input shape \(16,\)"),
    ("conv2d_channels_first", False, lambda b, t: fnn.Conv2D(2, 3, data_format="channels_first"),
     ValueError, r"channels-last.*data_format='channels_first'"),
    ("conv1d_channels_first", False, lambda b, t: fnn.Conv1D(2, 3, data_format="channels_first"),
     ValueError, r"channels-last.*data_format='channels_first'"),
    ("conv2d_data_format_int", False, lambda b, t: fnn.Conv2D(2, 3, data_format=1), ValueError,
     r"data_format=1\b"),
    ("conv2d_channels_first_array", True,
     lambda b, t: shaped(b, [fnn.Conv2D(2, 3)], (5, 5, 3)).predict(np.ones((2, 3, 5, 5))),
     ValueError, r"X must have shape \(n, 5, 5, 3\).*shape \(2, 3, 5, 5\)"),
    ("conv2d_kernel_larger_than_input", True,
     lambda b, t: shaped(b, [fnn.Conv2D(2, 5)], (4, 4, 1)), ValueError,
     r"5x5 kernel .*does not fit an input of shape \(4, 4, 1\) with padding='valid'"),
    ("conv2d_kernel_larger_on_one_axis", True,
     lambda b, t: shaped(b, [fnn.Conv2D(2, (2, 7))], (8, 6, 1)), ValueError,
     r"2x7 kernel .*\(8, 6, 1\)"),
    ("conv2d_dilated_kernel_larger_than_input", True,
     lambda b, t: shaped(b, [fnn.Conv2D(2, 3, dilation_rate=2)], (4, 4, 1)), ValueError,
     r"3x3 kernel \(dilation \(2, 2\)\) does not fit .*\(4, 4, 1\)"),
    ("conv2d_kernel_larger_after_conv", True,
     lambda b, t: shaped(b, [fnn.Conv2D(2, 3), fnn.Conv2D(2, 3), fnn.Conv2D(2, 3)], (6, 6, 1)),
     ValueError, r"3x3 kernel .*input of shape \(2, 2, 2\)"),
    ("conv1d_kernel_larger_than_input", True,
     lambda b, t: shaped(b, [fnn.Conv1D(2, 6)], (5, 1)), ValueError,
     r"a 6 kernel .*\(5, 1\) with padding='valid'"),
    ("conv2d_strides_zero", False, lambda b, t: fnn.Conv2D(2, 3, strides=0), ValueError,
     r"strides=0\b"),
    ("conv2d_strides_negative", False, lambda b, t: fnn.Conv2D(2, 3, strides=(1, -2)),
     ValueError, r"strides=-2\b"),
    ("conv1d_strides_zero", False, lambda b, t: fnn.Conv1D(2, 3, strides=0), ValueError,
     r"strides=0\b"),
    ("conv2d_strides_three", False, lambda b, t: fnn.Conv2D(2, 3, strides=(1, 1, 1)),
     ValueError, r"strides=\(1, 1, 1\)"),
    ("conv2d_dilation_zero", False, lambda b, t: fnn.Conv2D(2, 3, dilation_rate=0), ValueError,
     r"dilation_rate=0\b"),
    ("conv2d_dilation_negative", False, lambda b, t: fnn.Conv2D(2, 3, dilation_rate=(-1, 1)),
     ValueError, r"dilation_rate=-1\b"),
    ("conv1d_dilation_negative", False, lambda b, t: fnn.Conv1D(2, 3, dilation_rate=-3),
     ValueError, r"dilation_rate=-3\b"),
    ("conv2d_kernel_size_float", False, lambda b, t: fnn.Conv2D(2, 2.5), TypeError,
     r"kernel_size=2\.5"),
    ("conv2d_kernel_size_float_in_tuple", False, lambda b, t: fnn.Conv2D(2, (3, 3.0)),
     TypeError, r"kernel_size=3\.0"),
    ("conv2d_kernel_size_str", False, lambda b, t: fnn.Conv2D(2, "3"), TypeError,
     r"kernel_size='3'"),
    ("conv2d_kernel_size_bool", False, lambda b, t: fnn.Conv2D(2, True), TypeError,
     r"kernel_size=True"),
    ("conv2d_kernel_size_none", False, lambda b, t: fnn.Conv2D(2, None), TypeError,
     r"kernel_size=None"),
    ("conv2d_kernel_size_zero", False, lambda b, t: fnn.Conv2D(2, 0), ValueError,
     r"kernel_size=0\b"),
    ("conv2d_kernel_size_three_axes", False, lambda b, t: fnn.Conv2D(2, (3, 3, 3)), ValueError,
     r"kernel_size=\(3, 3, 3\)"),
    ("conv1d_kernel_size_two_axes", False, lambda b, t: fnn.Conv1D(2, (3, 3)), ValueError,
     r"kernel_size=\(3, 3\)"),
    ("conv2d_kernel_size_2_31", False, lambda b, t: fnn.Conv2D(2, 2**31), ValueError,
     r"kernel_size=2147483648"),
    ("conv2d_padding_unknown", False, lambda b, t: fnn.Conv2D(2, 3, padding="full"), ValueError,
     r"padding='full'"),
    ("conv2d_padding_causal", False, lambda b, t: fnn.Conv2D(2, 3, padding="causal"),
     ValueError, r"padding='causal'"),
    ("conv1d_padding_none", False, lambda b, t: fnn.Conv1D(2, 3, padding=None), ValueError,
     r"padding=None"),
    ("conv2d_filters_zero", False, lambda b, t: fnn.Conv2D(0, 3), ValueError, r"filters=0\b"),
    ("conv2d_filters_negative", False, lambda b, t: fnn.Conv2D(-4, 3), ValueError,
     r"filters=-4\b"),
    ("conv2d_filters_float", False, lambda b, t: fnn.Conv2D(2.0, 3), TypeError,
     r"filters=2\.0"),
    ("conv2d_filters_2_31", False, lambda b, t: fnn.Conv2D(2**31, 3), ValueError,
     r"filters=2147483648"),
    ("conv1d_filters_zero", False, lambda b, t: fnn.Conv1D(0, 3), ValueError, r"filters=0\b"),
    ("conv2d_activation_unknown", False, lambda b, t: fnn.Conv2D(2, 3, activation="swishy"),
     ValueError, r"activation='swishy'"),
    ("conv2d_use_bias_str", False, lambda b, t: fnn.Conv2D(2, 3, use_bias="no"), TypeError,
     r"use_bias='no'"),
    ("conv2d_predict_channels", True,
     lambda b, t: shaped(b, [fnn.Conv2D(2, 3)], (5, 5, 1)).predict(np.ones((2, 5, 5, 2))),
     ValueError, r"X must have shape \(n, 5, 5, 1\).*shape \(2, 5, 5, 2\)"),
    ("conv2d_predict_flat", True,
     lambda b, t: shaped(b, [fnn.Conv2D(2, 3)], (5, 5, 1)).predict(np.ones((2, 25))),
     ValueError, r"X must have shape \(n, 5, 5, 1\).*shape \(2, 25\)"),
    ("conv2d_predict_nan", True,
     lambda b, t: shaped(b, [fnn.Conv2D(2, 3)], (5, 5, 1)).predict(
         with_nan(np.ones((2, 5, 5, 1)), (1, 3, 2, 0))),
     ValueError, r"X\[1, 3, 2, 0\]=.*nan"),
    ("conv1d_fit_inf", True,
     lambda b, t: shaped(b, [fnn.Conv1D(2, 3), fnn.Flatten(), fnn.Dense(C, activation="softmax")],
                         (5, 1), compiled=True).fit(
         with_nan(np.ones((N, 5, 1)), (4, 2, 0), -math.inf), Y, verbose=0),
     ValueError, r"X\[4, 2, 0\]=.*-inf"),

    # ---------------------------------------------------------------- 3-D layers
    ("conv3d_samples_3d", True, lambda b, t: shaped(b, [fnn.Conv3D(2, 3)], (8, 8, 1)),
     ValueError, r"conv3d takes one input of shape \(depth, height, width, channels\).*input "
                 r"shape \(8, 8, 1\)"),
    ("conv3d_kernel_larger_than_input", True,
     lambda b, t: shaped(b, [fnn.Conv3D(2, (2, 5, 2))], (4, 4, 4, 1)), ValueError,
     r"2x5x2 kernel .*does not fit an input of shape \(4, 4, 4, 1\) with padding='valid'"),
    ("conv3d_kernel_size_two_axes", False, lambda b, t: fnn.Conv3D(2, (3, 3)), ValueError,
     r"kernel_size must be an integer or a tuple of 3 integers.*kernel_size=\(3, 3\)"),
    ("conv3d_strides_zero", False, lambda b, t: fnn.Conv3D(2, 3, strides=(1, 0, 1)),
     ValueError, r"strides=0\b"),
    ("conv3d_padding_causal", False, lambda b, t: fnn.Conv3D(2, 3, padding="causal"),
     ValueError, r"padding='causal'"),
    ("conv3d_channels_first", False, lambda b, t: fnn.Conv3D(2, 3, data_format="channels_first"),
     ValueError, r"channels-last.*data_format='channels_first'"),
    ("conv3d_predict_shape", True,
     lambda b, t: shaped(b, [fnn.Conv3D(2, 3)], (4, 4, 4, 1)).predict(np.ones((2, 4, 4, 4))),
     ValueError, r"X must have shape \(n, 4, 4, 4, 1\).*shape \(2, 4, 4, 4\)"),
    ("maxpool3d_samples_2d", True, lambda b, t: shaped(b, [fnn.MaxPooling3D()], (4, 4, 1)),
     ValueError, r"max_pooling3d\w* takes .*\(depth, height, width, channels\)"),
    ("avgpool3d_pool_larger_than_input", True,
     lambda b, t: shaped(b, [fnn.AveragePooling3D((2, 2, 3))], (4, 4, 2, 1)), ValueError,
     r"pool of \(2, 2, 3\) does not fit an input of shape \(4, 4, 2, 1\)"),
    ("global_maxpool3d_samples_2d", True,
     lambda b, t: shaped(b, [fnn.GlobalMaxPooling3D()], (4, 4, 1)), ValueError,
     r"global_max_pooling3d\w* takes .*\(depth, height, width, channels\)"),

    ("upsampling3d_samples_2d", True, lambda b, t: shaped(b, [fnn.UpSampling3D()], (4, 4, 1)),
     ValueError, r"up_sampling3d\w* takes .*\(depth, height, width, channels\)"),
    ("zeropadding3d_two_pairs", False, lambda b, t: fnn.ZeroPadding3D(((1, 1), (1, 1))),
     ValueError, r"padding must be an int, a triple .*padding=\(\(1, 1\), \(1, 1\)\)"),
    ("cropping3d_leaves_nothing", True,
     lambda b, t: shaped(b, [fnn.Cropping3D(((1, 1), (0, 0), (0, 0)))], (2, 4, 4, 1)),
     ValueError, r"leaves nothing of an input of shape \(2, 4, 4, 1\)"),
    ("spatial_dropout3d_samples_2d", True,
     lambda b, t: shaped(b, [fnn.SpatialDropout3D(0.5)], (4, 4, 1)), ValueError,
     r"\(depth, height, width, channels\).*input shape \(4, 4, 1\)"),

    # ---------------------------------------------------------------- Conv1DTranspose
    ("conv1d_transpose_samples_3d", True,
     lambda b, t: shaped(b, [fnn.Conv1DTranspose(2, 3)], (8, 8, 1)), ValueError,
     r"conv1d_transpose takes one input of shape \(steps, channels\).*input shape \(8, 8, 1\)"),
    ("conv1d_transpose_output_padding_at_stride", False,
     lambda b, t: fnn.Conv1DTranspose(2, 3, strides=2, output_padding=2), ValueError,
     r"output_padding must be below the strides \(2,\)"),
    ("conv1d_transpose_output_padding_two_axes", False,
     lambda b, t: fnn.Conv1DTranspose(2, 3, strides=2, output_padding=(1, 1)), ValueError,
     r"output_padding=\(1, 1\)"),
    ("conv1d_transpose_output_padding_str", False,
     lambda b, t: fnn.Conv1DTranspose(2, 3, strides=2, output_padding="1"), TypeError,
     r"output_padding='1'"),
    ("conv1d_transpose_padding_causal", False,
     lambda b, t: fnn.Conv1DTranspose(2, 3, padding="causal"), ValueError, r"padding='causal'"),
    ("conv1d_transpose_kernel_size_two_axes", False,
     lambda b, t: fnn.Conv1DTranspose(2, (3, 3)), ValueError, r"kernel_size=\(3, 3\)"),
    ("conv1d_transpose_output_of_no_steps", True,
     lambda b, t: shaped(b, [fnn.Conv1DTranspose(2, 2, padding="same", output_padding=0)],
                         (1, 1)), ValueError, r"gives an output of \(0,\) positions"),
    ("conv1d_transpose_predict_channels", True,
     lambda b, t: shaped(b, [fnn.Conv1DTranspose(2, 3)], (5, 1)).predict(np.ones((2, 5, 2))),
     ValueError, r"X must have shape \(n, 5, 1\).*shape \(2, 5, 2\)"),
    ("conv1d_transpose_fit_nan", True,
     lambda b, t: shaped(b, [fnn.Conv1DTranspose(2, 3, strides=2), fnn.Flatten(),
                             fnn.Dense(C, activation="softmax")], (5, 1), compiled=True).fit(
         with_nan(np.ones((N, 5, 1)), (3, 1, 0)), Y, verbose=0),
     ValueError, r"X\[3, 1, 0\]=.*nan"),
    ("conv1d_transpose_backward_dout_shape", True,
     lambda b, t: conv1d_transpose_backward(b, np.ones((N, 7, 3))), ValueError,
     r"dout"),

    # ---------------------------------------------------------------- pooling
    ("maxpool2d_pool_size_zero", False, lambda b, t: fnn.MaxPooling2D(0), ValueError,
     r"pool_size=0\b"),
    ("avgpool2d_pool_size_negative", False, lambda b, t: fnn.AveragePooling2D((2, -1)),
     ValueError, r"pool_size=-1\b"),
    ("maxpool1d_pool_size_zero", False, lambda b, t: fnn.MaxPooling1D(0), ValueError,
     r"pool_size=0\b"),
    ("maxpool2d_pool_size_float", False, lambda b, t: fnn.MaxPooling2D(2.0), TypeError,
     r"pool_size=2\.0"),
    ("maxpool2d_pool_size_three_axes", False, lambda b, t: fnn.MaxPooling2D((2, 2, 2)),
     ValueError, r"pool_size=\(2, 2, 2\)"),
    ("maxpool2d_window_larger_than_input", True,
     lambda b, t: shaped(b, [fnn.MaxPooling2D(5)], (4, 4, 1)), ValueError,
     r"max_pooling2d\w*: a pool of \(5, 5\) does not fit an input of shape \(4, 4, 1\) with "
     r"padding='valid'"),
    ("avgpool2d_window_larger_on_one_axis", True,
     lambda b, t: shaped(b, [fnn.AveragePooling2D((1, 5))], (8, 4, 1)), ValueError,
     r"a pool of \(1, 5\) does not fit an input of shape \(8, 4, 1\)"),
    ("avgpool1d_window_larger_than_input", True,
     lambda b, t: shaped(b, [fnn.AveragePooling1D(6)], (5, 1)), ValueError,
     r"average_pooling1d\w*: a pool of \(6,\) does not fit .*\(5, 1\)"),
    ("maxpool2d_padding_unknown", False, lambda b, t: fnn.MaxPooling2D(padding="full"),
     ValueError, r"padding='full'"),
    ("maxpool1d_padding_causal", False, lambda b, t: fnn.MaxPooling1D(padding="causal"),
     ValueError, r"padding='causal'"),
    ("maxpool2d_strides_zero", False, lambda b, t: fnn.MaxPooling2D(2, strides=0), ValueError,
     r"strides=0\b"),
    ("avgpool1d_strides_negative", False, lambda b, t: fnn.AveragePooling1D(2, strides=-1),
     ValueError, r"strides=-1\b"),
    ("maxpool2d_channels_first", False,
     lambda b, t: fnn.MaxPooling2D(data_format="channels_first"), ValueError,
     r"channels-last.*data_format='channels_first'"),
    ("global_avgpool2d_channels_first", False,
     lambda b, t: fnn.GlobalAveragePooling2D(data_format="channels_first"), ValueError,
     r"channels-last.*data_format='channels_first'"),
    ("maxpool2d_samples_2d", True, lambda b, t: shaped(b, [fnn.MaxPooling2D()], (4, 1)),
     ValueError, r"max_pooling2d\w* takes .*\(height, width, channels\).*input shape \(4, 1\)"),
    ("global_maxpool1d_samples_3d", True,
     lambda b, t: shaped(b, [fnn.GlobalMaxPooling1D()], (4, 4, 1)), ValueError,
     r"global_max_pooling1d\w* takes .*\(steps, channels\).*input shape \(4, 4, 1\)"),
    ("global_avgpool2d_keepdims_str", False,
     lambda b, t: fnn.GlobalAveragePooling2D(keepdims="yes"), TypeError, r"keepdims='yes'"),
    ("maxpool2d_predict_shape", True,
     lambda b, t: shaped(b, [fnn.MaxPooling2D()], (4, 4, 1)).predict(np.ones((2, 4, 5, 1))),
     ValueError, r"X must have shape \(n, 4, 4, 1\).*shape \(2, 4, 5, 1\)"),

    # ---------------------------------------------------------------- recurrent layers
    ("simple_rnn_samples_1d", True, lambda b, t: shaped(b, [fnn.SimpleRNN(U)], (5,)),
     ValueError, r"simple_rnn\w* takes sequences of shape \(steps, features\).*input shape "
                 r"\(5,\)"),
    ("lstm_samples_1d", True, lambda b, t: shaped(b, [fnn.LSTM(U)], (5,)), ValueError,
     r"lstm\w* takes sequences .*input shape \(5,\)"),
    ("gru_samples_1d", True, lambda b, t: shaped(b, [fnn.GRU(U)], (5,)), ValueError,
     r"gru\w* takes sequences .*input shape \(5,\)"),
    ("bidirectional_samples_1d", True,
     lambda b, t: shaped(b, [fnn.Bidirectional(fnn.LSTM(U))], (5,)), ValueError,
     r"forward_lstm takes sequences .*input shape \(5,\)"),
    ("lstm_functional_samples_1d", True,
     lambda b, t: fnn.Model(fnn.Input((5,)), fnn.LSTM(U)(fnn.Input((5,))), backend=b),
     ValueError, r"lstm\w* takes sequences .*input shape \(5,\)"),
    ("gru_samples_3d", True, lambda b, t: shaped(b, [fnn.GRU(U)], (5, 2, 1)), ValueError,
     r"gru\w* takes sequences .*input shape \(5, 2, 1\)"),
    ("simple_rnn_units_zero", False, lambda b, t: fnn.SimpleRNN(0), ValueError, r"units=0\b"),
    ("lstm_units_negative", False, lambda b, t: fnn.LSTM(-2), ValueError, r"units=-2\b"),
    ("gru_units_float", False, lambda b, t: fnn.GRU(2.5), TypeError, r"units=2\.5"),
    ("lstm_units_whole_float", False, lambda b, t: fnn.LSTM(4.0), TypeError, r"units=4\.0"),
    ("simple_rnn_units_bool", False, lambda b, t: fnn.SimpleRNN(True), TypeError,
     r"units=True"),
    ("lstm_units_str", False, lambda b, t: fnn.LSTM("4"), TypeError, r"units='4'"),
    ("gru_units_2_31", False, lambda b, t: fnn.GRU(2**31), ValueError, r"units=2147483648"),
    ("simple_rnn_activation_softmax", False,
     lambda b, t: fnn.SimpleRNN(U, activation="softmax"), ValueError,
     r"Received: activation='softmax'"),
    ("lstm_activation_softmax", False, lambda b, t: fnn.LSTM(U, activation="softmax"),
     ValueError, r"Received: activation='softmax'"),
    ("gru_recurrent_activation_softmax", False,
     lambda b, t: fnn.GRU(U, recurrent_activation="softmax"), ValueError,
     r"Received: recurrent_activation='softmax'"),
    ("lstm_activation_leaky_relu", False, lambda b, t: fnn.LSTM(U, activation="leaky_relu"),
     ValueError, r"activation='leaky_relu'"),
    ("gru_activation_unknown", False, lambda b, t: fnn.GRU(U, activation="swishy"), ValueError,
     r"activation='swishy'"),
    ("simple_rnn_activation_int", False, lambda b, t: fnn.SimpleRNN(U, activation=3),
     ValueError, r"activation=3\b"),
    ("lstm_dropout_one", False, lambda b, t: fnn.LSTM(U, dropout=1.0), ValueError,
     r"Received: dropout=1\.0"),
    ("gru_recurrent_dropout_negative", False, lambda b, t: fnn.GRU(U, recurrent_dropout=-0.5),
     ValueError, r"Received: recurrent_dropout=-0\.5"),
    ("simple_rnn_recurrent_dropout_nan", False,
     lambda b, t: fnn.SimpleRNN(U, recurrent_dropout=float("nan")), ValueError,
     r"recurrent_dropout=nan"),
    ("lstm_dropout_str", False, lambda b, t: fnn.LSTM(U, dropout="0.1"), TypeError,
     r"dropout='0\.1'"),
    ("gru_seed_negative", False, lambda b, t: fnn.GRU(U, dropout=0.1, seed=-1), ValueError,
     r"seed=-1"),
    ("lstm_seed_2_64", False, lambda b, t: fnn.LSTM(U, seed=2**64), ValueError,
     r"seed=18446744073709551616"),
    ("gru_reset_after_int", False, lambda b, t: fnn.GRU(U, reset_after=0), TypeError,
     r"reset_after must be True or False. Received: reset_after=0\b"),
    ("gru_reset_after_str", False, lambda b, t: fnn.GRU(U, reset_after="no"), TypeError,
     r"reset_after='no'"),
    ("lstm_return_sequences_str", False, lambda b, t: fnn.LSTM(U, return_sequences="yes"),
     TypeError, r"return_sequences='yes'"),
    ("lstm_go_backwards_int", False, lambda b, t: fnn.LSTM(U, go_backwards=1), TypeError,
     r"go_backwards=1\b"),
    ("bidirectional_of_dense", False, lambda b, t: fnn.Bidirectional(fnn.Dense(3)), ValueError,
     r"layer=Dense\(3"),
    ("bidirectional_of_bidirectional", False,
     lambda b, t: fnn.Bidirectional(fnn.Bidirectional(fnn.LSTM(U))), ValueError,
     r"layer=Bidirectional\(LSTM\(3"),
    ("bidirectional_of_a_class", False, lambda b, t: fnn.Bidirectional(fnn.LSTM), ValueError,
     r"layer=<class 'fastnn\.layers\.recurrent\.LSTM'>"),
    ("bidirectional_merge_mode_unknown", False,
     lambda b, t: fnn.Bidirectional(fnn.LSTM(U), merge_mode="bogus"), ValueError,
     r"merge_mode='bogus'"),
    ("bidirectional_backward_layer_dense", False,
     lambda b, t: fnn.Bidirectional(fnn.LSTM(U), backward_layer=fnn.Dense(U)), ValueError,
     r"backward_layer=Dense\(3"),
    ("sequential_lstm_return_state", True,
     lambda b, t: shaped(b, [fnn.LSTM(U, return_state=True)], (T, F)), ValueError,
     r"LSTM\(3, .*returns several tensors.*Sequential.*fastnn\.Model"),
    ("sequential_gru_return_state_then_dense", True,
     lambda b, t: shaped(b, [fnn.GRU(U, return_state=True, return_sequences=True),
                             fnn.Dense(2)], (T, F)), ValueError,
     r"GRU\(3, .*returns several tensors.*Sequential"),
    ("sequential_bidirectional_return_state", True,
     lambda b, t: shaped(b, [fnn.Bidirectional(fnn.SimpleRNN(U, return_state=True))], (T, F)),
     ValueError, r"Bidirectional\(SimpleRNN\(3.*returns several tensors.*Sequential"),
    ("sequential_add_return_state", True,
     lambda b, t: added_then_built(b, fnn.LSTM(U, return_state=True), (T, F)),
     ValueError, r"LSTM\(3, .*returns several tensors.*Sequential"),
    ("lstm_one_initial_state", True, lambda b, t: with_states(b, fnn.LSTM(U), [(U,)]),
     ValueError, r"initial_state must be 2 tensor\(s\) of shape \(3,\).*shapes \[\(3,\)\]"),
    ("lstm_three_initial_states", True,
     lambda b, t: with_states(b, fnn.LSTM(U), [(U,)] * 3), ValueError,
     r"initial_state must be 2 tensor.*shapes \[\(3,\), \(3,\), \(3,\)\]"),
    ("lstm_initial_state_width", True,
     lambda b, t: with_states(b, fnn.LSTM(U), [(U,), (U + 1,)]), ValueError,
     r"initial_state must be 2 tensor.*shapes \[\(3,\), \(4,\)\]"),
    ("lstm_initial_state_rank", True,
     lambda b, t: with_states(b, fnn.LSTM(U), [(U,), (U, 1)]), ValueError,
     r"initial_state must be 2 tensor.*shapes \[\(3,\), \(3, 1\)\]"),
    ("gru_two_initial_states", True, lambda b, t: with_states(b, fnn.GRU(U), [(U,), (U,)]),
     ValueError, r"gru\w*: initial_state must be 1 tensor.*shapes \[\(3,\), \(3,\)\]"),
    ("simple_rnn_initial_state_width", True,
     lambda b, t: with_states(b, fnn.SimpleRNN(U), [(U + 1,)]), ValueError,
     r"initial_state must be 1 tensor.*shapes \[\(4,\)\]"),
    ("lstm_initial_state_list_form", True,
     lambda b, t: (lambda x, h: fnn.Model([x, h], fnn.LSTM(U)([x, h]), backend=b))(
         fnn.Input((T, F)), fnn.Input((U,))), ValueError,
     r"initial_state must be 2 tensor.*shapes \[\(3,\)\]"),
    ("bidirectional_lstm_two_initial_states", True,
     lambda b, t: with_states(b, fnn.Bidirectional(fnn.LSTM(U)), [(U,), (U,)]), ValueError,
     r"initial_state must be 4 tensors .*Received: 2\b"),
    ("bidirectional_gru_initial_state_width", True,
     lambda b, t: with_states(b, fnn.Bidirectional(fnn.GRU(U)), [(U,), (U + 1,)]), ValueError,
     r"backward_gru: initial_state must be 1 tensor.*shapes \[\(4,\)\]"),
    ("rnn_predict_more_steps", True, lambda b, t: rnn_model(b).predict(np.zeros((N, T + 1, F))),
     ValueError, r"X must have shape \(n, 5, 2\).*shape \(6, 6, 2\)"),
    ("rnn_predict_fewer_steps", True,
     lambda b, t: rnn_model(b, fnn.GRU(U)).predict(np.zeros((N, T - 1, F))), ValueError,
     r"X must have shape \(n, 5, 2\).*shape \(6, 4, 2\)"),
    ("rnn_predict_features", True,
     lambda b, t: rnn_model(b, fnn.SimpleRNN(U)).predict(np.zeros((N, T, F + 1))), ValueError,
     r"X must have shape \(n, 5, 2\).*shape \(6, 5, 3\)"),
    ("rnn_predict_transposed", True, lambda b, t: rnn_model(b).predict(XS.transpose(0, 2, 1)),
     ValueError, r"X must have shape \(n, 5, 2\).*shape \(6, 2, 5\)"),
    ("rnn_predict_flat", True, lambda b, t: rnn_model(b).predict(XS.reshape(N, -1)),
     ValueError, r"X must have shape \(n, 5, 2\).*shape \(6, 10\)"),
    ("rnn_fit_more_steps", True,
     lambda b, t: rnn_model(b).fit(np.zeros((N, T + 1, F)), Y, verbose=0), ValueError,
     r"X must have shape \(n, 5, 2\).*shape \(6, 6, 2\)"),
    ("rnn_fit_features", True,
     lambda b, t: rnn_model(b, fnn.Bidirectional(fnn.GRU(U))).fit(np.zeros((N, T, 1)), Y,
                                                                   verbose=0),
     ValueError, r"X must have shape \(n, 5, 2\).*shape \(6, 5, 1\)"),
    ("rnn_train_on_batch_steps", True,
     lambda b, t: rnn_model(b).train_on_batch(np.zeros((N, T + 2, F)), Y), ValueError,
     r"x must have shape \(n, 5, 2\).*shape \(6, 7, 2\)"),
    ("rnn_evaluate_features", True,
     lambda b, t: rnn_model(b).evaluate(np.zeros((N, T, F + 2)), Y), ValueError,
     r"X must have shape \(n, 5, 2\).*shape \(6, 5, 4\)"),
    ("rnn_fit_nan", True, lambda b, t: rnn_model(b).fit(with_nan(XS, (1, 2, 1)), Y, verbose=0),
     ValueError, r"X\[1, 2, 1\]=.*nan"),
    ("rnn_predict_nan", True,
     lambda b, t: rnn_model(b, fnn.GRU(U)).predict(with_nan(XS, (3, 4, 0))), ValueError,
     r"X\[3, 4, 0\]=.*nan"),
    ("rnn_predict_inf", True,
     lambda b, t: rnn_model(b, fnn.Bidirectional(fnn.SimpleRNN(U))).predict(
         with_nan(XS, (0, 0, 1), math.inf)), ValueError, r"X\[0, 0, 1\]=.*inf"),
    ("rnn_predict_empty", True, lambda b, t: rnn_model(b).predict(np.zeros((0, T, F))),
     ValueError, r"X .*shape \(0, 5, 2\)"),
    ("rnn_fit_object", True,
     lambda b, t: rnn_model(b).fit(XS.astype(object), Y, verbose=0), TypeError,
     r"X .*dtype object"),
    ("rnn_states_h0_width", True,
     lambda b, t: lstm_with_states(b).predict(states(h=(N, U + 1))), ValueError,
     r"X\[1\] must have 3 features.*shape \(6, 4\)"),
    ("rnn_states_h0_rank", True,
     lambda b, t: lstm_with_states(b).fit([XS, np.zeros((N, U, 1)), np.zeros((N, U))], Y,
                                          verbose=0),
     ValueError, r"X\[1\] must be 2-D.*shape \(6, 3, 1\)"),
    ("rnn_states_c0_rows", True,
     lambda b, t: lstm_with_states(b).predict(states(c=(N - 1, U))), ValueError,
     r"same number of samples.*\[6, 6, 5\]"),
    ("rnn_states_sequence_steps", True,
     lambda b, t: lstm_with_states(b).fit(states(steps=T + 1), Y, verbose=0), ValueError,
     r"X\[0\] must have shape \(n, 5, 2\).*shape \(6, 6, 2\)"),
    ("rnn_states_h0_nan", True,
     lambda b, t: lstm_with_states(b).predict(
         [XS, with_nan(np.zeros((N, U)), (2, 1)), np.zeros((N, U))]), ValueError,
     r"X\[1\]\[2, 1\]=.*nan"),
    # the message names the count expected but not the count received ("Received: list")
    ("rnn_states_c0_missing", True, lambda b, t: lstm_with_states(b).predict(states()[:2]),
     ValueError, r"list of 3 arrays.*Received: .*\b2\b"),
    ("rnn_states_one_too_many", True,
     lambda b, t: lstm_with_states(b).fit(states() + [np.zeros((N, U))], Y, verbose=0),
     ValueError, r"list of 3 arrays.*Received: .*\b4\b"),
    ("rnn_states_not_a_list", True, lambda b, t: lstm_with_states(b).predict(XS), ValueError,
     r"list of 3 arrays.*Received: ndarray"),
    # ---------------------------------------------------------------- MultiHeadAttention
    ("mha_num_heads_zero", False, lambda b, t: MHA(0, 4), ValueError, r"num_heads=0\b"),
    ("mha_num_heads_negative", False, lambda b, t: MHA(-1, 4), ValueError, r"num_heads=-1\b"),
    ("mha_num_heads_float", False, lambda b, t: MHA(1.5, 4), TypeError, r"num_heads=1\.5"),
    ("mha_num_heads_bool", False, lambda b, t: MHA(True, 4), TypeError, r"num_heads=True"),
    ("mha_num_heads_string", False, lambda b, t: MHA("4", 4), TypeError, r"num_heads='4'"),
    ("mha_num_heads_2_31", False, lambda b, t: MHA(2**31, 4), ValueError,
     r"num_heads must be below 2\*\*31.*num_heads=2147483648"),
    ("mha_key_dim_zero", False, lambda b, t: MHA(2, 0), ValueError, r"key_dim=0\b"),
    ("mha_key_dim_string", False, lambda b, t: MHA(2, "4"), TypeError, r"key_dim='4'"),
    ("mha_key_dim_2_40", False, lambda b, t: MHA(2, 2**40), ValueError,
     r"key_dim=1099511627776"),
    ("mha_value_dim_negative", False, lambda b, t: MHA(2, 4, value_dim=-3), ValueError,
     r"value_dim=-3\b"),
    ("mha_value_dim_float", False, lambda b, t: MHA(2, 4, value_dim=2.5), TypeError,
     r"value_dim=2\.5"),
    ("mha_output_shape_zero", False, lambda b, t: MHA(2, 4, output_shape=0), ValueError,
     r"output_shape=0\b"),
    ("mha_output_shape_tuple", False, lambda b, t: MHA(2, 4, output_shape=(4,)), TypeError,
     r"output_shape=\(4,\)"),
    ("mha_seed_negative", False, lambda b, t: MHA(2, 4, dropout=0.1, seed=-1), ValueError,
     r"seed=-1\b"),
    ("mha_dropout_negative", False, lambda b, t: MHA(2, 4, dropout=-0.1), ValueError,
     r"dropout=-0\.1"),
    ("mha_dropout_one", False, lambda b, t: MHA(2, 4, dropout=1.0), ValueError,
     r"dropout=1\.0"),
    ("mha_dropout_string", False, lambda b, t: MHA(2, 4, dropout="0"), TypeError,
     r"dropout='0'"),
    ("mha_use_bias_int", False, lambda b, t: MHA(2, 4, use_bias=1), TypeError, r"use_bias=1\b"),
    ("mha_key_steps_differ_from_value", False, lambda b, t: mha_call(key=(LV + 1, DV)),
     ValueError, r"key and value must have the same number of steps.*\(6, 6\).*\(5, 6\)"),
    ("mha_mask_query_steps", False, lambda b, t: mha_call(mask=(LQ + 1, LV)), ValueError,
     r"attention_mask must have shape \(batch, 4, 5\) .*\(batch, 5\).*\(None, 5, 5\)"),
    ("mha_mask_value_steps", False, lambda b, t: mha_call(mask=(LQ, LV + 1)), ValueError,
     r"attention_mask must have shape \(batch, 4, 5\) .*\(None, 4, 6\)"),
    ("mha_mask_per_head", False, lambda b, t: mha_call(mask=(2, LQ, LV)), ValueError,
     r"attention_mask must have shape \(batch, 4, 5\) .*\(None, 2, 4, 5\)"),
    ("mha_mask_length", False, lambda b, t: mha_call(mask=(LV - 1,)), ValueError,
     r"attention_mask must .*\(batch, 5\).*\(None, 4\)"),
    ("mha_query_2d", False, lambda b, t: mha_call(query=(DQ,)), ValueError,
     r"query must be \(batch, steps, features\).*\(None, 8\)"),
    ("mha_value_4d", False, lambda b, t: mha_call(value=(2, LV, DV)), ValueError,
     r"key and value must be \(batch, steps, features\).*\(None, 2, 5, 6\)"),
    ("mha_causal_string", False, lambda b, t: mha_call(use_causal_mask="yes"), TypeError,
     r"use_causal_mask='yes'"),
    ("mha_query_is_an_array", False, lambda b, t: MHA(2, 3)(QA, fnn.Input((LV, DV))),
     TypeError, r"symbolic tensor"),
    ("mha_input_roles_unsplit", False, lambda b, t: MHA(2, 3).set_call(["q", "k"]), ValueError,
     r"input_roles=\['q', 'k'\]"),
    ("mha_predict_query_width", True, lambda b, t: mha_model(b).predict([QA[..., :-1], VA]),
     ValueError, r"X\[0\] must have shape \(n, 4, 8\).*shape \(6, 4, 7\)"),
    ("mha_predict_value_steps", True, lambda b, t: mha_model(b).predict([QA, VA[:, :-1]]),
     ValueError, r"X\[1\] must have shape \(n, 5, 6\).*shape \(6, 4, 6\)"),
    ("mha_predict_rows", True, lambda b, t: mha_model(b).predict([QA, VA[:-1]]), ValueError,
     r"same number of samples.*\[6, 5\]"),
    ("mha_predict_one_array", True, lambda b, t: mha_model(b).predict(QA), ValueError,
     r"list of 2 arrays.*Received: ndarray"),
    ("mha_predict_nan", True, lambda b, t: mha_model(b).predict([QA, with_nan(VA, (2, 3, 1))]),
     ValueError, r"X\[1\]\[2, 3, 1\]=.*nan"),
    ("mha_predict_inf", True,
     lambda b, t: mha_model(b).predict([with_nan(QA, (0, 1, 2), math.inf), VA]), ValueError,
     r"X\[0\]\[0, 1, 2\]=.*inf"),
    ("mha_predict_object", True, lambda b, t: mha_model(b).predict([QA.astype(object), VA]),
     TypeError, r"X\[0\] .*dtype object"),
    ("mha_predict_complex", True,
     lambda b, t: mha_model(b).predict([QA, VA.astype(np.complex128)]), TypeError,
     r"X\[1\] .*dtype complex128"),
    ("mha_predict_mask_per_query", True,
     lambda b, t: mha_model(b, mask=True).predict([QA, VA, np.ones((N, LQ, LV))]), ValueError,
     r"X\[2\] must be 2-D.*shape \(6, 4, 5\)"),
    ("mha_predict_mask_length", True,
     lambda b, t: mha_model(b, mask=True).predict([QA, VA, np.ones((N, LV + 1))]), ValueError,
     r"X\[2\] must have 5 features.*shape \(6, 6\)"),
    ("mha_predict_mask_nan", True,
     lambda b, t: mha_model(b, mask=True).predict([QA, VA, np.full((N, LV), np.nan)]),
     ValueError, r"X\[2\]\[0, 0\]=.*nan"),
    ("mha_predict_mask_strings", True,
     lambda b, t: mha_model(b, mask=True).predict([QA, VA, np.full((N, LV), "1")]), TypeError,
     r"X\[2\] .*dtype <U1"),
    ("mha_fit_value_width", True,
     lambda b, t: mha_model(b).compile("mse", fnn.SGD(0.1)).fit([QA, VA[..., :-2]], QA,
                                                                 verbose=0),
     ValueError, r"X\[1\] must have shape \(n, 5, 6\).*shape \(6, 5, 4\)"),
    # ---------------------------------------------------------------- ops.scaled_dot_product_attention
    ("sdpa_q_k_widths", False, lambda b, t: sdpa(k=np.ones((2, 5, 3))), ValueError,
     r"q and k must have the same width.*\(2, 3, 4\).*\(2, 5, 3\)"),
    ("sdpa_k_v_lengths", False, lambda b, t: sdpa(v=np.ones((2, 4, 6))), ValueError,
     r"k and v must have the same length.*\(2, 5, 4\).*\(2, 4, 6\)"),
    ("sdpa_leading_axes", False, lambda b, t: sdpa(v=np.ones((3, 5, 6))), ValueError,
     r"same leading axes.*v with shape \(3, 5, 6\)"),
    ("sdpa_q_1d", False, lambda b, t: sdpa(q=np.ones(4)), ValueError,
     r"q must have at least 2 axes.*shape \(4,\)"),
    ("sdpa_zero_length", False, lambda b, t: sdpa(q=np.ones((2, 0, 4))), ValueError,
     r"lengths and widths must be >= 1.*q with shape \(2, 0, 4\)"),
    ("sdpa_mask_float", False, lambda b, t: sdpa(mask=np.ones((2, 5))), ValueError,
     r"mask must hold bool or uint8.*dtype float64"),
    ("sdpa_mask_length", False, lambda b, t: sdpa(mask=np.ones((2, 4), bool)), ValueError,
     r"mask must have shape.*Lk 5.*shape \(2, 4\)"),
    ("sdpa_mask_per_query", False, lambda b, t: sdpa(mask=np.ones((2, 3, 5), bool)),
     ValueError, r"mask must have shape.*shape \(2, 3, 5\)"),
    ("sdpa_mask_ragged", False, lambda b, t: sdpa(mask=[[True], [True, False]]), ValueError,
     r"mask must be a rectangular array.*type list"),
    ("sdpa_attn_mask_float", False, lambda b, t: sdpa(attn_mask=np.ones((3, 5))), ValueError,
     r"attn_mask must hold bool or uint8.*dtype float64"),
    ("sdpa_attn_mask_queries", False, lambda b, t: sdpa(attn_mask=np.ones((2, 4, 5), bool)),
     ValueError, r"attn_mask must have shape \(\*lead\[:t\], Lq, Lk\).*Lq 3 and Lk 5.*"
                 r"shape \(2, 4, 5\)"),
    ("sdpa_attn_mask_lead", False, lambda b, t: sdpa(attn_mask=np.ones((3, 3, 5), bool)),
     ValueError, r"attn_mask must have shape.*lead \(2,\).*shape \(3, 3, 5\)"),
    ("sdpa_attn_mask_keys_only", False, lambda b, t: sdpa(attn_mask=np.ones((5,), bool)),
     ValueError, r"attn_mask must have shape.*shape \(5,\)"),
    ("sdpa_attn_mask_ragged", False, lambda b, t: sdpa(attn_mask=[[True], [True, False]]),
     ValueError, r"attn_mask must be a rectangular array.*type list"),
    ("sdpa_causal_string", False, lambda b, t: sdpa(causal="yes"), TypeError,
     r"causal='yes'"),
    ("sdpa_causal_array", False, lambda b, t: sdpa(causal=np.array([1, 0])), TypeError,
     r"causal=array\(\[1, 0\]\)"),
    ("sdpa_scale_string", False, lambda b, t: sdpa(scale="2"), ValueError, r"scale='2'"),
    ("sdpa_scale_inf", False, lambda b, t: sdpa(scale=math.inf), ValueError, r"scale=inf"),
    ("sdpa_scale_beyond_float32", False,
     lambda b, t: sdpa(q=np.ones((2, 3, 4), np.float32), k=np.ones((2, 5, 4), np.float32),
                       v=np.ones((2, 5, 6), np.float32), scale=1e39), ValueError,
     r"scale=1e\+39, which in float32 overflows"),
    ("sdpa_scale_subnormal_float32", False,
     lambda b, t: sdpa(q=np.ones((2, 3, 4), np.float32), k=np.ones((2, 5, 4), np.float32),
                       v=np.ones((2, 5, 6), np.float32), scale=1e-40), ValueError,
     r"scale=1e-40, which in float32 is subnormal"),
    ("sdpa_nan", False, lambda b, t: sdpa(k=with_nan(np.ones((2, 5, 4)))), ValueError,
     r"k\[1, 2, 0\]=.*nan"),
    ("sdpa_object", False, lambda b, t: sdpa(v=np.ones((2, 5, 6)).astype(object)), TypeError,
     r"v must hold real numbers.*dtype object"),
    ("sdpa_strings", False, lambda b, t: sdpa(q=np.full((2, 3, 4), "1")), TypeError,
     r"q must hold real numbers.*dtype <U1"),
    # ---------------------------------------------------------------- TransformerBlock
    ("tb_num_heads_zero", False, lambda b, t: TB(0, 4, 16), ValueError, r"num_heads=0\b"),
    ("tb_num_heads_negative", False, lambda b, t: TB(-2, 4, 16), ValueError,
     r"num_heads=-2\b"),
    ("tb_num_heads_float", False, lambda b, t: TB(2.0, 4, 16), TypeError, r"num_heads=2\.0"),
    ("tb_num_heads_bool", False, lambda b, t: TB(True, 4, 16), TypeError, r"num_heads=True"),
    ("tb_num_heads_string", False, lambda b, t: TB("2", 4, 16), TypeError, r"num_heads='2'"),
    ("tb_num_heads_none", False, lambda b, t: TB(None, 4, 16), TypeError, r"num_heads=None"),
    ("tb_num_heads_2_31", False, lambda b, t: TB(2**31, 4, 16), ValueError,
     r"num_heads must be below 2\*\*31.*num_heads=2147483648"),
    ("tb_key_dim_zero", False, lambda b, t: TB(2, 0, 16), ValueError, r"key_dim=0\b"),
    ("tb_key_dim_negative", False, lambda b, t: TB(2, -4, 16), ValueError, r"key_dim=-4\b"),
    ("tb_key_dim_float", False, lambda b, t: TB(2, 4.5, 16), TypeError, r"key_dim=4\.5"),
    ("tb_key_dim_bool", False, lambda b, t: TB(2, True, 16), TypeError, r"key_dim=True"),
    ("tb_key_dim_string", False, lambda b, t: TB(2, "4", 16), TypeError, r"key_dim='4'"),
    ("tb_key_dim_2_40", False, lambda b, t: TB(2, 2**40, 16), ValueError,
     r"key_dim must be below 2\*\*31.*key_dim=1099511627776"),
    ("tb_value_dim_zero", False, lambda b, t: TB(2, 4, 16, value_dim=0), ValueError,
     r"value_dim=0\b"),
    ("tb_value_dim_float", False, lambda b, t: TB(2, 4, 16, value_dim=2.5), TypeError,
     r"value_dim=2\.5"),
    ("tb_ff_dim_zero", False, lambda b, t: TB(2, 4, 0), ValueError, r"ff_dim=0\b"),
    ("tb_ff_dim_negative", False, lambda b, t: TB(2, 4, -16), ValueError, r"ff_dim=-16\b"),
    ("tb_ff_dim_float", False, lambda b, t: TB(2, 4, 1.5), TypeError, r"ff_dim=1\.5"),
    ("tb_ff_dim_whole_float", False, lambda b, t: TB(2, 4, 16.0), TypeError,
     r"ff_dim=16\.0"),
    ("tb_ff_dim_bool", False, lambda b, t: TB(2, 4, True), TypeError, r"ff_dim=True"),
    ("tb_ff_dim_string", False, lambda b, t: TB(2, 4, "16"), TypeError, r"ff_dim='16'"),
    ("tb_ff_dim_none", False, lambda b, t: TB(2, 4, None), TypeError, r"ff_dim=None"),
    ("tb_ff_dim_2_31", False, lambda b, t: TB(2, 4, 2**31), ValueError,
     r"ff_dim must be below 2\*\*31.*ff_dim=2147483648"),
    ("tb_ff_dim_2_40", False, lambda b, t: TB(2, 4, 2**40), ValueError,
     r"ff_dim=1099511627776"),
    ("tb_dropout_negative", False, lambda b, t: TB(2, 4, 16, dropout=-0.1), ValueError,
     r"dropout=-0\.1"),
    ("tb_dropout_one", False, lambda b, t: TB(2, 4, 16, dropout=1.0), ValueError,
     r"dropout must be a finite number in \[0\.0, 1\.0\).*dropout=1\.0"),
    ("tb_dropout_nan", False, lambda b, t: TB(2, 4, 16, dropout=math.nan), ValueError,
     r"dropout=nan"),
    ("tb_dropout_inf", False, lambda b, t: TB(2, 4, 16, dropout=math.inf), ValueError,
     r"dropout=inf"),
    ("tb_dropout_string", False, lambda b, t: TB(2, 4, 16, dropout="0.1"), TypeError,
     r"dropout='0\.1'"),
    ("tb_dropout_bool", False, lambda b, t: TB(2, 4, 16, dropout=True), TypeError,
     r"dropout=True"),
    ("tb_dropout_none", False, lambda b, t: TB(2, 4, 16, dropout=None), TypeError,
     r"dropout=None"),
    ("tb_activation_unknown", False, lambda b, t: TB(2, 4, 16, activation="swishy"),
     ValueError, r"activation='swishy'"),
    ("tb_activation_int", False, lambda b, t: TB(2, 4, 16, activation=3), ValueError,
     r"activation=3\b"),
    ("tb_activation_empty", False, lambda b, t: TB(2, 4, 16, activation=""), ValueError,
     r"activation=''"),
    ("tb_activation_function", False, lambda b, t: TB(2, 4, 16, activation=np.tanh),
     ValueError, r"activation=<ufunc 'tanh'>"),
    ("tb_leaky_relu_alpha_beyond_float32", True,
     lambda b, t: block_model(b, activation=fnn.LeakyReLU(alpha=1e39)), ValueError,
     r"TransformerBlock\(.*alpha=1e\+39, which in float32 overflows"),
    ("elu_alpha_beyond_float32", True,
     lambda b, t: fnn.Sequential([fnn.Dense(2, activation=fnn.ELU(alpha=1e39))], input_dim=2,
                                 backend=b), ValueError,
     r"alpha=1e\+39, which in float32 overflows"),
    ("elu_layer_alpha_subnormal_float32", True,
     lambda b, t: fnn.Sequential([fnn.Dense(2), fnn.ELU(alpha=1e-40)], input_dim=2, backend=b),
     ValueError, r"alpha=1e-40, which in float32 is subnormal"),
    ("tb_step_threshold_subnormal_float32", True,
     lambda b, t: block_model(b, activation=fnn.Step(threshold=1e-40)), ValueError,
     r"TransformerBlock\(.*threshold=1e-40, which in float32 is subnormal"),
    ("tb_layer_norm_epsilon_zero", False, lambda b, t: TB(2, 4, 16, layer_norm_epsilon=0.0),
     ValueError, r"layer_norm_epsilon=0\.0"),
    ("tb_layer_norm_epsilon_negative", False,
     lambda b, t: TB(2, 4, 16, layer_norm_epsilon=-1e-5), ValueError,
     r"layer_norm_epsilon=-1e-05"),
    ("tb_layer_norm_epsilon_nan", False,
     lambda b, t: TB(2, 4, 16, layer_norm_epsilon=math.nan), ValueError,
     r"layer_norm_epsilon=nan"),
    ("tb_layer_norm_epsilon_inf", False,
     lambda b, t: TB(2, 4, 16, layer_norm_epsilon=math.inf), ValueError,
     r"layer_norm_epsilon=inf"),
    ("tb_layer_norm_epsilon_string", False,
     lambda b, t: TB(2, 4, 16, layer_norm_epsilon="1e-5"), TypeError,
     r"layer_norm_epsilon='1e-5'"),
    ("tb_layer_norm_epsilon_bool", False,
     lambda b, t: TB(2, 4, 16, layer_norm_epsilon=True), TypeError,
     r"layer_norm_epsilon=True"),
    ("tb_causal_int", False, lambda b, t: TB(2, 4, 16, causal=1), TypeError, r"causal=1\b"),
    ("tb_causal_string", False, lambda b, t: TB(2, 4, 16, causal="yes"), TypeError,
     r"causal='yes'"),
    ("tb_causal_none", False, lambda b, t: TB(2, 4, 16, causal=None), TypeError,
     r"causal=None"),
    ("tb_causal_array", False, lambda b, t: TB(2, 4, 16, causal=np.array([True])), TypeError,
     r"causal=array\(\[ True\]\)"),
    ("tb_norm_first_int", False, lambda b, t: TB(2, 4, 16, norm_first=0), TypeError,
     r"norm_first=0\b"),
    ("tb_use_bias_string", False, lambda b, t: TB(2, 4, 16, use_bias="no"), TypeError,
     r"use_bias='no'"),
    ("tb_kernel_initializer_unknown", False,
     lambda b, t: TB(2, 4, 16, kernel_initializer="bogus"), ValueError,
     r"kernel_initializer: unknown initializer 'bogus'"),
    ("tb_bias_initializer_int", False, lambda b, t: TB(2, 4, 16, bias_initializer=3),
     TypeError, r"bias_initializer: .*Received: 3\b"),
    ("tb_samples_2d", True, lambda b, t: shaped(b, [TB(2, 4, 16)], (TD,)), ValueError,
     r"transformer_block takes sequences \(batch, steps, features\).*input shape \(8,\)"),
    ("tb_samples_4d", True, lambda b, t: shaped(b, [TB(2, 4, 16)], (2, TL, TD)), ValueError,
     r"transformer_block takes sequences .*input shape \(2, 5, 8\)"),
    ("tb_functional_samples_4d", False, lambda b, t: block_call(x=(2, TL, TD)), ValueError,
     r"transformer_block takes sequences .*input shape \(2, 5, 8\)"),
    ("tb_mask_length", False, lambda b, t: block_call(mask=(TL - 1,)), ValueError,
     r"padding_mask must be a key padding mask of shape \(batch, 5\).*\(None, 4\)"),
    ("tb_mask_per_query", False, lambda b, t: block_call(mask=(TL, TL)), ValueError,
     r"padding_mask must be a key padding mask .*\(None, 5, 5\)"),
    ("tb_mask_is_an_array", False,
     lambda b, t: TB(2, 4, 16)(fnn.Input((TL, TD)), padding_mask=MT), TypeError,
     r"symbolic tensor.*array"),
    ("tb_sequence_is_an_array", False, lambda b, t: TB(2, 4, 16)(XT), TypeError,
     r"symbolic tensor.*array"),
    # sizes each below 2**31 whose product overflows int64: refused by count, not wrapped
    ("tb_weights_beyond_any_machine", True,
     lambda b, t: shaped(b, [TB(2**21, 2**21, 16)], (TL, 2**22)), ValueError,
     r"'query_kernel' would have shape \(4194304, 2097152, 2097152\), 18446744073709551616 "
     r"values, over the limit of 2\*\*31 - 1 values a weight.*Received: num_heads=2097152"),
    ("tb_predict_features", True, lambda b, t: block_model(b).predict(XT[..., :-1]),
     ValueError, r"X must have shape \(n, 5, 8\).*shape \(6, 5, 7\)"),
    ("tb_predict_more_steps", True,
     lambda b, t: block_model(b).predict(np.concatenate([XT, XT], axis=1)), ValueError,
     r"X must have shape \(n, 5, 8\).*shape \(6, 10, 8\)"),
    ("tb_predict_fewer_steps", True, lambda b, t: block_model(b).predict(XT[:, :-1]),
     ValueError, r"X must have shape \(n, 5, 8\).*shape \(6, 4, 8\)"),
    ("tb_predict_flat", True, lambda b, t: block_model(b).predict(XT.reshape(N, -1)),
     ValueError, r"X must have shape \(n, 5, 8\).*shape \(6, 40\)"),
    ("tb_predict_nan", True, lambda b, t: block_model(b).predict(with_nan(XT, (2, 1, 3))),
     ValueError, r"X\[2, 1, 3\]=.*nan"),
    ("tb_predict_inf", True,
     lambda b, t: block_model(b).predict(with_nan(XT, (0, 4, 7), -math.inf)), ValueError,
     r"X\[0, 4, 7\]=.*-inf"),
    ("tb_predict_overflows_float32", True,
     lambda b, t: block_model(b).predict(with_nan(XT, (1, 0, 0), 1e300)), ValueError,
     r"X\[1, 0, 0\]=.*inf"),
    ("tb_predict_object", True, lambda b, t: block_model(b).predict(XT.astype(object)),
     TypeError, r"X .*dtype object"),
    ("tb_masked_predict_mask_missing", True,
     lambda b, t: block_model(b, mask=True).predict(XT), ValueError,
     r"list of 2 arrays.*Received: ndarray"),
    ("tb_masked_predict_mask_length", True,
     lambda b, t: block_model(b, mask=True).predict([XT, np.ones((N, TL + 1))]), ValueError,
     r"X\[1\] must have 5 features.*shape \(6, 6\)"),
    ("tb_masked_predict_mask_per_query", True,
     lambda b, t: block_model(b, mask=True).predict([XT, np.ones((N, TL, TL))]), ValueError,
     r"X\[1\] must be 2-D.*shape \(6, 5, 5\)"),
    ("tb_masked_predict_mask_rows", True,
     lambda b, t: block_model(b, mask=True).predict([XT, MT[:-1]]), ValueError,
     r"same number of samples.*\[6, 5\]"),
    ("tb_masked_predict_mask_nan", True,
     lambda b, t: block_model(b, mask=True).predict([XT, with_nan(MT, (3, 2))]), ValueError,
     r"X\[1\]\[3, 2\]=.*nan"),
    ("tb_masked_predict_mask_strings", True,
     lambda b, t: block_model(b, mask=True).predict([XT, np.full((N, TL), "1")]), TypeError,
     r"X\[1\] .*dtype <U1"),
    ("tb_fit_target_shape", True,
     lambda b, t: block_model(b).compile("mse", fnn.SGD(0.1)).fit(XT, XT[:, :, :-1],
                                                                 verbose=0),
     ValueError, r"y must have shape .*\(6, 5, 7\)"),

    # ---------------------------------------------------------------- PositionalEmbedding
    ("pos_emb_length_zero", False, lambda b, t: fnn.PositionalEmbedding(0), ValueError,
     r"sequence_length=0\b"),
    ("pos_emb_length_negative", False, lambda b, t: fnn.PositionalEmbedding(-5), ValueError,
     r"sequence_length=-5\b"),
    ("pos_emb_length_float", False, lambda b, t: fnn.PositionalEmbedding(8.0), TypeError,
     r"sequence_length=8\.0"),
    ("pos_emb_length_bool", False, lambda b, t: fnn.PositionalEmbedding(True), TypeError,
     r"sequence_length=True"),
    ("pos_emb_length_string", False, lambda b, t: fnn.PositionalEmbedding("8"), TypeError,
     r"sequence_length='8'"),
    ("pos_emb_length_none", False, lambda b, t: fnn.PositionalEmbedding(None), TypeError,
     r"sequence_length=None"),
    ("pos_emb_length_2_31", False, lambda b, t: fnn.PositionalEmbedding(2**31), ValueError,
     r"sequence_length must be below 2\*\*31.*sequence_length=2147483648"),
    ("pos_emb_initializer_unknown", False,
     lambda b, t: fnn.PositionalEmbedding(8, initializer="bogus"), ValueError,
     r"initializer: unknown initializer 'bogus'"),
    ("pos_emb_regularizer_unknown", False,
     lambda b, t: fnn.PositionalEmbedding(8, regularizer="l7"), ValueError,
     r"regularizer: unknown regularizer 'l7'"),
    ("pos_emb_samples_2d", True,
     lambda b, t: position_model(b, fnn.PositionalEmbedding(8), (TD,)), ValueError,
     r"positional_embedding takes sequences \(batch, steps, features\).*input shape \(8,\)"),
    ("pos_emb_samples_3d", True,
     lambda b, t: position_model(b, fnn.PositionalEmbedding(8), (2, TL, TD)), ValueError,
     r"positional_embedding takes sequences .*input shape \(2, 5, 8\)"),
    ("pos_emb_sequence_longer_than_its_length", True,
     lambda b, t: position_model(b, fnn.PositionalEmbedding(TL - 1)), ValueError,
     r"holds 4 positions \(its sequence_length\).*sequences of 5 steps"),
    ("pos_emb_functional_sequence_longer", False,
     lambda b, t: fnn.PositionalEmbedding(3)(fnn.Input((TL, TD))), ValueError,
     r"holds 3 positions .*sequences of 5 steps"),
    ("pos_emb_predict_more_steps", True,
     lambda b, t: position_model(b, fnn.PositionalEmbedding(2 * TL)).predict(
         np.concatenate([XT, XT[:, :1]], axis=1)), ValueError,
     r"X must have shape \(n, 5, 8\).*shape \(6, 6, 8\)"),
    ("pos_emb_predict_features", True,
     lambda b, t: position_model(b, fnn.PositionalEmbedding(8)).predict(XT[..., :3]),
     ValueError, r"X must have shape \(n, 5, 8\).*shape \(6, 5, 3\)"),
    ("pos_emb_predict_nan", True,
     lambda b, t: position_model(b, fnn.PositionalEmbedding(8)).predict(
         with_nan(XT, (5, 0, 1))), ValueError, r"X\[5, 0, 1\]=.*nan"),
    ("pos_emb_set_weights_shape", False,
     lambda b, t: built_position(fnn.PositionalEmbedding(8)).set_weights([np.zeros((TL, TD))]),
     ValueError, r"embeddings of positional_embedding must have shape \(8, 8\).*\(5, 8\)"),
    ("pos_emb_set_weights_inf", False,
     lambda b, t: built_position(fnn.PositionalEmbedding(8)).set_weights(
         [with_nan(np.zeros((8, TD)), (7, 7), math.inf)]), ValueError,
     r"embeddings\[7, 7\]=.*inf"),
    ("pos_emb_positions_negative", False,
     lambda b, t: built_position(fnn.PositionalEmbedding(8)).positions(-1, 2), ValueError,
     r"start must be an integer >= 0.*start=-1\b"),
    ("pos_emb_positions_float", False,
     lambda b, t: built_position(fnn.PositionalEmbedding(8)).positions(1.5, 2), TypeError,
     r"start=1\.5"),
    ("pos_emb_positions_length_negative", False,
     lambda b, t: built_position(fnn.PositionalEmbedding(8)).positions(0, -1), ValueError,
     r"length=-1\b"),
    ("pos_emb_positions_past_the_table", False,
     lambda b, t: built_position(fnn.PositionalEmbedding(8)).positions(7, 2), ValueError,
     r"positions 7\.\.8 are past its 8 positions"),

    # ---------------------------------------------------------------- SinePositionEncoding
    ("sine_max_wavelength_below_one", False,
     lambda b, t: fnn.SinePositionEncoding(max_wavelength=0.5), ValueError,
     r"max_wavelength must be a finite number in \[1\.0, inf\).*max_wavelength=0\.5"),
    ("sine_max_wavelength_negative", False,
     lambda b, t: fnn.SinePositionEncoding(max_wavelength=-1e4), ValueError,
     r"max_wavelength=-10000\.0"),
    ("sine_max_wavelength_nan", False,
     lambda b, t: fnn.SinePositionEncoding(max_wavelength=math.nan), ValueError,
     r"max_wavelength=nan"),
    ("sine_max_wavelength_inf", False,
     lambda b, t: fnn.SinePositionEncoding(max_wavelength=math.inf), ValueError,
     r"max_wavelength=inf"),
    ("sine_max_wavelength_string", False,
     lambda b, t: fnn.SinePositionEncoding(max_wavelength="1e4"), TypeError,
     r"max_wavelength='1e4'"),
    ("sine_max_wavelength_bool", False,
     lambda b, t: fnn.SinePositionEncoding(max_wavelength=True), TypeError,
     r"max_wavelength=True"),
    ("sine_max_wavelength_none", False,
     lambda b, t: fnn.SinePositionEncoding(max_wavelength=None), TypeError,
     r"max_wavelength=None"),
    ("sine_samples_2d", True, lambda b, t: position_model(b, fnn.SinePositionEncoding(), (TD,)),
     ValueError, r"sine_position_encoding takes sequences .*input shape \(8,\)"),
    ("sine_samples_3d", True,
     lambda b, t: position_model(b, fnn.SinePositionEncoding(), (2, TL, TD)), ValueError,
     r"sine_position_encoding takes sequences .*input shape \(2, 5, 8\)"),
    ("sine_table_too_large", True,
     lambda b, t: position_model(b, fnn.SinePositionEncoding(), (2**15, 2**15)), ValueError,
     r"length \* width must be at most 2\*\*28.*length=32768, width=32768"),
    ("sine_predict_more_steps", True,
     lambda b, t: position_model(b, fnn.SinePositionEncoding()).predict(
         np.concatenate([XT, XT], axis=1)), ValueError,
     r"X must have shape \(n, 5, 8\).*shape \(6, 10, 8\)"),
    ("sine_predict_inf", True,
     lambda b, t: position_model(b, fnn.SinePositionEncoding()).predict(
         with_nan(XT, (1, 1, 1), math.inf)), ValueError, r"X\[1, 1, 1\]=.*inf"),
    ("sine_extend_string", False,
     lambda b, t: built_position(fnn.SinePositionEncoding()).extend("9"), TypeError,
     r"length='9'"),
    ("sine_extend_negative", False,
     lambda b, t: built_position(fnn.SinePositionEncoding()).extend(-1), ValueError,
     r"length=-1\b"),
    ("sine_extend_2_40", False,
     lambda b, t: built_position(fnn.SinePositionEncoding()).extend(2**40), ValueError,
     r"length=1099511627776"),
    ("sine_extend_too_large", False,
     lambda b, t: built_position(fnn.SinePositionEncoding()).extend(2**26), ValueError,
     r"length \* width must be at most 2\*\*28.*length=67108864, width=8"),
    ("sinusoidal_positions_length_zero", False,
     lambda b, t: fnn.ops.sinusoidal_positions(0, 4), ValueError, r"length=0\b"),
    ("sinusoidal_positions_width_float", False,
     lambda b, t: fnn.ops.sinusoidal_positions(4, 4.0), TypeError, r"width=4\.0"),
    ("sinusoidal_positions_max_wavelength_nan", False,
     lambda b, t: fnn.ops.sinusoidal_positions(4, 4, math.nan), ValueError,
     r"max_wavelength=nan"),

    # ---------------------------------------------------------------- padding and cropping
    ("zero_padding2d_negative", False, lambda b, t: fnn.ZeroPadding2D(-1), ValueError,
     r"padding must be an integer >= 0. Received: padding=-1\b"),
    ("zero_padding2d_side_negative", False, lambda b, t: fnn.ZeroPadding2D(((1, -2), (0, 0))),
     ValueError, r"padding must be an integer >= 0. Received: padding=-2\b"),
    ("zero_padding2d_float", False, lambda b, t: fnn.ZeroPadding2D(1.5), ValueError,
     r"padding must be an int, a pair \(rows, columns\) or \(\(top, bottom\), \(left, right\)\) "
     r"of integers >= 0. Received: padding=1\.5"),
    ("zero_padding2d_bool", False, lambda b, t: fnn.ZeroPadding2D(True), ValueError,
     r"padding=True"),
    ("zero_padding2d_string", False, lambda b, t: fnn.ZeroPadding2D("1"), ValueError,
     r"padding='1'"),
    ("zero_padding2d_three", False, lambda b, t: fnn.ZeroPadding2D((1, 2, 3)), ValueError,
     r"padding=\(1, 2, 3\)"),
    ("zero_padding2d_2_31", False, lambda b, t: fnn.ZeroPadding2D(2**31), ValueError,
     r"padding must be below 2\*\*31. Received: padding=2147483648"),
    ("zero_padding2d_channels_first", False,
     lambda b, t: fnn.ZeroPadding2D(data_format="channels_first"), ValueError,
     r"channels-last.*data_format='channels_first'"),
    ("zero_padding1d_none", False, lambda b, t: fnn.ZeroPadding1D(None), ValueError,
     r"padding must be an int or a pair \(before, after\) of integers >= 0. Received: "
     r"padding=None"),
    ("zero_padding1d_negative", False, lambda b, t: fnn.ZeroPadding1D(-2), ValueError,
     r"padding=-2\b"),
    ("zero_padding1d_pair_of_pairs", False, lambda b, t: fnn.ZeroPadding1D(((1, 2),)),
     ValueError, r"padding=\(\(1, 2\),\)"),
    ("cropping2d_negative_numpy_int", False, lambda b, t: fnn.Cropping2D(np.int64(-1)),
     ValueError, r"cropping must be an integer >= 0. Received: cropping=-1\b"),
    ("cropping2d_2_40", False, lambda b, t: fnn.Cropping2D(((2**40, 0), (0, 0))), ValueError,
     r"cropping must be below 2\*\*31. Received: cropping=\(\(1099511627776, 0\), \(0, 0\)\)"),
    ("cropping2d_one_tuples", False, lambda b, t: fnn.Cropping2D(((1,), (2,))), ValueError,
     r"cropping=\(\(1,\), \(2,\)\)"),
    ("cropping2d_channels_first", False,
     lambda b, t: fnn.Cropping2D(data_format="channels_first"), ValueError,
     r"data_format='channels_first'"),
    ("cropping1d_string", False, lambda b, t: fnn.Cropping1D("x"), ValueError,
     r"cropping must be an int or a pair \(before, after\).*cropping='x'"),
    ("cropping2d_more_than_the_input", True,
     lambda b, t: shaped(b, [fnn.Cropping2D(((2, 2), (0, 0)))], IMG), ValueError,
     r"cropping2d\w*: cropping \[\[2, 2\], \[0, 0\]\] leaves nothing of an input of shape "
     r"\(4, 6, 1\)"),
    ("cropping2d_every_column", True,
     lambda b, t: shaped(b, [fnn.Cropping2D(((0, 0), (3, 3)))], IMG), ValueError,
     r"cropping \[\[0, 0\], \[3, 3\]\] leaves nothing of an input of shape \(4, 6, 1\)"),
    ("cropping2d_functional_more_than_the_input", False,
     lambda b, t: fnn.Cropping2D(3)(fnn.Input((5, 5, 1))), ValueError,
     r"cropping \[\[3, 3\], \[3, 3\]\] leaves nothing of an input of shape \(5, 5, 1\)"),
    ("cropping1d_more_than_the_input", True,
     lambda b, t: shaped(b, [fnn.Cropping1D((3, 2))], (T, F)), ValueError,
     r"cropping1d\w*: cropping \[3, 2\] leaves nothing of an input of shape \(5, 2\)"),
    ("cropping2d_on_sequences", True, lambda b, t: shaped(b, [fnn.Cropping2D(1)], (T, F)),
     ValueError, r"cropping2d\w* takes one input of shape \(height, width, channels\). "
                 r"Received: input shape \(5, 2\)"),
    ("cropping1d_on_images", True, lambda b, t: shaped(b, [fnn.Cropping1D(1)], IMG),
     ValueError, r"cropping1d\w* takes one input of shape \(steps, channels\). Received: "
                 r"input shape \(4, 6, 1\)"),
    ("zero_padding2d_on_vectors", True, lambda b, t: shaped(b, [fnn.ZeroPadding2D()], (D,)),
     ValueError, r"zero_padding2d\w* takes one input of shape \(height, width, channels\). "
                 r"Received: input shape \(4,\)"),
    ("zero_padding1d_on_vectors", True, lambda b, t: shaped(b, [fnn.ZeroPadding1D()], (D,)),
     ValueError, r"zero_padding1d\w* takes one input of shape \(steps, channels\)"),
    ("zero_padding2d_beyond_2_31", True,
     lambda b, t: shaped(b, [fnn.ZeroPadding2D(((2**31 - 1, 1), (0, 0)))], (1, 1, 1)),
     ValueError, r"padded sizes \(2147483649, 1\) must be below 2\*\*31"),
    ("cropping2d_predict_shape", True,
     lambda b, t: shaped(b, [fnn.Cropping2D(1)], IMG).predict(XI[:, :3]), ValueError,
     r"X must have shape \(n, 4, 6, 1\). Received: X with shape \(6, 3, 6, 1\)"),
    ("zero_padding2d_predict_nan", True,
     lambda b, t: shaped(b, [fnn.ZeroPadding2D()], IMG).predict(with_nan(XI, (2, 1, 3, 0))),
     ValueError, r"X\[2, 1, 3, 0\]=.*nan"),

    # ---------------------------------------------------------------- UpSampling, RepeatVector
    ("upsampling2d_zero", False, lambda b, t: fnn.UpSampling2D(0), ValueError,
     r"size must be an integer >= 1. Received: size=0\b"),
    ("upsampling2d_string", False, lambda b, t: fnn.UpSampling2D("2"), TypeError,
     r"size must be an integer. Received: size='2'"),
    ("upsampling2d_bool", False, lambda b, t: fnn.UpSampling2D(True), TypeError,
     r"size=True"),
    ("upsampling2d_2_31", False, lambda b, t: fnn.UpSampling2D(2**31), ValueError,
     r"size must be below 2\*\*31. Received: size=2147483648"),
    ("upsampling2d_bilinear", False, lambda b, t: fnn.UpSampling2D(interpolation="bilinear"),
     ValueError, r"interpolation='nearest' only. Received: interpolation='bilinear'"),
    ("upsampling2d_channels_first", False,
     lambda b, t: fnn.UpSampling2D(data_format="channels_first"), ValueError,
     r"data_format='channels_first'"),
    ("upsampling1d_negative", False, lambda b, t: fnn.UpSampling1D(-1), ValueError,
     r"size=-1\b"),
    ("upsampling1d_pair", False, lambda b, t: fnn.UpSampling1D((2, 2)), ValueError,
     r"size must be an integer or a tuple of one integer. Received: size=\(2, 2\)"),
    ("upsampling2d_on_vectors", True, lambda b, t: shaped(b, [fnn.UpSampling2D()], (D,)),
     ValueError, r"up_sampling2d\w* takes one input of shape \(height, width, channels\)"),
    ("upsampling1d_on_images", True, lambda b, t: shaped(b, [fnn.UpSampling1D()], IMG),
     ValueError, r"up_sampling1d\w* takes one input of shape \(steps, channels\). Received: "
                 r"input shape \(4, 6, 1\)"),
    ("upsampling1d_beyond_2_31", True, lambda b, t: shaped(b, [fnn.UpSampling1D(2**30)], (2, 1)),
     ValueError, r"upsampled by \[1073741824\] has \(2147483648,\) positions: each must be "
                 r"below 2\*\*31"),
    ("repeat_vector_zero", False, lambda b, t: fnn.RepeatVector(0), ValueError,
     r"n must be an integer >= 1. Received: n=0\b"),
    ("repeat_vector_negative", False, lambda b, t: fnn.RepeatVector(-1), ValueError,
     r"n=-1\b"),
    ("repeat_vector_bool", False, lambda b, t: fnn.RepeatVector(True), TypeError, r"n=True"),
    ("repeat_vector_string", False, lambda b, t: fnn.RepeatVector("3"), TypeError, r"n='3'"),
    ("repeat_vector_none", False, lambda b, t: fnn.RepeatVector(None), TypeError, r"n=None"),
    ("repeat_vector_2_31", False, lambda b, t: fnn.RepeatVector(2**31), ValueError,
     r"n must be below 2\*\*31. Received: n=2147483648"),
    ("repeat_vector_on_sequences", True, lambda b, t: shaped(b, [fnn.RepeatVector(2)], (T, F)),
     ValueError, r"repeat_vector\w* takes samples of one dimension \(features,\). Received: "
                 r"input shape \(5, 2\)"),
    ("repeat_vector_predict_features", True,
     lambda b, t: shaped(b, [fnn.RepeatVector(2)], (D,)).predict(X[:, :3]), ValueError,
     r"X must have 4 features.*shape \(6, 3\)"),

    # ---------------------------------------------------------------- Rescaling, Normalization
    ("rescaling_scale_inf", False, lambda b, t: fnn.Rescaling(math.inf), ValueError,
     r"scale must be a finite number. Received: scale=inf"),
    ("rescaling_scale_nan", False, lambda b, t: fnn.Rescaling(math.nan), ValueError,
     r"scale=nan"),
    ("rescaling_scale_numpy_inf", False, lambda b, t: fnn.Rescaling(np.float32(np.inf)),
     ValueError, r"scale=inf"),
    ("rescaling_scale_bool", False, lambda b, t: fnn.Rescaling(True), ValueError,
     r"scale=True"),
    ("rescaling_scale_none", False, lambda b, t: fnn.Rescaling(None), ValueError,
     r"scale=None"),
    ("rescaling_scale_list", False, lambda b, t: fnn.Rescaling([1.0]), ValueError,
     r"scale=\[1\.0\]"),
    ("rescaling_scale_complex", False, lambda b, t: fnn.Rescaling(1j), ValueError,
     r"scale=1j"),
    ("rescaling_offset_nan", False, lambda b, t: fnn.Rescaling(1.0, offset=math.nan),
     ValueError, r"offset must be a finite number. Received: offset=nan"),
    ("rescaling_scale_subnormal_in_float32", True,
     lambda b, t: shaped(b, [fnn.Rescaling(1e-40)], (D,)), ValueError,
     r"scale=1e-40, which in float32 is subnormal"),
    ("rescaling_offset_overflows_float32", True,
     lambda b, t: shaped(b, [fnn.Rescaling(1.0, offset=-1e39)], (D,)), ValueError,
     r"offset=-1e\+39, which in float32 overflows"),
    ("normalization_axis_1", False, lambda b, t: fnn.Normalization(axis=1), ValueError,
     r"axis must be -1. Received: axis=1\b"),
    ("normalization_axis_none", False, lambda b, t: fnn.Normalization(axis=None), ValueError,
     r"axis=None"),
    ("normalization_axis_tuple", False, lambda b, t: fnn.Normalization(axis=(0, 1)),
     ValueError, r"axis=\(0, 1\)"),
    ("normalization_invert_int", False, lambda b, t: fnn.Normalization(invert=1), TypeError,
     r"invert must be True or False. Received: invert=1\b"),
    ("normalization_variance_alone", False, lambda b, t: fnn.Normalization(variance=1.0),
     ValueError, r"both mean and variance, or neither"),
    ("normalization_variance_negative", False,
     lambda b, t: fnn.Normalization(mean=[0.0, 1.0], variance=[1.0, -1.0]), ValueError,
     r"variance must be >= 0. Received: -1\.0"),
    ("normalization_variance_nan", False,
     lambda b, t: fnn.Normalization(mean=[0.0], variance=[math.nan]), ValueError,
     r"variance must be finite.*variance\[0\]=nan"),
    ("normalization_mean_complex", False,
     lambda b, t: fnn.Normalization(mean=[1j], variance=[1.0]), TypeError,
     r"mean must hold real numbers. Received: mean with dtype complex128"),
    ("normalization_mean_bool_array", False,
     lambda b, t: fnn.Normalization(mean=np.array([True, False]), variance=[1.0, 1.0]),
     TypeError, r"mean must hold numbers, not booleans. Received: mean with dtype bool"),
    ("normalization_variance_bool_list", False,
     lambda b, t: fnn.Normalization(mean=[0.0, 1.0], variance=[True, True]), TypeError,
     r"variance must hold numbers, not booleans"),
    ("normalization_mean_bool_scalar", False,
     lambda b, t: fnn.Normalization(mean=True, variance=1.0), TypeError,
     r"mean must hold numbers, not booleans"),
    ("alpha_dropout_rate_one", False, lambda b, t: fnn.AlphaDropout(1.0), ValueError,
     r"rate.*Received: rate=1\.0"),
    ("alpha_dropout_noise_shape_batch_not_none", False,
     lambda b, t: fnn.AlphaDropout(0.2, noise_shape=(2, 4)), ValueError,
     r"noise_shape must be None or a tuple \(None, \.\.\.\).*noise_shape=\(2, 4\)"),
    ("alpha_dropout_noise_shape_for_other_samples", True,
     lambda b, t: shaped(b, [fnn.AlphaDropout(0.2, noise_shape=(None, 3))], (D,)), ValueError,
     r"noise_shape \[None, 3\] does not fit samples of shape \(4,\)"),
    ("alpha_dropout_fit_nan", True,
     lambda b, t: shaped(b, [fnn.AlphaDropout(0.2), fnn.Dense(C, activation="softmax")], (D,),
                         compiled=True).fit(with_nan(np.ones((N, D)), (2, 1)), Y, verbose=0),
     ValueError, r"X\[2, 1\]=.*nan"),
    ("gaussian_noise_stddev_overflows_float32", True,
     lambda b, t: shaped(b, [fnn.GaussianNoise(1e39)], (D,)), ValueError,
     r"GaussianNoise\(1e\+39\): stddev must be 0 or a float32 normal number.*"
     r"stddev=1e\+39, which in float32 overflows"),
    ("normalization_mean_strings", False,
     lambda b, t: fnn.Normalization(mean=["a"], variance=[1.0]), TypeError,
     r"mean must hold real numbers.*<U1"),
    ("normalization_mean_ragged", False,
     lambda b, t: fnn.Normalization(mean=[[1.0], [1.0, 2.0]], variance=[1.0]), ValueError,
     r"mean must be a rectangular array of numbers"),
    ("normalization_mean_2d", False,
     lambda b, t: fnn.Normalization(mean=[[1.0], [2.0]], variance=[1.0, 1.0]), ValueError,
     r"mean must be a number or a 1-D array \(one per feature\). Received: mean with shape "
     r"\(2, 1\)"),
    ("normalization_statistics_for_other_features", True,
     lambda b, t: shaped(b, [fnn.Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0] * 3)],
                         (D,)), ValueError,
     r"normalization\w* has statistics for 3 features; its input has 4"),
    ("normalization_adapted_then_built_on_other_features", True,
     lambda b, t: adapted_then_built(b, np.ones((5, 3)), (D,)), ValueError,
     r"statistics for 3 features; its input has 4"),
    ("normalization_mean_overflows_float32", True,
     lambda b, t: shaped(b, [fnn.Normalization(mean=1e39, variance=1.0)], (D,)), ValueError,
     r"mean or variance overflows float32"),
    ("normalization_adapt_other_features", False,
     lambda b, t: built_normalization().adapt(np.ones((5, 3))), ValueError,
     r"normalization\w* normalises 4 features. Received: data with 3 on its last axis"),
    ("normalization_adapt_empty", False, lambda b, t: fnn.Normalization().adapt([]),
     ValueError, r"data must hold at least one sample. Received: shape \(0,\)"),
    ("normalization_adapt_scalar", False, lambda b, t: fnn.Normalization().adapt(3.0),
     ValueError, r"at least one sample. Received: shape \(\)"),
    ("normalization_adapt_no_features", False,
     lambda b, t: fnn.Normalization().adapt(np.ones((3, 0))), ValueError,
     r"at least one sample. Received: shape \(3, 0\)"),
    ("normalization_adapt_nan", False,
     lambda b, t: fnn.Normalization().adapt(with_nan(X, (4, 1))), ValueError,
     r"data must be finite .*data\[4, 1\]=nan"),
    ("normalization_adapt_inf", False,
     lambda b, t: fnn.Normalization().adapt(with_nan(X, (0, 3), -math.inf)), ValueError,
     r"data\[0, 3\]=-inf"),
    ("normalization_adapt_strings", False, lambda b, t: fnn.Normalization().adapt(STR),
     TypeError, r"data must hold real numbers. Received: data with dtype <U1"),
    ("normalization_adapt_none", False, lambda b, t: fnn.Normalization().adapt(None),
     TypeError, r"data must hold real numbers.*dtype object"),
    ("normalization_adapt_complex", False, lambda b, t: fnn.Normalization().adapt(CPLX),
     TypeError, r"data .*complex128"),
    ("normalization_adapt_ragged", False,
     lambda b, t: fnn.Normalization().adapt([[1.0], [1.0, 2.0]]), ValueError,
     r"data must be a rectangular array of numbers"),
    # the variance of +-1e200 overflows float64: refused by name, also when the host has NumPy
    # raise on overflow (it raised FloatingPointError from inside adapt)
    ("normalization_adapt_variance_overflows", False,
     lambda b, t: strict(lambda: fnn.Normalization().adapt([[1e200], [-1e200]])), ValueError,
     r"data: its variance overflows float64"),
    ("normalization_adapt_mean_overflows", False,
     lambda b, t: strict(lambda: fnn.Normalization().adapt([[1.7e308], [1.7e308]])),
     ValueError, r"overflows float64"),
    ("normalization_adapt_overflows_float32", False,
     lambda b, t: built_normalization(1).adapt([[1e30], [-1e30]]), ValueError,
     r"mean or variance overflows float32"),
    ("normalization_set_weights_shape", False,
     lambda b, t: built_normalization().set_weights([np.zeros(3), np.ones(D), np.array(1.0)]),
     ValueError, r"mean of normalization\w* must have shape \(4,\). Received: mean with shape "
                 r"\(3,\)"),
    ("normalization_set_weights_nan", False,
     lambda b, t: built_normalization().set_weights(
         [np.zeros(D), with_nan(np.ones((1, D)), (0, 1))[0], np.array(1.0)]), ValueError,
     r"variance\[1\]=nan"),
    ("normalization_predict_features", True,
     lambda b, t: shaped(b, [fnn.Normalization(mean=0.0, variance=1.0)], (D,)).predict(
         X[:, :3]), ValueError, r"X must have 4 features.*shape \(6, 3\)"),

    # ---------------------------------------------------------------- TimeDistributed
    ("td_of_a_string", False, lambda b, t: TW("Dense"), TypeError,
     r"TimeDistributed wraps a fastnn layer .*Received: layer='Dense'"),
    ("td_of_a_class", False, lambda b, t: TW(fnn.Dense), TypeError,
     r"layer=<class 'fastnn\.layers\.core\.Dense'>"),
    ("td_of_none", False, lambda b, t: TW(None), TypeError, r"layer=None"),
    ("td_of_a_model", False,
     lambda b, t: TW(fnn.Sequential([fnn.Dense(2)], input_dim=3, backend="numpy")), TypeError,
     r"layer=Sequential\("),
    ("td_of_dropout", False, lambda b, t: TW(fnn.Dropout(0.5)), TypeError,
     r"TimeDistributed does not wrap Dropout"),
    ("td_of_concatenate", False, lambda b, t: TW(fnn.Concatenate()), TypeError,
     r"a layer of one input. Received: Concatenate"),
    ("td_of_a_built_layer", False,
     lambda b, t: TW(shaped("numpy", [fnn.Dense(2)], (D,)).layers[0]), TypeError,
     r"wraps a layer not yet built"),
    ("td_on_vectors", True, lambda b, t: shaped(b, [TW(fnn.Dense(2))], (D,)), ValueError,
     r"time_distributed\w* takes sequences \(steps, \*sample\). Received: input shape \(4,\)"),
    ("td_functional_on_vectors", False, lambda b, t: TW(fnn.Dense(2))(fnn.Input((3,))),
     ValueError, r"takes sequences \(steps, \*sample\). Received: input shape \(3,\)"),
    ("td_on_an_array", False, lambda b, t: TW(fnn.Dense(2))(XS), TypeError,
     r"symbolic tensor.*array"),
    ("td_conv2d_on_sequences_of_vectors", True,
     lambda b, t: shaped(b, [TW(fnn.Conv2D(2, 3))], (T, F)), ValueError,
     r"conv2d\w* takes one input of shape \(height, width, channels\). Received: input shape "
     r"\(2,\)"),
    ("td_conv2d_kernel_larger_than_the_frames", True,
     lambda b, t: shaped(b, [TW(fnn.Conv2D(2, 5))], (3, 4, 4, 1)), ValueError,
     r"5x5 kernel .*does not fit an input of shape \(4, 4, 1\)"),
    ("td_lstm_on_sequences_of_vectors", True, lambda b, t: shaped(b, [TW(fnn.LSTM(2))], (T, F)),
     ValueError, r"lstm\w* takes sequences of shape \(steps, features\)"),
    ("td_predict_more_steps", True,
     lambda b, t: shaped(b, [TW(fnn.Dense(2))], (T, F)).predict(np.concatenate([XS, XS], 1)),
     ValueError, r"X must have shape \(n, 5, 2\). Received: X with shape \(6, 10, 2\)"),
    ("td_predict_flat", True,
     lambda b, t: shaped(b, [TW(fnn.Dense(2))], (T, F)).predict(XS.reshape(N, -1)),
     ValueError, r"X must have shape \(n, 5, 2\). Received: X with shape \(6, 10\)"),
    ("td_fit_target_shape", True,
     lambda b, t: shaped(b, [TW(fnn.Dense(2))], (T, F)).compile("mse", fnn.SGD(0.1)).fit(
         XS, np.zeros((N, T, 3)), verbose=0), ValueError, r"y must have shape .*\(6, 5, 3\)"),

    # ---------------------------------------------------------------- merges
    ("multiply_of_one_tensor", False, lambda b, t: fnn.Multiply()(fnn.Input((2,))), TypeError,
     r"Multiply takes a list of tensors. Received: <SymbolicTensor shape=\(None, 2\)"),
    ("multiply_of_a_list_of_one", False, lambda b, t: fnn.Multiply()([fnn.Input((2,))]),
     ValueError, r"multiply\w* takes a list of at least two inputs. Received: input shape "
                 r"\[\(2,\)\]"),
    ("multiply_of_nothing", False, lambda b, t: fnn.Multiply()([]), TypeError,
     r"symbolic tensor.*Received: \[\]"),
    ("average_of_different_widths", False,
     lambda b, t: fnn.Average()([fnn.Input((2,)), fnn.Input((3,))]), ValueError,
     r"average\w* needs inputs of one shape. Received: \[\(2,\), \(3,\)\]"),
    ("maximum_of_different_ranks", False,
     lambda b, t: fnn.Maximum()([fnn.Input((2,)), fnn.Input((1, 2))]), ValueError,
     r"maximum\w* needs inputs of one shape. Received: \[\(2,\), \(1, 2\)\]"),
    ("minimum_of_transposed_shapes", False,
     lambda b, t: fnn.Minimum()([fnn.Input((2, 3)), fnn.Input((3, 2))]), ValueError,
     r"minimum\w* needs inputs of one shape. Received: \[\(2, 3\), \(3, 2\)\]"),
    ("subtract_of_three", False, lambda b, t: fnn.Subtract()([fnn.Input((2,))] * 3),
     ValueError, r"subtract\w* takes exactly 2 inputs. Received: 3"),
    ("minimum_of_arrays", False, lambda b, t: fnn.Minimum()([X, X]), TypeError,
     r"symbolic tensor.*Received: \[array"),
    ("multiply_axis", False, lambda b, t: fnn.Multiply(axis=1), TypeError,
     r"unexpected keyword argument 'axis'"),
    ("multiply_in_a_sequential", True, lambda b, t: shaped(b, [fnn.Multiply()], (D,)),
     TypeError, r"Multiply takes several inputs: build the model with the functional API"),
    ("merge_predict_one_array", True, lambda b, t: merged(b).predict(X), ValueError,
     r"X must be a list of 2 arrays, one per input. Received: ndarray"),
    ("merge_predict_three_arrays", True, lambda b, t: merged(b, "Subtract").predict([X] * 3),
     ValueError, r"X must be a list of 2 arrays, one per input. Received: a list of 3"),
    ("merge_predict_width", True,
     lambda b, t: merged(b, "Maximum").predict([X, X[:, :3]]), ValueError,
     r"X\[1\] must have 4 features \(columns\). Received: X\[1\] with shape \(6, 3\)"),
    ("merge_predict_rows", True, lambda b, t: merged(b, "Average", 3).predict([X, X, X[:5]]),
     ValueError, r"same number of samples.*\[6, 6, 5\]"),
    ("merge_predict_nan", True,
     lambda b, t: merged(b, "Minimum").predict([X, with_nan(X, (3, 2))]), ValueError,
     r"X\[1\]\[3, 2\]=.*nan"),
    ("merge_backward_dout_shape", True, lambda b, t: merged_backward(b, np.ones((N, 3))),
     ValueError, r"dout must have 4 features \(columns\). Received: dout with shape \(6, 3\)"),
    ("merge_backward_dout_nan", True,
     lambda b, t: merged_backward(b, with_nan(np.ones((N, D)), (2, 2))), ValueError,
     r"dout\[2, 2\]=.*nan"),
    # image augmentation layers (fastnn/layers/augmentation.py)
    ("augment_factor_out_of_range", False, lambda b, t: fnn.RandomRotation(2.0), ValueError,
     r"factor must be in \[-1, 1\]"),
    ("augment_fill_mode_unknown", False,
     lambda b, t: fnn.RandomZoom(0.1, fill_mode="edge"), ValueError, r"fill_mode"),
    ("augment_not_images", True,
     lambda b, t: fnn.Sequential([fnn.RandomTranslation(0.1, 0.1)], input_shape=(4, 3),
                                 backend=b), ValueError, r"\(height, width, channels\)"),
    ("augment_predict_nan", True,
     lambda b, t: fnn.Sequential([fnn.RandomFlip(), fnn.Flatten(), fnn.Dense(2)],
                                 input_shape=(2, 2, 1), backend=b).predict(
         with_nan(np.ones((N, 2, 2, 1)), (1, 0, 1, 0))), ValueError, r"nan"),
    # step masks (Embedding(mask_zero=True), Masking)
    ("masking_value_string", False, lambda b, t: fnn.Masking("0"), TypeError,
     r"mask_value must be a real number"),
    ("masking_value_nan", False, lambda b, t: fnn.Masking(float("nan")), ValueError,
     r"mask_value must be a finite number"),
    ("masking_value_overflows_float32", True,
     lambda b, t: fnn.Sequential([fnn.Masking(-1e39)], input_shape=(3, 2), backend=b),
     ValueError, r"mask_value must be 0 or a float32 normal number.*overflows"),
    ("masking_vectors_only", True,
     lambda b, t: fnn.Sequential([fnn.Masking()], input_shape=(4,), backend=b), ValueError,
     r"Masking takes sequences of shape \(steps, features\)|masking takes sequences"),
    ("masking_predict_nan", True,
     lambda b, t: fnn.Sequential([fnn.Masking(), fnn.LSTM(2)], input_shape=(3, 2),
                                 backend=b).predict(with_nan(np.ones((N, 3, 2)), (1, 2, 0))),
     ValueError, r"nan"),
    ("mask_zero_on_images_of_ids", True,
     lambda b, t: fnn.Sequential([fnn.Embedding(5, 2, mask_zero=True)], input_shape=(3, 3),
                                 backend=b), ValueError,
     r"mask_zero=True marks the padded steps of sequences of ids, shape \(steps,\)"),
    ("mask_zero_ids_out_of_range", True,
     lambda b, t: fnn.Sequential([fnn.Embedding(5, 2, mask_zero=True), fnn.GRU(2)],
                                 input_shape=(3,), backend=b).predict(np.array([[1, 5, 0]])),
     ValueError, r"ids must be integers in \[0, input_dim=5\).*=5"),
    ("zero_output_for_mask_string", False,
     lambda b, t: fnn.GRU(2, zero_output_for_mask="yes"), TypeError,
     r"zero_output_for_mask must be True or False. Received: zero_output_for_mask=.yes."),

    # ---------------------------------------------------------------- categorical preprocessing
    ("category_encoding_tokens_zero", False, lambda b, t: fnn.CategoryEncoding(0), ValueError,
     r"num_tokens must be an integer >= 1. Received: num_tokens=0"),
    ("category_encoding_out_of_range", True,
     lambda b, t: fnn.Sequential([fnn.CategoryEncoding(3)], input_dim=2, backend=b).predict(
         np.array([[0.0, 3.0]])), ValueError,
     r"inputs of category_encoding must be in \[0, num_tokens=3\)"),
    ("category_encoding_fractions", True,
     lambda b, t: fnn.Sequential([fnn.CategoryEncoding(3)], input_dim=2, backend=b).predict(
         np.array([[0.0, 1.5]])), ValueError, r"inputs of category_encoding must hold integers"),
    ("integer_lookup_nan", True,
     lambda b, t: fnn.Sequential([fnn.IntegerLookup(vocabulary=[1, 2])], input_dim=2,
                                 backend=b).predict(np.array([[1.0, np.nan]])), ValueError,
     r"X\[0, 1\]=nan|integers"),
    ("hashing_bins_string", False, lambda b, t: fnn.Hashing("8"), TypeError,
     r"num_bins must be an integer. Received: num_bins='8'"),
    ("discretization_unsorted", False,
     lambda b, t: fnn.Discretization(bin_boundaries=[1.0, 0.0]), ValueError,
     r"bin_boundaries must be sorted"),
    ("discretization_not_adapted", True,
     lambda b, t: fnn.Sequential([fnn.Discretization(num_bins=4)], input_dim=2, backend=b),
     ValueError, r"discretization has no bin boundaries: adapt\(data\)"),
    ("text_vectorization_max_tokens", False, lambda b, t: fnn.TextVectorization(max_tokens=1),
     ValueError, r"max_tokens must be greater than 1 \(or None\). Received: max_tokens=1"),
    ("string_lookup_numbers", False, lambda b, t: fnn.StringLookup()(np.array([1, 2])),
     TypeError, r"data must hold strings. Received: 1 of type int"),
    # ---------------------------------------------------------------- session 31's layers
    # (each layer's own file tests these too; here the shared table holds them to the rule
    # that a message names the argument and the received value)
    ("random_flip_mode_unknown", False, lambda b, t: fnn.RandomFlip("diagonal"), ValueError,
     r"mode must be one of .*Received: mode='diagonal'"),
    ("random_flip_seed_negative", False, lambda b, t: fnn.RandomFlip(seed=-1), ValueError,
     r"seed must be an integer >= 0. Received: seed=-1"),
    ("random_flip_on_vectors", True, lambda b, t: shaped(b, [fnn.RandomFlip()], (4,)),
     ValueError, r"random_flip takes images of shape \(height, width, channels\).*input shape "
                 r"\(4,\)"),
    ("random_rotation_factor_triple", False, lambda b, t: fnn.RandomRotation((0.1, 0.2, 0.3)),
     ValueError, r"factor must be a number or a pair .*Received: factor=\(0.1, 0.2, 0.3\)"),
    ("random_rotation_factor_nan", False, lambda b, t: fnn.RandomRotation(math.nan), ValueError,
     r"factor must be a finite number.*Received: factor=nan"),
    ("random_rotation_interpolation", False,
     lambda b, t: fnn.RandomRotation(0.1, interpolation="bicubic"), ValueError,
     r"interpolation must be one of .*Received: interpolation='bicubic'"),
    ("random_rotation_fill_value_nan", False,
     lambda b, t: fnn.RandomRotation(0.1, fill_value=math.nan), ValueError,
     r"fill_value must be a finite number.*Received: fill_value=nan"),
    ("random_rotation_fill_value_overflows_float32", True,
     lambda b, t: shaped(b, [fnn.RandomRotation(0.1, fill_value=1e39)], (4, 4, 3)),
     ValueError, r"fill_value must be 0 or a float32 normal number.*Received: fill_value=1e\+39"),
    ("random_zoom_factor_minus_one", False, lambda b, t: fnn.RandomZoom(-1.0), ValueError,
     r"height_factor must be in \(-1, 1\].*Received: height_factor=-1.0"),
    ("random_zoom_width_factor_string", False,
     lambda b, t: fnn.RandomZoom(0.1, width_factor="0.1"), TypeError,
     r"width_factor must be a real number. Received: width_factor='0.1'"),
    ("random_translation_width_factor_two", False,
     lambda b, t: fnn.RandomTranslation(0.1, 2.0), ValueError,
     r"width_factor must be in \[-1, 1\].*Received: width_factor=2.0"),
    ("random_translation_predict_shape", True,
     lambda b, t: shaped(b, [fnn.RandomTranslation(0.1, 0.1)], (4, 4, 3)).predict(
         np.ones((2, 4, 4))), ValueError,
     r"X must have shape \(n, 4, 4, 3\). Received: X with shape \(2, 4, 4\)"),
    ("random_contrast_factor_negative", False, lambda b, t: fnn.RandomContrast(-0.1),
     ValueError, r"factor must be a finite number in \[0.0, 1.0\]. Received: factor=-0.1"),
    ("random_contrast_factor_nan", False, lambda b, t: fnn.RandomContrast(math.nan),
     ValueError, r"Received: factor=nan"),
    ("random_contrast_value_range_reversed", False,
     lambda b, t: fnn.RandomContrast(0.1, value_range=(1, 0)), ValueError,
     r"value_range must have low < high. Received: value_range=\(1, 0\)"),
    ("random_contrast_value_range_scalar", False,
     lambda b, t: fnn.RandomContrast(0.1, value_range=255), ValueError,
     r"value_range must be a pair \(low, high\). Received: value_range=255"),
    ("random_contrast_value_range_overflows_float32", True,
     lambda b, t: shaped(b, [fnn.RandomContrast(0.1, value_range=(0, 1e39))], (4, 4, 3)),
     ValueError, r"value_range must be 0 or a float32 normal number.*value_range=1e\+39"),
    ("random_contrast_on_sequences", True,
     lambda b, t: shaped(b, [fnn.RandomContrast(0.1)], (4, 3)), ValueError,
     r"random_contrast takes images .*Received: input shape \(4, 3\)"),
    ("random_contrast_fit_nan", True,
     lambda b, t: shaped(b, [fnn.RandomContrast(0.1), fnn.Flatten(), fnn.Dense(C)], (2, 2, 1),
                         compiled=True).fit(with_nan(np.ones((N, 2, 2, 1)), (3, 1, 0, 0)), Y,
                                            verbose=0), ValueError, r"X\[3, 1, 0, 0\]=nan"),
    ("resizing_height_zero", False, lambda b, t: fnn.Resizing(0, 4), ValueError,
     r"height must be an integer >= 1. Received: height=0"),
    ("resizing_width_float", False, lambda b, t: fnn.Resizing(4, 4.0), TypeError,
     r"width must be an integer. Received: width=4.0"),
    ("resizing_height_2_31", False, lambda b, t: fnn.Resizing(2**31, 4), ValueError,
     r"height must be below 2\*\*31. Received: height=2147483648"),
    ("resizing_interpolation_unknown", False,
     lambda b, t: fnn.Resizing(4, 4, interpolation="cubic"), ValueError,
     r"interpolation must be one of .*Received: interpolation='cubic'"),
    ("resizing_interpolation_not_provided", False,
     lambda b, t: fnn.Resizing(4, 4, interpolation="bicubic"), ValueError,
     r"interpolation='bicubic' is not provided by fastnn"),
    ("resizing_both_aspect_ratios", False,
     lambda b, t: fnn.Resizing(4, 4, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True),
     ValueError, r"Received: crop_to_aspect_ratio=True, pad_to_aspect_ratio=True"),
    ("resizing_fill_mode", False, lambda b, t: fnn.Resizing(4, 4, fill_mode="reflect"),
     ValueError, r"fill_mode must be one of \['constant'\]. Received: fill_mode='reflect'"),
    ("resizing_fill_value_nan", False, lambda b, t: fnn.Resizing(4, 4, fill_value=math.nan),
     ValueError, r"Received: fill_value=nan"),
    ("resizing_channels_first", False,
     lambda b, t: fnn.Resizing(4, 4, data_format="channels_first"), ValueError,
     r"data_format must be None or 'channels_last'. Received: data_format='channels_first'"),
    ("resizing_on_vectors", True, lambda b, t: shaped(b, [fnn.Resizing(2, 2)], (4,)),
     ValueError, r"resizing takes images .*Received: input shape \(4,\)"),
    ("resizing_predict_shape", True,
     lambda b, t: shaped(b, [fnn.Resizing(2, 2)], (4, 4, 3)).predict(np.ones((2, 4, 3, 3))),
     ValueError, r"X must have shape \(n, 4, 4, 3\). Received: X with shape \(2, 4, 3, 3\)"),
    ("resizing_predict_inf", True,
     lambda b, t: shaped(b, [fnn.Resizing(2, 2)], (4, 4, 3)).predict(
         with_nan(np.ones((2, 4, 4, 3)), (1, 2, 3, 0), math.inf)), ValueError,
     r"X\[1, 2, 3, 0\]=inf"),
    ("center_crop_width_negative", False, lambda b, t: fnn.CenterCrop(2, -1), ValueError,
     r"width must be an integer >= 1. Received: width=-1"),
    ("center_crop_height_string", False, lambda b, t: fnn.CenterCrop("2", 2), TypeError,
     r"height must be an integer. Received: height='2'"),
    ("center_crop_on_sequences", True, lambda b, t: shaped(b, [fnn.CenterCrop(2, 2)], (4, 3)),
     ValueError, r"center_crop takes images .*Received: input shape \(4, 3\)"),
    ("random_crop_height_zero", False, lambda b, t: fnn.RandomCrop(0, 2), ValueError,
     r"height must be an integer >= 1. Received: height=0"),
    ("random_crop_seed_float", False, lambda b, t: fnn.RandomCrop(2, 2, seed=1.5), TypeError,
     r"seed must be an integer. Received: seed=1.5"),
    ("random_crop_on_vectors", True, lambda b, t: shaped(b, [fnn.RandomCrop(2, 2)], (4,)),
     ValueError, r"random_crop takes images .*Received: input shape \(4,\)"),
    ("prelu_shared_axes_zero", False, lambda b, t: fnn.PReLU(shared_axes=0), ValueError,
     r"shared_axes must be an integer >= 1. Received: shared_axes=0"),
    ("prelu_shared_axes_repeated", False, lambda b, t: fnn.PReLU(shared_axes=[1, 1]),
     ValueError, r"shared_axes must not repeat an axis. Received: shared_axes=\[1, 1\]"),
    ("prelu_shared_axes_string", False, lambda b, t: fnn.PReLU(shared_axes="1"), TypeError,
     r"shared_axes must be an integer. Received: shared_axes='1'"),
    ("prelu_shared_axes_beyond_the_input", True,
     lambda b, t: shaped(b, [fnn.PReLU(shared_axes=[3])], (4, 3)), ValueError,
     r"shared_axes must be axes of the input, 1 to 2.*Received: shared_axes=\[3\]"),
    ("prelu_alpha_constraint", False, lambda b, t: fnn.PReLU(alpha_constraint="non_neg"),
     ValueError, r"alpha_constraint is not supported.*Received: alpha_constraint='non_neg'"),
    ("prelu_alpha_initializer_unknown", False, lambda b, t: fnn.PReLU(alpha_initializer="bogus"),
     ValueError, r"alpha_initializer: unknown initializer 'bogus'"),
    ("prelu_alpha_initializer_none", False, lambda b, t: fnn.PReLU(alpha_initializer=None),
     ValueError, r"Received: alpha_initializer=None"),
    ("prelu_set_weights_shape", True,
     lambda b, t: shaped(b, [fnn.PReLU(shared_axes=[1])], (4, 3)).layers[0].set_weights(
         [np.ones((4, 3))]), ValueError,
     r"alpha of p_re_lu must have shape \(1, 3\). Received: alpha with shape \(4, 3\)"),
    ("prelu_set_weights_nan", True,
     lambda b, t: shaped(b, [fnn.PReLU()], (3,)).layers[0].set_weights(
         [np.array([math.nan, 0.0, 0.0])]), ValueError, r"alpha\[0\]=nan"),
    ("prelu_predict_shape", True,
     lambda b, t: shaped(b, [fnn.PReLU()], (4, 3)).predict(np.ones((2, 3, 4))), ValueError,
     r"X must have shape \(n, 4, 3\). Received: X with shape \(2, 3, 4\)"),
    ("identity_unknown_argument", False, lambda b, t: fnn.Identity(bogus=1), TypeError,
     r"unexpected keyword argument 'bogus'"),
    ("identity_name", False, lambda b, t: fnn.Identity(name="a b"), ValueError,
     r"name must be 1 to 128 letters.*Received: name='a b'"),
    ("identity_predict_nan", True,
     lambda b, t: shaped(b, [fnn.Identity()], (D,)).predict(with_nan(X)), ValueError,
     r"X\[1, 2\]=nan"),
    ("group_norm_groups_zero", False, lambda b, t: fnn.GroupNormalization(0), ValueError,
     r"groups must be a positive integer or -1.*Received: groups=0"),
    ("group_norm_groups_minus_2", False, lambda b, t: fnn.GroupNormalization(-2), ValueError,
     r"groups must be an integer >= -1. Received: groups=-2"),
    ("group_norm_groups_float", False, lambda b, t: fnn.GroupNormalization(2.0), TypeError,
     r"groups must be an integer. Received: groups=2.0"),
    ("group_norm_groups_not_dividing", True,
     lambda b, t: shaped(b, [fnn.GroupNormalization(3)], (4, 4)), ValueError,
     r"groups must divide the 4 channels. Received: groups=3"),
    ("group_norm_epsilon_zero", False, lambda b, t: fnn.GroupNormalization(2, epsilon=0),
     ValueError, r"epsilon must be a finite number in \(0.0, inf\). Received: epsilon=0.0"),
    ("group_norm_epsilon_nan", False, lambda b, t: fnn.GroupNormalization(2, epsilon=math.nan),
     ValueError, r"Received: epsilon=nan"),
    ("group_norm_epsilon_inf_in_float32", False,
     lambda b, t: fnn.GroupNormalization(2, epsilon=1e308), ValueError,
     r"epsilon must be finite in float32 \(at most 3\.40282356\d*e\+38\)\. "
     r"Received: epsilon=1e\+308"),
    ("group_norm_axis_not_channels", True,
     lambda b, t: shaped(b, [fnn.GroupNormalization(2, axis=1)], (4, 4)), ValueError,
     r"normalizes over the last \(channels\) axis.*Received: axis=1"),
    ("group_norm_center_string", False, lambda b, t: fnn.GroupNormalization(2, center="yes"),
     TypeError, r"center must be True or False. Received: center='yes'"),
    ("group_norm_predict_nan", True,
     lambda b, t: shaped(b, [fnn.GroupNormalization(2)], (4, 4)).predict(
         with_nan(np.ones((2, 4, 4)), (1, 3, 0))), ValueError, r"X\[1, 3, 0\]=nan"),
    ("average_pooling3d_pool_zero", False, lambda b, t: fnn.AveragePooling3D((0, 2, 2)),
     ValueError, r"pool_size must be an integer >= 1. Received: pool_size=0"),
    ("global_average_pooling3d_on_images", True,
     lambda b, t: shaped(b, [fnn.GlobalAveragePooling3D()], (4, 4, 1)), ValueError,
     r"global_average_pooling3d takes one input of shape \(depth, height, width, channels\)"
     r".*input shape \(4, 4, 1\)"),
    ("global_average_pooling3d_keepdims", False,
     lambda b, t: fnn.GlobalAveragePooling3D(keepdims="yes"), TypeError,
     r"keepdims must be True or False. Received: keepdims='yes'"),
    ("global_max_pooling3d_channels_first", False,
     lambda b, t: fnn.GlobalMaxPooling3D(data_format="channels_first"), ValueError,
     r"Received: data_format='channels_first'"),
    ("upsampling3d_size_zero", False, lambda b, t: fnn.UpSampling3D((2, 0, 2)), ValueError,
     r"size must be an integer >= 1. Received: size=0"),
    ("upsampling3d_size_pair", False, lambda b, t: fnn.UpSampling3D((2, 2)), ValueError,
     r"size must be an integer or a tuple of 3 integers. Received: size=\(2, 2\)"),
    ("zeropadding3d_pair", False, lambda b, t: fnn.ZeroPadding3D((1, 1)), ValueError,
     r"padding must be an int, a triple .*Received: padding=\(1, 1\)"),
    ("cropping3d_everything", True, lambda b, t: shaped(b, [fnn.Cropping3D(2)], (4, 4, 4, 1)),
     ValueError, r"cropping \[\[2, 2\], \[2, 2\], \[2, 2\]\] leaves nothing of an input of "
                 r"shape \(4, 4, 4, 1\)"),
    ("spatial_dropout3d_on_images", True,
     lambda b, t: shaped(b, [fnn.SpatialDropout3D(0.1)], (4, 4, 1)), ValueError,
     r"spatial_dropout3d takes samples of shape \(depth, height, width, channels\).*"
     r"input shape \(4, 4, 1\)"),
    ("integer_lookup_oov_negative", False, lambda b, t: fnn.IntegerLookup(num_oov_indices=-1),
     ValueError, r"num_oov_indices must be an integer >= 0. Received: num_oov_indices=-1"),
    ("integer_lookup_oov_indices_2_31", False,
     lambda b, t: fnn.IntegerLookup(num_oov_indices=2**31), ValueError,
     r"num_oov_indices must be below 2\*\*31. Received: num_oov_indices=2147483648"),
    ("integer_lookup_output_mode", False, lambda b, t: fnn.IntegerLookup(output_mode="bag"),
     ValueError, r"output_mode must be one of .*Received: output_mode='bag'"),
    ("integer_lookup_vocabulary_floats", False,
     lambda b, t: fnn.IntegerLookup(vocabulary=[1.5, 2]), TypeError,
     r"vocabulary must hold integers. Received: a vocabulary entry 1.5"),
    ("integer_lookup_vocabulary_repeated", False,
     lambda b, t: fnn.IntegerLookup(vocabulary=[1, 1]), ValueError,
     r"vocabulary has repeated tokens: \[1\]"),
    ("integer_lookup_token_beyond_float32", True,
     lambda b, t: shaped(b, [fnn.IntegerLookup(vocabulary=[2**30])], (2,)), ValueError,
     r"float32 holds exactly.*Received: vocabulary holding 1073741824"),
    ("category_encoding_output_mode", False,
     lambda b, t: fnn.CategoryEncoding(3, output_mode="int"), ValueError,
     r"output_mode must be one of .*Received: output_mode='int'"),
    ("category_encoding_tokens_none", False, lambda b, t: fnn.CategoryEncoding(), ValueError,
     r"num_tokens must be set.*Received: num_tokens=None"),
    ("hashing_bins_zero", False, lambda b, t: fnn.Hashing(0), ValueError,
     r"num_bins must be an integer >= 1. Received: num_bins=0"),
    ("hashing_salt_triple", False, lambda b, t: fnn.Hashing(4, salt=[1, 2, 3]), ValueError,
     r"salt must be an integer or a pair of integers. Received: salt=\[1, 2, 3\]"),
    ("hashing_mask_value_list", False, lambda b, t: fnn.Hashing(4, mask_value=[1]), TypeError,
     r"mask_value must be an integer, a string or None. Received: mask_value=\[1\]"),
    ("hashing_predict_nan", True,
     lambda b, t: shaped(b, [fnn.Hashing(4)], (2,)).predict(np.array([[math.nan, 0.0]])),
     ValueError, r"X\[0, 0\]=nan"),
    ("discretization_unsorted_quoted", False,
     lambda b, t: fnn.Discretization(bin_boundaries=[1.0, 0.0]), ValueError,
     r"Received: bin_boundaries=\[1.0, 0.0\]"),
    ("discretization_epsilon_negative", False,
     lambda b, t: fnn.Discretization(num_bins=3, epsilon=-1), ValueError,
     r"epsilon must be a finite number in \(0.0, 1.0\]. Received: epsilon=-1.0"),
    ("discretization_bins_mismatch", False,
     lambda b, t: fnn.Discretization(bin_boundaries=[0.0, 1.0], num_bins=5), ValueError,
     r"num_bins must be len\(bin_boundaries\) \+ 1.*Received: num_bins=5"),
    ("discretization_predict_nan", True,
     lambda b, t: shaped(b, [fnn.Discretization(bin_boundaries=[0.0])], (2,)).predict(
         np.array([[math.nan, 0.0]])), ValueError, r"X\[0, 0\]=nan"),
    # ---------------------------------------------------------------- RNN(cell) and its cells
    ("rnn_cell_int", False, lambda b, t: fnn.RNN(5), ValueError,
     r"cannot run a cell written in Python. Received: cell=5\b"),
    ("rnn_cell_dense", False, lambda b, t: fnn.RNN(fnn.Dense(3)), ValueError,
     r"Received: cell=Dense\(3"),
    ("rnn_cells_empty", False, lambda b, t: fnn.RNN([]), ValueError,
     r"non-empty list of cells. Received: cells=\[\]"),
    ("rnn_return_sequences_str", False,
     lambda b, t: fnn.RNN(fnn.GRUCell(3), return_sequences="yes"), TypeError,
     r"return_sequences must be True or False. Received: return_sequences='yes'"),
    ("rnn_go_backwards_int", False, lambda b, t: fnn.RNN(fnn.GRUCell(3), go_backwards=1),
     TypeError, r"go_backwards must be True or False. Received: go_backwards=1\b"),
    ("rnn_stateful_int", False, lambda b, t: fnn.RNN(fnn.GRUCell(3), stateful=1), TypeError,
     r"stateful must be True or False. Received: stateful=1\b"),
    ("stacked_cells_empty", False, lambda b, t: fnn.StackedRNNCells([]), ValueError,
     r"Received: cells=\[\]"),
    ("stacked_cells_not_a_list", False, lambda b, t: fnn.StackedRNNCells(fnn.LSTMCell(3)),
     ValueError, r"Received: cells=LSTMCell\(3\)"),
    ("stacked_cells_dense_inside", False,
     lambda b, t: fnn.StackedRNNCells([fnn.LSTMCell(3), fnn.Dense(3)]), ValueError,
     r"Received: cell=Dense\(3"),
    ("lstm_cell_units_zero", False, lambda b, t: fnn.LSTMCell(0), ValueError,
     r"units must be an integer >= 1. Received: units=0\b"),
    ("gru_cell_units_negative", False, lambda b, t: fnn.GRUCell(-1), ValueError,
     r"Received: units=-1\b"),
    ("simple_cell_units_float", False, lambda b, t: fnn.SimpleRNNCell(2.5), TypeError,
     r"units must be an integer. Received: units=2\.5"),
    ("simple_cell_units_2_31", False, lambda b, t: fnn.SimpleRNNCell(2**31), ValueError,
     r"units must be below 2\*\*31. Received: units=2147483648"),
    ("lstm_cell_dropout_one", False, lambda b, t: fnn.LSTMCell(3, dropout=1.0), ValueError,
     r"dropout must be a finite number in \[0\.0, 1\.0\). Received: dropout=1\.0"),
    ("gru_cell_recurrent_dropout_nan", False,
     lambda b, t: fnn.GRUCell(3, recurrent_dropout=math.nan), ValueError,
     r"Received: recurrent_dropout=nan"),
    ("lstm_cell_seed_str", False, lambda b, t: fnn.LSTMCell(3, dropout=0.1, seed="0"),
     TypeError, r"seed='0'"),
    ("lstm_cell_unknown_argument", False, lambda b, t: fnn.LSTMCell(3, foo=1), TypeError,
     r"LSTMCell got an unexpected argument 'foo'. Received: foo=1\b"),
    ("gru_cell_reset_after_str", False, lambda b, t: fnn.GRUCell(3, reset_after="yes"),
     TypeError, r"reset_after must be True or False. Received: reset_after='yes'"),
    ("rnn_cell_on_vectors", True, lambda b, t: shaped(b, [fnn.RNN(fnn.LSTMCell(3))], (4,)),
     ValueError, r"takes sequences of shape \(steps, features\).*Received: input shape \(4,\)"),
    ("rnn_cell_predict_features", True,
     lambda b, t: shaped(b, [fnn.RNN(fnn.LSTMCell(3))], (5, 2)).predict(np.ones((N, 5, 3))),
     ValueError, r"X must have shape \(n, 5, 2\). Received: X with shape \(6, 5, 3\)"),
    ("rnn_cell_predict_objects", True,
     lambda b, t: shaped(b, [fnn.RNN(fnn.GRUCell(3))], (5, 2)).predict(XR.astype(object)),
     TypeError, r"X must hold real numbers. Received: X with dtype object"),
    ("rnn_cell_predict_nan", True,
     lambda b, t: shaped(b, [fnn.RNN(fnn.SimpleRNNCell(3))], (5, 2)).predict(with_nan(XR)),
     ValueError, r"X\[1, 2, 0\]=nan"),
    ("rnn_cell_initial_state_count", True,
     lambda b, t: rnn_with_state(b, fnn.LSTMCell(3), [(3,)]), ValueError,
     r"initial_state must be 2 tensors.*Received: 1\b"),
    ("rnn_cell_initial_state_size", True,
     lambda b, t: rnn_with_state(b, fnn.GRUCell(3), [(4,)]), ValueError,
     r"initial_state must be 1 tensor\(s\) of shape \(3,\).*Received: shapes \[\(4,\)\]"),
    ("stacked_cells_initial_state_count", True,
     lambda b, t: rnn_with_state(b, fnn.StackedRNNCells([fnn.GRUCell(3), fnn.LSTMCell(2)]),
                                 [(3,), (2,)]), ValueError,
     r"initial_state must be 3 tensors.*Received: 2\b"),
    ("rnn_cell_state_data_width", True,
     lambda b, t: rnn_with_state(b, fnn.GRUCell(3), [(3,)]).predict([XR, np.ones((N, 4))]),
     ValueError, r"X\[1\] must have 3 features.*Received: X\[1\] with shape \(6, 4\)"),
    ("rnn_cell_state_data_rows", True,
     lambda b, t: rnn_with_state(b, fnn.GRUCell(3), [(3,)]).predict([XR, np.ones((N + 1, 3))]),
     ValueError, r"the inputs in X must have the same number of samples. Received: \[6, 7\]"),
    ("rnn_cell_mask_argument", False,
     lambda b, t: fnn.RNN(fnn.GRUCell(3))(fnn.Input((5, 2)), mask=fnn.Input((5,))), TypeError,
     r"Received extra arguments \{'mask'"),
    # ---------------------------------------------------------------- Dot, UnitNormalization
    ("dot_axes_str", False, lambda b, t: fnn.Dot(axes="1"), TypeError,
     r"axes must be an int or two ints. Received: axes='1'"),
    ("dot_axes_triple", False, lambda b, t: fnn.Dot(axes=(1, 2, 3)), ValueError,
     r"Received: axes=\(1, 2, 3\)"),
    ("dot_normalize_str", False, lambda b, t: fnn.Dot(axes=1, normalize="yes"), TypeError,
     r"normalize must be True or False. Received: normalize='yes'"),
    ("dot_axis_beyond_rank", True, lambda b, t: two_inputs(b, fnn.Dot(axes=3), (4, 5), (4, 5)),
     ValueError, r"axes must be axes of the inputs other than the batch axis. Received: axes=3"),
    ("dot_axis_zero", True, lambda b, t: two_inputs(b, fnn.Dot(axes=0), (4, 5), (4, 5)),
     ValueError, r"Received: axes=0\b"),
    ("dot_lengths_differ", True, lambda b, t: two_inputs(b, fnn.Dot(axes=2), (4, 5), (4, 6)),
     ValueError, r"Received: axes=2, input shapes .*\(lengths 5 and 6\)"),
    ("dot_three_inputs", False, lambda b, t: fnn.Dot(axes=1)([fnn.Input((4,))] * 3),
     ValueError, r"exactly two inputs. Received: input shape \[\(4,\), \(4,\), \(4,\)\]"),
    ("dot_one_tensor", False, lambda b, t: fnn.Dot(axes=1)(fnn.Input((4,))), TypeError,
     r"Dot takes a list of tensors. Received: <SymbolicTensor shape=\(None, 4\)"),
    ("dot_predict_width", True,
     lambda b, t: two_inputs(b, fnn.Dot(axes=1), (4,), (4,)).predict(
         [np.ones((N, 4)), np.ones((N, 5))]), ValueError,
     r"X\[1\] must have 4 features.*Received: X\[1\] with shape \(6, 5\)"),
    ("dot_predict_rows", True,
     lambda b, t: two_inputs(b, fnn.Dot(axes=1, normalize=True), (4,), (4,)).predict(
         [np.ones((N, 4)), np.ones((N + 1, 4))]), ValueError, r"Received: \[6, 7\]"),
    ("dot_predict_inf", True,
     lambda b, t: two_inputs(b, fnn.Dot(axes=1), (4,), (4,)).predict(
         [np.ones((N, 4)), with_nan(np.ones((N, 4)), value=math.inf)]), ValueError,
     r"X\[1\]\[1, 2\]=inf"),
    ("unit_normalization_axis_str", False, lambda b, t: fnn.UnitNormalization(axis="x"),
     TypeError, r"axis must be an integer. Received: axis='x'"),
    ("unit_normalization_axis_beyond", True,
     lambda b, t: shaped(b, [fnn.UnitNormalization(axis=3)], (4, 5)), ValueError,
     r"axis must name distinct axes.*Received: axis=\[3\] for samples of shape \(4, 5\)"),
    ("unit_normalization_batch_axis", True,
     lambda b, t: shaped(b, [fnn.UnitNormalization(axis=0)], (4, 5)), ValueError,
     r"Received: axis=\[0\]"),
    ("unit_normalization_axis_repeated", True,
     lambda b, t: shaped(b, [fnn.UnitNormalization(axis=[1, -2])], (4, 5)), ValueError,
     r"Received: axis=\[1, -2\]"),
    ("unit_normalization_predict_nan", True,
     lambda b, t: shaped(b, [fnn.UnitNormalization()], (4,)).predict(with_nan(X)),
     ValueError, r"X\[1, 2\]=nan"),
    ("unit_normalization_predict_shape", True,
     lambda b, t: shaped(b, [fnn.UnitNormalization()], (4,)).predict(np.ones((N, 5))),
     ValueError, r"Received: X with shape \(6, 5\)"),
    # ---------------------------------------------------------------- Attention, AdditiveAttention
    ("attention_score_mode", False, lambda b, t: fnn.Attention(score_mode="cosine"),
     ValueError, r"score_mode must be one of .*Received: score_mode='cosine'"),
    ("attention_score_mode_int", False, lambda b, t: fnn.Attention(score_mode=1),
     ValueError, r"Received: score_mode=1\b"),
    ("attention_use_scale_str", False, lambda b, t: fnn.Attention(use_scale="yes"), TypeError,
     r"use_scale must be True or False. Received: use_scale='yes'"),
    ("attention_dropout_nan", False, lambda b, t: fnn.Attention(dropout=math.nan), ValueError,
     r"Received: dropout=nan"),
    ("additive_attention_dropout_negative", False,
     lambda b, t: fnn.AdditiveAttention(dropout=-0.1), ValueError, r"Received: dropout=-0\.1"),
    ("additive_attention_use_scale_int", False,
     lambda b, t: fnn.AdditiveAttention(use_scale=1), TypeError, r"use_scale=1\b"),
    ("attention_widths_differ", True,
     lambda b, t: two_inputs(b, fnn.Attention(), (4, 5), (3, 6)), ValueError,
     r"query and key must have the same number of features. Received: query shape .*4, 5.*"
     r"key shape .*3, 6"),
    ("additive_attention_widths_differ", True,
     lambda b, t: two_inputs(b, fnn.AdditiveAttention(), (4, 5), (3, 6)), ValueError,
     r"Received: query shape .*4, 5.*key shape .*3, 6"),
    ("attention_on_vectors", True, lambda b, t: two_inputs(b, fnn.Attention(), (5,), (5,)),
     ValueError, r"query must be \(batch, steps, features\). Received: query with shape "
                 r"\(None, 5\)"),
    ("attention_one_tensor", False, lambda b, t: fnn.Attention()(fnn.Input((4, 5))),
     ValueError, r"list \[query, value\] or \[query, value, key\]. Received: inputs=<Symbolic"),
    ("attention_four_tensors", False,
     lambda b, t: fnn.Attention()([fnn.Input((4, 5))] * 4), ValueError,
     r"Received: inputs=\[<SymbolicTensor"),
    ("attention_key_steps_differ", False,
     lambda b, t: score_call(fnn.Attention(), [(4, 5), (3, 5), (2, 5)]), ValueError,
     r"key and value must have the same number of steps. Received: key shape .*2, 5"),
    ("attention_value_mask_steps", False,
     lambda b, t: score_call(fnn.Attention(), [(4, 5), (3, 5)], mask=[None, (4,)]),
     ValueError, r"value_mask must have shape \(batch, 3\). Received: value_mask with shape "
                 r"\(None, 4\)"),
    ("additive_attention_query_mask_steps", False,
     lambda b, t: score_call(fnn.AdditiveAttention(), [(4, 5), (3, 5)], mask=[(3,), None]),
     ValueError, r"query_mask must have shape \(batch, 4\). Received: query_mask with shape "
                 r"\(None, 3\)"),
    ("attention_mask_not_a_list", False,
     lambda b, t: fnn.Attention()([fnn.Input((4, 5)), fnn.Input((3, 5))],
                                  mask=fnn.Input((3,))), ValueError,
     r"mask must be a list \[query_mask, value_mask\]. Received: mask=<Symbolic"),
    ("attention_return_scores_str", False,
     lambda b, t: score_call(fnn.Attention(), [(4, 5), (3, 5)], return_attention_scores="yes"),
     TypeError, r"return_attention_scores must be True or False. Received: "
                r"return_attention_scores='yes'"),
    ("attention_causal_str", False,
     lambda b, t: score_call(fnn.Attention(), [(4, 5), (3, 5)], use_causal_mask="yes"),
     TypeError, r"use_causal_mask must be True or False. Received: use_causal_mask='yes'"),
    ("attention_predict_width", True,
     lambda b, t: two_inputs(b, fnn.Attention(), (4, 5), (3, 5)).predict(
         [np.ones((N, 4, 5)), np.ones((N, 3, 6))]), ValueError,
     r"X\[1\] must have shape \(n, 3, 5\). Received: X\[1\] with shape \(6, 3, 6\)"),
    ("additive_attention_predict_nan", True,
     lambda b, t: two_inputs(b, fnn.AdditiveAttention(), (4, 5), (3, 5)).predict(
         [np.ones((N, 4, 5)), np.full((N, 3, 5), math.nan)]), ValueError,
     r"X\[1\]\[0, 0, 0\]=nan"),
    # ---------------------------------------------------------------- ConvLSTM2D
    ("conv_lstm2d_filters_zero", False, lambda b, t: fnn.ConvLSTM2D(0, 3), ValueError,
     r"filters must be an integer >= 1. Received: filters=0\b"),
    ("conv_lstm2d_filters_2_31", False, lambda b, t: fnn.ConvLSTM2D(2**31, 3), ValueError,
     r"Received: filters=2147483648"),
    ("conv_lstm2d_kernel_zero", False, lambda b, t: fnn.ConvLSTM2D(2, 0), ValueError,
     r"kernel_size must be an integer >= 1. Received: kernel_size=0\b"),
    ("conv_lstm2d_padding", False, lambda b, t: fnn.ConvLSTM2D(2, 3, padding="full"),
     ValueError, r"Received: padding='full'"),
    ("conv_lstm2d_channels_first", False,
     lambda b, t: fnn.ConvLSTM2D(2, 3, data_format="channels_first"), ValueError,
     r"Received: data_format='channels_first'"),
    ("conv_lstm2d_dropout_one", False, lambda b, t: fnn.ConvLSTM2D(2, 3, dropout=1.0),
     ValueError, r"Received: dropout=1\.0"),
    ("conv_lstm2d_recurrent_dropout_negative", False,
     lambda b, t: fnn.ConvLSTM2D(2, 3, recurrent_dropout=-0.1), ValueError,
     r"Received: recurrent_dropout=-0\.1"),
    ("conv_lstm2d_activation", False, lambda b, t: fnn.ConvLSTM2D(2, 3, activation="bogus"),
     ValueError, r"Received: activation='bogus'"),
    ("conv_lstm2d_on_images", True, lambda b, t: shaped(b, [fnn.ConvLSTM2D(2, 3)], (4, 4, 1)),
     ValueError, r"takes sequences of images.*Received: input shape \(4, 4, 1\)"),
    ("conv_lstm2d_kernel_too_big", True,
     lambda b, t: shaped(b, [fnn.ConvLSTM2D(2, 5)], (3, 4, 4, 1)), ValueError,
     r"a 5x5 kernel .*does not fit images of shape \(4, 4, 1\) with padding='valid'"),
    ("conv_lstm2d_predict_channels", True,
     lambda b, t: shaped(b, [fnn.ConvLSTM2D(2, 3)], (3, 5, 5, 1)).predict(
         np.ones((N, 3, 5, 5, 2))), ValueError,
     r"X must have shape \(n, 3, 5, 5, 1\). Received: X with shape \(6, 3, 5, 5, 2\)"),
    ("conv_lstm2d_initial_state", False,
     lambda b, t: fnn.ConvLSTM2D(2, 3, padding="same")(
         fnn.Input((3, 5, 5, 1)), initial_state=[fnn.Input((5, 5, 2))]), ValueError,
     r"initial_state must be 2 tensors \[h, c\] of shape \(batch, 5, 5, 2\)\. Received: "
     r"initial_state of 1 tensor\(s\)"),
    # ---------------------------------------------------------------- Conv3DTranspose
    ("conv3d_transpose_filters_zero", False, lambda b, t: fnn.Conv3DTranspose(0, 3),
     ValueError, r"filters must be an integer >= 1. Received: filters=0\b"),
    ("conv3d_transpose_kernel_pair", False, lambda b, t: fnn.Conv3DTranspose(2, (3, 3)),
     ValueError, r"kernel_size must be an integer or a tuple of 3 integers. Received: "
                 r"kernel_size=\(3, 3\)"),
    ("conv3d_transpose_strides_zero", False, lambda b, t: fnn.Conv3DTranspose(2, 3, strides=0),
     ValueError, r"strides must be an integer >= 1. Received: strides=0\b"),
    ("conv3d_transpose_output_padding", False,
     lambda b, t: fnn.Conv3DTranspose(2, 3, strides=2, output_padding=2), ValueError,
     r"output_padding must be below the strides .*Received: output_padding=2\b"),
    ("conv3d_transpose_padding", False,
     lambda b, t: fnn.Conv3DTranspose(2, 3, padding="causal"), ValueError,
     r"Received: padding='causal'"),
    ("conv3d_transpose_on_images", True,
     lambda b, t: c3t(b, fnn.Conv3DTranspose(2, 3), (4, 4, 1)), ValueError,
     r"takes one input of shape \(depth, height, width, channels\). Received: input shape "
     r"\(4, 4, 1\)"),
    ("conv3d_transpose_predict_channels", True,
     lambda b, t: c3t(b, fnn.Conv3DTranspose(2, 3)).predict(np.ones((N, 4, 4, 4, 2))),
     ValueError, r"X must have shape \(n, 4, 4, 4, 1\). Received: X with shape "
                 r"\(6, 4, 4, 4, 2\)"),
    ("conv3d_transpose_predict_nan", True,
     lambda b, t: c3t(b, fnn.Conv3DTranspose(2, 3)).predict(np.full((N, 4, 4, 4, 1), math.nan)),
     ValueError, r"X\[0, 0, 0, 0, 0\]=nan"),
    # ---------------------------------------------------------------- MultiHeadAttention(dropout, seed)
    ("mha_seed_str", False, lambda b, t: MHA(2, 4, dropout=0.1, seed="1"), TypeError,
     r"seed must be an integer. Received: seed='1'"),
    ("mha_seed_float", False, lambda b, t: MHA(2, 4, dropout=0.1, seed=1.5), TypeError,
     r"Received: seed=1\.5"),
    ("mha_seed_2_64", False, lambda b, t: MHA(2, 4, dropout=0.1, seed=2**64), ValueError,
     r"seed must be below 2\*\*64. Received: seed=18446744073709551616"),
    ("mha_dropout_nan", False, lambda b, t: MHA(2, 4, dropout=math.nan), ValueError,
     r"dropout must be a finite number in \[0\.0, 1\.0\). Received: dropout=nan"),
    ("mha_dropout_inf", False, lambda b, t: MHA(2, 4, dropout=math.inf), ValueError,
     r"Received: dropout=inf"),
    ("mha_dropout_none", False, lambda b, t: MHA(2, 4, dropout=None), TypeError,
     r"dropout must be a real number. Received: dropout=None"),
    # ---------------------------------------------------------------- widths whose weights cannot exist
    ("dense_units_2_40", False, lambda b, t: fnn.Dense(2**40), ValueError,
     r"units must be below 2\*\*31. Received: units=1099511627776"),
    ("dense_kernel_over_2_31_values", True,
     lambda b, t: shaped(b, [fnn.Dense(2**20)], (4096,)), ValueError,
     r"'kernel' would have shape \(4096, 1048576\), 4294967296 values, over the limit of "
     r"2\*\*31 - 1 .*Received: units=1048576, input shape \(4096,\)"),
    ("conv2d_kernel_over_2_31_values", True,
     lambda b, t: shaped(b, [fnn.Conv2D(2**30, 3)], (4, 4, 1)), ValueError,
     r"'kernel' would have shape \(3, 3, 1, 1073741824\), 9663676416 values.*"
     r"Received: filters=1073741824"),
    ("time_distributed_dense_over_2_31_values", True,
     lambda b, t: shaped(b, [TW(fnn.Dense(2**30))], (3, 8)), ValueError,
     r"shape \(8, 1073741824\), 8589934592 values.*Received: units=1073741824"),
    ("embedding_table_over_2_31_values", True,
     lambda b, t: shaped(b, [fnn.Embedding(2**24, 2**8)], (3,), ), ValueError,
     r"'embeddings' would have shape \(16777216, 256\), 4294967296 values.*"
     r"Received: .*output_dim=256.*input_dim=16777216|"
     r"'embeddings' would have shape \(16777216, 256\), 4294967296 values.*"
     r"Received: .*input_dim=16777216.*output_dim=256"),
    # ---------------------------------------------------------------- RMSNormalization
    ("rms_norm_epsilon_inf", False, lambda b, t: fnn.RMSNormalization(epsilon=math.inf),
     ValueError, r"epsilon must be a finite number.*Received: epsilon=inf"),
    ("rms_norm_epsilon_nan", False, lambda b, t: fnn.RMSNormalization(epsilon=math.nan),
     ValueError, r"epsilon must be a finite number.*Received: epsilon=nan"),
    ("rms_norm_epsilon_negative", False, lambda b, t: fnn.RMSNormalization(epsilon=-1e-3),
     ValueError, r"Received: epsilon=-0\.001"),
    ("rms_norm_epsilon_zero", False, lambda b, t: fnn.RMSNormalization(epsilon=0.0),
     ValueError, r"Received: epsilon=0\.0"),
    ("rms_norm_epsilon_str", False, lambda b, t: fnn.RMSNormalization(epsilon="1e-3"),
     TypeError, r"epsilon must be a real number. Received: epsilon='1e-3'"),
    ("rms_norm_axis_str", False, lambda b, t: fnn.RMSNormalization(axis="x"), TypeError,
     r"axis must be an integer. Received: axis='x'"),
    ("rms_norm_axis_float", False, lambda b, t: fnn.RMSNormalization(axis=1.5), TypeError,
     r"Received: axis=1\.5"),
    ("rms_norm_axis_out_of_range", True,
     lambda b, t: shaped(b, [fnn.RMSNormalization(axis=5)], (3, 4)), ValueError,
     r"last axis or the last few axes.*samples of shape \(3, 4\).*Received: axis=5\b"),
    ("rms_norm_axis_batch", True,
     lambda b, t: shaped(b, [fnn.RMSNormalization(axis=0)], (3, 4)), ValueError,
     r"0 is the batch axis.*Received: axis=0\b"),
    ("rms_norm_axis_leading", True,
     lambda b, t: shaped(b, [fnn.RMSNormalization(axis=1)], (3, 4)), ValueError,
     r"Received: axis=1\b"),
    ("rms_norm_input_rank_low", True,
     lambda b, t: shaped(b, [fnn.RMSNormalization()], (3, 4)).predict(np.ones((2, 4))),
     ValueError, r"X must have shape \(n, 3, 4\). Received: X with shape \(2, 4\)"),
    ("rms_norm_input_rank_high", True,
     lambda b, t: shaped(b, [fnn.RMSNormalization()], (3, 4)).forward(np.ones((2, 3, 4, 1))),
     ValueError, r"x must have shape \(n, 3, 4\). Received: x with shape \(2, 3, 4, 1\)"),
    # ------------------------------------------------------------ LayerNormalization(axis=[...])
    ("ln_axes_not_trailing", True,
     lambda b, t: shaped(b, [fnn.LayerNormalization(axis=[1, 3])], (3, 4, 5)), ValueError,
     r"trailing axes.*Received: axis=\[1, 3\]"),
    ("ln_axes_before_the_last", True,
     lambda b, t: shaped(b, [fnn.LayerNormalization(axis=[1, 2])], (3, 4, 5)), ValueError,
     r"trailing axes.*Received: axis=\[1, 2\]"),
    ("ln_axes_repeated", True,
     lambda b, t: shaped(b, [fnn.LayerNormalization(axis=[2, 2])], (3, 4, 5)), ValueError,
     r"Received: axis=\[2, 2\]"),
    ("ln_axes_out_of_range", True,
     lambda b, t: shaped(b, [fnn.LayerNormalization(axis=[2, 4])], (3, 4, 5)), ValueError,
     r"Received: axis=\[2, 4\]"),
    ("ln_axes_negative_out_of_range", True,
     lambda b, t: shaped(b, [fnn.LayerNormalization(axis=[-4, -1])], (3, 4, 5)), ValueError,
     r"Received: axis=\[-4, -1\]"),
    ("ln_axes_with_the_batch_axis", True,
     lambda b, t: shaped(b, [fnn.LayerNormalization(axis=[0, 1, 2, 3])], (3, 4, 5)),
     ValueError, r"0 is the batch axis.*Received: axis=\[0, 1, 2, 3\]"),
    ("ln_axes_empty", False, lambda b, t: fnn.LayerNormalization(axis=[]), ValueError,
     r"axis must be an int or a list of 1 to 32 ints. Received: axis=\[\]"),
    ("ln_axes_str_item", False, lambda b, t: fnn.LayerNormalization(axis=["1"]), TypeError,
     r"axis\[0\] must be an integer. Received: axis\[0\]='1'"),
    ("ln_axes_float_item", False, lambda b, t: fnn.LayerNormalization(axis=[2, 3.0]),
     TypeError, r"axis\[1\] must be an integer. Received: axis\[1\]=3\.0"),
    ("ln_axes_bool_item", False, lambda b, t: fnn.LayerNormalization(axis=[True, 2]),
     TypeError, r"Received: axis\[0\]=True"),
    ("ln_axes_nested", False, lambda b, t: fnn.LayerNormalization(axis=[(1, 2)]), TypeError,
     r"Received: axis\[0\]=\(1, 2\)"),
    ("ln_axes_set", False, lambda b, t: fnn.LayerNormalization(axis={1, 2}), TypeError,
     r"axis must be an integer. Received: axis=\{1, 2\}"),
    ("ln_axes_none", False, lambda b, t: fnn.LayerNormalization(axis=None), TypeError,
     r"Received: axis=None"),
    # ---------------------------------------------------------------- stateful recurrent layers
    ("stateful_predict_other_batch_size", True, lambda b, t: stateful_two_sizes(b, "predict"),
     ValueError, r"lstm is stateful: .*batches of 4 sequences, and this batch has 3"),
    ("stateful_train_other_batch_size", True,
     lambda b, t: stateful_two_sizes(b, "train_on_batch"), ValueError,
     r"batches of 4 sequences, and this batch has 3.*reset_states\(\)"),
    ("stateful_forward_other_batch_size", True, lambda b, t: stateful_two_sizes(b, "forward"),
     ValueError, r"batches of 4 sequences, and this batch has 3"),
    ("stateful_fit_samples_not_a_multiple", True, lambda b, t: stateful_two_sizes(b, "fit"),
     ValueError, r"batches of 4 sequences, and this batch has 2.*batch_size=4"),
    ("stateful_reset_one_of_two", True, lambda b, t: stateful_reset(b, _hc()[:1]), ValueError,
     r"states must be 2 arrays \[h, c\]. Received: 1\b"),
    ("stateful_reset_three", True, lambda b, t: stateful_reset(b, _hc() + _hc()[:1]),
     ValueError, r"states must be 2 arrays \[h, c\]. Received: 3\b"),
    ("stateful_gru_reset_two", True,
     lambda b, t: stateful_reset(b, _hc(), fnn.GRU(U, stateful=True)), ValueError,
     r"gru: states must be 1 array \[h\]. Received: 2\b"),
    ("stateful_bidirectional_reset_three", True,
     lambda b, t: stateful_reset(b, _hc() + _hc()[:1],
                                 fnn.Bidirectional(fnn.LSTM(U, stateful=True))), ValueError,
     r"states must be 4 arrays.*Received: 3\b"),
    ("stateful_cells_reset_two", True,
     lambda b, t: stateful_reset(b, _hc(), fnn.RNN([fnn.LSTMCell(U), fnn.GRUCell(U)],
                                                    stateful=True)), ValueError,
     r"states must be 3 arrays.*Received: 2\b"),
    ("stateful_reset_wrong_width", True, lambda b, t: stateful_reset(b, _hc(c=(4, U + 1))),
     ValueError, r"states\[1\] must have 3 features.*Received: states\[1\] with shape \(4, 4\)"),
    ("stateful_reset_two_batch_sizes", True, lambda b, t: stateful_reset(b, _hc(c=(5, U))),
     ValueError, r"one batch size. Received: shapes \(4, 3\) and \(5, 3\)"),
    ("stateful_reset_1d", True, lambda b, t: stateful_reset(b, _hc(h=(U,))), ValueError,
     r"states\[0\] must be 2-D.*Received: states\[0\] with shape \(3,\)"),
    ("stateful_reset_3d", True, lambda b, t: stateful_reset(b, _hc(h=(4, U, 1))), ValueError,
     r"Received: states\[0\] with shape \(4, 3, 1\)"),
    ("stateful_reset_empty_batch", True, lambda b, t: stateful_reset(b, _hc((0, U), (0, U))),
     ValueError, r"at least one sample. Received: states\[0\] with shape \(0, 3\)"),
    ("stateful_reset_complex", True, lambda b, t: stateful_reset(b, _hc(dtype=complex)),
     TypeError, r"states\[0\] must hold real numbers. Received: states\[0\] with dtype "
                r"complex128"),
    ("stateful_reset_strings", True,
     lambda b, t: stateful_reset(b, [np.full((4, U), "a"), np.zeros((4, U))]), TypeError,
     r"Received: states\[0\] with dtype <U1"),
    ("stateful_reset_objects", True, lambda b, t: stateful_reset(b, _hc(dtype=object)),
     TypeError, r"Received: states\[0\] with dtype object"),
    ("stateful_reset_nan", True, lambda b, t: stateful_reset(b, _hc(h_value=math.nan)),
     ValueError, r"states\[0\] must be finite.*Received: states\[0\]\[0, 0\]=nan"),
    ("stateful_reset_inf", True, lambda b, t: stateful_reset(b, _hc(c_value=-math.inf)),
     ValueError, r"states\[1\] must be finite.*Received: states\[1\]\[0, 0\]=-inf"),
    ("stateful_reset_not_stateful", True,
     lambda b, t: stateful_reset(b, _hc(), fnn.LSTM(U)), ValueError,
     r"lstm is not stateful \(stateful=False\).*initial_state"),
    ("stateful_reset_unbuilt", False,
     lambda b, t: fnn.LSTM(U, stateful=True).reset_states(_hc()), ValueError,
     r"lstm: build the model before setting its states"),
    ("stateful_lstm_int", False, lambda b, t: fnn.LSTM(U, stateful=1), TypeError,
     r"stateful must be True or False. Received: stateful=1\b"),
    ("stateful_gru_str", False, lambda b, t: fnn.GRU(U, stateful="yes"), TypeError,
     r"Received: stateful='yes'"),
    ("stateful_simple_rnn_none", False, lambda b, t: fnn.SimpleRNN(U, stateful=None),
     TypeError, r"Received: stateful=None"),
    ("conv_lstm2d_stateful_other_batch_size", True,
     lambda b, t: stateful_conv_lstm(b, [XC, XC[:1]]), ValueError,
     r"conv_lstm2d is stateful: .*batches of 2 sequences, and this batch has 1"),
    ("conv_lstm2d_reset_one_state", True,
     lambda b, t: stateful_conv_lstm(b, [], [np.zeros((2, 3, 3, 2))]), ValueError,
     r"states must be 2 arrays \[h, c\]. Received: 1\b"),
    ("conv_lstm2d_reset_wrong_image", True,
     lambda b, t: stateful_conv_lstm(b, [], [np.zeros((2, 3, 3, 2)), np.zeros((2, 4, 3, 2))]),
     ValueError, r"states\[1\] must have shape \(n, 3, 3, 2\). Received: states\[1\] with "
                 r"shape \(2, 4, 3, 2\)"),
    ("conv_lstm2d_reset_vectors", True,
     lambda b, t: stateful_conv_lstm(b, [], [np.zeros((2, 18))] * 2), ValueError,
     r"Received: states\[0\] with shape \(2, 18\)"),
    ("conv_lstm2d_reset_complex", True,
     lambda b, t: stateful_conv_lstm(b, [], [np.zeros((2, 3, 3, 2), complex)] * 2), TypeError,
     r"states\[0\] must hold real numbers. Received: states\[0\] with dtype complex128"),
    ("conv_lstm2d_reset_nan", True,
     lambda b, t: stateful_conv_lstm(b, [], [np.zeros((2, 3, 3, 2)),
                                             np.full((2, 3, 3, 2), math.nan)]), ValueError,
     r"states\[1\] must be finite.*Received: states\[1\]\[0, 0, 0, 0\]=nan"),
    ("conv_lstm2d_stateful_str", False, lambda b, t: fnn.ConvLSTM2D(2, 3, stateful="no"),
     TypeError, r"stateful must be True or False. Received: stateful='no'"),
    ("stateful_bidirectional_backward_not_stateful", False,
     lambda b, t: fnn.Bidirectional(fnn.LSTM(U, stateful=True),
                                    backward_layer=fnn.LSTM(U, go_backwards=True)),
     ValueError, r"units, return_sequences, return_state and stateful.*Received: "
                 r"backward_layer=LSTM\(3"),
]


def _params():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    params = []
    for case_id, uses_backend, call, exc, pattern in CASES:
        for backend in (("numpy", "fast") if uses_backend else (None,)):
            params.append(pytest.param(call, backend, exc, pattern,
                                       id=case_id + (f"-{backend}" if backend else "")))
    return params


def test_the_table_is_large_enough():
    assert len(CASES) >= 60
    assert all(exc in (ValueError, TypeError) for *_, exc, _ in CASES)


@pytest.mark.parametrize("call, backend, exc, pattern", _params())
def test_bad_input(call, backend, exc, pattern, tmp_path):
    previous = fnn.get_num_threads()
    try:
        with pytest.raises(Exception) as info:
            call(backend, tmp_path)
    finally:
        fnn.set_num_threads(previous)
    # the exact type, not a subclass of it and not some other error that happens to match
    assert info.type is exc, f"expected {exc.__name__}, got {info.type.__name__}: {info.value}"
    assert info.match(pattern)


# A window far wider than the input is legal with padding="same" (Keras computes it): only the
# taps inside the input count. Each case must give that result or refuse with a ValueError naming
# the argument, never a MemoryError, a NumPy error or a hang. Run in a subprocess with its address
# space capped at 4 GiB and a time limit, since a backend that pads explicitly would try to
# allocate the whole padded extent.
_EXTREME_SCRIPT = """
import json, resource, sys
import numpy as np
import fastnn as fnn
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
backend, case = sys.argv[1], sys.argv[2]
layer, shape = {
    "conv2d_dilation_2_16_same": (lambda: fnn.Conv2D(1, 3, dilation_rate=2**16,
                                                     padding="same"), (4, 4, 1)),
    "conv2d_dilation_2_30_same": (lambda: fnn.Conv2D(1, 3, dilation_rate=2**30,
                                                     padding="same"), (4, 4, 1)),
    "maxpool2d_pool_2_16_same": (lambda: fnn.MaxPooling2D(2**16, padding="same"), (4, 4, 1)),
    "avgpool1d_pool_2_24_same": (lambda: fnn.AveragePooling1D(2**24, padding="same"), (5, 1)),
}[case]
x = np.random.default_rng(0).standard_normal((2, *shape))
try:
    model = fnn.Sequential([layer()], input_shape=shape, seed=0, backend=backend,
                           dtype="float64")
    y = model.predict(x)
    if case.startswith("conv"):          # only the centre tap lands inside the input
        kernel, bias = model.get_weights()
        want = x @ kernel[1, 1] + bias
    elif case.startswith("max"):
        want = x.max(axis=(1, 2), keepdims=True)
    else:
        want = x.mean(axis=1, keepdims=True)
    print(json.dumps({"error": None, "diff": float(np.abs(y - want).max())}))
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("case,argument", [
    ("conv2d_dilation_2_16_same", "dilation_rate"), ("conv2d_dilation_2_30_same", "dilation_rate"),
    ("maxpool2d_pool_2_16_same", "pool_size"), ("avgpool1d_pool_2_24_same", "pool_size")])
def test_windows_far_wider_than_the_input_compute_or_refuse_by_name(case, argument, backend):
    import json
    import os
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fnn.__file__)))
    try:
        done = subprocess.run([sys.executable, "-c", _EXTREME_SCRIPT, backend, case], env=env,
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case} on {backend}: no result or refusal within 30 s")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["error"] is None:
        assert result["diff"] < 1e-9, result
    else:
        assert result["error"] == "ValueError" and f"{argument}=" in result["message"], result


# A layer built in code whose output for one sample cannot exist (4194304**3 positions here)
# is refused at build by name (fastnn.layers.base.MAX_OUTPUT_VALUES), not left to fail inside
# NumPy at predict ("Maximum allowed dimension exceeded", or a MemoryError for 128 TiB).
@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("make, shape", [
    (lambda: fnn.Conv3DTranspose(2, 3, strides=2**20), (4, 4, 4, 1)),
    (lambda: fnn.UpSampling3D(2**20), (4, 4, 4, 1)),
    (lambda: fnn.Conv2DTranspose(2, 3, strides=2**20), (4, 4, 1)),
], ids=["conv3d_transpose", "upsampling3d", "conv2d_transpose"])
def test_an_output_no_machine_holds_is_refused_naming_the_layer(make, shape, backend):
    with pytest.raises(ValueError, match=r"output would hold .* values a sample \(shape "
                                         r"\(4194304, 4194304.*MAX_OUTPUT_VALUES"):
        fnn.Sequential([make()], input_shape=shape, backend=backend).predict(
            np.ones((1, *shape)))
