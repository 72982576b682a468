"""Keras-style ``Sequential`` model: its structure (layers, shapes, weights), summary and config.

The rest lives by concern, as in Keras: the training loop (compile / fit / evaluate / predict /
train_on_batch, workspaces) in ``pyblasnn.training``, callbacks (``History``, the progress
logger) in ``pyblasnn.callbacks``, the file format in ``pyblasnn.saving``. A model holds any
layers honouring the contract of ``pyblasnn.layers.Layer``; nothing here names a layer class.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

from . import layers as _layers
from . import saving as _saving
from .callbacks import History
from .saving import load_model
from .training import Trainer

__all__ = ["Sequential", "History", "load_model"]

FORMAT = _saving.FORMAT


def _per_sample(input_shape: Union[int, Sequence[Optional[int]]]) -> _layers.Shape:
    """Per-sample shape from an int, (None, *dims), (batch, *dims) or (features,)."""
    if isinstance(input_shape, (int, np.integer)):
        return (int(input_shape),)
    shape = tuple(input_shape)
    if len(shape) >= 2 or (shape and shape[0] is None):
        shape = shape[1:]
    return _layers.as_shape("build", shape)  # type: ignore[arg-type]


class Sequential(Trainer):
    """A linear stack of layers, Keras' ``Sequential``.

    >>> model = Sequential([layers.Dense(512, activation="relu"),
    ...                     layers.Dense(10, activation="softmax")])
    >>> model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    >>> model.fit(x_train, y_train, epochs=5, batch_size=128)

    Threads: ``predict`` / ``evaluate`` are thread-safe; one model trains in one thread at a
    time (a concurrent ``fit`` raises RuntimeError); see ``pyblasnn.training``.
    """

    def __init__(self, layers: Optional[Sequence[Union[_layers.Layer, _layers.Input]]] = None,
                 name: Optional[str] = None) -> None:
        self.name = name or _layers._unique_name("sequential")
        self.layers: list[_layers.Layer] = []
        self.input_shape: Optional[_layers.Shape] = None   # per-sample, e.g. (784,), (28, 28)
        self._output_shapes: Optional[list[_layers.Shape]] = None  # per layer, once built
        self.optimizer: Any = None
        self.loss: Any = None
        self.metrics: Any = []
        self.compiled = False
        self._init_runtime()                # training lock, workspaces (pyblasnn.training)
        for layer in layers or []:
            self.add(layer)

    def __repr__(self) -> str:
        return f"Sequential(name={self.name!r}, layers={len(self.layers)}, built={self.built})"

    # -- structure ------------------------------------------------------------------------
    def add(self, layer: Union[_layers.Layer, _layers.Input]) -> None:
        """Append a layer (``layers.Input(shape=...)`` only first)."""
        if isinstance(layer, _layers.Input):
            if self.layers:
                raise ValueError("Sequential.add: Input must come before every layer")
            self.input_shape = layer.shape
            return
        if not isinstance(layer, _layers.Layer):
            raise TypeError(f"Sequential.add: expected a pyblasnn.layers.Layer, "
                            f"got {type(layer).__name__}")
        dtype = self._layer_dtype()
        if layer.dtype is not None and dtype is not None and layer.dtype != dtype:
            raise TypeError(f"Sequential.add: layer dtype {layer.dtype} differs from the "
                            f"model's {dtype}")
        if not self.layers and self.input_shape is None:
            input_dim = getattr(layer, "input_dim", None)
            if layer.input_shape is not None:
                self.input_shape = layer.input_shape
            elif input_dim is not None:
                self.input_shape = (input_dim,)
        self.layers.append(layer)
        self._output_shapes = None
        self._layers_changed()

    def _layer_dtype(self) -> Optional[np.dtype]:
        return next((layer.dtype for layer in self.layers if layer.dtype is not None), None)

    @property
    def dtype(self) -> np.dtype:
        return self._layer_dtype() or np.dtype(np.float32)

    @property
    def input_dim(self) -> Optional[int]:
        """Features per sample of a model on flat inputs (None if unknown or not flat)."""
        s = self.input_shape
        return s[0] if s is not None and len(s) == 1 else None

    @property
    def built(self) -> bool:
        return bool(self.layers) and self._output_shapes is not None and all(
            layer.built for layer in self.layers)

    def _known_input_shape(self):
        return self.input_shape

    def _infer_shapes(self, input_shape: Sequence[int]) -> list[_layers.Shape]:
        """Each layer's per-sample output shape for this input shape (nothing is built)."""
        shapes: list[_layers.Shape] = []
        s = tuple(input_shape)
        for layer in self.layers:
            s = tuple(layer.compute_output_shape(s))
            shapes.append(s)
        return shapes

    def build(self, input_shape: Union[int, Sequence[Optional[int]]],
              rng: Optional[np.random.Generator] = None) -> None:
        """Create every layer's weights for inputs of shape (None, *dims) (or an int)."""
        if not self.layers:
            raise ValueError(f"{self.name}: cannot build a model with no layers")
        shape = _per_sample(input_shape)
        if self.input_shape is not None and self.input_shape != shape:
            what = (f"{self.input_shape[0]} input features, got {shape[0]}"
                    if len(shape) == len(self.input_shape) == 1
                    else f"samples of shape {self.input_shape}, got {shape}")
            raise ValueError(f"{self.name}: model expects {what}")
        shapes = self._infer_shapes(shape)
        rng = np.random.default_rng() if rng is None else rng
        s = shape
        for layer, out in zip(self.layers, shapes):
            if not layer.built:
                layer.build(s, rng)
            elif layer.input_shape is not None and tuple(layer.input_shape) != s:
                raise ValueError(f"{layer.name}: built for inputs of shape "
                                 f"{tuple(layer.input_shape)}, but receives {s}")
            s = out
        self.input_shape = shape
        self._output_shapes = shapes
        self._reset_workspaces()

    @property
    def weights(self) -> list[np.ndarray]:
        """Every weight array, layer by layer (kernel, bias, ...); live references."""
        return [w for layer in self.layers for w in layer.weights]

    @property
    def gradients(self) -> list[np.ndarray]:
        """Every gradient buffer, in ``weights``' order: the last ``train_on_batch`` step's
        gradients. (``fit`` hands the first Dense layer's kernel gradient to the optimizer
        as a product, which SGD takes without storing it: that buffer is not kept current
        by fit.)"""
        return [g for layer in self.layers for g in layer.gradients]

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        own = self.weights
        if len(weights) != len(own):
            raise ValueError(f"set_weights: model has {len(own)} weight arrays, got "
                             f"{len(weights)}")
        for i, (dst, given) in enumerate(zip(own, weights)):
            src = np.asarray(given)
            if src.shape != dst.shape:
                raise ValueError(f"set_weights: weight {i} has shape {dst.shape}, got "
                                 f"{src.shape}")
        for dst, value in zip(own, weights):
            dst[...] = value

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    # -- summary --------------------------------------------------------------------------
    def summary(self, print_fn: Callable[[str], Any] = print, line_length: int = 65) -> None:
        """Print Keras' table: layer (type), output shape, parameter count, totals."""
        if self.input_shape is None:
            raise ValueError(f"summary: the model {self.name!r} has not been built yet; call "
                             f"fit() or build((None, features)) first, or start with "
                             f"layers.Input(shape=(features,))")
        shapes = self._infer_shapes(self.input_shape)
        positions = [int(line_length * p) for p in (0.45, 0.85, 1.0)]

        def row(fields: Sequence[Any]) -> None:
            line = ""
            for field, end in zip(fields, positions):
                line = (line + str(field))[:end - 1] if end != positions[-1] else line + str(field)
                line += " " * (end - len(line))
            print_fn(line)

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * line_length)
        row(["Layer (type)", "Output Shape", "Param #"])
        print_fn("=" * line_length)
        total, s = 0, self.input_shape
        assert s is not None
        for i, (layer, out) in enumerate(zip(self.layers, shapes)):
            count = layer.count_params(s)
            total += count
            row([f"{layer.name} ({type(layer).__name__})", str((None, *out)), count])
            print_fn("=" * line_length if i == len(self.layers) - 1 else "_" * line_length)
            s = out
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {total:,}")
        print_fn("Non-trainable params: 0")
        print_fn("_" * line_length)

    # -- config and files (the format: pyblasnn.saving) -------------------------------------
    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name,
                  "input_shape": None if self.input_shape is None else list(self.input_shape),
                  "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                             for layer in self.layers]}
        if self.input_dim is not None:
            config["input_dim"] = self.input_dim        # what files of format /1 always held
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """A new, unbuilt model from ``get_config()`` (layer classes from the registry)."""
        model = cls([_layers.get(entry["class_name"]).from_config(entry["config"])
                     for entry in config["layers"]], name=config.get("name"))
        shape = config.get("input_shape")
        if shape is None and config.get("input_dim") is not None:
            shape = [config["input_dim"]]
        if shape is not None:
            model.input_shape = _layers.as_shape("from_config", shape)
        return model

    def save(self, filepath: Union[str, os.PathLike]) -> None:
        """Write architecture + weights + compile config + optimizer state to one .npz,
        atomically (temp file + os.replace). Load with ``pyblasnn.models.load_model``."""
        _saving.save_model(self, filepath)

    def save_weights(self, filepath: Union[str, os.PathLike]) -> None:
        """Write the weights (and the architecture, to check on load) to an .npz, atomically."""
        _saving.save_weights(self, filepath)

    def load_weights(self, filepath: Union[str, os.PathLike]) -> None:
        """Load weights saved by save_weights/save; the architecture must match."""
        _saving.load_weights(self, filepath)
