"""NumPy twins of the element-wise layer kernels (``fastnn/_ext/_layer_ops.pyx``): Dropout's
counter-based mask and products, and the merge layers' sum and concatenation.

The mask uses the compiled kernel's integer arithmetic (SplitMix64 on wrapping uint64), so both
backends draw the same mask, bit for bit, from the same (seed, counter). The Gaussian noise
takes the same uniforms through the same Box-Muller arithmetic, with libm's log and cos called
per element through Python's math module (NumPy's own log and cos may be vectorised
approximations that differ in the last bit), so its bits match the compiled kernel's too.
"""

import math

import numpy as np

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)


def _mix(z):
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def dropout_mask(seed, counter, rate, mask):
    """mask_k := (u_k >= rate) / (1 - rate),  u_k uniform in [0, 1) from (seed, counter, k)"""
    n = mask.shape[0]
    with np.errstate(over="ignore"):
        key = _mix(np.array([seed], dtype=_U64) + _GOLDEN)
        base = np.array([counter], dtype=_U64) * _U64(n)
        k = np.arange(1, n + 1, dtype=_U64)
        bits = _mix(key + (base + k) * _GOLDEN) >> _U64(11)
    u = bits.astype(np.float64) * (1.0 / 9007199254740992.0)
    mask[...] = np.where(u >= rate, mask.dtype.type(1.0 / (1.0 - rate)), 0)


def _uniform_bits(seed, counter, n, per, offset):
    """The top 53 bits of stream positions counter * per * n + per * k + offset + 1."""
    with np.errstate(over="ignore"):
        key = _mix(np.array([seed], dtype=_U64) + _GOLDEN)
        base = np.array([counter], dtype=_U64) * _U64(per * n)
        k = np.arange(n, dtype=_U64) * _U64(per) + _U64(offset + 1)
        return _mix(key + (base + k) * _GOLDEN) >> _U64(11)


_LOG = np.frompyfunc(math.log, 1, 1)
_COS = np.frompyfunc(math.cos, 1, 1)


def gaussian_noise(seed, counter, mean, stddev, out):
    """out_k := mean + stddev * z_k,  z_k standard normal (Box-Muller) from (seed, counter, k)"""
    n = out.shape[0]
    b1 = _uniform_bits(seed, counter, n, 2, 0)
    b2 = _uniform_bits(seed, counter, n, 2, 1)
    u1 = (_U64(9007199254740992) - b1).astype(np.float64) * (1.0 / 9007199254740992.0)
    u2 = b2.astype(np.float64) * (1.0 / 9007199254740992.0)
    r = np.sqrt(-2.0 * _LOG(u1).astype(np.float64))
    z = r * _COS(6.283185307179586 * u2).astype(np.float64)
    out[...] = float(mean) + float(stddev) * z
    return out


def scale_channels(x, m, out):
    """out[b, s, c] := x[b, s, c] * m[b, c]"""
    n, S, C = x.shape
    if m.shape != (n, C) or out.shape != (n, S, C):
        raise ValueError(f"scale_channels: x and out must be (n, S, C) alike and m (n, C). "
                         f"Received: x {tuple(x.shape)}, m {tuple(m.shape)}, out "
                         f"{tuple(out.shape)}")
    np.multiply(x, m[:, None, :], out=out)
    return out


def permute_axes(x, perm, y):
    """y := transpose(x, perm)"""
    perm = tuple(perm)
    shape = tuple(x.shape[p] for p in perm) if sorted(perm) == list(range(x.ndim)) else None
    if (shape is None or tuple(y.shape) != shape or y.dtype != x.dtype
            or not x.flags.c_contiguous or not y.flags.c_contiguous):
        raise ValueError(f"permute_axes: y must be x transposed by perm, both C-contiguous. "
                         f"Received: x {tuple(x.shape)}, perm {perm}, y {tuple(y.shape)}")
    y[...] = np.transpose(x, perm)
    return y


def multiply(a, b, out):
    """out := a * b"""
    np.multiply(a, b, out=out)


def dropout_forward(x, mask, out):
    """out := x * mask"""
    np.multiply(x, mask, out=out)


def dropout_backward(dy, mask, dx):
    """dx := dy * mask"""
    np.multiply(dy, mask, out=dx)


def add_forward(inputs, out):
    """out := inputs[0] + inputs[1] + ... (in list order)"""
    np.add(inputs[0], inputs[1], out=out)
    for a in inputs[2:]:
        np.add(out, a, out=out)


def concat_forward(inputs, out):
    """out := [inputs[0] | inputs[1] | ...] along the columns"""
    np.concatenate(inputs, axis=1, out=out)


