"""The layer protocol: what every layer declares and computes.

A layer is built once for the shape of one sample (batch-first arrays, channels-last, as in
Keras: ``(features,)``, ``(steps, features)``, ``(height, width, channels)``) and then

- declares its weights (``weight_specs``: name, shape, initializer, regularizer, trainable);
  the model lays them out in its flat buffers and ``bind`` hands the layer views of them;
- computes ``forward(ctx, x, training) -> y`` and ``backward(ctx, dy) -> dx``, ADDING its
  weights' gradients into the views it was bound to (the model zeroes them before a pass).

``ctx`` is the layer's slot in a workspace the model owns (``Slot``): its buffers are allocated
once for the largest batch seen and sliced for smaller ones, so a training step allocates
nothing once shapes are known. Everything ``backward`` needs, ``forward`` saves there.
Layers with several inputs (``Add``, ``Concatenate``) take and return lists.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastnn import activations as A
from fastnn import _validation as V

FloatArray = NDArray[np.floating[Any]]
Shape = tuple[int, ...]


class WeightSpec(NamedTuple):
    """One weight a layer declares: ``initializer(shape, dtype, rng)`` fills it at build;
    ``regularizer(w)`` (or None) adds a penalty to the loss; non-trainable weights (moving
    statistics) are never touched by an optimizer."""

    name: str
    shape: Shape
    initializer: Callable[..., Any]
    regularizer: Any = None
    trainable: bool = True


#: The most values one weight may have: 2**31 - 1 (8 GiB in float32, 16 GiB in float64; the
#: model keeps three buffers of that size: weights, gradients and their sums). A layer whose
#: weight would be larger is refused when it is built, with a ValueError naming its width
#: arguments, instead of failing in the allocation (MemoryError) or wrapping a size.
MAX_WEIGHT_VALUES = 2**31 - 1

#: The width arguments a refused weight's message names, when the layer has them.
_WIDTH_ARGUMENTS = ("units", "filters", "output_dim", "input_dim", "depth_multiplier",
                    "num_heads", "key_dim", "value_dim")


def check_weight_sizes(layer: "Layer", specs: Sequence[WeightSpec]) -> None:
    """Raise ValueError if a weight of ``specs`` (``layer``'s) has more than
    ``MAX_WEIGHT_VALUES`` values; the size is computed exactly (no wrap)."""
    for spec in specs:
        values = math.prod(int(d) for d in spec.shape)
        if values > MAX_WEIGHT_VALUES:
            widths = ", ".join(f"{k}={getattr(layer, k)}" for k in _WIDTH_ARGUMENTS
                               if type(getattr(layer, k, None)) is int)
            raise ValueError(f"{layer.name}: its weight {spec.name!r} would have shape "
                             f"{tuple(spec.shape)}, {values} values, over the limit of 2**31 - 1 "
                             f"values a weight (fastnn.layers.base.MAX_WEIGHT_VALUES). "
                             f"Received: {widths + ', ' if widths else ''}input shape "
                             f"{layer.input_shape}")


#: The most values one sample of a layer's output may hold in a model built in code: 2**40 (4 TiB
#: a sample in float32), far beyond any machine, so only sizes that cannot exist are refused
#: (by name, at build) rather than failing inside NumPy at the first pass. Models loaded from
#: files have the much tighter fastnn.models.saving.MAX_SAMPLE_VALUES.
MAX_OUTPUT_VALUES = 2**40


def check_output_size(layer: "Layer", shape: Any) -> None:
    """Raise ValueError if one sample of ``layer``'s output (a shape, or a list of them) holds
    more than ``MAX_OUTPUT_VALUES`` values; the size is computed exactly (no wrap)."""
    shapes = shape if isinstance(shape, list) else [shape]
    values = sum(math.prod(int(d) for d in s) for s in shapes
                 if isinstance(s, tuple) and all(isinstance(d, (int, np.integer)) for d in s))
    if values > MAX_OUTPUT_VALUES:
        raise ValueError(f"{layer.name}: its output would hold {values} values a sample (shape "
                         f"{shape}), over the limit of 2**40 (fastnn.layers.base."
                         f"MAX_OUTPUT_VALUES): no machine holds one sample. Received: input "
                         f"shape {layer.input_shape}")


class Slot:
    """A layer's buffers in one workspace: ``rows_buffer(key, sample_shape[, dtype])`` gives
    (rows, *sample_shape) for the current pass (of the model's dtype unless given), ``buffer(key, shape)`` a fixed-shape array.
    Storage is kept for the largest ``rows`` seen (C-contiguous, so a row slice stays
    contiguous) and reused by every later pass.

    ``fuse_act`` is set on the output layer when the loss takes the gradient with respect to
    the final activation's input (softmax with cross-entropy): that layer's backward then skips
    its activation's derivative. ``relu_fused`` is set on a max pooling layer whose windows do
    not overlap and on the relu convolution before it, when the pooling is that convolution's
    only reader: the pooling's backward then applies the relu's derivative too (at a window's
    argmax it is pooled y > 0, elsewhere the gradient is 0 anyway), one pass instead of two,
    and the convolution takes its dy as dL/dz. ``dx_target(i)`` is where the engine would like
    the gradient for input ``i`` written (None when nobody needs it). ``mask``: the step
    mask of the input for this call (see ``Layer.compute_mask``).
    """

    __slots__ = ("be", "dtype", "rows", "capacity", "fuse_act", "relu_fused", "training",
                 "saved", "mask", "_store", "_dx", "_views")

    def __init__(self, be: Any, dtype: np.dtype[Any]) -> None:
        self.be, self.dtype = be, dtype
        self.rows = self.capacity = 0
        self.fuse_act = False
        self.relu_fused = False
        self.training = False
        self.saved: dict[str, Any] = {}      # references forward keeps for backward (inputs)
        # the step mask(s) of this call's input(s) (see Layer.compute_mask): None, a bool
        # (rows, steps) array, or a list of them (None entries) for a layer of several inputs
        self.mask: Any = None
        self._store: dict[Any, FloatArray] = {}
        self._dx: list[Optional[FloatArray]] = []
        self._views: dict[Any, tuple[int, Any, Any]] = {}

    def set_rows(self, rows: int) -> None:
        if rows > self.capacity:
            self._store = {k: v for k, v in self._store.items() if not isinstance(k, tuple)}
            self.capacity = rows
        self.rows = rows

    def rows_buffer(self, key: str, sample_shape: Sequence[int],
                    dtype: Any = None) -> FloatArray:
        full = self._store.get((key,))
        shape = (self.capacity, *sample_shape)
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        if full is None or full.shape != shape or full.dtype != dtype:
            full = self._store[(key,)] = np.empty(shape, dtype)
        return full if self.rows == self.capacity else full[:self.rows]

    def buffer(self, key: str, shape: Sequence[int]) -> FloatArray:
        arr = self._store.get(key)
        if arr is None or arr.shape != tuple(shape):
            arr = self._store[key] = np.empty(tuple(shape), self.dtype)
        return arr

    def dx_target(self, i: int = 0) -> Optional[FloatArray]:
        return self._dx[i] if i < len(self._dx) else None

    def views(self, key: Any, build: Any) -> Any:
        """``build()`` (views of this slot's buffers, made with ``rows_buffer``), reused while
        the rows and the buffers stay the same: a layer's per-call reshapes and slices made
        once (the same rows reuse the same buffers; new rows or a larger capacity rebuild)."""
        hit = self._views.get(key)
        if hit is not None and hit[0] == self.rows and hit[1] is self._store:
            return hit[2]
        made = build()
        self._views[key] = (self.rows, self._store, made)
        return made


def steps_real_in_all(ctx: Slot, key: str, masks: Sequence[Any]) -> Any:
    """The step mask True where every one of ``masks`` (None entries: no mask) is: one of
    them as it is, or their AND in the slot's buffer ``key``; None when there are none."""
    given = [m for m in masks if m is not None]
    if len(given) < 2:
        return given[0] if given else None
    both = ctx.rows_buffer(key, given[0].shape[1:], dtype=bool)
    np.logical_and(given[0], given[1], out=both)
    for m in given[2:]:
        np.logical_and(both, m, out=both)
    return both


def mask_input_and_steps(ctx: Slot, key: str, tensor: Any, steps: Sequence[Any]) -> Any:
    """The attention layers' mask: True where the mask input ``tensor`` (nonzero: take part;
    None: none given; (n, keys) or (n, queries, keys)) and every step mask of ``steps`` (n, keys)
    (from Embedding(mask_zero=True) or Masking; None entries: none) are, in the slot's buffer
    ``key``; None when there is none."""
    if tensor is None:
        return steps_real_in_all(ctx, key, steps)
    mine = ctx.rows_buffer(key, tensor.shape[1:], dtype=bool)
    np.not_equal(tensor, 0, out=mine)
    for m in steps:
        if m is not None:
            np.logical_and(mine, m if mine.ndim == 2 else m[:, None, :], out=mine)
    return mine


# Keras' two passes: a break before each capitalised word (a capital then lowercase letters or
# digits), then between a lowercase letter and a capital. A digit followed by a capital is not
# a break, so ``Conv2D`` is ``conv2d`` (one pass splitting at every case change gave ``conv2_d``).
_WORD = re.compile(r"(.)([A-Z][a-z]+)")      # Keras 3's to_snake_case
_LOWER_UPPER = re.compile(r"([a-z])([A-Z])")


def snake_name(cls_name: str) -> str:
    """Keras' default layer names: ``BatchNormalization`` -> ``batch_normalization``,
    ``LeakyReLU`` -> ``leaky_re_lu``, ``MaxPooling2D`` -> ``max_pooling2d``."""
    return _LOWER_UPPER.sub(r"\1_\2", _WORD.sub(r"\1_\2", cls_name)).lower()


def _given_input(input_shape: Any, input_dim: Any) -> tuple[int, ...]:
    """A sample's shape from Keras' layer arguments (one of the two)."""
    if input_shape is not None and input_dim is not None:
        raise ValueError(f"give input_shape or input_dim, not both. Received: input_shape="
                         f"{input_shape!r}, input_dim={input_dim!r}")
    if input_dim is not None:
        return (V.check_positive_int("input_dim", input_dim),)
    return V.check_shape("input_shape", input_shape)


class Layer:
    """Base class of all layers (see the module docstring for the protocol).

    Parameters
    ----------
    name : str, optional
        Unique within a model; by default the class name in snake case, numbered
        (``dense``, ``dense_1``, ...) when the model is built.
    trainable : bool, default True
        False freezes the layer's weights: ``fit`` and ``optimizer.step`` leave them as they
        are (read at ``compile``, or at an optimizer's first ``step(model)``, as in Keras).

    Attributes
    ----------
    act, param : int, float
        Code and parameter of the activation the layer applies (``fastnn.activations``).
    input_shape, output_shape : tuple of int or None
        The shapes of one sample, set when the layer is built.
    """

    act: int = A.LINEAR
    param: float = 0.0
    #: number of inputs the layer takes (None: a list of two or more)
    n_inputs: Optional[int] = 1
    #: the layer only rearranges its input (Flatten, Reshape): the output's activation is the
    #: one of the layer before it (what the loss sees: probabilities after a softmax, say)
    shape_only: bool = False
    #: Keras' name: the layer computes each step of a sequence on its own, so a step mask on
    #: its input holds for its output too (Dense, activations, dropout, normalization, merges)
    supports_masking: bool = False
    #: the layer reads the step mask of its input (``ctx.mask``) itself: the recurrent layers,
    #: attention, GlobalAveragePooling1D; its output's mask is its ``compute_mask``'s
    uses_mask: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every layer also takes Keras' ``input_shape=`` / ``input_dim=`` (``Dense(64,
        input_shape=(20,))``, ``Flatten(input_shape=(28, 28))``): on a Sequential's first layer
        they give the model its input, as in Keras; elsewhere they are ignored, as there."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            if cls.__init__ is not Layer.__init__:
                return                        # inherited, and wrapped already
            init = Layer.__init__

        # a layer's own argument of that name (Embedding's input_dim, the vocabulary) is its own
        taken = [key for key in ("input_shape", "input_dim")
                 if key not in inspect.signature(init).parameters]

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kw: Any) -> None:
            given = {key: kw.pop(key) for key in taken if key in kw}
            init(self, *args, **kw)
            if any(value is not None for value in given.values()):
                self._given_input = _given_input(given.get("input_shape"),
                                                 given.get("input_dim"))
        setattr(cls, "__init__", __init__)

    def __init__(self, name: Optional[str] = None, trainable: bool = True) -> None:
        if name is not None:
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-/]{1,128}", name):
                raise ValueError(f"name must be 1 to 128 letters, digits or _.-/ characters. "
                                 f"Received: name={V._describe(name)}")
        self._name = name
        self._auto_name: Optional[str] = None   # given by the model when ``name`` is not
        self.trainable = V.check_bool("trainable", trainable)
        self.input_shape: Any = None
        self.output_shape: Any = None
        self.dtype: Optional[np.dtype[Any]] = None
        self._weights: list[FloatArray] = []
        self._grads: list[FloatArray] = []
        self._specs: list[WeightSpec] = []
        self._owner: Any = None            # the model that built the layer

    # ------------------------------------------------------------------ the protocol
    @property
    def name(self) -> str:
        if self._name is not None:
            return self._name
        return self._auto_name or snake_name(type(self).__name__)

    @property
    def built(self) -> bool:
        return self.output_shape is not None

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The shape of one output sample for ``input_shape`` (ValueError if it cannot take
        it). Default: the same shape."""
        return input_shape

    def build(self, input_shape: Any, dtype: np.dtype[Any]) -> Any:
        """Fix the input shape and dtype; return the output shape."""
        self.output_shape = self.compute_output_shape(input_shape)
        self.input_shape, self.dtype = input_shape, dtype
        check_output_size(self, self.output_shape)
        self._specs = list(self.weight_specs())
        check_weight_sizes(self, self._specs)
        return self.output_shape

    @property
    def sublayers(self) -> tuple["Layer", ...]:
        """Layers this one runs inside itself (a wrapper's), whose weights it declares."""
        return ()

    def expect_inputs(self, count: int) -> None:
        """Told, before ``build``, how many tensors a model file wires into the layer (a
        recurrent layer's initial states are extra inputs). Default: nothing to do."""

    def weight_specs(self) -> Sequence[WeightSpec]:
        """The layer's weights, in ``get_weights()`` order (after ``build``)."""
        return []

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        """Receive views of the model's buffers, one per ``weight_specs`` entry."""
        self._weights, self._grads = list(weights), list(grads)

    def forward(self, ctx: Slot, x: Any, training: bool) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, ctx: Slot, dy: FloatArray) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    # ------------------------------------------------------------------ step masks
    # Keras' masks: Embedding(mask_zero=True) and Masking mark each sample's padded steps; the
    # mask follows the tensor through the layers that support it, and the recurrent layers,
    # attention, GlobalAveragePooling1D and the loss skip those steps. A mask is a bool array
    # (rows, steps), True where a step is real.
    def output_masked(self, masked: Any) -> bool:
        """Whether the output carries a step mask, given whether the input does (a bool, or
        one per input); asked once, when the model is built."""
        if isinstance(masked, list):
            return self.supports_masking and any(masked)
        return self.supports_masking and bool(masked)

    def compute_mask(self, ctx: Slot, x: Any, mask: Any) -> Any:
        """The output's step mask for this call, from the input's ``mask`` (a list, entries
        None where an input has none, for a layer of several inputs): by default the input's
        (several: the steps real in all of them, as Keras' merges)."""
        if not isinstance(mask, list):
            return mask
        return steps_real_in_all(ctx, "mask_out", mask)

    def check_dtype(self, dtype: Any) -> None:
        """Raise ValueError if the activation's code is unknown, or its parameter is not 0 or a
        normal number of ``dtype``. Nothing is changed."""
        if type(self.act) is not int or self.act not in A.NAMES:
            # an unknown code would reach the kernels (the compiled ones do not check it)
            raise ValueError(f"{type(self).__name__}.act must be one of the activation codes "
                             f"{sorted(A.NAMES)} of fastnn.activations. Received: act="
                             f"{self.act!r}")
        name = PARAM_NAMES.get(self.act)
        if name is not None:
            V.check_in_dtype(name, self.param, V.check_dtype(dtype), zero_ok=True,
                             owner=repr(self))

    # ------------------------------------------------------------------ weights and config
    @property
    def weights(self) -> list[FloatArray]:
        """The layer's weights as read-only views of the model's buffers (Keras'
        ``layer.weights``): they follow training. Change them with ``set_weights``."""
        views = []
        for w in self._weights:
            v = w.view()
            v.flags.writeable = False
            views.append(v)
        return views

    @property
    def trainable_weights(self) -> list[FloatArray]:
        """``weights`` that the optimizer updates (none when the layer is frozen)."""
        return [v for v, s in zip(self.weights, self._specs) if s.trainable and self.trainable]

    @property
    def non_trainable_weights(self) -> list[FloatArray]:
        """``weights`` that the optimizer leaves alone (moving statistics; all, when frozen)."""
        return [v for v, s in zip(self.weights, self._specs)
                if not (s.trainable and self.trainable)]

    def get_weights(self) -> list[FloatArray]:
        """The layer's weights as copies, in Keras' order and layouts."""
        self._check_built()
        return [w.copy() for w in self._weights]

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        """Set the layer's weights in place, from a list shaped like ``get_weights()``."""
        checked = self.checked_weights(weights)
        for dst, src in zip(self._weights, checked):
            dst[...] = src

    def checked_weights(self, weights: Sequence[ArrayLike]) -> list[FloatArray]:
        """``weights`` validated and converted as ``set_weights`` takes them, unset."""
        self._check_built()
        names = [s.name for s in self._specs]
        if not isinstance(weights, (list, tuple)) or len(weights) != len(names):
            raise ValueError(f"weights of {self.name} must be a list of {len(names)} arrays "
                             f"{names}. Received: {V._describe(weights)}")
        out = []
        for spec, w, value in zip(self._specs, self._weights, weights):
            arr = V.as_real_array(spec.name, value)
            if arr.shape != w.shape:
                raise ValueError(f"{spec.name} of {self.name} must have shape {w.shape}. "
                                 f"Received: {spec.name} with shape {arr.shape}")
            arr = V.as_float(arr, w.dtype)
            V.check_finite(spec.name, arr)
            out.append(arr)
        self.check_values(out)
        return out

    def check_values(self, weights: Sequence[FloatArray]) -> None:
        """ValueError when finite weights (in ``get_weights()`` order) break a rule of the
        layer's own (Normalization: a variance >= 0); ``set_weights`` and the model file loader
        ask it. Most layers have none."""

    def count_params(self) -> int:
        return sum(math.prod(s.shape) for s in self._specs)   # exact: np.prod wraps at 2**63

    def set_state(self, state: Any) -> None:
        """Restore what ``get_config()["state"]`` holds (a model file's Dropout counter);
        layers without state refuse any."""
        raise ValueError(f"{type(self).__name__} keeps no state. Received: state={state!r:.80}")

    def get_config(self) -> dict[str, Any]:
        """The JSON-serialisable description ``layer_from_config`` rebuilds the layer from
        (``name`` when given, ``trainable`` when False)."""
        config: dict[str, Any] = {"class": type(self).__name__}
        if self._name is not None:
            config["name"] = self._name
        if not self.trainable:
            config["trainable"] = False
        return config

    @property
    def activation(self) -> str:
        """The name of the activation the layer applies, e.g. ``"relu"``."""
        return A.NAMES[self.act]

    def _check_built(self) -> None:
        if not self.built:
            raise ValueError(f"layer {self.name} has no weights yet: build its model first "
                             f"(give the input shape)")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``layer(tensor)`` on symbolic tensors builds a functional model's graph."""
        from fastnn.models.functional import call_layer
        return call_layer(self, *args, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# The activations that take a parameter, and its name in configs and messages.
PARAM_NAMES = {A.STEP: "threshold", A.LEAKY_RELU: "alpha", A.ELU: "alpha"}


def check_param(name: str, value: Any, low: float | None = None) -> float:
    """A finite activation parameter that float64, the widest dtype, holds as 0 or a normal
    number (``Layer.check_dtype`` checks the model's dtype)."""
    return V.check_in_dtype(name, V.check_float(name, value, low=low), np.float64, zero_ok=True)


def rows_of(x: FloatArray) -> FloatArray:
    """``x`` as 2-D (samples x positions, last axis): how the kernels see channels-last data."""
    return x.reshape(-1, x.shape[-1])
