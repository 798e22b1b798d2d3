/* Max pooling rows (see fnn_pool.h), for float and double.
 *
 * The channels go 16 bytes at a time through GCC/Clang vector extensions (SSE2, the x86-64
 * baseline, or any target's 16-byte vectors): the comparisons give lane masks and the maximum
 * and its index are blended with them, so no branch depends on the data (branching on random
 * data mispredicted every other element: 18 ns per output on Zen 4). The last few channels go
 * one at a time with the same arithmetic. Window indices are kept in 32 bits in the vectors, so
 * images of 2**31 positions or more take the scalar loop only. */
#include <string.h>

#include "fnn_gemm_internal.h"
#include "fnn_pool.h"

/* Rows of 16 channels or more whose windows all lie inside the image's columns (no padding, or
 * none reached: the common 2x2 stride-2 pooling) take a plainer loop per flavour: for each
 * window position, one pass over the channels with a compare-select on the output row itself,
 * which the compiler vectorises at the flavour's width (16 floats with AVX-512; the SSE2
 * vectors below hold 4) and which stores the 64-bit indices directly. The same comparisons in
 * the same window order as the general loop: the same maxima and indices, bit for bit, NaN and
 * ties included. Measured at 1 thread (Ice Lake, AVX-512), 2x2 stride 2: (32, 8, 8, 16) 30 -> 17
 * us, (64, 10, 10, 16) 145 -> 49 us; with fewer channels the short loop ran slower than the
 * general one (6 channels: 1.3 ms against 0.4-0.7 ms for (64, 28, 28, 6)). */
#define FNN_MAXROW_INSIDE(NAME, FT, UT, ST, TARGET)                                                      \
    TARGET static void NAME(const FT *x, ptrdiff_t w, ptrdiff_t c, ptrdiff_t y0, ptrdiff_t y1,  \
                            ptrdiff_t ow, ptrdiff_t pw, ptrdiff_t sw, ptrdiff_t left, FT *y,     \
                            int64_t *argmax)                                                     \
    {                                                                                            \
        ptrdiff_t ox, iy, ix, k;                                                                 \
        for (ox = 0; ox < ow; ox++) {                                                            \
            const ptrdiff_t x0 = ox * sw - left;                                                 \
            FT *restrict yo = y + ox * c;                                                        \
            int64_t *restrict ao = argmax + ox * c;                                              \
            const FT *restrict first = x + (y0 * w + x0) * c;                                    \
            const int64_t a0 = (int64_t)(y0 * w + x0);                                           \
            for (k = 0; k < c; k++) {                                                            \
                yo[k] = first[k];                                                                \
                ao[k] = a0;                                                                      \
            }                                                                                    \
            for (iy = y0; iy < y1; iy++)                                                         \
                for (ix = (iy == y0 ? x0 + 1 : x0); ix < x0 + pw; ix++) {                        \
                    const FT *restrict xp = x + (iy * w + ix) * c;                               \
                    const int64_t at = (int64_t)(iy * w + ix);                                   \
                    for (k = 0; k < c; k++) {                                                    \
                        /* selects as bit masks: a short channel loop runs scalar, and a branch \
                         * there mispredicts on random data */                                  \
                        const FT v = xp[k], b = yo[k];                                           \
                        const UT m = (UT)0 - (UT)((v > b) | ((v != v) & (b == b)));              \
                        UT vb, bb;                                                               \
                        memcpy(&vb, &v, sizeof vb);                                              \
                        memcpy(&bb, &b, sizeof bb);                                              \
                        vb = (vb & m) | (bb & ~m);                                               \
                        memcpy(yo + k, &vb, sizeof vb);                                          \
                        ao[k] = (int64_t)(((uint64_t)at & (uint64_t)(int64_t)(ST)m)             \
                                          | ((uint64_t)ao[k] & ~(uint64_t)(int64_t)(ST)m));    \
                    }                                                                            \
                }                                                                                \
        }                                                                                        \
    }

