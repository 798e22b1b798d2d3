"""compile/fit/evaluate for a model with several outputs, as Keras 3 does them.

A model packs its outputs side by side in one (rows, output width) array (``graph.forward``);
its targets are packed the same way here, so batching, shuffling and the validation split never
look at the outputs. Each output is a ``Head``: its columns, its loss (None: not trained), the
loss's weight, and its metrics. The loss of a batch is ``sum_k w_k L_k`` (each ``L_k`` the mean
its loss kernel computes on the output's columns), and dL/d(out_k) is ``w_k dL_k/d(out_k)``,
0 for an output without a loss. Keras' logs: ``loss``, ``<output>_loss`` for each trained output
(when more than one is), ``<output>_<metric>``.

A softmax or sigmoid output layer fuses with its cross-entropy as a single output's does (the
loss writes dL/d(pre-activation), and the backward pass skips the activation's derivative:
``Heads.fused``, graph.backward's ``fuse_last`` set) when nothing else reads that output; behind
a Flatten or Reshape, or read by another layer, the output's probabilities are read instead
(``CE_PROBS``, ``BCE_PROBS``) and the gradient goes back through the activation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn import activations as A
from fastnn import losses as L
from fastnn import metrics as M
from fastnn.models import graph

if TYPE_CHECKING:
    from fastnn.models.base import BaseModel

_UNFUSED = {L.CE_SOFTMAX: L.CE_PROBS, L.BCE_SIGMOID: L.BCE_PROBS}


class Head:
    """One output of a compiled model: where it sits in the packed arrays and how it is scored."""

    __slots__ = ("name", "node", "shape", "start", "stop", "loss", "kind", "weight", "metrics",
                 "threshold", "act")

    def __init__(self, name: str, node: int, shape: tuple[int, ...], start: int,
                 act: int) -> None:
        self.name, self.node, self.shape, self.start = name, node, shape, start
        self.stop = start + graph.width(shape)
        self.act = act
        # outputs are probabilities after sigmoid/softmax/step; logits are split at 0
        self.threshold = 0.5 if act in (A.SIGMOID, A.SOFTMAX, A.STEP) else 0.0
        self.loss: Optional[L.Loss] = None
        self.kind = L.CUSTOM_KIND
        self.weight = 1.0
        self.metrics: list[Any] = []

    @property
    def width(self) -> int:
        return self.stop - self.start

    def classes(self) -> int:
        """As ``Training._class_axis`` for this output: the classes of a cross-entropy on N-D
        outputs (one prediction per position), else 0."""
        if not isinstance(self.loss, L.CrossEntropy) or len(self.shape) < 2:
            return 0
        return int(self.shape[-1])


class Heads:
    """The compiled outputs of a model, in ``model.outputs`` order."""

    def __init__(self, heads: list[Head]) -> None:
        self.heads = heads
        self.names = [h.name for h in heads]
        trained = [h for h in heads if h.loss is not None]
        # Keras logs each output's loss only when more than one output is trained
        self.loss_keys = [f"{h.name}_loss" for h in trained] if len(trained) > 1 else []
        self.metric_keys = [f"{h.name}_{M.metric_name(m)}" for h in heads for m in h.metrics]
        self.last: list[float] = []       # the per-output losses of the last training step
        #: the output nodes whose activation the loss fuses (graph.backward's fuse_last)
        self.fused = frozenset(h.node for h in heads if h.kind in L.FUSED_KINDS)

    def losses(self) -> list[Optional[L.Loss]]:
        return [h.loss for h in self.heads]

    def compile_entry(self, entry: Any) -> dict[str, Any]:
        """The compile settings a model file keeps for the outputs (``entry(loss)`` a loss's
        stored form): a loss each (None if not trained), their weights, their metric names
        (a list each: ``compile`` reads a list of one entry per output so)."""
        return {"loss": [None if h.loss is None else entry(h.loss) for h in self.heads],
                "loss_weights": [h.weight for h in self.heads],
                "metrics": [[name for name in map(M.storable, h.metrics) if name is not None]
                            for h in self.heads]}


def output_names(model: BaseModel) -> list[str]:
    """The outputs' names (their layers' names; a repeated one gets ``_2``, ``_3``, ...)."""
    names: list[str] = []
    for k, index in enumerate(model._outputs):
        layer = model._nodes[index].layer
        name = layer.name if layer is not None else f"output_{k + 1}"
        base, count = name, 1
        while name in names:
            count += 1
            name = f"{base}_{count}"
        names.append(name)
    return names


def _activation_of(model: BaseModel, index: int) -> int:
    """The activation code an output carries (through Flatten and Reshape, as
    ``BaseModel._activation_node``)."""
    node = model._nodes[index]
    while node.layer is not None and node.layer.shape_only:
        node = model._nodes[node.inputs[0]]
    return A.LINEAR if node.layer is None else node.layer.act


def _is_loss_config(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("name"), str)


def _per_output(arg: str, value: Any, names: list[str], default: Any, one_for_all: bool,
                complete: bool = False) -> list[Any]:
    """``value`` as one entry per output: a list in output order, a dict keyed by output name
    (unlisted outputs get ``default``, or are refused when ``complete``), or (``one_for_all``)
    one value for every output."""
    expected = f"{len(names)} outputs {names}"
    if isinstance(value, dict) and not (one_for_all and _is_loss_config(value)):
        unknown = [key for key in value if key not in names]
        if unknown:
            raise ValueError(f"{arg} names outputs the model does not have: {unknown}; the "
                             f"model has {expected}. Received: {arg}={V._describe(value)}")
        missing = [name for name in names if name not in value]
        if complete and missing:
            raise ValueError(f"{arg} has no entry for the outputs {missing} (the model has "
                             f"{expected}): give each output its {arg}, None for one that is "
                             f"not trained. Received: {arg}={V._describe(value)}")
        return [value.get(name, default) for name in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"{arg} must have one entry per output: the model has {expected}. "
                             f"Received: {len(value)} entries, {arg}={V._describe(value)}")
        return list(value)
    if one_for_all:
        return [value] * len(names)
    raise TypeError(f"{arg} must be a list (one entry per output) or a dict keyed by output "
                    f"name; the model has {expected}. Received: {arg}={V._describe(value)}")


def _metrics_per_output(metrics: Any, names: list[str]) -> list[Any]:
    """Keras 3's forms: a list with one entry per output (a metric, a list of them or None),
    a dict by output name; fastnn also takes one metric, or a list of another length, for
    every output."""
    if metrics is None:
        return [None] * len(names)
    if isinstance(metrics, dict):
        return _per_output("metrics", metrics, names, None, False)
    if isinstance(metrics, (list, tuple)) and len(metrics) == len(names):
        return list(metrics)
    return [metrics] * len(names)


def single(model: BaseModel, loss: Any) -> Any:
    """A single output's loss given in a multi-output form (a list of one, or a dict keyed by
    the output's name) as the loss itself; anything else as it is."""
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        return loss[0]
    if isinstance(loss, dict) and not _is_loss_config(loss):
        return _per_output("loss", loss, output_names(model), None, False, complete=True)[0]
    return loss


