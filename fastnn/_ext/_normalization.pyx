# Normalization kernels of the fast backend: batch normalization (statistics per column over
# the rows) and layer normalization (statistics per row over the columns), forward and backward.
#
# The layers hand over 2-D (rows, channels) arrays: N-D channels-last inputs flattened to
# (samples x positions, channels). Statistics and the backward pass's sums are taken in double,
# two passes (mean, then the centred squares), each sum in row (or column) order by one thread:
# batch normalization splits the columns into blocks of BLOCK over the threads, layer
# normalization splits the rows (a row's sums in 8 lanes, NumPy's pairwise order for rows of up to
# 128; its backward's gamma and beta sums per block of LN_ROWS rows in row order, then the blocks
# in order), so results do not depend on the thread count (no flush-to-zero
# here: every thread computes in the same mode). Element-wise
# results are computed in double from the dtype's saved mean and 1/std and rounded once, as the
# NumPy twins (fastnn/backends/numpy_normalization.py) do.

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

import numpy as np

from fastnn._ext._parallel cimport threads_for
from fastnn._ext._norm_rows cimport BLOCK, _affine
from fastnn._ext.norm cimport (fnn_ln_rows_f32, fnn_ln_rows_f64, fnn_ln_bwd_rows_f32,
                              fnn_ln_bwd_rows_f64, fnn_gn_fwd_block_f32, fnn_gn_fwd_block_f64, fnn_gn_bwd_block_f32,
                              fnn_gn_bwd_block_f64, FNN_GN_SCRATCH)

# rows per task of layernorm_forward's thread loop (fnn_ln_rows takes them four at a time)
cdef Py_ssize_t ROWS = 4
# A layer norm row pass costs about this many element-wise operations a value (its sums in
# double, a division and a square root a row: ~1.3 ns a value on Zen 2), so it takes threads
# from 1/ROW_COST of threads_for's element count on: 512 rows of 64 take two
# (forward 39 -> 26 us, the backward with the parameter sums 60 -> 42 us on Zen 2; the same
# rows' results either way).
cdef Py_ssize_t ROW_COST = 8


cdef void _bn_block(const floating *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t j0,
                    Py_ssize_t j1, floating *mean, floating *invstd, double eps,
                    floating *moving_mean, floating *moving_var, double momentum,
                    bint update, const unsigned char *real) noexcept nogil:
    """Columns j0..j1: mean and 1/sqrt(biased var + eps) over the rows (with ``real``, the
    rows it marks, as Keras' masked moments: none gives mean 0, var 0); moving averages when
    ``update``."""
    cdef double s[BLOCK]
    cdef double m, d, var, unbiased, count = n
    cdef Py_ssize_t i, j
    for j in range(j1 - j0):
        s[j] = 0.0
    if real != NULL:
        count = 0
        for i in range(n):
            count += real[i] != 0
    for i in range(n):
        if real != NULL and not real[i]:
            continue
        for j in range(j0, j1):
            s[j - j0] += x[i * c + j]
    for j in range(j0, j1):
        mean[j] = <floating>(s[j - j0] / count if count > 0 else 0.0)
        s[j - j0] = 0.0
    for i in range(n):
        if real != NULL and not real[i]:
            continue
        for j in range(j0, j1):
            d = <double>x[i * c + j] - <double>mean[j]
            s[j - j0] += d * d
    for j in range(j0, j1):
        var = s[j - j0] / count if count > 0 else 0.0
        invstd[j] = <floating>(1.0 / sqrt(var + eps))
        if update:
            unbiased = var * count / (count - 1) if count > 1 else var
            moving_mean[j] = <floating>(moving_mean[j] * momentum
                                        + <double>mean[j] * (1.0 - momentum))
            moving_var[j] = <floating>(moving_var[j] * momentum + unbiased * (1.0 - momentum))


def batchnorm_forward_train(const floating[:, ::1] x,     # IN  (n, c)
                            const floating[::1] gamma,    # IN  (c,)
                            const floating[::1] beta,     # IN  (c,)
                            double eps, double momentum,
                            floating[::1] moving_mean,    # OUT (c,) updated in place
                            floating[::1] moving_var,     # OUT (c,) updated in place
                            floating[:, ::1] out,         # OUT (n, c)
                            floating[::1] mean,           # OUT (c,) batch mean
                            floating[::1] invstd,         # OUT (c,) 1 / sqrt(batch var + eps)
                            const unsigned char[::1] real=None):  # IN (n,) rows counted
    """out := gamma (x - mean) / sqrt(var + eps) + beta;  moving := momentum moving
    + (1 - momentum) batch (unbiased variance); with ``real``, the statistics of its rows only
    (Keras' masked batch normalization: a padded step's row is normalized, not counted)"""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], b, nb = (c + BLOCK - 1) // BLOCK
    cdef const unsigned char *preal = NULL
    if n == 0 or c == 0:
        return
    if real is not None:
        preal = &real[0]
    with nogil:
        for b in prange(nb, schedule="static", num_threads=threads_for(n * c)):
            _bn_block(&x[0, 0], n, c, b * BLOCK, min(c, (b + 1) * BLOCK), &mean[0], &invstd[0],
                      eps, &moving_mean[0], &moving_var[0], momentum, True, preal)
            _affine(&x[0, 0], n, c, b * BLOCK, min(c, (b + 1) * BLOCK), &mean[0], &invstd[0],
                    &gamma[0], &beta[0], &out[0, 0])


def batchnorm_forward_infer(const floating[:, ::1] x,     # IN  (n, c)
                            const floating[::1] gamma, const floating[::1] beta,
                            const floating[::1] moving_mean, const floating[::1] moving_var,
                            double eps,
                            floating[:, ::1] out):        # OUT (n, c)
    """out := gamma (x - moving_mean) / sqrt(moving_var + eps) + beta"""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], b, j, nb = (c + BLOCK - 1) // BLOCK
    cdef floating[::1] scale = np.empty(c, dtype=np.asarray(moving_var).dtype)
    for j in range(c):
        scale[j] = <floating>(1.0 / sqrt(<double>moving_var[j] + eps))
    if n == 0 or c == 0:
        return
    with nogil:
        for b in prange(nb, schedule="static", num_threads=threads_for(n * c)):
            _affine(&x[0, 0], n, c, b * BLOCK, min(c, (b + 1) * BLOCK), &moving_mean[0],
                    &scale[0], &gamma[0], &beta[0], &out[0, 0])


cdef void _bn_back_block(const floating *x, const floating *dy, Py_ssize_t n, Py_ssize_t c,
                         Py_ssize_t j0, Py_ssize_t j1, const floating *gamma,
                         const floating *mean, const floating *invstd, floating *dx,
                         floating *dgamma, floating *dbeta,
                         const unsigned char *real) noexcept nogil:
    cdef double sdy[BLOCK]
    cdef double sdyx[BLOCK]
    cdef double xhat, a, count = n
    cdef Py_ssize_t i, j
    for j in range(j1 - j0):
        sdy[j] = 0.0
        sdyx[j] = 0.0
    for i in range(n):
        for j in range(j0, j1):
            xhat = (<double>x[i * c + j] - mean[j]) * <double>invstd[j]
            sdy[j - j0] += dy[i * c + j]
            sdyx[j - j0] += <double>dy[i * c + j] * xhat
    for j in range(j0, j1):
        dgamma[j] = <floating>(dgamma[j] + sdyx[j - j0])
        dbeta[j] = <floating>(dbeta[j] + sdy[j - j0])
    if dx == NULL:
        return
    if real != NULL:
        count = 0
        for i in range(n):
            count += real[i] != 0
    for i in range(n):
        if real != NULL and not real[i]:
            # a row outside the statistics: only its own output depends on it
            for j in range(j0, j1):
                dx[i * c + j] = <floating>(<double>gamma[j] * <double>invstd[j]
                                           * <double>dy[i * c + j])
            continue
        for j in range(j0, j1):
            xhat = (<double>x[i * c + j] - mean[j]) * <double>invstd[j]
            a = <double>gamma[j] * <double>invstd[j] / count
            dx[i * c + j] = <floating>(a * (count * <double>dy[i * c + j] - sdy[j - j0]
                                            - xhat * sdyx[j - j0]))


