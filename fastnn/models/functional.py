"""The Keras functional API: ``Input``, layers called on symbolic tensors, ``Model``.

Calling a layer on a ``SymbolicTensor`` records the call (which layer, on which tensors) and
returns the symbolic output; ``Model(inputs, outputs)`` walks back from the outputs to the
inputs, orders the calls topologically and builds the layers. Any directed acyclic graph:
several inputs and outputs, a tensor read by several layers (its gradients are summed), a model
called as a layer of another.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Literal, Optional, Sequence, Union

import numpy as np

from fastnn import _validation as V
from fastnn.layers import Layer, OutputOf
from fastnn.models import graph
from fastnn.models.base import BaseModel

if TYPE_CHECKING:
    from fastnn.models.base import FloatDType

_ids = itertools.count()


class SymbolicTensor:
    """A placeholder for the data flowing between layers while a graph is described.

    ``shape`` is the shape of one sample (the batch axis is left out).
    """

    __slots__ = ("shape", "layer", "inputs", "id", "name")

    def __init__(self, shape: Any, layer: Any = None, inputs: Sequence[SymbolicTensor] = (),
                 name: Optional[str] = None) -> None:
        self.shape, self.layer, self.inputs = shape, layer, list(inputs)
        self.id = next(_ids)
        self.name = name

    def __repr__(self) -> str:
        made_by = "Input" if self.layer is None else type(self.layer).__name__
        return f"<SymbolicTensor shape=(None, {', '.join(map(str, self.shape))}) from {made_by}>"


def Input(shape: Any = None, name: Optional[str] = None, *, batch_size: Optional[int] = None,
          dtype: Any = None, batch_shape: Any = None) -> SymbolicTensor:
    """A model input: samples of ``shape`` (the batch axis left out), e.g. ``(28, 28, 1)``.

    Keras' other arguments are taken: ``batch_shape=(None, 28, 28, 1)`` instead of ``shape``;
    ``batch_size`` and ``dtype`` are checked and then left to the data, since a fastnn model
    takes any number of rows and converts its inputs to its own dtype (token ids included).

    Raises
    ------
    TypeError, ValueError
        If ``shape`` is not a positive int or a tuple of them, both or neither of ``shape``
        and ``batch_shape`` are given, ``batch_size`` is not a positive int or ``dtype`` is
        not a NumPy dtype.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.Input((32, 8))
    <SymbolicTensor shape=(None, 32, 8) from Input>
    >>> fnn.Input(batch_shape=(None, 32, 8), dtype="int32")
    <SymbolicTensor shape=(None, 32, 8) from Input>
    """
    if (shape is None) == (batch_shape is None):
        raise TypeError(f"Input takes one of shape=(...) and batch_shape=(None, ...). Received: "
                        f"shape={V._describe(shape)}, batch_shape={V._describe(batch_shape)}")
    if batch_shape is not None:
        if not isinstance(batch_shape, (tuple, list)) or len(batch_shape) < 2:
            raise ValueError(f"batch_shape must be (batch, *sample_shape), such as (None, 28, "
                             f"28, 1). Received: batch_shape={V._describe(batch_shape)}")
        if batch_shape[0] is not None:
            V.check_positive_int("batch_shape[0]", batch_shape[0])
        shape = V.check_shape("batch_shape[1:]", tuple(batch_shape[1:]))
    if batch_size is not None:
        V.check_positive_int("batch_size", batch_size)
    if dtype is not None:
        try:
            np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be a NumPy dtype such as 'float32'. Received: "
                            f"dtype={V._describe(dtype)}") from None
    return SymbolicTensor(V.check_shape("shape", shape), name=name)


def InputLayer(shape: Any = None, batch_size: Optional[int] = None, dtype: Any = None,
               name: Optional[str] = None, *, input_shape: Any = None,
               batch_shape: Any = None) -> SymbolicTensor:
    """Keras' ``InputLayer``, the first element of a Sequential: the same as ``Input``.

    ``input_shape=`` is Keras 2's spelling of ``shape``.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.Sequential([fnn.InputLayer(shape=(4,)), fnn.Dense(2)]).input_shape
    (4,)
    """
    if input_shape is not None:
        if shape is not None:
            raise TypeError(f"InputLayer takes shape= or input_shape=, not both. Received: "
                            f"shape={V._describe(shape)}, input_shape={V._describe(input_shape)}")
        shape = input_shape
    return Input(shape, name, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape)


def _tensors(name: str, value: Any) -> list[SymbolicTensor]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items or not all(isinstance(t, SymbolicTensor) for t in items):
        raise TypeError(f"{name} must be a symbolic tensor (from fastnn.Input or a layer "
                        f"call) or a list of them. Received: {V._describe(value)}")
    return items


def call_layer(layer: Any, inputs: Any, *args: Any, _bundle: bool = False,
               **kwargs: Any) -> Any:
    """``layer(inputs)`` on symbolic tensors: check the call, compute the output shape. A layer
    with several outputs gives a list of tensors, each picked by an ``OutputOf`` (``_bundle``:
    the layer's own node instead, as a model file lists it)."""
    if args or kwargs:
        raise TypeError(f"{type(layer).__name__} takes its input tensor(s) only. Received "
                        f"extra arguments {args or ''}{kwargs or ''}")
    tensors = _tensors("the layer's input", inputs)
    if isinstance(layer, BaseModel):
        if not layer.built:
            raise ValueError(f"a model called on a tensor must be built: {layer!r}")
        wrapped: Layer = graph.ModelLayer(layer)
    else:
        wrapped = layer
    multi = wrapped.n_inputs != 1
    if multi and not isinstance(inputs, (list, tuple)):
        raise TypeError(f"{type(layer).__name__} takes a list of tensors. Received: {inputs!r}")
    if not multi and (isinstance(inputs, (list, tuple)) and len(tensors) != 1):
        raise TypeError(f"{type(layer).__name__} takes one tensor. Received: {len(tensors)}")
    shapes = [t.shape for t in tensors]
    shape = wrapped.compute_output_shape(shapes if multi else shapes[0])
    if isinstance(layer, BaseModel) and isinstance(shape, list):
        raise ValueError(f"model {layer.name} has several outputs: calling it as a layer "
                         f"needs one")
    out = SymbolicTensor(shape, wrapped, tensors)
    if not isinstance(shape, list) or _bundle:
        return out
    from fastnn.layers.bidirectional import OutputOf
    return [SymbolicTensor(s, OutputOf(i), [out]) for i, s in enumerate(shape)]


def _graph(inputs: list[SymbolicTensor], outputs: list[SymbolicTensor]
           ) -> tuple[list[graph.Node], list[int]]:
    """The nodes in topological order (inputs first) and the indices of the outputs."""
    index = {t.id: i for i, t in enumerate(inputs)}
    if len(index) != len(inputs):
        raise ValueError("the same Input appears twice in inputs")
    nodes = [graph.Node(i, None, [], t.shape) for i, t in enumerate(inputs)]
    order: list[SymbolicTensor] = []
    state: dict[int, int] = {}          # 1: on the current path, 2: done
    for out in outputs:
        stack: list[tuple[SymbolicTensor, int]] = [(out, 0)]
        while stack:
            t, k = stack.pop()
            if t.id in index or state.get(t.id) == 2 and k == 0:
                continue
            if t.layer is None:
                raise ValueError(f"the outputs depend on an Input that is not in inputs: "
                                 f"{t!r} (pass every Input the graph reads)")
            state[t.id] = 1
            if k < len(t.inputs):
                stack.append((t, k + 1))
                stack.append((t.inputs[k], 0))
            else:
                state[t.id] = 2
                if t.id not in index:
                    index[t.id] = len(inputs) + len(order)
                    order.append(t)
    for t in order:
        layer = t.layer
        nodes.append(graph.Node(index[t.id], layer, [index[i.id] for i in t.inputs], t.shape,
                                multi=layer.n_inputs != 1))
    return nodes, [index[t.id] for t in outputs]


class Model(BaseModel):
    """A model over any directed acyclic graph of layers (the Keras functional API).

    Parameters
    ----------
    inputs : SymbolicTensor or list of them
        From ``fastnn.Input``.
    outputs : SymbolicTensor or list of them
        Tensors computed from the inputs by calling layers (or models) on them.
    seed, dtype, backend, name
        As for ``Sequential``.

    Several inputs are given to ``fit``/``predict`` as a list of arrays in the order of
    ``inputs``; several outputs come back as a list (``compile``/``fit`` need one output;
    train several with the low-level loop).

    A layer (or a model) called at several places is shared, as in Keras: its weights exist
    once (``model.layers``, ``get_weights``, ``count_params`` and ``summary`` list them once)
    and their gradient is the sum over the calls; each call keeps its own saved tensors, and
    a BatchNormalization's moving statistics update once per call. A later call must take
    the input shape(s) of the first.

    Raises
    ------
    TypeError
        If ``inputs`` or ``outputs`` are not symbolic tensors.
    ValueError
        If an output depends on an input not listed, a layer belongs to another model, a layer
        cannot take its input, a shared layer is called on another shape than at its first
        call, a stateful recurrent layer is called twice, or a layer wrapped by another
        (Bidirectional's) is also used on its own.

    Examples
    --------
    A residual block:

    >>> import numpy as np
    >>> import fastnn as fnn
    >>> inp = fnn.Input((8,))
    >>> h = fnn.Dense(8, activation="relu")(inp)
    >>> out = fnn.Dense(1)(fnn.Add()([inp, h]))
    >>> model = fnn.Model(inp, out, seed=0, backend="numpy")
    >>> model.predict(np.zeros((2, 8))).shape
    (2, 1)
    >>> [layer.name for layer in model.layers]
    ['dense', 'add', 'dense_1']

    A Siamese model: one Dense tower (shared) on two inputs:

    >>> tower = fnn.Dense(4, activation="relu")
    >>> a, b = fnn.Input((8,)), fnn.Input((8,))
    >>> siamese = fnn.Model([a, b], fnn.Dense(1)(fnn.Subtract()([tower(a), tower(b)])))
    >>> [layer.name for layer in siamese.layers], siamese.count_params()
    (['dense', 'subtract', 'dense_1'], 41)
    """

    def __init__(self, inputs: Any, outputs: Any, seed: Optional[int] = None,
                 dtype: FloatDType = "float32", backend: Literal["fast", "numpy"] = "fast",
                 name: Optional[str] = None) -> None:
        super().__init__(seed, dtype, backend, name)
        ins, outs = _tensors("inputs", inputs), _tensors("outputs", outputs)
        nodes, out_index = _graph(ins, outs)
        if len(nodes) == len(ins):
            raise ValueError("the model has no layers: its outputs are its inputs")
        self._input_tensors, self._output_tensors = ins, outs
        self._list_in = isinstance(inputs, (list, tuple))
        self.layers = list({id(layer): layer for layer in (
            n.layer.model if isinstance(n.layer, graph.ModelLayer) else n.layer
            for n in nodes[len(ins):])}.values())       # a shared layer once, as in Keras
        self._build_graph([t.shape for t in ins], nodes, out_index,
                          chain=self._is_chain(nodes, out_index, len(ins)))

    @staticmethod
    def _is_chain(nodes: list[graph.Node], outputs: list[int], n_in: int) -> bool:
        # a layer of several outputs (return_state) followed by the pick of one is a chain of
        # nodes, but not a Sequential's chain: its layer returns a list
        return (n_in == 1 and outputs == [len(nodes) - 1]
                and all(n.inputs == [n.index - 1] and not isinstance(n.layer, OutputOf)
                        for n in nodes[1:]))

    def build(self, input_shape: Any = None) -> Model:
        """A functional model is built when it is made; this returns it (Keras' API)."""
        return self

    def get_config(self) -> dict[str, Any]:
        """The graph as a JSON-serialisable dict: ``inputs`` (shapes), ``layers`` (each
        config with ``inbound``, the indices of the nodes it reads: inputs first, then the
        layers in order; a later call of a shared layer or model is ``{"shared": <index of
        its first entry in layers>, "inbound": [...]}``), ``outputs`` (node indices),
        ``seed``, ``dtype``."""
        n_in = self._n_inputs
        layers: list[dict[str, Any]] = []
        first: dict[int, int] = {}          # a shared layer's (or model's) first entry
        for node in self._nodes[n_in:]:
            layer = node.layer
            key = id(getattr(layer, "model", layer))
            if key in first:
                layers.append({"shared": first[key], "inbound": list(node.inputs)})
                continue
            first[key] = len(layers)
            if isinstance(layer, graph.ModelLayer):
                entry = {"class": "Model", "model": layer.model._model_config()}
            else:
                entry = layer.get_config()                  # type: ignore[union-attr]
            layers.append({"config": entry, "inbound": list(node.inputs)})
        config: dict[str, Any] = {
            "inputs": [list(self._nodes[k].shape) for k in range(n_in)], "layers": layers,
            "outputs": list(self._outputs), "seed": self.seed, "dtype": self.dtype.name}
        if self._name is not None:
            config["name"] = self._name
        return config

    def _unbuilt_reduce(self) -> Any:
        raise TypeError("a functional model is always built")

    def __repr__(self) -> str:
        return (f"Model(inputs={self.input_shape}, outputs={self.output_shape}, "
                f"layers={len(self.layers)}, dtype={self.dtype.name!r}, "
                f"backend={self.backend!r})")


def model_from_config(config: dict[str, Any], backend: Optional[str] = None) -> BaseModel:
    """Rebuild a ``Sequential`` or ``Model`` from its ``_model_config()`` (weights not set)."""
    from fastnn.layers import layer_from_config
    from fastnn.models.sequential import Sequential

    kind = config.get("class", "Sequential")
    dtype, seed, name = config.get("dtype", "float32"), config.get("seed"), config.get("name")
    backend = backend or config.get("backend", "fast")
    if backend not in ("fast", "numpy"):
        raise ValueError(f"backend must be 'fast' or 'numpy'. "
                         f"Received: backend={V._describe(backend)}")
    if kind == "Sequential":
        layers = [model_from_config(c["model"], backend) if c.get("class") == "Model"
                  and "model" in c else layer_from_config(c) for c in config["layers"]]
        shape = config.get("input_shape")
        return Sequential(layers, input_dim=config.get("input_dim"), seed=seed, dtype=dtype,
                          backend=backend,                   # type: ignore[arg-type]
                          input_shape=None if shape is None else tuple(shape),
                          name=name)
    if kind != "Model":
        raise ValueError(f"unknown model class {kind!r}")
    tensors: list[Any] = [Input(tuple(s)) for s in config["inputs"]]
    n_in = len(tensors)
    made: list[Union[Layer, BaseModel]] = []
    entries = config["layers"]
    for i, entry in enumerate(entries):
        inbound = entry["inbound"]
        if (not isinstance(inbound, list) or not inbound
                or any(type(j) is not int or not 0 <= j < n_in + i for j in inbound)):
            raise ValueError(f"layer {i}: 'inbound' must list earlier nodes (0 to "
                             f"{n_in + i - 1}). Received: {V._describe(inbound)}")
        layer: Union[Layer, BaseModel]
        if "shared" in entry:
            ref = check_shared_entry(entries, i, entry)
            layer = made[ref]
            made.append(layer)
            tensors.append(call_layer(layer, [tensors[j] for j in inbound]
                                      if _takes_list(layer) else tensors[inbound[0]],
                                      _bundle=True))
            continue
        c = entry["config"]
        layer = (model_from_config(c["model"], backend) if c.get("class") == "Model"
                 else layer_from_config(c))
        made.append(layer)
        args = [tensors[j] for j in inbound]
        if isinstance(layer, Layer):
            layer.expect_inputs(len(inbound))
        multi = isinstance(layer, Layer) and layer.n_inputs != 1
        tensors.append(call_layer(layer, args if multi else args[0], _bundle=True))
    outs = config["outputs"]
    if (not isinstance(outs, list) or not outs
            or any(type(j) is not int or not n_in <= j < len(tensors) for j in outs)):
        raise ValueError(f"'outputs' must list layer nodes ({n_in} to {len(tensors) - 1}). "
                         f"Received: {V._describe(outs)}")
    return Model(tensors[:n_in] if n_in > 1 else tensors[0],
                 [tensors[j] for j in outs] if len(outs) > 1 else tensors[outs[0]],
                 seed=seed, dtype=dtype, backend=backend, name=name)   # type: ignore[arg-type]


def _takes_list(layer: Any) -> bool:
    if isinstance(layer, BaseModel):
        return layer._n_inputs != 1
    return layer.n_inputs != 1


def check_shared_entry(entries: list[Any], i: int, entry: dict[str, Any]) -> int:
    """The index of the entry that a later call's entry ``entries[i]`` (``{"shared": k,
    "inbound": [...]}``) names, checked: an earlier entry with a config of its own, wired to
    as many nodes. ValueError otherwise."""
    ref = entry["shared"]
    if (type(ref) is not int or not 0 <= ref < i or not isinstance(entries[ref], dict)
            or "shared" in entries[ref] or set(entry) != {"shared", "inbound"}):
        raise ValueError(f"layer {i}: 'shared' must be the index of an earlier entry of "
                         f"'layers' that has its own config (0 to {i - 1}), and the entry "
                         f"must hold only 'shared' and 'inbound'. Received: "
                         f"{V._describe(entry)}")
    before = entries[ref].get("inbound")
    if not isinstance(before, list) or len(before) != len(entry["inbound"]):
        raise ValueError(f"layer {i}: the shared layer {ref} reads "
                         f"{len(before) if isinstance(before, list) else '?'} tensor(s), this "
                         f"call {len(entry['inbound'])}")
    return ref


def clone_model(model: BaseModel) -> BaseModel:
    """Keras' ``clone_model``: a new model with ``model``'s architecture, backend and seed, and
    fresh weights (those its seed gives; a model made without one gets new random ones). The
    compile settings are not copied, as in Keras.

    Raises
    ------
    TypeError
        If ``model`` is not a fastnn model.

    Examples
    --------
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Dense(2)], input_dim=3, seed=0)
    >>> twin = fnn.models.clone_model(model)
    >>> twin is model, twin.get_config() == model.get_config()
    (False, True)
    """
    if not isinstance(model, BaseModel):
        raise TypeError(f"clone_model takes a fastnn model. Received: {V._describe(model)}")
    return type(model).from_config(model.get_config(),       # type: ignore[attr-defined]
                                   backend=model.backend)
