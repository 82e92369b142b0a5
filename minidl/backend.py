"""The one device switch: maps a device to its array module (NumPy on CPU, CuPy on CUDA).

Every array minidl creates goes through here. CuPy is imported lazily, only when a CUDA device is
asked for, so importing minidl never touches a GPU.
"""
from __future__ import annotations

import numpy as np

_cupy = None  # the cupy module once a CUDA device has been asked for


class Device:
    """A place where tensors live: ``Device("cpu")``, ``Device("cuda")`` or ``Device("cuda:1")``."""

    __slots__ = ("type", "index")

    def __init__(self, spec: str | Device = "cpu", index: int | None = None):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"device expects a string like 'cpu' or 'cuda:0', got {spec!r}")
        kind, _, number = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"unknown device type {kind!r} in {spec!r}: expected 'cpu' or 'cuda'")
        if number:
            index = int(number)
        if kind == "cpu" and index not in (None, 0):
            raise ValueError(f"device 'cpu' has no index, got {spec!r}")
        self.type = kind
        self.index = (index or 0) if kind == "cuda" else None

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = Device(other)
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"


def is_device_spec(value) -> bool:
    """True for a Device or a device string ("cpu", "cuda", "cuda:1", or any other non-dtype string)."""
    if isinstance(value, Device):
        return True
    if not isinstance(value, str):
        return False
    try:
        np.dtype(value)
    except TypeError:
        return True  # not a dtype name, so it is meant as a device (and Device() checks it)
    return False


def device(spec: str | Device = "cpu", index: int | None = None) -> Device:
    """Return the :class:`Device` named by ``spec`` (PyTorch's ``torch.device``)."""
    return Device(spec, index)


CPU = Device("cpu")


def cupy():
    """Import CuPy on first use, with an error that says what to install or that no GPU exists."""
    global _cupy
    if _cupy is None:
        try:
            import cupy as cp
        except ImportError as error:
            raise RuntimeError(
                "a CUDA device was requested but CuPy is not installed: "
                'pip install "minidl[gpu]" (CuPy for CUDA 12)'
            ) from error
        try:
            count = cp.cuda.runtime.getDeviceCount()
        except Exception as error:  # CUDA driver missing or broken
            raise RuntimeError(f"a CUDA device was requested but none was found ({error})") from error
        if count == 0:
            raise RuntimeError("a CUDA device was requested but none was found")
        _cupy = cp
    return _cupy


def cupy_loaded() -> bool:
    """Whether CuPy has been imported (only then can an array live on a GPU)."""
    return _cupy is not None


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cupy()
    except RuntimeError:
        return False
    return True


def array_module(dev: Device | str):
    """The array module (``numpy`` or ``cupy``) that holds arrays on ``dev``."""
    return np if Device(dev).type == "cpu" else cupy()


def get_array_module(array):
    """The array module of ``array``: ``numpy`` unless it is a CuPy array."""
    if isinstance(array, np.ndarray) or _cupy is None:
        return np
    return _cupy if isinstance(array, _cupy.ndarray) else np


def device_of(array) -> Device:
    """The device that holds ``array``."""
    if isinstance(array, np.ndarray) or _cupy is None or not isinstance(array, _cupy.ndarray):
        return CPU
    return Device("cuda", array.device.id)


def to_device(array, dev: Device | str):
    """Copy ``array`` to ``dev`` (no copy when it is already there)."""
    dev = Device(dev)
    if dev.type == "cpu":
        return _cupy.asnumpy(array) if _cupy is not None and isinstance(array, _cupy.ndarray) else array
    cp = cupy()
    with cp.cuda.Device(dev.index):
        return cp.asarray(array)


def to_numpy(array) -> np.ndarray:
    """A host (NumPy) copy of ``array`` from any device."""
    return to_device(array, CPU)
