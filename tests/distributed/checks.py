"""Checks that run on both ranks of one 2-rank job: ``checks.py RESULTS.json WORKDIR``.

tests/test_distributed.py starts this once (``python -m minidl.distributed.run -n 2``) and turns
each check into its own test. Every check runs on every rank; its collectives come first and its
assertions after them, so that a check failing alike on both ranks leaves them in step for the
next one. Rank 0 writes ``{"checks": {name: [error of rank 0, error of rank 1]}}`` (None: passed).
A check that fails on one rank only may leave the other waiting in a collective: the ranks meet
after each check on a barrier of their own (on MPI's world communicator, not the process
group's), and a rank that has waited there for STEP_DEADLINE seconds ends the job, after every
failure has been printed on stderr.
"""
from __future__ import annotations

import contextlib
import io
import json
import pathlib
import re
import sys
import time
import traceback

import numpy as np

import minidl
import minidl.distributed as dist
from minidl import nn
from minidl.atomic_file import atomic_write
from minidl.data import DataLoader, DistributedSampler, TensorDataset
from minidl.distributed.abort import abort_job
from minidl.nn.parallel import DistributedDataParallel
from minidl.optim import SGD, Adam
from minidl.train import ModelCheckpoint, evaluate, fit

CHECKS = {}
WORKDIR = pathlib.Path(".")
STEP_DEADLINE = 60.0  # seconds a rank waits for the others to finish a check


def check(function):
    CHECKS[function.__name__] = function
    return function


def rank_values(seed: int, dtype, shape=(3, 4)) -> np.ndarray:
    """Small integers (exact in every dtype and under every reduction), one set per seed."""
    return np.random.default_rng(seed).integers(1, 4, shape).astype(dtype)


