"""Shared fixtures, tolerances and helpers for the kernel tests. NumPy is the oracle."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from pyblasnn._config import kernel_constants, set_thread_backoff

# The contention back-off (one thread while the cores are busy) would make tests that count
# parallel entries depend on the machine's load: off for the suite, on in the tests of it
# (the thread_backoff fixture).
set_thread_backoff(False)
os.environ["PYBLASNN_THREAD_BACKOFF"] = "0"   # and in the processes tests start


@pytest.fixture
def thread_backoff():
    """The contention back-off on (and its history cleared) for one test."""
    set_thread_backoff(True)
    yield
    set_thread_backoff(False)

DTYPES = (np.float32, np.float64)
DTYPE_IDS = ("f32", "f64")

#: Relative tolerance for one rounding step (element-wise results, single products).
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}

# Every size constant below is read from the compiled kernels (pyblasnn._config
# .kernel_constants), never copied: a test of an edge that moved must move with it.
_CONSTANTS = kernel_constants()
_BLOCKS = {np.dtype(name): sizes for name, sizes in _CONSTANTS["gemm_block_sizes"].items()}

#: GEMM register-tile and cache-block sizes of the packed engine (kernels/gemm), per dtype.
#: Shapes straddling them catch edge-tile bugs: MR x NR tiles, KC depth blocks, MC row blocks.
MR = {dt: b["MR"] for dt, b in _BLOCKS.items()}
NR = {dt: b["NR"] for dt, b in _BLOCKS.items()}
KC = {dt: b["KC"] for dt, b in _BLOCKS.items()}
MC = {dt: b["MC"] for dt, b in _BLOCKS.items()}
NC = {dt: b["NC"] for dt, b in _BLOCKS.items()}

#: Element count from which element-wise, loss and optimizer kernels go parallel.
PARALLEL_MIN_ELEMENTS = _CONSTANTS["parallel_min_elements"]
#: Flops (2 m n k) from which a GEMM goes parallel; rows * k for a matrix-vector product.
GEMM_PARALLEL_MIN_FLOPS = _CONSTANTS["gemm_parallel_min_flops"]
GEMV_PARALLEL_MIN_ELEMENTS = _CONSTANTS["gemv_parallel_min_elements"]
SPARSE_PARALLEL_MIN_MNK = _CONSTANTS["sparse_parallel_min_mnk"]
#: The most threads a kernel may be asked for.
MAX_THREADS = _CONSTANTS["max_threads"]

# Hypothesis profiles: "ci" (the default) is derandomized, so every run draws the same
# examples and a failure reproduces; "long" explores afresh with 20x the examples, for
# local runs: HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", derandomize=True, deadline=None, database=None,
                          print_blob=True, suppress_health_check=_HEALTH)
settings.register_profile("long", deadline=None, print_blob=True,
                          suppress_health_check=_HEALTH)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
#: Multiplier of every property test's example count (max_examples=examples(n)).
EXAMPLES_SCALE = 20 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 1


def examples(n):
    """A test's example count under the active profile."""
    return n * EXAMPLES_SCALE


