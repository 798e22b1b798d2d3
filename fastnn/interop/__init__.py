"""Bring a model from PyTorch or Keras into fastnn.

    import fastnn as fnn
    model = fnn.interop.from_torch(torch_sequential, input_shape=(1, 28, 28))
    model.load_weights("keras_model.weights.h5")      # a fastnn model of the same layers

PyTorch (``from_torch``, ``RecurrentOutput``) and h5py (``.weights.h5`` files) are optional:
each is imported on first use, so ``import fastnn`` needs neither.
"""

from __future__ import annotations

from typing import Any


def from_torch(module: Any, input_shape: Any, backend: str = "fast") -> Any:
    """The fastnn ``Sequential`` computing what ``module.eval()`` computes.

    Parameters
    ----------
    module : torch.nn.Sequential (or one module)
        Of Linear, Conv1d/2d (zero padding that Keras' 'valid' or 'same' reproduces),
        MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvg/MaxPool1d/2d(1), Flatten, BatchNorm1d/2d,
        LayerNorm (last axis), Embedding (first), RNN/LSTM/GRU (``batch_first=True``, stacked,
        bidirectional) each followed by ``RecurrentOutput``, ReLU, Sigmoid, Tanh, LeakyReLU,
        GELU, ELU (alpha 1), SELU, Softplus (beta 1), SiLU, Softmax (over the features),
        Dropout and Identity; nested nn.Sequential too.
        float32 parameters give a float32 model, float64 ones a float64 model.
    input_shape : tuple of int
        PyTorch's sample shape without the batch axis: (channels, height, width) for a CNN,
        (channels, length) for Conv1d, (steps, features) for a recurrent net, (steps,) of
        integer indices for an Embedding, (features,) for an MLP.
    backend : {"fast", "numpy"}

    Returns
    -------
    Sequential
        Built, with PyTorch's weights in Keras' layouts. Its input and any image-shaped output
        are channels-last: feed it ``x_torch.permute(0, 2, 3, 1)`` (``(0, 2, 1)`` for Conv1d).

    Raises
    ------
    ImportError
        If torch is not installed.
    ValueError
        Naming the first module (its name in the Sequential and its class) that fastnn cannot
        reproduce exactly; nothing is skipped silently.
    """
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise ImportError("fastnn.interop.from_torch needs PyTorch: pip install torch") from exc
    from fastnn.interop.torch import from_torch as _from_torch
    return _from_torch(module, input_shape, backend)


def __getattr__(name: str) -> Any:
    if name == "RecurrentOutput":              # a torch.nn.Module: imports torch
        from fastnn.interop.torch_modules import RecurrentOutput
        return RecurrentOutput
    raise AttributeError(f"module 'fastnn.interop' has no attribute {name!r}")


__all__ = ["from_torch", "RecurrentOutput"]
