"""The importer's ops that move data without computing: constants, shapes, transposes,
squeezes, flattening and reshaping (mostly layout bookkeeping, no layer), and the two
normalizations."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

import fastnn as fnn
from fastnn.onnx._checked_file import check_tensor

if TYPE_CHECKING:
    from fastnn.onnx._import_ops import Ctx


def _ops() -> Any:
    from fastnn.onnx import _import_ops
    return _import_ops


def constant(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    for a in node.attribute:
        if a.name == "value":
            return [check_tensor(ctx.onnx, a.t, ctx.base)]
        if a.name in ("value_float", "value_int", "value_floats", "value_ints"):
            return [np.asarray(ctx.onnx.helper.get_attribute_value(a))]
    ctx.fail("only tensor and number constants are supported")


def identity(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    return [ins[0]]


def _axes(ctx: Ctx, ins: list[Any], rank: int) -> list[int]:
    axes = ctx.attr("axes") if len(ins) < 2 or ins[1] is None else ctx.const(ins[1], "axes")
    if axes is None:
        ctx.fail("axes must be given")
    return sorted(int(a) % rank for a in np.asarray(axes).reshape(-1))


def transpose(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    T = _ops().T
    x = ctx.tensor(ins[0])
    perm = ctx.attr("perm", list(range(len(x.layout)))[::-1])
    if x.flat_perm is not None:
        ctx.fail("a transpose after a channels-first Flatten is not supported")
    return [x.with_layout([x.layout[p] for p in perm])]


def squeeze(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    v = ins[0]
    if isinstance(v, _ops().Zero):
        return [v]
    if isinstance(v, (np.ndarray, list)):
        return [v] if not isinstance(v, np.ndarray) else [np.squeeze(v, tuple(_axes(ctx, ins,
                                                                                  v.ndim)))]
    x = ctx.tensor(v)
    axes = _axes(ctx, ins, len(x.layout))
    if any(x.layout[a] is not None for a in axes):
        ctx.fail("only axes of size 1 that the layout added can be squeezed")
    return [x.with_layout([d for i, d in enumerate(x.layout) if i not in axes])]


def unsqueeze(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    v = ins[0]
    if isinstance(v, (list, _ops().Zero)):           # ShapeOf, zeros
        return [v]
    if isinstance(v, np.ndarray):
        return [np.expand_dims(v, tuple(_axes(ctx, ins, v.ndim + len(
            np.asarray(ins[1] if len(ins) > 1 else ctx.attr("axes")).reshape(-1)))))]
    x = ctx.tensor(v)
    layout = list(x.layout)
    for a in _axes(ctx, ins, len(layout) + len(np.asarray(
            ins[1] if len(ins) > 1 and ins[1] is not None else ctx.attr("axes")).reshape(-1))):
        layout.insert(a, None)
    return [x.with_layout(layout)]


def flatten(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    T = _ops().T
    x = ctx.tensor(ins[0])
    if ctx.attr("axis", 1) != 1:
        ctx.fail("only axis=1 is supported")
    shape = tuple(x.sym.shape)
    if x.identity:
        return [x] if len(shape) == 1 else [T(ctx.call(fnn.Flatten(), x.sym), (0, 1))]
    r = len(shape) - 1
    if x.flat_perm is None and x.layout == (0, r + 1, *range(1, r + 1)):
        # ONNX flattens (c, *spatial); fastnn (*spatial, c): the next Dense permutes its rows
        order = np.arange(math.prod(shape)).reshape(shape).transpose(r, *range(r)).reshape(-1)
        return [T(ctx.call(fnn.Flatten(), x.sym), (0, 1), order)]
    ctx.fail("its input must be channels-last or a channels-first view")


def _unit_shuffle(x: Any, target: list[int]) -> Any:
    """The layout of a reshape of ``x`` that only adds, drops or moves axes of size 1 (so the
    data keeps its order: tf2onnx's (n, h, w, 1) -> (n, 1, h, w)); None otherwise."""
    if x.flat_perm is not None or x.pair is not None:
        return None
    full = (1, *x.sym.shape)
    dims = [None if a == 0 else 1 if a is None else full[a] for a in x.layout]
    sizes = [dims[i] if t == 0 and i < len(dims) else t for i, t in enumerate(target)]
    sample = math.prod(d for d in dims if d is not None)
    if sizes.count(-1) > 1 or any(d is not None and d < -1 for d in sizes):
        return None
    if -1 in sizes:
        known = math.prod(d for d in sizes if d not in (None, -1))
        if None in sizes:
            if known == 0 or sample % known:
                return None
            sizes[sizes.index(-1)] = sample // known
        elif known == sample:
            sizes[sizes.index(-1)] = None            # the batch axis
        else:
            return None
    if [d for d in sizes if d != 1] != [d for d in dims if d != 1]:
        return None
    big = iter([a for a, d in zip(x.layout, dims) if d != 1])
    units = [a for a, d in zip(x.layout, dims) if d == 1]
    if sum(d == 1 for d in sizes) < sum(a is not None for a in units):
        return None                                  # a fastnn axis would vanish
    spare = iter([a for a in units if a is not None] + [None] * len(sizes))
    return [next(big) if d != 1 else next(spare) for d in sizes]


def _rows(ctx: Ctx, node: Any, x: Any, target: list[int]) -> list[Any]:
    """tf2onnx's Tensordot (a Dense over a sequence): (n, *lead, c) seen as (-1, c) for the
    one MatMul that reads it, and the MatMul's rows given back their (n, *lead) axes."""
    ops = _ops()
    if isinstance(x, ops.Rows):
        if target[:1] not in ([0], [-1]) or target[1:] != list(x.t.sym.shape):
            ctx.fail(f"shape {target} does not give the rows of a Dense over a sequence back "
                     f"their axes")
        return [x.t]
    readers = ctx.consumers.get(node.output[0], [])
    shape = list(x.sym.shape)
    if not (x.identity and len(shape) >= 2 and target == [-1, shape[-1]] and len(readers) == 1
            and readers[0] is not None and readers[0].op_type == "MatMul"
            and readers[0].input[0] == node.output[0]):
        ctx.fail(f"shape {target} would merge the batch axis into another")
    return [ops.Rows(x)]


def reshape(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    T = _ops().T
    if isinstance(ins[1], list):                     # ShapeOf: its batch entry stays
        if None in ins[1][1:]:
            ctx.fail("only the first axis of the shape may be the batch size")
        target = [0 if d is None else int(d) for d in ins[1]]
    else:
        target = ctx.const(ins[1], "shape").astype(np.int64).reshape(-1).tolist()
    if isinstance(ins[0], _ops().Rows):
        return _rows(ctx, node, ins[0], target)
    x = ctx.tensor(ins[0])
    if x.identity and target == [-1, x.sym.shape[-1]] and math.prod(x.sym.shape[:-1]) > 1:
        return _rows(ctx, node, x, target)
    if x.pair is not None:
        from fastnn.onnx._import_seq import merge_directions
        return merge_directions(ctx, node, ins, target)
    layout = _unit_shuffle(x, target)
    if layout is not None:
        return [x.with_layout(layout)]
    shape = list(x.sym.shape)
    if not x.identity or not target or target[0] not in (0, -1):
        ctx.fail("only a reshape of a channels-last tensor keeping the batch axis first is "
                 "supported")
    rest = [shape[i - 1] if d == 0 and 0 < i <= len(shape) else d
            for i, d in enumerate(target)][1:]
    if target[0] == -1 and -1 in rest or rest.count(-1) > 1 or any(d < -1 or d == 0
                                                                    for d in rest):
        ctx.fail(f"shape {target} cannot be resolved")
    if -1 in rest:
        known = math.prod(d for d in rest if d != -1)
        rest[rest.index(-1)] = math.prod(shape) // max(known, 1)
    if math.prod(rest) != math.prod(shape):
        ctx.fail(f"shape {target} does not hold the input's {math.prod(shape)} values")
    if rest == shape:
        return [x]
    layer = fnn.Flatten() if len(rest) == 1 else fnn.Reshape(rest)
    return [T(ctx.call(layer, x.sym), range(len(rest) + 1))]


def shape(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    x = ctx.tensor(ins[0])
    dims = (1,) + tuple(x.sym.shape)
    out = _ops().ShapeOf(None if d == 0 else 1 if d is None else dims[d] for d in x.layout)
    start, end = ctx.attr("start", 0), ctx.attr("end", len(out))
    return [_ops().ShapeOf(out[start:end])]


def gather(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    ops = _ops()
    data, idx, axis = ins[0], ins[1], ctx.attr("axis", 0)
    if isinstance(idx, ops.Ids) and isinstance(data, np.ndarray) and data.ndim == 2 and axis == 0:
        if not idx.t.identity:
            ctx.fail("the ids must be in fastnn's layout")
        if idx.wrap not in (None, data.shape[0]):
            ctx.fail(f"negative ids wrap by {idx.wrap}, not the table's {data.shape[0]} rows")
        layer = fnn.Embedding(data.shape[0], data.shape[1])
        out = ctx.call(layer, idx.t.sym, {"embeddings": data})
        return [ops.T(out, range(len(idx.t.layout) + 1))]
    if isinstance(data, list) and isinstance(idx, np.ndarray):        # ShapeOf
        from fastnn.onnx._import_fold import shape_value
        return [shape_value(ctx, [data[int(i)] for i in idx.reshape(-1)], idx.shape)]
    if isinstance(data, np.ndarray) and isinstance(idx, np.ndarray):
        return [np.take(data, idx, axis=axis)]
    if isinstance(data, ops.T) and isinstance(idx, np.ndarray) and idx.ndim == 0:
        a = axis % len(data.layout)
        if data.layout[a] == "d" and int(idx) in (0, 1, -2, -1):      # one direction
            half = data.sym if int(idx) % 2 == 0 else data.pair
            return [ops.T(half, [d for i, d in enumerate(data.layout) if i != a])]
        if data.layout[a] is None and int(idx) in (0, -1):
            return [ops.T(data.sym, [d for i, d in enumerate(data.layout) if i != a])]
    ctx.fail("only embeddings (a table indexed by ids) and picks of unit axes are supported")


def shape_concat(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    if all(isinstance(v, np.ndarray) and not isinstance(v, list) for v in ins):
        return [np.concatenate(ins, axis=ctx.attr("axis", 0))]
    out = _ops().ShapeOf()
    for v in ins:
        if not isinstance(v, (list, np.ndarray)):
            ctx.fail("a shape must be made of constants and shapes")
        out.extend(v if isinstance(v, list) else np.asarray(v).reshape(-1).tolist())
    return [out]


def constant_of_shape(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    fill = ctx.attr("value")
    value = 0.0 if fill is None else float(ctx.onnx.numpy_helper.to_array(fill).reshape(-1)[0])
    if value != 0.0 or not isinstance(ins[0], list):
        ctx.fail("only zeros of a batch-sized shape are supported (initial states)")
    return [_ops().Zero()]


def batch_norm(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    x = ctx.tensor(ins[0])
    if ctx.attr("training_mode", 0):
        ctx.fail("training_mode=1 is not supported")
    if not (len(x.layout) == 2 and x.identity):
        _ops()._channels_first(ctx, x)
    gamma, beta, mean, var = (ctx.const(v, "statistics") for v in ins[1:5])
    layer = fnn.BatchNormalization(epsilon=float(ctx.attr("epsilon", 1e-5)))
    out = ctx.call(layer, x.sym, {"gamma": gamma, "beta": beta, "moving_mean": mean,
                                  "moving_variance": var})
    return [_ops().T(out, x.layout)]


def layer_norm(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    x = ctx.tensor(ins[0])
    if not x.identity or ctx.attr("axis", -1) % len(x.layout) != len(x.layout) - 1:
        ctx.fail("only a normalization over the last axis of a channels-last tensor is "
                 "supported")
    weights = {"gamma": ctx.const(ins[1], "scale")}
    if len(ins) > 2 and ins[2] is not None:
        weights["beta"] = ctx.const(ins[2], "bias")
    layer = fnn.LayerNormalization(epsilon=float(ctx.attr("epsilon", 1e-5)),
                                   center="beta" in weights)
    return [_ops().T(ctx.call(layer, x.sym, weights), x.layout)]


def split(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    x = ctx.tensor(ins[0])
    if x.pair is None and x.layout == (1, 0, 2):
        ctx.fail("a sequence split into its time steps is an unrolled recurrent layer: read "
                 "only as Keras 3's exact SimpleRNN, and this one differs")
    if x.pair is None:
        ctx.fail("only the split of a bidirectional layer's two directions is supported")
    from fastnn.onnx._import_seq import split_directions
    return split_directions(ctx, node, ins)


SHAPE_OPS = {
    "Constant": constant, "Identity": identity, "Dropout": identity, "Transpose": transpose,
    "Squeeze": squeeze, "Unsqueeze": unsqueeze, "Flatten": flatten, "Reshape": reshape,
    "Shape": shape, "Gather": gather, "ConstantOfShape": constant_of_shape,
    "BatchNormalization": batch_norm, "LayerNormalization": layer_norm, "Split": split,
}
