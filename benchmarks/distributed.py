"""``python -m benchmarks.distributed``: data-parallel training on 1 and 2 ranks (1 thread each).

Writes ``distributed.md`` into ``--out`` (default ``benchmarks/results/``) with:

- weak scaling (64 images per rank) and strong scaling (128 images in all) of a training step of
  the MNIST CNN (forward, DDP backward, SGD step), float32, on 1 and 2 ranks;
- all-reduce time and bandwidth of ``minidl.distributed.all_reduce`` against raw mpi4py
  ``Allreduce`` / ``Iallreduce`` on the same buffer (target: minidl >= 90% of raw);
- the share of the step spent waiting for communication (inside a collective or a ``wait()``)
  for four ways of averaging the gradients: one blocking all-reduce per parameter after
  backward, one flat buffer after backward, and DDP's hooks (one 25 MB bucket, or 0.25 MB ones).

The parent starts ``python -m minidl.distributed.run -n {1,2} -m benchmarks.distributed --worker
RESULT.json``; each worker measures and rank 0 writes its figures. ``--steps`` sets the timed
steps per figure (default 15, after 3 warm-up steps); medians throughout.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1"}
WARMUP = 3


# ----- the worker (one per rank) --------------------------------------------------------------
def cnn():
    """examples/mnist_cnn.py's model: (N, 1, 28, 28) -> (N, 10)."""
    from minidl import nn

    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


class WaitClock:
    """Seconds spent inside collectives and ``Work.wait`` (patched in, for this benchmark only)."""

    def __init__(self):
        import minidl.distributed as dist
        from minidl.distributed import work

        self.seconds = 0.0
        for owner, name in ((dist, "all_reduce"), (work.Work, "wait")):
            setattr(owner, name, self.timed(getattr(owner, name)))

    def timed(self, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return wrapper


def time_steps(steps_by_name: dict, steps: int, clock: WaitClock) -> dict:
    """name -> median step time and median waiting share of its ``step()`` over ``steps`` timed
    calls; the steps take turns, so a change in the machine's load touches all of them alike."""
    import minidl.distributed as dist

    times = {name: [] for name in steps_by_name}
    shares = {name: [] for name in steps_by_name}
    for index in range(WARMUP + steps):
        for name, step in steps_by_name.items():
            dist.barrier()  # the ranks start each step together
            clock.seconds, start = 0.0, time.perf_counter()
            step()
            elapsed = time.perf_counter() - start
            if index >= WARMUP:
                times[name].append(elapsed)
                shares[name].append(clock.seconds / elapsed)
    return {name: {"ms": 1e3 * float(np.median(times[name])),
                   "wait_share": float(np.median(shares[name]))} for name in steps_by_name}


def training_step(per_rank: int, averaging: str):
    """A step of the CNN on ``per_rank`` images; ``averaging`` picks how gradients are averaged."""
    import minidl
    import minidl.distributed as dist
    from minidl import nn
    from minidl.nn.parallel import DistributedDataParallel
    from minidl.optim import SGD

    minidl.manual_seed(0)
    model = cnn()
    if averaging.startswith("ddp"):
        cap = 0.25 if averaging == "ddp-small" else 25
        model = DistributedDataParallel(model, bucket_cap_mb=cap)
    params = list(model.parameters())
    optimizer = SGD(params, lr=0.01, momentum=0.9)
    x, y = minidl.randn(per_rank, 1, 28, 28), minidl.randint(0, 10, (per_rank,))

    def step():
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        if averaging == "per-parameter":  # no bucketing, no overlap
            for param in params:
                dist.all_reduce(param.grad, dist.ReduceOp.AVG)
        elif averaging == "flat":  # one buffer, after backward: bucketing without overlap
            flat = minidl.tensor(np.concatenate([p.grad.numpy().ravel() for p in params]))
            dist.all_reduce(flat, dist.ReduceOp.AVG)
            offset = 0
            for param in params:
                param.grad.array[...] = flat.array[offset:offset + param.numel()].reshape(
                    param.shape)  # (numel,) -> the parameter's shape
                offset += param.numel()
        optimizer.step()
    return step


def allreduce_figures(elements: int, repeats: int) -> dict:
    """minidl's all_reduce vs raw mpi4py on one float32 buffer of ``elements`` (blocking and
    non-blocking), alternating, medians of ``repeats``."""
    from mpi4py import MPI

    import minidl
    import minidl.distributed as dist

    buffer = np.ones(elements, np.float32)
    tensor, comm = minidl.from_numpy(buffer), MPI.COMM_WORLD  # the very same buffer for both
    calls = {"minidl": lambda: dist.all_reduce(tensor),
             "raw": lambda: comm.Allreduce(MPI.IN_PLACE, buffer, MPI.SUM),
             "minidl async": lambda: dist.all_reduce(tensor, async_op=True).wait(),
             "raw async": lambda: comm.Iallreduce(MPI.IN_PLACE, buffer, MPI.SUM).Wait()}
    times = {name: [] for name in calls}
    for index in range(WARMUP + repeats):
        for name, call in calls.items():
            comm.Barrier()
            start = time.perf_counter()
            call()
            if index >= WARMUP:
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * float(np.median(values)) for name, values in times.items()}


