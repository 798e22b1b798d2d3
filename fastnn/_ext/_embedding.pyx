# Embedding kernels of the fast backend: a row gather (forward) and a scatter-add (backward).
#
# ids (m,) are embedding ids, int64 or float (a model hands its layers arrays of its own dtype;
# float32 holds every integer below 2**24 exactly), table (v, d) the embeddings. The public
# boundary cannot know the ids are valid without reading them, and the gather reads them
# anyway, so the check lives here: each id is checked (an integer in [0, v)) before its row is
# read, and the first bad position is returned for the caller to raise on. No extra pass.
#
# Forward splits the ids into contiguous chunks, one per thread; each chunk stops at its first
# bad id, and the smallest bad position over the chunks is the first one in id order. Backward
# adds dy rows into d(table) in the order of the ids: threads own ranges of table rows, each
# scans all the ids and adds only those in its range, so every row of d(table) is summed in
# the same order at any thread count (bitwise-identical results).

from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memcpy

from fastnn._ext._parallel cimport threads_for

ctypedef fused id_t:
    int64_t
    float
    double

cdef enum:
    MAX_CHUNKS = 64       # forward's bad-position slots (on the stack: no allocation)


cdef inline bint _valid(id_t v, Py_ssize_t n_rows) noexcept nogil:
    """v is an integer in [0, n_rows) (NaN and inf fail the range test)"""
    if id_t is int64_t:
        return v >= 0 and v < n_rows
    else:
        return v >= 0 and v < n_rows and <id_t>(<int64_t>v) == v


cdef Py_ssize_t _gather_chunk(const id_t *ids, Py_ssize_t lo, Py_ssize_t hi,
                              const floating *table, Py_ssize_t n_rows, Py_ssize_t d,
                              floating *out, int64_t *rows) noexcept nogil:
    """out[i] := table[ids[i]] and rows[i] := ids[i] for i in [lo, hi); the first i whose id
    is not valid (nothing read for it), or -1"""
    cdef Py_ssize_t i
    cdef int64_t r
    for i in range(lo, hi):
        if not _valid(ids[i], n_rows):
            return i
        r = <int64_t>ids[i]
        rows[i] = r
        memcpy(out + i * d, table + r * d, d * sizeof(floating))
    return -1


def embedding_forward(const id_t[::1] ids,             # IN  (m,) ids
                      const floating[:, ::1] table,    # IN  (v, d)
                      floating[:, ::1] out,            # OUT (m, d)
                      int64_t[::1] rows):              # OUT (m,) the ids as int64
    """out[i] := table[ids[i]];  returns the first position i whose id is not an integer in
    [0, v), or -1 (then out and rows are partly written)"""
    cdef Py_ssize_t m = ids.shape[0], v = table.shape[0], d = table.shape[1]
    cdef Py_ssize_t chunks, size, c, first = -1
    cdef Py_ssize_t bad[MAX_CHUNKS]
    if out.shape[0] != m or out.shape[1] != d or rows.shape[0] != m:
        raise ValueError(f"embedding_forward: ids ({m},), table ({v}, {d}), out "
                         f"({out.shape[0]}, {out.shape[1]}) and rows ({rows.shape[0]},) do not "
                         f"match")
    if m == 0:
        return -1
    chunks = threads_for(m * d)
    if chunks > MAX_CHUNKS:
        chunks = MAX_CHUNKS
    if chunks > m:
        chunks = m
    size = (m + chunks - 1) // chunks
    with nogil:
        for c in prange(chunks, schedule="static", num_threads=chunks):
            bad[c] = _gather_chunk(&ids[0], c * size, min(m, (c + 1) * size),
                                   &table[0, 0] if v * d else NULL, v, d,
                                   &out[0, 0] if d else NULL, &rows[0])
    for c in range(chunks):
        if bad[c] >= 0:
            first = bad[c]
            break
    return first


def embedding_backward(const int64_t[::1] rows,        # IN  (m,) ids from embedding_forward
                       const floating[:, ::1] dy,      # IN  (m, d)
                       floating[:, ::1] dtable):       # IN/OUT (v, d)
    """dtable[rows[i]] += dy[i] for i = 0 .. m-1 in that order (ids outside [0, v) dropped)"""
    cdef Py_ssize_t m = rows.shape[0], v = dtable.shape[0], d = dtable.shape[1]
    cdef Py_ssize_t parts, span, t, lo, hi, i, k
    cdef int64_t r
    cdef floating *dst
    cdef const floating *src
    if dy.shape[0] != m or dy.shape[1] != d:
        raise ValueError(f"embedding_backward: rows ({m},), dy ({dy.shape[0]}, {dy.shape[1]}) "
                         f"and dtable ({v}, {d}) do not match")
    if m == 0 or v == 0 or d == 0:
        return
    # each part scans all m ids, so split only when the adds dwarf the scans
    parts = threads_for(m * d) if d >= 8 else 1
    if parts > v:
        parts = v
    span = (v + parts - 1) // parts
    with nogil:
        for t in prange(parts, schedule="static", num_threads=parts):
            lo = t * span
            hi = min(v, lo + span)
            for i in range(m):
                r = rows[i]
                if r >= lo and r < hi:
                    dst = &dtable[0, 0] + r * d
                    src = &dy[0, 0] + i * d
                    for k in range(d):
                        dst[k] += src[k]
