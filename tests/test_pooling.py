"""Pooling ops and layers: gradcheck and gradgradcheck (float64), PyTorch parity (float32) and
Hessian-vector product (hvp) parity (float64), with and without kernels."""

import numpy as np
import pytest
import torch
from helpers import (assert_close, check_module_hvp_parity, check_module_parity, gradcheck_module,
                     gradgradcheck_module)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from minidl.nn import pooling as pooling_layers
from minidl.nn.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)
from minidl.ops.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool1d, max_pool2d

MAX_POOLS = {
    1: (MaxPool1d, torch.nn.MaxPool1d),
    2: (MaxPool2d, torch.nn.MaxPool2d),
    3: (MaxPool3d, torch.nn.MaxPool3d),
}
AVG_POOLS = {
    1: (AvgPool1d, torch.nn.AvgPool1d),
    2: (AvgPool2d, torch.nn.AvgPool2d),
    3: (AvgPool3d, torch.nn.AvgPool3d),
}
ADAPTIVE_POOLS = {
    1: (AdaptiveAvgPool1d, torch.nn.AdaptiveAvgPool1d),
    2: (AdaptiveAvgPool2d, torch.nn.AdaptiveAvgPool2d),
    3: (AdaptiveAvgPool3d, torch.nn.AdaptiveAvgPool3d),
}
with_fixture = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def windows(draw, dilated: bool):
    """A pooling configuration and an input size that gives at least one output per dim."""
    dims = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) if dilated else 1 for _ in range(dims))
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(max(1, e - 2 * p) + draw(st.integers(0, 3)) for e, p in zip(span, padding))
    lead = draw(st.sampled_from([(2, 3), (1, 2), (3,)]))  # batched, or unbatched (C, *S)
    config = {
        "kernel_size": kernel,
        "stride": stride,
        "padding": padding,
        "ceil_mode": draw(st.booleans()),
    }
    if dilated:
        config["dilation"] = dilation
    return dims, lead + size, config


@with_fixture
@given(window=windows(dilated=True), seed=st.integers(0, 2**16))
def test_max_pool_gradcheck_and_parity(kernel_mode, window, seed):
    dims, shape, config = window
    x = np.random.default_rng(seed).standard_normal(shape)  # distinct values: a unique argmax
    ours, theirs = MAX_POOLS[dims]
    assert gradcheck_module(ours(**config), [x])
    check_module_parity(
        ours(**config, return_indices=True), theirs(**config, return_indices=True), [x]
    )
    check_second_order(ours(**config), theirs(**config), x)


def squared(module, x):
    """pool(x)²: its gradient 2·pool(x) feeds back into the pool's backward, so the second
    derivative goes through the backward's own gradient (a gather for max, a pool for average)."""
    y = module(x)
    return y * y


def check_second_order(ours, theirs, x):
    assert gradgradcheck_module(ours, [x], call=squared)
    check_module_hvp_parity(ours, theirs, [x], call=squared)


