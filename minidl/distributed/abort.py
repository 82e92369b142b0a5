"""Ending the whole job when one rank fails, so that a job never hangs (ChainerMN's except hook).

Why it is needed: a rank that raises would otherwise exit through ``MPI_Finalize``, which waits
for the other ranks, while they wait in a collective for the rank that has gone: the job hangs
forever (measured with MPICH: also when the rank fails before MPI is initialised). Instead the
failing rank prints its traceback, each line marked with its rank, and calls ``MPI_Abort``,
which makes ``mpiexec`` stop every rank at once and exit non-zero.

``install()`` sets this as ``sys.excepthook`` (done by ``init_process_group`` when the world has
more than one rank); ``minidl.distributed.bootstrap`` calls :func:`abort_job` for any failure of
a script started by the launcher, including one before ``init_process_group`` and a non-zero
``sys.exit``.
"""
from __future__ import annotations

import os
import sys
import time
import traceback

_FORWARD_SECONDS = 0.2  # time for mpiexec to forward the message before the abort
_previous_hook = None  # sys.excepthook before install(), put back by uninstall()


def abort_job(message: str, code: int = 1) -> None:
    """Print ``message`` on stderr with this rank's mark on each line, then abort every rank."""
    try:
        from mpi4py import MPI  # initialises MPI if the failure came before that
    except ImportError:  # no MPI, so nothing can wait for this process: a plain exit is enough
        MPI = None
    rank = MPI.COMM_WORLD.Get_rank() if MPI is not None else os.environ.get("PMI_RANK", "?")
    sys.stdout.flush()
    sys.stderr.write("".join(f"[rank {rank}] {line}\n" for line in message.rstrip().splitlines()))
    sys.stderr.write(f"[rank {rank}] aborting the job (exit code {code})\n")
    sys.stderr.flush()
    if MPI is not None:
        # mpiexec's proxy forwards this rank's stderr from a pipe; the abort tears the proxy down,
        # and lines still in the pipe are lost (seen once on a loaded machine: an empty log)
        time.sleep(_FORWARD_SECONDS)
        MPI.COMM_WORLD.Abort(code)
    os._exit(code)


def _hook(exc_type, exc, tb) -> None:
    abort_job("".join(traceback.format_exception(exc_type, exc, tb)))


def install() -> None:
    """Make an uncaught exception on this rank end the whole job (``sys.excepthook``)."""
    global _previous_hook
    if sys.excepthook is not _hook:
        _previous_hook, sys.excepthook = sys.excepthook, _hook


def uninstall() -> None:
    """Put back the ``sys.excepthook`` that :func:`install` replaced."""
    global _previous_hook
    if sys.excepthook is _hook:
        sys.excepthook, _previous_hook = _previous_hook, None
