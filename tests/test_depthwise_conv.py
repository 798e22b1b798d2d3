"""DepthwiseConv2D/1D and SeparableConv2D/1D: PyTorch parity in float64 (forward, input and
weight gradients; groups=c convolutions with the weights mapped from Keras' layouts), the two
backends against each other, finite differences through a small model, bitwise results at 1
and 2 threads, Keras' own layers, configs and files, learning on the digits, ONNX export."""

import numpy as np
import pytest

import fastnn as fnn
from fastnn.backends import get_backend

torch = pytest.importorskip("torch")

#: (sample shape, kernel_size, strides, padding, dilation_rate, depth_multiplier, batch)
CASES = [
    ((7, 7, 3), 3, 1, "valid", 1, 1, 2),
    ((8, 8, 4), 3, 2, "same", 1, 2, 3),
    ((9, 6, 2), (2, 4), (1, 2), "same", 1, 1, 1),       # even kernel: asymmetric same padding
    ((10, 10, 3), 3, 1, "same", 2, 2, 2),                # dilation
    ((5, 5, 3), 1, 1, "valid", 1, 3, 2),                 # 1x1
    ((12, 11, 2), 5, 2, "same", 1, 1, 4),                # 5x5, odd sizes
    ((6, 8, 5), 4, 3, "same", 1, 2, 1),
    ((9, 9, 1), 3, 2, "valid", (2, 1), 1, 3),
]
IDS = [f"{s[0]}-k{s[1]}-s{s[2]}-{s[3]}-d{s[4]}-m{s[5]}-n{s[6]}".replace(" ", "") for s in CASES]


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


def _torch_depthwise(x, kernel, bias, strides, padding, dilations):
    """PyTorch's groups=c convolution of the NCHW tensor x with a Keras (kh, kw, c, dm) kernel
    (as a tensor needing its gradient): output channel ci*dm + m, as Keras'."""
    kh, kw, c, dm = kernel.shape
    weight = kernel.reshape(kh, kw, c * dm).permute(2, 0, 1).unsqueeze(1)
    if padding == "same":
        (t, b), (left, r) = _same_pads(x.shape[2:], (kh, kw), strides, dilations)
        x = torch.nn.functional.pad(x, (left, r, t, b))
    return torch.nn.functional.conv2d(x, weight, bias, stride=strides, dilation=dilations,
                                      groups=c)


def _model(layer, shape, backend, dtype="float64", seed=0):
    return fnn.Sequential([layer], input_shape=shape, dtype=dtype, backend=backend, seed=seed)


def _with_random_bias(model, rng):
    weights = model.get_weights()
    weights[-1] = rng.standard_normal(weights[-1].shape)
    model.set_weights(weights)
    return model.get_weights()


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_depthwise_matches_pytorch_forward_and_gradients(case, backend, rng):
    shape, k, s, pad, d, dm, n = case
    model = _model(fnn.DepthwiseConv2D(k, strides=s, padding=pad, dilation_rate=d,
                                       depth_multiplier=dm), shape, backend)
    kernel, bias = _with_random_bias(model, rng)
    x = rng.standard_normal((n, *shape))
    y = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dy)
    layer = model.layers[0]

    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    kt = torch.tensor(kernel, requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    yt = _torch_depthwise(xt, kt, bt, _pair(s), pad, _pair(d))
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer._grads[0], kt.grad.numpy(), rtol=0, atol=1e-11)
    np.testing.assert_allclose(layer._grads[1], bt.grad.numpy(), rtol=0, atol=1e-11)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("case", CASES[:6], ids=IDS[:6])
def test_separable_matches_pytorch_forward_and_gradients(case, backend, rng):
    shape, k, s, pad, d, dm, n = case
    model = _model(fnn.SeparableConv2D(5, k, strides=s, padding=pad, dilation_rate=d,
                                       depth_multiplier=dm, activation="tanh"), shape, backend)
    depth, point, bias = _with_random_bias(model, rng)
    x = rng.standard_normal((n, *shape))
    y = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dy)
    grads = model.layers[0]._grads

    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    kt = torch.tensor(depth, requires_grad=True)
    pt = torch.tensor(point, requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    z = _torch_depthwise(xt, kt, None, _pair(s), pad, _pair(d))
    yt = torch.tanh(torch.nn.functional.conv2d(z, pt.permute(3, 2, 0, 1), bt))
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-12)
    for got, want in zip(grads, (kt, pt, bt)):
        np.testing.assert_allclose(got, want.grad.numpy(), rtol=0, atol=1e-11)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("separable", [False, True])
