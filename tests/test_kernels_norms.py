"""Batch- and layer-norm kernels: the Numba forward and backward equal their NumPy references;
the fused layer_norm op passes gradcheck and PyTorch parity with either kernel mode."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
import minidl
import torch
from minidl.gradient_check import gradcheck
from minidl.kernels import norms

TOLERANCE = {np.float32: {"rtol": 1e-4, "atol": 1e-5}, np.float64: {"rtol": 1e-10, "atol": 1e-12}}


def check_batch_norm(x, weight, bias, eps=1e-5):
    tol = TOLERANCE[x.dtype.type]
    reference = norms.batch_norm_forward_reference(x, weight, bias, eps)
    compiled = norms.batch_norm_forward_numba(x, weight, bias, eps)
    for name, a, b in zip(("y", "x_hat", "mean", "var"), compiled, reference):
        np.testing.assert_allclose(a, b, err_msg=name, **tol)
        assert a.dtype == x.dtype, name
    x_hat, inv_std = reference[1], 1 / np.sqrt(reference[3] + eps)
    gy = np.random.default_rng(1).standard_normal(x.shape).astype(x.dtype)
    reference = norms.batch_norm_backward_reference(gy, x_hat, inv_std, weight)
    compiled = norms.batch_norm_backward_numba(gy, x_hat, inv_std, weight)
    for name, a, b in zip(("gx", "gw", "gb"), compiled, reference):
        np.testing.assert_allclose(a, b, err_msg=name, **tol)
        assert a.dtype == x.dtype, name


def affine_parameters(rng, features: int, affine: str, dtype) -> tuple:
    """(weight, bias) for ``affine`` "both", (weight, None) for "weight", (None, None) for "none"."""
    weight = rng.standard_normal(features).astype(dtype) if affine != "none" else None
    bias = rng.standard_normal(features).astype(dtype) if affine == "both" else None
    return weight, bias


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 9)),
    affine=st.sampled_from(["both", "weight", "none"]),
    seed=st.integers(0, 2**16),
)
def test_batch_norm_numba_matches_reference(dtype, shape, affine, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    check_batch_norm(x, *affine_parameters(rng, shape[1], affine, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape", [(2, 1, 1), (1, 3, 2), (4, 2, 1)], ids=["one-channel", "one-sample", "no-positions"]
)
def test_batch_norm_edge_shapes(dtype, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    check_batch_norm(x, np.full(shape[1], 2.0, dtype=dtype), np.ones(shape[1], dtype=dtype))


def test_batch_norm_constant_channel_is_finite():
    x = np.full((3, 2, 4), 5.0, dtype=np.float32)  # zero variance: eps keeps 1/σ finite
    y, _, mean, var = norms.batch_norm_forward_numba(x, None, None, 1e-5)
    np.testing.assert_array_equal(y, 0)
    np.testing.assert_allclose(mean, 5.0)
    np.testing.assert_array_equal(var, 0)


def check_layer_norm(x, weight, bias, eps=1e-5):
    tol = TOLERANCE[x.dtype.type]
    reference = norms.layer_norm_forward_reference(x, weight, bias, eps)
    compiled = norms.layer_norm_forward_numba(x, weight, bias, eps)
    for name, a, b in zip(("y", "x_hat", "rstd"), compiled, reference):
        np.testing.assert_allclose(a, b, err_msg=name, **tol)
        assert a.dtype == x.dtype, name
    x_hat, rstd = reference[1], reference[2]
    gy = np.random.default_rng(1).standard_normal(x.shape).astype(x.dtype)
    reference = norms.layer_norm_backward_reference(gy, x_hat, rstd, weight)
    compiled = norms.layer_norm_backward_numba(gy, x_hat, rstd, weight)
    for name, a, b in zip(("gx", "gw", "gb"), compiled, reference):
        np.testing.assert_allclose(a, b, err_msg=name, **tol)
        assert a.dtype == x.dtype, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(
    shape=st.tuples(st.integers(1, 9), st.integers(1, 40)),
    affine=st.sampled_from(["both", "weight", "none"]),
    seed=st.integers(0, 2**16),
)
def test_layer_norm_numba_matches_reference(dtype, shape, affine, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    check_layer_norm(x, *affine_parameters(rng, shape[1], affine, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 7), (5, 1), (1, 1)], ids=["one-row", "one-feature", "one"])
def test_layer_norm_edge_shapes(dtype, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    check_layer_norm(x, np.full(shape[1], 2.0, dtype=dtype), np.ones(shape[1], dtype=dtype))


def test_layer_norm_constant_row_is_finite():
    x = np.full((3, 6), 5.0, dtype=np.float32)  # zero variance: eps keeps 1/σ finite
    y, x_hat, rstd = norms.layer_norm_forward_numba(x, None, None, 1e-5)
    np.testing.assert_array_equal(y, 0)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(1e-5), rtol=1e-6)
    gx, _, _ = norms.layer_norm_backward_numba(np.ones_like(x), x_hat, rstd, None)
    np.testing.assert_array_equal(gx, 0)


@pytest.mark.parametrize("shape, normalized", [((4, 5), (5,)), ((2, 3, 4), (3, 4)), ((1, 6), (6,))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_op_gradcheck_and_parity(kernel_mode, shape, normalized, affine):
    rng = np.random.default_rng(3)
    x = minidl.tensor(rng.standard_normal(shape), requires_grad=True)
    w = minidl.tensor(rng.standard_normal(normalized), requires_grad=True) if affine else None
    b = minidl.tensor(rng.standard_normal(normalized), requires_grad=True) if affine else None
    inputs = [t for t in (x, w, b) if t is not None]
    layer_norm = minidl.nn.functional.layer_norm
    assert gradcheck(lambda *t: layer_norm(t[0], normalized, *t[1:]), inputs)
    theirs = torch.nn.functional.layer_norm(
        torch.tensor(x.numpy()), normalized, *[torch.tensor(t.numpy()) for t in inputs[1:]]
    )
    np.testing.assert_allclose(layer_norm(x, normalized, w, b).numpy(), theirs.numpy(), rtol=1e-10,
                               atol=1e-10)
