"""NumPy's function names over Tensors: the ``ctx.xp`` a backward sees under ``create_graph=True``.

A backward is written once against ``ctx.xp`` (see minidl.autograd). On the first-order path that
is NumPy or CuPy; here each function has NumPy's name and signature but calls a minidl op, so the
same backward code records a graph and its result can be differentiated again. Only the functions
some backward uses are here; a constant (zeros, arange, sign) is a Tensor that needs no grad.
"""
from __future__ import annotations

import builtins
import functools

from minidl.ops import (arithmetic, conversion, elementwise, linalg, pointwise, reduction, shape)
from minidl.tensors import Tensor


class TensorNamespace:
    """The functions of ``numpy`` that backward code calls, on Tensors, for one array module."""

    def __init__(self, array_module):
        self.array_module = array_module  # numpy or cupy: where constants are made
        self.errstate = getattr(array_module, "errstate", None)

    def _tensor(self, value):
        return value if isinstance(value, Tensor) else Tensor(self.array_module.asarray(value))

    # ----- constants ----------------------------------------------------------------------------
    def zeros(self, shape, dtype=float):
        return Tensor(self.array_module.zeros(shape, dtype=dtype))

    def zeros_like(self, a):
        return Tensor(self.array_module.zeros(a.shape, dtype=a.dtype))

    def ones_like(self, a):
        return Tensor(self.array_module.ones(a.shape, dtype=a.dtype))

    def arange(self, *args, **kwargs):
        return Tensor(self.array_module.arange(*args, **kwargs))

    def sign(self, x):
        """Piecewise constant: its derivative is 0 wherever it exists."""
        return Tensor(self.array_module.sign(_data(x)))

    def logical_and(self, x1, x2):
        return Tensor(self.array_module.logical_and(_data(x1), _data(x2)))

    # ----- elementwise --------------------------------------------------------------------------
    def exp(self, x):
        return pointwise.exp(self._tensor(x))

    def log(self, x):
        return pointwise.log(self._tensor(x))

    def sqrt(self, x):
        return pointwise.sqrt(self._tensor(x))

    def tanh(self, x):
        return pointwise.tanh(self._tensor(x))

    def sin(self, x):
        return elementwise.sin(self._tensor(x))

    def cos(self, x):
        return elementwise.cos(self._tensor(x))

    def sinh(self, x):
        return elementwise.sinh(self._tensor(x))

    def cosh(self, x):
        return elementwise.cosh(self._tensor(x))

    def abs(self, x):
        return pointwise.abs(self._tensor(x))

    def logaddexp(self, x1, x2):
        """log(e^x1 + e^x2) = x1 + softplus(x2 - x1), stable for any sign."""
        return x1 + pointwise.softplus(self._tensor(x2 - x1))

    def maximum(self, x1, x2):
        return arithmetic.maximum(self._tensor(x1), x2)

    def minimum(self, x1, x2):
        return arithmetic.minimum(self._tensor(x1), x2)

    def where(self, condition, x, y):
        return arithmetic.where(condition, x if isinstance(x, Tensor) else self._tensor(x), y)

    def astype(self, x, dtype):
        return conversion.to_dtype(x, self.array_module.dtype(dtype))

    def matmul(self, a, b):
        return linalg.matmul(a, b)

    # ----- reductions ---------------------------------------------------------------------------
    def sum(self, a, axis=None, keepdims=False):
        if axis == ():
            return a  # NumPy: no axis reduced
        return reduction.sum(a, axis, keepdims)

    def mean(self, a, axis=None, keepdims=False):
        return reduction.mean(a, axis, keepdims)

    # ----- shapes -------------------------------------------------------------------------------
    def reshape(self, a, newshape):
        return shape.reshape(a, newshape)

    def transpose(self, a, axes=None):
        return shape.permute(a, tuple(reversed(range(a.ndim))) if axes is None else axes)

    def swapaxes(self, a, axis1, axis2):
        return shape.transpose(a, axis1, axis2)

    def broadcast_to(self, a, shape_):
        return shape.expand(self._tensor(a), tuple(shape_))

    def expand_dims(self, a, axis):
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        ndim = a.ndim + len(axes)
        axes = sorted(d % ndim for d in axes)
        sizes = list(a.shape)
        for d in axes:
            sizes.insert(d, 1)
        return shape.reshape(a, tuple(sizes))

    def concatenate(self, arrays, axis=0):
        return shape.cat([self._tensor(a) for a in arrays], axis)

    def stack(self, arrays, axis=0):
        return shape.stack([self._tensor(a) for a in arrays], axis)

    def take(self, a, index: int, axis: int):
        """``a.take(index, axis)`` for one integer index: the slice at ``index`` along ``axis``."""
        return a[(builtins.slice(None),) * (axis % a.ndim) + (index,)]


def _data(value):
    return value._data if isinstance(value, Tensor) else value


@functools.cache
def tensor_namespace(array_module) -> TensorNamespace:
    """The namespace for ``array_module`` (one per module: NumPy, or CuPy)."""
    return TensorNamespace(array_module)
