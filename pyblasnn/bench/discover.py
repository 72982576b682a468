"""Find the pieces of pyblasnn a benchmark row needs, by name, at run time.

Parts of pyblasnn land on main at different times (GEMM engine, fused loss/optimizer
kernels, frontend, datasets, pure-Python reference loops). Every lookup here either returns
the callable or raises ``Unavailable`` with a one-line reason, which the harness turns into a
"skipped" row instead of a crash; once a piece is merged its rows run without any change here.
"""
import importlib

NAIVE_NAMES = ("naive_relu", "naive_add", "naive_add_matrix_and_vector", "naive_vector_dot",
               "naive_matrix_vector_dot", "naive_matrix_dot")


class Unavailable(Exception):
    """A benchmark row cannot run here; str(exc) says why."""


class DataUnavailable(Unavailable):
    """The data a whole row needs (MNIST) cannot be loaded; str(exc) says why."""


def _module(name):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Unavailable(f"{name} not available ({exc})") from None


def function(name, modules=("pyblasnn.ops", "pyblasnn.fused", "pyblasnn")):
    """The first attribute ``name`` found in ``modules`` (imported lazily)."""
    missing = []
    for mod_name in modules:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            missing.append(mod_name)
            continue
        fn = getattr(mod, name, None)
        if callable(fn):
            return fn
    where = ", ".join(modules)
    raise Unavailable(f"{name} not available (looked in {where}; not merged yet?)")


def fused(name):
    """A fused training kernel (softmax + cross-entropy, optimizer updates)."""
    return function(name, ("pyblasnn.fused", "pyblasnn.ops", "pyblasnn"))


def naive_module():
    """(module, label): pyblasnn.naive when it has every loop, else the bench's private copy."""
    try:
        mod = importlib.import_module("pyblasnn.naive")
        if all(callable(getattr(mod, n, None)) for n in NAIVE_NAMES):
            return mod, "pyblasnn.naive"
    except ImportError:
        pass
    from . import _naive
    return _naive, "pyblasnn.bench._naive (pyblasnn.naive not available)"


def _class(name, modules):
    for mod_name in modules:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        obj = getattr(mod, name, None)
        if obj is not None:
            return obj
    raise Unavailable(f"{name} not available (looked in {', '.join(modules)}; "
                      f"frontend not merged yet?)")


def frontend():
    """(Sequential, Dense, SGD) of the Keras-style frontend."""
    return (_class("Sequential", ("pyblasnn.models", "pyblasnn")),
            _class("Dense", ("pyblasnn.layers", "pyblasnn")),
            _class("SGD", ("pyblasnn.optimizers", "pyblasnn")))


def mnist_load_data():
    """pyblasnn.datasets.mnist.load_data."""
    mod = _module("pyblasnn.datasets.mnist")
    fn = getattr(mod, "load_data", None)
    if not callable(fn):
        raise Unavailable("pyblasnn.datasets.mnist.load_data not available")
    return fn
