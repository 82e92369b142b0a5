"""Scatter-add: ``target[index] += values``, repeated indices adding up (indexing, embedding)."""
from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

from .dispatch import is_gpu, pick

COLUMN_BLOCK = 64  # fewest columns worth a thread of their own


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
        step = max(COLUMN_BLOCK, -(-width // get_num_threads()))  # columns per thread
        _add_rows(target.reshape(target.shape[0], width), rows, flat_values, step)
    else:
        np.add.at(target, index, values)


@njit(cache=True, parallel=True)
def _add_rows(target, rows, values, step):
    # Two rows may be the same, so threads split the columns, not the rows: each thread walks all
    # rows in order and adds its own block of columns (contiguous, so the inner loop vectorises).
    width = target.shape[1]
    for block in prange((width + step - 1) // step):
        start = block * step
        stop = min(start + step, width)
        for i in range(rows.size):
            row = rows[i]
            for column in range(start, stop):
                target[row, column] += values[i, column]


def index_add_cupy(target, index, values) -> None:
    import cupyx

    cupyx.scatter_add(target, index, values)
