/*
 * The attention driver of fnn_attn.h for one element type. Required macros: FT, TFN(name) (the
 * public name with its type suffix), GEMM (fnn_sgemm or fnn_dgemm), ROWS (the flavour table's
 * type), ROWS_OF() (the table of the flavour in use), LOG (log or its float twin).
 */

/* S := scale q_i k_j^T on an m x n tile (ld n), then the masks: -inf where key j0 + c is not
 * visible to query i0 + r. */
static void TFN(attn_scores)(const fnn_attn_geom *g, FT scale, const FT *q, const FT *k,
                             const unsigned char *km, ptrdiff_t i0, ptrdiff_t m, ptrdiff_t j0,
                             ptrdiff_t n, FT *S)
{
    const FT ninf = -(FT)INFINITY;
    ptrdiff_t r, c;
    GEMM(0, 1, m, n, g->d, scale, q + i0 * g->d, g->d, k + j0 * g->d, g->d, (FT)0, S, n, NULL);
    if (km) {
        const unsigned char *kr = km + j0;
        for (r = 0; r < m; r++) {
            FT *s = S + r * n;
            for (c = 0; c < n; c++) s[c] = kr[c] ? s[c] : ninf;
        }
    }
    if (g->causal) {
        for (r = 0; r < m; r++) {
            /* query i0 + r sees columns c <= i0 + r - j0 */
            ptrdiff_t first = i0 + r - j0 + 1;
            if (first < 0) first = 0;
            for (c = first; c < n; c++) S[r * n + c] = ninf;
        }
    }
}

/* The query rows [i0, i0 + m) of pair p. */
static void TFN(attn_fwd_tile)(const fnn_attn_geom *g, const ROWS *rt, FT scale, ptrdiff_t p,
                               ptrdiff_t i0, const FT *q, const FT *k, const FT *v, FT *out,
                               FT *lse, FT *scratch)
{
    const ptrdiff_t lq = g->lq, lk = g->lk, d = g->d, dv = g->dv;
    const ptrdiff_t m = (lq - i0 < FNN_ATTN_BR) ? lq - i0 : FNN_ATTN_BR;
    const unsigned char *km = g->key_mask ? g->key_mask + (p / g->heads) * lk : NULL;
    const FT *qp = q + p * lq * d, *kp = k + p * lk * d, *vp = v + p * lk * dv;
    FT *op = out + (p * lq + i0) * dv, *lp = lse + p * lq + i0;
    FT *S = scratch, *mrow = S + FNN_ATTN_BR * FNN_ATTN_BC, *lrow = mrow + FNN_ATTN_BR;
    /* causal: the tile's last query sees keys < i0 + m */
    const ptrdiff_t jend = (g->causal && i0 + m < lk) ? i0 + m : lk;
    ptrdiff_t r, j0, e;
    for (r = 0; r < m; r++) {
        mrow[r] = -(FT)INFINITY;
        lrow[r] = (FT)0;
    }
    memset(op, 0, (size_t)(m * dv) * sizeof(FT));
    for (j0 = 0; j0 < jend; j0 += FNN_ATTN_BC) {
        const ptrdiff_t n = (jend - j0 < FNN_ATTN_BC) ? jend - j0 : FNN_ATTN_BC;
        TFN(attn_scores)(g, scale, qp, kp, km, i0, m, j0, n, S);
        for (r = 0; r < m; r++) rt->online_row(S + r * n, n, mrow + r, lrow + r, op + r * dv, dv);
        GEMM(0, 0, m, dv, n, (FT)1, S, n, vp + j0 * dv, dv, (FT)1, op, dv, NULL);
    }
    for (r = 0; r < m; r++) {
        FT *o = op + r * dv;
        if (lrow[r] > (FT)0) {
            const FT l = lrow[r];
            for (e = 0; e < dv; e++) o[e] /= l;
            lp[r] = mrow[r] + LOG(l);
        } else {
            for (e = 0; e < dv; e++) o[e] = (FT)0;
            lp[r] = -(FT)INFINITY;
        }
    }
}

void TFN(fnn_attn_forward)(const fnn_attn_geom *g, FT scale, const FT *q, const FT *k,
                           const FT *v, FT *out, FT *lse, FT *scratch, int nt)
{
    const ROWS *rt = ROWS_OF();
    const ptrdiff_t tiles = (g->lq + FNN_ATTN_BR - 1) / FNN_ATTN_BR, tasks = g->pairs * tiles;
    const ptrdiff_t per = fnn_attn_scratch(g, 0);
    if (tasks <= 0) return;
    if (nt <= 1) {
        const unsigned int csr = fnn_ftz_enter();
        ptrdiff_t t;
        for (t = 0; t < tasks; t++)
            TFN(attn_fwd_tile)(g, rt, scale, t / tiles, (t % tiles) * FNN_ATTN_BR, q, k, v, out,
                               lse, scratch);
        fnn_ftz_leave(csr);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        const unsigned int csr = fnn_ftz_enter();
        FT *mine = scratch + (ptrdiff_t)omp_get_thread_num() * per;
        ptrdiff_t t;
#pragma omp for schedule(dynamic, 1)
        for (t = 0; t < tasks; t++)
            TFN(attn_fwd_tile)(g, rt, scale, t / tiles, (t % tiles) * FNN_ATTN_BR, q, k, v, out,
                               lse, mine);
        fnn_ftz_leave(csr);
    }
#else
    (void)per;
#endif
}

