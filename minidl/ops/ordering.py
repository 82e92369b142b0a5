"""Ops that reorder or pick elements: sort, argsort, topk, roll, narrow.

The values of sort and topk are a gather at the indices the sort found (``GetItem`` with an open
index), so their gradient is a scatter of gy back to where each value came from; the indices are
integers (no gradient). roll is linear: its gradient is the opposite roll.
"""
from __future__ import annotations

from collections import namedtuple

from minidl import backend
from minidl.autograd import Function
from minidl.ops.common import normalize_dim
from minidl.ops.indexing import GetItem
from minidl.tensors import Tensor

SortResult = namedtuple("sort", ["values", "indices"])
TopKResult = namedtuple("topk", ["values", "indices"])


def _gather(input: Tensor, dim: int, indices):
    """input's elements at ``indices`` (an integer array of input's rank) along ``dim``."""
    xp = backend.get_array_module(indices)
    grid = list(xp.ogrid[tuple(slice(n) for n in indices.shape)])  # open index of every dim
    grid[dim] = indices
    return GetItem.apply(input, index=tuple(grid))


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices that sort ``input`` along ``dim`` (ties keep their order when ``stable``)."""
    dim = normalize_dim(dim, input.ndim, "argsort")
    data = input._data if input.ndim else input._data.reshape(1)
    xp = backend.get_array_module(data)
    if descending:  # sort -x: ties keep their order (negating unsigned ints needs a signed type)
        data = -(data.astype("int64") if data.dtype.kind in "ub" else data)
    order = xp.argsort(data, axis=dim, kind="stable" if stable else None)
    return Tensor(order.reshape(input.shape).astype("int64", copy=False))


def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    """(values, indices) of ``input`` sorted along ``dim``; the values are differentiable."""
    dim = normalize_dim(dim, input.ndim, "sort")
    indices = argsort(input, dim, descending, stable)
    if input.ndim == 0:
        return SortResult(input * 1, indices)
    return SortResult(_gather(input, dim, indices._data), indices)


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """(values, indices) of the ``k`` largest (or smallest) elements along ``dim``, as PyTorch."""
    dim = normalize_dim(dim, input.ndim, "topk")
    size = input.shape[dim] if input.ndim else 1
    if not 0 <= k <= size:
        raise RuntimeError(f"topk: k ({k}) is out of range for dimension {dim} of size {size}")
    order = argsort(input, dim, descending=largest, stable=True)._data
    xp = backend.get_array_module(order)
    indices = xp.take(order, xp.arange(k), axis=dim) if input.ndim else order
    return TopKResult(_gather(input, dim, indices) if input.ndim else input * 1, Tensor(indices))


class Roll(Function):
    """y = x shifted by ``shifts`` along ``dims`` (wrapping around);  gx = gy rolled back."""

    @staticmethod
    def forward(ctx, x, *, shifts: tuple, dims):
        ctx.shifts, ctx.dims = shifts, dims
        return ctx.xp.roll(x, shifts, axis=dims)

    @staticmethod
    def backward(ctx, gy):
        return Roll.apply(gy, shifts=tuple(-s for s in ctx.shifts), dims=ctx.dims)


def roll(input: Tensor, shifts, dims=None) -> Tensor:
    """``torch.roll``: with ``dims=None`` the flattened tensor is rolled and reshaped back."""
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"roll: without dims, shifts must be one int, got {shifts}")
        return Roll.apply(input.reshape(-1), shifts=shifts, dims=(0,)).reshape(input.shape)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(dims) != len(shifts):
        raise RuntimeError(f"roll: shifts and dims must have the same length, got {len(shifts)} "
                           f"and {len(dims)}")
    dims = tuple(normalize_dim(d, input.ndim, "roll") for d in dims)
    return Roll.apply(input, shifts=shifts, dims=dims)


def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """``length`` elements of ``dim`` from ``start`` (negative counts from the end): a slice."""
    dim = normalize_dim(dim, input.ndim, "narrow")
    size = input.shape[dim]
    start = start + size if start < 0 else start
    if not (0 <= start <= size and 0 <= length <= size - start):
        raise IndexError(f"narrow: start ({start}) + length ({length}) exceeds dimension size "
                         f"({size}) of dim {dim}")
    return input[(slice(None),) * dim + (slice(start, start + length),)]
