"""Generation with a key/value cache: ``Decoder`` runs a model one position at a time.

A model that maps token ids (n, L) to next-token probabilities or logits (n, L, vocab) is
causal when every position sees only itself and the positions before it. Then the output at
position t depends on the tokens 0..t alone, and attention needs only the keys and values of
the earlier positions, which a cache keeps: each new token costs one position's work instead
of a forward pass over the whole prefix.

``Decoder`` walks the model's graph once, when it is made, and binds each layer to a *decode
op* from a registry keyed by layer class (fastnn/models/decode_ops.py): a small object that
owns its output buffer (batch, width) and computes position t from its inputs'. Per-position
layers (Embedding, Dense, LayerNormalization, activations, Add) run a backend kernel on the
batch's rows; the position layers add row t of their table; Dropout is the identity;
``MultiHeadAttention`` (causal self-attention) and ``TransformerBlock`` (causal) append the new
key and value to caches (batch, heads, max_length, key_dim) and attend with the backend's
``attention_decode``; on the fast backend a TransformerBlock is one compiled call per position
(``BlockStep``). Any other layer is refused (ValueError naming it) when the Decoder is made.
A prompt is fed through the same path, one position at a time.

Weights: the ops read the model's weight arrays in place (views), except an attention
layer's query, key and value kernels and biases, which are copied side by side (one product)
when the Decoder is made and at ``reset()``. After changing the weights (training,
``set_weights``), call ``reset()`` before decoding on: the copies are refreshed then.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn import _validation as V
from fastnn.layers import Embedding, PositionalEmbedding, SinePositionEncoding
from fastnn.models.decode_ops import _IdentityOp, decode_op


class Decoder:
    """Runs ``model`` one position at a time for ``batch`` rows, up to ``max_length``
    positions, keeping each attention layer's keys and values.

    ``step(ids)`` feeds the token ids (batch,) of the next position and returns the model's
    output there (batch, vocab): next-token probabilities after a softmax, logits otherwise.
    ``reset()`` starts again at position 0 (and refreshes the weight copies, see the module
    docstring). ``position`` is the
    next position to feed.

    Raises ValueError when the model cannot be decoded this way (several inputs or outputs, an
    input that is not a sequence of ids read by an Embedding, a layer without a decode op or
    not causal: named), or ``max_length`` is past what the position layers hold (a
    ``PositionalEmbedding`` its ``sequence_length``; a ``SinePositionEncoding`` extends; a
    model without a position layer its input length).
    """

    def __init__(self, model: Any, batch: int, max_length: int) -> None:
        if not getattr(model, "built", False):
            raise ValueError(f"generation needs a built model. Received: {model!r:.80}")
        self.model = model
        self.batch = V.check_positive_int("batch", batch)
        self.max_length = V.check_positive_int("max_length", max_length)
        self.be, self.dtype = model._be, model.dtype
        nodes = model._nodes
        shape = model.input_shape
        if model._n_inputs != 1 or len(model._outputs) != 1 or not isinstance(shape, tuple) \
                or len(shape) != 1:
            raise ValueError(f"generation needs a model with one input of token ids (n, L) "
                             f"and one output. Received: input shape {shape}, "
                             f"{len(model._outputs)} output(s)")
        first = [n for n in nodes[1:] if 0 in n.inputs]
        if len(first) != 1 or not isinstance(first[0].layer, Embedding):
            raise ValueError("generation needs a model whose token ids go into one Embedding "
                             "layer")
        self.vocab = first[0].layer.input_dim
        positional = [n.layer for n in nodes if isinstance(n.layer, (PositionalEmbedding,
                                                                     SinePositionEncoding))]
        if not positional and self.max_length > shape[0]:
            raise ValueError(f"the model takes {shape[0]} positions and has no position layer "
                             f"that extends. Received: max_length={self.max_length}")
        for node in nodes[1:]:
            layer = node.layer
            if decode_op(layer) is None or not (isinstance(node.shape, tuple) and
                                                len(node.shape) == 2 and
                                                node.shape[0] == shape[0]):
                raise ValueError(f"generation cannot run layer {layer.name} "
                                 f"({type(layer).__name__}) one position at a time (it "
                                 f"decodes Embedding, position, Dense, LayerNormalization, "
                                 f"activation, Dropout, Add, causal MultiHeadAttention and "
                                 f"causal TransformerBlock layers)")

        self.ids = np.zeros(self.batch, np.int64)
        buffers: dict[int, Any] = {0: self.ids}
        self._ops = []
        for node in nodes[1:]:
            op = decode_op(node.layer)(node.layer, [buffers[i] for i in node.inputs], self)
            buffers[node.index] = op.out
            if not isinstance(op, _IdentityOp):
                self._ops.append(op)
        self._calls = [op.call for op in self._ops]
        self._out = buffers[model._outputs[0]]
        self.position = 0

    def reset(self) -> None:
        """Back to position 0, with the model's current weights (the copies refreshed)."""
        for op in self._ops:
            op.load()
        self.position = 0

    def step(self, ids: Any) -> Any:
        """The output at the next position (batch, vocab) for its token ids (batch,)."""
        t = self.position
        if t >= self.max_length:
            raise ValueError(f"the decoder holds {self.max_length} positions (max_length): "
                             f"reset() it or make one with a larger max_length")
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu" or ids.shape != (self.batch,):
            raise TypeError(f"ids must be an integer array of shape ({self.batch},). Received: "
                            f"dtype {ids.dtype}, shape {ids.shape}")
        self.ids[...] = ids
        for call in self._calls:
            call(t)
        self.position = t + 1
        return self._out.copy()
