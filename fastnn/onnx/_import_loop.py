"""The importer's Loop: tf2onnx's SimpleRNN (TensorFlow's while loop over the time steps).

Only that exact loop is read, as fastnn's SimpleRNN (Keras' weight layout); any other Loop is
refused naming the node. Its body, with carried values (t, h, T, W, b, U) in any order:

    x_t = Gather(x_time_major, t)           x_time_major: the outer Transpose(x, [1, 0, 2])
    h'  = act(x_t @ W + b + h @ U)           act: Tanh, Relu or Sigmoid
    t'  = t + 1;  cond' = t' < T             (through Casts)
    outputs: cond', t', h' (through Identity), T, W, b, U unchanged, scan output h'

with t starting at 0, T = the number of steps, the first condition true (so the loop runs
once per step, in order) and h starting at zeros. What the layer returns is read from what the
graph uses: the scan output (the sequence, or tf2onnx's ``y[-1:]`` as the last state) and the
final h.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

import fastnn as fnn
from fastnn.onnx._import_ops import Ctx, T, Zero
from fastnn.onnx._import_seq import _NAMES, _last_step


class _Body:
    """The loop body: producers and constants by name, the nodes matched so far."""

    def __init__(self, ctx: Ctx, graph: Any) -> None:
        self.ctx, self.graph = ctx, graph
        self.producer = {o: n for n in graph.node for o in n.output if o}
        self.consts = {i.name: ctx.onnx.numpy_helper.to_array(i) for i in graph.initializer}
        self.used: set[int] = set()

    def node(self, name: str, op: str) -> Any:
        """The producer of ``name`` when it is an ``op`` (marked as matched), else None."""
        n = self.producer.get(name)
        if n is None or n.op_type != op or n.domain not in ("", "ai.onnx"):
            return None
        self.used.add(id(n))
        return n

    def through(self, name: str, to: Optional[tuple[int, ...]] = None) -> str:
        """``name`` seen back through Identity nodes (and Casts to ``to`` if given)."""
        while True:
            n = self.producer.get(name)
            if n is None or not (n.op_type == "Identity" or (
                    n.op_type == "Cast" and to is not None and self.attr(n, "to") in to)):
                return name
            self.used.add(id(n))
            name = n.input[0]

    def attr(self, node: Any, name: str, default: Any = None) -> Any:
        for a in node.attribute:
            if a.name == name:
                return self.ctx.onnx.helper.get_attribute_value(a)
        return default

    def scalar(self, name: str) -> Optional[float]:
        c = self.consts.get(name)
        if c is None:
            n = self.node(name, "Constant")
            if n is not None and self.attr(n, "value") is not None:
                c = self.ctx.onnx.numpy_helper.to_array(self.attr(n, "value"))
        return float(c.reshape(-1)[0]) if c is not None and c.size == 1 else None


def _cell(b: _Body, carried: list[str], outs: list[str]) -> Optional[dict[str, Any]]:
    """The positions (in the carried values) of t, h, T, W, b, U, the activation and the outer
    time-major input, when the body is exactly the SimpleRNN cell; None otherwise."""
    pos = {name: i for i, name in enumerate(carried)}
    y = b.through(outs[-1])
    act = b.producer.get(y)
    if act is None or act.op_type not in _NAMES:
        return None
    b.used.add(id(act))
    total = b.node(act.input[0], "Add")
    if total is None:
        return None
    for first, second in (tuple(total.input), tuple(total.input)[::-1]):
        biased, recur = b.node(first, "Add"), b.node(second, "MatMul")
        if biased is not None and recur is not None:
            break
    else:
        return None
    xw = b.node(biased.input[0], "MatMul")
    gather = b.node(xw.input[0], "Gather") if xw is not None else None
    if gather is None or b.attr(gather, "axis", 0) != 0:
        return None
    found = {"t": pos.get(gather.input[1]), "h": pos.get(recur.input[0]),
             "W": pos.get(xw.input[1]), "b": pos.get(biased.input[1]),
             "U": pos.get(recur.input[1]), "act": _NAMES[act.op_type], "x": gather.input[0]}
    step = b.node(b.through(outs[1 + found["t"]]), "Add") \
        if found["t"] is not None else None
    less = b.node(b.through(outs[0]), "Less")
    if step is None or less is None or step.input[0] != carried[found["t"]] or \
            b.scalar(step.input[1]) != 1 or b.through(outs[1 + found["h"]]) != y:
        return None
    ints_or_floats = (1, 6, 7, 11)
    found["T"] = pos.get(b.through(less.input[1], ints_or_floats))
    if b.through(less.input[0], ints_or_floats) != step.output[0]:
        return None
    roles = [found[k] for k in ("t", "h", "T", "W", "b", "U")]
    if None in roles or len(set(roles)) != len(carried) or any(
            outs[1 + j] != carried[j] for j in roles[2:]):
        return None                                # T, W, b, U pass through unchanged
    return found


def loop(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    body = ctx.attr("body")
    b = _Body(ctx, body)
    names = [i.name for i in body.input]
    outs = [o.name for o in body.output]
    k = len(ins) - 2
    if len(names) != k + 2 or len(outs) != k + 2:
        ctx.fail("only tf2onnx's SimpleRNN loop (six carried values, one scan output) is "
                 "supported")
    cell = _cell(b, names[2:], outs) if k == 6 else None
    if cell is None or len(b.used) != len(body.node) or cell["x"] in names:
        ctx.fail("only tf2onnx's SimpleRNN loop is supported; its body must be exactly "
                 "act(x_t W + b + h U) stepping t up to the number of steps")
    x = ctx.values.get(cell["x"])
    carried = ins[2:]
    t0, stop = carried[cell["t"]], carried[cell["T"]]
    w, bias, u = (ctx.const(carried[cell[r]], r) for r in ("W", "b", "U"))
    cond = ins[1]
    if not isinstance(x, T) or x.layout != (1, 0, 2) or len(x.sym.shape) != 2:
        ctx.fail("the loop must read the time-major view of (batch, steps, features), a "
                 "Transpose(perm=[1, 0, 2])")
    steps, features = x.sym.shape
    if ins[0] is not None or not isinstance(cond, np.ndarray) or cond.size != 1 or \
            not bool(cond.reshape(-1)[0]) or not isinstance(t0, np.ndarray) or \
            t0.size != 1 or int(t0.reshape(-1)[0]) != 0 or not isinstance(stop, np.ndarray) \
            or stop.size != 1 or int(stop.reshape(-1)[0]) != steps:
        ctx.fail(f"the loop must run from t = 0 while t < {steps} (the number of steps), with "
                 f"no trip count")
    if not isinstance(carried[cell["h"]], Zero):
        ctx.fail("the initial state must be zeros")
    units = u.shape[0] if u.ndim == 2 else 0
    if w.shape != (features, units) or u.shape != (units, units) or bias.shape != (units,):
        ctx.fail(f"W, b and U must be ({features}, units), (units,) and (units, units)")
    for i, name in enumerate(node.output[:k]):
        if i != cell["h"] and name and ctx.consumers.get(name):
            ctx.fail("only the final state and the scan output of the loop may be read")
    final = node.output[cell["h"]] if k < len(node.output) else ""
    scan = node.output[k] if len(node.output) > k else ""
    chain = _last_step(ctx, scan, steps, False, ["t", "b", "h"]) if scan else None
    seq = bool(scan and ctx.consumers.get(scan)) and chain is None
    state = seq and bool(final and ctx.consumers.get(final))
    layer = fnn.SimpleRNN(units, activation=cell["act"], return_sequences=seq,
                          return_state=state)
    out = ctx.call(layer, x.sym, {"kernel": w, "recurrent_kernel": u, "bias": bias})
    parts = out if state else [out]
    last = T(parts[-1], (0, 1)) if state or not seq else None
    if chain is not None:
        ctx.values[chain[0]] = last
        ctx.skip.update(id(n) for n in chain[1])
    values: list[Any] = [None] * len(node.output)
    if final:
        values[cell["h"]] = last
    if seq:
        values[k] = T(parts[0], (1, 0, 2))
    return values


__all__ = ["loop"]
