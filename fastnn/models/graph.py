"""The general path: any model as a directed acyclic graph of layer calls.

A model's graph is a list of ``Node`` in topological order: its inputs first (no layer), then
one node per layer call, each naming the nodes it reads. The forward pass runs the nodes in
order; the backward pass runs them in reverse, each layer writing the gradient of its inputs
straight into its producer's gradient buffer when it is the first to reach it, and adding to it
otherwise (fan-out: a tensor read by several layers gets the sum of their gradients).

Internally a batch is one 2-D array (rows, input width): several inputs are packed side by
side, and N-D samples are flattened (a view), so batching, shuffling and the training loop
never depend on the shapes; the graph unpacks them into each input's shape.
"""

from __future__ import annotations

import math
import warnings

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from fastnn.layers import Layer
from fastnn.layers.base import FloatArray, Slot

if TYPE_CHECKING:
    from fastnn.models.base import BaseModel


class Node:
    """A model input (``layer`` None) or one call of ``layer`` on the nodes ``inputs``."""

    __slots__ = ("index", "layer", "inputs", "shape", "multi")

    def __init__(self, index: int, layer: Optional[Layer], inputs: list[int], shape: Any,
                 multi: bool = False) -> None:
        self.index, self.layer, self.inputs, self.shape = index, layer, inputs, shape
        self.multi = multi          # the layer takes a list of tensors


def width(shape: tuple[int, ...]) -> int:
    """Values per sample of ``shape`` (math.prod: np.prod costs ~5 us a call, and this runs
    several times per predict)."""
    return math.prod(shape)


class GraphWorkspace:
    """One slot of buffers per node, for up to ``rows`` samples (grown on demand)."""

    def __init__(self, model: BaseModel, rows: int, with_grads: bool) -> None:
        self.model, self.rows, self.with_grads = model, rows, with_grads
        self.slots = [Slot(model._be, model.dtype) for _ in model._nodes]
        self.Y: list[Any] = [None] * len(model._nodes)
        self.M: list[Any] = [None] * len(model._nodes)     # step masks (model._masked)
        self.written = [False] * len(model._nodes)
        self.packed_out: Optional[FloatArray] = None
        self.current = 0
        self.grad_view = grad_view_nodes(model._nodes, model._outputs, model._n_inputs)
        self._grad_of = {p: model._nodes[v] for v, p in self.grad_view.items()}
        self.input_grad: Optional[FloatArray] = None    # backward's dx0 as the input's gradient

    def set_rows(self, rows: int) -> None:
        self.rows = max(self.rows, rows)
        self.current = rows
        for slot in self.slots:
            slot.set_rows(rows)

    def grad(self, node: Node) -> Any:
        """dL/d(the node's output); a list, one per output, for a layer with several. For the
        input of a ``grad_view`` node, a view of that node's gradient."""
        if node.index == 0 and self.input_grad is not None:
            return self.input_grad
        view = self._grad_of.get(node.index)
        if view is not None:
            g = self.grad(view)
            return g.reshape(g.shape[0], *node.shape)
        slot = self.slots[node.index]
        if isinstance(node.shape, list):
            return [slot.rows_buffer(f"g{i}", shape) for i, shape in enumerate(node.shape)]
        return slot.rows_buffer("g", node.shape)

    def output(self, rows: int) -> FloatArray:
        """The outputs of the current pass as (rows, output width) (packed if several)."""
        outs = self.model._outputs
        if len(outs) == 1:
            y = self.Y[outs[0]]
            return y.reshape(y.shape[0], -1)
        assert self.packed_out is not None
        return self.packed_out

    def output_grad(self, rows: int) -> FloatArray:
        """Where dL/d(outputs) goes before ``backward`` (rows, output width)."""
        outs = self.model._outputs
        if len(outs) == 1:
            g = self.grad(self.model._nodes[outs[0]])
            return g.reshape(g.shape[0], -1)
        return self.slots[0].rows_buffer("packed_g", (self.model.output_dim,))


def _readers(nodes: list[Node], n_in: int) -> dict[int, int]:
    """{node: how many layer calls read its output} (a call reading it twice counts twice)."""
    readers: dict[int, int] = {}
    for node in nodes[n_in:]:
        for p in node.inputs:
            readers[p] = readers.get(p, 0) + 1
    return readers


