"""fastnn.onnx.load of depthwise (grouped) Conv, depthwise + 1x1 Conv pairs (separable layers)
and ConvTranspose: fastnn's own exports come back as the same layers, PyTorch's exports match
PyTorch, and what fastnn's layers cannot express is refused by name."""

import numpy as np
import pytest

import fastnn as fnn

onnx = pytest.importorskip("onnx")


def _layers(model):
    return [type(layer).__name__ for layer in model.layers]


def test_own_exports_come_back_as_the_same_layers(tmp_path):
    model = fnn.Sequential([
        fnn.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu"),
        fnn.SeparableConv2D(4, 3, strides=2, activation="tanh"),
        fnn.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1),
        fnn.Conv2D(2, 1)], input_shape=(9, 8, 3), seed=0)
    back = fnn.onnx.load(fnn.onnx.export(model, tmp_path / "m.onnx"))
    assert _layers(back) == ["DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Conv2D"]
    for a, b in zip(model.layers, back.layers):      # (an output_padding that changes nothing
        same = {"name": "", "output_padding": None}  # comes back as none)
        assert a.get_config() | same == b.get_config() | same
    x = np.random.default_rng(0).normal(size=(4, 9, 8, 3)).astype(np.float32)
    assert np.array_equal(model.predict(x), back.predict(x))


def test_float64_round_trip_1d(tmp_path):
    model = fnn.Sequential([fnn.SeparableConv1D(3, 3, depth_multiplier=2, padding="same"),
                            fnn.DepthwiseConv1D(2, use_bias=False),
                            fnn.Conv1DTranspose(2, 3, strides=2, output_padding=1)],
                           input_shape=(7, 2), seed=0, dtype="float64")
    back = fnn.onnx.load(fnn.onnx.export(model, tmp_path / "m.onnx"))
    assert _layers(back) == ["SeparableConv1D", "DepthwiseConv1D", "Conv1DTranspose"]
    x = np.random.default_rng(1).normal(size=(3, 7, 2))
    assert back.dtype == np.float64 and np.array_equal(model.predict(x), back.predict(x))


def _torch_modules():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    return torch, {
        "depthwise": (nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, groups=3), nn.ReLU()),
                      (3, 7, 6), ["DepthwiseConv2D"]),
        "mobilenet_block": (nn.Sequential(
            nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, bias=False),
            nn.Conv2d(4, 8, 1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, groups=8, dilation=2, bias=False),
            nn.Conv2d(8, 2, 1, bias=False)),
            (4, 9, 9), ["SeparableConv2D", "SeparableConv2D"]),
        "depthwise1d": (nn.Sequential(nn.Conv1d(2, 4, 3, groups=2, padding=1),
                                      nn.Conv1d(4, 4, 3, groups=4, bias=False),
                                      nn.Conv1d(4, 3, 1)),
                        (2, 8), ["DepthwiseConv1D", "SeparableConv1D"]),
        "conv_transpose2d": (nn.Sequential(
            nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), nn.Tanh(),
            nn.ConvTranspose2d(4, 2, (2, 3), stride=(2, 1)),
            nn.ConvTranspose2d(2, 2, 3, padding=1, dilation=1)),
            (3, 4, 5), ["Conv2DTranspose", "Cropping2D", "Activation", "Conv2DTranspose",
                        "Conv2DTranspose"]),
        "conv_transpose1d": (nn.Sequential(
            nn.ConvTranspose1d(2, 3, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose1d(3, 2, 3, stride=3, output_padding=2, dilation=2)),
            (2, 6), ["Conv1DTranspose", "Conv1DTranspose"]),      # the ReLU fused
    }


@pytest.mark.parametrize("name", ["depthwise", "mobilenet_block", "depthwise1d",
                                  "conv_transpose2d", "conv_transpose1d"])
