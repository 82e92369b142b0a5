"""Pooling layers: MaxPool1d/2d/3d, AvgPool1d/2d/3d, AdaptiveAvgPool1d/2d/3d (no parameters).

The size of each spatial output dim (``ceil`` instead of ``floor`` with ``ceil_mode``, where a last
window that would start in the right padding is dropped; ``dilation`` is 1 for average pooling)::

    out = floor((in + 2·padding - dilation·(kernel_size - 1) - 1) / stride) + 1
"""

from __future__ import annotations

from minidl.nn.checks import check_input
from minidl.nn.module import Module
from minidl.ops import pooling


def _single(value) -> tuple:
    return (value,) if isinstance(value, int) else tuple(value)


def _check(layer: Module, input) -> None:
    spatial = tuple("DHW"[3 - layer.dims :])
    check_input(layer, input, ("N", "C") + spatial, ("C",) + spatial)


class _MaxPoolNd(Module):
    """Max over sliding windows; the shared body of MaxPool1d/2d/3d.

    Args:
        kernel_size: window size (an int or a tuple of one int per spatial dim).
        stride: window step (default: ``kernel_size``).
        padding: implicit -inf padding on both sides, at most half the effective kernel size.
        dilation: spacing between the elements of a window.
        return_indices: also return the argmax as a flat index into each input plane.
        ceil_mode: round the output size up instead of down.
    """

    dims = 0

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input):
        _check(self, input)
        pool = (pooling.max_pool1d, pooling.max_pool2d, pooling.max_pool3d)[self.dims - 1]
        return pool(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class MaxPool1d(_MaxPoolNd):
    """Max over windows of the last dim (arguments as in ``_MaxPoolNd``).

    Shape:
        input (N, C, L) or (C, L) -> output (N, C, L_out) or (C, L_out).

    Examples:
        >>> MaxPool1d(2)(minidl.randn(8, 3, 28)).shape
        (8, 3, 14)
    """

    dims = 1


class MaxPool2d(_MaxPoolNd):
    """Max over windows of the last 2 dims (arguments as in ``_MaxPoolNd``).

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, C, H_out, W_out) or (C, H_out, W_out).

    Examples:
        >>> MaxPool2d(2)(minidl.randn(8, 3, 28, 28)).shape
        (8, 3, 14, 14)
    """

    dims = 2


class MaxPool3d(_MaxPoolNd):
    """Max over windows of the last 3 dims (arguments as in ``_MaxPoolNd``).

    Shape:
        input (N, C, D, H, W) or (C, D, H, W) -> output (N, C, D_out, H_out, W_out) or unbatched.

    Examples:
        >>> MaxPool3d(2)(minidl.randn(8, 3, 4, 28, 28)).shape
        (8, 3, 2, 14, 14)
    """

    dims = 3


class _AvgPoolNd(Module):
    """Mean over sliding windows; the shared body of AvgPool1d/2d/3d.

    Args:
        kernel_size: window size (an int or a tuple of one int per spatial dim).
        stride: window step (default: ``kernel_size``).
        padding: implicit zero padding on both sides, at most half the kernel size.
        ceil_mode: round the output size up instead of down.
        count_include_pad: divide by the window size including padding (but never past it),
            else by the number of input elements in the window.

    PyTorch's ``divisor_override`` (AvgPool2d/3d) is not supported.
    """

    dims = 0

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ):
        super().__init__()
        stride = stride if stride is not None else kernel_size
        if self.dims == 1:  # PyTorch's AvgPool1d (only) stores its sizes as 1-tuples
            kernel_size, stride, padding = (_single(v) for v in (kernel_size, stride, padding))
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, input):
        _check(self, input)
        pool = (pooling.avg_pool1d, pooling.avg_pool2d, pooling.avg_pool3d)[self.dims - 1]
        return pool(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """Mean over windows of the last dim (arguments as in ``_AvgPoolNd``).

    Shape:
        input (N, C, L) or (C, L) -> output (N, C, L_out) or (C, L_out).

    Examples:
        >>> AvgPool1d(3, stride=2)(minidl.randn(8, 3, 28)).shape
        (8, 3, 13)
    """

    dims = 1


class AvgPool2d(_AvgPoolNd):
    """Mean over windows of the last 2 dims (arguments as in ``_AvgPoolNd``).

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, C, H_out, W_out) or (C, H_out, W_out).

    Examples:
        >>> AvgPool2d(2)(minidl.randn(8, 3, 28, 28)).shape
        (8, 3, 14, 14)
    """

    dims = 2


class AvgPool3d(_AvgPoolNd):
    """Mean over windows of the last 3 dims (arguments as in ``_AvgPoolNd``).

    Shape:
        input (N, C, D, H, W) or (C, D, H, W) -> output (N, C, D_out, H_out, W_out) or unbatched.

    Examples:
        >>> AvgPool3d(2)(minidl.randn(8, 3, 4, 28, 28)).shape
        (8, 3, 2, 14, 14)
    """

    dims = 3


class _AdaptiveAvgPoolNd(Module):
    """Mean over windows chosen to give a fixed output size: output i of a dim of length L
    averages [floor(i·L/out), ceil((i+1)·L/out)).

    Args:
        output_size: the output's spatial size (an int, or a tuple whose None entries keep the
            input's size).
    """

    dims = 0

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        _check(self, input)
        pool = (
            pooling.adaptive_avg_pool1d,
            pooling.adaptive_avg_pool2d,
            pooling.adaptive_avg_pool3d,
        )[self.dims - 1]
        return pool(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Adaptive mean over the last dim.

    Shape:
        input (N, C, L) or (C, L) -> output (N, C, output_size) or (C, output_size).

    Examples:
        >>> AdaptiveAvgPool1d(5)(minidl.randn(8, 3, 28)).shape
        (8, 3, 5)
    """

    dims = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Adaptive mean over the last 2 dims.

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, C, *output_size) or (C, *output_size).

    Examples:
        >>> AdaptiveAvgPool2d((1, 1))(minidl.randn(8, 3, 7, 7)).shape
        (8, 3, 1, 1)
    """

    dims = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Adaptive mean over the last 3 dims.

    Shape:
        input (N, C, D, H, W) or (C, D, H, W) -> output (N, C, *output_size) or unbatched.

    Examples:
        >>> AdaptiveAvgPool3d(1)(minidl.randn(8, 3, 4, 7, 7)).shape
        (8, 3, 1, 1, 1)
    """

    dims = 3
