"""The NumPy twins of the recurrent kernels (fastnn/_ext/_recurrent.pyx): the same functions,
signatures and workspace layout (src_c/fnn_rnn.h), written as the textbook loop over time steps.

    SimpleRNN: h_t = act(x_t W + h_{t-1} U + b)
    LSTM:      [i f g o] = [rec act rec rec](x_t W + h_{t-1} U + b), c_t = f c_{t-1} + i g,
               h_t = o act(c_t)
    GRU:       z = rec(xz + rz), r = rec(xr + rr), hh = act(xh + r rh), h_t = z h_{t-1} + (1-z) hh
               with [xz xr xh] = x_t W + b_in and [rz rr rh] = h_{t-1} U + b_rec
    GRU_RB:    (reset_after=False) [xz xr xh] = x_t W + b, z = rec(xz + h_{t-1} U_z), r the same,
               hh = act(xh + (r h_{t-1}) U_h), h_t as the GRU's

Arrays come flat with their dimensions (n, T, d, u); the workspace keeps, time-major, the input
in step order xt (T, n, d), the gates G (T, n, K), the states H (T+1, n, u), the LSTM's cells
C (T+1, n, u), and AUX (T, n, u): act(c_t) for the LSTM, rh for the GRU, r h_{t-1} for GRU_RB.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from fastnn import activations as A

SIMPLE, LSTM, GRU, GRU_RB = 0, 1, 2, 3
_GATES = (1, 4, 3, 3)


def rnn_sizes(cell: int, T: int, d: int, u: int, rec_dropout: bool = False) -> tuple[int, int]:
    """(forward, backward) workspace values per sample (with a recurrent dropout mask: more)"""
    K = _GATES[cell] * u
    simple, lstm, gru, rb = cell == SIMPLE, cell == LSTM, cell == GRU, cell == GRU_RB
    fwd = (T * d + (0 if simple else T * K) + (T + 1) * u + ((T + 1) * u + d if lstm else 0)
           + (0 if simple else T * u) + (K if gru or rb else 0))
    bwd = (0 if lstm else T * K) + (T * K if gru else 0) + T * d + u + (u if lstm or rb else 0)
    return fwd + ((T + 1) * u if rec_dropout else 0), bwd


def _parts(cell: int, n: int, T: int, d: int, u: int, ws: Any,
           rec_dropout: bool = False) -> dict[str, Any]:
    K = _GATES[cell] * u
    lstm = cell == LSTM
    # the LSTM keeps x_t and h_t-1 side by side, as the compiled kernel does (XH, one more row)
    head = [("XH", (T + 1, n, d + u))] if lstm else [("xt", (T, n, d))]
    sizes = head + [("G", (T, n, K) if cell != SIMPLE else (0,)),
                    ("H", (0,) if lstm else (T + 1, n, u)), ("C", (T + 1, n, u) if lstm else (0,)),
                    ("AUX", (T, n, u) if cell != SIMPLE else (0,)),
                    ("S", (n, K) if cell in (GRU, GRU_RB) else (0,))]
    out, offset = {}, 0
    for name, shape in sizes:
        size = int(np.prod(shape))
        out[name] = ws[offset:offset + size].reshape(shape)
        offset += size
    if lstm:
        out["xt"], out["H"] = out["XH"][:T, :, :d], out["XH"][:, :, d:]
    # R: the states the recurrent product reads (masked with a recurrent dropout); the LSTM's
    # in XH, its plain states then at the end (the compiled kernel's layout)
    out["R"] = out["H"]
    if rec_dropout:
        end = ws[offset:offset + (T + 1) * n * u].reshape(T + 1, n, u)
        if lstm:
            out["H"] = end
        else:
            out["R"] = end
    return out


def _act(z: Any, code: int) -> Any:
    if code == A.SIGMOID:
        # exp of -|z| never overflows (the formula of the compiled double kernels)
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)
    if code == A.TANH:
        return np.tanh(z)
    if code == A.RELU:
        return np.maximum(z, 0)
    return z


def _deriv(y: Any, code: int) -> Any:
    """act'(z) written with y = act(z)"""
    if code == A.SIGMOID:
        return y * (1 - y)
    if code == A.TANH:
        return 1 - y * y
    if code == A.RELU:
        return (y > 0).astype(y.dtype)
    return np.ones_like(y)


