"""Hyper-parameters are checked against the model's dtype, so that an update never turns one
silently into inf, 0 or NaN (fastnn/optimizers.py, Layer.check_dtype, Optimizer.check_state).

Each table lists bad values with the error expected and the argument its message must name:
those refused by the constructor whatever the dtype, those refused once the model's dtype is
known (compile, or ``build``), and those refused on assignment after compile. Every refused
operation must leave the weights, the optimizer state and the step count as they were.
"""

import json
import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend
from fastnn.io import model_from_bytes, model_to_bytes
from fastnn.optimizers import overflow_screen
from fastnn.schedules import ExponentialDecay

# "fast" runs the compiled kernels one call each (plan off), "fast-plan" the compiled plan
TRAIN_BACKENDS = ["numpy", "fast", "fast-plan"]

F32_TINY = float(np.finfo(np.float32).tiny)
X = np.random.default_rng(0).standard_normal((16, 3))
Y = np.random.default_rng(1).standard_normal((16, 2))


def make_model(backend="numpy", dtype="float32", optimizer=None, layers=None):
    model = fnn.Sequential(layers or [fnn.Dense(4, activation="relu"), fnn.Dense(2)],
                           input_dim=3, seed=0, dtype=dtype,
                           backend="numpy" if backend == "numpy" else "fast")
    if backend == "fast":
        model._compiled_steps = False
    if optimizer is not None:
        model.compile("mse", optimizer)
    return model


def snapshot(model, optimizer=None):
    """Copies of everything a refused operation must leave alone."""
    opt = model.optimizer if optimizer is None else optimizer
    state = {k: None if a is None else a.copy() for k, a in opt.state().items()}
    return (model.get_weights(), state, opt.iterations, opt.get_config(),
            {k: v for k, v in vars(opt).items() if k.startswith("_") and not k.startswith("__")
             and isinstance(v, (bool, float))})


def assert_same(before, after):
    for a, b in zip(before[0], after[0]):
        np.testing.assert_array_equal(a, b)
    assert before[1].keys() == after[1].keys()
    for k in before[1]:
        if before[1][k] is None:
            assert after[1][k] is None
        else:
            np.testing.assert_array_equal(before[1][k], after[1][k])
    assert before[2:] == after[2:]


# ---------------------------------------------------------------- constructors (any dtype)

CONSTRUCTOR_CASES = [
    # (id, factory, exception, pattern the message must match: the argument and its value)
    ("sgd_lr_nan", lambda: fnn.SGD(lr=math.nan), ValueError, r"lr=nan"),
    ("sgd_lr_inf", lambda: fnn.SGD(lr=math.inf), ValueError, r"lr=inf"),
    ("sgd_lr_zero", lambda: fnn.SGD(lr=0.0), ValueError, r"lr=0\.0"),
    ("sgd_lr_negative", lambda: fnn.SGD(lr=-1), ValueError, r"lr=-1\.0"),
    ("sgd_lr_subnormal_everywhere", lambda: fnn.SGD(lr=1e-320), ValueError,
     r"lr must be a float64 normal.*lr=1e-320.*subnormal"),
    ("sgd_lr_str", lambda: fnn.SGD(lr="0.1"), TypeError, r"lr='0\.1'"),
    ("sgd_lr_bool", lambda: fnn.SGD(lr=True), TypeError, r"lr=True"),
    ("sgd_momentum_one", lambda: fnn.SGD(momentum=1.0), ValueError, r"momentum=1\.0"),
    ("sgd_momentum_negative", lambda: fnn.SGD(momentum=-0.1), ValueError, r"momentum=-0\.1"),
    ("sgd_momentum_subnormal", lambda: fnn.SGD(momentum=1e-320), ValueError,
     r"momentum=1e-320"),
    ("sgd_nesterov_without_momentum", lambda: fnn.SGD(nesterov=True), ValueError,
     r"nesterov=True needs momentum > 0.*momentum=0\.0"),
    ("sgd_nesterov_int", lambda: fnn.SGD(momentum=0.9, nesterov=1), TypeError, r"nesterov=1"),
    ("sgd_weight_decay_negative", lambda: fnn.SGD(weight_decay=-1e-4), ValueError,
     r"weight_decay=-0\.0001"),
    ("sgd_weight_decay_inf", lambda: fnn.SGD(weight_decay=math.inf), ValueError,
     r"weight_decay=inf"),
    ("adam_lr_nan", lambda: fnn.Adam(lr=math.nan), ValueError, r"lr=nan"),
    ("adam_beta1_one", lambda: fnn.Adam(beta1=1.0), ValueError, r"beta1=1\.0"),
    ("adam_beta2_nan", lambda: fnn.Adam(beta2=math.nan), ValueError, r"beta2=nan"),
    ("adam_beta2_double_rounds_to_one", lambda: fnn.Adam(beta2=1 - 1e-17), ValueError,
     r"beta2=1\.0"),
    ("adam_eps_zero", lambda: fnn.Adam(eps=0.0), ValueError, r"eps=0\.0"),
    ("adam_eps_negative", lambda: fnn.Adam(eps=-1e-8), ValueError, r"eps=-1e-08"),
    ("adam_eps_subnormal_everywhere", lambda: fnn.Adam(eps=1e-320), ValueError,
     r"eps must be a float64 normal.*eps=1e-320"),
    ("adam_eps_below_the_screen_in_float64", lambda: fnn.Adam(lr=1.0, eps=1e-200), ValueError,
     r"eps must be > .* with lr=1\.0 in float64.*eps=1e-200"),
    ("adam_weight_decay_str", lambda: fnn.Adam(weight_decay="0"), TypeError,
     r"weight_decay='0'"),
    ("leaky_relu_alpha_negative", lambda: fnn.LeakyReLU(-0.1), ValueError, r"alpha=-0\.1"),
    ("leaky_relu_alpha_nan", lambda: fnn.LeakyReLU(math.nan), ValueError, r"alpha=nan"),
    ("leaky_relu_alpha_subnormal", lambda: fnn.LeakyReLU(1e-320), ValueError, r"alpha=1e-320"),
    ("step_threshold_inf", lambda: fnn.Step(-math.inf), ValueError, r"threshold=-inf"),
    ("step_threshold_subnormal", lambda: fnn.Step(-1e-320), ValueError, r"threshold=-1e-320"),
    ("activation_param_negative_slope", lambda: fnn.Activation("leaky_relu", -1.0), ValueError,
     r"param=-1\.0"),
    ("activation_param_subnormal", lambda: fnn.Activation("step", 5e-324), ValueError,
     r"param=5e-324"),
    ("activation_param_str", lambda: fnn.Activation("step", "1"), TypeError, r"param='1'"),
    ("activation_param_not_taken", lambda: fnn.Activation("relu", 0.1), ValueError,
     r"takes no parameter.*param=0\.1"),
]


