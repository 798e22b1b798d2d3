"""Conv3D, MaxPooling3D, AveragePooling3D, GlobalMax/AveragePooling3D: PyTorch parity in float64
(forward, input and weight gradients across strides, padding, dilation and odd or size-1
shapes), finite differences on both backends, the compiled backend against the NumPy one,
bitwise results at 1 and 2 threads, Keras' own layers on the same weights, configs and files,
forged configs, and a small 3-D CNN that learns to tell bars' orientations apart."""

import json

import numpy as np
import pytest

import fastnn as fnn
from fastnn.layers.convolutional3d import depth_ranges

torch = pytest.importorskip("torch")
F = torch.nn.functional

#: (sample shape (d, h, w, c), filters, kernel_size, strides, padding, dilation_rate, batch)
CASES = [
    ((5, 6, 7, 2), 4, 3, 1, "same", 1, 2),
    ((5, 4, 7, 3), 3, (2, 3, 1), (2, 1, 3), "valid", 1, 3),
    ((6, 5, 5, 2), 5, (3, 2, 2), (2, 2, 1), "same", (2, 1, 2), 2),
    ((3, 3, 3, 2), 2, 1, 1, "valid", 1, 2),                  # 1x1x1: no depth stack
    ((1, 5, 4, 1), 3, (1, 3, 2), 1, "valid", 1, 2),          # a depth of 1
    ((4, 1, 1, 3), 2, 3, 1, "same", 1, 3),                   # a 1x1 plane
    ((7, 6, 5, 1), 2, (4, 3, 2), (3, 2, 2), "same", 1, 1),   # even kernels: asymmetric same
    ((9, 5, 6, 2), 3, (3, 1, 3), (1, 1, 2), "valid", (3, 1, 1), 2),
    ((4, 4, 4, 2), 2, (1, 1, 1), (2, 2, 2), "valid", 1, 2),  # 1x1x1 strided: a depth stack
    ((5, 3, 4, 2), 6, (5, 3, 4), 1, "same", 1, 1),           # the kernel spans the input
]
IDS = [f"{c[0]}-f{c[1]}-k{c[2]}-s{c[3]}-{c[4]}-d{c[5]}-n{c[6]}".replace(" ", "") for c in CASES]


def _triple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)


def _pads(spatial, window, strides, dilations, padding):
    """Keras' padding per axis: (before, after), the odd one after; none for 'valid'."""
    out = []
    for size, k, s, d in zip(spatial, window, strides, dilations):
        if padding == "valid":
            out.append((0, 0))
            continue
        span = (k - 1) * d + 1
        total = max((-(-size // s) - 1) * s + span - size, 0)
        out.append((total // 2, total - total // 2))
    return out


def _torch_pad(x, pads, value=0.0):
    (f, bk), (t, b), (left, r) = pads
    return F.pad(x, (left, r, t, b, f, bk), value=value)


def _ncdhw(a):
    return a.transpose(0, 4, 1, 2, 3)


def _ndhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 4, 1)


def _model(layers, shape, backend, dtype="float64", seed=0):
    layers = layers if isinstance(layers, list) else [layers]
    return fnn.Sequential(layers, input_shape=shape, dtype=dtype, backend=backend, seed=seed)


# ---------------------------------------------------------------------------- Conv3D parity
@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv3d_matches_pytorch_forward_and_gradients(case, backend, rng):
    shape, f, k, s, pad, d, n = case
    act = "tanh" if len(IDS[CASES.index(case)]) % 2 else None
    model = _model(fnn.Conv3D(f, k, strides=s, padding=pad, dilation_rate=d, activation=act),
                   shape, backend)
    kernel, _ = model.get_weights()
    bias = rng.standard_normal(f)
    model.set_weights([kernel, bias])
    x = rng.standard_normal((n, *shape))
    y = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dy)
    layer = model.layers[0]

    xt = torch.tensor(_ncdhw(x), requires_grad=True)
    kt = torch.tensor(kernel, requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    pads = _pads(shape[:3], layer.kernel_size, layer.strides, layer.dilation_rate, pad)
    yt = F.conv3d(_torch_pad(xt, pads), kt.permute(4, 3, 0, 1, 2), bt, stride=_triple(s),
                  dilation=_triple(d))
    if act == "tanh":
        yt = torch.tanh(yt)
    yt.backward(torch.tensor(_ncdhw(dy)))
    assert y.shape == (n, *yt.shape[2:], f)
    np.testing.assert_allclose(y, _ndhwc(yt), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, _ndhwc(xt.grad), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer._grads[0], kt.grad.numpy(), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(layer._grads[1], bt.grad.numpy(), rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_conv3d_without_bias_and_with_relu(backend, rng):
    shape = (4, 5, 6, 3)
    model = _model(fnn.Conv3D(4, (2, 3, 3), padding="same", use_bias=False, activation="relu"),
                   shape, backend)
    (kernel,) = model.get_weights()
    x = rng.standard_normal((2, *shape))
    y = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dy)
    xt = torch.tensor(_ncdhw(x), requires_grad=True)
    kt = torch.tensor(kernel, requires_grad=True)
    yt = torch.relu(F.conv3d(_torch_pad(xt, _pads(shape[:3], (2, 3, 3), (1,) * 3, (1,) * 3,
                                                   "same")), kt.permute(4, 3, 0, 1, 2)))
    yt.backward(torch.tensor(_ncdhw(dy)))
    np.testing.assert_allclose(y, _ndhwc(yt), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, _ndhwc(xt.grad), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.layers[0]._grads[0], kt.grad.numpy(), rtol=1e-10,
                               atol=1e-11)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[3], CASES[8]],
                         ids=[IDS[0], IDS[2], IDS[3], IDS[8]])
def test_conv3d_in_chunks_of_samples_matches_the_whole_batch(case, backend, rng, monkeypatch):
    """A scratch budget of a sample or two: the batch runs in chunks, the kernel and bias
    gradients summed over them, with the same results (to rounding) as in one pass."""
    from fastnn.layers import convolutional3d
    shape, f, k, s, pad, d, _ = case
    x = rng.standard_normal((7, *shape))
    dy = None
    outs, chunks = [], []
    default = convolutional3d.SCRATCH_VALUES
    for budget in (convolutional3d.SCRATCH_VALUES, 1, None):
        if budget is None:        # about 3 samples' worth
            budget = 3 * (default // chunks[0])
        monkeypatch.setattr(convolutional3d, "SCRATCH_VALUES", budget)
        model = _model(fnn.Conv3D(f, k, strides=s, padding=pad, dilation_rate=d,
                                  activation="tanh"), shape, backend)
        y = model.forward(x, training=True)
        dy = rng.standard_normal(y.shape) if dy is None else dy
        model.zero_grad()
        dx = model.backward(dy)
        outs.append([y.copy(), dx.copy(), *[g.copy() for g in model.layers[0]._grads]])
        chunks.append(model.layers[0]._chunk())
    assert chunks[0] >= 7 and chunks[1] == 1
    assert chunks[2] < 7 or model.layers[0]._direct          # a 1x1x1 kernel needs no scratch
    for other in outs[1:]:
        for got, want in zip(other, outs[0]):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("size,kd,stride,dilation,front", [
    (5, 3, 1, 1, 1), (6, 3, 2, 2, 2), (4, 1, 2, 1, 0), (1, 3, 1, 1, 1), (7, 4, 3, 1, 1)])
def test_depth_ranges_cover_exactly_the_taps_inside_the_input(size, kd, stride, dilation, front):
    out = -(-size // stride) if front else (size - (kd - 1) * dilation - 1) // stride + 1
    for kz, (lo, hi, first) in enumerate(depth_ranges(size, out, kd, stride, dilation, front)):
        inside = [p for p in range(out) if 0 <= p * stride + kz * dilation - front < size]
        assert list(range(lo, hi)) == inside
        if inside:
            assert first == lo * stride + kz * dilation - front


# ---------------------------------------------------------------------------- pooling parity
POOLS = [
    ((4, 6, 6, 2), 2, None, "valid", 2),
    ((5, 7, 6, 3), (2, 3, 2), (1, 2, 2), "valid", 2),
    ((5, 7, 6, 2), (3, 2, 2), (2, 2, 1), "same", 3),
    ((3, 4, 5, 1), (2, 2, 3), None, "same", 2),
    ((1, 4, 4, 2), (1, 2, 2), None, "valid", 2),              # a depth of 1
    ((6, 1, 1, 2), (3, 1, 1), (2, 1, 1), "same", 1),
    ((4, 4, 4, 2), 3, 1, "same", 2),                          # overlapping windows
]
POOL_IDS = [f"{p[0]}-p{p[1]}-s{p[2]}-{p[3]}".replace(" ", "") for p in POOLS]


def _torch_pool(mode, xt, pool, strides, pads):
    if mode == "max":
        return F.max_pool3d(_torch_pad(xt, pads, -np.inf), pool, strides)
    total = F.avg_pool3d(_torch_pad(xt, pads), pool, strides, divisor_override=1)
    ones = torch.ones_like(xt[:1, :1])
    count = F.avg_pool3d(_torch_pad(ones, pads), pool, strides, divisor_override=1)
    return total / count


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("case", POOLS, ids=POOL_IDS)
def test_pooling3d_matches_pytorch_forward_and_gradient(case, mode, backend, rng):
    shape, pool, strides, pad, n = case
    cls = fnn.MaxPooling3D if mode == "max" else fnn.AveragePooling3D
    model = _model(cls(pool, strides=strides, padding=pad), shape, backend)
    layer = model.layers[0]
    x = rng.standard_normal((n, *shape))
    y = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    xt = torch.tensor(_ncdhw(x), requires_grad=True)
    pads = _pads(shape[:3], layer.pool_size, layer.strides, (1, 1, 1), pad)
    yt = _torch_pool(mode, xt, layer.pool_size, layer.strides, pads)
    yt.backward(torch.tensor(_ncdhw(dy)))
    assert y.shape == (n, *yt.shape[2:], shape[-1])
    np.testing.assert_allclose(y, _ndhwc(yt), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, _ndhwc(xt.grad), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling3d_matches_pytorch(mode, keepdims, backend, rng):
    shape = (3, 4, 5, 3)
    cls = fnn.GlobalMaxPooling3D if mode == "max" else fnn.GlobalAveragePooling3D
    model = _model(cls(keepdims=keepdims), shape, backend)
    x = rng.standard_normal((2, *shape))
    y = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = xt.amax(dim=(1, 2, 3), keepdim=keepdims) if mode == "max" else xt.mean(
        dim=(1, 2, 3), keepdim=keepdims)
    yt.backward(torch.tensor(dy))
    assert y.shape == ((2, 1, 1, 1, 3) if keepdims else (2, 3))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------- gradients, twins
def _small_cnn(backend, dtype="float64", seed=3):
    return fnn.Sequential([
        fnn.Conv3D(3, (2, 3, 3), padding="same", activation="tanh"),
        fnn.MaxPooling3D((2, 2, 1), padding="same"),
        fnn.Conv3D(4, 2, strides=(1, 2, 1), dilation_rate=(1, 1, 2), activation="sigmoid"),
        fnn.AveragePooling3D((1, 2, 2), strides=1, padding="same"),
        fnn.Conv3D(2, 1, activation="elu"),
        fnn.GlobalMaxPooling3D(keepdims=True), fnn.Flatten(), fnn.Dense(2)],
        input_shape=(3, 6, 7, 2), dtype=dtype, backend=backend, seed=seed)


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_finite_differences_through_a_small_3d_cnn(backend, rng):
    model = _small_cnn(backend)
    x = rng.standard_normal((2, 3, 6, 7, 2))
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
            plus, minus = [v.copy() for v in weights], [v.copy() for v in weights]
            plus[i].flat[j] += eps
            minus[i].flat[j] -= eps
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            assert abs(numeric - grads[i].flat[j]) < 1e-7 * max(1.0, abs(numeric)), (i, j)
    model.set_weights(weights)
    for j in rng.choice(x.size, 10, replace=False):
        xp, xm = x.copy(), x.copy()
        xp.flat[j] += eps
        xm.flat[j] -= eps
        numeric = (loss(xs=xp) - loss(xs=xm)) / (2 * eps)
        assert abs(numeric - dx.flat[j]) < 1e-7 * max(1.0, abs(numeric)), j


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-4)])
def test_the_compiled_backend_matches_the_numpy_one(dtype, tol, rng):
    x = rng.standard_normal((3, 3, 6, 7, 2)).astype(dtype)
    r = rng.standard_normal((3, 2)).astype(dtype)
    outs = []
    for backend in ("fast", "numpy"):
        model = _small_cnn(backend, dtype)
        y = model.forward(x, training=True)
        model.zero_grad()
        dx = model.backward(r)
        outs.append([y, dx, *[g.copy() for layer in model.layers for g in layer._grads]])
    for got, want in zip(*outs):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_one_and_two_threads_give_the_same_bits(rng):
    x = rng.standard_normal((8, 8, 12, 12, 6)).astype(np.float32)
    previous = fnn.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 1, 2):
            fnn.set_num_threads(threads)
            model = fnn.Sequential([
                fnn.Conv3D(16, 3, padding="same", activation="relu"),
                fnn.MaxPooling3D(),
                fnn.Conv3D(8, (3, 2, 2), strides=(1, 2, 2), activation="tanh"),
                fnn.AveragePooling3D((2, 1, 1), padding="same"),
                fnn.GlobalAveragePooling3D(), fnn.Dense(3)], input_shape=x.shape[1:], seed=2)
            y = model.forward(x, training=True)
            model.zero_grad()
            dx = model.backward(np.ones_like(y))
            grads = [g.tobytes() for layer in model.layers for g in layer._grads]
            results.append(b"".join([y.tobytes(), dx.tobytes(), *grads]))
    finally:
        fnn.set_num_threads(previous)
    assert len(set(results)) == 1


def test_training_is_bitwise_the_same_at_one_and_two_threads(rng):
    X, y = _bars(rng, 96)
    previous = fnn.get_num_threads()
    weights = []
    try:
        for threads in (1, 2):
            fnn.set_num_threads(threads)
            model = _bars_model(seed=1)
            model.fit(X, y, epochs=1, batch_size=32, verbose=0)
            weights.append(b"".join(w.tobytes() for w in model.get_weights()))
    finally:
        fnn.set_num_threads(previous)
    assert weights[0] == weights[1]


# ---------------------------------------------------------------------------- learning
def _bars(rng, n, size=8):
    """Volumes holding one noisy bar along depth, height or width (the class), at a random
    place and length, in noise."""
    X = rng.normal(0.0, 0.3, (n, size, size, size, 1))
    y = rng.integers(0, 3, n)
    for i in range(n):
        length = rng.integers(4, size + 1)
        start = rng.integers(0, size - length + 1)
        a, b = rng.integers(0, size, 2)
        line = slice(start, start + length)
        index = [(line, a, b), (a, line, b), (a, b, line)][y[i]]
        X[(i, *index, 0)] += 1.0
    return X.astype(np.float32), y


def _bars_model(seed=0, backend="fast"):
    model = fnn.Sequential([
        fnn.Conv3D(8, 3, padding="same", activation="relu"),
        fnn.MaxPooling3D(),
        fnn.Conv3D(16, 3, padding="same", activation="relu"),
        fnn.GlobalMaxPooling3D(), fnn.Dense(3, activation="softmax")],
        input_shape=(8, 8, 8, 1), seed=seed, backend=backend)
    model.compile("cross_entropy", fnn.Adam(learning_rate=0.01), metrics=["accuracy"])
    return model


def test_a_3d_cnn_learns_which_way_the_bar_points(rng):
    X, y = _bars(rng, 900)
    model = _bars_model()
    model.fit(X[:600], y[:600], epochs=20, batch_size=32, verbose=0)
    accuracy = model.evaluate(X[600:], y[600:], verbose=0)["accuracy"]
    assert accuracy >= 0.9, accuracy          # 0.33 by chance


# ---------------------------------------------------------------------------- Keras, files
KERAS_LAYERS = [
    ("Conv3D", dict(filters=4, kernel_size=3, padding="same", activation="relu"), (5, 6, 7, 2)),
    ("Conv3D", dict(filters=3, kernel_size=(2, 3, 2), strides=(2, 1, 2), use_bias=False),
     (6, 5, 7, 3)),
    ("Conv3D", dict(filters=2, kernel_size=(3, 2, 2), dilation_rate=(2, 1, 2), padding="same",
                    activation="tanh"), (7, 5, 6, 2)),
    ("MaxPooling3D", dict(pool_size=(2, 3, 2), strides=(1, 2, 2), padding="same"),
     (5, 7, 6, 2)),
    ("AveragePooling3D", dict(pool_size=2, padding="same"), (5, 7, 6, 2)),
    ("GlobalMaxPooling3D", dict(), (3, 4, 5, 2)),
    ("GlobalAveragePooling3D", dict(keepdims=True), (3, 4, 5, 2)),
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
    if ours.get_weights():
        theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours.predict(x), np.asarray(theirs(x)), rtol=1e-5, atol=1e-5)


def test_a_keras_model_gives_the_same_outputs_for_the_same_weights(keras, rng):
    shape = (6, 8, 8, 2)
    ours = fnn.Sequential([
        fnn.Conv3D(4, 3, padding="same", activation="relu"), fnn.MaxPooling3D(),
        fnn.Conv3D(6, (2, 3, 3), activation="tanh"), fnn.AveragePooling3D((1, 2, 2)),
        fnn.GlobalAveragePooling3D(), fnn.Dense(3, activation="softmax")],
        input_shape=shape, seed=6)
    theirs = keras.Sequential([
        keras.Input(shape), keras.layers.Conv3D(4, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling3D(), keras.layers.Conv3D(6, (2, 3, 3), activation="tanh"),
        keras.layers.AveragePooling3D((1, 2, 2)), keras.layers.GlobalAveragePooling3D(),
        keras.layers.Dense(3, activation="softmax")])
    theirs.set_weights(ours.get_weights())
    x = rng.standard_normal((4, *shape)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x), np.asarray(theirs(x)), rtol=1e-5, atol=1e-6)


def test_config_weights_and_files_round_trip(tmp_path, rng):
    model = fnn.Sequential([
        fnn.Conv3D(3, (3, 2, 2), strides=(2, 1, 1), padding="same", activation="leaky_relu",
                   kernel_initializer="he_normal", bias_initializer="ones",
                   kernel_regularizer=fnn.regularizers.L2(1e-3), name="c3"),
        fnn.MaxPool3D((1, 2, 2)), fnn.AvgPool3D(2, strides=1, padding="same"),
        fnn.Convolution3D(2, 1, use_bias=False, dilation_rate=2),
        fnn.GlobalMaxPool3D(keepdims=True), fnn.GlobalAvgPool3D(), fnn.Dense(2)],
        input_shape=(5, 6, 6, 2), seed=5)
    model.compile("mse", fnn.Adam())
    x = rng.standard_normal((4, 5, 6, 6, 2)).astype(np.float32)
    model.fit(x, rng.standard_normal((4, 2)), epochs=1, verbose=0)
    path = tmp_path / "c3.fnn"
    model.save(path)
    back = fnn.load(path)
    assert [type(layer).__name__ for layer in back.layers] == [
        "Conv3D", "MaxPooling3D", "AveragePooling3D", "Conv3D", "GlobalMaxPooling3D",
        "GlobalAveragePooling3D", "Dense"]
    assert [layer.get_config() for layer in back.layers] == [
        layer.get_config() for layer in model.layers]
    assert [w.tobytes() for w in back.get_weights()] == [w.tobytes() for w in model.get_weights()]
    assert back.predict(x).tobytes() == model.predict(x).tobytes()
    config = model.layers[0].get_config()
    assert config["kernel_size"] == [3, 2, 2] and config["strides"] == [2, 1, 1]
    assert fnn.layers.layer_from_config(config).get_config() == config
    assert model.layers[0].count_params() == 3 * 2 * 2 * 2 * 3 + 3
    with pytest.raises(ValueError, match="kernel"):
        model.layers[0].set_weights([np.ones((3, 2, 2, 2, 2)), np.ones(3)])


@pytest.mark.parametrize("change,exc,pattern", [
    (dict(kernel_size=[3, 3]), ValueError, r"kernel_size"),
    (dict(kernel_size=[3, 3, 2**40]), ValueError, r"kernel_size"),
    (dict(filters=2**40), ValueError, r"filters"),
    (dict(filters=-1), ValueError, r"filters=-1"),
    (dict(strides=[1, 0, 1]), ValueError, r"strides"),
    (dict(padding="full"), ValueError, r"padding='full'"),
    (dict(dilation_rate="2"), (TypeError, ValueError), r"dilation_rate"),
    (dict(activation=[1]), (TypeError, ValueError), r"activation"),
])
def test_forged_conv3d_configs_are_refused_by_name(change, exc, pattern):
    config = fnn.Conv3D(2, 3).get_config()
    config.update(change)
    with pytest.raises(exc, match=pattern):
        fnn.layers.layer_from_config(json.loads(json.dumps(config)))


@pytest.mark.parametrize("change,exc,pattern", [
    (dict(pool_size=[2, 2]), ValueError, r"pool_size"),
    (dict(pool_size=[2, 2, 2**40]), ValueError, r"pool_size"),
    (dict(strides=[1, 1, -1]), ValueError, r"strides"),
    (dict(padding=None), ValueError, r"padding"),
])
def test_forged_pooling3d_configs_are_refused_by_name(change, exc, pattern):
    config = fnn.MaxPooling3D().get_config()
    config.update(change)
    with pytest.raises(exc, match=pattern):
        fnn.layers.layer_from_config(json.loads(json.dumps(config)))


def test_a_huge_padded_window_is_refused_before_allocation():
    with pytest.raises(ValueError, match="more than twice the input"):
        fnn.Sequential([fnn.Conv3D(1, (5000, 1, 1), padding="same")], input_shape=(4, 4, 4, 1))
    with pytest.raises(ValueError, match="more than twice the input"):
        fnn.Sequential([fnn.MaxPooling3D((1, 5000, 1), padding="same")],
                       input_shape=(4, 4, 4, 1))


def test_the_inference_plan_falls_back_and_predicts_the_same(rng):
    from fastnn.models import inference
    model = _bars_model()
    assert inference.compile(model) is None
    x = rng.standard_normal((5, 8, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), model.forward(x, training=False))
    np.testing.assert_array_equal(model.predict(x[:1]), model.forward(x[:1], training=False))


# ---------------------------------------------------------------------------- reshaping, dropout
RESHAPES = [
    ("UpSampling3D", dict(size=(2, 1, 3)), (2, 3, 2, 2)),
    ("UpSampling3D", dict(size=2), (1, 2, 3, 1)),
    ("ZeroPadding3D", dict(padding=((1, 0), (0, 2), (1, 1))), (2, 3, 2, 2)),
    ("ZeroPadding3D", dict(padding=(2, 0, 1)), (1, 1, 3, 2)),
    ("ZeroPadding3D", dict(padding=1), (3, 2, 2, 1)),
    ("Cropping3D", dict(cropping=((1, 0), (0, 2), (1, 1))), (3, 4, 4, 2)),
    ("Cropping3D", dict(cropping=(0, 1, 2)), (2, 3, 5, 1)),
    ("Cropping3D", dict(cropping=1), (3, 3, 3, 2)),
]
RESHAPE_IDS = [f"{k}-{i}" for i, (k, _, _) in enumerate(RESHAPES)]


def _torch_reshape(kind, kwargs, layer, xt):
    if kind == "UpSampling3D":
        return F.interpolate(xt, scale_factor=layer.size, mode="nearest")
    (f, bk), (t, b), (left, r) = layer.pairs
    if kind == "ZeroPadding3D":
        return F.pad(xt, (left, r, t, b, f, bk))
    d, h, w = xt.shape[2:]
    return xt[:, :, f:d - bk, t:h - b, left:w - r]


@pytest.mark.parametrize("backend", ["numpy", "fast"])
@pytest.mark.parametrize("kind,kwargs,shape", RESHAPES, ids=RESHAPE_IDS)
def test_reshaping3d_matches_pytorch_forward_and_gradient(kind, kwargs, shape, backend, rng):
    model = _model(getattr(fnn, kind)(**kwargs), shape, backend)
    x = rng.standard_normal((3, *shape))
    y = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    xt = torch.tensor(_ncdhw(x), requires_grad=True)
    yt = _torch_reshape(kind, kwargs, model.layers[0], xt)
    yt.backward(torch.tensor(_ncdhw(dy)))
    assert y.shape == (3, *yt.shape[2:], shape[-1])
    np.testing.assert_allclose(y, _ndhwc(yt), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, _ndhwc(xt.grad), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind,kwargs,shape", RESHAPES, ids=RESHAPE_IDS)
def test_reshaping3d_backends_agree_bitwise_and_keras_agrees(keras, kind, kwargs, shape, rng):
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    outs = []
    for backend in ("numpy", "fast"):
        model = _model(getattr(fnn, kind)(**kwargs), shape, backend, dtype="float32")
        y = model.forward(x, training=True)
        outs.append((y.copy(), model.backward(np.ones_like(y) + y).copy()))
    assert outs[0][0].tobytes() == outs[1][0].tobytes()
    assert outs[0][1].tobytes() == outs[1][1].tobytes()
    np.testing.assert_array_equal(outs[0][0], np.asarray(getattr(keras.layers, kind)(**kwargs)(x)))
    config = model.layers[0].get_config()
    assert fnn.layers.layer_from_config(config).get_config() == config


@pytest.mark.parametrize("kind,value,pattern", [
    ("ZeroPadding3D", (1, 1), r"padding must be an int, a triple"),
    ("ZeroPadding3D", ((1, 1), (1, 1)), r"padding must be an int, a triple"),
    ("ZeroPadding3D", -1, r"padding=-1"),
    ("Cropping3D", (1, 2, 3, 4), r"cropping must be an int, a triple"),
    ("Cropping3D", ((1, 1), (1, 1), (1, "a")), r"cropping"),
    ("UpSampling3D", (2, 2), r"size must be an integer or a tuple of 3 integers"),
    ("UpSampling3D", 0, r"size=0"),
])
def test_reshaping3d_refuses_bad_arguments_by_name(kind, value, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        getattr(fnn, kind)(value)


def test_cropping3d_refuses_cropping_everything():
    with pytest.raises(ValueError, match=r"leaves nothing of an input of shape \(2, 4, 4, 1\)"):
        _model(fnn.Cropping3D(((1, 1), (0, 0), (0, 0))), (2, 4, 4, 1), "numpy")


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_spatial_dropout3d_drops_whole_channels(backend, rng):
    model = _model(fnn.SpatialDropout3D(0.5, seed=3), (3, 4, 2, 6), backend)
    x = rng.standard_normal((5, 3, 4, 2, 6)) + 3.0
    y = model.forward(x, training=True)
    ratio = y / x
    assert np.allclose(ratio, ratio[:, :1, :1, :1])            # one factor per (sample, channel)
    assert set(np.round(np.unique(ratio), 12)) <= {0.0, 2.0}
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(model.backward(dy), dy * ratio[:, :1, :1, :1])
    np.testing.assert_array_equal(model.predict(x.astype(np.float64)), x)
    with pytest.raises(ValueError, match=r"\(depth, height, width, channels\)"):
        _model(fnn.SpatialDropout3D(0.5), (4, 4, 1), backend)


def test_spatial_dropout3d_backends_agree_and_files_keep_the_stream(tmp_path, rng):
    x = rng.standard_normal((4, 2, 3, 3, 5))
    masks = []
    for backend in ("numpy", "fast"):
        model = _model([fnn.SpatialDropout3D(0.3, seed=7), fnn.GlobalAveragePooling3D()],
                       x.shape[1:], backend)
        masks.append(model.forward(x, training=True).tobytes())
    assert masks[0] == masks[1]
    model.save(tmp_path / "sd.fnn")
    back = fnn.load(tmp_path / "sd.fnn")
    assert back.forward(x, training=True).tobytes() == model.forward(x, training=True).tobytes()


# ---------------------------------------------------------------------------- ONNX
def test_onnx_export_matches_onnxruntime(tmp_path, rng):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    shape = (5, 7, 6, 2)
    model = fnn.Sequential([
        fnn.ZeroPadding3D(((1, 0), (0, 1), (1, 1))),
        fnn.Conv3D(4, (3, 2, 3), strides=(2, 1, 2), padding="same", activation="relu"),
        fnn.MaxPooling3D((2, 2, 1), padding="same"), fnn.UpSampling3D((1, 2, 2)),
        fnn.Conv3D(3, 2, dilation_rate=(1, 2, 1), use_bias=False),
        fnn.Cropping3D(((0, 0), (1, 0), (0, 1))), fnn.AveragePooling3D((1, 2, 2)),
        fnn.SpatialDropout3D(0.2), fnn.GlobalMaxPooling3D(), fnn.Dense(2)],
        input_shape=shape, seed=0)
    path = tmp_path / "m.onnx"
    fnn.onnx.export(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-5)


def test_a_keras_weights_file_loads_into_the_same_3d_model(keras, tmp_path, rng):
    pytest.importorskip("h5py")
    shape = (4, 6, 6, 2)
    theirs = keras.Sequential([
        keras.Input(shape), keras.layers.Conv3D(3, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling3D(), keras.layers.Conv3D(4, (1, 2, 2), use_bias=False),
        keras.layers.GlobalAveragePooling3D(), keras.layers.Dense(2)])
    theirs.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3
                        for w in theirs.get_weights()])
    path = str(tmp_path / "c3.weights.h5")
    theirs.save_weights(path)
    ours = fnn.Sequential([
        fnn.Conv3D(3, 3, padding="same", activation="relu"), fnn.MaxPooling3D(),
        fnn.Conv3D(4, (1, 2, 2), use_bias=False), fnn.GlobalAveragePooling3D(), fnn.Dense(2)],
        input_shape=shape, seed=1)
    ours.load_weights(path)
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x), np.asarray(theirs(x)), rtol=1e-5, atol=1e-5)


def test_from_torch_converts_a_3d_cnn(rng):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool3d(2),
        torch.nn.Conv3d(4, 3, (1, 2, 2), stride=(1, 2, 2)), torch.nn.AvgPool3d((1, 1, 2)),
        torch.nn.AdaptiveMaxPool3d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2)).double()
    model = fnn.interop.from_torch(net, (2, 4, 8, 8))
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv3D", "ReLU", "MaxPooling3D", "Conv3D", "AveragePooling3D", "GlobalMaxPooling3D",
        "Flatten", "Dense"]
    x = rng.standard_normal((3, 2, 4, 8, 8))
    with torch.no_grad():
        want = net(torch.tensor(x)).numpy()
    np.testing.assert_allclose(model.predict(x.transpose(0, 2, 3, 4, 1)), want, rtol=1e-10,
                               atol=1e-12)
    with pytest.raises(ValueError, match=r"channels-first 4-D sample \(channels, depth, height, "
                                         r"width\)"):
        fnn.interop.from_torch(torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3)), (2, 8, 8))
