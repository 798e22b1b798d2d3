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
static void ukr_generic_f32(ptrdiff_t kc, const float *a, const float *b, ptrdiff_t ldb,
                            float *c, ptrdiff_t ldc, float alpha, float beta)
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
        b += ldb;
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
static void ukr_generic_f64(ptrdiff_t kc, const double *a, const double *b, ptrdiff_t ldb,
                            double *c, ptrdiff_t ldc, double alpha, double beta)
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
        b += ldb;
    }
    for (i = 0; i < GMR_D; i++) {
        double *ci = c + i * ldc;
        if (beta == 0.0)
            for (j = 0; j < GNR_D; j++) ci[j] = alpha * ab[i][j];
        else
            for (j = 0; j < GNR_D; j++) ci[j] = beta * ci[j] + alpha * ab[i][j];
    }
}

/* Direct tile: C[mb x nb] := act(alpha * op(A)[mb x k] @ B[k x nb] + beta * C + bias) */
#define GDT(NAME, FT, UT, DNR, EPI)                                                             \
    static void NAME(ptrdiff_t mb, ptrdiff_t nb, ptrdiff_t k, FT alpha, const FT *A,             \
                     ptrdiff_t rsa, ptrdiff_t csa, const FT *B, ptrdiff_t rsb, FT beta, FT *C,    \
                     ptrdiff_t ldc, const FT *bias, int act, FT param, UT *amax)                \
    {                                                                                           \
        FT acc[FNN_DMR][DNR];                                                                   \
        ptrdiff_t i, j, p;                                                                      \
        act &= ~FNN_DT_ROWS_ALIKE; /* one sum per element here: rows alike already */           \
        for (i = 0; i < mb; i++)                                                                \
            for (j = 0; j < DNR; j++) acc[i][j] = (FT)0;                                        \
        for (p = 0; p < k; p++) {                                                               \
            const FT *b = B + p * rsb;                                                          \
            for (i = 0; i < mb; i++) {                                                          \
                const FT a = A[i * rsa + p * csa];                                              \
                for (j = 0; j < nb; j++) acc[i][j] += a * b[j];                                 \
            }                                                                                   \
        }                                                                                       \
        for (i = 0; i < mb; i++) {                                                              \
            FT *c = C + i * ldc;                                                                \
            if (beta == (FT)0)                                                                  \
                for (j = 0; j < nb; j++) c[j] = alpha * acc[i][j];                              \
            else                                                                                \
                for (j = 0; j < nb; j++) c[j] = beta * c[j] + alpha * acc[i][j];                \
        }                                                                                       \
        if (bias != NULL || act != FNN_ACT_LINEAR || amax != NULL)                              \
            EPI(C, ldc, mb, nb, bias, act, param, amax);                                        \
    }
GDT(dtile_generic_f32, float, uint32_t, 16, fnn_epilogue_block_f32)
GDT(dtile_generic_f64, double, uint64_t, 8, fnn_epilogue_block_f64)

/* A narrow C as dot products of A's rows (see fnn_dots_f32): eight partial sums per element,
 * p mod 8 (which the baseline SIMD vectorises), added in one fixed tree; one row at a time,
 * so each row's bits are the same in any product. */
#define GDOTS(NAME, FT)                                                                         \
    static void NAME(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, FT alpha, const FT *A,               \
                     ptrdiff_t rsa, const FT *Bt, ptrdiff_t ldbt, FT *C, ptrdiff_t ldc)          \
    {                                                                                           \
        ptrdiff_t i, j, p, l;                                                                   \
        for (i = 0; i < m; i++)                                                                 \
            for (j = 0; j < n; j++) {                                                           \
                const FT *a = A + i * rsa, *b = Bt + j * ldbt;                                  \
                FT s[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                             \
                for (p = 0; p + 8 <= k; p += 8)                                                 \
                    for (l = 0; l < 8; l++) s[l] += a[p + l] * b[p + l];                        \
                for (l = 0; p + l < k; l++) s[l] += a[p + l] * b[p + l];                        \
                C[i * ldc + j] = alpha * (((s[0] + s[4]) + (s[2] + s[6])) +                     \
                                          ((s[1] + s[5]) + (s[3] + s[7])));                     \
            }                                                                                   \
    }
GDOTS(dots_generic_f32, float)
GDOTS(dots_generic_f64, double)

const fnn_arch fnn_arch_generic = {
    "generic",
    {GMR_S, GNR_S, 128, 256, 2048, ukr_generic_f32, 16, 4, dtile_generic_f32, 0, NULL,
     fnn_epilogue_block_f32, fnn_pack_t_f32, NULL, NULL, NULL, NULL, 0, NULL, 0,
     dots_generic_f32},
    {GMR_D, GNR_D, 64, 256, 1024, ukr_generic_f64, 8, 4, dtile_generic_f64, 0, NULL,
     fnn_epilogue_block_f64, fnn_pack_t_f64, NULL, NULL, NULL, NULL, 0, NULL, 0,
     dots_generic_f64},
};
