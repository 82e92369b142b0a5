"""``DistributedDataParallel``: one replica of a model per rank, gradients averaged in backward.

Each rank runs the same model on its own part of the batch; after ``loss.backward()`` every
replica holds the same gradient, the mean of the ranks' gradients,

    p.grad = (1/W) Σ_r g_r(p),   g_r(p): what rank r's backward(s) accumulated into p.grad,

so the optimizers take identical steps and the replicas stay equal. This is PyTorch's Reducer in
small:

1. At wrapping, rank 0's parameters and buffers are broadcast (every replica starts equal), after
   a check that all ranks wrap the same architecture.
2. The parameters that require grad are grouped into buckets of about ``bucket_cap_mb``, in the
   reverse of ``parameters()`` order (about the order backward produces their gradients), each
   bucket with one flat buffer, so a bucket costs one collective however many tensors it holds.
3. A hook on each parameter puts its gradient (plus what ``.grad`` already holds, so that
   accumulation under ``no_sync()`` is included) into its slot of its bucket; when a bucket's
   last slot is filled, its non-blocking all-reduce (AVG) starts.
4. When the last gradient has arrived, every bucket is waited for and the averages are written
   into the parameters' ``.grad``, all before ``backward()`` returns.

Timing on minidl's engine: a leaf's hooks run as soon as the last edge into that leaf has been
walked (PyTorch's AccumulateGrad; ``minidl/autograd/engine.py``), each leaf once with its summed
gradient, so a bucket's all-reduce starts while backward is still computing the gradients of
earlier layers, and communication overlaps the rest of the backward. The engine accumulates a
leaf's gradient right after that leaf's hooks: the averages of every parameter but the last are
written over it when the last arrives, and the last one's average is its hook's replacement
gradient.

BatchNorm keeps per-rank batch statistics (as PyTorch's DDP without SyncBatchNorm); its running
statistics are rank 0's, broadcast at each training forward (``broadcast_buffers``).
"""
from __future__ import annotations

import contextlib

from minidl import backend
from minidl import distributed as dist
from minidl.autograd import is_grad_enabled
from minidl.nn.module import Module
from minidl.tensors import Tensor


