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
    ("dense_activation_unknown", False, lambda b, t: fnn.Dense(3, activation="swish"),
     ValueError, r"activation='swish'"),
    ("dense_activation_int", False, lambda b, t: fnn.Dense(3, activation=3), ValueError,
     r"activation=3\b"),
    ("activation_layer_unknown", False, lambda b, t: fnn.Activation("gelu"), ValueError,
     r"activation='gelu'"),
    ("leaky_relu_alpha_negative", False, lambda b, t: fnn.LeakyReLU(alpha=-0.1), ValueError,
     r"alpha=-0\.1"),
    ("leaky_relu_alpha_nan", False, lambda b, t: fnn.LeakyReLU(alpha=math.nan), ValueError,
     r"alpha=nan"),
    ("step_threshold_inf", False, lambda b, t: fnn.Step(threshold=math.inf), ValueError,
     r"threshold=inf"),
    ("step_threshold_str", False, lambda b, t: fnn.Step(threshold="0.5"), TypeError,
     r"threshold='0\.5'"),

    # ---------------------------------------------------------------- compile
    ("compile_unbuilt", True, lambda b, t: unbuilt(b).compile("mse"), ValueError,
     r"built before compile.*input_dim"),
    ("compile_loss_unknown", True, lambda b, t: model(b, compiled=False).compile("hinge"),
     ValueError, r"loss='hinge'"),
    ("compile_loss_none", True, lambda b, t: model(b, compiled=False).compile(None),
     ValueError, r"loss=None"),
    ("compile_optimizer_unknown", True,
     lambda b, t: model(b, compiled=False).compile("mse", optimizer="adagrad"),
     ValueError, r"optimizer='adagrad'"),
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
    ("predict_unbuilt", True, lambda b, t: unbuilt(b).predict(X), ValueError,
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
