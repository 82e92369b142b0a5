"""Shape ops: reshape, flatten, permute, transpose, squeeze, unsqueeze, expand, cat, stack, split, pad.

They move elements without changing them, so each backward moves the gradient back the same way.
"""
from __future__ import annotations

import builtins

from minidl.autograd import Function
from minidl.ops.common import normalize_dim, reduce_like
from minidl.tensors import Tensor


class Reshape(Function):
    """y = x viewed with another shape;  gx = gy reshaped back."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise RuntimeError(f"reshape: shape {tuple(shape)} is invalid for a tensor of shape "
                               f"{tuple(x.shape)} ({x.size} elements)") from None

    @staticmethod
    def backward(ctx, gy):
        return gy.reshape(ctx.shape), None


class Permute(Function):
    """y = x with axes reordered by dims;  gx = gy with the inverse order."""

    @staticmethod
    def forward(ctx, x, dims):
        ctx.inverse = tuple(sorted(range(len(dims)), key=dims.__getitem__))
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, gy):
        return ctx.xp.transpose(gy, ctx.inverse), None


class Expand(Function):
    """y = x broadcast to shape (a view);  gx = gy summed over the broadcast axes."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.x_meta = (x.shape, x.dtype)
        try:
            return ctx.xp.broadcast_to(x, shape)
        except ValueError:
            raise RuntimeError(f"expand: a tensor of shape {tuple(x.shape)} cannot be expanded to "
                               f"{tuple(shape)}") from None

    @staticmethod
    def backward(ctx, gy):
        return reduce_like(ctx.xp, gy, ctx.x_meta), None


class Cat(Function):
    """y = [x1; x2; ...] along axis;  g_xi = the slice of gy that xi filled."""

    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.axis = axis
        ctx.bounds = _bounds([x.shape[axis] for x in xs])
        return ctx.xp.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, gy):
        return tuple(_take(gy, ctx.axis, start, stop) for start, stop in ctx.bounds)


class Stack(Function):
    """y = new axis holding x1, x2, ...;  g_xi = gy[..., i, ...]."""

    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.axis = axis
        return ctx.xp.stack(xs, axis=axis)

    @staticmethod
    def backward(ctx, gy):
        return tuple(ctx.xp.take(gy, i, axis=ctx.axis) for i in range(gy.shape[ctx.axis]))


class Split(Function):
    """(y1, y2, ...) = consecutive pieces of x along axis;  gx = [gy1; gy2; ...]."""

    @staticmethod
    def forward(ctx, x, sizes, axis):
        ctx.axis = axis
        return tuple(_take(x, axis, start, stop) for start, stop in _bounds(sizes))

    @staticmethod
    def backward(ctx, *gys):
        return ctx.xp.concatenate(gys, axis=ctx.axis), None, None


class Pad(Function):
    """y = x with constant borders;  gx = the centre of gy."""

    @staticmethod
    def forward(ctx, x, widths, value):
        ctx.centre = tuple(builtins.slice(before, before + n) for (before, _), n in zip(widths, x.shape))
        return ctx.xp.pad(x, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, gy):
        return gy[ctx.centre], None, None


def _bounds(sizes) -> list:
    bounds, start = [], 0
    for size in sizes:
        bounds.append((start, start + size))
        start += size
    return bounds


def _take(array, axis: int, start: int, stop: int):
    return array[(builtins.slice(None),) * axis + (builtins.slice(start, stop),)]


