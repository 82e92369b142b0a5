"""Loss modules: each holds its options (class weights as buffers) and calls its functional form.

Constructor arguments, defaults and buffer names follow PyTorch, except that the deprecated
``size_average`` and ``reduce`` are not accepted: arguments after ``weight`` are keyword-only, so a
positional call written for PyTorch's old signature fails loudly instead of binding wrongly.
Unlike PyTorch, ``extra_repr`` shows the options (``CrossEntropyLoss(reduction='sum', ...)``).
Errors for a mismatched input and target name the functional loss, the expected and actual shapes.

Examples:
    >>> criterion = CrossEntropyLoss(label_smoothing=0.1)
    >>> loss = criterion(minidl.randn(8, 10, requires_grad=True), minidl.randint(0, 10, (8,)))
    >>> loss.backward()
"""
from __future__ import annotations

from minidl.nn.module import Module
from minidl.ops import loss as F


class _Loss(Module):
    def __init__(self, *, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class _WeightedLoss(_Loss):
    """A loss with optional per-class weights, kept as the buffer ``weight`` (in the state_dict)."""

    def __init__(self, weight=None, *, reduction: str = "mean"):
        super().__init__(reduction=reduction)
        self.register_buffer("weight", weight)


class MSELoss(_Loss):
    """Mean squared error ℓ = (x - y)².

    Args:
        reduction: 'none' | 'mean' | 'sum' (default 'mean').

    Shape:
        input (*), target (*) (same shape) -> scalar, or (*) for 'none'.
    """

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error ℓ = |x - y|.

    Args:
        reduction: 'none' | 'mean' | 'sum' (default 'mean').

    Shape:
        input (*), target (*) (same shape) -> scalar, or (*) for 'none'.
    """

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """ℓ = 0.5 d² / β if |d| < β else |d| - 0.5 β, d = x - y.

    Args:
        reduction: 'none' | 'mean' | 'sum' (default 'mean').
        beta: where the loss turns from quadratic to linear (default 1.0; 0 gives L1).

    Shape:
        input (*), target (*) (same shape) -> scalar, or (*) for 'none'.
    """

    def __init__(self, *, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction=reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, beta={self.beta}"


class HuberLoss(_Loss):
    """ℓ = 0.5 d² if |d| < δ else δ (|d| - 0.5 δ), d = x - y.

    Args:
        reduction: 'none' | 'mean' | 'sum' (default 'mean').
        delta: where the loss turns from quadratic to linear (default 1.0).

    Shape:
        input (*), target (*) (same shape) -> scalar, or (*) for 'none'.
    """

    def __init__(self, *, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, delta={self.delta}"


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy of logits against class indices or class probabilities (fused, stable).

    Args:
        weight: optional class weights (C,).
        ignore_index: class-index targets equal to it give 0 and no gradient (default -100).
        reduction: 'none' | 'mean' | 'sum' (default 'mean'; with indices, a weighted mean over the
            targets not ignored).
        label_smoothing: ε in [0, 1]: the target mixes in ε/C of every class (default 0.0).

    Shape:
        input (C,) or (N, C, d1, ...); target () or (N, d1, ...) of class indices (integer), or
        class probabilities of the input's shape -> scalar, or the target's shape without C for
        'none'.
    """

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(weight, reduction=reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return (f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
                f"label_smoothing={self.label_smoothing}")


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood ℓ = -w_t x_t of log-probabilities x (e.g. from LogSoftmax).

    Args:
        weight: optional class weights (C,).
        ignore_index: targets equal to it give 0 and no gradient (default -100).
        reduction: 'none' | 'mean' | 'sum' (default 'mean': Σ ℓ / Σ w_t over targets not ignored).

    Shape:
        input (C,) or (N, C, d1, ...), target () or (N, d1, ...) of class indices -> scalar, or the
        target's shape for 'none'.
    """

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight, reduction=reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}"


class BCELoss(_WeightedLoss):
    """Binary cross-entropy ℓ = -w (y log x + (1 - y) log(1 - x)) of probabilities x (logs ≥ -100).

    Args:
        weight: optional weights, broadcast to the input's shape.
        reduction: 'none' | 'mean' | 'sum' (default 'mean').

    Shape:
        input (*) in [0, 1], target (*) (same shape) -> scalar, or (*) for 'none'.
    """

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """Sigmoid + binary cross-entropy, stable: ℓ = -w (p y log σ(x) + (1 - y) log(1 - σ(x))).

    Args:
        weight: optional weights, broadcast to the input's shape.
        reduction: 'none' | 'mean' | 'sum' (default 'mean').
        pos_weight: optional weight p of positive examples, broadcast along the last dim (classes).

    Shape:
        input (*) logits, target (*) (same shape) -> scalar, or (*) for 'none'.
    """

    def __init__(self, weight=None, *, reduction: str = "mean", pos_weight=None):
        super().__init__(weight, reduction=reduction)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence ℓ = y (log y - x) of log-probabilities x from target y.

    Args:
        reduction: 'none' | 'batchmean' | 'mean' | 'sum' (default 'mean', as PyTorch; 'batchmean'
            is the true KL divergence: the sum divided by the batch size).
        log_target: the target holds log-probabilities (default False).

    Shape:
        input (*), target (*) (same shape) -> scalar, or (*) for 'none'.
    """

    def __init__(self, *, reduction: str = "mean", log_target: bool = False):
        super().__init__(reduction=reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, log_target={self.log_target}"