FNN_MAXROW_INSIDE(maxrow_inside_generic_f32, float, uint32_t, int32_t, )
FNN_MAXROW_INSIDE(maxrow_inside_generic_f64, double, uint64_t, int64_t, )
#if FNN_X86
FNN_MAXROW_INSIDE(maxrow_inside_avx2_f32, float, uint32_t, int32_t, __attribute__((target("avx2"))))
FNN_MAXROW_INSIDE(maxrow_inside_avx2_f64, double, uint64_t, int64_t, __attribute__((target("avx2"))))
FNN_MAXROW_INSIDE(maxrow_inside_avx512_f32, float, uint32_t, int32_t, __attribute__((target("avx512f,avx512vl,avx2"))))
FNN_MAXROW_INSIDE(maxrow_inside_avx512_f64, double, uint64_t, int64_t, __attribute__((target("avx512f,avx512vl,avx2"))))
#define FNN_MAXROW_DISPATCH(SUF)                                                                 \
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX512)                                              \
        maxrow_inside_avx512_##SUF(x, w, c, y0, y1, ow, pw, sw, left, y, argmax);                \
    else if (fnn_active_flavour() == FNN_FLAVOUR_AVX2)                                           \
        maxrow_inside_avx2_##SUF(x, w, c, y0, y1, ow, pw, sw, left, y, argmax);                  \
    else                                                                                         \
        maxrow_inside_generic_##SUF(x, w, c, y0, y1, ow, pw, sw, left, y, argmax);
#else
#define FNN_MAXROW_DISPATCH(SUF) maxrow_inside_generic_##SUF(x, w, c, y0, y1, ow, pw, sw, left, y, argmax);
#endif

/* Rows of fewer than 16 channels under the same conditions (all windows inside the columns),
 * with AVX2 or AVX-512: each output position's channels in masked vectors (one of 16 floats
 * with AVX-512; two of 8 with AVX2; 8 and 4 doubles), the window's taps in order, the maximum
 * and its index blended by the same comparisons as the general loop: bit for bit its results.
 * The general loop spends two overlapping 4-lane vectors on 6 channels, with an int32 -> int64
 * store lane by lane: measured at 1 thread (Ice Lake, AVX-512), 2x2 stride 2 on (64, 28, 28, 6)
 * 690 -> 250 us, (1, 28, 28, 6) 15 -> 8.4 us (most of it the Python call). Indices are kept in
 * 32 bits (the caller checks h*w < 2**31). The masked lanes load zeros and are never stored. Lane macros per flavour:
 * L lanes; MT a lane mask, MASK(r) the first r lanes; VT, LOAD(m, p), STORE(m, p, v);
 * TT the result of TAKE(v, b) := v > b or (v is NaN and b is not); SEL(t, b, v) := t ? v : b;
 * IT index lanes, ISET(i), ISEL(t, w, a), ISTORE(m, p, w) (to int64). WHOLE_STORES 1: with
 * c <= L, a position's values and indices are stored as whole vectors (STOREW, ISTOREW) where
 * their lanes past c land on later positions of the row (room: the values from the group's
 * first to the row's end), which are stored after; the last positions take the masked stores. AVX2's masked stores (vmaskmovps, vpmaskmovq) cost several cycles
 * each on AMD Zen: 3 of them per position were most of LeNet-5's pooling on Zen 2. */
