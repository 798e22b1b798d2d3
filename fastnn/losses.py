"""Loss functions: the mean over the batch (and, for MSE and BCE, over the outputs), as in PyTorch.

A loss object does no arithmetic; it chooses the kernel ``kind`` from the model's final activation
and turns user targets into the dense array the kernels read:

- a final ``softmax`` or ``sigmoid`` makes the output probabilities. Cross-entropy after softmax and
  binary cross-entropy after sigmoid fuse with it: the gradient of the pre-activation is the stable
  ``(p - y) / count`` and the final activation's own backward is skipped;
- any other final activation means the output is read as logits (log-sum-exp / softplus forms).
"""

import numpy as np

from fastnn import activations as A
from fastnn import _validation as V

# Kernel codes, shared with both backends.
MSE_KIND, BCE_LOGITS, BCE_PROBS, BCE_SIGMOID, CE_LOGITS, CE_PROBS, CE_SOFTMAX = range(7)
FUSED_KINDS = frozenset({BCE_SIGMOID, CE_SOFTMAX})


class Loss:
    """Base class: ``name`` for files and messages, ``kind`` for the kernels."""

    name = ""

    def kind(self, final_act):
        raise NotImplementedError

    def targets(self, y, n_outputs, dtype, n_rows=None, name="y"):
        """Validate ``y`` and return it as a dense C-contiguous (n, n_outputs) array of ``dtype``."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class MeanSquaredError(Loss):
    """L = mean((output - y)^2) over the batch and the outputs."""

    name = "mse"

    def kind(self, final_act):
        return MSE_KIND

    def targets(self, y, n_outputs, dtype, n_rows=None, name="y"):
        return V.dense_targets(y, n_outputs, dtype, n_rows, name)


class BinaryCrossEntropy(Loss):
    """L = -mean(y log p + (1 - y) log(1 - p)), p = sigmoid(logits); y in [0, 1]."""

    name = "binary_cross_entropy"

    def kind(self, final_act):
        if final_act == A.SIGMOID:
            return BCE_SIGMOID
        if final_act == A.SOFTMAX:
            return BCE_PROBS
        return BCE_LOGITS

    def targets(self, y, n_outputs, dtype, n_rows=None, name="y"):
        t = V.dense_targets(y, n_outputs, dtype, n_rows, name)
        if t.size and (t.min() < 0 or t.max() > 1):
            raise ValueError(f"{name} must hold binary targets in [0, 1] for "
                             f"binary_cross_entropy. Received values in "
                             f"[{t.min()!r}, {t.max()!r}]")
        return t


class CrossEntropy(Loss):
    """L = -mean over rows of sum_j y_j log p_j, p = softmax(logits); labels (n,) or one-hot (n, C)."""

    name = "cross_entropy"

    def kind(self, final_act):
        if final_act == A.SOFTMAX:
            return CE_SOFTMAX
        if final_act == A.SIGMOID:
            return CE_PROBS
        return CE_LOGITS

    def targets(self, y, n_outputs, dtype, n_rows=None, name="y"):
        return V.class_targets(y, n_outputs, dtype, n_rows, name)


LOSSES = {cls.name: cls for cls in (MeanSquaredError, BinaryCrossEntropy, CrossEntropy)}


def get_loss(loss):
    """A Loss instance from a name or an instance."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]()
    raise ValueError(f"loss must be one of {sorted(LOSSES)} or a Loss instance. "
                     f"Received: loss={loss!r}")


def class_labels(targets):
    """Integer class of each row of dense targets (argmax), for metrics."""
    return np.argmax(targets, axis=1)