@pytest.mark.parametrize("factory, exc, pattern",
                         [c[1:] for c in CONSTRUCTOR_CASES], ids=[c[0] for c in CONSTRUCTOR_CASES])
def test_constructor_refuses(factory, exc, pattern):
    with pytest.raises(exc, match=pattern):
        factory()


# ---------------------------------------------------------------- at compile (dtype known)

COMPILE_CASES = [
    # (id, optimizer factory or config, pattern); each fine in float64, refused in float32
    ("sgd_lr_overflows", lambda: fnn.SGD(lr=1e39), r"SGD: lr must be a float32 normal.*"
                                                  r"lr=1e\+39.*overflows to inf"),
    ("sgd_lr_becomes_zero", lambda: fnn.SGD(lr=1e-46), r"lr=1e-46.*becomes 0"),
    ("sgd_lr_subnormal", lambda: fnn.SGD(lr=1e-45), r"lr=1e-45.*subnormal"),
    ("sgd_lr_below_tiny", lambda: fnn.SGD(lr=F32_TINY / 2), r"lr=5\.87.*e-39"),
    ("sgd_momentum_rounds_to_one", lambda: fnn.SGD(momentum=0.99999999),
     r"momentum must round to a number below 1 in float32.*momentum=0\.99999999.*1\.0"),
    ("sgd_momentum_subnormal", lambda: fnn.SGD(momentum=1e-40), r"momentum=1e-40"),
    ("sgd_weight_decay_overflows", lambda: fnn.SGD(weight_decay=1e39),
     r"weight_decay=1e\+39.*inf"),
    ("sgd_weight_decay_subnormal", lambda: fnn.SGD(weight_decay=1e-40), r"weight_decay=1e-40"),
    ("sgd_config_dict", lambda: {"name": "sgd", "lr": 1e39}, r"lr=1e\+39"),
    ("adam_eps_becomes_zero", lambda: fnn.Adam(eps=1e-50), r"Adam: eps.*eps=1e-50.*becomes 0"),
    ("adam_eps_subnormal", lambda: fnn.Adam(eps=1e-40), r"eps=1e-40.*subnormal"),
    ("adam_eps_below_the_screen", lambda: fnn.Adam(eps=1e-30),
     r"eps must be > 5\.4.*e-26 with lr=0\.001 in float32.*eps=1e-30"),
    ("adam_beta1_rounds_to_one", lambda: fnn.Adam(beta1=0.999999999), r"beta1=0\.999999999"),
    ("adam_beta2_rounds_to_one", lambda: fnn.Adam(beta2=1 - 1e-9),
     r"beta2 must round to a number below 1 in float32.*beta2=0\.999999999"),
    ("adam_beta1_subnormal", lambda: fnn.Adam(beta1=1e-40), r"beta1=1e-40"),
    ("adam_lr_overflows", lambda: fnn.Adam(lr=1e39), r"lr=1e\+39"),
    ("adam_weight_decay_overflows", lambda: fnn.Adam(weight_decay=3.5e38),
     r"weight_decay=3\.5e\+38"),
    ("adam_config_dict", lambda: {"name": "adam", "eps": 1e-40}, r"eps=1e-40"),
]


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("factory, pattern", [c[1:] for c in COMPILE_CASES],
                         ids=[c[0] for c in COMPILE_CASES])
