"""Reductions: sum, mean, var, std, max/min, amax/amin, logsumexp, softmax, log_softmax, argmax."""
from __future__ import annotations

import builtins
from collections import namedtuple

from minidl.autograd import Function
from minidl.ops.common import quiet, expand_reduced, normalize_dim, normalize_dims
from minidl.tensors import Tensor

# PyTorch's torch.return_types.max / min: (values, indices)
max_result = namedtuple("max", ["values", "indices"])
min_result = namedtuple("min", ["values", "indices"])


class Sum(Function):
    """y = Σ_axes x;  gx = gy broadcast back over the summed axes."""

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return x.sum(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, gy):
        gy = expand_reduced(ctx.xp, gy, ctx.shape, ctx.axes, ctx.keepdim)
        return ctx.xp.broadcast_to(gy, ctx.shape), None, None


class Mean(Function):
    """y = Σ_axes x / n;  gx = gy / n broadcast back."""

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        ctx.count = _count(x.shape, axes)
        return x.mean(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, gy):
        gy = expand_reduced(ctx.xp, gy, ctx.shape, ctx.axes, ctx.keepdim)
        return ctx.xp.broadcast_to(gy / ctx.count, ctx.shape), None, None


class Var(Function):
    """y = Σ (x - x̄)² / (n - correction);  gx = gy · 2 (x - x̄) / (n - correction)."""

    @staticmethod
    def forward(ctx, x, axes, correction, keepdim):
        xp = ctx.xp
        centered = x - x.mean(axis=axes, keepdims=True)
        ctx.divisor = builtins.max(_count(x.shape, axes) - correction, 0)
        ctx.save_for_backward(x)
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        with quiet(xp):
            return (centered * centered).sum(axis=axes, keepdims=keepdim) / x.dtype.type(ctx.divisor)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        xp = ctx.xp
        centered = x - x.mean(axis=ctx.axes, keepdims=True)  # recomputed: a function of x
        gy = expand_reduced(xp, gy, ctx.shape, ctx.axes, ctx.keepdim)
        with quiet(xp):
            return gy * centered * (2 / x.dtype.type(ctx.divisor)), None, None, None


class Std(Function):
    """s = sqrt(v) of a variance v;  gv = gs / (2 s), and 0 where s = 0 (PyTorch's std: a constant
    input gets a zero gradient, not inf · 0 = nan)."""

    @staticmethod
    def forward(ctx, variance):
        std = ctx.xp.sqrt(variance)
        ctx.save_for_backward(std)
        return std

    @staticmethod
    def backward(ctx, gs):
        (std,) = ctx.saved_tensors
        xp, flat = ctx.xp, std == 0
        return xp.where(flat, 0, gs / (2 * xp.where(flat, 1, std)))  # no inf even where masked


class AMax(Function):
    """y = max over axes;  gx = gy shared evenly among the elements equal to the max (as PyTorch).

    ``AMax`` with ``sign=-1`` is amin (computed as -amax(-x)).
    """

    @staticmethod
    def forward(ctx, x, axes, keepdim, sign):
        y = x.max(axis=axes, keepdims=True) if sign > 0 else x.min(axis=axes, keepdims=True)
        ctx.winners = x == y
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return y if keepdim else y.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))

    @staticmethod
    def backward(ctx, gy):
        gy = expand_reduced(ctx.xp, gy, ctx.shape, ctx.axes, ctx.keepdim)
        ties = ctx.winners.sum(axis=ctx.axes, keepdims=True)
        return gy * ctx.winners / ties.astype(gy.dtype), None, None, None


class MaxAlongDim(Function):
    """(values, indices) = max of x along one dim;  gx = gy at the returned index, 0 elsewhere.

    ``sign=-1`` gives min. Two outputs; only ``values`` is differentiable.
    """

    @staticmethod
    def forward(ctx, x, axis, keepdim, sign):
        xp = ctx.xp
        indices = xp.expand_dims(x.argmax(axis=axis) if sign > 0 else x.argmin(axis=axis), axis)
        values = xp.take_along_axis(x, indices, axis=axis)
        ctx.shape, ctx.axis, ctx.keepdim, ctx.indices = x.shape, axis, keepdim, indices
        if not keepdim:
            values, indices = values.squeeze(axis), indices.squeeze(axis)
        return values, indices.astype(xp.int64)

    @staticmethod
    def backward(ctx, gy, _g_indices):
        xp = ctx.xp
        gy = expand_reduced(xp, gy, ctx.shape, (ctx.axis,), ctx.keepdim)
        position = xp.arange(ctx.shape[ctx.axis]).reshape((-1,) + (1,) * (len(ctx.shape) - ctx.axis - 1))
        return gy * (position == ctx.indices), None, None, None


