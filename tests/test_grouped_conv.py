"""Grouped convolutions (Keras' ``groups`` on Conv1D, Conv2D and Conv3D): PyTorch parity in
float64 (forward, input, kernel and bias gradients; nn.Conv1d/2d/3d(groups=G), weights mapped from
Keras' layout), Keras 3's own Conv2D(groups=...), finite differences on both backends, the
compiled kernels against their NumPy twins, 1 vs 2 threads bitwise, every SIMD flavour, learning
on the digits, configs and files (and hostile ``groups`` in a file), bad inputs, ONNX."""

import copy

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend

torch = pytest.importorskip("torch")

#: (sample shape, filters, kernel_size, strides, padding, dilation_rate, groups, batch)
CASES = [
    ((7, 8, 8), 12, 3, 1, "same", 1, 1, 2),
    ((7, 8, 8), 12, 3, 1, "same", 1, 2, 2),
    ((9, 9, 8), 8, 3, 2, "valid", 1, 4, 3),
    ((10, 9, 8), 16, (2, 3), 1, "same", 2, 4, 2),        # even kernel, dilation
    ((8, 8, 8), 8, 3, 1, "same", 1, 8, 2),               # groups == c_in (depthwise kernels)
    ((8, 7, 4), 12, 3, (2, 1), "same", 1, 4, 2),         # groups == c_in, multiplier 3
    ((6, 6, 6), 6, 1, 1, "valid", 1, 3, 3),              # 1x1
    ((11, 10, 12), 6, 5, 2, "same", 1, 6, 1),            # 5x5, two channels a group
    ((9, 9, 16), 32, 3, 1, "same", (1, 2), 2, 2),        # wide groups (the strided path)
]
IDS = ["{}-f{}-k{}-s{}-{}-d{}-g{}-n{}".format(*c).replace(" ", "") for c in CASES]


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _same_pads(spatial, kernel, strides, dilations):
    """Keras' same padding per axis: (before, after), the odd one after."""
    pads = []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        span = (k - 1) * d + 1
        out = -(-size // s)
        total = max((out - 1) * s + span - size, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def _torch_conv(x, kernel, bias, strides, padding, dilations, groups):
    """torch's groups=G convolution of the channels-first x with a Keras (*k, c/G, f) kernel."""
    rank = kernel.dim() - 2
    weight = kernel.permute(rank + 1, rank, *range(rank))          # (f, c/G, *k)
    if padding == "same":
        pads = _same_pads(x.shape[2:], kernel.shape[:rank], strides, dilations)
        x = torch.nn.functional.pad(x, [p for pair in reversed(pads) for p in pair])
    conv = torch.nn.functional.conv2d if rank == 2 else torch.nn.functional.conv1d
    return conv(x, weight, bias, stride=strides, dilation=dilations, groups=groups)


def _model(layer, shape, backend, dtype="float64", seed=0):
    return fnn.Sequential([layer], input_shape=shape, dtype=dtype, backend=backend, seed=seed)


def _with_random_bias(model, rng):
    weights = model.get_weights()
    weights[-1] = rng.standard_normal(weights[-1].shape).astype(weights[-1].dtype)
    model.set_weights(weights)
    return model.get_weights()


def _check_against_torch(model, x, rng, strides, padding, dilations, groups, act=None):
    kernel, bias = _with_random_bias(model, rng)
    y = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dy)
    layer = model.layers[0]
    perm_in = (0, x.ndim - 1, *range(1, x.ndim - 1))
    perm_out = (0, *range(2, x.ndim), 1)
    xt = torch.tensor(x.transpose(perm_in), requires_grad=True)
    kt = torch.tensor(kernel, requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    yt = _torch_conv(xt, kt, bt, strides, padding, dilations, groups)
    if act is not None:
        yt = act(yt)
    yt.backward(torch.tensor(dy.transpose(perm_in)))
    scale = lambda a: 1e-10 * max(1.0, float(np.abs(a).max()))      # noqa: E731
    want = yt.detach().numpy().transpose(perm_out)
    np.testing.assert_allclose(y, want, rtol=0, atol=scale(want))
    want = xt.grad.numpy().transpose(perm_out)
    np.testing.assert_allclose(dx, want, rtol=0, atol=scale(want))
    np.testing.assert_allclose(layer._grads[0], kt.grad.numpy(), rtol=0,
                               atol=scale(kt.grad.numpy()))
    np.testing.assert_allclose(layer._grads[1], bt.grad.numpy(), rtol=0,
                               atol=scale(bt.grad.numpy()))


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv2d_groups_match_pytorch_forward_and_gradients(case, backend, rng):
    shape, f, k, s, pad, d, groups, n = case
    model = _model(fnn.Conv2D(f, k, strides=s, padding=pad, dilation_rate=d, groups=groups),
                   shape, backend)
    assert model.layers[0].kernel.shape == (*_pair(k), shape[-1] // groups, f)
    x = rng.standard_normal((n, *shape))
    _check_against_torch(model, x, rng, _pair(s), pad, _pair(d), groups)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("act", ["tanh", "softmax", "gelu"])
@pytest.mark.parametrize("groups", [2, 6])
def test_activations_apply_to_all_filters(act, groups, backend, rng):
    """Element-wise activations run in each group's epilogue; softmax across all filters."""
    model = _model(fnn.Conv2D(12, 3, padding="same", groups=groups, activation=act),
                   (6, 7, 6), backend)
    torch_act = {"tanh": torch.tanh, "softmax": lambda t: torch.softmax(t, dim=1),
                 "gelu": torch.nn.functional.gelu}[act]
    x = rng.standard_normal((2, 6, 7, 6))
    _check_against_torch(model, x, rng, (1, 1), "same", (1, 1), groups, torch_act)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("groups,s,pad,d", [(2, 1, "same", 1), (4, 2, "valid", 1),
                                            (8, 1, "same", 2), (1, 1, "valid", 3)])
def test_conv1d_groups_match_pytorch(groups, s, pad, d, backend, rng):
    model = _model(fnn.Conv1D(16, 3, strides=s, padding=pad, dilation_rate=d, groups=groups),
                   (17, 8), backend)
    assert model.layers[0].kernel.shape == (3, 8 // groups, 16)
    x = rng.standard_normal((3, 17, 8))
    _check_against_torch(model, x, rng, (s,), pad, (d,), groups)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("groups", [2, 4])
def test_causal_conv1d_groups_match_pytorch(groups, backend, rng):
    """padding='causal' is the valid convolution of the sequence left-padded by the span."""
    model = _model(fnn.Conv1D(8, 3, padding="causal", dilation_rate=2, groups=groups),
                   (10, 4), backend)
    kernel, bias = _with_random_bias(model, rng)
    x = rng.standard_normal((2, 10, 4))
    xt = torch.nn.functional.pad(torch.tensor(x.transpose(0, 2, 1)), (4, 0))
    want = _torch_conv(xt, torch.tensor(kernel), torch.tensor(bias), (1,), "valid", (2,),
                       groups).numpy().transpose(0, 2, 1)
    np.testing.assert_allclose(model.predict(x), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_keras_conv2d_groups_give_the_same_outputs(keras64, groups, backend, rng):
    kwargs = dict(filters=8, kernel_size=3, strides=2, padding="same", groups=groups,
                  activation="relu")
    ours = _model(fnn.Conv2D(**kwargs), (9, 8, 4), backend, seed=4)
    _with_random_bias(ours, rng)
    theirs = keras64.layers.Conv2D(**kwargs)
    x = rng.standard_normal((3, 9, 8, 4))
    theirs(x)
    assert [w.shape for w in theirs.get_weights()] == [w.shape for w in ours.get_weights()]
    theirs.set_weights(ours.get_weights())
    # Keras' NumPy backend convolves through jax.lax, in float32 unless jax runs with x64
    np.testing.assert_allclose(ours.predict(x), np.asarray(theirs(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_finite_differences_through_a_small_model(backend, rng):
    model = fnn.Sequential([
        fnn.Conv2D(8, 3, padding="same", groups=2, activation="tanh"),
        fnn.Conv2D(8, (2, 3), strides=2, padding="same", groups=4, activation="sigmoid"),
        fnn.Conv2D(8, 2, dilation_rate=(1, 2), groups=8, activation="elu"),
        fnn.Flatten(), fnn.Dense(2)], input_shape=(6, 7, 4), dtype="float64",
        backend=backend, seed=3)
    x = rng.standard_normal((2, 6, 7, 4))
    r = rng.standard_normal((2, 2))

    def loss(params=None, xs=x):
        if params is not None:
            model.set_weights(params)
        return float(np.sum(model.predict(xs) * r))

    weights = model.get_weights()
    model.forward(x, training=True)
    model.zero_grad()
    dx = model.backward(r)
    grads = [g.copy() for layer in model.layers for g in layer._grads]
    eps = 1e-6
    for i, w in enumerate(weights):
        for j in rng.choice(w.size, min(w.size, 6), replace=False):
            plus = [v.copy() for v in weights]
            minus = [v.copy() for v in weights]
            plus[i].flat[j] += eps
            minus[i].flat[j] -= eps
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            assert abs(numeric - grads[i].flat[j]) < 1e-7 * max(1.0, abs(numeric)), (i, j)
    model.set_weights(weights)
    for j in rng.choice(x.size, 8, replace=False):
        xp, xm = x.copy(), x.copy()
        xp.flat[j] += eps
        xm.flat[j] -= eps
        numeric = (loss(xs=xp) - loss(xs=xm)) / (2 * eps)
        assert abs(numeric - dx.flat[j]) < 1e-7 * max(1.0, abs(numeric)), j


def _kernel_args(rng, dtype, n=3, shape=(9, 8, 12), k=(3, 3), groups=4, f=8):
    x = rng.standard_normal((n, *shape)).astype(dtype)
    kernel = rng.standard_normal((*k, shape[-1] // groups, f)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    return x, kernel, bias


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("geometry", [((1, 1), (1, 1), (1, 1)), ((2, 1), (1, 2), (1, 2)),
                                      ((2, 2), (1, 1), (0, 0))])
@pytest.mark.parametrize("groups,f", [(2, 8), (3, 6), (4, 16), (12, 12)])
def test_compiled_kernels_match_their_numpy_twins(dtype, tol, geometry, groups, f, rng):
    fast, ref = get_backend("fast"), get_backend("numpy")
    strides, dilations, padding = geometry
    x, kernel, bias = _kernel_args(rng, dtype, groups=groups, f=f)
    oh = (9 + 2 * padding[0] - 2 * dilations[0] - 1) // strides[0] + 1
    ow = (8 + 2 * padding[1] - 2 * dilations[1] - 1) // strides[1] + 1
    outs = []
    dz = rng.standard_normal((3, oh, ow, f)).astype(dtype)
    for be in (fast, ref):
        y = np.empty((3, oh, ow, f), dtype)
        be.conv2d_grouped_forward(x, kernel, bias, strides, dilations, padding, groups, 3, 0.0,
                                  y)
        dk, db, dx = np.empty_like(kernel), np.empty_like(bias), np.empty_like(x)
        be.conv2d_grouped_backward(x, kernel, dz, strides, dilations, padding, groups, dk, db,
                                   dx)
        dk2, db2 = np.empty_like(kernel), np.empty_like(bias)
        be.conv2d_grouped_backward(x, kernel, dz, strides, dilations, padding, groups, dk2,
                                   db2, None)
        np.testing.assert_array_equal(dk, dk2)
        outs.append((y, dk, db, dx))
    for got, want in zip(*outs):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))


def test_one_and_two_threads_give_the_same_bits(rng):
    fast = get_backend("fast")
    previous = fnn.get_num_threads()
    results = []
    for groups, f in ((4, 64), (32, 64)):
        x, kernel, bias = _kernel_args(rng, "float32", n=16, shape=(32, 32, 64), groups=groups,
                                       f=f)
        dz = rng.standard_normal((16, 32, 32, f)).astype("float32")
        runs = []
        try:
            for threads in (1, 2, 1, 2):
                fnn.set_num_threads(threads)
                y = np.empty(dz.shape, np.float32)
                fast.conv2d_grouped_forward(x, kernel, bias, (1, 1), (1, 1), (1, 1), groups, 4,
                                            0.0, y)
                dk, db, dx = np.empty_like(kernel), np.empty_like(bias), np.empty_like(x)
                fast.conv2d_grouped_backward(x, kernel, dz, (1, 1), (1, 1), (1, 1), groups, dk,
                                             db, dx)
                runs.append(b"".join(a.tobytes() for a in (y, dk, db, dx)))
        finally:
            fnn.set_num_threads(previous)
        results.append(runs)
    for runs in results:
        assert len(set(runs)) == 1


def _digits_images():
    X, y = fnn.datasets.load_digits(return_images=True)
    return (X / 16.0)[..., None], y


def _grouped_cnn(seed=0):
    return fnn.Sequential([
        fnn.Conv2D(16, 3, padding="same", activation="relu"),
        fnn.Conv2D(32, 3, padding="same", groups=4, activation="relu"),
        fnn.MaxPooling2D(),
        fnn.Conv2D(32, 3, padding="same", groups=32, activation="relu"),
        fnn.Conv2D(32, 1, groups=8, activation="relu"),
        fnn.GlobalAveragePooling2D(), fnn.Dense(10, activation="softmax")],
        input_shape=(8, 8, 1), seed=seed)


def test_training_is_bitwise_the_same_at_one_and_two_threads():
    X, y = _digits_images()
    previous = fnn.get_num_threads()
    weights = []
    try:
        for threads in (1, 2):
            fnn.set_num_threads(threads)
            model = _grouped_cnn(seed=1)
            model.compile("cross_entropy", fnn.Adam(learning_rate=0.01))
            model.fit(X[:512], y[:512], epochs=1, batch_size=64, verbose=0)
            weights.append(b"".join(w.tobytes() for w in model.get_weights()))
    finally:
        fnn.set_num_threads(previous)
    assert weights[0] == weights[1]


def test_a_grouped_cnn_learns_the_digits():
    X, y = _digits_images()
    model = _grouped_cnn()
    model.compile("cross_entropy", fnn.Adam(learning_rate=0.01), metrics=["accuracy"])
    model.fit(X[:1400], y[:1400], epochs=15, batch_size=32, verbose=0)
    accuracy = model.evaluate(X[1400:], y[1400:], verbose=0)["accuracy"]
    assert accuracy >= 0.9, accuracy


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("groups", [2, 8])
def test_a_relu_grouped_conv_before_max_pooling_matches_the_unfused_gradients(groups, backend,
                                                                             rng):
    """A relu Conv2D read only by a max pooling takes its gradients from the pooling's (the
    model's fused relu-pool backward): the same as the layers apart."""
    def build(fused):
        inp = fnn.Input((8, 8, 8))
        conv = fnn.Conv2D(8, 3, padding="same", groups=groups, activation="relu")
        h = conv(inp)
        if not fused:                  # a second reader: the fusion does not apply
            side = fnn.Flatten()(fnn.Conv2D(8, 1)(h))
        out = fnn.Dense(3)(fnn.Flatten()(fnn.MaxPooling2D()(h)))
        if not fused:
            out = fnn.Add()([out, fnn.Dense(3, use_bias=False)(side)])
        return fnn.Model(inp, out, seed=2, dtype="float64", backend=backend), conv
    (fused, conv_f), (plain, conv_p) = build(True), build(False)
    weights = plain.get_weights()             # the conv, the Dense, then the side's (zeros)
    assert [w.shape for w in weights[:4]] == [w.shape for w in fused.get_weights()]
    plain.set_weights(fused.get_weights() + [0 * w for w in weights[4:]])
    x = rng.standard_normal((4, 8, 8, 8))
    r = rng.standard_normal((4, 3))
    grads = []
    for model, conv in ((fused, conv_f), (plain, conv_p)):
        model.forward(x, training=True)
        model.zero_grad()
        model.backward(r)
        grads.append([g.copy() for g in conv._grads])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_config_weights_and_files_round_trip(tmp_path, rng):
    model = fnn.Sequential([fnn.Conv2D(8, 3, padding="same", groups=4, activation="relu"),
                            fnn.Reshape((64, 8)),
                            fnn.Conv1D(6, 2, groups=2), fnn.Flatten(), fnn.Dense(2)],
                           input_shape=(8, 8, 4), seed=0)
    config = model.layers[0].get_config()
    assert config["groups"] == 4
    from fastnn.layers import layer_from_config
    again = layer_from_config(config)
    assert again.groups == 4 and again.get_config() == config
    assert "groups" not in fnn.Conv2D(8, 3).get_config()       # groups=1: today's config
    _with_random_bias(model, rng)
    path = tmp_path / "g.fnn"
    model.save(path)
    back = fnn.load(path)
    assert [layer.get_config().get("groups") for layer in back.layers[:3]] == [4, None, 2]
    x = rng.standard_normal((3, 8, 8, 4)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def test_groups_1_is_todays_path_bit_for_bit(rng):
    x = rng.standard_normal((4, 9, 9, 6)).astype(np.float32)
    a = fnn.Sequential([fnn.Conv2D(8, 3, activation="relu")], input_shape=(9, 9, 6), seed=5)
    b = fnn.Sequential([fnn.Conv2D(8, 3, activation="relu", groups=1)], input_shape=(9, 9, 6),
                       seed=5)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    from fastnn.backends.fast_backend import InferPlan
    assert isinstance(b._forward_plan, InferPlan)


def test_predict_matches_the_training_forward(rng):
    model = fnn.Sequential([fnn.Conv2D(8, 3, groups=2, activation="relu"), fnn.Flatten(),
                            fnn.Dense(3)], input_shape=(8, 8, 4), seed=0)
    x = rng.standard_normal((5, 8, 8, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), model.forward(x, training=False))


# ------------------------------------------------------------------------------ bad inputs
BAD_GROUPS = [
    (dict(groups=0), ValueError, r"groups=0"),
    (dict(groups=-2), ValueError, r"groups=-2"),
    (dict(groups=2.0), TypeError, r"groups=2.0"),
    (dict(groups="2"), TypeError, r"groups='2'"),
    (dict(groups=True), TypeError, r"groups=True"),
    (dict(groups=None), TypeError, r"groups=None"),
    (dict(groups=3), ValueError, r"groups=3, filters=8"),
    (dict(groups=2**40), ValueError, r"groups=1099511627776"),
]


@pytest.mark.parametrize("kind", ["Conv1D", "Conv2D"])
@pytest.mark.parametrize("kwargs,error,pattern", BAD_GROUPS, ids=[str(r[0]) for r in BAD_GROUPS])
def test_bad_groups_are_refused(kind, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        getattr(fnn, kind)(8, 3, **kwargs)


def test_input_channels_not_a_multiple_of_groups_are_refused_at_build():
    with pytest.raises(ValueError, match=r"groups=4, c_in=6, filters=8"):
        fnn.Sequential([fnn.Conv2D(8, 3, groups=4)], input_shape=(5, 5, 6))
    with pytest.raises(ValueError, match=r"groups=2, c_in=3, filters=4"):
        fnn.Sequential([fnn.Conv1D(4, 3, groups=2)], input_shape=(5, 3))


BAD_KERNEL_CALLS = [
    ("groups", lambda a: {**a, "groups": 3}, r"shapes do not match groups=3"),
    ("groups0", lambda a: {**a, "groups": 0}, r"groups=0"),
    ("groups_type", lambda a: {**a, "groups": 2.0}, r"groups=2.0"),
    ("x_channels", lambda a: {**a, "x": np.ascontiguousarray(a["x"][..., :8])},
     r"shapes do not match"),
    ("y_channels", lambda a: {**a, "y": np.ascontiguousarray(a["y"][..., :4])},
     r"shapes do not match"),
    ("bias", lambda a: {**a, "bias": a["bias"][:4]}, r"bias must have 8"),
    ("softmax", lambda a: {**a, "act": 6}, r"activation code 6"),
]


@pytest.mark.parametrize("name,change,pattern", BAD_KERNEL_CALLS,
                         ids=[r[0] for r in BAD_KERNEL_CALLS])
def test_the_compiled_kernels_refuse_mismatched_shapes(name, change, pattern, rng):
    fast = get_backend("fast")
    x, kernel, bias = _kernel_args(rng, "float32")
    args = dict(x=x, kernel=kernel, bias=bias, groups=4, act=0,
                y=np.empty((3, 7, 6, 8), np.float32))
    args = change(args)
    with pytest.raises(ValueError, match=pattern):
        fast.conv2d_grouped_forward(args["x"], args["kernel"], args["bias"], (1, 1), (1, 1),
                                    (0, 0), args["groups"], args["act"], 0.0, args["y"])
    if name in ("softmax", "bias", "y_channels"):
        return
    dz = rng.standard_normal((3, 7, 6, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=pattern):
        fast.conv2d_grouped_backward(args["x"], args["kernel"], dz, (1, 1), (1, 1), (0, 0),
                                     args["groups"], np.empty_like(args["kernel"]),
                                     np.empty(8, np.float32), None)


# -------------------------------------------------------------- hostile groups in a file
def _saved(groups=4):
    import fastnn.io as fio
    from test_model_files import parse
    blob = fio.model_to_bytes(fnn.Sequential([fnn.Conv2D(8, 3, groups=groups)],
                                             input_shape=(6, 6, 8), seed=0, backend="numpy"))
    _, header, start = parse(blob)
    return header, blob[start:]


HOSTILE = [
    (0, r"groups=0"),
    (-4, r"groups=-4"),
    (2**62, r"groups=4611686018427387904"),
    (3, r"groups=3"),                        # divides neither the filters nor the channels
    (2.5, r"groups=2.5"),
    ("4", r"groups='4'"),
    (True, r"groups=True"),
    ([4], r"groups=\[4\]"),
    (None, r"groups=None"),
    (2, r"shape|size|bytes|weights"),         # valid, but the stored kernel is a groups=4 one
    (8, r"shape|size|bytes|weights"),
]


@pytest.mark.parametrize("value,pattern", HOSTILE, ids=[repr(v) for v, _ in HOSTILE])
def test_the_loader_refuses_hostile_groups(value, pattern):
    from test_model_files import build
    from test_model_files_v2 import _refused_before_allocation
    header, data = _saved()
    forged = copy.deepcopy(header)
    forged["model"]["layers"][0]["groups"] = value
    _refused_before_allocation(build(forged, data, version=2), pattern)


# ------------------------------------------------------------------------------ ONNX
@pytest.mark.parametrize("rank", [1, 2])
def test_onnx_export_matches_onnxruntime_and_imports_back(rank, tmp_path, rng):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    kind = fnn.Conv1D if rank == 1 else fnn.Conv2D
    shape = (21, 8) if rank == 1 else (13, 12, 8)
    model = fnn.Sequential([kind(16, 4, strides=2, padding="same", groups=4, activation="relu"),
                            kind(8, 3, dilation_rate=2, groups=2),
                            kind(8, 3, padding="same", groups=8)],
                           input_shape=shape, seed=0)
    weights = model.get_weights()
    for i in (1, 3, 5):
        weights[i] = rng.standard_normal(weights[i].shape).astype(np.float32)
    model.set_weights(weights)
    path = tmp_path / "m.onnx"
    fnn.onnx.export(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-5)
    back = fnn.onnx.load(path)
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-5, atol=1e-5)
    grouped = [layer.groups for layer in back.layers if isinstance(layer, kind)]
    assert grouped[:2] == [4, 2]


def test_onnx_import_of_a_pytorch_grouped_conv(tmp_path, rng):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    net = torch.nn.Sequential(torch.nn.Conv2d(8, 12, 3, padding=1, groups=4), torch.nn.ReLU(),
                              torch.nn.Conv2d(12, 6, 3, stride=2, groups=3))
    path = tmp_path / "t.onnx"
    xt = torch.tensor(rng.standard_normal((2, 8, 10, 10)), dtype=torch.float32)
    torch.onnx.export(net, (xt,), str(path), dynamo=False, input_names=["x"])
    model = fnn.onnx.load(path)
    want = net(xt).detach().numpy()
    got = model.predict(xt.numpy().transpose(0, 2, 3, 1))     # out in ONNX's (n, c, h, w)
    assert [layer.groups for layer in model.layers if isinstance(layer, fnn.Conv2D)] == [4, 3]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ instruction-set flavours
_FLAVOUR_SCRIPT = """
import numpy as np
import fastnn as fnn
from fastnn.backends import get_backend
fast, ref = get_backend("fast"), get_backend("numpy")
rng = np.random.default_rng(0)
worst = 0.0
for groups, f, c, k, s, p in ((2, 16, 16, 3, 1, 1), (4, 64, 64, 3, 1, 1), (32, 64, 64, 3, 1, 1),
                              (4, 8, 12, 3, 2, 0), (3, 12, 6, 1, 1, 0)):
    x = rng.standard_normal((4, 12, 11, c))
    kernel = rng.standard_normal((k, k, c // groups, f))
    bias = rng.standard_normal(f)
    oh, ow = (12 + 2 * p - k) // s + 1, (11 + 2 * p - k) // s + 1
    dz = rng.standard_normal((4, oh, ow, f))
    outs = []
    for be in (fast, ref):
        y = np.empty((4, oh, ow, f))
        be.conv2d_grouped_forward(x, kernel, bias, (s, s), (1, 1), (p, p), groups, 3, 0.0, y)
        dk, db, dx = np.empty_like(kernel), np.empty_like(bias), np.empty_like(x)
        be.conv2d_grouped_backward(x, kernel, dz, (s, s), (1, 1), (p, p), groups, dk, db, dx)
        outs.append((y, dk, db, dx))
    for a, b in zip(*outs):
        worst = max(worst, float(np.abs(a - b).max() / max(1.0, np.abs(b).max())))
print(fast.kernel_name(), worst)
"""


@pytest.mark.parametrize("flavour", ["generic", "avx2", "avx512"])
def test_every_simd_flavour_matches_the_oracle(flavour):
    from _flavours import run_in_flavour
    words = run_in_flavour(_FLAVOUR_SCRIPT, flavour)
    assert float(words[1]) < 1e-12, words


def test_the_readme_grouped_example_runs(capsys):
    import pathlib
    import re
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    section = text.split("## Convolutional networks\n", 1)[1].split("\n## ", 1)[0]
    blocks = [b for b in re.findall(r"```python\n(.*?)```", section, flags=re.S)
              if "groups=" in b]
    assert len(blocks) == 1
    code = "\n".join(line[2:] for line in blocks[0].splitlines())      # the bullet's indent
    namespace = {"fnn": fnn}
    exec(compile(code, "README.md", "exec"), namespace)
    assert capsys.readouterr().out.strip() == "[(3, 3, 4, 32), (32,)]"
    assert namespace["model"].layers[3].groups == 32


def test_from_torch_maps_grouped_convolutions(rng):
    """fnn.interop.from_torch: nn.Conv1d/2d/3d(groups=G) -> Conv1D/2D/3D(groups=G), float64."""
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(8, 12, 3, padding=1, groups=4), nn.ReLU(),
                        nn.Conv2d(12, 12, 3, stride=2, groups=12), nn.Tanh(),
                        nn.Conv2d(12, 6, 1, groups=3)).double().eval()
    model = fnn.interop.from_torch(net, input_shape=(8, 9, 9))
    assert [layer.groups for layer in model.layers if isinstance(layer, fnn.Conv2D)] == [4, 12, 3]
    x = rng.standard_normal((2, 8, 9, 9))
    want = net(torch.tensor(x)).detach().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(model.predict(x.transpose(0, 2, 3, 1)), want, rtol=0, atol=1e-10)
    net1 = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1, groups=2)).double().eval()
    model1 = fnn.interop.from_torch(net1, input_shape=(4, 11))
    x1 = rng.standard_normal((2, 4, 11))
    want1 = net1(torch.tensor(x1)).detach().numpy().transpose(0, 2, 1)
    np.testing.assert_allclose(model1.predict(x1.transpose(0, 2, 1)), want1, rtol=0, atol=1e-10)
    net3 = nn.Sequential(nn.Conv3d(4, 8, 3, padding=1, groups=4)).double().eval()
    model3 = fnn.interop.from_torch(net3, input_shape=(4, 5, 6, 6))
    assert model3.layers[0].groups == 4
    x3 = rng.standard_normal((2, 4, 5, 6, 6))
    want3 = net3(torch.tensor(x3)).detach().numpy().transpose(0, 2, 3, 4, 1)
    np.testing.assert_allclose(model3.predict(x3.transpose(0, 2, 3, 4, 1)), want3, rtol=0,
                               atol=1e-10)


# ------------------------------------------------------------------------------ Conv3D
CASES_3D = [
    ((5, 6, 6, 4), 8, 3, 1, "same", 1, 2, 2),
    ((6, 7, 5, 8), 8, (2, 3, 2), (2, 1, 2), "valid", 1, 4, 2),
    ((5, 6, 6, 6), 12, 3, 1, "same", (2, 1, 1), 3, 2),
    ((4, 5, 5, 4), 8, (1, 3, 3), 1, "valid", 1, 4, 3),     # one depth tap: no stack
    ((5, 5, 6, 4), 4, 3, 2, "same", 1, 4, 1),               # one channel a group
]
IDS_3D = ["{}-f{}-k{}-s{}-{}-d{}-g{}-n{}".format(*c).replace(" ", "") for c in CASES_3D]


def _triple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("case", CASES_3D, ids=IDS_3D)
def test_conv3d_groups_match_pytorch_forward_and_gradients(case, backend, rng):
    shape, f, k, s, pad, d, groups, n = case
    model = _model(fnn.Conv3D(f, k, strides=s, padding=pad, dilation_rate=d, groups=groups,
                              activation="tanh"), shape, backend)
    kernel, bias = _with_random_bias(model, rng)
    assert kernel.shape == (*_triple(k), shape[-1] // groups, f)
    x = rng.standard_normal((n, *shape))
    y = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dy)
    xt = torch.tensor(x.transpose(0, 4, 1, 2, 3), requires_grad=True)
    kt = torch.tensor(kernel, requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    xp = xt
    if pad == "same":
        pads = _same_pads(x.shape[1:4], _triple(k), _triple(s), _triple(d))
        xp = torch.nn.functional.pad(xt, [p for pair in reversed(pads) for p in pair])
    yt = torch.tanh(torch.nn.functional.conv3d(xp, kt.permute(4, 3, 0, 1, 2), bt,
                                               stride=_triple(s), dilation=_triple(d),
                                               groups=groups))
    yt.backward(torch.tensor(dy.transpose(0, 4, 1, 2, 3)))
    to_last = (0, 2, 3, 4, 1)
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(to_last), rtol=0, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(to_last), rtol=0, atol=1e-10)
    grads = model.layers[0]._grads
    np.testing.assert_allclose(grads[0], kt.grad.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(grads[1], bt.grad.numpy(), rtol=0, atol=1e-10)


def test_conv3d_groups_threads_backends_config_and_onnx(tmp_path, rng):
    layer = lambda: fnn.Conv3D(8, 3, padding="same", groups=4, activation="relu")  # noqa: E731
    x = rng.standard_normal((4, 6, 8, 8, 8)).astype(np.float32)
    dy = rng.standard_normal((4, 6, 8, 8, 8)).astype(np.float32)
    previous = fnn.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            fnn.set_num_threads(threads)
            model = fnn.Sequential([layer()], input_shape=x.shape[1:], seed=0)
            y = model.forward(x, training=True)
            model.zero_grad()
            dx = model.backward(dy)
            runs.append(b"".join(a.tobytes() for a in (y, dx, *model.layers[0]._grads)))
    finally:
        fnn.set_num_threads(previous)
    assert runs[0] == runs[1]
    ref = fnn.Sequential([layer()], input_shape=x.shape[1:], seed=0, backend="numpy")
    np.testing.assert_allclose(ref.predict(x), model.predict(x), rtol=1e-5, atol=1e-5)
    from fastnn.layers import layer_from_config
    config = model.layers[0].get_config()
    assert config["groups"] == 4 and layer_from_config(config).get_config() == config
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "c3.onnx"
    fnn.onnx.export(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-4, atol=1e-4)
    back = fnn.onnx.load(path)
    assert back.layers[0].groups == 4
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs,error,pattern", BAD_GROUPS, ids=[str(r[0]) for r in BAD_GROUPS])
def test_bad_conv3d_groups_are_refused(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        fnn.Conv3D(8, 3, **kwargs)
