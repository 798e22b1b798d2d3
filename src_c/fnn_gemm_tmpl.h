/*
 * The GEMM driver, written once and instantiated for float and double by fnn_gemm.c.
 *
 * Goto/BLIS structure, for one thread's part C[m x n] of the output:
 *
 *   for jc over n in NC columns:                      B panel (KC x NC) lives in L2/L3
 *     for pc over k in KC steps:                      (k block boundaries depend on k only)
 *       pack op(B)[pc:pc+kc, jc:jc+nc] into NR-column slivers              -> Bp
 *       for ic over m in MC rows:
 *         pack op(A)[ic:ic+mc, pc:pc+kc] into MR-row slivers               -> Ap (L2)
 *         for jr over nc in NR:                       one B sliver (kc x NR) stays in L1
 *           for ir over mc in MR:
 *             micro-kernel: C tile (MR x NR) += Ap sliver @ Bp sliver
 *             if last k block: bias + activation (and max |C|) on the tile, in registers when
 *             the flavour has a fused kernel (AVX-512), else while the tile is in L1
 *
 * Packing absorbs the transposes: op(A)[i, p] = A[i*rsa + p*csa], op(B)[p, j] = B[p*rsb + j*csb].
 * Threads each own a rectangle of C whose edges fall on multiples of MR / NR, so every micro-tile
 * is exactly the same computation whatever the thread count (bitwise-reproducible results).
 *
 * A non-NULL `amax` asks for the largest |C| as well (fnn_epilogue_f32.amax): it is folded in by the
 * epilogue of each tile, as the tile is finished, and threads combine their maxima at the end.
 *
 * Required macros: FT, UT and UT_ABS (see fnn_epi_tmpl.h),
 * GFN(name), EPI_NAME, KERN (fnn_kern_f32/64), ARCH_KERN(arch) (->s or ->d), FT_EXP, FT_TANH.
 */

/* C[m x n] := beta * C, never reading C when beta == 0. */
static void GFN(scale)(ptrdiff_t m, ptrdiff_t n, FT beta, FT *C, ptrdiff_t ldc)
{
    ptrdiff_t i, j;
    if (beta == (FT)1) return;
    for (i = 0; i < m; i++) {
        FT *c = C + i * ldc;
        if (beta == (FT)0)
            for (j = 0; j < n; j++) c[j] = (FT)0;
        else
            for (j = 0; j < n; j++) c[j] *= beta;
    }
}

/* C[i, j] := act(C[i, j] + bias[j]) on an m x n block (the portable copy; each SIMD flavour
 * compiles its own from the same source, see fnn_epi_tmpl.h). */
#define EPI_FN EPI_NAME
#define EPI_STORAGE
#define EPI_TARGET
#include "fnn_epi_tmpl.h"
#undef EPI_FN
#undef EPI_STORAGE
#undef EPI_TARGET

/* A whole panel without transpose: element (p, x) = src[p*ld + x], x < len, packed into r-wide
 * slivers dst[s*r*kc + p*r + i] (x = s*r + i; the last sliver zero-padded up to r).
 * Row p is read front to back across all slivers: one sequential stream per row, which the
 * hardware prefetchers follow, instead of short strided pieces per sliver. */
static void GFN(pack_n_portable)(int r, ptrdiff_t len, ptrdiff_t kc, const FT *src, ptrdiff_t ld,
                                 FT *dst)
{
    const ptrdiff_t full = len / r, rem = len % r, step = (ptrdiff_t)r * kc;
    ptrdiff_t p, s, i;
    for (p = 0; p < kc; p++) {
        const FT *row = src + p * ld;
        FT *d = dst + p * r;
        switch (r) {
#define FNN_PACK_N_CASE(R)                                                      \
    case R:                                                                     \
        for (s = 0; s < full; s++)                                              \
            for (i = 0; i < R; i++) d[s * step + i] = row[s * R + i];           \
        break;
            FNN_PACK_N_CASE(4)
            FNN_PACK_N_CASE(6)
            FNN_PACK_N_CASE(8)
            FNN_PACK_N_CASE(12)
            FNN_PACK_N_CASE(16)
            FNN_PACK_N_CASE(32)
#undef FNN_PACK_N_CASE
        default:
            for (s = 0; s < full; s++)
                for (i = 0; i < r; i++) d[s * step + i] = row[s * r + i];
            break;
        }
        if (rem) {
            for (i = 0; i < rem; i++) d[full * step + i] = row[full * r + i];
            for (; i < r; i++) d[full * step + i] = (FT)0;
        }
    }
}

/* The untransposed pack: the flavour's own when it has one, else the portable one above. */
static inline void GFN(pack_n)(const KERN *kd, int r, ptrdiff_t len, ptrdiff_t kc, const FT *src,
                               ptrdiff_t ld, FT *dst)
{
    if (kd->pack_n)
        kd->pack_n(r, len, kc, src, ld, dst);
    else
        GFN(pack_n_portable)(r, len, kc, src, ld, dst);
}

