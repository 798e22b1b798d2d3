# Element-wise layer kernels of the fast backend: Dropout's mask and products (regularization)
# and the merge layers' sum and concatenation. Each output element is computed on its own, so
# results do not depend on the thread count.
#
# Dropout's mask is counter-based: element k of the call with counter t keeps its value when
# u = top 53 bits of SplitMix64(key + (t * size + k + 1) * golden) / 2**53 >= rate, where
# key = SplitMix64(seed). The same (seed, t, k) gives the same mask on any thread count and in
# the NumPy twin (fastnn/backends/numpy_layer_ops.py), which uses the same integer arithmetic.
# SplitMix64: Steele, Lea and Flood, "Fast splittable pseudorandom number generators" (2014).
#
# Gaussian noise (GaussianNoise, GaussianDropout) uses the same stream, two uniforms per element
# (positions t * 2N + 2k + 1 and + 2), through the Box-Muller transform in double: z =
# sqrt(-2 log u1) cos(2 pi u2), u1 in (0, 1], u2 in [0, 1). The twin calls the same libm log and
# cos (Python's math module), and this module is built without FP contraction (setup.py), so
# both backends give the same bits in one process.

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport cos, floor, log, sqrt
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from fastnn._ext._parallel cimport threads_for

import numpy as np

cdef uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL


cdef inline uint64_t _mix(uint64_t z) noexcept nogil:
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


def dropout_mask(uint64_t seed, uint64_t counter, double rate,
                 floating[::1] mask):                  # OUT (N,) 0 or 1 / (1 - rate)
    """mask_k := (u_k >= rate) / (1 - rate),  u_k uniform in [0, 1) from (seed, counter, k)"""
    cdef Py_ssize_t n = mask.shape[0], k
    cdef uint64_t key = _mix(seed + GOLDEN), base = counter * <uint64_t>n
    cdef floating scale = <floating>(1.0 / (1.0 - rate))
    cdef double u
    with nogil:
        for k in prange(n, schedule="static", num_threads=threads_for(n)):
            u = <double>(_mix(key + (base + <uint64_t>k + 1) * GOLDEN) >> 11) * (1.0 / 9007199254740992.0)
            mask[k] = scale if u >= rate else 0


def gaussian_noise(uint64_t seed, uint64_t counter, double mean, double stddev,
                   floating[::1] out):                  # OUT (N,)
    """out_k := mean + stddev * z_k,  z_k standard normal (Box-Muller) from (seed, counter, k)"""
    cdef Py_ssize_t n = out.shape[0], k
    cdef uint64_t key = _mix(seed + GOLDEN), base = counter * (2 * <uint64_t>n), b1, b2
    cdef double u1, u2, z
    with nogil:
        for k in prange(n, schedule="static", num_threads=threads_for(4 * n)):
            b1 = _mix(key + (base + 2 * <uint64_t>k + 1) * GOLDEN) >> 11
            b2 = _mix(key + (base + 2 * <uint64_t>k + 2) * GOLDEN) >> 11
            u1 = <double>(9007199254740992ULL - b1) * (1.0 / 9007199254740992.0)
            u2 = <double>b2 * (1.0 / 9007199254740992.0)
            z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)
            out[k] = <floating>(mean + stddev * z)


def scale_channels(const floating[:, :, ::1] x,        # IN  (n, S, C)
                   const floating[:, ::1] m,            # IN  (n, C)
                   floating[:, :, ::1] out):            # OUT (n, S, C)
    """out[b, s, c] := x[b, s, c] * m[b, c] (SpatialDropout: one mask value per channel)"""
    cdef Py_ssize_t n = x.shape[0], S = x.shape[1], C = x.shape[2], r, b, s, c
    if (m.shape[0] != n or m.shape[1] != C or out.shape[0] != n or out.shape[1] != S
            or out.shape[2] != C):
        raise ValueError(f"scale_channels: x and out must be (n, S, C) alike and m (n, C). "
                         f"Received: x {(n, S, C)}, m {(m.shape[0], m.shape[1])}, out "
                         f"{(out.shape[0], out.shape[1], out.shape[2])}")
    with nogil:
        for r in prange(n * S, schedule="static", num_threads=threads_for(n * S * C)):
            b = r // S
            s = r - b * S
            for c in range(C):
                out[b, s, c] = x[b, s, c] * m[b, c]


def multiply(const floating[::1] a, const floating[::1] b,
             floating[::1] out):                        # OUT (N,)
    """out := a * b (Dropout: forward x * mask, backward dy * mask)"""
    cdef Py_ssize_t n = out.shape[0], k
    with nogil:
        for k in prange(n, schedule="static", num_threads=threads_for(n)):
            out[k] = a[k] * b[k]


def add_forward(list inputs,                            # IN  k arrays (N,) (k >= 2)
                floating[::1] out):                     # OUT (N,)
    """out := inputs[0] + inputs[1] + ... (in list order)"""
    cdef floating[::1] a = inputs[0], b = inputs[1]
    cdef Py_ssize_t n = out.shape[0], k, i
    cdef int threads = threads_for(n * len(inputs))
    with nogil:
        for k in prange(n, schedule="static", num_threads=threads):
            out[k] = a[k] + b[k]
    for i in range(2, len(inputs)):
        a = inputs[i]
        with nogil:
            for k in prange(n, schedule="static", num_threads=threads):
                out[k] = out[k] + a[k]


def concat_forward(list inputs,                         # IN  arrays (rows, c_i)
                   floating[:, ::1] out):               # OUT (rows, sum c_i)
    """out := [inputs[0] | inputs[1] | ...] along the columns"""
    cdef floating[:, ::1] part
    cdef Py_ssize_t rows = out.shape[0], width = out.shape[1], offset = 0, c, r
    for item in inputs:
        part = item
        c = part.shape[1]
        if rows and c:
            with nogil:
                for r in prange(rows, schedule="static", num_threads=threads_for(rows * c)):
                    memcpy(&out[r, offset], &part[r, 0], c * sizeof(floating))
        offset += c


def concat_backward(const floating[:, ::1] dy,          # IN  (rows, sum c_i)
                    list dxs):                          # OUT arrays (rows, c_i)
    """dxs[i] := the columns of dy that inputs[i] gave"""
    cdef floating[:, ::1] part
    cdef Py_ssize_t rows = dy.shape[0], offset = 0, c, r
    for item in dxs:
        part = item
        c = part.shape[1]
        if rows and c:
            with nogil:
                for r in prange(rows, schedule="static", num_threads=threads_for(rows * c)):
                    memcpy(&part[r, 0], &dy[r, offset], c * sizeof(floating))
        offset += c


