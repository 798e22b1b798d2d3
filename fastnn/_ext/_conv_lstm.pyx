# The ConvLSTM's gates and cell update, one time step at a time (fastnn/layers/conv_lstm.py):
# the two convolutions around them run through the compiled conv2d kernels (_conv.pyx), these
# loops do the element-wise rest with the LSTM's own step kernels (src_c/fnn_rnn.h's
# fnn_rnn_lstm_gates_*: SIMD per flavour, FASTNN_KERNEL applies). A row is one (sample,
# position): its 4F pre-activations in Keras' gate order i, f, c, o, its F cell values. Rows go
# in fixed blocks over the threads; rows are independent, so the results are bitwise the same at
# any thread count.
#
# Arrays are flat (C-contiguous, one axis); every length is checked here against the row count,
# so the nogil loops stay inside the arrays they are given.

from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy

from fastnn._ext._parallel cimport threads_for

cdef extern from "fnn_rnn.h" nogil:
    void fnn_rnn_lstm_gates_fwd_f32(float *z, const float *c_prev, float *c_next, float *a,
                                    float *h_next, Py_ssize_t m, Py_ssize_t u, int act, int rec)
    void fnn_rnn_lstm_gates_fwd_f64(double *z, const double *c_prev, double *c_next, double *a,
                                    double *h_next, Py_ssize_t m, Py_ssize_t u, int act,
                                    int rec)
    void fnn_rnn_lstm_gates_bwd_f32(float *z, const float *c_prev, const float *a,
                                    const float *dh, float *dc, Py_ssize_t m, Py_ssize_t u,
                                    int act, int rec)
    void fnn_rnn_lstm_gates_bwd_f64(double *z, const double *c_prev, const double *a,
                                    const double *dh, double *dc, Py_ssize_t m, Py_ssize_t u,
                                    int act, int rec)

# the activations the gates take (fastnn.activations codes): linear, sigmoid, tanh, relu
cdef frozenset ACTIVATIONS = frozenset((0, 2, 3, 4))
# rows per block handed to a thread (small enough to balance 2 threads on 8x16x16 rows)
cdef enum:
    BLOCK_ROWS = 64


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
                            floating[::1] a,             # OUT (rows, F) act(c)
                            floating[::1] h):            # OUT (rows, F)
    """[i, f, g, o] = [rec, rec, act, rec](zx + zh);  c = f c_prev + i g;  a = act(c);  h = o a"""
    cdef Py_ssize_t blk, r0, m, j, K = 4 * F
    cdef Py_ssize_t blocks = (rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    if rows < 0 or F < 1:
        raise ValueError(f"conv_lstm: need rows >= 0 and F >= 1. Received: {rows}, {F}")
    _check_codes(act, rec)
    for name, arr, width in (("zx", zx, 4), ("zh", zh, 4), ("c_prev", c_prev, 1),
                             ("gates", gates, 4), ("c", c, 1), ("a", a, 1), ("h", h, 1)):
        _check(name, arr.shape[0], rows * width * F)
    if rows == 0:
        return
    with nogil:
        for blk in prange(blocks, schedule="static", num_threads=threads_for(rows * K)):
            r0 = blk * BLOCK_ROWS
            m = min(BLOCK_ROWS, rows - r0)
            for j in range(r0 * K, (r0 + m) * K):
                gates[j] = zx[j] + zh[j]
            if floating is float:
                fnn_rnn_lstm_gates_fwd_f32(&gates[r0 * K], &c_prev[r0 * F], &c[r0 * F],
                                           &a[r0 * F], &h[r0 * F], m, F, act, rec)
            else:
                fnn_rnn_lstm_gates_fwd_f64(&gates[r0 * K], &c_prev[r0 * F], &c[r0 * F],
                                           &a[r0 * F], &h[r0 * F], m, F, act, rec)


def conv_lstm_gates_backward(Py_ssize_t rows, Py_ssize_t F,
                             const floating[::1] gates,   # IN  (rows, 4F) the forward's
                             const floating[::1] c_prev,  # IN  (rows, F) c_{t-1}
                             const floating[::1] a,       # IN  (rows, F) act(c_t)
                             const floating[::1] dh,      # IN  (rows, F) dL/dh_t
                             floating[::1] dc,            # IN  dL/dc_t from step t+1;
                                                          # OUT dL/dc_{t-1}
                             int act, int rec,
                             floating[::1] dz):           # OUT (rows, 4F) dL/d(pre-activations)
    """dc += dh o act'(c);  dz = [dc g rec'(i), dc c_prev rec'(f), dc i act'(g),
    dh a rec'(o)];  dc := dc f"""
    cdef Py_ssize_t blk, r0, m, K = 4 * F
    cdef Py_ssize_t blocks = (rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    if rows < 0 or F < 1:
        raise ValueError(f"conv_lstm: need rows >= 0 and F >= 1. Received: {rows}, {F}")
    _check_codes(act, rec)
    for name, arr, width in (("gates", gates, 4), ("c_prev", c_prev, 1), ("a", a, 1),
                             ("dh", dh, 1), ("dc", dc, 1), ("dz", dz, 4)):
        _check(name, arr.shape[0], rows * width * F)
    if rows == 0:
        return
    with nogil:
        for blk in prange(blocks, schedule="static", num_threads=threads_for(rows * K)):
            r0 = blk * BLOCK_ROWS
            m = min(BLOCK_ROWS, rows - r0)
            # the kernel works in place: the gates stay for another backward of this forward
            memcpy(&dz[r0 * K], &gates[r0 * K], m * K * sizeof(floating))
            if floating is float:
                fnn_rnn_lstm_gates_bwd_f32(&dz[r0 * K], &c_prev[r0 * F], &a[r0 * F],
                                           &dh[r0 * F], &dc[r0 * F], m, F, act, rec)
            else:
                fnn_rnn_lstm_gates_bwd_f64(&dz[r0 * K], &c_prev[r0 * F], &a[r0 * F],
                                           &dh[r0 * F], &dc[r0 * F], m, F, act, rec)