class DistributedDataParallel(Module):
    """Wrap ``module`` so that its gradients are averaged across all ranks in each backward.

    Args:
        module: the model, already on its device (the same architecture on every rank).
        device_ids, output_device: None, or the one device the module is on (one device per
            process; minidl does not split a module over devices).
        dim: accepted for PyTorch's signature (inputs are never scattered: one device per rank).
        broadcast_buffers: at each training forward, give every rank rank 0's buffers.
        process_group: None (the default group of ``init_process_group``).
        bucket_cap_mb: the size of a bucket in MiB (default 25, as PyTorch).
        find_unused_parameters: must be False: every parameter that requires grad must get a
            gradient in each synchronised backward (else the next forward says which did not).

    Shape: as ``module``. ``state_dict()`` keys are the module's with ``module.`` in front, as
    PyTorch's DDP; ``.module`` is the wrapped model.

    Examples:
        >>> dist.init_process_group("mpi")
        >>> model = DistributedDataParallel(build_model())
        >>> loss_fn(model(x_of_this_rank), y_of_this_rank).backward()  # grads averaged
        >>> with model.no_sync():       # accumulate locally, synchronise on the next backward
        ...     loss_fn(model(x1), y1).backward()
    """

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None,
                 bucket_cap_mb: float | None = None, find_unused_parameters: bool = False):
        super().__init__()
        _check_arguments(module, device_ids, output_device, process_group, find_unused_parameters)
        self.module = module
        self.broadcast_buffers, self.require_backward_grad_sync = broadcast_buffers, True
        self.bucket_cap_mb = 25.0 if bucket_cap_mb is None else float(bucket_cap_mb)
        _check_same_architecture(module)
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor, src=0)
        params = [p for p in module.parameters() if p.requires_grad]
        self._names = {id(p): name for name, p in module.named_parameters()}
        self._buckets = _bucketed(params, self.bucket_cap_mb * 2 ** 20)
        self._bucket_of = {id(p): bucket for bucket in self._buckets for p in bucket.params}
        self._arrived: set = set()  # ids of the parameters whose gradient came this iteration
        # this iteration's backward: IDLE (no averaging: no_sync or no grad), COLLECTING, REDUCED
        self._phase = _IDLE
        for param in params:
            param.register_hook(lambda grad, param=param: self._on_grad(param, grad))

    def forward(self, *inputs, **kwargs):
        self._check_previous_reduction()
        if self.broadcast_buffers and self.training and is_grad_enabled():
            for buffer in self.module.buffers():
                dist.broadcast(buffer, src=0)
        syncing = is_grad_enabled() and self.require_backward_grad_sync
        self._phase = _COLLECTING if syncing else _IDLE
        self._arrived.clear()
        for bucket in self._buckets:
            bucket.ready, bucket.work = 0, None
        return self.module(*inputs, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Backwards of forwards run inside accumulate into ``.grad`` locally, without
        communication; the first synchronised backward after it averages the sum."""
        previous, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # ----- the reducer ----------------------------------------------------------------------------
    def _on_grad(self, param, grad: Tensor):
        """A parameter's gradient of this backward has arrived (a hook: the return value, if
        not None, replaces the gradient the engine then accumulates into ``param.grad``)."""
        if self._phase is _IDLE:
            return None
        if is_grad_enabled():
            raise RuntimeError("DistributedDataParallel: backward(create_graph=True) is not "
                               "supported (the averaged gradients have no graph)")
        if self._phase is _REDUCED or id(param) in self._arrived:
            raise RuntimeError(f"DistributedDataParallel: the gradient of parameter "
                               f"{self._names[id(param)]!r} arrived twice in one iteration; run "
                               "one backward per forward (no_sync() accumulates over several)")
        self._arrived.add(id(param))
        bucket = self._bucket_of[id(param)]
        slot = bucket.slots[id(param)]
        if param.grad is None:
            slot[...] = grad.array
        else:  # what the engine is about to accumulate
            xp = backend.get_array_module(slot)
            xp.add(param.grad.array, grad.array, out=slot)
        bucket.ready += 1
        if bucket.ready == len(bucket.params):
            bucket.work = dist.all_reduce(Tensor(bucket.buffer), dist.ReduceOp.AVG, async_op=True)
        if len(self._arrived) < len(self._bucket_of):
            return None
        return self._finish(param, grad)

    def _finish(self, last, grad: Tensor) -> Tensor:
        """Wait for every bucket and write the averages into the ``.grad``s; the last
        parameter's average is returned as its hook's replacement gradient."""
        self._phase = _REDUCED
        for bucket in self._buckets:
            bucket.work.wait()
            for param in bucket.params:
                if param is not last:  # its .grad holds its local sum by now: overwrite it
                    param.grad.array[...] = bucket.slots[id(param)]
        last.grad = None  # so that the engine stores a copy of the returned average
        return Tensor(self._bucket_of[id(last)].slots[id(last)].astype(grad.dtype, copy=False))

    def _check_previous_reduction(self) -> None:
        if self._phase is _COLLECTING and self._arrived:
            for bucket in self._buckets:  # let the started ones end, so that none is left behind
                if bucket.work is not None:
                    bucket.work.wait()
            self._phase = _IDLE
            missing = [name for key, name in self._names.items()
                       if key in self._bucket_of and key not in self._arrived]
            raise RuntimeError("DistributedDataParallel: the previous backward gave no gradient "
                               f"to parameters {missing}, so their buckets were never reduced; "
                               "every parameter that requires grad must take part in the loss "
                               "(or set requires_grad=False on the unused ones before wrapping)")

    def extra_repr(self) -> str:
        return f"buckets={len(self._buckets)}, bucket_cap_mb={self.bucket_cap_mb:g}"


_IDLE, _COLLECTING, _REDUCED = "idle", "collecting", "reduced"


class _Bucket:
    """Parameters of one dtype and device whose gradients travel in one flat buffer."""

    __slots__ = ("buffer", "params", "ready", "slots", "work")

    def __init__(self, params: list):
        xp = backend.get_array_module(params[0].array)
        self.params, self.ready, self.work = params, 0, None
        self.buffer = xp.zeros(sum(p.numel() for p in params), dtype=params[0].dtype)
        self.slots, offset = {}, 0
        for param in params:
            end = offset + param.numel()
            self.slots[id(param)] = self.buffer[offset:end].reshape(param.shape)  # a view
            offset = end


def _bucketed(params: list, cap_bytes: float) -> list:
    """Consecutive parameters, last first, cut where the dtype or device changes or the bucket
    would pass ``cap_bytes`` (a parameter larger than that has a bucket of its own)."""
    buckets, current, size = [], [], 0
    for param in reversed(params):
        nbytes = param.array.nbytes
        if current and ((param.dtype, param.device) != (current[0].dtype, current[0].device)
                        or size + nbytes > cap_bytes):
            buckets.append(_Bucket(current))
            current, size = [], 0
        current.append(param)
        size += nbytes
    if current:
        buckets.append(_Bucket(current))
    return buckets


def _check_arguments(module, device_ids, output_device, process_group, find_unused) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"DistributedDataParallel: expected a Module, got {type(module).__name__}")
    if process_group is not None:
        raise ValueError("DistributedDataParallel: minidl has only the default process group; "
                         "pass process_group=None")
    if find_unused:
        raise NotImplementedError("DistributedDataParallel: find_unused_parameters=True is not "
                                  "supported; set requires_grad=False on parameters the loss "
                                  "does not use")
    devices = {p.device for p in module.parameters()}
    for name, given in (("device_ids", device_ids), ("output_device", output_device)):
        if given is None:
            continue
        entries = given if isinstance(given, (list, tuple)) else [given]
        wanted = {backend.Device("cuda", e) if isinstance(e, int) else backend.Device(e)
                  for e in entries}
        if wanted != devices:
            raise ValueError(f"DistributedDataParallel: {name}={given!r}, but the module's "
                             f"parameters are on {sorted(map(str, devices))}; one process drives "
                             "one device: move the module there and pass None")


def _check_same_architecture(module: Module) -> None:
    """Every rank's state_dict has the same names, shapes and dtypes (else collectives on them
    would mismatch or hang)."""
    layout = [(name, tuple(t.shape), str(t.dtype)) for name, t in
              module.state_dict(keep_vars=True).items()]
    layouts = [None] * dist.get_world_size()
    dist.all_gather_object(layouts, layout)
    for rank, other in enumerate(layouts):
        if other != layout:
            difference = next((pair for pair in zip(other, layout) if pair[0] != pair[1]),
                              (other[len(layout):] or None, layout[len(other):] or None))
            raise RuntimeError(f"DistributedDataParallel: rank {rank}'s module differs from rank "
                               f"{dist.get_rank()}'s: {difference[0]} vs {difference[1]}")
