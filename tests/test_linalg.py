"""matmul, dot, dense (+ backward values) against NumPy.

The shape sweeps straddle the packed GEMM engine's register tiles (MR rows, NR columns),
its depth blocks KC, its row blocks MC (all per dtype, read from the compiled engine), its
"pack A or not" switch (n > 64) and NC, so a wrong edge tile, a dropped k-block or a
mis-sized packing buffer shows up as an error far above the rounding bound.
"""
import numpy as np
import pytest

from pyblasnn import ops
from pyblasnn._kernels import linalg as _la

from conftest import KC, MC, MR, NR, assert_matmul_close, assert_meta, eps, randn, strided_views


def _around(*sizes):
    """Each size, one below and one above (the edges of a tile or block)."""
    return {s + d for s in sizes for d in (-1, 0, 1) if s + d >= 1}


# Derived from the engine's compiled block sizes (conftest reads them), so the sweep keeps
# straddling the edges when a block size is retuned.
M_SIZES = sorted({1, 13} | _around(*MR.values()) | _around(*MC.values())
                 | {2 * mc + 1 for mc in MC.values()})
N_SIZES = sorted({1, 33, 65, 129} | _around(*NR.values()))
K_SIZES = sorted({1} | _around(*KC.values()) | {2 * kc + 1 for kc in KC.values()})


@pytest.fixture(params=[False, True], ids=["default", "portable"])
def gemm_path(request):
    """Run a test on the dispatched (SIMD) GEMM path and on the forced portable path."""
    _la.force_portable(request.param)
    yield request.param
    _la.force_portable(False)


@pytest.mark.parametrize("m", M_SIZES)
def test_matmul_tile_edges(m, dtype, rng, gemm_path):
    """Every (m, n, k) in the sweep, contiguous operands, both GEMM paths."""
    a_full = randn(rng, (m, max(K_SIZES)), dtype)
    b_full = randn(rng, (max(K_SIZES), max(N_SIZES)), dtype)
    for k in K_SIZES:
        for n in N_SIZES:
            a = np.ascontiguousarray(a_full[:, :k])
            b = np.ascontiguousarray(b_full[:k, :n])
            try:
                assert_matmul_close(ops.matmul(a, b), a, b, dtype)
            except AssertionError as exc:
                raise AssertionError(f"(m, n, k) = {(m, n, k)}: {exc}") from None


LAYOUT_SHAPES = [(1, 1, 1), (7, 17, 257), (13, 9, 255), (145, 33, 3), (6, 65, 256), (73, 65, 513),
                 (289, 16, 7), (12, 8, 300)]


@pytest.mark.parametrize("mnk", LAYOUT_SHAPES, ids=str)
def test_matmul_layouts(mnk, dtype, rng, gemm_path):
    """Transposed (Fortran), step-2, negatively strided and transposed-view operands."""
    m, n, k = mnk
    a_views = strided_views(rng, (m, k), dtype)
    b_views = strided_views(rng, (k, n), dtype)
    for an, a in a_views:
        for bn, b in b_views:
            try:
                assert_matmul_close(ops.matmul(a, b), a, b, dtype)
            except AssertionError as exc:
                raise AssertionError(f"a {an}, b {bn}, (m, n, k) = {mnk}: {exc}") from None


@pytest.mark.parametrize("mnk", [(13, 17, 257), (145, 65, 300), (7, 129, 33), (128, 10, 512)], ids=str)
def test_portable_and_default_paths_agree(mnk, dtype, rng):
    m, n, k = mnk
    a = randn(rng, (m, k), dtype)
    b = randn(rng, (k, n), dtype)[:, ::-1]
    _la.force_portable(True)
    try:
        portable = ops.matmul(a, b)
        assert _la.kernel_name() == "portable" or _la.kernel_name() == "reference"
    finally:
        _la.force_portable(False)
    default = ops.matmul(a, b)
    assert_matmul_close(portable, a, b, dtype)
    assert_matmul_close(default, a, b, dtype)
    # the two differ at most by two rounding bounds
    bound = 2 * (k + 2) * eps(dtype) * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
    assert np.all(np.abs(portable.astype(np.float64) - default) <= bound)


@pytest.mark.parametrize("shapes", [((128, 784), (784, 512)), ((128, 512), (512, 10)),
                                    ((784, 128), (128, 512)), ((7, 3), (3, 4081))], ids=str)
def test_matmul_mlp_shapes(shapes, dtype, rng):
    """The MNIST network's forward, dW and logits GEMMs; and n beyond NC=4080."""
    a = randn(rng, shapes[0], dtype)
    b = randn(rng, shapes[1], dtype)
    assert_matmul_close(ops.matmul(a, b), a, b, dtype)
    # dW = x^T @ dy as the backward pass computes it: transposed views, never copies
    at = np.ascontiguousarray(a.T).T
    assert_matmul_close(ops.matmul(at, b), at, b, dtype)
    bt = np.asfortranarray(b)
    assert_matmul_close(ops.matmul(a, bt), a, bt, dtype)


MATMUL_SHAPES = [
    ((6,), (6,)), ((0,), (0,)), ((5,), (5, 3)), ((4, 5), (5,)), ((1, 6), (6, 1)),
    ((0, 3), (3, 4)), ((4, 0), (0, 5)), ((4, 3), (3, 0)), ((3, 4, 5), (3, 5, 6)),
    ((1, 4, 5), (7, 5, 6)), ((4, 5), (7, 5, 6)), ((7, 4, 5), (5, 6)), ((7, 4, 5), (1, 5, 6)),
    ((2, 1, 4, 5), (3, 5, 6)), ((5,), (3, 5, 6)), ((3, 4, 5), (5,)), ((0, 4, 5), (5, 6)),
    ((3, 0, 5), (3, 5, 2)), ((2, 3, 4, 0), (2, 3, 0, 5)), ((2, 1, 7, 9), (1, 3, 9, 17)),
    ((64, 13, 17), (64, 17, 9)), ((3, 145, 257), (257, 17)), ((2, 7, 300), (2, 300, 33)),
    # two 3-D stacks of one batch size take the lean path: empty batch, k = 0, tiny widths
    ((0, 4, 5), (0, 5, 6)), ((3, 4, 0), (3, 0, 5)), ((5, 16, 16), (5, 16, 16)),
    ((9, 7, 32), (9, 32, 8)), ((2, 1, 3), (2, 3, 1)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_numpy_semantics(shapes, dtype, rng):
    a = randn(rng, shapes[0], dtype)
    b = randn(rng, shapes[1], dtype)
    got = ops.matmul(a, b)
    expected = np.matmul(a, b)
    assert type(got) is type(expected)  # 1-D @ 1-D is a scalar, as in numpy
    assert_matmul_close(got, a, b, dtype)


@pytest.mark.parametrize("shapes", [((3, 4, 5), (3, 5, 6)), ((2, 1, 7, 9), (1, 3, 9, 17)),
                                    ((7, 13, 5), (5, 9)), ((4, 5), (7, 5, 6))], ids=str)
def test_matmul_batched_views(shapes, dtype, rng):
    for an, a in strided_views(rng, shapes[0], dtype):
        for bn, b in strided_views(rng, shapes[1], dtype):
            try:
                assert_matmul_close(ops.matmul(a, b), a, b, dtype)
            except AssertionError as exc:
                raise AssertionError(f"a {an}, b {bn}: {exc}") from None
    # broadcast batch given as a stride-0 view
    a = np.broadcast_to(randn(rng, shapes[0][-2:], dtype), (3,) + shapes[0][-2:])
    b = randn(rng, (3,) + shapes[1][-2:], dtype)
    assert_matmul_close(ops.matmul(a, b), a, b, dtype)


def test_matmul_does_not_read_out_and_k0(dtype, rng):
    """C := A @ B must overwrite out (beta = 0: NaN garbage in out must not leak in)."""
    for m, n, k in [(7, 17, 5), (145, 65, 257), (3, 4, 0)]:
        a = randn(rng, (m, k), dtype)
        b = randn(rng, (k, n), dtype)
        out = np.full((m, n), np.nan, dtype)
        assert ops.matmul(a, b, out=out) is out
        assert_matmul_close(out, a, b, dtype)
    out = np.full((2, 3, 4), np.nan, dtype)
    ops.matmul(np.ones((2, 3, 0), dtype), np.ones((0, 4), dtype), out=out)
    np.testing.assert_array_equal(out, 0)


def test_matmul_nan_inf_propagate(dtype, rng):
    m, n, k = 13, 33, 257
    a = randn(rng, (m, k), dtype)
    b = randn(rng, (k, n), dtype)
    a[2, 100] = np.nan
    a[7, 3] = np.inf
    b[200, 20] = -np.inf
    b[5, 31] = np.nan
    got = ops.matmul(a, b)
    with np.errstate(invalid="ignore"):
        expected = a.astype(np.float64) @ b.astype(np.float64)
    assert_meta(got, (m, n), dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(expected))
    finite = np.isfinite(expected)
    assert finite.sum() > 0.5 * finite.size
    bound = (k + 2) * eps(dtype) * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))
    assert np.all(np.abs(got[finite] - expected[finite]) <= bound[finite])