def reshape(input: Tensor, shape) -> Tensor:
    return Reshape.apply(input, tuple(shape))


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim..end_dim`` into one."""
    if input.ndim == 0:
        return reshape(input, (1,))
    start = normalize_dim(start_dim, input.ndim, "flatten")
    end = normalize_dim(end_dim, input.ndim, "flatten")
    shape = input.shape
    return reshape(input, shape[:start] + (-1,) + shape[end + 1:]) if start <= end else input


def permute(input: Tensor, dims) -> Tensor:
    axes = tuple(normalize_dim(d, input.ndim, "permute") for d in dims)
    if sorted(axes) != list(range(input.ndim)):
        raise RuntimeError(f"permute: dims {tuple(dims)} are not a permutation of the "
                           f"{input.ndim} dims of a tensor of shape {tuple(input.shape)}")
    return Permute.apply(input, axes)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    axes = list(range(input.ndim))
    if input.ndim == 0:
        return input
    a, b = normalize_dim(dim0, input.ndim, "transpose"), normalize_dim(dim1, input.ndim, "transpose")
    axes[a], axes[b] = axes[b], axes[a]
    return Permute.apply(input, tuple(axes))


def squeeze(input: Tensor, dim=None) -> Tensor:
    """Drop size-1 dims (all of them, or those in ``dim`` that have size 1)."""
    if dim is None:
        axes = {i for i, n in enumerate(input.shape) if n == 1}
    else:
        dims = (dim,) if isinstance(dim, int) else dim
        axes = {normalize_dim(d, input.ndim, "squeeze") for d in dims} if input.ndim else set()
        axes = {a for a in axes if input.shape[a] == 1}
    return reshape(input, tuple(n for i, n in enumerate(input.shape) if i not in axes))


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dim at ``dim`` (in [-ndim-1, ndim])."""
    axis = normalize_dim(dim, input.ndim + 1, "unsqueeze")
    return reshape(input, input.shape[:axis] + (1,) + input.shape[axis:])


def expand(input: Tensor, sizes) -> Tensor:
    """Broadcast to ``sizes`` without copying; -1 keeps a dim's size."""
    lead = len(sizes) - input.ndim
    shape = tuple(input.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(sizes))
    return Expand.apply(input, shape)


def broadcast_to(input: Tensor, size) -> Tensor:
    return expand(input, tuple(size))


def cat(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    axis = normalize_dim(dim, tensors[0].ndim, "cat")
    _check_same_shape_except(tensors, axis, "cat")
    return Cat.apply(*tensors, axis=axis)


def stack(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    _check_same_shape_except(tensors, None, "stack")
    return Stack.apply(*tensors, axis=normalize_dim(dim, tensors[0].ndim + 1, "stack"))


def split(tensor: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces of ``split_size`` (the last may be smaller), or of the listed sizes."""
    axis = normalize_dim(dim, tensor.ndim, "split")
    length = tensor.shape[axis]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [builtins.min(step, length - start) for start in range(0, length, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != length:
            raise ValueError(f"split: sections {sizes} sum to {builtins.sum(sizes)}, but dim {dim} "
                             f"has size {length}")
    return Split.apply(tensor, tuple(sizes), axis)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple:
    """``chunks`` pieces of size ceil(n / chunks) (fewer when n is small), as PyTorch."""
    if not isinstance(chunks, int) or chunks < 1:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    length = input.shape[normalize_dim(dim, input.ndim, "chunk")]
    return split(input, builtins.max(1, -(-length // chunks)), dim)


def pad(input: Tensor, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """Constant padding; ``pad`` lists (before, after) pairs starting from the last dim, as F.pad."""
    if mode != "constant":
        raise NotImplementedError(f"pad: only mode='constant' is implemented, got {mode!r}")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: expected an even number of at most {2 * input.ndim} values for a "
                         f"tensor of shape {tuple(input.shape)}, got {tuple(pad)}")
    if builtins.min(pad, default=0) < 0:
        raise ValueError(f"pad: negative padding (cropping) is not supported, got {tuple(pad)}")
    widths = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        widths[input.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return Pad.apply(input, tuple(widths), value)


def _check_same_shape_except(tensors, axis, op: str) -> None:
    reference = tensors[0].shape
    for index, t in enumerate(tensors):
        other = t.shape
        same = len(other) == len(reference) and all(
            a == b for i, (a, b) in enumerate(zip(reference, other)) if i != axis)
        if not same:
            raise RuntimeError(f"{op}: tensors must have the same shape"
                               + ("" if axis is None else f" except in dim {axis}")
                               + f"; tensor 0 has {tuple(reference)}, tensor {index} has {tuple(other)}")