def test_one_d_forms_match_pytorch_conv1d(separable, backend, rng):
    steps, c, dm, k, s = 13, 3, 2, 4, 2
    layer = (fnn.SeparableConv1D(4, k, strides=s, padding="same", depth_multiplier=dm)
             if separable else fnn.DepthwiseConv1D(k, strides=s, padding="same",
                                                   depth_multiplier=dm))
    model = _model(layer, (steps, c), backend)
    weights = _with_random_bias(model, rng)
    x = rng.standard_normal((3, steps, c))
    y = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dy)

    xt = torch.tensor(x.transpose(0, 2, 1), requires_grad=True)
    wt = [torch.tensor(w, requires_grad=True) for w in weights]
    (before, after), = _same_pads((steps,), (k,), (s,), (1,))
    depth = wt[0].reshape(k, c * dm).permute(1, 0).unsqueeze(1)
    z = torch.nn.functional.conv1d(torch.nn.functional.pad(xt, (before, after)), depth,
                                   None if separable else wt[1], stride=s, groups=c)
    yt = torch.nn.functional.conv1d(z, wt[1].permute(2, 1, 0), wt[2]) if separable else z
    yt.backward(torch.tensor(dy.transpose(0, 2, 1)))
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 1), atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 1), atol=1e-12)
    for got, want in zip(model.layers[0]._grads, wt):
        np.testing.assert_allclose(got, want.grad.numpy(), atol=1e-11)
    assert [w.shape for w in model.get_weights()] == (
        [(k, c, dm), (1, c * dm, 4), (4,)] if separable else [(k, c, dm), (c * dm,)])


def _kernel_args(rng, dtype, n=3, shape=(9, 10, 6), k=(3, 2), dm=2, strides=(2, 1),
                 dilations=(1, 2), pads=(1, 1), out=(5, 10)):
    x = rng.standard_normal((n, *shape)).astype(dtype)
    kernel = rng.standard_normal((*k, shape[2], dm)).astype(dtype)
    bias = rng.standard_normal(shape[2] * dm).astype(dtype)
    dz = rng.standard_normal((n, *out, shape[2] * dm)).astype(dtype)
    return x, kernel, bias, dz, strides, dilations, pads


@pytest.mark.parametrize("act", [0, 4, 3, 7, 10])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-13), ("float32", 2e-5)])
def test_compiled_kernels_match_their_numpy_twins(dtype, tol, act, rng):
    fast, ref = get_backend("fast"), get_backend("numpy")
    x, kernel, bias, dz, strides, dilations, pads = _kernel_args(rng, dtype)
    outs = []
    for be in (fast, ref):
        y = np.empty(dz.shape, dtype)
        be.depthwise_conv2d_forward(x, kernel, bias, strides, dilations, pads, act, 0.0, y)
        dk, db, dx = np.empty_like(kernel), np.empty_like(bias), np.empty_like(x)
        be.depthwise_conv2d_backward(x, kernel, dz, strides, dilations, pads, dk, db, dx)
        outs.append((y, dk, db, dx))
    for got, want in zip(*outs):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)


def test_finite_differences_through_a_small_model(rng):
    model = fnn.Sequential([
        fnn.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="tanh"),
        fnn.SeparableConv2D(3, (2, 3), strides=2, padding="same", activation="sigmoid"),
        fnn.DepthwiseConv2D(2, dilation_rate=(1, 2), activation="elu"),
        fnn.Flatten(), fnn.Dense(2)], input_shape=(6, 7, 2), dtype="float64",
        backend="fast", seed=3)
    x = rng.standard_normal((2, 6, 7, 2))
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


