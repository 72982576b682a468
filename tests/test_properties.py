"""Property-based tests (hypothesis): every op agrees with NumPy on random compatible shapes
(zero sizes, broadcast batch axes, 1-D operands) in the memory layouts real code produces.

Operands are drawn as values, then laid out by ``_arrange``: any axis order in memory
(C, Fortran, transposes of >= 3-D arrays), steps of +-1..3 (negative steps, step-2 views),
padding around every axis (views into a larger buffer, big[..., :m, :]), zero strides
(np.broadcast_to), and size-1 axes given arbitrary strides: equal to a neighbour's, 0,
negative or huge (NumPy never reads them, so any value is legal there). The padding is
filled with NaN, so a kernel that reads outside its view (an out-of-bounds read within the
buffer, or past it where ASan sees it) produces NaN instead of a plausible number.

The fused kernels (pyblasnn.fused) take C-contiguous arrays only: theirs are drawn as rows
of a NaN-padded buffer, and their outputs at every offset over their inputs (the same
array, shifted by some elements, or apart). Every public kernel of pyblasnn.ops and
pyblasnn.fused has a property test here (test_every_public_kernel_has_a_property_test).

Example counts are per test under the "ci" profile (derandomized, registered in
conftest.py); HYPOTHESIS_PROFILE=long explores more.
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pyblasnn import fused, ops

from conftest import assert_matmul_close, assert_sum_to_close, eps, examples

DTYPES = st.sampled_from([np.float32, np.float64])
INT_DTYPES = st.sampled_from([np.int8, np.int16, np.int32, np.int64,
                              np.uint8, np.uint16, np.uint32, np.uint64])

#: The public kernels each property test checks ("fused.name" for pyblasnn.fused).
COVERED = set()


def _covers(*names):
    def mark(test):
        COVERED.update(names)
        return test
    return mark


def _settings(n):
    return settings(max_examples=examples(n))


# ------------------------------------------------------------------------------ layouts
def _arrange(draw, arr, broadcast=True):
    """The values of arr in a drawn memory layout (some axes may become zero-stride
    broadcasts of arr's first slice along them: the returned array is what to compare)."""
    arr = np.asarray(arr)
    nd, shape = arr.ndim, arr.shape
    if nd == 0 or draw(st.integers(0, 3)) == 0:      # a quarter stay plain C arrays
        return arr
    order = draw(st.permutations(range(nd)))          # memory order, outermost first
    steps = [draw(st.sampled_from([1, 1, 2, -1, -2, 3])) for _ in range(nd)]
    pads = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd)]
    bcast = {d for d in range(nd) if broadcast and shape[d] > 1
             and draw(st.integers(0, 5)) == 0}
    src = arr[tuple(slice(0, 1) if d in bcast else slice(None) for d in range(nd))]
    extents = [pads[d][0] + max(src.shape[d] - 1, 0) * abs(steps[d]) + 1 + pads[d][1]
               for d in range(nd)]
    pad = np.nan if arr.dtype.kind == "f" else np.iinfo(arr.dtype).max   # (indices)
    big = np.full([extents[d] for d in order], pad, arr.dtype)
    view = big.transpose(np.argsort(order))            # axis d of view is axis d of arr
    index = []
    for d in range(nd):
        lo, s = pads[d][0], abs(steps[d])
        index.append(slice(lo, lo + (src.shape[d] - 1) * s + 1, s) if src.shape[d] else
                     slice(lo, lo))
    view = view[tuple(index)]
    view = view[tuple(slice(None, None, -1 if steps[d] < 0 else 1) for d in range(nd))]
    view[...] = src
    if bcast:
        view = np.broadcast_to(view, shape)
    ones = [d for d in range(nd) if shape[d] == 1]
    if ones and view.size:
        strides = list(view.strides)
        for d in ones:
            # "outer" twice: a size-1 axis with its outer neighbour's stride is what an
            # ordinary slice (base[:, ::2] of a length-2 axis) produces
            choice = draw(st.sampled_from(["outer", "outer", "inner", "keep", "zero", "huge"]))
            if choice == "outer" and d > 0:
                strides[d] = strides[d - 1]
            elif choice == "inner" and d + 1 < nd:
                strides[d] = strides[d + 1] * shape[d + 1]
            elif choice == "zero":
                strides[d] = 0
            elif choice == "huge":
                strides[d] = -(1 << 40) * arr.itemsize
        view = np.lib.stride_tricks.as_strided(view, shape, strides, writeable=False)
    return view


def _values(draw, dtype, shape, lo=-4.0, hi=4.0):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    return rng.uniform(lo, hi, shape).astype(dtype)


def _sum_to(full, shape):
    """full summed (in float64) over the axes broadcasting added to shape."""
    pad = full.ndim - len(shape)
    axes = tuple(range(pad)) + tuple(pad + i for i, s in enumerate(shape)
                                     if s == 1 and full.shape[pad + i] != 1)
    return full.sum(axis=axes, keepdims=True).reshape(shape) if axes else full.reshape(shape)


