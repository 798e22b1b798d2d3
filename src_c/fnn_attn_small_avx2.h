/*
 * Float attention of one small (batch, head) pair in AVX2 registers: the pairs of a small
 * Transformer (heads of at most 16 values, at most 32 keys and 48 queries: a 64-wide block of
 * four heads over sequences of 32, the tiny GPT's) are a single tile of the tiled algorithm of
 * fnn_attn_tmpl.h, too small for its GEMM tiles: at 32 x 32 x 16 the packing, the micro-tiles'
 * set-up and stores, and the row loops' calls cost about as much as the multiply-adds. For the
 * 64 pairs of a batch of 16 on Zen 2, one thread: forward 181 -> 168 us, backward 347 -> 271 us
 * (the forward's exp takes ~30 us of its 168, the row's logf ~13).
 *
 * Here a pair's K^T and V^T (or V) are copied once into zero-padded 16 x 32 (32 x 16) blocks, and
 * every product runs with its accumulators in registers, in four-row blocks of queries:
 *   forward:  S = scale q K^T (4 x 32), masks, m = rowmax, P = exp(S - m), l = rowsum P,
 *             out = (P V) / l, lse = m + log l;
 *   backward: S again, P = exp(S - lse), dP = dout V^T, dS = P (dP - D) scale, dq = dS K,
 *             with P and dS of every row kept (48 x 32 each) for dv = P^T dout and
 *             dk = dS^T q at the end, summed over the rows in order.
 * The same operations in the same order for any thread count (a pair is one task), so the
 * results are bitwise the same at 1 and 2 threads; they differ from the tiled path's in the last
 * bits (another order of sums), as the flavours' GEMMs do. The special cases are the tiled
 * path's (fnn_attn.h): a hidden key (masked, past lk, or a score of -inf) has P = dS = 0
 * exactly; a row with no visible key gets out = 0, lse = -inf and zero gradients; a NaN or +inf
 * score makes the row's out and lse NaN.
 *
 * fnn_attn_set_small(0) sends these pairs down the tiled path (tests compare the two). x86 only,
 * included by fnn_attn.c after fnn_attn_rows_simd.h (its exp, row max and lane sums). The AVX2
 * flavour only: it was measured on AVX2 (Zen 2); the AVX-512 flavour keeps its tiled path
 * (16-lane rows, 32-wide direct tiles), which these kernels were not timed against.
 */
#ifndef FNN_ATTN_SMALL_AVX2_H
#define FNN_ATTN_SMALL_AVX2_H

#include <immintrin.h>
#include "fnn_tr8_avx2.h"

#define AS_TGT __attribute__((target("avx2,fma")))
#define AS_LK 32 /* keys: four vectors of 8 */
#define AS_LQ 48 /* queries: FNN_ATTN_BR, so that a pair is one forward task */
#define AS_D 16  /* widths of q, k (d) and v (dv): two vectors */

#ifndef ATTN_AT /* as fnn_attn_tmpl.h: the offset of pair p's matrix in an array of layout L */
#define ATTN_AT(L, p) ((p) / g->heads * (L).bs + (p) % g->heads * (L).hs)
#endif

static int fnn_attn_small_on = 1;

void fnn_attn_set_small(int on) { fnn_attn_small_on = on != 0; }

static int attn_small_ok(const fnn_attn_geom *g)
{
    return fnn_attn_small_on && g->drop_rate == 0.0 && !g->qk_mask &&
           fnn_active_flavour() == 1 && g->lk <= AS_LK && g->lq <= AS_LQ &&
           g->d <= AS_D && g->dv <= AS_D;
}

/* The kernels' blocks live in the caller's per-thread scratch (fnn_attn_scratch's, which is at
 * least FNN_ATTN_BR * FNN_ATTN_BC values forward and twice that backward), not on the stack: a
 * Python thread may run them on a small stack. From its first 32-byte boundary: forward K^T,
 * V and four rows of P (1152 values), backward K^T, V^T, K, P, dS and D (4656 values). */
