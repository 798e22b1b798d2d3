"""The thread count of the compiled kernels: OpenMP's, read by every kernel at call time.

So ``set_num_threads``, the ``OMP_NUM_THREADS`` environment variable and threadpoolctl all apply.
Without the compiled extension (or in a serial build) the count is 1.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from fastnn import _validation as V
from fastnn.backends import default_backend


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (>= 1) in the compiled kernels.

    The setting is OpenMP's for the calling thread, like ``omp_set_num_threads``. Results do not
    depend on it: the kernels never split a reduction across threads.

    Parameters
    ----------
    n : int
        The number of threads, >= 1.

    Raises
    ------
    TypeError
        If ``n`` is not an integer.
    ValueError
        If ``n`` < 1.

    Examples
    --------
    >>> import fastnn as fnn
    >>> previous = fnn.get_num_threads()
    >>> fnn.set_num_threads(1)
    >>> fnn.get_num_threads()
    1
    >>> fnn.set_num_threads(previous)
    """
    n = V.check_positive_int("n", n)
    default_backend().set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads the compiled kernels will use (1 without the compiled extension).

    Examples
    --------
    >>> import fastnn as fnn
    >>> fnn.get_num_threads() >= 1
    True
    """
    return default_backend().get_num_threads()


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """``with fastnn.threads(1): ...`` runs the block with ``n`` threads, then restores.

    Parameters
    ----------
    n : int
        The number of threads inside the block, >= 1.

    Raises
    ------
    TypeError
        If ``n`` is not an integer.
    ValueError
        If ``n`` < 1.

    Examples
    --------
    >>> import fastnn as fnn
    >>> with fnn.threads(1):
    ...     fnn.get_num_threads()
    1
    """
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)