def _assert_sum_close(got, full, abs_full, shape, dtype, inner=1):
    """got == full summed to shape, element by element, within the rounding bound of its own
    sum: (terms + 2) eps sum|terms|, with terms = the elements of full summed into it times
    ``inner``, the terms already summed inside each element of full (and its roundings)."""
    assert got.shape == tuple(shape) and got.dtype == dtype
    expected = _sum_to(full, shape)
    terms = max(1, full.size // max(1, int(np.prod(shape)))) * inner
    bound = (terms + 2) * eps(dtype) * _sum_to(abs_full, shape) + np.finfo(dtype).tiny
    err = np.abs(np.asarray(got, np.float64) - expected)
    assert np.all(err <= bound), (got, expected)


# -------------------------------------------------------------------- element-wise ops
@st.composite
def broadcast_pair(draw, special=True):
    dtype = draw(DTYPES)
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=5,
                                                    min_side=0, max_side=6))
    if special:
        elems = st.floats(width=32)  # includes NaN, +-Inf, -0.0 and values that overflow
        x = draw(hnp.arrays(dtype, shapes.input_shapes[0], elements=elems))
        y = draw(hnp.arrays(dtype, shapes.input_shapes[1], elements=elems))
    else:
        x = _values(draw, dtype, shapes.input_shapes[0])
        y = _values(draw, dtype, shapes.input_shapes[1])
    return _arrange(draw, x), _arrange(draw, y), shapes.result_shape


def _assert_same_bits(got, expected):
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.signbit(got) | np.isnan(got),
                                  np.signbit(expected) | np.isnan(expected))


BINARY = ["add", "subtract", "multiply", "divide", "maximum"]


@_covers(*BINARY)
@pytest.mark.parametrize("name", BINARY)
@_settings(150)
@given(pair=broadcast_pair())
def test_binary_broadcasting_matches_numpy(name, pair):
    x, y, shape = pair
    got = getattr(ops, name)(x, y)
    with np.errstate(all="ignore"):
        expected = getattr(np, name)(x, y)
    assert got.shape == shape == expected.shape
    assert got.dtype == x.dtype
    _assert_same_bits(got, expected)


@_covers("relu", "relu_backward")
@_settings(150)
@given(st.data())
def test_relu_and_backward_match_numpy(data):
    dtype = data.draw(DTYPES)
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6))
    x = data.draw(hnp.arrays(dtype, shape, elements=st.floats(width=32)))
    dy = _values(data.draw, dtype, shape)
    x, dy = _arrange(data.draw, x), _arrange(data.draw, dy)
    got = ops.relu(x)
    assert got.shape == x.shape and got.dtype == dtype
    _assert_same_bits(got, np.maximum(x, 0))
    dx = ops.relu_backward(dy, x)
    assert dx.shape == x.shape and dx.dtype == dtype
    np.testing.assert_array_equal(dx, np.where(x > 0, dy, 0))


@_covers("add_backward", "subtract_backward")
@_settings(120)
@given(broadcast_pair(special=False), st.data())
def test_add_subtract_backward_sum_broadcast_axes(pair, data):
    x, y, shape = pair
    dz = _arrange(data.draw, _values(data.draw, x.dtype, shape))
    dz64 = np.asarray(dz, np.float64)
    dx, dy = ops.add_backward(dz, x.shape, y.shape)
    _assert_sum_close(dx, dz64, np.abs(dz64), x.shape, x.dtype)
    _assert_sum_close(dy, dz64, np.abs(dz64), y.shape, x.dtype)
    dx, dy = ops.subtract_backward(dz, x.shape, y.shape)
    _assert_sum_close(dx, dz64, np.abs(dz64), x.shape, x.dtype)
    _assert_sum_close(dy, -dz64, np.abs(dz64), y.shape, x.dtype)


@_covers("multiply_backward", "divide_backward", "maximum_backward")
@pytest.mark.parametrize("name", ["multiply", "divide", "maximum"])
@_settings(100)
@given(pair=broadcast_pair(special=False), data=st.data())
def test_product_backward_matches_numpy(name, pair, data):
    x, y, shape = pair
    if name == "divide":  # keep |y| away from 0: the bound below is for sums, not 1/y
        y = np.where(np.abs(y) < 0.25, 0.25, y).astype(y.dtype)
    dz = _arrange(data.draw, _values(data.draw, x.dtype, shape))
    dx, dy = getattr(ops, name + "_backward")(dz, x, y)
    x64, y64, dz64 = (np.asarray(v, np.float64) for v in (x, y, dz))
    xb, yb = np.broadcast_to(x64, shape), np.broadcast_to(y64, shape)
    if name == "multiply":
        gx, gy = dz64 * yb, dz64 * xb
    elif name == "divide":
        gx, gy = dz64 / yb, -dz64 * xb / (yb * yb)
    else:
        x_wins = (xb > yb) | np.isnan(xb)
        gx, gy = np.where(x_wins, dz64, 0), np.where(x_wins, 0, dz64)
    _assert_sum_close(dx, gx, np.abs(gx), x.shape, x.dtype, inner=3)  # + each term's roundings
    _assert_sum_close(dy, gy, np.abs(gy), y.shape, x.dtype, inner=3)