def add_row_vector(const floating[:, ::1] x,            # IN  (rows, m)
                   const floating[::1] p,               # IN  (m,)
                   floating[:, ::1] out):               # OUT (rows, m), may be x
    """out[r, :] := x[r, :] + p (a position table added to every sample)"""
    cdef Py_ssize_t rows = out.shape[0], m = out.shape[1], r, j
    with nogil:
        for r in prange(rows, schedule="static", num_threads=threads_for(rows * m)):
            for j in range(m):
                out[r, j] = x[r, j] + p[j]


def sum_rows_into(const floating[:, ::1] dy,            # IN  (rows, m)
                  floating[::1] out):                   # OUT (m,), added to
    """out += sum_r dy[r, :] (each column summed in row order: the same bits on any thread
    count, since a thread owns whole column blocks)"""
    cdef Py_ssize_t rows = dy.shape[0], m = dy.shape[1], r, j, j0, j1, block
    cdef Py_ssize_t blocks = (m + 63) // 64
    with nogil:
        for block in prange(blocks, schedule="static", num_threads=threads_for(rows * m)):
            j0 = block * 64
            j1 = min(j0 + 64, m)
            for r in range(rows):
                for j in range(j0, j1):
                    out[j] = out[j] + dy[r, j]


# ---------------------------------------------------------------- UpSampling1D/2D (nearest)

cdef _check_upsample(tuple small, tuple big, Py_ssize_t sh, Py_ssize_t sw, str name):
    if (sh < 1 or sw < 1 or big[0] != small[0] or big[3] != small[3]
            or big[1] != small[1] * sh or big[2] != small[2] * sw):
        raise ValueError(f"{name}: the large array must be (n, h * {sh}, w * {sw}, c) for the "
                         f"small one (n, h, w, c). Received: {small} and {big}")


def upsample2d_forward(const floating[:, :, :, ::1] x,     # IN  (n, h, w, c)
                       Py_ssize_t sh, Py_ssize_t sw,
                       floating[:, :, :, ::1] y):          # OUT (n, h * sh, w * sw, c)
    """y[b, i*sh + a, j*sw + q, :] := x[b, i, j, :] (nearest-neighbour upsampling)"""
    cdef Py_ssize_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
    cdef Py_ssize_t r, b, i, j, a, q, k, oy
    _check_upsample((n, h, w, c), (y.shape[0], y.shape[1], y.shape[2], y.shape[3]), sh, sw,
                    "upsample2d_forward")
    with nogil:
        for r in prange(n * h, schedule="static", num_threads=threads_for(n * h * w * c * sh * sw)):
            b = r // h
            i = r - b * h
            for a in range(sh):
                oy = i * sh + a
                for j in range(w):
                    for q in range(sw):
                        for k in range(c):
                            y[b, oy, j * sw + q, k] = x[b, i, j, k]


def upsample2d_backward(const floating[:, :, :, ::1] dy,   # IN  (n, h * sh, w * sw, c)
                        Py_ssize_t sh, Py_ssize_t sw,
                        floating[:, :, :, ::1] dx):        # OUT (n, h, w, c)
    """dx[b, i, j, :] := sum over a < sh, then q < sw, of dy[b, i*sh + a, j*sw + q, :] (in that
    order: the NumPy twin adds in the same order, and threads own whole rows of dx)"""
    cdef Py_ssize_t n = dx.shape[0], h = dx.shape[1], w = dx.shape[2], c = dx.shape[3]
    cdef Py_ssize_t r, b, i, j, a, q, k
    _check_upsample((n, h, w, c), (dy.shape[0], dy.shape[1], dy.shape[2], dy.shape[3]), sh, sw,
                    "upsample2d_backward")
    with nogil:
        for r in prange(n * h, schedule="static", num_threads=threads_for(n * h * w * c * sh * sw)):
            b = r // h
            i = r - b * h
            for j in range(w):
                for k in range(c):
                    dx[b, i, j, k] = 0
                for a in range(sh):
                    for q in range(sw):
                        for k in range(c):
                            dx[b, i, j, k] = dx[b, i, j, k] + dy[b, i * sh + a, j * sw + q, k]


# ---------------------------------------------------------------- Normalization, Rescaling

def affine_rows(const floating[:, ::1] x,               # IN  (rows, m)
                const floating[::1] shift,              # IN  (m,)
                const floating[::1] scale,              # IN  (m,)
                const floating[::1] offset,             # IN  (m,)
                floating[:, ::1] out):                  # OUT (rows, m); may be x
    """out[r, j] := (x[r, j] - shift[j]) * scale[j] + offset[j] (Normalization: shift the mean,
    scale 1 / std; Rescaling: scale and offset; either's input gradient: dy times the scale)"""
    cdef Py_ssize_t rows = x.shape[0], m = x.shape[1], r, j
    if (out.shape[0] != rows or out.shape[1] != m or shift.shape[0] != m
            or scale.shape[0] != m or offset.shape[0] != m):
        raise ValueError(f"affine_rows: x and out must be (rows, m) alike and shift, scale and "
                         f"offset (m,). Received: x {(rows, m)}, out "
                         f"{(out.shape[0], out.shape[1])}, shift ({shift.shape[0]},), scale "
                         f"({scale.shape[0]},), offset ({offset.shape[0]},)")
    with nogil:
        for r in prange(rows, schedule="static", num_threads=threads_for(rows * m)):
            for j in range(m):
                out[r, j] = (x[r, j] - shift[j]) * scale[j] + offset[j]


# ---------------------------------------------------------------- ZeroPadding, Cropping

def copy_window(const floating[:, :, :, ::1] src,       # IN  (n, H1, W1, c)
                Py_ssize_t src_top, Py_ssize_t src_left,
                floating[:, :, :, ::1] dst,             # OUT (n, H2, W2, c)
                Py_ssize_t dst_top, Py_ssize_t dst_left,
                Py_ssize_t h, Py_ssize_t w, bint zero_rest):
    """dst[b, dst_top + i, dst_left + j, :] := src[b, src_top + i, src_left + j, :] for i < h,
    j < w; with zero_rest, every other element of dst := 0 (ZeroPadding's forward and
    Cropping's backward; the other way round, their backward and forward)"""
    cdef Py_ssize_t n = dst.shape[0], H = dst.shape[1], W = dst.shape[2], c = dst.shape[3]
    cdef Py_ssize_t r, b, i, j, k
    if (src.shape[0] != n or src.shape[3] != c or h < 0 or w < 0 or src_top < 0
            or src_left < 0 or dst_top < 0 or dst_left < 0 or src_top + h > src.shape[1]
            or src_left + w > src.shape[2] or dst_top + h > H or dst_left + w > W):
        raise ValueError(f"copy_window: a {h} x {w} window at ({src_top}, {src_left}) of src "
                         f"{(src.shape[0], src.shape[1], src.shape[2], src.shape[3])} does not "
                         f"fit at ({dst_top}, {dst_left}) of dst {(n, H, W, c)}")
    with nogil:
        for r in prange(n * H, schedule="static", num_threads=threads_for(n * H * W * c)):
            b = r // H
            i = r - b * H
            if i < dst_top or i >= dst_top + h:
                if zero_rest:
                    for j in range(W):
                        for k in range(c):
                            dst[b, i, j, k] = 0
                continue
            if zero_rest:
                for j in range(dst_left):
                    for k in range(c):
                        dst[b, i, j, k] = 0
                for j in range(dst_left + w, W):
                    for k in range(c):
                        dst[b, i, j, k] = 0
            for j in range(w):
                for k in range(c):
                    dst[b, i, dst_left + j, k] = src[b, src_top + i - dst_top, src_left + j, k]


