"""``import minidl`` keeps freed memory in the process: re-allocating an activation-sized array
does not fault its pages in again (glibc only)."""
import os
import platform
import subprocess
import sys

import pytest

# allocate and free arrays of a CNN's activation sizes, 6 rounds; print the page faults per round
COUNT_FAULTS = """
import resource, sys
import numpy as np
if sys.argv[1] == "minidl":
    import minidl
rounds = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = np.ones((64, 32, 28, 28), np.float32)
    y = x + 1
    del x, y
    rounds.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*rounds)
"""


def faults_per_round(importing: str, **environment) -> list[int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    run = subprocess.run([sys.executable, "-c", COUNT_FAULTS, importing], capture_output=True,
                         text=True, env=env | environment, check=True)
    return [int(n) for n in run.stdout.split()]


pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc only")


def test_reallocation_faults_no_pages_in_after_import():
    # control: plain NumPy faults ~1,060 pages (measured here) in every round, minidl 0
    assert min(faults_per_round("numpy")[1:]) > 500
    assert max(faults_per_round("minidl")[1:]) < 50


def test_a_user_malloc_setting_is_left_alone():
    assert min(faults_per_round("minidl", MALLOC_ARENA_MAX="2")[1:]) > 500
