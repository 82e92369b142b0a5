"""The device plumbing of every kernel, in one place: which version runs, the array module, and
building and launching CUDA kernels. No other kernel module imports CuPy.

Which version: ``pick(array, reference, cpu=None, gpu=None)`` returns the function to call.
``MINIDL_KERNELS=auto`` (default) picks ``cpu`` (Numba) for a NumPy array and ``gpu`` (CuPy) for a
CuPy one; ``cpu=None`` says in code that the reference is the CPU path (it measured faster) and
``gpu=None`` that the reference's array code runs on CuPy as it is. ``MINIDL_KERNELS=reference``
(and float16, which Numba cannot compile) always picks the reference: the plain NumPy/CuPy array
code that defines each kernel, for teaching and debugging.

CUDA: ``cuda_kernel(source, name, dtype)`` builds a ``cupy.RawKernel`` once per (source, name,
dtype) with ``T`` typedef'd to the dtype's C type (the memoised builder of Chainer's
``backends/cuda.py``); ``launch`` and ``launch_rows`` run it with one thread per item or one block
per row. CuPy compiles the source on the first launch and caches the binary on disk.

Threads: a compiled CPU kernel runs under one process-wide lock, so two Python threads never
launch Numba parallel loops at once. The ``workqueue`` layer (kernels/__init__.py) is not
thread-safe: its parallel loop releases the GIL, and a second launch meanwhile aborts the
interpreter ("Concurrent access has been detected"). Each kernel already spreads over every core,
so little is lost.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading

import numpy as np

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


def pick(array, reference, cpu=None, gpu=None):
    """The implementation of a kernel for ``array`` (see the module docstring).

    A compiled ``cpu`` version comes wrapped to run under the kernel lock; the reference launches
    no Numba loop and runs unlocked. A CuPy random generator is told from a NumPy one the same way.
    """
    if _mode == "reference" or getattr(array, "dtype", None) == "float16":
        return reference  # Numba has no float16; the array code computes in it as NumPy does
    if is_gpu(array):
        return reference if gpu is None else gpu
    if cpu is None or cpu is reference:
        return reference
    return _one_thread_at_a_time(cpu)


# ----- the array module -----------------------------------------------------------------------
def is_gpu(array) -> bool:
    """True for a CuPy array (or generator), told apart without importing CuPy."""
    return type(array).__module__.startswith("cupy")


def cupy():
    """The ``cupy`` module, imported on first use (importing minidl touches no GPU)."""
    import cupy

    return cupy


def cupyx():
    """CuPy's extras (``cupyx.scatter_add``, ``cupyx.scipy.special``), imported on first use."""
    import cupyx.scipy.special

    return cupyx


def array_module(array):
    """``numpy`` or ``cupy``, whichever ``array`` belongs to: one array-code body serves both."""
    return cupy() if is_gpu(array) else np


# ----- CUDA kernels: built once, launched over a size -----------------------------------------
CUDA_TYPES = {"float32": "float", "float64": "double"}
THREADS = 256  # per block


def cuda_prelude(dtype) -> str:
    """What a kernel source expects before it: ``T`` as the C type of ``dtype``."""
    return f"typedef {CUDA_TYPES[np.dtype(dtype).name]} T;\n"


def cuda_kernel(source: str, name: str, dtype):
    """The ``cupy.RawKernel`` ``name`` of ``source`` for ``dtype`` (float32 or float64), built once.

    Raises a TypeError naming the kernel for any other dtype (float16 never gets here: ``pick``
    gives it the reference).
    """
    dtype = np.dtype(dtype).name
    if dtype not in CUDA_TYPES:
        raise TypeError(f"{name}: the CUDA kernel supports float32 and float64, got {dtype}")
    return _built(source, name, dtype)


@functools.cache
def _built(source: str, name: str, dtype: str):
    return cupy().RawKernel(cuda_prelude(dtype) + source, name)


def launch(kernel, size: int, *args) -> None:
    """Run ``kernel(*args)`` with one thread per item of ``size`` (nothing when ``size`` is 0).

    The grid is ⌈size / THREADS⌉ blocks, so a kernel guarding with ``if (i >= n) return`` and a
    grid-stride loop both see each item once.
    """
    if size:
        kernel((-(-size // THREADS),), (THREADS,), args)


def launch_rows(kernel, rows: int, *args, shared_mem: int = 0) -> None:
    """Run ``kernel(*args)`` with one block of THREADS threads per row (nothing for 0 rows)."""
    if rows:
        kernel((rows,), (THREADS,), args, shared_mem=shared_mem)


# ----- the kernel lock ------------------------------------------------------------------------
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
