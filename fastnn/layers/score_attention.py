"""Keras' ``Attention`` (Luong et al., 2015) and ``AdditiveAttention`` (Bahdanau et al., 2015):
attention of queries over a value sequence without projections, as Keras 3 computes it.

    dot:       S = c (q k^T)                            c = scale (a weight) or 1
    concat:    S = w sum_d tanh(c (q_i + k_j))           w = concat_score_weight
    additive:  S = sum_d s_d tanh(q_i + k_j)             s = scale (a weight per feature) or 1
    A = softmax_j(S - 1e9 where key j is hidden from query i)    O = A v,   O_i = 0 where the
    query is masked

Key j is hidden by the value mask (False) and, with ``use_causal_mask``, when j > i. As in Keras
a hidden score is lowered by 1e9, not removed: a query that sees no key averages the values
with the softmax of its unmasked scores. The products run on the batched GEMM, the softmax and
the tanh scores (recomputed in the backward, never stored as (Tq, Tv, dim)) on the kernels of
fastnn/_ext/_keras_attention.pyx; the dot scores take one kernel call for the forward and one
for the backward (dot_attention_forward/backward: each sample's products, masks, softmax and
dropout back to back, threads over whole samples). The NumPy twin is
fastnn/backends/numpy_keras_attention.py.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from fastnn import _validation as V
from fastnn.layers.attention import DropoutStream, check_key_value_steps
from fastnn.layers.base import FloatArray, Layer, Slot, WeightSpec, mask_input_and_steps
from fastnn.layers.core import _initializer

_ROLES = ("q", "v", "k", "qm", "vm")
_ROLE_NAMES = {"q": "query", "v": "value", "k": "key", "qm": "query_mask", "vm": "value_mask"}


def _check_roles(roles: Any) -> list[str]:
    ok = (isinstance(roles, (list, tuple)) and len(roles) >= 2 and list(roles[:2]) == ["q", "v"]
          and all(isinstance(r, str) and r in _ROLES for r in roles)
          and len(set(roles)) == len(roles)
          and [r for r in _ROLES if r in roles] == list(roles))
    if not ok:
        raise ValueError(f"input_roles must be 'q', 'v', then any of 'k', 'qm', 'vm' in that "
                         f"order. Received: input_roles={V._describe(roles)}")
    return list(roles)


class _ScoreAttention(DropoutStream, Layer):
    """What Attention and AdditiveAttention share: the call, the shapes, masks, softmax and the
    product with the values; the subclasses give the scores."""

    n_inputs = None
    uses_mask = True

    def __init__(self, use_scale: bool, dropout: float, seed: Any, name: Optional[str],
                 trainable: bool, call: Any) -> None:
        super().__init__(name=name, trainable=trainable)
        self.use_scale = V.check_bool("use_scale", use_scale)
        self._init_stream(dropout, seed)
        self.input_roles = ["q", "v"]
        self.return_attention_scores = False
        self.use_causal_mask = False
        self._called = False
        if call is not None:
            if not isinstance(call, dict):
                raise ValueError(f"call must be a dict (a model file's record of the call). "
                                 f"Received: call={V._describe(call)}")
            self.set_call(**call)

    # ------------------------------------------------------------------ the call
    def __call__(self, inputs: Any, mask: Any = None, return_attention_scores: bool = False,
                 use_causal_mask: bool = False, training: Any = None) -> Any:
        """``layer([query, value(, key)], mask=[query_mask, value_mask],
        return_attention_scores=False, use_causal_mask=False)`` on symbolic tensors; masks
        are tensors of shape (batch, Tq) and (batch, Tv) (nonzero: take part) or None."""
        name = type(self).__name__
        if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3:
            raise ValueError(f"{name} must be called on a list [query, value] or [query, "
                             f"value, key]. Received: inputs={V._describe(inputs)}")
        tensors, roles = list(inputs), ["q", "v", "k"][:len(inputs)]
        if mask is not None:
            if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
                raise ValueError(f"{name}: mask must be a list [query_mask, value_mask]. "
                                 f"Received: mask={V._describe(mask)}")
            for role, m in zip(("qm", "vm"), mask[:2]):
                if m is not None:
                    tensors.append(m)
                    roles.append(role)
        scores = V.check_bool("return_attention_scores", return_attention_scores)
        causal = V.check_bool("use_causal_mask", use_causal_mask)
        if self._called and (roles, scores, causal) != (
                self.input_roles, self.return_attention_scores, self.use_causal_mask):
            raise ValueError(f"{self.name} was called with inputs {self.input_roles}, "
                             f"return_attention_scores={self.return_attention_scores}, "
                             f"use_causal_mask={self.use_causal_mask}; a second call must "
                             f"match. Received: inputs {roles}, return_attention_scores="
                             f"{scores}, use_causal_mask={causal}")
        self.set_call(roles, scores, causal)
        self._called = True
        return super().__call__(tensors)

    def set_call(self, input_roles: Any, return_attention_scores: bool = False,
                 use_causal_mask: bool = False) -> None:
        """Fix what the inputs are (``input_roles``: "q", "v", then any of "k", "qm", "vm"),
        whether the scores are a second output and whether the mask is causal."""
        self.input_roles = _check_roles(input_roles)
        self.return_attention_scores = V.check_bool("return_attention_scores",
                                                    return_attention_scores)
        self.use_causal_mask = V.check_bool("use_causal_mask", use_causal_mask)

    def expect_inputs(self, count: int) -> None:
        if count != len(self.input_roles):
            raise ValueError(f"{self.name} takes {len(self.input_roles)} inputs (roles "
                             f"{self.input_roles}). Received: {count} inputs")

    def _shapes(self, input_shape: Any) -> dict[str, Any]:
        if not isinstance(input_shape, list) or len(input_shape) != len(self.input_roles):
            raise ValueError(f"{self.name} takes {len(self.input_roles)} inputs (roles "
                             f"{self.input_roles}). Received: input shapes {input_shape}")
        s = dict(zip(self.input_roles, input_shape))
        s.setdefault("k", s["v"])
        for r in ("q", "v", "k"):
            if not isinstance(s[r], tuple) or len(s[r]) != 2:
                raise ValueError(f"{self.name}: {_ROLE_NAMES[r]} must be (batch, steps, "
                                 f"features). Received: {_ROLE_NAMES[r]} with shape "
                                 f"(None, {', '.join(map(str, s[r]))})")
        check_key_value_steps(self.name, s["k"], s["v"])
        if s["q"][1] != s["k"][1]:
            raise ValueError(f"{self.name}: query and key must have the same number of "
                             f"features. Received: query shape (None, *{s['q']}), key shape "
                             f"(None, *{s['k']})")
        for r, steps in (("qm", s["q"][0]), ("vm", s["v"][0])):
            if r in s and tuple(s[r]) != (steps,):
                raise ValueError(f"{self.name}: {_ROLE_NAMES[r]} must have shape (batch, "
                                 f"{steps}). Received: {_ROLE_NAMES[r]} with shape (None, "
                                 f"{', '.join(map(str, s[r]))})")
        return s

    def compute_output_shape(self, input_shape: Any) -> Any:
        s = self._shapes(input_shape)
        out = (s["q"][0], s["v"][1])
        return [out, (s["q"][0], s["v"][0])] if self.return_attention_scores else out

    def output_masked(self, masked: Any) -> bool:
        """The output keeps the query's step mask (from Embedding(mask_zero=True) or Masking);
        the scores have none. (A query_mask given as a tensor zeroes the output's padded rows
        but is not passed on as a step mask, unlike Keras' _keras_mask.)"""
        first = masked[0] if isinstance(masked, list) else masked
        return bool(first)

    def compute_mask(self, ctx: Slot, x: Any, mask: Any) -> Any:
        q = mask[0] if isinstance(mask, list) else mask
        return [q, None] if self.return_attention_scores else q

    # ------------------------------------------------------------------ compute
    def _masks(self, ctx: Slot, xs: dict[str, Any]) -> tuple[Any, Any]:
        """The query mask (rows, Tq) bool and the value mask (rows, Tv) uint8, or None: the
        mask inputs (nonzero: take part) and the step masks of the query and value inputs."""
        given = ctx.mask if isinstance(ctx.mask, list) else [None] * len(self.input_roles)
        steps = dict(zip(self.input_roles, given))
        q, v = (mask_input_and_steps(ctx, tensor, xs.get(tensor), [steps.get(role)])
                for tensor, role in (("qm", "q"), ("vm", "v")))
        if v is None:
            return q, None
        v8 = ctx.rows_buffer("vm8", v.shape[1:], dtype=np.uint8)
        v8[...] = v
        return q, v8

    def forward(self, ctx: Slot, x: Any, training: bool) -> Any:
        be = ctx.be
        xs = dict(zip(self.input_roles, x))
        q, v = np.ascontiguousarray(xs["q"]), np.ascontiguousarray(xs["v"])
        k = np.ascontiguousarray(xs["k"]) if "k" in xs else v
        qmask, vmask = self._masks(ctx, xs)
        Tq, Tv = q.shape[1], v.shape[1]
        if self._fused(q, k, v):
            return self._fused_forward(ctx, q, k, v, qmask, vmask, training)
        S = ctx.rows_buffer("scores", (Tq, Tv))
        self._scores(ctx, q, k, S)
        A = ctx.rows_buffer("weights", (Tq, Tv))
        be.masked_softmax(S, vmask, self.use_causal_mask, A)
        key = self.next_key(training)
        if key is not None:         # Keras: dropout on the weights, which are also the scores
            dropped = ctx.rows_buffer("dropped", (Tq, Tv))
            be.weights_dropout(A, self.dropout, key, dropped)
            ctx.saved.update(key=key, A0=A)
            A = dropped
        else:
            ctx.saved.update(key=None, A0=A)
        y = ctx.rows_buffer("y", (Tq, v.shape[2]))
        be.batched_matmul(A, v, y)
        if qmask is not None:
            y[~qmask] = 0
        ctx.saved.update(q=q, k=k, v=v, A=A, qmask=qmask, fused=False)
        return [y, A] if self.return_attention_scores else y

    def _fused(self, q: Any, k: Any, v: Any) -> bool:
        """Whether the call runs on the one-call kernels (dot_attention_forward/backward)."""
        return False

    def _scale(self) -> float:
        """The scalar scale of the dot scores (the layers on the one-call kernels give it)."""
        raise NotImplementedError

    def _fused_forward(self, ctx: Slot, q: Any, k: Any, v: Any, qmask: Any, vmask: Any,
                       training: bool) -> Any:
        """The dot scores' forward in one kernel call: the scores, masks, softmax, dropout and
        the product with the values of each sample back to back."""
        Tq, Tv = q.shape[1], v.shape[1]
        A0 = ctx.rows_buffer("weights", (Tq, Tv))
        raw = ctx.rows_buffer("raw", (Tq, Tv)) if self.use_scale else A0
        key = self.next_key(training)
        A = A0 if key is None else ctx.rows_buffer("dropped", (Tq, Tv))
        rate = 0.0 if key is None else self.dropout
        qm8 = None if qmask is None else np.ascontiguousarray(qmask).view(np.uint8)
        y = ctx.rows_buffer("y", (Tq, v.shape[2]))
        ctx.be.dot_attention_forward(q, k, v, self._scale(), self.use_scale, vmask,
                                     self.use_causal_mask, qm8, rate, key or 0, raw, A0, A, y)
        ctx.saved.update(q=q, k=k, v=v, A=A, A0=A0, raw=raw, key=key, rate=rate, qmask=qm8,
                         fused=True)
        return [y, A] if self.return_attention_scores else y

    def _fused_backward(self, ctx: Slot, dys: list[Any]) -> list[Any]:
        q, k, v, A, A0, raw, key, rate, qm8 = (ctx.saved[n] for n in (
            "q", "k", "v", "A", "A0", "raw", "key", "rate", "qmask"))
        value_is_key = "k" not in self.input_roles
        dO = None if qm8 is None else ctx.rows_buffer("dO", dys[0].shape[1:])
        dA = ctx.rows_buffer("dA", A.shape[1:])
        dq = self._written_in(ctx, "q", q)
        dk = None if value_is_key else self._written_in(ctx, "k", k)
        dv = self._written_in(ctx, "v", v)
        parts = ctx.rows_buffer("dscale", (), dtype=np.float64) if self.use_scale else None
        dscores = np.ascontiguousarray(dys[1]) if self.return_attention_scores else None
        ctx.be.dot_attention_backward(q, k, v, self._scale(), self.use_scale, qm8, rate,
                                      key or 0, raw, A0, A,
                                      np.ascontiguousarray(dys[0]), dscores, dA, dO, dq, dk, dv,
                                      parts)
        if parts is not None:
            self._grads[0] += parts.sum()
        return [dq, dv, dv if dk is None else dk]

    def _written_in(self, ctx: Slot, role: str, x: Any) -> Any:
        """Where the kernel writes the gradient of input ``role`` (shaped as ``x``): the
        engine's target when it is a C-contiguous array of that shape, else a slot buffer."""
        target = ctx.dx_target(self.input_roles.index(role))
        if (target is not None and target.shape == x.shape and target.dtype == x.dtype
                and target.flags.c_contiguous):
            return target
        return ctx.rows_buffer("d" + role, x.shape[1:])

    def backward(self, ctx: Slot, dy: Any) -> list[FloatArray]:
        be = ctx.be
        dys = dy if isinstance(dy, list) else [dy]
        if ctx.saved["fused"]:
            dq, dv, dk = self._fused_backward(ctx, dys)
            return self._input_grads(ctx, {"q": dq, "v": dv, "k": dk})
        q, k, v, A, qmask = (ctx.saved[key] for key in ("q", "k", "v", "A", "qmask"))
        dO = ctx.rows_buffer("dO", dys[0].shape[1:])
        dO[...] = dys[0]
        if qmask is not None:
            dO[~qmask] = 0
        dA = ctx.rows_buffer("dA", A.shape[1:])
        be.batched_matmul(dO, v, dA, trans_b=True)               # dA = dO v^T
        if self.return_attention_scores:
            dA += dys[1]
        dv = ctx.rows_buffer("dv", v.shape[1:])
        be.batched_matmul(A, dO, dv, trans_a=True)               # dv = A^T dO
        if ctx.saved["key"] is not None:                         # A = A0 Z: dA0 = dA Z
            be.weights_dropout(dA, self.dropout, ctx.saved["key"], dA)
            A = ctx.saved["A0"]
        dS = ctx.rows_buffer("dS", A.shape[1:])
        be.softmax_backward(A.reshape(-1, A.shape[2]), dA.reshape(-1, A.shape[2]),
                            dS.reshape(-1, A.shape[2]))
        dq = ctx.rows_buffer("dq", q.shape[1:])
        dk = ctx.rows_buffer("dk", k.shape[1:])
        self._scores_backward(ctx, q, k, dS, dq, dk)
        grads = {"q": dq, "v": dv, "k": dk}
        if "k" not in self.input_roles:                          # the value is the key too
            dv += dk
        return self._input_grads(ctx, grads)

    def _input_grads(self, ctx: Slot, grads: dict[str, Any]) -> list[FloatArray]:
        """The gradients of the inputs in their order (zeros for the masks), written where the
        engine wants them."""
        dxs = []
        for i, role in enumerate(self.input_roles):
            target = ctx.dx_target(i)
            if role in ("qm", "vm"):                             # a mask has no gradient
                d = ctx.rows_buffer(f"dx{i}", self.input_shape[i]) if target is None else target
                d[...] = 0
                dxs.append(d)
            elif target is not None:
                if target is not grads[role]:
                    target[...] = grads[role]
                dxs.append(target)
            else:
                dxs.append(grads[role])
        return dxs

    def _scores(self, ctx: Slot, q: Any, k: Any, S: Any) -> None:
        raise NotImplementedError

    def _scores_backward(self, ctx: Slot, q: Any, k: Any, dS: Any, dq: Any, dk: Any) -> None:
        raise NotImplementedError

    @staticmethod
    def _filled(ctx: Slot, q: Any, value: Any) -> Any:
        """A (dim,) buffer of the slot holding ``value`` (the additive kernels' outer weights
        when the layer has one scalar, or none)."""
        buf = ctx.buffer("outer", (q.shape[2],))
        buf.fill(value)
        return buf

    def _additive(self, ctx: Slot, q: Any, k: Any, inner: float, outer: Any, S: Any) -> None:
        ctx.be.additive_scores(q, k, inner, outer, S)

    def _additive_backward(self, ctx: Slot, q: Any, k: Any, inner: float, outer: Any,
                           dS: Any, dq: Any, dk: Any) -> tuple[Any, Any]:
        """The additive scores' backward; returns d(outer) (D,) and d(inner), the samples'
        parts added in sample order."""
        douter = ctx.rows_buffer("douter", (q.shape[2],))
        dinner = ctx.rows_buffer("dinner", ())
        ctx.be.additive_scores_backward(q, k, inner, outer, dS, dq, dk, douter, dinner)
        return douter.sum(axis=0), dinner.sum()

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "use_scale": self.use_scale, "dropout": self.dropout,
                  "seed": self.seed}
        config["call"] = {"input_roles": list(self.input_roles),
                          "return_attention_scores": self.return_attention_scores,
                          "use_causal_mask": self.use_causal_mask}
        self._stream_config(config)
        return config


