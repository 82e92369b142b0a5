"""Python threads: kernels called from several threads at once, and grad/anomaly mode per thread."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import minidl
from minidl.kernels import dispatch
from minidl.kernels.activations import erf, erf_numba, erf_reference

# Four threads, started together, each run max-pool, layer-norm and a cross-entropy large enough
# to go parallel (64k logits), forward and backward, and compare their gradients with the ones
# computed before the threads started. Without the kernel lock the workqueue layer aborts.
CONCURRENT_KERNELS = """
import threading, numba, numpy as np, minidl
import minidl.nn.functional as F

def gradients(seed):
    rng = np.random.default_rng(seed)
    x = minidl.tensor(rng.standard_normal((4, 8, 12, 12)).astype(np.float32), requires_grad=True)
    z = minidl.tensor(rng.standard_normal((64, 1024)).astype(np.float32), requires_grad=True)
    target = minidl.tensor(rng.integers(0, 1024, 64))
    F.max_pool2d(x, 2).sum().backward()
    F.cross_entropy(F.layer_norm(z, (1024,)), target).backward()
    return x.grad.numpy(), z.grad.numpy()

expected = [gradients(seed) for seed in range(4)]
start, failures = threading.Barrier(4), []

def work(seed):
    start.wait()
    try:
        for _ in range(ROUNDS):
            got = gradients(seed)
            if not all(np.array_equal(g, e) for g, e in zip(got, expected[seed])):
                failures.append(f"thread {seed}: other gradients than when run alone")
                return
    except Exception as error:
        failures.append(f"thread {seed}: {error!r}")

threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
assert not failures, failures
print("ok", numba.threading_layer())
"""


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter with the compiled kernels on Numba's default layer here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "MINIDL_KERNELS"))}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_threads_running_parallel_kernels_at_once_neither_abort_nor_mix_results():
    run = run_python(CONCURRENT_KERNELS.replace("ROUNDS", "60"))
    assert run.returncode >= 0, f"killed by signal {-run.returncode}: {run.stderr[-600:]}"
    assert run.returncode == 0 and run.stdout.strip() == "ok workqueue", run.stderr[-1500:]


@pytest.fixture
def compiled_kernels():
    with dispatch.use("auto"):  # also when the suite runs with MINIDL_KERNELS=reference
        yield


def test_a_compiled_kernel_waits_while_another_thread_holds_the_kernel_lock(compiled_kernels):
    x = np.linspace(-2, 2, 64)
    holding, release, done = threading.Event(), threading.Event(), threading.Event()

    def hold():
        with dispatch._kernel_lock:
            holding.set()
            release.wait(10)

    def call():
        erf(x)
        done.set()

    holder, caller = threading.Thread(target=hold), threading.Thread(target=call)
    holder.start()
    assert holding.wait(10)
    caller.start()
    blocked = not done.wait(0.3)
    release.set()
    holder.join(10)
    caller.join(10)
    assert blocked, "erf ran while another thread held the kernel lock"
    assert done.is_set()


def test_pick_wraps_the_compiled_version_and_leaves_a_reference_cpu_path_unlocked(
        compiled_kernels):
    x = np.linspace(-2, 2, 16)
    locked = dispatch.pick(x, erf_reference, erf_numba, None)
    assert locked is not erf_numba and locked.__wrapped__ is erf_numba
    assert dispatch.pick(x, erf_reference, erf_numba, None) is locked  # one wrapper per kernel
    np.testing.assert_array_equal(locked(x), erf_numba(x))
    assert dispatch.pick(x, erf_reference, erf_reference, None) is erf_reference
    with dispatch.use("reference"):
        assert dispatch.pick(x, erf_reference, erf_numba, None) is erf_reference


# A thread holds the kernel lock (as if inside a kernel) while the main thread forks; the child,
# which has no such thread, must be able to run a kernel. The parent reports the child's fate.
FORK_WHILE_LOCKED = """
import os, threading, time, numpy as np
from minidl.kernels import dispatch
from minidl.kernels.activations import erf
holding, release = threading.Event(), threading.Event()
def hold():
    with dispatch._kernel_lock:
        holding.set()
        release.wait(30)
threading.Thread(target=hold, daemon=True).start()
assert holding.wait(10)
pid = os.fork()
if pid == 0:
    erf(np.linspace(-2, 2, 64))
    os._exit(0)
