"""Core layers: ``Dense`` (a layer of neurons), ``Flatten`` and ``Reshape``.

``Dense`` computes ``y = act(x @ W + b)`` on the last axis of any N-D input, as in Keras: an
input (n, steps, features) is the (n * steps, features) matrix to the kernels, so a sequence
model needs no wrapper to apply a layer per step.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastnn import activations as A
from fastnn import _validation as V
from fastnn.layers.activation import Activation
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec, rows_of


def _initializer(name: str, value: Any) -> Any:
    from fastnn import initializers
    try:
        return initializers.get(value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None


def _regularizer(name: str, value: Any) -> Any:
    if value is None:
        return None
    from fastnn import regularizers
    try:
        return regularizers.get(value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None


def _serialize(obj: Any) -> Any:
    if obj is None:
        return None
    get_config = getattr(obj, "get_config", None)
    if get_config is None:
        raise ValueError(f"{obj!r} has no get_config(): a function of the user's cannot be "
                         f"stored in a model file")
    return {"class_name": type(obj).__name__, "config": get_config()}


def activation_of(activation: Any) -> tuple[int, float]:
    """(code, parameter) of an activation given by name or as an activation layer."""
    if isinstance(activation, Activation):
        return activation.act, activation.param
    return A.activation_code(activation), A.DEFAULT_PARAM.get(activation, 0.0)


def kernel_layer_config(layer: Any, config: dict[str, Any]) -> dict[str, Any]:
    """What Dense and the convolutions add to a config: the activation (and its parameter),
    use_bias when False, and the initializers and regularizers that were given."""
    config["activation"] = layer.activation
    if layer.act == A.STEP:
        config["threshold"] = layer.param
    elif layer.act == A.LEAKY_RELU or (layer.act == A.ELU and layer.param != 1.0):
        config["alpha"] = layer.param
    if not layer.use_bias:
        config["use_bias"] = False
    for key in ("kernel_initializer", "bias_initializer", "kernel_regularizer",
                "bias_regularizer"):
        value = getattr(layer, key)
        if value is not None:
            config[key] = _serialize(value)
    return config


def forward_keeping_z(ctx: Slot, layer: Layer, training: bool, y: FloatArray,
                      kernel: Any) -> Optional[FloatArray]:
    """Run ``kernel(act, out)`` (the layer's product plus bias, then ``act``) into ``y``. For an
    activation of ``A.FROM_INPUT`` (gelu) in training, whose derivative is not a function of its
    output, the kernel runs linear into the slot's ``"z"`` buffer, then one pass writes
    ``y := act(z)`` (the same bits as the kernel's own epilogue) and ``z := act'(z)``: that
    buffer, returned, is what the backward pass multiplies by. Otherwise returns None."""
    if not (training and layer.act in A.FROM_INPUT):
        kernel(layer.act, y)
        return None
    z = ctx.rows_buffer("z", layer.output_shape)
    kernel(A.LINEAR, z)
    ctx.be.activation_forward_deriv(rows_of(z), layer.act, rows_of(y))
    return z


def saved_for_derivative(ctx: Slot, layer: Layer, act: int) -> tuple[FloatArray, int]:
    """What the derivative of ``act`` is written with, and the code to pass the kernels with it:
    the output y and ``act``, or for gelu the derivative that ``forward_keeping_z`` kept and
    ``A.DERIV_GIVEN``."""
    if act not in A.FROM_INPUT:
        return ctx.rows_buffer("y", layer.output_shape), act
    d = ctx.saved.get("z")
    if d is None:
        raise ValueError(f"{layer.name}: backward needs a forward pass with training=True first")
    return d, A.DERIV_GIVEN


class _AutoKernel:
    """fastnn's default kernel initialiser: He normal (std sqrt(2 / fan_in)) before the ReLU
    family, Glorot uniform (limit sqrt(6 / (fan_in + fan_out))) otherwise."""

    def __init__(self, act: int) -> None:
        self.act = act

    def __call__(self, shape: Sequence[int], dtype: Any, rng: np.random.Generator) -> Any:
        # Keras' fans: a convolution kernel (..., c_in, c_out) counts its receptive field
        fan_in = math.prod(shape[:-1])
        fan_out = math.prod(shape[:-2]) * int(shape[-1])
        if self.act in A.RELU_FAMILY:
            return rng.standard_normal(tuple(shape)) * math.sqrt(2.0 / fan_in)
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, tuple(shape))


def _zeros(shape: Sequence[int], dtype: Any, rng: Any = None) -> Any:
    return np.zeros(tuple(shape), dtype)


class Dense(Layer):
    """A fully connected layer of ``units`` neurons: ``y = act(x @ W + b)``.

    Backward, with ``dz = act'(y) * dL/dy``: ``dL/dW = x.T @ dz``, ``dL/db = sum(dz, axis=0)``,
    ``dL/dx = dz @ W.T``. On an N-D input it applies to the last axis.

    Parameters
    ----------
    units : int
        Number of neurons (outputs), > 0.
    activation : str, Activation or None, default "linear"
        One of ``linear, step, sigmoid, tanh, relu, leaky_relu, softmax, gelu, gelu_tanh``, or
        an activation layer such as ``LeakyReLU(alpha=0.2)`` to set its parameter; None is
        linear, as in Keras (and in the convolutions).
    use_bias : bool, default True
        Whether the layer has the bias ``b``.
    kernel_initializer, bias_initializer : str, Initializer or callable, optional
        ``fastnn.initializers`` names (``"glorot_uniform"``, ``"he_normal"``, ...). Default:
        He normal before the ReLU family, Glorot uniform otherwise; zero biases.
    kernel_regularizer, bias_regularizer : Regularizer or str, optional
        ``fastnn.regularizers.l2(0.01)`` and the like: a penalty added to the loss.
    name, trainable
        See ``Layer``.

    Shapes: x (n, ..., inputs), W (inputs, units), b (units,), y (n, ..., units).

    Raises
    ------
    TypeError
        If ``units`` is not an integer or ``use_bias`` not a bool.
    ValueError
        If ``units`` < 1 or >= 2**31, or ``activation``, an initializer or a regularizer is
        unknown; when built, if the kernel would hold more than 2**31 - 1 values
        (``fastnn.layers.base.MAX_WEIGHT_VALUES``).

    Examples
    --------
    >>> import fastnn as fnn
    >>> layer = fnn.Dense(3, activation="relu")
    >>> model = fnn.Sequential([layer], input_dim=4, seed=0, backend="numpy")
    >>> W, b = layer.get_weights()
    >>> W.shape, b.shape
    ((4, 3), (3,))
    >>> model.predict([[0.0, 0.0, 0.0, 0.0]])      # relu(0 @ W + 0)
    array([[0., 0., 0.]], dtype=float32)
    """

    supports_masking = True     # see Layer.compute_mask

    # Views into the model's flat buffers, set by ``bind``; None until then.
    W: NDArray[np.floating[Any]]
    b: NDArray[np.floating[Any]]
    dW: NDArray[np.floating[Any]]
    db: NDArray[np.floating[Any]]

    def __init__(self, units: int, activation: A.ActivationName | Activation | None = "linear",
                 use_bias: bool = True, kernel_initializer: Any = None,
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.units = V.check_dim("units", units)
        self.act, self.param = activation_of("linear" if activation is None else activation)
        self.use_bias = V.check_bool("use_bias", use_bias)
        self.kernel_initializer = (None if kernel_initializer is None
                                   else _initializer("kernel_initializer", kernel_initializer))
        self.bias_initializer = (None if bias_initializer in (None, "zeros")
                                 else _initializer("bias_initializer", bias_initializer))
        self.kernel_regularizer = _regularizer("kernel_regularizer", kernel_regularizer)
        self.bias_regularizer = _regularizer("bias_regularizer", bias_regularizer)
        self.input_dim: int | None = None
        self.W = self.b = None      # type: ignore[assignment]  # views set by bind()
        self.dW = self.db = None    # type: ignore[assignment]

    @property
    def built(self) -> bool:
        """True once a model has given the layer its weights."""
        return self.W is not None

    @property
    def kernel(self) -> Optional[FloatArray]:
        """Keras' ``layer.kernel``: W (inputs, units), a read-only view (None before build)."""
        return None if self.W is None else self.weights[0]

    @property
    def bias(self) -> Optional[FloatArray]:
        """Keras' ``layer.bias``: b (units,), a read-only view (None without a bias or before
        build)."""
        return None if self.W is None or not self.use_bias else self.weights[1]

    @property
    def plain(self) -> bool:
        """Whether the MLP fast path can run it: a trainable, biased, unregularised layer."""
        return (self.use_bias and self.trainable and self.kernel_regularizer is None
                and self.bias_regularizer is None)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple) or not input_shape:
            raise ValueError(f"{self.name} takes one input of shape (..., features). "
                             f"Received: input shape {input_shape}")
        return (*input_shape[:-1], self.units)

    def weight_specs(self) -> Sequence[WeightSpec]:
        fan_in = self.input_shape[-1]
        kernel = self.kernel_initializer or _AutoKernel(self.act)
        specs = [WeightSpec("kernel", (fan_in, self.units), kernel, self.kernel_regularizer)]
        if self.use_bias:
            specs.append(WeightSpec("bias", (self.units,), self.bias_initializer or _zeros,
                                    self.bias_regularizer))
        return specs

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        self.input_dim = weights[0].shape[0]
        self.W, self.dW = weights[0], grads[0]
        if self.use_bias:
            self.b, self.db = weights[1], grads[1]
        else:                        # the kernels take a bias: a constant zero one
            self.b = np.zeros(self.units, weights[0].dtype)
            self.db = np.zeros(self.units, weights[0].dtype)

    # --------------------------------------------------------------- the MLP fast path's API
    def n_params(self, input_dim: int) -> int:
        """Number of parameters for ``input_dim`` inputs: ``input_dim * units + units``."""
        return input_dim * self.units + (self.units if self.use_bias else 0)

    def attach(self, input_dim: int, params: FloatArray, grads: FloatArray) -> None:
        """Bind W, b (and dW, db) to views of the 1-D slices given for this layer, W first
        (row-major (input_dim, units)), then b (the fast path's flat layout)."""
        split = input_dim * self.units
        shapes = [(input_dim, self.units), (self.units,)]
        self.bind([params[:split].reshape(shapes[0]), params[split:]],
                  [grads[:split].reshape(shapes[0]), grads[split:]])

    def reset_parameters(self, rng: np.random.Generator, act: int) -> None:
        """Initialise from ``rng``: the kernel initializer (default: He normal before the ReLU
        family, ``act`` being the activation fused after the layer, Glorot uniform otherwise),
        then the bias initializer (default zeros)."""
        for spec, w in zip(self.weight_specs(), self._weights):
            init = spec.initializer
            if isinstance(init, _AutoKernel):
                init = _AutoKernel(act)
            w[...] = init(w.shape, w.dtype, rng)

    # --------------------------------------------------------------- compute
    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        ctx.saved["x"] = x
        ctx.saved["z"] = forward_keeping_z(ctx, self, training, y, lambda act, out: (
            ctx.be.dense_forward(rows_of(x), self.W, self.b, act, self.param, rows_of(out))))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        # the model calls each layer once per pass and zeroes the gradients before it, so the
        # kernel's dW := x.T @ dz is the accumulation the protocol asks for
        act = A.LINEAR if ctx.fuse_act else self.act
        x, dx = ctx.saved["x"], ctx.dx_target(0)
        y, act = saved_for_derivative(ctx, self, act)
        g = rows_of(dy)
        ctx.be.dense_backward(rows_of(x), self.W, rows_of(y), g, act, self.param, g, self.dW,
                              self.db, None if dx is None else rows_of(dx))
        return dx

    # --------------------------------------------------------------- weights and config
    def checked_weights(self, weights: Sequence[ArrayLike]) -> list[FloatArray]:
        if not self.built:
            raise ValueError("this Dense layer has no weights yet: add it to a Sequential "
                             "model with an input_dim (or call model.build(input_dim)) first")
        return super().checked_weights(weights)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["units"] = self.units
        return kernel_layer_config(self, config)

    def _check_built(self) -> None:
        if not self.built:
            raise ValueError("this Dense layer has no weights yet: add it to a Sequential model "
                             "with an input_dim (or call model.build(input_dim)) first")

    def __repr__(self) -> str:
        return f"Dense({self.units}, activation={self.activation!r})"


class Flatten(Layer):
    """Flatten each sample: (n, d1, d2, ...) -> (n, d1 * d2 * ...). No copy (a view).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Flatten(), fnn.Dense(2)], input_shape=(3, 4),
    ...                        backend="numpy")
    >>> model.predict(np.zeros((5, 3, 4))).shape
    (5, 2)
    """

    shape_only = True

    def compute_output_shape(self, input_shape: Any) -> Any:
        if not isinstance(input_shape, tuple):
            raise ValueError(f"{self.name} takes one input. Received: {input_shape}")
        return (math.prod(input_shape),)

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        return x.reshape(x.shape[0], *self.output_shape)

    def backward(self, ctx: Slot, dy: FloatArray) -> FloatArray:
        return dy.reshape(dy.shape[0], *self.input_shape)


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (one entry may be -1: inferred). A view.

    Raises
    ------
    ValueError
        If ``target_shape`` is not a tuple of positive integers (and at most one -1), or
        does not hold the input's number of values.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.Reshape((4, -1)).compute_output_shape((2, 6))
    (4, 3)
    """

    shape_only = True

    def __init__(self, target_shape: Sequence[int], name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        if not isinstance(target_shape, (tuple, list)) or not target_shape or any(
                isinstance(d, bool) or not isinstance(d, (int, np.integer)) or (d < 1 and d != -1)
                for d in target_shape) or list(target_shape).count(-1) > 1:
            raise ValueError(f"target_shape must be a tuple of positive integers (one may be "
                             f"-1). Received: target_shape={V._describe(target_shape)}")
        self.target_shape = tuple(int(d) for d in target_shape)
        if any(d >= 2**31 for d in self.target_shape):
            raise ValueError(f"target_shape dimensions must be below 2**31. Received: "
                             f"target_shape={self.target_shape}")

    def compute_output_shape(self, input_shape: Any) -> Any:
        size = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        shape = tuple(size // known if d == -1 else d for d in self.target_shape)
        if math.prod(shape) != size:
            raise ValueError(f"{self.name}: cannot reshape samples of shape {input_shape} "
                             f"({size} values) to target_shape={self.target_shape}")
        return shape

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        return x.reshape(x.shape[0], *self.output_shape)

    def backward(self, ctx: Slot, dy: FloatArray) -> FloatArray:
        return dy.reshape(dy.shape[0], *self.input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}
