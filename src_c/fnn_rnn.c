/*
 * fastnn recurrent layers (see fnn_rnn.h): the gate loops of fnn_rnn_gates_tmpl.h in each
 * instruction-set flavour, then the driver of fnn_rnn_tmpl.h for float and double.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fnn_ftz.h"
#include "fnn_gemm.h"
#include "fnn_gemm_internal.h"
#include "fnn_rnn.h"
#include "fnn_threads.h"
#include "fnn_vexp.h"

static ptrdiff_t fnn_rnn_gates(int cell)
{
    return cell == FNN_RNN_LSTM ? 4 : (cell == FNN_RNN_GRU || cell == FNN_RNN_GRU_RB ? 3 : 1);
}

/* Row groups of the recurrence: rows are independent through time, so a batch of at least
 * 2 * FNN_RNN_GROUP_ROWS rows runs as groups of at least that many (at most FNN_RNN_MAX_GROUPS),
 * each with its own time loop, on threads with no synchronisation per step. The groups depend
 * on the shapes alone, never on the thread count, and the bias sums are added group by group in
 * order: the results are the same at any thread count. Only while the recurrent kernel (ubytes)
 * is small: each group reads all of it at every step, which L2 then serves. */
#define FNN_RNN_GROUP_ROWS 16
#define FNN_RNN_MAX_GROUPS 8
#define FNN_RNN_GROUP_MAX_BYTES (128 * 1024)

static ptrdiff_t fnn_rnn_groups(ptrdiff_t n, ptrdiff_t ubytes)
{
    const ptrdiff_t q = n / FNN_RNN_GROUP_ROWS;
    if (ubytes > FNN_RNN_GROUP_MAX_BYTES || q < 2) return 1;
    return q > FNN_RNN_MAX_GROUPS ? FNN_RNN_MAX_GROUPS : q;
}

/* Threads for `groups` of a recurrence of `work` multiply-adds: one below the GEMM's floor. */
static int fnn_rnn_threads(ptrdiff_t groups, ptrdiff_t work)
{
    int nt = fnn_max_threads();
    if (groups < 2 || (double)work < fnn_par_min_work()) return 1;
    if (nt > groups) nt = (int)groups;
    return nt < 1 ? 1 : nt;
}

void fnn_rnn_sizes(int cell, ptrdiff_t T, ptrdiff_t d, ptrdiff_t u, ptrdiff_t *fwd,
                   ptrdiff_t *bwd)
{
    const ptrdiff_t K = fnn_rnn_gates(cell) * u;
    const int simple = cell == FNN_RNN_SIMPLE, lstm = cell == FNN_RNN_LSTM,
              gru = cell == FNN_RNN_GRU, rb = cell == FNN_RNN_GRU_RB;
    /* the LSTM's inputs and outputs side by side ([x_t | h_t-1] rows, one more x row) */
    *fwd = T * d + (simple ? 0 : T * K) + (T + 1) * u + (lstm ? (T + 1) * u + d : 0) +
           (simple ? 0 : T * u) + (gru || rb ? K : 0);
    /* the LSTM's gate gradients replace its gates in the forward's workspace; the GRU's
     * reset-before one keeps the step's dL/d(r h) where the LSTM keeps dc */
    *bwd = (lstm ? 0 : T * K) + (gru ? T * K : 0) + T * d + u + (lstm || rb ? u : 0);
}

/* Float sigmoid and tanh without libm calls, so that the gate loops vectorise (libm's tanhf is a
 * call per element: ~10x the cost of the rest of an LSTM step). sigmoid from exp(-|z|) (never
 * overflows); tanh = (1 - e) / (1 + e) with e = exp(-2|z|) where that has no cancellation
 * (|z| >= 0.5), its Taylor series to z^15 below (relative error < 1e-8 there). NaN propagates.
 * Double keeps libm (the parity tests hold double to 1e-10). */
static inline __attribute__((always_inline)) float fnn_rnn_sigmoidf(float z)
{
    const float e = fnn_expf(-fabsf(z));
    const float s = 1.0f / (1.0f + e);
    return z >= 0.0f ? s : e * s;
}

