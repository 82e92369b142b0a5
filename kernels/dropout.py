"""Dropout mask: ``m = (u >= p) / (1 - p)`` with ``u ~ U[0, 1)`` drawn from a seeded generator.

Only the array code exists, on both devices (NumPy's or CuPy's ``Generator``). A Numba mask that
drew the same stream in compiled code was measured and removed: the draws must stay serial to
keep the stream, and ``Generator.random(shape)`` is already a compiled loop, so it ran 1.1-1.7x
slower than this (benchmarks/results/kernels.md, "Removed").
"""
from __future__ import annotations

import numpy as np


def dropout_mask_reference(generator, shape: tuple, p: float, dtype):
    """A ``shape`` array of ``dtype``: ``1/(1-p)`` where ``u >= p``, else 0 (``0 <= p < 1``)."""
    keep = generator.random(shape) >= p
    return keep.astype(dtype) * np.dtype(dtype).type(1 / (1 - p))
