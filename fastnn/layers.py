"""Layers: a ``Dense`` layer of neurons, and the activation layers.

A layer holds parameters and says what to compute; the backend kernels do the arithmetic. A
``Dense`` layer of ``units`` neurons computes ``y = act(x @ W + b)``: each column of ``W`` holds the
input weights of one neuron and ``b`` its bias. ``Sequential`` lays all parameters out in one flat
buffer and gives each layer views into it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastnn import activations as A
from fastnn import _validation as V

# The activations that take a parameter, and its name in configs and messages.
_PARAM_NAMES = {A.STEP: "threshold", A.LEAKY_RELU: "alpha"}


def _check_param(name: str, value: Any, low: float | None = None) -> float:
    """A finite activation parameter that float64, the widest dtype, holds as 0 or a normal
    number (``Layer.check_dtype`` checks the model's dtype)."""
    return V.check_in_dtype(name, V.check_float(name, value, low=low), np.float64, zero_ok=True)


class Layer:
    """Base class of all layers.

    Attributes
    ----------
    act : int
        Code of the activation the layer applies (see ``fastnn.activations``).
    param : float
        The activation's parameter (threshold of ``step``, slope of ``leaky_relu``), else 0.0.
    """

    act: int = A.LINEAR
    param: float = 0.0

    def check_dtype(self, dtype: DTypeLike) -> None:
        """Raise ValueError if the activation's code is unknown, or its parameter is not 0 or a
        normal number of ``dtype`` (``finfo.tiny <= |param| <= finfo.max``).

        In a model of that dtype a larger one becomes inf (``LeakyReLU(1e39)`` in float32 turns
        predictions into NaN), a smaller one 0 or a subnormal, which the compiled kernels flush
        to 0 while the NumPy backend keeps it. ``Sequential`` calls this for each layer when it
        is built. Nothing is changed.

        Examples
        --------
        >>> import fastnn as fnn
        >>> fnn.LeakyReLU(1e39).check_dtype("float32")
        Traceback (most recent call last):
        ...
        ValueError: LeakyReLU(1e+39): alpha must be 0 or a float32 normal number, ...
        >>> fnn.LeakyReLU(1e39).check_dtype("float64")
        """
        if type(self.act) is not int or self.act not in A.NAMES:
            # an unknown code would reach the kernels (the compiled ones do not check it)
            raise ValueError(f"{type(self).__name__}.act must be one of the activation codes "
                             f"{sorted(A.NAMES)} of fastnn.activations. Received: act="
                             f"{self.act!r}")
        name = _PARAM_NAMES.get(self.act)
        if name is not None:
            V.check_in_dtype(name, self.param, V.check_dtype(dtype), zero_ok=True,
                             owner=repr(self))

    def get_config(self) -> dict[str, Any]:
        """The JSON-serialisable description that ``layer_from_config`` rebuilds the layer from."""
        raise NotImplementedError

    @property
    def activation(self) -> str:
        """The name of the activation the layer applies, e.g. ``"relu"``."""
        return A.NAMES[self.act]


class Activation(Layer):
    """Apply an activation function on its own: ``y = act(x)``.

    Element-wise (row by row for softmax), without weights: x and y are both (n, width). Placed
    right after a linear ``Dense`` layer, the model fuses it into that layer's kernel. The
    formulas and gradients of every activation are listed in ``fastnn.activations``.

    Parameters
    ----------
    activation : {"linear", "step", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"}
        The activation's name.
    param : float, optional
        Its parameter: the threshold of ``step`` (default 0.5) or the negative slope of
        ``leaky_relu`` (default 0.01), under the rules of ``Step`` and ``LeakyReLU``; the
        other activations take none.

    Raises
    ------
    ValueError
        If ``activation`` is not one of the names above, or ``param`` is out of its range or
        given to an activation that takes none.
    TypeError
        If ``param`` is not a real number.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.Activation("tanh").activation
    'tanh'
    >>> fnn.Activation("leaky_relu").param
    0.01
    """

    def __init__(self, activation: A.ActivationName, param: float | None = None) -> None:
        self.act = A.activation_code(activation)
        default = A.DEFAULT_PARAM.get(activation, 0.0)
        if param is not None:          # as Step(threshold) and LeakyReLU(alpha) check theirs
            if self.act == A.STEP:
                param = _check_param("param", param)
            elif self.act == A.LEAKY_RELU:
                param = _check_param("param", param, low=0.0)
            else:
                raise ValueError(f"activation {activation!r} takes no parameter. "
                                 f"Received: param={param!r}")
        self.param = default if param is None else param

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"class": type(self).__name__}
        if type(self) is Activation:
            config["activation"] = self.activation
        if self.act == A.STEP:
            config["threshold"] = self.param
        elif self.act == A.LEAKY_RELU:
            config["alpha"] = self.param
        return config

    def __repr__(self) -> str:
        args = [repr(self.activation)] if type(self) is Activation else []
        if self.act in (A.STEP, A.LEAKY_RELU):
            args.append(repr(self.param))
        return f"{type(self).__name__}({', '.join(args)})"


