/*
 * fastnn element-wise kernels (fnn_vec.h): fnn_vec_tmpl.h instantiated for float and double in
 * three flavours -- portable C, AVX2 and AVX-512 (target attributes, no global -m flags) -- and
 * dispatched to the flavour of the GEMM micro-kernel in use (fnn_gemm.c chooses it once).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fnn_gemm_internal.h"
#include "fnn_vec.h"

#include "fnn_ftz.h"

typedef struct {
    void (*deriv_colsum)(const float *, const float *, float *, double *restrict, ptrdiff_t,
                         ptrdiff_t, ptrdiff_t, int, float);
    void (*sgd)(float *restrict, const float *restrict, float *restrict, ptrdiff_t, float, float,
                int, float);
    void (*adam)(float *restrict, const float *restrict, float *restrict, float *restrict,
                 ptrdiff_t, float, float, float, float, float, float, float, float, float);
    double (*max_abs)(const float *, ptrdiff_t);
} vec_f32;

typedef struct {
    void (*deriv_colsum)(const double *, const double *, double *, double *restrict, ptrdiff_t,
                         ptrdiff_t, ptrdiff_t, int, double);
    void (*sgd)(double *restrict, const double *restrict, double *restrict, ptrdiff_t, double,
                double, int, double);
    void (*adam)(double *restrict, const double *restrict, double *restrict, double *restrict,
                 ptrdiff_t, double, double, double, double, double, double, double, double,
                 double);
    double (*max_abs)(const double *, ptrdiff_t);
} vec_f64;

#define INSTANTIATE_F32(SUFFIX)                                                                 \
    static const vec_f32 vec_f32_##SUFFIX = {deriv_colsum_##SUFFIX##_f32, sgd_##SUFFIX##_f32,    \
                                             adam_##SUFFIX##_f32, max_abs_##SUFFIX##_f32};
#define INSTANTIATE_F64(SUFFIX)                                                                 \
    static const vec_f64 vec_f64_##SUFFIX = {deriv_colsum_##SUFFIX##_f64, sgd_##SUFFIX##_f64,    \
                                             adam_##SUFFIX##_f64, max_abs_##SUFFIX##_f64};

/* The template is included once per (flavour, type); the macros below name the copies. */
#define FT float
#define UT uint32_t
#define ST int32_t
#define ABS_MASK UINT32_C(0x7fffffff)
#define INF_BITS UINT32_C(0x7f800000)
#define FT_SQRT sqrtf

#define VEC_TARGET
#define VFN(x) x##_generic_f32
#include "fnn_vec_tmpl.h"
#undef VFN
#undef VEC_TARGET
#if FNN_X86
#define VEC_TARGET __attribute__((target("avx2,fma")))
#define VFN(x) x##_avx2_f32
#include "fnn_vec_tmpl.h"
#undef VFN
#undef VEC_TARGET
#define VEC_TARGET __attribute__((target("avx512f,avx2,fma")))
#define VFN(x) x##_avx512_f32
#include "fnn_vec_tmpl.h"
#undef VFN
#undef VEC_TARGET
#endif
#undef FT
#undef UT
#undef ST
#undef ABS_MASK
#undef INF_BITS
#undef FT_SQRT

#define FT double
#define UT uint64_t
#define ST int64_t
#define ABS_MASK UINT64_C(0x7fffffffffffffff)
#define INF_BITS UINT64_C(0x7ff0000000000000)
#define FT_SQRT sqrt

#define VEC_TARGET
#define VFN(x) x##_generic_f64
#include "fnn_vec_tmpl.h"
#undef VFN
#undef VEC_TARGET
#if FNN_X86
#define VEC_TARGET __attribute__((target("avx2,fma")))
#define VFN(x) x##_avx2_f64
#include "fnn_vec_tmpl.h"
#undef VFN
#undef VEC_TARGET
#define VEC_TARGET __attribute__((target("avx512f,avx2,fma")))
#define VFN(x) x##_avx512_f64
#include "fnn_vec_tmpl.h"
#undef VFN
#undef VEC_TARGET
#endif
#undef FT
#undef UT
#undef ST
#undef ABS_MASK
#undef INF_BITS
#undef FT_SQRT

INSTANTIATE_F32(generic)
INSTANTIATE_F64(generic)
#if FNN_X86
INSTANTIATE_F32(avx2)
INSTANTIATE_F64(avx2)
INSTANTIATE_F32(avx512)
INSTANTIATE_F64(avx512)
#endif

/* ---------------------------------------------------------------- dispatch */

static const vec_f32 *vs(void)
{
#if FNN_X86
    const fnn_arch *a = fnn_active_arch();
    if (a == &fnn_arch_avx512) return &vec_f32_avx512;
    if (a == &fnn_arch_avx2) return &vec_f32_avx2;
#endif
    return &vec_f32_generic;
}

static const vec_f64 *vd(void)
{
#if FNN_X86
    const fnn_arch *a = fnn_active_arch();
    if (a == &fnn_arch_avx512) return &vec_f64_avx512;
    if (a == &fnn_arch_avx2) return &vec_f64_avx2;
#endif
    return &vec_f64_generic;
}

void fnn_deriv_colsum_f32(const float *y, const float *dy, float *dz, double *acc, ptrdiff_t n,
                          ptrdiff_t ld, ptrdiff_t w, int act, float param)
{
    vs()->deriv_colsum(y, dy, dz, acc, n, ld, w, act, param);
}

void fnn_deriv_colsum_f64(const double *y, const double *dy, double *dz, double *acc,
                          ptrdiff_t n, ptrdiff_t ld, ptrdiff_t w, int act, double param)
{
    vd()->deriv_colsum(y, dy, dz, acc, n, ld, w, act, param);
}

void fnn_sgd_f32(float *p, const float *grad, float *v, ptrdiff_t n, float lr, float mu,
                 int nesterov, float wd)
{
    const unsigned int saved = fnn_ftz_enter();
    vs()->sgd(p, grad, v, n, lr, mu, nesterov, wd);
    fnn_ftz_leave(saved);
}

void fnn_sgd_f64(double *p, const double *grad, double *v, ptrdiff_t n, double lr, double mu,
                 int nesterov, double wd)
{
    const unsigned int saved = fnn_ftz_enter();
    vd()->sgd(p, grad, v, n, lr, mu, nesterov, wd);
    fnn_ftz_leave(saved);
}

void fnn_adam_f32(float *p, const float *grad, float *m, float *v, ptrdiff_t n, float lr,
                  float b1, float b2, float one_b1, float one_b2, float bc1, float bc2, float eps,
                  float wd)
{
    const unsigned int saved = fnn_ftz_enter();
    vs()->adam(p, grad, m, v, n, lr, b1, b2, one_b1, one_b2, bc1, bc2, eps, wd);
    fnn_ftz_leave(saved);
}

void fnn_adam_f64(double *p, const double *grad, double *m, double *v, ptrdiff_t n, double lr,
                  double b1, double b2, double one_b1, double one_b2, double bc1, double bc2,
                  double eps, double wd)
{
    const unsigned int saved = fnn_ftz_enter();
    vd()->adam(p, grad, m, v, n, lr, b1, b2, one_b1, one_b2, bc1, bc2, eps, wd);
    fnn_ftz_leave(saved);
}

double fnn_max_abs_f32(const float *x, ptrdiff_t n) { return vs()->max_abs(x, n); }

double fnn_max_abs_f64(const double *x, ptrdiff_t n) { return vd()->max_abs(x, n); }