@pytest.mark.parametrize("which", ["a", "b"])
def test_matmul_out_aliasing_an_input(which, dtype, rng):
    a = randn(rng, (19, 19), dtype)
    b = randn(rng, (19, 19), dtype)
    a0, b0 = a.copy(), b.copy()
    out = a if which == "a" else b
    assert ops.matmul(a, b, out=out) is out
    assert_matmul_close(out, a0, b0, dtype)
    # out overlapping a batched operand partially
    buf = randn(rng, (3, 5, 5), dtype)
    x, y = buf[:2].copy(), buf[1:].copy()
    ops.matmul(buf[:2], buf[1:], out=buf[1:])
    assert_matmul_close(buf[1:], x, y, dtype)


# -------------------------------------------------------------------------------- dot
DOT_SHAPES = [((6,), (6,)), ((0,), (0,)), ((4, 6), (6,)), ((6,), (6, 3)), ((4, 6), (6, 3)),
              ((2, 3, 4, 5), (5,)), ((2, 3, 4, 5), (5, 7)), ((4, 5), (3, 5, 2)),
              ((5,), (3, 5, 2)), ((2, 3, 5), (4, 5, 2)), ((2, 4, 5), (3, 2, 5, 6)),
              ((2, 3, 0), (0, 4)), ((2, 3), (4, 3, 0)), ((0, 5), (5, 3)), ((1, 1), (1, 1)),
              ((7, 257), (257, 17)), ((3, 50, 145), (145, 65)), ((13, 257), (3, 257, 9))]


@pytest.mark.parametrize("shapes", DOT_SHAPES, ids=str)
def test_dot_numpy_semantics(shapes, dtype, rng):
    x = randn(rng, shapes[0], dtype)
    y = randn(rng, shapes[1], dtype)
    got = ops.dot(x, y)
    expected64 = np.dot(x.astype(np.float64), y.astype(np.float64))
    assert type(got) is type(np.dot(x, y))
    assert_meta(got, expected64.shape, dtype)
    abs_prod = np.dot(np.abs(x).astype(np.float64), np.abs(y).astype(np.float64))
    bound = (x.shape[-1] + 2) * eps(dtype) * abs_prod
    assert np.all(np.abs(got - expected64) <= bound)


