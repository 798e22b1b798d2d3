"""Training and inference: compile, one step (compiled plan or per-layer kernels),
train_on_batch, loss_and_gradients, predict and evaluate. ``fit`` lives in ``fit_loop``.
"""

from __future__ import annotations

import math
import time
import weakref
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

import numpy as np
from numpy.typing import ArrayLike

from fastnn import _validation as V
from fastnn import activations as A
from fastnn import losses as L
from fastnn import metrics as M
from fastnn._advice import warn_about_setup
from fastnn.models import fastpath, multi_output
from fastnn.models._exclusive import exclusive
from fastnn.optimizers import OPTIMIZERS, Optimizer, get_optimizer
from fastnn.progress import EpochProgress, check_verbose

if TYPE_CHECKING:
    from numpy.typing import NDArray

    FloatArray = NDArray[np.floating[Any]]
    from fastnn.optimizers import OptimizerName
    OptimizerLike = Union[OptimizerName, Optimizer, dict[str, Any]]


# optimizer -> the model it was last compiled with (weakly: neither is kept alive by this, and
# an optimizer still pickles)
_COMPILED_FOR: weakref.WeakKeyDictionary[Any, weakref.ref[Any]] = weakref.WeakKeyDictionary()


def _keras_order(loss: Any, optimizer: Any) -> tuple[Any, Any]:
    """(loss, optimizer) from compile's first two arguments in either order: fastnn's
    ``compile(loss, optimizer)`` or Keras' ``compile(optimizer, loss)`` -- told apart by what
    they are (an optimizer's name or instance first, a loss's second), so never ambiguous."""
    def is_optimizer(value: Any) -> bool:
        return isinstance(value, Optimizer) or (isinstance(value, str) and value in OPTIMIZERS)

    def is_loss(value: Any) -> bool:
        if isinstance(value, (list, tuple)):          # one per output
            return any(is_loss(item) for item in value)
        if isinstance(value, dict) and not isinstance(value.get("name"), str):
            return any(is_loss(item) for item in value.values())      # by output name
        return isinstance(value, L.Loss) or (isinstance(value, str) and (
            value in L.LOSSES or value in L.ALIASES))
    if is_optimizer(loss) and is_loss(optimizer):
        return optimizer, loss
    if is_optimizer(loss):
        raise ValueError(f"compile's first argument is the loss (fastnn's order is compile(loss, "
                         f"optimizer, metrics); Keras' puts the optimizer first): got the "
                         f"optimizer {V._describe(loss)} and no loss. Pass them by name, e.g. "
                         f"compile(optimizer={V._describe(loss)}, loss=\"mse\")")
    return loss, optimizer


def _loss_diverged(value: float) -> FloatingPointError:
    return FloatingPointError(f"the loss is {value}: training diverged (weights left "
                              f"unchanged). Lower the learning rate or scale the inputs.")