# -------------------------------------------------------------------------- matmul family
@st.composite
def matmul_pair(draw):
    """Compatible operands: 1-D or (batch..., m, k) @ (batch..., k, n) with broadcast batches.

    Shapes are what hypothesis explores (and shrinks); values come from a drawn seed."""
    dtype = draw(DTYPES)
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                   min_side=0, max_side=3))
    sides = st.one_of(st.integers(0, 20), st.sampled_from([5, 6, 7, 8, 9, 15, 16, 17, 33]))
    m, n, k = draw(sides), draw(sides), draw(sides)
    a_batch, b_batch = batch.input_shapes
    if draw(st.booleans()):   # half the draws: one b shared by every batch (a layer's weights)
        b_batch = ()
    a_1d = draw(st.booleans()) and not a_batch
    b_1d = draw(st.booleans()) and not b_batch
    a_shape = (k,) if a_1d else a_batch + (m, k)
    b_shape = (k,) if b_1d else b_batch + (k, n)
    a = _arrange(draw, _values(draw, dtype, a_shape))
    b = _arrange(draw, _values(draw, dtype, b_shape))
    return a, b, np.matmul(a, b).shape


def _strided_batch_view():
    """The defect this file pins: a size-1 batch axis whose stride equals the axis before
    it (an ordinary slice makes one), (3, 1, 2, 3) with strides (96, 96, 24, 8)."""
    base = np.arange(36.0).reshape(3, 2, 2, 3)
    a = base[:, ::2]
    return a, np.eye(3), (3, 1, 2, 3)


def _reversed_batch_view():
    """Its out-of-bounds twin: a reversed batch axis and a reversed size-1 axis; reading
    forward from the data pointer walks past the buffer (NaN padding after it here)."""
    big = np.full((7, 2, 4, 5), np.nan)
    big[1:6] = np.arange(5 * 2 * 4 * 5, dtype=np.float64).reshape(5, 2, 4, 5)
    return big[1:6][::-1, ::-2], np.eye(5)[:, :3], (5, 1, 4, 3)


@_covers("matmul")
@_settings(400)
@given(matmul_pair())
@example(_strided_batch_view())
@example(_reversed_batch_view())
def test_matmul_matches_numpy(pair):
    a, b, shape = pair
    got = ops.matmul(a, b)
    assert np.shape(got) == shape == np.matmul(a, b).shape
    assert_matmul_close(got, a, b, a.dtype)


def _matmul_grads64(dc, a, b):
    """(da, |da| terms, db, |db| terms) in float64, before summing to the operand shapes."""
    a64, b64, dc64 = (np.asarray(v, np.float64) for v in (a, b, dc))
    a2 = a64 if a64.ndim >= 2 else a64[None, :]
    b2 = b64 if b64.ndim >= 2 else b64[:, None]
    dc2 = dc64.reshape(np.matmul(a2, b2).shape)
    da = np.matmul(dc2, np.swapaxes(b2, -1, -2))
    dab = np.matmul(np.abs(dc2), np.abs(np.swapaxes(b2, -1, -2)))
    db = np.matmul(np.swapaxes(a2, -1, -2), dc2)
    dbb = np.matmul(np.abs(np.swapaxes(a2, -1, -2)), np.abs(dc2))
    return a2.shape, da, dab, b2.shape, db, dbb


def _as_upstream(pair):
    """A pinned view as the upstream gradient dc of a plain a @ b of the same shapes."""
    view = pair[0]
    rng = np.random.default_rng(1)
    a = rng.uniform(-4, 4, view.shape[:-1] + (4,))
    b = rng.uniform(-4, 4, (4, view.shape[-1]))
    return (a, b, view.shape), view


@_covers("matmul_backward")
@_settings(300)
@given(matmul_pair(), st.data())
@example(_strided_batch_view(), None)
@example(_reversed_batch_view(), None)
@example(*_as_upstream(_strided_batch_view()))
@example(*_as_upstream(_reversed_batch_view()))
def test_matmul_backward_matches_numpy(pair, data):
    a, b, shape = pair
    dtype = a.dtype
    if data is None:   # pinned examples: dc a plain array
        dc = np.random.default_rng(0).uniform(-4, 4, shape).astype(dtype)
    elif isinstance(data, np.ndarray):   # pinned examples: dc the view
        dc = data
    else:
        dc = _arrange(data.draw, _values(data.draw, dtype, shape))
    da, db = ops.matmul_backward(dc, a, b)
    a2s, gda, gdab, b2s, gdb, gdbb = _matmul_grads64(dc, a, b)
    # each element of da sums n products per batch it is broadcast over; of db, m
    _assert_sum_close(da.reshape(a2s), gda, gdab, a2s, dtype, inner=max(1, b2s[-1]))
    _assert_sum_close(db.reshape(b2s), gdb, gdbb, b2s, dtype, inner=max(1, a2s[-2]))
    assert da.shape == a.shape and db.shape == b.shape


