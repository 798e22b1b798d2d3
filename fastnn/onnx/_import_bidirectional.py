"""Keras 3's Bidirectional(SimpleRNN | LSTM | GRU) as its torch-backend export writes it: two
unrolled layers of ``_import_unrolled`` / ``_import_unrolled_gates`` on the same input, the
second going backwards, joined by the merge, read as one ``fnn.Bidirectional``.

With F and B the two layers' last nodes (no-op Casts and Identity nodes seen through):

    sequences:  y_f = Transpose(F, [1, 0, 2]),  y_b = flip(Transpose(B, [1, 0, 2]), axis 1)
                (Keras puts the backward sequence back in time order: a Slice from -1 by -1)
    last state: y_f = Gather(F, 0 or -1) for a SimpleRNN (its one-step Concat), F for LSTM/GRU
    merge:      concat: Concat([y_f, y_b], -1);  sum: y_f + y_b;  mul: y_f * y_b;
                ave: (y_f + y_b) / 2

Both layers must have the same kind, units, activation and step count and read the same
input; every value inside must be read only inside the whole match, or nothing is joined and
the node-by-node reading refuses what is left.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import fastnn as fnn
from fastnn.onnx._import_ops import Ctx, T
from fastnn.onnx._import_patterns import _Graph, _serves_only
from fastnn.onnx._import_unrolled import _Match, unrolled_input, unrolled_layer

_SAME = ("kind", "units", "act", "seq", "steps")


def _half(m: _Match, name: str) -> tuple[int, bool]:
    """(id of the unrolled layer's last node, flipped?) of one operand of the merge."""
    g = m.g
    inner = name
    flip = g.made_by(m.see(name), "Slice")
    if flip is not None:
        inner = flip.input[0]
    n = g.producer.get(m.see(inner))
    if n is None:
        raise LookupError(name)
    if id(n) in g.unrolled:                                      # an LSTM's or GRU's last h
        end, seq = n, False
    elif n.op_type == "Transpose":
        end, seq = m.node(inner, "Transpose"), True
        if g.attr(end, "perm") != [1, 0, 2]:
            raise LookupError(name)
        end = g.producer.get(m.see(end.input[0]))
    elif n.op_type == "Gather":                                  # a SimpleRNN's last output
        gather = m.node(inner, "Gather")
        index = m.const(gather.input[1])
        if index.ndim != 0 or int(index) not in (0, -1) or g.attr(gather, "axis", 0) != 0:
            raise LookupError(name)
        end, seq = g.producer.get(m.see(gather.input[0])), False
    else:
        raise LookupError(name)
    if end is None or id(end) not in g.unrolled:
        raise LookupError(name)
    found = g.unrolled[id(end)][2]
    if found["seq"] != seq or found["kind"] == "SimpleRNN" and not seq and \
            len(end.input) != 1:
        raise LookupError(name)
    if flip is not None:
        if not seq or m.unflip(name, 1, found["steps"])[1] is not True:
            raise LookupError(name)
    return id(end), flip is not None


def _match(g: _Graph, merge: Any) -> Optional[tuple[list[Any], str, dict[str, Any]]]:
    """(nodes, input, settings) when ``merge`` joins a forward and a backward unrolled layer."""
    m = _Match(g)
    m.nodes.append(merge)
    try:
        operands = list(merge.input)
        if merge.op_type == "Div":
            if m.const(merge.input[1]).reshape(-1).tolist() != [2.0]:
                return None
            operands = list(m.node(merge.input[0], "Add").input)
            mode = "ave"
        else:
            mode = {"Concat": "concat", "Add": "sum", "Mul": "mul"}[merge.op_type]
        if len(operands) != 2:
            return None
        (f_end, f_flip), (b_end, b_flip) = (_half(m, o) for o in operands)
    except (LookupError, ValueError, IndexError, KeyError):
        return None
    (f_nodes, v, f), (b_nodes, v_b, b) = g.unrolled[f_end], g.unrolled[b_end]
    if f["back"] or not b["back"] or f_flip or b_flip != b["seq"] or v != v_b or \
            any(f[k] != b[k] for k in _SAME if k in f or k in b):
        return None
    if mode == "concat" and g.attr(merge, "axis") not in (-1, 2 if f["seq"] else 1):
        return None
    inside: dict[int, Any] = {id(n): n for n in (*m.nodes, *f_nodes, *b_nodes)}
    return list(inside.values()), v, {"f": f, "b": b, "mode": mode, "ends": (f_end, b_end)}


def _build(v: str, found: dict[str, Any]) -> Callable[[Ctx, Any], list[Any]]:
    def build(ctx: Ctx, node: Any) -> list[Any]:
        x = unrolled_input(ctx, v, found["f"])
        forward, f_weights = unrolled_layer(ctx, found["f"], False)
        _, b_weights = unrolled_layer(ctx, found["b"], True)
        layer = fnn.Bidirectional(forward, merge_mode=found["mode"])
        out = layer(x)
        ctx.weights[layer] = f_weights + b_weights
        return [T(out, (0, 1, 2) if found["f"]["seq"] else (0, 1))]
    return build


def find_bidirectional(ctx: Ctx, g: _Graph) -> None:
    if not g.unrolled:
        return
    for node in ctx.graph.node:
        if node.op_type not in ("Concat", "Add", "Mul", "Div") or id(node) in ctx.skip:
            continue
        found = _match(g, node)
        if found is None or not _serves_only(g, found[0], node):
            continue
        for end in found[2]["ends"]:
            ctx.patterns.pop(end, None)
        ctx.skip.update(id(n) for n in found[0] if n is not node)
        ctx.patterns[id(node)] = _build(found[1], found[2])


__all__ = ["find_bidirectional"]
