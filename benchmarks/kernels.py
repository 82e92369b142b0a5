"""Every kernel of minidl.kernels, its NumPy reference against the dispatched fast version.

    python -m benchmarks.kernels [--quick] [--out DIR] [--only NAME ...]

Both versions run in this process on the same inputs (the reference under
``MINIDL_KERNELS=reference``, the fast one under ``auto``), at the sizes of the benchmark workloads;
each time is the median of ``--repeats`` calls after warm-up. The one-time JIT cost is measured in
fresh subprocesses sharing an empty ``NUMBA_CACHE_DIR``: the first call in the first subprocess
compiles (cold), the first call in the second loads the cache (warm). Writes ``kernels.json`` and
``kernels.md`` under ``--out`` (default benchmarks/results). No PyTorch needed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def _rng():
    return np.random.default_rng(0)


def _normal(shape, dtype=np.float32):
    return _rng().standard_normal(shape).astype(dtype)


# Each case: name -> (module, shape text, setup). setup() returns a zero-argument callable that
# runs the public dispatcher once on inputs made outside the call (in-place kernels get buffers).
def _relu(backward: bool):
    from minidl.kernels import activations

    x, gy = _normal((64, 32, 28, 28)), _normal((64, 32, 28, 28))  # the CNN's first activation
    if backward:
        y = activations.relu_forward(x)
        return lambda: activations.relu_backward(gy, y)
    return lambda: activations.relu_forward(x)


def _gelu(backward: bool, approximate: str):
    from minidl.kernels import activations

    x, gy = _normal((2048, 512)), _normal((2048, 512))
    if backward:
        return lambda: activations.gelu_backward(gy, x, approximate)
    return lambda: activations.gelu_forward(x, approximate)


def _relu_product():
    """ReLU's previous backward: the product gy * (y > 0) (NaN where gy is infinite and y <= 0)."""
    x, gy = _normal((64, 32, 28, 28)), _normal((64, 32, 28, 28))
    y = np.maximum(x, 0)
    return lambda: gy * (y > 0)


def _gelu_array_code(backward: bool):
    """The GELU Function's previous body: array code around the erf kernel (the fast one)."""
    from minidl.kernels import activations

    x, gy = _normal((2048, 512)), _normal((2048, 512))

    def forward():
        return 0.5 * x * (1 + activations.erf(x * (1 / math.sqrt(2))))

    def backward_():
        cdf = 0.5 * (1 + activations.erf(x * (1 / math.sqrt(2))))
        return gy * (cdf + x * np.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi)))

    return backward_ if backward else forward


def _index_add():
    from minidl.kernels import scatter

    target, rows = np.zeros((1000, 64), np.float32), _rng().integers(0, 1000, 2048)
    values = _normal((2048, 64))
    return lambda: scatter.index_add(target, rows, values)


def _im2col():
    from minidl.kernels import im2col

    x = _normal((64, 32, 14, 14))
    return lambda: im2col.im2col(x, (3, 3), (1, 1), (1, 1), (1, 1), (14, 14))


def _col2im():
    from minidl.kernels import im2col

    col = _normal((32, 3, 3, 64, 14, 14))
    return lambda: im2col.col2im(col, (14, 14), (1, 1), (1, 1), (1, 1))


POOL = dict(kernel=(1, 2, 2), stride=(1, 2, 2), padding=(0, 0, 0))  # (64, 32, 28, 28) -> 14x14


def _pool(kind: str, backward: bool):
    from minidl.kernels import pooling

    x = _normal((64 * 32, 1, 28, 28))  # (B, D, H, W) planes
    k, s, p = POOL["kernel"], POOL["stride"], POOL["padding"]
    gy = _normal((64 * 32, 1, 14, 14))
    if kind == "max":
        if backward:
            _, index = pooling.max_pool_forward(x, k, s, p, (1, 1, 1), (1, 14, 14))
            return lambda: pooling.max_pool_backward(gy, index, (1, 28, 28))
        return lambda: pooling.max_pool_forward(x, k, s, p, (1, 1, 1), (1, 14, 14))
    if backward:
        return lambda: pooling.avg_pool_backward(gy, k, s, p, (1, 28, 28), True)
    return lambda: pooling.avg_pool_forward(x, k, s, p, (1, 14, 14), True)