@st.composite
def dot_pair(draw):
    """numpy.dot operands: x (..., d) with y (d,) or (..., d, e), up to 5 dimensions in all."""
    dtype = draw(DTYPES)
    d = draw(st.integers(0, 17))
    x_lead = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    y_lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4))
    y_1d = draw(st.booleans())
    e = draw(st.integers(0, 9))
    x = _values(draw, dtype, x_lead + (d,))
    y = _values(draw, dtype, (d,) if y_1d else y_lead + (d, e))
    return _arrange(draw, x), _arrange(draw, y)


@_covers("dot", "dot_backward")
@_settings(250)
@given(dot_pair(), st.data())
def test_dot_and_backward_match_numpy(pair, data):
    x, y = pair
    dtype = x.dtype
    got = ops.dot(x, y)
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    expected = np.dot(x64, y64)
    assert np.shape(got) == expected.shape and np.asarray(got).dtype == dtype
    d = x.shape[-1]
    bound = (d + 2) * eps(dtype) * np.dot(np.abs(x64), np.abs(y64)) + np.finfo(dtype).tiny
    assert np.all(np.abs(np.asarray(got, np.float64) - expected) <= bound)
    if x.ndim + y.ndim > 5 or x.ndim == 0:
        return
    dz = _arrange(data.draw, _values(data.draw, dtype, expected.shape))
    dx, dy = ops.dot_backward(dz, x, y)
    assert dx.shape == x.shape and dy.shape == y.shape
    dz64 = np.asarray(dz, np.float64)
    # z[..., J, e] = sum_p x[..., p] y[J, p, e]  ->  dx = sum_{J, e} dz y,  dy = sum_... x dz
    n_j = int(np.prod(y.shape[:-2]))   # explicit sizes: reshape(-1, ...) fails for d == 0
    yl = y64.reshape(1, d, 1) if y.ndim == 1 else y64.reshape(n_j, d, y.shape[-1])
    xl = x64.reshape(int(np.prod(x.shape[:-1])), d)
    dzl = dz64.reshape(xl.shape[0], yl.shape[0], yl.shape[2])
    gx = np.einsum("ije,jpe->ip", dzl, yl)
    gxb = np.einsum("ije,jpe->ip", np.abs(dzl), np.abs(yl))
    gy = np.einsum("ip,ije->jpe", xl, dzl)
    gyb = np.einsum("ip,ije->jpe", np.abs(xl), np.abs(dzl))
    tx = max(1, yl.shape[0] * yl.shape[2])
    ty = max(1, xl.shape[0])
    for got_g, g, gb, t in ((dx, gx, gxb, tx), (dy, gy, gyb, ty)):
        err = np.abs(np.asarray(got_g, np.float64).reshape(g.shape) - g)
        assert np.all(err <= (t + 2) * eps(dtype) * gb + np.finfo(dtype).tiny)


# ----------------------------------------------------------- reductions, gathers, dense
@st.composite
def sum_case(draw):
    """dz of a drawn shape and a shape it reduces to (leading axes dropped, others -> 1)."""
    dtype = draw(DTYPES)
    full = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6))
    keep = draw(st.integers(0, len(full)))
    shape = tuple(1 if draw(st.booleans()) else side for side in full[len(full) - keep:])
    return _arrange(draw, _values(draw, dtype, full)), shape


@_covers("sum_to_shape")
@_settings(150)
@given(sum_case(), st.booleans())
def test_sum_to_shape_matches_numpy(case, use_out):
    dz, shape = case
    out = np.full(shape, np.nan, dz.dtype) if use_out else None
    got = ops.sum_to_shape(dz, shape, out=out)
    assert out is None or got is out
    assert_sum_to_close(got, np.asarray(dz, np.float64), shape, dz.dtype)


def _indices(draw, n_rows, count):
    """count row indices into n_rows rows in a drawn integer dtype and layout: in range
    (negatives too, where the dtype has them), or, a third of the time, one out of range:
    just past either end, the dtype's extremes, or a value that a cast to intp would wrap
    into range (2**64 - 1 as uint64 is -1)."""
    dtype = draw(INT_DTYPES)
    info = np.iinfo(dtype)
    lo, hi = max(-n_rows, int(info.min)), min(n_rows - 1, int(info.max))
    wrapping = {2 ** 64 - k for k in (1, 2, n_rows)} | {2 ** 63}
    bad = st.sampled_from(sorted(v for v in {n_rows, -n_rows - 1, int(info.max), int(info.min),
                                             *wrapping}
                                 if info.min <= v <= info.max and not lo <= v <= hi))
    values = [draw(st.integers(lo, hi) if n_rows else bad) for _ in range(count)]
    if count and draw(st.integers(0, 2)) == 0:
        values[draw(st.integers(0, count - 1))] = draw(bad)
    return _arrange(draw, np.array(values, dtype=dtype), broadcast=False)


def _expected_rows(x, idx):
    """x[idx] by the indices' values (Python ints), or IndexError."""
    values = [int(v) for v in idx]
    if any(not -x.shape[0] <= v < x.shape[0] for v in values):
        return IndexError
    return np.asarray(x)[values].reshape(len(values), x.shape[1])


