/*
 * The recurrent driver of fnn_rnn.h for one element type. Required macros: FT, RFN(name) (the
 * public name with its type suffix), GEMM (fnn_sgemm or fnn_dgemm), GEMM_BP and PACK_B (its
 * pre-packed-B twins), FT_DBL (0 float, 1 double), EPI (its epilogue struct), GATES (the flavour
 * table's type) and GATES_OF() (the table of the flavour in use).
 */

/* The workspace's parts (see fnn_rnn.h). */
typedef struct {
    FT *xt, *G, *H, *C, *AUX, *S;
} RFN(parts);

static RFN(parts) RFN(split)(const fnn_rnn_geom *g, FT *ws)
{
    const ptrdiff_t n = g->n, T = g->T, u = g->u, K = fnn_rnn_gates(g->cell) * u;
    RFN(parts) p;
    p.xt = ws;
    p.G = p.xt + T * n * g->d;
    p.H = p.G + (g->cell == FNN_RNN_SIMPLE ? 0 : T * n * K);
    p.C = p.H + (T + 1) * n * u;
    p.AUX = p.C + (g->cell == FNN_RNN_LSTM ? (T + 1) * n * u : 0);
    p.S = p.AUX + (g->cell == FNN_RNN_SIMPLE ? 0 : T * n * u);
    return p;
}

static void RFN(gemm)(int ta, int tb, ptrdiff_t m, ptrdiff_t nn, ptrdiff_t k, const FT *A,
                      ptrdiff_t lda, const FT *B, ptrdiff_t ldb, FT beta, FT *C, ptrdiff_t ldc,
                      const FT *bias)
{
    EPI ep;
    memset(&ep, 0, sizeof ep);
    ep.bias = bias;
    ep.act = FNN_ACT_LINEAR;
    GEMM(ta, tb, m, nn, k, (FT)1, A, lda, B, ldb, beta, C, ldc, bias ? &ep : NULL);
}

/* The per-step products: few rows (one sequence, a handful) as row updates, more on the GEMM
 * (a choice made by n alone, never by the thread count). */
#define FNN_RNN_SMALL_ROWS 4

/* Columns per call of the row updates: a whole register block of every flavour (8 vectors). */
#define FNN_RNN_SMALL_COLS 128

/* The per-step B operand (U, or U^T backward; k x m) laid out once for all steps of a call,
 * 64-byte aligned (unaligned slivers cost 15-20%):
 * - for the GEMM (n > FNN_RNN_SMALL_ROWS), packed as the GEMM would pack it at each step (or
 *   read it in place, from rows 1 KiB or more apart that collide in L1);
 * - for the row updates, as column blocks of FNN_RNN_SMALL_COLS, each (k x width) contiguous:
 *   read in place, the rows of a block 1 KiB apart (U of 64 units) fill only half of L1's
 *   sets, so no block survived from one step to the next.
 * The same values either way, so the same results. NULL with *raw NULL when B is read as it
 * is (one block of contiguous rows) or out of memory. Free *raw. */
static FT *RFN(pack_steps_b)(ptrdiff_t n, ptrdiff_t k, ptrdiff_t m, const FT *B, void **raw)
{
    const int small = n <= FNN_RNN_SMALL_ROWS;
    const size_t values = small ? (size_t)k * (size_t)m : fnn_gemm_packed_b_size(FT_DBL, k, m);
    FT *Bp;
    *raw = NULL;
    if (values == 0 || (small && m <= FNN_RNN_SMALL_COLS)) return NULL;
    *raw = malloc(values * sizeof(FT) + FNN_ALIGN);
    if (*raw == NULL) return NULL;
    Bp = (FT *)(((uintptr_t)*raw + FNN_ALIGN - 1) & ~(uintptr_t)(FNN_ALIGN - 1));
    if (small) {
        ptrdiff_t j0, p;
        for (j0 = 0; j0 < m; j0 += FNN_RNN_SMALL_COLS) {
            const ptrdiff_t w = m - j0 < FNN_RNN_SMALL_COLS ? m - j0 : FNN_RNN_SMALL_COLS;
            for (p = 0; p < k; p++)
                memcpy(Bp + j0 * k + p * w, B + p * m + j0, (size_t)w * sizeof(FT));
        }
    } else {
        PACK_B(0, k, m, B, m, Bp);
    }
    return Bp;
}

