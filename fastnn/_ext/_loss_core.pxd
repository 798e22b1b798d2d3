# Loss rows shared by the loss kernel (_loss.pyx) and the compiled training step (_train.pxi):
# inline, so each module compiles its own copy of one source. See _loss.pyx for the kinds.

from cython cimport floating
from cython.parallel cimport prange
from libc.float cimport FLT_EPSILON, DBL_EPSILON
from libc.math cimport exp, log, log1p, fabs
from libc.stdlib cimport malloc, free

from fastnn._ext._elementwise cimport f_exp, f_log, sigmoid
from fastnn._ext._parallel cimport threads_for, fnn_ftz_enter, fnn_ftz_leave

cdef enum:
    MSE = 0
    BCE_LOGITS = 1
    BCE_PROBS = 2
    BCE_SIGMOID = 3
    CE_LOGITS = 4
    CE_PROBS = 5
    CE_SOFTMAX = 6


cdef inline floating _clip(floating p, floating lo, floating hi) noexcept nogil:
    return lo if p < lo else (hi if p > hi else p)


cdef inline double _bce_row(int kind, const floating *o, const floating *t, floating *g,
                            Py_ssize_t c, floating count, floating eps) noexcept nogil:
    """sum_j BCE term;  g := (sigmoid(z) - t) / count  |  (pc - t) / (pc (1 - pc)) / count
    |  (p - t) / count  for BCE_LOGITS | BCE_PROBS | BCE_SIGMOID"""
    cdef Py_ssize_t j
    cdef double s = 0
    cdef floating z, pc
    for j in range(c):
        z = o[j]
        if kind == BCE_LOGITS:
            s += (z if z > 0 else 0) - <double>z * t[j] + log1p(exp(-fabs(<double>z)))
            if g != NULL:
                g[j] = (sigmoid(z) - t[j]) / count
        else:
            pc = _clip(z, eps, 1 - eps)
            if t[j] != 0:                # 0 * log(.) adds nothing: skip the log for hard targets
                s -= t[j] * f_log(pc)
            if t[j] != 1:
                s -= (1 - t[j]) * f_log(1 - pc)
            if g != NULL:
                if kind == BCE_PROBS:
                    g[j] = (pc - t[j]) / (pc * (1 - pc)) / count
                else:
                    g[j] = (z - t[j]) / count
    return s


cdef inline double _ce_row(int kind, const floating *o, const floating *t, floating *g,
                           Py_ssize_t c, floating count, floating eps) noexcept nogil:
    """sum_j t_j (lse - z_j) or -sum_j t_j log max(p_j, eps); g as the contract says."""
    cdef Py_ssize_t j
    cdef double s = 0, se = 0, lse, tsum = 0
    cdef floating mx, pc, e
    if kind == CE_LOGITS:
        mx = o[0]
        for j in range(1, c):
            if o[j] > mx:
                mx = o[j]
        for j in range(c):
            e = f_exp(o[j] - mx)
            se += e
            tsum += t[j]
            if g != NULL:
                g[j] = e                 # keep exp(z - max) for the softmax below
        lse = mx + log(se)
        for j in range(c):
            if t[j] != 0:
                s += t[j] * (lse - o[j])
            if g != NULL:
                g[j] = <floating>((g[j] / se * tsum - t[j]) / count)
        return s
    for j in range(c):
        pc = o[j] if o[j] > eps else eps
        if t[j] != 0:                    # one-hot targets: one log per row, not C
            s -= t[j] * f_log(pc)
        if g != NULL:
            if kind == CE_PROBS:
                g[j] = -t[j] / pc / count
            else:
                g[j] = (o[j] - t[j]) / count
    return s


cdef inline double _row(int kind, const floating *o, const floating *t, floating *g,
                        Py_ssize_t c, floating count, floating eps) noexcept nogil:
    """The loss sum of one row (before the mean), writing that row of the gradient."""
    cdef Py_ssize_t j
    cdef double s = 0
    cdef floating d
    cdef floating two_over_count = <floating>(2.0 / count)
    if kind == MSE:
        # Squared in the array dtype like the NumPy backend, so a float32 loss overflows to inf
        # at the same step in both backends (and the model stops on a non-finite loss).
        for j in range(c):
            d = o[j] - t[j]
            s += d * d
            if g != NULL:
                g[j] = d * two_over_count
        return s
    if kind >= CE_LOGITS:
        return _ce_row(kind, o, t, g, c, count, eps)
    return _bce_row(kind, o, t, g, c, count, eps)


cdef inline double _loss_sum(int kind, const floating *o, const floating *t, floating *g,
                             Py_ssize_t n, Py_ssize_t c, floating count) noexcept nogil:
    """sum over rows of _row, added in row order."""
    cdef Py_ssize_t i, b
    cdef unsigned int csr
    cdef double total = 0
    cdef double *partial = NULL
    cdef floating eps = FLT_EPSILON if floating is float else DBL_EPSILON
    cdef int nt = threads_for(n * c)
    if nt > 1:
        partial = <double *>malloc(n * sizeof(double))
    if partial == NULL:                  # one thread (or no scratch memory): add as we go
        if kind == CE_SOFTMAX and g != NULL:
            # the gradient (p - t) / count of _ce_row over the whole block in one flat loop (it
            # vectorises, where a row of a few classes does not); then the rows' losses alone
            for i in range(n * c):
                g[i] = (o[i] - t[i]) / count
            g = NULL
        for i in range(n):
            total += _row(kind, o + i * c, t + i * c, NULL if g == NULL else g + i * c, c,
                          count, eps)
        return total
    for b in prange(nt, schedule='static', num_threads=nt):     # one block of rows per thread
        csr = fnn_ftz_enter()
        for i in range(b * n // nt, (b + 1) * n // nt):
            partial[i] = _row(kind, o + i * c, t + i * c, NULL if g == NULL else g + i * c, c,
                              count, eps)
        fnn_ftz_leave(csr)
    for i in range(n):
        total += partial[i]
    free(partial)
    return total