/* Pack op(A)[0:mc, 0:kc] into MR-row slivers: Ap[s*MR*kc + p*MR + i] = op(A)[s*MR + i, p]. */
static void GFN(pack_a)(const KERN *kd, int mr, ptrdiff_t mc, ptrdiff_t kc, const FT *A,
                        ptrdiff_t rsa, ptrdiff_t csa, FT *Ap)
{
    ptrdiff_t i0;
    if (csa != 1) { /* A transposed (rsa == 1): row p of A holds op(A)[:, p] */
        GFN(pack_n)(kd, mr, mc, kc, A, csa, Ap);
        return;
    }
    for (i0 = 0; i0 < mc; i0 += mr) { /* rows of A are contiguous along p: transpose */
        const ptrdiff_t ib = (mc - i0 < mr) ? mc - i0 : mr;
        kd->pack_t(mr, ib, kc, A + i0 * rsa, rsa, Ap);
        Ap += (ptrdiff_t)mr * kc;
    }
}

/* Pack op(B)[0:kc, 0:nc] into NR-column slivers: Bp[s*NR*kc + p*NR + j] = op(B)[p, s*NR + j]. */
static void GFN(pack_b)(const KERN *kd, int nr, ptrdiff_t kc, ptrdiff_t nc, const FT *B,
                        ptrdiff_t rsb, ptrdiff_t csb, FT *Bp)
{
    ptrdiff_t j0;
    if (csb == 1) { /* B not transposed: row p of B holds op(B)[p, :] */
        GFN(pack_n)(kd, nr, nc, kc, B, rsb, Bp);
        return;
    }
    for (j0 = 0; j0 < nc; j0 += nr) { /* B transposed: columns of op(B) are rows of B */
        const ptrdiff_t jb = (nc - j0 < nr) ? nc - j0 : nr;
        kd->pack_t(nr, jb, kc, B + j0 * csb, csb, Bp);
        Bp += (ptrdiff_t)nr * kc;
    }
}

/* All micro-tiles of one packed (mc x kc) A block times one (kc x nc) B panel.  The B sliver of
 * columns jr.. starts at Bp + (jr / nr) * bstride with row stride ldb: a packed panel has
 * bstride = nr * kc, ldb = nr; an untransposed B read in place has bstride = nr, ldb = its row
 * stride, except that its last, partial sliver (fewer than nr columns) is packed into Bedge. */
static void GFN(macro_kernel)(const KERN *kd, ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, FT alpha,
                              const FT *Ap, const FT *Bp, ptrdiff_t bstride, ptrdiff_t ldb,
                              const FT *Bedge, FT beta, FT *C, ptrdiff_t ldc,
                              int do_epi, const FT *bias, int act, FT param, UT *amax)
{
    const int mr = kd->mr, nr = kd->nr;
    /* full tiles take the kernel with the epilogue fused, when there is one for this act */
    const int fused = do_epi && kd->ukre != NULL && !FNN_ACT_LATE(act);
    FT tmp[FNN_MAX_TILE] __attribute__((aligned(FNN_ALIGN)));
    ptrdiff_t ir, jr, i, j;

    for (jr = 0; jr < nc; jr += nr) {
        const ptrdiff_t jb = (nc - jr < nr) ? nc - jr : nr;
        const int edge = (jb < nr && Bedge != NULL);
        const FT *b = edge ? Bedge : Bp + (jr / nr) * bstride;
        const ptrdiff_t lb = edge ? nr : ldb;
        for (ir = 0; ir < mc; ir += mr) {
            const ptrdiff_t ib = (mc - ir < mr) ? mc - ir : mr;
            FT *c = C + ir * ldc + jr;
            if (ib == mr && jb == nr && fused) {
                kd->ukre(kc, Ap + ir * kc, b, lb, c, ldc, alpha, beta, bias ? bias + jr : NULL,
                         act, param, amax);
                continue;
            }
            if (ib == mr && jb == nr) {
                kd->ukr(kc, Ap + ir * kc, b, lb, c, ldc, alpha, beta);
            } else {
                /* edge tile: full tile into scratch, then merge the valid part */
                kd->ukr(kc, Ap + ir * kc, b, lb, tmp, nr, alpha, (FT)0);
                for (i = 0; i < ib; i++) {
                    FT *ci = c + i * ldc;
                    const FT *t = tmp + i * nr;
                    if (beta == (FT)0)
                        for (j = 0; j < jb; j++) ci[j] = t[j];
                    else
                        for (j = 0; j < jb; j++) ci[j] = beta * ci[j] + t[j];
                }
            }
            if (do_epi) kd->epi(c, ldc, ib, jb, bias ? bias + jr : NULL, act, param, amax);
        }
    }
}

/* Whether a transposed A of m x k fits the direct path's stack buffer (see gemm_direct). */
static inline int GFN(a_fits_stage)(ptrdiff_t m, ptrdiff_t k)
{
    return (size_t)m * (size_t)k * sizeof(FT) <= FNN_DIRECT_AT_BYTES;
}