def _cross_entropy(backward: bool):
    from minidl.kernels import cross_entropy as ce

    logits, target = _normal((2048, 65)), _rng().integers(0, 65, 2048)
    weight = np.ones(65, np.float32)
    if backward:
        _, probs = ce.softmax_cross_entropy_forward(logits, target, weight, -100, 0.0)
        grow = np.full(2048, 1 / 2048, np.float32)
        return lambda: ce.softmax_cross_entropy_backward(probs, target, weight, -100, 0.0, grow)
    return lambda: ce.softmax_cross_entropy_forward(logits, target, weight, -100, 0.0)


def _lstm(backward: bool):
    from minidl.kernels import recurrent

    B, H = 32, 128
    xw, hw, c = _normal((B, 4 * H)), _normal((B, 4 * H)), _normal((B, H))
    h_out, c_out, gates = np.empty((B, H), np.float32), np.empty((B, H), np.float32), np.empty(
        (B, 4 * H), np.float32
    )
    if backward:
        recurrent.lstm_cell_forward(xw, hw, c, h_out, c_out, gates)
    gh, gc, g_pre, gc_out = _normal((B, H)), _normal((B, H)), np.empty((B, 4 * H), np.float32), (
        np.empty((B, H), np.float32)
    )
    if backward:
        return lambda: recurrent.lstm_cell_backward(gates, c, c_out, gh, gc, g_pre, gc_out)
    return lambda: recurrent.lstm_cell_forward(xw, hw, c, h_out, c_out, gates)


def _gru(backward: bool):
    from minidl.kernels import recurrent

    B, H = 32, 128
    xw, hw, h = _normal((B, 3 * H)), _normal((B, 3 * H)), _normal((B, H))
    h_out, gates = np.empty((B, H), np.float32), np.empty((B, 3 * H), np.float32)
    if backward:
        recurrent.gru_cell_forward(xw, hw, h, h_out, gates)
    gh, g_xw, g_hw, gh_out = (
        _normal((B, H)),
        np.empty((B, 3 * H), np.float32),
        np.empty((B, 3 * H), np.float32),
        np.empty((B, H), np.float32),
    )
    if backward:
        return lambda: recurrent.gru_cell_backward(gates, hw, h, gh, g_xw, g_hw, gh_out)
    return lambda: recurrent.gru_cell_forward(xw, hw, h, h_out, gates)


def _batch_norm(backward: bool):
    from minidl.kernels import norms

    x, w, b = _normal((64, 32, 28 * 28)), _normal(32), _normal(32)
    if backward:
        _, x_hat, _, var = norms.batch_norm_forward(x, w, b, 1e-5)
        gy, inv_std = _normal(x.shape), (1 / np.sqrt(var + 1e-5)).astype(np.float32)
        return lambda: norms.batch_norm_backward(gy, x_hat, inv_std, w)
    return lambda: norms.batch_norm_forward(x, w, b, 1e-5)


def _layer_norm(backward: bool):
    from minidl.kernels import norms

    x, w, b = _normal((2048, 128)), _normal(128), _normal(128)
    if backward:
        _, x_hat, rstd = norms.layer_norm_forward(x, w, b, 1e-5)
        gy = _normal(x.shape)
        return lambda: norms.layer_norm_backward(gy, x_hat, rstd, w)
    return lambda: norms.layer_norm_forward(x, w, b, 1e-5)


def _adam():
    from minidl.kernels import optim

    p, g = _normal((784, 100)), _normal((784, 100))  # the MLP workload's largest parameter
    m, v, work = np.zeros_like(p), np.zeros_like(p), np.empty_like(p)
    return lambda: optim.adam_update(p, g, m, v, None, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                                     step=1, work=work)