static inline __attribute__((always_inline)) float fnn_rnn_tanhf(float z)
{
    const float a = fabsf(z), a2 = a * a;
    const float e = fnn_expf(-2.0f * a);
    const float big = (1.0f - e) / (1.0f + e);
    float p = -929569.0f / 638512875.0f;
    float t;
    p = p * a2 + 21844.0f / 6081075.0f;
    p = p * a2 - 1382.0f / 155925.0f;
    p = p * a2 + 62.0f / 2835.0f;
    p = p * a2 - 17.0f / 315.0f;
    p = p * a2 + 2.0f / 15.0f;
    p = p * a2 - 1.0f / 3.0f;
    t = a < 0.5f ? a + a * a2 * p : big;
    return (z != z) ? z : copysignf(t, z);
}

static inline double fnn_rnn_sigmoid(double z)
{
    if (z >= 0.0) return 1.0 / (1.0 + exp(-z));
    {
        const double e = exp(z);
        return e / (1.0 + e);
    }
}

/* The gate loops per type and flavour. */
#define FNN_RNN_CAT_(a, b, c) a##b##c
#define FNN_RNN_CAT(a, b, c) FNN_RNN_CAT_(a, b, c)

#define FT float
#define G_SIGMOID fnn_rnn_sigmoidf
#define G_TANH fnn_rnn_tanhf
#define GTARGET
#define GFN(x) FNN_RNN_CAT(x, _generic, _f32)
#include "fnn_rnn_gates_tmpl.h"
#undef GFN
#undef GTARGET
#if FNN_X86
#define GTARGET __attribute__((target("avx2,fma")))
#define GFN(x) FNN_RNN_CAT(x, _avx2, _f32)
#include "fnn_rnn_gates_tmpl.h"
#undef GFN
#undef GTARGET
#define GTARGET __attribute__((target("avx512f,avx512dq,avx2,fma")))
#define GFN(x) FNN_RNN_CAT(x, _avx512, _f32)
#include "fnn_rnn_gates_tmpl.h"
#undef GFN
#undef GTARGET
#endif
#undef FT
#undef G_SIGMOID
#undef G_TANH

#define FT double
#define G_SIGMOID fnn_rnn_sigmoid
#define G_TANH tanh
#define GTARGET
#define GFN(x) FNN_RNN_CAT(x, _generic, _f64)
#include "fnn_rnn_gates_tmpl.h"
#undef GFN
#undef GTARGET
#if FNN_X86
#define GTARGET __attribute__((target("avx2,fma")))
#define GFN(x) FNN_RNN_CAT(x, _avx2, _f64)
#include "fnn_rnn_gates_tmpl.h"
#undef GFN
#undef GTARGET
#define GTARGET __attribute__((target("avx512f,avx512dq,avx2,fma")))
#define GFN(x) FNN_RNN_CAT(x, _avx512, _f64)
#include "fnn_rnn_gates_tmpl.h"
#undef GFN
#undef GTARGET
#endif
#undef FT
#undef G_SIGMOID
#undef G_TANH

#if FNN_X86
#include <immintrin.h>
/* small_gemm (fnn_rnn_gates_tmpl.h) for AVX-512 and AVX2 with its accumulators in registers: 8
 * vectors of C's row through all k updates (the C loop kept them on the stack: with AVX2, 16
 * ymm accumulators for its 512-bit blocks, spilled every update, were half of an LSTM's
 * one-sequence predict on Zen 2), then 1 vector at a time, the tail masked. The same
 * operations in the same order as the C loop (a product, then a sum: no fused multiply-add),
 * so every flavour gives the same bits. */
