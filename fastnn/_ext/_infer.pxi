# A graph model's forward pass compiled into one call (included by _kernels.pyx, which owns _gemm).
#
# ForwardPlan (_plan.pxi) runs chains of Dense layers; InferPlan runs the chains people build
# next: convolutions (depthwise and separable too), pooling, recurrent layers, Transformer blocks, Dense over positions and
# activation layers (a LeNet, a digits CNN, an LSTM classifier, a small Transformer encoder). Flatten, Reshape and Dropout are views at inference
# and take no step. Per layer, the per-layer path costs microseconds of Python (buffers, reshapes,
# argument checks, memoryview acquisition) for microseconds of arithmetic on one sample; here
# every step is the very kernel call the layer's forward makes (the same routine, arguments and
# activation), with raw pointers to the weights (views into the model's flat parameter buffer,
# whose address never changes), so outputs are bitwise those of the per-layer path, which the
# tests hold it to.
#
# The steps are checked once, when the plan is made: every size and weight a kernel will trust.
# A call accepts only the exact fast form (a C-contiguous array of the model's dtype shaped
# (n, *input_shape), finite, 1 <= n <= INFER_MAX_ROWS and within INFER_MAX_BYTES of scratch) and
# answers None otherwise, so the caller falls back to the validating path with its messages.
# Scratch is per call (two alternating activation buffers, plus what a step needs: max pooling's
# indices, a recurrent layer's workspace, a Transformer block's buffers and its grouped q|k|v
# kernel), so threads may share a plan. A call takes the plan's spare block when it is free and
# large enough (and leaves its own there after), else allocates: the taking and the giving back
# happen while the call holds the GIL, so two threads never get the same block. Freeing a block
# of 64 KiB or more made glibc consolidate every small free chunk of the process (PyTorch's, in
# the benchmark) on each call: a few microseconds of a 1-image LeNet's 40.

from libc.math cimport sqrt
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc
from libc.string cimport memcpy

from fastnn._ext._norm_rows cimport BLOCK, _affine
from fastnn._ext._pool_rows cimport _max_row, _avg_row, _global_avg, _global_max
from fastnn._ext.attn cimport (fnn_attn_geom, fnn_attn_threads, fnn_attn_scratch,
                              fnn_attn_contiguous, fnn_attn_forward_f32, fnn_attn_forward_f64)
from fastnn._ext.conv cimport fnn_conv_geom, fnn_conv2d_forward_f32, fnn_conv2d_forward_f64
from fastnn._ext.dwconv cimport fnn_dw_geom, fnn_dwconv2d_forward_f32, fnn_dwconv2d_forward_f64
from fastnn._ext.norm cimport fnn_ln_rows_f32, fnn_ln_rows_f64
from fastnn._ext.rnn cimport (fnn_rnn_geom, fnn_rnn_sizes, fnn_rnn_forward_f32,
                              fnn_rnn_forward_f64)

cdef enum:
    INFER_MAX_ROWS = 64
    # step kinds (the names InferPlan takes are in INFER_KINDS)
    STEP_DENSE = 0
    STEP_ACT = 1
    STEP_CONV = 2
    STEP_MAXPOOL = 3
    STEP_AVGPOOL = 4
    STEP_GLOBAL_AVG = 5
    STEP_GLOBAL_MAX = 6
    STEP_RNN = 7
    STEP_BLOCK = 8
    STEP_LAYERNORM = 9
    STEP_BATCHNORM = 10
    STEP_DWCONV = 11

# Scratch of one call at most (bytes): larger batches of large images take the per-layer path,
# which computes in chunks of predict's batch_size.
cdef Py_ssize_t INFER_MAX_BYTES = 64 << 20
# the largest scratch block a plan keeps between calls
cdef Py_ssize_t INFER_SPARE_MAX = 4 << 20

INFER_KINDS = {"dense": STEP_DENSE, "activation": STEP_ACT, "conv2d": STEP_CONV,
               "maxpool2d": STEP_MAXPOOL, "avgpool2d": STEP_AVGPOOL,
               "global_avgpool": STEP_GLOBAL_AVG, "global_maxpool": STEP_GLOBAL_MAX,
               "rnn": STEP_RNN, "transformer_block": STEP_BLOCK, "layernorm": STEP_LAYERNORM,
               "batchnorm": STEP_BATCHNORM, "dwconv2d": STEP_DWCONV}

