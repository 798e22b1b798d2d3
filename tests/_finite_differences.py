"""Central differences for the gradient checks of the tests (float64).

``check_model_gradients`` runs one training pass of a model with dL/d(output) = R, then nudges
every weight and every input value by +-h and compares the model's gradients with
(L(+h) - L(-h)) / 2h, where L = sum(output * R): the expected values come from the forward
pass alone, never from the backward pass under test.
"""

import numpy as np


def central_differences(loss, array, h=1e-6, skip=None):
    """d loss() / d array, element by element (``array`` is nudged in place and restored);
    elements where ``skip(index)`` is true are left 0."""
    fd = np.zeros(array.shape)
    for idx in np.ndindex(array.shape):
        if skip is not None and skip(idx):
            continue
        saved = array[idx]
        array[idx] = saved + h
        up = loss()
        array[idx] = saved - h
        down = loss()
        array[idx] = saved
        fd[idx] = (up - down) / (2 * h)
    return fd


def check_model_gradients(model, x, R, h=1e-6, tol=1e-6, before_pass=None, input_skip=None,
                          check_input=True, penalty=False, what=""):
    """Every weight gradient and dL/dx of ``model`` at ``x`` (float64; a list for several
    inputs) against central differences of L = sum(model.forward(x, training=True) * R)
    (+ the regularizers' penalty with ``penalty``). ``before_pass()`` runs before every pass
    (to replay a layer's random draw); ``input_skip(index)`` leaves input elements out (a
    nudge there would change which steps are padding, say)."""

    def loss():
        if before_pass is not None:
            before_pass()
        value = float(np.sum(model.forward(x, training=True) * R))
        return value + (model.regularization_loss() if penalty else 0.0)

    model.zero_grad()
    loss()
    dx = model.backward(R)
    grads = [np.array(g, copy=True) for g in model.grads]
    weights = model.get_weights()

    for k, w in enumerate(weights):
        shifted = [v.copy() for v in weights]

        def nudged():
            model.set_weights(shifted)
            return loss()

        fd = central_differences(nudged, shifted[k], h)
        model.set_weights(weights)
        scale = max(np.linalg.norm(fd), 1e-3)
        assert np.linalg.norm(grads[k] - fd) <= tol * scale, (what, "weight", k)
    if check_input:
        xs, dxs = (x, dx) if isinstance(x, list) else ([x], [dx])
        for i, (x_i, dx_i) in enumerate(zip(xs, dxs)):
            fd = central_differences(loss, x_i, h, input_skip)
            assert np.linalg.norm(dx_i - fd) <= tol * max(np.linalg.norm(fd), 1e-12), \
                (what, "input", i)
    return dx