#define FNN_MAXROW_FEW(NAME, FT, TARGET)                                                         \
    /* U output positions from column x0 (U <= 4, a constant after inlining): independent      \
     * chains of compare-selects, so one's latency hides behind the others'; nans = 0 when    \
     * no input element the row reads is a NaN (then v > best alone decides) */               \
    TARGET static inline __attribute__((always_inline)) void NAME##_group(                       \
        const FT *x, ptrdiff_t w, ptrdiff_t c, ptrdiff_t y0, ptrdiff_t y1, ptrdiff_t x0,         \
        ptrdiff_t pw, ptrdiff_t sw, int nans, const int U, ptrdiff_t room, FT *y,                \
        int64_t *argmax)                                                                         \
    {                                                                                            \
        ptrdiff_t k, iy, dx;                                                                     \
        int u;                                                                                   \
        for (k = 0; k < c; k += L) {                                                             \
            const MT m = MASK(c - k < L ? c - k : L);                                            \
            const FT *base = x + (y0 * w + x0) * c + k;                                          \
            VT best[4];                                                                          \
            IT where[4];                                                                         \
            for (u = 0; u < U; u++) {                                                            \
                best[u] = LOAD(m, base + u * sw * c);                                            \
                where[u] = ISET(0);                                                              \
            }                                                                                    \
            for (iy = y0; iy < y1; iy++)                                                         \
                for (dx = (iy == y0); dx < pw; dx++) {                                           \
                    const ptrdiff_t off = (iy - y0) * w + dx; /* from the window's first */     \
                    const IT at = ISET(off);                                                     \
                    for (u = 0; u < U; u++) {                                                    \
                        const VT v = LOAD(m, base + (off + u * sw) * c);                         \
                        const TT t = nans ? TAKE(v, best[u]) : GT(v, best[u]);                   \
                        best[u] = SEL(t, best[u], v);                                            \
                        where[u] = ISEL(t, where[u], at);                                        \
                    }                                                                            \
                }                                                                                \
            for (u = 0; u < U; u++) {                                                            \
                const IT idx = IADD(where[u], ISET(y0 * w + x0 + u * sw));                       \
                if (WHOLE_STORES && c <= L && u * c + L <= room) {                               \
                    STOREW(y + u * c, best[u]);                                                  \
                    ISTOREW(argmax + u * c, idx);                                                \
                } else {                                                                         \
                    STORE(m, y + u * c + k, best[u]);                                            \
                    ISTORE(m, argmax + u * c + k, idx);                                          \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    TARGET static void NAME(const FT *x, ptrdiff_t w, ptrdiff_t c, ptrdiff_t y0, ptrdiff_t y1,  \
                            ptrdiff_t ow, ptrdiff_t pw, ptrdiff_t sw, ptrdiff_t left, FT *y,     \
                            int64_t *argmax)                                                     \
    {                                                                                            \
        const ptrdiff_t span = ((ow - 1) * sw + pw) * c; /* values a window row reads */        \
        ptrdiff_t ox, iy, i;                                                                     \
        int nans = 0;                                                                            \
        for (iy = y0; iy < y1; iy++) {                                                           \
            const FT *r = x + (iy * w - left) * c;                                               \
            for (i = 0; i < span; i++) nans |= r[i] != r[i];                                     \
        }                                                                                        \
        for (ox = 0; ox + 4 <= ow; ox += 4)                                                      \
            NAME##_group(x, w, c, y0, y1, ox * sw - left, pw, sw, nans, 4, (ow - ox) * c,        \
                         y + ox * c, argmax + ox * c);                                           \
        for (; ox < ow; ox++)                                                                    \
            NAME##_group(x, w, c, y0, y1, ox * sw - left, pw, sw, nans, 1, (ow - ox) * c,        \
                         y + ox * c, argmax + ox * c);                                           \
    }

#if FNN_X86
#include <immintrin.h>

/* AVX-512: lane masks in mask registers */
#define MASK(r) ((MT)((1u << (r)) - 1u))
#define TT MT
#define L 16
#define MT __mmask16
#define VT __m512
#define IT __m512i
#define LOAD(m, p) _mm512_maskz_loadu_ps(m, p)
#define STORE(m, p, v) _mm512_mask_storeu_ps(p, m, v)
#define TAKE(v, b)                                                                               \
    (_mm512_cmp_ps_mask(v, b, _CMP_GT_OQ) |                                                      \
     _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(b, b, _CMP_ORD_Q), v, v, _CMP_UNORD_Q))
#define GT(v, b) _mm512_cmp_ps_mask(v, b, _CMP_GT_OQ)
#define SEL(t, b, v) _mm512_mask_mov_ps(b, t, v)
#define IADD(a, b) _mm512_add_epi32(a, b)
#define ISET(i) _mm512_set1_epi32((int32_t)(i))
#define ISEL(t, w, a) _mm512_mask_mov_epi32(w, t, a)
#define ISTORE(m, p, wv)                                                                         \
    do {                                                                                         \
        _mm512_mask_storeu_epi64(p, (__mmask8)(m),                                               \
                                 _mm512_cvtepi32_epi64(_mm512_castsi512_si256(wv)));             \
        if ((m) >> 8)                                                                            \
            _mm512_mask_storeu_epi64((p) + 8, (__mmask8)((m) >> 8),                              \
                                     _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(wv, 1)));   \
    } while (0)