/* C := beta C + A B (+ bias) for one step's n rows, B (k x m) with row stride m; Bp: B laid out
 * by pack_steps_b, or NULL. The row updates read all of B at each step, more than L1 holds
 * once it passes ~48 KiB (an LSTM of 64 units: 64 KiB), so odd steps (s) take the column
 * blocks last to first: the block the previous step read last is still in L1 (in the same
 * order each step would evict every block just before its reuse). Each column's sum is the
 * same either way. */
static void RFN(step_gemm)(const GATES *gt, ptrdiff_t s, ptrdiff_t n, ptrdiff_t m, ptrdiff_t k,
                           const FT *A, ptrdiff_t lda, const FT *B, const FT *Bp, FT beta,
                           FT *C, ptrdiff_t ldc, const FT *bias)
{
    if (n <= FNN_RNN_SMALL_ROWS) {
        const ptrdiff_t blocks = (m + FNN_RNN_SMALL_COLS - 1) / FNN_RNN_SMALL_COLS;
        ptrdiff_t i, q;
        if (bias) {
            for (i = 0; i < n; i++) memcpy(C + i * ldc, bias, (size_t)m * sizeof(FT));
            beta = (FT)1;
        }
        for (q = 0; q < blocks; q++) {
            const ptrdiff_t j0 = (s & 1 ? blocks - 1 - q : q) * FNN_RNN_SMALL_COLS;
            const ptrdiff_t w = m - j0 < FNN_RNN_SMALL_COLS ? m - j0 : FNN_RNN_SMALL_COLS;
            if (Bp)
                gt->small_gemm(n, w, k, A, lda, Bp + j0 * k, w, beta, C + j0, ldc);
            else
                gt->small_gemm(n, w, k, A, lda, B + j0, m, beta, C + j0, ldc);
        }
    } else {
        EPI ep;
        memset(&ep, 0, sizeof ep);
        ep.bias = bias;
        ep.act = FNN_ACT_LINEAR;
        GEMM_BP(0, 0, n, m, k, (FT)1, A, lda, B, m, Bp, beta, C, ldc, bias ? &ep : NULL);
    }
}

/* CALL (which reads q) for each row group q < groups (see fnn_rnn_groups), on the caller's nt
 * threads (a variable of that name: the pragma names it), each in flush-to-zero mode */
#ifndef RNN_EACH_GROUP
#ifdef _OPENMP
#define RNN_EACH_GROUP(groups, q, CALL)                                                          \
    do {                                                                                         \
        if (nt <= 1) {                                                                           \
            for (q = 0; q < (groups); q++) CALL;                                                 \
        } else {                                                                                 \
            _Pragma("omp parallel for num_threads(nt) schedule(static)")                         \
            for (q = 0; q < (groups); q++) {                                                     \
                const unsigned int csr_ = fnn_ftz_enter();                                       \
                CALL;                                                                            \
                fnn_ftz_leave(csr_);                                                             \
            }                                                                                    \
        }                                                                                        \
    } while (0)
#else
#define RNN_EACH_GROUP(groups, q, CALL)                                                          \
    do {                                                                                         \
        (void)nt;                                                                                \
        for (q = 0; q < (groups); q++) CALL;                                                     \
    } while (0)
#endif
#endif

/* The recurrence of the forward on rows [r0, r1) of the batch, group q of `groups` (see
 * fnn_rnn_groups): rows are independent through time, so groups run on threads with no
 * synchronisation per step. */
