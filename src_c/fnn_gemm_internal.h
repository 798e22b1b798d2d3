/*
 * fastnn GEMM internals: the contract between the driver (fnn_gemm.c) and the micro-kernels
 * (fnn_kernels_generic.c, fnn_kernels_avx2.c, fnn_kernels_avx512.c).
 *
 * A micro-kernel computes one full MR x NR tile of C from two packed slivers:
 *
 *   C[0:MR, 0:NR] := alpha * Ap @ Bp + beta * C[0:MR, 0:NR]      (beta == 0: C is not read)
 *
 *   Ap: kc steps of MR values, Ap[p*MR + i] = op(A)[i, p]   (an "A sliver", zero-padded rows)
 *   Bp: kc steps of NR values, Bp[p*ldb + j] = op(B)[p, j]  (a "B sliver": packed, ldb == NR
 *       and zero-padded columns; or, for a full sliver of an untransposed B, B itself, ldb its
 *       row stride)
 *   C : row-major, row stride ldc, unit column stride.   kc >= 1.
 *
 * The k loop always runs p = 0, 1, ..., kc-1 in order, so a tile's value depends only on its data,
 * never on which thread computes it.  Edge tiles (fewer than MR rows or NR columns) are produced by
 * the driver through a small scratch tile, so kernels only ever see full tiles.
 *
 * Each instruction-set flavour also provides a "direct tile" routine for small products: no
 * packing, no allocation, no threads.
 */
#ifndef FNN_GEMM_INTERNAL_H
#define FNN_GEMM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "fnn_gemm.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_X86 1
#else
#define FNN_X86 0
#endif

/* Largest tile any kernel uses, for the driver's edge scratch tile (in elements). */
#define FNN_MAX_TILE (16 * 32)

#define FNN_ALIGN 64

/* Widest direct tile, and the k slice of a transposed B staged on the stack for it. */
#define FNN_MAX_DNR 32
#define FNN_DKC 128
/* Stack bytes for a transposed A staged whole by the direct path (see gemm_direct). */
#define FNN_DIRECT_AT_BYTES 8192
/* Rows of a narrow C computed transposed at a time (see the driver's gemm). */
#define FNN_TROWS 256

typedef void (*fnn_ukr_f32)(ptrdiff_t kc, const float *a, const float *b, ptrdiff_t ldb, float *c,
                            ptrdiff_t ldc, float alpha, float beta);
typedef void (*fnn_ukr_f64)(ptrdiff_t kc, const double *a, const double *b, ptrdiff_t ldb,
                            double *c, ptrdiff_t ldc, double alpha, double beta);

/* The largest |C| seen, kept as the bit pattern of |C| read as an unsigned integer of the element's
 * width: for non-negative floats the integer order is the numeric order, +inf is above every
 * finite value and NaN above +inf, so one integer max answers "largest magnitude, or was anything
 * not finite" in any order -- threads combine their maxima with no effect on the result. */
#define FNN_ABS_BITS_F32 UINT32_C(0x7fffffff)
#define FNN_ABS_BITS_F64 UINT64_C(0x7fffffffffffffff)
#define FNN_INF_BITS_F32 UINT32_C(0x7f800000)
#define FNN_INF_BITS_F64 UINT64_C(0x7ff0000000000000)

/* A micro-kernel that also does the epilogue on its (full) tile while it is in registers:
 * C := act(alpha * Ap @ Bp + beta * C + bias) for act LINEAR, STEP, RELU or LEAKY_RELU (bias may
 * be NULL), then *amax := max(*amax, |C| bits) when amax is not NULL.  The same operations in the
 * same order as the plain kernel followed by the epilogue: identical results. */
typedef void (*fnn_ukre_f32)(ptrdiff_t kc, const float *a, const float *b, ptrdiff_t ldb,
                             float *c, ptrdiff_t ldc, float alpha, float beta, const float *bias,
                             int act, float param, uint32_t *amax);
typedef void (*fnn_ukre_f64)(ptrdiff_t kc, const double *a, const double *b, ptrdiff_t ldb,
                             double *c, ptrdiff_t ldc, double alpha, double beta,
                             const double *bias, int act, double param, uint64_t *amax);

/* Direct (unpacked) tile for small products: no packing, reads A and B where they are.
 *
 *   C[0:mb, 0:nb] := act(alpha * op(A)[0:mb, 0:k] @ B[0:k, 0:nb] + beta * C + bias[0:nb])
 *
 *   op(A)[i, p] = A[i*rsa + p*csa] (any strides), B[p, j] = B[p*rsb + j] (unit column stride),
 *   1 <= mb <= the flavour's dmr (<= FNN_DMR), 1 <= nb <= the flavour's dnr, k >= 1,
 *   beta == 0: C not read.
 *   bias may be NULL; act is LINEAR, STEP, RELU or LEAKY_RELU (the driver applies sigmoid/tanh
 *   itself afterwards, passing LINEAR here); then *amax := max(*amax, |C| bits) of the tile
 *   when amax is not NULL (taken in registers before the stores).
 * The driver transposes B slices into a stack buffer first when B is transposed. */