# the integer arguments of each kind, in order (what fastnn.models.inference passes)
INFER_ARGS = {
    "dense": ("positions", "fan_in", "units", "act"),
    "activation": ("positions", "width", "act"),
    "conv2d": ("h", "w", "c", "kh", "kw", "f", "sh", "sw", "dh", "dw", "pt", "pl", "oh", "ow",
               "act"),
    # weights: kernel (kh, kw, c, dm), bias (c * dm,); act: not softmax (a step of its own)
    "dwconv2d": ("h", "w", "c", "kh", "kw", "dm", "sh", "sw", "dh", "dw", "pt", "pl", "oh",
                 "ow", "act"),
    "maxpool2d": ("h", "w", "c", "oh", "ow", "ph", "pw", "sh", "sw", "top", "left"),
    "avgpool2d": ("h", "w", "c", "oh", "ow", "ph", "pw", "sh", "sw", "top", "left"),
    "global_avgpool": ("positions", "c"),
    "global_maxpool": ("positions", "c"),
    "rnn": ("cell", "steps", "features", "units", "act", "rec", "reverse", "seq"),
    # param: epsilon; weights: gamma, beta (batchnorm: then the moving mean and variance)
    "layernorm": ("positions", "c"),
    "batchnorm": ("positions", "c"),
    # weights: LN1 gamma, beta; Wq, bq, Wk, bk, Wv, bv, Wo, bo; LN2 gamma, beta; W1, b1, W2, b2
    # (param: the feed-forward activation's; eps: both normalisations')
    "transformer_block": ("steps", "width", "heads", "key_dim", "value_dim", "ff_dim",
                          "causal", "norm_first", "act"),
}

# block scratch per sample, in values: where each buffer starts (see _block_step)
cdef enum:
    BLK_H = 0       # the normalised input of a sublayer (L, c)
    BLK_STATS = 1   # its means and inverse deviations (2, L)
    BLK_P = 2       # the q|k|v projection (L, 2 H D + H Dv): the attention reads its heads there
    BLK_LSE = 3     # the attention's log-sum-exp (H, L)
    BLK_M = 4       # the attention's output, heads merged (L, H Dv)
    BLK_A = 5       # a sublayer's output (L, c)
    BLK_R = 6       # the residual stream after attention (L, c)
    BLK_F = 7       # the feed-forward's hidden layer (L, ff)
    BLK_END = 8

# the activation codes the recurrent kernels take (linear, sigmoid, tanh, relu)
cdef frozenset _RNN_ACTS = frozenset((FNN_ACT_LINEAR, FNN_ACT_SIGMOID, FNN_ACT_TANH, FNN_ACT_RELU))
cdef int _N_ACTS = FNN_ACT_END     # codes 0.._N_ACTS-1 but FNN_ACT_DERIV_GIVEN


ctypedef struct infer_step:
    int kind, act
    double param, eps
    Py_ssize_t in_w, out_w          # values per sample
    Py_ssize_t scratch              # bytes per sample of the step's own scratch
    Py_ssize_t shared               # bytes of scratch per call, whatever the batch
    Py_ssize_t rows, k, m           # dense, activation: rows per sample, inputs, outputs per row
    Py_ssize_t iv[16]               # pooling, block: the integer arguments as INFER_ARGS
    fnn_conv_geom conv              # n set per call
    fnn_dw_geom dw                  # n set per call
    fnn_rnn_geom rnn                # n set per call
    const void *w[16]               # the weights, in the order the kind takes them


