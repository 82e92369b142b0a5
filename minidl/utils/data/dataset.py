"""Datasets (``torch.utils.data.dataset``): map-style and iterable, of tensors, joined, subsets."""
from __future__ import annotations

import bisect
import itertools
import math
import numbers
import warnings

import numpy as np

from minidl import random
from minidl.tensors import Tensor


class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(index)`` and ``__len__()``.

    There is no default ``__len__`` (as in PyTorch: ``len()`` of a dataset without one is
    Python's TypeError). A subclass may define ``__getitems__(indices)`` returning the list of
    samples at ``indices``; the DataLoader then fetches each batch with one call.
    ``dataset + other`` is their ConcatDataset.
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} has no __getitem__()")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: subclasses define ``__iter__()``.

    With ``num_workers > 0`` every worker iterates its own copy of the dataset, so each sample
    comes once per worker unless ``__iter__`` (or the loader's ``worker_init_fn``) splits the
    stream by :func:`minidl.utils.data.get_worker_info`. ``stream + other`` is a ChainDataset.

    Examples:
        >>> class Range(IterableDataset):
        ...     def __init__(self, start, end):
        ...         self.start, self.end = start, end
        ...     def __iter__(self):
        ...         info = get_worker_info()  # None in the main process
        ...         if info is None:
        ...             return iter(range(self.start, self.end))
        ...         return iter(range(self.start + info.id, self.end, info.num_workers))
    """

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} has no __iter__()")

    def __add__(self, other: Dataset) -> ChainDataset:
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Samples are the rows of tensors that share their first dimension.

    Args:
        *tensors: Tensors or arrays of shape (N, ...); arrays become Tensors (no copy on CPU).

    Examples:
        >>> dataset = TensorDataset(minidl.randn(100, 4), minidl.randint(0, 3, (100,)))
        >>> x, y = dataset[0]
    """

    def __init__(self, *tensors):
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in tensors)
        sizes = [t.shape[0] if t.ndim else None for t in self.tensors]
        if not self.tensors or len(set(sizes)) != 1 or sizes[0] is None:
            shapes = ", ".join(str(tuple(t.shape)) for t in self.tensors)
            raise ValueError(f"TensorDataset expected tensors with the same first dimension, got "
                             f"shapes {shapes or 'none'}")

    def __getitem__(self, index):
        return tuple(Tensor(t._data[index]) for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class ConcatDataset(Dataset):
    """The samples of ``datasets`` one after the other.

    Index ``i`` is sample ``i - cumulative_sizes[k - 1]`` of the first dataset ``k`` with
    ``cumulative_sizes[k] > i``; negative indices count from the end.
    """

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for dataset in self.datasets:
            if isinstance(dataset, IterableDataset):
                raise TypeError(f"ConcatDataset does not support IterableDataset (got a "
                                f"{type(dataset).__name__}); chain streams with ChainDataset")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise ValueError(f"ConcatDataset: absolute value of index should not exceed "
                                 f"dataset length, got index {index} for length {len(self)}")
            index += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, index)
        if which == len(self.datasets):
            raise IndexError(f"ConcatDataset: index {index} is out of range for length {len(self)}")
        return self.datasets[which][index - (self.cumulative_sizes[which - 1] if which else 0)]


class ChainDataset(IterableDataset):
    """The streams of ``datasets`` (IterableDatasets) one after the other, chained lazily."""

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for dataset in self.datasets:
            yield from _stream(dataset)

    def __len__(self) -> int:
        return sum(len(_stream(dataset)) for dataset in self.datasets)


def _stream(dataset) -> IterableDataset:
    if not isinstance(dataset, IterableDataset):
        raise TypeError(f"ChainDataset only supports IterableDataset, got a "
                        f"{type(dataset).__name__}")
    return dataset


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset, indices):
        self.dataset, self.indices = dataset, [int(i) for i in indices]

    def __getitem__(self, index):
        if isinstance(index, (list, np.ndarray)):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset: Dataset, lengths, generator: random.Generator | None = None) -> list:
    """Split ``dataset`` into non-overlapping random Subsets of the given lengths or fractions.

    Fractions (summing to 1) become ``floor(fraction * len)`` samples each; the remainder is dealt
    one by one to the subsets in order, and an empty split warns, as in PyTorch. The order is one
    permutation drawn from ``generator`` (the default one unless given).

    Examples:
        >>> train, test = random_split(dataset, [0.8, 0.2], generator=minidl.Generator(0))
    """
    lengths, total = list(lengths), len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        lengths = _lengths_of_fractions(lengths, total)
    if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0 for n in lengths):
        raise ValueError(f"random_split: lengths must be non-negative integers or fractions that "
                         f"sum to 1, got {lengths}")
    if sum(lengths) != total:
        raise ValueError(f"random_split: lengths {lengths} do not add up to the dataset's length "
                         f"{total}")
    order = random.generator_for(np, generator).permutation(total)
    ends = list(itertools.accumulate(lengths))
    return [Subset(dataset, order[end - n:end]) for end, n in zip(ends, lengths)]


def _lengths_of_fractions(fractions: list, total: int) -> list:
    for index, fraction in enumerate(fractions):
        if not 0 <= fraction <= 1:
            raise ValueError(f"random_split: fraction at index {index} is not between 0 and 1, got "
                             f"{fraction}")
    counts = [math.floor(total * fraction) for fraction in fractions]
    for index in range(total - sum(counts)):
        counts[index % len(counts)] += 1
    for index, count in enumerate(counts):
        if count == 0:
            warnings.warn(f"Length of split at index {index} is 0. This might result in an empty "
                          f"dataset.", stacklevel=3)
    return counts
