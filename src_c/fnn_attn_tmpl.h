/*
 * The attention driver of fnn_attn.h for one element type. Required macros: FT, TFN(name) (the
 * public name with its type suffix), KERN (fnn_kern_f32 or fnn_kern_f64), KERN_OF() (the GEMM
 * flavour's kernel in use), ROWS (the flavour table's type), ROWS_OF() (the table of the flavour
 * in use), LOG (log or its float twin).
 */

/* The products run on the GEMM's micro-kernel (KERN: the flavour in use) over operands packed
 * here, with no call into fnn_sgemm per tile: its packing of both operands on every call and its
 * driver were a fifth of the time at 64 x 64 x 64, and Q_i, K_j^T and V_j^T are packed once per
 * tile, not once per product. An operand whose columns are whole micro-tiles is read in place
 * (a B sliver may be B itself, ldb its row stride; fnn_gemm_internal.h). Narrow heads (a head
 * within one direct tile's columns: 16 floats on AVX2, 32 on AVX-512) run the products whose A
 * is read untransposed on the flavour's direct tiles instead (attn_direct), A and a row-major B
 * read where they are: at 32 x 32 x 16 the packing of A cost about what the products did. */

#ifndef FNN_ATTN_CHUNK
/* Tasks (pair tiles, or pairs) a thread takes at a time: runs of neighbours, about four runs per
 * thread for balance. One at a time, neighbouring heads went to different threads, and a head's
 * rows (16 floats at d = 16, side by side with the other heads' in a layer's buffers) share
 * cache lines with its neighbours': the forward of a small Transformer block ran slower on two
 * threads than on one (198 -> 241 us). Which thread runs a task changes no result. */
#define FNN_ATTN_CHUNK(tasks, nt)                                                              \
    ((tasks) / (4 * (ptrdiff_t)(nt)) > 1 ? (tasks) / (4 * (ptrdiff_t)(nt)) : 1)
#endif

#ifndef ATTN_AT
/* the offset of pair p's matrix in an array of layout L (fnn_attn_layout) */
#define ATTN_AT(L, p) ((p) / g->heads * (L).bs + (p) % g->heads * (L).hs)
#endif

/* An operand of attn_mm as B slivers: sliver t at b + t * step, row stride ldb. */
typedef struct {
    const FT *b;
    ptrdiff_t step, ldb;
} TFN(attn_bop);

/* B in place (cols a multiple of nr) or packed into dst: rows [0, kc) of the row-major x (row
 * stride ld) restricted to cols columns. */
static TFN(attn_bop) TFN(attn_b_plain)(const KERN *kr, const FT *x, ptrdiff_t ld, ptrdiff_t kc,
                                       ptrdiff_t cols, FT *dst)
{
    TFN(attn_bop) o;
    const ptrdiff_t nr = kr->nr;
    if (cols % nr == 0) {
        o.b = x, o.step = nr, o.ldb = ld;
        return o;
    }
    if (kr->pack_n) {
        kr->pack_n((int)nr, cols, kc, x, ld, dst);
    } else {
        ptrdiff_t p, c;
        for (p = 0; p < kc; p++)
            for (c = 0; c < (cols + nr - 1) / nr * nr; c++)
                dst[(c / nr) * nr * kc + p * nr + c % nr] = c < cols ? x[p * ld + c] : (FT)0;
    }
    o.b = dst, o.step = nr * kc, o.ldb = nr;
    return o;
}

/* B = x^T packed into dst: x is (cnt, kc) row-major (row stride ld); B is (kc, cnt). */
static TFN(attn_bop) TFN(attn_b_trans)(const KERN *kr, const FT *x, ptrdiff_t ld, ptrdiff_t cnt,
                                       ptrdiff_t kc, FT *dst)
{
    TFN(attn_bop) o;
    const ptrdiff_t nr = kr->nr;
    ptrdiff_t t;
    for (t = 0; t < cnt; t += nr)
        kr->pack_t((int)nr, cnt - t < nr ? cnt - t : nr, kc, x + t * ld, ld, dst + t * kc);
    o.b = dst, o.step = nr * kc, o.ldb = nr;
    return o;
}

/* A slivers of op(A) (m x kc) into dst: A = x (m rows of stride ld) when !trans, else x^T (x
 * has kc rows of stride ld, m columns). */