def _wrapped_index():
    """Pinned: uint64 2**64 - 1, which an intp cast made -1 (the last row)."""
    return np.arange(6.0).reshape(3, 2), np.array([0, 2 ** 64 - 1], np.uint64)


def _wrapped_rows():
    """The same as dense(rows=): (x, kernel, bias, activation, rows)."""
    x, rows = _wrapped_index()
    return x, np.eye(2), None, "relu", rows


@st.composite
def take_case(draw):
    dtype = draw(DTYPES)
    n_rows, d, count = draw(st.integers(0, 9)), draw(st.integers(0, 9)), draw(st.integers(0, 12))
    x = _arrange(draw, _values(draw, dtype, (n_rows, d)))
    return x, _indices(draw, n_rows, count)


@_covers("take_rows")
@_settings(150)
@given(take_case())
@example(_wrapped_index())
def test_take_rows_matches_numpy(case):
    x, idx = case
    expected = _expected_rows(x, idx)
    if expected is IndexError:
        with pytest.raises(IndexError, match="take_rows: indices out of range"):
            ops.take_rows(x, idx)
        return
    got = ops.take_rows(x, idx)
    assert got.shape == expected.shape and got.dtype == x.dtype
    np.testing.assert_array_equal(got, expected)


@st.composite
def dense_case(draw):
    dtype = draw(DTYPES)
    sides = st.one_of(st.integers(0, 20), st.sampled_from([5, 6, 7, 8, 9, 15, 16, 17, 33]))
    n_rows, k, units = draw(sides), draw(sides), draw(sides)
    x = _arrange(draw, _values(draw, dtype, (n_rows, k)))
    kernel = _arrange(draw, _values(draw, dtype, (k, units)))
    bias = _arrange(draw, _values(draw, dtype, (units,))) if draw(st.booleans()) else None
    rows = _indices(draw, n_rows, draw(sides)) if draw(st.booleans()) else None
    return x, kernel, bias, draw(st.sampled_from([None, "linear", "relu"])), rows


@_covers("dense")
@_settings(200)
@given(dense_case())
@example(_wrapped_rows())
def test_dense_matches_numpy(case):
    x, kernel, bias, activation, rows = case
    xs = x if rows is None else _expected_rows(x, rows)
    if xs is IndexError:
        with pytest.raises(IndexError, match="dense: rows out of range"):
            ops.dense(x, kernel, bias, activation, rows=rows)
        return
    got = ops.dense(x, kernel, bias, activation, rows=rows)
    x64, w64 = np.asarray(xs, np.float64), np.asarray(kernel, np.float64)
    b64 = 0.0 if bias is None else np.asarray(bias, np.float64)
    lin = x64 @ w64 + b64
    expected = np.maximum(lin, 0) if activation == "relu" else lin
    assert got.shape == expected.shape and got.dtype == x.dtype
    bound = (kernel.shape[0] + 3) * eps(x.dtype) * (np.abs(x64) @ np.abs(w64) + np.abs(b64))
    assert np.all(np.abs(got - expected) <= bound + np.finfo(x.dtype).tiny)
    if activation == "relu":
        assert np.all(got >= 0)


# ---------------------------------------------------------------------- fused kernels
def _padded_rows(draw, values):
    """values (C-contiguous, as the fused kernels require) as rows of a NaN-padded buffer."""
    before, after = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    n = values.shape[0]
    big = np.full((before + n + after,) + values.shape[1:], np.nan, values.dtype)
    view = big[before:before + n]
    view[...] = values
    return view


def _over(draw, values, dtype=None):
    """(x holding values, out): out of x's shape and ``dtype`` (x's by default) is None, a
    fresh array, x itself, or laid over x's memory at a drawn element offset (a partial
    overlap, or apart) in one buffer."""
    dtype = np.dtype(dtype or values.dtype)
    kind = draw(st.sampled_from(["none", "fresh", "same", "shifted", "shifted"]))
    if kind in ("none", "fresh") or values.size == 0 or dtype != values.dtype:
        x = _padded_rows(draw, values)
        out = None if kind == "none" else np.full(values.shape, np.nan, dtype)
        return x, out
    if kind == "same":
        x = _padded_rows(draw, values)
        return x, x
    size = values.size
    shift = draw(st.integers(-size - 2, size + 2).filter(lambda s: s != 0))
    raw = np.full(size + abs(shift), np.nan, dtype)
    x_at, out_at = (0, shift) if shift > 0 else (-shift, 0)
    x = raw[x_at:x_at + size].reshape(values.shape)
    x[...] = values
    return x, raw[out_at:out_at + size].reshape(values.shape)


