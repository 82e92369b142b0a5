"""Tensor's operators and op methods, defined beside the ops they call and installed onto Tensor.

``minidl.tensors`` holds the data and autograd's fields and imports no op; the ops build on
Tensor. ``install()`` (called by ``minidl/ops/__init__.py``) copies the methods of
``TensorMethods`` onto Tensor, so ``x + y`` calls ``minidl.ops.add`` and the import graph has no
cycle. Each method is thin: the op of the same name holds the forward and backward.
"""
from __future__ import annotations

import numpy as np

from minidl import backend, random
from minidl.autograd.grad_mode import is_grad_enabled
from minidl.creation import multinomial
from minidl.ops.arithmetic import add, div, masked_fill, maximum, minimum, mul, pow, sub
from minidl.ops.comparison import eq, ge, gt, le, logical_and, logical_not, logical_or, lt, ne
from minidl.ops.conversion import clone, to_device, to_dtype
from minidl.ops.elementwise import (acos, asin, atan, ceil, cos, cosh, erf, expm1, floor, log1p,
                                    log2, log10, reciprocal, round, rsqrt, sign, sin, sinh, square,
                                    tan, tril, triu, trunc)
from minidl.ops.indexing import getitem, setitem
from minidl.ops.linalg import matmul, norm
from minidl.ops.ordering import argsort, narrow, roll, sort, topk
from minidl.ops.pointwise import abs, clamp, exp, log, neg, relu, sigmoid, sqrt, tanh
from minidl.ops.reduction import (amax, amin, argmax, argmin, log_softmax, logsumexp, max, mean, min,
                                  softmax, std, sum, var)
from minidl.ops.shape import (broadcast_to, chunk, expand, flatten, permute, reshape, split, squeeze,
                              transpose, unsqueeze)
from minidl.tensors import Tensor

# the class's own attributes; __hash__ too: defining __eq__ set it to None here, and Tensor keeps
# hashing by identity
_OWN = {"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__hash__"}


