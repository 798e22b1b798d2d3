/*
 * fastnn element-wise kernels: the loops of a training step that are not matrix products.
 *
 * Each is plain C that the compiler vectorises; it is compiled once per instruction set (portable
 * SSE2-level C, AVX2 and AVX-512 through target attributes, like the GEMM micro-kernels) and the
 * flavour is the one the GEMM chose (FASTNN_KERNEL applies). The sources are C99 without FP
 * contraction, so every flavour does the same operations in the same order: results are bitwise
 * the same whichever flavour runs, and equal to the plain loops of the NumPy backend's formulas.
 * All functions are serial; callers split the work over threads.
 */
#ifndef FNN_VEC_H
#define FNN_VEC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* For i < n, j < w (row stride ld):  dz[i, j] := dy[i, j] * act'(y[i, j])  and
 * acc[j] += dz[i, j] in double, row after row.  act' is written with the output y = act(z):
 * linear and step 1 (straight-through), relu (y > 0), leaky relu (y > 0 ? 1 : param),
 * sigmoid y (1 - y), tanh 1 - y^2 (softmax is handled by the caller).  For gelu and gelu_tanh,
 * whose derivative is not a function of their output, y holds the pre-activation z instead
 * (fnn_gelu.h); for FNN_ACT_DERIV_GIVEN y holds act'(z) itself (dz = dy * y).  elu
 * (y > 0 ? 1 : y + param), selu and softplus from y, silu from z (fnn_act_keras.h).
 * dz may be dy. */
void fnn_deriv_colsum_f32(const float *y, const float *dy, float *dz, double *acc, ptrdiff_t n,
                          ptrdiff_t ld, ptrdiff_t w, int act, float param);
void fnn_deriv_colsum_f64(const double *y, const double *dy, double *dz, double *acc,
                          ptrdiff_t n, ptrdiff_t ld, ptrdiff_t w, int act, double param);

/* The float gelus (act FNN_ACT_GELU or FNN_ACT_GELU_TANH; fnn_gelu.h), vectorised per flavour:
 * forward y[j] := gelu(z[j]) (y may be z); backward dz[j] := dy[j] * gelu'(z[j]) (dz may be dy). */
void fnn_gelu_forward_f32(const float *z, float *y, ptrdiff_t n, int act);
void fnn_gelu_backward_f32(const float *z, const float *dy, float *dz, ptrdiff_t n, int act);
/* Both at once, for a training forward: y[j] := gelu(z[j]), then z[j] := gelu'(z[j]) (the value
 * the backward pass multiplies by, FNN_ACT_DERIV_GIVEN); y must not overlap z. The same
 * functions as above, so the same bits as the forward and backward computed apart. */
void fnn_gelu_value_deriv_f32(float *z, float *y, ptrdiff_t n, int act);

/* Keras' elu, selu, softplus, silu in float (act FNN_ACT_ELU .. FNN_ACT_SILU; fnn_act_keras.h),
 * vectorised per flavour: forward y[j] := act(z[j]) (y may be z; param: elu's alpha);
 * backward dz[j] := dy[j] * act'(y[j]) (dz may be dy; y holds z for silu); and silu's value
 * and derivative at once, y[j] := silu(z[j]), z[j] := silu'(z[j]) (y must not overlap z). */
void fnn_keras_forward_f32(const float *z, float *y, ptrdiff_t n, int act, float param);
void fnn_keras_backward_f32(const float *y, const float *dy, float *dz, ptrdiff_t n, int act,
                            float param);
void fnn_silu_value_deriv_f32(float *z, float *y, ptrdiff_t n);

/* The updates run in flush-to-zero mode themselves (fnn_ftz.h; they are also called from
 * threads of their own): a velocity or moment below the smallest normal number becomes 0. */

/* SGD on n parameters:  g = grad + wd p;  v = mu v + g;  p -= lr (nesterov ? g + mu v : v);
 * with mu == 0: p -= lr g (v is not touched and may be NULL). */
void fnn_sgd_f32(float *p, const float *grad, float *v, ptrdiff_t n, float lr, float mu,
                 int nesterov, float wd);
void fnn_sgd_f64(double *p, const double *grad, double *v, ptrdiff_t n, double lr, double mu,
                 int nesterov, double wd);

/* Adam on n parameters:  g = grad + wd p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 * p -= lr (m / bc1) / (sqrt(v / bc2) + eps), with one_b1 = 1 - b1, one_b2 = 1 - b2 and the bias
 * corrections bc1 = 1 - b1^t, bc2 = 1 - b2^t given by the caller. */
void fnn_adam_f32(float *p, const float *grad, float *m, float *v, ptrdiff_t n, float lr,
                  float b1, float b2, float one_b1, float one_b2, float bc1, float bc2, float eps,
                  float wd);
void fnn_adam_f64(double *p, const double *grad, double *m, double *v, ptrdiff_t n, double lr,
                  double b1, double b2, double one_b1, double one_b2, double bc1, double bc2,
                  double eps, double wd);

/* RMSprop (Keras) on n parameters:  v = rho v + (1 - rho) g^2;  centered: a = rho a + (1 - rho) g,
 * d = max(v - a^2, 0) + eps, else d = v + eps;  inc = lr g / sqrt(d);  mu > 0: b = mu b + inc,
 * p -= b, else p -= inc.  one_rho = 1 - rho from the caller; a (centered) and b (mu > 0) may be
 * NULL when unused. */
