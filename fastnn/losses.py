"""Loss functions: the mean over the batch (and, for MSE, MAE, Huber and BCE, over the outputs), as
in PyTorch and Keras.

A loss object does no arithmetic; it chooses the kernel ``kind`` from the model's final activation
and turns user targets into the dense array the kernels read:

- a final ``softmax`` or ``sigmoid`` makes the output probabilities. Cross-entropy after softmax and
  binary cross-entropy after sigmoid fuse with it: the gradient of the pre-activation is the stable
  ``(p - y) / count`` and the final activation's own backward is skipped;
- any other final activation means the output is read as logits (log-sum-exp / softplus forms).

In the formulas below the output ``o`` and the dense targets ``y`` are (n, m): n rows, m outputs.
With sample weights ``w`` (n,) the value is Keras' "sum_over_batch_size": ``sum_i w_i l_i / n``,
``l_i`` the loss of sample i (its mean over the outputs; for cross-entropy, its sum over classes).

Outside a model, ``value_and_grad(y_true, y_pred, sample_weight=None)`` gives the loss of
``y_pred`` as given and ``dL/dy_pred`` (probabilities for the cross-entropies): the fused kinds
(gradients of the pre-activation) are an optimisation inside models only.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastnn import activations as A
from fastnn import _validation as V

#: The loss names accepted by ``Sequential.compile`` and ``get_loss`` (Keras' names included).
LossName = Literal["mse", "mean_squared_error", "mae", "mean_absolute_error", "huber",
                   "binary_cross_entropy", "binary_crossentropy", "cross_entropy",
                   "categorical_crossentropy", "sparse_categorical_crossentropy"]

# Kernel codes, shared with both backends (src_c-side copy: fastnn/_ext/_loss_core.pxd). The
# element-wise kinds come first: codes >= CE_LOGITS are the cross-entropies (a mean over rows).
(MSE_KIND, MAE_KIND, HUBER_KIND, BCE_LOGITS, BCE_PROBS, BCE_SIGMOID, CE_LOGITS, CE_PROBS,
 CE_SOFTMAX) = range(9)
FUSED_KINDS = frozenset({BCE_SIGMOID, CE_SOFTMAX})
#: The code of a loss written in Python (a Loss subclass with ``value`` and ``gradient``): the
#: model calls them instead of a kernel.
CUSTOM_KIND = -1


class Loss:
    """Base class: ``name`` for files and messages, ``kind`` for the kernels.

    A loss of your own: subclass it and implement ``value(y_true, y_pred) -> float`` (the mean
    loss of the batch) and ``gradient(y_true, y_pred) -> ndarray`` (dL/dy_pred, shaped like
    y_pred). ``y_true`` is the dense (n, outputs) targets array (``targets``), ``y_pred`` the
    model's outputs. Such a loss trains through the per-kernel path.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> class Quartic(fnn.Loss):
    ...     name = "quartic"
    ...     def value(self, y_true, y_pred):
    ...         return float(np.mean((y_pred - y_true) ** 4))
    ...     def gradient(self, y_true, y_pred):
    ...         return 4 * (y_pred - y_true) ** 3 / y_pred.size
    >>> model = fnn.Sequential([fnn.Dense(1)], input_dim=2, seed=0, backend="numpy")
    >>> model = model.compile(loss=Quartic(), optimizer=fnn.SGD(lr=0.01))
    >>> x, y = np.ones((4, 2)), np.zeros(4)
    >>> first = model.train_on_batch(x, y)
    >>> bool(model.train_on_batch(x, y) < first)
    True
    """

    name = ""

    def kind(self, final_act: int) -> int:
        """The kernel code of this loss after the final activation code ``final_act``; for a
        subclass that implements ``value`` and ``gradient`` instead, ``CUSTOM_KIND``."""
        if _overrides(self, "value") or _overrides(self, "gradient"):
            return CUSTOM_KIND
        raise TypeError(f"{type(self).__name__} must implement value(y_true, y_pred) and "
                        f"gradient(y_true, y_pred) (or kind(), choosing a kernel code)")

    def value(self, y_true: NDArray[Any], y_pred: NDArray[Any]) -> float:
        """A Python loss: the mean loss of ``y_pred`` against the dense targets ``y_true``."""
        raise TypeError(f"{type(self).__name__} must implement value(y_true, y_pred)")

    def gradient(self, y_true: NDArray[Any], y_pred: NDArray[Any]) -> NDArray[Any]:
        """A Python loss: dL/dy_pred, shaped like ``y_pred``."""
        raise TypeError(f"{type(self).__name__} must implement gradient(y_true, y_pred)")

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
        return V.dense_targets(y, n_outputs, dtype, n_rows, name)

    @property
    def param(self) -> float:
        """The parameter the loss kernels take with the kind: Huber's delta; for the
        cross-entropies ``1 - label_smoothing``; 1.0 (unused) for the others."""
        return 1.0

    def output_kind(self) -> int:
        """The kernel code that reads an output as given (``value_and_grad``): never a fused
        code; the cross-entropies read probabilities. By default ``kind`` after a linear
        output."""
        return self.kind(A.LINEAR)

    def get_config(self) -> dict[str, Any]:
        """``{"name": ...}`` and the constructor's arguments: what ``get_loss`` rebuilds it
        from."""
        return {"name": self.name}

    def value_and_grad(self, y_true: ArrayLike, y_pred: ArrayLike,
                       sample_weight: Optional[ArrayLike] = None
                       ) -> tuple[float, NDArray[np.floating[Any]]]:
        """The loss of ``y_pred`` against ``y_true`` and its gradient ``dL/dy_pred``.

        ``y_pred`` is read as given: values for MSE, MAE and Huber, probabilities for the
        cross-entropies (``BCE_PROBS``, ``CE_PROBS``). Computed by the compiled kernels when
        they are built, else by the NumPy reference.

        Parameters
        ----------
        y_true : array_like
            Targets in the forms ``targets`` accepts (labels or one-hot for cross-entropy).
        y_pred : array_like of shape (n,) or (n, m)
            Predictions, real and finite; float32 stays float32, anything else is float64.
        sample_weight : array_like of shape (n,), optional
            Finite weights >= 0: ``L = sum_i w_i l_i / n`` (Keras' "sum_over_batch_size").

        Returns
        -------
        (float, ndarray)
            The loss and ``dL/dy_pred`` (the shape and dtype of ``y_pred`` as validated).

        Raises
        ------
        ValueError, TypeError
            If an argument has the wrong shape, type or values (naming it).

        Examples
        --------
        >>> import fastnn as fnn
        >>> value, grad = fnn.losses.get("mae").value_and_grad([0.0, 1.0], [0.5, 0.0])
        >>> value, grad.tolist()
        (0.75, [0.5, -0.5])
        """
        return self._evaluate(y_true, y_pred, sample_weight, True)  # type: ignore[return-value]

    def __call__(self, y_true: ArrayLike, y_pred: ArrayLike,
                 sample_weight: Optional[ArrayLike] = None) -> float:
        """The loss of ``y_pred`` as given (``value_and_grad`` without the gradient)."""
        return self._evaluate(y_true, y_pred, sample_weight, False)[0]

    def _evaluate(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: Optional[ArrayLike],
                  with_grad: bool) -> tuple[float, Optional[NDArray[np.floating[Any]]]]:
        from fastnn.backends import default_backend

        out, shape = V.predictions("y_pred", y_pred)
        n, m = out.shape
        t = self.targets(y_true, m, out.dtype, n, "y_true")
        if (type(t) is not np.ndarray or t.shape != out.shape or t.dtype != out.dtype
                or not t.flags.c_contiguous):
            raise TypeError(f"{type(self).__name__}.targets() must return a C-contiguous "
                            f"{out.dtype.name} array of shape {out.shape}")
        w = None if sample_weight is None else V.sample_weights(sample_weight, n, out.dtype)
        python_loss = _overrides(self, "value") or _overrides(self, "gradient")
        if python_loss and check_kind(self, A.LINEAR) == CUSTOM_KIND:
            if w is not None:
                raise TypeError(f"sample_weight needs a built-in loss: {type(self).__name__}."
                                f"value() computes a mean of its own")
            value = float(self.value(t, out))
            if not with_grad:
                return value, None
            custom = np.asarray(self.gradient(t, out), dtype=out.dtype)
            if custom.shape != out.shape:
                raise TypeError(f"{type(self).__name__}.gradient() must return an array of "
                                f"shape {out.shape}. Received: shape {custom.shape}")
            return value, custom.reshape(shape)
        kind = _checked_code(self, self.output_kind(), A.LINEAR)
        grad = np.empty_like(out) if with_grad else None
        value = default_backend().loss(kind, out, t, grad, w, self.param)
        return value, None if grad is None else grad.reshape(shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MeanSquaredError(Loss):
    """Mean squared error: ``L = sum((o - y)^2) / (n m)``; ``dL/do = 2 (o - y) / (n m)``.

    Name ``"mse"`` (also ``"mean_squared_error"``). Targets: (n,) for a single output, or (n, m).

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


class MeanAbsoluteError(Loss):
    """Mean absolute error: ``L = sum(|o - y|) / (n m)``; ``dL/do = sign(o - y) / (n m)`` (0 where
    ``o == y``).

    Name ``"mae"`` (also ``"mean_absolute_error"``). Targets: (n,) for a single output, or (n, m).

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.MeanAbsoluteError()([[1.0, 2.0]], [[0.0, 4.0]])        # (1 + 2) / 2
    1.5
    """

    name = "mae"

    def kind(self, final_act: int) -> int:
        return MAE_KIND

    def targets(self, y: ArrayLike, n_outputs: int, dtype: DTypeLike,
                n_rows: Optional[int] = None, name: str = "y") -> NDArray[np.floating[Any]]:
        return V.dense_targets(y, n_outputs, dtype, n_rows, name)


class Huber(Loss):
    """Huber loss (Keras' ``huber``, PyTorch's ``HuberLoss``): with ``d = o - y``,
    ``L = sum(h(d)) / (n m)``, ``h(d) = d^2 / 2`` where ``|d| <= delta``, else
    ``delta |d| - delta^2 / 2``;  ``dL/do = clip(d, -delta, delta) / (n m)``.

    Name ``"huber"``. Targets: (n,) for a single output, or (n, m).

    Parameters
    ----------
    delta : float, default 1.0
        Where the quadratic part turns linear: finite and > 0; for a model's dtype also a normal
        number whose ``delta^2 / 2`` the dtype holds (float32: ``delta <= 2.6e19``).

    Raises
    ------
    TypeError
        If ``delta`` is not a real number.
    ValueError
        If ``delta`` is out of range (checked against the dtype with the targets).

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.Huber(delta=1.0)([0.0, 0.0], [0.5, 3.0])     # (0.125 + 2.5) / 2
    1.3125
    """

    name = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        delta = V.check_float("delta", delta, 0.0, None, low_open=True)
        _check_delta(delta, np.float64)
        self._delta = delta

    @property
    def delta(self) -> float:
        """The threshold between the quadratic and the linear part."""
        return self._delta

    @property
    def param(self) -> float:
        return self._delta

    def kind(self, final_act: int) -> int:
        return HUBER_KIND

    def targets(self, y: ArrayLike, n_outputs: int, dtype: DTypeLike,
                n_rows: Optional[int] = None, name: str = "y") -> NDArray[np.floating[Any]]:
        _check_delta(self._delta, dtype)
        return V.dense_targets(y, n_outputs, dtype, n_rows, name)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "delta": self._delta}

    def __repr__(self) -> str:
        return f"Huber(delta={self._delta!r})"


