"""Benchmark rows of shared (tied) layers: the training step (``train_on_batch``, SGD, binary
cross-entropy, float32) of a Siamese model, one tower called on two inputs whose outputs'
squared difference feeds a sigmoid Dense, against the same model in PyTorch (one module
called twice, ``torch.optim.SGD``):

- a Dense tower (256 -> Dense 256 relu -> Dense 128 relu), batch 128;
- a convolutional tower (28x28x1 -> Conv2D(16, 3) relu -> MaxPooling2D -> Flatten -> Dense 64
  relu), batch 128 (PyTorch in its faster of the contiguous and channels-last layouts).

The NumPy backend runs the same model on the layers' twins. (This replaces
benchmarks/bench_shared_layers.py.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn._bench_layers import _fastest

BATCH = 128
DENSE = (256, 256, 128)                 # input, the tower's two widths
CONV = (28, 16, 64)                     # side, filters, the Dense width after them

KIND = "shared_layers"


def workloads(workload_class: Any) -> list:
    """The rows, as ``fastnn.benchmarking.Workload``s."""
    engines = ("fastnn", "numpy", "torch")
    d, h1, h2 = DENSE
    s, f, u = CONV
    rows = [(f"Siamese Dense tower {d}-{h1}-{h2} b{BATCH} train step", "dense"),
            (f"Siamese Conv2D({f}, 3) tower {s}x{s}x1 b{BATCH} train step", "conv")]
    return [workload_class(key, KIND, (name,), engines) for key, name in rows]


def _tower(kind: str) -> tuple[list, tuple]:
    import fastnn as fnn
    if kind == "dense":
        return ([fnn.Dense(DENSE[1], activation="relu"), fnn.Dense(DENSE[2], activation="relu")],
                (DENSE[0],))
    s, f, u = CONV
    return ([fnn.Conv2D(f, 3, activation="relu"), fnn.MaxPooling2D(2), fnn.Flatten(),
             fnn.Dense(u, activation="relu")], (s, s, 1))


def siamese(kind: str, backend: Any = "fast", seed: int = 0) -> Any:
    """The fastnn model: one tower on two inputs, ``Dense(1, sigmoid)`` of the squared
    difference of its two outputs, compiled with binary cross-entropy and SGD(0.01)."""
    import fastnn as fnn
    layers, shape = _tower(kind)
    a, b = fnn.Input(shape), fnn.Input(shape)
    ha, hb = a, b
    for layer in layers:
        ha, hb = layer(ha), layer(hb)
    gap = fnn.Subtract()([ha, hb])
    out = fnn.Dense(1, activation="sigmoid")(fnn.Multiply()([gap, gap]))
    model = fnn.Model([a, b], out, seed=seed, backend=backend)
    return model.compile(loss="binary_crossentropy", optimizer=fnn.SGD(lr=0.01))


def _torch_siamese(torch: Any, kind: str, model: Any = None) -> Any:
    """The same network in PyTorch (with ``model``'s weights when given)."""
    nn = torch.nn
    if kind == "dense":
        d, h1, h2 = DENSE
        tower = nn.Sequential(nn.Linear(d, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU())
        width = h2
    else:
        s, f, u = CONV
        side = (s - 2) // 2
        tower = nn.Sequential(nn.Conv2d(1, f, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(f * side * side, u), nn.ReLU())
        width = u
    head = nn.Linear(width, 1)

    class Net(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.tower, self.head = tower, head

        def forward(self, a: Any, b: Any) -> Any:
            gap = self.tower(a) - self.tower(b)
            return torch.sigmoid(self.head(gap * gap))

    net = Net()
    if model is not None:
        weights = model.get_weights()
        linears = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        with torch.no_grad():
            for k, m in enumerate(linears):
                kernel, bias = weights[2 * k], weights[2 * k + 1]
                if isinstance(m, nn.Conv2d):
                    kernel = kernel.transpose(3, 2, 0, 1)           # (kh, kw, in, out)
                elif kind == "conv" and k == 1:
                    # Keras flattens (h, w, c), PyTorch (c, h, w)
                    s, f, u = CONV
                    side = (s - 2) // 2
                    kernel = kernel.reshape(side, side, f, u).transpose(2, 0, 1, 3).reshape(
                        -1, u).T
                else:
                    kernel = kernel.T
                m.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
                m.bias.copy_(torch.from_numpy(bias))
    return net


def _inputs(kind: str, rng: Any) -> tuple[list, Any]:
    shape = (DENSE[0],) if kind == "dense" else (CONV[0], CONV[0], 1)
    xs = [rng.standard_normal((BATCH, *shape)).astype(np.float32) for _ in range(2)]
    return xs, rng.integers(0, 2, (BATCH, 1)).astype(np.float32)


def build(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    """A Case whose ``run()`` is one training step of the row's model on ``engine``."""
    kind = w.params[0]
    xs, t = _inputs(kind, rng)
    if engine != "torch":
        model = siamese(kind, "fast" if engine == "fastnn" else "numpy")

        def step() -> None:
            model.train_on_batch(xs, t)
        return case_class(w, engine, step, keep=[model, xs, t])
    import torch
    torch.manual_seed(0)
    net = _torch_siamese(torch, kind)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    tt = torch.from_numpy(t)
    runs: list[Any] = []
    keep = [net, opt, tt]
    layouts = [lambda v: v]
    if kind == "conv":
        layouts = [lambda v: v.permute(0, 3, 1, 2).contiguous(),
                   lambda v: v.permute(0, 3, 1, 2).contiguous(
                       memory_format=torch.channels_last)]
    for layout in layouts:
        ta, tb = (layout(torch.from_numpy(x)) for x in xs)
        keep += [ta, tb]

        def run(ta: Any = ta, tb: Any = tb) -> None:
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy(net(ta, tb), tt).backward()
            opt.step()
        runs.append(run)          # (the defaults bind this layout's tensors)
    return case_class(w, engine, _fastest(runs), keep=keep)


def disagreement(kind: str) -> float:
    """The largest difference between the weight updates of a training step of the fastnn
    model and of PyTorch's from the same weights (float32), relative to the largest update of
    each weight: the torch row computes the same step. (The losses themselves differ where a
    probability rounds to 0 or 1: Keras clips it at 1e-7, PyTorch's log at -100.)"""
    import torch
    rng = np.random.default_rng(1)
    xs, t = _inputs(kind, rng)
    model = siamese(kind)
    net = _torch_siamese(torch, kind, model)
    before = [p.detach().numpy().copy() for p in net.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    ta, tb = (torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4
                               else x) for x in xs)
    torch.nn.functional.binary_cross_entropy(net(ta, tb), torch.from_numpy(t)).backward()
    opt.step()
    model.train_on_batch(xs, t)
    after = _torch_siamese(torch, kind, model)              # fastnn's weights after the step
    worst = 0.0
    for w0, p, q in zip(before, net.parameters(), after.parameters()):
        theirs, ours = p.detach().numpy() - w0, q.detach().numpy() - w0
        worst = max(worst, float(np.max(np.abs(theirs - ours)) / np.max(np.abs(theirs))))
    return worst
