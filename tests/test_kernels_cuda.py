"""The GPU path, checked as far as a machine without a GPU allows.

1. Every CuPy RawKernel's CUDA source (each kernel module's ``CUDA_SOURCES``) compiles with nvcc,
   for float32 and float64, and defines the kernel its key names.
2. The same op tests run on CuPy through the ``device`` fixture when a device exists (elsewhere).
"""
import importlib
import pkgutil
import re
import shutil
import subprocess

import minidl.kernels
import pytest
from minidl.kernels import dispatch


def cuda_sources() -> dict:
    """Every module's CUDA_SOURCES, by "module:kernel"."""
    sources = {}
    for info in pkgutil.iter_modules(minidl.kernels.__path__):
        module = importlib.import_module(f"minidl.kernels.{info.name}")
        for name, source in getattr(module, "CUDA_SOURCES", {}).items():
            sources[f"{info.name}:{name}"] = source
    return sources


SOURCES = cuda_sources()


def test_kernel_modules_declare_their_cuda_sources():
    assert SOURCES, "no kernel module lists CUDA_SOURCES"
    for key in SOURCES:
        assert key.split(":")[1].startswith("minidl_"), f"{key}: CUDA kernels are named minidl_<op>"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed here")
@pytest.mark.parametrize("key", sorted(SOURCES))
def test_cuda_source_compiles(key, tmp_path):
    """Each source behind the prelude ``dispatch.cuda_kernel`` puts before it (``T`` typedef'd),
    for both dtypes at once (two nvcc processes)."""
    runs = {}
    for dtype in dispatch.CUDA_TYPES:
        source = tmp_path / f"{dtype}.cu"
        source.write_text(dispatch.cuda_prelude(dtype) + SOURCES[key])
        runs[dtype] = subprocess.Popen(["nvcc", "-arch=sm_80", "-ptx", str(source), "-o",
                                        str(tmp_path / f"{dtype}.ptx")], stderr=subprocess.PIPE,
                                       text=True)
    for dtype, run in runs.items():
        _, errors = run.communicate()
        assert run.returncode == 0, f"{key} does not compile for {dtype}:\n{errors}"
        entries = re.findall(r"\.entry\s+(\w+)", (tmp_path / f"{dtype}.ptx").read_text())
        assert key.split(":")[1] in entries, f"{key} ({dtype}): no such kernel in {entries}"
