"""Fashion-MNIST from the original IDX files: ``load_data()`` ->
``((x_train, y_train), (x_test, y_test))``, uint8, shapes as MNIST (Keras' API).

The four files (``FILES``) are read with the project's IDX parser, gzip-compressed or not
(``name.gz`` is preferred, ``name`` without ``.gz`` is accepted). Where from:

- ``path`` given: that directory and nothing else;
- otherwise the first of ``search_dirs()`` that holds all four files: the pyblasnn cache
  ``$PYBLASNN_HOME/datasets/fashion-mnist/`` (default ``~/.cache/pyblasnn``), then
  ``/usr/share/datasets/fashion-mnist/``, where Debian's package ``dataset-fashion-mnist``
  installs them.

Every file is verified: its structure (IDX magic, dtype, dimensions against the bytes
present, read without allocating more than the real file's size) and the sha256 of its
decompressed IDX bytes (``EXPECTED_SHA256``, so a re-compressed copy such as Debian's is
fine; the published sha256 of the original gzip files are in ``GZIP_SHA256`` for reference).

Nothing is downloaded. A file in the directory you name that is malformed or not
Fashion-MNIST raises ``ValueError`` naming the function, the file and the problem; one in a
searched directory is reported with a warning and the next directory is tried. No usable
files anywhere raises ``DatasetUnavailableError`` (an ``OSError``).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ._idx import _read
from ._sources import DatasetUnavailableError, as_path, data_home

__all__ = ["load_data", "DatasetUnavailableError"]

FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
#: Where Debian's ``dataset-fashion-mnist`` package installs the files.
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
URL = "https://github.com/zalandoresearch/fashion-mnist/tree/master/data/fashion"

#: sha256 of each file's decompressed IDX bytes (header + payload): the original files'
#: published values, which Debian's re-compressed copies match too.
EXPECTED_SHA256 = {
    "x_train": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "y_train": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "x_test": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "y_test": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
#: sha256 of the four original gzip files as published (not checked: a re-compressed copy
#: differs byte-wise but holds the same data).
GZIP_SHA256 = {
    "x_train": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
    "y_train": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
    "x_test": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
    "y_test": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
}
#: Payload bytes of the real files: nothing larger is read.
MAX_BYTES = {"x_train": 60000 * 28 * 28, "y_train": 60000, "x_test": 10000 * 28 * 28,
             "y_test": 10000}
_OP = "fashion_mnist.load_data"


def search_dirs() -> list[Path]:
    """The directories searched when no ``path`` is given, in order."""
    return [data_home() / "datasets" / "fashion-mnist", SYSTEM_DIR]


def load_data(path: str | os.PathLike[str] | None = None) -> tuple[
        tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST: ``((x_train, y_train), (x_test, y_test))``.

    ``x_*`` are ``(n, 28, 28)`` uint8 images, ``y_*`` ``(n,)`` uint8 labels 0-9 (60,000
    train and 10,000 test in the original files). ``path``: a directory holding the four
    IDX files; by default the cache and Debian's install location are searched.
    """
    if path is not None:
        directory = as_path(path, "path")
        if not directory.is_dir():
            raise DatasetUnavailableError(
                f"Fashion-MNIST: {directory} is not a directory" + _how_to(),
                [(str(directory), "not a directory")])
        files, missing = _locate(directory)
        if missing:
            raise DatasetUnavailableError(
                f"Fashion-MNIST: {directory} lacks {', '.join(missing)}" + _how_to(),
                [(str(directory), f"missing {', '.join(missing)}")])
        return _load(files)

    attempts = []
    for directory in search_dirs():
        files, missing = _locate(directory)
        if not missing:
            try:
                return _load(files)
            except ValueError as exc:
                warnings.warn(f"fashion_mnist: not using {directory}: {exc}", stacklevel=2)
                attempts.append((str(directory), str(exc)))
                continue
        why = "not found" if not directory.is_dir() else f"missing {', '.join(missing)}"
        attempts.append((str(directory), why))
    tried = "\n".join(f"  {i}. {d}: {why}" for i, (d, why) in enumerate(attempts, 1))
    raise DatasetUnavailableError(
        "Fashion-MNIST could not be found. Directories tried, in order:\n" + tried + _how_to(),
        attempts)


def _how_to() -> str:
    names = " ".join(FILES.values())
    return (f"\nTo supply it: get the four files ({names}) from {URL}\n"
            f"(or `apt install dataset-fashion-mnist` on Debian/Ubuntu, which puts them in "
            f"{SYSTEM_DIR}) and put them in {search_dirs()[0]} or pass the directory: "
            f"fashion_mnist.load_data('/path/to/dir')")


def _locate(directory: Path):
    """(key -> existing file, names missing) for the four files in ``directory``."""
    files, missing = {}, []
    for key, name in FILES.items():
        for candidate in (directory / name, directory / name[: -len(".gz")]):
            if candidate.is_file():
                files[key] = candidate
                break
        else:
            missing.append(name)
    return files, missing


def _load(files: dict):
    """The four verified arrays, or ValueError naming the first bad file."""
    arrays, digests = {}, {}
    for key, file in files.items():
        arrays[key], digests[key] = _read(file, _OP, MAX_BYTES[key])
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        xf, yf = files[f"x_{split}"], files[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(f"{_OP}: {xf}: expected uint8 images (n, 28, 28), got {x.dtype} "
                             f"{x.shape}")
        if y.dtype != np.uint8 or y.ndim != 1:
            raise ValueError(f"{_OP}: {yf}: expected uint8 labels (n,), got {y.dtype} {y.shape}")
        if len(y) != len(x):
            raise ValueError(f"{_OP}: {yf}: {len(y)} labels for the {len(x)} images in {xf}")
        if y.size and y.max() > 9:
            raise ValueError(f"{_OP}: {yf}: labels must be 0-9, found {int(y.max())}")
    for key, file in files.items():
        if digests[key] != EXPECTED_SHA256[key]:
            raise ValueError(f"{_OP}: {file}: not the Fashion-MNIST file: sha256 of its IDX "
                             f"data is {digests[key]}, expected {EXPECTED_SHA256[key]}")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