#define WHOLE_STORES 0 /* AVX-512's masked stores are cheap */
#define STOREW(p, v) ((void)0)
#define ISTOREW(p, wv) ((void)0)
FNN_MAXROW_FEW(maxrow_few_avx512_f32, float, __attribute__((target("avx512f,avx512vl,avx2"))))
#undef L
#undef MT
#undef VT
#undef IT
#undef LOAD
#undef STORE
#undef TAKE
#undef SEL
#undef GT
#undef IADD
#undef ISET
#undef ISEL
#undef ISTORE
#define L 8
#define MT __mmask8
#define VT __m512d
#define IT __m512i
#define LOAD(m, p) _mm512_maskz_loadu_pd(m, p)
#define STORE(m, p, v) _mm512_mask_storeu_pd(p, m, v)
#define TAKE(v, b)                                                                               \
    (_mm512_cmp_pd_mask(v, b, _CMP_GT_OQ) |                                                      \
     _mm512_mask_cmp_pd_mask(_mm512_cmp_pd_mask(b, b, _CMP_ORD_Q), v, v, _CMP_UNORD_Q))
#define GT(v, b) _mm512_cmp_pd_mask(v, b, _CMP_GT_OQ)
#define SEL(t, b, v) _mm512_mask_mov_pd(b, t, v)
#define IADD(a, b) _mm512_add_epi64(a, b)
#define ISET(i) _mm512_set1_epi64((int64_t)(i))
#define ISEL(t, w, a) _mm512_mask_mov_epi64(w, t, a)
#define ISTORE(m, p, wv) _mm512_mask_storeu_epi64(p, m, wv)
FNN_MAXROW_FEW(maxrow_few_avx512_f64, double, __attribute__((target("avx512f,avx512vl,avx2"))))
#undef MASK
#undef TT
#undef L
#undef MT
#undef VT
#undef IT
#undef LOAD
#undef STORE
#undef TAKE
#undef SEL
#undef GT
#undef IADD
#undef ISET
#undef ISEL
#undef ISTORE

/* AVX2: lane masks as vectors (all ones in the first r lanes), read from a sliding window */
static const int32_t fnn_pool_ones32[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static const int64_t fnn_pool_ones64[8] = {-1, -1, -1, -1, 0, 0, 0, 0};
#define MT __m256i
#define IT __m256i
#define L 8
#define VT __m256
#define TT __m256
#define MASK(r) _mm256_loadu_si256((const __m256i *)(fnn_pool_ones32 + 8 - (r)))
#define LOAD(m, p) _mm256_maskload_ps(p, m)
#define STORE(m, p, v) _mm256_maskstore_ps(p, m, v)
#define TAKE(v, b)                                                                               \
    _mm256_or_ps(_mm256_cmp_ps(v, b, _CMP_GT_OQ),                                                \
                 _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(b, b, _CMP_ORD_Q)))
