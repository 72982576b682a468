"""End to end: the book's from-scratch listing (GradientTape) against ``Sequential.fit``.

The listing is ``examples/from_scratch.py`` itself: its definitions (NaiveDense,
NaiveSequential, BatchGenerator, one_training_step, update_weights with
``optimizers.SGD(learning_rate=1e-3)``, fit) are executed from the file, up to the line that
loads MNIST, and its ``fit`` is timed one epoch at a time. The comparison is ``Sequential``
with the same model (Dense(512, relu) -> Dense(10, softmax), started from the listing's
initial weights), the same optimizer and batch size, and no shuffling (the listing does not
shuffle). Each trainer runs in a worker process of its own (workers.py); the listing's
initial weights are sent from its worker to fit's. After a warm-up on a slice of the data,
epochs are timed interleaved (A B A B ...); test accuracy after the last one.
"""
import contextlib
import io
import os

import numpy as np

from . import discover
from .epoch import add_sample_counts, initial_weights, start_trainers, time_epochs
from .workers import using

BATCH_SIZE = 128
LEARNING_RATE = 1e-3      # the listing's
#: The listing must run an epoch in at most this multiple of Sequential.fit's time.
TARGET_RATIO = 1.5

TAPE_SETTINGS = {
    "full": dict(train=None, test=None, epochs=5, warmup=2560, budget_s=120.0),
    "quick": dict(train=4096, test=1000, epochs=1, warmup=256, budget_s=30.0),
    "tiny": dict(train=512, test=256, epochs=1, warmup=128, budget_s=30.0),
}

_DATA_LINE = "(train_images, train_labels), (test_images, test_labels) = mnist.load_data()"


def listing_path():
    """examples/from_scratch.py of the source tree pyblasnn is imported from."""
    import pyblasnn
    root = os.path.dirname(os.path.dirname(os.path.abspath(pyblasnn.__file__)))
    return os.path.join(root, "examples", "from_scratch.py")


def load_listing(path=None):
    """The namespace of the listing's definitions (everything before it loads MNIST)."""
    path = path or listing_path()
    if not os.path.exists(path):
        raise discover.Unavailable(f"the listing {os.path.basename(path)} is not next to the "
                                   f"imported package (a non-editable install)")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    if _DATA_LINE not in source:
        raise discover.Unavailable("examples/from_scratch.py: the line that loads MNIST, "
                                   "where its definitions end, was not found")
    namespace = {"__name__": "from_scratch_listing"}
    exec(compile(source[:source.index(_DATA_LINE)], path, "exec"), namespace)  # noqa: S102
    return namespace


class ListingTrainer:
    """The listing's model and ``fit``, one epoch per call of epoch()."""

    name = "from_scratch"

    def __init__(self, x_train, y_train, path=None, n_threads=None):
        _set_threads(n_threads)
        self.ns = load_listing(path)
        self.model = self.ns["model"]
        self.x, self.y = x_train, y_train

    def weights(self):
        return [w.numpy() for w in self.model.weights]

    def epoch(self, x=None, y=None):
        x, y = (self.x, self.y) if x is None else (x, y)
        with contextlib.redirect_stdout(io.StringIO()):   # its "loss at batch" lines
            self.ns["fit"](self.model, x, y, epochs=1, batch_size=BATCH_SIZE)

    def accuracy(self, x, y):
        predictions = self.model(x).numpy()
        return float(np.mean(np.argmax(predictions, axis=1) == y))


class FitTrainer:
    """Sequential.fit with the listing's model, optimizer, batch size and initial weights."""

    name = "sequential_fit"

    def __init__(self, x_train, y_train, weights, n_threads=None):
        _set_threads(n_threads)
        Sequential, Dense, SGD = discover.frontend()
        self.model = Sequential([Dense(512, activation="relu"),
                                 Dense(10, activation="softmax")])
        self.model.compile(optimizer=SGD(learning_rate=LEARNING_RATE),
                           loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        self.model.build((None, x_train.shape[1]))
        self.model.set_weights(weights)
        self.x, self.y = x_train, y_train

    def epoch(self, x=None, y=None):
        x, y = (self.x, self.y) if x is None else (x, y)
        self.model.fit(x, y, epochs=1, batch_size=BATCH_SIZE, verbose=0,
                       shuffle=False)

    def accuracy(self, x, y):
        return float(self.model.evaluate(x, y, batch_size=1000, verbose=0)[1])


def _set_threads(n_threads):
    if n_threads:
        import pyblasnn
        pyblasnn.set_num_threads(n_threads)


def run_tape_epochs(n_threads, mode="full", mnist_path=None, progress=None, listing_path=None,
                    pool=None, settle_s=0.0):
    """The from-scratch row: {trainer: stats}, accuracies, and the time ratio to fit.
    ``listing_path``: the listing's file (default: examples/from_scratch.py beside the
    package); ``pool``: the run's workers (a pool of its own when None)."""
    settings = TAPE_SETTINGS[mode]
    row = {"section": "tape", "kernel": "from_scratch_epoch",
           "shape": f"784-512-10 batch {BATCH_SIZE}, SGD lr {LEARNING_RATE:g}",
           "dtype": "float32", "threads": n_threads, "group": "tape", "times": {},
           "accuracy": {}, "unavailable": {}, "settings": dict(settings),
           "target_ratio": TARGET_RATIO}
    with using(pool) as pool:
        live = start_trainers(row, pool, {"from_scratch": (ListingTrainer,
                                                           (listing_path, n_threads))},
                              n_threads, settings, mnist_path)
        if live:
            weights = pool.call("from_scratch", initial_weights)
            live += start_trainers(row, pool, {"sequential_fit": (FitTrainer,
                                                                  (weights, n_threads))},
                                   n_threads, settings, mnist_path)
        if len(live) == 2:
            live = time_epochs(row, pool, live, settings, progress, "from-scratch epoch",
                               settle_s)
    add_sample_counts(row)
    if row.get("status") == "skipped":
        return row
    if len(live) < 2:   # the ratio needs both: skipped if one is unavailable, else FAILED
        failed = any(why.startswith("failed") for why in row["unavailable"].values())
        row.update(status="FAILED" if failed else "skipped",
                   reason="; ".join(f"{k}: {v}" for k, v in row["unavailable"].items()))
        return row
    row["x_fit"] = (row["times"]["from_scratch"]["median_ms"]
                    / row["times"]["sequential_fit"]["median_ms"])
    row["status"] = "ok"
    return row


def tape_table(rows):
    head = ["trainer", "threads", "s / epoch", "min-max s", "epochs", "test accuracy",
            "time / fit's"]
    body = []
    labels = {"from_scratch": "book listing (GradientTape)", "sequential_fit": "Sequential.fit"}
    for r in rows:
        if r["status"] != "ok":
            body.append(["all", str(r["threads"]), r["status"], "-", "-", "-", "-"])
            continue
        for who, label in labels.items():
            s = r["times"][who]
            ratio = r["x_fit"] if who == "from_scratch" else 1.0
            body.append([label, str(r["threads"]), f"{s['median_ms'] / 1e3:.3f}",
                         f"{s['min_ms'] / 1e3:.3f}-{s['max_ms'] / 1e3:.3f}", str(s["repeats"]),
                         f"{r['accuracy'][who]:.4f}", f"{ratio:.2f}x"])
    return head, body
