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

import pyblasnn
from pyblasnn import ops

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
