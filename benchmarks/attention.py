"""minidl's two attention paths against each other: the blocked ("flash") kernel and the
materialised one, by sequence length.

    python -m benchmarks.attention [--quick] [--out DIR]

Both run in this process on the same inputs (batch 16, 4 heads, head dim 32, float32), taking
turns call by call; each time is the median of the repeated calls after a warm-up, for inference
(no_grad) and a forward + backward, without and with a causal mask. Peak memory is what
tracemalloc sees NumPy allocate during one forward + backward. The crossover chosen from these
figures is ``minidl.ops.attention.BLOCKED_MIN_KEYS`` (with and without a causal mask). Writes ``flash_attention.md`` under
``--out`` (default benchmarks/results). No PyTorch needed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
LENGTHS = (64, 128, 256, 512, 1024)
PATHS = ("blocked", "materialised")


def _inputs(length: int):
    import minidl

    rng = np.random.default_rng(0)
    return [minidl.tensor(rng.standard_normal((16, 4, length, 32)).astype(np.float32),
                          requires_grad=True) for _ in range(3)]


def _step(path: str, tensors, causal: bool, train: bool):
    """One call of scaled_dot_product_attention on ``path`` (forward, or forward + backward)."""
    import minidl
    from minidl.ops import attention

    keys = 1 if path == "blocked" else 1 << 62
    attention.BLOCKED_MIN_KEYS = {"causal": keys, "full": keys}
    if train:
        attention.scaled_dot_product_attention(*tensors, is_causal=causal).sum().backward()
        return
    with minidl.no_grad():
        attention.scaled_dot_product_attention(*tensors, is_causal=causal)


def _peak_mib(path: str, tensors, causal: bool) -> float:
    tracemalloc.start()
    _step(path, tensors, causal, train=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def measure(lengths, repeats: int) -> list:
    """One row per (length, causal, train): both paths' median ms, and peak MiB for training."""
    from minidl.ops import attention

    default = attention.BLOCKED_MIN_KEYS
    rows = []
    try:
        for length in lengths:
            tensors = _inputs(length)
            for causal in (False, True):
                for train in (False, True):
                    times = {path: [] for path in PATHS}
                    for path in PATHS:  # warm-up (and JIT)
                        _step(path, tensors, causal, train)
                    for _ in range(repeats):
                        for path in PATHS:
                            start = time.perf_counter()
                            _step(path, tensors, causal, train)
                            times[path].append(time.perf_counter() - start)
                    row = {"length": length, "causal": causal, "train": train}
                    row.update({path: statistics.median(times[path]) * 1e3 for path in PATHS})
                    if train:
                        row.update({f"{path}_mib": _peak_mib(path, tensors, causal)
                                    for path in PATHS})
                    rows.append(row)
    finally:
        attention.BLOCKED_MIN_KEYS = default
    return rows


def markdown(rows: list, machine: str) -> str:
    from minidl.ops.attention import BLOCKED_MIN_KEYS

    lines = ["# Blocked against materialised attention", "",
             f"minidl's scaled_dot_product_attention, batch 16, 4 heads, head dim 32, float32; "
             f"{machine}. Medians, the two paths taking turns in one process; ratio = blocked ÷ "
             f"materialised (below 1: blocked is faster). Peak MiB: NumPy's allocations during "
             f"one forward + backward (tracemalloc). `BLOCKED_MIN_KEYS` is {BLOCKED_MIN_KEYS}: "
             "the blocked kernel runs from that many keys on, with and without a causal mask.",
             "", "| seq | causal | step | blocked ms | materialised ms | ratio | peak MiB "
             "blocked / materialised |", "|---:|---|---|---:|---:|---:|---|"]
    for row in rows:
        memory = (f"{row['blocked_mib']:.0f} / {row['materialised_mib']:.0f}" if row["train"]
                  else "")
        lines.append(f"| {row['length']} | {'yes' if row['causal'] else 'no'} | "
                     f"{'fwd+bwd' if row['train'] else 'inference'} | {row['blocked']:.2f} | "
                     f"{row['materialised']:.2f} | {row['blocked'] / row['materialised']:.2f} | "
                     f"{memory} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two short lengths, one call each")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    lengths, repeats = ((16, 32), 1) if args.quick else (LENGTHS, 7)
    rows = measure(lengths, repeats)
    machine = f"{os.cpu_count()} cores, load {open('/proc/loadavg').read().split()[0]}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, machine)
    (out / "flash_attention.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
