/* Max pooling rows (see fnn_pool.h), for float and double.
 *
 * The channels go 16 bytes at a time through GCC/Clang vector extensions (SSE2, the x86-64
 * baseline, or any target's 16-byte vectors): the comparisons give lane masks and the maximum
 * and its index are blended with them, so no branch depends on the data (branching on random
 * data mispredicted every other element: 18 ns per output on Zen 4). The last few channels go
 * one at a time with the same arithmetic. Window indices are kept in 32 bits in the vectors, so
 * images of 2**31 positions or more take the scalar loop only. */
#include <string.h>

#include "fnn_pool.h"

typedef float fnn_v4f __attribute__((vector_size(16)));
typedef int32_t fnn_v4i __attribute__((vector_size(16)));
typedef double fnn_v2d __attribute__((vector_size(16)));
typedef int64_t fnn_v2l __attribute__((vector_size(16)));

#define FNN_MAXPOOL_ROW(NAME, FT, VF, VI, IT, L)                                                 \
    void NAME(const FT *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t y0, ptrdiff_t y1,    \
              ptrdiff_t ow, ptrdiff_t pw, ptrdiff_t sw, ptrdiff_t left, FT *y, int64_t *argmax)  \
    {                                                                                            \
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

FNN_MAXPOOL_ROW(fnn_maxpool_row_f32, float, fnn_v4f, fnn_v4i, int32_t, 4)
FNN_MAXPOOL_ROW(fnn_maxpool_row_f64, double, fnn_v2d, fnn_v2l, int64_t, 2)
