"""Dropout mask: ``m = (u >= p) / (1 - p)`` with ``u ~ U[0, 1)`` drawn from a seeded generator.

The reference draws ``u`` with ``Generator.random`` (float64) and compares. The Numba kernel takes
the same ``np.random.Generator`` into compiled code, where Numba draws from its bit generator
with the same algorithm as NumPy, so a seeded run gives the same mask either way and leaves the
generator in the same state (tests/test_kernels_dropout.py checks both). On GPU the mask is
array code on CuPy's generator (a fused compare-and-scale is all a kernel could add).

It does not pay on CPU: the draws must stay serial to keep the stream, and NumPy's own
``Generator.random(shape)`` is already a compiled loop, so the Numba mask runs at the reference's
speed (benchmarks/kernels.py); minidl/ops/dropout.py therefore calls the reference.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .dispatch import pick


def dropout_mask(generator, shape: tuple, p: float, dtype):
    """A ``shape`` array of ``dtype``: ``1/(1-p)`` where ``u >= p``, else 0 (``0 <= p < 1``).

    ``pick`` tells a CuPy generator from a NumPy one by its module, as it does arrays.
    """
    return pick(generator, dropout_mask_reference, dropout_mask_numba, dropout_mask_cupy)(
        generator, shape, p, dtype
    )


def dropout_mask_reference(generator, shape: tuple, p: float, dtype):
    keep = generator.random(shape) >= p
    return keep.astype(dtype) * np.dtype(dtype).type(1 / (1 - p))


def dropout_mask_numba(generator, shape: tuple, p: float, dtype):
    mask = np.empty(shape, dtype=dtype)
    _mask_loop(generator, mask.reshape(-1), p, np.dtype(dtype).type(1 / (1 - p)))
    return mask


@njit(cache=True)
def _mask_loop(generator, mask, p, scale):
    # One stream, drawn in order: serial on purpose (a parallel loop would reorder the draws).
    for i in range(mask.size):
        mask[i] = scale if generator.random() >= p else 0


def dropout_mask_cupy(generator, shape: tuple, p: float, dtype):
    """Array code on CuPy's generator (the reference is the same array code)."""
    return dropout_mask_reference(generator, shape, p, dtype)
