/*
 * The bodies of fnn_norm.h's group normalization kernels for one element type FT in one flavour
 * (NFN, NTARGET as in fnn_norm_tmpl.h). Included by fnn_norm.c. Each loop runs over the
 * positions, and inside over a contiguous run of channels, so GCC vectorises it along the
 * channels (one double lane a channel: a channel's sum stays in position order, whatever the
 * vector width or the block of channels a thread takes). The data of a block (P w values) is
 * read three times forward and twice backward, from cache for the blocks the layers use. No FP
 * contraction (C99 mode): every flavour gives the twin's bits.
 */

/* the per-group sum of s over the block's groups, in channel order, spread to each channel */
static NTARGET inline __attribute__((always_inline)) void NFN(gn_group_sums)(
    const double *restrict s, ptrdiff_t w, ptrdiff_t k, double *restrict t)
{
    for (ptrdiff_t c = 0; c < w; c += k) {
        double u = 0.0;
        for (ptrdiff_t j = c; j < c + k; j++)
            u += s[j];
        t[c / k] = u;
    }
}

/* Channel sums over the positions, 32 channels at a time in vector accumulators (four of 8
 * doubles: registers with AVX-512; a loop over an array in memory spent its time forwarding
 * stores), each lane one channel in position order; narrower tails through memory. */
#define GN_CHUNK 32
typedef FT NFN(gv8) __attribute__((vector_size(8 * sizeof(FT))));
typedef double NFN(gv8d) __attribute__((vector_size(64)));

static NTARGET inline __attribute__((always_inline)) NFN(gv8d) NFN(gload8)(const FT *p)
{
#if NAVX == 2
    /* one conversion of 8 floats (GCC lowered __builtin_convertvector to two of 4 and a merge:
     * the backward's sums took 20% longer) */
    if (sizeof(FT) == sizeof(float))
        return (NFN(gv8d))_mm512_cvtps_pd(_mm256_loadu_ps((const float *)p));
#endif
    NFN(gv8) v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, NFN(gv8d));
}

