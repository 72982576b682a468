"""Atomic file writes: readers see the old file or the new one, never a part of either."""
import os
import secrets
from pathlib import Path


def atomic_write(path, write):
    """Call ``write(f)`` on a new binary file beside ``path``, fsync it, rename it over path.

    The temporary file gets a normal file's mode (0o666 less the umask); on any error it
    is removed and ``path`` keeps its old content. Missing parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
