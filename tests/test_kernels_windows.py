"""The window geometry shared by im2col, pooling and the conv and pool ops."""
import numpy as np
import pytest
import torch
from minidl.kernels.windows import as_3d, ntuple, offset_slices, output_length, pads_to_fit


def test_ntuple_repeats_an_int_and_checks_length_type_and_minimum():
    assert ntuple(3, 2, "stride", "conv2d", 1) == (3, 3)
    assert ntuple([1, 2, 3], 3, "padding", "conv3d", 0) == (1, 2, 3)
    for bad in ((1, 2), 0, (1.0,), "2"):
        with pytest.raises(ValueError, match=r"max_pool1d: expected kernel_size to be an int or a "
                                             r"tuple of 1 ints, each >= 1, got"):
            ntuple(bad, 1, "kernel_size", "max_pool1d", 1)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_output_length_is_pytorchs(ceil_mode):
    for n, k, s, p, d in [(5, 2, 2, 0, 1), (5, 4, 3, 2, 1), (7, 3, 2, 1, 2), (1, 1, 1, 0, 1),
                          (10, 3, 4, 1, 1), (6, 2, 3, 1, 1)]:
        expected = torch.nn.functional.max_pool1d(torch.zeros(1, 1, n), k, s, p, d,
                                                  ceil_mode=ceil_mode).shape[-1]
        assert output_length(n, k, s, p, d, ceil_mode) == expected, (n, k, s, p, d)


def test_as_3d_pads_at_the_front_and_rejects_four_dims():
    assert as_3d((5,), 1, "op") == (1, 1, 5) and as_3d((2, 3), 0, "op") == (0, 2, 3)
    assert as_3d((1, 2, 3), 0, "op") == (1, 2, 3)
    with pytest.raises(ValueError, match="col2im: the compiled and CUDA kernels take 1 to 3 "
                                         "spatial dims, got 4"):
        as_3d((1, 2, 3, 4), 1, "col2im")


def test_pads_to_fit_pads_after_only_as_far_as_the_last_window_reaches():
    # n 5, k 3, s 2, p 1: windows start at -1, 1, 3 and the last ends at 5, one past the input
    assert pads_to_fit((5,), (3,), (2,), (1,), (1,), (3,)) == [(1, 1)]
    # n 6: the same windows end inside the input, so nothing is added after
    assert pads_to_fit((6,), (3,), (2,), (1,), (1,), (3,)) == [(1, 0)]
    # dilation 2 stretches the window to 5 positions; two dims are independent
    assert pads_to_fit((4, 7), (3, 2), (1, 3), (0, 2), (2, 1), (1, 3)) == [(0, 1), (2, 0)]


def test_offset_slices_read_every_output_position_of_each_kernel_offset():
    x = np.arange(10 * 9).reshape(10, 9)
    kernel, stride, dilation, out = (2, 3), (3, 2), (2, 1), (3, 3)
    offsets = []
    for offset, window in offset_slices(kernel, stride, dilation, out):
        offsets.append(offset)
        expected = [[x[o0 * 3 + offset[0] * 2, o1 * 2 + offset[1]] for o1 in range(3)]
                    for o0 in range(3)]
        np.testing.assert_array_equal(x[window], expected)
    assert offsets == list(np.ndindex(*kernel))  # C order: the max pool's first-max tie-break
