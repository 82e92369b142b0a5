"""Datasets and the DataLoader (as ``torch.utils.data``), with a reproducible, resumable order.

Shuffling draws from a ``minidl.Generator`` (the default one unless given), so the same seed gives
the same batches. ``DataLoader.state_dict()`` records where an epoch is, and a loader that loads it
continues with exactly the batches the first one would have produced next.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from minidl import backend, random
from minidl.tensors import Tensor


class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(index)`` and ``__len__()``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} has no __getitem__()")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} has no __len__()")


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
        return tuple(Tensor(t.data[index]) for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


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
    one by one to the subsets in order, as PyTorch does.
    """
    lengths = list(lengths)
    total = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1 and all(0 <= f <= 1 for f in lengths):
        counts = [math.floor(total * f) for f in lengths]
        for index in range(total - sum(counts)):
            counts[index % len(counts)] += 1
        lengths = counts
    if sum(lengths) != total or any(n < 0 for n in lengths):
        raise ValueError(f"random_split: lengths {lengths} do not add up to the dataset's length "
                         f"{total}")
    order = random.generator_for(np, generator).permutation(total)
    splits = np.cumsum([0] + lengths)
    return [Subset(dataset, order[a:b]) for a, b in zip(splits[:-1], splits[1:])]


class DataLoader:
    """Iterate over ``dataset`` in batches, optionally shuffled each epoch.

    Args:
        dataset: a Dataset (anything with ``__getitem__`` and ``__len__``).
        batch_size: samples per batch.
        shuffle: draw a new order each epoch from ``generator``.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        generator: the ``minidl.Generator`` shuffling draws from (default: the global one).
        collate_fn: turns a list of samples into a batch (default :func:`default_collate`).

    For a ``TensorDataset`` with the default collate the whole batch is gathered with one fancy
    index per tensor instead of sample by sample. Deliberate differences from PyTorch: no
    ``sampler``, ``batch_sampler`` or worker processes; the arguments after ``shuffle`` are
    keyword-only; ``state_dict()``/``load_state_dict()`` make the order resumable mid-epoch.

    Examples:
        >>> loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
        >>> for xb, yb in loader:
        ...     loss = loss_fn(model(xb), yb)
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, *,
                 drop_last: bool = False, generator: random.Generator | None = None,
                 collate_fn=None):
        if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got "
                             f"{batch_size!r}")
        self.dataset, self.batch_size, self.shuffle = dataset, int(batch_size), bool(shuffle)
        self.drop_last, self.generator, self.collate_fn = drop_last, generator, collate_fn
        self._epoch_state = None  # generator state before this epoch's order was drawn
        self._batches_done = 0  # batches of the current epoch already handed out
        self._resume = None  # (epoch state, batches done) from load_state_dict, for the next iter()

    def __len__(self) -> int:
        count = len(self.dataset) / self.batch_size
        return math.floor(count) if self.drop_last else math.ceil(count)

    def __iter__(self):
        generator = self.generator or random.default_generator
        if self._resume is not None:  # replay the saved epoch's order on a copy of its generator
            (epoch_state, start), self._resume = self._resume, None
            order = self._replay_order(epoch_state)
        else:
            epoch_state, start = (generator.get_state() if self.shuffle else None), 0
            n = len(self.dataset)
            order = generator.cpu.permutation(n) if self.shuffle else np.arange(n)
        self._epoch_state = epoch_state
        for batch in range(start, len(self)):
            indices = order[batch * self.batch_size:(batch + 1) * self.batch_size]
            self._batches_done = batch + 1
            yield self._fetch(indices)
        self._epoch_state, self._batches_done = None, 0

    def _replay_order(self, epoch_state: dict | None) -> np.ndarray:
        if epoch_state is None:
            return np.arange(len(self.dataset))
        replay = random.Generator()
        replay.set_state(epoch_state)
        return replay.cpu.permutation(len(self.dataset))

    def _fetch(self, indices: np.ndarray):
        if self.collate_fn is None and isinstance(self.dataset, TensorDataset):
            return tuple(_take(t, indices) for t in self.dataset.tensors)
        samples = [self.dataset[int(i)] for i in indices]
        return (self.collate_fn or default_collate)(samples)

    def state_dict(self) -> dict:
        """Where the current epoch is: JSON-able, save it with the model to resume mid-epoch."""
        return {"epoch_generator_state": self._epoch_state, "batches_done": self._batches_done}

    def load_state_dict(self, state: dict) -> None:
        """The next ``iter()`` continues the saved epoch (same order, from the next batch).

        The live generator is not touched: restore it (or the global RNG) from the checkpoint too.
        """
        done = int(state["batches_done"])
        self._resume = (state["epoch_generator_state"], done) if done else None


def _take(tensor: Tensor, indices: np.ndarray) -> Tensor:
    xp = backend.get_array_module(tensor.data)
    return Tensor(tensor.data[xp.asarray(indices)])


def default_collate(samples: list):
    """Stack a list of samples into a batch, field by field.

    Tensors and arrays are stacked along a new first dim; Python ints become int64, floats float64
    and bools bool Tensors (as PyTorch); tuples/lists and dicts are collated per field; strings
    stay a list.
    """
    first = samples[0]
    if isinstance(first, Tensor):
        xp = backend.get_array_module(first.data)
        return Tensor(xp.stack([s.data for s in samples]))
    if isinstance(first, (np.ndarray, np.generic)):
        return Tensor(np.stack(samples))
    if isinstance(first, bool):
        return Tensor(np.array(samples, dtype=np.bool_))
    if isinstance(first, numbers.Integral):
        return Tensor(np.array(samples, dtype=np.int64))
    if isinstance(first, numbers.Real):
        return Tensor(np.array(samples, dtype=np.float64))
    if isinstance(first, str):
        return list(samples)
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ValueError("default_collate: samples have different numbers of fields")
        return tuple(default_collate(list(field)) for field in zip(*samples))
    raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}; "
                    "expected Tensors, NumPy arrays, numbers, strings, or tuples/lists/dicts of "
                    "them")
