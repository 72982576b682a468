"""relu, add, subtract, multiply, divide, maximum (+ backward), sum_to_shape, take_rows
against NumPy."""
import numpy as np
import pytest

from pyblasnn import ops

from conftest import (PARALLEL_MIN_ELEMENTS, assert_close, assert_exact, assert_meta,
                      assert_sum_to_close, eps, randn, strided_views)

# 0, 1, odd, prime, multi-dim with a zero axis, larger than a SPAN (8192) and than the
# parallel threshold, with a tail that is not a multiple of anything.
UNARY_SHAPES = [(), (0,), (1,), (7,), (97,), (13, 3), (5, 0, 4), (2, 3, 5, 7),
                (8193,), (PARALLEL_MIN_ELEMENTS + 17,), (257, 131)]

# (x shape, y shape): equal, numpy broadcasting in every direction, zero-size, 0-d,
# the book's cases, more axes than a coalesced layout has, large enough to go parallel.
BINARY_SHAPES = [
    ((), ()), ((7,), ()), ((), (7,)), ((0,), (0,)), ((0, 3), (3,)), ((4, 0), (4, 1)),
    ((1,), (1,)), ((13,), (13,)), ((13,), (1,)),
    ((32, 10), (10,)), ((10,), (32, 10)), ((64, 3, 32, 10), (32, 10)),
    ((5, 1, 4), (3, 1)), ((3, 1), (5, 1, 4)), ((2, 1, 3, 1, 5), (1, 4, 1, 6, 1)),
    ((7, 1), (1, 11)), ((1, 1, 1), (1,)), ((6, 5, 4, 3, 2, 1), (5, 1, 3, 1, 1)),
    ((PARALLEL_MIN_ELEMENTS + 3,), (PARALLEL_MIN_ELEMENTS + 3,)),
    ((PARALLEL_MIN_ELEMENTS + 3,), (1,)),
    ((293, 131), (131,)), ((293, 131), (293, 1)), ((129, 2, 131), (2, 1)),
]


def _id(shapes):
    return "x".join(map(str, shapes)).replace(" ", "")


# ------------------------------------------------------------------------------- relu
@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
def test_relu(shape, dtype, rng):
    x = randn(rng, shape, dtype)
    got = ops.relu(x)
    assert_exact(got, np.maximum(x, 0), dtype)
    assert got is not x


@pytest.mark.parametrize("shape", [(0,), (7,), (13, 3), (5, 2, 4)], ids=str)
def test_relu_views(shape, dtype, rng):
    for name, view in strided_views(rng, shape, dtype):
        got = ops.relu(view)
        assert_exact(got, np.maximum(view, 0), dtype), name


def test_relu_nan_inf_signed_zero(dtype):
    x = np.array([np.nan, -np.inf, np.inf, -0.0, 0.0, -1.0, 1.0, -np.nan], dtype)
    got = ops.relu(x)
    expected = np.maximum(x, 0)
    assert_meta(got, x.shape, dtype)
    np.testing.assert_array_equal(got, expected)  # NaN positions must agree too
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))  # relu(-0.0) == +0.0
    assert np.isnan(got[0]) and np.isnan(got[-1])


def test_relu_out_and_inplace(dtype, rng):
    x = randn(rng, (9, 7), dtype)
    expected = np.maximum(x, 0)
    out = np.full_like(x, 123.0)
    assert ops.relu(x, out=out) is out
    np.testing.assert_array_equal(out, expected)
    y = x.copy()
    assert ops.relu(y, out=y) is y
    np.testing.assert_array_equal(y, expected)


def test_relu_out_overlapping_input(dtype):
    """out aliasing a shifted part of x must not read already-written elements."""
    base = np.arange(-10, 10, dtype=dtype)
    x = base[:-1]
    out = base[1:]
    expected = np.maximum(x.copy(), 0)
    ops.relu(x, out=out)
    np.testing.assert_array_equal(base[1:], expected)


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
def test_relu_backward(shape, dtype, rng):
    x = randn(rng, shape, dtype)
    dy = randn(rng, shape, dtype)
    got = ops.relu_backward(dy, x)
    assert_exact(got, np.where(x > 0, dy, 0), dtype)


