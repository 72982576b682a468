"""End to end: seconds per MNIST epoch (784-512-10, batch 128, SGD momentum) and accuracy.

Trainers: pyblasnn's Sequential.fit (verbose=0), the plain NumPy trainer (numpy_mlp.py),
PyTorch CPU (torch_mlp.py) and JAX CPU (jax_mlp.py) when importable. All get the same thread
count, learning rate, momentum and batch size, and start from the same Glorot-uniform
weights (pyblasnn's through Sequential.set_weights), sent once to each.
Each trainer lives in a worker process of its own (workers.py), which loads MNIST, builds it
and warms it up on a slice of the data; then epochs are timed interleaved across the workers
(A B C A B C ...), and each trainer's test accuracy is measured after its last epoch.
"""
import time

import numpy as np

from . import discover
from .jax_mlp import JaxMLP
from .numpy_mlp import NumpyMLP, init_params
from .timing import set_blas_threads, summarize, time_calls
from .torch_mlp import TorchMLP
from .workers import JobError, WorkerFailed, reason, using

LEARNING_RATE = 0.1  # the main job's setting: reaches ~0.98 in 5 epochs
MOMENTUM = 0.9
BATCH_SIZE = 128

#: Per mode: training / test samples (None = all), timed epochs, warm-up samples, and a
#: budget in seconds: no new round of epochs starts once the timed ones took longer (a busy
#: machine can make one epoch take a minute; the full run must stay near 10 minutes).
EPOCH_SETTINGS = {
    "full": dict(train=None, test=None, epochs=5, warmup=2560, budget_s=150.0),
    "quick": dict(train=4096, test=1000, epochs=1, warmup=256, budget_s=30.0),
    "tiny": dict(train=512, test=256, epochs=1, warmup=128, budget_s=30.0),
}


def load_mnist(path=None):
    """(x_train, y_train, x_test, y_test) as float32 (n, 784) in [0, 1] and int labels."""
    load_data = discover.mnist_load_data()
    try:
        (x_train, y_train), (x_test, y_test) = load_data(path) if path else load_data()
    except Exception as exc:  # DatasetUnavailableError, network trouble, bad file...
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise discover.DataUnavailable(f"MNIST could not be loaded: {type(exc).__name__}: "
                                       + " ".join(lines[:6])[:500]) from None
    prep = lambda x: (x.reshape(x.shape[0], -1).astype(np.float32) / np.float32(255))
    return prep(x_train), np.asarray(y_train, np.intp), prep(x_test), np.asarray(y_test, np.intp)


