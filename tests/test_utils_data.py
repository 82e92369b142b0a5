"""minidl.utils.data against torch.utils.data (samplers, datasets, collate, DataLoader options and
errors), its worker processes, and minidl.nn.modules' class paths against torch.nn.modules'."""
import collections
import gc
import importlib
import inspect
import multiprocessing
import os
import pkgutil
import random
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
import torch.utils.data as tdata
from helpers import assert_same_structure
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn.modules
import minidl.utils.data as data
from minidl.utils.data import (BatchSampler, ChainDataset, ConcatDataset, DataLoader, Dataset,
                               IterableDataset, RandomSampler, SequentialSampler, Subset,
                               SubsetRandomSampler, TensorDataset, WeightedRandomSampler,
                               default_collate, default_convert, get_worker_info, random_split)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
Point = collections.namedtuple("Point", "x y")


def nested_sample(i):
    """Every kind of field default_collate handles, nested as a dataset might return them."""
    return {"image": np.full((2, 3), i, np.float32), "label": i, "raw": np.float64(i) / 4,
            "meta": (i / 2, f"s{i}", i % 2 == 0, b"b"), "point": Point(np.int16(i), [i, -i])}


class Samples:
    """A map-style dataset of plain Python/NumPy samples that both libraries can load."""

    def __init__(self, n, make=nested_sample):
        self.n, self.make = n, make

    def __getitem__(self, index):
        return self.make(index)

    def __len__(self):
        return self.n


class _Range:
    """range(start, end) as a stream; in a worker, every num_workers-th sample from its id on."""

    def __init__(self, start, end, shard=True):
        self.start, self.end, self.shard = start, end, shard

    def __iter__(self):
        info = self.worker_info()
        if info is None or not self.shard:
            return iter(range(self.start, self.end))
        return iter(range(self.start + info.id, self.end, info.num_workers))

    def __len__(self):
        return self.end - self.start


class Range(_Range, IterableDataset):
    worker_info = staticmethod(get_worker_info)


class TorchRange(_Range, tdata.IterableDataset):
    worker_info = staticmethod(tdata.get_worker_info)


def assert_same(ours, theirs):
    """The same batch: Tensors of equal dtype, shape and values, in containers of the same type."""
    assert_same_structure(ours, theirs)