def test_compile_refuses_what_the_dtype_cannot_hold(factory, pattern, backend):
    model = make_model(backend, "float32", fnn.SGD(lr=0.1, momentum=0.9))
    model.train_on_batch(X, Y)
    weights = model.get_weights()
    optimizer = factory()
    with pytest.raises(ValueError, match=pattern):
        model.compile("mse", optimizer)
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    if isinstance(optimizer, fnn.optimizers.Optimizer):
        assert optimizer._dtype is None                     # not built: no state, no dtype
        assert all(a is None for a in optimizer.state().values())
    # the same settings are fine in float64
    make_model(backend, "float64", factory())


def test_refused_compile_keeps_the_previous_optimizer():
    model = make_model("numpy", "float32", fnn.SGD(lr=0.1, momentum=0.9))
    previous = model.optimizer
    with pytest.raises(ValueError):
        model.compile("mse", fnn.Adam(eps=1e-50))
    assert model.optimizer is previous


@pytest.mark.parametrize("factory, pattern", [c[1:] for c in COMPILE_CASES if
                                              not c[0].endswith("dict")],
                         ids=[c[0] for c in COMPILE_CASES if not c[0].endswith("dict")])
def test_build_refuses_and_keeps_a_built_optimizer_as_it_was(factory, pattern):
    optimizer = factory()
    optimizer.build(5, "float64")
    optimizer.iterations = 3
    for a in optimizer.state().values():
        a[...] = 0.5
    before = ({k: a.copy() for k, a in optimizer.state().items()}, optimizer._iterations,
              optimizer._dtype)
    with pytest.raises(ValueError, match=pattern):
        optimizer.build(5, "float32")
    with pytest.raises(ValueError, match=pattern):
        optimizer.check_dtype("float32")
    assert optimizer._dtype == before[2] == np.float64 and optimizer.iterations == 3
    assert optimizer._iterations is before[1]
    for k, a in optimizer.state().items():
        np.testing.assert_array_equal(a, before[0][k])


def test_a_file_with_a_setting_its_dtype_cannot_hold_is_refused():
    model = make_model("numpy", "float32", fnn.Adam(lr=0.001, eps=1e-20))
    model.train_on_batch(X, Y)
    blob = model_to_bytes(model)
    for old, new, pattern in ((b'"eps": 1e-20', b'"eps": 1e-40', r"eps=1e-40.*subnormal"),
                              (b'"lr": 0.001', b'"lr": 1e+39', r"lr=1e\+39.*inf")):
        assert old in blob                   # same length: the data offsets stay valid
        with pytest.raises(ValueError, match=pattern):
            model_from_bytes(blob.replace(old, new))
    same = model_from_bytes(blob)
    assert same.optimizer.iterations == 1 and same.optimizer.eps == 1e-20


# ---------------------------------------------------------------- assignment after compile