typedef char as_scratch_fits[FNN_ATTN_BR * FNN_ATTN_BC >= 3 * AS_D * AS_LK + 4 * AS_LK + 8 &&
                                     2 * FNN_ATTN_BR * FNN_ATTN_BC >=
                                         3 * AS_D * AS_LK + 2 * AS_LQ * AS_LK + AS_LQ + 8
                                 ? 1
                                 : -1];

static inline float *as_aligned(float *scratch)
{
    return (float *)(((uintptr_t)scratch + 31) & ~(uintptr_t)31);
}

/* dst[c][r] := src[r][c] for r < rows, c < cols (rows lds and ldd apart): whole 8 x 8 blocks
 * through registers (fnn_tr8_f32), the rest value by value */
static AS_TGT void as_transpose(const float *src, ptrdiff_t lds, ptrdiff_t rows, ptrdiff_t cols,
                                float *dst, ptrdiff_t ldd)
{
    const ptrdiff_t r8 = rows - rows % 8, c8 = cols - cols % 8;
    ptrdiff_t r, c, r0, c0;
    int t;
    for (r0 = 0; r0 < r8; r0 += 8)
        for (c0 = 0; c0 < c8; c0 += 8) {
            __m256 b[8];
            for (t = 0; t < 8; t++) b[t] = _mm256_loadu_ps(src + (r0 + t) * lds + c0);
            fnn_tr8_f32(b);
            for (t = 0; t < 8; t++) _mm256_storeu_ps(dst + (c0 + t) * ldd + r0, b[t]);
        }
    for (r = 0; r < rows; r++)
        for (c = r < r8 ? c8 : 0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
}

/* T[e][j] := x[j][e] for j < rows, e < cols (x's rows ld apart); zero elsewhere (16 x 32) */
static AS_TGT void as_pack_t(const float *x, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t cols,
                             float *T)
{
    if (rows < AS_LK || cols < AS_D) memset(T, 0, sizeof(float) * AS_D * AS_LK);
    as_transpose(x, ld, rows, cols, T, AS_LK);
}

/* R[j][e] := x[j][e] for j < rows, e < cols; zero elsewhere (32 x 16) */
static AS_TGT void as_pack_n(const float *x, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t cols,
                             float *R)
{
    ptrdiff_t j;
    memset(R, 0, sizeof(float) * AS_LK * AS_D);
    for (j = 0; j < rows; j++) memcpy(R + j * AS_D, x + j * ld, (size_t)cols * sizeof(float));
}

/* acc[r][v] := sum_{t < n} x_r[t * xs] M[t][8v..8v+7] (r = 0, 1; M's rows 32 apart): two
 * broadcast streams against a 32-wide matrix, 8 accumulators (the products q K^T and dout V^T
 * read a row of q along t, xs = 1; the transposed ones P^T dout and dS^T q a column, xs = ld) */
static AS_TGT inline __attribute__((always_inline)) void
as_fma2x4(const float *x0, const float *x1, ptrdiff_t xs, ptrdiff_t n, const float *M,
          __m256 acc[2][4])
{
    ptrdiff_t t;
    int v;
    for (v = 0; v < 4; v++) acc[0][v] = acc[1][v] = _mm256_setzero_ps();
    for (t = 0; t < n; t++) {
        const float *mt = M + t * AS_LK;
        const __m256 m0 = _mm256_load_ps(mt), m1 = _mm256_load_ps(mt + 8);
        const __m256 m2 = _mm256_load_ps(mt + 16), m3 = _mm256_load_ps(mt + 24);
        const __m256 b0 = _mm256_broadcast_ss(x0 + t * xs), b1 = _mm256_broadcast_ss(x1 + t * xs);
        acc[0][0] = _mm256_fmadd_ps(b0, m0, acc[0][0]);
        acc[0][1] = _mm256_fmadd_ps(b0, m1, acc[0][1]);
        acc[0][2] = _mm256_fmadd_ps(b0, m2, acc[0][2]);
        acc[0][3] = _mm256_fmadd_ps(b0, m3, acc[0][3]);
        acc[1][0] = _mm256_fmadd_ps(b1, m0, acc[1][0]);
        acc[1][1] = _mm256_fmadd_ps(b1, m1, acc[1][1]);
        acc[1][2] = _mm256_fmadd_ps(b1, m2, acc[1][2]);
        acc[1][3] = _mm256_fmadd_ps(b1, m3, acc[1][3]);
    }
}

/* rows[r] of a block (r < 4; rows past m repeat the last: computed, never stored) of the
 * (rows x w) matrix at a (rows ld apart) times T (w x 32) into out[r][v] */
static AS_TGT inline __attribute__((always_inline)) void
as_block4(const float *a, ptrdiff_t ld, ptrdiff_t m, ptrdiff_t w, const float *T,
          __m256 out[4][4])
{
    __m256 acc[2][4];
    int v;
    as_fma2x4(a, a + (m > 1 ? ld : 0), 1, w, T, acc);
    for (v = 0; v < 4; v++) out[0][v] = acc[0][v], out[1][v] = acc[1][v];
    a += (m > 2 ? 2 : m - 1) * ld;
    as_fma2x4(a, a + (m > 3 ? ld : 0), 1, w, T, acc);
    for (v = 0; v < 4; v++) out[2][v] = acc[0][v], out[3][v] = acc[1][v];
}

/* out[r][0..1] := sum_{j < n} W[r][j] R[j][0..15] for the four rows of W (32 apart); R's rows
 * ldr apart. The eight sums are named locals, copied to o at the end: accumulated in o itself
 * (which the callers index with a variable row), GCC kept them in memory, a store and a load
 * per sum and key. Zen 3, one thread, 64 pairs of 32 x 32 x 16, medians of alternating runs:
 * forward 196 -> 160 us; backward (with as_row_dots) 273 -> 238 us. */
static AS_TGT inline __attribute__((always_inline)) void
as_times_rows(const float *W, ptrdiff_t n, const float *R, ptrdiff_t ldr, __m256 o[4][2])
{
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;
    __m256 a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    ptrdiff_t j;
    for (j = 0; j < n; j++) {
        const __m256 r0 = _mm256_loadu_ps(R + j * ldr), r1 = _mm256_loadu_ps(R + j * ldr + 8);
        const __m256 w0 = _mm256_broadcast_ss(W + j), w1 = _mm256_broadcast_ss(W + AS_LK + j);
        const __m256 w2 = _mm256_broadcast_ss(W + 2 * AS_LK + j);
        const __m256 w3 = _mm256_broadcast_ss(W + 3 * AS_LK + j);
        a00 = _mm256_fmadd_ps(w0, r0, a00);
        a01 = _mm256_fmadd_ps(w0, r1, a01);
        a10 = _mm256_fmadd_ps(w1, r0, a10);
        a11 = _mm256_fmadd_ps(w1, r1, a11);
        a20 = _mm256_fmadd_ps(w2, r0, a20);
        a21 = _mm256_fmadd_ps(w2, r1, a21);
        a30 = _mm256_fmadd_ps(w3, r0, a30);
        a31 = _mm256_fmadd_ps(w3, r1, a31);
    }
    o[0][0] = a00, o[0][1] = a01, o[1][0] = a10, o[1][1] = a11;
    o[2][0] = a20, o[2][1] = a21, o[3][0] = a30, o[3][1] = a31;
}

/* the first w (<= 16) values of o[0..1] into dst */
static AS_TGT inline __attribute__((always_inline)) void as_store_row(float *dst, ptrdiff_t w,
                                                                     const __m256 o[2])
{
    if (w == AS_D) {
        _mm256_storeu_ps(dst, o[0]);
        _mm256_storeu_ps(dst + 8, o[1]);
    } else {
        float tmp[AS_D];
        _mm256_storeu_ps(tmp, o[0]);
        _mm256_storeu_ps(tmp + 8, o[1]);
        memcpy(dst, tmp, (size_t)w * sizeof(float));
    }
}

/* The hidden keys of row i as lane masks: past lk, masked by km (NULL: none), causal j > i */
static AS_TGT inline __attribute__((always_inline)) void
as_hidden(const __m256 keymask[4], int causal, ptrdiff_t i, __m256 h[4])
{
    const __m256 fi = _mm256_set1_ps((float)i);
    int v;
    for (v = 0; v < 4; v++) {
        h[v] = keymask[v];
        if (causal) {
            const __m256 j = _mm256_add_ps(_mm256_set_ps(7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm256_set1_ps((float)(8 * v)));
            h[v] = _mm256_or_ps(h[v], _mm256_cmp_ps(j, fi, _CMP_GT_OQ));
        }
    }
}

/* keymask[v]: all ones in the lanes of keys j = 8v + lane that no query sees (j >= lk, or
 * km[j] == 0) */
static AS_TGT void as_keymask(const unsigned char *km, ptrdiff_t lk, __m256 keymask[4])
{
    float bits[AS_LK];
    const uint32_t u = 0xffffffffu;
    ptrdiff_t j;
    int v;
    for (j = 0; j < AS_LK; j++) {
        const int hide = j >= lk || (km && !km[j]);
        if (hide) memcpy(&bits[j], &u, sizeof u);
        else bits[j] = 0.0f;
    }
    for (v = 0; v < 4; v++) keymask[v] = _mm256_loadu_ps(bits + 8 * v);
}

/* The forward of pair p (fnn_attn_forward's arguments); g is attn_small_ok's. */
static AS_TGT void attn_small_fwd_f32(const fnn_attn_geom *g, float scale, ptrdiff_t p,
                                      const float *q, const float *k, const float *v,
                                      float *out, float *lse, float *scratch)
{
    const ptrdiff_t lq = g->lq, lk = g->lk, d = g->d, dv = g->dv;
    const ptrdiff_t ldq = g->q.rs, ldo = g->out.rs;
    const float *qp = q + ATTN_AT(g->q, p);
    float *op = out + ATTN_AT(g->out, p), *lp = lse + p * lq;
    const unsigned char *km = g->key_mask ? g->key_mask + (p / g->heads) * lk : NULL;
    /* the keys P V runs over: causal, the tiled path's single query tile stops at key lq (the
     * later ones' P is 0, but 0 times a NaN or inf in v would not be) */
    const ptrdiff_t jn = g->causal && lq < lk ? lq : lk;
    float *KT = as_aligned(scratch), *Vr = KT + AS_D * AS_LK, *P = Vr + AS_LK * AS_D;
    const __m256 vscale = _mm256_set1_ps(scale), vninf = _mm256_set1_ps(-INFINITY);
    __m256 keymask[4];
    ptrdiff_t i0;
    /* V read in place when its rows are two whole vectors, else a zero-padded copy */
    const float *vr = dv == AS_D ? v + ATTN_AT(g->v, p) : Vr;
    const ptrdiff_t ldvr = dv == AS_D ? g->v.rs : AS_D;
    as_pack_t(k + ATTN_AT(g->k, p), g->k.rs, lk, d, KT);
    if (dv != AS_D) as_pack_n(v + ATTN_AT(g->v, p), g->v.rs, lk, dv, Vr);
    as_keymask(km, lk, keymask);
    for (i0 = 0; i0 < lq; i0 += 4) {
        const ptrdiff_t m = lq - i0 < 4 ? lq - i0 : 4;
        __m256 S[4][4], o[4][2];
        float mx[4], l[4];
        int r, c, bad[4];
        as_block4(qp + i0 * ldq, ldq, m, d, KT, S);
        for (r = 0; r < 4; r++) {
            __m256 h[4], vmx = vninf, nan = _mm256_setzero_ps(), acc;
            as_hidden(keymask, g->causal, i0 + r, h);
            for (c = 0; c < 4; c++) {
                const __m256 s = _mm256_blendv_ps(_mm256_mul_ps(S[r][c], vscale), vninf, h[c]);
                nan = _mm256_or_ps(nan, _mm256_cmp_ps(s, s, _CMP_UNORD_Q));
                vmx = _mm256_max_ps(s, vmx); /* NaN: keeps vmx */
                S[r][c] = s;
            }
            mx[r] = attn_max8_f32(vmx);
            bad[r] = _mm256_movemask_ps(nan) != 0;
            {
                const __m256 vm = _mm256_set1_ps(mx[r]);
                __m256 pv[4];
                for (c = 0; c < 4; c++) {
                    /* hidden (-inf) scores give exactly 0; with mx = -inf every lane is
                     * hidden and the row is handled below */
                    pv[c] = _mm256_andnot_ps(_mm256_cmp_ps(S[r][c], vninf, _CMP_EQ_OQ),
                                             fnn_exp8_le0(_mm256_sub_ps(S[r][c], vm)));
                    _mm256_store_ps(P + r * AS_LK + 8 * c, pv[c]);
                }
                acc = _mm256_add_ps(_mm256_add_ps(pv[0], pv[1]), _mm256_add_ps(pv[2], pv[3]));
                l[r] = attn_partials8_f32(acc);
            }
        }
        as_times_rows(P, jn, vr, ldvr, o);
        for (r = 0; r < m; r++) {
            float *orow = op + (i0 + r) * ldo;
            if (bad[r] || l[r] != l[r]) { /* a NaN or +inf score */
                const __m256 vn = _mm256_set1_ps(NAN);
                o[r][0] = o[r][1] = vn;
                lp[i0 + r] = NAN;
            } else if (mx[r] == -INFINITY) { /* no visible key */
                o[r][0] = o[r][1] = _mm256_setzero_ps();
                lp[i0 + r] = -INFINITY;
            } else {
                const __m256 vl = _mm256_set1_ps(l[r]);
                o[r][0] = _mm256_div_ps(o[r][0], vl);
                o[r][1] = _mm256_div_ps(o[r][1], vl);
                lp[i0 + r] = mx[r] + logf(l[r]);
            }
            as_store_row(orow, dv, o[r]);
        }
    }
}

/* T[e][0..31] := sum_{i < n} a[i][e] W[i][0..31] for e < w (a's rows ld apart, W's 32): the
 * transposed product W^T a, two values of e at a time, each summed over i in order */
static AS_TGT void as_tgemm(const float *a, ptrdiff_t ld, ptrdiff_t n, ptrdiff_t w,
                            const float *W, float *T)
{
    ptrdiff_t e;
    int c;
    for (e = 0; e < w; e += 2) {
        const int two = e + 1 < w;
        __m256 acc[2][4];
        as_fma2x4(a + e, a + e + two, ld, n, W, acc);
        for (c = 0; c < 4; c++) _mm256_store_ps(T + e * AS_LK + 8 * c, acc[0][c]);
        if (two)
            for (c = 0; c < 4; c++) _mm256_store_ps(T + (e + 1) * AS_LK + 8 * c, acc[1][c]);
    }
}

/* D[i] := a_i . b_i for i < rows, over the first w (<= 16) values of each row (rows lda and ldb
 * apart): a row's products in one vector (its two halves' lanes added), then the lanes summed
 * as attn_partials8_f32 does. The rows are independent, so their sums overlap; a scalar sum
 * was a chain of 16 dependent adds a row (~0.5 us of a 32-row pair's backward on Zen 3). */
static AS_TGT void as_row_dots(const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                               ptrdiff_t rows, ptrdiff_t w, float *D)
{
    const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    /* lanes e < w of each half (masked loads read nothing past the row) */
    const __m256i lo = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w), lane);
    const __m256i hi = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w - 8), lane);
    ptrdiff_t i;
    for (i = 0; i < rows; i++) {
        const float *x = a + i * lda, *y = b + i * ldb;
        __m256 s;
        if (w == AS_D)
            s = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8), _mm256_loadu_ps(y + 8),
                                _mm256_mul_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(y)));
        else
            s = _mm256_fmadd_ps(_mm256_maskload_ps(x + 8, hi), _mm256_maskload_ps(y + 8, hi),
                                _mm256_mul_ps(_mm256_maskload_ps(x, lo),
                                              _mm256_maskload_ps(y, lo)));
        D[i] = attn_partials8_f32(s);
    }
}

