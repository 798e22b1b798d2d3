# Dense-layer kernels of the fast backend: matmul, dense forward/backward, activations.
#
# Design (the contract is fastnn/backends/__init__.py):
# - Every product goes to the C GEMM (src_c/fnn_gemm.h), row-major, with transpose flags instead of
#   copies; the bias and element-wise activation of a dense layer run in the GEMM's epilogue, while
#   the tile is still in cache. Softmax is row-wise, so it is a separate pass here.
# - The Python-facing functions only take typed memoryviews (C-contiguous, float32 or float64
#   through the fused type `floating`), check shapes in O(1), then release the GIL and hand raw
#   pointers to `noexcept nogil` loops. No memoryview is sliced inside a parallel loop.
# - Parallel loops are OpenMP `prange`s over one contiguous block per thread; small work runs on
#   one thread (_parallel.threads_for). Results never depend on the thread count: each output
#   element is computed by one thread, and the bias gradient sums each column in row order.
# - Every entry point, and every thread of a parallel loop, runs in flush-to-zero mode for its
#   duration (src_c/fnn_ftz.h). The vectorised element-wise loops live in C (src_c/fnn_vec.h).
# - _plan.pxi (ForwardPlan) and _train.pxi (TrainPlan) chain these same routines into one call
#   per prediction or per training step; _infer.pxi (InferPlan) chains them with the convolution,
#   pooling and recurrent kernels into one call per prediction of a CNN or RNN.

from cython cimport floating
from cython.parallel cimport prange

from fastnn._ext._elementwise cimport act_forward, act_deriv
from fastnn._ext._parallel cimport (FNN_HAVE_OPENMP, fnn_max_threads, fnn_set_threads, threads_for,
                                     fnn_thread_limit, fnn_ftz_enter, fnn_ftz_leave,
                                     PARALLEL_MIN_WORK, fnn_raw_threads, fnn_adapt,
                                     fnn_adapt_begin, fnn_adapt_fallback, fnn_adapt_end,
                                     fnn_adapt_cancel)
from fastnn._ext.gemm cimport (fnn_sgemm, fnn_dgemm, fnn_epilogue_f32, fnn_epilogue_f64,
                               fnn_kernel_name, fnn_openmp_enabled, FNN_ACT_LINEAR, FNN_ACT_STEP,
                               FNN_ACT_SIGMOID, FNN_ACT_TANH, FNN_ACT_RELU, FNN_ACT_SOFTMAX,
                               FNN_ACT_GELU, FNN_ACT_GELU_TANH, FNN_ACT_LEAKY_RELU, FNN_ACT_STEP,
                               FNN_ACT_DERIV_GIVEN, FNN_ACT_ELU, FNN_ACT_SILU, FNN_ACT_END,
                               fnn_par_min_work)

cdef extern from "fnn_vec.h" nogil:
    void fnn_deriv_colsum_f32(const float *y, const float *dy, float *dz, double *acc,
                              Py_ssize_t n, Py_ssize_t ld, Py_ssize_t w, int act, float param)
    void fnn_deriv_colsum_f64(const double *y, const double *dy, double *dz, double *acc,
                              Py_ssize_t n, Py_ssize_t ld, Py_ssize_t w, int act, double param)
    double fnn_max_abs_f32(const float *x, Py_ssize_t n)
    double fnn_max_abs_f64(const double *x, Py_ssize_t n)
    void fnn_softmax_rows_f32(const float *z, float *y, Py_ssize_t n, Py_ssize_t m)
    void fnn_softmax_rows_f64(const double *z, double *y, Py_ssize_t n, Py_ssize_t m)
    void fnn_gelu_forward_f32(const float *z, float *y, Py_ssize_t n, int act)
    void fnn_gelu_backward_f32(const float *z, const float *dy, float *dz, Py_ssize_t n, int act)
    void fnn_gelu_value_deriv_f32(float *z, float *y, Py_ssize_t n, int act)
    void fnn_keras_forward_f32(const float *z, float *y, Py_ssize_t n, int act, float param)
    void fnn_keras_backward_f32(const float *y, const float *dy, float *dz, Py_ssize_t n,
                                int act, float param)
    void fnn_silu_value_deriv_f32(float *z, float *y, Py_ssize_t n)

# Columns of the bias gradient summed together on the stack, in double.
cdef enum:
    DB_BLOCK = 64


cdef int _shape_error(str what) except -1:
    raise ValueError(f"fastnn kernel called with inconsistent shapes: {what}")