CASES = {
    "relu_fwd": ("activations", "(64, 32, 28, 28)", lambda: _relu(False)),
    "relu_bwd": ("activations", "(64, 32, 28, 28)", lambda: _relu(True)),
    "gelu_fwd": ("activations", "(2048, 512) erf", lambda: _gelu(False, "none")),
    "gelu_bwd": ("activations", "(2048, 512) erf", lambda: _gelu(True, "none")),
    "gelu_tanh_fwd": ("activations", "(2048, 512) tanh", lambda: _gelu(False, "tanh")),
    "gelu_tanh_bwd": ("activations", "(2048, 512) tanh", lambda: _gelu(True, "tanh")),
    "index_add": ("scatter", "2048 rows -> (1000, 64)", _index_add),
    "im2col": ("im2col", "(64, 32, 14, 14) 3x3 p1", _im2col),
    "col2im": ("im2col", "(64, 32, 14, 14) 3x3 p1", _col2im),
    "max_pool_fwd": ("pooling", "(64, 32, 28, 28) k2", lambda: _pool("max", False)),
    "max_pool_bwd": ("pooling", "(64, 32, 28, 28) k2", lambda: _pool("max", True)),
    "avg_pool_fwd": ("pooling", "(64, 32, 28, 28) k2", lambda: _pool("avg", False)),
    "avg_pool_bwd": ("pooling", "(64, 32, 28, 28) k2", lambda: _pool("avg", True)),
    "cross_entropy_fwd": ("cross_entropy", "(2048, 65)", lambda: _cross_entropy(False)),
    "cross_entropy_bwd": ("cross_entropy", "(2048, 65)", lambda: _cross_entropy(True)),
    "lstm_cell_fwd": ("recurrent", "B 32, H 128", lambda: _lstm(False)),
    "lstm_cell_bwd": ("recurrent", "B 32, H 128", lambda: _lstm(True)),
    "gru_cell_fwd": ("recurrent", "B 32, H 128", lambda: _gru(False)),
    "gru_cell_bwd": ("recurrent", "B 32, H 128", lambda: _gru(True)),
    "batch_norm_fwd": ("norms", "(64, 32, 28, 28)", lambda: _batch_norm(False)),
    "batch_norm_bwd": ("norms", "(64, 32, 28, 28)", lambda: _batch_norm(True)),
    "layer_norm_fwd": ("norms", "(2048, 128)", lambda: _layer_norm(False)),
    "layer_norm_bwd": ("norms", "(2048, 128)", lambda: _layer_norm(True)),
    "adam_update": ("optim", "(784, 100)", _adam),
}
# rows whose "reference" is not the kernel's reference mode but the array code an op used before
BASELINES = {
    "relu_bwd (vs the product gy * (y > 0))": ("relu_bwd", _relu_product),
    "gelu_fwd (vs array code + erf kernel)": ("gelu_fwd", lambda: _gelu_array_code(False)),
    "gelu_bwd (vs array code + erf kernel)": ("gelu_bwd", lambda: _gelu_array_code(True)),
}
NOTES = {
    "relu_bwd": "reference = where(y <= 0, 0, gy), PyTorch's select",
    "im2col": "CPU runs the reference (cpu=None): see Removed",
    "avg_pool_fwd": "CPU runs the reference (cpu=None): see Removed",
    "avg_pool_bwd": "CPU runs the reference (cpu=None): see Removed",
    "gelu_fwd": "reference = math.erf per element (np.vectorize)",
    "gelu_bwd": "reference = math.erf per element (np.vectorize)",
}


def median_ms(call, repeats: int) -> float:
    call()  # warm-up (and JIT, where the cache is cold)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def time_case(name: str, repeats: int) -> dict:
    from minidl import kernels

    module, shape, setup = CASES[name]
    with kernels.use("reference"):
        reference = median_ms(setup(), repeats)
    with kernels.use("auto"):
        fast = median_ms(setup(), repeats)
    return {"kernel": name, "module": module, "shape": shape, "reference_ms": reference,
            "fast_ms": fast, "speedup": reference / fast, "note": NOTES.get(name, "")}


