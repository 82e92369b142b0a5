"""Pooling over 1, 2 or 3 trailing spatial dims: max, average and adaptive average.

One N-d implementation per kind: the input ``(N, C, *S)`` or unbatched ``(C, *S)`` is viewed as
planes ``(B, D, H, W)`` (B = N·C, missing spatial dims of size 1) and handed to the kernels in
``minidl.kernels.pooling``; the 1-d/2-d/3-d functions only fix the number of spatial dims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minidl import backend
from minidl.autograd import Function
from minidl.kernels.pooling import (
    avg_pool_backward,
    avg_pool_forward,
    max_pool_backward,
    max_pool_forward,
)
from minidl.kernels.windows import as_3d, ntuple, output_length
from minidl.ops.indexing import GetItem
from minidl.ops.linalg import matmul
from minidl.tensors import Tensor


@dataclass(frozen=True)
class Window:
    """Pooling geometry as 3-tuples (leading 1s/0s for 1-d and 2-d), and the plane shapes."""

    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    in_size: tuple  # (D, H, W)
    out_size: tuple  # (OD, OH, OW)
    lead: tuple  # (N, C) or (C,)
    dims: int

    def planes(self, size: tuple) -> tuple:
        return (math.prod(self.lead),) + size  # (B, D, H, W) or (B, OD, OH, OW)

    def output_shape(self) -> tuple:
        return self.lead + self.out_size[3 - self.dims :]


def _window(
    op: str, input: Tensor, dims: int, kernel_size, stride, padding, dilation, ceil_mode: bool
) -> Window:
    """Check the arguments and the input of a pooling op and work out its geometry."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    spatial = ", ".join("DHW"[3 - dims :])
    if input.ndim not in (dims + 1, dims + 2) or 0 in input.shape[input.ndim - dims - 1 :]:
        raise ValueError(
            f"{op}: expected input of shape (N, C, {spatial}) or (C, {spatial}) with "
            f"non-zero C, {spatial}, got {tuple(input.shape)}"
        )
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got dtype {input.dtype}")
    kernel = ntuple(kernel_size, dims, "kernel_size", op, 1)
    default_stride = stride is None or stride in ([], ())  # PyTorch's default: the kernel size
    stride = kernel if default_stride else ntuple(stride, dims, "stride", op, 1)
    padding = ntuple(padding, dims, "padding", op, 0)
    dilation = ntuple(dilation, dims, "dilation", op, 1)
    if any(p > k // 2 for k, p in zip(kernel, padding)):
        raise ValueError(
            f"{op}: padding {padding} should be at most half of the kernel size {kernel}"
        )
    in_size = tuple(input.shape[-dims:])
    out_size = tuple(
        output_length(*args, ceil_mode) for args in zip(in_size, kernel, stride, padding, dilation)
    )
    if min(out_size) < 1:
        raise ValueError(
            f"{op}: input spatial size {in_size} gives output size {out_size}: too small "
            f"for kernel_size={kernel}, stride={stride}, padding={padding}, "
            f"dilation={dilation}"
        )
    return Window(
        as_3d(kernel, 1, op),
        as_3d(stride, 1, op),
        as_3d(padding, 0, op),
        as_3d(dilation, 1, op),
        as_3d(in_size, 1, op),
        as_3d(out_size, 1, op),
        tuple(input.shape[:-dims]),
        dims,
    )


class MaxPool(Function):
    """y = max of each window, index = its flat position in the plane;  gx[index] += gy.

    Hand-written for speed: the forward keeps the argmax, the backward is one scatter
    (``MaxPoolGrad``, a Function, so the gradient is differentiable again).
    """

    @staticmethod
    def forward(ctx, x, window: Window):
        planes = x.reshape(window.planes(window.in_size))  # (B, D, H, W)
        y, index = max_pool_forward(
            planes, window.kernel, window.stride, window.padding, window.dilation, window.out_size
        )  # (B, OD, OH, OW) twice
        ctx.index, ctx.window, ctx.x_shape = index, window, x.shape
        return y.reshape(window.output_shape()), index.reshape(window.output_shape())

    @staticmethod
    def backward(ctx, gy, gindex):
        return MaxPoolGrad.apply(gy, index=ctx.index, window=ctx.window, x_shape=ctx.x_shape), None


class MaxPoolGrad(Function):
    """gx = gy scattered onto each window's argmax (overlaps add up);  ggy = ggx[index], a gather.

    The argmax is a constant of the graph: max pooling is piecewise linear in x.
    """

    @staticmethod
    def forward(ctx, gy, *, index, window: Window, x_shape: tuple):
        gx = max_pool_backward(gy.reshape(window.planes(window.out_size)), index, window.in_size)
        ctx.index, ctx.gy_shape = index, gy.shape
        return gx.reshape(x_shape)

    @staticmethod
    def backward(ctx, ggx):
        planes = ctx.index.shape[0]  # (B, OD, OH, OW) argmax per plane
        flat_index = ctx.index.reshape(planes, -1)  # (B, OD·OH·OW)
        rows = backend.get_array_module(flat_index).arange(planes)[:, None]  # (B, 1)
        picked = GetItem.apply(ggx.reshape(planes, -1), index=(rows, flat_index))
        return picked.reshape(ctx.gy_shape)


class AvgPool(Function):
    """y = Σ window / divisor;  gx = gy / divisor spread over each window (overlaps add up).

    Hand-written for speed (one kernel instead of a graph of slices); the backward is
    ``AvgPoolGrad``, whose own backward is this average pool again (the two are adjoint).
    """

    @staticmethod
    def forward(ctx, x, window: Window, count_include_pad: bool):
        planes = x.reshape(window.planes(window.in_size))  # (B, D, H, W)
        y = avg_pool_forward(
            planes, window.kernel, window.stride, window.padding, window.out_size, count_include_pad
        )  # (B, OD, OH, OW)
        ctx.window, ctx.x_shape, ctx.count_include_pad = window, x.shape, count_include_pad
        return y.reshape(window.output_shape())

    @staticmethod
    def backward(ctx, gy):
        return AvgPoolGrad.apply(gy, window=ctx.window, count_include_pad=ctx.count_include_pad,
                                 x_shape=ctx.x_shape), None


class AvgPoolGrad(Function):
    """gx = gy / divisor spread over each window: the adjoint of AvgPool, whose gradient it is."""

    @staticmethod
    def forward(ctx, gy, *, window: Window, count_include_pad: bool, x_shape: tuple):
        gx = avg_pool_backward(
            gy.reshape(window.planes(window.out_size)),
            window.kernel,
            window.stride,
            window.padding,
            window.in_size,
            count_include_pad,
        )
        ctx.window, ctx.count_include_pad = window, count_include_pad
        return gx.reshape(x_shape)

    @staticmethod
    def backward(ctx, ggx):
        return AvgPool.apply(ggx, ctx.window, count_include_pad=ctx.count_include_pad)


def _max_pool(op, dims, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    window = _window(op, input, dims, kernel_size, stride, padding, dilation, ceil_mode)
    output, indices = MaxPool.apply(input, window)
    return (output, indices) if return_indices else output


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over windows of the last dim: (N, C, L) or (C, L). Padding counts as -inf."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over windows of the last 2 dims: (N, C, H, W) or (C, H, W). Padding counts as -inf."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool3d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over windows of the last 3 dims: (N, C, D, H, W) or (C, D, H, W). Padding counts as
    -inf."""
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def _avg_pool(op, dims, input, kernel_size, stride, padding, ceil_mode, count_include_pad):
    window = _window(op, input, dims, kernel_size, stride, padding, 1, ceil_mode)
    return AvgPool.apply(input, window, count_include_pad=bool(count_include_pad))


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over windows of the last dim: (N, C, L) or (C, L), with PyTorch's divisor."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over windows of the last 2 dims: (N, C, H, W) or (C, H, W), with PyTorch's divisor.

    PyTorch's ``divisor_override`` is not supported.
    """
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad)


def avg_pool3d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over windows of the last 3 dims: (N, C, D, H, W) or (C, D, H, W), with PyTorch's
    divisor.

    PyTorch's ``divisor_override`` is not supported.
    """
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad)


def _averaging_matrix(length: int, out: int, dtype) -> np.ndarray:
    """(out, length): row i averages input positions [floor(i·L/out), ceil((i+1)·L/out))."""
    matrix = np.zeros((out, length), dtype=dtype)
    for i in range(out):
        start, end = (i * length) // out, -((-(i + 1) * length) // out)
        matrix[i, start:end] = 1 / (end - start)
    return matrix


def _adaptive_avg_pool(op: str, dims: int, input: Tensor, output_size) -> Tensor:
    """Composed: an adaptive average is separable, so it is one matmul per spatial dim with a
    constant averaging matrix (the gradient, the transposed matrix, comes from matmul's backward)."""
    _window(op, input, dims, 1, 1, 0, 1, False)  # checks the input
    sizes = (
        (output_size,) * dims
        if output_size is None or isinstance(output_size, int)
        else tuple(output_size)
    )
    if len(sizes) != dims or not all(s is None or (isinstance(s, int) and s > 0) for s in sizes):
        raise ValueError(
            f"{op}: output_size must be a positive int or None, or a tuple of {dims} "
            f"of them, got {output_size!r}"
        )
    output = input
    for axis, out in zip(range(input.ndim - dims, input.ndim), sizes):
        length = input.shape[axis]
        matrix = Tensor(_averaging_matrix(length, length if out is None else out, input.dtype))
        matrix = matrix.to(input.device)
        output = matmul(output.transpose(axis, -1), matrix.T).transpose(
            axis, -1
        )  # axis now out long
    return output


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """Mean over PyTorch's adaptive windows of the last dim: (N, C, L) or (C, L) -> (..., output_size)."""
    return _adaptive_avg_pool("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Mean over adaptive windows of the last 2 dims; an output_size entry None keeps that size."""
    return _adaptive_avg_pool("adaptive_avg_pool2d", 2, input, output_size)


def adaptive_avg_pool3d(input: Tensor, output_size) -> Tensor:
    """Mean over adaptive windows of the last 3 dims; an output_size entry None keeps that size."""
    return _adaptive_avg_pool("adaptive_avg_pool3d", 3, input, output_size)