static void TFN(attn_pack_a)(const KERN *kr, int trans, const FT *x, ptrdiff_t ld, ptrdiff_t m,
                             ptrdiff_t kc, FT *dst)
{
    const ptrdiff_t mr = kr->mr;
    ptrdiff_t i, p, c;
    if (!trans) {
        for (i = 0; i < m; i += mr)
            kr->pack_t((int)mr, m - i < mr ? m - i : mr, kc, x + i * ld, ld, dst + i * kc);
    } else if (kr->pack_n) {
        kr->pack_n((int)mr, m, kc, x, ld, dst);
    } else {
        for (p = 0; p < kc; p++)
            for (c = 0; c < (m + mr - 1) / mr * mr; c++)
                dst[(c / mr) * mr * kc + p * mr + c % mr] = c < m ? x[p * ld + c] : (FT)0;
    }
}

/* C (m x n, ldc) := alpha A B + beta C, beta 0 (C write-only) or 1; A as packed slivers
 * (attn_pack_a), B as attn_bop; every C value summed over p = 0..kc-1 in order. */
static void TFN(attn_mm)(const KERN *kr, ptrdiff_t m, ptrdiff_t n, ptrdiff_t kc, FT alpha,
                         const FT *ap, TFN(attn_bop) b, FT beta, FT *C, ptrdiff_t ldc)
{
    FT tmp[FNN_MAX_TILE];
    const ptrdiff_t mr = kr->mr, nr = kr->nr;
    ptrdiff_t i, j, r, c;
    for (j = 0; j < n; j += nr) {
        const FT *bj = b.b + (j / nr) * b.step;
        for (i = 0; i < m; i += mr) {
            const FT *ai = ap + i * kc;
            FT *ci = C + i * ldc + j;
            if (i + mr <= m && j + nr <= n) {
                kr->ukr(kc, ai, bj, b.ldb, ci, ldc, alpha, beta);
            } else {
                const ptrdiff_t mm = m - i < mr ? m - i : mr, nn = n - j < nr ? n - j : nr;
                kr->ukr(kc, ai, bj, b.ldb, tmp, nr, alpha, (FT)0);
                for (r = 0; r < mm; r++)
                    for (c = 0; c < nn; c++)
                        ci[r * ldc + c] =
                            beta == (FT)0 ? tmp[r * nr + c] : ci[r * ldc + c] + tmp[r * nr + c];
            }
        }
    }
}

/* C (m x n, ldc) := alpha A B + beta C on the flavour's direct tiles (no packing): A's rows
 * read in place (row stride lda), B row-major (row stride ldb, columns contiguous), at most
 * dnr columns a call; rows in as few tiles of at most dmr as gemm_direct takes them. */
static void TFN(attn_direct)(const KERN *kr, ptrdiff_t m, ptrdiff_t n, ptrdiff_t kc, FT alpha,
                             const FT *A, ptrdiff_t lda, const FT *B, ptrdiff_t ldb, FT beta,
                             FT *C, ptrdiff_t ldc)
{
    const ptrdiff_t tiles = (m + kr->dmr - 1) / kr->dmr;
    ptrdiff_t it;
    for (it = 0; it < tiles; it++) {
        const ptrdiff_t i0 = it * m / tiles, mb = (it + 1) * m / tiles - i0;
        kr->dtile(mb, n, kc, alpha, A + i0 * lda, lda, 1, B, ldb, beta, C + i0 * ldc, ldc, NULL,
                  FNN_ACT_LINEAR | FNN_DT_ROWS_ALIKE, (FT)0, NULL);
    }
}

/* The masks on an m x n score tile (ld n): -inf where key j0 + c is not visible to query
 * i0 + r. */
