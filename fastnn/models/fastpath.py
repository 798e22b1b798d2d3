"""The MLP fast path: chains of Dense and activation layers on 2-D inputs.

``eligible`` is the one place that decides whether a model takes it. Such a model runs as an
*execution plan*: a list of ``PlanStep`` (an optional Dense layer, then an activation), with a
standalone activation layer folded into the linear Dense layer before it, so
``[Dense(10), Softmax()]`` is one fused ``dense_forward``. The compiled backend then runs the
whole forward pass (``ForwardPlan``, predict) or training step (``TrainPlan``, fit and
train_on_batch) in one call; both give bitwise the results of the per-layer route here, which
the tests hold them to. Every other model takes the general path (``fastnn.models.graph``),
whose small-batch predictions ``compile_forward`` hands to ``fastnn.models.inference``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from fastnn import activations as A
from fastnn import losses as L
from fastnn._memory import aligned_empty, aligned_zeros
from fastnn.layers import Activation, Dense, Layer
from fastnn.models import inference

if TYPE_CHECKING:
    from fastnn.models.base import BaseModel

# Activations applied to each value on its own (softmax mixes a row): a run of them is one step.
_ELEMENTWISE = frozenset(A.NAMES) - {A.SOFTMAX}


def eligible(layers: Sequence[Layer], input_shape: Any) -> bool:
    """Whether a chain of ``layers`` on samples of ``input_shape`` takes the fast path: 2-D
    inputs, only Dense layers (trainable, with bias, unregularised) and activation layers, and
    at least one Dense layer; no gelu or silu (``A.FROM_INPUT``: its backward pass needs the
    pre-activation, which the plans' workspace does not keep; the general path's layers do)."""
    return (isinstance(input_shape, tuple) and len(input_shape) == 1
            and all(type(layer) is Dense and layer.plain or isinstance(layer, Activation)
                    for layer in layers)
            and any(isinstance(layer, Dense) for layer in layers)
            and not any(layer.act in A.FROM_INPUT for layer in layers))


class PlanStep:
    """One kernel call of the plan: an optional Dense layer, then an activation.

    ``width`` is the number of columns the call outputs; ``act`` and ``param`` are the
    activation's code and parameter (see ``fastnn.activations``). A run of two or more
    element-wise activation layers is one step whose ``chain`` lists each ``(act, param)`` in
    order (``act`` and ``param`` are then the last one's): it keeps one output and the product
    of the activations' derivatives for training, however long the run (see ``Workspace``).
    """

    __slots__ = ("dense", "act", "param", "width", "chain")

    def __init__(self, dense: Optional[Dense], act: int, param: float, width: int) -> None:
        self.dense, self.act, self.param, self.width = dense, act, param, width
        self.chain: Optional[list[tuple[int, float]]] = None


class Workspace:
    """Buffers for up to ``rows`` samples, sized by the model's real layers, not its length.

    Training (``with_grads``): ``Y[i]`` (rows, plan[i].width) is step i's output, which the
    backward pass reads; ``G[i]`` its gradient, taken alternately from two shared buffers (the
    backward pass of step i reads G[i] and writes G[i - 1], never further); ``D[i]`` the
    product of an activation chain's derivatives (else None). Inference: ``Y`` alternates
    between two shared buffers and activation steps work in place, so a model's depth does not
    multiply the memory of ``predict``; ``G`` and ``D`` are None.
    """

    def __init__(self, plan: Sequence[PlanStep], rows: int, dtype: np.dtype[Any],
                 with_grads: bool) -> None:
        self.rows = rows
        widest = max(s.width for s in plan)

        def shared():
            flat = aligned_empty(rows * widest, dtype)
            return lambda width: flat[:rows * width].reshape(rows, width)

        if with_grads:
            self.Y = [aligned_empty((rows, s.width), dtype) for s in plan]
            views = (shared(), shared())
            self.G: Optional[list[Any]] = [views[i % 2](s.width) for i, s in enumerate(plan)]
            self.D: Optional[list[Any]] = [aligned_empty((rows, s.width), dtype) if s.chain
                                           else None for s in plan]
        else:
            views, self.Y, buffer = (shared(), shared()), [], 1
            for s in plan:
                if s.dense is not None or not self.Y:     # activations run in place
                    buffer = 1 - buffer
                self.Y.append(views[buffer](s.width))
            self.G = self.D = None

    def output(self, rows: int) -> Any:
        """The model's outputs for the current pass: (rows, output width)."""
        Y = self.Y[-1]
        return Y if rows == Y.shape[0] else Y[:rows]

    def output_grad(self, rows: int) -> Any:
        """Where the loss writes dL/d(outputs) before ``backward``."""
        G = self.G[-1]          # type: ignore[index]  # a training workspace
        return G if rows == G.shape[0] else G[:rows]


def make_plan(layers: Sequence[Layer], input_dim: int) -> list[PlanStep]:
    plan: list[PlanStep] = []
    width = input_dim
    for layer in layers:
        if isinstance(layer, Dense):
            plan.append(PlanStep(layer, layer.act, layer.param, layer.units))
            width = layer.units
        elif plan and plan[-1].dense is not None and plan[-1].act == A.LINEAR:
            plan[-1].act, plan[-1].param = layer.act, layer.param
        elif (plan and plan[-1].dense is None and layer.act in _ELEMENTWISE
                and plan[-1].act in _ELEMENTWISE):
            last = plan[-1]
            last.chain = (last.chain or [(last.act, last.param)]) + [(layer.act, layer.param)]
            last.act, last.param = layer.act, layer.param
        else:
            plan.append(PlanStep(None, layer.act, layer.param, width))
    return plan


def layout(model: BaseModel, plan: list[PlanStep], input_dim: int) -> None:
    """The flat buffers (each Dense layer's W then b, in order) and the weights from the model's
    seed, drawn in layer order (He normal before the ReLU family, Glorot uniform otherwise,
    zero biases)."""
    sizes, width = [], input_dim
    for step in plan:
        if step.dense is not None:
            sizes.append(step.dense.n_params(width))
        width = step.width
    model._allocate(sum(sizes))
    offset, width, k = 0, input_dim, 0
    for step in plan:
        if step.dense is not None:
            end = offset + sizes[k]
            step.dense.attach(width, model._params[offset:end], model._grads[offset:end])
            step.dense.reset_parameters(model._init_rng, step.act)
            offset, k = end, k + 1
        width = step.width


def compile_forward(model: BaseModel) -> Any:
    """The whole forward pass as one compiled call, for small batches (fast backend only): the
    Dense chain's ForwardPlan, or for a general-path model its InferPlan when it has one
    (``fastnn.models.inference``)."""
    if not model._fast:
        return inference.compile(model)
    plan_class = getattr(model._be, "ForwardPlan", None)
    if plan_class is None:
        return None
    steps = []
    for s in model._plan:
        for act, param in s.chain or [(s.act, s.param)]:
            steps.append((s.dense.W if s.dense else None, s.dense.b if s.dense else None,
                          act, float(param), s.width))
    return plan_class(steps, model.input_dim, model.dtype.type)


def forward(model: BaseModel, x: Any, ws: Workspace, rows: int, out: Any = None,
            fuse_last: bool = False) -> Any:
    """Run the plan on ``x`` (rows, input_dim); returns the final output view. ``fuse_last``:
    the loss will skip the final activation's backward (see ``_chain_forward``)."""
    be, plan = model._be, model._plan
    last = len(plan) - 1
    inp = x
    for i, step in enumerate(plan):
        if i == last and out is not None:
            y = out
        else:
            y = ws.Y[i] if rows == ws.rows else ws.Y[i][:rows]
        if step.dense is not None:
            be.dense_forward(inp, step.dense.W, step.dense.b, step.act, step.param, y)
        elif step.chain:
            _chain_forward(be, step, inp, y, ws, i, rows, fuse_last and i == last)
        else:
            be.activation_forward(inp, step.act, step.param, y)
        inp = y
    return inp


def _chain_forward(be: Any, step: PlanStep, inp: Any, y: Any, ws: Workspace, i: int, rows: int,
                   fused: bool) -> None:
    """A run of element-wise activations, in place on ``y``; in training also ``D[i]``, the
    product of their derivatives (without the last one's when the loss fuses with it), so
    that the backward pass is one multiplication, whatever the length of the run."""
    d = None
    if ws.D is not None:
        d = ws.D[i] if rows == ws.rows else ws.D[i][:rows]
        d.fill(1)
    assert step.chain is not None
    for j, (act, param) in enumerate(step.chain):
        be.activation_forward(inp if j == 0 else y, act, param, y)
        if d is not None and not (fused and j == len(step.chain) - 1):
            be.activation_backward(y, d, act, param, d)


def backward(model: BaseModel, x: Any, ws: Workspace, rows: int, fuse_last: bool = False,
             dx0: Any = None) -> None:
    """Backpropagate ``ws.G[-1]`` (already holding dL/d output; with ``fuse_last``, dL/d of the
    final activation's input) into the gradient buffer, and into ``dx0`` (rows, input_dim)
    when given."""
    be, plan = model._be, model._plan
    full = rows == ws.rows
    assert ws.G is not None
    for i in range(len(plan) - 1, -1, -1):
        step = plan[i]
        act = A.LINEAR if i == len(plan) - 1 and fuse_last else step.act
        y = ws.Y[i] if full else ws.Y[i][:rows]
        g = ws.G[i] if full else ws.G[i][:rows]
        if i > 0:
            inp = ws.Y[i - 1] if full else ws.Y[i - 1][:rows]
            dx = ws.G[i - 1] if full else ws.G[i - 1][:rows]
        else:
            inp, dx = x, dx0
        if step.dense is not None:
            d = step.dense
            be.dense_backward(inp, d.W, y, g, act, step.param, g, d.dW, d.db, dx)
        elif dx is not None and step.chain:
            assert ws.D is not None
            np.multiply(g, ws.D[i] if full else ws.D[i][:rows], out=dx)
        elif dx is not None:
            be.activation_backward(y, g, act, step.param, dx)


def make_train_plan(model: BaseModel, ws: Workspace) -> Any:
    """The compiled training step over ``ws`` for SGD or Adam as shipped, or None. It clips the
    gradients as ``Optimizer._apply`` does (the same routine), per weight tensor by
    ``model._bounds``."""
    plan_class = getattr(model._be, "TrainPlan", None)
    opt = model.optimizer
    rule = opt.fused_rule()
    if (plan_class is None or rule is None or any(s.chain for s in model._plan)
            or model._loss_kind == L.CUSTOM_KIND):
        return None
    kind, state, counter = rule
    steps = [(s.dense.W, s.dense.b, s.dense.dW, s.dense.db, s.act, float(s.param), s.width)
             if s.dense is not None else (None, None, None, None, s.act, float(s.param),
                                          s.width) for s in model._plan]
    onehot = aligned_zeros((ws.rows, model.output_dim), model.dtype)
    screen = math.sqrt(float(np.finfo(model.dtype).max)) * 1e-3   # as check_update
    return plan_class(steps, model.input_dim, model.dtype.type, model._loss_kind,
                      model._loss_kind in L.FUSED_KINDS, ws.Y, ws.G, model._params,
                      model._grads, kind, state, onehot, screen, counter, opt,
                      model.loss.param, opt._clip_out, model._bounds)
