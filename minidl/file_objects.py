"""Paths and binary file objects, for ``minidl.save``/``minidl.load`` (as torch.save/torch.load)."""
from __future__ import annotations

import contextlib
import io
import os


def is_path(f) -> bool:
    return isinstance(f, (str, bytes, os.PathLike))


def check_file(f, caller: str, methods: tuple, mode: str) -> None:
    """Raise TypeError unless ``f`` is a binary file object with ``methods``."""
    missing = [method for method in methods if not callable(getattr(f, method, None))]
    if missing:
        raise TypeError(f"{caller}: expected a file path or a binary file object with "
                        f"{', '.join(methods)}, got {type(f).__name__} (no {missing[0]})")
    if isinstance(f, io.TextIOBase):
        raise TypeError(f"{caller}: {f!r} is a text file; open it in binary mode ({mode!r})")


@contextlib.contextmanager
def opened(f):
    """(binary file to read, its name for messages): a path opened (and closed after), a file
    object as it is, buffered if raw, or read into memory if it is not an ``io`` file at all."""
    if is_path(f):
        path = os.fspath(f)
        with open(path, "rb") as file:
            yield file, os.fsdecode(path)
        return
    check_file(f, "load", ("read", "seek", "tell"), "rb")
    if callable(getattr(f, "seekable", None)) and not f.seekable():
        raise io.UnsupportedOperation(f"load: {f!r} is not seekable; read it into an io.BytesIO "
                                      "first and load from that")
    name = getattr(f, "name", None)
    name = name if isinstance(name, str) else repr(f)
    if not isinstance(f, io.IOBase):  # duck-typed: zipfile wants seekable(), the arrays readinto()
        yield io.BytesIO(f.read()), name
    elif isinstance(f, io.RawIOBase):  # a raw file may read short, and every read here needs all
        buffered = io.BufferedReader(f)
        try:
            yield buffered, name
        finally:
            buffered.detach()  # leaves the caller's file open
    else:
        yield f, name
