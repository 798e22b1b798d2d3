"""The low-level loop, for custom training (a GAN): ``forward``, ``backward``, ``grads``,
``zero_grad``, and what ``optimizer.step(model)`` calls; ``model(x)`` for inference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from fastnn import _validation as V
from fastnn.models import graph
from fastnn.models._exclusive import exclusive

if TYPE_CHECKING:
    from numpy.typing import NDArray

    FloatArray = NDArray[np.floating[Any]]


class LowLevel:
    """Mixin of ``BaseModel``."""

    def __call__(self: Any, x: Any) -> Any:
        """``model(x)``: inference on all of ``x`` at once (``predict`` without batching); on
        a symbolic tensor (``fastnn.Input``), the model called as a layer of another."""
        from fastnn.models.functional import SymbolicTensor, call_layer
        if isinstance(x, SymbolicTensor) or (isinstance(x, (list, tuple)) and x
                                             and isinstance(x[0], SymbolicTensor)):
            return call_layer(self, x)
        return self._predict_whole(x, "model(x)")

    def _predict_whole(self: Any, x: Any, what: str) -> Any:
        """All of ``x`` in one pass (``model(x)``, ``predict_on_batch``); ``what`` names the
        call in errors."""
        plan = self._forward_plan            # small, well-formed inputs: one compiled call
        if plan is not None:
            out = plan.predict(x)
            if out is not None:
                return out
        self._check_built(what, x)
        X = self._inputs(x, "x")
        return self._unpack_outputs(self._predict_array(X, X.shape[0]))

    @exclusive
    def forward(self: Any, x: ArrayLike, training: bool = True) -> FloatArray:
        """The outputs for the batch ``x``; with ``training``, keeping what ``backward`` needs.

        For custom training loops (a GAN): ``out = model.forward(x)``, a loss and its gradient
        ``dout`` (``fastnn.losses.get(name).value_and_grad(y, out)``), ``model.backward(dout)``,
        then ``optimizer.step(model)``. ``backward`` follows the latest ``forward``. The final
        activation is not fused with any loss here: ``dout`` is dL/d(output).

        Returns
        -------
        ndarray of shape (n, output_dim)
            A new array, in the model's dtype.

        Examples
        --------
        >>> import numpy as np
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(2, activation="sigmoid")], input_dim=3, seed=0,
        ...                        backend="numpy")
        >>> out = model.forward(np.ones((4, 3)))
        >>> dx = model.backward(out - 1.0)                  # dL/dout of 0.5 * sum((out - 1)^2)
        >>> dx.shape, [g.shape for g in model.grads]
        ((4, 3), [(3, 2), (2,)])
        >>> opt = fnn.SGD(lr=0.1)
        >>> opt.step(model); model.zero_grad()
        """
        self._check_built("forward", x)
        training = V.check_bool("training", training)
        X = self._inputs(x, "x")
        if not training:
            self._last_forward = None
            return self._unpack_outputs(self._predict_array(X, X.shape[0]))
        rows = X.shape[0]
        ws = self._train_workspace(rows)
        out = self._on_chosen_threads("forward", rows, self._forward, X, ws, rows, None, True)
        self._last_forward = (X, rows)
        return self._unpack_outputs(out.copy())

    @exclusive
    def backward(self: Any, dout: ArrayLike) -> FloatArray:
        """Backpropagate ``dout`` = dL/d(output) of the latest ``forward(x, training=True)``:
        the parameter gradients are ADDED to ``model.grads`` (``zero_grad`` clears them); returns
        dL/dx, shaped like x. The regularizers' gradients are added too (their penalty:
        ``regularization_loss()``).

        Raises
        ------
        ValueError
            If no training forward pass precedes it, or ``dout`` is not (n, output_dim) for
            that pass's n rows, or holds NaN or inf.
        """
        if self._last_forward is None:
            raise ValueError("backward needs a forward(x, training=True) of the same batch first")
        X, rows = self._last_forward
        ws = self._train_workspace(rows)
        ws.output_grad(rows)[...] = self._pack_outputs("dout", dout, rows)
        dx = np.empty((rows, self.input_dim), dtype=self.dtype)
        if not self._fast:
            self._zero_grads()
        self._on_chosen_threads("backward", rows, self._backward, X, ws, rows, False, dx)
        if not self._fast:
            self._regularize(with_grads=True)
        for owner in self._owners():
            owner._grad_sum += owner._grads
        return self._unpack_inputs(dx)

    def _unpack_inputs(self: Any, dx: Any) -> Any:
        n = dx.shape[0]
        if self._n_inputs == 1:
            return dx if self._fast else dx.reshape(n, *self.input_shape)
        parts, offset = [], 0
        for shape in self.input_shape:
            w = graph.width(shape)
            parts.append(dx[:, offset:offset + w].reshape(n, *shape))
            offset += w
        return parts

    @property
    def grads(self: Any) -> list[FloatArray]:
        """The gradients ``backward`` accumulated, as views shaped like ``get_weights()``."""
        self._check_built("grads")
        views = []
        for owner, layer, k in self._entries():
            start = self._offset(owner, layer._weights[k])
            shape = layer._weights[k].shape
            views.append(owner._grad_sum[start:start + layer._weights[k].size].reshape(shape))
        return views

    def zero_grad(self: Any) -> None:
        """Set the gradients ``backward`` accumulates to zero."""
        self._check_built("zero_grad")
        for owner in self._owners():
            owner._grad_sum[...] = 0

    def regularization_loss(self: Any) -> float:
        """The regularizers' penalty on the current weights (``fit`` adds it to the loss)."""
        self._check_built("regularization_loss")
        return self._regularize(with_grads=False)

    def _step_optimizer(self: Any, optimizer: Any) -> None:
        """``optimizer.step(model)``: one update of the trainable weights from the gradients
        ``backward`` accumulated; the optimizer is built for them on first use (the weights
        trainable then are the ones it updates, as at ``compile``)."""
        self._check_built("optimizer.step(model)")
        if optimizer._dtype is None:
            runs = self._make_runs()
            optimizer.build(sum(size for _, _, size in runs), self.dtype)
            optimizer._model_runs = runs
            optimizer._model_bounds = self._make_bounds()
        runs = getattr(optimizer, "_model_runs", None)
        bounds = getattr(optimizer, "_model_bounds", None)
        if runs is None and optimizer is self.optimizer:
            runs, bounds = self._runs, self._bounds
        size = sum(s for _, _, s in runs or [])
        if (runs is None or optimizer._dtype != self.dtype or any(
                a is not None and a.shape != (size,) for a in optimizer.state().values())
                or not all(owner in self._owners() for owner, _, _ in runs)):
            raise ValueError(f"{optimizer!r} was built for other parameters than this model's "
                             f"{size} {self.dtype.name} trainable weights: use one "
                             f"optimizer per model")
        saved = self._runs, self._bounds
        self._runs, self._bounds = runs, bounds
        try:
            self._on_chosen_threads("update", 1, self._apply_update, optimizer, True)
        finally:
            self._runs, self._bounds = saved
