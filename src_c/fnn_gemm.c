/*
 * fastnn GEMM: public entry points, kernel dispatch, path selection and thread partitioning.
 *
 * - The micro-kernel flavour (avx512 / avx2 / generic) is chosen once, on first use, from CPU
 *   detection and the FASTNN_KERNEL environment variable, then published through one atomic
 *   pointer (concurrent first calls may both detect; they store the same value).
 * - Small or skinny products take the direct path (no packing, no malloc, no OpenMP region).
 * - A C of one to four columns (Dense(1) on a batch) is computed as dot products of A's rows
 *   (gemm_dots), read in place.
 * - Everything else runs the blocked/packed driver in fnn_gemm_tmpl.h, instantiated below for
 *   float and double, with threads over rectangles of C once the work is large enough.
 * - Packed panels go to one buffer per thread, grown to the largest product seen (at most
 *   ~1.2 MiB: an MC x KC block of A and a KC x NC panel of B) and freed when the thread ends, so
 *   the products of a training step allocate nothing once the first step has run.
 */
#if !defined(_POSIX_C_SOURCE) && (defined(__unix__) || defined(__APPLE__))
#define _POSIX_C_SOURCE 200809L /* pthread keys under -std=c99 */
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FNN_THREAD_BUFFERS 1
#else
#define FNN_THREAD_BUFFERS 0
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fnn_ftz.h"
#include "fnn_gelu.h"
#include "fnn_gemm_internal.h"
#include "fnn_threads.h"
#include "fnn_vec.h"

/* Each thread of a product gets at least FNN_PAR_WORK_PER_THREAD multiply-adds; a product uses
 * threads from fnn_par_min_work() (fnn_gemm.h) or the caller's ep->min_parallel_work on. */
#define FNN_PAR_WORK_PER_THREAD (64.0 * 64.0 * 64.0)
/* Element-wise passes after a product (the row-wise softmax) use threads from this many
 * elements (as the Cython kernels' PARALLEL_MIN_WORK). */
#define FNN_PAR_MIN_ELEMENTS (131072.0)

/* An untransposed B is read in place, not packed, for a C of at most this many rows and columns
 * (see gemm_part).  Measured on Sapphire Rapids: 10-15% faster for 32..64-row products with
 * 128..256 columns (the layers of small MLPs); slower beyond (a packed panel is reused more, and
 * rows of B 1 KiB apart or more start to collide in L1), and slower (~4%) when k spans more
 * than one KC block (e.g. a 784-input layer), so B is read in place only for k <= KC. */
#define FNN_B_IN_PLACE_MAX_M 64
#define FNN_B_IN_PLACE_MAX_N 256

/* ---------------------------------------------------------------- kernel selection */

static const fnn_arch *g_arch; /* accessed atomically */