def grad_view_nodes(nodes: list[Node], outputs: list[int], n_in: int) -> dict[int, int]:
    """{node: its input} for the Flatten and Reshape calls (exact types: their backward is a
    reshape of dy) whose input is a layer's output that nothing else reads and that is not a
    model output: that input's gradient buffer is then a view of the node's, so its gradient is
    in place once the node's is, and the backward pass skips the node instead of copying dy
    into it (Flatten before a classifier: 2048 values a sample of a Transformer's output)."""
    from fastnn.layers.core import Flatten, Reshape
    readers = _readers(nodes, n_in)
    views = {}
    for node in nodes[n_in:]:
        if type(node.layer) not in (Flatten, Reshape) or node.multi:
            continue
        p = node.inputs[0]
        if (p >= n_in and readers.get(p) == 1 and p not in outputs
                and not isinstance(nodes[p].shape, list)):
            views[node.index] = p
    return views


def relu_pool_nodes(nodes: list[Node], outputs: list[int], n_in: int) -> frozenset[int]:
    """The nodes whose slots get ``relu_fused`` (see Slot): each max pooling layer with windows
    that do not overlap whose one input is a relu Conv1D/Conv2D read by nothing else (and not a
    model output), with that convolution. Kinds by exact type: a subclass may have its own
    backward."""
    from fastnn import activations as A
    from fastnn.layers.convolutional import Conv1D, Conv2D
    from fastnn.layers.pooling import MaxPooling1D, MaxPooling2D
    readers = _readers(nodes, n_in)
    fused: set[int] = set()
    for node in nodes[n_in:]:
        pool = node.layer
        if type(pool) not in (MaxPooling1D, MaxPooling2D) or node.multi:
            continue
        if any(s < k for s, k in zip(pool.strides, pool.pool_size)):   # type: ignore[union-attr]
            continue
        p = node.inputs[0]
        conv = nodes[p].layer
        if (p >= n_in and type(conv) in (Conv1D, Conv2D) and conv.act == A.RELU  # type: ignore
                and readers.get(p) == 1 and p not in outputs):
            fused.update((node.index, p))
    return frozenset(fused)


def shares_weights(layer: Any) -> bool:
    """Whether calls of ``layer`` (built) share weights: it has some, or it is a model."""
    return bool(layer._specs) or isinstance(layer, ModelLayer)


def is_stateful(layer: Any) -> bool:
    """Whether ``layer``, a layer it runs inside itself, or a layer of a model called as a
    layer carries states from batch to batch (``stateful=True``)."""
    if isinstance(layer, ModelLayer):
        return any(is_stateful(n.layer) for n in layer.model._nodes if n.layer is not None)
    return bool(getattr(layer, "stateful", False)) or any(is_stateful(inner)
                                                          for inner in layer.sublayers)


def shared_later_calls(nodes: list[Node], n_in: int) -> frozenset[int]:
    """The calls of a shared layer (or model) but its last: the backward pass reaches each
    after that last call, and adds its weight gradients to theirs (see ``_summed_backward``).
    Layers without weights are not counted: nothing of theirs is summed."""
    last: dict[int, int] = {}
    calls: dict[int, list[int]] = {}
    for node in nodes[n_in:]:
        layer: Any = node.layer
        if shares_weights(layer):
            key = id(getattr(layer, "model", layer))
            calls.setdefault(key, []).append(node.index)
            last[key] = node.index
    return frozenset(i for key, indices in calls.items() for i in indices if i != last[key])


def weight_gradients(layer: Any) -> list[FloatArray]:
    """The arrays a call's backward pass writes weight gradients into: the layer's views, or
    a model's gradient buffers (its own and those of the models it calls)."""
    if isinstance(layer, ModelLayer):
        return [owner._grads for owner in layer.model._owners()]
    return list(layer._grads)


