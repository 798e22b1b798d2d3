"""The importer's op table: one function per ONNX op, from its input values to its outputs.

Values: NumPy arrays (constants), ``T`` (a fastnn tensor seen through a layout), ``ShapeOf``
(a shape vector whose batch entry is unknown), ``Zero`` (a batch-sized tensor of zeros: the
initial states PyTorch builds), ``Ids`` (a tensor cast to integers: Embedding indices) and
``AtLeast`` (a GreaterOrEqual awaiting its Cast: a step activation).
"""

from __future__ import annotations

from typing import Any, Callable, NoReturn, Optional

import numpy as np

import fastnn as fnn
from fastnn import activations as A
from fastnn.layers.convolutional import window_geometry


class T:
    """A fastnn symbolic tensor ``sym`` as an ONNX tensor: ONNX axis i is fastnn axis
    ``layout[i]`` (None: a unit axis); ``flat_perm[i]``: the fastnn position of flat ONNX
    position i (after a Flatten of a channels-first view)."""

    def __init__(self, sym: Any, layout: Any, flat_perm: Any = None, pair: Any = None) -> None:
        self.sym, self.layout, self.flat_perm = sym, tuple(layout), flat_perm
        self.pair = pair        # a bidirectional layer's backward half; "d": the direction axis

    def with_layout(self, layout: Any) -> "T":
        return T(self.sym, layout, self.flat_perm, self.pair)

    @property
    def identity(self) -> bool:
        return self.layout == tuple(range(len(self.layout))) and self.flat_perm is None


def in_fastnn_layout(ctx: Any, x: T) -> T:
    """``x`` as a tensor in fastnn's layout: a permutation of its sample axes (a ``Transpose``
    that no later op absorbed, e.g. fastnn's own ``Permute`` exported) becomes a ``Permute``
    layer (ONNX axis i is fastnn axis layout[i], so ``dims`` is the layout past the batch);
    anything else (unit axes, a flattened view, a moved batch axis) is returned unchanged."""
    layout = x.layout
    if (x.identity or x.flat_perm is not None or len(layout) < 3 or layout[0] != 0
            or sorted(a for a in layout if a is not None) != list(range(len(layout)))):
        return x
    return T(ctx.call(fnn.Permute(tuple(layout[1:])), x.sym), range(len(layout)))


class ShapeOf(list):  # type: ignore[type-arg]
    """A shape vector; None marks the batch size."""


class Zero:
    """Zeros of a batch-dependent shape."""


class Ids:
    """A tensor cast to integers; ``wrap``: the table size Keras adds to negative ids."""

    def __init__(self, t: T, wrap: Optional[int] = None) -> None:
        self.t, self.wrap = t, wrap


class Rows:
    """A channels-last tensor ``t`` seen as (-1, channels) for a MatMul (tf2onnx's Tensordot:
    a Dense over a sequence), until a Reshape gives back its leading axes."""

    def __init__(self, t: T) -> None:
        self.t = t


class AtLeast:
    def __init__(self, t: T, threshold: float) -> None:
        self.t, self.threshold = t, threshold


