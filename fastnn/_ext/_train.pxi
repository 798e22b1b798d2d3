# A whole training step compiled into one call (included by _kernels.pyx).
#
# For the small networks and batches fastnn is built for, a step done as one kernel call per layer
# spends more time in Python (argument checks, memoryview acquisition, the layer loop, the loss and
# optimizer calls, the overflow screen) than in arithmetic. TrainPlan holds raw pointers to
# everything a step touches -- each layer's W, b, dW, db (views into the model's flat parameter and
# gradient buffers), the workspace's activation and gradient buffers, the optimizer's state -- and
# runs forward, loss, backward, the gradient screen and the update in one nogil call.
#
# It calls the very same routines as the per-kernel path (_dense_forward_raw, _loss_sum,
# _dense_backward_raw, _sgd/_adam), in the same order, so both paths give bitwise-identical
# results. Like ForwardPlan it takes only the exact fast form of its inputs and answers None
# otherwise, before touching anything, so the caller can take the validating path:
#   x: a C-contiguous 2-D ndarray of the plan's dtype, 1..capacity rows, input_dim columns
#      (and finite, checked here when `check` is true);
#   t: either the dense targets the loss reads (a C-contiguous (n, C) array of the dtype, already
#      validated by the caller, so refused when `check` is true), or, for cross-entropy over C > 1 classes, integer class labels
#      (a 1-D int64/intp array of n values in [0, C), checked here) turned into one-hot rows in a
#      buffer the plan owns.
# After a call, `status` says what happened:
#   0  the parameters were updated;
#   1  the loss is not finite: nothing was updated (the caller raises);
#   2  the gradients are in the gradient buffer but the update was NOT applied, because a
#      gradient is not finite or large enough that the update could overflow, or because the
#      optimizer asks for the exact check (Optimizer.verify_next_step: the weights or the state
#      came from a file or set_weights): the caller runs its exact check
#      (fastnn.optimizers.check_update), which raises or applies the update.

from libc.stdlib cimport calloc
from libc.stdint cimport int64_t
from libc.string cimport memcpy

from libc.float cimport FLT_EPSILON, DBL_EPSILON

from fastnn._ext._elementwise cimport f_log
from fastnn._ext._loss_core cimport _loss_sum_weighted, CE_LOGITS, CE_SOFTMAX
from fastnn._ext._optim_core cimport _sgd, _adam, _clip_grads

cdef enum:
    OPT_SGD = 0                 # Optimizer.FUSED_SGD
    OPT_ADAM = 1                # Optimizer.FUSED_ADAM
    TRAIN_UPDATED = 0
    TRAIN_LOSS_NOT_FINITE = 1
    TRAIN_NEEDS_CHECK = 2