def time_baseline(label: str, repeats: int) -> dict:
    from minidl import kernels

    name, baseline = BASELINES[label]
    module, shape, setup = CASES[name]
    with kernels.use("auto"):
        reference, fast = median_ms(baseline(), repeats), median_ms(setup(), repeats)
    return {"kernel": label, "module": module, "shape": shape, "reference_ms": reference,
            "fast_ms": fast, "speedup": reference / fast, "note": "reference = previous op body"}


def first_calls(names: list) -> dict:
    """In this (fresh) process: seconds of each case's first fast call, in order."""
    from minidl import kernels

    seconds = {}
    with kernels.use("auto"):
        for name in names:
            call = CASES[name][2]()  # a backward's setup runs its forward (timed in its own row)
            start = time.perf_counter()
            call()
            seconds[name] = time.perf_counter() - start
    return seconds


def _subprocess(args: list, cache_dir: str) -> dict:
    """The JSON line a fresh ``python -m benchmarks.kernels ARGS`` prints, or {"error": its last
    stderr line} when it fails (a kernel that does not compile from an empty cache)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, MINIDL_KERNELS="auto")
    result = subprocess.run([sys.executable, "-m", "benchmarks.kernels", *args], env=env,
                            capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    if result.returncode:
        lines = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
        return {"error": lines[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def jit_costs(names: list) -> tuple[dict, dict, dict, float]:
    """(cold, warm) first-call seconds per case, one module per subprocess pair, errors per case,
    and the seconds of ``import minidl`` with the last module's warm cache."""
    by_module: dict = {}
    for name in names:
        by_module.setdefault(CASES[name][0], []).append(name)
    cold, warm, errors = {}, {}, {}
    with tempfile.TemporaryDirectory() as cache_dir:
        for module_names in by_module.values():
            module_dir = os.path.join(cache_dir, module_names[0])
            for seconds in (cold, warm):
                found = _subprocess(["--first-calls", *module_names], module_dir)
                if "error" in found:
                    errors.update(dict.fromkeys(module_names, found["error"]))
                else:
                    seconds.update(found)
        imported = _subprocess(["--import-time"], module_dir)
    return cold, warm, errors, imported.get("import_minidl_s", float("nan"))