def concat_backward(dy, dxs):
    """dxs[i] := the columns of dy that inputs[i] gave"""
    offset = 0
    for part in dxs:
        part[...] = dy[:, offset:offset + part.shape[1]]
        offset += part.shape[1]


def add_row_vector(x, p, out):
    """out[r, :] := x[r, :] + p"""
    np.add(x, p, out=out)


def sum_rows_into(dy, out):
    """out += sum_r dy[r, :], each column summed in row order (as the compiled kernel)"""
    acc = out.copy()
    for row in dy:
        acc += row
    out[...] = acc


def _check_upsample(small, big, sh, sw, name):
    n, h, w, c = small
    if sh < 1 or sw < 1 or tuple(big) != (n, h * sh, w * sw, c):
        raise ValueError(f"{name}: the large array must be (n, h * {sh}, w * {sw}, c) for the "
                         f"small one (n, h, w, c). Received: {tuple(small)} and {tuple(big)}")


def upsample2d_forward(x, sh, sw, y):
    """y[b, i*sh + a, j*sw + q, :] := x[b, i, j, :] (nearest-neighbour upsampling)"""
    _check_upsample(x.shape, y.shape, sh, sw, "upsample2d_forward")
    n, h, w, c = x.shape
    y.reshape(n, h, sh, w, sw, c)[...] = x[:, :, None, :, None, :]
    return y


def upsample2d_backward(dy, sh, sw, dx):
    """dx[b, i, j, :] := sum over a < sh, then q < sw, of dy[b, i*sh + a, j*sw + q, :]"""
    _check_upsample(dx.shape, dy.shape, sh, sw, "upsample2d_backward")
    n, h, w, c = dx.shape
    blocks = dy.reshape(n, h, sh, w, sw, c)
    acc = np.zeros_like(dx)
    for a in range(sh):
        for q in range(sw):
            acc += blocks[:, :, a, :, q, :]
    dx[...] = acc
    return dx


def affine_rows(x, shift, scale, offset, out):
    """out[r, j] := (x[r, j] - shift[j]) * scale[j] + offset[j] (in that order, as the compiled
    kernel)"""
    m = x.shape[1]
    if out.shape != x.shape or shift.shape != (m,) or scale.shape != (m,) or offset.shape != (m,):
        raise ValueError(f"affine_rows: x and out must be (rows, m) alike and shift, scale and "
                         f"offset (m,). Received: x {x.shape}, out {out.shape}, shift "
                         f"{shift.shape}, scale {scale.shape}, offset {offset.shape}")
    np.subtract(x, shift, out=out)
    np.multiply(out, scale, out=out)
    np.add(out, offset, out=out)
    return out


def copy_window(src, src_top, src_left, dst, dst_top, dst_left, h, w, zero_rest):
    """dst[b, dst_top + i, dst_left + j, :] := src[b, src_top + i, src_left + j, :] for i < h,
    j < w; with zero_rest, every other element of dst := 0"""
    n, H, W, c = dst.shape
    if (src.shape[0] != n or src.shape[3] != c or min(h, w, src_top, src_left, dst_top,
                                                       dst_left) < 0
            or src_top + h > src.shape[1] or src_left + w > src.shape[2] or dst_top + h > H
            or dst_left + w > W):
        raise ValueError(f"copy_window: a {h} x {w} window at ({src_top}, {src_left}) of src "
                         f"{tuple(src.shape)} does not fit at ({dst_top}, {dst_left}) of dst "
                         f"{tuple(dst.shape)}")
    if zero_rest:
        dst[...] = 0
    dst[:, dst_top:dst_top + h, dst_left:dst_left + w] = \
        src[:, src_top:src_top + h, src_left:src_left + w]
    return dst


def binary_op(a, b, op, out):
    """out := a * b (op 0), max(a, b) (1: a where equal), min(a, b) (2: a where equal),
    a - b (3), a + b (4)"""
    if a.shape != out.shape or b.shape != out.shape or not 0 <= op <= 4:
        raise ValueError(f"binary_op: a, b and out must have one length and op be 0 to 4. "
                         f"Received: {a.shape}, {b.shape}, {out.shape}, op={op}")
    if op == 0:
        np.multiply(a, b, out=out)
    elif op in (1, 2):
        out[...] = np.where(b > a if op == 1 else b < a, b, a)
    elif op == 3:
        np.subtract(a, b, out=out)
    else:
        np.add(a, b, out=out)
    return out


