"""fastnn.onnx.load of what Keras 3's ``model.export(path, format="onnx")`` writes on the torch
backend, run in a subprocess (tests/_keras_onnx_worker.py; Keras fixes its backend per
process), against Keras' own predictions and onnxruntime on the same file (float32, 1e-5
relative, batch 1 and 7). tf2onnx's files: tests/test_onnx_tf2onnx.py.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from _onnx_compare import check as _check

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

#: Keras 3 writes a backward SimpleRNN's (always true) step mask with a ReduceMax over axis 0 of
#: a scalar, which onnxruntime refuses to load: these are checked against Keras alone
KERAS3_NOT_ORT = ["simplernn_backwards", "simplernn_backwards_sequences",
                  "bidirectional_simplernn", "bidirectional_simplernn_sequences_sum",
                  "bidirectional_simplernn_sequences_ave"]
KERAS3 = ["mlp", "cnn_maxpool", "cnn_same_strides", "conv1d_gap", "batchnorm", "conv_batchnorm",
          "embedding_gap", "simplernn", "simplernn_sequences", "lstm", "lstm_sequences", "gru",
          "gru_last", "lstm_backwards", "lstm_backwards_sequences", "gru_backwards",
          "gru_backwards_sequences", "bidirectional_lstm_sequences", "bidirectional_lstm_ave",
          "bidirectional_lstm_mul", "bidirectional_gru", "bidirectional_gru_sequences_mul",
          "bidirectional_gru_sequences_sum", "depthwise_separable", "separable1d",
          "conv_transpose", "conv1d_transpose", *KERAS3_NOT_ORT]
#: Keras 3 exports refused: name -> (the node's op type, words of the reason)
KERAS3_REFUSED = {"avgpool_same": ("Pad", "edge"), "lstm_relu": ("MatMul", "unrolled")}


@pytest.fixture(scope="module")
def keras3_dir(tmp_path_factory):
    """Keras 3 (torch backend) exports and Keras' outputs, made once in a subprocess."""
    import importlib.util
    for name in ("keras", "torch"):            # not imported here: the subprocess does
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed")
    out = tmp_path_factory.mktemp("keras3_onnx")
    env = dict(os.environ, KERAS_BACKEND="torch")
    worker = pathlib.Path(__file__).parent / "_keras_onnx_worker.py"
    run = subprocess.run([sys.executable, str(worker), str(out), *KERAS3, *KERAS3_REFUSED],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", KERAS3)
def test_keras3_torch_export_imports(name, keras3_dir):
    model = _check(keras3_dir / f"{name}.onnx", np.load(keras3_dir / f"{name}.npz"),
                   runs_in_ort=name not in KERAS3_NOT_ORT)
    first = model.layers[0]
    if "backwards" in name:
        assert first.go_backwards
    if name.startswith("bidirectional"):
        assert isinstance(first, fnn.Bidirectional) and first.merge_mode == {
            "sum": "sum", "ave": "ave", "mul": "mul"}.get(name.rsplit("_", 1)[1], "concat")


@pytest.mark.parametrize("name", sorted(KERAS3_REFUSED))
def test_keras3_torch_export_refusals_name_the_node(name, keras3_dir):
    op, why = KERAS3_REFUSED[name]
    with pytest.raises(ValueError, match=rf"node '[^']+' \({op}\) is not supported.*{why}"):
        fnn.onnx.load(keras3_dir / f"{name}.onnx")


def _assert_changed_export_refused(tmp_path, source, change, pattern):
    """Load ``source``, let ``change(graph, nodes by op type)`` alter it, and expect the
    importer to refuse it with a message matching ``pattern``."""
    proto = onnx.load(str(source))
    nodes = {}
    for n in proto.graph.node:
        nodes.setdefault(n.op_type, []).append(n)
    change(proto.graph, nodes)
    path = tmp_path / "changed.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ValueError, match=pattern):
        fnn.onnx.load(path)


def _greater_checks_step_0(graph, nodes):  # a mask that is no longer always true
    name = nodes["Greater"][2].input[1]
    const = next(n for n in graph.node if name in n.output)
    const.attribute[0].t.CopyFrom(onnx.numpy_helper.from_array(np.int64(0)))


def _one_step_relu(graph, nodes):          # one step with another activation
    nodes["Tanh"][3].op_type = "Relu"


def _inner_output(graph, nodes):           # a step's output read outside the layer
    graph.output.append(onnx.helper.make_tensor_value_info(
        nodes["Where"][2].output[0], onnx.TensorProto.FLOAT, ["n", 4]))


def _other_bias(graph, nodes):             # one step's bias Add reads another constant
    graph.initializer.append(onnx.numpy_helper.from_array(np.ones(4, np.float32), "other_b"))
    adds = [n for n in nodes["Add"] if n.input[1].startswith("onnx::Add")]
    adds[4].input[1] = "other_b"


@pytest.mark.parametrize("change", [_greater_checks_step_0, _one_step_relu, _inner_output,
                                    _other_bias])
def test_keras3_unrolled_simplernn_is_matched_exactly(tmp_path, keras3_dir, change):
    """Keras 3's unrolled SimpleRNN is read whole only when every step is the same cell, every
    mask is true and no inner value is read elsewhere; otherwise the node-by-node reading
    refuses it naming a node."""
    _assert_changed_export_refused(tmp_path, keras3_dir / "simplernn.onnx", change,
                                   r"node '[^']+' \((Split|Where|Greater)\) is not supported")


def _const_node(graph, name):
    return next(n for n in graph.node if name in n.output)


def _lstm_output_gate_tanh(graph, nodes):    # one step's output gate through tanh
    nodes["Sigmoid"][7].op_type = "Tanh"


def _lstm_inner_output(graph, nodes):        # an inner h (read by step 2) read outside too
    graph.output.append(onnx.helper.make_tensor_value_info(
        nodes["MatMul"][2].input[0], onnx.TensorProto.FLOAT, ["n", 4]))


def _gru_one_minus_two(graph, nodes):        # (2 - z) for (1 - z) in one step
    const = _const_node(graph, nodes["Sub"][2].input[0])
    const.attribute[0].t.CopyFrom(onnx.numpy_helper.from_array(
        onnx.numpy_helper.to_array(const.attribute[0].t) * 2))


def _gru_other_chunk(graph, nodes):          # the update gate reads the reset gate's chunk
    slices = {o for n in nodes["Slice"] for o in n.output}
    gates = [n for n in nodes["Add"] if all(i in slices for i in n.input)]
    gates[0].input[0] = gates[1].input[0]


@pytest.mark.parametrize("name, change", [("lstm", _lstm_output_gate_tanh),
                                          ("lstm", _lstm_inner_output),
                                          ("gru", _gru_one_minus_two),
                                          ("gru", _gru_other_chunk)])
def test_keras3_unrolled_lstm_gru_are_matched_exactly(tmp_path, keras3_dir, name, change):
    """An unrolled LSTM or GRU whose steps differ from Keras' cell, or whose inner values are
    read elsewhere, is refused naming a node."""
    _assert_changed_export_refused(
        tmp_path, keras3_dir / f"{name}.onnx", change,
        r"node '[^']+' \((MatMul|Gather|Slice|Mul|Add)\) is not supported")


def _set_const(graph, name, value):
    const = _const_node(graph, name)
    const.attribute[0].t.CopyFrom(onnx.numpy_helper.from_array(np.asarray(
        value, onnx.numpy_helper.to_array(const.attribute[0].t).dtype)))


def _bypass(graph, node):                    # readers of node's output read its input
    for n in graph.node:
        n.input[:] = [node.input[0] if i == node.output[0] else i for i in n.input]


def _mask_0_lt_t(graph, nodes):              # the backward mask -1 < t made 0 < t
    _set_const(graph, nodes["Sub"][0].input[1], 0)


def _flip_from_2nd_last(graph, nodes):       # the input flip drops the last step
    _set_const(graph, nodes["Slice"][0].input[1], [-2])


def _flip_over_batch(graph, nodes):          # the input flip along the batch axis
    _set_const(graph, nodes["Slice"][0].input[3], [0])


def _backward_unflipped(graph, nodes):       # the backward layer reads the input unflipped
    _bypass(graph, next(n for n in nodes["Slice"] if n.input[0].startswith("/Cast")))


def _sequence_unflipped(graph, nodes):       # the backward sequence merged in its own order
    _bypass(graph, nodes["Slice"][-1])


def _concat_on_batch(graph, nodes):
    graph.node[-1].attribute[0].i = 0


def _ave_over_3(graph, nodes):
    _set_const(graph, graph.node[-1].input[1], 3.0)


@pytest.mark.parametrize("name, change, refused", [
    ("simplernn_backwards", _mask_0_lt_t, "Split|Slice|ReduceMax"),
    ("simplernn_backwards", _flip_from_2nd_last, "Split|Slice"),
    ("lstm_backwards", _flip_over_batch, "Slice"),
    ("bidirectional_simplernn", _concat_on_batch, "Split|Slice"),
    ("bidirectional_lstm_sequences", _backward_unflipped, "MatMul|Slice"),
    ("bidirectional_gru_sequences_sum", _sequence_unflipped, "MatMul|Slice"),
    ("bidirectional_lstm_ave", _ave_over_3, "MatMul|Div")])
def test_keras3_reversed_layers_are_matched_exactly(tmp_path, keras3_dir, name, change,
                                                    refused):
    """go_backwards is read only from Keras' exact flip and mask, Bidirectional only from a
    forward and a backward layer merged as Keras merges them; anything else is refused naming
    a node."""
    _assert_changed_export_refused(tmp_path, keras3_dir / f"{name}.onnx", change,
                                   rf"node '[^']+' \(({refused})\) is not supported")


def test_a_bias_is_folded_only_into_a_value_read_once(tmp_path):
    """MatMul + Add is one Dense only when nothing else reads the MatMul, through no-op Casts
    too: here the graph gives both, so the Add becomes a layer of its own."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
             helper.make_node("Cast", ["m"], ["mc"], name="noop", to=TensorProto.FLOAT),
             helper.make_node("Add", ["mc", "b"], ["y"], name="bias")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 4]) for n in ("y", "m")],
        [w, b])
    path = str(tmp_path / "m.onnx")
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = fnn.onnx.load(path).predict(x)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_a_cast_that_changes_the_float_type_is_refused(tmp_path):
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], name="narrow", to=TensorProto.FLOAT)], "g",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])])
    path = str(tmp_path / "m.onnx")
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    with pytest.raises(ValueError, match=r"node 'narrow' \(Cast\) is not supported"):
        fnn.onnx.load(path)


def test_a_constant_gather_that_would_blow_up_is_refused_before_it_runs(tmp_path):
    """Constant folding sizes a Gather by its indices (data's axis replaced), before onnx's
    reference evaluator allocates: 50,000 zero indices into (2, 50000) rows ask for 2.5e9 values
    from a file of under 1 MB."""
    from onnx import TensorProto, helper, numpy_helper
    data = numpy_helper.from_array(np.zeros((2, 50000), np.float32), "data")
    indices = numpy_helper.from_array(np.zeros(50000, np.int64), "indices")
    nodes = [helper.make_node("Gather", ["data", "indices"], ["g"], name="huge", axis=0),
             helper.make_node("Add", ["x", "x"], ["y"], name="add")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3]),
         helper.make_tensor_value_info("g", TensorProto.FLOAT, [50000, 50000])],
        [data, indices])
    path = str(tmp_path / "m.onnx")
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    assert os.path.getsize(path) < 2**20
    with pytest.raises(ValueError, match=r"node 'huge' \(Gather\).*would hold 2500000000 values"):
        fnn.onnx.load(path)
