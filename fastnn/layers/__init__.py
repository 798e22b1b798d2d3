"""Layers, one family per module, and the registry that rebuilds them from their configs.

    base.py            Layer (the protocol), WeightSpec, Slot (a layer's workspace buffers)
    activation.py      Activation, ReLU, Sigmoid, Tanh, Softmax, Step, LeakyReLU, ELU, GELU
    core.py            Dense, Flatten, Reshape
    convolutional.py   Conv2D, Conv1D, Conv2DTranspose, Conv1DTranspose
    convolutional3d.py Conv3D (volumes and clips, over the 2-D kernels)
    conv3d_transpose.py Conv3DTranspose (Conv3D's input gradient)
    depthwise.py       DepthwiseConv2D, DepthwiseConv1D, SeparableConv2D, SeparableConv1D
    pooling.py         MaxPooling2D/1D, AveragePooling2D/1D, Global{Average,Max}Pooling2D/1D
    pooling3d.py       MaxPooling3D, AveragePooling3D, Global{Average,Max}Pooling3D
    recurrent.py       SimpleRNN, LSTM, GRU
    bidirectional.py   Bidirectional (and OutputOf: one output of a layer that returns several)
    rnn_cells.py       RNN(cell): SimpleRNNCell, LSTMCell, GRUCell, StackedRNNCells
    conv_lstm.py       ConvLSTM2D (an LSTM over image sequences, convolutions for products)
    merge.py           Add, Concatenate, Multiply, Subtract, Average, Maximum, Minimum
    regularization.py  Dropout, SpatialDropout1D, SpatialDropout2D, SpatialDropout3D
    noise.py           GaussianNoise, GaussianDropout
    permute.py         Permute
    masking.py         Masking (step masks: see Layer.compute_mask)
    lambda_layer.py    Lambda (a NumPy function; not saved in model files)
    reshaping.py       UpSampling2D/1D, ZeroPadding2D/1D, Cropping2D/1D, RepeatVector
    reshaping3d.py     UpSampling3D, ZeroPadding3D, Cropping3D
    preprocessing.py   Rescaling, Normalization
    categorical.py     CategoryEncoding, Hashing (values to categories, no gradient)
    adapted.py         IntegerLookup, Discretization (learned with adapt)
    wrappers.py        TimeDistributed
    normalization.py   BatchNormalization, LayerNormalization, RMSNormalization
    embedding.py       Embedding, PositionalEmbedding, SinePositionEncoding
    attention.py       MultiHeadAttention
    dot.py             Dot, UnitNormalization (Keras')
    score_attention.py Attention (Luong), AdditiveAttention (Bahdanau) (Keras')
    transformer.py     TransformerBlock

Each layer's forward and backward sit together in its family's module and call the backend's
kernels (``fastnn.backends``): the compiled ones, or their NumPy twins.
"""

from __future__ import annotations

from typing import Any, Mapping

from fastnn.layers.activation import (ACTIVATION_LAYERS, ELU, GELU, Activation, LeakyReLU, ReLU,
                                      Sigmoid, Softmax, Step, Tanh)
from fastnn.layers.attention import MultiHeadAttention
from fastnn.layers.base import Layer, Slot, WeightSpec
from fastnn.layers.convolutional import (Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose,
                                         Convolution1D, Convolution1DTranspose, Convolution2D,
                                         Convolution2DTranspose)
from fastnn.layers.core import Dense, Flatten, Reshape
from fastnn.layers.convolutional3d import Conv3D, Convolution3D
from fastnn.layers.conv3d_transpose import Conv3DTranspose, Convolution3DTranspose
from fastnn.layers.pooling3d import (ALIASES3D, POOLING3D_LAYERS, AveragePooling3D, AvgPool3D,
                                     GlobalAveragePooling3D, GlobalAvgPool3D, GlobalMaxPool3D,
                                     GlobalMaxPooling3D, MaxPool3D, MaxPooling3D)
from fastnn.layers.depthwise import (DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D,
                                     SeparableConv2D)
from fastnn.layers.embedding import Embedding, PositionalEmbedding, SinePositionEncoding
from fastnn.layers.merge import (Add, Average, Concatenate, Maximum, Minimum, Multiply,
                                 Subtract)
from fastnn.layers.normalization import BatchNormalization, LayerNormalization, RMSNormalization
from fastnn.layers.pooling import (ALIASES, POOLING_LAYERS, AveragePooling1D, AveragePooling2D,
                                   AvgPool1D, AvgPool2D, GlobalAveragePooling1D,
                                   GlobalAveragePooling2D, GlobalAvgPool1D, GlobalAvgPool2D,
                                   GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPooling1D,
                                   GlobalMaxPooling2D, MaxPool1D, MaxPool2D, MaxPooling1D,
                                   MaxPooling2D)