# ---------------------------------------------------------------- Multiply, Subtract, Average,
# Maximum, Minimum: one pass per input, in input order (the NumPy twins take the same passes)

def binary_op(const floating[::1] a, const floating[::1] b, int op,
              floating[::1] out):                       # OUT (N,); may be a
    """out := a * b (op 0), max(a, b) (1: a where equal), min(a, b) (2: a where equal),
    a - b (3), a + b (4)"""
    cdef Py_ssize_t n = out.shape[0], k
    if a.shape[0] != n or b.shape[0] != n or op < 0 or op > 4:
        raise ValueError(f"binary_op: a, b and out must have one length and op be 0 to 4. "
                         f"Received: {a.shape[0]}, {b.shape[0]}, {n}, op={op}")
    with nogil:
        for k in prange(n, schedule="static", num_threads=threads_for(n)):
            if op == 0:
                out[k] = a[k] * b[k]
            elif op == 1:
                out[k] = b[k] if b[k] > a[k] else a[k]
            elif op == 2:
                out[k] = b[k] if b[k] < a[k] else a[k]
            elif op == 3:
                out[k] = a[k] - b[k]
            else:
                out[k] = a[k] + b[k]


def divide_scalar(const floating[::1] a, double d, floating[::1] out):   # OUT (N,); may be a
    """out := a / d (Average's mean of its inputs' sum)"""
    cdef Py_ssize_t n = out.shape[0], k
    cdef floating dd = <floating>d
    if a.shape[0] != n:
        raise ValueError(f"divide_scalar: a and out must have one length. Received: "
                         f"{a.shape[0]}, {n}")
    with nogil:
        for k in prange(n, schedule="static", num_threads=threads_for(n)):
            out[k] = a[k] / dd


def select_update(floating[::1] best, int32_t[::1] index, const floating[::1] x, int i,
                  bint largest):
    """Where x beats best (>, or < when not largest): best := x, index := i (ties keep the
    earlier input, as Maximum's and Minimum's forward)"""
    cdef Py_ssize_t n = best.shape[0], k
    if index.shape[0] != n or x.shape[0] != n:
        raise ValueError(f"select_update: best, index and x must have one length. Received: "
                         f"{n}, {index.shape[0]}, {x.shape[0]}")
    with nogil:
        for k in prange(n, schedule="static", num_threads=threads_for(n)):
            if (x[k] > best[k]) if largest else (x[k] < best[k]):
                best[k] = x[k]
                index[k] = i


def select_grad(const floating[::1] dy, const int32_t[::1] index, int i,
                floating[::1] dx):                      # OUT (N,)
    """dx := dy where index == i, else 0"""
    cdef Py_ssize_t n = dx.shape[0], k
    if dy.shape[0] != n or index.shape[0] != n:
        raise ValueError(f"select_grad: dy, index and dx must have one length. Received: "
                         f"{dy.shape[0]}, {index.shape[0]}, {n}")
    with nogil:
        for k in prange(n, schedule="static", num_threads=threads_for(n)):
            dx[k] = dy[k] if index[k] == i else 0


# ---------------------------------------------------------------- Permute

def _permute_rows(const floating[::1] src, floating[::1] dst,
                  const int64_t[::1] shape,             # IN  dst's shape (rank r)
                  const int64_t[::1] stride):           # IN  src's stride along each dst axis
    cdef Py_ssize_t r = shape.shape[0], inner = shape[r - 1], rows = 1, row, a, i, j, q, off
    cdef int64_t step = stride[r - 1]
    for a in range(r - 1):
        rows *= shape[a]
    with nogil:
        for row in prange(rows, schedule="static", num_threads=threads_for(rows * inner)):
            off = 0
            q = row
            for i in range(r - 2, -1, -1):         # row's index along dst's axes but the last
                off = off + (q % shape[i]) * stride[i]
                q = q // shape[i]
            for j in range(inner):
                dst[row * inner + j] = src[off + j * step]


def permute_axes(x, tuple perm, y):
    """y := transpose(x, perm): y[i_0, ..., i_r] = x at index i_k on axis perm[k] (Permute's
    forward; its backward is the inverse permutation). x and y C-contiguous, one dtype."""
    shape = tuple(x.shape[p] for p in perm) if sorted(perm) == list(range(x.ndim)) else None
    if (shape is None or tuple(y.shape) != shape or y.dtype != x.dtype
            or not x.flags.c_contiguous or not y.flags.c_contiguous):
        raise ValueError(f"permute_axes: y must be x transposed by perm, both C-contiguous. "
                         f"Received: x {tuple(x.shape)}, perm {perm}, y {tuple(y.shape)}")
    if y.size == 0:
        return y
    strides = [1] * x.ndim
    for i in range(x.ndim - 2, -1, -1):
        strides[i] = strides[i + 1] * x.shape[i + 1]
    _permute_rows(x.reshape(-1), y.reshape(-1), np.array(shape, np.int64),
                  np.array([strides[p] for p in perm], np.int64))
    return y


def masking_forward(const floating[:, :, ::1] x,       # IN  (n, steps, c)
                    double value,
                    floating[:, :, ::1] y,             # OUT (n, steps, c)
                    unsigned char[:, ::1] real):       # OUT (n, steps) 1 at a real step
    """real[i, t] := any_j x[i, t, j] != value;  y[i, t] := x[i, t] if real[i, t] else 0
    (Keras' Masking; a NaN feature differs from any value, so its step is real)"""
    cdef Py_ssize_t n = x.shape[0], steps = x.shape[1], c = x.shape[2], r, j, i, t
    cdef floating v = <floating>value
    cdef bint keep
    with nogil:
        for r in prange(n * steps, schedule="static", num_threads=threads_for(n * steps * c)):
            i = r // steps
            t = r - i * steps
            keep = False
            for j in range(c):
                if x[i, t, j] != v:
                    keep = True
                    break
            real[i, t] = keep
            if keep:
                memcpy(&y[i, t, 0], &x[i, t, 0], c * sizeof(floating))
            else:
                for j in range(c):
                    y[i, t, j] = 0


