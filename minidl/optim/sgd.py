"""Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay."""
from __future__ import annotations

from minidl import backend
from minidl.optim.optimizer import Optimizer, check_non_negative
from minidl.tensors import Tensor


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with momentum (as ``torch.optim.SGD``).

    Update rule for each parameter ``p`` with gradient ``g`` at step ``t``::

        g = -g                        if maximize
        g = g + weight_decay * p      if weight_decay != 0
        if momentum != 0:
            b = g                                     at t = 1
            b = momentum * b + (1 - dampening) * g    after
            g = g + momentum * b      if nesterov, else  g = b
        p = p - lr * g

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate. Default: 1e-3.
        momentum: momentum factor. Default: 0.
        dampening: dampening of the momentum. Default: 0.
        weight_decay: L2 penalty. Default: 0.
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening 0). Default: False.
        maximize: maximize the objective instead of minimizing it. Default: False.

    State per parameter: ``momentum_buffer`` (only when momentum != 0).

    Examples:
        >>> optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> optimizer.zero_grad(); loss_fn(model(x), y).backward(); optimizer.step()
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        check_non_negative(self, group, "lr", "momentum", "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: Nesterov momentum requires momentum > 0 and dampening 0, got "
                             f"momentum={group['momentum']} and dampening={group['dampening']}")

    def _update(self, p, g, state: dict, group: dict) -> None:
        xp = backend.get_array_module(p)
        momentum, weight_decay, work = group["momentum"], group["weight_decay"], self._workspace(p)
        if group["maximize"]:
            g = -g
        if weight_decay != 0:
            g = g + weight_decay * p
        if momentum != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = Tensor(xp.array(g))  # a copy, also of a 0-d g
            else:
                buffer = state["momentum_buffer"]._data
                buffer *= momentum
                buffer += xp.multiply(g, 1 - group["dampening"], out=work)
            buffer = state["momentum_buffer"]._data
            if group["nesterov"]:
                g = xp.add(g, xp.multiply(buffer, momentum, out=work), out=work)
            else:
                g = buffer
        p -= xp.multiply(g, group["lr"], out=work)
