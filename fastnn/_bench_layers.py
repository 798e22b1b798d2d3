"""Benchmark rows of three layers of session 31, float32, against PyTorch:

- ``Resizing b32 64x64x3 -> 96x96 bilinear``: one inference pass, against
  ``F.interpolate(mode="bilinear", align_corners=False, antialias=False)`` (Keras' half-pixel
  sampling; the outputs agree, see ``resizing_disagreement``);
- ``PReLU b64 32x32x16``: forward and backward (input and slope gradients), one slope a channel
  (``shared_axes=[1, 2]``), against ``nn.PReLU(num_parameters=16)``;
- ``GroupNormalization(8) b32 16x16x64``: forward and backward (input, gamma and beta
  gradients), against ``nn.GroupNorm(8, 64)``.

PyTorch runs in NCHW, contiguous or in its channels-last memory format, whichever is faster
for the row on this machine (picked when the case is built). The NumPy backend runs the
layers' twins. Memory-bound element-wise and reduction work, no GEMM, so no FLOP column.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

RESIZE = (32, 64, 3, 96)                # batch, input side, channels, output side
PRELU = (64, 32, 16)                    # batch, side, channels
GROUPNORM = (32, 16, 64, 8)             # batch, side, channels, groups


def workloads(workload_class: Any) -> list:
    """The rows, as ``fastnn.benchmarking.Workload``s."""
    engines = ("fastnn", "numpy", "torch")
    n, s, c, out = RESIZE
    pn, ps, pc = PRELU
    gn, gs, gc, g = GROUPNORM
    return [workload_class(f"Resizing b{n} {s}x{s}x{c} -> {out}x{out} bilinear", "layers",
                           ("resizing",), engines),
            workload_class(f"PReLU b{pn} {ps}x{ps}x{pc} fwd+bwd", "layers", ("prelu",),
                           engines),
            workload_class(f"GroupNormalization({g}) b{gn} {gs}x{gs}x{gc} fwd+bwd", "layers",
                           ("groupnorm",), engines)]


def _fastest(runs: list[Callable[[], Any]]) -> Callable[[], Any]:
    """The quickest of ``runs`` (median of 7 calls each, after 2)."""
    best, pick = float("inf"), runs[0]
    for run in runs:
        run()
        run()
        times = []
        for _ in range(7):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        took = sorted(times)[3]
        if took < best:
            best, pick = took, run
    return pick


def _torch_layouts(torch: Any, x: Any) -> list:
    """x (NHWC NumPy) as NCHW tensors: contiguous, and in the channels-last memory format."""
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    return [t, t.contiguous(memory_format=torch.channels_last)]


def _fastnn_model(engine: str, layer: Any, shape: tuple) -> Any:
    import fastnn as fnn
    return fnn.Sequential([layer], input_shape=shape, seed=0,
                          backend="fast" if engine == "fastnn" else "numpy")


def build(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    """A Case whose ``run()`` is the row's call on ``engine``."""
    return {"resizing": _resizing, "prelu": _prelu, "groupnorm": _groupnorm}[w.params[0]](
        w, engine, rng, case_class)


def _resizing(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    n, s, c, out = RESIZE
    x = rng.uniform(0, 1, (n, s, s, c)).astype(np.float32)
    if engine in ("fastnn", "numpy"):
        import fastnn as fnn
        model = _fastnn_model(engine, fnn.Resizing(out, out), (s, s, c))
        return case_class(w, engine, lambda: model.forward(x, training=False), keep=[model, x])
    import torch
    import torch.nn.functional as F

    def call(t: Any) -> Callable[[], Any]:
        return lambda: F.interpolate(t, size=(out, out), mode="bilinear", align_corners=False,
                                     antialias=False)
    layouts = _torch_layouts(torch, x)
    return case_class(w, engine, _fastest([call(t) for t in layouts]), keep=[x, layouts])


def _train_case(w: Any, engine: str, case_class: Any, layer: Any, torch_module: Any,
                x: Any, dy: Any) -> Any:
    """Forward and backward of ``layer`` (fastnn) or ``torch_module`` on x, dy (NHWC)."""
    if engine in ("fastnn", "numpy"):
        model = _fastnn_model(engine, layer, x.shape[1:])

        def run() -> None:
            model.forward(x, training=True)
            model.backward(dy)
        return case_class(w, engine, run, keep=[model, x, dy])
    import torch

    def call(t: Any, dt: Any) -> Callable[[], None]:
        t = t.detach().requires_grad_(True)

        def run() -> None:
            torch_module(t).backward(dt)
        return run
    pairs = list(zip(_torch_layouts(torch, x), _torch_layouts(torch, dy)))
    return case_class(w, engine, _fastest([call(t, dt) for t, dt in pairs]),
                      keep=[x, dy, pairs, torch_module])


def _prelu(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    n, s, c = PRELU
    x = rng.standard_normal((n, s, s, c)).astype(np.float32)
    dy = rng.standard_normal((n, s, s, c)).astype(np.float32)
    layer = module = None
    if engine == "torch":
        import torch
        module = torch.nn.PReLU(num_parameters=c, init=0.25)
    else:
        import fastnn as fnn
        layer = fnn.PReLU(alpha_initializer=fnn.initializers.Constant(0.25), shared_axes=[1, 2])
    return _train_case(w, engine, case_class, layer, module, x, dy)


def _groupnorm(w: Any, engine: str, rng: Any, case_class: Any) -> Any:
    n, s, c, g = GROUPNORM
    x = rng.standard_normal((n, s, s, c)).astype(np.float32)
    dy = rng.standard_normal((n, s, s, c)).astype(np.float32)
    layer = module = None
    if engine == "torch":
        import torch
        module = torch.nn.GroupNorm(g, c, eps=1e-3)
    else:
        import fastnn as fnn
        layer = fnn.GroupNormalization(g)
    return _train_case(w, engine, case_class, layer, module, x, dy)


def resizing_disagreement(seed: int = 0) -> float:
    """max |fastnn - torch| of the Resizing row's outputs (both float32, values in [0, 1])."""
    import torch
    import torch.nn.functional as F

    import fastnn as fnn
    n, s, c, out = RESIZE
    x = np.random.default_rng(seed).uniform(0, 1, (n, s, s, c)).astype(np.float32)
    mine = fnn.Sequential([fnn.Resizing(out, out)], input_shape=(s, s, c)).predict(x)
    theirs = F.interpolate(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))),
                           size=(out, out), mode="bilinear", align_corners=False,
                           antialias=False).numpy().transpose(0, 2, 3, 1)
    return float(np.abs(mine - theirs).max())
