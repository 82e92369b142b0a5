"""The kernel dispatch layer: the MINIDL_KERNELS switch and the thread setup chosen at import."""
import subprocess
import sys

import numpy as np
import pytest

from minidl.kernels import dispatch
from minidl.kernels.activations import erf, erf_numba, erf_reference


def test_use_switches_and_restores_the_mode():
    assert dispatch.mode() == "auto"
    with dispatch.use("reference"):
        assert dispatch.pick(np.zeros(1), "ref", "cpu", "gpu") == "ref"
    assert dispatch.pick(np.zeros(1), "ref", "cpu", "gpu") == "cpu"
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erf_kernel_equals_its_reference(dtype):
    x = np.concatenate([np.linspace(-6, 6, 101), [0.0, -0.0, 1e-8]]).astype(dtype)
    np.testing.assert_array_equal(erf_numba(x), erf_reference(x))
    assert erf(x.reshape(-1, 1)[3:7]).shape == (4, 1) and erf(np.array(0.5, dtype)).shape == ()