def test_relu_backward_views_and_edges(dtype, rng):
    for (_, x), (_, dy) in zip(strided_views(rng, (11, 5), dtype), strided_views(rng, (11, 5), dtype)):
        assert_exact(ops.relu_backward(dy, x), np.where(x > 0, dy, 0), dtype)
    x = np.array([np.nan, 0.0, -0.0, np.inf, -np.inf, 2.0], dtype)
    dy = np.array([1, 2, 3, 4, 5, np.nan], dtype)
    assert_exact(ops.relu_backward(dy, x), np.where(x > 0, dy, 0), dtype)
    # in place over dy (what a training loop does)
    dy2 = randn(np.random.default_rng(1), (6,), dtype)
    expected = np.where(x > 0, dy2, 0)
    assert ops.relu_backward(dy2, x, out=dy2) is dy2
    np.testing.assert_array_equal(dy2, expected)


# ------------------------------------------------ add / subtract / multiply / divide / maximum
BINARY = [("add", ops.add, np.add), ("subtract", ops.subtract, np.subtract),
          ("multiply", ops.multiply, np.multiply), ("divide", ops.divide, np.divide),
          ("maximum", ops.maximum, np.maximum)]
ARITHMETIC = BINARY[:4]  # the ops that round (the IEEE operations)


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=_id)
def test_binary(name, op, ref, shapes, dtype, rng):
    x = randn(rng, shapes[0], dtype)
    y = randn(rng, shapes[1], dtype)
    got = op(x, y)
    assert_exact(got, ref(x, y), dtype)


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("shapes", [((13, 3), (13, 3)), ((6, 4, 5), (4, 5)), ((6, 4, 5), (6, 1, 5)),
                                    ((9, 1, 7), (5, 1))], ids=_id)
