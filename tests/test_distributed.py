"""minidl.distributed, DistributedDataParallel and DistributedSampler.

The checks that need several processes run in 2-rank jobs started here in a subprocess (one
thread per rank, a timeout, the process group killed on expiry), so ``python -m pytest`` runs
them: ``tests/distributed/checks.py`` runs once for the whole module and each of its checks is a
test below; ``raises.py`` checks that a failing rank ends the job. What needs no MPI (the
sampler, the launcher's plumbing, errors before any process group) runs in this process, which
never initialises MPI.
"""
import importlib.util
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch.utils.data.distributed as torch_distributed

import minidl
import minidl.distributed as dist
from minidl import nn
from minidl.data import DataLoader, DistributedSampler, TensorDataset
from minidl.distributed import run
from minidl.nn.parallel import DistributedDataParallel

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "tests" / "distributed"
ONE_THREAD = {name: "1" for name in run.THREAD_VARIABLES}
CHECKS = ["all_reduce_matches_numpy", "all_reduce_writes_a_strided_tensor_and_bumps_its_version",
          "broadcast_all_gather_and_reduce_scatter_match_numpy",
          "objects_barrier_and_the_group_queries", "collective_errors_name_the_problem",
          "ddp_follows_one_process_sgd_momentum_several_buckets",
          "ddp_follows_one_process_adam_one_bucket",
          "ddp_gives_every_rank_rank_0s_weights_and_buffers",
          "no_sync_accumulates_locally_then_averages_the_sum", "ddp_errors_name_the_problem",
          "sampler_takes_rank_and_world_from_the_group",
          "fit_in_ddp_logs_all_ranks_and_only_rank_0_prints_and_saves",
          "fit_in_ddp_splits_an_x_y_pair_between_the_ranks", "init_checks_world_size_and_rank"]

needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None,
                               reason='needs mpi4py and MPICH: pip install "minidl[dist]"')


def launch(arguments: list, timeout: float, env=None) -> tuple:
    """Run a command in its own process group; (exit code, output, seconds). On timeout the
    whole group (mpiexec and its ranks) is killed and the test fails with the output so far."""
    start = time.monotonic()
    process = subprocess.Popen(arguments, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               env={**os.environ, **ONE_THREAD, **(env or {})})
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{arguments} still ran after {timeout} s (a hang); output:\n{output}")
    return process.returncode, output, time.monotonic() - start


def launcher(*arguments: str) -> list:
    return [sys.executable, "-m", "minidl.distributed.run", *arguments]


# ----- the 2-rank checks -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    code, output, _ = launch(launcher("-n", "2", str(SCRIPTS / "checks.py"),
                                      str(folder / "results.json"), str(folder)), timeout=240)
    if code != 0 or not (folder / "results.json").exists():
        pytest.fail(f"the 2-rank job failed (exit code {code}):\n{output[-6000:]}")
    return json.loads((folder / "results.json").read_text())["checks"]


@needs_mpi
def test_every_check_of_the_script_is_a_test(two_rank_results):
    assert list(two_rank_results) == CHECKS


@needs_mpi
@pytest.mark.parametrize("name", CHECKS)
def test_on_two_ranks(two_rank_results, name):
    errors = two_rank_results.get(name, ["not run", "not run"])
    failed = [f"rank {rank}:\n{error}" for rank, error in enumerate(errors) if error]
    assert not failed, "\n".join(failed)


@needs_mpi
@pytest.mark.parametrize("mode, how", [("after-init", "mpiexec"), ("before-init", "launcher"),
                                       ("exit", "launcher -m")])
def test_a_failing_rank_ends_the_job_within_seconds(mode, how):
    if how == "mpiexec":  # the except hook installed by init_process_group
        command = [run.find_mpiexec(), "-n", "2", sys.executable, str(SCRIPTS / "raises.py"), mode]
    elif how == "launcher":  # the launcher's bootstrap, also before init
        command = launcher("-n", "2", str(SCRIPTS / "raises.py"), mode)
    else:
        command = launcher("-n", "2", "-m", "raises", mode)
    code, output, seconds = launch(command, timeout=60, env={"PYTHONPATH": str(SCRIPTS)})
    assert code != 0 and seconds < 20, (code, seconds, output)
    assert "rank 0 was not stopped" not in output
    if mode == "exit":
        assert "[rank 1] raises exited with 3" in output and code == 3, output
    else:
        assert f"[rank 1] RuntimeError: rank 1 fails on purpose {mode[:-5]} init" in output
        assert "[rank 1] Traceback" in output and "raises.py" in output, output


@needs_mpi
@pytest.mark.slow
def test_ddp_mnist_example_quick_on_two_ranks(tmp_path):
    from minidl.datasets import load_mnist

    try:
        load_mnist(train=False, download=False)
    except RuntimeError as error:
        pytest.skip(f"needs MNIST offline ({error})")
    code, output, _ = launch(launcher("-n", "2", "examples/ddp_mnist.py", "--quick", "--out",
                                      str(tmp_path)), timeout=240)
    assert code == 0, output
    assert output.count("test accuracy") == 1, output  # printed by rank 0 only
    assert "2 rank(s)" in output and (tmp_path / "loss.png").exists()