#define GT(v, b) _mm256_cmp_ps(v, b, _CMP_GT_OQ)
#define SEL(t, b, v) _mm256_blendv_ps(b, v, t)
#define IADD(a, b) _mm256_add_epi32(a, b)
#define ISET(i) _mm256_set1_epi32((int32_t)(i))
#define ISEL(t, w, a)                                                                            \
    _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(w), _mm256_castsi256_ps(a), t))
#define ISTORE(m, p, wv)                                                                         \
    do {                                                                                         \
        _mm256_maskstore_epi64((long long *)(p), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(m)), \
                               _mm256_cvtepi32_epi64(_mm256_castsi256_si128(wv)));               \
        _mm256_maskstore_epi64((long long *)(p) + 4,                                             \
                               _mm256_cvtepi32_epi64(_mm256_extracti128_si256(m, 1)),            \
                               _mm256_cvtepi32_epi64(_mm256_extracti128_si256(wv, 1)));          \
    } while (0)
#undef WHOLE_STORES
#undef STOREW
#undef ISTOREW
#define WHOLE_STORES 1
#define STOREW(p, v) _mm256_storeu_ps(p, v)
#define ISTOREW(p, wv)                                                                           \
    do {                                                                                         \
        _mm256_storeu_si256((__m256i *)(p), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(wv)));   \
        _mm256_storeu_si256((__m256i *)(p) + 1,                                                  \
                            _mm256_cvtepi32_epi64(_mm256_extracti128_si256(wv, 1)));             \
    } while (0)
FNN_MAXROW_FEW(maxrow_few_avx2_f32, float, __attribute__((target("avx2"))))
#undef WHOLE_STORES
#undef STOREW
#undef ISTOREW
#define WHOLE_STORES 0 /* (c <= 4 doubles: rare) */
#define STOREW(p, v) ((void)0)
#define ISTOREW(p, wv) ((void)0)
#undef L
#undef VT
#undef TT
#undef MASK
#undef LOAD
#undef STORE
#undef TAKE
#undef SEL
#undef GT
#undef IADD
#undef ISET
#undef ISEL
#undef ISTORE
#define L 4
#define VT __m256d
#define TT __m256d
#define MASK(r) _mm256_loadu_si256((const __m256i *)(fnn_pool_ones64 + 4 - (r)))
#define LOAD(m, p) _mm256_maskload_pd(p, m)
#define STORE(m, p, v) _mm256_maskstore_pd(p, m, v)
#define TAKE(v, b)                                                                               \
    _mm256_or_pd(_mm256_cmp_pd(v, b, _CMP_GT_OQ),                                                \
                 _mm256_and_pd(_mm256_cmp_pd(v, v, _CMP_UNORD_Q), _mm256_cmp_pd(b, b, _CMP_ORD_Q)))
#define GT(v, b) _mm256_cmp_pd(v, b, _CMP_GT_OQ)
#define SEL(t, b, v) _mm256_blendv_pd(b, v, t)
#define IADD(a, b) _mm256_add_epi64(a, b)
#define ISET(i) _mm256_set1_epi64x((int64_t)(i))
#define ISEL(t, w, a)                                                                            \
    _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(w), _mm256_castsi256_pd(a), t))
#define ISTORE(m, p, wv) _mm256_maskstore_epi64((long long *)(p), m, wv)
FNN_MAXROW_FEW(maxrow_few_avx2_f64, double, __attribute__((target("avx2"))))
#undef WHOLE_STORES
#undef STOREW
#undef ISTOREW
#undef L
#undef VT
#undef TT
#undef MT
#undef IT
#undef MASK
#undef LOAD
#undef STORE
#undef TAKE
#undef SEL
#undef GT
#undef IADD
#undef ISET
#undef ISEL
#undef ISTORE

