"""File helpers: atomic writes (a crash or full disk never leaves half a file), hashing, and
the per-user cache folders."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Callable


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Write through a temporary file and rename: a crash or full disk never leaves half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".part")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_json(data: object, path: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")

    atomic_write(path, write)


def save_bytes(data: bytes, path: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def check_writable(path: str) -> None:
    """Raise OSError (with a readable strerror) unless `path` can be created or appended to.

    Outputs are checked before a model loads or a frame runs, so a typo or a read-only folder
    costs a second, not a whole run's results. The check creates and removes a temporary file
    beside `path`: permission bits alone lie for root and on read-only mounts.
    """
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise IsADirectoryError(21, "is a folder, not a file", path)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(2, f"folder {os.path.dirname(path) or '.'} does not exist", path)
    if os.path.exists(target):
        with open(target, "ab"):
            pass
        return
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".", suffix=".probe")
    os.close(fd)
    os.remove(probe)


def user_cache_dir(name: str) -> str:
    """`$XDG_CACHE_HOME/bkpose/<name>` (or `~/.cache/...`), made if needed, or a per-user temporary
    folder where the home is not writable. Numba's kernels, OpenVINO's compiled models and the MQTT
    queue each get one."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "bkpose", name)
    try:
        os.makedirs(folder, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = os.path.join(tempfile.gettempdir(), f"bkpose-{name}-{uid}")
    os.makedirs(folder, exist_ok=True)
    return folder
