/*
 * The GEMM epilogue, C[i, j] := act(C[i, j] + bias[j]) on an m x n block, written once and
 * compiled per instruction set (the portable copy in fnn_gemm.c, a static copy in each SIMD
 * kernel file, so that the compiler vectorises it with that file's vectors). Every copy does the
 * same operations in the same order: identical results.
 *
 * With amax, the largest |C[i, j]| bit pattern is folded into *amax as each row is finished (see
 * FNN_ABS_BITS_F32 in fnn_gemm_internal.h).
 *
 * Required macros: EPI_FN (the function's name), EPI_STORAGE (empty or static), EPI_TARGET
 * (function attribute, may be empty), FT, UT (the unsigned integer of FT's width), UT_ABS (the
 * mask of all but the sign bit), FT_EXP, FT_TANH, FT_GELU, FT_GELU_TANH (fnn_gelu.h's functions),
 * FT_KERAS_ACT (fnn_keras_act_f32/f64 of fnn_act_keras.h: elu, selu, softplus, silu).
 * Optional: FT_GELU_BLOCK(C, ldc, m, n), C[i, j] := FT_GELU(C[i, j]) on the block (a SIMD
 * flavour's, fnn_gelu_simd.h: the same bits), used in place of the rows' gelu loops.
 */
EPI_STORAGE EPI_TARGET void EPI_FN(FT *C, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, const FT *bias,
                                   int act, FT param, UT *amax)
{
    ptrdiff_t i, j;
    UT mx = amax ? *amax : 0;
#ifdef FT_GELU_BLOCK
    if (act == FNN_ACT_GELU) {
        /* bias, then gelu over the whole block (a tile's rows are short: its vectors are taken
         * together across rows), then the loop below only folds amax: per element as there */
        if (bias)
            for (i = 0; i < m; i++)
                for (j = 0; j < n; j++) C[i * ldc + j] += bias[j];
        FT_GELU_BLOCK(C, ldc, m, n);
        bias = NULL;
        act = FNN_ACT_LINEAR;
    }
#endif
    for (i = 0; i < m; i++) {
        FT *c = C + i * ldc;
        if (bias)
            for (j = 0; j < n; j++) c[j] += bias[j];
        switch (act) {
        case FNN_ACT_STEP:
            for (j = 0; j < n; j++) c[j] = (c[j] >= param) ? (FT)1 : (FT)0;
            break;
        case FNN_ACT_SIGMOID:
            /* exp of -|z| never overflows (same formula as the NumPy reference) */
            for (j = 0; j < n; j++) {
                const FT z = c[j];
                if (z >= (FT)0) {
                    c[j] = (FT)1 / ((FT)1 + FT_EXP(-z));
                } else {
                    const FT e = FT_EXP(z);
                    c[j] = e / ((FT)1 + e);
                }
            }
            break;
        case FNN_ACT_TANH:
            for (j = 0; j < n; j++) c[j] = FT_TANH(c[j]);
            break;
        case FNN_ACT_GELU:
            for (j = 0; j < n; j++) c[j] = FT_GELU(c[j]);
            break;
        case FNN_ACT_GELU_TANH:
            for (j = 0; j < n; j++) c[j] = FT_GELU_TANH(c[j]);
            break;
        /* a loop per code (the code a constant in each): vectorised in the float copies */
        case FNN_ACT_ELU:
            for (j = 0; j < n; j++) c[j] = FT_KERAS_ACT(FNN_ACT_ELU, c[j], param);
            break;
        case FNN_ACT_SELU:
            for (j = 0; j < n; j++) c[j] = FT_KERAS_ACT(FNN_ACT_SELU, c[j], param);
            break;
        case FNN_ACT_SOFTPLUS:
            for (j = 0; j < n; j++) c[j] = FT_KERAS_ACT(FNN_ACT_SOFTPLUS, c[j], param);
            break;
        case FNN_ACT_SILU:
            for (j = 0; j < n; j++) c[j] = FT_KERAS_ACT(FNN_ACT_SILU, c[j], param);
            break;
        case FNN_ACT_RELU:
            /* like np.maximum(z, 0): NaN propagates */
            for (j = 0; j < n; j++) c[j] = (c[j] < (FT)0) ? (FT)0 : c[j];
            break;
        case FNN_ACT_LEAKY_RELU:
            for (j = 0; j < n; j++) c[j] = (c[j] > (FT)0) ? c[j] : param * c[j];
            break;
        default: /* LINEAR (SOFTMAX is never passed here) */
            break;
        }
        if (amax)
            for (j = 0; j < n; j++) {
                UT u;
                memcpy(&u, c + j, sizeof u);
                u &= UT_ABS;
                mx = u > mx ? u : mx;
            }
    }
    if (amax) *amax = mx;
}

