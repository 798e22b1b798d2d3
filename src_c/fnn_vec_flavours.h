/*
 * fnn_vec_tmpl.h for one element type in every flavour: portable C, then (x86) AVX2 and AVX-512
 * through target attributes. Included by fnn_vec.c with the template's type macros (FT, UT, ST,
 * ABS_MASK, INF_BITS, FT_SQRT) and VSUF (_f32 or _f64) defined; all are undefined at the end.
 */
#define FNN_VEC_CAT_(a, b, c) a##b##c
#define FNN_VEC_CAT(a, b, c) FNN_VEC_CAT_(a, b, c)

#define VEC_TARGET
#define VFN(x) FNN_VEC_CAT(x, _generic, VSUF)
#include "fnn_vec_tmpl.h"
#undef VFN
#undef VEC_TARGET
#if FNN_X86
#define VEC_TARGET __attribute__((target("avx2,fma")))
#define VFN(x) FNN_VEC_CAT(x, _avx2, VSUF)
#include "fnn_vec_tmpl.h"
#undef VFN
#undef VEC_TARGET
#define VEC_TARGET __attribute__((target("avx512f,avx2,fma")))
#define VFN(x) FNN_VEC_CAT(x, _avx512, VSUF)
#include "fnn_vec_tmpl.h"
#undef VFN
#undef VEC_TARGET
#endif

#undef FNN_VEC_CAT
#undef FNN_VEC_CAT_
#undef FT
#undef UT
#undef ST
#undef ABS_MASK
#undef INF_BITS
#undef FT_SQRT
#undef VSUF
