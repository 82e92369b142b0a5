"""Replace a file atomically: write a temp file beside it, fsync, rename it over the target.

The temp file is ``.<name>.<8 hex digits>.tmp`` in the target's folder. The target is ``path``
with its symlinks resolved (a link stays a link), and a replaced file keeps its permission bits.
A failed write removes its temp file, and each write first removes the temp files that killed
writes of the same target left behind; a live writer's temp file is locked (POSIX ``flock``) or
open (Windows), so a concurrent write leaves it alone.
"""
from __future__ import annotations

import os
import re
import secrets
import stat

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no flock, but a file that a writer holds open cannot be removed
    fcntl = None


def atomic_write(path: str, chunks: list) -> None:
    """Write to a temp file beside ``path``, fsync it, rename it over ``path``, fsync the folder.

    ``path`` is resolved first, so a symlink stays a link and its target is replaced. The new file
    gets the replaced file's permission bits (a new file: 0o666 less the umask, as ``open`` gives).
    """
    target = os.path.realpath(path)
    folder, name = os.path.split(target)
    _remove_abandoned_temps(folder, name)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    temp, file = _create_temp(folder, name, 0o666 if mode is None else mode)
    try:
        with file:
            if mode is not None:
                os.chmod(temp, mode)  # exactly the old bits: os.open's mode went through the umask
            for chunk in chunks:
                is_array = isinstance(chunk, np.ndarray)
                file.write(chunk.reshape(-1).view(np.uint8) if is_array else chunk)  # no copy
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
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


def _create_temp(folder: str, name: str, mode: int):
    """A new temp file ``.<name>.<8 hex digits>.tmp`` in ``folder``, open and (POSIX) locked."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        file = os.fdopen(os.open(temp, flags, mode), "wb")
        if not _lock(file, wait=True):
            return temp, file  # no locks here, so no other save removes it either
        try:
            if os.path.samestat(os.stat(temp), os.fstat(file.fileno())):
                return temp, file
        except FileNotFoundError:
            pass
        file.close()  # between our open and lock another save took it for abandoned: start over


def _remove_abandoned_temps(folder: str, name: str) -> None:
    """Remove the temp files that killed saves of ``name`` left in ``folder``; keep live ones."""
    pattern = re.compile(re.escape(f".{name}.") + r"[0-9a-f]{8}\.tmp")  # what _create_temp names
    try:
        temps = [entry.path for entry in os.scandir(folder)
                 if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)]
    except OSError:
        return  # an unreadable folder: the save itself can still work
    for temp in temps:
        try:
            if fcntl is None:
                os.remove(temp)  # fails while its writer holds it open
                continue
            with open(temp, "rb") as file:
                if _lock(file, wait=False):  # its writer is gone: the lock died with it
                    os.remove(temp)
        except OSError:
            pass  # removed meanwhile, in use, or not ours to remove


def _lock(file, wait: bool) -> bool:
    """Take ``file``'s exclusive flock; False where another holds it or there are no locks."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except OSError:  # BlockingIOError: a live writer holds it; others: a file system without locks
        return False
