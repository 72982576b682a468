"""pyblasnn: compiled tensor kernels (Cython + C + OpenMP) and a small Keras-style trainer.

Kernels: ``relu``, ``add``, ``subtract``, ``multiply``, ``divide``, ``maximum``, ``dot``,
``matmul`` and their ``*_backward`` (NumPy arrays in, NumPy arrays out); threads:
``get_num_threads`` / ``set_num_threads``; build facts: ``show_config()``.

Autodiff, with TensorFlow's names (``import pyblasnn as tf`` runs the book's from-scratch
listing): ``Variable``, ``GradientTape``, ``constant``, ``reduce_mean``, ``nn.relu``,
``random.uniform``, ... ``matmul`` / ``add`` / ``subtract`` / ``multiply`` / ``divide`` /
``maximum`` return a ``Tensor`` (recorded by a tape) when an operand is a Tensor or Variable.
``pyblasnn.keras`` resolves ``tf.keras.*`` names to the Keras-style frontend.
"""
__version__ = "0.1.0"  # the one place the version is set (pyproject.toml reads it)


def _kernels_missing(exc: ImportError) -> ImportError:
    """The ImportError to raise when the compiled kernels are not there: where, and what to do."""
    import os
    from importlib.machinery import EXTENSION_SUFFIXES
    package = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(package)
    if any(os.path.isfile(os.path.join(package, "_kernels", "threads" + suffix))
           for suffix in EXTENSION_SUFFIXES):
        return exc      # built but failed to load: its own message says why
    if os.path.isfile(os.path.join(root, "setup.py")) and os.path.isdir(os.path.join(root, "kernels")):
        return ImportError(f"pyblasnn is imported from its source tree at {root}, which has no "
                           f"compiled kernels: run `pip install -e .` there, or run from "
                           f"another directory to use an installed pyblasnn")
    return ImportError(f"pyblasnn at {package} has no compiled kernels for this Python: "
                       f"reinstall it")


try:
    from ._kernels import threads as _threads  # noqa: F401
except ImportError as _exc:
    raise _kernels_missing(_exc) from None

import numpy as _np  # noqa: E402

from . import datasets, ops  # noqa: E402
from ._config import get_num_threads, set_num_threads, show_config  # noqa: E402
from .ops import (add_backward, dense, divide_backward, dot, dot_backward, matmul_backward,
                  maximum_backward, multiply_backward, relu, relu_backward, subtract_backward,
                  sum_to_shape, take_rows)

# Keras-style frontend
from . import callbacks, fused, layers, losses, metrics, models, optimizers  # noqa: E402
from .models import Sequential, load_model  # noqa: E402

# TensorFlow-style autodiff; these six dispatch between ops (arrays) and tensors
from . import autodiff, keras, nn  # noqa: E402
from .autodiff import (GradientTape, Tensor, Variable, argmax, cast, constant,  # noqa: E402
                       convert_to_tensor, negative, ones, ones_like, pow, random,
                       reduce_mean, reduce_sum, reshape, sigmoid, square, tanh, transpose,
                       zeros, zeros_like)
from .autodiff import add, divide, matmul, maximum, multiply, subtract  # noqa: E402

float32, float64, int32, int64 = (_np.dtype(t) for t in ("float32", "float64", "int32", "int64"))