def _check_delta(delta: float, dtype: DTypeLike) -> None:
    """ValueError unless ``delta`` is a normal number of ``dtype`` whose ``delta^2 / 2`` (the
    kernels' constant) the dtype holds."""
    V.check_in_dtype("delta", delta, dtype, owner="Huber")
    limit = math.sqrt(2.0 * float(np.finfo(dtype).max))
    if not delta * (1 + 2 ** -10) < limit:
        raise ValueError(f"Huber: delta must be < {limit:.6g} in {np.dtype(dtype).name} (delta^2 "
                         f"/ 2 must not overflow). Received: delta={delta!r}")


class _LabelSmoothing:
    """Keras' ``label_smoothing`` of the cross-entropies: each target t is read as
    ``t (1 - s) + s / C`` (binary: ``s / 2``), in the loss kernels (the targets the metrics see
    stay as given). The kernels take ``param = 1 - s``; 1 leaves t as it is."""

    label_smoothing = 0.0

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = V.check_float("label_smoothing", label_smoothing, 0.0, 1.0)

    @property
    def param(self) -> float:
        return 1.0 - self.label_smoothing

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name}  # type: ignore[attr-defined]
        if self.label_smoothing:
            config["label_smoothing"] = self.label_smoothing
        return config

    def __repr__(self) -> str:
        smoothing = f"label_smoothing={self.label_smoothing!r}" if self.label_smoothing else ""
        return f"{type(self).__name__}({smoothing})"