/* The whole backward of pair p (every sum in tile order, on one thread). */
static void TFN(attn_bwd_pair)(const fnn_attn_geom *g, const ROWS *rt, FT scale, ptrdiff_t p,
                               const FT *q, const FT *k, const FT *v, const FT *out,
                               const FT *dout, const FT *lse, FT *dq, FT *dk, FT *dv,
                               FT *scratch)
{
    const ptrdiff_t lq = g->lq, lk = g->lk, d = g->d, ev = g->dv;
    const unsigned char *km = g->key_mask ? g->key_mask + (p / g->heads) * lk : NULL;
    const FT *qp = q + p * lq * d, *kp = k + p * lk * d, *vp = v + p * lk * ev;
    const FT *op = out + p * lq * ev, *dop = dout + p * lq * ev, *lp = lse + p * lq;
    FT *dqp = dq + p * lq * d, *dkp = dk + p * lk * d, *dvp = dv + p * lk * ev;
    FT *S = scratch, *dP = S + FNN_ATTN_BR * FNN_ATTN_BC, *Dr = dP + FNN_ATTN_BR * FNN_ATTN_BC;
    ptrdiff_t i, r, i0, j0;
    for (i = 0; i < lq; i++) Dr[i] = rt->row_dot(dop + i * ev, op + i * ev, ev);
    memset(dqp, 0, (size_t)(lq * d) * sizeof(FT));
    memset(dkp, 0, (size_t)(lk * d) * sizeof(FT));
    memset(dvp, 0, (size_t)(lk * ev) * sizeof(FT));
    for (j0 = 0; j0 < lk; j0 += FNN_ATTN_BC) {
        const ptrdiff_t n = (lk - j0 < FNN_ATTN_BC) ? lk - j0 : FNN_ATTN_BC;
        /* causal: query tiles ending at or before row j0 see none of these keys */
        const ptrdiff_t istart = g->causal ? j0 / FNN_ATTN_BR * FNN_ATTN_BR : 0;
        for (i0 = istart; i0 < lq; i0 += FNN_ATTN_BR) {
            const ptrdiff_t m = (lq - i0 < FNN_ATTN_BR) ? lq - i0 : FNN_ATTN_BR;
            TFN(attn_scores)(g, scale, qp, kp, km, i0, m, j0, n, S);
            GEMM(0, 1, m, n, ev, (FT)1, dop + i0 * ev, ev, vp + j0 * ev, ev, (FT)0, dP, n, NULL);
            for (r = 0; r < m; r++)
                rt->grad_row(S + r * n, dP + r * n, n, lp[i0 + r], Dr[i0 + r], scale);
            GEMM(1, 0, n, ev, m, (FT)1, S, n, dop + i0 * ev, ev, (FT)1, dvp + j0 * ev, ev, NULL);
            GEMM(1, 0, n, d, m, (FT)1, dP, n, qp + i0 * d, d, (FT)1, dkp + j0 * d, d, NULL);
            GEMM(0, 0, m, d, n, (FT)1, dP, n, kp + j0 * d, d, (FT)1, dqp + i0 * d, d, NULL);
        }
    }
}

void TFN(fnn_attn_backward)(const fnn_attn_geom *g, FT scale, const FT *q, const FT *k,
                            const FT *v, const FT *out, const FT *dout, const FT *lse, FT *dq,
                            FT *dk, FT *dv, FT *scratch, int nt)
{
    const ROWS *rt = ROWS_OF();
    const ptrdiff_t per = fnn_attn_scratch(g, 1);
    if (g->pairs <= 0) return;
    if (nt <= 1) {
        const unsigned int csr = fnn_ftz_enter();
        ptrdiff_t p;
        for (p = 0; p < g->pairs; p++)
            TFN(attn_bwd_pair)(g, rt, scale, p, q, k, v, out, dout, lse, dq, dk, dv, scratch);
        fnn_ftz_leave(csr);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        const unsigned int csr = fnn_ftz_enter();
        FT *mine = scratch + (ptrdiff_t)omp_get_thread_num() * per;
        ptrdiff_t p;
#pragma omp for schedule(dynamic, 1)
        for (p = 0; p < g->pairs; p++)
            TFN(attn_bwd_pair)(g, rt, scale, p, q, k, v, out, dout, lse, dq, dk, dv, mine);
        fnn_ftz_leave(csr);
    }
#else
    (void)per;
#endif
}
