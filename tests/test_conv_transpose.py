"""Conv2DTranspose, UpSampling2D and UpSampling1D: against PyTorch in float64 (forward and every
gradient, relative error <= 1e-10) across kernel sizes, strides, dilations, paddings and
output paddings; Keras' output lengths and "same" placement against Keras itself; the compiled
backend against the NumPy one and bitwise at 1 and 2 threads; a DCGAN-style generator learning;
files; bad arguments. (Finite differences through both layers: tests/test_layers_graph.py.)"""


import numpy as np
import pytest

import fastnn as fnn
from fastnn.layers.convolutional import transposed_length

RTOL = 1e-10


def _rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _transpose_model(backend, input_shape, **kw):
    layer = fnn.Conv2DTranspose(**kw)
    return fnn.Sequential([layer], input_shape=input_shape, seed=3, dtype="float64",
                          backend=backend), layer


# (input h, w, c), filters, kernel, strides, dilation, padding, output_padding
CASES = [
    ((5, 4, 3), 2, 3, 1, 1, "valid", None),
    ((5, 4, 3), 2, 3, 1, 1, "same", None),
    ((4, 3, 2), 3, 3, 2, 1, "same", None),          # "same", odd padding: Keras' extra after
    ((4, 3, 2), 3, 4, 2, 1, "same", None),          # even padding
    ((3, 5, 2), 2, (2, 3), (2, 1), 1, "valid", None),
    ((3, 3, 1), 2, 2, 3, 1, "valid", None),         # strides beyond the kernel: gaps of bias
    ((3, 4, 2), 2, 3, 2, 1, "valid", (1, 0)),
    ((3, 4, 2), 2, 3, 2, 1, "same", (1, 1)),
    ((4, 4, 3), 2, 3, 1, 2, "same", None),          # dilation
    ((4, 4, 3), 2, 2, 1, (2, 1), "valid", None),
    ((1, 1, 4), 5, 4, 1, 1, "valid", None),         # a DCGAN's first layer: 1x1 to 4x4
    ((6, 6, 16), 8, 5, 2, 1, "same", (1, 1)),
    ((7, 7, 32), 16, 1, 1, 1, "valid", None),       # 1x1: the direct path
    ((8, 8, 24), 32, 3, 1, 1, "same", None),        # stride 1, many channels: the fast paths
]


def _torch_reference(torch, x, kernel, bias, strides, dilations, pads_before, out_hw, dy):
    """PyTorch's conv_transpose2d with the same (symmetric) padding before, its output trimmed
    or extended (output_padding) to ours: forward and the gradients of sum(y * dy)."""
    F = torch.nn.functional
    xt = torch.tensor(np.transpose(x, (0, 3, 1, 2)), requires_grad=True)
    wt = torch.tensor(np.transpose(kernel, (3, 2, 0, 1)).copy(), requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    h, w = x.shape[1:3]
    natural = [(n - 1) * s - 2 * p + (k - 1) * d + 1 for n, s, p, k, d in
               zip((h, w), strides, pads_before, kernel.shape[:2], dilations)]
    extra = [max(o - n, 0) for o, n in zip(out_hw, natural)]
    if any(e >= max(s, d) for e, s, d in zip(extra, strides, dilations)):
        pytest.skip("PyTorch's output_padding cannot reach this output length")
    y = F.conv_transpose2d(xt, wt, bt, stride=tuple(strides), padding=tuple(pads_before),
                           output_padding=tuple(extra), dilation=tuple(dilations))
    y = y[:, :, :out_hw[0], :out_hw[1]]
    (y * torch.tensor(np.transpose(dy, (0, 3, 1, 2)))).sum().backward()
    return (np.transpose(y.detach().numpy(), (0, 2, 3, 1)),
            np.transpose(xt.grad.numpy(), (0, 2, 3, 1)),
            np.transpose(wt.grad.numpy(), (2, 3, 1, 0)), bt.grad.numpy())


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("shape, filters, kernel, strides, dilation, padding, extra", CASES)
def test_conv2d_transpose_matches_pytorch(backend, shape, filters, kernel, strides, dilation,
                                          padding, extra):
    torch = pytest.importorskip("torch")
    model, layer = _transpose_model(backend, shape, filters=filters, kernel_size=kernel,
                                    strides=strides, dilation_rate=dilation, padding=padding,
                                    output_padding=extra, bias_initializer="glorot_uniform")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, *shape))
    y = model.forward(x)
    dy = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dy)
    kernel_w, bias_w = layer.get_weights()
    _, before = layer._geometry(shape[:-1])
    ty, tdx, tdk, tdb = _torch_reference(torch, x, kernel_w, bias_w, layer.strides,
                                         layer.dilation_rate, before, y.shape[1:3], dy)
    assert y.shape == ty.shape
    assert _rel(y, ty) <= RTOL
    assert _rel(dx, tdx) <= RTOL
    assert _rel(model.grads[0], tdk) <= RTOL
    assert _rel(model.grads[1], tdb) <= RTOL