cdef inline int _check_act(int act, bint given_ok) except -1:
    """Refuse a code that is no activation (FNN_ACT_DERIV_GIVEN only where `given_ok`): the loops
    below would read an unknown code as linear."""
    if act < 0 or act >= FNN_ACT_END or (act == FNN_ACT_DERIV_GIVEN and not given_ok):
        raise ValueError(f"fastnn kernel called with an unknown activation code {act}")
    return 0


# --------------------------------------------------------------------------- GEMM dispatch

cdef inline void _gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                       floating alpha, const floating *A, Py_ssize_t lda,
                       const floating *B, Py_ssize_t ldb, floating beta, floating *C,
                       Py_ssize_t ldc, bint epilogue, const floating *bias, int act,
                       floating param, double *amax=NULL, double par_min=0) noexcept nogil:
    """C := alpha op(A) op(B) + beta C, then act(C + bias) when `epilogue`; float or double GEMM.
    With `amax`, also amax[0] := max |C| (NaN if any C is not finite), taken tile by tile.
    Threads from `par_min` multiply-adds on (0: the GEMM's default, fnn_par_min_work())."""
    cdef bint opts = epilogue or amax != NULL or par_min > 0
    cdef fnn_epilogue_f32 ep32
    cdef fnn_epilogue_f64 ep64
    if m == 0 or n == 0:
        if amax != NULL:
            amax[0] = 0
        return
    if floating is float:
        ep32.bias = bias if epilogue else NULL
        ep32.act = act if epilogue else FNN_ACT_LINEAR
        ep32.param = param
        ep32.amax = amax
        ep32.min_parallel_work = par_min
        fnn_sgemm(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc,
                  &ep32 if opts else NULL)
    else:
        ep64.bias = bias if epilogue else NULL
        ep64.act = act if epilogue else FNN_ACT_LINEAR
        ep64.param = param
        ep64.amax = amax
        ep64.min_parallel_work = par_min
        fnn_dgemm(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc,
                  &ep64 if opts else NULL)


cdef inline double _max_abs(const floating *g, Py_ssize_t n) noexcept nogil:
    """max |g_i|, or NaN when any g_i is NaN or inf (src_c/fnn_vec.h)."""
    if floating is float:
        return fnn_max_abs_f32(g, n)
    else:
        return fnn_max_abs_f64(g, n)


cdef inline double _max_abs_join(double a, double b) noexcept nogil:
    """The _max_abs of two parts joined: NaN if either is NaN."""
    if a != a or b != b:
        return a + b
    return a if a > b else b


# --------------------------------------------------------------------------- row-wise loops

cdef void _softmax_rows(const floating *z, floating *y, Py_ssize_t n,
                        Py_ssize_t m) noexcept nogil:
    """y := exp(z - max z) / sum exp(z - max z) for each of n rows (src_c's fnn_softmax_rows_*);
    the shift keeps exp <= 1 (no overflow); y may be z. Each row's sum is taken in double, so a
    row's result never depends on the rows around it. Float: vectorised per kernel flavour, the
    same bits in each (the sum over a fixed tree, the row scaled by the reciprocal of its sum, in
    double, then rounded once to float: never above 1). Double: summed in column order, and the
    rows divided by their sum."""
    if floating is float:
        fnn_softmax_rows_f32(z, y, n, m)
    else:
        fnn_softmax_rows_f64(z, y, n, m)


cdef inline void _softmax_grad_row(const floating *y, const floating *dy, floating *dz,
                                   Py_ssize_t m) noexcept nogil:
    """dz := y * (dy - sum_j dy_j y_j); dz may be dy (the sum is taken before any write)."""
    cdef Py_ssize_t j
    cdef double dot = 0
    for j in range(m):
        dot += <double>dy[j] * y[j]
    for j in range(m):
        dz[j] = y[j] * (dy[j] - <floating>dot)


