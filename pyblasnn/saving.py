"""Saving and loading Keras-style models: one .npz per model, written atomically.

The file holds ``format`` ("pyblasnn.Sequential/1"), ``config`` (JSON: the model's
``get_config()``, plus a ``compile`` entry: optimizer class and config, its iteration count
and state slots, loss, metrics), the weights as ``weights/<layer index>/<weight name>`` and the
optimizer state as ``optimizer/<slot>/<parameter index>``. Layers are rebuilt by class name
through the layer registry (``pyblasnn.layers.get``), so a custom layer class loads once it is
defined. Files of this format written before multi-axis inputs (``input_dim`` only) still load.

Loading checks the whole file before it changes or allocates anything: the zip and every
``.npy`` header (``pyblasnn._npz``: no pickles, sizes that match the bytes present), the
config, and the shape of every weight and optimizer state array the config implies (found by
building each layer on placeholders that take no memory) against the headers in the file.
Only then are the model's arrays created and the data read. Any failure is a ValueError that
names the function and the file (FileNotFoundError for a missing one).
"""
import copy
import json
import os

import numpy as np

from . import layers as _layers
from . import losses as _losses
from . import optimizers as _optimizers
from ._atomic import atomic_write
from ._npz import NpzError, NpzReader

__all__ = ["save_model", "save_weights", "load_weights", "load_model", "FORMAT"]

FORMAT = "pyblasnn.Sequential/1"


def _atomic_savez(filepath, arrays):
    """Write the .npz atomically. In a data-parallel job (``pyblasnn.distributed``, more
    than one rank) rank 0 writes (the replicas are identical) and every rank returns once
    the file is complete, or raises rank 0's error."""
    from .distributed import active
    world = active()
    if world is None:
        atomic_write(os.fspath(filepath), lambda f: np.savez(f, **arrays))
        return
    error = None
    if world.is_root:
        try:
            atomic_write(os.fspath(filepath), lambda f: np.savez(f, **arrays))
        except OSError as exc:
            error = exc
    error = world.bcast(error)
    if error is not None:
        raise error


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


#: Largest ``format`` / ``config`` string member read (a real config is a few KB).
MAX_CONFIG_BYTES = 64 << 20

# What a config that is not what save() wrote can raise while it is interpreted.
_CONFIG_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError,
                  NotImplementedError, RecursionError, OverflowError)


