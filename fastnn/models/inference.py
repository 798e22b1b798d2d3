"""The compiled inference plan of a general-path model: a chain of convolutions (depthwise and
separable ones too), pooling, normalization, recurrent, Transformer, Dense and activation layers
run as one call (the backend's ``InferPlan``).

``compile`` describes each layer as the step the backend runs: the same kernel, arguments and
activation as the layer's own ``forward`` with ``training=False``, so ``predict`` gives the same
bits either way (the tests hold it to that). Flatten, Reshape and the dropout and noise layers
are views at inference and take no step. A model with any other layer, a branch, several inputs or outputs, a
recurrent layer with initial states, returned states or stateful=True, a TransformerBlock with a padding
mask, or step masks (``Embedding(mask_zero=True)``, ``Masking``) keeps the per-layer path, as does every model on the NumPy backend.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from fastnn.layers import (ELU, GELU, GRU, LSTM, Activation, AveragePooling1D, AveragePooling2D,
                           BatchNormalization, Conv1D, Conv2D, Dense, Dropout, Flatten,
                           AlphaDropout, GaussianDropout, GaussianNoise, SpatialDropout1D,
                           SpatialDropout2D, RandomContrast, RandomFlip, RandomRotation,
                           RandomTranslation, RandomZoom,
                           GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalMaxPooling1D,
                           GlobalMaxPooling2D, LayerNormalization, LeakyReLU, MaxPooling1D,
                           MaxPooling2D, ReLU, Reshape, Sigmoid, SimpleRNN, Softmax, Step, Tanh,
                           TransformerBlock, DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D,
                           SeparableConv2D)
from fastnn import activations as A

if TYPE_CHECKING:
    from fastnn.models.base import BaseModel

# (kind, values per sample in, out, integer arguments, parameter (block: with epsilon), weights)
StepSpec = tuple[str, int, int, tuple[int, ...], Any, tuple[Any, ...]]

# Layer kinds are matched by exact type: a subclass (a user's layer) may compute otherwise.
# layers that only rearrange (or, at inference, pass) their input: no step
_VIEWS = (Flatten, Reshape, Dropout, SpatialDropout1D, SpatialDropout2D, GaussianNoise,
          GaussianDropout, AlphaDropout, RandomFlip, RandomRotation, RandomZoom,
          RandomTranslation, RandomContrast)
_ACTIVATIONS = (Activation, ReLU, Sigmoid, Tanh, Softmax, Step, LeakyReLU, ELU, GELU)
_POOLING = (MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D)
_GLOBAL = (GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalMaxPooling1D,
           GlobalMaxPooling2D)
_UNSUPPORTED = object()


def compile(model: BaseModel) -> Any:
    """The model's forward pass as one compiled call for small batches, or None (see the module
    docstring)."""
    plan_class = getattr(model._be, "InferPlan", None)
    nodes = model._nodes
    if (plan_class is None or model._n_inputs != 1 or len(model._outputs) != 1
            or model._outputs[0] != len(nodes) - 1 or model._masked is not None):
        return None
    steps: list[StepSpec] = []
    for i, node in enumerate(nodes[1:], 1):
        if node.multi or node.inputs != [i - 1]:
            return None                      # not a chain
        step = _step(node.layer)
        if step is _UNSUPPORTED:
            return None
        if isinstance(step, list):               # a layer of several kernel calls
            steps += step
        elif step is not None:
            steps.append(step)                   # type: ignore[arg-type]
    if not steps:
        return None
    return plan_class(steps, tuple(model.input_shape), tuple(model.output_shape),
                      model.dtype.type)


def _width(shape: Any) -> int:
    return int(math.prod(shape))


def _ints(*values: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _step(layer: Any) -> Any:
    """The step of one layer (a ``Layer``), None for a view, _UNSUPPORTED otherwise."""
    kind = type(layer)
    if kind in _VIEWS:
        return None
    if not (isinstance(layer.input_shape, tuple) and isinstance(layer.output_shape, tuple)):
        return _UNSUPPORTED                      # several inputs or outputs
    in_w, out_w = _width(layer.input_shape), _width(layer.output_shape)
    if kind is Dense:
        positions = in_w // layer.input_shape[-1]
        return ("dense", in_w, out_w, _ints(positions, layer.input_shape[-1], layer.units,
                                            layer.act),
                layer.param, (layer.W, layer.b))
    if kind in _ACTIVATIONS:
        width = layer.input_shape[-1]
        return ("activation", in_w, out_w, _ints(in_w // width, width, layer.act), layer.param,
                ())
    if kind in (Conv2D, Conv1D) and layer.groups > 1:
        return _UNSUPPORTED                  # grouped: the layer's own kernels, per layer
    if kind in (Conv2D, Conv1D):
        h, w, c = layer._x4                  # the 2-D kernels' view (Conv1D: one-row images)
        kh, kw, _, f = layer._k4
        oh, ow, _ = layer._y4
        return ("conv2d", in_w, out_w, _ints(h, w, c, kh, kw, f, *layer._strides,
                                             *layer._dilations, *layer._pads, oh, ow, layer.act),
                layer.param, (layer.kernel, layer.bias))
    if kind in (DepthwiseConv2D, DepthwiseConv1D, SeparableConv2D, SeparableConv1D):
        return _depthwise(layer, in_w, out_w)
    if kind in _POOLING:
        h, w, c = layer._x4
        oh, ow, _ = layer._y4
        name = "maxpool2d" if layer.mode == "max" else "avgpool2d"
        ph, pw, sh, sw, top, left = layer._args
        return (name, in_w, out_w, _ints(h, w, c, oh, ow, ph, pw, sh, sw, top, left), 0.0, ())
    if kind in _GLOBAL:
        c = layer.input_shape[-1]
        name = "global_maxpool" if layer.mode == "max" else "global_avgpool"
        return (name, in_w, out_w, _ints(in_w // c, c), 0.0, ())
    if (kind in (SimpleRNN, LSTM, GRU) and not layer._initial_state and not layer.return_state
            and not layer.stateful):        # a stateful layer carries its states: per layer
        cell, _, steps, features, units = layer._dims(0)
        return ("rnn", in_w, out_w, _ints(cell, steps, features, units, layer.act, layer.rec_act,
                                          layer.go_backwards, layer.return_sequences),
                0.0, (layer.kernel, layer.recurrent_kernel, layer.bias))
    if kind is LayerNormalization:
        c = layer._width                       # the last axis, or the trailing axes together
        return ("layernorm", in_w, out_w, _ints(in_w // c, c), layer.epsilon,
                (layer.gamma, layer.beta))
    if kind is BatchNormalization:               # at inference: the moving statistics
        c = layer.input_shape[-1]
        return ("batchnorm", in_w, out_w, _ints(in_w // c, c), layer.epsilon,
                (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance))
    if kind is TransformerBlock and not layer._masked:
        return _block(layer, in_w)
    return _UNSUPPORTED


def _depthwise(layer: Any, in_w: int, out_w: int) -> list[StepSpec]:
    """A depthwise layer's kernel calls as its forward makes them: the depthwise kernel (with
    the layer's bias and activation; a separable layer's: no bias, linear), a separable layer's
    1x1 convolution, and softmax as a step of its own (the layers apply it after the kernel)."""
    h, w, c = layer._x4                      # the 2-D kernels' view (1-D: one-row images)
    kh, kw, _, dm = layer._k4
    oh, ow, depth = layer._d4
    act = A.LINEAR if layer.separable or layer.act == A.SOFTMAX else layer.act
    geometry = (*layer._strides, *layer._dilations, *layer._pads, oh, ow)
    bias = layer._no_bias if layer.separable else layer.bias
    steps: list[StepSpec] = [("dwconv2d", in_w, oh * ow * depth,
                              _ints(h, w, c, kh, kw, dm, *geometry, act), layer.param,
                              (layer.depthwise_kernel, bias))]
    last = layer.act
    if layer.separable:
        if last == A.SOFTMAX:
            last = A.LINEAR
        steps.append(("conv2d", oh * ow * depth, out_w,
                      _ints(oh, ow, depth, 1, 1, layer.filters, 1, 1, 1, 1, 0, 0, oh, ow, last),
                      layer.param, (layer.pointwise_kernel, layer.bias)))
    if layer.act == A.SOFTMAX:
        width = layer.output_shape[-1]
        steps.append(("activation", out_w, out_w, _ints(out_w // width, width, A.SOFTMAX),
                      layer.param, ()))
    return steps


def _block(block: Any, width: int) -> StepSpec:
    """A TransformerBlock without a padding mask: its sublayers' weights in the order the
    backend's block step takes them (fastnn/_ext/_infer.pxi)."""
    mha, ff1, ff2 = block.attention, block.feedforward_intermediate, block.feedforward_output
    steps, c = block.input_shape
    weights: list[Any] = [block.attention_norm.gamma, block.attention_norm.beta]
    for role in "qkvo":
        w, b, _, _ = mha._w[role]
        weights += [w, b]
    weights += [block.feedforward_norm.gamma, block.feedforward_norm.beta, ff1.W, ff1.b, ff2.W,
                ff2.b]
    ints = _ints(steps, c, mha.num_heads, mha.key_dim, mha.value_dim, block.ff_dim,
                 mha.use_causal_mask, block.norm_first, ff1.act)
    return ("transformer_block", width, width, ints,
            (ff1.param, block.layer_norm_epsilon), tuple(weights))
