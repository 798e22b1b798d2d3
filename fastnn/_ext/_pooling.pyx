# Pooling kernels of the fast backend, channels-last: max and average pooling over windows
# (MaxPooling2D/1D, AveragePooling2D/1D; the 1-D layers pass images of one row) and global
# pooling over all positions.
#
# x (n, h, w, c), windows (ph, pw) every (sh, sw), starting `top` rows and `left` columns before
# the input (the 'same' padding): window (oy, ox) covers rows oy*sh - top .. + ph - 1 and columns
# ox*sw - left .. + pw - 1, clipped to the input. Max pooling keeps, per output value, the index
# iy*w + ix of the first largest element in window order (a NaN wins, as in PyTorch), and its
# backward adds dy there; average pooling divides by the number of input elements in the window
# (padding not counted, as Keras). Forward loops run over (image, output row) pairs on any
# thread; backward scatters are added per image in output order by one thread, so results do
# not depend on the thread count. Vectorised along the channels (the contiguous axis).

from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memset

from fastnn._ext._parallel cimport threads_for
from fastnn._ext._pool_rows cimport (_lo, _hi, _max_row, _avg_row, _global_avg,
                                      _global_max)


cdef void _check(tuple xs, tuple ys, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t sh,
                 Py_ssize_t sw, Py_ssize_t top, Py_ssize_t left) except *:
    if ph < 1 or pw < 1 or sh < 1 or sw < 1 or top < 0 or left < 0:
        raise ValueError(f"pooling: pool sizes and strides must be >= 1 and padding >= 0. "
                         f"Received: pool=({ph}, {pw}), strides=({sh}, {sw}), "
                         f"padding=({top}, {left})")
    if max(ph, pw, sh, sw, top, left, *xs[1:], *ys[1:]) >= 2**31:
        raise ValueError(f"pooling: sizes, strides and padding must be below 2**31. Received: "
                         f"pool=({ph}, {pw}), strides=({sh}, {sw}), x {xs}, y {ys}")
    if xs[0] != ys[0] or xs[3] != ys[3]:
        raise ValueError(f"pooling: x {xs} and y {ys} must have the same batch and channels")


cdef inline bint _fits(Py_ssize_t n, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c, Py_ssize_t oh,
                       Py_ssize_t ow, Py_ssize_t nc, Py_ssize_t ph, Py_ssize_t pw,
                       Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t top,
                       Py_ssize_t left) noexcept nogil:
    """_check's conditions in C, no Python objects: the common call's test (a call that fails
    it goes through _check for its message)"""
    cdef Py_ssize_t big = (<Py_ssize_t>1) << 31
    return (ph >= 1 and pw >= 1 and sh >= 1 and sw >= 1 and top >= 0 and left >= 0
            and ph < big and pw < big and sh < big and sw < big and top < big and left < big
            and h < big and w < big and c < big and oh < big and ow < big and nc == c)


