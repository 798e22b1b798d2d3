"""``fit``: epochs over arrays or over an iterable of batches, with validation, callbacks and
progress output; every batch goes through ``Training._train_step`` (or, for a whole epoch
without callbacks, the compiled plan's ``run_epoch``).
"""

from __future__ import annotations

import math
import mmap
import time
import warnings
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike

from fastnn import _validation as V
from fastnn._advice import warn_about_targets
from fastnn._memory import aligned_empty
from fastnn.callbacks import Callback, TerminateOnNaN
from fastnn.models._exclusive import exclusive
from fastnn.models.history import History
from fastnn.progress import EpochProgress, check_verbose

if TYPE_CHECKING:
    from numpy.typing import NDArray

    FloatArray = NDArray[np.floating[Any]]


def _is_batch_source(X: object) -> bool:
    """True for a generator or other iterable of batches: not an array or a nested list."""
    return (not isinstance(X, (np.ndarray, list, tuple, str, bytes)) and hasattr(X, "__iter__")
            and not hasattr(X, "__array__") and not hasattr(X, "shape"))


def _maps_a_file(X: object) -> bool:
    """True for a memory-mapped array (np.memmap, or a view of one)."""
    while isinstance(X, np.ndarray):
        if isinstance(X, np.memmap) or isinstance(X.base, mmap.mmap):
            return True
        X = X.base
    return False


def _gathered(X: Any, order: Any, batch: int) -> Any:
    """The batches ``X[order[i:i + batch]]`` in turn, each in the same buffer (a batch is used
    up before the next is gathered)."""
    buffer = aligned_empty((min(batch, X.shape[0]),) + X.shape[1:], X.dtype)
    for i in range(0, X.shape[0], batch):
        rows = order[i:i + batch]
        out = buffer[:rows.shape[0]]
        np.take(X, rows, axis=0, out=out)
        yield out


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


