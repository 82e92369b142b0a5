"""Binary arithmetic with broadcasting: add, sub, mul, div, pow, maximum, minimum, where.

Each backward reduces the incoming gradient over the axes broadcasting stretched (``reduce_like``).
Either side may be a Python scalar; it gets no gradient.
"""
from __future__ import annotations

from minidl import backend
from minidl.autograd import Function
from minidl.ops.common import quiet, meta, reduce_like
from minidl.tensors import Tensor


class Add(Function):
    """z = x + y;  gx = gz, gy = gz."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.x_meta, ctx.y_meta = meta(x), meta(y)
        return x + y

    @staticmethod
    def backward(ctx, gz):
        return reduce_like(ctx.xp, gz, ctx.x_meta), reduce_like(ctx.xp, gz, ctx.y_meta)


class Sub(Function):
    """z = x - y;  gx = gz, gy = -gz."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.x_meta, ctx.y_meta = meta(x), meta(y)
        return x - y

    @staticmethod
    def backward(ctx, gz):
        gy = reduce_like(ctx.xp, -gz, ctx.y_meta) if ctx.needs_input_grad[1] else None
        return reduce_like(ctx.xp, gz, ctx.x_meta), gy


class Mul(Function):
    """z = x * y;  gx = gz * y, gy = gz * x."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, gz):
        x, y = ctx.saved_tensors
        gx = reduce_like(ctx.xp, gz * y, meta(x)) if ctx.needs_input_grad[0] else None
        gy = reduce_like(ctx.xp, gz * x, meta(y)) if ctx.needs_input_grad[1] else None
        return gx, gy


class Div(Function):
    """z = x / y;  gx = gz / y, gy = -gz * x / y**2."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x / y

    @staticmethod
    def backward(ctx, gz):
        x, y = ctx.saved_tensors
        gx = reduce_like(ctx.xp, gz / y, meta(x)) if ctx.needs_input_grad[0] else None
        gy = reduce_like(ctx.xp, -gz * x / (y * y), meta(y)) if ctx.needs_input_grad[1] else None
        return gx, gy


class Pow(Function):
    """z = x ** y;  gx = gz * y * x**(y-1), gy = gz * z * log(x) (0 where x = 0 and y >= 0)."""

    @staticmethod
    def forward(ctx, x, y):
        z = x ** y
        ctx.save_for_backward(x, y, z)
        return z

    @staticmethod
    def backward(ctx, gz):
        x, y, z = ctx.saved_tensors
        xp = ctx.xp
        gx = gy = None
        if ctx.needs_input_grad[0]:
            gx = reduce_like(xp, gz * y * x ** (y - 1), meta(x))
        if ctx.needs_input_grad[1]:
            with quiet(xp):
                log_x = xp.where(xp.logical_and(x == 0, y >= 0), 0, xp.log(x))
            gy = reduce_like(xp, gz * z * log_x, meta(y))
        return gx, gy


class Maximum(Function):
    """z = max(x, y);  the gradient goes to the larger input, split in half on ties (as PyTorch)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return ctx.xp.maximum(x, y)

    @staticmethod
    def backward(ctx, gz):
        x, y = ctx.saved_tensors
        return _split_by_winner(ctx, gz, x > y, x == y, x, y)


class Minimum(Function):
    """z = min(x, y);  the gradient goes to the smaller input, split in half on ties (as PyTorch)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return ctx.xp.minimum(x, y)

    @staticmethod
    def backward(ctx, gz):
        x, y = ctx.saved_tensors
        return _split_by_winner(ctx, gz, x < y, x == y, x, y)


def _split_by_winner(ctx, gz, x_wins, tie, x, y):
    share = gz * (x_wins + 0.5 * tie)
    gx = reduce_like(ctx.xp, share, meta(x)) if ctx.needs_input_grad[0] else None
    gy = reduce_like(ctx.xp, gz - share, meta(y)) if ctx.needs_input_grad[1] else None
    return gx, gy


class Where(Function):
    """z = condition ? x : y;  gx = gz where condition, gy = gz elsewhere."""

    @staticmethod
    def forward(ctx, x, y, *, condition):
        ctx.condition, ctx.x_meta, ctx.y_meta = condition, meta(x), meta(y)
        return ctx.xp.where(condition, x, y)

    @staticmethod
    def backward(ctx, gz):
        xp, zero = ctx.xp, ctx.xp.zeros((), dtype=gz.dtype)
        gx = reduce_like(xp, xp.where(ctx.condition, gz, zero), ctx.x_meta) if ctx.needs_input_grad[0] else None
        gy = reduce_like(xp, xp.where(ctx.condition, zero, gz), ctx.y_meta) if ctx.needs_input_grad[1] else None
        return gx, gy


def _binary(function: type[Function], x, y) -> Tensor:
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        raise TypeError(f"{function.__name__.lower()}: expected at least one Tensor, got "
                        f"{type(x).__name__} and {type(y).__name__}")
    return function.apply(x, y)


def add(input, other) -> Tensor:
    return _binary(Add, input, other)


def sub(input, other) -> Tensor:
    return _binary(Sub, input, other)


def mul(input, other) -> Tensor:
    return _binary(Mul, input, other)


def div(input, other) -> Tensor:
    return _binary(Div, input, other)


def pow(input, exponent) -> Tensor:
    return _binary(Pow, input, exponent)


def maximum(input, other) -> Tensor:
    return _binary(Maximum, input, other)


def minimum(input, other) -> Tensor:
    return _binary(Minimum, input, other)


def where(condition, input, other) -> Tensor:
    """Elementwise ``input if condition else other``; ``condition`` is a bool Tensor or array."""
    condition = condition.data if isinstance(condition, Tensor) else condition
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = Tensor(backend.get_array_module(condition).asarray(input))
    return Where.apply(input, other, condition=condition)


def masked_fill(input: Tensor, mask, value) -> Tensor:
    """``value`` where ``mask`` is True, ``input`` elsewhere."""
    return where(mask, value, input)

