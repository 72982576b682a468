"""Fashion-MNIST from the original IDX files: ``load_data()`` ->
``((x_train, y_train), (x_test, y_test))``, uint8, shapes as MNIST (Keras' API).

The four files (``FILES``) are read with the project's IDX parser, gzip-compressed or not
(``name.gz`` is preferred, ``name`` without ``.gz`` is accepted). Where from:

- ``path`` given: that directory and nothing else;
- otherwise the first of ``search_dirs()`` that holds all four files: the pyblasnn cache
  ``$PYBLASNN_HOME/datasets/fashion-mnist/`` (default ``~/.cache/pyblasnn``), then
  ``/usr/share/datasets/fashion-mnist/``, where Debian's package ``dataset-fashion-mnist``
  installs them.

Nothing is downloaded. A malformed file raises ``ValueError`` naming the file and the
problem; no files anywhere raises ``DatasetUnavailableError`` (an ``OSError``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ._idx import read_idx
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


def search_dirs() -> list[Path]:
    """The directories searched when no ``path`` is given, in order."""
    return [data_home() / "datasets" / "fashion-mnist", SYSTEM_DIR]


def load_data(path=None):
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
            return _load(files)
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
    arrays = {key: read_idx(file) for key, file in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        xf, yf = files[f"x_{split}"], files[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(f"{xf}: expected uint8 images (n, 28, 28), got {x.dtype} {x.shape}")
        if y.dtype != np.uint8 or y.ndim != 1:
            raise ValueError(f"{yf}: expected uint8 labels (n,), got {y.dtype} {y.shape}")
        if len(y) != len(x):
            raise ValueError(f"{yf}: {len(y)} labels for the {len(x)} images in {xf}")
        if y.size and y.max() > 9:
            raise ValueError(f"{yf}: labels must be 0-9, found {int(y.max())}")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
