"""Metrics tracked during training: each returns a *sum* over the rows given, so batches add up.

``outputs`` are the model's final outputs (probabilities after a final sigmoid/softmax, logits
otherwise) and ``targets`` the dense targets the loss uses; both (n, m). Dividing the sums by n
gives the reported means:

- ``accuracy``: with m > 1 outputs, the fraction of rows where argmax(outputs) = argmax(targets);
  with one output, the same as ``binary_accuracy``;
- ``binary_accuracy``: mean over rows and outputs of [(outputs >= threshold) == (targets >= 0.5)];
- ``categorical_accuracy``: the fraction of rows where argmax(outputs) = argmax(targets), at any
  width (Keras' ``categorical_accuracy`` and ``sparse_categorical_accuracy``: fastnn's targets
  are dense by the time metrics see them, so the two agree);
- ``mae``: mean over rows and outputs of |outputs - targets|;
- ``mse``: mean over rows and outputs of (outputs - targets)^2.

Keras' other spellings work and are reported under the name given: ``"acc"``,
``"sparse_categorical_accuracy"``, ``"mean_absolute_error"``, ``"mean_squared_error"``. So do
Keras' metric classes for these (``SparseCategoricalAccuracy()``, ``BinaryAccuracy(threshold=...)``,
``MeanSquaredError()``, ...), reported under their ``name``.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
from numpy.typing import NDArray

MetricName = Literal["accuracy", "binary_accuracy", "categorical_accuracy", "mae", "mse"]
METRICS = ("accuracy", "binary_accuracy", "categorical_accuracy", "mae", "mse")
# Keras' other spellings, each computed as the metric it names here
ALIASES = {"acc": "accuracy", "sparse_categorical_accuracy": "categorical_accuracy",
           "mean_absolute_error": "mae", "mean_squared_error": "mse"}
NAMES = METRICS + tuple(ALIASES)


class Metric:
    """A metric as Keras' classes give it: what it computes (``kind``, one of ``METRICS``) and
    the ``name`` it is reported under. Pass it in ``compile(metrics=[...])``."""

    kind: str = ""
    default_name: str = ""

    def __init__(self, name: Optional[str] = None, dtype: Any = None) -> None:
        # dtype is Keras' (the metric's state); fastnn sums metrics in float64
        if name is None:
            name = self.default_name
        if not isinstance(name, str) or not name:
            raise TypeError(f"{type(self).__name__}: name must be a non-empty string. "
                            f"Received: name={name!r}")
        self.name = name

    def get_config(self) -> dict[str, Any]:
        """The settings (Keras' ``get_config``)."""
        return {"name": self.name}

    def _threshold(self, default: float) -> float:
        return default

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items()
                         if not (key == "name" and value == self.default_name))
        return f"{type(self).__name__}({args})"


class CategoricalAccuracy(Metric):
    """The fraction of samples whose largest output is their target's class (argmax)."""

    kind = default_name = "categorical_accuracy"


class SparseCategoricalAccuracy(CategoricalAccuracy):
    """``CategoricalAccuracy`` for integer labels (fastnn reads both forms of targets alike)."""

    default_name = "sparse_categorical_accuracy"


class BinaryAccuracy(Metric):
    """The fraction of outputs on the right side of ``threshold``, over samples and outputs.

    ``threshold=None`` (the default) splits probabilities at 0.5 and logits at 0: the model's
    final activation decides. Keras' default is 0.5 whatever the outputs are.
    """

    kind = default_name = "binary_accuracy"

    def __init__(self, name: Optional[str] = None, dtype: Any = None,
                 threshold: Optional[float] = None) -> None:
        super().__init__(name, dtype)
        if threshold is not None:
            if isinstance(threshold, (bool, np.bool_)) or not isinstance(
                    threshold, (int, float, np.integer, np.floating)) or not np.isfinite(threshold):
                raise ValueError(f"BinaryAccuracy: threshold must be a finite number or None. "
                                 f"Received: threshold={threshold!r}")
            threshold = float(threshold)
        self.threshold = threshold

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "threshold": self.threshold}

    def _threshold(self, default: float) -> float:
        return default if self.threshold is None else self.threshold


class MeanAbsoluteError(Metric):
    """The mean of |outputs - targets| over samples and outputs."""

    kind = default_name = "mean_absolute_error"


class MeanSquaredError(Metric):
    """The mean of (outputs - targets)^2 over samples and outputs."""

    kind = default_name = "mean_squared_error"


