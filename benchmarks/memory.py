"""Peak memory of a step, measured the same way for both engines: the process's resident set (RSS).

``step_peak`` runs a few extra steps after the timing and returns the RSS high-water mark during
them minus the RSS just before them (Linux: ``/proc/self/clear_refs`` resets the mark). Before that
it fixes glibc's mmap threshold at 64 KiB, so arrays freed between steps leave the RSS instead of
staying in malloc's heap; the weights, gradients and optimizer state that live between steps are
therefore in the baseline, and the number is what one step allocates on top of them (activations,
temporary buffers, new gradients). The timing is done before the threshold changes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h
PAGE = os.sysconf("SC_PAGE_SIZE")


def mib(nbytes: int) -> float:
    return nbytes / 2**20


def current_rss() -> int | None:
    """Resident bytes now (None without Linux's /proc)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * PAGE
    except OSError:
        return None


def growth_since(baseline: int | None) -> float | None:
    """MiB the resident set has grown since ``baseline`` (a ``current_rss()``)."""
    return None if baseline is None else mib(current_rss() - baseline)


def _high_water_mark() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def _release_freed_memory() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024)
    gc.collect()
    libc.malloc_trim(0)


def step_peak(run_steps) -> float | None:
    """MiB that ``run_steps()`` adds at its peak to the RSS it starts from (None off Linux/glibc)."""
    try:
        _release_freed_memory()
        before = current_rss()
        if before is None:
            return None
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # reset VmHWM to the current RSS
    except (OSError, AttributeError):  # no /proc (not Linux) or no mallopt (not glibc)
        return None
    run_steps()
    return mib(max(0, _high_water_mark() - before))