class TensorMethods:
    """The methods ``install`` puts on Tensor (this class is never instantiated)."""

    @property
    def T(self) -> Tensor:
        return permute(self, tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> Tensor:
        return transpose(self, -2, -1)

    def clone(self) -> Tensor:
        return clone(self)

    def to(self, target=None, dtype=None) -> Tensor:
        """Move to a device (``"cpu"``, ``"cuda"``, a ``Device``) and/or cast to a dtype."""
        result = self
        if target is not None and backend.is_device_spec(target):
            result = to_device(result, backend.Device(target))
        elif target is not None:
            dtype = target
        if dtype is not None:
            result = to_dtype(result, np.dtype(dtype))
        return result

    # ----- operators and op methods: each forwards to minidl.ops --------------------------------
    def __add__(self, other): return add(self, other)
    def __radd__(self, other): return add(other, self)
    def __sub__(self, other): return sub(self, other)
    def __rsub__(self, other): return sub(other, self)
    def __mul__(self, other): return mul(self, other)
    def __rmul__(self, other): return mul(other, self)
    def __truediv__(self, other): return div(self, other)
    def __rtruediv__(self, other): return div(other, self)
    def __pow__(self, other): return pow(self, other)
    def __rpow__(self, other): return pow(other, self)
    def __matmul__(self, other): return matmul(self, other)
    def __rmatmul__(self, other): return matmul(other, self)
    def __neg__(self): return neg(self)
    def __pos__(self): return self
    def __abs__(self): return abs(self)
    def __eq__(self, other): return eq(self, other)
    def __ne__(self, other): return ne(self, other)
    def __lt__(self, other): return lt(self, other)
    def __le__(self, other): return le(self, other)
    def __gt__(self, other): return gt(self, other)
    def __ge__(self, other): return ge(self, other)
    def __invert__(self): return logical_not(self)
    def __and__(self, other): return logical_and(self, other)
    def __or__(self, other): return logical_or(self, other)
    def __getitem__(self, index): return getitem(self, index)
    def __setitem__(self, index, value): setitem(self, index, value)

    def add(self, other): return add(self, other)
    def sub(self, other): return sub(self, other)
    def mul(self, other): return mul(self, other)
    def div(self, other): return div(self, other)
    def pow(self, exponent): return pow(self, exponent)
    def neg(self): return neg(self)
    def matmul(self, other): return matmul(self, other)
    def exp(self): return exp(self)
    def log(self): return log(self)
    def sqrt(self): return sqrt(self)
    def abs(self): return abs(self)
    def tanh(self): return tanh(self)
    def sigmoid(self): return sigmoid(self)
    def relu(self): return relu(self)
    def clamp(self, min=None, max=None): return clamp(self, min, max)
    def clip(self, min=None, max=None): return clamp(self, min, max)
    def maximum(self, other): return maximum(self, other)
    def minimum(self, other): return minimum(self, other)
    def masked_fill(self, mask, value): return masked_fill(self, mask, value)
    def eq(self, other): return eq(self, other)
    def ne(self, other): return ne(self, other)
    def lt(self, other): return lt(self, other)
    def le(self, other): return le(self, other)
    def gt(self, other): return gt(self, other)
    def ge(self, other): return ge(self, other)

    # NumPy's axis/keepdims are accepted too, as PyTorch does: a backward's ``gy.sum(axis=...)``
    # then runs on arrays (first order) and on Tensors (create_graph) alike
    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return sum(self, dim if axis is None else axis, keepdim if keepdims is None else keepdims)
    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return mean(self, dim if axis is None else axis, keepdim if keepdims is None else keepdims)
    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return var(self, dim, unbiased, keepdim, correction=correction)
    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return std(self, dim, unbiased, keepdim, correction=correction)
    def max(self, dim=None, keepdim=False): return max(self, dim, keepdim)
    def min(self, dim=None, keepdim=False): return min(self, dim, keepdim)
    def amax(self, dim=(), keepdim=False): return amax(self, dim, keepdim)
    def amin(self, dim=(), keepdim=False): return amin(self, dim, keepdim)
    def argmax(self, dim=None, keepdim=False): return argmax(self, dim, keepdim)
    def argmin(self, dim=None, keepdim=False): return argmin(self, dim, keepdim)
    def logsumexp(self, dim, keepdim=False): return logsumexp(self, dim, keepdim)
    def softmax(self, dim): return softmax(self, dim)
    def log_softmax(self, dim): return log_softmax(self, dim)

    def sin(self): return sin(self)
    def cos(self): return cos(self)
    def tan(self): return tan(self)
    def asin(self): return asin(self)
    def acos(self): return acos(self)
    def atan(self): return atan(self)
    def sinh(self): return sinh(self)
    def cosh(self): return cosh(self)
    def log2(self): return log2(self)
    def log10(self): return log10(self)
    def square(self): return square(self)
    def rsqrt(self): return rsqrt(self)
    def erf(self): return erf(self)
    def log1p(self): return log1p(self)
    def expm1(self): return expm1(self)
    def reciprocal(self): return reciprocal(self)
    def sign(self): return sign(self)
    def floor(self): return floor(self)
    def ceil(self): return ceil(self)
    def round(self): return round(self)
    def trunc(self): return trunc(self)
    def tril(self, diagonal=0): return tril(self, diagonal)
    def triu(self, diagonal=0): return triu(self, diagonal)
    def norm(self, p="fro", dim=None, keepdim=False): return norm(self, p, dim, keepdim)
    def sort(self, dim=-1, descending=False, stable=False): return sort(self, dim, descending, stable)
    def argsort(self, dim=-1, descending=False, stable=False):
        return argsort(self, dim, descending, stable)
    def topk(self, k, dim=-1, largest=True, sorted=True): return topk(self, k, dim, largest, sorted)
    def roll(self, shifts, dims=None): return roll(self, shifts, dims)
    def narrow(self, dim, start, length): return narrow(self, dim, start, length)

    def multinomial(self, num_samples, replacement=False, *, generator=None):
        return multinomial(self, num_samples, replacement, generator=generator)

    # in place, as PyTorch: differentiable when recorded (the tensor takes the result's history)
    def add_(self, other, *, alpha=1):
        return _in_place(self, "add_", lambda x: add(x, _scaled(other, alpha)))
    def sub_(self, other, *, alpha=1):
        return _in_place(self, "sub_", lambda x: sub(x, _scaled(other, alpha)))
    def mul_(self, other): return _in_place(self, "mul_", lambda x: mul(x, other))
    def div_(self, other): return _in_place(self, "div_", lambda x: div(x, other))
    def pow_(self, exponent): return _in_place(self, "pow_", lambda x: pow(x, exponent))
    def clamp_(self, min=None, max=None):
        return _in_place(self, "clamp_", lambda x: clamp(x, min, max))
    def neg_(self): return _in_place(self, "neg_", neg)
    def exp_(self): return _in_place(self, "exp_", exp)

    # random fills, from minidl's generator (seeded by minidl.manual_seed)
    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        return _fill_random(self, "normal_", lambda g: g.normal(mean, std, self.shape), generator)

    def uniform_(self, from_=0.0, to=1.0, *, generator=None):
        return _fill_random(self, "uniform_", lambda g: g.uniform(from_, to, self.shape), generator)

    # new tensors with this one's dtype and device
    def new_zeros(self, *size, dtype=None): return self._new(size, 0, dtype)
    def new_ones(self, *size, dtype=None): return self._new(size, 1, dtype)
    def new_full(self, size, fill_value, dtype=None): return self._new((size,), fill_value, dtype)
    def new_empty(self, *size, dtype=None): return self._new(size, 0, dtype)

    def new_tensor(self, data, dtype=None):
        xp = backend.get_array_module(self._data)
        array = np.asarray(data.numpy() if isinstance(data, Tensor) else data)
        return Tensor(xp.asarray(array, dtype=dtype or self.dtype))  # this tensor's, as PyTorch

    def _new(self, size, fill_value, dtype):
        xp = backend.get_array_module(self._data)
        return Tensor(xp.full(_shape_args(size), fill_value, dtype=dtype or self.dtype))

    def type(self, dtype=None):
        """Cast to ``dtype``; without one, the type's name (``'torch.FloatTensor'`` style)."""
        if dtype is None:
            return f"minidl.{_TYPE_NAMES.get(self.dtype.name, self.dtype.name)}"
        return self.to(dtype)

    def __format__(self, spec):
        """A one-element tensor formats as its number (``f"{loss:.4f}"``), else as its repr."""
        return format(self.item(), spec) if self._data.size == 1 else format(repr(self), spec)

    def reshape(self, *shape): return reshape(self, _shape_args(shape))
    def view(self, *shape): return reshape(self, _shape_args(shape))
    def view_as(self, other): return reshape(self, other.shape)
    def flatten(self, start_dim=0, end_dim=-1): return flatten(self, start_dim, end_dim)
    def permute(self, *dims): return permute(self, _shape_args(dims))
    def transpose(self, dim0, dim1): return transpose(self, dim0, dim1)
    def t(self): return transpose(self, 0, 1) if self.ndim == 2 else self
    def squeeze(self, dim=None): return squeeze(self, dim)
    def unsqueeze(self, dim): return unsqueeze(self, dim)
    def expand(self, *sizes): return expand(self, _shape_args(sizes))
    def expand_as(self, other): return expand(self, other.shape)
    def broadcast_to(self, size): return broadcast_to(self, size)
    def split(self, split_size, dim=0): return split(self, split_size, dim)
    def chunk(self, chunks, dim=0): return chunk(self, chunks, dim)


def install() -> None:
    """Put every method and property of TensorMethods onto Tensor."""
    for name, value in vars(TensorMethods).items():
        if name not in _OWN:
            setattr(Tensor, name, value)


_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
               "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor",
               "int8": "CharTensor", "uint8": "ByteTensor", "bool": "BoolTensor"}