def _need(name: str, array: Any, want: int) -> None:
    """The compiled kernels' size contract: ``array`` holds exactly ``want`` values."""
    if array is not None and array.size != want:
        raise ValueError(f"rnn: {name} must hold {want} values. Received: {array.size}")


def _check(cell: int, n: int, T: int, d: int, u: int, **arrays: Any) -> None:
    K = _GATES[cell] * u
    sizes = {"x": n * T * d, "kernel": d * K, "rkernel": u * K, "dkernel": d * K,
             "drkernel": u * K, "bias": 2 * K if cell == GRU else K,
             "dbias": 2 * K if cell == GRU else K, "dx": n * T * d}
    for name, array in arrays.items():
        _need(name, array, sizes.get(name, n * u))


def rnn_forward(cell: int, n: int, T: int, d: int, u: int, x: Any, kernel: Any, rkernel: Any,
                bias: Any, h0: Optional[Any], c0: Optional[Any], act: int, rec: int,
                reverse: bool, ws: Any, y: Any, seq: bool, h_last: Optional[Any],
                c_last: Optional[Any], mask: Optional[Any] = None,
                zero_masked: bool = False, in_mask: Optional[Any] = None,
                rec_mask: Optional[Any] = None) -> None:
    """The recurrent layer over all steps; what backward needs stays in ws. ``mask`` (n, T),
    nonzero where a step is taken: a skipped step carries the states over (its sequence output
    is the carried h, or 0 with ``zero_masked``). Dropout: ``in_mask`` (n, d) scales every
    x_t, ``rec_mask`` (n, u) h_{t-1} in its product with U (the GRU's blend keeps h_{t-1})"""
    _check(cell, n, T, d, u, x=x, kernel=kernel, rkernel=rkernel, bias=bias, h0=h0, c0=c0,
           h_last=h_last, c_last=c_last)
    _need("y", y, n * (T if seq else 1) * u)
    _need("mask", mask, n * T)
    _need("in_mask", in_mask, n * d)
    _need("rec_mask", rec_mask, n * u)
    if n == 0:
        return
    taken = _steps_taken(mask, n, T, reverse)
    K = _GATES[cell] * u
    p = _parts(cell, n, T, d, u, ws, rec_mask is not None)
    W, U = kernel.reshape(d, K), rkernel.reshape(u, K)
    xs = x.reshape(n, T, d)
    p["xt"][...] = np.swapaxes(xs[:, ::-1] if reverse else xs, 0, 1)
    if in_mask is not None:
        p["xt"] *= in_mask.reshape(n, d)
    proj = p["xt"].reshape(T * n, d) @ W + bias[:K]
    H, R = p["H"], p["R"]
    rm = None if rec_mask is None else rec_mask.reshape(n, u)
    H[0] = 0 if h0 is None else h0.reshape(n, u)
    if cell == LSTM:
        p["C"][0] = 0 if c0 is None else c0.reshape(n, u)
    for s in range(T):
        zx = proj[s * n:(s + 1) * n]
        if rm is not None:
            R[s] = H[s] * rm
        if cell == SIMPLE:
            H[s + 1] = _act(zx + R[s] @ U, act)
        elif cell == GRU_RB:
            zr = _act(zx[:, :2 * u] + R[s] @ U[:, :2 * u], rec)
            z = zr[:, :u]
            rh = zr[:, u:] * R[s]
            hh = _act(zx[:, 2 * u:] + rh @ U[:, 2 * u:], act)
            p["AUX"][s] = rh
            p["G"][s] = np.concatenate([zr, hh], axis=1)
            H[s + 1] = z * H[s] + (1 - z) * hh
        elif cell == LSTM:
            z = zx + R[s] @ U
            i, f = _act(z[:, :u], rec), _act(z[:, u:2 * u], rec)
            g, o = _act(z[:, 2 * u:3 * u], act), _act(z[:, 3 * u:], rec)
            c = f * p["C"][s] + i * g
            p["C"][s + 1] = c
            a = _act(c, act)
            p["AUX"][s] = a
            H[s + 1] = o * a
            p["G"][s] = np.concatenate([i, f, g, o], axis=1)
        else:
            r_all = R[s] @ U + bias[K:]
            z = _act(zx[:, :u] + r_all[:, :u], rec)
            r = _act(zx[:, u:2 * u] + r_all[:, u:2 * u], rec)
            rh = r_all[:, 2 * u:]
            hh = _act(zx[:, 2 * u:] + r * rh, act)
            p["AUX"][s] = rh
            p["G"][s] = np.concatenate([z, r, hh], axis=1)
            H[s + 1] = z * H[s] + (1 - z) * hh
        if taken is not None:
            H[s + 1] = np.where(taken[s], H[s + 1], H[s])
            if cell == LSTM:
                p["C"][s + 1] = np.where(taken[s], p["C"][s + 1], p["C"][s])
    if seq:
        states = H[1:] if taken is None or not zero_masked else np.where(taken, H[1:], 0)
        y.reshape(n, T, u)[...] = np.swapaxes(states, 0, 1)
    else:
        y.reshape(n, u)[...] = H[T]
    if h_last is not None:
        h_last.reshape(n, u)[...] = H[T]
    if c_last is not None and cell == LSTM:
        c_last.reshape(n, u)[...] = p["C"][T]