class BinaryCrossEntropy(_LabelSmoothing, Loss):
    """Binary cross-entropy: ``L = -sum(y log p + (1 - y) log(1 - p)) / (n m)``, y in [0, 1].

    Name ``"binary_cross_entropy"`` (also ``"binary_crossentropy"``). How ``p`` is read from the
    output ``o``, and the gradient:

    - after a final sigmoid (fused): ``p = o``; ``dL/dz = (p - y) / (n m)`` for the
      pre-activation ``z``;
    - after any other activation but softmax, ``o`` are logits: ``p = sigmoid(o)``, computed as
      ``L = sum(softplus(o) - y o) / (n m)``; ``dL/do = (sigmoid(o) - y) / (n m)``;
    - after a final softmax, ``o`` are probabilities clipped to [eps, 1 - eps];
      ``dL/do = (p - y) / (p (1 - p) n m)``.

    Targets: (n,) for a single output, or (n, m), each value in [0, 1].

    Parameters
    ----------
    label_smoothing : float in [0, 1], default 0.0
        Keras' label smoothing: the loss reads each target y as ``y (1 - s) + s / 2``.

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

    def output_kind(self) -> int:
        return BCE_PROBS

    def targets(self, y: ArrayLike, n_outputs: int, dtype: DTypeLike,
                n_rows: Optional[int] = None, name: str = "y") -> NDArray[np.floating[Any]]:
        t = V.dense_targets(y, n_outputs, dtype, n_rows, name)
        if t.size and (t.min() < 0 or t.max() > 1):
            raise ValueError(f"{name} must hold binary targets in [0, 1] for "
                             f"binary_cross_entropy. Received values in "
                             f"[{t.min()!r}, {t.max()!r}]")
        return t


class CrossEntropy(_LabelSmoothing, Loss):
    """Categorical cross-entropy: ``L = -sum_i sum_j y_ij log p_ij / n`` (a mean over rows).

    Name ``"cross_entropy"`` (also ``"categorical_crossentropy"`` and
    ``"sparse_categorical_crossentropy"``: both target forms are accepted). How ``p`` is read
    from the output ``o``, and the gradient:

    - after a final softmax (fused): ``p = o``; ``dL/dz = (p - y) / n`` for the pre-activation;
    - after any other activation but sigmoid, ``o`` are logits: ``p = softmax(o)`` by
      log-sum-exp; ``dL/do = (p * sum_j y_ij - y) / n``;
    - after a final sigmoid, ``o`` are probabilities clipped below at eps; ``dL/do = -y / (p n)``.

    Targets: integer labels (n,) in [0, m), or one-hot / probability rows (n, m) summing to 1.

    Parameters
    ----------
    label_smoothing : float in [0, 1], default 0.0
        Keras' label smoothing: the loss reads each target row y as ``y (1 - s) + s / m``
        (metrics such as accuracy see the targets as given).

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

    def output_kind(self) -> int:
        return CE_PROBS

    def targets(self, y: ArrayLike, n_outputs: int, dtype: DTypeLike,
                n_rows: Optional[int] = None, name: str = "y") -> NDArray[np.floating[Any]]:
        return V.class_targets(y, n_outputs, dtype, n_rows, name)


