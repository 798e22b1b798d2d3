"""fastnn.onnx.load of what tf2onnx writes for tf.keras models, from committed files
(tests/data/tf2onnx/, written by scripts/make_tf2onnx_fixtures.py: TensorFlow is not a test
dependency), against Keras' predictions and onnxruntime (float32, 1e-5 relative, batch 1 and 7).
"""

import pathlib

import numpy as np
import pytest

import fastnn as fnn
from _onnx_compare import check as _check

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TF2ONNX = pathlib.Path(__file__).parent / "data" / "tf2onnx"
TF2ONNX_MODELS = ["mlp", "cnn_maxpool", "cnn_same_strides", "conv1d_gap", "batchnorm",
                  "conv_batchnorm", "lstm_sequences", "lstm_last", "gru_sequences", "gru_last",
                  "bidirectional_lstm", "bidirectional_gru_sequences", "embedding_lstm",
                  "layernorm", "conv1d_layernorm", "simplernn", "simplernn_sequences"]


@pytest.mark.parametrize("name", TF2ONNX_MODELS)
def test_tf2onnx_export_imports(name):
    _check(TF2ONNX / f"{name}.onnx", np.load(TF2ONNX / f"{name}.npz"))


def test_tf2onnx_fixtures_are_small_and_complete():
    files = sorted(TF2ONNX.iterdir())
    assert sum(f.stat().st_size for f in files) < 1_000_000
    names = {f.stem for f in files}
    assert names == set(TF2ONNX_MODELS)
    assert {f.suffix for f in files} == {".onnx", ".npz"}


def _tf2onnx_layernorm(tmp_path, change, name="layernorm"):
    """tests/data/tf2onnx/<name>.onnx changed by ``change(graph, nodes by op type)`` (a Loop's
    body nodes included)."""
    proto = onnx.load(str(TF2ONNX / f"{name}.onnx"))
    nodes = {}
    for n in proto.graph.node:
        nodes.setdefault(n.op_type, []).append(n)
        for a in n.attribute:
            for b in a.g.node:
                nodes.setdefault(b.op_type, []).append(b)
    change(proto.graph, nodes)
    path = tmp_path / "changed.onnx"
    onnx.save(proto, str(path))
    return path


def test_tf2onnx_layernorm_reads_its_epsilon(tmp_path):
    def epsilon(graph, nodes):
        nodes["BatchNormalization"][0].attribute[0].f = 0.25
    path = _tf2onnx_layernorm(tmp_path, epsilon)
    norm = [layer for layer in fnn.onnx.load(path).layers
            if isinstance(layer, fnn.LayerNormalization)]
    assert len(norm) == 1 and norm[0].epsilon == pytest.approx(0.25)
    x = np.load(TF2ONNX / "layernorm.npz")["x7"]
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(fnn.onnx.load(path).predict(x), want[0], rtol=1e-5, atol=1e-6)


def _extra_output(graph, nodes):            # the per-row means read outside the pattern
    graph.output.append(onnx.helper.make_tensor_value_info(
        nodes["Squeeze"][0].output[0], onnx.TensorProto.FLOAT, ["n"]))


def _other_axes(graph, nodes):              # the variance over other axes than the mean's
    for a in nodes["ReduceSumSquare"][0].attribute:
        if a.name == "axes":
            a.ints[:] = [0, 3]


def _scale_two(graph, nodes):               # BatchNormalization's scale 2, not 1
    for init in graph.initializer:
        if init.name.endswith("ones/Const:0"):
            init.CopyFrom(onnx.numpy_helper.from_array(np.float32(2.0), init.name))


def _training(graph, nodes):
    nodes["BatchNormalization"][0].attribute.append(onnx.helper.make_attribute(
        "training_mode", 1))


@pytest.mark.parametrize("change", [_extra_output, _other_axes, _scale_two, _training])
def test_tf2onnx_layernorm_pattern_is_matched_exactly(tmp_path, change):
    """Anything but tf2onnx's exact LayerNormalization subgraph falls back to the node-by-node
    reading, which refuses its run-time shape arithmetic naming the node."""
    with pytest.raises(ValueError, match=r"node '[^']+' \((ReduceProd|BatchNormalization)\) "
                                         r"is not supported"):
        fnn.onnx.load(_tf2onnx_layernorm(tmp_path, change))


def _init(graph, suffix, value):
    for where in [graph.initializer] + [a.g.initializer for n in graph.node for a in n.attribute
                                        if a.type == onnx.AttributeProto.GRAPH]:
        for init in where:
            if init.name.endswith(suffix):
                init.CopyFrom(onnx.numpy_helper.from_array(
                    np.asarray(value, onnx.numpy_helper.to_array(init).dtype), init.name))
                return
    raise AssertionError(suffix)


_LOOP_CHANGES = {
    "starts at t = 1": lambda g, n: _init(g, "simple_rnn/time:0", 1),
    "steps by 2": lambda g, n: _init(g, "while/add/y:0", 2),
    "stops before the last step": lambda g, n: _init(g, "strided_slice_1__190", 5),
    "an activation fastnn lacks": lambda g, n: setattr(n["Tanh"][0], "op_type", "Softsign"),
    "h U added twice, no bias": lambda g, n: n["Add"][1].input.__setitem__(
        1, n["MatMul"][0].output[0]),
}


@pytest.mark.parametrize("change", sorted(_LOOP_CHANGES))
def test_tf2onnx_simplernn_loop_is_matched_exactly(tmp_path, change):
    """A Loop other than tf2onnx's SimpleRNN (per step, in order, from t = 0 to the last step,
    the exact cell) is refused naming the Loop."""
    path = _tf2onnx_layernorm(tmp_path, _LOOP_CHANGES[change], "simplernn")
    with pytest.raises(ValueError, match=r"node '[^']+' \(Loop\) is not supported"):
        fnn.onnx.load(path)
