"""``minidl.distributed``: processes that train one model together (``torch.distributed``'s API).

Start N processes with ``python -m minidl.distributed.run -n N script.py`` (or ``mpiexec``); in the
script, ``init_process_group("mpi")`` joins them. Then every process (rank ``get_rank()`` of
``get_world_size()``) calls the same collectives in the same order, each on a tensor of the same
shape and dtype; the result is written into the tensor's own array, on the CPU or the GPU:

    all_reduce(x, op)         x = op(x_0, ..., x_{W-1})      op: SUM, AVG, PRODUCT, MIN, MAX
    broadcast(x, src)         x = x_src
    all_gather(out, x)        out[r] = x_r for every rank r
    reduce_scatter(y, xs, op) y = op over ranks r of xs_r[rank]

Backends: ``"mpi"`` (mpi4py; NumPy arrays directly, CuPy arrays staged through the host) and
``"nccl"`` (CuPy arrays through NCCL, its id shared over MPI; host arrays over MPI). Neither
mpi4py nor CuPy is imported until its backend is asked for. With ``async_op=True`` a collective
returns a :class:`Work` whose ``wait()`` returns once the result is in the tensor.
"""
from __future__ import annotations

import importlib
import importlib.util

from minidl import backend
from minidl.distributed import abort
from minidl.distributed.work import ReduceOp, Work
from minidl.tensors import Tensor

BACKENDS = ("mpi", "nccl")
_state = {"group": None}  # the default process group once init_process_group has run


def is_available() -> bool:
    """Always True: minidl.distributed is part of minidl (the backends may still be missing)."""
    return True


def is_mpi_available() -> bool:
    """Whether mpi4py is installed (the MPI library itself loads on ``init_process_group``)."""
    return importlib.util.find_spec("mpi4py") is not None


def is_nccl_available() -> bool:
    """Whether CuPy sees a GPU and its NCCL library loads (imports CuPy)."""
    if not (is_mpi_available() and backend.cuda_is_available()):
        return False
    return importlib.import_module(backend.cupy().__name__ + ".cuda.nccl").available


def init_process_group(backend: str | None = None, init_method: str | None = None, timeout=None,
                       world_size: int = -1, rank: int = -1) -> None:
    """Join the processes started by ``mpiexec`` (or the launcher) into the default group.

    Args:
        backend: ``"mpi"`` (the default) or ``"nccl"``.
        init_method: None or ``"env://"``: MPI's launcher has already brought the processes
            together, so there is no rendezvous address to give.
        timeout: accepted for PyTorch's signature; MPI collectives cannot time out (a failing
            rank ends the job instead, see :mod:`minidl.distributed.abort`).
        world_size, rank: when given, checked against what mpiexec started.
    """
    if _state["group"] is not None:
        raise RuntimeError("trying to initialize the default process group twice!")
    name = "mpi" if backend is None else str(backend).lower()
    if name not in BACKENDS:
        raise ValueError(f"init_process_group: unknown backend {backend!r}; minidl has 'mpi' "
                         "(CPU tensors, CUDA tensors staged through the host) and 'nccl' "
                         "(CUDA tensors)")
    if init_method not in (None, "env://"):
        raise ValueError(f"init_method={init_method!r}: minidl's processes meet through mpiexec "
                         "(python -m minidl.distributed.run -n N script.py); leave it None")
    from minidl.distributed.mpi import MPIGroup  # mpi4py (or CuPy) is imported only now

    if name == "nccl":
        from minidl.distributed.nccl import NCCLGroup

        group = NCCLGroup()
    else:
        group = MPIGroup()
    for given, actual, what in ((world_size, group.size, "world_size"), (rank, group.rank, "rank")):
        if given not in (-1, None) and given != actual:
            group.destroy()
            raise ValueError(f"init_process_group: {what}={given}, but mpiexec made this process "
                             f"{what} {actual}")
    _state["group"] = group
    if group.size > 1:
        abort.install()


def destroy_process_group() -> None:
    """Leave the default group (free its communicators); ``init_process_group`` may follow."""
    _group("destroy_process_group").destroy()
    _state["group"] = None
    abort.uninstall()


def is_initialized() -> bool:
    return _state["group"] is not None


def get_backend(group=None) -> str:
    return _group("get_backend", group).name


def get_rank(group=None) -> int:
    """This process's rank, ``0 <= rank < get_world_size()``."""
    return _group("get_rank", group).rank


def get_world_size(group=None) -> int:
    return _group("get_world_size", group).size


def barrier(group=None, device_ids=None) -> None:
    """Wait until every rank has reached its ``barrier()`` (``device_ids`` is accepted for
    PyTorch's signature: a GPU group synchronises its device first anyway)."""
    _group("barrier", group).barrier()


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM, group=None,
               async_op: bool = False) -> Work | None:
    """``tensor = op(tensor of rank 0, ..., tensor of rank W-1)``, in place on every rank."""
    _check_reduction("all_reduce", tensor, op)
    work = _group("all_reduce", group).all_reduce(tensor.array, op, async_op)
    return _started(work, async_op, tensor)


