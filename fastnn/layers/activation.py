"""The activation layers: ``y = act(x)`` element-wise (softmax: over the last axis).

Placed right after a linear ``Dense`` layer, an activation layer is fused into that layer's
kernel by the MLP fast path (``fastnn.models.fastpath``; not gelu or silu, whose backward needs
the pre-activation, which that path does not keep). The formulas and gradients of every
activation are listed in ``fastnn.activations``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from fastnn import _validation as V
from fastnn import activations as A
from fastnn._validation import check_bool
from fastnn.layers.base import FloatArray, Layer, Slot, check_param, rows_of


class Activation(Layer):
    """Apply an activation function on its own: ``y = act(x)``.

    Element-wise (row by row for softmax), without weights: x and y are both (n, width). Placed
    right after a linear ``Dense`` layer, the model fuses it into that layer's kernel. The
    formulas and gradients of every activation are listed in ``fastnn.activations``.

    Parameters
    ----------
    activation : {"linear", "step", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "gelu", \
"gelu_tanh", "elu", "selu", "softplus", "silu", "swish"}
        The activation's name (``gelu_tanh``: gelu's tanh approximation; ``swish`` is
        ``silu``).
    param : float, optional
        Its parameter: the threshold of ``step`` (default 0.5), the negative slope of
        ``leaky_relu`` (default 0.01) or ``elu``'s alpha (default 1), under the rules of
        ``Step``, ``LeakyReLU`` and ``ELU``; the other activations take none.

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

    supports_masking = True     # see Layer.compute_mask

    def __init__(self, activation: A.ActivationName, param: float | None = None,
                 name: Optional[str] = None) -> None:
        super().__init__(name=name)
        self.act = A.activation_code(activation)
        default = A.DEFAULT_PARAM.get(activation, 0.0)
        if param is not None:          # as Step(threshold) and LeakyReLU(alpha) check theirs
            if self.act == A.STEP:
                param = check_param("param", param)
            elif self.act in (A.LEAKY_RELU, A.ELU):
                param = check_param("param", param, low=0.0)
            else:
                raise ValueError(f"activation {activation!r} takes no parameter. "
                                 f"Received: param={V._describe(param)}")
        self.param = default if param is None else param

    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        if self.act in A.FROM_INPUT:         # gelu's derivative is taken from its input
            ctx.saved["x"] = x
        ctx.be.activation_forward(rows_of(x), self.act, self.param, rows_of(y))
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        dx = ctx.dx_target(0)
        if dx is not None:
            act = A.LINEAR if ctx.fuse_act else self.act
            y = (ctx.saved["x"] if act in A.FROM_INPUT
                 else ctx.rows_buffer("y", self.output_shape))
            ctx.be.activation_backward(rows_of(y), rows_of(dy), act, self.param, rows_of(dx))
        return dx

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if type(self) is Activation:
            config["activation"] = self.activation
        if self.act == A.STEP:
            config["threshold"] = self.param
        elif self.act == A.LEAKY_RELU or (self.act == A.ELU and (type(self) is ELU
                                                                 or self.param != 1.0)):
            config["alpha"] = self.param
        return config

    def __repr__(self) -> str:
        args = [repr(self.activation)] if type(self) is Activation else []
        if self.act in (A.STEP, A.LEAKY_RELU) or (self.act == A.ELU and (type(self) is ELU
                                                                     or self.param != 1.0)):
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

    def __init__(self, name: Optional[str] = None) -> None:
        super().__init__("relu", name=name)


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

    def __init__(self, name: Optional[str] = None) -> None:
        super().__init__("sigmoid", name=name)


class Tanh(Activation):
    """Hyperbolic tangent: ``y = tanh(x)``; ``dL/dx = dL/dy * (1 - y^2)``.

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.Tanh().activation
    'tanh'
    """

    def __init__(self, name: Optional[str] = None) -> None:
        super().__init__("tanh", name=name)


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

    def __init__(self, name: Optional[str] = None) -> None:
        super().__init__("softmax", name=name)


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

    def __init__(self, threshold: float = 0.5, name: Optional[str] = None) -> None:
        super().__init__("step", check_param("threshold", threshold), name=name)


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

    def __init__(self, alpha: float = 0.01, name: Optional[str] = None) -> None:
        super().__init__("leaky_relu", check_param("alpha", alpha, low=0.0), name=name)


class ELU(Activation):
    """Exponential linear unit (Keras' ``keras.layers.ELU``): ``y = x if x > 0 else
    alpha * (exp(x) - 1)``.

    ``dL/dx = dL/dy`` where ``y > 0``, else ``(y + alpha) * dL/dy`` (``alpha * exp(x)``, from
    the output). The activation name is ``"elu"``; PyTorch's ``nn.ELU(alpha)``.

    Parameters
    ----------
    alpha : float, default 1.0
        The value approached as ``x -> -inf`` is ``-alpha``: finite and >= 0, 0 or a normal
        number of the model's dtype. A negative alpha is refused (Keras takes it): the
        backward pass tells the two sides apart by ``y > 0``, which needs ``alpha >= 0``.

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
    >>> fnn.ELU(alpha=0.5)
    ELU(0.5)
    >>> model = fnn.Sequential([fnn.ELU(0.5)], input_dim=2, backend="numpy", dtype="float64")
    >>> model.predict([[-1.0, 2.0]]).round(6)
    array([[-0.31606,  2.     ]])
    """

    def __init__(self, alpha: float = 1.0, name: Optional[str] = None) -> None:
        super().__init__("elu", check_param("alpha", alpha, low=0.0), name=name)


class GELU(Activation):
    """Gaussian error linear unit: ``y = x * Phi(x)``, ``Phi`` the standard normal's
    distribution function (``x / 2 * erfc(-x / sqrt(2))``); with ``approximate=True`` its tanh
    approximation ``x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))``.

    ``dL/dx = dL/dy * (Phi(x) + x * phi(x))`` (``phi`` the normal density), taken from the
    input ``x``, which the layer keeps for the backward pass. The same functions as Keras'
    ``gelu(x, approximate)`` and PyTorch's ``nn.GELU(approximate="none" | "tanh")``; the
    activation names are ``"gelu"`` and ``"gelu_tanh"``.

    Parameters
    ----------
    approximate : bool, default False
        Use the tanh approximation.

    Raises
    ------
    TypeError
        If ``approximate`` is not a bool.

    Examples
    --------
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.GELU()], input_dim=3, backend="numpy", dtype="float64")
    >>> model.predict([[-1.0, 0.0, 1.0]]).round(6)
    array([[-0.158655,  0.      ,  0.841345]])
    >>> fnn.GELU(approximate=True).activation
    'gelu_tanh'
    """

    def __init__(self, approximate: bool = False, name: Optional[str] = None) -> None:
        super().__init__("gelu_tanh" if check_bool("approximate", approximate) else "gelu",
                         name=name)

    @property
    def approximate(self) -> bool:
        """Whether the layer applies the tanh approximation."""
        return self.act == A.GELU_TANH

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.approximate:
            config["approximate"] = True
        return config

    def __repr__(self) -> str:
        return "GELU(approximate=True)" if self.approximate else "GELU()"


ACTIVATION_LAYERS: dict[str, Callable[..., Activation]] = {
    cls.__name__: cls for cls in (ReLU, Sigmoid, Tanh, Softmax, Step, LeakyReLU, ELU, GELU)}
