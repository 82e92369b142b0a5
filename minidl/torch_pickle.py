"""Read PyTorch's ``torch.save`` checkpoints without PyTorch and without running code from them.

Since PyTorch 1.6 ``torch.save`` writes a zip archive::

    <archive>/data.pkl      the saved object, pickled; each tensor is a call
                            torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
                            requires_grad, backward_hooks), and each storage a persistent id
                            ('storage', torch.FloatStorage, key, location, numel)
    <archive>/data/<key>    a storage's numel elements, raw, in the order ``byteorder`` names
    <archive>/byteorder     "little" or "big" (older files lack it: little-endian)
    <archive>/version, .format_version, ...    not needed here

A pickle is a program: unpickling calls the functions it names. So this unpickler resolves a name
only from an allow-list, the shape of PyTorch's own ``weights_only=True`` policy, and each allowed
name means a function of this module or a builtin: the tensor rebuilders (``_rebuild_tensor``,
``_v2``, ``_v3``, ``_rebuild_parameter``), the storage classes and dtypes (as inert descriptions),
``collections.OrderedDict``, ``set``, ``frozenset`` and ``complex``. Any other name raises
``pickle.UnpicklingError`` naming it as soon as the unpickler reads it, before anything is called.
PyTorch is never imported.

A tensor is rebuilt as PyTorch does, a view with the saved size and stride (in elements) over its
storage, after checking that the view lies inside the storage; the view is then copied into a new
C-ordered array in native byte order. So tensors that shared a storage in PyTorch get their own
memory here, and the peak memory is about twice the checkpoint. A Parameter comes back as a Tensor
that requires grad (``load_state_dict`` takes either). bfloat16 and complex tensors raise
ValueError: NumPy has no bfloat16, and minidl holds no complex tensors.
"""
from __future__ import annotations

import _compat_pickle
import io
import pickle
import reprlib
import zipfile
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from minidl import backend
from minidl.tensors import Tensor

ZIP_MAGIC = b"PK\x03\x04"  # a zip starts with a local file header
# before PyTorch 1.6 (or with _use_new_zipfile_serialization=False) a file starts by pickling,
# with protocol 2, the magic number 0x1950a86a20f9469cfc6c
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")

# torch dtype -> NumPy type code; None where minidl has no such dtype
_DTYPES = {"float64": "f8", "float32": "f4", "float16": "f2", "bfloat16": None, "int64": "i8",
           "int32": "i4", "int16": "i2", "int8": "i1", "uint64": "u8", "uint32": "u4",
           "uint16": "u2", "uint8": "u1", "bool": "b1", "complex128": None, "complex64": None}
# PyTorch's typed storage classes, as data.pkl names them -> their dtype
_STORAGES = {"DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
             "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
             "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
             "BoolStorage": "bool", "ComplexDoubleStorage": "complex128",
             "ComplexFloatStorage": "complex64"}


class _TorchType(NamedTuple):
    """An allowed storage class or dtype, as inert data (a NamedTuple: BUILD cannot change it)."""

    name: str  # as the pickle names it, e.g. "torch.FloatStorage"
    dtype: str  # torch's name of its dtype, e.g. "float32"


class _Storage(NamedTuple):
    """What a persistent id stands for: a storage's elements (read-only) and where they go."""

    array: np.ndarray
    device: backend.Device


class _Refused(pickle.UnpicklingError):
    """A global that is not on the allow-list."""


class _Invalid(ValueError):
    """A checkpoint that breaks the format (the message is completed with the file's name)."""


_TYPES = {
    **{f"torch.{name}": _TorchType(f"torch.{name}", dtype) for name, dtype in _STORAGES.items()},
    **{f"torch.{dtype}": _TorchType(f"torch.{dtype}", dtype) for dtype in _DTYPES},
    "torch.UntypedStorage": _TorchType("torch.UntypedStorage", "uint8"),
    "torch.storage.UntypedStorage": _TorchType("torch.storage.UntypedStorage", "uint8"),
}


def is_torch_checkpoint(head: bytes) -> bool:
    """Whether a file starting with ``head`` (14 bytes or more) is a ``torch.save`` file."""
    return head.startswith(ZIP_MAGIC) or head.startswith(LEGACY_MAGIC)


