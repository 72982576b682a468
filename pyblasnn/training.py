"""The training loop of the Keras-style models: compile, fit, evaluate, predict, train_on_batch.

``Trainer`` is mixed into ``Sequential`` (``pyblasnn.models``); it needs only the model's
``layers`` (each honouring the layer contract of ``pyblasnn.layers``), ``input_shape``,
``build`` and ``weights`` / ``gradients``, and never names a layer class.

Fusion is decided once, at ``compile``: when the loss can take the logits of the last layer's
activation (softmax into sparse categorical cross-entropy), the training and evaluation passes
run that layer's ``split_activation()`` part and the fused loss kernel writes
dlogits = (p - onehot) / n straight into the workspace; ``predict`` runs the layers as they are.

Training runs on preallocated workspaces (one set per batch size: the gathered batch, every
layer's output and gradient, labels, per-row losses), so once warmed up a step allocates no
arrays: the batch is gathered with ``ops.take_rows`` into the workspace, each layer writes into
its slot, the backward pass writes into the layers' gradient buffers and the optimizer updates
in place. The loop reports through callbacks (``pyblasnn.callbacks``); it prints nothing itself.
"""
import numpy as np

from . import _validation as _v
from . import losses as _losses
from . import metrics as _metrics
from . import ops
from . import optimizers as _optimizers
from .callbacks import CallbackList, History, ProgbarLogger

__all__ = ["Trainer"]


class _Workspace:
    """Every array one step needs for one batch size, allocated once."""

    def __init__(self, model, batch):
        dt = model.dtype
        self.batch = batch
        self.x = np.empty((batch, *model.input_shape), dtype=dt)
        self.x_rows = self.x.reshape(batch, -1)        # the same memory, one row per sample
        self.labels = np.empty(batch, dtype=np.intp)
        self.acts = [np.empty((batch, *s), dtype=dt) for s in model._output_shapes]
        self.grads = [np.empty((batch, *s), dtype=dt) for s in model._output_shapes]
        self.row_loss = np.empty(batch, dtype=np.float64)
        self.outs = [None] * len(self.acts)             # what each layer returned this step

    def arrays(self):
        return [self.x, self.labels, self.row_loss, *self.acts, *self.grads]


