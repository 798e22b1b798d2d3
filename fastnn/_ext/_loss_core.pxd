# Loss rows shared by the loss kernel (_loss.pyx) and the compiled training step (_train.pxi):
# inline, so each module compiles its own copy of one source. See _loss.pyx for the kinds.

from cython cimport floating
from cython.parallel cimport prange
from libc.float cimport FLT_EPSILON, DBL_EPSILON
from libc.math cimport exp, log, log1p, fabs
from libc.stdlib cimport malloc, free

from fastnn._ext._elementwise cimport f_exp, f_log, sigmoid
from fastnn._ext._parallel cimport threads_for, fnn_ftz_enter, fnn_ftz_leave

# The codes of fastnn.losses. The element-wise kinds come first and the cross-entropies last, so
# `kind >= CE_LOGITS` (a mean over rows, label targets accepted) holds for the cross-entropies only.
cdef enum:
    MSE = 0
    MAE = 1
    HUBER = 2
    BCE_LOGITS = 3
    BCE_PROBS = 4
    BCE_SIGMOID = 5
    CE_LOGITS = 6
    CE_PROBS = 7
    CE_SOFTMAX = 8


cdef inline floating _clip(floating p, floating lo, floating hi) noexcept nogil:
    return lo if p < lo else (hi if p > hi else p)


cdef inline floating _smoothed(floating t, floating keep, floating off) noexcept nogil:
    """Keras' label smoothing of a cross-entropy target: t keep + off (keep = 1 - smoothing,
    off = smoothing / C, or / 2 for binary); t itself when keep is 1."""
    return t if keep == 1 else t * keep + off


cdef inline double _bce_row(int kind, const floating *o, const floating *t, floating *g,
                            Py_ssize_t c, floating count, floating eps,
                            floating keep) noexcept nogil:
    """sum_j BCE term;  g := (sigmoid(z) - t) / count  |  (pc - t) / (pc (1 - pc)) / count
    |  (p - t) / count  for BCE_LOGITS | BCE_PROBS | BCE_SIGMOID, with t smoothed (keep)"""
    cdef Py_ssize_t j
    cdef double s = 0
    cdef floating z, pc, tj
    cdef floating off = (1 - keep) * <floating>0.5
    for j in range(c):
        z = o[j]
        tj = _smoothed(t[j], keep, off)
        if kind == BCE_LOGITS:
            s += (z if z > 0 else 0) - <double>z * tj + log1p(exp(-fabs(<double>z)))
            if g != NULL:
                g[j] = (sigmoid(z) - tj) / count
        else:
            pc = _clip(z, eps, 1 - eps)
            if tj != 0:                  # 0 * log(.) adds nothing: skip the log for hard targets
                s -= tj * f_log(pc)
            if tj != 1:
                s -= (1 - tj) * f_log(1 - pc)
            if g != NULL:
                if kind == BCE_PROBS:
                    g[j] = (pc - tj) / (pc * (1 - pc)) / count
                else:
                    g[j] = (z - tj) / count
    return s


cdef inline double _ce_row(int kind, const floating *o, const floating *t, floating *g,
                           Py_ssize_t c, floating count, floating eps,
                           floating keep) noexcept nogil:
    """sum_j t_j (lse - z_j) or -sum_j t_j log max(p_j, eps); g as the contract says; t smoothed
    (keep)."""
    cdef Py_ssize_t j
    cdef double s = 0, se = 0, lse, tsum = 0
    cdef floating mx, pc, e, tj
    cdef floating off = (1 - keep) / <floating>c
    if kind == CE_LOGITS:
        mx = o[0]
        for j in range(1, c):
            if o[j] > mx:
                mx = o[j]
        for j in range(c):
            e = f_exp(o[j] - mx)
            se += e
            tsum += _smoothed(t[j], keep, off)
            if g != NULL:
                g[j] = e                 # keep exp(z - max) for the softmax below
        lse = mx + log(se)
        for j in range(c):
            tj = _smoothed(t[j], keep, off)
            if tj != 0:
                s += tj * (lse - o[j])
            if g != NULL:
                g[j] = <floating>((g[j] / se * tsum - tj) / count)
        return s
    for j in range(c):
        pc = o[j] if o[j] > eps else eps
        tj = _smoothed(t[j], keep, off)
        if tj != 0:                      # one-hot targets: one log per row, not C
            s -= tj * f_log(pc)
        if g != NULL:
            if kind == CE_PROBS:
                g[j] = -tj / pc / count
            else:
                g[j] = (o[j] - tj) / count
    return s


