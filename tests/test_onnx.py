"""fastnn.onnx: export of every layer kind (checked by onnx.checker and onnxruntime), import of
fastnn's own exports (bitwise the same predictions) and of PyTorch's, and the refusals."""

import os

import numpy as np
import pytest

import fastnn as fnn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _mha_model(dtype):
    inp = fnn.Input((6, 4))
    q = fnn.PositionalEmbedding(6)(fnn.SinePositionEncoding()(inp))
    h = fnn.MultiHeadAttention(num_heads=2, key_dim=3)(q, inp, use_causal_mask=True)
    return fnn.Model(inp, fnn.LayerNormalization()(fnn.Add()([h, q])), seed=0, dtype=dtype)


def _transformer(dtype):
    inp = fnn.Input((6, 4))
    t = fnn.TransformerBlock(num_heads=2, key_dim=3, ff_dim=8)(inp)
    t = fnn.TransformerBlock(num_heads=2, key_dim=3, ff_dim=8, causal=True, norm_first=False,
                             activation="relu")(t)
    return fnn.Model(inp, t, seed=0, dtype=dtype)


def _merge(dtype):
    inp = fnn.Input((6, 4))
    a, b = fnn.Dense(3)(inp), fnn.Dense(3, activation="relu")(inp)
    return fnn.Model(inp, [fnn.Concatenate()([a, b]), fnn.Add()([a, b])], seed=0, dtype=dtype)


def _seq(layers, shape):
    return lambda dtype: fnn.Sequential(layers(), input_shape=shape, seed=0, dtype=dtype)


ACTS = ["linear", "step", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "gelu",
        "gelu_tanh", "elu", "selu", "softplus", "silu"]
