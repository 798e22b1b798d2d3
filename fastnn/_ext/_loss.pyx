# Loss kernels of the fast backend: the value and, optionally, the gradient in one pass.
#
# Kinds (fastnn.losses): 0 MSE, 1 BCE_LOGITS, 2 BCE_PROBS, 3 BCE_SIGMOID, 4 CE_LOGITS, 5 CE_PROBS,
# 6 CE_SOFTMAX. The value is a mean over count = n * C elements (MSE, BCE) or n rows (CE).
# Terms are computed in the array dtype, as in the NumPy backend (so a float32 loss overflows at the
# same step in both); the softplus and log-sum-exp sums use double. Each row's partial sum is
# accumulated in double and the partials are added in row order, so the value is the same at any
# thread count: with several threads the rows are split over them and the partials land in a
# scratch array first; with one thread they are added as they come, by the same row function.
# Stable forms: softplus(z) = max(z, 0) + log1p(exp(-|z|)) for BCE on logits; log-sum-exp with
# the row maximum subtracted for CE on logits (both as in sklearn/_loss and PyTorch).

from cython cimport floating
from libc.math cimport NAN

from fastnn._ext._loss_core cimport MSE, CE_LOGITS, CE_SOFTMAX, _loss_sum
from fastnn._ext._parallel cimport fnn_ftz_enter, fnn_ftz_leave


def loss(int kind,
         const floating[:, ::1] output,   # IN  (n, C) predictions, probabilities or logits
         const floating[:, ::1] target,   # IN  (n, C) dense targets
         floating[:, ::1] grad):          # OUT (n, C) dL/d(output), or None for the value only
    """L := mean loss of `kind`;  grad := dL/d(output) (fused kinds: (p - target) / count)"""
    cdef unsigned int csr
    cdef Py_ssize_t n = output.shape[0], c = output.shape[1]
    cdef Py_ssize_t count = n if kind >= CE_LOGITS else n * c
    cdef floating *g = NULL
    cdef double total
    if kind < MSE or kind > CE_SOFTMAX:
        raise ValueError(f"loss kind must be in 0..6. Received: kind={kind}")
    if target.shape[0] != n or target.shape[1] != c or (
            grad is not None and (grad.shape[0] != n or grad.shape[1] != c)):
        raise ValueError("fastnn kernel called with inconsistent shapes: loss")
    if n == 0 or c == 0:
        return NAN
    if grad is not None:
        g = &grad[0, 0]
    with nogil:
        csr = fnn_ftz_enter()       # see src_c/fnn_ftz.h
        total = _loss_sum(kind, &output[0, 0], &target[0, 0], g, n, c, <floating>count)
        fnn_ftz_leave(csr)
    return total / count