def cnn() -> nn.Module:
    """(N, 1, 8, 8) -> (N, 3) logits, float64."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 4, 4, 4)
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).double()


def images(seed: int, count: int):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(count, 1, 8, 8)), rng.integers(0, 3, count)


def loss_of(model, x, y):
    return nn.functional.cross_entropy(model(minidl.tensor(x)), minidl.tensor(y))


def assert_same_parameters(ours, reference, what: str, rtol=1e-11) -> None:
    for (name, a), b in zip(reference.named_parameters(), ours.parameters()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=rtol, atol=1e-13,
                                   err_msg=f"{what}: {name}")


def raises(call, error, pattern: str) -> None:
    try:
        call()
    except error as raised:
        assert re.search(pattern, str(raised)), (pattern, str(raised))
    else:
        raise AssertionError(f"no {error.__name__} matching {pattern!r}")


# ----- collectives --------------------------------------------------------------------------------
REDUCTIONS = {dist.ReduceOp.SUM: np.sum, dist.ReduceOp.PRODUCT: np.prod,
              dist.ReduceOp.MIN: np.min, dist.ReduceOp.MAX: np.max, dist.ReduceOp.AVG: np.mean}
DTYPES = (np.float16, np.float32, np.float64, np.int32, np.int64)


@check
def all_reduce_matches_numpy():
    rank, world = dist.get_rank(), dist.get_world_size()
    results, expected = [], []
    for dtype in DTYPES:
        stacked = np.stack([rank_values(r, dtype) for r in range(world)])  # (world, 3, 4)
        for op, reduce in REDUCTIONS.items():
            if op is dist.ReduceOp.AVG and np.dtype(dtype).kind != "f":
                continue
            for async_op in (False, True):
                tensor = minidl.tensor(rank_values(rank, dtype))
                work = dist.all_reduce(tensor, op, async_op=async_op)
                if async_op:
                    assert work.wait() and work.is_completed()
                else:
                    assert work is None
                results.append((f"{op} {np.dtype(dtype)} async={async_op}", tensor.numpy()))
                expected.append(reduce(stacked, axis=0).astype(dtype))
    for (what, got), want in zip(results, expected):
        assert got.dtype == want.dtype, what
        np.testing.assert_array_equal(got, want, err_msg=what)


@check
def all_reduce_writes_a_strided_tensor_and_bumps_its_version():
    rank = dist.get_rank()
    base = minidl.tensor(rank_values(rank, np.float64, (4, 3)))
    view = base.T  # (3, 4), not contiguous
    version = view._version
    dist.all_reduce(view)
    want = (rank_values(0, np.float64, (4, 3)) + rank_values(1, np.float64, (4, 3))).T
    np.testing.assert_array_equal(view.numpy(), want)
    assert view._version == version + 1


@check
def broadcast_all_gather_and_reduce_scatter_match_numpy():
    rank, world = dist.get_rank(), dist.get_world_size()
    sent = minidl.tensor(rank_values(rank, np.float32))
    dist.broadcast(sent, src=1)
    lists = {}
    for dtype in (np.float32, np.int64):
        lists[dtype] = [minidl.zeros(3, 4, dtype=dtype) for _ in range(world)]
        dist.all_gather(lists[dtype], minidl.tensor(rank_values(rank, dtype)))
    scattered = {}
    for op in (dist.ReduceOp.SUM, dist.ReduceOp.AVG, dist.ReduceOp.MAX):
        scattered[op] = minidl.zeros(3, 4, dtype=minidl.float64)
        parts = [minidl.tensor(rank_values(10 * rank + j, np.float64)) for j in range(world)]
        dist.reduce_scatter(scattered[op], parts, op, async_op=True).wait()
    np.testing.assert_array_equal(sent.numpy(), rank_values(1, np.float32))
    for dtype, gathered in lists.items():
        for r, tensor in enumerate(gathered):
            np.testing.assert_array_equal(tensor.numpy(), rank_values(r, dtype))
    for op, tensor in scattered.items():
        mine = np.stack([rank_values(10 * r + rank, np.float64) for r in range(world)])
        np.testing.assert_array_equal(tensor.numpy(), REDUCTIONS[op](mine, axis=0), err_msg=str(op))


@check
def objects_barrier_and_the_group_queries():
    rank, world = dist.get_rank(), dist.get_world_size()
    gathered = [None] * world
    dist.all_gather_object(gathered, {"rank": rank})
    shared = [f"from {rank}", rank]
    dist.broadcast_object_list(shared, src=1)
    dist.barrier()
    assert gathered == [{"rank": r} for r in range(world)]
    assert shared == ["from 1", 1]
    assert (dist.is_initialized(), dist.get_backend(), world) == (True, "mpi", 2)


@check
def collective_errors_name_the_problem():
    cases = [
        (lambda: dist.all_reduce(minidl.ones(2, dtype=minidl.int64), dist.ReduceOp.AVG),
         TypeError, "AVG needs a floating-point"),
        (lambda: dist.all_reduce(minidl.ones(2), "sum"), TypeError, "must be a ReduceOp"),
        (lambda: dist.broadcast(minidl.ones(2), src=2), ValueError, "src=2"),
        (lambda: dist.all_gather([minidl.ones(2)], minidl.ones(2)), ValueError, "one per rank"),
        (lambda: dist.all_gather([minidl.ones(2), minidl.ones(3)], minidl.ones(2)), ValueError,
         r"tensor_list\[1\] is \(3,\)"),
        (lambda: dist.all_reduce(minidl.ones(2), group="world"), ValueError, "only the default"),
        (lambda: dist.all_reduce(minidl.ones(2) > 0), TypeError, "dtype bool"),
        (lambda: dist.init_process_group("mpi"), RuntimeError, "twice"),
    ]
    for call, error, pattern in cases:
        raises(call, error, pattern)


# ----- DistributedDataParallel --------------------------------------------------------------------
def trajectory(make_optimizer, bucket_cap_mb):
    """5 steps of DDP on this rank's half of each batch against one process on the whole."""
    rank = dist.get_rank()
    minidl.manual_seed(0)
    reference = cnn()
    replica = cnn()
    replica.load_state_dict(reference.state_dict())
    model = DistributedDataParallel(replica, bucket_cap_mb=bucket_cap_mb)
    optimizers = make_optimizer(reference.parameters()), make_optimizer(model.parameters())
    for step in range(5):
        x, y = images(step, 8)
        half = slice(4 * rank, 4 * rank + 4)
        for net, optimizer, xs, ys in ((reference, optimizers[0], x, y),
                                       (model, optimizers[1], x[half], y[half])):
            optimizer.zero_grad()
            loss_of(net, xs, ys).backward()
            optimizer.step()
        assert_same_parameters(replica, reference, f"step {step}")
    return model


@check
def ddp_follows_one_process_sgd_momentum_several_buckets():
    model = trajectory(lambda p: SGD(p, lr=0.1, momentum=0.9), bucket_cap_mb=0.0005)
    assert len(model._buckets) >= 3, len(model._buckets)


@check
def ddp_follows_one_process_adam_one_bucket():
    model = trajectory(lambda p: Adam(p, lr=0.01), bucket_cap_mb=None)
    assert len(model._buckets) == 1


