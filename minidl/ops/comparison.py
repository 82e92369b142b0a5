"""Comparisons and logical ops: elementwise, bool results, no gradient."""
from __future__ import annotations

from minidl import backend
from minidl.tensors import Tensor


def _raw(value):
    return value._data if isinstance(value, Tensor) else value


def _result(array) -> Tensor:
    """Wrap as a Tensor; NumPy returns 0-d results as scalars, so make them arrays again."""
    return Tensor(backend.get_array_module(array).asarray(array))


def eq(input, other) -> Tensor:
    return _result(_raw(input) == _raw(other))


def ne(input, other) -> Tensor:
    return _result(_raw(input) != _raw(other))


def lt(input, other) -> Tensor:
    return _result(_raw(input) < _raw(other))


def le(input, other) -> Tensor:
    return _result(_raw(input) <= _raw(other))


def gt(input, other) -> Tensor:
    return _result(_raw(input) > _raw(other))


def ge(input, other) -> Tensor:
    return _result(_raw(input) >= _raw(other))


def logical_not(input) -> Tensor:
    return _result(~_raw(input).astype(bool))


def logical_and(input, other) -> Tensor:
    return _result(_raw(input).astype(bool) & _raw(other).astype(bool))


def logical_or(input, other) -> Tensor:
    return _result(_raw(input).astype(bool) | _raw(other).astype(bool))
