"""Data-parallel training over MPI: ``fastnn.distributed.fit(model, X, y, **fit's options)``.

Needs mpi4py and an MPI library: ``pip install "fastnn[mpi]"`` installs both (MPICH from a
wheel); mpi4py over a system MPI works too. fastnn itself imports without them.

The script calls it on every rank, with the same model (same seed) and options::

    import fastnn as fnn
    model = fnn.Sequential([...], input_dim=784, seed=0)
    model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.05, momentum=0.9))
    history = fnn.distributed.fit(model, X, y, epochs=10, batch_size=256)   # was model.fit(...)

and runs as ``mpiexec -n 4 python train.py`` (see the README, "Past one machine").

What a step does: ``batch_size`` is the global batch; the shuffle order comes from the
model's seed and is the same on all ranks; rank r takes its contiguous part of every global
batch (the first ``rows % ranks`` ranks one row more), computes its mean gradient with the
model's own kernels, and the ranks' gradients, weighted by their rows, are summed in one
reduction per step, so each update uses the mean over the global batch. After any number of
steps every rank holds the same weights to the bit, and they follow single-process ``fit`` on
the same global batches up to rounding. The sum is added in rank order by fastnn (not
``MPI_Allreduce``, whose order MPI leaves open: see ``fastnn.distributed._comm``), so a run is
bitwise reproducible for a given number of ranks.

Everything that is not a gradient: the parameters, the optimizer's state and settings, the
shuffle generator and the dropout seeds start from rank 0's broadcast. Callbacks and the
progress output run on rank 0 only (so a ``ModelCheckpoint`` is written once, by rank 0);
what they change reaches every rank: ``stop_training`` and the optimizer's settings (a
learning-rate schedule) from the next step on, the weights (``restore_best_weights``) at the
end of each epoch and of training. Logs and the returned History are global (the ranks' loss
and metric sums added up) and the same on every rank. Dropout masks differ between ranks (rank
0 draws the model's); BatchNormalization normalises each rank's part with its own statistics
(as PyTorch's DistributedDataParallel without SyncBatchNorm) and its moving statistics are
the ranks' updates averaged, weighted by rows, so they too are the same on every rank.

Failures: an error that every rank meets at the same point (bad arguments on some rank
before training, a loss or update that is not finite) is raised on every rank. Any other
exception on one rank (a callback on rank 0, Ctrl-C, a bug) would leave the others waiting in
the next reduction forever, so ``fit`` prints it with the rank's number and calls
``MPI_Abort``, which ends every rank of the job with a non-zero exit status.
"""

from __future__ import annotations

import warnings
import zlib
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike

from fastnn.callbacks import Callback, TerminateOnNaN
from fastnn.distributed import _model_state as S
from fastnn.distributed._comm import abort, agree
from fastnn.distributed._batches import shard
from fastnn.distributed._loop import AllRanks, DistributedHistory, Trainer
from fastnn.models.fit_loop import _is_batch_source

__all__ = ["fit", "DistributedHistory"]

_INSTALL = ('fastnn.distributed needs mpi4py and an MPI library: pip install "fastnn[mpi]" '
            '(mpi4py with MPICH from a wheel), or pip install mpi4py over a system MPI')


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(f"{_INSTALL} ({exc})") from None
    except RuntimeError as exc:           # mpi4py is there but finds no MPI library
        raise ImportError(f"{_INSTALL} ({exc})") from None
    return MPI


