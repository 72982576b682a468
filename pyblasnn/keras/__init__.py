"""``pyblasnn.keras``: TensorFlow's ``tf.keras`` names resolved to pyblasnn's own objects.

``from pyblasnn.keras import optimizers``, ``from pyblasnn.keras.datasets import mnist``,
``pyblasnn.keras.losses.sparse_categorical_crossentropy``, ``pyblasnn.keras.Sequential``,
``pyblasnn.keras.layers.Dense``: the same modules and classes as ``pyblasnn.optimizers``,
``pyblasnn.datasets``, ``pyblasnn.losses``, ``pyblasnn.Sequential`` and ``pyblasnn.layers``.
"""
import sys

from .. import callbacks, datasets, layers, losses, metrics, models, optimizers
from ..models import Sequential

__all__ = ["Sequential", "callbacks", "datasets", "layers", "losses", "metrics", "models", "optimizers"]

# make `import pyblasnn.keras.optimizers` and `from pyblasnn.keras.datasets import mnist`
# find the same module objects
for _name in ("callbacks", "datasets", "layers", "losses", "metrics", "models", "optimizers"):
    sys.modules[f"{__name__}.{_name}"] = globals()[_name]
del _name
