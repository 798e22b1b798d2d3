"""The data-parallel training loop: fit's epochs and batches, each step's gradients summed
over the ranks before one optimizer update on every rank.

A step on rank r: forward, loss and backward on its rows of the global batch (the model's own
kernels: ``_loss_and_grads``); its mean gradient times rows_r / rows of the batch, the change
it made to the moving statistics times the same weight, its loss and metric sums into one flat
buffer; ``FixedOrderSum``; then the optimizer steps every rank's weights from the same summed
gradient. The sum of the weighted means is the mean over the global batch, so the weights
follow single-process training on the same batches up to rounding, and are the same bits on
every rank. Rank 0 runs the callbacks and the progress output; what its callbacks change
(``stop_training``, the optimizer's settings, the weights at an epoch's end) reaches the
other ranks through a flag in the next step's buffer and a broadcast at each epoch's end.
"""

from __future__ import annotations

import math
import time
from typing import Any, Optional

import numpy as np

from fastnn.distributed import _model_state as S
from fastnn.distributed._batches import Batches, shard
from fastnn.distributed._comm import FixedOrderSum, broadcast_arrays
from fastnn.models import multi_output
from fastnn.models.history import History
from fastnn.models.training import _loss_diverged
from fastnn.progress import EpochProgress


class DistributedHistory(History):
    """``History`` (the same values on every rank), plus this rank's ``allreduce_seconds``:
    the time each step spent in the gradient sum (waiting for the slowest rank included)."""

    def __init__(self) -> None:
        super().__init__()
        self.allreduce_seconds: list[float] = []


