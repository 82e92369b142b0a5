"""``Optimizer``: parameter groups, per-parameter state, ``step``, ``zero_grad`` and state_dict.

Subclasses write one method, ``_update(p, g, state, group)``, on backend arrays: ``p`` is the
parameter's array (updated in place), ``g`` its gradient's array (never modified), ``state`` the
parameter's state dict and ``group`` its options. The array module comes from ``p``, so the same
code runs on NumPy and CuPy. No graph is built: ``step`` runs under ``no_grad``.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from minidl import backend
from minidl.autograd import enable_grad, no_grad
from minidl.nn.module import zero_grads
from minidl.tensors import Tensor


class Optimizer:
    """Base class of all optimizers (as ``torch.optim.Optimizer``).

    Args:
        params: an iterable of Tensors, of ``(name, Tensor)`` pairs (``named_parameters()``), or
            of dicts with a ``"params"`` entry and per-group options that override ``defaults``.
        defaults: the default options of every group.

    Attributes:
        param_groups: list of dicts, each with ``"params"`` (a list of Tensors) and its options.
        state: per-parameter state, ``{Tensor: {name: Tensor or number}}``.
    """

    def __init__(self, params, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params should be an iterable of Tensors or "
                            f"dicts, got a single Tensor of shape {tuple(params.shape)}")
        self._check_group(defaults)
        self.defaults = defaults
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict] = []
        self._workspaces: dict = {}  # (dtype, device) -> a flat scratch array, not state
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def _check_group(self, group: dict) -> None:
        """Raise ValueError for an option out of range (each optimizer states its own rules)."""

    def _update(self, p, g, state: dict, group: dict) -> None:
        """Update the array ``p`` in place from its gradient ``g`` (``state`` is updated too)."""
        raise NotImplementedError

    def _workspace(self, p):
        """A scratch array shaped like ``p`` for the update's temporaries.

        One flat array per dtype and device, as large as the largest parameter, is reused by every
        parameter and step: no allocation (and, for large arrays, no page faults) per update.
        """
        key = (p.dtype, backend.device_of(p))
        flat = self._workspaces.get(key)
        if flat is None or flat.size < p.size:
            flat = self._workspaces[key] = backend.get_array_module(p).empty(p.size, p.dtype)
        return flat[:p.size].reshape(p.shape)  # view (*p.shape)

    @no_grad()
    def step(self, closure=None):
        """Update every parameter that has a gradient; ``closure()`` re-evaluates the loss first."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    _check_grad(type(self).__name__, param)
                    self._update(param._data, param.grad._data, self.state[param], group)
                    param._mark_modified()  # a forward that saved the old value must not backward
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set them to None (default) or fill them with zeros."""
        zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own options (the missing ones come from defaults)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a param group must be a dict, got "
                            f"{type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, set):
            raise TypeError(f"{name}: params must be an ordered collection (a list), not a set, so "
                            "that the order of the state is the same in every run")
        params = [params] if isinstance(params, Tensor) else list(params)
        group = dict(param_group)
        if params and all(isinstance(p, tuple) for p in params):
            group["param_names"] = [p[0] for p in params]
            params = [p[1] for p in params]
        for param in params:
            if not isinstance(param, Tensor):
                raise TypeError(f"{name} can only optimize Tensors, but one of the params is "
                                f"{type(param).__name__}")
            if not param.is_leaf:
                raise ValueError(f"{name} can't optimize a non-leaf Tensor "
                                 f"(shape {tuple(param.shape)})")
        group["params"] = params
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        self._check_group(group)
        seen = {id(p) for other in self.param_groups for p in other["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def state_dict(self) -> dict:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [index, ...]}]}``.

        Parameters are replaced by their position across the groups (PyTorch's layout). State
        values are Tensors (the live buffers, as PyTorch) and plain numbers (``step``).
        """
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a :meth:`state_dict` (values may be Tensors, NumPy/CuPy arrays or torch tensors).

        Float arrays are copied to each parameter's device and dtype; ``step`` stays a number.
        """
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: the loaded state dict has {len(saved_groups)} parameter "
                             f"groups, the optimizer has {len(self.param_groups)}")
        for number, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}: loaded parameter group {number} has "
                                 f"{len(saved['params'])} parameters, the optimizer's has "
                                 f"{len(group['params'])}")
        params = {i: p for saved, group in zip(saved_groups, self.param_groups)
                  for i, p in zip(saved["params"], group["params"])}
        state = defaultdict(dict)
        for key, values in state_dict["state"].items():
            if int(key) not in params:
                raise ValueError(f"{name}: the loaded state names parameter {key}, the optimizer "
                                 f"has parameters 0..{len(params) - 1}")
            param = params[int(key)]
            state[param] = {k: _load_value(name, int(key), param, k, v) for k, v in values.items()}
        self.state = state  # only once everything is checked
        for saved, group in zip(saved_groups, self.param_groups):
            group.update({k: v for k, v in saved.items() if k != "params"})

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for number, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {number}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines + [")"])


def _load_value(optimizer: str, index: int, param: Tensor, key: str, value):
    """A loaded state value: ``step`` a number, arrays Tensors on ``param``'s device and dtype.

    A per-element buffer (exp_avg, momentum_buffer...) must have the parameter's shape: the
    update kernels index it by the parameter's elements.
    """
    if isinstance(value, Tensor):
        value = value._data
    if key == "step" or not hasattr(value, "shape"):
        return value.item() if hasattr(value, "item") else value
    array = value if backend.device_of(value) != backend.CPU else np.asarray(value)
    if array.ndim > 0 and tuple(array.shape) != tuple(param.shape):
        raise ValueError(f"{optimizer}: loaded state '{key}' of parameter {index} has shape "
                         f"{tuple(array.shape)}, the parameter has shape {tuple(param.shape)}")
    if array.dtype.kind not in "fiub":
        raise ValueError(f"{optimizer}: loaded state '{key}' of parameter {index} has dtype "
                         f"{array.dtype}, expected a number array")
    xp = backend.get_array_module(param._data)
    dtype = param.dtype if array.dtype.kind == "f" else array.dtype
    return Tensor(xp.array(backend.to_device(array, param.device), dtype=dtype, copy=True))


def _check_grad(optimizer: str, param: Tensor) -> None:
    """The update kernels index the gradient by the parameter's elements: same shape and dtype."""
    grad = param.grad
    if grad.shape != param.shape or grad.dtype != param.dtype:
        raise RuntimeError(f"{optimizer}.step: a parameter of shape {tuple(param.shape)} and dtype "
                           f"{param.dtype} has a .grad of shape {tuple(grad.shape)} and dtype "
                           f"{grad.dtype}")


def check_non_negative(optimizer: Optimizer, group: dict, *names: str) -> None:
    """Raise a ValueError naming the optimizer for each option in ``names`` that is negative."""
    for name in names:
        if not group[name] >= 0:
            raise ValueError(f"{type(optimizer).__name__}: invalid {name} {group[name]!r} "
                             f"(expected {name} >= 0)")
