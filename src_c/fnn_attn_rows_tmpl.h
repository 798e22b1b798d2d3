/*
 * The element-wise half of attention (fnn_attn.h) on one row of a score tile: the online-softmax
 * update forward, P and dS backward. Written once, compiled per element type and per instruction
 * set (fnn_attn.c includes it with target attributes), so the loops run as wide as the GEMM's
 * flavour. Reductions (max, sums) go through AF_LANES partial results combined in a fixed order,
 * the same in every flavour compiled from here (the x86 float flavours use fnn_attn_rows_simd.h,
 * which differs in the last bits).
 *
 * Required macros: FT, AFN(name), ATARGET (a function attribute, may be empty), A_EXP(x).
 * With A_ROW_DOT_ONLY defined only row_dot is compiled (the x86 float flavours have their
 * intrinsics twins of the rest in fnn_attn_rows_simd.h).
 */

#ifndef A_ROW_DOT_ONLY
/* max over s[0..n) (-inf for an all--inf row). */
static ATARGET FT AFN(row_max)(const FT *s, ptrdiff_t n)
{
    FT acc[AF_LANES];
    ptrdiff_t j, t;
    for (t = 0; t < AF_LANES; t++) acc[t] = -(FT)INFINITY;
    for (j = 0; j + AF_LANES <= n; j += AF_LANES)
        for (t = 0; t < AF_LANES; t++) acc[t] = s[j + t] > acc[t] ? s[j + t] : acc[t];
    for (t = 0; j < n; j++, t++) acc[t] = s[j] > acc[t] ? s[j] : acc[t];
    for (t = 1; t < AF_LANES; t++) acc[0] = acc[t] > acc[0] ? acc[t] : acc[0];
    return acc[0];
}

/* sum of x[0..n) in AF_LANES partial sums, combined pairwise. */
static ATARGET FT AFN(row_sum)(const FT *x, ptrdiff_t n)
{
    FT acc[AF_LANES];
    ptrdiff_t j, t;
    for (t = 0; t < AF_LANES; t++) acc[t] = (FT)0;
    for (j = 0; j + AF_LANES <= n; j += AF_LANES)
        for (t = 0; t < AF_LANES; t++) acc[t] += x[j + t];
    for (t = 0; j < n; j++, t++) acc[t] += x[j];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

#endif

/* sum of a[e] b[e], e < n, as row_sum orders it. */
static ATARGET FT AFN(row_dot)(const FT *a, const FT *b, ptrdiff_t n)
{
    FT acc[AF_LANES];
    ptrdiff_t j, t;
    for (t = 0; t < AF_LANES; t++) acc[t] = (FT)0;
    for (j = 0; j + AF_LANES <= n; j += AF_LANES)
        for (t = 0; t < AF_LANES; t++) acc[t] += a[j + t] * b[j + t];
    for (t = 0; j < n; j++, t++) acc[t] += a[j] * b[j];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

#ifndef A_ROW_DOT_ONLY
/* One row of the forward's online softmax: s (n scores, masked = -inf) becomes P = exp(s - m'),
 * with m' = max(*m, max s); *l := *l exp(*m - m') + sum P; o (dv) := o exp(*m - m'); *m := m'.
 * A row that has seen no finite score yet (m' = -inf: the max skips NaN) gets P = 0 and keeps
 * o, l, m, except that a NaN score makes l NaN (as exp(NaN - m') does on the common path). */
static ATARGET void AFN(online_row)(FT *s, ptrdiff_t n, FT *m, FT *l, FT *o, ptrdiff_t dv)
{
    const FT ninf = -(FT)INFINITY;
    const FT mx = AFN(row_max)(s, n);
    const FT mnew = mx > *m ? mx : *m;
    ptrdiff_t j;
    if (mnew == ninf) {
        for (j = 0; j < n; j++) {
            if (s[j] != s[j]) *l = s[j];
            s[j] = (FT)0;
        }
        return;
    }
    for (j = 0; j < n; j++) {
        const FT e = A_EXP(s[j] - mnew);
        s[j] = s[j] == ninf ? (FT)0 : e;
    }
    if (*m != mnew) {
        const FT alpha = *m == ninf ? (FT)0 : A_EXP(*m - mnew);
        for (j = 0; j < dv; j++) o[j] *= alpha;
        *l *= alpha;
    }
    *l += AFN(row_sum)(s, n);
    *m = mnew;
}

/* One row of the backward: p := exp(s - lse), ds := p (dp - dd) scale; both exactly 0 where
 * s = -inf (a masked key: no NaN of a row whose lse or dd is NaN reaches it, as none reaches
 * the keys of tiles a causal mask skips). */
static ATARGET void AFN(grad_row)(FT *s, FT *dp, ptrdiff_t n, FT lse, FT dd, FT scale)
{
    const FT ninf = -(FT)INFINITY;
    ptrdiff_t j;
    for (j = 0; j < n; j++) {
        const FT e = A_EXP(s[j] - lse);
        const int hidden = s[j] == ninf;
        const FT p = hidden ? (FT)0 : e;
        s[j] = p;
        dp[j] = hidden ? (FT)0 : p * (dp[j] - dd) * scale;
    }
}
#endif
