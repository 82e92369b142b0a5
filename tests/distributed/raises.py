"""A 2-rank job in which rank 1 fails while rank 0 waits for it: ``raises.py MODE``.

MODE "after-init": rank 1 raises after init_process_group (the except hook ends the job);
"before-init": it raises before (the launcher's bootstrap ends the job); "exit": it calls
``sys.exit(3)`` after init. Without the abort handling each would hang in rank 0's collective.
"""
import os
import sys

import minidl
import minidl.distributed as dist

MODE = sys.argv[1]
RANK = int(os.environ["PMI_RANK"])  # set by MPICH's mpiexec for every process

if MODE == "before-init" and RANK == 1:
    raise RuntimeError("rank 1 fails on purpose before init")
dist.init_process_group("mpi")
if RANK == 1 and MODE == "after-init":
    raise RuntimeError("rank 1 fails on purpose after init")
if RANK == 1 and MODE == "exit":
    sys.exit(3)
dist.all_reduce(minidl.ones(3))  # rank 0 waits here for a rank that is gone
print("rank 0 was not stopped", flush=True)
