"""The NumPy twins of the embedding kernels (fastnn/_ext/_embedding.pyx): the same functions
and signatures.

ids (m,) are int64 or float embedding ids, table (v, d). Forward gathers rows after checking
every id is an integer in [0, v) (returning the first bad position, as the compiled gather
does); backward adds dy rows into d(table) in the order of the ids (``np.add.at`` is
unbuffered and goes through the indices in order, so each row's sum is the compiled one's).
"""

import numpy as np


def embedding_forward(ids, table, out, rows):
    """out[i] := table[ids[i]];  returns the first position i whose id is not an integer in
    [0, v), or -1"""
    v = table.shape[0]
    if ids.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ok = (ids >= 0) & (ids < v) & (ids == np.floor(ids))
    else:
        ok = (ids >= 0) & (ids < v)
    if not ok.all():
        return int(np.argmin(ok))
    rows[...] = ids
    np.take(table, rows, axis=0, out=out)
    return -1


def embedding_backward(rows, dy, dtable):
    """dtable[rows[i]] += dy[i] for i = 0 .. m-1 in that order (ids outside [0, v) dropped)"""
    keep = (rows >= 0) & (rows < dtable.shape[0])
    if keep.all():
        np.add.at(dtable, rows, dy)
    else:
        np.add.at(dtable, rows[keep], dy[keep])