cdef inline void _act_row(const floating *z, floating *y, Py_ssize_t m, int act,
                          floating param) noexcept nogil:
    """y := act(z) element-wise (act is not softmax)."""
    cdef Py_ssize_t j
    if floating is float:
        if act == FNN_ACT_GELU or act == FNN_ACT_GELU_TANH:    # vectorised per flavour, the
            fnn_gelu_forward_f32(z, y, m, act)                 # epilogue's bits (fnn_gelu.h)
            return
        if FNN_ACT_ELU <= act <= FNN_ACT_SILU:                 # likewise (fnn_act_keras.h)
            fnn_keras_forward_f32(z, y, m, act, param)
            return
    # act_forward's formulas as loops of their own, which the compiler vectorises (selects); the
    # switch inside the loop of the others branched on the data: relu took ~8 ns an element
    if act == FNN_ACT_RELU:         # as np.maximum(z, 0): NaN propagates, -0.0 becomes 0.0
        for j in range(m):
            y[j] = z[j] if (z[j] > 0) | (z[j] != z[j]) else 0
        return
    if act == FNN_ACT_LEAKY_RELU:
        for j in range(m):
            y[j] = z[j] if z[j] > 0 else param * z[j]
        return
    if act == FNN_ACT_STEP:
        for j in range(m):
            y[j] = 1 if z[j] >= param else 0
        return
    for j in range(m):
        y[j] = act_forward(act, z[j], param)


cdef inline void _act_grad_row(const floating *y, const floating *dy, floating *dz, Py_ssize_t m,
                               int act, floating param) noexcept nogil:
    """dz := act'(y) * dy element-wise (act is not softmax)."""
    cdef Py_ssize_t j
    if floating is float:
        if act == FNN_ACT_GELU or act == FNN_ACT_GELU_TANH:    # y holds z (fnn_vec.h)
            fnn_gelu_backward_f32(y, dy, dz, m, act)
            return
        if FNN_ACT_ELU <= act <= FNN_ACT_SILU:                 # silu: y holds z
            fnn_keras_backward_f32(y, dy, dz, m, act, param)
            return
    if act == FNN_ACT_RELU:         # the same products, as a loop the compiler vectorises (the
        for j in range(m):          # switch below branches on the data: half mispredicted)
            dz[j] = dy[j] * <floating>(y[j] > 0)
        return
    if act == FNN_ACT_DERIV_GIVEN:  # y holds the derivative (activation_forward_deriv)
        for j in range(m):
            dz[j] = dy[j] * y[j]
        return
    for j in range(m):
        dz[j] = dy[j] * act_deriv(act, y[j], param)


cdef void _forward_block(const floating *z, floating *y, Py_ssize_t n, Py_ssize_t m, int act,
                         floating param) noexcept nogil:
    """y := act(z) for n rows (serial); y may be z."""
    cdef Py_ssize_t i
    if act == FNN_ACT_SOFTMAX:
        _softmax_rows(z, y, n, m)
    elif act != FNN_ACT_LINEAR or z != y:
        for i in range(n):
            _act_row(z + i * m, y + i * m, m, act, param)


cdef void _forward_rows(const floating *z, floating *y, Py_ssize_t n, Py_ssize_t m, int act,
                        floating param) noexcept nogil:
    """y := act(z) for an (n, m) array, one contiguous block of rows per thread; y may be z."""
    cdef Py_ssize_t b, r0, r1
    cdef int nt = threads_for(n * m)
    if nt == 1:
        _forward_block(z, y, n, m, act, param)
        return
    for b in prange(nt, schedule='static', num_threads=nt):
        csr = fnn_ftz_enter()
        r0 = b * n // nt
        r1 = (b + 1) * n // nt
        _forward_block(z + r0 * m, y + r0 * m, r1 - r0, m, act, param)
        fnn_ftz_leave(csr)


cdef void _backward_block(const floating *y, const floating *dy, floating *dz, Py_ssize_t n,
                          Py_ssize_t m, int act, floating param) noexcept nogil:
    cdef Py_ssize_t i
    if act == FNN_ACT_SOFTMAX:
        for i in range(n):
            _softmax_grad_row(y + i * m, dy + i * m, dz + i * m, m)
    else:
        for i in range(n):
            _act_grad_row(y + i * m, dy + i * m, dz + i * m, m, act, param)


cdef void _backward_rows(const floating *y, const floating *dy, floating *dz, Py_ssize_t n,
                         Py_ssize_t m, int act, floating param) noexcept nogil:
    """dz := act'(y) * dy (softmax: its Jacobian-vector product), one block of rows per thread."""
    cdef Py_ssize_t b, r0, r1
    cdef int nt = threads_for(n * m)
    if nt == 1:
        _backward_block(y, dy, dz, n, m, act, param)
        return
    for b in prange(nt, schedule='static', num_threads=nt):
        csr = fnn_ftz_enter()
        r0 = b * n // nt
        r1 = (b + 1) * n // nt
        _backward_block(y + r0 * m, dy + r0 * m, dz + r0 * m, r1 - r0, m, act, param)
        fnn_ftz_leave(csr)


