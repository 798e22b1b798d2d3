"""``Conv3DTranspose``: the transposed 3-D convolution (volumes grown, as in a 3-D generator or
decoder), with Keras' arguments, output sizes and kernel layout (kd, kh, kw, filters, c).

It is the input gradient of the ``Conv3D`` whose input has this layer's output shape, whose
output has this layer's input shape, and whose kernel is this one (Keras reads a transposed
kernel as that convolution's (kd, kh, kw, c_in, filters)). So its kernels are that
convolution's, run over the depth stack as ``Conv3D`` does (fastnn/layers/convolutional3d.py):

- forward: for each input slice x[b, p] the 2-D transposed convolution with the kernel read as
  (kh, kw, kd*filters, c) gives its contribution to every depth tap at once (the stack's
  gradient, kd times one output slice), added into output slice p*sd + kz*dd - front tap by
  tap, in order (the backend's conv3d_unstack: the same sums at any thread count), then the
  bias and activation;
- backward: dx is the convolution's forward on dz (the backend's conv3d_forward: without the
  stack where the compiled kernel takes the shape), and the kernel gradient the convolution's,
  with dz as its input and x as its output gradient (the backend's conv3d_backward_kernel,
  without the stack where the compiled kernel takes the shape; else dz's depth stack and the
  2-D kernels).

Scratch: the stack of dz or the tap contributions, kd/sd times the output, for the batch.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from fastnn import activations as A
from fastnn.layers.base import FloatArray, Slot
from fastnn.layers.convolutional import Conv2DTranspose, output_gradient
from fastnn.layers.convolutional3d import depth_ranges
from fastnn.layers.core import forward_keeping_z


class Conv3DTranspose(Conv2DTranspose):
    """Transposed 3-D convolution (channels-last): each input position spreads its channels
    over a ``kernel_size`` window of the output, windows ``strides`` apart, overlaps adding up;
    the exact transpose of a ``Conv3D`` with the same kernel, strides and padding.

    Parameters
    ----------
    filters : int
        Output channels, > 0.
    kernel_size, strides, dilation_rate : int or (int, int, int)
    padding : {"valid", "same"}, default "valid"
        ``same``: the output is input * strides; ``valid``: input * strides + max(span -
        strides, 0) per axis, span = (kernel_size - 1) * dilation_rate + 1 (Keras' lengths).
    output_padding : int or (int, int, int), optional
        As in ``Conv2DTranspose``: each below its stride.
    data_format, activation, use_bias, kernel_initializer, bias_initializer,
    kernel_regularizer, bias_regularizer, name, trainable
        As in ``Conv3D``.

    Shapes: x (n, d, h, w, c), kernel (kd, kh, kw, filters, c) as in Keras, bias (filters,),
    y (n, od, oh, ow, filters). PyTorch's ``ConvTranspose3d`` weight (c, filters, kd, kh, kw) is
    this kernel transposed by (4, 3, 0, 1, 2).

    Raises
    ------
    ValueError
        As ``Conv2DTranspose``'s, for an input that is not (depth, height, width, channels).
    TypeError
        For sizes that are not integers.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Conv3DTranspose(4, 3, strides=2, padding="same")],
    ...                        input_shape=(3, 4, 4, 8), backend="numpy")
    >>> model.predict(np.zeros((2, 3, 4, 4, 8))).shape
    (2, 6, 8, 8, 4)
    >>> [w.shape for w in model.get_weights()]
    [(3, 3, 3, 4, 8), (4,)]
    """

    rank = 3

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1, 1),
                 padding: str = "valid", output_padding: Any = None,
                 data_format: Optional[str] = None, dilation_rate: Any = (1, 1, 1),
                 activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(filters, kernel_size, strides, padding, output_padding, data_format,
                         dilation_rate, activation, use_bias, kernel_initializer,
                         bias_initializer, kernel_regularizer, bias_regularizer, name,
                         trainable)

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        d, h, w, c = self.input_shape
        (od, oh, ow), (front, top, left) = self._geometry((d, h, w))
        kd, kh, kw = self.kernel_size
        f = self.filters
        # the convolution this is the transpose of: input (od, oh, ow, f), output (d, h, w, c)
        self._ranges = depth_ranges(od, d, kd, self.strides[0], self.dilation_rate[0], front)
        self._depth = (kd, self.strides[0], self.dilation_rate[0], front)
        self._stack4 = (oh, ow, kd * f)                  # a slice of the conv input's stack
        self._x4 = (h, w, c)                             # a slice of the conv output
        self._k2 = (kh, kw, kd * f, c)
        self._strides, self._dilations = self.strides[1:], self.dilation_rate[1:]
        self._pads = (top, left)

    def _kernel2d(self, ctx: Slot) -> FloatArray:
        """The kernel as the 2-D kernels take it: (kh, kw, kd*filters, c)."""
        k2 = ctx.buffer("kernel2d", self._k2)
        k2.reshape(self._k2[0], self._k2[1], self.kernel_size[0], -1)[...] = \
            self.kernel.transpose(1, 2, 0, 3, 4).reshape(
                self._k2[0], self._k2[1], self.kernel_size[0], -1)
        return k2

    def _stack(self, ctx: Slot, dz: FloatArray) -> FloatArray:
        """dz's depth stack (n*d, oh, ow, kd*filters): the convolution's input slices that
        output slice p reads, side by side (zeros past dz's depth)."""
        n, sd = dz.shape[0], self.strides[0]
        d = self.input_shape[0]
        oh, ow, _ = self._stack4
        stack = ctx.rows_buffer("stack", (d, oh, ow, self.kernel_size[0], self.filters))[:n]
        for kz, (lo, hi, first) in enumerate(self._ranges):
            stack[:, :lo, :, :, kz] = 0
            stack[:, hi:, :, :, kz] = 0
            if hi > lo:
                stack[:, lo:hi, :, :, kz] = dz[:, first:first + (hi - lo - 1) * sd + 1:sd]
        return stack.reshape(n * d, *self._stack4)

    # ------------------------------------------------------------------ compute
    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        x = np.ascontiguousarray(x)
        ctx.saved["x"] = x
        n, d = x.shape[0], self.input_shape[0]
        k2 = self._kernel2d(ctx)

        def kernel(act: int, out: FloatArray) -> None:
            taps = ctx.rows_buffer("taps", (d, *self._stack4))[:n]
            ctx.be.conv2d_backward_input(k2, x.reshape(n * d, *self._x4), self._strides,
                                         self._dilations, self._pads,
                                         taps.reshape(n * d, *self._stack4))
            # the taps added into the output slices they reach, in order (Conv3D's unstack)
            ctx.be.conv3d_unstack(taps.reshape(n, d, *self._stack4), self._depth, out)
            self._bias_and_activation(ctx, out, act)
        ctx.saved["z"] = forward_keeping_z(ctx, self, training, y, kernel)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        act = A.LINEAR if ctx.fuse_act else self.act
        x, dx = ctx.saved["x"], ctx.dx_target(0)
        n, d = x.shape[0], self.input_shape[0]
        dz = output_gradient(ctx, self, dy, act)
        k2 = self._kernel2d(ctx)
        stack: Optional[FloatArray] = None
        # the kernel gradient without dz's stack where the compiled kernel takes the shape
        # (src_c/fnn_conv3d.h; dz plays the convolution's input, x its output gradient)
        if not ctx.be.conv3d_backward_kernel(dz, x, self._depth, self._strides,
                                             self._dilations, self._pads, self.dkernel,
                                             self._conv_dbias):
            stack = self._stack(ctx, dz)
            dk2 = ctx.buffer("dkernel2d", self._k2)
            ctx.be.conv2d_backward(stack, k2, x.reshape(n * d, *self._x4), self._strides,
                                   self._dilations, self._pads, dk2, self._conv_dbias, None)
            kd, kh, kw = self.kernel_size
            self.dkernel[...] = dk2.reshape(kh, kw, kd, self.filters, -1).transpose(
                2, 0, 1, 3, 4)
        self._bias_gradient(ctx, dz)
        if dx is not None:
            # the convolution's forward of dz: stackless where the compiled kernel takes it
            if not ctx.be.conv3d_forward(dz, k2, self._conv_bias, self._depth, self._strides,
                                         self._dilations, self._pads, A.LINEAR, 0.0, dx):
                ctx.be.conv2d_forward(self._stack(ctx, dz) if stack is None else stack, k2,
                                      self._conv_bias, self._strides, self._dilations,
                                      self._pads, A.LINEAR, 0.0, dx.reshape(n * d, *self._x4))
        return dx


Convolution3DTranspose = Conv3DTranspose
__all__ = ["Conv3DTranspose", "Convolution3DTranspose"]
