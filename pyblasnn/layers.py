"""Keras-style layers on pyblasnn kernels: ``Dense``, ``Flatten``, ``Dropout`` (and ``Input``).

The layer contract (``Layer``), which is all ``Sequential`` and its training loop know about:

- ``compute_output_shape(input_shape)``: the per-sample output shape for a per-sample input
  shape (no batch axis), without building; raises ValueError for an input it cannot take.
- ``build(input_shape, rng=None)``: create the weights (``add_weight``, which also makes each
  weight's gradient buffer) for that input shape; ``rng`` is a numpy Generator.
- ``forward(x, out, training=False)``: the output for the batch ``x``, written into the given
  buffer ``out`` (batch, *output_shape); a layer that only reshapes or passes its input
  through returns a view of ``x`` instead. Allocates nothing on the training path. With
  ``training=False`` it must change no state of the layer (only ``out``): inference runs
  from several threads at once, and beside a training step of another thread.
- ``backward(dy, x, y, dx)``: from ``dy`` = dL/d(output) (a workspace the layer may overwrite),
  its input ``x`` and output ``y``, fill the layer's own gradient buffers (``gradients``) and
  return dL/dx: written into ``dx``, or a view of ``dy``; ``dx`` None means the input gradient
  is not needed (the first layer) and the layer returns None.
- ``split_activation()``: ``(pre, activation)``, a layer computing everything but the final
  activation (sharing the weights) and that activation's name, or ``(self, None)``. The
  model calls it once, at ``compile``, to fold a final softmax into the loss.
- ``weights`` / ``gradients`` / ``weight_names()``, ``get_config()`` / ``from_config()``.

Every public ``Layer`` subclass is registered by class name when it is defined (``get``), so a
saved model with a custom layer loads once that class is defined. Dense's forward and backward
are the shared gradient rules (``pyblasnn.autodiff.rules.dense_forward`` / ``dense_vjp``), the
same ones the ``GradientTape`` runs. Calling a layer (``layer(x)``) is the allocating path.
"""
from __future__ import annotations

import copy
import itertools
import math
import re
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _validation as _v
from . import ops
from .autodiff import rules

__all__ = ["Layer", "Dense", "Flatten", "Dropout", "Input", "get", "get_initializer"]

ACTIVATIONS = tuple(rules.ACTIVATIONS)
#: A per-sample shape (no batch axis), and what the API accepts for one.
Shape = tuple[int, ...]
ShapeLike = Union[int, Sequence[int]]
#: An initializer: f(shape, dtype, rng) -> array of that shape.
Initializer = Callable[[Shape, np.dtype, np.random.Generator], np.ndarray]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_name_counters: dict[str, itertools.count] = {}
_LAYER_CLASSES: dict[str, type[Layer]] = {}


def _unique_name(base: str) -> str:
    """Keras-style names: dense, dense_1, dense_2, ..."""
    counter = _name_counters.setdefault(base, itertools.count())
    i = next(counter)
    return base if i == 0 else f"{base}_{i}"


def _snake(name: str) -> str:
    """Keras' default layer names: Dense -> dense, LeakyReLU -> leaky_re_lu, Conv2D -> conv2d
    (an underscore before each capitalised word and at each lower-to-upper step, not before
    every capital)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def get(class_name: str) -> type[Layer]:
    """The registered layer class called ``class_name`` (what ``load_model`` rebuilds from)."""
    cls = _LAYER_CLASSES.get(class_name)
    if cls is None:
        raise ValueError(f"unknown layer class {class_name!r} (known: {sorted(_LAYER_CLASSES)}; "
                         f"a custom layer class must be defined before its model is loaded)")
    return cls


def as_shape(op: str, shape: ShapeLike) -> Shape:
    """A per-sample shape as a tuple of positive ints (an int means (int,))."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                        for d in shape):
        raise ValueError(f"{op}: shape must be a tuple of positive ints (no batch axis), "
                         f"got {shape}")
    return tuple(int(d) for d in shape)


# --- initializers: f(shape, dtype, rng) -> array --------------------------------------------

