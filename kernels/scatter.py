"""Scatter-add: ``target[index] += values``, repeated indices adding up (indexing, embedding)."""
from __future__ import annotations

import numpy as np
from numba import njit

from .dispatch import is_gpu, pick


def index_add(target, index, values) -> None:
    """``target[index] += values`` in place, accumulating over repeated indices."""
    rows_only = isinstance(index, np.ndarray) and index.dtype.kind in "iu" and index.ndim >= 1
    cpu = index_add_rows_numba if rows_only and not is_gpu(target) else index_add_reference
    pick(target, index_add_reference, cpu, index_add_cupy)(target, index, values)


def index_add_reference(target, index, values) -> None:
    if is_gpu(target):
        index_add_cupy(target, index, values)
    else:
        np.add.at(target, index, values)


def index_add_rows_numba(target, index, values) -> None:
    """The common case ``target[rows] += values`` (an integer array on the first axis)."""
    rows = np.where(index < 0, index + target.shape[0], index).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= target.shape[0]):
        raise IndexError(f"index_add: row index out of range for {target.shape[0]} rows")
    width = int(np.prod(target.shape[1:], dtype=np.int64))
    flat_values = np.ascontiguousarray(values, dtype=target.dtype).reshape(rows.size, width)
    if target.flags.c_contiguous:
        _add_rows(target.reshape(target.shape[0], width), rows, flat_values)
    else:
        np.add.at(target, index, values)


@njit(cache=True)
def _add_rows(target, rows, values):
    # Serial on purpose: a prange version (threads splitting the columns, as two entries of rows
    # may be the same row) was slower at every size measured, 2048-32768 rows of 64-512 columns:
    # 1.8-4.5x alone, 3-6x right after an OpenBLAS GEMM, whose threads still held the 2 cores.
    for i in range(rows.size):
        into, add = target[rows[i]], values[i]  # (width,) each
        for column in range(into.size):
            into[column] += add[column]


def index_add_cupy(target, index, values) -> None:
    import cupyx

    cupyx.scatter_add(target, index, values)
