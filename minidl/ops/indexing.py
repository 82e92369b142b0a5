"""Indexing: ``x[index]`` with basic (ints, slices, None, ...) and advanced (integer/bool arrays) keys."""
from __future__ import annotations

from minidl import backend
from minidl.autograd import Function
from minidl.kernels.scatter import index_add
from minidl.ops.common import meta, reduce_like
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


class SetItem(Function):
    """x[index] = v, in place;  gx = gy with 0 at index (those values were overwritten),
    gv = gy[index] summed over what broadcasting stretched (PyTorch's CopySlices)."""

    @staticmethod
    def forward(ctx, x, v, *, index):
        x[index] = v
        ctx.index, ctx.x_shape, ctx.v_meta = index, x.shape, meta(v)
        return x  # the same memory: the assigned tensor itself is this node's output

    @staticmethod
    def backward(ctx, gy):
        gx = gv = None
        if ctx.needs_input_grad[0]:
            keep = backend.get_array_module(_array(gy)).ones(ctx.x_shape, dtype=gy.dtype)
            keep[ctx.index] = 0  # a constant mask
            gx = gy * keep
        if ctx.needs_input_grad[1]:
            gv = reduce_like(ctx.xp, GetItem.apply(gy, index=ctx.index), ctx.v_meta)
        return gx, gv


def _array(value):
    return value._data if isinstance(value, Tensor) else value


def _is_basic(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


def _to_array_index(part, xp):
    """Tensors and lists in an index become arrays of the tensor's backend."""
    if isinstance(part, Tensor):
        return part._data
    if isinstance(part, list):
        return xp.asarray(part)
    return part


def _array_index(index, xp):
    """An index with its Tensors and lists as arrays of the indexed tensor's backend."""
    if isinstance(index, tuple):
        return tuple(_to_array_index(p, xp) for p in index)
    return _to_array_index(index, xp)


def getitem(input: Tensor, index) -> Tensor:
    index = _array_index(index, backend.get_array_module(input._data))
    try:
        return GetItem.apply(input, index=index)
    except IndexError as error:
        raise IndexError(f"getitem: index {index!r} does not fit a tensor of shape "
                         f"{tuple(input.shape)}: {error}") from None


def setitem(input: Tensor, index, value) -> None:
    """``input[index] = value`` in place (``Tensor.__setitem__``), differentiable as PyTorch's:
    ``input`` becomes the output of a SetItem node whose inputs are its old value and ``value``.

    A leaf that requires grad cannot be assigned to while grad mode is on (as PyTorch); the write
    bumps ``input``'s version, so a backward that saved the old values raises.
    """
    input._check_inplace("setitem")
    index = _array_index(index, backend.get_array_module(input._data))
    if isinstance(value, Tensor) and value.dtype != input.dtype:
        value = value.to(input.dtype)
    old = Tensor(input._data, input._requires_grad)  # the value before, with input's history
    old._ctx, old._output_index = input._ctx, input._output_index
    try:
        result = SetItem.apply(old, value, index=index)
    except (IndexError, ValueError) as error:
        raise IndexError(f"setitem: cannot assign a value of shape "
                         f"{tuple(getattr(value, 'shape', ()))} to index {index!r} of a tensor of "
                         f"shape {tuple(input.shape)}: {error}") from None
    input._mark_modified()  # marks the node that produced the old value, too
    if result._ctx is not None:  # recorded: input's history now runs through the assignment
        input._ctx, input._output_index, input._requires_grad = result._ctx, 0, True

