"""Elementwise special functions: erf (for exact GELU).

NumPy has no erf, so the reference applies Python's ``math.erf`` element by element (slow, exact);
the Numba kernel calls the same libm function in a compiled loop; CuPy ships ``erf`` as a ufunc.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .dispatch import is_gpu, pick


def erf(x):
    """The error function, elementwise, same dtype as ``x``."""
    return pick(x, erf_reference, erf_numba, erf_cupy)(x)


def erf_reference(x):
    if is_gpu(x):
        return erf_cupy(x)  # CuPy's erf is itself array code; nothing simpler to refer to
    return np.vectorize(math.erf, otypes=[x.dtype])(x)


def erf_numba(x):
    out = np.empty(x.shape, dtype=x.dtype)
    _erf_loop(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    return out


@njit(cache=True, parallel=True)
def _erf_loop(x, out):
    for i in prange(x.size):
        out[i] = math.erf(x[i])


def erf_cupy(x):
    from cupyx.scipy.special import erf as cupy_erf

    return cupy_erf(x)
