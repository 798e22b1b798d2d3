"""The compiled backend: the kernel contract of ``fastnn.backends`` served by the extension.

The kernels live in ``fastnn._ext`` (Cython over the C GEMM of ``src_c/``); this module only
re-exports them under the contract's names. Each kernel takes C-contiguous float32 or float64
arrays of one dtype (the public boundary guarantees it), releases the GIL, and writes into its
``out`` buffers; ``matmul``, ``dense_forward`` and the activations return ``out``.

Thread control reads and sets the OpenMP runtime the kernels use, so ``OMP_NUM_THREADS`` and
threadpoolctl apply as well.
"""

import os
import warnings

try:
    from fastnn._ext._kernels import (ForwardPlan, InferPlan, ThreadChooser, TrainPlan,
                                      activation_backward, activation_forward, activation_forward_deriv,
                                      adaptive_threads, dense_backward,
                                      dense_forward, get_num_threads, kernel_name, matmul,
                                      openmp_enabled, parallel_min_work, set_adaptive_threads,
                                      set_num_threads, thread_limit)
    from fastnn._ext._conv import (conv2d_backward, conv2d_backward_input,
                                   conv2d_backward_pooled, conv2d_forward,
                                   conv3d_forward, conv3d_backward_kernel, conv3d_unstack,
                                   conv2d_dx_on_gemm, conv2d_grouped_backward,
                                   conv2d_grouped_forward)
    from fastnn._ext._depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
    from fastnn._ext._embedding import embedding_backward, embedding_forward
    from fastnn._ext._loss import loss
    from fastnn._ext._recurrent import rnn_backward, rnn_forward, rnn_sizes
    from fastnn._ext._conv_lstm import conv_lstm_gates_backward, conv_lstm_gates_forward
    from fastnn._ext._attention import attention_backward, attention_forward
    from fastnn._ext._decode import (AddRowStep, BlockStep, DenseStep, EmbedStep, NormStep,
                                     attention_decode)
    from fastnn._ext._pooling import (avgpool2d_backward, avgpool2d_forward,
                                      global_avgpool_backward, global_avgpool_forward,
                                      global_maxpool_backward, global_maxpool_forward,
                                      maxpool2d_backward, maxpool2d_backward_relu,
                                      maxpool2d_forward)
    from fastnn._ext._layer_ops import (add_forward, add_row_vector, concat_backward,
                                        concat_forward, dropout_mask, multiply, sum_rows_into,
                                        upsample2d_backward, upsample2d_forward, affine_rows,
                                        copy_window, binary_op, divide_scalar, select_update,
                                        select_grad, gaussian_noise, scale_channels,
                                        permute_axes, masking_forward, masking_backward,
                                        prelu_forward, prelu_backward,
                                        affine_resample, affine_resample_backward,
                                        resample_grid, resample_grid_backward,
                                        resize_separable, resize_separable_backward)
    from fastnn._ext._normalization import (batchnorm_backward, batchnorm_forward_infer,
                                            batchnorm_forward_train, layernorm_backward,
                                            layernorm_forward, groupnorm_forward,
                                            groupnorm_backward, rmsnorm_forward,
                                            rmsnorm_backward)
    from fastnn._ext._optim import (adagrad_update, adam_update, adamax_update, adamw_update,
                                    clip_gradients, nadam_update, rmsprop_update, sgd_update)
    from fastnn._ext._keras_attention import (additive_scores, additive_scores_backward,
                                              batched_matmul, cosine_backward,
                                              cosine_forward, dot_attention_backward,
                                              dot_attention_forward, masked_softmax,
                                              softmax_backward,
                                              unit_norm_backward, unit_norm_forward,
                                              weights_dropout)
except ImportError as exc:  # pragma: no cover - depends on how fastnn was installed
    raise ImportError(
        "fastnn's compiled extension is missing or broken, so backend='fast' is unavailable "
        f"({exc}). Build it with `pip install .` (or `pip install -e .` in a checkout), "
        "or use backend='numpy'.") from exc

# FASTNN_KERNEL names a micro-kernel flavour (src_c/fnn_gemm.c reads it on first use); any other
# value is ignored (the best flavour for this CPU is used), which a typo should not hide.
_KERNEL_NAMES = ("generic", "avx2", "avx512")
_requested_kernel = os.environ.get("FASTNN_KERNEL", "")
if _requested_kernel and _requested_kernel not in _KERNEL_NAMES:
    _shown = repr(_requested_kernel)
    warnings.warn(f"FASTNN_KERNEL must be one of {_KERNEL_NAMES}; ignoring FASTNN_KERNEL="
                  f"{_shown if len(_shown) <= 80 else _shown[:77] + '...'} "
                  f"(using {kernel_name()!r})", RuntimeWarning)



