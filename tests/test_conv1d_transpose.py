"""Conv1DTranspose: against PyTorch's conv_transpose1d in float64 (forward, input and kernel
gradients, relative error <= 1e-10) across kernel sizes, strides 1-3, dilations, both paddings
and output paddings; Keras' output lengths and "same" placement against Keras itself; the same
numbers as Conv2DTranspose on a height of 1 (its compiled kernels); the compiled backend against
the NumPy one and bitwise at 1 and 2 threads; learning; configs, files and summary; ONNX export
checked by onnxruntime; bad arguments and shapes. (Forged files: tests/test_model_files_v2.py;
bad inputs: tests/test_bad_inputs.py.)"""

import numpy as np
import pytest

import fastnn as fnn

RTOL = 1e-10

# (input steps, c), filters, kernel, strides, dilation, padding, output_padding
CASES = [
    ((7, 3), 2, 3, 1, 1, "valid", None),
    ((7, 3), 2, 3, 1, 1, "same", None),
    ((5, 2), 3, 3, 2, 1, "same", None),           # "same", odd padding: Keras' extra after
    ((5, 2), 3, 4, 2, 1, "same", None),           # even padding
    ((4, 2), 2, 2, 3, 1, "valid", None),          # strides beyond the kernel: gaps of bias
    ((4, 2), 2, 3, 3, 1, "valid", 2),
    ((4, 2), 2, 5, 3, 1, "same", 1),
    ((5, 3), 2, 3, 2, 1, "valid", 1),
    ((5, 3), 2, 3, 2, 1, "same", 0),
    ((6, 3), 2, 3, 1, 2, "same", None),           # dilation
    ((6, 3), 2, 2, 2, 2, "valid", None),
    ((1, 4), 5, 4, 1, 1, "valid", None),          # one step to four
    ((9, 16), 8, 5, 2, 1, "same", 1),
    ((8, 24), 32, 3, 1, 1, "same", None),         # stride 1, many channels: the fast paths
    ((11, 5), 4, 1, 1, 1, "valid", None),         # 1-wide kernel: the direct path
]


def _rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _model(backend, shape, dtype="float64", seed=3, **kw):
    layer = fnn.Conv1DTranspose(**kw)
    return fnn.Sequential([layer], input_shape=shape, seed=seed, dtype=dtype,
                          backend=backend), layer


def _torch_reference(torch, x, kernel, bias, stride, dilation, before, out_len, dy):
    """PyTorch's conv_transpose1d with our padding before, its output trimmed or extended
    (output_padding) to ours: forward and the gradients of sum(y * dy)."""
    F = torch.nn.functional
    xt = torch.tensor(np.transpose(x, (0, 2, 1)), requires_grad=True)
    wt = torch.tensor(np.transpose(kernel, (2, 1, 0)).copy(), requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    natural = (x.shape[1] - 1) * stride - 2 * before + (kernel.shape[0] - 1) * dilation + 1
    extra = max(out_len - natural, 0)
    assert extra < max(stride, dilation)        # within PyTorch's output_padding
    y = F.conv_transpose1d(xt, wt, bt, stride=stride, padding=before, output_padding=extra,
                           dilation=dilation)[:, :, :out_len]
    (y * torch.tensor(np.transpose(dy, (0, 2, 1)))).sum().backward()
    return (np.transpose(y.detach().numpy(), (0, 2, 1)), np.transpose(xt.grad.numpy(), (0, 2, 1)),
            np.transpose(wt.grad.numpy(), (2, 1, 0)), bt.grad.numpy())


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("shape, filters, kernel, strides, dilation, padding, extra", CASES)
def test_matches_pytorch_in_float64(backend, shape, filters, kernel, strides, dilation,
                                    padding, extra):
    torch = pytest.importorskip("torch")
    model, layer = _model(backend, shape, filters=filters, kernel_size=kernel, strides=strides,
                          dilation_rate=dilation, padding=padding, output_padding=extra,
                          bias_initializer="glorot_uniform")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, *shape))
    y = model.forward(x)
    dy = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dy)
    kernel_w, bias_w = layer.get_weights()
    assert kernel_w.shape == (kernel, filters, shape[1])           # Keras' layout
    _, (before,) = layer._geometry(shape[:-1])
    ty, tdx, tdk, tdb = _torch_reference(torch, x, kernel_w, bias_w, strides, dilation, before,
                                         y.shape[1], dy)
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
            model, _ = _model(backend, shape, dtype, 5, filters=filters, kernel_size=kernel,
                              strides=strides, padding=padding, output_padding=extra,
                              dilation_rate=dilation, activation="tanh")
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


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("case", CASES[2:9])
def test_the_same_numbers_as_conv2d_transpose_on_a_height_of_one(backend, case):
    shape, filters, kernel, strides, dilation, padding, extra = case
    one, layer1 = _model(backend, shape, "float32", filters=filters, kernel_size=kernel,
                         strides=strides, dilation_rate=dilation, padding=padding,
                         output_padding=extra, activation="relu")
    layer2 = fnn.Conv2DTranspose(filters, (1, kernel), strides=(1, strides),
                                 dilation_rate=(1, dilation), padding=padding,
                                 output_padding=None if extra is None else (0, extra),
                                 activation="relu")
    two = fnn.Sequential([layer2], input_shape=(1, *shape), seed=3, backend=backend)
    layer2.set_weights([layer1.get_weights()[0][None], layer1.get_weights()[1]])
    x = np.random.default_rng(6).standard_normal((5, *shape)).astype(np.float32)
    y1, y2 = one.forward(x), two.forward(x[:, None])
    assert y1.tobytes() == y2[:, 0].tobytes()
    dy = np.random.default_rng(7).standard_normal(y1.shape).astype(np.float32)
    one.zero_grad()
    two.zero_grad()
    assert one.backward(dy).tobytes() == two.backward(dy[:, None])[:, 0].tobytes()
    assert [g.tobytes() for g in one.grads] == [g.tobytes() for g in two.grads]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("shape, filters, kernel, strides, dilation, padding, extra",
                         [c for c in CASES if c[4] == 1])