def _summed_backward(slot: Slot, layer: Any, run: Any, *args: Any) -> Any:
    """``run(*args)``, a later call's backward of a shared layer, with its weight gradients
    added to those the calls after it wrote: they are kept aside, the gradients zeroed (a
    layer's backward writes them, or adds to what the pass zeroed), then added back. Returns
    what ``run`` returns."""
    grads = weight_gradients(layer)
    kept = [slot.buffer(f"kept_grad{k}", g.shape) for k, g in enumerate(grads)]
    for k, g in zip(kept, grads):
        np.copyto(k, g)
        g[...] = 0
    result = run(*args)
    for k, g in zip(kept, grads):
        g += k
    return result


def grad_free_nodes(nodes: list[Node], n_in: int) -> frozenset[int]:
    """The model inputs and the nodes computed from them by layers without weights only
    (Masking, Rescaling, a Lambda, Dropout before the first Dense): no gradient needs to reach
    them unless the caller asks for dL/d(inputs), so the backward pass gives the layers that
    read them no input-gradient target (an LSTM after Masking skips its dx product) and never
    runs their own backward."""
    free = set(range(n_in))
    for node in nodes[n_in:]:
        layer = node.layer
        if (not layer._specs and not isinstance(layer, ModelLayer)        # type: ignore
                and all(p in free for p in node.inputs)):
            free.add(node.index)
    return frozenset(free)


def pooled_grad_nodes(nodes: list[Node], fused: frozenset[int], n_in: int) -> dict[int, int]:
    """{pool node: its convolution} for the relu_fused pairs whose convolution reads a model
    input: when the input's gradient is not wanted, such a convolution takes its kernel and
    bias gradients from the pooling's output gradient and argmax (``backward_from_pool``), and
    dz (zero but at each window's argmax) is never formed."""
    from fastnn.layers.pooling import MaxPooling1D, MaxPooling2D
    pairs = {}
    for i in sorted(fused):
        if type(nodes[i].layer) in (MaxPooling1D, MaxPooling2D):
            conv = nodes[i].inputs[0]
            if nodes[conv].inputs[0] < n_in:
                pairs[i] = conv
    return pairs


def mask_flags(nodes: list[Node], n_in: int) -> Optional[list[bool]]:
    """Which nodes' outputs carry a step mask (``Layer.output_masked``), or None when no node's
    does (the forward pass then never looks at masks). As Keras does, a warning names each
    layer that receives a mask it neither passes on nor uses (Flatten, a convolution): the
    layers after it see no mask."""
    flags = [False] * len(nodes)
    for node in nodes[n_in:]:
        layer: Any = node.layer
        ins = [flags[i] for i in node.inputs]
        flags[node.index] = layer.output_masked(ins if node.multi else ins[0])
        if any(ins) and not (layer.supports_masking or layer.uses_mask):
            warnings.warn(f"layer {layer.name!r} ({type(layer).__name__}) receives a step mask "
                          f"(from Embedding(mask_zero=True) or Masking) that it does not "
                          f"support: the layers after it see no mask", stacklevel=4)
    return flags if any(flags) else None


def _masked_call(node: Node, ws: GraphWorkspace, slot: Slot, inp: Any, training: bool,
                 masked: list[bool]) -> Any:
    """One layer call of a model with step masks: the input's mask(s) on the slot for the
    layer to use, the output's kept in ``ws.M``."""
    M = ws.M
    mask = [M[i] for i in node.inputs] if node.multi else M[node.inputs[0]]
    slot.mask = mask
    y = node.layer.forward(slot, inp, training)                     # type: ignore[union-attr]
    M[node.index] = (node.layer.compute_mask(slot, inp, mask)       # type: ignore[union-attr]
                     if masked[node.index] else None)
    return y