@pytest.mark.parametrize("shape, filters, kernel, strides, dilation, padding, extra", CASES)
def test_compiled_equals_numpy_and_is_bitwise_at_any_thread_count(shape, filters, kernel, strides,
                                                                 dilation, padding, extra):
    outs = {}
    for backend, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
        for dtype in ("float32", "float64"):
            layer = fnn.Conv2DTranspose(filters, kernel, strides, padding, extra,
                                        dilation_rate=dilation, activation="tanh")
            model = fnn.Sequential([layer], input_shape=shape, seed=5, dtype=dtype,
                                   backend=backend)
            rng = np.random.default_rng(2)
            x = rng.standard_normal((4, *shape)).astype(dtype)
            with fnn.threads(threads):
                y = model.forward(x)
                model.zero_grad()
                dx = model.backward(rng.standard_normal(y.shape).astype(dtype))
            outs[backend, threads, dtype] = [y, dx, *[g.copy() for g in model.grads]]
    for dtype, rtol in (("float32", 2e-5), ("float64", 1e-12)):
        for a, b in zip(outs["fast", 1, dtype], outs["numpy", 1, dtype]):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
        for a, b in zip(outs["fast", 1, dtype], outs["fast", 2, dtype]):
            assert a.tobytes() == b.tobytes()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("shape, filters, kernel, strides, dilation, padding, extra",
                         [c for c in CASES if c[4] == 1])
def test_output_lengths_and_same_placement_match_keras(keras, shape, filters, kernel, strides,
                                                       dilation, padding, extra):
    """Keras' own Conv2DTranspose with the same weights gives the same output (float32): its
    lengths, and where "same" puts an odd padding."""
    model, layer = _transpose_model("fast", shape, filters=filters, kernel_size=kernel,
                                    strides=strides, padding=padding, output_padding=extra,
                                    bias_initializer="glorot_uniform")
    km = keras.Sequential([keras.Input(shape), keras.layers.Conv2DTranspose(
        filters, kernel, strides=strides, padding=padding, output_padding=extra)])
    km.set_weights(layer.get_weights())
    x = np.random.default_rng(4).standard_normal((2, *shape)).astype(np.float32)
    ours = model.predict(x.astype(np.float64))
    theirs = np.asarray(km(x))
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size, n, s, k, d, padding, extra, expected", [
    (4, 7, 2, 3, 1, "same", None, (14, 0)), (4, 7, 2, 3, 1, "valid", None, (15, 0)),
    (4, 3, 3, 2, 1, "valid", None, (9, 0)), (4, 3, 2, 3, 1, "same", 1, (6, 0)),
    (4, 3, 2, 5, 1, "same", 1, (6, 1)), (4, 3, 2, 5, 1, "same", 0, (5, 2)),
    (4, 5, 1, 3, 2, "same", None, (5, 2)), (4, 4, 2, 4, 1, "same", None, (8, 1)),
])
def test_transposed_lengths_by_hand(size, n, s, k, d, padding, extra, expected):
    assert transposed_length(n, k, s, d, padding, extra) == expected


