"""Grad mode (is a graph being recorded?) and anomaly mode (check every value for NaN/inf).

Both are per thread, as in PyTorch: ``no_grad()`` in one thread leaves another thread's recording
alone, and a new thread starts with grad enabled and anomaly detection off.
"""
from __future__ import annotations

import functools
import threading


class _PerThreadFlag(threading.local):
    """``enabled`` (and ``tracer``), one value per thread: each thread starts at ``default``."""

    def __init__(self, default: bool):
        self.enabled = default
        self.tracer = None  # a callable that sees every op (minidl.onnx's export), else None


# Function.apply reads ``_GradMode`` on every op: one threading.local attribute read
_GradMode = _PerThreadFlag(True)
_AnomalyMode = _PerThreadFlag(False)


def is_grad_enabled() -> bool:
    return _GradMode.enabled


class _GradModeSwitch:
    """Set grad mode on entering, restore it on leaving; also a decorator."""

    mode = True

    def __enter__(self):
        self.previous = _GradMode.enabled
        _GradMode.enabled = self.mode
        return self

    def __exit__(self, *exc_info):
        _GradMode.enabled = self.previous

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            previous = _GradMode.enabled
            _GradMode.enabled = self.mode
            try:
                return fn(*args, **kwargs)
            finally:
                _GradMode.enabled = previous
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
        self.previous = _GradMode.enabled
        _GradMode.enabled = self.mode

    def __enter__(self):
        return self  # already switched by __init__; __exit__ restores what was there before it


def is_anomaly_enabled() -> bool:
    return _AnomalyMode.enabled


class set_detect_anomaly:
    """Check every forward and backward for NaN/inf and name the op and where it was created."""

    def __init__(self, mode: bool):
        self.previous = _AnomalyMode.enabled
        _AnomalyMode.enabled = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        _AnomalyMode.enabled = self.previous


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
        self.previous = _GradMode.tracer
        _GradMode.tracer = self.tracer
        return self

    def __exit__(self, *exc_info):
        _GradMode.tracer = self.previous
