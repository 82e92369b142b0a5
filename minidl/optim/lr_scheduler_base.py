"""``LRScheduler``: the base of the learning-rate schedulers of :mod:`minidl.optim.lr_scheduler`."""
from __future__ import annotations

from minidl.optim.optimizer import Optimizer


class LRScheduler:
    """Base class of the schedulers: subclasses write ``get_lr()`` (and ``_closed_form_lr()``).

    Args:
        optimizer: the optimizer whose learning rates are scheduled.
        last_epoch: index of the last epoch; -1 (default) starts the schedule and records each
            group's ``initial_lr``; a larger value resumes it (``initial_lr`` must be there).

    Attributes:
        base_lrs: each group's ``initial_lr``.
        last_epoch: the number of ``step()`` calls so far (0 after construction).
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            name = type(self).__name__
            raise TypeError(f"{name}: {type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        for index, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{type(self).__name__}: param_groups[{index}] has no 'initial_lr' "
                               f"to resume from last_epoch={last_epoch}; load the optimizer state")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """The step that construction takes: the schedule's value at ``last_epoch + 1``."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The learning rates for the current ``last_epoch`` (called by ``step()``)."""
        raise NotImplementedError

    def _closed_form_lr(self) -> list[float]:
        """The schedule at ``last_epoch`` computed from ``base_lrs`` alone."""
        return self.get_lr()

    def _current_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates that the last ``step()`` set."""
        return list(self._last_lr)

    def step(self) -> None:
        """Advance the schedule by one epoch (PyTorch's deprecated ``epoch`` argument is gone)."""
        self._step_count += 1
        self.last_epoch += 1
        self._set_lrs(self.get_lr())

    def _restart(self) -> None:
        """Jump to epoch 0 of the closed form (what SequentialLR does at a milestone)."""
        self.last_epoch = 0
        self._set_lrs(self._closed_form_lr())

    def _set_lrs(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = self._current_lrs()

    def state_dict(self) -> dict:
        """Every attribute except the optimizer (plain numbers, lists and dicts)."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)


def per_group(name: str, optimizer: Optimizer, value) -> list:
    """``value`` for every param group: a list or tuple must have one entry per group."""
    if not isinstance(value, (list, tuple)):
        return [value] * len(optimizer.param_groups)
    if len(value) != len(optimizer.param_groups):
        raise ValueError(f"{name} must have one value per param group: got {len(value)} values "
                         f"for {len(optimizer.param_groups)} groups")
    return list(value)