cdef inline double _abs_row(int kind, const floating *o, const floating *t, floating *g,
                            Py_ssize_t c, floating count, floating delta) noexcept nogil:
    """d = o - t.  MAE: sum_j |d_j|;  g := sign(d) / count.
    HUBER: sum_j (|d| <= delta ? d^2 / 2 : delta |d| - delta^2 / 2);  g := clip(d, +-delta) / count
    (Keras' huber; the terms in the array dtype, as MSE's)"""
    cdef Py_ssize_t j
    cdef double s = 0
    cdef floating d, a
    cdef floating half = 0.5
    cdef floating inv_count = <floating>(1.0 / count)
    cdef floating half_dd = half * (delta * delta)
    for j in range(c):
        d = o[j] - t[j]
        a = d if d >= 0 else -d
        if kind == MAE:
            s += a
            if g != NULL:
                g[j] = inv_count if d > 0 else (-inv_count if d < 0 else <floating>0)
        elif a <= delta:
            s += half * (d * d)
            if g != NULL:
                g[j] = d * inv_count
        else:
            s += delta * a - half_dd
            if g != NULL:
                g[j] = (delta if d > 0 else -delta) * inv_count
    return s


cdef inline double _row(int kind, const floating *o, const floating *t, floating *g,
                        Py_ssize_t c, floating count, floating eps,
                        floating param) noexcept nogil:
    """The loss sum of one row (before the mean), writing that row of the gradient; `param` is
    the loss's parameter: Huber's delta; for the cross-entropies 1 - label smoothing (1: none);
    unused by MSE and MAE."""
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
        return _ce_row(kind, o, t, g, c, count, eps, param)
    if kind <= HUBER:
        return _abs_row(kind, o, t, g, c, count, param)
    return _bce_row(kind, o, t, g, c, count, eps, param)


cdef inline double _weighted_row(int kind, const floating *o, const floating *t, floating *g,
                                 const floating *w, Py_ssize_t i, Py_ssize_t c, floating count,
                                 floating eps, floating param) noexcept nogil:
    """_row of row i; with sample weights w (not NULL): w_i * that sum, the gradient row times
    w_i (Keras' "sum_over_batch_size": each sample's loss weighted, the mean over the batch)."""
    cdef Py_ssize_t j
    cdef double s = _row(kind, o, t, g, c, count, eps, param)
    if w == NULL:
        return s
    if g != NULL:
        for j in range(c):
            g[j] = g[j] * w[i]
    return w[i] * s


cdef inline double _loss_sum(int kind, const floating *o, const floating *t, floating *g,
                             Py_ssize_t n, Py_ssize_t c, floating count) noexcept nogil:
    """sum over rows of _row, added in row order (no sample weights, parameter 1)."""
    return _loss_sum_weighted(kind, o, t, g, NULL, n, c, count, 1)


cdef inline double _loss_sum_weighted(int kind, const floating *o, const floating *t,
                                      floating *g, const floating *w, Py_ssize_t n, Py_ssize_t c,
                                      floating count, floating param) noexcept nogil:
    """sum over rows of _weighted_row (w may be NULL: no weights), added in row order."""
    cdef Py_ssize_t i, b
    cdef unsigned int csr
    cdef double total = 0
    cdef double *partial = NULL
    cdef floating eps = FLT_EPSILON if floating is float else DBL_EPSILON
    cdef int nt = threads_for(n * c)
    if nt > 1:
        partial = <double *>malloc(n * sizeof(double))
    if partial == NULL:                  # one thread (or no scratch memory): add as we go
        if kind == CE_SOFTMAX and g != NULL and w == NULL and param == 1:
            # the gradient (p - t) / count of _ce_row over the whole block in one flat loop (it
            # vectorises, where a row of a few classes does not); then the rows' losses alone
            for i in range(n * c):
                g[i] = (o[i] - t[i]) / count
            g = NULL
        for i in range(n):
            total += _weighted_row(kind, o + i * c, t + i * c, NULL if g == NULL else g + i * c,
                                   w, i, c, count, eps, param)
        return total
    for b in prange(nt, schedule='static', num_threads=nt):     # one block of rows per thread
        csr = fnn_ftz_enter()
        for i in range(b * n // nt, (b + 1) * n // nt):
            partial[i] = _weighted_row(kind, o + i * c, t + i * c,
                                       NULL if g == NULL else g + i * c, w, i, c, count, eps,
                                       param)
        fnn_ftz_leave(csr)
    for i in range(n):
        total += partial[i]
    free(partial)
    return total
