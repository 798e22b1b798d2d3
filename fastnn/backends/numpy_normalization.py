"""NumPy twins of the normalization kernels (``fastnn/_ext/_normalization.pyx``).

The same arithmetic as the compiled kernels: statistics and sums in float64, the mean and
1/std rounded to the array's dtype once and used from there, each element-wise result computed
in float64 and rounded once. Only the order of the float64 sums differs (NumPy sums pairwise),
which stays far inside the backends' agreement (float32 rtol 1e-5, float64 rtol 1e-12).
"""

import numpy as np

_F64 = np.float64


def batchnorm_forward_train(x, gamma, beta, eps, momentum, moving_mean, moving_var, out, mean,
                            invstd, real=None):
    """out := gamma (x - mean) / sqrt(var + eps) + beta over the rows of (n, c) ``x``;
    moving := momentum moving + (1 - momentum) batch (the variance unbiased). With ``real``
    (n,), the statistics of its rows only (none: mean 0, var 0, as Keras)."""
    n, c = x.shape
    if n == 0 or c == 0:
        return
    x64 = x.astype(_F64)
    counted = x64 if real is None else x64[real.astype(bool)]
    count = counted.shape[0]
    if count:
        mean[...] = counted.mean(axis=0)
        centred = counted - mean.astype(_F64)
        var = np.mean(centred * centred, axis=0)
    else:
        mean[...] = 0
        var = np.zeros(c)
    invstd[...] = 1.0 / np.sqrt(var + eps)
    unbiased = var * count / (count - 1) if count > 1 else var
    moving_mean[...] = moving_mean.astype(_F64) * momentum + mean.astype(_F64) * (1.0 - momentum)
    moving_var[...] = moving_var.astype(_F64) * momentum + unbiased * (1.0 - momentum)
    _affine(x64, mean, invstd, gamma, beta, out)


def _affine(x64, mean, scale, gamma, beta, out):
    out[...] = gamma.astype(_F64) * ((x64 - mean.astype(_F64)) * scale.astype(_F64)) + beta


def batchnorm_forward_infer(x, gamma, beta, moving_mean, moving_var, eps, out):
    """out := gamma (x - moving_mean) / sqrt(moving_var + eps) + beta"""
    if x.size == 0:
        return
    scale = (1.0 / np.sqrt(moving_var.astype(_F64) + eps)).astype(x.dtype)
    _affine(x.astype(_F64), moving_mean, scale, gamma, beta, out)


def batchnorm_backward(x, dy, gamma, mean, invstd, dx, dgamma, dbeta, real=None):
    """dgamma += sum(dy xhat);  dbeta += sum(dy);
    dx := gamma invstd / n (n dy - sum(dy) - xhat sum(dy xhat)), skipped when dx is None. With
    ``real``, n counts its rows, and the others get dx := gamma invstd dy."""
    n, c = x.shape
    if n == 0 or c == 0:
        return
    dy64, inv = dy.astype(_F64), invstd.astype(_F64)
    xhat = (x.astype(_F64) - mean.astype(_F64)) * inv
    sdy, sdyx = dy64.sum(axis=0), (dy64 * xhat).sum(axis=0)
    dgamma[...] = dgamma.astype(_F64) + sdyx
    dbeta[...] = dbeta.astype(_F64) + sdy
    if dx is None:
        return
    if real is None:
        dx[...] = gamma.astype(_F64) * inv / n * (n * dy64 - sdy - xhat * sdyx)
        return
    keep = real.astype(bool)[:, None]
    count = int(keep.sum())
    full = gamma.astype(_F64) * inv / max(count, 1) * (count * dy64 - sdy - xhat * sdyx)
    dx[...] = np.where(keep, full, gamma.astype(_F64) * inv * dy64)


def layernorm_forward(x, gamma, beta, eps, out, mean, invstd):
    """out := gamma (x - mean_row) / sqrt(var_row + eps) + beta; mean, invstd (n,)"""
    n, c = x.shape
    if n == 0 or c == 0:
        return
    x64 = x.astype(_F64)
    mean[...] = x64.mean(axis=1)
    centred = x64 - mean.astype(_F64)[:, None]
    invstd[...] = 1.0 / np.sqrt(np.mean(centred * centred, axis=1) + eps)
    out[...] = gamma.astype(_F64) * (centred * invstd.astype(_F64)[:, None]) + beta


def layernorm_backward(x, dy, gamma, mean, invstd, dx, dgamma, dbeta):
    """g = dy gamma;  dx := invstd / c (c g - sum(g) - xhat sum(g xhat)) per row;
    dgamma += sum_rows(dy xhat);  dbeta += sum_rows(dy)"""
    n, c = x.shape
    if n == 0 or c == 0:
        return
    dy64, inv = dy.astype(_F64), invstd.astype(_F64)[:, None]
    xhat = (x.astype(_F64) - mean.astype(_F64)[:, None]) * inv
    if dx is not None:
        g = dy64 * gamma.astype(_F64)
        sg = g.sum(axis=1, keepdims=True)
        sgx = (g * xhat).sum(axis=1, keepdims=True)
        dx[...] = inv / c * (c * g - sg - xhat * sgx)
    dgamma[...] = dgamma.astype(_F64) + (dy64 * xhat).sum(axis=0)
    dbeta[...] = dbeta.astype(_F64) + dy64.sum(axis=0)


