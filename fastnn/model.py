"""``Sequential``: a stack of layers trained by backpropagation and gradient descent.

The model owns all memory a training step touches. Parameters live in one flat buffer and
gradients in another of the same layout (each Dense layer holds views), so the optimizer updates
everything in one fused kernel call. Activations and their gradients live in a workspace sized for
the batch; a step only calls kernels on these buffers, and allocates nothing.

An *execution plan* folds a standalone activation layer into the Dense layer before it (when that
layer is linear), so ``[Dense(10), Softmax()]`` runs as one fused ``dense_forward``.
"""

from __future__ import annotations

import functools
import math
import threading
import time
import warnings
from typing import (TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, Optional, Sequence,
                    Union)

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastnn._advice import warn_about_setup, warn_about_targets
from fastnn._memory import aligned_empty, aligned_zeros
from fastnn import _validation as V
from fastnn import activations as A
from fastnn import io as fnn_io
from fastnn import losses as L
from fastnn import metrics as M
from fastnn.callbacks import Callback, TerminateOnNaN
from fastnn.backends import get_backend
from fastnn.layers import Activation, Dense, Layer
from fastnn.optimizers import SGD, Adam, get_optimizer
from fastnn.progress import EpochProgress

if TYPE_CHECKING:
    from fastnn.io import PathLike
    from fastnn.losses import Loss, LossName
    from fastnn.metrics import MetricName
    from fastnn.optimizers import Optimizer

    FloatArray = NDArray[np.floating[Any]]
    #: What ``dtype`` accepts: the names, or the NumPy scalar types and dtypes.
    FloatDType = Union[Literal["float32", "float64"], type[np.float32], type[np.float64],
                       np.dtype[np.float32], np.dtype[np.float64]]
    OptimizerLike = Union[Literal["sgd", "adam"], Optimizer, dict[str, Any]]


# Activations applied to each value on its own (softmax mixes a row): a run of them is one step.
_ELEMENTWISE = frozenset(A.NAMES) - {A.SOFTMAX}


class Step:
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

    def __init__(self, plan: Sequence[Step], rows: int, dtype: np.dtype[Any],
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


class History:
    """The record of one ``fit`` call: the loss and metrics of each epoch.

    Attributes
    ----------
    history : dict of str to list of float
        ``"loss"``, each compiled metric and, with validation data, their ``"val_"`` forms,
        mapped to one value per epoch (a mean over the epoch's samples). ``LearningRateScheduler``
        adds ``"lr"``.
    epoch : list of int
        The epochs run, counted from 0; shorter than ``epochs`` if training stopped early.

    Examples
    --------
    >>> import fastnn as fnn
    >>> from fastnn.datasets import make_xor
    >>> X, y = make_xor()
    >>> model = fnn.Sequential([fnn.Dense(4, activation="tanh"),
    ...                         fnn.Dense(1, activation="sigmoid")],
    ...                        input_dim=2, seed=0, backend="numpy")
    >>> model = model.compile(loss="binary_cross_entropy", metrics=["accuracy"])
    >>> history = model.fit(X, y, epochs=3, batch_size=2, validation_data=(X, y), verbose=0)
    >>> history
    History(epochs=3, keys=['loss', 'accuracy', 'val_loss', 'val_accuracy'])
    >>> history.epoch, len(history.history["val_loss"])
    ([0, 1, 2], 3)
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Record the ``logs`` of ``epoch`` (called by ``fit`` at the end of each epoch)."""
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def plot(self, path: PathLike, keys: Optional[Sequence[str]] = None) -> PathLike:
        """Save the training curves as a PNG, one panel per quantity, against the epoch.

        Each panel shows the training curve and, when recorded, its ``val_`` form. Needs
        matplotlib (``pip install fastnn[plot]``).

        Parameters
        ----------
        path : str or os.PathLike
            The file to write.
        keys : sequence of str, optional
            The quantities to draw, e.g. ``["loss"]``. Default: every key of ``history`` but
            the ``val_`` forms and ``"lr"``.

        Returns
        -------
        str or os.PathLike
            ``path``.

        Raises
        ------
        ImportError
            If matplotlib is not installed.

        Examples
        --------
        >>> import os, tempfile
        >>> from fastnn import History
        >>> history = History()
        >>> for epoch, loss in enumerate([0.9, 0.5, 0.3]):
        ...     history.append(epoch, {"loss": loss, "val_loss": loss + 0.1})
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = history.plot(os.path.join(tmp, "curves.png"))
        ...     os.path.getsize(path) > 0
        True
        """
        try:
            import matplotlib
            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from None
        names = [k for k in (keys or self.history) if not k.startswith("val_") and k != "lr"]
        fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(axes[0], names):
            ax.plot(epochs, self.history[name], label="training")
            if "val_" + name in self.history:
                ax.plot(epochs, self.history["val_" + name], label="validation")
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _loss_diverged(value: float) -> FloatingPointError:
    return FloatingPointError(f"the loss is {value}: training diverged (weights left "
                              f"unchanged). Lower the learning rate or scale the inputs.")


def _exclusive(method: Callable[..., Any]) -> Any:
    """Run ``method`` holding the model's lock: what trains or changes a model refuses to run
    while another thread does (its buffers and plans are shared); re-entrant, so callbacks
    inside ``fit`` may still call these methods. ``predict`` needs no lock."""
    @functools.wraps(method)
    def exclusive(self: Any, *args: Any, **kwargs: Any) -> Any:
        lock = self._busy
        if not lock.acquire(blocking=False):
            raise RuntimeError(f"{method.__name__}: the model is being trained or changed in "
                               f"another thread; a model trains in one thread at a time")
        try:
            return method(self, *args, **kwargs)
        finally:
            lock.release()
    return exclusive


def _is_batch_source(X: object) -> bool:
    """True for a generator or other iterable of batches: not an array or a nested list."""
    return (not isinstance(X, (np.ndarray, list, tuple, str, bytes)) and hasattr(X, "__iter__")
            and not hasattr(X, "__array__") and not hasattr(X, "shape"))


def _check_callbacks(callbacks: object) -> list[Callback]:
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of fastnn.callbacks.Callback instances. "
                        f"Received: callbacks={callbacks!r}")
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be fastnn.callbacks.Callback instances. "
                            f"Received: {cb!r}")
    return callbacks