def _steps_taken(mask: Optional[Any], n: int, T: int, reverse: bool) -> Optional[Any]:
    """The mask in step order (T, n, 1), True where a step is taken, or None."""
    if mask is None:
        return None
    m = mask.reshape(n, T) != 0
    return np.swapaxes(m[:, ::-1] if reverse else m, 0, 1)[:, :, None]


def rnn_backward(cell: int, n: int, T: int, d: int, u: int, kernel: Any, rkernel: Any, act: int,
                 rec: int, reverse: bool, ws: Any, dy: Any, seq: bool, dh_last: Optional[Any],
                 dc_last: Optional[Any], bws: Any, ut: Any, dkernel: Any, drkernel: Any,
                 dbias: Any, dx: Optional[Any], dh0: Optional[Any], dc0: Optional[Any],
                 mask: Optional[Any] = None, zero_masked: bool = False,
                 in_mask: Optional[Any] = None, rec_mask: Optional[Any] = None) -> None:
    """Backpropagation through time from the forward's workspace (the LSTM's gates in it are
    replaced by their gradients, as the compiled kernel does); a step the mask skips passes dh
    and dc on unchanged and gets zero gate gradients. The dropout masks: the forward's"""
    _check(cell, n, T, d, u, kernel=kernel, rkernel=rkernel, dkernel=dkernel,
           drkernel=drkernel, dbias=dbias, dx=dx, dh0=dh0, dc0=dc0, dh_last=dh_last,
           dc_last=dc_last)
    _need("dy", dy, n * (T if seq else 1) * u)
    _need("mask", mask, n * T)
    _need("in_mask", in_mask, n * d)
    _need("rec_mask", rec_mask, n * u)
    K = _GATES[cell] * u
    if n == 0:
        dkernel[...] = 0
        drkernel[...] = 0
        dbias[...] = 0
        return
    p = _parts(cell, n, T, d, u, ws, rec_mask is not None)
    rm = 1 if rec_mask is None else rec_mask.reshape(n, u)
    W, U = kernel.reshape(d, K), rkernel.reshape(u, K)
    G, H = p["G"], p["H"]
    dZ = G if cell == LSTM else np.empty((T, n, K), kernel.dtype)
    dZr = np.empty((T, n, K), kernel.dtype) if cell == GRU else dZ
    dh = np.zeros((n, u), kernel.dtype) if dh_last is None else dh_last.reshape(n, u).copy()
    dc = np.zeros((n, u), kernel.dtype) if dc_last is None else dc_last.reshape(n, u).copy()
    dys = dy.reshape(n, T, u) if seq else dy.reshape(n, u)
    taken = _steps_taken(mask, n, T, reverse)
    for s in range(T - 1, -1, -1):
        if seq:
            dh += dys[:, s] if taken is None or not zero_masked else \
                np.where(taken[s], dys[:, s], 0)
        elif s == T - 1:
            dh += dys
        dh_in, dc_in = dh, dc
        if cell == SIMPLE:
            dZ[s] = dh * _deriv(H[s + 1], act)
            dh = (dZ[s] @ U.T) * rm
        elif cell == LSTM:
            i, f, g, o = (G[s][:, k * u:(k + 1) * u].copy() for k in range(4))
            a = p["AUX"][s]
            c = dc + dh * o * _deriv(a, act)
            dZ[s] = np.concatenate([c * g * _deriv(i, rec), c * p["C"][s] * _deriv(f, rec),
                                    c * i * _deriv(g, act), dh * a * _deriv(o, rec)], axis=1)
            dc = c * f
            dh = (dZ[s] @ U.T) * rm
        elif cell == GRU_RB:
            z, r, hh = (G[s][:, k * u:(k + 1) * u] for k in range(3))
            dzp = dh * (H[s] - hh) * _deriv(z, rec)
            dhp = dh * (1 - z) * _deriv(hh, act)
            drh = dhp @ U[:, 2 * u:].T                   # dL/d(r h_{t-1})
            drp = drh * p["R"][s] * _deriv(r, rec)
            dZ[s] = np.concatenate([dzp, drp, dhp], axis=1)
            dh = dh * z + (drh * r + dZ[s][:, :2 * u] @ U[:, :2 * u].T) * rm
        else:
            z, r, hh = (G[s][:, k * u:(k + 1) * u] for k in range(3))
            rh = p["AUX"][s]
            dzp = dh * (H[s] - hh) * _deriv(z, rec)
            dhp = dh * (1 - z) * _deriv(hh, act)
            drp = dhp * rh * _deriv(r, rec)
            dZ[s] = np.concatenate([dzp, drp, dhp], axis=1)
            dZr[s] = np.concatenate([dzp, drp, dhp * r], axis=1)
            dh = dh * z + (dZr[s] @ U.T) * rm
        if taken is not None:
            dZ[s] = np.where(taken[s], dZ[s], 0)
            dZr[s] = np.where(taken[s], dZr[s], 0)
            dh = np.where(taken[s], dh, dh_in)
            dc = np.where(taken[s], dc, dc_in)
    xt = p["xt"].reshape(T * n, d)
    dkernel.reshape(d, K)[...] = xt.T @ dZ.reshape(T * n, K)
    if cell == GRU_RB:      # U_zr met h_{t-1}, U_h met r h_{t-1}
        dZ2 = dZ.reshape(T * n, K)
        drkernel.reshape(u, K)[:, :2 * u] = p["R"][:T].reshape(T * n, u).T @ dZ2[:, :2 * u]
        drkernel.reshape(u, K)[:, 2 * u:] = p["AUX"].reshape(T * n, u).T @ dZ2[:, 2 * u:]
    else:
        drkernel.reshape(u, K)[...] = p["R"][:T].reshape(T * n, u).T @ dZr.reshape(T * n, K)
    dbias[:K] = dZ.reshape(T * n, K).sum(axis=0, dtype=np.float64)
    if cell == GRU:
        dbias[K:] = dZr.reshape(T * n, K).sum(axis=0, dtype=np.float64)
    if dx is not None:
        dxt = (dZ.reshape(T * n, K) @ W.T).reshape(T, n, d)
        steps = np.swapaxes(dxt, 0, 1)
        if in_mask is not None:
            steps = steps * in_mask.reshape(n, 1, d)
        dx.reshape(n, T, d)[...] = steps[:, ::-1] if reverse else steps
    if dh0 is not None:
        dh0.reshape(n, u)[...] = dh
    if dc0 is not None:
        dc0.reshape(n, u)[...] = dc if cell == LSTM else 0
