"""Datasets with Keras' ``load_data()`` API: ``mnist`` and ``fashion_mnist``.

Both return ``((x_train, y_train), (x_test, y_test))`` as uint8 NumPy arrays. See each
module for where the data comes from; ``PYBLASNN_HOME`` sets the cache directory
(default ``~/.cache/pyblasnn``) and ``PYBLASNN_OFFLINE=1`` turns off network sources.
"""
from . import fashion_mnist, mnist
from ._idx import read_idx, write_idx
from ._sources import DatasetUnavailableError

__all__ = ["mnist", "fashion_mnist", "read_idx", "write_idx", "DatasetUnavailableError"]
