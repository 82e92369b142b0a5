"""``python -m minidl.distributed.bootstrap [-m] target args...``: one rank of a launched job.

The launcher (:mod:`minidl.distributed.run`) starts this on every rank. It runs the script (or,
with ``-m``, the module) as ``__main__``, as ``python target args`` would, and turns any failure
into the end of the whole job (:func:`minidl.distributed.abort.abort_job`): an exception, also one
raised before ``init_process_group``, and a ``sys.exit`` with a non-zero code.
"""
from __future__ import annotations

import os
import runpy
import sys
import traceback

from minidl.distributed.abort import abort_job


def run(target: str, as_module: bool) -> None:
    """Run ``target`` as ``__main__`` with ``sys.argv`` already set to its own arguments."""
    if as_module:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
        return
    sys.path[0] = os.path.dirname(os.path.abspath(target))  # as `python script.py` sets it
    runpy.run_path(target, run_name="__main__")


def main(argv: list[str]) -> None:
    as_module = bool(argv) and argv[0] == "-m"
    target, *arguments = argv[1:] if as_module else argv
    sys.argv = [target, *arguments]
    try:
        run(target, as_module)
    except SystemExit as stop:
        if stop.code in (None, 0):
            raise
        code = stop.code if isinstance(stop.code, int) else 1
        abort_job(f"{target} exited with {stop.code!r}", code)
    except BaseException:  # noqa: BLE001 (KeyboardInterrupt too: every rank must stop)
        abort_job(_user_traceback(sys.exc_info()[1]))


def _user_traceback(error: BaseException) -> str:
    """The traceback of ``error`` from the script's own frames on (without this module's and
    runpy's)."""
    tb = error.__traceback__
    while tb is not None and (tb.tb_frame.f_code.co_filename == __file__
                              or tb.tb_frame.f_globals.get("__name__") == "runpy"):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


if __name__ == "__main__":
    main(sys.argv[1:])