def test_output_lengths_and_same_placement_match_keras(keras, shape, filters, kernel, strides,
                                                       dilation, padding, extra):
    model, layer = _model("fast", shape, filters=filters, kernel_size=kernel, strides=strides,
                          padding=padding, output_padding=extra,
                          bias_initializer="glorot_uniform")
    km = keras.Sequential([keras.Input(shape), keras.layers.Conv1DTranspose(
        filters, kernel, strides=strides, padding=padding, output_padding=extra)])
    km.set_weights(layer.get_weights())
    x = np.random.default_rng(4).standard_normal((2, *shape)).astype(np.float32)
    ours, theirs = model.predict(x.astype(np.float64)), np.asarray(km(x))
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_an_upsampling_decoder_learns(backend):
    """Conv1D down, Conv1DTranspose back up: an autoencoder of smooth signals gets close."""
    t = np.linspace(0, 1, 16)
    rng = np.random.default_rng(0)
    X = np.stack([np.sin(2 * np.pi * (f * t + p)) for f, p in
                  zip(rng.uniform(0.5, 1.5, 64), rng.uniform(0, 1, 64))])[..., None]
    model = fnn.Sequential([fnn.Conv1D(8, 4, strides=2, padding="same", activation="tanh"),
                            fnn.Conv1DTranspose(8, 4, strides=2, padding="same",
                                                activation="tanh"),
                            fnn.Conv1DTranspose(1, 3, padding="same")],
                           input_shape=(16, 1), seed=0, backend=backend)
    model.compile("mse", fnn.Adam(0.01))
    before = model.evaluate(X, X.reshape(64, -1))["loss"]
    model.fit(X, X.reshape(64, -1), epochs=60, batch_size=16, verbose=0)
    after = model.evaluate(X, X.reshape(64, -1))["loss"]
    assert after < before / 10 and after < 0.02, (before, after)


