/*
 * fastnn GEMM: the one matrix-product entry point of the compiled backend.
 *
 *   C := alpha * op(A) @ op(B) + beta * C,   then, if ep != NULL, the epilogue on each output tile:
 *   C[i, j] := act(C[i, j] + bias[j])
 *
 * Row-major storage. op(A) is (m, k): A is (m, k) with row stride lda, or (k, m) when trans_a.
 * op(B) is (k, n): B is (k, n) with row stride ldb, or (n, k) when trans_b. C is (m, n), stride ldc.
 * When beta == 0, C is write-only (it may hold NaN/garbage on entry).
 * When k == 0 or alpha == 0, A and B are not read (BLAS convention): C := beta * C, then the
 * epilogue.
 * The epilogue's activations are element-wise, except FNN_ACT_SOFTMAX: C[i, :] := softmax(C[i, :]
 * + bias) over each row, after the product (a C narrower than a vector gets it in registers, on
 * its way back from the transposed product: see fnn_gemm_tmpl.h); float rows as
 * fnn_softmax_rows_f32, double rows as fnn_softmax_rows_f64 (fnn_vec.h).
 * With ep->amax set, *ep->amax receives max |C[i, j]| over the final C (after the epilogue), or NaN
 * when any C[i, j] is NaN or infinite: the optimizer's gradient screen, taken while each output
 * tile is still in registers or L1 instead of in a second pass over C.
 *
 * Threads: OpenMP across output tiles, the count read at call time from omp_get_max_threads()
 * and clamped to fnn_thread_limit() (fnn_threads.h); small products run serially. The k
 * dimension is never split across threads, so every C[i, j] is summed in the same order at any
 * thread count (bitwise-reproducible), and the choice of threads never changes a result.
 * A product takes threads from fnn_par_min_work() multiply-adds (m*n*k) on, or from
 * ep->min_parallel_work when that is > 0. What threads cost is mostly not the parallel region
 * (~1-2 us) but moving data between cores: each thread writes its part of C, which the next
 * pass (often on the main thread alone) must fetch from the other core's cache, and reads the
 * operands the previous pass left in another cache. How much that costs depends on the CPU:
 * - On Sapphire Rapids-class Xeons (2 vCPUs) a 1M-3M product followed by a one-thread pass over
 *   its operands ran 0.5-0.9x as fast on 2 threads as on 1 (alone in a loop it is 1.4-1.6x
 *   faster), and the 784-128-10 training step at batch 64 (two 6.4M products) 0.91-0.93x; from
 *   8M on (e.g. 784-256-128-10 at batch 64: 12.8M) threads pay: FNN_PAR_MIN_WORK.
 * - On AMD EPYCs, whose cores share an L3 (Zen 3 and Zen 5 measured, 2 vCPUs), 1M products
 *   already pay inside a training step: the 64-256-128-10 step at batch 64 (1M products) runs
 *   1.5x faster on 2 threads, 784-128-10 at batch 64 1.48x: FNN_PAR_MIN_WORK_AMD.
 * A caller that keeps data split across threads anyway (a training step whose big products run
 * threaded) lowers the floor for the products around them; see fastnn/_ext/_kernels.pyx.
 * The micro-kernel (AVX-512, AVX2+FMA or portable C) is chosen once by CPU detection;
 * FASTNN_KERNEL=generic|avx2|avx512 in the environment overrides the choice (if the CPU allows it).
 */
#ifndef FNN_GEMM_H
#define FNN_GEMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Activation codes, shared with fastnn/activations.py. */
enum {
    FNN_ACT_LINEAR = 0,
    FNN_ACT_STEP = 1,        /* z >= param ? 1 : 0                    (param: threshold) */
    FNN_ACT_SIGMOID = 2,     /* 1 / (1 + exp(-z)), stable for |z| large                  */
    FNN_ACT_TANH = 3,
    FNN_ACT_RELU = 4,        /* max(z, 0)                                                */
    FNN_ACT_LEAKY_RELU = 5,  /* z > 0 ? z : param * z                 (param: alpha)     */
    FNN_ACT_SOFTMAX = 6,     /* row-wise, after the product (see above)                  */
    FNN_ACT_GELU = 7,        /* z Phi(z) = z/2 erfc(-z/sqrt 2)              (fnn_gelu.h)  */
    FNN_ACT_GELU_TANH = 8,   /* z/2 (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))) (fnn_gelu.h) */
    /* backward passes only: y holds the derivative act'(z) itself, dz = dy * y (a gelu layer's
     * training forward saves it, fnn_gelu_value_deriv_f32, so its backward need not recompute
     * gelu's tail); never an epilogue's activation */
    FNN_ACT_DERIV_GIVEN = 9,
    /* Keras' elu, selu, softplus, silu (= swish); fnn_act_keras.h. Element-wise, after 9 so that
     * the codes above keep their values (model files store names, the kernels these numbers) */
    FNN_ACT_ELU = 10,        /* z > 0 ? z : param (e^z - 1)            (param: alpha, 1)  */
    FNN_ACT_SELU = 11,       /* S (z > 0 ? z : A (e^z - 1)), Keras' S and A               */
    FNN_ACT_SOFTPLUS = 12,   /* max(z, 0) + log1p(e^-|z|)                                  */
    FNN_ACT_SILU = 13,       /* z sigmoid(z)                                               */
    FNN_ACT_END = 14         /* one past the last code */
};

