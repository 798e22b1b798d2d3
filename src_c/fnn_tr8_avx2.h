/*
 * The 8x8 float transpose and a partial-vector store in AVX2 registers, shared by the AVX2
 * kernels (fnn_kernels_avx2.c) and the AVX2 softmax (fnn_vec.c). x86 only; compiled through
 * target attributes.
 */
#ifndef FNN_TR8_AVX2_H
#define FNN_TR8_AVX2_H

#include <stddef.h>
#include <immintrin.h>

/* r[i][j] := r[j][i] for the 8 x 8 floats of r[0..7] */
__attribute__((target("avx2"), always_inline)) static inline void fnn_tr8_f32(__m256 r[8])
{
    /* pairs of rows interleaved, then quads, then the 128-bit halves swapped into place */
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* The first rem (0 < rem < 8) lanes of a vector stored with plain 16-, 8- and 4-byte stores:
 * a masked store (vmaskmovps) costs several cycles on AMD Zen, and an output layer of 10 classes
 * ends every row of C with one. */
__attribute__((target("avx2"), always_inline)) static inline void
fnn_store_part8_f32(float *p, ptrdiff_t rem, __m256 v)
{
    __m128 x = _mm256_castps256_ps128(v);
    if (rem & 4) {
        _mm_storeu_ps(p, x);
        x = _mm256_extractf128_ps(v, 1);
        p += 4;
    }
    if (rem & 2) {
        _mm_storel_pi((__m64 *)p, x);
        x = _mm_movehl_ps(x, x);
        p += 2;
    }
    if (rem & 1) _mm_store_ss(p, x);
}

#endif