# exported but not read back: gelu (before opset 20: its formula), silu (x * Sigmoid(x))
_NO_IMPORT = ("gelu", "gelu_tanh", "silu")
#: (name, model maker, sample shape, integer ids?, imports back?)
KINDS = [
    *[(f"dense_{a}", _seq(lambda a=a: [fnn.Dense(8, activation=a), fnn.Dense(3)], (5,)), (5,),
       False, a not in _NO_IMPORT) for a in ACTS],
    ("elu_layer_alpha", _seq(lambda: [fnn.Dense(8), fnn.ELU(0.3)], (5,)), (5,), False, True),
    ("dense_elu_alpha", _seq(lambda: [fnn.Dense(8, activation=fnn.ELU(2.5)), fnn.Dense(3)],
                             (5,)), (5,), False, True),
    *[(f"activation_{a}", _seq(lambda a=a: [fnn.Dense(8), fnn.Activation(a)], (5,)), (5,),
       False, a not in _NO_IMPORT) for a in ACTS],
    ("conv2d_pool", _seq(lambda: [fnn.Conv2D(4, 3, activation="relu", padding="same"),
                                  fnn.MaxPooling2D(), fnn.Conv2D(3, 2, strides=2),
                                  fnn.AveragePooling2D(padding="same"), fnn.Flatten(),
                                  fnn.Dense(5), fnn.Softmax()], (12, 12, 2)), (12, 12, 2),
     False, True),
    ("conv2d_transpose", _seq(lambda: [
        fnn.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
        fnn.UpSampling2D((2, 3)), fnn.Conv2DTranspose(3, (2, 3), strides=(3, 1)),
        fnn.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1,
                            activation="tanh"),
        fnn.Conv2DTranspose(2, 2, dilation_rate=2, output_padding=0, use_bias=False)],
        (3, 2, 2)), (3, 2, 2), False, False),        # UpSampling2D's Resize is not read
    ("conv2d_transpose_read", _seq(lambda: [
        fnn.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
        fnn.Conv2DTranspose(3, (2, 3), strides=(3, 1)),
        fnn.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1,
                            activation="tanh"),
        fnn.Conv2DTranspose(2, 2, dilation_rate=2, output_padding=0, use_bias=False),
        fnn.Conv2DTranspose(2, 1, strides=3, padding="same")], (3, 2, 2)), (3, 2, 2),
     False, True),
    ("conv1d_transpose", _seq(lambda: [
        fnn.Conv1DTranspose(3, 4, strides=2, padding="same", activation="relu"),
        fnn.Conv1DTranspose(2, 3, strides=3, output_padding=1),
        fnn.Conv1DTranspose(2, 2, dilation_rate=2, padding="same", use_bias=False)], (5, 2)),
     (5, 2), False, True),
    ("depthwise2d", _seq(lambda: [
        fnn.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu"),
        fnn.DepthwiseConv2D((2, 3), strides=(2, 1), dilation_rate=1, use_bias=False),
        fnn.DepthwiseConv2D(2, dilation_rate=2, activation="tanh")], (9, 8, 3)), (9, 8, 3),
     False, True),
    ("separable2d", _seq(lambda: [
        fnn.SeparableConv2D(5, 3, padding="same", depth_multiplier=2, activation="relu"),
        fnn.SeparableConv2D(4, 3, strides=2, use_bias=False),
        fnn.Conv2D(3, 1), fnn.GlobalAveragePooling2D()], (9, 8, 3)), (9, 8, 3), False, True),
    ("depthwise_separable1d", _seq(lambda: [
        fnn.DepthwiseConv1D(3, padding="same", depth_multiplier=3, activation="relu"),
        fnn.SeparableConv1D(4, 3, strides=2, dilation_rate=1, activation="tanh"),
        fnn.SeparableConv1D(2, 2, dilation_rate=2, padding="same", use_bias=False)], (11, 2)),
     (11, 2), False, True),
    ("upsampling1d", _seq(lambda: [fnn.UpSampling1D(3), fnn.Dense(2)], (4, 2)), (4, 2),
     False, False),
    # Permute exports as Transpose, read back as Permute where the layout does not absorb it
    ("permute_last", _seq(lambda: [fnn.Dense(4), fnn.Permute((2, 1))], (3, 5)), (3, 5),
     False, True),
    ("permute_3d_then_dense", _seq(lambda: [fnn.Permute((3, 1, 2)), fnn.Dense(3),
                                            fnn.Permute((2, 3, 1))], (2, 3, 4)), (2, 3, 4),
     False, True),
    ("padding_cropping2d", _seq(lambda: [
        fnn.ZeroPadding2D(((1, 2), (0, 3))), fnn.Conv2D(3, 2), fnn.Cropping2D(((2, 0), (1, 1))),
        fnn.ZeroPadding2D(1), fnn.Cropping2D(((0, 1), (2, 0)))], (5, 4, 2)), (5, 4, 2),
     False, False),
    ("conv_time_distributed", _seq(lambda: [
        fnn.TimeDistributed(fnn.Conv2D(3, 2, activation="relu")),
        fnn.TimeDistributed(fnn.MaxPooling2D()), fnn.TimeDistributed(fnn.Flatten()),
        fnn.GRU(4)], (3, 5, 4, 2)), (3, 5, 4, 2), False, False),
    ("time_distributed_dense", _seq(lambda: [
        fnn.TimeDistributed(fnn.Dense(4, activation="tanh")), fnn.TimeDistributed(fnn.Dense(2))],
        (5, 3)), (5, 3), False, False),
    ("pad_crop_repeat", _seq(lambda: [
        fnn.ZeroPadding1D((2, 1)), fnn.Cropping1D((0, 3)), fnn.Flatten(), fnn.Dense(3),
        fnn.RepeatVector(4), fnn.Reshape((4, 3, 1)),
        fnn.ZeroPadding2D(((0, 1), (1, 2))), fnn.Cropping2D(((1, 1), (0, 2))), fnn.Flatten()],
        (6, 2)), (6, 2), False, False),
    ("conv1d_bn", _seq(lambda: [fnn.Conv1D(4, 3, activation="tanh", padding="same"),
                                fnn.MaxPooling1D(), fnn.BatchNormalization(),
                                fnn.AveragePooling1D(), fnn.GlobalAveragePooling1D()], (12, 2)),
     (12, 2), False, True),
    ("global_reshape_ln", _seq(lambda: [fnn.Conv2D(4, 3, dilation_rate=2), fnn.GlobalMaxPooling2D(),
                                        fnn.Dropout(0.5), fnn.Reshape((2, 2)),
                                        fnn.LayerNormalization(), fnn.Flatten(),
                                        fnn.BatchNormalization()], (6, 6, 2)), (6, 6, 2),
     False, True),
    *[(f"{cls.__name__}_rs{rs}_gb{gb}", _seq(lambda c=cls, r=rs, g=gb: [
        c(4, return_sequences=r, go_backwards=g)], (6, 3)), (6, 3), False, not (rs and gb))
      for cls in (fnn.SimpleRNN, fnn.LSTM, fnn.GRU) for rs in (False, True)
      for gb in (False, True)],
    *[(f"bidirectional_{m}", _seq(lambda m=m: [
        fnn.Bidirectional(fnn.GRU(4, return_sequences=True), merge_mode=m),
        fnn.Bidirectional(fnn.LSTM(3), merge_mode=m)], (6, 3)), (6, 3), False,
       m in ("concat", "sum")) for m in ("concat", "sum", "ave", "mul")],
    ("embedding", _seq(lambda: [fnn.Embedding(10, 4), fnn.LSTM(3, return_sequences=True),
                                fnn.GRU(3)], (5,)), (5,), True, True),
    ("positions", _seq(lambda: [fnn.SinePositionEncoding(), fnn.PositionalEmbedding(6)],
                       (6, 4)), (6, 4), False, True),
    ("attention", _mha_model, (6, 4), False, False),
    ("transformer", _transformer, (6, 4), False, False),
    ("merge", _merge, (6, 4), False, True),
]
IDS = [k[0] for k in KINDS]


