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

Threads. ``predict`` and ``evaluate`` may run on one model from several threads at once: each
thread gets its own inference workspaces (created on its first call for a batch size, freed
with the thread), and the weights are only read. ``fit`` and ``train_on_batch`` update the
model, so one model trains in one thread at a time: a second ``fit`` / ``train_on_batch``
while one runs (in another thread, or from a callback of the running one) raises
RuntimeError at once rather than interleaving updates; train copies of the model
(``copy.deepcopy(model)``) to train in parallel. Different models are independent and may be
trained in different threads. ``predict`` / ``evaluate`` during another thread's ``fit`` do
run, on weights that change under them (possibly mid-step): synchronise yourself if that
matters. Changing the model (``add``, ``build``, ``compile``, ``set_weights``,
``load_weights``) while another thread uses it is not supported.

Interrupts. Ctrl-C (SIGINT) in ``fit`` or ``train_on_batch`` lands on a step boundary: while a
step's optimizer update runs, SIGINT is held back and raised as KeyboardInterrupt once the
update is complete (main thread only; ``pyblasnn._interrupts``). After the interrupt every
parameter and optimizer slot holds the state of the same completed step
(``optimizer.iterations`` counts them), ``model.history`` holds the epochs completed before
it, and calling ``fit`` again continues from there.