def compile_heads(model: BaseModel, loss: Any, loss_weights: Any, metrics: Any) -> Heads:
    """The checked per-output settings of ``compile`` (nothing in the model changes)."""
    names = output_names(model)
    losses = _per_output("loss", loss, names, None, True, complete=True)
    weights = ([1.0] * len(names) if loss_weights is None
               else _per_output("loss_weights", loss_weights, names, 1.0, False))
    per_metrics = _metrics_per_output(metrics, names)
    # an output layer's activation fuses with its loss when the layer is the output node itself
    # (not behind a Flatten) and no other layer, or second output, reads it
    read = {p for node in model._nodes[model._n_inputs:] for p in node.inputs}
    fusable = {i for i in model._outputs if model._outputs.count(i) == 1 and i not in read
               and not getattr(model._nodes[i].layer, "shape_only", True)}
    heads, start = [], 0
    for k, (name, index) in enumerate(zip(names, model._outputs)):
        shape = model._nodes[index].shape
        if not isinstance(shape, tuple):
            raise ValueError(f"output {name!r} is a list of tensors; compile needs each output "
                             f"to be one tensor")
        if model._masked is not None and model._masked[index]:
            raise ValueError(f"output {name!r} carries a step mask, which compile does not "
                             f"apply to the losses of a model with several outputs yet: train "
                             f"it with the low-level loop, or end the output without the mask")
        head = Head(name, index, shape, start, _activation_of(model, index))
        start = head.stop
        if losses[k] is not None:
            head.loss = L.get_loss(losses[k])
            kind = L.check_kind(head.loss, head.act)
            head.kind = kind if index in fusable else _UNFUSED.get(kind, kind)
        head.weight = V.check_float(f"loss_weights[{name!r}]", weights[k], low=0.0)
        head.metrics = M.check_metrics(per_metrics[k])
        heads.append(head)
    if all(h.loss is None for h in heads):
        raise ValueError(f"loss must give at least one of the outputs {names} a loss. "
                         f"Received: loss={V._describe(loss)}")
    return Heads(heads)


def _head_targets(model: Any, head: Head, y: Any, rows: int, name: str) -> Any:
    """The dense (rows, width) targets of one output."""
    if head.loss is None:               # scored by metrics only: dense targets
        arr = V.as_real_array(name, y)
        if arr.ndim > 2 and arr.shape[1:] == head.shape:
            arr = arr.reshape(arr.shape[0], -1)
        return V.dense_targets(arr, head.width, model.dtype, rows, name)
    return model._targets_for(head.loss, head.shape, y, rows, name)


