"""Checkpoints without pickle: ``save`` / ``load`` nested state in the safetensors format.

The file is plain safetensors, so other tools (the ``safetensors`` package, PyTorch) can read the
arrays::

    8 bytes      little-endian uint64 N: the length of the JSON header
    N bytes      JSON: {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
                        ..., "__metadata__": {"format": "minidl", "structure": "<JSON>"}}
    the rest     every array's bytes, little-endian, C order, back to back

``structure`` is the JSON of the saved object with each array replaced by a reference to its entry,
so dicts, lists, tuples, ints, floats, strings, bools and None come back as they went in. Loading
parses JSON and copies bytes: it never executes code. Writes are atomic (temp file, fsync, rename).

Deliberate differences from ``torch.save``: only data is saved, never objects or classes (save a
model's ``state_dict()``, not the model); NumPy scalars come back as Python numbers; ``path``
must be a file path, not a file object; ``map_location`` is a device (or None), not a function.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import struct

import numpy as np

from minidl import backend
from minidl.tensors import Tensor

# safetensors dtype names <-> NumPy dtypes (bf16 has no NumPy dtype and is not supported)
DTYPES = {"BOOL": "|b1", "U8": "|u1", "I8": "|i1", "I16": "<i2", "U16": "<u2", "I32": "<i4",
          "U32": "<u4", "I64": "<i8", "U64": "<u8", "F16": "<f2", "F32": "<f4", "F64": "<f8"}
_NAMES = {np.dtype(code): name for name, code in DTYPES.items()}
_MARKERS = ("__tensor__", "__ndarray__", "__tuple__", "__dict__")
_HEADER_LIMIT = 100 * 2**20  # as the safetensors package: a longer header means a foreign file


def save(obj, path) -> None:
    """Write ``obj`` (nested dicts/lists/tuples of Tensors, NumPy arrays, plain values) to ``path``.

    Args:
        obj: e.g. ``{"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "epoch": 3, "rng": minidl.get_rng_state()}``.
        path: file path; the file is replaced atomically, so a crash mid-save leaves the old one.

    Examples:
        >>> save({"model": model.state_dict(), "epoch": 3}, "checkpoint.safetensors")
    """
    arrays: dict[str, np.ndarray] = {}
    structure = _encode(obj, "", arrays)
    header, offset = {}, 0
    for name, array in arrays.items():
        header[name] = {"dtype": _NAMES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    header["__metadata__"] = {"format": "minidl", "structure": json.dumps(structure)}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad so the data starts 8-byte aligned, as safetensors does
    _atomic_write(os.fspath(path), [struct.pack("<Q", len(text)), text, *arrays.values()])


def load(path, map_location=None):
    """Read what :func:`save` wrote (or any safetensors file: then a dict of name -> Tensor).

    Args:
        path: file path.
        map_location: None (Tensors go back to the device they were saved from), or a device such as
            ``"cpu"`` / ``"cuda"`` to put every Tensor there. NumPy arrays stay NumPy arrays.

    Raises:
        ValueError: the file is truncated, not a safetensors file, or its header is inconsistent.
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        header, start = _read_header(path, file, size)
        metadata = header.pop("__metadata__", None) or {}
        arrays = {name: _read_array(path, name, entry, file, start, size)
                  for name, entry in header.items()}
    end = max((entry["data_offsets"][1] for entry in header.values()), default=0)
    if start + end != size:
        raise ValueError(f"load: {path} has {size - start - end} bytes after its last array: "
                         "not a valid checkpoint")
    if metadata.get("format") != "minidl" or "structure" not in metadata:
        return {name: _tensor(array, None, map_location) for name, array in arrays.items()}
    try:
        structure = json.loads(metadata["structure"])
    except (ValueError, TypeError) as error:
        message = f"load: {path} has a corrupt structure in its metadata ({error})"
        raise ValueError(message) from None
    return _decode(structure, arrays, map_location, path)


# ----- the structure: arrays out, JSON in ---------------------------------------------------------
def _encode(value, where: str, arrays: dict):
    """JSON-able form of ``value``; its arrays are moved to ``arrays`` under their dotted path."""
    if isinstance(value, Tensor):
        entry = {"__tensor__": _add_array(arrays, where, backend.to_numpy(value.data))}
        if value.device.type != "cpu":
            entry["device"] = str(value.device)
        if value.requires_grad:
            entry["requires_grad"] = True
        return entry
    if isinstance(value, np.ndarray):
        return {"__ndarray__": _add_array(arrays, where, value)}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_encode(item, f"{where}.{index}", arrays) for index, item in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and not any(key in _MARKERS for key in value):
            return {key: _encode(item, f"{where}.{key}", arrays) for key, item in value.items()}
        return {"__dict__": [[_encode(key, where, {}), _encode(item, f"{where}.{key}", arrays)]
                             for key, item in value.items()]}
    hint = " (save model.state_dict(), not the model)" if hasattr(value, "state_dict") else ""
    place = where.lstrip(".") or "<root>"
    raise TypeError(f"save: cannot save a {type(value).__name__} at '{place}'{hint}; expected "
                    "Tensors, NumPy arrays, dicts, lists, tuples, int, float, str, bool or None")


def _add_array(arrays: dict, where: str, array: np.ndarray) -> str:
    if array.dtype.newbyteorder("<") not in _NAMES:
        raise TypeError(f"save: the array at '{where.lstrip('.')}' has dtype {array.dtype}, which "
                        f"safetensors cannot hold (supported: {sorted(str(d) for d in _NAMES)})")
    name = where.lstrip(".") or "<root>"
    while name in arrays:  # two paths can join to the same dotted name (keys with dots)
        name += "'"
    arrays[name] = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")  # keeps 0-d
    return name


def _decode(value, arrays: dict, map_location, path: str):
    if isinstance(value, list):
        return [_decode(item, arrays, map_location, path) for item in value]
    if not isinstance(value, dict):
        return value
    for marker in ("__tensor__", "__ndarray__"):
        if marker in value and value[marker] not in arrays:
            raise ValueError(f"load: {path} refers to an array {value[marker]!r} it does not hold")
    if "__tensor__" in value:
        tensor = _tensor(arrays[value["__tensor__"]], value.get("device"), map_location)
        return tensor.requires_grad_() if value.get("requires_grad") else tensor
    if "__ndarray__" in value:
        return arrays[value["__ndarray__"]]
    if "__tuple__" in value:
        return tuple(_decode(item, arrays, map_location, path) for item in value["__tuple__"])
    if "__dict__" in value:
        return {_decode(key, arrays, map_location, path): _decode(item, arrays, map_location, path)
                for key, item in value["__dict__"]}
    return {key: _decode(item, arrays, map_location, path) for key, item in value.items()}


def _tensor(array: np.ndarray, saved_device, map_location) -> Tensor:
    target = map_location if map_location is not None else (saved_device or "cpu")
    return Tensor(backend.to_device(array, backend.Device(target)))


# ----- reading and checking the file --------------------------------------------------------------
def _read_header(path: str, file, size: int) -> tuple[dict, int]:
    """The parsed JSON header and the offset where the arrays start."""
    if size < 8:
        raise ValueError(f"load: {path} is truncated ({size} bytes; a checkpoint starts "
                         "with an 8-byte header length)")
    (length,) = struct.unpack("<Q", file.read(8))
    if length > _HEADER_LIMIT:
        raise ValueError(f"load: {path} is not a safetensors checkpoint (header length {length})")
    if 8 + length > size:
        raise ValueError(f"load: {path} is truncated: the header needs {length} bytes, the file "
                         f"has {size - 8} after the length")
    try:
        header = json.loads(file.read(length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"load: {path} has a corrupt header ({error})") from None
    if not isinstance(header, dict):
        raise ValueError(f"load: {path} has a corrupt header (expected a JSON object)")
    return header, 8 + length


def _read_array(path: str, name: str, entry, file, start: int, size: int) -> np.ndarray:
    """One array, read straight from the file into fresh (aligned, writable) memory."""
    try:
        dtype = np.dtype(DTYPES[entry["dtype"]])
        shape = tuple(int(n) for n in entry["shape"])
        begin, end = (int(n) for n in entry["data_offsets"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"load: {path} has a corrupt header entry for {name!r}: "
                         f"{entry!r}") from None
    if min(shape, default=0) < 0 or end - begin != math.prod(shape) * dtype.itemsize or begin < 0:
        raise ValueError(f"load: {path}: array {name!r} of shape {shape} and dtype "
                         f"{entry['dtype']} does not fit its byte range [{begin}, {end})")
    if start + end > size:
        raise ValueError(f"load: {path} is truncated: array {name!r} needs bytes up to "
                         f"{start + end}, the file has {size}")
    array = np.empty(shape, dtype)
    file.seek(start + begin)
    file.readinto(array.reshape(-1).view(np.uint8))
    return array.astype(dtype.newbyteorder("="), copy=False)  # a no-op on little-endian hosts


# ----- atomic write -------------------------------------------------------------------------------
def _atomic_write(path: str, chunks: list) -> None:
    """Write to a temp file beside ``path``, fsync it, rename it over ``path``, fsync the folder."""
    folder = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "xb") as file:
            for chunk in chunks:
                is_array = isinstance(chunk, np.ndarray)
                file.write(chunk.reshape(-1).view(np.uint8) if is_array else chunk)  # no copy
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # POSIX: make the rename itself durable
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
