/*
 * Portable plain-C micro-kernels (the fallback on any CPU, and FASTNN_KERNEL=generic).
 *
 * Written so that gcc -O3 can keep the whole accumulator tile in registers and vectorize it with
 * whatever baseline SIMD the target has (SSE2 on x86-64): fixed MR x NR, fully unrollable loops.
 * No fused multiply-add here -- without a target FMA unit fma() would be a slow library call.
 */
#include "fnn_gemm_internal.h"

#define GMR_S 4
#define GNR_S 8
#define GMR_D 4
#define GNR_D 4

/* C[4x8] := alpha * sum_p a[p,:]^T b[p,:] + beta * C */
static void ukr_generic_f32(ptrdiff_t kc, const float *a, const float *b, float *c, ptrdiff_t ldc,
                            float alpha, float beta)
{
    float ab[GMR_S][GNR_S];
    ptrdiff_t p;
    int i, j;
    for (i = 0; i < GMR_S; i++)
        for (j = 0; j < GNR_S; j++) ab[i][j] = 0.0f;
    for (p = 0; p < kc; p++) {
        for (i = 0; i < GMR_S; i++)
            for (j = 0; j < GNR_S; j++) ab[i][j] += a[i] * b[j];
        a += GMR_S;
        b += GNR_S;
    }
    for (i = 0; i < GMR_S; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            for (j = 0; j < GNR_S; j++) ci[j] = alpha * ab[i][j];
        else
            for (j = 0; j < GNR_S; j++) ci[j] = beta * ci[j] + alpha * ab[i][j];
    }
}

/* C[4x4] := alpha * sum_p a[p,:]^T b[p,:] + beta * C */
static void ukr_generic_f64(ptrdiff_t kc, const double *a, const double *b, double *c,
                            ptrdiff_t ldc, double alpha, double beta)
{
    double ab[GMR_D][GNR_D];
    ptrdiff_t p;
    int i, j;
    for (i = 0; i < GMR_D; i++)
        for (j = 0; j < GNR_D; j++) ab[i][j] = 0.0;
    for (p = 0; p < kc; p++) {
        for (i = 0; i < GMR_D; i++)
            for (j = 0; j < GNR_D; j++) ab[i][j] += a[i] * b[j];
        a += GMR_D;
        b += GNR_D;
    }
    for (i = 0; i < GMR_D; i++) {
        double *ci = c + i * ldc;
        if (beta == 0.0)
            for (j = 0; j < GNR_D; j++) ci[j] = alpha * ab[i][j];
        else
            for (j = 0; j < GNR_D; j++) ci[j] = beta * ci[j] + alpha * ab[i][j];
    }
}

/* Direct small-product path, plain C. */
#define DTARGET
#define DFMA(a, b, c) ((a) * (b) + (c))

#define FT float
#define DFN(x) x##_generic_f32
#define DEPI fnn_epilogue_block_f32
#include "fnn_direct_tmpl.h"
#undef FT
#undef DFN
#undef DEPI

#define FT double
#define DFN(x) x##_generic_f64
#define DEPI fnn_epilogue_block_f64
#include "fnn_direct_tmpl.h"
#undef FT
#undef DFN
#undef DEPI

#undef DTARGET
#undef DFMA

const fnn_arch fnn_arch_generic = {
    "generic",
    {GMR_S, GNR_S, 128, 256, 2048, ukr_generic_f32},
    {GMR_D, GNR_D, 64, 256, 1024, ukr_generic_f64},
    direct_generic_f32,
    direct_generic_f64,
};
