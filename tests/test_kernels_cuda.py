"""The GPU path, checked as far as a machine without a GPU allows.

1. Every CuPy RawKernel's CUDA source (each kernel module's ``CUDA_SOURCES``) compiles with nvcc.
2. The same op tests run on CuPy through the ``device`` fixture when a device exists (elsewhere).
"""
import importlib
import pkgutil
import re
import shutil
import subprocess

import minidl.kernels
import pytest


def cuda_sources() -> dict:
    """Every module's CUDA_SOURCES, each behind the module's CUDA_PRELUDE (e.g. a typedef) if any."""
    sources = {}
    for info in pkgutil.iter_modules(minidl.kernels.__path__):
        module = importlib.import_module(f"minidl.kernels.{info.name}")
        prelude = getattr(module, "CUDA_PRELUDE", "")
        for name, source in getattr(module, "CUDA_SOURCES", {}).items():
            sources[f"{info.name}:{name}"] = prelude + source
    return sources


SOURCES = cuda_sources()


def test_kernel_modules_declare_their_cuda_sources():
    assert SOURCES, "no kernel module lists CUDA_SOURCES"
    for key in SOURCES:
        assert key.split(":")[1].startswith("minidl_"), f"{key}: CUDA kernels are named minidl_<op>"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed here")
@pytest.mark.parametrize("key", sorted(SOURCES))
def test_cuda_source_compiles(key, tmp_path):
    source = tmp_path / "kernel.cu"
    source.write_text(SOURCES[key])
    result = subprocess.run(["nvcc", "-arch=sm_80", "-ptx", str(source), "-o", str(tmp_path / "k.ptx")],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"{key} does not compile:\n{result.stderr}"
    entries = re.findall(r"\.entry\s+(\w+)", (tmp_path / "k.ptx").read_text())
    assert any(e.startswith(key.split(":")[1]) for e in entries), f"{key}: no such kernel in {entries}"
