"""``DistributedSampler`` (``torch.utils.data.distributed``): each rank's share of a dataset.

With ``W = num_replicas`` ranks and ``N = len(dataset)``, every rank gets the same number of
indices, ``n = ceil(N / W)`` (``drop_last``: ``ceil((N - W) / W)``, so that the tail is cut
rather than padded): the epoch's order (a permutation seeded with ``seed + epoch``, the same on
every rank, or ``0..N-1``) is padded by repeating its start (or cut) to ``W·n`` indices, and
rank ``r`` takes every W-th from position ``r``. The ranks' shares are disjoint and together
cover the dataset; call ``set_epoch(epoch)`` before each epoch for a new order.
"""
from __future__ import annotations

import math

import numpy as np

from minidl import distributed
from minidl.utils.data.sampler import Sampler


class DistributedSampler(Sampler):
    """The indices of ``dataset`` that belong to rank ``rank`` of ``num_replicas``.

    Args:
        dataset: what is sampled (anything with ``__len__``).
        num_replicas: the number of ranks (default: ``get_world_size()``).
        rank: this process's rank (default: ``get_rank()``).
        shuffle: a new random order each epoch (seeded by ``seed + epoch``), else ``0..N-1``.
        seed: the shuffling seed; it must be the same on every rank.
        drop_last: cut the tail so the ranks' shares are equal, instead of padding with repeats.

    Examples:
        >>> sampler = DistributedSampler(dataset)          # after init_process_group
        >>> loader = DataLoader(dataset, batch_size=64, sampler=sampler)
        >>> for epoch in range(epochs):
        ...     sampler.set_epoch(epoch)
        ...     for x, y in loader: ...
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None:
            num_replicas = distributed.get_world_size()
        if rank is None:
            rank = distributed.get_rank()
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be at least 1, got "
                             f"{num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0
        count = len(dataset)
        if drop_last and count % num_replicas:
            self.num_samples = math.ceil((count - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(count / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self):
        count = len(self.dataset)
        if self.shuffle:
            order = np.random.Generator(np.random.PCG64(self.seed + self.epoch)).permutation(count)
        else:
            order = np.arange(count)
        if self.drop_last:
            order = order[:self.total_size]
        else:  # pad with the order's start, repeated as often as needed (a tiny dataset)
            order = np.resize(order, self.total_size)
        return iter(order[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order to draw next (shuffle seed ``seed + epoch``)."""
        self.epoch = epoch
