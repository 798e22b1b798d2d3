"""The exporter's sequence layers: SimpleRNN, LSTM, GRU, RNN(cells) and Bidirectional as ONNX's
RNN, LSTM and GRU ops; MultiHeadAttention and TransformerBlock as MatMul/Softmax subgraphs.

ONNX's recurrent ops are time-major, with weights W (directions, gates * units, features),
R (directions, gates * units, units), B (directions, 2 * gates * units: input then recurrent
biases). Keras' gate orders map as LSTM i, f, c, o -> ONNX i, o, f, c and GRU z, r, h ->
z, r, h (``reset_after=True`` is ``linear_before_reset=1``; ``reset_after=False`` is ONNX's default
``linear_before_reset=0``, its one bias the input biases with zero recurrent ones).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastnn import activations as A
from fastnn.layers import RNN, GRU, LSTM, Bidirectional, MultiHeadAttention, SimpleRNN
from fastnn.layers.bidirectional import OutputOf
from fastnn.layers.transformer import TransformerBlock
from fastnn.onnx._graph import GraphBuilder

_OP = {SimpleRNN: "RNN", LSTM: "LSTM", GRU: "GRU"}
#: ONNX's gate blocks, as indices of Keras' (LSTM i, f, c, o -> i, o, f, c)
_ORDER = {SimpleRNN: [0], LSTM: [0, 3, 1, 2], GRU: [0, 1, 2]}
_ACT = {A.SIGMOID: "Sigmoid", A.TANH: "Tanh", A.RELU: "Relu"}


def _weights(layer: Any) -> dict[str, np.ndarray]:
    return {spec.name: w for spec, w in zip(layer._specs, layer.get_weights())}


def _gates(a: np.ndarray, order: list[int], units: int) -> np.ndarray:
    """The gate blocks of the last axis of ``a`` in ONNX's order."""
    return np.concatenate([a[..., g * units:(g + 1) * units] for g in order], axis=-1)


