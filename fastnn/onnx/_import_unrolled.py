"""Keras 3's SimpleRNN as its torch-backend export writes it: unrolled by Keras' generic
``rnn`` loop, matched exactly before the node loop and read as one SimpleRNN.

With X = Transpose(v, [1, 0, 2]) (v: the (batch, steps, features) input) and no-op Casts and
Identity copies of the weights seen through:

    x_t   = Squeeze(Split(X, 1 per step)[t], 0)
    cell  = act(x W + b + h U)                 act: Tanh, Relu or Sigmoid; W, b, U the same
    h_0   = zeros                              (ConstantOfShape 0 of (batch, units))
    y_t   = cell(x_t, h_t)
    h_t+1 = Where(steps > t, y_t, h_t),  out_t = Where(steps > t, y_t, out_t-1)
                                         (or Where(steps > t, y_t, out_-1): Keras'
                                          zero_output_for_mask, set inside Bidirectional)
    out_-1 = zeros shaped like cell(Gather(X, 0), h_0)   (Keras' dry run for the shape)
    Concat([Unsqueeze(out_t, 0) for every t], 0)  -> the sequence (time-major), or
    Concat([Unsqueeze(out_last, 0)], 0)           -> the last state (then Gather 0 or -1)

``steps`` is the input's own step count (Gather(Shape(v), 1)), so every Where picks y_t.
go_backwards: Split reads Keras' flip of X (a Slice from -1 by -1 past the start of axis 0)
and the mask is Less(ReduceMax(steps) - 1 - steps, t), that is -1 < t (Keras writes the
ReduceMax over axis 0 of the scalar step count, which onnxruntime refuses as out of range;
torch, which traced it, reads it as the count itself). The sequence is in processing order,
last step first, as Keras and fastnn's go_backwards both give it.
Each inner value must be read only inside the match. LSTM and GRU come from another loop
(Keras' torch fallback): ``_import_unrolled_gates``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

import fastnn as fnn
from fastnn.onnx._import_ops import Ctx, T
from fastnn.onnx._import_patterns import _Graph, _serves_only

_ACTS = {"Tanh": "tanh", "Relu": "relu", "Sigmoid": "sigmoid"}


class _Match:
    """The graph seen through no-op Casts and Identity nodes, recording what it passes."""

    def __init__(self, g: _Graph) -> None:
        self.g = g
        self.own = 1 if g.ctx.dtype == np.float32 else 11
        self.nodes: list[Any] = []

    def see(self, name: str, ints: bool = False) -> str:
        while True:
            n = self.g.producer.get(name)
            if n is None or not (n.op_type == "Identity" or n.op_type == "Cast" and (
                    self.g.attr(n, "to") == self.own or ints and self.g.attr(n, "to") in (
                        1, 6, 7, 11))):
                return name
            self.nodes.append(n)
            name = n.input[0]

    def node(self, name: str, op: str, ints: bool = False) -> Any:
        n = self.g.made_by(self.see(name, ints), op)
        if n is None:
            raise LookupError(name)
        self.nodes.append(n)
        return n

    def const(self, name: str) -> np.ndarray:
        c = self.g.const(self.see(name))
        if c is None:
            raise LookupError(name)
        p = self.g.producer.get(self.see(name))
        if p is not None:
            self.nodes.append(p)
        return c

    def unsqueezed(self, name: str) -> str:
        """The (batch, units) value that the Unsqueeze at ``name`` gives a leading axis."""
        n = self.node(name, "Unsqueeze")
        if self.g.axes(n, 3) != [0]:
            raise LookupError(name)
        return self.see(n.input[0])

    def shape_dim(self, name: str, v: str, axis: int) -> None:
        """``name`` is Gather(Shape(v), axis) (a scalar or one-element index)."""
        gather = self.node(name, "Gather", ints=True)
        shape = self.node(gather.input[0], "Shape", ints=True)
        idx = self.const(gather.input[1]).reshape(-1)
        if self.see(shape.input[0]) != v or idx.size != 1 or int(idx[0]) != axis or \
                self.g.attr(gather, "axis", 0) != 0 or shape.attribute:
            raise LookupError(name)

    def unflip(self, name: str, axis: int, steps: int) -> tuple[str, bool]:
        """(x, True) when ``name`` is x reversed along ``axis`` of length ``steps`` (Keras'
        flip: a Slice from -1 by -1 to past the start), else (``name``, False)."""
        n = self.g.made_by(self.see(name), "Slice")
        if n is None:
            return self.see(name), False
        self.nodes.append(n)
        c = [self.const(i).reshape(-1).tolist() for i in n.input[1:]]
        if len(c) != 4 or c[0] != [-1] or len(c[1]) != 1 or c[1][0] >= -steps or \
                c[2] != [axis] or c[3] != [-1]:
            raise LookupError(name)
        return self.see(n.input[0]), True

    def step_mask(self, name: str, v: str, t: int) -> None:
        """``name`` is Keras' mask at step t, true for every t < steps: Greater(steps, t) or,
        going backwards, Less(ReduceMax(steps) - 1 - steps, t) (that is, -1 < t)."""
        n = self.g.producer.get(self.see(name))
        if n is not None and n.op_type == "Greater":
            self.nodes.append(n)
            self.shape_dim(n.input[0], v, 1)
        else:
            n = self.node(name, "Less")
            outer = self.node(n.input[0], "Sub")
            inner = self.node(outer.input[0], "Sub")
            top = self.node(inner.input[0], "ReduceMax", ints=True)
            steps = self.see(outer.input[1], ints=True)
            one = self.const(inner.input[1]).reshape(-1).tolist()
            if self.see(top.input[0], ints=True) != steps or one != [1] or \
                    self.g.axes(top, 1) != [0] or self.g.attr(top, "keepdims") != 0 or \
                    self.g.attr(top, "noop_with_empty_axes", 0) != 0:
                raise LookupError(name)
            self.shape_dim(steps, v, 1)
        if self.const(n.input[1]).reshape(-1).tolist() != [t]:
            raise LookupError(name)

    def zeros(self, name: str) -> Any:
        n = self.node(name, "ConstantOfShape")
        value = self.g.attr(n, "value")
        if value is not None and np.any(self.g.ctx.onnx.numpy_helper.to_array(value)):
            raise LookupError(name)
        return n

    def cell(self, y: str) -> tuple[str, str, str, np.ndarray, np.ndarray, np.ndarray]:
        """act(x W + b + h U) at ``y``: (act, x, h, W, b, U)."""
        act = self.g.producer.get(self.see(y))
        if act is None or act.op_type not in _ACTS:
            raise LookupError(y)
        self.nodes.append(act)
        total = self.node(act.input[0], "Add")
        for first, second in (tuple(total.input), tuple(total.input)[::-1]):
            try:
                mark = len(self.nodes)
                biased, recur = self.node(first, "Add"), self.node(second, "MatMul")
                xw = self.node(biased.input[0], "MatMul")
                bias = self.const(biased.input[1])
                break
            except LookupError:
                del self.nodes[mark:]
        else:
            raise LookupError(y)
        return (_ACTS[act.op_type], self.see(xw.input[0]), self.see(recur.input[0]),
                self.const(xw.input[1]), bias, self.const(recur.input[1]))


def _match(g: _Graph, concat: Any) -> Optional[tuple[list[Any], str, dict[str, Any]]]:
    """(nodes, v, layer settings) when ``concat`` ends Keras 3's unrolled SimpleRNN."""
    m = _Match(g)
    m.nodes.append(concat)
    if g.attr(concat, "axis") != 0 or not concat.input:
        return None
    try:
        outs = [m.unsqueezed(u) for u in concat.input]
        steps_seen: list[tuple[Any, str]] = []          # (Where of out_t, y_t), last first
        out = outs[-1]
        while g.made_by(m.see(out), "Where") is not None:
            where = m.node(out, "Where")
            steps_seen.append((where, m.see(where.input[1])))
            out = where.input[2]
        steps_seen.reverse()
        if len(steps_seen) == 1 and len(outs) > 1:   # zero_output_for_mask: out_t from zeros
            steps_seen = [(m.node(o, "Where"), "") for o in outs]
            if any(m.see(w.input[2]) != m.see(out) for w, _ in steps_seen):
                return None
            steps_seen = [(w, m.see(w.input[1])) for w, _ in steps_seen]
        t_count = len(steps_seen)
        if t_count < 2 or len(outs) not in (1, t_count) or (len(outs) == t_count and any(
                m.see(o) != w.output[0] for o, (w, _) in zip(outs, steps_seen))):
            return None
        dry = m.node(m.zeros(out).input[0], "Shape")
        act, x_dry, h_dry, w, b, u = m.cell(dry.input[0])
        gather0 = m.node(x_dry, "Gather")
        transpose = m.node(gather0.input[0], "Transpose")
        v = m.see(transpose.input[0])
        index = m.const(gather0.input[1])
        if g.attr(transpose, "perm") != [1, 0, 2] or index.ndim != 0 or int(index) != 0 or \
                g.attr(gather0, "axis", 0) != 0:
            return None
        size = m.node(m.zeros(h_dry).input[0], "Concat", ints=True)    # (batch, units)
        if len(size.input) != 2 or m.const(size.input[1]).reshape(-1).tolist() != [u.shape[0]]:
            return None
        m.shape_dim(m.node(size.input[0], "Unsqueeze", ints=True).input[0], v, 0)
        split = None
        h = h_dry
        for t, (where, y) in enumerate(steps_seen):
            m.step_mask(where.input[0], v, t)
            a, x_t, h_t, w_t, b_t, u_t = m.cell(y)
            squeeze = m.node(x_t, "Squeeze")
            if g.axes(squeeze, 3) != [0]:
                return None
            part = m.see(squeeze.input[0])
            split = split or m.node(part, "Split")
            if a != act or h_t != h or list(split.output).index(part) != t or any(
                    not np.array_equal(p, q) for p, q in ((w_t, w), (b_t, b), (u_t, u))):
                return None
            if t + 1 < t_count:                              # the state carried on
                nxt = next((n for n in g.ctx.consumers.get(where.input[0], [])
                            if n is not None and n is not where and n.op_type == "Where"
                            and m.see(n.input[1]) == y and m.see(n.input[2]) == h), None)
                if nxt is None:
                    return None
                m.nodes.append(nxt)
                h = nxt.output[0]
        if split is None:
            return None
        source, back = m.unflip(split.input[0], 0, t_count)
        if source != transpose.output[0] or \
                g.attr(split, "axis", 0) != 0 or len(split.output) != t_count:
            return None
    except (LookupError, ValueError, IndexError):
        return None
    units = u.shape[0] if u.ndim == 2 else 0
    if w.ndim != 2 or w.shape[1] != units or u.shape != (units, units) or b.shape != (units,):
        return None
    nodes = _cone(g, concat, v)
    if nodes is None:
        return None
    return nodes, v, {"kind": "SimpleRNN", "act": act, "seq": len(outs) > 1, "W": w, "b": b,
                      "U": u, "units": units, "steps": t_count, "back": back}


