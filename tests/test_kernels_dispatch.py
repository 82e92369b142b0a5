"""The kernel dispatch layer: the MINIDL_KERNELS switch and the thread setup chosen at import."""
import os
import subprocess
import sys

import numpy as np
import pytest
from minidl.kernels import dispatch
from minidl.kernels.activations import erf, erf_numba, erf_reference


def test_use_switches_and_restores_the_mode():
    before = dispatch.mode()  # "auto", or "reference" when the suite runs with MINIDL_KERNELS set
    with dispatch.use("reference"):
        assert dispatch.pick(np.zeros(1), "ref", "cpu", "gpu") == "ref"
        with dispatch.use("auto"):
            assert dispatch.pick(np.zeros(1), "ref", "cpu", "gpu").__wrapped__ == "cpu"  # under the lock
        assert dispatch.mode() == "reference"
    assert dispatch.mode() == before
    with pytest.raises(ValueError, match="kernel mode must be one of"):
        with dispatch.use("fast"):
            pass


def test_environment_variable_selects_the_reference_and_rejects_typos():
    code = "import minidl.kernels.dispatch as d; print(d.mode())"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"MINIDL_KERNELS": "reference", "PATH": ""})
    assert run.stdout.strip() == "reference"
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"MINIDL_KERNELS": "numbaa", "PATH": ""})
    assert bad.returncode != 0 and "MINIDL_KERNELS must be one of" in bad.stderr


def test_parallel_kernels_run_on_the_workqueue_layer():
    # the OpenMP layer made a parallel kernel right after a BLAS call 90x slower on 2 cores
    import numba

    erf_numba(np.linspace(-2, 2, 64))
    assert numba.threading_layer() == "workqueue"


# A fresh process times a BLAS matmul before any Numba thread exists, then right after each call
# of a parallel kernel; it prints the ratio of the medians (and the threading layer used).
MATMUL_AFTER_KERNEL = """
import time, numpy as np, numba
from minidl.kernels.activations import erf_numba
a, v = np.random.default_rng(0).standard_normal((192, 192)), np.linspace(-2, 2, 1 << 16)
def timed():
    start = time.perf_counter(); a @ a; return time.perf_counter() - start
alone = np.median([timed() for _ in range(200)])
after = []
for _ in range(100):
    erf_numba(v)
    after.append(timed())
print(numba.threading_layer(), np.median(after) / alone)
"""


def matmul_slowdown_after_kernel(**environment) -> tuple[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "OMP_"))}
    run = subprocess.run([sys.executable, "-c", MATMUL_AFTER_KERNEL], capture_output=True,
                         text=True, env=env | environment, check=True)
    layer, ratio = run.stdout.split()
    return layer, float(ratio)


def slowdowns(passes, attempts: int = 3, **environment) -> tuple[str, list]:
    """Up to ``attempts`` measurements, stopping at the first for which ``passes(ratio)``: a
    timing on a shared machine can be thrown off once by a neighbour; three times in a row it is
    the code."""
    ratios = []
    for _ in range(attempts):
        layer, ratio = matmul_slowdown_after_kernel(**environment)
        ratios.append(ratio)
        if passes(ratio):
            break
    return layer, ratios


def test_a_kernel_call_does_not_slow_the_following_matmul():
    layer, ratios = slowdowns(lambda ratio: ratio < 3)
    assert layer == "workqueue"
    assert ratios[-1] < 3, f"a matmul right after a parallel kernel took {ratios}x its time alone"