def _x(shape, rows, ids, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if ids:
        return rng.integers(0, 10, size=(rows, *shape)).astype(dtype)
    return rng.normal(size=(rows, *shape)).astype(dtype)


def _flat(y):
    return np.concatenate([a.ravel() for a in y]) if isinstance(y, list) else y


def _ort(path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    s = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_export_matches_onnxruntime_float32(kind, tmp_path):
    name, make, shape, ids, _ = kind
    model = make("float32")
    path = fnn.onnx.export(model, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(path), full_check=True)
    for rows in (1, 7):                         # the batch dimension is dynamic
        x = _x(shape, rows, ids, np.float32)
        got, want = _ort(path, x), model.predict(x)
        want = want if isinstance(want, list) else [want]
        for g, w in zip(got, want):
            # gelu before opset 20 is 0.5 x (1 + erf(x / sqrt 2)): absolute error near 0
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


# onnxruntime (1.2x) has no float64 CPU kernels for Conv, ConvTranspose, Resize, the pooling
# ops, the recurrent ops or Erf (gelu before opset 20); LayerNormalization's and BatchNormalization's epsilon are
# float32 attributes, so float64 models with them agree to about 1e-9 only
F64 = [k for k in KINDS if not k[0].startswith(("conv", "depthwise", "separable", "global",
                                                "SimpleRNN", "LSTM", "GRU",
                                                "bidirectional", "embedding", "upsampling",
                                                "padding_cropping2d"))
       and "gelu" not in k[0] and k[0] not in ("transformer", "attention")]


@pytest.mark.parametrize("kind", F64, ids=[k[0] for k in F64])
def test_export_matches_onnxruntime_float64(kind, tmp_path):
    name, make, shape, ids, _ = kind
    model = make("float64")
    path = fnn.onnx.export(model, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(path), full_check=True)
    x = _x(shape, 7, ids, np.float64)
    got, want = _ort(path, x), model.predict(x)
    for g, w in zip(got, want if isinstance(want, list) else [want]):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_round_trip_is_bitwise_or_refused_by_name(kind, tmp_path):
    name, make, shape, ids, imports = kind
    model = make("float32")
    path = fnn.onnx.export(model, tmp_path / "m.onnx")
    if not imports:
        with pytest.raises(ValueError, match=r"node '.*' \(\w+\) is not supported"):
            fnn.onnx.load(path)
        return
    back = fnn.onnx.load(path)
    x = _x(shape, 7, ids, np.float32, seed=1)
    assert np.array_equal(_flat(model.predict(x)), _flat(back.predict(x)))


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh"])
def test_gelu_round_trips_from_opset_20(act, tmp_path):
    model = fnn.Sequential([fnn.Dense(8, activation=act)], input_dim=5, seed=0)
    path = fnn.onnx.export(model, tmp_path / "m.onnx", opset=20)
    x = _x((5,), 7, False, np.float32)
    np.testing.assert_allclose(_ort(path, x)[0], model.predict(x), rtol=1e-5, atol=1e-6)
    assert np.array_equal(fnn.onnx.load(path).predict(x), model.predict(x))


def test_float64_round_trip(tmp_path):
    model = fnn.Sequential([fnn.Conv2D(3, 3), fnn.Flatten(), fnn.Dense(4, activation="tanh")],
                           input_shape=(5, 5, 2), seed=0, dtype="float64")
    back = fnn.onnx.load(fnn.onnx.export(model, tmp_path / "m.onnx"))
    x = _x((5, 5, 2), 3, False, np.float64)
    assert back.dtype == np.float64 and np.array_equal(back.predict(x), model.predict(x))


# ------------------------------------------------------------------ PyTorch's exports
def _torch_models():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Recurrent(nn.Module):
        def __init__(self, cell, last_state):
            super().__init__()
            self.rnn, self.fc, self.last_state = cell(3, 5, batch_first=True), nn.Linear(5, 2), \
                last_state

        def forward(self, x):
            y, h = self.rnn(x)
            return self.fc(h[-1] if self.last_state else y[:, -1])

    class Bidirectional(nn.Module):
        def __init__(self, cell, sequence):
            super().__init__()
            self.rnn = cell(3, 4, batch_first=True, bidirectional=True)
            self.fc, self.sequence = nn.Linear(8, 2), sequence

        def forward(self, x):
            y, h = self.rnn(x)
            h = h[0] if isinstance(h, tuple) else h
            return self.fc(y if self.sequence else torch.cat([h[-2], h[-1]], dim=1))

    torch.manual_seed(0)
    return torch, {
        "bilstm_sequence": (Bidirectional(nn.LSTM, True), (6, 3)),
        "bigru_last_states": (Bidirectional(nn.GRU, False), (6, 3)),
        "mlp": (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=1)),
                (4,)),
        "cnn": (nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(4, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(8, 3)),
                (1, 8, 8)),
        "lstm": (Recurrent(nn.LSTM, False), (6, 3)),
        "gru": (Recurrent(nn.GRU, True), (6, 3)),
        "rnn": (Recurrent(nn.RNN, False), (6, 3)),
        "bn2d_avgpool": (nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4),
                                       nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)),
                         (2, 4, 4)),
        "conv1d": (nn.Sequential(nn.Conv1d(3, 4, 3), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(),
                                 nn.Linear(12, 2)), (3, 8)),
        "layernorm_gelu": (nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.GELU(),
                                         nn.Linear(6, 2)), (4,)),
        "bn1d_dropout": (nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(),
                                       nn.Dropout(0.3), nn.Linear(6, 2), nn.LeakyReLU(0.2)),
                         (4,)),
        "global_avgpool": (nn.Sequential(nn.Conv2d(2, 4, 3), nn.AdaptiveAvgPool2d(1),
                                         nn.Flatten(), nn.Linear(4, 2)), (2, 6, 6)),
    }