def fit(model: Any, X: Any, y: Optional[ArrayLike] = None, epochs: int = 1,
        batch_size: int = 32, validation_data: Optional[tuple[ArrayLike, ArrayLike]] = None,
        validation_split: float = 0.0, shuffle: bool = True, verbose: int = 1,
        callbacks: Optional[Sequence[Callback]] = None,
        sample_weight: Optional[ArrayLike] = None,
        class_weight: Optional[Mapping[int, float]] = None,
        steps_per_epoch: Optional[int] = None, initial_epoch: int = 0, *,
        sharded: bool = False, comm: Any = None) -> DistributedHistory:
    """``model.fit(X, y, ...)`` over the ranks of an MPI communicator (see the module docstring).

    Call it on every rank with the same compiled model and the same options; the options are
    ``Model.fit``'s, with its defaults and checks.

    Parameters
    ----------
    model : Sequential or Model
        Compiled; built from the same code (its weights are replaced by rank 0's).
    X, y, epochs, batch_size, validation_data, validation_split, shuffle, verbose, callbacks,
    sample_weight, class_weight, initial_epoch
        As in ``fit``. ``batch_size`` is the global batch (all ranks together); ``verbose`` and
        ``callbacks`` apply on rank 0.
    steps_per_epoch
        Refused, as is an iterable of batches for ``X``: the batches are cut from arrays.
    sharded : bool, default False
        False: every rank passes the same arrays (checked on a sample of rows). True: each rank
        passes its own part (``X``, ``y``, ``sample_weight``, ``validation_data`` all this
        rank's), for data that no rank loads whole. Each global batch is then every rank's
        next ``batch_size / ranks`` rows (split as above); with ``shuffle`` each rank shuffles
        its part, from the model's seed and its rank; ``validation_split`` holds out the end
        of each part.
    comm : mpi4py communicator, optional
        Default ``MPI.COMM_WORLD``.

    Returns
    -------
    DistributedHistory
        As ``fit``'s History, the same on every rank; plus ``allreduce_seconds``, this rank's
        time in each step's gradient sum.

    Raises
    ------
    ImportError
        Without mpi4py or an MPI library (``pip install "fastnn[mpi]"``).
    ValueError, TypeError
        As ``fit`` (on the rank whose argument is bad; the others raise RuntimeError naming
        it); also when the ranks' options, models or (``sharded=False``) arrays differ.
    FloatingPointError
        On every rank, as ``fit``.
    """
    if comm is None:
        comm = _mpi().COMM_WORLD
    rank = comm.Get_rank()
    lock = getattr(model, "_busy", None)
    locked = False
    error: Optional[Exception] = None
    prepared: Any = None
    info: Any = None
    try:
        locked = lock is not None and lock.acquire(blocking=False)
        with warnings.catch_warnings():
            if rank:                            # rank 0 alone says what every rank would
                warnings.simplefilter("ignore")
            prepared = _prepare(model, locked, X, y, epochs, batch_size, validation_data,
                                validation_split, shuffle, verbose, callbacks, sample_weight,
                                class_weight, steps_per_epoch, initial_epoch, sharded)
        info = _describe(model, prepared, sharded)
    except Exception as exc:
        error = exc
    try:
        infos = agree(comm, error, info)
        counts = _check_same(infos, sharded, comm.Get_size(), prepared["batch_size"])
    except BaseException:
        if locked:
            model._busy.release()
        raise
    try:
        S.broadcast_start(comm, model)
        trainer = Trainer(comm, model, prepared["data"], counts, sharded,
                          prepared["batch_size"], prepared["shuffle"], prepared["verbose"],
                          prepared["callbacks"], infos[0])
        return trainer.run(prepared["epochs"], prepared["initial_epoch"])
    except AllRanks as exc:
        raise exc.error from None
    except BaseException as exc:
        if comm.Get_size() == 1:
            raise
        abort(comm, exc)
    finally:
        model._busy.release()