class ReLU(Activation):
    """Rectified linear unit: ``y = max(x, 0)``; ``dL/dx = dL/dy`` where ``y > 0``, else 0.

    Examples
    --------
    After a linear ``Dense`` layer (the model fuses the two into one kernel call):

    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Dense(2), fnn.ReLU()], input_dim=2, backend="numpy")
    >>> model.layers[0].set_weights([np.eye(2), np.zeros(2)])
    >>> model.predict([[1.0, -2.0]])
    array([[1., 0.]], dtype=float32)
    """

    def __init__(self) -> None:
        super().__init__("relu")


class Sigmoid(Activation):
    """Logistic sigmoid: ``y = 1 / (1 + exp(-x))``; ``dL/dx = dL/dy * y * (1 - y)``.

    Examples
    --------
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Dense(1), fnn.Sigmoid()], input_dim=2, backend="numpy")
    >>> model.layers[0].set_weights([[[0.0], [0.0]], [0.0]])
    >>> model.predict([[3.0, 4.0]])                  # sigmoid(0)
    array([[0.5]], dtype=float32)
    """

    def __init__(self) -> None:
        super().__init__("sigmoid")


class Tanh(Activation):
    """Hyperbolic tangent: ``y = tanh(x)``; ``dL/dx = dL/dy * (1 - y^2)``.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.Tanh().activation
    'tanh'
    """

    def __init__(self) -> None:
        super().__init__("tanh")


class Softmax(Activation):
    """Softmax over each row: ``y_j = exp(x_j) / sum_k exp(x_k)``.

    Gradient, per row: ``dL/dx = y * (dL/dy - sum_k dL/dy_k * y_k)``. After a final softmax,
    ``cross_entropy`` skips this and uses the fused ``(y - target) / n``.

    Examples
    --------
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Dense(3), fnn.Softmax()], input_dim=4, seed=0,
    ...                        backend="numpy")
    >>> p = model.predict([[1.0, 2.0, 3.0, 4.0]])
    >>> p.shape, round(float(p.sum()), 5)            # each row sums to 1
    ((1, 3), 1.0)
    """

    def __init__(self) -> None:
        super().__init__("softmax")


class Step(Activation):
    """Heaviside step: ``y = 1 if x >= threshold else 0``; the gradient passes straight through.

    ``dL/dx = dL/dy`` (straight-through estimator). With MSE, training a single Step neuron is
    Rosenblatt's perceptron rule.

    Parameters
    ----------
    threshold : float, default 0.5
        Where the output jumps from 0 to 1; any finite number that the model's dtype holds as
        0 or a normal number (float32: ``1.18e-38 <= |threshold| <= 3.4e38``).

    Raises
    ------
    TypeError
        If ``threshold`` is not a real number.
    ValueError
        If ``threshold`` is NaN or infinite, or nonzero and below float64's smallest normal
        number; in a model whose dtype does not hold it (``check_dtype``).

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.Step(threshold=0.0)
    Step(0.0)
    """

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__("step", _check_param("threshold", threshold))


