"""Keras-style callbacks: the training loop emits events, callbacks react.

Events (Keras' names): ``on_train_begin/end(logs)``, ``on_epoch_begin(epoch)``,
``on_epoch_end(epoch, logs)``, ``on_train_batch_end(batch, logs)`` (running means so far),
``on_test_begin/end(logs)``, ``on_predict_begin/end()``. ``History`` records each epoch's
logs; ``ProgbarLogger`` prints the progress bar (``pyblasnn.progress.Progbar``);
``TerminateOnNaN`` ends training quietly at the first nan / inf loss; ``ModelCheckpoint``
saves the model after every epoch (a run restarts from it with ``fit(initial_epoch=...)``). A
callback ends ``fit``
after the current step by setting ``self.model.stop_training = True`` (Keras' protocol).
"""
import math
import os

from .progress import Progbar

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "TerminateOnNaN",
           "ModelCheckpoint"]


class Callback:
    """Base class: every event is a no-op; ``self.model`` and ``self.params`` are set by fit."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass


class CallbackList:
    """Dispatches each event to every callback, in order.

    ``wants_batch_logs`` is False when no callback overrides ``on_train_batch_end``: the loop
    then builds no per-step logs at all (the silent fit costs nothing per step).
    """

    def __init__(self, callbacks, model=None, params=None):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if model is not None:
                cb.set_model(model)
            if params is not None:
                cb.set_params(params)
        self._batch_end = [cb for cb in self.callbacks
                           if type(cb).on_train_batch_end is not Callback.on_train_batch_end]
        self.wants_batch_logs = bool(self._batch_end)

    def _each(self, event, *args):
        for cb in self.callbacks:
            getattr(cb, event)(*args)

    def on_train_begin(self, logs=None):
        self._each("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._each("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._each("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._each("on_epoch_end", epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        for cb in self._batch_end:
            cb.on_train_batch_end(batch, logs)

    def on_test_begin(self, logs=None):
        self._each("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._each("on_test_end", logs)

    def on_predict_begin(self, logs=None):
        self._each("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._each("on_predict_end", logs)


class History(Callback):
    """Per-epoch results of ``fit``: ``history.history["loss"]``, ``["accuracy"]``, ...

    ``fit`` makes one and sets it as ``model.history`` when training begins, so after a
    Ctrl-C it still holds every epoch completed before the interrupt.
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"

    def on_train_begin(self, logs=None):
        self.history, self.epoch = {}, []

    def on_epoch_end(self, epoch, logs=None):
        self.append(epoch, logs or {})

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)


class ProgbarLogger(Callback):
    """Keras' progress output: ``Epoch 1/5`` then ``469/469 [=====] - 1s 2ms/step - loss: ...``.

    ``verbose`` 1: a bar (redrawn in place on a terminal), 2: one line per epoch. Used by fit
    (``params["epochs"]`` and ``["steps"]``), evaluate and predict (``params["steps"]``).
    """

    def __init__(self, verbose=1):
        super().__init__()
        self.verbose = verbose
        self._bar = None

    def _new_bar(self):
        self._bar = Progbar(self.params.get("steps", 0), verbose=self.verbose)

    def on_epoch_begin(self, epoch, logs=None):
        print(f"Epoch {epoch + 1}/{self.params.get('epochs', 1)}", flush=True)
        self._new_bar()

    def on_train_batch_end(self, batch, logs=None):
        self._bar.update(batch + 1, list((logs or {}).items()), finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        self._bar.update(self.params.get("steps", 0), list((logs or {}).items()), finalize=True)

    def on_test_begin(self, logs=None):
        self._new_bar()

    def on_test_end(self, logs=None):
        self._bar.update(self.params.get("steps", 0), list((logs or {}).items()), finalize=True)

    on_predict_begin = on_test_begin

    def on_predict_end(self, logs=None):
        self._bar.update(self.params.get("steps", 0), [], finalize=True)


class TerminateOnNaN(Callback):
    """Keras' ``TerminateOnNaN``: stop training, without an error, after the first step whose
    running loss is nan or inf.

    ``fit`` already stops with ``NonFiniteLossError`` by default (``stop_on_nan=True``),
    before that step's update; this callback is for ``fit(..., stop_on_nan=False)``, where it
    lets the step finish (its update is applied, as in Keras), prints one line and sets
    ``model.stop_training``; the epoch's logs are then those of the steps run.
    """

    def __init__(self):
        super().__init__()
        self.stopped_at = None              # (epoch, batch), 0-based, once it stopped fit
        self._epoch = 0

    def __repr__(self):
        return f"TerminateOnNaN(stopped_at={self.stopped_at})"

    def on_train_begin(self, logs=None):
        self.stopped_at = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training", flush=True)
            self.stopped_at = (self._epoch, batch)
            self.model.stop_training = True


class ModelCheckpoint(Callback):
    """Save the model (architecture, weights, optimizer state; ``save_weights_only``: the
    weights) to ``filepath`` after every epoch, atomically: the file always holds a complete
    epoch. ``filepath`` may hold ``{epoch}`` (1-based), e.g. ``"ckpt-{epoch:02d}.npz"``.
    In a data-parallel job rank 0 writes (``pyblasnn.distributed``)."""

    def __init__(self, filepath, save_weights_only=False):
        super().__init__()
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"ModelCheckpoint: filepath must be a path, got {filepath!r}")
        self.filepath = os.fspath(filepath)
        self.save_weights_only = bool(save_weights_only)
        self.filepath.format(epoch=1)      # a bad template fails here, not after an epoch

    def __repr__(self):
        return f"ModelCheckpoint({self.filepath!r})"

    def on_epoch_end(self, epoch, logs=None):
        path = self.filepath.format(epoch=epoch + 1)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