def _prepare(model: Any, locked: bool, X: Any, y: Any, epochs: Any, batch_size: Any,
             validation_data: Any, validation_split: Any, shuffle: Any, verbose: Any,
             callbacks: Any, sample_weight: Any, class_weight: Any, steps_per_epoch: Any,
             initial_epoch: Any, sharded: Any) -> dict[str, Any]:
    """fit's checks (the same code, so the same messages), on this rank's arguments."""
    from fastnn import _validation as V
    from fastnn.models.base import BaseModel
    if not isinstance(model, BaseModel):
        raise TypeError(f"model must be a fastnn Sequential or Model. Received: "
                        f"{type(model).__name__}")
    if not locked:
        raise RuntimeError("fit: the model is being trained or changed in another thread; a "
                           "model trains in one thread at a time")
    model._check_compiled("fit")
    heads = getattr(model, "_heads", None)
    if heads is not None:
        raise ValueError(f"fastnn.distributed.fit trains models with one output; this one has "
                         f"the outputs {heads.names} (train it with model.fit)")
    sharded = V.check_bool("sharded", sharded)
    epochs = V.check_int("epochs", epochs, low=0)
    initial_epoch = V.check_int("initial_epoch", initial_epoch, low=0)
    if _is_batch_source(X) or steps_per_epoch is not None:
        raise TypeError("fastnn.distributed.fit takes arrays, which it cuts into each rank's "
                        "part of every batch: not an iterable of batches or steps_per_epoch "
                        "(for data no rank loads whole, give each rank its part with "
                        "sharded=True)")
    X, T, W, val, batch_size, shuffle, verbose, callbacks = model._fit_arrays(
        X, y, batch_size, validation_data, validation_split, shuffle, verbose, callbacks,
        sample_weight, class_weight)
    return {"data": (X, T, W, val), "batch_size": batch_size, "shuffle": shuffle,
            "verbose": verbose, "callbacks": callbacks, "epochs": epochs,
            "initial_epoch": initial_epoch, "validation_split": validation_split}


def _fingerprint(arrays: Sequence[Any]) -> int:
    """A checksum of each array's shape and of up to 64 of its rows, evenly spaced."""
    crc = 0
    for arr in arrays:
        if arr is None:
            crc = zlib.crc32(b"none", crc)
            continue
        n = arr.shape[0]
        rows = np.unique(np.linspace(0, n - 1, min(n, 64)).astype(np.intp))
        crc = zlib.crc32(repr((arr.shape, arr.dtype.str)).encode(), crc)
        crc = zlib.crc32(np.ascontiguousarray(arr[rows]).tobytes(), crc)
    return crc


def _describe(model: Any, prepared: dict[str, Any], sharded: bool) -> dict[str, Any]:
    X, T, W, val = prepared["data"]
    callbacks = prepared["callbacks"]
    return {"options": (prepared["epochs"], prepared["initial_epoch"], prepared["batch_size"],
                        prepared["shuffle"], sharded, prepared["validation_split"],
                        val is not None, W is not None),
            "model": S.layout(model), "rows": X.shape[0],
            "data": None if sharded else _fingerprint([X, T, W] + list(val or [])),
            "callbacks": bool(callbacks),
            "terminate_on_nan": any(isinstance(cb, TerminateOnNaN) for cb in callbacks)}


def _check_same(infos: list[dict[str, Any]], sharded: bool, ranks: int,
                batch_size: int) -> list[int]:
    """ValueError (on every rank alike: all see the same infos) unless the ranks agree;
    returns each rank's number of training rows."""
    first = infos[0]
    for rank, info in enumerate(infos[1:], 1):
        for key, what in (("options", "fit's options (epochs, initial_epoch, batch_size, "
                                      "shuffle, sharded, validation, weights)"),
                          ("model", "model (layout, dtype, optimizer, loss, metrics)"),
                          ("data", "arrays (with sharded=False every rank passes the same "
                                   "ones; pass sharded=True when each loads its own part)")):
            if info[key] != first[key]:
                raise ValueError(f"fastnn.distributed.fit needs the same {what} on every "
                                 f"rank: rank {rank} differs from rank 0: {info[key]!r} vs "
                                 f"{first[key]!r}")
    counts = [info["rows"] for info in infos]
    if sharded:
        batch = min(batch_size, sum(counts))
        short = [rank for rank in range(ranks) if shard(batch, ranks, rank)[1]
                 == shard(batch, ranks, rank)[0]]
        if short:
            raise ValueError(f"with sharded=True every rank takes part of every batch: "
                             f"batch_size (global, at most the {sum(counts)} samples) must "
                             f"be at least the number of ranks, {ranks}. Received: "
                             f"batch_size={batch_size}")
    return counts
