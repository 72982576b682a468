"""Keras-style layers on pyblasnn kernels: ``Dense`` (and the ``Input`` marker).

A layer owns its weights and their gradient buffers. The model hands it preallocated
activation / gradient workspaces, so ``forward`` and ``backward`` write into given arrays and
allocate nothing; calling a layer directly (``layer(x)``) is the allocating convenience path.
"""
import itertools
import math

import numpy as np

from . import fused, ops

__all__ = ["Layer", "Dense", "Input", "get_initializer"]

ACTIVATIONS = (None, "relu", "softmax")
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_name_counters = {}


def _unique_name(base):
    """Keras-style names: dense, dense_1, dense_2, ..."""
    counter = _name_counters.setdefault(base, itertools.count())
    i = next(counter)
    return base if i == 0 else f"{base}_{i}"


# --- initializers: f(shape, dtype, rng) -> array --------------------------------------------

def glorot_uniform(shape, dtype, rng):
    """U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = shape[0], shape[-1]
    limit = math.sqrt(6.0 / max(1, fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_uniform(shape, dtype, rng):
    """U(-limit, limit), limit = sqrt(6 / fan_in)."""
    limit = math.sqrt(6.0 / max(1, shape[0]))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def zeros(shape, dtype, rng):
    """All zeros."""
    return np.zeros(shape, dtype=dtype)


_INITIALIZERS = {"glorot_uniform": glorot_uniform, "he_uniform": he_uniform, "zeros": zeros}


def get_initializer(identifier):
    """An initializer by name ('glorot_uniform', 'he_uniform', 'zeros') or a callable."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _INITIALIZERS:
        return _INITIALIZERS[identifier]
    raise ValueError(f"Dense: unknown initializer {identifier!r}; "
                     f"expected one of {sorted(_INITIALIZERS)} or a callable(shape, dtype, rng)")


# --- layers -------------------------------------------------------------------------------

class Layer:
    """Base class: weights, their gradients, lazy build."""

    def __init__(self, name=None, dtype="float32"):
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"{type(self).__name__}: dtype must be float32 or float64, "
                            f"got {dtype!r}") from None
        if dtype not in _FLOAT_DTYPES:
            raise TypeError(f"{type(self).__name__}: dtype must be float32 or float64, "
                            f"got {dtype}")
        self.dtype = dtype
        self.name = name or _unique_name(_snake(type(self).__name__))
        self.built = False
        self.input_dim = None

    @property
    def weights(self):
        return []

    @property
    def gradients(self):
        return []

    def count_params(self):
        return int(sum(w.size for w in self.weights))


def _snake(name):
    return "".join("_" + c.lower() if c.isupper() and i else c.lower()
                   for i, c in enumerate(name))


class Input:
    """Marks the input shape of a Sequential model: ``Input(shape=(784,))``."""

    def __init__(self, shape, dtype=None, name=None):
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if len(shape) != 1 or not isinstance(shape[0], (int, np.integer)) or shape[0] < 1:
            raise ValueError(f"Input: shape must be (features,) with features >= 1, got {shape}")
        self.shape = (int(shape[0]),)
        self.dtype = dtype
        self.name = name

    def __repr__(self):
        return f"Input(shape={self.shape})"