def assert_loaders_equal(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert_same(a, b)


# ----- samplers -------------------------------------------------------------------------------
@given(n=st.integers(0, 20), batch_size=st.integers(1, 7), drop_last=st.booleans())
def test_sequential_and_batch_samplers_equal_torchs(n, batch_size, drop_last):
    assert list(SequentialSampler(range(n))) == list(tdata.SequentialSampler(range(n)))
    for source in (range(n), list(range(n))[::-1]):  # a batch sampler takes any iterable
        ours = BatchSampler(SequentialSampler(source), batch_size, drop_last)
        theirs = tdata.BatchSampler(tdata.SequentialSampler(source), batch_size, drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)
        assert list(BatchSampler(source, batch_size, drop_last)) == list(
            tdata.BatchSampler(source, batch_size, drop_last))


@given(n=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_random_samplers_draw_permutations_reproducibly(n, seed):
    order = list(RandomSampler(range(n), generator=minidl.Generator(seed)))
    assert sorted(order) == list(range(n)) and len(RandomSampler(range(n))) == n
    assert order == list(RandomSampler(range(n), generator=minidl.Generator(seed)))
    sampler = RandomSampler(range(n), generator=minidl.Generator(seed))
    if n >= 10:  # a new order every epoch
        assert list(sampler) != list(sampler)
    minidl.manual_seed(seed)  # without a generator the global one is used
    assert list(RandomSampler(range(n))) == order
    indices = [5 * i + 1 for i in range(n)]
    subset = list(SubsetRandomSampler(indices, generator=minidl.Generator(seed)))
    assert sorted(subset) == indices and len(SubsetRandomSampler(indices)) == n
    assert subset == list(SubsetRandomSampler(indices, generator=minidl.Generator(seed)))


@pytest.mark.parametrize("n, num_samples, replacement", [(5, 12, False), (5, 3, False),
                                                         (4, 50, True)])
def test_random_sampler_num_samples_and_replacement_as_torch(n, num_samples, replacement):
    ours = list(RandomSampler(range(n), replacement, num_samples, minidl.Generator(0)))
    theirs = list(tdata.RandomSampler(range(n), replacement, num_samples,
                                      torch.Generator().manual_seed(0)))
    assert len(ours) == len(theirs) == num_samples and set(ours) <= set(range(n))
    if not replacement:  # whole permutations, then part of one: the same counts as PyTorch's
        assert sorted(np.bincount(ours, minlength=n)) == sorted(np.bincount(theirs, minlength=n))
        assert len(set(ours[:n])) == min(n, num_samples)  # distinct within a permutation


def test_weighted_random_sampler_follows_the_weights():
    weights = [0.0, 1.0, 3.0, 0.0, 6.0]
    draws = list(WeightedRandomSampler(weights, 20000, generator=minidl.Generator(0)))
    assert len(draws) == len(tdata.WeightedRandomSampler(weights, 20000)) == 20000
    np.testing.assert_allclose(np.bincount(draws, minlength=5) / 20000, np.array(weights) / 10,
                               atol=0.02)
    assert draws == list(WeightedRandomSampler(minidl.tensor(weights), 20000,
                                               generator=minidl.Generator(0)))
    once = list(WeightedRandomSampler(weights, 3, replacement=False, generator=minidl.Generator(1)))
    assert sorted(once) == [1, 2, 4]
    with pytest.raises(ValueError, match="cannot draw 4 samples without replacement from 3"):
        WeightedRandomSampler(weights, 4, replacement=False)
    with pytest.raises(ValueError, match="finite and non-negative, and not all zero"):
        WeightedRandomSampler([1.0, -1.0], 2)
    with pytest.raises(ValueError, match="finite and non-negative, and not all zero"):
        WeightedRandomSampler([0.0, 0.0], 2)


@pytest.mark.parametrize("name, kwargs", [
    ("RandomSampler", dict(data_source=range(3), replacement=1)),
    ("RandomSampler", dict(data_source=range(3), num_samples=0)),
    ("RandomSampler", dict(data_source=range(3), num_samples=2.5)),
    ("RandomSampler", dict(data_source=range(0))),
    ("WeightedRandomSampler", dict(weights=[1.0, 2.0], num_samples=0)),
    ("WeightedRandomSampler", dict(weights=[1.0, 2.0], num_samples=2, replacement=1)),
    ("WeightedRandomSampler", dict(weights=[[1.0, 2.0]], num_samples=2)),
    ("BatchSampler", dict(sampler=range(3), batch_size=0, drop_last=False)),
    ("BatchSampler", dict(sampler=range(3), batch_size=True, drop_last=False)),
    ("BatchSampler", dict(sampler=range(3), batch_size=2, drop_last=1)),
])
def test_sampler_argument_errors_as_torch(name, kwargs):
    with pytest.raises(Exception) as theirs:
        getattr(tdata, name)(**kwargs)
    with pytest.raises(theirs.type, match=name):
        getattr(data, name)(**kwargs)


# ----- datasets -------------------------------------------------------------------------------
def test_concat_and_chain_datasets_equal_torchs():
    parts = [[0, 1, 2], [], [10, 11], [20]]
    ours, theirs = ConcatDataset(parts), tdata.ConcatDataset(parts)
    assert len(ours) == len(theirs) == 6 and ours.cumulative_sizes == theirs.cumulative_sizes
    assert [ours[i] for i in range(-6, 6)] == [theirs[i] for i in range(-6, 6)]
    for index in (6, -7):
        with pytest.raises(Exception) as error:
            theirs[index]
        with pytest.raises(error.type, match="ConcatDataset"):
            ours[index]
    joined = TensorDataset(np.arange(2)) + TensorDataset(np.arange(5, 8))
    assert isinstance(joined, ConcatDataset)
    assert [joined[i][0].item() for i in range(5)] == [0, 1, 5, 6, 7]
    with pytest.raises(ValueError, match="should not be an empty iterable"):
        ConcatDataset([])
    with pytest.raises(TypeError, match="does not support IterableDataset"):
        ConcatDataset([Range(0, 2)])
    chained = Range(0, 3) + Range(7, 9)
    assert isinstance(chained, ChainDataset) and len(chained) == 5
    assert list(chained) == list(tdata.ChainDataset([TorchRange(0, 3), TorchRange(7, 9)]))
    with pytest.raises(TypeError, match="ChainDataset only supports IterableDataset"):
        list(ChainDataset([Range(0, 1), [5]]))


class Count(IterableDataset):
    """A stream without a length."""

    def __iter__(self):
        return iter(range(3))


def test_dataset_has_no_default_length_as_in_torch():
    """Python's list() asks len() first: a __len__ raising NotImplementedError would break it."""
    assert list(Count()) == [0, 1, 2]
    with pytest.raises(TypeError):
        len(Dataset())
    with pytest.raises(TypeError):
        len(DataLoader(Count()))
    with pytest.raises(NotImplementedError, match="Count has no __getitem__"):
        Count()[0]
    with pytest.raises(NotImplementedError, match="IterableDataset has no __iter__"):
        iter(IterableDataset())


@pytest.mark.filterwarnings("ignore:Length of split")
def test_random_split_checks_and_warnings_as_torch():
    for fractions, index in (([1.5, -0.5], 0), ([0.5, 0.6, -0.1], 2)):
        with pytest.raises(ValueError, match=f"Fraction at index {index} is not between 0 and 1"):
            tdata.random_split(range(4), fractions)
        with pytest.raises(ValueError, match=f"fraction at index {index} is not between 0 and 1"):
            random_split(range(4), fractions)
    with pytest.warns(UserWarning, match="Length of split at index 2 is 0") as theirs:
        sizes = [len(s) for s in tdata.random_split(range(2), [0.5, 0.5, 0.0])]
    with pytest.warns(UserWarning, match="Length of split at index 2 is 0") as ours:
        assert [len(s) for s in random_split(range(2), [0.5, 0.5, 0.0])] == sizes
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    with pytest.raises(ValueError, match=r"non-negative integers or fractions .* got \[2.5, 1.5\]"):
        random_split(range(4), [2.5, 1.5])
    train, test = random_split(range(10, 20), [0.7, 0.3], generator=minidl.Generator(0))
    assert sorted(list(train) + list(test)) == list(range(10, 20))
    assert [train[i] for i in range(3)] == [10 + i for i in train.indices[:3]]


# ----- collate --------------------------------------------------------------------------------
@pytest.mark.parametrize("samples", [
    [nested_sample(i) for i in range(3)],
    [[1, 2], [3, 4]],
    [np.float32(1.5), np.float32(2.5)],
    [b"a", b"b"],
    [collections.OrderedDict(b=1, a=2.5), collections.OrderedDict(b=3, a=4.5)],
    [(np.arange(3), [True, False]), (np.arange(3, 6), [False, True])],
])
def test_default_collate_and_convert_equal_torchs(samples):
    assert_same(default_collate(samples), tdata.default_collate(samples))
    for sample in samples:
        assert_same(default_convert(sample), tdata.default_convert(sample))
    tensors = [minidl.arange(3, dtype=minidl.float32), minidl.ones(3)]
    assert_same(default_collate(tensors), tdata.default_collate([torch.arange(3.0), torch.ones(3)]))


@pytest.mark.parametrize("samples, match", [
    ([np.array(["a"]), np.array(["b"])], "dtype <U1"),
    ([object(), object()], "type object"),
    ([1 + 2j, 3j], "type complex"),
    ([np.zeros(2), np.zeros(3)], r"equal size, but got \(2,\) at entry 0 and \(3,\) at entry 1"),
])
def test_default_collate_errors_as_torch(samples, match):
    with pytest.raises(Exception) as theirs:
        tdata.default_collate(samples)
    with pytest.raises(theirs.type, match=match):
        default_collate(samples)


# ----- DataLoader in the main process ---------------------------------------------------------
@given(n=st.integers(0, 13), batch_size=st.one_of(st.none(), st.integers(1, 5)),
       drop_last=st.booleans())
def test_ordered_batches_equal_torchs(n, batch_size, drop_last):
    drop_last = drop_last and batch_size is not None
    assert_loaders_equal(DataLoader(Samples(n), batch_size, drop_last=drop_last),
                         tdata.DataLoader(Samples(n), batch_size, drop_last=drop_last))
    x = np.random.default_rng(n).standard_normal((n, 3)).astype(np.float32)
    ours = TensorDataset(x, np.arange(n))
    theirs = tdata.TensorDataset(torch.from_numpy(x), torch.arange(n))
    assert_loaders_equal(DataLoader(ours, batch_size, drop_last=drop_last),
                         tdata.DataLoader(theirs, batch_size, drop_last=drop_last))
    streams = (Range(3, 3 + n), TorchRange(3, 3 + n))
    assert_loaders_equal(*(loader(stream, batch_size, drop_last=drop_last)
                           for loader, stream in zip((DataLoader, tdata.DataLoader), streams)))


@pytest.mark.parametrize("options", [
    dict(sampler=[3, 1, 4, 1, 5], batch_size=2),
    dict(sampler=[7, 2], batch_size=None),
    dict(batch_sampler=[[0, 9], [2], [5, 5, 5]]),
    dict(batch_size=4, drop_last=True, collate_fn=lambda samples: len(samples)),
])
def test_sampler_batch_sampler_and_collate_options_equal_torchs(options):
    assert_loaders_equal(DataLoader(Samples(10), **options),
                         tdata.DataLoader(Samples(10), **options))


def test_samplers_of_both_kinds_drive_the_loader():
    dataset = Samples(10, make=lambda i: i)
    sampler = RandomSampler(dataset, generator=minidl.Generator(4))
    batches = [b.tolist() for b in DataLoader(dataset, 3, sampler=sampler)]
    same_draws = RandomSampler(dataset, generator=minidl.Generator(4))
    assert [i for b in batches for i in b] == list(same_draws)
    weighted = DataLoader(dataset, 5, sampler=WeightedRandomSampler([0] * 9 + [1], 10))
    assert [b.tolist() for b in weighted] == [[9] * 5, [9] * 5]


class Doubled(TensorDataset):
    """Overrides __getitem__: the loader must call it (not gather the rows behind its back)."""

    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        return x * 2, y


def test_fast_path_serves_only_plain_tensor_datasets_and_subsets_of_them():
    x, y = np.arange(24, dtype=np.float32).reshape(12, 2), np.arange(12)
    batches = list(DataLoader(Doubled(x, y), 5))
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x * 2)
    nested = Subset(Subset(TensorDataset(x, y), range(11, -1, -1)), [0, 3, 5, 6, 7, 11, 2])
    fast = DataLoader(nested, 3, shuffle=True, generator=minidl.Generator(2))
    slow = DataLoader(nested, 3, shuffle=True, generator=minidl.Generator(2),
                      collate_fn=default_collate)
    for a, b in zip(fast, slow, strict=True):
        assert isinstance(a, list)
        assert_same(a, [torch.from_numpy(t.numpy()) for t in b])


@pytest.mark.parametrize("options", [
    {"shuffle": True, "sampler": [0, 1]},
    {"batch_sampler": [[0]], "batch_size": 2}, {"batch_sampler": [[0]], "shuffle": True},
    {"batch_sampler": [[0]], "sampler": [0]}, {"batch_sampler": [[0]], "drop_last": True},
    {"batch_size": None, "drop_last": True}, {"num_workers": -1}, {"timeout": -1},
    {"persistent_workers": True}, {"multiprocessing_context": "fork"},
    {"num_workers": 1, "multiprocessing_context": "bogus"},
    {"num_workers": 1, "multiprocessing_context": 3},
], ids=str)
def test_bad_loader_arguments_raise_torchs_errors(options):
    with pytest.raises(Exception) as torch_error:
        tdata.DataLoader(Samples(4), **options)
    with pytest.raises(torch_error.type) as error:
        DataLoader(Samples(4), **options)
    assert str(error.value).startswith("DataLoader")
    assert str(torch_error.value) in str(error.value)


@pytest.mark.parametrize("options", [{"shuffle": True}, {"sampler": [0]},
                                     {"batch_sampler": [[0]]}], ids=str)
def test_streams_refuse_orders_as_torch(options):
    with pytest.raises(ValueError) as torch_error:
        tdata.DataLoader(TorchRange(0, 3), **options)
    with pytest.raises(ValueError) as error:
        DataLoader(Range(0, 3), **options)
    assert str(torch_error.value) in str(error.value)


def test_loader_arguments_minidl_checks_at_construction():
    """Errors whose words (or moment) differ from PyTorch's: the same type, at construction."""
    for options, match in [({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
                           ({"prefetch_factor": 2}, "prefetch_factor option could only be")]:
        with pytest.raises(ValueError):
            tdata.DataLoader(Samples(4), **options)
        with pytest.raises(ValueError, match=f"DataLoader: {match}"):
            DataLoader(Samples(4), **options)
    with pytest.raises(ValueError, match="DataLoader: prefetch_factor must be a positive integer"):
        DataLoader(Samples(4), num_workers=1, prefetch_factor=0)  # PyTorch: at iter(), asserting
    with pytest.raises(ValueError, match="DataLoader: timeout=1 .* needs num_workers > 0"):
        DataLoader(Samples(4), timeout=1)  # PyTorch: at iter(), asserting
    loader, torch_loader = DataLoader(Samples(4)), tdata.DataLoader(Samples(4))
    for name in ("batch_size", "sampler", "drop_last", "dataset"):
        for frozen in (torch_loader, loader):
            with pytest.raises(ValueError, match=f"{name} attribute should not be set after "):
                setattr(frozen, name, None)


def test_pin_memory_is_accepted_and_changes_nothing():
    assert_loaders_equal(DataLoader(Samples(5), 2, pin_memory=True),
                         tdata.DataLoader(Samples(5), 2))


def test_more_workers_than_cpus_warn_as_torch():
    too_many = len(os.sched_getaffinity(0)) + 1
    with pytest.warns(UserWarning, match=f"This DataLoader will create {too_many} worker ") as ours:
        DataLoader(Samples(4), num_workers=too_many)
    with pytest.warns(UserWarning) as theirs:
        tdata.DataLoader(Samples(4), num_workers=too_many)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]


# ----- worker processes -----------------------------------------------------------------------
class WorkerProbe(Dataset):
    """Each sample says where it was made: its index, the process, the worker and its RNG draws."""

    def __init__(self, n):
        self.n, self.inits, self.fetched = n, 0, 0

    def __getitem__(self, index):
        info = get_worker_info()
        self.fetched += 1
        return {"index": index, "pid": os.getpid(), "id": info.id if info else -1,
                "seed": info.seed if info else -1, "inits": self.inits, "fetched": self.fetched,
                "draws": np.array([random.random(), np.random.random(), minidl.rand(1).item()])}

    def __len__(self):
        return self.n


def count_init(worker_id):
    get_worker_info().dataset.inits += 1


def field(batches, name):
    return [b[name].tolist() for b in batches]


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 3 workers on 2 cores
@given(n=st.integers(1, 20), batch_size=st.integers(1, 4), shuffle=st.booleans(),
       drop_last=st.booleans(), workers=st.integers(1, 3), prefetch=st.integers(1, 3))
def test_workers_give_the_batches_of_the_main_process(n, batch_size, shuffle, drop_last, workers,
                                                      prefetch):
    def load(dataset, **options):
        return list(DataLoader(dataset, batch_size, shuffle, drop_last=drop_last,
                               generator=minidl.Generator(n), **options))

    here = load(WorkerProbe(n))
    there = load(WorkerProbe(n), num_workers=workers, prefetch_factor=prefetch)
    assert field(there, "index") == field(here, "index")
    assert os.getpid() not in {pid for b in there for pid in b["pid"].tolist()}
    assert {i for b in there for i in b["id"].tolist()} == set(range(min(workers, len(here))))
    x = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
    for a, b in zip(load(TensorDataset(x)), load(TensorDataset(x), num_workers=workers),
                    strict=True):
        np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())


def slow_first(index):
    if index == 0:
        time.sleep(0.3)
    return index


def test_batches_come_back_in_the_samplers_order_when_a_worker_is_slow():
    loader = DataLoader(Samples(8, make=slow_first), 2, num_workers=2, prefetch_factor=2)
    assert [b.tolist() for b in loader] == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_workers_are_seeded_per_worker_and_epoch_reproducibly():
    def two_epochs():
        loader = DataLoader(WorkerProbe(8), 2, num_workers=2, generator=minidl.Generator(3))
        return [list(loader) for _ in range(2)]

    first, again = two_epochs(), two_epochs()
    bases = []
    for epoch in first:
        assert field(epoch, "id") == [[0, 0], [1, 1], [0, 0], [1, 1]]
        seeds = [b["seed"][0].item() for b in epoch]
        bases.append(seeds[0])
        assert seeds == [bases[-1] + worker for worker in (0, 1, 0, 1)]
        draws = [b["draws"].numpy() for b in epoch]
        assert not np.isin(draws[0], draws[1]).any()  # Python, NumPy and minidl RNGs all differ
    assert bases[0] != bases[1]
    for a, b in zip(first, again, strict=True):
        assert field(a, "draws") == field(b, "draws") and field(a, "seed") == field(b, "seed")
    assert get_worker_info() is None


@pytest.mark.parametrize("persistent", [False, True])
def test_worker_init_fn_runs_once_per_worker_and_persistent_workers_stay(persistent):
    loader = DataLoader(WorkerProbe(4), 1, num_workers=2, worker_init_fn=count_init,
                        persistent_workers=persistent)
    epochs = [list(loader), list(loader)]
    assert all(field(epoch, "inits") == [[1]] * 4 for epoch in epochs)
    pids = [{p for b in epoch for p in b["pid"].tolist()} for epoch in epochs]
    fetched = [field(epoch, "fetched") for epoch in epochs]
    assert fetched[0] == [[1], [1], [2], [2]]  # two samples per worker copy of the dataset
    if persistent:
        assert pids[0] == pids[1] and fetched[1] == [[3], [3], [4], [4]]
        del loader
        gc.collect()
    else:
        assert not pids[0] & pids[1] and fetched[1] == fetched[0]
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("shard, batch_size, drop_last", [(True, None, False), (True, 2, False),
                                                          (False, 2, True), (True, 3, True)])
def test_iterable_dataset_in_workers_equals_torchs(shard, batch_size, drop_last):
    ours = DataLoader(Range(3, 12, shard), batch_size, num_workers=2, drop_last=drop_last)
    theirs = tdata.DataLoader(TorchRange(3, 12, shard), batch_size, num_workers=2,
                              drop_last=drop_last)
    for a, b in zip(ours, theirs, strict=True):
        assert_same(a, b)


class Faulty(Dataset):
    def __init__(self, error):
        self.error = error

    def __getitem__(self, index):
        if index == 3:
            raise self.error
        return index

    def __len__(self):
        return 6


class NeedsTwoArguments(Exception):
    def __init__(self, a, b):
        super().__init__(a, b)


def test_worker_errors_are_raised_in_the_main_process():
    loader = DataLoader(Faulty(KeyError("missing")), 2, num_workers=2)
    with pytest.raises(KeyError, match=r"Caught KeyError in DataLoader worker process 1(.|\n)*"
                                       r"raise self.error"):
        list(loader)
    with pytest.raises(RuntimeError, match="Caught NeedsTwoArguments in DataLoader worker process"):
        list(DataLoader(Faulty(NeedsTwoArguments(1, 2)), 2, num_workers=2))
    unpicklable = DataLoader(Samples(4), 2, num_workers=1, collate_fn=lambda s: (lambda: s))
    with pytest.raises(Exception, match="in DataLoader worker process 0(.|\n)*pickle"):
        list(unpicklable)
    assert not multiprocessing.active_children()


def test_abandoned_epochs_stop_their_workers_and_persistent_ones_start_clean():
    loader = DataLoader(Samples(9, make=lambda i: i), 2, num_workers=2)
    assert next(iter(loader)).tolist() == [0, 1]
    gc.collect()
    assert not multiprocessing.active_children()
    reference = DataLoader(Samples(9, make=lambda i: i), 2, shuffle=True,
                           generator=minidl.Generator(0))
    epochs = [[b.tolist() for b in reference] for _ in range(2)]
    persistent = DataLoader(Samples(9, make=lambda i: i), 2, shuffle=True, num_workers=2,
                            persistent_workers=True, prefetch_factor=3,
                            generator=minidl.Generator(0))
    first = iter(persistent)
    assert next(first).tolist() == epochs[0][0]
    # the workers still send batches of the abandoned epoch: none of them may show up here
    assert [b.tolist() for b in persistent] == epochs[1]
    with pytest.raises(RuntimeError, match="superseded by a newer iter()"):
        next(first)
    del first, persistent
    gc.collect()
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("saved_with, resumed_with", [(2, 0), (0, 2), (2, 2)])
def test_resume_mid_epoch_does_not_depend_on_num_workers(saved_with, resumed_with):
    dataset = Samples(20, make=lambda i: i)

    def loader(workers, seed):
        return DataLoader(dataset, 3, shuffle=True, num_workers=workers,
                          generator=minidl.Generator(seed))

    first = loader(saved_with, 7)
    iterator = iter(first)
    for _ in range(3):
        next(iterator)
    state, generator_state = first.state_dict(), first.generator.get_state()
    rest = [b.tolist() for b in iterator] + [b.tolist() for b in first]
    resumed = loader(resumed_with, 99)
    resumed.load_state_dict(state)
    resumed.generator.set_state(generator_state)
    assert [b.tolist() for b in resumed] + [b.tolist() for b in resumed] == rest


def test_spawned_workers_pickle_the_dataset_and_refuse_what_cannot_be_pickled():
    x = TensorDataset(np.arange(10.0)[:, None], np.arange(10))
    spawned = DataLoader(x, 3, num_workers=1, multiprocessing_context="spawn")
    assert [b[1].tolist() for b in spawned] == [b[1].tolist() for b in DataLoader(x, 3)]
    with pytest.raises(Exception, match="pickle"):
        list(DataLoader(x, 3, num_workers=2, multiprocessing_context="spawn",
                        worker_init_fn=lambda worker_id: None))
    assert not multiprocessing.active_children()


def run_script(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, cwd=ROOT, timeout=timeout)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result


def test_dead_workers_and_timeouts_are_errors_not_hangs():
    result = run_script("""
        import os, signal, time
        from minidl.utils.data import DataLoader

        class Dies:
            def __init__(self, how): self.how = how
            def __len__(self): return 8
            def __getitem__(self, index):
                if index == 5: self.how()
                return index

        for how in (lambda: os.kill(os.getpid(), signal.SIGKILL), lambda: os._exit(3),
                    lambda: time.sleep(30)):
            start = time.time()
            try:
                list(DataLoader(Dies(how), 2, num_workers=2, timeout=1))
            except RuntimeError as error:
                print(error, round(time.time() - start) < 8)
    """)
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(line.endswith(" True") for line in lines), lines
    assert "exited unexpectedly: killed by signal SIGKILL" in lines[0]
    assert "exited unexpectedly: exit code 3" in lines[1]
    assert "DataLoader timed out after 1 seconds" in lines[2]


def test_forked_workers_run_parallel_kernels_after_the_parent_did():
    """Numba's workqueue threads do not survive fork; a kernel in a forked worker must still run."""
    result = run_script("""
        import numpy as np, minidl
        from minidl.utils.data import DataLoader

        class Gelu:
            def __len__(self): return 6
            def __getitem__(self, i): return minidl.gelu(minidl.ones(100_000) * i).sum().item()

        expected = [Gelu()[i] for i in range(6)]  # the parent launches the parallel kernel first
        got = [v for b in DataLoader(Gelu(), 2, num_workers=2) for v in b.tolist()]
        print(np.allclose(got, expected))
    """)
    assert result.stdout.strip() == "True"


def test_interpreter_exits_cleanly_with_persistent_workers_alive():
    result = run_script("""
        from minidl.utils.data import DataLoader
        loader = DataLoader(list(range(10)), 3, num_workers=2, persistent_workers=True)
        print([b.tolist() for b in loader][-1])
    """, timeout=60)
    assert result.stdout.strip() == "[9]" and result.stderr == ""


# ----- PyTorch's paths ------------------------------------------------------------------------
def test_utils_data_names_sit_at_torchs_paths():
    assert minidl.data.DataLoader is data.DataLoader and minidl.data.Dataset is data.Dataset
    for name in tdata.__all__:
        if not hasattr(data, name):
            continue
        path = getattr(tdata, name).__module__.replace("torch.", "minidl.", 1)
        path = path.replace("._utils.", ".")  # PyTorch's private _utils package
        assert getattr(importlib.import_module(path), name) is getattr(data, name), name


def test_nn_modules_paths_mirror_torchs():
    layers = {name: cls for name, cls in vars(minidl.nn).items()
              if inspect.isclass(cls) and issubclass(cls, minidl.nn.Module)}
    assert len(layers) > 50
    for name, cls in layers.items():
        path = getattr(torch.nn, name).__module__  # e.g. torch.nn.modules.linear
        assert path.startswith("torch.nn.modules."), (name, path)
        ours = importlib.import_module(path.replace("torch.", "minidl.", 1))
        assert getattr(ours, name) is cls, f"minidl.nn.{name} is not at {ours.__name__}"
        assert getattr(minidl.nn.modules, name) is cls
    for info in pkgutil.iter_modules(minidl.nn.modules.__path__):
        ours = importlib.import_module(f"minidl.nn.modules.{info.name}")
        theirs = importlib.import_module(f"torch.nn.modules.{info.name}")
        for name in ours.__all__:
            cls = getattr(ours, name)
            assert hasattr(theirs, name), f"torch.nn.modules.{info.name} has no {name}"
            home = sys.modules[cls.__module__]  # defined once, in minidl/nn/<file>.py
            assert home.__name__.startswith("minidl.nn.") and "modules" not in home.__name__
            assert getattr(home, name) is cls