ASSIGN_CASES = [
    # (id, optimizer factory, dtype, attribute, value, exception, pattern)
    ("lr_nan", fnn.SGD, "float32", "lr", math.nan, ValueError, r"lr=nan"),
    ("lr_inf", fnn.Adam, "float64", "lr", math.inf, ValueError, r"lr=inf"),
    ("lr_zero", fnn.SGD, "float64", "lr", 0.0, ValueError, r"lr=0\.0"),
    ("lr_negative", fnn.Adam, "float32", "lr", -1, ValueError, r"lr=-1\.0"),
    ("lr_str", fnn.SGD, "float32", "lr", "0.1", TypeError, r"lr='0\.1'"),
    ("lr_none", fnn.Adam, "float32", "lr", None, TypeError, r"lr=None"),
    ("lr_overflows_float32", fnn.SGD, "float32", "lr", 1e39, ValueError,
     r"lr=1e\+39.*overflows to inf"),
    ("lr_flushed_float32", fnn.SGD, "float32", "lr", 1e-45, ValueError, r"lr=1e-45.*subnormal"),
    ("lr_subnormal_float64", fnn.Adam, "float64", "lr", 1e-320, ValueError, r"lr=1e-320"),
    ("learning_rate_nan", fnn.SGD, "float32", "learning_rate", math.nan, ValueError, r"lr=nan"),
    ("learning_rate_overflows", fnn.Adam, "float32", "learning_rate", 1e39, ValueError,
     r"lr=1e\+39"),
    ("lr_too_large_for_eps", lambda: fnn.Adam(lr=1e-3, eps=1e-24), "float32", "lr", 1.0,
     ValueError, r"lr must be < 0\.01.* with eps=1e-24 in float32.*lr=1\.0"),
    ("momentum_one", lambda: fnn.SGD(momentum=0.9), "float64", "momentum", 1.0, ValueError,
     r"momentum=1\.0"),
    ("momentum_rounds_to_one", lambda: fnn.SGD(momentum=0.9), "float32", "momentum",
     0.99999999, ValueError, r"momentum must round to a number below 1.*momentum=0\.99999999"),
    ("momentum_flushed", lambda: fnn.SGD(momentum=0.9), "float32", "momentum", 1e-40,
     ValueError, r"momentum=1e-40"),
    ("momentum_zero_with_nesterov", lambda: fnn.SGD(momentum=0.9, nesterov=True), "float32",
     "momentum", 0.0, ValueError, r"momentum must be > 0 while nesterov=True"),
    ("nesterov_without_momentum", fnn.SGD, "float32", "nesterov", True, ValueError,
     r"nesterov=True needs momentum > 0"),
    ("nesterov_str", lambda: fnn.SGD(momentum=0.9), "float32", "nesterov", "yes", TypeError,
     r"nesterov='yes'"),
    ("sgd_weight_decay_overflows", fnn.SGD, "float32", "weight_decay", 1e39, ValueError,
     r"weight_decay=1e\+39"),
    ("adam_weight_decay_negative", fnn.Adam, "float64", "weight_decay", -0.5, ValueError,
     r"weight_decay=-0\.5"),
    ("eps_becomes_zero", fnn.Adam, "float32", "eps", 1e-50, ValueError, r"eps=1e-50.*becomes 0"),
    ("eps_flushed", fnn.Adam, "float32", "eps", 1e-40, ValueError, r"eps=1e-40.*subnormal"),
    ("eps_below_the_screen", fnn.Adam, "float32", "eps", 1e-30, ValueError,
     r"eps must be > .*eps=1e-30"),
    ("eps_subnormal_float64", fnn.Adam, "float64", "eps", 1e-320, ValueError, r"eps=1e-320"),
    ("eps_zero", fnn.Adam, "float64", "eps", 0, ValueError, r"eps=0\.0"),
    ("beta1_one", fnn.Adam, "float64", "beta1", 1.0, ValueError, r"beta1=1\.0"),
    ("beta2_rounds_to_one", fnn.Adam, "float32", "beta2", 1 - 1e-9, ValueError,
     r"beta2 must round to a number below 1 in float32.*beta2=0\.999999999"),
    ("beta2_nan", fnn.Adam, "float32", "beta2", math.nan, ValueError, r"beta2=nan"),
    ("iterations_negative", fnn.Adam, "float32", "iterations", -1, ValueError,
     r"iterations=-1"),
    ("iterations_2_53", fnn.SGD, "float64", "iterations", 2 ** 53, ValueError,
     r"iterations must be < 2\*\*53"),
    ("iterations_float", fnn.Adam, "float32", "iterations", 2.0, TypeError, r"iterations=2\.0"),
    ("iterations_bool", fnn.Adam, "float32", "iterations", True, TypeError, r"iterations=True"),
]


@pytest.mark.parametrize("backend", TRAIN_BACKENDS)
@pytest.mark.parametrize("factory, dtype, attr, value, exc, pattern",
                         [c[1:] for c in ASSIGN_CASES], ids=[c[0] for c in ASSIGN_CASES])
def test_assignment_after_compile_refuses_and_changes_nothing(factory, dtype, attr, value, exc,
                                                              pattern, backend):
    model = make_model(backend, dtype, factory())
    model.train_on_batch(X, Y)                       # a state that is not all zero
    before = snapshot(model)
    with pytest.raises(exc, match=pattern):
        setattr(model.optimizer, attr, value)
    assert_same(before, snapshot(model))
    model.train_on_batch(X, Y)                       # and it still trains, finitely
    after = model.get_weights()
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before[0], after))


