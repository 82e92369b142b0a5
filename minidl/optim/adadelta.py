"""Adadelta: steps sized by the ratio of running RMS of past updates to that of past gradients."""
from __future__ import annotations

from minidl import backend
from minidl.optim.optimizer import Optimizer, check_non_negative
from minidl.tensors import Tensor


class Adadelta(Optimizer):
    r"""Adadelta (as ``torch.optim.Adadelta``; Zeiler 2012).

    Update rule for each parameter ``p`` with gradient ``g`` (``v``, ``u`` start at zero)::

        g = -g                                 if maximize
        g = g + weight_decay * p               if weight_decay != 0
        v = rho * v + (1 - rho) * g * g
        d = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * d * d
        p = p - lr * d

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: a factor on the update. Default: 1.0.
        rho: smoothing constant of both running averages. Default: 0.9.
        eps: keeps both square roots away from zero. Default: 1e-6.
        weight_decay: L2 penalty. Default: 0.
        maximize: maximize the objective instead of minimizing it (keyword-only). Default: False.

    State per parameter: ``step`` (an int), ``square_avg`` (v) and ``acc_delta`` (u).
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, *, maximize: bool = False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        check_non_negative(self, group, "lr", "eps", "weight_decay")
        if not 0 <= group["rho"] <= 1:
            raise ValueError(f"Adadelta: invalid rho {group['rho']!r} (expected 0 <= rho <= 1)")

    def _update(self, p, g, state: dict, group: dict) -> None:
        xp = backend.get_array_module(p)
        rho, eps = group["rho"], group["eps"]
        if not state:
            state["step"] = 0
            state["square_avg"] = Tensor(xp.zeros_like(p))
            state["acc_delta"] = Tensor(xp.zeros_like(p))
        state["step"] += 1
        if group["maximize"]:
            g = -g
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p
        square_avg, acc_delta = state["square_avg"]._data, state["acc_delta"]._data
        square_avg *= rho
        square_avg += (1 - rho) * g * g
        delta = xp.sqrt(acc_delta + eps) / xp.sqrt(square_avg + eps) * g
        acc_delta *= rho
        acc_delta += (1 - rho) * delta * delta
        p -= group["lr"] * delta
