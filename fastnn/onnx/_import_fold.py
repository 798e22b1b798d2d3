"""The importer's ops for what converters write around the layers: constant arithmetic on
shapes (folded by onnx's reference evaluator), explicit Pad before a Conv, zeros Expanded to a
batch-sized shape, per-channel Sub/Mul/Add (an inference-mode BatchNormalization), slices of a
bidirectional layer's directions, and Keras' wrap of negative embedding ids."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

import fastnn as fnn
from fastnn.onnx._checked_file import MAX_ELEMENTS

if TYPE_CHECKING:
    from fastnn.onnx._import_ops import Ctx, T

#: ops evaluated when all their inputs are constants (shape arithmetic)
FOLDABLE = {"Add", "Sub", "Mul", "Div", "Mod", "Neg", "Abs", "Floor", "Ceil", "Max", "Min", "Cast",
            "Concat", "Gather", "Slice", "Reshape", "Transpose", "Unsqueeze", "Squeeze",
            "ConstantOfShape", "Expand", "Shape", "Equal", "Less", "Greater", "Where",
            "ReduceProd", "Identity", "Sqrt"}


def _ops() -> Any:
    from fastnn.onnx import _import_ops
    return _import_ops


def fold(ctx: Ctx, node: Any, ins: list[Any]) -> Optional[list[Any]]:
    """The outputs of ``node`` when it is foldable and every input is a constant array."""
    if node.op_type not in FOLDABLE or not node.input or node.domain not in ("", "ai.onnx") \
            or any(v is not None and (not isinstance(v, np.ndarray) or isinstance(v, list))
                   for v in ins):
        return None
    arrays = [v for v in ins if v is not None]
    if not arrays:
        return None
    if node.op_type in ("ConstantOfShape", "Expand"):       # sizes asked for, before any array
        asked = [int(d) for d in np.asarray(arrays[-1]).reshape(-1)]
        if any(d < 0 for d in asked):
            ctx.fail(f"negative shape {asked}")
        if node.op_type == "Expand":
            try:
                asked = list(np.broadcast_shapes(arrays[0].shape, tuple(asked)))
            except ValueError:
                ctx.fail(f"shape {asked} does not broadcast with {list(arrays[0].shape)}")
        size = math.prod(asked)
    elif node.op_type == "Gather" and len(arrays) == 2:    # data's axis replaced by indices
        data, indices = arrays
        axis = next((int(a.i) for a in node.attribute if a.name == "axis"), 0)
        if not -max(data.ndim, 1) <= axis < max(data.ndim, 1):
            ctx.fail(f"axis {axis} is out of range for data of rank {data.ndim}")
        axis %= max(data.ndim, 1)
        size = math.prod(data.shape[:axis]) * indices.size * math.prod(data.shape[axis + 1:])
    else:
        try:
            size = max(math.prod(np.broadcast_shapes(*(a.shape for a in arrays))),
                       sum(a.size for a in arrays))
        except ValueError:
            size = sum(a.size for a in arrays)
    if size > MAX_ELEMENTS:
        ctx.fail(f"its constant result would hold {size} values, more than {MAX_ELEMENTS}")
    from onnx.reference import ReferenceEvaluator
    try:
        feeds = {name: v for name, v in zip(node.input, ins) if name}
        return list(ReferenceEvaluator(node).run(None, feeds))
    except Exception as exc:          # the reference implementation's own refusal
        ctx.fail(f"its constant inputs cannot be evaluated: {exc}")


def shape_value(ctx: Ctx, values: list[Any], shape: Any = None) -> Any:
    """A shape vector: an int64 array when every entry is known, else a ShapeOf."""
    if None in values:
        return _ops().ShapeOf(values)
    arr = np.asarray(values, np.int64)
    return arr.reshape(shape) if shape is not None else arr


def channel_vector(x: T, b: Any) -> Optional[np.ndarray]:
    """The (channels,) vector that the constant ``b`` is when broadcast against ``x``'s view
    along fastnn's channels axis only; None otherwise."""
    if not isinstance(b, np.ndarray) or isinstance(b, list) or x.flat_perm is not None \
            or b.ndim > len(x.layout) or x.pair is not None:
        return None
    channels = len(x.sym.shape)
    c = x.sym.shape[-1]
    dims = [1] * (len(x.layout) - b.ndim) + list(b.shape)
    for d, axis in zip(dims, x.layout):
        if d != 1 and (axis != channels or d != c):
            return None
    return np.broadcast_to(b.reshape(-1) if b.size == c else b.reshape(-1)[:1], (c,)).copy()


class Padded:
    """A Pad of zeros awaiting the Conv it belongs to: ``pads`` per ONNX axis."""

    def __init__(self, t: T, pads: list[int]) -> None:
        self.t, self.pads = t, pads


