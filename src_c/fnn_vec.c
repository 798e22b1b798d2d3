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
#include "fnn_vexp.h"

typedef struct {
    void (*deriv_colsum)(const float *, const float *, float *, double *restrict, ptrdiff_t,
                         ptrdiff_t, ptrdiff_t, int, float);
    void (*sgd)(float *restrict, const float *restrict, float *restrict, ptrdiff_t, float, float,
                int, float);
    void (*adam)(float *restrict, const float *restrict, float *restrict, float *restrict,
                 ptrdiff_t, float, float, float, float, float, float, float, float, float);
    double (*max_abs)(const float *, ptrdiff_t);
    void (*exp)(const float *, float *, ptrdiff_t);
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

#define VEC_F32(SUFFIX)                                                                        \
    {deriv_colsum_##SUFFIX##_f32, sgd_##SUFFIX##_f32, adam_##SUFFIX##_f32, max_abs_##SUFFIX##_f32, \
     exp_##SUFFIX##_f32}
#define VEC_F64(SUFFIX) \
    {deriv_colsum_##SUFFIX##_f64, sgd_##SUFFIX##_f64, adam_##SUFFIX##_f64, max_abs_##SUFFIX##_f64}

/* The template for one element type in each flavour (fnn_vec_flavours.h), float then double. */
#define FT float
#define UT uint32_t
#define ST int32_t
#define ABS_MASK UINT32_C(0x7fffffff)
#define INF_BITS UINT32_C(0x7f800000)
#define FT_SQRT sqrtf
#define VSUF _f32
#include "fnn_vec_flavours.h"

#define FT double
#define UT uint64_t
#define ST int64_t
#define ABS_MASK UINT64_C(0x7fffffffffffffff)
#define INF_BITS UINT64_C(0x7ff0000000000000)
#define FT_SQRT sqrt
#define VSUF _f64
#include "fnn_vec_flavours.h"

/* The float exp loop (fnn_vexp.h) in each flavour. */
#define FNN_EXP_FLAVOUR(NAME, TARGET)                                  \
    TARGET static void NAME(const float *x, float *y, ptrdiff_t n)     \
    {                                                                  \
        ptrdiff_t j;                                                   \
        for (j = 0; j < n; j++) y[j] = fnn_expf(x[j]);                 \
    }
FNN_EXP_FLAVOUR(exp_generic_f32, )
#if FNN_X86
FNN_EXP_FLAVOUR(exp_avx2_f32, __attribute__((target("avx2,fma"))))
FNN_EXP_FLAVOUR(exp_avx512_f32, __attribute__((target("avx512f,avx2,fma"))))
#endif
#undef FNN_EXP_FLAVOUR

/* ---------------------------------------------------------------- dispatch */

/* Indexed by flavour: 0 portable, 1 AVX2, 2 AVX-512. */
#if FNN_X86
static const vec_f32 vec_f32_of[] = {VEC_F32(generic), VEC_F32(avx2), VEC_F32(avx512)};
static const vec_f64 vec_f64_of[] = {VEC_F64(generic), VEC_F64(avx2), VEC_F64(avx512)};
#else
static const vec_f32 vec_f32_of[] = {VEC_F32(generic)};
static const vec_f64 vec_f64_of[] = {VEC_F64(generic)};
#endif

/* The flavour of the GEMM micro-kernel in use. */
static int flavour(void)
{
#if FNN_X86
    const fnn_arch *a = fnn_active_arch();
    if (a == &fnn_arch_avx512) return 2;
    if (a == &fnn_arch_avx2) return 1;
#endif
    return 0;
}

#define vs() (&vec_f32_of[flavour()])
#define vd() (&vec_f64_of[flavour()])

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

void fnn_exp_f32(const float *x, float *y, ptrdiff_t n) { vs()->exp(x, y, n); }

double fnn_max_abs_f64(const double *x, ptrdiff_t n) { return vd()->max_abs(x, n); }
