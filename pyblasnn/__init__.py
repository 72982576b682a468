"""pyblasnn: compiled tensor kernels (Cython + C + OpenMP) and a small Keras-style trainer.

Kernels: ``relu``, ``add``, ``maximum``, ``dot``, ``matmul`` and their ``*_backward``;
threads: ``get_num_threads`` / ``set_num_threads``; build facts: ``show_config()``.
"""
__version__ = "0.1.0"

from . import datasets, ops
from ._config import get_num_threads, set_num_threads, show_config
from .ops import (add, add_backward, dense, divide, divide_backward, dot, dot_backward, matmul,
                  matmul_backward, maximum, maximum_backward, multiply, multiply_backward, relu,
                  relu_backward, subtract, subtract_backward, sum_to_shape, take_rows)

# Keras-style frontend
from . import fused, layers, losses, metrics, models, optimizers  # noqa: E402
from .models import Sequential, load_model  # noqa: E402
