"""pyblasnn: compiled tensor kernels and a small Keras-style trainer."""
__version__ = "0.1.0"
