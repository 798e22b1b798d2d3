"""Metrics tracked during training: each returns a *sum* over the rows given, so batches add up.

``outputs`` are the model's final outputs (probabilities after a final sigmoid/softmax, logits
otherwise) and ``targets`` the dense targets the loss uses; both (n, m). Dividing the sums by n
gives the reported means:

- ``accuracy``: with m > 1 outputs, the fraction of rows where argmax(outputs) = argmax(targets);
  with one output, the same as ``binary_accuracy``;
- ``binary_accuracy``: mean over rows and outputs of [(outputs >= threshold) == (targets >= 0.5)];
- ``mae``: mean over rows and outputs of |outputs - targets|.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
from numpy.typing import NDArray

MetricName = Literal["accuracy", "binary_accuracy", "mae"]
METRICS = ("accuracy", "binary_accuracy", "mae")


def check_metrics(metrics: Any) -> list[Any]:
    """The metrics as a list: None gives [], a single name or function a one-item list.

    Each item is a name or a function ``f(y_true, y_pred) -> number`` (a batch mean, as in
    Keras: ``y_true`` the dense (n, outputs) targets, ``y_pred`` the model's outputs), reported
    under its ``__name__``.

    Raises
    ------
    TypeError
        If ``metrics`` is not None, a string, a function, a list or a tuple.
    ValueError
        If a name is not one of "accuracy", "binary_accuracy", "mae", or two metrics share a
        name.

    Examples
    --------
    >>> from fastnn.metrics import check_metrics
    >>> check_metrics("accuracy")
    ['accuracy']
    """
    if metrics is None:
        return []
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of names from {list(METRICS)} or functions "
                        f"f(y_true, y_pred). Received: metrics={metrics!r}")
    items = list(metrics)
    for item in items:
        if not callable(item) and (not isinstance(item, str) or item not in METRICS):
            raise ValueError(f"metrics must be names from {list(METRICS)} or functions "
                             f"f(y_true, y_pred). Received: metrics={metrics!r}")
    names = [metric_name(item) for item in items]
    if len(set(names)) != len(names) or "loss" in names:
        raise ValueError(f"metrics must have distinct names other than 'loss'. Received the "
                         f"names {names}")
    return items


def metric_name(metric: Any) -> str:
    """The key a metric is reported under: its name, or a function's ``__name__``."""
    return metric if isinstance(metric, str) else getattr(metric, "__name__", type(metric).__name__)


def batch_metric_sum(metric: Any, outputs: NDArray[Any], targets: NDArray[Any],
                     threshold: float) -> float:
    """``metric_sum`` for a name; for a function, its batch mean times the batch's rows."""
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
    name : {"accuracy", "binary_accuracy", "mae"}
        The metric (see the module docstring for the formulas).
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
    if name == "mae":
        return float(np.abs(outputs - targets).mean(axis=1).sum())
    if name == "accuracy" and outputs.shape[1] > 1:
        return float(np.count_nonzero(outputs.argmax(axis=1) == targets.argmax(axis=1)))
    # binary accuracy: each output thresholded, averaged over outputs
    hits = (outputs >= threshold) == (targets >= 0.5)
    return float(hits.mean(axis=1).sum())
