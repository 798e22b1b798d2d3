"""Loss functions: the mean over the batch (and, for MSE and BCE, over the outputs), as in PyTorch.

A loss object does no arithmetic; it chooses the kernel ``kind`` from the model's final activation
and turns user targets into the dense array the kernels read:

- a final ``softmax`` or ``sigmoid`` makes the output probabilities. Cross-entropy after softmax and
  binary cross-entropy after sigmoid fuse with it: the gradient of the pre-activation is the stable
  ``(p - y) / count`` and the final activation's own backward is skipped;
- any other final activation means the output is read as logits (log-sum-exp / softplus forms).

In the formulas below the output ``o`` and the dense targets ``y`` are (n, m): n rows, m outputs.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastnn import activations as A
from fastnn import _validation as V

#: The loss names accepted by ``Sequential.compile``.
LossName = Literal["mse", "binary_cross_entropy", "cross_entropy"]

# Kernel codes, shared with both backends.
MSE_KIND, BCE_LOGITS, BCE_PROBS, BCE_SIGMOID, CE_LOGITS, CE_PROBS, CE_SOFTMAX = range(7)
FUSED_KINDS = frozenset({BCE_SIGMOID, CE_SOFTMAX})


class Loss:
    """Base class: ``name`` for files and messages, ``kind`` for the kernels."""

    name = ""

    def kind(self, final_act: int) -> int:
        """The kernel code of this loss after the final activation code ``final_act``."""
        raise NotImplementedError

    def targets(self, y: ArrayLike, n_outputs: int, dtype: DTypeLike,
                n_rows: Optional[int] = None, name: str = "y") -> NDArray[np.floating[Any]]:
        """Validate ``y`` and return it as a dense C-contiguous (n, n_outputs) array of ``dtype``.

        Parameters
        ----------
        y : array_like
            The user's targets (shapes as each loss accepts them).
        n_outputs : int
            Width of the model's output.
        dtype : float32 or float64
            The model's dtype.
        n_rows : int, optional
            The number of samples ``y`` must have (that of X); not checked when None.
        name : str, default "y"
            The argument name used in error messages.

        Raises
        ------
        ValueError, TypeError
            If ``y`` has the wrong shape, non-real or non-finite values, or values out of range.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MeanSquaredError(Loss):
    """Mean squared error: ``L = sum((o - y)^2) / (n m)``; ``dL/do = 2 (o - y) / (n m)``.

    Name ``"mse"``. Targets: (n,) for a single output, or (n, m).

    Examples
    --------
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Dense(1)], input_dim=1, backend="numpy")
    >>> model.layers[0].set_weights([[[1.0]], [0.0]])     # o = x
    >>> model = model.compile(loss=fnn.MeanSquaredError())     # or loss="mse"
    >>> model.evaluate([[1.0], [2.0]], [0.0, 0.0])              # (1 + 4) / 2
    {'loss': 2.5}
    """

    name = "mse"

    def kind(self, final_act: int) -> int:
        return MSE_KIND

    def targets(self, y: ArrayLike, n_outputs: int, dtype: DTypeLike,
                n_rows: Optional[int] = None, name: str = "y") -> NDArray[np.floating[Any]]:
        return V.dense_targets(y, n_outputs, dtype, n_rows, name)


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy: ``L = -sum(y log p + (1 - y) log(1 - p)) / (n m)``, y in [0, 1].

    Name ``"binary_cross_entropy"``. How ``p`` is read from the output ``o``, and the gradient:

    - after a final sigmoid (fused): ``p = o``; ``dL/dz = (p - y) / (n m)`` for the
      pre-activation ``z``;
    - after any other activation but softmax, ``o`` are logits: ``p = sigmoid(o)``, computed as
      ``L = sum(softplus(o) - y o) / (n m)``; ``dL/do = (sigmoid(o) - y) / (n m)``;
    - after a final softmax, ``o`` are probabilities clipped to [eps, 1 - eps];
      ``dL/do = (p - y) / (p (1 - p) n m)``.

    Targets: (n,) for a single output, or (n, m), each value in [0, 1].

    Examples
    --------
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Dense(1, activation="sigmoid")], input_dim=2,
    ...                        backend="numpy")
    >>> model.layers[0].set_weights([[[0.0], [0.0]], [0.0]])    # p = 0.5
    >>> scores = model.compile(loss="binary_cross_entropy").evaluate([[1.0, 2.0]], [1])
    >>> round(scores["loss"], 4)                              # log 2
    0.6931
    """

    name = "binary_cross_entropy"

    def kind(self, final_act: int) -> int:
        if final_act == A.SIGMOID:
            return BCE_SIGMOID
        if final_act == A.SOFTMAX:
            return BCE_PROBS
        return BCE_LOGITS

    def targets(self, y: ArrayLike, n_outputs: int, dtype: DTypeLike,
                n_rows: Optional[int] = None, name: str = "y") -> NDArray[np.floating[Any]]:
        t = V.dense_targets(y, n_outputs, dtype, n_rows, name)
        if t.size and (t.min() < 0 or t.max() > 1):
            raise ValueError(f"{name} must hold binary targets in [0, 1] for "
                             f"binary_cross_entropy. Received values in "
                             f"[{t.min()!r}, {t.max()!r}]")
        return t


class CrossEntropy(Loss):
    """Categorical cross-entropy: ``L = -sum_i sum_j y_ij log p_ij / n`` (a mean over rows).

    Name ``"cross_entropy"``. How ``p`` is read from the output ``o``, and the gradient:

    - after a final softmax (fused): ``p = o``; ``dL/dz = (p - y) / n`` for the pre-activation;
    - after any other activation but sigmoid, ``o`` are logits: ``p = softmax(o)`` by
      log-sum-exp; ``dL/do = (p * sum_j y_ij - y) / n``;
    - after a final sigmoid, ``o`` are probabilities clipped below at eps; ``dL/do = -y / (p n)``.

    Targets: integer labels (n,) in [0, m), or one-hot / probability rows (n, m) summing to 1.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.CrossEntropy().targets([0, 2], 3, "float32")      # labels become one-hot rows
    array([[1., 0., 0.],
           [0., 0., 1.]], dtype=float32)
    >>> model = fnn.Sequential([fnn.Dense(3, activation="softmax")], input_dim=2,
    ...                        backend="numpy")
    >>> model.layers[0].set_weights([[[0.0] * 3] * 2, [0.0] * 3])    # p = 1/3 each
    >>> scores = model.compile(loss="cross_entropy").evaluate([[1.0, 2.0]], [2])
    >>> round(scores["loss"], 4)                                    # log 3
    1.0986
    """

    name = "cross_entropy"

    def kind(self, final_act: int) -> int:
        if final_act == A.SOFTMAX:
            return CE_SOFTMAX
        if final_act == A.SIGMOID:
            return CE_PROBS
        return CE_LOGITS

    def targets(self, y: ArrayLike, n_outputs: int, dtype: DTypeLike,
                n_rows: Optional[int] = None, name: str = "y") -> NDArray[np.floating[Any]]:
        return V.class_targets(y, n_outputs, dtype, n_rows, name)


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (MeanSquaredError, BinaryCrossEntropy, CrossEntropy)}


def check_kind(loss: Loss, final_act: int) -> int:
    """``loss.kind(final_act)``, checked: a kernel code both backends know, else TypeError.

    A ``Loss`` subclass must return one of the codes above; anything else would reach the
    compiled kernels as an unknown code.
    """
    kind = loss.kind(final_act)
    if (not isinstance(kind, (int, np.integer)) or isinstance(kind, bool)
            or not MSE_KIND <= kind <= CE_SOFTMAX):
        raise TypeError(f"{type(loss).__name__}.kind() must return one of the loss kernel codes "
                        f"0..{CE_SOFTMAX} of fastnn.losses. Received: {kind!r}")
    kind = int(kind)
    fused_with = {BCE_SIGMOID: A.SIGMOID, CE_SOFTMAX: A.SOFTMAX}.get(kind)
    if fused_with is not None and final_act != fused_with:
        # a fused kind takes the output for the probabilities of its activation
        raise TypeError(f"{type(loss).__name__}.kind() returned the code {kind}, which fuses "
                        f"with a final {A.NAMES[fused_with]}, but the model ends with "
                        f"{A.NAMES.get(final_act, final_act)}")
    return kind


def get_loss(loss: LossName | Loss) -> Loss:
    """A Loss instance from a name or an instance.

    Parameters
    ----------
    loss : {"mse", "binary_cross_entropy", "cross_entropy"} or Loss
        A name gives a new instance; an instance is returned as it is.

    Raises
    ------
    ValueError
        If ``loss`` is neither a known name nor a Loss.

    Examples
    --------
    >>> from fastnn.losses import get_loss
    >>> get_loss("mse")
    MeanSquaredError()
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]()
    raise ValueError(f"loss must be one of {sorted(LOSSES)} or a Loss instance. "
                     f"Received: loss={loss!r}")


def class_labels(targets: NDArray[Any]) -> NDArray[np.intp]:
    """Integer class of each row of dense targets (argmax), for metrics."""
    return np.argmax(targets, axis=1)