def divide_scalar(a, d, out):
    """out := a / d"""
    if a.shape != out.shape:
        raise ValueError(f"divide_scalar: a and out must have one length. Received: "
                         f"{a.shape}, {out.shape}")
    np.divide(a, out.dtype.type(d), out=out)
    return out


def select_update(best, index, x, i, largest):
    """Where x beats best (>, or < when not largest): best := x, index := i"""
    if index.shape != best.shape or x.shape != best.shape:
        raise ValueError(f"select_update: best, index and x must have one length. Received: "
                         f"{best.shape}, {index.shape}, {x.shape}")
    beats = x > best if largest else x < best
    best[beats] = x[beats]
    index[beats] = i


def select_grad(dy, index, i, dx):
    """dx := dy where index == i, else 0"""
    if dy.shape != dx.shape or index.shape != dx.shape:
        raise ValueError(f"select_grad: dy, index and dx must have one length. Received: "
                         f"{dy.shape}, {index.shape}, {dx.shape}")
    dx[...] = np.where(index == i, dy, 0)
    return dx


def masking_forward(x, value, y, real):
    """real[i, t] := any_j x[i, t, j] != value;  y[i, t] := x[i, t] if real[i, t] else 0"""
    keep = np.not_equal(x, x.dtype.type(value)).any(axis=-1)
    real[...] = keep
    y[...] = 0
    np.copyto(y, x, where=keep[..., None])


def masking_backward(dy, real, dx):
    """dx[i, t] := dy[i, t] if real[i, t] else 0"""
    dx[...] = 0
    np.copyto(dx, dy, where=real.astype(bool)[..., None])


_COORD_LIMIT = 2.0 ** 40


def _extend(k, size, mode):
    """The pixel index each extended index of ``k`` reads, -1 for the constant fill (see
    fastnn/_ext/_layer_ops.pyx: 0 constant, 1 nearest, 2 wrap, 3 reflect, 4 mirror)."""
    inside = (k >= 0) & (k < size)
    if mode == 0:
        out = np.full_like(k, -1)
    elif mode == 1:
        out = np.clip(k, 0, size - 1)
    elif mode == 2:
        out = np.mod(k, size)
    elif mode == 3:
        m = np.mod(k, 2 * size)
        out = np.where(m >= size, 2 * size - 1 - m, m)
    elif size == 1:
        out = np.zeros_like(k)
    else:
        m = np.mod(k, 2 * size - 2)
        out = np.where(m >= size, 2 * size - 2 - m, m)
    return np.where(inside, k, out)


def _affine_taps(t, h, w, bilinear, mode):
    """Per output pixel (h, w) of an affine map: see _taps."""
    jj, ii = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    return _taps(t[0] * jj + t[1] * ii + t[2], t[3] * jj + t[4] * ii + t[5], h, w, bilinear,
                 mode)


def _taps(xs, ys, h, w, bilinear, mode):
    """For source points (columns ``xs``, rows ``ys``) of an h x w image: the (row, column)
    pixels read and their weights, in the kernel's order (the nearest pixel; or the corners
    00, 01, 10, 11)."""
    xs = np.clip(np.nan_to_num(xs, nan=-_COORD_LIMIT), -_COORD_LIMIT, _COORD_LIMIT)
    ys = np.clip(np.nan_to_num(ys, nan=-_COORD_LIMIT), -_COORD_LIMIT, _COORD_LIMIT)
    if not bilinear:
        xa = _extend(np.floor(xs + 0.5).astype(np.int64), w, mode)
        ya = _extend(np.floor(ys + 0.5).astype(np.int64), h, mode)
        return [(ya, xa, np.ones_like(xs))]
    x0, y0 = np.floor(xs), np.floor(ys)
    fx, fy = xs - x0, ys - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    xa, xb = _extend(x0, w, mode), _extend(x0 + 1, w, mode)
    ya, yb = _extend(y0, h, mode), _extend(y0 + 1, h, mode)
    return [(ya, xa, (1.0 - fy) * (1.0 - fx)), (ya, xb, (1.0 - fy) * fx),
            (yb, xa, fy * (1.0 - fx)), (yb, xb, fy * fx)]


def _gather(image, taps, bilinear, fill):
    """One output image from its taps (see _taps)."""
    acc = None
    for rows, cols, weight in taps:
        valid = (rows >= 0) & (cols >= 0)
        vals = np.where(valid[..., None], image[np.maximum(rows, 0), np.maximum(cols, 0)]
                        .astype(np.float64), fill)
        if not bilinear:
            return vals
        term = np.where(weight[..., None] != 0, weight[..., None] * vals, 0.0)
        acc = term if acc is None else acc + term
    return acc


