# Depthwise convolution kernels of the fast backend: DepthwiseConv2D forward and backward (the
# depthwise half of SeparableConv2D, and the 1-D forms as one-row images), channels-last, over
# src_c/fnn_dwconv.c (rows of channels vectorised per SIMD flavour; threads over whole rows; the
# kernel gradient summed in fixed row blocks, so results are bitwise the same at any thread
# count; see src_c/fnn_dwconv.h).
#
# Geometry (strides, dilations, the padding before the first row and column) comes from the
# layer; every shape relation the C code relies on is checked here, so no call can read or write
# outside the arrays it is given (taps that fall outside the input read as zero).

from cython cimport floating

from fastnn._ext.dwconv cimport (fnn_dw_geom, fnn_dwconv2d_backward_f32,
                                 fnn_dwconv2d_backward_f64, fnn_dwconv2d_forward_f32,
                                 fnn_dwconv2d_forward_f64)

# fastnn.activations codes 0..13 but 6 (SOFTMAX: the layer applies it) and 9 (DERIV_GIVEN)
cdef int N_ACTIVATIONS = 14
cdef Py_ssize_t BIG = (<Py_ssize_t>1) << 31


cdef tuple _shape(const floating[:, :, :, ::1] a):
    return (a.shape[0], a.shape[1], a.shape[2], a.shape[3])


cdef fnn_dw_geom _geometry(tuple xs, tuple ks, tuple ys, strides, dilations,
                           padding) except *:
    """The checked geometry of x (n, h, w, c), kernel (kh, kw, c, dm), y (n, oh, ow, c*dm)."""
    cdef fnn_dw_geom g
    sh, sw = strides
    dh, dw = dilations
    pt, pl = padding
    for name, v in (("strides", strides), ("dilation_rate", dilations), ("padding", padding)):
        if any(type(e) is not int for e in v):
            raise TypeError(f"depthwise_conv2d: {name} must be two ints. Received: {name}={v!r}")
    if sh < 1 or sw < 1 or dh < 1 or dw < 1 or pt < 0 or pl < 0:
        raise ValueError(f"depthwise_conv2d: strides and dilations must be >= 1 and padding "
                         f">= 0. Received: strides={strides}, dilation_rate={dilations}, "
                         f"padding={padding}")
    if max(sh, sw, dh, dw, pt, pl, *xs[1:], *ks, *ys[1:]) >= BIG:
        raise ValueError(f"depthwise_conv2d: sizes, strides, dilations and padding must be "
                         f"below 2**31. Received: x {xs}, kernel {ks}, y {ys}")
    if xs[3] != ks[2] or ys[3] != ks[2] * ks[3] or ys[0] != xs[0]:
        raise ValueError(f"depthwise_conv2d: shapes do not match: x {xs}, kernel {ks}, y {ys} "
                         f"(x's channels must be the kernel's third axis, y's channels their "
                         f"product with its fourth, and x and y the same batch)")
    if min(ks) < 1 or ys[1] < 1 or ys[2] < 1 or xs[1] < 1 or xs[2] < 1:
        raise ValueError(f"depthwise_conv2d: empty kernel, input or output: x {xs}, kernel "
                         f"{ks}, y {ys}")
    if ys[3] >= BIG or xs[1] * xs[2] * ys[3] >= (<Py_ssize_t>1) << 40:
        raise ValueError(f"depthwise_conv2d: x {xs} with {ks[3]} filters a channel is too large")
    # any output size is safe: the C code skips every tap outside the input (the padding)
    g.n, g.h, g.w, g.c = xs
    g.kh, g.kw, g.dm = ks[0], ks[1], ks[3]
    g.sh, g.sw, g.dh, g.dw, g.pt, g.pl = sh, sw, dh, dw, pt, pl
    g.oh, g.ow = ys[1], ys[2]
    return g


