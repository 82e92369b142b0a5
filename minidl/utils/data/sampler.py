"""Samplers (``torch.utils.data.sampler``): the order in which a DataLoader visits a dataset.

A sampler is an iterable of indices (a batch sampler: of lists of indices). The random ones draw
from a ``minidl.Generator`` (the global one unless given), all of an epoch's draws at once when
their iteration starts, so the generator's state then fixes the epoch's order; that is what
``DataLoader.state_dict()`` replays to resume mid-epoch.
"""
from __future__ import annotations

import itertools
import numbers

import numpy as np

from minidl import random
from minidl.tensors import Tensor


class Sampler:
    """Base class: subclasses define ``__iter__`` and, for ``len(loader)``, ``__len__``."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} has no __iter__()")


class SequentialSampler(Sampler):
    """``0, 1, ..., len(data_source) - 1``, the same every epoch."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """The indices of ``data_source`` in a random order, drawn anew each epoch.

    Without replacement an epoch is a random permutation (permutations one after another, cut
    to ``num_samples``, when more are asked for); with replacement, ``num_samples`` independent
    uniform draws.

    Args:
        data_source: what is sampled (anything with ``__len__``).
        replacement: draw with replacement.
        num_samples: indices per epoch (default: ``len(data_source)``).
        generator: the ``minidl.Generator`` to draw from (default: the global one).
    """

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator: random.Generator | None = None):
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a boolean value, but got "
                            f"replacement={replacement!r}")
        self.data_source, self.replacement, self.generator = data_source, replacement, generator
        self._num_samples = num_samples
        check_positive_integer("RandomSampler", "num_samples", self.num_samples)

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, count = len(self.data_source), self.num_samples
        if n == 0:
            raise ValueError(f"RandomSampler: cannot draw {count} samples from an empty "
                             f"data_source")
        rng = random.generator_for(np, self.generator)
        if self.replacement:
            return iter(rng.integers(n, size=count).tolist())
        permutations = [rng.permutation(n) for _ in range(-(-count // n))]
        return iter(np.concatenate(permutations)[:count].tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in a random order (without replacement), drawn anew each epoch."""

    def __init__(self, indices, generator: random.Generator | None = None):
        self.indices, self.generator = indices, generator

    def __iter__(self):
        order = random.generator_for(np, self.generator).permutation(len(self.indices))
        return iter([self.indices[i] for i in order.tolist()])

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices of ``range(len(weights))``, index ``i`` with probability
    ``weights[i] / sum(weights)`` (with replacement; without, each index at most once).

    Args:
        weights: a 1-D sequence (or Tensor) of non-negative weights, not necessarily summing to 1.
        num_samples: indices per epoch.
        replacement: draw with replacement.
        generator: the ``minidl.Generator`` to draw from (default: the global one).

    Examples:
        >>> counts = np.bincount(labels)  # oversample the rare classes
        >>> sampler = WeightedRandomSampler(1.0 / counts[labels], num_samples=len(labels))
    """

    def __init__(self, weights, num_samples: int, replacement: bool = True,
                 generator: random.Generator | None = None):
        check_positive_integer("WeightedRandomSampler", "num_samples", num_samples)
        if not isinstance(replacement, bool):
            raise ValueError(f"WeightedRandomSampler: replacement should be a boolean value, but "
                             f"got replacement={replacement!r}")
        array = np.asarray(weights.numpy() if isinstance(weights, Tensor) else weights, np.float64)
        if array.ndim != 1:
            raise ValueError(f"WeightedRandomSampler: weights should be a 1d sequence but given "
                             f"weights have shape {array.shape}")
        if not np.isfinite(array).all() or (array < 0).any() or not array.sum() > 0:
            raise ValueError("WeightedRandomSampler: weights must be finite and non-negative, and "
                             "not all zero")
        if not replacement and num_samples > np.count_nonzero(array):
            raise ValueError(f"WeightedRandomSampler: cannot draw {num_samples} samples without "
                             f"replacement from {np.count_nonzero(array)} non-zero weights")
        self.weights, self.num_samples = Tensor(array), num_samples
        self.replacement, self.generator = replacement, generator

    def __iter__(self):
        probabilities = self.weights._data / self.weights._data.sum()
        rng = random.generator_for(np, self.generator)
        drawn = rng.choice(len(probabilities), size=self.num_samples, replace=self.replacement,
                           p=probabilities)
        return iter(drawn.tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of ``batch_size`` consecutive indices of ``sampler`` (any iterable of indices).

    The last list is shorter when the indices run out, or dropped with ``drop_last``.

    Examples:
        >>> list(BatchSampler(SequentialSampler(range(10)), batch_size=3, drop_last=False))
        [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    """

    def __init__(self, sampler, batch_size: int, drop_last: bool):
        check_positive_integer("BatchSampler", "batch_size", batch_size)
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, but got "
                             f"drop_last={drop_last!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self):
        indices = iter(self.sampler)
        while batch := list(itertools.islice(indices, self.batch_size)):
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield batch

    def __len__(self) -> int:
        count = len(self.sampler)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)


def check_positive_integer(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
