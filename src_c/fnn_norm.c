/* Layer normalization's row kernels (fnn_norm.h), per element type and SIMD flavour. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "fnn_gemm_internal.h"
#include "fnn_norm.h"

#if FNN_X86
#include <immintrin.h>
#endif

/* 4 doubles (GCC/Clang vector extensions: lowered to the target's vectors, SSE2 pairs at the
 * x86-64 baseline); loads through memcpy (no alignment assumed) */
typedef double fnn_v4d __attribute__((vector_size(32)));

#define FNN_NORM_CAT_(a, b, c) a##b##c
#define FNN_NORM_CAT(a, b, c) FNN_NORM_CAT_(a, b, c)

#define FT float
#define NAVX 0
#define NTARGET
#define NFN(x) FNN_NORM_CAT(x, _generic, _f32)
#include "fnn_norm_tmpl.h"
#include "fnn_gn_tmpl.h"
#undef NFN
#undef NTARGET
#undef NAVX
#if FNN_X86
#define NAVX 1
#define NTARGET __attribute__((target("avx2,fma")))
#define NFN(x) FNN_NORM_CAT(x, _avx2, _f32)
#include "fnn_norm_tmpl.h"
#include "fnn_gn_tmpl.h"
#undef NFN
#undef NTARGET
#undef NAVX
#define NAVX 2
#define NTARGET __attribute__((target("avx512f,avx2,fma")))
#define NFN(x) FNN_NORM_CAT(x, _avx512, _f32)
#include "fnn_norm_tmpl.h"
#include "fnn_gn_tmpl.h"
#undef NFN
#undef NTARGET
#undef NAVX
#endif
#undef FT

#define FT double
#define NAVX 0
#define NTARGET
#define NFN(x) FNN_NORM_CAT(x, _generic, _f64)
#include "fnn_norm_tmpl.h"
#include "fnn_gn_tmpl.h"
#undef NFN
#undef NTARGET
#undef NAVX
#if FNN_X86
#define NAVX 1
#define NTARGET __attribute__((target("avx2,fma")))
#define NFN(x) FNN_NORM_CAT(x, _avx2, _f64)
#include "fnn_norm_tmpl.h"
#include "fnn_gn_tmpl.h"
#undef NFN
#undef NTARGET
#undef NAVX
#define NAVX 2
#define NTARGET __attribute__((target("avx512f,avx2,fma")))
#define NFN(x) FNN_NORM_CAT(x, _avx512, _f64)
#include "fnn_norm_tmpl.h"
#include "fnn_gn_tmpl.h"
#undef NFN
#undef NTARGET
#undef NAVX
#endif
#undef FT

#if FNN_X86
#define FNN_NORM_DISPATCH(name, suf, args)                                                      \
    do {                                                                                        \
        const int flavour = fnn_active_flavour();                                               \
        if (flavour == FNN_FLAVOUR_AVX512)                                                      \
            FNN_NORM_CAT(name, _avx512, suf) args;                                              \
        else if (flavour == FNN_FLAVOUR_AVX2)                                                   \
            FNN_NORM_CAT(name, _avx2, suf) args;                                                \
        else                                                                                    \
            FNN_NORM_CAT(name, _generic, suf) args;                                             \
    } while (0)
#else
#define FNN_NORM_DISPATCH(name, suf, args) FNN_NORM_CAT(name, _generic, suf) args
#endif

void fnn_ln_row_f32(const float *x, ptrdiff_t c, const float *gamma, const float *beta,
                    double eps, float *out, float *mean, float *invstd)
{
    FNN_NORM_DISPATCH(ln_row, _f32, (x, c, gamma, beta, eps, out, mean, invstd));
}

void fnn_ln_row_f64(const double *x, ptrdiff_t c, const double *gamma, const double *beta,
                    double eps, double *out, double *mean, double *invstd)
{
    FNN_NORM_DISPATCH(ln_row, _f64, (x, c, gamma, beta, eps, out, mean, invstd));
}

void fnn_ln_rows_f32(const float *x, ptrdiff_t n, ptrdiff_t c, const float *gamma,
                     const float *beta, double eps, float *out, float *mean, float *invstd)
{
    FNN_NORM_DISPATCH(ln_rows, _f32, (x, n, c, gamma, beta, eps, out, mean, invstd));
}

void fnn_ln_rows_f64(const double *x, ptrdiff_t n, ptrdiff_t c, const double *gamma,
                     const double *beta, double eps, double *out, double *mean, double *invstd)
{
    FNN_NORM_DISPATCH(ln_rows, _f64, (x, n, c, gamma, beta, eps, out, mean, invstd));
}

void fnn_ln_bwd_rows_f32(const float *x, const float *dy, ptrdiff_t n, ptrdiff_t c,
                         const float *gamma, const float *mean, const float *invstd, float *dx,
                         double *pg, double *pb)
{
    FNN_NORM_DISPATCH(ln_bwd_rows, _f32, (x, dy, n, c, gamma, mean, invstd, dx, pg, pb));
}

void fnn_ln_bwd_rows_f64(const double *x, const double *dy, ptrdiff_t n, ptrdiff_t c,
                         const double *gamma, const double *mean, const double *invstd,
                         double *dx, double *pg, double *pb)
{
    FNN_NORM_DISPATCH(ln_bwd_rows, _f64, (x, dy, n, c, gamma, mean, invstd, dx, pg, pb));
}

void fnn_gn_fwd_block_f32(const float *x, ptrdiff_t P, ptrdiff_t C, ptrdiff_t k, ptrdiff_t c0,
                          ptrdiff_t c1, const float *gamma, const float *beta, double eps,
                          float *out, float *mean, float *invstd, double *scratch)
{
    FNN_NORM_DISPATCH(gn_fwd_block, _f32,
                      (x, P, C, k, c0, c1, gamma, beta, eps, out, mean, invstd, scratch));
}

void fnn_gn_fwd_block_f64(const double *x, ptrdiff_t P, ptrdiff_t C, ptrdiff_t k, ptrdiff_t c0,
                          ptrdiff_t c1, const double *gamma, const double *beta, double eps,
                          double *out, double *mean, double *invstd, double *scratch)
{
    FNN_NORM_DISPATCH(gn_fwd_block, _f64,
                      (x, P, C, k, c0, c1, gamma, beta, eps, out, mean, invstd, scratch));
}

void fnn_gn_bwd_block_f32(const float *x, const float *dy, ptrdiff_t P, ptrdiff_t C, ptrdiff_t k,
                          ptrdiff_t c0, ptrdiff_t c1, const float *gamma, const float *mean,
                          const float *invstd, float *dx, double *sums, double *scratch)
{
    FNN_NORM_DISPATCH(gn_bwd_block, _f32,
                      (x, dy, P, C, k, c0, c1, gamma, mean, invstd, dx, sums, scratch));
}

void fnn_gn_bwd_block_f64(const double *x, const double *dy, ptrdiff_t P, ptrdiff_t C,
                          ptrdiff_t k, ptrdiff_t c0, ptrdiff_t c1, const double *gamma,
                          const double *mean, const double *invstd, double *dx, double *sums,
                          double *scratch)
{
    FNN_NORM_DISPATCH(gn_bwd_block, _f64,
                      (x, dy, P, C, k, c0, c1, gamma, mean, invstd, dx, sums, scratch));
}
