"""The activation registry: names users write, and the integer codes the kernels share.

The codes match ``FNN_ACT_*`` in ``src_c/fnn_gemm.h``. Each activation may take one float
parameter ``a``: the threshold of ``step``, the negative slope of ``leaky_relu`` (>= 0: the
backward pass tells the two sides apart by ``y > 0``) and elu's alpha (1 in a layer). In a
model, ``a`` must be 0 or a normal number of the model's dtype (``Layer.check_dtype``), else
it would become inf, or 0 in the compiled kernels only.

==========  =====================================  ==========================================
name        y = f(z)                               dL/dz from y and dy = dL/dy
==========  =====================================  ==========================================
linear      z                                      dy
step        1 if z >= a else 0 (a = 0.5)           dy (straight-through)
sigmoid     1 / (1 + exp(-z))                      dy * y * (1 - y)
tanh        tanh(z)                                dy * (1 - y^2)
relu        max(z, 0)                              dy where y > 0, else 0
leaky_relu  z if z > 0 else a * z (a = 0.01)       dy where y > 0, else a * dy
softmax     exp(z_j) / sum_k exp(z_k), per row     y * (dy - sum_k dy_k y_k), per row
gelu        z Phi(z) = z/2 erfc(-z / sqrt(2))      dy * (Phi(z) + z phi(z)), from z
gelu_tanh   z/2 (1 + tanh(u)),                     dy * (s + 2 z u' s (1 - s)), s = sigmoid(2u),
            u = sqrt(2/pi) (z + 0.044715 z^3)      u' = sqrt(2/pi) (1 + 0.134145 z^2), from z
elu         z if z > 0 else a (exp(z) - 1) (a = 1)  dy where y > 0, else dy * (y + a)
selu        S z if z > 0 else S A (exp(z) - 1)     dy * S where y > 0, else dy * (y + S A)
softplus    max(z, 0) + log1p(exp(-|z|))           dy * (1 - exp(-y))
silu        z sigmoid(z) (alias: swish)            dy * (s + z s (1 - s)), s = sigmoid(z), from z
==========  =====================================  ==========================================

``gelu`` is Keras' ``activation="gelu"`` (``approximate=False``) and PyTorch's
``F.gelu(approximate="none")``; ``gelu_tanh`` is its tanh approximation (Keras
``gelu(x, approximate=True)``, PyTorch ``approximate="tanh"``), a code of its own so that the
kernels switch on the code alone. Phi and phi are the standard normal's distribution and
density. Unlike the others, gelu's derivative is not a function of its output (gelu is not
monotonic): the layers keep the pre-activation z for the backward pass and hand it to the
kernels in place of y (``FROM_INPUT``).

``elu``, ``selu``, ``softplus`` and ``silu`` are Keras' (``keras.src.backend.numpy.nn``): selu's
constants are Keras' S = 1.0507009873554804934 and A = 1.6732632423543772848, softplus is
``logaddexp(z, 0)`` in its stable form, and ``swish`` is another name for ``silu`` (one code;
files and summaries say ``silu``). silu, not monotonic, is the third activation of
``FROM_INPUT``. In float32 the kernels compute these four in vectorised float arithmetic,
within 3 ulps of the exact functions (silu: 4), in float64 with libm (``src_c/fnn_act_keras.h``); both
backends give the same bits (the NumPy one repeats the float operations in float32).
"""

from __future__ import annotations

from typing import Any, Literal

from fastnn import _validation as V

#: The activation names accepted wherever an activation is chosen by name.
ActivationName = Literal["linear", "step", "sigmoid", "tanh", "relu", "leaky_relu", "softmax",
                         "gelu", "gelu_tanh", "elu", "selu", "softplus", "silu", "swish"]

LINEAR = 0
STEP = 1
SIGMOID = 2
TANH = 3
RELU = 4
LEAKY_RELU = 5
SOFTMAX = 6
GELU = 7
GELU_TANH = 8
# 9 is DERIV_GIVEN (below), not an activation
ELU = 10
SELU = 11
SOFTPLUS = 12
SILU = 13

CODES: dict[str, int] = {
    "linear": LINEAR,
    "step": STEP,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "softmax": SOFTMAX,
    "gelu": GELU,
    "gelu_tanh": GELU_TANH,
    "elu": ELU,
    "selu": SELU,
    "softplus": SOFTPLUS,
    "silu": SILU,
}
NAMES: dict[int, str] = {code: name for name, code in CODES.items()}
# Other names of the same activations (Keras'): accepted as input, never written out.
ALIASES: dict[str, str] = {"swish": "silu"}
CODES.update({alias: CODES[name] for alias, name in ALIASES.items()})

# Keras' selu constants (keras.src.backend.numpy.nn.selu)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

# The parameter each activation uses when none is given (ignored by the others).
DEFAULT_PARAM: dict[str, float] = {"step": 0.5, "leaky_relu": 0.01, "elu": 1.0}

# He initialisation suits the ReLU family; Glorot the saturating and linear ones.
RELU_FAMILY = frozenset({RELU, LEAKY_RELU})

# The activations whose backward pass takes the pre-activation z instead of the output y (the
# kernels' ``y`` argument then holds z).
FROM_INPUT = frozenset({GELU, GELU_TANH, SILU})

