"""Which rows each rank trains on at each step of an epoch.

Arrays given whole to every rank: the epoch's order is the model's shuffle (the same draw as
single-process ``fit``, so the same global batches) and rank r takes its contiguous part of
each batch. Sharded arrays (each rank its own part): global batch k is every rank's k-th run
of ``share`` rows, each part in an order drawn from the model's generator and the rank; a rank
whose part is used up contributes no rows to the last batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn._memory import aligned_empty


def shard(rows: int, ranks: int, rank: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous part [lo, hi) of ``rows`` rows: the first rows % ranks
    ranks take one row more."""
    base, extra = divmod(rows, ranks)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def _size(rows: int, ranks: int, rank: int) -> int:
    lo, hi = shard(rows, ranks, rank)
    return hi - lo


class Batches:
    """This rank's rows of every step: ``rows[k]`` of the global ``totals[k]``, at
    ``offsets[k]`` in ``Xs``, ``Ts`` (``Ws``), which ``gather_epoch`` fills for each epoch."""

    def __init__(self, arrays: tuple[Any, Any, Any], counts: list[int], sharded: bool,
                 batch_size: int, shuffle: bool, rank: int, ranks: int, rng: Any) -> None:
        self.X, self.T, self.W = arrays
        self.sharded, self.shuffle, self.rank, self.ranks, self.rng = (sharded, shuffle, rank,
                                                                       ranks, rng)
        self.n = sum(counts) if sharded else counts[0]         # samples in an epoch
        self.batch = min(batch_size, self.n)
        if sharded:
            shares = [_size(self.batch, ranks, q) for q in range(ranks)]
            steps = max(-(-c // s) for c, s in zip(counts, shares))
            per_rank = [[min(max(c - k * s, 0), s) for k in range(steps)]
                        for c, s in zip(counts, shares)]
            self.rows = per_rank[rank]
            self.totals = [sum(taken[k] for taken in per_rank) for k in range(steps)]
            self.share, self.local = shares[rank], counts[rank]
        else:
            self.totals = [min(self.batch, self.n - s) for s in range(0, self.n, self.batch)]
            self.rows = [_size(m, ranks, rank) for m in self.totals]
        self.offsets = np.concatenate([[0], np.cumsum(self.rows)]).astype(np.intp)
        taken = int(self.offsets[-1])
        self.Xs = aligned_empty((taken,) + self.X.shape[1:], self.X.dtype)
        self.Ts = aligned_empty((taken,) + self.T.shape[1:], self.T.dtype)
        # W: (n,), or (n, outputs) for several outputs (a column of weights per output)
        self.Ws = (None if self.W is None
                   else aligned_empty((taken,) + self.W.shape[1:], self.W.dtype))

    def gather_epoch(self) -> None:
        """Draw the epoch's order and copy this rank's rows of it, step by step."""
        if self.sharded:
            # one draw from the shared generator (the same on all ranks), then the rank's own
            key = int(self.rng.integers(0, 2**63)) if self.shuffle else None
            order = (np.arange(self.local) if key is None else
                     np.random.default_rng([key, self.rank]).permutation(self.local))
            picks = [order[k * self.share:k * self.share + rows]
                     for k, rows in enumerate(self.rows)]
        else:
            order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
            picks = []
            for k, m in enumerate(self.totals):
                lo, hi = shard(m, self.ranks, self.rank)
                picks.append(order[k * self.batch + lo:k * self.batch + hi])
        index = np.concatenate(picks)
        np.take(self.X, index, axis=0, out=self.Xs)
        np.take(self.T, index, axis=0, out=self.Ts)
        if self.W is not None:
            np.take(self.W, index, axis=0, out=self.Ws)
