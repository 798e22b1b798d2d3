/*
 * The AVX-512 micro-kernels' bodies, float (MR x 32) and double (MR x 16), included by
 * fnn_kernels_avx512.c once per tile height. Each body is instantiated twice: the plain kernel
 * (fnn_ukr_f32) and the kernel with the epilogue fused into its stores (fnn_ukre_f32: bias, a
 * cheap activation and the |C| maximum, applied to the accumulators before the one store instead
 * of reading the tile back). Required macros: MR (a literal, so that the accumulators stay in
 * registers), UKR_F32, UKRE_F32, UKR_F64, UKRE_F64 (the functions' names), FNN_AVX512, and the
 * shared activations FNN_V16_ACT / FNN_V8_ACT. MR and the names are undefined at the end.
 */
#define UKR_CAT_(a, b) a##b
#define UKR_CAT(a, b) UKR_CAT_(a, b)

/* C[MRx32] := alpha * sum_p a[p, 0:MR]^T b[p, 0:32] + beta * C  (MR = 12 or 8), then with E the
 * epilogue: C := act(C + bias), *amax := max(*amax, |C| bits) */
FNN_AVX512 static inline __attribute__((always_inline)) void
UKR_CAT(UKR_F32, _body)(ptrdiff_t kc, const float *a, const float *b, ptrdiff_t ldb, float *c,
                        ptrdiff_t ldc, float alpha, float beta, const int E, const float *bias,
                        int act, float param, uint32_t *amax)
{
    __m512 acc[MR][2];
    const float *cp = c;
    int cj = 0; /* which of a row's three prefetch points is next (see below) */
    ptrdiff_t p;
    int i;
#pragma GCC unroll 16
    for (i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (p = 0; p < kc; p++) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        /* A streams from L2: fetch it ~16 steps ahead */
        _mm_prefetch((const char *)(a + 16 * MR), _MM_HINT_T0);
        /* pull the C tile in during the first k steps, one line per step: a burst of 24+
         * prefetches would exhaust the line fill buffers and stall. A row of the tile is 128
         * bytes: three lines when C is not 64-byte aligned (NumPy's arrays are 16-byte aligned),
         * so three touches per row, at its first, middle and last element (with two, an
         * unaligned C left every row's middle line to a demand miss: 1024^3 ~11% slower) */
        if (p < 3 * MR) {
            _mm_prefetch((const char *)(cp + (cj == 0 ? 0 : cj == 1 ? 16 : 31)), _MM_HINT_T0);
            if (++cj == 3) {
                cj = 0;
                cp += ldc;
            }
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
        const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
        const __m512 vp = _mm512_set1_ps(param);
        const __m512 bias0 = (E && bias) ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
        const __m512 bias1 = (E && bias) ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
        const __m512i absm = _mm512_set1_epi32((int)FNN_ABS_BITS_F32);
        __m512i mx = _mm512_setzero_si512();
#pragma GCC unroll 16
        for (i = 0; i < MR; i++) {
            float *ci = c + i * ldc;
            __m512 z0 = _mm512_mul_ps(va, acc[i][0]), z1 = _mm512_mul_ps(va, acc[i][1]);
            if (beta != 0.0f) {
                z0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), z0);
                z1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16), z1);
            }
            if (E) {
                if (bias) {
                    z0 = _mm512_add_ps(z0, bias0);
                    z1 = _mm512_add_ps(z1, bias1);
                }
                z0 = FNN_V16_ACT(z0, act, vp);
                z1 = FNN_V16_ACT(z1, act, vp);
                if (amax) {
                    mx = _mm512_max_epu32(mx, _mm512_and_si512(_mm512_castps_si512(z0), absm));
                    mx = _mm512_max_epu32(mx, _mm512_and_si512(_mm512_castps_si512(z1), absm));
                }
            }
            _mm512_storeu_ps(ci, z0);
            _mm512_storeu_ps(ci + 16, z1);
        }
        if (E && amax) {
            const uint32_t m = (uint32_t)_mm512_reduce_max_epu32(mx);
            if (m > *amax) *amax = m;
        }
    }
}

FNN_AVX512 static void UKR_F32(ptrdiff_t kc, const float *a, const float *b, ptrdiff_t ldb,
                               float *c, ptrdiff_t ldc, float alpha, float beta)
{
    UKR_CAT(UKR_F32, _body)(kc, a, b, ldb, c, ldc, alpha, beta, 0, NULL, FNN_ACT_LINEAR, 0.0f,
                            NULL);
}