def _scaled(other, alpha):
    return other if alpha == 1 else other * alpha


def _in_place(tensor: Tensor, op: str, compute) -> Tensor:
    """``tensor = compute(tensor)`` in its own memory, as PyTorch's ``op``: a new version, and
    when a graph is recorded the tensor takes over the result's history (its old value, a copy,
    is the result's input, so nothing saved is overwritten)."""
    tensor._check_inplace(op)
    if is_grad_enabled():
        old = Tensor(tensor._data.copy(), tensor._requires_grad)
        old._ctx, old._output_index = tensor._ctx, tensor._output_index
        result = compute(old)
    else:
        result = compute(tensor)
    if result.dtype != tensor.dtype and result.dtype.kind != tensor.dtype.kind:
        raise RuntimeError(f"{op}: result type {result.dtype} can't be cast to the desired output "
                           f"type {tensor.dtype}")
    tensor._data[...] = result._data
    tensor._mark_modified()
    if result._ctx is not None:
        tensor._ctx, tensor._output_index, tensor._requires_grad = (result._ctx,
                                                                    result._output_index, True)
    return tensor


def _fill_random(tensor: Tensor, op: str, draw, generator) -> Tensor:
    """Overwrite ``tensor`` with ``draw(array generator)`` in its own dtype: a new version."""
    tensor._check_inplace(op)
    xp = backend.get_array_module(tensor._data)
    tensor._data[...] = xp.asarray(draw(random.generator_for(xp, generator)), dtype=tensor.dtype)
    tensor._mark_modified()
    return tensor


def _shape_args(args: tuple) -> tuple:
    """Accept both ``f(2, 3)`` and ``f((2, 3))``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)