@pytest.mark.parametrize("name", ["mlp", "cnn", "lstm", "gru", "rnn", "bn2d_avgpool", "conv1d",
                                  "layernorm_gelu", "bn1d_dropout", "global_avgpool",
                                  "bilstm_sequence", "bigru_last_states"])
def test_import_of_torch_exports(name, tmp_path):
    torch, models = _torch_models()
    nn = torch.nn
    module, shape = models[name]
    module.eval()
    for bn in module.modules():                   # statistics that are not the identity
        if isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, *shape)
    path = str(tmp_path / f"{name}.onnx")
    torch.onnx.export(module, (x,), path, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    model = fnn.onnx.load(path)
    x = np.random.default_rng(0).normal(size=(7, *shape)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    fx = np.moveaxis(x, 1, -1) if model.input_shape != shape else x   # NC... -> channels-last
    np.testing.assert_allclose(model.predict(fx), want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ refusals
def _graph_file(path, nodes, inits, out_shape=(3,)):
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", *out_shape])], inits)
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
                    str(path))
    return str(path)


def test_unsupported_node_is_named(tmp_path):
    from onnx import helper
    path = _graph_file(tmp_path / "m.onnx", [helper.make_node("Sin", ["x"], ["y"],
                                                              name="my_sine")], [])
    with pytest.raises(ValueError, match=r"node 'my_sine' \(Sin\) is not supported"):
        fnn.onnx.load(path)


def test_external_data_outside_the_model_dir_is_refused(tmp_path):
    from onnx import TensorProto, helper
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3, 3])
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../secret.bin"), ("length", "36")):
        e = w.external_data.add()
        e.key, e.value = key, value
    (tmp_path / "secret.bin").write_bytes(b"\0" * 36)
    (tmp_path / "model").mkdir()
    path = _graph_file(tmp_path / "model" / "m.onnx",
                       [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [w])
    with pytest.raises(ValueError, match="outside|inside the model's directory|fails onnx"):
        fnn.onnx.load(path)


@pytest.mark.parametrize("dims, what", [([3, 2**30], "more than"), ([3, 4], "need 48 bytes")])
def test_tensor_sizes_are_checked_before_allocation(dims, what, tmp_path):
    from onnx import TensorProto, helper
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=dims, raw_data=b"\0" * 36)
    path = tmp_path / "m.onnx"
    model = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", dims[1]])], [w]),
        opset_imports=[helper.make_opsetid("", 18)])
    path.write_bytes(model.SerializeToString())       # (the checker would refuse some first)
    with pytest.raises(ValueError, match=what):
        fnn.onnx.load(str(path))