@pytest.mark.parametrize("shapes", [((4, 6), (6, 3)), ((2, 3, 4, 5), (5, 7)), ((4, 5), (3, 5, 2)),
                                    ((6,), (6,)), ((4, 6), (6,)), ((6,), (6, 3))], ids=str)
def test_dot_views_and_out(shapes, dtype, rng):
    for xn, x in strided_views(rng, shapes[0], dtype):
        for yn, y in strided_views(rng, shapes[1], dtype):
            got = ops.dot(x, y)
            exp = np.dot(x.astype(np.float64), y.astype(np.float64))
            bound = (x.shape[-1] + 2) * eps(dtype) * np.dot(np.abs(x).astype(np.float64),
                                                            np.abs(y).astype(np.float64))
            assert_meta(got, exp.shape, dtype)
            assert np.all(np.abs(got - exp) <= bound), (xn, yn)
    x = randn(rng, shapes[0], dtype)
    y = randn(rng, shapes[1], dtype)
    out = np.full(np.dot(x, y).shape, np.nan, dtype)
    assert ops.dot(x, y, out=out) is out
    np.testing.assert_allclose(out, np.dot(x, y), rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


def test_dot_out_aliasing_an_input(dtype, rng):
    x = randn(rng, (9, 9), dtype)
    y = randn(rng, (9, 9), dtype)
    x0 = x.copy()
    assert ops.dot(x, y, out=x) is x
    assert_matmul_close(x, x0, y, dtype)


# ------------------------------------------------------------------------------ dense
@pytest.mark.parametrize("activation", [None, "linear", "relu"])
@pytest.mark.parametrize("mnk", [(1, 1, 1), (7, 9, 257), (13, 17, 3), (145, 65, 256), (128, 10, 512),
                                 (6, 129, 0)], ids=str)
def test_dense(mnk, activation, dtype, rng, gemm_path):
    m, n, k = mnk
    x = randn(rng, (m + 5, k), dtype)
    w = randn(rng, (k, n), dtype)
    bias = randn(rng, (n,), dtype)
    rows = rng.permutation(m + 5)[:m]
    for use_rows in (False, True):
        for b in (None, bias):
            xs = x[rows] if use_rows else x
            lin = xs.astype(np.float64) @ w.astype(np.float64) + (0 if b is None else b)
            exp = np.maximum(lin, 0) if activation == "relu" else lin
            got = ops.dense(x, w, b, activation=activation, rows=rows if use_rows else None)
            assert_meta(got, exp.shape, dtype)
            bound = (k + 3) * eps(dtype) * (np.abs(xs.astype(np.float64)) @ np.abs(w.astype(np.float64))
                                            + (0 if b is None else np.abs(b)))
            assert np.all(np.abs(got - exp) <= bound + np.finfo(dtype).tiny), (use_rows, b is None)
            if activation == "relu":
                assert np.all(got >= 0)


def test_dense_views_and_out(dtype, rng):
    x = randn(rng, (40, 30), dtype)[::-2, ::3]   # (20, 10), negative and step strides
    w = np.asfortranarray(randn(rng, (10, 17), dtype))
    b = randn(rng, (17,), dtype)
    out = np.full((20, 17), np.nan, dtype)
    assert ops.dense(x, w, b, activation="relu", out=out) is out
    exp = np.maximum(x.astype(np.float64) @ w + b, 0)
    np.testing.assert_allclose(out, exp, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_dense_nan_kept_by_relu(dtype):
    x = np.array([[np.nan, 1.0], [1.0, 1.0]], dtype)
    w = np.ones((2, 3), dtype)
    got = ops.dense(x, w, activation="relu")
    assert np.isnan(got[0]).all() and np.all(got[1] == 2)


# ------------------------------------------------------------------------ backward values
def _reduce_to(g, shape):
    """numpy's own sum of a broadcast gradient back to shape."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, s in enumerate(shape):
        if s == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


@pytest.mark.parametrize("shapes", [((13, 257), (257, 17)), ((3, 4, 5), (3, 5, 6)), ((1, 4, 5), (7, 5, 6)),
                                    ((4, 5), (7, 5, 6)), ((7, 4, 5), (5, 6)), ((2, 1, 7, 9), (1, 3, 9, 17)),
                                    ((128, 784), (784, 10)), ((0, 3), (3, 4)), ((3, 0), (0, 4))], ids=str)
def test_matmul_backward_values(shapes, dtype, rng):
    a = randn(rng, shapes[0], dtype)
    b = randn(rng, shapes[1], dtype)
    dc = randn(rng, np.matmul(a, b).shape, dtype)
    da, db = ops.matmul_backward(dc, a, b)
    a64, b64, dc64 = (t.astype(np.float64) for t in (a, b, dc))
    exp_da = _reduce_to(np.matmul(dc64, np.swapaxes(b64, -1, -2)), a.shape)
    exp_db = _reduce_to(np.matmul(np.swapaxes(a64, -1, -2), dc64), b.shape)
    bound_da = _reduce_to(np.matmul(np.abs(dc64), np.abs(np.swapaxes(b64, -1, -2))), a.shape)
    bound_db = _reduce_to(np.matmul(np.abs(np.swapaxes(a64, -1, -2)), np.abs(dc64)), b.shape)
    # terms summed into each element: n products per batch da is broadcast over, m for db
    # (not the whole dc's size: that bound let a dropped term pass)
    terms_da = (dc.size * a.shape[-1] // a.size if a.size else 0) + 2
    terms_db = (dc.size * b.shape[-2] // b.size if b.size else 0) + 2
    assert_meta(da, a.shape, dtype)
    assert_meta(db, b.shape, dtype)
    assert np.all(np.abs(da - exp_da) <= terms_da * eps(dtype) * bound_da + np.finfo(dtype).tiny)
    assert np.all(np.abs(db - exp_db) <= terms_db * eps(dtype) * bound_db + np.finfo(dtype).tiny)


@pytest.mark.parametrize("shapes", [((4, 6), (6, 3)), ((2, 3, 4, 5), (5, 7)), ((4, 5), (3, 5, 2)),
                                    ((2, 3, 5), (4, 5, 2)), ((6,), (6,)), ((4, 6), (6,))], ids=str)
def test_dot_backward_values(shapes, dtype, rng):
    x = randn(rng, shapes[0], dtype)
    y = randn(rng, shapes[1], dtype)
    dz = randn(rng, np.shape(np.dot(x, y)), dtype)
    dx, dy = ops.dot_backward(dz, x, y)
    assert_meta(dx, x.shape, dtype)
    assert_meta(dy, y.shape, dtype)
    # the full gradients against NumPy, element by element (one random projection of them
    # would let a wrong element pass): z[I, J, e] = sum_p x[I, p] y[J, p, e]
    d = x.shape[-1]
    x64, y64, dz64 = (v.astype(np.float64) for v in (x, y, dz))
    n_i, n_j = int(np.prod(x.shape[:-1])), int(np.prod(y.shape[:-2]))
    xl = x64.reshape(n_i, d)
    yl = y64.reshape(1, d, 1) if y.ndim == 1 else y64.reshape(n_j, d, y.shape[-1])
    dzl = dz64.reshape(n_i, yl.shape[0], yl.shape[2])
    for got, expr, a, b, terms, shape in (
            (dx, "ije,jpe->ip", dzl, yl, yl.shape[0] * yl.shape[2], x.shape),
            (dy, "ip,ije->jpe", xl, dzl, n_i, y.shape)):
        exp = np.einsum(expr, a, b).reshape(shape)
        bound = (max(1, terms) + 2) * eps(dtype) * np.einsum(expr, np.abs(a), np.abs(b)).reshape(shape)
        assert np.all(np.abs(got.astype(np.float64) - exp) <= bound + np.finfo(dtype).tiny), (got, exp)
