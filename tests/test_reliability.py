"""Regression tests of the reliability defects: a collapsed-rows matmul reading the wrong
batch (and past its buffer), packing buffers leaked per thread, index dtypes that wrapped.

Memory is read from /proc/self/statm (resident pages), so the leak tests run on Linux only.
"""
import os
import threading

import numpy as np
import pytest

from pyblasnn import fused, ops
from pyblasnn._kernels import linalg as _la

from conftest import assert_matmul_close


# ------------------------------------------------------- matmul: size-1 axes and strides
def test_matmul_size1_axis_with_its_neighbours_stride():
    """The issue's example: base[:, ::2] keeps a length-1 axis whose stride equals the axis
    before it, (3, 1, 2, 3) with strides (96, 96, 24, 8); the collapsed-rows shortcut took
    it for one matrix of row stride 24 and returned rows of the wrong batch."""
    base = np.arange(36.0).reshape(3, 2, 2, 3)
    a = base[:, ::2]
    assert a.strides == (96, 96, 24, 8)
    got = ops.matmul(a, np.eye(3))
    np.testing.assert_array_equal(got[:, 0, :, 0], [[0, 3], [12, 15], [24, 27]])
    np.testing.assert_array_equal(got, np.matmul(a, np.eye(3)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_reversed_batch_reads_only_its_view(dtype):
    """[::-1, ::-2] of a (B, 2, m, k) array: reading forward from the data pointer walked
    past the buffer (a segfault for a large one); here the buffer sits inside NaN padding,
    so any read outside the view shows up as NaN."""
    big = np.full((9, 2, 16, 40), np.nan, dtype)
    big[1:8] = np.random.default_rng(0).standard_normal((7, 2, 16, 40))
    a = big[1:8][::-1, ::-2]
    w = np.random.default_rng(1).standard_normal((40, 24)).astype(dtype)
    assert_matmul_close(ops.matmul(a, w), a, w, dtype)
    dc = np.random.default_rng(2).standard_normal(a.shape[:-1] + (24,)).astype(dtype)
    da, dw = ops.matmul_backward(dc, a, w)
    # element-wise rounding bound (cancelling sums make a plain rtol fail near zero)
    ref64 = dc.astype(np.float64) @ w.T.astype(np.float64)
    bound = (np.abs(dc).astype(np.float64) @ np.abs(w.T).astype(np.float64)) * (
        64 * np.finfo(dtype).eps)
    assert not np.isnan(da).any() and np.all(np.abs(da - ref64) <= bound)
    ref = np.einsum("bimk,bimn->kn", a.astype(np.float64), dc.astype(np.float64))
    np.testing.assert_allclose(dw, ref, rtol=1e-4 if dtype == np.float32 else 1e-11, atol=1e-4)
    # dc as the strided view: the shared-b GEMM over all rows must not collapse it wrongly
    dcv = np.full((9, 2, 16, 24), np.nan, dtype)
    dcv[1:8, ::-2] = dc[::-1]
    dcv = dcv[1:8][::-1, ::-2]
    np.testing.assert_array_equal(dcv, dc)
    da2, dw2 = ops.matmul_backward(dcv, a, w)
    np.testing.assert_array_equal(da2, da)
    np.testing.assert_array_equal(dw2, dw)


def test_rows_view_is_a_view_exactly_when_numpy_reshapes_without_copy():
    """ops._rows_view against NumPy's own no-copy reshape on size-1 axes with odd strides."""
    base = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    views = [base, base[:, :1], base[:1], base[:, ::2], base[::-1, :1], base[:, :1, ::-1],
             base.transpose(1, 0, 2, 3), base[:, :, :1], base[:1, :1], base[:, ::3]]
    for v in views:
        rows = ops._rows_view(v)
        try:
            ref = v.reshape(-1, v.shape[-1], copy=False)
        except ValueError:
            ref = None
        assert (rows is None) == (ref is None), v.strides
        if rows is not None:
            np.testing.assert_array_equal(rows, v.reshape(-1, v.shape[-1]))


# ------------------------------------------------------------------ memory per thread
def _rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")


@linux_only
@pytest.mark.parametrize("n_threads", [1, 2])
def test_short_lived_threads_do_not_leak_packing_buffers(n_threads):
    """Each thread that ran a GEMM kept its packing buffer (~1.6 MiB here, up to 16 MiB)
    after it exited: +197 MiB over 300 threads before the fix (the issue: +772 MiB over 500
    with a larger product). It is freed at thread exit now, for the OpenMP pool threads of
    each Python thread too."""
    a = np.random.default_rng(0).standard_normal((16, 784)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((784, 2048)).astype(np.float32)
    expected = ops.matmul(a, b, n_threads=1)

    def work():
        assert ops.matmul(a, b, n_threads=n_threads).tobytes() == expected.tobytes()

    def run(count):
        for _ in range(count):
            t = threading.Thread(target=work)
            t.start()
            t.join()

    run(20)                                   # allocator arenas and pools warmed up
    live, rss = _la.scratch_buffers(), _rss_mib()
    run(500)
    grown = _rss_mib() - rss
    print(f"RSS {rss:.1f} MiB, {grown:+.1f} MiB after 500 threads (n_threads={n_threads}); "
          f"packing buffers alive {live} -> {_la.scratch_buffers()}")
    assert _la.scratch_buffers() <= live + 2 * n_threads   # the leaked count: +500 before
    assert grown < 48, f"+{grown:.0f} MiB over 500 threads"


def _kernel_calls():
    """name -> a call of that public kernel (ops.*, fused.*; [variant] for a second path)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 30)), rng.standard_normal((20, 30))
    row, w, bias = rng.standard_normal(30), rng.standard_normal((30, 12)), rng.standard_normal(12)
    x4, idx = rng.standard_normal((2, 3, 4, 30)), rng.integers(0, 20, 8)
    z = rng.standard_normal((20, 10))
    labels = rng.integers(0, 10, 20)
    p = fused.softmax(z)
    param, grad = rng.standard_normal(300), rng.standard_normal(300)
    velocity, acc, mom = np.zeros(300), np.zeros(300), np.zeros(300)
    xs = rng.standard_normal((64, 40)).astype(np.float32)     # mostly zeros: the fused path
    xs[rng.random(xs.shape) < 0.85] = 0.0
    dh, w1, v1 = (rng.standard_normal(s).astype(np.float32) for s in ((64, 48), (40, 48), (40, 48)))
    return {
        "relu": lambda: ops.relu(x), "relu_backward": lambda: ops.relu_backward(y, x),
        "add": lambda: ops.add(x, row), "subtract": lambda: ops.subtract(x, y[::-1]),
        "multiply": lambda: ops.multiply(x, 2.0), "divide": lambda: ops.divide(x.T, y.T),
        "maximum": lambda: ops.maximum(x, row),
        "add_backward": lambda: ops.add_backward(x, x.shape, row.shape),
        "subtract_backward": lambda: ops.subtract_backward(x, x.shape, row.shape),
        "multiply_backward": lambda: ops.multiply_backward(x, x, row),
        "divide_backward": lambda: ops.divide_backward(x, x, row + 3.0),
        "maximum_backward": lambda: ops.maximum_backward(x, x, y),
        "sum_to_shape": lambda: ops.sum_to_shape(x4, (3, 1, 30)),
        "matmul": lambda: ops.matmul(x, w), "matmul[nd]": lambda: ops.matmul(x4, w),
        "matmul_backward": lambda: ops.matmul_backward(ops.matmul(x4, w), x4, w),
        "dot": lambda: ops.dot(x4, w), "dot_backward": lambda: ops.dot_backward(x @ w, x, w),
        "dense": lambda: ops.dense(x, w, bias, "relu", rows=idx),
        "take_rows": lambda: ops.take_rows(x, idx),
        "fused.sparse_softmax_cross_entropy":
            lambda: fused.sparse_softmax_cross_entropy(z, labels),
        "fused.sparse_cross_entropy": lambda: fused.sparse_cross_entropy(p, labels),
        "fused.softmax": lambda: fused.softmax(z),
        "fused.softmax_backward": lambda: fused.softmax_backward(z, p),
        "fused.sgd_update": lambda: fused.sgd_update(param, grad, 1e-9),
        "fused.sgd_momentum_update":
            lambda: fused.sgd_momentum_update(param, velocity, grad, 1e-9, 0.9),
        "fused.rmsprop_update": lambda: fused.rmsprop_update(param, acc, grad, 1e-9, 0.9, 1e-7,
                                                             momentum=0.5, momentum_buffer=mom),
        "fused.matmul_sgd_update":
            lambda: fused.matmul_sgd_update(xs.T, dh, w1, 1e-9, 0.9, v1),
        "fused.matmul_sgd_update[unfused]": lambda: fused.matmul_sgd_update(x.T, y, x.T @ y,
                                                                            1e-9),
    }


def test_every_public_kernel_is_in_the_memory_test():
    names = {name.split("[")[0] for name in _kernel_calls()}
    assert names == set(ops.__all__) | {f"fused.{n}" for n in fused.__all__}


@linux_only
def test_ten_thousand_calls_of_each_kernel_keep_memory_flat():
    calls = _kernel_calls()
    for fn in calls.values():
        for _ in range(500):
            fn()
    rss = _rss_mib()
    for fn in calls.values():
        for _ in range(10_000):
            fn()
    grown = _rss_mib() - rss
    print(f"RSS {rss:.1f} MiB, {grown:+.1f} MiB after 10,000 calls of each of "
          f"{len(calls)} kernel calls")
    assert grown < 16, f"+{grown:.1f} MiB over 10,000 calls of each"


@linux_only
def test_many_training_steps_keep_memory_flat():
    """fit (shuffled gather, fused loss, momentum), evaluate and predict reuse their
    workspaces: 10,000 steps later the process is no bigger."""
    import pyblasnn
    from pyblasnn import layers, optimizers
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 64)).astype(np.float32)
    y = rng.integers(0, 10, 1000).astype(np.uint8)
    model = pyblasnn.Sequential([layers.Dense(128, activation="relu"),
                                 layers.Dense(10, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=5, batch_size=50, verbose=0, seed=0)      # 100 steps: warm
    model.evaluate(x, y, verbose=0)
    model.predict(x)
    rss = _rss_mib()
    steps_before = model.optimizer.iterations
    for _ in range(5):
        model.fit(x, y, epochs=100, batch_size=50, verbose=0, seed=0)  # 2,000 steps each
        model.evaluate(x, y, verbose=0)
        model.predict(x)
    steps = model.optimizer.iterations - steps_before
    grown = _rss_mib() - rss
    print(f"RSS {rss:.1f} MiB, {grown:+.1f} MiB after {steps:,} training steps")
    assert steps == 10_000
    assert grown < 16, f"+{grown:.1f} MiB over {steps} training steps"


# ------------------------------------------------------------------- integer indices
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def _expected_rows(x, idx):
    """x[indices] by the indices' values (Python ints), or IndexError when one is out of
    range. Not x[idx] itself: NumPy casts uint64 indices to intp first, so it too returns
    x[-1] for 2**64 - 1 (and reports 2**63 as -2**63); an index's value is what counts."""
    values = [int(v) for v in idx]
    if any(not -x.shape[0] <= v < x.shape[0] for v in values):
        return IndexError
    return x[values]


def _boundary_values(dtype, n_rows):
    info = np.iinfo(dtype)
    values = {0, n_rows - 1, n_rows, n_rows + 1, info.max, info.max - 1}
    if info.min < 0:
        values |= {-1, -n_rows, -n_rows - 1, info.min, info.min + 1}
    else:
        values |= {2 ** (8 * np.dtype(dtype).itemsize - 1)}   # the first value intp wraps
    return sorted(v for v in values if info.min <= v <= info.max)


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_row_indices_of_every_integer_dtype(dtype):
    """take_rows and dense(rows=) select the rows the index values name and raise IndexError
    (NumPy's error for an index out of bounds) for the rest; before, uint64 2**64 - 1 was
    cast to intp (-1) first and returned x[-1]."""
    n_rows = 5
    x = np.arange(n_rows * 3, dtype=np.float64).reshape(n_rows, 3)
    eye = np.eye(3)
    for value in _boundary_values(dtype, n_rows):
        idx = np.array([0, value], dtype=dtype)
        expected = _expected_rows(x, idx)
        if expected is IndexError:
            with pytest.raises(IndexError, match=f"index {value} is out of bounds"):
                ops.take_rows(x, idx)
            with pytest.raises(IndexError, match=f"index {value} is out of bounds"):
                ops.dense(x, eye, rows=idx)
        else:
            np.testing.assert_array_equal(ops.take_rows(x, idx), expected)
            np.testing.assert_array_equal(ops.dense(x, eye, rows=idx), expected)


def test_uint64_max_index_raises_index_error():
    x = np.arange(6.0).reshape(3, 2)
    with pytest.raises(IndexError, match="take_rows: indices out of range for 3 rows"):
        ops.take_rows(x, np.array([2 ** 64 - 1], np.uint64))
    with pytest.raises(IndexError, match="dense: rows out of range"):
        ops.dense(x, np.eye(2), rows=np.array([2 ** 63], np.uint64))