def batchnorm_backward(const floating[:, ::1] x,          # IN  (n, c)
                       const floating[:, ::1] dy,         # IN  (n, c)
                       const floating[::1] gamma, const floating[::1] mean,
                       const floating[::1] invstd,        # IN  (c,) from the forward pass
                       floating[:, ::1] dx,               # OUT (n, c), or None
                       floating[::1] dgamma,              # OUT (c,) accumulated
                       floating[::1] dbeta,               # OUT (c,) accumulated
                       const unsigned char[::1] real=None):   # IN (n,) as in the forward
    """dgamma += sum(dy xhat);  dbeta += sum(dy);
    dx := gamma invstd / n (n dy - sum(dy) - xhat sum(dy xhat)); with ``real``, n counts its
    rows and the rows outside it get dx := gamma invstd dy (the sums still take every row: the
    statistics shift every row's output)"""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], b, nb = (c + BLOCK - 1) // BLOCK
    cdef floating *pdx = NULL
    cdef const unsigned char *preal = NULL
    if n == 0 or c == 0:
        return
    if real is not None:
        preal = &real[0]
    if dx is not None:
        pdx = &dx[0, 0]
    with nogil:
        for b in prange(nb, schedule="static", num_threads=threads_for(n * c)):
            _bn_back_block(&x[0, 0], &dy[0, 0], n, c, b * BLOCK, min(c, (b + 1) * BLOCK),
                           &gamma[0], &mean[0], &invstd[0], pdx, &dgamma[0], &dbeta[0], preal)


cdef inline void _ln_rows(const floating *x, Py_ssize_t n, Py_ssize_t c, const floating *gamma,
                          const floating *beta, double eps, floating *out, floating *mean,
                          floating *invstd) noexcept nogil:
    # src_c/fnn_norm.h: each sum in 8 lanes, then the rest in order (the lanes break the chain
    # of dependent additions, and for rows of up to 128 they add in NumPy's pairwise order, the
    # twin's x.mean, whatever the thread count), compiled per SIMD flavour; rows four at a
    # time (the same bits as one at a time)
    if floating is float:
        fnn_ln_rows_f32(x, n, c, gamma, beta, eps, out, mean, invstd)
    else:
        fnn_ln_rows_f64(x, n, c, gamma, beta, eps, out, mean, invstd)


def layernorm_forward(const floating[:, ::1] x,           # IN  (n, c)
                      const floating[::1] gamma, const floating[::1] beta, double eps,
                      floating[:, ::1] out,               # OUT (n, c)
                      floating[::1] mean,                 # OUT (n,)
                      floating[::1] invstd):              # OUT (n,)
    """out := gamma (x - mean_row) / sqrt(var_row + eps) + beta"""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], b, i, nb = (n + ROWS - 1) // ROWS
    if n == 0 or c == 0:
        return
    with nogil:
        for b in prange(nb, schedule="static", num_threads=threads_for(ROW_COST * n * c)):
            i = b * ROWS
            _ln_rows(&x[i, 0], min(ROWS, n - i), c, &gamma[0], &beta[0], eps, &out[i, 0],
                     &mean[i], &invstd[i])


cdef void _sum_blocks(const double *part, Py_ssize_t nblk, Py_ssize_t stride, Py_ssize_t j0,
                      Py_ssize_t j1, floating *out) noexcept nogil:
    """out[j] += the blocks' sums part[k stride + j], k in order, for columns [j0, j1) (rows of
    part read along, a column block's running sums in L1)"""
    cdef double acc[BLOCK]
    cdef Py_ssize_t k, j
    for j in range(j1 - j0):
        acc[j] = 0.0
    for k in range(nblk):
        for j in range(j0, j1):
            acc[j - j0] += part[k * stride + j]
    for j in range(j0, j1):
        out[j] = <floating>(<double>out[j] + acc[j - j0])


cdef enum:
    LN_ROWS = 32   # rows per task of the backward: their parameter-gradient sums kept apart


