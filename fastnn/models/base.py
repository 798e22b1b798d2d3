"""What every model owns: flat parameter and gradient buffers, the graph or the fast-path plan,
workspaces, and the low-level loop (forward, backward, grads, zero_grad).

Parameters live in one flat buffer per model, trainable weights first, and gradients in
another of the same layout; each layer holds views. An optimizer updates the trainable prefix
in one fused kernel call. A model called inside another keeps its weights in its own buffers:
the outer model's optimizer then steps the *runs* of trainable weights of every buffer (a run:
a contiguous slice), gathered into one staging array when there are several.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any, Literal, Optional, Union, cast

import numpy as np
from numpy.typing import ArrayLike

from fastnn import _validation as V
from fastnn import activations as A
from fastnn import losses as L
from fastnn._memory import aligned_zeros
from fastnn.backends import get_backend
from fastnn.layers import Dense, Layer
from fastnn.layers.base import snake_name
from fastnn.models import fastpath, graph
from fastnn.models.fit_loop import FitLoop
from fastnn.models.low_level import LowLevel
from fastnn.models.training import Training
from fastnn.models.weights import Weights
from fastnn.utils import _seed_sequence

if TYPE_CHECKING:
    from numpy.typing import NDArray

    FloatArray = NDArray[np.floating[Any]]
    FloatDType = Union[Literal["float32", "float64"], type[np.float32], type[np.float64],
                       np.dtype[np.float32], np.dtype[np.float64]]




class BaseModel(Training, FitLoop, LowLevel, Weights):
    """The common base of ``Sequential`` and ``Model`` (see those)."""

    # Train through the compiled whole-step plan when the backend has one (tests switch it off
    # to compare with the per-kernel path).
    _compiled_steps = True
    # a model that may be compiled before it is built (Sequential: Keras' deferred build)
    _defers_build = False

    def __init__(self, seed: Optional[int], dtype: FloatDType, backend: str,
                 name: Optional[str]) -> None:
        self.dtype = np.dtype(V.check_dtype(dtype))
        self.backend = V.check_choice("backend", backend, ("fast", "numpy"))
        self._be = get_backend(backend)
        if seed is not None:
            seed = V.check_int("seed", seed, low=0)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string. Received: name={V._describe(name)}")
        self._name = name
        self._auto_name: Optional[str] = None      # given by an outer model
        self.seed = seed
        init_seq, shuffle_seq = _seed_sequence(seed).spawn(2)
        self._init_rng = np.random.default_rng(init_seq)
        self._shuffle_rng = np.random.default_rng(shuffle_seq)
        self.layers: list[Any] = []
        self.input_dim: Optional[int] = None
        self.input_shape: Any = None
        self.output_shape: Any = None
        self.loss: Any = None
        self.optimizer: Any = None
        self.metrics: list[str] = []
        self._metric_items: list[Any] = []          # names, or functions f(y_true, y_pred)
        self._built = False
        self._fast = False
        self._plan: list[fastpath.PlanStep] = []
        self._nodes: list[graph.Node] = []
        self._masked: Optional[list[bool]] = None     # graph.mask_flags
        self._grad_free: frozenset[int] = frozenset()   # graph.grad_free_nodes
        self._shared_later: frozenset[int] = frozenset()   # graph.shared_later_calls
        self._own_cache: Optional[tuple[list[graph.Node], list[Layer]]] = None
        self._outputs: list[int] = []
        self._n_inputs = 1
        self._relu_fused: frozenset[int] = frozenset()
        self._pooled_grad: dict[int, int] = {}
        self._forward_plan: Any = None
        # one thread or all, by timing, for the calls driven from Python (fast backend only)
        chooser = getattr(self._be, "ThreadChooser", None)
        self._threads_for = ({kind: chooser() for kind in
                              ("predict", "train", "forward", "backward", "update")}
                             if chooser else None)
        self._train_ws: Any = None
        self._train_plan: Any = None
        self._last_forward: Any = None
        self._runs: Optional[list[tuple[BaseModel, int, int]]] = None
        self._bounds: Any = None       # the trainable weight tensors within the runs (clipnorm)
        self._local = threading.local()
        self._busy = threading.RLock()
        self._pending_compile = None   # (loss, optimizer, metrics) compiled before built

    @property
    def name(self) -> str:
        return self._name or self._auto_name or snake_name(type(self).__name__)

    @property
    def built(self) -> bool:
        """True once the weights exist."""
        return self._built

    @property
    def output_dim(self) -> int:
        """Number of output values per sample (all outputs together)."""
        return sum(graph.width(self._nodes[i].shape) for i in self._outputs) \
            if not self._fast else self._plan[-1].width

    @property
    def final_activation(self) -> int:
        """Code of the activation applied to the outputs (see ``fastnn.activations``)."""
        if self._fast:
            return self._plan[-1].act
        node = self._activation_node()
        return A.LINEAR if node is None or node.layer is None else node.layer.act

    def _activation_node(self) -> Any:
        """The node whose activation the single output carries: the output node, or through
        shape-only layers (Flatten, Reshape) the node before them; None with several outputs."""
        if len(self._outputs) != 1:
            return None
        node = self._nodes[self._outputs[0]]
        while node.layer is not None and node.layer.shape_only:
            node = self._nodes[node.inputs[0]]
        return node

    @property
    def trainable(self) -> bool:
        """Whether any layer is trainable; setting it sets every layer's flag (Keras)."""
        return any(layer.trainable for layer in self.layers)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        value = V.check_bool("trainable", value)
        for layer in self.layers:
            layer.trainable = value

    @property
    def path(self) -> str:
        """``"fast"`` (the compiled MLP plan) or ``"general"`` (per-layer kernels)."""
        return "fast" if self._fast else "general"

    # ------------------------------------------------------------------ building
    def reset_states(self) -> None:
        """Zero the carried states of every stateful recurrent layer (``stateful=True``), in
        nested models too: the next batch starts from zeros, of any batch size (Keras 2's
        ``model.reset_states()``; Keras 3 resets layer by layer, which
        ``layer.reset_states()`` also does here)."""
        for layer in self.layers:
            reset = getattr(layer, "reset_states", None)
            if reset is not None:
                reset()

    def _build_graph(self, input_shapes: list[Any], nodes: list[graph.Node],
                     outputs: list[int], chain: bool) -> None:
        """Build every layer for its input shape, lay the weights out and initialise them.
        ``chain``: the nodes are a Sequential's chain (the fast path is possible)."""
        for node in nodes:
            layer = node.layer
            if layer is None:
                continue
            if isinstance(layer, graph.ModelLayer):
                if not layer.model.built:
                    raise ValueError(f"model {layer.model.name} must be built before it is "
                                     f"used as a layer")
            elif layer._owner is not None and layer._owner is not self and layer._specs:
                raise ValueError(f"layer {layer!r} already belongs to a built model: a layer "
                                 f"with weights can be in one model only")
            layer.check_dtype(self.dtype)      # e.g. LeakyReLU(1e39) overflows float32
        first: dict[int, graph.Node] = {}       # a shared layer's first call
        for node in nodes[len(input_shapes):]:
            layer = cast(Any, node.layer)
            shapes = [nodes[i].shape for i in node.inputs]
            given = shapes if node.multi else shapes[0]
            earlier = first.get(id(layer))
            if earlier is not None:
                # a shared layer is built once, by its first call; a later call must bring
                # what that call did (its weights' shapes, and the buffers a layer sizes from
                # its shapes, depend on it)
                before = [nodes[i].shape for i in earlier.inputs]
                before = before if earlier.multi else before[0]
                if given != before:
                    raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) is "
                                     f"shared: its first call takes inputs of shape {before}, "
                                     f"a later call gives {given}; a shared layer takes the "
                                     f"shape of its first call")
                node.shape = earlier.shape
                continue
            first.setdefault(id(layer), node)
            node.shape = layer.build(given, self.dtype)       # type: ignore[union-attr]
            if chain and isinstance(node.shape, list):
                raise ValueError(f"layer {layer!r} returns several tensors (return_state, or "
                                 f"merge_mode=None): a Sequential model needs one; use the "
                                 f"functional API (fastnn.Model)")
        self._check_sharing(nodes)
        self._shared_later = graph.shared_later_calls(nodes, len(input_shapes))
        if self._shared_later:
            chain = False              # the compiled plans hold each layer once
        self._nodes, self._outputs, self._n_inputs = nodes, outputs, len(input_shapes)
        self._masked = graph.mask_flags(nodes, len(input_shapes))
        self._grad_free = graph.grad_free_nodes(nodes, len(input_shapes))
        self._relu_fused = graph.relu_pool_nodes(nodes, outputs, len(input_shapes))
        self._pooled_grad = graph.pooled_grad_nodes(nodes, self._relu_fused, len(input_shapes))
        self.input_shape = input_shapes[0] if len(input_shapes) == 1 else input_shapes
        self.input_dim = sum(graph.width(s) for s in input_shapes)
        outs = [nodes[i].shape for i in outputs]
        self.output_shape = outs[0] if len(outs) == 1 else outs
        own = self._own_layers()
        self._name_layers(own)
        self._fast = chain and fastpath.eligible(own, input_shapes[0])
        if self._fast:
            self._plan = fastpath.make_plan(own, self.input_dim)
            fastpath.layout(self, self._plan, self.input_dim)
        else:
            self._plan = []
            self._layout(own)
        for layer in own:
            if not isinstance(layer, graph.ModelLayer):
                layer._owner = self
        self._built = True
        self._forward_plan = None if self._shared_later else fastpath.compile_forward(self)

    @staticmethod
    def _check_sharing(nodes: list[graph.Node]) -> None:
        """Refuse the uses of one layer that cannot share its weights: a layer that another
        runs inside itself (a wrapper's) also used elsewhere, and a stateful recurrent layer
        (its carried states belong to one sequence of batches) called twice."""
        calls: dict[int, int] = {}
        inside: dict[int, int] = {}
        seen: set[int] = set()
        for node in nodes:
            layer = node.layer
            if layer is None:
                continue
            key = id(getattr(layer, "model", layer))
            calls[key] = calls.get(key, 0) + 1
            if key not in seen:
                seen.add(key)
                for inner in layer.sublayers:
                    inside[id(inner)] = inside.get(id(inner), 0) + 1
        for node in nodes:
            layer = node.layer
            if layer is None:
                continue
            for one in layer.sublayers:
                if (inside[id(one)] + calls.get(id(one), 0) > 1
                        and graph.shares_weights(one)):
                    raise ValueError(f"layer {one!r} is used twice in this model, once inside "
                                     f"another layer (a wrapper such as Bidirectional): a "
                                     f"wrapped layer can appear once (create a second layer "
                                     f"for a second use)")
            if calls[id(getattr(layer, "model", layer))] > 1 and graph.is_stateful(layer):
                raise ValueError(f"layer {layer!r} is stateful (its states carry over from "
                                 f"batch to batch) and called twice in this model: a stateful "
                                 f"recurrent layer cannot be shared")

    def _name_layers(self, layers: list[Layer]) -> None:
        unique = list({id(layer): layer for layer in layers}.values())
        taken = {layer._name for layer in unique if layer._name is not None}
        named: set[str] = set()
        for layer in unique:
            if layer._name is None:
                base = snake_name(type(layer).__name__)
                name, k = base, 0
                while name in taken:
                    k += 1
                    name = f"{base}_{k}"
                taken.add(name)
                layer._auto_name = name
                if isinstance(layer, graph.ModelLayer):
                    layer.model._auto_name = name
            if layer.name in named:
                raise ValueError(f"two layers are named {layer.name!r}: names must be unique "
                                 f"within a model")
            named.add(layer.name)

    def _allocate(self, size: int) -> None:
        if size * self.dtype.itemsize >= 2**62:
            raise ValueError(f"the model would have {size} parameters, more than any machine "
                             f"holds")
        self._params = aligned_zeros(size, self.dtype)
        self._grads = aligned_zeros(size, self.dtype)
        self._grad_sum = aligned_zeros(size, self.dtype)     # model.grads (backward)

    def _layout(self, layers: list[Layer]) -> None:
        """The general path's layout: trainable weights first, then frozen ones and state
        (moving statistics), each layer's in its order; initialised in layer order."""
        entries = []
        for layer in layers:
            for k, spec in enumerate(layer._specs):
                entries.append((spec.trainable and layer.trainable, layer, k, spec))
        order = sorted(range(len(entries)), key=lambda i: not entries[i][0])
        sizes = [math.prod(e[3].shape) for e in entries]   # exact: np.prod wraps at 2**63
        self._allocate(sum(sizes))
        views: dict[int, tuple[Any, Any]] = {}
        offset = 0
        for i in order:
            end = offset + sizes[i]
            shape = entries[i][3].shape
            views[i] = (self._params[offset:end].reshape(shape),
                        self._grads[offset:end].reshape(shape))
            offset = end
        i = 0
        for layer in layers:
            n = len(layer._specs)
            layer.bind([views[j][0] for j in range(i, i + n)],
                       [views[j][1] for j in range(i, i + n)])
            for spec, w in zip(layer._specs, layer._weights):
                value = spec.initializer(spec.shape, self.dtype, self._init_rng)
                w[...] = np.asarray(value, dtype=self.dtype).reshape(spec.shape)
            init_seed = getattr(layer, "init_seed", None)
            if init_seed is not None:        # Dropout, and layers holding Dropouts
                init_seed(self._init_rng)
            i += n

    # ------------------------------------------------------------------ weights, owners, runs
    def _own_layers(self) -> list[Layer]:
        """The layers of the nodes, each once (a shared layer at its first call; a model
        called several times by its first call's ModelLayer)."""
        cached = getattr(self, "_own_cache", None)
        if cached is not None and cached[0] is self._nodes:   # once per graph (a step asks)
            return cached[1]
        seen: dict[int, Layer] = {}
        for n in self._nodes:
            if n.layer is not None:
                seen.setdefault(id(getattr(n.layer, "model", n.layer)), n.layer)
        own = list(seen.values())
        self._own_cache = (self._nodes, own)
        return own

    def _entries(self) -> list[tuple[BaseModel, Layer, int]]:
        """(owner model, layer, weight index) of every weight, in get_weights() order."""
        out: list[tuple[BaseModel, Layer, int]] = []
        for layer in self._own_layers():
            if isinstance(layer, graph.ModelLayer):
                out += [e for e in layer.model._entries() if e not in out]
            else:
                out += [(self, layer, k) for k in range(len(layer._specs))]
        return out

    def _owners(self) -> list[BaseModel]:
        owners: list[BaseModel] = [self]
        for layer in self._own_layers():
            if isinstance(layer, graph.ModelLayer):
                owners += [m for m in layer.model._owners() if m not in owners]
        return owners

    def _offset(self, owner: BaseModel, view: Any) -> int:
        base = owner._params.__array_interface__["data"][0]
        return (view.__array_interface__["data"][0] - base) // self.dtype.itemsize

    def _trainable_spans(self) -> list[tuple[int, int, int, BaseModel]]:
        """(owner index, start, size, owner) of each weight trainable now (every weight on the
        fast path), in the order of the flat arrays the optimizer steps."""
        spans = []
        for owner, layer, k in self._entries():
            if self._fast or layer.trainable and layer._specs[k].trainable:
                view = layer._weights[k]
                spans.append((self._owners().index(owner), self._offset(owner, view), view.size,
                              owner))
        spans.sort(key=lambda s: (s[0], s[1]))
        return spans

    def _make_bounds(self) -> Any:
        """int64 (K + 1,): where each trainable weight tensor starts and ends in the arrays the
        optimizer steps (the runs of ``_make_runs``, joined); clipnorm clips each by itself."""
        sizes = [size for _, _, size, _ in self._trainable_spans()]
        return np.cumsum([0] + sizes, dtype=np.int64)

    def _make_runs(self) -> list[tuple[BaseModel, int, int]]:
        """The contiguous runs (owner, start, size) of the weights trainable now."""
        if self._fast:
            return [(self, 0, self._params.size)] if self._params.size else []
        runs: list[tuple[BaseModel, int, int]] = []
        for _, start, size, owner in self._trainable_spans():
            if runs and runs[-1][0] is owner and runs[-1][1] + runs[-1][2] == start:
                runs[-1] = (owner, runs[-1][1], runs[-1][2] + size)
            else:
                runs.append((owner, start, size))
        return runs

    def _trainable_size(self) -> int:
        return sum(size for _, _, size in self._runs or [])

    def _apply_update(self, optimizer: Any, accumulated: bool = False) -> None:
        """One optimizer step over the trainable runs, from ``_grads`` (a training step) or
        ``_grad_sum`` (the low-level loop)."""
        runs = self._runs or []
        be = self._be
        bounds = self._bounds
        if len(runs) == 1:
            owner, start, size = runs[0]
            grads = owner._grad_sum if accumulated else owner._grads
            optimizer._apply(be, owner._params[start:start + size], grads[start:start + size],
                             bounds)
            return
        if not runs:
            return
        total = self._trainable_size()
        stage = getattr(self, "_stage", None)
        if stage is None or stage[0].size != total:
            stage = self._stage = (np.empty(total, self.dtype), np.empty(total, self.dtype))
        offset = 0
        for owner, start, size in runs:
            grads = owner._grad_sum if accumulated else owner._grads
            stage[0][offset:offset + size] = owner._params[start:start + size]
            stage[1][offset:offset + size] = grads[start:start + size]
            offset += size
        optimizer._apply(be, stage[0], stage[1], bounds)
        offset = 0
        for owner, start, size in runs:
            owner._params[start:start + size] = stage[0][offset:offset + size]
            offset += size

    def _zero_grads(self) -> None:
        for owner in self._owners():
            owner._grads[...] = 0

    def _regularize(self, with_grads: bool) -> float:
        """The regularizers' penalty; with ``with_grads`` their gradients are added to the
        layers' gradients instead (call it after the backward pass, which writes those) and
        0.0 is returned: the penalty is the loss's, taken before the backward pass."""
        total = 0.0
        for owner, layer, k in self._entries():
            reg = layer._specs[k].regularizer
            if reg is not None and layer.trainable:
                if with_grads:
                    reg.add_gradient(layer._weights[k], layer._grads[k])
                else:
                    total += float(reg(layer._weights[k]))
        return total

    # ------------------------------------------------------------------ the two engines
    def _new_workspace(self, rows: int, with_grads: bool) -> Any:
        if self._fast:
            return fastpath.Workspace(self._plan, rows, self.dtype, with_grads)
        return graph.GraphWorkspace(self, rows, with_grads)

    def _forward(self, x: Any, ws: Any, rows: int, out: Any = None, training: bool = False,
                 fuse_last: bool = False) -> Any:
        if self._fast:
            return fastpath.forward(self, x, ws, rows, out, fuse_last)
        return graph.forward(self, x, ws, rows, out, training)

    def _backward(self, x: Any, ws: Any, rows: int, fuse_last: bool = False,
                  dx0: Any = None) -> None:
        if self._fast:
            fastpath.backward(self, x, ws, rows, fuse_last, dx0)
        else:
            graph.backward(self, ws, rows, fuse_last, dx0)

    def _on_chosen_threads(self, kind: str, rows: int, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on the thread count the model's chooser for ``kind`` of call picks
        (one or all allowed, by timing: src_c/fnn_adapt.h); the compiled plans choose inside."""
        chooser = self._threads_for[kind] if self._threads_for else None
        if chooser is None:
            return fn(*args)
        token = chooser.begin(rows)
        ok = False
        try:
            result = fn(*args)
            ok = True
        finally:
            chooser.end(token, ok)
        return result

    def _fuses(self) -> bool:
        return getattr(self, "_loss_kind", None) in L.FUSED_KINDS

    def _loss_kind_for(self, loss: Any) -> int:
        """The loss kernel code for ``loss`` on this model's output. The fused kinds (sigmoid or
        softmax with its cross-entropy, dL/d(pre-activation) at once) need the activation at the
        output node itself; behind a Flatten or Reshape the loss reads probabilities instead."""
        kind = L.check_kind(loss, self.final_activation)
        if kind in L.FUSED_KINDS and not self._fast and \
                self._activation_node() is not self._nodes[self._outputs[0]]:
            return L.BCE_PROBS if kind == L.BCE_SIGMOID else L.CE_PROBS
        return kind

    # ------------------------------------------------------------------ arrays in and out
    def _inputs(self, X: Any, name: str = "X") -> FloatArray:
        """The packed (n, input width) array of a batch: one input's samples flattened (a
        view), several inputs' side by side (a copy)."""
        if self._n_inputs == 1:
            arr = V.float_array(name, X, self.dtype, self.input_shape)
            return arr.reshape(arr.shape[0], -1)
        if not isinstance(X, (list, tuple)) or len(X) != self._n_inputs:
            got = (f"a {type(X).__name__} of {len(X)}" if isinstance(X, (list, tuple))
                   else type(X).__name__)
            raise ValueError(f"{name} must be a list of {self._n_inputs} arrays, one per "
                             f"input. Received: {got}")
        parts = [V.float_array(f"{name}[{i}]", x, self.dtype, shape)
                 for i, (x, shape) in enumerate(zip(X, self.input_shape))]
        n = parts[0].shape[0]
        if any(p.shape[0] != n for p in parts):
            raise ValueError(f"the inputs in {name} must have the same number of samples. "
                             f"Received: {[p.shape[0] for p in parts]}")
        packed: FloatArray = np.concatenate([p.reshape(n, -1) for p in parts], axis=1)
        return packed

    def _unpack_outputs(self, out: Any) -> Any:
        """Packed (n, output width) outputs in the outputs' shapes (a list if several)."""
        n = out.shape[0]
        if len(self._outputs) <= 1 or self._fast:
            return out if self._fast else out.reshape(n, *self.output_shape)
        parts, offset = [], 0
        for shape in self.output_shape:
            w = graph.width(shape)
            parts.append(out[:, offset:offset + w].reshape(n, *shape))
            offset += w
        return parts

    def _pack_outputs(self, name: str, value: Any, rows: Optional[int]) -> Any:
        if len(self._outputs) <= 1 or self._fast:
            shape = (self.output_dim,) if self._fast else self.output_shape
            arr = V.float_array(name, value, self.dtype, shape)
            arr = arr.reshape(arr.shape[0], -1)
        else:
            if not isinstance(value, (list, tuple)) or len(value) != len(self._outputs):
                raise ValueError(f"{name} must be a list of {len(self._outputs)} arrays, one "
                                 f"per output. Received: {type(value).__name__}")
            parts = [V.float_array(f"{name}[{i}]", v, self.dtype, s)
                     for i, (v, s) in enumerate(zip(value, self.output_shape))]
            arr = np.concatenate([p.reshape(p.shape[0], -1) for p in parts], axis=1)
        if rows is not None and arr.shape[0] != rows:
            raise ValueError(f"{name} must have the {rows} rows of the forward pass's x. "
                             f"Received: {name} with shape {arr.shape}")
        return arr

    def generate(self, prompt: ArrayLike, max_new_tokens: int, temperature: float = 1.0,
                 top_k: Optional[int] = None, seed: Any = None,
                 end_id: Optional[int] = None) -> Any:
        """Continue token sequences, one token at a time through a key/value cache.

        For a model from token ids (n, L) to next-token probabilities (softmax output) or
        logits (linear output) (n, L, vocab), causal (see ``fastnn.models.decoding``).

        Parameters
        ----------
        prompt : int array (n, p), p >= 1
            Token ids in [0, vocab).
        max_new_tokens : int >= 0
        temperature : float >= 0, default 1.0
            0: the most likely token (greedy); else the logits (log-probabilities of a softmax
            output) are divided by it before sampling.
        top_k : int >= 1, optional
            Sample among the k most likely tokens only.
        seed : int, optional
            Seeds ``np.random.default_rng``: the same seed gives the same tokens.
        end_id : int, optional
            After a row emits it, the row keeps emitting it (generation stops when all have).

        Returns
        -------
        int64 array (n, p + max_new_tokens): the prompt, then the new tokens.

        Raises
        ------
        ValueError, TypeError
            Naming the bad argument; a layer that cannot be decoded a position at a time
            (non-causal attention, Flatten, recurrent, ...); positions past what the model
            holds (p + max_new_tokens - 1 > a PositionalEmbedding's sequence_length, or the
            input length without a position layer; a SinePositionEncoding extends).
        """
        from fastnn.models.generation import generate
        return generate(self, prompt, max_new_tokens, temperature, top_k, seed, end_id)

    def _check_built(self, what: str, data: Any = None) -> None:
        """Raise unless the model is built; one that can build itself first does (Keras'
        deferred build: a Sequential from its ``Input`` or first layer's ``input_shape``, else
        from the shape of ``data``, the array the call was given)."""
        if self.built:
            return
        shape = self._deferred_input_shape(data)
        if shape is not None:
            cast(Any, self).build(shape)          # the models that defer have a build
            return
        raise ValueError(f"the model must be built before {what}: pass input_dim to "
                         f"Sequential(...) or call model.build(input_dim) (or begin its layers "
                         f"with fastnn.Input(shape=...); fit, predict and evaluate on an array "
                         f"build it for that array's samples)")

    def _deferred_input_shape(self, data: Any) -> Optional[tuple[int, ...]]:
        """The sample shape to build for on first use, or None (see Sequential)."""
        return None
