"""index_add (scatter-add): the Numba kernel equals the NumPy reference ``np.add.at``."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from minidl.kernels import scatter

from minidl import kernels


def _both(target, index, values):
    """(Numba result, reference result) of adding ``values`` at ``index`` into copies of ``target``."""
    ours, reference = target.copy(), target.copy()
    scatter.index_add_rows_numba(ours, index, values)
    scatter.index_add_reference(reference, index, values)
    return ours, reference


@given(rows=st.integers(1, 6), trailing=st.lists(st.integers(0, 4), max_size=2),
       index_shape=st.lists(st.integers(0, 5), min_size=1, max_size=2),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_numba_matches_reference(rows, trailing, index_shape, dtype, seed):
    rng = np.random.default_rng(seed)
    target = rng.standard_normal([rows] + trailing).astype(dtype)
    index = rng.integers(-rows, rows, index_shape)  # negative and repeated rows
    values = rng.standard_normal(index_shape + trailing).astype(dtype)
    ours, reference = _both(target, index, values)
    np.testing.assert_allclose(ours, reference, rtol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wide_rows(dtype):
    rng = np.random.default_rng(0)
    width = 197  # many SIMD lanes' worth, and a remainder
    target = rng.standard_normal((7, width)).astype(dtype)
    index = np.array([3, 3, 0, -1, 3, 6, 0])
    ours, reference = _both(target, index, rng.standard_normal((7, width)).astype(dtype))
    np.testing.assert_allclose(ours, reference, rtol=1e-6)


def test_repeated_index_accumulates_exactly():
    target = np.zeros((3, 2))
    scatter.index_add_rows_numba(target, np.array([1, 1, 1, -3]), np.ones((4, 2)))
    np.testing.assert_array_equal(target, [[1, 1], [3, 3], [0, 0]])


def test_empty_index_changes_nothing():
    target = np.arange(6.0).reshape(3, 2)
    ours, reference = _both(target, np.zeros(0, dtype=np.int64), np.zeros((0, 2)))
    np.testing.assert_array_equal(ours, target)
    np.testing.assert_array_equal(reference, target)


def test_out_of_range_row_raises():
    with pytest.raises(IndexError, match="index_add: row index out of range for 3 rows"):
        scatter.index_add_rows_numba(np.zeros((3, 2)), np.array([0, 3]), np.ones((2, 2)))
    with pytest.raises(IndexError, match="out of range"):
        scatter.index_add_rows_numba(np.zeros((3, 2)), np.array([-4]), np.ones((1, 2)))


def test_non_contiguous_target_and_tuple_index_fall_back_to_reference():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((4, 6))
    strided, expected = base[:, ::2], base[:, ::2].copy()
    index = np.array([0, 2, 2])
    values = rng.standard_normal((3, 3))
    scatter.index_add(strided, index, values)
    np.add.at(expected, index, values)
    np.testing.assert_allclose(strided, expected)
    target, reference = np.zeros((3, 3)), np.zeros((3, 3))
    rows_cols = (np.array([0, 0, 2]), np.array([1, 1, 0]))
    scatter.index_add(target, rows_cols, np.ones(3))
    np.add.at(reference, rows_cols, np.ones(3))
    np.testing.assert_array_equal(target, reference)


@pytest.mark.parametrize("mode", ["auto", "reference"])
def test_dispatcher_in_both_modes(mode):
    rng = np.random.default_rng(2)
    target, index, values = np.zeros((5, 3)), rng.integers(-5, 5, 12), rng.standard_normal((12, 3))
    expected = target.copy()
    np.add.at(expected, index, values)
    with kernels.use(mode):
        scatter.index_add(target, index, values)
    np.testing.assert_allclose(target, expected, rtol=1e-12)
