"""The NumPy twins of the convolution kernels (fastnn/_ext/_conv.pyx): the same functions and
signatures, written for clarity: the whole patch matrix of the batch (stride tricks on a padded
copy) times the kernel, and its transpose added back window offset by window offset.

    x (n, h, w, c), kernel (kh, kw, c, f), y and dz (n, oh, ow, f); strides (sh, sw), dilations
    (dh, dw), padding (top, left): y[b, i, j] = act(bias + sum over taps (ky, kx) of
    x[b, i*sh - top + ky*dh, j*sw - left + kx*dw, :] @ kernel[ky, kx]), zero outside the input.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided


def _padded(x, kshape, oshape, strides, dilations, padding):
    """x with zeros around it: enough rows and columns for every tap of every output."""
    (kh, kw), (oh, ow) = kshape, oshape
    (sh, sw), (dh, dw), (top, left) = strides, dilations, padding
    n, h, w, c = x.shape
    need_h, need_w = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    bottom, right = max(need_h - h - top, 0), max(need_w - w - left, 0)
    xp = np.zeros((n, h + top + bottom, w + left + right, c), x.dtype)
    xp[:, top:top + h, left:left + w] = x
    return xp


def _taps(xp, kshape, oshape, strides, dilations):
    """The (n, oh, ow, kh, kw, c) view of every tap of every output position in xp."""
    (kh, kw), (oh, ow) = kshape, oshape
    (sh, sw), (dh, dw) = strides, dilations
    sn, sy, sx, sc = xp.strides
    return as_strided(xp, (xp.shape[0], oh, ow, kh, kw, xp.shape[3]),
                      (sn, sy * sh, sx * sw, sy * dh, sx * dw, sc), writeable=False)


def conv2d_forward(x, kernel, bias, strides, dilations, padding, act, param, y):
    """y := act(conv2d(x, kernel) + bias)"""
    from fastnn.backends.numpy_backend import activation_forward
    kh, kw, c, f = kernel.shape
    n, oh, ow, _ = y.shape
    xp = _padded(x, (kh, kw), (oh, ow), strides, dilations, padding)
    taps = _taps(xp, (kh, kw), (oh, ow), strides, dilations)
    patches = taps.reshape(n * oh * ow, kh * kw * c)
    rows = y.reshape(n * oh * ow, f)
    np.matmul(patches, kernel.reshape(-1, f), out=rows)
    rows += bias
    activation_forward(rows, act, param, rows)
    return y


def conv3d_forward(x, kernel, bias, depth, strides, dilations, padding, act, param, y):
    """y := act(conv3d(x, kernel) + bias), the kernel read (kh, kw, kd*c, f): conv2d_forward on
    the depth stack (output depth p's kd input slices side by side along the channels, zeros
    outside x; see fastnn/layers/convolutional3d.py). True: done."""
    kd, sd, dd, front = depth
    n, d, h, w, c = x.shape
    od = y.shape[1]
    stack = np.zeros((n, od, h, w, kd, c), x.dtype)
    for p in range(od):
        for kz in range(kd):
            iz = p * sd + kz * dd - front
            if 0 <= iz < d:
                stack[:, p, :, :, kz] = x[:, iz]
    conv2d_forward(stack.reshape(n * od, h, w, kd * c), kernel, bias, strides, dilations,
                   padding, act, param, y.reshape(n * od, *y.shape[2:]))
    return True


def conv3d_backward_kernel(x, dz, depth, strides, dilations, padding, dkernel, dbias):
    """dkernel (kd, kh, kw, c, f), dbias := the kernel and bias gradients of conv3d_forward's
    convolution: tap kz's, conv2d_backward's kernel gradient of the input slices it reads
    against the output slices reading them, summed over the samples. True: done."""
    kd, sd, dd, front = depth
    n, d, h, w, c = x.shape
    od = dz.shape[1]
    f = dz.shape[4]
    part, bpart = np.empty(dkernel.shape[1:], dkernel.dtype), np.empty(f, dkernel.dtype)
    dkernel[...] = 0
    for kz in range(kd):
        ps = [p for p in range(od) if 0 <= p * sd + kz * dd - front < d]
        if not ps:
            continue
        zs = [p * sd + kz * dd - front for p in ps]
        conv2d_backward(x[:, zs].reshape(-1, h, w, c), dkernel[kz],
                        np.ascontiguousarray(dz[:, ps]).reshape(-1, *dz.shape[2:]), strides,
                        dilations, padding, part, bpart, None)
        dkernel[kz] += part
    np.sum(dz.reshape(-1, f), axis=0, out=dbias)
    return True


def conv3d_unstack(dstack, depth, dx):
    """dx := the depth stack's gradient (n, od, h, w, kd*c) added back into the slices it was
    gathered from, taps in order (zero where no tap reads a slice)."""
    kd, sd, dd, front = depth
    n, d, h, w, c = dx.shape
    od = dstack.shape[1]
    ds = dstack.reshape(n, od, h, w, kd, c)
    dx[...] = 0
    for i in range(d):
        first = True
        for kz in range(kd):
            off = i + front - kz * dd
            if off < 0 or off % sd or off // sd >= od:
                continue
            if first:
                dx[:, i] = ds[:, off // sd, :, :, kz]
                first = False
            else:
                dx[:, i] += ds[:, off // sd, :, :, kz]


def conv2d_dx_on_gemm(x_shape, kernel_shape, y_shape, strides, dilations, padding):
    """The compiled backend's question (does its conv2d_backward take the input gradient
    through the GEMM and a transposed gather?): here every input gradient is that product and
    _col2im, so True."""
    return True


def conv2d_backward(x, kernel, dz, strides, dilations, padding, dkernel, dbias, dx):
    """dkernel := patches^T dz;  dbias := dz summed over (n, oh, ow);  dx := the transpose of the
    patch gather applied to dz kernel^T (unless dx is None)"""
    kh, kw, c, f = kernel.shape
    n, oh, ow, _ = dz.shape
    xp = _padded(x, (kh, kw), (oh, ow), strides, dilations, padding)
    taps = _taps(xp, (kh, kw), (oh, ow), strides, dilations)
    patches = taps.reshape(n * oh * ow, kh * kw * c)
    g = dz.reshape(-1, f)
    np.matmul(patches.T, g, out=dkernel.reshape(-1, f))
    np.sum(g, axis=0, out=dbias)
    if dx is None:
        return
    _col2im(g @ kernel.reshape(-1, f).T, kernel.shape, (oh, ow), xp.shape, strides, dilations,
            padding, dx)


def _col2im(dpatches, kshape, oshape, padded_shape, strides, dilations, padding, dx):
    """dx := the patch gradients (n*oh*ow, kh*kw*c) added back, tap by tap, into a padded
    image of ``padded_shape``, then cropped to dx's shape (the transpose of the gather)."""
    kh, kw, c, _ = kshape
    oh, ow = oshape
    n = dx.shape[0]
    dpatches = dpatches.reshape(n, oh, ow, kh, kw, c)
    dxp = np.zeros(padded_shape, dx.dtype)
    (sh, sw), (dh, dw), (top, left) = strides, dilations, padding
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            dxp[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw] += \
                dpatches[:, :, :, ky, kx]
    h, w = dx.shape[1:3]
    dx[...] = dxp[:, top:top + h, left:left + w]