def test_the_slowdown_check_detects_spinning_openmp_threads():
    """The control: with OpenMP threads that spin after the kernel, the same check fails.

    Measured here: 0.4 ms alone, 27 ms after the kernel (2 cores).
    """
    try:
        layer, ratios = slowdowns(lambda ratio: ratio > 3, NUMBA_THREADING_LAYER="omp",
                                  OMP_WAIT_POLICY="active")
    except subprocess.CalledProcessError as error:
        pytest.skip(f"Numba's OpenMP layer is not available here: {error.stderr[-200:]}")
    assert layer == "omp" and ratios[-1] > 3, f"slowdowns with spinning threads: {ratios}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erf_kernel_equals_its_reference(dtype):
    x = np.concatenate([np.linspace(-6, 6, 101), [0.0, -0.0, 1e-8]]).astype(dtype)
    np.testing.assert_array_equal(erf_numba(x), erf_reference(x))
    assert erf(x.reshape(-1, 1)[3:7]).shape == (4, 1) and erf(np.array(0.5, dtype)).shape == ()


# ----- the pick, the array module and the CUDA builder and launchers, without a GPU -------------
class FakeCupyArray:
    """Stands for a CuPy array: ``is_gpu`` goes by the type's module."""

    __module__ = "cupy._core.core"
    dtype = np.dtype(np.float32)


def reference(x):
    return "reference"


def compiled(x):
    return "compiled"


def test_pick_says_which_version_runs_where():
    cpu, gpu = np.zeros(2, np.float32), FakeCupyArray()
    with dispatch.use("auto"):
        assert dispatch.pick(cpu, reference)(cpu) == "reference"  # cpu=None: the reference
        assert dispatch.pick(cpu, reference, compiled)(cpu) == "compiled"
        assert dispatch.pick(gpu, reference, compiled)(gpu) == "reference"  # gpu=None
        assert dispatch.pick(gpu, reference, compiled, compiled) is compiled  # no CPU lock
        assert dispatch.pick(cpu.astype(np.float16), reference, compiled) is reference
    with dispatch.use("reference"):
        assert dispatch.pick(gpu, reference, compiled, compiled) is reference


def test_array_module_tells_numpy_without_importing_cupy():
    assert dispatch.array_module(np.zeros(1)) is np
    assert dispatch.is_gpu(FakeCupyArray()) and not dispatch.is_gpu(np.zeros(1))


def test_cuda_kernel_is_built_once_per_dtype_with_its_element_type():
    pytest.importorskip("cupy")  # builds the RawKernel object; compiling waits for a launch
    source = 'extern "C" __global__ void minidl_probe(T* x) { x[0] = T(1); }'
    first = dispatch.cuda_kernel(source, "minidl_probe", np.float32)
    assert dispatch.cuda_kernel(source, "minidl_probe", "float32") is first
    double = dispatch.cuda_kernel(source, "minidl_probe", np.float64)
    assert first.name == double.name == "minidl_probe"
    assert first.code == "typedef float T;\n" + source
    assert double.code == "typedef double T;\n" + source
    with pytest.raises(TypeError, match="minidl_probe: the CUDA kernel supports float32 and "
                                        "float64, got int32"):
        dispatch.cuda_kernel(source, "minidl_probe", np.int32)


class Recorder:
    """A stand-in kernel that records how it was launched."""

    def __init__(self):
        self.calls = []

    def __call__(self, grid, block, args, shared_mem=0):
        self.calls.append((grid, block, args, shared_mem))


def test_launch_covers_the_size_with_blocks_of_threads():
    kernel = Recorder()
    dispatch.launch(kernel, 0, "x")  # nothing to do: no launch
    dispatch.launch(kernel, 1, "x")
    dispatch.launch(kernel, 257, "x", "y")
    dispatch.launch(kernel, 256 * 70000, "x")  # more blocks than 65535: one thread per item
    assert kernel.calls == [((1,), (256,), ("x",), 0), ((2,), (256,), ("x", "y"), 0),
                            ((70000,), (256,), ("x",), 0)]
    rows = Recorder()
    dispatch.launch_rows(rows, 0, "x")
    dispatch.launch_rows(rows, 3, "x", shared_mem=2048)
    assert rows.calls == [((3,), (256,), ("x",), 2048)]
