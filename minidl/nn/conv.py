"""Convolution layers: Conv1d/2d/3d and ConvTranspose1d/2d/3d on one N-d base class."""

from __future__ import annotations

import math

from minidl import creation
from minidl.nn import init
from minidl.nn.checks import check_input
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.kernels.windows import ntuple
from minidl.ops.conv import (
    conv_arguments,
    convolution,
    transposed_arguments,
    transposed_convolution,
)

_SPATIAL_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


class _ConvNd(Module):
    """What every convolution layer shares: arguments, parameters, init, repr, input check.

    Subclasses set ``dims`` (1, 2 or 3) and ``transposed``. Only ``padding_mode='zeros'`` is
    implemented; PyTorch's 'reflect', 'replicate' and 'circular' raise NotImplementedError.
    """

    dims = 0
    transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride,
        padding,
        dilation,
        output_padding,
        groups: int,
        bias: bool,
        padding_mode: str,
        device,
        dtype,
    ):
        super().__init__()
        name = type(self).__name__
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                f"must be divisible by groups ({groups})"
            )
        if padding_mode != "zeros":
            raise NotImplementedError(
                f"{name}: padding_mode={padding_mode!r} is not implemented (only 'zeros')"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = ntuple(kernel_size, self.dims, "kernel_size", name, 1)
        if self.transposed:
            self.stride, self.padding, self.output_padding, self.dilation = transposed_arguments(
                name, self.dims, stride, padding, output_padding, dilation)
        else:
            self.stride, self.padding, self.dilation = conv_arguments(
                name, self.dims, stride, padding, dilation)
            self.output_padding = (0,) * self.dims
        self.padding_mode = padding_mode
        channels = (
            (in_channels, out_channels // groups)
            if self.transposed
            else (out_channels, in_channels // groups)
        )
        self.weight = Parameter(
            creation.empty(*channels, *self.kernel_size, dtype=dtype, device=device)
        )
        if bias:
            self.bias = Parameter(creation.empty(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: W ~ kaiming_uniform(a=√5), b ~ U(±1/√fan_in), fan_in from W."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def _check(self, input) -> None:
        spatial = _SPATIAL_NAMES[self.dims]
        check_input(
            self,
            input,
            ("N", self.in_channels, *spatial),
            (self.in_channels, *spatial),
            like=self.weight,
        )

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0,) * self.dims:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * self.dims:
            text += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self.dims:
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class _Conv(_ConvNd):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            0,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )

    def forward(self, input):
        self._check(input)  # the arguments were normalised and checked at construction
        return convolution(f"conv{self.dims}d", self.dims, input, self.weight, self.bias,
                           self.stride, self.padding, self.dilation, self.groups)


class _ConvTranspose(_ConvNd):
    transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups: int = 1,
        bias: bool = True,
        dilation=1,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            output_padding,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )

    def forward(self, input):
        self._check(input)  # the arguments were normalised and checked at construction
        return transposed_convolution(f"conv_transpose{self.dims}d", self.dims, input, self.weight,
                                      self.bias, self.stride, self.padding, self.output_padding,
                                      self.groups, self.dilation)


class Conv1d(_Conv):
    """1-d convolution over (N, C, L) signals: y = W ⋆ x + b (cross-correlation, as in PyTorch).

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: window size (int or 1-tuple).
        stride: step between windows (default 1).
        padding: zeros added on both sides: int, tuple, ``"valid"`` (none) or ``"same"``
            (output length = input length; needs stride 1).
        dilation: spacing between kernel elements (default 1).
        groups: split channels into this many independent convolutions (default 1).
        bias: learn an additive bias (default True).
        padding_mode: only ``"zeros"`` (others raise NotImplementedError).

    Shape:
        input (N, C_in, L) or (C_in, L) -> output (N, C_out, L_out) or (C_out, L_out), where
        L_out = floor((L + 2·padding - dilation·(kernel_size - 1) - 1) / stride) + 1.

    Weights: ``weight`` (out_channels, in_channels/groups, kL) from kaiming_uniform(a=√5) and
    ``bias`` (out_channels,) from U(-1/√fan_in, 1/√fan_in), fan_in = in_channels/groups·kL.

    Examples:
        >>> Conv1d(16, 33, 3, stride=2)(minidl.randn(20, 16, 50)).shape
        (20, 33, 24)
    """

    dims = 1


class Conv2d(_Conv):
    """2-d convolution over (N, C, H, W) images: y = W ⋆ x + b (cross-correlation, as in PyTorch).

    Args: as :class:`Conv1d`, with ``kernel_size``, ``stride``, ``padding``, ``dilation`` an int or
    a 2-tuple (H, W).

    Shape:
        input (N, C_in, H, W) or (C_in, H, W) -> output (N, C_out, H_out, W_out), where per dim
        n_out = floor((n + 2·padding - dilation·(kernel_size - 1) - 1) / stride) + 1.

    Weights: ``weight`` (out_channels, in_channels/groups, kH, kW), ``bias`` (out_channels,);
    initialised as in :class:`Conv1d` with fan_in = in_channels/groups·kH·kW.

    Examples:
        >>> Conv2d(3, 16, 3, padding=1)(minidl.randn(8, 3, 32, 32)).shape
        (8, 16, 32, 32)
    """

    dims = 2


class Conv3d(_Conv):
    """3-d convolution over (N, C, D, H, W) volumes: y = W ⋆ x + b.

    Args: as :class:`Conv1d`, with per-dim arguments an int or a 3-tuple (D, H, W).

    Shape:
        input (N, C_in, D, H, W) or (C_in, D, H, W) -> output (N, C_out, D_out, H_out, W_out), with
        n_out as in :class:`Conv2d` per dim.

    Weights: ``weight`` (out_channels, in_channels/groups, kD, kH, kW), ``bias`` (out_channels,).

    Examples:
        >>> Conv3d(4, 8, (3, 3, 1))(minidl.randn(2, 4, 5, 6, 7)).shape
        (2, 8, 3, 4, 7)
    """

    dims = 3


class ConvTranspose1d(_ConvTranspose):
    """1-d transposed convolution (the adjoint of Conv1d with respect to its input).

    Args:
        in_channels, out_channels, kernel_size, stride, dilation, groups, bias, padding_mode: as
            :class:`Conv1d`.
        padding: ``dilation·(kernel_size - 1) - padding`` zeros are implicitly added to the input;
            an int or a tuple (no strings, as in PyTorch).
        output_padding: extra size added to one side of the output (smaller than stride or
            dilation), to pick among the input sizes a strided Conv1d maps to the same output.

    Shape:
        input (N, C_in, L) or (C_in, L) -> output (N, C_out, L_out), where
        L_out = (L - 1)·stride - 2·padding + dilation·(kernel_size - 1) + output_padding + 1.

    Weights: ``weight`` (in_channels, out_channels/groups, kL) from kaiming_uniform(a=√5) and
    ``bias`` (out_channels,) from U(-1/√fan_in, 1/√fan_in), fan_in = out_channels/groups·kL
    (PyTorch computes fan_in from weight dim 1).

    Examples:
        >>> ConvTranspose1d(16, 33, 3, stride=2)(minidl.randn(20, 16, 50)).shape
        (20, 33, 101)
    """

    dims = 1


class ConvTranspose2d(_ConvTranspose):
    """2-d transposed convolution (the adjoint of Conv2d with respect to its input).

    Args: as :class:`ConvTranspose1d`, with per-dim arguments an int or a 2-tuple (H, W).

    Shape:
        input (N, C_in, H, W) or (C_in, H, W) -> output (N, C_out, H_out, W_out), where per dim
        n_out = (n - 1)·stride - 2·padding + dilation·(kernel_size - 1) + output_padding + 1.

    Weights: ``weight`` (in_channels, out_channels/groups, kH, kW), ``bias`` (out_channels,).

    Examples:
        >>> layer = ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1)
        >>> layer(minidl.randn(1, 16, 12, 12)).shape
        (1, 8, 24, 24)
    """

    dims = 2


class ConvTranspose3d(_ConvTranspose):
    """3-d transposed convolution (the adjoint of Conv3d with respect to its input).

    Args: as :class:`ConvTranspose1d`, with per-dim arguments an int or a 3-tuple (D, H, W).

    Shape:
        input (N, C_in, D, H, W) or (C_in, D, H, W) -> output (N, C_out, D_out, H_out, W_out), with
        n_out as in :class:`ConvTranspose2d` per dim.

    Weights: ``weight`` (in_channels, out_channels/groups, kD, kH, kW), ``bias`` (out_channels,).

    Examples:
        >>> ConvTranspose3d(4, 2, 2, stride=2)(minidl.randn(1, 4, 3, 3, 3)).shape
        (1, 2, 6, 6, 6)
    """

    dims = 3
