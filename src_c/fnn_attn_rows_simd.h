/*
 * The float row loops of fnn_attn_rows_tmpl.h written with AVX2 and AVX-512 intrinsics: a row of
 * a score tile is a few vectors, and the compiled-from-C loops spent more on the scalar row max,
 * the partial sums and the exp (no FMA: the C is compiled without contraction) than the
 * products of the tile took. Here the exp is fnn_vexp_simd.h's (FMAs; arguments below -87 give
 * 0 instead of a subnormal that the kernels' flush-to-zero mode would drop anyway). Every
 * argument here is <= 0 (a score minus its row max or log-sum-exp), -inf or NaN; NaN propagates.
 * So the flavours differ from the portable loops in the last bits, as their GEMMs already do;
 * each is deterministic (a fixed order of sums: two vector accumulators, for even and odd
 * vectors, so that a row's additions are not one chain of dependent adds, then lanes combined
 * as row_sum does).
 * Included by fnn_attn.c on x86 after fnn_attn_rows_tmpl.h.
 */
#include <immintrin.h>

#include "fnn_vexp_simd.h"

#define AV2 __attribute__((target("avx2,fma")))
#define AV5 __attribute__((target("avx512f,avx512dq,avx2,fma")))

static AV2 float attn_partials8_f32(__m256 acc) /* ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + ...) */
{
    /* in registers (a store and eight loads cost a store-forwarding stall a row): hadd gives
     * a0+a1, a2+a3 | a4+a5, a6+a7 in lanes 0, 1 | 4, 5; those pairs are added, then the halves */
    const __m256 p = _mm256_hadd_ps(acc, acc);
    const __m256 q = _mm256_hadd_ps(p, p);
    return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(q), _mm256_extractf128_ps(q, 1)));
}

/* the largest lane of v, none of them NaN (max is exact: any order gives the same value) */
static AV2 float attn_max8_f32(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

/* ---------------------------------------------------------------- AVX2: 8 lanes */

static AV2 void online_row_v8_f32(float *s, ptrdiff_t n, float *m, float *l, float *o,
                                  ptrdiff_t dv)
{
    const float ninf = -INFINITY;
    const __m256 vninf = _mm256_set1_ps(ninf);
    __m256 vmx = vninf, acc = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), vm;
    float mx, mnew, tail[8];
    ptrdiff_t j, t;
    for (j = 0; j + 8 <= n; j += 8) vmx = _mm256_max_ps(_mm256_loadu_ps(s + j), vmx); /* NaN: keeps vmx */
    mx = attn_max8_f32(vmx);
    for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    mnew = mx > *m ? mx : *m;
    if (mnew == ninf) { /* no finite score yet: as the portable online_row */
        for (j = 0; j < n; j++) {
            if (s[j] != s[j]) *l = s[j];
            s[j] = 0.0f;
        }
        return;
    }
    vm = _mm256_set1_ps(mnew);
    for (j = 0; j + 8 <= n; j += 8) {
        const __m256 x = _mm256_loadu_ps(s + j);
        const __m256 e = fnn_exp8_le0(_mm256_sub_ps(x, vm));
        const __m256 p = _mm256_andnot_ps(_mm256_cmp_ps(x, vninf, _CMP_EQ_OQ), e);
        _mm256_storeu_ps(s + j, p);
        if ((j >> 3) & 1)
            acc1 = _mm256_add_ps(acc1, p);
        else
            acc = _mm256_add_ps(acc, p);
    }
    acc = _mm256_add_ps(acc, acc1);
    if (j < n) { /* the tail through the portable exp, into partial t = j % 8 */
        _mm256_storeu_ps(tail, acc);
        for (t = 0; j < n; j++, t++) {
            const float e = fnn_expf(s[j] - mnew);
            s[j] = s[j] == ninf ? 0.0f : e;
            tail[t] += s[j];
        }
        acc = _mm256_loadu_ps(tail);
    }
    /* *m = -inf: no finite score before, so o and l are 0 (or NaN), which times alpha = 0
     * leaves as they are: skipped */
    if (*m != mnew && *m != ninf) {
        const __m256 va = _mm256_set1_ps(fnn_expf(*m - mnew));
        for (j = 0; j + 8 <= dv; j += 8)
            _mm256_storeu_ps(o + j, _mm256_mul_ps(_mm256_loadu_ps(o + j), va));
        for (; j < dv; j++) o[j] *= _mm256_cvtss_f32(va);
        *l *= _mm256_cvtss_f32(va);
    }
    *l += attn_partials8_f32(acc);
    *m = mnew;
}