#define FNN_DMR 8

/* A transposing sliver pack: dst[p*r + i] = src[i*ld + p] for i < cnt (zero up to r), p < kc. */
typedef void (*fnn_packt_f32)(int r, ptrdiff_t cnt, ptrdiff_t kc, const float *src, ptrdiff_t ld,
                              float *dst);
typedef void (*fnn_packt_f64)(int r, ptrdiff_t cnt, ptrdiff_t kc, const double *src, ptrdiff_t ld,
                              double *dst);

/* An untransposed panel pack: element (p, x) = src[p*ld + x], x < len, p < kc, into r-wide
 * slivers dst[s*r*kc + p*r + i] (x = s*r + i; the last sliver zero-padded up to r). */
typedef void (*fnn_packn_f32)(int r, ptrdiff_t len, ptrdiff_t kc, const float *src, ptrdiff_t ld,
                              float *dst);
typedef void (*fnn_packn_f64)(int r, ptrdiff_t len, ptrdiff_t kc, const double *src,
                              ptrdiff_t ld, double *dst);

/* The epilogue on an m x n block of C: C[i, j] := act(C[i, j] + bias[j]) (bias may be NULL),
 * then, when amax is not NULL, *amax := max(*amax, |C[i, j]| bits) (see FNN_ABS_BITS_F32). */
typedef void (*fnn_epi_f32)(float *c, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, const float *bias,
                            int act, float param, uint32_t *amax);
typedef void (*fnn_epi_f64)(double *c, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n,
                            const double *bias, int act, double param, uint64_t *amax);

/* Or'ed into a direct tile's act by the driver when the product has more than one row: every
 * tile then splits k as the flavour's full-height tile does (the same partial sums, added in the
 * same order), so a row's bits do not depend on which tile, or which batch, it falls in; a
 * one-row product keeps the split that hides the FMA latency best. Tiles strip it. */
#define FNN_DT_ROWS_ALIKE 0x100

typedef void (*fnn_dtile_f32)(ptrdiff_t mb, ptrdiff_t nb, ptrdiff_t k, float alpha,
                              const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                              const float *B, ptrdiff_t rsb, float beta, float *C, ptrdiff_t ldc,
                              const float *bias, int act, float param, uint32_t *amax);
typedef void (*fnn_dtile_f64)(ptrdiff_t mb, ptrdiff_t nb, ptrdiff_t k, double alpha,
                              const double *A, ptrdiff_t rsa, ptrdiff_t csa,
                              const double *B, ptrdiff_t rsb, double beta, double *C,
                              ptrdiff_t ldc, const double *bias, int act, double param,
                              uint64_t *amax);

/* A one-row product, C[0, 0:n] := act(alpha * sum_p A[p*csa] B[p*rsb + 0:n] + beta*C + bias),
 * act and amax as for a direct tile (fnn_dtile_tmpl.h's gemv). */
typedef void (*fnn_gemv_f32)(ptrdiff_t n, ptrdiff_t k, float alpha, const float *A,
                             ptrdiff_t csa, const float *B, ptrdiff_t rsb, float beta, float *C,
                             const float *bias, int act, float param, uint32_t *amax);
typedef void (*fnn_gemv_f64)(ptrdiff_t n, ptrdiff_t k, double alpha, const double *A,
                             ptrdiff_t csa, const double *B, ptrdiff_t rsb, double beta,
                             double *C, const double *bias, int act, double param,
                             uint64_t *amax);

/* A narrow C of dot products, C[i*ldc + j] := alpha * sum_p A[i*rsa + p] Bt[j*ldbt + p] for
 * i < m, j < n <= FNN_DOTS_MAXN: A's rows and B's columns (Bt's rows) contiguous
 * (fnn_dtile_tmpl.h's dots; the driver applies bias and activation after). */
#define FNN_DOTS_MAXN 4
typedef void (*fnn_dots_f32)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *A,
                             ptrdiff_t rsa, const float *Bt, ptrdiff_t ldbt, float *C,
                             ptrdiff_t ldc);
typedef void (*fnn_dots_f64)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                             const double *A, ptrdiff_t rsa, const double *Bt, ptrdiff_t ldbt,
                             double *C, ptrdiff_t ldc);

/* A narrow product's transposed result stored back with the epilogue: for i < n (fewer than a
 * vector's lanes), j < m:  C[j*ldc + i] := act(T[i*ldt + j] + bias[i]) (bias may be NULL; act
 * LINEAR, STEP, RELU, LEAKY_RELU or SOFTMAX, across each row of C: fnn_vec.h's float softmax),
 * then *amax := max(*amax, |C| bits) when amax is not NULL. */
typedef void (*fnn_tstore_f32)(const float *T, ptrdiff_t ldt, ptrdiff_t n, ptrdiff_t m, float *C,
                               ptrdiff_t ldc, const float *bias, int act, float param,
                               uint32_t *amax);