#define FNN_RNN_SMALL_GEMM(NAME, TARGET, FT, VT, MT, LANES, MASK, SET1, ZERO, LOADU, STOREU,   \
                           MLOAD, MSTORE, MUL, ADD)                                          \
    __attribute__((target(TARGET))) static void NAME(                                         \
        ptrdiff_t n, ptrdiff_t m, ptrdiff_t k, const FT *A, ptrdiff_t lda, const FT *B,         \
        ptrdiff_t ldb, FT beta, FT *C, ptrdiff_t ldc)                                         \
    {                                                                                         \
        ptrdiff_t i, p, j0, v;                                                                \
        for (i = 0; i < n; i++) {                                                             \
            FT *c = C + i * ldc;                                                              \
            const FT *a = A + i * lda;                                                        \
            for (j0 = 0; j0 + 8 * LANES <= m; j0 += 8 * LANES) {                              \
                VT acc[8];                                                                    \
                for (v = 0; v < 8; v++)                                                       \
                    acc[v] = beta == (FT)0 ? ZERO() : LOADU(c + j0 + v * LANES);             \
                for (p = 0; p < k; p++) {                                                     \
                    const VT ap = SET1(a[p]);                                                 \
                    const FT *b = B + p * ldb + j0;                                           \
                    acc[0] = ADD(acc[0], MUL(ap, LOADU(b)));                                  \
                    acc[1] = ADD(acc[1], MUL(ap, LOADU(b + LANES)));                          \
                    acc[2] = ADD(acc[2], MUL(ap, LOADU(b + 2 * LANES)));                      \
                    acc[3] = ADD(acc[3], MUL(ap, LOADU(b + 3 * LANES)));                      \
                    acc[4] = ADD(acc[4], MUL(ap, LOADU(b + 4 * LANES)));                      \
                    acc[5] = ADD(acc[5], MUL(ap, LOADU(b + 5 * LANES)));                      \
                    acc[6] = ADD(acc[6], MUL(ap, LOADU(b + 6 * LANES)));                      \
                    acc[7] = ADD(acc[7], MUL(ap, LOADU(b + 7 * LANES)));                      \
                }                                                                             \
                for (v = 0; v < 8; v++) STOREU(c + j0 + v * LANES, acc[v]);                   \
            }                                                                                 \
            for (; j0 < m; j0 += LANES) {                                                     \
                const ptrdiff_t left = m - j0;                                                \
                const MT mask = MASK(left);                                                   \
                VT acc = beta == (FT)0 ? ZERO() : MLOAD(mask, c + j0);                        \
                for (p = 0; p < k; p++)                                                       \
                    acc = ADD(acc, MUL(SET1(a[p]), MLOAD(mask, B + p * ldb + j0)));          \
                MSTORE(c + j0, mask, acc);                                                    \
            }                                                                                 \
        }                                                                                     \
    }
#define FNN_AVX512_TARGET "avx512f,avx512dq,avx2,fma"
#define FNN_MASK16(left) ((__mmask16)((left) >= 16 ? 0xFFFF : ((1u << (left)) - 1u)))
#define FNN_MASK8(left) ((__mmask8)((left) >= 8 ? 0xFF : ((1u << (left)) - 1u)))
FNN_RNN_SMALL_GEMM(small_gemm_avx512i_f32, FNN_AVX512_TARGET, float, __m512, __mmask16, 16,
                   FNN_MASK16, _mm512_set1_ps, _mm512_setzero_ps, _mm512_loadu_ps,
                   _mm512_storeu_ps, _mm512_maskz_loadu_ps, _mm512_mask_storeu_ps, _mm512_mul_ps,
                   _mm512_add_ps)
FNN_RNN_SMALL_GEMM(small_gemm_avx512i_f64, FNN_AVX512_TARGET, double, __m512d, __mmask8, 8,
                   FNN_MASK8, _mm512_set1_pd, _mm512_setzero_pd, _mm512_loadu_pd,
                   _mm512_storeu_pd, _mm512_maskz_loadu_pd, _mm512_mask_storeu_pd, _mm512_mul_pd,
                   _mm512_add_pd)
/* AVX2: lane masks as vectors (lane i set when i < left), masked loads read 0 and never fault */
#define FNN_YMASK_F32(left)                                                                   \
    _mm256_cmpgt_epi32(_mm256_set1_epi32((int)((left) < 8 ? (left) : 8)),                    \
                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define FNN_YMASK_F64(left)                                                                   \
    _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)((left) < 4 ? (left) : 4)),               \
                       _mm256_setr_epi64x(0, 1, 2, 3))
#define FNN_YLOAD_F32(mask, p) _mm256_maskload_ps(p, mask)
#define FNN_YSTORE_F32(p, mask, v) _mm256_maskstore_ps(p, mask, v)
#define FNN_YLOAD_F64(mask, p) _mm256_maskload_pd(p, mask)
#define FNN_YSTORE_F64(p, mask, v) _mm256_maskstore_pd(p, mask, v)
FNN_RNN_SMALL_GEMM(small_gemm_avx2i_f32, "avx2,fma", float, __m256, __m256i, 8, FNN_YMASK_F32,
                   _mm256_set1_ps, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps,
                   FNN_YLOAD_F32, FNN_YSTORE_F32, _mm256_mul_ps, _mm256_add_ps)