def worker(result_path: str, steps: int) -> None:
    import minidl.distributed as dist

    dist.init_process_group("mpi")
    world, clock = dist.get_world_size(), WaitClock()
    figures = {"world": world, "scaling": {}, "averaging": {}, "allreduce": {}}
    figures["scaling"] = time_steps({"weak": training_step(64, "ddp"),
                                     "strong": training_step(128 // world, "ddp")}, steps, clock)
    if world > 1:
        averagings = ("none", "per-parameter", "flat", "ddp", "ddp-small")
        figures["averaging"] = time_steps({name: training_step(64, name) for name in averagings},
                                          steps, clock)
        gradient_size = sum(p.numel() for p in cnn().parameters())
        for elements in (gradient_size, 4 * 2 ** 20):
            figures["allreduce"][elements] = allreduce_figures(elements, 4 * steps)
    if dist.get_rank() == 0:
        pathlib.Path(result_path).write_text(json.dumps(figures))
    dist.destroy_process_group()


# ----- the parent -----------------------------------------------------------------------------
def measure(world: int, steps: int, folder: str) -> dict:
    path = os.path.join(folder, f"world{world}.json")
    command = [sys.executable, "-m", "minidl.distributed.run", "-n", str(world), "-m",
               "benchmarks.distributed", "--worker", path, "--steps", str(steps)]
    subprocess.run(command, check=True, env={**os.environ, **ONE_THREAD}, timeout=900)
    return json.loads(pathlib.Path(path).read_text())


def report(one: dict, two: dict, seconds: float) -> str:
    from benchmarks.machine import cpu_model

    weak1, weak2 = one["scaling"]["weak"]["ms"], two["scaling"]["weak"]["ms"]
    strong1, strong2 = one["scaling"]["strong"]["ms"], two["scaling"]["strong"]["ms"]
    lines = [
        "# minidl data-parallel training: 1 and 2 ranks, 1 thread each", "",
        f"{cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the "
        f"end ({seconds:.0f} s in all). MPI: the mpich wheel, shared memory. Step = forward, "
        "backward through DistributedDataParallel, SGD step, of the MNIST CNN (float32); "
        f"medians of the timed steps after {WARMUP} warm-up steps.", "",
        "## Scaling of a training step", "",
        "| scaling | images per step | 1 rank ms | 2 ranks ms | 2-rank throughput / 1-rank | "
        "ideal |", "|---|---|---:|---:|---:|---:|",
        f"| weak (64 per rank) | 64 / 128 | {weak1:.1f} | {weak2:.1f} | "
        f"{2 * weak1 / weak2:.2f}x | 2x |",
        f"| strong (128 in all) | 128 / 128 | {strong1:.1f} | {strong2:.1f} | "
        f"{strong1 / strong2:.2f}x | 2x |", "",
        "## All-reduce: minidl.distributed.all_reduce vs raw mpi4py, same buffer, 2 ranks", "",
        "| float32 elements | MiB | raw ms | minidl ms | minidl / raw speed | raw async ms | "
        "minidl async ms | async minidl / raw | minidl GB/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for elements, t in two["allreduce"].items():
        mib = 4 * int(elements) / 2 ** 20
        lines.append(f"| {int(elements):,} | {mib:.1f} | {t['raw']:.3f} | {t['minidl']:.3f} | "
                     f"{t['raw'] / t['minidl']:.0%} | {t['raw async']:.3f} | "
                     f"{t['minidl async']:.3f} | {t['raw async'] / t['minidl async']:.0%} | "
                     f"{4 * int(elements) / t['minidl'] / 1e6:.2f} |")
    base = two["averaging"]["none"]["ms"]
    names = {"none": "no averaging (ranks independent: the floor)",
             "per-parameter": "one blocking all-reduce per parameter after backward",
             "flat": "one flat buffer, all-reduced after backward",
             "ddp": "DDP hooks, one 25 MB bucket", "ddp-small": "DDP hooks, 0.25 MB buckets"}
    lines += ["", "## Waiting for communication, 2 ranks, 64 images per rank", "",
              "| gradients averaged by | step ms | waiting share of the step | step over the "
              "floor |", "|---|---:|---:|---:|"]
    for key, name in names.items():
        figure = two["averaging"][key]
        lines.append(f"| {name} | {figure['ms']:.1f} | {figure['wait_share']:.1%} | "
                     f"{figure['ms'] / base - 1:+.1%} |")
    gradient_elements = min(two["allreduce"], key=int)  # the CNN's gradients, in one buffer
    reduce_ms = two["allreduce"][gradient_elements]["minidl"]
    step_ms = two["averaging"]["ddp"]["ms"]
    lines += ["", f"One all-reduce of all {int(gradient_elements):,} gradients takes "
              f"{reduce_ms:.1f} ms, {reduce_ms / step_ms:.1%} of the DDP step: the most that "
              "overlapping it with the backward could save here. Waiting includes the time a rank "
              "waits for the slower one (load imbalance on a shared machine). minidl's engine runs "
              "a leaf's gradient hooks as soon as its last gradient has arrived, so a DDP bucket's "
              "all-reduce starts while the backward goes on; bucketing saves the per-tensor "
              "calls.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", metavar="RESULT.json", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per figure")
    parser.add_argument("--out", default=str(RESULTS),
                        help="folder for distributed.md (default: benchmarks/results)")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.steps)
        return
    from minidl.atomic_file import atomic_write

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        one, two = measure(1, args.steps, folder), measure(2, args.steps, folder)
    text = report(one, two, time.perf_counter() - start)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(str(out / "distributed.md"), [text.encode()])
    print(text)


if __name__ == "__main__":
    main()