def _check_verbose(op, verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, float):
        raise ValueError(f"{op}: verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _check_batch_size(op, batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"{op}: batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


class Trainer:
    """compile / fit / evaluate / predict / train_on_batch for a model made of layers."""

    optimizer = loss = None
    metrics = ()
    compiled = False

    # -- compile: the one place fusion is decided -------------------------------------------
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
        self._plan_steps()

    def _plan_steps(self):
        """The layers the training / evaluation passes run, and whether the loss gets logits."""
        steps = list(self.layers)
        on_logits = bool(getattr(self.loss, "from_logits", False))
        if steps and self.loss is not None:
            pre, activation = steps[-1].split_activation()
            if activation is not None and self.loss.fuses(activation):
                steps[-1] = pre
                on_logits = True
        self._steps, self._loss_on_logits = steps, on_logits

    def _layers_changed(self):
        self._workspaces = {}
        if self.compiled:
            self._plan_steps()

    def _require_compiled(self, op):
        if not self.compiled:
            raise RuntimeError(f"{op}: the model must be compiled before {op}(); call "
                               f"model.compile(optimizer, loss, metrics) first")

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
        if x.ndim < 2:
            raise ValueError(f"{op}: x must have a samples axis and at least one feature axis, "
                             f"got shape {x.shape}")
        expected = self._known_input_shape()
        if expected is not None and tuple(x.shape[1:]) != expected:
            what = (f"{expected[0]} features per sample" if len(expected) == 1
                    else f"samples of shape {expected}")
            raise ValueError(f"{op}: the model expects {what}, got x with shape {x.shape}")
        try:
            self._infer_shapes(tuple(x.shape[1:]))
        except ValueError as exc:
            raise ValueError(f"{op}: x has shape {x.shape}: {exc}") from None
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _prepare_y(self, op, y, n, x):
        classes = self._infer_shapes(tuple(x.shape[1:]))[-1]
        return _v.as_sparse_labels(op, y, n, classes[-1] if len(classes) == 1 else None)

    def _workspace(self, batch):
        ws = self._workspaces.get(batch)
        if ws is None:
            ws = self._workspaces[batch] = _Workspace(self, batch)
        return ws

    # -- one step -------------------------------------------------------------------------
    def _forward(self, x, ws, training):
        """Run the planned steps on x; every output lands in ws.outs. Returns the last."""
        a = x
        outs, acts = ws.outs, ws.acts
        for i, step in enumerate(self._steps):
            a = outs[i] = step.forward(a, acts[i], training)
        return a

    def _train_step(self, x, labels, ws):
        """Forward, (fused) loss + its gradient, backward, optimizer update. (loss, correct)."""
        out = self._forward(x, ws, True)
        grads, outs, steps = ws.grads, ws.outs, self._steps
        loss, correct = self.loss.compute(out, labels, grad_out=grads[-1], row_loss=ws.row_loss,
                                          logits=self._loss_on_logits)
        g = grads[-1]
        for i in range(len(steps) - 1, 0, -1):
            g = steps[i].backward(g, outs[i - 1], outs[i], grads[i - 1])
        steps[0].backward(g, x, outs[0], None)
        self.optimizer.apply(self._params, self._grads)
        return loss, correct

    def _fit_batch(self, x, labels, order, start, stop, x_rows=None):
        """One step of fit on samples order[start:stop] (or start:stop when order is None).

        Shuffled rows are gathered into the workspace (ops.take_rows, np.take with out=), so
        nothing is allocated once the workspace for this batch size exists. ``x_rows`` is x
        viewed as (samples, features) (x itself when x is 2-D).
        """
        ws = self._workspace(stop - start)
        if order is not None:
            idx = order[start:stop]
            ops.take_rows(x if x_rows is None else x_rows, idx, out=ws.x_rows)
            xb = ws.x
            yb = np.take(labels, idx, out=ws.labels, mode="clip")
        else:
            xb, yb = x[start:stop], labels[start:stop]
        return self._train_step(xb, yb, ws)

    def _start_training(self, x, rng=None):
        if not self.built:
            self.build((None, *x.shape[1:]), rng=rng)
        self._params, self._grads = self.weights, self.gradients

    def train_on_batch(self, x, y, return_dict=False):
        """One optimizer step on (x, y); returns [loss, accuracy...] like Keras."""
        self._require_compiled("train_on_batch")
        x = self._prepare_x("train_on_batch", x)
        labels = self._prepare_y("train_on_batch", y, x.shape[0], x)
        self._start_training(x)
        if x.shape[0] == 0:
            raise ValueError("train_on_batch: x has no samples")
        loss, correct = self._train_step(x, labels, self._workspace(x.shape[0]))
        return self._results(self._log_values(loss, correct, x.shape[0], scaled=False),
                             return_dict)

    def _results(self, values, return_dict):
        if return_dict:
            return dict(values)
        result = [v for _, v in values]
        return result if self.metrics else result[0]

    # -- fit / evaluate / predict ---------------------------------------------------------
    def fit(self, x, y, batch_size=32, epochs=1, verbose=1, validation_split=0.0,
            validation_data=None, shuffle=True, seed=None, callbacks=None):
        """Train for ``epochs`` passes over (x, y) in minibatches; returns a ``History``.

        ``seed`` fixes weight initialisation (if not built yet), dropout masks and the
        per-epoch shuffles (numpy Generator), so two runs give bit-identical losses and
        weights. ``validation_split`` holds out the last fraction of (x, y) before shuffling,
        as Keras. ``callbacks``: more ``pyblasnn.callbacks.Callback`` objects.
        """
        self._require_compiled("fit")
        batch_size = _check_batch_size("fit", batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")
        verbose = _check_verbose("fit", verbose)
        x = self._prepare_x("fit", x)
        labels = self._prepare_y("fit", y, x.shape[0], x)
        split = _v._check_real("fit", "validation_split", validation_split)
        if not 0.0 <= split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {split}")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val)")
            x_val = self._prepare_x("fit", validation_data[0])
            y_val = self._prepare_y("fit", validation_data[1], x_val.shape[0], x_val)
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
        self._start_training(x, rng=np.random.default_rng(init_seq))
        x_rows = x.reshape(n, -1)
        rng = np.random.default_rng(shuffle_seq)
        order = np.arange(n, dtype=np.intp)
        steps = -(-n // batch_size)
        history = History()
        cbs = [history] + ([ProgbarLogger(verbose)] if verbose else []) + list(callbacks or [])
        cbs = CallbackList(cbs, model=self,
                           params={"verbose": verbose, "epochs": epochs, "steps": steps})
        batch_logs = cbs.wants_batch_logs
        cbs.on_train_begin()
        for epoch in range(epochs):
            cbs.on_epoch_begin(epoch)
            if shuffle:
                rng.shuffle(order)
            loss_sum = 0.0
            correct_sum = 0
            for step in range(steps):
                start = step * batch_size
                stop = min(start + batch_size, n)
                loss, correct = self._fit_batch(x, labels, order if shuffle else None,
                                                start, stop, x_rows)
                loss_sum += loss * (stop - start)
                correct_sum += correct
                if batch_logs:
                    cbs.on_train_batch_end(step, dict(self._log_values(loss_sum, correct_sum,
                                                                       stop)))
            logs = dict(self._log_values(loss_sum, correct_sum, n))
            if x_val is not None:
                val = self._evaluate_arrays(x_val, y_val, batch_size)
                logs.update(("val_" + k, v) for k, v in self._log_values(*val))
            cbs.on_epoch_end(epoch, logs)
        cbs.on_train_end(logs if epochs else {})
        self.history = history
        return history

    def _log_values(self, loss_sum, correct_sum, count, scaled=True):
        """[("loss", mean), (metric, mean), ...]; ``scaled``: loss_sum is a sum over samples."""
        values = [("loss", loss_sum / count if scaled else loss_sum)]
        values += [(m.name, correct_sum / count if count else 0.0) for m in self.metrics]
        return values

    def _evaluate_arrays(self, x, labels, batch_size):
        """(loss_sum, correct_sum, n) over contiguous batches; no gradient."""
        n = x.shape[0]
        loss_sum, correct_sum = 0.0, 0
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            ws = self._workspace(stop - start)
            out = self._forward(x[start:stop], ws, False)
            loss, correct = self.loss.compute(out, labels[start:stop], row_loss=ws.row_loss,
                                              logits=self._loss_on_logits)
            loss_sum += loss * (stop - start)
            correct_sum += correct
        return loss_sum, correct_sum, n

    def evaluate(self, x, y, batch_size=32, verbose=1, return_dict=False, callbacks=None):
        """Mean loss and metrics on (x, y): ``[loss, accuracy]`` (just loss without metrics);
        ``return_dict=True``: ``{"loss": ..., "accuracy": ...}``."""
        self._require_compiled("evaluate")
        batch_size = _check_batch_size("evaluate", batch_size)
        verbose = _check_verbose("evaluate", verbose)
        x = self._prepare_x("evaluate", x)
        labels = self._prepare_y("evaluate", y, x.shape[0], x)
        if not self.built:
            raise ValueError("evaluate: the model has not been built (fit it first)")
        if x.shape[0] == 0:
            raise ValueError("evaluate: x has no samples")
        steps = -(-x.shape[0] // batch_size)
        cbs = CallbackList(([ProgbarLogger(verbose)] if verbose else []) + list(callbacks or []),
                           model=self, params={"verbose": verbose, "steps": steps})
        cbs.on_test_begin()
        values = self._log_values(*self._evaluate_arrays(x, labels, batch_size))
        cbs.on_test_end(dict(values))
        return self._results(values, return_dict)

    def predict(self, x, batch_size=32, verbose=0, callbacks=None):
        """Model outputs for x, batch by batch (softmax probabilities for the book model)."""
        batch_size = _check_batch_size("predict", batch_size)
        verbose = _check_verbose("predict", verbose)
        x = self._prepare_x("predict", x)
        if not self.built:
            raise ValueError("predict: the model has not been built (fit it first, or call "
                             "build((None, features)))")
        n = x.shape[0]
        steps = -(-n // batch_size)
        cbs = CallbackList(([ProgbarLogger(verbose)] if verbose else []) + list(callbacks or []),
                           model=self, params={"verbose": verbose, "steps": steps})
        cbs.on_predict_begin()
        out = np.empty((n, *self._output_shapes[-1]), dtype=self.dtype)
        last = len(self.layers) - 1
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            acts = self._workspace(stop - start).acts
            a, rows = x[start:stop], out[start:stop]
            for i, layer in enumerate(self.layers):
                a = layer.forward(a, rows if i == last else acts[i], False)
            if a is not rows:                   # a layer that returned a view
                rows[...] = a
        cbs.on_predict_end()
        return out

    __call__ = predict
