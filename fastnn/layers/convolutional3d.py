"""``Conv3D``: convolution over volumes or clips (n, depth, height, width, channels), with
Keras' arguments, output sizes and kernel layout (kd, kh, kw, c_in, filters).

``y[p, i, j, :] = act(bias + sum over taps (kz, ky, kx) of x[p*sd + kz*dd - front,
i*sh + ky*dh - top, j*sw + kx*dw - left, :] @ kernel[kz, ky, kx])``, zeros outside the input.

Kernels: a 3-D convolution is a 2-D one over a depth stack. For each output depth p, the ``kd``
input slices its window reads (zeros where the window passes the padding) are laid side by side
along the channels, (h, w, kd*c), and the 2-D kernels of the backend run on that batch of
n*od images with the kernel viewed as (kh, kw, kd*c, filters). So the compiled backend runs the
packed GEMM's implicit convolution (its patches gathered a bounded chunk at a time, OpenMP,
bitwise alike at any thread count), the NumPy backend its own twin. The forward first asks the
backend's ``conv3d_forward``: where the 2-D convolution of the stack takes the compiled
stride-1 path (src_c/fnn_conv3d.h), that path fills its padded input rows straight from the
5-D x, so the stack is never written (the same bits; a 1.1-1.2x faster forward on a 16^3x8->16
batch, Zen 4); elsewhere it declines and the stack is built here. The backward first asks
the backend's ``conv3d_backward_kernel`` for the kernel and bias gradients without the stack
(src_c/fnn_conv3d.h: the filter-vectorised kernel gradient reading each tap's input slice;
AVX2 and AVX-512, up to 16 channels a slice and two vectors of filters); then dx alone, the
stack's input gradient added back by the backend's ``conv3d_unstack`` or (depth stride 1,
where that pays) the taps-on-output product's below. Where the kernel declines: with a depth
stride above 1 the gradients are the stack's product's: the kernel's and the bias' exactly,
the input's the stack's gradient added back slice by slice in a fixed order. With a depth
stride of 1 the backward
puts the depth taps on the output side instead: every input slice through the kernel read as
(kh, kw, c, kd*filters) gives its contribution to each tap's output slice, so the 2-D backward
of that, given dz gathered per tap, is the kernel gradient and dx itself (a product kd times
wider, nothing to add back; about 1.6x faster on a 16^3x8->16 step). The scratch beyond the
2-D kernels' is the stack (kd/sd times the input; none for kd = sd = 1 without padding) and
that gather (kd times the output), for as many samples at a time as keep each within
``SCRATCH_VALUES`` (larger batches run in chunks, the kernel gradient summed over them in
order): the kd*kh*kw column matrix of a vol2col is never formed.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from fastnn import activations as A
from fastnn.layers.base import FloatArray, Slot, rows_of
from fastnn.layers.convolutional import _Conv, output_gradient
from fastnn.layers.core import forward_keeping_z


def depth_ranges(depth: int, out_depth: int, kd: int, stride: int, dilation: int,
                 front: int) -> list[tuple[int, int, int]]:
    """Per depth tap kz: (first output, end output, first input) of the outputs whose tap kz
    falls inside the input (input index p*stride + kz*dilation - front)."""
    ranges = []
    for kz in range(kd):
        off = kz * dilation - front
        lo = -(off // stride) if off < 0 else 0                   # ceil(-off / stride)
        hi = min(out_depth, (depth - 1 - off) // stride + 1) if depth - 1 - off >= 0 else 0
        hi = max(hi, lo)
        ranges.append((lo, hi, lo * stride + off))
    return ranges


#: the most values (of the model's dtype) a Conv3D's depth stack or gathered gradient holds:
#: larger batches run in chunks of samples (16 MB in float32)
SCRATCH_VALUES = 1 << 22


class Conv3D(_Conv):
    """3-D convolution over volumes or video (channels-last): ``filters`` kernels of
    ``kernel_size`` x input channels, each giving one output channel.

    Parameters
    ----------
    filters : int
        Output channels (kernels), > 0.
    kernel_size : int or (int, int, int)
        Depth, height and width of the kernels.
    strides : int or (int, int, int), default 1
    padding : {"valid", "same"}, default "valid"
        As in ``Conv2D``, on each of the three axes.
    data_format : None or "channels_last"
    dilation_rate : int or (int, int, int), default 1
    activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
    bias_regularizer, name, trainable, groups
        As in ``Conv2D`` (with groups, the kernel is (kd, kh, kw, c // groups, filters), and
        the layer runs the depth stack laid out group by group on the grouped 2-D kernels).

    Shapes: x (n, d, h, w, c), kernel (kd, kh, kw, c, filters) as in Keras, bias (filters,),
    y (n, od, oh, ow, filters). PyTorch's ``Conv3d`` weight (filters, c, kd, kh, kw) is this
    kernel transposed by (4, 3, 0, 1, 2).

    Raises
    ------
    ValueError
        For a non-positive size, an unknown padding or activation, channels-first data, or
        (at build) an input that is not (depth, height, width, channels) or a kernel that does
        not fit it.
    TypeError
        For sizes that are not integers.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> model = fnn.Sequential([fnn.Conv3D(4, 3, padding="same", activation="relu")],
    ...                        input_shape=(6, 8, 8, 1), backend="numpy")
    >>> model.predict(np.zeros((2, 6, 8, 8, 1))).shape
    (2, 6, 8, 8, 4)
    >>> [w.shape for w in model.get_weights()]
    [(3, 3, 3, 1, 4), (4,)]
    """

    rank = 3

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1, 1),
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = (1, 1, 1), activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 name: Optional[str] = None, trainable: bool = True, groups: int = 1) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, name, trainable, groups=groups)

    def bind(self, weights: Sequence[FloatArray], grads: Sequence[FloatArray]) -> None:
        super().bind(weights, grads)
        d, h, w, c = self.input_shape
        (od, oh, ow), (front, top, left) = self._geometry((d, h, w))
        kd, kh, kw = self.kernel_size
        self._od = od
        self._ranges = depth_ranges(d, od, kd, self.strides[0], self.dilation_rate[0], front)
        # no stack when each output depth reads exactly its own input slice
        self._direct = kd == 1 and self.strides[0] == 1 and front == 0 and od == d
        # the backward with the taps on the output side: for a depth stride of 1 (with larger
        # ones its products would run over the slices that no output reads)
        self._taps_out = self.strides[0] == 1 and not self._direct
        self._x4 = (h, w, kd * c)
        self._y4 = (oh, ow, self.filters)
        self._k4 = (kh, kw, kd * c // self.groups, self.filters)
        self._strides, self._dilations = self.strides[1:], self.dilation_rate[1:]
        self._depth = (kd, self.strides[0], self.dilation_rate[0], front)
        self._pads = (top, left)

    # ------------------------------------------------------------------ scratch and chunks
    def _chunk(self) -> int:
        """Samples per pass: as many as keep the depth stack and the gathered gradient within
        ``SCRATCH_VALUES`` values (at least one sample), a number set by the shapes alone."""
        d, h, w, c = self.input_shape
        kd = self.kernel_size[0]
        oh, ow = self._y4[:2]
        per_sample = max(0 if self._direct else self._od * h * w * kd * c,
                         d * oh * ow * kd * self.filters if self._taps_out else 0, 1)
        return max(1, SCRATCH_VALUES // per_sample)

    def _scratch(self, ctx: Slot, key: str, sample_shape: tuple[int, ...], m: int
                 ) -> FloatArray:
        """A chunk's scratch for ``m`` samples: sized by the slot's rows when the whole batch
        fits the budget (no more memory than the batch needs), else by the chunk."""
        step = self._chunk()
        if ctx.capacity <= step:
            return ctx.rows_buffer(key, sample_shape)[:m]
        return ctx.buffer(key, (step, *sample_shape))[:m]

    def _stack(self, ctx: Slot, x: FloatArray) -> FloatArray:
        """(m*od, h, w, kd*c) for the m samples of x: output depth p's window of input
        slices, side by side."""
        m = x.shape[0]
        if self._direct:
            return x.reshape(m * self._od, *self._x4)
        d, h, w, c = self.input_shape
        kd, sd = self.kernel_size[0], self.strides[0]
        stack = self._scratch(ctx, "stack", (self._od, h, w, kd, c), m)
        for kz, (lo, hi, first) in enumerate(self._ranges):
            stack[:, :lo, :, :, kz] = 0
            stack[:, hi:, :, :, kz] = 0
            if hi > lo:
                stack[:, lo:hi, :, :, kz] = x[:, first:first + (hi - lo - 1) * sd + 1:sd]
        return stack.reshape(m * self._od, *self._x4)

    def _unstack(self, be: Any, dstack: FloatArray, dx: FloatArray) -> None:
        """dx := the stack's gradient added back into the slices it was gathered from (the
        backend's conv3d_unstack: taps in order, each slice alone, so the sums are the same at
        any thread count)."""
        m = dx.shape[0]
        be.conv3d_unstack(dstack.reshape(m, self._od, *self._x4), self._depth, dx)

    def _kernel2d(self, ctx: Slot) -> FloatArray:
        """The kernel as the 2-D kernels take it: (kh, kw, kd*c, filters)."""
        k2 = ctx.buffer("kernel2d", self._k4)
        k2.reshape(*self.kernel_size[1:], self.kernel_size[0], -1)[...] = \
            self.kernel.transpose(1, 2, 0, 3, 4).reshape(
                *self.kernel_size[1:], self.kernel_size[0], -1)
        return k2

    # ------------------------------------------------------------------ groups > 1
    # The stack's channels are (kz, c); a group's are then spread over the kd taps. Laid out
    # group-major, (g, kz, c // g), each group's stacked channels are one run, and the grouped
    # 2-D kernels (one convolution a group, conv2d_grouped_forward/backward) run on it with the
    # kernel read (kh, kw, kd * c // g, filters), as _kernel2d reads it.
    def _group_major(self, ctx: Slot, stack: FloatArray, key: str, back: bool = False
                     ) -> FloatArray:
        """(M, h, w, kd*c) stack channels (kz, g, j) -> (g, kz, j), or back."""
        kd, groups = self.kernel_size[0], self.groups
        cg = self.input_shape[-1] // groups
        M = stack.shape[0]
        out = ctx.buffer(key, stack.shape)
        src = stack.reshape(M, *self._x4[:2], *((groups, kd, cg) if back else (kd, groups, cg)))
        out.reshape(src.shape[:3] + (src.shape[4], src.shape[3], cg))[...] = \
            src.transpose(0, 1, 2, 4, 3, 5)
        return out

    def _stack_grouped_forward(self, ctx: Slot, x: FloatArray, act: int,
                               out: FloatArray) -> None:
        n, step = x.shape[0], self._chunk()
        k2 = self._kernel2d(ctx)
        inner = A.LINEAR if act == A.SOFTMAX else act
        for b0 in range(0, n, step):
            b1 = min(n, b0 + step)
            stack = self._group_major(ctx, self._stack(ctx, x[b0:b1]), "gstack")
            ctx.be.conv2d_grouped_forward(stack, k2, self.bias, self._strides, self._dilations,
                                          self._pads, self.groups, inner, self.param,
                                          out[b0:b1].reshape((b1 - b0) * self._od, *self._y4))
        if inner != act:
            ctx.be.activation_forward(rows_of(out), act, self.param, rows_of(out))

    # ------------------------------------------------------------------ compute
    def forward(self, ctx: Slot, x: FloatArray, training: bool) -> FloatArray:
        y = ctx.rows_buffer("y", self.output_shape)
        x = np.ascontiguousarray(x)
        ctx.saved["x"] = x
        n, step = x.shape[0], self._chunk()
        k2 = self._kernel2d(ctx)

        def kernel(act: int, out: FloatArray) -> None:
            if self.groups > 1:
                self._stack_grouped_forward(ctx, x, act, out)
                return
            # the backend's 3-D forward first: the compiled one fills its stride-1 path's
            # padded rows from x itself (no stack), or declines and the stack is built here
            if not self._direct and ctx.be.conv3d_forward(
                    x, k2, self.bias, self._depth, self._strides, self._dilations, self._pads,
                    act, self.param, out):
                return
            for b0 in range(0, n, step):
                b1 = min(n, b0 + step)
                ctx.be.conv2d_forward(self._stack(ctx, x[b0:b1]), k2, self.bias,
                                      self._strides, self._dilations, self._pads, act,
                                      self.param,
                                      out[b0:b1].reshape((b1 - b0) * self._od, *self._y4))
        ctx.saved["z"] = forward_keeping_z(ctx, self, training, y, kernel)
        return y

    def backward(self, ctx: Slot, dy: FloatArray) -> Optional[FloatArray]:
        act = A.LINEAR if ctx.fuse_act else self.act
        dx = ctx.dx_target(0)
        dz = output_gradient(ctx, self, dy, act)
        if self.groups > 1:
            self._backward_stacked(ctx, dz, dx)
            return dx
        if not self._direct and ctx.be.conv3d_backward_kernel(
                ctx.saved["x"], dz, self._depth, self._strides, self._dilations, self._pads,
                self.dkernel, self.dbias):
            # the kernel and bias gradients without the stack (src_c/fnn_conv3d.h)
            if not self.use_bias:
                self.dbias[...] = 0
            if dx is not None:
                self._input_gradient(ctx, dz, dx)
        elif self._taps_out and not (dx is not None and self._stacked_dx_pays(ctx.be)):
            self._backward_taps_out(ctx, dz, dx)
        else:
            self._backward_stacked(ctx, dz, dx)
        return dx

    def _input_gradient(self, ctx: Slot, dz: FloatArray, dx: FloatArray) -> None:
        """dx alone, chunk by chunk: with a depth stride of 1 and the taps' product on the
        faster path, that product's input gradient given dz gathered per tap (as in
        ``_backward_taps_out``); else the stack's gradient (the 2-D input gradient, which reads
        no stack) added back slice by slice."""
        n, step = dz.shape[0], self._chunk()
        d, h, w, c = self.input_shape
        kd, kh, kw = self.kernel_size
        f = self.filters
        oh, ow = self._y4[:2]
        geometry = (self._strides, self._dilations, self._pads)
        if n == 0:
            dx[...] = 0
            return
        taps = self._taps_out and not self._stacked_dx_pays(ctx.be)
        if taps:
            kt = ctx.buffer("kernel_taps", (kh, kw, c, kd * f))
            kt.reshape(kh, kw, c, kd, f)[...] = self.kernel.transpose(1, 2, 3, 0, 4)
        else:
            k2 = self._kernel2d(ctx)
        for b0 in range(0, n, step):
            b1 = min(n, b0 + step)
            m = b1 - b0
            if taps:
                ctx.be.conv2d_backward_input(kt, self._gather_taps(ctx, dz[b0:b1]), *geometry,
                                             dx[b0:b1].reshape(m * d, h, w, c))
                continue
            dstack = self._scratch(ctx, "dstack", (self._od, *self._x4), m)
            ctx.be.conv2d_backward_input(k2, dz[b0:b1].reshape(m * self._od, *self._y4),
                                         *geometry, dstack.reshape(m * self._od, *self._x4))
            self._unstack(ctx.be, dstack, dx[b0:b1])

    def _gather_taps(self, ctx: Slot, dz: FloatArray) -> FloatArray:
        """(m*d, oh, ow, kd*filters) for the m samples of dz: at input slice i, tap kz's
        channels hold dz at the output depth whose tap kz reads slice i (zero where none): the
        transpose of the forward's sum over taps, for a depth stride of 1."""
        m = dz.shape[0]
        d = self.input_shape[0]
        oh, ow = self._y4[:2]
        dtaps = self._scratch(ctx, "dtaps", (d, oh, ow, self.kernel_size[0], self.filters), m)
        for kz, (lo, hi, first) in enumerate(self._ranges):
            dtaps[:, :first, :, :, kz] = 0
            dtaps[:, first + hi - lo:, :, :, kz] = 0
            dtaps[:, first:first + hi - lo, :, :, kz] = dz[:, lo:hi]
        return dtaps.reshape(m * d, oh, ow, -1)

    def _stacked_dx_pays(self, be: Any) -> bool:
        """True when the stacked backward's input gradient runs on a faster compiled path than
        the taps-on-output one's, which then runs on the GEMM with the transposed gather: on
        AVX-512, the 16^3x8->16 step's dx of 8 channels has no stride-1 kernel (16 lanes for 8
        values) while the stack's of 24 has (there its step ran 1.05-1.4x faster stacked; on
        AVX2 the taps' dx has one, and ran 1.2-1.4x faster). Set by the shapes and flavour."""
        d, h, w, c = self.input_shape
        kd, kh, kw = self.kernel_size
        f = self.filters
        oh, ow = self._y4[:2]
        geometry = (self._strides, self._dilations, self._pads)
        return (be.conv2d_dx_on_gemm((1, h, w, c), (kh, kw, c, kd * f), (1, oh, ow, kd * f),
                                     *geometry)
                and not be.conv2d_dx_on_gemm((1, *self._x4), self._k4, (1, oh, ow, f),
                                             *geometry))

    def _backward_stacked(self, ctx: Slot, dz: FloatArray, dx: Optional[FloatArray]) -> None:
        """The 2-D backward of the forward's product, chunk by chunk: the kernel and bias
        gradients summed over the chunks in order, dx the stack's gradient added back. With
        groups, the stack is group-major and runs on the grouped 2-D kernels."""
        x = ctx.saved["x"]
        n, step = dz.shape[0], self._chunk()
        kd, kh, kw = self.kernel_size
        grouped = self.groups > 1
        k2 = self._kernel2d(ctx)
        dk2 = ctx.buffer("dkernel2d", self._k4)
        part, bpart = ctx.buffer("dkernel2d_part", self._k4), ctx.buffer("dbias_part",
                                                                          (self.filters,))
        dk2[...] = 0
        self.dbias[...] = 0
        for b0 in range(0, n, step):
            b1 = min(n, b0 + step)
            m = b1 - b0
            dzm = dz[b0:b1].reshape(m * self._od, *self._y4)
            dstack = None
            if grouped:
                stack = self._group_major(ctx, self._stack(ctx, x[b0:b1]), "gstack")
                if dx is not None:
                    dstack = ctx.buffer("gdstack", stack.shape)
                ctx.be.conv2d_grouped_backward(stack, k2, dzm, self._strides, self._dilations,
                                               self._pads, self.groups, part, bpart, dstack)
            else:
                stack = self._stack(ctx, x[b0:b1])
                if dx is not None:
                    dstack = (dx[b0:b1] if self._direct else
                              self._scratch(ctx, "dstack", (self._od, *self._x4), m)
                              ).reshape(stack.shape)
                ctx.be.conv2d_backward(stack, k2, dzm, self._strides, self._dilations,
                                       self._pads, part, bpart, dstack)
            dk2 += part
            self.dbias += bpart
            if dstack is None:
                continue
            if grouped:
                dstack = self._group_major(ctx, dstack, "gdstack_back", back=True)
                if self._direct:
                    dx[b0:b1] = dstack.reshape(dx[b0:b1].shape)      # type: ignore[index]
                    continue
            if grouped or not self._direct:
                self._unstack(ctx.be, dstack, dx[b0:b1])    # type: ignore[index]
        if dx is not None and n == 0:
            dx[...] = 0
        self.dkernel[...] = dk2.reshape(kh, kw, kd, *self.dkernel.shape[3:]).transpose(
            2, 0, 1, 3, 4)
        if grouped and not self.use_bias:
            self.dbias[...] = 0

    def _backward_taps_out(self, ctx: Slot, dz: FloatArray, dx: Optional[FloatArray]) -> None:
        """The gradients of a depth stride of 1 with the depth taps on the output side: the
        2-D convolution of every input slice (n*d, h, w, c) with the kernel read as
        (kh, kw, c, kd*filters) gives each slice's contribution to each tap's output, so its
        backward, given dL/d(that) (dz gathered per tap: the transpose of the forward's sum
        over taps), yields the kernel gradient and dx directly: no stack to add back, and a
        product kd times as wide. Chunk by chunk, the kernel gradient summed in order."""
        x = ctx.saved["x"]
        n, step = dz.shape[0], self._chunk()
        d, h, w, c = self.input_shape
        kd, kh, kw = self.kernel_size
        f = self.filters
        oh, ow = self._y4[:2]
        kt = ctx.buffer("kernel_taps", (kh, kw, c, kd * f))
        kt.reshape(kh, kw, c, kd, f)[...] = self.kernel.transpose(1, 2, 3, 0, 4)
        dkt = ctx.buffer("dkernel_taps", (kh, kw, c, kd * f))
        part = ctx.buffer("dkernel_taps_part", (kh, kw, c, kd * f))
        dbt = ctx.buffer("dbias_taps", (kd * f,))
        dkt[...] = 0
        for b0 in range(0, n, step):
            b1 = min(n, b0 + step)
            m = b1 - b0
            ctx.be.conv2d_backward(x[b0:b1].reshape(m * d, h, w, c), kt,
                                   self._gather_taps(ctx, dz[b0:b1]), self._strides,
                                   self._dilations, self._pads, part, dbt,
                                   None if dx is None else dx[b0:b1].reshape(m * d, h, w, c))
            dkt += part
        self.dkernel[...] = dkt.reshape(kh, kw, c, kd, f).transpose(3, 0, 1, 2, 4)
        self.dbias[...] = 0
        if self.use_bias:
            ctx.be.sum_rows_into(rows_of(dz), self.dbias)


Convolution3D = Conv3D
__all__ = ["Conv3D", "Convolution3D", "depth_ranges"]