def test_import_of_torch_exports(name, tmp_path):
    torch, modules = _torch_modules()
    module, shape, layers = modules[name]
    module.eval()
    path = str(tmp_path / f"{name}.onnx")
    torch.onnx.export(module, (torch.randn(2, *shape),), path, dynamo=False,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    model = fnn.onnx.load(path)
    assert _layers(model) == [*layers, "Permute"]     # PyTorch's NC... output
    x = np.random.default_rng(0).normal(size=(5, *shape)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    got = model.predict(np.moveaxis(x, 1, -1))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_torch_float64_matches_closely(tmp_path):
    torch, modules = _torch_modules()
    for name in ("mobilenet_block", "conv_transpose2d"):
        module, shape, _ = modules[name]
        module = module.double().eval()
        path = str(tmp_path / f"{name}.onnx")
        torch.onnx.export(module, (torch.randn(2, *shape, dtype=torch.float64),), path,
                          dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        model = fnn.onnx.load(path)
        x = np.random.default_rng(2).normal(size=(3, *shape))
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        got = model.predict(np.moveaxis(x, 1, -1))
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ refusals
def _file(path, op, w, out_shape, **attrs):
    from onnx import TensorProto, helper, numpy_helper
    node = helper.make_node(op, ["x", "w"], ["y"], name="the_conv", **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", *out_shape])],
        [numpy_helper.from_array(np.ones(w, np.float32), "w")])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
                    str(path))
    return str(path)


@pytest.mark.parametrize("op, w, out, attrs, message", [
    ("Conv", (6, 2, 3, 3), (6, 4, 4), {"group": 3},
     r"grouped Conv needs group dividing the input channels \(4\).*received group=3"),
    ("Conv", (4, 1, 3, 3), (4, 4, 4), {"group": 2},
     r"grouped Conv needs group.*received group=2, weight shape \[4, 1, 3, 3\]"),
    ("ConvTranspose", (4, 2, 3, 3), (2, 8, 8), {"output_shape": [8, 8]},
     r"output_shape is not supported"),
    ("ConvTranspose", (4, 1, 3, 3), (2, 8, 8), {"group": 2},
     r"grouped transposed convolutions are not supported; received group=2"),
    ("ConvTranspose", (4, 2, 3, 3), (2, 8, 8), {"auto_pad": "SAME_UPPER"},
     r"auto_pad is not supported"),
    ("ConvTranspose", (4, 2, 2, 2), (2, 15, 15), {"strides": [3, 3], "output_padding": [3, 3]},
     r"output_padding not below the strides"),
    ("ConvTranspose", (4, 2, 3, 3), (2, 1, 1), {"pads": [4, 4, 4, 4]},
     r"leave no output"),
    ("ConvTranspose", (4, 2, 3, 3), (2, 350003, 350003), {"strides": [70000, 70000]},
     r"more than 268435456 values"),
])
def test_refusals_name_the_node_and_the_reason(tmp_path, op, w, out, attrs, message):
    path = _file(tmp_path / "m.onnx", op, w, out, **attrs)
    with pytest.raises(ValueError, match=r"node 'the_conv' \(" + op + r"\) is not supported.*"
                       + message):
        fnn.onnx.load(path)


def test_cropped_transposed_window_matches_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 3],
                            pads=[2, 0, 1, 3], output_padding=[1, 2])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 5, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, None, None])],
        [numpy_helper.from_array(w, "w")])
    path = str(tmp_path / "m.onnx")
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    x = rng.normal(size=(2, 4, 5, 4)).astype(np.float32)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    model = fnn.onnx.load(path)
    assert _layers(model) == ["Conv2DTranspose", "Cropping2D", "Permute"]
    got = model.predict(np.moveaxis(x, 1, -1))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _save(path, nodes, inits, x_shape, y_shape):
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", *x_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", *y_shape])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
                    str(path))
    return str(path)


def test_a_constant_added_after_a_fused_activation_is_not_taken_as_the_bias(tmp_path):
    from onnx import helper
    rng = np.random.default_rng(4)
    w, b = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    path = _save(tmp_path / "m.onnx", [helper.make_node("MatMul", ["x", "w"], ["h"]),
                                       helper.make_node("Relu", ["h"], ["r"]),
                                       helper.make_node("Add", ["r", "b"], ["y"])],
                 {"w": w, "b": b}, (3,), (4,))
    x = rng.normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(fnn.onnx.load(path).predict(x), np.maximum(x @ w, 0) + b,
                               rtol=1e-5, atol=1e-6)


