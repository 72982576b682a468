"""Reader and writer for the IDX format of the MNIST and Fashion-MNIST files.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 dimensions, then the elements in C order, big-endian. The original files
are distributed gzip-compressed; both forms are read (gzip is recognised by its magic bytes,
not by the file name).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from ._sources import as_path, atomic_write_bytes

__all__ = ["read_idx", "write_idx"]

#: IDX dtype code -> big-endian NumPy dtype of the stored elements.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def read_idx(source: str | os.PathLike[str] | IO[bytes], *,
             max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX file (plain or gzip) into a native-byte-order NumPy array.

    ``source`` is a path (str or os.PathLike) or a binary file object. A malformed file
    raises ``ValueError`` naming the file and the problem: bad magic, unknown dtype code,
    dimensions that do not match the payload length, truncated or corrupt gzip.
    ``max_bytes``: refuse (ValueError) a payload larger than this, before reading it.

    Nothing is allocated before the header is checked against the data present: a plain
    file's size is compared first, a gzip stream is decompressed in chunks and stops at
    the first byte past what the header announces.
    """
    return _read(source, "read_idx", max_bytes)[0]


def _read(source, op, max_bytes=None):
    """(array, sha256 of the decompressed IDX bytes) of ``source``; errors say ``op``."""
    if isinstance(source, (str, os.PathLike)):
        path = as_path(source, "source")
        name = str(path)
        try:
            with open(path, "rb") as f:
                return _read_stream(f, name, op, max_bytes, os.fstat(f.fileno()).st_size)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and op == "read_idx":
                raise
            raise ValueError(f"{op}: {name}: unreadable ({exc})") from None
    if hasattr(source, "read"):
        name = str(getattr(source, "name", "<file object>"))
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"read_idx: file object {name} must be opened in binary mode")
        return _read_stream(io.BytesIO(data), name, op, max_bytes, len(data))
    raise TypeError(
        f"read_idx expects a path or a binary file object, not {type(source).__name__}"
    )


def _read_stream(f, name, op, max_bytes, size):
    def fail(problem):
        return ValueError(f"{op}: {name}: {problem}")

    compressed = f.read(2) == _GZIP_MAGIC
    f.seek(0)
    stream = gzip.GzipFile(fileobj=f, mode="rb") if compressed else f
    digest = hashlib.sha256()
    try:
        head = _take(stream, 4)
        if len(head) < 4:
            raise fail(f"not an IDX file: {len(head)} bytes, shorter than the header")
        if head[0] != 0 or head[1] != 0:
            raise fail(f"not an IDX file: bad magic {head.hex()} (must start with 0000)")
        code, ndim = head[2], head[3]
        if code not in IDX_DTYPES:
            known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
            raise fail(f"unknown IDX dtype code 0x{code:02X} (known: {known})")
        dims = _take(stream, 4 * ndim)
        if len(dims) < 4 * ndim:
            raise fail(f"truncated IDX header: {ndim} dimensions need {4 + 4 * ndim} bytes, "
                       f"file has {4 + len(dims)}")
        shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
        dtype = IDX_DTYPES[code]
        expected = math.prod(shape) * dtype.itemsize
        if max_bytes is not None and expected > max_bytes:
            raise fail(f"dims {shape} of {dtype.name} need {expected} payload bytes, more "
                       f"than the {max_bytes} this file can hold")
        digest.update(head)
        digest.update(dims)
        if not compressed and size - len(head) - len(dims) != expected:
            got = size - len(head) - len(dims)
            raise fail(_mismatch(shape, dtype, expected, got))
        payload = _take(stream, expected, allocate=not compressed)
        got = len(payload)
        if got == expected:
            got += len(_take(stream, 1 << 16))    # anything after it (and gzip's CRC check)
        if got != expected:
            raise fail(_mismatch(shape, dtype, expected, got, at_least=got > expected))
    except (EOFError, OSError, zlib.error) as exc:
        raise fail(f"corrupt or truncated gzip data ({exc})") from None
    digest.update(payload)
    flat = np.frombuffer(payload, dtype=dtype)
    return flat.astype(dtype.newbyteorder("="), copy=True).reshape(shape), digest.hexdigest()


def _mismatch(shape, dtype, expected, got, at_least=False):
    problem = "truncated" if got < expected else "trailing bytes"
    return (f"IDX size mismatch ({problem}): dims {shape} of {dtype.name} need {expected} "
            f"payload bytes, file has {'at least ' if at_least else ''}{got}")


def _take(stream, n, allocate=False):
    """Up to n bytes of stream. Read in chunks, so a claimed size costs memory only as the
    data really arrives (``allocate``: n is known to be there, read it at once)."""
    if allocate:
        return stream.read(n)
    chunks, left = [], n
    while left > 0:
        chunk = stream.read(min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_idx(path: str | os.PathLike[str], array: np.typing.ArrayLike, *,
              compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file at ``path``, atomically.

    The dtype must be one IDX stores: uint8, int8, int16, int32, float32 or float64 (any
    byte order). ``compress`` defaults to gzip when ``path`` ends in ``.gz``.
    """
    path = as_path(path, "path")
    if not isinstance(array, np.ndarray):
        raise TypeError(f"write_idx expects a numpy.ndarray, not {type(array).__name__}")
    code = _CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        names = ", ".join(dt.name for dt in IDX_DTYPES.values())
        raise TypeError(f"IDX cannot store dtype {array.dtype}; use one of {names}")
    if array.ndim > 255:
        raise ValueError(f"IDX stores at most 255 dimensions, array has {array.ndim}")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"IDX dimensions must be below 2**32, got shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    data = header + payload
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(Path(path), data)