/* Small products: direct tiles straight from A and B (no packing, no malloc, no threads).
 * A transposed B is staged FNN_DKC k-steps at a time, transposed, in a stack buffer.  The tile
 * applies bias and the cheap activations in registers; sigmoid, tanh, gelu are done after, by
 * the flavour's epilogue (every copy gives the same bits; the flavour's runs its vectors). */
static void GFN(gemm_direct)(const KERN *kd, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, FT alpha,
                             const FT *A, ptrdiff_t rsa, ptrdiff_t csa,
                             const FT *B, ptrdiff_t rsb, ptrdiff_t csb, FT beta, FT *C,
                             ptrdiff_t ldc, const FT *bias, int act, FT param, UT *amax)
{
    const int late = FNN_ACT_LATE(act);
    const int tile_act = (late ? FNN_ACT_LINEAR : act) | (m > 1 ? FNN_DT_ROWS_ALIKE : 0);
    const ptrdiff_t dnr = kd->dnr, dmr = kd->dmr;
    /* rows in as few tiles as dmr allows, of even heights (16 rows on AVX2: 6, 5, 5 rather than
     * 6, 6, 4, whose 8 accumulators cannot hide the FMA latency); a row's sums do not depend on
     * its tile's height (rows alike: one split of k for every height) */
    const ptrdiff_t tiles = (m + dmr - 1) / dmr;
    ptrdiff_t j0, pc, j, p, it;
    FT at[FNN_DIRECT_AT_BYTES / sizeof(FT)] __attribute__((aligned(FNN_ALIGN)));

    /* A transposed (X.T @ dz, a small layer's weight gradient): the tiles would read each k
     * step's few values of A from its own line, which ran at half the speed of an untransposed A
     * on Zen 3 (64x64x32: 6.3 vs 3.4 us); transposed into a stack buffer first, it costs a few
     * hundred cycles and reads like an untransposed A. */
    if (csa != 1 && rsa == 1 && m >= dmr && GFN(a_fits_stage)(m, k)) {
        kd->pack_t((int)k, k, m, A, csa, at); /* at[i*k + p] = A[p*csa + i] = op(A)[i, p] */
        A = at;
        rsa = k;
        csa = 1;
    }

    for (j0 = 0; j0 < n; j0 += dnr) {
        const ptrdiff_t nb = (n - j0 < dnr) ? n - j0 : dnr;
        const FT *bj = bias ? bias + j0 : NULL;
        if (csb == 1) {
            for (it = 0; it < tiles; it++) {
                const ptrdiff_t i0 = it * m / tiles, mb = (it + 1) * m / tiles - i0;
                FT *c = C + i0 * ldc + j0;
                kd->dtile(mb, nb, k, alpha, A + i0 * rsa, rsa, csa, B + j0, rsb, beta, c, ldc, bj,
                          tile_act, param, late ? NULL : amax);
                if (late) kd->epi(c, ldc, mb, nb, NULL, act, param, amax);
            }
        } else {
            FT bt[FNN_DKC * FNN_MAX_DNR] __attribute__((aligned(FNN_ALIGN)));
            for (pc = 0; pc < k; pc += FNN_DKC) {
                const ptrdiff_t kc = (k - pc < FNN_DKC) ? k - pc : FNN_DKC;
                const int last = (pc + kc >= k);
                const FT beta_eff = (pc == 0) ? beta : (FT)1;
                if (rsb == 1) /* B^T stored row-major: the flavour's transposing pack */
                    kd->pack_t((int)dnr, nb, kc, B + j0 * csb + pc, csb, bt);
                else
                    for (j = 0; j < nb; j++) {
                        const FT *src = B + (j0 + j) * csb + pc * rsb;
                        for (p = 0; p < kc; p++) bt[p * dnr + j] = src[p * rsb];
                    }
                for (it = 0; it < tiles; it++) {
                    const ptrdiff_t i0 = it * m / tiles, mb = (it + 1) * m / tiles - i0;
                    FT *c = C + i0 * ldc + j0;
                    kd->dtile(mb, nb, kc, alpha, A + i0 * rsa + pc * csa, rsa, csa, bt, dnr,
                              beta_eff, c, ldc, last ? bj : NULL,
                              last ? tile_act : (tile_act & FNN_DT_ROWS_ALIKE), param,
                              (last && !late) ? amax : NULL);
                    if (late && last) kd->epi(c, ldc, mb, nb, NULL, act, param, amax);
                }
            }
        }
    }
}

#ifdef _OPENMP
/* The calling thread's columns [*j0, *j1) of n, in a parallel region: a run of whole blocks of
 * width columns (blocks of them in all), the runs as even as the blocks allow. */
static void GFN(thread_cols)(ptrdiff_t blocks, ptrdiff_t width, ptrdiff_t n, ptrdiff_t *j0,
                             ptrdiff_t *j1)
{
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    *j0 = (ptrdiff_t)t * blocks / T * width;
    *j1 = (ptrdiff_t)(t + 1) * blocks / T * width;
    if (*j1 > n) *j1 = n;
}