@pytest.mark.parametrize("dm", [1, 2])
def test_one_and_two_threads_give_the_same_bits(dm, rng):
    fast = get_backend("fast")
    previous = fnn.get_num_threads()
    x, kernel, bias, _, _, _, _ = _kernel_args(rng, "float32", n=16, shape=(32, 32, 24), k=(3, 3),
                                               dm=dm)
    dz = rng.standard_normal((16, 32, 32, 24 * dm)).astype("float32")
    results = []
    try:
        for threads in (1, 2, 1, 2):
            fnn.set_num_threads(threads)
            y = np.empty(dz.shape, np.float32)
            fast.depthwise_conv2d_forward(x, kernel, bias, (1, 1), (1, 1), (1, 1), 4, 0.0, y)
            dk, db, dx = np.empty_like(kernel), np.empty_like(bias), np.empty_like(x)
            fast.depthwise_conv2d_backward(x, kernel, dz, (1, 1), (1, 1), (1, 1), dk, db, dx)
            results.append(b"".join(a.tobytes() for a in (y, dk, db, dx)))
    finally:
        fnn.set_num_threads(previous)
    assert len(set(results)) == 1


def _digits_images():
    X, y = fnn.datasets.load_digits(return_images=True)
    return (X / 16.0)[..., None], y


def test_training_is_bitwise_the_same_at_one_and_two_threads():
    X, y = _digits_images()
    previous = fnn.get_num_threads()
    weights = []
    try:
        for threads in (1, 2):
            fnn.set_num_threads(threads)
            model = fnn.Sequential([
                fnn.Conv2D(8, 3, padding="same", activation="relu"),
                fnn.SeparableConv2D(16, 3, padding="same", depth_multiplier=2,
                                    activation="relu"),
                fnn.DepthwiseConv2D(3, strides=2, activation="relu"),
                fnn.Flatten(), fnn.Dense(10, activation="softmax")],
                input_shape=(8, 8, 1), seed=1)
            model.compile("cross_entropy", fnn.Adam(learning_rate=0.01))
            model.fit(X[:512], y[:512], epochs=1, batch_size=64, verbose=0)
            weights.append(b"".join(w.tobytes() for w in model.get_weights()))
    finally:
        fnn.set_num_threads(previous)
    assert weights[0] == weights[1]


def test_a_separable_cnn_learns_the_digits():
    X, y = _digits_images()
    model = fnn.Sequential([
        fnn.Conv2D(16, 3, padding="same", activation="relu"),
        fnn.SeparableConv2D(32, 3, padding="same", activation="relu"),
        fnn.MaxPooling2D(),
        fnn.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu"),
        fnn.GlobalAveragePooling2D(), fnn.Dense(10, activation="softmax")],
        input_shape=(8, 8, 1), seed=0)
    model.compile("cross_entropy", fnn.Adam(learning_rate=0.01), metrics=["accuracy"])
    model.fit(X[:1400], y[:1400], epochs=15, batch_size=32, verbose=0)
    accuracy = model.evaluate(X[1400:], y[1400:], verbose=0)["accuracy"]
    assert accuracy >= 0.9, accuracy


KERAS_LAYERS = [
    ("DepthwiseConv2D", dict(kernel_size=3, strides=2, padding="same", depth_multiplier=2,
                             activation="relu"), (9, 8, 3)),
    ("DepthwiseConv2D", dict(kernel_size=(2, 3), dilation_rate=2, use_bias=False), (9, 8, 3)),
    ("SeparableConv2D", dict(filters=5, kernel_size=3, padding="same", depth_multiplier=2,
                             activation="tanh"), (8, 8, 3)),
    ("SeparableConv2D", dict(filters=4, kernel_size=4, strides=2, padding="same"), (9, 7, 2)),
    ("DepthwiseConv1D", dict(kernel_size=3, padding="same", depth_multiplier=3), (11, 4)),
    ("SeparableConv1D", dict(filters=6, kernel_size=5, strides=2, activation="relu"), (16, 3)),
]


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("kind,kwargs,shape", KERAS_LAYERS,
                         ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(KERAS_LAYERS)])
