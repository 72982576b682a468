"""Reader and writer for the IDX format of the MNIST and Fashion-MNIST files.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 dimensions, then the elements in C order, big-endian. The original files
are distributed gzip-compressed; both forms are read (gzip is recognised by its magic bytes,
not by the file name).
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from ._sources import as_path, atomic_write_bytes

__all__ = ["read_idx", "write_idx"]

#: IDX dtype code -> big-endian NumPy dtype of the stored elements.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(source) -> np.ndarray:
    """Read an IDX file (plain or gzip) into a native-byte-order NumPy array.

    ``source`` is a path (str or os.PathLike) or a binary file object. A malformed file
    raises ``ValueError`` naming the file and the problem: bad magic, unknown dtype code,
    dimensions that do not match the payload length, truncated or corrupt gzip.
    """
    if isinstance(source, (str, os.PathLike)):
        path = as_path(source, "source")
        name = str(path)
        with open(path, "rb") as f:
            data = f.read()
    elif hasattr(source, "read"):
        name = str(getattr(source, "name", "<file object>"))
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"read_idx: file object {name} must be opened in binary mode")
    else:
        raise TypeError(
            f"read_idx expects a path or a binary file object, not {type(source).__name__}"
        )
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{name}: corrupt or truncated gzip data ({exc})") from None
    return _parse(data, name)


def _parse(data: bytes, name: str) -> np.ndarray:
    if len(data) < 4:
        raise ValueError(f"{name}: not an IDX file: {len(data)} bytes, shorter than the header")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{name}: not an IDX file: bad magic {data[:4].hex()} (must start with 0000)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{name}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{name}: truncated IDX header: {ndim} dimensions need {header} bytes, "
            f"file has {len(data)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        problem = "truncated" if got < expected else "trailing bytes"
        raise ValueError(
            f"{name}: IDX size mismatch ({problem}): dims {shape} of {dtype.name} need "
            f"{expected} payload bytes, file has {got}"
        )
    flat = np.frombuffer(data, dtype=dtype, offset=header)
    return flat.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def write_idx(path, array, *, compress: bool | None = None) -> None:
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