@check
def ddp_gives_every_rank_rank_0s_weights_and_buffers():
    rank = dist.get_rank()
    minidl.manual_seed(100 + rank)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    model[1].running_mean.fill_(float(rank + 1))
    mine = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    rank0 = [mine]
    dist.broadcast_object_list(rank0, src=0)
    wrapped = DistributedDataParallel(model)
    wrapped(minidl.randn(2, 1, 5, 5, dtype=minidl.float32))  # per-rank batch statistics
    local_means = [None, None]
    dist.all_gather_object(local_means, model[1].running_mean.numpy().copy())
    for key, value in model.state_dict().items():
        if "running" not in key and "num_batches" not in key:
            np.testing.assert_array_equal(value.numpy(), rank0[0][key], err_msg=key)
    if rank == 1:
        assert not np.array_equal(mine["0.weight"], rank0[0]["0.weight"])
    assert not np.allclose(local_means[0], local_means[1])  # each rank normalised its own batch
    assert list(wrapped.state_dict()) == ["module." + k for k in model.state_dict()]
    plain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    plain.load_state_dict({k[len("module."):]: v for k, v in wrapped.state_dict().items()})
    assert wrapped.module is model


@check
def no_sync_accumulates_locally_then_averages_the_sum():
    rank, world = dist.get_rank(), dist.get_world_size()
    minidl.manual_seed(0)
    replica, reference = cnn(), cnn()
    reference.load_state_dict(replica.state_dict())
    model = DistributedDataParallel(replica)
    batches = [[images(10 * r + k, 3) for k in range(2)] for r in range(world)]
    with model.no_sync():
        loss_of(model, *batches[rank][0]).backward()
    local = [p.grad.numpy().copy() for p in replica.parameters()]
    assert model.require_backward_grad_sync
    loss_of(model, *batches[rank][1]).backward()  # synchronised: averages both micro-batches
    loss_of(reference, *batches[rank][0]).backward()
    for got, (name, p) in zip(local, reference.named_parameters()):
        np.testing.assert_array_equal(got, p.grad.numpy(), err_msg=f"local {name}")
    reference.zero_grad()
    for r in range(world):
        for k in range(2):
            loss_of(reference, *batches[r][k]).backward()
    for (name, p), q in zip(reference.named_parameters(), replica.parameters()):
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy() / world, rtol=1e-12,
                                   atol=1e-15, err_msg=name)


class WithUnused(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Linear(3, 2), nn.Linear(3, 2)

    def forward(self, x):
        return self.used(x)


@check
def ddp_errors_name_the_problem():
    rank = dist.get_rank()
    model = DistributedDataParallel(WithUnused())
    model(minidl.randn(4, 3)).sum().backward()
    raises(lambda: model(minidl.randn(4, 3)), RuntimeError, r"unused\.weight.*unused\.bias")
    twice = DistributedDataParallel(nn.Linear(3, 2))
    loss = twice(minidl.randn(4, 3)).sum()
    loss.backward(retain_graph=True)
    raises(lambda: loss.backward(), RuntimeError, "arrived twice")
    raises(lambda: twice(minidl.randn(4, 3)).sum().backward(create_graph=True), RuntimeError,
           "create_graph")
    raises(lambda: DistributedDataParallel(nn.Linear(3, 4 + rank)), RuntimeError,
           r"differs.*\(4, 3\)|differs.*\(5, 3\)")
    raises(lambda: DistributedDataParallel(nn.Linear(3, 2), device_ids=[0]), ValueError,
           "device_ids=")


# ----- the sampler and fit ----------------------------------------------------------------------
@check
def sampler_takes_rank_and_world_from_the_group():
    sampler = DistributedSampler(range(11), shuffle=True, seed=5)
    sampler.set_epoch(2)
    shares = [None, None]
    dist.all_gather_object(shares, list(sampler))
    assert len(shares[0]) == len(shares[1]) == 6
    assert set(shares[0] + shares[1]) == set(range(11))


def reference_fit(model, dataset_x, dataset_y, samplers, epochs, batch_size, val):
    """One process replaying the ranks' batches together: per step, the union of their batches."""
    optimizer = SGD(model.parameters(), lr=0.1)
    logs = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    for epoch in range(epochs):
        orders = []
        for sampler in samplers:
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            orders.append(list(sampler))
        total, count, correct = 0.0, 0, 0
        for start in range(0, len(orders[0]), batch_size):
            index = np.concatenate([order[start:start + batch_size] for order in orders])
            x, y = dataset_x[index], dataset_y[index]
            output = model(minidl.tensor(x))
            loss = nn.functional.cross_entropy(output, minidl.tensor(y))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(index), count + len(index)
            correct += int((output.numpy().argmax(1) == y).sum())
        logs["loss"].append(total / count)
        logs["accuracy"].append(correct / count)
        val_logs = evaluate(model, val, nn.CrossEntropyLoss(), metrics=["accuracy"])
        logs["val_loss"].append(val_logs["loss"])
        logs["val_accuracy"].append(val_logs["accuracy"])
    return logs


def run_fit(train_data, samplers, x, y, val, out: pathlib.Path, shuffle: bool = True):
    """fit on DDP on both ranks, and the reference replaying ``samplers``' shares."""
    minidl.manual_seed(0)
    replica, reference = cnn(), cnn()
    reference.load_state_dict(replica.state_dict())
    model = DistributedDataParallel(replica)
    out.mkdir()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        history = fit(model, train_data, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1),
                      epochs=2, batch_size=4, validation_data=val, verbose=1, shuffle=shuffle,
                      callbacks=[ModelCheckpoint(out / "ckpt-{epoch}.safetensors")])
    histories = [None, None]
    dist.all_gather_object(histories, history.history)
    expected = reference_fit(reference, x, y, samplers, 2, 4, val)
    return history, histories, expected, printed.getvalue()