# ----- GPU ----------------------------------------------------------------------------------------
@needs_mpi
@pytest.mark.gpu
@pytest.mark.parametrize("backend, ranks", [("nccl", 1), ("mpi", 2)])
def test_gpu_collectives_and_a_ddp_step(backend, ranks):
    if backend == "nccl" and not dist.is_nccl_available():
        pytest.skip("CuPy cannot load NCCL: pip install nvidia-nccl-cu12")
    code, output, _ = launch(launcher("-n", str(ranks), str(SCRIPTS / "gpu_checks.py"), backend),
                             timeout=240)
    assert code == 0 and "gpu checks passed" in output, output


# ----- without a process group (MPI is never initialised in this process) ----------------------
@pytest.fixture
def no_group():
    assert not dist.is_initialized()
    yield
    assert not dist.is_initialized()


def test_a_missing_mpi4py_says_what_to_install(monkeypatch, no_group):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    with pytest.raises(RuntimeError, match=r'mpi4py.*pip install "minidl\[dist\]"'):
        dist.init_process_group("mpi")


def test_an_unknown_backend_or_init_method_is_an_error(no_group):
    with pytest.raises(ValueError, match="unknown backend 'gloo'.*'mpi'.*'nccl'"):
        dist.init_process_group("gloo")
    with pytest.raises(ValueError, match="init_method='tcp://127.0.0.1:1'.*mpiexec"):
        dist.init_process_group("mpi", init_method="tcp://127.0.0.1:1")


@pytest.mark.parametrize("call", [dist.get_rank, dist.get_world_size, dist.barrier,
                                  lambda: dist.all_reduce(minidl.ones(2)),
                                  lambda: DistributedSampler(range(4)),
                                  lambda: DistributedDataParallel(nn.Linear(2, 2))])
def test_using_it_before_init_process_group_is_an_error(call, no_group):
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        call()


def test_ddp_arguments_are_checked_before_any_communication(no_group):
    with pytest.raises(NotImplementedError, match="find_unused_parameters=True"):
        DistributedDataParallel(nn.Linear(2, 2), find_unused_parameters=True)
    with pytest.raises(ValueError, match="only the default process group"):
        DistributedDataParallel(nn.Linear(2, 2), process_group="group")
    with pytest.raises(TypeError, match="expected a Module"):
        DistributedDataParallel(lambda x: x)
    assert dist.is_available() and dist.is_mpi_available() == (
        importlib.util.find_spec("mpi4py") is not None)


def test_the_launcher_finds_the_wheels_mpiexec_and_gives_one_thread_per_rank(monkeypatch):
    mpiexec = pathlib.Path(run.find_mpiexec())
    assert mpiexec.name.startswith("mpiexec") and os.access(mpiexec, os.X_OK)
    for name in run.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    env = run.environment(2)
    assert env["OMP_NUM_THREADS"] == "2" and env["NUMBA_NUM_THREADS"] == "1"
    assert "NUMBA_NUM_THREADS" not in run.environment(1)
    command = run.command(2, "train.py", ["--quick"], as_module=False)
    assert command[1:3] == ["-n", "2"] and command[-3:] == ["minidl.distributed.bootstrap",
                                                             "train.py", "--quick"]
    args = run.parse(["-n", "2", "script.py", "--epochs", "3"])
    assert (args.nproc, args.target, args.arguments) == (2, "script.py", ["--epochs", "3"])
    with pytest.raises(SystemExit):
        run.parse(["-n", "0", "script.py"])


# ----- DistributedSampler (torch.utils.data.distributed.DistributedSampler semantics) ------------
@pytest.mark.parametrize("size, world", [(10, 3), (12, 4), (2, 3), (7, 2), (0, 2)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_without_shuffle_matches_torch(size, world, drop_last):
    for rank in range(world):
        ours = DistributedSampler(range(size), world, rank, shuffle=False, drop_last=drop_last)
        theirs = torch_distributed.DistributedSampler(range(size), world, rank, shuffle=False,
                                                      drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)
        assert (ours.num_samples, ours.total_size) == (theirs.num_samples, theirs.total_size)


@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_partitions_the_data_and_reshuffles_per_epoch(drop_last):
    size, world = 23, 4

    def shares(epoch, seed=0):
        samplers = [DistributedSampler(range(size), world, r, seed=seed, drop_last=drop_last)
                    for r in range(world)]
        for sampler in samplers:
            sampler.set_epoch(epoch)
        return [list(sampler) for sampler in samplers]

    first, again, second = shares(0), shares(0), shares(1)
    assert first == again  # the same seed and epoch give the same order on every "rank"
    assert first != second and shares(0, seed=1) != first
    for epoch in (first, second):
        flat = [i for share in epoch for i in share]
        assert len({len(share) for share in epoch}) == 1  # equal shares
        if drop_last:
            assert len(flat) == len(set(flat)) == 20  # disjoint, the tail of 3 dropped
        else:
            assert set(flat) == set(range(size)) and len(flat) == 24  # all, 1 repeated
    assert sorted(first[0]) != list(range(0, size, world))  # shuffled, not strided


def test_sampler_drives_a_dataloader_and_checks_its_rank():
    dataset = TensorDataset(np.arange(10.0), np.arange(10))
    loader = DataLoader(dataset, batch_size=2, sampler=DistributedSampler(dataset, 2, 1,
                                                                          shuffle=False))
    assert [y.tolist() for _, y in loader] == [[1, 3], [5, 7], [9]]
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1"):
        DistributedSampler(dataset, num_replicas=2, rank=2)
    from minidl.utils.data.distributed import DistributedSampler as by_torch_path

    assert by_torch_path is DistributedSampler is minidl.utils.data.DistributedSampler
