"""Callbacks: code that ``fit`` calls at the start and end of training, epochs and batches,
with Keras' names, hooks and arguments (see ``Callback``).

Each hook receives ``logs``: after an epoch, the History entries of that epoch ("loss", metrics,
"val_" forms; a callback may add to them, as the learning-rate callbacks add "lr"); after a
batch, {"loss": batch loss}; at the start of training, an epoch or a batch, {}. Setting
``model.stop_training = True`` ends ``fit`` after the current epoch (or batch).

Here: ``EarlyStopping``, ``ModelCheckpoint``, ``LearningRateScheduler``, ``ReduceLROnPlateau``,
``CSVLogger``, ``LambdaCallback``, ``TerminateOnNaN``; ``TensorBoard`` (fastnn/tensorboard.py).

Examples
--------
>>> import fastnn as fnn
>>> from fastnn.datasets import make_xor
>>> X, y = make_xor()
>>> model = fnn.Sequential([fnn.Dense(8, activation="tanh"), fnn.Dense(1, activation="sigmoid")],
...                        input_dim=2, seed=0, backend="numpy")
>>> model = model.compile(loss="binary_cross_entropy", optimizer=fnn.SGD(lr=0.5))
>>> stop = fnn.EarlyStopping(monitor="loss", patience=3)
>>> history = model.fit(X, y, epochs=5, batch_size=4, verbose=0, callbacks=[stop])
>>> len(history.epoch) <= 5
True
"""

from __future__ import annotations

import csv
import inspect
import math
import os
import string
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Union

import numpy as np

from fastnn import _validation as V

if TYPE_CHECKING:
    from fastnn.model import Sequential

Logs = Optional[dict[str, Any]]
MonitorMode = Literal["auto", "min", "max"]