cdef class TrainPlan:
    """steps: list of (W, b, dW, db, act, param, width) in execution order (W ... db None for an
    activation-only step); Y, G: the workspace's output and gradient arrays, one per step;
    params, grads: the flat buffers; state: the optimizer's flat state arrays (velocity, or m and
    v); onehot: a (capacity, C) array for label targets; screen: |g| (and lr |g|, weight decay)
    below which no update can overflow the dtype; clip_out: the optimizer's buffer for clipped
    gradients (None while it clips nothing) and bounds: int64 (K + 1,), the weight tensors of
    the flat gradient (each Dense layer's W, then b), for clipnorm (see _optim_core._clip_grads:
    the same routine as the per-kernel route's clip_gradients, so the same bits)."""
    cdef object _keep
    cdef object _optimizer      # the optimizer object the plan was built for (or None)
    cdef tuple _state
    cdef int n_steps, typenum, kind, fused, opt
    cdef Py_ssize_t in_dim, out_dim, capacity, n_params
    cdef double widest          # the largest fan_in * width of a dense step (_pass_par_min)
    cdef double screen
    cdef double loss_param      # Huber's delta (1 for the others)
    cdef void **W
    cdef void **b
    cdef void **dW
    cdef void **db
    cdef void **Y
    cdef void **G
    cdef int *act
    cdef double *param
    cdef Py_ssize_t *width
    cdef void *params
    cdef void *grads
    cdef void *state1
    cdef void *state2
    cdef void *onehot
    cdef cnp.npy_int64 *labels  # the batch's class labels, copied before they are checked
    cdef cnp.npy_int64 *counter  # the optimizer's step count (from its fused_rule())
    cdef bint verify            # the optimizer's verify flag, as of the last _read_hyper
    cdef object _clip_out       # the optimizer's clip buffer the plan was built with (or None)
    cdef void *clip_out
    cdef cnp.npy_int64 *bounds  # the weight tensors' bounds in the flat gradient
    cdef Py_ssize_t n_bounds    # number of tensors (bounds has n_bounds + 1 entries)
    # clipnorm, clipvalue, global_clipnorm as of the last _read_hyper (0: off)
    cdef double clipnorm, clipvalue, global_clipnorm
    cdef fnn_adapt adapt        # one thread or all: see src_c/fnn_adapt.h
    cdef readonly int status
    cdef readonly double max_grad
    # run_epoch returns to Python after about this many multiply-adds (~20-50 ms on one core)
    # or this many seconds, whichever comes first, so that Ctrl-C and other signals are seen
    # during long epochs (results do not depend on it)
    cdef public double chunk_work
    cdef public double chunk_seconds

    def __cinit__(self, list steps, Py_ssize_t input_dim, object dtype, int loss_kind,
                  bint fused, list Y, list G, cnp.ndarray params, cnp.ndarray grads, int opt,
                  tuple state, cnp.ndarray onehot, double screen, cnp.ndarray counter,
                  object optimizer=None, double loss_param=1.0, object clip_out=None,
                  object bounds=None):
        cdef Py_ssize_t i, prev = input_dim, rows
        cdef int s, n = len(steps)
        self.n_steps = n
        self.in_dim = input_dim
        self.typenum = cnp.NPY_FLOAT32 if dtype == np.float32 else cnp.NPY_FLOAT64
        self.kind = loss_kind
        self.loss_param = loss_param
        self.fused = fused
        self.opt = opt
        self.screen = screen
        self.status = TRAIN_UPDATED
        self.max_grad = 0
        self.chunk_work = 3e9
        self.chunk_seconds = 0.05   # a slow machine or build (sanitizers) reaches this first
        self._keep = (steps, Y, G, params, grads, state, onehot, counter)
        self._optimizer = optimizer
        self._state = state + (counter,)
        self.W = <void **>calloc(n, sizeof(void *))
        self.b = <void **>calloc(n, sizeof(void *))
        self.dW = <void **>calloc(n, sizeof(void *))
        self.db = <void **>calloc(n, sizeof(void *))
        self.Y = <void **>calloc(n, sizeof(void *))
        self.G = <void **>calloc(n, sizeof(void *))
        self.act = <int *>calloc(n, sizeof(int))
        self.param = <double *>calloc(n, sizeof(double))
        self.width = <Py_ssize_t *>calloc(n, sizeof(Py_ssize_t))
        if not (self.W and self.b and self.dW and self.db and self.Y and self.G and self.act
                and self.param and self.width):
            raise MemoryError()
        if n < 1 or len(Y) != n or len(G) != n:
            raise ValueError("TrainPlan: one Y and one G buffer per step are required")
        rows = (<cnp.ndarray>Y[0]).shape[0]
        self.labels = <cnp.npy_int64 *>calloc(max(rows, 1), sizeof(cnp.npy_int64))
        if not self.labels:
            raise MemoryError()
        self.capacity = rows
        counted = 0
        for s in range(n):
            w_obj, b_obj, dw_obj, db_obj, act, param, width = steps[s]
            if w_obj is not None:
                self.W[s] = _plan_data(w_obj, self.typenum, (prev, width), "W")
                self.b[s] = _plan_data(b_obj, self.typenum, (width,), "b")
                self.dW[s] = _plan_data(dw_obj, self.typenum, (prev, width), "dW")
                self.db[s] = _plan_data(db_obj, self.typenum, (width,), "db")
                counted += (prev + 1) * width
                self.widest = max(self.widest, <double>prev * width)
            elif width != prev:
                raise ValueError(f"TrainPlan: activation step {s} changes the width")
            if act == FNN_ACT_GELU or act == FNN_ACT_GELU_TANH or act == FNN_ACT_SILU:
                # its backward needs the pre-activation, which the plan does not keep
                # (fastnn.models.fastpath.eligible sends such models down the general path)
                raise ValueError(f"TrainPlan: step {s}: gelu and silu are not supported "
                                 f"(activation code {act})")
            if act < 0 or act >= FNN_ACT_END or act == FNN_ACT_DERIV_GIVEN:
                raise ValueError(f"TrainPlan: step {s}: unknown activation code {act}")
            self.Y[s] = _plan_data(Y[s], self.typenum, (rows, width), "Y")
            self.G[s] = _plan_data(G[s], self.typenum, (rows, width), "G")
            self.act[s] = act
            self.param[s] = param
            self.width[s] = width
            prev = width
        self.out_dim = prev
        self.n_params = params.shape[0]
        if counted != self.n_params:
            # the gradient screen is gathered from each layer's dW and db as they are written
            raise ValueError("TrainPlan: the layers' dW and db must make up the whole gradient")
        self.params = _plan_data(params, self.typenum, (self.n_params,), "params")
        self.grads = _plan_data(grads, self.typenum, (self.n_params,), "grads")
        if opt == OPT_SGD and len(state) == 1:
            self.state1 = _plan_data(state[0], self.typenum, (self.n_params,), "velocity")
        elif opt == OPT_ADAM and len(state) == 2:
            self.state1 = _plan_data(state[0], self.typenum, (self.n_params,), "m")
            self.state2 = _plan_data(state[1], self.typenum, (self.n_params,), "v")
        else:
            raise ValueError("TrainPlan: unknown optimizer or state")
        self.onehot = _plan_data(onehot, self.typenum, (rows, self.out_dim), "onehot")
        self.counter = <cnp.npy_int64 *>_plan_data(counter, cnp.NPY_INT64, (1,), "counter")
        if bounds is None:
            bounds = np.array([0, self.n_params], dtype=np.int64)
        if (type(bounds) is not np.ndarray or bounds.ndim != 1 or bounds.shape[0] < 2
                or bounds[0] != 0 or bounds[-1] != self.n_params
                or (np.diff(bounds) < 0).any()):
            raise ValueError("TrainPlan: bounds must rise from 0 to the number of parameters")
        self.n_bounds = bounds.shape[0] - 1
        self.bounds = <cnp.npy_int64 *>_plan_data(bounds, cnp.NPY_INT64, (self.n_bounds + 1,),
                                                 "bounds")
        self._clip_out = clip_out
        if clip_out is not None:
            self.clip_out = _plan_data(clip_out, self.typenum, (self.n_params,), "clip_out")
        self._keep = self._keep + (bounds, clip_out)

    def __dealloc__(self):
        free(self.W)
        free(self.b)
        free(self.dW)
        free(self.db)
        free(self.Y)
        free(self.G)
        free(self.act)
        free(self.param)
        free(self.width)
        free(self.labels)

    @property
    def capacity(self):
        """The largest batch the plan's buffers hold."""
        return self.capacity

    def step(self, object X, object T, bint check, double lr, double h1, double h2, double h3,
             double weight_decay):
        """One training step on (X, T); the mean loss, or None when X or T is not in the fast
        form (nothing is touched then). Hyper-parameters: SGD h1 = momentum, h2 = nesterov;
        Adam h1, h2, h3 = beta1, beta2, eps. The step number t is the optimizer's count + 1;
        an update advances the count in the same call (a KeyboardInterrupt, which Python sees
        only after the call, cannot separate the weights from their count)."""
        return self._step(X, T, check, lr, h1, h2, h3, weight_decay)

    def train_batch(self, object optimizer, object X, object T):
        """Sequential.train_on_batch's step in one call: `step` on validated-here (X, T) with
        the hyper-parameters read from `optimizer` (see `hyper`). None (nothing touched) when
        `hyper` is None, or X or T is not in the fast form."""
        cdef double h[5]
        if not self._read_hyper(optimizer, h):
            return None
        return self._step(X, T, True, h[0], h[1], h[2], h[3], h[4])

    @property
    def threads(self):
        """(threads the steps run on now, or None while still measuring; times it switched)."""
        return _adapt_report(&self.adapt)

    def hyper(self, object optimizer):
        """(lr, h1, h2, h3, weight decay) for `step` and `run_epoch`, read from `optimizer`; or
        None when it is not the optimizer the plan was built with or its state buffers were
        replaced (the plan holds the buffers it was built with)."""
        cdef double h[5]
        if not self._read_hyper(optimizer, h):
            return None
        return (h[0], h[1], h[2], h[3], h[4])

    cdef bint _read_hyper(self, object optimizer, double *h) except -1:
        """h := lr, h1, h2, h3, weight decay, from `optimizer.fused_hyperparameters()`; False
        when it is not the plan's optimizer or its state buffers are not the ones the plan
        was built on (see `hyper`)."""
        cdef tuple hp, buffers
        cdef Py_ssize_t i
        if optimizer is not self._optimizer:
            return False
        hp = optimizer.fused_hyperparameters()
        buffers = hp[0]
        if len(buffers) != len(self._state) - 1:
            return False
        for i in range(len(buffers)):
            if buffers[i] is not self._state[i]:
                return False
        h[0] = hp[1]
        h[1] = hp[2]
        h[2] = hp[3]
        h[3] = hp[4]
        h[4] = hp[5]
        self.verify = hp[6]
        # clipping (hp[7]: the clip buffer, hp[8:11]: the settings, 0 when off): the plan
        # clips only into the buffer it was built with
        self.clipnorm, self.clipvalue, self.global_clipnorm = hp[8], hp[9], hp[10]
        if (self.clipnorm > 0 or self.clipvalue > 0 or self.global_clipnorm > 0) and (
                hp[7] is None or hp[7] is not self._clip_out):
            return False
        return True

    cdef object _step(self, object X, object T, bint check, double lr, double h1, double h2,
                      double h3, double weight_decay):
        cdef unsigned int csr
        cdef cnp.ndarray x, t
        cdef Py_ssize_t n, c
        cdef int code
        cdef const cnp.npy_int64 *labels = NULL
        cdef const void *targets
        cdef double value
        if type(X) is not np.ndarray or type(T) is not np.ndarray:
            return None
        x = <cnp.ndarray>X
        t = <cnp.ndarray>T
        if (cnp.PyArray_NDIM(x) != 2 or cnp.PyArray_TYPE(x) != self.typenum
                or not cnp.PyArray_IS_C_CONTIGUOUS(x) or not cnp.PyArray_ISNOTSWAPPED(x)
                or x.shape[1] != self.in_dim
                or not cnp.PyArray_ISNOTSWAPPED(t)):
            return None
        n = x.shape[0]
        if n < 1 or n > self.capacity:
            return None
        c = self.out_dim
        if cnp.PyArray_NDIM(t) == 2:
            if check:                # dense targets are validated by the caller (loss.targets)
                return None
            if (cnp.PyArray_TYPE(t) != self.typenum or not cnp.PyArray_IS_C_CONTIGUOUS(t)
                    or t.shape[0] != n or t.shape[1] != c):
                return None
            targets = cnp.PyArray_DATA(t)
        elif cnp.PyArray_NDIM(t) == 1:
            if (self.kind < CE_LOGITS or c < 2 or cnp.PyArray_TYPE(t) != cnp.NPY_INT64
                    or not cnp.PyArray_IS_C_CONTIGUOUS(t) or t.shape[0] != n):
                return None
            labels = <const cnp.npy_int64 *>cnp.PyArray_DATA(t)
            targets = self.onehot
        else:
            return None
        with nogil:
            csr = fnn_ftz_enter()       # see src_c/fnn_ftz.h
            if self.typenum == cnp.NPY_FLOAT32:
                code = _train_run(self, <const float *>cnp.PyArray_DATA(x), n,
                                  <const float *>targets, labels, check, lr, h1, h2, h3,
                                  weight_decay, &value)
            else:
                code = _train_run(self, <const double *>cnp.PyArray_DATA(x), n,
                                  <const double *>targets, labels, check, lr, h1, h2, h3,
                                  weight_decay, &value)
            fnn_ftz_leave(csr)
        if code < 0:
            return None
        self.status = code
        return value

    def run_epoch(self, object X, object T, Py_ssize_t batch, Py_ssize_t first, double total,
                  double lr, double h1, double h2, double h3, double weight_decay):
        """Training steps on the batches first, first + 1, ... of (X, T) -- rows
        [b * batch, (b + 1) * batch) of already validated, C-contiguous arrays of the plan's dtype,
        T dense (n, C) -- in one call, until the data ends, a step does not update, or about
        `chunk_work` multiply-adds have been done or `chunk_seconds` have passed (then status 0
        with batches left: call again).

        Returns (count, status, total, value), or None when X or T is not in this form or batch
        exceeds the capacity (nothing is touched then): count batches were run, the last with
        `status` (0 unless it stopped early, see the module comment) and loss `value`; `total`
        is the given total plus loss * rows of each batch that updated, in batch order. Each
        update advances the optimizer's step count (as `step` does).
        This is what fit does for an epoch without callbacks, metrics or progress output: the
        same steps as one `step` call per batch, without the Python between them."""
        cdef unsigned int csr
        cdef cnp.ndarray x, t
        cdef Py_ssize_t n, b, nb, r0, rows, count = 0
        cdef int code = TRAIN_UPDATED
        cdef double value = 0, work = 0, started
        cdef double step_work = 3.0 * <double>self.n_params   # per row: forward + backward
        if type(X) is not np.ndarray or type(T) is not np.ndarray:
            return None
        x = <cnp.ndarray>X
        t = <cnp.ndarray>T
        if (cnp.PyArray_NDIM(x) != 2 or cnp.PyArray_TYPE(x) != self.typenum
                or not cnp.PyArray_IS_C_CONTIGUOUS(x) or not cnp.PyArray_ISNOTSWAPPED(x)
                or x.shape[1] != self.in_dim or cnp.PyArray_NDIM(t) != 2
                or cnp.PyArray_TYPE(t) != self.typenum or not cnp.PyArray_IS_C_CONTIGUOUS(t)
                or not cnp.PyArray_ISNOTSWAPPED(t) or t.shape[0] != x.shape[0]
                or t.shape[1] != self.out_dim or batch < 1 or batch > self.capacity
                or first < 0):
            return None
        n = x.shape[0]
        nb = (n + batch - 1) // batch
        with nogil:
            csr = fnn_ftz_enter()       # see src_c/fnn_ftz.h
            started = fnn_seconds()
            for b in range(first, nb):
                r0 = b * batch
                rows = min(batch, n - r0)
                if self.typenum == cnp.NPY_FLOAT32:
                    code = _train_run(self, <const float *>cnp.PyArray_DATA(x) + r0 * self.in_dim,
                                      rows, <const float *>cnp.PyArray_DATA(t) + r0 * self.out_dim,
                                      NULL, False, lr, h1, h2, h3, weight_decay, &value)
                else:
                    code = _train_run(self,
                                      <const double *>cnp.PyArray_DATA(x) + r0 * self.in_dim,
                                      rows,
                                      <const double *>cnp.PyArray_DATA(t) + r0 * self.out_dim,
                                      NULL, False, lr, h1, h2, h3, weight_decay, &value)
                count += 1
                if code != TRAIN_UPDATED:
                    break
                total += value * rows
                work += step_work * <double>rows
                if work >= self.chunk_work or fnn_seconds() - started >= self.chunk_seconds:
                    break
            fnn_ftz_leave(csr)
        self.status = code
        return count, code, total, value


