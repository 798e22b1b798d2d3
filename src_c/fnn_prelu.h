/* PReLU's element loops (fastnn/_ext/_layer_ops.pyx calls them): plain C with restrict so GCC
 * turns the selects into vector blends. Written through Cython, the same loops compiled to a
 * branch per element (a misprediction on every other value of signed data: ~3x slower). */
#ifndef FNN_PRELU_H
#define FNN_PRELU_H

#include <stddef.h>

#define FNN_PRELU_DEFINE(T, SUFFIX)                                                          \
/* y := x where x > 0, else a * x (m values, a the slope of each) */                          \
static inline void fnn_prelu_row_##SUFFIX(const T *restrict x, const T *restrict a,           \
                                          ptrdiff_t m, T *restrict y) {                       \
    for (ptrdiff_t j = 0; j < m; j++) {                                                       \
        T v = x[j], s = a[j];   /* both loads unconditional, or GCC keeps a branch */         \
        y[j] = v > 0 ? v : s * v;                                                             \
    }                                                                                         \
}                                                                                             \
/* values j0..j1 of a row: dx := dy where x > 0, else a * dy (dx may be NULL);                \
 * s[j] += dy * x where x is not > 0 (a NaN x adds NaN, as PyTorch's), in double */         \
static inline void fnn_prelu_grad_##SUFFIX(const T *restrict x, const T *restrict dy,         \
                                           const T *restrict a, ptrdiff_t j0, ptrdiff_t j1,   \
                                           T *restrict dx, double *restrict s) {              \
    for (ptrdiff_t j = j0; j < j1; j++) {                                                     \
        double v = x[j], d = dy[j];                                                           \
        s[j] += v > 0 ? 0.0 : d * v;                                                          \
    }                                                                                         \
    if (dx)                                                                                   \
        for (ptrdiff_t j = j0; j < j1; j++) {                                                 \
            T v = x[j], d = dy[j], k = a[j];                                                  \
            dx[j] = v > 0 ? d : k * d;                                                        \
        }                                                                                     \
}

FNN_PRELU_DEFINE(float, f32)
FNN_PRELU_DEFINE(double, f64)

#undef FNN_PRELU_DEFINE
#endif
