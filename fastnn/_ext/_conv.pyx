# Convolution kernels of the fast backend: Conv2D forward and backward (Conv1D runs as a
# one-row Conv2D), channels-last, on the packed GEMM through src_c/fnn_conv.c (implicit GEMM:
# patches gathered a bounded chunk at a time, never the batch's whole patch matrix; see
# src_c/fnn_conv.h for the chunks, groups and the fixed summation order that keeps results
# bitwise the same at any thread count).
#
# Geometry (strides, dilations, the padding before the first row and column) comes from the
# layer; every shape relation the C code relies on is checked here, so no call can read or write
# outside the arrays it is given (taps that fall outside the input read as zero).

from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from fastnn._ext._parallel cimport threads_for

from fastnn._ext.conv cimport (fnn_conv_geom, fnn_conv2d_forward_f32, fnn_conv2d_forward_f64,
                               fnn_conv2d_backward_f32, fnn_conv2d_backward_f64,
                               fnn_conv2d_backward_pooled_f32, fnn_conv2d_backward_pooled_f64,
                               fnn_conv_depth, fnn_conv3d_forward_f32, fnn_conv3d_forward_f64,
                               fnn_conv2d_dx_on_gemm, fnn_conv3d_backward_kernel_f32,
                               fnn_conv3d_backward_kernel_f64)

cdef int N_ACTIVATIONS = 14     # fastnn.activations codes 0..13, but 9 (DERIV_GIVEN)


cdef tuple _shape(const floating[:, :, :, ::1] a):
    return (a.shape[0], a.shape[1], a.shape[2], a.shape[3])


cdef tuple _shape5(const floating[:, :, :, :, ::1] a):
    return (a.shape[0], a.shape[1], a.shape[2], a.shape[3], a.shape[4])


cdef fnn_conv_geom _geometry(tuple xs, tuple ks, tuple ys, strides, dilations,
                             padding) except *:
    cdef fnn_conv_geom g
    cdef Py_ssize_t sh, sw, dh, dw, pt, pl
    sh, sw = strides
    dh, dw = dilations
    pt, pl = padding
    if sh < 1 or sw < 1 or dh < 1 or dw < 1 or pt < 0 or pl < 0:
        raise ValueError(f"conv2d: strides and dilations must be >= 1 and padding >= 0. "
                         f"Received: strides={strides}, dilation_rate={dilations}, "
                         f"padding={padding}")
    if max(sh, sw, dh, dw, pt, pl, *xs[1:], *ks, *ys[1:]) >= 2**31:
        # every index the kernels form stays far from overflow (the layers allow no more)
        raise ValueError(f"conv2d: sizes, strides, dilations and padding must be below 2**31. "
                         f"Received: x {xs}, kernel {ks}, y {ys}, strides={strides}, "
                         f"dilation_rate={dilations}, padding={padding}")
    if xs[3] != ks[2] or ys[3] != ks[3] or ys[0] != xs[0]:
        raise ValueError(f"conv2d: shapes do not match: x {xs}, kernel {ks}, y {ys} (x's "
                         f"channels must be the kernel's third axis, y's its fourth, and x and "
                         f"y the same batch)")
    if min(ks) < 1 or ys[1] < 1 or ys[2] < 1:
        raise ValueError(f"conv2d: empty kernel or output: kernel {ks}, y {ys}")
    g.n, g.h, g.w, g.c = xs
    g.kh, g.kw, g.f = ks[0], ks[1], ks[3]
    g.sh, g.sw, g.dh, g.dw, g.pt, g.pl = sh, sw, dh, dw, pt, pl
    g.oh, g.ow = ys[1], ys[2]
    return g


cdef inline bint _fast_geometry(const floating[:, :, :, ::1] x,
                               const floating[:, :, :, ::1] kernel,
                               const floating[:, :, :, ::1] y, strides, dilations, padding,
                               fnn_conv_geom *g) except -1:
    """_geometry's checks without building Python objects, for the common call: 1 and g filled
    in, or 0 when anything is off or unusual (the caller then goes through _geometry, for its
    message). The geometry arguments must be tuples of two ints."""
    cdef Py_ssize_t big = (<Py_ssize_t>1) << 31, i
    if not (type(strides) is tuple and type(dilations) is tuple and type(padding) is tuple
            and len(<tuple>strides) == 2 and len(<tuple>dilations) == 2
            and len(<tuple>padding) == 2):
        return 0
    for v in (<tuple>strides + <tuple>dilations + <tuple>padding):
        if type(v) is not int:
            return 0
    g.sh, g.sw = strides
    g.dh, g.dw = dilations
    g.pt, g.pl = padding
    if (g.sh < 1 or g.sw < 1 or g.dh < 1 or g.dw < 1 or g.pt < 0 or g.pl < 0 or g.sh >= big
            or g.sw >= big or g.dh >= big or g.dw >= big or g.pt >= big or g.pl >= big):
        return 0
    for i in range(1, 4):
        if x.shape[i] >= big or y.shape[i] >= big:
            return 0
    for i in range(4):
        if kernel.shape[i] < 1 or kernel.shape[i] >= big:
            return 0
    if (x.shape[3] != kernel.shape[2] or y.shape[3] != kernel.shape[3] or y.shape[0] != x.shape[0]
            or y.shape[1] < 1 or y.shape[2] < 1):
        return 0
    g.n, g.h, g.w, g.c = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    g.kh, g.kw, g.f = kernel.shape[0], kernel.shape[1], kernel.shape[3]
    g.oh, g.ow = y.shape[1], y.shape[2]
    return 1