class Ctx:
    """The import's state: values by ONNX name, pending weights, consumer counts."""

    def __init__(self, base: str) -> None:
        import onnx
        import onnx.numpy_helper  # noqa: F401
        self.onnx, self.base = onnx, base
        self.values: dict[str, Any] = {}
        self.weights: dict[Any, Any] = {}      # layer: {spec name: array} or a list
        #: a Dense layer: {spec name: the ONNX name its weight was read from}; layers read from
        #: the same initializers (a shared layer's calls, as exporters write them) are one
        self.sources: dict[Any, dict[str, str]] = {}
        self.consumers: dict[str, list[Any]] = {}
        self.skip: set[Any] = set()
        self.affine: set[Any] = set()          # BatchNormalization layers made of Sub/Mul/Add
        self.layer_norms: set[Any] = set()     # LayerNormalization layers matched whole
        self.patterns: dict[int, Callable[[Ctx, Any], list[Any]]] = {}   # last node: builder
        self.dtype = np.dtype(np.float32)
        self.node: Any = None
        self.graph: Any = None

    def count_consumers(self, graph: Any) -> None:
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        for out in graph.output:
            self.consumers.setdefault(out.name, []).append(None)

    def get(self, name: str) -> Any:
        if name not in self.values:
            self.fail(f"input {name!r} is not produced by any earlier node")
        return self.values[name]

    def fail(self, why: str) -> NoReturn:
        n = self.node
        raise ValueError(f"node {n.name!r} ({n.op_type}) is not supported by fastnn.onnx.load: "
                         f"{why}")

    def attr(self, name: str, default: Any = None) -> Any:
        for a in self.node.attribute:
            if a.name == name:
                return self.onnx.helper.get_attribute_value(a)
        return default

    def single_use(self, name: str) -> bool:
        return len(self.consumers.get(name, [])) == 1 and None not in self.consumers[name]

    def only_reader(self, sym: Any) -> bool:
        """Whether each ONNX name holding ``sym`` (through no-op casts, transposes, ...) has
        one reader and is no graph output: the node at hand is the value's only use."""
        return all(self.single_use(n) for n, v in self.values.items()
                   if isinstance(v, T) and (v.sym is sym or v.pair is sym))

    def call(self, layer: Any, x: Any, weights: Optional[dict[str, np.ndarray]] = None) -> Any:
        out = layer(x)
        if weights is not None:
            self.weights[layer] = {k: np.asarray(v, self.dtype) for k, v in weights.items()}
        return out

    def tensor(self, v: Any, what: str = "input") -> T:
        if not isinstance(v, T):
            self.fail(f"its {what} must be a tensor computed from the model's input")
        return v

    def const(self, v: Any, what: str) -> np.ndarray:
        if not isinstance(v, np.ndarray):
            self.fail(f"its {what} must be a constant")
        return v


def _channels_first(ctx: Ctx, t: T, units: bool = False) -> int:
    """The spatial rank of ``t`` when its layout is a channels-first view of fastnn's tensor
    (with ``units``, unit axes may sit among the spatial ones: tf2onnx's Conv1D as a 1 x k
    Conv)."""
    spatial = [a for a in t.layout[2:] if a is not None] if units else list(t.layout[2:])
    r = len(spatial)
    if r < 1 or t.flat_perm is not None or t.layout[:2] != (0, r + 1) or \
            spatial != list(range(1, r + 1)):
        ctx.fail("its input must be channels-first (N, C, ...) over a channels-last tensor")
    return r


