# Loss kernels of the fast backend: the value and, optionally, the gradient in one pass.
#
# Kinds (fastnn.losses): 0 MSE, 1 MAE, 2 HUBER, 3 BCE_LOGITS, 4 BCE_PROBS, 5 BCE_SIGMOID,
# 6 CE_LOGITS, 7 CE_PROBS, 8 CE_SOFTMAX. The value is a mean over count = n * C elements (MSE, MAE,
# HUBER, BCE) or n rows (CE); with sample weights w, sum_i w_i * (row i's sum) / count, which is
# Keras' "sum_over_batch_size" of the per-sample losses (a mean over the outputs, or the CE sum).
# Terms are computed in the array dtype, as in the NumPy backend (so a float32 loss overflows at the
# same step in both); the softplus and log-sum-exp sums use double. Each row's partial sum is
# accumulated in double and the partials are added in row order, so the value is the same at any
# thread count: with several threads the rows are split over them and the partials land in a
# scratch array first; with one thread they are added as they come, by the same row function.
# Label smoothing (Keras'): the cross-entropies read each target as t keep + (1 - keep) / C
# (binary: / 2), keep = param = 1 - smoothing; param 1 reads t as it is.
# Stable forms: softplus(z) = max(z, 0) + log1p(exp(-|z|)) for BCE on logits; log-sum-exp with
# the row maximum subtracted for CE on logits (both as in sklearn/_loss and PyTorch).

from cython cimport floating
from libc.math cimport NAN
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset

from fastnn._ext._loss_core cimport MSE, CE_LOGITS, CE_SOFTMAX, _loss_sum_weighted
from fastnn._ext._parallel cimport fnn_ftz_enter, fnn_ftz_leave


def loss(int kind,
         const floating[:, ::1] output,   # IN  (n, C) predictions, probabilities or logits
         const floating[:, ::1] target,   # IN  (n, C) dense targets
         floating[:, ::1] grad,           # OUT (n, C) dL/d(output), or None for the value only
         const floating[::1] weights=None,  # IN (n,) sample weights >= 0, or None (all 1)
         double param=1.0):               # Huber's delta (> 0); cross-entropy: 1 - smoothing
    """L := sum_i w_i l_i / n (w_i = 1 without weights);  grad := dL/d(output)
    (fused kinds: w_i (p - target) / count)"""
    cdef unsigned int csr
    cdef Py_ssize_t n = output.shape[0], c = output.shape[1]
    cdef Py_ssize_t count = n if kind >= CE_LOGITS else n * c
    cdef floating *g = NULL
    cdef const floating *w = NULL
    cdef double total
    if kind < MSE or kind > CE_SOFTMAX:
        raise ValueError(f"loss kind must be in {MSE}..{CE_SOFTMAX}. Received: kind={kind}")
    if target.shape[0] != n or target.shape[1] != c or (
            grad is not None and (grad.shape[0] != n or grad.shape[1] != c)) or (
            weights is not None and weights.shape[0] != n):
        raise ValueError("fastnn kernel called with inconsistent shapes: loss")
    if n == 0 or c == 0:
        return NAN
    if grad is not None:
        g = &grad[0, 0]
    if weights is not None:
        w = &weights[0]
    with nogil:
        csr = fnn_ftz_enter()       # see src_c/fnn_ftz.h
        total = _loss_sum_weighted(kind, &output[0, 0], &target[0, 0], g, w, n, c,
                                   <floating>count, <floating>param)
        fnn_ftz_leave(csr)
    return total / count


ctypedef fused label_t:
    int32_t
    int64_t


def one_hot(const label_t[::1] labels,      # IN  (n,) class labels
            floating[:, ::1] out):          # OUT (n, C) their one-hot rows
    """out := one-hot rows of labels in [0, C), one pass; returns -1, or the index of the first
    label outside [0, C) (out is then partly written: the caller discards it)"""
    cdef Py_ssize_t n = labels.shape[0], c = out.shape[1], i
    cdef int64_t k
    if out.shape[0] != n:
        raise ValueError("fastnn kernel called with inconsistent shapes: one_hot")
    if c == 0:
        return 0 if n else -1               # no class holds any label
    for i in range(n):
        k = labels[i]
        if k < 0 or k >= c:
            return i
        memset(&out[i, 0], 0, <size_t>c * sizeof(floating))
        out[i, k] = 1
    return -1
