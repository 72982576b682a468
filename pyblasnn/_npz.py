"""A defensive reader of NumPy ``.npz`` files for the model and dataset loaders.

``np.load`` trusts a member's ``.npy`` header: a header claiming 10**12 elements makes it
allocate that much before it finds the data missing, and it lets zipfile's
``NotImplementedError`` / ``RuntimeError`` and ``KeyError`` out. Here every member's header
is read and checked first, without reading any data:

- the zip is well formed, each member stored or deflated, not encrypted, its declared size
  possible for its compressed size (deflate expands at most ~1032:1), no name twice;
- the ``.npy`` header (version 1 or 2, at most ``MAX_HEADER_BYTES``) describes a plain dtype
  (no objects: pickles are never loaded, no structured or sub-array dtypes);
- shape x itemsize equals the bytes the member holds after its header.

Only then does ``read`` fill a buffer of exactly that size (its CRC checked at the end).
Every problem is an ``NpzError`` (a ValueError) saying what is wrong; callers add their own
name and the file's.
"""
import math
import zipfile
import zlib

import numpy as np
from numpy.lib import format as _format

__all__ = ["NpzError", "NpzReader", "MAX_HEADER_BYTES"]

MAX_HEADER_BYTES = 10000        # numpy's own default limit for np.load
_DEFLATE_MAX_RATIO = 1032       # the largest expansion a deflate stream can encode
_CHUNK = 1 << 20
_KINDS = "biufcSU"              # bool, ints, floats, complex, bytes and str scalars


class NpzError(ValueError):
    """A file is not a readable .npz of plain arrays."""


# What zipfile, zlib and numpy's header parser raise for a damaged or hostile file.
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
                ValueError, KeyError, IndexError, TypeError, OverflowError, SyntaxError,
                RuntimeError, NotImplementedError, UnicodeError)


class _Member:
    __slots__ = ("info", "shape", "dtype", "fortran", "offset", "nbytes")

    def __init__(self, info, shape, dtype, fortran, offset, nbytes):
        self.info, self.shape, self.dtype = info, shape, dtype
        self.fortran, self.offset, self.nbytes = fortran, offset, nbytes


class NpzReader:
    """The checked headers of an .npz (``shapes``, ``dtypes``); ``read(key)`` loads one array.

    ``source``: a path or a binary file object (BytesIO). Use as a context manager.
    """

    def __init__(self, source):
        try:
            self._zip = zipfile.ZipFile(source)
        except _READ_ERRORS as exc:
            raise NpzError(f"not a zip archive ({_describe(exc)})") from None
        try:
            self._members = self._scan()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._zip.close()

    @property
    def keys(self):
        return list(self._members)

    def shape(self, key):
        return self._members[key].shape

    def dtype(self, key):
        return self._members[key].dtype

    def nbytes(self, key):
        return self._members[key].nbytes

    def _scan(self):
        members = {}
        try:
            infos = self._zip.infolist()
        except _READ_ERRORS as exc:
            raise NpzError(f"unreadable zip directory ({_describe(exc)})") from None
        seen = set()
        for info in infos:
            if info.filename in seen:
                raise NpzError(f"member {info.filename!r} appears twice")
            seen.add(info.filename)
            if not info.filename.endswith(".npy"):
                continue                       # not an array (np.load would return bytes)
            key = info.filename[:-len(".npy")]
            members[key] = self._check_member(info)
        return members

    def _check_member(self, info):
        name = info.filename
        if info.flag_bits & 0x1:
            raise NpzError(f"member {name!r} is encrypted")
        if info.compress_type == zipfile.ZIP_STORED:
            if info.file_size != info.compress_size:
                raise NpzError(f"stored member {name!r} claims {info.file_size} bytes in "
                               f"{info.compress_size}")
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            if info.file_size > info.compress_size * _DEFLATE_MAX_RATIO + 1024:
                raise NpzError(f"member {name!r} claims {info.file_size} bytes from "
                               f"{info.compress_size} compressed: impossible for deflate")
        else:
            raise NpzError(f"member {name!r} uses compression method {info.compress_type} "
                           "(only stored and deflated members are read)")
        try:
            with self._zip.open(info) as f:
                shape, dtype, fortran = _read_header(f)
                offset = f.tell()
        except NpzError as exc:
            raise NpzError(f"member {name!r}: {exc}") from None
        except _READ_ERRORS as exc:
            raise NpzError(f"member {name!r} has an unreadable .npy header "
                           f"({_describe(exc)})") from None
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes != info.file_size - offset:
            raise NpzError(f"member {name!r}: its header says shape {shape} of {dtype} "
                           f"({nbytes} bytes), the member holds {info.file_size - offset} "
                           "bytes of data")
        return _Member(info, shape, dtype, fortran, offset, nbytes)

    def read(self, key):
        """The array ``key`` (C-contiguous, native byte order, writeable)."""
        m = self._members[key]
        buf = bytearray(m.nbytes)
        view = memoryview(buf)
        try:
            with self._zip.open(m.info) as f:
                _read_exact(f, m.offset)       # skip the header, already checked
                done = 0
                while done < m.nbytes:
                    got = f.readinto(view[done:done + _CHUNK])
                    if not got:
                        raise NpzError(f"member {key + '.npy'!r} ends after {done} of "
                                       f"{m.nbytes} data bytes")
                    done += got
                if f.read(1):                  # reaching the end also checks the CRC
                    raise NpzError(f"member {key + '.npy'!r} has bytes after its data")
        except NpzError:
            raise
        except _READ_ERRORS as exc:
            raise NpzError(f"member {key + '.npy'!r} is corrupt ({_describe(exc)})") from None
        finally:
            view.release()
        arr = np.frombuffer(buf, dtype=m.dtype)
        arr = arr.reshape(m.shape, order="F" if m.fortran else "C")
        native = m.dtype.newbyteorder("=") if m.dtype.byteorder not in "=|" else m.dtype
        return arr.astype(native, order="C", copy=False)


def _read_exact(f, n):
    data = f.read(n)
    if len(data) != n:
        raise NpzError(f"truncated: {len(data)} of {n} bytes")
    return data


def _read_header(f):
    version = _format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = _format.read_array_header_1_0(f, max_header_size=MAX_HEADER_BYTES)
    elif version == (2, 0):
        shape, fortran, dtype = _format.read_array_header_2_0(f, max_header_size=MAX_HEADER_BYTES)
    else:
        raise NpzError(f"unsupported .npy format version {version}")
    if dtype.hasobject:
        raise NpzError(f"holds Python objects (dtype {dtype}); they are never unpickled")
    if dtype.names is not None or dtype.subdtype is not None or dtype.kind not in _KINDS \
            or dtype.itemsize == 0:
        raise NpzError(f"has dtype {dtype}, not a plain numeric or string dtype")
    if not isinstance(shape, tuple) or any(type(d) is not int or d < 0 for d in shape):
        raise NpzError(f"has an invalid shape {shape!r}")
    return shape, dtype, bool(fortran)


def _describe(exc):
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