def _cone(g: _Graph, last: Any, v: str) -> Optional[list[Any]]:
    """Every node between ``v`` and ``last`` (graph inputs and initializers ending it)."""
    seen: dict[int, Any] = {}
    todo = [last]
    inputs = {i.name for i in g.ctx.graph.input}
    while todo:
        n = todo.pop()
        if id(n) in seen:
            continue
        seen[id(n)] = n
        for name in n.input:
            p = g.producer.get(name)
            if not name or name == v or p is None:
                if name and name != v and name in inputs:
                    return None                          # another input: not this layer's
                continue
            todo.append(p)
    return list(seen.values())


def unrolled_input(ctx: Ctx, v: str, found: dict[str, Any]) -> Any:
    """The fastnn tensor an unrolled layer reads: (batch, steps, features), one step each."""
    x = ctx.get(v)
    if not isinstance(x, T) or not x.identity or len(x.sym.shape) != 2 or \
            x.sym.shape[0] != found["steps"] or x.sym.shape[1] != found["W"].shape[0]:
        ctx.fail(f"an unrolled {found['kind']} must read a (batch, steps, features) tensor "
                 f"with one step per unrolled step")
    return x.sym


def unrolled_layer(ctx: Ctx, found: dict[str, Any], back: bool) -> tuple[Any, list[Any]]:
    """The fastnn layer (``go_backwards=back``) of a match and its weights, in spec order."""
    kwargs: dict[str, Any] = {"return_sequences": found["seq"], "go_backwards": back}
    layer: Any
    if found["kind"] == "SimpleRNN":
        layer = fnn.SimpleRNN(found["units"], activation=found["act"], **kwargs)
    else:
        layer = (fnn.LSTM if found["kind"] == "LSTM" else fnn.GRU)(found["units"], **kwargs)
    return layer, [np.asarray(found[k], ctx.dtype) for k in ("W", "U", "b")]