def test_keras_gives_the_same_outputs_for_the_same_weights(keras, kind, kwargs, shape, backend,
                                                          rng):
    ours = _model(getattr(fnn, kind)(**kwargs), shape, backend, dtype="float32", seed=4)
    theirs = getattr(keras.layers, kind)(**kwargs)
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    theirs(x)
    assert [w.shape for w in theirs.get_weights()] == [w.shape for w in ours.get_weights()]
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours.predict(x), np.asarray(theirs(x)), rtol=1e-5, atol=1e-5)


def test_config_weights_and_files_round_trip(tmp_path, rng):
    model = fnn.Sequential([
        fnn.DepthwiseConv2D((3, 2), strides=(2, 1), padding="same", depth_multiplier=2,
                            activation="leaky_relu", depthwise_initializer="he_normal",
                            bias_initializer="ones", depthwise_regularizer=fnn.regularizers.L2(
                                1e-3), name="dw"),
        fnn.SeparableConv2D(4, 3, dilation_rate=(1, 2), use_bias=False, activation="softmax",
                            pointwise_initializer="glorot_normal"),
        fnn.Reshape((-1, 4)),
        fnn.SeparableConv1D(3, 2, padding="same"),
        fnn.DepthwiseConv1D(2, activation="step"),
        fnn.Flatten(), fnn.Dense(2)], input_shape=(9, 9, 3), seed=5)
    model.compile("mse", fnn.Adam())
    x = rng.standard_normal((4, 9, 9, 3)).astype(np.float32)
    model.fit(x, rng.standard_normal((4, 2)), epochs=1, verbose=0)
    path = tmp_path / "dw.fnn"
    model.save(path)
    back = fnn.load(path)
    assert [layer.get_config() for layer in back.layers] == [
        layer.get_config() for layer in model.layers]
    assert [w.tobytes() for w in back.get_weights()] == [w.tobytes() for w in model.get_weights()]
    assert back.predict(x).tobytes() == model.predict(x).tobytes()
    config = model.layers[0].get_config()
    assert config["depth_multiplier"] == 2 and config["alpha"] == model.layers[0].param
    assert config["depthwise_initializer"]["class_name"] == "HeNormal"
    assert "pointwise_initializer" in model.layers[1].get_config()
    rebuilt = fnn.layers.layer_from_config(config)
    assert rebuilt.get_config() == config
    # set_weights / get_weights, and a wrong shape refused by name
    weights = [rng.standard_normal(w.shape) for w in model.layers[1].get_weights()]
    model.layers[1].set_weights(weights)
    for got, want in zip(model.layers[1].get_weights(), weights):
        np.testing.assert_array_equal(got, want.astype(np.float32))
    with pytest.raises(ValueError, match="pointwise_kernel"):
        model.layers[1].set_weights([weights[0], weights[1][..., :2]])
    assert model.layers[0].count_params() == 3 * 2 * 3 * 2 + 6
    text = []
    model.summary(print_fn=text.append)
    assert any("DepthwiseConv2D" in line and "42" in line for line in text), text


def test_the_inference_plan_runs_them_and_predicts_the_same(rng):
    from fastnn.backends.fast_backend import InferPlan
    model = fnn.Sequential([fnn.Conv2D(4, 3, activation="relu"),
                            fnn.SeparableConv2D(6, 3, activation="relu"),
                            fnn.DepthwiseConv2D(2, depth_multiplier=2), fnn.Flatten(),
                            fnn.Dense(3)], input_shape=(8, 8, 2), seed=0)
    assert isinstance(model._forward_plan, InferPlan)
    x = rng.standard_normal((5, 8, 8, 2)).astype(np.float32)
    assert model._forward_plan.predict(x) is not None
    np.testing.assert_array_equal(model.predict(x), model.forward(x, training=False))
    np.testing.assert_array_equal(model.predict(x[:1]), model.forward(x[:1], training=False))


@pytest.mark.parametrize("kind", ["DepthwiseConv2D", "SeparableConv2D", "DepthwiseConv1D",
                                  "SeparableConv1D"])
