"""``fastnn.onnx.load``: an ONNX graph of supported ops as a fastnn model.

The graph is read node by node, each ONNX tensor standing for a fastnn symbolic tensor seen
through a ``layout``: ONNX axis i is fastnn axis ``layout[i]`` (None: an inserted unit axis).
So Transpose, Squeeze and Unsqueeze cost no layer, convolutions read channels-first views of
fastnn's channels-last tensors, and a Flatten of such a view is fastnn's Flatten with the
next Dense layer's rows permuted to match. An image input that feeds a Conv directly
(PyTorch's NCHW) becomes a channels-last input: feed the model ``x.transpose(0, 2, 3, 1)``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

import fastnn as fnn
from fastnn.onnx._checked_file import check_model, check_tensor, read_model
from fastnn.onnx._import_fold import FOLDABLE, fold
from fastnn.onnx._import_ops import OPS, Ctx, T, in_fastnn_layout
from fastnn.onnx._import_patterns import find_patterns


def _input_layout(graph: Any, inp: Any) -> tuple[Any, Any]:
    """The fastnn sample shape of a graph input and its layout."""
    dims = [d.dim_value if d.HasField("dim_value") else None
            for d in inp.type.tensor_type.shape.dim]
    if len(dims) < 2 or any(d is None or d <= 0 for d in dims[1:]):
        raise ValueError(f"input {inp.name!r}: shape {dims} must be (batch, known sizes > 0)")
    channels_first = len(dims) >= 3 and any(
        inp.name in n.input and n.op_type in ("Conv", "ConvTranspose", "MaxPool",
                                              "AveragePool", "BatchNormalization",
                                              "GlobalAveragePool", "GlobalMaxPool")
        for n in graph.node)
    if not channels_first:
        return tuple(dims[1:]), tuple(range(len(dims)))
    r = len(dims) - 2
    return (*dims[2:], dims[1]), (0, r + 1, *range(1, r + 1))


def _is_chain(inputs: list[Any], outputs: list[Any]) -> Optional[list[Any]]:
    """The layers in order when the graph is one chain from one input to one output."""
    if len(inputs) != 1 or len(outputs) != 1:
        return None
    layers, t = [], outputs[0]
    while t is not inputs[0]:
        if t.layer is None or len(t.inputs) != 1:
            return None
        layers.append(t.layer)
        t = t.inputs[0]
    return layers[::-1]


def _tie_shared(ctx: Any, graph: Any, outputs: list[Any]) -> int:
    """Make the Dense layers read from the same initializers (kernel and bias), with the same
    settings and weights, one shared layer (what fastnn's and PyTorch's exporters write for a
    layer called several times): each later one's calls become calls of the first. Returns
    how many layers were merged."""
    initializers = {init.name for init in graph.initializer}
    first: dict[Any, Any] = {}
    same: dict[Any, Any] = {}
    for layer, sources in ctx.sources.items():
        if layer not in ctx.weights or not all(n in initializers for n in sources.values()):
            continue
        config = {k: v for k, v in layer.get_config().items() if k != "name"}
        key = (tuple(sorted(sources.items())), repr(sorted(config.items())))
        kept = first.setdefault(key, layer)
        if kept is not layer and all(np.array_equal(ctx.weights[kept][k], ctx.weights[layer][k])
                                     for k in ctx.weights[layer]):
            same[layer] = kept
    if not same:
        return 0
    seen: set[int] = set()
    stack = list(outputs)
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if t.layer in same:
            t.layer = same[t.layer]
        stack.extend(t.inputs)
    for layer in same:
        del ctx.weights[layer]
    return len(same)


def load(path: Any, backend: Any = "fast") -> Any:
    """Read the ONNX file ``path`` as a fastnn model.

    Supported: the ops of fastnn's own exports of Dense, activation (not gelu before opset 20),
    Conv1D/2D/3D (with any group dividing the channels), DepthwiseConv1D/2D and SeparableConv1D/2D (a Conv with group = input
    channels, then a 1x1 Conv), Conv1D/2D/3DTranspose (ConvTranspose, with a Cropping where
    Keras' padding places the window otherwise), pooling (1-, 2- and 3-D), Flatten, Reshape, Dropout, BatchNormalization, LayerNormalization,
    Embedding, SimpleRNN/LSTM/GRU and merge layers, and the MLPs, CNNs and recurrent nets
    that ``torch.onnx.export``, Keras 3's ``model.export(..., format="onnx")`` (torch backend;
    its unrolled SimpleRNN, LSTM and GRU, go_backwards and Bidirectional too, matched exactly)
    and tf2onnx (its SimpleRNN Loop and its LayerNormalization subgraph matched exactly) write
    for such layers.
    Nodes whose inputs are all constants (shape arithmetic) are evaluated by onnx's reference
    implementation.

    Raises
    ------
    ValueError
        Naming the first node (op type and name) fastnn cannot run, or what is wrong with the
        file (external data outside the model's directory, sizes that do not match dims, ...).
    """
    proto, base = read_model(path)
    graph = proto.graph
    ctx = Ctx(base)
    for init in graph.initializer:
        ctx.values[init.name] = check_tensor(ctx.onnx, init, base)
    check_model(proto, path)
    elem = None
    inputs = []
    for inp in graph.input:
        if inp.name in ctx.values:
            continue                           # an initializer listed as an input (old IR)
        t = inp.type.tensor_type.elem_type
        if t not in (1, 11):
            raise ValueError(f"input {inp.name!r}: element type {t} is not float or double")
        if elem not in (None, t):
            raise ValueError("all inputs must have one element type")
        elem = t
        shape, layout = _input_layout(graph, inp)
        sym = fnn.Input(shape)
        inputs.append(sym)
        ctx.values[inp.name] = T(sym, layout)
    if not inputs:
        raise ValueError("the graph has no input")
    ctx.dtype = np.dtype(np.float32) if elem == 1 else np.dtype(np.float64)  # type: ignore
    ctx.graph = graph
    # protobuf's (upb) node wrappers live only while referenced, and a freed one's id can be
    # reused by another node's: kept alive, id(node) in ctx.skip and ctx.patterns stays its own
    nodes = list(graph.node)
    ctx.count_consumers(graph)
    find_patterns(ctx)
    for node in nodes:
        if node.name in ctx.skip or id(node) in ctx.skip:
            continue
        if id(node) in ctx.patterns:          # a whole subgraph ends here: one layer
            for name, value in zip(node.output, ctx.patterns[id(node)](ctx, node)):
                ctx.values[name] = value
            continue
        handler = OPS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        ctx.node = node
        ins = [ctx.get(n) if n else None for n in node.input] if handler or node.op_type in \
            FOLDABLE else []
        outs = fold(ctx, node, ins)           # constant inputs (shape arithmetic): evaluated
        if outs is None:
            if handler is None:
                raise ValueError(f"node {node.name!r} ({node.op_type}) is not supported by "
                                 f"fastnn.onnx.load")
            outs = handler(ctx, node, ins)
        for name, value in zip(node.output, outs):
            if name:
                ctx.values[name] = value
    outputs = []
    for out in graph.output:
        v = ctx.values.get(out.name)
        if isinstance(v, T):
            v = in_fastnn_layout(ctx, v)      # a Transpose left at the end: a Permute layer
        if not isinstance(v, T) or v.layout != tuple(range(len(v.layout))) \
                or v.flat_perm is not None:
            raise ValueError(f"output {out.name!r} is not a tensor in fastnn's layout "
                             f"(channels-last, batch first)")
        outputs.append(v.sym)
    dtype: Any = "float32" if elem == 1 else "float64"
    shared = _tie_shared(ctx, graph, outputs)
    chain = None if shared else _is_chain(inputs, outputs)
    model: Any
    if chain is not None:
        model = fnn.Sequential(chain, input_shape=inputs[0].shape, dtype=dtype, backend=backend)
    else:
        model = fnn.Model(inputs if len(inputs) > 1 else inputs[0],
                          outputs if len(outputs) > 1 else outputs[0], dtype=dtype,
                          backend=backend)
    for layer, weights in ctx.weights.items():
        layer.set_weights(weights if isinstance(weights, list)
                          else [weights[s.name] for s in layer._specs])
    return model


__all__ = ["load"]
