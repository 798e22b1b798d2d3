/*
 * The recurrent driver of fnn_rnn.h for one element type. Required macros: FT, RFN(name) (the
 * public name with its type suffix), GEMM (fnn_sgemm or fnn_dgemm), GEMM_BP and PACK_B (its
 * pre-packed-B twins), FT_DBL (0 float, 1 double), EPI (its epilogue struct), GATES (the flavour
 * table's type) and GATES_OF() (the table of the flavour in use).
 */

/* The workspace's parts (see fnn_rnn.h): xt's rows ldx apart and H's ldh apart. The LSTM keeps
 * them side by side, XH (T+1, n, d+u): row (s, b) is [x_s | h_s-1] (the last x row unused), so
 * a step's whole product and the weight gradients' read both as one matrix. */
typedef struct {
    FT *xt, *G, *H, *C, *AUX, *S;
    FT *R; /* the states as the recurrent product reads them: H, or with a recurrent dropout
            * mask the masked states (T+1, n, u), ldr apart (the LSTM's: in XH, whose plain
            * states then move to the workspace's end) */
    ptrdiff_t ldx, ldh, ldr;
} RFN(parts);

static RFN(parts) RFN(split)(const fnn_rnn_geom *g, FT *ws)
{
    const ptrdiff_t n = g->n, T = g->T, d = g->d, u = g->u, K = fnn_rnn_gates(g->cell) * u;
    RFN(parts) p;
    p.xt = ws;
    if (g->cell == FNN_RNN_LSTM) {
        p.ldx = p.ldh = d + u;
        p.H = p.xt + d;
        p.G = p.xt + (T + 1) * n * (d + u);
    } else {
        p.ldx = d;
        p.ldh = u;
        p.G = p.xt + T * n * d;
        p.H = p.G + (g->cell == FNN_RNN_SIMPLE ? 0 : T * n * K);
    }
    p.C = (g->cell == FNN_RNN_LSTM ? p.G + T * n * K : p.H + (T + 1) * n * u);
    p.AUX = p.C + (g->cell == FNN_RNN_LSTM ? (T + 1) * n * u : 0);
    p.S = p.AUX + (g->cell == FNN_RNN_SIMPLE ? 0 : T * n * u);
    p.R = p.H;
    p.ldr = p.ldh;
    if (g->rec_mask) {
        FT *end = p.S + (g->cell == FNN_RNN_GRU || g->cell == FNN_RNN_GRU_RB ? n * K : 0);
        if (g->cell == FNN_RNN_LSTM) {
            p.H = end;
            p.ldh = u;
        } else {
            p.R = end;
            p.ldr = u;
        }
    }
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

/* The flavour's 4-row step product (gates table's step4) from this many columns, a multiple of
 * 16 (the GEMM's direct tiles then all hold 2 vectors, whose sums take one accumulator, as
 * step4's do; a last tile of one vector splits k in two): an LSTM's forward of 64 units (256
 * columns, k = d + u) 85 -> 99 GFLOP/s; its backward (64 columns, k 256), 97 on the GEMM's
 * tiles, ran at 93 (2 x 3 vectors then 2 per 4 rows). */
#define FNN_RNN_STEP4_COLS 128

/* Columns per call of the row updates: a whole register block of every flavour (8 vectors). */
#define FNN_RNN_SMALL_COLS 128

/* The per-step B operand (U, or U^T backward; k x m) and its copy laid out once for all steps
 * of a call, 64-byte aligned (unaligned slivers cost 15-20%). Bp NULL: B is read as it is. */
typedef struct {
    const FT *B, *Bp;
    ptrdiff_t ld; /* Bp's row stride when it is B with padded rows, else 0 */
    void *raw;    /* Bp's allocation (free it) */
} RFN(stepb);

/* A row stride of at least m values whose rows start on cache lines and are an odd number of
 * lines apart, so k rows spread over all of L1's sets (rows 1 KiB apart, as U's are with 64
 * units, fall into a sixteenth of them) */
static ptrdiff_t RFN(spread_ld)(ptrdiff_t m)
{
    const ptrdiff_t line = 64 / (ptrdiff_t)sizeof(FT);
    const ptrdiff_t ld = (m + line - 1) / line * line;
    return (ld / line) % 2 ? ld : ld + line;
}

/* The per-step B (k x m, row stride m): the k1 rows of B1, then the k2 rows of B2 (B2 NULL when
 * k2 is 0; the LSTM's [W; U]), laid out for n rows per step:
 * - the row updates (n <= FNN_RNN_SMALL_ROWS): column blocks of FNN_RNN_SMALL_COLS, each
 *   (k x width) contiguous: read in place, the rows of a block 1 KiB apart (U of 64 units) fill
 *   only half of L1's sets, so no block survived from one step to the next;
 * - products the GEMM runs on direct tiles (fnn_gemm_b_in_place: a group of up to 32 rows on
 *   AVX2): rows spread over L1's sets (spread_ld); the backward step of an LSTM of 64 units
 *   (16 rows x 256 x 64) ran 5% faster;
 * - other products: packed as the GEMM would pack it at each step.
 * The same values either way, so the same results. Bp stays NULL when B1 alone is read as it is
 * (one block of contiguous rows), or when out of memory (then B too when there are two). */
static RFN(stepb) RFN(pack_steps_b)(ptrdiff_t n, ptrdiff_t m, const FT *B1, ptrdiff_t k1,
                                    const FT *B2, ptrdiff_t k2)
{
    const ptrdiff_t k = k1 + k2;
    const int small = n <= FNN_RNN_SMALL_ROWS;
    const int spread = !small && fnn_gemm_b_in_place(FT_DBL, n, m, k);
    const ptrdiff_t ld = spread ? RFN(spread_ld)(m) : 0;
    const size_t values = small ? (size_t)k * (size_t)m
                          : spread ? (size_t)k * (size_t)ld
                                   : fnn_gemm_packed_b_size(FT_DBL, k, m);
    /* packed from two sources: B itself is made whole too, after the packed copy (the GEMM
     * reads the pack, or B on the paths that read it in place) */
    const size_t whole = (!small && !spread && B2) ? (size_t)k * (size_t)m : 0;
    RFN(stepb) sb;
    FT *Bp;
    ptrdiff_t j0, p;
#define RNN_B_ROW(p) ((p) < k1 ? B1 + (p) * m : B2 + ((p) - k1) * m)
    sb.B = B2 ? NULL : B1;
    sb.Bp = NULL;
    sb.ld = 0;
    sb.raw = NULL;
    if (values == 0 || (!B2 && small && m <= FNN_RNN_SMALL_COLS)) return sb;
    sb.raw = malloc((values + whole) * sizeof(FT) + FNN_ALIGN);
    if (sb.raw == NULL) return sb;
    Bp = (FT *)(((uintptr_t)sb.raw + FNN_ALIGN - 1) & ~(uintptr_t)(FNN_ALIGN - 1));
    if (small) {
        for (j0 = 0; j0 < m; j0 += FNN_RNN_SMALL_COLS) {
            const ptrdiff_t w = m - j0 < FNN_RNN_SMALL_COLS ? m - j0 : FNN_RNN_SMALL_COLS;
            for (p = 0; p < k; p++)
                memcpy(Bp + j0 * k + p * w, RNN_B_ROW(p) + j0, (size_t)w * sizeof(FT));
        }
    } else if (spread) {
        for (p = 0; p < k; p++) memcpy(Bp + p * ld, RNN_B_ROW(p), (size_t)m * sizeof(FT));
        sb.ld = ld;
    } else {
        if (whole) {
            FT *B = Bp + values;
            for (p = 0; p < k; p++) memcpy(B + p * m, RNN_B_ROW(p), (size_t)m * sizeof(FT));
            sb.B = B;
        }
        PACK_B(0, k, m, sb.B, m, Bp);
    }
#undef RNN_B_ROW
    sb.Bp = Bp;
    return sb;
}

/* C := beta C + A B (+ bias) for one step's n rows, B (k x m) as pack_steps_b laid it out (the
 * callers check that B or Bp is there). The row updates read all of B at each step, more than
 * L1 holds once it passes ~48 KiB (an LSTM of 64 units: 64 KiB), so odd steps (s) take the
 * column blocks last to first: the block the previous step read last is still in L1 (in the
 * same order each step would evict every block just before its reuse). Each column's sum is
 * the same either way. */
static void RFN(step_gemm)(const GATES *gt, ptrdiff_t s, ptrdiff_t n, ptrdiff_t m, ptrdiff_t k,
                           const FT *A, ptrdiff_t lda, const RFN(stepb) *sb, FT beta, FT *C,
                           ptrdiff_t ldc, const FT *bias)
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
            if (sb->Bp)
                gt->small_gemm(n, w, k, A, lda, sb->Bp + j0 * k, w, beta, C + j0, ldc);
            else
                gt->small_gemm(n, w, k, A, lda, sb->B + j0, m, beta, C + j0, ldc);
        }
    } else {
        EPI ep;
        memset(&ep, 0, sizeof ep);
        ep.bias = bias;
        ep.act = FNN_ACT_LINEAR;
        if (sb->ld && gt->step4 && n % 4 == 0 && m % 16 == 0 && m >= FNN_RNN_STEP4_COLS &&
            (beta == (FT)0 || beta == (FT)1))
            gt->step4(n, m, k, A, lda, sb->Bp, sb->ld, beta != (FT)0, C, ldc, bias);
        else if (sb->ld)
            GEMM(0, 0, n, m, k, (FT)1, A, lda, sb->Bp, sb->ld, beta, C, ldc, bias ? &ep : NULL);
        else
            GEMM_BP(0, 0, n, m, k, (FT)1, A, lda, sb->B, m, sb->Bp, beta, C, ldc,
                    bias ? &ep : NULL);
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

/* Whether sample b takes step s (its time step in input order: the reverse reads T-1-s). */
static int RFN(step_on)(const fnn_rnn_geom *g, ptrdiff_t b, ptrdiff_t s)
{
    return g->mask[b * g->T + (g->reverse ? g->T - 1 - s : s)] != 0;
}

/* The masked rows of step s among rows [r0, r0+m): their states stay those of step s-1
 * (h_s := h_s-1, the LSTM's c_s := c_s-1), whatever the step computed. */
static void RFN(carry_masked)(const fnn_rnn_geom *g, const RFN(parts) *p, ptrdiff_t s,
                              ptrdiff_t r0, ptrdiff_t m)
{
    const ptrdiff_t n = g->n, u = g->u, ldh = p->ldh;
    ptrdiff_t b;
    for (b = r0; b < r0 + m; b++) {
        if (RFN(step_on)(g, b, s)) continue;
        memcpy(p->H + ((s + 1) * n + b) * ldh, p->H + (s * n + b) * ldh, (size_t)u * sizeof(FT));
        if (g->cell == FNN_RNN_LSTM)
            memcpy(p->C + ((s + 1) * n + b) * u, p->C + (s * n + b) * u, (size_t)u * sizeof(FT));
    }
}

/* The recurrence of the forward on rows [r0, r1) of the batch, group q of `groups` (see
 * fnn_rnn_groups): rows are independent through time, so groups run on threads with no
 * synchronisation per step. B: U, or with `fused` (an LSTM on the GEMM) [W; U], whose product
 * with a step's [x_s | h_s-1] rows is the step's whole pre-activation (plus b): one product of
 * d+u terms instead of the input projection's GEMM of d (short, so the tiles' loads and stores
 * weigh) and the step's of u. The GRU_RB's B is U_zr (u x 2u), Bh its U_h (u x u). */
static void RFN(forward_rows)(const fnn_rnn_geom *g, const GATES *gt, const RFN(parts) *p,
                              const RFN(stepb) *B, const RFN(stepb) *Bh, int fused,
                              const FT *W, const FT *b, const FT *h0, ptrdiff_t q,
                              ptrdiff_t groups)
{
    const ptrdiff_t n = g->n, T = g->T, d = g->d, u = g->u, K = fnn_rnn_gates(g->cell) * u;
    const ptrdiff_t r0 = q * n / groups, m = (q + 1) * n / groups - r0, ldh = p->ldh;
    ptrdiff_t s;
    for (s = 0; s < T; s++) {
        const FT *hp = p->H + (s * n + r0) * ldh, *xs = p->xt + (s * n + r0) * p->ldx;
        FT *hn = p->H + ((s + 1) * n + r0) * ldh, *gs = p->G + (s * n + r0) * K;
        /* the state the recurrent product reads: h_s-1, or with recurrent dropout its masked
         * copy (kept for the backward's dU) */
        const FT *hr = p->R + (s * n + r0) * p->ldr;
        const ptrdiff_t ldr = p->ldr;
        /* a zero initial state adds nothing to the first step's input projection */
        const int rec = s > 0 || h0;
        if (g->rec_mask) {
            const FT *rm = (const FT *)g->rec_mask + r0 * u;
            FT *hm = p->R + (s * n + r0) * ldr;
            ptrdiff_t bb, j;
            for (bb = 0; bb < m; bb++)
                for (j = 0; j < u; j++) hm[bb * ldr + j] = hp[bb * ldh + j] * rm[bb * u + j];
        }
        switch (g->cell) {
        case FNN_RNN_SIMPLE:
            if (rec) RFN(step_gemm)(gt, s, m, u, u, hr, ldr, B, (FT)1, hn, ldh, NULL);
            gt->act(hn, m * u, g->act); /* ldh == u */
            break;
        case FNN_RNN_LSTM:
            if (fused && rec)
                RFN(step_gemm)(gt, s, m, K, d + u, xs, p->ldx, B, (FT)0, gs, K, b);
            else if (fused)
                RFN(gemm)(0, 0, m, K, d, xs, p->ldx, W, K, (FT)0, gs, K, b);
            else if (rec)
                RFN(step_gemm)(gt, s, m, K, u, hr, ldr, B, (FT)1, gs, K, NULL);
            gt->lstm_fwd(gs, p->C + (s * n + r0) * u, p->C + ((s + 1) * n + r0) * u,
                         p->AUX + (s * n + r0) * u, hn, ldh, m, u, g->act, g->rec);
            break;
        case FNN_RNN_GRU_RB: {
            /* z, r from h_s-1 U_zr; the candidate's product reads r h_s-1 (kept in AUX) */
            FT *ss = p->S + r0 * K, *rh = p->AUX + (s * n + r0) * u;
            RFN(step_gemm)(gt, s, m, 2 * u, u, hr, ldr, B, (FT)0, ss, K, NULL);
            gt->gru_rb_fwd1(gs, ss, hr, rh, m, u, g->rec);
            RFN(step_gemm)(gt, s, m, u, u, rh, u, Bh, (FT)0, ss + 2 * u, K, NULL);
            gt->gru_rb_fwd2(gs, ss, hp, hn, m, u, g->act);
            break;
        }
        default:
            RFN(step_gemm)(gt, s, m, K, u, hr, ldr, B, (FT)0, p->S + r0 * K, K, b + K);
            gt->gru_fwd(gs, p->S + r0 * K, hp, p->AUX + (s * n + r0) * u, hn, m, u, g->act,
                        g->rec);
            break;
        }
        if (g->mask) RFN(carry_masked)(g, p, s, r0, m);
    }
}

int RFN(fnn_rnn_forward)(const fnn_rnn_geom *g, const FT *x, const FT *W, const FT *U,
                         const FT *b, const FT *h0, const FT *c0, FT *ws, FT *y, FT *h_last,
                         FT *c_last)
{
    const ptrdiff_t n = g->n, T = g->T, d = g->d, u = g->u, K = fnn_rnn_gates(g->cell) * u;
    const ptrdiff_t groups = fnn_rnn_groups(n, u * K * (ptrdiff_t)sizeof(FT));
    const int fused = g->cell == FNN_RNN_LSTM && n / groups > FNN_RNN_SMALL_ROWS;
    const int rb = g->cell == FNN_RNN_GRU_RB;
    const GATES *gt = GATES_OF();
    const RFN(parts) p = RFN(split)(g, ws);
    const ptrdiff_t ldh = p.ldh;
    unsigned int mxcsr;
    RFN(stepb) B, Bh;
    FT *Ucols = NULL; /* the GRU_RB's U_zr (u x 2u) then U_h (u x u), each contiguous */
    ptrdiff_t s, bb;
    if (n == 0) return 1;
    Bh.B = Bh.Bp = NULL;
    Bh.ld = 0;
    Bh.raw = NULL;
    if (rb) {
        Ucols = (FT *)malloc((size_t)(u * K) * sizeof(FT));
        if (!Ucols) return 0;
        for (bb = 0; bb < u; bb++) {
            memcpy(Ucols + bb * 2 * u, U + bb * K, (size_t)(2 * u) * sizeof(FT));
            memcpy(Ucols + 2 * u * u + bb * u, U + bb * K + 2 * u, (size_t)u * sizeof(FT));
        }
        B = RFN(pack_steps_b)(n / groups, 2 * u, Ucols, u, NULL, 0);
        Bh = RFN(pack_steps_b)(n / groups, u, Ucols + 2 * u * u, u, NULL, 0);
    } else {
        B = fused ? RFN(pack_steps_b)(n / groups, K, W, d, U, u)
                  : RFN(pack_steps_b)(n / groups, K, U, u, NULL, 0);
        if (!B.B && !B.Bp) return 0;
    }
    mxcsr = fnn_ftz_enter();
    /* the input in step order, time-major */
    for (s = 0; s < T; s++) {
        const ptrdiff_t t = g->reverse ? T - 1 - s : s;
        for (bb = 0; bb < n; bb++)
            memcpy(p.xt + (s * n + bb) * p.ldx, x + (bb * T + t) * d, (size_t)d * sizeof(FT));
    }
    if (g->in_mask) { /* dropout: x_t's mask, the same at every step */
        const FT *im = (const FT *)g->in_mask;
        ptrdiff_t j;
        for (s = 0; s < T; s++)
            for (bb = 0; bb < n; bb++) {
                FT *xr = p.xt + (s * n + bb) * p.ldx;
                for (j = 0; j < d; j++) xr[j] *= im[bb * d + j];
            }
    }
    /* the input projection of every step, with the (input) bias (fused: at each step) */
    if (!fused)
        RFN(gemm)(0, 0, T * n, K, d, p.xt, p.ldx, W, K, (FT)0,
                  g->cell == FNN_RNN_SIMPLE ? p.H + n * u : p.G, K, b);
    for (bb = 0; bb < n; bb++) {
        if (h0) memcpy(p.H + bb * ldh, h0 + bb * u, (size_t)u * sizeof(FT));
        else memset(p.H + bb * ldh, 0, (size_t)u * sizeof(FT));
    }
    if (g->cell == FNN_RNN_LSTM) {
        if (c0) memcpy(p.C, c0, (size_t)(n * u) * sizeof(FT));
        else memset(p.C, 0, (size_t)(n * u) * sizeof(FT));
    }
    {
        const int nt = fnn_rnn_threads(groups, T * n * K * u);
        ptrdiff_t q;
        RNN_EACH_GROUP(groups, q,
                       RFN(forward_rows)(g, gt, &p, &B, &Bh, fused, W, b, h0, q, groups));
    }
    for (bb = 0; bb < n; bb++) {
        if (g->seq) {
            for (s = 0; s < T; s++) {
                if (g->mask && g->zero_masked && !RFN(step_on)(g, bb, s))
                    memset(y + (bb * T + s) * u, 0, (size_t)u * sizeof(FT));
                else
                    memcpy(y + (bb * T + s) * u, p.H + ((s + 1) * n + bb) * ldh,
                           (size_t)u * sizeof(FT));
            }
        } else {
            memcpy(y + bb * u, p.H + (T * n + bb) * ldh, (size_t)u * sizeof(FT));
        }
        if (h_last)
            memcpy(h_last + bb * u, p.H + (T * n + bb) * ldh, (size_t)u * sizeof(FT));
    }
    if (c_last && g->cell == FNN_RNN_LSTM)
        memcpy(c_last, p.C + T * n * u, (size_t)(n * u) * sizeof(FT));
    free(B.raw);
    free(Bh.raw);
    free(Ucols);
    fnn_ftz_leave(mxcsr);
    return 1;
}

/* The gate gradients (dzs; the GRU's recurrent side dzr too) of the rows among [r0, r0+m)
 * that skip step s: 0, so they add nothing to the weights', bias' and input's gradients. */
static void RFN(zero_skipped)(const fnn_rnn_geom *g, ptrdiff_t s, ptrdiff_t r0, ptrdiff_t m,
                              FT *dzs, FT *dzr)
{
    const ptrdiff_t K = fnn_rnn_gates(g->cell) * g->u;
    ptrdiff_t b;
    for (b = r0; b < r0 + m; b++) {
        if (RFN(step_on)(g, b, s)) continue;
        memset(dzs + (b - r0) * K, 0, (size_t)K * sizeof(FT));
        if (dzr) memset(dzr + (b - r0) * K, 0, (size_t)K * sizeof(FT));
    }
}

/* Backpropagation through time on rows [r0, r1) of the batch, group q of `groups`: the gate
 * derivatives into dZ (and dZr), dh and dc carried back, the bias sums into acc (this group's:
 * K, and the GRU's recurrent K after). ut: U^T's step operand (the GRU_RB's: U_zr^T, 2u x u,
 * and uth U_h^T; its dc is the step's dL/d(r h) scratch). */
static void RFN(backward_rows)(const fnn_rnn_geom *g, const GATES *gt, const RFN(parts) *p,
                               const RFN(stepb) *ut, const RFN(stepb) *uth, const FT *dy,
                               FT *dZ, FT *dZr, FT *dh, FT *dc, FT *held, FT *rtmp,
                               int want_dh0, double *acc, ptrdiff_t q, ptrdiff_t groups)
{
    const ptrdiff_t n = g->n, T = g->T, u = g->u, K = fnn_rnn_gates(g->cell) * u;
    const ptrdiff_t r0 = q * n / groups, m = (q + 1) * n / groups - r0;
    FT *dhq = dh + r0 * u, *dcq = dc + r0 * u;
    const FT *rm = g->rec_mask ? (const FT *)g->rec_mask + r0 * u : NULL;
    ptrdiff_t s, bb, j;
    for (s = T - 1; s >= 0; s--) {
        FT *dzs = dZ + (s * n + r0) * K, *dzr = dZr + (s * n + r0) * K;
        int skips = 0; /* rows of this group that skip the step (a mask) */
        if (g->mask) {
            for (bb = r0; bb < r0 + m; bb++) {
                if (RFN(step_on)(g, bb, s)) continue;
                skips = 1;
                break;
            }
        }
        if (g->seq) {
            for (bb = r0; bb < r0 + m; bb++) {
                const FT *src = dy + (bb * T + s) * u;
                FT *dst = dh + bb * u;
                if (skips && g->zero_masked && !RFN(step_on)(g, bb, s)) continue; /* a 0 out */
                for (j = 0; j < u; j++) dst[j] += src[j];
            }
        } else if (s == T - 1) {
            for (j = 0; j < m * u; j++) dhq[j] += dy[r0 * u + j];
        }
        /* a skipped step passes dh and dc on as they are: held here across the step */
        if (skips) {
            for (bb = r0; bb < r0 + m; bb++) {
                if (RFN(step_on)(g, bb, s)) continue;
                memcpy(held + bb * u, dh + bb * u, (size_t)u * sizeof(FT));
                if (g->cell == FNN_RNN_LSTM)
                    memcpy(held + (n + bb) * u, dc + bb * u, (size_t)u * sizeof(FT));
            }
        }
        /* the recurrent product feeds the step before; at the first step only dh0 wants it */
        switch (g->cell) {
        case FNN_RNN_SIMPLE:
            /* H's rows are contiguous (ldh == u) but the LSTM's */
            gt->simple_bwd(p->H + ((s + 1) * n + r0) * u, dhq, dzs, m * u, g->act);
            if (skips) RFN(zero_skipped)(g, s, r0, m, dzs, NULL);
            if (s > 0 || want_dh0) {
                RFN(step_gemm)(gt, s, m, u, K, dzs, K, ut, (FT)0, dhq, u, NULL);
                if (rm) /* the product met the masked h_{t-1} */
                    for (j = 0; j < m * u; j++) dhq[j] *= rm[j];
            }
            break;
        case FNN_RNN_LSTM:
            gt->lstm_bwd(dzs, p->C + (s * n + r0) * u, p->AUX + (s * n + r0) * u, dhq, dcq, m,
                         u, g->act, g->rec); /* dzs: the step's gates, replaced */
            if (skips) RFN(zero_skipped)(g, s, r0, m, dzs, NULL);
            if (s > 0 || want_dh0) {
                RFN(step_gemm)(gt, s, m, u, K, dzs, K, ut, (FT)0, dhq, u, NULL);
                if (rm)
                    for (j = 0; j < m * u; j++) dhq[j] *= rm[j];
            }
            break;
        default:
            gt->gru_bwd(p->G + (s * n + r0) * K, p->H + (s * n + r0) * u,
                        p->AUX + (s * n + r0) * u, dhq, dzs, dzr, m, u, g->act, g->rec);
            if (skips) RFN(zero_skipped)(g, s, r0, m, dzs, dzr);
            if ((s > 0 || want_dh0) && rm) {
                /* dh_{t-1} = dh_t z (the blend's unmasked h) + mask (dZr U^T) */
                FT *rt = rtmp + r0 * u;
                RFN(step_gemm)(gt, s, m, u, K, dzr, K, ut, (FT)0, rt, u, NULL);
                for (j = 0; j < m * u; j++) dhq[j] += rm[j] * rt[j];
            } else if (s > 0 || want_dh0) {
                RFN(step_gemm)(gt, s, m, u, K, dzr, K, ut, (FT)1, dhq, u, NULL);
            }
            gt->colsum(dzr, m, K, acc + K);
            break;
        case FNN_RNN_GRU_RB: {
            const FT *gs = p->G + (s * n + r0) * K, *hr = p->R + (s * n + r0) * p->ldr;
            gt->gru_rb_bwd1(gs, p->H + (s * n + r0) * u, dhq, dzs, m, u, g->act, g->rec);
            /* dL/d(r h_s-1) = dZh U_h^T, into dc (scratch here) */
            RFN(step_gemm)(gt, s, m, u, u, dzs + 2 * u, K, uth, (FT)0, dcq, u, NULL);
            gt->gru_rb_bwd2(gs, hr, dcq, dzs, m, u, g->rec);
            if (skips) RFN(zero_skipped)(g, s, r0, m, dzs, NULL);
            if (s > 0 || want_dh0) {
                /* dh_{t-1} = dh_t z + mask (dL/d(r h) r + dZzr U_zr^T) */
                RFN(step_gemm)(gt, s, m, u, 2 * u, dzs, K, ut, (FT)1, dcq, u, NULL);
                if (rm)
                    for (j = 0; j < m * u; j++) dhq[j] += rm[j] * dcq[j];
                else
                    for (j = 0; j < m * u; j++) dhq[j] += dcq[j];
            }
            break;
        }
        }
        if (skips) {
            for (bb = r0; bb < r0 + m; bb++) {
                if (RFN(step_on)(g, bb, s)) continue;
                memcpy(dh + bb * u, held + bb * u, (size_t)u * sizeof(FT));
                if (g->cell == FNN_RNN_LSTM)
                    memcpy(dc + bb * u, held + (n + bb) * u, (size_t)u * sizeof(FT));
            }
        }
        gt->colsum(dzs, m, K, acc);
    }
}

int RFN(fnn_rnn_backward)(const fnn_rnn_geom *g, const FT *W, const FT *U, FT *ws,
                          const FT *dy, const FT *dh_last, const FT *dc_last, FT *bws, FT *ut,
                          FT *dW, FT *dU, FT *db, FT *dx, FT *dh0, FT *dc0)
{
    const ptrdiff_t n = g->n, T = g->T, d = g->d, u = g->u, K = fnn_rnn_gates(g->cell) * u;
    const GATES *gt = GATES_OF();
    const RFN(parts) p = RFN(split)(g, ws);
    const int gru = g->cell == FNN_RNN_GRU, lstm = g->cell == FNN_RNN_LSTM,
              rb = g->cell == FNN_RNN_GRU_RB;
    const ptrdiff_t groups = fnn_rnn_groups(n, u * K * (ptrdiff_t)sizeof(FT));
    const ptrdiff_t na = gru ? 2 * K : K; /* bias sums per group */
    /* the gate gradients: the LSTM's in place of its gates (see fnn_rnn.h), the others' in bws */
    FT *dZ = lstm ? p.G : bws, *dZr = bws + (lstm ? 0 : T * n * K);
    FT *dxt = dZr + (gru ? T * n * K : 0);
    FT *dh = dxt + T * n * d, *dc = dh + n * u;
    double *acc;
    FT *held = NULL; /* with a mask: the skipping rows' dh (n, u) and dc (n, u) across a step */
    FT *rtmp = NULL;  /* the GRU's with recurrent dropout: the recurrent product (n, u) */
    RFN(stepb) Uts, Uhts;
    unsigned int mxcsr;
    ptrdiff_t s, bb, i, j;
    /* the bias gradients' sums (the GRU's recurrent bias: the second K), one set per group */
    acc = (double *)calloc((size_t)(groups * na), sizeof(double));
    if (!acc) return 0;
    if (g->mask && n > 0) {
        held = (FT *)malloc((size_t)(2 * n * u) * sizeof(FT));
        if (!held) {
            free(acc);
            return 0;
        }
    }
    if (g->rec_mask && gru && n > 0) {
        rtmp = (FT *)malloc((size_t)(n * u) * sizeof(FT));
        if (!rtmp) {
            free(held);
            free(acc);
            return 0;
        }
    }
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
    /* the GRU_RB's U^T: U_zr^T (2u rows), then U_h^T (u rows) */
    Uts = RFN(pack_steps_b)(n / groups, u, ut, rb ? 2 * u : K, NULL, 0);
    Uhts.B = Uhts.Bp = NULL;
    Uhts.ld = 0;
    Uhts.raw = NULL;
    if (rb) Uhts = RFN(pack_steps_b)(n / groups, u, ut + 2 * u * u, u, NULL, 0);
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
                       RFN(backward_rows)(g, gt, &p, &Uts, &Uhts, dy, dZ, dZr, dh, dc, held,
                                          rtmp, dh0 != NULL, acc + q * na, q, groups));
        for (q = 1; q < groups; q++) /* the groups' bias sums, in group order */
            for (j = 0; j < na; j++) acc[j] += acc[q * na + j];
    }
    /* the weight gradients of all steps. The LSTM: [dW; dU] = XH[0:T]^T dZ, one product of d+u
     * rows (whole micro-kernel tiles where d and u alone leave edges) split after. The others:
     * dW = xt^T dZ and dU = H[0:T]^T dZ (the GRU's: dZr), dZ packed once for the two when one
     * of them takes the packed path (products of at most direct_m rows run on direct tiles,
     * which read dZ in place). */
    if (lstm) {
        FT *dWU = (FT *)malloc((size_t)((d + u) * K) * sizeof(FT));
        if (dWU == NULL) {
            free(Uts.raw);
            free(Uhts.raw);
            fnn_ftz_leave(mxcsr);
            free(rtmp);
            free(held);
            free(acc);
            return 0;
        }
        GEMM_BP(1, 0, d + u, K, T * n, (FT)1, p.xt, p.ldx, dZ, K, NULL, (FT)0, dWU, K, NULL);
        memcpy(dW, dWU, (size_t)(d * K) * sizeof(FT));
        memcpy(dU, dWU + d * K, (size_t)(u * K) * sizeof(FT));
        free(dWU);
    } else {
        const fnn_arch *arch = fnn_active_arch();
        const ptrdiff_t direct_m = FT_DBL ? arch->d.direct_m : arch->s.direct_m;
        const size_t pb = gru || rb || (d <= direct_m && u <= direct_m)
                              ? 0 : fnn_gemm_packed_b_size(FT_DBL, T * n, K);
        void *dzp_raw = pb ? malloc(pb * sizeof(FT) + FNN_ALIGN) : NULL;
        FT *dZp = NULL;
        if (dzp_raw) {
            dZp = (FT *)(((uintptr_t)dzp_raw + FNN_ALIGN - 1) & ~(uintptr_t)(FNN_ALIGN - 1));
            PACK_B(0, T * n, K, dZ, K, dZp);
        }
        GEMM_BP(1, 0, d, K, T * n, (FT)1, p.xt, p.ldx, dZ, K, dZp, (FT)0, dW, K, NULL);
        if (rb) { /* dU_zr = R^T dZzr, dU_h = (r h)^T dZh */
            GEMM_BP(1, 0, u, 2 * u, T * n, (FT)1, p.R, p.ldr, dZ, K, NULL, (FT)0, dU, K, NULL);
            GEMM_BP(1, 0, u, u, T * n, (FT)1, p.AUX, u, dZ + 2 * u, K, NULL, (FT)0, dU + 2 * u,
                    K, NULL);
        } else {
            GEMM_BP(1, 0, u, K, T * n, (FT)1, p.R, p.ldr, gru ? dZr : dZ, K, dZp, (FT)0, dU,
                    K, NULL);
        }
        free(dzp_raw);
    }
    for (j = 0; j < na; j++) db[j] = (FT)acc[j];
    if (dx) {
        RFN(gemm)(0, 1, T * n, d, K, dZ, K, W, K, (FT)0, dxt, d, NULL);
        for (s = 0; s < T; s++) {
            const ptrdiff_t t = g->reverse ? T - 1 - s : s;
            for (bb = 0; bb < n; bb++) {
                FT *dxr = dx + (bb * T + t) * d;
                memcpy(dxr, dxt + (s * n + bb) * d, (size_t)d * sizeof(FT));
                if (g->in_mask) {
                    const FT *im = (const FT *)g->in_mask + bb * d;
                    for (j = 0; j < d; j++) dxr[j] *= im[j];
                }
            }
        }
    }
    if (dh0) memcpy(dh0, dh, (size_t)(n * u) * sizeof(FT));
    if (dc0) {
        if (lstm) memcpy(dc0, dc, (size_t)(n * u) * sizeof(FT));
        else memset(dc0, 0, (size_t)(n * u) * sizeof(FT));
    }
    free(Uts.raw);
    free(Uhts.raw);
    free(rtmp);
    free(held);
    fnn_ftz_leave(mxcsr);
    free(acc);
    return 1;
}
