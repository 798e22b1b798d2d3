"""Batch inference on Dask: ``predict(model, X)`` over a dask array chunked along its rows.

The model travels as fastnn's own file format, architecture and weights only
(``fastnn.io.model_to_bytes(model, include_optimizer=False)``: a JSON header and raw arrays,
never a pickle of the model object), and enters the graph once: scattered to the cluster when a
distributed client is active, otherwise as one literal key. Every block is a call of the
module-level ``_predict_block`` (pickled by reference), which rebuilds the model from those
bytes through the checking loader (``fastnn.io.model_from_bytes``) the first time its process
meets them, and keeps it in a small cache keyed by their SHA-256: a model loads once per worker
process, not once per block. ``model.predict`` is safe to call from several threads at once,
so a worker's threads share the cached model (each thread gets its own workspace).

Needs Dask: ``pip install "fastnn[dask]"`` (``dask[array,distributed]``, which keeps Dask and
distributed at one release).

Examples
--------
>>> import dask.array as da
>>> import numpy as np
>>> import fastnn as fnn
>>> model = fnn.Sequential([fnn.Dense(3, activation="softmax")], input_dim=4, seed=0)
>>> X = da.from_array(np.random.default_rng(0).standard_normal((1000, 4)), chunks=250)
>>> p = fnn.dask.predict(model, X)               # lazy: nothing is computed yet
>>> p.shape, p.chunks[0], p.dtype
((1000, 3), (250, 250, 250, 250), dtype('float32'))
>>> bool(np.allclose(p.compute(scheduler="threads"), model.predict(X.compute()), atol=1e-6))
True
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Optional, Union

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.base import get_scheduler
except ImportError as exc:         # the optional extra is missing
    raise ImportError('fastnn.dask needs Dask: pip install "fastnn[dask]" (which installs '
                      'dask[array,distributed])') from exc

from fastnn import _validation as V
from fastnn.io import model_from_bytes, model_to_bytes
from fastnn.models.base import BaseModel

__all__ = ["predict", "cache_info", "clear_cache"]

# The models a process keeps, most recently used last: enough for a few models predicted side
# by side, bounded so a long-lived worker does not accumulate every model it ever served.
CACHE_SIZE = 4
_cache: OrderedDict[str, BaseModel] = OrderedDict()
_cache_lock = threading.Lock()
_loads = 0


def predict(model: BaseModel, X: Any, batch_size: Optional[int] = None) -> Any:
    """``model.predict`` over a dask array, block by block: lazy, returns a dask array.

    Each block of rows is predicted by ``model.predict(block, batch_size)`` in a worker.
    The model is copied when ``predict`` is called: training it further afterwards does not
    change the result. Compute the result on the client that was active when ``predict`` was
    called (the model was scattered to its cluster).

    Parameters
    ----------
    model : Sequential or Model
        A built fastnn model (compiled or not).
    X : dask.array.Array, or a list of them (one per input of a multi-input model)
        Samples along axis 0, which may have any chunks (unknown sizes too); the other axes are
        the model's input shape, and are rechunked into one chunk if they are split. Several
        inputs must have the same number of rows (their row chunks are aligned). A NumPy
        array (or list) is not distributed: it is predicted here, ``model.predict(X,
        batch_size)``, and the NumPy result returned, as Dask-ML's ``ParallelPostFit`` does.
    batch_size : int, optional
        Passed to ``model.predict`` for every block: the rows computed at a time inside a block.

    Returns
    -------
    dask.array.Array, or a list of them (one per output of a multi-output model)
        The outputs, of shape ``(n, *output_shape)`` in the model's dtype, with ``X``'s row
        chunks. Results equal ``model.predict`` on the whole array to the last few ulps (GEMM
        blocking varies with the row count); when every row chunk (but the last) is a multiple
        of ``batch_size``, they are bitwise those of ``model.predict(X, batch_size)``.

    Raises
    ------
    TypeError
        If ``model`` is not a fastnn model, ``X`` is another dask collection (a DataFrame:
        use ``df.to_dask_array(lengths=True)``) or does not hold real numbers, or
        ``batch_size`` is not an integer.
    ValueError
        If the model is not built, ``X`` does not have the model's input shape, or has no rows
        (or several inputs differ in rows), or ``batch_size`` < 1.
    """
    if not isinstance(model, BaseModel):
        raise TypeError(f"model must be a fastnn model (Sequential or Model). Received: model "
                        f"of type {type(model).__name__}")
    model._check_built("predict")
    if batch_size is not None:
        batch_size = V.check_positive_int("batch_size", batch_size)
    sample_shapes = model.input_shape if isinstance(model.input_shape, list) \
        else [model.input_shape]
    xs = _input_list(X, len(sample_shapes))
    if not any(dask.is_dask_collection(x) for x in xs):
        return model.predict(X, batch_size=batch_size)       # in memory, as Dask-ML does
    names = ["X"] if len(xs) == 1 else [f"X[{i}]" for i in range(len(xs))]
    xs = [_rows_chunked(name, x, shape) for name, x, shape in zip(names, xs, sample_shapes)]
    rows = {x.shape[0] for x in xs if not np.isnan(x.shape[0])}
    if len(rows) > 1:
        raise ValueError(f"the inputs in X must have the same number of samples. Received: "
                         f"{[x.shape[0] for x in xs]}")
    blob = model_to_bytes(model, include_optimizer=False)
    digest = hashlib.sha256(blob).hexdigest()
    # the rows index is shared (dask aligns the inputs' row chunks); every other axis has an
    # index of its own, absent from the result's: one chunk, handed over as is (_only_block)
    inputs: list[Any] = []
    for k, x in enumerate(xs):
        inputs += [x, ("rows",) + tuple(f"in{k}_{j}" for j in range(1, x.ndim))]
    packed = _per_row_block(_predict_block, _block_output_shape(model), model.dtype,
                            "fastnn-predict", _model_in_graph(blob, digest), None, digest, None,
                            batch_size, None, *inputs)
    if not isinstance(model.output_shape, list):
        return packed
    outputs, start = [], 0
    for shape in map(tuple, model.output_shape):
        stop = start + int(np.prod(shape))
        outputs.append(_per_row_block(_output_part, shape, model.dtype, "fastnn-output",
                                      packed, ("rows", "packed"), start, None, stop, None,
                                      shape, None))
        start = stop
    return outputs


def _per_row_block(func: Any, row_shape: tuple[int, ...], dtype: Any, token: str,
                   *args: Any) -> Any:
    """``da.blockwise`` of ``func`` over the blocks of rows of the arrays in ``args`` (pairs of
    an argument and its index, None for a constant): a block of ``(rows, *row_shape)``."""
    index = tuple(f"out{j}" for j in range(len(row_shape)))
    return da.blockwise(func, ("rows",) + index, *args, new_axes=dict(zip(index, row_shape)),
                        concatenate=False, dtype=dtype,
                        meta=np.empty((0,) * (1 + len(row_shape)), dtype), token=token)


def _input_list(X: Any, n_inputs: int) -> list[Any]:
    """X's arrays, one per input, after checking there are as many as the model's inputs and
    that they are all dask arrays or all not dask collections."""
    if n_inputs == 1:
        xs = [X]
    elif not isinstance(X, (list, tuple)) or len(X) != n_inputs:
        got = (f"a {type(X).__name__} of {len(X)}" if isinstance(X, (list, tuple))
               else type(X).__name__)
        raise ValueError(f"X must be a list of {n_inputs} arrays, one per input. Received: "
                         f"{got}")
    else:
        xs = list(X)
    lazy = [dask.is_dask_collection(x) for x in xs]
    for i, x in enumerate(xs):
        if lazy[i] and not isinstance(x, da.Array):
            name = "X" if n_inputs == 1 else f"X[{i}]"
            hint = (": use df.to_dask_array(lengths=True)"
                    if hasattr(x, "to_dask_array") else "")
            raise TypeError(f"{name} must be a dask array (or a NumPy array). Received: {name} "
                            f"of type {type(x).__module__}.{type(x).__name__}{hint}")
    if any(lazy) and not all(lazy):
        raise TypeError(f"X must hold dask arrays only, or NumPy arrays only. Received: "
                        f"{[type(x).__name__ for x in xs]}")
    return xs


def _rows_chunked(name: str, x: Any, sample_shape: tuple[int, ...]) -> Any:
    """x checked against the sample shape, its non-row axes in one chunk each."""
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers. Received: {name} with dtype {x.dtype} "
                        f"(kind {x.dtype.kind!r})")
    if x.ndim != 1 + len(sample_shape) or tuple(x.shape[1:]) != tuple(sample_shape):
        want = ", ".join(map(str, sample_shape))
        hint = (f"; compute its unknown sizes first: {name}.compute_chunk_sizes()"
                if np.isnan(x.shape[1:]).any() else "")
        raise ValueError(f"{name} must have shape (n, {want}), the model's input shape "
                         f"{tuple(sample_shape)} after the rows. Received: {name} with shape "
                         f"{x.shape}{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample. Received: {name} with shape "
                         f"{x.shape}")
    if any(len(c) > 1 for c in x.chunks[1:]):     # one chunk each (see _only_block)
        x = x.rechunk({axis: -1 for axis in range(1, x.ndim)})
    return x


def _block_output_shape(model: BaseModel) -> tuple[int, ...]:
    """The shape of one row of a block's result: the output shape, or with several outputs
    their values side by side (``_output_part`` takes them apart)."""
    if isinstance(model.output_shape, list):
        return (sum(int(np.prod(shape)) for shape in model.output_shape),)
    return tuple(model.output_shape)


def _model_in_graph(blob: bytes, digest: str) -> Any:
    """The model bytes as one node of the graph: a future of the data scattered to the cluster
    when a distributed client is the active scheduler, else a literal key."""
    client = _active_client()
    if client is not None:
        return client.scatter(blob, hash=True)
    return dask.delayed(blob, name=f"fastnn-model-{digest}")


def _active_client() -> Any:
    """The distributed client that ``compute()`` would use now, if any (not an asynchronous
    one: its scatter is a coroutine)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        client = default_client()
    except ValueError:                       # no client
        return None
    if client.asynchronous or get_scheduler() != client.get:
        return None
    return client