def test_config_files_and_summary(tmp_path, capsys):
    model = fnn.Sequential([
        fnn.Conv1DTranspose(3, 4, strides=3, output_padding=2, activation="relu", name="up",
                            kernel_regularizer=fnn.regularizers.L2(1e-3)),
        fnn.Conv1DTranspose(2, 2, dilation_rate=2, padding="same", use_bias=False)],
        input_shape=(5, 4), seed=1)
    assert model.output_shape == ((5 - 1) * 3 + 4 + 2, 2) == (18, 2)
    config = model.get_config()["layers"]
    assert config[0]["class"] == "Conv1DTranspose" and config[0]["output_padding"] == [2]
    assert config[0]["kernel_size"] == [4] and config[0]["strides"] == [3]
    assert config[1]["dilation_rate"] == [2] and config[1]["use_bias"] is False
    model.save(tmp_path / "g.fnn")
    loaded = fnn.load(tmp_path / "g.fnn")
    x = np.random.default_rng(0).standard_normal((3, 5, 4))
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
    assert loaded.get_config() == model.get_config()
    assert [w.shape for w in model.get_weights()] == [(4, 3, 4), (3,), (2, 2, 3)]
    assert repr(model.layers[0]) == "Conv1DTranspose(3, 4, activation='relu')"
    same = fnn.layers.layer_from_config(config[0])
    assert type(same) is fnn.Conv1DTranspose and same.output_padding == (2,)
    model.summary()
    out = capsys.readouterr().out
    assert "up (Conv1DTranspose)" in out and "(None, 18, 3)" in out
    assert "(None, 18, 2)" in out and str(4 * 3 * 4 + 3) in out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_keras_weights_file_loads(keras, tmp_path):
    """A Keras .weights.h5 of Conv1D, Conv1DTranspose and Dense fills the same fastnn model."""
    pytest.importorskip("h5py")
    L = keras.layers
    km = keras.Sequential([keras.Input((6, 3)), L.Conv1D(4, 3, strides=2, padding="same"),
                           L.Conv1DTranspose(2, 4, strides=2, padding="same", activation="relu"),
                           L.Conv1DTranspose(3, 3, strides=3, output_padding=1),
                           L.Flatten(), L.Dense(2)])
    rng = np.random.default_rng(0)
    km.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in km.get_weights()])
    km.save_weights(tmp_path / "t.weights.h5")
    fm = fnn.Sequential([fnn.Conv1D(4, 3, strides=2, padding="same"),
                         fnn.Conv1DTranspose(2, 4, strides=2, padding="same", activation="relu"),
                         fnn.Conv1DTranspose(3, 3, strides=3, output_padding=1), fnn.Flatten(),
                         fnn.Dense(2)], input_shape=(6, 3))
    fm.load_weights(tmp_path / "t.weights.h5")
    x = rng.normal(size=(3, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(fm.predict(x), km.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32"])
@pytest.mark.parametrize("case", CASES)
def test_onnx_export_matches_onnxruntime(case, dtype, tmp_path):
    """ConvTranspose with 1-D attributes; onnxruntime's CPU kernels are float32 only."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    shape, filters, kernel, strides, dilation, padding, extra = case
    model, _ = _model("fast", shape, dtype, filters=filters, kernel_size=kernel,
                      strides=strides, dilation_rate=dilation, padding=padding,
                      output_padding=extra, activation="tanh",
                      bias_initializer="glorot_uniform")
    path = fnn.onnx.export(model, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(path), full_check=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for rows in (1, 4):
        x = np.random.default_rng(rows).standard_normal((rows, *shape)).astype(dtype)
        (got,) = session.run(None, {session.get_inputs()[0].name: x})
        np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: fnn.Conv1DTranspose(2, 3, strides=2, output_padding=2), ValueError,
     r"output_padding must be below the strides \(2,\)"),
    (lambda: fnn.Conv1DTranspose(2, 3, strides=2, output_padding=(1, 1)), ValueError,
     r"output_padding must be an integer or a tuple of one integer. Received: output_padding="
     r"\(1, 1\)"),
    (lambda: fnn.Conv1DTranspose(2, 3, strides=2, output_padding=-1), ValueError,
     r"output_padding"),
    (lambda: fnn.Conv1DTranspose(2, 3, strides=2, output_padding=1.0), TypeError,
     r"output_padding=1\.0"),
    (lambda: fnn.Conv1DTranspose(2, 3, padding="causal"), ValueError,
     r"padding must be one of"),
    (lambda: fnn.Conv1DTranspose(2, (3, 3)), ValueError, r"kernel_size"),
    (lambda: fnn.Conv1DTranspose(2, 0), ValueError, r"kernel_size"),
    (lambda: fnn.Conv1DTranspose(2, 3, strides=0), ValueError, r"strides"),
    (lambda: fnn.Conv1DTranspose(2, 3, dilation_rate=-1), ValueError, r"dilation_rate"),
    (lambda: fnn.Conv1DTranspose(2, 3, data_format="channels_first"), ValueError,
     r"channels-last"),
    (lambda: fnn.Conv1DTranspose(0, 3), ValueError, r"filters"),
    (lambda: fnn.Conv1DTranspose(2**31, 3), ValueError, r"filters must be below 2\*\*31"),
    (lambda: fnn.Conv1DTranspose(2, "3"), TypeError, r"kernel_size"),
    (lambda: fnn.Conv1DTranspose(2, 3, activation="swishy"), ValueError, r"swishy"),
    (lambda: fnn.Conv1DTranspose(2, 3, use_bias=1), TypeError, r"use_bias"),
])
def test_bad_arguments_are_refused_naming_them(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize("layer, shape, pattern", [
    (lambda: fnn.Conv1DTranspose(2, 3), (4, 4, 2),
     r"takes one input of shape \(steps, channels\)"),
    (lambda: fnn.Conv1DTranspose(2, 3), (4,), r"takes one input of shape \(steps, channels\)"),
    (lambda: fnn.Conv1DTranspose(2, 2, padding="same", output_padding=0), (1, 1),
     r"each must be from 1"),
    (lambda: fnn.Conv1DTranspose(2, 3, strides=2**20), (2**12, 1), r"2\*\*31 - 1"),
])
def test_shapes_that_do_not_fit_are_refused_at_build(layer, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        fnn.Sequential([layer()], input_shape=shape)
