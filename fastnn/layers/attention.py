"""Attention: ``MultiHeadAttention`` (Keras' layer, its weights and layouts).

    Q = query Wq + bq,  K = key Wk + bk,  V = value Wv + bv      (split into H heads)
    O_h = softmax(Q_h K_h^T / sqrt(key_dim), masked) V_h,       y = [O_1 ... O_H] Wo + bo

The projections are the backend's dense kernels. A tensor that plays several roles (query,
key and value at once in self-attention) is projected by ONE product with those kernels side
by side; the heads then run the tiled attention kernel (``attention_forward/backward``: online
softmax, memory linear in the sequence length) on (n, H, L, D) copies.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from fastnn import activations as A
from fastnn import _validation as V
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec, mask_input_and_steps
from fastnn.layers.core import _initializer, _regularizer, _serialize
from fastnn.layers.regularization import check_seed, stream_state

_M64 = 2**64 - 1


def dropout_key(seed: int, calls: int) -> int:
    """The attention kernels' dropout_key for training pass ``calls`` of a layer seeded ``seed``:
    SplitMix64's finalizer over seed + (calls + 1) times the golden ratio (each pass its own
    well-mixed key; the kernels then mix in each weight's index)."""
    z = (seed + (calls + 1) * 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)

class DropoutStream:
    """The counter-based dropout stream of the attention layers (MultiHeadAttention, Attention,
    AdditiveAttention): the rate, the seed (given, or from the model's generator), ``calls``
    (the training passes that drew so far) and their record in the model file, so a reloaded
    model goes on with the same draws."""

    dropout: float
    seed: Optional[int]

    def _init_stream(self, dropout: Any, seed: Any) -> None:
        self.dropout = V.check_float("dropout", dropout, low=0.0, high=1.0, high_open=True)
        self.seed = check_seed(seed)
        self._mask_seed: Optional[int] = self.seed
        self.calls = 0           # training passes that drew: the dropout stream's counter

    @property
    def draws(self) -> bool:
        """Whether a training pass draws dropout (and advances ``calls``)."""
        return self.dropout > 0.0

    def next_key(self, training: bool) -> Optional[int]:
        """This pass's dropout_key (advancing ``calls``), or None when it draws nothing."""
        if not (training and self.draws):
            return None
        key = dropout_key(self._mask_seed or 0, self.calls)
        self.calls += 1
        return key

    def init_seed(self, rng: np.random.Generator) -> None:
        """Take a seed from the model's generator when none was given (or restored)."""
        if self._mask_seed is None:
            self._mask_seed = int(rng.integers(0, 2**63))

    def set_state(self, state: Any) -> None:
        """Restore ``get_config()["state"]`` (the dropout stream's seed and counter)."""
        self._mask_seed, self.calls = stream_state(type(self).__name__, state)

    def _stream_config(self, config: dict[str, Any]) -> None:
        if self._mask_seed is not None and self.draws and (self.calls or self.seed is None):
            # where the dropout stream stands: a loaded model goes on with the same draws
            config["state"] = {"mask_seed": self._mask_seed, "calls": self.calls}


# The roles an input tensor plays: a subset of "qkv" (in that order), or "m" (the key mask).
_ROLE_NAMES = {"q": "query", "k": "key", "v": "value", "m": "attention_mask"}


def _roles_of(query: Any, value: Any, key: Any, mask: Any) -> tuple[list[Any], list[str]]:
    """The distinct tensors (in order of first use) and the roles each plays."""
    tensors: list[Any] = []
    roles: list[str] = []
    for role, t in (("q", query), ("k", value if key is None else key), ("v", value)):
        for i, seen in enumerate(tensors):
            if seen is t:
                roles[i] = "".join(r for r in "qkv" if r in roles[i] + role)
                break
        else:
            tensors.append(t)
            roles.append(role)
    if mask is not None:
        tensors.append(mask)
        roles.append("m")
    return tensors, roles


