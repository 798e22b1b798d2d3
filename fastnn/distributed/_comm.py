"""What the ranks exchange: the fixed-order sum of one flat buffer, the agreement before
training, rank 0's model state, and the abort of a rank that fails.

Why not ``MPI_Allreduce``: the MPI standard leaves the order in which it adds the ranks'
values to the implementation, which picks an algorithm by message size and rank count, and
with more than two ranks does not promise that every rank gets the same bits (floating-point
addition is not associative). ``FixedOrderSum`` does the reduction itself: an ``Alltoall``
hands chunk j of every rank's buffer to rank j, rank j adds its P pieces in rank order,
``((b_0 + b_1) + b_2) + ...``, and an ``Allgather`` copies the P sums to every rank. Each sum
is computed once, in an order that depends only on the number of ranks, so all ranks hold the
same bits, every run, whatever MPI library is underneath; each rank sends and receives
2 (P - 1) / P of the buffer, as the bandwidth-optimal allreduce algorithms do.
"""

from __future__ import annotations

import sys
import time
import traceback
from typing import Any, NoReturn, Optional

import numpy as np

from fastnn._memory import aligned_empty, aligned_zeros


ABORT_DELAY = 1.0       # seconds between the report of a failing rank and MPI_Abort


class FixedOrderSum:
    """``sum over ranks of buffer``, the same bits on every rank (see the module docstring).

    Each rank writes its contribution into ``buffer`` (``size`` values of ``dtype``), then
    calls the object; the result is a view valid until the next call. ``seconds`` records
    the duration of each call.
    """

    def __init__(self, comm: Any, size: int, dtype: Any) -> None:
        self.comm, self.ranks, self.size = comm, comm.Get_size(), size
        chunk = max(1, -(-size // self.ranks))
        # aligned as the model's own buffers: the optimizer's kernels read the result in place
        self._send = aligned_zeros((self.ranks, chunk), dtype)     # padding stays 0
        self._recv = aligned_empty((self.ranks, chunk), dtype)
        self._part = aligned_empty(chunk, dtype)
        self._out = aligned_empty(self.ranks * chunk, dtype)
        self.buffer = self._send.reshape(-1)[:size]
        self.seconds: list[float] = []

    def __call__(self) -> Any:
        started = time.perf_counter()
        if self.ranks == 1:
            result = self.buffer
        else:
            self.comm.Alltoall(self._send, self._recv)
            part, pieces = self._part, self._recv
            np.copyto(part, pieces[0])
            for j in range(1, self.ranks):                # rank order: the fixed association
                np.add(part, pieces[j], out=part)
            self.comm.Allgather(part, self._out)
            result = self._out[:self.size]
        self.seconds.append(time.perf_counter() - started)
        return result


def agree(comm: Any, error: Optional[Exception], info: Any) -> list[Any]:
    """Every rank's ``info`` once every rank got through its checks; when one did not, the
    ranks that failed raise their own error and the others a RuntimeError naming them (no rank
    is left waiting for the others)."""
    gathered = comm.allgather((None if error is None else f"{type(error).__name__}: {error}",
                               info))
    failed = [(rank, message) for rank, (message, _) in enumerate(gathered) if message]
    if error is not None:
        raise error
    if failed:
        names = "; ".join(f"rank {rank}: {message}" for rank, message in failed)
        raise RuntimeError(f"fastnn.distributed.fit: training did not start because "
                           f"{'a rank' if len(failed) == 1 else 'ranks'} refused it: {names}")
    return [item for _, item in gathered]


def abort(comm: Any, exc: BaseException) -> NoReturn:
    """Report ``exc`` naming this rank, then end every rank of ``comm`` (``MPI_Abort``): the
    others are waiting for this one in a collective call and would wait forever."""
    rank, ranks = comm.Get_rank(), comm.Get_size()
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    sys.stdout.flush()
    sys.stderr.write("".join(lines))
    sys.stderr.write(f"fastnn.distributed: rank {rank} of {ranks} raised "
                     f"{type(exc).__name__}: {exc}\nfastnn.distributed: aborting all {ranks} "
                     f"ranks (MPI_Abort) so that none waits forever for rank {rank}\n")
    sys.stderr.flush()
    # The process manager forwards a rank's output asynchronously, and tearing the job down
    # can overtake it (MPICH's mpiexec lost the message about 1 time in 30): give it time.
    time.sleep(ABORT_DELAY)
    comm.Abort(1)
    raise SystemExit(1)            # not reached: MPI_Abort does not return


def broadcast_arrays(comm: Any, arrays: list[Any]) -> None:
    """Rank 0's values into each array, in place (each a contiguous array of the same shape
    and dtype on every rank: ``agree`` compared the layouts first)."""
    for arr in arrays:
        if arr is not None and arr.size:
            comm.Bcast(arr, root=0)