FNN_RNN_SMALL_GEMM(small_gemm_avx2i_f64, "avx2,fma", double, __m256d, __m256i, 4, FNN_YMASK_F64,
                   _mm256_set1_pd, _mm256_setzero_pd, _mm256_loadu_pd, _mm256_storeu_pd,
                   FNN_YLOAD_F64, FNN_YSTORE_F64, _mm256_mul_pd, _mm256_add_pd)
#undef FNN_AVX512_TARGET
#undef FNN_MASK16
#undef FNN_MASK8
#undef FNN_YMASK_F32
#undef FNN_YMASK_F64
#undef FNN_YLOAD_F32
#undef FNN_YSTORE_F32
#undef FNN_YLOAD_F64
#undef FNN_YSTORE_F64
#undef FNN_RNN_SMALL_GEMM
#endif

#define FNN_RNN_GATES_TABLE(FT, SUF)                                                          \
    typedef struct {                                                                          \
        void (*act)(FT *, ptrdiff_t, int);                                                    \
        void (*small_gemm)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const FT *, ptrdiff_t, const FT *,  \
                           ptrdiff_t, FT, FT *, ptrdiff_t);                                   \
        void (*simple_bwd)(const FT *, const FT *, FT *, ptrdiff_t, int);                     \
        void (*colsum)(const FT *, ptrdiff_t, ptrdiff_t, double *);                           \
        void (*lstm_fwd)(FT *, const FT *, FT *, FT *, FT *, ptrdiff_t, ptrdiff_t,            \
                         ptrdiff_t, int, int);                                                \
        void (*lstm_bwd)(FT *, const FT *, const FT *, const FT *, FT *, ptrdiff_t,           \
                         ptrdiff_t, int, int);                                                \
        void (*gru_fwd)(FT *, const FT *, const FT *, FT *, FT *, ptrdiff_t, ptrdiff_t, int,  \
                        int);                                                                 \
        void (*gru_bwd)(const FT *, const FT *, const FT *, FT *, FT *, FT *, ptrdiff_t,      \
                        ptrdiff_t, int, int);                                                 \
        /* the GRU's with reset_after=False (the two halves around each product) */           \
        void (*gru_rb_fwd1)(FT *, const FT *, const FT *, FT *, ptrdiff_t, ptrdiff_t, int);   \
        void (*gru_rb_fwd2)(FT *, const FT *, const FT *, FT *, ptrdiff_t, ptrdiff_t, int);   \
        void (*gru_rb_bwd1)(const FT *, const FT *, FT *, FT *, ptrdiff_t, ptrdiff_t, int,    \
                            int);                                                             \
        void (*gru_rb_bwd2)(const FT *, const FT *, FT *, FT *, ptrdiff_t, ptrdiff_t, int);   \
        /* a step's product on 4-row tiles (see fnn_rnn_tmpl.h's step_gemm), or NULL */       \
        void (*step4)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const FT *, ptrdiff_t, const FT *,      \
                      ptrdiff_t, int, FT *, ptrdiff_t, const FT *);                            \
    } fnn_rnn_gates##SUF;
FNN_RNN_GATES_TABLE(float, _f32)
FNN_RNN_GATES_TABLE(double, _f64)

