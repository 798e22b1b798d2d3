# Recurrent kernels of the fast backend: SimpleRNN, LSTM and GRU forward and backpropagation
# through time, each one call (no Python per time step), over src_c/fnn_rnn.c (the input
# projection of all steps and the weight gradients of all steps as single GEMMs; one GEMM per
# step for the recurrent product; see src_c/fnn_rnn.h for the equations and the workspace).
#
# Arrays are passed flat (C-contiguous, one axis) with their dimensions; every size the C code
# relies on is checked here against the dimensions, so no call reads or writes outside the
# arrays it is given.

from cython cimport floating

import numpy as np

from fastnn._ext._parallel cimport fnn_ftz_enter, fnn_ftz_leave
from fastnn._ext.gemm cimport (fnn_gemm_packed_b_size, fnn_sgemm_pack_b, fnn_dgemm_pack_b,
                               fnn_sgemm_bp, fnn_dgemm_bp)
from fastnn._ext.rnn cimport (fnn_rnn_geom, fnn_rnn_sizes, fnn_rnn_forward_f32,
                              fnn_rnn_forward_f64, fnn_rnn_backward_f32, fnn_rnn_backward_f64)

# the cells' codes and gates per unit; the activations the gates take (fastnn.activations codes)
CELLS = {"simple": 0, "lstm": 1, "gru": 2, "gru_reset_before": 3}
cdef tuple GATES = (1, 4, 3, 3)
cdef frozenset ACTIVATIONS = frozenset((0, 2, 3, 4))      # linear, sigmoid, tanh, relu


def rnn_sizes(int cell, Py_ssize_t T, Py_ssize_t d, Py_ssize_t u, bint rec_dropout=False):
    """(forward, backward) workspace values per sample (with a recurrent dropout mask: more)"""
    cdef Py_ssize_t fwd, bwd
    _check_dims(cell, 0, T, d, u)
    fnn_rnn_sizes(cell, T, d, u, &fwd, &bwd)
    return fwd + (_REC_DROP_EXTRA(T, u) if rec_dropout else 0), bwd


cdef inline Py_ssize_t _REC_DROP_EXTRA(Py_ssize_t T, Py_ssize_t u):
    return (T + 1) * u      # FNN_RNN_REC_DROP_EXTRA (src_c/fnn_rnn.h)


cdef _set_dropout(fnn_rnn_geom *g, const floating[::1] in_mask, const floating[::1] rec_mask):
    """Keras' dropout masks: (n, d) on the inputs, (n, u) on h_{t-1} (src_c/fnn_rnn.h)"""
    g.in_mask, g.rec_mask = NULL, NULL
    if in_mask is not None:
        _need("in_mask", in_mask.shape[0], g.n * g.d)
        if g.n:
            g.in_mask = &in_mask[0]
    if rec_mask is not None:
        _need("rec_mask", rec_mask.shape[0], g.n * g.u)
        if g.n:
            g.rec_mask = &rec_mask[0]


cdef _check_dims(int cell, Py_ssize_t n, Py_ssize_t T, Py_ssize_t d, Py_ssize_t u):
    if cell < 0 or cell > 3:
        raise ValueError(f"rnn: unknown cell code {cell}")
    if n < 0 or T < 1 or d < 1 or u < 1:
        raise ValueError(f"rnn: need n >= 0, steps >= 1, features >= 1 and units >= 1. "
                         f"Received: n={n}, steps={T}, features={d}, units={u}")
    # every offset the C code forms is below 2**62 (Python integers: no overflow here)
    if max(n, T, d, u) >= 2**31 or ((<object>n + 1) * (<object>T + 1) * (<object>d + 8 * <object>u + 8)
                                    * 8 * <object>u >= 2**62):
        raise ValueError(f"rnn: sizes too large. Received: n={n}, steps={T}, features={d}, "
                         f"units={u}")


cdef fnn_rnn_geom _geometry(int cell, Py_ssize_t n, Py_ssize_t T, Py_ssize_t d, Py_ssize_t u,
                            int act, int rec, bint reverse, bint seq) except *:
    cdef fnn_rnn_geom g
    _check_dims(cell, n, T, d, u)
    if act not in ACTIVATIONS or rec not in ACTIVATIONS:
        raise ValueError(f"rnn: activations must be linear, sigmoid, tanh or relu codes. "
                         f"Received: activation={act}, recurrent_activation={rec}")
    g.cell, g.n, g.T, g.d, g.u = cell, n, T, d, u
    g.act, g.rec, g.reverse, g.seq = act, rec, reverse, seq
    g.mask, g.zero_masked = NULL, 0
    g.in_mask, g.rec_mask = NULL, NULL
    return g


cdef _set_mask(fnn_rnn_geom *g, const unsigned char[::1] mask, bint zero_masked):
    """Keras' step mask (n, T), nonzero where a step is taken (src_c/fnn_rnn.h)"""
    g.mask, g.zero_masked = NULL, zero_masked
    if mask is not None:
        _need("mask", mask.shape[0], g.n * g.T)
        if g.n:
            g.mask = &mask[0]


