/*
 * The exact float gelu (fnn_gelu.h's fnn_gelu_f32 and fnn_gelu_deriv_f32) on a few SIMD vectors
 * at once, and the row loops built on it; included by fnn_gelu_simd.h once per flavour.
 *
 * Every lane performs the scalar functions' IEEE operations, in their order and with their
 * operands: the same products, sums, the one division, the same compare-selects, the same
 * integer construction of 2^(64 - n). Products and sums are each their own instruction (src_c
 * is compiled as C99, where GCC does not contract them into FMAs, intrinsics included), so each
 * lane gives the scalar function's bits. The shared part (the tail 1 - Phi and the Gaussian
 * exp) is computed once for the value and the derivative, which the compiler's vectorisation of
 * the two scalar calls could not do.
 *
 * Required macros: GS_TARGET (function attribute), GS(name) (mangling), VT (vector of float),
 * MT (lane mask), VLEN (lanes), GS_NV (vectors per step of the loops, <= 4), V_SET1(x), V_ADD,
 * V_SUB, V_MUL, V_DIV, V_MIN(a, b) (a < b ? a : b, as minps), V_LT(a, b), V_GT(a, b), V_EQ(a, b)
 * (ordered compares to a mask), V_SEL(m, t, f) (m ? t : f per lane), V_NEG(a) (sign flipped),
 * V_CVTT(a) (to int32, truncating), V_POW2_191_MINUS(n) (2^(191 - 127 - n) = 2^(64 - n) from its
 * exponent bits), V_LOADU(p), V_STOREU(p, v), V_LOADM(p, rem) (the first rem lanes,
 * 0 < rem < VLEN, the others 0, never reading past them). All but GS_TARGET are undefined at the
 * end of this file.
 */

#define GS_AI static inline __attribute__((always_inline))

/* At most this many vectors go through gelu_vdn together */
#define GS_NMAX 4
#if GS_NV > GS_NMAX
#error "GS_NV must be at most GS_NMAX"
#endif
/* each statement of gelu_vdn once per vector, the vectors' instructions interleaved: one
 * vector's chain of dependent operations leaves the pipes idle (and the compiler keeps the
 * source's order) */
#define GS_EACH _Pragma("GCC unroll 4") for (k = 0; k < N; k++)

/* y[k] := gelu(z[k]) and d[k] := gelu'(z[k]) for N vectors (N <= GS_NMAX), either output left
 * out when its flag is 0 (N and the flags are constants after inlining). The shared part as
 * fnn_gelu_tail64_f32 and fnn_gelu_gauss64_f32 compute it: neg = z < 0, zc = z clamped to
 * [-14, 14] (NaN to 14), q64 = (1 - Phi(|zc|)) 2^64 and E64 = exp(-zc^2 / 2) 2^64; then the
 * endings of fnn_gelu_f32 and fnn_gelu_deriv_f32 (the limits and NaN last). */
