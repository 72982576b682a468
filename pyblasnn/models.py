"""Keras-style ``Sequential`` model: compile / fit / evaluate / predict / summary / save.

Training runs on preallocated workspaces (one set per batch size: the gathered batch, every
layer's activations and their gradients, labels, per-row losses), so once warmed up a step
allocates no arrays: the batch is gathered with ``ops.take_rows`` into the workspace, each
layer writes into its slot, the fused softmax + cross-entropy kernel writes dlogits, the
backward GEMMs write into the layers' gradient buffers and the optimizer updates in place.
"""
import json
import os
import zipfile

import numpy as np

from . import _validation as _v
from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics
from . import ops
from . import optimizers as _optimizers
from .progress import Progbar
from ._atomic import atomic_write

__all__ = ["Sequential", "History", "load_model"]

FORMAT = "pyblasnn.Sequential/1"


class History:
    """Per-epoch results of ``fit``: ``history.history["loss"]``, ``["accuracy"]``, ..."""

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.params = {}

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)


class _Workspace:
    """Every array one step needs for one batch size, allocated once."""

    def __init__(self, model, batch):
        dt, in_dim = model.dtype, model.input_dim
        self.batch = batch
        self.x = np.empty((batch, in_dim), dtype=dt)
        self.labels = np.empty(batch, dtype=np.intp)
        self.acts = [np.empty((batch, layer.units), dtype=dt) for layer in model.layers]
        self.grads = [np.empty((batch, layer.units), dtype=dt) for layer in model.layers]
        self.row_loss = np.empty(batch, dtype=np.float64)

    def arrays(self):
        return [self.x, self.labels, self.row_loss, *self.acts, *self.grads]