class PyblasnnTrainer:
    """Adapter: pyblasnn's Keras-style model trained one epoch per call of epoch()."""

    name = "pyblasnn"

    def __init__(self, x_train, y_train, n_threads, batch_size=BATCH_SIZE,
                 learning_rate=LEARNING_RATE, momentum=MOMENTUM, params=None):
        Sequential, Dense, SGD = discover.frontend()
        import pyblasnn
        self.pyblasnn = pyblasnn
        self.n_threads = n_threads
        self.x, self.y = x_train, y_train
        self.batch_size = batch_size
        self.shuffle_rng = np.random.default_rng(0)   # seeded shuffles, as the other trainers
        self.model = Sequential([Dense(512, activation="relu"), Dense(10, activation="softmax")])
        self.model.compile(optimizer=SGD(learning_rate=learning_rate, momentum=momentum),
                           loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        self.same_init = False
        if params is not None and hasattr(self.model, "set_weights"):
            # start from the NumPy / PyTorch trainers' weights when the model allows it
            self.model.build((None, x_train.shape[1]))
            self.model.set_weights(params)
            self.same_init = True

    def _threads(self):
        if self.n_threads:
            self.pyblasnn.set_num_threads(self.n_threads)

    def epoch(self, x=None, y=None):
        self._threads()
        x = self.x if x is None else x
        y = self.y if y is None else y
        self.model.fit(x, y, epochs=1, batch_size=self.batch_size, verbose=0,
                       seed=int(self.shuffle_rng.integers(2**32)))

    def accuracy(self, x, y):
        self._threads()
        res = self.model.evaluate(x, y, batch_size=1000, verbose=0)
        if isinstance(res, (list, tuple)) and len(res) >= 2:
            return float(res[1])
        pred = np.asarray(self.model.predict(x, verbose=0))
        return float(np.mean(pred.argmax(axis=1) == y))


def load_split(settings, mnist_path=None):
    """MNIST cut to the mode's training / test sizes: (x_train, y_train, x_test, y_test)."""
    x_train, y_train, x_test, y_test = load_mnist(mnist_path)
    if settings["train"]:
        x_train, y_train = x_train[:settings["train"]], y_train[:settings["train"]]
    if settings["test"]:
        x_test, y_test = x_test[:settings["test"]], y_test[:settings["test"]]
    return x_train, y_train, x_test, y_test


# Jobs, run in a trainer's worker.
def setup_trainer(state, factory, args, n_threads, settings, mnist_path):
    """Load the data, build ``factory(x_train, y_train, *args)``, keep its weights as built
    (state["initial_weights"], when it has weights()), warm it up on the first
    ``settings["warmup"]`` samples; its epoch becomes the worker's timed callable.
    Returns (training samples, test samples)."""
    set_blas_threads(n_threads)
    x_train, y_train, x_test, y_test = load_split(settings, mnist_path)
    trainer = factory(x_train, y_train, *args)
    if hasattr(trainer, "weights"):
        state["initial_weights"] = [np.array(w, copy=True) for w in trainer.weights()]
    w = settings["warmup"]
    trainer.epoch(x_train[:w], y_train[:w])   # workspaces, first-touch pages, compilation
    state.update(trainer=trainer, fn=trainer.epoch, test=(x_test, y_test))
    return x_train.shape[0], x_test.shape[0]


def initial_weights(state):
    return state["initial_weights"]


def accuracy_on_test_set(state):
    return state["trainer"].accuracy(*state["test"])


def start_trainers(row, pool, factories, n_threads, settings, mnist_path):
    """Build each trainer of ``factories`` ({name: (factory, args)}) in its worker; returns
    the names that are ready. One that cannot run is listed in row["unavailable"]; when
    MNIST cannot be loaded the row is marked skipped and nothing is returned."""
    live = []
    for name, (factory, args) in factories.items():
        try:
            n_train, n_test = pool.call(name, setup_trainer, factory, args, n_threads,
                                        settings, mnist_path)
        except discover.DataUnavailable as exc:
            row.update(status="skipped", reason=str(exc))
            return []
        except discover.Unavailable as exc:
            row["unavailable"][name] = str(exc)
            continue
        except (JobError, WorkerFailed) as exc:  # a broken trainer must not hide the others
            row["unavailable"][name] = f"failed: {reason(exc)}"
            continue
        live.append(name)
        row["samples"] = {"train": n_train, "test": n_test}
    return live


def add_sample_counts(row):
    """Append the training / test sample counts the trainers reported to row["shape"]."""
    if "samples" in row:
        row["shape"] += f", {row['samples']['train']} train / {row['samples']['test']} test samples"


def time_epochs(row, pool, names, settings, progress=None, label="epoch", settle_s=0.0):
    """Time ``settings["epochs"]`` epochs of each trainer interleaved (A B A B ...), within
    the time budget, ``settle_s`` of quiet before each; then each one's test accuracy.
    Fills row["times"], row["accuracy"] and row["workers"]; a trainer whose worker fails is
    moved to row["unavailable"]. Returns the names still running."""
    samples = {name: [] for name in names}
    live = list(names)

    def ask(name, job, *args):
        """The job's result in trainer `name`'s worker; None after dropping a failed one."""
        try:
            return pool.call(name, job, *args)
        except (JobError, WorkerFailed) as exc:
            row["unavailable"][name] = f"failed: {reason(exc)}"
            live.remove(name)
            return None

    t_epochs = time.perf_counter()
    for e in range(settings["epochs"]):
        if e and time.perf_counter() - t_epochs > settings["budget_s"]:
            row["note"] = (f"stopped after {e} of {settings['epochs']} epochs: the time "
                           f"budget of {settings['budget_s']:.0f} s was used up")
            break
        for name in list(live):
            if progress:
                progress(f"{label} {e + 1}/{settings['epochs']} {name}")
            if settle_s:
                time.sleep(settle_s)
            seconds = ask(name, time_calls, 1)
            if seconds is not None:
                samples[name].append(seconds)
    for name in list(live):
        accuracy = ask(name, accuracy_on_test_set)
        if accuracy is None:
            continue
        stats = summarize(samples[name])
        stats.update(loops=1, repeats=len(samples[name]))
        row["times"][name], row["accuracy"][name] = stats, accuracy
        row.setdefault("workers", {})[name] = pool.pid(name)
    return live


# Trainer factories, called as factory(x_train, y_train, params, n_threads) in the workers.
def pyblasnn_trainer(x_train, y_train, params, n_threads):
    return PyblasnnTrainer(x_train, y_train, n_threads, params=params)


def numpy_trainer(x_train, y_train, params, n_threads):
    return NumpyMLP(x_train, y_train, BATCH_SIZE, LEARNING_RATE, MOMENTUM, seed=0, params=params)


def torch_trainer(x_train, y_train, params, n_threads):
    return TorchMLP(x_train, y_train, params, BATCH_SIZE, LEARNING_RATE, MOMENTUM, seed=0,
                    n_threads=n_threads)


def jax_trainer(x_train, y_train, params, n_threads):
    return JaxMLP(x_train, y_train, params, BATCH_SIZE, LEARNING_RATE, MOMENTUM, seed=0,
                  n_threads=n_threads)


TRAINERS = {"pyblasnn": pyblasnn_trainer, "numpy": numpy_trainer, "pytorch": torch_trainer,
            "jax": jax_trainer}


def run_epochs(n_threads, mode="full", mnist_path=None, progress=None, trainers=None,
               pool=None, settle_s=0.0):
    """The epoch row: {trainer: stats}, accuracies and why any trainer was skipped.
    ``pool``: the run's workers (a pool of its own when None)."""
    settings = EPOCH_SETTINGS[mode]
    row = {"section": "epoch", "kernel": "mnist_epoch",
           "shape": f"784-512-10 batch {BATCH_SIZE}", "dtype": "float32", "threads": n_threads,
           "group": "epoch", "times": {}, "accuracy": {}, "unavailable": {},
           "settings": {**settings, "learning_rate": LEARNING_RATE, "momentum": MOMENTUM}}
    params = init_params(np.random.default_rng(0))
    factories = {name: (make, (params, n_threads)) for name, make in TRAINERS.items()
                 if not trainers or name in trainers}
    with using(pool) as pool:
        live = start_trainers(row, pool, factories, n_threads, settings, mnist_path)
        if row.get("status") == "skipped":
            return row
        live = time_epochs(row, pool, live, settings, progress, "epoch", settle_s)
    add_sample_counts(row)
    row["status"] = "ok" if live else "skipped"
    if not live:
        row["reason"] = "; ".join(f"{k}: {v}" for k, v in row["unavailable"].items())
    return row
