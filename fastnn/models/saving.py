"""What a model file says about a model (format version 2), and the model a file describes.

``fastnn.io`` owns the container (preamble, JSON header, raw arrays, every byte-level check);
this module owns its meaning: the topology (``Sequential``: a list of layer configs;
``Model``: layer configs with ``inbound`` node indices, inputs first; a later call of a
shared layer or model: ``{"shared": <its first entry>, "inbound": [...]}``), the names of the weight
arrays (``w<k>/<layer>/<weight>`` in ``get_weights()`` order), and a dry run that sizes a
described model from its configs alone, before anything is allocated.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from fastnn import _header_checks as H
from fastnn._header_checks import BadModelFile
from fastnn.layers import LAYERS, layer_from_config

#: The most values one sample of any layer's output (or a model input) may hold in a model
#: loaded from a file: 2**28 (1 GiB a sample in float32, 2 GiB in float64; a 256**3 volume
#: of 16 channels). Weights are bounded by the file's size, but a weightless layer
#: (Resizing, UpSampling, ZeroPadding, RepeatVector) costs no bytes in the file however large
#: its output: without this bound a forged file of a few hundred bytes would load and then
#: exhaust memory at predict. Models built in code are not bounded (their size is their
#: author's choice); ONNX imports use the same figure (fastnn.onnx._checked_file).
MAX_SAMPLE_VALUES = 2**28


def weight_arrays(model: Any) -> list[tuple[str, Any]]:
    """(name, view) of every weight, in get_weights() order."""
    return [(f"w{k}/{layer.name}/{layer._specs[i].name}", layer._weights[i])
            for k, (_, layer, i) in enumerate(model._entries())]


def describe(model: Any) -> dict[str, Any]:
    return dict(model._model_config(), backend=model.backend)


def _shape(what: str, value: Any) -> tuple[int, ...]:
    items = H.check_list(what, value, H.MAX_NDIM)
    if not items:
        raise BadModelFile(f"{what} is empty")
    return tuple(H.check_int(what, "dimension", d, 1, H.MAX_DIM + 1) for d in items)


def _check_sample_size(what: str, shape: Any, oversize: list[str]) -> None:
    """Note in ``oversize`` an output (a shape, or a list of them) of more than
    MAX_SAMPLE_VALUES values a sample."""
    shapes = shape if isinstance(shape, list) else [shape]
    values = sum(math.prod(s) for s in shapes)
    if values > MAX_SAMPLE_VALUES:
        oversize.append(f"{what} would hold {values} values a sample (shape "
                        f"{H._short(shape)}), more than the limit of 2**28 "
                        f"(fastnn.models.saving.MAX_SAMPLE_VALUES) for a loaded model")


def dry_run(config: Any, counter: list[int], depth: int = 0,
            oversize: Optional[list[str]] = None) -> tuple[Any, Any, int]:
    """(input shapes, output shape, parameter count) of a described model, from its configs
    alone: layers are made and built for their shapes, which allocates no weights. Counts
    layers (nested ones too) in ``counter`` against ``MAX_LAYERS``; notes inputs and outputs
    over ``MAX_SAMPLE_VALUES`` in ``oversize`` (``check_v2`` refuses them after the size of
    the weights, whose message is the more telling for a layer with weights)."""
    oversize = [] if oversize is None else oversize
    if not isinstance(config, dict) or config.get("class") not in ("Sequential", "Model"):
        raise BadModelFile("a model description must be an object with 'class' Sequential or "
                           "Model")
    if depth > 8:
        raise BadModelFile("models nested more than 8 deep")
    dtype = np.dtype("float64" if config.get("dtype") == "float64" else "float32")
    entries = H.check_list("the model's 'layers'", config.get("layers"), H.MAX_LAYERS)
    counter[0] += len(entries)
    if counter[0] > H.MAX_LAYERS:
        raise BadModelFile(f"more than {H.MAX_LAYERS} layers")
    if config["class"] == "Sequential":
        if "input_shape" in config:
            ins = [_shape("input_shape", config["input_shape"])]
        else:
            ins = [(H.check_int("model input_dim", "input_dim", config.get("input_dim"), 1,
                                H.MAX_DIM + 1),)]
        wired = [(entry, [i], 0) for i, entry in enumerate(entries)]
    else:
        inputs = H.check_list("the model's 'inputs'", config.get("inputs"), 64)
        ins = [_shape(f"input {k}", s) for k, s in enumerate(inputs)]
        wired = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("inbound"), list):
                raise BadModelFile(f"layer {i} lacks its 'inbound' list")
            inbound = entry["inbound"]
            if not inbound or any(not H.is_int(j) or not 0 <= j < len(ins) + i
                                  for j in inbound):
                raise BadModelFile(f"layer {i}: 'inbound' must list earlier nodes (0 to "
                                   f"{len(ins) + i - 1}; a later one would be a cycle). "
                                   f"Received: {H._short(inbound)}")
            if "shared" in entry:      # a later call of a layer: its config, no new weights
                from fastnn.models.functional import check_shared_entry
                try:
                    ref = check_shared_entry(entries, i, entry)
                except ValueError as exc:
                    raise BadModelFile(str(exc)) from None
                wired.append((entries[ref].get("config"), inbound, ref + 1))
            else:
                wired.append((entry.get("config"), inbound, 0))
    for k, shape in enumerate(ins):
        _check_sample_size(f"input {k}", shape, oversize)
    shapes: list[Any] = list(ins)
    total = 0
    given: list[Any] = []              # each entry's input shapes
    for i, (layer_config, inbound, shared) in enumerate(wired):
        given.append([shapes[j] for j in inbound])
        if not isinstance(layer_config, dict):
            raise BadModelFile(f"layer {i} is not an object")
        try:
            if layer_config.get("class") == "Model" and "model" in layer_config:
                sub_in, sub_out, n = dry_run(layer_config["model"], counter, depth + 1,
                                             oversize)
                got = shapes[inbound[0]] if len(sub_in) == 1 else [shapes[j] for j in inbound]
                if got != (sub_in[0] if len(sub_in) == 1 else sub_in):
                    raise ValueError(f"the nested model takes {sub_in}, it receives {got}")
                _check_shared_shapes(shared, given, i, wired)
                shapes.append(sub_out)
                total += 0 if shared else n
                continue
            layer = layer_from_config(layer_config)
            layer.expect_inputs(len(inbound))
            args = [shapes[j] for j in inbound]
            shape = layer.build(args if layer.n_inputs != 1 else args[0], dtype)
            if layer.n_inputs == 1 and len(inbound) != 1:
                raise ValueError(f"{type(layer).__name__} takes one input, {len(inbound)} given")
            if layer.count_params():
                _check_shared_shapes(shared, given, i, wired)
            total += 0 if shared else layer.count_params()
            shapes.append(shape)
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            kind = layer_config.get("class")
            what = (f"unknown layer kind {kind!r}" if not isinstance(kind, str)
                    or (kind not in LAYERS and kind != "Model")
                    else f"{type(exc).__name__}: {exc}")
            if kind == "Lambda":
                what += (" (a model file holds no code: keep the weights, "
                         "np.savez(path, *model.get_weights()), and set_weights them on the "
                         "model built in code)")
            raise BadModelFile(f"layer {i} ({kind}) is invalid: {what}") from None
        _check_sample_size(f"the output of layer {i} ({type(layer).__name__} {layer.name!r})",
                           shapes[-1], oversize)
    if config["class"] == "Sequential":
        out = shapes[-1]
    else:
        outs = H.check_list("the model's 'outputs'", config.get("outputs"), 64)
        if not outs or any(not H.is_int(j) or not len(ins) <= j < len(shapes) for j in outs):
            raise BadModelFile(f"'outputs' must list layer nodes ({len(ins)} to "
                               f"{len(shapes) - 1}). Received: {H._short(outs)}")
        out = shapes[outs[0]] if len(outs) == 1 else [shapes[j] for j in outs]
    return ins, out, total


def _check_shared_shapes(shared: Any, given: list[Any], i: int, wired: list[Any]) -> None:
    """A later call of a shared layer with weights (or model) must take its first call's
    input shapes (the weights are built for them)."""
    if not shared:
        return
    ref = shared - 1
    if given[i] != given[ref]:
        raise ValueError(f"a call of the shared layer {ref} on inputs of shape "
                         f"{H._short(given[i])}; its first call takes {H._short(given[ref])}")


def check_v2(config: Any, data_size: int) -> None:
    """Refuse a v2 description whose weights would not fit in ``data_size`` bytes, or that
    is malformed, before anything is allocated."""
    H.optional_int("model seed", "seed", config.get("seed") if isinstance(config, dict)
                   else None, 0, H.MAX_SEED)
    oversize: list[str] = []
    _, _, count = dry_run(config, [0], oversize=oversize)
    itemsize = 8 if config.get("dtype") == "float64" else 4
    if count * itemsize > data_size:
        raise BadModelFile(f"the architecture needs {count * itemsize} bytes of weights, more "
                           f"than the file's {data_size} bytes of data")
    if oversize:
        raise BadModelFile(oversize[0])


def build(config: dict[str, Any], version: int, arrays: dict[str, Any],
          backend: Optional[str]) -> tuple[Any, list[Any]]:
    """The model a checked description describes, and its weights from ``arrays`` in
    get_weights() order (checked for names, shapes, dtypes and finiteness; not yet set)."""
    from fastnn.models.functional import model_from_config

    if version == 1:
        config = {"class": "Sequential", **config}
    try:
        model = model_from_config(config, backend)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise BadModelFile(f"the model description is invalid ({type(exc).__name__}: {exc})") \
            from None
    expected = (v1_weight_names(model) if version == 1 else
                [(name, view) for name, view in weight_arrays(model)])
    stored = {name for name in arrays if not name.startswith(("optimizer/", STATE_PREFIX))}
    if stored != {name for name, _ in expected}:
        raise BadModelFile(f"the arrays {sorted(stored)} do not match the architecture, which "
                           f"needs {sorted(name for name, _ in expected)}")
    weights = []
    for name, target in expected:
        source = arrays[name]
        if source.shape != target.shape or source.dtype.newbyteorder("=") != target.dtype:
            raise BadModelFile(f"array {name!r} is {source.dtype.str}{list(source.shape)}, the "
                               f"model needs {target.dtype.str}{list(target.shape)}")
        if not np.isfinite(source).all():
            raise BadModelFile(f"array {name!r} holds NaN or inf")
        weights.append(source)
    return model, weights


#: The arrays of stateful recurrent layers' carried states: ``rnn_state/<j>/<i>``, state i of
#: the j-th stateful layer in ``stateful_layers`` order (absent while a layer's states are zero)
STATE_PREFIX = "rnn_state/"


def stateful_layers(model: Any) -> list[Any]:
    """The stateful recurrent layers of ``model`` (ConvLSTM2D too) in a fixed order: its
    layers, each one's inner layers (Bidirectional's two directions, RNN's cells, a nested
    model's layers) in place."""
    from fastnn.layers.conv_lstm import ConvLSTM2D
    from fastnn.layers.recurrent import RNNBase

    found: list[Any] = []

    def walk(layer: Any) -> None:
        if isinstance(layer, (RNNBase, ConvLSTM2D)):
            if layer.stateful:
                found.append(layer)
            return
        pair = [getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None)]
        for inner in [*(x for x in pair if x is not None), *getattr(layer, "layers", [])]:
            walk(inner)
    for layer in model.layers:
        walk(layer)
    return found


def state_arrays(model: Any) -> list[tuple[str, Any]]:
    """(name, array) of every carried state of the model's stateful layers."""
    return [(f"{STATE_PREFIX}{j}/{i}", state)
            for j, layer in enumerate(stateful_layers(model))
            for i, state in enumerate(layer._carried or [])]


def _state_shape(layer: Any) -> tuple[int, ...]:
    """A stateful layer's carried state per sample: (units,), ConvLSTM2D's (oh, ow, filters)."""
    shape = getattr(layer, "state_shape", None)
    return (layer.units,) if shape is None else tuple(shape)


def restore_states(model: Any, arrays: dict[str, Any]) -> None:
    """Set the carried states a file holds (``state_arrays``' names), each checked: a layer's
    states all there or none, (batch, units) (ConvLSTM2D: (batch, oh, ow, filters)) of the
    model's dtype, one batch size, finite."""
    layers = stateful_layers(model)
    stored = {name for name in arrays if name.startswith(STATE_PREFIX)}
    allowed = {f"{STATE_PREFIX}{j}/{i}": j for j, layer in enumerate(layers)
               for i in range(layer.n_states)}
    if stored - set(allowed):
        raise BadModelFile(f"the arrays {sorted(stored - set(allowed))[:4]} are not states of "
                           f"the model's {len(layers)} stateful recurrent layer(s)")
    for j, layer in enumerate(layers):
        names = [f"{STATE_PREFIX}{j}/{i}" for i in range(layer.n_states)]
        present = [name in stored for name in names]
        if not any(present):
            continue
        if not all(present):
            raise BadModelFile(f"layer {layer.name!r} needs all of {names} or none")
        states = [arrays[name] for name in names]
        shape = _state_shape(layer)
        for name, state in zip(names, states):
            if (state.ndim != 1 + len(shape) or tuple(state.shape[1:]) != shape
                    or state.shape[0] < 1 or state.shape[0] != states[0].shape[0]
                    or state.dtype.newbyteorder("=") != model.dtype):
                raise BadModelFile(f"array {name!r} is {state.dtype.str}{list(state.shape)}; "
                                   f"layer {layer.name!r} holds (batch, "
                                   f"{', '.join(map(str, shape))}) states of one batch size in "
                                   f"{model.dtype}")
            if not np.isfinite(state).all():
                raise BadModelFile(f"array {name!r} holds NaN or inf")
        layer.reset_states(states)


def v1_weight_names(model: Any) -> list[tuple[str, Any]]:
    """Version 1 named each Dense layer's arrays ``dense_<i>/W`` and ``dense_<i>/b``."""
    names = []
    for i, layer in enumerate(model.dense_layers):
        names += [(f"dense_{i}/W", layer.W), (f"dense_{i}/b", layer.b)]
    return names
