"""Scatter-add: ``target[index] += values``, repeated indices adding up (indexing, embedding).

Every row index is checked before anything is added: one out of range raises an IndexError and
leaves ``target`` unchanged (the Numba loop checks them in a first pass over the index).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .dispatch import cupyx, is_gpu, pick


def index_add(target, index, values) -> None:
    """``target[index] += values`` in place, accumulating over repeated indices."""
    rows_only = isinstance(index, np.ndarray) and index.dtype.kind in "iu" and target.ndim >= 1
    pick(target, index_add_reference, index_add_rows_numba if rows_only else None)(
        target, index, values)


def index_add_reference(target, index, values) -> None:
    """NumPy's unbuffered ``np.add.at``; on GPU its CuPy twin ``cupyx.scatter_add``."""
    if is_gpu(target):
        cupyx().scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


def index_add_rows_numba(target, index, values) -> None:
    """The common case ``target[rows] += values`` (an integer array of any shape on the first
    axis)."""
    shape = index.shape + target.shape[1:]  # target[index]'s, to which values broadcast
    if np.shape(values) != shape:
        try:
            values = np.broadcast_to(values, shape)
        except ValueError:
            raise ValueError(f"index_add: values of shape {np.shape(values)} do not broadcast to "
                             f"target[index]'s shape {shape}") from None
    rows = index.reshape(-1).astype(np.int64, copy=False)  # (L,); uint64 wraps, as NumPy indexing
    width = int(np.prod(target.shape[1:], dtype=np.int64))
    flat_values = np.ascontiguousarray(values, dtype=target.dtype).reshape(rows.size, width)
    contiguous = np.ascontiguousarray(target)  # a strided target is updated through a copy
    bad = _add_rows(contiguous.reshape(target.shape[0], width), rows, flat_values)
    if bad >= 0:
        raise IndexError(f"index_add: row index out of range for {target.shape[0]} rows: "
                         f"{index.reshape(-1)[bad]}")
    if contiguous is not target:
        target[...] = contiguous


@njit(cache=True)
def _add_rows(target, rows, values):
    """Add ``values[i]`` to row ``rows[i]`` (negative counting from the end) unless one is out of
    range: then return the position of the first such row, having added nothing; else -1."""
    n = target.shape[0]
    for i in range(rows.size):
        if not -n <= rows[i] < n:
            return i
    # Serial on purpose: a prange version (threads splitting the columns, as two entries of rows
    # may be the same row) was slower at every size measured, 2048-32768 rows of 64-512 columns:
    # 1.8-4.5x alone, 3-6x right after an OpenBLAS GEMM, whose threads still held the 2 cores.
    for i in range(rows.size):
        row = rows[i] + n if rows[i] < 0 else rows[i]
        into, add = target[row], values[i]  # (width,) each
        for column in range(into.size):
            into[column] += add[column]
    return -1

