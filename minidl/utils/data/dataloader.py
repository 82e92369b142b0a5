"""``DataLoader`` (``torch.utils.data.DataLoader``), with a reproducible, resumable order."""
from __future__ import annotations

import itertools
import multiprocessing
import numbers
import os
import warnings

import numpy as np

from minidl import random
from minidl.utils.data.collate import default_collate, default_convert
from minidl.utils.data.dataset import IterableDataset
from minidl.utils.data.fetch import Fetcher, local_batches
from minidl.utils.data.sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                                       check_positive_integer)
from minidl.utils.data.worker import WorkerPool

_END = object()
_SET_ONCE = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")


class DataLoader:
    """Iterate over ``dataset`` in batches, as ``torch.utils.data.DataLoader`` (same arguments,
    defaults, checks and errors).

    Args:
        dataset: a map-style Dataset (``__getitem__`` and ``__len__``) or an IterableDataset.
        batch_size: samples per batch; None turns batching off (each sample is converted alone).
        shuffle: a new random order every epoch (a :class:`RandomSampler` on ``generator``).
        sampler: the order of the indices (any iterable of them); excludes ``shuffle``.
        batch_sampler: yields lists of indices; excludes batch_size, shuffle, sampler, drop_last.
        num_workers: worker processes that fetch the batches; 0 fetches in this process.
        collate_fn: list of samples -> batch (default :func:`default_collate`, or
            :func:`default_convert` when batching is off).
        pin_memory: accepted and ignored (no pinned buffers): batches are host arrays, move them
            with ``.to("cuda")``.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        timeout: seconds to wait for a worker's batch before a RuntimeError (0: no limit).
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each worker, once, after it
            is seeded (see :func:`get_worker_info`).
        multiprocessing_context: the workers' start method ("fork", "spawn", "forkserver") or a
            context (default: Python's; "spawn" and "forkserver" pickle the dataset).
        generator: the ``minidl.Generator`` the order draws from (default: the global one).
        prefetch_factor: batches handed to each worker ahead of time (default 2 with workers).
        persistent_workers: keep the workers, and their copies of the dataset, across epochs.

    Worker processes are real: the batches are handed out round-robin and come back in the
    sampler's order. Each epoch worker ``i`` is seeded with ``base_seed + i`` (Python's
    ``random``, minidl's and NumPy's global RNGs); ``base_seed`` is hashed from the state of the
    order's generator when the epoch begins and the epoch's number, and draws nothing from it, so
    the batches are the same for every ``num_workers``. Batches travel back pickled through a
    pipe (no shared memory): workers pay off when making a sample costs more than copying it.
    Do not fetch CUDA tensors in a forked worker.

    For a TensorDataset (or Subsets of one) with the default collate the whole batch is gathered
    with one fancy index per tensor instead of sample by sample. ``state_dict()`` and
    ``load_state_dict()`` make the order resumable mid-epoch. Differences from PyTorch:
    ``timeout`` without workers is refused at construction; there is no ``pin_memory_device``
    or ``in_order=False``; persistent workers are reseeded every epoch, so an epoch's worker
    randomness does not depend on the epochs before it.

    Examples:
        >>> loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
        >>> for xb, yb in loader:
        ...     loss = loss_fn(model(xb), yb)
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler=None, batch_sampler=None, num_workers: int = 0, collate_fn=None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn=None, multiprocessing_context=None,
                 generator: random.Generator | None = None, *, prefetch_factor: int | None = None,
                 persistent_workers: bool = False):
        prefetch_factor = _check_workers(num_workers, timeout, prefetch_factor, persistent_workers)
        self.dataset, self.num_workers, self.prefetch_factor = dataset, num_workers, prefetch_factor
        self.pin_memory, self.timeout, self.worker_init_fn = pin_memory, timeout, worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self._iterable = isinstance(dataset, IterableDataset)
        batch_size, drop_last, sampler, batch_sampler = _order(
            dataset, self._iterable, batch_size, shuffle, sampler, batch_sampler, drop_last,
            generator)
        self.batch_size, self.drop_last, self.generator = batch_size, drop_last, generator
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self._gather_rows = collate_fn is None  # the fast path replaces only the default collate
        if collate_fn is None:
            collate_fn = default_collate if batch_sampler is not None else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers
        self._pool = None  # the persistent workers, once started
        self._epochs = 0  # epochs begun; the current one is number self._epochs - 1
        self._epoch_state = None  # the order generator's state when the current epoch began
        self._batches_done = 0  # batches of the current epoch already handed out
        self._resume = None  # (epoch state, batches done) from load_state_dict, for the next iter()
        self._initialized = True
        _warn_if_more_workers_than_cpus(num_workers)

    def __setattr__(self, name: str, value) -> None:
        if name in _SET_ONCE and self.__dict__.get("_initialized"):
            raise ValueError(f"{name} attribute should not be set after DataLoader is initialized")
        super().__setattr__(name, value)

    @property
    def multiprocessing_context(self):
        return self._multiprocessing_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, context) -> None:
        if context is not None:
            if not self.num_workers:
                raise ValueError(f"DataLoader: multiprocessing_context can only be used with "
                                 f"multi-process loading (num_workers > 0), but got "
                                 f"num_workers={self.num_workers}")
            if isinstance(context, str):
                methods = multiprocessing.get_all_start_methods()
                if context not in methods:
                    raise ValueError(f"DataLoader: multiprocessing_context option should specify a "
                                     f"valid start method in {methods!r}, but got "
                                     f"multiprocessing_context={context!r}")
                context = multiprocessing.get_context(context)
            if not isinstance(context, multiprocessing.context.BaseContext):
                raise TypeError(f"DataLoader: multiprocessing_context option should be a valid "
                                f"context object or a string specifying the start method, but got "
                                f"multiprocessing_context={context!r}")
        self._multiprocessing_context = context

    @property
    def _index_sampler(self):
        """What the batches are fetched by: the batch sampler, or the sampler without batching."""
        return self.sampler if self.batch_sampler is None else self.batch_sampler

    def __len__(self) -> int:
        if not self._iterable:
            return len(self._index_sampler)
        length = len(self.dataset)  # a stream's length is the dataset's word, as in PyTorch
        if self.batch_size is None:
            return length
        return length // self.batch_size if self.drop_last else -(-length // self.batch_size)

    def __iter__(self):
        generator = self._order_generator()
        if self._resume is None:
            state, done, epoch = generator.get_state(), 0, self._epochs
            self._epochs += 1
            indices = self._index_sampler
        else:  # replay the saved epoch's draws; the live generator is left as it is
            (state, done), self._resume = self._resume, None
            epoch = self._epochs - 1
            indices = (self._index_sampler if state is None else
                       _replayed(self._index_sampler, generator, state))
        if not self._iterable:  # a stream cannot skip: its first batches are fetched and dropped
            indices = itertools.islice(indices, done, None)
        fetcher = Fetcher(self.dataset, self.collate_fn, self.batch_sampler is not None,
                          self.drop_last, self._gather_rows)
        pool = None
        if self.num_workers:
            pool = self._pool or WorkerPool(self, fetcher)
            batches = pool.batches(indices, _base_seed(state or generator.get_state(), epoch))
        else:
            batches = local_batches(fetcher, indices)
        if self.persistent_workers:
            self._pool = pool
        if self._iterable:
            batches = itertools.islice(batches, done, None)
        self._epoch_state, self._batches_done = state, done
        try:
            for batch in batches:
                self._batches_done += 1
                yield batch
        finally:
            if pool is not None and not self.persistent_workers:
                pool.shutdown()
        self._epoch_state, self._batches_done = None, 0

    def _order_generator(self) -> random.Generator:
        """The generator the order draws from: the sampler's own, else the loader's, else the
        global one."""
        sampler = getattr(self.batch_sampler, "sampler", self.sampler)
        own = getattr(sampler, "generator", None)
        return own if isinstance(own, random.Generator) else (self.generator
                                                              or random.default_generator)

    def state_dict(self) -> dict:
        """Where the current epoch is: JSON-able, save it with the model to resume mid-epoch."""
        return {"epoch_generator_state": self._epoch_state, "batches_done": self._batches_done,
                "epochs": self._epochs}

    def load_state_dict(self, state: dict) -> None:
        """The next ``iter()`` continues the saved epoch (same order, from the next batch).

        The live generator is not touched: restore it (or the global RNG) from the checkpoint too.
        Randomness inside workers (augmentation) restarts from the workers' seeds.
        """
        done = int(state["batches_done"])
        self._epochs = int(state.get("epochs", 1 if done else 0))
        self._resume = (state["epoch_generator_state"], done) if done else None


class _EndlessSampler(Sampler):
    """The indices of an IterableDataset: placeholders (the stream decides when it ends)."""

    def __iter__(self):
        return itertools.repeat(None)


def _replayed(index_sampler, generator: random.Generator, state: dict):
    """Iterate ``index_sampler`` with ``generator`` drawing on from ``state`` (a saved epoch's),
    its live state restored around every step: the saved order, the live stream untouched."""
    iterator = None
    while True:
        live = generator.get_state()
        generator.set_state(state)
        try:
            iterator = iter(index_sampler) if iterator is None else iterator
            index = next(iterator, _END)
        finally:
            state = generator.get_state()
            generator.set_state(live)
        if index is _END:
            return
        yield index


def _base_seed(generator_state: dict, epoch: int) -> int:
    """The workers' base seed for an epoch: 63 bits hashed from the order generator's state when
    the epoch began and the epoch's number, so it differs from epoch to epoch."""
    words = [generator_state["seed"], *generator_state["state"].values(),
             generator_state["has_uint32"], generator_state["uinteger"], epoch]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _order(dataset, iterable: bool, batch_size, shuffle, sampler, batch_sampler, drop_last,
           generator) -> tuple:
    """PyTorch's checks of the order options; the batch size, drop_last and samplers to use."""
    if iterable:
        for name, value in (("shuffle", shuffle if shuffle else None), ("sampler", sampler),
                            ("batch_sampler", batch_sampler)):
            if value is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} "
                                 f"option, but got {name}={value}")
    shuffle = bool(shuffle)
    if sampler is not None and shuffle:
        raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
    if batch_sampler is not None:
        if batch_size != 1 or shuffle or sampler is not None or drop_last:
            raise ValueError("DataLoader: batch_sampler option is mutually exclusive with "
                             "batch_size, shuffle, sampler, and drop_last")
        batch_size, drop_last = None, False
    elif batch_size is None:
        if drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is "
                             "mutually exclusive with drop_last")
    else:
        check_positive_integer("DataLoader", "batch_size", batch_size)
    if sampler is None:
        sampler = (_EndlessSampler() if iterable else
                   RandomSampler(dataset, generator=generator) if shuffle else
                   SequentialSampler(dataset))
    if batch_size is not None:
        batch_sampler = BatchSampler(sampler, batch_size, drop_last)
    return batch_size, drop_last, sampler, batch_sampler


