"""fastnn.onnx.load of the graphs Keras-to-ONNX tools write, against Keras' own predictions and
onnxruntime on the same file (float32, 1e-5 relative, batch 1 and 7):

- Keras 3's ``model.export(path, format="onnx")`` on the torch backend, run in a subprocess
  (tests/_keras_onnx_worker.py; Keras fixes its backend per process);
- tf2onnx, from committed files (tests/data/tf2onnx/, written by
  scripts/make_tf2onnx_fixtures.py: TensorFlow is not a test dependency).
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TF2ONNX = pathlib.Path(__file__).parent / "data" / "tf2onnx"
KERAS3 = ["mlp", "cnn_maxpool", "cnn_same_strides", "conv1d_gap", "batchnorm", "conv_batchnorm",
          "embedding_gap", "simplernn", "simplernn_sequences", "lstm", "lstm_sequences", "gru",
          "gru_last"]
#: Keras 3 exports refused: name -> (the node's op type, words of the reason)
KERAS3_REFUSED = {"avgpool_same": ("Pad", "edge"), "lstm_relu": ("MatMul", "unrolled"),
                  "simplernn_backwards": ("Slice", "slices")}
TF2ONNX_MODELS = ["mlp", "cnn_maxpool", "cnn_same_strides", "conv1d_gap", "batchnorm",
                  "conv_batchnorm", "lstm_sequences", "lstm_last", "gru_sequences", "gru_last",
                  "bidirectional_lstm", "bidirectional_gru_sequences", "embedding_lstm",
                  "layernorm", "conv1d_layernorm", "simplernn", "simplernn_sequences"]


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


def _check(path, arrays):
    """fastnn's predictions of the imported file against Keras' and onnxruntime's."""
    model = fnn.onnx.load(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for rows in (1, 7):
        x, keras_y = arrays[f"x{rows}"], arrays[f"y{rows}"]
        got = model.predict(x)
        assert got.shape == keras_y.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, keras_y, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got, session.run(None, {name: x})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", KERAS3)
def test_keras3_torch_export_imports(name, keras3_dir):
    _check(keras3_dir / f"{name}.onnx", np.load(keras3_dir / f"{name}.npz"))


@pytest.mark.parametrize("name", sorted(KERAS3_REFUSED))
def test_keras3_torch_export_refusals_name_the_node(name, keras3_dir):
    op, why = KERAS3_REFUSED[name]
    with pytest.raises(ValueError, match=rf"node '[^']+' \({op}\) is not supported.*{why}"):
        fnn.onnx.load(keras3_dir / f"{name}.onnx")


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
    proto = onnx.load(str(keras3_dir / "simplernn.onnx"))
    nodes = {}
    for n in proto.graph.node:
        nodes.setdefault(n.op_type, []).append(n)
    change(proto.graph, nodes)
    path = tmp_path / "changed.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ValueError, match=r"node '[^']+' \((Split|Where|Greater)\) is not "
                                         r"supported"):
        fnn.onnx.load(path)


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
    proto = onnx.load(str(keras3_dir / f"{name}.onnx"))
    nodes = {}
    for n in proto.graph.node:
        nodes.setdefault(n.op_type, []).append(n)
    change(proto.graph, nodes)
    path = tmp_path / "changed.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ValueError, match=r"node '[^']+' \((MatMul|Gather|Slice|Mul|Add)\) is "
                                         r"not supported"):
        fnn.onnx.load(path)


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