def load(file, name: str, map_location=None):
    """The object that a ``torch.save`` checkpoint holds, its tensors as minidl Tensors.

    Args:
        file: a seekable binary file, at the start of the checkpoint.
        name: the file's name for error messages.
        map_location: None (each tensor goes to the device it was saved from) or a device.

    Raises:
        pickle.UnpicklingError: data.pkl names a global that is not on the allow-list.
        ValueError: the file is a legacy (pre-1.6) checkpoint, truncated, corrupt, or holds a
            dtype minidl does not support.
    """
    start = file.tell()
    if file.read(len(LEGACY_MAGIC)) == LEGACY_MAGIC:
        raise ValueError(f"load: {name} is a legacy PyTorch checkpoint (written by PyTorch < 1.6 "
                         "or with _use_new_zipfile_serialization=False), which minidl does not "
                         "read; save it again with a recent PyTorch: "
                         "torch.save(torch.load(path), path)")
    file.seek(start)
    device = None if map_location is None else backend.Device(map_location)
    try:
        with zipfile.ZipFile(file) as archive:
            unpickler = _Unpickler(archive, device)
            result = unpickler.load()
    except _Refused as error:
        raise pickle.UnpicklingError(f"load: {name}: {error}") from None
    except _Invalid as error:
        raise ValueError(f"load: {name}: {error}") from None
    except zipfile.BadZipFile as error:
        raise ValueError(f"load: {name} is a truncated or corrupt zip file ({error})") from None
    except MemoryError:
        raise
    except Exception as error:  # a malformed pickle: what the unpickler, or a call it made, raised
        raise ValueError(f"load: {name} is not a valid PyTorch checkpoint "
                         f"({type(error).__name__}: {error})") from None
    for tensor, target in unpickler.moves:  # after parsing, so a missing GPU is not "corrupt"
        tensor._data = backend.to_device(tensor._data, target)
    return result


class _Unpickler(pickle.Unpickler):
    """Unpickles ``<archive>/data.pkl``: globals from the allow-list, storages from the archive."""

    def __init__(self, archive: zipfile.ZipFile, map_location: backend.Device | None):
        pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise _Invalid(f"a zip file with {len(pickles)} <archive>/data.pkl records, expected "
                           "1: not a torch.save checkpoint")
        self.prefix = pickles[0].removesuffix("/data.pkl")
        self.archive, self.names = archive, set(archive.namelist())
        if f"{self.prefix}/constants.pkl" in self.names:
            raise _Invalid("a TorchScript archive (torch.jit.save), which minidl does not read; "
                           "save the model's state_dict() with torch.save instead")
        super().__init__(io.BytesIO(archive.read(pickles[0])))
        byteorder = (archive.read(f"{self.prefix}/byteorder")
                     if f"{self.prefix}/byteorder" in self.names else b"little")
        if byteorder not in (b"little", b"big"):
            raise _Invalid(f"the byteorder record says {byteorder!r}, expected b'little' or b'big'")
        self.order = "<" if byteorder == b"little" else ">"
        self.map_location = map_location
        self.storages: dict[str, bytes] = {}  # key -> bytes, read once however many views it has
        self.moves: list[tuple[Tensor, backend.Device]] = []  # tensors to leave the CPU at the end
        self.allowed = {
            "torch._utils._rebuild_tensor": self.rebuild_tensor,
            "torch._utils._rebuild_tensor_v2": self.rebuild_tensor_v2,
            "torch._utils._rebuild_tensor_v3": self.rebuild_tensor_v3,
            "torch._utils._rebuild_parameter": _rebuild_parameter,
            "collections.OrderedDict": OrderedDict,
            "builtins.set": set, "builtins.frozenset": frozenset, "builtins.complex": complex,
            **_TYPES}

    def find_class(self, module: str, name: str):
        """The allowed object named ``module.name``; any other name is refused before it runs."""
        # protocol 2 writes Python 2's names (__builtin__.set): mapped back as pickle maps them
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = self.allowed.get(f"{module}.{name}")
        if found is None:
            raise _Refused(f"refused the global {module}.{name}: minidl loads only tensors, "
                           "storages, OrderedDicts and plain values from a PyTorch checkpoint, and "
                           "never runs code from a file")
        return found

    def persistent_load(self, pid):
        """('storage', storage class, key, location, numel) -> that storage's elements."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _TorchType) and pid[1].name.endswith("Storage")
                and isinstance(pid[2], str) and isinstance(pid[3], str) and _naturals(pid[4:])):
            raise _Invalid(f"data.pkl holds the persistent id {reprlib.repr(pid)}, expected "
                           "('storage', storage class, key, location, numel)")
        _, kind, key, location, numel = pid
        dtype = self.numpy_dtype(kind)
        if key not in self.storages:
            record = f"{self.prefix}/data/{key}"
            if record not in self.names:
                raise _Invalid(f"data.pkl refers to the storage {key!r}, but {record} is missing")
            self.storages[key] = self.archive.read(record)
        if len(self.storages[key]) != numel * dtype.itemsize:
            raise _Invalid(f"the storage {key!r} holds {len(self.storages[key])} bytes, but "
                           f"data.pkl says {numel} elements of {kind.dtype}")
        return _Storage(np.frombuffer(self.storages[key], dtype), self.device(location))

    def numpy_dtype(self, kind) -> np.dtype:
        """The NumPy dtype, in the file's byte order, of a storage class or dtype global."""
        if not isinstance(kind, _TorchType):
            raise _Invalid(f"expected a dtype or a storage class, got {reprlib.repr(kind)}")
        if _DTYPES[kind.dtype] is None:
            raise _Invalid(f"a tensor has dtype torch.{kind.dtype}, which minidl does not "
                           "support; convert it in PyTorch first (e.g. tensor.float())")
        return np.dtype(_DTYPES[kind.dtype]).newbyteorder(self.order)

    def device(self, location: str) -> backend.Device:
        if self.map_location is not None:
            return self.map_location
        try:
            return backend.Device(location)
        except ValueError as error:
            raise _Invalid(f"a storage was saved on {location!r}, which minidl cannot place "
                           f"({error}); pass map_location='cpu'") from None

    # ----- the rebuilders: what data.pkl's tensor calls run instead of PyTorch's -----------------
    def rebuild_tensor(self, storage, storage_offset, size, stride):
        """torch._utils._rebuild_tensor (old files): a tensor that does not require grad."""
        return self.rebuild_tensor_v2(storage, storage_offset, size, stride, False, None)

    def rebuild_tensor_v2(self, storage, storage_offset, size, stride, requires_grad,
                          backward_hooks, metadata=None):
        """torch._utils._rebuild_tensor_v2; backward hooks are dropped (PyTorch keeps them only
        for backward compatibility, and no hook function can pass the allow-list)."""
        if not isinstance(storage, _Storage):
            raise _Invalid(f"a tensor's storage is {reprlib.repr(storage)}, not a storage")
        return self.tensor(storage, storage.array, storage_offset, size, stride, requires_grad,
                           metadata)

    def rebuild_tensor_v3(self, storage, storage_offset, size, stride, requires_grad,
                          backward_hooks, dtype, metadata=None):
        """torch._utils._rebuild_tensor_v3 (dtypes newer than the typed storages, e.g. uint16):
        the bytes of an untyped storage, read as ``dtype``."""
        if not isinstance(storage, _Storage):
            raise _Invalid(f"a tensor's storage is {reprlib.repr(storage)}, not a storage")
        numpy_dtype, raw = self.numpy_dtype(dtype), storage.array.view(np.uint8)
        if raw.size % numpy_dtype.itemsize:
            raise _Invalid(f"a storage of {raw.size} bytes cannot hold elements of {dtype.dtype}")
        return self.tensor(storage, raw.view(numpy_dtype), storage_offset, size, stride,
                           requires_grad, metadata)

    def tensor(self, storage: _Storage, elements: np.ndarray, offset, size, stride, requires_grad,
               metadata) -> Tensor:
        if not isinstance(requires_grad, bool):
            raise _Invalid(f"a tensor's requires_grad is {reprlib.repr(requires_grad)}, not a bool")
        if metadata:
            raise _Invalid(f"a tensor carries the metadata {reprlib.repr(metadata)} (conjugate or "
                           "negative bits), which minidl does not support")
        tensor = Tensor(_strided(elements, offset, size, stride))
        tensor.requires_grad = requires_grad
        if storage.device != backend.CPU:
            self.moves.append((tensor, storage.device))
        return tensor


