"""The activations benchmark: one training step of a Dense 256-256-256 network (the hidden layer
with the activation, a linear output, mean squared error, plain SGD) at batch 256, float32, for
Keras' elu, selu, silu and softplus (fnn_act_keras.h's vectorised float forms), with relu and
gelu as yardsticks; fastnn against NumPy and PyTorch. PyTorch's softplus is given
``threshold=1e9`` (Keras' function: no cut to x above 20). FLOPs count the six products.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ACTIVATIONS = ("relu", "gelu", "elu", "selu", "silu", "softplus")
N, WIDTH = 256, 256


def workloads(workload_class: Any) -> list:
    """One row per activation, as ``fastnn.benchmarking.Workload``s."""
    return [workload_class(f"train step 256-256-256 {act} b{N}", "activation", (act,),
                           ("fastnn", "numpy", "torch"), flops=6 * 2.0 * N * WIDTH * WIDTH)
            for act in ACTIVATIONS]


def build(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    """A Case whose ``run()`` is one training step on ``engine``."""
    (act,) = w.params
    x = rng.standard_normal((N, WIDTH)).astype(np.float32)
    y = rng.standard_normal((N, WIDTH)).astype(np.float32)
    if engine in ("fastnn", "numpy"):
        import fastnn as fnn
        model = fnn.Sequential([fnn.Dense(WIDTH, activation=act), fnn.Dense(WIDTH)],
                               input_dim=WIDTH, seed=0,
                               backend="fast" if engine == "fastnn" else "numpy")
        model.compile(loss="mse", optimizer=fnn.SGD(lr=1e-3))
        return case_class(w, engine, lambda: model.train_on_batch(x, y), keep=[model, x, y])
    import torch
    nn = torch.nn
    module: Any = {"relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU, "selu": nn.SELU, "silu": nn.SiLU,
              "softplus": lambda: nn.Softplus(threshold=1e9)}[act]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(WIDTH, WIDTH), module(), nn.Linear(WIDTH, WIDTH))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    loss = nn.MSELoss()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step() -> None:
        opt.zero_grad()
        loss(net(tx), ty).backward()
        opt.step()
    return case_class(w, engine, step, keep=[x, y])
