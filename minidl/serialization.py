"""Checkpoints without pickle: ``save`` / ``load`` nested state in the safetensors format.

The file is plain safetensors, so other tools (the ``safetensors`` package, PyTorch) can read the
arrays::

    8 bytes      little-endian uint64 N: the length of the JSON header
    N bytes      JSON: {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
                        ..., "__metadata__": {"format": "minidl", "structure": "<JSON>"}}
    the rest     every array's bytes, little-endian, C order, back to back

``structure`` is the JSON of the saved object with each array replaced by a reference to its entry,
so dicts, lists, tuples, ints, floats, strings, bools and None come back as they went in. An array's
entry is named by its dotted path (``model.fc.weight``); ``__metadata__`` is the header's own name,
so ``save`` refuses an array under that top-level key.

Loading parses JSON and copies bytes: it never executes code. A malformed file (a header not shaped
as above, arrays that overlap, leave gaps or run past the end, a structure nested past Python's
recursion limit) raises ValueError naming the file and the problem.

Writes to a path are atomic (``minidl/atomic_file.py``: a temp file beside the target, fsync,
rename; the mode kept, symlinks written through, abandoned temp files of the same target removed).
``save`` and ``load`` also take a binary file object, as ``torch.save`` / ``torch.load`` do: the
same bytes are written with ``write`` (the caller owns the file, so nothing is atomic there) or read
with ``read`` and ``seek``, from the file's position.

``load`` also reads PyTorch's own checkpoints (what ``torch.save`` writes since PyTorch 1.6: a zip
file, told apart by its first bytes) with ``minidl/torch_pickle.py``, which imports no PyTorch and
runs no code from the file.

Deliberate differences from ``torch.save``: only data is saved, never objects or classes (save a
model's ``state_dict()``, not the model); NumPy scalars come back as Python numbers;
``map_location`` is a device (or None), not a function.
"""
from __future__ import annotations

import json
import math
import os
import reprlib
import struct

import numpy as np

from minidl import backend, torch_pickle
from minidl.atomic_file import atomic_write
from minidl.file_objects import check_file, is_path, opened
from minidl.tensors import Tensor

# safetensors dtype names <-> NumPy dtypes (bf16 and fp8 have no NumPy dtype and are not supported)
DTYPES = {"BOOL": "|b1", "U8": "|u1", "I8": "|i1", "I16": "<i2", "U16": "<u2", "I32": "<i4",
          "U32": "<u4", "I64": "<i8", "U64": "<u8", "F16": "<f2", "F32": "<f4", "F64": "<f8"}
_NAMES = {np.dtype(code): name for name, code in DTYPES.items()}
_MARKERS = ("__tensor__", "__ndarray__", "__tuple__", "__dict__")
_HEADER_LIMIT = 100 * 2**20  # as the safetensors package: a longer header means a foreign file
_MAX_DIMS = 64  # NumPy's limit on ndim
_MAX_BYTES = np.iinfo(np.intp).max  # NumPy's limit on itemsize * (product of the nonzero dims)


def save(obj, f) -> None:
    """Write ``obj`` (nested dicts/lists/tuples of Tensors, NumPy arrays, plain values) to ``f``.

    Args:
        obj: e.g. ``{"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "epoch": 3, "rng": minidl.get_rng_state()}``.
        f: a file path: the file is replaced atomically, so a crash mid-save leaves the old one,
            and a symlink is followed (its target is replaced and the link stays). Or a binary
            file object with ``write``: the checkpoint is written at its position.

    Examples:
        >>> save({"model": model.state_dict(), "epoch": 3}, "checkpoint.safetensors")
    """
    if not is_path(f):
        check_file(f, "save", ("write",), "wb")
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
    chunks = [struct.pack("<Q", len(text)), text,
              *(array.reshape(-1).view(np.uint8) for array in arrays.values())]  # no copies
    if is_path(f):
        atomic_write(os.fspath(f), chunks)
        return
    for chunk in chunks:
        f.write(chunk)