GS_TARGET GS_AI void GS(gelu_vdn)(const int N, const VT *z, VT *y, VT *d, const int WANT_Y,
                                  const int WANT_D)
{
    MT neg[GS_NMAX];
    VT ac[GS_NMAX], zc[GS_NMAX], c[GS_NMAX], ah[GS_NMAX], al[GS_NMAX], hi[GS_NMAX];
    VT lo[GS_NMAX], nf[GS_NMAX], r[GS_NMAX], r2[GS_NMAX], r4[GS_NMAX], p[GS_NMAX];
    VT e[GS_NMAX], t[GS_NMAX], w[GS_NMAX], u[GS_NMAX], u2[GS_NMAX], w2[GS_NMAX], w4[GS_NMAX];
    VT w8[GS_NMAX], sm[GS_NMAX], q64[GS_NMAX], m64[GS_NMAX], g[GS_NMAX], v[GS_NMAX];
    int k;
    GS_EACH neg[k] = V_LT(z[k], V_SET1(0.0f));
    GS_EACH ac[k] = V_MIN(V_SEL(neg[k], V_NEG(z[k]), z[k]), V_SET1(14.0f));
    GS_EACH zc[k] = V_SEL(neg[k], V_NEG(ac[k]), ac[k]);
    /* fnn_gelu_gauss64_f32(ac) */
    GS_EACH c[k] = V_MUL(V_SET1(4097.0f), ac[k]);
    GS_EACH ah[k] = V_SUB(c[k], V_SUB(c[k], ac[k]));
    GS_EACH al[k] = V_SUB(ac[k], ah[k]);
    GS_EACH hi[k] = V_MUL(V_SET1(0.5f), V_MUL(ah[k], ah[k]));
    GS_EACH lo[k] = V_ADD(V_MUL(ah[k], al[k]), V_MUL(V_SET1(0.5f), V_MUL(al[k], al[k])));
    GS_EACH nf[k] = V_SUB(V_ADD(V_MUL(hi[k], V_SET1(1.44269504088896341f)),
                                V_SET1(12582912.0f)),
                          V_SET1(12582912.0f));
    GS_EACH r[k] = V_SUB(V_ADD(V_SUB(V_MUL(nf[k], V_SET1(0.693145751953125f)), hi[k]),
                               V_MUL(nf[k], V_SET1(1.428606765330187e-06f))),
                         lo[k]);
    GS_EACH r2[k] = V_MUL(r[k], r[k]);
    GS_EACH r4[k] = V_MUL(r2[k], r2[k]);
    GS_EACH p[k] = V_ADD(
        V_ADD(V_ADD(V_SET1(1.0f), r[k]),
              V_MUL(r2[k], V_ADD(V_SET1(0.5f), V_MUL(r[k], V_SET1(1.0f / 6.0f))))),
        V_MUL(r4[k], V_ADD(V_ADD(V_SET1(1.0f / 24.0f), V_MUL(r[k], V_SET1(1.0f / 120.0f))),
                           V_MUL(r2[k], V_ADD(V_SET1(1.0f / 720.0f),
                                              V_MUL(r[k], V_SET1(1.0f / 5040.0f)))))));
    GS_EACH e[k] = V_MUL(p[k], V_POW2_191_MINUS(V_CVTT(nf[k])));
    /* fnn_gelu_tail64_f32(ac) */
    GS_EACH t[k] = V_DIV(V_SET1(1.0f), V_ADD(ac[k], V_SET1(4.0f)));
    GS_EACH w[k] = V_MUL(V_SUB(t[k], V_SET1(0.13647342995169082f)),
                         V_SET1(12.358208955223878f));
    GS_EACH u[k] = V_MUL(ac[k], ac[k]);
    GS_EACH u2[k] = V_MUL(u[k], u[k]);
    GS_EACH w2[k] = V_MUL(w[k], w[k]);
    GS_EACH w4[k] = V_MUL(w2[k], w2[k]);
    GS_EACH w8[k] = V_MUL(w4[k], w4[k]);
    GS_EACH p[k] = V_ADD(
        V_ADD(V_ADD(V_ADD(V_SET1(0.81449258550242531f),
                          V_MUL(w[k], V_SET1(0.44269780431535688f))),
                    V_MUL(w2[k], V_ADD(V_SET1(0.18505626228476071f),
                                       V_MUL(w[k], V_SET1(0.056769979265533781f))))),
              V_MUL(w4[k],
                    V_ADD(V_ADD(V_SET1(0.011128762798756412f),
                                V_MUL(w[k], V_SET1(0.00060714311288723437f))),
                          V_MUL(w2[k], V_ADD(V_SET1(-0.00032958566916284392f),
                                             V_MUL(w[k], V_SET1(-6.913743121999748e-05f))))))),
        V_MUL(w8[k], V_ADD(V_ADD(V_SET1(9.5963862795674952e-06f),
                                 V_MUL(w[k], V_SET1(3.6334961543577535e-06f))),
                           V_MUL(w2[k], V_SET1(-3.0918603714947077e-07f)))));
    GS_EACH sm[k] = V_ADD(
        V_ADD(V_SET1(0.39894228040075469f), V_MUL(u[k], V_SET1(-0.066490379932224827f))),
        V_MUL(u2[k], V_ADD(V_ADD(V_SET1(0.0099735526610744175f),
                                 V_MUL(u[k], V_SET1(-0.0011872767008922743f))),
                           V_MUL(u2[k], V_ADD(V_SET1(0.00011515778815045824f),
                                              V_MUL(u[k], V_SET1(-8.7532676402557481e-06f)))))));
    /* a < 0.6: the series, else the Mills-ratio fit times the Gaussian */
    GS_EACH q64[k] = V_SEL(V_LT(ac[k], V_SET1(0.6f)),
                           V_MUL(V_SUB(V_SET1(0.5f), V_MUL(ac[k], sm[k])),
                                 V_SET1(FNN_GELU_2P64)),
                           V_MUL(e[k], V_MUL(t[k], p[k])));
    GS_EACH m64[k] = V_SUB(V_SET1(1.0f), V_MUL(q64[k], V_SET1(FNN_GELU_2M64))); /* Phi(|zc|) */
    if (WANT_Y) {
        /* z < 0: z (1 - Phi(a)), scaled back last; z >= 0: z Phi(a) */
        GS_EACH v[k] = V_SEL(neg[k], V_MUL(V_MUL(zc[k], q64[k]), V_SET1(FNN_GELU_2M64)),
                             V_MUL(zc[k], m64[k]));
        GS_EACH v[k] = V_SEL(V_GT(z[k], V_SET1(14.0f)), z[k], v[k]);
        GS_EACH v[k] = V_SEL(V_LT(z[k], V_SET1(-14.0f)), V_SET1(0.0f), v[k]);
        GS_EACH y[k] = V_SEL(V_EQ(z[k], z[k]), v[k], z[k]);
    }
    if (WANT_D) {
        /* Phi(z) + z phi(z), phi(z) 2^64 = E64 / sqrt(2 pi) */
        GS_EACH g[k] = V_MUL(e[k], V_SET1(0.39894228040143267794f));
        GS_EACH v[k] = V_SEL(neg[k],
                             V_MUL(V_ADD(q64[k], V_MUL(zc[k], g[k])), V_SET1(FNN_GELU_2M64)),
                             V_ADD(m64[k], V_MUL(zc[k], V_MUL(g[k], V_SET1(FNN_GELU_2M64)))));
        GS_EACH v[k] = V_SEL(V_GT(z[k], V_SET1(14.0f)), V_SET1(1.0f), v[k]);
        GS_EACH v[k] = V_SEL(V_LT(z[k], V_SET1(-14.0f)), V_SET1(0.0f), v[k]);
        GS_EACH d[k] = V_SEL(V_EQ(z[k], z[k]), v[k], z[k]);
    }
}