static int cpu_has_avx2(void)
{
#if FNN_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static int cpu_has_avx512(void)
{
#if FNN_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && cpu_has_avx2();
#else
    return 0;
#endif
}

static const fnn_arch *detect_arch(void)
{
    const char *want = getenv("FASTNN_KERNEL");
    const int has512 = cpu_has_avx512(), has2 = cpu_has_avx2();
    /* requested level: 2 = avx512, 1 = avx2, 0 = generic; unknown or unset = best available */
    int level = 2;
    if (want && strcmp(want, "generic") == 0) level = 0;
    else if (want && strcmp(want, "avx2") == 0) level = 1;
#if FNN_X86
    if (level >= 2 && has512) return &fnn_arch_avx512;
    if (level >= 1 && has2) return &fnn_arch_avx2;
#else
    (void)has512;
    (void)has2;
#endif
    return &fnn_arch_generic;
}

static int cpu_is_amd(void)
{
#if FNN_X86
    __builtin_cpu_init();
    return __builtin_cpu_is("amd");
#else
    return 0;
#endif
}

static uint64_t g_par_min_bits; /* the floor's bits, accessed atomically; 0 until first read */

double fnn_par_min_work(void)
{
    uint64_t bits = __atomic_load_n(&g_par_min_bits, __ATOMIC_RELAXED);
    double w;
    if (__builtin_expect(bits != 0, 1)) {
        memcpy(&w, &bits, sizeof w);
        return w;
    }
    {
        const char *env = getenv("FASTNN_PAR_MIN_WORK");
        char *end = NULL;
        w = env ? strtod(env, &end) : 0.0;
        while (end != NULL && (*end == ' ' || *end == '\t' || *end == '\n')) end++;
        if (end != NULL && *end != '\0') w = 0.0; /* "3e6x": not a number, so not used */
        if (!(w > 0.0 && w < INFINITY)) w = cpu_is_amd() ? FNN_PAR_MIN_WORK_AMD : FNN_PAR_MIN_WORK;
        memcpy(&bits, &w, sizeof w);
        __atomic_store_n(&g_par_min_bits, bits, __ATOMIC_RELAXED);
    }
    return w;
}

static inline const fnn_arch *fnn_get_arch(void)
{
    const fnn_arch *a = __atomic_load_n(&g_arch, __ATOMIC_ACQUIRE);
    if (__builtin_expect(a == NULL, 0)) {
        a = detect_arch();
        __atomic_store_n(&g_arch, a, __ATOMIC_RELEASE);
    }
    return a;
}

const char *fnn_kernel_name(void) { return fnn_get_arch()->name; }

const fnn_arch *fnn_active_arch(void) { return fnn_get_arch(); }

int fnn_active_flavour(void)
{
#if FNN_X86
    const fnn_arch *a = fnn_get_arch();
    if (a == &fnn_arch_avx512) return FNN_FLAVOUR_AVX512;
    if (a == &fnn_arch_avx2) return FNN_FLAVOUR_AVX2;
#endif
    return FNN_FLAVOUR_GENERIC;
}

int fnn_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* ---------------------------------------------------------------- path selection */

/* The direct path wins when packing cannot be amortised: few rows of C (each packed B element
 * would be reused fewer than ~8 times), a narrow C (at most 16 columns, an output layer: one
 * masked vector per row, where packing B to the micro-kernel's width would mostly pack zeros),
 * or a small product overall (up to 32x64x64 when B is read in place; a transposed B is staged
 * through a buffer, which pays off later). Measured on the layer shapes of small MLPs. */
static inline int fnn_use_direct(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, int trans_b)
{
    const double work = (double)m * (double)n * (double)k;
    return m <= 4 || (n <= 16 && work <= 2097152.0) || work <= (trans_b ? 32.0 * 32.0 * 32.0
                                                                 : 32.0 * 64.0 * 64.0);
}

/* The dot-product path for a narrow C of n <= FNN_DOTS_MAXN columns (gemm_dots), by k alone,
 * from two rows on: a row's bits then never depend on its batch (predict's last one). Against
 * the narrow and direct paths, Zen 3, one thread, float: one column 1.0x at the smallest,
 * 1.3-1.8x at 32 x 64 to 128 x 64, 2.8-3.0x at 1024 x 256 to 1024 x 1024; two or three 1.0x
 * on a few rows or short k, 1.2-1.4x at 16 x 256 to 128 x 32, 2-3x at 128 x 256 and up; four
 * columns 0.85-0.97x below 32 rows (by ~0.3 us), 1.3-2.9x at 128 x 256 and up; double alike,
 * 1.1-1.9x where it gains. */
static inline int fnn_use_dots(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    return m >= 2 && k >= (n == 1 ? 16 : n <= 3 ? 32 : 128);
}

/* Choose tm x tn == T threads over an mt x nt grid of MR x NR tiles: minimise the largest
 * per-thread area, then the per-thread perimeter (packing traffic); prefer splitting m. */
#ifdef _OPENMP
static void fnn_thread_grid(int T, ptrdiff_t mt, ptrdiff_t nt, int mr, int nr, int *tm, int *tn)
{
    double best_area = -1.0, best_perim = 0.0;
    int a;
    *tm = T;
    *tn = 1;
    for (a = T; a >= 1; a--) {
        if (T % a) continue;
        {
            const int b = T / a;
            const double rows = (double)((mt + a - 1) / a) * mr;
            const double cols = (double)((nt + b - 1) / b) * nr;
            const double area = rows * cols, perim = rows + cols;
            if (best_area < 0 || area < best_area * 0.999 ||
                (area <= best_area * 1.001 && perim < best_perim)) {
                best_area = area;
                best_perim = perim;
                *tm = a;
                *tn = b;
            }
        }
    }
}
#endif

/* ---------------------------------------------------------------- packing buffers */

#if FNN_THREAD_BUFFERS
typedef struct {
    void *p;
    size_t size;
} fnn_buffer;

static pthread_key_t g_buffer_key;
static pthread_once_t g_buffer_once = PTHREAD_ONCE_INIT;
static int g_buffer_key_ok;

static void fnn_buffer_free(void *arg)
{
    fnn_buffer *b = (fnn_buffer *)arg;
    free(b->p);
    free(b);
}

static void fnn_buffer_key_init(void)
{
    g_buffer_key_ok = (pthread_key_create(&g_buffer_key, fnn_buffer_free) == 0);
}
#endif

/* Scratch of at least `bytes` for one product's packed panels, owned by the calling thread and
 * valid until its next call; *owned is set when the caller must free() it instead (no thread
 * buffers on this platform, or they could not be set up). NULL when out of memory. A thread
 * never runs two products at once (products do not nest; each thread of a parallel product
 * takes its own buffer), so one buffer per thread suffices. */
static void *fnn_pack_buffer(size_t bytes, int *owned)
{
#if FNN_THREAD_BUFFERS
    fnn_buffer *b;
    *owned = 0;
    pthread_once(&g_buffer_once, fnn_buffer_key_init);
    if (g_buffer_key_ok) {
        b = (fnn_buffer *)pthread_getspecific(g_buffer_key);
        if (b == NULL) {
            b = (fnn_buffer *)calloc(1, sizeof *b);
            if (b == NULL) return NULL;
            if (pthread_setspecific(g_buffer_key, b) != 0) {
                free(b);
                b = NULL;
            }
        }
        if (b != NULL) {
            if (b->size < bytes) {
                void *p = malloc(bytes);
                if (p == NULL) return NULL;
                free(b->p);
                b->p = p;
                b->size = bytes;
            }
            return b->p;
        }
    }
#endif
    *owned = 1;
    return malloc(bytes);
}

/* ---------------------------------------------------------------- transposing packs */

/* One sliver with a transpose: dst[p*r + i] = src[i*ld + p] for i < cnt (zero up to r), p < kc.
 * All cnt source rows advance together (4 / 2 columns at a time), so their cache misses overlap
 * instead of being taken one row after another; SSE2 (x86-64 baseline) does small transposes. */
void fnn_pack_t_f32(int r, ptrdiff_t cnt, ptrdiff_t kc, const float *src, ptrdiff_t ld,
                    float *dst)
{
    ptrdiff_t p = 0, i;
    const ptrdiff_t cnt4 = cnt - cnt % 4;
#if defined(__SSE2__)
    for (; p + 4 <= kc; p += 4) {
        for (i = 0; i < cnt4; i += 4) {
            const float *s = src + i * ld + p;
            __m128 r0 = _mm_loadu_ps(s), r1 = _mm_loadu_ps(s + ld);
            __m128 r2 = _mm_loadu_ps(s + 2 * ld), r3 = _mm_loadu_ps(s + 3 * ld);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            _mm_storeu_ps(dst + p * r + i, r0);
            _mm_storeu_ps(dst + (p + 1) * r + i, r1);
            _mm_storeu_ps(dst + (p + 2) * r + i, r2);
            _mm_storeu_ps(dst + (p + 3) * r + i, r3);
        }
        for (; i < cnt; i++) {
            const float *s = src + i * ld + p;
            dst[p * r + i] = s[0];
            dst[(p + 1) * r + i] = s[1];
            dst[(p + 2) * r + i] = s[2];
            dst[(p + 3) * r + i] = s[3];
        }
        for (; i < r; i++)
            dst[p * r + i] = dst[(p + 1) * r + i] = dst[(p + 2) * r + i] =
                dst[(p + 3) * r + i] = 0.0f;
    }
#else
    (void)cnt4;
#endif
    for (; p < kc; p++) {
        for (i = 0; i < cnt; i++) dst[p * r + i] = src[i * ld + p];
        for (; i < r; i++) dst[p * r + i] = 0.0f;
    }
}

void fnn_pack_t_rest_f32(int r, ptrdiff_t i0, ptrdiff_t cnt, ptrdiff_t kc, const float *src,
                         ptrdiff_t ld, float *dst)
{
    ptrdiff_t i, p;
    for (i = i0; i < cnt; i++) {
        const float *s = src + i * ld;
        for (p = 0; p < kc; p++) dst[p * r + i] = s[p];
    }
    if (cnt < r)
        for (p = 0; p < kc; p++)
            for (i = cnt; i < r; i++) dst[p * r + i] = 0.0f;
}

void fnn_pack_t_f64(int r, ptrdiff_t cnt, ptrdiff_t kc, const double *src, ptrdiff_t ld,
                    double *dst)
{
    ptrdiff_t p = 0, i;
    const ptrdiff_t cnt2 = cnt - cnt % 2;
#if defined(__SSE2__)
    for (; p + 2 <= kc; p += 2) {
        for (i = 0; i < cnt2; i += 2) {
            const double *s = src + i * ld + p;
            const __m128d r0 = _mm_loadu_pd(s), r1 = _mm_loadu_pd(s + ld);
            _mm_storeu_pd(dst + p * r + i, _mm_unpacklo_pd(r0, r1));
            _mm_storeu_pd(dst + (p + 1) * r + i, _mm_unpackhi_pd(r0, r1));
        }
        for (; i < cnt; i++) {
            dst[p * r + i] = src[i * ld + p];
            dst[(p + 1) * r + i] = src[i * ld + p + 1];
        }
        for (; i < r; i++) dst[p * r + i] = dst[(p + 1) * r + i] = 0.0;
    }
#else
    (void)cnt2;
#endif
    for (; p < kc; p++) {
        for (i = 0; i < cnt; i++) dst[p * r + i] = src[i * ld + p];
        for (; i < r; i++) dst[p * r + i] = 0.0;
    }
}

/* ---------------------------------------------------------------- float instantiation */

#define FT float
#define UT uint32_t
#define UT_ABS FNN_ABS_BITS_F32
#define GFN(x) x##_f32
#define EPI_NAME fnn_epilogue_block_f32
#define KERN fnn_kern_f32
#define ARCH_KERN(a) ((a)->s)
#define FT_EXP expf
#define FT_TANH tanhf
#define FT_GELU fnn_gelu_f32
#define FT_GELU_TANH fnn_gelu_tanh_f32
#define FT_KERAS_ACT fnn_keras_act_f32
#define FT_SOFTMAX_ROWS fnn_softmax_rows_f32
#include "fnn_gemm_tmpl.h"
#undef FT
#undef UT
#undef UT_ABS
#undef GFN
#undef EPI_NAME
#undef KERN
#undef ARCH_KERN
#undef FT_EXP
#undef FT_TANH
#undef FT_GELU
#undef FT_GELU_TANH
#undef FT_KERAS_ACT
#undef FT_SOFTMAX_ROWS

/* ---------------------------------------------------------------- double instantiation */

#define FT double
#define UT uint64_t
#define UT_ABS FNN_ABS_BITS_F64
#define GFN(x) x##_f64
#define EPI_NAME fnn_epilogue_block_f64
#define KERN fnn_kern_f64
#define ARCH_KERN(a) ((a)->d)
#define FT_EXP exp
#define FT_TANH tanh
#define FT_GELU fnn_gelu_f64
#define FT_GELU_TANH fnn_gelu_tanh_f64
#define FT_KERAS_ACT fnn_keras_act_f64
#define FT_SOFTMAX_ROWS fnn_softmax_rows_f64
#include "fnn_gemm_tmpl.h"
#undef FT
#undef UT
#undef UT_ABS
#undef GFN
#undef EPI_NAME
#undef KERN
#undef ARCH_KERN
#undef FT_EXP
#undef FT_TANH
#undef FT_GELU
#undef FT_GELU_TANH
#undef FT_KERAS_ACT
#undef FT_SOFTMAX_ROWS

/* ---------------------------------------------------------------- public API */

void fnn_sgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
               float alpha, const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
               float beta, float *C, ptrdiff_t ldc, const fnn_epilogue_f32 *ep)
{
    fnn_sgemm_bp(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, NULL, beta, C, ldc, ep);
}