/* The backward of pair p (fnn_attn_backward's arguments); g is attn_small_ok's. */
static AS_TGT void attn_small_bwd_f32(const fnn_attn_geom *g, float scale, ptrdiff_t p,
                                      const float *q, const float *k, const float *v,
                                      const float *out, const float *dout, const float *lse,
                                      float *dq, float *dk, float *dv, float *scratch)
{
    const ptrdiff_t lq = g->lq, lk = g->lk, d = g->d, ev = g->dv;
    const ptrdiff_t ldq = g->q.rs, ldo = g->out.rs, lddo = g->dout.rs, lddq = g->dq.rs;
    const float *qp = q + ATTN_AT(g->q, p), *op = out + ATTN_AT(g->out, p);
    const float *dop = dout + ATTN_AT(g->dout, p), *lp = lse + p * lq;
    float *dqp = dq + ATTN_AT(g->dq, p);
    const unsigned char *km = g->key_mask ? g->key_mask + (p / g->heads) * lk : NULL;
    float *KT = as_aligned(scratch), *VT = KT + AS_D * AS_LK, *Kr = VT + AS_D * AS_LK;
    float *P = Kr + AS_LK * AS_D, *dS = P + AS_LQ * AS_LK, *Dr = dS + AS_LQ * AS_LK;
    const __m256 vscale = _mm256_set1_ps(scale), vninf = _mm256_set1_ps(-INFINITY);
    __m256 keymask[4];
    ptrdiff_t i0;
    const float *kr = d == AS_D ? k + ATTN_AT(g->k, p) : Kr; /* K in place, as V forward */
    const ptrdiff_t ldkr = d == AS_D ? g->k.rs : AS_D;
    as_pack_t(k + ATTN_AT(g->k, p), g->k.rs, lk, d, KT);
    as_pack_t(v + ATTN_AT(g->v, p), g->v.rs, lk, ev, VT);
    if (d != AS_D) as_pack_n(k + ATTN_AT(g->k, p), g->k.rs, lk, d, Kr);
    as_keymask(km, lk, keymask);
    as_row_dots(dop, lddo, op, ldo, lq, ev, Dr); /* D_i = dout_i . out_i */
    for (i0 = 0; i0 < lq; i0 += 4) {
        const ptrdiff_t m = lq - i0 < 4 ? lq - i0 : 4;
        __m256 S[4][4], dP[4][4], o[4][2];
        int r, c;
        as_block4(qp + i0 * ldq, ldq, m, d, KT, S);
        as_block4(dop + i0 * lddo, lddo, m, ev, VT, dP);
        for (r = 0; r < 4; r++) {
            const ptrdiff_t i = i0 + (r < m ? r : m - 1);
            const __m256 vl = _mm256_set1_ps(lp[i]), vd = _mm256_set1_ps(Dr[i]);
            __m256 h[4];
            as_hidden(keymask, g->causal, i, h);
            for (c = 0; c < 4; c++) {
                const __m256 s = _mm256_blendv_ps(_mm256_mul_ps(S[r][c], vscale), vninf, h[c]);
                const __m256 hid = _mm256_cmp_ps(s, vninf, _CMP_EQ_OQ);
                const __m256 pr = _mm256_andnot_ps(hid, fnn_exp8_le0(_mm256_sub_ps(s, vl)));
                const __m256 ds = _mm256_andnot_ps(
                    hid, _mm256_mul_ps(_mm256_mul_ps(pr, _mm256_sub_ps(dP[r][c], vd)), vscale));
                _mm256_store_ps(P + (i0 + r) * AS_LK + 8 * c, pr);
                _mm256_store_ps(dS + (i0 + r) * AS_LK + 8 * c, ds);
            }
        }
        as_times_rows(dS + i0 * AS_LK, lk, kr, ldkr, o);
        for (r = 0; r < m; r++) as_store_row(dqp + (i0 + r) * lddq, d, o[r]);
    }
    /* dv = P^T dout and dk = dS^T q, as their transposes (ev x 32, d x 32) then written out */
    as_tgemm(dop, lddo, lq, ev, P, VT);
    as_transpose(VT, AS_LK, ev, lk, dv + ATTN_AT(g->dv_, p), g->dv_.rs);
    as_tgemm(qp, ldq, lq, d, dS, KT);
    as_transpose(KT, AS_LK, d, lk, dk + ATTN_AT(g->dk, p), g->dk.rs);
}

#undef AS_TGT
#undef AS_LK
#undef AS_LQ
#undef AS_D

#endif
