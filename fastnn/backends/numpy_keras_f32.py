"""Keras' elu, selu, softplus and silu in float32: the NumPy twin of src_c/fnn_act_keras.h's
float functions, the same IEEE operations in the same order on float32 arrays, so that both
backends give the same bits (see that header for the method and its accuracy: a few ulps).

The compiled kernels run with subnormals read as zero and flushed to zero (src_c/fnn_ftz.h);
this twin applies the same rule to its inputs (``_daz``) and where an intermediate may fall
below the smallest normal float (``_ftz``). NumPy's float32 operations round as C's float ones;
every constant is a float32 and every integer an int32, so nothing is widened on the way.
"""

import numpy as np

from fastnn import activations as A

_F = np.float32
_TINY = np.finfo(np.float32).tiny
_2P64 = _F(2.0 ** 64)
_2M64 = _F(2.0 ** -64)
_SELU_SCALE = 1.0507009873554804934193349852946
_SELU_SCALE_ALPHA = 1.7580993408473768599402175208123


def _ftz(x):
    """x with subnormals made zeros of their sign (a float result under FTZ, an input under DAZ)."""
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(x) < _TINY, x * _F(0.0), x)


def _pow2i(e):
    """2^e for int32 e in [-126, 127], from its exponent bits."""
    return ((e + np.int32(127)) << np.int32(23)).astype(np.int32).view(np.float32)


def _reduce(a):
    """n and r of a = n ln2 - r for 0 <= a <= 104, as fnn_act_reduce_f32."""
    nf = (a * _F(1.44269504) + _F(12582912.0)) - _F(12582912.0)
    r = (nf * _F(0.693145751953125) - a) + nf * _F(1.42860677e-06)
    return nf.astype(np.int32), r


def _expm1r(r):
    """expm1(r) for |r| <= ln2 / 2, as fnn_act_expm1r_f32."""
    r2 = _ftz(r * r)
    r4 = _ftz(r2 * r2)
    q = ((_F(0.5) + r * _F(0.16666667)) + r2 * (_F(0.041666668) + r * _F(0.008333334))
         + r4 * ((_F(0.0013888889) + r * _F(0.0001984127)) + r2 * _F(0.000024801588)))
    return r + _ftz(r2 * q)


def _exp64(a):
    """exp(-a) 2^64 for 0 <= a <= 104, as fnn_act_exp64_f32."""
    n, r = _reduce(a)
    return (_F(1.0) + _expm1r(r)) * _pow2i(np.int32(64) - n)


def _expm1n(a):
    """expm1(-a) for 0 <= a <= 20, as fnn_act_expm1n_f32."""
    n, r = _reduce(a)
    s = _pow2i(-n)
    return s * _expm1r(r) + (s - _F(1.0))


def _expm1_neg(z):
    a = np.where(z > _F(-20.0), -z, _F(20.0))
    return _expm1n(np.where(a > _F(0.0), a, _F(0.0)))


def _elu(z, alpha):
    y = np.where(z > 0, z, _F(alpha) * _expm1_neg(z))
    return np.where(z == z, y, z)


def _selu(z):
    em1 = _expm1_neg(z).astype(np.float64)
    y = np.where(z > 0, (_SELU_SCALE * z.astype(np.float64)).astype(_F),
                 (_SELU_SCALE_ALPHA * em1).astype(_F))
    return np.where(z == z, y, z)


def _softplus(z):
    a = np.where(z < 0, -z, z)
    ac = np.where(a < _F(104.0), a, _F(104.0))
    e = _ftz(_exp64(ac) * _2M64)
    s = e / (_F(2.0) + e)
    t, u = _F(2.0) * s, s * s
    u2 = u * u
    u4 = u2 * u2
    q = ((_F(0.33333334) + u * _F(0.2)) + u2 * (_F(0.14285715) + u * _F(0.11111111))
         + u4 * (_F(0.09090909) + u * _F(0.07692308)))
    ln = np.where(ac > _F(24.0), e, t + t * (u * q))
    y = np.where(z > 0, z + ln, ln)
    return np.where(z == z, y, z)


def _silu(z, want_d):
    a = np.where(z < 0, -z, z)
    ac = np.where(a < _F(104.0), a, _F(104.0))
    zc = np.where(z < 0, -ac, ac)
    e64 = _exp64(ac)
    e = _ftz(e64 * _2M64)
    one_e = _F(1.0) + e
    neg, nan = z < 0, z != z
    y = np.where(neg, ((zc * e64) / one_e) * _2M64, zc / one_e)
    y = np.where(z > _F(104.0), z, y)
    y = np.where(nan, z, y)
    if not want_d:
        return y
    r = _F(1.0) / one_e
    q = _ftz(_ftz(e * r) * r)
    g = np.where(neg, ((e64 * (one_e + zc)) / (one_e * one_e)) * _2M64, r + _ftz(zc * q))
    g = np.where(z > _F(104.0), _F(1.0), g)
    g = np.where(z < _F(-104.0), _F(0.0), g)
    return np.where(nan, z, g)


def keras_act_f32(z, act, param):
    """act(z) on a float32 array (elu: param is alpha), flushed as the kernels leave it."""
    z = _ftz(np.asarray(z, _F))
    with np.errstate(all="ignore"):
        if act == A.ELU:
            y = _elu(z, param)
        elif act == A.SELU:
            y = _selu(z)
        elif act == A.SOFTPLUS:
            y = _softplus(z)
        else:
            y = _silu(z, False)
        return _ftz(y)


def keras_deriv_f32(y, act, param):
    """act'(z) from y = act(z) (elu, selu, softplus) or from z (silu), float32."""
    y = _ftz(np.asarray(y, _F))
    with np.errstate(all="ignore"):
        if act == A.ELU:
            d = np.where(y > 0, _F(1.0), y + _F(param))
        elif act == A.SELU:
            d = np.where(y > 0, _F(_SELU_SCALE),
                         (y.astype(np.float64) + _SELU_SCALE_ALPHA).astype(_F))
        elif act == A.SOFTPLUS:
            a = np.where(y < _F(20.0), y, _F(20.0))
            d = np.where(y == y, _F(0.0) - _expm1n(np.where(a > 0, a, _F(0.0))), y)
        else:
            d = _silu(y, True)
        return _ftz(d)