cdef class InferPlan:
    """The forward pass of a chain of layers in one call (see the comment above).

    steps: list of (kind name, in_width, out_width, ints, param, weights) in execution order;
    ``ints`` as INFER_ARGS[kind]; ``weights`` a tuple of C-contiguous arrays of the plan's dtype
    (dense: W (fan_in, units) and bias (units,) or None; conv2d: kernel (kh, kw, c, f) and bias
    (f,); dwconv2d: kernel (kh, kw, c, dm) and bias (c * dm,); rnn: kernel (features, K), recurrent kernel (units, K), bias (K,) or GRU's (2, K));
    widths are values per sample. ValueError if anything does not fit."""
    cdef object _keep
    cdef tuple in_shape, out_shape
    cdef int n_steps, typenum
    cdef Py_ssize_t in_w, max_width, max_scratch, max_shared, itemsize
    cdef infer_step *steps
    cdef char *spare                    # a call's scratch kept for the next call, or NULL
    cdef Py_ssize_t spare_bytes
    cdef fnn_adapt adapt

    def __cinit__(self, list steps, tuple input_shape, tuple output_shape, object dtype):
        cdef Py_ssize_t i, prev
        self.steps = NULL
        self.spare = NULL
        self.spare_bytes = 0
        self.n_steps = len(steps)
        if self.n_steps < 1:
            raise ValueError("InferPlan: no steps")
        self.typenum = cnp.NPY_FLOAT32 if dtype == np.float32 else cnp.NPY_FLOAT64
        self.itemsize = 4 if self.typenum == cnp.NPY_FLOAT32 else 8
        if not 1 <= len(input_shape) <= 7 or not 1 <= len(output_shape) <= 7:
            raise ValueError("InferPlan: samples must have 1 to 7 axes")
        self.in_shape, self.out_shape = input_shape, output_shape
        self.in_w = _checked_width(input_shape)
        self.steps = <infer_step *>calloc(self.n_steps, sizeof(infer_step))
        if self.steps == NULL:
            raise MemoryError()
        self._keep = steps
        prev = self.in_w
        self.max_width = self.max_scratch = self.max_shared = 0
        for i in range(self.n_steps):
            self._set_step(i, steps[i], prev)
            prev = self.steps[i].out_w
            self.max_width = max(self.max_width, prev)
            self.max_scratch = max(self.max_scratch, self.steps[i].scratch)
            self.max_shared = max(self.max_shared, self.steps[i].shared)
        if prev != _checked_width(output_shape):
            raise ValueError(f"InferPlan: the last step gives {prev} values per sample, not "
                             f"the output shape {output_shape}")

    def __dealloc__(self):
        free(self.steps)
        free(self.spare)

    cdef _set_step(self, Py_ssize_t i, object spec, Py_ssize_t prev):
        cdef infer_step *st = &self.steps[i]
        cdef fnn_conv_geom *g
        cdef fnn_dw_geom *dg
        cdef fnn_rnn_geom *r
        cdef Py_ssize_t fwd, bwd, K
        kind, in_w, out_w, ints, param, weights = spec
        if kind not in INFER_KINDS or len(ints) != len(INFER_ARGS[kind]):
            raise ValueError(f"InferPlan: step {i}: unknown kind {kind!r} or wrong arguments")
        if any(type(v) is not int or v < 0 or v >= 2**31 for v in ints) or in_w != prev \
                or type(out_w) is not int or not 1 <= out_w < 2**40:
            raise ValueError(f"InferPlan: step {i} ({kind}) has inconsistent sizes")
        a = dict(zip(INFER_ARGS[kind], ints))
        st.kind = INFER_KINDS[kind]
        st.in_w, st.out_w, st.scratch = in_w, out_w, 0
        st.param = float(param[0] if st.kind == STEP_BLOCK else param)
        st.act = a.get("act", FNN_ACT_LINEAR)
        if not 0 <= st.act < _N_ACTS or st.act == FNN_ACT_DERIV_GIVEN:
            raise ValueError(f"InferPlan: step {i}: unknown activation code {st.act}")
        if st.kind == STEP_DENSE:
            st.rows, st.k, st.m = a["positions"], a["fan_in"], a["units"]
            self._need(i, in_w == st.rows * st.k and out_w == st.rows * st.m and st.k >= 1
                       and st.m >= 1)
            st.w[0] = self._weight(i, weights, 0, st.k * st.m)
            st.w[1] = self._weight(i, weights, 1, st.m, optional=True)
        elif st.kind == STEP_ACT:
            st.rows, st.m = a["positions"], a["width"]
            st.k = st.m
            self._need(i, in_w == st.rows * st.m and out_w == in_w and st.m >= 1)
        elif st.kind == STEP_CONV:
            g = &st.conv
            g.n = 0
            g.h, g.w, g.c, g.kh, g.kw, g.f = a["h"], a["w"], a["c"], a["kh"], a["kw"], a["f"]
            g.sh, g.sw, g.dh, g.dw, g.pt, g.pl = a["sh"], a["sw"], a["dh"], a["dw"], a["pt"], a["pl"]
            g.oh, g.ow = a["oh"], a["ow"]
            # (products in Python integers: no size can wrap around)
            self._need(i, min(g.h, g.w, g.c, g.kh, g.kw, g.f, g.sh, g.sw, g.dh, g.dw, g.oh,
                              g.ow) >= 1 and in_w == <object>g.h * g.w * g.c
                       and out_w == <object>g.oh * g.ow * g.f
                       and <object>g.kh * g.kw * g.c * g.f < 2**40)
            st.w[0] = self._weight(i, weights, 0, g.kh * g.kw * g.c * g.f)
            st.w[1] = self._weight(i, weights, 1, g.f)
        elif st.kind == STEP_DWCONV:
            dg = &st.dw
            dg.n = 0
            dg.h, dg.w, dg.c, dg.kh, dg.kw, dg.dm = (a["h"], a["w"], a["c"], a["kh"], a["kw"],
                                                     a["dm"])
            dg.sh, dg.sw, dg.dh, dg.dw = a["sh"], a["sw"], a["dh"], a["dw"]
            dg.pt, dg.pl, dg.oh, dg.ow = a["pt"], a["pl"], a["oh"], a["ow"]
            # the kernel skips every tap outside the input, so any padding and output size is
            # safe once the sizes agree (as _depthwise.pyx's checks)
            self._need(i, min(dg.h, dg.w, dg.c, dg.kh, dg.kw, dg.dm, dg.sh, dg.sw, dg.dh, dg.dw,
                              dg.oh, dg.ow) >= 1 and st.act != FNN_ACT_SOFTMAX
                       and in_w == <object>dg.h * dg.w * dg.c
                       and out_w == <object>dg.oh * dg.ow * dg.c * dg.dm
                       and <object>dg.c * dg.dm < 2**31
                       and <object>dg.h * dg.w * dg.c * dg.dm < 2**40)
            st.w[0] = self._weight(i, weights, 0, dg.kh * dg.kw * dg.c * dg.dm)
            st.w[1] = self._weight(i, weights, 1, dg.c * dg.dm)
        elif st.kind == STEP_MAXPOOL or st.kind == STEP_AVGPOOL:
            for j, name in enumerate(INFER_ARGS[kind]):
                st.iv[j] = a[name]
            h, w, c, oh, ow, ph, pw, sh, sw = (a["h"], a["w"], a["c"], a["oh"], a["ow"], a["ph"],
                                               a["pw"], a["sh"], a["sw"])
            self._need(i, min(h, w, c, oh, ow, ph, pw, sh, sw) >= 1 and in_w == h * w * c
                       and out_w == oh * ow * c)
            if st.kind == STEP_MAXPOOL:
                st.scratch = out_w * sizeof(int64_t)           # the indices, unused here
        elif st.kind == STEP_GLOBAL_AVG or st.kind == STEP_GLOBAL_MAX:
            st.rows, st.m = a["positions"], a["c"]
            self._need(i, st.rows >= 1 and st.m >= 1 and in_w == st.rows * st.m
                       and out_w == st.m)
            if st.kind == STEP_GLOBAL_MAX:
                st.scratch = out_w * sizeof(int64_t)
        elif st.kind == STEP_BLOCK:
            self._set_block(i, st, a, param, weights)
        elif st.kind == STEP_LAYERNORM or st.kind == STEP_BATCHNORM:
            st.rows, st.m = a["positions"], a["c"]
            st.eps = st.param
            self._need(i, st.rows >= 1 and st.m >= 1 and in_w == st.rows * st.m
                       and out_w == in_w and st.eps > 0)
            for j in range(2 if st.kind == STEP_LAYERNORM else 4):
                st.w[j] = self._weight(i, weights, j, st.m)
            if st.kind == STEP_LAYERNORM:
                st.scratch = 2 * st.rows * self.itemsize       # the means and deviations
            else:
                st.shared = st.m * self.itemsize              # the scales
        else:
            r = &st.rnn
            r.n = 0
            r.cell, r.T, r.d, r.u = a["cell"], a["steps"], a["features"], a["units"]
            r.act, r.rec, r.reverse, r.seq = a["act"], a["rec"], a["reverse"], a["seq"]
            r.mask, r.zero_masked = NULL, 0          # no masks on the plan (inference.py)
            self._need(i, r.cell <= 3 and min(r.T, r.d, r.u) >= 1 and r.reverse <= 1
                       and r.seq <= 1 and r.act in _RNN_ACTS and r.rec in _RNN_ACTS
                       and in_w == r.T * r.d and out_w == (r.T * r.u if r.seq else r.u)
                       and (<object>r.T + 1) * (r.d + 8 * <object>r.u + 8) * 8 * r.u < 2**40)
            K = (1, 4, 3, 3)[r.cell] * r.u
            fnn_rnn_sizes(r.cell, r.T, r.d, r.u, &fwd, &bwd)
            st.scratch = fwd * self.itemsize
            st.w[0] = self._weight(i, weights, 0, r.d * K)
            st.w[1] = self._weight(i, weights, 1, r.u * K)
            st.w[2] = self._weight(i, weights, 2, 2 * K if r.cell == 2 else K)

    cdef _set_block(self, Py_ssize_t i, infer_step *st, dict a, tuple param, tuple weights):
        cdef Py_ssize_t L = a["steps"], c = a["width"], H = a["heads"], D = a["key_dim"]
        cdef Py_ssize_t Dv = a["value_dim"], ff = a["ff_dim"], j, P3
        cdef fnn_attn_geom g
        self._need(i, min(L, c, H, D, Dv, ff) >= 1 and a["causal"] <= 1
                   and a["norm_first"] <= 1 and st.in_w == L * c and st.out_w == st.in_w
                   and len(param) == 2 and float(param[1]) > 0
                   and (<object>L) * (c + 2 * H * (D + Dv) + ff) < 2**31
                   and (<object>c) * (2 * H * D + H * Dv + ff) < 2**36)
        for j, name in enumerate(INFER_ARGS["transformer_block"]):
            st.iv[j] = a[name]
        st.eps = float(param[1])
        P3 = 2 * H * D + H * Dv
        for j, size in enumerate((c, c, c * H * D, H * D, c * H * D, H * D, c * H * Dv, H * Dv,
                                  H * Dv * c, c, c, c, c * ff, ff, ff * c, c)):
            st.w[j] = self._weight(i, weights, j, size)
        # values per sample: the buffers in BLK_* order
        sizes = (L * c, 2 * L, L * P3, H * L, L * H * Dv, L * c, L * c, L * ff)
        total = 0
        for j in range(len(sizes)):
            total += sizes[j]
        st.scratch = total * self.itemsize
        g.pairs, g.heads, g.lq, g.lk, g.d, g.dv = H, H, L, L, D, Dv
        g.causal, g.key_mask = a["causal"], NULL
        fnn_attn_contiguous(&g)
        # the q|k|v kernel and bias side by side (copied each call, as the layer does), then
        # the attention's scratch for as many threads as may run
        st.shared = (c * P3 + P3 + fnn_thread_limit() * fnn_attn_scratch(&g, 0)) * self.itemsize

    cdef _need(self, Py_ssize_t i, bint ok):
        if not ok:
            raise ValueError(f"InferPlan: step {i} has inconsistent sizes")

    cdef const void *_weight(self, Py_ssize_t i, tuple weights, Py_ssize_t j, Py_ssize_t size,
                             bint optional=False) except? NULL:
        cdef cnp.ndarray arr
        if j >= len(weights) or (weights[j] is None and not optional):
            raise ValueError(f"InferPlan: step {i} lacks weight {j}")
        if weights[j] is None:
            return NULL
        if type(weights[j]) is not np.ndarray:
            raise ValueError(f"InferPlan: step {i}: weight {j} is not an array")
        arr = <cnp.ndarray>weights[j]
        if (cnp.PyArray_TYPE(arr) != self.typenum or not cnp.PyArray_IS_C_CONTIGUOUS(arr)
                or not cnp.PyArray_ISNOTSWAPPED(arr) or cnp.PyArray_SIZE(arr) != size):
            raise ValueError(f"InferPlan: step {i}: weight {j} must be a C-contiguous array of "
                             f"{size} values of the plan's dtype")
        return cnp.PyArray_DATA(arr)

    @property
    def threads(self):
        """(threads the passes run on now, or None while still measuring; times it switched)."""
        return _adapt_report(&self.adapt)

    def predict(self, object X):
        """The outputs for X, shaped (n, *output_shape), or None when X is not the fast form
        (see the comment above); MemoryError when a kernel's scratch could not be allocated."""
        cdef unsigned int csr
        cdef cnp.ndarray x, out
        cdef Py_ssize_t n, i, buf_bytes
        cdef cnp.npy_intp dims[8]
        cdef char *scratch
        cdef Py_ssize_t scratch_bytes
        cdef int ok
        if type(X) is not np.ndarray:
            return None
        x = <cnp.ndarray>X
        if (cnp.PyArray_NDIM(x) != 1 + len(self.in_shape) or cnp.PyArray_TYPE(x) != self.typenum
                or not cnp.PyArray_IS_C_CONTIGUOUS(x) or not cnp.PyArray_ISNOTSWAPPED(x)):
            return None
        for i in range(len(self.in_shape)):
            if x.shape[i + 1] != self.in_shape[i]:
                return None
        n = x.shape[0]
        if n < 1 or n > INFER_MAX_ROWS:
            return None
        buf_bytes = (n * self.max_width * self.itemsize + 63) // 64 * 64
        if 2 * buf_bytes + n * self.max_scratch + self.max_shared > INFER_MAX_BYTES:
            return None
        dims[0] = n
        for i in range(len(self.out_shape)):
            dims[i + 1] = self.out_shape[i]
        out = cnp.PyArray_EMPTY(1 + len(self.out_shape), dims, self.typenum, 0)
        scratch_bytes = (2 * buf_bytes + (n * self.max_scratch + 63) // 64 * 64
                         + self.max_shared)
        # the spare block (see the comment above): taken under the GIL
        if self.spare != NULL and self.spare_bytes >= scratch_bytes:
            scratch, self.spare = self.spare, NULL
            scratch_bytes = self.spare_bytes
        else:
            scratch = <char *>malloc(scratch_bytes)
            if scratch == NULL:
                raise MemoryError()
        with nogil:
            if self.typenum == cnp.NPY_FLOAT32:
                ok = _infer_run(self, <float *>cnp.PyArray_DATA(x), n, scratch, buf_bytes,
                                (n * self.max_scratch + 63) // 64 * 64,
                                <float *>cnp.PyArray_DATA(out))
            else:
                ok = _infer_run(self, <double *>cnp.PyArray_DATA(x), n, scratch, buf_bytes,
                                (n * self.max_scratch + 63) // 64 * 64,
                                <double *>cnp.PyArray_DATA(out))
        # given back under the GIL; a block larger than INFER_SPARE_MAX is not kept
        if self.spare == NULL and scratch_bytes <= INFER_SPARE_MAX:
            self.spare, self.spare_bytes = scratch, scratch_bytes
        else:
            free(scratch)
        if ok < 0:
            raise MemoryError("InferPlan: a kernel could not allocate its scratch")
        return out if ok else None