def _softmax64(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _softmax_rel_error(z, dtype):
    """Each softmax(z) element's relative error bound in ``dtype``: the c-term sum, exp, the
    division, and z - max rounded before exp (an absolute error of eps |z - max| in the
    exponent is a relative one of the same size in the result; NumPy's has it too)."""
    z = np.asarray(z, np.float64)
    dist = z.max(axis=1, keepdims=True) - z
    spread = (_softmax64(z) * dist).sum(axis=1, keepdims=True)
    return (z.shape[1] + 4 + dist + spread) * eps(dtype)


@st.composite
def logits_case(draw, min_classes=1):
    dtype = draw(DTYPES)
    n, c = draw(st.integers(0, 40)), draw(st.integers(min_classes, 24))
    scale = draw(st.sampled_from([1.0, 10.0, 80.0]))    # 80: exp overflows without the max
    return _values(draw, dtype, (n, c), -scale, scale)


def _shifted_by_one(values):
    """(x holding values, out) with out one element past x in one buffer: the issue's
    overlap (softmax returned NaN there, softmax_backward an error of 0.86, the loss
    2.7427 instead of 2.7491)."""
    raw = np.full(values.size + 1, np.nan, values.dtype)
    x = raw[:-1].reshape(values.shape)
    x[...] = values
    return x, raw[1:].reshape(values.shape)


PINNED_LOGITS = np.random.default_rng(0).standard_normal((4, 10))


@_covers("fused.softmax")
@_settings(150)
@given(logits_case(), st.data())
@example(PINNED_LOGITS, None)
def test_softmax_matches_numpy(values, data):
    x, out = _shifted_by_one(values) if data is None else _over(data.draw, values)
    got = fused.softmax(x, out=out)
    assert out is None or got is out
    assert got.shape == values.shape and got.dtype == values.dtype
    p = _softmax64(values)
    np.testing.assert_array_less(np.abs(got - p), _softmax_rel_error(values, values.dtype) * p
                                 + np.finfo(values.dtype).tiny)


@_covers("fused.softmax_backward")
@_settings(150)
@given(logits_case(), st.data())
@example(PINNED_LOGITS, None)
def test_softmax_backward_matches_numpy(values, data):
    dtype = values.dtype
    y_values = fused.softmax(values)
    if data is None:     # pinned: out one element past dy
        dy_values, over = values[::-1].copy(), "dy"
        shared, out = _shifted_by_one(dy_values)
    else:
        dy_values = _values(data.draw, dtype, values.shape)
        over = data.draw(st.sampled_from(["dy", "y"]))
        shared, out = _over(data.draw, dy_values if over == "dy" else y_values)
    dy, y = (shared, y_values.copy()) if over == "dy" else (dy_values.copy(), shared)
    got = fused.softmax_backward(dy, y, out=out)
    assert out is None or got is out
    assert got.shape == values.shape and got.dtype == dtype
    y64, dy64 = np.asarray(y_values, np.float64), np.asarray(dy_values, np.float64)
    dot = (dy64 * y64).sum(axis=1, keepdims=True)
    expected = y64 * (dy64 - dot)
    c = values.shape[1]
    bound = (c + 4) * eps(dtype) * y64 * (np.abs(dy64) + (np.abs(dy64) * y64).sum(
        axis=1, keepdims=True)) + np.finfo(dtype).tiny
    np.testing.assert_array_less(np.abs(got - expected), bound)


def _labels(draw, n, c):
    """Labels in [0, c) as an intp (n,) array, another integer dtype, or an (n, 1) column."""
    values = np.array([draw(st.integers(0, c - 1)) for _ in range(n)], dtype=np.int64)
    kind = draw(st.sampled_from(["intp", "uint8", "int32", "column"]))
    if kind == "column":
        return values.reshape(n, 1)
    return values.astype(np.intp if kind == "intp" else kind)


def _check_loss(got, row_loss, expected_rows, bound_rows, dtype, want_correct):
    """(loss, n_correct) and the per-row losses against NumPy's, row by row."""
    loss, n_correct = got
    n = expected_rows.shape[0]
    mean = expected_rows.mean() if n else 0.0
    bound = (bound_rows.mean() if n else 0.0) + (n + 2) * eps(dtype) * (
        np.abs(expected_rows).mean() if n else 0.0) + np.finfo(dtype).tiny
    assert isinstance(loss, float) and abs(loss - mean) <= bound, (loss, mean, bound)
    assert n_correct == want_correct
    if row_loss is not None:
        assert row_loss.dtype == np.float64
        np.testing.assert_array_less(np.abs(row_loss - expected_rows), bound_rows + 1e-300)


@_covers("fused.sparse_softmax_cross_entropy")
@_settings(150)
@given(logits_case(), st.data())
@example(PINNED_LOGITS, None)
def test_sparse_softmax_cross_entropy_matches_numpy(values, data):
    dtype, (n, c) = values.dtype, values.shape
    if data is None:   # pinned: out one element past the logits
        x, out = _shifted_by_one(values)
        labels, row_loss = np.arange(1, n + 1), None
    else:
        x, out = _over(data.draw, values)
        labels = _labels(data.draw, n, c)
        row_loss = np.full(n, np.nan) if data.draw(st.booleans()) else None
    got = fused.sparse_softmax_cross_entropy(x, labels, out=out, row_loss=row_loss)
    z = np.asarray(values, np.float64)
    y = labels.reshape(-1)
    zmax = z.max(axis=1) if n else np.zeros(0)
    lse = zmax + np.log(np.exp(z - zmax[:, None]).sum(axis=1)) if n else np.zeros(0)
    rows = lse - z[np.arange(n), y]
    spread = ((_softmax64(z) * (zmax[:, None] - z)).sum(axis=1) if n else np.zeros(0))
    bound_rows = (c + 4) * eps(dtype) * (np.abs(zmax) + np.abs(z[np.arange(n), y]) +
                                         np.log(c) + 1) + eps(dtype) * spread
    _check_loss(got, row_loss, rows, bound_rows, dtype,
                int((values.argmax(axis=1) == y).sum()) if n else 0)
    if out is not None:
        p = _softmax64(values) if n else np.zeros((0, c))
        onehot = np.eye(c)[y] if n else np.zeros((0, c))
        expected = (p - onehot) / max(n, 1)
        rel = _softmax_rel_error(values, dtype) if n else np.zeros((0, c))
        bound = rel * (p + onehot) / max(n, 1) + np.finfo(dtype).tiny
        np.testing.assert_array_less(np.abs(out - expected), bound)


@_covers("fused.sparse_cross_entropy")
@_settings(120)
@given(logits_case(), st.data())
def test_sparse_cross_entropy_matches_numpy(values, data):
    dtype, (n, c) = values.dtype, values.shape
    probs = _softmax64(values).astype(dtype) if n else values
    x, out = _over(data.draw, probs)
    labels = _labels(data.draw, n, c)
    row_loss = np.full(n, np.nan) if data.draw(st.booleans()) else None
    epsilon = data.draw(st.sampled_from([1e-7, 1e-3]))
    got = fused.sparse_cross_entropy(x, labels, out=out, row_loss=row_loss, epsilon=epsilon)
    y = labels.reshape(-1)
    picked = np.asarray(probs, np.float64)[np.arange(n), y]
    clipped = np.clip(picked, epsilon, 1 - epsilon)
    rows = -np.log(clipped)
    bound_rows = 4 * eps(dtype) * (np.abs(rows) + 1)
    _check_loss(got, row_loss, rows, bound_rows, dtype,
                int((probs.argmax(axis=1) == y).sum()) if n else 0)
    if out is not None:
        expected = np.zeros((n, c))
        inside = (picked > epsilon) & (picked < 1 - epsilon)
        expected[np.arange(n), y] = np.where(inside, -1.0 / (max(n, 1) * clipped), 0.0)
        bound = 4 * eps(dtype) * np.abs(expected) + np.finfo(dtype).tiny
        np.testing.assert_array_less(np.abs(out - expected), bound)


@st.composite
def update_case(draw):
    """[param, grad, velocity, accumulator] of one drawn dtype and shape, C-contiguous (as
    the in-place updates require), each rows of its own NaN-padded buffer."""
    dtype = draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=9))
    return [_padded_rows(draw, _values(draw, dtype, shape, lo, hi))
            for lo, hi in ((-4, 4), (-4, 4), (-1, 1), (0, 4))]


