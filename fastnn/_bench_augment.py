"""The image augmentation benchmark: one training-mode pass of ``RandomRotation(0.1)`` (bilinear,
mirrored edges) over 32 images of 64x64x3, float32, against PyTorch doing the same with
``F.affine_grid`` + ``F.grid_sample(mode="bilinear", padding_mode="reflection",
align_corners=True)`` (the same sampling: the edge pixels mirrored) on random angles drawn each
call, in its own NCHW layout. The NumPy backend runs the kernel's twin. Each pass reads 4
pixels an output value: memory-bound and branchy, no GEMM, so no FLOP column.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

N, SIZE, C = 32, 64, 3


def workloads(workload_class: Any) -> list:
    """The row, as a ``fastnn.benchmarking.Workload``."""
    return [workload_class(f"RandomRotation b{N} {SIZE}x{SIZE}x{C}", "augment", (),
                           ("fastnn", "numpy", "torch"))]


def build(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    """A Case whose ``run()`` is one training-mode pass on ``engine``."""
    x = rng.uniform(0, 1, (N, SIZE, SIZE, C)).astype(np.float32)
    if engine in ("fastnn", "numpy"):
        import fastnn as fnn
        model = fnn.Sequential([fnn.RandomRotation(0.1, fill_mode="mirror", seed=0)],
                               input_shape=(SIZE, SIZE, C),
                               backend="fast" if engine == "fastnn" else "numpy")
        return case_class(w, engine, lambda: model.forward(x, training=True), keep=[model, x])
    import torch
    import torch.nn.functional as F
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    gen = torch.Generator().manual_seed(0)

    def run() -> Any:
        angle = (torch.rand(N, generator=gen) * 2 - 1) * (0.1 * 2 * math.pi)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([torch.stack([cos, -sin, torch.zeros(N)], 1),
                             torch.stack([sin, cos, torch.zeros(N)], 1)], 1)
        grid = F.affine_grid(theta, [N, C, SIZE, SIZE], align_corners=True)
        return F.grid_sample(tx, grid, mode="bilinear", padding_mode="reflection",
                             align_corners=True)
    return case_class(w, engine, run, keep=[x, tx])