cdef void *_plan_data(object arr, int typenum, tuple shape, str what) except NULL:
    """The data pointer of a C-contiguous array of the dtype and shape, or ValueError."""
    cdef cnp.ndarray a
    if type(arr) is not np.ndarray:
        raise ValueError(f"TrainPlan: {what} must be an ndarray")
    a = <cnp.ndarray>arr
    if (cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_IS_C_CONTIGUOUS(a)
            or tuple(arr.shape) != shape or not cnp.PyArray_ISWRITEABLE(a)):
        raise ValueError(f"TrainPlan: {what} must be a writeable C-contiguous array of shape "
                         f"{shape}. Received: shape {arr.shape}")
    # a zero-size array may have a NULL-like data pointer; the plan never reads it then
    return cnp.PyArray_DATA(a) if cnp.PyArray_DATA(a) != NULL else <void *>1


cdef int _train_run(TrainPlan plan, const floating *x, Py_ssize_t n, const floating *t,
                    const cnp.npy_int64 *labels, bint check, double lr, double h1, double h2,
                    double h3, double weight_decay, double *value) noexcept nogil:
    """_train_body on the thread count the plan's controller picks (timed and recorded)."""
    cdef int allowed, saved, code
    cdef double started = 0
    cdef bint record = _adapt_begin(&plan.adapt, n, &allowed, &saved)
    if record:
        started = fnn_seconds()
    code = _train_body(plan, x, n, t, labels, check, lr, h1, h2, h3, weight_decay, value)
    if record:
        if code == TRAIN_UPDATED:
            fnn_adapt_end(&plan.adapt, fnn_seconds() - started, n)
        else:
            fnn_adapt_cancel(&plan.adapt)
    _restore_threads(saved)
    return code


