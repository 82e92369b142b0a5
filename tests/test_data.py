"""Dataset, TensorDataset, Subset, random_split, DataLoader (order, resume) and default_collate."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.data import DataLoader, Dataset, Subset, TensorDataset, default_collate, random_split


def labels_of(loader):
    return [batch[1].numpy().tolist() for batch in loader]


class Squares(Dataset):
    """A map-style dataset that is not a TensorDataset: samples go through default_collate."""

    def __init__(self, n):
        self.n = n

    def __getitem__(self, index):
        return np.full(2, index, dtype=np.float32), index

    def __len__(self):
        return self.n


@given(n=st.integers(1, 30), batch_size=st.integers(1, 8), shuffle=st.booleans(),
       drop_last=st.booleans(), seed=st.integers(0, 2**16))
def test_every_sample_once_per_epoch(n, batch_size, shuffle, drop_last, seed):
    dataset = TensorDataset(np.arange(n, dtype=np.float32)[:, None], np.arange(n))
    loader = DataLoader(dataset, batch_size, shuffle, drop_last=drop_last,
                        generator=minidl.Generator(seed))
    batches = labels_of(loader)
    assert len(batches) == len(loader) == (n // batch_size if drop_last else -(-n // batch_size))
    assert all(len(b) == batch_size for b in batches[:-1])
    seen = [i for b in batches for i in b]
    assert len(set(seen)) == len(seen)
    assert set(seen) == set(range(n)) if not drop_last else len(seen) == len(batches) * batch_size
    if not shuffle:
        assert seen == list(range(len(seen)))


@given(n=st.integers(1, 20), batch_size=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_fast_path_equals_per_sample_collate(n, batch_size, seed):
    x = np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)
    dataset = TensorDataset(x, np.arange(n))
    fast = DataLoader(dataset, batch_size, shuffle=True, generator=minidl.Generator(seed))
    slow = DataLoader(dataset, batch_size, shuffle=True, generator=minidl.Generator(seed),
                      collate_fn=default_collate)
    for (fx, fy), (sx, sy) in zip(fast, slow, strict=True):
        assert fx.dtype == sx.dtype and fy.dtype == sy.dtype == np.int64
        np.testing.assert_array_equal(fx.numpy(), sx.numpy())
        np.testing.assert_array_equal(fy.numpy(), sy.numpy())


def test_shuffle_is_seeded_and_changes_every_epoch():
    dataset = TensorDataset(np.zeros((50, 1)), np.arange(50))
    first = DataLoader(dataset, 10, shuffle=True, generator=minidl.Generator(3))
    second = DataLoader(dataset, 10, shuffle=True, generator=minidl.Generator(3))
    epochs = [labels_of(first), labels_of(first)]
    assert epochs == [labels_of(second), labels_of(second)]
    assert epochs[0] != epochs[1]
    minidl.manual_seed(11)  # without a generator the default one is used
    default_order = labels_of(DataLoader(dataset, 10, shuffle=True))
    minidl.manual_seed(11)
    assert labels_of(DataLoader(dataset, 10, shuffle=True)) == default_order


@given(n=st.integers(2, 25), batch_size=st.integers(1, 5), done=st.integers(0, 10),
       shuffle=st.booleans(), seed=st.integers(0, 2**16))
def test_resume_mid_epoch_gives_the_same_batches(n, batch_size, done, shuffle, seed):
    dataset = Squares(n)
    loader = DataLoader(dataset, batch_size, shuffle, generator=minidl.Generator(seed))
    labels_of(loader)  # one full epoch first, so the generator has moved
    iterator = iter(loader)
    done = min(done, len(loader))
    for _ in range(done):
        next(iterator)
    state, generator_state = loader.state_dict(), loader.generator.get_state()
    rest = [b[1].numpy().tolist() for b in iterator] + labels_of(loader)
    resumed = DataLoader(dataset, batch_size, shuffle, generator=minidl.Generator(seed + 1))
    resumed.load_state_dict(state)
    resumed.generator.set_state(generator_state)
    assert labels_of(resumed) + labels_of(resumed) == rest


def test_abandoned_epoch_restarts_like_pytorch():
    loader = DataLoader(TensorDataset(np.zeros((6, 1)), np.arange(6)), 2)
    assert next(iter(loader))[1].tolist() == next(iter(loader))[1].tolist() == [0, 1]


@pytest.mark.filterwarnings("ignore:Length of split")
@given(n=st.integers(0, 40), parts=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_random_split_fractions_match_pytorch_sizes(n, parts, seed):
    weights = np.random.default_rng(seed).random(parts) + 0.1
    fractions = (weights / weights.sum()).tolist()
    fractions[-1] = 1 - sum(fractions[:-1])
    dataset = TensorDataset(np.arange(n))
    ours = random_split(dataset, fractions, generator=minidl.Generator(seed))
    theirs = torch.utils.data.random_split(range(n), fractions)
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    indices = [i for subset in ours for i in subset.indices]
    assert sorted(indices) == list(range(n))


def test_random_split_lengths_subset_and_errors():
    dataset = TensorDataset(np.arange(10) * 10)
    train, test = random_split(dataset, [7, 3], generator=minidl.Generator(0))
    assert (len(train), len(test)) == (7, 3)
    assert test[0][0].item() == 10 * test.indices[0]
    assert isinstance(Subset(dataset, [4, 2])[1][0], minidl.Tensor)
    with pytest.raises(ValueError, match=r"lengths \[7, 2\] do not add up to .* length 10"):
        random_split(dataset, [7, 2])


def test_default_collate_follows_pytorch_types():
    samples = [({"x": np.ones(2, np.float32), "name": "a"}, 1, 0.5, True),
               ({"x": np.zeros(2, np.float32), "name": "b"}, 2, 1.5, False)]
    ours = default_collate(samples)
    theirs = torch.utils.data.default_collate(samples)
    assert ours[0]["name"] == theirs[0]["name"] == ["a", "b"]
    for a, b in [(ours[0]["x"], theirs[0]["x"]), *zip(ours[1:], theirs[1:])]:
        assert str(a.dtype) == str(b.dtype).replace("torch.", "")
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    tensors = default_collate([minidl.ones(3), minidl.zeros(3)])
    assert tensors.shape == (2, 3)
    with pytest.raises(ValueError, match="different numbers of fields"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="cannot batch samples of type object"):
        default_collate([object()])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"same first dimension, got shapes \(3, 2\), \(4,\)"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        DataLoader(TensorDataset(np.zeros(3)), batch_size=0)
    with pytest.raises(NotImplementedError, match="Dataset has no __getitem__"):
        Dataset()[0]