@check
def fit_in_ddp_logs_all_ranks_and_only_rank_0_prints_and_saves():
    rank = dist.get_rank()
    x, y = images(50, 18)
    val = images(51, 7)
    dataset = TensorDataset(x, y)
    out = WORKDIR / f"fit-rank{rank}"
    loader = DataLoader(dataset, batch_size=4, sampler=DistributedSampler(dataset, seed=3))
    samplers = [DistributedSampler(dataset, 2, r, seed=3) for r in range(2)]
    history, histories, expected, printed = run_fit(loader, samplers, x, y, val, out)
    assert histories[0] == histories[1]
    for key, values in expected.items():
        np.testing.assert_allclose(history[key], values, rtol=1e-10, err_msg=key)
    saved = sorted(p.name for p in out.glob("*")) if out.exists() else []
    if rank == 0:
        assert "Epoch 2/2" in printed and saved == ["ckpt-1.safetensors", "ckpt-2.safetensors"]
        assert all(k.startswith("module.") for k in minidl.load(out / saved[1])["model"])
    else:
        assert printed == "" and saved == [], (printed, saved)


@check
def fit_in_ddp_splits_an_x_y_pair_between_the_ranks():
    rank = dist.get_rank()
    x, y = images(60, 13)
    val = images(61, 5)
    samplers = [DistributedSampler(TensorDataset(x, y), 2, r, shuffle=False) for r in range(2)]
    out = WORKDIR / f"pair-rank{rank}"
    train = (x, y)
    history, histories, expected, _ = run_fit(train, samplers, x, y, val, out, shuffle=False)
    assert histories[0] == histories[1]
    for key, values in expected.items():
        np.testing.assert_allclose(history[key], values, rtol=1e-10, err_msg=key)


@check
def init_checks_world_size_and_rank():
    dist.destroy_process_group()
    raises(lambda: dist.init_process_group("mpi", world_size=3), ValueError, "world_size=3")
    assert not dist.is_initialized()
    dist.init_process_group("mpi", world_size=2, rank=dist_rank_from_mpi())


def dist_rank_from_mpi() -> int:
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank()


def wait_for_the_others(name: str) -> None:
    """Meet the other ranks after check ``name``, or end the job if one of them is stuck."""
    from mpi4py import MPI

    request, start = MPI.COMM_WORLD.Ibarrier(), time.monotonic()
    while not request.Test():
        if time.monotonic() - start > STEP_DEADLINE:
            abort_job(f"after check {name}, another rank has not arrived in {STEP_DEADLINE} s")
        time.sleep(0.005)


def main(results_path: str, workdir: str) -> None:
    global WORKDIR
    WORKDIR = pathlib.Path(workdir)
    dist.init_process_group("mpi")
    errors = {}
    for name, function in CHECKS.items():
        try:
            function()
            errors[name] = None
        except Exception:  # noqa: BLE001 (reported per check, on both ranks)
            errors[name] = traceback.format_exc()
            print(f"[rank {dist.get_rank()}] check {name} failed:\n{errors[name]}",
                  file=sys.stderr, flush=True)
        wait_for_the_others(name)
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, errors)
    if dist.get_rank() == 0:
        table = {name: [ranks[name] for ranks in everyone] for name in CHECKS}
        atomic_write(results_path, [json.dumps({"checks": table}, indent=1).encode()])
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