def forward(model: BaseModel, x: FloatArray, ws: GraphWorkspace, rows: int,
            out: Optional[FloatArray] = None, training: bool = False) -> FloatArray:
    """Run the graph on the packed batch ``x`` (rows, input width); returns the packed
    outputs (a view into ``ws``, or ``out`` when given)."""
    ws.set_rows(rows)
    nodes = model._nodes
    offset = 0
    for k in range(model._n_inputs):
        node = nodes[k]
        w = width(node.shape)
        if model._n_inputs == 1:
            ws.Y[k] = x.reshape(rows, *node.shape)
        else:                     # a contiguous copy of this input's columns
            buf = ws.slots[k].rows_buffer("x", node.shape)
            buf.reshape(rows, w)[...] = x[:, offset:offset + w]
            ws.Y[k] = buf
        offset += w
    masked = model._masked
    for node in nodes[model._n_inputs:]:
        slot = ws.slots[node.index]
        slot.training = training
        inp = [ws.Y[i] for i in node.inputs] if node.multi else ws.Y[node.inputs[0]]
        if masked is not None:
            ws.Y[node.index] = _masked_call(node, ws, slot, inp, training, masked)
        else:
            ws.Y[node.index] = node.layer.forward(slot, inp, training)   # type: ignore[union-attr]
    outs = model._outputs
    if len(outs) == 1:
        y = ws.Y[outs[0]].reshape(rows, -1)
        if out is not None:
            out[...] = y
            return out
        return y
    packed = out
    if packed is None:
        packed = ws.slots[0].rows_buffer("packed_out", (model.output_dim,))
    offset = 0
    for i in outs:
        w = width(nodes[i].shape)
        packed[:, offset:offset + w] = ws.Y[i].reshape(rows, w)
        offset += w
    ws.packed_out = packed
    return packed


def backward(model: BaseModel, ws: GraphWorkspace, rows: int, fuse_last: bool = False,
             dx0: Optional[FloatArray] = None) -> None:
    """Backpropagate ``ws.output_grad(rows)`` (dL/d outputs; with ``fuse_last``, dL/d of the
    output layer's pre-activation) through the graph: parameter gradients into the layers'
    views, dL/d inputs into ``dx0`` (rows, input width) when given."""
    nodes, outs = model._nodes, model._outputs
    written = ws.written
    for i in range(len(written)):
        written[i] = False
    if len(outs) > 1:
        packed = ws.output_grad(rows)
        offset = 0
        for i in outs:
            w = width(nodes[i].shape)
            _accumulate(ws, nodes[i], packed[:, offset:offset + w].reshape(rows, *nodes[i].shape))
            offset += w
    else:
        written[outs[0]] = True
    n_in = model._n_inputs
    # one input: the first layers write dL/dx straight into dx0 (no copy from the workspace)
    ws.input_grad = (dx0.reshape(rows, *nodes[0].shape) if dx0 is not None and n_in == 1
                     and 0 not in ws._grad_of and dx0.flags.c_contiguous else None)
    pooled = model._pooled_grad if dx0 is None else {}
    grad_free = model._grad_free
    from_pool: dict[int, tuple[Any, Slot, FloatArray]] = {}
    for node in reversed(nodes[n_in:]):
        if not written[node.index]:
            continue               # nothing reaches it (a branch no output depends on)
        if node.index in ws.grad_view:     # its input's gradient is a view of its own
            written[ws.grad_view[node.index]] = True
            continue
        slot = ws.slots[node.index]
        if node.index in pooled:   # see pooled_grad_nodes: its convolution takes dy as it is
            conv = pooled[node.index]
            from_pool[conv] = (node.layer, slot, ws.grad(node))
            written[conv] = True
            continue
        shared = node.index in model._shared_later
        if node.index in from_pool:
            run = node.layer.backward_from_pool                        # type: ignore
            if shared:
                _summed_backward(slot, node.layer, run, slot, *from_pool[node.index])
            else:
                run(slot, *from_pool[node.index])
            continue
        targets: list[Optional[FloatArray]] = []
        direct: list[bool] = []
        for j, p in enumerate(node.inputs):
            if (p in grad_free and dx0 is None) or isinstance(nodes[p].shape, list):
                # (a layer with several outputs gets each OutputOf's gradient in its part)
                targets.append(None)
                direct.append(False)
            elif not written[p] and p not in node.inputs[:j]:
                targets.append(ws.grad(nodes[p]))
                direct.append(True)
            else:
                targets.append(slot.rows_buffer(f"dx{j}", nodes[p].shape))
                direct.append(False)
        slot._dx = targets
        slot.fuse_act = (node.index in fuse_last if isinstance(fuse_last, frozenset)   # by output
                         else fuse_last and len(outs) == 1 and node.index == outs[0])
        slot.relu_fused = node.index in model._relu_fused
        if shared:
            result = _summed_backward(slot, node.layer, node.layer.backward,  # type: ignore
                                      slot, ws.grad(node))
        else:
            result = node.layer.backward(slot, ws.grad(node))      # type: ignore[union-attr]
        results = result if node.multi else [result]
        for j, p in enumerate(node.inputs):
            if isinstance(nodes[p].shape, list):
                _accumulate_part(ws, nodes[p], node.layer.index, results[j])  # type: ignore
                continue
            if targets[j] is None:
                continue
            r = results[j]
            if direct[j]:
                if r is not targets[j]:
                    targets[j][...] = r                                # type: ignore[index]
                written[p] = True
            else:
                _accumulate(ws, nodes[p], r)
    if dx0 is not None:
        offset = 0
        for k in range(n_in):
            w = width(nodes[k].shape)
            if not written[k]:
                dx0[:, offset:offset + w] = 0
            elif ws.input_grad is None:
                dx0[:, offset:offset + w] = ws.grad(nodes[k]).reshape(rows, w)
            offset += w
        ws.input_grad = None