def masking_backward(const floating[:, :, ::1] dy,     # IN  (n, steps, c)
                     const unsigned char[:, ::1] real, # IN  (n, steps) from masking_forward
                     floating[:, :, ::1] dx):          # OUT (n, steps, c)
    """dx[i, t] := dy[i, t] if real[i, t] else 0"""
    cdef Py_ssize_t n = dy.shape[0], steps = dy.shape[1], c = dy.shape[2], r, j, i, t
    with nogil:
        for r in prange(n * steps, schedule="static", num_threads=threads_for(n * steps * c)):
            i = r // steps
            t = r - i * steps
            if real[i, t]:
                memcpy(&dx[i, t, 0], &dy[i, t, 0], c * sizeof(floating))
            else:
                for j in range(c):
                    dx[i, t, j] = 0


# ---------------------------------------------------------------------------- affine resampling
# The image augmentation layers (fastnn/layers/augmentation.py) move each image by an affine map
# T (6 numbers a0 a1 a2 b0 b1 b2, Keras' and TensorFlow's convention): the output pixel (row i,
# column j) reads the input at x = a0 j + a1 i + a2 (a column), y = b0 j + b1 i + b2 (a row),
# by nearest (floor(. + 0.5)) or bilinear interpolation, the input extended past its edges by
# the fill mode: 0 constant (fill_value), 1 nearest (the edge), 2 wrap, 3 reflect
# (d c b a | a b c d | d c b a), 4 mirror (d c b | a b c d | c b a). The backward pass is the
# adjoint (each output's gradient added back to the pixels it read, with their weights); a
# thread owns whole images there, so sums keep their order at any thread count.

cdef double COORD_LIMIT = 1099511627776.0     # 2**40: far outside any image, and an exact int


cdef inline Py_ssize_t _extend(Py_ssize_t k, Py_ssize_t size, int mode) noexcept nogil:
    """The pixel index that extended index k reads, or -1 for the constant fill."""
    cdef Py_ssize_t period
    if 0 <= k < size:
        return k
    if mode == 0:
        return -1
    if mode == 1:
        return 0 if k < 0 else size - 1
    if mode == 2:
        k = k % size
        return k + size if k < 0 else k
    if mode == 3:
        period = 2 * size
        k = k % period
        if k < 0:
            k += period
        return period - 1 - k if k >= size else k
    if size == 1:
        return 0
    period = 2 * size - 2
    k = k % period
    if k < 0:
        k += period
    return period - k if k >= size else k


cdef inline double _coord(double v) noexcept nogil:
    if v != v:
        return -COORD_LIMIT
    return min(max(v, -COORD_LIMIT), COORD_LIMIT)


cdef inline Py_ssize_t _floor_index(double v) noexcept nogil:
    """floor(v) for |v| <= 2**40 (_coord's range), without libm's call."""
    cdef Py_ssize_t k = <Py_ssize_t>v
    return k - 1 if v < k else k


cdef inline Py_ssize_t _offset(Py_ssize_t row, Py_ssize_t col, Py_ssize_t w,
                               Py_ssize_t c) noexcept nogil:
    """Where pixel (row, col) starts, or -1 for the constant fill."""
    return -1 if row < 0 or col < 0 else (row * w + col) * c


cdef void _sample(const floating *img, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c, double xs,
                  double ys, int bilinear, int mode, floating fill,
                  floating *out) noexcept nogil:
    """out[0:c] := the image (h x w x c) extended, read at column xs, row ys."""
    cdef Py_ssize_t ch, x0, y0, o00, o01, o10, o11
    cdef double fx, fy, w00, w01, w10, w11, acc
    xs, ys = _coord(xs), _coord(ys)
    if not bilinear:
        o00 = _offset(_extend(_floor_index(ys + 0.5), h, mode),
                      _extend(_floor_index(xs + 0.5), w, mode), w, c)
        for ch in range(c):
            out[ch] = fill if o00 < 0 else img[o00 + ch]
        return
    x0 = _floor_index(xs)
    y0 = _floor_index(ys)
    fx = xs - x0
    fy = ys - y0
    if 0 <= x0 and x0 + 1 < w and 0 <= y0 and y0 + 1 < h:     # inside: no extension
        o00 = (y0 * w + x0) * c
        o01, o10 = o00 + c, o00 + w * c
        o11 = o10 + c
    else:
        o00 = _offset(_extend(y0, h, mode), _extend(x0, w, mode), w, c)
        o01 = _offset(_extend(y0, h, mode), _extend(x0 + 1, w, mode), w, c)
        o10 = _offset(_extend(y0 + 1, h, mode), _extend(x0, w, mode), w, c)
        o11 = _offset(_extend(y0 + 1, h, mode), _extend(x0 + 1, w, mode), w, c)
    w00, w01 = (1.0 - fy) * (1.0 - fx), (1.0 - fy) * fx
    w10, w11 = fy * (1.0 - fx), fy * fx
    # a corner of weight 0 is skipped (an exact shift copies, an inf beside it stays out), in
    # the twin's order
    if w00 == 0:
        o00 = -2
    if w01 == 0:
        o01 = -2
    if w10 == 0:
        o10 = -2
    if w11 == 0:
        o11 = -2
    for ch in range(c):
        acc = 0.0
        if o00 != -2:
            acc += w00 * (fill if o00 < 0 else img[o00 + ch])
        if o01 != -2:
            acc += w01 * (fill if o01 < 0 else img[o01 + ch])
        if o10 != -2:
            acc += w10 * (fill if o10 < 0 else img[o10 + ch])
        if o11 != -2:
            acc += w11 * (fill if o11 < 0 else img[o11 + ch])
        out[ch] = <floating>acc


cdef inline void _add_tap(floating *dx, Py_ssize_t c, Py_ssize_t offset, double weight,
                          const floating *g) noexcept nogil:
    cdef Py_ssize_t ch
    if weight == 0 or offset < 0:
        return
    for ch in range(c):
        dx[offset + ch] = <floating>(dx[offset + ch] + weight * g[ch])