def pad(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    x = ctx.tensor(ins[0])
    mode = ctx.attr("mode", b"constant")
    pads = ctx.const(ins[1], "pads").astype(np.int64).reshape(-1).tolist()
    value = ins[2] if len(ins) > 2 else None
    rank = len(x.layout)
    if mode not in (b"constant", "constant") or (value is not None and np.any(
            ctx.const(value, "constant value") != 0)) or (len(ins) > 3 and ins[3] is not None):
        ctx.fail(f"only padding with zeros (mode 'constant', value 0) is supported; mode "
                 f"{mode.decode() if isinstance(mode, bytes) else mode!r} is not")
    if len(pads) != 2 * rank or min(pads) < 0 or pads[0] or pads[1] or pads[rank] or \
            pads[rank + 1]:
        ctx.fail(f"pads {pads} must be non-negative and leave batch and channels alone")
    users = [u for u in ctx.consumers.get(node.output[0], [])]
    if len(users) == 1 and users[0] is not None and users[0].op_type == "Conv":
        return [Padded(x, pads)]
    sides = _spatial_pairs(x, {a: (pads[a], pads[rank + a]) for a in range(rank)
                               if pads[a] or pads[rank + a]})
    if sides is None:
        ctx.fail("a Pad is supported only as the padding of the one Conv that reads it, or of "
                 "the rows and columns (steps) of an image (sequence)")
    layer = fnn.ZeroPadding2D(sides) if len(sides) == 2 else fnn.ZeroPadding1D(sides[0])
    y = ctx.call(layer, x.sym)
    if math.prod(y.shape) > MAX_ELEMENTS:         # forged pads: refused before any array
        ctx.fail(f"its output {tuple(y.shape)} a sample holds more than {MAX_ELEMENTS} values")
    return [_ops().T(y, x.layout)]


def _spatial_pairs(x: T, pairs: dict[int, tuple[int, int]]) -> Optional[list[tuple[int, int]]]:
    """(before, after) per spatial axis of fastnn's 1-D or 2-D channels-last tensor behind
    ``x``, from pairs by ONNX axis (other axes (0, 0)); None if a pair is not on a spatial
    axis."""
    r = len(x.sym.shape) - 1
    if r not in (1, 2) or x.flat_perm is not None or x.pair is not None:
        return None
    out = [(0, 0)] * r
    for a, pair in pairs.items():
        axis = x.layout[a]
        if not isinstance(axis, int) or not 1 <= axis <= r:
            return None
        out[axis - 1] = pair
    return out


def slice_(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    v = ins[0]
    starts, ends = (ctx.const(a, "starts and ends").reshape(-1) for a in ins[1:3])
    axes = ctx.const(ins[3], "axes").reshape(-1) if len(ins) > 3 and ins[3] is not None \
        else np.arange(len(starts))
    steps = ctx.const(ins[4], "steps").reshape(-1) if len(ins) > 4 and ins[4] is not None \
        else np.ones(len(starts), np.int64)
    if isinstance(v, list):                          # a ShapeOf
        if len(starts) != 1 or int(axes[0]) != 0 or int(steps[0]) != 1:
            ctx.fail("a shape can only be sliced along its one axis")
        return [shape_value(ctx, v[int(starts[0]):int(min(ends[0], len(v)))])]
    x = ctx.tensor(v)
    if x.pair is not None and len(starts) == 1 and int(steps[0]) == 1:
        a = int(axes[0]) % len(x.layout)
        k, stop = int(starts[0]) % 2, int(ends[0])
        stop = min(stop + 2 if stop < 0 else stop, 2)
        if x.layout[a] == "d" and stop == k + 1:
            layout = [None if d == "d" else d for d in x.layout]
            return [_ops().T(x.pair if k else x.sym, layout)]
    crops: dict[int, tuple[int, int]] = {}
    for start, end, axis, step in zip(starts.tolist(), ends.tolist(), axes.tolist(),
                                      steps.tolist()):
        a = int(axis) % len(x.layout)
        size = x.sym.shape[x.layout[a] - 1] if isinstance(x.layout[a], int) and \
            1 <= x.layout[a] <= len(x.sym.shape) - 1 else None
        if size is None or step != 1:
            crops = {}
            break
        start = min(max(start + size if start < 0 else start, 0), size)
        end = min(max(end + size if end < 0 else end, 0), size)
        crops[a] = (start, size - end)
        if start >= end:
            ctx.fail(f"the slice {start}:{end} of axis {a} leaves nothing")
    sides = _spatial_pairs(x, crops) if crops else None
    if sides is not None:                  # a crop of rows and columns (steps)
        layer = fnn.Cropping2D(sides) if len(sides) == 2 else fnn.Cropping1D(sides[0])
        return [_ops().T(ctx.call(layer, x.sym), x.layout)]
    ctx.fail("only slices of shapes, of a bidirectional layer's directions, of a recurrent "
             "layer's last step and of an image's rows and columns (a sequence's steps) are "
             "supported")


def expand(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    value, shape = ins
    if isinstance(value, np.ndarray) and not np.any(value) and value.size == 1 \
            and isinstance(shape, list) and shape[:1] == [None] and None not in shape[1:]:
        return [_ops().Zero()]
    ctx.fail("only zeros expanded to a batch-sized shape (initial states) are supported")


def _computed_from(t: Any, source: Any) -> bool:
    """Whether the symbolic tensor ``t`` is ``source`` or computed from it."""
    seen: set[int] = set()
    stack = [t]
    while stack:
        u = stack.pop()
        if u is source:
            return True
        if id(u) not in seen:
            seen.add(id(u))
            stack.extend(u.inputs)
    return False


def _merge(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    """Sub or Mul of two tensors of one shape: a Subtract or Multiply layer (as fastnn's
    exports of those layers write them), when the two are one tensor (a square) or neither
    is computed from the other (two branches, a Siamese model's); an activation written as a
    formula (silu's x * sigmoid(x), gelu's before opset 20) stays refused."""
    a, b = ins
    if a.sym is not b.sym and (_computed_from(a.sym, b.sym) or _computed_from(b.sym, a.sym)):
        ctx.fail("a Sub or Mul of a tensor and a value computed from it (an activation "
                 "written as a formula) is not supported")
    if not (a.identity and b.identity) or a.flat_perm is not None or b.flat_perm is not None:
        ctx.fail("its inputs must be tensors in fastnn's layout")
    if tuple(a.sym.shape) != tuple(b.sym.shape):
        ctx.fail(f"only tensors of one shape are supported (no broadcasting); received "
                 f"{tuple(a.sym.shape)} and {tuple(b.sym.shape)}")
    layer = fnn.Subtract() if node.op_type == "Sub" else fnn.Multiply()
    return [_ops().T(ctx.call(layer, [a.sym, b.sym]), a.layout)]


def affine(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    """Sub, Mul or Add of a per-channel constant: a BatchNormalization (mean, var = 1/2,
    epsilon = 1/2, so that its scale is gamma exactly), or folded into the one before."""
    ops = _ops()
    if (node.op_type in ("Sub", "Mul") and len(ins) == 2
            and all(isinstance(v, ops.T) for v in ins)):
        return _merge(ctx, node, ins)
    if len(ins) != 2 or sum(isinstance(v, ops.T) for v in ins) != 1 or \
            (node.op_type == "Sub" and not isinstance(ins[0], ops.T)):
        ctx.fail("only a per-channel constant applied to a tensor is supported")
    i = 0 if isinstance(ins[0], ops.T) else 1
    x, vec = ins[i], channel_vector(ins[i], ins[1 - i])
    if vec is None:
        ctx.fail("the constant must be one value per channel (the last axis)")
    from fastnn.onnx._import_patterns import fold_into_layer_norm
    folded = fold_into_layer_norm(ctx, node, x, vec)
    if folded is not None:
        return folded
    layer = x.sym.layer
    w: Any = ctx.weights.get(layer)
    fused = layer in ctx.affine and ctx.only_reader(x.sym) and not (node.op_type == "Sub" and (
        np.any(w["gamma"] != 1) or np.any(w["beta"] != 0) or np.any(w["moving_mean"] != 0)))
    if not fused:
        c = x.sym.shape[-1]
        layer = fnn.BatchNormalization(epsilon=0.5)
        ctx.affine.add(layer)
        w = {"gamma": np.ones(c), "beta": np.zeros(c), "moving_mean": np.zeros(c),
             "moving_variance": np.full(c, 0.5)}
        out = ctx.call(layer, x.sym, w)
        x, w = ops.T(out, x.layout), ctx.weights[layer]
    vec = vec.astype(ctx.dtype)
    if node.op_type == "Sub":
        w["moving_mean"] = vec
    elif node.op_type == "Mul":
        w["gamma"], w["beta"] = w["gamma"] * vec, w["beta"] * vec
    else:
        w["beta"] = w["beta"] + vec
    return [x]


def ids_wrap(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    """Keras' ``where(ids < 0, ids + n, ids)`` before an embedding lookup."""
    ops = _ops()
    ids = next((v for v in ins if isinstance(v, ops.Ids)), None)
    consts = [v for v in ins if isinstance(v, np.ndarray) and v.size == 1]
    if node.op_type == "Less" and ids is not None and ins[0] is ids and consts \
            and float(consts[0].reshape(-1)[0]) == 0:
        return [("negative", ids)]
    if node.op_type == "Add" and ids is not None and consts:
        return [("shifted", ids, int(consts[0].reshape(-1)[0]))]
    if node.op_type == "Where" and len(ins) == 3 and isinstance(ins[0], tuple) and \
            isinstance(ins[1], tuple) and ins[0][0] == "negative" and ins[1][0] == "shifted" \
            and ins[0][1] is ins[1][1] is ins[2]:
        return [ops.Ids(ins[2].t, wrap=ins[1][2])]
    ctx.fail("integer arithmetic on ids is supported only as Keras' wrap of negative ids")


__all__ = ["fold", "pad", "slice_", "expand", "affine", "ids_wrap", "channel_vector",
           "Padded", "shape_value", "FOLDABLE"]
