"""Conv3DTranspose: against PyTorch's conv_transpose3d in float64 (forward and every gradient,
relative error <= 1e-10) across kernel sizes, strides, dilations, paddings and output
paddings; Keras 3's own layer on the same weights (lengths and "same" placement); finite
differences; the compiled backend against the NumPy one and bitwise at 1 and 2 threads;
configs, files and bad arguments; a small 3-D decoder that learns."""

import numpy as np
import pytest

import fastnn as fnn
from tests._finite_differences import check_model_gradients

RTOL = 1e-10

# (input d, h, w, c), filters, kernel, strides, dilation, padding, output_padding
CASES = [
    ((3, 4, 5, 2), 3, 3, 1, 1, "valid", None),
    ((3, 4, 3, 2), 2, 3, 1, 1, "same", None),
    ((3, 3, 2, 2), 3, 3, 2, 1, "same", None),              # odd padding: Keras' extra after
    ((2, 3, 3, 2), 2, (4, 2, 3), (2, 2, 1), 1, "same", None),
    ((3, 2, 3, 1), 2, (2, 3, 1), (3, 1, 2), 1, "valid", None),   # gaps of bias in depth
    ((2, 3, 2, 2), 2, 3, 2, 1, "valid", (1, 0, 1)),
    ((2, 2, 3, 3), 2, 3, 2, 1, "same", (1, 1, 0)),
    ((3, 3, 3, 2), 2, 3, 1, (2, 1, 1), "same", None),      # depth dilation
    ((1, 1, 1, 4), 5, 4, 1, 1, "valid", None),             # 1x1x1 to 4x4x4
    ((4, 6, 6, 8), 16, 3, 1, 1, "same", None),             # the stackless dx path
]
IDS = [f"{c[0]}-f{c[1]}-k{c[2]}-s{c[3]}-d{c[4]}-{c[5]}-o{c[6]}".replace(" ", "") for c in CASES]


def _rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _model(backend, shape, dtype="float64", seed=3, **kw):
    layer = fnn.Conv3DTranspose(**kw)
    return fnn.Sequential([layer], input_shape=shape, seed=seed, dtype=dtype,
                          backend=backend), layer