def conv2d_backward_input(kernel, dz, strides, dilations, padding, dx):
    """dx := conv2d_backward's dx alone: the forward of a transposed convolution, whose input
    plays dz"""
    kh, kw, c, f = kernel.shape
    n, oh, ow, _ = dz.shape
    xp_shape = _padded(dx, (kh, kw), (oh, ow), strides, dilations, padding).shape
    _col2im(dz.reshape(-1, f) @ kernel.reshape(-1, f).T, kernel.shape, (oh, ow), xp_shape,
            strides, dilations, padding, dx)
    return dx


def conv2d_backward_pooled(x, dy, argmax, yp, out_hw, strides, dilations, padding, dkernel,
                           dbias):
    """dkernel, dbias := conv2d_backward's for dz = maxpool2d_backward_relu(dy, argmax, yp)
    (n, oh, ow, f), summed over the windows' argmax patches only (dz is zero elsewhere): a relu
    convolution read only by a max pooling. Argmax values outside [0, oh*ow) add nothing."""
    kh, kw, c, f = dkernel.shape
    n = x.shape[0]
    oh, ow = out_hw
    xp = _padded(x, (kh, kw), (oh, ow), strides, dilations, padding)
    patches = _taps(xp, (kh, kw), (oh, ow), strides, dilations).reshape(n, oh * ow, -1)
    with np.errstate(invalid="ignore"):                 # inf * 0: NaN, as the compiled kernel
        g = (dy + dy.dtype.type(0)) * (yp > 0)
    keep = (argmax >= 0) & (argmax < oh * ow)
    b = np.broadcast_to(np.arange(n).reshape(-1, 1, 1, 1), dy.shape)
    for j in range(f):
        k = keep[..., j]
        rows = patches[b[..., j][k], argmax[..., j][k]]      # (entries, kh*kw*c)
        dkernel.reshape(-1, f)[:, j] = rows.T @ g[..., j][k]
        dbias[j] = g[..., j][k].sum(dtype=np.float64)


def _group_slices(c, f, groups):
    """The (input channels, filters) slices of each group."""
    cg, fg = c // groups, f // groups
    return [(slice(gi * cg, (gi + 1) * cg), slice(gi * fg, (gi + 1) * fg))
            for gi in range(groups)]


def conv2d_grouped_forward(x, kernel, bias, strides, dilations, padding, groups, act, param, y):
    """y[..., filters of group gi] := act(conv2d(x[..., channels of gi], kernel[..., filters of
    gi]) + bias[filters of gi]) for each group gi (x's channels and the filters in ``groups``
    equal runs; act element-wise, not softmax)"""
    f = kernel.shape[3]
    for cs, fs in _group_slices(x.shape[3], f, groups):
        yg = np.empty(y.shape[:3] + (f // groups,), y.dtype)
        conv2d_forward(np.ascontiguousarray(x[..., cs]), np.ascontiguousarray(kernel[..., fs]),
                       bias[fs], strides, dilations, padding, act, param, yg)
        y[..., fs] = yg
    return y


def conv2d_grouped_backward(x, kernel, dz, strides, dilations, padding, groups, dkernel, dbias,
                            dx):
    """conv2d_backward of each group's convolution (conv2d_grouped_forward), written into the
    group's slices of dkernel, dbias and dx (unless dx is None)"""
    f = kernel.shape[3]
    for cs, fs in _group_slices(x.shape[3], f, groups):
        dk = np.empty(kernel.shape[:3] + (f // groups,), kernel.dtype)
        db = np.empty(f // groups, kernel.dtype)
        dxg = None if dx is None else np.empty(x.shape[:3] + (x.shape[3] // groups,), x.dtype)
        conv2d_backward(np.ascontiguousarray(x[..., cs]), np.ascontiguousarray(kernel[..., fs]),
                        np.ascontiguousarray(dz[..., fs]), strides, dilations, padding, dk, db,
                        dxg)
        dkernel[..., fs], dbias[fs] = dk, db
        if dx is not None:
            dx[..., cs] = dxg
