"""GPU checks under mpiexec: ``gpu_checks.py nccl`` (1 rank) or ``gpu_checks.py mpi`` (2 ranks).

"nccl": the NCCL backend in a world of one (NCCL refuses two ranks on one GPU): every reduction,
broadcast, all_gather and reduce_scatter on CuPy tensors, host tensors over its MPI side, and a
DDP step on the GPU equal to one process's. "mpi": two ranks with CuPy tensors staged through
the host: all_reduce, and DDP on half the batch each equal to one process on the whole.
Exits non-zero (with a traceback) when a check fails.
"""
import sys

import numpy as np

import minidl
import minidl.distributed as dist
from minidl import nn
from minidl.nn.parallel import DistributedDataParallel
from minidl.optim import SGD


def model_on(device):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 3)).double().to(device)


def ddp_step_matches_one_process(device) -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    minidl.manual_seed(0)
    reference, replica = model_on(device), model_on(device)
    replica.load_state_dict(reference.state_dict())
    model = DistributedDataParallel(replica, bucket_cap_mb=0.001)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4 * world, 1, 8, 8)), rng.integers(0, 3, 4 * world)
    mine = slice(4 * rank, 4 * rank + 4)
    for net, xs, ys in ((reference, x, y), (model, x[mine], y[mine])):
        optimizer = SGD(net.parameters(), lr=0.1, momentum=0.9)
        output = net(minidl.tensor(xs, device=device))
        nn.functional.cross_entropy(output, minidl.tensor(ys, device=device)).backward()
        optimizer.step()
    for a, b in zip(reference.parameters(), replica.parameters()):
        assert b.device == a.device and b.is_cuda
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-11, atol=1e-13)


def nccl_collectives() -> None:
    values = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    for op, expected in ((dist.ReduceOp.SUM, values), (dist.ReduceOp.AVG, values),
                         (dist.ReduceOp.PRODUCT, values), (dist.ReduceOp.MAX, values),
                         (dist.ReduceOp.MIN, values)):
        tensor = minidl.tensor(values, device="cuda")
        dist.all_reduce(tensor, op, async_op=True).wait()
        np.testing.assert_array_equal(tensor.numpy(), expected, err_msg=str(op))
    strided = minidl.tensor(values.T.copy(), device="cuda").T  # not contiguous
    dist.all_reduce(strided)
    np.testing.assert_array_equal(strided.numpy(), values)
    tensor = minidl.tensor(values, device="cuda")
    dist.broadcast(tensor, src=0)
    gathered = [minidl.zeros(2, 3, device="cuda")]
    dist.all_gather(gathered, tensor)
    scattered = minidl.zeros(2, 3, device="cuda")
    dist.reduce_scatter(scattered, [tensor], dist.ReduceOp.SUM)
    host = minidl.tensor(values)  # a host tensor goes over MPI
    dist.all_reduce(host)
    for result in (tensor, gathered[0], scattered, host):
        np.testing.assert_array_equal(result.numpy(), values)
    assert dist.get_backend() == "nccl" and dist.get_world_size() == 1


def mpi_staged_collectives() -> None:
    rank = dist.get_rank()
    tensor = minidl.tensor(np.full(5, rank + 1.0), device="cuda")
    dist.all_reduce(tensor)
    assert tensor.is_cuda
    np.testing.assert_array_equal(tensor.numpy(), np.full(5, 3.0))


if __name__ == "__main__":
    backend = sys.argv[1]
    dist.init_process_group(backend)
    (nccl_collectives if backend == "nccl" else mpi_staged_collectives)()
    ddp_step_matches_one_process("cuda")
    dist.destroy_process_group()
    print("gpu checks passed", flush=True)