VALID_ASSIGNMENTS = [
    # values at the edge of what the dtype holds, accepted
    (fnn.SGD, "float32", "lr", F32_TINY),
    (fnn.SGD, "float32", "lr", float(np.finfo(np.float32).max)),
    (fnn.SGD, "float32", "learning_rate", 0.5),
    (fnn.SGD, "float32", "momentum", 0.9999999),          # float32: 0.99999988
    (fnn.SGD, "float32", "weight_decay", 0.0),
    (fnn.Adam, "float32", "eps", 1e-20),
    (fnn.Adam, "float64", "eps", 1e-150),
    (fnn.Adam, "float32", "beta1", 0.0),
    (fnn.Adam, "float64", "beta2", 1 - 1e-9),
    (fnn.Adam, "float32", "iterations", 2 ** 53 - 1),
]


@pytest.mark.parametrize("factory, dtype, attr, value", VALID_ASSIGNMENTS)
def test_assignment_of_a_value_the_dtype_holds(factory, dtype, attr, value):
    model = make_model("numpy", dtype, factory())
    setattr(model.optimizer, attr, value)
    assert getattr(model.optimizer, attr) == value
    name = "lr" if attr == "learning_rate" else attr
    stored = model.optimizer.__dict__["_" + name] if name != "iterations" else None
    assert stored is None or (type(stored) is float and stored == value)


def test_an_optimizer_checks_assignments_against_the_dtype_it_was_built_for():
    optimizer = fnn.Adam()
    optimizer.eps = 1e-40                     # not built yet: float64 holds it
    with pytest.raises(ValueError, match=r"eps=1e-40"):
        optimizer.build(3, "float32")
    optimizer.eps = 1e-8
    optimizer.build(3, "float32")
    with pytest.raises(ValueError, match=r"eps=1e-40"):
        optimizer.eps = 1e-40
    assert optimizer.eps == 1e-8
    optimizer.build(3, "float64")             # compiled again, into a float64 model
    optimizer.eps = 1e-40
    assert optimizer.eps == 1e-40


# ---------------------------------------------------------------- the interface contract

@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_values_live_under_underscored_names_and_steps_are_counted(kind, backend):
    optimizer = fnn.SGD(lr=0.1, momentum=0.5, nesterov=True) if kind == "sgd" else fnn.Adam()
    counter = optimizer._iterations
    assert (counter.dtype == np.int64 and counter.shape == (1,) and counter.flags.c_contiguous
            and counter.flags.writeable)
    names = optimizer._hyper
    for name in names:
        stored = optimizer.__dict__["_" + name]
        assert type(stored) is (bool if name == "nesterov" else float)
        assert getattr(optimizer, name) == stored and name not in optimizer.__dict__
    assert optimizer.learning_rate == optimizer.lr
    params = np.linspace(-1, 1, 7)
    optimizer.build(params.size, params.dtype)
    for step in range(1, 4):
        optimizer.step(get_backend(backend), params, np.full(7, 0.25))
        assert optimizer.iterations == step
    assert optimizer._iterations is counter
    counter[0] = 41                           # as the compiled plan writes it
    assert optimizer.iterations == 41
    optimizer.build(params.size, params.dtype)
    assert optimizer._iterations is counter and optimizer.iterations == 0


def test_config_and_repr_keep_their_public_names():
    sgd = fnn.SGD(lr=0.05, momentum=0.9)
    sgd.learning_rate = 0.02
    assert sgd.get_config() == {"name": "sgd", "lr": 0.02, "momentum": 0.9, "nesterov": False,
                                "weight_decay": 0.0}
    assert repr(sgd) == "SGD(lr=0.02, momentum=0.9, nesterov=False, weight_decay=0.0)"
    assert repr(fnn.Adam()) == "Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08, " \
                               "weight_decay=0.0)"


def _count_steps(kind):
    """iterations after the same fit on the compiled plan and on the per-kernel path."""
    counts = []
    for backend in ("fast-plan", "fast"):
        model = make_model(backend, "float32", fnn.SGD(lr=0.1) if kind == "sgd" else fnn.Adam())
        model.fit(X, Y, epochs=2, batch_size=4, verbose=0)
        model.train_on_batch(X, Y)
        counts.append(model.optimizer.iterations)
    return counts


def test_the_plan_counts_adam_steps():
    assert _count_steps("adam") == [9, 9]


def test_the_plan_counts_sgd_steps():
    assert _count_steps("sgd") == [9, 9]


