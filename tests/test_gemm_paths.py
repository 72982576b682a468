"""The GEMM engine's small-n paths, reached directly through the low-level gemm wrapper.

n <= 16 with A rows contiguous in k and k >= 64 takes the float dot-product kernel
(vectorised along k, k tail by masked loads, rows in blocks of 3, B^T read in place when
B = W.T). n < 16, m >= 32 with A a transposed view (unit row stride) and no bias / gather
solves C^T = B^T A^T. Each is checked against float64 NumPy with accumulate, bias, relu,
gathered rows, strided C, and 1 vs 2 vs 7 threads bitwise.
"""
import numpy as np
import pytest

from pyblasnn._kernels import linalg as _la

from conftest import eps


def _ref(a, b, c0, accumulate, bias, relu):
    r = a.astype(np.float64) @ b.astype(np.float64)
    if accumulate:
        r = r + c0
    if bias is not None:
        r = r + bias
    return np.maximum(r, 0) if relu else r


def _check(a, b, c, accumulate=False, bias=None, relu=False, rows=None, dtype=np.float32):
    c0 = c.copy()
    outs = []
    for nt in (1, 2, 7):
        c[...] = c0
        _la.gemm(a, b, c, accumulate, bias, relu, rows, nt)
        outs.append(c.copy())
    for o in outs[1:]:
        assert np.array_equal(o.view(np.uint8), outs[0].view(np.uint8)), "threads differ bitwise"
    aa = a if rows is None else a[rows]
    ref = _ref(aa, b, c0, accumulate, bias, relu)
    k = a.shape[1]
    bound = 2 * (k + 3) * eps(dtype) * (np.abs(aa).astype(np.float64) @ np.abs(b).astype(np.float64)
                                        + (np.abs(c0) if accumulate else 0)
                                        + (np.abs(bias) if bias is not None else 0)) + 1e-30
    assert np.all(np.abs(outs[0] - ref) <= bound)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 128, 131])
@pytest.mark.parametrize("n", [1, 3, 4, 5, 10, 16])
@pytest.mark.parametrize("k", [64, 67, 512, 1001])
def test_dot_path(m, n, k):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    _check(a, b, c.copy())
    _check(a, b, c.copy(), accumulate=True, bias=bias, relu=True)
    bt = np.ascontiguousarray(b.T).T                    # B = W.T: read in place
    _check(a, bt, c.copy(), bias=bias)
    cs = np.zeros((m, 2 * n), np.float32)[:, ::2]       # strided C
    _check(a, b, cs, relu=True)
    rows = rng.integers(0, m, size=max(1, m - 1)).astype(np.intp)
    _check(a, b, np.zeros((len(rows), n), np.float32), bias=bias, rows=rows)


def test_dot_path_relu_keeps_nan():
    a = np.ones((5, 64), np.float32)
    a[2, 7] = np.nan
    b = np.ones((64, 10), np.float32)
    c = np.empty((5, 10), np.float32)
    _la.gemm(a, b, c, False, np.zeros(10, np.float32), True, None, 2)
    assert np.isnan(c[2]).all() and not np.isnan(c[[0, 1, 3, 4]]).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [32, 33, 512])
@pytest.mark.parametrize("n", [1, 6, 10, 15])
@pytest.mark.parametrize("k", [1, 128, 257])
def test_swap_path(m, n, k, dtype):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    h = rng.standard_normal((k, m)).astype(dtype)       # A = h.T: unit row stride
    d = rng.standard_normal((k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    _check(h.T, d, c.copy(), dtype=dtype)
    _check(h.T, d, c.copy(), accumulate=True, relu=True, dtype=dtype)
    _check(h.T, d[:, ::-1], c.copy(), dtype=dtype)      # negative column stride of B
    _check(h.T, d, np.zeros((m, 2 * n), dtype)[:, ::2], dtype=dtype)
    _check(h.T, d, np.zeros((n, m), dtype).T, dtype=dtype)  # C transposed view


# --- the matrix-vector path (gemv.c): C with one column (n == 1) or one row (m == 1) ---
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 7, 31, 32, 33, 257, 16384, 16385, 100003])
@pytest.mark.parametrize("layout", ["rows", "cols", "strided"])
def test_gemv_one_column(dtype, k, layout):
    """n == 1: 'rows' takes the dot loop, 'cols' (A = X.T) the axpy loop, 'strided' neither."""
    rng = np.random.default_rng(k)
    m = 1 if k >= 16384 else 37
    base = rng.standard_normal((m, k) if layout != "cols" else (k, m)).astype(dtype)
    a = base if layout == "rows" else (base.T if layout == "cols" else
                                       rng.standard_normal((m, 2 * k)).astype(dtype)[:, ::2])
    b = rng.standard_normal((k, 1)).astype(dtype)
    c = rng.standard_normal((m, 1)).astype(dtype)
    _check(a, b, c, dtype=dtype)
    _check(a, b, c, accumulate=True, dtype=dtype)
    bias = np.array([0.25], dtype)
    _check(a, b, c, bias=bias, relu=True, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 9, 300, 700])
