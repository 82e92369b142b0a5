"""Embedding: gradcheck, gradgradcheck, PyTorch parity (output, weight gradient, Hessian-vector
products (hvp)), init, from_pretrained, errors."""
import numpy as np
import pytest
import torch
from helpers import (assert_close, check_module_hvp_parity, check_module_parity, gradcheck_module,
                     gradgradcheck_module)
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.nn.sparse import Embedding
from minidl.ops.embedding import embedding


@given(num=st.integers(1, 6), dim=st.integers(1, 4),
       index_shape=st.lists(st.integers(0, 4), min_size=0, max_size=3),
       padding=st.sampled_from([None, 0, -1]), scale_grad_by_freq=st.booleans(),
       seed=st.integers(0, 2**16))
def test_embedding_gradcheck_and_parity(kernel_mode, num, dim, index_shape, padding, scale_grad_by_freq,
                                        seed):
    indices = np.random.default_rng(seed).integers(0, num, index_shape)  # repeats are likely
    options = dict(padding_idx=padding, scale_grad_by_freq=scale_grad_by_freq)
    check_module_parity(Embedding(num, dim, **options), torch.nn.Embedding(num, dim, **options), [indices])
    if scale_grad_by_freq or (padding is not None and (indices == padding % num).any()):
        return  # scaling by frequency is a heuristic, not the gradient; the padding row is frozen,
        # so where it is looked up the true derivative and the (zero) gradient differ by definition
    assert gradcheck_module(Embedding(num, dim, **options), [indices])


def squared(module, indices):
    """E[idx]²: its weight gradient depends on the weight, through the lookup's backward."""
    y = module(indices)
    return y * y


@given(num=st.integers(1, 5), dim=st.integers(1, 3),
       index_shape=st.lists(st.integers(1, 3), min_size=0, max_size=2),  # torch fails on 0 indices
       padding=st.sampled_from([None, 0]), scale_grad_by_freq=st.booleans(),
       seed=st.integers(0, 2**16))
def test_embedding_second_order(kernel_mode, num, dim, index_shape, padding, scale_grad_by_freq,
                                seed):
    """The lookup's backward is linear in gy; its own gradient is the lookup again, with the row
    scales (0 at the padding row, 1/count with scale_grad_by_freq). PyTorch's double backward leaves
    the 1/count out, so HVPs are compared with torch's without it; gradgradcheck checks ours."""
    indices = np.random.default_rng(seed).integers(0, num, index_shape)
    options = dict(padding_idx=padding, scale_grad_by_freq=scale_grad_by_freq)
    assert gradgradcheck_module(Embedding(num, dim, **options), [indices], call=squared)
    if not scale_grad_by_freq:
        check_module_hvp_parity(Embedding(num, dim, **options),
                                torch.nn.Embedding(num, dim, **options), [indices], call=squared)


def test_repeated_indices_accumulate_and_padding_row_gets_no_gradient(kernel_mode):
    layer = Embedding(5, 3, padding_idx=4)
    out = layer(minidl.tensor([[1, 1, 4], [1, 2, 4]]))
    out.sum().backward()
    np.testing.assert_array_equal(layer.weight.grad.numpy(), [[0] * 3, [3] * 3, [1] * 3, [0] * 3, [0] * 3])


def test_functional_matches_torch_for_a_large_batch(kernel_mode):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((50, 70)).astype(np.float32)  # wider than one column block
    indices = rng.integers(0, 50, (16, 33))
    gy = rng.standard_normal((16, 33, 70)).astype(np.float32)
    ours_w = minidl.tensor(weight, requires_grad=True)
    ours = embedding(minidl.tensor(indices), ours_w, padding_idx=3)
    (ours * minidl.tensor(gy)).sum().backward()
    theirs_w = torch.tensor(weight, requires_grad=True)
    theirs = torch.nn.functional.embedding(torch.tensor(indices), theirs_w, padding_idx=3)
    (theirs * torch.tensor(gy)).sum().backward()
    assert_close(ours, theirs)
    assert_close(ours_w.grad, theirs_w.grad, scale=5)


def test_init_is_standard_normal_with_zero_padding_row():
    minidl.manual_seed(0)
    layer = Embedding(400, 50, padding_idx=-3)
    weight = layer.weight.numpy()
    assert layer.padding_idx == 397 and (weight[397] == 0).all()
    assert abs(weight.mean()) < 0.02 and abs(weight.std() - 1) < 0.02
    assert weight.dtype == np.float32 and layer.weight.requires_grad
    assert repr(layer) == "Embedding(400, 50, padding_idx=397)"
    assert list(layer.state_dict()) == ["weight"]


@pytest.mark.parametrize("freeze", [True, False])
def test_from_pretrained(freeze):
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    ours = Embedding.from_pretrained(minidl.tensor(table), freeze=freeze, padding_idx=1)
    theirs = torch.nn.Embedding.from_pretrained(torch.tensor(table), freeze=freeze, padding_idx=1)
    assert ours.weight.requires_grad == theirs.weight.requires_grad == (not freeze)
    np.testing.assert_array_equal(ours.weight.numpy(), table)  # the padding row is kept as given
    indices = np.array([[0, 1, 3], [1, 1, 2]])
    if freeze:
        assert_close(ours(minidl.tensor(indices)), theirs(torch.tensor(indices)))
    else:
        check_module_parity(ours, theirs, [indices])


def test_errors_name_the_layer_the_range_and_the_value():
    layer = Embedding(10, 3)
    with pytest.raises(TypeError, match=r"Embedding\(10, 3\): expected indices of an integer dtype, got float32"):
        layer(minidl.tensor([1.0, 2.0]))
    with pytest.raises(IndexError, match=r"Embedding\(10, 3\): index 12 is out of range: expected indices in \[0, 10\)"):
        layer(minidl.tensor([[1, 12], [0, 3]]))
    with pytest.raises(IndexError, match=r"index -1 is out of range: expected indices in \[0, 10\)"):
        layer(minidl.tensor([-1]))
    with pytest.raises(ValueError, match=r"padding_idx must be within \[-10, 10\), got 10"):
        Embedding(10, 3, padding_idx=10)
    with pytest.raises(NotImplementedError, match="max_norm"):
        Embedding(10, 3, max_norm=1.0)
    with pytest.raises(NotImplementedError, match="max_norm"):
        embedding(minidl.tensor([1]), minidl.randn(10, 3), max_norm=1.0)
    with pytest.raises(NotImplementedError, match="sparse"):
        embedding(minidl.tensor([1]), minidl.randn(10, 3), sparse=True)
    with pytest.raises(ValueError, match=r"embedding: expected a weight of shape \(num_embeddings, embedding_dim\), got \(10,\)"):
        embedding(minidl.tensor([1]), minidl.randn(10))
