"""Keras 3 ``.weights.h5`` files into a fastnn model of the same layers (``model.load_weights``).

Keras 3 (``saving_lib.H5IOStore``) writes one HDF5 group per layer, named not after the layer
but after its class, snake-cased, with a counter per class within each model: ``layers/dense``,
``layers/dense_1``, ``layers/conv2d``, ... A layer's variables are ``<group>/vars/0, 1, ...`` in
the order of its ``weights``; a recurrent layer's are its cell's (``lstm/cell/vars``), a
Bidirectional's its two layers' (``forward_layer/cell/vars``, ``backward_layer/cell/vars``), and a
nested model's layers sit under ``layers/sequential/layers/...`` (``functional`` for a functional
model). Keras 3.0 wrote ``_layer_checkpoint_dependencies`` where later versions write ``layers``.
fastnn's layers are named the same way here, so the match is Keras' own: by kind and order.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

#: fastnn's layers with weights -> the Keras class name (snake-cased) and the variables' groups
_KERAS_NAMES = {"Dense": "dense", "Conv1D": "conv1d", "Conv2D": "conv2d", "Conv3D": "conv3d",
                "Conv1DTranspose": "conv1d_transpose", "Conv2DTranspose": "conv2d_transpose",
                "DepthwiseConv1D": "depthwise_conv1d", "DepthwiseConv2D": "depthwise_conv2d",
                "SeparableConv1D": "separable_conv1d", "SeparableConv2D": "separable_conv2d",
                "Normalization": "normalization",
                "BatchNormalization": "batch_normalization",
                "LayerNormalization": "layer_normalization",
                "RMSNormalization": "rms_normalization", "Embedding": "embedding",
                "SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru",
                "Bidirectional": "bidirectional", "RNN": "rnn"}
_RECURRENT = ("SimpleRNN", "LSTM", "GRU")
_CELL_NAMES = {"SimpleRNNCell": "simple_rnn_cell", "LSTMCell": "lstm_cell", "GRUCell": "gru_cell"}


def _require_h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise ImportError('reading Keras .weights.h5 files needs h5py: pip install "fastnn[h5]"'
                          ) from exc
    return h5py


def _vars(group: Any, where: str) -> list[np.ndarray]:
    """The datasets vars/0, vars/1, ... of ``group`` in order (an empty list without vars)."""
    if "vars" not in group:
        return []
    names = sorted(group["vars"].keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if any(not k.isdigit() for k in names) or [int(k) for k in names] != list(range(len(names))):
        raise ValueError(f"{where}/vars: expected datasets named 0, 1, ...; found {names}")
    out = []
    for k in names:
        ds = group["vars"][k]
        if not hasattr(ds, "dtype") or ds.dtype.kind not in "fiu":
            raise ValueError(f"{where}/vars/{k} is not a numeric dataset")
        out.append(np.asarray(ds[()]))
    return out


def _rnn_arrays(group: Any, layer: Any, where: str) -> list[np.ndarray]:
    """RNN(cell): ``rnn/cell/vars``; RNN(StackedRNNCells): ``rnn/cell/cells/<cell>/vars``, each
    cell named by its class with a counter (``lstm_cell``, ``lstm_cell_1``, ``gru_cell``)."""
    if "cell" not in group:
        raise ValueError(f"{where}: no cell group")
    cell = group["cell"]
    if "cells" not in cell:
        return _vars(cell, f"{where}/cell")
    out: list[np.ndarray] = []
    counters: dict[str, int] = {}
    for inner in layer.cell.cells:
        base = _CELL_NAMES[type(inner).__name__]
        n = counters[base] = counters.get(base, -1) + 1
        name = base if n == 0 else f"{base}_{n}"
        if name not in cell["cells"]:
            raise ValueError(f"{where}/cell/cells has no {name!r}; it has "
                             f"{sorted(cell['cells'].keys())}")
        out += _vars(cell["cells"][name], f"{where}/cell/cells/{name}")
    return out


def _layer_arrays(group: Any, kind: str, where: str, layer: Any = None) -> list[np.ndarray]:
    if kind == "RNN":
        return _rnn_arrays(group, layer, where)
    if kind in _RECURRENT:
        return _vars(group["cell"], f"{where}/cell") if "cell" in group else []
    if kind == "Bidirectional":
        out = []
        for side in ("forward_layer", "backward_layer"):
            if side not in group:
                raise ValueError(f"{where}: no {side} group")
            out += _vars(group[side]["cell"], f"{where}/{side}/cell") \
                if "cell" in group[side] else []
        return out
    return _vars(group, where)


def _holds_weights(group: Any) -> bool:
    """Whether a layer group (or anything under it) holds a dataset."""
    found = []
    group.visititems(lambda name, obj: found.append(name) if hasattr(obj, "dtype") else None)
    return bool(found)


def _collect(model: Any, layers_group: Any, where: str, out: list[tuple[Any, list[Any], str]],
             used: set[str]) -> None:
    """Append (layer, arrays) for every fastnn layer with weights in ``model``, in order."""
    from fastnn.models import graph
    counters: dict[str, int] = {}
    for layer in model._own_layers():          # a shared layer (or model) once, as Keras
        nested = isinstance(layer, graph.ModelLayer)
        kind = type(layer.model).__name__ if nested else type(layer).__name__
        if not nested and not layer._specs:
            continue
        base = ({"Sequential": "sequential"}.get(kind, "functional") if nested
                else _KERAS_NAMES.get(kind))
        if base is None:
            raise ValueError(f"layer {layer.name!r} ({kind}) has no Keras .weights.h5 "
                             f"counterpart fastnn can read")
        n = counters.get(base, -1) + 1
        counters[base] = n
        name = base if n == 0 else f"{base}_{n}"
        path = f"{where}/{name}"
        if layers_group is None or name not in layers_group:
            present = sorted(layers_group.keys()) if layers_group is not None else []
            raise ValueError(f"layer {layer.name!r} ({kind}) is Keras' {path!r}, which the file "
                             f"does not have; it has {present}")
        used.add(path)
        group = layers_group[name]
        if nested:
            _collect(layer.model, _layers_of(group), f"{path}/layers", out, used)
        else:
            out.append((layer, _layer_arrays(group, kind, path, layer), path))


def _layers_of(group: Any) -> Any:
    for key in ("_layer_checkpoint_dependencies", "layers"):     # Keras' own preference
        if key in group:
            return group[key]
    return None


def load_keras_weights(model: Any, path: Any) -> None:
    """Set the weights of the built ``model`` from the Keras 3 ``.weights.h5`` file ``path``
    (every shape checked first: a refusal changes nothing)."""
    h5py = _require_h5py()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike. Received: {type(path).__name__}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {os.fspath(path)!r}")
    pairs: list[Any] = []
    used: set[str] = set()
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{os.fspath(path)!r} is not an HDF5 file: {exc}") from exc
    with f:
        layers = _layers_of(f)
        _collect(model, layers, "layers", pairs, used)
        extra: list[str] = []
        if layers is not None:
            _unused(layers, "layers", used, extra)
    if extra:
        raise ValueError(f"the file holds weights of layers the model does not have: {extra}")
    weights = []
    for layer, arrays, where in pairs:
        want = [w.shape for w in layer._weights]
        got = [a.shape for a in arrays]
        if got != want:
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has weights of "
                             f"shapes {want}; the file's {where!r} holds {got}")
        weights += arrays
    model.set_weights(weights)


def _unused(group: Any, where: str, used: set[str], extra: list[str]) -> None:
    for name in group.keys():
        path = f"{where}/{name}"
        if path in used:
            inner = _layers_of(group[name])
            if inner is not None and re.fullmatch(r"(sequential|functional)(_\d+)?", name):
                _unused(inner, f"{path}/layers", used, extra)
        elif hasattr(group[name], "keys") and _holds_weights(group[name]):
            extra.append(path)
