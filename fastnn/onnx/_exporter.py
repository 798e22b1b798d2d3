"""``fastnn.onnx.export``: a built fastnn model as an ONNX file.

The model's graph (``model._nodes``, inputs first, in topological order) is written node by
node; each layer kind has one function here (or in ``_export_seq`` for the recurrent and
attention layers) that adds the ONNX nodes computing it. Inputs and outputs keep fastnn's
layouts (batch-first, channels-last) with a dynamic batch dimension named ``batch``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers import (Activation, Add, Average, BatchNormalization, Concatenate, Dense,
                           Embedding, Flatten, LayerNormalization, Maximum, Minimum, Multiply,
                           Permute, Reshape, Subtract, TimeDistributed)
from fastnn.layers.convolutional import Conv2DTranspose, _Conv, window_geometry
from fastnn.layers.depthwise import _Depthwise
from fastnn.layers.preprocessing import _Affine
from fastnn.layers.image_resizing import _Grid
from fastnn.layers.prelu import Identity
from fastnn.layers.regularization import SeededRandom
from fastnn.layers.reshaping import RepeatVector, _Cropping, _UpSampling, _ZeroPadding
from fastnn.layers.reshaping3d import Cropping3D, ZeroPadding3D
from fastnn.layers.embedding import _AddPositions
from fastnn.layers.pooling import _GlobalPooling, _Pooling
from fastnn.onnx import _export_seq as S
from fastnn.onnx._graph import GraphBuilder

#: the opset written when none is given (LayerNormalization needs 17)
DEFAULT_OPSET = 18
MIN_OPSET = 17

Emitter = Callable[[GraphBuilder, Any, Any, str], Any]


def _weights(layer: Any) -> dict[str, np.ndarray]:
    return {spec.name: w for spec, w in zip(layer._specs, layer.get_weights())}


def _dense(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    w = _weights(layer)
    y = b.op("MatMul", [x, b.const(w["kernel"], f"{p}/kernel")], f"{p}/matmul")
    if "bias" in w:
        y = b.op("Add", [y, b.const(w["bias"], f"{p}/bias")], f"{p}/add")
    return b.activation(y, layer.act, layer.param, f"{p}/act")


def _activation(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    return b.op("Identity", [x], p) if layer.act == 0 else b.activation(x, layer.act,
                                                                          layer.param, p)


def _pads(layer: Any, spatial: tuple[int, ...], windows: tuple[int, ...],
          dilations: tuple[int, ...]) -> list[int]:
    """ONNX pads (all befores, then all afters) for fastnn's window geometry."""
    sizes, before = window_geometry(spatial, windows, layer.strides, dilations, layer.padding)
    after = [max(0, (o - 1) * s + (k - 1) * d + 1 - n - bf) for o, s, k, d, n, bf in
             zip(sizes, layer.strides, windows, dilations, spatial, before)]
    return [*before, *after]