/* gemm_direct on threads: each takes a run of whole dnr-column tiles (the tiles one thread
 * would compute, so the same bits at any thread count). */
static void GFN(few_rows_threaded)(const KERN *kd, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                   FT alpha, const FT *A, ptrdiff_t rsa, ptrdiff_t csa,
                                   const FT *B, ptrdiff_t rsb, ptrdiff_t csb, FT beta, FT *C,
                                   ptrdiff_t ldc, const FT *bias, int act, FT param, UT *amax)
{
    const ptrdiff_t dnr = kd->dnr, tiles = (n + dnr - 1) / dnr;
    int nt = fnn_max_threads();
    UT mx = 0; /* each thread's largest |C| (when asked for), combined by max: any order */
    if (nt > tiles) nt = (int)tiles;
#pragma omp parallel num_threads(nt) reduction(max : mx)
    {
        const unsigned int saved_csr = fnn_ftz_enter(); /* per thread: see fnn_ftz.h */
        ptrdiff_t j0, j1;
        GFN(thread_cols)(tiles, dnr, n, &j0, &j1);
        if (j1 > j0)
            GFN(gemm_direct)(kd, m, j1 - j0, k, alpha, A, rsa, csa, B + j0 * csb, rsb, csb, beta,
                             C + j0, ldc, bias ? bias + j0 : NULL, act, param,
                             amax ? &mx : NULL);
        fnn_ftz_leave(saved_csr);
    }
    if (amax && mx > *amax) *amax = mx;
}
#endif

/* A one-row product on the flavour's gemv, the late activations after it; with threads (a
 * product above the floor), each takes a run of whole blocks of columns (gemv_cols), which gemv
 * computes as it does on one thread: the same bits at any thread count. */
static void GFN(gemv_run)(const KERN *kd, ptrdiff_t n, ptrdiff_t k, FT alpha, const FT *A,
                          ptrdiff_t csa, const FT *B, ptrdiff_t rsb, FT beta, FT *C,
                          const FT *bias, int act, FT param, UT *amax, int threaded)
{
    const int late = FNN_ACT_LATE(act);
    const int vact = late ? FNN_ACT_LINEAR : act;
#ifdef _OPENMP
    const ptrdiff_t blk = kd->gemv_cols, blocks = (n + blk - 1) / blk;
    int nt = threaded ? fnn_max_threads() : 1;
    if (nt > blocks) nt = (int)blocks;
    if (nt > 1) {
        UT mx = 0;
#pragma omp parallel num_threads(nt) reduction(max : mx)
        {
            const unsigned int saved_csr = fnn_ftz_enter(); /* per thread: see fnn_ftz.h */
            ptrdiff_t j0, j1;
            GFN(thread_cols)(blocks, blk, n, &j0, &j1);
            if (j1 > j0) {
                kd->gemv(j1 - j0, k, alpha, A, csa, B + j0, rsb, beta, C + j0,
                         bias ? bias + j0 : NULL, vact, param, (amax && !late) ? &mx : NULL);
                if (late) kd->epi(C + j0, j1 - j0, 1, j1 - j0, NULL, act, param, amax ? &mx : NULL);
            }
            fnn_ftz_leave(saved_csr);
        }
        if (amax && mx > *amax) *amax = mx;
        return;
    }
#else
    (void)threaded;
#endif
    kd->gemv(n, k, alpha, A, csa, B, rsb, beta, C, bias, vact, param, late ? NULL : amax);
    if (late) kd->epi(C, n, 1, n, NULL, act, param, amax);
}

static ptrdiff_t GFN(round_up)(ptrdiff_t x, ptrdiff_t q) { return (x + q - 1) / q * q; }

/* Split len into ceil(len / max) near-equal blocks, each rounded up to a multiple of q. */
static ptrdiff_t GFN(balance)(ptrdiff_t len, ptrdiff_t max, ptrdiff_t q)
{
    const ptrdiff_t nb = (len + max - 1) / max;
    return GFN(round_up)((len + nb - 1) / nb, q);
}

/* One thread's rectangle of C with the full blocked algorithm; returns 0 if out of memory.
 * With Bpre (op(B) packed whole by pack_b_whole, npad columns wide), this rectangle's columns
 * start at column bj0 of it and its slivers are read from there instead of being packed here:
 * the same values in the same slivers, so the same results. */
