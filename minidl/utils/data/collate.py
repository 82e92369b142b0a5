"""Samples to batches: ``default_collate`` and ``default_convert``, with PyTorch's type rules."""
from __future__ import annotations

import collections.abc
import copy
import numbers

import numpy as np

from minidl import backend
from minidl.tensors import Tensor

_UNBATCHABLE = ("default_collate: cannot batch samples of type {}; batch must contain tensors, "
                "numpy arrays, numbers, dicts or lists")


def default_collate(batch: list):
    """Stack a list of samples into a batch, field by field (``torch.utils.data.default_collate``).

    Tensors and NumPy arrays are stacked along a new first dim (a Tensor batch stays on its
    device; NumPy scalars keep their dtype); Python floats become float64, ints int64 and bools
    bool Tensors; strings and bytes stay a list. Mappings, namedtuples and sequences are collated
    per field and keep their type, except that tuples come back as lists, as in PyTorch.

    Examples:
        >>> default_collate([(np.zeros(2), 0), (np.ones(2), 1)])  # [x (2, 2) float64, y (2,) int64]
        >>> default_collate([{"x": 1.5}, {"x": 2.5}])  # {"x": Tensor([1.5, 2.5]) float64}
    """
    first = batch[0]
    if isinstance(first, Tensor):
        xp = backend.get_array_module(first._data)
        return Tensor(_stack([sample._data for sample in batch], xp))
    if isinstance(first, (str, bytes)):  # before NumPy: np.str_ is a str
        return batch  # as PyTorch: a list, or a tuple for a field of tuple samples
    if isinstance(first, (np.ndarray, np.generic)):
        if _holds_text_or_objects(first):
            raise TypeError(_UNBATCHABLE.format(f"a NumPy array of dtype {first.dtype}"))
        return Tensor(_stack(batch, np))
    if isinstance(first, bool):
        return Tensor(np.array(batch, dtype=np.bool_))
    if isinstance(first, numbers.Integral):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(first, numbers.Real):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(first, collections.abc.Mapping):
        return _like(first, {key: default_collate([s[key] for s in batch]) for key in first})
    if isinstance(first, collections.abc.Sequence):
        fields = [default_collate(field) for field in _transposed(batch)]
        if isinstance(first, tuple):
            return type(first)(*fields) if hasattr(first, "_fields") else fields
        return _like(first, fields)
    raise TypeError(_UNBATCHABLE.format(type(first).__name__))


def default_convert(data):
    """NumPy arrays and scalars become Tensors, inside mappings and sequences too; the rest stays.

    The collate function of ``DataLoader(batch_size=None)``: one sample, no batch dimension
    (``torch.utils.data.default_convert``; tuples come back as lists, as there).
    """
    if isinstance(data, (np.ndarray, np.generic)) and not isinstance(data, (str, bytes)):
        return data if _holds_text_or_objects(data) else Tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return _like(data, {key: default_convert(value) for key, value in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # a namedtuple
        return type(data)(*(default_convert(field) for field in data))
    if isinstance(data, tuple):
        return [default_convert(field) for field in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _like(data, [default_convert(field) for field in data])
    return data


def _holds_text_or_objects(array) -> bool:
    return array.dtype.kind in "SaUO"


def _stack(arrays: list, xp):
    shapes = [array.shape for array in arrays]
    for index, shape in enumerate(shapes):
        if shape != shapes[0]:
            raise RuntimeError(f"default_collate: stack expects each tensor to be equal size, but "
                               f"got {shapes[0]} at entry 0 and {shape} at entry {index}")
    return xp.stack(arrays)


def _transposed(batch: list) -> list:
    sizes = sorted({len(sample) for sample in batch})
    if len(sizes) > 1:
        raise ValueError(f"default_collate: each element in list of batch should be of equal size; "
                         f"the samples have different numbers of fields: {sizes}")
    return list(zip(*batch))


def _like(first, collated):
    """``collated`` (a dict or a list) in the container type of ``first`` where that type can be
    rebuilt (a mutable one is copied and its items replaced, as PyTorch does), else as it is."""
    try:
        if isinstance(first, (collections.abc.MutableMapping, collections.abc.MutableSequence)):
            clone = copy.copy(first)
            items = collated.items() if isinstance(collated, dict) else enumerate(collated)
            for key, value in items:
                clone[key] = value
            return clone
        return type(first)(collated)
    except TypeError:
        return collated