def _group_sums(s, groups):
    """(n, C) per-channel sums -> (n, G): each group's channels added in channel order (the
    compiled kernel's order; np.sum along an axis may add pairwise)."""
    s = s.reshape(s.shape[0], groups, -1)
    total = s[:, :, 0].copy()
    for j in range(1, s.shape[2]):
        total += s[:, :, j]
    return total


def groupnorm_forward(x, gamma, beta, groups, eps, out, mean, invstd):
    """x, out (n, P, C), G groups of k = C / G channels: per sample and group, over the
    positions and the group's channels, out := (x - mean) scale + beta with scale = invstd gamma
    rounded once to the dtype, and the map in the dtype; mean, invstd (n, G). Sums in double per
    channel over the positions, then the group's channels in order."""
    n, P, C = x.shape
    if n == 0 or P == 0 or C == 0:
        return
    k, N = C // groups, float(P * (C // groups))
    x64 = x.astype(_F64)
    mean[...] = _group_sums(x64.sum(axis=1), groups) / N
    mc = np.repeat(mean.astype(_F64), k, axis=1)[:, None, :]
    centred = x64 - mc
    invstd[...] = 1.0 / np.sqrt(_group_sums((centred * centred).sum(axis=1), groups) / N + eps)
    scale = (np.repeat(invstd.astype(_F64), k, axis=1) * gamma.astype(_F64)).astype(x.dtype)
    out[...] = (x - np.repeat(mean, k, axis=1)[:, None, :]) * scale[:, None, :] + beta


def groupnorm_backward(x, dy, gamma, mean, invstd, dx, dgamma, dbeta):
    """xhat = (x - mean) invstd, g = dy gamma[c]; per sample and group (N = P k values):
    dx := invstd / N (N g - sum(g) - xhat sum(g xhat)) (skipped when dx is None), as
    dy a - (x - mean) b - d with a channel's a = invstd gamma, b = invstd^2 sum(g xhat) / N,
    d = invstd sum(g) / N rounded once to the dtype, the map in the dtype;
    dgamma += sum over samples and positions of dy xhat;  dbeta += the sum of dy"""
    n, P, C = x.shape
    if n == 0 or P == 0 or C == 0:
        return
    groups = mean.shape[1]
    k, N = C // groups, float(P * (C // groups))
    mc = np.repeat(mean.astype(_F64), k, axis=1)[:, None, :]
    ic = np.repeat(invstd.astype(_F64), k, axis=1)                       # (n, C)
    dy64 = dy.astype(_F64)
    sdy = dy64.sum(axis=1)                                               # (n, C)
    sdyx = (dy64 * (x.astype(_F64) - mc)).sum(axis=1) * ic
    if dx is not None:
        g64 = gamma.astype(_F64)
        sg = np.repeat(_group_sums(g64 * sdy, groups), k, axis=1)
        sgx = np.repeat(_group_sums(g64 * sdyx, groups), k, axis=1)
        a = (ic * g64).astype(x.dtype)[:, None, :]
        b = (ic / N * ic * sgx).astype(x.dtype)[:, None, :]
        d = (ic / N * sg).astype(x.dtype)[:, None, :]
        dx[...] = (dy * a - (x - np.repeat(mean, k, axis=1)[:, None, :]) * b) - d
    dbeta[...] = dbeta.astype(_F64) + sdy.sum(axis=0)
    dgamma[...] = dgamma.astype(_F64) + sdyx.sum(axis=0)


def _lane_sums(values):
    """(n, c) -> (n,): value j into lane j % 8 (added in column order), then the lanes as
    ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)): the compiled kernel's order, bit for bit."""
    n, c = values.shape
    lanes = np.zeros((n, 8))
    for j0 in range(0, c, 8):
        block = values[:, j0:j0 + 8]
        lanes[:, :block.shape[1]] += block
    return ((lanes[:, 0] + lanes[:, 1]) + (lanes[:, 2] + lanes[:, 3])) + (
        (lanes[:, 4] + lanes[:, 5]) + (lanes[:, 6] + lanes[:, 7]))


def _rms_inv(x64, eps):
    return 1.0 / np.sqrt(_lane_sums(x64 * x64) / x64.shape[1] + eps)


def rmsnorm_forward(x, scale, eps, out):
    """out := x scale / sqrt(mean_row(x^2) + eps)"""
    n, c = x.shape
    if n == 0 or c == 0:
        return
    x64 = x.astype(_F64)
    out[...] = (x64 * _rms_inv(x64, eps)[:, None]) * scale.astype(_F64)


def rmsnorm_backward(x, dy, scale, eps, dx, dscale):
    """r = 1 / sqrt(mean_row(x^2) + eps), g = dy scale;  dx := r g - x r^3 sum_row(g x) / c;
    dscale += sum_rows(dy x r)"""
    n, c = x.shape
    if n == 0 or c == 0:
        return
    x64, dy64 = x.astype(_F64), dy.astype(_F64)
    r = _rms_inv(x64, eps)
    if dx is not None:
        g = dy64 * scale.astype(_F64)
        k = (((r * r) * r) * _lane_sums(g * x64)) / c
        dx[...] = r[:, None] * g - x64 * k[:, None]
    # per block of 32 rows in row order, then the blocks in order (the compiled kernel's order)
    total = np.zeros(c)
    for r0 in range(0, n, 32):
        part = np.zeros(c)
        for i in range(r0, min(n, r0 + 32)):
            part += (dy64[i] * x64[i]) * r[i]
        total += part
    dscale[...] = dscale.astype(_F64) + total