# ---------------------------------------------------------------- activation parameters

LAYER_CASES = [
    # (id, layer factory, pattern) refused in float32, accepted in float64
    ("leaky_relu_alpha_overflows", lambda: fnn.LeakyReLU(1e39),
     r"LeakyReLU\(1e\+39\): alpha must be 0 or a float32 normal.*alpha=1e\+39.*inf"),
    ("leaky_relu_alpha_flushed", lambda: fnn.LeakyReLU(1e-40), r"alpha=1e-40.*subnormal"),
    ("step_threshold_overflows", lambda: fnn.Step(threshold=1e39), r"threshold=1e\+39"),
    ("step_threshold_negative_overflows", lambda: fnn.Step(-1e39),
     r"threshold=-1e\+39.*-inf"),
    ("step_threshold_becomes_zero", lambda: fnn.Step(1e-50), r"threshold=1e-50.*becomes 0"),
    ("activation_param", lambda: fnn.Activation("leaky_relu", param=1e39),
     r"Activation\('leaky_relu', 1e\+39\): alpha must be.*alpha=1e\+39"),
    ("dense_with_leaky_relu", lambda: fnn.Dense(4, activation=fnn.LeakyReLU(1e39)),
     r"Dense\(4, activation='leaky_relu'\): alpha.*alpha=1e\+39"),
    ("dense_with_step", lambda: fnn.Dense(4, activation=fnn.Step(-1e-41)),
     r"threshold=-1e-41"),
]


@pytest.mark.parametrize("factory, pattern", [c[1:] for c in LAYER_CASES],
                         ids=[c[0] for c in LAYER_CASES])
def test_layer_check_dtype(factory, pattern):
    layer = factory()
    param = layer.param
    with pytest.raises(ValueError, match=pattern):
        layer.check_dtype("float32")
    with pytest.raises(ValueError, match=pattern):
        layer.check_dtype(np.float32)
    layer.check_dtype("float64")
    assert layer.param == param


@pytest.mark.parametrize("layer", [fnn.LeakyReLU(0.0), fnn.LeakyReLU(5.0), fnn.Step(0.0),
                                   fnn.Step(-3e38), fnn.ReLU(), fnn.Dense(3, "sigmoid"),
                                   fnn.Activation("leaky_relu", F32_TINY)], ids=repr)
def test_layer_check_dtype_accepts(layer):
    layer.check_dtype("float32")
    layer.check_dtype("float64")


def test_layer_check_dtype_refuses_an_unknown_dtype():
    with pytest.raises(ValueError, match=r"dtype='float16'"):
        fnn.LeakyReLU().check_dtype("float16")


def _with_layer(layer):
    if isinstance(layer, fnn.Dense):
        return [layer, fnn.Dense(2)]
    return [fnn.Dense(4), layer, fnn.Dense(2)]


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("factory, pattern", [c[1:] for c in LAYER_CASES],
                         ids=[c[0] for c in LAYER_CASES])
def test_a_model_refuses_an_activation_parameter_its_dtype_cannot_hold(factory, pattern,
                                                                         backend):
    with pytest.raises(ValueError, match=pattern):
        fnn.Sequential(_with_layer(factory()), input_dim=3, dtype="float32", backend=backend)
    fnn.Sequential(_with_layer(factory()), input_dim=3, dtype="float64", backend=backend)


# ---------------------------------------------------------------- check_state

def _forge_state(optimizer, key, index, value):
    optimizer.state()[key][index] = value


STATE_CASES = [
    # (id, optimizer factory, dtype, iterations (None: as trained), forgery, pattern)
    ("adam_v_negative", fnn.Adam, "float32", None, ("v", 2, -1.0),
     r"'v' must be >= 0.*v\[2\]=.*-1\.0"),
    ("adam_m_nan", fnn.Adam, "float64", None, ("m", 0, math.nan), r"'m' must be finite.*m\[0\]"),
    ("adam_v_inf", fnn.Adam, "float32", None, ("v", 5, math.inf), r"'v' must be finite.*v\[5\]"),
    ("adam_m_at_iterations_0", fnn.Adam, "float32", 0, ("m", 1, 1e37),
     r"'m' must be 0 at iterations=0.*m\[1\]=.*1e\+37"),
    ("adam_v_at_iterations_0", fnn.Adam, "float64", 0, ("v", 3, 1e-3),
     r"'v' must be 0 at iterations=0"),
    ("adam_iterations_negative", fnn.Adam, "float32", -1, None,
     r"'iterations' must be in \[0, 2\*\*53\).*iterations=-1"),
    ("adam_iterations_2_63", fnn.Adam, "float32", 2 ** 63 - 1, None, r"iterations=9223372"),
    ("adam_iterations_min", fnn.Adam, "float32", -2 ** 63, None, r"iterations=-9223372"),
    ("sgd_velocity_nan", lambda: fnn.SGD(momentum=0.9), "float32", None,
     ("velocity", 4, math.nan), r"'velocity' must be finite.*velocity\[4\]"),
    ("sgd_iterations_2_53", fnn.SGD, "float64", 2 ** 53, None, r"iterations=9007199254740992"),
]