def test_max_pool_ties_take_the_first_and_padding_never_wins(kernel_mode):
    x = np.array([[[[-3.0, -3.0, -5.0], [-3.0, -4.0, -4.0], [-6.0, -6.0, -6.0]]]], dtype=np.float32)
    for config in (
        {"kernel_size": 2, "stride": 1},
        {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    ):
        check_module_parity(
            MaxPool2d(**config, return_indices=True),
            torch.nn.MaxPool2d(**config, return_indices=True),
            [x],
        )


def test_max_pool_propagates_nan(kernel_mode):
    x = np.arange(8, dtype=np.float32).reshape(1, 1, 8)
    x[0, 0, 2] = np.nan
    ours, indices = max_pool1d(minidl.tensor(x), 4, return_indices=True)
    theirs, their_indices = torch.nn.functional.max_pool1d(torch.tensor(x), 4, return_indices=True)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(indices.numpy(), their_indices.numpy())


@with_fixture
@given(window=windows(dilated=False), count_include_pad=st.booleans(), seed=st.integers(0, 2**16))
def test_avg_pool_gradcheck_and_parity(kernel_mode, window, count_include_pad, seed):
    dims, shape, config = window
    config["count_include_pad"] = count_include_pad
    if (
        dims == 3
    ):  # torch's avg_pool3d (only) rejects inputs smaller than the kernel; minidl allows them
        shape = shape[:-3] + tuple(max(n, k) for n, k in zip(shape[-3:], config["kernel_size"]))
    x = np.random.default_rng(seed).standard_normal(shape)
    ours, theirs = AVG_POOLS[dims]
    assert gradcheck_module(ours(**config), [x])
    check_module_parity(ours(**config), theirs(**config), [x])
    check_second_order(ours(**config), theirs(**config), x)


@given(dims=st.integers(1, 3), data=st.data(), seed=st.integers(0, 2**16))
def test_adaptive_avg_pool_gradcheck_and_parity(dims, data, seed):
    size = tuple(data.draw(st.integers(1, 7)) for _ in range(dims))
    output_size = tuple(data.draw(st.one_of(st.none(), st.integers(1, 5))) for _ in range(dims))
    output_size = output_size[0] if dims == 1 else output_size  # torch's 1-d layer takes an int
    output_size = size[0] if output_size is None else output_size
    x = np.random.default_rng(seed).standard_normal((2, 3) + size)
    ours, theirs = ADAPTIVE_POOLS[dims]
    assert gradcheck_module(ours(output_size), [x])
    check_module_parity(ours(output_size), theirs(output_size), [x])
    check_module_parity(ours(output_size), theirs(output_size), [x[0]])  # unbatched
    check_second_order(ours(output_size), theirs(output_size), x)


@pytest.mark.parametrize(
    "pool",
    [lambda m: m.MaxPool2d(2, return_indices=True), lambda m: m.AvgPool2d(3, 2, 1)],
    ids=["max", "avg"],
)
def test_pooling_empty_batch(kernel_mode, pool):
    x = np.zeros((0, 3, 6, 6), dtype=np.float32)
    check_module_parity(pool(pooling_layers), pool(torch.nn), [x])


def test_functional_defaults_match_torch():
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    assert_close(
        max_pool2d(minidl.tensor(x), 3), torch.nn.functional.max_pool2d(torch.tensor(x), 3)
    )
    assert_close(
        avg_pool2d(minidl.tensor(x), 2, padding=1),
        torch.nn.functional.avg_pool2d(torch.tensor(x), 2, padding=1),
    )
    assert_close(
        adaptive_avg_pool2d(minidl.tensor(x), (4, None)),
        torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x), (4, None)),
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.MaxPool1d(3),
        lambda m: m.MaxPool2d((2, 3), stride=1, padding=1, dilation=2),
        lambda m: m.MaxPool3d(2, ceil_mode=True),
        lambda m: m.AvgPool1d(3, 2, 1),
        lambda m: m.AvgPool2d(2),
        lambda m: m.AvgPool3d((1, 2, 2), count_include_pad=False),
        lambda m: m.AdaptiveAvgPool1d(4),
        lambda m: m.AdaptiveAvgPool2d((None, 3)),
        lambda m: m.AdaptiveAvgPool3d(1),
    ],
)
def test_repr_matches_torch(make):
    assert repr(make(pooling_layers)) == repr(make(torch.nn))


def test_pooling_errors_name_the_op_and_shapes():
    with pytest.raises(
        ValueError,
        match=r"MaxPool2d\(kernel_size=2.*expected input of shape \(N, C, H, W\) or \(C, H, W\), got \(4, 4\)",
    ):
        MaxPool2d(2)(minidl.randn(4, 4))
    with pytest.raises(
        ValueError,
        match=r"max_pool2d: padding \(2, 2\) should be at most half of the kernel size \(3, 3\)",
    ):
        max_pool2d(minidl.randn(1, 1, 8, 8), 3, padding=2)
    with pytest.raises(
        ValueError,
        match=r"avg_pool2d: padding \(2, 2\) should be at most half of the kernel size \(3, 3\)",
    ):
        avg_pool2d(minidl.randn(1, 1, 8, 8), 3, padding=2)
    with pytest.raises(
        ValueError, match=r"max_pool2d: input spatial size \(2, 2\) gives output size \(0, 0\)"
    ):
        max_pool2d(minidl.randn(1, 1, 2, 2), 3)
    with pytest.raises(
        ValueError, match=r"max_pool1d: expected kernel_size to be an int or a tuple of 1 ints"
    ):
        max_pool1d(minidl.randn(1, 1, 8), (2, 2))
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: output_size must be"):
        adaptive_avg_pool2d(minidl.randn(1, 1, 8, 8), (0, 2))
    with pytest.raises(
        TypeError, match=r"max_pool2d: expected a floating-point input, got dtype int64"
    ):
        max_pool2d(minidl.tensor(np.zeros((1, 1, 4, 4), dtype=np.int64)), 2)