def depthwise_conv2d_forward(const floating[:, :, :, ::1] x,        # IN  (n, h, w, c)
                             const floating[:, :, :, ::1] kernel,   # IN  (kh, kw, c, dm)
                             const floating[::1] bias,              # IN  (c*dm,)
                             strides, dilations, padding,           # (sh, sw), (dh, dw), (t, l)
                             int act, double param,
                             floating[:, :, :, ::1] y):             # OUT (n, oh, ow, c*dm)
    """y[..., ci*dm + m] := act(sum over taps of x[..., ci] * kernel[ky, kx, ci, m] + bias)"""
    cdef fnn_dw_geom g
    cdef int ok
    cdef float param32 = <float>param
    g = _geometry(_shape(x), _shape(kernel), _shape(y), strides, dilations, padding)
    if bias.shape[0] != g.c * g.dm:
        raise ValueError(f"depthwise_conv2d: bias must have {g.c * g.dm} values. Received: "
                         f"{bias.shape[0]}")
    if act < 0 or act >= N_ACTIVATIONS or act == 9 or act == 6:
        raise ValueError(f"depthwise_conv2d: activation code {act} is not one the kernel "
                         f"applies (softmax is applied after it)")
    if g.n == 0:
        return y.base
    with nogil:
        if floating is float:
            ok = fnn_dwconv2d_forward_f32(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], &bias[0], act,
                                          param32, &y[0, 0, 0, 0])
        else:
            ok = fnn_dwconv2d_forward_f64(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], &bias[0], act,
                                          param, &y[0, 0, 0, 0])
    if not ok:
        raise MemoryError("depthwise_conv2d_forward: could not allocate its row buffers")
    return y.base


def depthwise_conv2d_backward(const floating[:, :, :, ::1] x,       # IN  (n, h, w, c)
                              const floating[:, :, :, ::1] kernel,  # IN  (kh, kw, c, dm)
                              const floating[:, :, :, ::1] dz,      # IN  (n, oh, ow, c*dm)
                              strides, dilations, padding,
                              floating[:, :, :, ::1] dkernel,       # OUT (kh, kw, c, dm)
                              floating[::1] dbias,                  # OUT (c*dm,)
                              floating[:, :, :, ::1] dx):           # OUT (n, h, w, c) or None
    """dkernel[ky, kx, ci, m] := sum of x[tap] * dz[..., ci*dm + m];  dbias := sum of dz;
    dx := the taps' transpose of dz * kernel, summed over m (dx may be None)"""
    cdef fnn_dw_geom g
    cdef int ok
    cdef floating *dx_ptr = NULL
    cdef Py_ssize_t i
    g = _geometry(_shape(x), _shape(kernel), _shape(dz), strides, dilations, padding)
    for i in range(4):
        if dkernel.shape[i] != kernel.shape[i]:
            raise ValueError(f"depthwise_conv2d_backward: dkernel must be shaped "
                             f"{_shape(kernel)}. Received: {_shape(dkernel)}")
    if dbias.shape[0] != g.c * g.dm:
        raise ValueError(f"depthwise_conv2d_backward: dbias must have {g.c * g.dm} values. "
                         f"Received: {dbias.shape[0]}")
    if dx is not None:
        for i in range(4):
            if dx.shape[i] != x.shape[i]:
                raise ValueError(f"depthwise_conv2d_backward: dx must be shaped as x "
                                 f"{_shape(x)}. Received: {_shape(dx)}")
        if g.n:
            dx_ptr = &dx[0, 0, 0, 0]
    if g.n == 0:
        dkernel[...] = 0
        dbias[...] = 0
        return
    with nogil:
        if floating is float:
            ok = fnn_dwconv2d_backward_f32(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                           &dz[0, 0, 0, 0], &dkernel[0, 0, 0, 0], &dbias[0],
                                           dx_ptr)
        else:
            ok = fnn_dwconv2d_backward_f64(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                           &dz[0, 0, 0, 0], &dkernel[0, 0, 0, 0], &dbias[0],
                                           dx_ptr)
    if not ok:
        raise MemoryError("depthwise_conv2d_backward: could not allocate its buffers")
