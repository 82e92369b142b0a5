"""The IDX file format of MNIST and Fashion-MNIST, read into NumPy arrays.

Layout: 2 zero bytes, a dtype byte, a byte with the number of dims ``ndim``, ``ndim`` big-endian
uint32 sizes, then the values (big-endian, C order). Files may be gzip-compressed.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """The array stored in the IDX file at ``path`` (raw or gzip), in native byte order.

    Raises:
        ValueError: the file is not a well-formed IDX file (bad magic, unknown dtype, wrong size).
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        data = file.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"corrupt IDX file {path}: bad gzip data ({error})") from None
    return parse_idx(data, path)


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """The array in IDX bytes ``data`` (uncompressed); ``name`` appears in errors."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"corrupt IDX file {name}: expected the magic to start with 2 zero bytes, "
                         f"got {data[:4]!r}")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"corrupt IDX file {name}: unknown dtype code 0x{code:02x} (known: "
                         + ", ".join(f"0x{c:02x}" for c in IDX_DTYPES) + ")")
    body = 4 + 4 * ndim
    if len(data) < body:
        raise ValueError(f"corrupt IDX file {name}: truncated header ({len(data)} bytes for "
                         f"{ndim} dims)")
    shape = tuple(int(n) for n in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - body != expected:
        raise ValueError(f"corrupt IDX file {name}: shape {shape} of {dtype.name} needs {expected} "
                         f"bytes of data, the file has {len(data) - body}")
    array = np.frombuffer(data, dtype=dtype, offset=body).reshape(shape)
    return array.astype(dtype.newbyteorder("="))
