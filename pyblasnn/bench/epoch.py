"""End to end: seconds per MNIST epoch (784-512-10, batch 128, SGD momentum) and accuracy.

Trainers: pyblasnn's Sequential.fit (verbose=0), the plain NumPy trainer (numpy_mlp.py) and
PyTorch CPU when importable (torch_mlp.py). All get the same thread count, learning rate,
momentum and batch size, and start from the same Glorot-uniform weights (pyblasnn's through
Sequential.set_weights).
After a short warm-up on a slice of the data, epochs are timed interleaved
(A B C A B C ...), and each trainer's test accuracy is measured after its last epoch.
"""
import time

import numpy as np

from . import discover
from .numpy_mlp import NumpyMLP, init_params
from .timing import blas_threads, summarize
from .torch_mlp import TorchMLP

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
        raise discover.Unavailable(f"MNIST could not be loaded: {type(exc).__name__}: "
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


def time_epochs(row, trainers, settings, x_test, y_test, progress=None, label="epoch"):
    """Time ``settings["epochs"]`` epochs of each trainer interleaved (A B A B ...), within
    the time budget; then each one's test accuracy. Fills row["times"] and row["accuracy"]."""
    samples = {name: [] for name in trainers}
    t_epochs = time.perf_counter()
    for e in range(settings["epochs"]):
        if e and time.perf_counter() - t_epochs > settings["budget_s"]:
            row["note"] = (f"stopped after {e} of {settings['epochs']} epochs: the time "
                           f"budget of {settings['budget_s']:.0f} s was used up")
            break
        for name, tr in trainers.items():
            if progress:
                progress(f"{label} {e + 1}/{settings['epochs']} {name}")
            t0 = time.perf_counter()
            tr.epoch()
            samples[name].append(time.perf_counter() - t0)
    for name, tr in trainers.items():
        row["accuracy"][name] = tr.accuracy(x_test, y_test)
    for name, s in samples.items():
        stats = summarize(s)
        stats.update(loops=1, repeats=len(s))
        row["times"][name] = stats


def run_epochs(n_threads, mode="full", mnist_path=None, progress=None, trainers=None):
    """The epoch row: {competitor: stats}, accuracies and why any trainer was skipped."""
    settings = EPOCH_SETTINGS[mode]
    row = {"section": "epoch", "kernel": "mnist_epoch",
           "shape": f"784-512-10 batch {BATCH_SIZE}", "dtype": "float32", "threads": n_threads,
           "group": "epoch", "times": {}, "accuracy": {}, "unavailable": {},
           "settings": {**settings, "learning_rate": LEARNING_RATE, "momentum": MOMENTUM}}
    try:
        x_train, y_train, x_test, y_test = load_mnist(mnist_path)
    except discover.Unavailable as exc:
        row.update(status="skipped", reason=str(exc))
        return row
    if settings["train"]:
        x_train, y_train = x_train[:settings["train"]], y_train[:settings["train"]]
    if settings["test"]:
        x_test, y_test = x_test[:settings["test"]], y_test[:settings["test"]]
    row["shape"] += f", {x_train.shape[0]} train / {x_test.shape[0]} test samples"
    params = init_params(np.random.default_rng(0))
    makers = {
        "pyblasnn": lambda: PyblasnnTrainer(x_train, y_train, n_threads, params=params),
        "numpy": lambda: NumpyMLP(x_train, y_train, BATCH_SIZE, LEARNING_RATE, MOMENTUM,
                                  seed=0, params=params),
        "pytorch": lambda: TorchMLP(x_train, y_train, params, BATCH_SIZE, LEARNING_RATE,
                                    MOMENTUM, seed=0, n_threads=n_threads),
    }
    if trainers:
        makers = {k: v for k, v in makers.items() if k in trainers}
    live = {}
    for name, make in makers.items():
        try:
            live[name] = make()
        except discover.Unavailable as exc:
            row["unavailable"][name] = str(exc)
        except Exception as exc:  # a broken frontend must not hide the other trainers
            row["unavailable"][name] = f"failed to build: {type(exc).__name__}: {exc}"
    with blas_threads(n_threads):
        w = settings["warmup"]
        for name, tr in list(live.items()):
            try:
                tr.epoch(x_train[:w], y_train[:w])
            except Exception as exc:
                row["unavailable"][name] = f"failed: {type(exc).__name__}: {exc}"
                del live[name]
        time_epochs(row, live, settings, x_test, y_test, progress, "epoch")
    row["status"] = "ok" if live else "skipped"
    if not live:
        row["reason"] = "; ".join(f"{k}: {v}" for k, v in row["unavailable"].items())
    return row
