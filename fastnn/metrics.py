"""Metrics tracked during training: each returns a *sum* over the rows given, so batches add up.

``outputs`` are the model's final outputs (probabilities after a final sigmoid/softmax, logits
otherwise) and ``targets`` the dense targets the loss uses.
"""

import numpy as np

METRICS = ("accuracy", "binary_accuracy", "mae")


def check_metrics(metrics):
    if metrics is None:
        return []
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of names from {list(METRICS)}. "
                        f"Received: metrics={metrics!r}")
    names = list(metrics)
    for name in names:
        if not isinstance(name, str) or name not in METRICS:
            raise ValueError(f"metrics must be names from {list(METRICS)}. "
                             f"Received: metrics={metrics!r}")
    return names


def metric_sum(name, outputs, targets, threshold):
    """Sum over rows of the metric ``name``; ``threshold`` splits a single output into 0/1."""
    if name == "mae":
        return float(np.abs(outputs - targets).mean(axis=1).sum())
    if name == "accuracy" and outputs.shape[1] > 1:
        return float(np.count_nonzero(outputs.argmax(axis=1) == targets.argmax(axis=1)))
    # binary accuracy: each output thresholded, averaged over outputs
    hits = (outputs >= threshold) == (targets >= 0.5)
    return float(hits.mean(axis=1).sum())
