"""The parts of a model that data-parallel training reads, writes or keeps equal on all ranks:
the trainable gradients (the runs the optimizer steps), the state that the forward pass
updates (BatchNormalization's moving statistics), the dropout masks' seeds and counters, the
optimizer's settings and state; and rank 0's copy of all of them at the start."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from fastnn.distributed._comm import broadcast_arrays
from fastnn.layers.recurrent_dropout import RecurrentDropout
from fastnn.layers.regularization import SeededRandom
from fastnn.models import graph

_CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm")


def _all_layers(model: Any) -> Iterator[Any]:
    """Every layer of the model: nested models' and wrappers' (a TransformerBlock's) too."""
    for layer in model._own_layers():
        if isinstance(layer, graph.ModelLayer):
            yield from _all_layers(layer.model)
            continue
        stack = [layer]
        while stack:
            current = stack.pop()
            yield current
            stack.extend(current.sublayers)


def dropouts(model: Any) -> list[Any]:
    """The layers that draw random values in training: Dropout, its spatial forms, the
    Gaussian noise layers and the recurrent layers (their dropout masks)."""
    seen: dict[int, Any] = {}
    for layer in _all_layers(model):
        if isinstance(layer, (SeededRandom, RecurrentDropout)):
            seen[id(layer)] = layer
    return list(seen.values())


def state_views(model: Any) -> list[Any]:
    """The weights that are not trained but that a training forward pass may change (moving
    statistics: the non-trainable weight specs), as views into the owners' buffers."""
    return [layer._weights[k] for _, layer, k in model._entries()
            if not layer._specs[k].trainable]


def grad_views(model: Any) -> list[Any]:
    """The gradients the optimizer steps, one view per run (``_make_runs``), in its order."""
    return [owner._grads[start:start + size] for owner, start, size in model._runs or []]


def layout(model: Any) -> tuple[Any, ...]:
    """What must be the same on every rank for the buffers to line up."""
    opt = model.optimizer
    return (model.dtype.name, [owner._params.size for owner in model._owners()],
            [size for _, _, size in model._runs or []], [v.size for v in state_views(model)],
            type(opt).__name__, sorted(k for k, v in opt.state().items() if v is not None),
            type(model.loss).__name__, list(model.metrics))


def optimizer_settings(optimizer: Any) -> dict[str, Any]:
    return optimizer.get_config()


def set_optimizer_settings(optimizer: Any, settings: dict[str, Any]) -> None:
    """Give ``optimizer`` rank 0's hyper-parameters (a learning-rate schedule ran there):
    clipping turned off before another kind is turned on (at most one may be set)."""
    current = optimizer.get_config()
    if current == settings:
        return
    for key in _CLIPPING:
        if current.get(key) is not None and settings.get(key) is None:
            setattr(optimizer, key, None)
    for key, value in settings.items():
        if key != "name" and current.get(key) != value:
            setattr(optimizer, key, value)


def broadcast_start(comm: Any, model: Any) -> dict[str, Any]:
    """Rank 0's parameters (every buffer: trainable, frozen, moving statistics), optimizer
    state, step count and settings, shuffle generator and dropout seeds, into every rank's
    model. Returns rank 0's control settings (see ``control``)."""
    opt = model.optimizer
    broadcast_arrays(comm, [owner._params for owner in model._owners()])
    broadcast_arrays(comm, [v for v in opt.state().values() if v is not None])
    broadcast_arrays(comm, [opt._iterations])
    drops = dropouts(model)
    root = comm.bcast({"settings": optimizer_settings(opt),
                       "verify": bool(opt.__dict__["_verify_next"]),
                       "shuffle": model._shuffle_rng.bit_generator.state,
                       "dropout": [(d._mask_seed, d.calls) for d in drops]}, root=0)
    set_optimizer_settings(opt, root["settings"])
    opt.__dict__["_verify_next"] = root["verify"]
    model._shuffle_rng.bit_generator.state = root["shuffle"]
    for d, (seed, calls) in zip(drops, root["dropout"]):
        d._mask_seed, d.calls = seed, calls
    return root


class RankDropout:
    """Each rank its own dropout masks while training (rank 0 keeps the model's seeds, so one
    rank draws what single-process training draws); the model's seeds come back at the end,
    so that every rank's model is the same. The mask counters stay equal on all ranks: a rank
    without rows in a step advances them as the forward pass it skipped would have."""

    def __init__(self, model: Any, rank: int) -> None:
        self.drops = dropouts(model)
        self.saved = [d._mask_seed for d in self.drops]
        for d in self.drops:
            if rank:        # a seed of its own from (the model's seed, the rank)
                d._mask_seed = int(np.random.SeedSequence([d._mask_seed or 0, rank])
                                   .generate_state(1, np.uint64)[0] >> 1)

    def skip_forward(self) -> None:
        for d in self.drops:
            if d.draws:
                d.calls += 1

    def restore(self) -> None:
        for d, seed in zip(self.drops, self.saved):
            d._mask_seed = seed
