/*
 * The GEMM epilogue (fnn_epi_tmpl.h) for float and double, compiled with a SIMD flavour's target
 * attribute: included by the flavour's kernel file with EPI_TARGET (the attribute), EPI_F32 and
 * EPI_F64 (the two static functions' names) defined, and optionally EPI_GELU_BLOCK_F32 (the
 * flavour's exact float gelu on a block, fnn_gelu_simd.h), which are undefined again at the end.
 */
#include <math.h>
#include <string.h>

#include "fnn_gelu.h"

#define EPI_STORAGE static
#define FT float
#define UT uint32_t
#define UT_ABS FNN_ABS_BITS_F32
#define FT_EXP expf
#define FT_TANH tanhf
#define FT_GELU fnn_gelu_f32
#define FT_GELU_TANH fnn_gelu_tanh_f32
#define FT_KERAS_ACT fnn_keras_act_f32
#ifdef EPI_GELU_BLOCK_F32
#define FT_GELU_BLOCK EPI_GELU_BLOCK_F32
#endif
#define EPI_FN EPI_F32
#include "fnn_epi_tmpl.h"
#undef FT_GELU_BLOCK
#undef EPI_FN
#undef FT
#undef UT
#undef UT_ABS
#undef FT_EXP
#undef FT_TANH
#undef FT_GELU
#undef FT_GELU_TANH
#undef FT_KERAS_ACT
#define FT double
#define UT uint64_t
#define UT_ABS FNN_ABS_BITS_F64
#define FT_EXP exp
#define FT_TANH tanh
#define FT_GELU fnn_gelu_f64
#define FT_GELU_TANH fnn_gelu_tanh_f64
#define FT_KERAS_ACT fnn_keras_act_f64
#define EPI_FN EPI_F64
#include "fnn_epi_tmpl.h"
#undef EPI_FN
#undef FT
#undef UT
#undef UT_ABS
#undef FT_EXP
#undef FT_TANH
#undef FT_GELU
#undef FT_GELU_TANH
#undef FT_KERAS_ACT
#undef EPI_STORAGE
#undef EPI_TARGET
#undef EPI_F32
#undef EPI_F64
#undef EPI_GELU_BLOCK_F32