def _predict_block(blob: bytes, digest: str, batch_size: Optional[int],
                   *blocks: Any) -> np.ndarray:
    """One block of the result (runs in the workers): the cached model's predict; several
    outputs side by side."""
    model = _cached_model(blob, digest)
    blocks = tuple(_only_block(b) for b in blocks)
    if blocks[0].shape[0] == 0:              # a dask array may have empty chunks
        return np.empty((0, *_block_output_shape(model)), model.dtype)
    out: Union[np.ndarray, list[np.ndarray]] = model.predict(
        blocks[0] if len(blocks) == 1 else list(blocks), batch_size=batch_size)
    if isinstance(out, list):
        return np.concatenate([part.reshape(part.shape[0], -1) for part in out], axis=1)
    return out


def _output_part(packed: Any, start: int, stop: int, shape: tuple[int, ...]) -> np.ndarray:
    packed = _only_block(packed)
    return packed[:, start:stop].reshape(packed.shape[0], *shape)


def _only_block(nested: Any) -> np.ndarray:
    """An input's block: with ``concatenate=False`` it arrives in lists nested one per axis
    after the rows, each axis one chunk, so each list holds one item (letting dask
    concatenate the chunks instead would copy every block)."""
    while isinstance(nested, list):
        (nested,) = nested
    return nested


def _cached_model(blob: bytes, digest: str) -> BaseModel:
    """The model of these bytes, loaded at most once per process while it stays cached.
    Loading holds the lock, so threads asking for the same new model wait for one load."""
    global _loads
    with _cache_lock:
        model = _cache.get(digest)
        if model is not None:
            _cache.move_to_end(digest)
            return model
        if hashlib.sha256(blob).hexdigest() != digest:
            raise ValueError("the model bytes do not match their SHA-256 digest")
        model = model_from_bytes(blob, name="<fastnn.dask model>")
        _loads += 1
        _cache[digest] = model
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return model


def cache_info() -> dict[str, Any]:
    """This process's model cache: ``loads`` (models loaded from bytes so far), ``models``
    (the SHA-256 digests held, least recently used first) and ``maxsize``. On a cluster, ask
    every worker: ``client.run(fastnn.dask.cache_info)``."""
    with _cache_lock:
        return {"loads": _loads, "models": list(_cache), "maxsize": CACHE_SIZE}


def clear_cache() -> None:
    """Forget this process's cached models and reset its load count
    (``client.run(fastnn.dask.clear_cache)`` on every worker)."""
    global _loads
    with _cache_lock:
        _cache.clear()
        _loads = 0