# Not an activation a layer can have: the code a backward pass is given when its ``y`` argument
# holds the derivative act'(z) itself (dz = dy * y). A gelu layer's training forward computes
# gelu (or silu) and its derivative in one pass (``activation_forward_deriv``) and keeps the
# derivative.
DERIV_GIVEN = 9


def activation_code(name: str) -> int:
    """Return the kernel code of the activation called ``name``.

    Parameters
    ----------
    name : {"linear", "step", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "gelu", \
"gelu_tanh", "elu", "selu", "softplus", "silu", "swish"}
        The activation's name (``swish`` is ``silu``).

    Returns
    -------
    int
        Its code, 0..8 or 10..13, as the kernels read it.

    Raises
    ------
    ValueError
        If ``name`` is not one of the names above (or not a string).

    Examples
    --------
    >>> from fastnn.activations import activation_code, NAMES
    >>> activation_code("relu")
    4
    >>> NAMES[4]
    'relu'
    """
    if not isinstance(name, str) or name not in CODES:
        raise ValueError(
            f"activation must be one of {sorted(CODES)}. Received: activation={V._describe(name)}")
    return CODES[name]


# ------------------------------------------------------------------ Keras' functional forms
# keras.activations.relu(x) and its siblings, on NumPy arrays: the compiled kernels the layers
# use (the NumPy twins without the compiled backend), over the last axis for softmax.

def _apply(x: Any, code: int, param: float = 0.0) -> Any:
    import numpy as np
    from fastnn.backends import fast_available, get_backend
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub" or arr.dtype == np.float16:
        raise TypeError(f"x must hold real numbers. Received: dtype {arr.dtype}")
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    if code in PARAM_NAMES_BY_CODE:
        V.check_in_dtype(PARAM_NAMES_BY_CODE[code], param, dtype, zero_ok=True)
    z = np.array(arr, dtype=dtype, order="C")      # a copy: 0-d stays 0-d
    out = np.empty_like(z)
    if z.size:
        shape = (-1, z.shape[-1]) if z.ndim else (1, 1)
        be = get_backend("fast" if fast_available() else "numpy")
        be.activation_forward(z.reshape(shape), code, float(param), out.reshape(shape))
    return out


PARAM_NAMES_BY_CODE = {STEP: "threshold", LEAKY_RELU: "negative_slope", ELU: "alpha"}


def linear(x: Any) -> Any:
    """``x`` itself, as an array (Keras' ``linear``)."""
    return _apply(x, LINEAR)


def relu(x: Any) -> Any:
    """``max(x, 0)`` element-wise (Keras' ``relu``, without its extra arguments).

    Examples
    --------
    >>> from fastnn import activations
    >>> activations.relu([-1.0, 2.0])
    array([0., 2.])
    """
    return _apply(x, RELU)


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))`` element-wise."""
    return _apply(x, SIGMOID)


def tanh(x: Any) -> Any:
    """``tanh(x)`` element-wise."""
    return _apply(x, TANH)


def leaky_relu(x: Any, negative_slope: float = 0.2) -> Any:
    """``x`` where positive, else ``negative_slope * x`` (Keras' default slope 0.2; fastnn's
    ``activation="leaky_relu"`` uses 0.01, PyTorch's default)."""
    return _apply(x, LEAKY_RELU, negative_slope)


def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x) / sum(exp(x))`` along ``axis`` (the last by default), stable for large values.

    Examples
    --------
    >>> from fastnn import activations
    >>> activations.softmax([[0.0, 0.0]])
    array([[0.5, 0.5]])
    """
    import numpy as np
    arr = np.asarray(x)
    axis = V.check_int("axis", axis)
    if arr.ndim == 0 or not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"axis must name an axis of x (ndim {arr.ndim}). Received: axis={axis}")
    moved = np.moveaxis(arr, axis, -1)
    return np.moveaxis(_apply(moved, SOFTMAX), -1, axis)


def gelu(x: Any, approximate: bool = False) -> Any:
    """``x Phi(x)`` (exact, Keras' default), or its tanh approximation."""
    return _apply(x, GELU_TANH if V.check_bool("approximate", approximate) else GELU)


def elu(x: Any, alpha: float = 1.0) -> Any:
    """``x`` where positive, else ``alpha * (exp(x) - 1)`` (Keras' ``elu``).

    Examples
    --------
    >>> from fastnn import activations
    >>> activations.elu([-1.0, 2.0])
    array([-0.63212056,  2.        ])
    """
    return _apply(x, ELU, alpha)


def selu(x: Any) -> Any:
    """``scale * elu(x, alpha)``, Keras' ``alpha = 1.67326324...`` and ``scale = 1.05070098...``."""
    return _apply(x, SELU)


def softplus(x: Any) -> Any:
    """``log(exp(x) + 1)``, as ``max(x, 0) + log1p(exp(-|x|))`` (no overflow)."""
    return _apply(x, SOFTPLUS)


def silu(x: Any) -> Any:
    """``x * sigmoid(x)`` (Keras' ``silu``, also called ``swish``)."""
    return _apply(x, SILU)


swish = silu
