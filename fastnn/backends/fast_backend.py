"""The compiled backend: the kernel contract of ``fastnn.backends`` served by the extension.

The kernels live in ``fastnn._ext`` (Cython over the C GEMM of ``src_c/``); this module only
re-exports them under the contract's names. Each kernel takes C-contiguous float32 or float64
arrays of one dtype (the public boundary guarantees it), releases the GIL, and writes into its
``out`` buffers; ``matmul``, ``dense_forward`` and the activations return ``out``.

Thread control reads and sets the OpenMP runtime the kernels use, so ``OMP_NUM_THREADS`` and
threadpoolctl apply as well.
"""

try:
    from fastnn._ext._kernels import (ForwardPlan, TrainPlan, activation_backward, activation_forward,
                                      dense_backward, dense_forward, get_num_threads,
                                      kernel_name, matmul, openmp_enabled, parallel_min_work,
                                      set_num_threads)
    from fastnn._ext._loss import loss
    from fastnn._ext._optim import adam_update, sgd_update
except ImportError as exc:  # pragma: no cover - depends on how fastnn was installed
    raise ImportError(
        "fastnn's compiled extension is missing or broken, so backend='fast' is unavailable "
        f"({exc}). Build it with `pip install .` (or `pip install -e .` in a checkout), "
        "or use backend='numpy'.") from exc

__all__ = [
    "matmul", "dense_forward", "activation_forward", "activation_backward", "dense_backward",
    "loss", "sgd_update", "adam_update",
    "set_num_threads", "get_num_threads", "openmp_enabled", "kernel_name",
    "parallel_min_work", "ForwardPlan",
    "TrainPlan",
]
