"""fastnn: a compact neural-network library for the CPU, on compiled Cython + OpenMP kernels.

    import fastnn as fnn
    model = fnn.Sequential([fnn.Dense(64, activation="relu"), fnn.Dense(10, activation="softmax")],
                           input_dim=64, seed=0)
    model.compile(loss="cross_entropy", optimizer=fnn.SGD(lr=0.05, momentum=0.9),
                  metrics=["accuracy"])
    model.fit(X, y, epochs=20, batch_size=32)
"""

from typing import TYPE_CHECKING

from fastnn import (callbacks, datasets, initializers, losses, ops, optimizers, regularizers,
                    schedules, utils)
from fastnn.callbacks import (Callback, CSVLogger, EarlyStopping, LambdaCallback,
                              LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau,
                              TensorBoard, TerminateOnNaN)
from fastnn._threads import (get_adaptive_threads, get_num_threads, set_adaptive_threads,
                             set_num_threads, thread_limit, threads)
from fastnn.io import load_model as load
from fastnn import onnx                   # the optional extra: imports the onnx package on use
from fastnn import interop                # PyTorch and h5py: imported on use
from fastnn.layers import (Activation, Add, BatchNormalization, Concatenate, Conv1D, Conv2D,
                           Conv1DTranspose, Conv2DTranspose, DepthwiseConv1D, DepthwiseConv2D,
                           SeparableConv1D, SeparableConv2D, UpSampling1D, UpSampling2D, Rescaling,
                           Normalization, TimeDistributed, ZeroPadding1D, ZeroPadding2D,
                           Cropping1D, Cropping2D, RepeatVector, Multiply, Subtract, Average,
                           Maximum, Minimum, SpatialDropout1D, SpatialDropout2D, GaussianNoise,
                           GaussianDropout, AlphaDropout, Permute, Masking, Lambda, Convolution1D, Convolution2D, Dense, Dropout, Embedding, Flatten,
                           ELU, GELU,
                           AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D,
                           GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAvgPool1D,
                           GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D,
                           GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPool1D, MaxPool2D,
                           MaxPooling1D, MaxPooling2D, Layer, LayerNormalization, LeakyReLU, ReLU, Reshape, Sigmoid,
                           Softmax, Step, Tanh)
from fastnn.layers import (Conv3D, Convolution3D, MaxPooling3D, AveragePooling3D, MaxPool3D,
                           AvgPool3D, GlobalAveragePooling3D, GlobalMaxPooling3D, GlobalAvgPool3D,
                           GlobalMaxPool3D, UpSampling3D, ZeroPadding3D, Cropping3D,
                           SpatialDropout3D)
from fastnn.layers import Conv3DTranspose, Convolution3DTranspose
from fastnn.layers import GRU, LSTM, Bidirectional, MultiHeadAttention, SimpleRNN
from fastnn.layers import RNN, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from fastnn.layers import ConvLSTM2D
from fastnn.layers import PositionalEmbedding, SinePositionEncoding, TransformerBlock
from fastnn.layers import (CenterCrop, RandomContrast, RandomCrop, RandomFlip, RandomRotation,
                           RandomTranslation, RandomZoom, Resizing, PReLU, Identity,
                           GroupNormalization, RMSNormalization)
from fastnn.layers import CategoryEncoding, Discretization, Hashing, IntegerLookup
from fastnn.layers import AdditiveAttention, Attention, Dot, UnitNormalization
from fastnn.preprocessing_text import StringLookup, TextVectorization
from fastnn.losses import (BinaryCrossEntropy, CrossEntropy, Huber, Loss, MeanAbsoluteError,
                           MeanSquaredError)
from fastnn.models import History, Input, InputLayer, Model, Sequential
from fastnn.optimizers import SGD, Adagrad, Adam, Adamax, AdamW, Nadam, Optimizer, RMSprop

from fastnn import distributed  # noqa: E402  (after the models it trains; imports no MPI)

__version__ = "0.1.0"

if TYPE_CHECKING:               # for type checkers; at run time, __getattr__ imports them
    from fastnn import dask, sklearn

# the optional extras' modules (scikit-learn, Dask, ...): imported on first use, so that fastnn
# imports without them and fnn.dask.predict works without an import of its own
_LAZY_MODULES = frozenset({"dask", "sklearn"})


def __getattr__(name: str) -> object:
    if name in _LAZY_MODULES:
        import importlib
        return importlib.import_module(f"fastnn.{name}")
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")


__all__ = [
    "Callback", "EarlyStopping", "LearningRateScheduler", "ModelCheckpoint", "TerminateOnNaN",
    "ReduceLROnPlateau", "CSVLogger", "LambdaCallback", "TensorBoard",
    "callbacks", "schedules", "losses", "optimizers", "Activation", "Adam", "AdamW",
    "Adagrad", "Adamax", "Nadam",
    "BinaryCrossEntropy", "CrossEntropy", "Dense", "ELU", "History", "Huber", "Layer", "LeakyReLU", "Loss",
    "MeanAbsoluteError", "MeanSquaredError", "Optimizer", "RMSprop", "ReLU", "SGD", "Sequential",
    "Sigmoid",
    "Softmax", "Step", "Tanh", "datasets", "get_num_threads", "load", "ops", "set_num_threads",
    "thread_limit", "threads", "__version__", "Add", "BatchNormalization", "Concatenate",
    "Dropout", "Flatten", "Input", "InputLayer", "LayerNormalization", "Model", "Reshape", "initializers",
    "regularizers", "set_adaptive_threads", "get_adaptive_threads", "Conv1D", "Conv2D",
    "Conv1DTranspose", "Conv2DTranspose", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
    "SeparableConv2D", "UpSampling1D", "UpSampling2D", "Rescaling", "Normalization",
    "TimeDistributed",
    "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "RepeatVector", "Multiply",
    "Subtract", "Average", "Maximum", "Minimum", "SpatialDropout1D", "SpatialDropout2D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "Permute", "Masking", "Lambda",
    "Convolution1D", "Convolution2D", "MaxPooling2D", "AveragePooling2D", "MaxPooling1D",
    "AveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling1D",
    "GlobalMaxPooling1D", "MaxPool2D", "AvgPool2D", "MaxPool1D", "AvgPool1D", "GlobalAvgPool2D",
    "GlobalMaxPool2D", "GlobalAvgPool1D", "GlobalMaxPool1D", "SimpleRNN", "LSTM", "GRU",
    "Bidirectional", "Embedding", "GELU", "MultiHeadAttention", "PositionalEmbedding",
    "SinePositionEncoding", "TransformerBlock", "distributed", "utils", "RandomFlip",
    "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "Resizing",
    "CenterCrop", "RandomCrop", "PReLU", "Identity", "GroupNormalization", "RMSNormalization", "RNN",
    "SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells",
    "Dot", "UnitNormalization", "Attention", "AdditiveAttention",
    "Conv3D", "Convolution3D", "MaxPooling3D", "AveragePooling3D", "MaxPool3D", "AvgPool3D",
    "GlobalAveragePooling3D", "GlobalMaxPooling3D", "GlobalAvgPool3D", "GlobalMaxPool3D",
    "UpSampling3D", "ZeroPadding3D", "Cropping3D", "SpatialDropout3D",
    "Conv3DTranspose", "Convolution3DTranspose",
    "TextVectorization", "StringLookup", "IntegerLookup", "CategoryEncoding", "Hashing",
    "Discretization", "ConvLSTM2D",
]