/* 1 for the codes a layer's activation may have (every code but FNN_ACT_DERIV_GIVEN) */
#define FNN_ACT_VALID(act) ((act) >= 0 && (act) < FNN_ACT_END && (act) != FNN_ACT_DERIV_GIVEN)
/* Keras' activations of fnn_act_keras.h, computed in scalar C loops (fnn_keras_act_f32/f64) */
#define FNN_ACT_KERAS(act) ((act) >= FNN_ACT_ELU && (act) <= FNN_ACT_SILU)

/* The element-wise activations that call libm (exp, tanh, erfc, expm1, log1p): applied by the
 * epilogue after the product (fnn_epi_tmpl.h), never by the micro-kernels in registers. */
#define FNN_ACT_LATE(act)                                                                       \
    ((act) == FNN_ACT_SIGMOID || (act) == FNN_ACT_TANH || (act) == FNN_ACT_GELU ||              \
     (act) == FNN_ACT_GELU_TANH || FNN_ACT_KERAS(act))

/* Default floors for threads (see above): products of fewer multiply-adds (m*n*k) run on one
 * thread. */
#define FNN_PAR_MIN_WORK (8.0e6)
#define FNN_PAR_MIN_WORK_AMD (1.0e6)

/* The floor in use: FASTNN_PAR_MIN_WORK from the environment when it is a positive finite number
 * (the whole value, surrounding blanks aside, as strtod reads it), else the default for this CPU
 * (fnn_gemm.c). Read once. */
double fnn_par_min_work(void);

typedef struct {
    const float *bias;  /* length n, or NULL for no bias */
    int act;            /* FNN_ACT_* code */
    float param;        /* threshold for STEP, alpha for LEAKY_RELU and ELU */
    double *amax;       /* out: max |C| (NaN if any C is not finite), or NULL for none */
    double min_parallel_work; /* threads from this many multiply-adds; 0: fnn_par_min_work() */
} fnn_epilogue_f32;

typedef struct {
    const double *bias;
    int act;
    double param;
    double *amax;
    double min_parallel_work;
} fnn_epilogue_f64;

void fnn_sgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
               float alpha, const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
               float beta, float *C, ptrdiff_t ldc, const fnn_epilogue_f32 *ep);

void fnn_dgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
               double alpha, const double *A, ptrdiff_t lda, const double *B, ptrdiff_t ldb,
               double beta, double *C, ptrdiff_t ldc, const fnn_epilogue_f64 *ep);

/* A B operand packed once for many products with the same op(B) (k x n), e.g. a recurrent
 * kernel multiplied at every time step:
 *   fnn_gemm_packed_b_size(dbl, k, n): values the packed copy takes (dbl: 0 float, 1 double);
 *   fnn_sgemm_pack_b(trans_b, k, n, B, ldb, Bp): Bp := op(B) in the micro-kernel's panel layout;
 *   fnn_sgemm_bp(..., B, ldb, Bp, ...): fnn_sgemm with Bp read instead of packing op(B) (or
 *   reading it in place): bit for bit the same C (the same micro-kernel over the same values
 *   in the same order). B must still be given: products that take the direct or narrow paths
 *   read it there. Bp == NULL: exactly fnn_sgemm.
 * The layout is that of the micro-kernel flavour in use: pack and multiply in one process. */
size_t fnn_gemm_packed_b_size(int dbl, ptrdiff_t k, ptrdiff_t n);
/* 1 when a product of m rows (fnn_sgemm(0, 0, m, n, k, ...), alpha != 0) takes a path that reads
 * B in place rather than packed (few rows: direct tiles): a B read at many steps is then better
 * laid out with rows that do not collide in L1 than packed. */
int fnn_gemm_b_in_place(int dbl, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k);
void fnn_sgemm_pack_b(int trans_b, ptrdiff_t k, ptrdiff_t n, const float *B, ptrdiff_t ldb,
                      float *Bp);
void fnn_dgemm_pack_b(int trans_b, ptrdiff_t k, ptrdiff_t n, const double *B, ptrdiff_t ldb,
                      double *Bp);
void fnn_sgemm_bp(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                  const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb, const float *Bp,
                  float beta, float *C, ptrdiff_t ldc, const fnn_epilogue_f32 *ep);
void fnn_dgemm_bp(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                  const double *A, ptrdiff_t lda, const double *B, ptrdiff_t ldb,
                  const double *Bp, double beta, double *C, ptrdiff_t ldc,
                  const fnn_epilogue_f64 *ep);

/* Name of the micro-kernel in use: "avx512", "avx2" or "generic". */
const char *fnn_kernel_name(void);

/* 1 when compiled with OpenMP, else 0. */
int fnn_openmp_enabled(void);

#ifdef __cplusplus
}
#endif

#endif /* FNN_GEMM_H */