def test_binary_views(name, op, ref, shapes, dtype, rng):
    """Every pair of layouts (C, Fortran, step-2, negative, transposed) of x and y."""
    for xn, x in strided_views(rng, shapes[0], dtype):
        for yn, y in strided_views(rng, shapes[1], dtype):
            got = op(x, y)
            try:
                assert_exact(got, ref(x, y), dtype)
            except AssertionError as exc:
                raise AssertionError(f"x {xn}, y {yn}: {exc}") from None


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
def test_binary_broadcast_views(name, op, ref, dtype, rng):
    """Stride-0 views (np.broadcast_to) and reversed broadcast operands."""
    row = randn(rng, (10,), dtype)
    x = np.broadcast_to(row, (32, 10))
    y = randn(rng, (32, 10), dtype)[::-1, ::-3]
    assert_exact(op(x[:, ::-3], y), ref(x[:, ::-3], y), dtype)
    col = randn(rng, (32, 1), dtype)[::-1]
    assert_exact(op(col, row[::-1]), ref(col, row[::-1]), dtype)


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_binary_nan_inf(name, op, ref, dtype):
    v = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0], dtype)
    x, y = np.meshgrid(v, v)
    got = op(x, y)
    expected = ref(x, y)
    assert_meta(got, expected.shape, dtype)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))  # -0.0 vs 0.0 too


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
def test_binary_out(name, op, ref, dtype, rng):
    x = randn(rng, (5, 1, 4), dtype)
    y = randn(rng, (3, 1), dtype)
    expected = ref(x, y)
    out = np.full(expected.shape, 7.0, dtype)
    assert op(x, y, out=out) is out
    np.testing.assert_array_equal(out, expected)
    # in place into the first operand (same shape), and into the second
    a = randn(rng, (6, 4), dtype)
    b = randn(rng, (4,), dtype)
    exp = ref(a, b)
    assert op(a, b, out=a) is a
    np.testing.assert_array_equal(a, exp)
    c = randn(rng, (6, 4), dtype)
    exp = ref(b, c)
    assert op(b, c, out=c) is c
    np.testing.assert_array_equal(c, exp)


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy warns of its x / 0
def test_binary_out_overlapping(name, op, ref, dtype):
    """out overlapping an input in a shifted or reversed way gives numpy's answer."""
    base = np.arange(20, dtype=dtype) - 7
    expected = ref(base[:-2], base[2:])
    b2 = base.copy()
    op(b2[:-2], b2[2:], out=b2[1:-1])
    np.testing.assert_array_equal(b2[1:-1], expected)
    exp2 = ref(base[:16], base[::-1][:16])
    b4 = base.copy()
    op(b4[:16], b4[::-1][:16], out=b4[2:18])
    np.testing.assert_array_equal(b4[2:18], exp2)


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy warns of its x / 0
def test_binary_dtype_promotion(name, op, ref):
    f32 = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    f64 = np.arange(3, dtype=np.float64)
    i64 = np.arange(3, dtype=np.int64)
    i8 = np.arange(3, dtype=np.int8)
    b = np.array([True, False, True])
    cases = [(f32, f32, np.float32), (f32, f64, np.float64), (f64, f32, np.float64),
             (f32, i64, np.float64), (f32, i8, np.float32),  # numpy: int8 fits float32, (i64, i64, np.float64),
             (b, b, np.float64), (b, i8, np.float64),
             (f32, 2.5, np.float32), (2, f32, np.float32), (f64, 2, np.float64),
             (i64, 2.5, np.float64), ([1.0, 2.0, 3.0], [4, 5, 6], np.float64),
             ((1, 2, 3), f32[0], np.float64), (f32, np.float32(1.5), np.float32)]
    for x, y, want in cases:
        got = op(x, y)
        expected = ref(np.asarray(x, dtype=np.float64) if np.asarray(x).dtype.kind in "biu" else x,
                       np.asarray(y, dtype=np.float64) if np.asarray(y).dtype.kind in "biu" else y)
        assert got.dtype == want, (type(x), type(y), got.dtype)
        np.testing.assert_array_equal(got, np.asarray(expected).astype(want))