def _check_workers(num_workers, timeout, prefetch_factor, persistent_workers) -> int | None:
    """PyTorch's checks of the worker options; the prefetch factor to use."""
    if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) \
            or num_workers < 0:
        raise ValueError(f"DataLoader: num_workers option should be non-negative; use "
                         f"num_workers=0 to disable multiprocessing. Got {num_workers!r}")
    if timeout < 0:
        raise ValueError(f"DataLoader: timeout option should be non-negative, got {timeout!r}")
    if timeout and not num_workers:
        raise ValueError(f"DataLoader: timeout={timeout!r} bounds the wait for a worker's batch "
                         f"and needs num_workers > 0")
    if persistent_workers and not num_workers:
        raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
    if not num_workers:
        if prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified in "
                             "multiprocessing. Let num_workers > 0 to enable multiprocessing, "
                             "otherwise set prefetch_factor to None.")
        return None
    if prefetch_factor is None:
        return 2
    check_positive_integer("DataLoader", "prefetch_factor", prefetch_factor)
    return int(prefetch_factor)


def _warn_if_more_workers_than_cpus(num_workers: int) -> None:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if num_workers and cpus and num_workers > cpus:
        warnings.warn(f"This DataLoader will create {num_workers} worker processes in total. Our "
                      f"suggested max number of worker in current system is {cpus}, which is "
                      f"smaller than what this DataLoader is going to create. Please be aware that "
                      f"excessive worker creation might get DataLoader running slow or even "
                      f"freeze, lower the worker number to avoid potential slowness/freeze if "
                      f"necessary.", stacklevel=3)
