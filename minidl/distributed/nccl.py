"""The NCCL backend: collectives on CuPy arrays through ``cupy.cuda.nccl``, set up over MPI.

Rank 0 makes the NCCL id and MPI broadcasts it; each rank then opens its communicator on GPU
``rank % device count``. Host (NumPy) tensors, objects and barriers go over MPI, so one process
group serves a model on the GPU and its metrics on the host (PyTorch's ``"cpu:gloo,cuda:nccl"``).

Ordering follows PyTorch: a collective runs on the group's own stream after the work already
queued on the current stream (an event), and ``Work.wait()`` makes the current stream wait for
it, so the host is not blocked and a backward's kernels can overlap the communication.
"""
from __future__ import annotations

import importlib

import numpy as np

from minidl import backend
from minidl.distributed.mpi import MPIGroup
from minidl.distributed.work import ReduceOp, Work, copy_into, staged


class NCCLGroup:
    """All processes, with an NCCL communicator on each one's GPU and MPI for everything else."""

    name = "nccl"

    def __init__(self):
        self.cp = backend.cupy()  # the error says what to install, or that there is no GPU
        self.nccl = importlib.import_module(self.cp.__name__ + ".cuda.nccl")
        if not self.nccl.available:
            raise RuntimeError("the 'nccl' backend needs the NCCL library, which CuPy could not "
                               "load: pip install nvidia-nccl-cu12 (or use backend='mpi')")
        self.host = MPIGroup()
        self.rank, self.size = self.host.rank, self.host.size
        unique_id = self.host.broadcast_object(
            self.nccl.get_unique_id() if self.rank == 0 else None, src=0)
        self.device = self.rank % self.cp.cuda.runtime.getDeviceCount()
        with self.cp.cuda.Device(self.device):
            self.comm = self.nccl.NcclCommunicator(self.size, unique_id, self.rank)
            self.stream = self.cp.cuda.Stream(non_blocking=True)
        nccl = self.nccl
        self.ops = {ReduceOp.SUM: nccl.NCCL_SUM, ReduceOp.AVG: nccl.NCCL_AVG,
                    ReduceOp.PRODUCT: nccl.NCCL_PROD, ReduceOp.MIN: nccl.NCCL_MIN,
                    ReduceOp.MAX: nccl.NCCL_MAX}
        self.types = {"b": nccl.NCCL_INT8, "B": nccl.NCCL_UINT8, "i": nccl.NCCL_INT32,
                      "I": nccl.NCCL_UINT32, "l": nccl.NCCL_INT64, "L": nccl.NCCL_UINT64,
                      "q": nccl.NCCL_INT64, "Q": nccl.NCCL_UINT64, "e": nccl.NCCL_FLOAT16,
                      "f": nccl.NCCL_FLOAT32, "d": nccl.NCCL_FLOAT64}

    # ----- collectives: host arrays go to MPI, device arrays to NCCL ------------------------------
    def all_reduce(self, array, op: ReduceOp, async_op: bool) -> Work:
        if isinstance(array, np.ndarray):
            return self.host.all_reduce(array, op, async_op)
        return self._in_place("all_reduce", array, async_op, lambda pointer, count, kind, stream:
                              self.comm.allReduce(pointer, pointer, count, kind, self.ops[op],
                                                  stream))

    def broadcast(self, array, src: int, async_op: bool) -> Work:
        if isinstance(array, np.ndarray):
            return self.host.broadcast(array, src, async_op)
        return self._in_place("broadcast", array, async_op, lambda pointer, count, kind, stream:
                              self.comm.broadcast(pointer, pointer, count, kind, src, stream))

    def all_gather(self, outputs: list, array, async_op: bool) -> Work:
        if isinstance(array, np.ndarray):
            return self.host.all_gather(outputs, array, async_op)
        send = self._device_buffer("all_gather", array)
        with self.cp.cuda.Device(self.device):
            received = self.cp.empty((self.size, *send.shape), send.dtype)  # (world, *shape)
        kind = self.types[send.dtype.char]
        finish = [lambda: [copy_into(out, part) for out, part in zip(outputs, received)]]
        return self._launch(lambda stream: self.comm.allGather(
            send.data.ptr, received.data.ptr, send.size, kind, stream), finish, async_op,
            (send, received))

    def reduce_scatter(self, output, inputs: list, op: ReduceOp, async_op: bool) -> Work:
        if isinstance(output, np.ndarray):
            return self.host.reduce_scatter(output, inputs, op, async_op)
        buffer = self._device_buffer("reduce_scatter", output)
        with self.cp.cuda.Device(self.device):
            send = self.cp.stack([self.cp.asarray(part) for part in inputs])  # (world, *shape)
        kind = self.types[buffer.dtype.char]
        return self._launch(lambda stream: self.comm.reduceScatter(
            send.data.ptr, buffer.data.ptr, buffer.size, kind, self.ops[op], stream),
            staged(output, buffer), async_op, (send, buffer))

    def barrier(self) -> None:
        self.cp.cuda.Device(self.device).synchronize()
        self.host.barrier()

    def all_gather_object(self, obj) -> list:
        return self.host.all_gather_object(obj)

    def broadcast_object(self, obj, src: int):
        return self.host.broadcast_object(obj, src)

    def destroy(self) -> None:
        self.cp.cuda.Device(self.device).synchronize()
        self.comm.destroy()
        self.host.destroy()

    # ----- plumbing -------------------------------------------------------------------------------
    def _device_buffer(self, op: str, array):
        """A contiguous array on this rank's GPU with ``array``'s values (itself if it is one)."""
        if array.device.id != self.device:
            raise ValueError(f"{op}: the tensor is on cuda:{array.device.id} but this rank's NCCL "
                             f"communicator is on cuda:{self.device} (rank % device count); "
                             f"move the model and data there first")
        if array.dtype.char not in self.types:
            raise TypeError(f"{op}: NCCL has no type for dtype {array.dtype}")
        with self.cp.cuda.Device(self.device):
            return self.cp.ascontiguousarray(array)

    def _in_place(self, op: str, array, async_op: bool, collective) -> Work:
        """``collective(pointer, count, NCCL type, stream)`` on a contiguous device buffer with
        ``array``'s values, whose result is then copied back into ``array`` (unless it is one)."""
        buffer = self._device_buffer(op, array)
        kind = self.types[buffer.dtype.char]
        return self._launch(lambda stream: collective(buffer.data.ptr, buffer.size, kind, stream),
                            staged(array, buffer), async_op, (buffer,))

    def _launch(self, enqueue, finish: list, async_op: bool, keep: tuple) -> Work:
        """Run ``enqueue(stream)`` on the group's stream after the current stream's queued work."""
        with self.cp.cuda.Device(self.device):
            self.stream.wait_event(self.cp.cuda.get_current_stream().record())
            enqueue(self.stream.ptr)
            work = Work(_StreamEvent(self.cp, self.stream.record()), finish, keep)
            if not async_op:
                work.wait()
            return work


class _StreamEvent:
    """An NCCL collective's completion as an MPI-style request: ``Wait`` orders the current
    stream after it (the host goes on), ``Test`` asks whether the GPU has got there."""

    def __init__(self, cp, event):
        self.cp, self.event = cp, event

    def Wait(self) -> None:
        self.cp.cuda.get_current_stream().wait_event(self.event)

    def Test(self) -> bool:
        return self.event.done