cdef void _sample_back(floating *dx, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c, double xs,
                       double ys, int bilinear, int mode, const floating *g) noexcept nogil:
    """The adjoint of _sample: g (c values) added back into dx at the pixels read."""
    cdef Py_ssize_t x0, y0, ya, yb, xa, xb
    cdef double fx, fy
    xs, ys = _coord(xs), _coord(ys)
    if not bilinear:
        _add_tap(dx, c, _offset(_extend(_floor_index(ys + 0.5), h, mode),
                                _extend(_floor_index(xs + 0.5), w, mode), w, c), 1.0, g)
        return
    x0 = _floor_index(xs)
    y0 = _floor_index(ys)
    fx = xs - x0
    fy = ys - y0
    xa, xb = _extend(x0, w, mode), _extend(x0 + 1, w, mode)
    ya, yb = _extend(y0, h, mode), _extend(y0 + 1, h, mode)
    _add_tap(dx, c, _offset(ya, xa, w, c), (1.0 - fy) * (1.0 - fx), g)
    _add_tap(dx, c, _offset(ya, xb, w, c), (1.0 - fy) * fx, g)
    _add_tap(dx, c, _offset(yb, xa, w, c), fy * (1.0 - fx), g)
    _add_tap(dx, c, _offset(yb, xb, w, c), fy * fx, g)


cdef void _affine_row(const floating *img, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                      const double *t, Py_ssize_t i, int bilinear, int mode,
                      floating fill, floating *out) noexcept nogil:
    """Row i of one output image (w x c values)."""
    cdef Py_ssize_t j
    for j in range(w):
        _sample(img, h, w, c, t[0] * j + t[1] * i + t[2], t[3] * j + t[4] * i + t[5],
                bilinear, mode, fill, &out[j * c])


def affine_resample(const floating[:, :, :, ::1] x,      # IN  (n, h, w, c)
                    const double[:, ::1] transforms,     # IN  (n, 6) a0 a1 a2 b0 b1 b2
                    int bilinear, int fill_mode, double fill_value,
                    floating[:, :, :, ::1] y):           # OUT (n, h, w, c)
    """y[s, i, j] := x_s extended, read at (b0 j + b1 i + b2, a0 j + a1 i + a2)"""
    cdef Py_ssize_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3], r, s, i
    cdef floating fill = <floating>fill_value
    if n == 0 or h == 0 or w == 0 or c == 0:
        return
    with nogil:
        for r in prange(n * h, schedule="static", num_threads=threads_for(8 * n * h * w * c)):
            s = r // h
            i = r - s * h
            _affine_row(&x[s, 0, 0, 0], h, w, c, &transforms[s, 0], i, bilinear, fill_mode,
                        fill, &y[s, i, 0, 0])


cdef void _affine_image_back(const floating *dy, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                             const double *t, int bilinear, int mode,
                             floating *dx) noexcept nogil:
    cdef Py_ssize_t i, j, k
    for k in range(h * w * c):
        dx[k] = 0
    for i in range(h):
        for j in range(w):
            _sample_back(dx, h, w, c, t[0] * j + t[1] * i + t[2], t[3] * j + t[4] * i + t[5],
                         bilinear, mode, &dy[(i * w + j) * c])


def affine_resample_backward(const floating[:, :, :, ::1] dy,   # IN  (n, h, w, c)
                             const double[:, ::1] transforms,   # IN  (n, 6)
                             int bilinear, int fill_mode,
                             floating[:, :, :, ::1] dx):        # OUT (n, h, w, c)
    """dx := the adjoint of affine_resample applied to dy (the constant fill takes none)"""
    cdef Py_ssize_t n = dy.shape[0], h = dy.shape[1], w = dy.shape[2], c = dy.shape[3], s
    if n == 0 or h == 0 or w == 0 or c == 0:
        return
    with nogil:
        for s in prange(n, schedule="static", num_threads=threads_for(8 * n * h * w * c)):
            _affine_image_back(&dy[s, 0, 0, 0], h, w, c, &transforms[s, 0], bilinear,
                               fill_mode, &dx[s, 0, 0, 0])


def resample_grid(const floating[:, :, :, ::1] x,        # IN  (n, h, w, c)
                  const double[::1] rows,                # IN  (ho,) source rows
                  const double[::1] cols,                # IN  (wo,) source columns
                  int bilinear, int fill_mode, double fill_value,
                  floating[:, :, :, ::1] y):             # OUT (n, ho, wo, c)
    """y[s, i, j] := x_s extended, read at (rows[i], cols[j]): resizing and cropping, the
    same grid for every image"""
    cdef Py_ssize_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
    cdef Py_ssize_t ho = rows.shape[0], wo = cols.shape[0], r, s, i, j
    cdef floating fill = <floating>fill_value
    if n == 0 or ho == 0 or wo == 0 or c == 0:
        return
    with nogil:
        for r in prange(n * ho, schedule="static", num_threads=threads_for(8 * n * ho * wo * c)):
            s = r // ho
            i = r - s * ho
            for j in range(wo):
                _sample(&x[s, 0, 0, 0], h, w, c, cols[j], rows[i], bilinear, fill_mode, fill,
                        &y[s, i, j, 0])


def resample_grid_backward(const floating[:, :, :, ::1] dy,   # IN  (n, ho, wo, c)
                           const double[::1] rows, const double[::1] cols,
                           int bilinear, int fill_mode,
                           floating[:, :, :, ::1] dx):        # OUT (n, h, w, c)
    """dx := the adjoint of resample_grid applied to dy (the constant fill takes none)"""
    cdef Py_ssize_t n = dx.shape[0], h = dx.shape[1], w = dx.shape[2], c = dx.shape[3]
    cdef Py_ssize_t ho = rows.shape[0], wo = cols.shape[0], s, i, j, k
    cdef floating *image
    if n == 0 or h == 0 or w == 0 or c == 0:
        return
    with nogil:
        for s in prange(n, schedule="static", num_threads=threads_for(8 * n * ho * wo * c)):
            image = &dx[s, 0, 0, 0]
            for k in range(h * w * c):
                image[k] = 0
            for i in range(ho):
                for j in range(wo):
                    _sample_back(image, h, w, c, cols[j], rows[i], bilinear, fill_mode,
                                 &dy[s, i, j, 0])


# ---------------------------------------------------------------------------- separable grid
# The same reads as resample_grid (a grid of rows x columns, the same for every image: Resizing,
# CenterCrop, RandomCrop), in separable form: tables built once per grid
# (fastnn/backends/numpy_layer_ops.py: grid_tables) give each output row its two input rows and
# weights, and each output column its two input columns and weights (-1: the fill); a tap of
# weight 0 reads nothing. An input row is first resampled along itself (the column taps, all c
# channels of a pixel, in double), then two such rows are blended per output row. A thread owns
# a contiguous run of the (image, output row) pairs and keeps the last resampled input rows, so
# each is computed about once; every value is computed the same way on any thread count, in
# the twin's order (built without FP contraction): the same bits.

