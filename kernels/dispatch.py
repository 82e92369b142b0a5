"""Which implementation a kernel call uses: the ``MINIDL_KERNELS`` switch and the array's backend.

``MINIDL_KERNELS=auto`` (default): Numba on CPU, CuPy on GPU. ``MINIDL_KERNELS=reference``: the
plain NumPy/CuPy array code that defines each kernel (for teaching and debugging).
"""
from __future__ import annotations

import contextlib
import os

MODES = ("auto", "reference")
_mode = os.environ.get("MINIDL_KERNELS", "auto")
if _mode not in MODES:
    raise ValueError(f"MINIDL_KERNELS must be one of {MODES}, got {_mode!r}")


def mode() -> str:
    return _mode


@contextlib.contextmanager
def use(new_mode: str):
    """Run a block with another kernel mode (tests compare ``auto`` with ``reference``)."""
    global _mode
    if new_mode not in MODES:
        raise ValueError(f"kernel mode must be one of {MODES}, got {new_mode!r}")
    previous, _mode = _mode, new_mode
    try:
        yield
    finally:
        _mode = previous


def is_gpu(array) -> bool:
    """True for a CuPy array, told apart without importing CuPy."""
    return type(array).__module__.startswith("cupy")


def pick(array, reference, cpu, gpu):
    """The implementation for ``array``: ``reference`` when forced, else ``gpu`` or ``cpu``."""
    if _mode == "reference":
        return reference
    return gpu if is_gpu(array) else cpu
