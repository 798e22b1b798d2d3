# The ConvLSTM's gates and cell update, one time step at a time (fastnn/layers/conv_lstm.py):
# the two convolutions around them run through the compiled conv2d kernels (_conv.pyx), these
# loops do the element-wise rest. A row is one (sample, position): its 4F pre-activations in
# Keras' gate order i, f, c, o, its F cell values. Rows are independent, so the prange over them
# is bitwise the same at any thread count (no reductions).
#
# Arrays are flat (C-contiguous, one axis); every length is checked here against the row count,
# so the nogil loops stay inside the arrays they are given.

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, expf, tanh, tanhf

from fastnn._ext._parallel cimport threads_for

# the activations the gates take (fastnn.activations codes): linear, sigmoid, tanh, relu
cdef frozenset ACTIVATIONS = frozenset((0, 2, 3, 4))


cdef inline floating _act(floating x, int code) noexcept nogil:
    """linear, sigmoid 1 / (1 + e^-x), tanh or relu of x"""
    cdef floating e
    if code == 2:
        # e^-|x| never overflows (as the recurrent kernels' NumPy twin)
        if floating is float:
            e = expf(-x if x >= 0 else x)
        else:
            e = exp(-x if x >= 0 else x)
        return 1 / (1 + e) if x >= 0 else e / (1 + e)
    if code == 3:
        if floating is float:
            return tanhf(x)
        else:
            return tanh(x)
    if code == 4:
        return x if x > 0 else 0
    return x


cdef inline floating _deriv(floating y, int code) noexcept nogil:
    """the activation's derivative from its output y = act(x)"""
    if code == 2:
        return y * (1 - y)
    if code == 3:
        return 1 - y * y
    if code == 4:
        return 1 if y > 0 else 0
    return 1


cdef _check(str name, Py_ssize_t have, Py_ssize_t want):
    if have != want:
        raise ValueError(f"conv_lstm: {name} must hold {want} values. Received: {have}")


cdef _check_codes(int act, int rec):
    if act not in ACTIVATIONS or rec not in ACTIVATIONS:
        raise ValueError(f"conv_lstm: activations must be linear, sigmoid, tanh or relu codes. "
                         f"Received: activation={act}, recurrent_activation={rec}")


def conv_lstm_gates_forward(Py_ssize_t rows, Py_ssize_t F,
                            const floating[::1] zx,      # IN  (rows, 4F) input conv + bias
                            const floating[::1] zh,      # IN  (rows, 4F) recurrent conv
                            const floating[::1] c_prev,  # IN  (rows, F)
                            int act, int rec,
                            floating[::1] gates,         # OUT (rows, 4F) i, f, g, o activated
                            floating[::1] c,             # OUT (rows, F)
                            floating[::1] h):            # OUT (rows, F)
    """[i, f, g, o] = [rec, rec, act, rec](zx + zh);  c = f c_prev + i g;  h = o act(c)"""
    cdef Py_ssize_t r, j, base, cell
    cdef floating gi, gf, gg, go, cv
    if rows < 0 or F < 1:
        raise ValueError(f"conv_lstm: need rows >= 0 and F >= 1. Received: {rows}, {F}")
    _check_codes(act, rec)
    for name, arr, width in (("zx", zx, 4), ("zh", zh, 4), ("c_prev", c_prev, 1),
                             ("gates", gates, 4), ("c", c, 1), ("h", h, 1)):
        _check(name, arr.shape[0], rows * width * F)
    if rows == 0:
        return
    with nogil:
        for r in prange(rows, schedule="static", num_threads=threads_for(rows * 4 * F)):
            base = r * 4 * F
            cell = r * F
            for j in range(F):
                gi = _act(zx[base + j] + zh[base + j], rec)
                gf = _act(zx[base + F + j] + zh[base + F + j], rec)
                gg = _act(zx[base + 2 * F + j] + zh[base + 2 * F + j], act)
                go = _act(zx[base + 3 * F + j] + zh[base + 3 * F + j], rec)
                gates[base + j] = gi
                gates[base + F + j] = gf
                gates[base + 2 * F + j] = gg
                gates[base + 3 * F + j] = go
                cv = gf * c_prev[cell + j] + gi * gg
                c[cell + j] = cv
                h[cell + j] = go * _act(cv, act)


def conv_lstm_gates_backward(Py_ssize_t rows, Py_ssize_t F,
                             const floating[::1] gates,   # IN  (rows, 4F) the forward's
                             const floating[::1] c,       # IN  (rows, F) c_t
                             const floating[::1] c_prev,  # IN  (rows, F) c_{t-1}
                             const floating[::1] dh,      # IN  (rows, F) dL/dh_t
                             floating[::1] dc,            # IN  dL/dc_t from step t+1;
                                                          # OUT dL/dc_{t-1}
                             int act, int rec,
                             floating[::1] dz):           # OUT (rows, 4F) dL/d(pre-activations)
    """dc += dh o act'(c);  dz = [dc g rec'(i), dc c_prev rec'(f), dc i act'(g),
    dh act(c) rec'(o)];  dc := dc f"""
    cdef Py_ssize_t r, j, base, cell
    cdef floating gi, gf, gg, go, ac, dcv, dhv
    if rows < 0 or F < 1:
        raise ValueError(f"conv_lstm: need rows >= 0 and F >= 1. Received: {rows}, {F}")
    _check_codes(act, rec)
    for name, arr, width in (("gates", gates, 4), ("c", c, 1), ("c_prev", c_prev, 1),
                             ("dh", dh, 1), ("dc", dc, 1), ("dz", dz, 4)):
        _check(name, arr.shape[0], rows * width * F)
    if rows == 0:
        return
    with nogil:
        for r in prange(rows, schedule="static", num_threads=threads_for(rows * 4 * F)):
            base = r * 4 * F
            cell = r * F
            for j in range(F):
                gi = gates[base + j]
                gf = gates[base + F + j]
                gg = gates[base + 2 * F + j]
                go = gates[base + 3 * F + j]
                ac = _act(c[cell + j], act)
                dhv = dh[cell + j]
                dcv = dc[cell + j] + dhv * go * _deriv(ac, act)
                dz[base + j] = dcv * gg * _deriv(gi, rec)
                dz[base + F + j] = dcv * c_prev[cell + j] * _deriv(gf, rec)
                dz[base + 2 * F + j] = dcv * gi * _deriv(gg, act)
                dz[base + 3 * F + j] = dhv * ac * _deriv(go, rec)
                dc[cell + j] = dcv * gf