cdef Py_ssize_t _checked_width(tuple shape) except -1:
    """Values per sample of a sample shape, each size >= 1 and the product < 2**40."""
    cdef object w = 1
    for s in shape:
        if type(s) is not int or s < 1:
            raise ValueError(f"InferPlan: bad sample shape {shape}")
        w *= s
    if w >= 2**40:
        raise ValueError(f"InferPlan: sample shape {shape} too large")
    return w


cdef int _infer_run(InferPlan plan, const floating *x, Py_ssize_t n, char *scratch,
                    Py_ssize_t buf_bytes, Py_ssize_t extra_bytes, floating *out) noexcept nogil:
    """_infer_body on the thread count the plan's controller picks (timed and recorded)."""
    cdef int allowed, saved, ok
    cdef double started = 0
    cdef bint record = _adapt_begin(&plan.adapt, n, &allowed, &saved)
    if record:
        started = fnn_seconds()
    ok = _infer_body(plan, x, n, scratch, buf_bytes, extra_bytes, out)
    if record:
        if ok > 0:
            fnn_adapt_end(&plan.adapt, fnn_seconds() - started, n)
        else:
            fnn_adapt_cancel(&plan.adapt)
    _restore_threads(saved)
    return ok


cdef int _infer_body(InferPlan plan, const floating *x, Py_ssize_t n, char *scratch,
                     Py_ssize_t buf_bytes, Py_ssize_t extra_bytes, floating *out) noexcept nogil:
    """Every step on n samples of x: 1, or 0 (nothing trusted) if x is not finite, or -1 if a
    kernel's scratch could not be allocated. Each step computes as the layer's forward does
    (the dense and activation entry points in flush-to-zero mode; the convolution and recurrent
    kernels set it themselves; pooling only compares, sums and scales, as its entry points)."""
    cdef Py_ssize_t i, s, r, rows
    cdef unsigned int csr
    cdef const floating *inp = x
    cdef floating *y
    cdef floating *bufs[2]
    cdef char *extra = scratch + 2 * buf_bytes
    cdef char *shared = extra + extra_bytes
    cdef infer_step *st
    cdef fnn_conv_geom g
    cdef fnn_dw_geom dg
    cdef fnn_rnn_geom rg
    cdef int ok
    bufs[0] = <floating *>scratch
    bufs[1] = <floating *>(scratch + buf_bytes)
    for i in range(n * plan.in_w):
        if not isfinite(x[i]):
            return 0
    for s in range(plan.n_steps):
        st = &plan.steps[s]
        y = out if s == plan.n_steps - 1 else bufs[s % 2]
        if st.kind == STEP_DENSE:
            csr = fnn_ftz_enter()
            _dense_forward_raw(inp, <const floating *>st.w[0], <const floating *>st.w[1],
                               n * st.rows, st.k, st.m, st.act, <floating>st.param, y)
            fnn_ftz_leave(csr)
        elif st.kind == STEP_ACT:
            csr = fnn_ftz_enter()
            _forward_rows(inp, y, n * st.rows, st.m, st.act, <floating>st.param)
            fnn_ftz_leave(csr)
        elif st.kind == STEP_CONV:
            g = st.conv
            g.n = n
            if floating is float:
                ok = fnn_conv2d_forward_f32(&g, inp, <const float *>st.w[0],
                                            <const float *>st.w[1], st.act, <float>st.param, y)
            else:
                ok = fnn_conv2d_forward_f64(&g, inp, <const double *>st.w[0],
                                            <const double *>st.w[1], st.act, st.param, y)
            if not ok:
                return -1
        elif st.kind == STEP_DWCONV:
            dg = st.dw
            dg.n = n
            if floating is float:
                ok = fnn_dwconv2d_forward_f32(&dg, inp, <const float *>st.w[0],
                                              <const float *>st.w[1], st.act, <float>st.param, y)
            else:
                ok = fnn_dwconv2d_forward_f64(&dg, inp, <const double *>st.w[0],
                                              <const double *>st.w[1], st.act, st.param, y)
            if not ok:
                return -1
        elif st.kind == STEP_MAXPOOL or st.kind == STEP_AVGPOOL:
            _pool_step(st, inp, n, y, <int64_t *>extra)
        elif st.kind == STEP_GLOBAL_AVG or st.kind == STEP_GLOBAL_MAX:
            for r in prange(n, schedule="static", num_threads=threads_for(n * st.in_w)):
                if st.kind == STEP_GLOBAL_AVG:
                    _global_avg(inp + r * st.in_w, st.rows, st.m, y + r * st.m)
                else:
                    _global_max(inp + r * st.in_w, st.rows, st.m, y + r * st.m,
                                <int64_t *>extra + r * st.m)
        elif st.kind == STEP_BLOCK:
            _block_step(st, inp, n, y, <floating *>extra, <floating *>shared)
        elif st.kind == STEP_LAYERNORM:
            _ln_rows(inp, n * st.rows, st.m, st.w[0], st.w[1], st.eps, y, <floating *>extra)
        elif st.kind == STEP_BATCHNORM:
            _bn_infer(st, inp, n * st.rows, y, <floating *>shared)
        else:
            rg = st.rnn
            rg.n = n
            if floating is float:
                ok = fnn_rnn_forward_f32(&rg, inp, <const float *>st.w[0], <const float *>st.w[1],
                                         <const float *>st.w[2], NULL, NULL, <float *>extra, y,
                                         NULL, NULL)
            else:
                ok = fnn_rnn_forward_f64(&rg, inp, <const double *>st.w[0],
                                         <const double *>st.w[1], <const double *>st.w[2], NULL,
                                         NULL, <double *>extra, y, NULL, NULL)
            if not ok:
                return -1
        inp = y
    return 1


