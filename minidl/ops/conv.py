"""Convolutions in 1, 2 and 3 dims, plain and transposed: one N-d Function each, on im2col + GEMM.

A convolution with weight W (O, C/G, *K) reads, for each output position, a window of the input.
im2col lays all windows of the batch out as a matrix col (C·prod(K), N·L) (L = output positions per
image), so the convolution is one GEMM per group: y[g] = W[g] @ col[g]. Its adjoint, col2im, adds
window entries back onto the pixels they came from. A transposed convolution is the same pair run
the other way round: its forward is a convolution's backward-data, its backward-data a convolution.
"""

from __future__ import annotations

import math

from minidl.autograd import Function
from minidl.kernels.im2col import col2im, im2col
from minidl.kernels.windows import ntuple, output_length
from minidl.tensors import Tensor


def _channels_major(xp, a, groups: int):
    """(N, C, *s) -> (G, C/G, N·L), the layout of a GEMM over the whole batch (a copy)."""
    N, C, L = a.shape[0], a.shape[1], math.prod(a.shape[2:])
    a = a.reshape(N, C, L).transpose(1, 0, 2)  # (C, N, L)
    return xp.ascontiguousarray(a).reshape(groups, C // groups, N * L)  # (G, C/G, N·L)


def _batch_major(xp, a, N: int, spatial: tuple, bias=None):
    """(G, C/G, N·L) -> (N, C, *spatial) + bias, contiguous: the inverse of ``_channels_major``.

    The bias is added in the same pass as the copy (one trip through memory instead of two).
    """
    C = a.shape[0] * a.shape[1]
    a = a.reshape(C, N, math.prod(spatial)).transpose(1, 0, 2)  # (N, C, L)
    out = xp.empty(a.shape, dtype=a.dtype)
    if bias is None:
        out[...] = a
    else:
        xp.add(a, bias.reshape(C, 1), out=out)
    return out.reshape(N, C, *spatial)  # (N, C, *spatial)


def _im2col(x, kernel, stride, padding, dilation, groups: int, output_size):
    """im2col of x (N, C, *size) as (G, C/G·prod(K), N·L): the matrix of a GEMM per group."""
    col = im2col(x, kernel, stride, padding, dilation, output_size)  # (C, *K, N, *out)
    return col.reshape(groups, x.shape[1] // groups * math.prod(kernel),
                       x.shape[0] * math.prod(output_size))


def _bias_grad(gy):
    return gy.sum(axis=(0,) + tuple(range(2, gy.ndim)))  # (O,)


class ConvNd(Function):
    """y[g] = W[g] @ col[g] + b, col = im2col(x);  gx = conv_transpose(gy, W), gW = ConvWeightGrad(x, gy),
    gb = Σ gy.

    col as (G, C/G·prod(K), N·L). The forward is one im2col and one GEMM per group, written by
    hand for speed. The backward is the two adjoint ops, each a Function (so it is differentiable
    again: a convolution, its transpose and its weight gradient are bilinear and each one's
    gradient is made of the other two); the forward's col is reused for gW on arrays.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, output_size, col=None):
        N, O, K = x.shape[0], weight.shape[0], weight.shape[2:]
        if col is None:  # else the caller (ConvTransposeNd's backward) made it
            col = _im2col(x, K, stride, padding, dilation, groups, output_size)
        w = weight.reshape(groups, O // groups, -1)  # (G, O/G, C/G·prod(K))
        y = _batch_major(ctx.xp, w @ col, N, output_size, bias)  # (G, O/G, N·L) -> (N, O, *out)
        ctx.save_for_backward(x, weight)
        ctx.col, ctx.geometry = col, dict(stride=stride, padding=padding, dilation=dilation,
                                          groups=groups)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        # on arrays, gy's (G, O/G, N·L) layout is made once for both products
        gy2 = None if isinstance(gy, Tensor) else _channels_major(ctx.xp, gy, ctx.geometry["groups"])
        gx = ConvTransposeNd.apply(gy, weight, None, output_size=x.shape[2:], x2=gy2,
                                   **ctx.geometry) if needs[0] else None
        gw = ConvWeightGrad.apply(x, gy, kernel=weight.shape[2:], col=ctx.col, gy2=gy2,
                                  **ctx.geometry) if needs[1] else None
        return gx, gw, _bias_grad(gy) if needs[2] else None


class ConvTransposeNd(Function):
    """y = col2im(W[g]ᵀ @ x[g]) + b;  gx = conv(gy, W), gW = ConvWeightGrad(gy, x), gb = Σ gy.

    The adjoint of ConvNd with respect to its input (weight (C_in, C_out/G, *K)), x as
    (G, C_in/G, N·L): ⟨gy, conv_transpose(x, W)⟩ = ⟨conv(gy, W), x⟩ gives both gradients.
    Written by hand for speed, on the same im2col/col2im pair.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, output_size, x2=None):
        N, C, *size = x.shape
        out_channels = weight.shape[1] * groups
        if x2 is None:  # else the caller (ConvNd's backward) made it
            x2 = _channels_major(ctx.xp, x, groups)  # (G, C/G, N·L)
        w = weight.reshape(groups, C // groups, -1)  # (G, C/G, O/G·prod(K))
        col = w.swapaxes(1, 2) @ x2  # (G, O/G·prod(K), N·L)
        col = col.reshape(out_channels, *weight.shape[2:], N, *size)  # (O, *K, N, *in)
        y = col2im(col, output_size, stride, padding, dilation)  # (N, O, *out)
        if bias is not None:
            y += bias.reshape((out_channels,) + (1,) * len(output_size))
        ctx.save_for_backward(x, weight)
        ctx.geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        needs, geometry = ctx.needs_input_grad, ctx.geometry
        # on arrays, im2col(gy) is made once for both products
        gcol = None if isinstance(gy, Tensor) else _im2col(gy, weight.shape[2:], geometry["stride"],
                                                           geometry["padding"], geometry["dilation"],
                                                           geometry["groups"], x.shape[2:])
        gx = ConvNd.apply(gy, weight, None, output_size=x.shape[2:], col=gcol,
                          **geometry) if needs[0] else None
        gw = ConvWeightGrad.apply(gy, x, kernel=weight.shape[2:], col=gcol, gy2=None,
                                  **geometry) if needs[1] else None
        return gx, gw, _bias_grad(gy) if needs[2] else None


class ConvWeightGrad(Function):
    """gW = ∂⟨gy, conv(x, W)⟩/∂W:  gW[g] = gy[g] @ col[g]ᵀ, col = im2col(x), bilinear in (x, gy).

    Backward, for ggW: ∂⟨ggW, gW⟩/∂x = conv_transpose(gy, ggW) and ∂/∂gy = conv(x, ggW).
    ``col`` (im2col of x) and ``gy2`` (gy as (G, O/G, N·L)) are the convolution's own when it
    has them (first order), else computed.
    """

    @staticmethod
    def forward(ctx, x, gy, *, kernel, stride, padding, dilation, groups, col, gy2):
        if col is None:
            col = _im2col(x, kernel, stride, padding, dilation, groups, gy.shape[2:])
        if gy2 is None:
            gy2 = _channels_major(ctx.xp, gy, groups)  # (G, O/G, N·L)
        gw = gy2 @ col.swapaxes(1, 2)  # (G, O/G, C/G·prod(K))
        ctx.save_for_backward(x, gy)
        ctx.geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        return gw.reshape(gy.shape[1], x.shape[1] // groups, *kernel)  # (O, C/G, *K)

    @staticmethod
    def backward(ctx, ggw):
        x, gy = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gx = ConvTransposeNd.apply(gy, ggw, None, output_size=x.shape[2:],
                                   **ctx.geometry) if needs[0] else None
        ggy = ConvNd.apply(x, ggw, None, output_size=gy.shape[2:],
                           **ctx.geometry) if needs[1] else None
        return gx, ggy


# ----- public functions (F.conv*d, F.conv_transpose*d): arguments checked once a call ------------
# A functional call checks its Tensors and normalises its arguments here; a layer normalises its
# arguments once at construction (conv_arguments), checks its input itself and calls convolution.

_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}
_KERNEL = {1: "kL", 2: "kH, kW", 3: "kD, kH, kW"}


def conv_arguments(op: str, dims: int, stride, padding, dilation) -> tuple:
    """(stride, padding, dilation) as tuples of ``dims`` ints; padding may stay ``"valid"`` (0) or
    ``"same"`` (pads d·(k-1) in total, the odd one on the high side, as PyTorch does)."""
    stride = ntuple(stride, dims, "stride", op, 1)
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(
                f"{op}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}"
            )
        if padding == "same" and any(s != 1 for s in stride):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions")
    else:
        padding = ntuple(padding, dims, "padding", op, 0)
    return stride, padding, ntuple(dilation, dims, "dilation", op, 1)


def transposed_arguments(op: str, dims: int, stride, padding, output_padding, dilation) -> tuple:
    """(stride, padding, output_padding, dilation) as tuples of ``dims`` ints (no strings)."""
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding={padding!r} is not supported (an int or a tuple)")
    return (ntuple(stride, dims, "stride", op, 1), ntuple(padding, dims, "padding", op, 0),
            ntuple(output_padding, dims, "output_padding", op, 0),
            ntuple(dilation, dims, "dilation", op, 1))


def _check_tensors(op: str, dims: int, input, weight, bias, groups: int, transposed: bool) -> int:
    """Validate ranks, channels, groups and dtypes; return the number of output channels."""
    spatial, kernel = _SPATIAL[dims], _KERNEL[dims]
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{op}: input and weight must be Tensors")
    if input.ndim not in (dims + 1, dims + 2):
        raise RuntimeError(
            f"{op}: expected input of shape (N, C, {spatial}) or (C, {spatial}), got "
            f"{tuple(input.shape)}"
        )
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    C = input.shape[-dims - 1]
    layout = f"(in, out/groups, {kernel})" if transposed else f"(out, in/groups, {kernel})"
    if weight.ndim != dims + 2 or 0 in weight.shape[2:]:
        raise RuntimeError(f"{op}: expected weight of shape {layout}, got {tuple(weight.shape)}")
    if C % groups:
        raise RuntimeError(f"{op}: input channels {C} are not divisible by groups={groups}")
    fits = weight.shape[0] == C if transposed else weight.shape[1] * groups == C
    if not fits:
        raise RuntimeError(
            f"{op}: expected weight of shape {layout} for input with {C} channels and "
            f"groups={groups}, got {tuple(weight.shape)}"
        )
    if not transposed and weight.shape[0] % groups:
        raise RuntimeError(
            f"{op}: out channels {weight.shape[0]} (weight's dim 0) are not divisible "
            f"by groups={groups}"
        )
    out_channels = weight.shape[1] * groups if transposed else weight.shape[0]
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise RuntimeError(
            f"{op}: expected bias of shape ({out_channels},), got {tuple(bias.shape)}"
        )
    dtypes = {t.dtype for t in (input, weight, bias) if t is not None}
    if len(dtypes) > 1:
        raise RuntimeError(
            f"{op}: expected input, weight and bias of one dtype, got input "
            f"{input.dtype}, weight {weight.dtype}"
            + (f", bias {bias.dtype}" if bias is not None else "")
        )
    return out_channels


def _check_output_size(op: str, output_size: tuple, size: tuple) -> None:
    if any(o <= 0 for o in output_size):
        raise RuntimeError(
            f"{op}: output size {output_size} is not positive for input of spatial size "
            f"{size}: the input is too small for this kernel, stride, padding and dilation"
        )


def _batched(function, input, dims: int, *args, **geometry):
    """``function.apply`` on ``input`` with a batch dim (added to an unbatched input, then
    removed)."""
    batched = input.ndim == dims + 2
    y = function.apply(input if batched else input.unsqueeze(0), *args, **geometry)
    return y if batched else y.squeeze(0)


def convolution(op, dims, input, weight, bias, stride, padding, dilation, groups) -> Tensor:
    """The convolution of checked Tensors with normalised arguments (``conv_arguments``)."""
    size, kernel = tuple(input.shape[-dims:]), tuple(weight.shape[2:])
    if padding == "same":
        padding, output_size = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation)), size
    else:
        padding = (0,) * dims if padding == "valid" else padding
        output_size = tuple(output_length(*args) for args in zip(size, kernel, stride, padding,
                                                                 dilation))
    _check_output_size(op, output_size, size)
    return _batched(ConvNd, input, dims, weight, bias, stride=stride, padding=padding,
                    dilation=dilation, groups=groups, output_size=output_size)