class Attention(_ScoreAttention):
    """Dot-product (Luong-style) attention, as Keras' ``Attention``: ``layer([query, value])``
    or ``layer([query, value, key])`` with query (batch, Tq, dim), value (batch, Tv, dv), key
    (batch, Tv, dim) (default: the value) gives (batch, Tq, dv).

    Parameters
    ----------
    use_scale : bool, default False
        Multiply the scores by a learnt scalar ``scale`` (initialised to 1).
    score_mode : {"dot", "concat"}, default "dot"
        "dot": ``S = q k^T``; "concat": ``S = concat_score_weight * sum_d tanh(q_i + k_j)``
        (the scale, when used, inside the tanh), as Keras.
    dropout : float in [0, 1), default 0.0
        In training, the fraction of attention weights (after the softmax) zeroed, the others
        scaled by 1 / (1 - dropout), as Keras; drawn as ``MultiHeadAttention``'s (a
        counter-based stream of ``seed`` and the training passes so far: both backends and
        every thread count draw the same, and a saved model continues the stream).
    seed : int, optional
        Seed of the dropout draws (default: from the model's seed when it is built).
    call : dict, optional
        A model file's record of how the layer was called (``input_roles``,
        ``return_attention_scores``, ``use_causal_mask``); set by the call otherwise.

    Call arguments (Keras'): ``mask=[query_mask, value_mask]`` (tensors (batch, Tq) and
    (batch, Tv), nonzero = take part, either None), ``return_attention_scores=True`` (a second
    output, the weights (batch, Tq, Tv) after masking, softmax and, in training, dropout, as
    Keras returns them), ``use_causal_mask=True``
    (query i sees keys j <= i). Step masks from ``Embedding(mask_zero=True)`` or ``Masking``
    on the query and value count as their masks; the output keeps the query's.

    Weights: ``scale`` () when ``use_scale``, then ``concat_score_weight`` () for "concat".

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> q, v = fnn.Input((1, 2)), fnn.Input((2, 2))
    >>> model = fnn.Model([q, v], fnn.Attention()([q, v]), backend="numpy", dtype="float64")
    >>> model.predict([np.array([[[0.0, 0.0]]]), np.array([[[1.0, 2.0], [3.0, 4.0]]])])
    array([[[2., 3.]]])
    """

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0,
                 seed: Optional[int] = None, name: Optional[str] = None,
                 trainable: bool = True, call: Any = None) -> None:
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"score_mode must be one of {{'dot', 'concat'}}. Received: "
                             f"score_mode={V._describe(score_mode)}")
        self.score_mode = score_mode
        super().__init__(use_scale, dropout, seed, name, trainable, call)

    def weight_specs(self) -> Sequence[WeightSpec]:
        specs = []
        if self.use_scale:
            specs.append(WeightSpec("scale", (), _initializer("initializer", "ones")))
        if self.score_mode == "concat":
            specs.append(WeightSpec("concat_score_weight", (),
                                    _initializer("initializer", "ones")))
        return specs

    def _scale(self) -> float:
        return float(self._weights[0]) if self.use_scale else 1.0

    def _fused(self, q: Any, k: Any, v: Any) -> bool:
        return self.score_mode == "dot" and min(*q.shape, *v.shape, k.shape[2]) > 0

    def _scores(self, ctx: Slot, q: Any, k: Any, S: Any) -> None:
        if self.score_mode == "dot":
            raw = ctx.rows_buffer("raw", S.shape[1:])
            ctx.be.batched_matmul(q, k, raw, trans_b=True)
            if self.use_scale:
                np.multiply(raw, self._weights[0], out=S)
            else:
                S[...] = raw
            ctx.saved["raw"] = raw
        else:
            w = self._weights[-1]
            self._additive(ctx, q, k, self._scale(), self._filled(ctx, q, w), S)

    def _scores_backward(self, ctx: Slot, q: Any, k: Any, dS: Any, dq: Any, dk: Any) -> None:
        c = self._scale()
        if self.score_mode == "dot":
            if self.use_scale:
                self._grads[0] += np.sum(dS * ctx.saved["raw"])
            ctx.be.batched_matmul(dS, k, dq, alpha=c)                    # dq = c dS k
            ctx.be.batched_matmul(dS, q, dk, trans_a=True, alpha=c)      # dk = c dS^T q
            return
        w = self._weights[-1]
        douter, dinner = self._additive_backward(ctx, q, k, c, self._filled(ctx, q, w), dS,
                                                 dq, dk)
        self._grads[-1] += douter.sum()
        if self.use_scale:
            self._grads[0] += dinner

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["score_mode"] = self.score_mode
        return config

    def __repr__(self) -> str:
        return f"Attention(use_scale={self.use_scale}, score_mode={self.score_mode!r})"