class FitLoop:
    """Mixin of ``BaseModel``: the training loop over epochs and batches."""

    @exclusive
    def fit(self: Any, X: Any, y: Optional[ArrayLike] = None, epochs: int = 1, batch_size: int = 32,
            validation_data: Optional[tuple[ArrayLike, ArrayLike]] = None,
            validation_split: float = 0.0, shuffle: bool = True, verbose: Any = 1,
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
        y : array_like, list or dict
            Training targets: (n, output_dim); class labels (n,) for ``cross_entropy``; or
            (n,) with one output. Several outputs: a list of such arrays, one per output
            (``model.outputs`` order; those of untrained outputs may be None or left out), or
            a dict keyed by output name.
        epochs : int, default 1
            The epoch to stop before (the number of passes when ``initial_epoch`` is 0), >= 0.
        batch_size : int, default 32
            Samples per step, > 0 (at most the number of training samples is used).
        validation_data : tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), optional
            Data scored after each epoch (the ``val_`` entries of the History); its sample
            weights, if given, weigh ``val_loss`` as ``sample_weight`` weighs the loss. It
            takes precedence over ``validation_split``.
        validation_split : float, default 0.0
            Fraction in [0, 1) of the samples held out for validation: the last ones, before
            shuffling.
        shuffle : bool, default True
            Shuffle the training samples before each epoch (with the model's seed). A
            memory-mapped ``X`` (``np.load(path, mmap_mode="r")``, ``np.memmap``) in the model's
            dtype is never copied: each batch is gathered from it by index (a few MiB of
            buffers for a 1 GiB file), with the same results as the array in memory.
        verbose : {0, 1, 2, True, False, "auto"}, default 1
            0 (False) silent; 1 (True, "auto") a live progress bar per epoch in a terminal or
            a Jupyter notebook (with ipywidgets), and one line per epoch where a bar cannot be
            drawn (a pipe, a log file); 2 one line per epoch. See ``fastnn.progress``.
        callbacks : list of Callback, optional
            ``fastnn.callbacks.Callback`` instances, called at the start and end of training,
            of each epoch and of each batch (Keras' hooks and order; see ``Callback``).
        sample_weight : array_like of shape (n,), optional
            A weight >= 0 per sample: the loss is ``sum(w_i * loss_i) / n`` (Keras' meaning);
            weighted batches take the per-kernel path (the compiled plan has no weights).
            Several outputs: one array for all, or a list or dict of them, one per output.
        class_weight : dict of int to float, optional
            ``{class index: weight}``, multiplying ``sample_weight``; a sample's class is the
            argmax of its target (its 0/1 target with one output); unlisted classes weigh 1.
            Refused with several outputs (as in Keras).
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
        self._check_compiled("fit", X)
        epochs = V.check_int("epochs", epochs, low=0)
        initial_epoch = V.check_int("initial_epoch", initial_epoch, low=0)
        if _is_batch_source(X):
            if y is not None or sample_weight is not None or class_weight is not None:
                raise TypeError("with an iterable of batches, y, sample_weight and "
                                "class_weight come from its batches: pass y=None")
            if steps_per_epoch is not None:
                steps_per_epoch = V.check_positive_int("steps_per_epoch", steps_per_epoch)
            verbose = check_verbose(verbose)
            return self._fit_source(X, epochs, steps_per_epoch, initial_epoch, verbose,
                                    _check_callbacks(callbacks), validation_data)
        if steps_per_epoch is not None:
            raise TypeError("steps_per_epoch applies to an iterable of batches; with arrays, "
                            "batch_size sets the steps")
        # a memory-mapped X (larger than memory, perhaps) is never copied whole: each shuffled
        # batch is gathered from it by index instead (the same rows in the same order as the
        # shuffled copy would give, so the same steps to the bit)
        maps_a_file = _maps_a_file(X)
        X, T, W, val, batch_size, shuffle, verbose, callbacks = self._fit_arrays(
            X, y, batch_size, validation_data, validation_split, shuffle, verbose, callbacks,
            sample_weight, class_weight)
        by_index = shuffle and maps_a_file
        n = X.shape[0]
        batch = min(batch_size, n)
        self._train_workspace(batch)
        Xs = aligned_empty(X.shape, X.dtype) if shuffle and not by_index else X
        Ts = aligned_empty(T.shape, T.dtype) if shuffle else T
        Ws = aligned_empty(W.shape, W.dtype) if shuffle and W is not None else W
        history = self.history = History()
        self.stop_training = False
        logs: Optional[dict[str, Any]] = None
        for cb in callbacks:
            cb.set_model(self)
            cb.on_train_begin({})
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch, {})
            order = None
            if shuffle:
                order = self._shuffle_rng.permutation(n)
                if not by_index:
                    np.take(X, order, axis=0, out=Xs)
                np.take(T, order, axis=0, out=Ts)
                if W is not None:
                    np.take(W, order, axis=0, out=Ws)
            logs = self._run_epoch(Xs, Ts, Ws, batch, epoch, epochs, verbose, callbacks, val,
                                   order if by_index else None)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            history.append(epoch, logs)
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end(logs)
        return history

    def _fit_arrays(self: Any, X, y, batch_size, validation_data, validation_split, shuffle,
                    verbose, callbacks, sample_weight, class_weight):
        """fit's checks of its options and its array data, and their packed forms: (X, T, W,
        validation pair or None, batch_size, shuffle, verbose, callbacks); also used by
        ``fastnn.distributed.fit``, so both refuse the same things with the same messages."""
        batch_size = V.check_positive_int("batch_size", batch_size)
        validation_split = V.check_float("validation_split", validation_split,
                                         low=0.0, high=1.0, high_open=True)
        shuffle = V.check_bool("shuffle", shuffle)
        verbose = check_verbose(verbose)
        callbacks = _check_callbacks(callbacks)
        X = self._inputs(X)
        T = self._targets(y, X.shape[0])
        assert self.loss is not None                  # compiled (checked by the caller)
        if self._heads is None:
            warn_about_targets(self.loss, y)
        W = self._sample_weights(sample_weight, class_weight, T)
        X, T, W, val = self._split_validation(X, T, W, validation_data, validation_split)
        return X, T, W, val, batch_size, shuffle, verbose, callbacks

    def _fit_source(self: Any, source, epochs, steps_per_epoch, initial_epoch, verbose, callbacks,
                    validation_data):
        """fit on an iterable of batches: each batch validated as train_on_batch does."""
        _, _, _, val = self._split_validation(None, None, None, validation_data, 0.0)
        history = self.history = History()
        self.stop_training = False
        shared = iter(source) if steps_per_epoch is not None else None
        logs: Optional[dict[str, Any]] = None
        for cb in callbacks:
            cb.set_model(self)
            cb.on_train_begin({})
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch, {})
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
            cb.on_train_end(logs)
        return history

    def _source_batches(self: Any, iterator, steps, epoch, dry):
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

    def _split_validation(self: Any, X, T, W, validation_data, validation_split
                          ) -> tuple[FloatArray, FloatArray, Any, Any]:
        if validation_data is not None:
            if (not isinstance(validation_data, (tuple, list))
                    or len(validation_data) not in (2, 3)):
                received = (f"{type(validation_data).__name__} of {len(validation_data)} "
                            f"items" if isinstance(validation_data, (tuple, list))
                            else V._describe(validation_data))
                raise ValueError(f"validation_data must be a tuple (X_val, y_val) or (X_val, "
                                 f"y_val, sample_weight_val). Received: {received}")
            Xv = self._inputs(validation_data[0], "X_val")
            Tv = self._targets(validation_data[1], Xv.shape[0], "y_val")
            Wv = (self._sample_weights(validation_data[2], None, Tv)
                  if len(validation_data) == 3 and validation_data[2] is not None else None)
            return X, T, W, (Xv, Tv, Wv)
        if validation_split > 0.0:
            n_val = int(round(X.shape[0] * validation_split))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves {n_val} of "
                                 f"{X.shape[0]} samples for validation: need at least one "
                                 f"sample on each side")
            # the held-out samples are scored unweighted, as validation_data is
            return (X[:-n_val], T[:-n_val], None if W is None else W[:-n_val],
                    (X[-n_val:], T[-n_val:], None))
        return X, T, W, None

    def _run_epoch(self: Any, Xs, Ts, Ws, batch, epoch, epochs, verbose, callbacks, val,
                   order=None):
        """One pass over the (shuffled) data, ``Ws`` its sample weights or None; returns the
        epoch's logs. With ``order``, ``Xs`` is not shuffled: batch i is its rows
        ``order[i * batch:(i + 1) * batch]``, gathered into one reused buffer."""
        n = Xs.shape[0]
        if order is None and not callbacks and not self.metrics and verbose == 0 and Ws is None:
            total = self._epoch_compiled(Xs, Ts, batch, epoch)
            if total is not None:
                return self._with_validation({"loss": total / n}, val)
        if order is None:
            xs = (Xs[i:i + batch] for i in range(0, n, batch))
        else:
            xs = _gathered(Xs, order, batch)
        batches = ((xb, Ts[i:i + batch], None if Ws is None else Ws[i:i + batch])
                   for xb, i in zip(xs, range(0, n, batch)))
        return self._run_batches(batches, n, epoch, epochs, verbose, callbacks, val)

    def _run_batches(self: Any, batches, n, epoch, epochs, verbose, callbacks, val):
        """One epoch over validated ``(x, t, w)`` batches (``n`` samples in all, or None when
        a generator does not say); returns the epoch's logs."""
        started = time.perf_counter()
        threshold = self._threshold()
        sums = dict.fromkeys(self._log_keys(), 0.0)
        seen = 0
        progress = EpochProgress(epoch, epochs, n, verbose)
        try:
            for index, (xb, tb, wb) in enumerate(batches):
                for cb in callbacks:
                    cb.on_train_batch_begin(index, logs={})
                try:
                    value = self._train_step(xb, tb, wb)
                except FloatingPointError as exc:
                    if not any(isinstance(cb, TerminateOnNaN) for cb in callbacks):
                        raise FloatingPointError(
                            f"epoch {epoch + 1}, batch {index + 1}: {exc}") from None
                    for cb in callbacks:
                        cb.on_train_batch_end(index, logs={"loss": math.nan})
                    self.stop_training = True
                    break
                rows = xb.shape[0]
                seen += rows
                self._add_batch_scores(sums, value, tb, rows, threshold)
                progress.update(rows, sums)
                for cb in callbacks:
                    cb.on_train_batch_end(index, logs={"loss": value})
                if self.stop_training:
                    break
            logs = self._with_validation(
                {key: total / max(seen, 1) for key, total in sums.items()}, val)
            progress.close(logs, time.perf_counter() - started)
        finally:
            progress.close_quietly()
        return logs

    def _with_validation(self: Any, logs, val):
        """The epoch's logs with the ``val_`` scores added when there is validation data."""
        if val is not None:
            Xv, Tv, Wv = val
            scores = self._evaluate_arrays(Xv, Tv, W=Wv)
            logs.update({"val_" + key: value for key, value in scores.items()})
        return logs