FNN_AVX512 static void UKRE_F32(ptrdiff_t kc, const float *a, const float *b, ptrdiff_t ldb,
                                float *c, ptrdiff_t ldc, float alpha, float beta, const float *bias,
                                int act, float param, uint32_t *amax)
{
    UKR_CAT(UKR_F32, _body)(kc, a, b, ldb, c, ldc, alpha, beta, 1, bias, act, param, amax);
}

/* C[MRx16] := alpha * sum_p a[p, 0:MR]^T b[p, 0:16] + beta * C  (MR = 12 or 8), then with E the
 * epilogue as above */
FNN_AVX512 static inline __attribute__((always_inline)) void
UKR_CAT(UKR_F64, _body)(ptrdiff_t kc, const double *a, const double *b, ptrdiff_t ldb, double *c,
                        ptrdiff_t ldc, double alpha, double beta, const int E, const double *bias,
                        int act, double param, uint64_t *amax)
{
    __m512d acc[MR][2];
    const double *cp = c;
    int cj = 0; /* which of a row's three prefetch points is next (see below) */
    ptrdiff_t p;
    int i;
#pragma GCC unroll 16
    for (i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_pd();
    for (p = 0; p < kc; p++) {
        const __m512d b0 = _mm512_loadu_pd(b), b1 = _mm512_loadu_pd(b + 8);
        /* A streams from L2 at 1.5 lines per step: fetch it ~8 steps ahead */
        _mm_prefetch((const char *)(a + 8 * MR), _MM_HINT_T0);
        /* the C tile, one line per step, three per 128-byte row as for float */
        if (p < 3 * MR) {
            _mm_prefetch((const char *)(cp + (cj == 0 ? 0 : cj == 1 ? 8 : 15)), _MM_HINT_T0);
            if (++cj == 3) {
                cj = 0;
                cp += ldc;
            }
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
        const __m512d va = _mm512_set1_pd(alpha), vb = _mm512_set1_pd(beta);
        const __m512d vp = _mm512_set1_pd(param);
        const __m512d bias0 = (E && bias) ? _mm512_loadu_pd(bias) : _mm512_setzero_pd();
        const __m512d bias1 = (E && bias) ? _mm512_loadu_pd(bias + 8) : _mm512_setzero_pd();
        const __m512i absm = _mm512_set1_epi64((long long)FNN_ABS_BITS_F64);
        __m512i mx = _mm512_setzero_si512();
#pragma GCC unroll 16
        for (i = 0; i < MR; i++) {
            double *ci = c + i * ldc;
            __m512d z0 = _mm512_mul_pd(va, acc[i][0]), z1 = _mm512_mul_pd(va, acc[i][1]);
            if (beta != 0.0) {
                z0 = _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci), z0);
                z1 = _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci + 8), z1);
            }
            if (E) {
                if (bias) {
                    z0 = _mm512_add_pd(z0, bias0);
                    z1 = _mm512_add_pd(z1, bias1);
                }
                z0 = FNN_V8_ACT(z0, act, vp);
                z1 = FNN_V8_ACT(z1, act, vp);
                if (amax) {
                    mx = _mm512_max_epu64(mx, _mm512_and_si512(_mm512_castpd_si512(z0), absm));
                    mx = _mm512_max_epu64(mx, _mm512_and_si512(_mm512_castpd_si512(z1), absm));
                }
            }
            _mm512_storeu_pd(ci, z0);
            _mm512_storeu_pd(ci + 8, z1);
        }
        if (E && amax) {
            const uint64_t m = (uint64_t)_mm512_reduce_max_epu64(mx);
            if (m > *amax) *amax = m;
        }
    }
}

FNN_AVX512 static void UKR_F64(ptrdiff_t kc, const double *a, const double *b, ptrdiff_t ldb,
                               double *c, ptrdiff_t ldc, double alpha, double beta)
{
    UKR_CAT(UKR_F64, _body)(kc, a, b, ldb, c, ldc, alpha, beta, 0, NULL, FNN_ACT_LINEAR, 0.0,
                            NULL);
}

FNN_AVX512 static void UKRE_F64(ptrdiff_t kc, const double *a, const double *b, ptrdiff_t ldb,
                                double *c, ptrdiff_t ldc, double alpha, double beta,
                                const double *bias, int act, double param, uint64_t *amax)
{
    UKR_CAT(UKR_F64, _body)(kc, a, b, ldb, c, ldc, alpha, beta, 1, bias, act, param, amax);
}

#undef UKR_CAT
#undef UKR_CAT_
#undef MR
#undef UKR_F32
#undef UKRE_F32
#undef UKR_F64
#undef UKRE_F64
