"""More elementwise math PyTorch exports (sin, cos, tan and their inverses, sinh, cosh, rsqrt, erf,
log1p, log2, log10, expm1, reciprocal, square, and the piecewise-constant
sign/floor/ceil/round/trunc), and the triangular masks tril/triu.

Each backward is written with ``ctx.xp``, so it is differentiable again. The piecewise-constant
functions have zero gradients, as in PyTorch.
"""
from __future__ import annotations

import math

from minidl.autograd import Function
from minidl.kernels.activations import erf as erf_kernel
from minidl.tensors import Tensor


class Rsqrt(Function):
    """y = 1/√x;  gx = -gy y³ / 2."""

    @staticmethod
    def forward(ctx, x):
        y = 1 / ctx.xp.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return -0.5 * gy * y * y * y


class Erf(Function):
    """y = erf x;  gx = gy · 2/√π · e^(-x²)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return erf_kernel(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * (2 / math.sqrt(math.pi)) * ctx.xp.exp(-x * x)


class Expm1(Function):
    """y = eˣ - 1;  gx = gy (y + 1)."""

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.expm1(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * (y + 1)


class Reciprocal(Function):
    """y = 1/x;  gx = -gy y²."""

    @staticmethod
    def forward(ctx, x):
        y = 1 / x
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return -gy * y * y


class Smooth(Function):
    """y = f(x) for a smooth NumPy function f named ``name`` (sin, cos, tan, arcsin, arccos,
    arctan, sinh, cosh, log1p, log2, log10);  gx = gy f'(x), with f' in ``DERIVATIVES`` written
    against ``xp``, so differentiable again."""

    @staticmethod
    def forward(ctx, x, *, name: str):
        ctx.save_for_backward(x)
        ctx.function = name
        return getattr(ctx.xp, name)(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * DERIVATIVES[ctx.function](ctx.xp, x)


DERIVATIVES = {
    "sin": lambda xp, x: xp.cos(x),
    "cos": lambda xp, x: -xp.sin(x),
    "tan": lambda xp, x: 1 / (xp.cos(x) * xp.cos(x)),
    "arcsin": lambda xp, x: 1 / xp.sqrt(1 - x * x),
    "arccos": lambda xp, x: -1 / xp.sqrt(1 - x * x),
    "arctan": lambda xp, x: 1 / (1 + x * x),
    "sinh": lambda xp, x: xp.cosh(x),
    "cosh": lambda xp, x: xp.sinh(x),
    "log1p": lambda xp, x: 1 / (1 + x),
    "log2": lambda xp, x: 1 / (x * math.log(2)),
    "log10": lambda xp, x: 1 / (x * math.log(10)),
}


class PiecewiseConstant(Function):
    """y = f(x) for a step function f (sign, floor, ceil, round, trunc);  gx = 0 (PyTorch)."""

    @staticmethod
    def forward(ctx, x, *, name: str):
        return getattr(ctx.xp, name)(x)

    @staticmethod
    def backward(ctx, gy):
        return gy * 0


class Triangle(Function):
    """y = x with the elements above (tril) or below (triu) ``diagonal`` zeroed, over the last
    two dims;  gx = the same mask applied to gy (so its gradient is the op again)."""

    @staticmethod
    def forward(ctx, x, *, diagonal: int, upper: bool):
        ctx.diagonal, ctx.upper = diagonal, upper
        return ctx.xp.triu(x, diagonal) if upper else ctx.xp.tril(x, diagonal)

    @staticmethod
    def backward(ctx, gy):
        return Triangle.apply(gy, diagonal=ctx.diagonal, upper=ctx.upper)


def sin(input: Tensor) -> Tensor:
    return Smooth.apply(input, name="sin")


def cos(input: Tensor) -> Tensor:
    return Smooth.apply(input, name="cos")


def rsqrt(input: Tensor) -> Tensor:
    return Rsqrt.apply(input)


def erf(input: Tensor) -> Tensor:
    return Erf.apply(input)


def log1p(input: Tensor) -> Tensor:
    return Smooth.apply(input, name="log1p")


def expm1(input: Tensor) -> Tensor:
    return Expm1.apply(input)


def reciprocal(input: Tensor) -> Tensor:
    return Reciprocal.apply(input)


def tan(input: Tensor) -> Tensor:
    return Smooth.apply(input, name="tan")


def asin(input: Tensor) -> Tensor:
    return Smooth.apply(input, name="arcsin")


def acos(input: Tensor) -> Tensor:
    return Smooth.apply(input, name="arccos")


def atan(input: Tensor) -> Tensor:
    return Smooth.apply(input, name="arctan")


def sinh(input: Tensor) -> Tensor:
    return Smooth.apply(input, name="sinh")


def cosh(input: Tensor) -> Tensor:
    return Smooth.apply(input, name="cosh")


def log2(input: Tensor) -> Tensor:
    return Smooth.apply(input, name="log2")


def log10(input: Tensor) -> Tensor:
    return Smooth.apply(input, name="log10")


def square(input: Tensor) -> Tensor:
    """x · x (composed: its gradient is 2x · gy)."""
    return input * input


def sign(input: Tensor) -> Tensor:
    return PiecewiseConstant.apply(input, name="sign")


def floor(input: Tensor) -> Tensor:
    return PiecewiseConstant.apply(input, name="floor")


def ceil(input: Tensor) -> Tensor:
    return PiecewiseConstant.apply(input, name="ceil")


def round(input: Tensor) -> Tensor:
    """Halves to even, as PyTorch (and NumPy)."""
    return PiecewiseConstant.apply(input, name="round")


def trunc(input: Tensor) -> Tensor:
    return PiecewiseConstant.apply(input, name="trunc")


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (``diagonal`` > 0: that many diagonals above)."""
    _check_matrix("tril", input)
    return Triangle.apply(input, diagonal=diagonal, upper=False)


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (``diagonal`` > 0: starting that far above)."""
    _check_matrix("triu", input)
    return Triangle.apply(input, diagonal=diagonal, upper=True)


def _check_matrix(op: str, input: Tensor) -> None:
    if input.ndim < 2:
        raise RuntimeError(f"{op}: input tensor must have at least 2 dimensions, got shape "
                           f"{tuple(input.shape)}")
