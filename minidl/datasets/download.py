"""The dataset cache and checksum-verified downloads (used only when no offline source exists)."""
from __future__ import annotations

import hashlib
import os
import secrets
import urllib.request


def cache_dir() -> str:
    """``$MINIDL_DATA`` if set, else ``~/.cache/minidl``."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "minidl")
    return os.environ.get("MINIDL_DATA") or default


def file_checksum(path: str, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str, checksum: str) -> None:
    """Raise unless the digest of ``path`` is ``checksum`` (``"md5:<hex>"``, ``"sha256:<hex>"``)."""
    algorithm, _, expected = checksum.partition(":")
    actual = file_checksum(path, algorithm)
    if actual != expected:
        raise ValueError(f"checksum mismatch for {path}: expected {algorithm} {expected}, got "
                         f"{actual}; the file is corrupt or not the expected release")


def download(url: str, destination: str, timeout: float = 60.0) -> None:
    """Fetch ``url`` into ``destination`` (via a temp file, so a failed download leaves nothing)."""
    temp = f"{destination}.{secrets.token_hex(4)}.part"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(temp, "wb") as file:
            for block in iter(lambda: response.read(2**20), b""):
                file.write(block)
        os.replace(temp, destination)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def fetch(file_name: str, checksum: str, mirrors: tuple, folder: str) -> str:
    """The verified file ``folder/file_name``, downloaded from the first mirror that works.

    A cached file is verified too. Mirrors are tried in order; a bad checksum deletes the file.

    Raises:
        ConnectionError: no mirror could be reached (offline).
        ValueError: a downloaded file failed its checksum.
    """
    path = os.path.join(folder, file_name)
    if os.path.exists(path):
        verify(path, checksum)
        return path
    os.makedirs(folder, exist_ok=True)
    failures = []
    for mirror in mirrors:
        try:
            download(mirror + file_name, path)
        except OSError as error:  # URLError, timeouts and refused connections are OSErrors
            failures.append(f"{mirror + file_name}: {error}")
            continue
        try:
            verify(path, checksum)
        except ValueError:
            os.remove(path)
            raise
        return path
    raise ConnectionError("could not download " + file_name + ":\n  " + "\n  ".join(failures))
