/*
 * fastnn scaled dot-product attention, forward and backward, in tiles with an online softmax
 * (the FlashAttention-2 schedule: Dao 2023, "FlashAttention-2", algorithms 1 and 2), so that no
 * call ever holds a (query x key) score matrix: memory is linear in the sequence lengths.
 *
 *   q (P, Lq, D), k (P, Lk, D), v (P, Lk, Dv), out (P, Lq, Dv), lse (P, Lq); P = batch * heads
 *   (each array but lse in a layout of the geometry's: contiguous, or rows read in place)
 *   S = scale q k^T,  masked entries -inf,  A = softmax_rows(S),  out = A v
 *   lse_i = log sum_j exp(S_ij)   (what the backward recomputes A from: A_ij = exp(S_ij - lse_i))
 *
 * Masks: with `causal`, query i sees keys j <= i (top-left alignment, as PyTorch's
 * F.scaled_dot_product_attention(is_causal=True), i.e. tril(ones(Lq, Lk))); with key_mask
 * (batch, Lk), nonzero = take part (torch's boolean attn_mask), the row of pair p is p / heads;
 * with qk_mask (batch, Lq, Lk), nonzero = query i may see key j (Keras' attention_mask (B, T, S),
 * shared by the heads), the block of pair p is p / heads. Every mask given applies (logical and).
 * A query row that sees no key at all gets out = 0, lse = -inf and zero gradients (older
 * PyTorch gives NaN there, newer its "safe softmax" 0). A score that overflows to -inf counts as
 * masked (as in that safe softmax); a row with a score of +inf (overflow: float32 q, k near
 * 1e19) or NaN gets out = NaN and lse = NaN, as PyTorch gives, and NaN gradients (none through
 * a score of -inf: P = dS = 0 there exactly).
 *
 * Forward, per (pair, query tile of FNN_ATTN_BR rows), over key tiles of FNN_ATTN_BC columns:
 *   S = scale q_i k_j^T (GEMM), masks, m' = max(m, rowmax S), P = exp(S - m'),
 *   l = l exp(m - m') + rowsum P, O = O exp(m - m') + P v_j (GEMM into out);
 *   at the end out = O / l, lse = m + log l.
 * Backward, per pair: D_i = rowsum(dout_i * out_i); per key tile j, per query tile i:
 *   P = exp(S - lse), dv_j += P^T dout_i, dP = dout_i v_j^T, dS = P (dP - D) scale,
 *   dk_j += dS^T q_i, dq_i += dS k_j   (all GEMMs; every sum in tile order).
 * Threads: the forward splits (pair, query tile) tasks, the backward (pair, key chunk) tasks:
 * whole pairs, or, when a call has few pairs and long keys, each pair's key tiles in
 * fnn_attn_key_chunks runs. A chunk writes dk and dv of its keys and a partial dq of its own;
 * the partials are then added to the first chunk's in chunk order. The chunks depend on the
 * sizes only, so every output value is summed in a fixed order: bitwise the same at any thread
 * count. The count is fnn_attn_threads' (read at call time; small calls stay serial).
 *
 * No allocation: the caller passes `nt` threads' scratch, fnn_attn_scratch values each (it is
 * bounded by the tile sizes, plus Lq for the backward's D), and for the backward after them
 * fnn_attn_scratch_shared values (the partial dq sums: (chunks - 1) Lq D per pair, at most
 * seven Lq x D blocks in all and an eighth of an (Lq x Lk) matrix per pair, so memory stays
 * linear in the sequence lengths). The kernels trust every size.
 * float uses fnn_expf (vectorised); double uses libm's exp.
 */
#ifndef FNN_ATTN_H
#define FNN_ATTN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef FNN_ATTN_BR
#define FNN_ATTN_BR 48 /* query rows per tile (a multiple of every flavour's mr) */
#endif
#ifndef FNN_ATTN_BC
#define FNN_ATTN_BC 96 /* key rows per tile (a multiple of every mr and nr) */
#endif

/* Where the matrix of one (batch b, head h) pair lies in an array: row i of it starts at
 * b * bs + h * hs + i * rs values from the array's start, and a row's values are contiguous.
 * The contiguous (B, H, L, D) layout is bs = H L D, hs = L D, rs = D; a layer's projection
 * (B, L, H D) read in place, heads side by side in each row, is bs = L H D, hs = D, rs = H D. */
typedef struct {
    ptrdiff_t bs, hs, rs;
} fnn_attn_layout;