def _torch_reference(torch, x, kernel, bias, strides, dilations, out_dhw, dy):
    """PyTorch's conv_transpose3d with no padding (its full output), cropped to ours where
    Keras places it: for "same" half of what the windows overhang, the odd one after (worked
    out here from the lengths, apart from the layer), plus output_padding's zeros after.
    Forward and the gradients of sum(y * dy)."""
    F = torch.nn.functional
    xt = torch.tensor(np.transpose(x, (0, 4, 1, 2, 3)), requires_grad=True)
    wt = torch.tensor(np.transpose(kernel, (4, 3, 0, 1, 2)).copy(), requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    full = F.conv_transpose3d(xt, wt, None, stride=tuple(strides), dilation=tuple(dilations))
    idx = []
    for axis, out in enumerate(out_dhw):
        size, span = full.shape[2 + axis], (kernel.shape[axis] - 1) * dilations[axis] + 1
        natural = (x.shape[1 + axis] - 1) * strides[axis] + span
        assert size == natural
        before = max(natural - out, 0) // 2
        idx.append((before, min(natural, before + out)))
    y = full[:, :, idx[0][0]:idx[0][1], idx[1][0]:idx[1][1], idx[2][0]:idx[2][1]]
    pad = []
    for axis in (2, 1, 0):     # F.pad's order: last axis first
        pad += [0, out_dhw[axis] - (idx[axis][1] - idx[axis][0])]
    y = F.pad(y, pad) + bt.reshape(1, -1, 1, 1, 1)
    (y * torch.tensor(np.transpose(dy, (0, 4, 1, 2, 3)))).sum().backward()
    return (np.transpose(y.detach().numpy(), (0, 2, 3, 4, 1)),
            np.transpose(xt.grad.numpy(), (0, 2, 3, 4, 1)),
            np.transpose(wt.grad.numpy(), (2, 3, 4, 1, 0)), bt.grad.numpy())


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv3d_transpose_matches_pytorch(backend, case):
    torch = pytest.importorskip("torch")
    shape, filters, kernel, strides, dilation, padding, extra = case
    model, layer = _model(backend, shape, filters=filters, kernel_size=kernel, strides=strides,
                          dilation_rate=dilation, padding=padding, output_padding=extra,
                          bias_initializer="glorot_uniform")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, *shape))
    y = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dy)
    kernel_w, bias_w = layer.get_weights()
    ty, tdx, tdk, tdb = _torch_reference(torch, x, kernel_w, bias_w, layer.strides,
                                         layer.dilation_rate, y.shape[1:4], dy)
    assert y.shape == ty.shape
    assert _rel(y, ty) <= RTOL
    assert _rel(dx, tdx) <= RTOL
    assert _rel(model.grads[0], tdk) <= RTOL
    assert _rel(model.grads[1], tdb) <= RTOL


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("case", [c for c in CASES if c[4] == 1], ids=str)
def test_output_lengths_and_same_placement_match_keras(keras, case):
    shape, filters, kernel, strides, _, padding, extra = case
    model, layer = _model("fast", shape, filters=filters, kernel_size=kernel, strides=strides,
                          padding=padding, output_padding=extra,
                          bias_initializer="glorot_uniform", activation="tanh")
    km = keras.Sequential([keras.Input(shape), keras.layers.Conv3DTranspose(
        filters, kernel, strides=strides, padding=padding, output_padding=extra,
        activation="tanh")])
    km.set_weights(layer.get_weights())
    x = np.random.default_rng(4).standard_normal((2, *shape)).astype(np.float32)
    ours = model.predict(x.astype(np.float64))
    theirs = np.asarray(km(x))
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("case", [CASES[2], CASES[5], CASES[7]], ids=[IDS[2], IDS[5], IDS[7]])
def test_gradients_match_finite_differences(backend, case):
    shape, filters, kernel, strides, dilation, padding, extra = case
    model, _ = _model(backend, shape, filters=filters, kernel_size=kernel, strides=strides,
                      dilation_rate=dilation, padding=padding, output_padding=extra,
                      bias_initializer="glorot_uniform", activation="sigmoid")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, *shape))
    R = rng.standard_normal((2, *model.output_shape))
    check_model_gradients(model, x, R, what=str(case))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_compiled_equals_numpy_and_is_bitwise_at_any_thread_count(case):
    shape, filters, kernel, strides, dilation, padding, extra = case
    outs = {}
    for backend, threads in (("numpy", 1), ("fast", 1), ("fast", 2)):
        for dtype in ("float32", "float64"):
            model, _ = _model(backend, shape, dtype=dtype, seed=5, filters=filters,
                              kernel_size=kernel, strides=strides, dilation_rate=dilation,
                              padding=padding, output_padding=extra, activation="tanh")
            rng = np.random.default_rng(2)
            x = rng.standard_normal((3, *shape)).astype(dtype)
            with fnn.threads(threads):
                y = model.forward(x, training=True)
                model.zero_grad()
                dx = model.backward(rng.standard_normal(y.shape).astype(dtype))
            outs[backend, threads, dtype] = [y, dx, *[g.copy() for g in model.grads]]
    for dtype, rtol in (("float32", 2e-5), ("float64", 1e-12)):
        for a, b in zip(outs["fast", 1, dtype], outs["numpy", 1, dtype]):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
        for a, b in zip(outs["fast", 1, dtype], outs["fast", 2, dtype]):
            assert a.tobytes() == b.tobytes()


