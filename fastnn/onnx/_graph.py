"""The graph builder the exporter writes into: unique tensor names, constants, nodes.

Every tensor stays batch-first and channels-last, as in fastnn; the ops that want channels
first (Conv, MaxPool, AveragePool, BatchNormalization) are wrapped in a Transpose pair, which
onnxruntime's optimizer folds away between consecutive convolutions.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from fastnn import activations as A


class GraphBuilder:
    """Collects the nodes and initializers of one ONNX graph."""

    def __init__(self, helper: Any, numpy_helper: Any, dtype: np.dtype[Any], opset: int) -> None:
        self.helper, self.numpy_helper = helper, numpy_helper
        self.dtype, self.opset = dtype, opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()
        # a shared layer's (or model's) initializers, recorded at its first call and reused
        # by its later ones (see ``call_of``): one initializer read by every call's nodes
        self._calls: dict[int, list[tuple[str, Any]]] = {}
        self._record: Optional[list[tuple[str, Any]]] = None
        self._replay: Optional[Iterator[tuple[str, Any]]] = None

    @contextlib.contextmanager
    def call_of(self, key: int) -> Iterator[None]:
        """Around the nodes of one call of the layer or model ``key`` (its id): the first
        call records the initializers it makes; a later call makes the same ones in the same
        order (the emitters are deterministic) and reads the recorded ones instead."""
        saved = self._record, self._replay
        if key in self._calls:
            self._record, self._replay = None, iter(self._calls[key])
        else:
            self._record, self._replay = self._calls.setdefault(key, []), None
        try:
            yield
        finally:
            self._record, self._replay = saved

    def fresh(self, prefix: str) -> str:
        """A tensor or node name not used before (``prefix``, ``prefix_1``, ...)."""
        name, k = prefix, 0
        while name in self._used:
            k += 1
            name = f"{prefix}_{k}"
        self._used.add(name)
        return name

    def const(self, value: Any, prefix: str, dtype: Any = None) -> str:
        """An initializer holding ``value`` (in the model's dtype unless ``dtype`` says)."""
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype or self.dtype))
        if self._replay is not None:
            hit = next(self._replay, None)
            if (hit is not None and hit[1].dtype == arr.dtype and hit[1].shape == arr.shape
                    and np.array_equal(hit[1], arr)):
                return hit[0]
            self._replay = None          # out of step: fresh initializers from here on
        name = self.fresh(prefix)
        self.initializers.append(self.numpy_helper.from_array(arr, name))
        if self._record is not None:
            self._record.append((name, arr))
        return name

    def ints(self, values: Sequence[int], prefix: str = "shape") -> str:
        return self.const(np.asarray(list(values), np.int64), prefix, np.int64)

    def op(self, op_type: str, inputs: Sequence[str], prefix: str, n_out: int = 1,
           **attrs: Any) -> Any:
        """Add one node; its output name (a list when ``n_out`` > 1)."""
        outs = [self.fresh(prefix if n_out == 1 else f"{prefix}_out{i}") for i in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs,
                                                name=self.fresh(f"{prefix}/{op_type}"), **attrs))
        return outs[0] if n_out == 1 else outs

    # ------------------------------------------------------------------ small patterns
    def transpose(self, x: str, perm: Sequence[int], prefix: str) -> str:
        return self.op("Transpose", [x], prefix, perm=list(perm))

    def reshape(self, x: str, shape: Sequence[int], prefix: str) -> str:
        """Reshape to (batch, *shape): a 0 first keeps the batch dimension dynamic."""
        return self.op("Reshape", [x, self.ints([0, *shape])], prefix)

    def activation(self, x: str, code: int, param: float, prefix: str) -> str:
        """``act(x)`` for a fastnn activation code (``fastnn.activations``)."""
        if code == A.LINEAR:
            return x
        if code == A.STEP:                      # 1 if x >= threshold else 0
            ge = self.op("GreaterOrEqual", [x, self.const(param, f"{prefix}_threshold")],
                         f"{prefix}_ge")
            return self.op("Cast", [ge], prefix, to=self.helper.np_dtype_to_tensor_dtype(
                self.dtype))
        simple = {A.SIGMOID: "Sigmoid", A.TANH: "Tanh", A.RELU: "Relu"}
        if code in simple:
            return self.op(simple[code], [x], prefix)
        if code == A.LEAKY_RELU:
            if self.dtype == np.float32:
                return self.op("LeakyRelu", [x], prefix, alpha=float(param))
            # LeakyRelu's alpha is a float32 attribute: float64 slopes take x * alpha
            positive = self.op("Greater", [x, self.const(0.0, f"{prefix}_zero")],
                               f"{prefix}_positive")
            scaled = self.op("Mul", [x, self.const(param, f"{prefix}_alpha")], f"{prefix}_ax")
            return self.op("Where", [positive, x, scaled], prefix)
        if code == A.SOFTMAX:
            return self.op("Softmax", [x], prefix, axis=-1)
        if code in (A.GELU, A.GELU_TANH):
            approximate = "tanh" if code == A.GELU_TANH else "none"
            if self.opset >= 20:
                return self.op("Gelu", [x], prefix, approximate=approximate)
            return self._gelu(x, code == A.GELU_TANH, prefix)
        if code in (A.ELU, A.SELU, A.SOFTPLUS, A.SILU):
            return self._keras_activation(x, code, param, prefix)
        raise ValueError(f"activation code {code} has no ONNX form")

    def _keras_activation(self, x: str, code: int, param: float, prefix: str) -> str:
        """elu, selu, softplus: ONNX's Elu, Selu, Softplus in float32 (onnxruntime has them for
        float only; their attributes are float32); float64 their formulas, with exp(x) - 1 for
        expm1 and log(1 + exp(-|x|)) for log1p (a few ulps near 0). silu: x * Sigmoid(x)."""
        if code == A.SILU:
            return self.op("Mul", [x, self.op("Sigmoid", [x], f"{prefix}_sigmoid")], prefix)
        if self.dtype == np.float32:
            if code == A.ELU:
                return self.op("Elu", [x], prefix, alpha=float(param))
            if code == A.SELU:
                return self.op("Selu", [x], prefix, alpha=A.SELU_ALPHA, gamma=A.SELU_SCALE)
            return self.op("Softplus", [x], prefix)
        if code == A.SOFTPLUS:                  # max(x, 0) + log(1 + exp(-|x|))
            e = self.op("Exp", [self.op("Neg", [self.op("Abs", [x], f"{prefix}_abs")],
                                        f"{prefix}_neg")], f"{prefix}_exp")
            log = self.op("Log", [self.op("Add", [e, self.const(1.0, f"{prefix}_one")],
                                          f"{prefix}_1pe")], f"{prefix}_log")
            pos = self.op("Max", [x, self.const(0.0, f"{prefix}_zero")], f"{prefix}_pos")
            return self.op("Add", [pos, log], prefix)
        alpha = float(param) if code == A.ELU else A.SELU_ALPHA
        positive = self.op("Greater", [x, self.const(0.0, f"{prefix}_zero")],
                           f"{prefix}_positive")
        em1 = self.op("Sub", [self.op("Exp", [x], f"{prefix}_exp"),
                              self.const(1.0, f"{prefix}_one")], f"{prefix}_em1")
        neg = self.op("Mul", [em1, self.const(alpha, f"{prefix}_alpha")], f"{prefix}_neg")
        out = self.op("Where", [positive, x, neg],
                      prefix if code == A.ELU else f"{prefix}_elu")
        if code == A.ELU:
            return out
        return self.op("Mul", [out, self.const(A.SELU_SCALE, f"{prefix}_scale")], prefix)

    def _gelu(self, x: str, tanh: bool, prefix: str) -> str:
        """gelu before opset 20: x/2 (1 + erf(x / sqrt 2)), or the tanh formula."""
        half = self.op("Mul", [x, self.const(0.5, f"{prefix}_half")], f"{prefix}_halfx")
        if tanh:
            x3 = self.op("Mul", [self.op("Mul", [x, x], f"{prefix}_x2"), x], f"{prefix}_x3")
            inner = self.op("Add", [x, self.op("Mul", [x3, self.const(0.044715, f"{prefix}_c")],
                                               f"{prefix}_cx3")], f"{prefix}_inner")
            u = self.op("Mul", [inner, self.const(math.sqrt(2 / math.pi), f"{prefix}_k")],
                        f"{prefix}_u")
            t = self.op("Tanh", [u], f"{prefix}_t")
        else:
            u = self.op("Mul", [x, self.const(1 / math.sqrt(2), f"{prefix}_k")], f"{prefix}_u")
            t = self.op("Erf", [u], f"{prefix}_t")
        one = self.op("Add", [t, self.const(1.0, f"{prefix}_one")], f"{prefix}_1pt")
        return self.op("Mul", [half, one], prefix)

    def channels_first(self, x: str, rank: int, prefix: str) -> str:
        """(n, *spatial, c) -> (n, c, *spatial)."""
        return self.transpose(x, [0, rank + 1, *range(1, rank + 1)], prefix)

    def channels_last(self, x: str, rank: int, prefix: str) -> str:
        """(n, c, *spatial) -> (n, *spatial, c)."""
        return self.transpose(x, [0, *range(2, rank + 2), 1], prefix)
