"""``python -m minidl.distributed.run -n N script.py args...``: start N ranks (like ``torchrun``).

It runs ``mpiexec -n N`` from the installed MPI wheel (``pip install "minidl[dist]"``), each rank
``python -m minidl.distributed.bootstrap script.py args`` (so a failing rank ends the job), and
exits with mpiexec's exit code. ``-m module`` runs a module instead of a script. As torchrun, with
more than one rank it sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and
NUMBA_NUM_THREADS to 1 unless they are set, so the ranks do not fight over the cores.

Examples::

    python -m minidl.distributed.run -n 2 examples/ddp_mnist.py --epochs 2
    python -m minidl.distributed.run -n 2 -m benchmarks.distributed --worker
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
from importlib import metadata

from minidl.distributed.mpi import INSTALL

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def find_mpiexec() -> str:
    """The mpiexec of the ``mpich`` wheel (the MPI that mpi4py loads), else one on the PATH."""
    candidates = []
    try:
        files = metadata.distribution("mpich").files or ()
        candidates += [metadata.distribution("mpich").locate_file(f) for f in files
                       if f.name == "mpiexec" and f.parent.name == "bin"]
    except metadata.PackageNotFoundError:
        pass
    candidates.append(pathlib.Path(sys.executable).parent / "mpiexec")  # a venv's bin/
    for candidate in candidates:
        if pathlib.Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(pathlib.Path(candidate).resolve())
    found = shutil.which("mpiexec")
    if found is None:
        raise RuntimeError(f"minidl.distributed.run: no mpiexec found: {INSTALL}")
    return found


def command(nproc: int, target: str, arguments: list[str], as_module: bool) -> list[str]:
    """The mpiexec command line that starts ``nproc`` ranks of ``target``."""
    rank_command = [sys.executable, "-m", "minidl.distributed.bootstrap",
                    *(["-m"] if as_module else []), target, *arguments]
    return [find_mpiexec(), "-n", str(nproc), *rank_command]


def environment(nproc: int) -> dict:
    """This process's environment, with one thread per rank by default when there are several."""
    env = dict(os.environ)
    if nproc > 1:
        for name in THREAD_VARIABLES:
            env.setdefault(name, "1")
    return env


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m minidl.distributed.run",
                                     description="Start N ranks of a data-parallel script.")
    parser.add_argument("-n", "--nproc-per-node", "--nproc_per_node", dest="nproc", type=int,
                        default=1, help="how many ranks (processes) to start (default 1)")
    parser.add_argument("-m", "--module", action="store_true",
                        help="the target is a module name, run as `python -m` would")
    parser.add_argument("target", help="the script (or, with -m, the module) each rank runs")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="its arguments")
    args = parser.parse_args(argv)
    if args.nproc < 1:
        parser.error(f"-n must be at least 1, got {args.nproc}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    launch = command(args.nproc, args.target, args.arguments, args.module)
    return subprocess.call(launch, env=environment(args.nproc))


if __name__ == "__main__":
    sys.exit(main())
