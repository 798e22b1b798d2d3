"""``Sequential``: a stack of layers trained by backpropagation and gradient descent.

The model owns all memory a training step touches. Parameters live in one flat buffer and
gradients in another of the same layout (each Dense layer holds views), so the optimizer updates
everything in one fused kernel call. Activations and their gradients live in a workspace sized for
the batch; a step only calls kernels on these buffers, and allocates nothing.

An *execution plan* folds a standalone activation layer into the Dense layer before it (when that
layer is linear), so ``[Dense(10), Softmax()]`` runs as one fused ``dense_forward``.
"""

import math
import threading
import time

import numpy as np

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


class Step:
    """One kernel call of the plan: an optional Dense layer, then an activation."""

    __slots__ = ("dense", "act", "param", "width")

    def __init__(self, dense, act, param, width):
        self.dense, self.act, self.param, self.width = dense, act, param, width


class Workspace:
    """Per-step output buffers ``Y`` and gradient buffers ``G`` for up to ``rows`` samples."""

    def __init__(self, plan, rows, dtype, with_grads):
        self.rows = rows
        self.Y = [np.empty((rows, s.width), dtype=dtype) for s in plan]
        self.G = [np.empty((rows, s.width), dtype=dtype) for s in plan] if with_grads else None


class History:
    """What ``fit`` returns: ``history`` maps "loss", each metric and their "val_" forms to
    one value per epoch; ``epoch`` lists the epoch numbers."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def plot(self, path, keys=None):
        """Save the curves (loss, and accuracy or other metrics, with their val_ forms) as a PNG.

        Needs matplotlib (``pip install fastnn[plot]``).
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

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _loss_diverged(value):
    return FloatingPointError(f"the loss is {value}: training diverged (weights left "
                              f"unchanged). Lower the learning rate or scale the inputs.")


