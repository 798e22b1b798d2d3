"""``fastnn.interop.from_torch``: an ``nn.Sequential`` of supported PyTorch modules as the equal
fastnn ``Sequential`` (the module in eval mode: BatchNorm's running statistics, Dropout off).

The walk keeps the PyTorch sample shape and whether that tensor is a channels-first view of
fastnn's channels-last one (``cf``). A Flatten of such a view is fastnn's Flatten (order
h, w, c) plus a pending permutation ``perm`` (fastnn feature j is PyTorch's feature perm[j]),
which the next Linear absorbs into its kernel rows; LayerNorm, BatchNorm1d, the activations
and Dropout in between commute with it (their per-feature parameters are permuted).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

import fastnn as fnn
from fastnn.activations import ActivationName


class _Walk:
    """The state of the conversion between two modules."""

    def __init__(self, shape: tuple[int, ...], cf: bool, dtype: Any) -> None:
        self.shape, self.cf, self.dtype = shape, cf, dtype
        self.perm: Optional[np.ndarray] = None
        self.layers: list[Any] = []
        self.weights: list[tuple[Any, dict[str, np.ndarray]]] = []
        self.where = ""

    def fail(self, why: str) -> None:
        raise ValueError(f"from_torch: module {self.where}: {why}")

    def add(self, layer: Any, weights: Optional[dict[str, Any]] = None) -> None:
        self.layers.append(layer)
        if weights:
            self.weights.append((layer, {k: _array(v, self.dtype) for k, v in weights.items()}))

    def spatial(self, rank: int) -> tuple[int, ...]:
        if not self.cf or len(self.shape) != rank + 1:
            self.fail(f"expects a channels-first {rank + 1}-D sample (channels, "
                      f"{_AXES[rank]}); the tensor here is "
                      f"{self.shape}")
        return self.shape[1:]

    def features(self, n: int, what: str) -> np.ndarray:
        """The per-feature order of a vector parameter of n features on the last axis."""
        if self.cf and len(self.shape) > 1:
            self.fail(f"{what} works on the last axis, which is not the channels of this "
                      f"channels-first tensor {self.shape}")
        if self.shape[-1] != n:
            self.fail(f"expects {n} features; the tensor here has shape {self.shape}")
        return self.perm if self.perm is not None else np.arange(n)


#: the spatial axes of the windowed modules by their rank, and each module kind's rank
_AXES = {1: "length", 2: "height, width", 3: "depth, height, width"}
_RANKS = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3, nn.MaxPool1d: 1, nn.MaxPool2d: 2,
          nn.MaxPool3d: 3, nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3,
          nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3,
          nn.AdaptiveMaxPool1d: 1, nn.AdaptiveMaxPool2d: 2, nn.AdaptiveMaxPool3d: 3}


def _array(v: Any, dtype: Any) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    return np.ascontiguousarray(v, dtype=dtype)


def _tup(v: Any, rank: int) -> tuple[int, ...]:
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * rank


def _padding(w: _Walk, sizes: tuple[int, ...], k: tuple[int, ...], s: tuple[int, ...],
             d: tuple[int, ...], p: Any) -> str:
    """'valid' or 'same' (Keras' rule) when it places the windows as PyTorch's ``p`` does."""
    if isinstance(p, str):
        return p
    p = _tup(p, len(sizes))
    if not any(p):
        return "valid"
    for n, ki, si, di, pi in zip(sizes, k, s, d, p):
        dk = di * (ki - 1) + 1
        out = -(-n // si)
        if (n + 2 * pi - dk) // si + 1 != out or max((out - 1) * si + dk - n, 0) // 2 != pi:
            w.fail(f"padding={p} is not Keras' 'same' for the input size {sizes}; fastnn pads "
                   f"'valid' or 'same' only")
    return "same"


def _out_size(n: int, k: int, s: int, d: int, pad: str) -> int:
    return -(-n // s) if pad == "same" else (n - d * (k - 1) - 1) // s + 1


def _linear(w: _Walk, m: nn.Linear) -> None:
    order = w.features(m.in_features, "Linear")
    kernel = m.weight.detach().cpu().numpy().T[order]
    w.add(fnn.Dense(m.out_features, use_bias=m.bias is not None),
          {"kernel": kernel, "bias": m.bias} if m.bias is not None else {"kernel": kernel})
    w.shape, w.perm = (*w.shape[:-1], m.out_features), None


def _conv(w: _Walk, m: Any) -> None:
    rank = _RANKS[type(m)]
    sizes = w.spatial(rank)
    if m.padding_mode != "zeros":
        w.fail("padding modes other than zeros are not supported")
    if w.shape[0] != m.in_channels:
        w.fail(f"expects {m.in_channels} channels; the tensor here has shape {w.shape}")
    k, s, d = _tup(m.kernel_size, rank), _tup(m.stride, rank), _tup(m.dilation, rank)
    pad = _padding(w, sizes, k, s, d, m.padding)
    kernel = m.weight.detach().cpu().numpy().transpose(*range(2, 2 + rank), 1, 0)
    layer = {1: fnn.Conv1D, 2: fnn.Conv2D, 3: fnn.Conv3D}[rank](
        m.out_channels, k, strides=s, padding=pad, dilation_rate=d, use_bias=m.bias is not None,
        **({"groups": m.groups} if m.groups != 1 else {}))
    w.add(layer, {"kernel": kernel, "bias": m.bias} if m.bias is not None else {"kernel": kernel})
    w.shape = (m.out_channels, *(_out_size(*a, pad) for a in zip(sizes, k, s, d)))


def _pool(w: _Walk, m: Any) -> None:
    rank = _RANKS[type(m)]
    sizes = w.spatial(rank)
    is_max = isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d))
    if m.ceil_mode:
        w.fail("ceil_mode=True is not supported")
    if is_max and (m.return_indices or _tup(m.dilation, rank) != (1,) * rank):
        w.fail("return_indices and dilation are not supported")
    if not is_max and getattr(m, "divisor_override", None) is not None:
        w.fail("divisor_override is not supported")
    k = _tup(m.kernel_size, rank)
    s = _tup(m.stride if m.stride is not None else m.kernel_size, rank)
    pad = _padding(w, sizes, k, s, (1,) * rank, m.padding)
    if pad == "same" and not is_max and m.count_include_pad:
        w.fail("padding with count_include_pad=True (zeros in the average) is not supported; "
               "Keras' 'same' averages the input only (count_include_pad=False)")
    kind = {(True, 3): fnn.MaxPooling3D, (True, 2): fnn.MaxPooling2D,
            (True, 1): fnn.MaxPooling1D, (False, 3): fnn.AveragePooling3D,
            (False, 2): fnn.AveragePooling2D, (False, 1): fnn.AveragePooling1D}[is_max, rank]
    w.add(kind(k, strides=s, padding=pad))
    w.shape = (w.shape[0], *(_out_size(n, ki, si, 1, pad) for n, ki, si in zip(sizes, k, s)))


def _global_pool(w: _Walk, m: Any) -> None:
    rank = _RANKS[type(m)]
    w.spatial(rank)
    if _tup(m.output_size, rank) != (1,) * rank or getattr(m, "return_indices", False):
        w.fail("only an output size of 1 (global pooling) is supported")
    is_max = isinstance(m, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d))
    kind = {(True, 3): fnn.GlobalMaxPooling3D, (True, 2): fnn.GlobalMaxPooling2D,
            (True, 1): fnn.GlobalMaxPooling1D, (False, 3): fnn.GlobalAveragePooling3D,
            (False, 2): fnn.GlobalAveragePooling2D, (False, 1): fnn.GlobalAveragePooling1D}
    w.add(kind[is_max, rank](keepdims=True))
    w.shape = (w.shape[0], *(1,) * rank)


def _flatten(w: _Walk, m: nn.Flatten) -> None:
    if m.start_dim != 1 or m.end_dim != -1:
        w.fail("only Flatten(start_dim=1, end_dim=-1) is supported")
    if len(w.shape) == 1:
        return
    n = math.prod(w.shape)
    if w.cf and n != w.shape[0]:          # PyTorch flattens (c, h, w), fastnn (h, w, c)
        w.perm = np.arange(n).reshape(w.shape).transpose(*range(1, len(w.shape)), 0).ravel()
    w.add(fnn.Flatten())
    w.shape, w.cf = (n,), False


def _norm(w: _Walk, m: Any) -> None:
    if isinstance(m, nn.LayerNorm):
        if len(m.normalized_shape) != 1:
            w.fail("only a LayerNorm over the last axis (normalized_shape of one int) is "
                   "supported")
        order = w.features(m.normalized_shape[0], "LayerNorm")
        layer: Any = fnn.LayerNormalization(epsilon=m.eps, center=m.bias is not None,
                                       scale=m.weight is not None)
        weights = {}
    else:
        if not m.track_running_stats or m.momentum is None:
            w.fail("needs running statistics (track_running_stats=True) and a momentum")
        if isinstance(m, nn.BatchNorm2d) or (w.cf and len(w.shape) == 2):
            w.spatial(2 if isinstance(m, nn.BatchNorm2d) else 1)
            if w.shape[0] != m.num_features:
                w.fail(f"expects {m.num_features} channels; the tensor here is {w.shape}")
            order = np.arange(m.num_features)
        else:
            order = w.features(m.num_features, "BatchNorm1d")
        layer = fnn.BatchNormalization(momentum=1.0 - m.momentum, epsilon=m.eps,
                                       center=m.affine, scale=m.affine)
        weights = {"moving_mean": m.running_mean, "moving_variance": m.running_var}
    if m.weight is not None:
        weights["gamma"] = m.weight
    if m.bias is not None:
        weights["beta"] = m.bias
    w.add(layer, {k: _array(v, w.dtype)[order] for k, v in weights.items()})


def _embedding(w: _Walk, m: nn.Embedding) -> None:
    if w.layers or len(w.shape) != 1:
        w.fail("Embedding must come first, on input_shape=(steps,) of integer indices")
    if m.max_norm is not None:
        w.fail("max_norm is not supported")
    w.add(fnn.Embedding(m.num_embeddings, m.embedding_dim), {"embeddings": m.weight})
    w.shape = (w.shape[0], m.embedding_dim)


_RECURRENT = {nn.RNN: fnn.SimpleRNN, nn.LSTM: fnn.LSTM, nn.GRU: fnn.GRU}


def _recurrent(w: _Walk, m: Any, after: Any) -> None:
    from fastnn.interop.torch_modules import RecurrentOutput
    if not isinstance(after, RecurrentOutput):
        w.fail("an RNN, LSTM or GRU must be followed by fnn.interop.RecurrentOutput(...) "
               "(it returns a tuple that the next module cannot take)")
    if not m.batch_first or int(getattr(m, "proj_size", 0)):
        w.fail("needs batch_first=True (and proj_size=0)")
    if w.cf or len(w.shape) != 2 or w.shape[1] != m.input_size:
        w.fail(f"expects a sample (steps, {m.input_size}); the tensor here is {w.shape}")
    u, dirs = m.hidden_size, 2 if m.bidirectional else 1
    gates = {nn.RNN: [0], nn.LSTM: [0, 1, 2, 3], nn.GRU: [1, 0, 2]}[type(m)]  # Keras' order

    def keras(a: Any) -> np.ndarray:           # PyTorch gate rows -> Keras gate columns
        a = a.detach().cpu().numpy()
        return np.concatenate([a[g * u:(g + 1) * u] for g in gates], axis=0).T

    kwargs: dict[str, Any] = {"use_bias": m.bias}
    if isinstance(m, nn.RNN):
        kwargs["activation"] = m.nonlinearity
    for i in range(m.num_layers):
        last = i == m.num_layers - 1
        weights: dict[str, Any] = {}
        per_dir = []
        for sfx in ["", "_reverse"][:dirs]:
            p = {n: getattr(m, f"{n}_l{i}{sfx}") for n in ("weight_ih", "weight_hh")}
            one = {"kernel": keras(p["weight_ih"]), "recurrent_kernel": keras(p["weight_hh"])}
            if m.bias:
                bi, bh = (keras(getattr(m, f"{n}_l{i}{sfx}")[:, None])[0]
                          for n in ("bias_ih", "bias_hh"))
                one["bias"] = np.stack([bi, bh]) if isinstance(m, nn.GRU) else bi + bh
            per_dir.append(one)
        layer = _RECURRENT[type(m)](u, return_sequences=after.return_sequences or not last,
                                    **kwargs)
        if dirs == 2:
            layer = fnn.Bidirectional(layer, merge_mode="concat")
            weights = {f"{k}{j}": v for j, one in enumerate(per_dir) for k, v in one.items()}
        else:
            weights = per_dir[0]
        w.add(layer, weights)
        if m.dropout and not last:
            w.add(fnn.Dropout(m.dropout))
    w.shape = (w.shape[0], dirs * u) if after.return_sequences else (dirs * u,)


def _keras_activation(name: ActivationName, ok: bool, why: str,
                      alpha: Optional[float] = None) -> Any:
    """An activation layer of Keras' elu (``fnn.ELU(alpha)``), selu, softplus or silu, when the
    module is that function (``ok``); else ValueError saying ``why``."""
    if not ok:
        raise ValueError(f"from_torch: {why}")
    return fnn.ELU(alpha) if alpha is not None else fnn.Activation(name)


def _softmax(w: _Walk, m: nn.Softmax) -> None:
    axis = 1 if w.cf else len(w.shape)
    if m.dim is None or m.dim % (len(w.shape) + 1) != axis:
        w.fail(f"only a softmax over the features (dim={-1 if not w.cf else 1}) is supported; "
               f"received dim={m.dim}")
    w.add(fnn.Softmax())


_SIMPLE: dict[type, Callable[[Any], Any]] = {
    nn.ReLU: lambda m: fnn.ReLU(), nn.Sigmoid: lambda m: fnn.Sigmoid(),
    nn.Tanh: lambda m: fnn.Tanh(), nn.LeakyReLU: lambda m: fnn.LeakyReLU(m.negative_slope),
    nn.GELU: lambda m: fnn.GELU(approximate=m.approximate == "tanh"),
    nn.ELU: lambda m: _keras_activation("elu", m.alpha >= 0.0, f"only nn.ELU(alpha >= 0) is "
                                        f"supported; received alpha={m.alpha}", m.alpha),
    nn.SELU: lambda m: fnn.Activation("selu"),
    nn.SiLU: lambda m: fnn.Activation("silu"),
    # beta 1 only; PyTorch returns x itself above `threshold` (default 20), where
    # log1p(exp(-x)) is below 2e-9: the same float32 values
    nn.Softplus: lambda m: _keras_activation("softplus", m.beta == 1.0, f"only nn.Softplus("
                                             f"beta=1) is supported; received beta={m.beta}"),
    nn.Dropout: lambda m: fnn.Dropout(m.p) if m.p > 0 else None,
    nn.Identity: lambda m: None,
}
_HANDLERS: dict[type, Callable[[_Walk, Any], None]] = {
    nn.Linear: _linear, nn.Conv1d: _conv, nn.Conv2d: _conv, nn.Conv3d: _conv,
    nn.Flatten: _flatten, nn.MaxPool1d: _pool, nn.MaxPool2d: _pool, nn.MaxPool3d: _pool,
    nn.AvgPool1d: _pool, nn.AvgPool2d: _pool, nn.AvgPool3d: _pool,
    nn.AdaptiveAvgPool1d: _global_pool, nn.AdaptiveAvgPool2d: _global_pool,
    nn.AdaptiveAvgPool3d: _global_pool, nn.AdaptiveMaxPool1d: _global_pool,
    nn.AdaptiveMaxPool2d: _global_pool, nn.AdaptiveMaxPool3d: _global_pool,
    nn.LayerNorm: _norm, nn.BatchNorm1d: _norm, nn.BatchNorm2d: _norm,
    nn.Embedding: _embedding, nn.Softmax: _softmax,
}
#: the first of these decides that the input is channels-first (an image or a signal)
_CHANNELS_FIRST = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
                   nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
                   nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
                   nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.BatchNorm1d, nn.BatchNorm2d)
_SUPPORTED = {c.__name__ for c in (*_SIMPLE, *_HANDLERS, *_RECURRENT)} | {"RecurrentOutput"}
_LAYOUT_FREE = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.GELU, nn.ELU, nn.SELU, nn.SiLU,
                nn.Softplus, nn.Dropout, nn.Identity)


def _modules(module: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """The leaf modules of nested nn.Sequential containers, with their dotted names."""
    if not isinstance(module, nn.Sequential):
        return [(prefix or type(module).__name__, module)]
    out: list[tuple[str, Any]] = []
    for name, child in module.named_children():
        out += _modules(child, f"{prefix}.{name}" if prefix else name)
    return out


def from_torch(module: Any, input_shape: Any, backend: str = "fast") -> Any:
    """See ``fastnn.interop.from_torch``."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module. Received: {type(module).__name__}")
    if not isinstance(input_shape, (tuple, list)) or not input_shape or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape):
        raise ValueError(f"input_shape must be PyTorch's sample shape without the batch axis, "
                         f"a tuple of positive ints. Received: input_shape={input_shape!r}")
    dtypes = {p.dtype for p in module.parameters()} | {b.dtype for b in module.buffers()
                                                       if b.is_floating_point()}
    if not dtypes <= {torch.float32, torch.float64} or len(dtypes) > 1:
        raise ValueError(f"from_torch: the parameters must all be float32 or all float64. "
                         f"Received: {sorted(str(d) for d in dtypes)}")
    dtype = np.float64 if dtypes == {torch.float64} else np.float32
    mods = _modules(module)
    first = next((m for _, m in mods if not isinstance(m, _LAYOUT_FREE)), None)
    cf = isinstance(first, _CHANNELS_FIRST) and len(input_shape) >= 2
    w = _Walk(tuple(input_shape), cf, dtype)
    for i, (name, m) in enumerate(mods):
        w.where = f"{name!r} ({type(m).__name__})"
        if type(m) in _SIMPLE:
            layer = _SIMPLE[type(m)](m)
            if layer is not None:
                w.add(layer)
        elif type(m) in _HANDLERS:
            _HANDLERS[type(m)](w, m)
        elif type(m) in _RECURRENT:
            _recurrent(w, m, mods[i + 1][1] if i + 1 < len(mods) else None)
        elif type(m).__name__ == "RecurrentOutput":
            if not i or type(mods[i - 1][1]) not in _RECURRENT:
                w.fail("RecurrentOutput must follow an RNN, LSTM or GRU module")
        else:
            raise ValueError(f"from_torch: module {w.where} is not supported; fastnn reproduces "
                             f"{', '.join(sorted(_SUPPORTED))}")
    if w.perm is not None:
        raise ValueError("from_torch: the model ends on a channels-first Flatten; end it with a "
                         "Linear layer (whose rows absorb the reordering)")
    if not w.layers:
        w.layers.append(fnn.Activation("linear"))
    shape = tuple(input_shape[1:]) + (input_shape[0],) if cf else tuple(input_shape)
    model = fnn.Sequential(w.layers, input_shape=shape, dtype=dtype,
                           backend=backend)  # type: ignore[arg-type]  # checked by Sequential
    for layer, weights in w.weights:
        names = [s.name for s in layer._specs]
        if isinstance(layer, fnn.Bidirectional):
            half = len(names) // 2
            names = [f"{n}{j // half}" for j, n in enumerate(names)]
        layer.set_weights([weights[n] for n in names])
    return model
