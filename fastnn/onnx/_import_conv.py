"""The importer's depthwise and transposed convolutions.

``Conv`` with ``group`` equal to its input channels is ``DepthwiseConv1D/2D`` (ONNX's weight
(c*dm, 1, *k), output channel ci*dm + m, is Keras' (*k, c, dm)); when its one reader is a 1x1
``Conv`` (no stride, no padding) and it has no bias, the pair is one ``SeparableConv1D/2D``
(fastnn's own export of a separable layer, and PyTorch's MobileNet-style blocks). Any other
group count dividing the channels is ``Conv1D/2D/3D`` with ``groups`` (ResNeXt's and
channel-shuffle networks' convolutions).

``ConvTranspose`` is ``Conv1DTranspose/Conv2DTranspose/Conv3DTranspose``: ONNX's output of one axis is the
full transposed convolution, (n - 1) * s + (k - 1) * d + 1 positions, less ``pads`` before and
after, plus ``output_padding`` after. The layer's "valid"/"same" geometry (with or without
``output_padding``) is used when it gives the same window; otherwise a "valid" layer (its
``output_padding`` extending the end) and a ``Cropping1D/2D/3D`` of the pads before and of what
is left over after (PyTorch's ``padding=1, output_padding=1``, which Keras' "same" places one
position earlier). A window that would need an ``output_padding`` not below the stride, or an
``output_shape``, ``auto_pad`` or ``group``, is refused.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Optional

import numpy as np

import fastnn as fnn
from fastnn.layers.convolutional import transposed_length
from fastnn.onnx._checked_file import MAX_ELEMENTS
from fastnn.onnx._import_ops import Ctx, T, _channels_first


def _node_attr(ctx: Ctx, node: Any, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            return ctx.onnx.helper.get_attribute_value(a)
    return default


def _pointwise_reader(ctx: Ctx, node: Any, channels: int) -> Optional[tuple[Any, Any, Any]]:
    """The 1x1 Conv that is the only reader of ``node``'s output, with its weight (filters,
    channels) and bias (or None), when it is a separable layer's pointwise half."""
    users = ctx.consumers.get(node.output[0], [])
    if len(users) != 1 or users[0] is None:
        return None
    user = users[0]
    if user.op_type != "Conv" or user.domain not in ("", "ai.onnx") or \
            list(user.input[:1]) != [node.output[0]]:
        return None
    w = ctx.values.get(user.input[1]) if len(user.input) > 1 else None
    b = ctx.values.get(user.input[2]) if len(user.input) > 2 and user.input[2] else None
    if not isinstance(w, np.ndarray) or w.ndim < 3 or w.shape[1] != channels or \
            any(v != 1 for v in w.shape[2:]) or (b is not None and (
                not isinstance(b, np.ndarray) or b.shape != (w.shape[0],))):
        return None
    r = w.ndim - 2
    if (_node_attr(ctx, user, "group", 1) != 1
            or any(_node_attr(ctx, user, "pads", [0] * 2 * r))
            or any(v != 1 for v in _node_attr(ctx, user, "strides", [1] * r))
            or _node_attr(ctx, user, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
        return None
    return user, w.reshape(w.shape[:2]), b


def depthwise(ctx: Ctx, node: Any, ins: list[Any], x: T, w: np.ndarray, group: int,
              k: list[int], strides: list[int], padding: str, d: list[int]) -> list[Any]:
    """A grouped Conv (``w``: its weight with the unit axes of a 1 x k view dropped)."""
    c = x.sym.shape[-1]
    if not isinstance(group, int) or group < 1 or c % group or w.shape[0] % group or \
            w.shape[1] * group != c:
        ctx.fail(f"a grouped Conv needs group dividing the input channels ({c}) and the "
                 f"output channels, and a weight (outputs, channels / group, *kernel); "
                 f"received group={group}, weight shape {list(w.shape)}")
    if w.shape[1] != 1:
        return _grouped(ctx, ins, x, w, group, k, strides, padding, d)
    r, dm = len(k), w.shape[0] // c
    if r not in (1, 2):
        ctx.fail("3-D depthwise convolutions are not supported")
    kernel = np.transpose(w.reshape(c, dm, *k), (*range(2, r + 2), 0, 1))     # (*k, c, dm)
    bias = ctx.const(ins[2], "bias") if len(ins) > 2 and ins[2] is not None else None
    point = _pointwise_reader(ctx, node, c * dm) if bias is None else None
    geometry = dict(strides=strides, padding=padding, depth_multiplier=dm, dilation_rate=d)
    if point is None:
        weights = {"depthwise_kernel": kernel}
        if bias is not None:
            weights["bias"] = bias
        cls = fnn.DepthwiseConv2D if r == 2 else fnn.DepthwiseConv1D
        layer = cls(k, use_bias=bias is not None, **geometry)
        return [T(ctx.call(layer, x.sym, weights), x.layout)]
    user, pw, pb = point
    weights = {"depthwise_kernel": kernel,
               "pointwise_kernel": pw.T.reshape(*(1,) * r, c * dm, pw.shape[0])}
    if pb is not None:
        weights["bias"] = pb
    sep = fnn.SeparableConv2D if r == 2 else fnn.SeparableConv1D
    out = T(ctx.call(sep(pw.shape[0], k, use_bias=pb is not None, **geometry), x.sym, weights),
            x.layout)
    ctx.skip.add(id(user))                 # the pointwise Conv: this layer's second half
    ctx.values[user.output[0]] = out
    return [out]


def _grouped(ctx: Ctx, ins: list[Any], x: T, w: np.ndarray, group: int, k: list[int],
             strides: list[int], padding: str, d: list[int]) -> list[Any]:
    """A grouped Conv of several channels a group: Conv1D/2D/3D with ``groups`` (ONNX's weight
    (filters, c / group, *k) is Keras' (*k, c / group, filters) transposed)."""
    r = len(k)
    cls = {1: fnn.Conv1D, 2: fnn.Conv2D, 3: fnn.Conv3D}.get(r) or ctx.fail(
        f"grouped {r}-D convolutions are not supported")
    weights = {"kernel": np.transpose(w, (*range(2, r + 2), 1, 0))}
    if len(ins) > 2 and ins[2] is not None:
        weights["bias"] = ctx.const(ins[2], "bias")
    layer = cls(w.shape[0], k, strides=strides, padding=padding, dilation_rate=d,
                use_bias="bias" in weights, groups=group)
    return [T(ctx.call(layer, x.sym, weights), x.layout)]


def _geometry(ctx: Ctx, spatial: Any, k: list[int], s: list[int], d: list[int],
              before: list[int], out: list[int]) -> tuple[str, Any]:
    """The layer's (padding, output_padding) whose window is ONNX's, or ("crop", extra)."""
    steps = [range(v) for v in s]
    tries: list[Any] = [None]
    if int(np.prod(s)) <= 4096:
        tries += list(itertools.product(*steps))
    for padding in ("valid", "same"):
        for extra in tries:
            got = [transposed_length(n, kk, ss, dd, padding, None if extra is None else e)
                   for n, kk, ss, dd, e in zip(spatial, k, s, d, extra or (None,) * len(k))]
            if [g[0] for g in got] == out and [g[1] for g in got] == before:
                return padding, extra
    full = [(n - 1) * ss + (kk - 1) * dd + 1 for n, kk, ss, dd in zip(spatial, k, s, d)]
    extra = [max(b + o - f, 0) for b, o, f in zip(before, out, full)]
    if any(e >= ss for e, ss in zip(extra, s)):
        ctx.fail(f"its output (pads before {before}, {out} positions) reaches past the "
                 f"transposed convolution's {full} positions by an output_padding not below "
                 f"the strides {s}")
    return "crop", tuple(extra)


def conv_transpose(ctx: Ctx, node: Any, ins: list[Any]) -> list[Any]:
    x = ctx.tensor(ins[0])
    w: Any = ctx.const(ins[1], "weight")
    r = _channels_first(ctx, x)
    if r not in (1, 2, 3):
        ctx.fail(f"{r}-D transposed convolutions are not supported")
    if ctx.attr("group", 1) != 1:
        ctx.fail(f"grouped transposed convolutions are not supported; received "
                 f"group={ctx.attr('group')}")
    if ctx.attr("output_shape") is not None:
        ctx.fail("output_shape is not supported (pads and output_padding are)")
    if ctx.attr("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        ctx.fail("auto_pad is not supported (explicit pads are)")
    spatial = list(x.sym.shape[:-1])
    k = list(w.shape[2:])
    s = list(ctx.attr("strides", [1] * r))
    d = list(ctx.attr("dilations", [1] * r))
    pads = list(ctx.attr("pads", [0] * 2 * r))
    extra = list(ctx.attr("output_padding", [0] * r))
    if w.ndim != r + 2 or w.shape[0] != x.sym.shape[-1] or len(s) != r or len(d) != r or \
            len(pads) != 2 * r or len(extra) != r or min(pads + extra) < 0 or \
            min(s + d) < 1:
        ctx.fail(f"weight shape {list(w.shape)}, strides {s}, dilations {d}, pads {pads} and "
                 f"output_padding {extra} do not describe a transposed convolution of "
                 f"{x.sym.shape[-1]} channels over {r} axes")
    out = [(n - 1) * ss + (kk - 1) * dd + 1 - pb - pa + e for n, kk, ss, dd, pb, pa, e in
           zip(spatial, k, s, d, pads[:r], pads[r:], extra)]
    if min(out) < 1:
        ctx.fail(f"its pads {pads} leave no output")
    if math.prod(out) * w.shape[1] > MAX_ELEMENTS:      # a forged stride: refused before any
        ctx.fail(f"its output of {out} positions and {w.shape[1]} channels a sample holds "
                 f"more than {MAX_ELEMENTS} values")
    padding, output_padding = _geometry(ctx, spatial, k, s, d, pads[:r], out)
    weights = {"kernel": np.transpose(w, (*range(2, r + 2), 1, 0))}   # (*k, filters, c)
    if len(ins) > 2 and ins[2] is not None:
        weights["bias"] = ctx.const(ins[2], "bias")
    cls = {1: fnn.Conv1DTranspose, 2: fnn.Conv2DTranspose, 3: fnn.Conv3DTranspose}[r]
    layer = cls(w.shape[1], k, strides=s, padding="valid" if padding == "crop" else padding,
                output_padding=output_padding, dilation_rate=d, use_bias="bias" in weights)
    y = ctx.call(layer, x.sym, weights)
    if padding == "crop":
        grown = y.shape[:-1]
        crops = [(b, g - b - o) for b, g, o in zip(pads[:r], grown, out)]
        crop = {1: lambda: fnn.Cropping1D(crops[0]), 2: lambda: fnn.Cropping2D(crops),
                3: lambda: fnn.Cropping3D(crops)}[r]
        y = ctx.call(crop(), y)
    return [T(y, x.layout)]


__all__ = ["conv_transpose", "depthwise"]