void fnn_rmsprop_f32(float *p, const float *grad, float *v, float *a, float *b, ptrdiff_t n,
                     float lr, float rho, float one_rho, float mu, float eps, int centered);
void fnn_rmsprop_f64(double *p, const double *grad, double *v, double *a, double *b, ptrdiff_t n,
                     double lr, double rho, double one_rho, double mu, double eps, int centered);

/* AdamW on n parameters: p -= lr_wd p (decoupled decay, lr_wd = lr * weight decay), then
 * m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr (m / bc1) / (sqrt(v / bc2) + eps). */
void fnn_adamw_f32(float *p, const float *grad, float *m, float *v, ptrdiff_t n, float lr,
                   float b1, float b2, float one_b1, float one_b2, float bc1, float bc2, float eps,
                   float lr_wd);
void fnn_adamw_f64(double *p, const double *grad, double *m, double *v, ptrdiff_t n, double lr,
                   double b1, double b2, double one_b1, double one_b2, double bc1, double bc2,
                   double eps, double lr_wd);

/* Adagrad (Keras) on n parameters:  a = min(a + g^2, a_max);  p -= lr g / sqrt(a + eps). */
void fnn_adagrad_f32(float *p, const float *grad, float *a, ptrdiff_t n, float lr, float eps,
                     float a_max);
void fnn_adagrad_f64(double *p, const double *grad, double *a, ptrdiff_t n, double lr,
                     double eps, double a_max);

/* Adamax (Keras):  m = m + (g - m) one_b1;  u = max(b2 u, |g|);  p -= lr m / (bc1 (u + eps)). */
void fnn_adamax_f32(float *p, const float *grad, float *m, float *u, ptrdiff_t n, float lr,
                    float one_b1, float b2, float bc1, float eps);
void fnn_adamax_f64(double *p, const double *grad, double *m, double *u, ptrdiff_t n, double lr,
                    double one_b1, double b2, double bc1, double eps);

/* Nadam (Keras):  m = m + (g - m) one_b1;  v = v + (g^2 - v) one_b2;
 * p -= (mu1 m / d1 + one_mu g / d2) lr / (sqrt(v / bc2) + eps). */
void fnn_nadam_f32(float *p, const float *grad, float *m, float *v, ptrdiff_t n, float lr,
                   float one_b1, float one_b2, float mu1, float d1, float one_mu, float d2,
                   float bc2, float eps);
void fnn_nadam_f64(double *p, const double *grad, double *m, double *v, ptrdiff_t n, double lr,
                   double one_b1, double one_b2, double mu1, double d1, double one_mu, double d2,
                   double bc2, double eps);

/* max |x_i| over n values (0 for n == 0), or NaN when any x_i is NaN or inf. */
double fnn_max_abs_f32(const float *x, ptrdiff_t n);
double fnn_max_abs_f64(const double *x, ptrdiff_t n);

/* Gradient clipping (fastnn.optimizers' clipnorm, clipvalue, global_clipnorm).
 * sum_squares: sum x_i^2 in double, in a fixed order (16 lanes by index mod 16, then a pairwise
 * tree), the same for every flavour.  scale_copy: out_i := x_i * s.  clamp_copy: out_i :=
 * min(max(x_i, -c), c) for finite x.  Serial; out must not overlap x. */
double fnn_sum_squares_f32(const float *x, ptrdiff_t n);
double fnn_sum_squares_f64(const double *x, ptrdiff_t n);
void fnn_scale_copy_f32(const float *x, float *out, ptrdiff_t n, float s);
void fnn_scale_copy_f64(const double *x, double *out, ptrdiff_t n, double s);
void fnn_clamp_copy_f32(const float *x, float *out, ptrdiff_t n, float c);
void fnn_clamp_copy_f64(const double *x, double *out, ptrdiff_t n, double c);

/* y[j] := exp(x[j]) for j < n (y may be x): the branch-free float exp of fnn_vexp.h, compiled per
 * flavour so that it runs 16 lanes wide with AVX-512 (same operations: the same bits). */
void fnn_exp_f32(const float *x, float *y, ptrdiff_t n);

/* s[j] := sum_i q[i] k[j * D + i] for j < n: one query against n keys of D values (the scores
 * of attention_decode). AVX2 and AVX-512 machines: eight keys at a time, each key's products in
 * eight lanes (lane l takes i = l, l + 8, ...), the lanes then added in order 0..7; portable:
 * i in order. A key's score does not depend on the keys around it. */
void fnn_dot_rows_f32(const float *q, const float *k, ptrdiff_t D, ptrdiff_t n, float *s);

/* Softmax of each of n rows of m floats: y := exp(z - max z) * (1 / sum), the sum taken in
 * double over a fixed order (columns folded into 16 lanes, then a pairwise tree), the scaling
 * in double rounded once to float; y may be z. A row never depends on the rows around it. */
void fnn_softmax_rows_f32(const float *z, float *y, ptrdiff_t n, ptrdiff_t m);
/* The same for double: summed in column order, each value divided by the sum. */
void fnn_softmax_rows_f64(const double *z, double *y, ptrdiff_t n, ptrdiff_t m);

#ifdef __cplusplus
}
#endif

#endif /* FNN_VEC_H */
