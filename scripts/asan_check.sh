#!/usr/bin/env bash
# Build fastnn's compiled backend with AddressSanitizer + UBSan in a throwaway copy of the
# checkout and run the kernel tests against it. The in-place build is never touched.
#
#   scripts/asan_check.sh            # kernel tests + property/numerics tests
#   scripts/asan_check.sh -k matmul  # extra arguments go to pytest
#   KEEP=1 scripts/asan_check.sh     # keep the copy (its path is printed)
#
# Needs gcc (libasan, libubsan), Cython, NumPy and pytest. Exit status: 0 when every test file
# passed, 1 when one failed (its log is printed whole), 2 when the sanitized build or its sanity
# check fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fastnn_asan.XXXXXX")"
cleanup() {
    if [[ "${KEEP:-0}" == 1 ]]; then echo "asan_check: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
START=$SECONDS

# 1. a copy of the sources (no compiled objects, no build directory)
cd "$ROOT"
for item in setup.py pyproject.toml MANIFEST.in README.md fastnn src_c tests; do
    [[ -e "$item" ]] && cp -r "$item" "$WORK/"
done
find "$WORK" \( -name '*.so' -o -name '*.pyd' -o -name '__pycache__' \) -prune -exec rm -rf {} +

# 2. the sanitized build, in place inside the copy
cd "$WORK"
echo "asan_check: building with FASTNN_SANITIZE=1 in $WORK"
if ! FASTNN_SANITIZE=1 "$PYTHON" setup.py -q build_ext --inplace >build.log 2>&1; then
    tail -n 40 build.log
    echo "asan_check: the sanitized build failed (log above)"
    exit 2
fi

ASAN_LIB="$(gcc -print-file-name=libasan.so)"
UBSAN_LIB="$(gcc -print-file-name=libubsan.so)"
export LD_PRELOAD="$ASAN_LIB:$UBSAN_LIB"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONPATH="$WORK${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1

# 3. make sure the tests will import the sanitized copy, not the checkout
if ! "$PYTHON" - "$WORK" <<'EOF'
import os, sys
import fastnn
from fastnn._ext import (_attention, _conv, _decode, _depthwise, _embedding, _kernels,
                        _keras_attention, _layer_ops, _loss, _normalization, _optim, _pooling,
                        _recurrent, _conv_lstm)
work = os.path.realpath(sys.argv[1])
for mod in (fastnn, _kernels, _loss, _optim, _normalization, _layer_ops, _conv, _pooling,
            _recurrent, _embedding, _attention, _decode, _depthwise, _keras_attention,
            _conv_lstm):
    path = os.path.realpath(mod.__file__)
    assert path.startswith(work + os.sep), f"{mod.__name__} imported from {path}"
    with open(path, "rb") as f:
        if mod is not fastnn:
            assert b"__asan" in f.read(), f"{path} is not built with AddressSanitizer"
print("asan_check: using the sanitized build:", os.path.dirname(_kernels.__file__))
EOF
then
    echo "asan_check: sanity check failed"
    exit 2
fi

# 4. the kernel tests, the property/numerics tests and the hostile-use tests, under the
#    sanitizers (their subprocesses inherit the sanitized build and its preload). One pytest per
#    file, two at a time (the machine's two cores; under ASan one run took 18 minutes serially),
#    the longest first; each file's log is printed whole when it ends, so output never interleaves.
TESTS=()
for t in tests/test_hostile_model.py tests/test_threads_hostile.py tests/test_recurrent.py \
         tests/test_hostile_state_machine.py tests/test_properties.py tests/test_backends.py \
         tests/test_gradients.py tests/test_attention.py tests/test_interrupts.py \
         tests/test_conv.py tests/test_mha.py tests/test_pooling.py tests/test_transformer.py \
         tests/test_conv1d_transpose.py tests/test_recurrent_dropout.py \
         tests/test_losses_optimizers_keras.py tests/test_model_files_v2.py \
         tests/test_train_plan.py tests/test_layers_graph.py tests/test_decoding.py \
         tests/test_embedding.py tests/test_layer_kernels.py tests/test_hyperparameters.py \
         tests/test_ops.py tests/test_numerics.py tests/test_infer_plan.py \
         tests/test_conv_small_backward.py tests/test_conv_strided.py tests/test_gelu.py \
         tests/test_conv_dgrad1.py tests/test_conv_wino.py tests/test_conv_direct.py \
         tests/test_conv_pooled.py tests/test_validation.py tests/test_conv_transpose.py \
         tests/test_preprocessing_layers.py tests/test_time_distributed.py \
         tests/test_padding_cropping.py tests/test_merge_layers.py \
         tests/test_permute_noise_layers.py tests/test_optimizers_adaptive.py \
         tests/test_torch_parity_reshape_merge.py tests/test_label_smoothing.py \
         tests/test_activations_keras.py tests/test_masking.py tests/test_depthwise_conv.py \
         tests/test_conv3d.py tests/test_augmentation.py tests/test_image_resizing.py \
         tests/test_group_normalization.py tests/test_keras_attention_layers.py \
         tests/test_keras_attention_fused.py \
         tests/test_attention_dropout.py tests/test_conv3d_forward.py \
         tests/test_conv3d_transpose.py tests/test_conv3d_backward.py tests/test_conv_lstm.py \
         tests/test_prelu.py tests/test_resizing_separable.py \
         tests/test_dropout_keras_attention.py tests/test_dropout_conv_lstm.py \
         tests/test_rms_normalization.py tests/test_attention_qk_mask.py \
         tests/test_shared_layers.py \
         tests/test_layernorm_axes.py tests/test_stateful_rnn.py tests/test_conv_lstm_stateful.py \
         tests/test_gru_reset_before.py \
         tests/test_grouped_conv.py \
         tests/test_layernorm_blocks.py; do
    if [[ -f "$t" ]]; then TESTS+=("$t"); else echo "asan_check: $t not found, skipped"; fi
done
LOGS="$(mktemp -d)"
export ASAN_CHECK_LOGS="$LOGS" ASAN_CHECK_PYTHON="$PYTHON"
run_one() {
    local log="$ASAN_CHECK_LOGS/$(basename "$1").log" status t0=$SECONDS
    "$ASAN_CHECK_PYTHON" -m pytest "$@" -q -p no:cacheprovider > "$log" 2>&1
    status=$?
    # with a -k selection, a file with nothing selected is no failure
    [[ $status -eq 5 && $# -gt 1 ]] && status=0
    {
        echo "asan_check: $1: exit $status after $((SECONDS - t0)) s"
        if [[ $status -ne 0 ]]; then cat "$log"; else tail -n 1 "$log"; fi
    }
    [[ $status -eq 0 ]]       # any failure is 1 (xargs then reports 123)
}
export -f run_one
set +e
printf '%s\n' "${TESTS[@]}" | xargs -P 2 -I{} bash -c 'run_one "$@"' _ {} "$@"
STATUS=$?
set -e
rm -rf "$LOGS"
[[ $STATUS -eq 0 ]] || STATUS=1
echo "asan_check: pytest exit status $STATUS after $((SECONDS - START)) s"
exit $STATUS