def load(f, map_location=None):
    """Read what :func:`save` wrote, any safetensors file (a dict of name -> Tensor), or a
    ``torch.save`` checkpoint (see ``minidl/torch_pickle.py``).

    Args:
        f: a file path, or a seekable binary file object (``read`` and ``seek``) positioned at the
            start of the checkpoint.
        map_location: None (Tensors go back to the device they were saved from), or a device such as
            ``"cpu"`` / ``"cuda"`` to put every Tensor there. NumPy arrays stay NumPy arrays.

    Raises:
        ValueError: the file is truncated, not a checkpoint, malformed or inconsistent, or holds a
            dtype minidl does not support (such as BF16).
        pickle.UnpicklingError: a PyTorch checkpoint names a global that is not on the allow-list.
        TypeError: ``f`` is neither a path nor a binary file object with read, seek and tell.
    """
    with opened(f) as (file, name):
        start = file.tell()
        head = file.read(len(torch_pickle.LEGACY_MAGIC))
        file.seek(start)
        if torch_pickle.is_torch_checkpoint(head):
            return torch_pickle.load(file, name, map_location)
        try:
            return _load(file, name, start, map_location)
        except RecursionError:  # the JSON parser and _decode recurse once per level of nesting
            raise ValueError(f"load: {name} is nested too deeply (past Python's recursion limit): "
                             "not a valid checkpoint") from None


def _load(file, path: str, start: int, map_location):
    size = file.seek(0, os.SEEK_END) - start
    file.seek(start)
    header, data_start = _read_header(path, file, size)
    metadata = header.pop("__metadata__", None)
    if not isinstance(metadata, (dict, type(None))):
        raise ValueError(f"load: {path} has a corrupt header: __metadata__ must be an object, "
                         f"got {reprlib.repr(metadata)}")
    layout = _check_layout(path, header, size - data_start)
    arrays = {name: _read_array(path, name, file, start + data_start, *entry)
              for name, entry in layout.items()}
    if not metadata or metadata.get("format") != "minidl" or "structure" not in metadata:
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
        entry = {"__tensor__": _add_array(arrays, where, backend.to_numpy(value._data))}
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
        return {"__dict__": [[_encode_key(key, where), _encode(item, f"{where}.{key}", arrays)]
                             for key, item in value.items()]}
    hint = " (save model.state_dict(), not the model)" if hasattr(value, "state_dict") else ""
    place = where.lstrip(".") or "<root>"
    raise TypeError(f"save: cannot save a {type(value).__name__} at '{place}'{hint}; expected "
                    "Tensors, NumPy arrays, dicts, lists, tuples, int, float, str, bool or None")


def _encode_key(key, where: str):
    """A dict key's JSON form; a key holding a Tensor is refused (its array would have no entry)."""
    key_arrays: dict[str, np.ndarray] = {}
    encoded = _encode(key, where, key_arrays)
    if key_arrays:
        raise TypeError(f"save: the dict at '{where.lstrip('.') or '<root>'}' has a key holding a "
                        f"Tensor ({key!r}); keys must be int, float, str, bool, None or tuples")
    return encoded


def _add_array(arrays: dict, where: str, array: np.ndarray) -> str:
    if array.dtype.newbyteorder("<") not in _NAMES:
        raise TypeError(f"save: the array at '{where.lstrip('.')}' has dtype {array.dtype}, which "
                        f"safetensors cannot hold (supported: {sorted(str(d) for d in _NAMES)})")
    name = where.lstrip(".") or "<root>"
    if name == "__metadata__":
        raise ValueError("save: cannot save an array under the key '__metadata__': the safetensors "
                         "header reserves that name for its metadata; rename the key")
    while name in arrays:  # two paths can join to the same dotted name (keys with dots)
        name += "'"
    arrays[name] = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")  # keeps 0-d
    return name


