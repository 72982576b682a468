"""Plumbing shared by the dataset loaders: cache location, hashing, atomic writes,
downloads with progress, and the error raised when no source can supply a dataset.

Nothing here knows about a particular dataset; ``mnist.py`` and ``fashion_mnist.py``
describe their sources and call into this module.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
import urllib.request
from pathlib import Path

from .._atomic import atomic_write

__all__ = [
    "DatasetUnavailableError",
    "SourceError",
    "as_path",
    "atomic_write_bytes",
    "data_home",
    "download_bytes",
    "is_offline",
    "sha256_bytes",
]

#: Seconds a download may wait on the network for any single read before giving up.
DOWNLOAD_TIMEOUT = 30.0


class DatasetUnavailableError(OSError):
    """No source could supply a dataset.

    ``attempts`` holds one ``(source, reason)`` pair per source tried, in order; the
    message lists them and says how to supply the files by hand.
    """

    def __init__(self, message: str, attempts: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.attempts = list(attempts or [])

    def __str__(self) -> str:  # OSError would print the args tuple for some arities
        return self.args[0]


class SourceError(Exception):
    """One source failed; the loader records the reason and moves on to the next."""


def as_path(value, name: str) -> Path:
    """``value`` as a Path, or TypeError/ValueError naming the argument."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, not {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str path, not {type(text).__name__}")
    if not text:
        raise ValueError(f"{name} must not be empty")
    return Path(text)


def data_home() -> Path:
    """The pyblasnn cache: ``$PYBLASNN_HOME`` or ``~/.cache/pyblasnn``."""
    home = os.environ.get("PYBLASNN_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "pyblasnn"


def is_offline() -> bool:
    """True when ``PYBLASNN_OFFLINE`` asks that no network source be tried."""
    return os.environ.get("PYBLASNN_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def sha256_bytes(data) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see pyblasnn._atomic.atomic_write)."""
    atomic_write(path, lambda f: f.write(data))


class _Progress:
    """Download progress on stderr: a percentage line redrawn in place on a terminal,
    one line at the start and one at the end otherwise (logs, CI)."""

    def __init__(self, label: str, total: int | None):
        self.label, self.total = label, total
        self.stream = sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.monotonic()
        self.last = -1.0
        size = f" ({total / 1e6:.1f} MB)" if total else ""
        if not self.tty:
            self._write(f"Downloading {label}{size} ...\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.tty or now - self.last < 0.1:
            return
        self.last = now
        if self.total:
            self._write(f"\rDownloading {self.label}: {100 * done / self.total:5.1f}% "
                        f"({done / 1e6:.1f}/{self.total / 1e6:.1f} MB)")
        else:
            self._write(f"\rDownloading {self.label}: {done / 1e6:.1f} MB")

    def fail(self) -> None:
        self._write("\n" if self.tty else f"Download of {self.label} failed\n")

    def finish(self, done: int) -> None:
        secs = time.monotonic() - self.start
        text = f"Downloaded {self.label}: {done / 1e6:.1f} MB in {secs:.1f} s"
        self._write(f"\r{text}\n" if self.tty else f"{text}\n")


def download_bytes(url: str, *, timeout: float | None = None, label: str | None = None) -> bytes:
    """The body of ``url`` (any scheme urllib opens, ``file://`` included), with progress
    on stderr. Network errors come out as ``SourceError`` with the reason."""
    timeout = DOWNLOAD_TIMEOUT if timeout is None else timeout
    progress = None
    chunks, done, total = [], 0, None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            progress = _Progress(label or url, total)
            while chunk := response.read(1 << 16):
                chunks.append(chunk)
                done += len(chunk)
                progress.update(done)
        if total is not None and done != total:
            raise SourceError(f"download incomplete: got {done} of {total} bytes")
    except (OSError, ValueError, SourceError) as exc:  # URLError and timeouts are OSErrors
        if progress is not None:
            progress.fail()
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"download failed: {exc}") from exc
    progress.finish(done)
    return b"".join(chunks)
