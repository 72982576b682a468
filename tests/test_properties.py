"""Property-based tests (hypothesis): every op agrees with NumPy on random compatible shapes
(zero sizes, broadcast batch axes, 1-D operands) in the memory layouts real code produces.

Operands are drawn as values, then laid out by ``_arrange``: any axis order in memory
(C, Fortran, transposes of >= 3-D arrays), steps of +-1..3 (negative steps, step-2 views),
padding around every axis (views into a larger buffer, big[..., :m, :]), zero strides
(np.broadcast_to), and size-1 axes given arbitrary strides: equal to a neighbour's, 0,
negative or huge (NumPy never reads them, so any value is legal there). The padding is
filled with NaN, so a kernel that reads outside its view (an out-of-bounds read within the
buffer, or past it where ASan sees it) produces NaN instead of a plausible number.

Example counts are per test under the "ci" profile (derandomized, registered in
conftest.py); HYPOTHESIS_PROFILE=long explores more.
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pyblasnn import ops

from conftest import assert_matmul_close, eps, examples

DTYPES = st.sampled_from([np.float32, np.float64])


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
    big = np.full([extents[d] for d in order], np.nan, arr.dtype)
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


def _assert_sum_close(got, full, abs_full, shape, dtype, terms):
    """got == full summed to shape, within the rounding bound of `terms`-term sums."""
    assert got.shape == tuple(shape) and got.dtype == dtype
    expected = _sum_to(full, shape)
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


@_settings(120)
@given(broadcast_pair(special=False), st.data())
def test_add_subtract_backward_sum_broadcast_axes(pair, data):
    x, y, shape = pair
    dz = _arrange(data.draw, _values(data.draw, x.dtype, shape))
    dz64 = np.asarray(dz, np.float64)
    terms = max(1, int(np.prod(shape)))
    dx, dy = ops.add_backward(dz, x.shape, y.shape)
    _assert_sum_close(dx, dz64, np.abs(dz64), x.shape, x.dtype, terms)
    _assert_sum_close(dy, dz64, np.abs(dz64), y.shape, x.dtype, terms)
    dx, dy = ops.subtract_backward(dz, x.shape, y.shape)
    _assert_sum_close(dx, dz64, np.abs(dz64), x.shape, x.dtype, terms)
    _assert_sum_close(dy, -dz64, np.abs(dz64), y.shape, x.dtype, terms)


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
    terms = max(1, int(np.prod(shape))) + 4  # + the roundings of each term
    _assert_sum_close(dx, gx, np.abs(gx), x.shape, x.dtype, terms)
    _assert_sum_close(dy, gy, np.abs(gy), y.shape, x.dtype, terms)


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
    terms = max(1, int(np.prod(shape)))   # at least as many as any gradient element sums
    _assert_sum_close(da.reshape(a2s), gda, gdab, a2s, dtype, terms)
    _assert_sum_close(db.reshape(b2s), gdb, gdbb, b2s, dtype, terms)
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