@pytest.mark.parametrize("b_layout", ["row_major", "transposed"])
def test_gemv_one_row(dtype, n, b_layout):
    """m == 1: x @ W (axpy over W's rows) and x @ W.T (dots with W's rows), with epilogue."""
    rng = np.random.default_rng(n)
    k = 300
    a = rng.standard_normal((1, k)).astype(dtype)
    b = (rng.standard_normal((k, n)) if b_layout == "row_major"
         else rng.standard_normal((n, k)).T).astype(dtype)
    c = np.zeros((1, n), dtype)
    _check(a, b, c, dtype=dtype)
    bias = rng.standard_normal(n).astype(dtype)
    _check(a, b, c, accumulate=True, bias=bias, relu=True, dtype=dtype)
    c_strided = np.zeros((1, 2 * n), dtype)[:, ::2]
    _check(a, b, c_strided, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemv_gathered_rows(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 40)).astype(dtype)
    w = rng.standard_normal((40, 1)).astype(dtype)
    rows = np.array([4, 4, 49, 0, 17], dtype=np.intp)
    c = np.zeros((5, 1), dtype)
    _check(x, w, c, bias=np.array([-0.5], dtype), relu=True, rows=rows, dtype=dtype)
    single = np.array([23], dtype=np.intp)
    c1 = np.zeros((1, 7), dtype)
    _check(x, rng.standard_normal((40, 7)).astype(dtype), c1, rows=single, dtype=dtype)


# --- the batched path's unpacked kernel for small products (gemm_tiny.c: n = 8, 16, 32, 64
# for float32, 8, 16, 32 for float64; m, k <= 64). m covers every leftover-row group
# (rows are grouped by 8, 6 or 3), 65 is past the limit (packed path). ---
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [8, 16, 32, 64])
@pytest.mark.parametrize("m, k", [(1, 1), (5, 7), (7, 3), (16, 16), (17, 9), (32, 32),
                                  (64, 64), (65, 16), (16, 65)])
@pytest.mark.parametrize("a_layout", ["c", "transposed"])
@pytest.mark.parametrize("portable", [False, True], ids=["default", "portable"])
def test_batched_small_products(dtype, n, m, k, a_layout, portable):
    from pyblasnn import ops
    from pyblasnn._kernels import linalg
    linalg.force_portable(portable)
    try:
        _check_batched_small(dtype, n, m, k, a_layout, ops)
    finally:
        linalg.force_portable(False)


def _check_batched_small(dtype, n, m, k, a_layout, ops):
    rng = np.random.default_rng(m * 100 + k)
    a = rng.standard_normal((9, m, k)).astype(dtype)
    if a_layout == "transposed":
        a = np.ascontiguousarray(np.swapaxes(a, 1, 2)).swapaxes(1, 2)
    b = rng.standard_normal((9, k, n)).astype(dtype)
    outs = [ops.matmul(a, b, n_threads=t) for t in (1, 2, 7)]
    for o in outs[1:]:
        assert np.array_equal(o.view(np.uint8), outs[0].view(np.uint8))
    ref = a.astype(np.float64) @ b.astype(np.float64)
    bound = 2 * (k + 2) * eps(dtype) * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
    assert outs[0].shape == (9, m, n) and outs[0].dtype == dtype
    assert np.all(np.abs(outs[0] - ref) <= bound + 1e-30)
    # a broadcast operand (the same B for every batch) takes the same path
    shared = ops.matmul(a, b[:1])
    np.testing.assert_allclose(shared, a.astype(np.float64) @ b[0].astype(np.float64),
                               rtol=0, atol=float(np.max(bound)) * 4 + 1e-30)