class _File:
    """An opened model file: its name for messages, its checked headers, read on demand."""

    def __init__(self, op, filepath):
        self.op = op
        path = os.fspath(filepath)
        self.name = repr(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{op}: no such file {path!r}")
        try:
            self.reader = NpzReader(path)
        except NpzError as exc:
            raise self.unreadable(exc) from None
        except OSError as exc:
            raise ValueError(f"{op}: {path!r} could not be read: {exc}") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.reader.close()

    def unreadable(self, exc):
        return ValueError(f"{self.op}: {self.name} is not a readable pyblasnn model file "
                          f"(corrupt or not an .npz): {exc}")

    def error(self, what):
        return ValueError(f"{self.op}: {self.name}{'' if what.startswith(':') else ' '}{what}")

    def read(self, key):
        try:
            return self.reader.read(key)
        except NpzError as exc:
            raise self.unreadable(exc) from None

    def text(self, key):
        """A string scalar member (format, config), or None when absent or not a string."""
        r = self.reader
        if key not in r.keys or r.shape(key) != () or r.dtype(key).kind != "U" \
                or r.nbytes(key) > MAX_CONFIG_BYTES:
            return None
        return str(self.read(key))


def _open(op, filepath):
    f = _File(op, filepath)
    try:
        fmt = f.text("format")
        if fmt != FORMAT:
            raise ValueError(f"{op}: {f.name} is not a pyblasnn model file (format "
                             f"{fmt!r}, expected {FORMAT!r})")
        f.config = _parse_config(f)
    except BaseException:
        f.reader.close()
        raise
    return f


def _parse_config(f):
    text = f.text("config")
    if text is None:
        raise f.error("has no model config")
    try:
        config = json.loads(text)
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("not a mapping with a list of layers")
        for entry in config["layers"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
                raise ValueError(f"layer entry {entry!r} has no class_name")
            _layers.get(entry["class_name"])
            if not isinstance(entry.get("config"), dict):
                raise ValueError(f"layer config {entry.get('config')!r} is not a mapping")
        for key in ("input_shape", "compile"):
            if config.get(key) is not None and not isinstance(
                    config[key], list if key == "input_shape" else dict):
                raise ValueError(f"{key} {config[key]!r} has the wrong type")
    except _CONFIG_ERRORS as exc:
        raise f.error(f"has a corrupt model config: {exc}") from None
    return config


def _saved_input_shape(config):
    shape = config.get("input_shape")
    if shape is None and config.get("input_dim") is not None:
        shape = [config["input_dim"]]
    return None if shape is None else _layers.as_shape("load", shape)


def _placeholder_shapes(layer, input_shape):
    """{weight name: (shape, dtype)} that ``layer.build(input_shape)`` would create, found
    without allocating them: a copy of the layer is built with ``add_weight`` returning
    zero-stride placeholders (``np.broadcast_to`` of one element)."""
    probe = copy.deepcopy(layer)
    shapes = {}

    def add_weight(name, shape, initializer="zeros", rng=None, dtype=None):
        dtype = np.dtype(dtype or probe.dtype or np.float32)
        shape = tuple(int(d) for d in shape)
        placeholder = np.broadcast_to(np.zeros((), dtype), shape)
        shapes[name] = (shape, dtype)
        probe._weights[name] = probe._gradients[name] = placeholder
        return placeholder

    probe.add_weight = add_weight
    probe.build(input_shape, np.random.default_rng(0))
    return shapes


def _expected_weights(f, model, input_shape):
    """[(key, shape, dtype)] of every weight of ``model`` (built or to be built for
    ``input_shape``), checked against the file's headers before anything is allocated."""
    saved = f.config["layers"]
    if len(saved) != len(model.layers):
        raise f.error(f"holds {len(saved)} layers, the model has {len(model.layers)}")
    if model.built:
        per_layer = [{n: (w.shape, w.dtype) for n, w in zip(layer.weight_names(), layer.weights)}
                     for layer in model.layers]
    else:
        try:
            shapes = model._infer_shapes(input_shape)
            ins = [input_shape] + shapes[:-1]
            per_layer = [{n: (w.shape, w.dtype) for n, w in
                          zip(layer.weight_names(), layer.weights)} if layer.built
                         else _placeholder_shapes(layer, s)
                         for layer, s in zip(model.layers, ins)]
        except _CONFIG_ERRORS as exc:
            raise f.error(f"has a model config that cannot be built: {exc}") from None
    expected = []
    for i, (layer, weights) in enumerate(zip(model.layers, per_layer)):
        for wname, (shape, dtype) in weights.items():
            expected.append((f"weights/{i}/{wname}", tuple(shape), dtype, layer.name))
    _check_arrays(f, expected, "weights/")
    return expected


def _check_arrays(f, expected, prefix):
    """Every expected array is in the file with that shape and a float dtype; the file has
    no other array under ``prefix``."""
    r = f.reader
    for key, shape, dtype, owner in expected:
        if key not in r.keys:
            raise f.error(f"has no {key!r} ({owner})")
        if r.shape(key) != shape:
            raise f.error(f": {key} has shape {r.shape(key)}, {owner} expects {shape}")
        if r.dtype(key).kind != "f":
            raise f.error(f": {key} has dtype {r.dtype(key)}, {owner} expects {dtype}")
    extra = sorted(set(k for k in r.keys if k.startswith(prefix)) - {e[0] for e in expected})
    if extra:
        raise f.error(f"has arrays the model does not: {', '.join(extra[:5])}")


def load_weights(model, filepath):
    """Load weights saved by save_weights/save into ``model``; the architecture must match.
    Nothing in the model changes unless the whole file is valid."""
    op = "load_weights"
    with _open(op, filepath) as f:
        try:
            shape = _saved_input_shape(f.config)
        except _CONFIG_ERRORS as exc:
            raise f.error(f"has a corrupt model config: {exc}") from None
        if not model.built:
            if shape is None:
                raise f.error("holds no input shape and the model is not built")
            if model.input_shape is not None and tuple(model.input_shape) != shape:
                raise f.error(f"was saved for inputs of shape {shape}, the model expects "
                              f"{tuple(model.input_shape)}")
        expected = _expected_weights(f, model, shape)
        arrays = [f.read(key) for key, *_ in expected]
        if not model.built:
            model.build((None, *shape))
        for w, src in zip(model.weights, arrays):
            w[...] = src


def _compile_spec(f, comp):
    """(optimizer, loss, metrics, iterations, slots) from the config's compile entry."""
    try:
        optimizer = _optimizers.from_config(comp["optimizer"]["class_name"],
                                            comp["optimizer"]["config"])
        loss = _losses.from_config(comp["loss"]["name"], comp["loss"]["config"])
        metrics = comp["metrics"]
        iterations = comp.get("optimizer_iterations", 0)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"optimizer_iterations {iterations!r} is not a count")
        slots = comp.get("optimizer_slots", [])
        if not isinstance(slots, list) or len(set(map(str, slots))) != len(slots) \
                or set(slots) not in (set(), set(optimizer.slots)):
            raise ValueError(f"optimizer_slots {slots!r} are not slots of "
                             f"{type(optimizer).__name__} {list(optimizer.slots)}")
    except _CONFIG_ERRORS as exc:
        raise f.error(f"has a corrupt compile config: {exc}") from None
    return optimizer, loss, metrics, iterations, slots


def load_model(filepath, compile=True):
    """Rebuild a model written by ``Sequential.save``: layers, weights, and (if it was
    compiled) optimizer, loss, metrics and optimizer state, so training can resume."""
    from .models import Sequential
    op = "load_model"
    with _open(op, filepath) as f:
        config = f.config
        try:
            model = Sequential.from_config(config)
            shape = _saved_input_shape(config)
            if shape is None:
                raise ValueError("no input_shape")
        except _CONFIG_ERRORS as exc:
            raise f.error(f"has an invalid model config: {exc}") from None
        expected = _expected_weights(f, model, shape)      # sizes checked: nothing allocated yet
        comp = config.get("compile") if compile else None
        state_keys = []
        if comp:
            optimizer, loss, metrics, iterations, slots = _compile_spec(f, comp)
            state_keys = [(f"optimizer/{slot}/{i}", shape_, dtype, f"optimizer slot {slot!r}")
                          for slot in slots for i, (_, shape_, dtype, _o) in enumerate(expected)]
            _check_arrays(f, state_keys, "optimizer/")
        try:
            model.build((None, *shape))
        except _CONFIG_ERRORS as exc:
            raise f.error(f"has an invalid model config: {exc}") from None
        weights = [f.read(key) for key, *_ in expected]
        states = [f.read(key) for key, *_ in state_keys]
        for w, src in zip(model.weights, weights):
            w[...] = src
        if comp:
            try:
                model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
            except _CONFIG_ERRORS as exc:
                raise f.error(f"has a corrupt compile config: {exc}") from None
            state = {"iterations": iterations}
            n = len(expected)
            for j, slot in enumerate(slots):
                state[slot] = states[j * n:(j + 1) * n]
            optimizer.set_state(state, model.weights)
    return model