def _check_callbacks(callbacks):
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
    """A feed-forward network: input layer, hidden layers, output layer.

    Parameters
    ----------
    layers : list of Layer
        ``Dense`` layers and activation layers, in order.
    input_dim : int, optional
        Number of input features. The model is built (weights created) when it is known.
    seed : int, optional
        Seeds weight initialisation and shuffling: the same seed gives the same weights.
    dtype : {"float32", "float64"}
    backend : {"fast", "numpy"}
        "fast" runs the compiled kernels; "numpy" the pure-NumPy reference.
    """

    # Train through the compiled whole-step plan when the backend has one (tests switch it off
    # to compare with the per-kernel path).
    _compiled_steps = True

    def __init__(self, layers=None, input_dim=None, seed=None, dtype="float32", backend="fast"):
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
        self._plan = []
        self._forward_plan = None
        self._train_ws = None
        self._train_plan = None
        self._local = threading.local()
        if layers is not None:
            if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
                raise TypeError(f"layers must be a list of layers. Received: layers={layers!r}")
            for layer in layers:
                self.add(layer)
        if input_dim is not None:
            self.build(input_dim)

    # ------------------------------------------------------------------ building
    def add(self, layer):
        """Append a layer (before the model is built)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"layer must be a fastnn layer such as Dense(10). "
                            f"Received: layer={layer!r}")
        if self.built:
            raise ValueError("cannot add layers to a model that is already built")
        if isinstance(layer, Dense) and layer.built:
            raise ValueError(f"layer {layer!r} already belongs to a built model")
        self.layers.append(layer)

    @property
    def built(self):
        return self.input_dim is not None

    def build(self, input_dim):
        """Create the weights for ``input_dim`` input features."""
        input_dim = V.check_positive_int("input_dim", input_dim)
        if self.built:
            raise ValueError(f"model is already built with input_dim={self.input_dim}")
        if not any(isinstance(layer, Dense) for layer in self.layers):
            raise ValueError("a Sequential model needs at least one Dense layer. "
                             f"Received: layers={self.layers!r}")
        self._plan = self._make_plan(input_dim)
        sizes, width = [], input_dim
        for step in self._plan:
            if step.dense is not None:
                sizes.append(step.dense.n_params(width))
            width = step.width
        self._params = np.zeros(sum(sizes), dtype=self.dtype)
        self._grads = np.zeros_like(self._params)
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
        steps = [(s.dense.W if s.dense else None, s.dense.b if s.dense else None, s.act,
                  float(s.param), s.width) for s in self._plan]
        return plan_class(steps, self.input_dim, self.dtype.type)

    def _make_plan(self, input_dim):
        plan, width = [], input_dim
        for layer in self.layers:
            if isinstance(layer, Dense):
                plan.append(Step(layer, layer.act, layer.param, layer.units))
                width = layer.units
            elif plan and plan[-1].dense is not None and plan[-1].act == A.LINEAR:
                plan[-1].act, plan[-1].param = layer.act, layer.param
            else:
                plan.append(Step(None, layer.act, layer.param, width))
        return plan

    @property
    def output_dim(self):
        return self._plan[-1].width

    @property
    def final_activation(self):
        return self._plan[-1].act

    def compile(self, loss, optimizer="sgd", metrics=None):
        """Choose the loss (name or Loss), the optimizer (name or instance) and metric names."""
        self._check_built("compile")
        self.loss = L.get_loss(loss)
        self.optimizer = get_optimizer(optimizer)
        self.metrics = M.check_metrics(metrics)
        self._loss_kind = self.loss.kind(self.final_activation)
        self.optimizer.build(self._params.size, self.dtype)
        self._train_plan = None                  # built again for this loss and optimizer
        return self

    # ------------------------------------------------------------------ kernels over the plan
    def _forward(self, x, ws, rows, out=None):
        """Run the plan on ``x`` (rows, input_dim); returns the final output view."""
        be, last = self._be, len(self._plan) - 1
        inp = x
        for i, step in enumerate(self._plan):
            if i == last and out is not None:
                y = out
            else:
                y = ws.Y[i] if rows == ws.rows else ws.Y[i][:rows]
            if step.dense is not None:
                be.dense_forward(inp, step.dense.W, step.dense.b, step.act, step.param, y)
            else:
                be.activation_forward(inp, step.act, step.param, y)
            inp = y
        return inp

    def _backward(self, x, ws, rows):
        """Backpropagate ``ws.G[-1]`` (already holding dL/d output) into the gradient buffer."""
        be, plan = self._be, self._plan
        full = rows == ws.rows
        for i in range(len(plan) - 1, -1, -1):
            step = plan[i]
            act = A.LINEAR if i == len(plan) - 1 and self._loss_kind in L.FUSED_KINDS else step.act
            y = ws.Y[i] if full else ws.Y[i][:rows]
            g = ws.G[i] if full else ws.G[i][:rows]
            if i > 0:
                inp = ws.Y[i - 1] if full else ws.Y[i - 1][:rows]
                dx = ws.G[i - 1] if full else ws.G[i - 1][:rows]
            else:
                inp, dx = x, None
            if step.dense is not None:
                d = step.dense
                be.dense_backward(inp, d.W, y, g, act, step.param, g, d.dW, d.db, dx)
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
        if plan_class is None or type(opt) not in (SGD, Adam):
            return None
        kind, state = (0, (opt._velocity,)) if type(opt) is SGD else (1, (opt._m, opt._v))
        steps = [(s.dense.W, s.dense.b, s.dense.dW, s.dense.db, s.act, float(s.param), s.width)
                 if s.dense is not None else (None, None, None, None, s.act, float(s.param),
                                              s.width) for s in self._plan]
        onehot = np.zeros((ws.rows, self.output_dim), dtype=self.dtype)
        screen = math.sqrt(float(np.finfo(self.dtype).max)) * 1e-3   # as check_update
        return plan_class(steps, self.input_dim, self.dtype.type, self._loss_kind,
                          self._loss_kind in L.FUSED_KINDS, ws.Y, ws.G, self._params,
                          self._grads, kind, state, onehot, screen)

    def _step_compiled(self, plan, x, t, check):
        """One step through the compiled plan; the loss, or None if it refused (x, t)."""
        opt = self.optimizer
        if type(opt) is SGD:
            value = plan.step(x, t, check, opt.lr, opt.momentum, 1.0 if opt.nesterov else 0.0,
                              0.0, opt.weight_decay, 0)
        else:
            value = plan.step(x, t, check, opt.lr, opt.beta1, opt.beta2, opt.eps,
                              opt.weight_decay, opt.iterations + 1)
        if value is None:
            return None
        status = plan.status
        if status == 0:
            if type(opt) is Adam:
                opt.iterations += 1
        elif status == 1:
            raise _loss_diverged(value)
        else:                    # a gradient is huge or not finite: the exact check decides
            opt.step(self._be, self._params, self._grads)
        return value

    def _loss_and_grads(self, x, t):
        """Forward, loss and backward on a validated batch; leaves gradients in ``_grads``."""
        rows = x.shape[0]
        ws = self._train_workspace(rows)
        out = self._forward(x, ws, rows)
        g = ws.G[-1] if rows == ws.rows else ws.G[-1][:rows]
        value = self._be.loss(self._loss_kind, out, t, g)
        if not math.isfinite(value):
            raise _loss_diverged(value)
        self._backward(x, ws, rows)
        return value, out

    def _train_step(self, x, t):
        """One optimizer step on a validated batch; returns the loss. The batch's outputs are
        left in the training workspace (``_batch_outputs``)."""
        plan = self._compiled_step(x.shape[0])
        if plan is not None:
            value = self._step_compiled(plan, x, t, False)
            if value is not None:
                return value
        value, _ = self._loss_and_grads(x, t)
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

    def _inputs(self, X, name="X"):
        return V.float_matrix(name, X, self.dtype, width=self.input_dim)

    def _targets(self, y, rows, name="y"):
        return self.loss.targets(y, self.output_dim, self.dtype, rows, name)

    # ------------------------------------------------------------------ training
    def train_on_batch(self, x, y):
        """One optimizer step on the batch ``(x, y)``; returns the batch loss (before the step)."""
        plan = self._train_plan
        if plan and type(x) is np.ndarray and x.ndim == 2 and 0 < x.shape[0] <= plan.capacity:
            # Arrays already in the model's form (labels as int64) go straight to the compiled
            # step, which checks them itself; anything else is validated first. (A plan exists
            # only for a compiled model, so the checks below are implied.)
            value = self._step_compiled(plan, x, y, True)
            if value is not None:
                return value
        self._check_compiled("train_on_batch")
        if type(x) is np.ndarray and x.ndim == 2 and x.shape[0] > 0:
            plan = self._compiled_step(x.shape[0])       # build it (or grow it) for this batch
            if plan is not None:
                value = self._step_compiled(plan, x, y, True)
                if value is not None:
                    return value
        x = self._inputs(x, "x")
        t = self._targets(y, x.shape[0])
        return self._train_step(x, t)

    def loss_and_gradients(self, x, y):
        """The loss on ``(x, y)`` and its gradients, shaped like ``get_weights()``; no update."""
        self._check_compiled("loss_and_gradients")
        x = self._inputs(x, "x")
        t = self._targets(y, x.shape[0])
        value, _ = self._loss_and_grads(x, t)
        grads = []
        for d in self.dense_layers:
            grads += [d.dW.copy(), d.db.copy()]
        return value, grads

    def fit(self, X, y, epochs=1, batch_size=32, validation_data=None, validation_split=0.0,
            shuffle=True, verbose=1, callbacks=None):
        """Train for ``epochs`` passes over ``(X, y)`` in mini-batches of ``batch_size``.

        Returns a History with the mean training loss and metrics per epoch (and ``val_``
        entries with validation data). ``validation_split`` holds out the last fraction of the
        samples, before shuffling. verbose: 0 silent, 1 a progress bar, 2 one line per epoch.
        ``callbacks``: a list of ``fastnn.callbacks.Callback``. A non-finite loss raises
        FloatingPointError naming the epoch and batch (the weights keep their last finite
        values), or, with the TerminateOnNaN callback, ends training.
        """
        self._check_compiled("fit")
        epochs = V.check_int("epochs", epochs, low=0)
        batch_size = V.check_positive_int("batch_size", batch_size)
        validation_split = V.check_float("validation_split", validation_split,
                                         low=0.0, high=1.0, high_open=True)
        shuffle = V.check_bool("shuffle", shuffle)
        verbose = V.check_int("verbose", verbose, low=0)
        callbacks = _check_callbacks(callbacks)
        X = self._inputs(X)
        T = self._targets(y, X.shape[0])
        X, T, val = self._split_validation(X, T, validation_data, validation_split)
        n = X.shape[0]
        batch = min(batch_size, n)
        self._train_workspace(batch)
        Xs, Ts = (np.empty_like(X), np.empty_like(T)) if shuffle else (X, T)
        history = self.history = History()
        self.stop_training = False
        for cb in callbacks:
            cb.set_model(self)
            cb.on_train_begin()
        for epoch in range(epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            if shuffle:
                order = self._shuffle_rng.permutation(n)
                np.take(X, order, axis=0, out=Xs)
                np.take(T, order, axis=0, out=Ts)
            logs = self._run_epoch(Xs, Ts, batch, epoch, epochs, verbose, callbacks, val)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            history.append(epoch, logs)
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end()
        return history

    def _split_validation(self, X, T, validation_data, validation_split):
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (X_val, y_val). "
                                 f"Received: {type(validation_data).__name__}")
            Xv = self._inputs(validation_data[0], "X_val")
            return X, T, (Xv, self._targets(validation_data[1], Xv.shape[0], "y_val"))
        if validation_split > 0.0:
            n_val = int(round(X.shape[0] * validation_split))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves {n_val} of "
                                 f"{X.shape[0]} samples for validation: need at least one "
                                 f"sample on each side")
            return X[:-n_val], T[:-n_val], (X[-n_val:], T[-n_val:])
        return X, T, None

    def _run_epoch(self, Xs, Ts, batch, epoch, epochs, verbose, callbacks, val):
        """One pass over the (shuffled) data; returns the epoch's logs."""
        n = Xs.shape[0]
        started = time.perf_counter()
        threshold = self._threshold()
        sums = dict.fromkeys(["loss"] + self.metrics, 0.0)
        seen = 0
        progress = EpochProgress(epoch, epochs, n, verbose)
        try:
            for index, start in enumerate(range(0, n, batch)):
                xb, tb = Xs[start:start + batch], Ts[start:start + batch]
                try:
                    value = self._train_step(xb, tb)
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
                    for name in self.metrics:
                        sums[name] += M.metric_sum(name, out, tb, threshold)
                progress.update(rows, sums)
                for cb in callbacks:
                    cb.on_batch_end(index, {"loss": value})
                if self.stop_training:
                    break
            logs = {key: total / max(seen, 1) for key, total in sums.items()}
            if val is not None:
                scores = self._evaluate_arrays(*val)
                logs.update({"val_" + key: value for key, value in scores.items()})
            progress.close(logs, time.perf_counter() - started)
        finally:
            progress.close_quietly()
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

    def predict(self, X, batch_size=None):
        """The model's outputs for ``X`` (n, input_dim): probabilities after a final
        softmax/sigmoid, raw values otherwise. ``batch_size`` rows are computed at a time
        (default 4096). Safe to call from several threads at once."""
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

    def _evaluate_arrays(self, X, T, batch_size=4096):
        out = self._predict_array(X, batch_size)
        n = X.shape[0]
        scores = {"loss": self._be.loss(self._loss_kind, out, T, None)}
        threshold = self._threshold()
        for name in self.metrics:
            scores[name] = M.metric_sum(name, out, T, threshold) / n
        return scores

    def evaluate(self, X, y, batch_size=4096):
        """``{"loss": ..., metric: ...}`` on ``(X, y)``, means over all samples."""
        self._check_compiled("evaluate")
        batch_size = V.check_positive_int("batch_size", batch_size)
        X = self._inputs(X)
        return self._evaluate_arrays(X, self._targets(y, X.shape[0]), batch_size)

    # ------------------------------------------------------------------ weights and files
    @property
    def dense_layers(self):
        return [step.dense for step in self._plan if step.dense is not None]

    def get_weights(self):
        """``[W1, b1, W2, b2, ...]`` for the Dense layers in order (copies)."""
        self._check_built("get_weights")
        weights = []
        for d in self.dense_layers:
            weights += d.get_weights()
        return weights

    def set_weights(self, weights):
        """Set all weights from a list shaped like ``get_weights()``."""
        self._check_built("set_weights")
        layers = self.dense_layers
        if not isinstance(weights, (list, tuple)) or len(weights) != 2 * len(layers):
            count = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
            raise ValueError(f"weights must be a list of {2 * len(layers)} arrays "
                             f"[W1, b1, ...]. Received: {count}")
        for i, d in enumerate(layers):
            d.set_weights(weights[2 * i:2 * i + 2])

    def count_params(self):
        self._check_built("count_params")
        return int(self._params.size)

    def summary(self, print_fn=print):
        """Print a table of the layers with their output shapes and parameter counts."""
        self._check_built("summary")
        rows = [("Layer", "Activation", "Output shape", "Params")]
        width = self.input_dim
        for step in self._plan:
            name = "Dense" if step.dense is not None else "Activation"
            params = step.dense.n_params(width) if step.dense is not None else 0
            rows.append((name, A.NAMES[step.act], f"(None, {step.width})", f"{params:,}"))
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

    def get_config(self):
        return {"layers": [layer.get_config() for layer in self.layers],
                "input_dim": self.input_dim, "seed": self.seed, "dtype": self.dtype.name}

    def save(self, path):
        """Write the model (architecture, weights, compile settings, optimizer state) to ``path``."""
        self._check_built("save")
        fnn_io.save_model(self, path)

    def __reduce__(self):
        # Pickle through the model file format: no module or thread-local state is pickled,
        # and unpickling runs the same checks as fastnn.load.
        if not self.built:
            return (Sequential, (self.layers, None, self.seed, self.dtype.name, self.backend))
        return (fnn_io.model_from_bytes, (fnn_io.model_to_bytes(self),))

    def __repr__(self):
        return (f"Sequential({self.layers!r}, input_dim={self.input_dim}, "
                f"dtype={self.dtype.name!r}, backend={self.backend!r})")