def conv2d_forward(const floating[:, :, :, ::1] x,        # IN  (n, h, w, c)
                   const floating[:, :, :, ::1] kernel,   # IN  (kh, kw, c, f)
                   const floating[::1] bias,              # IN  (f,)
                   strides, dilations, padding,           # (sh, sw), (dh, dw), (top, left)
                   int act, double param,
                   floating[:, :, :, ::1] y):             # OUT (n, oh, ow, f)
    """y := act(conv2d(x, kernel) + bias) (see the module comment)"""
    cdef fnn_conv_geom g
    cdef int ok
    cdef float param32 = <float>param
    if not _fast_geometry(x, kernel, y, strides, dilations, padding, &g):
        g = _geometry(_shape(x), _shape(kernel), _shape(y), strides, dilations, padding)
    if bias.shape[0] != g.f:
        raise ValueError(f"conv2d: bias must have {g.f} values. Received: {bias.shape[0]}")
    if act < 0 or act >= N_ACTIVATIONS or act == 9:
        raise ValueError(f"conv2d: unknown activation code {act}")
    if g.n == 0:
        return y.base
    with nogil:
        if floating is float:
            ok = fnn_conv2d_forward_f32(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], &bias[0], act,
                                        param32, &y[0, 0, 0, 0])
        else:
            ok = fnn_conv2d_forward_f64(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], &bias[0], act,
                                        param, &y[0, 0, 0, 0])
    if not ok:
        raise MemoryError("conv2d_forward: could not allocate its chunk buffers")
    return y.base


def conv2d_backward(const floating[:, :, :, ::1] x,       # IN  (n, h, w, c)
                    const floating[:, :, :, ::1] kernel,  # IN  (kh, kw, c, f)
                    const floating[:, :, :, ::1] dz,      # IN  (n, oh, ow, f) dL/d(pre-act.)
                    strides, dilations, padding,
                    floating[:, :, :, ::1] dkernel,       # OUT (kh, kw, c, f)
                    floating[::1] dbias,                  # OUT (f,)
                    floating[:, :, :, ::1] dx):           # OUT (n, h, w, c), or None to skip
    """dkernel := patches^T dz;  dbias := dz summed over all but the last axis;
    dx := the transposed gather of dz kernel^T (see the module comment)"""
    cdef fnn_conv_geom g
    cdef int ok
    cdef floating *dx_ptr = NULL
    if not _fast_geometry(x, kernel, dz, strides, dilations, padding, &g):
        g = _geometry(_shape(x), _shape(kernel), _shape(dz), strides, dilations, padding)
    if (dkernel.shape[0] != kernel.shape[0] or dkernel.shape[1] != kernel.shape[1]
            or dkernel.shape[2] != kernel.shape[2] or dkernel.shape[3] != kernel.shape[3]
            or dbias.shape[0] != g.f):
        raise ValueError(f"conv2d_backward: dkernel must be shaped {_shape(kernel)} "
                         f"and dbias ({g.f},)")
    if dx is not None:
        if (dx.shape[0] != x.shape[0] or dx.shape[1] != x.shape[1] or dx.shape[2] != x.shape[2]
                or dx.shape[3] != x.shape[3]):
            raise ValueError(f"conv2d_backward: dx must be shaped as x {_shape(x)}")
        if g.n:
            dx_ptr = &dx[0, 0, 0, 0]
    if g.n == 0:
        dkernel[...] = 0
        dbias[...] = 0
        return
    with nogil:
        if floating is float:
            ok = fnn_conv2d_backward_f32(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                         &dz[0, 0, 0, 0], &dkernel[0, 0, 0, 0], &dbias[0],
                                         dx_ptr)
        else:
            ok = fnn_conv2d_backward_f64(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                         &dz[0, 0, 0, 0], &dkernel[0, 0, 0, 0], &dbias[0],
                                         dx_ptr)
    if not ok:
        raise MemoryError("conv2d_backward: could not allocate its chunk buffers")


