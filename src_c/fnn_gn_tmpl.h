/*
 * The bodies of fnn_norm.h's group normalization kernels for one element type FT in one flavour
 * (NFN, NTARGET as in fnn_norm_tmpl.h). Included by fnn_norm.c. Each loop runs over the
 * positions, and inside over a contiguous run of channels, so GCC vectorises it along the
 * channels (one double lane a channel: a channel's sum stays in position order, whatever the
 * vector width or the block of channels a thread takes). The data of a block (P w values) is
 * read three times forward and twice backward, from cache for the blocks the layers use.
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
    for (ptrdiff_t j = 0; j < w; j++)
        sum[j] = 0.0;
    for (ptrdiff_t p = 0; p < P; p++) {
        const FT *restrict r = x + p * C;
        for (ptrdiff_t j = 0; j < w; j++)
            sum[j] += (double)r[j];
    }
    NFN(gn_group_sums)(sum, w, k, t);
    for (ptrdiff_t g = 0; g < ng; g++) {
        const FT m = (FT)(t[g] / N);
        mean[g0 + g] = m;
        for (ptrdiff_t j = g * k; j < g * k + k; j++) {
            mf[j] = m;
            mc[j] = (double)m;
        }
    }
    for (ptrdiff_t j = 0; j < w; j++)
        sum[j] = 0.0;
    for (ptrdiff_t p = 0; p < P; p++) {
        const FT *restrict r = x + p * C;
        for (ptrdiff_t j = 0; j < w; j++) {
            const double d = (double)r[j] - mc[j];
            sum[j] += d * d;
        }
    }
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
        sdy[j] = 0.0;
        sdyx[j] = 0.0;
    }
    /* sum dy and sum dy (x - mean), then times invstd: sum dy xhat */
    for (ptrdiff_t p = 0; p < P; p++) {
        const FT *restrict r = x + p * C, *restrict d = dy + p * C;
        for (ptrdiff_t j = 0; j < w; j++) {
            const double e = (double)d[j];
            sdy[j] += e;
            sdyx[j] += e * ((double)r[j] - mc[j]);
        }
    }
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
