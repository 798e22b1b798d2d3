/*
 * The AVX-512 micro-kernels' bodies, float (MR x 32) and double (MR x 16), included by
 * fnn_kernels_avx512.c once per tile height. Required macros: MR (a literal, so that the
 * accumulators stay in registers), UKR_F32 and UKR_F64 (the functions' names), FNN_AVX512.
 * MR, UKR_F32 and UKR_F64 are undefined at the end.
 */

/* C[MRx32] := alpha * sum_p a[p, 0:MR]^T b[p, 0:32] + beta * C  (MR = 12 or 8) */
FNN_AVX512 static void UKR_F32(ptrdiff_t kc, const float *a, const float *b, ptrdiff_t ldb,
                               float *c, ptrdiff_t ldc, float alpha, float beta)
{
    __m512 acc[MR][2];
    const float *cp = c;
    ptrdiff_t p;
    int i;
#pragma GCC unroll 16
    for (i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (p = 0; p < kc; p++) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        /* A streams from L2: fetch it ~16 steps ahead */
        _mm_prefetch((const char *)(a + 16 * MR), _MM_HINT_T0);
        /* pull the C tile in during the first k steps, one line per step: a burst of 24+
         * prefetches would exhaust the line fill buffers and stall */
        if (p < 2 * MR) {
            _mm_prefetch((const char *)(cp + ((p & 1) ? 31 : 0)), _MM_HINT_T0);
            if (p & 1) cp += ldc;
        }
#pragma GCC unroll 16
        for (i = 0; i < MR; i++) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += MR;
        b += ldb;
    }
    {
        const __m512 va = _mm512_set1_ps(alpha);
        if (beta == 0.0f) {
#pragma GCC unroll 16
            for (i = 0; i < MR; i++) {
                _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc[i][0]));
                _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc[i][1]));
            }
        } else {
            const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
            for (i = 0; i < MR; i++) {
                float *ci = c + i * ldc;
                _mm512_storeu_ps(ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci),
                                                     _mm512_mul_ps(va, acc[i][0])));
                _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16),
                                                          _mm512_mul_ps(va, acc[i][1])));
            }
        }
    }
}

/* C[MRx16] := alpha * sum_p a[p, 0:MR]^T b[p, 0:16] + beta * C  (MR = 12 or 8) */
FNN_AVX512 static void UKR_F64(ptrdiff_t kc, const double *a, const double *b, ptrdiff_t ldb,
                               double *c, ptrdiff_t ldc, double alpha, double beta)
{
    __m512d acc[MR][2];
    const double *cp = c;
    ptrdiff_t p;
    int i;
#pragma GCC unroll 16
    for (i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_pd();
    for (p = 0; p < kc; p++) {
        const __m512d b0 = _mm512_loadu_pd(b), b1 = _mm512_loadu_pd(b + 8);
        /* A streams from L2 at 1.5 lines per step: fetch it ~8 steps ahead */
        _mm_prefetch((const char *)(a + 8 * MR), _MM_HINT_T0);
        /* pull the C tile in during the first k steps, one line per step: a burst of 24+
         * prefetches would exhaust the line fill buffers and stall */
        if (p < 2 * MR) {
            _mm_prefetch((const char *)(cp + ((p & 1) ? 15 : 0)), _MM_HINT_T0);
            if (p & 1) cp += ldc;
        }
#pragma GCC unroll 16
        for (i = 0; i < MR; i++) {
            const __m512d ai = _mm512_set1_pd(a[i]);
            acc[i][0] = _mm512_fmadd_pd(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_pd(ai, b1, acc[i][1]);
        }
        a += MR;
        b += ldb;
    }
    {
        const __m512d va = _mm512_set1_pd(alpha);
        if (beta == 0.0) {
#pragma GCC unroll 16
            for (i = 0; i < MR; i++) {
                _mm512_storeu_pd(c + i * ldc, _mm512_mul_pd(va, acc[i][0]));
                _mm512_storeu_pd(c + i * ldc + 8, _mm512_mul_pd(va, acc[i][1]));
            }
        } else {
            const __m512d vb = _mm512_set1_pd(beta);
#pragma GCC unroll 16
            for (i = 0; i < MR; i++) {
                double *ci = c + i * ldc;
                _mm512_storeu_pd(ci, _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci),
                                                     _mm512_mul_pd(va, acc[i][0])));
                _mm512_storeu_pd(ci + 8, _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci + 8),
                                                         _mm512_mul_pd(va, acc[i][1])));
            }
        }
    }
}

#undef MR
#undef UKR_F32
#undef UKR_F64
