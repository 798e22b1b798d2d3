"""Keras' ``Lambda`` layer: a NumPy function as a layer.

fastnn has no automatic differentiation: a ``Lambda`` computes ``function(x)`` forward, and a
gradient only when it is given one (``gradient(x, dy) -> dx``). Where no gradient needs to pass
through it (before the first layer with weights: preprocessing such as ``x / 255``), none is
needed; elsewhere the backward pass stops with a ValueError saying so. A model file holds no
code, so a model with a ``Lambda`` saves its weights (``save_weights``), not itself.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot


class Lambda(Layer):
    """``y = function(x, **arguments)`` on the batch, a NumPy array (n, ...) (a list of them when
    called on several tensors), returning an array (n, *output_shape).

    Parameters
    ----------
    function : callable
        The computation: NumPy arrays in, one array out (any real dtype; cast to the model's).
    output_shape : tuple of int or callable, optional
        One sample's output shape, or a function of the input shape(s) giving it. By default
        found by calling ``function`` on one sample of zeros when the model is built.
    arguments : dict, optional
        Keyword arguments for ``function`` (Keras' ``arguments``).
    gradient : callable, optional
        ``gradient(x, dy) -> dx``: dL/dx from dL/dy (for several inputs, ``x`` and the result
        are lists). Without it the layer passes no gradient back.
    name, trainable
        See ``Layer``.

    Raises
    ------
    TypeError
        For a ``function`` or ``gradient`` that is not callable, or ``arguments`` that is not a
        dict of names; at run time, for a function that returns no real array.
    ValueError
        At build, for an output shape that is not positive integers; at run time, for a result
        of the wrong shape, or when a gradient must pass and ``gradient`` is not given.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Lambda(lambda x: x / 255.0), fnn.Dense(2)], input_dim=3,
    ...                        seed=0, backend="numpy")
    >>> model.layers[0].output_shape
    (3,)
    >>> square = fnn.Lambda(lambda x: x ** 2, gradient=lambda x, dy: 2 * x * dy)
    >>> net = fnn.Sequential([fnn.Dense(2), square], input_dim=3, backend="numpy")
    >>> net.predict(np.ones((1, 3))).shape
    (1, 2)
    """

    def __init__(self, function: Callable[..., Any], output_shape: Any = None,
                 arguments: Optional[dict[str, Any]] = None,
                 gradient: Optional[Callable[..., Any]] = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        if not callable(function):
            raise TypeError(f"function must be callable. Received: function="
                            f"{V._describe(function)}")
        if gradient is not None and not callable(gradient):
            raise TypeError(f"gradient must be callable or None. Received: gradient="
                            f"{V._describe(gradient)}")
        if arguments is not None and (not isinstance(arguments, dict) or not all(
                isinstance(k, str) for k in arguments)):
            raise TypeError(f"arguments must be a dict of keyword arguments. Received: "
                            f"arguments={V._describe(arguments)}")
        self.function, self.gradient = function, gradient
        self.arguments = dict(arguments or {})
        self._output_shape = output_shape
        if output_shape is not None and not callable(output_shape):
            self._output_shape = V.check_shape("output_shape", output_shape)

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        """``layer(x)`` or ``layer([a, b, ...])`` on symbolic tensors."""
        if isinstance(inputs, (list, tuple)):
            self.expect_inputs(len(inputs))
        return super().__call__(inputs, **kwargs)

    def expect_inputs(self, count: int) -> None:
        if count > 1:
            self.n_inputs = None

    def compute_output_shape(self, input_shape: Any) -> Any:
        given = self._output_shape
        if callable(given):
            return V.check_shape("output_shape", given(input_shape))
        if given is not None:
            return given
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        probe = [np.zeros((1, *s), np.float64) for s in shapes]
        with np.errstate(all="ignore"):
            out = self._call(probe if isinstance(input_shape, list) else probe[0])
        return tuple(int(d) for d in out.shape[1:])

    def _call(self, x: Any) -> Any:
        out = self.function(x, **self.arguments)
        if not isinstance(out, np.ndarray):
            out = np.asarray(out)
        if out.dtype.kind not in "biuf":
            raise TypeError(f"{self.name}: function must return a real array. Received: "
                            f"{type(out).__name__} of dtype {out.dtype}")
        return out

    def _checked(self, out: Any, rows: int, shape: tuple[int, ...], what: str) -> None:
        if out.shape != (rows, *shape):
            raise ValueError(f"{self.name}: {what} must return an array of shape "
                             f"{(rows, *shape)}. Received: shape {out.shape}")

    def forward(self, ctx: Slot, x: Any, training: bool) -> FloatArray:
        out = self._call(x)
        self._checked(out, ctx.rows, self.output_shape, "function")
        y = ctx.rows_buffer("y", self.output_shape)
        np.copyto(y, out, casting="unsafe")
        ctx.saved["x"] = x
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Any:
        several = isinstance(self.input_shape, list)
        shapes = self.input_shape if several else [self.input_shape]
        targets = [ctx.dx_target(i) for i in range(len(shapes))]
        if all(t is None for t in targets):
            return [None] * len(shapes) if several else None
        if self.gradient is None:
            raise ValueError(f"{self.name}: a Lambda has no gradient of its own, and one must "
                             f"pass back through it here: give Lambda(..., gradient=lambda x, "
                             f"dy: dx), or use it where no gradient passes (before the first "
                             f"layer with weights)")
        grads = self.gradient(ctx.saved["x"], dy)
        grads = grads if several else [grads]
        if several and (not isinstance(grads, (list, tuple)) or len(grads) != len(shapes)):
            raise TypeError(f"{self.name}: gradient must return a list of {len(shapes)} arrays "
                            f"(one per input)")
        out = []
        for i, (g, shape) in enumerate(zip(grads, shapes)):
            g = np.asarray(g)
            self._checked(g, ctx.rows, shape, "gradient")
            target = targets[i]
            if target is None:
                target = ctx.rows_buffer(f"dx{i}", shape)
            np.copyto(target, g, casting="unsafe")
            out.append(target)
        return out if several else out[0]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["function"] = getattr(self.function, "__name__", type(self.function).__name__)
        return config

    def __repr__(self) -> str:
        return f"Lambda({getattr(self.function, '__name__', 'function')})"