def _padding(ctx: Ctx, spatial: Any, k: Any, s: Any, d: Any, pads: Any = None) -> str:
    pads = list(ctx.attr("pads", [0] * (2 * len(k))) if pads is None else pads)
    if ctx.attr("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        ctx.fail("auto_pad is not supported (explicit pads are)")
    if not any(pads):
        return "valid"
    sizes, before = window_geometry(spatial, k, s, d, "same")
    after = [max(0, (o - 1) * st + (kk - 1) * dd + 1 - n - b) for o, st, kk, dd, n, b in
             zip(sizes, s, k, d, spatial, before)]
    if pads == [*before, *after]:
        return "same"
    ctx.fail(f"pads {pads} are neither 'valid' nor 'same'")


def _window(ctx: Ctx, x: T, key: str) -> tuple[int, tuple[int, ...], list[int], list[int]]:
    r = _channels_first(ctx, x)
    spatial = tuple(x.sym.shape[:-1])
    k = list(ctx.attr(key))
    return r, spatial, k, list(ctx.attr("strides", [1] * r))


def conv(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    from fastnn.onnx._import_fold import Padded
    padded = ins[0] if isinstance(ins[0], Padded) else None
    x = padded.t if padded is not None else ctx.tensor(ins[0])
    w: Any = ctx.const(ins[1], "weight")
    _channels_first(ctx, x, units=True)
    n = len(x.layout) - 2
    real = [i for i in range(n) if x.layout[2 + i] is not None]     # the non-unit axes
    r = len(real)
    spatial = tuple(x.sym.shape[:-1])
    strides = list(ctx.attr("strides", [1] * n))
    k = list(w.shape[2:])
    d = list(ctx.attr("dilations", [1] * n))
    pads = list(ctx.attr("pads", [0] * (2 * n)))
    if padded is not None:
        if any(pads):
            ctx.fail("a Conv after a Pad must not pad again")
        pads = padded.pads[2:n + 2] + padded.pads[n + 4:]
    if len(k) != n or len(strides) != n or len(d) != n or len(pads) != 2 * n or any(
            k[i] != 1 or pads[i] or pads[n + i] for i in range(n) if i not in real):
        ctx.fail("a unit axis must have a kernel of 1 and no padding")
    w = w.reshape(w.shape[:2] + tuple(k[i] for i in real))
    k, strides, d = [k[i] for i in real], [strides[i] for i in real], [d[i] for i in real]
    padding = _padding(ctx, spatial, k, strides, d, [pads[i] for i in real] +
                       [pads[n + i] for i in real])
    if ctx.attr("group", 1) != 1:                  # depthwise (or separable with its 1x1)
        from fastnn.onnx._import_conv import depthwise
        return depthwise(ctx, node, ins, x, w, ctx.attr("group"), k, strides, padding, d)
    cls = {1: fnn.Conv1D, 2: fnn.Conv2D, 3: fnn.Conv3D}.get(r) or ctx.fail(
        f"{r}-D convolutions are not supported")
    weights = {"kernel": np.transpose(w, (*range(2, r + 2), 1, 0))}
    if len(ins) > 2 and ins[2] is not None:
        weights["bias"] = ctx.const(ins[2], "bias")
    layer = cls(w.shape[0], k, strides=strides, padding=padding, dilation_rate=d,
                use_bias="bias" in weights)
    return [T(ctx.call(layer, x.sym, weights), x.layout)]


def dense(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    if isinstance(ins[0], Rows) and node.op_type == "MatMul" and len(ins) == 2:
        out = dense(ctx, node, [ins[0].t, ins[1]])[0]    # fastnn's Dense maps the last axis
        return [Rows(out)]
    x = ctx.tensor(ins[0])
    w = ctx.const(ins[1], "weight")
    if node.op_type == "Gemm":
        if ctx.attr("transA", 0) or ctx.attr("alpha", 1.0) != 1.0 or ctx.attr("beta", 1.0) != 1.0:
            ctx.fail("only transA=0, alpha=1, beta=1 are supported")
        if ctx.attr("transB", 0):
            w = w.T
    if w.ndim != 2:
        ctx.fail("the weight must be a matrix")
    if x.flat_perm is not None:
        kernel = np.empty_like(w)
        kernel[x.flat_perm] = w
        w = kernel
    elif x.layout == (1, 0, 2):
        ctx.fail("its input is time-major: a recurrent layer unrolled into per-step ops is "
                 "read only as Keras 3's exact SimpleRNN, LSTM or GRU, and this one differs; "
                 "ONNX's RNN, LSTM and GRU ops are supported")
    else:
        x = in_fastnn_layout(ctx, x)
        if not x.identity:
            ctx.fail("its input must be in fastnn's layout")
    weights = {"kernel": w}
    if len(ins) > 2 and ins[2] is not None:
        weights["bias"] = np.broadcast_to(ctx.const(ins[2], "bias"), (w.shape[1],))
    layer = fnn.Dense(w.shape[1], use_bias="bias" in weights)
    ctx.sources[layer] = {name: source for name, source in zip(("kernel", "bias"),
                                                                 node.input[1:3])}
    return [T(ctx.call(layer, x.sym, weights), range(len(x.layout)))]


def add(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    from fastnn.onnx import _import_fold as F
    if any(isinstance(v, (Ids, tuple)) for v in ins):
        return F.ids_wrap(ctx, node, ins)
    tensors = [v for v in ins if isinstance(v, T)]
    if len(tensors) == 1 and len(ins) == 2:
        x, b = tensors[0], next(v for v in ins if not isinstance(v, T))
        layer = x.sym.layer
        bias = F.channel_vector(x, b)
        if (isinstance(layer, _FUSING) and not layer.use_bias and layer.act == 0
                and bias is not None and ctx.only_reader(x.sym)
                and (x.identity or not isinstance(layer, fnn.Dense))):
            layer.use_bias = True                  # MatMul (or Conv) + Add: one layer (not
                                                   # after an activation the layer took in)
            ctx.weights[layer]["bias"] = np.asarray(bias, ctx.dtype)
            if layer in ctx.sources:
                ctx.sources[layer]["bias"] = next(n for n, v in zip(node.input, ins) if v is b)
            return [x]
        if bias is not None and (x.sym.layer in ctx.affine or not (
                x.identity and len(x.sym.shape) == 2 and b.shape[-2:] == tuple(x.sym.shape))):
            return F.affine(ctx, node, ins)
        if (x.identity and isinstance(b, np.ndarray) and len(x.sym.shape) == 2
                and b.shape[-2:] == tuple(x.sym.shape) and b.size == b[..., :, :].size
                and b.ndim <= 3):               # a position table: x + P[:steps]
            table = b.reshape(x.sym.shape)
            layer = fnn.PositionalEmbedding(table.shape[0])
            return [T(ctx.call(layer, x.sym, {"embeddings": table}), x.layout)]
        ctx.fail("adding a constant is supported only as a MatMul's bias or a position table")
    if len(tensors) != len(ins) or any(not t.identity for t in tensors):
        ctx.fail("its inputs must be tensors in fastnn's layout")
    return [T(ctx.call(fnn.Add(), [t.sym for t in tensors]), tensors[0].layout)]


def concat(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    if ins and all(isinstance(v, Zero) for v in ins):
        return [Zero()]                            # initial states of both directions
    if not any(isinstance(v, T) for v in ins):
        return shape_concat(ctx, node, ins)
    ts = [ctx.tensor(v) for v in ins]
    rank = len(ts[0].layout)
    last = len(ts[0].sym.shape)
    if any(t.layout != ts[0].layout or t.flat_perm is not None or len(t.sym.shape) != last
           for t in ts) or ts[0].layout[ctx.attr("axis") % rank] != last:
        ctx.fail("only a concatenation of channels-last tensors along the last axis is "
                 "supported")
    return [T(ctx.call(fnn.Concatenate(), [t.sym for t in ts]), ts[0].layout)]


def _fusing() -> tuple[Any, ...]:
    from fastnn.layers.depthwise import _Depthwise
    return (fnn.Dense, fnn.Conv1D, fnn.Conv2D, fnn.Conv2DTranspose, _Depthwise)


_FUSING: tuple[Any, ...] = _fusing()     # the layers that apply an activation themselves
_ACTS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyRelu": "leaky_relu",
         "Softmax": "softmax", "Gelu": "gelu", "Elu": "elu", "Selu": "selu",
         "Softplus": "softplus"}


def activation(ctx: Ctx, node: Any, ins: list[Any], name: Any = "", param: Any = None,
               x: Optional[T] = None) -> list[Any]:
    x = x or ctx.tensor(ins[0])
    name = name or _ACTS[node.op_type]
    if node.op_type == "LeakyRelu":
        param = float(ctx.attr("alpha", 0.01))
    if node.op_type == "Gelu" and ctx.attr("approximate", b"none") in (b"tanh", "tanh"):
        name = "gelu_tanh"
    if node.op_type == "Elu":
        param = float(ctx.attr("alpha", 1.0))
        if not param >= 0.0:
            ctx.fail(f"only Elu with alpha >= 0 is supported (fnn.ELU); received alpha={param}")
    if node.op_type == "Selu" and not (
            np.float32(ctx.attr("alpha", A.SELU_ALPHA)) == np.float32(A.SELU_ALPHA)
            and np.float32(ctx.attr("gamma", A.SELU_SCALE)) == np.float32(A.SELU_SCALE)):
        ctx.fail("only Selu with the standard alpha and gamma is supported")
    if name == "softmax":
        axis = ctx.attr("axis", -1) % len(x.layout)
        if x.layout[axis] != len(x.sym.shape) or x.flat_perm is not None:
            ctx.fail("softmax must be over the last (channels) axis")
    producer = x.sym.layer
    if (isinstance(producer, _FUSING) and producer.act == 0
            and ctx.only_reader(x.sym) and x.flat_perm is None
            and not (name == "softmax" and not isinstance(producer, fnn.Dense))):
        fused = fnn.Activation(name, param)      # an activation the layer applies itself
        producer.act, producer.param = fused.act, fused.param
        return [x]
    return [T(ctx.call(fnn.Activation(name, param), x.sym), x.layout, x.flat_perm)]


def at_least(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    threshold = ctx.const(ins[1], "threshold")
    if threshold.size != 1:
        ctx.fail("the threshold must be one number")
    return [AtLeast(ctx.tensor(ins[0]), float(threshold.reshape(-1)[0]))]


def cast(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    to, v = ctx.attr("to"), ins[0]
    own = 1 if ctx.dtype == np.float32 else 11
    if isinstance(v, AtLeast) and to in (1, 11):
        return activation(ctx, node, ins, "step", v.threshold, v.t)
    if isinstance(v, (T, Zero)) and to == own:
        return [v]                                 # to the model's own float type: no-op
    if isinstance(v, T) and to in (6, 7):
        return [Ids(v)]
    if isinstance(v, (Ids, ShapeOf)) and to in (6, 7):
        return [v]                                 # int32 <-> int64 of ids and shapes
    if isinstance(v, np.ndarray):
        return [v.astype(ctx.onnx.helper.tensor_dtype_to_np_dtype(to))]
    ctx.fail("only casts to the model's float type, of ids and shapes to integers and of "
             "step activations are supported")


from fastnn.onnx._import_shape import SHAPE_OPS, shape_concat  # noqa: E402
from fastnn.onnx._import_seq import SEQ_OPS  # noqa: E402

from fastnn.onnx import _import_fold as _F  # noqa: E402
from fastnn.onnx._import_pool import global_pool, pool, reduce  # noqa: E402
from fastnn.onnx._import_loop import loop  # noqa: E402
from fastnn.onnx._import_conv import conv_transpose  # noqa: E402

OPS: dict[str, Callable[..., list[Any]]] = {
    "Conv": conv, "ConvTranspose": conv_transpose, "MaxPool": pool, "AveragePool": pool,
    "GlobalAveragePool": global_pool,
    "GlobalMaxPool": global_pool, "ReduceMean": reduce, "ReduceMax": reduce, "ReduceSum": reduce,
    "Gemm": dense,
    "MatMul": dense, "Add": add, "Sum": add, "Concat": concat, "GreaterOrEqual": at_least,
    "Cast": cast, **{op: activation for op in _ACTS}, **SHAPE_OPS, **SEQ_OPS,
    "Pad": _F.pad, "Slice": _F.slice_, "Expand": _F.expand, "Sub": _F.affine, "Mul": _F.affine,
    "Less": _F.ids_wrap, "Where": _F.ids_wrap, "Loop": loop,
}
__all__ = ["OPS", "Ctx", "T", "Zero", "ShapeOf", "Ids", "Rows"]