class Callback:
    """Base class: override the hooks you need (Keras' hooks and arguments).

    ``fit`` calls ``set_model`` first, so ``self.model`` is the model being trained inside every
    hook. ``epoch`` and ``batch`` count from 0. In order: ``on_train_begin(logs)``; per epoch
    ``on_epoch_begin(epoch, logs)``, per batch ``on_train_batch_begin(batch, logs=logs)`` and
    ``on_train_batch_end(batch, logs=logs)``, then ``on_epoch_end(epoch, logs)``; at last
    ``on_train_end(logs)`` with the last epoch's logs. ``on_batch_begin`` and ``on_batch_end``
    are the older names of the batch hooks: the default ``on_train_batch_*`` calls them.
    """

    model: Sequential = None    # type: ignore[assignment]  # set by set_model before any hook

    def set_model(self, model: Sequential) -> None:
        """Remember the model the hooks act on."""
        self.model = model

    def on_train_begin(self, logs: Logs = None) -> None:
        """Called once when ``fit`` starts."""

    def on_train_end(self, logs: Logs = None) -> None:
        """Called once when ``fit`` ends (after the last epoch, or an early stop), with the
        last epoch's logs."""

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        """Called at the start of each epoch."""

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Called after each epoch with that epoch's History entries in ``logs``."""

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Called before each training step; by default calls ``on_batch_begin``."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Called after each training step with ``{"loss": batch loss}``; by default calls
        ``on_batch_end``."""
        self.on_batch_end(batch, logs=logs)

    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """The older name of ``on_train_batch_begin`` (Keras keeps both)."""

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        """The older name of ``on_train_batch_end``."""


_HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
          "on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")


class LambdaCallback(Callback):
    """A callback made of functions, one per hook (Keras' ``LambdaCallback``).

    ``on_epoch_begin`` and ``on_epoch_end`` are called as ``f(epoch, logs)``;
    ``on_train_begin`` and ``on_train_end`` as ``f(logs)``; ``on_train_batch_begin`` and
    ``on_train_batch_end`` (or their older names ``on_batch_begin``, ``on_batch_end``, given
    as keywords) as ``f(batch, logs=logs)``.

    Raises
    ------
    TypeError
        If a function is not callable, or a keyword is not one of the hooks.

    Examples
    --------
    >>> import fastnn as fnn
    >>> from fastnn.datasets import make_xor
    >>> X, y = make_xor()
    >>> model = fnn.Sequential([fnn.Dense(1, activation="sigmoid")], input_dim=2, seed=0,
    ...                        backend="numpy").compile(loss="binary_cross_entropy")
    >>> seen = []
    >>> log = fnn.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    >>> history = model.fit(X, y, epochs=3, verbose=0, callbacks=[log])
    >>> seen
    [0, 1, 2]
    """

    def __init__(self, on_epoch_begin: Optional[Callable[..., Any]] = None,
                 on_epoch_end: Optional[Callable[..., Any]] = None,
                 on_train_begin: Optional[Callable[..., Any]] = None,
                 on_train_end: Optional[Callable[..., Any]] = None,
                 on_train_batch_begin: Optional[Callable[..., Any]] = None,
                 on_train_batch_end: Optional[Callable[..., Any]] = None,
                 **kwargs: Callable[..., Any]) -> None:
        unknown = sorted(set(kwargs) - set(_HOOKS))
        if unknown:
            raise TypeError(f"LambdaCallback takes functions for the hooks {list(_HOOKS)}. "
                            f"Received: {', '.join(unknown)}")
        given = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                 "on_train_begin": on_train_begin, "on_train_end": on_train_end,
                 "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end, **kwargs}
        for hook, function in given.items():
            if function is None:
                continue
            if not callable(function):
                raise TypeError(f"{hook} must be a function. "
                                f"Received: {hook}={V._describe(function)}")
            setattr(self, hook, function)


def _check_monitor(monitor: object) -> str:
    if not isinstance(monitor, str):
        raise TypeError(f"monitor must be the name of a logged value such as 'val_loss'. "
                        f"Received: monitor={V._describe(monitor)}")
    return monitor


def _monitor_mode(monitor: str, mode: str) -> str:
    mode = V.check_choice("mode", mode, ("auto", "min", "max"))
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return mode


def _current(monitor: str, logs: Logs) -> float:
    value = (logs or {}).get(monitor)
    if value is None:
        raise ValueError(f"monitor={monitor!r} is not in the epoch logs {sorted(logs or {})}; "
                         f"val_ entries need validation_data or validation_split")
    return value


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    An epoch improves when ``value < best - min_delta`` (mode "min") or
    ``value > best + min_delta`` (mode "max"). With ``restore_best_weights``, the model ends with
    the weights of its best epoch. ``stopped_epoch`` and ``best_epoch`` are set by training.

    Parameters
    ----------
    monitor : str, default "val_loss"
        The logged value to watch: "loss", a metric, or their "val_" forms.
    patience : int, default 0
        Epochs without improvement to allow before stopping, >= 0.
    min_delta : float, default 0.0
        The smallest change that counts as an improvement (its absolute value is used).
    mode : {"auto", "min", "max"}, default "auto"
        Whether lower or higher is better; "auto" means "max" when ``monitor`` contains "acc".
    restore_best_weights : bool, default False
        Put back the weights of the best epoch when training ends.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``patience`` < 0, ``min_delta`` is not finite or ``mode`` is unknown; during ``fit``,
        if ``monitor`` is not in the epoch logs.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: MonitorMode = "auto", restore_best_weights: bool = False) -> None:
        self.monitor = _check_monitor(monitor)
        self.patience = V.check_int("patience", patience, low=0)
        self.min_delta = abs(V.check_float("min_delta", min_delta))
        self.mode = _monitor_mode(monitor, mode)
        self.restore_best_weights = V.check_bool("restore_best_weights", restore_best_weights)
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: Logs = None) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights: list[Any] | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        value = _current(self.monitor, logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or its weights) after each epoch to ``filepath``, a template that the
    epoch's logs fill as in Keras: ``"ckpt-{epoch:02d}-{val_loss:.3f}.fnn"``.

    The template takes ``epoch`` (counted from 1) and every entry of the epoch's logs
    ("loss", the metrics, their "val_" forms, "lr" when a learning-rate callback logs it),
    with Python's format specs. The file's directory is created when missing.

    Parameters
    ----------
    filepath : str or os.PathLike
        Where to write; ``"ckpt-{epoch}.fnn"`` keeps one file per epoch.
    monitor : str, default "val_loss"
        The logged value that ``save_best_only`` watches.
    verbose : int, default 0
        1: print a line for each save (and each epoch that did not improve).
    save_best_only : bool, default False
        Save only when ``monitor`` is better than at every earlier save.
    save_weights_only : bool, default False
        Write ``model.save_weights(path)`` (the architecture and the weights, without the
        compile settings and optimizer state; read it with ``model.load_weights``) instead of
        ``model.save(path)``.
    mode : {"auto", "min", "max"}, default "auto"
        Whether lower or higher is better; "auto" means "max" when ``monitor`` contains "acc".
    initial_value_threshold : float, optional
        With ``save_best_only``: the value to beat at the first save.

    Raises
    ------
    TypeError
        If ``filepath`` is not a path or another argument has the wrong type.
    ValueError
        If ``mode`` is unknown or ``filepath`` is not a valid template (unbalanced braces);
        during ``fit``, if the template names a value the epoch does not log (the message
        lists those it does), or ``monitor`` is not in the epoch logs.

    Examples
    --------
    >>> import fastnn as fnn
    >>> checkpoint = fnn.ModelCheckpoint("ckpt-{epoch:02d}-{val_loss:.3f}.fnn",
    ...                                  save_best_only=True, monitor="val_loss")
    """

    def __init__(self, filepath: str | os.PathLike[str], monitor: str = "val_loss",
                 verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: MonitorMode = "auto",
                 initial_value_threshold: Optional[float] = None) -> None:
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"filepath must be a path. Received: filepath={V._describe(filepath)}")
        self.filepath = os.fspath(filepath)
        try:
            list(string.Formatter().parse(self.filepath))
        except ValueError as exc:
            raise ValueError(f"filepath must be a path, with {{name}} fields to fill (double "
                             f"a brace to write one: {{{{ }}}}). Received: "
                             f"filepath={self.filepath!r} ({exc})") from None
        self.monitor = _check_monitor(monitor)
        self.verbose = V.check_int("verbose", verbose, low=0)
        self.save_best_only = V.check_bool("save_best_only", save_best_only)
        self.save_weights_only = V.check_bool("save_weights_only", save_weights_only)
        self.mode = _monitor_mode(monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf
        if initial_value_threshold is not None:
            self.best = V.check_float("initial_value_threshold", initial_value_threshold)

    def _path(self, epoch: int, logs: Logs) -> str:
        """The template filled with ``epoch`` (from 1) and the epoch's logs."""
        fields = {**(logs or {}), "epoch": epoch + 1}
        try:
            return self.filepath.format(**fields)
        except KeyError as exc:
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} names "
                             f"{{{exc.args[0]}}}, which epoch {epoch + 1} does not log; it "
                             f"can use {sorted(fields)} (val_ entries need validation_data "
                             f"or validation_split)") from None
        except (ValueError, IndexError, TypeError) as exc:
            raise ValueError(f"ModelCheckpoint: cannot fill filepath {self.filepath!r} with "
                             f"{fields}: {exc}") from None

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        path = self._path(epoch, logs)
        if self.save_best_only:
            value = _current(self.monitor, logs)
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                if self.verbose:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from "
                          f"{self.best:.5f}")
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{value:.5f}, saving to {path}")
            self.best = value
        elif self.verbose:
            print(f"Epoch {epoch + 1}: saving to {path}")
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