cdef inline double _blend2(double a, double va, double b, double vb) noexcept nogil:
    if a != 0:
        if b != 0:
            return a * va + b * vb
        return a * va
    if b != 0:
        return b * vb
    return 0.0


ctypedef struct _ColumnTaps:
    Py_ssize_t wo                 # output columns
    Py_ssize_t c                  # channels
    const int64_t *e0             # (wo,) input columns, -1 the fill
    const int64_t *e1
    const double *ca              # (wo,) weights
    const double *cb
    const int64_t *p0             # (wo,) where e0, e1 start in a row (c e; the fill read at 0)
    const int64_t *p1
    const int64_t *special        # the columns with a weight 0 or a fill tap (recomputed)
    Py_ssize_t n_special
    double fill


cdef void _resample_row(const floating *src, const _ColumnTaps *t,
                        double *out) noexcept nogil:
    """out[j c + ch] := the row src (NULL: all fill) read at column j's taps: every column by
    the plain formula (branch-free), then the special ones again with the weight-0 and fill
    rules (the plain one reads them at offset 0 and may have met an inf there)."""
    cdef Py_ssize_t j, u, ch, c = t.c, wo = t.wo
    cdef double v0, v1, a, b, fill = t.fill
    cdef const int64_t *p0 = t.p0
    cdef const int64_t *p1 = t.p1
    cdef const double *ca = t.ca
    cdef const double *cb = t.cb
    cdef const floating *s0
    cdef const floating *s1
    if src == NULL:
        for j in range(wo):
            v0 = _blend2(ca[j], fill, cb[j], fill)
            for ch in range(c):
                out[j * c + ch] = v0
        return
    if c == 3:
        for j in range(wo):
            a, b, s0, s1 = ca[j], cb[j], src + p0[j], src + p1[j]
            out[3 * j] = a * <double>s0[0] + b * <double>s1[0]
            out[3 * j + 1] = a * <double>s0[1] + b * <double>s1[1]
            out[3 * j + 2] = a * <double>s0[2] + b * <double>s1[2]
    elif c == 1:
        for j in range(wo):
            out[j] = ca[j] * <double>src[p0[j]] + cb[j] * <double>src[p1[j]]
    else:
        for j in range(wo):
            a, b, s0, s1 = ca[j], cb[j], src + p0[j], src + p1[j]
            for ch in range(c):
                out[j * c + ch] = a * <double>s0[ch] + b * <double>s1[ch]
    for u in range(t.n_special):
        j = t.special[u]
        for ch in range(c):
            v0 = fill if t.e0[j] < 0 else <double>src[t.e0[j] * c + ch]
            v1 = fill if t.e1[j] < 0 else <double>src[t.e1[j] * c + ch]
            out[j * c + ch] = _blend2(ca[j], v0, cb[j], v1)


cdef double *_cached_row(const floating *x, Py_ssize_t row, Py_ssize_t wc, Py_ssize_t m,
                         const _ColumnTaps *t, double *buf, Py_ssize_t *tag,
                         const double *keep) noexcept nogil:
    """Input row `row` (of the batch) resampled along itself: from its slot (row & 1) of buf
    when it is there, else computed into that slot, or into the spare (buf + 2 m) when the
    slot holds `keep`, the other row an output row needs."""
    cdef Py_ssize_t slot = row & 1
    cdef double *out = buf + slot * m
    if tag[slot] == row:
        return out
    if out == keep:
        out = buf + 2 * m
    else:
        tag[slot] = row
    _resample_row(x + row * wc, t, out)
    return out


cdef int _resize_run(const floating *x, Py_ssize_t h, Py_ssize_t wc, Py_ssize_t ho,
                     const int64_t *ri, const double *rw, const _ColumnTaps *t,
                     bint bilinear, floating *y, Py_ssize_t first,
                     Py_ssize_t last) noexcept nogil:
    """Output rows first..last-1 of the batch (row r: image r // ho, row r % ho); 1 when out
    of memory."""
    cdef Py_ssize_t r, s, i, j, k, p, q, c = t.c, m = t.wo * t.c
    cdef const floating *src
    cdef floating *out
    cdef floating fill = <floating>t.fill
    cdef double a, b
    cdef double *buf
    cdef double *hp
    cdef double *hq
    cdef double *filled
    cdef Py_ssize_t tag[2]
    if not bilinear:
        for r in range(first, last):
            s = r // ho
            i = r - s * ho
            out = y + r * m
            p = ri[i]
            if p < 0:
                for k in range(m):
                    out[k] = fill
                continue
            src = x + (s * h + p) * wc
            for j in range(t.wo):
                for k in range(c):
                    out[j * c + k] = src[t.p0[j] + k]
            for j in range(t.n_special):
                if t.e0[t.special[j]] < 0:
                    for k in range(c):
                        out[t.special[j] * c + k] = fill
        return 0
    buf = <double *>malloc(4 * m * sizeof(double))
    if buf == NULL:
        return 1
    filled = buf + 3 * m
    _resample_row(<const floating *>NULL, t, filled)
    tag[0] = tag[1] = -1
    for r in range(first, last):
        s = r // ho
        i = r - s * ho
        a, b = rw[i], rw[ho + i]
        hp = hq = filled
        p = ri[i]
        if a != 0 and p >= 0:
            hp = _cached_row(x, s * h + p, wc, m, t, buf, tag, NULL)
        q = ri[ho + i]
        if b != 0 and q >= 0:
            hq = _cached_row(x, s * h + q, wc, m, t, buf, tag, hp)
        out = y + r * m
        if a != 0 and b != 0:
            for k in range(m):
                out[k] = <floating>(a * hp[k] + b * hq[k])
        elif a != 0:
            for k in range(m):
                out[k] = <floating>(a * hp[k])
        elif b != 0:
            for k in range(m):
                out[k] = <floating>(b * hq[k])
        else:
            for k in range(m):
                out[k] = 0
    free(buf)
    return 0