def _rebuild_parameter(data, requires_grad, backward_hooks):
    """torch._utils._rebuild_parameter: the Parameter's tensor, requiring grad as it did."""
    if not isinstance(data, Tensor) or not isinstance(requires_grad, bool):
        raise _Invalid(f"a Parameter is rebuilt from {reprlib.repr(data)} and requires_grad "
                       f"{reprlib.repr(requires_grad)}, expected a tensor and a bool")
    data.requires_grad = requires_grad
    return data


def _strided(elements: np.ndarray, offset, size, stride) -> np.ndarray:
    """A copy of ``elements[offset + sum(i[k] * stride[k])]`` for each index i < size: PyTorch's
    ``as_strided`` view, checked to lie inside ``elements``, in C order and native byte order."""
    if not (_naturals([offset]) and _naturals(size) and _naturals(stride)
            and len(size) == len(stride) <= 64):
        raise _Invalid(f"a tensor has offset {reprlib.repr(offset)}, size {reprlib.repr(size)} "
                       f"and stride {reprlib.repr(stride)}; expected a non-negative int and two "
                       "tuples of as many (at most 64) non-negative ints")
    native = elements.dtype.newbyteorder("=")
    if 0 in size:
        return np.empty(size, native)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= elements.size:
        raise _Invalid(f"a tensor of size {tuple(size)}, stride {tuple(stride)} and offset "
                       f"{offset} reaches element {last} of a storage of {elements.size}")
    view = np.lib.stride_tricks.as_strided(elements[offset:], tuple(size),
                                           [s * elements.itemsize for s in stride],
                                           writeable=False)
    return view.astype(native, order="C")  # the copy


def _naturals(values) -> bool:
    """Whether ``values`` is a tuple or list of non-negative ints (no bools)."""
    return isinstance(values, (tuple, list)) and all(type(n) is int and n >= 0 for n in values)
