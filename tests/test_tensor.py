"""Tensor creation, dtype inference (as PyTorch), attributes and conversions."""
import numpy as np
import pytest
import torch

import minidl


@pytest.mark.parametrize("data", [1.5, [1.0, 2.0], [[1, 2], [3, 4]], 3, True, [True, False],
                                  np.float64(2.0), np.arange(3, dtype=np.float64),
                                  np.arange(3, dtype=np.int32), np.ones(2, dtype=np.float32)])
def test_dtype_inference_matches_torch(data):
    ours, theirs = minidl.tensor(data), torch.tensor(data)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_tensor_copies_but_from_numpy_shares():
    array = np.zeros(3)
    copied, shared = minidl.tensor(array), minidl.from_numpy(array)
    array[0] = 5
    assert copied.numpy()[0] == 0 and shared.numpy()[0] == 5


@pytest.mark.parametrize("factory, args", [
    ("zeros", (2, 3)), ("ones", ((2, 3),)), ("empty", (4,)), ("randn", (2, 2)), ("rand", (3,)),
])
def test_factories_shapes_and_default_dtype(factory, args):
    t = getattr(minidl, factory)(*args)
    assert t.shape == getattr(torch, factory)(*args).shape
    assert t.dtype == minidl.float32 and t.device == "cpu"


def test_arange_full_and_like_factories_follow_torch_dtypes():
    assert minidl.arange(5).dtype == minidl.int64
    assert minidl.arange(0, 1, 0.25).dtype == minidl.float32
    np.testing.assert_allclose(minidl.arange(0, 1, 0.25).numpy(), torch.arange(0, 1, 0.25).numpy())
    assert minidl.full((2,), 7).dtype == minidl.int64
    assert minidl.full((2,), 7.0).dtype == minidl.float32
    x = minidl.randn(2, 3, dtype=minidl.float64)
    assert minidl.zeros_like(x).dtype == minidl.float64 and minidl.ones_like(x).shape == (2, 3)


def test_manual_seed_makes_draws_reproducible():
    minidl.manual_seed(7)
    a = minidl.randn(5).numpy()
    minidl.manual_seed(7)
    np.testing.assert_array_equal(a, minidl.randn(5).numpy())
    state = minidl.get_rng_state()
    b = minidl.rand(3).numpy()
    minidl.set_rng_state(state)
    np.testing.assert_array_equal(b, minidl.rand(3).numpy())


def test_attributes_and_conversions():
    x = minidl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert (x.shape, x.ndim, x.numel(), x.size(1), len(x)) == ((2, 2), 2, 4, 2, 2)
    assert x.T.shape == (2, 2) and x.T.numpy()[0, 1] == 3
    assert x.sum().item() == 10.0 and float(x[0, 1]) == 2.0
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert x.double().dtype == minidl.float64 and x.long().dtype == minidl.int64
    assert x.to("cpu") is x and x.to(minidl.float32) is x
    assert x.to("float64").dtype == minidl.float64
    assert isinstance(x.array, np.ndarray) and x.device == minidl.device("cpu")
    assert isinstance(x.data, minidl.Tensor) and np.shares_memory(x.data.array, x.array)
    assert repr(minidl.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "requires_grad=True" in repr(x)


def test_in_place_ops_refuse_leaves_that_require_grad():
    x = minidl.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="zero_: a leaf tensor that requires grad"):
        x.zero_()
    with minidl.no_grad():
        x.zero_()
    assert not x.numpy().any()


def test_device_parsing():
    assert str(minidl.device("cuda:1")) == "cuda:1" and minidl.device("cuda").index == 0
    assert minidl.device("cpu") == "cpu"
    with pytest.raises(ValueError, match="unknown device type"):
        minidl.device("gpu")
