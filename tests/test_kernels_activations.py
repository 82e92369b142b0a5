"""GELU kernels (exact erf form and tanh form): the Numba forward and backward equal their NumPy
references; the GELU op passes gradcheck and PyTorch parity with either kernel mode."""

import minidl
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from minidl.gradient_check import gradcheck
from minidl.kernels import activations

TOLERANCE = {np.float32: {"rtol": 2e-6, "atol": 1e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-14}}
FORMS = ["none", "tanh"]


def check_gelu(x, approximate):
    tol = TOLERANCE[x.dtype.type]
    y = activations.gelu_forward_numba(x, approximate)
    np.testing.assert_allclose(y, activations.gelu_forward_reference(x, approximate), **tol)
    gy = np.random.default_rng(1).standard_normal(x.shape).astype(x.dtype)
    gx = activations.gelu_backward_numba(gy, x, approximate)
    np.testing.assert_allclose(gx, activations.gelu_backward_reference(gy, x, approximate), **tol)
    assert y.dtype == gx.dtype == x.dtype and y.shape == gx.shape == x.shape


@pytest.mark.parametrize("approximate", FORMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(shape=st.lists(st.integers(1, 7), min_size=0, max_size=3), seed=st.integers(0, 2**16))
def test_gelu_numba_matches_reference(approximate, dtype, shape, seed):
    x = (np.random.default_rng(seed).standard_normal(shape) * 4).astype(dtype)
    check_gelu(x, approximate)


@pytest.mark.parametrize("approximate", FORMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_edge_values(approximate, dtype):
    x = np.array([0.0, -0.0, 1e-30, -40.0, 40.0, -8.0, 8.0, 1e4, -1e4], dtype=dtype)
    check_gelu(x, approximate)
    check_gelu(np.zeros((0, 3), dtype=dtype), approximate)  # empty
    check_gelu(np.asfortranarray(np.arange(12, dtype=dtype).reshape(3, 4) - 6), approximate)


@pytest.mark.parametrize("approximate", FORMS)
def test_gelu_op_gradcheck_and_parity(kernel_mode, approximate):
    x = minidl.tensor(np.random.default_rng(2).standard_normal((3, 5)) * 3, requires_grad=True)
    gelu = minidl.nn.functional.gelu
    assert gradcheck(lambda t: gelu(t, approximate=approximate), [x])
    theirs = torch.nn.functional.gelu(torch.tensor(x.numpy()), approximate=approximate)
    np.testing.assert_allclose(gelu(x, approximate=approximate).numpy(), theirs.numpy(),
                               rtol=1e-12, atol=1e-14)