# --------------------------------------------------------------------------- column-wise loops

cdef void _grad_and_colsum_block(const floating *y, const floating *dy, floating *dz,
                                 floating *db, Py_ssize_t n, Py_ssize_t m, Py_ssize_t j0,
                                 Py_ssize_t j1, int act, floating param) noexcept nogil:
    """For columns j0..j1-1: dz := act'(y) * dy and db := sum_i dz[i] (row order, in double);
    the loop is the vectorised C kernel of src_c/fnn_vec.h."""
    cdef double acc[DB_BLOCK]
    cdef Py_ssize_t j, c0, c1
    c0 = j0
    while c0 < j1:
        c1 = min(c0 + DB_BLOCK, j1)
        for j in range(c1 - c0):
            acc[j] = 0
        if floating is float:
            fnn_deriv_colsum_f32(y + c0, dy + c0, dz + c0, acc, n, m, c1 - c0, act, param)
        else:
            fnn_deriv_colsum_f64(y + c0, dy + c0, dz + c0, acc, n, m, c1 - c0, act, param)
        for j in range(c0, c1):
            db[j] = <floating>acc[j - c0]
        c0 = c1


cdef void _grad_and_colsum(const floating *y, const floating *dy, floating *dz, floating *db,
                           Py_ssize_t n, Py_ssize_t m, int act, floating param) noexcept nogil:
    """dz := act'(y) * dy;  db := dz.sum(0); columns split over threads, so sums keep one order."""
    cdef Py_ssize_t b
    # Threads own blocks of at least DB_BLOCK columns: narrower blocks would share cache lines of
    # dz (false sharing), so a narrow layer runs on one thread.
    cdef int nb = <int>min(<Py_ssize_t>threads_for(n * m), m // DB_BLOCK)
    if nb < 1:
        nb = 1
    if nb == 1:
        _grad_and_colsum_block(y, dy, dz, db, n, m, 0, m, act, param)
        return
    for b in prange(nb, schedule='static', num_threads=nb):
        csr = fnn_ftz_enter()
        _grad_and_colsum_block(y, dy, dz, db, n, m, b * m // nb, (b + 1) * m // nb, act, param)
        fnn_ftz_leave(csr)


# --------------------------------------------------------------------------- whole layers

cdef void _dense_forward_raw(const floating *x, const floating *w, const floating *bias,
                             Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int act, floating param,
                             floating *out, double par_min=0) noexcept nogil:
    """out := act(x @ w + bias) for x (n, k), w (k, m); bias may be NULL. The GEMM applies the
    activation, softmax included (see src_c/fnn_gemm.h). `par_min`: as _gemm's."""
    _gemm(False, False, n, m, k, 1, x, k, w, m, 0, out, m, True, bias, act, param, NULL, par_min)


cdef void _dense_backward_raw(const floating *x, const floating *w, const floating *y,
                              const floating *dy, Py_ssize_t n, Py_ssize_t k, Py_ssize_t m,
                              int act, floating param, floating *dz, floating *dw, floating *db,
                              floating *dx, double *gmax=NULL, double par_min=0) noexcept nogil:
    """dz := act'(y) * dy;  db := dz.sum(0);  dw := x.T @ dz;  dx := dz @ w.T (dx may be NULL).
    With `gmax`: gmax[0] := max |g| over dw and db, or NaN if any is not finite (dw's part is
    taken by the GEMM as it writes each tile, so the gradients are not read again for it).
    `par_min`: as _gemm's."""
    cdef double gw
    if act == FNN_ACT_SOFTMAX:       # row-wise Jacobian first, then the plain column sums
        if n * m > 0:
            _backward_rows(y, dy, dz, n, m, act, param)
        _grad_and_colsum(y, dz, dz, db, n, m, FNN_ACT_LINEAR, 0)
    else:
        _grad_and_colsum(y, dy, dz, db, n, m, act, param)
    cdef int t
    cdef unsigned int csr
    if dx != NULL and _two_tasks(n, k, m, par_min):
        # dw and dx at once, one thread each (the same products, so the same bits)
        for t in prange(2, num_threads=2, schedule="static", chunksize=1):
            csr = fnn_ftz_enter()
            if t == 0:
                _gemm(True, False, k, m, n, 1, x, k, dz, m, 0, dw, m, False, NULL, 0, 0,
                      &gw if gmax != NULL else NULL, ONE_THREAD)
            else:
                _gemm(False, True, n, k, m, 1, dz, m, w, m, 0, dx, k, False, NULL, 0, 0, NULL,
                      ONE_THREAD)
            fnn_ftz_leave(csr)
        if gmax != NULL:
            gmax[0] = _max_abs_join(gw, _max_abs(db, m))
        return
    _gemm(True, False, k, m, n, 1, x, k, dz, m, 0, dw, m, False, NULL, 0, 0,
          &gw if gmax != NULL else NULL, par_min)
    if gmax != NULL:
        gmax[0] = _max_abs_join(gw, _max_abs(db, m))
    if dx != NULL:
        _gemm(False, True, n, k, m, 1, dz, m, w, m, 0, dx, k, False, NULL, 0, 0, NULL, par_min)


# A backward pass's two products, dw = x.T @ dz and dx = dz @ w.T, do the same multiply-adds
# (n k m each). On two threads, when they are big enough to take threads (the GEMM's floor, or
# the pass's `par_min`), each runs whole on its own thread instead of each being split in two:
# a 512 x 64 x 256 layer's backward split its products at ~60% efficiency (its outputs are few
# tiles, each thread packing its own panels): 411 -> 250 us on Zen 2. Only while dx is at most
# TWO_TASKS_MAX_DX values: dx then lies whole in one core's cache, and the next layer's passes,
# which split its rows between the threads, read half of it from the other core (the 784-1024-10
# step at batch 256, dx of 256 x 1024: 5.7 -> 6.0 ms with tasks). The GEMM's results do not
# depend on its thread count. With more threads the products are split as before.
cdef double ONE_THREAD = 1e300      # a `par_min` no product reaches: one thread
cdef Py_ssize_t TWO_TASKS_MAX_DX = 131072


cdef inline bint _two_tasks(Py_ssize_t n, Py_ssize_t k, Py_ssize_t m,
                            double par_min) noexcept nogil:
    cdef double floor = par_min if par_min > 0 else fnn_par_min_work()
    return (fnn_max_threads() == 2 and <double>n * <double>k * <double>m >= floor
            and n * k <= TWO_TASKS_MAX_DX)


# Threads in a whole pass (ForwardPlan, TrainPlan): a product takes threads on its own from
# fnn_par_min_work() multiply-adds (src_c/fnn_gemm.h: below that, moving its operands and output
# between the cores' caches costs more than the second thread saves). Once a pass has a product
# that big, its data is split across the cores anyway, and the products around it take threads
# from half that floor, at most STEP_PAR_MIN, on.
# Measured on a 2-vCPU Xeon (Sapphire Rapids class, floor 8M), 2 threads: in the 784-256-128-10
# step at batch 64 the 2M products beside the 12.8M ones 400 vs 417 us with a 2M floor instead of
# 4M, and no slower with 1M (at batch 32, with 6.4M products threaded then, 1M against 2M gave
# 300 vs 318 us). Without a big product the pass stays on one thread: the 64-256-128-10 step at
# batch 32 (1M products) took 106-111 us on 2 threads against 74-80 us on one with a 1M floor,
# and 784-128-10 at batch 32 (3.2M products) 185 against 118 us with 2M.
# On a 2-core AMD EPYC (Zen 3, floor 1M): the same 64-256-128-10 step 137 us on one thread, 111
# on two with the 1M products threaded, 102 with the 0.5M ones beside them too.
cdef double STEP_PAR_MIN = 1.0e6
# The optimizer update of a step that runs on one thread: the same reasoning, from this many
# parameters on (else PARALLEL_MIN_WORK). The next forward pass reads the weights each thread
# wrote: the 203k-parameter update of 784-256-10 at batch 4 made the step 143-147 us on 2 threads
# against 103-109 us on one, while 784-1024-10 at batch 2 (813k) ran 713 against 774 us.
cdef Py_ssize_t SERIAL_STEP_UPDATE_MIN = 524288


cdef inline double _pass_par_min(Py_ssize_t n, double widest) noexcept nogil:
    """The thread floor (_gemm's `par_min`) for the products of a pass over n rows through
    dense steps whose largest fan_in * width is `widest`: half the GEMM's floor, at most
    STEP_PAR_MIN, when the largest product is threaded anyway, else 0 (the GEMM's default)."""
    cdef double floor = fnn_par_min_work()
    if <double>n * widest < floor:
        return 0
    return min(STEP_PAR_MIN, 0.5 * floor)


# --------------------------------------------------------------------------- Python entry points

def matmul(const floating[:, ::1] a,    # IN
           const floating[:, ::1] b,    # IN
           floating[:, ::1] out,        # OUT (also IN when beta != 0)
           bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """out := alpha * op(a) @ op(b) + beta * out"""
    cdef unsigned int csr
    cdef Py_ssize_t m = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t n = b.shape[0] if trans_b else b.shape[1]
    if (b.shape[1] if trans_b else b.shape[0]) != k or out.shape[0] != m or out.shape[1] != n:
        _shape_error("matmul")
    with nogil:
        csr = fnn_ftz_enter()       # see src_c/fnn_ftz.h
        _gemm(trans_a, trans_b, m, n, k, <floating>alpha, &a[0, 0], a.shape[1], &b[0, 0],
              b.shape[1], <floating>beta, &out[0, 0], n, False, NULL, 0, 0)
        fnn_ftz_leave(csr)
    return out.base


def dense_forward(const floating[:, ::1] x,   # IN  (n, k)
                  const floating[:, ::1] w,   # IN  (k, m)
                  const floating[::1] b,      # IN  (m,), or None for no bias
                  int act, double param,
                  floating[:, ::1] out):      # OUT (n, m)
    """out := act(x @ w + b)"""
    cdef unsigned int csr
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], m = w.shape[1]
    cdef const floating *bias = NULL
    if w.shape[0] != k or out.shape[0] != n or out.shape[1] != m:
        _shape_error("dense_forward")
    _check_act(act, False)
    if b is not None:
        if b.shape[0] != m:
            _shape_error("dense_forward bias")
        bias = &b[0]
    with nogil:
        csr = fnn_ftz_enter()       # see src_c/fnn_ftz.h
        _dense_forward_raw(&x[0, 0], &w[0, 0], bias, n, k, m, act, <floating>param,
                           &out[0, 0])
        fnn_ftz_leave(csr)
    return out.base


def activation_forward(const floating[:, ::1] z,   # IN  (n, m)
                       int act, double param,
                       floating[:, ::1] out):      # OUT (n, m); may be z
    """out := act(z)"""
    cdef unsigned int csr
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1]
    if out.shape[0] != n or out.shape[1] != m:
        _shape_error("activation_forward")
    _check_act(act, False)
    if n * m > 0:
        with nogil:
            csr = fnn_ftz_enter()       # see src_c/fnn_ftz.h
            _forward_rows(&z[0, 0], &out[0, 0], n, m, act, <floating>param)
            fnn_ftz_leave(csr)
    return out.base


cdef void _value_deriv_block(floating *z, floating *y, Py_ssize_t n, int act) noexcept nogil:
    """y := act(z), then z := act'(z), for n values (gelu, gelu_tanh, silu)."""
    cdef Py_ssize_t j
    cdef floating v
    if floating is float and act != FNN_ACT_SILU:
        fnn_gelu_value_deriv_f32(z, y, n, act)
    elif floating is float:
        fnn_silu_value_deriv_f32(z, y, n)
    else:
        for j in range(n):
            v = z[j]
            y[j] = act_forward(act, v, 0)
            z[j] = act_deriv(act, v, 0)


cdef void _value_deriv_rows(floating *z, floating *y, Py_ssize_t n, Py_ssize_t m,
                            int act) noexcept nogil:
    """_value_deriv_block over an (n, m) array, one contiguous block of rows per thread."""
    cdef Py_ssize_t b, r0, r1
    cdef int nt = threads_for(n * m)
    if nt == 1:
        _value_deriv_block(z, y, n * m, act)
        return
    for b in prange(nt, schedule='static', num_threads=nt):
        csr = fnn_ftz_enter()
        r0 = b * n // nt
        r1 = (b + 1) * n // nt
        _value_deriv_block(z + r0 * m, y + r0 * m, (r1 - r0) * m, act)
        fnn_ftz_leave(csr)


def activation_forward_deriv(floating[:, ::1] z,    # IN/OUT (n, m) pre-activation, then act'(z)
                             int act,
                             floating[:, ::1] out):   # OUT (n, m) act(z); must not be z
    """out := act(z);  z := act'(z), for act gelu, gelu_tanh or silu (whose derivative is not a
    function of their output): a training forward keeps the derivative, so that the backward pass
    is activation_backward(z, dy, FNN_ACT_DERIV_GIVEN) with no second evaluation of the tail.
    The same bits as activation_forward and the derivative taken apart."""
    cdef unsigned int csr
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1]
    if act != FNN_ACT_GELU and act != FNN_ACT_GELU_TANH and act != FNN_ACT_SILU:
        raise ValueError(f"activation_forward_deriv takes gelu (7), gelu_tanh (8) or silu (13). "
                         f"Received: act={act}")
    if out.shape[0] != n or out.shape[1] != m:
        _shape_error("activation_forward_deriv")
    if n * m == 0:
        return out.base
    if &out[0, 0] == &z[0, 0]:
        raise ValueError("activation_forward_deriv writes the derivative into z and act(z) into "
                         "out: they must be different arrays")
    with nogil:
        csr = fnn_ftz_enter()       # see src_c/fnn_ftz.h
        _value_deriv_rows(&z[0, 0], &out[0, 0], n, m, act)
        fnn_ftz_leave(csr)
    return out.base


