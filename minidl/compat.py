"""Names real PyTorch scripts use that have nothing to do in minidl, so those scripts run unchanged.

``compile`` returns the model (minidl has no compiler: documented as a no-op); ``inference_mode``
is ``no_grad`` (minidl has no separate inference tensors); ``accelerator`` answers for CUDA;
``unsupported_dtype`` makes PyTorch dtypes that NumPy lacks (bfloat16) into objects that name
themselves in an error wherever an array of them would be made.
"""
from __future__ import annotations

from types import SimpleNamespace

from minidl import backend
from minidl.autograd.grad_mode import _GradModeSwitch


def compile(model=None, **options):
    """``torch.compile``: returns ``model`` unchanged (also as a decorator, with or without options)."""
    if model is None:
        return lambda function: function
    return model


class inference_mode(_GradModeSwitch):
    """``torch.inference_mode(mode=True)``: no graph is recorded inside, as ``no_grad`` (context
    manager and decorator, also bare: ``@inference_mode``); ``inference_mode(False)`` records."""

    def __new__(cls, mode=True):
        if callable(mode):  # used bare as a decorator
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode: bool = True):
        self.mode = not mode


def _current_accelerator():
    return backend.Device("cuda") if backend.cuda_is_available() else None


accelerator = SimpleNamespace(is_available=backend.cuda_is_available,
                              current_accelerator=_current_accelerator)


class unsupported_dtype:
    """A PyTorch dtype minidl cannot hold: making an array of it raises a TypeError naming it."""

    def __init__(self, name: str, advice: str):
        self.name, self.advice = name, advice

    @property
    def dtype(self):  # NumPy reads this when asked for np.dtype(this)
        raise TypeError(f"minidl.{self.name} is not supported: {self.advice}")

    def __repr__(self) -> str:
        return f"minidl.{self.name}"