class AllRanks(Exception):
    """An error every rank raises at the same point (found in the summed values), so no
    rank is left waiting: it is raised as it is, without MPI_Abort."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Trainer:
    """One ``fastnn.distributed.fit`` call on one rank (see the module docstring)."""

    def __init__(self, comm: Any, model: Any, data: tuple[Any, ...], counts: list[int],
                 sharded: bool, batch_size: int, shuffle: bool, verbose: int,
                 callbacks: list[Any], root: dict[str, Any]) -> None:
        self.comm, self.model = comm, model
        self.rank, self.ranks = comm.Get_rank(), comm.Get_size()
        self.val, self.sharded = data[3], sharded
        self.batches = Batches(data[:3], counts, sharded, batch_size, shuffle, self.rank,
                               self.ranks, model._shuffle_rng)
        self.rows, self.totals, self.offsets = (self.batches.rows, self.batches.totals,
                                                self.batches.offsets)
        model._train_workspace(max(max(self.rows), 1))
        self.verbose = verbose if self.rank == 0 else 0
        self.callbacks = callbacks if self.rank == 0 else []
        self.watched = root["callbacks"]          # rank 0 has callbacks: sync what they change
        self.terminate_on_nan = root["terminate_on_nan"]
        self.grads = S.grad_views(model)
        self.state = S.state_views(model)
        self.state_before = [np.empty_like(v) for v in self.state]
        self.drops = S.RankDropout(model, self.rank)
        self.metrics = list(zip(model.metrics, model._metric_items))
        #: the logs after "loss": each trained output's loss (several outputs), the metrics;
        #: a step's and a validation's sums of them follow the loss in the reduced buffers
        self.keys = model._log_keys()[1:]
        self.n_grads = sum(g.size for g in self.grads)
        self.n_state = sum(v.size for v in self.state)
        self.reducer = FixedOrderSum(comm, self.n_grads + self.n_state + len(self.keys) + 2,
                                     model.dtype)
        self.val_reducer = FixedOrderSum(comm, len(self.keys) + 2, np.float64)
        self.settings = S.optimizer_settings(model.optimizer)
        self.dirty = False

    # ------------------------------------------------------------------ one step
    def _contribute(self, k: int) -> None:
        """This rank's share of step ``k`` into the reducer's buffer."""
        model, buf = self.model, self.reducer.buffer
        rows, lo = self.rows[k], int(self.offsets[k])
        tail = self.n_grads + self.n_state
        buf[tail:] = 0
        self.calls_before = [d.calls for d in self.drops.drops]
        if rows == 0:
            buf[:tail] = 0
            self.drops.skip_forward()
            return
        weight = rows / self.totals[k]
        for v, before in zip(self.state, self.state_before):
            np.copyto(before, v)
        b = self.batches
        x, t = b.Xs[lo:lo + rows], b.Ts[lo:lo + rows]
        w = None if b.Ws is None else b.Ws[lo:lo + rows]
        try:
            value, _ = model._on_chosen_threads("train", rows, model._loss_and_grads, x, t, w)
        except FloatingPointError:          # the loss is not finite: the sum says so to all
            value = math.nan
        buf[tail] = value * weight
        if not math.isfinite(value):
            buf[:tail] = 0
            return
        offset = 0
        for g in self.grads:
            np.multiply(g, weight, out=buf[offset:offset + g.size])
            offset += g.size
        for v, before in zip(self.state, self.state_before):
            seg = buf[offset:offset + v.size].reshape(v.shape)
            np.subtract(v, before, out=seg)
            seg *= weight
            offset += v.size
        if self.keys:
            out = model._batch_outputs(rows)
            sums = self._sums(out, t, rows, model._output_mask(model._train_ws))
            buf[tail + 1:tail + 1 + len(sums)] = sums

    def _sums(self, out: Any, t: Any, rows: int, mask: Any) -> list[float]:
        """The sums over ``rows`` rows of the logs after "loss" (``self.keys``), from the
        outputs ``out`` of a pass whose loss was just computed (the per-output losses of
        several outputs: ``_heads.last``)."""
        model = self.model
        heads = model._heads
        if heads is not None:
            parts = [part * rows for part in heads.last] if heads.loss_keys else []
            return parts + multi_output.metric_sums(model, heads, out, t, mask)
        threshold = model._threshold()
        return [model._metric_sum(item, out, t, threshold, mask) for _, item in self.metrics]

    def _undo_forward(self) -> None:
        """Put back what the forward pass of a step that is not taken changed."""
        for v, before in zip(self.state, self.state_before):
            np.copyto(v, before)
        for d, calls in zip(self.drops.drops, self.calls_before):
            d.calls = calls

    def _step(self, k: int) -> Optional[tuple[float, Any]]:
        """Step ``k``: the global batch's loss and metric sums, or None when rank 0's
        callbacks stopped training (nothing is updated then)."""
        self._contribute(k)
        if self.rank == 0 and self.dirty:
            self.reducer.buffer[-1] = 1
        summed = self.reducer()
        if summed[-1]:
            self._sync_control()
            if self.model.stop_training:
                self._undo_forward()
                return None
        tail = self.n_grads + self.n_state
        loss = float(summed[tail])
        if not math.isfinite(loss):
            self._undo_forward()
            raise AllRanks(_loss_diverged(loss))
        offset = self.n_grads
        for v, before in zip(self.state, self.state_before):
            np.add(before, summed[offset:offset + v.size].reshape(v.shape), out=v)
            offset += v.size
        try:
            self._update(summed[:self.n_grads])
        except FloatingPointError as exc:   # the same gradients and weights on every rank
            raise AllRanks(exc) from None
        return loss, summed[tail + 1:tail + 1 + len(self.keys)]

    def _update(self, grads: Any) -> None:
        """The optimizer step from the summed gradients: read in place when the trainable
        weights are one run (``_apply_update``'s case of one run), else copied into the
        model's gradient buffers for ``_apply_update`` to gather."""
        model = self.model
        if len(model._runs) == 1:
            owner, start, size = model._runs[0]
            model.optimizer._apply(model._be, owner._params[start:start + size], grads,
                                   model._bounds)
            return
        offset = 0
        for g in self.grads:
            np.copyto(g, grads[offset:offset + g.size])
            offset += g.size
        model._apply_update(model.optimizer)

    # ------------------------------------------------------------------ what rank 0 decides
    def _sync_control(self) -> None:
        """Rank 0's stop flag and optimizer settings on every rank."""
        model = self.model
        control = self.comm.bcast({"stop": bool(model.stop_training),
                                   "settings": S.optimizer_settings(model.optimizer)}
                                  if self.rank == 0 else None, root=0)
        model.stop_training = control["stop"]
        S.set_optimizer_settings(model.optimizer, control["settings"])
        self.settings, self.dirty = control["settings"], False

    def _note_callbacks(self) -> None:
        if self.rank == 0 and self.watched:
            self.dirty = bool(self.model.stop_training
                              or S.optimizer_settings(self.model.optimizer) != self.settings)

    def _sync_epoch_end(self, logs: dict[str, Any]) -> dict[str, Any]:
        logs = self.comm.bcast(logs if self.rank == 0 else None, root=0)
        self._sync_control()
        broadcast_arrays(self.comm, [owner._params for owner in self.model._owners()])
        return logs

    # ------------------------------------------------------------------ epochs
    def _epoch(self, epoch: int, epochs: int) -> dict[str, Any]:
        started = time.perf_counter()
        self.batches.gather_epoch()
        names = ["loss"] + self.keys
        sums = dict.fromkeys(names, 0.0)
        seen = 0
        progress = EpochProgress(epoch, epochs, self.batches.n, self.verbose)
        try:
            for k, total in enumerate(self.totals):
                for cb in self.callbacks:
                    cb.on_train_batch_begin(k, logs={})
                try:
                    result = self._step(k)
                except AllRanks as exc:
                    if not self.terminate_on_nan:
                        raise AllRanks(type(exc.error)(
                            f"epoch {epoch + 1}, batch {k + 1}: {exc.error}")) from None
                    for cb in self.callbacks:
                        cb.on_train_batch_end(k, logs={"loss": math.nan})
                    self.model.stop_training = True
                    break
                if result is None:
                    break
                loss, metric_sums = result
                seen += total
                sums["loss"] += loss * total
                for name, value in zip(names[1:], metric_sums):
                    sums[name] += float(value)
                progress.update(total, sums)
                for cb in self.callbacks:
                    cb.on_train_batch_end(k, logs={"loss": loss})
                self._note_callbacks()      # rank 0 goes on: the next step tells the others
            logs = {key: value / max(seen, 1) for key, value in sums.items()}
            if self.val is not None:
                logs.update(self._validation())
            progress.close(logs, time.perf_counter() - started)
        finally:
            progress.close_quietly()
        return logs

    def _validation(self) -> dict[str, float]:
        """The ``val_`` logs: each rank scores its part, the sums are added in rank order."""
        model, (Xv, Tv, Wv) = self.model, self.val
        if not self.sharded:
            lo, hi = shard(Xv.shape[0], self.ranks, self.rank)
            Xv, Tv = Xv[lo:hi], Tv[lo:hi]
            Wv = None if Wv is None else Wv[lo:hi]
        buf = self.val_reducer.buffer
        buf[:] = 0
        rows = Xv.shape[0]
        if rows:
            masks = model._mask_store(rows)
            out = model._predict_array(Xv, 4096, None, masks)
            buf[0] = model._loss_value(out, Tv, None, Wv, masks) * rows
            buf[1:1 + len(self.keys)] = self._sums(out, Tv, rows, masks)
        buf[-1] = rows
        summed = self.val_reducer()
        n = float(summed[-1])
        logs = {"val_loss": float(summed[0]) / n
                + (0.0 if model._fast else model._regularize(with_grads=False))}
        for j, name in enumerate(self.keys):
            logs["val_" + name] = float(summed[1 + j]) / n
        return logs

    def run(self, epochs: int, initial_epoch: int) -> DistributedHistory:
        model = self.model
        history = model.history = DistributedHistory()
        model.stop_training = False
        try:
            for cb in self.callbacks:
                cb.set_model(model)
                cb.on_train_begin({})
            if self.watched:
                self._sync_control()
            logs: dict[str, float] = {}
            for epoch in range(initial_epoch, epochs):
                for cb in self.callbacks:
                    cb.on_epoch_begin(epoch, {})
                if self.watched:
                    self._sync_control()
                logs = self._epoch(epoch, epochs)
                for cb in self.callbacks:
                    cb.on_epoch_end(epoch, logs)
                if self.watched:
                    logs = self._sync_epoch_end(logs)
                history.append(epoch, logs)
                if model.stop_training:
                    break
            for cb in self.callbacks:
                cb.on_train_end(logs)
            if self.watched:
                broadcast_arrays(self.comm, [owner._params for owner in model._owners()])
        finally:
            self.drops.restore()
            history.allreduce_seconds = self.reducer.seconds
        return history