def broadcast(tensor: Tensor, src: int, group=None, async_op: bool = False) -> Work | None:
    """``tensor = tensor of rank src``, in place on every rank."""
    process_group = _group("broadcast", group)
    _check_tensor("broadcast", tensor)
    if not 0 <= src < process_group.size:
        raise ValueError(f"broadcast: src={src} is not a rank of a world of {process_group.size}")
    return _started(process_group.broadcast(tensor.array, src, async_op), async_op, tensor)


def all_gather(tensor_list: list, tensor: Tensor, group=None,
               async_op: bool = False) -> Work | None:
    """``tensor_list[r] = tensor of rank r`` for every rank r (the list's tensors are written)."""
    process_group = _group("all_gather", group)
    _check_tensor("all_gather", tensor)
    _check_list("all_gather", "tensor_list", tensor_list, tensor, process_group.size)
    work = process_group.all_gather([t.array for t in tensor_list], tensor.array, async_op)
    return _started(work, async_op, *tensor_list)


def reduce_scatter(output: Tensor, input_list: list, op: ReduceOp = ReduceOp.SUM, group=None,
                   async_op: bool = False) -> Work | None:
    """``output = op over ranks r of input_list[this rank] of rank r``: each rank gets its part
    of the reduction of the ranks' lists."""
    process_group = _group("reduce_scatter", group)
    _check_reduction("reduce_scatter", output, op)
    _check_list("reduce_scatter", "input_list", input_list, output, process_group.size)
    work = process_group.reduce_scatter(output.array, [t.array for t in input_list], op, async_op)
    return _started(work, async_op, output)


def all_gather_object(object_list: list, obj, group=None) -> None:
    """``object_list[r] = obj of rank r`` for any picklable objects (PyTorch's semantics)."""
    process_group = _group("all_gather_object", group)
    if len(object_list) != process_group.size:
        raise ValueError(f"all_gather_object: object_list has {len(object_list)} entries, "
                         f"expected one per rank ({process_group.size})")
    object_list[:] = process_group.all_gather_object(obj)


def broadcast_object_list(object_list: list, src: int = 0, group=None) -> None:
    """``object_list[:] = object_list of rank src`` for picklable objects, in place."""
    object_list[:] = _group("broadcast_object_list", group).broadcast_object(list(object_list), src)


# ----- checks and plumbing ---------------------------------------------------------------------
def _group(op: str, group=None):
    if group is not None:
        raise ValueError(f"{op}: minidl has only the default group (all ranks); pass group=None")
    if _state["group"] is None:
        raise ValueError(f"{op}: Default process group has not been initialized, please make "
                         "sure to call init_process_group.")
    return _state["group"]


def _check_tensor(op: str, tensor) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind not in "fiu":
        raise TypeError(f"{op}: dtype {tensor.dtype} is not supported (floating or integer "
                        "tensors only)")


def _check_reduction(op: str, tensor, reduce_op) -> None:
    _check_tensor(op, tensor)
    if not isinstance(reduce_op, ReduceOp):
        raise TypeError(f"{op}: op must be a ReduceOp (SUM, AVG, PRODUCT, MIN, MAX), got "
                        f"{reduce_op!r}")
    if reduce_op is ReduceOp.AVG and tensor.dtype.kind != "f":
        raise TypeError(f"{op}: ReduceOp.AVG needs a floating-point tensor, got {tensor.dtype}")


def _check_list(op: str, name: str, tensors: list, like: Tensor, world: int) -> None:
    """One tensor per rank, each of ``like``'s shape, dtype and device."""
    if len(tensors) != world:
        raise ValueError(f"{op}: {name} has {len(tensors)} tensors, expected one per rank "
                         f"({world})")
    for index, item in enumerate(tensors):
        if not isinstance(item, Tensor) or (item.shape, item.dtype, item.device) != (
                like.shape, like.dtype, like.device):
            got = (f"{tuple(item.shape)} {item.dtype} on {item.device}"
                   if isinstance(item, Tensor) else type(item).__name__)
            raise ValueError(f"{op}: {name}[{index}] is {got}, expected {tuple(like.shape)} "
                             f"{like.dtype} on {like.device}")


def _started(work: Work, async_op: bool, *written: Tensor) -> Work | None:
    """The collective's Work (or None when it was blocking); the tensors it writes get a new
    version, so a backward that saved one of them raises instead of using the new values."""
    for tensor in written:
        tensor._mark_modified()
    return work if async_op else None


__all__ = ["ReduceOp", "Work", "all_gather", "all_gather_object", "all_reduce", "barrier",
           "broadcast", "broadcast_object_list", "destroy_process_group", "get_backend", "get_rank",
           "get_world_size", "init_process_group", "is_available", "is_initialized",
           "is_mpi_available", "is_nccl_available", "reduce_scatter"]