def dropout_forward(x, mask, out):
    """out := x * mask (any shape, all C-contiguous)."""
    multiply(x.reshape(-1), mask.reshape(-1), out.reshape(-1))


def dropout_backward(dy, mask, dx):
    """dx := dy * mask (any shape, all C-contiguous)."""
    multiply(dy.reshape(-1), mask.reshape(-1), dx.reshape(-1))


# The default thread count: the CPUs this process may really use (the affinity mask, which
# OpenMP already follows, and a cgroup CPU quota, which it does not: a container given 1.5 CPUs
# on a 2-core host would otherwise run 2 threads and be throttled). OMP_NUM_THREADS, when set,
# is OpenMP's to apply. `fastnn info` prints where the count came from.
def _default_threads():
    from fastnn._cpu_quota import default_threads
    count, source = default_threads()
    if not os.environ.get("OMP_NUM_THREADS", "").strip():
        count = max(1, min(count, thread_limit()))
        if count != get_num_threads():
            set_num_threads(count)
    return count, source


DEFAULT_THREADS, DEFAULT_THREADS_SOURCE = _default_threads()

# FASTNN_ADAPTIVE_THREADS=0 makes the plans use the allowed thread count always (see
# fastnn.set_adaptive_threads); any other value keeps the default.
if os.environ.get("FASTNN_ADAPTIVE_THREADS", "").strip() == "0":
    set_adaptive_threads(False)

__all__ = [
    "matmul", "dense_forward", "activation_forward", "activation_forward_deriv",
    "activation_backward", "dense_backward",
    "loss", "sgd_update", "adam_update", "rmsprop_update", "adamw_update", "adagrad_update",
    "adamax_update", "nadam_update", "clip_gradients",
    "set_num_threads", "get_num_threads", "thread_limit", "openmp_enabled", "kernel_name",
    "parallel_min_work", "ForwardPlan", "InferPlan", "adaptive_threads", "set_adaptive_threads",
    "ThreadChooser",
    "TrainPlan", "batchnorm_forward_train", "batchnorm_forward_infer", "batchnorm_backward",
    "layernorm_forward", "layernorm_backward", "groupnorm_forward", "groupnorm_backward",
    "rmsnorm_forward", "rmsnorm_backward",
    "dropout_mask", "dropout_forward",
    "dropout_backward", "add_forward", "add_row_vector", "sum_rows_into", "concat_forward", "concat_backward", "conv2d_forward",
    "conv2d_backward", "conv2d_backward_input", "conv2d_backward_pooled", "conv3d_forward",
    "conv3d_backward_kernel", "conv3d_unstack", "conv2d_dx_on_gemm", "conv2d_grouped_forward",
    "conv2d_grouped_backward",
    "depthwise_conv2d_forward", "depthwise_conv2d_backward",
    "upsample2d_forward", "upsample2d_backward", "affine_rows", "copy_window",
    "binary_op", "divide_scalar", "select_update", "select_grad", "gaussian_noise",
    "scale_channels", "permute_axes", "masking_forward", "masking_backward", "prelu_forward", "prelu_backward",
    "affine_resample",
    "affine_resample_backward", "resample_grid", "resample_grid_backward",
    "resize_separable", "resize_separable_backward", "maxpool2d_forward", "maxpool2d_backward",
    "maxpool2d_backward_relu", "avgpool2d_forward",
    "avgpool2d_backward", "global_avgpool_forward", "global_avgpool_backward",
    "global_maxpool_forward", "global_maxpool_backward", "rnn_sizes", "rnn_forward",
    "rnn_backward", "embedding_forward", "embedding_backward", "attention_forward",
    "attention_backward", "attention_decode", "BlockStep", "EmbedStep", "AddRowStep", "NormStep", "DenseStep",
    "batched_matmul", "unit_norm_forward", "unit_norm_backward", "masked_softmax",
    "softmax_backward", "additive_scores", "additive_scores_backward", "weights_dropout",
    "dot_attention_forward", "dot_attention_backward", "cosine_forward", "cosine_backward",
    "conv_lstm_gates_forward", "conv_lstm_gates_backward",
]
