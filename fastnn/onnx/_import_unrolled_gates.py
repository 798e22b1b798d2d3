"""Keras 3's LSTM and GRU as its torch-backend export writes them (Keras' own fallback loop,
unrolled by the trace), matched exactly before the node loop and read as one layer.

With X = Transpose(v, [1, 0, 2]), XW = MatMul(X, W) + b_x (every step at once) and no-op
Casts and Identity nodes seen through, step t reads xz = Gather(XW, t) and the state h (c):

    LSTM:  z = xz + h U;  i, f, g, o = chunks of z (torch.chunk: Slices whose bounds are
           shape arithmetic on z's known width)
           c' = sigmoid(f) c + sigmoid(i) tanh(g);  h' = sigmoid(o) tanh(c')
    GRU:   hz = h U + b_h;  (xz0, xz1, xz2), (hz0, hz1, hz2) the chunks
           z = sigmoid(xz0 + hz0);  r = sigmoid(xz1 + hz1);  n = tanh(xz2 + r hz2)
           h' = z h + (1 - z) n                   (Keras' reset_after=True)

from zeros (ConstantOfShape 0), steps 0, 1, ... T-1 in order (go_backwards: X reads Keras'
flip of v, a Slice from -1 by -1 past the start of axis 1). The layer gives the last h
(the match ends at it) or the sequence (a Concat of every h' unsqueezed on axis 0). Every inner
value must be read only inside the match; anything else is left to the node-by-node reading,
which refuses it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

import fastnn as fnn
from fastnn.onnx._import_ops import Ctx, T
from fastnn.onnx._import_patterns import _Graph
from fastnn.onnx._import_unrolled import _cone, _Match, register_unrolled

_ARITH = {"Add", "Sub", "Mul", "Div", "Cast", "Identity", "Unsqueeze", "Squeeze", "Concat"}


class _Gates(_Match):
    def __init__(self, g: _Graph, kind: str) -> None:
        super().__init__(g)
        self.kind = kind
        self.xw: Optional[str] = None
        self.x = ""
        self.known: dict[tuple[str, str, int], np.ndarray] = {}     # integer values found
        self.weights: dict[str, np.ndarray] = {}

    def act(self, name: str, op: str) -> str:
        return self.node(name, op).input[0]

    def index(self, name: str, z: str, width: int) -> np.ndarray:
        """The integer value ``name``: constants and Gather(Shape(z), 1) (z's width, known),
        combined by integer arithmetic that onnx's reference implementation evaluates."""
        key = (name, z, width)
        if key not in self.known:
            self.known[key] = self._index(name, z, width)
        return self.known[key]

    def _index(self, name: str, z: str, width: int) -> np.ndarray:
        c = self.g.const(name)
        if c is not None:
            return np.asarray(c)
        n = self.g.producer.get(name)
        if n is None:
            raise LookupError(name)
        self.nodes.append(n)
        if n.op_type == "Gather":
            shape = self.g.made_by(n.input[0], "Shape")
            idx = self.g.const(n.input[1])
            if shape is None or idx is None or self.see(shape.input[0]) != z or \
                    shape.attribute or idx.size != 1 or int(idx.reshape(-1)[0]) not in (1, -1) \
                    or self.g.attr(n, "axis", 0) != 0:
                raise LookupError(name)
            return np.full(idx.shape, width, np.int64)
        if n.op_type not in _ARITH or n.domain not in ("", "ai.onnx"):
            raise LookupError(name)
        from onnx.reference import ReferenceEvaluator
        feeds = {i: self.index(i, z, width) for i in n.input if i}
        if any(np.asarray(v).size > 8 for v in feeds.values()):   # bounds are scalars: a
            raise LookupError(name)            # broadcast of large constants is no gate bound
        out: Any = ReferenceEvaluator(n).run(None, feeds)
        return np.asarray(out[0])

    def chunk(self, name: str, units: int, gates: int) -> tuple[str, int]:
        """(z, k) when ``name`` is the k-th of ``gates`` chunks of z along its last axis."""
        s = self.node(name, "Slice")
        z = self.see(s.input[0])
        ends = [self.index(s.input[i], z, units * gates) for i in (1, 2)]
        if any(e.size != 1 or e.dtype.kind not in "iu" for e in ends):
            raise LookupError(name)
        bounds = [int(e.reshape(-1)[0]) for e in ends]
        axes = self.const(s.input[3]).reshape(-1).tolist() if len(s.input) > 3 else []
        step = self.const(s.input[4]).reshape(-1).tolist() if len(s.input) > 4 else [1]
        k = bounds[0] // units
        if axes not in ([1], [-1]) or step != [1] or bounds != [k * units, (k + 1) * units]:
            raise LookupError(name)
        return z, k

    def same(self, key: str, value: np.ndarray) -> None:
        if key in self.weights and not np.array_equal(self.weights[key], value):
            raise LookupError(key)
        self.weights[key] = value

    def is_op(self, name: str, op: str) -> bool:
        n = self.g.producer.get(self.see(name))
        return n is not None and n.op_type == op

    def is_x_chunk(self, name: str) -> bool:
        """A Slice of a per-step Gather (the input part of the gates)."""
        n = self.g.producer.get(self.see(name))
        return n is not None and n.op_type == "Slice" and self.is_op(n.input[0], "Gather")

    def split2(self, name: str, op: str, pred: Callable[[str], bool]) -> tuple[str, str]:
        """The inputs (a, b) of the ``op`` at ``name`` with ``pred(a)`` and not ``pred(b)``."""
        n = self.node(name, op)
        a, b = n.input
        if pred(a) and not pred(b):
            return a, b
        if pred(b) and not pred(a):
            return b, a
        raise LookupError(name)

    def input_part(self, xz: str) -> int:
        """xz = Gather(MatMul(X, W) + b_x, t): t."""
        gather = self.node(xz, "Gather")
        idx = self.const(gather.input[1])
        xw = self.see(gather.input[0])
        if self.g.attr(gather, "axis", 0) != 0 or idx.ndim != 0:
            raise LookupError(xz)                    # one step, its axis dropped
        t = int(idx)
        if self.xw is None:
            mm_out, bias = self.split2(xw, "Add", lambda a: self.is_op(a, "MatMul"))
            mm = self.node(mm_out, "MatMul")
            self.same("b_x", self.const(bias))
            self.same("W", self.const(mm.input[1]))
            self.xw, self.x = xw, self.see(mm.input[0])
        elif xw != self.xw:
            raise LookupError(xz)
        return t

    def kernel(self, name: str, gates: int) -> int:
        """The units of the recurrent kernel at ``name`` ((units, gates * units))."""
        u = self.const(name)
        if u.ndim != 2 or u.shape[1] != gates * u.shape[0]:
            raise LookupError(name)
        self.same("U", u)
        return int(u.shape[0])

    def lstm_step(self, h: str) -> tuple[str, str, str, int]:
        """(h_prev, c_prev, c', t) for h' = sigmoid(o) tanh(c')."""
        o_s, tanh_c = self.split2(h, "Mul", lambda a: self.is_op(a, "Sigmoid"))
        z = self.see(self.node(self.act(o_s, "Sigmoid"), "Slice").input[0])
        xz, hu = self.split2(z, "Add", lambda a: self.is_op(a, "Gather"))
        mm = self.node(hu, "MatMul")
        units = self.kernel(mm.input[1], 4)
        c_new = self.see(self.act(tanh_c, "Tanh"))
        ig, fc = self.split2(c_new, "Add", lambda a: self.is_op(a, "Mul") and any(
            self.is_op(i, "Tanh") for i in self.g.producer[self.see(a)].input))
        g_t, i_s = self.split2(ig, "Mul", lambda a: self.is_op(a, "Tanh"))
        f_s, c_prev = self.split2(fc, "Mul", lambda a: self.is_op(a, "Sigmoid"))
        parts = [self.chunk(self.act(x, op), units, 4) for x, op in (
            (i_s, "Sigmoid"), (f_s, "Sigmoid"), (g_t, "Tanh"), (o_s, "Sigmoid"))]
        if [p[1] for p in parts] != [0, 1, 2, 3] or any(p[0] != z for p in parts):
            raise LookupError(h)
        t = self.input_part(xz)
        return self.see(mm.input[0]), self.see(c_prev), c_new, t

    def gru_step(self, h: str) -> tuple[str, str, str, int]:
        """(h_prev, "", "", t) for h' = z h + (1 - z) n."""
        zh, rest = self.split2(h, "Add", lambda a: self.is_op(a, "Mul") and any(
            self.is_op(i, "Sigmoid") for i in self.g.producer[self.see(a)].input))
        z_s, h_prev = self.split2(zh, "Mul", lambda a: self.is_op(a, "Sigmoid"))
        one_minus, n_t = self.split2(rest, "Mul", lambda a: self.is_op(a, "Sub"))
        sub = self.node(one_minus, "Sub")
        one = self.const(sub.input[0])
        if self.see(sub.input[1]) != self.see(z_s) or one.size != 1 or \
                float(one.reshape(-1)[0]) != 1.0:
            raise LookupError(h)
        xs0, hs0 = self.split2(self.act(z_s, "Sigmoid"), "Add", self.is_x_chunk)
        xs2, rh = self.split2(self.act(n_t, "Tanh"), "Add", self.is_x_chunk)
        r_s, hs2 = self.split2(rh, "Mul", lambda a: self.is_op(a, "Sigmoid"))
        hz = self.see(self.node(hs2, "Slice").input[0])
        mm_out, bias = self.split2(hz, "Add", lambda a: self.is_op(a, "MatMul"))
        mm = self.node(mm_out, "MatMul")
        units = self.kernel(mm.input[1], 3)
        self.same("b_h", self.const(bias))
        xs1, hs1 = self.split2(self.act(r_s, "Sigmoid"), "Add", self.is_x_chunk)
        xs = [self.chunk(a, units, 3) for a in (xs0, xs1, xs2)]
        hs = [self.chunk(a, units, 3) for a in (hs0, hs1, hs2)]
        if [k for _, k in xs] != [0, 1, 2] or [k for _, k in hs] != [0, 1, 2] or \
                len({z for z, _ in xs}) != 1 or {z for z, _ in hs} != {hz}:
            raise LookupError(h)
        if self.see(mm.input[0]) != self.see(h_prev):
            raise LookupError(h)
        return self.see(h_prev), "", "", self.input_part(xs[0][0])


def _match(g: _Graph, end: Any, kind: str) -> Optional[tuple[list[Any], str, dict[str, Any]]]:
    """(nodes, v, layer settings) when ``end`` ends Keras 3's unrolled ``kind`` layer."""
    m = _Gates(g, kind)
    seq = end.op_type == "Concat"
    m.nodes.append(end)
    try:
        if seq:
            if g.attr(end, "axis") != 0 or len(end.input) < 2:
                return None
            outs = [m.unsqueezed(u) for u in end.input]
            h = outs[-1]
        else:
            h = end.output[0]
        steps: list[tuple[str, str, str, int]] = []
        cur = h
        while not m.is_op(cur, "ConstantOfShape"):
            step = (m.lstm_step if kind == "LSTM" else m.gru_step)(cur)
            steps.append((cur, *step[1:]))
            cur = step[0]
            if len(steps) > 100_000:
                return None
        steps.reverse()
        units = m.weights["U"].shape[0]
        size = m.node(m.zeros(cur).input[0], "Concat", ints=True)
        transpose = m.node(m.x, "Transpose")
        v, back = m.unflip(transpose.input[0], 1, len(steps))
        if len(size.input) != 2 or m.const(size.input[1]).reshape(-1).tolist() != [units] \
                or g.attr(transpose, "perm") != [1, 0, 2]:
            return None
        m.shape_dim(m.node(size.input[0], "Unsqueeze", ints=True).input[0], v, 0)
        if [s[3] for s in steps] != list(range(len(steps))) or len(steps) < 2 or \
                (seq and outs != [s[0] for s in steps]):
            return None
        if kind == "LSTM" and (m.see(steps[0][1]) != m.see(cur) or any(
                steps[t][1] != steps[t - 1][2] for t in range(1, len(steps)))):
            return None
    except (LookupError, ValueError, IndexError, KeyError, AttributeError):
        return None
    gates = 4 if kind == "LSTM" else 3
    w, u = m.weights["W"], m.weights["U"]
    if w.ndim != 2 or w.shape[1] != gates * units or u.shape != (units, gates * units):
        return None
    biases = [m.weights[k] for k in (("b_x",) if kind == "LSTM" else ("b_x", "b_h"))]
    if any(b.shape != (gates * units,) for b in biases):
        return None
    bias = biases[0] if kind == "LSTM" else np.stack(biases)
    nodes = _cone(g, end, v)
    if nodes is None:
        return None
    return nodes, v, {"kind": kind, "seq": seq, "W": w, "U": u, "b": bias,
                      "steps": len(steps), "units": units, "back": back}


def find_unrolled_gates(ctx: Ctx, g: _Graph) -> None:
    """Match from the end: the sequence's Concat, or the last step's h (a Mul for an LSTM,
    an Add for a GRU)."""
    ends = {"Concat": ("LSTM", "GRU"), "Mul": ("LSTM",), "Add": ("GRU",)}
    for node in reversed(ctx.graph.node):
        if node.op_type not in ends or id(node) in ctx.skip or id(node) in ctx.patterns:
            continue
        for kind in ends[node.op_type]:
            found = _match(g, node, kind)
            if found is not None and register_unrolled(ctx, g, node, found):
                break


__all__ = ["find_unrolled_gates"]
