"""``pyblasnn.random``: TensorFlow-style random tensors (float32 by default).

``set_seed(s)`` makes every later draw repeat from run to run; an op-level ``seed=`` gives a
sequence of its own (repeated calls with the same seed still differ, as in TensorFlow).
Without a seed, draws come from fresh OS entropy.
"""
import numpy as np

from .tensor import Tensor

__all__ = ["set_seed", "uniform", "normal"]

_state = {"global_seed": None, "generator": None, "op_counts": {}}


def set_seed(seed):
    """Set the global seed (an int >= 0) of ``uniform`` / ``normal``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"random.set_seed: seed must be a non-negative int, got {seed!r}")
    _state.update(global_seed=int(seed), generator=np.random.default_rng(int(seed)),
                  op_counts={})


def _generator(op, seed):
    if seed is None:
        if _state["generator"] is None:
            _state["generator"] = np.random.default_rng()
        return _state["generator"]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"random.{op}: seed must be a non-negative int, got {seed!r}")
    count = _state["op_counts"].get(int(seed), 0)
    _state["op_counts"][int(seed)] = count + 1
    base = _state["global_seed"] if _state["global_seed"] is not None else 0
    return np.random.default_rng([base, int(seed), count])


def _float_dtype(op, dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"random.{op}: dtype must be float32 or float64, got {dtype}")
    return dtype


def _shape(op, shape):
    from .functions import _shape as parse
    return parse(f"random.{op}", shape)


def uniform(shape, minval=0, maxval=None, dtype="float32", seed=None, name=None):
    """Uniform samples in [minval, maxval) (maxval defaults to 1)."""
    dtype = _float_dtype("uniform", dtype)
    shape = _shape("uniform", shape)
    maxval = 1 if maxval is None else maxval
    if not maxval > minval:
        raise ValueError(f"random.uniform: need minval < maxval, got {minval} and {maxval}")
    u = _generator("uniform", seed).random(shape, dtype=dtype)
    lo, span = dtype.type(minval), dtype.type(maxval) - dtype.type(minval)
    return Tensor._wrap(np.asarray(u * span + lo, dtype))


def normal(shape, mean=0.0, stddev=1.0, dtype="float32", seed=None, name=None):
    """Normal samples with the given mean and standard deviation."""
    dtype = _float_dtype("normal", dtype)
    shape = _shape("normal", shape)
    if not stddev >= 0:
        raise ValueError(f"random.normal: stddev must be >= 0, got {stddev}")
    z = _generator("normal", seed).standard_normal(shape, dtype=dtype)
    return Tensor._wrap(np.asarray(z * dtype.type(stddev) + dtype.type(mean), dtype))
