/*
 * fastnn recurrent layers: SimpleRNN, LSTM and GRU (Keras' equations, weight layouts and gate
 * orders) forward, and backpropagation through time, each in one call on the packed GEMM.
 *
 *   x (n, T, d) batch-first; kernel W (d, K), recurrent kernel U (u, K), K = k u with k = 1, 4, 3
 *   gates; bias (K,) (GRU: (2, 3u), the input bias then the recurrent one).
 *   SimpleRNN: h_t = act(x_t W + h_{t-1} U + b)
 *   LSTM:      [i f g o] = [rec act rec rec](x_t W + h_{t-1} U + b),
 *              c_t = f c_{t-1} + i g,  h_t = o act(c_t)
 *   GRU:       [xz xr xh] = x_t W + b_in,  [rz rr rh] = h_{t-1} U + b_rec,
 *              z = rec(xz + rz), r = rec(xr + rr), hh = act(xh + r rh),  h_t = z h_{t-1} + (1-z) hh
 *   (reset_after=True, Keras' default).
 *   GRU_RB:    (reset_after=False, Cho et al. 2014) bias (3u,): [xz xr xh] = x_t W + b,
 *              [z r] = rec([xz xr] + h_{t-1} U_zr), hh = act(xh + (r h_{t-1}) U_h), h_t as GRU's.
 * With `reverse` (Keras' go_backwards) step s reads x[:, T-1-s]; outputs are in step order.
 *
 * Forward: the input projection of all steps is one GEMM (bias as its epilogue); each step is
 * one GEMM h_{t-1} U accumulated into the step's rows, then the gates element-wise. An LSTM
 * whose steps run on the GEMM (more than a few rows) instead multiplies each step's
 * [x_t | h_{t-1}] by [W; U] in one product with the bias as its epilogue. Everything the
 * backward needs is kept in the caller's workspace, time-major so that each step's rows and
 * the products over all steps are contiguous:
 *   xt (T, n, d) the input in step order; G (T, n, K) the gates (LSTM, GRU); H (T+1, n, u) the
 *   states, H[0] = h0; C (T+1, n, u) the LSTM cells, C[0] = c0; AUX (T, n, u) act(c_t) (LSTM) or
 *   rh (GRU; GRU_RB: r h_{t-1}, the candidate product's input); S (n, K) the GRU's recurrent
 *   product of the current step (GRU_RB: h_{t-1} U_zr, then (r h_{t-1}) U_h: two products).
 *   The LSTM keeps xt and H side by side as XH (T+1, n, d+u), rows [x_t | h_{t-1}].
 * Backward: per step (last to first) the gate derivatives into dZ (T, n, K) and the recurrent
 * product dh_{t-1} = dZ_t U^T (GRU: plus dh_t z; its recurrent side dZr differs from dZ in the
 * candidate's third), and dZ's column sums (dbias, in double, added step by step as dZ_t is
 * made: last step first, rows in order); then, over all steps at once, dW = xt^T dZ,
 * dU = H[0:T]^T dZ (GRU: dZr) and dx = dZ W^T, each one GEMM (the LSTM's [dW; dU] = XH^T dZ
 * one). GRU_RB: two products per step backward too (dL/d(r h) = dZh U_h^T, then dZzr U_zr^T
 * added), dU's columns from two products (H^T dZzr, AUX^T dZh) and one bias. The first
 * step's recurrent product is skipped forward when h0 is zero (NULL) and backward when dh0 is
 * not wanted.
 * The GEMM never splits a sum across threads and the element-wise parts are serial, so results
 * are bitwise the same at any thread count.
 *
 * Sizes per sample of the workspaces: fnn_rnn_sizes. Callers validate every shape; the kernels
 * trust them. Returns 1, or 0 when a scratch allocation failed.
 */
#ifndef FNN_RNN_H
#define FNN_RNN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { FNN_RNN_SIMPLE = 0, FNN_RNN_LSTM = 1, FNN_RNN_GRU = 2, FNN_RNN_GRU_RB = 3 };