cdef void _pool_step(infer_step *st, const floating *x, Py_ssize_t n, floating *y,
                     int64_t *argmax) noexcept nogil:
    """Max or average pooling of n images, by (image, output row) as the entry points."""
    cdef Py_ssize_t r
    cdef Py_ssize_t h = st.iv[0], w = st.iv[1], c = st.iv[2], oh = st.iv[3]
    cdef Py_ssize_t ow = st.iv[4], ph = st.iv[5], pw = st.iv[6], sh = st.iv[7]
    cdef Py_ssize_t sw = st.iv[8], top = st.iv[9], left = st.iv[10]
    cdef int nt = threads_for(n * oh * ow * c * ph * pw)
    if nt == 1:         # no parallel region: its start costs more than a small call's work
        for r in range(n * oh):
            _pool_row(st.kind, x, h, w, c, r, oh, ow, ph, pw, sh, sw, top, left, y, argmax)
    else:
        for r in prange(n * oh, schedule="static", num_threads=nt):
            _pool_row(st.kind, x, h, w, c, r, oh, ow, ph, pw, sh, sw, top, left, y, argmax)


cdef inline void _pool_row(int kind, const floating *x, Py_ssize_t h, Py_ssize_t w,
                           Py_ssize_t c, Py_ssize_t r, Py_ssize_t oh, Py_ssize_t ow,
                           Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t sh, Py_ssize_t sw,
                           Py_ssize_t top, Py_ssize_t left, floating *y,
                           int64_t *argmax) noexcept nogil:
    """Output row r (image r // oh, row r % oh) of max or average pooling."""
    if kind == STEP_MAXPOOL:
        _max_row(x + (r // oh) * h * w * c, h, w, c, r % oh, ow, ph, pw, sh, sw, top, left,
                 y + r * ow * c, argmax + r * ow * c)
    else:
        _avg_row(x + (r // oh) * h * w * c, h, w, c, r % oh, ow, ph, pw, sh, sw, top, left,
                 y + r * ow * c)


cdef void _ln_rows(const floating *x, Py_ssize_t rows, Py_ssize_t c, const void *gamma,
                   const void *beta, double eps, floating *out, floating *stats) noexcept nogil:
    """Layer normalization of rows (c,) as layernorm_forward: stats holds the means, then the
    inverse deviations."""
    cdef Py_ssize_t b, i, nb = (rows + 3) // 4
    for b in prange(nb, schedule="static", num_threads=threads_for(rows * c)):
        i = b * 4                   # four rows a task: fnn_ln_rows takes them four at a time
        if floating is float:
            fnn_ln_rows_f32(x + i * c, min(4, rows - i), c, <const float *>gamma,
                            <const float *>beta, eps, out + i * c, stats + i, stats + rows + i)
        else:
            fnn_ln_rows_f64(x + i * c, min(4, rows - i), c, <const double *>gamma,
                            <const double *>beta, eps, out + i * c, stats + i, stats + rows + i)


cdef void _add_into(const floating *a, const floating *b, floating *out,
                    Py_ssize_t size) noexcept nogil:
    """out := a + b, as add_forward."""
    cdef Py_ssize_t k
    for k in prange(size, schedule="static", num_threads=threads_for(2 * size)):
        out[k] = a[k] + b[k]


cdef void _dense_rows(const floating *x, const void *w, const void *b, Py_ssize_t rows,
                      Py_ssize_t k, Py_ssize_t m, int act, floating param,
                      floating *y) noexcept nogil:
    """y := act(x w + b), as dense_forward (in flush-to-zero mode)."""
    cdef unsigned int csr = fnn_ftz_enter()
    _dense_forward_raw(x, <const floating *>w, <const floating *>b, rows, k, m, act, param, y)
    fnn_ftz_leave(csr)


cdef void _attend(infer_step *st, const floating *x, Py_ssize_t n, floating *ws, floating *sh,
                  floating *out) noexcept nogil:
    """MultiHeadAttention's forward on x (n, L, c) into out (n, L, c), as the layer computes
    it: one product onto q|k|v side by side, attention reading the heads there and writing
    them merged, the output projection. ws: the block's buffers of n samples (BLK_* order, each
    n times its per-sample size)."""
    cdef Py_ssize_t L = st.iv[0], c = st.iv[1], H = st.iv[2], D = st.iv[3], Dv = st.iv[4]
    cdef Py_ssize_t P3 = 2 * H * D + H * Dv, rows = n * L, j
    cdef floating *wg = sh
    cdef floating *bg = sh + c * P3
    cdef floating *attn_scratch = bg + P3
    cdef floating *p = ws + _blk_offset(st, n, BLK_P)
    cdef floating *lse = ws + _blk_offset(st, n, BLK_LSE)
    cdef floating *merged = ws + _blk_offset(st, n, BLK_M)
    cdef fnn_attn_geom g
    cdef int nt
    cdef double scale = 1.0 / sqrt(<double>D)
    # the grouped kernel and bias: q's columns, then k's, then v's
    for j in range(c):
        memcpy(wg + j * P3, <const floating *>st.w[2] + j * H * D, H * D * sizeof(floating))
        memcpy(wg + j * P3 + H * D, <const floating *>st.w[4] + j * H * D,
               H * D * sizeof(floating))
        memcpy(wg + j * P3 + 2 * H * D, <const floating *>st.w[6] + j * H * Dv,
               H * Dv * sizeof(floating))
    memcpy(bg, st.w[3], H * D * sizeof(floating))
    memcpy(bg + H * D, st.w[5], H * D * sizeof(floating))
    memcpy(bg + 2 * H * D, st.w[7], H * Dv * sizeof(floating))
    _dense_rows(x, wg, bg, rows, c, P3, FNN_ACT_LINEAR, 0, p)
    # the heads read in place from the projection's rows (L, q|k|v), the output written in
    # place into the merged rows (L, H Dv): the layer's layouts, so the same bits
    g.pairs, g.heads, g.lq, g.lk, g.d, g.dv = n * H, H, L, L, D, Dv
    g.causal, g.key_mask = <int>st.iv[6], NULL
    fnn_attn_contiguous(&g)
    g.q.bs, g.q.hs, g.q.rs = L * P3, D, P3
    g.k = g.q
    g.v.bs, g.v.hs, g.v.rs = L * P3, Dv, P3
    g.out.bs, g.out.hs, g.out.rs = L * H * Dv, Dv, H * Dv
    nt = fnn_attn_threads(&g, 0)
    if floating is float:
        fnn_attn_forward_f32(&g, <float>scale, p, p + H * D, p + 2 * H * D, merged, lse,
                             attn_scratch, nt)
    else:
        fnn_attn_forward_f64(&g, scale, p, p + H * D, p + 2 * H * D, merged, lse,
                             attn_scratch, nt)
    _dense_rows(merged, st.w[8], st.w[9], rows, H * Dv, c, FNN_ACT_LINEAR, 0, out)


cdef inline Py_ssize_t _blk_offset(infer_step *st, Py_ssize_t n, int which) noexcept nogil:
    """Where buffer `which` (BLK_*) of n samples starts in a block's scratch."""
    cdef Py_ssize_t L = st.iv[0], c = st.iv[1], H = st.iv[2], D = st.iv[3], Dv = st.iv[4]
    cdef Py_ssize_t ff = st.iv[5], P3 = 2 * H * D + H * Dv
    cdef Py_ssize_t sizes[BLK_END]
    cdef Py_ssize_t off = 0
    cdef int j
    sizes[BLK_H], sizes[BLK_STATS], sizes[BLK_P] = L * c, 2 * L, L * P3
    sizes[BLK_LSE], sizes[BLK_M] = H * L, L * H * Dv
    sizes[BLK_A], sizes[BLK_R], sizes[BLK_F] = L * c, L * c, L * ff
    for j in range(which):
        off += n * sizes[j]
    return off


cdef void _block_step(infer_step *st, const floating *x, Py_ssize_t n, floating *y,
                      floating *ws, floating *sh) noexcept nogil:
    """TransformerBlock's forward at inference (no dropout) on x (n, L, c) into y, as the layer
    computes it. Pre-norm: r = x + MHA(LN1(x)), y = r + FF(LN2(r)); post-norm:
    r = LN1(x + MHA(x)), y = LN2(r + FF(r)); FF(h) = W2 act(W1 h + b1) + b2."""
    cdef Py_ssize_t L = st.iv[0], c = st.iv[1], ff = st.iv[5], rows = n * L
    cdef floating *h = ws + _blk_offset(st, n, BLK_H)
    cdef floating *stats = ws + _blk_offset(st, n, BLK_STATS)
    cdef floating *a = ws + _blk_offset(st, n, BLK_A)
    cdef floating *r = ws + _blk_offset(st, n, BLK_R)
    cdef floating *f = ws + _blk_offset(st, n, BLK_F)
    if st.iv[7]:                                             # pre-norm
        _ln_rows(x, rows, c, st.w[0], st.w[1], st.eps, h, stats)
        _attend(st, h, n, ws, sh, a)
        _add_into(x, a, r, rows * c)
        _ln_rows(r, rows, c, st.w[10], st.w[11], st.eps, h, stats)
        _dense_rows(h, st.w[12], st.w[13], rows, c, ff, <int>st.iv[8], <floating>st.param, f)
        _dense_rows(f, st.w[14], st.w[15], rows, ff, c, FNN_ACT_LINEAR, 0, a)
        _add_into(r, a, y, rows * c)
    else:
        _attend(st, x, n, ws, sh, a)
        _add_into(x, a, h, rows * c)
        _ln_rows(h, rows, c, st.w[0], st.w[1], st.eps, r, stats)
        _dense_rows(r, st.w[12], st.w[13], rows, c, ff, <int>st.iv[8], <floating>st.param, f)
        _dense_rows(f, st.w[14], st.w[15], rows, ff, c, FNN_ACT_LINEAR, 0, a)
        _add_into(r, a, h, rows * c)
        _ln_rows(h, rows, c, st.w[10], st.w[11], st.eps, y, stats)


cdef void _bn_infer(infer_step *st, const floating *x, Py_ssize_t rows, floating *y,
                    floating *scale) noexcept nogil:
    """Batch normalization with the moving statistics, as batchnorm_forward_infer."""
    cdef Py_ssize_t c = st.m, nb = (c + BLOCK - 1) // BLOCK, b, j
    cdef const floating *gamma = <const floating *>st.w[0]
    cdef const floating *beta = <const floating *>st.w[1]
    cdef const floating *mean = <const floating *>st.w[2]
    cdef const floating *var = <const floating *>st.w[3]
    for j in range(c):
        scale[j] = <floating>(1.0 / sqrt(<double>var[j] + st.eps))
    for b in prange(nb, schedule="static", num_threads=threads_for(rows * c)):
        _affine(x, rows, c, b * BLOCK, min(c, (b + 1) * BLOCK), mean, scale, gamma, beta, y)