def markdown(rows: list, import_seconds: float, machine: str) -> str:
    lines = [
        "# minidl kernels: NumPy reference vs dispatched fast version", "",
        f"{machine}. Medians of the repeated calls; cold JIT = first call with an empty Numba "
        "cache (compiles), warm = first call in a new process with that cache.", "",
        "| kernel | shape | reference ms | fast ms | speedup | cold JIT s | warm first-call s "
        "| note |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        cold, warm = row.get("cold_jit_s"), row.get("warm_first_call_s")
        lines.append(
            f"| {row['kernel']} | {row['shape']} | {row['reference_ms']:.3f} "
            f"| {row['fast_ms']:.3f} "
            f"| {row['speedup']:.2f}x | {'' if cold is None else f'{cold:.2f}'} "
            f"| {'' if warm is None else f'{warm:.3f}'} | {row['note']} |"
        )
    lines += ["", f"`import minidl` with a warm cache: {import_seconds:.2f} s", "", REMOVED]
    return "\n".join(lines)


# The measurements that justified deleting compiled versions the dispatcher never ran (issue 17).
# The code is gone, so this record is kept here and written under every new table.
REMOVED = """## Removed

Compiled versions that the dispatcher never ran, timed against the reference that does run before
they were deleted (shared 2-core machine, 2026-12-03; medians of 41 interleaved calls; ratio =
Numba ms / reference ms, > 1: the Numba loop slower). "after GEMM": a 256x256 float32 matmul before
each call, as in a training step, where OpenBLAS's threads still hold the cores; "1 thread":
NUMBA_NUM_THREADS=1.

| kernel | shape | reference ms | Numba / reference: alone | after GEMM | 1 thread |
|---|---|---:|---:|---:|---:|
| im2col | (64, 32, 14, 14) 3x3 p1 | 3.9 | 1.04 | 1.96 | 2.02 |
| im2col | (64, 1, 28, 28) 5x5 | 0.89 | 2.04 | 2.01 | 2.08 |
| im2col | (64, 1, 8, 8) 3x3 p1 | 0.23 | 0.87 | 0.71 | 0.82 |
| im2col | (16, 64, 32, 32) 3x3 s2 p1 | 5.4 | 0.62 | 0.92 | 0.87 |
| avg_pool fwd | (2048, 1, 28, 28) k2 s2 | 5.3 | 1.18 | 0.64 | 0.88 |
| avg_pool bwd | (2048, 1, 28, 28) k2 s2 | 7.7 | 0.92 | 0.89 | 0.94 |
| avg_pool fwd | (2048, 1, 28, 28) k3 s1 p1 | 22 | 0.75 | 1.43 | 1.48 |
| avg_pool bwd | (2048, 1, 28, 28) k3 s1 p1 | 27 | 0.73 | 1.31 | 1.29 |
| avg_pool fwd | (1024, 1, 14, 14) k3 s2 p1 | 1.6 | 0.45 | 0.75 | 0.82 |
| avg_pool bwd | (1024, 1, 14, 14) k3 s2 p1 | 2.4 | 0.57 | 0.50 | 0.58 |
| avg_pool fwd | (512, 1, 16, 16) k2 s2 | 0.49 | 1.34 | 1.05 | 1.37 |
| avg_pool bwd | (512, 1, 16, 16) k2 s2 | 0.67 | 0.93 | 0.86 | 0.93 |
| dropout mask | (2048, 512) p 0.1 | 7.5 | 1.08-1.18 | | |
| dropout mask | (64, 128) p 0.1 | 0.058 | 1.69-1.74 | | |

- im2col (Numba loop over (channel, offset, image) tasks): 2x slower at the CNN workload's shape in
  a training step (after a GEMM); ahead only on small or strided inputs. The reference's one
  strided copy per kernel offset stays the CPU path.
- Average pooling (Numba window loops): no consistent winner: ahead on small strided windows
  (0.5-0.8x), behind on overlapping 3x3 stride-1 windows after a GEMM (1.3-1.5x), within noise at
  the k2 s2 shape of the benchmarks. The reference stays the CPU path; a new compiled version
  would have to win the k3 s1 rows.
- Dropout mask (Numba drawing the same stream from the generator): slower at every size; the
  draws must stay serial to keep the stream, and ``Generator.random(shape)`` is compiled already.
"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats instead of 25")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), help="these kernels only")
    parser.add_argument("--first-calls", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--import-time", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.import_time:
        start = time.perf_counter()
        import minidl  # noqa: F401

        print(json.dumps({"import_minidl_s": time.perf_counter() - start}))
        return
    if args.first_calls:
        print(json.dumps(first_calls(args.first_calls)))
        return
    names = args.only or list(CASES)
    repeats = 5 if args.quick else 25
    rows = [time_case(name, repeats) for name in names]
    rows += [time_baseline(label, repeats) for label, (name, _) in BASELINES.items()
             if name in names]
    cold, warm, errors, import_seconds = jit_costs(names)
    for row in rows:
        row["cold_jit_s"] = cold.get(row["kernel"])
        row["warm_first_call_s"] = warm.get(row["kernel"])
        if row["kernel"] in errors:
            row["note"] = f"cold-cache JIT failed: {errors[row['kernel']]}"
    machine = f"{os.cpu_count()} cores, load {open('/proc/loadavg').read().split()[0]}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernels.json").write_text(json.dumps(
        {"machine": machine, "repeats": repeats, "import_minidl_s": import_seconds, "rows": rows},
        indent=2))
    table = markdown(rows, import_seconds, machine)
    (args.out / "kernels.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
