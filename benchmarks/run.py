"""minidl against PyTorch: same shapes, same weights, same threads, each engine in its own process.

    python -m benchmarks [--quick] [--only mlp,cnn] [--sweep] [--repeats 3] [--steps 20] [--out DIR]

For every workload the workers alternate, PyTorch then minidl, ``--repeats`` times each (PyTorch
first because its first worker writes the shared weights and batch); a training workload also runs
PyTorch with fused optimizers (``torch_fused``), the second reference. ``--sweep`` runs the size
sweeps instead (``sweep.{json,md,png}``: ratio against batch size, sequence length, width). Each worker checks its first
steps against PyTorch's before it times anything; see ``benchmarks/README.md`` for what each number
means. This process imports neither engine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

if __package__ in (None, ""):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import machine, report
from benchmarks.engines import worker_environment
from benchmarks.workloads import select

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "benchmarks", "results")
ENGINES = ("torch", "minidl")
TRAIN_ENGINES = ("torch", "torch_fused", "minidl")  # the optimizer step differs between the two torch


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="workload name, kind (train, infer, fwd+bwd) or group (model, op, "
                             "overhead); repeatable or comma-separated")
    parser.add_argument("--sweep", action="store_true",
                        help="the size sweeps (group sweep) instead of the fixed-size table")
    parser.add_argument("--quick", action="store_true",
                        help="1 alternation, 3 timed steps, 1 warm-up: a smoke test, not a measurement")
    parser.add_argument("--repeats", type=int, default=3, help="workers per engine (alternating)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per worker")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after the check")
    parser.add_argument("--threads", type=int, default=2, help="compute threads for both engines")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for latest.json/.md/.png")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds allowed per worker")
    args = parser.parse_args(argv)
    args.only = [name for option in args.only for name in option.split(",") if name]
    if args.quick:
        args.repeats, args.steps, args.warmup = 1, 3, 1
    args.memory_steps = 1 if args.quick else 3
    return args


def run_worker(engine: str, workload, data_dir: str, args) -> dict:
    """Start one worker process and return its JSON result (a failed start is an "error" result)."""
    command = [sys.executable, "-m", "benchmarks.worker", "--engine", engine, "--workload",
               workload.name, "--data", data_dir, "--device", args.device, "--threads",
               str(args.threads), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--memory-steps", str(args.memory_steps)]
    try:
        done = subprocess.run(command, check=False, cwd=ROOT, env=worker_environment(args.threads),
                              capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"{engine} worker ran past {args.timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "error", "reason": f"{engine} worker exited {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def measure(workload, data_dir: str, args) -> dict:
    """Alternate the engines' workers; the first result that is not "ok" ends the workload."""
    engines = TRAIN_ENGINES if workload.kind == "train" else ENGINES
    runs = {engine: [] for engine in engines}
    for _ in range(args.repeats):
        for engine in engines:
            result = run_worker(engine, workload, data_dir, args)
            if result["status"] != "ok":
                reason = result["reason"]
                return {"status": result["status"],
                        "reason": reason if reason.startswith(engine) else f"{engine}: {reason}"}
            runs[engine].append(result)
    return summarize(runs, workload.unit)


def summarize(runs: dict, unit: str) -> dict:
    """Median of the worker medians per engine; the ratio's range is over adjacent worker pairs."""
    scale = 1e6 if unit == "µs" else 1e3
    engines = {}
    for engine, results in runs.items():
        medians = [r["median"] * scale for r in results]
        engines[engine] = {"median": statistics.median(medians), "min": min(medians),
                           "max": max(medians), "worker_medians": medians,
                           "steps_timed": sum(len(r["times"]) for r in results),
                           "step_memory_mib": _median_or_none(r["step_memory_mib"] for r in results),
                           "state_mib": _median_or_none(r["state_mib"] for r in results)}
    pairs = [m / t for m, t in zip(engines["minidl"]["worker_medians"],
                                   engines["torch"]["worker_medians"])]
    fused = engines.get("torch_fused")
    return {"status": "ok", "unit": unit, "engines": engines,
            "ratio": engines["minidl"]["median"] / engines["torch"]["median"],
            "ratio_min": min(pairs), "ratio_max": max(pairs),
            "ratio_fused": None if fused is None else engines["minidl"]["median"] / fused["median"]}


def _median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main(argv=None) -> dict:
    args = parse_args(argv)
    workloads = select(args.only or (["sweep"] if args.sweep else []))
    if args.device == "cuda":
        machine.require_cuda(ROOT)
    results = {"machine": machine.describe(args.threads), "device": args.device,
               "settings": {k: getattr(args, k) for k in ("repeats", "steps", "warmup", "threads",
                                                          "memory_steps", "quick")},
               "workloads": {}}
    with tempfile.TemporaryDirectory(prefix="minidl-bench-") as data_dir:
        for workload in workloads:
            print(f"{workload.name:<24}", end=" ", flush=True, file=sys.stderr)
            outcome = measure(workload, data_dir, args)
            results["workloads"][workload.name] = {"title": workload.title, "kind": workload.kind,
                                                   "group": workload.group,
                                                   "sweep": list(workload.sweep), **outcome}
            print(report.one_line(outcome), file=sys.stderr)
    results["machine"]["load_average_end"] = os.getloadavg()[0]
    paths = report.write(results, args.out, "sweep" if args.sweep else "latest")
    print("wrote " + ", ".join(paths), file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