/* The row loops: GS_NV vectors per step (gelu_vdn), then single vectors; a tail of rem < VLEN
 * values goes through one vector loaded with zeros past the end and stored lane by lane from a
 * local copy (masked stores are slow on AMD Zen). The lanes' results do not depend on how the
 * vectors are grouped. BODY(N, j, rem) handles the N vectors at j (rem: 0, or the tail's size). */
#define GS_LOOP(BODY)                                                                          \
    {                                                                                          \
        ptrdiff_t j = 0;                                                                       \
        for (; j + GS_NV * VLEN <= n; j += GS_NV * VLEN) BODY(GS_NV, j, 0)                     \
        for (; j + VLEN <= n; j += VLEN) BODY(1, j, 0)                                         \
        if (j < n) BODY(1, j, n - j)                                                           \
    }

/* load the vector at j: whole (rem = 0) or its first rem lanes */
#define GS_LOAD(p, j, rem) ((rem) ? V_LOADM((p) + (j), rem) : V_LOADU((p) + (j)))
/* store v at j: whole (rem = 0) or its first rem lanes */
#define GS_STORE(p, j, rem, v)                                                                 \
    if (rem) {                                                                                 \
        float part_[VLEN];                                                                     \
        ptrdiff_t i_;                                                                          \
        V_STOREU(part_, v);                                                                    \
        for (i_ = 0; i_ < (rem); i_++) (p)[(j) + i_] = part_[i_];                             \
    } else {                                                                                   \
        V_STOREU((p) + (j), v);                                                                \
    }
/* the N vectors at j of p, into x[] */
#define GS_LOADN(x, N, p, j, rem)                                                              \
    for (k_ = 0; k_ < (N); k_++) x[k_] = GS_LOAD(p, (j) + k_ * VLEN, rem);
#define GS_STOREN(p, N, j, rem, x)                                                             \
    for (k_ = 0; k_ < (N); k_++) GS_STORE(p, (j) + k_ * VLEN, rem, x[k_])

/* N vectors at j of z: their gelu into y, and with D (a constant) their derivative into dst */
#define GS_VALUE(N, j, rem, D, dst)                                                            \
    {                                                                                          \
        VT zv_[GS_NMAX], yv_[GS_NMAX], dv_[GS_NMAX];                                           \
        int k_;                                                                                \
        GS_LOADN(zv_, N, z, j, rem)                                                            \
        GS(gelu_vdn)(N, zv_, yv_, (D) ? dv_ : NULL, 1, (D));                                   \
        GS_STOREN(y, N, j, rem, yv_);                                                          \
        if (D) {                                                                               \
            GS_STOREN(dst, N, j, rem, dv_);                                                    \
        }                                                                                      \
    }

/* y[j] := gelu(z[j]) for j < n (y may be z) */
GS_TARGET GS_AI void GS(gelu_fwd_row)(const float *z, float *y, ptrdiff_t n)
{
#define GS_FWD(N, j, rem) GS_VALUE(N, j, rem, 0, y)
    GS_LOOP(GS_FWD)
#undef GS_FWD
}

/* c[i, j] := gelu(c[i, j]) on an m x n block whose rows are ldc apart (the GEMM epilogue's
 * tile: often two vectors a row, so the whole vectors of all rows are grouped GS_NV at a time) */