class Sequential:
    """A feed-forward network: a stack of layers trained by backpropagation.

    The forward pass runs the layers in order; each ``Dense`` layer ``k``, with an activation
    layer that follows a linear one fused into it, computes ::

        h_0 = x,    h_k = act_k(h_{k-1} @ W_k + b_k),    output = h_K

    mapping inputs ``x`` of shape (n, input_dim) to outputs of shape (n, output_dim), where
    ``output_dim`` is the width of the last layer. A training step is a forward pass, the loss
    ``L(output, y)`` (a mean over the batch), backpropagation of ``dL/d output`` through the
    layers in reverse order (giving every ``dL/dW_k`` and ``dL/db_k``), and one optimizer update
    of all parameters.

    Parameters
    ----------
    layers : iterable of Layer, optional
        ``Dense`` layers and activation layers, in order. More can be added with ``add``
        until the model is built.
    input_dim : int, optional
        Number of input features, > 0. When given, the model is built (weights created) at
        once; otherwise call ``build``.
    seed : int, optional
        Seed (>= 0) of the weight initialisation and of the shuffling in ``fit``: the same
        seed gives the same weights and batches. Default: fresh OS entropy.
    dtype : {"float32", "float64"} or the NumPy type, default "float32"
        Floating-point type of the weights, the workspaces and the outputs.
    backend : {"fast", "numpy"}, default "fast"
        "fast" runs the compiled kernels; "numpy" the pure-NumPy reference.

    Attributes
    ----------
    layers : list of Layer
        The layers, as added.
    input_dim : int or None
        Number of input features; None until the model is built.
    output_dim : int
        Width of the last layer (built models only).
    built : bool
        Whether the weights exist.
    dtype : numpy.dtype
        float32 or float64.
    backend : str
        "fast" or "numpy".
    seed : int or None
        The seed given.
    loss : Loss or None
        The loss set by ``compile``.
    optimizer : Optimizer or None
        The optimizer set by ``compile``.
    metrics : list of str
        The metric names set by ``compile``.
    history : History
        What the latest ``fit`` returned.
    stop_training : bool
        A callback sets it to True to end ``fit`` after the current epoch.

    Raises
    ------
    TypeError
        If ``layers`` is not an iterable of layers, or ``input_dim`` or ``seed`` is not an
        integer.
    ValueError
        If ``dtype`` or ``backend`` is not one of the choices, ``seed`` < 0, or the model is
        built (``input_dim`` given) with ``input_dim`` < 1 or without a Dense layer.

    Examples
    --------
    Learn XOR with one hidden layer:

    >>> import fastnn as fnn
    >>> from fastnn.datasets import make_xor
    >>> X, y = make_xor()
    >>> model = fnn.Sequential([fnn.Dense(8, activation="tanh"),
    ...                         fnn.Dense(1, activation="sigmoid")],
    ...                        input_dim=2, seed=0, backend="numpy")
    >>> model = model.compile(loss="binary_cross_entropy", optimizer=fnn.Adam(lr=0.1),
    ...                       metrics=["accuracy"])
    >>> history = model.fit(X, y, epochs=200, batch_size=4, verbose=0)
    >>> model.predict(X).shape
    (4, 1)
    >>> (model.predict(X) > 0.5).ravel()
    array([False,  True,  True, False])
    """

    # Train through the compiled whole-step plan when the backend has one (tests switch it off
    # to compare with the per-kernel path).
    _compiled_steps = True

    # Declarations for type checkers only (set in __init__, build, compile and fit).
    layers: list[Layer]
    input_dim: Optional[int]
    loss: Optional[Loss]
    optimizer: Any                  # an Optimizer once compiled, else None
    metrics: list[str]
    history: History
    stop_training: bool
    _plan: list[Step]
    _params: FloatArray
    _grads: FloatArray
    _forward_plan: Any
    _train_plan: Any
    _train_ws: Optional[Workspace]

    def __init__(self, layers: Optional[Iterable[Layer]] = None, input_dim: Optional[int] = None,
                 seed: Optional[int] = None, dtype: FloatDType = "float32",
                 backend: Literal["fast", "numpy"] = "fast") -> None:
        self.dtype = np.dtype(V.check_dtype(dtype))
        self.backend = V.check_choice("backend", backend, ("fast", "numpy"))
        self._be = get_backend(backend)
        if seed is not None:
            seed = V.check_int("seed", seed, low=0)
        self.seed = seed
        init_seq, shuffle_seq = np.random.SeedSequence(seed).spawn(2)
        self._init_rng = np.random.default_rng(init_seq)
        self._shuffle_rng = np.random.default_rng(shuffle_seq)
        self.layers = []
        self.input_dim = None
        self.loss = self.optimizer = None
        self.metrics = []
        self._metric_items: list[Any] = []          # names, or functions f(y_true, y_pred)
        self._plan = []
        self._forward_plan = None
        self._train_ws = None
        self._train_plan = None
        self._last_forward: Optional[tuple[Any, int]] = None
        self._local = threading.local()
        self._busy = threading.RLock()
        if layers is not None:
            if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
                raise TypeError(f"layers must be a list of layers. Received: layers={layers!r}")
            for layer in layers:
                self.add(layer)
        if input_dim is not None:
            self.build(input_dim)

    # ------------------------------------------------------------------ building
    def add(self, layer: Layer) -> None:
        """Append a layer to the stack (before the model is built).

        Parameters
        ----------
        layer : Layer
            A ``Dense`` layer or an activation layer, not part of a built model.

        Raises
        ------
        TypeError
            If ``layer`` is not a fastnn layer.
        ValueError
            If the model is already built, or ``layer`` is a Dense layer of a built model.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential(backend="numpy")
        >>> model.add(fnn.Dense(4, activation="relu"))
        >>> model.add(fnn.Dense(1))
        >>> model.build(3).output_dim
        1
        """
        if not isinstance(layer, (Dense, Activation)):
            # a Layer subclass of another kind has no kernels yet: it would run as the identity
            raise TypeError(f"layer must be a Dense or an activation layer such as Dense(10) or "
                            f"ReLU(). Received: layer={layer!r}")
        if self.built:
            raise ValueError("cannot add layers to a model that is already built")
        if isinstance(layer, Dense) and layer.built:
            raise ValueError(f"layer {layer!r} already belongs to a built model")
        if isinstance(layer, Dense) and any(layer is other for other in self.layers):
            # a layer with weights used twice would need tied gradients; refused, not untied
            raise ValueError(f"layer {layer!r} is already in this model: a Dense layer can "
                             f"appear once (create a second Dense for a second layer)")
        self.layers.append(layer)

    @property
    def built(self) -> bool:
        """True once the weights exist (``input_dim`` given or ``build`` called)."""
        return self.input_dim is not None

    @_exclusive
    def build(self, input_dim: int) -> Sequential:
        """Create the weights for ``input_dim`` input features.

        Lays all parameters out in one flat buffer, fuses each activation layer into a linear
        Dense layer just before it, and initialises the weights from the model's seed: He
        normal before the ReLU family, Glorot uniform otherwise, zero biases.

        Parameters
        ----------
        input_dim : int
            Number of input features, > 0.

        Returns
        -------
        Sequential
            The model itself.

        Raises
        ------
        TypeError
            If ``input_dim`` is not an integer.
        ValueError
            If ``input_dim`` < 1, the model is already built, or it has no Dense layer.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(4), fnn.Dense(2)], backend="numpy")
        >>> model.built, model.build(3).built
        (False, True)
        >>> [w.shape for w in model.get_weights()]
        [(3, 4), (4,), (4, 2), (2,)]
        """
        input_dim = V.check_positive_int("input_dim", input_dim)
        if self.built:
            raise ValueError(f"model is already built with input_dim={self.input_dim}")
        if not any(isinstance(layer, Dense) for layer in self.layers):
            raise ValueError("a Sequential model needs at least one Dense layer. "
                             f"Received: layers={self.layers!r}")
        for layer in self.layers:
            layer.check_dtype(self.dtype)       # e.g. LeakyReLU(1e39) overflows float32
            if isinstance(layer, Dense) and layer.built:
                raise ValueError(f"layer {layer!r} already belongs to a built model: a Dense "
                                 f"layer can be in one model only")
        self._plan = self._make_plan(input_dim)
        sizes, width = [], input_dim
        for step in self._plan:
            if step.dense is not None:
                sizes.append(step.dense.n_params(width))
            width = step.width
        if sum(sizes) * self.dtype.itemsize >= 2**62:
            raise ValueError(f"the model would have {sum(sizes)} parameters, more than any "
                             f"machine holds. Received: input_dim={input_dim} and layers of "
                             f"{[s.width for s in self._plan]} units")
        self._params = aligned_zeros(sum(sizes), self.dtype)
        self._grads = aligned_zeros(sum(sizes), self.dtype)
        self._grad_sum = aligned_zeros(sum(sizes), self.dtype)     # model.grads (backward)
        offset, width, k = 0, input_dim, 0
        for step in self._plan:
            if step.dense is not None:
                end = offset + sizes[k]
                step.dense.attach(width, self._params[offset:end], self._grads[offset:end])
                step.dense.reset_parameters(self._init_rng, step.act)
                offset, k = end, k + 1
            width = step.width
        self.input_dim = input_dim
        self._forward_plan = self._compile_forward()
        return self

    def _compile_forward(self):
        """The whole forward pass as one compiled call, for small batches (fast backend only)."""
        plan_class = getattr(self._be, "ForwardPlan", None)
        if plan_class is None:
            return None
        steps = []
        for s in self._plan:
            for act, param in s.chain or [(s.act, s.param)]:
                steps.append((s.dense.W if s.dense else None, s.dense.b if s.dense else None,
                              act, float(param), s.width))
        return plan_class(steps, self.input_dim, self.dtype.type)

    def _make_plan(self, input_dim):
        plan, width = [], input_dim
        for layer in self.layers:
            if isinstance(layer, Dense):
                plan.append(Step(layer, layer.act, layer.param, layer.units))
                width = layer.units
            elif plan and plan[-1].dense is not None and plan[-1].act == A.LINEAR:
                plan[-1].act, plan[-1].param = layer.act, layer.param
            elif (plan and plan[-1].dense is None and layer.act in _ELEMENTWISE
                    and plan[-1].act in _ELEMENTWISE):
                last = plan[-1]
                last.chain = (last.chain or [(last.act, last.param)]) + [(layer.act, layer.param)]
                last.act, last.param = layer.act, layer.param
            else:
                plan.append(Step(None, layer.act, layer.param, width))
        return plan

    @property
    def output_dim(self) -> int:
        """Number of outputs: the width of the last layer (built models only)."""
        return self._plan[-1].width

    @property
    def final_activation(self) -> int:
        """Code of the activation applied to the outputs (see ``fastnn.activations``)."""
        return self._plan[-1].act

    @_exclusive
    def compile(self, loss: Union[LossName, Loss], optimizer: OptimizerLike = "sgd",
                metrics: Optional[Union[MetricName, Sequence[MetricName]]] = None
                ) -> Sequential:
        """Choose the loss to minimise, the optimizer and the metrics to report.

        Compiling again replaces them and starts the optimizer from fresh (zero) state.

        Parameters
        ----------
        loss : {"mse", "binary_cross_entropy", "cross_entropy"} or Loss
            The loss, a mean over the batch. Cross-entropy after a final softmax and binary
            cross-entropy after a final sigmoid fuse with it; after any other final activation
            the outputs are read as logits.
        optimizer : {"sgd", "adam"}, Optimizer or dict, default "sgd"
            A name (default settings), an instance such as ``SGD(lr=0.1)``, or a config dict
            such as ``{"name": "adam", "lr": 0.01}``.
        metrics : str, function or list of them, optional
            Any of "accuracy", "binary_accuracy" and "mae", or functions
            ``f(y_true, y_pred) -> number`` (a batch mean; ``y_true`` the dense targets),
            reported by ``fit`` and ``evaluate`` under their names.

        Returns
        -------
        Sequential
            The model itself.

        Raises
        ------
        ValueError
            If the model is not built, or the loss, the optimizer or a metric is unknown.
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
        self._check_built("compile")
        # everything checked before the model changes: a refused compile leaves it as it was
        new_loss = L.get_loss(loss)
        kind = L.check_kind(new_loss, self.final_activation)
        new_optimizer = get_optimizer(optimizer)
        items = M.check_metrics(metrics)
        new_optimizer.build(self._params.size, self.dtype)
        warn_about_setup(new_loss, [(act, s.width) for s in self._plan
                                    for act, _ in s.chain or [(s.act, s.param)]])
        self.loss, self.optimizer = new_loss, new_optimizer
        self.metrics = [M.metric_name(item) for item in items]
        self._metric_items = items
        self._loss_kind = kind
        self._train_plan = None                  # built again for this loss and optimizer
        return self

    # ------------------------------------------------------------------ kernels over the plan
    def _forward(self, x, ws, rows, out=None, fused=True):
        """Run the plan on ``x`` (rows, input_dim); returns the final output view. ``fused``:
        the loss will skip the final activation's backward (see ``_chain_forward``)."""
        be, last = self._be, len(self._plan) - 1
        inp = x
        for i, step in enumerate(self._plan):
            if i == last and out is not None:
                y = out
            else:
                y = ws.Y[i] if rows == ws.rows else ws.Y[i][:rows]
            if step.dense is not None:
                be.dense_forward(inp, step.dense.W, step.dense.b, step.act, step.param, y)
            elif step.chain:
                self._chain_forward(step, inp, y, ws, i, rows, fused)
            else:
                be.activation_forward(inp, step.act, step.param, y)
            inp = y
        return inp

    def _chain_forward(self, step, inp, y, ws, i, rows, fused):
        """A run of element-wise activations, in place on ``y``; in training also ``D[i]``, the
        product of their derivatives (without the last one's when the loss fuses with it), so
        that the backward pass is one multiplication, whatever the length of the run."""
        be = self._be
        d = None
        if ws.D is not None:
            d = ws.D[i] if rows == ws.rows else ws.D[i][:rows]
            d.fill(1)
        fused = (fused and d is not None and i == len(self._plan) - 1
                 and self._loss_kind in L.FUSED_KINDS)
        for j, (act, param) in enumerate(step.chain):
            be.activation_forward(inp if j == 0 else y, act, param, y)
            if d is not None and not (fused and j == len(step.chain) - 1):
                be.activation_backward(y, d, act, param, d)

    def _backward(self, x, ws, rows, fused=True, dx0=None):
        """Backpropagate ``ws.G[-1]`` (already holding dL/d output; with ``fused``, dL/d of the
        final activation's input when the loss fuses with it) into the gradient buffer, and
        into ``dx0`` (rows, input_dim) when given."""
        be, plan = self._be, self._plan
        full = rows == ws.rows
        fuse_last = fused and self._loss_kind in L.FUSED_KINDS
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
                np.multiply(g, ws.D[i] if full else ws.D[i][:rows], out=dx)
            elif dx is not None:
                be.activation_backward(y, g, act, step.param, dx)

    def _train_workspace(self, rows):
        if self._train_ws is None or self._train_ws.rows < rows:
            self._train_ws = Workspace(self._plan, rows, self.dtype, with_grads=True)
            self._train_plan = None          # it holds pointers into the old workspace
        return self._train_ws

    def _compiled_step(self, rows):
        """The compiled training step for batches of up to ``rows`` (fast backend, SGD or Adam
        as shipped), or None. Built on first use; rebuilt after compile() or a larger batch."""
        ws = self._train_workspace(rows)
        plan = self._train_plan
        if plan is None and self._compiled_steps:
            plan = self._train_plan = self._make_train_plan(ws) or False
        return plan or None

    def _make_train_plan(self, ws):
        plan_class = getattr(self._be, "TrainPlan", None)
        opt = self.optimizer
        if (plan_class is None or type(opt) not in (SGD, Adam) or any(s.chain for s in self._plan)
                or self._loss_kind == L.CUSTOM_KIND):
            return None
        kind, state = (0, (opt._velocity,)) if type(opt) is SGD else (1, (opt._m, opt._v))
        steps = [(s.dense.W, s.dense.b, s.dense.dW, s.dense.db, s.act, float(s.param), s.width)
                 if s.dense is not None else (None, None, None, None, s.act, float(s.param),
                                              s.width) for s in self._plan]
        onehot = aligned_zeros((ws.rows, self.output_dim), self.dtype)
        screen = math.sqrt(float(np.finfo(self.dtype).max)) * 1e-3   # as check_update
        return plan_class(steps, self.input_dim, self.dtype.type, self._loss_kind,
                          self._loss_kind in L.FUSED_KINDS, ws.Y, ws.G, self._params,
                          self._grads, kind, state, onehot, screen, opt._iterations, opt,
                          self.loss.param)

    def _plan_hyper(self):
        """The optimizer's hyper-parameters in TrainPlan's order (lr, h1, h2, h3, weight decay);
        or None, and the plan is dropped to be built again on the next step, when the optimizer
        or its state buffers changed since the plan was built (TrainPlan.hyper). The plan reads
        and advances the step count itself."""
        hyper = self._train_plan.hyper(self.optimizer)
        if hyper is None:
            self._train_plan = None
        return hyper

    def _finish_plan_step(self, status, value):
        """A compiled step that did not update (status 1 or 2): raise for a loss that is not
        finite; otherwise the gradients are huge or not finite and the exact check decides."""
        if status == 1:
            raise _loss_diverged(value)
        self.optimizer.step(self._be, self._params, self._grads)

    def _step_compiled(self, plan, x, t, check):
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

    def _epoch_compiled(self, Xs, Ts, batch, epoch):
        """An epoch as the compiled plan's run_epoch calls (no Python between batches): the
        sum of loss * rows over its batches, or None when there is no plan for it (nothing
        done). The same steps, in the same order, as _run_epoch's loop of _train_step calls,
        in chunks of a few tens of milliseconds so that Ctrl-C still interrupts a long epoch;
        a batch whose gradients need the exact check gets it here, as in _step_compiled. The
        loss total is summed in batch order as there, so the History is the same to the bit."""
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

    def _loss_and_grads(self, x, t, w=None):
        """Forward, loss and backward on a validated batch (``w``: its sample weights, or None);
        leaves gradients in ``_grads``."""
        rows = x.shape[0]
        ws = self._train_workspace(rows)
        out = self._forward(x, ws, rows)
        g = ws.G[-1] if rows == ws.rows else ws.G[-1][:rows]
        value = self._loss_value(out, t, g, w)
        if not math.isfinite(value):
            raise _loss_diverged(value)
        self._backward(x, ws, rows)
        return value, out

    def _loss_value(self, out, t, g, w):
        """The loss of ``out`` against the dense targets ``t`` (sample weights ``w`` or None)
        and, when ``g`` is given, dL/d(out) into it: a kernel, or a Python loss's ``value`` and
        ``gradient``, whose results are held to the shape and finiteness the backward pass
        needs."""
        if self._loss_kind != L.CUSTOM_KIND:
            return self._be.loss(self._loss_kind, out, t, g, w, self.loss.param)
        name = type(self.loss).__name__
        value = self.loss.value(t, out)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"{name}.value() must return a number. Received: {value!r}")
        if g is not None:
            grad = self.loss.gradient(t, out)
            if not isinstance(grad, np.ndarray) or grad.shape != out.shape:
                raise TypeError(f"{name}.gradient() must return an array of the outputs' shape "
                                f"{out.shape}. Received: {type(grad).__name__} "
                                f"{getattr(grad, 'shape', '')}")
            np.copyto(g, grad, casting="same_kind")
            if not np.isfinite(g).all():
                raise FloatingPointError(f"{name}.gradient() returned NaN or inf")
        return float(value)

    def _train_step(self, x, t, w=None):
        """One optimizer step on a validated batch (``w``: its sample weights, or None); returns
        the loss. The batch's outputs are left in the training workspace (``_batch_outputs``)."""
        plan = self._compiled_step(x.shape[0])
        if plan is not None and w is None:        # the compiled plan has no sample weights
            value = self._step_compiled(plan, x, t, False)
            if value is not None:
                return value
        value, _ = self._loss_and_grads(x, t, w)
        self.optimizer.step(self._be, self._params, self._grads)
        return value

    def _batch_outputs(self, rows):
        """The outputs of the last training batch (a view into the workspace)."""
        Y = self._train_ws.Y[-1]
        return Y if rows == Y.shape[0] else Y[:rows]

    # ------------------------------------------------------------------ validation helpers
    def _check_built(self, what):
        if not self.built:
            raise ValueError(f"the model must be built before {what}: pass input_dim to "
                             f"Sequential(...) or call model.build(input_dim)")

    def _check_compiled(self, what):
        self._check_built(what)
        if self.loss is None:
            raise ValueError(f"call model.compile(loss=..., optimizer=...) before {what}")

    def _inputs(self, X: ArrayLike, name: str = "X") -> FloatArray:
        return V.float_matrix(name, X, self.dtype, width=self.input_dim)

    def _targets(self, y, rows, name="y"):
        T = self.loss.targets(y, self.output_dim, self.dtype, rows, name)
        # the kernels read (rows, outputs) from it: hold a custom Loss's targets() to that
        if (type(T) is not np.ndarray or T.shape != (rows, self.output_dim)
                or T.dtype != self.dtype or not T.flags.c_contiguous):
            raise TypeError(f"{type(self.loss).__name__}.targets() must return a C-contiguous "
                            f"{self.dtype.name} array of shape {(rows, self.output_dim)}. "
                            f"Received: {type(T).__name__} {getattr(T, 'dtype', '')}"
                            f"{getattr(T, 'shape', '')}")
        return T

    def _sample_weights(self, sample_weight, class_weight, T):
        """The per-sample weights (Keras' meaning: the loss is sum(w_i * loss_i) / n), from
        ``sample_weight`` (n,) and ``class_weight`` {class: weight} (multiplied when both are
        given), or None when neither is. A sample's class is its target's argmax with several
        outputs, its 0/1 target with one."""
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

    # ------------------------------------------------------------------ training
    @_exclusive
    def train_on_batch(self, x: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None,
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
        self._check_compiled("train_on_batch")
        weighted = sample_weight is not None or class_weight is not None
        if type(x) is np.ndarray and x.ndim == 2 and x.shape[0] > 0 and not weighted:
            plan = self._compiled_step(x.shape[0])       # build it (or grow it) for this batch
            if plan is not None:
                value = self._step_compiled(plan, x, y, True)
                if value is not None:
                    return value
        x = self._inputs(x, "x")
        t = self._targets(y, x.shape[0])
        return self._train_step(x, t, self._sample_weights(sample_weight, class_weight, t))

    @_exclusive
    def loss_and_gradients(self, x: ArrayLike, y: ArrayLike) -> tuple[float, list[FloatArray]]:
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
        self._check_compiled("loss_and_gradients")
        x = self._inputs(x, "x")
        t = self._targets(y, x.shape[0])
        value, _ = self._loss_and_grads(x, t)
        grads = []
        for d in self.dense_layers:
            grads += [d.dW.copy(), d.db.copy()]
        return value, grads

    @_exclusive
    def fit(self, X: Any, y: Optional[ArrayLike] = None, epochs: int = 1, batch_size: int = 32,
            validation_data: Optional[tuple[ArrayLike, ArrayLike]] = None,
            validation_split: float = 0.0, shuffle: bool = True, verbose: int = 1,
            callbacks: Optional[Sequence[Callback]] = None,
            sample_weight: Optional[ArrayLike] = None,
            class_weight: Optional[Mapping[int, float]] = None,
            steps_per_epoch: Optional[int] = None, initial_epoch: int = 0) -> History:
        """Train for ``epochs`` passes over ``(X, y)`` in mini-batches.

        Each epoch shuffles the samples (unless ``shuffle=False``) and takes one training step
        (see ``train_on_batch``) per batch of ``batch_size`` samples; the last batch may be
        smaller.

        Parameters
        ----------
        X : array_like of shape (n, input_dim), or an iterable of batches
            Training inputs, real and finite; or a generator or other iterable yielding
            batches ``(x, y)`` or ``(x, y, sample_weight)`` (then ``y`` is None and
            ``batch_size``, ``shuffle`` and the validation split do not apply).
        y : array_like
            Training targets: (n, output_dim); class labels (n,) for ``cross_entropy``; or
            (n,) with one output.
        epochs : int, default 1
            The epoch to stop before (the number of passes when ``initial_epoch`` is 0), >= 0.
        batch_size : int, default 32
            Samples per step, > 0 (at most the number of training samples is used).
        validation_data : tuple (X_val, y_val), optional
            Data scored after each epoch (the ``val_`` entries of the History). It takes
            precedence over ``validation_split``.
        validation_split : float, default 0.0
            Fraction in [0, 1) of the samples held out for validation: the last ones, before
            shuffling.
        shuffle : bool, default True
            Shuffle the training samples before each epoch (with the model's seed).
        verbose : {0, 1, 2}, default 1
            0 silent, 1 a progress bar per epoch, 2 one line per epoch.
        callbacks : list of Callback, optional
            ``fastnn.callbacks.Callback`` instances, called at the start and end of training
            and of each epoch, and after each batch.
        sample_weight : array_like of shape (n,), optional
            A weight >= 0 per sample: the loss is ``sum(w_i * loss_i) / n`` (Keras' meaning);
            weighted batches take the per-kernel path (the compiled plan has no weights).
        class_weight : dict of int to float, optional
            ``{class index: weight}``, multiplying ``sample_weight``; a sample's class is the
            argmax of its target (its 0/1 target with one output); unlisted classes weigh 1.
        steps_per_epoch : int, optional
            With an iterable of batches: the batches of one epoch, all epochs drawing from one
            iterator (which may be endless). Default: each epoch iterates the source anew to
            its end.
        initial_epoch : int, default 0
            The epoch to start from (to resume training): epochs ``initial_epoch`` to
            ``epochs - 1`` run, and the History counts from it.

        Returns
        -------
        History
            The mean training loss and metrics of each epoch, and their ``val_`` forms with
            validation data. Also kept as ``model.history``.

        Raises
        ------
        ValueError
            If the model is not compiled, an argument is out of range, the data has the wrong
            shape or holds NaN, inf or out-of-range targets, ``validation_data`` is not a pair,
            or ``validation_split`` leaves no sample on one side.
        TypeError
            If an argument has the wrong type (``callbacks`` not a list of Callback instances,
            data not real numbers, ...).
        FloatingPointError
            If the loss or a gradient becomes NaN or inf. The message names the epoch and batch
            and the weights keep their last finite values. With a ``TerminateOnNaN`` callback,
            training ends instead.

        Examples
        --------
        >>> import fastnn as fnn
        >>> from fastnn.datasets import make_xor
        >>> X, y = make_xor()
        >>> model = fnn.Sequential([fnn.Dense(8, activation="tanh"), fnn.Dense(2),
        ...                         fnn.Softmax()], input_dim=2, seed=0, backend="numpy")
        >>> model = model.compile(loss="cross_entropy", optimizer="adam", metrics=["accuracy"])
        >>> history = model.fit(X, y, epochs=5, batch_size=2, validation_split=0.25, verbose=0)
        >>> sorted(history.history), len(history.epoch)
        (['accuracy', 'loss', 'val_accuracy', 'val_loss'], 5)
        """
        self._check_compiled("fit")
        epochs = V.check_int("epochs", epochs, low=0)
        initial_epoch = V.check_int("initial_epoch", initial_epoch, low=0)
        if _is_batch_source(X):
            if y is not None or sample_weight is not None or class_weight is not None:
                raise TypeError("with an iterable of batches, y, sample_weight and "
                                "class_weight come from its batches: pass y=None")
            if steps_per_epoch is not None:
                steps_per_epoch = V.check_positive_int("steps_per_epoch", steps_per_epoch)
            verbose = V.check_int("verbose", verbose, low=0)
            return self._fit_source(X, epochs, steps_per_epoch, initial_epoch, verbose,
                                    _check_callbacks(callbacks), validation_data)
        if steps_per_epoch is not None:
            raise TypeError("steps_per_epoch applies to an iterable of batches; with arrays, "
                            "batch_size sets the steps")
        batch_size = V.check_positive_int("batch_size", batch_size)
        validation_split = V.check_float("validation_split", validation_split,
                                         low=0.0, high=1.0, high_open=True)
        shuffle = V.check_bool("shuffle", shuffle)
        verbose = V.check_int("verbose", verbose, low=0)
        callbacks = _check_callbacks(callbacks)
        X = self._inputs(X)
        T = self._targets(y, X.shape[0])
        assert self.loss is not None                  # compiled (checked above)
        warn_about_targets(self.loss, y)
        W = self._sample_weights(sample_weight, class_weight, T)
        X, T, W, val = self._split_validation(X, T, W, validation_data, validation_split)
        n = X.shape[0]
        batch = min(batch_size, n)
        self._train_workspace(batch)
        Xs, Ts = ((aligned_empty(X.shape, X.dtype), aligned_empty(T.shape, T.dtype)) if shuffle
                  else (X, T))
        Ws = aligned_empty(W.shape, W.dtype) if shuffle and W is not None else W
        history = self.history = History()
        self.stop_training = False
        for cb in callbacks:
            cb.set_model(self)
            cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            if shuffle:
                order = self._shuffle_rng.permutation(n)
                np.take(X, order, axis=0, out=Xs)
                np.take(T, order, axis=0, out=Ts)
                if W is not None:
                    np.take(W, order, out=Ws)
            logs = self._run_epoch(Xs, Ts, Ws, batch, epoch, epochs, verbose, callbacks, val)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            history.append(epoch, logs)
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end()
        return history

    def _fit_source(self, source, epochs, steps_per_epoch, initial_epoch, verbose, callbacks,
                    validation_data):
        """fit on an iterable of batches: each batch validated as train_on_batch does."""
        _, _, _, val = self._split_validation(None, None, None, validation_data, 0.0)
        history = self.history = History()
        self.stop_training = False
        shared = iter(source) if steps_per_epoch is not None else None
        for cb in callbacks:
            cb.set_model(self)
            cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            dry: list[bool] = []
            batches = self._source_batches(shared if shared is not None else iter(source),
                                           steps_per_epoch, epoch, dry)
            logs = self._run_batches(batches, None, epoch, epochs, verbose, callbacks, val)
            if dry:
                warnings.warn(f"the batch source ran out in epoch {epoch + 1}: training "
                              f"stops (give steps_per_epoch the batches one epoch has, or a "
                              f"source that starts anew)", UserWarning, stacklevel=4)
                self.stop_training = True
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            history.append(epoch, logs)
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end()
        return history

    def _source_batches(self, iterator, steps, epoch, dry):
        """The validated (x, t, w) batches of one epoch from ``iterator``; appends to ``dry``
        when it ends before ``steps`` batches (or before any)."""
        index = 0
        while steps is None or index < steps:
            try:
                item = next(iterator)
            except StopIteration:
                if steps is not None or index == 0:
                    dry.append(True)
                return
            where = f"batch {index + 1} of epoch {epoch + 1}"
            if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
                raise ValueError(f"each batch must be a tuple (x, y) or (x, y, sample_weight). "
                                 f"Received: {type(item).__name__} as {where}")
            x = self._inputs(item[0], f"x ({where})")
            t = self._targets(item[1], x.shape[0], f"y ({where})")
            w = (None if len(item) == 2 or item[2] is None
                 else self._sample_weights(item[2], None, t))
            yield x, t, w
            index += 1

    def _split_validation(self, X, T, W, validation_data, validation_split
                          ) -> tuple[FloatArray, FloatArray, Any, Any]:
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (X_val, y_val). "
                                 f"Received: {type(validation_data).__name__}")
            Xv = self._inputs(validation_data[0], "X_val")
            return X, T, W, (Xv, self._targets(validation_data[1], Xv.shape[0], "y_val"))
        if validation_split > 0.0:
            n_val = int(round(X.shape[0] * validation_split))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves {n_val} of "
                                 f"{X.shape[0]} samples for validation: need at least one "
                                 f"sample on each side")
            # the held-out samples are scored unweighted, as validation_data is
            return (X[:-n_val], T[:-n_val], None if W is None else W[:-n_val],
                    (X[-n_val:], T[-n_val:]))
        return X, T, W, None

    def _run_epoch(self, Xs, Ts, Ws, batch, epoch, epochs, verbose, callbacks, val):
        """One pass over the (shuffled) data, ``Ws`` its sample weights or None; returns the
        epoch's logs."""
        n = Xs.shape[0]
        if not callbacks and not self.metrics and verbose == 0 and Ws is None:
            total = self._epoch_compiled(Xs, Ts, batch, epoch)
            if total is not None:
                return self._with_validation({"loss": total / n}, val)
        batches = ((Xs[i:i + batch], Ts[i:i + batch], None if Ws is None else Ws[i:i + batch])
                   for i in range(0, n, batch))
        return self._run_batches(batches, n, epoch, epochs, verbose, callbacks, val)

    def _run_batches(self, batches, n, epoch, epochs, verbose, callbacks, val):
        """One epoch over validated ``(x, t, w)`` batches (``n`` samples in all, or None when
        a generator does not say); returns the epoch's logs."""
        started = time.perf_counter()
        threshold = self._threshold()
        sums = dict.fromkeys(["loss"] + self.metrics, 0.0)
        seen = 0
        progress = EpochProgress(epoch, epochs, n, verbose)
        try:
            for index, (xb, tb, wb) in enumerate(batches):
                try:
                    value = self._train_step(xb, tb, wb)
                except FloatingPointError as exc:
                    if not any(isinstance(cb, TerminateOnNaN) for cb in callbacks):
                        raise FloatingPointError(
                            f"epoch {epoch + 1}, batch {index + 1}: {exc}") from None
                    for cb in callbacks:
                        cb.on_batch_end(index, {"loss": math.nan})
                    self.stop_training = True
                    break
                rows = xb.shape[0]
                seen += rows
                sums["loss"] += value * rows
                if self.metrics:
                    out = self._batch_outputs(rows)
                    for name, item in zip(self.metrics, self._metric_items):
                        sums[name] += M.batch_metric_sum(item, out, tb, threshold)
                progress.update(rows, sums)
                for cb in callbacks:
                    cb.on_batch_end(index, {"loss": value})
                if self.stop_training:
                    break
            logs = self._with_validation(
                {key: total / max(seen, 1) for key, total in sums.items()}, val)
            progress.close(logs, time.perf_counter() - started)
        finally:
            progress.close_quietly()
        return logs

    def _with_validation(self, logs, val):
        """The epoch's logs with the ``val_`` scores added when there is validation data."""
        if val is not None:
            scores = self._evaluate_arrays(*val)
            logs.update({"val_" + key: value for key, value in scores.items()})
        return logs

    # ------------------------------------------------------------------ inference
    def _inference_workspace(self, rows):
        # one workspace per thread: predict may run in several threads at once
        ws = getattr(self._local, "ws", None)
        if ws is None or ws.rows < rows:
            ws = Workspace(self._plan, rows, self.dtype, with_grads=False)
            self._local.ws = ws
        return ws

    def _predict_array(self, X, batch_size):
        n = X.shape[0]
        out = np.empty((n, self.output_dim), dtype=self.dtype)
        chunk = min(n, batch_size)
        ws = self._inference_workspace(chunk)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            self._forward(X[start:stop], ws, stop - start, out=out[start:stop])
        return out

    def predict(self, X: ArrayLike, batch_size: Optional[int] = None) -> FloatArray:
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
        if batch_size is None:
            # Small, well-formed inputs take one compiled call (same results, no overhead).
            plan = self._forward_plan
            if plan is not None:
                out = plan.predict(X)
                if out is not None:
                    return out
            batch_size = 4096
        self._check_built("predict")
        batch_size = V.check_positive_int("batch_size", batch_size)
        return self._predict_array(self._inputs(X), batch_size)

    def _threshold(self):
        # outputs are probabilities after sigmoid/softmax/step; logits are split at 0
        return 0.5 if self.final_activation in (A.SIGMOID, A.SOFTMAX, A.STEP) else 0.0

    def _evaluate_arrays(self, X, T, batch_size=4096, W=None):
        out = self._predict_array(X, batch_size)
        n = X.shape[0]
        scores = {"loss": self._loss_value(out, T, None, W)}
        threshold = self._threshold()
        for name, item in zip(self.metrics, self._metric_items):
            scores[name] = M.batch_metric_sum(item, out, T, threshold) / n
        return scores

    def evaluate(self, X: ArrayLike, y: ArrayLike, batch_size: int = 4096,
                 sample_weight: Optional[ArrayLike] = None) -> dict[str, float]:
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

        Returns
        -------
        dict of str to float
            ``{"loss": ..., metric: ...}`` for each metric given to ``compile``.

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
        self._check_compiled("evaluate")
        batch_size = V.check_positive_int("batch_size", batch_size)
        X = self._inputs(X)
        T = self._targets(y, X.shape[0])
        return self._evaluate_arrays(X, T, batch_size, self._sample_weights(sample_weight, None, T))

    # ------------------------------------------------------------------ the low-level loop
    def __call__(self, x: ArrayLike) -> FloatArray:
        """``model(x)``: inference on all of ``x`` at once (``predict`` without batching)."""
        self._check_built("model(x)")
        X = self._inputs(x, "x")
        return self._predict_array(X, X.shape[0])

    @_exclusive
    def forward(self, x: ArrayLike, training: bool = True) -> FloatArray:
        """The outputs for the batch ``x``; with ``training``, keeping what ``backward`` needs.

        For custom training loops (a GAN): ``out = model.forward(x)``, a loss and its gradient
        ``dout`` (``fastnn.losses.get(name).value_and_grad(y, out)``), ``model.backward(dout)``,
        then ``optimizer.step(model)``. ``backward`` follows the latest ``forward``. The final
        activation is not fused with any loss here: ``dout`` is dL/d(output).

        Returns
        -------
        ndarray of shape (n, output_dim)
            A new array, in the model's dtype.

        Examples
        --------
        >>> import numpy as np
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(2, activation="sigmoid")], input_dim=3, seed=0,
        ...                        backend="numpy")
        >>> out = model.forward(np.ones((4, 3)))
        >>> dx = model.backward(out - 1.0)                  # dL/dout of 0.5 * sum((out - 1)^2)
        >>> dx.shape, [g.shape for g in model.grads]
        ((4, 3), [(3, 2), (2,)])
        >>> opt = fnn.SGD(lr=0.1)
        >>> opt.step(model); model.zero_grad()
        """
        self._check_built("forward")
        training = V.check_bool("training", training)
        X = self._inputs(x, "x")
        if not training:
            self._last_forward = None
            return self._predict_array(X, X.shape[0])
        rows = X.shape[0]
        ws = self._train_workspace(rows)
        out = self._forward(X, ws, rows, fused=False)
        self._last_forward = (X, rows)
        return out.copy()

    @_exclusive
    def backward(self, dout: ArrayLike) -> FloatArray:
        """Backpropagate ``dout`` = dL/d(output) of the latest ``forward(x, training=True)``:
        the parameter gradients are ADDED to ``model.grads`` (``zero_grad`` clears them); returns
        dL/dx, shaped like x.

        Raises
        ------
        ValueError
            If no training forward pass precedes it, or ``dout`` is not (n, output_dim) for
            that pass's n rows, or holds NaN or inf.
        """
        if self._last_forward is None:
            raise ValueError("backward needs a forward(x, training=True) of the same batch first")
        X, rows = self._last_forward
        ws = self._train_workspace(rows)
        dout = V.float_matrix("dout", dout, self.dtype, width=self.output_dim)
        if dout.shape[0] != rows:
            raise ValueError(f"dout must have the {rows} rows of the forward pass's x. "
                             f"Received: dout with shape {dout.shape}")
        ws.G[-1][:rows] = dout
        dx = np.empty((rows, X.shape[1]), dtype=self.dtype)
        self._backward(X, ws, rows, fused=False, dx0=dx)
        self._grad_sum += self._grads
        return dx

    @property
    def grads(self) -> list[FloatArray]:
        """The gradients ``backward`` accumulated, as views shaped like ``get_weights()``."""
        self._check_built("grads")
        views, offset = [], 0
        for d in self.dense_layers:
            for w in (d.W, d.b):
                views.append(self._grad_sum[offset:offset + w.size].reshape(w.shape))
                offset += w.size
        return views

    def zero_grad(self) -> None:
        """Set the gradients ``backward`` accumulates to zero."""
        self._check_built("zero_grad")
        self._grad_sum[...] = 0

    def _optimizer_arrays(self, optimizer: Any) -> tuple[Any, FloatArray, FloatArray]:
        """For ``optimizer.step(model)``: the backend, the flat parameters and the accumulated
        gradients; the optimizer is built for them on first use."""
        self._check_built("optimizer.step(model)")
        if optimizer._dtype is None:
            optimizer.build(self._params.size, self.dtype)
        elif optimizer._dtype != self.dtype or any(
                a is not None and a.shape != self._params.shape
                for a in optimizer.state().values()):
            raise ValueError(f"{optimizer!r} was built for other parameters than this model's "
                             f"{self._params.size} {self.dtype.name} weights: use one "
                             f"optimizer per model")
        return self._be, self._params, self._grad_sum

    # ------------------------------------------------------------------ weights and files
    @property
    def dense_layers(self) -> list[Dense]:
        """The Dense layers, in order (built models only)."""
        return [step.dense for step in self._plan if step.dense is not None]

    def get_weights(self) -> list[FloatArray]:
        """The weights of the Dense layers, in order, as copies.

        Returns
        -------
        list of ndarray
            ``[W1, b1, W2, b2, ...]``: ``W_k`` of shape (inputs, units) and ``b_k`` of shape
            (units,), in the model's dtype.

        Raises
        ------
        ValueError
            If the model is not built.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(4, activation="relu"), fnn.Dense(2)],
        ...                        input_dim=3, seed=0, backend="numpy")
        >>> [w.shape for w in model.get_weights()]
        [(3, 4), (4,), (4, 2), (2,)]
        """
        self._check_built("get_weights")
        weights = []
        for d in self.dense_layers:
            weights += d.get_weights()
        return weights

    @_exclusive
    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        """Set all weights, in place, from a list shaped like ``get_weights()``.

        Parameters
        ----------
        weights : list or tuple of array_like
            ``[W1, b1, W2, b2, ...]``, real and finite; converted to the model's dtype.

        Raises
        ------
        ValueError
            If the model is not built, ``weights`` is not a list or tuple of two arrays per
            Dense layer, a shape differs, or a value is NaN or inf.
        TypeError
            If an array does not hold real numbers.

        Examples
        --------
        >>> import numpy as np
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(2)], input_dim=2, backend="numpy")
        >>> model.set_weights([np.eye(2), np.ones(2)])
        >>> model.predict([[1.0, 2.0]])                  # x @ I + 1
        array([[2., 3.]], dtype=float32)
        """
        self._check_built("set_weights")
        layers = self.dense_layers
        if not isinstance(weights, (list, tuple)) or len(weights) != 2 * len(layers):
            count = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
            raise ValueError(f"weights must be a list of {2 * len(layers)} arrays "
                             f"[W1, b1, ...]. Received: {count}")
        checked = [d.checked_weights(weights[2 * i:2 * i + 2]) for i, d in enumerate(layers)]
        for d, (W, b) in zip(layers, checked):         # all checked first: a refusal changes nothing
            d.W[...] = W
            d.b[...] = b
        if self.optimizer is not None:
            self.optimizer.verify_next_step()    # the screen assumes weights training made

    def count_params(self) -> int:
        """The number of parameters: ``inputs * units + units`` summed over the Dense layers.

        Raises
        ------
        ValueError
            If the model is not built.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(4), fnn.Dense(2)], input_dim=3, backend="numpy")
        >>> model.count_params()                         # (3 * 4 + 4) + (4 * 2 + 2)
        26
        """
        self._check_built("count_params")
        return int(self._params.size)

    def summary(self, print_fn: Callable[[str], Any] = print) -> None:
        """Print a table of the layers with their output shapes and parameter counts.

        An activation layer fused into the Dense layer before it shows as that layer's
        activation.

        Parameters
        ----------
        print_fn : callable, default print
            Called once with the whole table as a string.

        Raises
        ------
        ValueError
            If the model is not built.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(4, activation="relu"), fnn.Dense(2),
        ...                         fnn.Softmax()], input_dim=3, backend="numpy")
        >>> model.summary()                              # doctest: +NORMALIZE_WHITESPACE
        Sequential  input_dim=3  dtype=float32  backend=numpy
        -----  ----------  ------------  ------
        Layer  Activation  Output shape  Params
        -----  ----------  ------------  ------
        Dense  relu        (None, 4)     16
        Dense  softmax     (None, 2)     10
        -----  ----------  ------------  ------
        Total params: 26
        """
        self._check_built("summary")
        rows = [("Layer", "Activation", "Output shape", "Params")]
        width: int = self.input_dim     # type: ignore[assignment]  # built by now
        for step in self._plan:
            name = "Dense" if step.dense is not None else "Activation"
            params = step.dense.n_params(width) if step.dense is not None else 0
            for act, _ in step.chain or [(step.act, step.param)]:
                rows.append((name, A.NAMES[act], f"(None, {step.width})", f"{params:,}"))
            width = step.width
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "  ".join("-" * w for w in widths)
        text = [f"Sequential  input_dim={self.input_dim}  dtype={self.dtype.name}  "
                f"backend={self.backend}", line]
        for r in rows:
            text.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)))
            if r is rows[0]:
                text.append(line)
        text += [line, f"Total params: {self.count_params():,}"]
        print_fn("\n".join(text))

    def get_config(self) -> dict[str, Any]:
        """The architecture as a JSON-serialisable dict (weights, backend and compile settings
        not included).

        Returns
        -------
        dict
            ``{"layers": [layer configs], "input_dim": ..., "seed": ..., "dtype": ...}``; each
            layer config is what ``fastnn.layers.layer_from_config`` rebuilds the layer from.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(2, activation="relu")], input_dim=3, seed=0,
        ...                        backend="numpy")
        >>> model.get_config()                           # doctest: +NORMALIZE_WHITESPACE
        {'layers': [{'class': 'Dense', 'units': 2, 'activation': 'relu'}],
         'input_dim': 3, 'seed': 0, 'dtype': 'float32'}
        """
        return {"layers": [layer.get_config() for layer in self.layers],
                "input_dim": self.input_dim, "seed": self.seed, "dtype": self.dtype.name}

    def save(self, path: PathLike) -> None:
        """Write the model to ``path`` in the fastnn file format (``fastnn.io``; never pickle).

        The file holds the architecture, the weights, and the compile settings with the
        optimizer state, so ``fastnn.load(path)`` can resume training. The write is atomic (a
        new temporary file in the same directory, fsynced, then renamed over ``path``); an
        existing file keeps its permission bits, and a ``path`` that is a symlink stays one
        (its target is replaced).

        Parameters
        ----------
        path : str or os.PathLike
            The file to write.

        Raises
        ------
        ValueError
            If the model is not built.
        TypeError
            If ``path`` is not a str or os.PathLike.
        IsADirectoryError
            If ``path`` is a directory (also a ValueError).
        ValueError
            If ``path`` names something other than a regular file (a FIFO, a device), or the
            model exceeds the format's limits (10,000 layers, a step count of 2**53).
        OSError
            If the file cannot be written; ``path`` is then untouched.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(2, activation="relu")], input_dim=3, seed=0,
        ...                        backend="numpy")
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     model.save(os.path.join(tmp, "model.fnn"))
        ...     same = fnn.load(os.path.join(tmp, "model.fnn"), backend="numpy")
        >>> x = np.ones((1, 3))
        >>> bool(np.array_equal(same.predict(x), model.predict(x)))
        True
        """
        self._check_built("save")
        fnn_io.save_model(self, path)

    def __reduce__(self):
        # Pickle through the model file format: no module or thread-local state is pickled,
        # and unpickling runs the same checks as fastnn.load.
        if not self.built:
            return (Sequential, (self.layers, None, self.seed, self.dtype.name, self.backend))
        return (fnn_io.model_from_bytes, (fnn_io.model_to_bytes(self),))

    def __repr__(self) -> str:
        return (f"Sequential({self.layers!r}, input_dim={self.input_dim}, "
                f"dtype={self.dtype.name!r}, backend={self.backend!r})")
