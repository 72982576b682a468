"""Saving and loading Keras-style models: one .npz per model, written atomically.

The file holds ``format`` ("pyblasnn.Sequential/1"), ``config`` (JSON: the model's
``get_config()``, plus a ``compile`` entry: optimizer class and config, its iteration count
and state slots, loss, metrics), the weights as ``weights/<layer index>/<weight name>`` and the
optimizer state as ``optimizer/<slot>/<parameter index>``. Layers are rebuilt by class name
through the layer registry (``pyblasnn.layers.get``), so a custom layer class loads once it is
defined. Files of this format written before multi-axis inputs (``input_dim`` only) still load.
"""
import json
import os
import zipfile

import numpy as np

from . import layers as _layers
from . import losses as _losses
from . import optimizers as _optimizers
from ._atomic import atomic_write

__all__ = ["save_model", "save_weights", "load_weights", "load_model", "FORMAT"]

FORMAT = "pyblasnn.Sequential/1"


def _atomic_savez(filepath, arrays):
    atomic_write(os.fspath(filepath), lambda f: np.savez(f, **arrays))


def _weight_arrays(model):
    arrays = {}
    for i, layer in enumerate(model.layers):
        for wname, w in zip(layer.weight_names(), layer.weights):
            arrays[f"weights/{i}/{wname}"] = w
    return arrays


def save_weights(model, filepath):
    """Write the weights (and the architecture, to check on load) to an .npz, atomically."""
    if not model.built:
        raise ValueError("save_weights: the model has not been built yet")
    _atomic_savez(filepath, {"format": np.array(FORMAT),
                             "config": np.array(json.dumps(model.get_config())),
                             **_weight_arrays(model)})


def save_model(model, filepath):
    """Architecture + weights + compile config + optimizer state, atomically."""
    if not model.built:
        raise ValueError("save: the model has not been built yet")
    config = model.get_config()
    arrays = {"format": np.array(FORMAT), **_weight_arrays(model)}
    if model.compiled:
        state = model.optimizer.get_state()
        config["compile"] = {
            "optimizer": {"class_name": type(model.optimizer).__name__,
                          "config": model.optimizer.get_config()},
            "optimizer_iterations": state.pop("iterations"),
            "optimizer_slots": sorted(state),
            "loss": {"name": model.loss.name, "config": model.loss.get_config()},
            "metrics": [m.name for m in model.metrics]}
        for slot, slot_arrays in state.items():
            for i, a in enumerate(slot_arrays):
                arrays[f"optimizer/{slot}/{i}"] = a
    arrays["config"] = np.array(json.dumps(config))
    _atomic_savez(filepath, arrays)


def _read_npz(op, filepath):
    """Every array of the file, read eagerly (so CRC errors surface here)."""
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"{op}: no such file {filepath!r}")
    try:
        with np.load(filepath, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise ValueError(f"{op}: {filepath!r} is not a readable pyblasnn model file "
                         f"(corrupt or not an .npz): {exc}") from None
    fmt = arrays.get("format")
    if fmt is None or fmt.shape != () or str(fmt) != FORMAT:
        raise ValueError(f"{op}: {filepath!r} is not a pyblasnn model file (format "
                         f"{None if fmt is None else str(fmt)!r}, expected {FORMAT!r})")
    return arrays


def _parse_config(op, filepath, arrays):
    try:
        config = json.loads(str(arrays["config"]))
        for entry in config["layers"]:
            _layers.get(entry["class_name"])
            if not isinstance(entry["config"], dict):
                raise ValueError(f"layer config {entry['config']!r} is not a mapping")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{op}: {filepath!r} has a corrupt model config: {exc}") from None
    return config


def _saved_input_shape(config):
    shape = config.get("input_shape")
    if shape is None and config.get("input_dim") is not None:
        shape = [config["input_dim"]]
    return None if shape is None else tuple(shape)


def _assign_weights(model, op, filepath, arrays, config):
    saved = config["layers"]
    if len(saved) != len(model.layers):
        raise ValueError(f"{op}: {filepath!r} holds {len(saved)} layers, the model has "
                         f"{len(model.layers)}")
    updates = []
    for i, layer in enumerate(model.layers):
        for wname, w in zip(layer.weight_names(), layer.weights):
            key = f"weights/{i}/{wname}"
            if key not in arrays:
                raise ValueError(f"{op}: {filepath!r} has no {key!r} (layer {layer.name})")
            src = arrays[key]
            if src.shape != w.shape:
                raise ValueError(f"{op}: {filepath!r}: {key} has shape {src.shape}, layer "
                                 f"{layer.name} expects {w.shape}")
            updates.append((w, src))
    for w, src in updates:      # all checked before anything is overwritten
        w[...] = src


def load_weights(model, filepath):
    """Load weights saved by save_weights/save into ``model``; the architecture must match."""
    arrays = _read_npz("load_weights", filepath)
    config = _parse_config("load_weights", filepath, arrays)
    shape = _saved_input_shape(config)
    if not model.built and shape is not None:
        model.build((None, *shape))
    _assign_weights(model, "load_weights", filepath, arrays, config)


def load_model(filepath, compile=True):
    """Rebuild a model written by ``Sequential.save``: layers, weights, and (if it was
    compiled) optimizer, loss, metrics and optimizer state, so training can resume."""
    from .models import Sequential
    arrays = _read_npz("load_model", filepath)
    config = _parse_config("load_model", filepath, arrays)
    try:
        model = Sequential.from_config(config)
        shape = _saved_input_shape(config)
        if shape is None:
            raise ValueError("no input_shape")
        model.build((None, *shape))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"load_model: {filepath!r} has an invalid model config: {exc}") \
            from None
    _assign_weights(model, "load_model", filepath, arrays, config)
    comp = config.get("compile")
    if compile and comp:
        optimizer = _optimizers.from_config(comp["optimizer"]["class_name"],
                                            comp["optimizer"]["config"])
        loss = _losses.from_config(comp["loss"]["name"], comp["loss"]["config"])
        model.compile(optimizer=optimizer, loss=loss, metrics=comp["metrics"])
        state = {"iterations": comp.get("optimizer_iterations", 0)}
        for slot in comp.get("optimizer_slots", []):
            keys = sorted((k for k in arrays if k.startswith(f"optimizer/{slot}/")),
                          key=lambda k: int(k.rsplit("/", 1)[1]))
            state[slot] = [arrays[k] for k in keys]
        optimizer.set_state(state, model.weights)
    return model