#define FNN_RNN_ENTRY(FL, SUF)                                                                \
    FNN_RNN_ENTRY_WITH(FL, SUF, act_##FL##SUF, small_gemm_##FL##SUF, lstm_fwd_##FL##SUF,      \
                       lstm_bwd_##FL##SUF, NULL)
#define FNN_RNN_ENTRY_WITH(FL, SUF, ACT, SMALL, LSTM_FWD, LSTM_BWD, STEP4)                    \
    {ACT,      SMALL,    simple_bwd_##FL##SUF, colsum_##FL##SUF,                              \
     LSTM_FWD, LSTM_BWD, gru_fwd_##FL##SUF,    gru_bwd_##FL##SUF,                             \
     gru_rb_fwd1_##FL##SUF, gru_rb_fwd2_##FL##SUF, gru_rb_bwd1_##FL##SUF,                     \
     gru_rb_bwd2_##FL##SUF, STEP4}

#if FNN_X86
/* the float gates of AVX2 and AVX-512 written with intrinsics (FMAs: the last bits differ) */
#include "fnn_rnn_gates_simd.h"

static const fnn_rnn_gates_f32 gates_f32_of[] = {
    FNN_RNN_ENTRY(generic, _f32),
    FNN_RNN_ENTRY_WITH(avx2, _f32, act_avx2i_f32, small_gemm_avx2i_f32, lstm_fwd_avx2i_f32,
                       lstm_bwd_avx2i_f32, step4_avx2i_f32),
    FNN_RNN_ENTRY_WITH(avx512, _f32, act_avx512i_f32, small_gemm_avx512i_f32,
                       lstm_fwd_avx512i_f32, lstm_bwd_avx512_f32, NULL)};
static const fnn_rnn_gates_f64 gates_f64_of[] = {
    FNN_RNN_ENTRY(generic, _f64),
    FNN_RNN_ENTRY_WITH(avx2, _f64, act_avx2_f64, small_gemm_avx2i_f64, lstm_fwd_avx2_f64,
                       lstm_bwd_avx2_f64, NULL),
    FNN_RNN_ENTRY_WITH(avx512, _f64, act_avx512_f64, small_gemm_avx512i_f64, lstm_fwd_avx512_f64,
                       lstm_bwd_avx512_f64, NULL)};
#else
static const fnn_rnn_gates_f32 gates_f32_of[] = {FNN_RNN_ENTRY(generic, _f32)};
static const fnn_rnn_gates_f64 gates_f64_of[] = {FNN_RNN_ENTRY(generic, _f64)};
#endif

/* The tables are indexed by fnn_active_flavour() (fnn_gemm.c; FASTNN_KERNEL applies). */
#define FT float
#define RFN(x) x##_f32
#define GEMM fnn_sgemm
#define GEMM_BP fnn_sgemm_bp
#define PACK_B fnn_sgemm_pack_b
#define FT_DBL 0
#define EPI fnn_epilogue_f32
#define GATES fnn_rnn_gates_f32
#define GATES_OF() (&gates_f32_of[fnn_active_flavour()])
#include "fnn_rnn_tmpl.h"
#undef FT
#undef RFN
#undef GEMM
#undef GEMM_BP
#undef PACK_B
#undef FT_DBL
#undef EPI
#undef GATES
#undef GATES_OF

#define FT double
#define RFN(x) x##_f64
#define GEMM fnn_dgemm
#define GEMM_BP fnn_dgemm_bp
#define PACK_B fnn_dgemm_pack_b
#define FT_DBL 1
#define EPI fnn_epilogue_f64
#define GATES fnn_rnn_gates_f64
#define GATES_OF() (&gates_f64_of[fnn_active_flavour()])
#include "fnn_rnn_tmpl.h"
#undef FT
#undef RFN
#undef GEMM
#undef GEMM_BP
#undef PACK_B
#undef FT_DBL
#undef EPI
#undef GATES
#undef GATES_OF

/* The LSTM step's element-wise kernels on their own (fnn_rnn.h), in the active flavour: for
 * layers that form the pre-activations otherwise (ConvLSTM2D: convolutions). */
void fnn_rnn_lstm_gates_fwd_f32(float *z, const float *c_prev, float *c_next, float *a,
                                float *h_next, ptrdiff_t m, ptrdiff_t u, int act, int rec)
{
    gates_f32_of[fnn_active_flavour()].lstm_fwd(z, c_prev, c_next, a, h_next, u, m, u, act, rec);
}

void fnn_rnn_lstm_gates_fwd_f64(double *z, const double *c_prev, double *c_next, double *a,
                                double *h_next, ptrdiff_t m, ptrdiff_t u, int act, int rec)
{
    gates_f64_of[fnn_active_flavour()].lstm_fwd(z, c_prev, c_next, a, h_next, u, m, u, act, rec);
}

void fnn_rnn_lstm_gates_bwd_f32(float *z, const float *c_prev, const float *a, const float *dh,
                                float *dc, ptrdiff_t m, ptrdiff_t u, int act, int rec)
{
    gates_f32_of[fnn_active_flavour()].lstm_bwd(z, c_prev, a, dh, dc, m, u, act, rec);
}

void fnn_rnn_lstm_gates_bwd_f64(double *z, const double *c_prev, const double *a,
                                const double *dh, double *dc, ptrdiff_t m, ptrdiff_t u, int act,
                                int rec)
{
    gates_f64_of[fnn_active_flavour()].lstm_bwd(z, c_prev, a, dh, dc, m, u, act, rec);
}