class AdditiveAttention(_ScoreAttention):
    """Additive (Bahdanau-style) attention, as Keras' ``AdditiveAttention``: scores
    ``S[i, j] = sum_d scale_d tanh(q[i, d] + k[j, d])``, then as ``Attention`` (the same call,
    masks, causal mask and attention scores).

    Parameters
    ----------
    use_scale : bool, default True
        Learn ``scale`` (dim,) (Glorot uniform, as Keras); without it the scale is 1.
    dropout, seed, call
        As ``Attention``'s.

    Examples
    --------
    >>> import fastnn as fnn
    >>> q, v = fnn.Input((3, 4)), fnn.Input((5, 4))
    >>> layer = fnn.AdditiveAttention()
    >>> model = fnn.Model([q, v], layer([q, v]), backend="numpy")
    >>> model.output_shape, [w.shape for w in layer.get_weights()]
    ((3, 4), [(4,)])
    """

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, seed: Optional[int] = None,
                 name: Optional[str] = None, trainable: bool = True, call: Any = None) -> None:
        super().__init__(use_scale, dropout, seed, name, trainable, call)

    def weight_specs(self) -> Sequence[WeightSpec]:
        if not self.use_scale:
            return []
        dim = self._shapes(self.input_shape)["q"][1]
        return [WeightSpec("scale", (dim,), _initializer("initializer", "glorot_uniform"))]

    def _outer(self, ctx: Slot, q: Any) -> Any:
        return self._weights[0] if self.use_scale else self._filled(ctx, q, 1.0)

    def _scores(self, ctx: Slot, q: Any, k: Any, S: Any) -> None:
        self._additive(ctx, q, k, 1.0, self._outer(ctx, q), S)

    def _scores_backward(self, ctx: Slot, q: Any, k: Any, dS: Any, dq: Any, dk: Any) -> None:
        douter, _ = self._additive_backward(ctx, q, k, 1.0, self._outer(ctx, q), dS, dq, dk)
        if self.use_scale:
            self._grads[0] += douter

    def __repr__(self) -> str:
        return f"AdditiveAttention(use_scale={self.use_scale})"
