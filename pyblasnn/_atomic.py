"""Atomic file writes: readers see the old file or the new one, never a part of either.

The new content goes to a temporary file beside the target, ``.NAME.<16 hex digits>.tmp``,
which is renamed over ``NAME``. A writer killed before the rename (``kill -9``, power loss)
leaves its temporary file behind; the next successful write of the same target removes
those of its temporaries that nobody has touched for ``STALE_SECONDS`` (an active writer
keeps its file's modification time fresh, so a concurrent save is never disturbed).
"""
import os
import re
import secrets
import time
from pathlib import Path

__all__ = ["atomic_write", "temp_files", "STALE_SECONDS"]

#: A temporary file of a target untouched for this long belongs to a dead writer.
STALE_SECONDS = 600.0


def _temp_pattern(name):
    return re.compile(r"\." + re.escape(name) + r"\.[0-9a-f]{16}\.tmp")


def temp_files(path):
    """The temporary files of ``path`` that exist now (live writers' or dead ones')."""
    path = Path(path)
    pattern = _temp_pattern(path.name)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return sorted(path.parent / n for n in names if pattern.fullmatch(n))


def _remove_stale(path):
    now = time.time()
    for tmp in temp_files(path):
        try:
            if now - os.lstat(tmp).st_mtime >= STALE_SECONDS:
                os.unlink(tmp)
        except OSError:         # gone already, or not ours to remove: leave it
            pass


def _fsync_dir(directory):
    """Make a rename in ``directory`` durable; not possible on every platform."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write):
    """Call ``write(f)`` on a new binary file beside ``path``, fsync it, rename it over path.

    The temporary file gets a normal file's mode (0o666 less the umask); on any error it
    is removed and ``path`` keeps its old content. Missing parent directories are created.
    After the rename, stale temporary files of the same target are removed (see above).
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
    _fsync_dir(path.parent)
    _remove_stale(path)