def glorot_uniform(shape: Shape, dtype: DTypeLike, rng: np.random.Generator) -> np.ndarray:
    """U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = shape[0], shape[-1]
    limit = math.sqrt(6.0 / max(1, fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_uniform(shape: Shape, dtype: DTypeLike, rng: np.random.Generator) -> np.ndarray:
    """U(-limit, limit), limit = sqrt(6 / fan_in)."""
    limit = math.sqrt(6.0 / max(1, shape[0]))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def zeros(shape: Shape, dtype: DTypeLike, rng: Optional[np.random.Generator]) -> np.ndarray:
    """All zeros."""
    return np.zeros(shape, dtype=dtype)


def ones(shape: Shape, dtype: DTypeLike, rng: Optional[np.random.Generator]) -> np.ndarray:
    """All ones."""
    return np.ones(shape, dtype=dtype)


_INITIALIZERS: dict[str, Initializer] = {"glorot_uniform": glorot_uniform, "he_uniform": he_uniform, "zeros": zeros,
                 "ones": ones}


def get_initializer(identifier: Union[str, Initializer], op: str = "Dense") -> Initializer:
    """An initializer by name ('glorot_uniform', 'he_uniform', 'zeros', 'ones') or a callable."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _INITIALIZERS:
        return _INITIALIZERS[identifier]
    raise ValueError(f"{op}: unknown initializer {identifier!r}; "
                     f"expected one of {sorted(_INITIALIZERS)} or a callable(shape, dtype, rng)")


# --- the contract -----------------------------------------------------------------------------

class Layer:
    """Base class of every layer: the contract (module docstring), weights and their gradient
    buffers (``add_weight``), lazy build, config. ``dtype=None`` (weightless layers) takes the
    model's dtype."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            _LAYER_CLASSES[cls.__name__] = cls

    def __init__(self, name: Optional[str] = None,
                 dtype: Optional[DTypeLike] = "float32") -> None:
        if dtype is not None:
            try:
                dtype = np.dtype(dtype)
            except TypeError:
                raise TypeError(f"{type(self).__name__}: dtype must be float32 or float64, "
                                f"got {dtype!r}") from None
            if dtype not in _FLOAT_DTYPES:
                raise TypeError(f"{type(self).__name__}: dtype must be float32 or float64, "
                                f"got {dtype}")
        self.dtype: Optional[np.dtype] = dtype
        self.name: str = name or _unique_name(_snake(type(self).__name__))
        self.built = False
        self.input_shape: Optional[Shape] = None    # per-sample shape, known once built
        self._weights: dict[str, np.ndarray] = {}   # name -> array
        self._gradients: dict[str, np.ndarray] = {}  # name -> gradient buffer, same shape

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # -- the contract (defaults: a weightless layer that keeps its input shape) -------------
    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        """Per-sample output shape for a per-sample input shape."""
        return tuple(input_shape)  # type: ignore[arg-type]

    def build(self, input_shape: ShapeLike, rng: Optional[np.random.Generator] = None) -> None:
        """Create the weights for inputs of per-sample shape ``input_shape``."""
        self.input_shape = as_shape(self.name, input_shape)
        self.built = True

    def forward(self, x: np.ndarray, out: np.ndarray, training: bool = False) -> np.ndarray:
        """The output for batch ``x``: written into ``out``, or a view of ``x``."""
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, dy: np.ndarray, x: np.ndarray, y: np.ndarray,
                 dx: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """Fill ``gradients``; return dL/dx (into ``dx``, or a view), None when dx is None."""
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def split_activation(self) -> tuple[Any, Optional[str]]:
        """(layer without its final activation, activation name) or (self, None)."""
        return self, None

    # -- weights --------------------------------------------------------------------------
    def add_weight(self, name: str, shape: Sequence[int],
                   initializer: Union[str, Initializer] = "zeros",
                   rng: Optional[np.random.Generator] = None,
                   dtype: Optional[DTypeLike] = None) -> np.ndarray:
        """Create weight ``name`` (and its zeroed gradient buffer); returns the weight."""
        dtype = np.dtype(dtype or self.dtype or np.float32)
        rng = np.random.default_rng() if rng is None else rng
        shape = tuple(int(d) for d in shape)
        w = np.ascontiguousarray(get_initializer(initializer, self.name)(shape, dtype, rng),
                                 dtype=dtype)
        if w.shape != shape:
            which = f"{name}_initializer" if name in ("kernel", "bias") else "initializer"
            raise ValueError(f"{self.name}: {which} returned shape {w.shape}, expected {shape}")
        self._weights[name] = w
        self._gradients[name] = np.zeros_like(w)
        return w

    @property
    def weights(self) -> list[np.ndarray]:
        """The weight arrays (live references), in ``weight_names()`` order."""
        return list(self._weights.values())

    @property
    def gradients(self) -> list[np.ndarray]:
        """dL/d(weight) buffers, filled by ``backward``, in ``weight_names()`` order."""
        return list(self._gradients.values())

    def weight_names(self) -> list[str]:
        return list(self._weights)

    def count_params(self, input_shape: Optional[ShapeLike] = None) -> int:
        """Number of weights; for an unbuilt layer, those it would create for input_shape."""
        if self.built or input_shape is None:
            return int(sum(w.size for w in self.weights))
        probe = copy.deepcopy(self)
        probe.build(input_shape, np.random.default_rng(0))
        return int(sum(w.size for w in probe.weights))

    # -- config ---------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this layer (``from_config``)."""
        config: dict[str, Any] = {"name": self.name}
        if self.dtype is not None:
            config["dtype"] = self.dtype.name
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    # -- allocating convenience -------------------------------------------------------------
    def __call__(self, x: ArrayLike, training: bool = False) -> np.ndarray:
        """Forward pass on a batch (allocating; builds the layer on the first call)."""
        x = np.asarray(x)
        if x.ndim < 1:
            raise ValueError(f"{self.name}: input must have a batch axis, got a scalar")
        if not self.built:
            self.build(x.shape[1:])
        out_shape = self.compute_output_shape(x.shape[1:])
        dtype = self.dtype or (x.dtype if x.dtype in _FLOAT_DTYPES else np.dtype(np.float32))
        x = np.ascontiguousarray(x, dtype=dtype)
        out = np.empty((x.shape[0], *out_shape), dtype=dtype)
        y = self.forward(x, out, training)
        return y


