/*
 * fastnn GEMM internals: the contract between the driver (fnn_gemm.c) and the micro-kernels
 * (fnn_kernels_generic.c, fnn_kernels_avx2.c, fnn_kernels_avx512.c).
 *
 * A micro-kernel computes one full MR x NR tile of C from two packed slivers:
 *
 *   C[0:MR, 0:NR] := alpha * Ap @ Bp + beta * C[0:MR, 0:NR]      (beta == 0: C is not read)
 *
 *   Ap: kc steps of MR values, Ap[p*MR + i] = op(A)[i, p]   (an "A sliver", zero-padded rows)
 *   Bp: kc steps of NR values, Bp[p*NR + j] = op(B)[p, j]   (a "B sliver", zero-padded columns)
 *   C : row-major, row stride ldc, unit column stride.   kc >= 1.
 *
 * The k loop always runs p = 0, 1, ..., kc-1 in order, so a tile's value depends only on its data,
 * never on which thread computes it.  Edge tiles (fewer than MR rows or NR columns) are produced by
 * the driver through a small scratch tile, so kernels only ever see full tiles.
 *
 * Each instruction-set flavour also provides a "direct" routine for small products: no packing,
 * no allocation, no threads (see fnn_direct_tmpl.h).
 */
#ifndef FNN_GEMM_INTERNAL_H
#define FNN_GEMM_INTERNAL_H

#include <stddef.h>
#include "fnn_gemm.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_X86 1
#else
#define FNN_X86 0
#endif

/* Largest tile any kernel uses, for the driver's edge scratch tile (in elements). */
#define FNN_MAX_TILE (16 * 32)

#define FNN_ALIGN 64

typedef void (*fnn_ukr_f32)(ptrdiff_t kc, const float *a, const float *b, float *c, ptrdiff_t ldc,
                            float alpha, float beta);
typedef void (*fnn_ukr_f64)(ptrdiff_t kc, const double *a, const double *b, double *c,
                            ptrdiff_t ldc, double alpha, double beta);

/* Direct (unpacked) product on a strided view: op(A)[i, p] = A[i*rsa + p*csa],
 * op(B)[p, j] = B[p*rsb + j*csb].  Computes C := alpha*op(A)@op(B) + beta*C, then the epilogue
 * (bias may be NULL; act LINEAR with NULL bias means no epilogue).  k >= 1, m, n >= 1. */
typedef void (*fnn_direct_f32)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                               const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                               const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                               float beta, float *C, ptrdiff_t ldc,
                               const float *bias, int act, float param);
typedef void (*fnn_direct_f64)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                               const double *A, ptrdiff_t rsa, ptrdiff_t csa,
                               const double *B, ptrdiff_t rsb, ptrdiff_t csb,
                               double beta, double *C, ptrdiff_t ldc,
                               const double *bias, int act, double param);

/* One micro-kernel plus the cache blocking tuned for it (MC % MR == 0, NC % NR == 0). */
typedef struct {
    int mr, nr;
    ptrdiff_t mc, kc, nc;
    fnn_ukr_f32 ukr;
} fnn_kern_f32;

typedef struct {
    int mr, nr;
    ptrdiff_t mc, kc, nc;
    fnn_ukr_f64 ukr;
} fnn_kern_f64;

typedef struct {
    const char *name;
    fnn_kern_f32 s;
    fnn_kern_f64 d;
    fnn_direct_f32 sdirect;
    fnn_direct_f64 ddirect;
} fnn_arch;

extern const fnn_arch fnn_arch_generic;
#if FNN_X86
extern const fnn_arch fnn_arch_avx2;
extern const fnn_arch fnn_arch_avx512;
#endif

/* Element-wise epilogue on an m x n block of C (bias already offset to the block's first column). */
void fnn_epilogue_block_f32(float *c, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n,
                            const float *bias, int act, float param);
void fnn_epilogue_block_f64(double *c, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n,
                            const double *bias, int act, double param);

#endif /* FNN_GEMM_INTERNAL_H */