def _special_values(dtype, rng):
    """Every class of float: NaN of both signs, +-inf, signed zeros, subnormals, the extremes,
    inexact values; then random bit patterns (NaN payloads and all)."""
    fi = np.finfo(dtype)
    v = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 3.0, 0.1, 1 / 3,
                  fi.max, -fi.max, fi.tiny, -fi.tiny, fi.smallest_subnormal,
                  -fi.smallest_subnormal, fi.eps, 2.0 ** (fi.maxexp // 2)], dtype)
    uint = np.uint32 if dtype == np.float32 else np.uint64
    bits = rng.integers(0, np.iinfo(uint).max, size=48, dtype=uint, endpoint=True)
    return np.concatenate([v, bits.view(dtype)])


@pytest.mark.parametrize("name,op,ref", ARITHMETIC, ids=[b[0] for b in ARITHMETIC])
def test_arithmetic_bitwise_like_numpy(name, op, ref, dtype, rng):
    """Each result is the correctly rounded IEEE result, so the bits equal NumPy's, over
    every pair of special values and on each kernel path (contiguous, broadcast, strided).
    Only where both operands are NaN may the result be either NaN (IEEE leaves it open)."""
    v = _special_values(dtype, rng)
    x, y = np.meshgrid(v, v)
    uint = np.uint32 if dtype == np.float32 else np.uint64
    pairs = [("contiguous", x, y), ("row", x, v), ("column", v[:, None], y),
             ("strided", x[::-1, ::2], y[::-1, ::2]), ("fortran", np.asfortranarray(x), y),
             ("scalar-y", x, v[9]), ("scalar-x", v[10], y)]
    for kind, a, b in pairs:
        got = op(a, b)
        with np.errstate(all="ignore"):
            expected = ref(a, b)
        assert_meta(got, expected.shape, dtype)
        both_nan = np.isnan(np.broadcast_to(a, expected.shape)) & np.isnan(np.broadcast_to(b, expected.shape))
        differ = (got.view(uint) != expected.view(uint)) & ~both_nan
        assert not differ.any(), (kind, np.argwhere(differ)[:3])
        assert np.isnan(got[both_nan]).all(), kind


SCALARS = [0.5, 0.1, -3.0, 3, -7, 0, 0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, 2 ** 53 + 1,
           2 ** 60]


@pytest.mark.parametrize("name,op,ref", ARITHMETIC, ids=[b[0] for b in ARITHMETIC])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy warns of its x / 0
def test_arithmetic_python_scalars_both_sides(name, op, ref, dtype, rng):
    """subtract(1.0, x), divide(x, 3): a Python scalar is weak (it takes x's dtype, rounded to
    it first), on the lean path (C-contiguous x) and the validated one (a strided view)."""
    x = randn(rng, (7, 9), dtype)
    x[0, :4] = [0.0, -0.0, np.inf, np.nan]
    for arr in (x, x[:, ::-2], x[:1, :1].reshape(())):
        for s in SCALARS:
            for a, b in ((arr, s), (s, arr)):
                got = op(a, b)
                expected = np.asarray(ref(a, b))
                assert_meta(got, expected.shape, dtype)
                np.testing.assert_array_equal(got, expected, err_msg=f"{a!r} {name} {b!r}")
                np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


@pytest.mark.parametrize("name,op,ref", ARITHMETIC, ids=[b[0] for b in ARITHMETIC])
def test_arithmetic_strong_scalars_and_0d(name, op, ref):
    """NumPy scalars and 0-d arrays promote by their dtype; two scalars give a 0-d result."""
    x32 = np.array([1.5, -2.25, 4.0], np.float32)
    cases = [(x32, np.float32(0.1), np.float32), (np.float32(0.1), x32, np.float32),
             (x32, np.float64(0.1), np.float64), (np.float64(3.0), x32, np.float64),
             (x32, np.array(0.1), np.float64), (np.array(2.0, np.float32), x32, np.float32),
             (2.0, 3, np.float64), (7, 2, np.float64), (np.float32(1.0), 3.0, np.float32),
             (np.array(5.0), np.array(4.0), np.float64), (True, 2.5, np.float64)]
    for a, b, want in cases:
        got = op(a, b)
        expected = np.asarray(ref(np.float64(a) if type(a) in (int, bool) else a,
                                  np.float64(b) if type(b) in (int, bool) else b))
        assert_meta(got, expected.shape, want)
        np.testing.assert_array_equal(got, expected.astype(want))


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
def test_binary_one_and_two_threads_bitwise(name, op, ref, dtype, rng):
    """Above the 32,768-element parallel threshold, on every path of the kernel."""
    n = PARALLEL_MIN_ELEMENTS + 4099
    flat = randn(rng, (n,), dtype)
    x = randn(rng, (331, 257), dtype)
    row, col = randn(rng, (257,), dtype), randn(rng, (331, 1), dtype)
    cases = [(flat, flat[::-1].copy()), (flat, 0.3), (1.7, flat), (x, row), (col, x),
             (x[:, ::-1], np.asfortranarray(x)), (x.T, row[:, None] + 0 * col.T)]
    for a, b in cases:
        one = op(a, b, n_threads=1)
        two = op(a, b, n_threads=2)
        assert one.tobytes() == two.tobytes()
        assert_exact(two, ref(a, b), dtype)


# ---------------------------------------------------------------------- sum_to_shape
SUM_CASES = [((32, 10), (10,)), ((32, 10), (1, 10)), ((32, 10), (32, 1)), ((32, 10), ()),
             ((32, 10), (1, 1)), ((5, 3, 4), (3, 1)), ((5, 3, 4), (5, 1, 4)),
             ((64, 3, 32, 10), (32, 10)), ((2, 1, 3, 4), (1, 3, 1)), ((0, 4), (4,)),
             ((4, 0), (1, 0)), ((4, 0), (4, 1)), ((7, 3), (7, 3)), ((), ()),
             ((4099, 3), (3,)), ((300, 257), (257,)), ((3, 70000), (70000,))]


@pytest.mark.parametrize("dz_shape,shape", SUM_CASES, ids=lambda s: str(s))
def test_sum_to_shape(dz_shape, shape, dtype, rng):
    dz = randn(rng, dz_shape, dtype)
    got = ops.sum_to_shape(dz, shape)
    pad = dz.ndim - len(shape)
    axes = tuple(range(pad)) + tuple(pad + i for i, s in enumerate(shape)
                                    if s == 1 and dz_shape[pad + i] != 1)
    expected = dz.astype(np.float64).sum(axis=axes).reshape(shape) if axes else dz
    n = max(1, int(np.prod([dz_shape[a] for a in axes])))
    absum = np.abs(dz.astype(np.float64)).sum(axis=axes).reshape(shape) if axes else np.abs(dz)
    assert_meta(got, shape, dtype)
    np.testing.assert_array_less(np.abs(got - expected), (n + 2) * eps(dtype) * absum + 1e-300)


def test_sum_to_shape_views_and_out(dtype, rng):
    for name, dz in strided_views(rng, (37, 5, 9), dtype):
        for shape in [(9,), (5, 1), (37, 1, 9)]:
            assert_sum_to_close(ops.sum_to_shape(dz, shape), dz, shape, dtype)
    dz = randn(rng, (20, 6), dtype)
    out = np.full(6, 5.0, dtype)
    assert ops.sum_to_shape(dz, (6,), out=out) is out
    assert_sum_to_close(out, dz, (6,), dtype)


# -------------------------------------------- add/subtract/multiply/divide/maximum backward
@pytest.mark.parametrize("name,sign", [("add", 1), ("subtract", -1)])
@pytest.mark.parametrize("xs,ys", [((32, 10), (10,)), ((5, 1, 4), (3, 1)), ((7,), (7,)),
                                    ((), (3, 2)), ((3, 2), ()), ((0, 3), (3,)), ((4, 1), (1, 5)),
                                    ((300, 130), (130,)), ((130,), (300, 130))], ids=str)
def test_add_subtract_backward_values(name, sign, xs, ys, dtype, rng):
    zs = np.broadcast_shapes(xs, ys)
    dz = randn(rng, zs, dtype)
    dx, dy = getattr(ops, name + "_backward")(dz, xs, ys)
    # element-wise bounds against NumPy's own sums (a whole-array scale would let a dropped
    # term pass)
    for got, shape, s in ((dx, xs, 1), (dy, ys, sign)):
        assert_sum_to_close(got, s * dz.astype(np.float64), shape, dtype)
    # subtract's dy is exactly add's dy negated (rounding is symmetric), signed zeros too
    if sign < 0:
        np.testing.assert_array_equal(dy, -ops.add_backward(dz, xs, ys)[1])
        np.testing.assert_array_equal(np.signbit(dy), ~np.signbit(ops.add_backward(dz, xs, ys)[1]))


PRODUCT_SHAPES = [((32, 10), (10,)), ((10,), (32, 10)), ((5, 1, 4), (3, 1)), ((9,), (9,)),
                  ((), (3, 2)), ((3, 2), ()), ((0, 3), (3,)), ((4, 1), (1, 5)),
                  ((301, 129), (129,)), ((2, 1, 3, 1, 5), (1, 4, 1, 6, 1))]


def _product_reference(name, dz, x, y):
    """The backward's terms in the broadcast shape, by NumPy's arithmetic."""
    if name == "multiply":
        return dz * y, dz * x
    return dz / y, -(dz * x) / (y * y)


@pytest.mark.parametrize("name", ["multiply", "divide"])
@pytest.mark.parametrize("xs,ys", PRODUCT_SHAPES, ids=str)
def test_multiply_divide_backward_values(name, xs, ys, dtype, rng):
    x = randn(rng, xs, dtype)
    y = randn(rng, ys, dtype) + np.asarray(3.0, dtype)  # away from 0 for divide
    zs = np.broadcast_shapes(xs, ys)
    dz = randn(rng, zs, dtype)
    dx, dy = getattr(ops, name + "_backward")(dz, x, y)
    assert_meta(dx, xs, dtype)
    assert_meta(dy, ys, dtype)
    tx, ty = _product_reference(name, dz, x, y)
    # the same reduction as sum_to_shape (consistency) ...
    np.testing.assert_array_equal(dx, ops.sum_to_shape(tx, xs))
    np.testing.assert_array_equal(dy, ops.sum_to_shape(ty, ys))
    # ... and, independently of it, within each element's summation bound of NumPy's sums
    for got, t, shape in ((dx, tx, xs), (dy, ty, ys)):
        assert_sum_to_close(got, t, shape, dtype)


@pytest.mark.parametrize("name", ["multiply", "divide"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_multiply_divide_backward_special_values(name, dtype, rng):
    """NaN, infinities, signed zeros and division by zero follow IEEE exactly as NumPy."""
    v = _special_values(dtype, rng)[:19]
    x, y = np.meshgrid(v, v)
    dz = np.broadcast_to(v[::-1], x.shape).copy()
    dx, dy = getattr(ops, name + "_backward")(dz, x, y)
    tx, ty = _product_reference(name, dz, x, y)
    for got, t in ((dx, tx), (dy, ty)):
        np.testing.assert_array_equal(got, t)
        keep = ~np.isnan(t)
        np.testing.assert_array_equal(np.signbit(got[keep]), np.signbit(t[keep]))


@pytest.mark.parametrize("name", ["multiply", "divide"])
def test_multiply_divide_backward_scalars_and_views(name, dtype, rng):
    """A Python scalar operand is weak and gets a 0-d gradient; strided views are read in place."""
    x = randn(rng, (6, 5), dtype)
    dz = randn(rng, (6, 5), dtype)
    bwd = getattr(ops, name + "_backward")
    for s in (2.5, 3, -0.5):
        dx, ds = bwd(dz, x, s)
        tx, ts = _product_reference(name, dz, x, np.asarray(s, dtype))
        assert_meta(dx, x.shape, dtype)
        assert_meta(ds, (), dtype)
        np.testing.assert_array_equal(dx, tx)
        np.testing.assert_array_equal(ds, ops.sum_to_shape(ts, ()))
        ds, dx = bwd(dz, s, x)
        ts, tx = _product_reference(name, dz, np.asarray(s, dtype), x)
        assert_meta(ds, (), dtype)
        np.testing.assert_array_equal(dx, tx)
    for (_, xv), (_, yv), (_, dv) in zip(strided_views(rng, (11, 7), dtype),
                                         strided_views(rng, (11, 7), dtype),
                                         strided_views(rng, (11, 7), dtype)):
        yv = yv + np.asarray(3.0, dtype)
        got = bwd(dv, xv, yv)
        for g, t in zip(got, _product_reference(name, dv, xv, yv)):
            assert_exact(g, t, dtype)


def test_product_backward_one_and_two_threads_bitwise(dtype, rng):
    x = randn(rng, (331, 257), dtype)
    y = randn(rng, (257,), dtype) + np.asarray(3.0, dtype)
    dz = randn(rng, (331, 257), dtype)
    for bwd, args in ((ops.multiply_backward, (dz, x, y)), (ops.divide_backward, (dz, x, y)),
                      (ops.multiply_backward, (dz, y, x[::-1])), (ops.divide_backward, (dz, x, 0.3)),
                      (ops.subtract_backward, (dz, x.shape, y.shape)),
                      (ops.subtract_backward, (dz, (331, 1), x.shape))):
        one = bwd(*args, n_threads=1)
        two = bwd(*args, n_threads=2)
        for a, b in zip(one, two):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("xs,ys", [((32, 10), (10,)), ((5, 1, 4), (3, 1)), ((9,), (9,)),
                                    ((0, 3), (3,)), ((200, 180), (180,))], ids=str)
def test_maximum_backward_values(xs, ys, dtype, rng):
    x = randn(rng, xs, dtype)
    y = randn(rng, ys, dtype)
    zs = np.broadcast_shapes(xs, ys)
    dz = randn(rng, zs, dtype)
    dx, dy = ops.maximum_backward(dz, x, y)
    xb, yb = np.broadcast_to(x, zs), np.broadcast_to(y, zs)
    pick_x = (xb > yb) | np.isnan(xb)  # what numpy.maximum returns x for
    exp_dx = ops.sum_to_shape(np.where(pick_x, dz, 0), xs)
    exp_dy = ops.sum_to_shape(np.where(pick_x, 0, dz), ys)
    assert_meta(dx, xs, dtype)
    assert_meta(dy, ys, dtype)
    np.testing.assert_array_equal(dx, exp_dx)
    np.testing.assert_array_equal(dy, exp_dy)
    # and each gradient on its own against NumPy's reduction (independent of sum_to_shape;
    # a total over dx + dy would accept any split of dz between them)
    dz64 = dz.astype(np.float64)
    assert_sum_to_close(dx, np.where(pick_x, dz64, 0), xs, dtype)
    assert_sum_to_close(dy, np.where(pick_x, 0, dz64), ys, dtype)


def test_maximum_backward_ties_and_nan(dtype):
    x = np.array([1.0, 2.0, np.nan, 0.0, 5.0, -0.0], dtype)
    y = np.array([1.0, 3.0, 1.0, np.nan, np.nan, 0.0], dtype)
    dz = np.array([10, 20, 30, 40, 50, 60], dtype)
    dx, dy = ops.maximum_backward(dz, x, y)
    # the gradient follows numpy.maximum's choice: x where x > y or x is NaN, else y
    # (ties go to y, as numpy.maximum(-0.0, 0.0) returns the second operand)
    np.testing.assert_array_equal(dx, np.array([0, 0, 30, 0, 0, 0], dtype))
    np.testing.assert_array_equal(dy, np.array([10, 20, 0, 40, 50, 60], dtype))


# --------------------------------------------------------------------------- take_rows
@pytest.mark.parametrize("shape,idx", [((10, 3), [0, 9, 9, 2]), ((10, 3), []), ((10, 0), [1, 2]),
                                       ((1, 7), [0, -1]), ((60, 784), list(range(59, -1, -3))),
                                       ((300, 129), np.arange(300)[::-1])],
                         ids=lambda v: str(np.shape(v)))
def test_take_rows(shape, idx, dtype, rng):
    for name, x in strided_views(rng, shape, dtype):
        got = ops.take_rows(x, idx)
        assert_exact(got, x[np.asarray(idx, dtype=np.intp)], dtype)


def test_take_rows_index_dtypes_and_out(dtype, rng):
    x = randn(rng, (8, 5), dtype)
    for idx in (np.array([7, 0, 3], np.int32), np.array([7, 0, 3], np.uint8), [7, 0, 3],
                np.array([7, 0, 3, 5, 1, 2])[::2]):
        np.testing.assert_array_equal(ops.take_rows(x, idx), x[np.asarray(idx)])
    out = np.empty((3, 5), dtype)
    assert ops.take_rows(x, [1, 2, 3], out=out) is out
    np.testing.assert_array_equal(out, x[1:4])


def test_take_rows_out_aliasing_input(dtype, rng):
    """A permutation gathered into x itself must equal numpy's x[idx]."""
    x = randn(rng, (40, 3), dtype)
    idx = np.arange(40)[::-1]
    expected = x[idx]
    assert ops.take_rows(x, idx, out=x) is x
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("name", ["relu", "add", "subtract", "multiply", "divide", "maximum",
                                  "take_rows"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy warns of its 0 / 0
def test_int_and_bool_inputs_promote_to_float64(name):
    xi = np.array([[-2, 0, 3], [4, -5, 6]])
    xb = np.array([[True, False, True], [False, False, True]])
    for x in (xi, xb, xi.tolist()):
        if name == "relu":
            got, exp = ops.relu(x), np.maximum(np.asarray(x, np.float64), 0)
        elif name == "take_rows":
            got, exp = ops.take_rows(x, [1, 0]), np.asarray(x, np.float64)[[1, 0]]
        else:
            got = getattr(ops, name)(x, x)
            exp = getattr(np, name)(np.asarray(x, np.float64), np.asarray(x, np.float64))
        assert_exact(got, exp, np.float64)


def test_float16_computes_in_float32():
    x = np.array([-1.5, 2.25], np.float16)
    got = ops.relu(x)
    assert_exact(got, np.array([0, 2.25]), np.float32)


# --- the lean call path (plain C-contiguous arrays) must agree with the validated path ---
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lean_path_in_place_and_overlapping_out(dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 5)).astype(dtype)
    y = rng.standard_normal((6, 5)).astype(dtype)
    row = rng.standard_normal(5).astype(dtype)
    # in place on either operand
    for _, fn, ref in BINARY:
        a, b = x.copy(), y.copy()
        expected = ref(a, b)
        assert fn(a, b, out=a) is a
        np.testing.assert_array_equal(a, expected)
        a, b = x.copy(), y.copy()
        assert fn(a, b, out=b) is b
        np.testing.assert_array_equal(b, expected)
    # a bias row that lives inside out: each output row would overwrite it
    buf = np.concatenate([row[None, :], x]).astype(dtype)
    expected = buf[1:] + buf[0]
    out = buf[:6]
    res = ops.add(buf[1:], buf[0], out=out)
    np.testing.assert_array_equal(res, expected)
    # partially overlapping, shifted by one element
    flat = rng.standard_normal(41).astype(dtype)
    a = flat[1:41]
    expected = np.maximum(a, 0)
    np.testing.assert_array_equal(ops.relu(a, out=flat[:40]), expected)
    flat = rng.standard_normal(41).astype(dtype)
    dy, xs = flat[1:41].copy(), flat[:40]
    expected = np.where(xs > 0, dy, 0)
    np.testing.assert_array_equal(ops.relu_backward(dy, xs, out=flat[1:41]), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lean_path_row_broadcast_matches_numpy(dtype):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 7, 9)).astype(dtype)
    b = rng.standard_normal(9).astype(dtype)
    out = np.empty_like(x)
    for n_threads in (None, 1, 2):
        res = ops.add(x, b, out=out, n_threads=n_threads)
        assert res is out and res.dtype == dtype
        np.testing.assert_array_equal(res, x + b)
        np.testing.assert_array_equal(ops.maximum(x, b, n_threads=n_threads), np.maximum(x, b))
    # read-only out is refused, not written
    ro = np.empty_like(x)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ops.add(x, b, out=ro)


@pytest.mark.parametrize("name,sign", [("add", 1), ("subtract", -1)])
def test_add_backward_passes_an_unbroadcast_gradient_through(name, sign):
    bwd = getattr(ops, name + "_backward")
    dz = np.arange(12.0).reshape(4, 3)
    dx, dy = bwd(dz, (4, 3), (3,))
    assert dx is dz  # documented: no copy for an operand that was not broadcast
    np.testing.assert_array_equal(dy, sign * dz.sum(axis=0))
    dx32, _ = bwd(dz.astype(np.float32), (4, 3), (1, 3))
    assert dx32.dtype == np.float32 and dx32.shape == (4, 3)
    dx, dy = bwd(dz, (4, 3), (4, 3))
    assert dx is dz and (dy is dz) == (sign > 0)  # -dz is computed, never dz negated in place
    np.testing.assert_array_equal(dz, np.arange(12.0).reshape(4, 3))
    np.testing.assert_array_equal(dy, sign * dz)