from fastnn.layers.recurrent import GRU, LSTM, RECURRENT_LAYERS, SimpleRNN
from fastnn.layers.bidirectional import Bidirectional, OutputOf
from fastnn.layers.rnn_cells import (RNN, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells,
                                     cell_from_config)
from fastnn.layers.regularization import (Dropout, SpatialDropout1D, SpatialDropout2D,
                                          SpatialDropout3D)
from fastnn.layers.reshaping3d import Cropping3D, UpSampling3D, ZeroPadding3D
from fastnn.layers.noise import AlphaDropout, GaussianDropout, GaussianNoise
from fastnn.layers.permute import Permute
from fastnn.layers.masking import Masking
from fastnn.layers.augmentation import (AUGMENTATION_LAYERS, RandomContrast, RandomFlip,
                                        RandomRotation, RandomTranslation, RandomZoom)
from fastnn.layers.image_resizing import SIZING_LAYERS, CenterCrop, RandomCrop, Resizing
from fastnn.layers.prelu import Identity, PReLU
from fastnn.layers.group_normalization import GroupNormalization
from fastnn.layers.lambda_layer import Lambda
from fastnn.layers.preprocessing import Normalization, Rescaling
from fastnn.layers.categorical import CategoryEncoding, Hashing
from fastnn.layers.adapted import Discretization, IntegerLookup
from fastnn.layers.reshaping import (Cropping1D, Cropping2D, RepeatVector, UpSampling1D,
                                     UpSampling2D, ZeroPadding1D, ZeroPadding2D)
from fastnn.layers.wrappers import TimeDistributed
from fastnn.layers.transformer import TransformerBlock
from fastnn.layers.dot import Dot, UnitNormalization
from fastnn.layers.score_attention import AdditiveAttention, Attention
from fastnn.layers.conv_lstm import ConvLSTM2D

#: Layer classes by the name their configs carry.
LAYERS: dict[str, type[Layer]] = {cls.__name__: cls for cls in (
    Activation, ReLU, Sigmoid, Tanh, Softmax, Step, LeakyReLU, ELU, GELU, Dense, Flatten, Reshape,
    Add, Concatenate, Dropout, BatchNormalization, LayerNormalization, RMSNormalization,
    Conv1D, Conv2D,
    Conv1DTranspose, Conv2DTranspose, DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D,
    SeparableConv2D, UpSampling1D, UpSampling2D, Rescaling, Normalization, TimeDistributed,
    ZeroPadding1D, ZeroPadding2D, Cropping1D, Cropping2D, RepeatVector, Multiply, Subtract,
    Average, Maximum, Minimum, SpatialDropout1D, SpatialDropout2D, GaussianNoise,
    GaussianDropout, AlphaDropout, Permute, Masking, *AUGMENTATION_LAYERS, *SIZING_LAYERS,
    PReLU, Identity, GroupNormalization,
    *POOLING_LAYERS, *POOLING3D_LAYERS, Conv3D, UpSampling3D, ZeroPadding3D, Cropping3D,
    SpatialDropout3D, *RECURRENT_LAYERS, Bidirectional, OutputOf, Embedding, PositionalEmbedding,
    SinePositionEncoding, MultiHeadAttention, TransformerBlock, CategoryEncoding, Hashing,
    IntegerLookup, Discretization, RNN, Dot, UnitNormalization, Attention, AdditiveAttention,
    Conv3DTranspose, ConvLSTM2D)}


def _with_objects(config: dict[str, Any]) -> dict[str, Any]:
    """Initializer and regularizer entries ({"class_name", "config"}) as objects."""
    from fastnn import initializers, regularizers
    for key, value in list(config.items()):
        kind = (initializers if key.endswith("_initializer") else
                regularizers if key.endswith("_regularizer") else None)
        if isinstance(value, dict) and kind is not None:
            try:
                config[key] = kind.get(value)
            except (TypeError, ValueError) as exc:     # the message names the argument
                raise type(exc)(f"{key}: {exc}") from None
    return config