def _conv(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    w = _weights(layer)
    rank = layer.rank
    kernel = np.transpose(w["kernel"], (rank + 1, rank, *range(rank)))   # (out, in, *k)
    inputs = [b.channels_first(x, rank, f"{p}/to_nchw"), b.const(kernel, f"{p}/kernel")]
    if "bias" in w:
        inputs.append(b.const(w["bias"], f"{p}/bias"))
    spatial = tuple(layer.input_shape[:-1])
    grouped = {"group": layer.groups} if getattr(layer, "groups", 1) != 1 else {}
    y = b.op("Conv", inputs, f"{p}/conv", kernel_shape=list(layer.kernel_size),
             strides=list(layer.strides), dilations=list(layer.dilation_rate),
             pads=_pads(layer, spatial, layer.kernel_size, layer.dilation_rate), **grouped)
    y = b.channels_last(y, rank, f"{p}/to_nhwc")
    return b.activation(y, layer.act, layer.param, f"{p}/act")


def _depthwise(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    """DepthwiseConv1D/2D: Conv with group = input channels, the kernel (*k, c, dm) as ONNX's
    (c*dm, 1, *k) (output channel ci*dm + m, as in Keras); SeparableConv1D/2D: that without a
    bias, then a 1x1 Conv with the pointwise kernel (*1, c*dm, filters) as (filters, c*dm, *1)."""
    w = _weights(layer)
    rank, c = layer.rank, layer.input_shape[-1]
    depth = w["depthwise_kernel"].reshape(*layer.kernel_size, -1)
    depth = np.transpose(depth, (rank, *range(rank)))[:, None]
    inputs = [b.channels_first(x, rank, f"{p}/to_nchw"), b.const(depth, f"{p}/depthwise_kernel")]
    if "bias" in w and not layer.separable:
        inputs.append(b.const(w["bias"], f"{p}/bias"))
    spatial = tuple(layer.input_shape[:-1])
    y = b.op("Conv", inputs, f"{p}/depthwise", kernel_shape=list(layer.kernel_size),
             strides=list(layer.strides), dilations=list(layer.dilation_rate), group=c,
             pads=_pads(layer, spatial, layer.kernel_size, layer.dilation_rate))
    if layer.separable:
        point = np.transpose(w["pointwise_kernel"], (rank + 1, rank, *range(rank)))
        inputs = [y, b.const(point, f"{p}/pointwise_kernel")]
        if "bias" in w:
            inputs.append(b.const(w["bias"], f"{p}/bias"))
        y = b.op("Conv", inputs, f"{p}/pointwise", kernel_shape=[1] * rank)
    y = b.channels_last(y, rank, f"{p}/to_nhwc")
    return b.activation(y, layer.act, layer.param, f"{p}/act")


def _conv_transpose(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    """ConvTranspose: the kernel (kh, kw, filters, c) as ONNX's (c, filters, kh, kw) (1-D:
    (k, filters, c) as (c, filters, k)); the pads before are the transposed convolution's, and
    what ONNX's output length needs after them comes as pads after or, past the last tap, as
    output_padding."""
    w = _weights(layer)
    rank = layer.rank
    kernel = np.transpose(w["kernel"], (rank + 1, rank, *range(rank)))
    inputs = [b.channels_first(x, rank, f"{p}/to_nchw"), b.const(kernel, f"{p}/kernel")]
    if "bias" in w:
        inputs.append(b.const(w["bias"], f"{p}/bias"))
    spatial = tuple(layer.input_shape[:-1])
    sizes, before = layer._geometry(spatial)
    after, extra = [], []
    for n, out, s, k, d, bf in zip(spatial, sizes, layer.strides, layer.kernel_size,
                                   layer.dilation_rate, before):
        rest = (n - 1) * s + (k - 1) * d + 1 - bf - out     # ONNX: out = ... - before - after
        after.append(max(rest, 0))
        extra.append(max(-rest, 0))
    y = b.op("ConvTranspose", inputs, f"{p}/conv", kernel_shape=list(layer.kernel_size),
             strides=list(layer.strides), dilations=list(layer.dilation_rate),
             pads=[*before, *after], output_padding=extra)
    y = b.channels_last(y, rank, f"{p}/to_nhwc")
    return b.activation(y, layer.act, layer.param, f"{p}/act")


def _upsampling(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    """Resize, nearest, on the channels-last tensor itself: output position i reads input
    position floor(i / size) ("asymmetric" coordinates), each input repeated ``size`` times."""
    scales = np.array([1.0, *layer.size, 1.0], np.float32)
    return b.op("Resize", [x, "", b.const(scales, f"{p}/scales", np.float32)], p,
                mode="nearest", coordinate_transformation_mode="asymmetric",
                nearest_mode="floor")


def _zero_padding(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    """Pad with zeros (constant mode): ONNX's pads are all the axes' starts, then their ends."""
    before = [0, *(a for a, _ in layer.pairs), 0]
    after = [0, *(z for _, z in layer.pairs), 0]
    return b.op("Pad", [x, b.ints(before + after, f"{p}/pads")], p, mode="constant")


def _cropping(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    """Slice each spatial axis to [start, size - end)."""
    axes = list(range(1, layer.rank + 1))
    starts = [a for a, _ in layer.pairs]
    ends = [n - z for n, (_, z) in zip(layer.input_shape, layer.pairs)]
    return b.op("Slice", [x, b.ints(starts, f"{p}/starts"), b.ints(ends, f"{p}/ends"),
                          b.ints(axes, f"{p}/axes")], p)


def _repeat_vector(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    """(n, f) -> (n, 1, f) -> tiled n_repeats times along the new axis."""
    y = b.op("Unsqueeze", [x, b.ints([1], f"{p}/axis")], f"{p}/unsqueeze")
    return b.op("Tile", [y, b.ints([1, layer.n, 1], f"{p}/repeats")], p)


def _affine(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    """Rescaling and Normalization: (x - shift) * scale + offset, per channel (the last axis),
    with the layer's current coefficients."""
    shift, scale, offset = (np.array(a) for a in layer._coefficients())
    y = b.op("Sub", [x, b.const(shift, f"{p}/shift")], f"{p}/sub")
    y = b.op("Mul", [y, b.const(scale, f"{p}/scale")], f"{p}/mul")
    return b.op("Add", [y, b.const(offset, f"{p}/offset")], p)


def _pool(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    rank = layer.rank
    op = "MaxPool" if "Max" in type(layer).__name__ else "AveragePool"
    spatial = tuple(layer.input_shape[:-1])
    y = b.op(op, [b.channels_first(x, rank, f"{p}/to_nchw")], f"{p}/pool",
             kernel_shape=list(layer.pool_size), strides=list(layer.strides),
             pads=_pads(layer, spatial, layer.pool_size, (1,) * rank))
    return b.channels_last(y, rank, f"{p}/to_nhwc")


def _global_pool(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    op = "ReduceMax" if "Max" in type(layer).__name__ else "ReduceMean"
    axes = list(range(1, len(layer.input_shape)))
    return b.op(op, [x, b.ints(axes, f"{p}/axes")], p, keepdims=int(layer.keepdims))


def _flatten(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    return b.op("Flatten", [x], p, axis=1)     # channels-last order, as fastnn flattens


def _reshape(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    return b.reshape(x, layer.output_shape, p)


def _dropout(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    # inference: dropout, noise and the augmentation layers do nothing
    return b.op("Identity", [x], p)


def _no_sizing(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    # Resizing, CenterCrop, RandomCrop change the images in inference too: not an Identity
    raise ValueError(f"{type(layer).__name__} layer {layer.name!r} has no ONNX form in "
                     f"fastnn.onnx.export (resize or crop the images before the model)")


def _permute(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    return b.op("Transpose", [x], p, perm=[0, *layer.dims])


def _batch_norm(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    if layer.axis not in (-1, len(layer.input_shape)):
        raise ValueError(f"{layer.name}: only BatchNormalization(axis=-1) has an ONNX form "
                         f"here. Received: axis={layer.axis}")
    w = _weights(layer)
    c = layer.input_shape[-1]
    gamma = w.get("gamma", np.ones(c, b.dtype))
    beta = w.get("beta", np.zeros(c, b.dtype))
    rank = len(layer.input_shape) - 1
    if rank:
        x = b.channels_first(x, rank, f"{p}/to_nchw")
    y = b.op("BatchNormalization", [x, b.const(gamma, f"{p}/gamma"), b.const(beta, f"{p}/beta"),
                                    b.const(w["moving_mean"], f"{p}/moving_mean"),
                                    b.const(w["moving_variance"], f"{p}/moving_variance")],
             f"{p}/bn", epsilon=float(layer.epsilon))
    return b.channels_last(y, rank, f"{p}/to_nhwc") if rank else y


def _layer_norm(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    # ONNX's LayerNormalization normalizes over the axes from `axis` on, as fastnn's does
    # (the last one, or the trailing ones together): gamma and beta keep their shape
    w = _weights(layer)
    shape = layer._param_shape_of(layer.input_shape)
    inputs = [x, b.const(w.get("gamma", np.ones(shape, b.dtype)), f"{p}/gamma")]
    if "beta" in w:
        inputs.append(b.const(w["beta"], f"{p}/beta"))
    return b.op("LayerNormalization", inputs, p, axis=-len(shape),
                epsilon=float(layer.epsilon))


def _embedding(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    ids = b.op("Cast", [x], f"{p}/ids", to=7)                      # int64
    return b.op("Gather", [b.const(_weights(layer)["embeddings"], f"{p}/embeddings"), ids], p)


def _positions(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    table = layer.positions(0, layer.input_shape[0])
    return b.op("Add", [x, b.const(table, f"{p}/positions")], p)


def _add(b: GraphBuilder, layer: Any, xs: Any, p: str) -> str:
    return b.op("Sum", list(xs), p)


def _concatenate(b: GraphBuilder, layer: Any, xs: Any, p: str) -> str:
    return b.op("Concat", list(xs), p, axis=-1)


def _multiply(b: GraphBuilder, layer: Any, xs: Any, p: str) -> str:
    y = xs[0]
    for i, x in enumerate(xs[1:]):            # in input order, as fastnn multiplies
        y = b.op("Mul", [y, x], p if i == len(xs) - 2 else f"{p}/mul{i}")
    return y


def _subtract(b: GraphBuilder, layer: Any, xs: Any, p: str) -> str:
    return b.op("Sub", list(xs), p)


def _average(b: GraphBuilder, layer: Any, xs: Any, p: str) -> str:
    total = b.op("Sum", list(xs), f"{p}/sum")
    return b.op("Div", [total, b.const(np.array(float(len(xs))), f"{p}/count")], p)


def _select(b: GraphBuilder, layer: Any, xs: Any, p: str) -> str:
    return b.op("Max" if type(layer).__name__ == "Maximum" else "Min", list(xs), p)


def _time_distributed(b: GraphBuilder, layer: Any, x: str, p: str) -> str:
    """(n, steps, *sample) as n * steps samples through the wrapped layer's nodes, then back."""
    steps, sample = layer.input_shape[0], layer.input_shape[1:]
    y = b.op("Reshape", [x, b.ints([-1, *sample], f"{p}/samples")], f"{p}/to_samples")
    y = _emit_layer(b, layer.layer, y, f"{p}/{layer.layer.name}")
    return b.op("Reshape", [y, b.ints([-1, steps, *layer.output_shape[1:]], f"{p}/steps")], p)


def _emit_layer(b: GraphBuilder, layer: Any, x: Any, p: str) -> Any:
    for cls, emit in _EMITTERS:
        if isinstance(layer, cls):
            return emit(b, layer, x, p)
    raise ValueError(f"{type(layer).__name__} layer {layer.name!r} has no ONNX form in "
                     f"fastnn.onnx.export")


_EMITTERS: list[tuple[type, Emitter]] = [
    (Dense, _dense), (Activation, _activation), (Conv2DTranspose, _conv_transpose),
    (_Conv, _conv), (_Depthwise, _depthwise), (_UpSampling, _upsampling), (_Affine, _affine), (_Pooling, _pool),
    (_ZeroPadding, _zero_padding), (_Cropping, _cropping), (RepeatVector, _repeat_vector),
    (ZeroPadding3D, _zero_padding), (Cropping3D, _cropping),
    (_GlobalPooling, _global_pool), (Flatten, _flatten), (Reshape, _reshape),
    (_Grid, _no_sizing), (SeededRandom, _dropout), (Identity, _dropout), (Permute, _permute), (BatchNormalization, _batch_norm),
    (LayerNormalization, _layer_norm),
    (Embedding, _embedding), (_AddPositions, _positions), (Add, _add),
    (Concatenate, _concatenate), (Multiply, _multiply), (Subtract, _subtract),
    (Average, _average), (Maximum, _select), (Minimum, _select),
    (TimeDistributed, _time_distributed), *S.EMITTERS,
]


def emit_model(b: GraphBuilder, model: Any, inputs: list[str], prefix: str = "") -> list[str]:
    """Add the nodes of ``model`` reading the tensors ``inputs``; its output names."""
    from fastnn.models.graph import ModelLayer
    nodes = model._nodes
    names: list[Any] = list(inputs) + [None] * (len(nodes) - len(inputs))
    for node in nodes[model._n_inputs:]:
        layer = node.layer
        x = [names[i] for i in node.inputs] if node.multi else names[node.inputs[0]]
        p = f"{prefix}{layer.name}"
        # a shared layer's (or model's) later calls read its first call's initializers
        with b.call_of(id(getattr(layer, "model", layer))):
            if isinstance(layer, ModelLayer):
                names[node.index] = emit_model(b, layer.model,
                                               x if isinstance(x, list) else [x], f"{p}/")
                if len(names[node.index]) == 1:
                    names[node.index] = names[node.index][0]
                continue
            names[node.index] = _emit_layer(b, layer, x, p)
    return [names[i] for i in model._outputs]


def _refuse_masks(model: Any) -> None:
    """Step masks (Embedding(mask_zero=True), Masking) have no ONNX form here: exported
    without them, the padded steps would count."""
    from fastnn.models.graph import ModelLayer
    for node in model._nodes:
        if isinstance(node.layer, ModelLayer):
            _refuse_masks(node.layer.model)
    if model._masked is not None:
        producers = [n.layer.name for n in model._nodes[model._n_inputs:]
                     if n.layer.output_masked(False)]
        raise ValueError(f"model {model.name} has step masks (from {', '.join(producers)}): "
                         f"their ONNX export is not supported (ONNX's recurrent operators "
                         f"take sequence lengths, not masks). Export a copy without "
                         f"mask_zero / Masking, and feed it unpadded sequences")


def to_proto(model: Any, opset: Optional[int] = None) -> Any:
    """The ONNX ModelProto of a built fastnn model (see ``export``)."""
    import onnx
    from onnx import helper, numpy_helper
    from fastnn.models.base import BaseModel
    if not isinstance(model, BaseModel):
        raise TypeError(f"model must be a fastnn model. Received: {type(model).__name__}")
    if not model.built:
        raise ValueError("model must be built (give its input shape) before export")
    _refuse_masks(model)
    newest = onnx.defs.onnx_opset_version()
    opset = DEFAULT_OPSET if opset is None else V.check_int("opset", opset, low=MIN_OPSET)
    if opset > newest:
        raise ValueError(f"opset must be at most {newest} (the installed onnx's newest). "
                         f"Received: opset={opset}")
    dtype = np.dtype(model.dtype)
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    b = GraphBuilder(helper, numpy_helper, dtype, opset)
    shapes = [model._nodes[k].shape for k in range(model._n_inputs)]
    in_names = [b.fresh("input" if len(shapes) == 1 else f"input_{k}")
                for k in range(len(shapes))]
    outs = emit_model(b, model, in_names)
    out_names = ["output" if len(outs) == 1 else f"output_{k}" for k in range(len(outs))]
    for src, dst in zip(outs, out_names):
        b.nodes.append(helper.make_node("Identity", [src], [dst], name=b.fresh(f"{dst}/Identity")))
    out_shapes = [model._nodes[i].shape for i in model._outputs]
    graph = helper.make_graph(
        b.nodes, model.name or "fastnn_model",
        [helper.make_tensor_value_info(n, elem, ["batch", *s]) for n, s in zip(in_names, shapes)],
        [helper.make_tensor_value_info(n, elem, ["batch", *s])
         for n, s in zip(out_names, out_shapes)],
        b.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="fastnn")
    proto.ir_version = min(proto.ir_version, onnx.IR_VERSION)
    return proto


def export(model: Any, path: Any, opset: Optional[int] = None) -> str:
    """Write ``model`` (built) to the ONNX file ``path``; returns the path written.

    The file's inputs and outputs are fastnn's (batch-first, channels-last), with a dynamic
    batch dimension; ``opset`` defaults to 18 (17 is the least: LayerNormalization).
    """
    import onnx
    proto = to_proto(model, opset)
    path = os.fspath(path)
    onnx.save_model(proto, path)
    return path
