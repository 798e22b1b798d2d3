"""The reshaping, merge, preprocessing and wrapper layers inside models against PyTorch in
float64, on both backends: forward, every input gradient and (TimeDistributed) every weight
gradient. Pure copies and selections (padding, cropping, upsampling's forward, RepeatVector's
forward, Maximum, Minimum) are bitwise; arithmetic is within 1e-10 relative.

ZeroPadding2D/1D (F.pad), Cropping2D/1D (slicing), RepeatVector (unsqueeze + expand),
UpSampling2D/1D (F.interpolate, "nearest"), Multiply, Subtract, Average, Maximum, Minimum
(torch.mul, sub, mean, maximum, minimum; ties apart: fastnn gives a tie and its gradient to the
earliest input, which torch.argmax/argmin's first index reproduces), Rescaling and
Normalization (their affine formulas, Keras' epsilon on the standard deviation, ``invert``),
TimeDistributed(Dense / Conv2D / Conv1D / ZeroPadding2D) as the torch layer applied per step.
"""

import functools

import numpy as np
import pytest

import fastnn as fnn

torch = pytest.importorskip("torch")
F = torch.nn.functional
BACKENDS = ["fast", "numpy"]
RTOL = 1e-10


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _bitwise(a, b):
    a, b = np.asarray(a, np.float64), np.ascontiguousarray(np.asarray(b, np.float64))
    return a.shape == b.shape and np.ascontiguousarray(a).tobytes() == b.tobytes()


def _t(a, grad=False):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=grad)


def _seq(layers, input_shape, backend):
    return fnn.Sequential(layers, input_shape=input_shape, seed=0, dtype="float64",
                          backend=backend)


def _run(model, x, seed=1):
    """forward(x, training=True), a random dL/dy, backward: (y, dy, dx, grads)."""
    y = model.forward(x, training=True)
    dy = np.random.default_rng(seed).standard_normal(np.shape(y))
    model.zero_grad()
    dx = model.backward(dy)
    return y, dy, dx, [g.copy() for g in model.grads]


def _torch_grads(fn, xs, dy):
    """torch's fn(*xs) and the gradients of sum(fn(*xs) * dy) with respect to each x."""
    ts = [_t(x, grad=True) for x in xs]
    out = fn(*ts)
    (out * _t(dy)).sum().backward()
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


# ------------------------------------------------------------------------ padding and cropping
# (padding as given to fastnn, input sample shape)
PAD2D = [
    (0, (4, 5, 2)),                          # padding 0: the identity
    (1, (4, 5, 2)),
    ((2, 0), (3, 4, 3)),
    (((1, 3), (0, 2)), (4, 5, 2)),
    (((0, 2), (3, 0)), (1, 1, 1)),           # a single pixel of one channel
    (((0, 0), (0, 1)), (1, 6, 4)),           # one row
    ((1, 1), (5, 1, 2)),                     # one column
]
PAD1D = [(0, (6, 3)), (2, (6, 3)), ((0, 3), (6, 3)), ((4, 0), (1, 1)), ((1, 2), (1, 5))]


def _pairs2d(value):
    if isinstance(value, int):
        return (value, value), (value, value)
    a, b = value
    return tuple(v if isinstance(v, tuple) else (v, v) for v in (a, b))


