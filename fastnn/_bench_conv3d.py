"""The 3-D convolution rows of the convolutional benchmark (fastnn/_bench_cnn.py lists them after
its own; ``run`` here times them alone): one ``Conv3D`` of 8 -> 16 channels, 3x3x3 "same", on a
batch of 8 volumes of 16x16x16, float32, against PyTorch's ``conv3d`` (NCDHW or channels-last
3-D, whichever is faster for the row):

- ``Conv3D 3x3x3 8->16 16^3 b8 fwd``: the forward pass (PyTorch under ``no_grad``);
- ``Conv3D 3x3x3 8->16 16^3 b8 step``: forward and backward (kernel, bias and input gradients)
  of the layer with a relu, as in a training step.

Timing, ratios and the GEMM peak as in fastnn/_bench_cnn.py (whose ``measure`` runs these rows).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import numpy as np

import fastnn as fnn
from fastnn._bench_cnn import Row

N, SIZE, C_IN, FILTERS, K = 8, 16, 8, 16, 3


def _fastest(torch: Any, runs: list[Callable[[], None]]) -> Callable[[], None]:
    """The quickest of ``runs`` over three calls each, after one."""
    best: Optional[float] = None
    pick = runs[0]
    for run in runs:
        run()
        start = time.perf_counter()
        for _ in range(3):
            run()
        took = time.perf_counter() - start
        if best is None or took < best:
            best, pick = took, run
    return pick


def torch_relu_conv(torch: Any, conv: Any, x: Any, dy: Any, layouts: tuple,
                    train: bool) -> Callable[[], None]:
    """PyTorch's relu(conv(x)) (with ``train``, and its backward from dy), channels-first
    arrays x and dy, in the quickest of the memory ``layouts`` (PyTorch picks its kernels by
    layout: contiguous or channels-last)."""
    xt, dyt = torch.tensor(x), torch.tensor(dy)
    runs: list[Callable[[], None]] = []
    for fmt in layouts:
        cf = conv.to(memory_format=fmt)
        xf = xt.contiguous(memory_format=fmt).requires_grad_(train)
        df = dyt.contiguous(memory_format=fmt)

        def run(cf: Any = cf, xf: Any = xf, df: Any = df) -> None:
            if not train:
                with torch.no_grad():
                    torch.relu(cf(xf))
                return
            xf.grad = None
            for p in cf.parameters():
                p.grad = None
            torch.relu(cf(xf)).backward(df)
        runs.append(run)
    return _fastest(torch, runs)


def rows() -> list[Row]:
    """(name, flops per call, fastnn setup -> call, torch setup(torch) -> call)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, SIZE, SIZE, SIZE, C_IN)).astype(np.float32)
    dy = rng.standard_normal((N, SIZE, SIZE, SIZE, FILTERS)).astype(np.float32)
    macs = N * SIZE ** 3 * K ** 3 * C_IN * FILTERS

    def mine(train: bool) -> Callable[[], Callable[[], Any]]:
        def make() -> Callable[[], Any]:
            model = fnn.Sequential([fnn.Conv3D(FILTERS, K, padding="same", activation="relu")],
                                   input_shape=x.shape[1:], seed=0)
            if not train:
                return lambda: model.forward(x, training=False)

            def call() -> None:
                model.forward(x, training=True)
                model.backward(dy)
            return call
        return make

    def theirs(train: bool) -> Callable[[Any], Callable[[], Any]]:
        def make(torch: Any) -> Callable[[], Any]:
            conv = torch.nn.Conv3d(C_IN, FILTERS, K, padding=1)
            return torch_relu_conv(torch, conv, x.transpose(0, 4, 1, 2, 3).copy(),
                                   dy.transpose(0, 4, 1, 2, 3).copy(),
                                   (torch.contiguous_format, torch.channels_last_3d), train)
        return make

    return [("Conv3D 3x3x3 8->16 16^3 b8 fwd", 2.0 * macs, mine(False), theirs(False)),
            ("Conv3D 3x3x3 8->16 16^3 b8 step", 2.0 * 3 * macs, mine(True), theirs(True))]


def run(thread_counts: tuple[int, ...] = (1, 2), repeats: int = 30,
        log: Optional[Callable[[str], None]] = None) -> dict[int, dict[str, Any]]:
    """These rows alone, at each thread count (see fastnn/_bench_cnn.py's ``run``)."""
    from fastnn import _bench_cnn as BC
    return BC.run(thread_counts, repeats, log, rows)


if __name__ == "__main__":
    from fastnn import _bench_cnn as BC
    print(BC.format_table(run(), "3-D convolution"))
