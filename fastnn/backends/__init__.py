"""Kernel backends: the same functions, with the same signatures, in each module.

``numpy_backend`` is the pure-NumPy reference (the test oracle and benchmark baseline);
``fast_backend`` adapts the compiled extension. Layers and models call only these functions.

The contract every backend keeps
--------------------------------
All array arguments are C-contiguous and share one float dtype (float32 or float64); the
public boundary (``fastnn._validation``) guarantees it, so kernels do not check. Every result
is written into a caller-owned ``out`` buffer: kernels allocate nothing the caller keeps.
Activation codes live in ``fastnn.activations``, loss codes in ``fastnn.losses``.

matmul(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0) -> out
    out := alpha * op(a) @ op(b) + beta * out
dense_forward(x, w, b, act, param, out) -> out
    out := act(x @ w + b);  x (n, k), w (k, m), b (m,), out (n, m)
activation_forward(z, act, param, out) -> out
    out := act(z); out may be z itself
activation_forward_deriv(z, act, out) -> out
    out := act(z), then z := act'(z), for gelu, gelu_tanh, silu (out must not be z): a training
    forward keeps the derivative, and the backward pass takes it with act DERIV_GIVEN.
activation_backward(y, dy, act, param, out) -> out
    out := dL/dz from the saved output y = act(z) and dy = dL/dy; out may be dy itself.
    step passes the gradient straight through; softmax uses y * (dy - sum(dy * y, axis=1)).
    gelu, gelu_tanh, silu (fastnn.activations.FROM_INPUT) take the pre-activation z as y: their
    derivative is not a function of their output. DERIV_GIVEN: y is the derivative act'(z).
dense_backward(x, w, y, dy, act, param, dz, dw, db, dx) -> None
    dz := activation_backward(y, dy) (gelu: y is z);  dw := x.T @ dz;  db := dz.sum(axis=0);
    dx := dz @ w.T, skipped when dx is None.  dz may be dy itself (then dy is overwritten).
loss(kind, output, target, grad, weights=None, param=1.0) -> float
    The loss value; when grad is not None also grad := dL/d(output), or for the fused kinds
    (BCE_SIGMOID, CE_SOFTMAX) dL/d(pre-activation) = (p - target) / count.
    target is dense, the shape and dtype of output (integer labels are one-hot by then).
    weights: None, or (n,) sample weights >= 0 of the dtype: L = sum_i w_i * row_i / count and
    each gradient row times w_i (Keras' "sum_over_batch_size"); None gives the unweighted
    result bit for bit. param: the loss's parameter (HUBER's delta > 0; for the cross-entropies
    keep = 1 - label smoothing, each target read as t keep + (1 - keep) / C, binary / 2, and as
    it is when keep is 1; unused otherwise).
sgd_update(params, grads, velocity, lr, momentum, nesterov, weight_decay, counter=None) -> None
    g := grad + wd * p;  v := momentum * v + g;  p -= lr * (g + momentum * v if nesterov else v)
    (with momentum == 0: p -= lr * g, velocity untouched). Flat 1-D arrays of equal length.
adam_update(params, grads, m, v, step, lr, beta1, beta2, eps, weight_decay, counter=None) -> None
    g := grad + wd * p;  m := b1 m + (1 - b1) g;  v := b2 v + (1 - b2) g^2;
    p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps);   step counts from 1.
rmsprop_update(params, grads, mean_square, mean_grad, buffer, lr, rho, momentum, eps, centered,
               counter=None) -> None
    v := rho v + (1 - rho) g^2;  d := v + eps, or when centered (a := rho a + (1 - rho) g)
    d := max(v - a^2, 0) + eps;  inc := lr g / sqrt(d);  momentum == 0: p -= inc, else
    b := momentum b + inc, p -= b (Keras' RMSprop). mean_grad is untouched (may be None) unless
    centered, buffer unless momentum != 0.
adamw_update(params, grads, m, v, step, lr, beta1, beta2, eps, weight_decay, counter=None) -> None
    p -= (lr * weight_decay) * p;  then adam_update's step with weight_decay 0 (decoupled).
adagrad_update(params, grads, accumulator, lr, eps, counter=None) -> None
    a := min(a + g^2, finfo.max);  p -= lr g / sqrt(a + eps)  (Keras' Adagrad).
adamax_update(params, grads, m, u, step, lr, beta1, beta2, eps, counter=None) -> None
    m := m + (g - m)(1 - b1);  u := max(b2 u, |g|);  p -= lr m / ((1 - b1^step)(u + eps)).
nadam_update(params, grads, m, v, step, lr, beta1, beta2, eps, mu_t, mu_next, prod_t, prod_next,
             counter=None) -> None
    m := m + (g - m)(1 - b1);  v := v + (g^2 - v)(1 - b2);  p -= (mu_next m / (1 - prod_next)
    + (1 - mu_t) g / (1 - prod_t)) lr / (sqrt(v / (1 - b2^step)) + eps)  (Keras' Nadam: mu_t the
    momentum schedule at step t, prod_t the product of mu_1 .. mu_t).
clip_gradients(grads, out, bounds, clipnorm, clipvalue, global_clipnorm) -> bool
    out := the gradient clipped as Keras does (0 turns a setting off; at most one is on):
    clipvalue c: clip(g, -c, c);  clipnorm c: each weight tensor g[b_k:b_k+1] times
    c / max(||g_k||_2, c);  global_clipnorm c: all times c / max(sqrt(sum_k ||g_k||^2), c).
    bounds: int64 (K + 1,), 0 = b_0 <= ... <= b_K = len(g). Norms are sums of squares in double
    (the fast backend in a fixed order, whatever the thread count); the scale is rounded once to
    the dtype. g is finite (the optimizer screens it). False, out untouched: nothing changed.
    All updates: counter (a 1-element int64 array, the optimizer's step count) += 1 with the update,
    which a KeyboardInterrupt cannot split: the arrays and the count change together or not.
embedding_forward(ids, table, out, rows) -> int
    out[i] := table[ids[i]], rows[i] := ids[i];  ids (m,) int64 or float, table (v, d), out
    (m, d), rows (m,) int64. The ids are checked as they are read (the one kernel input that
    the boundary cannot check without a pass of its own): returns the first position whose id
    is not an integer in [0, v), before reading its row, or -1 when all are.
embedding_backward(rows, dy, dtable) -> None
    dtable[rows[i]] += dy[i] for i = 0 .. m-1 in that order (accumulates; fixed order).
add_row_vector(x, p, out) -> None
    out[r, :] := x[r, :] + p;  x, out (rows, m) (out may be x), p (m,). A position table added
    to every sample.
sum_rows_into(dy, out) -> None
    out += sum_r dy[r, :];  dy (rows, m), out (m,); each column summed in row order.
attention_forward(q, k, v, key_mask, causal, scale, out, lse, dropout=0.0, dropout_key=0)
    out := (softmax(scale q k^T, masked) * Z) v per (batch, head), lse := the scores' rows'
    log-sum-exp; q (B, H, Lq, D), k (B, H, Lk, D), v (B, H, Lk, Dv), out (B, H, Lq, Dv),
    lse (B, H, Lq). Z: dropout on the weights, keep / (1 - dropout), drawn per element from
    dropout_key (src_c/fnn_attn.h's fnn_attn_keep; 1 everywhere with dropout 0).
attention_backward(q, k, v, out, dout, lse, key_mask, causal, scale, dq, dk, dv, dropout=0.0,
                   dropout_key=0) -> None
    dq, dk, dv := the gradients of out (given dout), recomputed tile by tile from lse (with
    the forward's dropout and dropout_key).
    In both, q, k, v, out, dout, dq, dk, dv may be views whose rows are contiguous (the heads
    of a (B, L, H W) projection in place); outputs' elements must be apart from each other and
    from the inputs (checked element-exactly); lse and key_mask (B, Lk) are C-contiguous.
attention_decode(q, k_new, v_new, k_cache, v_cache, t, scale, out) -> None
    k_cache[:, :, t] := k_new;  v_cache[:, :, t] := v_new;
    out[b, h] := softmax(scale q[b, h] K[b, h, :t+1]^T) V[b, h, :t+1]  (one query per head
    against a key/value cache: generation). q, k_new (B, H, D), v_new (B, H, Dv), caches
    (B, H, Lmax, D) and (B, H, Lmax, Dv), out (B, H, Dv); 0 <= t < Lmax. Checked by both
    backends (fastnn/_validation.py: ValueError/TypeError naming the argument); each out[b, h]
    summed in key order by one thread (bitwise the same at any thread count).
batched_matmul(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0) -> None
    out[i] := alpha op(a[i]) @ op(b[i]) + beta out[i];  3-D C-contiguous arrays (Dot, Attention).
unit_norm_forward(x, epsilon, y, inv) / unit_norm_backward(y, inv, epsilon, dy, dx) -> None
    inv[r] := min(1 / ||x[r]||, 1 / epsilon), y := x inv;  dx := inv (dy - y <dy, y>) (dy inv
    where the cap held);  x, y, dy, dx (R, C), inv (R,) (UnitNormalization, Dot(normalize)).
masked_softmax(s, vmask, causal, out) / softmax_backward(a, da, ds) -> None
    out[b, i] := softmax_j(s[b, i, j] - 1e9 where vmask[b, j] == 0 or (causal and j > i))
    (Keras' rule);  s, out (B, Tq, Tv), vmask (B, Tv) uint8 or None;  ds := a (da - <da, a>)
    per row of (R, C) arrays.
additive_scores(q, k, inner, outer, out) -> None
    out[b, i, j] := sum_d outer[d] tanh(inner (q[b, i, d] + k[b, j, d]));  q (B, Tq, D),
    k (B, Tv, D), outer (D,), out (B, Tq, Tv) (AdditiveAttention, Attention "concat").
additive_scores_backward(q, k, inner, outer, ds, dq, dk, douter, dinner) -> None
    dq, dk := the input gradients;  douter (B, D), dinner (B,): each sample's part of the
    weight gradients (the caller adds them in sample order).
weights_dropout(x, rate, key, out) -> None
    out[b, i, j] := x[b, i, j] keep / (1 - rate), keep drawn as the attention kernels' dropout
    (fnn_attn_keep, one head per sample: key, index (b Tq + i) Tv + j); x, out (B, Tq, Tv)
    (Attention and AdditiveAttention's dropout; the backward applies it to the gradient).
dot_attention_forward(q, k, v, scale, scaled, vmask, causal, qmask, rate, key, raw, A0, A, y)
    Attention(score_mode="dot") in one call: raw := q k^T, A0 := masked_softmax(c raw) (c =
    scale when scaled), A := weights_dropout(A0) when rate > 0, y := A v, rows of masked
    queries (qmask (B, Tq) uint8 0) zeroed; raw may be A0 (unscaled), A may be A0 (no rate).
dot_attention_backward(q, k, v, scale, scaled, qmask, rate, key, raw, A0, A, dy, dscores, dA,
                       dO, dq, dk, dv, parts) -> None
    Its gradients: dv := A^T dO, dA := dS (scratch), dq := c dS k, dk := c dS^T q (into dv
    when dk is None: the value was the key), parts (B,) float64 := sum dS raw per sample when
    scaled; dO scratch for qmask, dscores the scores output's gradient or None.
cosine_forward(x, z, epsilon, xn, zn, invx, invz, y) / cosine_backward(xn, zn, invx, invz,
                                                                    epsilon, g, dx, dz) -> None
    Dot(axes=-1, normalize=True) on x (B, M, K), z (B, N, K): xn, zn := their rows normalized
    (as unit_norm_forward; invx (B, M), invz (B, N)), y := xn zn^T (B, M, N); the backward
    gives dx, dz from g = dL/dy (unit_norm_backward of g zn and g^T xn).
prelu_forward(x, alpha, index, y) -> None
    y := x where x > 0, else alpha[index[j]] * x;  x, y (n, m), alpha (A,), index (m,) int64
    in [0, A) (the slope of each of a sample's values; PReLU's shared axes).
prelu_backward(x, dy, alpha, index, dx, dalpha) -> None
    dx := dy where x > 0, else alpha[index[j]] * dy (skipped when dx is None);
    dalpha[a] += sum of dy * x where x is not > 0 (a NaN x gives NaN, as PyTorch's) over the
    rows and the j with index[j] == a, in double: each column over the rows in order, then the
    columns in order (any thread count).
groupnorm_forward(x, gamma, beta, groups, eps, out, mean, invstd) -> None
    x, out (n, P, C) channels-last, groups G of k = C / G channels: per sample i and group g,
    over its P k values, out := gamma[c] (x - mean[i, g]) invstd[i, g] + beta[c], invstd =
    1 / sqrt(biased var + eps); mean, invstd (n, G). Sums in double per channel over the
    positions in order, then the group's channels in order (a thread owns whole samples).
groupnorm_backward(x, dy, gamma, mean, invstd, dx, dgamma, dbeta) -> None
    xhat = (x - mean) invstd, g = dy gamma[c]; per sample and group (N = P k values):
    dx := invstd / N (N g - sum(g) - xhat sum(g xhat)) (skipped when dx is None);
    dgamma += sum of dy xhat, dbeta += sum of dy over samples and positions (the samples'
    per-channel sums added in sample order).
The fast backend alone also has the decoder's bound kernels (fastnn/_ext/_decode.pyx: arrays
checked and bound at creation, then ``step(t)`` per position, ~0.3 us a call): ``BlockStep`` (a
whole TransformerBlock), ``EmbedStep``, ``AddRowStep``, ``NormStep``, ``DenseStep``;
fastnn/models/decoding.py falls back to the functions above without them.
"""

from importlib import import_module

_NAMES = ("numpy", "fast")


def get_backend(name):
    """Return the backend module called ``name`` ("fast" or "numpy")."""
    if name == "numpy":
        return import_module("fastnn.backends.numpy_backend")
    if name == "fast":
        return import_module("fastnn.backends.fast_backend")
    raise ValueError(f"backend must be one of {_NAMES}. Received: backend={name!r}")


def fast_available():
    """True when the compiled extension imports."""
    try:
        get_backend("fast")
    except ImportError:
        return False
    return True


def default_backend():
    """The compiled backend when it is built, else the NumPy reference."""
    return get_backend("fast" if fast_available() else "numpy")