cdef int _train_body(TrainPlan plan, const floating *x, Py_ssize_t n, const floating *t,
                     const cnp.npy_int64 *labels, bint check, double lr, double h1, double h2,
                     double h3, double weight_decay, double *value) noexcept nogil:
    """The step; returns the status, or -1 when the inputs are refused (nothing touched)."""
    cdef Py_ssize_t i, k, m, c = plan.out_dim, count
    cdef int s, act, last = plan.n_steps - 1
    cdef const floating *inp
    cdef floating *onehot
    cdef double total, gmax, glayer
    cdef double bc1, bc2
    cdef cnp.npy_int64 iteration
    cdef floating *params = <floating *>plan.params
    cdef floating *grads = <floating *>plan.grads
    cdef const floating *update_grads = grads
    cdef double par_min = _pass_par_min(n, plan.widest)
    cdef Py_ssize_t upd_min
    # --- inputs: finite features, labels in range (one-hot rows built only after both pass)
    if check:
        gmax = _max_abs(x, n * plan.in_dim)          # NaN when any feature is NaN or inf
        if gmax != gmax:
            return -1
    if labels != NULL:
        # Labels index memory, so they are read once: copied, then checked and used from the
        # copy (another Python thread may be writing the caller's array meanwhile).
        memcpy(plan.labels, labels, n * sizeof(cnp.npy_int64))
        labels = plan.labels
        for i in range(n):
            if labels[i] < 0 or labels[i] >= c:
                return -1
    if labels != NULL and (plan.kind != CE_SOFTMAX or plan.loss_param != 1):
        onehot = <floating *>plan.onehot
        for i in range(n * c):
            onehot[i] = 0
        for i in range(n):
            onehot[i * c + labels[i]] = 1
        t = onehot
    # --- forward: each step's output in its workspace buffer (the backward pass reads them)
    inp = x
    k = plan.in_dim
    for s in range(plan.n_steps):
        m = plan.width[s]
        if plan.W[s] != NULL:
            _dense_forward_raw(inp, <const floating *>plan.W[s], <const floating *>plan.b[s],
                               n, k, m, plan.act[s], <floating>plan.param[s],
                               <floating *>plan.Y[s], par_min)
        else:
            _forward_rows(inp, <floating *>plan.Y[s], n, m, plan.act[s],
                          <floating>plan.param[s])
        inp = <const floating *>plan.Y[s]
        k = m
    # --- loss and dL/d(output)
    count = n if plan.kind >= CE_LOGITS else n * c
    if labels != NULL and plan.kind == CE_SOFTMAX and plan.loss_param == 1:
        total = _ce_softmax_labels(<const floating *>plan.Y[last], labels,
                                   <floating *>plan.G[last], n, c, <floating>count)
    else:
        total = _loss_sum_weighted(plan.kind, <const floating *>plan.Y[last], t,
                                   <floating *>plan.G[last], NULL, n, c, <floating>count,
                                   <floating>plan.loss_param)
    value[0] = total / count
    if not isfinite(value[0]):
        return TRAIN_LOSS_NOT_FINITE
    # --- backward, last step first; the max |g| screen of fastnn.optimizers.check_update (NaN
    #     and inf caught) is gathered layer by layer as the gradients are written
    gmax = 0
    for s in range(last, -1, -1):
        act = FNN_ACT_LINEAR if (s == last and plan.fused) else plan.act[s]
        m = plan.width[s]
        k = plan.width[s - 1] if s > 0 else plan.in_dim
        inp = <const floating *>plan.Y[s - 1] if s > 0 else x
        if plan.W[s] != NULL:
            _dense_backward_raw(inp, <const floating *>plan.W[s], <const floating *>plan.Y[s],
                                <const floating *>plan.G[s], n, k, m, act,
                                <floating>plan.param[s], <floating *>plan.G[s],
                                <floating *>plan.dW[s], <floating *>plan.db[s],
                                <floating *>plan.G[s - 1] if s > 0 else NULL, &glayer, par_min)
            gmax = _max_abs_join(gmax, glayer)
        elif s > 0:
            _backward_rows(<const floating *>plan.Y[s], <const floating *>plan.G[s],
                           <floating *>plan.G[s - 1], n, m, act, <floating>plan.param[s])
    plan.max_grad = gmax
    if (not (gmax < plan.screen) or not (lr * gmax < plan.screen)
            or not (weight_decay < plan.screen) or plan.verify):
        return TRAIN_NEEDS_CHECK
    # --- the update, as fastnn.backends' sgd_update / adam_update do it (threads: see
    #     SERIAL_STEP_UPDATE_MIN)
    upd_min = PARALLEL_MIN_WORK if par_min > 0 else SERIAL_STEP_UPDATE_MIN
    # clipping, as the per-kernel route does it (Optimizer.step): the raw gradients were screened
    # (finite) above; the screen's bounds hold for the clipped ones, which are no larger
    if plan.clipnorm > 0 or plan.clipvalue > 0 or plan.global_clipnorm > 0:
        if _clip_grads(<const floating *>grads, <floating *>plan.clip_out,
                       <const int64_t *>plan.bounds, plan.n_bounds, plan.clipnorm,
                       plan.clipvalue, plan.global_clipnorm, upd_min):
            update_grads = <const floating *>plan.clip_out
    if plan.opt == OPT_SGD:
        _sgd(params, update_grads, NULL if h1 == 0 else <floating *>plan.state1, plan.n_params,
             <floating>lr, <floating>h1, h2 != 0, <floating>weight_decay, upd_min)
    else:
        iteration = plan.counter[0] + 1
        bc1 = 1 - h1 ** iteration
        bc2 = 1 - h2 ** iteration
        _adam(params, update_grads, <floating *>plan.state1, <floating *>plan.state2, plan.n_params,
              <floating>lr, <floating>h1, <floating>h2, <floating>(1 - h1), <floating>(1 - h2),
              <floating>bc1, <floating>bc2, <floating>h3, <floating>weight_decay, upd_min)
    plan.counter[0] += 1
    return TRAIN_UPDATED


cdef double _ce_softmax_labels(const floating *p, const cnp.npy_int64 *labels, floating *g,
                               Py_ssize_t n, Py_ssize_t c, floating count) noexcept nogil:
    """_loss_sum(CE_SOFTMAX, p, t, g, ...) for the one-hot rows t of in-range class labels,
    without building them: the same operations on the entries where t is 1, and on the others
    (p - 0) / count = p / count; so the same bits."""
    cdef Py_ssize_t i, j
    cdef double total = 0, s
    cdef floating eps = FLT_EPSILON if floating is float else DBL_EPSILON
    cdef floating pc
    for i in range(n * c):
        g[i] = p[i] / count
    for i in range(n):
        j = i * c + labels[i]
        pc = p[j] if p[j] > eps else eps
        s = 0
        s -= f_log(pc)
        total += s
        g[j] = (p[j] - <floating>1) / count
    return total