/* 1 when the row went through a few-channel kernel (AVX2 or AVX-512), 0 for the general loop */
#define FNN_MAXROW_FEW_DISPATCH(SUF)                                                             \
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX512) {                                            \
        maxrow_few_avx512_##SUF(x, w, c, y0, y1, ow, pw, sw, left, y, argmax);                   \
        return;                                                                                  \
    }                                                                                            \
    if (fnn_active_flavour() == FNN_FLAVOUR_AVX2) {                                              \
        maxrow_few_avx2_##SUF(x, w, c, y0, y1, ow, pw, sw, left, y, argmax);                     \
        return;                                                                                  \
    }
#else
#define FNN_MAXROW_FEW_DISPATCH(SUF)
#endif

typedef float fnn_v4f __attribute__((vector_size(16)));
typedef int32_t fnn_v4i __attribute__((vector_size(16)));
typedef double fnn_v2d __attribute__((vector_size(16)));
typedef int64_t fnn_v2l __attribute__((vector_size(16)));

#define FNN_MAXPOOL_ROW(NAME, FT, VF, VI, IT, L, SUF)                                            \
    void NAME(const FT *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t y0, ptrdiff_t y1,    \
              ptrdiff_t ow, ptrdiff_t pw, ptrdiff_t sw, ptrdiff_t left, FT *y, int64_t *argmax)  \
    {                                                                                            \
        if (y1 > y0 && ow > 0 && left <= 0 && (ow - 1) * sw - left + pw <= w) {                 \
            if (c >= 16) {                                                                       \
                FNN_MAXROW_DISPATCH(SUF)                                                         \
                return;                                                                          \
            }                                                                                    \
            if (h * w < ((ptrdiff_t)1 << 31)) {                                                  \
                FNN_MAXROW_FEW_DISPATCH(SUF)                                                     \
            }                                                                                    \
        }                                                                                        \
        /* vectors of L channels, the last one overlapping the one before when L does not    \
         * divide c (its shared lanes compute the same values twice) */                      \
        const ptrdiff_t cv = (h * w < ((ptrdiff_t)1 << 31) && c >= L) ? c : 0;                  \
        ptrdiff_t ox, iy, ix, k, l;                                                              \
        for (ox = 0; ox < ow; ox++) {                                                            \
            const ptrdiff_t x0 = ox * sw - left > 0 ? ox * sw - left : 0;                        \
            const ptrdiff_t x1 = ox * sw - left + pw < w ? ox * sw - left + pw : w;              \
            FT *yo = y + ox * c;                                                                 \
            int64_t *ao = argmax + ox * c;                                                       \
            if (y1 <= y0 || x1 <= x0) {                                                          \
                for (k = 0; k < c; k++) {                                                        \
                    yo[k] = (FT)0;                                                               \
                    ao[k] = -1;                                                                  \
                }                                                                                \
                continue;                                                                        \
            }                                                                                    \
            for (k = 0; k < cv; k = (k + L <= c - L || k + L >= c) ? k + L : c - L) {           \
                VF best, v;                                                                      \
                VI where, at, take;                                                              \
                memcpy(&best, x + (y0 * w + x0) * c + k, sizeof best);                           \
                for (l = 0; l < L; l++) where[l] = (IT)(y0 * w + x0);                            \
                for (iy = y0; iy < y1; iy++)                                                     \
                    for (ix = (iy == y0 ? x0 + 1 : x0); ix < x1; ix++) {                         \
                        memcpy(&v, x + (iy * w + ix) * c + k, sizeof v);                         \
                        for (l = 0; l < L; l++) at[l] = (IT)(iy * w + ix);                       \
                        take = (v > best) | ((v != v) & (best == best));                         \
                        best = (VF)(((VI)v & take) | ((VI)best & ~take));                        \
                        where = (at & take) | (where & ~take);                                   \
                    }                                                                            \
                memcpy(yo + k, &best, sizeof best);                                              \
                for (l = 0; l < L; l++) ao[k + l] = (int64_t)where[l];                           \
            }                                                                                    \
            if (cv == 0 && h * w < ((ptrdiff_t)1 << 31)) { /* c < L: lanes padded */        \
                const ptrdiff_t r = c;                                                           \
                VF best = {0}, v = {0};                                                          \
                VI where, at, take;                                                              \
                for (l = 0; l < r; l++) best[l] = x[(y0 * w + x0) * c + cv + l];                 \
                for (l = 0; l < L; l++) where[l] = (IT)(y0 * w + x0);                            \
                for (iy = y0; iy < y1; iy++)                                                     \
                    for (ix = (iy == y0 ? x0 + 1 : x0); ix < x1; ix++) {                         \
                        for (l = 0; l < r; l++) v[l] = x[(iy * w + ix) * c + cv + l];            \
                        for (l = 0; l < L; l++) at[l] = (IT)(iy * w + ix);                       \
                        take = (v > best) | ((v != v) & (best == best));                         \
                        best = (VF)(((VI)v & take) | ((VI)best & ~take));                        \
                        where = (at & take) | (where & ~take);                                   \
                    }                                                                            \
                for (l = 0; l < r; l++) {                                                        \
                    yo[cv + l] = best[l];                                                        \
                    ao[cv + l] = (int64_t)where[l];                                              \
                }                                                                                \
            } else {                                                                             \
                for (k = cv; k < c; k++) { /* huge images: one channel at a time */             \
                    FT best = x[(y0 * w + x0) * c + k];                                          \
                    int64_t where = (int64_t)(y0 * w + x0);                                      \
                    for (iy = y0; iy < y1; iy++)                                                 \
                        for (ix = (iy == y0 ? x0 + 1 : x0); ix < x1; ix++) {                     \
                            const FT v = x[(iy * w + ix) * c + k];                               \
                            if ((v > best) | ((v != v) & (best == best))) {                      \
                                best = v;                                                        \
                                where = (int64_t)(iy * w + ix);                                  \
                            }                                                                    \
                        }                                                                        \
                    yo[k] = best;                                                                \
                    ao[k] = where;                                                               \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }

FNN_MAXPOOL_ROW(fnn_maxpool_row_f32, float, fnn_v4f, fnn_v4i, int32_t, 4, f32)
FNN_MAXPOOL_ROW(fnn_maxpool_row_f64, double, fnn_v2d, fnn_v2l, int64_t, 2, f64)


/* The backward of a relu then max pooling whose windows do not overlap (sh >= ph, sw >= pw),
 * one image: dx (h, w, c) := 0, then at each window's argmax (an index iy*w + ix; one out of
 * range is dropped, not followed) the window's (0 + dy) * (y > 0): the bits of the scatter from
 * +0 followed by the relu's derivative as a product, since no position is the argmax of two
 * windows and the relu's output there is the pooled y. One zeroing pass and one store per
 * window and channel, instead of a scatter and a pass of the relu's derivative over dx. */
#define FNN_MAXPOOL_RELU_BACK(NAME, FT)                                                          \
    void NAME(const FT *restrict dy, const int64_t *restrict argmax, const FT *restrict y,       \
              ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t oh, ptrdiff_t ow, FT *restrict dx) \
    {                                                                                            \
        const ptrdiff_t p = oh * ow;                                                             \
        const uint64_t hw = (uint64_t)(h * w);                                                   \
        ptrdiff_t o, k;                                                                          \
        memset(dx, 0, (size_t)(h * w * c) * sizeof(FT));                                         \
        for (o = 0; o < p; o++) {                                                                \
            const FT *restrict g = dy + o * c, *restrict yy = y + o * c;                         \
            const int64_t *restrict a = argmax + o * c;                                          \
            for (k = 0; k < c; k++)                                                              \
                if ((uint64_t)a[k] < hw)                                                         \
                    dx[a[k] * c + k] = ((FT)0 + g[k]) * (FT)(yy[k] > (FT)0);                     \
        }                                                                                        \
    }

FNN_MAXPOOL_RELU_BACK(fnn_maxpool_relu_back_f32, float)
FNN_MAXPOOL_RELU_BACK(fnn_maxpool_relu_back_f64, double)
