"""The NumPy twins of the pooling kernels (fastnn/_ext/_pooling.pyx): the same functions and
signatures, a loop over the window's offsets on padded copies, vectorised over everything else.

Window (oy, ox) covers rows oy*sh - top .. + ph - 1 and columns ox*sw - left .. + pw - 1 of
x (n, h, w, c), clipped to the input. Max pooling keeps the first largest element in window
order (a NaN wins) and its index iy*w + ix; average pooling divides by the number of input
elements in the window.
"""

import numpy as np


def _offsets(shape, oshape, ph, pw, sh, sw, top, left, fill, x=None, dtype=None):
    """(padded x or a mask of input positions, the slice of each window offset)."""
    n, h, w, c = shape
    oh, ow = oshape
    bottom = max((oh - 1) * sh + ph - h - top, 0)
    right = max((ow - 1) * sw + pw - w - left, 0)
    src = np.ones((1, h, w, 1), dtype) if x is None else x
    padded = np.full((src.shape[0], h + top + bottom, w + left + right, src.shape[3]), fill,
                     src.dtype)
    padded[:, top:top + h, left:left + w] = src
    for ky in range(ph):
        for kx in range(pw):
            yield ky, kx, padded[:, ky:ky + (oh - 1) * sh + 1:sh, kx:kx + (ow - 1) * sw + 1:sw]


def maxpool2d_forward(x, ph, pw, sh, sw, top, left, y, argmax):
    """y := the largest x of each window; argmax := iy*w + ix of the first one (-1: none)"""
    n, h, w, c = x.shape
    oh, ow = y.shape[1:3]
    y[...] = 0
    argmax[...] = -1
    rows = (np.arange(oh) * sh - top)[:, None]
    cols = (np.arange(ow) * sw - left)[None, :]
    for ky, kx, v in _offsets(x.shape, (oh, ow), ph, pw, sh, sw, top, left, np.nan, x):
        iy, ix = rows + ky, cols + kx
        inside = ((iy >= 0) & (iy < h) & (ix >= 0) & (ix < w))[None, :, :, None]
        better = inside & ((argmax < 0) | (v > y) | (np.isnan(v) & ~np.isnan(y)))
        y[better] = v[better]
        argmax[...] = np.where(better, (iy * w + ix)[None, :, :, None], argmax)
    return y


def maxpool2d_backward(dy, argmax, dx):
    """dx := 0, then dy added at each window's argmax (in output order)"""
    n, h, w, c = dx.shape
    flat = dx.reshape(n, h * w, c)
    flat[...] = 0
    b, _, _, k = np.indices(dy.shape, sparse=False)
    keep = (argmax >= 0) & (argmax < h * w)
    np.add.at(flat, (b[keep], argmax[keep], k[keep]), dy[keep])



def maxpool2d_backward_relu(dy, argmax, y, ph, pw, sh, sw, top, left, dx):
    """dx := maxpool2d_backward(dy, argmax) * (x > 0) for windows that do not overlap, x the
    pooled relu output (at a window's argmax x is y)"""
    if sh < ph or sw < pw:
        raise ValueError(f"maxpool2d_backward_relu: windows must not overlap. Received: "
                         f"pool=({ph}, {pw}), strides=({sh}, {sw})")
    n, h, w, c = dx.shape
    flat = dx.reshape(n, h * w, c)
    flat[...] = 0
    b, _, _, k = np.indices(dy.shape, sparse=False)
    keep = (argmax >= 0) & (argmax < h * w)
    with np.errstate(invalid="ignore"):          # inf * 0: NaN, as the compiled kernel
        g = (dy + dy.dtype.type(0)) * (y > 0)
    flat[b[keep], argmax[keep], k[keep]] = g[keep]


def avgpool2d_forward(x, ph, pw, sh, sw, top, left, y):
    """y := the mean of the input elements of each window (padding not counted)"""
    oh, ow = y.shape[1:3]
    total = np.zeros(y.shape, np.float64)
    count = np.zeros((1, oh, ow, 1), np.float64)
    for _, _, v in _offsets(x.shape, (oh, ow), ph, pw, sh, sw, top, left, 0, x):
        total += v
    for _, _, m in _offsets(x.shape, (oh, ow), ph, pw, sh, sw, top, left, 0, None, x.dtype):
        count += m
    y[...] = total / np.maximum(count, 1)
    return y


def avgpool2d_backward(dy, ph, pw, sh, sw, top, left, dx):
    """dx := 0, then dy / count added to each input element of its window"""
    n, h, w, c = dx.shape
    oh, ow = dy.shape[1:3]
    count = np.zeros((1, oh, ow, 1), np.float64)
    for _, _, m in _offsets(dx.shape, (oh, ow), ph, pw, sh, sw, top, left, 0, None, dx.dtype):
        count += m
    share = dy / np.maximum(count, 1)
    bottom = max((oh - 1) * sh + ph - h - top, 0)
    right = max((ow - 1) * sw + pw - w - left, 0)
    padded = np.zeros((n, h + top + bottom, w + left + right, c), np.float64)
    for ky in range(ph):
        for kx in range(pw):
            padded[:, ky:ky + (oh - 1) * sh + 1:sh, kx:kx + (ow - 1) * sw + 1:sw] += share
    dx[...] = padded[:, top:top + h, left:left + w]


def global_avgpool_forward(x, y):
    """y := the mean over the positions of x (n, p, c)"""
    np.mean(x, axis=1, out=y)
    return y


def global_avgpool_backward(dy, dx):
    """dx := dy / p at every position"""
    dx[...] = (dy / dx.shape[1])[:, None, :]


def global_maxpool_forward(x, y, argmax):
    """y := the largest value over the positions; argmax := the first position holding it
    (a NaN wins)"""
    nan = np.isnan(x)
    first = np.where(nan.any(axis=1), nan.argmax(axis=1), np.argmax(x, axis=1))
    argmax[...] = first
    y[...] = np.take_along_axis(x, first[:, None, :], axis=1)[:, 0]
    return y


def global_maxpool_backward(dy, argmax, dx):
    """dx := dy at each channel's argmax, 0 elsewhere"""
    dx[...] = 0
    np.put_along_axis(dx, argmax[:, None, :], dy[:, None, :], axis=1)