def _update_bound(dtype, *terms):
    return 16 * eps(dtype) * sum(np.abs(t) for t in terms) + np.finfo(dtype).tiny


@_covers("fused.sgd_update", "fused.sgd_momentum_update", "fused.rmsprop_update")
@pytest.mark.parametrize("rule", ["sgd", "momentum", "nesterov", "rmsprop", "rmsprop+momentum"])
@_settings(60)
@given(arrays=update_case(), data=st.data())
def test_optimizer_updates_match_numpy(rule, arrays, data):
    """One in-place step against NumPy's float64 arithmetic of the documented rule; grad is
    sometimes the very array the update writes (param, or the state it reads grad with)."""
    param, grad, velocity, accumulator = arrays
    dtype = param.dtype
    lr = data.draw(st.sampled_from([0.0, 1e-3, 0.1, 1.5]))
    m = data.draw(st.sampled_from([0.0, 0.5, 0.9]))
    alias = data.draw(st.sampled_from(["none", "none", "param", "state"]))
    if alias == "param":
        grad = param
    elif alias == "state":
        grad = accumulator if rule.startswith("rmsprop") else velocity
    p0, g0, v0, a0 = (np.asarray(a, np.float64).copy() for a in (param, grad, velocity,
                                                                 accumulator))
    if rule == "sgd":
        fused.sgd_update(param, grad, lr)
        want = {"param": (param, p0 - lr * g0, _update_bound(dtype, p0, lr * g0))}
    elif rule in ("momentum", "nesterov"):
        fused.sgd_momentum_update(param, velocity, grad, lr, m, nesterov=rule == "nesterov")
        v1 = m * v0 - lr * g0
        p1 = p0 + (m * v1 - lr * g0 if rule == "nesterov" else v1)
        want = {"velocity": (velocity, v1, _update_bound(dtype, m * v0, lr * g0)),
                "param": (param, p1, _update_bound(dtype, p0, m * v0, lr * g0, m * v1))}
    else:
        rho, epsilon = data.draw(st.sampled_from([0.0, 0.9])), 1e-7
        mom = m if rule == "rmsprop+momentum" else 0.0
        buffer = (_padded_rows(data.draw, _values(data.draw, dtype, param.shape))
                  if mom > 0 else None)
        b0 = None if buffer is None else np.asarray(buffer, np.float64).copy()
        fused.rmsprop_update(param, accumulator, grad, lr, rho, epsilon, momentum=mom,
                             momentum_buffer=buffer)
        a1 = rho * a0 + (1 - rho) * g0 * g0
        step = lr * g0 / (np.sqrt(a1) + epsilon)
        want = {"accumulator": (accumulator, a1, _update_bound(dtype, rho * a0, g0 * g0))}
        if mom > 0:
            b1 = mom * b0 + step
            want["momentum_buffer"] = (buffer, b1, _update_bound(dtype, mom * b0, step))
            want["param"] = (param, p0 - b1, _update_bound(dtype, p0, mom * b0, step))
        else:
            want["param"] = (param, p0 - step, _update_bound(dtype, p0, step))
    for name, (got, expected, bound) in want.items():
        assert got.dtype == dtype
        err = np.abs(np.asarray(got, np.float64) - expected)
        assert np.all(err <= bound), (name, got, expected)


