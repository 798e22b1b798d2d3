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

typedef float fnn_v4f __attribute__((vector_size(16)));
typedef int32_t fnn_v4i __attribute__((vector_size(16)));
typedef double fnn_v2d __attribute__((vector_size(16)));
typedef int64_t fnn_v2l __attribute__((vector_size(16)));

#define FNN_MAXPOOL_ROW(NAME, FT, VF, VI, IT, L, SUF)                                            \
    void NAME(const FT *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t y0, ptrdiff_t y1,    \
              ptrdiff_t ow, ptrdiff_t pw, ptrdiff_t sw, ptrdiff_t left, FT *y, int64_t *argmax)  \
    {                                                                                            \
        if (c >= 16 && y1 > y0 && ow > 0 && left <= 0 && (ow - 1) * sw - left + pw <= w) {      \
            FNN_MAXROW_DISPATCH(SUF)                                                             \
            return;                                                                              \
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