def _scatter(g, taps, h, w):
    """The adjoint of _gather: g (ho, wo, c) added back into an h x w x c image in the
    kernel's order (pixel by pixel, its taps in turn, channels in turn)."""
    c = g.shape[-1]
    targets, values = [], []
    for rows, cols, weight in taps:
        keep = ((rows >= 0) & (cols >= 0) & (weight != 0))[..., None]
        base = (np.maximum(rows, 0) * w + np.maximum(cols, 0))[..., None] * c
        targets.append(np.where(keep, base + np.arange(c), -1))
        values.append(weight[..., None] * g.astype(np.float64))
    order = np.stack(targets, axis=2).reshape(-1)
    vals = np.stack(values, axis=2).reshape(-1)
    flat = np.zeros(h * w * c)
    np.add.at(flat, order[order >= 0], vals[order >= 0])
    return flat.reshape(h, w, c)


def affine_resample(x, transforms, bilinear, fill_mode, fill_value, y):
    """y[s, i, j] := x_s extended, read at (b0 j + b1 i + b2, a0 j + a1 i + a2)"""
    n, h, w, c = x.shape
    fill = float(x.dtype.type(fill_value))
    for s in range(n):
        y[s] = _gather(x[s], _affine_taps(transforms[s], h, w, bilinear, fill_mode), bilinear,
                       fill)


def affine_resample_backward(dy, transforms, bilinear, fill_mode, dx):
    """dx := the adjoint of affine_resample applied to dy (the constant fill takes none)"""
    n, h, w, c = dy.shape
    for s in range(n):
        dx[s] = _scatter(dy[s], _affine_taps(transforms[s], h, w, bilinear, fill_mode), h, w)


def _grid_taps(rows, cols, h, w, bilinear, mode):
    xs, ys = np.meshgrid(np.asarray(cols, np.float64), np.asarray(rows, np.float64))
    return _taps(xs, ys, h, w, bilinear, mode)


def resample_grid(x, rows, cols, bilinear, fill_mode, fill_value, y):
    """y[s, i, j] := x_s extended, read at (rows[i], cols[j])"""
    n, h, w, c = x.shape
    fill = float(x.dtype.type(fill_value))
    taps = _grid_taps(rows, cols, h, w, bilinear, fill_mode)
    for s in range(n):
        y[s] = _gather(x[s], taps, bilinear, fill)


def resample_grid_backward(dy, rows, cols, bilinear, fill_mode, dx):
    """dx := the adjoint of resample_grid applied to dy (the constant fill takes none)"""
    n, h, w, c = dx.shape
    taps = _grid_taps(rows, cols, h, w, bilinear, fill_mode)
    for s in range(n):
        dx[s] = _scatter(dy[s], taps, h, w)


def _axis_taps(points, size, bilinear, mode):
    """One axis of a separable grid: for source points along an axis of ``size`` pixels, the
    two pixels read (i0, i1; -1 the constant fill) and their weights (w0, w1), as _taps reads
    them (nearest: the pixel floor(p + 0.5), weight 1, and none). A tap of weight 0 reads
    nothing: its index is the other tap's."""
    p = np.clip(np.nan_to_num(np.asarray(points, np.float64), nan=-_COORD_LIMIT),
                -_COORD_LIMIT, _COORD_LIMIT)
    if not bilinear:
        i0 = _extend(np.floor(p + 0.5).astype(np.int64), size, mode)
        return i0, i0.copy(), np.ones_like(p), np.zeros_like(p)
    f = np.floor(p)
    frac = p - f
    f = f.astype(np.int64)
    i0, i1 = _extend(f, size, mode), _extend(f + 1, size, mode)
    w0, w1 = 1.0 - frac, frac
    i0, i1 = np.where(w0 == 0, i1, i0), np.where(w1 == 0, i0, i1)
    return i0, i1, w0, w1


def grid_tables(rows, cols, h, w, bilinear, mode):
    """The separable form of the grid (rows, cols) over h x w images (see resize_separable):
    (row_index (2, ho), row_weight (2, ho), col_index (2, wo), col_weight (2, wo)), -1 the
    fill."""
    r0, r1, ra, rb = _axis_taps(rows, h, bilinear, mode)
    c0, c1, ca, cb = _axis_taps(cols, w, bilinear, mode)
    return (np.ascontiguousarray(np.stack([r0, r1])), np.ascontiguousarray(np.stack([ra, rb])),
            np.ascontiguousarray(np.stack([c0, c1])), np.ascontiguousarray(np.stack([ca, cb])))


