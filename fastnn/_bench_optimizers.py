"""The optimizer-update benchmark: one update of 1M float32 parameters held in one flat tensor.

Rows ``optimizer update <rule> 1M`` for Adagrad, Adamax, Nadam and Adam (Adam for scale: the
compiled training plans fuse it). fastnn calls ``opt.step(backend, params, grads)`` on flat
arrays (the overflow screen of the gradients, then the fused update kernel, as inside a training
step); the NumPy backend runs the same rule with its reference kernels; PyTorch runs
``torch.optim`` with ``foreach=True`` (its multi-tensor kernels) on one parameter whose ``grad``
is set once, with the same hyper-parameters (Keras' defaults: eps 1e-7, Adagrad's initial
accumulator 0.1, Nadam as ``NAdam(momentum_decay=1.0)``). The gradient stays the same from step to
step, so the moments never decay towards subnormal numbers and every call costs the same.

The update is memory-bound (Adam reads w, g, m, v and writes w, m, v: 28 bytes a parameter, 28 MB a
call, far beyond L2): the ratios show how many passes over memory each engine makes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

N = 1 << 20
LR = 0.01
RULES = ("Adagrad", "Adamax", "Nadam", "Adam")


def workloads(workload_class: Any) -> list:
    """One row per rule, as ``fastnn.benchmarking.Workload``s."""
    return [workload_class(f"optimizer update {rule} 1M", "optimizer", (rule, N),
                           ("fastnn", "numpy", "torch")) for rule in RULES]


def _torch_optimizer(torch: Any, rule: str, params: list) -> Any:
    optim = torch.optim
    if rule == "Adagrad":
        return optim.Adagrad(params, lr=LR, initial_accumulator_value=0.1, eps=1e-7,
                             foreach=True)
    if rule == "Adamax":
        return optim.Adamax(params, lr=LR, eps=1e-7, foreach=True)
    if rule == "Nadam":
        return optim.NAdam(params, lr=LR, eps=1e-7, momentum_decay=1.0, foreach=True)
    return optim.Adam(params, lr=LR, eps=1e-8, foreach=True)


def build(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    """A Case whose ``run()`` is one update on ``engine``."""
    rule, n = w.params
    params = rng.standard_normal(n).astype(np.float32)
    grads = (rng.standard_normal(n) * 0.01).astype(np.float32)
    if engine in ("fastnn", "numpy"):
        import functools

        import fastnn as fnn
        from fastnn.backends import get_backend
        opt = getattr(fnn, rule)(LR)
        opt.build(n, np.float32)
        backend = get_backend("fast" if engine == "fastnn" else "numpy")
        run = functools.partial(opt.step, backend, params, grads)
        return case_class(w, engine, run, keep=[opt, params, grads])
    import torch
    p = torch.tensor(params, requires_grad=True)
    p.grad = torch.tensor(grads)
    opt = _torch_optimizer(torch, rule, [p])
    return case_class(w, engine, opt.step, keep=[p, opt])