# --- the zero-skipping float32 path (gemm_sparse.c): A at most 30% nonzeros, n >= 32 ---
def _sparse(rng, shape, density):
    a = rng.standard_normal(shape).astype(np.float32)
    a[rng.random(shape) >= density] = 0.0
    return a


@pytest.mark.parametrize("m, k", [(1, 784), (5, 7), (33, 100), (128, 784)])
@pytest.mark.parametrize("n", [32, 40, 63, 64, 65, 200, 512])
def test_sparse_a_path(m, k, n):
    rng = np.random.default_rng(m * 7 + k * 3 + n)
    a = _sparse(rng, (m, k), 0.2)
    b = rng.standard_normal((k, n)).astype(np.float32)
    before = _la.sparse_products()
    _check(a, b, np.zeros((m, n), np.float32))
    if m > 1 and _la.kernel_name() != "portable":   # one row goes to the matrix-vector path
        assert _la.sparse_products() > before
    _check(a, b, rng.standard_normal((m, n)).astype(np.float32), accumulate=True)
    bias = rng.standard_normal(n).astype(np.float32)
    _check(a, b, np.zeros((m, n), np.float32), bias=bias, relu=True)


def test_sparse_a_gathered_and_transposed():
    """The MNIST layer-1 products: x[idx] @ W (+ b, relu) and x.T @ dh."""
    rng = np.random.default_rng(11)
    x = _sparse(rng, (300, 784), 0.19)
    idx = rng.permutation(300)[:128].astype(np.intp)
    w = rng.standard_normal((784, 512)).astype(np.float32)
    bias = rng.standard_normal(512).astype(np.float32)
    before = _la.sparse_products()
    _check(x, w, np.zeros((128, 512), np.float32), bias=bias, relu=True, rows=idx)
    dh = rng.standard_normal((128, 512)).astype(np.float32)
    _check(x[:128].T, dh, np.zeros((784, 512), np.float32))
    if _la.kernel_name() != "portable":
        assert _la.sparse_products() >= before + 2


def test_sparse_a_keeps_nan_and_inf_semantics():
    """0 * inf is NaN: a B with inf / NaN takes the dense path; NaN in A propagates."""
    rng = np.random.default_rng(12)
    a = _sparse(rng, (64, 100), 0.1)
    a[3, :] = 0.0
    b = rng.standard_normal((100, 64)).astype(np.float32)
    b[7, 5] = np.inf
    b[9, 6] = np.nan
    c = np.zeros((64, 64), np.float32)
    _la.gemm(a, b, c, False, None, False, None, 2)
    with np.errstate(invalid="ignore"):
        ref = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(c), np.isnan(ref))   # row 3: 0 * inf -> NaN
    assert np.isnan(c[3, 5]) and np.isnan(c[3, 6])
    a2 = _sparse(rng, (64, 100), 0.1)
    a2[10, 20] = np.nan
    b2 = rng.standard_normal((100, 64)).astype(np.float32)
    c2 = np.zeros((64, 64), np.float32)
    _la.gemm(a2, b2, c2, False, None, False, None, 2)
    assert np.all(np.isnan(c2[10])) and not np.any(np.isnan(np.delete(c2, 10, axis=0)))


def test_sparse_and_dense_paths_agree_with_forced_portable():
    rng = np.random.default_rng(13)
    a = _sparse(rng, (128, 784), 0.2)
    b = rng.standard_normal((784, 512)).astype(np.float32)
    fast = np.zeros((128, 512), np.float32)
    _la.gemm(a, b, fast, False, None, False, None, 2)
    _la.force_portable(True)
    try:
        slow = np.zeros_like(fast)
        _la.gemm(a, b, slow, False, None, False, None, 2)
    finally:
        _la.force_portable(False)
    bound = 2 * 787 * eps(np.float32) * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
    assert np.all(np.abs(fast.astype(np.float64) - slow) <= bound)