static void RFN(forward_rows)(const fnn_rnn_geom *g, const GATES *gt, const RFN(parts) *p,
                              const FT *U, const FT *Up, const FT *b, const FT *h0, ptrdiff_t q,
                              ptrdiff_t groups)
{
    const ptrdiff_t n = g->n, T = g->T, u = g->u, K = fnn_rnn_gates(g->cell) * u;
    const ptrdiff_t r0 = q * n / groups, m = (q + 1) * n / groups - r0;
    ptrdiff_t s;
    for (s = 0; s < T; s++) {
        const FT *hp = p->H + (s * n + r0) * u;
        FT *hn = p->H + ((s + 1) * n + r0) * u, *gs = p->G + (s * n + r0) * K;
        /* a zero initial state adds nothing to the first step's input projection */
        const int rec = s > 0 || h0;
        switch (g->cell) {
        case FNN_RNN_SIMPLE:
            if (rec) RFN(step_gemm)(gt, s, m, u, u, hp, u, U, Up, (FT)1, hn, u, NULL);
            gt->act(hn, m * u, g->act);
            break;
        case FNN_RNN_LSTM:
            if (rec) RFN(step_gemm)(gt, s, m, K, u, hp, u, U, Up, (FT)1, gs, K, NULL);
            gt->lstm_fwd(gs, p->C + (s * n + r0) * u, p->C + ((s + 1) * n + r0) * u,
                         p->AUX + (s * n + r0) * u, hn, m, u, g->act, g->rec);
            break;
        default:
            RFN(step_gemm)(gt, s, m, K, u, hp, u, U, Up, (FT)0, p->S + r0 * K, K, b + K);
            gt->gru_fwd(gs, p->S + r0 * K, hp, p->AUX + (s * n + r0) * u, hn, m, u, g->act,
                        g->rec);
            break;
        }
    }
}

int RFN(fnn_rnn_forward)(const fnn_rnn_geom *g, const FT *x, const FT *W, const FT *U,
                         const FT *b, const FT *h0, const FT *c0, FT *ws, FT *y, FT *h_last,
                         FT *c_last)
{
    const ptrdiff_t n = g->n, T = g->T, d = g->d, u = g->u, K = fnn_rnn_gates(g->cell) * u;
    const ptrdiff_t groups = fnn_rnn_groups(n, u * K * (ptrdiff_t)sizeof(FT));
    const GATES *gt = GATES_OF();
    const RFN(parts) p = RFN(split)(g, ws);
    const unsigned int mxcsr = fnn_ftz_enter();
    void *up_raw;
    const FT *Up;
    ptrdiff_t s, bb;
    if (n == 0) {
        fnn_ftz_leave(mxcsr);
        return 1;
    }
    Up = RFN(pack_steps_b)(n / groups, u, K, U, &up_raw);
    /* the input in step order, time-major */
    for (s = 0; s < T; s++) {
        const ptrdiff_t t = g->reverse ? T - 1 - s : s;
        for (bb = 0; bb < n; bb++)
            memcpy(p.xt + (s * n + bb) * d, x + (bb * T + t) * d, (size_t)d * sizeof(FT));
    }
    /* the input projection of every step, with the (input) bias */
    RFN(gemm)(0, 0, T * n, K, d, p.xt, d, W, K, (FT)0,
              g->cell == FNN_RNN_SIMPLE ? p.H + n * u : p.G, K, b);
    if (h0) memcpy(p.H, h0, (size_t)(n * u) * sizeof(FT));
    else memset(p.H, 0, (size_t)(n * u) * sizeof(FT));
    if (g->cell == FNN_RNN_LSTM) {
        if (c0) memcpy(p.C, c0, (size_t)(n * u) * sizeof(FT));
        else memset(p.C, 0, (size_t)(n * u) * sizeof(FT));
    }
    {
        const int nt = fnn_rnn_threads(groups, T * n * K * u);
        ptrdiff_t q;
        RNN_EACH_GROUP(groups, q, RFN(forward_rows)(g, gt, &p, U, Up, b, h0, q, groups));
    }
    if (g->seq) {
        for (s = 0; s < T; s++)
            for (bb = 0; bb < n; bb++)
                memcpy(y + (bb * T + s) * u, p.H + ((s + 1) * n + bb) * u,
                       (size_t)u * sizeof(FT));
    } else {
        memcpy(y, p.H + T * n * u, (size_t)(n * u) * sizeof(FT));
    }
    if (h_last) memcpy(h_last, p.H + T * n * u, (size_t)(n * u) * sizeof(FT));
    if (c_last && g->cell == FNN_RNN_LSTM)
        memcpy(c_last, p.C + T * n * u, (size_t)(n * u) * sizeof(FT));
    free(up_raw);
    fnn_ftz_leave(mxcsr);
    return 1;
}