GS_TARGET GS_AI void GS(gelu_fwd_block)(float *c, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n)
{
    float *at[GS_NV];
    VT zv[GS_NMAX], yv[GS_NMAX];
    ptrdiff_t i, j;
    int k, got = 0;
    for (i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        for (j = 0; j + VLEN <= n; j += VLEN) {
            at[got++] = ci + j;
            if (got == GS_NV) {
                for (k = 0; k < GS_NV; k++) zv[k] = V_LOADU(at[k]);
                GS(gelu_vdn)(GS_NV, zv, yv, NULL, 1, 0);
                for (k = 0; k < GS_NV; k++) V_STOREU(at[k], yv[k]);
                got = 0;
            }
        }
        if (j < n) {
            zv[0] = V_LOADM(ci + j, n - j);
            GS(gelu_vdn)(1, zv, yv, NULL, 1, 0);
            GS_STORE(ci, j, n - j, yv[0])
        }
    }
    for (k = 0; k < got; k++) {
        zv[0] = V_LOADU(at[k]);
        GS(gelu_vdn)(1, zv, yv, NULL, 1, 0);
        V_STOREU(at[k], yv[0]);
    }
}

/* y[j] := gelu(z[j]), z[j] := gelu'(z[j]) for j < n */
GS_TARGET GS_AI void GS(gelu_both_row)(float *z, float *y, ptrdiff_t n)
{
#define GS_BOTH(N, j, rem) GS_VALUE(N, j, rem, 1, z)
    GS_LOOP(GS_BOTH)
#undef GS_BOTH
}

/* dz[j] := dy[j] gelu'(z[j]) for j < n (dz may be dy) */
GS_TARGET GS_AI void GS(gelu_bwd_row)(const float *z, const float *dy, float *dz, ptrdiff_t n)
{
#define GS_BWD(N, j, rem)                                                                      \
    {                                                                                          \
        VT zv_[GS_NMAX], dv_[GS_NMAX];                                                         \
        int k_;                                                                                \
        GS_LOADN(zv_, N, z, j, rem)                                                            \
        GS(gelu_vdn)(N, zv_, NULL, dv_, 0, 1);                                                 \
        for (k_ = 0; k_ < (N); k_++) dv_[k_] = V_MUL(GS_LOAD(dy, (j) + k_ * VLEN, rem), dv_[k_]); \
        GS_STOREN(dz, N, j, rem, dv_)                                                          \
    }
    GS_LOOP(GS_BWD)
#undef GS_BWD
}

/* dz[j] := dy[j] gelu'(z[j]), acc[j] += dz[j] (in double) for j < n: one row of the column-sum
 * backward, the rows taken in order by the caller */
GS_TARGET GS_AI void GS(gelu_colsum_row)(const float *z, const float *dy, float *dz,
                                         double *acc, ptrdiff_t n)
{
#define GS_COLSUM(N, j, rem)                                                                   \
    {                                                                                          \
        VT zv_[GS_NMAX], dv_[GS_NMAX];                                                         \
        float g_[GS_NMAX * VLEN];                                                              \
        ptrdiff_t i_;                                                                          \
        int k_;                                                                                \
        GS_LOADN(zv_, N, z, j, rem)                                                            \
        GS(gelu_vdn)(N, zv_, NULL, dv_, 0, 1);                                                 \
        for (k_ = 0; k_ < (N); k_++) {                                                         \
            dv_[k_] = V_MUL(GS_LOAD(dy, (j) + k_ * VLEN, rem), dv_[k_]);                       \
            V_STOREU(g_ + k_ * VLEN, dv_[k_]);                                                 \
        }                                                                                      \
        GS_STOREN(dz, N, j, rem, dv_)                                                          \
        for (i_ = 0; i_ < ((rem) ? (rem) : (N) * VLEN); i_++) acc[(j) + i_] += (double)g_[i_]; \
    }
    GS_LOOP(GS_COLSUM)
#undef GS_COLSUM
}

#undef GS_LOOP
#undef GS_LOADN
#undef GS_VALUE
#undef GS_STOREN
#undef GS_EACH
#undef GS_NMAX
#undef GS_NV
#undef GS_LOAD
#undef GS_STORE
#undef GS_AI
#undef GS
#undef VT
#undef MT
#undef VLEN
#undef V_SET1
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_DIV
#undef V_MIN
#undef V_LT
#undef V_GT
#undef V_EQ
#undef V_SEL
#undef V_NEG
#undef V_CVTT
#undef V_POW2_191_MINUS
#undef V_LOADU
#undef V_STOREU
#undef V_LOADM