class _FromLogits:
    """Keras' ``from_logits`` on a cross-entropy class, checked against the model it is
    compiled for: fastnn reads the outputs as probabilities after a final ``LAST`` (or one of
    ``PROBABILITIES``) and as logits otherwise, so a ``from_logits`` that says the other is a
    mistake in the model (a missing or an extra ``LAST``), refused at compile rather than
    trained on."""

    LAST = ""
    PROBABILITIES: tuple[int, ...] = ()

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        self.from_logits = V.check_bool("from_logits", from_logits)
        super().__init__(label_smoothing)  # type: ignore[call-arg]

    def kind(self, final_act: int) -> int:
        ends_in, last = final_act in self.PROBABILITIES, self.LAST
        if self.from_logits and ends_in:
            raise ValueError(f"{type(self).__name__}(from_logits=True) reads the outputs as "
                             f"logits, but the model ends in {last}, so they are "
                             f"probabilities: pass from_logits=False, or drop the last "
                             f"layer's {last}")
        if not self.from_logits and not ends_in:
            raise ValueError(f"{type(self).__name__}(from_logits=False) reads the outputs as "
                             f"probabilities, but the model's last activation is not {last}, "
                             f"so they are logits: pass from_logits=True, or give the last "
                             f"layer activation={last!r}")
        return super().kind(final_act)  # type: ignore[misc]

    def output_kind(self) -> int:
        """Called on outputs directly (``loss(y_true, y_pred)``), ``from_logits`` says what
        they are, as in Keras."""
        if self.from_logits:
            return super().kind(A.LINEAR)  # type: ignore[misc,no-any-return]
        return super().output_kind()  # type: ignore[misc,no-any-return]

    def __repr__(self) -> str:
        smoothing = getattr(self, "label_smoothing", 0.0)
        extra = f", label_smoothing={smoothing!r}" if smoothing else ""
        return f"{type(self).__name__}(from_logits={self.from_logits}{extra})"