void fnn_dgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
               double alpha, const double *A, ptrdiff_t lda, const double *B, ptrdiff_t ldb,
               double beta, double *C, ptrdiff_t ldc, const fnn_epilogue_f64 *ep)
{
    fnn_dgemm_bp(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, NULL, beta, C, ldc, ep);
}

/* ---------------------------------------------------------------- pre-packed B */

size_t fnn_gemm_packed_b_size(int dbl, ptrdiff_t k, ptrdiff_t n)
{
    const fnn_arch *a = fnn_get_arch();
    const ptrdiff_t nr = dbl ? a->d.nr : a->s.nr;
    if (k <= 0 || n <= 0) return 0;
    return (size_t)((n + nr - 1) / nr * nr) * (size_t)k;
}

int fnn_gemm_b_in_place(int dbl, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    return dbl ? b_in_place_f64(m, n, k) : b_in_place_f32(m, n, k);
}

void fnn_sgemm_pack_b(int trans_b, ptrdiff_t k, ptrdiff_t n, const float *B, ptrdiff_t ldb,
                      float *Bp)
{
    if (k > 0 && n > 0) pack_b_whole_f32(trans_b, k, n, B, ldb, Bp);
}

void fnn_dgemm_pack_b(int trans_b, ptrdiff_t k, ptrdiff_t n, const double *B, ptrdiff_t ldb,
                      double *Bp)
{
    if (k > 0 && n > 0) pack_b_whole_f64(trans_b, k, n, B, ldb, Bp);
}

