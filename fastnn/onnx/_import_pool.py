"""The importer's pooling ops: MaxPool/AveragePool, the global ones and the reductions that
are global pooling (ONNX's channels-first views of fastnn's channels-last layers), over 1, 2
or 3 spatial axes."""

from __future__ import annotations

from typing import Any

import numpy as np

import fastnn as fnn
from fastnn.onnx._import_ops import Ctx, T, _channels_first, _padding, _window


def pool(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    x = ctx.tensor(ins[0])
    r, spatial, k, strides = _window(ctx, x, "kernel_shape")
    if ctx.attr("ceil_mode", 0) or any(v != 1 for v in ctx.attr("dilations", [1] * r)):
        ctx.fail("ceil_mode and dilations are not supported")
    padding = _padding(ctx, spatial, k, strides, [1] * r)
    avg = node.op_type == "AveragePool"
    if avg and padding == "same" and ctx.attr("count_include_pad", 0):
        ctx.fail("count_include_pad=1 is not supported (Keras averages the real values)")
    cls = {(1, False): fnn.MaxPooling1D, (2, False): fnn.MaxPooling2D,
           (1, True): fnn.AveragePooling1D, (2, True): fnn.AveragePooling2D,
           (3, False): fnn.MaxPooling3D, (3, True): fnn.AveragePooling3D}.get((r, avg))
    if cls is None:
        ctx.fail(f"{r}-D pooling is not supported")
    return [T(ctx.call(cls(k, strides, padding), x.sym), x.layout)]


def global_pool(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    x = ctx.tensor(ins[0])
    r = _channels_first(ctx, x)
    avg = node.op_type == "GlobalAveragePool"
    if r > 3:
        ctx.fail(f"{r}-D global pooling is not supported")
    cls = [[fnn.GlobalMaxPooling1D, fnn.GlobalAveragePooling1D],
           [fnn.GlobalMaxPooling2D, fnn.GlobalAveragePooling2D],
           [fnn.GlobalMaxPooling3D, fnn.GlobalAveragePooling3D]][r - 1][avg]
    users = ctx.consumers.get(node.output[0], [])
    if len(users) == 1 and users[0] is not None and users[0].op_type == "Squeeze":
        from fastnn.onnx._import_seq import _const_of
        squeeze = users[0]
        axes = _const_of(ctx, squeeze.input[1]) if len(squeeze.input) > 1 else None
        if axes is None:
            axes = next((ctx.onnx.helper.get_attribute_value(a) for a in squeeze.attribute
                         if a.name == "axes"), None)
        if axes is not None and sorted(int(a) % (r + 2) for a in np.asarray(axes).reshape(-1)
                                       ) == list(range(2, r + 2)):
            ctx.values[squeeze.output[0]] = T(ctx.call(cls(), x.sym), (0, 1))   # tf2onnx
            ctx.skip.add(id(squeeze))
            return [None]
    return [T(ctx.call(cls(keepdims=True), x.sym), x.layout)]


def reduce(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    x = ctx.tensor(ins[0])
    if x.pair is not None:
        from fastnn.onnx._import_seq import merge_directions
        return merge_directions(ctx, node, ins)
    axes = ctx.attr("axes") if len(ins) < 2 or ins[1] is None else ctx.const(ins[1], "axes")
    rank = len(x.layout)
    axes = sorted(int(a) % rank for a in (axes if axes is not None else []))
    if not x.identity or axes != list(range(1, rank - 1)) or rank not in (3, 4, 5):
        ctx.fail("only a reduction over all positions of a channels-last tensor (global "
                 "pooling) is supported")
    avg = node.op_type == "ReduceMean"
    cls = [[fnn.GlobalMaxPooling1D, fnn.GlobalAveragePooling1D],
           [fnn.GlobalMaxPooling2D, fnn.GlobalAveragePooling2D],
           [fnn.GlobalMaxPooling3D, fnn.GlobalAveragePooling3D]][rank - 3][avg]
    keep = bool(ctx.attr("keepdims", 1))
    return [T(ctx.call(cls(keepdims=keep), x.sym), range(rank if keep else 2))]


__all__ = ["pool", "global_pool", "reduce"]
