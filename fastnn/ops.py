"""The compiled kernels as functions on NumPy arrays, for code that embeds them.

Inputs are validated and converted like model inputs (any real dtype, lists, strided or
Fortran-ordered arrays); the result is float32 when both operands are float32 (or float16),
float64 otherwise.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastnn import _validation as V
from fastnn.backends import default_backend


def _operand(name: str, x: ArrayLike) -> NDArray[np.generic]:
    arr = V.as_real_array(name, x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D. Received: {name} with shape {arr.shape}")
    return arr


def matmul(a: ArrayLike, b: ArrayLike, out: Optional[NDArray[np.floating[Any]]] = None
           ) -> NDArray[np.floating[Any]]:
    """out := a @ b for 2-D arrays a (m, k) and b (k, n); returns out (m, n).

    The compiled GEMM (the NumPy reference without the extension). Each entry is summed over k
    in order, whatever the thread count.

    Parameters
    ----------
    a : array_like, shape (m, k)
        Real and finite; any real dtype, list, strided or Fortran-ordered array.
    b : array_like, shape (k, n)
        Real and finite.
    out : ndarray, shape (m, n), optional
        Where to write the result: a writeable C-contiguous array of the result dtype (float32
        when both operands are float32 or float16, float64 otherwise) that does not overlap
        ``a`` or ``b``. A new array when None.

    Returns
    -------
    ndarray, shape (m, n)
        ``out`` (or the new array), holding ``a @ b``.

    Raises
    ------
    TypeError
        If an operand does not hold real numbers, or ``out`` is not a NumPy array.
    ValueError
        If an operand is not 2-D, the inner dimensions differ, a value is NaN or inf, or ``out``
        has the wrong shape, dtype or layout or overlaps an operand.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnn as fnn
    >>> fnn.ops.matmul([[1, 2], [3, 4]], [[1], [1]])
    array([[3.],
           [7.]])
    >>> out = np.empty((2, 2), dtype=np.float32)
    >>> fnn.ops.matmul(np.eye(2, dtype=np.float32), np.ones((2, 2), np.float32), out=out) is out
    True
    """
    a = _operand("a", a)
    b = _operand("b", b)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"a and b have mismatched inner dimensions: a is {a.shape}, "
                         f"b is {b.shape}")
    single = (np.float16, np.float32)
    dtype = np.float32 if a.dtype.type in single and b.dtype.type in single else np.float64
    a = V.as_float(a, dtype)
    b = V.as_float(b, dtype)
    V.check_finite("a", a)
    V.check_finite("b", b)
    shape = (a.shape[0], b.shape[1])
    if out is None:
        out = np.empty(shape, dtype=dtype)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a NumPy array. Received: out of type "
                            f"{type(out).__name__}")
        if out.shape != shape or out.dtype != dtype:
            raise ValueError(f"out must have shape {shape} and dtype {np.dtype(dtype).name}. "
                             f"Received: out with shape {out.shape} and dtype {out.dtype}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be C-contiguous and writeable. Received: out with "
                             f"c_contiguous={out.flags.c_contiguous}, "
                             f"writeable={out.flags.writeable}")
        if np.shares_memory(out, a) or np.shares_memory(out, b):
            raise ValueError("out must not overlap a or b")
    if out.size == 0:
        return out
    return default_backend().matmul(a, b, out)