/* Backpropagation through time on rows [r0, r1) of the batch, group q of `groups`: the gate
 * derivatives into dZ (and dZr), dh and dc carried back, the bias sums into acc (this group's:
 * K, and the GRU's recurrent K after). */
static void RFN(backward_rows)(const fnn_rnn_geom *g, const GATES *gt, const RFN(parts) *p,
                               const FT *ut, const FT *Utp, const FT *dy, FT *dZ, FT *dZr, FT *dh,
                               FT *dc, int want_dh0, double *acc, ptrdiff_t q, ptrdiff_t groups)
{
    const ptrdiff_t n = g->n, T = g->T, u = g->u, K = fnn_rnn_gates(g->cell) * u;
    const ptrdiff_t r0 = q * n / groups, m = (q + 1) * n / groups - r0;
    FT *dhq = dh + r0 * u, *dcq = dc + r0 * u;
    ptrdiff_t s, bb, j;
    for (s = T - 1; s >= 0; s--) {
        FT *dzs = dZ + (s * n + r0) * K, *dzr = dZr + (s * n + r0) * K;
        if (g->seq) {
            for (bb = r0; bb < r0 + m; bb++) {
                const FT *src = dy + (bb * T + s) * u;
                FT *dst = dh + bb * u;
                for (j = 0; j < u; j++) dst[j] += src[j];
            }
        } else if (s == T - 1) {
            for (j = 0; j < m * u; j++) dhq[j] += dy[r0 * u + j];
        }
        /* the recurrent product feeds the step before; at the first step only dh0 wants it */
        switch (g->cell) {
        case FNN_RNN_SIMPLE:
            gt->simple_bwd(p->H + ((s + 1) * n + r0) * u, dhq, dzs, m * u, g->act);
            if (s > 0 || want_dh0)
                RFN(step_gemm)(gt, s, m, u, K, dzs, K, ut, Utp, (FT)0, dhq, u, NULL);
            break;
        case FNN_RNN_LSTM:
            gt->lstm_bwd(p->G + (s * n + r0) * K, p->C + (s * n + r0) * u,
                         p->AUX + (s * n + r0) * u, dhq, dcq, dzs, m, u, g->act, g->rec);
            if (s > 0 || want_dh0)
                RFN(step_gemm)(gt, s, m, u, K, dzs, K, ut, Utp, (FT)0, dhq, u, NULL);
            break;
        default:
            gt->gru_bwd(p->G + (s * n + r0) * K, p->H + (s * n + r0) * u,
                        p->AUX + (s * n + r0) * u, dhq, dzs, dzr, m, u, g->act, g->rec);
            if (s > 0 || want_dh0)
                RFN(step_gemm)(gt, s, m, u, K, dzr, K, ut, Utp, (FT)1, dhq, u, NULL);
            gt->colsum(dzr, m, K, acc + K);
            break;
        }
        gt->colsum(dzs, m, K, acc);
    }
}