Non-finite losses. The loss of every step is a float already, so ``fit`` checks it for free:
a nan or inf loss stops training with ``NonFiniteLossError`` (a FloatingPointError) naming the
epoch and step, before that step's update, so the weights are those the last finite-loss step
left. ``fit(..., stop_on_nan=False)`` trains on regardless (Keras' behaviour); add
``callbacks.TerminateOnNaN()`` to end such a run quietly at the first non-finite loss instead.
"""
import contextlib
import math
import threading

import numpy as np

from . import _validation as _v
from . import losses as _losses
from . import metrics as _metrics
from . import ops
from . import optimizers as _optimizers
from ._interrupts import SigintDeferral
from .callbacks import CallbackList, History, ProgbarLogger

__all__ = ["Trainer", "NonFiniteLossError"]

_NO_DEFERRAL = contextlib.nullcontext()


class NonFiniteLossError(FloatingPointError):
    """``fit`` stopped on a nan or inf loss; ``epoch`` and ``step`` (1-based) say where,
    ``loss`` is the value. The update of that step was not applied."""

    def __init__(self, message, epoch=None, step=None, loss=None):
        super().__init__(message)
        self.epoch, self.step, self.loss = epoch, step, loss


class _Workspace:
    """Every array one step needs for one batch size, allocated once."""

    def __init__(self, model, batch, training=True):
        dt = model.dtype
        self.batch = batch
        self.acts = [np.empty((batch, *s), dtype=dt) for s in model._output_shapes]
        self.row_loss = np.empty(batch, dtype=np.float64)
        self.outs = [None] * len(self.acts)             # what each layer returned this step
        if training:
            self.x = np.empty((batch, *model.input_shape), dtype=dt)
            self.x_rows = self.x.reshape(batch, -1)    # the same memory, one row per sample
            self.labels = np.empty(batch, dtype=np.intp)
            self.grads = [np.empty((batch, *s), dtype=dt) for s in model._output_shapes]
        else:                                           # predict / evaluate: no gradients
            self.x = self.x_rows = self.labels = None
            self.grads = []

    def arrays(self):
        return [a for a in (self.x, self.labels, self.row_loss, *self.acts, *self.grads)
                if a is not None]


def _distributed_world(op):
    """The MPI world for ``distributed=True`` (pyblasnn.distributed, joined if need be)."""
    try:
        from .distributed import world
        return world()
    except ImportError as exc:
        raise ImportError(f"{op}(distributed=True): {exc}") from exc


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
    _factored_first = False

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
        # the first layer's kernel gradient goes to the optimizer as a product (_train_step)
        self._factored_first = bool(steps) and hasattr(steps[0], "backward_factored")

    def _layers_changed(self):
        self._reset_workspaces()
        if self.compiled:
            self._plan_steps()

    # -- per-model runtime state: workspaces, the training lock ----------------------------
    def _init_runtime(self):
        """The training lock and empty workspaces (called by the model's __init__)."""
        self._train_lock = threading.Lock()
        self._training_thread = None
        self._reset_workspaces()

    def _reset_workspaces(self):
        """Forget every workspace (the shapes changed): the training set and every thread's
        inference set (a fresh thread-local; threads mid-call keep the arrays they hold)."""
        self._workspaces = {}
        self._inference = threading.local()

    def __getstate__(self):
        state = dict(self.__dict__)
        for key in ("_train_lock", "_training_thread", "_workspaces", "_inference"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_runtime()

    def _begin_training(self, op, deferral):
        """Take the model's training lock (never waits: a model trains in one thread) with
        SIGINT handed to ``deferral`` and held; returns True. The caller's ``finally`` must
        call ``_end_training`` (see ``pyblasnn._interrupts``: a Ctrl-C between taking the
        lock and that ``try`` would leave the model locked for good)."""
        deferral.install()
        if not self._train_lock.acquire(blocking=False):
            where = ("in this thread (a callback of the running fit?)"
                     if self._training_thread == threading.get_ident() else "in another thread")
            raise RuntimeError(f"{op}: this model is already being trained {where}; one model "
                               f"trains in one thread at a time (fit / train_on_batch). To "
                               f"train in parallel, train a copy per thread "
                               f"(copy.deepcopy(model)); predict / evaluate may run from "
                               f"several threads")
        self._training_thread = threading.get_ident()
        return True

    def _end_training(self, deferral, locked):
        """Undo ``_begin_training`` (``locked``: it took the lock); SIGINT must be held
        (``deferral.depth`` incremented inline first). A SIGINT held meanwhile is raised
        once the handler is back."""
        if locked:
            self._training_thread = None
            self._train_lock.release()
        deferral.uninstall()

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
        """The training workspace for this batch size (used under the training lock)."""
        ws = self._workspaces.get(batch)
        if ws is None:
            ws = self._workspaces[batch] = _Workspace(self, batch)
        return ws

    def _inference_workspace(self, batch):
        """This thread's predict / evaluate workspace for this batch size."""
        local = self._inference
        cache = getattr(local, "workspaces", None)
        if cache is None:
            cache = local.workspaces = {}
        ws = cache.get(batch)
        if ws is None:
            ws = cache[batch] = _Workspace(self, batch, training=False)
        return ws

    # -- one step -------------------------------------------------------------------------
    def _forward(self, x, ws, training):
        """Run the planned steps on x; every output lands in ws.outs. Returns the last."""
        a = x
        outs, acts = ws.outs, ws.acts
        for i, step in enumerate(self._steps):
            a = outs[i] = step.forward(a, acts[i], training)
        return a

    def _train_step(self, x, labels, ws, deferral=_NO_DEFERRAL, stop_on_nan=False,
                    factored=False):
        """Forward, (fused) loss + its gradient, backward, optimizer update. (loss, correct).

        The update runs inside ``deferral`` (a SIGINT then waits for its end). With
        ``stop_on_nan`` a nan / inf loss returns before the backward pass: nothing updated.
        ``factored`` (fit, when compile planned it): the first layer hands its kernel
        gradient over as a product (``backward_factored``: x.T @ dh), that layer's backward
        runs inside the deferral too and the optimizer takes the product itself: SGD then
        updates the kernel from each tile of the zero-skipping product (MNIST's x.T @ dh)
        without storing the gradient, with the same bits as the unfused step. (That
        gradient buffer is then left unwritten; train_on_batch always writes it.)
        """
        factored = factored and self._factored_first
        loss, correct, g = self._backprop(x, labels, ws, stop_on_nan, first=not factored)
        if g is not None:
            with deferral:
                product = None
                if factored:
                    kernel, a, b = self._steps[0].backward_factored(g, x, ws.outs[0])
                    product = (self._param_index[id(kernel)], a, b)
                self.optimizer.apply(self._params, self._grads, product)
        return loss, correct

    def _backprop(self, x, labels, ws, stop_on_nan=False, first=True):
        """Forward, loss, backward into the gradient buffers: (loss, correct, g); g is None
        when ``stop_on_nan`` stopped before the backward pass (nan / inf loss), else the
        gradient the first step's backward takes. ``first=False``: stop before that
        backward (the caller runs it)."""
        out = self._forward(x, ws, True)
        grads, outs, steps = ws.grads, ws.outs, self._steps
        loss, correct = self.loss.compute(out, labels, grad_out=grads[-1], row_loss=ws.row_loss,
                                          logits=self._loss_on_logits)
        if stop_on_nan and not math.isfinite(loss):
            return loss, correct, None
        g = grads[-1]
        for i in range(len(steps) - 1, 0, -1):
            g = steps[i].backward(g, outs[i - 1], outs[i], grads[i - 1])
        if first:
            steps[0].backward(g, x, outs[0], None)
        return loss, correct, g

    def _gather(self, x, labels, order, start, stop, x_rows=None):
        """(x, labels, workspace) of samples order[start:stop] (start:stop when order is None).

        Shuffled rows are gathered into the workspace (ops.take_rows, np.take with out=), so
        nothing is allocated once the workspace for this batch size exists. ``x_rows`` is x
        viewed as (samples, features) (x itself when x is 2-D).
        """
        ws = self._workspace(stop - start)
        if order is None:
            return x[start:stop], labels[start:stop], ws
        idx = order[start:stop]
        ops.take_rows(x if x_rows is None else x_rows, idx, out=ws.x_rows)
        return ws.x, np.take(labels, idx, out=ws.labels, mode="clip"), ws

    def _fit_batch(self, x, labels, order, start, stop, x_rows=None, deferral=_NO_DEFERRAL,
                   stop_on_nan=False):
        """One step of fit on samples order[start:stop] (or start:stop when order is None)."""
        xb, yb, ws = self._gather(x, labels, order, start, stop, x_rows)
        return self._train_step(xb, yb, ws, deferral, stop_on_nan, factored=True)

    def _fit_shard(self, reducer, x, labels, order, start, stop, x_rows=None,
                   deferral=_NO_DEFERRAL, stop_on_nan=False):
        """One data-parallel step (``pyblasnn.distributed``): this rank's share of samples
        [start, stop), the gradients summed over the ranks, the same update on every rank.
        (loss, correct) of the whole global batch, the same on every rank."""
        lo, hi = reducer.world.share(start, stop)
        loss, correct, grads = 0.0, 0, None
        if hi > lo:
            xb, yb, ws = self._gather(x, labels, order, lo, hi, x_rows)
            loss, correct, g = self._backprop(xb, yb, ws, stop_on_nan)
            grads = self._grads if g is not None else None
        summed, loss, correct = reducer.reduce(grads, loss, correct, hi - lo, stop - start)
        if not (stop_on_nan and not math.isfinite(loss)):
            with deferral:
                self.optimizer.apply(self._params, summed)
        return loss, correct

    def _start_training(self, x, rng=None):
        if not self.built:
            self.build((None, *x.shape[1:]), rng=rng)
        self._params, self._grads = self.weights, self.gradients
        self._param_index = {id(p): i for i, p in enumerate(self._params)}

    def train_on_batch(self, x, y, return_dict=False):
        """One optimizer step on (x, y); returns [loss, accuracy...] like Keras.

        A Ctrl-C lands before or after the whole update, never inside it. The loss is not
        checked for nan (the caller holds it).
        """
        self._require_compiled("train_on_batch")
        x = self._prepare_x("train_on_batch", x)
        labels = self._prepare_y("train_on_batch", y, x.shape[0], x)
        if x.shape[0] == 0:
            raise ValueError("train_on_batch: x has no samples")
        deferral, locked = SigintDeferral(held=True), False
        try:                                # SIGINT held until release (pyblasnn._interrupts)
            locked = self._begin_training("train_on_batch", deferral)
            deferral.release()
            self._start_training(x)
            loss, correct = self._train_step(x, labels, self._workspace(x.shape[0]), deferral)
        finally:
            deferral.depth += 1             # inline: no call may run a handler before it
            self._end_training(deferral, locked)
        return self._results(self._log_values(loss, correct, x.shape[0], scaled=False),
                             return_dict)

    def _results(self, values, return_dict):
        if return_dict:
            return dict(values)
        result = [v for _, v in values]
        return result if self.metrics else result[0]

    # -- fit / evaluate / predict ---------------------------------------------------------
    def fit(self, x, y, batch_size=32, epochs=1, verbose=1, validation_split=0.0,
            validation_data=None, shuffle=True, seed=None, callbacks=None, stop_on_nan=True,
            distributed=False, initial_epoch=0):
        """Train for ``epochs`` passes over (x, y) in minibatches; returns a ``History``.

        ``seed`` fixes weight initialisation (if not built yet), dropout masks and the
        per-epoch shuffles (numpy Generator), so two runs give bit-identical losses and
        weights. ``validation_split`` holds out the last fraction of (x, y) before shuffling,
        as Keras. ``callbacks``: more ``pyblasnn.callbacks.Callback`` objects; one may set
        ``model.stop_training = True`` to end training after the current step.

        ``stop_on_nan`` (default True): a nan or inf training loss raises
        ``NonFiniteLossError`` (a FloatingPointError) naming the epoch and step; that step's
        update is not applied. False: train on whatever the loss (Keras' behaviour; add
        ``callbacks.TerminateOnNaN()`` to stop quietly instead).

        Ctrl-C (KeyboardInterrupt) lands between optimizer steps, never inside one; after it
        ``model.history`` holds the completed epochs and ``fit`` can be called again to go on.
        One model trains in one thread at a time: a concurrent ``fit`` raises RuntimeError.

        ``initial_epoch`` (Keras' meaning): resume a run at that epoch, training epochs
        initial_epoch .. epochs-1 with the shuffles the uninterrupted run would have drawn
        from ``seed``: a model saved after epoch k (weights and optimizer state), loaded and
        fitted with ``initial_epoch=k`` and the same seed ends where the full run ends.

        ``distributed=True``: data-parallel over the MPI job (``pyblasnn.distributed``; every
        rank calls fit with the same x, y and arguments): each rank takes its share of every
        global batch of ``batch_size``, the gradients are summed over the ranks, every rank
        applies the same update. Rank 0's weights (and, when ``seed`` is None, its seed) are
        broadcast first; progress prints on rank 0 only; the logs cover the whole batches.
        """
        self._require_compiled("fit")
        if not isinstance(distributed, (bool, np.bool_)):
            raise TypeError(f"fit: distributed must be a bool, got {distributed!r}")
        batch_size = _check_batch_size("fit", batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")
        if (isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer))
                or not 0 <= initial_epoch <= epochs):
            raise ValueError(f"fit: initial_epoch must be an int in [0, epochs={epochs}], got "
                             f"{initial_epoch!r}")
        verbose = _check_verbose("fit", verbose)
        if not isinstance(stop_on_nan, (bool, np.bool_)):
            raise TypeError(f"fit: stop_on_nan must be a bool, got {stop_on_nan!r}")
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
        if x.shape[0] == 0:
            raise ValueError("fit: x has no samples")
        world = _distributed_world("fit") if distributed else None
        if world is not None:
            if seed is None:
                seed = world.bcast(int(np.random.SeedSequence().generate_state(1)[0]))
            if not world.is_root:
                verbose = 0
        deferral, locked = SigintDeferral(held=True), False
        try:                                # SIGINT held until release (pyblasnn._interrupts)
            locked = self._begin_training("fit", deferral)
            deferral.release()
            return self._fit_loop(x, labels, x_val, y_val, batch_size, epochs, verbose,
                                  shuffle, seed, callbacks, bool(stop_on_nan), deferral,
                                  world, int(initial_epoch))
        finally:
            deferral.depth += 1             # inline: no call may run a handler before it
            self._end_training(deferral, locked)

    def _fit_loop(self, x, labels, x_val, y_val, batch_size, epochs, verbose, shuffle, seed,
                  callbacks, stop_on_nan, deferral, world=None, initial_epoch=0):
        n = x.shape[0]
        init_seq, shuffle_seq = np.random.SeedSequence(seed).spawn(2)
        self._start_training(x, rng=np.random.default_rng(init_seq))
        reducer = None
        if world is not None:
            from .distributed import GradientReducer
            for w in self._params:           # one starting point: rank 0's weights
                world.comm.Bcast(w, root=0)
            reducer = GradientReducer(world, self._grads)
        x_rows = x.reshape(n, -1)
        rng = np.random.default_rng(shuffle_seq)
        order = np.arange(n, dtype=np.intp)
        steps = -(-n // batch_size)
        history = self.history = History()
        params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        history.set_model(self)
        history.set_params(params)
        cbs = ([ProgbarLogger(verbose)] if verbose else []) + list(callbacks or [])
        cbs = CallbackList(cbs, model=self, params=params)
        batch_logs = cbs.wants_batch_logs
        self.stop_training = False
        history.on_train_begin()
        cbs.on_train_begin()
        logs = {}
        if shuffle:                          # the shuffles of the epochs before initial_epoch
            for _ in range(initial_epoch):
                rng.shuffle(order)
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            if shuffle:
                rng.shuffle(order)
            loss_sum = 0.0
            correct_sum = 0
            stop = 0
            for step in range(steps):
                start = step * batch_size
                stop = min(start + batch_size, n)
                if reducer is None:
                    loss, correct = self._fit_batch(x, labels, order if shuffle else None,
                                                    start, stop, x_rows, deferral, stop_on_nan)
                else:
                    loss, correct = self._fit_shard(reducer, x, labels,
                                                    order if shuffle else None, start, stop,
                                                    x_rows, deferral, stop_on_nan)
                if stop_on_nan and not math.isfinite(loss):
                    raise self._non_finite_loss(loss, epoch, epochs, step, steps,
                                                x_rows, order if shuffle else None, start, stop)
                loss_sum += loss * (stop - start)
                correct_sum += correct
                if batch_logs:
                    cbs.on_train_batch_end(step, dict(self._log_values(loss_sum, correct_sum,
                                                                       stop)))
                    if self.stop_training:
                        break
            logs = dict(self._log_values(loss_sum, correct_sum, stop))
            if x_val is not None:
                val = self._evaluate_arrays(x_val, y_val, batch_size, world)
                logs.update(("val_" + k, v) for k, v in self._log_values(*val))
            with deferral:                  # the record of completed epochs is never torn
                history.on_epoch_end(epoch, logs)
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        history.on_train_end(logs)
        cbs.on_train_end(logs)
        return history

    def _non_finite_loss(self, loss, epoch, epochs, step, steps, x_rows, order, start, stop):
        """The error for a nan / inf loss at (epoch, step), 0-based; says what is known."""
        rows = x_rows[start:stop] if order is None else x_rows[order[start:stop]]
        bad_inputs = int(rows.size - np.count_nonzero(np.isfinite(rows)))
        bad_weights = sum(int(w.size - np.count_nonzero(np.isfinite(w))) for w in self.weights)
        if bad_inputs:
            cause = (f"this batch's inputs hold {bad_inputs} non-finite value"
                     f"{'s' if bad_inputs != 1 else ''} (nan/inf in x): clean the data")
        elif bad_weights:
            cause = (f"{bad_weights} weight{'s are' if bad_weights != 1 else ' is'} already "
                     f"non-finite (an earlier update overflowed): lower the learning rate")
        else:
            cause = "the inputs and weights are finite: lower the learning rate"
        done = self.optimizer.iterations
        return NonFiniteLossError(
            f"fit: loss is {loss} at epoch {epoch + 1}/{epochs}, step {step + 1}/{steps}; "
            f"training stopped before that step's update, so the weights are those of the "
            f"last completed step ({done} optimizer steps in all); {cause}. Pass "
            f"stop_on_nan=False to train on regardless.",
            epoch=epoch + 1, step=step + 1, loss=loss)

    def _log_values(self, loss_sum, correct_sum, count, scaled=True):
        """[("loss", mean), (metric, mean), ...]; ``scaled``: loss_sum is a sum over samples."""
        values = [("loss", loss_sum / count if scaled else loss_sum)]
        values += [(m.name, correct_sum / count if count else 0.0) for m in self.metrics]
        return values

    def _evaluate_arrays(self, x, labels, batch_size, world=None):
        """(loss_sum, correct_sum, n) over contiguous batches; no gradient. With a ``world``
        each rank scores its contiguous share of x and the sums cover every rank's."""
        n = x.shape[0]
        lo, hi = (0, n) if world is None else world.share(0, n)
        loss_sum, correct_sum = 0.0, 0
        for start in range(lo, hi, batch_size):
            stop = min(start + batch_size, hi)
            ws = self._inference_workspace(stop - start)
            out = self._forward(x[start:stop], ws, False)
            loss, correct = self.loss.compute(out, labels[start:stop], row_loss=ws.row_loss,
                                              logits=self._loss_on_logits)
            loss_sum += loss * (stop - start)
            correct_sum += correct
        if world is not None:
            loss_sum, correct_sum = world.sum_values([loss_sum, correct_sum])
        return loss_sum, int(correct_sum), n

    def evaluate(self, x, y, batch_size=32, verbose=1, return_dict=False, callbacks=None,
                 distributed=False):
        """Mean loss and metrics on (x, y): ``[loss, accuracy]`` (just loss without metrics);
        ``return_dict=True``: ``{"loss": ..., "accuracy": ...}``.

        Thread-safe: several threads may evaluate (and predict with) one model at once, each
        on its own workspaces; the result is the one a single thread gets, bit for bit.
        ``distributed=True``: each MPI rank scores its share of (x, y) and every rank gets
        the totals (progress on rank 0 only).
        """
        self._require_compiled("evaluate")
        if not isinstance(distributed, (bool, np.bool_)):
            raise TypeError(f"evaluate: distributed must be a bool, got {distributed!r}")
        batch_size = _check_batch_size("evaluate", batch_size)
        verbose = _check_verbose("evaluate", verbose)
        x = self._prepare_x("evaluate", x)
        labels = self._prepare_y("evaluate", y, x.shape[0], x)
        if not self.built:
            raise ValueError("evaluate: the model has not been built (fit it first)")
        if x.shape[0] == 0:
            raise ValueError("evaluate: x has no samples")
        world = _distributed_world("evaluate") if distributed else None
        if world is not None and not world.is_root:
            verbose = 0
        steps = -(-x.shape[0] // batch_size)
        cbs = CallbackList(([ProgbarLogger(verbose)] if verbose else []) + list(callbacks or []),
                           model=self, params={"verbose": verbose, "steps": steps})
        cbs.on_test_begin()
        values = self._log_values(*self._evaluate_arrays(x, labels, batch_size, world))
        cbs.on_test_end(dict(values))
        return self._results(values, return_dict)

    def predict(self, x, batch_size=32, verbose=0, callbacks=None):
        """Model outputs for x, batch by batch (softmax probabilities for the book model).

        Thread-safe: several threads may predict with (and evaluate) one model at once, each
        on its own workspaces; the result is the one a single thread gets, bit for bit.
        """
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
            acts = self._inference_workspace(stop - start).acts
            a, rows = x[start:stop], out[start:stop]
            for i, layer in enumerate(self.layers):
                a = layer.forward(a, rows if i == last else acts[i], False)
            if a is not rows:                   # a layer that returned a view
                rows[...] = a
        cbs.on_predict_end()
        return out

    __call__ = predict
