"""RMSprop: divide the gradient by a running root mean square of its recent values."""
from __future__ import annotations

from minidl import backend
from minidl.optim.optimizer import Optimizer, check_non_negative
from minidl.tensors import Tensor


class RMSprop(Optimizer):
    r"""RMSprop (as ``torch.optim.RMSprop``), optionally centered and with momentum.

    Update rule for each parameter ``p`` with gradient ``g`` (``v``, ``a``, ``b`` start at zero)::

        g = -g                                if maximize
        g = g + weight_decay * p              if weight_decay != 0
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            a = a + (1 - alpha) * (g - a)     (lerp: running mean of g)
            d = sqrt(v - a * a) + eps
        else:
            d = sqrt(v) + eps
        if momentum > 0:
            b = momentum * b + g / d;  p = p - lr * b
        else:
            p = p - lr * g / d

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate. Default: 1e-2.
        alpha: smoothing constant of the running average of the squared gradient. Default: 0.99.
        eps: added to the denominator for numerical stability. Default: 1e-8.
        weight_decay: L2 penalty. Default: 0.
        momentum: momentum factor. Default: 0.
        centered: normalise by an estimate of the gradient's variance instead of its second
            moment. Default: False.
        maximize: maximize the objective instead of minimizing it (keyword-only here; PyTorch
            also accepts it by position after ``foreach``). Default: False.

    State per parameter: ``step`` (an int), ``square_avg``, ``momentum_buffer`` (momentum > 0)
    and ``grad_avg`` (centered).

    Examples:
        >>> optimizer = RMSprop(model.parameters(), lr=1e-3, momentum=0.9, centered=True)
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        check_non_negative(self, group, "lr", "eps", "momentum", "weight_decay", "alpha")

    def _update(self, p, g, state: dict, group: dict) -> None:
        xp = backend.get_array_module(p)
        alpha, momentum, weight_decay = group["alpha"], group["momentum"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["square_avg"] = Tensor(xp.zeros_like(p))
            if momentum > 0:
                state["momentum_buffer"] = Tensor(xp.zeros_like(p))
            if group["centered"]:
                state["grad_avg"] = Tensor(xp.zeros_like(p))
        state["step"] += 1
        if group["maximize"]:
            g = -g
        if weight_decay != 0:
            g = g + weight_decay * p
        square_avg, work = state["square_avg"]._data, self._workspace(p)
        square_avg *= alpha
        xp.multiply(g, 1 - alpha, out=work)
        work *= g
        square_avg += work
        if group["centered"]:
            grad_avg = state["grad_avg"]._data
            xp.subtract(g, grad_avg, out=work)
            work *= 1 - alpha
            grad_avg += work  # lerp: a + (1 - alpha) * (g - a)
            xp.multiply(grad_avg, grad_avg, out=work)
            xp.subtract(square_avg, work, out=work)
            denom = xp.sqrt(work, out=work)
        else:
            denom = xp.sqrt(square_avg, out=work)
        denom += group["eps"]
        step = xp.divide(g, denom, out=work)
        if momentum > 0:
            buffer = state["momentum_buffer"]._data
            buffer *= momentum
            buffer += step
            step = xp.multiply(buffer, group["lr"], out=work)
        else:
            step *= group["lr"]
        p -= step
