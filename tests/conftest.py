"""Shared fixtures: hypothesis profiles, the device parametrisation and the kernel-mode switch."""
import os

import pytest
from hypothesis import HealthCheck, settings

import minidl
from minidl import kernels

# ci: few, reproducible examples so the suite stays fast; thorough: for local runs.
# The device/kernel_mode fixtures hold for a whole test, so sharing them across examples is intended.
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile("ci", max_examples=8, deadline=None, derandomize=True, suppress_health_check=_QUIET)
settings.register_profile("thorough", max_examples=150, deadline=None, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# the same tests run on every device; the CUDA entry skips (with its reason) where there is none
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def pytest_collection_modifyitems(config, items):
    if minidl.cuda_is_available():
        return
    reason = pytest.mark.skip(reason="no CUDA device with CuPy on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(reason)


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(params=["auto", "reference"])
def kernel_mode(request):
    """Run a test with the compiled kernels and again with the NumPy references."""
    with kernels.use(request.param):
        yield request.param