def activation_backward(const floating[:, ::1] y,    # IN  (n, m) saved output act(z); gelu: z
                        const floating[:, ::1] dy,   # IN  (n, m) dL/dy
                        int act, double param,
                        floating[:, ::1] out):       # OUT (n, m) dL/dz; may be dy
    """out := act'(z) * dy from y = act(z);  softmax: y * (dy - sum(dy * y, axis=1));
    gelu, gelu_tanh: from y = z (their derivative is not a function of their output);
    FNN_ACT_DERIV_GIVEN: y is act'(z) itself (activation_forward_deriv), out := y * dy"""
    cdef unsigned int csr
    cdef Py_ssize_t n = y.shape[0], m = y.shape[1]
    if dy.shape[0] != n or dy.shape[1] != m or out.shape[0] != n or out.shape[1] != m:
        _shape_error("activation_backward")
    _check_act(act, True)
    if n * m > 0:
        with nogil:
            csr = fnn_ftz_enter()       # see src_c/fnn_ftz.h
            _backward_rows(&y[0, 0], &dy[0, 0], &out[0, 0], n, m, act, <floating>param)
            fnn_ftz_leave(csr)
    return out.base


def dense_backward(const floating[:, ::1] x,    # IN  (n, k) layer input
                   const floating[:, ::1] w,    # IN  (k, m)
                   const floating[:, ::1] y,    # IN  (n, m) layer output act(z); gelu: z
                   const floating[:, ::1] dy,   # IN  (n, m) dL/dy
                   int act, double param,
                   floating[:, ::1] dz,         # OUT (n, m) dL/dz; may be dy
                   floating[:, ::1] dw,         # OUT (k, m)
                   floating[::1] db,            # OUT (m,)
                   floating[:, ::1] dx):        # OUT (n, k), or None to skip
    """dz := act'(y) * dy;  db := dz.sum(0);  dw := x.T @ dz;  dx := dz @ w.T"""
    cdef unsigned int csr
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], m = w.shape[1]
    cdef bint want_dx = dx is not None
    cdef floating *dx_ptr = NULL
    if (w.shape[0] != k or y.shape[0] != n or y.shape[1] != m or dy.shape[0] != n
            or dy.shape[1] != m or dz.shape[0] != n or dz.shape[1] != m or dw.shape[0] != k
            or dw.shape[1] != m or db.shape[0] != m
            or (want_dx and (dx.shape[0] != n or dx.shape[1] != k))):
        _shape_error("dense_backward")
    _check_act(act, True)
    if want_dx:
        dx_ptr = &dx[0, 0]
    with nogil:
        csr = fnn_ftz_enter()       # see src_c/fnn_ftz.h
        _dense_backward_raw(&x[0, 0], &w[0, 0], &y[0, 0], &dy[0, 0], n, k, m, act,
                            <floating>param, &dz[0, 0], &dw[0, 0], &db[0],
                            dx_ptr)
        fnn_ftz_leave(csr)


