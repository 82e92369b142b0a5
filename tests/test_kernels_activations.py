"""ReLU and GELU kernels (GELU in its exact erf form and tanh form): the Numba forward and backward
equal their NumPy references, edge values included; the ops pass gradcheck and PyTorch parity with
either kernel mode."""

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


# ----- ReLU ---------------------------------------------------------------------------------------
def check_relu(x, gy):
    y = activations.relu_forward_numba(x)
    np.testing.assert_array_equal(y, activations.relu_forward_reference(x))
    gx = activations.relu_backward_numba(gy, y)
    np.testing.assert_array_equal(gx, activations.relu_backward_reference(gy, y))
    assert y.dtype == gx.dtype == x.dtype and y.shape == gx.shape == x.shape
    return y, gx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(shape=st.lists(st.integers(1, 7), min_size=0, max_size=3), seed=st.integers(0, 2**16))
def test_relu_numba_matches_reference(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    x, gy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    check_relu(x, gy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_edge_values_match_torch(dtype):
    """NaN passes through the forward; the backward is a select on y <= 0, so an infinite or NaN
    gradient where y <= 0 gives 0 (as PyTorch's threshold_backward), not inf·0 = NaN."""
    x = np.array([np.nan, -0.0, 0.0, 1e-30, -1e-30, 2.0, -2.0, np.inf, -np.inf], dtype=dtype)
    gy = np.array([1.0, np.inf, np.nan, -np.inf, np.inf, np.nan, 3.0, 4.0, np.inf], dtype=dtype)
    y, gx = check_relu(x, gy)
    tx = torch.tensor(x, requires_grad=True)
    torch.relu(tx).backward(torch.tensor(gy))
    np.testing.assert_array_equal(y, torch.relu(torch.tensor(x)).numpy())
    np.testing.assert_array_equal(gx, tx.grad.numpy())
    check_relu(np.zeros((0, 3), dtype=dtype), np.zeros((0, 3), dtype=dtype))  # empty
    strided = np.asfortranarray(np.arange(12, dtype=dtype).reshape(3, 4) - 6)
    check_relu(strided, strided[::-1])  # neither operand C-contiguous


@pytest.mark.parametrize("dtype", [np.int64, np.float16])
def test_relu_of_other_dtypes_runs_the_reference(kernel_mode, dtype):
    x = np.arange(-3, 3).astype(dtype)
    assert activations.relu_forward(x).dtype == dtype
    np.testing.assert_array_equal(activations.relu_forward(x), np.maximum(x, 0))


def test_relu_op_gradcheck_and_parity(kernel_mode):
    rng = np.random.default_rng(3)
    x = minidl.tensor(rng.standard_normal((4, 6)), requires_grad=True)
    assert gradcheck(minidl.nn.functional.relu, [x])
    x.grad, gy = None, rng.standard_normal((4, 6))
    y = minidl.nn.functional.relu(x)
    y.backward(minidl.tensor(gy))
    tx = torch.tensor(x.numpy(), requires_grad=True)
    ty = torch.relu(tx)
    ty.backward(torch.tensor(gy))
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
