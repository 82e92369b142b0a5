"""Matrix products."""
from __future__ import annotations

import math

from minidl.autograd import Function
from minidl.ops import reduction
from minidl.ops.common import reduce_like
from minidl.tensors import Tensor


class MatMul(Function):
    """z = a @ b (batched, broadcasting);  ga = gz @ bᵀ, gb = aᵀ @ gz, summed over broadcast batches.

    1-D operands are promoted to matrices (a row for ``a``, a column for ``b``) and the added dim is
    removed from the result, as PyTorch and NumPy do.
    """

    @staticmethod
    def forward(ctx, a, b):
        a2, b2 = _as_matrices(a, b)  # (..., M, K), (..., K, N)
        z2 = a2 @ b2  # (..., M, N)
        ctx.save_for_backward(a, b)
        ctx.z2_shape = z2.shape
        if a.ndim == 1 and b.ndim == 1:
            return z2.reshape(())
        if a.ndim == 1:
            return z2.squeeze(-2)
        return z2.squeeze(-1) if b.ndim == 1 else z2

    @staticmethod
    def backward(ctx, gz):
        a, b = ctx.saved_tensors
        xp = ctx.xp
        a2, b2 = _as_matrices(a, b)  # views
        gz2 = gz.reshape(ctx.z2_shape)  # (..., M, N)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = reduce_like(xp, gz2 @ xp.swapaxes(b2, -1, -2), (a2.shape, a2.dtype)).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = reduce_like(xp, xp.swapaxes(a2, -1, -2) @ gz2, (b2.shape, b2.dtype)).reshape(b.shape)
        return ga, gb


def _as_matrices(a, b):
    """1-D operands as matrices: a row (1, K) for ``a``, a column (K, 1) for ``b``."""
    return (a[None, :] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)


def matmul(input: Tensor, other: Tensor) -> Tensor:
    """Matrix product with PyTorch's rules for 1-D, 2-D and batched operands."""
    if not isinstance(input, Tensor) or not isinstance(other, Tensor):
        raise TypeError("matmul: both operands must be Tensors")
    a, b = input._data, other._data  # the arrays: this check runs on every product
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"matmul: both operands need at least 1 dim, got shapes "
                           f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != b.dtype:
        raise RuntimeError(f"matmul: expected both operands to have the same dtype, got "
                           f"{a.dtype} and {b.dtype}")
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise RuntimeError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be "
                           f"multiplied ({inner_a} != {inner_b})")
    return MatMul.apply(input, other)


class Linear(Function):
    """y = x Wᵀ + b;  gx = gy W, gW = gyᵀ x, gb = Σ gy (over all leading dims).

    Written by hand (not composed from matmul + add) for speed: one node, and every product is one
    2-D GEMM over all leading dims at once (a batched matmul would run one small GEMM per row).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        x2 = _rows(x)  # (rows, in)
        ctx.save_for_backward(x, weight)
        y = x2 @ weight.T  # (rows, out)
        if bias is not None:
            y += bias
        return y.reshape(x.shape[:-1] + (weight.shape[0],))  # (..., out)

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad
        gy2 = _rows(gy)  # (rows, out)
        gx = _unrows(gy2 @ weight, x.shape) if needs_x else None  # (..., in)
        gw = (gy2.T @ _rows(x)) if needs_w else None  # (out, rows) @ (rows, in)
        gb = gy2.sum(axis=0) if needs_b else None  # (out,)
        return gx, gw, gb


def _rows(a):
    """(..., n) -> (rows, n), also when some size is 0 (where reshape(-1, n) is ambiguous); a
    matrix as it is (under create_graph a reshape is a node, so none that changes nothing)."""
    return a if a.ndim == 2 else a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


def _unrows(a, shape: tuple):
    """(rows, n) -> ``shape``, the inverse of ``_rows``."""
    return a if a.shape == shape else a.reshape(shape)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Affine map ``input @ weight.T + bias`` over the last dim (F.linear)."""
    if input.ndim == 0 or input.shape[-1] != weight.shape[-1]:
        raise RuntimeError(f"linear: input of shape {tuple(input.shape)} does not fit a weight of "
                           f"shape {tuple(weight.shape)} (expected last dim {weight.shape[-1]})")
    if input.dtype != weight.dtype:
        raise RuntimeError(f"linear: input dtype {input.dtype} differs from weight dtype {weight.dtype}")
    return Linear.apply(input, weight, bias)


def vector_norm(input: Tensor, ord=2, dim=None, keepdim: bool = False) -> Tensor:
    """(Σ |x|^p)^(1/p) over ``dim`` (all dims by default), ``torch.linalg.vector_norm``: ord 2
    (the default), 1, inf, -inf, 0 (the count of non-zeros) or any other p. The 2-norm of a zero
    vector has a zero gradient, as PyTorch's (not 0/0)."""
    if ord == 2:
        return reduction.Std.apply(reduction.sum(input * input, dim, keepdim))  # a masked sqrt
    if ord == 1:
        return reduction.sum(input.abs(), dim, keepdim)
    if ord == math.inf:
        return reduction.amax(input.abs(), () if dim is None else dim, keepdim)
    if ord == -math.inf:
        return reduction.amin(input.abs(), () if dim is None else dim, keepdim)
    if ord == 0:
        return reduction.sum((input != 0).to(input.dtype), dim, keepdim)
    return reduction.sum(input.abs() ** ord, dim, keepdim) ** (1 / ord)


def norm(input: Tensor, p="fro", dim=None, keepdim: bool = False) -> Tensor:
    """``torch.norm``: the vector p-norm over ``dim``; "fro" (the default) is the 2-norm of all
    the elements in ``dim``."""
    return vector_norm(input, 2 if p == "fro" else p, dim, keepdim)

