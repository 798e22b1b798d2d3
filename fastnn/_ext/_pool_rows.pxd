# The pooling loops per output row and per image, shared by the pooling entry points
# (_pooling.pyx) and the compiled inference plan (_infer.pxi), so both compute the same bits.
# Geometry and conventions: see _pooling.pyx. Callers check every shape; these trust them.

from cython cimport floating
from libc.math cimport isnan
from libc.stdint cimport int64_t

cdef extern from "fnn_pool.h" nogil:
    void fnn_maxpool_row_f32(const float *x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                             Py_ssize_t y0, Py_ssize_t y1, Py_ssize_t ow, Py_ssize_t pw,
                             Py_ssize_t sw, Py_ssize_t left, float *y, int64_t *argmax)
    void fnn_maxpool_row_f64(const double *x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                             Py_ssize_t y0, Py_ssize_t y1, Py_ssize_t ow, Py_ssize_t pw,
                             Py_ssize_t sw, Py_ssize_t left, double *y, int64_t *argmax)


cdef inline Py_ssize_t _lo(Py_ssize_t o, Py_ssize_t s, Py_ssize_t p) noexcept nogil:
    """first input index of window o (stride s, padding p before), clipped at 0"""
    return o * s - p if o * s - p > 0 else 0


cdef inline Py_ssize_t _hi(Py_ssize_t o, Py_ssize_t s, Py_ssize_t p, Py_ssize_t k,
                           Py_ssize_t size) noexcept nogil:
    """one past the last input index of window o (size k), clipped at size"""
    return o * s - p + k if o * s - p + k < size else size


cdef inline void _max_row(const floating *x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                          Py_ssize_t oy, Py_ssize_t ow, Py_ssize_t ph, Py_ssize_t pw,
                          Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t top, Py_ssize_t left,
                          floating *y, int64_t *argmax) noexcept nogil:
    """One output row of one image (src_c/fnn_pool.h)."""
    if floating is float:
        fnn_maxpool_row_f32(x, h, w, c, _lo(oy, sh, top), _hi(oy, sh, top, ph, h), ow, pw, sw,
                            left, y, argmax)
    else:
        fnn_maxpool_row_f64(x, h, w, c, _lo(oy, sh, top), _hi(oy, sh, top, ph, h), ow, pw, sw,
                            left, y, argmax)


cdef inline void _avg_row(const floating *x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                          Py_ssize_t oy, Py_ssize_t ow, Py_ssize_t ph, Py_ssize_t pw,
                          Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t top, Py_ssize_t left,
                          floating *y) noexcept nogil:
    """One output row of one image: each window's sum in window order, times 1 / count."""
    cdef Py_ssize_t y0 = _lo(oy, sh, top), y1 = _hi(oy, sh, top, ph, h), x0, x1, ox, iy, ix, k
    cdef const floating *src
    cdef floating *yo
    cdef floating scale
    for ox in range(ow):
        x0 = _lo(ox, sw, left)
        x1 = _hi(ox, sw, left, pw, w)
        yo = y + ox * c
        for k in range(c):
            yo[k] = 0
        for iy in range(y0, y1):
            for ix in range(x0, x1):
                src = x + (iy * w + ix) * c
                for k in range(c):
                    yo[k] += src[k]
        if y1 > y0 and x1 > x0:
            scale = <floating>(1.0 / ((y1 - y0) * (x1 - x0)))
            for k in range(c):
                yo[k] *= scale


cdef inline void _global_avg(const floating *x, Py_ssize_t p, Py_ssize_t c,
                             floating *y) noexcept nogil:
    """One sample (p, c) -> (c,): the mean over the positions, summed in position order."""
    cdef Py_ssize_t i, k
    for k in range(c):
        y[k] = 0
    for i in range(p):
        for k in range(c):
            y[k] += x[i * c + k]
    for k in range(c):
        y[k] = y[k] / p


cdef inline void _global_max(const floating *x, Py_ssize_t p, Py_ssize_t c, floating *y,
                             int64_t *argmax) noexcept nogil:
    """One sample (p, c) -> (c,): the largest value over the positions (a NaN wins) and the
    first position holding it."""
    cdef Py_ssize_t i, k
    cdef floating v, best
    for k in range(c):
        y[k] = x[k]
        argmax[k] = 0
    for i in range(1, p):
        for k in range(c):
            v = x[i * c + k]
            best = y[k]
            if v > best or (isnan(v) and not isnan(best)):
                y[k] = v
                argmax[k] = i
