"""Whole subgraphs the importer reads as one layer, matched exactly before the node loop.

tf2onnx writes Keras' LayerNormalization (axis -1) as TensorFlow computes it: the input seen
as ``(1, rows, C, 1)``, a BatchNormalization over that view with per-row mean and (biased)
variance computed at run time, scale 1 and offset 0 expanded to the run-time row count, then
reshaped back to the input's shape (gamma and beta follow as a Mul and an Add, which fold into
the layer). Every node of the match must serve only the match, so nothing outside it reads a
value that fastnn would not compute.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

import fastnn as fnn
from fastnn.onnx._import_ops import Ctx, T

#: ops allowed in the run-time arithmetic of the row count (expanded ones and zeros)
_ROW_COUNT_OPS = {"Shape", "Cast", "Slice", "ReduceProd", "Unsqueeze", "Squeeze", "Concat",
                  "Gather", "Reshape"}


class _Graph:
    """Producers, consumers and constants of the graph, by tensor name."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.producer = {o: n for n in ctx.graph.node for o in n.output if o}
        self.outputs = {o.name for o in ctx.graph.output}
        #: unrolled recurrent layers matched: last node's id -> (nodes, input, settings)
        self.unrolled: dict[int, tuple[list[Any], str, dict[str, Any]]] = {}

    def made_by(self, name: str, op: str) -> Optional[Any]:
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op and node.domain in (
            "", "ai.onnx") else None

    def const(self, name: str) -> Optional[np.ndarray]:
        v = self.ctx.values.get(name)
        if isinstance(v, np.ndarray):
            return v
        node = self.made_by(name, "Constant")
        if node is not None:
            from fastnn.onnx._import_shape import constant
            self.ctx.node = node
            value = constant(self.ctx, node, [])[0]
            return value if isinstance(value, np.ndarray) else None
        return None

    def attr(self, node: Any, name: str, default: Any = None) -> Any:
        for a in node.attribute:
            if a.name == name:
                return self.ctx.onnx.helper.get_attribute_value(a)
        return default

    def axes(self, node: Any, rank: int) -> Optional[list[int]]:
        """A reduction's or squeeze's axes, from its attribute or constant second input."""
        axes = self.attr(node, "axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.const(node.input[1])
        if axes is None:
            return None
        return sorted(int(a) % rank for a in np.asarray(axes).reshape(-1))


def _shape_of(g: _Graph, name: str, x: str, seen: list[Any]) -> bool:
    """Whether ``name`` is ``Shape(x)`` (whole) seen through integer Casts only."""
    node = g.producer.get(name)
    while node is not None and node.op_type == "Cast" and g.attr(node, "to") in (6, 7):
        seen.append(node)
        node = g.producer.get(node.input[0])
    if node is None or node.op_type != "Shape" or node.input[0] != x or any(
            a.name in ("start", "end") for a in node.attribute):
        return False
    seen.append(node)
    return True


def _row_count(g: _Graph, name: str, x: str, seen: list[Any]) -> bool:
    """Whether ``name`` is integer arithmetic on shapes of ``x`` and constants only."""
    node = g.producer.get(name)
    if node is None:
        return g.const(name) is not None
    if node.op_type == "Constant":
        return True
    if node.op_type not in _ROW_COUNT_OPS or node.domain not in ("", "ai.onnx"):
        return False
    seen.append(node)
    if node.op_type == "Shape":
        return node.input[0] == x
    return all(_row_count(g, i, x, seen) for i in node.input if i)


def _scalar(g: _Graph, name: str, value: float) -> bool:
    c = g.const(name)
    return c is not None and c.size == 1 and float(c.reshape(-1)[0]) == value


def _match_layer_norm(g: _Graph, bn: Any) -> Optional[tuple[list[Any], Any, str, float, int]]:
    """(nodes, final Reshape, x, epsilon, C) when ``bn`` is the heart of tf2onnx's
    LayerNormalization; None otherwise."""
    if len(bn.input) != 5 or len(bn.output) != 1 or g.attr(bn, "training_mode", 0):
        return None
    view, scale, offset, mean, var = bn.input
    r0 = g.made_by(view, "Reshape")
    target = g.const(r0.input[1]) if r0 is not None else None
    if r0 is None or target is None or target.reshape(-1).tolist()[:2] != [1, -1] or \
            target.size != 4 or target.reshape(-1)[3] != 1 or target.reshape(-1)[2] < 1:
        return None
    x, c = r0.input[0], int(target.reshape(-1)[2])
    readers = g.ctx.consumers.get(bn.output[0], [])
    r1 = readers[0] if len(readers) == 1 else None
    nodes: list[Any] = [bn, r0]
    if r1 is None or r1.op_type != "Reshape" or r1.input[0] != bn.output[0] or \
            not _shape_of(g, r1.input[1], x, nodes):
        return None
    nodes.append(r1)
    squeeze = g.made_by(mean, "Squeeze")
    rm = g.made_by(squeeze.input[0], "ReduceMean") if squeeze is not None else None
    div = g.made_by(var, "Div")
    if squeeze is None or rm is None or div is None or rm.input[0] != view \
            or g.axes(squeeze, 4) != [0, 2, 3] or g.axes(rm, 4) != [0, 2, 3] \
            or g.attr(rm, "keepdims", 1) != 1:
        return None
    rss = g.made_by(div.input[0], "ReduceSumSquare")
    sub = g.made_by(rss.input[0], "Sub") if rss is not None else None
    cast = g.made_by(div.input[1], "Cast")
    prod = g.made_by(cast.input[0], "ReduceProd") if cast is not None else None
    gather = g.made_by(prod.input[0], "Gather") if prod is not None else None
    if sub is None or gather is None or list(sub.input) != [view, rm.output[0]] \
            or g.axes(rss, 4) != [0, 2, 3] or g.attr(rss, "keepdims", 1) != 0 \
            or g.attr(cast, "to") not in (1, 11) or g.axes(prod, 1) != [0] \
            or g.attr(prod, "keepdims", 1) != 0 or g.attr(gather, "axis", 0) != 0:
        return None
    picked = g.const(gather.input[1])
    if picked is None or sorted(int(i) % 4 for i in picked.reshape(-1)) != [0, 2, 3] or \
            not _shape_of(g, gather.input[0], view, nodes):
        return None
    nodes += [squeeze, rm, div, rss, sub, cast, prod, gather]
    for name, value in ((scale, 1.0), (offset, 0.0)):
        expand = g.made_by(name, "Expand")
        if expand is None or not _scalar(g, expand.input[0], value) or \
                not _row_count(g, expand.input[1], x, nodes):
            return None
        nodes.append(expand)
    return nodes, r1, x, float(g.attr(bn, "epsilon", 1e-5)), c


def _serves_only(g: _Graph, nodes: list[Any], last: Any) -> bool:
    """Whether every value the match computes before ``last`` is read inside the match only."""
    inside = {id(n) for n in nodes}
    for n in nodes:
        if n is last:
            continue
        for o in n.output:
            if o in g.outputs or any(r is None or id(r) not in inside
                                     for r in g.ctx.consumers.get(o, [])):
                return False
    return True


def _layer_norm(bn: Any, x: str, epsilon: float, c: int) -> Callable[[Ctx, Any], list[Any]]:
    def build(ctx: Ctx, node: Any) -> list[Any]:
        v = ctx.get(x)
        ctx.node = bn
        if not isinstance(v, T) or not v.identity or v.sym.shape[-1] != c:
            ctx.fail(f"a LayerNormalization (as tf2onnx writes it) must read a channels-last "
                     f"tensor with {c} features")
        layer = fnn.LayerNormalization(epsilon=epsilon)
        out = ctx.call(layer, v.sym, {"gamma": np.ones(c), "beta": np.zeros(c)})
        ctx.layer_norms.add(layer)
        return [T(out, v.layout)]
    return build


def find_patterns(ctx: Ctx) -> None:
    """Record each match: its inner nodes skipped, its last node built by ``ctx.patterns``."""
    g = _Graph(ctx)
    for node in ctx.graph.node:
        if node.op_type != "BatchNormalization" or id(node) in ctx.skip:
            continue
        found = _match_layer_norm(g, node)
        if found is None or not _serves_only(g, found[0], found[1]):
            continue
        nodes, last, x, epsilon, c = found
        ctx.skip.update(id(n) for n in nodes if n is not last)
        ctx.patterns[id(last)] = _layer_norm(node, x, epsilon, c)
    from fastnn.onnx._import_unrolled import find_unrolled
    from fastnn.onnx._import_unrolled_gates import find_unrolled_gates
    from fastnn.onnx._import_bidirectional import find_bidirectional
    find_unrolled(ctx, g)
    find_unrolled_gates(ctx, g)
    find_bidirectional(ctx, g)


def fold_into_layer_norm(ctx: Ctx, node: Any, x: T, vec: np.ndarray) -> Optional[list[Any]]:
    """A Mul (gamma) or Add (beta) of a per-channel vector after a matched LayerNormalization
    that nothing else reads: folded into its weights."""
    layer = x.sym.layer
    if layer not in ctx.layer_norms or node.op_type not in ("Mul", "Add") or \
            not ctx.only_reader(x.sym):
        return None
    w = ctx.weights[layer]
    vec = vec.astype(ctx.dtype)
    if node.op_type == "Mul":
        w["gamma"], w["beta"] = w["gamma"] * vec, w["beta"] * vec
    else:
        w["beta"] = w["beta"] + vec
    return [x]


__all__ = ["find_patterns", "fold_into_layer_norm"]
