"""What the numbers were measured on: CPU, BLAS, versions, environment, and NumPy's GEMM speed.

Runs in the parent process, which imports NumPy and threadpoolctl but neither engine (versions come
from package metadata).
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from importlib import metadata

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

# reported, never changed: these two slow OpenBLAS down when they don't match the machine
REPORTED_ENVIRONMENT = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS",
                        "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                        "MINIDL_KERNELS")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_libraries() -> list:
    """NumPy's BLAS as threadpoolctl sees it: library, version, kernel (architecture), threads."""
    keep = ("internal_api", "version", "architecture", "threading_layer", "num_threads", "filepath")
    return [{k: pool.get(k) for k in keep} for pool in threadpool_info() if pool["user_api"] == "blas"]


def gemm_gflops(threads: int, n: int = 1024, repeats: int = 10) -> float:
    """float32 n×n×n matrix products per second with ``threads`` BLAS threads (median of repeats)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    times = []
    with threadpool_limits(limits=threads):
        a @ b  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
    return 2 * n**3 / sorted(times)[len(times) // 2] / 1e9


def describe(threads: int) -> dict:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads,
        "python": platform.python_version(), "numpy": np.__version__,
        "numba": _version("numba"), "torch": _version("torch"), "minidl": _version("minidl"),
        "blas": blas_libraries(),
        "environment": {name: os.environ.get(name) for name in REPORTED_ENVIRONMENT
                        if name in os.environ},
        "numpy_gemm_gflops": gemm_gflops(threads),
        "load_average_start": os.getloadavg()[0],
    }


def require_cuda(root: str) -> None:
    """Stop with a clear message unless both engines see a CUDA device (checked in child processes)."""
    probes = {"PyTorch": "import torch; print(torch.cuda.is_available())",
              "minidl": "import minidl; print(minidl.cuda_is_available())"}
    missing = []
    for engine, code in probes.items():
        done = subprocess.run([sys.executable, "-c", code], check=False, cwd=root,
                              capture_output=True, text=True)
        if done.stdout.strip() != "True":
            missing.append(engine)
    if missing:
        raise SystemExit(f"--device cuda: no CUDA device usable by {' and '.join(missing)} on this "
                         "machine (PyTorch needs a CUDA build, minidl needs CuPy and a GPU); "
                         "run without --device for the CPU benchmarks")