# --------------------------------------------------------------------------- threads and build

def set_num_threads(n):
    """Set the OpenMP thread count for later calls from this thread (no-op in a serial build);
    1 <= n <= thread_limit()."""
    cdef int limit = fnn_thread_limit()
    if not 1 <= n <= limit:
        raise ValueError(f"n must be an integer in [1, {limit}]. Received: n={n!r}")
    fnn_set_threads(<int>n)


def get_num_threads():
    """The thread count the next parallel kernel may use (1 in a serial build): OpenMP's,
    clamped to thread_limit()."""
    return fnn_max_threads()


def thread_limit():
    """The most threads any kernel uses: min(max(64, 4 * CPUs), 4096) (src_c/fnn_threads.h)."""
    return fnn_thread_limit()


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(FNN_HAVE_OPENMP and fnn_openmp_enabled())


def kernel_name():
    """The GEMM micro-kernel chosen for this CPU: "avx512", "avx2" or "generic"."""
    return fnn_kernel_name().decode("ascii")


def parallel_min_work():
    """The multiply-adds (m*n*k) from which a product takes threads on its own: this CPU's default
    or FASTNN_PAR_MIN_WORK (see src_c/fnn_gemm.h)."""
    return fnn_par_min_work()


cdef extern from "fnn_clock.h" nogil:
    double fnn_seconds()