cdef _need(str name, Py_ssize_t have, Py_ssize_t want):
    if have != want:
        raise ValueError(f"rnn: {name} must hold {want} values. Received: {have}")


cdef const floating *_opt(str name, const floating[::1] a, Py_ssize_t want) except? NULL:
    if a is None:
        return NULL
    _need(name, a.shape[0], want)
    return &a[0] if want else NULL


def rnn_forward(int cell, Py_ssize_t n, Py_ssize_t T, Py_ssize_t d, Py_ssize_t u,
                const floating[::1] x,        # IN  (n, T, d)
                const floating[::1] kernel,   # IN  (d, K)
                const floating[::1] rkernel,  # IN  (u, K)
                const floating[::1] bias,     # IN  (K,), GRU (2K,)
                const floating[::1] h0,       # IN  (n, u) or None (zeros)
                const floating[::1] c0,       # IN  (n, u) or None (LSTM; zeros)
                int act, int rec, bint reverse,
                floating[::1] ws,             # OUT workspace (n * rnn_sizes(...)[0])
                floating[::1] y,              # OUT (n, T, u) with seq, else (n, u)
                bint seq,
                floating[::1] h_last,         # OUT (n, u) or None
                floating[::1] c_last,         # OUT (n, u) or None (LSTM)
                const unsigned char[::1] mask=None,  # IN (n, T) steps taken (nonzero) or None
                bint zero_masked=False,
                const floating[::1] in_mask=None,    # IN (n, d) dropout's, or None
                const floating[::1] rec_mask=None):  # IN (n, u) recurrent dropout's, or None
    """The recurrent layer over all steps (src_c/fnn_rnn.h); what backward needs stays in ws"""
    cdef fnn_rnn_geom g = _geometry(cell, n, T, d, u, act, rec, reverse, seq)
    _set_mask(&g, mask, zero_masked)
    _set_dropout(&g, in_mask, rec_mask)
    cdef Py_ssize_t K = GATES[cell] * u, fwd, bwd
    cdef const floating *h0p
    cdef const floating *c0p
    cdef floating *hl = NULL
    cdef floating *cl = NULL
    cdef int ok
    fnn_rnn_sizes(cell, T, d, u, &fwd, &bwd)
    if g.rec_mask != NULL:
        fwd += _REC_DROP_EXTRA(T, u)
    _need("x", x.shape[0], n * T * d)
    _need("kernel", kernel.shape[0], d * K)
    _need("recurrent kernel", rkernel.shape[0], u * K)
    _need("bias", bias.shape[0], 2 * K if cell == 2 else K)
    _need("y", y.shape[0], n * (T if seq else 1) * u)
    if ws.shape[0] < n * fwd:
        raise ValueError(f"rnn: the workspace must hold {n * fwd} values. "
                         f"Received: {ws.shape[0]}")
    h0p = _opt("h0", h0, n * u)
    c0p = _opt("c0", c0, n * u)
    if h_last is not None:
        _need("h_last", h_last.shape[0], n * u)
        if n:
            hl = &h_last[0]
    if c_last is not None:
        _need("c_last", c_last.shape[0], n * u)
        if n:
            cl = &c_last[0]
    if n == 0:
        return
    with nogil:
        if floating is float:
            ok = fnn_rnn_forward_f32(&g, &x[0], &kernel[0], &rkernel[0], &bias[0], h0p, c0p,
                                     &ws[0], &y[0], hl, cl)
        else:
            ok = fnn_rnn_forward_f64(&g, &x[0], &kernel[0], &rkernel[0], &bias[0], h0p, c0p,
                                     &ws[0], &y[0], hl, cl)
    if not ok:
        raise MemoryError("rnn_forward: out of memory")


