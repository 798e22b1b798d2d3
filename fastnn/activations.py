"""The activation registry: names users write, and the integer codes the kernels share.

The codes match ``FNN_ACT_*`` in ``src_c/fnn_gemm.h``. Each activation may take one float
parameter: the threshold of ``step`` and the negative slope of ``leaky_relu``.
"""

LINEAR = 0
STEP = 1
SIGMOID = 2
TANH = 3
RELU = 4
LEAKY_RELU = 5
SOFTMAX = 6

CODES = {
    "linear": LINEAR,
    "step": STEP,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "softmax": SOFTMAX,
}
NAMES = {code: name for name, code in CODES.items()}

# The parameter each activation uses when none is given (ignored by the others).
DEFAULT_PARAM = {"step": 0.5, "leaky_relu": 0.01}

# He initialisation suits the ReLU family; Glorot the saturating and linear ones.
RELU_FAMILY = frozenset({RELU, LEAKY_RELU})


def activation_code(name):
    """Return the kernel code of the activation called ``name``."""
    if not isinstance(name, str) or name not in CODES:
        raise ValueError(
            f"activation must be one of {sorted(CODES)}. Received: activation={name!r}")
    return CODES[name]