static NTARGET inline __attribute__((always_inline)) NFN(gv8d) NFN(gload8d)(const double *p)
{
    NFN(gv8d) v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* sum[j] := sum_p x[p C + j]; with shift: sum_p (x[p C + j] - shift[j])^2 (j < w) */
static NTARGET void NFN(gn_colsums)(const FT *restrict x, ptrdiff_t P, ptrdiff_t C,
                                    ptrdiff_t w, const double *restrict shift,
                                    double *restrict sum)
{
    ptrdiff_t c = 0;
    for (; c + GN_CHUNK <= w; c += GN_CHUNK) {
        NFN(gv8d) a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        if (shift == NULL) {
            for (ptrdiff_t p = 0; p < P; p++) {
                const FT *r = x + p * C + c;
                a0 += NFN(gload8)(r);
                a1 += NFN(gload8)(r + 8);
                a2 += NFN(gload8)(r + 16);
                a3 += NFN(gload8)(r + 24);
            }
        } else {
            const NFN(gv8d) m0 = NFN(gload8d)(shift + c), m1 = NFN(gload8d)(shift + c + 8);
            const NFN(gv8d) m2 = NFN(gload8d)(shift + c + 16), m3 = NFN(gload8d)(shift + c + 24);
            for (ptrdiff_t p = 0; p < P; p++) {
                const FT *r = x + p * C + c;
                NFN(gv8d) d0 = NFN(gload8)(r) - m0, d1 = NFN(gload8)(r + 8) - m1;
                NFN(gv8d) d2 = NFN(gload8)(r + 16) - m2, d3 = NFN(gload8)(r + 24) - m3;
                a0 += d0 * d0;
                a1 += d1 * d1;
                a2 += d2 * d2;
                a3 += d3 * d3;
            }
        }
        memcpy(sum + c, &a0, sizeof a0);
        memcpy(sum + c + 8, &a1, sizeof a1);
        memcpy(sum + c + 16, &a2, sizeof a2);
        memcpy(sum + c + 24, &a3, sizeof a3);
    }
    if (c == w)
        return;
    for (ptrdiff_t j = c; j < w; j++)
        sum[j] = 0.0;
    for (ptrdiff_t p = 0; p < P; p++) {
        const FT *restrict r = x + p * C;
        if (shift == NULL)
            for (ptrdiff_t j = c; j < w; j++)
                sum[j] += (double)r[j];
        else
            for (ptrdiff_t j = c; j < w; j++) {
                const double d = (double)r[j] - shift[j];
                sum[j] += d * d;
            }
    }
}

/* sdy[j] := sum_p dy[p C + j], sdyx[j] := sum_p dy (x - shift[j]) (j < w) */
static NTARGET void NFN(gn_dysums)(const FT *restrict x, const FT *restrict dy, ptrdiff_t P,
                                   ptrdiff_t C, ptrdiff_t w, const double *restrict shift,
                                   double *restrict sdy, double *restrict sdyx)
{
    ptrdiff_t c = 0;
    for (; c + GN_CHUNK <= w; c += GN_CHUNK) {
        NFN(gv8d) a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
        const NFN(gv8d) m0 = NFN(gload8d)(shift + c), m1 = NFN(gload8d)(shift + c + 8);
        const NFN(gv8d) m2 = NFN(gload8d)(shift + c + 16), m3 = NFN(gload8d)(shift + c + 24);
        for (ptrdiff_t p = 0; p < P; p++) {
            const FT *r = x + p * C + c, *d = dy + p * C + c;
            const NFN(gv8d) e0 = NFN(gload8)(d), e1 = NFN(gload8)(d + 8);
            const NFN(gv8d) e2 = NFN(gload8)(d + 16), e3 = NFN(gload8)(d + 24);
            a0 += e0;
            a1 += e1;
            a2 += e2;
            a3 += e3;
            b0 += e0 * (NFN(gload8)(r) - m0);
            b1 += e1 * (NFN(gload8)(r + 8) - m1);
            b2 += e2 * (NFN(gload8)(r + 16) - m2);
            b3 += e3 * (NFN(gload8)(r + 24) - m3);
        }
        memcpy(sdy + c, &a0, sizeof a0);
        memcpy(sdy + c + 8, &a1, sizeof a1);
        memcpy(sdy + c + 16, &a2, sizeof a2);
        memcpy(sdy + c + 24, &a3, sizeof a3);
        memcpy(sdyx + c, &b0, sizeof b0);
        memcpy(sdyx + c + 8, &b1, sizeof b1);
        memcpy(sdyx + c + 16, &b2, sizeof b2);
        memcpy(sdyx + c + 24, &b3, sizeof b3);
    }
    if (c == w)
        return;
    for (ptrdiff_t j = c; j < w; j++) {
        sdy[j] = 0.0;
        sdyx[j] = 0.0;
    }
    for (ptrdiff_t p = 0; p < P; p++) {
        const FT *restrict r = x + p * C, *restrict d = dy + p * C;
        for (ptrdiff_t j = c; j < w; j++) {
            const double e = (double)d[j];
            sdy[j] += e;
            sdyx[j] += e * ((double)r[j] - shift[j]);
        }
    }
}
#undef GN_CHUNK

static NTARGET void NFN(gn_fwd_block)(const FT *restrict x, ptrdiff_t P, ptrdiff_t C,
                                      ptrdiff_t k, ptrdiff_t c0, ptrdiff_t c1,
                                      const FT *restrict gamma, const FT *restrict beta,
                                      double eps, FT *restrict out, FT *restrict mean,
                                      FT *restrict invstd, double *restrict s)
{
    const ptrdiff_t w = c1 - c0, g0 = c0 / k, ng = w / k;
    const double N = (double)P * (double)k;
    double *restrict sum = s, *restrict mc = s + w, *restrict t = s + 4 * w;
    FT *restrict mf = (FT *)(s + 2 * w), *restrict sc = (FT *)(s + 3 * w);
    const FT *restrict gm = gamma + c0, *restrict bt = beta + c0;
    x += c0;
    out += c0;
    NFN(gn_colsums)(x, P, C, w, NULL, sum);
    NFN(gn_group_sums)(sum, w, k, t);
    for (ptrdiff_t g = 0; g < ng; g++) {
        const FT m = (FT)(t[g] / N);
        mean[g0 + g] = m;
        for (ptrdiff_t j = g * k; j < g * k + k; j++) {
            mf[j] = m;
            mc[j] = (double)m;
        }
    }
    NFN(gn_colsums)(x, P, C, w, mc, sum);
    NFN(gn_group_sums)(sum, w, k, t);
    for (ptrdiff_t g = 0; g < ng; g++) {
        const FT v = (FT)(1.0 / sqrt(t[g] / N + eps));
        invstd[g0 + g] = v;
        for (ptrdiff_t j = g * k; j < g * k + k; j++)
            sc[j] = (FT)((double)v * (double)gm[j]);
    }
    /* the affine map in the element type, as the twin: scale = invstd gamma rounded once */
    for (ptrdiff_t p = 0; p < P; p++) {
        const FT *restrict r = x + p * C;
        FT *restrict o = out + p * C;
        for (ptrdiff_t j = 0; j < w; j++)
            o[j] = (r[j] - mf[j]) * sc[j] + bt[j];
    }
}

static NTARGET void NFN(gn_bwd_block)(const FT *restrict x, const FT *restrict dy, ptrdiff_t P,
                                      ptrdiff_t C, ptrdiff_t k, ptrdiff_t c0, ptrdiff_t c1,
                                      const FT *restrict gamma, const FT *restrict mean,
                                      const FT *restrict invstd, FT *restrict dx,
                                      double *restrict sums, double *restrict s)
{
    const ptrdiff_t w = c1 - c0, ng = w / k;
    const double N = (double)P * (double)k;
    double *restrict sdy = sums + c0, *restrict sdyx = sums + C + c0;
    double *restrict mc = s, *restrict ic = s + w;
    double *restrict t = s + 6 * w, *restrict u = s + 6 * w + ng;
    FT *restrict ca = (FT *)(s + 2 * w), *restrict cb = (FT *)(s + 3 * w);
    FT *restrict cd = (FT *)(s + 4 * w), *restrict mf = (FT *)(s + 5 * w);
    const FT *restrict gm = gamma + c0;
    x += c0;
    dy += c0;
    for (ptrdiff_t j = 0; j < w; j++) {
        mf[j] = mean[(c0 + j) / k];
        mc[j] = (double)mf[j];
        ic[j] = (double)invstd[(c0 + j) / k];
    }
    /* sum dy and sum dy (x - mean), then times invstd: sum dy xhat */
    NFN(gn_dysums)(x, dy, P, C, w, mc, sdy, sdyx);
    for (ptrdiff_t j = 0; j < w; j++)
        sdyx[j] *= ic[j];
    if (dx == NULL)
        return;
    for (ptrdiff_t c = 0; c < w; c += k) {
        double a = 0.0, b = 0.0;
        for (ptrdiff_t j = c; j < c + k; j++) {
            a += (double)gm[j] * sdy[j];
            b += (double)gm[j] * sdyx[j];
        }
        t[c / k] = a;
        u[c / k] = b;
    }
    /* dx = invstd gamma dy - (x - mean) invstd^2 sum(g xhat) / N - invstd sum(g) / N, the
     * three coefficients a channel in double rounded once, the map in the element type */
    for (ptrdiff_t j = 0; j < w; j++) {
        ca[j] = (FT)(ic[j] * (double)gm[j]);
        cb[j] = (FT)(ic[j] / N * ic[j] * u[j / k]);
        cd[j] = (FT)(ic[j] / N * t[j / k]);
    }
    dx += c0;
    for (ptrdiff_t p = 0; p < P; p++) {
        const FT *restrict r = x + p * C, *restrict d = dy + p * C;
        FT *restrict o = dx + p * C;
        for (ptrdiff_t j = 0; j < w; j++)
            o[j] = (d[j] * ca[j] - (r[j] - mf[j]) * cb[j]) - cd[j];
    }
}