def layer_from_config(config: Mapping[str, Any]) -> Layer:
    """Rebuild a layer from ``get_config()`` output (used by the model file loader).

    Raises
    ------
    ValueError
        If the class named in ``config`` is unknown or an argument is invalid.
    TypeError, KeyError
        If ``config`` lacks an argument or holds one of the wrong type.

    Examples
    --------
    >>> import fastnn as fnn
    >>> from fastnn.layers import layer_from_config
    >>> layer_from_config(fnn.Dense(4, activation="tanh").get_config())
    Dense(4, activation='tanh')
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"a layer config must be a dict. Received: {type(config).__name__}")
    config = dict(config)
    state = config.pop("state", None)
    layer = _make_layer(config)
    if state is not None:
        layer.set_state(state)
    return layer


def _make_layer(config: dict[str, Any]) -> Layer:
    cls = config.pop("class", None)
    if not isinstance(cls, str) or cls not in LAYERS:
        raise ValueError(f"unknown layer class in model config: {cls!r} (known: "
                         f"{sorted(LAYERS)})")
    param = {k: config.pop(k) for k in ("threshold", "alpha") if k in config}
    config = _with_objects(config)
    if cls in ("Dense", "Conv1D", "Conv2D", "Conv3D", "TransformerBlock", "DepthwiseConv1D",
               "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
               "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        act = config.get("activation", "linear")
        if act == "step":
            config["activation"] = Step(**param)
        elif act == "leaky_relu":
            config["activation"] = LeakyReLU(**param)
        elif act == "elu" and param:
            config["activation"] = ELU(**param)
        return LAYERS[cls](**config)
    if cls == "TimeDistributed":
        if not isinstance(config.get("layer"), Mapping):
            raise ValueError(f"TimeDistributed: 'layer' must be a layer config. Received: "
                             f"{config.get('layer')!r:.80}")
        config["layer"] = layer_from_config(config["layer"])
        return TimeDistributed(**config)
    if cls == "Bidirectional":
        for key in ("layer", "backward_layer"):
            if config.get(key) is not None:
                config[key] = layer_from_config(config[key])
        return Bidirectional(**config)
    if cls == "RNN":
        config["cell"] = cell_from_config(config.get("cell"))
        return RNN(**config)
    if cls == "MultiHeadAttention":       # how it was called: its inputs' roles, causality
        call = config.pop("call", None)
        layer = MultiHeadAttention(**config)
        if call is not None:
            if not isinstance(call, dict):
                raise ValueError(f"MultiHeadAttention: 'call' must be a dict. Received: "
                                 f"{call!r:.80}")
            layer.set_call(**call)
        return layer
    if cls in ACTIVATION_LAYERS:
        return ACTIVATION_LAYERS[cls](**param, **config)
    if cls == "Activation":
        return Activation(config.pop("activation"), param.get("threshold", param.get("alpha")),
                          **config)
    return LAYERS[cls](**config)


def __getattr__(name: str) -> Any:
    # Keras' keras.layers.Input / InputLayer: they live with the models (which import this)
    if name in ("Input", "InputLayer"):
        from fastnn.models import functional
        return getattr(functional, name)
    raise AttributeError(f"module 'fastnn.layers' has no attribute {name!r}")


__all__ = ["Layer", "Slot", "WeightSpec", "Activation", "ReLU", "Sigmoid", "Tanh", "Softmax",
           "Step", "LeakyReLU", "ELU", "GELU", "Dense", "Flatten", "Reshape", "Add", "Concatenate", "Dropout",
           "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
           "Permute", "Masking", "Lambda", "RandomFlip", "RandomRotation", "RandomZoom",
           "RandomTranslation", "RandomContrast", "Resizing", "CenterCrop", "RandomCrop",
           "PReLU", "Identity", "GroupNormalization", "RNN", "SimpleRNNCell", "LSTMCell",
           "GRUCell", "StackedRNNCells",
           "BatchNormalization", "LayerNormalization", "RMSNormalization", "Conv1D", "Conv2D", "Convolution1D",
           "Convolution2D", "Conv1DTranspose", "Conv2DTranspose", "Convolution1DTranspose",
           "Convolution2DTranspose", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
           "SeparableConv2D", "UpSampling1D",
           "UpSampling2D", "Rescaling", "Normalization", "TimeDistributed", "ZeroPadding1D",
           "ZeroPadding2D", "Cropping1D", "Cropping2D", "RepeatVector", "Multiply",
           "Subtract", "Average", "Maximum", "Minimum", "MaxPooling2D", "AveragePooling2D", "MaxPooling1D",
           "AveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
           "GlobalAveragePooling1D", "GlobalMaxPooling1D", *ALIASES, "Conv3D", "Convolution3D",
           "Conv3DTranspose", "Convolution3DTranspose",
           "MaxPooling3D", "AveragePooling3D", "GlobalAveragePooling3D", "GlobalMaxPooling3D",
           *ALIASES3D, "UpSampling3D", "ZeroPadding3D", "Cropping3D", "SpatialDropout3D", "SimpleRNN", "LSTM", "GRU",
           "Bidirectional", "OutputOf", "Embedding", "PositionalEmbedding", "SinePositionEncoding",
           "MultiHeadAttention", "TransformerBlock", "CategoryEncoding", "Hashing",
           "IntegerLookup", "Discretization", "LAYERS",
           "layer_from_config", "ConvLSTM2D"]
