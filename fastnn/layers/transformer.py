"""``TransformerBlock``: one Transformer encoder (or, causal, GPT decoder) layer built from the
layers fastnn has: ``MultiHeadAttention``, ``LayerNormalization``, ``Dense`` and ``Dropout``.

    pre-norm (norm_first=True):   r = x + Drop(MHA(LN1(x)));   y = r + Drop(FF(LN2(r)))
    post-norm (norm_first=False): r = LN1(x + Drop(MHA(x)));   y = LN2(r + Drop(FF(r)))
    FF(h) = Dense_out(Drop(act(Dense_ff(h))))

as PyTorch's ``nn.TransformerEncoderLayer(batch_first=True)`` computes it. The block runs its
sublayers on slots of its own, so each keeps the buffers its backward needs; the residual sums
are the backend's ``add_forward`` kernel.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from fastnn import _validation as V
from fastnn import activations as A
from fastnn.layers.attention import MultiHeadAttention
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec
from fastnn.layers.core import Dense, _initializer, _serialize
from fastnn.layers.normalization import LayerNormalization
from fastnn.layers.regularization import Dropout


class TransformerBlock(Layer):
    """A Transformer layer: residual self-attention, then a residual feed-forward network.

    Called on a sequence ``x`` (n, steps, d) as ``block(x)`` or ``block(x, padding_mask=m)``
    (m (n, steps), nonzero = a real step: padded keys are not attended to); the output has
    x's shape.

    Parameters
    ----------
    num_heads, key_dim : int
        The attention's heads and the width of each query/key head (PyTorch's
        ``nn.TransformerEncoderLayer(d, nhead)`` is ``key_dim = d // nhead``).
    ff_dim : int
        Width of the feed-forward network's hidden layer.
    causal : bool, default False
        Step t attends to steps <= t only (a GPT block).
    norm_first : bool, default True
        Pre-norm (GPT-2, and PyTorch's ``norm_first=True``) or post-norm (the original).
    dropout : float, default 0.0
        Dropout on the attention weights (``MultiHeadAttention(dropout)``), on the attention
        output, after the feed-forward activation and on the feed-forward output: PyTorch's
        ``TransformerEncoderLayer(dropout)`` and keras_hub's ``TransformerEncoder``.
    activation : str, default "gelu"
        The feed-forward activation ("gelu", "gelu_tanh", "relu", ...).
    layer_norm_epsilon : float, default 1e-5
        Both normalisations' epsilon (PyTorch's and keras_hub's default).
    value_dim : int, optional
        Width of each value head (default key_dim).
    use_bias : bool, default True
        Biases in the attention projections and the feed-forward layers.
    kernel_initializer, bias_initializer : default "glorot_uniform", "zeros"
        Of every projection and feed-forward layer.
    name, trainable
        See ``Layer``.

    Weights (``get_weights()``, keras_hub ``TransformerEncoder``'s order): the attention's
    eight (``MultiHeadAttention``), the attention norm's gamma and beta, the feed-forward
    norm's gamma and beta, the feed-forward kernels and biases (d, ff_dim), (ff_dim,),
    (ff_dim, d), (d,).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> inp = fnn.Input((6, 8))
    >>> block = fnn.TransformerBlock(num_heads=2, key_dim=4, ff_dim=16, causal=True)
    >>> model = fnn.Model(inp, block(inp), seed=0, backend="numpy")
    >>> model.predict(np.zeros((3, 6, 8))).shape
    (3, 6, 8)
    >>> [w.shape for w in block.get_weights()][-4:]
    [(8, 16), (16,), (16, 8), (8,)]
    """

    uses_mask = True      # its attention: padded steps are attended by no query

    def __init__(self, num_heads: int, key_dim: int, ff_dim: int, causal: bool = False,
                 norm_first: bool = True, dropout: float = 0.0, activation: Any = "gelu",
                 layer_norm_epsilon: float = 1e-5, value_dim: Optional[int] = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", name: Optional[str] = None,
                 trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        self.ff_dim = V.check_dim("ff_dim", ff_dim)
        self.causal = V.check_bool("causal", causal)
        self.norm_first = V.check_bool("norm_first", norm_first)
        self.dropout = V.check_float("dropout", dropout, low=0.0, high=1.0, high_open=True)
        self.layer_norm_epsilon = V.check_float("layer_norm_epsilon", layer_norm_epsilon,
                                                low=0.0, low_open=True)
        self.use_bias = V.check_bool("use_bias", use_bias)
        self.kernel_initializer = _initializer("kernel_initializer", kernel_initializer)
        self.bias_initializer = _initializer("bias_initializer", bias_initializer)
        inits = {"kernel_initializer": self.kernel_initializer,
                 "bias_initializer": self.bias_initializer}
        self.attention = MultiHeadAttention(num_heads, key_dim, value_dim, use_bias=use_bias,
                                            dropout=self.dropout, **inits)
        self.attention.set_call(["qkv"], self.causal)
        self.attention_norm = LayerNormalization(epsilon=self.layer_norm_epsilon)
        self.feedforward_norm = LayerNormalization(epsilon=self.layer_norm_epsilon)
        self.feedforward_intermediate = Dense(self.ff_dim, activation=activation,
                                              use_bias=use_bias, **inits)
        self.feedforward_output: Optional[Dense] = None          # (d units: made at build)
        self._drops: list[Dropout] = ([Dropout(self.dropout) for _ in range(3)]
                                      if self.dropout > 0 else [])
        self._masked = False
        self._name_sublayers()

    def _name_sublayers(self) -> None:
        names = {"attention": "self_attention", "attention_norm": "self_attention_layer_norm",
                 "feedforward_norm": "feedforward_layer_norm",
                 "feedforward_intermediate": "feedforward_intermediate_dense",
                 "feedforward_output": "feedforward_output_dense"}
        for attr, auto in names.items():
            inner = getattr(self, attr)
            if inner is not None:
                inner._auto_name = auto
        for i, drop in enumerate(self._drops):
            drop._auto_name = f"dropout_{i}"

    @property
    def num_heads(self) -> int:
        return self.attention.num_heads

    @property
    def key_dim(self) -> int:
        return self.attention.key_dim

    @property
    def activation(self) -> str:
        """The feed-forward activation (what ``summary()`` shows; the block's output itself is
        the residual sum, so ``act`` stays linear for the loss)."""
        return self.feedforward_intermediate.activation

    def check_dtype(self, dtype: Any) -> None:
        """The feed-forward activation's parameter (``LeakyReLU(alpha)``, ``Step(threshold)``)
        must be 0 or a normal number of the model's dtype, as in a ``Dense`` layer."""
        for inner in self.sublayers:
            try:
                inner.check_dtype(dtype)
            except ValueError as exc:
                raise ValueError(f"{self!r}: {exc}") from None

    # ------------------------------------------------------------------ calls and shapes
    def __call__(self, inputs: Any, padding_mask: Any = None) -> Any:
        """``block(x)`` or ``block(x, padding_mask=m)`` on symbolic tensors."""
        if padding_mask is not None:
            self.expect_inputs(2)
            return super().__call__([inputs, padding_mask])
        return super().__call__(inputs)

    def expect_inputs(self, count: int) -> None:
        if count not in (1, 2):
            raise ValueError(f"{self.name} takes a sequence and optionally its padding mask. "
                             f"Received: {count} inputs")
        self._masked = count == 2
        self.n_inputs = None if self._masked else 1
        self.attention.set_call(["qkv", "m"] if self._masked else ["qkv"], self.causal)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if isinstance(input_shape, list) != self._masked:
            raise ValueError(f"{self.name} takes {'[x, padding_mask]' if self._masked else 'x'}"
                             f". Received: input shape {input_shape}")
        x_shape = input_shape[0] if self._masked else input_shape
        if not isinstance(x_shape, tuple) or len(x_shape) != 2:
            raise ValueError(f"{self.name} takes sequences (batch, steps, features). Received: "
                             f"input shape {x_shape} (one sample's)")
        if self._masked and tuple(input_shape[1]) != x_shape[:1]:
            raise ValueError(f"{self.name}: padding_mask must be a key padding mask of shape "
                             f"(batch, {x_shape[0]}). Received: padding_mask with shape "
                             f"(None, {', '.join(map(str, input_shape[1]))})")
        self.attention.compute_output_shape(input_shape)
        return x_shape

    def build(self, input_shape: Any, dtype: np.dtype[Any]) -> Any:
        shape = self.compute_output_shape(input_shape)
        width = shape[-1]
        if self.feedforward_output is None or self.feedforward_output.units != width:
            self.feedforward_output = Dense(width, use_bias=self.use_bias,
                                            kernel_initializer=self.kernel_initializer,
                                            bias_initializer=self.bias_initializer)
            self._name_sublayers()
        self.attention.build(input_shape, dtype)
        self.attention_norm.build(shape, dtype)
        self.feedforward_norm.build(shape, dtype)
        self.feedforward_intermediate.build(shape, dtype)
        self.feedforward_output.build((shape[0], self.ff_dim), dtype)
        for i, drop in enumerate(self._drops):
            drop.build(shape if i != 1 else (shape[0], self.ff_dim), dtype)
        return super().build(input_shape, dtype)

    @property
    def sublayers(self) -> tuple[Layer, ...]:
        inner = [self.attention, self.attention_norm, self.feedforward_norm,
                 self.feedforward_intermediate]
        if self.feedforward_output is not None:
            inner.append(self.feedforward_output)
        return (*inner, *self._drops)

    def _weighted(self) -> list[Layer]:
        return [self.attention, self.attention_norm, self.feedforward_norm,
                self.feedforward_intermediate, self.feedforward_output]  # type: ignore[list-item]

    def weight_specs(self) -> Sequence[WeightSpec]:
        # named by sublayer, as Keras does: "feedforward_output_dense/kernel"
        return [spec._replace(name=f"{inner.name}/{spec.name}") for inner in self._weighted()
                for spec in inner._specs]

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        i = 0
        for inner in self._weighted():
            k = len(inner._specs)
            inner.bind(weights[i:i + k], grads[i:i + k])
            i += k

    def init_seed(self, rng: np.random.Generator) -> None:
        """Seed the dropout masks from the model's generator (as a model does its Dropouts)."""
        for drop in self._drops:
            drop.init_seed(rng)
        if self.attention.draws:
            self.attention.init_seed(rng)

    # ------------------------------------------------------------------ compute
    def _slots(self, ctx: Slot, training: Optional[bool] = None) -> dict[str, Slot]:
        slots = ctx.saved.get("slots")
        if slots is None:
            slots = ctx.saved["slots"] = {name: Slot(ctx.be, ctx.dtype) for name in (
                "mha", "ln1", "ln2", "ff1", "ff2", "d0", "d1", "d2")}
        if training is not None:
            for s in slots.values():
                s.set_rows(ctx.rows)
                s.training = training
        return slots

    def _drop(self, slots: dict[str, Slot], i: int, x: FloatArray,
              training: bool) -> FloatArray:
        if not self._drops:
            return x
        return self._drops[i].forward(slots[f"d{i}"], x, training)

    def _drop_back(self, slots: dict[str, Slot], i: int, dy: FloatArray) -> FloatArray:
        if not self._drops:
            return dy
        s = slots[f"d{i}"]
        s._dx = [s.rows_buffer("dx", dy.shape[1:])]
        return self._drops[i].backward(s, dy)  # type: ignore[return-value]

    def _feedforward(self, s: dict[str, Slot], h: FloatArray, training: bool) -> FloatArray:
        f = self.feedforward_intermediate.forward(s["ff1"], h, training)
        f = self._drop(s, 1, f, training)
        assert self.feedforward_output is not None
        g = self.feedforward_output.forward(s["ff2"], f, training)
        return self._drop(s, 2, g, training)

    def _feedforward_back(self, s: dict[str, Slot], dg: FloatArray) -> FloatArray:
        """dL/d(the feed-forward's input) from dL/d(its output); dg may be overwritten."""
        dg = self._drop_back(s, 2, dg)
        assert self.feedforward_output is not None
        s["ff2"]._dx = [s["ff2"].rows_buffer("dx", (self.output_shape[0], self.ff_dim))]
        df = self.feedforward_output.backward(s["ff2"], np.ascontiguousarray(dg))
        df = self._drop_back(s, 1, df)             # type: ignore[arg-type]
        s["ff1"]._dx = [s["ff1"].rows_buffer("dx", self.output_shape)]
        return self.feedforward_intermediate.backward(s["ff1"], df)  # type: ignore

    def _attend(self, s: dict[str, Slot], h: FloatArray, mask: Any,
                training: bool) -> FloatArray:
        a = self.attention.forward(s["mha"], h if mask is None else [h, mask], training)
        return self._drop(s, 0, a, training)

    def _attend_back(self, s: dict[str, Slot], da: FloatArray, want_dx: bool = True) -> Any:
        """dL/d(the attention's input) (None when not ``want_dx``: its weight gradients only)."""
        da = self._drop_back(s, 0, da)
        s["mha"]._dx = [s["mha"].rows_buffer("dx", self.output_shape) if want_dx else None]
        dh = self.attention.backward(s["mha"], da)
        return dh[0] if isinstance(dh, list) else dh

    def _norm_back(self, s: Slot, norm: LayerNormalization, dy: FloatArray,
                   want_dx: bool = True) -> Any:
        """dL/d(the norm's input) (None when not ``want_dx``: gamma's and beta's only)."""
        s._dx = [s.rows_buffer("dx", self.output_shape) if want_dx else None]
        return norm.backward(s, dy)

    def _add(self, ctx: Slot, key: str, a: FloatArray, b: FloatArray,
             out: Optional[FloatArray] = None) -> FloatArray:
        if out is None:
            out = ctx.rows_buffer(key, self.output_shape)
        ctx.be.add_forward([a.reshape(-1), b.reshape(-1)], out.reshape(-1))
        return out

    def output_masked(self, masked: Any) -> bool:
        return bool(masked[0] if isinstance(masked, list) else masked)

    def compute_mask(self, ctx: Slot, x: Any, mask: Any) -> Any:
        return mask[0] if isinstance(mask, list) else mask

    def forward(self, ctx: Slot, x: Any, training: bool) -> FloatArray:
        s = self._slots(ctx, training)
        x, mask = (x[0], x[1]) if isinstance(x, list) else (x, None)
        # the sequence's step mask (Embedding(mask_zero=True), Masking): its padded steps are
        # keys no query attends to, as with padding_mask (both: the steps real in both)
        s["mha"].mask = ctx.mask[0] if isinstance(ctx.mask, list) else ctx.mask
        x = np.ascontiguousarray(x)
        if self.norm_first:
            h = self.attention_norm.forward(s["ln1"], x, training)
            r = self._add(ctx, "r", x, self._attend(s, h, mask, training))
            h2 = self.feedforward_norm.forward(s["ln2"], r, training)
            return self._add(ctx, "y", r, self._feedforward(s, h2, training))
        s1 = self._add(ctx, "s1", x, self._attend(s, x, mask, training))
        r = self.attention_norm.forward(s["ln1"], s1, training)
        s2 = self._add(ctx, "s2", r, self._feedforward(s, r, training))
        return self.feedforward_norm.forward(s["ln2"], s2, training)

    def backward(self, ctx: Slot, dy: FloatArray) -> Any:
        s = self._slots(ctx)
        dy = np.ascontiguousarray(dy)
        # dx_target None: nobody needs dL/dx (the block reads the model's input), so the work
        # that only serves it is skipped, as Dense skips its dx product: the first norm's dx
        # and the residual add (pre-norm), the attention's input product and the add (post-norm)
        dx = ctx.dx_target(0)
        # dr, the residual path's gradient, is dy plus the branch's: the feed-forward's backward
        # leaves the dy it reads as it was (its output layer is linear, whose dz := dy in place
        # writes the same values; a dropout writes into its own buffer), so dy is added as it
        # is, with no copy of it first
        if self.norm_first:
            dr = ctx.rows_buffer("dr", self.output_shape)
            dh2 = self._feedforward_back(s, dy)
            self._add(ctx, "dr", dy, self._norm_back(s["ln2"], self.feedforward_norm, dh2), dr)
            dh = self._attend_back(s, dr)
            dn = self._norm_back(s["ln1"], self.attention_norm, dh, dx is not None)
            if dx is not None:
                self._add(ctx, "dx", dr, dn, dx)
        else:
            ds2 = self._norm_back(s["ln2"], self.feedforward_norm, dy)
            dr = ctx.rows_buffer("dr", self.output_shape)
            self._add(ctx, "dr", ds2, self._feedforward_back(s, ds2), dr)
            ds1 = self._norm_back(s["ln1"], self.attention_norm, dr)
            da = self._attend_back(s, ds1, dx is not None)
            if dx is not None:
                self._add(ctx, "dx", ds1, da, dx)
        if not self._masked:
            return dx
        dmask = ctx.dx_target(1)
        if dmask is not None:
            dmask[...] = 0                     # a mask has no gradient
        return [dx, dmask]

    # ------------------------------------------------------------------ config and state
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        mha = self.attention
        config.update({"num_heads": mha.num_heads, "key_dim": mha.key_dim,
                       "ff_dim": self.ff_dim, "causal": self.causal,
                       "norm_first": self.norm_first, "dropout": self.dropout,
                       "activation": self.activation,
                       "layer_norm_epsilon": self.layer_norm_epsilon,
                       "value_dim": mha.value_dim, "use_bias": self.use_bias,
                       "kernel_initializer": _serialize(self.kernel_initializer),
                       "bias_initializer": _serialize(self.bias_initializer)})
        inner = self.feedforward_intermediate          # LeakyReLU's alpha, Step's threshold
        if inner.act == A.STEP:
            config["threshold"] = inner.param
        elif inner.act == A.LEAKY_RELU or (inner.act == A.ELU and inner.param != 1.0):
            config["alpha"] = inner.param
        states = [d.get_config().get("state") for d in self._drops]
        attention = self.attention.get_config().get("state")
        if any(st is not None for st in states) or attention is not None:
            config["state"] = {"dropouts": states}
            if attention is not None:
                config["state"]["attention"] = attention
        return config

    def set_state(self, state: Any) -> None:
        """Restore ``get_config()["state"]``: the three Dropouts' streams, and the attention
        weights' (``"attention"``; files written before attention dropout have none)."""
        keys = set(state) if isinstance(state, dict) else set()
        drops = state.get("dropouts") if keys in ({"dropouts"}, {"dropouts", "attention"}) \
            else None
        if not isinstance(drops, list) or len(drops) != len(self._drops):
            raise ValueError(f"TransformerBlock's state must be {{'dropouts': [one state per "
                             f"dropout ({len(self._drops)})], 'attention': optional}}. "
                             f"Received: {state!r:.80}")
        for drop, st in zip(self._drops, drops):
            if st is not None:
                drop.set_state(st)
        if "attention" in keys:
            self.attention.set_state(state["attention"])

    def __repr__(self) -> str:
        return (f"TransformerBlock(num_heads={self.num_heads}, key_dim={self.key_dim}, "
                f"ff_dim={self.ff_dim}, causal={self.causal})")
