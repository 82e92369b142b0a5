"""One measurement: one engine, one workload, in its own process; prints one JSON line.

    python -m benchmarks.worker --engine torch --workload mlp --data DIR [--steps 20 ...]

The first PyTorch worker of a workload writes ``DIR/<workload>.npz`` (its initial state_dict and the
batch, no pickle) and ``DIR/<workload>.expected.npz`` (the values of its first steps). Every worker,
that one included, loads the weights with ``load_state_dict``, runs the first steps and compares
them with the expected values; only then does it time. A mismatch ends the worker with status
"FAILED", so a wrong computation is never timed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

import numpy as np

from benchmarks import memory
from benchmarks.engines import Unavailable, load
from benchmarks.workloads import WORKLOADS

RTOL, ATOL = 1e-4, 1e-4  # float32 after sums of thousands of terms; ATOL is relative to max |value|
FOREIGN = {"minidl": ("torch",), "torch": ("minidl", "numba"), "torch_fused": ("minidl", "numba")}


def prepare(E, workload, tensors):
    """The model and the function that runs one step of ``workload`` and returns its loss/output."""
    model = workload.build(E)
    if model is not None and E.device != "cpu":
        model.to(E.device)
    if workload.kind == "train":
        name, options = workload.optimizer
        optimizer = getattr(E.optim, name)(model.parameters(), **options, **E.optimizer_options)

        def step():
            optimizer.zero_grad()
            if workload.loss is not None:
                loss = workload.loss(E, model, tensors)
            else:
                logits = workload.forward(E, model, tensors)
                loss = E.F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                         tensors["target"].reshape(-1))
            loss.backward()
            optimizer.step()
            return loss
    elif workload.kind == "infer":
        model.eval()

        def step():
            with E.no_grad():
                return workload.forward(E, model, tensors)
    else:
        leaves = _leaves(workload, model, tensors)

        def step():
            for leaf in leaves.values():
                leaf.grad = None
            output = workload.forward(E, model, tensors)
            if workload.kind == "fwd+bwd":
                output.backward(tensors.get("gy"))  # None for a scalar output
            return output
    return model, step


def _leaves(workload, model, tensors) -> dict:
    leaves = {key: tensors[key] for key in workload.grad_inputs}
    if model is not None:
        leaves.update({"param." + name: p for name, p in model.named_parameters()})
    return leaves


def check_values(E, workload, model, tensors, step) -> dict:
    """What the first steps produce: two losses for training, else the output (and the grads)."""
    if workload.kind == "train":
        return {"loss": np.array([E.numpy(step()) for _ in range(2)])}
    values = {"output": E.numpy(step())}
    if workload.kind == "fwd+bwd":
        values.update({"grad." + key: E.numpy(leaf.grad)
                       for key, leaf in _leaves(workload, model, tensors).items()})
    return values


def mismatches(expected: dict, actual: dict) -> list:
    """Descriptions of every value that differs beyond float32 tolerance (empty when all agree)."""
    problems = []
    for key, want in expected.items():
        have = actual.get(key)
        if have is None or have.shape != want.shape:
            problems.append(f"{key}: shape {None if have is None else have.shape} != {want.shape}")
            continue
        scale = max(1.0, float(np.abs(want).max(initial=0)))
        error = np.abs(have.astype(np.float64) - want)
        if not np.all(error <= ATOL * scale + RTOL * np.abs(want)):
            problems.append(f"{key}: max abs error {error.max():.3g} (values up to {scale:.3g})")
    return problems


def write_reference(E, workload, data_path: str) -> None:
    """Seeded initial weights (``state.<key>``) and the batch (``batch.<key>``) as plain arrays."""
    E.manual_seed(0)
    model = workload.build(E)
    state = {} if model is None else {k: E.numpy(v) for k, v in model.state_dict().items()}
    batch = workload.batch(np.random.default_rng(0))
    np.savez(data_path, **{"state." + k: v for k, v in state.items()},
             **{"batch." + k: v for k, v in batch.items()})


def _read(path: str, prefix: str = "") -> dict:
    """The arrays of an .npz file whose names start with ``prefix``, by name without it."""
    with np.load(path, allow_pickle=False) as saved:
        return {name[len(prefix):]: saved[name] for name in saved.files if name.startswith(prefix)}


def time_steps(E, step, count: int, inner: int) -> list:
    """Seconds per call of ``step`` for ``count`` samples of ``inner`` calls each."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        for _ in range(inner):
            step()
        E.synchronize()
        times.append((time.perf_counter() - start) / inner)
    return times


def measure(args) -> dict:
    workload = WORKLOADS[args.workload]
    base = os.path.join(args.data, workload.name)
    E = load(args.engine, args.device, args.threads)
    if args.engine == "torch" and not os.path.exists(base + ".npz"):
        write_reference(E, workload, base + ".npz")
    tensors = {key: E.tensor(value, requires_grad=key in workload.grad_inputs)
               for key, value in _read(base + ".npz", "batch.").items()}
    model, step = prepare(E, workload, tensors)
    if model is not None:
        model.load_state_dict({k: E.tensor(v) for k, v in _read(base + ".npz", "state.").items()})
    baseline = memory.current_rss()
    values = check_values(E, workload, model, tensors, step)
    if not os.path.exists(base + ".expected.npz"):
        np.savez(base + ".expected.npz", **values)
    problems = mismatches(_read(base + ".expected.npz"), values)
    if problems:
        return {"status": "FAILED", "reason": "; ".join(problems)}
    time_steps(E, step, args.warmup, workload.inner)
    times = time_steps(E, step, args.steps, workload.inner)
    step_memory = memory.step_peak(lambda: time_steps(E, step, args.memory_steps, 1))
    return {"status": "ok", "times": times, "median": float(np.median(times)),
            "step_memory_mib": step_memory, "state_mib": memory.growth_since(baseline),
            "version": E.version}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=sorted(FOREIGN), required=True)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    parser.add_argument("--data", required=True, help="folder for the shared weights and batch")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--memory-steps", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        result = measure(args)
    except Unavailable as reason:
        result = {"status": "unavailable", "reason": str(reason)}
    except Exception as error:  # noqa: BLE001 (an engine's error is a result, not a crash of the run)
        last = traceback.extract_tb(error.__traceback__)[-1]
        result = {"status": "error", "reason": f"{type(error).__name__}: {error} "
                                               f"({os.path.basename(last.filename)}:{last.lineno})"}
    loaded = [name for name in FOREIGN[args.engine] if name in sys.modules]
    if loaded:
        result = {"status": "error", "reason": f"the {args.engine} worker imported {', '.join(loaded)}"}
    print(json.dumps({"engine": args.engine, "workload": args.workload, **result}))


if __name__ == "__main__":
    main()