# The compiled plans pick one thread or all allowed ones per call, by timing (src_c/fnn_adapt.h);
# set_adaptive_threads(False) makes them use the allowed count as every other kernel does.
cdef bint _adaptive = True


def set_adaptive_threads(bint enabled):
    """Whether the compiled plans choose between 1 and N threads by timing (default True)."""
    global _adaptive
    _adaptive = enabled


def adaptive_threads():
    """True when the compiled plans choose their thread count by timing."""
    return _adaptive


cdef inline int _use_threads(int use, int allowed) noexcept nogil:
    """Give the calling thread's next parallel regions `use` threads when it differs from
    `allowed`; returns OpenMP's count to restore afterwards (0: nothing changed)."""
    cdef int saved
    if use == allowed:
        return 0
    saved = fnn_raw_threads()
    fnn_set_threads(use)
    return saved


cdef inline void _restore_threads(int saved) noexcept nogil:
    if saved:
        fnn_set_threads(saved)


cdef inline int _adapt_begin(fnn_adapt *a, Py_ssize_t rows, int *allowed, int *saved) noexcept nogil:
    """Start an adaptive call: sets the threads; returns 1 when the call is to be recorded
    (fnn_adapt_end or fnn_adapt_cancel), 0 otherwise. `saved`: for _restore_threads."""
    cdef int use
    allowed[0] = fnn_max_threads()
    saved[0] = 0
    if not _adaptive or allowed[0] <= 1:
        return 0
    use = fnn_adapt_begin(a, allowed[0], rows)
    if use <= 0:                # busy (0) or a call not to record (minus its count)
        saved[0] = _use_threads(-use if use < 0 else fnn_adapt_fallback(a, allowed[0]),
                                allowed[0])
        return 0
    saved[0] = _use_threads(use, allowed[0])
    return 1