int RFN(fnn_rnn_backward)(const fnn_rnn_geom *g, const FT *W, const FT *U, const FT *ws,
                          const FT *dy, const FT *dh_last, const FT *dc_last, FT *bws, FT *ut,
                          FT *dW, FT *dU, FT *db, FT *dx, FT *dh0, FT *dc0)
{
    const ptrdiff_t n = g->n, T = g->T, d = g->d, u = g->u, K = fnn_rnn_gates(g->cell) * u;
    const GATES *gt = GATES_OF();
    const RFN(parts) p = RFN(split)(g, (FT *)ws);
    const int gru = g->cell == FNN_RNN_GRU, lstm = g->cell == FNN_RNN_LSTM;
    const ptrdiff_t groups = fnn_rnn_groups(n, u * K * (ptrdiff_t)sizeof(FT));
    const ptrdiff_t na = gru ? 2 * K : K; /* bias sums per group */
    FT *dZ = bws, *dZr = dZ + T * n * K, *dxt = dZr + (gru ? T * n * K : 0);
    FT *dh = dxt + T * n * d, *dc = dh + n * u;
    double *acc;
    void *utp_raw = NULL;
    const FT *Utp = NULL;
    unsigned int mxcsr;
    ptrdiff_t s, bb, i, j;
    /* the bias gradients' sums (the GRU's recurrent bias: the second K), one set per group */
    acc = (double *)calloc((size_t)(groups * na), sizeof(double));
    if (!acc) return 0;
    mxcsr = fnn_ftz_enter();
    if (n == 0) { /* no samples: zero gradients */
        memset(dW, 0, (size_t)(d * K) * sizeof(FT));
        memset(dU, 0, (size_t)(u * K) * sizeof(FT));
        memset(db, 0, (size_t)((gru ? 2 : 1) * K) * sizeof(FT));
        fnn_ftz_leave(mxcsr);
        free(acc);
        return 1;
    }
    for (i = 0; i < u; i++) /* U^T, so each step's product reads it untransposed */
        for (j = 0; j < K; j++) ut[j * u + i] = U[i * K + j];
    Utp = RFN(pack_steps_b)(n / groups, K, u, ut, &utp_raw);
    if (dh_last) memcpy(dh, dh_last, (size_t)(n * u) * sizeof(FT));
    else memset(dh, 0, (size_t)(n * u) * sizeof(FT));
    if (lstm) {
        if (dc_last) memcpy(dc, dc_last, (size_t)(n * u) * sizeof(FT));
        else memset(dc, 0, (size_t)(n * u) * sizeof(FT));
    }
    {
        const int nt = fnn_rnn_threads(groups, T * n * K * u);
        ptrdiff_t q;
        RNN_EACH_GROUP(groups, q,
                       RFN(backward_rows)(g, gt, &p, ut, Utp, dy, dZ, dZr, dh, dc, dh0 != NULL,
                                          acc + q * na, q, groups));
        for (q = 1; q < groups; q++) /* the groups' bias sums, in group order */
            for (j = 0; j < na; j++) acc[j] += acc[q * na + j];
    }
    /* the weight gradients of all steps, each one product; both read dZ (but the GRU's dU),
     * packed once for the two when one of them takes the packed path (products of at most
     * direct_m rows run on direct tiles, which read dZ in place) */
    {
        const fnn_arch *arch = fnn_active_arch();
        const ptrdiff_t direct_m = FT_DBL ? arch->d.direct_m : arch->s.direct_m;
        const size_t pb = gru || (d <= direct_m && u <= direct_m)
                              ? 0 : fnn_gemm_packed_b_size(FT_DBL, T * n, K);
        void *dzp_raw = pb ? malloc(pb * sizeof(FT) + FNN_ALIGN) : NULL;
        FT *dZp = NULL;
        if (dzp_raw) {
            dZp = (FT *)(((uintptr_t)dzp_raw + FNN_ALIGN - 1) & ~(uintptr_t)(FNN_ALIGN - 1));
            PACK_B(0, T * n, K, dZ, K, dZp);
        }
        GEMM_BP(1, 0, d, K, T * n, (FT)1, p.xt, d, dZ, K, dZp, (FT)0, dW, K, NULL);
        GEMM_BP(1, 0, u, K, T * n, (FT)1, p.H, u, gru ? dZr : dZ, K, dZp, (FT)0, dU, K, NULL);
        free(dzp_raw);
    }
    for (j = 0; j < na; j++) db[j] = (FT)acc[j];
    if (dx) {
        RFN(gemm)(0, 1, T * n, d, K, dZ, K, W, K, (FT)0, dxt, d, NULL);
        for (s = 0; s < T; s++) {
            const ptrdiff_t t = g->reverse ? T - 1 - s : s;
            for (bb = 0; bb < n; bb++)
                memcpy(dx + (bb * T + t) * d, dxt + (s * n + bb) * d, (size_t)d * sizeof(FT));
        }
    }
    if (dh0) memcpy(dh0, dh, (size_t)(n * u) * sizeof(FT));
    if (dc0) {
        if (lstm) memcpy(dc0, dc, (size_t)(n * u) * sizeof(FT));
        else memset(dc0, 0, (size_t)(n * u) * sizeof(FT));
    }
    free(utp_raw);
    fnn_ftz_leave(mxcsr);
    free(acc);
    return 1;
}