@pytest.mark.parametrize("factory, dtype, iterations, forgery, pattern",
                         [c[1:] for c in STATE_CASES], ids=[c[0] for c in STATE_CASES])
def test_check_state_refuses_forged_states(factory, dtype, iterations, forgery, pattern):
    model = make_model("numpy", dtype, factory())
    model.fit(X, Y, epochs=2, batch_size=4, verbose=0)
    optimizer, params = model.optimizer, model._params
    optimizer.check_state(params)                      # a real run's state passes
    if iterations is not None:
        optimizer._iterations[0] = iterations          # as a loader (or the plan) writes it
        if iterations == 0:
            for a in optimizer.state().values():
                a[...] = 0
            optimizer.check_state(params)              # a fresh state passes
    if forgery is not None:
        _forge_state(optimizer, *forgery)
    before = snapshot(model)
    with pytest.raises(ValueError, match=pattern):
        optimizer.check_state(params)
    assert_same(before, snapshot(model))


OVERFLOWING_STATES = [
    # (id, optimizer factory, dtype, forgery): finite states that one more step would overflow
    ("adam_m_huge", fnn.Adam, "float32", ("m", 0, 1e37)),
    ("adam_m_huge_float64", fnn.Adam, "float64", ("m", 0, 1e306)),
    ("sgd_velocity_huge", lambda: fnn.SGD(lr=1.0, momentum=0.9), "float32", ("velocity", 0, 3e38)),
]


@pytest.mark.parametrize("backend", TRAIN_BACKENDS)
@pytest.mark.parametrize("factory, dtype, forgery", [c[1:] for c in OVERFLOWING_STATES],
                         ids=[c[0] for c in OVERFLOWING_STATES])
def test_a_loaded_state_that_would_overflow_is_refused_by_the_next_step(backend, factory,
                                                                        dtype, forgery):
    """Whether a state can overflow depends on the next gradient, so loading it only asks the
    next step for the exact bound: that step raises, changing nothing, on every path."""
    model = make_model("numpy", dtype, factory())
    model.fit(X, Y, epochs=2, batch_size=4, verbose=0)
    _forge_state(model.optimizer, *forgery)
    same = model_from_bytes(model_to_bytes(model), backend="numpy" if backend == "numpy"
                            else "fast")
    if backend == "fast":
        same._compiled_steps = False
    before = snapshot(same)
    for _ in range(2):
        with pytest.raises(FloatingPointError, match="diverged"):
            same.train_on_batch(X[:4], Y[:4])
        with pytest.raises(FloatingPointError, match="diverged"):
            same.fit(X, Y, epochs=1, batch_size=4, verbose=0)
    assert_same(before, snapshot(same))


@pytest.mark.parametrize("backend", TRAIN_BACKENDS)
def test_what_save_writes_load_reads_whatever_the_hyper_parameters(backend):
    """An extreme but valid learning rate set after training: the file round-trips, and the
    step the state cannot take is refused by the step, not by the loader."""
    model = make_model(backend, "float64", fnn.SGD(lr=1e-50, momentum=0.9))
    model.train_on_batch(X * 1e15, Y)
    model.optimizer.lr = 1e300
    same = model_from_bytes(model_to_bytes(model), backend=model.backend)
    same._compiled_steps = model._compiled_steps
    for a, b in zip(model.get_weights() + [model.optimizer.state()["velocity"]],
                    same.get_weights() + [same.optimizer.state()["velocity"]]):
        np.testing.assert_array_equal(a, b)
    before = snapshot(same)
    with pytest.raises(FloatingPointError, match="diverged"):
        same.train_on_batch(X, Y)
    assert_same(before, snapshot(same))


@pytest.mark.parametrize("backend", TRAIN_BACKENDS)
def test_set_weights_makes_the_next_step_take_the_exact_bound(backend):
    """Huge finite weights with Adam's weight decay: v would overflow to inf (and the weights
    stay finite), which the gradient screen alone does not see."""
    model = make_model(backend, "float32", fnn.Adam(weight_decay=1e-2))
    model.train_on_batch(X, Y)
    model.set_weights([np.full(w.shape, 1e30) for w in model.get_weights()])
    before = snapshot(model)
    with pytest.raises(FloatingPointError, match="diverged"):
        model.train_on_batch(X, Y)
    assert_same(before, snapshot(model))


