"""The two engines behind one small interface, so a workload is written once for both.

A worker process loads exactly one engine: ``load("minidl", ...)`` never imports torch and
``load("torch", ...)`` never imports minidl or numba (they bring different OpenMP runtimes, and with
both loaded PyTorch was measured 4x slower here).

An engine that lacks something a workload needs (no CUDA device, say) raises :class:`Unavailable`,
which the report shows as "unavailable: <reason>" instead of a number.
"""
from __future__ import annotations

import os
from types import SimpleNamespace


class Unavailable(Exception):
    """The engine lacks something a workload needs (e.g. no GPU)."""


NAMES = ("minidl", "torch", "torch_fused")


def load(name: str, device: str, threads: int) -> SimpleNamespace:
    """The engine ``name`` on ``device`` with ``threads`` compute threads: "minidl", "torch", or
    "torch_fused", PyTorch with its fastest optimizers (``fused=True``: one kernel per step over all
    parameters, where the default runs separate passes with temporaries)."""
    if name == "minidl":
        return _load_minidl(device, threads)
    return _load_torch(device, threads, fused_optimizers=name == "torch_fused")


def _load_minidl(device: str, threads: int) -> SimpleNamespace:
    from threadpoolctl import threadpool_limits

    import minidl

    threadpool_limits(limits=threads)  # NumPy's BLAS; Numba's pool is sized by NUMBA_NUM_THREADS
    if device == "cuda" and not minidl.cuda_is_available():
        raise Unavailable("--device cuda: minidl sees no CUDA device with CuPy on this machine")

    def synchronize():
        if device == "cuda":
            minidl.backend.array_module("cuda").cuda.get_current_stream().synchronize()

    return SimpleNamespace(
        name="minidl", device=device, optim=minidl.optim, optimizer_options={}, no_grad=minidl.no_grad,
        nn=minidl.nn, F=minidl.nn.functional, matmul=minidl.matmul, grad=minidl.autograd.grad,
        synchronize=synchronize,
        tensor=lambda array, requires_grad=False: minidl.tensor(
            array, requires_grad=requires_grad, device=device),
        numpy=lambda t: t.detach().numpy(), manual_seed=minidl.manual_seed,
        version=minidl.__version__,
    )


def _load_torch(device: str, threads: int, fused_optimizers: bool) -> SimpleNamespace:
    import torch

    torch.set_num_threads(threads)
    if device == "cuda" and not torch.cuda.is_available():
        raise Unavailable("--device cuda: PyTorch sees no CUDA device on this machine")

    def synchronize():
        if device == "cuda":
            torch.cuda.synchronize()

    return SimpleNamespace(
        name="torch", device=device, nn=torch.nn, optim=torch.optim,
        optimizer_options={"fused": True} if fused_optimizers else {},
        F=torch.nn.functional, matmul=torch.matmul, grad=torch.autograd.grad, no_grad=torch.no_grad,
        synchronize=synchronize,
        tensor=lambda array, requires_grad=False: torch.tensor(
            array, requires_grad=requires_grad, device=device),
        numpy=lambda t: t.detach().cpu().numpy(), manual_seed=torch.manual_seed,
        version=torch.__version__,
    )


def worker_environment(threads: int) -> dict:
    """The environment of a worker process: the parent's, with the thread pools sized to ``threads``.

    OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are passed through untouched (the report names them).
    """
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
    return env