class LeakyReLU(Activation):
    """Leaky ReLU: ``y = x if x > 0 else alpha * x``.

    ``dL/dx = dL/dy`` where ``y > 0``, else ``alpha * dL/dy``.

    Parameters
    ----------
    alpha : float, default 0.01
        Slope for negative inputs, finite and >= 0 (above 1 is allowed), 0 or a normal number
        of the model's dtype (float32: ``1.18e-38 <= alpha <= 3.4e38``). A negative slope is
        refused, unlike PyTorch's: the backward pass tells the two sides apart by ``y > 0``,
        which needs ``alpha >= 0``.

    Raises
    ------
    TypeError
        If ``alpha`` is not a real number.
    ValueError
        If ``alpha`` is negative, NaN or infinite, or nonzero and below float64's smallest
        normal number; in a model whose dtype does not hold it (``check_dtype``).

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.LeakyReLU(alpha=0.2)
    LeakyReLU(0.2)
    >>> fnn.Dense(8, activation=fnn.LeakyReLU(0.2)).param
    0.2
    """

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__("leaky_relu", _check_param("alpha", alpha, low=0.0))


ACTIVATION_LAYERS: dict[str, Callable[..., Activation]] = {
    cls.__name__: cls for cls in (ReLU, Sigmoid, Tanh, Softmax, Step, LeakyReLU)}