typedef struct {
    int cell;              /* FNN_RNN_* */
    ptrdiff_t n, T, d, u;  /* batch, steps (>= 1), input features, units */
    int act, rec;          /* activation codes (LINEAR, SIGMOID, TANH, RELU) */
    int reverse;           /* go_backwards */
    int seq;               /* y (and dy) hold every step (n, T, u), else the last (n, u) */
    /* Keras' step mask (NULL: none), mask[b T + t] for sample b at time t (input order): where
     * it is 0 the step is skipped, its states carried over (h_t = h_{t-1}, c_t = c_{t-1}); a
     * sequence output there is the carried h, or 0 with zero_masked (Keras'
     * zero_output_for_mask). Backward: a skipped step passes dh (and dc) on unchanged and has
     * zero gate gradients, so its input gets no gradient. */
    const unsigned char *mask;
    int zero_masked;
    /* Keras' dropout and recurrent_dropout (training), NULL: none. Of the element type, each
     * value 0 or 1/(1-rate), one per (sample, feature) and per (sample, unit), the same at every
     * step: in_mask (n, d) scales x_t before the input projection (x_t W), so dW reads the
     * masked x and dx is scaled by it too; rec_mask (n, u) scales h_{t-1} where it meets U
     * (h_{t-1} U), so dU reads the masked states and the recurrent product's dh_{t-1} is scaled
     * by it. The GRU's blend z h_{t-1} keeps the unmasked state (as Keras). With rec_mask the
     * forward workspace holds FNN_RNN_REC_DROP_EXTRA(T, u) more values per sample. */
    const void *in_mask, *rec_mask;
} fnn_rnn_geom;

/* The recurrent dropout's extra workspace per sample: the masked states (T+1, n, u) (the LSTM's
 * side by side with x_t in its [x_t | h_t-1] rows, its plain states there instead). */
#define FNN_RNN_REC_DROP_EXTRA(T, u) (((T) + 1) * (u))

/* Values per sample of the forward workspace and of the backward one. */
void fnn_rnn_sizes(int cell, ptrdiff_t T, ptrdiff_t d, ptrdiff_t u, ptrdiff_t *fwd,
                   ptrdiff_t *bwd);

/* h0, c0 may be NULL (zeros); h_last, c_last (n, u) may be NULL (not wanted). */
int fnn_rnn_forward_f32(const fnn_rnn_geom *g, const float *x, const float *W, const float *U,
                        const float *b, const float *h0, const float *c0, float *ws, float *y,
                        float *h_last, float *c_last);
int fnn_rnn_forward_f64(const fnn_rnn_geom *g, const double *x, const double *W, const double *U,
                        const double *b, const double *h0, const double *c0, double *ws,
                        double *y, double *h_last, double *c_last);

/* From the forward's workspace ws: dW, dU, db are written; dy (n, T, u) or (n, u) as g->seq says;
 * dh_last, dc_last (n, u) (gradients reaching the final states) may be NULL; ut (K u) is scratch;
 * dx, dh0, dc0 may be NULL (not wanted). The LSTM's backward consumes ws: its gates are replaced
 * by their gradients (the 4 T n u values then need no place of their own, nor a trip through
 * memory: after a call that evicted the caches, the training step's largest cost), so a second
 * backward needs the forward run again. */
int fnn_rnn_backward_f32(const fnn_rnn_geom *g, const float *W, const float *U, float *ws,
                         const float *dy, const float *dh_last, const float *dc_last, float *bws,
                         float *ut, float *dW, float *dU, float *db, float *dx, float *dh0,
                         float *dc0);
int fnn_rnn_backward_f64(const fnn_rnn_geom *g, const double *W, const double *U,
                         double *ws, const double *dy, const double *dh_last,
                         const double *dc_last, double *bws, double *ut, double *dW, double *dU,
                         double *db, double *dx, double *dh0, double *dc0);

/* The LSTM step's element-wise part alone, on m rows: z (m, 4u) holds the pre-activations
 * [i f c o] and is replaced by the gates; c_next = f c_prev + i g, a = act(c_next), h_next = o a
 * (each (m, u)). Backward: from the gates z, c_prev and a, with dh = dL/dh_t and dc = dL/dc_t
 * from the next step (replaced by dL/dc_prev), z is replaced by dL/d(pre-activations). Rows are
 * independent: any split of the rows gives the same bits. */
void fnn_rnn_lstm_gates_fwd_f32(float *z, const float *c_prev, float *c_next, float *a,
                                float *h_next, ptrdiff_t m, ptrdiff_t u, int act, int rec);
void fnn_rnn_lstm_gates_fwd_f64(double *z, const double *c_prev, double *c_next, double *a,
                                double *h_next, ptrdiff_t m, ptrdiff_t u, int act, int rec);
void fnn_rnn_lstm_gates_bwd_f32(float *z, const float *c_prev, const float *a, const float *dh,
                                float *dc, ptrdiff_t m, ptrdiff_t u, int act, int rec);
void fnn_rnn_lstm_gates_bwd_f64(double *z, const double *c_prev, const double *a,
                                const double *dh, double *dc, ptrdiff_t m, ptrdiff_t u, int act,
                                int rec);

#ifdef __cplusplus
}
#endif

#endif /* FNN_RNN_H */