@_covers("fused.matmul_sgd_update")
@pytest.mark.parametrize("rule", ["sgd", "momentum", "nesterov"])
@_settings(60)
@given(data=st.data())
def test_matmul_sgd_update_is_the_unfused_step(rule, data):
    """Bit for bit ops.matmul then the update loop, whether the zero-skipping product fused
    the step (float32, a mostly zeros, n >= 32) or not; a drawn as given or as a transpose."""
    draw = data.draw
    dtype = draw(DTYPES)
    m, k = draw(st.integers(1, 40)), draw(st.integers(1, 50))
    n = draw(st.sampled_from([1, 5, 32, 33, 64, 70, 130]))
    density = draw(st.sampled_from([0.0, 0.1, 0.3, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    transposed = draw(st.booleans())
    a = rng.standard_normal((k, m) if transposed else (m, k)).astype(dtype)
    a[rng.random(a.shape) >= density] = 0.0
    a = a.T if transposed else a
    b = rng.standard_normal((k, n)).astype(dtype)
    w = rng.standard_normal((m, n)).astype(dtype)
    momentum = 0.0 if rule == "sgd" else draw(st.sampled_from([0.5, 0.9]))
    v = rng.standard_normal((m, n)).astype(dtype) if momentum else None
    lr = draw(st.sampled_from([0.0, 1e-3, 0.1]))
    want_w, want_v = w.copy(), None if v is None else v.copy()
    g = ops.matmul(a, b)
    if momentum:
        fused.sgd_momentum_update(want_w, want_v, g, lr, momentum, nesterov=rule == "nesterov")
    else:
        fused.sgd_update(want_w, g, lr)
    fused.matmul_sgd_update(a, b, w, lr, momentum, v, nesterov=rule == "nesterov")
    assert np.array_equal(w.view(np.uint8), want_w.view(np.uint8))
    assert v is None or np.array_equal(v.view(np.uint8), want_v.view(np.uint8))


def test_every_public_kernel_has_a_property_test():
    public = set(ops.__all__) | {f"fused.{name}" for name in fused.__all__}
    assert COVERED == public, f"without a property test: {sorted(public - COVERED)}"


@pytest.mark.parametrize("seed", range(3))
def test_large_random_batched_matmul(seed):
    """A few bigger random shapes than hypothesis draws: batch x tile-edge sizes."""
    rng = np.random.default_rng(seed)
    m, n, k = rng.integers(1, 300, size=3)
    batch = tuple(int(v) for v in rng.integers(1, 4, size=rng.integers(0, 3)))
    a = rng.standard_normal(batch + (int(m), int(k))).astype(np.float32)
    b = rng.standard_normal((int(k), int(n))).astype(np.float32)
    assert_matmul_close(ops.matmul(a, b), a, b, np.float32)


def test_arrange_reaches_the_layouts_it_promises():
    """_arrange itself: over many draws it yields every layout feature it documents."""
    seen = set()
    arr = np.arange(2 * 1 * 3 * 4, dtype=np.float64).reshape(2, 1, 3, 4)

    @settings(max_examples=300, database=None)
    @given(st.data())
    def probe(data):
        v = _arrange(data.draw, arr)
        assert v.shape == arr.shape
        np.testing.assert_array_equal(v[:, :, :1, :1], np.broadcast_to(v, arr.shape)[:, :, :1, :1])
        s = v.strides
        outer = [abs(s[d]) for d in (0, 2, 3)]
        if v is arr:
            seen.add("c")
        if any(x < 0 for x in s):
            seen.add("negative")
        if 0 in outer:
            seen.add("zero")
        if s[1] == s[0] and v is not arr:
            seen.add("unit==outer")
        if 0 not in outer and outer != sorted(outer, reverse=True):
            seen.add("transposed")
        if 0 not in outer and abs(s[3]) == v.itemsize and abs(s[2]) > 4 * v.itemsize:
            seen.add("padded")
    probe()
    assert {"c", "negative", "zero", "unit==outer", "transposed", "padded"} <= seen, seen
