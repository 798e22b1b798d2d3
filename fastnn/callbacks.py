"""Callbacks: code that ``fit`` calls at the start and end of training, epochs and batches.

Each hook receives ``logs``: after an epoch, the History entries of that epoch ("loss", metrics,
"val_" forms); after a batch, {"loss": batch loss}. Setting ``model.stop_training = True`` ends
``fit`` after the current epoch.
"""

import inspect
import math
import os

import numpy as np

from fastnn import _validation as V


class Callback:
    """Base class: override the hooks you need."""

    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass


def _check_monitor(monitor):
    if not isinstance(monitor, str):
        raise TypeError(f"monitor must be the name of a logged value such as 'val_loss'. "
                        f"Received: monitor={monitor!r}")
    return monitor


def _monitor_mode(monitor, mode):
    mode = V.check_choice("mode", mode, ("auto", "min", "max"))
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return mode


def _current(monitor, logs):
    value = (logs or {}).get(monitor)
    if value is None:
        raise ValueError(f"monitor={monitor!r} is not in the epoch logs {sorted(logs or {})}; "
                         f"val_ entries need validation_data or validation_split")
    return value


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights``, the model ends with the weights of its best epoch.
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False):
        self.monitor = _check_monitor(monitor)
        self.patience = V.check_int("patience", patience, low=0)
        self.min_delta = abs(V.check_float("min_delta", min_delta))
        self.mode = _monitor_mode(monitor, mode)
        self.restore_best_weights = V.check_bool("restore_best_weights", restore_best_weights)
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None
        self.best_epoch = None
        self.wait = 0
        self.stopped_epoch = None

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
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

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model after each epoch to ``filepath`` (may contain ``{epoch}``, from 1);
    with ``save_best_only``, only when ``monitor`` improves."""

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto"):
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"filepath must be a path. Received: filepath={filepath!r}")
        self.filepath = os.fspath(filepath)
        self.monitor = _check_monitor(monitor)
        self.save_best_only = V.check_bool("save_best_only", save_best_only)
        self.mode = _monitor_mode(monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            value = _current(self.monitor, logs)
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        self.model.save(self.filepath.format(epoch=epoch + 1))


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch to ``schedule(epoch)``
    (or ``schedule(epoch, lr)`` for a two-argument callable). See ``fastnn.schedules``."""

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"schedule must be callable. Received: schedule={schedule!r}")
        self.schedule = schedule
        try:
            self._takes_lr = len(inspect.signature(schedule).parameters) >= 2
        except (TypeError, ValueError):
            self._takes_lr = False
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        if self._takes_lr:
            lr = self.schedule(epoch, self.model.optimizer.lr)
        else:
            lr = self.schedule(epoch)
        self.model.optimizer.lr = V.check_float("lr", lr, low=0.0, low_open=True)
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {self.model.optimizer.lr:.6g}")

    def on_epoch_end(self, epoch, logs=None):
        logs["lr"] = self.model.optimizer.lr


class TerminateOnNaN(Callback):
    """Stop training at the first non-finite loss instead of raising; the weights stay those
    of the last finite step."""

    def on_batch_end(self, batch, logs=None):
        if not np.isfinite(logs.get("loss", 0.0)):
            self.model.stop_training = True
