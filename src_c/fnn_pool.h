/*
 * Max pooling over one output row of one image, channels-last (fastnn/_ext/_pooling.pyx calls
 * it per (image, output row)): window ox covers rows y0..y1-1 and columns ox*sw - left ..
 * + pw - 1 (clipped to the input) of the image x (h, w, c). y[ox*c + k] := the largest element
 * of the window in channel k and argmax[ox*c + k] := its index iy*w + ix, the first one in window
 * order on ties; a NaN replaces a number (it propagates, as in PyTorch). A window with no input
 * element gives 0 and -1.
 *
 * Written in C with compare-selects over the channels (the contiguous axis), which the compiler
 * turns into vector blends: branching on random data mispredicts every other element.
 */
#ifndef FNN_POOL_H
#define FNN_POOL_H

#include <stddef.h>
#include <stdint.h>

void fnn_maxpool_row_f32(const float *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t y0,
                         ptrdiff_t y1, ptrdiff_t ow, ptrdiff_t pw, ptrdiff_t sw, ptrdiff_t left,
                         float *y, int64_t *argmax);
void fnn_maxpool_row_f64(const double *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t y0,
                         ptrdiff_t y1, ptrdiff_t ow, ptrdiff_t pw, ptrdiff_t sw, ptrdiff_t left,
                         double *y, int64_t *argmax);

/* The backward of a relu then max pooling with windows that do not overlap, one image:
 * dx (h, w, c) := (0 + dy) * (y > 0) at each window's argmax, 0 elsewhere (see fnn_pool.c). */
void fnn_maxpool_relu_back_f32(const float *dy, const int64_t *argmax, const float *y,
                               ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t oh, ptrdiff_t ow,
                               float *dx);
void fnn_maxpool_relu_back_f64(const double *dy, const int64_t *argmax, const double *y,
                               ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t oh, ptrdiff_t ow,
                               double *dx);

#endif /* FNN_POOL_H */
