"""Weight regularizers, Keras' names: a penalty on a weight added to the training loss.

``L1(l1)`` adds ``l1 * sum(|w|)``, ``L2(l2)`` adds ``l2 * sum(w ** 2)`` (Keras' convention: no
factor 1/2, so its gradient is ``2 * l2 * w``), ``L1L2(l1, l2)`` both. Layers take them as
``kernel_regularizer=``, ``bias_regularizer=`` (and gamma/beta for the normalizations);
``fit`` and ``train_on_batch`` add the penalty to the loss they report and its gradient to the
weights' gradients; ``model.regularization_loss()`` gives the penalty alone.

A regularizer of the user's subclasses ``Regularizer`` with ``__call__(w) -> float`` and
``add_gradient(w, grad)`` (``grad += d penalty / d w``), since training needs both.

Examples
--------
>>> import numpy as np
>>> import fastnn as fnn
>>> w = np.array([[1.0, -2.0], [0.5, 0.0]])
>>> fnn.regularizers.L1L2(l1=0.1, l2=0.01)(w)
0.3525
>>> fnn.regularizers.get("l2")
L2(l2=0.01)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from fastnn import _validation as V
from fastnn.initializers import _from_registry

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize"]

FloatArray = NDArray[np.floating[Any]]


class Regularizer:
    """Base class: ``__call__(w)`` is the penalty, ``add_gradient(w, grad)`` adds its
    gradient to ``grad`` in place."""

    def __call__(self, w: FloatArray) -> float:
        raise NotImplementedError

    def add_gradient(self, w: FloatArray, grad: FloatArray) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Regularizer":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    __hash__ = None  # type: ignore[assignment]


def _factor(name: str, value: Any) -> float:
    return V.check_float(name, value, low=0.0)


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w ** 2)``; gradient ``l1 * sign(w) + 2 * l2 * w``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _factor("l1", l1)
        self.l2 = _factor("l2", l2)

    def __call__(self, w: FloatArray) -> float:
        w64 = np.asarray(w, dtype=np.float64)
        total = 0.0
        if self.l1:
            total += self.l1 * float(np.abs(w64).sum())
        if self.l2:
            total += self.l2 * float(np.dot(w64.ravel(), w64.ravel()))
        return total

    def add_gradient(self, w: FloatArray, grad: FloatArray) -> None:
        if self.l1:
            grad += (self.l1 * np.sign(w)).astype(grad.dtype)
        if self.l2:
            grad += (2.0 * self.l2 * w).astype(grad.dtype)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|w|)`` (Keras' default factor 0.01)."""

    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(w ** 2)`` (Keras' default factor 0.01; weight decay 2 * l2 under SGD)."""

    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=l2)

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


l1 = L1
l2 = L2


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """``L1L2`` with Keras' defaults of the shortcut (0.01 each)."""
    return L1L2(l1=l1, l2=l2)


_CLASSES: dict[str, type[Regularizer]] = {"L1": L1, "L2": L2, "L1L2": L1L2}
_NAMES: dict[str, Any] = {"l1": L1, "l2": L2, "l1_l2": l1_l2}


def get(identifier: Any) -> Any:
    """The regularizer for ``identifier``: None, a Regularizer, a name ("l1", "l2", "l1_l2")
    or a dict from ``serialize``."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, (str, dict)):
        return _from_registry("regularizer", identifier, _NAMES, _CLASSES)
    raise TypeError(f"a regularizer must be a name, a dict or a fastnn.regularizers.Regularizer "
                    f"(which gives the penalty and its gradient; a bare function cannot be "
                    f"trained through). Received: {V._describe(identifier)}")


def serialize(regularizer: Regularizer) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}``, which ``get`` turns back into the regularizer."""
    if not isinstance(regularizer, Regularizer):
        raise TypeError(f"only Regularizer instances can be serialized. Received: "
                        f"{V._describe(regularizer)}")
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
