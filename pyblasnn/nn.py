"""``pyblasnn.nn``: TensorFlow's ``tf.nn`` activations on tensors (recorded by a tape)."""
from .autodiff.functions import relu, sigmoid, softmax, tanh

__all__ = ["relu", "softmax", "sigmoid", "tanh"]