static int GFN(gemm_part)(const KERN *kd, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, FT alpha,
                          const FT *A, ptrdiff_t rsa, ptrdiff_t csa,
                          const FT *B, ptrdiff_t rsb, ptrdiff_t csb, FT beta, FT *C,
                          ptrdiff_t ldc, const FT *bias, int act, FT param, UT *amax,
                          const FT *Bpre, ptrdiff_t npad, ptrdiff_t bj0)
{
    KERN alt;
    /* the alternative row count when it tiles m exactly and the main one wastes over 3% of the
     * work on padding rows (e.g. a batch of 32 or 64 rows with 12-row tiles: 12.5%) */
    if (kd->mr2 > 0 && m % kd->mr2 == 0 && m % kd->mr != 0 &&
        (double)((m + kd->mr - 1) / kd->mr * kd->mr - m) > 0.03 * (double)m) {
        alt = *kd;
        alt.mr = kd->mr2;
        alt.ukr = kd->ukr2;
        alt.ukre = kd->ukre2;
        kd = &alt;
    }
    const int do_epi = (bias != NULL || act != FNN_ACT_LINEAR || amax != NULL);
    /* An untransposed B with few rows of C to reuse it is read in place: packing it costs a
     * good part of the product (e.g. a 32-row batch times a 256 x 128 weight matrix). */
    const int b_in_place = (csb == 1 && m <= FNN_B_IN_PLACE_MAX_M && n <= FNN_B_IN_PLACE_MAX_N &&
                            k <= kd->kc);
    /* the k blocking depends on k alone, never on the thread's share of m or n */
    const ptrdiff_t kcb = GFN(balance)(k, kd->kc, 8);
    const ptrdiff_t mcb = GFN(balance)(m, kd->mc, kd->mr);
    const ptrdiff_t ncb = GFN(balance)(n, kd->nc, kd->nr);
    const ptrdiff_t kmax = kcb < k ? kcb : k;
    const size_t a_elems = (size_t)mcb * (size_t)kmax;
    const size_t b_elems = Bpre ? (size_t)0 : (size_t)ncb * (size_t)kmax;
    /* one allocation, both buffers 64-byte aligned (A first; its size is a multiple of 64 B) */
    const size_t a_bytes = (a_elems * sizeof(FT) + FNN_ALIGN - 1) / FNN_ALIGN * FNN_ALIGN;
    int owned;
    void *raw = fnn_pack_buffer(a_bytes + b_elems * sizeof(FT) + FNN_ALIGN, &owned);
    FT *Ap, *Bp;
    ptrdiff_t jc, pc, ic;

    if (!raw) return 0;
    Ap = (FT *)(((uintptr_t)raw + FNN_ALIGN - 1) & ~(uintptr_t)(FNN_ALIGN - 1));
    Bp = (FT *)((char *)Ap + a_bytes);

    for (jc = 0; jc < n; jc += ncb) {
        const ptrdiff_t nc = (n - jc < ncb) ? n - jc : ncb;
        for (pc = 0; pc < k; pc += kcb) {
            const ptrdiff_t kc = (k - pc < kcb) ? k - pc : kcb;
            const FT beta_eff = (pc == 0) ? beta : (FT)1;
            const int last = (pc + kc >= k);
            const FT *Bsrc = B + pc * rsb + jc * csb;
            const FT *Bpanel = Bp, *Bedge = NULL;
            ptrdiff_t bstride = (ptrdiff_t)kd->nr * kc, ldb = kd->nr;
            if (Bpre) {
                Bpanel = Bpre + pc * npad + (bj0 + jc) * kc;
            } else if (b_in_place) {
                /* full slivers straight from B; only a partial last one is packed */
                const ptrdiff_t full = nc / kd->nr * kd->nr;
                Bpanel = Bsrc;
                bstride = kd->nr;
                ldb = rsb;
                if (full < nc) {
                    GFN(pack_n)(kd, kd->nr, nc - full, kc, Bsrc + full, rsb, Bp);
                    Bedge = Bp;
                }
            } else {
                GFN(pack_b)(kd, kd->nr, kc, nc, Bsrc, rsb, csb, Bp);
            }
            for (ic = 0; ic < m; ic += mcb) {
                const ptrdiff_t mc = (m - ic < mcb) ? m - ic : mcb;
                GFN(pack_a)(kd, kd->mr, mc, kc, A + ic * rsa + pc * csa, rsa, csa, Ap);
                GFN(macro_kernel)(kd, mc, nc, kc, alpha, Ap, Bpanel, bstride, ldb, Bedge,
                                  beta_eff, C + ic * ldc + jc, ldc, do_epi && last,
                                  bias ? bias + jc : NULL, act, param, amax);
            }
        }
    }
    if (owned) free(raw);
    return 1;
}

/* op(B) (k x n) packed whole for gemm's Bpre: the k blocks gemm_part takes (they depend on k
 * alone), block pc at Bp + pc * npad, each as pack_b lays out a panel of all n columns (NR-wide
 * slivers, sliver s at s * NR * kc, the last zero-padded): npad * k values, npad = n rounded up
 * to NR. */