cdef class ThreadChooser:
    """The plans' thread choice (src_c/fnn_adapt.h) for work driven from Python, such as the
    per-layer path of a model: ``token = chooser.begin(rows)`` sets the calling thread's count
    for the call, ``chooser.end(token, ok)`` (in a ``finally``) records its time when ``ok``
    and restores the count. Safe to share between Python threads (the token carries the call's
    state; a call that finds the controller busy runs with the current choice, unrecorded)."""
    cdef fnn_adapt adapt

    def begin(self, Py_ssize_t rows):
        cdef int allowed, saved
        cdef bint record = _adapt_begin(&self.adapt, rows, &allowed, &saved)
        return (record, saved, fnn_seconds() if record else 0.0, rows)

    def end(self, tuple token, bint ok=True):
        cdef bint record = token[0]
        cdef int saved = token[1]
        cdef double started = token[2]
        cdef Py_ssize_t rows = token[3]
        if record:
            if ok:
                fnn_adapt_end(&self.adapt, fnn_seconds() - started, rows)
            else:
                fnn_adapt_cancel(&self.adapt)
        _restore_threads(saved)

    @property
    def threads(self):
        """(threads the calls run on now, or None while still measuring; times it switched)."""
        return _adapt_report(&self.adapt)

    def simulate(self, int allowed, Py_ssize_t rows, object seconds_for):
        """One call as the controller sees it, without running or timing anything: the
        thread count it picks for a call of `rows` rows when `allowed` are allowed, then
        `seconds_for(threads)` recorded as that call's time (for tests of the policy)."""
        cdef int use = fnn_adapt_begin(&self.adapt, allowed, rows)
        if use <= 0:
            return -use if use < 0 else fnn_adapt_fallback(&self.adapt, allowed)
        if allowed > 1:
            fnn_adapt_end(&self.adapt, float(seconds_for(use)), rows)
        return use


cdef object _adapt_report(fnn_adapt *a):
    """(threads of the current choice or None before it is made, switches so far)."""
    if a.n <= 1 or a.measuring > 0:
        return (None, a.switches)
    return (a.choice, a.switches)


include "_plan.pxi"
include "_train.pxi"
include "_infer.pxi"
