"""Binary arithmetic with broadcasting: add, sub, mul, div, pow, maximum, minimum, where.

Each backward reduces the incoming gradient over the axes broadcasting stretched (``reduce_like``).
Either side may be a Python scalar; it gets no gradient.
"""
from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.autograd import Function
from minidl.ops.common import quiet, meta, reduce_like
from minidl.ops.conversion import to_dtype
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
            # y x^(y-1), 0 where y = 0 (PyTorch): x^0 there keeps 0^(-1) = inf out of the product
            power = (y - 1 if y != 0 else 0) if meta(y) is None else xp.where(y == 0, 1, y) - 1
            gx = reduce_like(xp, gz * y * x ** power, meta(x))
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
    x_tensor, y_tensor = isinstance(x, Tensor), isinstance(y, Tensor)
    if not x_tensor and not y_tensor:
        raise TypeError(f"{function.__name__.lower()}: expected at least one Tensor, got "
                        f"{type(x).__name__} and {type(y).__name__}")
    if x_tensor and y_tensor:
        if x._data.dtype != y._data.dtype:
            x, y = _promote(x, y)
    elif not (type(x if y_tensor else y) in (float, int) and (y if y_tensor else x).dtype.kind == "f"):
        x, y = _promote(x, y)  # the fast path: a float tensor and a Python number
    return function.apply(x, y)


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
_DEFAULT = {1: np.dtype(np.int64), 2: np.dtype(np.float32), 3: np.dtype(np.complex64)}


def _promote(x, y) -> tuple:
    """PyTorch's type promotion: tensors with dimensions decide the dtype; a 0-d tensor or a
    number counts only if its category (bool < integer < float < complex) is higher, and a number
    then gives that category's default (float32, int64). ``float32 * np.float64(2)`` stays float32,
    ``int64 + float32`` is float32, ``int tensor * 2.5`` is float32. Numbers stay Python numbers."""
    x, y = _as_number(x), _as_number(y)
    operands = [v for v in (x, y) if isinstance(v, Tensor)]
    dimensioned = [v.dtype for v in operands if v.ndim > 0] or [v.dtype for v in operands]
    dtype = _promote_types(dimensioned)
    zero_dim = [v.dtype for v in operands if v.ndim == 0 and _CATEGORY[v.dtype.kind] >
                _CATEGORY[dtype.kind]]
    if zero_dim:
        dtype = _promote_types(zero_dim)
    numbers = [_CATEGORY[np.dtype(type(v)).kind] for v in (x, y) if not isinstance(v, Tensor)]
    if numbers and max(numbers) > _CATEGORY[dtype.kind]:
        dtype = _DEFAULT[max(numbers)]
    return tuple(to_dtype(v, dtype) if isinstance(v, Tensor) else v for v in (x, y))


def _is_float(value) -> bool:
    """A float (or complex) Tensor, array or number."""
    if isinstance(value, (Tensor, np.ndarray, np.generic)):
        return value.dtype.kind in "fc"
    return isinstance(value, (float, complex))


def _promote_types(dtypes: list) -> np.dtype:
    """The higher category's dtype (int64 + float32 -> float32); within one category, NumPy's."""
    top = max(_CATEGORY[d.kind] for d in dtypes)
    return np.result_type(*[d for d in dtypes if _CATEGORY[d.kind] == top])


def _as_number(value):
    """A NumPy scalar or 0-d array as a Python number (a "wrapped number" in PyTorch's rules);
    Tensors and arrays with dimensions as they are."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (np.generic, np.ndarray)) and value.ndim == 0:
        return value.item()
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a NumPy or CuPy array: a constant
        return Tensor(value)
    return value


def add(input, other) -> Tensor:
    return _binary(Add, input, other)


def sub(input, other) -> Tensor:
    return _binary(Sub, input, other)


def mul(input, other) -> Tensor:
    return _binary(Mul, input, other)


def div(input, other) -> Tensor:
    """True division: integer (or bool) operands give the default float dtype, as PyTorch."""
    if not _is_float(input) and not _is_float(other):
        input, other = (to_dtype(v, _DEFAULT[2]) if isinstance(v, Tensor) else v
                        for v in (input, other))
    return _binary(Div, input, other)


def pow(input, exponent) -> Tensor:
    return _binary(Pow, input, exponent)


def maximum(input, other) -> Tensor:
    return _binary(Maximum, input, other)


def minimum(input, other) -> Tensor:
    return _binary(Minimum, input, other)


def where(condition, input, other) -> Tensor:
    """Elementwise ``input if condition else other``; ``condition`` is a bool Tensor or array."""
    condition = condition._data if isinstance(condition, Tensor) else condition
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = Tensor(backend.get_array_module(condition).asarray(input))
    return Where.apply(input, other, condition=condition)


def masked_fill(input: Tensor, mask, value) -> Tensor:
    """``value`` where ``mask`` is True, ``input`` elsewhere."""
    return where(mask, value, input)

