"""Batch-norm kernels: the Numba forward and backward equal their NumPy references."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 9)),
    affine=st.sampled_from(["both", "weight", "none"]),
    seed=st.integers(0, 2**16),
)
def test_batch_norm_numba_matches_reference(dtype, shape, affine, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    weight = rng.standard_normal(shape[1]).astype(dtype) if affine != "none" else None
    bias = rng.standard_normal(shape[1]).astype(dtype) if affine == "both" else None
    check_batch_norm(x, weight, bias)


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
