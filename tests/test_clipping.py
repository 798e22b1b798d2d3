"""Gradient clipping (Keras' clipnorm, clipvalue, global_clipnorm) on every optimizer and path.

PyTorch is the oracle where it has the operation: ``clip_grad_value_`` for clipvalue,
``clip_grad_norm_`` over all parameters for global_clipnorm and over each parameter on its own for
clipnorm (Keras clips each weight's gradient by its own norm), followed by the matching
``torch.optim`` step, in float64. ``clip_grad_norm_`` divides by ``norm + 1e-6``; the helper
below hands it a bound scaled by ``(norm + 1e-6) / norm`` so that its scale is Keras' ``c / norm``.
The compiled backend is held to the NumPy one, the compiled training step (TrainPlan) bitwise
to the per-kernel route (tests/test_train_plan.py runs clipped optimizers too), and both
bitwise at 1 and 2 threads.
"""

import json
import math
import re
import struct

import numpy as np
import pytest

import fastnn as fnn
from fastnn import io as fio
from fastnn.backends import get_backend
from fastnn.optimizers import get_optimizer

CLIPS = {"clipnorm": {"clipnorm": 0.05}, "clipvalue": {"clipvalue": 0.01},
         "global_clipnorm": {"global_clipnorm": 0.08}}

# fastnn optimizer, the torch.optim one with the same rule (RMSprop: Keras adds eps under the
# root, PyTorch to the root; with eps 1e-30 both are the same step to float64 rounding)
OPTIMIZERS = {
    "sgd": (lambda **c: fnn.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, **c),
            lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "adam": (lambda **c: fnn.Adam(lr=0.01, weight_decay=0.05, **c),
             lambda t, p: t.optim.Adam(p, lr=0.01, eps=1e-8, weight_decay=0.05)),
    "adamw": (lambda **c: fnn.AdamW(lr=0.01, weight_decay=0.1, eps=1e-8, **c),
              lambda t, p: t.optim.AdamW(p, lr=0.01, eps=1e-8, weight_decay=0.1)),
    "rmsprop": (lambda **c: fnn.RMSprop(lr=0.01, rho=0.9, eps=1e-30, **c),
                lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-30)),
}


def _torch_clip(torch, params, clip):
    (name, c), = clip.items()
    if name == "clipvalue":
        torch.nn.utils.clip_grad_value_(params, c)
        return
    groups = [[p] for p in params] if name == "clipnorm" else [params]
    for group in groups:
        norm = float(torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.grad) for p in group])))
        if norm > c:          # torch scales by max_norm / (norm + 1e-6): give it Keras' c / norm
            torch.nn.utils.clip_grad_norm_(group, c * (norm + 1e-6) / norm)


def _data(rng, n=12):
    return rng.standard_normal((n, 5)), rng.standard_normal((n, 3))


@pytest.mark.parametrize("clip", sorted(CLIPS))
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_steps_match_pytorch(opt, clip, backend):
    torch = pytest.importorskip("torch")
    make, make_torch = OPTIMIZERS[opt]
    model = fnn.Sequential([fnn.Dense(4, activation="tanh"), fnn.Dense(3)], input_dim=5, seed=2,
                           dtype="float64", backend=backend)
    model.compile("mse", make(**CLIPS[clip]))
    W1, b1, W2, b2 = model.get_weights()
    lin1, lin2 = torch.nn.Linear(5, 4).double(), torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        for lin, W, b in ((lin1, W1, b1), (lin2, W2, b2)):
            lin.weight.copy_(torch.tensor(W.T))
            lin.bias.copy_(torch.tensor(b))
    params = [lin1.weight, lin1.bias, lin2.weight, lin2.bias]
    topt = make_torch(torch, params)
    rng = np.random.default_rng(5)
    for _ in range(4):
        x, y = _data(rng)
        x, y = 3 * x, 3 * y          # gradients well above the bounds: clipping is active
        model.train_on_batch(x, y)
        topt.zero_grad()
        torch.nn.functional.mse_loss(lin2(torch.tanh(lin1(torch.tensor(x)))),
                                     torch.tensor(y)).backward()
        _torch_clip(torch, params, CLIPS[clip])
        topt.step()
    expected = [lin1.weight.detach().numpy().T, lin1.bias.detach().numpy(),
                lin2.weight.detach().numpy().T, lin2.bias.detach().numpy()]
    for got, ref in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_clipping_changes_the_steps_it_should():
    """A bound the gradients stay within changes nothing; an active one does."""
    rng = np.random.default_rng(0)
    x, y = _data(rng)
    results = {}
    for name, settings in (("none", {}), ("loose", {"global_clipnorm": 1e6}),
                           ("tight", {"global_clipnorm": 1e-3})):
        model = fnn.Sequential([fnn.Dense(4, activation="tanh"), fnn.Dense(3)], input_dim=5,
                               seed=2, dtype="float64")
        model.compile("mse", fnn.SGD(lr=0.1, **settings))
        model.train_on_batch(x, y)
        results[name] = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(results["none"], results["loose"]))
    assert not np.array_equal(results["none"][0], results["tight"][0])


