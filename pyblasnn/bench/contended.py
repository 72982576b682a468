"""Under load: pyblasnn's speed on 1 and 2 threads with the cores shared.

Three loads, each for an epoch of Sequential.fit and a few kernel rows, at 1 and 2 threads:
  none   nothing else runs (the reference);
  busy   one CPU-bound process (started and stopped here) competes for the cores;
  numpy  a NumPy matmul (OpenBLAS and its thread pool) runs between pyblasnn calls: after
         each training step for the epoch, after each kernel call for the kernel rows; the
         NumPy time is included in the epoch (the same for both thread counts) and left
         out of the kernel rows.
The target: under either load 2 threads are no slower than 1 (pyblasnn backs off to one
thread while the cores are contended, see README "Threads"), not several times slower.
Each configuration is timed in turn, rounds interleaved (none/busy/numpy x 1/2 threads),
and the medians reported. Results are bitwise the same at every thread count and load
(checked here on the kernel rows).
"""
import contextlib
import subprocess
import sys
import time

import numpy as np

from . import discover
from .timing import summarize

LOADS = ("none", "busy", "numpy")
THREADS = (1, 2)
#: Per mode: training samples per epoch (None = all), rounds, kernel calls per sample.
SETTINGS = {
    "full": dict(train=None, rounds=3, calls=100),
    "quick": dict(train=8192, rounds=2, calls=20),
    "tiny": dict(train=512, rounds=1, calls=2),
}
#: The NumPy work interleaved with pyblasnn calls (float64, BLAS-threaded).
NUMPY_SIZE = 256
BUSY_CODE = "while True: pass"


@contextlib.contextmanager
def load(kind):
    """Run the body under `kind` of load; yields a callable to run between pyblasnn calls."""
    if kind == "busy":
        proc = subprocess.Popen([sys.executable, "-c", BUSY_CODE],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.2)   # let it start spinning
            yield lambda: None
        finally:
            proc.kill()
            proc.wait()
        return
    if kind == "numpy":
        a = np.random.default_rng(0).random((NUMPY_SIZE, NUMPY_SIZE))
        yield lambda: a @ a
        return
    yield lambda: None


def _kernel_cases(rng):
    import pyblasnn
    x = rng.random((128, 784), dtype=np.float32)
    x[x < 0.8] = 0                        # as sparse as an MNIST batch: the zero-skipping path
    w = rng.standard_normal((784, 512)).astype(np.float32)
    h = rng.standard_normal((128, 512)).astype(np.float32)
    dense = rng.standard_normal((128, 784)).astype(np.float32)
    return [
        ("matmul", "(128,784)@(784,512) dense", lambda: pyblasnn.matmul(dense, w)),
        ("matmul", "(128,784)@(784,512) 80% zeros", lambda: pyblasnn.matmul(x, w)),
        ("relu", "(128,512)", lambda: pyblasnn.relu(h)),
    ]


def _time_kernel(fn, between, calls):
    """Median-of-calls seconds of fn, with `between` (not timed) after every call."""
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
        between()
    return float(np.median(samples))


def run_contended(mode, mnist_path=None, progress=None):
    """Rows of the "contended" section: one per (what, load, threads)."""
    import pyblasnn
    from .epoch import BATCH_SIZE, LEARNING_RATE, MOMENTUM, load_mnist
    s = SETTINGS[mode]
    Sequential, Dense, SGD = discover.frontend()
    rng = np.random.default_rng(7)
    try:
        x_train, y_train, _, _ = load_mnist(mnist_path)
        data_note = "MNIST"
    except discover.Unavailable as exc:
        x_train = rng.random((max(s["train"] or 0, 2048), 784), dtype=np.float32)
        x_train[x_train < 0.8] = 0
        y_train = rng.integers(0, 10, len(x_train))
        data_note = f"synthetic digits ({exc})"
    if s["train"]:
        x_train, y_train = x_train[:s["train"]], y_train[:s["train"]]
    models = {}
    for nt in THREADS:
        m = Sequential([Dense(512, activation="relu"), Dense(10, activation="softmax")])
        m.compile(optimizer=SGD(learning_rate=LEARNING_RATE, momentum=MOMENTUM),
                  loss="sparse_categorical_crossentropy")
        m.fit(x_train[:256], y_train[:256], batch_size=BATCH_SIZE, verbose=0)   # warm-up
        models[nt] = m
    kernels = _kernel_cases(rng)
    reference = {name + shape: np.array(fn()) for name, shape, fn in kernels}
    epoch_s, kernel_s, same = {}, {}, True
    default_threads = pyblasnn.get_num_threads()

    class Between(pyblasnn.callbacks.Callback):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def on_train_batch_end(self, batch, logs=None):
            self.fn()

    try:
        for _ in range(s["rounds"]):
            for kind in LOADS:
                if progress:
                    progress(f"contended: {kind}")
                with load(kind) as between:
                    for nt in THREADS:
                        pyblasnn.set_num_threads(nt)
                        t = time.perf_counter()
                        models[nt].fit(x_train, y_train, epochs=1, batch_size=BATCH_SIZE,
                                       verbose=0, callbacks=[Between(between)])
                        epoch_s.setdefault((kind, nt), []).append(time.perf_counter() - t)
                        for name, shape, fn in kernels:
                            same &= bool(np.array_equal(fn(), reference[name + shape]))
                            kernel_s.setdefault((name, shape, kind, nt), []).append(
                                _time_kernel(fn, between, s["calls"]))
    finally:
        pyblasnn.set_num_threads(default_threads)
    rows = []
    note = (f"data: {data_note}, {len(x_train)} samples per epoch; "
            f"results bitwise equal across loads and threads: {same}")
    for (kind, nt), samples in epoch_s.items():
        rows.append({"section": "contended", "kernel": "mnist_epoch", "shape": "784-512-10",
                     "dtype": "float32", "threads": nt, "load": kind, "group": "contended",
                     "times": {"pyblasnn": summarize(samples)}, "status": "ok", "note": note,
                     "bitwise_equal": same})
    for (name, shape, kind, nt), samples in kernel_s.items():
        rows.append({"section": "contended", "kernel": name, "shape": shape, "dtype": "float32",
                     "threads": nt, "load": kind, "group": "contended",
                     "times": {"pyblasnn": summarize(samples)}, "status": "ok",
                     "bitwise_equal": same})
    return rows


def contended_table(rows):
    """kernel | shape | load | ms at each thread count | 2 threads / 1 thread."""
    head = ["what", "shape", "load"] + [f"{nt} thread{'s' * (nt > 1)} ms" for nt in THREADS] + [
        "2t / 1t"]
    by = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        by.setdefault((r["kernel"], r["shape"], r["load"]), {})[r["threads"]] = (
            r["times"]["pyblasnn"]["median_ms"])
    body = []
    for (kernel, shape, kind), t in by.items():
        ms = [t.get(nt) for nt in THREADS]
        ratio = f"{ms[1] / ms[0]:.2f}" if all(ms) else "-"
        body.append([kernel, shape, kind] + [f"{v:.3f}" if v else "-" for v in ms] + [ratio])
    return head, body
