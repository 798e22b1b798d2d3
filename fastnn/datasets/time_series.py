"""A real time series shipped with fastnn: the sunspot numbers, monthly and yearly.

The files ``sunspots_monthly.csv.gz`` and ``sunspots_yearly.csv.gz`` next to this module hold
the International sunspot number (version 1, as distributed by NOAA's National Geophysical Data
Center), taken from statsmodels 0.15.0's datasets; the data is public domain (see
``SUNSPOTS_LICENSE.txt``).
"""

from __future__ import annotations

import gzip
import os

import numpy as np
from numpy.typing import NDArray

from fastnn import _validation as V

__all__ = ["load_sunspots"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_FILES = {"monthly": "sunspots_monthly.csv.gz", "yearly": "sunspots_yearly.csv.gz"}


def load_sunspots(frequency: str = "monthly") -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Load the sunspot numbers: monthly means 1749-2008 or yearly means 1700-2008.

    The International (Wolf) sunspot number, version 1 (before its 2015 revision), from NOAA's
    National Geophysical Data Center, taken from the PyPI package statsmodels 0.15.0
    (``statsmodels/datasets/sunspots``), public domain. Its roughly 11-year solar cycle makes it
    a classic test of one-step-ahead forecasting.

    Parameters
    ----------
    frequency : {"monthly", "yearly"}, default "monthly"
        ``"monthly"``: 3120 monthly means, January 1749 to December 2008 (the source's
        preliminary months of 2009 are left out). ``"yearly"``: 309 yearly means, 1700 to 2008.

    Returns
    -------
    time : ndarray of float64, shape (3120,) or (309,)
        When each value starts, in years: ``year + (month - 1) / 12`` (1749.0, 1749.0833..., ...)
        for the monthly series, the year itself (1700.0, ..., 2008.0) for the yearly one.
    values : ndarray of float64, same shape
        The sunspot number ``R = k (10 g + s)`` (g spot groups and s single spots on the solar
        disc, k an observatory factor), averaged over the month or year: a dimensionless
        index >= 0, at most 253.8 (October 1957) monthly, 190.2 (1957) yearly.

    Raises
    ------
    ValueError
        If ``frequency`` is neither ``"monthly"`` nor ``"yearly"``.

    Examples
    --------
    >>> from fastnn.datasets import load_sunspots
    >>> t, r = load_sunspots()
    >>> t.shape, float(t[0]), float(t[-1]) == 2008 + 11 / 12, float(r[0]), float(r.max())
    ((3120,), 1749.0, True, 58.0, 253.8)
    >>> t, r = load_sunspots("yearly")
    >>> t.shape, float(t[0]), float(r[0]), float(r[-1])
    ((309,), 1700.0, 5.0, 2.9)
    """
    if not isinstance(frequency, str) or frequency not in _FILES:
        raise ValueError(
            f"frequency must be 'monthly' or 'yearly'. "
            f"Received: frequency={V._describe(frequency)}")
    with gzip.open(os.path.join(_HERE, _FILES[frequency]), "rt", encoding="ascii") as f:
        data = np.loadtxt(f, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    time = data[:, 0].copy()
    if frequency == "monthly":
        time += (data[:, 1] - 1) / 12
    return time, np.ascontiguousarray(data[:, -1])