# ------------------------------------------------------------------ compiled = NumPy, threads
def _net(kind, backend, dtype, opt, input_dim=6):
    if kind == "plan":          # a Dense chain: the compiled training step on the fast backend
        layers = [fnn.Dense(9, activation="relu"), fnn.Dense(4, activation="softmax")]
    else:                       # a regularizer: the general path (clipped after it is added)
        layers = [fnn.Dense(9, activation="relu", kernel_regularizer=fnn.regularizers.L2(0.01)),
                  fnn.Dense(4, activation="softmax")]
    model = fnn.Sequential(layers, input_dim=input_dim, seed=4, dtype=dtype, backend=backend)
    return model.compile("cross_entropy", opt)


@pytest.mark.parametrize("kind", ["plan", "general"])
@pytest.mark.parametrize("clip", sorted(CLIPS))
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_compiled_backend_equals_numpy_backend(kind, clip, opt, dtype):
    rng = np.random.default_rng(1)
    X, y = 4 * rng.standard_normal((50, 6)), rng.integers(0, 4, 50)
    make = OPTIMIZERS[opt][0]
    fast = _net(kind, "fast", dtype, make(**CLIPS[clip]))
    ref = _net(kind, "numpy", dtype, make(**CLIPS[clip]))
    fast.fit(X, y, epochs=3, batch_size=16, verbose=0)
    ref.fit(X, y, epochs=3, batch_size=16, verbose=0)
    if kind == "plan" and opt in ("sgd", "adam"):
        assert fast._train_plan, "the compiled step was not used"
    tol = 1e-10 if dtype == "float64" else 2e-4
    for a, b in zip(fast.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", ["plan", "general"])
@pytest.mark.parametrize("clip", sorted(CLIPS))
def test_bitwise_equal_at_one_and_two_threads(kind, clip, dtype, fixed_threads):
    """A network big enough (over 131072 parameters) for the element-wise passes to split."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((64, 300)), rng.integers(0, 4, 64)
    results = []
    previous = fnn.get_num_threads()
    try:
        for threads in (1, 2):
            fnn.set_num_threads(threads)
            layers = [fnn.Dense(480, activation="relu"), fnn.Dense(4, activation="softmax")]
            if kind == "general":
                layers[0] = fnn.Dense(480, activation="relu",
                                      kernel_regularizer=fnn.regularizers.L2(1e-3))
            model = fnn.Sequential(layers, input_dim=300, seed=0, dtype=dtype)
            model.compile("cross_entropy", fnn.Adam(lr=1e-3, **{clip: 1e-3}))
            model.fit(X, y, epochs=2, batch_size=32, verbose=0)
            results.append(model.get_weights() + list(model.optimizer.state().values()))
    finally:
        fnn.set_num_threads(previous)
    for a, b in zip(*results):
        assert np.array_equal(a, b)


def test_clipping_switched_on_after_training_rebuilds_the_plan(dtype):
    rng = np.random.default_rng(9)
    X, y = rng.standard_normal((32, 6)), rng.integers(0, 4, 32)
    planned = _net("plan", "fast", dtype, fnn.SGD(lr=0.5, momentum=0.5))
    plain = _net("plan", "fast", dtype, fnn.SGD(lr=0.5, momentum=0.5))
    plain._compiled_steps = False
    for model in (planned, plain):
        model.fit(X, y, epochs=1, batch_size=16, verbose=0)
        model.optimizer.global_clipnorm = 1e-3
        model.fit(X, y, epochs=1, batch_size=16, verbose=0)
        model.optimizer.global_clipnorm = None
        model.optimizer.clipvalue = 1e-4
        model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    assert planned._train_plan
    for a, b in zip(planned.get_weights(), plain.get_weights()):
        assert np.array_equal(a, b)


# ------------------------------------------------------------------ the kernels
def _segments(rng, sizes, dtype, scale=1.0):
    bounds = np.cumsum([0] + sizes).astype(np.int64)
    return (scale * rng.standard_normal(bounds[-1])).astype(dtype), bounds


@pytest.mark.parametrize("setting", [(0.5, 0, 0), (0, 0.3, 0), (0, 0, 0.7), (100.0, 0, 0),
                                     (0, 0, 100.0), (0, 10.0, 0)])
def test_compiled_kernel_equals_numpy_twin(setting, dtype):
    rng = np.random.default_rng(11)
    g, bounds = _segments(rng, [0, 7, 1, 300, 33, 0, 17], dtype)
    outs = {}
    for name in ("numpy", "fast"):
        out = np.full_like(g, 123.0)
        wrote = get_backend(name).clip_gradients(g, out, bounds, *setting)
        outs[name] = (wrote, out)
    assert outs["numpy"][0] == outs["fast"][0]
    if setting in ((100.0, 0, 0), (0, 0, 100.0)):
        assert not outs["fast"][0] and (outs["fast"][1] == 123.0).all()   # untouched
    np.testing.assert_allclose(outs["fast"][1], outs["numpy"][1],
                               rtol=1e-14 if dtype == "float64" else 1e-6)


def test_norms_that_overflow_a_double_are_rescaled():
    rng = np.random.default_rng(12)
    g, bounds = _segments(rng, [40, 25], "float64", scale=1e160)   # sum of squares: inf
    for setting in ((1.0, 0, 0), (0, 0, 1.0)):
        for name in ("numpy", "fast"):
            out = np.empty_like(g)
            assert get_backend(name).clip_gradients(g, out, bounds, *setting)
            norms = [np.linalg.norm(out[a:b] / 1.0) for a, b in zip(bounds[:-1], bounds[1:])]
            total = math.sqrt(sum(n * n for n in norms))
            if setting[0]:
                np.testing.assert_allclose(norms, [1.0, 1.0], rtol=1e-12)
            else:
                np.testing.assert_allclose(total, 1.0, rtol=1e-12)


def test_kernel_refuses_inconsistent_arguments():
    fast = get_backend("fast")
    g = np.ones(5)
    for bounds in ([0, 4], [1, 5], [0, 3, 2, 5], [0]):
        with pytest.raises(ValueError):
            fast.clip_gradients(g, np.empty(5), np.array(bounds, dtype=np.int64), 1.0, 0, 0)
    with pytest.raises(ValueError):
        fast.clip_gradients(g, np.empty(4), np.array([0, 5], dtype=np.int64), 1.0, 0, 0)
    with pytest.raises(ValueError):
        fast.clip_gradients(g, np.empty(5), np.array([0, 5], dtype=np.int64), 1.0, 1.0, 0)


def test_non_finite_gradients_are_refused_before_clipping(backend):
    be = get_backend(backend)
    for clip in CLIPS.values():
        opt = fnn.Adam(lr=0.1, **clip)
        w = np.array([1.0, 2.0, 3.0])
        opt.build(3, w.dtype)
        for bad in (np.nan, np.inf):
            with pytest.raises(FloatingPointError):
                opt.step(be, w, np.array([0.5, bad, 1.0]))
        assert np.array_equal(w, [1.0, 2.0, 3.0]) and opt.iterations == 0


def test_step_by_hand_clips_the_flat_gradient_as_one_tensor_and_keeps_it():
    w, g = np.zeros(2), np.array([3.0, 4.0])
    opt = fnn.SGD(lr=1.0, clipnorm=2.5)
    opt.build(2, w.dtype)
    opt.step(get_backend("fast"), w, g)
    assert np.allclose(w, [-1.5, -2.0]) and np.array_equal(g, [3.0, 4.0])


# ------------------------------------------------------------------ settings
BAD = [
    ({"clipnorm": 0}, ValueError, "clipnorm=0.0"),
    ({"clipnorm": -1.5}, ValueError, "clipnorm=-1.5"),
    ({"clipvalue": float("nan")}, ValueError, "clipvalue=nan"),
    ({"global_clipnorm": float("inf")}, ValueError, "global_clipnorm=inf"),
    ({"clipnorm": True}, TypeError, "clipnorm=True"),
    ({"clipvalue": "1.0"}, TypeError, "clipvalue='1.0'"),
    ({"global_clipnorm": [1.0]}, TypeError, "global_clipnorm"),
    ({"clipnorm": 1e-320}, ValueError, "clipnorm"),
    ({"clipnorm": 1.0, "global_clipnorm": 2.0}, ValueError,
     "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
     "clipnorm=1.0, clipvalue=None, global_clipnorm=2.0"),
    ({"clipnorm": 1.0, "clipvalue": 2.0}, ValueError, "Only one of"),
    ({"clipvalue": 1.0, "global_clipnorm": 2.0}, ValueError, "Only one of"),
]


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("kwargs, error, text", BAD)
def test_bad_settings_are_refused(opt, kwargs, error, text):
    make = OPTIMIZERS[opt][0]
    with pytest.raises(error, match=re.escape(text)):
        make(**kwargs)
    good = make(clipnorm=1.0)
    for key, value in kwargs.items():
        if key != "clipnorm":
            with pytest.raises((TypeError, ValueError)):
                setattr(good, key, value)     # one set already, or a bad value
    assert good.get_config()["clipnorm"] == 1.0 and good.clipvalue is None


def test_a_setting_the_dtype_cannot_hold_is_refused_at_compile():
    model = fnn.Sequential([fnn.Dense(2)], input_dim=3, dtype="float32")
    with pytest.raises(ValueError, match="clipvalue"):
        model.compile("mse", fnn.SGD(clipvalue=1e39))
    model.compile("mse", fnn.SGD(clipvalue=1.0))
    with pytest.raises(ValueError, match="clipvalue"):
        model.optimizer.clipvalue = 1e-40
    assert model.optimizer.clipvalue == 1.0


def test_switching_from_one_setting_to_another():
    opt = fnn.SGD(clipnorm=1.0)
    with pytest.raises(ValueError, match="Only one of"):
        opt.global_clipnorm = 2.0
    opt.clipnorm = None
    opt.global_clipnorm = 2.0
    assert opt.get_config() == {"name": "sgd", "lr": 0.01, "momentum": 0.0, "nesterov": False,
                                "weight_decay": 0.0, "global_clipnorm": 2.0}
    assert repr(opt) == ("SGD(lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, "
                         "global_clipnorm=2.0)")


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("clip", sorted(CLIPS))
def test_config_round_trip(opt, clip):
    original = OPTIMIZERS[opt][0](**CLIPS[clip])
    config = original.get_config()
    assert config[clip] == CLIPS[clip][clip]
    again = get_optimizer(config)
    assert type(again) is type(original) and again.get_config() == config
    # Keras' form lists the unset ones as None
    keras_form = {**config, "clipnorm": None, "clipvalue": None, "global_clipnorm": None,
                  clip: config[clip]}
    assert get_optimizer(keras_form).get_config() == config
    assert "clipnorm" not in OPTIMIZERS[opt][0]().get_config()     # unchanged without clipping


@pytest.mark.parametrize("clip", sorted(CLIPS))
def test_model_file_round_trip(clip, tmp_path):
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((20, 6)), rng.integers(0, 4, 20)
    model = _net("plan", "fast", "float32", fnn.Adam(lr=0.01, **CLIPS[clip]))
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.fnn")
    loaded = fnn.load(tmp_path / "m.fnn")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for m in (model, loaded):
        m.fit(X, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)


def _parse(blob):
    size = struct.unpack_from("<I", blob, 12)[0]
    start = 16 + size
    return json.loads(blob[16:start].decode()), blob[start + (-start % 64):]


def _build(blob, header, data):
    raw = json.dumps(header).encode()
    start = 16 + len(raw)
    return blob[:12] + struct.pack("<I", len(raw)) + raw + b"\0" * (-start % 64) + data


@pytest.mark.parametrize("forged", [{"clipnorm": -1.0}, {"clipvalue": "big"},
                                    {"global_clipnorm": 0.0}, {"clipnorm": True},
                                    {"clipnorm": 1.0, "clipvalue": 1.0},
                                    {"clipnorm": 1e300}])
def test_forged_clipping_settings_are_refused_on_load(forged):
    rng = np.random.default_rng(2)
    model = _net("plan", "fast", "float32", fnn.SGD(lr=0.01, clipnorm=1.0))
    model.fit(rng.standard_normal((8, 6)), rng.integers(0, 4, 8), epochs=1, verbose=0)
    blob = fio.model_to_bytes(model)
    header, data = _parse(blob)
    header["compile"]["optimizer"] = {**header["compile"]["optimizer"], "clipnorm": None,
                                      **forged}
    with pytest.raises(ValueError, match="compile settings are invalid"):
        fio.model_from_bytes(_build(blob, header, data))


def test_the_overflow_check_sees_the_clipped_gradient(backend):
    """A step the raw gradient would overflow (lr |g| beyond float32) is refused without
    clipping and taken with it: the check bounds max |g| by the clip setting."""
    be = get_backend(backend)
    g = np.array([1e30, -1e30], dtype=np.float32)
    plain = fnn.SGD(lr=1e10)
    plain.build(2, "float32")
    w = np.zeros(2, np.float32)
    with pytest.raises(FloatingPointError):
        plain.step(be, w, g)
    for clip in CLIPS:
        opt = fnn.SGD(lr=1e10, **{clip: 1.0})
        opt.build(2, "float32")
        w = np.zeros(2, np.float32)
        opt.step(be, w, g)
        expected = 1e10 / math.sqrt(2) if clip != "clipvalue" else 1e10
        np.testing.assert_allclose(w, [-expected, expected], rtol=1e-6)
