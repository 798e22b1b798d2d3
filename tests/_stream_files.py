"""A check the dropout tests share: a model saved after training goes on with the same draws
once loaded (the layers' stream state is in the file)."""

import numpy as np

import fastnn as fnn


def reload_and_train_alike(model, xs, y, path, cls, steps=2):
    """Train ``model`` one step, save it to ``path``, load it, train both ``steps`` more steps
    and require the same weights bit for bit; returns the loaded model's ``cls`` layer."""
    model.compile("mse", optimizer="sgd")
    model.train_on_batch(xs, y)
    model.save(path)
    again = fnn.load(path)
    again.compile("mse", optimizer="sgd")
    for _ in range(steps):
        model.train_on_batch(xs, y)
        again.train_on_batch(xs, y)
    for a, b in zip(model.get_weights(), again.get_weights()):
        assert np.array_equal(a, b)
    return [layer for layer in again.layers if isinstance(layer, cls)][0]