def _kind(metric: Any) -> str:
    """The canonical name (one of ``METRICS``) of a metric name or ``Metric``."""
    name = metric.kind if isinstance(metric, Metric) else metric
    return ALIASES.get(name, name)


def storable(metric: Any) -> Optional[str]:
    """The name a model file keeps for ``metric``, or None when a name cannot say it (a
    function, or a ``Metric`` with a name or threshold of its own)."""
    if isinstance(metric, str):
        return metric
    if isinstance(metric, Metric) and metric.get_config() == type(metric)().get_config():
        return metric.name
    return None


def check_metrics(metrics: Any) -> list[Any]:
    """The metrics as a list: None gives [], a single name or function a one-item list.

    Each item is a name (``NAMES``), a ``Metric`` such as ``SparseCategoricalAccuracy()``, or
    a function ``f(y_true, y_pred) -> number`` (a batch mean, as in Keras: ``y_true`` the dense
    (n, outputs) targets, ``y_pred`` the model's outputs), reported under its name or
    ``__name__``.

    Raises
    ------
    TypeError
        If ``metrics`` is not None, a string, a function, a list or a tuple.
    ValueError
        If a name is not one of ``NAMES``, or two metrics share a name.

    Examples
    --------
    >>> from fastnn.metrics import check_metrics
    >>> check_metrics("accuracy")
    ['accuracy']
    """
    if metrics is None:
        return []
    if isinstance(metrics, (str, Metric)) or callable(metrics):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of names from {list(NAMES)}, metrics such as "
                        f"SparseCategoricalAccuracy(), or functions f(y_true, y_pred). "
                        f"Received: metrics={metrics!r}")
    items = list(metrics)
    for item in items:
        if not (isinstance(item, Metric) or callable(item)
                or (isinstance(item, str) and item in NAMES)):
            raise ValueError(f"metrics must be names from {list(NAMES)}, metrics such as "
                             f"SparseCategoricalAccuracy(), or functions f(y_true, y_pred). "
                             f"Received: metrics={metrics!r}")
    names = [metric_name(item) for item in items]
    if len(set(names)) != len(names) or "loss" in names:
        raise ValueError(f"metrics must have distinct names other than 'loss'. Received the "
                         f"names {names}")
    return items


def metric_name(metric: Any) -> str:
    """The key a metric is reported under: its name, or a function's ``__name__``."""
    if isinstance(metric, str):
        return metric
    if isinstance(metric, Metric):
        return metric.name
    return getattr(metric, "__name__", type(metric).__name__)


def batch_metric_sum(metric: Any, outputs: NDArray[Any], targets: NDArray[Any],
                     threshold: float) -> float:
    """``metric_sum`` for a name or ``Metric``; for a function, its batch mean times the
    batch's rows."""
    if isinstance(metric, Metric):
        return metric_sum(metric.kind, outputs, targets, metric._threshold(threshold))
    if isinstance(metric, str):
        return metric_sum(metric, outputs, targets, threshold)
    value = metric(targets, outputs)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"the metric {metric_name(metric)} must return a number. Received: "
                        f"{value!r}")
    return float(value) * outputs.shape[0]


def metric_sum(name: str, outputs: NDArray[Any], targets: NDArray[Any],
               threshold: float) -> float:
    """Sum over rows of the metric ``name``; ``threshold`` splits a single output into 0/1.

    Parameters
    ----------
    name : str
        The metric: one of ``NAMES`` (see the module docstring for the formulas).
    outputs, targets : ndarray, shape (n, m)
        Model outputs and dense targets.
    threshold : float
        The output value from which a prediction counts as 1 (0.5 for probabilities, 0 for
        logits).

    Returns
    -------
    float
        The per-row metric summed over the n rows.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnn.metrics import metric_sum
    >>> out = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> metric_sum("accuracy", out, np.array([[1.0, 0.0], [1.0, 0.0]]), 0.5)
    1.0
    """
    name = _kind(name)
    if name == "mae":
        return float(np.abs(outputs - targets).mean(axis=1).sum())
    if name == "mse":
        diff = outputs - targets
        return float((diff * diff).mean(axis=1).sum())
    if name == "categorical_accuracy" or (name == "accuracy" and outputs.shape[1] > 1):
        return float(np.count_nonzero(outputs.argmax(axis=1) == targets.argmax(axis=1)))
    # binary accuracy: each output thresholded, averaged over outputs
    hits = (outputs >= threshold) == (targets >= 0.5)
    return float(hits.mean(axis=1).sum())
