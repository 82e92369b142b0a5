"""Fetching: what the index sampler yields, turned into a batch (in this process or in a worker)."""
from __future__ import annotations

import itertools

import numpy as np

from minidl import backend
from minidl.tensors import Tensor
from minidl.utils.data.dataset import IterableDataset, Subset, TensorDataset


class StreamEnd(Exception):
    """An IterableDataset's stream has no more batches (no more complete ones, with drop_last)."""


class Fetcher:
    """Builds the batches of ``dataset``.

    ``fetcher(index)`` collates the samples at ``index``, a list of indices (auto-collation),
    or converts the one sample at ``index`` (``batch_size=None``). For an IterableDataset the
    index only counts the samples, which come from the stream that ``start()`` opens.

    With ``gather_rows`` (the loader's default collate), a TensorDataset, or Subsets of one, is
    gathered with one fancy index per tensor: the same batch as collating its samples one by one.
    """

    def __init__(self, dataset, collate_fn, auto_collation: bool, drop_last: bool,
                 gather_rows: bool):
        self.dataset, self.collate_fn = dataset, collate_fn
        self.auto_collation, self.drop_last = auto_collation, drop_last
        self.gather_rows = gather_rows
        self.iterable = isinstance(dataset, IterableDataset)
        self.stream = None

    def start(self) -> None:
        """Begin an epoch: an IterableDataset's stream starts again from its ``iter()``."""
        if self.iterable:
            self.stream = iter(self.dataset)

    def __call__(self, index):
        if self.iterable:
            return self._from_stream(index)
        if not self.auto_collation:
            return self.collate_fn(self.dataset[index])
        rows = _gathered_rows(self.dataset, index) if self.gather_rows else None
        if rows is not None:
            return rows
        getitems = getattr(self.dataset, "__getitems__", None)
        return self.collate_fn(getitems(index) if getitems else [self.dataset[i] for i in index])

    def _from_stream(self, index):
        if not self.auto_collation:
            sample = next(self.stream, StreamEnd)
            if sample is StreamEnd:
                raise StreamEnd
            return self.collate_fn(sample)
        samples = list(itertools.islice(self.stream, len(index)))
        if not samples or (self.drop_last and len(samples) < len(index)):
            raise StreamEnd
        return self.collate_fn(samples)


def local_batches(fetcher: Fetcher, indices):
    """The batches of ``indices`` (what the index sampler yields), fetched in this process."""
    fetcher.start()
    for index in indices:
        try:
            batch = fetcher(index)
        except StreamEnd:
            return
        yield batch


def _gathered_rows(dataset, indices: list) -> list | None:
    """``[x[indices], y[indices], ...]`` for a TensorDataset or nested Subsets of one; None for any
    other dataset (a subclass that overrides ``__getitem__`` included)."""
    while _plain(dataset, Subset):
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    if not _plain(dataset, TensorDataset):
        return None
    positions = np.array(indices, dtype=np.intp)  # converted once, for all the tensors
    return [_take(tensor, positions) for tensor in dataset.tensors]


def _plain(dataset, cls) -> bool:
    return (isinstance(dataset, cls) and type(dataset).__getitem__ is cls.__getitem__
            and not hasattr(dataset, "__getitems__"))


def _take(tensor: Tensor, positions: np.ndarray) -> Tensor:
    xp = backend.get_array_module(tensor._data)
    return Tensor(tensor._data[xp.asarray(positions)])
