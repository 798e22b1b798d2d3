"""Callbacks: code that ``fit`` calls at the start and end of training, epochs and batches.

Each hook receives ``logs``: after an epoch, the History entries of that epoch ("loss", metrics,
"val_" forms); after a batch, {"loss": batch loss}. Setting ``model.stop_training = True`` ends
``fit`` after the current epoch.

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

import inspect
import math
import os
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Union

import numpy as np

from fastnn import _validation as V

if TYPE_CHECKING:
    from fastnn.model import Sequential

Logs = Optional[dict[str, Any]]
MonitorMode = Literal["auto", "min", "max"]


class Callback:
    """Base class: override the hooks you need.

    ``fit`` calls ``set_model`` first, so ``self.model`` is the model being trained inside every
    hook. ``epoch`` and ``batch`` count from 0.
    """

    model: Sequential = None    # type: ignore[assignment]  # set by set_model before any hook

    def set_model(self, model: Sequential) -> None:
        """Remember the model the hooks act on."""
        self.model = model

    def on_train_begin(self, logs: Logs = None) -> None:
        """Called once when ``fit`` starts."""

    def on_train_end(self, logs: Logs = None) -> None:
        """Called once when ``fit`` ends (after the last epoch, or an early stop)."""

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        """Called at the start of each epoch."""

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Called after each epoch with that epoch's History entries in ``logs``."""

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Called after each training batch with ``{"loss": batch loss}``."""


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
    """Save the model after each epoch to ``filepath`` (may contain ``{epoch}``, from 1).

    Parameters
    ----------
    filepath : str or os.PathLike
        Where to write; ``"ckpt-{epoch}.fnn"`` keeps one file per epoch.
    monitor : str, default "val_loss"
        The logged value that ``save_best_only`` watches.
    save_best_only : bool, default False
        Save only when ``monitor`` is better than at every earlier save.
    mode : {"auto", "min", "max"}, default "auto"
        Whether lower or higher is better; "auto" means "max" when ``monitor`` contains "acc".

    Raises
    ------
    TypeError
        If ``filepath`` is not a path or another argument has the wrong type.
    ValueError
        If ``mode`` is unknown; during ``fit``, if ``monitor`` is not in the epoch logs.
    """

    def __init__(self, filepath: str | os.PathLike[str], monitor: str = "val_loss",
                 save_best_only: bool = False, mode: MonitorMode = "auto") -> None:
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"filepath must be a path. Received: filepath={V._describe(filepath)}")
        self.filepath = os.fspath(filepath)
        self.monitor = _check_monitor(monitor)
        self.save_best_only = V.check_bool("save_best_only", save_best_only)
        self.mode = _monitor_mode(monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if self.save_best_only:
            value = _current(self.monitor, logs)
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        self.model.save(self.filepath.format(epoch=epoch + 1))


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch to ``schedule(epoch)``.

    A callable of two or more parameters is called as ``schedule(epoch, lr)`` with the current
    rate. The rate in use is logged as "lr" in each epoch's History. See ``fastnn.schedules``.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch) -> lr`` or ``schedule(epoch, lr) -> lr``; epochs count from 0 and
        the rate returned must be one the optimizer accepts: finite, > 0 and a normal number
        of the model's dtype (float32: >= 1.18e-38; a decay that goes on long enough to fall
        below that is refused rather than silently stopping the updates).
    verbose : int, default 0
        If true, print the rate at the start of each epoch.

    Raises
    ------
    TypeError
        If ``schedule`` is not callable; during ``fit``, if it returns something that is not
        a real number.
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
            optimizer.lr = lr           # the setter checks it against the model's dtype
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"LearningRateScheduler: the schedule's rate for epoch {epoch} "
                            f"cannot be used: {exc}") from None
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {self.model.optimizer.lr:.6g}")

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs["lr"] = self.model.optimizer.lr    # type: ignore[index]  # fit passes logs


class TerminateOnNaN(Callback):
    """Stop training at the first non-finite batch loss instead of raising.

    The weights stay those of the last finite step; ``fit`` returns the History so far.
    """

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        if not np.isfinite(logs.get("loss", 0.0)):    # type: ignore[union-attr]  # fit passes logs
            self.model.stop_training = True