def _log_rate(model: Any, logs: Logs) -> None:
    """Record the rate the epoch used as "lr" in its logs (and so in the History)."""
    if logs is not None:
        logs["lr"] = model.optimizer.lr


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch to ``schedule(epoch)``.

    A callable of two or more parameters is called as ``schedule(epoch, lr)`` with the current
    rate. The rate in use is logged as "lr" in each epoch's History. ``fastnn.schedules``
    serve here with the epoch as their step (``CosineDecay(0.1, decay_steps=20)`` decays over
    20 epochs); given as the optimizer's learning rate instead, they set the rate of every
    step.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch) -> lr`` or ``schedule(epoch, lr) -> lr``; epochs count from 0 and
        the rate returned must be finite and >= 0 (0 leaves the weights as they are), and 0
        or a normal number of the model's dtype (float32: >= 1.18e-38; a decay that goes on
        long enough to fall below that is refused rather than silently stopping the updates).
    verbose : int, default 0
        If true, print the rate at the start of each epoch.

    Raises
    ------
    TypeError
        If ``schedule`` is not callable; during ``fit``, if it returns something that is not
        a real number, or the optimizer's learning rate is itself a schedule (as in Keras).
    ValueError
        During ``fit``, at the start of an epoch whose rate the optimizer refuses (before
        any weight changes in that epoch).

    Examples
    --------
    >>> import fastnn as fnn
    >>> from fastnn.schedules import StepDecay
    >>> callback = fnn.LearningRateScheduler(StepDecay(0.1, drop=0.5, every=10))
    >>> callback = fnn.LearningRateScheduler(lambda epoch, lr: lr * 0.9)
    """

    def __init__(self, schedule: Union[Callable[[int], float], Callable[[int, float], float]],
                 verbose: int = 0) -> None:
        if not callable(schedule):
            raise TypeError(f"schedule must be callable. "
                            f"Received: schedule={V._describe(schedule)}")
        self.schedule: Callable[..., float] = schedule
        try:
            self._takes_lr = len(inspect.signature(schedule).parameters) >= 2
        except (TypeError, ValueError):
            self._takes_lr = False
        self.verbose = verbose

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        optimizer = self.model.optimizer
        lr = self.schedule(epoch, optimizer.lr) if self._takes_lr else self.schedule(epoch)
        try:
            optimizer._set_rate(lr)          # checked against the model's dtype
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"LearningRateScheduler: the schedule's rate for epoch {epoch} "
                            f"cannot be used: {exc}") from None
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {self.model.optimizer.lr:.6g}")

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        _log_rate(self.model, logs)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for
    ``patience`` epochs (Keras' rule, step by step).

    At each epoch's end: during a cooldown, its counter goes down by one and the wait is 0.
    An epoch improves when ``value < best - min_delta`` (mode "min"; ``> best + min_delta`` in
    "max"): ``best`` becomes the value and the wait 0. Otherwise, outside a cooldown, the wait
    grows by one, and when it reaches ``patience`` while the rate is above ``min_lr``, the
    rate becomes ``max(lr * factor, min_lr)``, the cooldown starts (``cooldown`` epochs) and
    the wait is 0. The rate each epoch used is logged as "lr".

    Parameters
    ----------
    monitor : str, default "val_loss"
        The logged value to watch.
    factor : float, default 0.1
        The factor, in [0, 1).
    patience : int, default 10
        Epochs without improvement before a reduction, >= 0.
    verbose : int, default 0
        1: print each reduction.
    mode : {"auto", "min", "max"}, default "auto"
        Whether lower or higher is better; "auto" means "max" when ``monitor`` contains "acc".
    min_delta : float, default 1e-4
        The smallest change that counts as an improvement (its absolute value is used).
    cooldown : int, default 0
        Epochs after a reduction during which the wait does not grow, >= 0.
    min_lr : float, default 0.0
        The lowest rate, >= 0.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If an argument is out of range (``factor`` >= 1, as Keras); during ``fit``, if
        ``monitor`` is not in the epoch logs.

    Examples
    --------
    >>> import fastnn as fnn
    >>> callback = fnn.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: MonitorMode = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0) -> None:
        self.monitor = _check_monitor(monitor)
        self.factor = V.check_float("factor", factor, low=0.0, high=1.0, high_open=True)
        self.patience = V.check_int("patience", patience, low=0)
        self.verbose = V.check_int("verbose", verbose, low=0)
        self.mode = _monitor_mode(monitor, mode)
        self.min_delta = abs(V.check_float("min_delta", min_delta))
        self.cooldown = V.check_int("cooldown", cooldown, low=0)
        self.min_lr = V.check_float("min_lr", min_lr, low=0.0)
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs: Logs = None) -> None:
        self._reset()

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        _log_rate(self.model, logs)
        value = _current(self.monitor, logs)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(value):
            self.best, self.wait = value, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        optimizer = self.model.optimizer
        if self.wait >= self.patience and optimizer.lr > self.min_lr:
            rate = max(optimizer.lr * self.factor, self.min_lr)
            optimizer._set_rate(rate)
            if self.verbose:
                print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing the learning rate to "
                      f"{rate:.6g}")
            self.cooldown_counter = self.cooldown
            self.wait = 0


class CSVLogger(Callback):
    """Write each epoch's logs to a CSV file: a header ``epoch,<keys sorted>`` and one row per
    epoch (epochs from 0, as Keras writes them), flushed as each epoch ends.

    Parameters
    ----------
    filename : str or os.PathLike
        The file.
    separator : str, default ","
        The field separator (one character).
    append : bool, default False
        Add to an existing file (no second header when it already has lines) instead of
        replacing it: to continue a log when training resumes.

    Raises
    ------
    TypeError
        If an argument has the wrong type.

    Examples
    --------
    >>> import fastnn as fnn
    >>> from fastnn.datasets import make_xor
    >>> X, y = make_xor()
    >>> model = fnn.Sequential([fnn.Dense(1, activation="sigmoid")], input_dim=2, seed=0,
    ...                        backend="numpy").compile(loss="binary_cross_entropy",
    ...                                                 metrics=["accuracy"])
    >>> history = model.fit(X, y, epochs=2, verbose=0, callbacks=[fnn.CSVLogger("log.csv")])
    >>> print(open("log.csv").read().splitlines()[0])
    epoch,accuracy,loss
    """

    def __init__(self, filename: str | os.PathLike[str], separator: str = ",",
                 append: bool = False) -> None:
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"filename must be a path. "
                            f"Received: filename={V._describe(filename)}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise TypeError(f"separator must be one character. "
                            f"Received: separator={V._describe(separator)}")
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = V.check_bool("append", append)
        self.keys: Optional[list[str]] = None
        self._file: Any = None
        self._writer: Any = None

    def on_train_begin(self, logs: Logs = None) -> None:
        self._header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="") as existing:
                self._header = not existing.readline()
        self._close()
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = csv.writer(self._file, delimiter=self.sep, lineterminator="\n")
        self.keys = None

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self._header:
                self._writer.writerow(["epoch"] + self.keys)
        self._writer.writerow([epoch] + [logs.get(key, "NA") for key in self.keys])
        self._file.flush()

    def on_train_end(self, logs: Logs = None) -> None:
        self._close()

    def _close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._file = None


class TerminateOnNaN(Callback):
    """Stop training at the first non-finite batch loss instead of raising.

    The weights stay those of the last finite step; ``fit`` returns the History so far.
    """

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        if not np.isfinite(logs.get("loss", 0.0)):    # type: ignore[union-attr]  # fit passes logs
            self.model.stop_training = True


from fastnn.tensorboard import TensorBoard  # noqa: E402  (it builds on Callback)
