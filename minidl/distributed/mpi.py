"""The MPI backend: collectives through mpi4py on host (NumPy) buffers.

mpi4py is imported here only when a process group asks for it, which also initialises MPI (under
``mpiexec`` each process learns its rank; started alone, it is a world of one). A CuPy array is
staged through the host (copied down, reduced, copied back), since the MPI wheel is not
CUDA-aware; a non-contiguous NumPy array through a contiguous copy.
"""
from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.distributed.work import ReduceOp, Work, copy_into, staged

INSTALL = 'pip install "minidl[dist]" (mpi4py and an MPI library from the mpich wheel)'


def mpi_module():
    """``mpi4py.MPI`` (initialising MPI on first use), with an error that says what to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise RuntimeError(f"the 'mpi' backend needs mpi4py and an MPI library: "
                           f"{INSTALL}") from error
    except RuntimeError as error:  # mpi4py installed but no MPI library to load
        raise RuntimeError(f"mpi4py could not load an MPI library ({error}): {INSTALL}") from error
    return MPI


class MPIGroup:
    """All processes of ``MPI.COMM_WORLD``, on a private duplicate of it (so a user's own mpi4py
    messages never match minidl's)."""

    name = "mpi"

    def __init__(self):
        self.MPI = mpi_module()
        self.comm = self.MPI.COMM_WORLD.Dup()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.ops = {ReduceOp.SUM: self.MPI.SUM, ReduceOp.AVG: self.MPI.SUM,
                    ReduceOp.PRODUCT: self.MPI.PROD, ReduceOp.MIN: self.MPI.MIN,
                    ReduceOp.MAX: self.MPI.MAX}

    # ----- collectives: each stages its buffers, starts (or runs) the MPI call, returns Work ----
    def all_reduce(self, array, op: ReduceOp, async_op: bool) -> Work:
        buffer = _host(array)
        finish = self._average(buffer, op) + staged(array, buffer)
        if async_op:
            return Work(self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, self.ops[op]), finish)
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, self.ops[op])
        return Work(None, finish)

    def broadcast(self, array, src: int, async_op: bool) -> Work:
        buffer = _host(array)
        finish = staged(array, buffer)
        if async_op:
            return Work(self.comm.Ibcast(buffer, root=src), finish)
        self.comm.Bcast(buffer, root=src)
        return Work(None, finish)

    def all_gather(self, outputs: list, array, async_op: bool) -> Work:
        send = _host(array)
        received = np.empty((self.size, *send.shape), send.dtype)  # (world, *shape)
        finish = [lambda: [copy_into(out, part) for out, part in zip(outputs, received)]]
        if async_op:
            return Work(self.comm.Iallgather(send, received), finish)
        self.comm.Allgather(send, received)
        return Work(None, finish)

    def reduce_scatter(self, output, inputs: list, op: ReduceOp, async_op: bool) -> Work:
        send = np.stack([backend.to_numpy(part) for part in inputs])  # (world, *shape)
        buffer = _host(output)
        finish = self._average(buffer, op) + staged(output, buffer)
        if async_op:
            return Work(self.comm.Ireduce_scatter_block(send, buffer, self.ops[op]), finish)
        self.comm.Reduce_scatter_block(send, buffer, self.ops[op])
        return Work(None, finish)

    def barrier(self) -> None:
        self.comm.Barrier()

    def all_gather_object(self, obj) -> list:
        return self.comm.allgather(obj)

    def broadcast_object(self, obj, src: int):
        return self.comm.bcast(obj, root=src)

    def destroy(self) -> None:
        self.comm.Free()

    def _average(self, buffer: np.ndarray, op: ReduceOp) -> list:
        """For AVG, the step that turns the reduced sum into the mean: ``x = Σ_r x_r / world``."""
        if op is not ReduceOp.AVG:
            return []
        return [lambda: np.divide(buffer, self.size, out=buffer)]


def _host(array) -> np.ndarray:
    """A contiguous host array with ``array``'s values: itself when it already is one."""
    if isinstance(array, np.ndarray):
        return np.ascontiguousarray(array)
    return np.ascontiguousarray(backend.to_numpy(array))