def test_bias_adds_after_depthwise_and_separable_convs_join_the_layer(tmp_path):
    from onnx import helper
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(5)
    inits = {"dk": rng.normal(size=(8, 1, 3, 3)).astype(np.float32),     # depth_multiplier 2
             "db": rng.normal(size=(1, 8, 1, 1)).astype(np.float32),
             "sk": rng.normal(size=(8, 1, 3, 3)).astype(np.float32),
             "pk": rng.normal(size=(3, 8, 1, 1)).astype(np.float32),
             "pb": rng.normal(size=(1, 3, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "dk"], ["d"], group=4, pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["d", "db"], ["d1"]),
             helper.make_node("Relu", ["d1"], ["d2"]),
             helper.make_node("Conv", ["d2", "sk"], ["s"], group=8),
             helper.make_node("Conv", ["s", "pk"], ["p"]),
             helper.make_node("Add", ["p", "pb"], ["y"])]
    path = _save(tmp_path / "m.onnx", nodes, inits, (4, 7, 6), (3, 5, 4))
    model = fnn.onnx.load(path)
    assert _layers(model) == ["DepthwiseConv2D", "SeparableConv2D", "Permute"]
    assert model.layers[0].use_bias and model.layers[1].use_bias
    x = rng.normal(size=(2, 4, 7, 6)).astype(np.float32)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(model.predict(np.moveaxis(x, 1, -1)), want, rtol=1e-5, atol=1e-5)


def test_slices_and_pads_of_rows_and_columns_are_cropping_and_zero_padding(tmp_path):
    from onnx import helper
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(6)
    inits = {"w": rng.normal(size=(3, 2, 3, 3)).astype(np.float32),
             "starts": np.array([1, 0], np.int64), "ends": np.array([-1, 100], np.int64),
             "axes": np.array([2, 3], np.int64), "pads": np.array([0, 0, 2, 0, 0, 0, 1, 3],
                                                                  np.int64)}
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["t"], strides=[2, 2]),
             helper.make_node("Slice", ["t", "starts", "ends", "axes"], ["s"]),
             helper.make_node("Relu", ["s"], ["r"]),
             helper.make_node("Pad", ["r", "pads"], ["y"])]
    path = _save(tmp_path / "m.onnx", nodes, inits, (3, 4, 5), (2, 10, 14))
    model = fnn.onnx.load(path)
    assert _layers(model) == ["Conv2DTranspose", "Cropping2D", "Activation", "ZeroPadding2D",
                              "Permute"]
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(model.predict(np.moveaxis(x, 1, -1)), want, rtol=1e-5, atol=1e-5)


def test_a_slice_of_channels_is_refused(tmp_path):
    from onnx import helper
    inits = {"w": np.ones((3, 2, 3, 3), np.float32), "starts": np.array([1], np.int64),
             "ends": np.array([2], np.int64), "axes": np.array([1], np.int64)}
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["t"]),
             helper.make_node("Slice", ["t", "starts", "ends", "axes"], ["y"], name="cut")]
    path = _save(tmp_path / "m.onnx", nodes, inits, (3, 4, 5), (1, 6, 7))
    with pytest.raises(ValueError, match=r"node 'cut' \(Slice\) is not supported.*rows and "
                                         r"columns"):
        fnn.onnx.load(path)


def test_forged_pads_are_refused_before_any_array(tmp_path):
    from onnx import helper
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Pad", ["r", "p"], ["y"], name="pad")]
    path = _save(tmp_path / "m.onnx", nodes,
                 {"p": np.array([0, 0, 2**25, 0, 0, 0, 2**25, 0], np.int64)},
                 (4, 6, 6), (None, None, None))
    with pytest.raises(ValueError, match=r"node 'pad' \(Pad\).*more than 268435456 values"):
        fnn.onnx.load(path)