def build_unrolled(v: str, found: dict[str, Any]) -> Callable[[Ctx, Any], list[Any]]:
    def build(ctx: Ctx, node: Any) -> list[Any]:
        x = unrolled_input(ctx, v, found)
        layer, weights = unrolled_layer(ctx, found, found["back"])
        out = layer(x)
        ctx.weights[layer] = weights
        if found["seq"]:
            return [T(out, (1, 0, 2))]
        return [T(out, (None, 0, 1) if found["kind"] == "SimpleRNN" else (0, 1))]
    return build


def register_unrolled(ctx: Ctx, g: _Graph, node: Any, found: Any) -> bool:
    """Record a match ending at ``node`` (Bidirectional may join two of them); when nothing
    outside reads its inner values, its nodes are skipped and ``node`` builds the layer.
    Returns whether it was taken."""
    g.unrolled[id(node)] = found
    if not _serves_only(g, found[0], node):
        return False
    ctx.skip.update(id(n) for n in found[0] if n is not node)
    ctx.patterns[id(node)] = build_unrolled(found[1], found[2])
    return True


def find_unrolled(ctx: Ctx, g: _Graph) -> None:
    for node in ctx.graph.node:
        if node.op_type != "Concat" or id(node) in ctx.skip:
            continue
        found = _match(g, node)
        if found is not None:
            register_unrolled(ctx, g, node, found)


__all__ = ["build_unrolled", "find_unrolled", "register_unrolled", "unrolled_input",
           "unrolled_layer"]