def layernorm_backward(const floating[:, ::1] x, const floating[:, ::1] dy,
                       const floating[::1] gamma,
                       const floating[::1] mean, const floating[::1] invstd,   # IN (n,)
                       floating[:, ::1] dx,               # OUT (n, c), or None
                       floating[::1] dgamma,              # OUT (c,) accumulated
                       floating[::1] dbeta):              # OUT (c,) accumulated
    """g = dy gamma;  dx := invstd / c (c g - sum(g) - xhat sum(g xhat)) per row;
    dgamma += sum_rows(dy xhat);  dbeta += sum_rows(dy): per block of LN_ROWS rows in row order
    (while the rows are in cache), then the blocks in order (fixed blocks: the same bits at any
    thread count)"""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], k, b, nblk = (n + LN_ROWS - 1) // LN_ROWS
    cdef Py_ssize_t r0
    cdef double[:, ::1] part
    cdef floating *dxp = NULL
    if n == 0 or c == 0:
        return
    part = np.empty((nblk, 2 * c), np.float64)      # a block's dgamma sums, then its dbeta's
    if dx is not None:
        dxp = &dx[0, 0]
    with nogil:
        for k in prange(nblk, schedule="static", num_threads=threads_for(ROW_COST * n * c)):
            r0 = k * LN_ROWS
            if floating is float:
                fnn_ln_bwd_rows_f32(&x[r0, 0], &dy[r0, 0], min(LN_ROWS, n - r0), c, &gamma[0],
                                    &mean[r0], &invstd[r0], dxp + r0 * c if dxp else NULL,
                                    &part[k, 0], &part[k, c])
            else:
                fnn_ln_bwd_rows_f64(&x[r0, 0], &dy[r0, 0], min(LN_ROWS, n - r0), c, &gamma[0],
                                    &mean[r0], &invstd[r0], dxp + r0 * c if dxp else NULL,
                                    &part[k, 0], &part[k, c])
        for b in prange((c + BLOCK - 1) // BLOCK, schedule="static",
                        num_threads=threads_for(2 * nblk * c)):
            _sum_blocks(&part[0, 0], nblk, 2 * c, b * BLOCK, min(c, (b + 1) * BLOCK), &dgamma[0])
            _sum_blocks(&part[0, c], nblk, 2 * c, b * BLOCK, min(c, (b + 1) * BLOCK), &dbeta[0])


# ---------------------------------------------------------------------------- group normalization
# GroupNormalization on channels-last data (n, P positions, C channels), G groups of k = C / G
# neighbouring channels; a (sample, group) is normalized over its N = P k values. The work splits
# into tasks of (sample, block of whole groups), up to GN_BLOCK channels a block (narrower when
# the batch is smaller than the threads), each run by the C kernels of src_c/fnn_gn_tmpl.h: sums
# in double per channel over the positions in order, then over the group's channels in order.
# dgamma and dbeta add the samples' per-channel sums in sample order afterwards. The same bits at
# any thread count and block split; the twin (fastnn/backends/numpy_normalization.py) sums in the
# same order.

# channels a group normalization task takes at most: 64 double sums a vector loop keeps in
# flight, and a sample's block of 256 positions (64 KB of float32) stays in L2 between passes
cdef Py_ssize_t GN_BLOCK = 64


