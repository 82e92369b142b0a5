"""im2col / col2im: the reference against the definition, col2im's Numba loop against the reference,
the adjoint identity. (im2col's CPU path is its reference: there is no Numba im2col.)"""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from minidl.kernels import im2col as kernels

IMPLEMENTATIONS = {  # the im2col and col2im that each CPU mode runs
    "reference": (kernels.im2col_reference, kernels.col2im_reference),
    "numba": (kernels.im2col_reference, kernels.col2im_numba),
}


def conv_output_size(size, kernel_size, stride, padding, dilation):
    return tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(size, kernel_size, stride, padding, dilation)
    )


def im2col_by_definition(x, kernel_size, stride, padding, dilation, output_size):
    """col[c, k..., n, o...] = x[n, c, o·s - p + k·d] (0 outside), one element at a time."""
    N, C, *size = x.shape
    col = np.zeros((C, *kernel_size, N, *output_size), dtype=x.dtype)
    for n, c in itertools.product(range(N), range(C)):
        for k in itertools.product(*(range(j) for j in kernel_size)):
            for o in itertools.product(*(range(j) for j in output_size)):
                q = tuple(
                    oi * s - p + ki * d for oi, ki, s, p, d in zip(o, k, stride, padding, dilation)
                )
                if all(0 <= qi < m for qi, m in zip(q, size)):
                    col[(c, *k, n, *o)] = x[(n, c, *q)]
    return col


@st.composite
def geometries(draw, max_dims=3):
    """A window geometry with a positive output grid, which may reach past the symmetric padding."""
    dims = draw(st.integers(1, max_dims))
    per_dim = lambda low, high: tuple(draw(st.integers(low, high)) for _ in range(dims))
    kernel_size, stride, dilation = per_dim(1, 3), per_dim(1, 3), per_dim(1, 2)
    padding = tuple(draw(st.integers(0, k)) for k in kernel_size)
    size = tuple(
        max(1, d * (k - 1) + 1 - 2 * p + draw(st.integers(0, 3)))
        for k, p, d in zip(kernel_size, padding, dilation)
    )
    output_size = conv_output_size(size, kernel_size, stride, padding, dilation)
    # up to one extra output position: windows that reach past the symmetric padding
    output_size = tuple(max(1, o) + draw(st.integers(0, 1)) for o in output_size)
    return {
        "N": draw(st.integers(0, 2)),
        "C": draw(st.integers(1, 3)),
        "size": size,
        "kernel_size": kernel_size,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "output_size": output_size,
    }


def run_pair(name, g, x, col_grad):
    im2col, col2im = IMPLEMENTATIONS[name]
    args = (g["kernel_size"], g["stride"], g["padding"], g["dilation"], g["output_size"])
    return im2col(x, *args), col2im(col_grad, g["size"], g["stride"], g["padding"], g["dilation"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(g=geometries(), seed=st.integers(0, 2**16))
def test_numba_col2im_matches_reference(dtype, g, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((g["N"], g["C"], *g["size"])).astype(dtype)
    c = rng.standard_normal((g["C"], *g["kernel_size"], g["N"], *g["output_size"])).astype(dtype)
    col, image_ref = run_pair("reference", g, x, c)
    _, image_numba = run_pair("numba", g, x, c)
    assert col.dtype == image_numba.dtype == dtype
    np.testing.assert_allclose(
        image_numba, image_ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6
    )


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@given(g=geometries(max_dims=2), seed=st.integers(0, 2**16))
def test_im2col_is_the_definition_and_col2im_its_adjoint(name, g, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((g["N"], g["C"], *g["size"]))
    c = rng.standard_normal((g["C"], *g["kernel_size"], g["N"], *g["output_size"]))
    col, image = run_pair(name, g, x, c)
    args = (g["kernel_size"], g["stride"], g["padding"], g["dilation"], g["output_size"])
    np.testing.assert_array_equal(col, im2col_by_definition(x, *args))
    np.testing.assert_allclose(np.vdot(col, c), np.vdot(x, image), rtol=1e-10, atol=1e-10)


EDGE_CASES = {  # (size, kernel_size, stride, padding, dilation), output grid from the conv formula
    "stride > kernel": ((9, 7), (2, 2), (4, 3), (0, 0), (1, 1)),
    "padding = kernel - 1": ((4, 3), (3, 2), (1, 1), (2, 1), (1, 1)),
    "single pixel": ((1, 1), (1, 1), (1, 1), (0, 0), (1, 1)),
    "single pixel, padded 3x3": ((1, 1), (3, 3), (1, 1), (1, 1), (1, 1)),
    "dilation": ((7, 8), (3, 2), (1, 2), (1, 0), (3, 2)),
    "1-d": ((10,), (4,), (3,), (2,), (2,)),
    "3-d": ((3, 4, 5), (2, 3, 2), (2, 1, 2), (1, 0, 1), (1, 1, 2)),
}


@pytest.mark.parametrize("batch", [0, 2])
@pytest.mark.parametrize("case", EDGE_CASES, ids=list(EDGE_CASES))
def test_edge_cases(case, batch):
    size, kernel_size, stride, padding, dilation = EDGE_CASES[case]
    g = {
        "size": size,
        "kernel_size": kernel_size,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "output_size": conv_output_size(size, kernel_size, stride, padding, dilation),
    }
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 2, *size))
    c = rng.standard_normal((2, *kernel_size, batch, *g["output_size"]))
    col_ref, image_ref = run_pair("reference", g, x, c)
    _, image_numba = run_pair("numba", g, x, c)
    expected = im2col_by_definition(
        x, *(g[k] for k in ("kernel_size", "stride", "padding", "dilation", "output_size"))
    )
    np.testing.assert_array_equal(col_ref, expected)
    np.testing.assert_allclose(image_numba, image_ref, rtol=1e-12, atol=1e-12)
    assert image_ref.shape == x.shape
    np.testing.assert_allclose(np.vdot(col_ref, c), np.vdot(x, image_ref), rtol=1e-10, atol=1e-10)


def test_col2im_accumulates_overlaps():
    # a ones col over a 3-wide, stride-1 window: each pixel counts the windows that cover it
    g = {
        "size": (5,),
        "kernel_size": (3,),
        "stride": (1,),
        "padding": (0,),
        "dilation": (1,),
        "output_size": (3,),
    }
    counts = [1, 2, 3, 2, 1]
    for name in IMPLEMENTATIONS:
        _, image = run_pair(name, g, np.zeros((1, 1, 5)), np.ones((1, 3, 1, 3)))
        np.testing.assert_array_equal(image[0, 0], counts)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(g=geometries(), seed=st.integers(0, 2**16))
def test_cupy_matches_reference(dtype, g, seed):
    import cupy

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((g["N"], g["C"], *g["size"])).astype(dtype)
    c = rng.standard_normal((g["C"], *g["kernel_size"], g["N"], *g["output_size"])).astype(dtype)
    col_ref, image_ref = run_pair("reference", g, x, c)
    args = (g["kernel_size"], g["stride"], g["padding"], g["dilation"], g["output_size"])
    np.testing.assert_array_equal(
        cupy.asnumpy(kernels.im2col_cupy(cupy.asarray(x), *args)), col_ref
    )
    image = kernels.col2im_cupy(
        cupy.asarray(c), g["size"], g["stride"], g["padding"], g["dilation"]
    )
    np.testing.assert_allclose(cupy.asnumpy(image), image_ref, rtol=1e-5, atol=1e-6)
