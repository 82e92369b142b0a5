"""Copies between devices and dtypes, and clone; differentiable like any other op."""
from __future__ import annotations

from minidl import backend
from minidl.autograd import Function
from minidl.tensors import Tensor


class ToDevice(Function):
    """y = x on another device;  gx = gy moved back."""

    @staticmethod
    def forward(ctx, x, device):
        ctx.source = backend.device_of(x)
        return backend.to_device(x, device)

    @staticmethod
    def backward(ctx, gy):
        return ToDevice.apply(gy, ctx.source), None


class ToDtype(Function):
    """y = x cast to dtype;  gx = gy cast back."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.source = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, gy):
        return ctx.xp.astype(gy, ctx.source), None


class Clone(Function):
    """y = a copy of x;  gx = gy."""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, gy):
        return gy


def to_device(input: Tensor, device) -> Tensor:
    device = backend.Device(device)
    return input if input.device == device else ToDevice.apply(input, device)


def to_dtype(input: Tensor, dtype) -> Tensor:
    return input if input.dtype == dtype else ToDtype.apply(input, dtype)


def clone(input: Tensor) -> Tensor:
    return Clone.apply(input)