class Input:
    """Marks the per-sample input shape of a Sequential model: ``Input(shape=(784,))``."""

    def __init__(self, shape: ShapeLike, dtype: Optional[DTypeLike] = None,
                 name: Optional[str] = None) -> None:
        self.shape = as_shape("Input", shape)
        self.dtype = dtype
        self.name = name

    def __repr__(self) -> str:
        return f"Input(shape={self.shape})"


# --- layers ---------------------------------------------------------------------------------

class Dense(Layer):
    """Densely connected layer: ``output = activation(input @ kernel + bias)``.

    ``activation``: None / "linear", "relu" (fused into the GEMM epilogue with the bias),
    "sigmoid", "tanh" or "softmax" (applied after the GEMM; a final softmax is folded into the
    loss when a model compiles with ``sparse_categorical_crossentropy``). The kernel
    (input_dim, units) is created on the first call, Glorot-uniform by default; the bias
    starts at zero. Forward and backward are ``rules.dense_forward`` / ``rules.dense_vjp``.
    """

    def __init__(self, units: int, activation: Optional[str] = None, use_bias: bool = True,
                 kernel_initializer: Union[str, Initializer] = "glorot_uniform",
                 bias_initializer: Union[str, Initializer] = "zeros",
                 input_shape: Optional[ShapeLike] = None, input_dim: Optional[int] = None,
                 dtype: Optional[DTypeLike] = "float32", name: Optional[str] = None) -> None:
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
        get_initializer(kernel_initializer)
        get_initializer(bias_initializer)
        if input_shape is not None:
            features = Input(input_shape).shape
            if len(features) != 1:
                raise ValueError(f"Dense: input_shape must be (features,), got {features}")
            input_dim = features[0]
        if input_dim is not None:
            input_dim = Input((input_dim,)).shape[0]
        self.input_dim: Optional[int] = input_dim
        self.kernel: Optional[np.ndarray] = None
        self.bias: Optional[np.ndarray] = None
        self.dkernel: Optional[np.ndarray] = None
        self.dbias: Optional[np.ndarray] = None

    def __repr__(self) -> str:
        act = f", activation={self.activation!r}" if self.activation else ""
        bias = "" if self.use_bias else ", use_bias=False"
        return f"Dense({self.units}{act}{bias}, name={self.name!r})"

    # -- shapes / build -------------------------------------------------------------------
    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        input_shape = (input_shape,) if isinstance(input_shape, (int, np.integer)) \
            else tuple(input_shape)
        if len(input_shape) != 1:
            raise ValueError(f"{self.name} expects 2-D input (samples, features), got samples "
                             f"of shape {input_shape}; flatten it first (layers.Flatten())")
        if self.input_dim is not None and self.input_dim != input_shape[0]:
            raise ValueError(f"{self.name}: expected input with {self.input_dim} features, "
                             f"got {input_shape[0]}")
        return (self.units,)

    def build(self, input_shape: ShapeLike, rng: Optional[np.random.Generator] = None) -> None:
        """Create the kernel (input_dim, units), bias (units,) and their gradient buffers."""
        self.compute_output_shape(input_shape)
        input_dim = as_shape(self.name, input_shape)[0]
        rng = np.random.default_rng() if rng is None else rng
        self._weights, self._gradients = {}, {}
        self.kernel = self.add_weight("kernel", (input_dim, self.units), self.kernel_initializer,
                                      rng)
        self.dkernel = self._gradients["kernel"]
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer, rng)
            self.dbias = self._gradients["bias"]
        self.input_dim = input_dim
        self.input_shape = (input_dim,)
        self.built = True

    def get_config(self) -> dict[str, Any]:
        init = self.kernel_initializer if isinstance(self.kernel_initializer, str) else None
        binit = self.bias_initializer if isinstance(self.bias_initializer, str) else None
        return {"units": self.units, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": init or "glorot_uniform",
                "bias_initializer": binit or "zeros",
                "dtype": self.dtype.name,  # type: ignore[union-attr]
                "name": self.name}

    def output_dim(self) -> int:
        return self.units

    # -- compute --------------------------------------------------------------------------
    def __call__(self, x: ArrayLike, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"{self.name}: input must be 2-D (batch, features), got shape "
                             f"{x.shape}")
        return super().__call__(x, training)

    def forward(self, x: np.ndarray, out: np.ndarray, training: bool = False) -> np.ndarray:
        """out := activation(x @ kernel + bias). IN x (batch, input_dim); OUT out (batch, units)."""
        return rules.dense_forward(x, self.kernel, self.bias, self.activation, out=out)[0]

    def backward(self, dy: np.ndarray, x: np.ndarray, y: np.ndarray,
                 dx: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """Fills dkernel / dbias (and dx unless None) from dy = dL/d(output), which it
        overwrites with dL/d(pre-activation)."""
        return self._vjp(dy, x, y, dx, self.activation)

    def _vjp(self, dy: np.ndarray, x: np.ndarray, y: np.ndarray, dx: Optional[np.ndarray],
             activation: Optional[str]) -> Optional[np.ndarray]:
        saved = (x, self.kernel, y, activation, self.use_bias)
        return rules.dense_vjp(dy, saved, (dx is not None, True, True),
                               out=(dx, self.dkernel, self.dbias))[0]

    def backward_factored(self, dy: np.ndarray, x: np.ndarray,
                          y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``backward(dy, x, y, None)`` but for the kernel's gradient, which is returned as a
        product instead, for an optimizer to fuse with its update: (kernel, a, b) with
        dkernel = a @ b = x.T @ dL/d(pre-activation). dbias is filled."""
        return self._factored(dy, x, y, self.activation)

    def _factored(self, dy, x, y, activation):
        g = rules.dense_pre_activation_grad(dy, activation, y)
        if self.use_bias:
            ops.sum_to_shape(g, (self.units,), out=self.dbias)
        return self.kernel, x.T, g

    def split_activation(self) -> tuple[Any, Optional[str]]:
        if self.activation in (None, "linear"):
            return self, None
        return _DenseLogits(self), self.activation


class _DenseLogits:
    """A Dense layer without its activation (the logits a fused loss takes), same weights."""

    __slots__ = ("layer",)

    def __init__(self, layer: Dense) -> None:
        self.layer = layer

    def __repr__(self) -> str:
        return f"{self.layer!r} without its activation"

    def forward(self, x: np.ndarray, out: np.ndarray, training: bool = False) -> np.ndarray:
        layer = self.layer
        return rules.dense_forward(x, layer.kernel, layer.bias, None, out=out)[0]

    def backward(self, dy: np.ndarray, x: np.ndarray, y: np.ndarray,
                 dx: Optional[np.ndarray]) -> Optional[np.ndarray]:
        return self.layer._vjp(dy, x, y, dx, None)

    def backward_factored(self, dy: np.ndarray, x: np.ndarray,
                          y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.layer._factored(dy, x, y, None)


class Flatten(Layer):
    """Flattens each sample: (batch, 28, 28) -> (batch, 784). A view, no copy."""

    def __init__(self, name: Optional[str] = None, dtype: Optional[DTypeLike] = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return (int(np.prod(input_shape)),)

    def forward(self, x: np.ndarray, out: np.ndarray, training: bool = False) -> np.ndarray:
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray, x: np.ndarray, y: np.ndarray,
                 dx: Optional[np.ndarray]) -> Optional[np.ndarray]:
        return None if dx is None else dy.reshape(x.shape)


class Dropout(Layer):
    """Inverted dropout (Keras): in training, each input is zeroed with probability ``rate``
    and the kept ones are scaled by 1 / (1 - rate); at inference the layer is the identity.

    ``seed`` fixes the masks; without it the generator is spawned from the model's build
    generator, so ``fit(seed=...)`` makes the masks reproducible too.
    """

    def __init__(self, rate: float, seed: Optional[int] = None, name: Optional[str] = None,
                 dtype: Optional[DTypeLike] = None) -> None:
        super().__init__(name=name, dtype=dtype)
        rate = _v._check_real("Dropout", "rate", rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"Dropout: seed must be an int or None, got {seed!r}")
        self.rate = float(rate)
        self.seed = None if seed is None else int(seed)
        self._rng: Optional[np.random.Generator] = (
            None if seed is None else np.random.default_rng(self.seed))
        self._buffers: dict[Any, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        #                                   (shape, dtype) -> (uniform, keep, mask)
        self.mask: Optional[np.ndarray] = None                   # the last training mask: 0 or 1 / (1 - rate)
                                            # (inference neither uses nor clears it)

    def __repr__(self) -> str:
        return f"Dropout({self.rate:g}, name={self.name!r})"

    def build(self, input_shape: ShapeLike, rng: Optional[np.random.Generator] = None) -> None:
        super().build(input_shape, rng)
        if self._rng is None:
            spawn = getattr(rng, "spawn", None)
            try:
                self._rng = spawn(1)[0] if spawn is not None else np.random.default_rng()
            except (TypeError, ValueError):          # a generator without a seed sequence
                self._rng = np.random.default_rng(rng.integers(2**63))  # type: ignore[union-attr]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}

    def forward(self, x: np.ndarray, out: np.ndarray, training: bool = False) -> np.ndarray:
        if not training:                    # inference changes nothing (thread-safe)
            return x
        if self.rate == 0.0:
            self.mask = None
            return x
        if self._rng is None:
            self._rng = np.random.default_rng()
        key = (x.shape, x.dtype)
        bufs = self._buffers.get(key)
        if bufs is None:
            bufs = self._buffers[key] = (np.empty(x.shape, x.dtype), np.empty(x.shape, bool),
                                         np.empty(x.shape, x.dtype))
        uniform, keep, mask = bufs
        self._rng.random(out=uniform, dtype=x.dtype)
        np.greater_equal(uniform, self.rate, out=keep)
        np.multiply(keep, x.dtype.type(1.0 / (1.0 - self.rate)), out=mask)
        self.mask = mask
        return np.multiply(x, mask, out=out)

    def backward(self, dy: np.ndarray, x: np.ndarray, y: np.ndarray,
                 dx: Optional[np.ndarray]) -> Optional[np.ndarray]:
        if dx is None:
            return None
        if self.mask is None:
            return dy
        return np.multiply(dy, self.mask, out=dx)
