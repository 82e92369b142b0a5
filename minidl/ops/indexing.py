"""Indexing: ``x[index]`` with basic (ints, slices, None, ...) and advanced (integer/bool arrays) keys."""
from __future__ import annotations

from minidl import backend
from minidl.autograd import Function
from minidl.kernels.scatter import index_add
from minidl.tensors import Tensor


class GetItem(Function):
    """y = x[index];  gx = zeros with gy scattered back to the indexed places (``IndexPut``)."""

    @staticmethod
    def forward(ctx, x, *, index):
        ctx.x_meta, ctx.index = (x.shape, x.dtype), index
        return x[index]

    @staticmethod
    def backward(ctx, gy):
        return IndexPut.apply(gy, index=ctx.index, x_meta=ctx.x_meta)


class IndexPut(Function):
    """gx = zeros(shape) with gy added at index: the adjoint of getitem;  ggy = ggx[index].

    Advanced indices may repeat an element (``x[[0, 0]]``), so their gradients are scatter-added.
    Being a Function, getitem's gradient is differentiable: its own gradient is getitem again.
    """

    @staticmethod
    def forward(ctx, gy, *, index, x_meta):
        shape, dtype = x_meta
        ctx.index = index
        gx = ctx.xp.zeros(shape, dtype=dtype)
        if _is_basic(index):
            gx[index] = gy  # a basic index names each element at most once
        else:
            index_add(gx, index, gy)
        return gx

    @staticmethod
    def backward(ctx, ggx):
        return GetItem.apply(ggx, index=ctx.index)


def _is_basic(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


def _to_array_index(part, xp):
    """Tensors and lists in an index become arrays of the tensor's backend."""
    if isinstance(part, Tensor):
        return part.data
    if isinstance(part, list):
        return xp.asarray(part)
    return part


def getitem(input: Tensor, index) -> Tensor:
    xp = backend.get_array_module(input.data)
    if isinstance(index, tuple):
        index = tuple(_to_array_index(p, xp) for p in index)
    else:
        index = _to_array_index(index, xp)
    try:
        return GetItem.apply(input, index=index)
    except IndexError as error:
        raise IndexError(f"getitem: index {index!r} does not fit a tensor of shape "
                         f"{tuple(input.shape)}: {error}") from None
