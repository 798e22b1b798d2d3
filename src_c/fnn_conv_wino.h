/*
 * fastnn's Winograd convolution F(2x2, 3x3) for 3x3, stride-1, undilated convolutions of many
 * channels (called by fnn_conv.c: the forward, and dx as the forward of dz with the kernel
 * flipped and transposed).
 *
 * Each 2x2 tile of outputs reads a 4x4 tile of inputs d (zeros outside the image), and
 *   y_tile = A^T [ (G g G^T) (.) (B^T d B) ] A        ((.) element-wise, summed over channels)
 * with the points 0, 1, -1:
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]     (input transform: additions only)
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]    (kernel transform: once per call)
 *   A^T = [1 1 1 0; 0 1 -1 -1]                        (output transform: additions only)
 * The sum over channels is, for each of the 16 tile elements xi, one GEMM: V_xi (tiles x c)
 * times U_xi (c x f), on the packed GEMM (its run-time micro-kernel, U_xi packed once per call):
 * 16 products of c*f per tile of 4 outputs where the direct convolution does 36, so 2.25x
 * fewer multiply-adds, for two transforms that cost additions per value.
 *
 * Work goes in blocks of whole tile rows (the 2 output rows of one image a tile row covers are
 * contiguous in y, so each block applies the bias and the activation to its own rows, as the
 * GEMM epilogue does elsewhere). Per thread the call keeps one block's transformed inputs and
 * products (16 x tiles x (c + f) values, tiles ~ FNN_WINO_TILES), whatever the batch. Blocks
 * depend on the shapes alone and each output sums its products in a fixed order whoever
 * computes it: results are bitwise the same at any thread count.
 *
 * Rounding: the transforms add up to 9 values of each side, so a float32 output differs from
 * the direct sum by a few units in the last place of the values' magnitude (as oneDNN's and
 * cuDNN's Winograd convolutions do). B^T and A^T are sparse in just the way the windows are:
 * a NaN in one input reaches exactly the outputs whose window holds it, as in the direct sum
 * (an infinity may come out as NaN where the direct sum gives an infinity).
 * FASTNN_CONV_WINOGRAD=0 in the environment turns the path off (read once).
 */
#ifndef FNN_CONV_WINO_H
#define FNN_CONV_WINO_H

#include "fnn_conv.h"

/* Tiles of a block: at least this many (whole tile rows). */
#define FNN_WINO_TILES 64
/* Channels in and filters out the path takes from, and their least product: measured on Zen 2
 * (AVX2) at 1 thread against the stride-1 path, batch 32, 16x16 and 32x32 images: 64 -> 64
 * forward 1.6-1.8x, 32 -> 64 and 64 -> 32 1.1-1.4x, 128 -> 128 1.2-1.35x, 32 -> 32 even, 16 in
 * or out 0.6-0.95x (the transforms, which grow with c + f, outweigh the products' c * f). */
#define FNN_WINO_MIN_C 32
#define FNN_WINO_MIN_F 32
#define FNN_WINO_MIN_CF 2048

/* 1 when the forward convolution g takes the Winograd path, else 0 (fnn_conv.c; the driver,
 * fnn_conv_wino_drv_tmpl.h, and the transforms, fnn_conv_wino_tmpl.h, are compiled into it). */
int fnn_conv_wino_use(const fnn_conv_geom *g);

/* 1 when the input gradient of g takes it (as the forward of dz). */
int fnn_conv_wino_dx_use(const fnn_conv_geom *g);

#endif /* FNN_CONV_WINO_H */