# ------------------------------------------------------------------ 3-D layers
def _torch_3d_modules():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    return torch, {
        "conv3d_pools": (nn.Sequential(
            nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
            nn.Conv3d(4, 3, (2, 3, 1), stride=(1, 2, 1), dilation=(1, 1, 1)),
            nn.AvgPool3d((1, 2, 2), stride=1)),
            (2, 6, 10, 8), ["Conv3D", "Activation", "MaxPooling3D", "Conv3D", "AveragePooling3D",
                              "Permute"]),
        "conv3d_global_avg": (nn.Sequential(
            nn.Conv3d(3, 5, 3, stride=2, padding=1), nn.Tanh(), nn.AdaptiveAvgPool3d(1),
            nn.Flatten(), nn.Linear(5, 2)),
            (3, 5, 7, 9), None),
        "conv_transpose3d": (nn.Sequential(
            nn.ConvTranspose3d(3, 4, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose3d(4, 2, (2, 3, 3), stride=(2, 1, 1))),
            (3, 2, 3, 3), None),
    }


@pytest.mark.parametrize("name", ["conv3d_pools", "conv3d_global_avg", "conv_transpose3d"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_import_of_torch_3d_exports(name, dtype, tmp_path):
    torch, modules = _torch_3d_modules()
    module, shape, layers = modules[name]
    tdtype = torch.float64 if dtype == "float64" else torch.float32
    module = module.to(tdtype).eval()
    path = str(tmp_path / f"{name}.onnx")
    torch.onnx.export(module, (torch.randn(2, *shape, dtype=tdtype),), path, dynamo=False,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    model = fnn.onnx.load(path)
    if layers is not None:
        assert _layers(model) == layers
    used = set(_layers(model))
    assert used & {"Conv3D", "Conv3DTranspose"}
    x = np.random.default_rng(0).normal(size=(3, *shape)).astype(dtype)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    got = model.predict(np.moveaxis(x, 1, -1))
    if got.ndim == 5:
        got = np.moveaxis(got, -1, 1) if got.shape != want.shape else got
    tol = 1e-10 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=tol, atol=tol)


def test_own_3d_exports_come_back_and_run_in_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = fnn.Sequential([
        fnn.Conv3D(4, 3, padding="same", activation="relu"), fnn.MaxPooling3D(),
        fnn.Conv3DTranspose(3, 3, strides=2, padding="same", activation="tanh"),
        fnn.Conv3D(3, (1, 2, 2)), fnn.GlobalAveragePooling3D()],
        input_shape=(4, 6, 6, 2), seed=0)
    path = str(fnn.onnx.export(model, tmp_path / "m.onnx"))
    back = fnn.onnx.load(path)
    assert [n for n in _layers(back) if "3D" in n] == [
        "Conv3D", "MaxPooling3D", "Conv3DTranspose", "Conv3D", "GlobalAveragePooling3D"]
    x = np.random.default_rng(1).normal(size=(2, 4, 6, 6, 2)).astype(np.float32)
    want = model.predict(x)
    np.testing.assert_allclose(back.predict(x), want, rtol=1e-6, atol=1e-6)
    session = ort.InferenceSession(path)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["GlobalMaxPool", "GlobalAveragePool"])
def test_global_pools_over_5d_against_onnxruntime(op, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 2, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1] * 6),
             helper.make_node(op, ["c"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 3, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, 1, 1, 1])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    path = str(tmp_path / "g.onnx")
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
                    path)
    model = fnn.onnx.load(path)
    pool = "GlobalMaxPooling3D" if op == "GlobalMaxPool" else "GlobalAveragePooling3D"
    assert _layers(model)[:2] == ["Conv3D", pool]
    x = rng.normal(size=(3, 2, 3, 4, 5)).astype(np.float32)
    want = ort.InferenceSession(path).run(None, {"x": x})[0]
    got = model.predict(np.moveaxis(x, 1, -1))
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)