def _accumulate_part(ws: GraphWorkspace, node: Node, index: int, value: FloatArray) -> None:
    """Add ``value`` to the gradient of output ``index`` of a layer with several outputs (the
    outputs nobody reads keep a zero gradient)."""
    parts = ws.grad(node)
    if not ws.written[node.index]:
        for part in parts:
            part[...] = 0
        ws.written[node.index] = True
    parts[index] += value


def _accumulate(ws: GraphWorkspace, node: Node, value: FloatArray) -> None:
    g = ws.grad(node)
    if ws.written[node.index]:
        g += value
    else:
        g[...] = value
        ws.written[node.index] = True


class ModelLayer(Layer):
    """A model called as a layer inside another model (a GAN's combined model): its forward
    and backward are the inner model's, on a workspace of the outer model's slot; its weights
    stay in the inner model's buffers."""

    def __init__(self, model: BaseModel) -> None:
        super().__init__(name=None, trainable=True)
        self._name = model._name
        self.model = model
        self.n_inputs = 1 if model._n_inputs == 1 else None
        self.act = model.final_activation

    def compute_output_shape(self, input_shape: Any) -> Any:
        expected = self.model.input_shape
        if input_shape != expected:
            raise ValueError(f"model {self.model.name} takes inputs of shape {expected}. "
                             f"Received: {input_shape}")
        return self.model.output_shape

    def forward(self, ctx: Slot, x: Any, training: bool) -> Any:
        inner = self.model
        ws = ctx.saved.get("ws")
        rows = ctx.rows
        if ws is None or ws.rows < rows:
            ws = ctx.saved["ws"] = inner._new_workspace(rows, with_grads=True)
        xs = x if isinstance(x, list) else [x]
        packed = (xs[0].reshape(rows, -1) if len(xs) == 1
                  else np.concatenate([a.reshape(rows, -1) for a in xs], axis=1))
        ctx.saved["x"] = packed
        out = inner._forward(packed, ws, rows, training=training)
        return inner._unpack_outputs(out)

    def backward(self, ctx: Slot, dy: Any) -> Any:
        inner, ws, rows = self.model, ctx.saved["ws"], ctx.rows
        g = ws.output_grad(rows)
        dys = dy if isinstance(dy, list) else [dy]
        offset = 0
        for d in dys:
            w = d[0].size if rows else 0
            g[:, offset:offset + w] = d.reshape(rows, -1)
            offset += w
        dx = ctx.buffer("dx_packed", (ctx.capacity, int(inner.input_dim or 0)))[:rows]
        inner._backward(ctx.saved["x"], ws, rows, fuse_last=ctx.fuse_act, dx0=dx)
        if inner._n_inputs == 1:
            return dx.reshape(rows, *inner.input_shape)
        parts, offset = [], 0
        for shape in inner.input_shape:
            w = width(shape)
            parts.append(dx[:, offset:offset + w].reshape(rows, *shape))
            offset += w
        return parts