def check_key_value_steps(name: str, key: tuple, value: tuple) -> None:
    """ValueError unless the key and value (per-sample shapes) have the same number of steps."""
    if key[0] != value[0]:
        raise ValueError(f"{name}: key and value must have the same number of steps. "
                         f"Received: key shape (None, *{key}), value shape (None, *{value})")


def _width(name: str, value: Any) -> int:
    """A head count or width: a positive integer below 2**31 (what the kernels index with)."""
    return V.check_dim(name, value)


def _check_roles(roles: Any) -> list[str]:
    ok = (isinstance(roles, (list, tuple)) and roles
          and all(isinstance(r, str) and r in ("q", "k", "v", "qk", "qv", "kv", "qkv", "m")
                  for r in roles)
          and sorted("".join(r for r in roles if r != "m")) == ["k", "q", "v"]
          and roles.count("m") <= 1 and (roles[-1] == "m" or "m" not in roles))
    if not ok:
        raise ValueError(f"input_roles must split 'qkv' among the inputs, an optional 'm' (the "
                         f"mask) last. Received: input_roles={V._describe(roles)}")
    return list(roles)


class MultiHeadAttention(DropoutStream, Layer):
    """Multi-head attention (Vaswani et al., 2017), as Keras' ``MultiHeadAttention``.

    Called as ``mha(query, value, key=None, attention_mask=None, use_causal_mask=False)`` on
    symbolic tensors: query (n, Lq, dq), value (n, Lv, dv), key (n, Lv, dk) (default: value);
    output (n, Lq, output_shape or dq). ``mha(x, x)`` is self-attention (one projection
    product). In a ``Sequential`` model the layer is self-attention on its input.

    Parameters
    ----------
    num_heads, key_dim : int
        Number of heads H and the width of each query/key head (in [1, 2**31)); scores are
        scaled by 1 / sqrt(key_dim).
    value_dim : int, optional
        Width of each value head (default key_dim).
    use_bias : bool, default True
        Whether the four projections have biases.
    output_shape : int, optional
        Width of the output (default dq, the query's width).
    dropout : float, default 0.0
        In training, the fraction of attention weights zeroed (the others scaled by
        1 / (1 - dropout)), as Keras and PyTorch; drawn inside the tiled kernel from a
        counter-based stream (``seed``, training passes so far), so memory stays linear in the
        sequence length and both backends and every thread count draw the same.
    seed : int, optional
        Seed of the dropout draws (default: from the model's seed when it is built).
    kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer
        As in ``Dense`` (default Glorot uniform kernels, zero biases).
    name, trainable
        See ``Layer``.

    Weights (``get_weights()``, Keras 3's order and layouts): query kernel (dq, H, key_dim),
    query bias (H, key_dim), key kernel (dk, H, key_dim), key bias, value kernel
    (dv, H, value_dim), value bias (H, value_dim), output kernel (H, value_dim, out), output
    bias (out,); no biases without ``use_bias``.

    Masks: ``use_causal_mask`` lets query i see keys j <= i (top-left aligned, as Keras and
    PyTorch's is_causal). ``attention_mask`` is Keras' (n, Lq, Lv) mask (nonzero / True:
    query i may attend to key j; every head shares it) or a key padding mask (n, Lv); it is
    fused into the tiled kernel, and combines with the causal mask and the key and value step
    masks. A query that sees no key gets a zero output (Keras would average all values); one
    whose scores overflow to +inf gets NaN (``fastnn.ops.scaled_dot_product_attention``).

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> x = fnn.Input((5, 8))
    >>> mha = fnn.MultiHeadAttention(num_heads=2, key_dim=4)
    >>> model = fnn.Model(x, mha(x, x), seed=0, backend="numpy")
    >>> model.output_shape
    (5, 8)
    >>> [w.shape for w in mha.get_weights()][:2]
    [(8, 2, 4), (2, 4)]
    >>> model.predict(np.zeros((3, 5, 8))).shape
    (3, 5, 8)
    """

    uses_mask = True      # padded keys and values are attended by no query

    def __init__(self, num_heads: int, key_dim: int, value_dim: Optional[int] = None,
                 use_bias: bool = True, output_shape: Optional[int] = None,
                 dropout: float = 0.0, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, name: Optional[str] = None,
                 trainable: bool = True, seed: Optional[int] = None) -> None:
        super().__init__(name=name, trainable=trainable)
        self.num_heads = _width("num_heads", num_heads)
        self.key_dim = _width("key_dim", key_dim)
        self.value_dim = self.key_dim if value_dim is None else _width("value_dim", value_dim)
        self.use_bias = V.check_bool("use_bias", use_bias)
        self._output_dim = None if output_shape is None else _width("output_shape", output_shape)
        self._init_stream(dropout, seed)
        self.kernel_initializer = _initializer("kernel_initializer", kernel_initializer)
        self.bias_initializer = _initializer("bias_initializer", bias_initializer)
        self.kernel_regularizer = _regularizer("kernel_regularizer", kernel_regularizer)
        self.bias_regularizer = _regularizer("bias_regularizer", bias_regularizer)
        self.use_causal_mask = False
        self.input_roles = ["qkv"]           # set by the call; self-attention by default
        self._called = False

    # ------------------------------------------------------------------ calls and shapes
    def __call__(self, query: Any, value: Any = None, key: Any = None,
                 attention_mask: Any = None, use_causal_mask: bool = False) -> Any:
        """``mha(query, value, key=None, attention_mask=None, use_causal_mask=False)`` on
        symbolic tensors (``value`` defaults to ``query``)."""
        if value is None:
            value = query
        tensors, roles = _roles_of(query, value, key, attention_mask)
        causal = V.check_bool("use_causal_mask", use_causal_mask)
        if self._called and (roles, causal) != (self.input_roles, self.use_causal_mask):
            # one layer keeps one call's roles and causality (what its config stores)
            raise ValueError(f"{self.name} was called with inputs {self.input_roles} and "
                             f"use_causal_mask={self.use_causal_mask}; a second call must "
                             f"match. Received: inputs {roles}, use_causal_mask={causal}")
        self.set_call(roles, causal)
        self._called = True
        return super().__call__(tensors if len(tensors) > 1 else tensors[0])

    def set_call(self, input_roles: Any, use_causal_mask: bool = False) -> None:
        """Fix what the layer's inputs are (``input_roles``: per input, the subset of "qkv" it
        plays, "m" for the key mask) and whether the mask is causal (a model file's "call")."""
        self.input_roles = _check_roles(input_roles)
        self.use_causal_mask = V.check_bool("use_causal_mask", use_causal_mask)
        self.n_inputs = 1 if len(self.input_roles) == 1 else None

    def expect_inputs(self, count: int) -> None:
        if count != len(self.input_roles):
            raise ValueError(f"{self.name} takes {len(self.input_roles)} input(s) (roles "
                             f"{self.input_roles}). Received: {count} inputs")

    def _shapes(self, input_shape: Any) -> dict[str, Any]:
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        if len(shapes) != len(self.input_roles):
            raise ValueError(f"{self.name} takes {len(self.input_roles)} input(s) (roles "
                             f"{self.input_roles}). Received: input shapes {shapes}")
        by_role: dict[str, Any] = {}
        for roles, shape in zip(self.input_roles, shapes):
            for r in roles:
                by_role[r] = shape
        for roles, s in zip(self.input_roles, shapes):
            names = [_ROLE_NAMES[r] for r in roles]
            what = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
            if roles != "m" and (not isinstance(s, tuple) or len(s) != 2):
                raise ValueError(f"{self.name}: {what} must be (batch, steps, features). "
                                 f"Received: {what} with shape (None, "
                                 f"{', '.join(map(str, s))})")
        check_key_value_steps(self.name, by_role["k"], by_role["v"])
        lq, lv = by_role["q"][0], by_role["v"][0]
        if "m" in by_role and tuple(by_role["m"]) not in ((lv,), (lq, lv)):
            raise ValueError(f"{self.name}: attention_mask must have shape (batch, {lq}, {lv}) "
                             f"(query's and value's steps) or be a key padding mask of shape "
                             f"(batch, {lv}). Received: attention_mask with shape "
                             f"(None, {', '.join(map(str, by_role['m']))})")
        return by_role

    def compute_output_shape(self, input_shape: Any) -> Any:
        s = self._shapes(input_shape)
        return (s["q"][0], self._output_dim or s["q"][1])

    def weight_specs(self) -> Sequence[WeightSpec]:
        s = self._shapes(self.input_shape)
        H, out = self.num_heads, self.output_shape[-1]
        specs = []
        for r, width in (("q", self.key_dim), ("k", self.key_dim), ("v", self.value_dim)):
            name = _ROLE_NAMES[r]
            specs.append(WeightSpec(f"{name}_kernel", (s[r][1], H, width),
                                    self.kernel_initializer, self.kernel_regularizer))
            if self.use_bias:
                specs.append(WeightSpec(f"{name}_bias", (H, width), self.bias_initializer,
                                        self.bias_regularizer))
        specs.append(WeightSpec("output_kernel", (H, self.value_dim, out),
                                self.kernel_initializer, self.kernel_regularizer))
        if self.use_bias:
            specs.append(WeightSpec("output_bias", (out,), self.bias_initializer,
                                    self.bias_regularizer))
        return specs

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        s = self._shapes(self.input_shape)
        H, dt = self.num_heads, weights[0].dtype
        step = 2 if self.use_bias else 1
        self._w: dict[str, tuple[Any, Any, Any, Any]] = {}   # role: (W 2-D, b, dW, db)
        for i, r in enumerate("qkvo"):
            w, g = weights[step * i], grads[step * i]
            rows = s[r][1] if r != "o" else H * self.value_dim
            w2, g2 = w.reshape(rows, -1), g.reshape(rows, -1)
            if self.use_bias:
                b, db = weights[step * i + 1].reshape(-1), grads[step * i + 1].reshape(-1)
            else:                     # the kernels take a bias: a constant zero one
                b, db = np.zeros(w2.shape[1], dt), np.zeros(w2.shape[1], dt)
            self._w[r] = (w2, b, g2, db)

    # ------------------------------------------------------------------ compute
    def _group(self, ctx: Slot, i: int, roles: str) -> tuple[Any, Any]:
        """The kernel and bias of input ``i``: its roles' side by side (a copy when several)."""
        if len(roles) == 1:
            w, b, _, _ = self._w[roles]
            return w, b
        parts = [self._w[r] for r in roles]
        w = ctx.buffer(f"w{i}", (parts[0][0].shape[0], sum(p[0].shape[1] for p in parts)))
        b = ctx.buffer(f"b{i}", (w.shape[1],))
        np.concatenate([p[0] for p in parts], axis=1, out=w)
        np.concatenate([p[1] for p in parts], out=b)
        return w, b

    def _widths(self, roles: str) -> int:
        return sum(self.value_dim if r == "v" else self.key_dim for r in roles) * self.num_heads

    def _forward_views(self, ctx: Slot, lengths: tuple[int, ...]) -> dict[str, Any]:
        """The forward's buffers and their views: per input, its projection p (n, L, widths)
        as rows for the product and as heads; lse, the merged heads and the output."""
        n, H = ctx.rows, self.num_heads
        v: dict[str, Any] = {"p2": []}
        heads: dict[str, Any] = {}
        for i, (roles, L) in enumerate(zip(self.input_roles, lengths)):
            if roles == "m":
                v["p2"].append(None)
                continue
            p = ctx.rows_buffer(f"p{i}", (L, self._widths(roles)))
            v["p2"].append(p.reshape(n * L, -1))
            heads.update(self._heads(p, roles))
        Lq = heads["q"].shape[2]
        merged = ctx.rows_buffer("merged", (Lq, H * self.value_dim))
        y = ctx.rows_buffer("y", self.output_shape)
        v.update(q=heads["q"], k=heads["k"], v=heads["v"], lse=ctx.rows_buffer("lse", (H, Lq)),
                 o=self._heads(merged, "o")["o"], merged2=merged.reshape(n * Lq, -1), y=y,
                 y2=y.reshape(n * Lq, -1))
        return v

    def _backward_views(self, ctx: Slot, lengths: tuple[int, ...]) -> dict[str, Any]:
        """The backward's buffers and their views: dL/d(merged heads), dL/d(output's
        pre-activation) and per input the gradient of its projection (rows and heads)."""
        n, H = ctx.rows, self.num_heads
        Lq = self._forward_views(ctx, lengths)["q"].shape[2]
        dmerged = ctx.rows_buffer("dmerged", (Lq, H * self.value_dim))
        v: dict[str, Any] = {"dp2": []}
        dheads: dict[str, Any] = {}
        for i, (roles, L) in enumerate(zip(self.input_roles, lengths)):
            if roles == "m":
                v["dp2"].append(None)
                continue
            dp = ctx.rows_buffer(f"dp{i}", (L, self._widths(roles)))
            v["dp2"].append(dp.reshape(n * L, -1))
            dheads.update(self._heads(dp, roles))
        v.update(dq=dheads["q"], dk=dheads["k"], dv=dheads["v"], do=self._heads(dmerged, "o")["o"],
                 dmerged2=dmerged.reshape(n * Lq, -1),
                 dz2=ctx.rows_buffer("dz", self.output_shape).reshape(n * Lq, -1))
        return v

    def output_masked(self, masked: Any) -> bool:
        """The output has the query's step mask (Keras)."""
        return bool(masked[0] if isinstance(masked, list) else masked)

    def compute_mask(self, ctx: Slot, x: Any, mask: Any) -> Any:
        return mask[0] if isinstance(mask, list) else mask

    def _key_mask(self, ctx: Slot, xs: list[Any]) -> Any:
        """The mask the kernel takes, (n, Lv) or (n, Lq, Lv): the attention_mask input with the
        step masks of the key and value inputs (from Embedding(mask_zero=True) or Masking): a padded key is attended by
        no query. The query's own mask only passes to the output (Keras also masks the padded
        queries' rows, whose outputs the layers after it then ignore)."""
        given = xs[self.input_roles.index("m")] if "m" in self.input_roles else None
        keys = []
        if ctx.mask is not None:
            masks = ctx.mask if isinstance(ctx.mask, list) else [ctx.mask]
            keys = [m for roles, m in zip(self.input_roles, masks)
                    if "k" in roles or "v" in roles]
        return mask_input_and_steps(ctx, "step_mask", given, keys)

    def forward(self, ctx: Slot, x: Any, training: bool) -> Any:
        xs = x if isinstance(x, list) else [x]
        be = ctx.be
        xs = [np.ascontiguousarray(t) for t in xs]
        n = xs[0].shape[0]
        lengths = tuple(t.shape[1] for t in xs)
        v = ctx.views(("mha", lengths), lambda: self._forward_views(ctx, lengths))
        for i, (roles, t) in enumerate(zip(self.input_roles, xs)):
            if roles == "m":
                continue
            w, b = self._group(ctx, i, roles)
            be.dense_forward(t.reshape(n * lengths[i], -1), w, b, A.LINEAR, 0.0, v["p2"][i])
        mask = self._key_mask(ctx, xs)
        key = self.next_key(training)
        drop = {} if key is None else {"dropout": self.dropout, "dropout_key": key}
        ctx.saved["drop"] = drop
        be.attention_forward(v["q"], v["k"], v["v"], mask, self.use_causal_mask,
                             1.0 / math.sqrt(self.key_dim), v["o"], v["lse"], **drop)
        wo, bo, _, _ = self._w["o"]
        be.dense_forward(v["merged2"], wo, bo, A.LINEAR, 0.0, v["y2"])
        ctx.saved.update(xs=xs, mask=mask)
        return v["y"]

    def backward(self, ctx: Slot, dy: FloatArray) -> Any:
        # the model zeroes the gradients before a pass and calls backward once, so writing
        # them (dW := x.T @ dz, as Dense does) is the accumulation the protocol asks for
        be = ctx.be
        xs, mask = ctx.saved["xs"], ctx.saved["mask"]
        n = xs[0].shape[0]
        lengths = tuple(t.shape[1] for t in xs)
        v = ctx.views(("mha", lengths), lambda: self._forward_views(ctx, lengths))
        g = ctx.views(("mha-back", lengths), lambda: self._backward_views(ctx, lengths))
        dy2 = np.ascontiguousarray(dy).reshape(g["dz2"].shape)
        wo, _, dwo, dbo = self._w["o"]
        be.dense_backward(v["merged2"], wo, dy2, dy2, A.LINEAR, 0.0, g["dz2"], dwo, dbo,
                          g["dmerged2"])
        # the gradients of the heads written in place into each input's projection gradient
        be.attention_backward(v["q"], v["k"], v["v"], v["o"], g["do"], v["lse"], mask,
                              self.use_causal_mask, 1.0 / math.sqrt(self.key_dim), g["dq"],
                              g["dk"], g["dv"], **ctx.saved["drop"])
        dxs: list[Optional[FloatArray]] = []
        for i, (roles, t) in enumerate(zip(self.input_roles, xs)):
            target = ctx.dx_target(i)
            if roles == "m":                   # a mask has no gradient
                d = ctx.rows_buffer(f"dx{i}", t.shape[1:]) if target is None else target
                d[...] = 0
                dxs.append(d)
                continue
            w, _ = self._group(ctx, i, roles)
            dp2 = g["dp2"][i]
            if len(roles) == 1:
                _, _, dw, db = self._w[roles]
            else:
                dw = ctx.buffer(f"dw{i}", w.shape)
                db = ctx.buffer(f"db{i}", (w.shape[1],))
            dx = None if target is None else target.reshape(n * lengths[i], -1)
            be.dense_backward(t.reshape(n * lengths[i], -1), w, dp2, dp2, A.LINEAR, 0.0, dp2,
                              dw, db, dx)
            if len(roles) > 1:
                col = 0
                for r in roles:
                    _, _, dwr, dbr = self._w[r]
                    dwr[...] = dw[:, col:col + dwr.shape[1]]
                    dbr[...] = db[col:col + dwr.shape[1]]
                    col += dwr.shape[1]
            dxs.append(target)
        return dxs if len(dxs) > 1 else dxs[0]

    def _heads(self, p: FloatArray, roles: str) -> dict[str, FloatArray]:
        """Views (batch, heads, steps, width) of each role's heads in ``p`` (batch, steps, the
        roles' heads side by side): the attention kernels read and write them in place, with no
        copy to a (batch, heads, steps, width) array and back."""
        n, L = p.shape[0], p.shape[1]
        H, views, col = self.num_heads, {}, 0
        for r in roles:
            D = self.value_dim if r in "vo" else self.key_dim
            views[r] = p[:, :, col:col + H * D].reshape(n, L, H, D).transpose(0, 2, 1, 3)
            col += H * D
        return views

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "key_dim": self.key_dim,
                       "value_dim": self.value_dim, "use_bias": self.use_bias,
                       "output_shape": self._output_dim, "dropout": self.dropout})
        for key in ("kernel_initializer", "bias_initializer", "kernel_regularizer",
                    "bias_regularizer"):
            value = getattr(self, key)
            if value is not None:
                config[key] = _serialize(value)
        config["call"] = {"input_roles": list(self.input_roles),
                          "use_causal_mask": self.use_causal_mask}
        if self.seed is not None:
            config["seed"] = self.seed
        self._stream_config(config)
        return config

    def __repr__(self) -> str:
        return f"MultiHeadAttention(num_heads={self.num_heads}, key_dim={self.key_dim})"
