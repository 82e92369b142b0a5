"""Keep freed memory in the process, so the next large array does not page-fault its way in.

Every op returns a fresh array, and a training step frees and re-allocates the same large
activations each time. glibc's malloc gives large blocks back to the OS on free (blocks over the
mmap threshold are unmapped; the heap top is trimmed), so each new activation faults its pages in
again: a step of the MNIST CNN (batch 64) took 75 ms that way and 42-48 ms with freed memory kept
(measured here, 2 cores; a (64, 32, 28, 28) float32 array is 1,600 page faults).

``keep_freed_memory`` raises glibc's mmap and trim thresholds once, at ``import minidl``, for the
whole process. The cost: memory freed by the process stays mapped (reused by the next allocation,
not returned to the OS), up to ``TRIM_THRESHOLD`` at the heap top. Skipped where the user already
tunes malloc (``MALLOC_*`` or ``GLIBC_TUNABLES`` in the environment) and off glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # mallopt parameters (glibc malloc.h)
MMAP_THRESHOLD = 256 << 20  # blocks up to 256 MiB come from the heap, whose memory is reused
TRIM_THRESHOLD = 1 << 30  # the heap keeps up to 1 GiB of free memory at its top
TOP_PAD = 64 << 20  # and grows by 64 MiB at a time (fewer brk calls)


def keep_freed_memory() -> bool:
    """Apply the thresholds above; True if glibc took them, False if skipped or unavailable."""
    if "GLIBC_TUNABLES" in os.environ or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                (M_TOP_PAD, TOP_PAD))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