def rnn_backward(int cell, Py_ssize_t n, Py_ssize_t T, Py_ssize_t d, Py_ssize_t u,
                 const floating[::1] kernel,   # IN  (d, K)
                 const floating[::1] rkernel,  # IN  (u, K)
                 int act, int rec, bint reverse,
                 floating[::1] ws,             # IN  the forward's workspace; OUT: the LSTM's
                                               #     gates replaced by their gradients
                 const floating[::1] dy,       # IN  (n, T, u) with seq, else (n, u)
                 bint seq,
                 const floating[::1] dh_last,  # IN  (n, u) or None
                 const floating[::1] dc_last,  # IN  (n, u) or None (LSTM)
                 floating[::1] bws,            # OUT scratch (n * rnn_sizes(...)[1])
                 floating[::1] ut,             # OUT scratch (K * u)
                 floating[::1] dkernel,        # OUT (d, K)
                 floating[::1] drkernel,       # OUT (u, K)
                 floating[::1] dbias,          # OUT (K,), GRU (2K,)
                 floating[::1] dx,             # OUT (n, T, d) or None
                 floating[::1] dh0,            # OUT (n, u) or None
                 floating[::1] dc0,            # OUT (n, u) or None
                 const unsigned char[::1] mask=None,  # IN the forward's mask (n, T) or None
                 bint zero_masked=False,
                 const floating[::1] in_mask=None,    # IN the forward's (n, d) or None
                 const floating[::1] rec_mask=None):  # IN the forward's (n, u) or None
    """Backpropagation through time from the forward's workspace (src_c/fnn_rnn.h)"""
    cdef fnn_rnn_geom g = _geometry(cell, n, T, d, u, act, rec, reverse, seq)
    _set_mask(&g, mask, zero_masked)
    _set_dropout(&g, in_mask, rec_mask)
    cdef Py_ssize_t K = GATES[cell] * u, fwd, bwd
    cdef const floating *dhl
    cdef const floating *dcl
    cdef floating *dxp = NULL
    cdef floating *dh0p = NULL
    cdef floating *dc0p = NULL
    cdef const floating *dyp = NULL
    cdef int ok
    fnn_rnn_sizes(cell, T, d, u, &fwd, &bwd)
    if g.rec_mask != NULL:
        fwd += _REC_DROP_EXTRA(T, u)
    _need("kernel", kernel.shape[0], d * K)
    _need("recurrent kernel", rkernel.shape[0], u * K)
    _need("dkernel", dkernel.shape[0], d * K)
    _need("drecurrent_kernel", drkernel.shape[0], u * K)
    _need("dbias", dbias.shape[0], 2 * K if cell == 2 else K)
    _need("dy", dy.shape[0], n * (T if seq else 1) * u)
    _need("ut", ut.shape[0], K * u)
    if ws.shape[0] < n * fwd or bws.shape[0] < n * bwd:
        raise ValueError(f"rnn: the workspaces must hold {n * fwd} and {n * bwd} values. "
                         f"Received: {ws.shape[0]} and {bws.shape[0]}")
    dhl = _opt("dh_last", dh_last, n * u)
    dcl = _opt("dc_last", dc_last, n * u)
    if dx is not None:
        _need("dx", dx.shape[0], n * T * d)
        if n:
            dxp = &dx[0]
    if dh0 is not None:
        _need("dh0", dh0.shape[0], n * u)
        if n:
            dh0p = &dh0[0]
    if dc0 is not None:
        _need("dc0", dc0.shape[0], n * u)
        if n:
            dc0p = &dc0[0]
    if n == 0:
        dkernel[:] = 0
        drkernel[:] = 0
        dbias[:] = 0
        return
    dyp = &dy[0]
    with nogil:
        if floating is float:
            ok = fnn_rnn_backward_f32(&g, &kernel[0], &rkernel[0], &ws[0], dyp, dhl, dcl,
                                      &bws[0], &ut[0], &dkernel[0], &drkernel[0], &dbias[0],
                                      dxp, dh0p, dc0p)
        else:
            ok = fnn_rnn_backward_f64(&g, &kernel[0], &rkernel[0], &ws[0], dyp, dhl, dcl,
                                      &bws[0], &ut[0], &dkernel[0], &drkernel[0], &dbias[0],
                                      dxp, dh0p, dc0p)
    if not ok:
        raise MemoryError("rnn_backward: out of memory")


def matmul_packed_b(const floating[:, ::1] a,    # IN
                    const floating[:, ::1] b,    # IN
                    floating[:, ::1] out,        # OUT (also IN when beta != 0)
                    bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """out := alpha * op(a) @ op(b) + beta * out, op(b) packed first (src_c/fnn_gemm.h's
    fnn_*gemm_pack_b, then fnn_*gemm_bp: the recurrent steps' product); for tests, which hold
    it to fastnn._ext._kernels.matmul bit for bit"""
    cdef unsigned int csr
    cdef Py_ssize_t m = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t n = b.shape[0] if trans_b else b.shape[1]
    cdef floating[::1] packed
    cdef floating *bp = NULL
    if (b.shape[1] if trans_b else b.shape[0]) != k or out.shape[0] != m or out.shape[1] != n:
        raise ValueError(f"matmul_packed_b: op(a) {m}x{k}, op(b) needs {k} rows and out "
                         f"({m}, {n}). Received: b {tuple(b.shape)}, out {tuple(out.shape)}")
    packed = np.empty(max(1, fnn_gemm_packed_b_size(floating is double, k, n)),
                      np.float32 if floating is float else np.float64)
    if m == 0 or n == 0:
        return out.base
    if k > 0:
        bp = &packed[0]
    with nogil:
        csr = fnn_ftz_enter()       # see src_c/fnn_ftz.h
        if floating is float:
            fnn_sgemm_pack_b(trans_b, k, n, &b[0, 0], b.shape[1], bp)
            fnn_sgemm_bp(trans_a, trans_b, m, n, k, <float>alpha, &a[0, 0], a.shape[1],
                         &b[0, 0], b.shape[1], bp, <float>beta, &out[0, 0], n, NULL)
        else:
            fnn_dgemm_pack_b(trans_b, k, n, &b[0, 0], b.shape[1], bp)
            fnn_dgemm_bp(trans_a, trans_b, m, n, k, alpha, &a[0, 0], a.shape[1],
                         &b[0, 0], b.shape[1], bp, beta, &out[0, 0], n, NULL)
        fnn_ftz_leave(csr)
    return out.base
