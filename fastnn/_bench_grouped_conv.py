"""The grouped convolution rows of the convolutional benchmark (fastnn/_bench_cnn.py lists them
after its own; ``run`` here times them alone): ``Conv2D(64, 3, padding="same", groups=G)`` with
a relu on a batch of 32 images of 32x32x64, float32, against PyTorch's ``nn.Conv2d(64, 64, 3,
padding=1, groups=G)`` (NCHW or channels-last, whichever is faster for the row):

- ``grouped conv 3x3 64->64 g4 32x32 b32 fwd`` and ``... step``: four groups of 16 channels
  (ResNeXt's shape): the forward pass (PyTorch under ``no_grad``), and forward and backward
  (kernel, bias and input gradients) as in a training step;
- ``grouped conv 3x3 64->64 g32 32x32 b32 fwd`` and ``... step``: 32 groups of two channels
  (channel-shuffle networks' shape).

Timing, ratios and the GEMM peak as in fastnn/_bench_cnn.py (whose ``measure`` runs these rows).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

import fastnn as fnn
from fastnn._bench_cnn import Row
from fastnn._bench_conv3d import torch_relu_conv

N, SIZE, C, K = 32, 32, 64, 3
GROUPS = (4, 32)


def rows() -> list[Row]:
    """(name, flops per call, fastnn setup -> call, torch setup(torch) -> call)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, SIZE, SIZE, C)).astype(np.float32)
    dy = rng.standard_normal((N, SIZE, SIZE, C)).astype(np.float32)

    def mine(groups: int, train: bool) -> Callable[[], Callable[[], Any]]:
        def make() -> Callable[[], Any]:
            model = fnn.Sequential([fnn.Conv2D(C, K, padding="same", groups=groups,
                                               activation="relu")],
                                   input_shape=x.shape[1:], seed=0)
            if not train:
                return lambda: model.forward(x, training=False)

            def call() -> None:
                model.forward(x, training=True)
                model.backward(dy)
            return call
        return make

    def theirs(groups: int, train: bool) -> Callable[[Any], Callable[[], Any]]:
        def make(torch: Any) -> Callable[[], Any]:
            conv = torch.nn.Conv2d(C, C, K, padding=1, groups=groups)
            return torch_relu_conv(torch, conv, x.transpose(0, 3, 1, 2).copy(),
                                   dy.transpose(0, 3, 1, 2).copy(),
                                   (torch.contiguous_format, torch.channels_last), train)
        return make

    out: list[Row] = []
    for groups in GROUPS:
        macs = N * SIZE * SIZE * K * K * (C // groups) * C
        name = f"grouped conv 3x3 64->64 g{groups} 32x32 b32"
        out += [(f"{name} fwd", 2.0 * macs, mine(groups, False), theirs(groups, False)),
                (f"{name} step", 2.0 * 3 * macs, mine(groups, True), theirs(groups, True))]
    return out


def run(thread_counts: tuple[int, ...] = (1, 2), repeats: int = 30,
        log: Optional[Callable[[str], None]] = None) -> dict[int, dict[str, Any]]:
    """These rows alone, at each thread count (see fastnn/_bench_cnn.py's ``run``)."""
    from fastnn import _bench_cnn as BC
    return BC.run(thread_counts, repeats, log, rows)


if __name__ == "__main__":
    from fastnn import _bench_cnn as BC
    print(BC.format_table(run(), "grouped convolution"))