class Dense(Layer):
    """Densely connected layer: ``output = activation(input @ kernel + bias)``.

    ``activation`` is None, "relu" (fused into the GEMM epilogue with the bias) or "softmax"
    (row-wise, applied after the GEMM; fused with the loss when a model trains on
    ``sparse_categorical_crossentropy``). The kernel (input_dim, units) is created on the first
    call, Glorot-uniform by default; the bias starts at zero.
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", input_shape=None, input_dim=None, dtype="float32",
                 name=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense: units must be a positive int, got {units!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"Dense: unknown activation {activation!r}; "
                             f"expected one of {ACTIVATIONS}")
        self.units = int(units)
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._kernel_init = get_initializer(kernel_initializer)
        self._bias_init = get_initializer(bias_initializer)
        if input_shape is not None:
            input_dim = Input(input_shape).shape[0]
        if input_dim is not None:
            input_dim = Input((input_dim,)).shape[0]
        self.input_dim = input_dim
        self.kernel = self.bias = None
        self.dkernel = self.dbias = None

    def __repr__(self):
        act = f", activation={self.activation!r}" if self.activation else ""
        bias = "" if self.use_bias else ", use_bias=False"
        return f"Dense({self.units}{act}{bias}, name={self.name!r})"

    # -- build / weights ------------------------------------------------------------------
    def build(self, input_dim, rng=None):
        """Create the kernel (input_dim, units), bias (units,) and their gradient buffers."""
        input_dim = int(input_dim)
        if self.input_dim is not None and self.input_dim != input_dim:
            raise ValueError(f"{self.name}: expected input with {self.input_dim} features, "
                             f"got {input_dim}")
        rng = np.random.default_rng() if rng is None else rng
        shape = (input_dim, self.units)
        kernel = np.ascontiguousarray(self._kernel_init(shape, self.dtype, rng), dtype=self.dtype)
        if kernel.shape != shape:
            raise ValueError(f"{self.name}: kernel_initializer returned shape {kernel.shape}, "
                             f"expected {shape}")
        self.kernel = kernel
        self.dkernel = np.zeros_like(kernel)
        if self.use_bias:
            bias = np.ascontiguousarray(self._bias_init((self.units,), self.dtype, rng),
                                        dtype=self.dtype)
            if bias.shape != (self.units,):
                raise ValueError(f"{self.name}: bias_initializer returned shape {bias.shape}, "
                                 f"expected {(self.units,)}")
            self.bias = bias
            self.dbias = np.zeros_like(bias)
        self.input_dim = input_dim
        self.built = True

    @property
    def weights(self):
        if not self.built:
            return []
        return [self.kernel, self.bias] if self.use_bias else [self.kernel]

    @property
    def gradients(self):
        if not self.built:
            return []
        return [self.dkernel, self.dbias] if self.use_bias else [self.dkernel]

    def weight_names(self):
        return ["kernel", "bias"] if self.use_bias else ["kernel"]

    def get_config(self):
        init = self.kernel_initializer if isinstance(self.kernel_initializer, str) else None
        binit = self.bias_initializer if isinstance(self.bias_initializer, str) else None
        return {"units": self.units, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": init or "glorot_uniform",
                "bias_initializer": binit or "zeros", "dtype": self.dtype.name,
                "name": self.name}

    def output_dim(self):
        return self.units

    # -- compute --------------------------------------------------------------------------
    def __call__(self, x):
        """Forward pass on a 2-D array (allocating; builds the layer on first call)."""
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"{self.name}: input must be 2-D (batch, features), got shape "
                             f"{x.shape}")
        if not self.built:
            self.build(x.shape[1])
        elif x.shape[1] != self.input_dim:
            raise ValueError(f"{self.name}: expected input with {self.input_dim} features, "
                             f"got shape {x.shape}")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        out = np.empty((x.shape[0], self.units), dtype=self.dtype)
        return self.forward(x, out)

    def forward(self, x, out, logits_only=False):
        """out := activation(x @ kernel + bias); with logits_only, softmax is left to the loss.

        IN x (batch, input_dim); OUT out (batch, units). Returns out.
        """
        relu = "relu" if self.activation == "relu" else None
        ops.dense(x, self.kernel, self.bias, activation=relu, out=out)
        if self.activation == "softmax" and not logits_only:
            fused.softmax(out, out=out)
        return out

    def backward(self, dy, x, y, dx=None, activation_done=False):
        """Gradients of the loss: fills self.dkernel / self.dbias, and dx if given.

        IN dy = dL/d(output) (overwritten with dL/d(pre-activation)), x = this layer's input,
        y = this layer's output; OUT dx (batch, input_dim) or None for the first layer.
        ``activation_done``: dy already is dL/d(pre-activation) (the fused softmax + loss).
        """
        if not activation_done:
            if self.activation == "relu":
                ops.relu_backward(dy, y, out=dy)       # y > 0 exactly where x@W + b > 0
            elif self.activation == "softmax":
                fused.softmax_backward(dy, y, out=dy)
        ops.matmul(x.T, dy, out=self.dkernel)
        if self.use_bias:
            ops.sum_to_shape(dy, (self.units,), out=self.dbias)
        if dx is not None:
            ops.matmul(dy, self.kernel.T, out=dx)
        return dx