static void GFN(pack_b_whole)(int trans_b, ptrdiff_t k, ptrdiff_t n, const FT *B, ptrdiff_t ldb,
                              FT *Bp)
{
    const KERN *kd = &ARCH_KERN(fnn_get_arch());
    const ptrdiff_t rsb = trans_b ? 1 : ldb, csb = trans_b ? ldb : 1;
    const ptrdiff_t kcb = GFN(balance)(k, kd->kc, 8), npad = GFN(round_up)(n, kd->nr);
    ptrdiff_t pc;
    for (pc = 0; pc < k; pc += kcb) {
        const ptrdiff_t kc = (k - pc < kcb) ? k - pc : kcb;
        GFN(pack_b)(kd, kd->nr, kc, n, B + pc * rsb, rsb, csb, Bp + pc * npad);
    }
}

/* C := softmax of each row of C (then |C|'s maximum when asked); rows are independent, so a
 * large C is split over threads in blocks of rows without changing any result. */
static void GFN(softmax_after)(ptrdiff_t m, ptrdiff_t n, FT *C, ptrdiff_t ldc, FT param, UT *amax)
{
    ptrdiff_t i;
    int nt = 1;
#ifdef _OPENMP
    if ((double)m * (double)n >= FNN_PAR_MIN_ELEMENTS) nt = fnn_max_threads();
#endif
    if (nt > 1 && m >= nt) {
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
        {
            const unsigned int saved_csr = fnn_ftz_enter(); /* per thread: see fnn_ftz.h */
            const int t = omp_get_thread_num(), T = omp_get_num_threads();
            const ptrdiff_t r0 = m * t / T, r1 = m * (t + 1) / T;
            ptrdiff_t r;
            for (r = r0; r < r1; r++) FT_SOFTMAX_ROWS(C + r * ldc, C + r * ldc, 1, n);
            fnn_ftz_leave(saved_csr);
        }
#endif
    } else if (ldc == n) {
        FT_SOFTMAX_ROWS(C, C, m, n);
    } else {
        for (i = 0; i < m; i++) FT_SOFTMAX_ROWS(C + i * ldc, C + i * ldc, 1, n);
    }
    if (amax) EPI_NAME(C, ldc, m, n, NULL, FNN_ACT_LINEAR, param, amax);
}

static void GFN(gemm)(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, FT alpha,
                      const FT *A, ptrdiff_t lda, const FT *B, ptrdiff_t ldb, FT beta, FT *C,
                      ptrdiff_t ldc, const FT *bias, int act, FT param, UT *amax,
                      double par_min, const FT *Bpre);

/* A narrow C with A's rows in place as dot products (kd->dots), then bias and activation (the
 * flavour's epilogue; softmax is the caller's); beta == 0. B's columns are read in place when
 * contiguous (one column of a k x 1 weight, or B transposed), else copied so into the calling
 * thread's buffer. With threads (at least 8 rows each), each takes a run of rows: every row's
 * sum is the same at any split. 0 when that buffer cannot be had (the caller takes another path). */
static int GFN(gemm_dots)(const KERN *kd, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, FT alpha,
                          const FT *A, ptrdiff_t lda, const FT *B, ptrdiff_t rsb, ptrdiff_t csb,
                          FT *C, ptrdiff_t ldc, const FT *bias, int act, FT param, UT *amax,
                          int threaded)
{
    const FT *Bt = B;
    ptrdiff_t ldbt = csb;
    int owned = 0;
    void *raw = NULL;
    if (rsb != 1) {
        ptrdiff_t j, p;
        FT *bt;
        raw = fnn_pack_buffer((size_t)n * (size_t)k * sizeof(FT), &owned);
        if (!raw) return 0;
        bt = (FT *)raw;
        for (j = 0; j < n; j++)
            for (p = 0; p < k; p++) bt[j * k + p] = B[p * rsb + j * csb];
        Bt = bt;
        ldbt = k;
    }
#ifdef _OPENMP
    const int nt = (ptrdiff_t)fnn_max_threads() < m / 8 ? fnn_max_threads() : (int)(m / 8);
    if (threaded && nt > 1) {
        UT mx = 0; /* each thread's largest |C| (when asked for), combined by max: any order */
#pragma omp parallel num_threads(nt) reduction(max : mx)
        {
            const unsigned int saved_csr = fnn_ftz_enter(); /* per thread: see fnn_ftz.h */
            const int t = omp_get_thread_num(), T = omp_get_num_threads();
            const ptrdiff_t i0 = m * t / T, i1 = m * (t + 1) / T;
            if (i1 > i0) {
                kd->dots(i1 - i0, n, k, alpha, A + i0 * lda, lda, Bt, ldbt, C + i0 * ldc, ldc);
                kd->epi(C + i0 * ldc, ldc, i1 - i0, n, bias, act, param, amax ? &mx : NULL);
            }
            fnn_ftz_leave(saved_csr);
        }
        if (amax && mx > *amax) *amax = mx;
    } else
#else
    (void)threaded;
#endif
    {
        kd->dots(m, n, k, alpha, A, lda, Bt, ldbt, C, ldc);
        kd->epi(C, ldc, m, n, bias, act, param, amax);
    }
    if (owned) free(raw);
    return 1;
}

/* A narrow C as C^T = op(B)^T op(A)^T (see gemm), FNN_TROWS rows of C at a time through a stack
 * buffer; beta == 0. Out of line, so that only this path's frame holds the buffer. */
