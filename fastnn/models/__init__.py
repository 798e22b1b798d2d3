"""Models: ``Sequential`` (a stack), ``Model`` (any graph, the functional API), ``Input``.

    base.py        BaseModel: buffers, layout, the two engines, arrays in and out
    fastpath.py    the compiled MLP plan for Dense chains (the one place that picks it)
    graph.py       the general path: nodes, workspaces, forward and backward over a DAG
    training.py    compile, one training step, predict, evaluate
    fit_loop.py    fit over arrays or batch iterables
    low_level.py   forward / backward / grads / zero_grad for custom loops
    weights.py     get/set_weights, summary, save
    history.py     History
"""

from fastnn.io import load_model
from fastnn.models.functional import (Input, InputLayer, Model, SymbolicTensor, clone_model,
                                      model_from_config)
from fastnn.models.history import History
from fastnn.models.sequential import Sequential

__all__ = ["Input", "InputLayer", "Model", "Sequential", "History", "SymbolicTensor",
           "model_from_config", "clone_model", "load_model"]