typedef void (*fnn_tstore_f64)(const double *T, ptrdiff_t ldt, ptrdiff_t n, ptrdiff_t m,
                               double *C, ptrdiff_t ldc, const double *bias, int act,
                               double param, uint64_t *amax);

/* One micro-kernel plus the cache blocking tuned for it (MC % MR == 0, MC % MR2 == 0,
 * NC % NR == 0). */
typedef struct {
    int mr, nr;
    ptrdiff_t mc, kc, nc;
    fnn_ukr_f32 ukr;
    int dnr;              /* columns per direct tile (<= FNN_MAX_DNR) */
    int dmr;              /* rows per direct tile (<= FNN_DMR) */
    fnn_dtile_f32 dtile;
    int mr2;              /* an alternative kernel of mr2 rows for m % mr2 == 0, or 0 */
    fnn_ukr_f32 ukr2;
    fnn_epi_f32 epi;      /* the epilogue compiled for this flavour */
    fnn_packt_f32 pack_t; /* the transposing pack for this flavour */
    fnn_ukre_f32 ukre;    /* ukr with the epilogue fused, or NULL (then ukr + epi) */
    fnn_ukre_f32 ukre2;   /* the same for ukr2 */
    fnn_tstore_f32 tstore; /* narrow products computed transposed (gemm_direct), or NULL */
    fnn_packn_f32 pack_n; /* the untransposed pack for this flavour, or NULL (the portable one) */
    int direct_m;         /* products of at most this many rows run on direct tiles whatever
                           * their size, when they run on one thread (0: by size alone) */
    fnn_gemv_f32 gemv;    /* one-row products wider than a direct tile, or NULL (direct tiles) */
    ptrdiff_t gemv_cols;  /* columns of gemv's blocks (threads split n at their multiples) */
    fnn_dots_f32 dots;    /* narrow C as dot products of A's rows, or NULL */
} fnn_kern_f32;

typedef struct {
    int mr, nr;
    ptrdiff_t mc, kc, nc;
    fnn_ukr_f64 ukr;
    int dnr;
    int dmr;
    fnn_dtile_f64 dtile;
    int mr2;
    fnn_ukr_f64 ukr2;
    fnn_epi_f64 epi;
    fnn_packt_f64 pack_t;
    fnn_ukre_f64 ukre;
    fnn_ukre_f64 ukre2;
    fnn_tstore_f64 tstore;
    fnn_packn_f64 pack_n;
    int direct_m;
    fnn_gemv_f64 gemv;
    ptrdiff_t gemv_cols;
    fnn_dots_f64 dots;
} fnn_kern_f64;

typedef struct {
    const char *name;
    fnn_kern_f32 s;
    fnn_kern_f64 d;
} fnn_arch;

extern const fnn_arch fnn_arch_generic;
#if FNN_X86
extern const fnn_arch fnn_arch_avx2;
extern const fnn_arch fnn_arch_avx512;
#endif

/* The portable transposing packs (SSE2 4x4 / 2x2 blocks on x86-64). */
void fnn_pack_t_f32(int r, ptrdiff_t cnt, ptrdiff_t kc, const float *src, ptrdiff_t ld,
                    float *dst);
void fnn_pack_t_f64(int r, ptrdiff_t cnt, ptrdiff_t kc, const double *src, ptrdiff_t ld,
                    double *dst);

#if FNN_X86
/* The AVX2 transposing pack (fnn_kernels_avx2.c), used by the AVX2 and AVX-512 flavours. */
/* The rows i0 <= i < cnt of a transposing sliver pack, each read front to back, then the zero
 * padding of rows cnt..r-1: the tail the SIMD packs leave after their square blocks. */
void fnn_pack_t_rest_f32(int r, ptrdiff_t i0, ptrdiff_t cnt, ptrdiff_t kc, const float *src,
                         ptrdiff_t ld, float *dst);
void fnn_pack_t_avx2_f32(int r, ptrdiff_t cnt, ptrdiff_t kc, const float *src, ptrdiff_t ld,
                         float *dst);
#endif

/* The flavour in use, as an index into the per-flavour tables of fnn_vec.c, fnn_rnn.c,
 * fnn_attn.c and fnn_conv.c: the GEMM's micro-kernel flavour, chosen once on first use from the
 * CPU and FASTNN_KERNEL (fnn_gemm.c), so every kernel family runs the same instruction set. */
enum { FNN_FLAVOUR_GENERIC = 0, FNN_FLAVOUR_AVX2 = 1, FNN_FLAVOUR_AVX512 = 2 };
int fnn_active_flavour(void);
/* The flavour's micro-kernels and blocking (the attention kernel drives them per tile). */
const fnn_arch *fnn_active_arch(void);

/* Element-wise epilogue on an m x n block of C (bias offset to the block's first column). */
void fnn_epilogue_block_f32(float *c, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n,
                            const float *bias, int act, float param, uint32_t *amax);
void fnn_epilogue_block_f64(double *c, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n,
                            const double *bias, int act, double param, uint64_t *amax);

#endif /* FNN_GEMM_INTERNAL_H */
