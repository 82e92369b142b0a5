"""Dropout mask: the array code on a seeded generator keeps the stream (the same seed, the same
mask and the same generator state after), with the exact scale and p's edge cases."""

import minidl
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from minidl.kernels import dropout


def generator(seed):
    return np.random.Generator(np.random.PCG64(seed))


def check_mask(shape, p, dtype, seed=0):
    first, second = generator(seed), generator(seed)
    mask = dropout.dropout_mask_reference(first, shape, p, dtype)
    uniform = second.random(shape)  # the draws the mask is made of, in order
    scale = np.dtype(dtype).type(1 / (1 - p))
    np.testing.assert_array_equal(mask, np.where(uniform >= p, scale, 0))
    assert mask.dtype == np.dtype(dtype) and mask.shape == tuple(shape)
    assert first.bit_generator.state == second.bit_generator.state  # one draw per element
    return mask


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(
    shape=st.lists(st.integers(0, 9), max_size=3), p=st.floats(0, 0.99), seed=st.integers(0, 2**16)
)
def test_dropout_mask_is_the_scaled_comparison(dtype, shape, p, seed):
    check_mask(tuple(shape), p, dtype, seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_mask_edge_probabilities(dtype):
    np.testing.assert_array_equal(check_mask((4, 5), 0.0, dtype), 1)  # p = 0 keeps everything
    mask = check_mask((200, 50), 0.5, dtype)
    assert set(np.unique(mask)) == {0, 2} and 0.45 < (mask > 0).mean() < 0.55
    assert check_mask((1,), 0.3, dtype).shape == (1,)


def test_dropout_op_p_one_and_reproducible(kernel_mode):
    x = minidl.ones(6, 7)
    np.testing.assert_array_equal(minidl.nn.functional.dropout(x, 1.0).numpy(), 0)  # p = 1
    minidl.manual_seed(5)
    first = minidl.nn.functional.dropout(x, 0.4).numpy()
    minidl.manual_seed(5)
    np.testing.assert_array_equal(minidl.nn.functional.dropout(x, 0.4).numpy(), first)
    assert set(np.unique(first)) <= {0, np.float32(1 / 0.6)}