def maxpool2d_forward(const floating[:, :, :, ::1] x,     # IN  (n, h, w, c)
                      Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t sh, Py_ssize_t sw,
                      Py_ssize_t top, Py_ssize_t left,
                      floating[:, :, :, ::1] y,           # OUT (n, oh, ow, c)
                      int64_t[:, :, :, ::1] argmax):      # OUT (n, oh, ow, c): iy*w + ix or -1
    """y := the largest x of each window; argmax := where it is (-1: an empty window)"""
    cdef Py_ssize_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
    cdef Py_ssize_t oh = y.shape[1], ow = y.shape[2], r
    cdef int nt
    if not (y.shape[0] == n and _fits(n, h, w, c, oh, ow, y.shape[3], ph, pw, sh, sw, top, left)):
        _check((n, h, w, c), (y.shape[0], oh, ow, y.shape[3]), ph, pw, sh, sw, top, left)
    if (argmax.shape[0] != n or argmax.shape[1] != oh or argmax.shape[2] != ow
            or argmax.shape[3] != c):
        raise ValueError("maxpool2d_forward: argmax must be shaped as y")
    if n * oh * ow * c == 0:
        return y.base
    nt = threads_for(n * oh * ow * c * ph * pw)
    with nogil:
        if nt == 1:     # no parallel region: its start costs more than a small call's work
            for r in range(n * oh):
                _max_row(&x[0, 0, 0, 0] + (r // oh) * h * w * c, h, w, c, r % oh, ow, ph, pw,
                         sh, sw, top, left, &y[0, 0, 0, 0] + r * ow * c,
                         &argmax[0, 0, 0, 0] + r * ow * c)
        else:
            for r in prange(n * oh, schedule="static", num_threads=nt):
                _max_row(&x[0, 0, 0, 0] + (r // oh) * h * w * c, h, w, c, r % oh, ow, ph, pw,
                         sh, sw, top, left, &y[0, 0, 0, 0] + r * ow * c,
                         &argmax[0, 0, 0, 0] + r * ow * c)
    return y.base


cdef inline void _max_scatter(const floating *dy, const int64_t *argmax, Py_ssize_t hw,
                              Py_ssize_t c, Py_ssize_t p, floating *dx) noexcept nogil:
    """One image: dx (hw, c) := 0, then dy (p, c) added at argmax (p, c), in output order."""
    cdef Py_ssize_t j, k
    cdef int64_t a
    memset(dx, 0, hw * c * sizeof(floating))
    for j in range(p):
        for k in range(c):
            a = argmax[j * c + k]
            if a >= 0 and a < hw:     # a corrupted index is dropped, not followed
                dx[a * c + k] += dy[j * c + k]


def maxpool2d_backward(const floating[:, :, :, ::1] dy,   # IN  (n, oh, ow, c)
                       const int64_t[:, :, :, ::1] argmax,  # IN  (n, oh, ow, c) from forward
                       floating[:, :, :, ::1] dx):        # OUT (n, h, w, c)
    """dx := 0, then dy added at each window's argmax (per image, in output order)"""
    cdef Py_ssize_t n = dx.shape[0], h = dx.shape[1], w = dx.shape[2], c = dx.shape[3]
    cdef Py_ssize_t oh = dy.shape[1], ow = dy.shape[2], b, hw = h * w, p
    cdef int nt
    if (argmax.shape[0] != n or argmax.shape[1] != oh or argmax.shape[2] != ow
            or argmax.shape[3] != c or dy.shape[0] != n or dy.shape[3] != c):
        raise ValueError("maxpool2d_backward: dy, argmax and dx do not match")
    if n * hw * c == 0:
        return
    p = oh * ow
    nt = threads_for(n * h * w * c)
    with nogil:
        if nt == 1:     # no parallel region: its start costs more than a small call's work
            for b in range(n):
                _max_scatter(&dy[0, 0, 0, 0] + b * p * c if p else NULL,
                             &argmax[0, 0, 0, 0] + b * p * c if p else NULL, hw, c, p,
                             &dx[0, 0, 0, 0] + b * hw * c)
        else:
            for b in prange(n, schedule="static", num_threads=nt):
                _max_scatter(&dy[0, 0, 0, 0] + b * p * c if p else NULL,
                             &argmax[0, 0, 0, 0] + b * p * c if p else NULL, hw, c, p,
                             &dx[0, 0, 0, 0] + b * hw * c)



cdef extern from "fnn_pool.h" nogil:
    void fnn_maxpool_relu_back_f32(const float *dy, const int64_t *argmax, const float *y,
                                   Py_ssize_t h, Py_ssize_t w, Py_ssize_t c, Py_ssize_t oh,
                                   Py_ssize_t ow, float *dx)
    void fnn_maxpool_relu_back_f64(const double *dy, const int64_t *argmax, const double *y,
                                   Py_ssize_t h, Py_ssize_t w, Py_ssize_t c, Py_ssize_t oh,
                                   Py_ssize_t ow, double *dx)


cdef inline void _max_relu_image(const floating *dy, const int64_t *argmax, const floating *y,
                                 Py_ssize_t h, Py_ssize_t w, Py_ssize_t c, Py_ssize_t oh,
                                 Py_ssize_t ow, floating *dx) noexcept nogil:
    """One image of maxpool2d_backward_relu (src_c/fnn_pool.c)."""
    if floating is float:
        fnn_maxpool_relu_back_f32(dy, argmax, y, h, w, c, oh, ow, dx)
    else:
        fnn_maxpool_relu_back_f64(dy, argmax, y, h, w, c, oh, ow, dx)


def maxpool2d_backward_relu(const floating[:, :, :, ::1] dy,   # IN  (n, oh, ow, c)
                            const int64_t[:, :, :, ::1] argmax,  # IN  (n, oh, ow, c)
                            const floating[:, :, :, ::1] y,    # IN  (n, oh, ow, c) pooled
                            Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t sh, Py_ssize_t sw,
                            Py_ssize_t top, Py_ssize_t left,
                            floating[:, :, :, ::1] dx):        # OUT (n, h, w, c)
    """dx := maxpool2d_backward(dy, argmax) * (x > 0) for windows that do not overlap
    (sh >= ph, sw >= pw), where x = relu(...) is the pooled input: the relu's derivative at a
    window's argmax is y > 0 (y = x there), and elsewhere dx is 0 anyway. The backward of a relu
    layer followed by max pooling in one pass (per image, any thread: no two images share dx)."""
    cdef Py_ssize_t n = dx.shape[0], h = dx.shape[1], w = dx.shape[2], c = dx.shape[3]
    cdef Py_ssize_t oh = dy.shape[1], ow = dy.shape[2], b, p
    cdef int nt
    if (argmax.shape[0] != n or argmax.shape[1] != oh or argmax.shape[2] != ow
            or argmax.shape[3] != c or dy.shape[0] != n or dy.shape[3] != c
            or y.shape[0] != n or y.shape[1] != oh or y.shape[2] != ow or y.shape[3] != c):
        raise ValueError("maxpool2d_backward_relu: dy, argmax, y and dx do not match")
    _check((n, h, w, c), (n, oh, ow, c), ph, pw, sh, sw, top, left)
    if sh < ph or sw < pw:
        raise ValueError(f"maxpool2d_backward_relu: windows must not overlap. Received: "
                         f"pool=({ph}, {pw}), strides=({sh}, {sw})")
    if n * h * w * c == 0:
        return
    p = oh * ow
    nt = threads_for(n * h * w * c)
    with nogil:
        if nt == 1:
            for b in range(n):
                _max_relu_image(&dy[0, 0, 0, 0] + b * p * c if p else NULL,
                                &argmax[0, 0, 0, 0] + b * p * c if p else NULL,
                                &y[0, 0, 0, 0] + b * p * c if p else NULL, h, w, c, oh, ow,
                                &dx[0, 0, 0, 0] + b * h * w * c)
        else:
            for b in prange(n, schedule="static", num_threads=nt):
                _max_relu_image(&dy[0, 0, 0, 0] + b * p * c if p else NULL,
                                &argmax[0, 0, 0, 0] + b * p * c if p else NULL,
                                &y[0, 0, 0, 0] + b * p * c if p else NULL, h, w, c, oh, ow,
                                &dx[0, 0, 0, 0] + b * h * w * c)


def avgpool2d_forward(const floating[:, :, :, ::1] x,     # IN  (n, h, w, c)
                      Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t sh, Py_ssize_t sw,
                      Py_ssize_t top, Py_ssize_t left,
                      floating[:, :, :, ::1] y):          # OUT (n, oh, ow, c)
    """y := the mean of the input elements of each window (padding not counted)"""
    cdef Py_ssize_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
    cdef Py_ssize_t oh = y.shape[1], ow = y.shape[2], r
    _check((n, h, w, c), (y.shape[0], oh, ow, y.shape[3]), ph, pw, sh, sw, top, left)
    if n * oh * ow * c == 0:
        return y.base
    with nogil:
        for r in prange(n * oh, schedule="static",
                        num_threads=threads_for(n * oh * ow * c * ph * pw)):
            _avg_row(&x[0, 0, 0, 0] + (r // oh) * h * w * c, h, w, c, r % oh, ow, ph, pw, sh, sw,
                     top, left, &y[0, 0, 0, 0] + r * ow * c)
    return y.base


def avgpool2d_backward(const floating[:, :, :, ::1] dy,   # IN  (n, oh, ow, c)
                       Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t top, Py_ssize_t left,
                       floating[:, :, :, ::1] dx):        # OUT (n, h, w, c)
    """dx := 0, then dy / count added to each input element of its window (per image, in
    output order)"""
    cdef Py_ssize_t n = dx.shape[0], h = dx.shape[1], w = dx.shape[2], c = dx.shape[3]
    cdef Py_ssize_t oh = dy.shape[1], ow = dy.shape[2], b, oy, ox, y0, y1, x0, x1, iy, ix, k
    cdef floating scale
    _check((n, h, w, c), (dy.shape[0], oh, ow, dy.shape[3]), ph, pw, sh, sw, top, left)
    with nogil:
        for b in prange(n, schedule="static", num_threads=threads_for(n * h * w * c)):
            memset(&dx[b, 0, 0, 0] if h * w * c else NULL, 0, h * w * c * sizeof(floating))
            for oy in range(oh):
                y0 = _lo(oy, sh, top)
                y1 = _hi(oy, sh, top, ph, h)
                for ox in range(ow):
                    x0 = _lo(ox, sw, left)
                    x1 = _hi(ox, sw, left, pw, w)
                    if y1 <= y0 or x1 <= x0:
                        continue
                    scale = <floating>(1.0 / ((y1 - y0) * (x1 - x0)))
                    for iy in range(y0, y1):
                        for ix in range(x0, x1):
                            for k in range(c):
                                dx[b, iy, ix, k] += dy[b, oy, ox, k] * scale


def global_avgpool_forward(const floating[:, :, ::1] x,   # IN  (n, p, c)
                           floating[:, ::1] y):           # OUT (n, c)
    """y := the mean over the positions (summed in position order)"""
    cdef Py_ssize_t n = x.shape[0], p = x.shape[1], c = x.shape[2], b
    if y.shape[0] != n or y.shape[1] != c or p < 1:
        raise ValueError("global_avgpool_forward: x (n, p, c) and y (n, c) do not match")
    with nogil:
        for b in prange(n, schedule="static", num_threads=threads_for(n * p * c)):
            _global_avg(&x[0, 0, 0] + b * p * c, p, c, &y[0, 0] + b * c)


def global_avgpool_backward(const floating[:, ::1] dy,    # IN  (n, c)
                            floating[:, :, ::1] dx):      # OUT (n, p, c)
    """dx := dy / p at every position"""
    cdef Py_ssize_t n = dx.shape[0], p = dx.shape[1], c = dx.shape[2], b, i, k
    if dy.shape[0] != n or dy.shape[1] != c or p < 1:
        raise ValueError("global_avgpool_backward: dy (n, c) and dx (n, p, c) do not match")
    with nogil:
        for b in prange(n, schedule="static", num_threads=threads_for(n * p * c)):
            for i in range(p):
                for k in range(c):
                    dx[b, i, k] = dy[b, k] / p


def global_maxpool_forward(const floating[:, :, ::1] x,   # IN  (n, p, c)
                           floating[:, ::1] y,            # OUT (n, c)
                           int64_t[:, ::1] argmax):       # OUT (n, c)
    """y := the largest value over the positions; argmax := the first position holding it"""
    cdef Py_ssize_t n = x.shape[0], p = x.shape[1], c = x.shape[2], b
    if y.shape[0] != n or y.shape[1] != c or argmax.shape[0] != n or argmax.shape[1] != c \
            or p < 1:
        raise ValueError("global_maxpool_forward: x (n, p, c), y and argmax (n, c) do not match")
    with nogil:
        for b in prange(n, schedule="static", num_threads=threads_for(n * p * c)):
            _global_max(&x[0, 0, 0] + b * p * c, p, c, &y[0, 0] + b * c,
                        &argmax[0, 0] + b * c)
    return y.base


def global_maxpool_backward(const floating[:, ::1] dy,    # IN  (n, c)
                            const int64_t[:, ::1] argmax,  # IN  (n, c)
                            floating[:, :, ::1] dx):      # OUT (n, p, c)
    """dx := dy at each channel's argmax, 0 elsewhere"""
    cdef Py_ssize_t n = dx.shape[0], p = dx.shape[1], c = dx.shape[2], b, k
    cdef int64_t a
    if dy.shape[0] != n or dy.shape[1] != c or argmax.shape[0] != n or argmax.shape[1] != c:
        raise ValueError("global_maxpool_backward: dy, argmax (n, c) and dx (n, p, c) do not "
                         "match")
    with nogil:
        for b in prange(n, schedule="static", num_threads=threads_for(n * p * c)):
            memset(&dx[b, 0, 0] if p * c else NULL, 0, p * c * sizeof(floating))
            for k in range(c):
                a = argmax[b, k]
                if a >= 0 and a < p:
                    dx[b, a, k] = dy[b, k]