def test_check_state_needs_a_built_optimizer_of_the_right_size():
    with pytest.raises(ValueError, match=r"build\(size, dtype\)"):
        fnn.Adam().check_state(np.zeros(3))
    optimizer = fnn.SGD(momentum=0.9)
    optimizer.build(3, "float32")
    with pytest.raises(ValueError, match=r"'velocity' must be float32\[4\]"):
        optimizer.check_state(np.zeros(4, np.float32))


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e-6, 1e-20])
def test_a_state_check_state_accepts_survives_a_step_the_screen_lets_through(dtype, backend,
                                                                           scale):
    # Any finite first moment passes check_state; the step after it takes the exact bound:
    # with gradients just below the screen it raises (changing nothing) or stays finite.
    optimizer = fnn.Adam(lr=1e-3, beta1=0.99)
    params = np.zeros(8, dtype)
    optimizer.build(params.size, dtype)
    optimizer.iterations = 2                           # v = 0: the update is lr m_hat / eps
    optimizer._m[...] = float(np.finfo(dtype).max) * scale
    optimizer.check_state(params)
    G = overflow_screen(dtype) * 0.999
    grads = np.full(8, G, dtype)
    grads[::2] = 0                                      # v_hat stays small where g is 0
    before = [a.copy() for a in (params, optimizer._m, optimizer._v)]
    try:
        optimizer.step(get_backend(backend), params, grads)
    except FloatingPointError:
        for a, b in zip(before, (params, optimizer._m, optimizer._v)):
            np.testing.assert_array_equal(a, b)
        assert optimizer.iterations == 2
    else:
        assert optimizer.iterations == 3
    for a in [params, optimizer._m, optimizer._v]:
        assert np.isfinite(a).all()


@pytest.mark.parametrize("forgery", [("v", 0, -1.0), ("m", 0, 1e37)], ids=["v_negative",
                                                                           "m_at_iterations_0"])
def test_the_loader_refuses_a_forged_optimizer_state(forgery, tmp_path):
    model = make_model("numpy", "float32", fnn.Adam())
    _forge_state(model.optimizer, *forgery)           # iterations is 0: a fresh optimizer
    model.save(tmp_path / "forged.fnn")
    with pytest.raises(ValueError, match=repr(forgery[0])):
        fnn.load(tmp_path / "forged.fnn")


# ---------------------------------------------------------------- schedules and callbacks

@pytest.mark.parametrize("backend", TRAIN_BACKENDS)
def test_a_schedule_whose_rate_the_dtype_cannot_hold_stops_before_that_epoch(backend):
    schedule = ExponentialDecay(0.1, rate=1e-20)       # 0.1, 1e-21, 1e-41 (float32: subnormal)
    model = make_model(backend, "float32", fnn.SGD(lr=0.1))
    reference = make_model(backend, "float32", fnn.SGD(lr=0.1))
    reference.fit(X, Y, epochs=2, batch_size=8, shuffle=False, verbose=0,
                  callbacks=[fnn.LearningRateScheduler(schedule)])
    with pytest.raises(ValueError, match=r"epoch 2.*lr=1e-41.*subnormal"):
        model.fit(X, Y, epochs=5, batch_size=8, shuffle=False, verbose=0,
                  callbacks=[fnn.LearningRateScheduler(schedule)])
    assert_same(snapshot(reference), snapshot(model))
    # float64 holds that rate
    make_model(backend, "float64", fnn.SGD(lr=0.1)).fit(
        X, Y, epochs=3, batch_size=8, verbose=0, callbacks=[fnn.LearningRateScheduler(schedule)])


def test_a_schedule_returning_a_string_is_a_type_error():
    model = make_model("numpy", "float32", fnn.SGD())
    with pytest.raises(TypeError, match=r"epoch 0.*lr='0\.1'"):
        model.fit(X, Y, epochs=1, verbose=0,
                  callbacks=[fnn.LearningRateScheduler(lambda epoch: "0.1")])


def test_the_json_config_of_a_checked_optimizer_is_unchanged():
    config = fnn.Adam(lr=0.01, eps=1e-7).get_config()
    assert json.loads(json.dumps(config)) == {"name": "adam", "lr": 0.01, "beta1": 0.9,
                                              "beta2": 0.999, "eps": 1e-7, "weight_decay": 0.0}
