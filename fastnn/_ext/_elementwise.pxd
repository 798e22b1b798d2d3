# Per-element math shared by the kernels: one source for float32 and float64 (`floating`).
#
# Each helper is a tiny inline function, so the loops that call it stay free of Python and the C
# compiler can inline, unswitch the `act` switch out of the loop, and vectorise.
# Codes are FNN_ACT_* of src_c/fnn_gemm.h (= fastnn.activations).

from cython cimport floating
from libc.math cimport exp, expf, log, logf, log1p, tanh, tanhf, sqrt, sqrtf

cdef extern from "fnn_gelu.h" nogil:
    # gelu and its tanh approximation, and their derivatives from the pre-activation z: the
    # same functions as the GEMM epilogue's (src_c/fnn_gelu.h)
    float fnn_gelu_f32(float z)
    double fnn_gelu_f64(double z)
    float fnn_gelu_tanh_f32(float z)
    double fnn_gelu_tanh_f64(double z)
    float fnn_gelu_deriv_f32(float z)
    double fnn_gelu_deriv_f64(double z)
    float fnn_gelu_tanh_deriv_f32(float z)
    double fnn_gelu_tanh_deriv_f64(double z)


cdef extern from "fnn_act_keras.h" nogil:
    # Keras' elu, selu, softplus, silu (codes 10..13) and their derivatives (from y; silu's from
    # z), the GEMM epilogue's functions (src_c/fnn_act_keras.h); param is elu's alpha
    float fnn_keras_act_f32(int act, float z, float param)
    double fnn_keras_act_f64(int act, double z, double param)
    float fnn_keras_deriv_f32(int act, float y, float param)
    double fnn_keras_deriv_f64(int act, double y, double param)


cdef inline floating f_exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating f_log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating f_sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating sigmoid(floating z) noexcept nogil:
    """1 / (1 + exp(-z)); exp is only taken of a non-positive number, so it never overflows."""
    cdef floating e
    if z >= 0:
        return 1 / (1 + f_exp(-z))
    e = f_exp(z)
    return e / (1 + e)


cdef inline floating act_forward(int act, floating z, floating param) noexcept nogil:
    """y := act(z) for the element-wise codes (softmax is row-wise, see the callers)."""
    if act == 1:                       # step: param is the threshold
        return 1 if z >= param else 0
    if act == 2:
        return sigmoid(z)
    if act == 3:
        if floating is float:
            return tanhf(z)
        else:
            return tanh(z)
    if act == 4:
        return z if z > 0 else 0
    if act == 5:                       # leaky relu: param is the negative slope
        return z if z > 0 else param * z
    if act == 7:
        if floating is float:
            return fnn_gelu_f32(z)
        else:
            return fnn_gelu_f64(z)
    if act == 8:
        if floating is float:
            return fnn_gelu_tanh_f32(z)
        else:
            return fnn_gelu_tanh_f64(z)
    if 10 <= act <= 13:                # elu (param: alpha), selu, softplus, silu
        if floating is float:
            return fnn_keras_act_f32(act, z, param)
        else:
            return fnn_keras_act_f64(act, z, param)
    return z                           # linear


cdef inline floating act_deriv(int act, floating y, floating param) noexcept nogil:
    """dy/dz written with the OUTPUT y = act(z), the value the layers keep; for gelu (7, 8),
    whose derivative is not a function of its output, `y` is the pre-activation z (silu, 13,
    too); for 9 (FNN_ACT_DERIV_GIVEN, backward passes only) `y` is the derivative itself."""
    if act == 9:
        return y
    if 10 <= act <= 13:                # elu, selu, softplus from y; silu from z
        if floating is float:
            return fnn_keras_deriv_f32(act, y, param)
        else:
            return fnn_keras_deriv_f64(act, y, param)
    if act == 7:
        if floating is float:
            return fnn_gelu_deriv_f32(y)
        else:
            return fnn_gelu_deriv_f64(y)
    if act == 8:
        if floating is float:
            return fnn_gelu_tanh_deriv_f32(y)
        else:
            return fnn_gelu_tanh_deriv_f64(y)
    if act == 2:
        return y * (1 - y)
    if act == 3:
        return 1 - y * y
    if act == 4:
        return 1 if y > 0 else 0
    if act == 5:                       # y > 0 exactly when z > 0 (for param >= 0)
        return 1 if y > 0 else param
    return 1                           # linear; step passes the gradient straight through
