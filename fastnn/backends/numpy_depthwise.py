"""The NumPy twins of the depthwise convolution kernels (fastnn/_ext/_depthwise.pyx): the same
functions and signatures, written for clarity: every tap of every output position as one strided
view of a padded copy, each channel multiplied by its own filters, and the transpose added back
window offset by window offset.

    x (n, h, w, c), kernel (kh, kw, c, dm), y and dz (n, oh, ow, c*dm); strides (sh, sw),
    dilations (dh, dw), padding (top, left): y[b, i, j, ci*dm + m] = act(bias + sum over taps
    (ky, kx) of x[b, i*sh - top + ky*dh, j*sw - left + kx*dw, ci] * kernel[ky, kx, ci, m]),
    zero outside the input.
"""

import numpy as np

from fastnn.backends.numpy_conv import _col2im, _padded, _taps


def depthwise_conv2d_forward(x, kernel, bias, strides, dilations, padding, act, param, y):
    """y := act(depthwise_conv2d(x, kernel) + bias)"""
    from fastnn.backends.numpy_backend import activation_forward
    kh, kw, c, dm = kernel.shape
    n, oh, ow, _ = y.shape
    xp = _padded(x, (kh, kw), (oh, ow), strides, dilations, padding)
    taps = _taps(xp, (kh, kw), (oh, ow), strides, dilations)          # (n, oh, ow, kh, kw, c)
    y5 = y.reshape(n, oh, ow, c, dm)
    np.einsum("nijyxc,yxcm->nijcm", taps, kernel, out=y5)
    rows = y.reshape(-1, c * dm)
    rows += bias
    activation_forward(rows, act, param, rows)
    return y


def depthwise_conv2d_backward(x, kernel, dz, strides, dilations, padding, dkernel, dbias, dx):
    """dkernel[ky, kx, ci, m] := sum of x[tap] * dz[..., ci*dm + m];  dbias := dz summed over
    (n, oh, ow);  dx := the transpose of the tap gather applied to dz * kernel, summed over m
    (unless dx is None)"""
    kh, kw, c, dm = kernel.shape
    n, oh, ow, _ = dz.shape
    xp = _padded(x, (kh, kw), (oh, ow), strides, dilations, padding)
    taps = _taps(xp, (kh, kw), (oh, ow), strides, dilations)
    dz5 = dz.reshape(n, oh, ow, c, dm)
    np.einsum("nijyxc,nijcm->yxcm", taps, dz5, out=dkernel)
    np.sum(dz.reshape(-1, c * dm), axis=0, out=dbias)
    if dx is None:
        return
    dpatches = np.einsum("nijcm,yxcm->nijyxc", dz5, kernel)
    _col2im(dpatches, kernel.shape, (oh, ow), xp.shape, strides, dilations, padding, dx)
