"""The decode ops of ``fastnn.models.decoding.Decoder``: per layer class, how to compute one
position for every row of a batch from the previous layers' outputs at that position.

An op owns its output buffer (batch, width), reads its inputs' buffers (bound once, when the
decoder is made) and ``run(t)`` computes position t. On the fast backend most ops bind a
compiled kernel to their arrays (fastnn/_ext/_decode.pyx), and the decoder calls its ``step``
directly (``call``). ``register`` adds an op for more layer classes.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from fastnn import activations as A
from fastnn.layers import (Activation, Add, AlphaDropout, Dense, Dropout, Embedding,
                           GaussianDropout, GaussianNoise, LayerNormalization,
                           MultiHeadAttention, PositionalEmbedding, SinePositionEncoding,
                           TransformerBlock)

_OPS: dict[type, Callable[..., Any]] = {}


def register(*classes: type) -> Callable[[Any], Any]:
    """Class decorator: the decode op of these layer classes (and their subclasses)."""
    def add(op: Any) -> Any:
        for cls in classes:
            _OPS[cls] = op
        return op
    return add


def decode_op(layer: Any) -> Any:
    """The decode op class for ``layer`` (by its class, then its base classes), or None."""
    for cls in type(layer).__mro__:
        if cls in _OPS:
            return _OPS[cls]
    return None


class _Op:
    """What a decode op is given: the layer, its inputs' buffers, the decoder's settings."""

    def __init__(self, layer: Any, inputs: list[Any], dec: Any) -> None:
        self.layer, self.inputs, self.be = layer, inputs, dec.be
        self.out = np.zeros((dec.batch, layer.output_shape[-1]), dec.dtype)
        self.load()

    def load(self) -> None:
        """Copy the layer's current weights into the op's arrays (the same arrays each time:
        compiled steps hold their addresses)."""

    def keep(self, name: str, value: Any) -> Any:
        """The array the op holds as ``name`` for ``value``: the first time ``value`` itself
        (a view of the model's weights, read in place) or a contiguous copy; later the same
        array, refreshed by a copy unless it is ``value``'s memory already."""
        have = self.__dict__.get(name)
        if have is None:
            return np.ascontiguousarray(value)
        if not np.shares_memory(have, value):
            np.copyto(have, value)
        return have

    def run(self, t: int) -> None:
        raise NotImplementedError

    def bound(self, name: str, *args: Any) -> Any:
        """The fast backend's kernel ``name`` bound to these arrays (one cheap call per
        position, see fastnn/_ext/_decode.pyx), or None on a backend without it."""
        kernel = getattr(self.be, name, None)
        return None if kernel is None else kernel(*args)

    @property
    def call(self) -> Callable[[int], Any]:
        """What the decoder calls per position: the bound kernel's step, or ``run``."""
        compiled = self.__dict__.get("compiled")
        return self.run if compiled is None else compiled.step


@register(Embedding)
class _EmbeddingOp(_Op):
    def __init__(self, layer: Any, inputs: list[Any], dec: Any) -> None:
        self.rows = np.zeros(dec.batch, np.int64)
        super().__init__(layer, inputs, dec)
        self.kernel = self.bound("EmbedStep", inputs[0], self.table, None, self.out)

    def load(self) -> None:
        self.table = self.keep("table", self.layer.embeddings)

    def run(self, t: int) -> None:
        if self.kernel is not None:
            bad = self.kernel.step(t)
        else:
            bad = self.be.embedding_forward(self.inputs[0], self.table, self.out, self.rows)
        if bad >= 0:
            raise ValueError(f"{self.layer.name}: ids must be integers in [0, input_dim="
                             f"{self.layer.input_dim}). Received: ids[{bad}]="
                             f"{self.inputs[0][bad]}")


@register(PositionalEmbedding, SinePositionEncoding)
class _PositionsOp(_Op):
    def __init__(self, layer: Any, inputs: list[Any], dec: Any) -> None:
        if isinstance(layer, SinePositionEncoding):
            layer.extend(dec.max_length)
        elif dec.max_length > layer.sequence_length:
            raise ValueError(f"{layer.name} holds {layer.sequence_length} positions (its "
                             f"sequence_length): generation cannot go past them. Received: "
                             f"max_length={dec.max_length}")
        self.length = dec.max_length
        super().__init__(layer, inputs, dec)
        self.compiled = self.bound("AddRowStep", inputs[0], self.table, self.out)

    def load(self) -> None:
        self.table = self.keep("table", self.layer.positions(0, self.length))

    def run(self, t: int) -> None:
        self.be.add_row_vector(self.inputs[0], self.table[t], self.out)


@register(Dense)
class _DenseOp(_Op):
    def __init__(self, layer: Any, inputs: list[Any], dec: Any) -> None:
        super().__init__(layer, inputs, dec)
        self.compiled = self.bound("DenseStep", inputs[0], self.w, self.b, layer.act,
                                   layer.param, self.out)

    def load(self) -> None:
        self.w = self.keep("w", self.layer.W)
        self.b = self.keep("b", self.layer.b)

    def run(self, t: int) -> None:
        self.be.dense_forward(self.inputs[0], self.w, self.b, self.layer.act, self.layer.param,
                              self.out)


@register(LayerNormalization)
class _LayerNormOp(_Op):
    def __init__(self, layer: Any, inputs: list[Any], dec: Any) -> None:
        self.stats = np.zeros((2, dec.batch), dec.dtype)
        super().__init__(layer, inputs, dec)
        self.compiled = self.bound("NormStep", inputs[0], self.gamma, self.beta,
                                   layer.epsilon, self.out)

    def load(self) -> None:
        self.gamma = self.keep("gamma", self.layer.gamma)
        self.beta = self.keep("beta", self.layer.beta)

    def run(self, t: int) -> None:
        self.be.layernorm_forward(self.inputs[0], self.gamma, self.beta, self.layer.epsilon,
                                  self.out, self.stats[0], self.stats[1])


@register(Activation)
class _ActivationOp(_Op):
    def run(self, t: int) -> None:
        self.be.activation_forward(self.inputs[0], self.layer.act, self.layer.param, self.out)


@register(Add)
class _AddOp(_Op):
    def run(self, t: int) -> None:
        self.be.add_forward([x.reshape(-1) for x in self.inputs], self.out.reshape(-1))


@register(Dropout, GaussianNoise, GaussianDropout, AlphaDropout)
class _IdentityOp(_Op):
    def __init__(self, layer: Any, inputs: list[Any], dec: Any) -> None:
        self.layer, self.out = layer, inputs[0]        # inference: the identity

    def load(self) -> None:
        pass

    def run(self, t: int) -> None:
        pass


@register(MultiHeadAttention)
class _AttentionOp(_Op):
    """Causal self-attention: Q, K, V of the new position in one product, the new K and V
    appended to the caches, attention over positions 0..t, the output projection."""

    def __init__(self, layer: Any, inputs: list[Any], dec: Any) -> None:
        if list(layer.input_roles) != ["qkv"] or not layer.use_causal_mask:
            raise ValueError(f"{layer.name}: generation needs causal self-attention "
                             f"(mha(x, x, use_causal_mask=True), no attention_mask). Received: "
                             f"inputs {layer.input_roles}, use_causal_mask="
                             f"{layer.use_causal_mask}")
        super().__init__(layer, inputs, dec)
        H, kd, vd = layer.num_heads, layer.key_dim, layer.value_dim
        B, L, dt = dec.batch, dec.max_length, dec.dtype
        self.qkv = np.zeros((B, H * (2 * kd + vd)), dt)
        self.q, self.k = np.zeros((B, H, kd), dt), np.zeros((B, H, kd), dt)
        self.v, self.o = np.zeros((B, H, vd), dt), np.zeros((B, H, vd), dt)
        self.k_cache, self.v_cache = np.zeros((B, H, L, kd), dt), np.zeros((B, H, L, vd), dt)
        self.scale = 1.0 / math.sqrt(kd)

    def load(self) -> None:
        # Keras' layouts: kernels (d, H, kd), biases (H, kd), output kernel (H, vd, d); the
        # layer's own views (Layer._weights), of which Q, K, V are copied side by side
        layer = self.layer
        w = layer._weights
        step = 2 if layer.use_bias else 1
        kernels = [w[step * i].reshape(w[step * i].shape[0], -1) for i in range(3)]
        kernels.append(w[3 * step].reshape(-1, w[3 * step].shape[-1]))
        biases = ([w[step * i + 1].reshape(-1) for i in range(4)] if layer.use_bias
                  else [np.zeros(k.shape[1], k.dtype) for k in kernels])
        self.wqkv = self.keep("wqkv", np.concatenate(kernels[:3], axis=1))
        self.bqkv = self.keep("bqkv", np.concatenate(biases[:3]))
        self.wo = self.keep("wo", kernels[3])
        self.bo = self.keep("bo", biases[3])

    def attend(self, x: Any, t: int, out: Any) -> None:
        be, B = self.be, self.out.shape[0]
        be.dense_forward(x, self.wqkv, self.bqkv, A.LINEAR, 0.0, self.qkv)
        hk = self.q[0].size
        self.q.reshape(B, -1)[...] = self.qkv[:, :hk]
        self.k.reshape(B, -1)[...] = self.qkv[:, hk:2 * hk]
        self.v.reshape(B, -1)[...] = self.qkv[:, 2 * hk:]
        be.attention_decode(self.q, self.k, self.v, self.k_cache, self.v_cache, t, self.scale,
                            self.o)
        be.dense_forward(self.o.reshape(B, -1), self.wo, self.bo, A.LINEAR, 0.0, out)

    def run(self, t: int) -> None:
        self.attend(self.inputs[0], t, self.out)


@register(TransformerBlock)
class _BlockOp(_Op):
    """A causal TransformerBlock: on the fast backend one compiled ``BlockStep`` call per
    position; otherwise its sublayers' kernels one by one (pre- or post-norm)."""

    def __init__(self, layer: Any, inputs: list[Any], dec: Any) -> None:
        if not layer.causal or layer._masked:
            raise ValueError(f"{layer.name}: generation needs a causal block without a "
                             f"padding mask. Received: causal={layer.causal}, padding mask: "
                             f"{layer._masked}")
        mha = layer.attention
        self.attention = a = _AttentionOp(mha, inputs, dec)
        super().__init__(layer, inputs, dec)
        ff1 = layer.feedforward_intermediate
        self.act, self.param = ff1.act, ff1.param
        B, d = self.out.shape
        self.h, self.r = np.zeros((B, d), dec.dtype), np.zeros((B, d), dec.dtype)
        self.f = np.zeros((B, ff1.units), dec.dtype)
        self.stats = np.zeros((2, B), dec.dtype)
        self.compiled = None
        if hasattr(self.be, "BlockStep"):
            self.compiled = self.bound(
                "BlockStep", inputs[0], self.out, a.wqkv, a.bqkv, a.wo, a.bo, *self.norms,
                *self.ff,
                a.k_cache, a.v_cache, mha.num_heads, mha.key_dim, mha.value_dim,
                layer.norm_first, layer.layer_norm_epsilon, self.act, self.param, a.scale)

    def load(self) -> None:
        layer = self.layer
        if hasattr(self, "norms"):
            self.attention.load()
        ff1, ff2 = layer.feedforward_intermediate, layer.feedforward_output
        an, fn = layer.attention_norm, layer.feedforward_norm
        self.norms = [self.keep(f"norm{i}", w)
                      for i, w in enumerate((an.gamma, an.beta, fn.gamma, fn.beta))]
        self.ff = [self.keep(f"ff{i}", w) for i, w in enumerate((ff1.W, ff1.b, ff2.W, ff2.b))]
        for i in range(4):           # (where keep finds them next time)
            self.__dict__[f"norm{i}"], self.__dict__[f"ff{i}"] = self.norms[i], self.ff[i]

    def _norm(self, i: int, x: Any, out: Any) -> None:
        self.be.layernorm_forward(x, self.norms[2 * i], self.norms[2 * i + 1],
                                  self.layer.layer_norm_epsilon, out, self.stats[0],
                                  self.stats[1])

    def _feedforward(self, x: Any, residual: Any, out: Any) -> None:
        be = self.be
        be.dense_forward(x, self.ff[0], self.ff[1], self.act, self.param, self.f)
        be.dense_forward(self.f, self.ff[2], self.ff[3], A.LINEAR, 0.0, out)
        be.add_forward([residual.reshape(-1), out.reshape(-1)], out.reshape(-1))

    def run(self, t: int) -> None:
        x, be, h, r = self.inputs[0], self.be, self.h, self.r
        if self.layer.norm_first:
            self._norm(0, x, h)
            self.attention.attend(h, t, r)
            be.add_forward([x.reshape(-1), r.reshape(-1)], r.reshape(-1))
            self._norm(1, r, h)
            self._feedforward(h, r, self.out)
        else:
            self.attention.attend(x, t, r)
            be.add_forward([x.reshape(-1), r.reshape(-1)], r.reshape(-1))
            self._norm(0, r, h)
            self._feedforward(h, h, r)
            self._norm(1, r, self.out)