cdef Py_ssize_t _gn_groups_per_block(Py_ssize_t n, Py_ssize_t G, Py_ssize_t k,
                                     int threads) noexcept nogil:
    """Whole groups a task takes: GN_BLOCK channels' worth (one group at least), fewer when
    there would be fewer tasks than threads."""
    cdef Py_ssize_t gb = max(1, min(G, GN_BLOCK // k)), want
    if n * ((G + gb - 1) // gb) < threads:
        want = min(G, (threads + n - 1) // n)
        gb = (G + want - 1) // want
    return gb


cdef int _gn_tasks(Py_ssize_t n, Py_ssize_t P, Py_ssize_t C, Py_ssize_t G, Py_ssize_t *nb,
                   Py_ssize_t *w) noexcept nogil:
    """A call's tasks: per sample, nb blocks of w channels (whole groups); returns the threads."""
    cdef Py_ssize_t k = C // G
    cdef int threads = threads_for(ROW_COST * n * P * C)
    cdef Py_ssize_t gb = _gn_groups_per_block(n, G, k, threads)
    nb[0] = (G + gb - 1) // gb
    w[0] = gb * k
    return threads


def groupnorm_forward(const floating[:, :, ::1] x,     # IN  (n, P, C)
                      const floating[::1] gamma, const floating[::1] beta,   # IN (C,)
                      Py_ssize_t groups, double eps,
                      floating[:, :, ::1] out,         # OUT (n, P, C)
                      floating[:, ::1] mean,           # OUT (n, G)
                      floating[:, ::1] invstd):        # OUT (n, G)
    """per sample i and group g (channels g k .. g k + k - 1, k = C / G), over the positions
    and the group's channels: out := gamma[c] (x - mean[i, g]) invstd[i, g] + beta[c],
    invstd = 1 / sqrt(biased var + eps)"""
    cdef Py_ssize_t n = x.shape[0], P = x.shape[1], C = x.shape[2], k, nb, w, t, i, c0
    cdef int threads
    if n == 0 or P == 0 or C == 0:
        return
    k = C // groups
    threads = _gn_tasks(n, P, C, groups, &nb, &w)
    cdef double[:, ::1] scratch = np.empty((n * nb, FNN_GN_SCRATCH(w)), np.float64)
    with nogil:
        for t in prange(n * nb, schedule="static", num_threads=threads):
            i = t // nb
            c0 = (t % nb) * w
            if floating is float:
                fnn_gn_fwd_block_f32(&x[i, 0, 0], P, C, k, c0, min(C, c0 + w), &gamma[0],
                                     &beta[0], eps, &out[i, 0, 0], &mean[i, 0], &invstd[i, 0],
                                     &scratch[t, 0])
            else:
                fnn_gn_fwd_block_f64(&x[i, 0, 0], P, C, k, c0, min(C, c0 + w), &gamma[0],
                                     &beta[0], eps, &out[i, 0, 0], &mean[i, 0], &invstd[i, 0],
                                     &scratch[t, 0])


def groupnorm_backward(const floating[:, :, ::1] x, const floating[:, :, ::1] dy,  # IN (n, P, C)
                       const floating[::1] gamma,                    # IN  (C,)
                       const floating[:, ::1] mean, const floating[:, ::1] invstd,  # IN (n, G)
                       floating[:, :, ::1] dx,         # OUT (n, P, C), or None
                       floating[::1] dgamma,           # OUT (C,) accumulated
                       floating[::1] dbeta):           # OUT (C,) accumulated
    """xhat = (x - mean) invstd, g = dy gamma[c]; per sample and group (N = P k values):
    dx := invstd / N (N g - sum(g) - xhat sum(g xhat));
    dgamma += sum over samples and positions of dy xhat;  dbeta += the sum of dy"""
    cdef Py_ssize_t n = x.shape[0], P = x.shape[1], C = x.shape[2], G = mean.shape[1]
    cdef Py_ssize_t k, nb, w, t, i, c, c0
    cdef bint want_dx = dx is not None
    cdef double s, u
    cdef int threads
    if n == 0 or P == 0 or C == 0:
        return
    k = C // G
    threads = _gn_tasks(n, P, C, G, &nb, &w)
    cdef double[:, ::1] sums = np.empty((n, 2 * C), np.float64)
    cdef double[:, ::1] scratch = np.empty((n * nb, FNN_GN_SCRATCH(w)), np.float64)
    with nogil:
        for t in prange(n * nb, schedule="static", num_threads=threads):
            i = t // nb
            c0 = (t % nb) * w
            if floating is float:
                fnn_gn_bwd_block_f32(&x[i, 0, 0], &dy[i, 0, 0], P, C, k, c0, min(C, c0 + w),
                                     &gamma[0], &mean[i, 0], &invstd[i, 0],
                                     &dx[i, 0, 0] if want_dx else NULL, &sums[i, 0],
                                     &scratch[t, 0])
            else:
                fnn_gn_bwd_block_f64(&x[i, 0, 0], &dy[i, 0, 0], P, C, k, c0, min(C, c0 + w),
                                     &gamma[0], &mean[i, 0], &invstd[i, 0],
                                     &dx[i, 0, 0] if want_dx else NULL, &sums[i, 0],
                                     &scratch[t, 0])
        for c in range(C):
            s = 0.0
            u = 0.0
            for i in range(n):
                s += sums[i, c]
                u += sums[i, C + c]
            dbeta[c] = <floating>(dbeta[c] + s)
            dgamma[c] = <floating>(dgamma[c] + u)


# ---------------------------------------------------------------------------- RMS normalization
# RMSNormalization (Zhang & Sennrich, 2019; Keras 3's layer, PyTorch's nn.RMSNorm) per row of c
# values: r = 1 / sqrt(mean(x^2) + eps), y = x r scale, in double. A row's sums run in 8 lanes
# (value j in lane j % 8, added in order), then the lanes in a fixed tree; the scale gradient
# adds the rows in order within blocks of RMS_ROWS rows, then the blocks in order. So any thread
# count gives the same bits, and the twin (fastnn/backends/numpy_normalization.py) repeats the
# same order.

cdef inline double _lanes(const double *s) noexcept nogil:
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))


cdef inline double _rms_inv(const floating *x, Py_ssize_t c, double eps) noexcept nogil:
    """1 / sqrt(mean(x^2) + eps) of one row."""
    cdef double s[8]
    cdef Py_ssize_t j, j0 = 0, l
    for l in range(8):
        s[l] = 0.0
    while j0 + 8 <= c:
        for l in range(8):
            s[l] += <double>x[j0 + l] * <double>x[j0 + l]
        j0 += 8
    for j in range(j0, c):
        s[j - j0] += <double>x[j] * <double>x[j]
    return 1.0 / sqrt(_lanes(s) / <double>c + eps)


def rmsnorm_forward(const floating[:, ::1] x,           # IN  (n, c)
                    const floating[::1] scale,          # IN  (c,)
                    double eps,
                    floating[:, ::1] out):              # OUT (n, c)
    """out := x scale / sqrt(mean_row(x^2) + eps)"""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], i, j
    cdef double r
    if n == 0 or c == 0:
        return
    with nogil:
        for i in prange(n, schedule="static", num_threads=threads_for(ROW_COST * n * c)):
            r = _rms_inv(&x[i, 0], c, eps)
            for j in range(c):
                out[i, j] = <floating>((<double>x[i, j] * r) * <double>scale[j])


cdef inline double _rms_dx_row(const floating *x, const floating *dy, Py_ssize_t c,
                               const floating *scale, double eps, floating *dx) noexcept nogil:
    """dx := r g - x r^3 sum(g x) / c with g = dy scale (dx may be NULL); returns r."""
    cdef double r = _rms_inv(x, c, eps)
    cdef double k
    cdef double t[8]
    cdef Py_ssize_t j, j0 = 0, l
    if dx == NULL:
        return r
    for l in range(8):
        t[l] = 0.0
    while j0 + 8 <= c:
        for l in range(8):
            t[l] += (<double>dy[j0 + l] * <double>scale[j0 + l]) * <double>x[j0 + l]
        j0 += 8
    for j in range(j0, c):
        t[j - j0] += (<double>dy[j] * <double>scale[j]) * <double>x[j]
    k = (((r * r) * r) * _lanes(t)) / <double>c
    for j in range(c):
        dx[j] = <floating>(r * (<double>dy[j] * <double>scale[j]) - <double>x[j] * k)
    return r


cdef enum:
    RMS_ROWS = 32   # rows per task of the backward: their scale-gradient sums kept apart


cdef void _rms_rows_backward(const floating *x, const floating *dy, Py_ssize_t r0,
                             Py_ssize_t r1, Py_ssize_t c, const floating *scale, double eps,
                             floating *dx, double *part) noexcept nogil:
    """Rows [r0, r1): dx (when not NULL), and part[j] := sum over the rows in order of
    dy x r (the block's share of the scale gradient), while each row is in cache."""
    cdef Py_ssize_t i, j
    cdef double r
    for j in range(c):
        part[j] = 0.0
    for i in range(r0, r1):
        r = _rms_dx_row(x + i * c, dy + i * c, c, scale, eps,
                        dx + i * c if dx != NULL else NULL)
        for j in range(c):
            part[j] += (<double>dy[i * c + j] * <double>x[i * c + j]) * r


def rmsnorm_backward(const floating[:, ::1] x, const floating[:, ::1] dy,   # IN (n, c)
                     const floating[::1] scale, double eps,
                     floating[:, ::1] dx,               # OUT (n, c), or None
                     floating[::1] dscale):             # OUT (c,) accumulated
    """r = 1 / sqrt(mean_row(x^2) + eps), g = dy scale;  dx := r g - x r^3 sum_row(g x) / c;
    dscale += sum_rows(dy x r): per block of RMS_ROWS rows in row order, then the blocks in
    order (fixed blocks: the same bits at any thread count)"""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], k, b, nblk = (n + RMS_ROWS - 1) // RMS_ROWS
    cdef double[:, ::1] part
    cdef floating *dxp = NULL
    if n == 0 or c == 0:
        return
    part = np.empty((nblk, c), np.float64)
    if dx is not None:
        dxp = &dx[0, 0]
    with nogil:
        for k in prange(nblk, schedule="static", num_threads=threads_for(ROW_COST * n * c)):
            _rms_rows_backward(&x[0, 0], &dy[0, 0], k * RMS_ROWS, min(n, (k + 1) * RMS_ROWS),
                               c, &scale[0], eps, dxp, &part[k, 0])
        for b in prange((c + BLOCK - 1) // BLOCK, schedule="static",
                        num_threads=threads_for(nblk * c)):
            _sum_blocks(&part[0, 0], nblk, c, b * BLOCK, min(c, (b + 1) * BLOCK), &dscale[0])