class Training:
    """Mixin of ``BaseModel``: everything between a batch and an optimizer step."""

    # set by BaseModel and compile (declared for type checkers)
    _loss_kind: int
    _train_ws: Any
    _train_plan: Any
    #: a model with several outputs: their compiled settings (multi_output.Heads), else None
    _heads: Optional[multi_output.Heads] = None

    def _acts_and_widths(self: Any) -> list[tuple[int, int]]:
        """Each layer's (activation code, output width), the last one the model's output."""
        if self._fast:
            return [(act, s.width) for s in self._plan
                    for act, _ in s.chain or [(s.act, s.param)]]
        return [(n.layer.act, n.shape[-1]) for n in self._nodes
                if n.layer is not None and isinstance(n.shape, tuple)]

    @exclusive
    def compile(self: Any, loss: Any, optimizer: OptimizerLike = "sgd",
                metrics: Any = None, loss_weights: Any = None) -> Any:
        """Choose the loss to minimise, the optimizer and the metrics to report.

        Compiling again replaces them and starts the optimizer from fresh (zero) state. A
        Sequential not built yet is compiled when it is built (Keras' deferred build; the
        arguments are checked now, and ``loss``, ``optimizer`` and ``metrics`` are set at once,
        the optimizer's state allocated with the weights). Keras' order, ``compile("adam", "mse")``, is taken too:
        the two are told apart by what they are.

        Parameters
        ----------
        loss : {"mse", "binary_cross_entropy", "cross_entropy"}, Loss, list or dict
            The loss, a mean over the batch. Cross-entropy after a final softmax and binary
            cross-entropy after a final sigmoid fuse with it; after any other final activation
            the outputs are read as logits. With several outputs (Keras 3's forms): one loss
            for all, a list with one per output (``model.outputs`` order), or a dict keyed by
            output layer name with every output; None for an output leaves it untrained. The
            model's loss is then ``sum_k loss_weights[k] * loss_k``.
        optimizer : {"sgd", "adam"}, Optimizer or dict, default "sgd"
            A name (default settings), an instance such as ``SGD(lr=0.1)``, or a config dict
            such as ``{"name": "adam", "lr": 0.01}``.
        metrics : str, Metric, function or list of them, optional
            Names: "accuracy", "binary_accuracy", "categorical_accuracy", "mae", "mse", or
            Keras' "acc", "sparse_categorical_accuracy", "mean_absolute_error",
            "mean_squared_error"; Keras' classes from ``fastnn.metrics``
            (``SparseCategoricalAccuracy()``, ...); or functions ``f(y_true, y_pred) -> number``
            (a batch mean; ``y_true`` the dense targets). Reported by ``fit`` and ``evaluate``
            under their names. With several outputs: a list with one entry per output (a
            metric, a list of them or None), a dict keyed by output name, or one metric (or a
            list of another length) for every output; reported as ``<output>_<metric>``.
        loss_weights : list or dict of float >= 0, optional
            Several outputs: each output's loss weight (default 1), a list in output order or
            a dict keyed by output name.

        Returns
        -------
        Sequential
            The model itself.

        Raises
        ------
        ValueError
            If the model is not built, or the loss, the optimizer or a metric is unknown; with
            several outputs, a list of the wrong length or a dict naming an unknown output.
        TypeError
            If ``metrics`` is not a string, list or tuple, or an optimizer dict holds a
            setting of the wrong type.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(3, activation="softmax")], input_dim=4,
        ...                        backend="numpy")
        >>> model = model.compile(loss="cross_entropy", optimizer={"name": "sgd", "lr": 0.1},
        ...                       metrics="accuracy")
        >>> model.loss, model.optimizer.lr, model.metrics
        (CrossEntropy(), 0.1, ['accuracy'])
        """
        loss, optimizer = _keras_order(loss, optimizer)
        if loss_weights is not None and (self._defers_build or len(self._outputs) == 1):
            raise ValueError(f"loss_weights weighs the losses of several outputs; this model "
                             f"has one. Received: loss_weights={V._describe(loss_weights)}")
        if not self.built and self._defers_build and self._deferred_input_shape(None) is None:
            # Keras' deferred build: checked now, completed when the first fit, predict or
            # evaluate builds the model for its data (or build() does)
            pending = (L.get_loss(loss), get_optimizer(optimizer), metrics)
            items = M.check_metrics(metrics)
            self._pending_compile: Optional[tuple[Any, Any, Any]] = pending
            # Keras' model.loss and model.optimizer are the compiled objects at once; the
            # optimizer's state is allocated when the build completes the compile (with them)
            self.loss, self.optimizer = pending[0], pending[1]
            self.metrics = [M.metric_name(item) for item in items]
            return self
        self._check_built("compile")
        # everything checked before the model changes: a refused compile leaves it as it was
        heads = None
        new_loss: Any
        if len(self._outputs) > 1:
            heads = multi_output.compile_heads(self, loss, loss_weights, metrics)
            new_loss, kind = heads.losses(), L.CUSTOM_KIND
            items = [item for head in heads.heads for item in head.metrics]
        else:
            new_loss = L.get_loss(multi_output.single(self, loss))
            kind = self._loss_kind_for(new_loss)
            items = M.check_metrics(metrics)
        new_optimizer = get_optimizer(optimizer)
        owner = _COMPILED_FOR.get(new_optimizer)
        other = owner() if owner is not None else None
        if other is not None and other is not self:
            raise ValueError(
                f"compile: this {type(new_optimizer).__name__} optimizer already trains another "
                f"model (it was compiled with it), and an optimizer's state (momentum, moments, "
                f"step count) belongs to one model. Give each model its own optimizer, e.g. "
                f"compile(..., optimizer=optimizer.get_config()) makes a new one with the same "
                f"settings")
        runs = self._make_runs()
        new_optimizer.build(sum(size for _, _, size in runs), self.dtype)
        _COMPILED_FOR[new_optimizer] = weakref.ref(self)
        if heads is None:
            warn_about_setup(new_loss, self._acts_and_widths())
        self.loss, self.optimizer = new_loss, new_optimizer
        self._heads = heads
        self.metrics = (heads.metric_keys if heads is not None
                        else [M.metric_name(item) for item in items])
        self._metric_items = items
        self._loss_kind = kind
        self._runs = runs
        self._bounds = self._make_bounds()
        self._train_plan = None                  # built again for this loss and optimizer
        return self

    def _train_workspace(self: Any, rows):
        if self._train_ws is None or self._train_ws.rows < rows:
            self._train_ws = self._new_workspace(rows, with_grads=True)
            self._train_plan = None          # it holds pointers into the old workspace
        return self._train_ws

    def _compiled_step(self: Any, rows):
        """The compiled training step for batches of up to ``rows`` (fast backend, SGD or Adam
        as shipped), or None. Built on first use; rebuilt after compile() or a larger batch."""
        ws = self._train_workspace(rows)
        plan = self._train_plan
        if plan is None and self._compiled_steps:
            plan = self._train_plan = (fastpath.make_train_plan(self, ws) if self._fast
                                         else None) or False
        return plan or None

    def _plan_hyper(self: Any):
        """The optimizer's hyper-parameters in TrainPlan's order (lr, h1, h2, h3, weight decay);
        or None, and the plan is dropped to be built again on the next step, when the optimizer
        or its state buffers changed since the plan was built (TrainPlan.hyper). The plan reads
        and advances the step count itself."""
        hyper = self._train_plan.hyper(self.optimizer)
        if hyper is None:
            self._train_plan = None
        return hyper

    def _finish_plan_step(self: Any, status, value):
        """A compiled step that did not update (status 1 or 2): raise for a loss that is not
        finite; otherwise the gradients are huge or not finite and the exact check decides."""
        if status == 1:
            raise _loss_diverged(value)
        self.optimizer._apply(self._be, self._params, self._grads, self._bounds)

    def _step_compiled(self: Any, plan, x, t, check):
        """One step through the compiled plan; the loss, or None if it refused (x, t)."""
        hyper = self._plan_hyper()
        if hyper is None:
            return None
        value = plan.step(x, t, check, *hyper)
        if value is None:
            return None
        if plan.status != 0:
            self._finish_plan_step(plan.status, value)
        return value

    def _epoch_compiled(self: Any, Xs, Ts, batch, epoch):
        """An epoch as the compiled plan's run_epoch calls (no Python between batches): the
        sum of loss * rows over its batches, or None when there is no plan for it (nothing
        done). The same steps, in the same order, as _run_epoch's loop of _train_step calls,
        in chunks of a few tens of milliseconds so that Ctrl-C still interrupts a long epoch;
        a batch whose gradients need the exact check gets it here, as in _step_compiled. The
        loss total is summed in batch order as there, so the History is the same to the bit."""
        if self.optimizer._schedule is not None:
            return None      # a rate per step: run_epoch takes one rate for all its steps
        plan = self._compiled_step(batch)
        if plan is None or self._plan_hyper() is None:
            return None
        n, total, first = Xs.shape[0], 0.0, 0
        batches = -(-n // batch)
        while first < batches:
            done = plan.run_epoch(Xs, Ts, batch, first, total, *self._plan_hyper())
            if done is None:
                if first == 0:
                    return None
                raise RuntimeError("fastnn: the compiled plan refused an epoch it had begun")
            count, status, total, value = done
            if status == 0:          # done, or a chunk done (signals are seen between chunks)
                first += count
                continue
            index = first + count - 1
            rows = min(batch, n - index * batch)
            try:
                self._finish_plan_step(status, value)
            except FloatingPointError as exc:
                raise FloatingPointError(f"epoch {epoch + 1}, batch {index + 1}: {exc}") from None
            total += value * rows
            first = index + 1
        return total

    def _loss_and_grads(self: Any, x, t, w=None):
        """Forward, loss and backward on a validated batch (``w``: its sample weights, or None);
        leaves gradients in ``_grads`` (and in nested models' ``_grads``)."""
        rows = x.shape[0]
        ws = self._train_workspace(rows)
        fuse = self._fuses() if self._heads is None else self._heads.fused
        out = self._forward(x, ws, rows, training=True, fuse_last=fuse)
        value = self._loss_value(out, t, ws.output_grad(rows), w, self._output_mask(ws))
        if not self._fast:
            self._zero_grads()
            value += self._regularize(with_grads=False)
        if not math.isfinite(value):
            raise _loss_diverged(value)
        self._backward(x, ws, rows, fuse_last=fuse)
        if not self._fast:
            self._regularize(with_grads=True)
        return value, out

    def _output_mask(self: Any, ws):
        """The step mask (rows, steps) of the output of the pass just run in ``ws``, or None
        (see Layer.compute_mask)."""
        masked = self._masked
        if masked is None or not masked[self._outputs[0]] or len(self._outputs) != 1:
            return None
        return ws.M[self._outputs[0]]

    def _loss_value(self: Any, out, t, g, w, mask=None):
        """The loss of ``out`` against the dense targets ``t`` (sample weights ``w`` or None)
        and, when ``g`` is given, dL/d(out) into it: a kernel, or a Python loss's ``value`` and
        ``gradient``, whose results are held to the shape and finiteness the backward pass
        needs. ``mask`` (rows, steps): the output's step mask, whose padded steps the built-in
        losses leave out (Keras: the mean over the real steps of the batch). With several
        outputs, the weighted sum of theirs (``multi_output.loss_parts``); the outputs' own
        losses are kept in ``_heads.last``."""
        if self._heads is not None:
            value, self._heads.last = multi_output.loss_parts(self, self._heads, out, t, g, w)
            return value
        return self._loss_of(self.loss, self._loss_kind, self._class_axis(), out, t, g, w, mask)

    def _loss_of(self: Any, loss, kind, classes, out, t, g, w, mask=None):
        """``_loss_value`` for the loss ``loss`` of kernel code ``kind`` on one output (its
        ``classes`` as ``_class_axis``)."""
        if kind != L.CUSTOM_KIND:
            if mask is not None:      # a row per step, weighted by the mask
                steps = mask.shape[1]
                width = out.shape[1] // steps
                out, t = out.reshape(-1, width), t.reshape(-1, width)
                g = None if g is None else g.reshape(-1, width)
                w = _step_weights(w, mask, self.dtype)
            elif classes:             # per step of a sequence: rows of one class axis each
                steps = out.shape[1] // classes
                out, t = out.reshape(-1, classes), t.reshape(-1, classes)
                g = None if g is None else g.reshape(-1, classes)
                w = None if w is None else np.ascontiguousarray(np.repeat(w, steps))
            return self._be.loss(kind, out, t, g, w, loss.param)
        if mask is not None:          # the real steps only, a row each (Keras' masked mean)
            return self._custom_loss_of_real_steps(loss, out, t, g, mask)
        name = type(loss).__name__
        value = loss.value(t, out)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"{name}.value() must return a number. Received: {value!r}")
        if g is not None:
            grad = loss.gradient(t, out)
            if not isinstance(grad, np.ndarray) or grad.shape != out.shape:
                raise TypeError(f"{name}.gradient() must return an array of the outputs' shape "
                                f"{out.shape}. Received: {type(grad).__name__} "
                                f"{getattr(grad, 'shape', '')}")
            np.copyto(g, grad, casting="same_kind")
            if not np.isfinite(g).all():
                raise FloatingPointError(f"{name}.gradient() returned NaN or inf")
        return float(value)

    def _custom_loss_of_real_steps(self: Any, loss, out, t, g, mask):
        """A Python loss on a masked per-step output: ``value`` and ``gradient`` see the real
        steps as rows, (real steps, features a step), so their mean is over the real steps, as
        Keras' masked reduction; the padded steps' gradient is 0. A batch with no real step
        has loss 0 (Keras' weight 0) and calls neither."""
        steps = mask.shape[1]
        width = out.shape[1] // steps
        real = mask.reshape(-1)
        rows = out.reshape(-1, width)[real], t.reshape(-1, width)[real]
        if g is not None:
            g[...] = 0
        if not rows[0].shape[0]:
            return 0.0
        grad = None if g is None else np.empty_like(rows[0])
        value = self._loss_of(loss, L.CUSTOM_KIND, 0, rows[0], rows[1], grad, None)  # checked
        if g is not None:
            per_step = g.view()
            per_step.shape = (-1, width)              # a view, never a copy
            per_step[real] = grad
        return value

    def _train_step(self: Any, x, t, w=None):
        """One optimizer step on a validated batch (``w``: its sample weights, or None); returns
        the loss. The batch's outputs are left in the training workspace (``_batch_outputs``)."""
        plan = self._compiled_step(x.shape[0])
        if plan is not None and w is None:        # the compiled plan has no sample weights
            value = self._step_compiled(plan, x, t, False)
            if value is not None:
                return value
        return self._on_chosen_threads("train", x.shape[0], self._general_step, x, t, w)

    def _general_step(self: Any, x, t, w):
        value, _ = self._loss_and_grads(x, t, w)
        self._apply_update(self.optimizer)
        return value

    def _batch_outputs(self: Any, rows):
        """The outputs of the last training batch (a view into the workspace)."""
        return self._train_ws.output(rows)

    def _check_compiled(self: Any, what, data=None):
        self._check_built(what, data)
        if self.loss is None:
            raise ValueError(f"call model.compile(loss=..., optimizer=...) before {what}")

    def _class_axis(self: Any) -> int:
        """With cross-entropy on N-D outputs (n, ..., classes), e.g. a Dense softmax per step
        of a sequence: the number of classes (each position is one prediction, as in Keras:
        the loss is the mean over every position); else 0."""
        shape = self.output_shape
        if (not isinstance(self.loss, L.CrossEntropy) or not isinstance(shape, tuple)
                or len(shape) < 2):
            return 0
        return int(shape[-1])

    def _metric_sum(self: Any, item, out, T, threshold, mask=None) -> float:
        """``_metric_sum_of`` for the model's single output."""
        return self._metric_sum_of(item, self._class_axis(), out, T, threshold, mask)

    def _metric_sum_of(self: Any, item, classes, out, T, threshold, mask=None) -> float:
        """A metric summed over the rows of a batch; with a class axis (``classes``, as
        ``_class_axis``), the
        mean over each sample's positions, summed over the samples. With the output's step
        ``mask``: the mean over the batch's real steps, times its rows (Keras' masked metrics
        over one batch)."""
        if mask is not None:
            real = mask.reshape(-1)
            count = int(np.count_nonzero(real))
            if count == 0:
                return 0.0
            width = out.shape[1] // mask.shape[1]
            rows = (out.reshape(-1, width)[real], T.reshape(-1, width)[real])
            return M.batch_metric_sum(item, *rows, threshold) * out.shape[0] / count
        if not classes:
            return M.batch_metric_sum(item, out, T, threshold)
        positions = out.shape[1] // classes
        return M.batch_metric_sum(item, out.reshape(-1, classes), T.reshape(-1, classes),
                                  threshold) / positions

    def _targets(self: Any, y, rows, name="y"):
        """The dense (rows, output width) targets of ``y`` (several outputs: packed as the
        outputs are, ``multi_output.pack_targets``)."""
        if self._heads is not None:
            return multi_output.pack_targets(self, self._heads, y, rows, name)
        return self._targets_for(self.loss, self.output_shape, y, rows, name,
                                 nd=not self._fast)

    def _targets_for(self: Any, loss, shape, y, rows, name, nd=True):
        """The dense (rows, width) targets for ``loss`` of an output of sample ``shape``;
        ``nd``: N-D targets of that shape are taken (flattened)."""
        width = math.prod(shape)
        classes = (int(shape[-1]) if isinstance(loss, L.CrossEntropy)
                   and isinstance(shape, tuple) and len(shape) >= 2 else 0)
        if classes:
            arr = V.as_real_array(name, y)
            positions = width // classes
            flat: Any
            if arr.shape[1:] == tuple(shape[:-1]):       # labels per position
                flat = arr.reshape(-1)
            elif arr.shape[1:] == tuple(shape):           # one-hot per position
                flat = arr.reshape(-1, classes)
            else:
                raise ValueError(f"{name} must be integer labels of shape (n, "
                                 f"{', '.join(map(str, shape[:-1]))}) or one-hot "
                                 f"(n, {', '.join(map(str, shape))}) for outputs "
                                 f"of shape {shape}. Received: {name} with shape "
                                 f"{arr.shape}")
            V.check_rows(name, arr, rows)
            T = loss.targets(flat, classes, self.dtype, arr.shape[0] * positions, name)
            return np.ascontiguousarray(T.reshape(arr.shape[0], width))
        if (isinstance(y, np.ndarray) and y.ndim > 2 and nd
                and y.shape[1:] == tuple(shape)):
            y = y.reshape(y.shape[0], -1)        # N-D outputs: the loss sees them flattened
        T = loss.targets(y, width, self.dtype, rows, name)
        # the kernels read (rows, outputs) from it: hold a custom Loss's targets() to that
        if (type(T) is not np.ndarray or T.shape != (rows, width)
                or T.dtype != self.dtype or not T.flags.c_contiguous):
            raise TypeError(f"{type(loss).__name__}.targets() must return a C-contiguous "
                            f"{self.dtype.name} array of shape {(rows, width)}. "
                            f"Received: {type(T).__name__} {getattr(T, 'dtype', '')}"
                            f"{getattr(T, 'shape', '')}")
        return T

    def _sample_weights(self: Any, sample_weight, class_weight, T):
        """The per-sample weights (Keras' meaning: the loss is sum(w_i * loss_i) / n), from
        ``sample_weight`` (n,) and ``class_weight`` {class: weight} (multiplied when both are
        given), or None when neither is. A sample's class is its target's argmax with several
        outputs, its 0/1 target with one. Several outputs: (n, outputs), a column each
        (``multi_output.pack_sample_weights``)."""
        if self._heads is not None:
            return multi_output.pack_sample_weights(self, self._heads, sample_weight,
                                                    class_weight, T.shape[0])
        if sample_weight is None and class_weight is None:
            return None
        if self._loss_kind == L.CUSTOM_KIND:
            raise TypeError(f"sample_weight and class_weight need a built-in loss: "
                            f"{type(self.loss).__name__}.value() computes a mean of its own")
        n = T.shape[0]
        W = (np.ones(n, self.dtype) if sample_weight is None
             else V.sample_weights(sample_weight, n, self.dtype))
        if class_weight is not None:
            classes = (np.argmax(T, axis=1) if T.shape[1] > 1
                       else np.rint(T[:, 0]).astype(np.int64))
            W = W * V.class_weight_table("class_weight", class_weight, classes, self.dtype)
        return np.ascontiguousarray(W, dtype=self.dtype)

    @exclusive
    def train_on_batch(self: Any, x: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None,
                       class_weight: Optional[Mapping[int, float]] = None) -> float:
        """One training step on the batch ``(x, y)``; returns the loss before the update.

        The step is a forward pass, the loss ``L(output, y)``, backpropagation of its gradient
        through the layers, and one optimizer update of all parameters.

        Parameters
        ----------
        x : array_like of shape (n, input_dim)
            The batch's inputs, real and finite.
        y : array_like
            Its targets: (n, output_dim); class labels (n,) for ``cross_entropy``; or (n,)
            with one output.
        sample_weight : array_like of shape (n,), optional
            A weight >= 0 per sample: the loss is ``sum(w_i * loss_i) / n`` (Keras' meaning);
            such batches take the per-kernel path (the compiled plan has no weights).
        class_weight : dict of int to float, optional
            ``{class index: weight}``, multiplying ``sample_weight``; a sample's class is the
            argmax of its target (its 0/1 target with one output); unlisted classes weigh 1.

        Returns
        -------
        float
            The loss on the batch (a mean over its samples) before the update.

        Raises
        ------
        ValueError
            If the model is not compiled, or ``x`` or ``y`` has the wrong shape or holds NaN,
            inf or out-of-range targets.
        TypeError
            If ``x`` or ``y`` does not hold real numbers.
        FloatingPointError
            If the loss or a gradient is NaN or inf, or the update would overflow; the
            weights are then left unchanged.

        Examples
        --------
        >>> import numpy as np
        >>> import fastnn as fnn
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
        >>> model = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=0, backend="numpy")
        >>> model = model.compile(loss="mse", optimizer=fnn.SGD(lr=0.1))
        >>> first = model.train_on_batch(x, y)
        >>> bool(model.train_on_batch(x, y) < first)
        True
        """
        plan = self._train_plan
        if plan and sample_weight is None and class_weight is None:
            # Arrays already in the model's form (labels as int64) go straight to the compiled
            # step, which checks them itself (shape, dtype, layout, values) and reads the
            # optimizer's settings; anything else is validated first. (A plan exists only for a
            # compiled model, so the checks below are implied.)
            value = plan.train_batch(self.optimizer, x, y)
            if value is not None:
                if plan.status:
                    self._finish_plan_step(plan.status, value)
                return value
        self._check_compiled("train_on_batch", x)
        weighted = sample_weight is not None or class_weight is not None
        if type(x) is np.ndarray and x.ndim == 2 and x.shape[0] > 0 and not weighted:
            plan = self._compiled_step(x.shape[0])       # build it (or grow it) for this batch
            if plan is not None:
                value = self._step_compiled(plan, x, y, True)
                if value is not None:
                    return value
        xs: FloatArray = self._inputs(x, "x")
        t = self._targets(y, xs.shape[0])
        return self._train_step(xs, t, self._sample_weights(sample_weight, class_weight, t))

    @exclusive
    def loss_and_gradients(self: Any, x: ArrayLike, y: ArrayLike) -> tuple[float, list[FloatArray]]:
        """The loss on ``(x, y)`` and its gradients with respect to the weights; no update.

        Parameters
        ----------
        x : array_like of shape (n, input_dim)
            Inputs, real and finite.
        y : array_like
            Targets, in the forms ``train_on_batch`` accepts.

        Returns
        -------
        loss : float
            The loss on the batch (a mean over its samples).
        gradients : list of ndarray
            ``[dL/dW1, dL/db1, dL/dW2, dL/db2, ...]``, shaped like ``get_weights()`` (copies).

        Raises
        ------
        ValueError
            If the model is not compiled, or ``x`` or ``y`` is invalid (as in
            ``train_on_batch``).
        TypeError
            If ``x`` or ``y`` does not hold real numbers.
        FloatingPointError
            If the loss is NaN or inf.

        Examples
        --------
        >>> import numpy as np
        >>> import fastnn as fnn
        >>> rng = np.random.default_rng(0)
        >>> model = fnn.Sequential([fnn.Dense(4, activation="tanh"), fnn.Dense(2)],
        ...                        input_dim=3, seed=0, backend="numpy").compile(loss="mse")
        >>> loss, grads = model.loss_and_gradients(rng.standard_normal((5, 3)),
        ...                                        rng.standard_normal((5, 2)))
        >>> [g.shape for g in grads] == [w.shape for w in model.get_weights()]
        True
        """
        self._check_compiled("loss_and_gradients", x)
        xs: FloatArray = self._inputs(x, "x")
        t = self._targets(y, xs.shape[0])
        value, _ = self._loss_and_grads(xs, t)
        return value, [layer._grads[k].copy() for _, layer, k in self._entries()]

    def _inference_workspace(self: Any, rows):
        # one workspace per thread: predict may run in several threads at once
        ws = getattr(self._local, "ws", None)
        if ws is None or ws.rows < rows:
            ws = self._new_workspace(rows, with_grads=False)
            self._local.ws = ws
        return ws

    def _predict_array(self: Any, X, batch_size, progress=None, masks=None):
        n = X.shape[0]
        out = np.empty((n, self.output_dim), dtype=self.dtype)
        chunk = min(n, batch_size)
        ws = self._inference_workspace(chunk)
        self._on_chosen_threads("predict", n, self._forward_chunks, X, out, ws, chunk, progress,
                                masks)
        return out

    def _forward_chunks(self: Any, X, out, ws, chunk, progress=None, masks=None):
        """The forward pass over ``X`` in chunks into ``out`` (and the output's step mask into
        ``masks`` when given)."""
        n = X.shape[0]
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            self._forward(X[start:stop], ws, stop - start, out=out[start:stop])
            if masks is not None:
                masks[start:stop] = self._output_mask(ws)
            if progress is not None:
                progress.update(stop - start, {})

    @staticmethod
    def _reporting(title: str, n: int, verbose: int, run: Any) -> Any:
        """``run(progress)`` -> (result, logs) with its pass over ``n`` samples reported as
        ``fit``'s epochs are (a bar, or one line with the logs and the time); the result."""
        progress = EpochProgress(0, 1, n, verbose, title=title)
        start = time.perf_counter()
        try:
            result, logs = run(progress)
        except BaseException:
            progress.close_quietly()
            raise
        progress.close(logs, time.perf_counter() - start)
        return result

    def predict(self: Any, X: ArrayLike, batch_size: Optional[int] = None,
                verbose: Any = 0) -> FloatArray:
        """The model's outputs for ``X``: the forward pass, layer by layer.

        ``h_k = act_k(h_{k-1} @ W_k + b_k)`` from ``h_0 = X``: probabilities after a final
        softmax or sigmoid, raw values (logits, regression outputs) otherwise. Safe to call
        from several threads at once.

        Parameters
        ----------
        X : array_like of shape (n, input_dim)
            Inputs, real and finite.
        batch_size : int, optional
            Rows computed at a time, > 0 (default 4096); it bounds the memory used.
        verbose : {0, 1, 2, True, False, "auto"}, default 0
            As ``fit``'s: 0 silent (the default; Keras' is "auto", a bar); 1 a progress bar in
            a terminal or notebook, else one line; 2 one line: ``Predict  1000 samples  (0.01s)``.

        Returns
        -------
        ndarray of shape (n, output_dim)
            The outputs, in the model's dtype.

        Raises
        ------
        ValueError
            If the model is not built, ``X`` is not 2-D with ``input_dim`` columns and at least
            one row or holds NaN or inf, or ``batch_size`` < 1.
        TypeError
            If ``X`` does not hold real numbers, or ``batch_size`` is not an integer.
            ``verbose`` is checked as ``fit``'s.

        Examples
        --------
        >>> import numpy as np
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(3, activation="softmax")], input_dim=4, seed=0,
        ...                        backend="numpy")
        >>> p = model.predict(np.random.default_rng(0).standard_normal((5, 4)))
        >>> p.shape, p.dtype, bool(np.allclose(p.sum(axis=1), 1.0))
        ((5, 3), dtype('float32'), True)
        """
        verbose = check_verbose(verbose)
        if batch_size is None:
            # Small, well-formed inputs take one compiled call (same results, no overhead).
            plan = self._forward_plan
            if plan is not None and not verbose:
                out = plan.predict(X)
                if out is not None:
                    return out
            batch_size = 4096
        self._check_built("predict", X)
        batch_size = V.check_positive_int("batch_size", batch_size)
        Xs = self._inputs(X)
        if not verbose:
            return self._unpack_outputs(self._predict_array(Xs, batch_size))
        return self._unpack_outputs(self._reporting(
            "Predict", Xs.shape[0], verbose,
            lambda progress: (self._predict_array(Xs, batch_size, progress), {})))

    def predict_on_batch(self: Any, x: ArrayLike) -> FloatArray:
        """The model's outputs for one batch ``x``, in one pass (Keras' ``predict_on_batch``;
        ``predict`` with ``batch_size=len(x)``).

        Raises
        ------
        ValueError, TypeError
            As ``predict``.

        Examples
        --------
        >>> import numpy as np
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=0, backend="numpy")
        >>> model.predict_on_batch(np.ones((4, 3))).shape
        (4, 2)
        """
        return self._predict_whole(x, "predict_on_batch")

    def test_on_batch(self: Any, x: ArrayLike, y: ArrayLike,
                      sample_weight: Optional[ArrayLike] = None,
                      return_dict: bool = False) -> Union[float, list[float], dict[str, float]]:
        """The loss and the compiled metrics on one batch, without training (Keras'
        ``test_on_batch``: ``evaluate`` in one pass).

        Returns
        -------
        float, list of float or dict
            As Keras: the loss alone when ``compile`` was given no metrics, else ``[loss,
            metric, ...]`` in the order of ``compile``'s metrics; with ``return_dict=True``,
            ``evaluate``'s dict.

        Raises
        ------
        ValueError, TypeError
            As ``evaluate``.

        Examples
        --------
        >>> import numpy as np
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(1)], input_dim=2, seed=0, backend="numpy")
        >>> model = model.compile("mse", "sgd", metrics=["mae"])
        >>> loss, mae = model.test_on_batch(np.ones((4, 2)), np.zeros(4))
        >>> bool(mae <= loss ** 0.5 + 1e-6)
        True
        """
        return_dict = V.check_bool("return_dict", return_dict)
        self._check_compiled("test_on_batch", x)
        xs: FloatArray = self._inputs(x, "x")
        T = self._targets(y, xs.shape[0])
        scores = self._evaluate_arrays(xs, T, xs.shape[0],
                                       self._sample_weights(sample_weight, None, T))
        return scores if return_dict else _keras_scores(scores)

    def _threshold(self: Any):
        # outputs are probabilities after sigmoid/softmax/step; logits are split at 0
        return 0.5 if self.final_activation in (A.SIGMOID, A.SOFTMAX, A.STEP) else 0.0

    def _evaluate_arrays(self: Any, X, T, batch_size=4096, W=None, progress=None):
        masks = self._mask_store(X.shape[0])
        out = self._predict_array(X, batch_size, progress, masks)
        n = X.shape[0]
        heads = self._heads
        if heads is not None:
            total, parts = multi_output.loss_parts(self, heads, out, T, None, W)
            values = [total + self._regularize(with_grads=False)]
            if heads.loss_keys:
                values += parts
            values += [value / n for value in multi_output.metric_sums(self, heads, out, T)]
            return dict(zip(self._log_keys(), values))
        scores = {"loss": self._loss_value(out, T, None, W, masks)
                  + (0.0 if self._fast else self._regularize(with_grads=False))}
        threshold = self._threshold()
        for name, item in zip(self.metrics, self._metric_items):
            scores[name] = self._metric_sum(item, out, T, threshold, masks) / n
        return scores

    def _log_keys(self: Any) -> list[str]:
        """The keys of ``fit``'s logs and ``evaluate``'s scores, in Keras' order: the loss,
        each output's loss (several outputs), the metrics."""
        heads = self._heads
        return ["loss"] + (heads.loss_keys if heads is not None else []) + self.metrics

    def _add_batch_scores(self: Any, sums, value, tb, rows, threshold):
        """Add the last training batch's loss (and, several outputs, each output's) and
        metrics, times its ``rows``, to the epoch's ``sums``."""
        sums["loss"] += value * rows
        heads = self._heads
        if heads is not None:
            for key, part in zip(heads.loss_keys, heads.last):
                sums[key] += part * rows
            if self.metrics:
                out = self._batch_outputs(rows)
                for key, part in zip(heads.metric_keys,
                                     multi_output.metric_sums(self, heads, out, tb)):
                    sums[key] += part
            return
        if self.metrics:
            out = self._batch_outputs(rows)
            mask = self._output_mask(self._train_ws)
            for name, item in zip(self.metrics, self._metric_items):
                sums[name] += self._metric_sum(item, out, tb, threshold, mask)

    def _mask_store(self: Any, n):
        """Room for the output's step mask of ``n`` samples when the output has one."""
        masked = self._masked
        if masked is None or len(self._outputs) != 1 or not masked[self._outputs[0]]:
            return None
        return np.empty((n, self.output_shape[0]), bool)

    def evaluate(self: Any, X: ArrayLike, y: ArrayLike, batch_size: int = 4096,
                 sample_weight: Optional[ArrayLike] = None, verbose: Any = 0,
                 return_dict: bool = True) -> Union[dict[str, float], float, list[float]]:
        """The loss and the compiled metrics on ``(X, y)``, as means over all samples.

        Parameters
        ----------
        X : array_like of shape (n, input_dim)
            Inputs, real and finite.
        y : array_like
            Targets, in the forms ``fit`` accepts.
        batch_size : int, default 4096
            Rows computed at a time, > 0.
        sample_weight : array_like of shape (n,), optional
            A weight >= 0 per sample: the loss is ``sum(w_i * loss_i) / n``; the metrics are
            not weighted (as Keras' ``metrics``).
        verbose : {0, 1, 2, True, False, "auto"}, default 0
            As ``fit``'s: 0 silent (the default; Keras' is "auto"); 1 a progress bar in a
            terminal or notebook, else one line; 2 one line with the scores and the time.
        return_dict : bool, default True
            fastnn's default: a dict. ``False`` gives Keras' default form: the loss alone
            without metrics, else ``[loss, metric, ...]`` in the order of ``compile``'s
            metrics (Keras' own default is ``False``, so ``loss, acc = model.evaluate(...)``
            needs ``return_dict=False`` here).

        Returns
        -------
        dict of str to float
            ``{"loss": ..., metric: ...}`` for each metric given to ``compile``; or, with
            ``return_dict=False``, a float or a list.

        Raises
        ------
        ValueError
            If the model is not compiled, or the data or ``batch_size`` is invalid.
        TypeError
            If the data does not hold real numbers, or ``batch_size`` is not an integer.

        Examples
        --------
        >>> import fastnn as fnn
        >>> from fastnn.datasets import make_xor
        >>> X, y = make_xor()
        >>> model = fnn.Sequential([fnn.Dense(1, activation="sigmoid")], input_dim=2,
        ...                        backend="numpy")
        >>> scores = model.compile(loss="binary_cross_entropy",
        ...                        metrics=["binary_accuracy", "mae"]).evaluate(X, y)
        >>> sorted(scores)
        ['binary_accuracy', 'loss', 'mae']
        """
        self._check_compiled("evaluate", X)
        batch_size = V.check_positive_int("batch_size", batch_size)
        verbose = check_verbose(verbose)
        return_dict = V.check_bool("return_dict", return_dict)
        Xs: FloatArray = self._inputs(X)
        T = self._targets(y, Xs.shape[0])
        W = self._sample_weights(sample_weight, None, T)
        if not verbose:
            scores = self._evaluate_arrays(Xs, T, batch_size, W)
        else:
            def run(progress):
                scores = self._evaluate_arrays(Xs, T, batch_size, W, progress)
                return scores, scores
            scores = self._reporting("Evaluate", Xs.shape[0], verbose, run)
        return scores if return_dict else _keras_scores(scores)


def _step_weights(w: Any, mask: Any, dtype: Any) -> Any:
    """Per-step row weights for a loss of one row per step: the sample's weight (``w`` or 1)
    where the mask is True, 0 at a padded step, all scaled by steps / real steps so that the
    kernels' mean over rows is the mean over the real steps (Keras' ``apply_mask``; a batch
    with no real step weighs 0)."""
    n, steps = mask.shape
    weights = np.empty((n, steps), dtype)
    np.copyto(weights, mask)
    if w is not None:
        weights *= np.asarray(w, dtype).reshape(n, 1)
    real = int(np.count_nonzero(mask))
    if real:
        weights *= dtype.type(n * steps / real)
    return weights.reshape(-1)


def _keras_scores(scores: dict[str, float]) -> Union[float, list[float]]:
    """Keras' form of ``evaluate``'s scores: the loss alone, or ``[loss, metric, ...]``."""
    values = list(scores.values())                  # "loss" first, then compile's order
    return values[0] if len(values) == 1 else values