static AV2 void grad_row_v8_f32(float *s, float *dp, ptrdiff_t n, float lse, float dd,
                                float scale)
{
    const __m256 vninf = _mm256_set1_ps(-INFINITY), vl = _mm256_set1_ps(lse);
    const __m256 vd = _mm256_set1_ps(dd), vs = _mm256_set1_ps(scale);
    ptrdiff_t j;
    for (j = 0; j + 8 <= n; j += 8) {
        const __m256 x = _mm256_loadu_ps(s + j);
        const __m256 e = fnn_exp8_le0(_mm256_sub_ps(x, vl));
        const __m256 hidden = _mm256_cmp_ps(x, vninf, _CMP_EQ_OQ);
        const __m256 p = _mm256_andnot_ps(hidden, e);
        _mm256_storeu_ps(s + j, p);
        _mm256_storeu_ps(dp + j, _mm256_andnot_ps(hidden, _mm256_mul_ps(
            _mm256_mul_ps(p, _mm256_sub_ps(_mm256_loadu_ps(dp + j), vd)), vs)));
    }
    for (; j < n; j++) {
        const float e = fnn_expf(s[j] - lse);
        const int hidden = s[j] == -INFINITY;
        const float p = hidden ? 0.0f : e;
        s[j] = p;
        dp[j] = hidden ? 0.0f : p * (dp[j] - dd) * scale;
    }
}

/* ---------------------------------------------------------------- AVX-512: 16 lanes */

static AV5 void online_row_v16_f32(float *s, ptrdiff_t n, float *m, float *l, float *o,
                                   ptrdiff_t dv)
{
    const float ninf = -INFINITY;
    const __m512 vninf = _mm512_set1_ps(ninf);
    __m512 vmx = vninf, vm, acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    float mnew;
    ptrdiff_t j;
    for (j = 0; j < n; j += 16) {
        const __mmask16 k = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
        vmx = _mm512_max_ps(_mm512_mask_loadu_ps(vninf, k, s + j), vmx); /* NaN: keeps vmx */
    }
    mnew = _mm512_reduce_max_ps(vmx);
    mnew = mnew > *m ? mnew : *m;
    if (mnew == ninf) { /* no finite score yet: as the portable online_row */
        for (j = 0; j < n; j++) {
            if (s[j] != s[j]) *l = s[j];
            s[j] = 0.0f;
        }
        return;
    }
    vm = _mm512_set1_ps(mnew);
    for (j = 0; j < n; j += 16) {
        const __mmask16 k = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
        const __m512 x = _mm512_mask_loadu_ps(vninf, k, s + j);
        const __m512 e = fnn_exp16_le0(_mm512_sub_ps(x, vm));
        /* masked-off lanes read -inf: their term is +0, which leaves a partial sum unchanged */
        const __m512 p = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, vninf, _CMP_NEQ_UQ), e);
        _mm512_mask_storeu_ps(s + j, k, p);
        if ((j >> 4) & 1)
            acc1 = _mm512_add_ps(acc1, p);
        else
            acc0 = _mm512_add_ps(acc0, p);
    }
    acc0 = _mm512_add_ps(acc0, acc1);
    if (*m != mnew) {
        const float alpha = *m == ninf ? 0.0f : fnn_expf(*m - mnew);
        for (j = 0; j < dv; j++) o[j] *= alpha;
        *l *= alpha;
    }
    *l += attn_partials8_f32(
        _mm256_add_ps(_mm512_castps512_ps256(acc0), _mm512_extractf32x8_ps(acc0, 1)));
    *m = mnew;
}

static AV5 void grad_row_v16_f32(float *s, float *dp, ptrdiff_t n, float lse, float dd,
                                 float scale)
{
    const __m512 vninf = _mm512_set1_ps(-INFINITY), vl = _mm512_set1_ps(lse);
    const __m512 vd = _mm512_set1_ps(dd), vs = _mm512_set1_ps(scale);
    ptrdiff_t j;
    for (j = 0; j < n; j += 16) {
        const __mmask16 k = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
        const __m512 x = _mm512_mask_loadu_ps(vninf, k, s + j);
        const __m512 e = fnn_exp16_le0(_mm512_sub_ps(x, vl));
        const __mmask16 live = _mm512_cmp_ps_mask(x, vninf, _CMP_NEQ_UQ);
        const __m512 p = _mm512_maskz_mov_ps(live, e);
        const __m512 g = _mm512_mask_loadu_ps(_mm512_setzero_ps(), k, dp + j);
        _mm512_mask_storeu_ps(s + j, k, p);
        const __m512 ds = _mm512_maskz_mul_ps(live, _mm512_mul_ps(p, _mm512_sub_ps(g, vd)), vs);
        _mm512_mask_storeu_ps(dp + j, k, ds);
    }
}

#undef AV2
#undef AV5
