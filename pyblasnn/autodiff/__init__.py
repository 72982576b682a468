"""Automatic differentiation: ``Tensor``, ``Variable``, ``GradientTape`` and the gradient rules.

``rules.py`` is the one table of forward / vector-Jacobian-product pairs; the tape
(``tape.py``) records rule applications on watched tensors and walks them backwards, and the
Keras-style layers call the same rules with their preallocated buffers.
"""
from . import random, rules
from .functions import *  # noqa: F401,F403
from .functions import __all__ as _functions
from .tape import GradientTape
from .tensor import Tensor, Variable

__all__ = ["Tensor", "Variable", "GradientTape", "random", "rules", *_functions]
