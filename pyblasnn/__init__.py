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
__version__ = "0.1.0"

import numpy as _np

from . import datasets, ops
from ._config import get_num_threads, set_num_threads, show_config
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