void fnn_sgemm_bp(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                  const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb, const float *Bp,
                  float beta, float *C, ptrdiff_t ldc, const fnn_epilogue_f32 *ep)
{
    uint32_t mx = 0;
    const int want = (ep != NULL && ep->amax != NULL);
    gemm_f32(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc,
             ep ? ep->bias : NULL, ep ? ep->act : FNN_ACT_LINEAR, ep ? ep->param : 0.0f,
             want ? &mx : NULL, ep ? ep->min_parallel_work : 0.0, Bp);
    if (want) {
        float v;
        memcpy(&v, &mx, sizeof v);
        *ep->amax = (mx >= FNN_INF_BITS_F32) ? (double)NAN : (double)v;
    }
}

void fnn_dgemm_bp(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                  const double *A, ptrdiff_t lda, const double *B, ptrdiff_t ldb,
                  const double *Bp, double beta, double *C, ptrdiff_t ldc,
                  const fnn_epilogue_f64 *ep)
{
    uint64_t mx = 0;
    const int want = (ep != NULL && ep->amax != NULL);
    gemm_f64(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc,
             ep ? ep->bias : NULL, ep ? ep->act : FNN_ACT_LINEAR, ep ? ep->param : 0.0,
             want ? &mx : NULL, ep ? ep->min_parallel_work : 0.0, Bp);
    if (want) {
        double v;
        memcpy(&v, &mx, sizeof v);
        *ep->amax = (mx >= FNN_INF_BITS_F64) ? (double)NAN : v;
    }
}