def _decode(value, arrays: dict, map_location, path: str):
    """The object that ``structure`` describes; a node ``save`` does not write raises ValueError."""
    if isinstance(value, list):
        return [_decode(item, arrays, map_location, path) for item in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value or "__ndarray__" in value:
        return _decode_array(value, arrays, map_location, path)
    if "__tuple__" in value:
        if not isinstance(value["__tuple__"], list):
            raise _corrupt_structure(path, "__tuple__ must hold a list", value)
        return tuple(_decode(item, arrays, map_location, path) for item in value["__tuple__"])
    if "__dict__" in value:
        pairs = value["__dict__"]
        if not isinstance(pairs, list) or any(not isinstance(pair, list) or len(pair) != 2
                                              for pair in pairs):
            raise _corrupt_structure(path, "__dict__ must hold [key, value] pairs", value)
        items = [[_decode(item, arrays, map_location, path) for item in pair] for pair in pairs]
        try:
            return dict(items)
        except TypeError:  # a key that decodes to a list or a dict
            raise _corrupt_structure(path, "a __dict__ key is unhashable", value) from None
    return {key: _decode(item, arrays, map_location, path) for key, item in value.items()}


def _decode_array(value: dict, arrays: dict, map_location, path: str):
    marker = "__tensor__" if "__tensor__" in value else "__ndarray__"
    name = value[marker]
    if not isinstance(name, str) or name not in arrays:
        raise ValueError(f"load: {path} refers to an array {reprlib.repr(name)} it does not hold")
    if marker == "__ndarray__":
        return arrays[name]
    device, requires_grad = value.get("device"), value.get("requires_grad", False)
    if not isinstance(requires_grad, bool) or (requires_grad and arrays[name].dtype.kind != "f"):
        problem = f"requires_grad of {name!r} must be a bool, true only for a floating point array"
        raise _corrupt_structure(path, problem, value)
    if device is not None:
        try:
            backend.Device(device)
        except (TypeError, ValueError):
            problem = f"the device of {name!r} is not a device"
            raise _corrupt_structure(path, problem, value) from None
    tensor = _tensor(arrays[name], device, map_location)
    return tensor.requires_grad_() if requires_grad else tensor


def _corrupt_structure(path: str, problem: str, value) -> ValueError:
    return ValueError(f"load: {path} has a corrupt structure in its metadata: {problem}, got "
                      f"{reprlib.repr(value)}")


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
        raise ValueError(f"load: {path} has a corrupt header (expected a JSON object, got "
                         f"{reprlib.repr(header)})")
    return header, 8 + length


def _check_layout(path: str, header: dict, data_size: int) -> dict:
    """Each array's checked (dtype, shape, begin, end); together they must tile the data exactly."""
    layout = {name: _check_entry(path, name, entry) for name, entry in header.items()}
    position = 0
    for name, (_, _, begin, end) in sorted(layout.items(), key=lambda item: item[1][2:]):
        if begin != position:
            raise ValueError(f"load: {path}: array {name!r} starts at byte {begin} of the data, "
                             f"expected {position} (arrays lie back to back: no overlaps, no gaps)")
        position = end
    if position > data_size:
        raise ValueError(f"load: {path} is truncated: its arrays need {position} bytes after the "
                         f"header, the file has {data_size}")
    if position < data_size:
        raise ValueError(f"load: {path} has {data_size - position} bytes after its last array: "
                         "not a valid checkpoint")
    return layout


def _check_entry(path: str, name: str, entry) -> tuple:
    """One header entry as (dtype, shape, begin, end), each field checked."""
    fields = entry if isinstance(entry, dict) else {}
    dtype, shape, offsets = (fields.get(key) for key in ("dtype", "shape", "data_offsets"))
    if not isinstance(entry, dict):
        problem = "expected an object with dtype, shape and data_offsets"
    elif not isinstance(dtype, str):
        problem = "dtype must be a string such as 'F32'"
    elif not _naturals(shape) or len(shape) > _MAX_DIMS:
        problem = f"shape must be a list of at most {_MAX_DIMS} non-negative integers"
    elif not _naturals(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        problem = "data_offsets must be [begin, end] with 0 <= begin <= end"
    else:
        problem = None
    if problem:
        raise ValueError(f"load: {path} has a corrupt header entry for {name!r}: {problem}, got "
                         f"{reprlib.repr(entry)}")
    if dtype not in DTYPES:
        raise ValueError(f"load: {path}: tensor {name!r} has dtype {dtype}, and dtype {dtype} is "
                         f"not supported by minidl (it reads {', '.join(DTYPES)})")
    numpy_dtype, (begin, end) = np.dtype(DTYPES[dtype]), offsets
    if math.prod(max(n, 1) for n in shape) * numpy_dtype.itemsize > _MAX_BYTES:
        raise ValueError(f"load: {path}: array {name!r} has shape {tuple(shape)}, too large for "
                         "NumPy: not a valid checkpoint")
    if end - begin != math.prod(shape) * numpy_dtype.itemsize:
        raise ValueError(f"load: {path}: array {name!r} of shape {tuple(shape)} and dtype {dtype} "
                         f"does not fit its byte range [{begin}, {end})")
    return numpy_dtype, tuple(shape), begin, end


def _naturals(value) -> bool:
    """Whether ``value`` is a list of non-negative ints (JSON's, so no bools and no floats)."""
    return isinstance(value, list) and all(type(n) is int and n >= 0 for n in value)


def _read_array(path: str, name: str, file, start: int, dtype, shape, begin, end) -> np.ndarray:
    """One array, read straight from the file into fresh (aligned, writable) memory."""
    array = np.empty(shape, dtype)
    file.seek(start + begin)
    if file.readinto(array.reshape(-1).view(np.uint8)) != end - begin:
        raise ValueError(f"load: {path} is truncated: it shrank while array {name!r} was read")
    return array.astype(dtype.newbyteorder("="), copy=False)  # a no-op on little-endian hosts


# ----- atomic write -------------------------------------------------------------------------------
