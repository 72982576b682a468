"""Hooks for the benchmark harness's worker processes (test_bench.py): a module of its own so
that spawned workers can import them by name.

``pyblasnn.bench.workers.INIT`` is called as ``INIT(name)`` in every new worker; the
functions here plant a wrong, crashing or hanging relu in the pyblasnn worker, or serve
synthetic digits as MNIST in every worker. ``weights_moved`` is a job for a trainer's worker.
"""
import os
import time

import numpy as np

#: How long the planted relu hangs: far beyond any timeout the tests give the harness.
HANG_S = 600


def _plant_relu(name, relu):
    if name == "pyblasnn":
        import pyblasnn.ops
        pyblasnn.ops.relu = relu


def wrong_relu(name):
    _plant_relu(name, lambda x, out=None, n_threads=None: np.abs(x))


def _exit(*args, **kwargs):
    os._exit(3)


def crashing_relu(name):
    _plant_relu(name, _exit)


def _hang(*args, **kwargs):
    time.sleep(HANG_S)


def hanging_relu(name):
    _plant_relu(name, _hang)


def synthetic_digits(n, seed):
    """10 separable clusters in 784-d (float32 in about [0, 1]) and their labels."""
    rng = np.random.default_rng(seed)
    centers = rng.random((10, 784)).astype(np.float32)
    y = rng.integers(0, 10, n)
    x = centers[y] + 0.05 * rng.standard_normal((n, 784)).astype(np.float32)
    return x.astype(np.float32), y.astype(np.intp)


def _load_fake_mnist(path=None):
    """A 512 / 188 split of synthetic digits in MNIST's layout (uint8 images)."""
    x, y = synthetic_digits(700, 2)
    imgs = (np.clip(x, 0, 1) * 255).astype(np.uint8).reshape(-1, 28, 28)
    return (imgs[:512], y[:512].astype(np.uint8)), (imgs[512:], y[512:].astype(np.uint8))


def fake_mnist(name):
    from pyblasnn.bench import discover
    discover.mnist_load_data = lambda: _load_fake_mnist


def fake_mnist_and_crashing_numpy_trainer(name):
    fake_mnist(name)
    if name == "numpy":
        from pyblasnn.bench import numpy_mlp
        numpy_mlp.NumpyMLP.epoch = _exit


def weights_moved(state):
    """Job: whether the worker's trainer has left the weights it was built with."""
    now = state["trainer"].weights()
    return any(not np.array_equal(a, b) for a, b in zip(now, state["initial_weights"]))