@pytest.fixture(params=DTYPES, ids=DTYPE_IDS)
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id, so every test is reproducible on its own."""
    seed = sum(map(ord, request.node.nodeid)) * 7919 % (2 ** 32)
    return np.random.default_rng(seed)


def randn(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def eps(dtype):
    return float(np.finfo(dtype).eps)


def assert_meta(got, shape, dtype):
    """Shape and dtype first: a wrong shape or dtype must not be masked by a value check."""
    assert isinstance(got, (np.ndarray, np.generic)), f"got {type(got).__name__}"
    assert got.shape == tuple(shape), f"shape {got.shape} != expected {tuple(shape)}"
    assert got.dtype == np.dtype(dtype), f"dtype {got.dtype} != expected {np.dtype(dtype)}"


def assert_exact(got, expected, dtype):
    """For operations that round once at most (relu, maximum, add): bitwise like NumPy."""
    expected = np.asarray(expected)
    assert_meta(got, expected.shape, dtype)
    np.testing.assert_array_equal(got, expected.astype(dtype))


def assert_close(got, expected, dtype, rtol=None, atol=0.0):
    expected = np.asarray(expected)
    assert_meta(got, expected.shape, dtype)
    dtype = np.dtype(dtype)
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype] if rtol is None else rtol,
                               atol=atol)


def product_bound(a, b, dtype, k):
    """Forward-error bound of a length-k dot product: |fl(a@b) - a@b| <= g_k |a| @ |b|.

    g_k = (k + 2) * eps is the textbook gamma_k with slack for a blocked summation order;
    |a| @ |b| is computed in float64 from the same inputs. A wrong tile or a dropped k-block
    is off by O(|a||b|), many orders of magnitude above this.
    """
    abs_prod = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    return (k + 2) * eps(dtype) * abs_prod + np.finfo(dtype).tiny


def np_sum_to(full, shape):
    """NumPy's float64 sum of `full` over the axes broadcasting added to `shape` (the
    independent oracle of every broadcast-reducing backward; never pyblasnn's sum_to_shape)."""
    full = np.asarray(full, np.float64)
    shape = tuple(shape)
    pad = full.ndim - len(shape)
    axes = tuple(range(pad)) + tuple(pad + i for i, s in enumerate(shape)
                                     if s == 1 and full.shape[pad + i] != 1)
    return full.sum(axis=axes, keepdims=True).reshape(shape) if axes else full.reshape(shape)


def assert_sum_to_close(got, full, shape, dtype):
    """got == full summed to shape (NumPy, float64), element by element within the rounding
    bound of each element's own sum: (terms + 2) eps sum|terms|. Dropping, doubling or
    misrouting one term of one element is far above it."""
    assert_meta(got, tuple(shape), dtype)
    full = np.asarray(full, np.float64)
    terms = max(1, full.size // max(1, int(np.prod(shape))))
    bound = (terms + 2) * eps(dtype) * np_sum_to(np.abs(full), shape) + np.finfo(dtype).tiny
    err = np.abs(np.asarray(got, np.float64) - np_sum_to(full, shape))
    assert np.all(err <= bound), (got, np_sum_to(full, shape))


def assert_matmul_close(got, a, b, dtype, expected=None, extra=0.0):
    """got == a @ b (numpy.matmul semantics) within the dot-product error bound."""
    a64 = np.asarray(a).astype(np.float64)
    b64 = np.asarray(b).astype(np.float64)
    if expected is None:
        expected = np.matmul(a64, b64)
    assert_meta(got, np.shape(expected), dtype)
    k = a64.shape[-1]
    bound = product_bound(a64, b64, dtype, k) + extra
    err = np.abs(np.asarray(got, np.float64) - expected)
    bad = ~(err <= bound)  # NaN in got counts as bad
    if bad.any():
        idx = tuple(np.argwhere(bad)[0]) if np.ndim(bad) else ()
        raise AssertionError(
            f"{int(np.sum(bad))} of {np.size(bad)} elements off; first at {idx}: "
            f"got {np.asarray(got)[idx]!r}, expected {np.asarray(expected)[idx]!r}, "
            f"bound {np.asarray(bound)[idx]!r}")


def central_difference(f, x, h=1e-6):
    """d sum(f(x) * w) / dx for the fixed random weights the caller folds into f."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    g = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        g[i] = (fp - fm) / (2 * h)
    return grad


def strided_views(rng, shape, dtype):
    """(name, view) pairs holding the same random values in different memory layouts."""
    base = randn(rng, shape, dtype)
    views = [("c", base)]
    if base.ndim >= 1:
        views.append(("fortran", np.asfortranarray(base)))
        big = np.empty(tuple(2 * s for s in shape), dtype)
        sl = big[tuple(slice(None, None, 2) for _ in shape)]
        sl[...] = base
        views.append(("step2", sl))
        rev = np.ascontiguousarray(base[tuple(slice(None, None, -1) for _ in shape)])
        views.append(("negative", rev[tuple(slice(None, None, -1) for _ in shape)]))
    if base.ndim >= 2:
        views.append(("transposed", np.ascontiguousarray(np.swapaxes(base, -1, -2)).swapaxes(-1, -2)))
    return views

