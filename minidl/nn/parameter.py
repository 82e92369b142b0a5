"""``Parameter``: a leaf Tensor that a Module registers as one of its weights."""
from __future__ import annotations

from minidl.tensors import Tensor


class Parameter(Tensor):
    """A Tensor that requires grad by default and is listed by ``Module.parameters()``."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        array = data._data if isinstance(data, Tensor) else data
        super().__init__(array)
        self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