class Sequential:
    """A linear stack of layers, Keras' ``Sequential``.

    >>> model = Sequential([layers.Dense(512, activation="relu"),
    ...                     layers.Dense(10, activation="softmax")])
    >>> model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    >>> model.fit(x_train, y_train, epochs=5, batch_size=128)
    """

    def __init__(self, layers=None, name=None):
        self.name = name or _layers._unique_name("sequential")
        self.layers = []
        self.input_dim = None
        self.optimizer = self.loss = None
        self.metrics = []
        self.compiled = False
        self._workspaces = {}
        for layer in layers or []:
            self.add(layer)

    def __repr__(self):
        return f"Sequential(name={self.name!r}, layers={len(self.layers)}, built={self.built})"

    # -- structure ------------------------------------------------------------------------
    def add(self, layer):
        """Append a layer (``layers.Input(shape=...)`` only first)."""
        if isinstance(layer, _layers.Input):
            if self.layers:
                raise ValueError("Sequential.add: Input must come before every layer")
            self.input_dim = layer.shape[0]
            return
        if not isinstance(layer, _layers.Dense):
            raise TypeError(f"Sequential.add: expected a pyblasnn.layers.Dense, "
                            f"got {type(layer).__name__}")
        if self.layers and layer.dtype != self.layers[0].dtype:
            raise TypeError(f"Sequential.add: layer dtype {layer.dtype} differs from the "
                            f"model's {self.layers[0].dtype}")
        if not self.layers and layer.input_dim is not None and self.input_dim is None:
            self.input_dim = layer.input_dim
        self.layers.append(layer)
        self._workspaces.clear()

    @property
    def built(self):
        return bool(self.layers) and all(layer.built for layer in self.layers)

    @property
    def dtype(self):
        return self.layers[0].dtype if self.layers else np.dtype(np.float32)

    def build(self, input_shape, rng=None):
        """Create every layer's weights for inputs of shape (None, features) (or features)."""
        if not self.layers:
            raise ValueError(f"{self.name}: cannot build a model with no layers")
        features = input_shape if isinstance(input_shape, (int, np.integer)) else input_shape[-1]
        features = int(features)
        if self.input_dim is not None and self.input_dim != features:
            raise ValueError(f"{self.name}: model expects {self.input_dim} input features, "
                             f"got {features}")
        rng = np.random.default_rng() if rng is None else rng
        dim = features
        for layer in self.layers:
            if not layer.built:
                layer.build(dim, rng)
            elif layer.input_dim != dim:
                raise ValueError(f"{layer.name}: built for {layer.input_dim} input features, "
                                 f"but receives {dim}")
            dim = layer.units
        self.input_dim = features
        self._workspaces.clear()

    @property
    def weights(self):
        """Every weight array, layer by layer (kernel, bias, ...); live references."""
        return [w for layer in self.layers for w in layer.weights]

    @property
    def gradients(self):
        return [g for layer in self.layers for g in layer.gradients]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        own = self.weights
        if len(weights) != len(own):
            raise ValueError(f"set_weights: model has {len(own)} weight arrays, got "
                             f"{len(weights)}")
        for i, (dst, src) in enumerate(zip(own, weights)):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(f"set_weights: weight {i} has shape {dst.shape}, got "
                                 f"{src.shape}")
            dst[...] = src

    def count_params(self):
        return sum(layer.count_params() for layer in self.layers)

    def _input_dims(self):
        """Each layer's input feature count, known without building (None if unknown)."""
        dim = self.input_dim if self.input_dim is not None else (
            self.layers[0].input_dim if self.layers else None)
        if dim is None:
            return None
        dims = []
        for layer in self.layers:
            dims.append(dim)
            dim = layer.units
        return dims

    def summary(self, print_fn=print, line_length=65):
        """Print Keras' table: layer (type), output shape, parameter count, totals."""
        dims = self._input_dims()
        if dims is None:
            raise ValueError(f"summary: the model {self.name!r} has not been built yet; call "
                             f"fit() or build((None, features)) first, or start with "
                             f"layers.Input(shape=(features,))")
        positions = [int(line_length * p) for p in (0.45, 0.85, 1.0)]

        def row(fields):
            line = ""
            for field, end in zip(fields, positions):
                line = (line + str(field))[:end - 1] if end != positions[-1] else line + str(field)
                line += " " * (end - len(line))
            print_fn(line)

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * line_length)
        row(["Layer (type)", "Output Shape", "Param #"])
        print_fn("=" * line_length)
        total = 0
        for i, (layer, dim) in enumerate(zip(self.layers, dims)):
            count = dim * layer.units + (layer.units if layer.use_bias else 0)
            total += count
            row([f"{layer.name} ({type(layer).__name__})", f"(None, {layer.units})", count])
            print_fn("=" * line_length if i == len(self.layers) - 1 else "_" * line_length)
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {total:,}")
        print_fn("Non-trainable params: 0")
        print_fn("_" * line_length)

    # -- compile --------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Set optimizer (name or instance), loss (name or instance) and metrics."""
        if loss is None:
            raise ValueError("compile: a loss is required, e.g. "
                             "loss='sparse_categorical_crossentropy'")
        self.optimizer = _optimizers.get(optimizer)
        self.loss = _losses.get(loss)
        if isinstance(metrics, str):
            metrics = [metrics]
        self.metrics = [_metrics.get(m) for m in (metrics or [])]
        if len({m.name for m in self.metrics}) != len(self.metrics):
            raise ValueError(f"compile: duplicate metrics {metrics}")
        self.compiled = True

    def _require_compiled(self, op):
        if not self.compiled:
            raise RuntimeError(f"{op}: the model must be compiled before {op}(); call "
                               f"model.compile(optimizer, loss, metrics) first")

    def _fuses_softmax(self):
        """True when the last layer's softmax is folded into the loss (logits go to the loss)."""
        return (self.layers[-1].activation == "softmax" and not self.loss.from_logits)

    # -- input checks ---------------------------------------------------------------------
    def _prepare_x(self, op, x):
        if not self.layers:
            raise ValueError(f"{op}: the model has no layers")
        if not isinstance(x, np.ndarray):
            try:
                x = np.asarray(x)
            except Exception as exc:
                raise ValueError(f"{op}: x could not be read as an array: {exc}") from None
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{op}: x must hold numbers, got dtype {x.dtype}")
        if x.ndim != 2:
            hint = (f"; flatten it first, e.g. x.reshape(({x.shape[0]}, "
                    f"{int(np.prod(x.shape[1:]))}))" if x.ndim > 2 else "")
            raise ValueError(f"{op}: x must be 2-D (samples, features), got shape "
                             f"{x.shape}{hint}")
        expected = self.input_dim if self.input_dim is not None else self.layers[0].input_dim
        if expected is not None and x.shape[1] != expected:
            raise ValueError(f"{op}: the model expects {expected} features per sample, got x "
                             f"with shape {x.shape}")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _prepare_y(self, op, y, n):
        return _v.as_sparse_labels(op, y, n, self.layers[-1].units)

    @staticmethod
    def _check_batch_size(op, batch_size):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"{op}: batch_size must be a positive int, got {batch_size!r}")
        return int(batch_size)

    def _workspace(self, batch):
        ws = self._workspaces.get(batch)
        if ws is None:
            ws = self._workspaces[batch] = _Workspace(self, batch)
        return ws

    # -- one step -------------------------------------------------------------------------
    def _forward(self, x, ws, last_out=None, logits_only=False):
        """Run every layer; returns the output array (ws slot or last_out)."""
        a = x
        n = x.shape[0]
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            out = last_out if (last and last_out is not None) else ws.acts[i][:n]
            a = layer.forward(a, out, logits_only=last and logits_only)
        return a

    def _train_step(self, x, labels, ws):
        """Forward, fused loss + dlogits, backward, optimizer update. Returns (loss, correct)."""
        fuse = self._fuses_softmax()
        out = self._forward(x, ws, logits_only=fuse)
        loss, correct = self.loss.compute(out, labels, grad_out=ws.grads[-1],
                                          row_loss=ws.row_loss,
                                          logits=fuse or self.loss.from_logits)
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            inp = x if i == 0 else ws.acts[i - 1]
            dx = ws.grads[i - 1] if i > 0 else None
            layer.backward(ws.grads[i], inp, ws.acts[i], dx,
                           activation_done=fuse and i == len(self.layers) - 1)
        self.optimizer.apply(self._params, self._grads)
        return loss, correct

    def _fit_batch(self, x, labels, order, start, stop):
        """One step of fit on samples order[start:stop] (or start:stop when order is None).

        Shuffled rows are gathered into the workspace (ops.take_rows, np.take with out=), so
        nothing is allocated once the workspace for this batch size exists.
        """
        ws = self._workspace(stop - start)
        if order is not None:
            idx = order[start:stop]
            xb = ops.take_rows(x, idx, out=ws.x)
            yb = np.take(labels, idx, out=ws.labels, mode="clip")
        else:
            xb, yb = x[start:stop], labels[start:stop]
        return self._train_step(xb, yb, ws)

    def train_on_batch(self, x, y):
        """One optimizer step on (x, y); returns [loss, accuracy...] like Keras."""
        self._require_compiled("train_on_batch")
        x = self._prepare_x("train_on_batch", x)
        labels = self._prepare_y("train_on_batch", y, x.shape[0])
        if not self.built:
            self.build(x.shape[1])
        if x.shape[0] == 0:
            raise ValueError("train_on_batch: x has no samples")
        self._params, self._grads = self.weights, self.gradients
        loss, correct = self._train_step(x, labels, self._workspace(x.shape[0]))
        return self._results(loss, correct, x.shape[0])

    def _results(self, loss, correct, n):
        values = [loss] + [correct / n if n else 0.0 for _ in self.metrics]
        return values if self.metrics else loss

    # -- fit / evaluate / predict ---------------------------------------------------------
    def fit(self, x, y, batch_size=32, epochs=1, verbose=1, validation_split=0.0,
            validation_data=None, shuffle=True, seed=None):
        """Train for ``epochs`` passes over (x, y) in minibatches; returns a ``History``.

        ``seed`` fixes weight initialisation (if not built yet) and the per-epoch shuffles
        (numpy Generator), so two runs give bit-identical losses and weights.
        ``validation_split`` holds out the last fraction of (x, y) before shuffling, as Keras.
        """
        self._require_compiled("fit")
        batch_size = self._check_batch_size("fit", batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")
        verbose = _check_verbose("fit", verbose)
        x = self._prepare_x("fit", x)
        labels = self._prepare_y("fit", y, x.shape[0])
        split = _v._check_real("fit", "validation_split", validation_split)
        if not 0.0 <= split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {split}")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val)")
            x_val = self._prepare_x("fit", validation_data[0])
            y_val = self._prepare_y("fit", validation_data[1], x_val.shape[0])
        elif split > 0:
            n_val = int(x.shape[0] * split)
            if n_val == 0 or n_val == x.shape[0]:
                raise ValueError(f"fit: validation_split={split} leaves {n_val} validation "
                                 f"samples out of {x.shape[0]}")
            x, x_val = x[:-n_val], x[-n_val:]
            labels, y_val = labels[:-n_val], labels[-n_val:]
        else:
            x_val = y_val = None
        n = x.shape[0]
        if n == 0:
            raise ValueError("fit: x has no samples")
        init_seq, shuffle_seq = np.random.SeedSequence(seed).spawn(2)
        if not self.built:
            self.build(x.shape[1], rng=np.random.default_rng(init_seq))
        self._params, self._grads = self.weights, self.gradients
        rng = np.random.default_rng(shuffle_seq)
        order = np.arange(n, dtype=np.intp)
        steps = -(-n // batch_size)
        history = History()
        history.params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        for epoch in range(epochs):
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            bar = Progbar(steps, verbose=verbose)
            if shuffle:
                rng.shuffle(order)
            loss_sum = 0.0
            correct_sum = 0
            for step in range(steps):
                start = step * batch_size
                stop = min(start + batch_size, n)
                loss, correct = self._fit_batch(x, labels, order if shuffle else None,
                                                start, stop)
                loss_sum += loss * (stop - start)
                correct_sum += correct
                if verbose:
                    bar.update(step + 1, self._log_values(loss_sum, correct_sum, stop),
                               finalize=False)
            logs = dict(self._log_values(loss_sum, correct_sum, n))
            if x_val is not None:
                val = self._evaluate_arrays(x_val, y_val, batch_size)
                logs.update(("val_" + k, v) for k, v in self._log_values(*val))
            if verbose:
                bar.update(steps, list(logs.items()), finalize=True)
            history.append(epoch, logs)
        self.history = history
        return history

    def _log_values(self, loss_sum, correct_sum, count):
        values = [("loss", loss_sum / count)]
        values += [(m.name, correct_sum / count) for m in self.metrics]
        return values

    def _evaluate_arrays(self, x, labels, batch_size):
        """(loss_sum, correct_sum, n) over contiguous batches; no gradient."""
        fuse = self._fuses_softmax()
        n = x.shape[0]
        loss_sum, correct_sum = 0.0, 0
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            ws = self._workspace(stop - start)
            out = self._forward(x[start:stop], ws, logits_only=fuse)
            loss, correct = self.loss.compute(out, labels[start:stop], row_loss=ws.row_loss,
                                              logits=fuse or self.loss.from_logits)
            loss_sum += loss * (stop - start)
            correct_sum += correct
        return loss_sum, correct_sum, n

    def evaluate(self, x, y, batch_size=32, verbose=1):
        """Mean loss and metrics on (x, y): ``[loss, accuracy]`` (just loss without metrics)."""
        self._require_compiled("evaluate")
        batch_size = self._check_batch_size("evaluate", batch_size)
        verbose = _check_verbose("evaluate", verbose)
        x = self._prepare_x("evaluate", x)
        labels = self._prepare_y("evaluate", y, x.shape[0])
        if not self.built:
            raise ValueError("evaluate: the model has not been built (fit it first)")
        if x.shape[0] == 0:
            raise ValueError("evaluate: x has no samples")
        steps = -(-x.shape[0] // batch_size)
        bar = Progbar(steps, verbose=verbose)
        loss_sum, correct_sum, n = self._evaluate_arrays(x, labels, batch_size)
        values = self._log_values(loss_sum, correct_sum, n)
        bar.update(steps, values, finalize=True)
        result = [v for _, v in values]
        return result if self.metrics else result[0]

    def predict(self, x, batch_size=32, verbose=0):
        """Model outputs for x, batch by batch (softmax probabilities for the book model)."""
        batch_size = self._check_batch_size("predict", batch_size)
        x = self._prepare_x("predict", x)
        if not self.built:
            raise ValueError("predict: the model has not been built (fit it first, or call "
                             "build((None, features)))")
        n = x.shape[0]
        steps = -(-n // batch_size)
        bar = Progbar(steps, verbose=_check_verbose("predict", verbose))
        out = np.empty((n, self.layers[-1].units), dtype=self.dtype)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            self._forward(x[start:stop], self._workspace(stop - start), last_out=out[start:stop])
        bar.update(steps, [], finalize=True)
        return out

    __call__ = predict

    # -- persistence ----------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "input_dim": self.input_dim,
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers]}

    def _weight_arrays(self):
        arrays = {}
        for i, layer in enumerate(self.layers):
            for wname, w in zip(layer.weight_names(), layer.weights):
                arrays[f"weights/{i}/{wname}"] = w
        return arrays

    def save_weights(self, filepath):
        """Write the weights (and the architecture, to check on load) to an .npz, atomically."""
        if not self.built:
            raise ValueError("save_weights: the model has not been built yet")
        _atomic_savez(filepath, {"format": np.array(FORMAT),
                                 "config": np.array(json.dumps(self.get_config())),
                                 **self._weight_arrays()})

    def load_weights(self, filepath):
        """Load weights saved by save_weights/save; the architecture must match."""
        arrays = _read_npz("load_weights", filepath)
        config = _parse_config("load_weights", filepath, arrays)
        if not self.built and config.get("input_dim") is not None:
            self.build(config["input_dim"])
        self._assign_weights("load_weights", filepath, arrays, config)

    def _assign_weights(self, op, filepath, arrays, config):
        saved = config["layers"]
        if len(saved) != len(self.layers):
            raise ValueError(f"{op}: {filepath!r} holds {len(saved)} layers, the model has "
                             f"{len(self.layers)}")
        updates = []
        for i, layer in enumerate(self.layers):
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

    def save(self, filepath):
        """Write architecture + weights + compile config + optimizer state to one .npz,
        atomically (temp file + os.replace). Load with ``pyblasnn.models.load_model``."""
        if not self.built:
            raise ValueError("save: the model has not been built yet")
        config = self.get_config()
        arrays = {"format": np.array(FORMAT), **self._weight_arrays()}
        if self.compiled:
            state = self.optimizer.get_state()
            config["compile"] = {
                "optimizer": {"class_name": type(self.optimizer).__name__,
                              "config": self.optimizer.get_config()},
                "optimizer_iterations": state.pop("iterations"),
                "optimizer_slots": sorted(state),
                "loss": {"name": self.loss.name, "config": self.loss.get_config()},
                "metrics": [m.name for m in self.metrics]}
            for slot, slot_arrays in state.items():
                for i, a in enumerate(slot_arrays):
                    arrays[f"optimizer/{slot}/{i}"] = a
        arrays["config"] = np.array(json.dumps(config))
        _atomic_savez(filepath, arrays)


def _check_verbose(op, verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, float):
        raise ValueError(f"{op}: verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _atomic_savez(filepath, arrays):
    atomic_write(os.fspath(filepath), lambda f: np.savez(f, **arrays))


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
        layers = config["layers"]
        for entry in layers:
            if entry["class_name"] != "Dense":
                raise ValueError(f"unknown layer class {entry['class_name']!r}")
            entry["config"]["units"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{op}: {filepath!r} has a corrupt model config: {exc}") from None
    return config


def load_model(filepath, compile=True):
    """Rebuild a model written by ``Sequential.save``: layers, weights, and (if it was
    compiled) optimizer, loss, metrics and optimizer state, so training can resume."""
    arrays = _read_npz("load_model", filepath)
    config = _parse_config("load_model", filepath, arrays)
    try:
        model = Sequential([_layers.Dense(**entry["config"]) for entry in config["layers"]],
                           name=config.get("name"))
        if config.get("input_dim") is None:
            raise ValueError("no input_dim")
        model.build(config["input_dim"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"load_model: {filepath!r} has an invalid model config: {exc}") \
            from None
    model._assign_weights("load_model", filepath, arrays, config)
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