static __attribute__((noinline)) void
GFN(gemm_narrow)(const KERN *kd, int direct, int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n,
                 ptrdiff_t k, FT alpha, const FT *A, ptrdiff_t lda, const FT *B, ptrdiff_t ldb,
                 FT *C, ptrdiff_t ldc, const FT *bias, int act, FT param, UT *amax,
                 double par_min)
{
    const int late = FNN_ACT_LATE(act);
    const ptrdiff_t rsa = trans_a ? 1 : lda, csa = trans_a ? lda : 1;
    const ptrdiff_t rsb = trans_b ? 1 : ldb, csb = trans_b ? ldb : 1;
    FT t[(FNN_MAX_DNR / 2) * FNN_TROWS] __attribute__((aligned(FNN_ALIGN)));
    ptrdiff_t i0;
    for (i0 = 0; i0 < m; i0 += FNN_TROWS) {
        const ptrdiff_t mc = (m - i0 < FNN_TROWS) ? m - i0 : FNN_TROWS;
        if (direct)
            GFN(gemm_direct)(kd, n, mc, k, alpha, B, csb, rsb, A + i0 * rsa, csa, rsa, (FT)0, t, mc,
                             NULL, FNN_ACT_LINEAR, param, NULL);
        else
            GFN(gemm)(!trans_b, !trans_a, n, mc, k, alpha, B, ldb, trans_a ? A + i0 : A + i0 * lda,
                      lda, (FT)0, t, mc, NULL, FNN_ACT_LINEAR, param, NULL, par_min, NULL);
        kd->tstore(t, mc, n, mc, C + i0 * ldc, ldc, bias, late ? FNN_ACT_LINEAR : act, param,
                   late ? NULL : amax);
        if (late) kd->epi(C + i0 * ldc, ldc, mc, n, NULL, act, param, amax);
    }
}

/* 1 when gemm(0, 0, m, n, k, ...) reads B where it is: the direct paths as chosen below,
 * whatever the thread count (a hint for callers choosing B's layout: the narrow path of a few
 * columns is left out) */
static int GFN(b_in_place)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    const KERN *kd = &ARCH_KERN(fnn_get_arch());
    return m > 0 && n > 0 && k > 0 && (m <= kd->direct_m || fnn_use_direct(m, n, k, 0));
}

/* The whole product, split across threads when it is big enough. Bpre (or NULL): op(B) packed
 * whole by pack_b_whole, read by the blocked paths instead of B (the direct and narrow paths
 * read B itself). */