def _pairs1d(value):
    return (value, value) if isinstance(value, int) else value


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding, shape", PAD2D)
def test_zero_padding2d_matches_torch_pad_bitwise(backend, padding, shape):
    (top, bottom), (left, right) = _pairs2d(padding)
    model = _seq([fnn.ZeroPadding2D(padding)], shape, backend)
    x = np.random.default_rng(0).standard_normal((3, *shape))
    y, dy, dx, _ = _run(model, x)
    ty, (tdx,) = _torch_grads(lambda a: F.pad(a, (0, 0, left, right, top, bottom)), [x], dy)
    assert y.shape == (3, shape[0] + top + bottom, shape[1] + left + right, shape[2])
    assert _bitwise(y, ty) and _bitwise(dx, tdx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding, shape", PAD1D)
def test_zero_padding1d_matches_torch_pad_bitwise(backend, padding, shape):
    before, after = _pairs1d(padding)
    model = _seq([fnn.ZeroPadding1D(padding)], shape, backend)
    x = np.random.default_rng(0).standard_normal((4, *shape))
    y, dy, dx, _ = _run(model, x)
    ty, (tdx,) = _torch_grads(lambda a: F.pad(a, (0, 0, before, after)), [x], dy)
    assert _bitwise(y, ty) and _bitwise(dx, tdx)


CROP2D = [
    (0, (4, 5, 2)),                          # cropping 0: the identity
    (1, (5, 6, 2)),
    ((2, 0), (5, 6, 3)),
    (((1, 2), (0, 3)), (5, 6, 2)),
    (((1, 1), (2, 1)), (3, 4, 2)),           # down to one pixel
    (((0, 0), (2, 2)), (1, 5, 1)),           # one row, one channel
    (((3, 0), (0, 0)), (4, 1, 3)),           # one column
]
CROP1D = [(0, (6, 3)), (1, (6, 3)), ((2, 1), (6, 3)), ((0, 4), (5, 2)), ((2, 2), (5, 1))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cropping, shape", CROP2D)
def test_cropping2d_matches_torch_slicing_bitwise(backend, cropping, shape):
    (top, bottom), (left, right) = _pairs2d(cropping)
    h, w = shape[:2]
    model = _seq([fnn.Cropping2D(cropping)], shape, backend)
    x = np.random.default_rng(0).standard_normal((3, *shape))
    y, dy, dx, _ = _run(model, x)
    ty, (tdx,) = _torch_grads(lambda a: a[:, top:h - bottom, left:w - right], [x], dy)
    assert _bitwise(y, ty) and _bitwise(dx, tdx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cropping, shape", CROP1D)
def test_cropping1d_matches_torch_slicing_bitwise(backend, cropping, shape):
    before, after = _pairs1d(cropping)
    model = _seq([fnn.Cropping1D(cropping)], shape, backend)
    x = np.random.default_rng(0).standard_normal((4, *shape))
    y, dy, dx, _ = _run(model, x)
    ty, (tdx,) = _torch_grads(lambda a: a[:, before:shape[0] - after], [x], dy)
    assert _bitwise(y, ty) and _bitwise(dx, tdx)


# ------------------------------------------------------------------------ repeat and upsampling
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n, features", [(1, 4), (3, 4), (5, 1), (2, 7)])
def test_repeat_vector_matches_torch_expand(backend, n, features):
    model = _seq([fnn.RepeatVector(n)], (features,), backend)
    x = np.random.default_rng(0).standard_normal((3, features))
    y, dy, dx, _ = _run(model, x)
    ty, (tdx,) = _torch_grads(lambda a: a.unsqueeze(1).expand(-1, n, -1), [x], dy)
    assert _bitwise(y, ty)                   # a copy
    assert _rel(dx, tdx) <= RTOL             # a sum over the copies
    if n == 1:
        assert _bitwise(dx, tdx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size, shape", [
    (1, (3, 4, 2)), (2, (3, 4, 2)), ((2, 3), (2, 5, 3)), ((3, 1), (4, 2, 1)),
    ((1, 4), (1, 1, 1)), ((5, 2), (1, 3, 2)),
])
def test_upsampling2d_matches_torch_interpolate_nearest(backend, size, shape):
    sh, sw = (size, size) if isinstance(size, int) else size
    model = _seq([fnn.UpSampling2D(size)], shape, backend)
    x = np.random.default_rng(0).standard_normal((2, *shape))
    y, dy, dx, _ = _run(model, x)

    def up(a):
        nchw = a.permute(0, 3, 1, 2)
        out = F.interpolate(nchw, size=(shape[0] * sh, shape[1] * sw), mode="nearest")
        return out.permute(0, 2, 3, 1)
    ty, (tdx,) = _torch_grads(up, [x], dy)
    assert _bitwise(y, ty)
    assert _rel(dx, tdx) <= RTOL
    if sh * sw == 1:
        assert _bitwise(dx, tdx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size, shape", [(1, (4, 3)), (2, (4, 3)), (3, (1, 1)), (5, (2, 6))])
def test_upsampling1d_matches_torch_interpolate_nearest(backend, size, shape):
    model = _seq([fnn.UpSampling1D(size)], shape, backend)
    x = np.random.default_rng(0).standard_normal((3, *shape))
    y, dy, dx, _ = _run(model, x)

    def up(a):
        out = F.interpolate(a.permute(0, 2, 1), size=shape[0] * size, mode="nearest")
        return out.permute(0, 2, 1)
    ty, (tdx,) = _torch_grads(up, [x], dy)
    assert _bitwise(y, ty)
    assert _rel(dx, tdx) <= RTOL


# ------------------------------------------------------------------------ merges
def _merge_model(name, k, shape, backend):
    inputs = [fnn.Input(shape) for _ in range(k)]
    return fnn.Model(inputs, getattr(fnn, name)()(inputs), seed=0, dtype="float64",
                     backend=backend)


TORCH_MERGES = {
    "Multiply": lambda *xs: functools.reduce(torch.mul, xs),
    "Subtract": lambda a, b: torch.sub(a, b),
    "Average": lambda *xs: torch.mean(torch.stack(xs), dim=0),
    "Maximum": lambda *xs: functools.reduce(torch.maximum, xs),
    "Minimum": lambda *xs: functools.reduce(torch.minimum, xs),
}
MERGE_CASES = [(name, k, shape) for name in TORCH_MERGES for k in (2, 3)
               for shape in [(4,), (3, 5), (2, 3, 2), (1,)] if not (name == "Subtract" and k == 3)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, k, shape", MERGE_CASES)
def test_merges_match_torch(backend, name, k, shape):
    model = _merge_model(name, k, shape, backend)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((4, *shape)) for _ in range(k)]   # continuous: no ties
    y, dy, dxs, grads = _run(model, xs)
    ty, tdxs = _torch_grads(TORCH_MERGES[name], xs, dy)
    assert grads == [] and len(dxs) == k
    if name in ("Maximum", "Minimum"):       # selections: bitwise, whole gradient to the winner
        assert _bitwise(y, ty)
        assert all(_bitwise(dx, tdx) for dx, tdx in zip(dxs, tdxs))
        assert _bitwise(sum(dxs), dy)
    else:
        assert _rel(y, ty) <= RTOL
        for dx, tdx in zip(dxs, tdxs):
            assert _rel(dx, tdx) <= RTOL
    if name == "Subtract":
        assert _bitwise(dxs[0], dy) and _bitwise(dxs[1], -dy)


def _first_winner(name, xs):
    """torch's reference with fastnn's tie rule: argmax / argmin give the first index."""
    def fn(*ts):
        stacked = torch.stack(ts)
        pick = (torch.argmax if name == "Maximum" else torch.argmin)(stacked, dim=0)
        return stacked.gather(0, pick.unsqueeze(0)).squeeze(0)
    return fn


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["Maximum", "Minimum"])
@pytest.mark.parametrize("k", [2, 3])
def test_maximum_minimum_ties_go_to_the_earliest_input(backend, name, k):
    """Inputs drawn from three values: ties everywhere (two-way and k-way, between the first
    inputs and between later ones). fastnn's forward and gradients equal torch's gather at the
    first argmax/argmin, bitwise; torch.maximum itself splits a tie's gradient."""
    rng = np.random.default_rng(7)
    xs = [rng.integers(-1, 2, size=(6, 5)).astype(np.float64) for _ in range(k)]
    xs[-1][0] = xs[-2][0]                    # the last two tie on row 0
    for x in xs:
        x[1] = 0.5                           # a k-way tie on row 1
    model = _merge_model(name, k, (5,), backend)
    y, dy, dxs, _ = _run(model, xs)
    ty, tdxs = _torch_grads(_first_winner(name, xs), xs, dy)
    assert _bitwise(y, ty)
    assert all(_bitwise(dx, tdx) for dx, tdx in zip(dxs, tdxs))
    assert _bitwise(dxs[0][1], dy[1]) and not any(dx[1].any() for dx in dxs[1:])
    # the rule by hand: input i takes the gradient where it is the first to reach the extreme
    stacked = np.stack(xs)
    winner = (np.argmax if name == "Maximum" else np.argmin)(stacked, axis=0)
    for i, dx in enumerate(dxs):
        assert _bitwise(dx, np.where(winner == i, dy, 0.0))
    # torch.maximum / minimum split tied gradients: what this test must not compare against
    _, split = _torch_grads(TORCH_MERGES[name], xs, dy)
    assert not all(_bitwise(dx, tdx) for dx, tdx in zip(dxs, split))


# ------------------------------------------------------------------------ preprocessing
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale, offset", [(1 / 255, 0.0), (1 / 127.5, -1.0), (-2.0, 3.5),
                                           (0.0, 1.0), (1.0, 0.0)])
