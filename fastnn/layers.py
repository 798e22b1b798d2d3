"""Layers: a ``Dense`` layer of neurons, and the activation layers.

A layer holds parameters and says what to compute; the backend kernels do the arithmetic. A
``Dense`` layer of ``units`` neurons computes ``y = act(x @ W + b)``: each column of ``W`` holds the
input weights of one neuron and ``b`` its bias. ``Sequential`` lays all parameters out in one flat
buffer and gives each layer views into it.
"""

import math

import numpy as np

from fastnn import activations as A
from fastnn import _validation as V


class Layer:
    """Base class. ``act`` and ``param`` say which activation the layer applies."""

    act = A.LINEAR
    param = 0.0

    def get_config(self):
        raise NotImplementedError

    @property
    def activation(self):
        return A.NAMES[self.act]


class Activation(Layer):
    """Apply an activation function on its own: ``y = act(x)``; no parameters."""

    def __init__(self, activation, param=None):
        self.act = A.activation_code(activation)
        default = A.DEFAULT_PARAM.get(activation, 0.0)
        self.param = default if param is None else param

    def get_config(self):
        config = {"class": type(self).__name__}
        if type(self) is Activation:
            config["activation"] = self.activation
        if self.act == A.STEP:
            config["threshold"] = self.param
        elif self.act == A.LEAKY_RELU:
            config["alpha"] = self.param
        return config

    def __repr__(self):
        extra = f"{self.param!r}" if self.act in (A.STEP, A.LEAKY_RELU) else ""
        return f"{type(self).__name__}({extra})"


class ReLU(Activation):
    """y = max(x, 0)"""

    def __init__(self):
        super().__init__("relu")


class Sigmoid(Activation):
    """y = 1 / (1 + exp(-x))"""

    def __init__(self):
        super().__init__("sigmoid")


class Tanh(Activation):
    """y = tanh(x)"""

    def __init__(self):
        super().__init__("tanh")


class Softmax(Activation):
    """y_j = exp(x_j) / sum_k exp(x_k), row by row."""

    def __init__(self):
        super().__init__("softmax")


class Step(Activation):
    """y = 1 if x >= threshold else 0 (Heaviside); the gradient passes straight through.

    With MSE, training a single Step neuron is Rosenblatt's perceptron rule.
    """

    def __init__(self, threshold=0.5):
        super().__init__("step", V.check_float("threshold", threshold))


class LeakyReLU(Activation):
    """y = x if x > 0 else alpha * x"""

    def __init__(self, alpha=0.01):
        super().__init__("leaky_relu", V.check_float("alpha", alpha, low=0.0))


ACTIVATION_LAYERS = {cls.__name__: cls for cls in (ReLU, Sigmoid, Tanh, Softmax, Step, LeakyReLU)}


class Dense(Layer):
    """A fully connected layer of ``units`` neurons: ``y = act(x @ W + b)``.

    Parameters
    ----------
    units : int
        Number of neurons (outputs), > 0.
    activation : str or activation layer, default "linear"
        One of ``linear, step, sigmoid, tanh, relu, leaky_relu, softmax``, or an activation
        layer such as ``LeakyReLU(alpha=0.2)`` to set its parameter.

    Shapes: x (n, inputs), W (inputs, units), b (units,), y (n, units). Weights are initialised
    by ``Sequential``: He normal (std sqrt(2 / inputs)) before the ReLU family, Glorot uniform
    (limit sqrt(6 / (inputs + units))) otherwise; biases start at zero.
    """

    def __init__(self, units, activation="linear"):
        self.units = V.check_positive_int("units", units)
        if isinstance(activation, Activation):
            self.act, self.param = activation.act, activation.param
        else:
            self.act = A.activation_code(activation)
            self.param = A.DEFAULT_PARAM.get(activation, 0.0)
        self.input_dim = None
        self.W = self.b = None      # views into the model's flat parameter buffer
        self.dW = self.db = None    # views into the model's flat gradient buffer

    @property
    def built(self):
        return self.W is not None

    def n_params(self, input_dim):
        return input_dim * self.units + self.units

    def attach(self, input_dim, params, grads):
        """Bind W, b (and dW, db) to views of the flat buffers given for this layer."""
        self.input_dim = input_dim
        split = input_dim * self.units
        self.W = params[:split].reshape(input_dim, self.units)
        self.b = params[split:]
        self.dW = grads[:split].reshape(input_dim, self.units)
        self.db = grads[split:]

    def reset_parameters(self, rng, act):
        """He normal before the ReLU family, Glorot uniform otherwise; zero biases."""
        fan_in, fan_out = self.W.shape
        if act in A.RELU_FAMILY:
            self.W[...] = rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)
        else:
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            self.W[...] = rng.uniform(-limit, limit, (fan_in, fan_out))
        self.b[...] = 0

    def get_weights(self):
        """``[W, b]`` as copies: W of shape (inputs, units), b of shape (units,)."""
        self._check_built()
        return [self.W.copy(), self.b.copy()]

    def set_weights(self, weights):
        """Set ``[W, b]``; shapes must match, values must be finite."""
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
        self.W[...] = W
        self.b[...] = b

    def get_config(self):
        config = {"class": "Dense", "units": self.units, "activation": self.activation}
        if self.act == A.STEP:
            config["threshold"] = self.param
        elif self.act == A.LEAKY_RELU:
            config["alpha"] = self.param
        return config

    def _check_built(self):
        if not self.built:
            raise ValueError("this Dense layer has no weights yet: add it to a Sequential model "
                             "with an input_dim (or call model.build(input_dim)) first")

    def __repr__(self):
        return f"Dense({self.units}, activation={self.activation!r})"


def _short(value):
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def layer_from_config(config):
    """Rebuild a layer from ``get_config()`` output (used by the model file loader)."""
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
