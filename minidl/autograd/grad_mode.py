"""Grad mode (is a graph being recorded?) and anomaly mode (check every value for NaN/inf).

Both are per thread, as in PyTorch: ``no_grad()`` in one thread leaves another thread's recording
alone, and a new thread starts with grad enabled and anomaly detection off.
"""
from __future__ import annotations

import functools
import threading


class _ThreadModes(threading.local):
    """This thread's modes; each thread starts with grad on, anomaly detection off, no tracer.

    ``grad``: is a graph recorded; ``anomaly``: check every value for NaN/inf; ``tracer``: a
    callable that sees every op (``tracing``), else None. ``watched`` is ``anomaly or tracer``, kept
    in step by the setters, so an op that records nothing reads two attributes of one object.
    """

    def __init__(self):
        self.grad = True
        self.anomaly = False
        self.tracer = None
        self.watched = False

    def set_anomaly(self, mode: bool) -> None:
        self.anomaly = mode
        self.watched = mode or self.tracer is not None

    def set_tracer(self, tracer) -> None:
        self.tracer = tracer
        self.watched = self.anomaly or tracer is not None


# Function.apply reads this on every op: one threading.local lookup
_MODES = _ThreadModes()


def is_grad_enabled() -> bool:
    return _MODES.grad


class _GradModeSwitch:
    """Set grad mode on entering, restore it on leaving; also a decorator."""

    mode = True

    def __enter__(self):
        self.previous = _MODES.grad
        _MODES.grad = self.mode
        return self

    def __exit__(self, *exc_info):
        _MODES.grad = self.previous

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            previous = _MODES.grad
            _MODES.grad = self.mode
            try:
                return fn(*args, **kwargs)
            finally:
                _MODES.grad = previous
        return wrapper


class no_grad(_GradModeSwitch):
    """Build no graph inside (context manager or decorator)."""

    mode = False


class enable_grad(_GradModeSwitch):
    """Build the graph inside, even within ``no_grad``."""

    mode = True


class set_grad_enabled(_GradModeSwitch):
    """Turn graph recording on or off: as a call it takes effect at once (as in PyTorch)."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.previous = _MODES.grad
        _MODES.grad = self.mode

    def __enter__(self):
        return self  # already switched by __init__; __exit__ restores what was there before it


def is_anomaly_enabled() -> bool:
    return _MODES.anomaly


class set_detect_anomaly:
    """Check every forward and backward for NaN/inf and name the op and where it was created."""

    def __init__(self, mode: bool):
        self.previous = _MODES.anomaly
        _MODES.set_anomaly(bool(mode))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        _MODES.set_anomaly(self.previous)


class detect_anomaly(set_detect_anomaly):
    """Context manager: anomaly detection on inside."""

    def __init__(self):
        super().__init__(True)


class tracing:
    """Call ``tracer(function, args, kwargs, outputs)`` after every op run inside, whether or not
    its inputs require grad (``function`` is the Function class, ``args`` its positional
    arguments, Tensors among them, ``outputs`` a tuple of result Tensors). Grad recording is
    unchanged; this is how ``minidl.onnx.export`` sees the whole computation of a model."""

    def __init__(self, tracer):
        self.tracer = tracer

    def __enter__(self):
        self.previous = _MODES.tracer
        _MODES.set_tracer(self.tracer)
        return self

    def __exit__(self, *exc_info):
        _MODES.set_tracer(self.previous)
