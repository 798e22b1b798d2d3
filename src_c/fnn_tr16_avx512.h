/*
 * A 16 x 16 float transpose held in AVX-512 registers, shared by the transposing pack
 * (fnn_kernels_avx512.c) and the softmax (fnn_vec.c). Included by files that compile AVX-512
 * code through target attributes (no global -m flags); x86 only.
 */
#ifndef FNN_TR16_AVX512_H
#define FNN_TR16_AVX512_H

#include <immintrin.h>

/* a[i] lane q := a[q] lane i for i, q < 16. Pairs of rows interleaved, then quads (a 4 x 4
 * transpose in each 128-bit lane), then the lanes gathered in two rounds: 64 shuffles for 256
 * floats, against 96 with 8 x 8 AVX2 blocks. */
__attribute__((target("avx512f"), always_inline)) static inline void fnn_tr16_f32(__m512 a[16])
{
    __m512 b[16];
    int i, c;
#pragma GCC unroll 8
    for (i = 0; i < 8; i++) { /* b[2i] / b[2i+1]: rows 2i, 2i+1 interleaved, low / high halves */
        b[2 * i] = _mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]);
        b[2 * i + 1] = _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (i = 0; i < 4; i++) { /* b[4i + c], lane L: rows 4i..4i+3 of column 4L + c */
        const __m512 t0 = _mm512_shuffle_ps(b[4 * i], b[4 * i + 2], 0x44);
        const __m512 t1 = _mm512_shuffle_ps(b[4 * i], b[4 * i + 2], 0xEE);
        const __m512 t2 = _mm512_shuffle_ps(b[4 * i + 1], b[4 * i + 3], 0x44);
        const __m512 t3 = _mm512_shuffle_ps(b[4 * i + 1], b[4 * i + 3], 0xEE);
        b[4 * i] = t0;
        b[4 * i + 1] = t1;
        b[4 * i + 2] = t2;
        b[4 * i + 3] = t3;
    }
#pragma GCC unroll 4
    for (c = 0; c < 4; c++) { /* lanes 0, 2 and 1, 3 of row groups 0, 1 and of groups 2, 3 */
        const __m512 w02 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x88);
        const __m512 w13 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xDD);
        const __m512 x02 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x88);
        const __m512 x13 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xDD);
        a[c] = _mm512_shuffle_f32x4(w02, x02, 0x88);
        a[4 + c] = _mm512_shuffle_f32x4(w13, x13, 0x88);
        a[8 + c] = _mm512_shuffle_f32x4(w02, x02, 0xDD);
        a[12 + c] = _mm512_shuffle_f32x4(w13, x13, 0xDD);
    }
}

#endif