typedef struct {
    ptrdiff_t pairs, heads;          /* P = batch * heads (>= 0), heads (>= 1, divides P) */
    ptrdiff_t lq, lk, d, dv;         /* sequence lengths and widths, all >= 1 */
    int causal;                      /* key j visible to query i only when j <= i */
    const unsigned char *key_mask;   /* (P / heads, lk), nonzero = attend; NULL: all */
    const unsigned char *qk_mask;    /* (P / heads, lq, lk), nonzero = attend; NULL: all */
    /* dropout on the attention weights (training): rate in [0, 1), 0 = off; see fnn_attn_keep */
    double drop_rate;
    unsigned long long drop_key;     /* the draw's key (the layer's seed and pass count, mixed) */
    /* the arrays' layouts (lse is always contiguous (P, lq)); the outputs' rows must not
     * overlap one another (the callers check it) */
    fnn_attn_layout q, k, v, out, dout, dq, dk, dv_;
} fnn_attn_geom;

/* Dropout on the attention weights A (Srivastava et al. 2014, on A as in PyTorch's
 * F.scaled_dot_product_attention(dropout_p) and Keras' MultiHeadAttention(dropout)):
 *   out = (A * Z) v,  Z_ij = keep_ij / (1 - rate),  keep_ij = u(p, i, j) >= rate,
 *   u(p, i, j) = (splitmix64(drop_key + ((p lq + i) lk + j) * golden) >> 11) * 2^-53
 * a counter-based draw (Steele et al. 2014's SplitMix64 finalizer over the element's index), so
 * the backward redraws the same Z tile by tile, and any thread count and the NumPy twin draw the
 * same. The softmax's sum l runs over A before dropping; the backward is dv += (A Z)^T dout,
 * dS = A (Z dP - D) scale with D = rowsum(dout * out). With a rate, every pair takes the tiled
 * path (not the small register kernels). */
static inline int fnn_attn_keep(const fnn_attn_geom *g, ptrdiff_t p, ptrdiff_t i, ptrdiff_t j)
{
    /* the index in unsigned arithmetic (wraps, never overflows) */
    const unsigned long long e = ((unsigned long long)p * (unsigned long long)g->lq +
                                  (unsigned long long)i) * (unsigned long long)g->lk +
                                 (unsigned long long)j;
    unsigned long long z = g->drop_key + e * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0) >= g->drop_rate;
}

/* Set every layout of g to the contiguous one of its sizes (pairs, heads, lq, lk, d, dv);
 * no dropout, no qk_mask (key_mask is left as it is). */
void fnn_attn_contiguous(fnn_attn_geom *g);

/* Whether float pairs of at most 32 keys, 48 queries and 16-value heads take the register
 * kernels of fnn_attn_small_avx2.h (1, the default) or the tiled path (0); AVX2 flavour. */
void fnn_attn_set_small(int on);

/* Threads the call will use (<= fnn_max_threads(), 1 for small work or a single task). */
int fnn_attn_threads(const fnn_attn_geom *g, int backward);

/* Scratch values per thread. */
ptrdiff_t fnn_attn_scratch(const fnn_attn_geom *g, int backward);

/* The key chunks the backward cuts each pair into (1: whole pairs), and the scratch values it
 * needs besides the threads' (after them): the chunks' partial dq sums. */
ptrdiff_t fnn_attn_key_chunks(const fnn_attn_geom *g);
ptrdiff_t fnn_attn_scratch_shared(const fnn_attn_geom *g);

void fnn_attn_forward_f32(const fnn_attn_geom *g, float scale, const float *q, const float *k,
                          const float *v, float *out, float *lse, float *scratch, int nt);
void fnn_attn_forward_f64(const fnn_attn_geom *g, double scale, const double *q,
                          const double *k, const double *v, double *out, double *lse,
                          double *scratch, int nt);

/* dq, dk, dv are written (not accumulated into). scratch: nt * fnn_attn_scratch(g, 1) +
 * fnn_attn_scratch_shared(g) values. */
void fnn_attn_backward_f32(const fnn_attn_geom *g, float scale, const float *q, const float *k,
                           const float *v, const float *out, const float *dout,
                           const float *lse, float *dq, float *dk, float *dv, float *scratch,
                           int nt);
void fnn_attn_backward_f64(const fnn_attn_geom *g, double scale, const double *q,
                           const double *k, const double *v, const double *out,
                           const double *dout, const double *lse, double *dq, double *dk,
                           double *dv, double *scratch, int nt);

#ifdef __cplusplus
}
#endif

#endif /* FNN_ATTN_H */