for _ in range(200):
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("exit", os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    print("hung")
release.set()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_while_another_thread_holds_the_kernel_lock_runs_kernels():
    run = run_python(FORK_WHILE_LOCKED)
    assert run.returncode == 0, run.stderr[-1500:]
    assert run.stdout.strip() == "exit 0", f"the forked child: {run.stdout.strip()}"


# ----- grad mode and anomaly mode are per thread -----
def in_thread(fn):
    """Run ``fn`` in a new thread and return its result (re-raising what it raised)."""
    outcome = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as error:  # noqa: BLE001  (handed to the calling thread)
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), f"{fn} still running after 30 s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_no_grad_in_one_thread_leaves_another_threads_recording_alone():
    x = minidl.randn(3, requires_grad=True)
    inside, leave = threading.Event(), threading.Event()
    recorded_inside = []

    def without_grad():
        with minidl.no_grad():
            recorded_inside.append((x * 2).requires_grad)
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=without_grad)
    thread.start()
    assert inside.wait(10)
    y = x * 2  # the main thread, while the other sits inside no_grad
    leave.set()
    thread.join(10)
    assert minidl.is_grad_enabled() and y.requires_grad and y.grad_fn is not None
    assert recorded_inside == [False]
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 2.0, np.float32))


def test_a_backward_in_one_thread_leaves_another_threads_recording_alone():
    # the graph walk turns grad mode off while it runs (create_graph=False): in its own thread only
    x = minidl.randn(3, requires_grad=True)
    walking, leave = threading.Event(), threading.Event()

    def pause(gradient):
        walking.set()
        leave.wait(10)

    y = x * 3
    y.register_hook(pause)
    thread = threading.Thread(target=lambda: y.sum().backward())
    thread.start()
    assert walking.wait(10)
    z = x + 1  # the main thread, while the other is inside backward
    leave.set()
    thread.join(10)
    assert z.requires_grad and z.grad_fn is not None
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 3.0, np.float32))


def test_a_new_thread_starts_with_grad_enabled_and_anomaly_off():
    x = minidl.randn(2, requires_grad=True)
    with minidl.no_grad(), minidl.autograd.detect_anomaly():
        modes = in_thread(lambda: (minidl.is_grad_enabled(), minidl.autograd.is_anomaly_enabled(),
                                   (x * 2).requires_grad))
        assert not minidl.is_grad_enabled() and minidl.autograd.is_anomaly_enabled()
    assert modes == (True, False, True)


def test_grad_mode_switches_work_as_context_managers_and_decorators_in_a_thread():
    x = minidl.randn(2, requires_grad=True)

    @minidl.no_grad()
    def doubled(t):
        return t * 2

    @minidl.enable_grad()
    def tripled(t):
        return t * 3

    def in_a_thread():
        seen = [doubled(x).requires_grad, (x * 2).requires_grad]
        with minidl.no_grad():
            seen += [(x * 2).requires_grad, tripled(x).requires_grad]
            with minidl.enable_grad():
                seen.append((x * 2).requires_grad)
            seen.append(minidl.is_grad_enabled())
        minidl.set_grad_enabled(False)  # as a call: at once, for this thread only
        seen.append((x * 2).requires_grad)
        with minidl.set_grad_enabled(True):
            seen.append((x * 2).requires_grad)
        seen.append(minidl.is_grad_enabled())
        return seen

    assert in_thread(in_a_thread) == [False, True, False, True, True, False, False, True, False]
    assert minidl.is_grad_enabled() and (x * 2).requires_grad  # the main thread never switched
    with minidl.no_grad():
        assert not doubled(x).requires_grad and tripled(x).requires_grad
        in_another = in_thread(lambda: (doubled(x).requires_grad, tripled(x).requires_grad))
        assert in_another == (False, True)
    assert minidl.is_grad_enabled()


def log_is_nan(x) -> bool:
    """log(x)[0] is NaN: computed without anomaly mode raising (errstate is per thread too)."""
    with np.errstate(invalid="ignore"):
        return bool(np.isnan(minidl.log(x).numpy()[0]))


def test_anomaly_mode_is_per_thread():
    x = minidl.tensor([-1.0, 4.0], requires_grad=True)

    def in_anomaly_mode():
        with minidl.autograd.detect_anomaly(), np.errstate(invalid="ignore"):
            with pytest.raises(RuntimeError, match="anomaly: Function 'Log' produced NaN"):
                minidl.log(x)
            return in_thread(lambda: log_is_nan(x))  # a thread started inside: off there

    assert in_thread(in_anomaly_mode)
    inside, leave = threading.Event(), threading.Event()

    def hold_anomaly_mode():
        with minidl.autograd.set_detect_anomaly(True):
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=hold_anomaly_mode)
    thread.start()
    assert inside.wait(10)
    enabled_here = minidl.autograd.is_anomaly_enabled()
    nan_here = log_is_nan(x)  # the main thread, while the other is in anomaly mode
    leave.set()
    thread.join(10)
    assert not enabled_here and nan_here