class CategoricalCrossentropy(_FromLogits, CrossEntropy):
    """Keras' class for cross-entropy (``CrossEntropy``), with its ``from_logits``: whether the
    model's outputs are logits (no final softmax) or probabilities (after one), checked
    against the model at compile. One-hot rows or integer labels, as ``CrossEntropy``.

    Examples
    --------
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Dense(3)], input_dim=2, backend="numpy")
    >>> model.compile(loss=fnn.losses.SparseCategoricalCrossentropy(from_logits=True)).loss
    SparseCategoricalCrossentropy(from_logits=True)
    """

    LAST, PROBABILITIES = "softmax", (A.SOFTMAX, A.SIGMOID)


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Keras' class for cross-entropy on integer labels (one-hot rows work too); see
    ``CategoricalCrossentropy``."""


class BinaryCrossentropy(_FromLogits, BinaryCrossEntropy):
    """Keras' class for binary cross-entropy (``BinaryCrossEntropy``), with its
    ``from_logits``: whether the outputs are logits (no final sigmoid) or probabilities (after
    one), checked against the model at compile."""

    LAST, PROBABILITIES = "sigmoid", (A.SIGMOID, A.SOFTMAX)

LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (MeanSquaredError, MeanAbsoluteError, Huber, BinaryCrossEntropy,
                               CrossEntropy)}
#: Other names of the losses above (Keras' spellings); each code keeps one name of its own.
ALIASES = {"mean_squared_error": "mse", "mean_absolute_error": "mae",
           "binary_crossentropy": "binary_cross_entropy",
           "categorical_crossentropy": "cross_entropy",        # CrossEntropy takes one-hot rows
           "sparse_categorical_crossentropy": "cross_entropy"}  # ... and integer labels


def check_kind(loss: Loss, final_act: int) -> int:
    """``loss.kind(final_act)``, checked: a kernel code both backends know, else TypeError.

    A ``Loss`` subclass must return one of the codes above, or ``CUSTOM_KIND`` with both
    ``value`` and ``gradient`` implemented; anything else would reach the compiled kernels as an
    unknown code. (Models pass ``loss.param``, Huber's delta, to the loss kernels and to the
    compiled training plan.)
    """
    kind = loss.kind(final_act)
    if kind == CUSTOM_KIND and not isinstance(kind, bool):
        missing = [m for m in ("value", "gradient") if not _overrides(loss, m)]
        if missing:
            raise TypeError(f"{type(loss).__name__} must implement "
                            f"{' and '.join(m + '(y_true, y_pred)' for m in missing)}")
        return CUSTOM_KIND
    return _checked_code(loss, kind, final_act)


def _overrides(loss: Loss, method: str) -> bool:
    return getattr(type(loss), method) is not getattr(Loss, method)


def _checked_code(loss: Loss, kind: Any, final_act: int) -> int:
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


def get_loss(loss: Union[LossName, Loss, dict[str, Any]]) -> Loss:
    """A Loss instance from a name, a config dict or an instance.

    Parameters
    ----------
    loss : str, dict or Loss
        A name (``LOSSES`` or Keras' ``ALIASES``) gives a new instance with default settings; a
        dict such as ``{"name": "huber", "delta": 2.0}`` (the form ``get_config`` returns) one
        with those settings; an instance is returned as it is.

    Raises
    ------
    ValueError
        If ``loss`` is neither a known name, such a dict nor a Loss.
    TypeError
        If a dict holds an unknown setting.

    Examples
    --------
    >>> from fastnn.losses import get_loss
    >>> get_loss("mse"), get_loss("sparse_categorical_crossentropy")
    (MeanSquaredError(), CrossEntropy())
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        name = ALIASES.get(loss, loss)
        if name in LOSSES:
            return LOSSES[name]()
    if isinstance(loss, dict) and isinstance(loss.get("name"), str):
        config = dict(loss)
        given = config.pop("name")
        name = ALIASES.get(given, given)
        if name in LOSSES:
            try:
                return LOSSES[name](**config)
            except TypeError as exc:        # an unknown or missing setting
                raise TypeError(f"loss config {loss!r} does not suit {LOSSES[name].__name__}: "
                                f"{exc}") from None
    raise ValueError(f"loss must be one of {sorted({**LOSSES, **ALIASES})}, a config dict or a "
                     f"Loss instance. Received: loss={loss!r}")


#: Keras' name for ``get_loss``: ``fastnn.losses.get("binary_crossentropy")``.
get = get_loss


def class_labels(targets: NDArray[Any]) -> NDArray[np.intp]:
    """Integer class of each row of dense targets (argmax), for metrics."""
    return np.argmax(targets, axis=1)
