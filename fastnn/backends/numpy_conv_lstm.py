"""The NumPy twins of the ConvLSTM's gate kernels (fastnn/_ext/_conv_lstm.pyx): the same
functions and signatures, on whole arrays. A row is one (sample, position) with its 4F
pre-activations in Keras' gate order i, f, c, o and its F cell values.

    forward:  [i, f, g, o] = [rec, rec, act, rec](zx + zh);  c = f c_prev + i g;  a = act(c);
              h = o a
    backward: dc += dh o act'(c);  dz = [dc g rec'(i), dc c_prev rec'(f), dc i act'(g),
              dh a rec'(o)];  dc := dc f
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.backends.numpy_recurrent import _act, _deriv

_CODES = (0, 2, 3, 4)        # linear, sigmoid, tanh, relu


def _check(rows: int, F: int, act: int, rec: int, **arrays: Any) -> None:
    """The compiled kernels' contract: codes known, each array of its exact length."""
    if rows < 0 or F < 1:
        raise ValueError(f"conv_lstm: need rows >= 0 and F >= 1. Received: {rows}, {F}")
    if act not in _CODES or rec not in _CODES:
        raise ValueError(f"conv_lstm: activations must be linear, sigmoid, tanh or relu codes. "
                         f"Received: activation={act}, recurrent_activation={rec}")
    for name, (array, width) in arrays.items():
        if array.size != rows * width * F:
            raise ValueError(f"conv_lstm: {name} must hold {rows * width * F} values. "
                             f"Received: {array.size}")


def conv_lstm_gates_forward(rows: int, F: int, zx: Any, zh: Any, c_prev: Any, act: int,
                            rec: int, gates: Any, c: Any, a: Any, h: Any) -> None:
    """[i, f, g, o] = [rec, rec, act, rec](zx + zh);  c = f c_prev + i g;  a = act(c);  h = o a"""
    _check(rows, F, act, rec, zx=(zx, 4), zh=(zh, 4), c_prev=(c_prev, 1), gates=(gates, 4),
           c=(c, 1), a=(a, 1), h=(h, 1))
    z = (zx + zh).reshape(rows, 4, F)
    g = gates.reshape(rows, 4, F)
    for k in (0, 1, 3):
        g[:, k] = _act(z[:, k], rec)
    g[:, 2] = _act(z[:, 2], act)
    cv = c.reshape(rows, F)
    np.add(g[:, 1] * c_prev.reshape(rows, F), g[:, 0] * g[:, 2], out=cv)
    av = a.reshape(rows, F)
    av[...] = _act(cv, act)
    np.multiply(g[:, 3], av, out=h.reshape(rows, F))


def conv_lstm_gates_backward(rows: int, F: int, gates: Any, c_prev: Any, a: Any, dh: Any,
                             dc: Any, act: int, rec: int, dz: Any) -> None:
    """dc += dh o act'(c);  dz = [dc g rec'(i), dc c_prev rec'(f), dc i act'(g),
    dh a rec'(o)];  dc := dc f"""
    _check(rows, F, act, rec, gates=(gates, 4), c_prev=(c_prev, 1), a=(a, 1), dh=(dh, 1),
           dc=(dc, 1), dz=(dz, 4))
    g = gates.reshape(rows, 4, F)
    i, f, gg, o = g[:, 0], g[:, 1], g[:, 2], g[:, 3]
    ac = a.reshape(rows, F)
    dhv = dh.reshape(rows, F)
    dcv = dc.reshape(rows, F) + dhv * o * _deriv(ac, act)
    d = dz.reshape(rows, 4, F)
    d[:, 0] = dcv * gg * _deriv(i, rec)
    d[:, 1] = dcv * c_prev.reshape(rows, F) * _deriv(f, rec)
    d[:, 2] = dcv * i * _deriv(gg, act)
    d[:, 3] = dhv * ac * _deriv(o, rec)
    np.multiply(dcv, f, out=dc.reshape(rows, F))