static void TFN(attn_mask)(const fnn_attn_geom *g, const unsigned char *km,
                           const unsigned char *qm, ptrdiff_t i0, ptrdiff_t m, ptrdiff_t j0,
                           ptrdiff_t n, FT *S)
{
    const FT ninf = -(FT)INFINITY;
    ptrdiff_t r, c;
    if (km) {
        const unsigned char *kr = km + j0;
        for (r = 0; r < m; r++) {
            FT *s = S + r * n;
            for (c = 0; c < n; c++) s[c] = kr[c] ? s[c] : ninf;
        }
    }
    if (qm) { /* the pair's (lq, lk) block: row i0 + r, columns from j0 */
        for (r = 0; r < m; r++) {
            const unsigned char *qr = qm + (i0 + r) * g->lk + j0;
            FT *s = S + r * n;
            for (c = 0; c < n; c++) s[c] = qr[c] ? s[c] : ninf;
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

/* Dropout on an m x n tile (ld n) of pair p at rows i0, columns j0: X *= Z (fnn_attn_keep). */
static void TFN(attn_drop)(const fnn_attn_geom *g, ptrdiff_t p, ptrdiff_t i0, ptrdiff_t m,
                           ptrdiff_t j0, ptrdiff_t n, FT *X)
{
    const FT keep = (FT)(1.0 / (1.0 - g->drop_rate));
    ptrdiff_t r, c;
    for (r = 0; r < m; r++) {
        FT *x = X + r * n;
        for (c = 0; c < n; c++) x[c] = fnn_attn_keep(g, p, i0 + r, j0 + c) ? x[c] * keep : (FT)0;
    }
}

/* The query rows [i0, i0 + m) of pair p. Scratch: fnn_attn_scratch's forward layout. */
static void TFN(attn_fwd_tile)(const fnn_attn_geom *g, const ROWS *rt, const KERN *kr, FT scale,
                               ptrdiff_t p, ptrdiff_t i0, const FT *q, const FT *k, const FT *v,
                               FT *out, FT *lse, FT *scratch, ptrdiff_t *packed_pair)
{
    const ptrdiff_t lq = g->lq, lk = g->lk, d = g->d, dv = g->dv;
    const ptrdiff_t m = (lq - i0 < FNN_ATTN_BR) ? lq - i0 : FNN_ATTN_BR;
    const unsigned char *km = g->key_mask ? g->key_mask + (p / g->heads) * lk : NULL;
    const unsigned char *qm = g->qk_mask ? g->qk_mask + (p / g->heads) * lq * lk : NULL;
    const ptrdiff_t ldq = g->q.rs, ldk = g->k.rs, ldv = g->v.rs, ldo = g->out.rs;
    const FT *qp = q + ATTN_AT(g->q, p), *kp = k + ATTN_AT(g->k, p), *vp = v + ATTN_AT(g->v, p);
    FT *op = out + ATTN_AT(g->out, p) + i0 * ldo, *lp = lse + p * lq + i0;
    FT *S = scratch, *mrow = S + FNN_ATTN_BR * FNN_ATTN_BC, *lrow = mrow + FNN_ATTN_BR;
    FT *Qa = lrow + FNN_ATTN_BR, *Pa = Qa + FNN_ATTN_PAD(FNN_ATTN_BR, FNN_ATTN_MR) * d;
    FT *Vb = Pa + FNN_ATTN_PAD(FNN_ATTN_BR, FNN_ATTN_MR) * FNN_ATTN_BC;
    /* K^T of the whole pair, packed once for the tiles of the pair this thread runs in a row
     * (*packed_pair: the pair it holds, or -1): packing it per tile cost ~5% of the forward at
     * L = 1024. A tile's columns start at a multiple of nr, so its slivers are those it would
     * have packed itself (a causal tile's last sliver may hold later keys instead of zero
     * padding: columns past the tile's n are computed and never stored). */
    FT *Kall = Vb + FNN_ATTN_PAD(dv, FNN_ATTN_NR) * FNN_ATTN_BC;
    /* causal: the tile's last query sees keys < i0 + m */
    const ptrdiff_t jend = (g->causal && i0 + m < lk) ? i0 + m : lk;
    /* narrow heads (dv and the key slivers within one direct tile, nr of them at most): the
     * products on direct tiles, reading Q, P and V where they are, with no A packing */
    const int direct = dv <= kr->dnr && kr->nr <= kr->dnr;
    ptrdiff_t r, j0, e;
    TFN(attn_bop) kb;
#ifdef A_SMALL
    if (attn_small_ok(g)) { /* the whole pair (lq <= FNN_ATTN_BR: i0 = 0) in registers */
        attn_small_fwd_f32(g, scale, p, q, k, v, out, lse, scratch);
        return;
    }
#endif
    if (*packed_pair != p) {
        (void)TFN(attn_b_trans)(kr, kp, ldk, lk, d, Kall);
        *packed_pair = p;
    }
    kb.step = kr->nr * d;
    kb.ldb = kr->nr;
    for (r = 0; r < m; r++) {
        mrow[r] = -(FT)INFINITY;
        lrow[r] = (FT)0;
    }
    for (r = 0; r < m; r++) memset(op + r * ldo, 0, (size_t)dv * sizeof(FT));
    if (!direct) TFN(attn_pack_a)(kr, 0, qp + i0 * ldq, ldq, m, d, Qa);
    for (j0 = 0; j0 < jend; j0 += FNN_ATTN_BC) {
        const ptrdiff_t n = (jend - j0 < FNN_ATTN_BC) ? jend - j0 : FNN_ATTN_BC;
        kb.b = Kall + j0 * d;
        if (direct) { /* the key slivers of nr columns, each a row-major d x nr block */
            ptrdiff_t c0;
            for (c0 = 0; c0 < n; c0 += kr->nr)
                TFN(attn_direct)(kr, m, n - c0 < kr->nr ? n - c0 : kr->nr, d, scale,
                                 qp + i0 * ldq, ldq, kb.b + c0 * d, kr->nr, (FT)0, S + c0, n);
        } else {
            TFN(attn_mm)(kr, m, n, d, scale, Qa, kb, (FT)0, S, n);
        }
        TFN(attn_mask)(g, km, qm, i0, m, j0, n, S);
        for (r = 0; r < m; r++)
            rt->online_row(S + r * n, n, mrow + r, lrow + r, op + r * ldo, dv);
        if (g->drop_rate > 0.0) TFN(attn_drop)(g, p, i0, m, j0, n, S); /* l summed A: P = A Z */
        if (direct) {
            TFN(attn_direct)(kr, m, dv, n, (FT)1, S, n, vp + j0 * ldv, ldv, (FT)1, op, ldo);
        } else {
            TFN(attn_pack_a)(kr, 0, S, n, m, n, Pa);
            TFN(attn_mm)(kr, m, dv, n, (FT)1, Pa,
                         TFN(attn_b_plain)(kr, vp + j0 * ldv, ldv, n, dv, Vb), (FT)1, op, ldo);
        }
    }
    /* l >= 1 once a finite score was seen (its maximum adds exp(0)); l = 0: every score -inf
     * (masked, or overflowed to -inf), the row attends to nothing; l is NaN when a score is NaN
     * or +inf (overflow: exp(inf - inf)), and so is the row's softmax. */
    for (r = 0; r < m; r++) {
        FT *o = op + r * ldo;
        if (lrow[r] > (FT)0) {
            const FT l = lrow[r];
            for (e = 0; e < dv; e++) o[e] /= l;
            lp[r] = mrow[r] + LOG(l);
        } else if (lrow[r] == (FT)0) {
            for (e = 0; e < dv; e++) o[e] = (FT)0;
            lp[r] = -(FT)INFINITY;
        } else {
            for (e = 0; e < dv; e++) o[e] = (FT)NAN;
            lp[r] = (FT)NAN;
        }
    }
}

void TFN(fnn_attn_forward)(const fnn_attn_geom *g, FT scale, const FT *q, const FT *k,
                           const FT *v, FT *out, FT *lse, FT *scratch, int nt)
{
    const ROWS *rt = ROWS_OF();
    const KERN *kr = KERN_OF();
    const ptrdiff_t tiles = (g->lq + FNN_ATTN_BR - 1) / FNN_ATTN_BR, tasks = g->pairs * tiles;
    const ptrdiff_t per = fnn_attn_scratch(g, 0);
    if (tasks <= 0) return;
    if (FNN_ATTN_MR % kr->mr || FNN_ATTN_NR % kr->nr) abort(); /* the scratch is sized for these */
    if (nt <= 1) {
        const unsigned int csr = fnn_ftz_enter();
        ptrdiff_t t, held = -1;
        for (t = 0; t < tasks; t++)
            TFN(attn_fwd_tile)(g, rt, kr, scale, t / tiles, (t % tiles) * FNN_ATTN_BR, q, k, v, out,
                               lse, scratch, &held);
        fnn_ftz_leave(csr);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        const unsigned int csr = fnn_ftz_enter();
        FT *mine = scratch + (ptrdiff_t)omp_get_thread_num() * per;
        ptrdiff_t t, held = -1;
#pragma omp for schedule(dynamic, FNN_ATTN_CHUNK(tasks, nt))
        for (t = 0; t < tasks; t++)
            TFN(attn_fwd_tile)(g, rt, kr, scale, t / tiles, (t % tiles) * FNN_ATTN_BR, q, k, v, out,
                               lse, mine, &held);
        fnn_ftz_leave(csr);
    }
#else
    (void)per;
#endif
}

/* Chunk c's (c >= 1) partial dq of pair p: the pair's (chunks - 1) contiguous Lq x D blocks of
 * parts, in chunk order. */
static FT *TFN(attn_dq_part)(const fnn_attn_geom *g, FT *parts, ptrdiff_t p, ptrdiff_t c,
                             ptrdiff_t chunks)
{
    return parts + (p * (chunks - 1) + c - 1) * g->lq * g->d;
}

/* The backward of key chunk c of the `chunks` of pair p (fnn_attn_key_chunks; every sum in tile
 * order, on one thread): dk and dv of the chunk's keys, and its partial dq, into dq itself for
 * chunk 0, else into its block of parts (attn_dq_part).
 * Scratch: the backward layout of fnn_attn_scratch. */
static void TFN(attn_bwd_chunk)(const fnn_attn_geom *g, const ROWS *rt, const KERN *kr, FT scale,
                                ptrdiff_t p, ptrdiff_t c, ptrdiff_t chunks, const FT *q,
                                const FT *k, const FT *v, const FT *out, const FT *dout,
                                const FT *lse, FT *dq, FT *dk, FT *dv, FT *parts, FT *scratch)
{
    const ptrdiff_t lq = g->lq, lk = g->lk, d = g->d, ev = g->dv;
    const ptrdiff_t brp = FNN_ATTN_PAD(FNN_ATTN_BR, FNN_ATTN_MR);
    const ptrdiff_t bcp = FNN_ATTN_PAD(FNN_ATTN_BC, FNN_ATTN_MR);
    const ptrdiff_t bcn = FNN_ATTN_PAD(FNN_ATTN_BC, FNN_ATTN_NR);
    const unsigned char *km = g->key_mask ? g->key_mask + (p / g->heads) * lk : NULL;
    const unsigned char *qm = g->qk_mask ? g->qk_mask + (p / g->heads) * lq * lk : NULL;
    const ptrdiff_t ldq = g->q.rs, ldk = g->k.rs, ldv = g->v.rs, ldo = g->out.rs;
    const ptrdiff_t lddo = g->dout.rs, lddk = g->dk.rs, lddv = g->dv_.rs;
    const ptrdiff_t tiles = (lk + FNN_ATTN_BC - 1) / FNN_ATTN_BC;
    const ptrdiff_t jlo = c * tiles / chunks * FNN_ATTN_BC;
    const ptrdiff_t jend = (c + 1) * tiles / chunks * FNN_ATTN_BC, jhi = jend < lk ? jend : lk;
    const ptrdiff_t lddq = c == 0 ? g->dq.rs : d;
    const FT *qp = q + ATTN_AT(g->q, p), *kp = k + ATTN_AT(g->k, p), *vp = v + ATTN_AT(g->v, p);
    const FT *op = out + ATTN_AT(g->out, p), *dop = dout + ATTN_AT(g->dout, p);
    const FT *lp = lse + p * lq;
    FT *dqp = c == 0 ? dq + ATTN_AT(g->dq, p) : TFN(attn_dq_part)(g, parts, p, c, chunks);
    FT *dkp = dk + ATTN_AT(g->dk, p), *dvp = dv + ATTN_AT(g->dv_, p);
    FT *S = scratch, *dP = S + FNN_ATTN_BR * FNN_ATTN_BC, *Dr = dP + FNN_ATTN_BR * FNN_ATTN_BC;
    /* Q and dout of the whole pair as A slivers, packed once (per key tile, each query tile's
     * were packed again: ~lk / 96 times); a tile at row i0 (a multiple of mr) is the slivers
     * from row i0 on, the ones it packed itself */
    const ptrdiff_t lqp = FNN_ATTN_PAD(lq, FNN_ATTN_MR);
    FT *Aq = Dr + lq, *Ado = Aq + lqp * d, *Ab = Ado + lqp * ev;
    FT *KbT = Ab + (bcp * FNN_ATTN_BR > brp * FNN_ATTN_BC ? bcp * FNN_ATTN_BR
                                                           : brp * FNN_ATTN_BC);
    FT *VbT = KbT + bcn * d, *Kn = VbT + bcn * ev;
    FT *Qn = Kn + FNN_ATTN_PAD(d, FNN_ATTN_NR) * FNN_ATTN_BC;
    FT *dOn = Qn + FNN_ATTN_PAD(d, FNN_ATTN_NR) * FNN_ATTN_BR;
    /* narrow heads (d and the key slivers within one direct tile): S, dP and dq's product on
     * direct tiles, reading Q, dout, dS and K where they are (as the forward does) */
    const int direct = d <= kr->dnr && kr->nr <= kr->dnr;
    ptrdiff_t i, r, i0, j0, c0;
#ifdef A_SMALL
    if (attn_small_ok(g)) { /* (at most 32 keys: one tile, one chunk) */
        attn_small_bwd_f32(g, scale, p, q, k, v, out, dout, lse, dq, dk, dv, scratch);
        return;
    }
#endif
    for (i = 0; i < lq; i++) Dr[i] = rt->row_dot(dop + i * lddo, op + i * ldo, ev);
    if (!direct) {
        TFN(attn_pack_a)(kr, 0, qp, ldq, lq, d, Aq);
        TFN(attn_pack_a)(kr, 0, dop, lddo, lq, ev, Ado);
    }
    for (i = 0; i < lq; i++) memset(dqp + i * lddq, 0, (size_t)d * sizeof(FT));
    for (i = jlo; i < jhi; i++) {
        memset(dkp + i * lddk, 0, (size_t)d * sizeof(FT));
        memset(dvp + i * lddv, 0, (size_t)ev * sizeof(FT));
    }
    for (j0 = jlo; j0 < jhi; j0 += FNN_ATTN_BC) {
        const ptrdiff_t n = (jhi - j0 < FNN_ATTN_BC) ? jhi - j0 : FNN_ATTN_BC;
        /* causal: query tiles ending at or before row j0 see none of these keys */
        const ptrdiff_t istart = g->causal ? j0 / FNN_ATTN_BR * FNN_ATTN_BR : 0;
        const TFN(attn_bop) kt = TFN(attn_b_trans)(kr, kp + j0 * ldk, ldk, n, d, KbT);
        const TFN(attn_bop) vt = TFN(attn_b_trans)(kr, vp + j0 * ldv, ldv, n, ev, VbT);
        /* (direct: dq's product reads K itself; kn is then not used) */
        const TFN(attn_bop) kn = direct ? kt : TFN(attn_b_plain)(kr, kp + j0 * ldk, ldk, n, d, Kn);
        for (i0 = istart; i0 < lq; i0 += FNN_ATTN_BR) {
            const ptrdiff_t m = (lq - i0 < FNN_ATTN_BR) ? lq - i0 : FNN_ATTN_BR;
            if (direct) { /* per sliver of nr keys: K^T's and V^T's, row-major kc x nr blocks */
                for (c0 = 0; c0 < n; c0 += kr->nr) {
                    const ptrdiff_t nb = n - c0 < kr->nr ? n - c0 : kr->nr;
                    TFN(attn_direct)(kr, m, nb, d, scale, qp + i0 * ldq, ldq, kt.b + c0 * d,
                                     kr->nr, (FT)0, S + c0, n);
                    TFN(attn_direct)(kr, m, nb, ev, (FT)1, dop + i0 * lddo, lddo,
                                     vt.b + c0 * ev, kr->nr, (FT)0, dP + c0, n);
                }
                TFN(attn_mask)(g, km, qm, i0, m, j0, n, S);
            } else {
                TFN(attn_mm)(kr, m, n, d, scale, Aq + i0 * d, kt, (FT)0, S, n);
                TFN(attn_mask)(g, km, qm, i0, m, j0, n, S);
                TFN(attn_mm)(kr, m, n, ev, (FT)1, Ado + i0 * ev, vt, (FT)0, dP, n);
            }
            if (g->drop_rate > 0.0) TFN(attn_drop)(g, p, i0, m, j0, n, dP); /* Z dP */
            for (r = 0; r < m; r++)
                rt->grad_row(S + r * n, dP + r * n, n, lp[i0 + r], Dr[i0 + r], scale);
            if (g->drop_rate > 0.0) TFN(attn_drop)(g, p, i0, m, j0, n, S); /* A Z, for dv */
            /* dv_j += P^T dout_i, dk_j += dS^T q_i, dq_i += dS k_j */
            TFN(attn_pack_a)(kr, 1, S, n, n, m, Ab);
            TFN(attn_mm)(kr, n, ev, m, (FT)1, Ab,
                         TFN(attn_b_plain)(kr, dop + i0 * lddo, lddo, m, ev, dOn), (FT)1,
                         dvp + j0 * lddv, lddv);
            TFN(attn_pack_a)(kr, 1, dP, n, n, m, Ab);
            TFN(attn_mm)(kr, n, d, m, (FT)1, Ab,
                         TFN(attn_b_plain)(kr, qp + i0 * ldq, ldq, m, d, Qn), (FT)1,
                         dkp + j0 * lddk, lddk);
            if (direct) {
                TFN(attn_direct)(kr, m, d, n, (FT)1, dP, n, kp + j0 * ldk, ldk, (FT)1,
                                 dqp + i0 * lddq, lddq);
            } else {
                TFN(attn_pack_a)(kr, 0, dP, n, m, n, Ab);
                TFN(attn_mm)(kr, m, d, n, (FT)1, Ab, kn, (FT)1, dqp + i0 * lddq, lddq);
            }
        }
    }
}

/* dq of pair p := chunk 0's partial + chunk 1's + ... (in chunk order). */
static void TFN(attn_dq_sum)(const fnn_attn_geom *g, ptrdiff_t p, ptrdiff_t chunks, FT *dq,
                             FT *parts)
{
    const ptrdiff_t lq = g->lq, d = g->d;
    FT *dqp = dq + ATTN_AT(g->dq, p);
    ptrdiff_t i, c, e;
    for (i = 0; i < lq; i++) {
        FT *o = dqp + i * g->dq.rs;
        for (c = 1; c < chunks; c++) {
            const FT *x = TFN(attn_dq_part)(g, parts, p, c, chunks) + i * d;
            for (e = 0; e < d; e++) o[e] += x[e];
        }
    }
}

void TFN(fnn_attn_backward)(const fnn_attn_geom *g, FT scale, const FT *q, const FT *k,
                            const FT *v, const FT *out, const FT *dout, const FT *lse, FT *dq,
                            FT *dk, FT *dv, FT *scratch, int nt)
{
    const ROWS *rt = ROWS_OF();
    const KERN *kr = KERN_OF();
    const ptrdiff_t per = fnn_attn_scratch(g, 1);
    const ptrdiff_t chunks = fnn_attn_key_chunks(g), tasks = g->pairs * chunks;
    FT *parts = scratch + (ptrdiff_t)(nt > 1 ? nt : 1) * per;
    if (g->pairs <= 0) return;
    if (FNN_ATTN_MR % kr->mr || FNN_ATTN_NR % kr->nr) abort(); /* the scratch is sized for these */
    if (nt <= 1) {
        const unsigned int csr = fnn_ftz_enter();
        ptrdiff_t t;
        for (t = 0; t < tasks; t++)
            TFN(attn_bwd_chunk)(g, rt, kr, scale, t / chunks, t % chunks, chunks, q, k, v, out,
                                dout, lse, dq, dk, dv, parts, scratch);
        if (chunks > 1)
            for (t = 0; t < g->pairs; t++) TFN(attn_dq_sum)(g, t, chunks, dq, parts);
        fnn_ftz_leave(csr);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        const unsigned int csr = fnn_ftz_enter();
        FT *mine = scratch + (ptrdiff_t)omp_get_thread_num() * per;
        ptrdiff_t t;
#pragma omp for schedule(dynamic, FNN_ATTN_CHUNK(tasks, nt))
        for (t = 0; t < tasks; t++)
            TFN(attn_bwd_chunk)(g, rt, kr, scale, t / chunks, t % chunks, chunks, q, k, v, out,
                                dout, lse, dq, dk, dv, parts, mine);
        if (chunks > 1) {
#pragma omp for schedule(static)
            for (t = 0; t < g->pairs; t++) TFN(attn_dq_sum)(g, t, chunks, dq, parts);
        }
        fnn_ftz_leave(csr);
    }
#else
    (void)per;
#endif
}
