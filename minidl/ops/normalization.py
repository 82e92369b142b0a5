"""Normalisation layers' functional forms: batch_norm, layer_norm (fused); group_norm (composed)."""

from __future__ import annotations

import math

from minidl import backend
from minidl.autograd import FusedFunction
from minidl.kernels.norms import (
    batch_norm_backward,
    batch_norm_forward,
    layer_norm_backward,
    layer_norm_forward,
)
from minidl.ops.tensor_namespace import tensor_namespace
from minidl.tensors import Tensor


def _normalized(xp, x, axes: tuple, eps: float):
    """x̂ = (x - μ)/sqrt(Var[x] + eps) over ``axes``, composed from ops (the norms' specification)."""
    centered = x - xp.mean(x, axis=axes, keepdims=True)
    return centered / xp.sqrt(xp.mean(centered * centered, axis=axes, keepdims=True) + eps)


def _affine(y, weight, bias, shape: tuple):
    """y·w + b with w and b reshaped to ``shape`` (either may be None)."""
    y = y if weight is None else y * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)


class LayerNorm(FusedFunction):
    """Per row of D = prod(normalized_shape) features:
    y = x̂·w + b, x̂ = (x - μ)/σ, σ = sqrt(Var[x] + eps);
    gx = (1/σ)·(gx̂ - mean(gx̂) - x̂·mean(gx̂·x̂)) with gx̂ = gy·w, gw = Σ gy·x̂, gb = Σ gy.

    Hand-written for speed: one node keeping x̂ and 1/σ instead of the composed graph's eight,
    computed by the kernels of minidl.kernels.norms. Differentiable again through ``composed``.
    """

    @staticmethod
    def composed(state, xp, x, weight, bias, count: int, eps: float):
        y = _normalized(xp, x, tuple(range(x.ndim - count, x.ndim)), eps)
        return _affine(y, weight, bias, tuple(x.shape[x.ndim - count:]))

    @staticmethod
    def forward(ctx, x, weight, bias, count: int, eps: float):
        D = math.prod(x.shape[x.ndim - count :])
        weight = None if weight is None else weight.reshape(D)
        bias = None if bias is None else bias.reshape(D)
        y, x_hat, rstd = layer_norm_forward(x.reshape(-1, D), weight, bias, eps)  # (R, D)
        ctx.save_for_backward(x_hat, rstd, weight)
        ctx.parameter_shape = x.shape[x.ndim - count :]
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, gy):
        x_hat, rstd, weight = ctx.saved_tensors
        gx, gw, gb = layer_norm_backward(gy.reshape(x_hat.shape), x_hat, rstd, weight)  # (R, D)
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        return (
            gx.reshape(gy.shape) if needs_x else None,
            gw.reshape(ctx.parameter_shape) if needs_w else None,
            gb.reshape(ctx.parameter_shape) if needs_b else None,
        )


def layer_norm(
    input: Tensor,
    normalized_shape,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """y = (x - E[x]) / sqrt(Var[x] + eps) · weight + bias over the trailing normalized_shape."""
    normalized_shape = (
        (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    )
    count = len(normalized_shape)
    if tuple(input.shape[input.ndim - count :]) != normalized_shape:
        raise RuntimeError(
            f"layer_norm: expected input with trailing shape {normalized_shape}, got "
            f"{tuple(input.shape)}"
        )
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != normalized_shape:
            raise RuntimeError(
                f"layer_norm: expected {name} of shape {normalized_shape}, got {tuple(value.shape)}"
            )
    return LayerNorm.apply(input, weight, bias, count=count, eps=eps)


class BatchNorm(FusedFunction):
    """Training mode, per channel c over the M values of every other dim:
    y = x̂·w + b, x̂ = (x - μ)/σ, σ = sqrt(Var[x] + eps);
    gx = (w/σ)·(gy - mean(gy) - x̂·mean(gy·x̂)), gw = Σ gy·x̂, gb = Σ gy.

    Hand-written for speed: one node whose backward needs only x̂ and 1/σ (the composed graph
    keeps about ten intermediates), computed by the kernels of minidl.kernels.norms. Updates the
    running statistics in place, if given, with the unbiased variance Var[x]·M/(M-1).
    Differentiable again through ``composed`` (which leaves the running statistics alone).
    """

    @staticmethod
    def composed(state, xp, x, weight, bias, running_mean, running_var, momentum, eps):
        y = _normalized(xp, x, (0,) + tuple(range(2, x.ndim)), eps)
        return _affine(y, weight, bias, (x.shape[1],) + (1,) * (x.ndim - 2))

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum: float, eps: float):
        N, C = x.shape[:2]
        y, x_hat, mean, variance = batch_norm_forward(
            x.reshape(N, C, -1), weight, bias, eps
        )  # (N, C, M)
        count = x.size // C
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += momentum * count / (count - 1) * variance
        ctx.save_for_backward(x_hat, 1 / ctx.xp.sqrt(variance + eps), weight)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, gy):
        x_hat, inv_std, weight = ctx.saved_tensors
        gx, gw, gb = batch_norm_backward(
            gy.reshape(x_hat.shape), x_hat, inv_std, weight
        )  # (N, C, M)
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        return (
            gx.reshape(gy.shape) if needs_x else None,
            gw if needs_w else None,
            gb if needs_b else None,
            None,
            None,
        )


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel (dim 1) of (N, C, *) with batch statistics (training) or the running ones.

    In training the running statistics, if given, are updated in place:
    running = (1 - momentum)·running + momentum·batch (the variance unbiased). In evaluation
    y = (x - running_mean) / sqrt(running_var + eps) · weight + bias, composed from array ops.
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected input of shape (N, C, *), got {tuple(input.shape)}")
    channels = input.shape[1]
    for name, value in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if value is not None and tuple(value.shape) != (channels,):
            raise ValueError(
                f"batch_norm: expected {name} of shape ({channels},) for input "
                f"{tuple(input.shape)}, got {tuple(value.shape)}"
            )
    if training:
        if input.numel() // max(channels, 1) <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, "
                f"got input of shape {tuple(input.shape)}"
            )
        return BatchNorm.apply(
            input,
            weight,
            bias,
            _array(running_mean),
            _array(running_var),
            momentum=momentum,
            eps=eps,
        )
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var are needed when not training")
    channel = (channels,) + (1,) * (input.ndim - 2)  # broadcasts against (N, C, *)
    output = (input - running_mean.reshape(channel)) / (running_var.reshape(channel) + eps).sqrt()
    return _affine(output, weight, bias, channel)


def _array(tensor: Tensor | None):
    return None if tensor is None else tensor._data


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """y = (x - E[x]) / sqrt(Var[x] + eps) · weight + bias, statistics over each group of
    C/num_groups channels (and all their positions) of each sample; weight and bias per channel.

    Composed from mean/sqrt, so its gradient comes from theirs.
    """
    if input.ndim < 2 or num_groups < 1 or input.shape[1] % num_groups:
        raise ValueError(
            f"group_norm: expected input of shape (N, C, *) with C divisible by "
            f"num_groups={num_groups}, got {tuple(input.shape)}"
        )
    batch, channels = input.shape[:2]
    grouped = input.reshape(
        batch, num_groups, channels // num_groups * math.prod(input.shape[2:])
    )  # (N, G, C/G·*)
    output = _normalized(tensor_namespace(backend.get_array_module(input._data)), grouped, (-1,), eps)
    return _affine(output.reshape(input.shape), weight, bias, (channels,) + (1,) * (input.ndim - 2))