def _cell_arrays(layer: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W (G*H, F), R (G*H, H), B (2*G*H,) of one direction."""
    kind = type(layer)
    order, h = _ORDER[kind], layer.units
    w = _weights(layer)
    kernel, rec = _gates(w["kernel"], order, h), _gates(w["recurrent_kernel"], order, h)
    gh = len(order) * h
    if "bias" not in w:
        bias = np.zeros(2 * gh, kernel.dtype)
    elif kind is GRU and layer.reset_after:  # (2, 3H): input biases, recurrent biases
        bias = _gates(w["bias"], order, h).reshape(-1)
    else:
        bias = np.concatenate([_gates(w["bias"], order, h), np.zeros(gh, kernel.dtype)])
    return kernel.T, rec.T, bias


def _activations(layer: Any) -> list[str]:
    for code in (layer.act, layer.rec_act):
        if code not in _ACT:
            raise ValueError(f"{layer.name}: a recurrent layer with activation "
                             f"{A.NAMES[code]!r} has no ONNX form here (sigmoid, tanh, relu)")
    act, rec = _ACT[layer.act], _ACT[layer.rec_act]
    return {SimpleRNN: [act], LSTM: [rec, act, act], GRU: [rec, act]}[type(layer)]


def _run(b: GraphBuilder, cells: list[Any], x: str, states: list[str], p: str,
         direction: str) -> list[str]:
    """The ONNX op over the time-major copy of ``x``: outputs Y, Y_h(, Y_c)."""
    first = cells[0]
    arrays = [_cell_arrays(c) for c in cells]
    inputs = [b.transpose(x, [1, 0, 2], f"{p}/time_major")]
    for k, name in enumerate(("W", "R", "B")):
        inputs.append(b.const(np.stack([a[k] for a in arrays]), f"{p}/{name}"))
    if states:
        inputs.append("")                     # sequence_lens: all full
        for s, name in zip(states, ("initial_h", "initial_c")):
            inputs.append(b.op("Unsqueeze", [s, b.ints([0], f"{p}/axis0")], f"{p}/{name}"))
    attrs: dict[str, Any] = {"hidden_size": first.units, "direction": direction,
                             "activations": _activations(first) * len(cells)}
    if isinstance(first, GRU):
        attrs["linear_before_reset"] = int(first.reset_after)
    n_out = 3 if isinstance(first, LSTM) else 2
    return b.op(_OP[type(first)], inputs, f"{p}/{_OP[type(first)].lower()}", n_out=n_out,
                **attrs)


def _refuse_stateful(layer: Any, name: str) -> None:
    if getattr(layer, "stateful", False):
        raise ValueError(f"{name}: a stateful recurrent layer has no ONNX form (its states live "
                         f"between calls, outside the graph); export a copy built with "
                         f"stateful=False and feed the states as initial_state inputs")


def _squeeze(b: GraphBuilder, x: str, axis: int, p: str) -> str:
    return b.op("Squeeze", [x, b.ints([axis], f"{p}/axes")], p)


def _recurrent(b: GraphBuilder, layer: Any, x: Any, p: str) -> Any:
    _refuse_stateful(layer, layer.name)
    xs = x if isinstance(x, list) else [x]
    outs = _run(b, [layer], xs[0], xs[1:], p, "reverse" if layer.go_backwards else "forward")
    if layer.return_sequences:
        y = b.transpose(_squeeze(b, outs[0], 1, f"{p}/y_tnh"), [1, 0, 2], f"{p}/y")
        if layer.go_backwards:                # Keras: outputs in the order they were computed
            big = np.iinfo(np.int64).max
            y = b.op("Slice", [y, b.ints([-1]), b.ints([-big]), b.ints([1]), b.ints([-1])],
                     f"{p}/reversed")
    else:
        y = _squeeze(b, outs[1], 0, f"{p}/h")
    if not layer.return_state:
        return y
    return [y, *[_squeeze(b, s, 0, f"{p}/state") for s in outs[1:]]]


def _rnn(b: GraphBuilder, layer: Any, x: Any, p: str) -> Any:
    """RNN(cell or StackedRNNCells): its recurrent layers in a chain, as it runs them."""
    xs = x if isinstance(x, list) else [x]
    seq, i = xs[0], 1
    states: list[Any] = []
    for k, inner in enumerate(layer.layers):
        given = [seq, *xs[i:i + inner.n_states]] if len(xs) > 1 else seq
        i += inner.n_states
        out = _recurrent(b, inner, given, f"{p}/cell{k}")
        seq, states = (out[0], states + out[1:]) if inner.return_state else (out, states)
    return [seq, *states] if layer.return_state else seq


def _bidirectional(b: GraphBuilder, layer: Any, x: Any, p: str) -> Any:
    fwd, bwd = layer.forward_layer, layer.backward_layer
    _refuse_stateful(fwd, layer.name)
    if isinstance(x, list) or layer.return_state or fwd.go_backwards:
        raise ValueError(f"{layer.name}: Bidirectional with initial states, return_state or a "
                         f"go_backwards layer has no ONNX form here")
    outs = _run(b, [fwd, bwd], x, [], p, "bidirectional")
    if layer.return_sequences:                # Y (T, 2, n, H) -> (n, T, 2, H)
        y, axis = b.transpose(outs[0], [2, 0, 1, 3], f"{p}/y"), 2
        shape = [layer.input_shape[0], 2 * fwd.units]
    else:                                     # Y_h (2, n, H) -> (n, 2, H)
        y, axis = b.transpose(outs[1], [1, 0, 2], f"{p}/h"), 1
        shape = [2 * fwd.units]
    mode = layer.merge_mode
    if mode == "concat":
        return b.reshape(y, shape, p)
    if mode is None:
        halves = b.op("Split", [y], f"{p}/halves", n_out=2, axis=axis)
        return [_squeeze(b, h, axis, f"{p}/part") for h in halves]
    op = {"sum": "ReduceSum", "ave": "ReduceMean", "mul": "ReduceProd"}[mode]
    if op == "ReduceSum":
        return b.op(op, [y, b.ints([axis], f"{p}/axes")], p, keepdims=0)
    return b.op(op, [y], p, axes=[axis], keepdims=0) if b.opset < 18 else \
        b.op(op, [y, b.ints([axis], f"{p}/axes")], p, keepdims=0)


def _output_of(b: GraphBuilder, layer: Any, x: Any, p: str) -> str:
    return x[layer.index]


def _heads(b: GraphBuilder, x: str, kernel: np.ndarray, bias: Any, steps: int,
           perm: list[int], p: str) -> str:
    """x (n, L, d) @ kernel (d, H, k) + bias, as (n, H, L, k) (or ``perm``'s order)."""
    d, heads, k = kernel.shape
    y = b.op("MatMul", [x, b.const(kernel.reshape(d, heads * k), f"{p}/kernel")], f"{p}/proj")
    if bias is not None:
        y = b.op("Add", [y, b.const(bias.reshape(-1), f"{p}/bias")], f"{p}/biased")
    return b.transpose(b.reshape(y, [steps, heads, k], f"{p}/split"), perm, f"{p}/heads")


def attention(b: GraphBuilder, layer: Any, by_role: dict[str, str], shapes: dict[str, Any],
              p: str) -> str:
    """MultiHeadAttention's forward pass on the tensors of its roles (q, k, v, m)."""
    w = _weights(layer)
    lq, lk = shapes["q"][0], shapes["k"][0]
    q = _heads(b, by_role["q"], w["query_kernel"], w.get("query_bias"), lq, [0, 2, 1, 3],
               f"{p}/query")
    k = _heads(b, by_role["k"], w["key_kernel"], w.get("key_bias"), lk, [0, 2, 3, 1],
               f"{p}/key")
    v = _heads(b, by_role["v"], w["value_kernel"], w.get("value_bias"), lk, [0, 2, 1, 3],
               f"{p}/value")
    scores = b.op("MatMul", [q, k], f"{p}/qk")
    scores = b.op("Mul", [scores, b.const(1 / math.sqrt(layer.key_dim), f"{p}/scale")],
                  f"{p}/scores")
    if layer.use_causal_mask:
        mask = np.where(np.tril(np.ones((lq, lk), bool), lk - lq), 0.0, -np.inf)
        scores = b.op("Add", [scores, b.const(mask, f"{p}/causal")], f"{p}/causal_scores")
    if "m" in by_role:              # (n, Lk) key padding or (n, Lq, Lk) mask: 0 = not seen
        padded = b.op("Equal", [by_role["m"], b.const(0.0, f"{p}/zero")], f"{p}/padded")
        neg = b.op("Where", [padded, b.const(-np.inf, f"{p}/ninf"), b.const(0.0, f"{p}/z")],
                   f"{p}/mask_bias")
        rows = lq if len(shapes["m"]) == 2 else 1       # every head shares the mask
        scores = b.op("Add", [scores, b.reshape(neg, [1, rows, lk], f"{p}/mask4")],
                      f"{p}/masked_scores")
    probs = b.op("Softmax", [scores], f"{p}/softmax", axis=-1)
    if "m" in by_role:                        # a query that sees no key: zeros, as in fastnn
        probs = b.op("Where", [b.op("IsNaN", [probs], f"{p}/unseen"), b.const(0.0, f"{p}/z0"),
                               probs], f"{p}/probs")
    o = b.transpose(b.op("MatMul", [probs, v], f"{p}/pv"), [0, 2, 1, 3], f"{p}/o")
    wo = w["output_kernel"]
    o = b.reshape(o, [lq, wo.shape[0] * wo.shape[1]], f"{p}/merge")
    y = b.op("MatMul", [o, b.const(wo.reshape(-1, wo.shape[2]), f"{p}/output_kernel")],
             f"{p}/out")
    if "output_bias" in w:
        y = b.op("Add", [y, b.const(w["output_bias"], f"{p}/output_bias")], f"{p}/output")
    return y


def _mha(b: GraphBuilder, layer: Any, x: Any, p: str) -> str:
    xs = x if isinstance(x, list) else [x]
    shapes_in = layer.input_shape if isinstance(layer.input_shape, list) else [layer.input_shape]
    by_role, shapes = {}, {}
    for roles, t, s in zip(layer.input_roles, xs, shapes_in):
        for r in roles:
            by_role[r], shapes[r] = t, s
    return attention(b, layer, by_role, shapes, p)


def _transformer(b: GraphBuilder, layer: Any, x: Any, p: str) -> str:
    from fastnn.onnx._exporter import _dense, _layer_norm
    x, mask = (x[0], x[1]) if isinstance(x, list) else (x, None)
    shape = layer.output_shape
    roles = {"q": x, "k": x, "v": x}
    shapes = {"q": shape, "k": shape, "v": shape}

    def attend(h: str) -> str:
        r = dict(roles, q=h, k=h, v=h)
        if mask is not None:
            r["m"] = mask
        return attention(b, layer.attention, r, shapes, f"{p}/attention")

    def feedforward(h: str) -> str:
        f = _dense(b, layer.feedforward_intermediate, h, f"{p}/ff1")
        return _dense(b, layer.feedforward_output, f, f"{p}/ff2")

    if layer.norm_first:
        h = _layer_norm(b, layer.attention_norm, x, f"{p}/ln1")
        r = b.op("Add", [x, attend(h)], f"{p}/residual1")
        h2 = _layer_norm(b, layer.feedforward_norm, r, f"{p}/ln2")
        return b.op("Add", [r, feedforward(h2)], f"{p}/residual2")
    s1 = b.op("Add", [x, attend(x)], f"{p}/residual1")
    r = _layer_norm(b, layer.attention_norm, s1, f"{p}/ln1")
    s2 = b.op("Add", [r, feedforward(r)], f"{p}/residual2")
    return _layer_norm(b, layer.feedforward_norm, s2, f"{p}/ln2")


EMITTERS: list[tuple[type, Any]] = [
    (SimpleRNN, _recurrent), (LSTM, _recurrent), (GRU, _recurrent),
    (RNN, _rnn), (Bidirectional, _bidirectional), (OutputOf, _output_of), (MultiHeadAttention, _mha),
    (TransformerBlock, _transformer),
]