def test_bad_arguments(tmp_path):
    model = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=0)
    with pytest.raises(ValueError, match="opset"):
        fnn.onnx.export(model, tmp_path / "m.onnx", opset=10)
    with pytest.raises(ValueError, match="built"):
        fnn.onnx.export(fnn.Sequential([fnn.Dense(2)]), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="fastnn model"):
        fnn.onnx.export(object(), tmp_path / "m.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\xff\x00 not protobuf")
    with pytest.raises(ValueError):
        fnn.onnx.load(tmp_path / "junk.onnx")
    with pytest.raises(ValueError, match="regular file|directory"):
        fnn.onnx.load(tmp_path)


def test_missing_onnx_names_the_extra(monkeypatch, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "onnx", None)
    model = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=0)
    with pytest.raises(ImportError, match=r'pip install "fastnn\[onnx\]"'):
        fnn.onnx.export(model, tmp_path / "m.onnx")


def test_the_readme_snippets_run(tmp_path, monkeypatch, capsys):
    """The snippets of "Bring your model" / "ONNX" run and print True each time."""
    import pathlib
    import re
    pytest.importorskip("torch")
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    section = text.split("## Bring your model\n", 1)[1].split("\n## ", 1)[0]
    section = section.split("### ONNX\n", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, "README.md", "exec"), namespace)
    assert capsys.readouterr().out.split() == ["True"] * 3


def _nested():
    inner = fnn.Sequential([fnn.Dense(4, activation="relu"), fnn.Dense(2)], input_dim=3, seed=0)
    return fnn.Sequential([fnn.Dense(3), inner, fnn.Softmax()], input_dim=5, seed=1), [(5,)]


def _states():
    inp = fnn.Input((6, 3))
    y, h, c = fnn.LSTM(4, return_sequences=True, return_state=True)(inp)
    return fnn.Model(inp, [fnn.GRU(4)(fnn.LSTM(4, return_sequences=True)(
        y, initial_state=[h, c]), initial_state=h), h], seed=0), [(6, 3)]


def _key_mask():
    x, m = fnn.Input((5, 4)), fnn.Input((5,))
    o = fnn.MultiHeadAttention(num_heads=2, key_dim=2)(x, x, attention_mask=m)
    return fnn.Model([x, m], o, seed=0), [(5, 4), (5,)]


@pytest.mark.parametrize("make, imports", [(_nested, True), (_states, True),
                                           (_key_mask, False)],
                         ids=["nested_model", "return_and_initial_states", "key_mask"])
def test_graphs_with_several_tensors(make, imports, tmp_path):
    """A model inside a model, recurrent states out and in, a key padding mask (a sample
    whose keys are all padded gets zeros, as in fastnn)."""
    model, shapes = make()
    path = fnn.onnx.export(model, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(path), full_check=True)
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(4, *s)).astype(np.float32) for s in shapes]
    if len(xs) == 2:
        xs[1] = (rng.random((4, 5)) > 0.4).astype(np.float32)
        xs[1][0] = 0
    x = xs if len(xs) > 1 else xs[0]
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = s.run(None, {i.name: a for i, a in zip(s.get_inputs(), xs)})
    want = model.predict(x)
    for g, w in zip(got, want if isinstance(want, list) else [want]):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    if imports:
        assert np.array_equal(_flat(fnn.onnx.load(path).predict(x)), _flat(want))


def test_augmentation_exports_as_inference_and_sizing_is_refused(tmp_path):
    """The augmentation layers do nothing in inference (an Identity, checked by onnxruntime);
    Resizing, CenterCrop and RandomCrop change the images there too and have no ONNX form
    here: refused by name, never written as an Identity."""
    model = fnn.Sequential([fnn.RandomFlip(), fnn.RandomRotation(0.2), fnn.RandomZoom(0.1),
                            fnn.RandomTranslation(0.1, 0.1), fnn.RandomContrast(0.2),
                            fnn.Identity(), fnn.Conv2D(3, 3), fnn.Flatten(), fnn.Dense(2)],
                           input_shape=(6, 6, 2), seed=0)
    path = fnn.onnx.export(model, tmp_path / "aug.onnx")
    x = np.random.default_rng(0).standard_normal((3, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(_ort(path, x)[0], model.predict(x), rtol=1e-5, atol=1e-6)
    for layer in (fnn.Resizing(4, 4), fnn.CenterCrop(4, 4), fnn.RandomCrop(4, 4),
                  fnn.PReLU(), fnn.GroupNormalization(2)):
        sized = fnn.Sequential([layer, fnn.Flatten(), fnn.Dense(2)], input_shape=(6, 6, 2))
        with pytest.raises(ValueError, match=f"{type(layer).__name__} layer .* has no ONNX"):
            fnn.onnx.export(sized, tmp_path / "sized.onnx")
        assert not (tmp_path / "sized.onnx").exists()