static void GFN(gemm)(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, FT alpha,
                      const FT *A, ptrdiff_t lda, const FT *B, ptrdiff_t ldb, FT beta, FT *C,
                      ptrdiff_t ldc, const FT *bias, int act, FT param, UT *amax,
                      double par_min, const FT *Bpre)
{
    const fnn_arch *arch = fnn_get_arch();
    const KERN *kd = &ARCH_KERN(arch);
    const ptrdiff_t rsa = trans_a ? 1 : lda, csa = trans_a ? lda : 1;
    const ptrdiff_t rsb = trans_b ? 1 : ldb, csb = trans_b ? ldb : 1;
    const double work = (double)m * (double)n * (double)k;
    const ptrdiff_t npad = GFN(round_up)(n, kd->nr);
    int nt = 1;

    if (m <= 0 || n <= 0) return;
    /* C narrower than a vector, with rows to spare (e.g. 10 classes times a batch of 32): most
     * lanes of each tile would idle, so C^T = op(B)^T op(A)^T is computed (its rows are the
     * vectors), a block of rows of C at a time, and stored back transposed with the epilogue.
     * An untransposed A must then be transposed on the way (staged or packed); on the direct
     * path that pays off only with k >= 32, at most 10 of 16 lanes in use and whole vectors of
     * rows (measured over m 32..256, k 10..256, n 1..12: up to 2.6x faster there, and 0.4-0.9x
     * outside). A transposed A (X.T @ dz: the weight gradient of a narrow layer) is read as it
     * is: 1.0-10x. */
    /* the path C itself would take; a few rows (up to the flavour's direct_m) go direct too when
     * A is read in place or staged whole, at any size: such a product that takes threads splits
     * its columns into whole direct tiles (few_rows_threaded), so the path and every tile are
     * those of one thread (the choice once depended on the thread count, and the two paths'
     * sums differ in their last bits) */
    const double floor = par_min > 0 ? par_min : fnn_par_min_work();
    const int few_rows = m <= kd->direct_m && (!trans_a || GFN(a_fits_stage)(m, k));
    const int direct = fnn_use_direct(m, n, k, trans_b) || few_rows;
    const ptrdiff_t lanes = kd->dnr / 2;
    /* A's rows in place as dot products: a column or a few (Dense(1) on a batch) */
    const int dots = kd->dots != NULL && !trans_a && n <= FNN_DOTS_MAXN && alpha != (FT)0 &&
                     beta == (FT)0 && fnn_use_dots(m, n, k);
    const int narrow =
        !dots && kd->tstore != NULL && k > 0 && alpha != (FT)0 && beta == (FT)0 && n < lanes &&
        m >= kd->dnr &&
        (trans_a || (8 * n <= 5 * lanes && (!direct || (k >= 32 && m % lanes == 0))));
    if (act == FNN_ACT_SOFTMAX && !narrow) {
        /* row-wise: after the whole product (a narrow C gets it in its transposed store) */
        GFN(gemm)(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, bias,
                  FNN_ACT_LINEAR, param, NULL, par_min, Bpre);
        GFN(softmax_after)(m, n, C, ldc, param, amax);
        return;
    }
    if (k <= 0 || alpha == (FT)0) {
        /* no product to add (BLAS convention for alpha == 0: op(A), op(B) are not read) */
        GFN(scale)(m, n, beta, C, ldc);
        if (bias != NULL || act != FNN_ACT_LINEAR || amax != NULL)
            EPI_NAME(C, ldc, m, n, bias, act, param, amax);
        return;
    }
    if (dots && GFN(gemm_dots)(kd, m, n, k, alpha, A, lda, B, rsb, csb, C, ldc, bias, act, param,
                               amax, work >= floor))
        return;
    if (narrow) {
        GFN(gemm_narrow)(kd, direct, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, C, ldc,
                         bias, act, param, amax, par_min);
        return;
    }
    if (direct) {
        if (m == 1 && csb == 1 && kd->gemv != NULL && n > kd->dnr) {
            /* one row wider than a direct tile: B streamed row by row (gemv_run) */
            GFN(gemv_run)(kd, n, k, alpha, A, csa, B, rsb, beta, C, bias, act, param, amax,
                          work >= floor);
            return;
        }
#ifdef _OPENMP
        if (few_rows && work >= floor && fnn_max_threads() > 1 && n > kd->dnr) {
            GFN(few_rows_threaded)(kd, m, n, k, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc,
                                   bias, act, param, amax);
            return;
        }
#endif
        GFN(gemm_direct)(kd, m, n, k, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, bias, act,
                         param, amax);
        return;
    }

#ifdef _OPENMP
    if (work >= floor) {
        nt = fnn_max_threads(); /* clamped: fnn_threads.h */
        if ((double)nt * FNN_PAR_WORK_PER_THREAD > work) nt = (int)(work / FNN_PAR_WORK_PER_THREAD);
        if (nt < 1) nt = 1;
    }
#endif
    if (nt <= 1) {
        if (!GFN(gemm_part)(kd, m, n, k, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, bias, act,
                            param, amax, Bpre, npad, 0))
            GFN(gemm_direct)(kd, m, n, k, alpha, A, rsa, csa, B, rsb, csb, beta, C, ldc, bias, act,
                              param, amax);
        return;
    }
#ifdef _OPENMP
    {
    UT mx = 0; /* each thread's largest |C| (when asked for), combined by max: any order */
#pragma omp parallel num_threads(nt) reduction(max : mx)
    {
        const unsigned int saved_csr = fnn_ftz_enter(); /* per thread: see fnn_ftz.h */
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const ptrdiff_t mt = (m + kd->mr - 1) / kd->mr, ntl = (n + kd->nr - 1) / kd->nr;
        int tm, tn;
        ptrdiff_t i0, i1, j0, j1;
        fnn_thread_grid(T, mt, ntl, kd->mr, kd->nr, &tm, &tn);
        /* thread t owns tile rows [i0, i1) x tile columns [j0, j1), edges on MR / NR multiples */
        i0 = (ptrdiff_t)(t / tn) * mt / tm * kd->mr;
        i1 = (ptrdiff_t)(t / tn + 1) * mt / tm * kd->mr;
        j0 = (ptrdiff_t)(t % tn) * ntl / tn * kd->nr;
        j1 = (ptrdiff_t)(t % tn + 1) * ntl / tn * kd->nr;
        if (i1 > m) i1 = m;
        if (j1 > n) j1 = n;
        if (t < tm * tn && i1 > i0 && j1 > j0) {
            const FT *Asub = A + i0 * rsa, *Bsub = B + j0 * csb;
            FT *Csub = C + i0 * ldc + j0;
            if (!GFN(gemm_part)(kd, i1 - i0, j1 - j0, k, alpha, Asub, rsa, csa, Bsub, rsb, csb,
                                beta, Csub, ldc, bias ? bias + j0 : NULL, act, param,
                                amax ? &mx : NULL, Bpre, npad, j0))
                GFN(gemm_direct)(kd, i1 - i0, j1 - j0, k, alpha, Asub, rsa, csa, Bsub, rsb, csb,
                                 beta, Csub, ldc, bias ? bias + j0 : NULL, act, param,
                                 amax ? &mx : NULL);
        }
        fnn_ftz_leave(saved_csr);
    }
    if (amax && mx > *amax) *amax = mx;
    }
#endif
}