def conv2d_backward_input(const floating[:, :, :, ::1] kernel,  # IN  (kh, kw, c, f)
                          const floating[:, :, :, ::1] dz,      # IN  (n, oh, ow, f)
                          strides, dilations, padding,
                          floating[:, :, :, ::1] dx):           # OUT (n, h, w, c)
    """dx := conv2d_backward's dx alone (the transposed gather of dz kernel^T): the forward of a
    transposed convolution, whose input plays dz. dx must not overlap kernel or dz."""
    cdef fnn_conv_geom g
    cdef int ok
    if not _fast_geometry(dx, kernel, dz, strides, dilations, padding, &g):
        g = _geometry(_shape(dx), _shape(kernel), _shape(dz), strides, dilations, padding)
    if g.n == 0:
        return
    with nogil:
        if floating is float:
            ok = fnn_conv2d_backward_f32(&g, &dx[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                         &dz[0, 0, 0, 0], NULL, NULL, &dx[0, 0, 0, 0])
        else:
            ok = fnn_conv2d_backward_f64(&g, &dx[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                         &dz[0, 0, 0, 0], NULL, NULL, &dx[0, 0, 0, 0])
    if not ok:
        raise MemoryError("conv2d_backward_input: could not allocate its chunk buffers")


def conv2d_backward_pooled(const floating[:, :, :, ::1] x,       # IN  (n, h, w, c)
                           const floating[:, :, :, ::1] dy,      # IN  (n, ph, pw, f) pooled
                           const int64_t[:, :, :, ::1] argmax,   # IN  (n, ph, pw, f) iy*ow + ix
                           const floating[:, :, :, ::1] yp,      # IN  (n, ph, pw, f) pooled
                           out_hw, strides, dilations, padding,  # (oh, ow): the conv's output
                           floating[:, :, :, ::1] dkernel,       # OUT (kh, kw, c, f)
                           floating[::1] dbias):                 # OUT (f,)
    """dkernel, dbias := conv2d_backward's for the dz that maxpool2d_backward_relu(dy, argmax,
    yp) would give (n, oh, ow, f), without forming it: a relu convolution read only by a max
    pooling (src_c/fnn_conv.h: fnn_conv2d_backward_pooled)"""
    cdef fnn_conv_geom g
    cdef int ok
    cdef Py_ssize_t i, pn
    cdef tuple ps = _shape(dy)
    oh, ow = out_hw
    g = _geometry(_shape(x), _shape(dkernel), (ps[0], oh, ow, ps[3]), strides, dilations,
                  padding)
    for i in range(4):
        if yp.shape[i] != dy.shape[i] or argmax.shape[i] != dy.shape[i]:
            raise ValueError(f"conv2d_backward_pooled: dy, argmax and yp must have one shape. "
                             f"Received: {ps}, {tuple([argmax.shape[i] for i in range(4)])}, "
                             f"{_shape(yp)}")
    if dbias.shape[0] != g.f:
        raise ValueError(f"conv2d_backward_pooled: dbias must have {g.f} values. Received: "
                         f"{dbias.shape[0]}")
    span_h, span_w = (g.kh - 1) * g.dh + 1, (g.kw - 1) * g.dw + 1
    if ((oh - 1) * g.sh - g.pt >= g.h or (ow - 1) * g.sw - g.pl >= g.w or g.pt >= span_h
            or g.pl >= span_w):
        raise ValueError(f"conv2d_backward_pooled: an output of {(oh, ow)} positions does not "
                         f"come from an input of {(g.h, g.w)} with kernel span "
                         f"{(span_h, span_w)}, strides {strides} and padding {padding}")
    # the padded copy of an image and the table of patch offsets (elements)
    if ((((oh - 1) * g.sh + span_h) * (((ow - 1) * g.sw + span_w) * g.c + 16)) >= 2**40
            or oh * ow >= 2**40):
        raise ValueError(f"conv2d_backward_pooled: x {_shape(x)} with a kernel span of "
                         f"{(span_h, span_w)} is too large")
    pn = ps[1] * ps[2]
    if g.n == 0 or pn == 0:
        dkernel[...] = 0
        dbias[...] = 0
        return
    with nogil:
        if floating is float:
            ok = fnn_conv2d_backward_pooled_f32(&g, &x[0, 0, 0, 0], &dy[0, 0, 0, 0],
                                                &argmax[0, 0, 0, 0], &yp[0, 0, 0, 0], pn,
                                                &dkernel[0, 0, 0, 0], &dbias[0])
        else:
            ok = fnn_conv2d_backward_pooled_f64(&g, &x[0, 0, 0, 0], &dy[0, 0, 0, 0],
                                                &argmax[0, 0, 0, 0], &yp[0, 0, 0, 0], pn,
                                                &dkernel[0, 0, 0, 0], &dbias[0])
    if not ok:
        raise MemoryError("conv2d_backward_pooled: could not allocate its buffers")


cdef tuple _check_depth(depth):
    """depth (kd, sd, dd, front) as a tuple of ints, or ValueError naming it."""
    kd, sd, dd, front = depth
    if kd < 1 or sd < 1 or dd < 1 or front < 0 or max(kd, sd, dd, front) >= 2**31:
        raise ValueError(f"conv3d: depth taps, stride and dilation must be >= 1 and the "
                         f"padding >= 0. Received: depth={depth}")
    return (kd, sd, dd, front)


cdef fnn_conv_geom _depth_geometry(tuple xs, tuple ks, tuple ys, depth, strides, dilations,
                                   padding, fnn_conv_depth *ds) except *:
    """The 2-D geometry of a Conv3D's depth stack (fnn_conv3d.h) and its depth ds, checked: x
    (n, d, h, w, c), the kernel read (kh, kw, kd*c, f), y or dz (n, od, oh, ow, f)."""
    cdef fnn_conv_geom g
    cdef Py_ssize_t kd, sd, dd, front
    kd, sd, dd, front = _check_depth(depth)
    if ks[2] != kd * xs[4] or ys[0] != xs[0] or ys[1] < 1:
        raise ValueError(f"conv3d: shapes do not match: x {xs}, kernel {ks}, y {ys}, "
                         f"depth={depth}")
    if xs[0] * ys[1] >= 2**31 or xs[1] >= 2**31 or kd * xs[4] >= 2**31:
        raise ValueError(f"conv3d: sizes must be below 2**31. Received: x {xs}, y {ys}")
    g = _geometry((xs[0] * ys[1], xs[2], xs[3], kd * xs[4]), ks,
                  (xs[0] * ys[1], ys[2], ys[3], ys[4]), strides, dilations, padding)
    ds.d, ds.c, ds.kd, ds.sd, ds.dd, ds.front, ds.od = (xs[1], xs[4], kd, sd, dd, front, ys[1])
    return g


def conv3d_forward(const floating[:, :, :, :, ::1] x,     # IN  (n, d, h, w, c)
                   const floating[:, :, :, ::1] kernel,   # IN  (kh, kw, kd*c, f)
                   const floating[::1] bias,              # IN  (f,)
                   depth,                                 # (kd, sd, dd, front)
                   strides, dilations, padding,           # of height and width, as conv2d's
                   int act, double param,
                   floating[:, :, :, :, ::1] y):          # OUT (n, od, oh, ow, f)
    """y := act(conv3d(x, kernel) + bias) without the depth stack (src_c/fnn_conv3d.h): True
    when done, False (y untouched) when the kernels take another path for this shape, and the
    caller is to run conv2d_forward on the stack."""
    cdef fnn_conv_depth ds
    cdef int ok
    cdef float param32 = <float>param
    cdef fnn_conv_geom g = _depth_geometry(_shape5(x), _shape(kernel), _shape5(y), depth,
                                           strides, dilations, padding, &ds)
    if bias.shape[0] != g.f:
        raise ValueError(f"conv3d: bias must have {g.f} values. Received: {bias.shape[0]}")
    if act < 0 or act >= N_ACTIVATIONS or act == 9:
        raise ValueError(f"conv3d: unknown activation code {act}")
    if g.n == 0:
        return True
    with nogil:
        if floating is float:
            ok = fnn_conv3d_forward_f32(&g, &ds, &x[0, 0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                        &bias[0], act, param32, &y[0, 0, 0, 0, 0])
        else:
            ok = fnn_conv3d_forward_f64(&g, &ds, &x[0, 0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                        &bias[0], act, param, &y[0, 0, 0, 0, 0])
    if ok == 0:
        raise MemoryError("conv3d_forward: could not allocate its buffers")
    return ok == 1


def conv3d_backward_kernel(const floating[:, :, :, :, ::1] x,        # IN  (n, d, h, w, c)
                           const floating[:, :, :, :, ::1] dz,       # IN  (n, od, oh, ow, f)
                           depth,                                    # (kd, sd, dd, front)
                           strides, dilations, padding,              # of height and width
                           floating[:, :, :, :, ::1] dkernel,        # OUT (kd, kh, kw, c, f)
                           floating[::1] dbias):                     # OUT (f,)
    """dkernel, dbias := the kernel and bias gradients of conv3d_forward's convolution without
    the depth stack (src_c/fnn_conv3d.h): True when done, False (nothing written) when the
    kernels have no such path for this shape (the caller then goes tap by tap)."""
    cdef fnn_conv_depth ds
    cdef fnn_conv_geom g
    cdef int ok
    cdef tuple ks = _shape5(dkernel)
    if ks[0] != _check_depth(depth)[0]:
        raise ValueError(f"conv3d: dkernel {ks} must have {depth[0]} depth taps")
    g = _depth_geometry(_shape5(x), (ks[1], ks[2], ks[0] * ks[3], ks[4]), _shape5(dz), depth,
                        strides, dilations, padding, &ds)
    if dbias.shape[0] != g.f:
        raise ValueError(f"conv3d: dbias must have {g.f} values. Received: {dbias.shape[0]}")
    with nogil:
        if floating is float:
            ok = fnn_conv3d_backward_kernel_f32(&g, &ds, &x[0, 0, 0, 0, 0] if g.n else NULL,
                                                &dz[0, 0, 0, 0, 0] if g.n else NULL,
                                                &dkernel[0, 0, 0, 0, 0], &dbias[0])
        else:
            ok = fnn_conv3d_backward_kernel_f64(&g, &ds, &x[0, 0, 0, 0, 0] if g.n else NULL,
                                                &dz[0, 0, 0, 0, 0] if g.n else NULL,
                                                &dkernel[0, 0, 0, 0, 0], &dbias[0])
    if ok == 0:
        raise MemoryError("conv3d_backward_kernel: could not allocate its buffers")
    return ok == 1


cdef void _unstack_slice(const floating *ds, Py_ssize_t sample, Py_ssize_t i, Py_ssize_t d,
                         Py_ssize_t od, Py_ssize_t hw, Py_ssize_t c, Py_ssize_t kd,
                         Py_ssize_t sd, Py_ssize_t dd, Py_ssize_t front,
                         floating *dx) noexcept nogil:
    """dx's slice i of a sample := the stack's gradient at the taps that read it, in tap order
    (zero where none does)."""
    cdef Py_ssize_t kz, off, p, q, ci, cc = kd * c
    cdef bint first = True
    cdef const floating *src
    cdef floating *dst = dx + (sample * d + i) * hw * c
    for kz in range(kd):
        off = i + front - kz * dd                  # p*sd when output depth p reads i at kz
        if off < 0 or off % sd != 0 or off // sd >= od:
            continue
        p = off // sd
        src = ds + (sample * od + p) * hw * cc + kz * c
        if first:
            for q in range(hw):
                for ci in range(c):
                    dst[q * c + ci] = src[q * cc + ci]
            first = False
        else:
            for q in range(hw):
                for ci in range(c):
                    dst[q * c + ci] += src[q * cc + ci]
    if first:
        memset(dst, 0, hw * c * sizeof(floating))


def conv3d_unstack(const floating[:, :, :, :, ::1] dstack,   # IN  (n, od, h, w, kd*c)
                   depth,                                    # (kd, sd, dd, front)
                   floating[:, :, :, :, ::1] dx):            # OUT (n, d, h, w, c)
    """dx := the depth stack's gradient added back into the slices it was gathered from: dx's
    slice i the sum, taps kz in order, of output depth p's channels kz*c .. kz*c + c - 1 where
    p*sd + kz*dd - front = i (zero where no tap reads i). Slices run in parallel, each summed
    alone: the same bits at any thread count. dx must not overlap dstack."""
    cdef Py_ssize_t kd, sd, dd, front, r, n, d, od, hw, c
    cdef int nt
    kd, sd, dd, front = _check_depth(depth)
    n, d, od, c = dx.shape[0], dx.shape[1], dstack.shape[1], dx.shape[4]
    if (dstack.shape[0] != n or dstack.shape[2] != dx.shape[2] or dstack.shape[3] != dx.shape[3]
            or dstack.shape[4] != kd * c):
        raise ValueError(f"conv3d_unstack: dstack {_shape5(dstack)} must be dx's "
                         f"{_shape5(dx)} stacked by depth={depth}")
    hw = dx.shape[2] * dx.shape[3]
    if n * d * hw * c == 0:
        return
    if od == 0:
        dx[...] = 0
        return
    nt = threads_for(n * od * hw * kd * c)
    with nogil:
        if nt <= 1:
            for r in range(n * d):
                _unstack_slice(&dstack[0, 0, 0, 0, 0], r // d, r % d, d, od, hw, c, kd, sd, dd,
                               front, &dx[0, 0, 0, 0, 0])
        else:
            for r in prange(n * d, schedule="static", num_threads=nt):
                _unstack_slice(&dstack[0, 0, 0, 0, 0], r // d, r % d, d, od, hw, c, kd, sd, dd,
                               front, &dx[0, 0, 0, 0, 0])


def conv2d_dx_on_gemm(tuple x_shape, tuple kernel_shape, tuple y_shape, strides, dilations,
                      padding):
    """True when conv2d_backward computes this geometry's input gradient on the GEMM with the
    transposed gather, False when on a faster path (Winograd, or the stride-1 forward of dz):
    the shapes are conv2d's, (n, h, w, c), (kh, kw, c, f), (n, oh, ow, f)."""
    cdef fnn_conv_geom g = _geometry(x_shape, kernel_shape, y_shape, strides, dilations,
                                     padding)
    return fnn_conv2d_dx_on_gemm(&g) == 1


# ---------------------------------------------------------------------- grouped convolution
# Keras' groups: x's channels in `groups` runs of cg, the kernel (kh, kw, cg, f), the filters in
# runs of fg = f / groups, run gi of y from run gi of x alone. Each group is one call of the
# kernels above (the implicit GEMM and its faster paths, threaded as they are) on the group's
# channels laid out contiguously: x, the kernel and dz are split into group-major copies
# (g, ..., cg), one pass each, and the results merged back. Copies only move values, and the
# groups run one after another with their own sums, so the bits are the same at any thread
# count (and each group's are those of an ungrouped convolution of its channels).

cdef inline void _split_row(const floating *src, Py_ssize_t r, Py_ssize_t rows,
                            Py_ssize_t groups, Py_ssize_t width, floating *dst) noexcept nogil:
    """dst[gi, r, :] := src[r, gi*width:(gi+1)*width] for every group gi."""
    cdef Py_ssize_t gi
    for gi in range(groups):
        memcpy(dst + (gi * rows + r) * width, src + (r * groups + gi) * width,
               width * sizeof(floating))


cdef inline void _merge_row(const floating *src, Py_ssize_t r, Py_ssize_t rows,
                            Py_ssize_t groups, Py_ssize_t width, floating *dst) noexcept nogil:
    """dst[r, gi*width:(gi+1)*width] := src[gi, r, :] for every group gi (_split_row undone)."""
    cdef Py_ssize_t gi
    for gi in range(groups):
        memcpy(dst + (r * groups + gi) * width, src + (gi * rows + r) * width,
               width * sizeof(floating))


cdef void _regroup(const floating *src, Py_ssize_t rows, Py_ssize_t groups, Py_ssize_t width,
                   floating *dst, bint split) noexcept nogil:
    """(rows, groups*width) -> (groups, rows, width) when split, else back; rows in parallel
    where the copy is large (a copy: the same bits at any thread count)."""
    cdef Py_ssize_t r
    cdef int nt = threads_for(rows * groups * width)
    if nt <= 1:
        for r in range(rows):
            if split:
                _split_row(src, r, rows, groups, width, dst)
            else:
                _merge_row(src, r, rows, groups, width, dst)
    else:
        for r in prange(rows, schedule="static", num_threads=nt):
            if split:
                _split_row(src, r, rows, groups, width, dst)
            else:
                _merge_row(src, r, rows, groups, width, dst)


cdef fnn_conv_geom _group_geometry(tuple xs, tuple ks, tuple ys, strides, dilations, padding,
                                   groups, str name) except *:
    """The geometry of one group's convolution, (n, h, w, cg) * (kh, kw, cg, fg), checked."""
    if type(groups) is not int or groups < 1 or groups >= 2**31:
        raise ValueError(f"{name}: groups must be a positive integer. Received: "
                         f"groups={groups!r}")
    if xs[3] != ks[2] * groups or ks[3] % groups or ys[3] != ks[3]:
        raise ValueError(f"{name}: shapes do not match groups={groups}: x {xs}, kernel {ks}, "
                         f"y {ys} (x's channels must be groups times the kernel's third axis, "
                         f"and the filters, the kernel's fourth and y's last, a multiple of "
                         f"groups)")
    return _geometry((xs[0], xs[1], xs[2], ks[2]), (ks[0], ks[1], ks[2], ks[3] // groups),
                     (ys[0], ys[1], ys[2], ks[3] // groups), strides, dilations, padding)


cdef void *_scratch(Py_ssize_t count, Py_ssize_t size) except? NULL:
    """malloc of count elements (at least one), or MemoryError."""
    cdef void *p = malloc(max(count, 1) * size)
    if p == NULL:
        raise MemoryError("grouped conv2d: could not allocate its group-major copies")
    return p


# The backward with few channels a group (cg <= DIRECT_CG, fg <= DIRECT_FG, as channel-shuffle
# networks'): each group's GEMM would be a sliver (k = kh*kw*cg, n = fg) that the packed kernels
# waste most of their lanes on, and the backward has two of them. Instead x is expanded once so
# that every filter o finds the input channel it reads at a contiguous index:
# xe[pos, j, o] = x[pos, (o // fg)*cg + j]; then all filters of all groups are one contiguous
# vector per tap and j, exactly the kernel's (kh, kw, cg, f) layout:
#   dkernel    = sum over images (in order) of each image's sum over positions of xe * dz
#   dxe        = dz * kernel added at each tap's position; dx[.., gi*cg + j] = sum over m of
#                dxe[.., j, gi*fg + m]
# Images run in parallel, each written by one thread, and the per-image kernel and bias partials
# are added in image order: the same bits at any thread count. (The forward stays on the
# per-group GEMM: measured 3x faster than this layout's direct forward for 32 groups of 2 of 64
# channels, b32 32x32, one thread; the backward ran as fast as the GEMM's before its copies.)
cdef enum:
    DIRECT_CG = 4
    DIRECT_FG = 4


cdef inline void _expand_row(const floating *x, Py_ssize_t r, Py_ssize_t G, Py_ssize_t cg,
                             Py_ssize_t fg, floating *xe) noexcept nogil:
    """xe[r, j, gi*fg + m] := x[r, gi*cg + j]."""
    cdef Py_ssize_t j, gi, m, F = G * fg
    cdef floating v
    for j in range(cg):
        for gi in range(G):
            v = x[r * G * cg + gi * cg + j]
            for m in range(fg):
                xe[(r * cg + j) * F + gi * fg + m] = v


cdef inline void _direct_backward_image(const fnn_conv_geom *g, Py_ssize_t G, Py_ssize_t F,
                                        const floating *xe, const floating *kernel,
                                        const floating *dz, Py_ssize_t b, floating *pk,
                                        floating *pb, floating *dxe,
                                        floating *dx) noexcept nogil:
    """Image b's kernel and bias partials (pk, pb: its own) and, unless dxe is NULL, its dx."""
    cdef Py_ssize_t oy, ox, ky, kx, iy, ix, j, o, m, gi, p, cF = g.c * F
    cdef Py_ssize_t fg = F // G, plane = g.h * g.w
    cdef const floating *d
    cdef const floating *src
    cdef const floating *kk
    cdef floating *acc
    cdef floating *back
    cdef floating v
    memset(pk, 0, g.kh * g.kw * cF * sizeof(floating))
    memset(pb, 0, F * sizeof(floating))
    if dxe != NULL:
        memset(dxe, 0, plane * cF * sizeof(floating))
    for oy in range(g.oh):
        for ox in range(g.ow):
            d = dz + ((b * g.oh + oy) * g.ow + ox) * F
            for o in range(F):
                pb[o] += d[o]
            for ky in range(g.kh):
                iy = oy * g.sh - g.pt + ky * g.dh
                if iy < 0 or iy >= g.h:
                    continue
                for kx in range(g.kw):
                    ix = ox * g.sw - g.pl + kx * g.dw
                    if ix < 0 or ix >= g.w:
                        continue
                    src = xe + ((b * g.h + iy) * g.w + ix) * cF
                    acc = pk + (ky * g.kw + kx) * cF
                    for j in range(g.c):
                        for o in range(F):
                            acc[j * F + o] += src[j * F + o] * d[o]
                    if dxe != NULL:
                        kk = kernel + (ky * g.kw + kx) * cF
                        back = dxe + (iy * g.w + ix) * cF
                        for j in range(g.c):
                            for o in range(F):
                                back[j * F + o] += d[o] * kk[j * F + o]
    if dxe == NULL:
        return
    for p in range(plane):
        for gi in range(G):
            for j in range(g.c):
                v = 0
                for m in range(fg):
                    v = v + dxe[(p * g.c + j) * F + gi * fg + m]
                dx[(b * plane + p) * G * g.c + gi * g.c + j] = v


cdef bint _direct_pays(const fnn_conv_geom *g) noexcept nogil:
    """The expanded direct kernels for few channels and filters a group (see above)."""
    return g.c <= DIRECT_CG and g.f <= DIRECT_FG


cdef int _direct_backward(const fnn_conv_geom *g, Py_ssize_t G, const floating *x,
                          const floating *kernel, const floating *dz, floating *dkernel,
                          floating *dbias, floating *dx) noexcept nogil:
    cdef Py_ssize_t F = G * g.f, r, b, i, rows = g.n * g.h * g.w, ksize = g.kh * g.kw * g.c * F
    cdef int nt
    cdef floating *xe = <floating *>malloc(max(rows * g.c * F, 1) * sizeof(floating))
    cdef floating *pk = <floating *>malloc(max(g.n * ksize, 1) * sizeof(floating))
    cdef floating *pb = <floating *>malloc(max(g.n * F, 1) * sizeof(floating))
    cdef floating *dxe = NULL
    if dx != NULL:
        dxe = <floating *>malloc(max(rows * g.c * F, 1) * sizeof(floating))
    if xe == NULL or pk == NULL or pb == NULL or (dx != NULL and dxe == NULL):
        free(xe)
        free(pk)
        free(pb)
        free(dxe)
        return 0
    nt = threads_for(rows * g.c * F)
    if nt <= 1:
        for r in range(rows):
            _expand_row(x, r, G, g.c, g.f, xe)
    else:
        for r in prange(rows, schedule="static", num_threads=nt):
            _expand_row(x, r, G, g.c, g.f, xe)
    nt = threads_for(g.n * g.oh * g.ow * g.kh * g.kw * g.c * F)
    if nt <= 1 or g.n == 1:
        for b in range(g.n):
            _direct_backward_image(g, G, F, xe, kernel, dz, b, pk + b * ksize, pb + b * F,
                                   dxe + b * g.h * g.w * g.c * F if dx != NULL else NULL, dx)
    else:
        for b in prange(g.n, schedule="static", num_threads=nt):
            _direct_backward_image(g, G, F, xe, kernel, dz, b, pk + b * ksize, pb + b * F,
                                   dxe + b * g.h * g.w * g.c * F if dx != NULL else NULL, dx)
    for i in range(ksize):
        dkernel[i] = pk[i]
    for b in range(1, g.n):
        for i in range(ksize):
            dkernel[i] += pk[b * ksize + i]
    for i in range(F):
        dbias[i] = pb[i]
    for b in range(1, g.n):
        for i in range(F):
            dbias[i] += pb[b * F + i]
    free(xe)
    free(pk)
    free(pb)
    free(dxe)
    return 1


def conv2d_grouped_forward(const floating[:, :, :, ::1] x,        # IN  (n, h, w, c)
                           const floating[:, :, :, ::1] kernel,   # IN  (kh, kw, c/groups, f)
                           const floating[::1] bias,              # IN  (f,)
                           strides, dilations, padding, groups,
                           int act, double param,
                           floating[:, :, :, ::1] y):             # OUT (n, oh, ow, f)
    """y[..., gi*fg:(gi+1)*fg] := act(conv2d(x[..., gi*cg:(gi+1)*cg], kernel[..., gi*fg:(gi+1)*fg])
    + bias[gi*fg:(gi+1)*fg]) for each group gi (act element-wise: not softmax)"""
    cdef fnn_conv_geom g = _group_geometry(_shape(x), _shape(kernel), _shape(y), strides,
                                           dilations, padding, groups, "conv2d_grouped_forward")
    cdef Py_ssize_t G = groups, gi, xg, kg, yg
    cdef int ok = 1
    cdef float param32 = <float>param
    cdef floating *xt = NULL
    cdef floating *kt = NULL
    cdef floating *yt = NULL
    if bias.shape[0] != g.f * G:
        raise ValueError(f"conv2d_grouped_forward: bias must have {g.f * G} values. "
                         f"Received: {bias.shape[0]}")
    if act < 0 or act >= N_ACTIVATIONS or act == 9 or act == 6:
        raise ValueError(f"conv2d_grouped_forward: activation code {act} is not one the kernel "
                         f"applies per group (softmax is applied after it)")
    if g.n == 0:
        return y.base
    xg, kg, yg = g.n * g.h * g.w * g.c, g.kh * g.kw * g.c * g.f, g.n * g.oh * g.ow * g.f
    try:
        xt = <floating *>_scratch(xg * G, sizeof(floating))
        kt = <floating *>_scratch(kg * G, sizeof(floating))
        yt = <floating *>_scratch(yg * G, sizeof(floating))
        with nogil:
            _regroup(&x[0, 0, 0, 0], g.n * g.h * g.w, G, g.c, xt, True)
            _regroup(&kernel[0, 0, 0, 0], g.kh * g.kw * g.c, G, g.f, kt, True)
            for gi in range(G):
                if floating is float:
                    ok = fnn_conv2d_forward_f32(&g, xt + gi * xg, kt + gi * kg, &bias[gi * g.f],
                                                act, param32, yt + gi * yg)
                else:
                    ok = fnn_conv2d_forward_f64(&g, xt + gi * xg, kt + gi * kg, &bias[gi * g.f],
                                                act, param, yt + gi * yg)
                if not ok:
                    break
            if ok:
                _regroup(yt, g.n * g.oh * g.ow, G, g.f, &y[0, 0, 0, 0], False)
    finally:
        free(xt)
        free(kt)
        free(yt)
    if not ok:
        raise MemoryError("conv2d_grouped_forward: could not allocate its chunk buffers")
    return y.base


def conv2d_grouped_backward(const floating[:, :, :, ::1] x,       # IN  (n, h, w, c)
                            const floating[:, :, :, ::1] kernel,  # IN  (kh, kw, c/groups, f)
                            const floating[:, :, :, ::1] dz,      # IN  (n, oh, ow, f)
                            strides, dilations, padding, groups,
                            floating[:, :, :, ::1] dkernel,       # OUT (kh, kw, c/groups, f)
                            floating[::1] dbias,                  # OUT (f,)
                            floating[:, :, :, ::1] dx):           # OUT (n, h, w, c), or None
    """conv2d_backward of each group's convolution (conv2d_grouped_forward), its kernel, bias
    and input gradients written into the group's slices of dkernel, dbias and dx"""
    cdef fnn_conv_geom g = _group_geometry(_shape(x), _shape(kernel), _shape(dz), strides,
                                           dilations, padding, groups,
                                           "conv2d_grouped_backward")
    cdef Py_ssize_t G = groups, gi, xg, kg, yg, i
    cdef int ok = 1
    cdef bint want_dx = dx is not None
    cdef floating *xt = NULL
    cdef floating *kt = NULL
    cdef floating *dzt = NULL
    cdef floating *dkt = NULL
    cdef floating *dxt = NULL
    for i in range(4):
        if dkernel.shape[i] != kernel.shape[i]:
            raise ValueError(f"conv2d_grouped_backward: dkernel must be shaped "
                             f"{_shape(kernel)}. Received: {_shape(dkernel)}")
    if dbias.shape[0] != g.f * G:
        raise ValueError(f"conv2d_grouped_backward: dbias must have {g.f * G} values. "
                         f"Received: {dbias.shape[0]}")
    if want_dx:
        for i in range(4):
            if dx.shape[i] != x.shape[i]:
                raise ValueError(f"conv2d_grouped_backward: dx must be shaped as x "
                                 f"{_shape(x)}. Received: {_shape(dx)}")
    if g.n == 0:
        dkernel[...] = 0
        dbias[...] = 0
        return
    if _direct_pays(&g):
        with nogil:
            ok = _direct_backward(&g, G, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], &dz[0, 0, 0, 0],
                                  &dkernel[0, 0, 0, 0], &dbias[0],
                                  &dx[0, 0, 0, 0] if want_dx else NULL)
        if not ok:
            raise MemoryError("conv2d_grouped_backward: could not allocate its buffers")
        return
    xg, kg, yg = g.n * g.h * g.w * g.c, g.kh * g.kw * g.c * g.f, g.n * g.oh * g.ow * g.f
    try:
        xt = <floating *>_scratch(xg * G, sizeof(floating))
        kt = <floating *>_scratch(kg * G, sizeof(floating))
        dzt = <floating *>_scratch(yg * G, sizeof(floating))
        dkt = <floating *>_scratch(kg * G, sizeof(floating))
        if want_dx:
            dxt = <floating *>_scratch(xg * G, sizeof(floating))
        with nogil:
            _regroup(&x[0, 0, 0, 0], g.n * g.h * g.w, G, g.c, xt, True)
            _regroup(&kernel[0, 0, 0, 0], g.kh * g.kw * g.c, G, g.f, kt, True)
            _regroup(&dz[0, 0, 0, 0], g.n * g.oh * g.ow, G, g.f, dzt, True)
            for gi in range(G):
                if floating is float:
                    ok = fnn_conv2d_backward_f32(&g, xt + gi * xg, kt + gi * kg, dzt + gi * yg,
                                                 dkt + gi * kg, &dbias[gi * g.f],
                                                 dxt + gi * xg if want_dx else NULL)
                else:
                    ok = fnn_conv2d_backward_f64(&g, xt + gi * xg, kt + gi * kg, dzt + gi * yg,
                                                 dkt + gi * kg, &dbias[gi * g.f],
                                                 dxt + gi * xg if want_dx else NULL)
                if not ok:
                    break
            if ok:
                _regroup(dkt, g.kh * g.kw * g.c, G, g.f, &dkernel[0, 0, 0, 0], False)
                if want_dx:
                    _regroup(dxt, g.n * g.h * g.w, G, g.c, &dx[0, 0, 0, 0], False)
    finally:
        free(xt)
        free(kt)
        free(dzt)
        free(dkt)
        free(dxt)
    if not ok:
        raise MemoryError("conv2d_grouped_backward: could not allocate its chunk buffers")