def test_config_files_and_weights(tmp_path):
    model = fnn.Sequential([
        fnn.Conv3DTranspose(3, (2, 3, 3), strides=2, output_padding=(1, 0, 1),
                            activation="relu", name="up"),
        fnn.Conv3DTranspose(2, 3, padding="same", use_bias=False)],
        input_shape=(2, 2, 3, 4), seed=1)
    assert model.output_shape == (5, 5, 8, 2)
    config = model.get_config()
    assert config["layers"][0]["class"] == "Conv3DTranspose"
    assert config["layers"][0]["output_padding"] == [1, 0, 1]
    model.save(tmp_path / "g.fnn")
    loaded = fnn.load(tmp_path / "g.fnn")
    x = np.random.default_rng(0).standard_normal((3, 2, 2, 3, 4)).astype(np.float32)
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
    assert [w.shape for w in model.get_weights()] == [(2, 3, 3, 3, 4), (3,), (3, 3, 3, 2, 3)]
    assert fnn.Convolution3DTranspose is fnn.Conv3DTranspose


@pytest.mark.parametrize("cls, shape", [("Conv3DTranspose", (2, 3, 3, 2)),
                                        ("Conv2DTranspose", (3, 3, 2)),
                                        ("Conv1DTranspose", (3, 2))])
@pytest.mark.parametrize("activation", [fnn.LeakyReLU(0.3), fnn.Step(0.25), fnn.ELU(0.5)],
                         ids=["leaky_relu", "step", "elu"])
def test_files_keep_the_activation_parameter(cls, shape, activation, tmp_path):
    """(the transposed layers' leaky_relu alpha, step threshold and elu alpha came back as the
    defaults from a file before)"""
    model = fnn.Sequential([getattr(fnn, cls)(2, 3, activation=activation)],
                           input_shape=shape, seed=0)
    model.save(tmp_path / "m.fnn")
    back = fnn.load(tmp_path / "m.fnn")
    assert back.layers[0].param == model.layers[0].param != 0
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    assert back.predict(x).tobytes() == model.predict(x).tobytes()


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: fnn.Conv3DTranspose(2, 3, strides=2, output_padding=2), ValueError,
     r"output_padding must be below the strides \(2, 2, 2\)"),
    (lambda: fnn.Conv3DTranspose(2, 3, output_padding=(0, 0)), ValueError,
     r"output_padding must be an integer or a tuple of 3"),
    (lambda: fnn.Conv3DTranspose(2, (3, 3)), ValueError, r"kernel_size"),
    (lambda: fnn.Conv3DTranspose(2, 3, padding="full"), ValueError, r"padding must be one of"),
    (lambda: fnn.Conv3DTranspose(2, 3, data_format="channels_first"), ValueError,
     r"channels-last"),
    (lambda: fnn.Conv3DTranspose(0, 3), ValueError, r"filters"),
    (lambda: fnn.Conv3DTranspose(2, 2.5), TypeError, r"kernel_size"),
])
def test_bad_arguments_are_refused_naming_them(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_an_input_that_is_not_a_volume_is_refused_at_build():
    with pytest.raises(ValueError, match=r"\(depth, height, width, channels\)"):
        fnn.Sequential([fnn.Conv3DTranspose(2, 3)], input_shape=(4, 4, 2))


def test_a_3d_decoder_learns_to_draw_volumes():
    """Codes of four classes mapped to four fixed random volumes (8x8x8) through a Dense, a
    Reshape and two Conv3DTranspose layers: the error must fall to a small part of the
    start's."""
    rng = np.random.default_rng(0)
    targets = (rng.random((4, 8, 8, 8, 1)) > 0.5).astype(np.float32)
    codes = np.eye(4, dtype=np.float32)
    model = fnn.Sequential([
        fnn.Dense(2 * 2 * 2 * 16, activation="relu"), fnn.Reshape((2, 2, 2, 16)),
        fnn.Conv3DTranspose(8, 3, strides=2, padding="same", activation="relu"),
        fnn.Conv3DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")],
        input_dim=4, seed=0)
    model.compile("mse", fnn.Adam(learning_rate=0.01))
    before = model.evaluate(codes, targets)["loss"]
    model.fit(codes, targets, epochs=300, batch_size=4, verbose=0)
    after = model.evaluate(codes, targets)["loss"]
    assert after < before / 10, (before, after)
