"""Pooling kernels: each Numba kernel equals its NumPy reference, and average pooling's reference
(its CPU path in both modes) equals the definition, one window at a time."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from minidl.kernels import pooling


def output_size(in_size, kernel, stride, padding, dilation, ceil_mode=False):
    sizes = []
    for n, k, s, p, d in zip(in_size, kernel, stride, padding, dilation):
        out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
        sizes.append(out - 1 if ceil_mode and (out - 1) * s >= n + p else out)
    return tuple(sizes)


@st.composite
def geometries(draw, dilated=True):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(3))
    stride = tuple(draw(st.integers(1, 4)) for _ in range(3))  # stride > kernel included
    dilation = tuple(draw(st.integers(1, 2)) if dilated else 1 for _ in range(3))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    in_size = tuple(
        max(1, (k - 1) * d + 1 - 2 * p) + draw(st.integers(0, 4))
        for k, d, p in zip(kernel, dilation, padding)
    )
    out = output_size(in_size, kernel, stride, padding, dilation, draw(st.booleans()))
    return (draw(st.integers(0, 3)),) + in_size, kernel, stride, padding, dilation, out


def check_max_pool(x, kernel, stride, padding, dilation, out):
    y, index = pooling.max_pool_forward_reference(x, kernel, stride, padding, dilation, out)
    y_numba, index_numba = pooling.max_pool_forward_numba(x, kernel, stride, padding, dilation, out)
    np.testing.assert_array_equal(y_numba, y)
    np.testing.assert_array_equal(index_numba, index)
    assert y_numba.dtype == x.dtype and index_numba.dtype == np.int64
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    gx = pooling.max_pool_backward_reference(gy, index, x.shape[1:])
    gx_numba = pooling.max_pool_backward_numba(gy, index, x.shape[1:])
    np.testing.assert_allclose(gx_numba, gx, rtol=1e-6, atol=1e-6)
    assert gx_numba.dtype == x.dtype


def avg_pool_by_definition(x, kernel, stride, padding, out, count_include_pad):
    """y[b, o] = Σ x over o's window / PyTorch's divisor, one output at a time; and the backward
    of a ones gy: how many windows (each weighted 1/divisor) cover each input."""
    y, gx = np.zeros((x.shape[0], *out)), np.zeros(x.shape)
    for o in itertools.product(*(range(n) for n in out)):
        start = [oi * s - p for oi, s, p in zip(o, stride, padding)]
        end = [min(a + k, n + p) for a, k, n, p in zip(start, kernel, x.shape[1:], padding)]
        inside = tuple(slice(max(a, 0), min(e, n)) for a, e, n in zip(start, end, x.shape[1:]))
        divisor = np.prod([e - a for a, e in zip(start, end)]) if count_include_pad else (
            np.prod([sl.stop - sl.start for sl in inside]))
        y[(slice(None), *o)] = x[(slice(None), *inside)].sum(axis=(1, 2, 3)) / divisor
        gx[(slice(None), *inside)] += 1 / divisor
    return y, gx


def check_avg_pool(x, kernel, stride, padding, out, count_include_pad):
    y = pooling.avg_pool_forward_reference(x, kernel, stride, padding, out, count_include_pad)
    y_expected, gx_expected = avg_pool_by_definition(x, kernel, stride, padding, out,
                                                     count_include_pad)
    tolerance = dict(rtol=1e-5, atol=1e-6) if x.dtype == np.float32 else dict(rtol=1e-12)
    np.testing.assert_allclose(y, y_expected, **tolerance)
    assert y.dtype == x.dtype
    gx = pooling.avg_pool_backward_reference(
        np.ones(y.shape, x.dtype), kernel, stride, padding, x.shape[1:], count_include_pad
    )
    np.testing.assert_allclose(gx, gx_expected, **tolerance)
    assert gx.dtype == x.dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(geometry=geometries(), integers=st.booleans(), seed=st.integers(0, 2**16))
def test_max_pool_numba_matches_reference(dtype, geometry, integers, seed):
    shape, kernel, stride, padding, dilation, out = geometry
    rng = np.random.default_rng(seed)
    # small integers make ties, which must resolve to the same (first) element
    x = (rng.integers(-2, 3, shape) if integers else rng.standard_normal(shape)).astype(dtype)
    check_max_pool(x, kernel, stride, padding, dilation, out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(
    geometry=geometries(dilated=False), count_include_pad=st.booleans(), seed=st.integers(0, 2**16)
)
def test_avg_pool_reference_is_the_definition(dtype, geometry, count_include_pad, seed):
    shape, kernel, stride, padding, _, out = geometry
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    check_avg_pool(x, kernel, stride, padding, out, count_include_pad)


EDGE_CASES = {  # name: (input shape, kernel, stride, padding, dilation, ceil_mode)
    "stride_above_kernel": ((2, 1, 5, 9), (1, 2, 2), (1, 3, 4), (0, 0, 0), (1, 1, 1), False),
    "padding_half_kernel": ((2, 1, 4, 4), (1, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), False),
    "padding_half_even_kernel_ceil": (
        (2, 1, 5, 5),
        (1, 4, 4),
        (1, 3, 3),
        (0, 2, 2),
        (1, 1, 1),
        True,
    ),
    "single_pixel": ((3, 1, 1, 1), (1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1), False),
    "single_pixel_padded": ((3, 1, 1, 1), (1, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), False),
    "empty_batch": ((0, 1, 4, 4), (1, 2, 2), (1, 2, 2), (0, 0, 0), (1, 1, 1), False),
    "dilated_3d": ((2, 5, 5, 5), (2, 2, 2), (2, 1, 2), (1, 1, 0), (2, 2, 1), True),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(EDGE_CASES), ids=list(EDGE_CASES))
def test_pooling_edge_cases(dtype, case):
    shape, kernel, stride, padding, dilation, ceil_mode = EDGE_CASES[case]
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    check_max_pool(
        x,
        kernel,
        stride,
        padding,
        dilation,
        output_size(shape[1:], kernel, stride, padding, dilation, ceil_mode),
    )
    if dilation == (1, 1, 1):
        for count_include_pad in (True, False):
            check_avg_pool(
                x,
                kernel,
                stride,
                padding,
                output_size(shape[1:], kernel, stride, padding, dilation, ceil_mode),
                count_include_pad,
            )


def test_max_pool_index_is_flat_in_the_unpadded_plane():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    y, index = pooling.max_pool_forward_numba(
        x, (1, 2, 2), (1, 2, 2), (0, 1, 1), (1, 1, 1), (1, 3, 3)
    )
    np.testing.assert_array_equal(index[0, 0], [[0, 2, 3], [8, 10, 11], [12, 14, 15]])
    np.testing.assert_array_equal(y, x.reshape(-1)[index])


def test_max_pool_nan_wins_like_torch():
    x = np.array([1.0, np.nan, 5.0, np.nan, 2.0]).reshape(1, 1, 1, 5)
    for kernel in (pooling.max_pool_forward_reference, pooling.max_pool_forward_numba):
        y, index = kernel(x, (1, 1, 5), (1, 1, 5), (0, 0, 0), (1, 1, 1), (1, 1, 1))
        assert np.isnan(y).all() and index.item() == 3  # torch takes the last NaN


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(
    shape=st.tuples(st.integers(0, 3), st.integers(2, 9), st.integers(2, 9)),
    values=st.sampled_from(["normal", "ties", "nan", "inf"]),
    ceil_mode=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_max_pool_2x2_fast_path_matches_reference(dtype, shape, values, ceil_mode, seed):
    """The unrolled 2x2/stride-2 loop (taken whenever the geometry allows) equals the reference."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, shape) if values == "ties" else rng.standard_normal(shape)
    if values in ("nan", "inf"):
        x[rng.random(shape) < 0.3] = np.nan if values == "nan" else -np.inf
    x = x.astype(dtype).reshape(shape[0], 1, *shape[1:])
    kernel = stride = (1, 2, 2)
    check_max_pool(
        x, kernel, stride, (0, 0, 0), (1, 1, 1),
        output_size(x.shape[1:], kernel, stride, (0, 0, 0), (1, 1, 1), ceil_mode),
    )
