# A model's forward pass compiled into one call (included by _kernels.pyx, which owns _gemm).
#
# Single-sample and small-batch inference is dominated by per-call overhead: argument checks,
# memoryview acquisition and a Python loop over the layers cost microseconds, the arithmetic only
# nanoseconds. ForwardPlan holds raw pointers to each layer's W and b (views into the model's flat
# parameter buffer, whose address never changes) and runs every layer in one nogil call, with the
# very same _gemm/_forward_rows calls as dense_forward, so results are bitwise identical to the
# general path. It accepts only the exact fast form (a C-contiguous 2-D array of the model's dtype,
# finite, at most PLAN_MAX_ROWS rows) and answers None otherwise, so the caller falls back to the
# validating path with its error messages. Scratch is per call, so threads may share a plan.

import numpy as np
cimport numpy as cnp
from libc.stdlib cimport malloc, free
from libc.math cimport isfinite

cnp.import_array()

cdef enum:
    PLAN_MAX_ROWS = 64


cdef class ForwardPlan:
    """steps: list of (W or None, b or None, act, param, width) in execution order."""
    cdef object _keep                 # the arrays, kept alive while the pointers are used
    cdef int n_steps, typenum
    cdef Py_ssize_t in_dim, max_width
    cdef double widest          # the largest fan_in * width of a dense step (_pass_par_min)
    cdef void **W
    cdef void **b
    cdef int *act
    cdef double *param
    cdef Py_ssize_t *width
    cdef fnn_adapt adapt        # one thread or all: see src_c/fnn_adapt.h

    def __cinit__(self, list steps, Py_ssize_t input_dim, object dtype):
        cdef Py_ssize_t i, prev = input_dim
        cdef cnp.ndarray w, bias
        self.n_steps = len(steps)
        self.in_dim = input_dim
        self.typenum = cnp.NPY_FLOAT32 if dtype == np.float32 else cnp.NPY_FLOAT64
        self.W = <void **>malloc(self.n_steps * sizeof(void *))
        self.b = <void **>malloc(self.n_steps * sizeof(void *))
        self.act = <int *>malloc(self.n_steps * sizeof(int))
        self.param = <double *>malloc(self.n_steps * sizeof(double))
        self.width = <Py_ssize_t *>malloc(self.n_steps * sizeof(Py_ssize_t))
        if not (self.W and self.b and self.act and self.param and self.width):
            raise MemoryError()
        self._keep = steps
        self.max_width = 0
        for i, (w_obj, b_obj, act, param, width) in enumerate(steps):
            self.W[i] = self.b[i] = NULL
            if w_obj is not None:
                w, bias = w_obj, b_obj
                if (cnp.PyArray_TYPE(w) != self.typenum or cnp.PyArray_TYPE(bias) != self.typenum
                        or not cnp.PyArray_IS_C_CONTIGUOUS(w) or not cnp.PyArray_IS_C_CONTIGUOUS(bias)
                        or w.shape[0] != prev or w.shape[1] != width or bias.shape[0] != width):
                    raise ValueError(f"ForwardPlan: step {i} has inconsistent weights")
                self.W[i] = cnp.PyArray_DATA(w)
                self.b[i] = cnp.PyArray_DATA(bias)
                self.widest = max(self.widest, <double>prev * width)
            elif width != prev:
                raise ValueError(f"ForwardPlan: activation step {i} changes the width")
            if act < 0 or act >= FNN_ACT_END or act == FNN_ACT_DERIV_GIVEN:
                raise ValueError(f"ForwardPlan: step {i}: unknown activation code {act}")
            self.act[i] = act
            self.param[i] = param
            self.width[i] = width
            self.max_width = max(self.max_width, width)
            prev = width

    def __dealloc__(self):
        free(self.W)
        free(self.b)
        free(self.act)
        free(self.param)
        free(self.width)

    @property
    def threads(self):
        """(threads the passes run on now, or None while still measuring; times it switched)."""
        return _adapt_report(&self.adapt)

    def predict(self, object X):
        """The model's output for X, or None when X is not a small, finite, C-contiguous 2-D
        array of the plan's dtype (the caller then takes the validating path)."""
        cdef unsigned int csr
        cdef cnp.ndarray x, out
        cdef Py_ssize_t n
        cdef cnp.npy_intp dims[2]
        cdef void *scratch
        cdef bint ok
        if type(X) is not np.ndarray:
            return None
        x = <cnp.ndarray>X
        if (cnp.PyArray_NDIM(x) != 2 or cnp.PyArray_TYPE(x) != self.typenum
                or not cnp.PyArray_IS_C_CONTIGUOUS(x) or not cnp.PyArray_ISNOTSWAPPED(x)
                or x.shape[1] != self.in_dim):
            return None
        n = x.shape[0]
        if n < 1 or n > PLAN_MAX_ROWS:
            return None
        dims[0] = n
        dims[1] = self.width[self.n_steps - 1]
        out = cnp.PyArray_EMPTY(2, dims, self.typenum, 0)
        scratch = malloc(2 * n * self.max_width * (4 if self.typenum == cnp.NPY_FLOAT32 else 8))
        if scratch == NULL:
            raise MemoryError()
        with nogil:
            csr = fnn_ftz_enter()       # see src_c/fnn_ftz.h
            if self.typenum == cnp.NPY_FLOAT32:
                ok = _plan_run(self, <float *>cnp.PyArray_DATA(x), n, <float *>scratch,
                               <float *>cnp.PyArray_DATA(out))
            else:
                ok = _plan_run(self, <double *>cnp.PyArray_DATA(x), n, <double *>scratch,
                               <double *>cnp.PyArray_DATA(out))
            fnn_ftz_leave(csr)
        free(scratch)
        return out if ok else None


cdef bint _plan_run(ForwardPlan plan, const floating *x, Py_ssize_t n, floating *scratch,
                    floating *out) noexcept nogil:
    """_plan_body on the thread count the plan's controller picks (timed and recorded)."""
    cdef int allowed, saved
    cdef double started = 0
    cdef bint ok, record = _adapt_begin(&plan.adapt, n, &allowed, &saved)
    if record:
        started = fnn_seconds()
    ok = _plan_body(plan, x, n, scratch, out)
    if record:
        if ok:
            fnn_adapt_end(&plan.adapt, fnn_seconds() - started, n)
        else:
            fnn_adapt_cancel(&plan.adapt)
    _restore_threads(saved)
    return ok


cdef bint _plan_body(ForwardPlan plan, const floating *x, Py_ssize_t n, floating *scratch,
                     floating *out) noexcept nogil:
    """Every step of the plan on n rows of x; False (nothing trusted) if x is not finite."""
    cdef Py_ssize_t i, m, k = plan.in_dim
    cdef int s, act
    cdef const floating *inp = x
    cdef floating *y
    cdef double par_min = _pass_par_min(n, plan.widest)
    for i in range(n * k):
        if not isfinite(x[i]):
            return False
    for s in range(plan.n_steps):
        m = plan.width[s]
        act = plan.act[s]
        if s == plan.n_steps - 1:
            y = out
        else:
            y = scratch + (s % 2) * n * plan.max_width
        if plan.W[s] != NULL:
            _dense_forward_raw(inp, <const floating *>plan.W[s], <const floating *>plan.b[s],
                               n, k, m, act, <floating>plan.param[s], y, par_min)
        else:
            _forward_rows(inp, y, n, m, act, <floating>plan.param[s])
        inp = y
        k = m
    return True