class LogSumExp(Function):
    """y = m + log Σ exp(x - m), m = max x (stable);  gx = gy · exp(x - y)."""

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        xp = ctx.xp
        shift = x.max(axis=axes, keepdims=True)
        shift = xp.where(xp.isfinite(shift), shift, 0)
        y = xp.log(xp.exp(x - shift).sum(axis=axes, keepdims=True)) + shift
        y = y if keepdim else y.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))
        ctx.save_for_backward(x, y)
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        xp = ctx.xp
        gy, y = (expand_reduced(xp, a, ctx.shape, ctx.axes, ctx.keepdim) for a in (gy, y))
        return gy * xp.exp(x - y), None, None


class Softmax(Function):
    """y = exp(x - max) / Σ exp(x - max) along dim;  gx = y (gy - Σ gy y)."""

    @staticmethod
    def forward(ctx, x, axis):
        xp = ctx.xp
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        y = e / e.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return y * (gy - (gy * y).sum(axis=ctx.axis, keepdims=True)), None


class LogSoftmax(Function):
    """y = x - logsumexp(x) along dim (stable; written by hand for that);  gx = gy - exp(y) Σ gy."""

    @staticmethod
    def forward(ctx, x, axis):
        xp = ctx.xp
        shifted = x - x.max(axis=axis, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy - ctx.xp.exp(y) * gy.sum(axis=ctx.axis, keepdims=True), None


def _count(shape: tuple, axes: tuple) -> int:
    count = 1
    for axis in axes:
        count *= shape[axis]
    return count


def sum(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return Sum.apply(input, normalize_dims(dim, input.ndim, "sum"), keepdim)


def mean(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    if input.dtype.kind not in "fc":
        raise TypeError(f"mean: expected a floating point tensor, got dtype {input.dtype}")
    return Mean.apply(input, normalize_dims(dim, input.ndim, "mean"), keepdim)


def var(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:
    """Variance with Bessel's correction by default (``correction=1``, or ``unbiased=False`` for 0)."""
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return Var.apply(input, normalize_dims(dim, input.ndim, "var"), correction, keepdim)


def std(input: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:
    """sqrt of :func:`var`; the gradient of a constant input is 0, as PyTorch's."""
    return Std.apply(var(input, dim, unbiased, keepdim, correction=correction))


def amax(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    return AMax.apply(input, normalize_dims(dim, input.ndim, "amax"), keepdim, 1)


def amin(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    return AMax.apply(input, normalize_dims(dim, input.ndim, "amin"), keepdim, -1)


def max(input: Tensor, dim=None, keepdim: bool = False):
    """The largest element, or ``(values, indices)`` along ``dim``; ``max(a, b)`` is ``maximum``."""
    if isinstance(dim, Tensor):
        return input.maximum(dim)
    if dim is None:
        return amax(input)
    return max_result(*MaxAlongDim.apply(input, normalize_dim(dim, input.ndim, "max"), keepdim, 1))


def min(input: Tensor, dim=None, keepdim: bool = False):
    """The smallest element, or ``(values, indices)`` along ``dim``; ``min(a, b)`` is ``minimum``."""
    if isinstance(dim, Tensor):
        return input.minimum(dim)
    if dim is None:
        return amin(input)
    return min_result(*MaxAlongDim.apply(input, normalize_dim(dim, input.ndim, "min"), keepdim, -1))


def logsumexp(input: Tensor, dim, keepdim: bool = False) -> Tensor:
    return LogSumExp.apply(input, normalize_dims(dim, input.ndim, "logsumexp"), keepdim)


def softmax(input: Tensor, dim: int) -> Tensor:
    return Softmax.apply(input, normalize_dim(dim, input.ndim, "softmax"))


def log_softmax(input: Tensor, dim: int) -> Tensor:
    return LogSoftmax.apply(input, normalize_dim(dim, input.ndim, "log_softmax"))


def argmax(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the largest element (of the flattened tensor when ``dim`` is None); no gradient."""
    return _arg_extreme(input, dim, keepdim, input._data.argmax)


def argmin(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the smallest element (of the flattened tensor when ``dim`` is None); no gradient."""
    return _arg_extreme(input, dim, keepdim, input._data.argmin)


def _arg_extreme(input: Tensor, dim, keepdim: bool, method) -> Tensor:
    if dim is None:
        index = method()
        return Tensor(index.reshape((1,) * input.ndim if keepdim else ()).astype("int64"))
    return Tensor(method(axis=normalize_dim(dim, input.ndim, "argmax"), keepdims=keepdim).astype("int64"))
