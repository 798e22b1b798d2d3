"""``fastnn.onnx.load`` of a graph where one initializer is read by several nodes (what
fastnn's exporter writes for a shared layer, and PyTorch's for a module called twice): the
Dense layers read from the same initializers become one shared layer (the weights tied: one
copy, gradients summed over the calls); a round trip export -> load of a Siamese model predicts
as the model and onnxruntime do."""

import numpy as np
import pytest

import fastnn as fnn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _siamese(dtype="float64"):
    """Two inputs through one Dense tanh -> Dense relu tower, concatenated, a sigmoid Dense."""
    t1, t2 = fnn.Dense(5, activation="tanh"), fnn.Dense(4, activation="relu")
    a, b = fnn.Input((6,)), fnn.Input((6,))
    out = fnn.Dense(1, activation="sigmoid")(fnn.Concatenate()([t2(t1(a)), t2(t1(b))]))
    return fnn.Model([a, b], out, seed=0, dtype=dtype)


def _layers_called(model):
    """The layer objects of the model's nodes, in node order (None for inputs)."""
    return [n.layer for n in model._nodes]


@pytest.mark.parametrize("backend", ["fast", "numpy"])
def test_a_siamese_round_trip_loads_a_shared_layer(backend, tmp_path):
    model = _siamese()
    path = fnn.onnx.export(model, tmp_path / "s.onnx")
    loaded = fnn.onnx.load(path, backend=backend)
    layers = _layers_called(loaded)
    dense = [layer for layer in layers if isinstance(layer, fnn.Dense)]
    assert len(dense) == 5 and len({id(layer) for layer in dense}) == 3     # two shared
    assert loaded.count_params() == model.count_params()
    assert [w.shape for w in loaded.get_weights()] == [w.shape for w in model.get_weights()]
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((9, 6)) for _ in range(2)]
    want = model.predict(xs)
    np.testing.assert_allclose(loaded.predict(xs), want, rtol=1e-13, atol=1e-15)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {i.name: x for i, x in zip(session.get_inputs(), xs)}
    np.testing.assert_allclose(session.run(None, feed)[0], want, rtol=1e-12, atol=1e-14)
    # tied: the gradients of a shared weight are its calls' summed, as the original model's
    y = rng.integers(0, 2, (9, 1)).astype(float)
    model.compile("binary_crossentropy", fnn.SGD(lr=0.1))
    loaded.compile("binary_crossentropy", fnn.SGD(lr=0.1))
    (l0, g0), (l1, g1) = model.loss_and_gradients(xs, y), loaded.loss_and_gradients(xs, y)
    assert l1 == pytest.approx(l0, rel=1e-13)
    for u, v in zip(g1, g0):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-15)


def test_a_torch_module_called_twice_loads_tied(tmp_path):
    torch = pytest.importorskip("torch")

    class Siamese(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tower = torch.nn.Linear(6, 4)
            self.head = torch.nn.Linear(8, 1)

        def forward(self, a, b):
            ta, tb = torch.tanh(self.tower(a)), torch.tanh(self.tower(b))
            return torch.sigmoid(self.head(torch.cat([ta, tb], dim=1)))

    torch.manual_seed(0)
    module = Siamese().double().eval()
    path = str(tmp_path / "t.onnx")
    args = (torch.randn(2, 6, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64))
    torch.onnx.export(module, args, path, dynamo=False, input_names=["a", "b"],
                      output_names=["y"], dynamic_axes={"a": {0: "n"}, "b": {0: "n"},
                                                        "y": {0: "n"}})
    loaded = fnn.onnx.load(path)
    dense = [layer for layer in _layers_called(loaded) if isinstance(layer, fnn.Dense)]
    assert len(dense) == 3 and len({id(layer) for layer in dense}) == 2
    assert loaded.count_params() == sum(p.numel() for p in module.parameters())
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((5, 6)) for _ in range(2)]
    with torch.no_grad():
        want = module(*(torch.from_numpy(x) for x in xs)).numpy()
    np.testing.assert_allclose(loaded.predict(xs), want, rtol=1e-12, atol=1e-14)


def test_the_same_initializer_under_other_settings_is_not_tied(tmp_path):
    """One kernel initializer read by two MatMuls, one followed by Tanh and one by Relu: two
    layers (the same weights copied), not one shared layer."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 2))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m1"]),
             helper.make_node("Tanh", ["m1"], ["a1"]),
             helper.make_node("MatMul", ["x", "w"], ["m2"]),
             helper.make_node("Relu", ["m2"], ["a2"]),
             helper.make_node("Concat", ["a1", "a2"], ["y"], axis=1)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["n", 4])],
        [numpy_helper.from_array(w, "w")])
    path = str(tmp_path / "g.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    loaded = fnn.onnx.load(path)
    dense = [layer for layer in _layers_called(loaded) if isinstance(layer, fnn.Dense)]
    assert len(dense) == 2 and dense[0] is not dense[1]
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(loaded.predict(x), np.hstack([np.tanh(x @ w),
                                                             np.maximum(x @ w, 0)]),
                               rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-13), ("float32", 1e-5)])
def test_a_subtract_multiply_siamese_round_trip(dtype, rtol, tmp_path):
    """The usual Siamese head, |a - b|^2 as Subtract then Multiply of two tensors (ONNX Sub and
    Mul of two tensors, read as those layers), on a shared tower."""
    h1, h2 = fnn.Dense(8, activation="relu"), fnn.Dense(4, activation="tanh")
    a, b = fnn.Input((5,)), fnn.Input((5,))
    gap = fnn.Subtract()([h2(h1(a)), h2(h1(b))])
    out = fnn.Dense(1, activation="sigmoid")(fnn.Multiply()([gap, gap]))
    model = fnn.Model([a, b], out, seed=4, dtype=dtype)
    path = fnn.onnx.export(model, tmp_path / "sm.onnx")
    loaded = fnn.onnx.load(path)
    kinds = [type(layer).__name__ for layer in _layers_called(loaded) if layer is not None]
    assert sorted(kinds) == ["Dense"] * 5 + ["Multiply", "Subtract"]
    assert loaded.count_params() == model.count_params()
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((6, 5)).astype(dtype) for _ in range(2)]
    want = model.predict(xs)
    np.testing.assert_allclose(loaded.predict(xs), want, rtol=rtol, atol=rtol * 1e-2)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {i.name: x for i, x in zip(session.get_inputs(), xs)}
    np.testing.assert_allclose(session.run(None, feed)[0], want, rtol=rtol * 10,
                               atol=rtol * 1e-1)
    # a broadcasting Sub of two tensors is refused by name
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("Sub", ["x", "z"], ["y"], name="sub")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])])
    bad = str(tmp_path / "bad.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), bad)
    with pytest.raises(ValueError, match=r"'sub' \(Sub\).*one shape"):
        fnn.onnx.load(bad)