def transposed_convolution(op, dims, input, weight, bias, stride, padding, output_padding, groups,
                           dilation) -> Tensor:
    """The transposed convolution of checked Tensors with normalised arguments
    (``transposed_arguments``); output size (n - 1)·s - 2p + d·(k - 1) + output_padding + 1."""
    if any(q >= s and q >= d for q, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"{op}: output_padding {output_padding} must be smaller than either "
                         f"stride {stride} or dilation {dilation}")
    size, kernel = tuple(input.shape[-dims:]), tuple(weight.shape[2:])
    output_size = tuple(
        (n - 1) * s - 2 * p + d * (k - 1) + q + 1
        for n, k, s, p, d, q in zip(size, kernel, stride, padding, dilation, output_padding)
    )
    _check_output_size(op, output_size, size)
    return _batched(ConvTransposeNd, input, dims, weight, bias, stride=stride, padding=padding,
                    dilation=dilation, groups=groups, output_size=output_size)


def _conv(op, dims, input, weight, bias, stride, padding, dilation, groups) -> Tensor:
    _check_tensors(op, dims, input, weight, bias, groups, transposed=False)
    stride, padding, dilation = conv_arguments(op, dims, stride, padding, dilation)
    return convolution(op, dims, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(op, dims, input, weight, bias, stride, padding, output_padding, groups,
                    dilation) -> Tensor:
    _check_tensors(op, dims, input, weight, bias, groups, transposed=True)
    stride, padding, output_padding, dilation = transposed_arguments(
        op, dims, stride, padding, output_padding, dilation)
    return transposed_convolution(op, dims, input, weight, bias, stride, padding, output_padding,
                                  groups, dilation)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """1-d convolution (F.conv1d): input (N, C, L) or (C, L), weight (out, C/groups, kL)."""
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-d convolution (F.conv2d): input (N, C, H, W) or (C, H, W), weight (out, C/groups, kH, kW).

    Output size per spatial dim: floor((n + 2·padding - dilation·(k - 1) - 1) / stride) + 1;
    ``padding`` may be an int, a tuple, ``"valid"`` (0) or ``"same"`` (output size = input size).
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """3-d convolution (F.conv3d): input (N, C, D, H, W) or (C, D, H, W),
    weight (out, C/groups, kD, kH, kW)."""
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1) -> Tensor:
    """1-d transposed convolution (F.conv_transpose1d): weight (C, out/groups, kL)."""
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1) -> Tensor:
    """2-d transposed convolution (F.conv_transpose2d): weight (C, out/groups, kH, kW).

    Output size per spatial dim: (n - 1)·stride - 2·padding + dilation·(k - 1) + output_padding + 1.
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1) -> Tensor:
    """3-d transposed convolution (F.conv_transpose3d): weight (C, out/groups, kD, kH, kW)."""
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)