@pytest.mark.parametrize("shape", [(5,), (4, 3, 2), (1, 1, 1)])
def test_rescaling_matches_torch(backend, scale, offset, shape):
    model = _seq([fnn.Rescaling(scale, offset=offset)], shape, backend)
    x = np.random.default_rng(0).uniform(-10, 265, size=(3, *shape))
    y, dy, dx, grads = _run(model, x)
    ty, (tdx,) = _torch_grads(lambda a: a * scale + offset, [x], dy)
    assert grads == []
    assert _rel(y, ty) <= RTOL and _rel(dx, tdx) <= RTOL
    if scale == 1.0 and offset == 0.0:
        assert _bitwise(y, x) and _bitwise(dx, dy)


def _torch_normalization(mean, variance, invert):
    """Keras' formula: std = max(sqrt(variance), 1e-7); (x - mean) / std, or mean + x * std."""
    m, v = _t(mean), _t(variance)
    std = torch.clamp(torch.sqrt(v), min=1e-7)
    if invert:
        return lambda a: m + a * std
    return lambda a: (a - m) / std


NORM_CASES = [
    # (sample shape, mean, variance): given statistics
    ((3,), [1.0, -2.0, 0.5], [4.0, 0.25, 9.0]),
    ((4,), 3.0, 2.0),                                    # scalars broadcast to every feature
    ((2, 3), [0.0, 10.0, -5.0], [1.0, 100.0, 1e-3]),
    ((3, 2, 2), [0.5, -0.5], [2.0, 0.5]),                # per channel of an image
    ((3,), [1.0, 2.0, 3.0], [0.0, 1e-16, 1.0]),          # variances below epsilon**2
    ((1,), [7.0], [1e6]),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("shape, mean, variance", NORM_CASES)
def test_normalization_with_given_statistics_matches_torch(backend, invert, shape, mean,
                                                           variance):
    c = shape[-1]
    mean_c = np.broadcast_to(np.asarray(mean, np.float64), (c,))
    var_c = np.broadcast_to(np.asarray(variance, np.float64), (c,))
    model = _seq([fnn.Normalization(mean=mean, variance=variance, invert=invert)], shape,
                 backend)
    x = np.random.default_rng(0).standard_normal((5, *shape)) * 3 + 1
    y, dy, dx, grads = _run(model, x)
    ty, (tdx,) = _torch_grads(_torch_normalization(mean_c, var_c, invert), [x], dy)
    assert _rel(y, ty) <= RTOL and _rel(dx, tdx) <= RTOL
    assert not any(g.any() for g in grads)               # mean, variance, count: not trained
    assert [g.shape for g in grads] == [(c,), (c,), ()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("shape", [(4,), (3, 2), (2, 2, 3)])
def test_normalization_after_adapt_matches_torch_statistics(backend, invert, shape):
    """adapt's mean and (biased) variance per feature over every sample and position, as
    torch's mean and var(unbiased=False) over all axes but the last."""
    rng = np.random.default_rng(4)
    data = rng.standard_normal((50, *shape)) * rng.uniform(0.1, 10, shape[-1]) + rng.uniform(
        -5, 5, shape[-1])
    flat = _t(data).reshape(-1, shape[-1])
    mean, variance = flat.mean(0).numpy(), flat.var(0, unbiased=False).numpy()
    norm = fnn.Normalization(invert=invert)
    norm.adapt(data)
    model = _seq([norm], shape, backend)
    got_mean, got_var, count = norm.get_weights()
    assert _rel(got_mean, mean) <= RTOL and _rel(got_var, variance) <= RTOL
    assert count == data.size // shape[-1]
    x = rng.standard_normal((6, *shape)) * 4
    y, dy, dx, _ = _run(model, x)
    ty, (tdx,) = _torch_grads(_torch_normalization(mean, variance, invert), [x], dy)
    assert _rel(y, ty) <= RTOL and _rel(dx, tdx) <= RTOL


# ------------------------------------------------------------------------ TimeDistributed
def _per_step(fn):
    """A torch function of one step applied to each step of (n, steps, ...) and stacked."""
    return lambda a: torch.stack([fn(a[:, t]) for t in range(a.shape[1])], dim=1)


def _randomize(model, seed=5):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape) * 0.5 for w in model.get_weights()])
    return model.get_weights()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("steps, sample, units, activation", [
    (1, (3,), 4, "linear"), (4, (3,), 2, "tanh"), (3, (1,), 1, "sigmoid"),
    (2, (2, 5), 3, "linear"),                             # Dense on the last axis of each step
])
def test_time_distributed_dense_matches_torch_linear_per_step(backend, steps, sample, units,
                                                              activation):
    model = _seq([fnn.TimeDistributed(fnn.Dense(units, activation=activation))],
                 (steps, *sample), backend)
    kernel, bias = _randomize(model)
    x = np.random.default_rng(0).standard_normal((3, steps, *sample))
    y, dy, dx, grads = _run(model, x)
    act = {"linear": lambda z: z, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation]
    W, b = _t(kernel.T.copy(), grad=True), _t(bias, grad=True)     # Keras (in, units) -> torch
    xt = _t(x, grad=True)
    out = _per_step(lambda s: act(F.linear(s, W, b)))(xt)
    (out * _t(dy)).sum().backward()
    assert _rel(y, out.detach().numpy()) <= RTOL
    assert _rel(dx, xt.grad.numpy()) <= RTOL
    assert _rel(grads[0], W.grad.numpy().T) <= RTOL       # summed over the steps
    assert _rel(grads[1], b.grad.numpy()) <= RTOL


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("steps, frame, filters, kernel, strides, padding", [
    (3, (6, 5, 2), 3, 3, 1, "valid"),
    (2, (6, 6, 1), 2, 3, 1, "same"),
    (4, (7, 6, 3), 2, (3, 2), 2, "valid"),
    (1, (3, 3, 2), 4, 1, 1, "valid"),                    # one step, a 1x1 kernel
    (2, (3, 3, 1), 1, 3, 1, "valid"),                    # down to one pixel
])
def test_time_distributed_conv2d_matches_torch_conv2d_per_step(backend, steps, frame, filters,
                                                               kernel, strides, padding):
    model = _seq([fnn.TimeDistributed(fnn.Conv2D(filters, kernel, strides=strides,
                                                 padding=padding, activation="tanh"))],
                 (steps, *frame), backend)
    k, bias = _randomize(model)
    x = np.random.default_rng(0).standard_normal((2, steps, *frame))
    y, dy, dx, grads = _run(model, x)
    W = _t(np.transpose(k, (3, 2, 0, 1)).copy(), grad=True)   # (kh, kw, in, out) -> torch
    b = _t(bias, grad=True)
    pad = (k.shape[0] // 2, k.shape[1] // 2) if padding == "same" else (0, 0)

    def step(s):                                               # (n, h, w, c) channels-last
        z = F.conv2d(s.permute(0, 3, 1, 2), W, b, stride=strides, padding=pad)
        return torch.tanh(z).permute(0, 2, 3, 1)
    xt = _t(x, grad=True)
    out = _per_step(step)(xt)
    (out * _t(dy)).sum().backward()
    assert _rel(y, out.detach().numpy()) <= RTOL
    assert _rel(dx, xt.grad.numpy()) <= RTOL
    assert _rel(grads[0], np.transpose(W.grad.numpy(), (2, 3, 1, 0))) <= RTOL
    assert _rel(grads[1], b.grad.numpy()) <= RTOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_distributed_conv1d_matches_torch_conv1d_per_step(backend):
    model = _seq([fnn.TimeDistributed(fnn.Conv1D(3, 2, activation="relu"))], (3, 5, 2),
                 backend)
    k, bias = _randomize(model)
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 2))
    y, dy, dx, grads = _run(model, x)
    W, b = _t(np.transpose(k, (2, 1, 0)).copy(), grad=True), _t(bias, grad=True)
    xt = _t(x, grad=True)
    out = _per_step(lambda s: F.relu(F.conv1d(s.permute(0, 2, 1), W, b)).permute(0, 2, 1))(xt)
    (out * _t(dy)).sum().backward()
    assert _rel(y, out.detach().numpy()) <= RTOL
    assert _rel(dx, xt.grad.numpy()) <= RTOL
    assert _rel(grads[0], np.transpose(W.grad.numpy(), (2, 1, 0))) <= RTOL
    assert _rel(grads[1], b.grad.numpy()) <= RTOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_distributed_of_weightless_layers_matches_torch_bitwise(backend):
    """TimeDistributed(ZeroPadding2D), then TimeDistributed(Cropping2D), TimeDistributed
    (UpSampling2D(1)): per-step copies, bitwise."""
    model = _seq([fnn.TimeDistributed(fnn.ZeroPadding2D(((1, 0), (2, 1)))),
                  fnn.TimeDistributed(fnn.Cropping2D(((0, 1), (1, 0)))),
                  fnn.TimeDistributed(fnn.UpSampling2D(1))], (3, 4, 3, 2), backend)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 3, 2))
    y, dy, dx, grads = _run(model, x)
    fn = _per_step(lambda s: F.pad(s, (0, 0, 2, 1, 1, 0))[:, 0:4, 1:6])
    ty, (tdx,) = _torch_grads(fn, [x], dy)
    assert grads == [] and _bitwise(y, ty) and _bitwise(dx, tdx)


