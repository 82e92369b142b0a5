"""Loss functions with PyTorch's signatures; ``reduction`` is 'none', 'mean' or 'sum'.

Composed from existing ops where that is natural (mse, l1, smooth L1, Huber, nll, KL divergence,
BCE with logits, cross-entropy with class probabilities). Hand-written backward for stability and
speed: the fused softmax + cross-entropy (``SoftmaxCrossEntropy``) and BCE on probabilities (whose
logs PyTorch clamps at -100, where a composed backward would give 0 · inf = nan).

Deliberate differences from PyTorch: input and target of the pointwise losses must have the same
shape (PyTorch broadcasts them with a warning, which usually hides a bug); the deprecated
``size_average`` and ``reduce`` are not accepted, so the arguments after ``target`` (or ``weight``)
are keyword-only and a positional call written for PyTorch's signature fails instead of binding
wrongly; class weights, ``weight`` and ``pos_weight`` are constants (no gradient), as PyTorch's
cross-entropy and nll weights are.
"""
from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.autograd import FusedFunction
from minidl.kernels.cross_entropy import (softmax_cross_entropy_backward,
                                          softmax_cross_entropy_forward)
from minidl.ops.arithmetic import where
from minidl.ops.common import quiet
from minidl.ops.pointwise import softplus
from minidl.ops.reduction import log_softmax
from minidl.tensors import Tensor

REDUCTIONS = ("none", "mean", "sum")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _check_reduction(op: str, reduction: str, allowed=REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"{op}: reduction must be one of {allowed}, got {reduction!r}")


def _check_pair(op: str, input, target, reduction: str) -> None:
    """Both Tensors, floating point, of one shape and dtype; a known reduction."""
    _check_reduction(op, reduction, REDUCTIONS + (("batchmean",) if op == "kl_div" else ()))
    for name, value in (("input", input), ("target", target)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(value).__name__}")
        if value.dtype.kind != "f":
            raise TypeError(f"{op}: expected a floating point {name}, got dtype {value.dtype}")
    if input.shape != target.shape:
        raise ValueError(f"{op}: expected target of the input's shape {tuple(input.shape)}, got "
                         f"{tuple(target.shape)}")
    if input.dtype != target.dtype:
        raise TypeError(f"{op}: expected target of the input's dtype {input.dtype}, got "
                        f"{target.dtype}")


def _weight_array(op: str, weight, shape: tuple, like: Tensor, what: str = "weight"):
    """The raw array of an optional weight Tensor that must broadcast to ``shape``."""
    if weight is None:
        return None
    data = weight._data if isinstance(weight, Tensor) else weight
    try:
        np.broadcast_shapes(data.shape, shape)
    except ValueError:
        raise ValueError(f"{op}: {what} of shape {tuple(data.shape)} does not broadcast to the "
                         f"input's shape {tuple(shape)}") from None
    return data.astype(like.dtype, copy=False)


