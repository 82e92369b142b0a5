"""What every backend shares: the reduction names and ``Work``, a collective in flight.

A backend starts a collective on a contiguous buffer of its own kind (a host array for MPI, a
device array for NCCL) and hands back a :class:`Work` with the steps that finish it once the
communication is done: dividing by the world size for ``AVG``, copying a staged buffer back into
the tensor's own array. ``wait()`` runs them, so a tensor holds its result exactly when its
collective's ``wait()`` has returned, on every backend.
"""
from __future__ import annotations

import enum

from minidl import backend


class ReduceOp(enum.Enum):
    """How ``all_reduce`` and ``reduce_scatter`` combine the ranks' values (PyTorch's names)."""

    SUM = "sum"
    AVG = "avg"  # the sum divided by the world size; floating-point tensors only
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"


class Work:
    """A collective started with ``async_op=True`` (PyTorch's ``Work``).

    ``request`` is the backend's handle (anything with ``Wait()`` and ``Test()``, as an mpi4py
    Request) or None for a collective that has already completed; ``finish`` are the steps to run
    once it has: ``wait()`` runs them once. ``keep`` holds the arrays the communication reads
    and writes until then (a GPU's memory pool must not hand them out while a stream uses them).
    """

    def __init__(self, request, finish: list, keep: tuple = ()):
        self._request, self._finish, self._keep, self._done = request, finish, keep, False
        if request is None:
            self._complete()

    def wait(self, timeout=None) -> bool:
        """Block until the result is in the tensor (on a GPU: until the current stream is
        ordered after it, as PyTorch's NCCL ``wait``). ``timeout`` is accepted and unused:
        MPI has no cancellable collective. Returns True."""
        if not self._done:
            self._request.Wait()
            self._complete()
        return True

    def is_completed(self) -> bool:
        """Whether the collective has finished (never blocks; finishes it when it has)."""
        if not self._done and self._request.Test():
            self._complete()
        return self._done

    def _complete(self) -> None:
        for step in self._finish:
            step()
        self._keep, self._done = (), True


def copy_into(target, source) -> None:
    """``target[...] = source``, moving ``source`` to ``target``'s device first."""
    target[...] = backend.to_device(source, backend.device_of(target))


def staged(array, buffer) -> list:
    """The steps that copy a staging ``buffer`` back into ``array`` (none when they are one)."""
    return [] if buffer is array else [lambda: copy_into(array, buffer)]