# ------------------------------------------------------------------------ all of them in one graph
def _graph(backend):
    """image (5, 4, 2) and vector (3,): padding, cropping, upsampling, every merge, rescaling,
    normalization and TimeDistributed(Dense) over a RepeatVector, with fan-out everywhere."""
    img, vec = fnn.Input((5, 4, 2)), fnn.Input((3,))
    a = fnn.Cropping2D(((1, 0), (0, 1)))(fnn.ZeroPadding2D(((0, 1), (1, 0)))(img))   # (5, 4, 2)
    b = fnn.Rescaling(0.5, offset=-1.0)(img)
    c = fnn.UpSampling2D((1, 2))(fnn.Cropping2D(((0, 0), (1, 1)))(img))            # (5, 4, 2)
    m = fnn.Maximum()([a, b, c])
    s = fnn.Subtract()([fnn.Multiply()([a, c]), fnn.Minimum()([b, c])])
    h = fnn.Normalization(mean=[0.5, -1.0], variance=[2.0, 0.5])(fnn.Average()([m, s, a]))
    r = fnn.TimeDistributed(fnn.Dense(2, activation="tanh"))(fnn.RepeatVector(4)(vec))  # (4, 2)
    r = fnn.UpSampling1D(5)(fnn.Cropping1D((1, 2))(fnn.ZeroPadding1D((0, 1))(r)))     # (10, 2)
    out = fnn.Multiply()([fnn.Reshape((10, 2))(fnn.Cropping2D(((0, 0), (1, 1)))(h)), r])
    return fnn.Model([img, vec], out, seed=0, dtype="float64", backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_graph_of_all_of_them_matches_torch(backend):
    model = _graph(backend)
    weights = model.get_weights()
    rng = np.random.default_rng(6)
    kernel, bias = rng.standard_normal((3, 2)), rng.standard_normal(2)
    dense = [i for i, w in enumerate(weights) if w.shape == (3, 2)]
    assert len(dense) == 1
    weights[dense[0]], weights[dense[0] + 1] = kernel, bias
    model.set_weights(weights)
    xs = [rng.standard_normal((3, 5, 4, 2)), rng.standard_normal((3, 3))]
    y, dy, (dimg, dvec), grads = _run(model, xs)
    W, B = _t(kernel.T.copy(), grad=True), _t(bias, grad=True)
    norm = _torch_normalization(np.array([0.5, -1.0]), np.array([2.0, 0.5]), False)

    def fn(img, vec):
        a = F.pad(img, (0, 0, 1, 0, 0, 1))[:, 1:, :4]
        b = img * 0.5 - 1.0
        c = F.interpolate(img[:, :, 1:3].permute(0, 3, 1, 2), scale_factor=(1, 2),
                          mode="nearest").permute(0, 2, 3, 1)
        m = torch.maximum(torch.maximum(a, b), c)
        s = a * c - torch.minimum(b, c)
        h = norm((m + s + a) / 3)
        r = vec.unsqueeze(1).expand(-1, 4, -1)
        r = _per_step(lambda t: torch.tanh(F.linear(t, W, B)))(r)
        r = F.pad(r, (0, 0, 0, 1))[:, 1:3]
        r = F.interpolate(r.permute(0, 2, 1), scale_factor=5, mode="nearest").permute(0, 2, 1)
        return h[:, :, 1:3].reshape(-1, 10, 2) * r
    ty, (timg, tvec) = _torch_grads(fn, xs, dy)
    assert _rel(y, ty) <= RTOL
    assert _rel(dimg, timg) <= RTOL and _rel(dvec, tvec) <= RTOL
    assert _rel(grads[dense[0]], W.grad.numpy().T) <= RTOL
    assert _rel(grads[dense[0] + 1], B.grad.numpy()) <= RTOL