def _per_value(col_index, col_weight, c):
    """The column taps per value of a row (pixel * c + channel; -1 the fill)."""
    ch = np.arange(c, dtype=np.int64)
    index = np.where(col_index[..., None] < 0, -1, col_index[..., None] * c + ch)
    return index.reshape(2, -1), np.repeat(col_weight, c, axis=1)


def _blend(a, va, b, vb):
    """a va + b vb, a product of weight 0 left out (an inf or nan it would read stays out)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(a != 0, np.where(b != 0, a * va + b * vb, a * va),
                        np.where(b != 0, b * vb, 0.0))


def resize_separable(x, row_index, row_weight, col_index, col_weight, bilinear, fill_value, y):
    """y[s, i] := the rows of x_s read by row_index[:, i] (a fill row for -1), each resampled
    along itself by the column taps (col_index: input columns, -1 the fill), then blended by
    row_weight[:, i]; in double, cast once (resample_grid's values)."""
    n, h, w, c = x.shape
    col_index, col_weight = _per_value(col_index, col_weight, c)
    ho, m = row_index.shape[1], col_index.shape[1]
    fill = float(x.dtype.type(fill_value))
    if n == 0 or ho == 0 or m == 0:
        return
    # a fill value after each row and a fill row after the rows: index -1 reads them
    src = np.full((n, h + 1, w * c + 1), fill)
    src[:, :h, :w * c] = x.reshape(n, h, w * c)
    if not bilinear:
        y[...] = src[:, row_index[0]][:, :, col_index[0]].reshape(y.shape)
        return
    cw = col_weight[:, None, None, :]
    across = _blend(cw[0], src[..., col_index[0]], cw[1], src[..., col_index[1]])
    rw = row_weight[:, None, :, None]
    y[...] = _blend(rw[0], across[:, row_index[0]], rw[1], across[:, row_index[1]]) \
        .reshape(y.shape)


def _ordered_sum(size, index, weight, values):
    """out[k] := sum of weight[t] values[t] over the taps t with index[t] == k, added in the
    order of t (skipping weight 0 and index -1); values (taps, ...) in double."""
    keep = (weight != 0) & (index >= 0)
    out = np.zeros((size,) + values.shape[1:])
    products = weight[keep].reshape((-1,) + (1,) * (values.ndim - 1)) * values[keep]
    np.add.at(out, index[keep], products)
    return out


def resize_separable_backward(dy, row_index, row_weight, col_index, col_weight, dx):
    """dx := the adjoint of resize_separable applied to dy (the fill takes none): per output
    row, the column taps' adjoint (value by value, tap 0 then tap 1), then added to the input
    rows it read (row by row, tap 0 then tap 1), in double, cast once"""
    n, h, w, c = dx.shape
    col_index, col_weight = _per_value(col_index, col_weight, c)
    ho, m = row_index.shape[1], col_index.shape[1]
    if n == 0 or h == 0 or w == 0 or c == 0:
        dx[...] = 0
        return
    g = dy.reshape(n * ho, m).astype(np.float64).T                          # (m, n ho)
    along = _ordered_sum(w * c, col_index.T.reshape(-1), col_weight.T.reshape(-1),
                         np.repeat(g, 2, axis=0))                             # (w c, n ho)
    along = along.T.reshape(n, ho, w * c).transpose(1, 0, 2)                  # (ho, n, w c)
    acc = _ordered_sum(h, row_index.T.reshape(-1), row_weight.T.reshape(-1),
                       np.repeat(along, 2, axis=0))                           # (h, n, w c)
    dx[...] = acc.transpose(1, 0, 2).reshape(dx.shape)


def prelu_forward(x, alpha, index, y):
    """y := x where x > 0, else alpha[index[j]] * x;  x, y (n, m), alpha (A,), index (m,)"""
    a = alpha[index]
    y[...] = np.where(x > 0, x, a * x)


def prelu_backward(x, dy, alpha, index, dx, dalpha):
    """dx := dy where x > 0, else alpha[index[j]] * dy (skipped when dx is None);
    dalpha[a] += sum over rows and the j with index[j] == a of dy * x where x is not > 0 (a NaN
    x makes NaN, as in PyTorch; in double: each column over the rows in order, then the columns in order)"""
    if dx is not None:
        dx[...] = np.where(x > 0, dy, alpha[index] * dy)
    if x.shape[0] == 0 or x.shape[1] == 0:
        return
    part = np.where(x > 0, 0.0, dy.astype(np.float64) * x).sum(axis=0)
    fold = np.zeros(alpha.shape[0])
    np.add.at(fold, index, part)
    dalpha[...] = dalpha.astype(np.float64) + fold
