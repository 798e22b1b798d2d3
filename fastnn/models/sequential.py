"""``Sequential``: a stack of layers, each reading the output of the one before."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Iterable, Literal, Optional

import numpy as np

from fastnn import _validation as V
from fastnn.layers import Layer
from fastnn.models import graph
from fastnn.models._exclusive import exclusive
from fastnn.models.base import BaseModel
from fastnn.models.functional import SymbolicTensor

if TYPE_CHECKING:
    from fastnn.models.base import FloatDType


class Sequential(BaseModel):
    """A feed-forward network: a stack of layers trained by backpropagation.

    The forward pass runs the layers in order; each ``Dense`` layer ``k``, with an activation
    layer that follows a linear one fused into it, computes ::

        h_0 = x,    h_k = act_k(h_{k-1} @ W_k + b_k),    output = h_K

    mapping inputs ``x`` of shape (n, input_dim) to outputs of shape (n, output_dim), where
    ``output_dim`` is the width of the last layer. A training step is a forward pass, the loss
    ``L(output, y)`` (a mean over the batch), backpropagation of ``dL/d output`` through the
    layers in reverse order (giving every ``dL/dW_k`` and ``dL/db_k``), and one optimizer update
    of all parameters.

    Parameters
    ----------
    layers : iterable of Layer, optional
        Layers (or built models), in order. More can be added with ``add`` until the model
        is built. As in Keras, a ``fastnn.Input(shape=...)`` first, or ``input_shape=`` /
        ``input_dim=`` on the first layer, gives the input instead of the arguments below.
    input_dim : int, optional
        Number of input features, > 0 (2-D inputs). When given, the model is built (weights
        created) at once; otherwise ``build`` does, or (Keras' deferred build) the first
        ``fit``, ``predict`` or ``evaluate`` for the samples of its array; ``compile`` may
        come before.
    input_shape : tuple of int, optional
        The shape of one sample, e.g. ``(28, 28, 1)`` (channels-last); instead of
        ``input_dim``.
    seed : int, optional
        Seed (>= 0) of the weight initialisation and of the shuffling in ``fit``: the same
        seed gives the same weights and batches. Default: fresh OS entropy.
    dtype : {"float32", "float64"} or the NumPy type, default "float32"
        Floating-point type of the weights, the workspaces and the outputs.
    backend : {"fast", "numpy"}, default "fast"
        "fast" runs the compiled kernels; "numpy" the pure-NumPy reference.
    name : str, optional
        The model's name (its name as a layer of another model).

    Attributes
    ----------
    layers : list of Layer
        The layers, as added.
    input_dim : int or None
        Number of input values per sample; None until the model is built.
    input_shape, output_shape : tuple of int or None
        The shapes of one sample.
    path : str
        "fast" (a chain of Dense and activation layers on 2-D inputs: the compiled MLP plan)
        or "general" (per-layer kernels); ``summary()`` shows it.
    output_dim : int
        Width of the last layer (built models only).
    built : bool
        Whether the weights exist.
    dtype : numpy.dtype
        float32 or float64.
    backend : str
        "fast" or "numpy".
    seed : int or None
        The seed given.
    loss : Loss or None
        The loss set by ``compile``.
    optimizer : Optimizer or None
        The optimizer set by ``compile``.
    metrics : list of str
        The metric names set by ``compile``.
    history : History
        What the latest ``fit`` returned.
    stop_training : bool
        A callback sets it to True to end ``fit`` after the current epoch.

    Raises
    ------
    TypeError
        If ``layers`` is not an iterable of layers, or ``input_dim`` or ``seed`` is not an
        integer.
    ValueError
        If ``dtype`` or ``backend`` is not one of the choices, ``seed`` < 0, both
        ``input_dim`` and ``input_shape`` are given, or the model is built with an invalid
        input shape, without layers, or with a layer that cannot take its input, or a layer
        with weights twice (``Sequential([d, d])``: tie weights by calling the layer twice in a
        functional ``Model``).

    Examples
    --------
    Learn XOR with one hidden layer:

    >>> import fastnn as fnn
    >>> from fastnn.datasets import make_xor
    >>> X, y = make_xor()
    >>> model = fnn.Sequential([fnn.Dense(8, activation="tanh"),
    ...                         fnn.Dense(1, activation="sigmoid")],
    ...                        input_dim=2, seed=0, backend="numpy")
    >>> model = model.compile(loss="binary_cross_entropy", optimizer=fnn.Adam(lr=0.1),
    ...                       metrics=["accuracy"])
    >>> history = model.fit(X, y, epochs=200, batch_size=4, verbose=0)
    >>> model.predict(X).shape
    (4, 1)
    >>> (model.predict(X) > 0.5).ravel()
    array([False,  True,  True, False])
    """

    _defers_build = True            # compile may come first (Keras' deferred build)

    def __init__(self, layers: Optional[Iterable[Any]] = None, input_dim: Optional[int] = None,
                 seed: Optional[int] = None, dtype: FloatDType = "float32",
                 backend: Literal["fast", "numpy"] = "fast",
                 input_shape: Optional[Any] = None, name: Optional[str] = None) -> None:
        super().__init__(seed, dtype, backend, name)
        self._input_hint: Optional[tuple[int, ...]] = None   # from an Input or input_shape=
        if layers is not None:
            if isinstance(layers, (Layer, BaseModel)) or not hasattr(layers, "__iter__"):
                raise TypeError(f"layers must be a list of layers. Received: layers={layers!r}")
            for layer in layers:
                self.add(layer)
        if input_dim is not None and input_shape is not None:
            raise ValueError(f"give input_dim or input_shape, not both. Received: input_dim="
                             f"{input_dim!r}, input_shape={input_shape!r}")
        if input_dim is not None:
            self.build(V.check_positive_int("input_dim", input_dim))
        elif input_shape is not None:
            self.build(input_shape)
        elif self._input_hint is not None and self.layers:
            self.build(self._input_hint)          # Keras: an Input first builds at once

    def _deferred_input_shape(self, data: Any) -> Optional[tuple[int, ...]]:
        """What the model builds for on first use: the input its Input or first layer gave,
        else the samples of ``data`` (an array of two or more dimensions: the first counts
        samples), as Keras builds a Sequential on its first call."""
        if not self.layers:
            return None
        if self._input_hint is not None:
            return self._input_hint
        shape = getattr(data, "shape", None)
        if shape is None and isinstance(data, (list, tuple)):
            try:                                  # rows as lists (converted later anyway)
                shape = np.shape(data)
            except ValueError:                    # ragged: refused later, with the reason
                shape = None
        if isinstance(shape, tuple) and len(shape) >= 2 and all(
                isinstance(d, (int, np.integer)) and d >= 1 for d in shape[1:]):
            return tuple(int(d) for d in shape[1:])
        return None

    def add(self, layer: Any) -> None:
        """Append a layer (or a built model) to the stack.

        On a built model (Keras allows it too, e.g. ``model.pop(); model.add(new_head)``),
        the model is built again for the same input with ``layer`` last: the other layers
        keep their weights (and Dropout's mask counters), ``layer``'s weights are initialised
        from the model's seed, and the compile settings go, as with ``pop`` (the optimizer's
        state was sized for the old weights): compile again before training. A layer that
        cannot take the model's output is refused and the model stays as it was.

        Raises
        ------
        TypeError
            If ``layer`` is not a fastnn layer or model.
        ValueError
            If ``layer`` belongs to a built model or is already in this one, or (the model
            built) cannot take its output or has the name of one of its layers.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential(backend="numpy")
        >>> model.add(fnn.Dense(4, activation="relu"))
        >>> model.add(fnn.Dense(1))
        >>> model.build(3).output_dim
        1
        """
        if isinstance(layer, SymbolicTensor):
            # Keras' Sequential([Input(shape=...), ...]): the model's input, first only
            if layer.layer is not None:
                raise TypeError(f"a Sequential takes layers, and fastnn.Input(shape=...) first; "
                                f"a layer's output tensor is for the functional API (fastnn."
                                f"Model). Received: {layer!r}")
            if self.layers or self._input_hint is not None or self.built:
                raise ValueError(f"fastnn.Input(shape=...) can only begin a Sequential. "
                                 f"Received: {layer!r} after {len(self.layers)} layer(s)")
            self._input_hint = tuple(layer.shape)
            return
        if isinstance(layer, BaseModel):
            if not layer.built:
                raise ValueError(f"a model added as a layer must be built. Received: {layer!r}")
        elif not isinstance(layer, Layer) or type(layer).forward is Layer.forward:
            # a Layer subclass without a forward would have no kernels to run
            raise TypeError(f"layer must be a fastnn layer such as Dense(10) or ReLU() (a "
                            f"Layer subclass must implement forward and backward). Received: "
                            f"layer={layer!r}")
        elif layer.n_inputs != 1:
            raise TypeError(f"{type(layer).__name__} takes several inputs: build the model "
                            f"with the functional API (fastnn.Input, fastnn.Model)")
        if isinstance(layer, Layer) and layer._owner is not None and (
                layer._specs or layer.built):
            raise ValueError(f"layer {layer!r} already belongs to a built model")
        if any(layer is other for other in self.layers) and (
                isinstance(layer, BaseModel) or type(layer).weight_specs is not Layer.weight_specs):
            # a Sequential lists its layers (its config too), so a layer twice would be untied
            # by a file; tied weights are the functional API's shared layers
            raise ValueError(f"layer {layer!r} is already in this model: a layer with weights "
                             f"appears once in a Sequential (create a second layer for a "
                             f"second use, or call the layer twice in a functional "
                             f"fastnn.Model to tie the weights)")
        if self.built:
            self._add_and_rebuild(layer)
            return
        given = getattr(layer, "_given_input", None)
        if given is not None and not self.layers and self._input_hint is None:
            self._input_hint = given              # Keras' Dense(64, input_shape=(20,)) first
        self.layers.append(layer)

    def _add_and_rebuild(self, layer: Any) -> None:
        """``add`` on a built model: ``layer`` last, the model built again for the same input;
        the other layers keep their weights. ``layer`` is tried on the model's output first, so
        a layer that cannot take it is refused with the model left as it was (compiled too)."""
        if isinstance(layer, BaseModel):
            graph.ModelLayer(layer).compute_output_shape(self.output_shape)
        else:
            layer.check_dtype(self.dtype)
            layer.build(self.output_shape, self.dtype)
        names = {other.name for other in self.layers}
        if layer._name is not None and layer._name in names:
            raise ValueError(f"two layers are named {layer._name!r}: names must be unique "
                             f"within a model")
        kept = list(self.layers)
        self._rebuild(kept + [layer], kept)

    def _rebuild(self, layers: list[Any], kept: list[Any]) -> None:
        """Build the model again for its input with ``layers``, giving the ``kept`` layers
        their weights back; the compile settings go (``pop`` and ``add``). Should the build
        fail, the model is built again with ``kept``, then the error raised."""
        weights = [None if isinstance(layer, BaseModel) else layer.get_weights()
                   for layer in kept]
        shape = self.input_shape
        self._forget_build()
        self.layers[:] = layers
        try:
            self.build(shape)
        except BaseException:
            self._forget_build()
            self.layers[:] = kept
            self.build(shape)
            raise
        finally:
            for layer, values in zip(kept, weights):
                if values:
                    layer.set_weights(values)

    @exclusive
    def pop(self, rebuild: bool = True) -> Any:
        """Remove the last layer and return it (Keras' ``pop``).

        A model not built yet just loses the layer. A built model is built again for the same
        input without it: the remaining layers keep their weights (and Dropout's mask
        counters), the removed layer keeps its own (it stays bound to this model, so it cannot
        join another). The compile settings go, since the optimizer's state was sized for the
        old weights and the loss may not suit the new output: compile again before training.
        To put a new head on the shortened model, use it as a layer:
        ``fnn.Sequential([model, fnn.Dense(10)])``.

        Parameters
        ----------
        rebuild : bool, default True
            Keras' argument. fastnn keeps the weights in the model, so a built model is always
            built again; ``rebuild=False`` is refused for it (it would lose the weights).

        Returns
        -------
        Layer or model
            The layer removed.

        Raises
        ------
        IndexError
            If the model has no layers (as Keras' and a list's ``pop``).
        ValueError
            If the model is built and has one layer only (a built model needs one), or
            ``rebuild=False`` for a built model.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(4), fnn.Dense(2)], input_dim=3, backend="numpy")
        >>> model.pop()
        Dense(2, activation='linear')
        >>> model.output_shape, [w.shape for w in model.get_weights()]
        ((4,), [(3, 4), (4,)])
        """
        rebuild = V.check_bool("rebuild", rebuild)
        if not self.layers:
            raise IndexError("pop: the Sequential has no layers")
        if not self.built:
            return self.layers.pop()
        if not rebuild:
            raise ValueError("pop(rebuild=False) would leave a built model without its "
                             "weights (fastnn keeps them in the model): use pop(), which "
                             "builds it again with the remaining layers' weights")
        if len(self.layers) == 1:
            raise ValueError(f"pop: a built Sequential needs at least one layer, and this one "
                             f"has only {self.layers[0]!r}")
        removed = self.layers[-1]
        self._rebuild(self.layers[:-1], self.layers[:-1])
        return removed

    def _forget_build(self) -> None:
        """Back to an unbuilt, uncompiled model with the same layers (pop's rebuild)."""
        self._built, self._fast, self._plan = False, False, []
        self._nodes, self._outputs, self._n_inputs = [], [], 1
        self._relu_fused, self._pooled_grad = frozenset(), {}
        self._forward_plan = self._train_ws = self._train_plan = self._last_forward = None
        self._runs = self._bounds = None
        self.__dict__.pop("_stage", None)
        self._local = threading.local()            # the per-thread predict workspaces
        self.input_dim = self.input_shape = self.output_shape = None
        self.loss = self.optimizer = self._pending_compile = None
        self.metrics, self._metric_items = [], []
        self.__dict__.pop("_loss_kind", None)

    @exclusive
    def build(self, input_shape: Any) -> Sequential:
        """Create the weights for samples of ``input_shape`` (an int: that many features).

        Builds each layer for the output shape of the one before, lays all weights out in
        one flat buffer and initialises them from the model's seed; a ``compile`` made before
        is completed. Keras' form with the batch axis first, ``(None, 28, 28, 1)``, is taken.

        Returns
        -------
        Sequential
            The model itself.

        Raises
        ------
        TypeError
            If ``input_shape`` is not an integer or a tuple of them.
        ValueError
            If a dimension is < 1, the model is already built or has no layers, or a layer
            cannot take its input.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(4), fnn.Dense(2)], backend="numpy")
        >>> model.built, model.build(3).built
        (False, True)
        >>> [w.shape for w in model.get_weights()]
        [(3, 4), (4,), (4, 2), (2,)]
        """
        if isinstance(input_shape, int) and not isinstance(input_shape, bool):
            input_shape = (V.check_positive_int("input_dim", input_shape),)
        elif isinstance(input_shape, (tuple, list)) and len(input_shape) > 1 and \
                input_shape[0] is None:
            input_shape = tuple(input_shape[1:])  # Keras' (None, ...): the batch axis first
        shape = V.check_shape("input_shape", input_shape)
        if self.built:
            built = (f"input_dim={self.input_dim}" if len(self.input_shape) == 1
                     else f"input_shape={self.input_shape}")
            raise ValueError(f"model is already built with {built}")
        if not self.layers:
            raise ValueError("a Sequential model needs at least one layer. Received: layers=[]")
        nodes = [graph.Node(0, None, [], shape)]
        for i, layer in enumerate(self.layers):
            wrapped = graph.ModelLayer(layer) if isinstance(layer, BaseModel) else layer
            nodes.append(graph.Node(i + 1, wrapped, [i], None))
        self._build_graph([shape], nodes, [len(nodes) - 1], chain=True)
        pending, self._pending_compile = self._pending_compile, None
        if pending is not None:
            self.compile(*pending)                # compiled before it was built
        return self

    def get_config(self) -> dict[str, Any]:
        """The architecture as a JSON-serialisable dict (weights, backend and compile settings
        not included).

        Returns
        -------
        dict
            ``{"layers": [layer configs], "input_dim": ..., "seed": ..., "dtype": ...}``
            (``input_shape`` instead of ``input_dim`` for N-D samples); each layer config is
            what ``fastnn.layers.layer_from_config`` rebuilds the layer from.

        Examples
        --------
        >>> import fastnn as fnn
        >>> model = fnn.Sequential([fnn.Dense(2, activation="relu")], input_dim=3, seed=0,
        ...                        backend="numpy")
        >>> model.get_config()                           # doctest: +NORMALIZE_WHITESPACE
        {'layers': [{'class': 'Dense', 'units': 2, 'activation': 'relu'}],
         'input_dim': 3, 'seed': 0, 'dtype': 'float32'}
        """
        config: dict[str, Any] = {"layers": [
            {"class": "Model", "model": layer._model_config()} if isinstance(layer, BaseModel)
            else layer.get_config() for layer in self.layers]}
        if self.input_shape is None or len(self.input_shape) == 1:
            config["input_dim"] = self.input_dim
        else:
            config["input_shape"] = list(self.input_shape)
        config.update({"seed": self.seed, "dtype": self.dtype.name})
        if self._name is not None:
            config["name"] = self._name
        return config

    def _unbuilt_reduce(self) -> Any:
        return (Sequential, (self.layers, None, self.seed, self.dtype.name, self.backend,
                             self._input_hint))

    def __repr__(self) -> str:
        shape = (f"input_dim={self.input_dim}" if self.input_shape is None
                 or len(self.input_shape) == 1 else f"input_shape={self.input_shape}")
        return (f"Sequential({self.layers!r}, {shape}, dtype={self.dtype.name!r}, "
                f"backend={self.backend!r})")