# ------------------------------------------------------------------------------- upsampling

@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("size", [1, 2, (2, 3), (3, 1)])
def test_upsampling2d_matches_pytorch(backend, size):
    torch = pytest.importorskip("torch")
    model = fnn.Sequential([fnn.UpSampling2D(size)], input_shape=(3, 4, 5), dtype="float64",
                           backend=backend)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))
    y = model.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    sh, sw = (size, size) if isinstance(size, int) else size
    xt = torch.tensor(np.transpose(x, (0, 3, 1, 2)), requires_grad=True)
    yt = torch.nn.functional.interpolate(xt, scale_factor=(sh, sw), mode="nearest")
    (yt * torch.tensor(np.transpose(dy, (0, 3, 1, 2)))).sum().backward()
    assert y.tobytes() == np.ascontiguousarray(
        np.transpose(yt.detach().numpy(), (0, 2, 3, 1))).tobytes()
    assert _rel(dx, np.transpose(xt.grad.numpy(), (0, 2, 3, 1))) <= 1e-14


def test_upsampling_kernels_bitwise_alike_on_both_backends_and_threads():
    from fastnn.backends import get_backend
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((3, 17, 5, 7)).astype(dtype)
        dy = rng.standard_normal((3, 17 * 3, 5 * 2, 7)).astype(dtype)
        results = []
        for name, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
            be = get_backend(name)
            y, dx = np.empty_like(dy), np.empty_like(x)
            with fnn.threads(threads):
                be.upsample2d_forward(x, 3, 2, y)
                be.upsample2d_backward(dy, 3, 2, dx)
            results.append((y.tobytes(), dx.tobytes()))
        assert results[0] == results[1] == results[2]
        # by hand: a block's gradient is its sum, rows first
        expect = np.zeros_like(x)
        for a in range(3):
            for q in range(2):
                expect += dy[:, a::3, q::2, :]
        assert results[0][1] == expect.tobytes()


