"""The importer's recurrent ops: ONNX RNN, LSTM and GRU (one direction) as fastnn's
SimpleRNN, LSTM and GRU, gates reordered to Keras' (ONNX LSTM i, o, f, c -> i, f, c, o).

What the layer returns is read from the graph: the sequence Y when something reads it
(``return_sequences``), the last state Y_h otherwise; PyTorch's ``y[:, -1]`` and tf2onnx's
``y[-1:]`` (Squeeze, Transpose, Gather or Slice of the last step; the first for a reverse
direction) are recognised as the last state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

import fastnn as fnn
from fastnn.onnx._checked_file import check_tensor

if TYPE_CHECKING:
    from fastnn.onnx._import_ops import Ctx

#: Keras' gate block j is ONNX's block ``_KERAS[op][j]``
_KERAS = {"LSTM": [0, 2, 3, 1], "GRU": [0, 1, 2], "RNN": [0]}
_DEFAULT = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
_NAMES = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu"}
_LAYERS = {"LSTM": fnn.LSTM, "GRU": fnn.GRU, "RNN": fnn.SimpleRNN}


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _const_of(ctx: Ctx, name: str) -> Optional[np.ndarray]:
    v = ctx.values.get(name)
    if isinstance(v, np.ndarray):
        return v
    for node in ctx.graph.node:
        if node.op_type == "Constant" and name in node.output:
            for a in node.attribute:
                if a.name == "value":
                    return check_tensor(ctx.onnx, a.t, ctx.base)
    return None


def _pick(ctx: Ctx, node: Any, steps: int, dirs: int = 1, labels: Optional[list[Any]] = None
          ) -> Optional[tuple[str, list[Any], int, int]]:
    """Follow the Squeeze/Transpose/Slice/Gather chain that starts at ``node`` (a reader of Y,
    (steps, directions, batch, units), or of what ``labels`` names) to one time step of one
    direction, (batch, units): its output name, its nodes, the direction and the step; None
    when Y is read otherwise."""
    labels = list(labels or ["t", "d", "b", "h"])
    name, chain, picked = "", [], {"t": -1, "d": 0}
    while True:
        chain.append(node)
        attrs = {a.name: ctx.onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Squeeze":
            axes = _const_of(ctx, node.input[1]) if len(node.input) > 1 else attrs.get("axes")
            if axes is None:
                return None
            axes = [int(a) % len(labels) for a in np.asarray(axes).reshape(-1)]
            if any(labels[a] is not None and labels[a] != "d" for a in axes):
                return None
            labels = [v for i, v in enumerate(labels) if i not in axes]
        elif node.op_type == "Transpose":
            labels = [labels[p] for p in attrs["perm"]]
        elif node.op_type in ("Gather", "Slice"):
            args: list[Any] = [_const_of(ctx, n) for n in node.input[1:]]
            if any(a is None for a in args):
                return None
            if node.op_type == "Gather":
                axis, k, stop = attrs.get("axis", 0) % len(labels), args[0], None
                if k.ndim != 0:
                    return None
            else:
                starts, ends, axes, *step = [a.reshape(-1) for a in args] + [np.ones(1)]
                if len(node.input) < 4 or starts.size != 1 or ends.size != 1 or step[0][0] != 1:
                    return None
                axis, k, stop = int(axes[0]) % len(labels), starts[0], int(ends[0])
            size = steps if labels[axis] == "t" else dirs if labels[axis] == "d" else 0
            k = int(k) + size if int(k) < 0 else int(k)
            if stop is not None:                  # the slice must hold exactly step k
                stop = min(stop + size if stop < 0 else stop, size)
            if labels[axis] not in ("t", "d") or not 0 <= k < size or stop not in (None, k + 1):
                return None
            picked[labels[axis]] = k
            if node.op_type == "Gather":
                labels.pop(axis)
            else:
                labels[axis] = None
        else:
            return None
        name = node.output[0]
        if labels == ["b", "h"] and picked["t"] >= 0:
            return name, chain, picked["d"], picked["t"]
        users = ctx.consumers.get(name, [])
        if len(users) != 1 or users[0] is None:
            return None
        node = users[0]


def _last_step(ctx: Ctx, y: str, steps: int, reverse: bool, labels: Optional[list[Any]] = None
               ) -> Optional[tuple[str, list[Any]]]:
    """The output name and nodes of the chain reading the final state from Y (the last step
    forward, the first in reverse); None when Y is read otherwise."""
    users = ctx.consumers.get(y, [])
    if len(users) != 1 or users[0] is None:
        return None
    found = _pick(ctx, users[0], steps, 1, labels)
    if found is None or found[2] != 0 or found[3] != (0 if reverse else steps - 1):
        return None
    return found[0], found[1]


def recurrent(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    op = node.op_type
    from fastnn.onnx._import_ops import T, Zero
    x = ctx.tensor(ins[0])
    if x.layout != (1, 0, 2):
        ctx.fail("its input must be the time-major view of (batch, steps, features), a "
                 "Transpose(perm=[1, 0, 2])")
    w, r = ctx.const(ins[1], "W"), ctx.const(ins[2], "R")
    b = ctx.const(ins[3], "B") if len(ins) > 3 and ins[3] is not None else None
    if len(ins) > 4 and ins[4] is not None:
        ctx.fail("sequence_lens is not supported")
    states = [s for s in ins[5:7] if s is not None]
    if all(isinstance(s, T) and s.layout == (None, 0, 1) for s in states) and states:
        initial = [s.sym for s in states]        # (1, n, H) views of (n, H) tensors
    elif all(isinstance(s, Zero) for s in states):
        initial = []
    else:
        ctx.fail("initial states must be zeros or (1, batch, units) views of tensors")
    if initial and len(initial) != (2 if op == "LSTM" else 1):
        ctx.fail("an LSTM needs both initial states or neither")
    direction = _text(ctx.attr("direction", "forward"))
    if direction not in ("forward", "reverse", "bidirectional"):
        ctx.fail(f"direction {direction!r} is not supported")
    dirs = 2 if direction == "bidirectional" else 1
    if ctx.attr("clip") is not None or ctx.attr("input_forget", 0) or ctx.attr("layout", 0):
        ctx.fail("clip, input_forget and layout=1 are not supported")
    # linear_before_reset=1 is Keras' reset_after=True, 0 (the default) reset_after=False
    before_reset = ctx.attr("linear_before_reset", 0) if op == "GRU" else 1
    if before_reset not in (0, 1):
        ctx.fail(f"linear_before_reset={before_reset!r} is not supported (0 or 1)")
    acts = [_text(a) for a in (ctx.attr("activations") or _DEFAULT[op] * dirs)]
    n_act = len(_DEFAULT[op])
    if any(a not in _NAMES for a in acts) or (op == "LSTM" and acts[1] != acts[2]) \
            or acts != acts[:n_act] * dirs:
        ctx.fail(f"activations {acts} are not supported")
    units = int(ctx.attr("hidden_size"))
    order = _KERAS[op]
    gh = units * len(order)
    if w.shape[:2] != (dirs, gh) or r.shape != (dirs, gh, units):
        ctx.fail("W and R must be (directions, gates * hidden_size, ...)")

    def keras(a: np.ndarray) -> np.ndarray:          # ONNX rows -> Keras columns
        return np.concatenate([a[g * units:(g + 1) * units] for g in order], axis=0).T

    per_dir = []
    for k in range(dirs):
        weights = {"kernel": keras(w[k]), "recurrent_kernel": keras(r[k])}
        if b is not None:
            wb, rb = keras(b[k][:gh, None])[0], keras(b[k][gh:, None])[0]
            # reset_after=False adds the recurrent biases outside the reset, as the input's
            weights["bias"] = np.stack([wb, rb]) if op == "GRU" and before_reset else wb + rb
        per_dir.append(weights)
    weights = per_dir[0]
    extra = {"reset_after": bool(before_reset)} if op == "GRU" else {}
    if dirs == 2:
        return _bidirectional(ctx, node, x, op, units, acts, per_dir, initial, extra)
    steps = x.sym.shape[0]
    outs = list(node.output) + [""] * (3 - len(node.output))
    chain = _last_step(ctx, outs[0], steps, direction == "reverse") if outs[0] else None
    used = [bool(n) and bool(ctx.consumers.get(n)) for n in outs]
    seq = used[0] and chain is None
    if seq and direction == "reverse":
        ctx.fail("the sequence output of a reverse-direction layer is not supported")
    h_used = used[1] or chain is not None
    state = (seq and (h_used or used[2])) or (not seq and used[2])
    kwargs: dict[str, Any] = {"activation": _NAMES[acts[-1] if op != "LSTM" else acts[1]],
                              "use_bias": b is not None, "return_sequences": seq,
                              "return_state": state, "go_backwards": direction == "reverse"}
    if op != "RNN":
        kwargs["recurrent_activation"] = _NAMES[acts[0]]
    layer = _LAYERS[op](units, **kwargs, **extra)
    out = layer(x.sym, initial_state=initial) if initial else layer(x.sym)
    ctx.weights[layer] = {k: np.asarray(v, ctx.dtype) for k, v in weights.items()}
    parts = out if state else [out]
    if not seq:
        parts = [None, *parts[:1], *parts[2:]] if state else [None, parts[0]]
    values: list[Any] = [T(parts[0], (1, None, 0, 2)) if seq else None,
                         T(parts[1], (None, 0, 1)) if len(parts) > 1 and parts[1] is not None
                         else None,
                         T(parts[2], (None, 0, 1)) if len(parts) > 2 else None]
    if chain is not None:
        ctx.values[chain[0]] = T(parts[1], (0, 1))
        ctx.skip.update(id(n) for n in chain[1])
    return values[:len(node.output)]


def _bidirectional(ctx: Ctx, node: Any, x: Any, op: str, units: int, acts: list[str],
                   per_dir: list[dict[str, np.ndarray]], initial: list[Any],
                   extra: dict[str, Any]) -> list[Any]:
    """direction="bidirectional": fastnn's Bidirectional(merge_mode=None); the merge is read
    from what follows (a Reshape joining the directions: concat; a ReduceSum: sum; a Split)."""
    from fastnn.onnx._import_ops import T
    outs = list(node.output) + [""] * (3 - len(node.output))
    used = [bool(n) and bool(ctx.consumers.get(n)) for n in outs]
    steps = x.sym.shape[0]
    readers = ctx.consumers.get(outs[0], []) if used[0] else []
    found = [_pick(ctx, n, steps, 2) if n is not None else None for n in readers]
    picks = [p for p in found if p is not None]
    if len(found) == len(picks) == 2 and {(p[2], p[3]) for p in picks} == {
            (0, steps - 1), (1, 0)}:                               # tf2onnx's last states
        used = [False, True, used[2]]
    else:
        picks = []
    if initial or used[2] or used[0] == used[1]:
        ctx.fail("a bidirectional layer must give its sequence or its last states (not both, "
                 "not the cell state), from zero initial states")
    kwargs: dict[str, Any] = {"activation": _NAMES[acts[1] if op == "LSTM" else acts[-1]],
                              "use_bias": "bias" in per_dir[0], "return_sequences": used[0]}
    if op != "RNN":
        kwargs["recurrent_activation"] = _NAMES[acts[0]]
    layer = fnn.Bidirectional(_LAYERS[op](units, **kwargs, **extra), merge_mode=None)
    fwd, bwd = layer(x.sym)
    ctx.weights[layer] = [np.asarray(d[name], ctx.dtype) for d in per_dir
                          for name in ("kernel", "recurrent_kernel", "bias") if name in d]
    if used[0]:                                  # Y (T, 2, n, H)
        return [T(fwd, (1, "d", 0, 2), pair=bwd), None, None][:len(node.output)]
    for p in picks:            # Y[-1] forward and Y[0] backward: the final states
        ctx.values[p[0]] = T(bwd if p[2] else fwd, (0, 1))
        ctx.skip.update(id(n) for n in p[1])
    return [None, T(fwd, ("d", 0, 1), pair=bwd), None][:len(node.output)]


def merge_directions(ctx: Ctx, node: Any, ins: list[Any], target: Any = None) -> list[Any]:
    """A Reshape joining the direction axis with the units after it (concat), or a
    ReduceSum over it (sum)."""
    from fastnn.onnx._import_ops import T
    x = ins[0]
    labels = list(x.layout)
    i = labels.index("d")
    last = len(x.sym.shape)                     # the fastnn axis of the units
    rest = [v for v in labels if v != "d"]
    if target is not None:
        if i + 1 >= len(labels) or labels[i + 1] != last:
            ctx.fail("the directions must be joined with the units that follow them")
        full = (1, *x.sym.shape)
        dims = [None if v == 0 else 1 if v is None else 2 if v == "d" else full[v]
                for v in labels]
        want = dims[:i] + [2 * full[last]] + dims[i + 2:]
        ok = len(target) == len(want) and target.count(-1) <= 1 and all(
            t == -1 or (t == 0 and j < len(dims) and dims[j] == want[j]) or t == want[j]
            for j, t in enumerate(target))
        if not ok:
            ctx.fail(f"shape {target} does not join the two directions")
        out = ctx.call(fnn.Concatenate(), [x.sym, x.pair])
        return [T(out, rest)]
    axes = ctx.attr("axes") if len(ins) < 2 or ins[1] is None else ctx.const(ins[1], "axes")
    if node.op_type != "ReduceSum" or axes is None or \
            [int(a) % len(labels) for a in np.asarray(axes).reshape(-1)] != [i]:
        ctx.fail("only a sum over the two directions is supported")
    out = ctx.call(fnn.Add(), [x.sym, x.pair])
    keep = bool(ctx.attr("keepdims", 1))
    return [T(out, labels[:i] + [None] + labels[i + 1:] if keep else rest)]


def split_directions(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    from fastnn.onnx._import_ops import T
    x = ins[0]
    labels = list(x.layout)
    i = labels.index("d")
    sizes = ins[1] if len(ins) > 1 and ins[1] is not None else ctx.attr("split")
    if ctx.attr("axis", 0) % len(labels) != i or len(node.output) != 2 or (
            sizes is not None and list(np.asarray(sizes).reshape(-1)) != [1, 1]):
        ctx.fail("only a split of the two directions is supported")
    layout = labels[:i] + [None] + labels[i + 1:]
    return [T(x.sym, layout), T(x.pair, layout)]


SEQ_OPS = {"LSTM": recurrent, "GRU": recurrent, "RNN": recurrent}
