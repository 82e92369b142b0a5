"""``minidl.cuda``: the calls real PyTorch scripts make about the GPU, answered through CuPy.

Nothing here imports CuPy unless a GPU is asked about, so importing minidl stays free of GPU work.
Seeding goes to minidl's one generator, which seeds the CPU and the CUDA streams together.
"""
from __future__ import annotations

from minidl import backend, random


def is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device (``torch.cuda.is_available``)."""
    return backend.cuda_is_available()


def device_count() -> int:
    """The number of CUDA devices (0 without CuPy or a GPU)."""
    return backend.cupy().cuda.runtime.getDeviceCount() if is_available() else 0


def current_device() -> int:
    """The index of the current CUDA device; an error naming the cause without one."""
    return backend.cupy().cuda.Device().id


def synchronize(device=None) -> None:
    """Wait for the GPU's queued work (a no-op without a GPU, so timing code runs on a CPU)."""
    if backend.cupy_loaded():
        backend.cupy().cuda.Device(0 if device is None else backend.Device(device).index or 0
                                   ).synchronize()


def manual_seed(seed: int) -> None:
    """Seed the CUDA stream: minidl has one generator for every device, so this seeds all."""
    random.manual_seed(seed)


manual_seed_all = manual_seed


def empty_cache() -> None:
    """Give CuPy's cached GPU blocks back to the driver (a no-op when no GPU was used)."""
    if backend.cupy_loaded():
        backend.cupy().get_default_memory_pool().free_all_blocks()