def test_upsampling1d_repeats_steps():
    model = fnn.Sequential([fnn.UpSampling1D(2)], input_shape=(3, 2), dtype="float64")
    x = np.arange(12.0).reshape(2, 3, 2)
    np.testing.assert_array_equal(model.predict(x), np.repeat(x, 2, axis=1))
    dx = model.backward(np.ones((2, 6, 2))) if model.forward(x) is not None else None
    np.testing.assert_array_equal(dx, np.full((2, 3, 2), 2.0))


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_kernels_refuse_mismatched_shapes(backend):
    from fastnn.backends import get_backend
    be = get_backend(backend)
    x = np.zeros((2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"must be \(n, h \* 2, w \* 2, c\)"):
        be.upsample2d_forward(x, 2, 2, np.zeros((2, 6, 7, 5)))
    with pytest.raises(ValueError, match=r"must be \(n, h \* 2, w \* 3, c\)"):
        be.upsample2d_backward(np.zeros((2, 6, 8, 5)), 2, 3, x)
    with pytest.raises(ValueError, match=r"must be"):
        be.upsample2d_forward(x, 0, 2, np.zeros((2, 0, 8, 5)))
    if backend == "numpy":
        return                  # the NumPy convolutions trust their callers, as before
    with pytest.raises(ValueError, match=r"conv2d: shapes do not match"):
        be.conv2d_backward_input(np.zeros((3, 3, 4, 6)), np.zeros((2, 5, 5, 5)), (1, 1),
                                 (1, 1), (1, 1), np.zeros((2, 5, 5, 4)))


# ------------------------------------------------------------------------ layers in models

def test_a_dcgan_generator_learns_to_draw_digits():
    """A generator (Dense, Reshape, Conv2DTranspose up to 8x8) fitted to map class codes to
    the mean digit of the class (the shipped UCI digits): it must get close to all ten."""
    from fastnn.datasets import load_digits
    X, y = load_digits()
    X = X.reshape(-1, 8, 8, 1) / 16.0
    targets = np.stack([X[y == k].mean(axis=0) for k in range(10)])
    codes = np.eye(10)
    model = fnn.Sequential([
        fnn.Dense(2 * 2 * 16, activation="relu"), fnn.Reshape((2, 2, 16)),
        fnn.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu"),
        fnn.UpSampling2D(),
        fnn.Conv2DTranspose(1, 3, padding="same", activation="sigmoid")],
        input_dim=10, seed=0)
    model.compile("mse", fnn.Adam(learning_rate=0.01))
    before = model.evaluate(codes, targets.reshape(10, -1))["loss"]
    model.fit(codes, targets.reshape(10, -1), epochs=400, batch_size=10, verbose=0)
    after = model.evaluate(codes, targets.reshape(10, -1))["loss"]
    assert after < before / 20 and after < 2e-3, (before, after)


def test_config_files_and_summary(tmp_path):
    model = fnn.Sequential([
        fnn.Conv2DTranspose(3, (2, 3), strides=2, output_padding=(1, 0), activation="relu",
                            name="up"),
        fnn.UpSampling2D((2, 1)), fnn.Reshape((-1, 3)), fnn.UpSampling1D(2)],
        input_shape=(2, 2, 4), seed=1)
    assert model.output_shape == (2 * (10 * 5), 3)        # (5, 5, 3) -> (10, 5, 3) -> 50 steps
    config = model.get_config()
    assert config["layers"][0]["output_padding"] == [1, 0]
    assert config["layers"][1] == {"class": "UpSampling2D", "size": [2, 1]}
    model.save(tmp_path / "g.fnn")
    loaded = fnn.load(tmp_path / "g.fnn")
    x = np.random.default_rng(0).standard_normal((3, 2, 2, 4))
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
    assert [w.shape for w in model.get_weights()] == [(2, 3, 3, 4), (3,)]
    assert repr(model.layers[1]) == "UpSampling2D((2, 1))"


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: fnn.Conv2DTranspose(2, 3, strides=2, output_padding=2), ValueError,
     r"output_padding must be below the strides \(2, 2\)"),
    (lambda: fnn.Conv2DTranspose(2, 3, output_padding=(0, 0, 0)), ValueError,
     r"output_padding must be an integer or a tuple of 2"),
    (lambda: fnn.Conv2DTranspose(2, 3, strides=2, output_padding=-1), ValueError,
     r"output_padding"),
    (lambda: fnn.Conv2DTranspose(2, 3, padding="full"), ValueError, r"padding must be one of"),
    (lambda: fnn.Conv2DTranspose(2, 3, data_format="channels_first"), ValueError,
     r"channels-last"),
    (lambda: fnn.Conv2DTranspose(0, 3), ValueError, r"filters"),
    (lambda: fnn.UpSampling2D(0), ValueError, r"size"),
    (lambda: fnn.UpSampling2D((2, 2, 2)), ValueError, r"size must be an integer or a tuple"),
    (lambda: fnn.UpSampling2D(interpolation="bilinear"), ValueError, r"'nearest' only"),
    (lambda: fnn.UpSampling1D(2.5), TypeError, r"size"),
])
def test_bad_arguments_are_refused_naming_them(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize("layer, shape, pattern", [
    (lambda: fnn.Conv2DTranspose(2, 3), (4, 4), r"takes one input of shape \(height, width"),
    (lambda: fnn.Conv2DTranspose(2, 2, padding="same", output_padding=0), (1, 1, 1),
     r"each must be from 1"),
    (lambda: fnn.Conv2DTranspose(2, 3, strides=2**20), (2**12, 1, 1), r"2\*\*31 - 1"),
    (lambda: fnn.UpSampling2D(2**16), (2**16, 1, 1), r"below 2\*\*31"),
    (lambda: fnn.UpSampling1D(2), (4, 3, 2), r"takes one input of shape \(steps, channels\)"),
])
def test_shapes_that_do_not_fit_are_refused_at_build(layer, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        fnn.Sequential([layer()], input_shape=shape)