def test_onnx_export_matches_onnxruntime(kind, tmp_path, rng):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    rank = 1 if kind.endswith("1D") else 2
    shape = (21, 3) if rank == 1 else (13, 12, 3)
    extra = {"filters": 5} if kind.startswith("Separable") else {}
    model = fnn.Sequential([getattr(fnn, kind)(kernel_size=4, strides=2, padding="same",
                                               depth_multiplier=2, activation="relu", **extra),
                            getattr(fnn, kind)(kernel_size=3, dilation_rate=2, **extra)],
                           input_shape=shape, seed=0)
    weights = _with_random_bias(model, rng)
    model.set_weights(weights)
    path = tmp_path / "m.onnx"
    fnn.onnx.export(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-5)


BAD_KERNEL_CALLS = [
    ("x_channels", lambda x, k, b, y: (np.ascontiguousarray(x[..., :5]), k, b, y),
     r"shapes do not match"),
    ("y_channels", lambda x, k, b, y: (x, k, b, np.ascontiguousarray(y[..., :3])),
     r"shapes do not match"),
    ("batch", lambda x, k, b, y: (x, k, b, y[:2]), r"same batch"),
    ("bias", lambda x, k, b, y: (x, k, b[:4], y), r"bias must have 12 values"),
]


@pytest.mark.parametrize("name,change,pattern", BAD_KERNEL_CALLS,
                         ids=[c[0] for c in BAD_KERNEL_CALLS])
def test_the_compiled_kernels_refuse_mismatched_shapes(name, change, pattern, rng):
    fast = get_backend("fast")
    x, kernel, bias, dz, strides, dilations, pads = _kernel_args(rng, "float64")
    y = np.empty(dz.shape)
    args = change(x, kernel, bias, y)
    with pytest.raises(ValueError, match=pattern):
        fast.depthwise_conv2d_forward(args[0], args[1], args[2], strides, dilations, pads, 0,
                                      0.0, args[3])
    with pytest.raises(ValueError, match="activation code 6"):
        fast.depthwise_conv2d_forward(x, kernel, bias, strides, dilations, pads, 6, 0.0, y)
    with pytest.raises(ValueError, match="dkernel must be shaped"):
        fast.depthwise_conv2d_backward(x, kernel, dz, strides, dilations, pads, kernel[:1].copy(),
                                       bias.copy(), None)


_FLAVOUR_SCRIPT = """
import hashlib, sys
import numpy as np
from fastnn.backends import get_backend
fb = get_backend("fast")
rng = np.random.default_rng(0)
h = hashlib.sha1()
for dtype in ("float32", "float64"):
    for dm, channels in ((2, 37), (1, 64), (3, 5)):
        x = rng.standard_normal((3, 9, 10, channels)).astype(dtype)
        kernel = rng.standard_normal((3, 2, channels, dm)).astype(dtype)
        bias = rng.standard_normal(channels * dm).astype(dtype)
        y = np.empty((3, 5, 10, channels * dm), dtype)
        dz = rng.standard_normal(y.shape).astype(dtype)
        fb.depthwise_conv2d_forward(x, kernel, bias, (2, 1), (1, 2), (1, 1), 3, 0.0, y)
        dk, db, dx = np.empty_like(kernel), np.empty_like(bias), np.empty_like(x)
        fb.depthwise_conv2d_backward(x, kernel, dz, (2, 1), (1, 2), (1, 1), dk, db, dx)
        for a in (y, dk, db, dx):
            h.update(a.tobytes())
print(fb.kernel_name(), h.hexdigest())
"""


def test_every_simd_flavour_gives_the_same_bits():
    """No fused multiply-adds and one summation order: the portable build and the flavour this
    CPU runs agree bit for bit (blocks of vectors, single vectors and the scalar rest)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fnn.__file__)))
    outs = {}
    for flavour in ("generic", get_backend("fast").kernel_name()):
        done = subprocess.run([sys.executable, "-c", _FLAVOUR_SCRIPT], capture_output=True,
                              text=True, env=dict(env, FASTNN_KERNEL=flavour), timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        name, digest = done.stdout.split()
        outs[name] = digest
    assert len(set(outs.values())) == 1, outs
