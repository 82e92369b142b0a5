"""Adagrad: per-coordinate learning rates from the sum of all past squared gradients."""
from __future__ import annotations

from minidl import backend
from minidl.optim.optimizer import Optimizer, check_non_negative
from minidl.tensors import Tensor


class Adagrad(Optimizer):
    r"""Adagrad (as ``torch.optim.Adagrad``).

    Update rule for each parameter ``p`` with gradient ``g`` at step ``t = 1, 2, ...``
    (``s`` starts at ``initial_accumulator_value``)::

        g = -g                                 if maximize
        g = g + weight_decay * p               if weight_decay != 0
        s = s + g * g
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate. Default: 1e-2.
        lr_decay: learning-rate decay per step. Default: 0.
        weight_decay: L2 penalty. Default: 0.
        initial_accumulator_value: starting value of the sum of squared gradients. Default: 0.
        eps: added to the denominator for numerical stability. Default: 1e-10.
        maximize: maximize the objective instead of minimizing it. Default: False.

    State per parameter: ``step`` (an int) and ``sum``, created for every parameter at
    construction (as PyTorch, so a fresh state_dict lists them); parameters of a group added
    later get theirs at their first step. Unlike PyTorch, which fills every ``sum`` with the
    constructor's value, a group's own ``initial_accumulator_value`` is honoured.

    Examples:
        >>> optimizer = Adagrad(model.parameters(), lr=0.1, lr_decay=1e-3)
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *,
                 maximize: bool = False):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for param in group["params"]:
                self._init_state(param._data, self.state[param], group)

    def _check_group(self, group: dict) -> None:
        check_non_negative(self, group, "lr", "lr_decay", "weight_decay",
                           "initial_accumulator_value", "eps")

    @staticmethod
    def _init_state(p, state: dict, group: dict) -> None:
        xp = backend.get_array_module(p)
        state["step"] = 0
        state["sum"] = Tensor(xp.full_like(p, group["initial_accumulator_value"]))

    def _update(self, p, g, state: dict, group: dict) -> None:
        xp = backend.get_array_module(p)
        if not state:
            self._init_state(p, state, group)
        state["step"] += 1
        if group["maximize"]:
            g = -g
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p
        total, work = state["sum"]._data, self._workspace(p)
        xp.multiply(g, g, out=work)
        total += work
        denom = xp.sqrt(total, out=work)
        denom += group["eps"]
        step = xp.divide(g, denom, out=work)
        step *= group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        p -= step