class Dense(Layer):
    """A fully connected layer of ``units`` neurons: ``y = act(x @ W + b)``.

    Backward, with ``dz = act'(y) * dL/dy``: ``dL/dW = x.T @ dz``, ``dL/db = sum(dz, axis=0)``,
    ``dL/dx = dz @ W.T``.

    Parameters
    ----------
    units : int
        Number of neurons (outputs), > 0.
    activation : str or Activation, default "linear"
        One of ``linear, step, sigmoid, tanh, relu, leaky_relu, softmax``, or an activation
        layer such as ``LeakyReLU(alpha=0.2)`` to set its parameter.

    Shapes: x (n, inputs), W (inputs, units), b (units,), y (n, units). Weights are initialised
    by ``Sequential``: He normal (std sqrt(2 / inputs)) before the ReLU family, Glorot uniform
    (limit sqrt(6 / (inputs + units))) otherwise; biases start at zero.

    Raises
    ------
    TypeError
        If ``units`` is not an integer.
    ValueError
        If ``units`` < 1 or ``activation`` is not a known name.

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

    # Views into the model's flat buffers, set by ``attach``; None until then.
    W: NDArray[np.floating[Any]]
    b: NDArray[np.floating[Any]]
    dW: NDArray[np.floating[Any]]
    db: NDArray[np.floating[Any]]

    def __init__(self, units: int, activation: A.ActivationName | Activation = "linear") -> None:
        self.units = V.check_positive_int("units", units)
        if isinstance(activation, Activation):
            self.act, self.param = activation.act, activation.param
        else:
            self.act = A.activation_code(activation)
            self.param = A.DEFAULT_PARAM.get(activation, 0.0)
        self.input_dim: int | None = None
        self.W = self.b = None      # type: ignore[assignment]  # views set by attach()
        self.dW = self.db = None    # type: ignore[assignment]

    @property
    def built(self) -> bool:
        """True once a model has given the layer its weights."""
        return self.W is not None

    def n_params(self, input_dim: int) -> int:
        """Number of parameters for ``input_dim`` inputs: ``input_dim * units + units``."""
        return input_dim * self.units + self.units

    def attach(self, input_dim: int, params: NDArray[np.floating[Any]],
               grads: NDArray[np.floating[Any]]) -> None:
        """Bind W, b (and dW, db) to views of the flat buffers given for this layer.

        ``params`` and ``grads`` are 1-D slices of length ``n_params(input_dim)``: W first
        (row-major, (input_dim, units)), then b.
        """
        self.input_dim = input_dim
        split = input_dim * self.units
        self.W = params[:split].reshape(input_dim, self.units)
        self.b = params[split:]
        self.dW = grads[:split].reshape(input_dim, self.units)
        self.db = grads[split:]

    def reset_parameters(self, rng: np.random.Generator, act: int) -> None:
        """He normal before the ReLU family, Glorot uniform otherwise; zero biases.

        He: ``W ~ N(0, 2 / fan_in)``; Glorot: ``W ~ U(-l, l)`` with
        ``l = sqrt(6 / (fan_in + fan_out))``. ``act`` is the code of the activation applied to
        the layer's output (after fusion with a following activation layer).
        """
        fan_in, fan_out = self.W.shape
        if act in A.RELU_FAMILY:
            self.W[...] = rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)
        else:
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            self.W[...] = rng.uniform(-limit, limit, (fan_in, fan_out))
        self.b[...] = 0

    def get_weights(self) -> list[NDArray[np.floating[Any]]]:
        """Return ``[W, b]`` as copies.

        Returns
        -------
        list of ndarray
            W of shape (inputs, units) and b of shape (units,), in the model's dtype.

        Raises
        ------
        ValueError
            If the layer is not part of a built model yet.
        """
        self._check_built()
        return [self.W.copy(), self.b.copy()]

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        """Set ``[W, b]`` in place (converted to the model's dtype).

        Parameters
        ----------
        weights : list or tuple of two array_like
            W of shape (inputs, units) and b of shape (units,); real and finite.

        Raises
        ------
        ValueError
            If the layer is not built, ``weights`` is not a pair, a shape differs or a value is
            NaN or inf.
        TypeError
            If W or b does not hold real numbers.
        """
        W, b = self.checked_weights(weights)
        self.W[...] = W
        self.b[...] = b

    def checked_weights(self, weights: Sequence[ArrayLike]) -> tuple[NDArray[Any], NDArray[Any]]:
        """``[W, b]`` validated and converted as ``set_weights`` takes them, without setting
        them (a model checks every layer's before it changes any)."""
        self._check_built()
        if not isinstance(weights, (list, tuple)) or len(weights) != 2:
            raise ValueError(f"weights must be a list [W, b]. Received: {_short(weights)}")
        W = V.as_real_array("W", weights[0])
        b = V.as_real_array("b", weights[1])
        if W.shape != self.W.shape:
            raise ValueError(f"W must have shape {self.W.shape}. Received: W with shape {W.shape}")
        if b.shape != self.b.shape:
            raise ValueError(f"b must have shape {self.b.shape}. Received: b with shape {b.shape}")
        W = V.as_float(W, self.W.dtype)
        b = V.as_float(b, self.b.dtype)
        V.check_finite("W", W)
        V.check_finite("b", b)
        return W, b

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"class": "Dense", "units": self.units,
                                  "activation": self.activation}
        if self.act == A.STEP:
            config["threshold"] = self.param
        elif self.act == A.LEAKY_RELU:
            config["alpha"] = self.param
        return config

    def _check_built(self) -> None:
        if not self.built:
            raise ValueError("this Dense layer has no weights yet: add it to a Sequential model "
                             "with an input_dim (or call model.build(input_dim)) first")

    def __repr__(self) -> str:
        return f"Dense({self.units}, activation={self.activation!r})"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


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
    config = dict(config)
    cls = config.pop("class", None)
    param = {k: config.pop(k) for k in ("threshold", "alpha") if k in config}
    if cls == "Dense":
        act = config.get("activation", "linear")
        if act == "step":
            config["activation"] = Step(**param)
        elif act == "leaky_relu":
            config["activation"] = LeakyReLU(**param)
        return Dense(**config)
    if cls in ACTIVATION_LAYERS:
        return ACTIVATION_LAYERS[cls](**param)
    if cls == "Activation":
        return Activation(config["activation"], param.get("threshold", param.get("alpha")))
    raise ValueError(f"unknown layer class in model config: {cls!r}")
