"""Which implementation a kernel call uses: the ``MINIDL_KERNELS`` switch and the array's backend.

``MINIDL_KERNELS=auto`` (default): Numba on CPU, CuPy on GPU. ``MINIDL_KERNELS=reference``: the
plain NumPy/CuPy array code that defines each kernel (for teaching and debugging).

Threads: a CPU kernel runs under one process-wide lock, so two Python threads never launch Numba
parallel loops at once. The ``workqueue`` layer (kernels/__init__.py) is not thread-safe: its
parallel loop releases the GIL, and a second launch meanwhile aborts the interpreter ("Concurrent
access has been detected"). Each kernel already spreads over every core, so little is lost.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading

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
    """The implementation for ``array``: ``reference`` when forced or for float16 (which Numba
    cannot compile), else ``gpu`` or ``cpu``.

    A compiled ``cpu`` version comes wrapped to run under the kernel lock; a CPU path that is the
    array-code reference (``cpu is reference``) launches no Numba loop and runs unlocked.
    """
    if _mode == "reference" or getattr(array, "dtype", None) == "float16":
        return reference  # Numba has no float16; the array code computes in it as NumPy does
    if is_gpu(array):
        return gpu
    return cpu if cpu is reference else _one_thread_at_a_time(cpu)


_kernel_lock = threading.RLock()  # reentrant: a kernel may call another kernel's dispatcher


def _release_after_fork() -> None:
    """A child forked while another thread held the lock would wait for it forever."""
    global _kernel_lock
    _kernel_lock = threading.RLock()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_release_after_fork)


@functools.cache
def _one_thread_at_a_time(kernel):
    """``kernel`` run under the kernel lock (memoised: one wrapper per kernel)."""

    @functools.wraps(kernel)
    def locked(*args, **kwargs):
        with _kernel_lock:
            return kernel(*args, **kwargs)

    return locked