# ----- regression losses (composed) ---------------------------------------------------------------
def mse_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """ℓ = (x - y)²."""
    _check_pair("mse_loss", input, target, reduction)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """ℓ = |x - y|."""
    _check_pair("l1_loss", input, target, reduction)
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """ℓ = 0.5 d² / β if |d| < β else |d| - 0.5 β, d = x - y (plain L1 for β = 0)."""
    _check_pair("smooth_l1_loss", input, target, reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    diff = input - target
    size = diff.abs()
    return _reduce(where(size < beta, diff * diff * (0.5 / beta), size - 0.5 * beta), reduction)


def huber_loss(input: Tensor, target: Tensor, *, reduction: str = "mean",
               delta: float = 1.0) -> Tensor:
    """ℓ = 0.5 d² if |d| < δ else δ (|d| - 0.5 δ), d = x - y."""
    _check_pair("huber_loss", input, target, reduction)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    diff = input - target
    size = diff.abs()
    return _reduce(where(size < delta, diff * diff * 0.5, (size - 0.5 * delta) * delta), reduction)


def kl_div(input: Tensor, target: Tensor, *, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """ℓ = y (log y - x), or exp(y) (y - x) with ``log_target``; x holds log-probabilities.

    ``reduction='batchmean'`` divides the sum by the batch size (the true KL divergence); 'mean'
    divides by the number of elements, as PyTorch does.
    """
    _check_pair("kl_div", input, target, reduction)
    if log_target:
        pointwise = target.exp() * (target - input)
    else:
        positive = target._data > 0  # y log y -> 0 as y -> 0
        safe_log = where(positive, target, 1.0).log()
        pointwise = where(positive, target * (safe_log - input), 0.0)
    if reduction == "batchmean":
        total = pointwise.sum()
        return total / input.shape[0] if input.ndim > 0 else total
    return _reduce(pointwise, reduction)


# ----- binary classification ----------------------------------------------------------------------
class BinaryCrossEntropy(FusedFunction):
    """ℓ = -w (y max(log x, -100) + (1 - y) max(log(1 - x), -100));
    gx = gℓ w (x - y) / max(x (1 - x), 1e-12),  gy = gℓ w (log(1 - x) - log x).

    Hand-written for stability: the clamped logs have no finite composed gradient at x = 0 or 1.
    The second derivative comes from ``composed`` (finite away from x = 0 and 1).
    """

    @staticmethod
    def composed(state, xp, x, y, *, weight):
        loss = -(y * xp.maximum(xp.log(x), -100) + (1 - y) * xp.maximum(xp.log(1 - x), -100))
        return loss if weight is None else loss * weight

    @staticmethod
    def forward(ctx, x, y, *, weight):
        xp = ctx.xp
        with quiet(xp):
            log_x, log_rest = xp.log(x), xp.log1p(-x)
        ctx.save_for_backward(x, y, log_x, log_rest)
        ctx.weight = weight
        loss = -(y * xp.maximum(log_x, -100) + (1 - y) * xp.maximum(log_rest, -100))
        return loss if weight is None else loss * weight

    @staticmethod
    def backward(ctx, gl):
        x, y, log_x, log_rest = ctx.saved_tensors
        gl = gl if ctx.weight is None else gl * ctx.weight
        gx = gl * (x - y) / ctx.xp.maximum(x * (1 - x), 1e-12) if ctx.needs_input_grad[0] else None
        gy = gl * (log_rest - log_x) if ctx.needs_input_grad[1] else None
        return gx, gy


def binary_cross_entropy(input: Tensor, target: Tensor, weight=None, *,
                         reduction: str = "mean") -> Tensor:
    """ℓ = -w (y log x + (1 - y) log(1 - x)) for probabilities x in [0, 1], logs clamped at -100."""
    _check_pair("binary_cross_entropy", input, target, reduction)
    data = input._data
    if data.size and not bool(((data >= 0) & (data <= 1)).all()):
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1 "
                         f"(got values in [{float(data.min())}, {float(data.max())}])")
    weight = _weight_array("binary_cross_entropy", weight, input.shape, input)
    return _reduce(BinaryCrossEntropy.apply(input, target, weight=weight), reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight=None, *,
                                     reduction: str = "mean", pos_weight=None) -> Tensor:
    """ℓ = w ((1 - y) x + (1 + (p - 1) y) softplus(-x)) = -w (p y log σ(x) + (1 - y) log(1 - σ(x))).

    p is ``pos_weight``. Stable for any x: softplus never exponentiates a large positive number.
    """
    op = "binary_cross_entropy_with_logits"
    _check_pair(op, input, target, reduction)
    log_weight = 1.0
    if pos_weight is not None:
        pos_weight = Tensor(_weight_array(op, pos_weight, input.shape, input, "pos_weight"))
        log_weight = (pos_weight - 1.0) * target + 1.0
    loss = (1.0 - target) * input + log_weight * softplus(-input)
    if weight is not None:
        loss = loss * Tensor(_weight_array(op, weight, input.shape, input))
    return _reduce(loss, reduction)



# ----- multi-class classification -----------------------------------------------------------------
class SoftmaxCrossEntropy(FusedFunction):
    """ℓ_i = (1-ε) w_t (lse_i - x_it) + ε/C Σ_c w_c (lse_i - x_ic);
    gx_ic = gℓ_i ((1-ε) w_t (p_ic - [c = t]) + ε/C (W p_ic - w_c)), p = softmax(x), W = Σ w.

    Fused over rows (M, C), hand-written for stability (max subtracted before exp) and speed (one
    kernel pass each way; p is kept, so the backward needs no exp). Rows whose target is
    ``ignore_index`` give 0 and get no gradient; 'mean' divides by Σ w_t over the other rows.
    Differentiable again through ``composed``: ℓ_i = -Σ_c a_ic log p_ic with constant
    a_ic = [t valid] ((1-ε) w_t [c = t] + ε/C w_c).
    """

    @staticmethod
    def composed(state, xp, rows, *, target, weight, ignore_index, label_smoothing, reduction):
        array = backend.get_array_module(target)
        classes = rows.shape[1]
        log_probs = log_softmax(rows, 1)  # (M, C)
        valid = (target != ignore_index)[:, None]  # (M, 1)
        hot = array.where(valid[:, 0], target, 0)[:, None] == array.arange(classes)  # (M, C)
        coefficient = valid * state.weight * ((1 - label_smoothing) * hot
                                              + label_smoothing / classes)
        # the sign and 'mean''s divisor go into the constant, so the replay records three ops
        scale = -state.inverse if reduction == "mean" else -1.0
        weighted = log_probs * (coefficient * scale).astype(rows.dtype)  # (M, C)
        return xp.sum(weighted, axis=1) if reduction == "none" else xp.sum(weighted)

    @staticmethod
    def forward(ctx, rows, *, target, weight, ignore_index, label_smoothing, reduction):
        xp = ctx.xp
        kernel_weight = xp.ones(rows.shape[1], dtype=rows.dtype) if weight is None else weight
        loss, probs = softmax_cross_entropy_forward(rows, target, kernel_weight, ignore_index,
                                                    label_smoothing)
        ctx.save_for_backward(probs)
        ctx.target, ctx.weight, ctx.reduction = target, kernel_weight, reduction
        ctx.ignore_index, ctx.label_smoothing = ignore_index, label_smoothing
        if reduction == "none":
            return loss
        if reduction == "sum":
            return loss.sum()
        total = _target_weight_total(xp, target, weight, ignore_index)
        ctx.inverse = 1.0 / total if total else float("nan")  # all ignored: nan, as PyTorch
        return loss.sum() * rows.dtype.type(ctx.inverse)

    @staticmethod
    def backward(ctx, gl):
        (probs,) = ctx.saved_tensors
        if ctx.reduction == "none":
            grow = gl
        else:
            scale = gl * ctx.inverse if ctx.reduction == "mean" else gl
            grow = ctx.xp.broadcast_to(scale.astype(probs.dtype), probs.shape[:1])  # (M,)
        return softmax_cross_entropy_backward(probs, ctx.target, ctx.weight, ctx.ignore_index,
                                              ctx.label_smoothing, grow)


def _target_weight_total(xp, target, weight, ignore_index: int) -> float:
    """Σ w_t over the rows that are not ignored (their count without weights): 'mean''s divisor."""
    valid = target != ignore_index
    if weight is None:
        return float(xp.count_nonzero(valid))
    return float(weight[target[valid]].sum())


def cross_entropy(input: Tensor, target: Tensor, weight=None, *, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of logits ``input`` against class indices or class probabilities.

    Shape: input (C,) or (N, C, d1, ...); target of class indices () or (N, d1, ...) (integer),
    or of class probabilities of the input's shape (float). Output: a scalar, or the target's
    shape (indices) / the input's shape without C (probabilities) for ``reduction='none'``.

    With class indices, 'mean' is Σ w_t ℓ / Σ w_t over targets that are not ``ignore_index``, and
    label smoothing mixes in ε/C Σ_c w_c (-log p_c), as PyTorch. With probabilities y (smoothed to
    (1-ε) y + ε/C), ℓ = -Σ_c w_c y_c log p_c and 'mean' divides by N·d1·…
    """
    op = "cross_entropy"
    _check_reduction(op, reduction)
    weight = _class_weight(op, input, weight)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if isinstance(target, Tensor) and target.dtype.kind == "f" and target.shape == input.shape:
        return _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing)
    _check_class_target(op, input, target, ignore_index)
    flat = target._data.reshape(-1).astype("int64", copy=False)  # (M,)
    loss = SoftmaxCrossEntropy.apply(_class_rows(input), target=flat, weight=weight,
                                     ignore_index=ignore_index, label_smoothing=label_smoothing,
                                     reduction=reduction)
    return loss.reshape(target.shape) if reduction == "none" else loss


def _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing) -> Tensor:
    """ℓ = -Σ_c w_c y_c log softmax(x)_c over the class dim (composed)."""
    if target.dtype != input.dtype:
        raise TypeError(f"cross_entropy: expected class probabilities of the input's dtype "
                        f"{input.dtype}, got {target.dtype}")
    class_dim = 0 if input.ndim == 1 else 1
    classes = input.shape[class_dim]
    if label_smoothing > 0:
        target = target * (1.0 - label_smoothing) + label_smoothing / classes
    product = log_softmax(input, class_dim) * target
    if weight is not None:
        product = product * Tensor(weight.reshape((classes,) + (1,) * (input.ndim - class_dim - 1)))
    return _reduce(-product.sum(class_dim), reduction)


def nll_loss(input: Tensor, target: Tensor, weight=None, *, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """ℓ_i = -w_t x_it for log-probabilities x; 'mean' is Σ ℓ / Σ w_t over targets not ignored.

    Shape: input (C,) or (N, C, d1, ...), target () or (N, d1, ...) of class indices.
    """
    op = "nll_loss"
    _check_reduction(op, reduction)
    weight = _class_weight(op, input, weight)
    _check_class_target(op, input, target, ignore_index)
    xp = backend.get_array_module(input._data)
    flat = target._data.reshape(-1)  # (M,)
    valid = flat != ignore_index
    safe = xp.where(valid, flat, 0)
    row_weight = valid.astype(input.dtype) if weight is None else weight[safe] * valid  # (M,)
    loss = _class_rows(input)[xp.arange(flat.size), safe] * Tensor(-row_weight)  # (M,)
    if reduction == "none":
        return loss.reshape(target.shape)
    if reduction == "sum":
        return loss.sum()
    with quiet(xp):
        return loss.sum() / Tensor(row_weight.sum())


def _class_rows(input: Tensor) -> Tensor:
    """(C,) -> (1, C); (N, C, d1, ...) -> (N·d1·…, C), one row of class scores per prediction."""
    classes = input.shape[0 if input.ndim == 1 else 1]
    if input.ndim == 1:
        return input.reshape(1, classes)
    if input.ndim == 2:
        return input
    class_last = (0,) + tuple(range(2, input.ndim)) + (1,)
    return input.permute(class_last).reshape(-1, classes)  # (N·d1·…, C)


def _class_weight(op: str, input, weight):
    """Check the logits and the optional class weights (C,); the weights' array, or None."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected input to be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f" or input.ndim == 0:
        raise TypeError(f"{op}: expected a floating point input of shape (C,) or (N, C, d1, ...), "
                        f"got dtype {input.dtype} and shape {tuple(input.shape)}")
    classes = input.shape[0 if input.ndim == 1 else 1]
    if classes == 0:
        raise ValueError(f"{op}: input of shape {tuple(input.shape)} has no classes")
    if weight is None:
        return None
    data = weight._data if isinstance(weight, Tensor) else weight
    if data.shape != (classes,):
        raise ValueError(f"{op}: expected weight of shape (C,) = ({classes},), got "
                         f"{tuple(data.shape)}")
    return data.astype(input.dtype, copy=False)


def _check_class_target(op: str, input: Tensor, target, ignore_index: int) -> None:
    """Integer class indices in range, shaped () for input (C,), (N, d1, ...) for (N, C, d1, ...)."""
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: expected target to be a Tensor, got {type(target).__name__}")
    if target.dtype.kind not in "iu":
        also = (f" (or class probabilities of the input's shape {tuple(input.shape)})"
                if op == "cross_entropy" else "")
        raise TypeError(f"{op}: expected class indices of an integer dtype{also}, got target of "
                        f"dtype {target.dtype} and shape {tuple(target.shape)}")
    expected = () if input.ndim == 1 else (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"{op}: expected target of shape {expected} for input of shape "
                         f"{tuple(input.shape)}, got {tuple(target.shape)}")
    data, classes = target._data, input.shape[0 if input.ndim == 1 else 1]
    if data.size and (int(data.min()) < 0 or int(data.max()) >= classes):
        bad = data[(data != ignore_index) & ((data < 0) | (data >= classes))]
        if bad.size:
            raise IndexError(f"{op}: target {int(bad[0])} is out of bounds: expected 0 <= target < "
                             f"{classes} (or ignore_index={ignore_index})")