cdef _check_tables(const int64_t[:, ::1] row_index, const double[:, ::1] row_weight,
                   const int64_t[:, ::1] col_index, const double[:, ::1] col_weight,
                   Py_ssize_t h, Py_ssize_t w, Py_ssize_t ho, Py_ssize_t wo):
    """The tables' shapes against the images', and every index in [-1, size)."""
    cdef Py_ssize_t k
    cdef tuple ris = (row_index.shape[0], row_index.shape[1])
    cdef tuple rws = (row_weight.shape[0], row_weight.shape[1])
    cdef tuple cis = (col_index.shape[0], col_index.shape[1])
    cdef tuple cws = (col_weight.shape[0], col_weight.shape[1])
    if ris != (2, ho) or rws != (2, ho):
        raise ValueError(f"row_index and row_weight must have shape (2, {ho}); got {ris} and "
                         f"{rws}")
    if cis != (2, wo) or cws != (2, wo):
        raise ValueError(f"col_index and col_weight must have shape (2, {wo}); got {cis} and "
                         f"{cws}")
    for k in range(ho):
        if not (-1 <= row_index[0, k] < h and -1 <= row_index[1, k] < h):
            raise ValueError(f"row_index must lie in [-1, {h}); got "
                             f"{row_index[0, k]}, {row_index[1, k]} at {k}")
    for k in range(wo):
        if not (-1 <= col_index[0, k] < w and -1 <= col_index[1, k] < w):
            raise ValueError(f"col_index must lie in [-1, {w}); got "
                             f"{col_index[0, k]}, {col_index[1, k]} at {k}")


cdef int64_t *_plain_columns(const int64_t[:, ::1] col_index, const double[:, ::1] col_weight,
                             Py_ssize_t c, bint bilinear, Py_ssize_t *n_special):
    """3 wo values (malloc, NULL when out of memory): where each column's taps start in a row
    (c times the column; the fill read at 0), then the columns (ascending) the plain formula
    gets wrong (a fill tap, or with bilinear a weight 0); their count in n_special."""
    cdef Py_ssize_t t, wo = col_index.shape[1]
    cdef int64_t *plain = <int64_t *>malloc(3 * wo * sizeof(int64_t) + 1)
    if plain == NULL:
        return NULL
    n_special[0] = 0
    for t in range(wo):
        plain[t] = max(col_index[0, t], 0) * c
        plain[wo + t] = max(col_index[1, t], 0) * c
        if col_index[0, t] < 0 or (bilinear and (col_index[1, t] < 0 or col_weight[0, t] == 0
                                                 or col_weight[1, t] == 0)):
            plain[2 * wo + n_special[0]] = t
            n_special[0] += 1
    return plain


def resize_separable(const floating[:, :, :, ::1] x,       # IN  (n, h, w, c)
                     const int64_t[:, ::1] row_index,     # IN  (2, ho) input rows, -1 the fill
                     const double[:, ::1] row_weight,     # IN  (2, ho)
                     const int64_t[:, ::1] col_index,     # IN  (2, wo) input columns, -1 fill
                     const double[:, ::1] col_weight,     # IN  (2, wo)
                     int bilinear, double fill_value,
                     floating[:, :, :, ::1] y):           # OUT (n, ho, wo, c)
    """y[s, i] := the rows row_index[:, i] of x_s, each read at the column taps, blended by
    row_weight[:, i] (nearest: the row row_index[0, i] read at col_index[0]); see above"""
    cdef Py_ssize_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
    cdef Py_ssize_t ho = y.shape[1], wo = y.shape[2], rows, t, nt
    cdef _ColumnTaps taps
    cdef int failed = 0
    if y.shape[0] != n or y.shape[3] != c:
        raise ValueError(f"y must have shape ({n}, ho, wo, {c}); got "
                         f"{(y.shape[0], y.shape[1], y.shape[2], y.shape[3])}")
    _check_tables(row_index, row_weight, col_index, col_weight, h, w, ho, wo)
    if n == 0 or ho == 0 or wo == 0 or c == 0:
        return
    if h == 0 or w == 0:
        raise ValueError(f"x must not be empty; got shape {(n, h, w, c)}")
    cdef int64_t *plain = _plain_columns(col_index, col_weight, c, bilinear, &taps.n_special)
    if plain == NULL:
        raise MemoryError("resize_separable: out of memory")
    taps.wo, taps.c, taps.e0, taps.e1 = wo, c, &col_index[0, 0], &col_index[1, 0]
    taps.ca, taps.cb = &col_weight[0, 0], &col_weight[1, 0]
    taps.p0, taps.p1, taps.special = plain, plain + wo, plain + 2 * wo
    taps.fill = <double><floating>fill_value
    rows = n * ho
    nt = threads_for(rows * wo * c)
    with nogil:
        for t in prange(nt, schedule="static", num_threads=nt):
            failed += _resize_run(&x[0, 0, 0, 0], h, w * c, ho, &row_index[0, 0],
                                  &row_weight[0, 0], &taps, bilinear, &y[0, 0, 0, 0],
                                  rows * t // nt, rows * (t + 1) // nt)
    free(plain)
    if failed:
        raise MemoryError("resize_separable: out of memory")


cdef int _resize_image_back(const floating *dy, Py_ssize_t h, Py_ssize_t w, Py_ssize_t ho,
                            const int64_t *ri, const double *rw, const _ColumnTaps *t,
                            floating *dx) noexcept nogil:
    """One image's adjoint (see resize_separable_backward); 1 when out of memory."""
    cdef Py_ssize_t i, j, ch, k, u, p, c = t.c, wo = t.wo, wc = w * t.c
    cdef Py_ssize_t o0, o1, next_special
    cdef double a, b
    cdef const floating *g
    cdef double *acc = <double *>malloc((h + 1) * wc * sizeof(double))
    cdef double *row
    if acc == NULL:
        return 1
    row = acc + h * wc
    memset(acc, 0, h * wc * sizeof(double))
    for i in range(ho):
        memset(row, 0, wc * sizeof(double))
        u = 0
        next_special = t.special[0] if t.n_special else wo
        for j in range(wo):
            g = dy + (i * wo + j) * c
            if j == next_special:       # value by value, each tap unless weight 0 or fill
                u += 1
                next_special = t.special[u] if u < t.n_special else wo
                for ch in range(c):
                    if t.ca[j] != 0 and t.e0[j] >= 0:
                        row[t.e0[j] * c + ch] = row[t.e0[j] * c + ch] + t.ca[j] * g[ch]
                    if t.cb[j] != 0 and t.e1[j] >= 0:
                        row[t.e1[j] * c + ch] = row[t.e1[j] * c + ch] + t.cb[j] * g[ch]
                continue
            a, b, o0, o1 = t.ca[j], t.cb[j], t.p0[j], t.p1[j]
            if c == 3:
                row[o0] = row[o0] + a * g[0]
                row[o1] = row[o1] + b * g[0]
                row[o0 + 1] = row[o0 + 1] + a * g[1]
                row[o1 + 1] = row[o1 + 1] + b * g[1]
                row[o0 + 2] = row[o0 + 2] + a * g[2]
                row[o1 + 2] = row[o1 + 2] + b * g[2]
            else:
                for ch in range(c):
                    row[o0 + ch] = row[o0 + ch] + a * g[ch]
                    row[o1 + ch] = row[o1 + ch] + b * g[ch]
        for k in range(2):
            p = ri[k * ho + i]
            a = rw[k * ho + i]
            if a != 0 and p >= 0:
                for j in range(wc):
                    acc[p * wc + j] = acc[p * wc + j] + a * row[j]
    for k in range(h * wc):
        dx[k] = <floating>acc[k]
    free(acc)
    return 0


def resize_separable_backward(const floating[:, :, :, ::1] dy,    # IN  (n, ho, wo, c)
                              const int64_t[:, ::1] row_index, const double[:, ::1] row_weight,
                              const int64_t[:, ::1] col_index, const double[:, ::1] col_weight,
                              floating[:, :, :, ::1] dx):         # OUT (n, h, w, c)
    """dx := the adjoint of resize_separable applied to dy (the fill takes none): per output
    row, the column taps' adjoint (value by value, tap 0 then tap 1), then added to the input
    rows it read (tap 0 then tap 1), in double, cast once; a thread owns whole images"""
    cdef Py_ssize_t n = dx.shape[0], h = dx.shape[1], w = dx.shape[2], c = dx.shape[3]
    cdef Py_ssize_t ho = dy.shape[1], wo = dy.shape[2], s
    cdef int failed = 0
    if dy.shape[0] != n or dy.shape[3] != c:
        raise ValueError(f"dy must have shape ({n}, ho, wo, {c}); got "
                         f"{(dy.shape[0], dy.shape[1], dy.shape[2], dy.shape[3])}")
    _check_tables(row_index, row_weight, col_index, col_weight, h, w, ho, wo)
    if n == 0 or h == 0 or w == 0 or c == 0:
        return
    if ho == 0 or wo == 0:
        dx[...] = 0
        return
    cdef _ColumnTaps taps
    cdef int64_t *plain = _plain_columns(col_index, col_weight, c, True, &taps.n_special)
    if plain == NULL:
        raise MemoryError("resize_separable_backward: out of memory")
    taps.wo, taps.c, taps.e0, taps.e1 = wo, c, &col_index[0, 0], &col_index[1, 0]
    taps.ca, taps.cb = &col_weight[0, 0], &col_weight[1, 0]
    taps.p0, taps.p1, taps.special = plain, plain + wo, plain + 2 * wo
    with nogil:
        for s in prange(n, schedule="static",
                        num_threads=threads_for(n * (h * w + ho * wo) * c)):
            failed += _resize_image_back(&dy[s, 0, 0, 0], h, w, ho, &row_index[0, 0],
                                         &row_weight[0, 0], &taps, &dx[s, 0, 0, 0])
    free(plain)
    if failed:
        raise MemoryError("resize_separable_backward: out of memory")


# ---------------------------------------------------------------------------- PReLU
# PReLU's slope alpha (A values) is shared along some axes of each sample's m values: index[j]
# names the slope of value j (the layer builds it once). The kernels expand alpha to the m
# values of a sample first, so the element loops (src_c/fnn_prelu.h, plain C: written here they
# compiled to a branch per value) are vectorised selects. The slope's gradient is summed in
# double per value j over the rows in row order (a thread owns blocks of PRELU_BLOCK columns),
# then folded onto the slopes in j order: the same bits at any thread count.

cdef Py_ssize_t PRELU_BLOCK = 256

cdef extern from "fnn_prelu.h" nogil:
    void fnn_prelu_row_f32(const float *x, const float *a, Py_ssize_t m, float *y)
    void fnn_prelu_row_f64(const double *x, const double *a, Py_ssize_t m, double *y)
    void fnn_prelu_grad_f32(const float *x, const float *dy, const float *a, Py_ssize_t j0,
                            Py_ssize_t j1, float *dx, double *s)
    void fnn_prelu_grad_f64(const double *x, const double *dy, const double *a, Py_ssize_t j0,
                            Py_ssize_t j1, double *dx, double *s)


def prelu_forward(const floating[:, ::1] x,            # IN  (n, m)
                  const floating[::1] alpha,           # IN  (A,)
                  const int64_t[::1] index,            # IN  (m,) in [0, A)
                  floating[:, ::1] y):                 # OUT (n, m)
    """y := x where x > 0, else alpha[index[j]] * x"""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], i, j
    if n == 0 or m == 0:
        return
    cdef floating[::1] full = np.empty(m, np.float32 if floating is float else np.float64)
    cdef floating *a = &full[0]
    for j in range(m):
        a[j] = alpha[index[j]]
    with nogil:
        for i in prange(n, schedule="static", num_threads=threads_for(n * m)):
            if floating is float:
                fnn_prelu_row_f32(&x[i, 0], a, m, &y[i, 0])
            else:
                fnn_prelu_row_f64(&x[i, 0], a, m, &y[i, 0])


def prelu_backward(const floating[:, ::1] x,           # IN  (n, m)
                   const floating[:, ::1] dy,          # IN  (n, m)
                   const floating[::1] alpha,          # IN  (A,)
                   const int64_t[::1] index,           # IN  (m,) in [0, A)
                   floating[:, ::1] dx,                # OUT (n, m), or None
                   floating[::1] dalpha):              # OUT (A,) accumulated
    """dx := dy where x > 0, else alpha[index[j]] * dy;
    dalpha[a] += sum over rows and the j with index[j] == a of dy * x where x is not > 0
    (a NaN x gives NaN, as in PyTorch)"""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], A = alpha.shape[0], i, j, b, j0, j1
    cdef Py_ssize_t nb = (m + PRELU_BLOCK - 1) // PRELU_BLOCK
    cdef bint want_dx = dx is not None
    if n == 0 or m == 0:
        return
    cdef floating[::1] full = np.empty(m, np.float32 if floating is float else np.float64)
    cdef double[::1] part = np.zeros(m, np.float64)
    cdef double[::1] fold = np.zeros(A, np.float64)
    cdef floating *a = &full[0]
    cdef double *s = &part[0]
    cdef floating *dxr
    for j in range(m):
        a[j] = alpha[index[j]]
    with nogil:
        for b in prange(nb, schedule="static", num_threads=threads_for(2 * n * m)):
            j0 = b * PRELU_BLOCK
            j1 = min(m, j0 + PRELU_BLOCK)
            for i in range(n):
                dxr = &dx[i, 0] if want_dx else NULL
                if floating is float:
                    fnn_prelu_grad_f32(&x[i, 0], &dy[i, 0], a, j0, j1, dxr, s)
                else:
                    fnn_prelu_grad_f64(&x[i, 0], &dy[i, 0], a, j0, j1, dxr, s)
        for j in range(m):
            fold[index[j]] += s[j]
        for j in range(A):
            dalpha[j] = <floating>(dalpha[j] + fold[j])
