"""Normalisation layers."""

from __future__ import annotations

from minidl import creation
from minidl.nn import init
from minidl.nn.checks import check_input
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.ops.normalization import batch_norm, group_norm, layer_norm


class _AffineNorm(Module):
    """What the normalisation layers share: an optional learnt ``weight`` (ones) and ``bias``
    (zeros) of one shape, created by ``_affine_parameters`` and initialised by reset_parameters."""

    def _affine_parameters(self, shape, weight: bool, bias: bool, device, dtype) -> None:
        for name, wanted in (("weight", weight), ("bias", bias)):
            value = Parameter(creation.empty(shape, dtype=dtype, device=device)) if wanted else None
            self.register_parameter(name, value)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)


class LayerNorm(_AffineNorm):
    """y = (x - E[x]) / sqrt(Var[x] + eps) · weight + bias over the trailing ``normalized_shape``.

    Shape:
        input (*, *normalized_shape) -> output of the same shape.
    """

    def __init__(
        self,
        normalized_shape,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.normalized_shape = (
            (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        )
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self._affine_parameters(self.normalized_shape, elementwise_affine,
                                elementwise_affine and bias, device, dtype)
        self.reset_parameters()

    def forward(self, input):
        check_input(self, input, ("...",) + self.normalized_shape, like=self.weight)
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class _BatchNorm(_AffineNorm):
    """Normalise each channel with the batch's statistics (training) or running ones (evaluation).

    y = (x - E[x]) / sqrt(Var[x] + eps) · weight + bias, per channel over every dim but 1.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance for stability.
        momentum: running = (1 - momentum)·running + momentum·batch; None for a cumulative
            moving average (momentum 1/num_batches_tracked).
        affine: learn ``weight`` (ones) and ``bias`` (zeros) of shape (C,).
        track_running_stats: keep ``running_mean`` (zeros), ``running_var`` (ones, updated with the
            unbiased batch variance) and ``num_batches_tracked``; without them, batch statistics
            are used in evaluation too.
        bias: with ``affine``, also learn ``bias`` (keyword-only, as in PyTorch).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self._affine_parameters(num_features, affine, affine and bias, device, dtype)
        if track_running_stats:
            self.register_buffer(
                "running_mean", creation.zeros(num_features, dtype=dtype, device=device)
            )
            self.register_buffer(
                "running_var", creation.ones(num_features, dtype=dtype, device=device)
            )
            self.register_buffer(
                "num_batches_tracked", creation.tensor(0, dtype=creation.int64, device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean._data[...] = 0
            self.running_var._data[...] = 1
            self.num_batches_tracked._data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        super().reset_parameters()

    def forward(self, input):
        spatial = ("L",) if self.dims == 1 else tuple("DHW"[3 - self.dims :])
        patterns = [("N", self.num_features) + spatial] + (
            [("N", self.num_features)] if self.dims == 1 else []
        )
        check_input(
            self, input, *patterns, like=self.weight if self.affine else self.running_mean
        )
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked._data += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.item())
        use_batch_stats = self.training or not self.track_running_stats
        return batch_norm(
            input,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            use_batch_stats,
            momentum,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) (arguments as in ``_BatchNorm``).

    Shape:
        input (N, C) or (N, C, L) -> output of the same shape.

    Examples:
        >>> BatchNorm1d(16)(minidl.randn(8, 16, 10)).shape
        (8, 16, 10)
    """

    dims = 1


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) (arguments as in ``_BatchNorm``).

    Shape:
        input (N, C, H, W) -> output of the same shape.

    Examples:
        >>> BatchNorm2d(16)(minidl.randn(8, 16, 5, 5)).shape
        (8, 16, 5, 5)
    """

    dims = 2


class BatchNorm3d(_BatchNorm):
    """Batch normalisation of (N, C, D, H, W) (arguments as in ``_BatchNorm``).

    Shape:
        input (N, C, D, H, W) -> output of the same shape.

    Examples:
        >>> BatchNorm3d(16)(minidl.randn(8, 16, 2, 5, 5)).shape
        (8, 16, 2, 5, 5)
    """

    dims = 3


class GroupNorm(_AffineNorm):
    """Normalise each sample over groups of channels: y = (x - E[x]) / sqrt(Var[x] + eps) · weight + bias.

    Args:
        num_groups: G; the C channels split into G groups of C/G, each normalised over its
            channels and all positions.
        num_channels: C.
        eps: added to the variance for stability.
        affine: learn per-channel ``weight`` (ones) and ``bias`` (zeros) of shape (C,).
        bias: with ``affine``, also learn ``bias`` (keyword-only, as in PyTorch).

    Shape:
        input (N, C, *) -> output of the same shape.

    Examples:
        >>> GroupNorm(4, 16)(minidl.randn(8, 16, 5, 5)).shape
        (8, 16, 5, 5)
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                f"num_groups ({num_groups})"
            )
        self.num_groups, self.num_channels, self.eps, self.affine = (
            num_groups,
            num_channels,
            eps,
            affine,
        )
        self._affine_parameters(num_channels, affine, affine and bias, device, dtype)
        self.reset_parameters()

    def forward(self, input):
        trailing = ("*",) * max(input.ndim - 2, 0) if hasattr(input, "ndim") else ()
        check_input(self, input, ("N", self.num_channels) + trailing, like=self.weight)
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )
