"""Thread control and thread-count invariance.

Work is partitioned by output blocks, so 1 and N threads must agree bitwise (not just within
tolerance). Sizes are above the parallel thresholds: 32768 elements for element-wise
kernels, 2*64^3 flops for GEMM.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyblasnn
from pyblasnn import _config, fused, ops
from pyblasnn._kernels import linalg as _la

from conftest import (GEMM_PARALLEL_MIN_FLOPS, GEMV_PARALLEL_MIN_ELEMENTS, MAX_THREADS,
                      PARALLEL_MIN_ELEMENTS, SPARSE_PARALLEL_MIN_MNK, examples)

# Child processes import the pyblasnn under test (installed or in-place), never whatever
# source tree happens to sit next to the tests.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pyblasnn.__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))


def _r(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _cases(rng, dtype):
    """name -> (callable, args); every public op of pyblasnn.ops at a parallel size."""
    big = _r(rng, (301, 257), dtype)            # 77,357 elements: above 32768, odd rows/cols
    big2 = _r(rng, (301, 257), dtype)
    row = _r(rng, (257,), dtype)
    col = _r(rng, (301, 1), dtype)
    a = _r(rng, (145, 263), dtype)
    b = _r(rng, (263, 131), dtype)
    x4 = _r(rng, (3, 5, 37, 263), dtype)
    y3 = _r(rng, (4, 263, 33), dtype)
    ab = _r(rng, (9, 37, 129), dtype)
    bb = _r(rng, (9, 129, 65), dtype)
    rows = rng.permutation(301)[:200]
    return {
        "relu": (ops.relu, (big,)),
        "relu_backward": (ops.relu_backward, (big2, big)),
        "add": (ops.add, (big, row)),
        "add[col]": (ops.add, (big, col)),
        "add[same]": (ops.add, (big, big2[::-1])),
        "subtract": (ops.subtract, (big, row)),
        "subtract[scalar]": (ops.subtract, (1.5, big)),
        "multiply": (ops.multiply, (col, big[::-1])),
        "multiply[scalar]": (ops.multiply, (big, 0.1)),
        "divide": (ops.divide, (big, big2)),
        "divide[strided]": (ops.divide, (np.asfortranarray(big), row[::-1])),
        "subtract_backward": (ops.subtract_backward, (big, big.shape, row.shape)),
        "subtract_backward[col]": (ops.subtract_backward, (big, col.shape, big.shape)),
        "multiply_backward": (ops.multiply_backward, (big2, big, row)),
        "multiply_backward[col]": (ops.multiply_backward, (big2, col, big)),
        "divide_backward": (ops.divide_backward, (big2, big, row)),
        "divide_backward[col]": (ops.divide_backward, (big2, col, big)),
        "maximum": (ops.maximum, (big[:, ::-1], row)),
        "maximum[col]": (ops.maximum, (col, big)),
        "add_backward": (ops.add_backward, (big, big.shape, row.shape)),
        "add_backward[col]": (ops.add_backward, (big, big.shape, col.shape)),
        "maximum_backward": (ops.maximum_backward, (big2, big, row)),
        "sum_to_shape": (ops.sum_to_shape, (big, (257,))),
        "sum_to_shape[3d]": (ops.sum_to_shape, (x4, (5, 1, 263))),
        "dot": (ops.dot, (a, b)),
        "dot[nd]": (ops.dot, (x4, y3)),
        "dot_backward": (ops.dot_backward, (_r(rng, (145, 131), dtype), a, b)),
        "dot_backward[nd]": (ops.dot_backward, (_r(rng, (3, 5, 37, 4, 33), dtype), x4, y3)),
        "matmul": (ops.matmul, (a, b)),
        "matmul[T]": (ops.matmul, (np.asfortranarray(a), b[::-1])),
        "matmul[batched]": (ops.matmul, (ab, bb)),
        "matmul[broadcast]": (ops.matmul, (ab[:1], bb)),
        "matmul[4d@2d]": (ops.matmul, (x4, b)),
        "matmul_backward": (ops.matmul_backward, (_r(rng, (145, 131), dtype), a, b)),
        "matmul_backward[batched]": (ops.matmul_backward, (_r(rng, (9, 37, 65), dtype), ab[:1], bb)),
        "matmul_backward[shared b]": (ops.matmul_backward, (_r(rng, (3, 5, 37, 131), dtype), x4, b)),
        "dense": (ops.dense, (big, _r(rng, (257, 129), dtype), _r(rng, (129,), dtype), "relu")),
        "dense[rows]": (lambda *a_, **kw: ops.dense(*a_, rows=rows, **kw),
                        (big, _r(rng, (257, 129), dtype), None, None)),
        "take_rows": (ops.take_rows, (big, rows)),
    }


CASE_NAMES = sorted(_cases(np.random.default_rng(0), np.float32))


def test_every_public_op_has_a_thread_case():
    covered = {name.split("[")[0] for name in CASE_NAMES}
    assert covered == set(ops.__all__), set(ops.__all__) ^ covered


@pytest.mark.parametrize("name", CASE_NAMES)
def test_one_and_two_threads_bitwise_equal(name, dtype):
    rng = np.random.default_rng(sum(map(ord, name)))
    fn, args = _cases(rng, dtype)[name]
    one = fn(*args, n_threads=1)
    two = fn(*args, n_threads=2)
    many = fn(*args, n_threads=7)  # more threads than cores, uneven split
    one, two, many = (r if isinstance(r, tuple) else (r,) for r in (one, two, many))
    for r1, r2, r7 in zip(one, two, many):
        assert r1.dtype == dtype and r1.shape == r2.shape == r7.shape
        assert r1.tobytes() == r2.tobytes(), f"{name}: 1 vs 2 threads differ"
        assert r1.tobytes() == r7.tobytes(), f"{name}: 1 vs 7 threads differ"


def test_n_threads_minus_one_and_none_are_valid(rng):
    x = rng.standard_normal(40000)
    expected = np.maximum(x, 0)
    for nt in (None, -1, 1, 2, np.int64(2)):
        np.testing.assert_array_equal(ops.relu(x, n_threads=nt), expected)


def test_set_num_threads_changes_default():
    old = pyblasnn.get_num_threads()
    try:
        pyblasnn.set_num_threads(1)
        assert pyblasnn.get_num_threads() == 1
        pyblasnn.set_num_threads(3)
        assert pyblasnn.get_num_threads() == 3
        pyblasnn.set_num_threads(-1)
        assert pyblasnn.get_num_threads() == pyblasnn._config.config_info()["processors"]
    finally:
        pyblasnn.set_num_threads(old)
    assert pyblasnn.get_num_threads() == old


def _run(code, **env):
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_env.pop("OMP_NUM_THREADS", None)
    full_env.update(env)
    res = subprocess.run([sys.executable, "-c", code], env=full_env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


@pytest.mark.parametrize("value", ["1", "3"])
def test_omp_num_threads_is_honoured(value):
    if not pyblasnn._config.config_info()["openmp"]:
        pytest.skip("serial build: OMP_NUM_THREADS has nothing to limit")
    out = _run("import pyblasnn, numpy as np; "
               "r = pyblasnn.relu(np.arange(-5., 40000.)); "
               "print(pyblasnn.get_num_threads(), r[:6].tolist())", OMP_NUM_THREADS=value)
    n, rest = out.split(" ", 1)
    assert n == value
    assert rest == "[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]"


def test_threadpoolctl_limits_pyblasnn():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not pyblasnn._config.config_info()["openmp"]:
        pytest.skip("serial build")
    before = pyblasnn.get_num_threads()
    pyblasnn.set_num_threads(2)
    try:
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            assert pyblasnn.get_num_threads() == 1
            x = np.random.default_rng(0).standard_normal((300, 300))
            np.testing.assert_array_equal(ops.relu(x), np.maximum(x, 0))
        assert pyblasnn.get_num_threads() == 2
    finally:
        pyblasnn.set_num_threads(before)


# ------------------------------------------------ every kernel path, above its threshold
# path -> builder(draw, rng, dtype) -> (fn, args): sizes drawn so that the call crosses the
# path's parallel threshold (read from the compiled kernels), so 2 and 3 threads really
# split the work. The path counters prove each call took that path and, with more than one
# thread, entered the parallel region.
def _mnk_above(draw, m_range, n_range, k_min):
    """(m, n, k) in the ranges, k raised so that 2 m n k reaches the GEMM threshold."""
    m = draw(st.integers(*m_range))
    n = draw(st.integers(*n_range))
    k = max(draw(st.integers(k_min, k_min + 64)), -(-int(GEMM_PARALLEL_MIN_FLOPS) // (2 * m * n)))
    return m, n, k


def _elements_above(draw, lo=0, hi=40_000):
    return PARALLEL_MIN_ELEMENTS + draw(st.integers(lo, hi))


def _b_packed(draw, rng, dt):
    m, n, k = _mnk_above(draw, (13, 150), (17, 200), 8)
    return ops.matmul, (_r(rng, (m, k), dt), _r(rng, (k, n), dt)[::draw(st.sampled_from([1, -1]))])


def _b_swap(draw, rng, dt):
    m, n, k = _mnk_above(draw, (200, 600), (2, 15), 64)
    return ops.matmul, (_r(rng, (k, m), dt).T, _r(rng, (k, n), dt))


def _b_dot(draw, rng, dt):
    m, n, k = _mnk_above(draw, (150, 500), (2, 16), 64)
    return ops.matmul, (_r(rng, (m, k), dt), _r(rng, (k, n), dt))


def _b_gemv(draw, rng, dt):
    if draw(st.booleans()):    # matrix-vector: rows in blocks
        m = draw(st.integers(130, 700))
        k = max(draw(st.integers(8, 200)), -(-int(GEMV_PARALLEL_MIN_ELEMENTS) // m))
        return ops.matmul, (_r(rng, (m, k), dt), _r(rng, (k,), dt))
    k = draw(st.integers(70_000, 120_000))   # one long dot product, in chunks
    return ops.dot, (_r(rng, (k,), dt), _r(rng, (k,), dt))


def _b_sparse(draw, rng, dt):
    m, n = draw(st.integers(64, 160)), draw(st.integers(64, 160))
    k = max(draw(st.integers(100, 300)), -(-int(SPARSE_PARALLEL_MIN_MNK) // (m * n)))
    a = _r(rng, (m, k), dt)
    a[rng.random((m, k)) < 0.85] = 0
    return ops.matmul, (a, _r(rng, (k, n), dt))


def _b_batched(draw, rng, dt):
    batch = draw(st.integers(2, 6))
    m, n, k = _mnk_above(draw, (65, 100), (65, 90), 8)
    return ops.matmul, (_r(rng, (batch, m, k), dt), _r(rng, (batch, k, n), dt))


def _b_batched_tiny(draw, rng, dt):
    m, k, n = draw(st.integers(8, 64)), draw(st.integers(8, 64)), draw(st.sampled_from([8, 16, 32]))
    batch = -(-int(GEMM_PARALLEL_MIN_FLOPS) // (2 * m * n * k)) + draw(st.integers(1, 8))
    return ops.matmul, (_r(rng, (batch, m, k), dt), _r(rng, (batch, k, n), dt))


def _b_relu(draw, rng, dt):
    return ops.relu, (_r(rng, _elements_above(draw), dt),)


def _b_relu_backward(draw, rng, dt):
    n = _elements_above(draw)
    return ops.relu_backward, (_r(rng, n, dt), _r(rng, n, dt))


def _b_binary_flat(draw, rng, dt):
    n = _elements_above(draw)
    op = getattr(ops, draw(st.sampled_from(["add", "subtract", "multiply", "divide", "maximum"])))
    return op, (_r(rng, n, dt), _r(rng, n, dt))


def _b_binary_rows(draw, rng, dt):
    d = draw(st.integers(3, 300))
    rows = -(-PARALLEL_MIN_ELEMENTS // d) + draw(st.integers(0, 100))
    op = getattr(ops, draw(st.sampled_from(["add", "subtract", "multiply", "divide", "maximum"])))
    y = _r(rng, (d,), dt) if draw(st.booleans()) else _r(rng, (rows, 1), dt)
    return op, (_r(rng, (rows, d), dt), y)


def _b_maximum_mask(draw, rng, dt):
    d = draw(st.integers(3, 300))
    rows = -(-PARALLEL_MIN_ELEMENTS // d) + draw(st.integers(0, 100))
    return ops.maximum_backward, (_r(rng, (rows, d), dt), _r(rng, (rows, d), dt), _r(rng, (d,), dt))


def _b_column_sum(draw, rng, dt):
    d = draw(st.integers(600, 3000))
    rows = -(-PARALLEL_MIN_ELEMENTS // d) + draw(st.integers(0, 40))
    return ops.sum_to_shape, (_r(rng, (rows, d), dt), (d,))


def _b_take_rows(draw, rng, dt):
    d = draw(st.integers(3, 300))
    n = -(-PARALLEL_MIN_ELEMENTS // d) + draw(st.integers(0, 100))
    return ops.take_rows, (_r(rng, (n + 7, d), dt), rng.permutation(n + 7)[:n])


def _logits(draw, rng, dt):
    c = draw(st.integers(2, 200))
    n = -(-PARALLEL_MIN_ELEMENTS // c) + draw(st.integers(0, 100))
    return _r(rng, (n, c), dt), rng.integers(0, c, n)


def _b_softmax_xent(draw, rng, dt):
    z, y = _logits(draw, rng, dt)
    return (lambda z, y, n_threads: fused.sparse_softmax_cross_entropy(
        z, y, out=np.empty_like(z), n_threads=n_threads)), (z, y)


def _b_xent_probs(draw, rng, dt):
    z, y = _logits(draw, rng, dt)
    p = np.abs(z) / np.abs(z).sum(axis=1, keepdims=True)
    return (lambda p, y, n_threads: fused.sparse_cross_entropy(
        p, y, out=np.empty_like(p), n_threads=n_threads)), (p.astype(dt), y)


def _b_softmax(draw, rng, dt):
    return fused.softmax, (_logits(draw, rng, dt)[0],)


def _b_softmax_backward(draw, rng, dt):
    z = _logits(draw, rng, dt)[0]
    return fused.softmax_backward, (_r(rng, z.shape, dt), fused.softmax(z))


def _b_optim(draw, rng, dt):
    n = _elements_above(draw)
    w, g = _r(rng, n, dt), _r(rng, n, dt)

    def step(w, g, n_threads):     # in place: on a copy, so every thread count starts equal
        w = w.copy()
        fused.sgd_update(w, g, 0.01, n_threads=n_threads)
        return w
    return step, (w, g)


PATH_BUILDERS = {
    "gemm.packed": _b_packed, "gemm.swap": _b_swap, "gemm.dot": _b_dot, "gemm.gemv": _b_gemv,
    "gemm.sparse": _b_sparse, "gemm.batched": _b_batched, "gemm.batched_tiny": _b_batched_tiny,
    "relu": _b_relu, "relu_backward": _b_relu_backward, "binary.flat": _b_binary_flat,
    "binary.rows": _b_binary_rows, "maximum_mask": _b_maximum_mask,
    "column_sum": _b_column_sum, "take_rows": _b_take_rows,
    "softmax_xent": _b_softmax_xent, "xent_probs": _b_xent_probs, "softmax": _b_softmax,
    "softmax_backward": _b_softmax_backward, "optim.update": _b_optim,
}
# float32-only paths (float64 products take the packed path there)
F32_ONLY = {"gemm.dot", "gemm.sparse"}
SERIAL_PATHS = {"scatter_add"}   # no parallel region by design
SIMD_ONLY = {"gemm.dot", "gemm.sparse"}   # taken only with AVX2 / AVX-512 kernels


def _bytes(result):
    result = result if isinstance(result, tuple) else (result,)
    return [np.asarray(r).tobytes() for r in result]


def test_every_counted_path_has_a_thread_case():
    """Each path the kernels count is exercised below (or is serial by design)."""
    from pyblasnn._kernels import threads
    _config.reset_path_counters()
    x = np.ones((3, 4, 5))
    ops.sum_to_shape(x, (4, 1))                       # reaches scatter_add
    assert "scatter_add" in _config.path_counters()
    assert set(PATH_BUILDERS) | SERIAL_PATHS == set(threads.path_names())


@pytest.mark.parametrize("path", sorted(PATH_BUILDERS))
@settings(max_examples=examples(6))
@given(data=st.data())
def test_thread_counts_bitwise_equal_on_every_path(path, data):
    """1 vs 2 vs 3 threads, bitwise, on sizes above the path's parallel threshold; the path
    counters prove the path was taken and that 2 and 3 threads entered a parallel region."""
    if not _config.config_info()["openmp"]:
        pytest.skip("serial build")
    if path in SIMD_ONLY and _la.isa() == "portable":
        pytest.skip(f"{path} has SIMD kernels only; the portable ISA takes the packed path")
    dtype = np.float32 if path in F32_ONLY else data.draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    fn, args = PATH_BUILDERS[path](data.draw, rng, np.dtype(dtype))
    results = {}
    for nt in (1, 2, 3):
        _config.reset_path_counters()
        results[nt] = _bytes(fn(*args, n_threads=nt))
        calls, parallel = _config.path_counters().get(path, (0, 0))
        assert calls >= 1, f"{path} not reached with {nt} threads: {_config.path_counters()}"
        if nt == 1:
            assert parallel == 0, f"{path}: a parallel region with n_threads=1"
        else:
            assert parallel >= 1, f"{path}: no parallel region with {nt} threads"
    assert results[1] == results[2], f"{path}: 1 vs 2 threads differ"
    assert results[1] == results[3], f"{path}: 1 vs 3 threads differ"


# ------------------------------------------------------------------- the thread bound
def _thread_cases():
    return _cases(np.random.default_rng(0), np.float32)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_n_threads_above_the_bound_raises(name):
    fn, args = _thread_cases()[name]
    op = name.split("[")[0]
    with pytest.raises(ValueError, match=rf"{op}: n_threads={MAX_THREADS + 1} is above the "
                                         rf"maximum of {MAX_THREADS} threads"):
        fn(*args, n_threads=MAX_THREADS + 1)
    with pytest.raises(ValueError, match=str(MAX_THREADS)):
        fn(*args, n_threads=10 ** 6)


@pytest.mark.parametrize("name", ["sparse_softmax_cross_entropy", "sparse_cross_entropy",
                                  "softmax", "softmax_backward", "sgd_update"])
def test_fused_n_threads_above_the_bound_raises(name):
    z = np.full((4, 3), 1 / 3)
    y = np.array([0, 1, 2, 0])
    calls = {
        "sparse_softmax_cross_entropy": lambda nt: fused.sparse_softmax_cross_entropy(z, y, n_threads=nt),
        "sparse_cross_entropy": lambda nt: fused.sparse_cross_entropy(z, y, n_threads=nt),
        "softmax": lambda nt: fused.softmax(z, n_threads=nt),
        "softmax_backward": lambda nt: fused.softmax_backward(z, z, n_threads=nt),
        "sgd_update": lambda nt: fused.sgd_update(z.copy(), z, 0.1, n_threads=nt),
    }
    calls[name](MAX_THREADS)   # the bound itself is accepted
    with pytest.raises(ValueError, match=rf"above the maximum of {MAX_THREADS} threads"):
        calls[name](MAX_THREADS + 1)


def test_the_bound_itself_is_accepted_and_cheap():
    x = np.random.default_rng(0).standard_normal(40000)
    a = np.random.default_rng(1).standard_normal((150, 200))
    for call in (lambda: ops.relu(x, n_threads=MAX_THREADS),        # lean path
                 lambda: ops.relu(x[::2], n_threads=MAX_THREADS),   # validated path
                 lambda: ops.matmul(a, a.T, n_threads=MAX_THREADS)):
        call()
    np.testing.assert_array_equal(ops.relu(x, n_threads=MAX_THREADS), np.maximum(x, 0))


def test_set_num_threads_above_the_bound_raises():
    old = pyblasnn.get_num_threads()
    try:
        with pytest.raises(ValueError, match=rf"set_num_threads: n={MAX_THREADS + 1} is above "
                                             rf"the maximum of {MAX_THREADS} threads"):
            pyblasnn.set_num_threads(MAX_THREADS + 1)
        assert pyblasnn.get_num_threads() == old
        pyblasnn.set_num_threads(MAX_THREADS)
        assert pyblasnn.get_num_threads() == MAX_THREADS
    finally:
        pyblasnn.set_num_threads(old)


def test_the_bound_is_one_constant():
    from pyblasnn import _validation
    from pyblasnn._kernels import threads
    assert MAX_THREADS == threads.MAX_THREADS == _validation.MAX_THREADS == _config.MAX_THREADS
    assert _config.config_info()["max_threads"] == MAX_THREADS


def test_omp_num_threads_above_the_bound_is_clamped():
    if not _config.config_info()["openmp"]:
        pytest.skip("serial build")
    out = _run("import pyblasnn, numpy as np; x = np.arange(-5., 40000.); "
               "assert (pyblasnn.relu(x) == np.maximum(x, 0)).all(); "
               "print(pyblasnn.get_num_threads())", OMP_NUM_THREADS=str(MAX_THREADS * 4))
    assert out == str(MAX_THREADS)


# ------------------------------------------------------- several Python threads at once
CONCURRENT_SCRIPT = """
import concurrent.futures, sys, numpy as np
sys.path.insert(0, {tests!r})
from pyblasnn import _config
from test_threads import _cases

cases = _cases(np.random.default_rng(0), np.float32)
want = {{}}
for name, (fn, args) in cases.items():
    r = fn(*args, n_threads=1)
    want[name] = [np.asarray(v).tobytes() for v in (r if isinstance(r, tuple) else (r,))]
_config.reset_path_counters()
blas = np.random.default_rng(1).standard_normal((300, 300))

def worker(seed):
    # every op, in its own order, on 2 threads (an OpenMP pool per Python thread: nested
    # in a Python pool), NumPy's BLAS pool interleaved
    order = np.random.default_rng(seed).permutation(sorted(cases))
    wrong = []
    for name in order:
        fn, args = cases[name]
        r = fn(*args, n_threads=2)
        got = [np.asarray(v).tobytes() for v in (r if isinstance(r, tuple) else (r,))]
        if got != want[name]:
            wrong.append(name)
        blas @ blas
    return wrong

with concurrent.futures.ThreadPoolExecutor(4) as pool:
    results = list(pool.map(worker, range(8)))
parallel = sum(p for _, p in _config.path_counters().values())
print(sum(map(len, results)), parallel, sorted({{name for w in results for name in w}}))
"""


def test_kernels_from_several_python_threads_at_once():
    """8 runs of every op (4 Python threads, each kernel on 2 OpenMP threads, NumPy's BLAS
    between calls) give the 1-thread results bit for bit, in a child process under a
    timeout (a deadlock fails the test instead of hanging the suite)."""
    script = CONCURRENT_SCRIPT.format(tests=TESTS)
    out = _run(script)
    wrong, parallel, names = out.split(" ", 2)
    assert wrong == "0", f"{wrong} results differ from 1 thread: {names}"
    if _config.config_info()["openmp"]:
        assert int(parallel) > 0, "no parallel region was entered: the test proves nothing"


# ------------------------------------------------------------------------------ fork
FORK_SCRIPT = """
import multiprocessing as mp, sys, numpy as np
sys.path.insert(0, {tests!r})
import pyblasnn
from pyblasnn import ops
import _mp_worker
if __name__ == "__main__":
    method = sys.argv[1]
    x = np.random.default_rng(0).standard_normal(100_000)
    ops.relu(x, n_threads=2)                     # the parent's OpenMP pool now exists
    parent = _mp_worker.kernels_in_worker(5)
    with mp.get_context(method).Pool(2) as pool:
        results = pool.map(_mp_worker.kernels_in_worker, [5, 6])
    for r in results:
        assert r["relu_ok"] and r["add_ok"], r
        expected = r["a"] @ r["b"]
        assert np.allclose(r["matmul"], expected, rtol=1e-12, atol=1e-12)
    # deterministic kernels: the worker's product equals the parent's bit for bit
    assert results[0]["matmul"].tobytes() == parent["matmul"].tobytes()
    print(method, [(r["threads"], r["forked_child"], r["parallel_entries"]) for r in results])
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_after_parallel_kernels(method, tmp_path):
    """A Pool after the parent ran kernels on two threads: no hang (timeout), NumPy's
    results; forked workers run serially (and say so), spawned ones keep their threads."""
    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    script = tmp_path / "pool.py"
    script.write_text(FORK_SCRIPT.format(tests=TESTS))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("OMP_NUM_THREADS", None)
    res = subprocess.run([sys.executable, str(script), method], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr[-3000:]
    facts = eval(res.stdout.strip().split(" ", 1)[1])
    for threads, forked, parallel in facts:
        if method == "fork":
            assert (threads, forked, parallel) == (1, True, 0)
        else:
            assert not forked
            if _config.config_info()["openmp"]:
                assert parallel > 0


def test_os_fork_child_runs_kernels_serially():
    """The issue's reproduction: relu on two threads, fork, relu on two threads in the
    child. Before the fix the child waited forever for the parent's pool threads."""
    code = """
import os, sys, numpy as np, pyblasnn
from pyblasnn import ops, _config
x = np.random.default_rng(0).standard_normal(100_000)
a = np.random.default_rng(1).standard_normal((200, 300))
ops.relu(x, n_threads=2); ops.matmul(a, a.T, n_threads=2)
pid = os.fork()
if pid == 0:
    _config.reset_path_counters()
    ok = (np.array_equal(ops.relu(x, n_threads=2), np.maximum(x, 0))
          and np.allclose(ops.matmul(a, a.T, n_threads=2), a @ a.T)
          and pyblasnn.get_num_threads() == 1 and _config.config_info()["forked_child"]
          and all(p == 0 for _, p in _config.path_counters().values()))
    import io; buf = io.StringIO(); pyblasnn.show_config(file=buf)
    ok = ok and "forked child: kernels run serially" in buf.getvalue()
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.WEXITSTATUS(status) == 0, status
assert not _config.config_info()["forked_child"]
print("ok")
"""
    assert _run(code) == "ok"


# ---- contention back-off ---------------------------------------------------------------

def test_thread_backoff_switch_and_state():
    from pyblasnn import _config
    state = _config.thread_backoff()
    assert set(state) == {"enabled", "contended_regions", "backing_off"}
    assert state["enabled"] is False            # conftest turns it off for the suite
    _config.set_thread_backoff(True)
    try:
        assert _config.thread_backoff()["enabled"] is True
        assert _config.thread_backoff()["backing_off"] is False   # history cleared
    finally:
        _config.set_thread_backoff(False)
    with pytest.raises(TypeError, match="set_thread_backoff: on must be a bool"):
        _config.set_thread_backoff(1)
    c = _config.kernel_constants()
    assert c["late_us"] > 0 and c["solo_us"] > 0 and c["solo_max_shift"] >= 0


def test_backoff_state_is_one_per_process():
    """Every kernel module reads and writes the same back-off state: contention seen by the
    GEMM sends the element-wise, loss and optimizer loops to one thread too (each module
    had its own copy and probed the busy team on its own)."""
    from pyblasnn import _config
    from pyblasnn._kernels import elementwise, linalg, loss, optim, threads
    modules = (elementwise, linalg, loss, optim)
    capsule = threads.backoff_capsule()
    assert type(capsule).__name__ == "PyCapsule"
    try:
        linalg.set_backoff(True)
        assert all(m.backoff_state()["enabled"] for m in modules)
        optim.set_backoff(False)
        assert not any(m.backoff_state()["enabled"] for m in modules)
        assert _config.thread_backoff()["enabled"] is False
    finally:
        _config.set_thread_backoff(False)


def test_backoff_rule_scales_with_the_work_time():
    """A late start or an end wait above PBN_LATE_US counts as contention for a short region;
    a long region allows its ordinary imbalance (1/SLACK_DIV of its work time) on top, so a
    100 ms product that waits 500 us for its partner keeps its threads."""
    from pyblasnn._kernels import threads
    c = pyblasnn._config.kernel_constants()
    late, div = c["late_us"], c["slack_div"]
    rule = threads.region_contended
    assert not rule(late, 0, 0) and not rule(0, late, 0)
    assert rule(late + 1, 0, 0) and rule(0, late + 1, 0)
    assert rule(late + 1, 0, div - 1) and not rule(late + 1, 0, div)
    assert not rule(500, 500, 100_000)
    limit = late + 100_000 // div
    assert not rule(limit, limit, 100_000)
    assert rule(limit + 1, 0, 100_000) and rule(0, limit + 1, 100_000)
    assert rule(0, 20_000, 100_000)          # a partner descheduled for most of a time slice


def test_a_team_woken_from_sleep_is_not_contention(thread_backoff, rng):
    """The first parallel region after the team sat idle (longer than idle_us) is never
    counted: waking sleeping pool threads is slow on a quiet machine too. Each call below
    follows such a pause, so none may count (it did: 7 of 10 after 0.12 s pauses)."""
    import time

    from pyblasnn import _config
    if pyblasnn._config._threads.num_procs() < 2 or not pyblasnn._config._threads.openmp_enabled():
        pytest.skip("needs OpenMP and 2 processors")
    a = rng.standard_normal((256, 784)).astype(np.float32)
    b = rng.standard_normal((784, 512)).astype(np.float32)
    pause = 20 * _config.kernel_constants()["idle_us"] * 1e-6
    before = _config.thread_backoff()["contended_regions"]
    _la = pyblasnn._kernels.linalg
    _la.reset_path_counters()
    for _ in range(10):
        time.sleep(pause)
        pyblasnn.matmul(a, b, n_threads=2)
    assert _la.path_counters()["gemm.packed"][1] == 10          # all ran on the team
    assert _config.thread_backoff()["contended_regions"] == before


def test_backoff_engages_under_load_and_keeps_results_bitwise(thread_backoff, rng):
    """With more busy processes than cores, 2-thread regions start late or wait at their end:
    the back-off must notice (it then runs kernels on one thread), and every result stays
    bitwise equal to the 1-thread result."""
    import subprocess
    import sys
    import time

    from pyblasnn import _config
    if pyblasnn._config._threads.num_procs() < 2 or not pyblasnn._config._threads.openmp_enabled():
        pytest.skip("needs OpenMP and 2 processors")
    a = rng.standard_normal((256, 784)).astype(np.float32)
    b = rng.standard_normal((784, 512)).astype(np.float32)
    x = rng.standard_normal(1 << 17)
    ref_mm, ref_relu = pyblasnn.matmul(a, b, n_threads=1), pyblasnn.relu(x, n_threads=1)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(2 * pyblasnn._config._threads.num_procs())]
    try:
        time.sleep(0.2)
        before = _config.thread_backoff()["contended_regions"]   # the count is cumulative
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and _config.thread_backoff()["contended_regions"] == before:
            for _ in range(20):
                assert np.array_equal(pyblasnn.matmul(a, b, n_threads=2), ref_mm)
                assert np.array_equal(pyblasnn.relu(x, n_threads=2), ref_relu)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert _config.thread_backoff()["contended_regions"] > before
    assert np.array_equal(pyblasnn.matmul(a, b, n_threads=2), ref_mm)


def test_backoff_off_by_environment():
    import subprocess
    import sys
    code = ("import pyblasnn; from pyblasnn import _config; "
            "print(_config.thread_backoff()['enabled'])")
    env = dict(os.environ, PYBLASNN_THREAD_BACKOFF="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False"]
    env.pop("PYBLASNN_THREAD_BACKOFF")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True"]


def test_idle_spin_default_only_when_unset():
    """pyblasnn picks GOMP_SPINCOUNT only when neither it nor OMP_WAIT_POLICY is set, and does
    not leave it in the environment of child processes."""
    import subprocess
    import sys
    code = ("import os, pyblasnn, pyblasnn._kernels as k; "
            "print(k.SPINCOUNT_DEFAULTED, os.environ.get('GOMP_SPINCOUNT'))")
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    for extra, expected in (({}, ["True", "None"]), ({"OMP_WAIT_POLICY": "passive"}, ["False", "None"]),
                            ({"GOMP_SPINCOUNT": "7"}, ["False", "7"])):
        out = subprocess.run([sys.executable, "-c", code], env=dict(base, **extra),
                             capture_output=True, text=True, check=True).stdout.split()
        assert out == expected, extra
