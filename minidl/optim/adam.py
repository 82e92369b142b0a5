"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""
from __future__ import annotations

from minidl import backend
from minidl.kernels.optim import adam_update
from minidl.optim.optimizer import Optimizer, check_non_negative
from minidl.tensors import Tensor


class Adam(Optimizer):
    r"""Adam (as ``torch.optim.Adam``), optionally AMSGrad and decoupled weight decay.

    Update rule for each parameter ``p`` with gradient ``g`` at step ``t = 1, 2, ...``
    (``m``, ``v``, ``v_max`` start at zero)::

        g = -g                               if maximize
        p = p * (1 - lr * weight_decay)      if decoupled_weight_decay (AdamW)
        g = g + weight_decay * p             otherwise, if weight_decay != 0
        m = m + (1 - beta1) * (g - m)        (lerp: beta1 * m + (1 - beta1) * g)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v); v = v_max     if amsgrad
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate. Default: 1e-3.
        betas: decay rates of the moving averages of the gradient and its square.
            Default: (0.9, 0.999).
        eps: added to the denominator for numerical stability. Default: 1e-8.
        weight_decay: weight decay (L2 penalty, or decoupled with ``decoupled_weight_decay``).
            Default: 0.
        amsgrad: use the maximum of the past squared-gradient averages (AMSGrad). Default: False.
        maximize: maximize the objective instead of minimizing it. Default: False.
        decoupled_weight_decay: shrink the weights directly, as AdamW. Default: False.

    State per parameter: ``step`` (an int; PyTorch keeps a float tensor), ``exp_avg``,
    ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``.

    Examples:
        >>> optimizer = Adam(model.parameters(), lr=1e-3)
        >>> optimizer.zero_grad(); loss_fn(model(x), y).backward(); optimizer.step()
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *,
                 maximize: bool = False, decoupled_weight_decay: bool = False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        check_non_negative(self, group, "lr", "eps", "weight_decay")
        for index, beta in enumerate(group["betas"]):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{type(self).__name__}: invalid beta parameter at index {index}: "
                                 f"{beta!r} (expected 0 <= beta < 1)")

    def _update(self, p, g, state: dict, group: dict) -> None:
        xp = backend.get_array_module(p)
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = Tensor(xp.zeros_like(p))
            state["exp_avg_sq"] = Tensor(xp.zeros_like(p))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = Tensor(xp.zeros_like(p))
        state["step"] += 1
        step = state["step"]
        if group["maximize"]:
            g = -g
        if weight_decay != 0 and group["decoupled_weight_decay"]:
            p *= 1 - lr * weight_decay
        elif weight_decay != 0:
            g = g + weight_decay * p
        adam_update(
            p, g, state["exp_avg"]._data, state["exp_avg_sq"]._data,
            state["max_exp_avg_sq"]._data if group["amsgrad"] else None,
            lr=lr, beta1=beta1, beta2=beta2, eps=group["eps"], step=step,
            work=self._workspace(p),
        )


class AdamW(Adam):
    r"""Adam with decoupled weight decay (as ``torch.optim.AdamW``): ``Adam(...,
    decoupled_weight_decay=True)`` with ``weight_decay`` defaulting to 1e-2.

    The weight decay shrinks the weights, ``p = p * (1 - lr * weight_decay)``, before the Adam
    step and never enters the moment estimates; see :class:`Adam` for the rest of the rule.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate. Default: 1e-3.
        betas: decay rates of the moving averages of the gradient and its square.
            Default: (0.9, 0.999).
        eps: added to the denominator for numerical stability. Default: 1e-8.
        weight_decay: decoupled weight decay coefficient. Default: 1e-2.
        amsgrad: use the maximum of the past squared-gradient averages (AMSGrad). Default: False.
        maximize: maximize the objective instead of minimizing it. Default: False.

    Examples:
        >>> optimizer = AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
