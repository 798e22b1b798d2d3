"""``model.generate``: autoregressive sampling through the key/value cache of ``Decoder``.

The prompt is fed one position at a time (each position's attention keys and values enter the
caches), then each new token is chosen from the model's output at the last position and fed
back. Choosing: temperature 0 takes the most likely token (argmax; the first on ties);
otherwise logits / temperature (for a softmax output the log-probabilities stand for the
logits), optionally kept to the ``top_k`` largest, through a softmax, sampled by inverting the
cumulative distribution with one uniform number per row from ``np.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from fastnn import _validation as V
from fastnn import activations as A
from fastnn.models.decoding import Decoder


def _prompt(prompt: Any, vocab: int, padding: bool = False) -> Any:
    arr = np.asarray(prompt)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"prompt must be an integer array of token ids (n, p). Received: "
                        f"prompt with dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"prompt must be a 2-D array (n, p) with n >= 1 and p >= 1. "
                         f"Received: prompt with shape {arr.shape}")
    bad = (arr < 0) | (arr >= vocab)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"prompt must hold ids in [0, {vocab}) (the Embedding's input_dim). "
                         f"Received: prompt[{where[0]}, {where[1]}]={int(arr[where])}")
    if padding and (arr == 0).any():
        where = tuple(int(i) for i in np.argwhere(arr == 0)[0])
        raise ValueError(f"prompt holds id 0, the padding of an Embedding with mask_zero=True, "
                         f"which generation does not skip (each prompt is read whole: give "
                         f"prompts of one length, or generate them one at a time). Received: "
                         f"prompt[{where[0]}, {where[1]}]=0")
    return arr.astype(np.int64)


def _arguments(max_new_tokens: Any, temperature: Any, top_k: Any, end_id: Any,
               vocab: int) -> tuple[int, float, Optional[int], Optional[int]]:
    new = V.check_int("max_new_tokens", max_new_tokens)
    if new < 0:
        raise ValueError(f"max_new_tokens must be >= 0. Received: max_new_tokens={new}")
    temp = V.check_float("temperature", temperature, low=0.0)
    if not math.isfinite(temp):
        raise ValueError(f"temperature must be finite. Received: temperature={temp}")
    k = None if top_k is None else V.check_int("top_k", top_k)
    if k is not None and k < 1:
        raise ValueError(f"top_k must be a positive integer or None. Received: top_k={k}")
    end = None if end_id is None else V.check_int("end_id", end_id)
    if end is not None and not 0 <= end < vocab:
        raise ValueError(f"end_id must be a token id in [0, {vocab}). Received: end_id={end}")
    return new, temp, k, end


def _choose(y: Any, logits_given: bool, temperature: float, top_k: Optional[int],
            rng: Any, padding: bool = False) -> Any:
    """The next token of each row from the outputs y (n, vocab); with ``padding`` (the
    Embedding's mask_zero) never id 0, the padding."""
    if temperature == 0.0:
        return np.argmax(y[:, 1:], axis=1) + 1 if padding else np.argmax(y, axis=1)
    z = y.astype(np.float64)
    if not logits_given:
        with np.errstate(divide="ignore"):
            z = np.log(z)
    if padding:
        z[:, 0] = -np.inf
    z /= temperature
    vocab = z.shape[1]
    if top_k is not None and top_k < vocab:
        kth = np.partition(z, vocab - top_k, axis=1)[:, vocab - top_k, None]
        z[z < kth] = -np.inf
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    u = rng.random(y.shape[0])[:, None] * cdf[:, -1:]
    return np.minimum(np.argmax(cdf > u, axis=1), vocab - 1)


def generate(model: Any, prompt: Any, max_new_tokens: int, temperature: float = 1.0,
             top_k: Optional[int] = None, seed: Any = None,
             end_id: Optional[int] = None) -> Any:
    """See ``BaseModel.generate``."""
    if not getattr(model, "built", False):
        raise ValueError("generate needs a built model")
    act = model.final_activation
    if act not in (A.SOFTMAX, A.LINEAR):
        raise ValueError(f"generate samples from a softmax output (probabilities) or a linear "
                         f"one (logits). Received: a model whose output activation is "
                         f"{A.NAMES[act]!r}")
    out_shape = model.output_shape
    vocab_out = out_shape[-1] if isinstance(out_shape, tuple) else 0
    new, temp, k, end = _arguments(max_new_tokens, temperature, top_k, end_id, vocab_out)
    rng = np.random.default_rng(seed)
    vocab, padding = _vocab(model)
    ids = _prompt(prompt, vocab, padding)
    if new == 0:
        return ids
    if vocab_out > vocab:
        raise ValueError(f"the model outputs {vocab_out} classes, more than its Embedding's "
                         f"{vocab} ids: a sampled token could not be fed back")
    n, p = ids.shape
    dec = _decoder(model, n, p + new - 1)     # the last token is never fed back
    try:
        return _run(dec, ids, new, act == A.LINEAR, temp, k, end, rng, padding)
    finally:
        _decoders(model)[(n, p + new - 1)] = dec


def _decoders(model: Any) -> dict[tuple[int, int], Decoder]:
    """The model's decoders kept between calls, by (batch, positions): making one costs more
    than generating a few tokens with it. A call takes its decoder out while it runs (so
    calls from several threads never share one) and puts it back after."""
    cache = model.__dict__.get("_decoders")
    if cache is None:
        cache = model.__dict__["_decoders"] = {}
    return cache


def _decoder(model: Any, n: int, length: int) -> Decoder:
    cache = _decoders(model)
    dec = cache.pop((n, length), None)
    if dec is None:
        if len(cache) >= 4:
            cache.clear()
        return Decoder(model, n, length)
    dec.reset()                 # the current weights
    return dec


def _run(dec: Decoder, ids: Any, new: int, logits_given: bool, temp: float,
         k: Optional[int], end: Optional[int], rng: Any, padding: bool = False) -> Any:
    n, p = ids.shape
    out = np.empty((n, p + new), np.int64)
    out[:, :p] = ids
    for t in range(p - 1):
        dec.step(ids[:, t])
    done = np.zeros(n, bool)
    for i in range(new):
        nxt = _choose(dec.step(out[:, p - 1 + i]), logits_given, temp, k, rng, padding)
        if end is not None:
            nxt[done] = end
            done |= nxt == end
        out[:, p + i] = nxt
        if end is not None and done.all():
            out[:, p + i + 1:] = end
            break
    return out


def _vocab(model: Any) -> tuple[int, bool]:
    """The input_dim of the Embedding reading the model's ids (ValueError if there is none),
    and its mask_zero."""
    from fastnn.layers import Embedding
    nodes = model._nodes
    first = [node.layer for node in nodes[1:] if 0 in node.inputs]
    if model._n_inputs != 1 or len(first) != 1 or not isinstance(first[0], Embedding):
        raise ValueError("generation needs a model with one input of token ids that goes into "
                         "one Embedding layer")
    return int(first[0].input_dim), bool(first[0].mask_zero)