def pack_targets(model: Any, heads: Heads, y: Any, rows: int, name: str = "y") -> Any:
    """The targets of every output, packed as the outputs are: (rows, output width)."""
    n = len(heads.heads)
    expected = f"one target array per output ({n}: {heads.names})"
    if isinstance(y, dict):
        unknown = [key for key in y if key not in heads.names]
        if unknown:
            raise ValueError(f"{name} names outputs the model does not have: {unknown}; "
                             f"expected {expected}. Received: keys {list(y)}")
        parts = [y.get(h.name) for h in heads.heads]
        labels = [f"{name}[{h.name!r}]" for h in heads.heads]
    elif isinstance(y, (list, tuple)):
        trained = [k for k, h in enumerate(heads.heads) if h.loss is not None or h.metrics]
        if len(y) == n:
            parts = list(y)
        elif len(y) == len(trained):      # Keras: targets for the outputs with a loss only
            parts = [None] * n
            for k, part in zip(trained, y):
                parts[k] = part
        else:
            raise ValueError(f"{name} must hold {expected}, or a dict keyed by output name. "
                             f"Received: a {type(y).__name__} of {len(y)} arrays")
        labels = [f"{name}[{k}] (output {h.name!r})" for k, h in enumerate(heads.heads)]
    else:
        raise ValueError(f"{name} must be a list of {expected}, or a dict keyed by output "
                         f"name. Received: {type(y).__name__}"
                         f"{' of shape ' + str(np.shape(y)) if hasattr(y, 'shape') else ''}")
    T = np.empty((rows, model.output_dim), model.dtype)
    for head, part, label in zip(heads.heads, parts, labels):
        if part is None:
            if head.loss is not None or head.metrics:
                raise ValueError(f"{label} is None, but output {head.name!r} has a loss or "
                                 f"metrics to compute: give its targets")
            T[:, head.start:head.stop] = 0          # never read
            continue
        T[:, head.start:head.stop] = _head_targets(model, head, part, rows, label)
    return T


def pack_sample_weights(model: Any, heads: Heads, sample_weight: Any, class_weight: Any,
                        rows: int, name: str = "sample_weight") -> Any:
    """(rows, outputs) weights (a column per output), or None: ``sample_weight`` one array for
    every output, a list (one per output, None for all 1) or a dict by output name."""
    if class_weight is not None:
        raise ValueError(f"class_weight is only supported for models with a single output "
                         f"(Keras' rule); this one has the outputs {heads.names}: weigh each "
                         f"output's samples with sample_weight={{output name: weights}}. "
                         f"Received: class_weight={V._describe(class_weight)}")
    if sample_weight is None:
        return None
    custom = [h.name for h in heads.heads if h.kind == L.CUSTOM_KIND and h.loss is not None]
    if custom:
        raise TypeError(f"sample_weight needs built-in losses: the loss of the outputs "
                        f"{custom} computes a mean of its own")
    per_output = isinstance(sample_weight, dict) or (
        isinstance(sample_weight, (list, tuple)) and len(sample_weight) > 0
        and all(w is None or isinstance(w, (np.ndarray, list, tuple)) for w in sample_weight))
    parts = (_per_output(name, sample_weight, heads.names, None, False) if per_output
             else [sample_weight] * len(heads.heads))
    W = np.ones((rows, len(heads.heads)), model.dtype)
    for k, (head, part) in enumerate(zip(heads.heads, parts)):
        if part is not None:
            W[:, k] = V.sample_weights(part, rows, model.dtype,
                                       name if not per_output else f"{name}[{head.name!r}]")
    return W


def loss_parts(model: Any, heads: Heads, out: Any, T: Any, g: Any, W: Any) -> tuple[float,
                                                                                 list[float]]:
    """(sum_k w_k L_k, [L_k for the trained outputs]) of the packed outputs ``out`` against the
    packed targets ``T`` (weights ``W`` (rows, outputs) or None); with ``g``, dL/d(outputs)
    into it (0 for an output without a loss)."""
    total, parts = 0.0, []
    for k, head in enumerate(heads.heads):
        cols = slice(head.start, head.stop)
        if head.loss is None:
            if g is not None:
                g[:, cols] = 0
            continue
        o = np.ascontiguousarray(out[:, cols])
        t = np.ascontiguousarray(T[:, cols])
        gk = None if g is None else np.empty_like(o)
        w = None if W is None else np.ascontiguousarray(W[:, k])
        value = model._loss_of(head.loss, head.kind, head.classes(), o, t, gk, w)
        if gk is not None:
            np.multiply(gk, model.dtype.type(head.weight), out=g[:, cols])
        parts.append(value)
        total += head.weight * value
    return total, parts


def metric_sums(model: Any, heads: Heads, out: Any, T: Any) -> list[float]:
    """Each output's metrics summed over the rows of a batch, in ``heads.metric_keys`` order."""
    sums = []
    for head in heads.heads:
        if not head.metrics:
            continue
        cols = slice(head.start, head.stop)
        o, t = out[:, cols], T[:, cols]
        for item in head.metrics:
            sums.append(model._metric_sum_of(item, head.classes(), o, t, head.threshold))
    return sums
