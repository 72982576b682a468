"""out=(dx_out, dy_out) on the backward ops: the gradients land in the given arrays, bit for
bit what out=None returns, whichever inputs those arrays alias."""
import itertools

import numpy as np
import pytest

from pyblasnn import ops

from conftest import assert_sum_to_close, randn

# name -> (x shape, y shape) cases: broadcast either way, equal, 0-d, zero-size; for matmul
# 1-D operands, broadcast batches and the shared-b GEMM
CASES = {
    "add": [((32, 10), (10,)), ((5, 1, 4), (3, 1)), ((6, 5), (6, 5)), ((), (3, 2)), ((0, 3), (3,))],
    "subtract": [((32, 10), (10,)), ((10,), (32, 10)), ((6, 5), (6, 5)), ((3, 2), ()),
                 ((0, 3), (3,))],
    "multiply": [((32, 10), (10,)), ((10,), (32, 10)), ((5, 1, 4), (3, 1)), ((6, 5), (6, 5)),
                 ((), (3, 2)), ((0, 3), (3,))],
    "divide": [((32, 10), (10,)), ((10,), (32, 10)), ((5, 1, 4), (3, 1)), ((6, 5), (6, 5)),
               ((3, 2), ()), ((0, 3), (3,))],
    "maximum": [((32, 10), (10,)), ((10,), (32, 10)), ((5, 1, 4), (3, 1)), ((6, 5), (6, 5)),
                ((), (3, 2)), ((0, 3), (3,))],
    "matmul": [((7, 6), (6, 9)), ((5,), (5, 3)), ((3, 5), (5,)), ((2, 3, 4), (4, 5)),
               ((3, 4), (2, 4, 5)), ((1, 3, 4), (2, 4, 5)), ((2, 3, 4), (2, 4, 5)), ((0, 4), (4, 2))],
}
ALL = [(name, xs, ys) for name in CASES for xs, ys in CASES[name]]
TAKES_SHAPES = {"add", "subtract"}


def _inputs(name, xs, ys, dtype, rng):
    x = randn(rng, xs, dtype)
    y = randn(rng, ys, dtype)
    if name == "divide":
        y = y + np.asarray(3.0, dtype)  # away from 0
    z = getattr(ops, name)(x, y)
    return randn(rng, np.shape(z), dtype), x, y


def _call(name, dz, x, y, out):
    args = (dz, x.shape, y.shape) if name in TAKES_SHAPES else (dz, x, y)
    return getattr(ops, name + "_backward")(*args, out=out)


def _copies(*arrays):
    return [a.copy() for a in arrays]


@pytest.mark.parametrize("name,xs,ys", ALL, ids=[f"{n}-{x}-{y}" for n, x, y in ALL])
def test_out_receives_the_gradients(name, xs, ys, dtype, rng):
    dz, x, y = _inputs(name, xs, ys, dtype, rng)
    expected = _call(name, *_copies(dz, x, y), None)
    before = _copies(dz, x, y)
    for which in ((0, 1), (0,), (1,)):
        outs = [np.full(s, np.nan, dtype) if i in which else None
                for i, s in enumerate((xs, ys))]
        got = _call(name, dz, x, y, tuple(outs))
        assert isinstance(got, tuple) and len(got) == 2
        for i in range(2):
            if outs[i] is not None:
                assert got[i] is outs[i], f"gradient {i} is not out[{i}]"
            assert got[i].dtype == dtype and got[i].shape == (xs, ys)[i]
            np.testing.assert_array_equal(got[i], expected[i])
        for a, b in zip((dz, x, y), before):
            np.testing.assert_array_equal(a, b)  # inputs are read, never written


# (x shape, y shape) where out entries can be the inputs themselves
ALIAS_CASES = {"add": [((6, 5), (6, 5)), ((6, 5), (5,))],
               "subtract": [((6, 5), (6, 5)), ((5,), (6, 5))],
               "multiply": [((6, 5), (6, 5)), ((6, 5), (5,)), ((5,), (6, 5))],
               "divide": [((6, 5), (6, 5)), ((6, 5), (5,)), ((5,), (6, 5))],
               "maximum": [((6, 5), (6, 5)), ((6, 5), (5,)), ((5,), (6, 5))],
               "matmul": [((5, 5), (5, 5)), ((2, 5, 5), (5, 5)), ((5,), (5, 5))]}
ALIAS = [(name, xs, ys) for name in ALIAS_CASES for xs, ys in ALIAS_CASES[name]]


@pytest.mark.parametrize("name,xs,ys", ALIAS, ids=[f"{n}-{x}-{y}" for n, x, y in ALIAS])
def test_out_aliasing_the_inputs(name, xs, ys, dtype, rng):
    """Writing a gradient over dz, x or y (an in-place backward) gives the same gradients:
    the second gradient still reads the inputs as they were."""
    dz0, x0, y0 = _inputs(name, xs, ys, dtype, rng)
    expected = _call(name, *_copies(dz0, x0, y0), None)
    names = ("dz", "x", "y")
    for pick in itertools.product((None, 0, 1, 2), repeat=2):
        if pick[0] is not None and pick[0] == pick[1]:
            continue  # one array for both gradients is refused (see test_bad_input)
        arrays = _copies(dz0, x0, y0)
        outs = [None if p is None else arrays[p] for p in pick]
        if any(o is not None and o.shape != s for o, s in zip(outs, (xs, ys))):
            continue
        got = _call(name, *arrays, tuple(outs))
        for i in range(2):
            label = f"out={tuple(None if p is None else names[p] for p in pick)}, gradient {i}"
            if outs[i] is not None:
                assert got[i] is outs[i], label
            np.testing.assert_array_equal(got[i], expected[i], err_msg=label)


@pytest.mark.parametrize("name", sorted(CASES))
def test_out_partially_overlapping_an_input(name, dtype, rng):
    """out[i] a view shifted by one element, either way, over the buffer holding dz (or x):
    a loop writing out[k] before it reads input[k + 1] sees the second way clobbered."""
    shape = (6, 5) if name != "matmul" else (5, 5)
    dz0, x0, y0 = _inputs(name, shape, shape, dtype, rng)
    expected = _call(name, *_copies(dz0, x0, y0), None)
    for holder, i, out_first in itertools.product((0, 1), (0, 1), (True, False)):
        # dz or x lives in the shared buffer; out[i] starts one element before or after it
        buf = np.empty(dz0.size + 1, dtype)
        arrays = _copies(dz0, x0, y0)
        here, there = (slice(1, None), slice(None, -1)) if out_first else \
            (slice(None, -1), slice(1, None))
        buf[here] = arrays[holder].reshape(-1)
        arrays[holder] = buf[here].reshape(shape)
        outs = [None, None]
        outs[i] = buf[there].reshape(shape)
        got = _call(name, *arrays, tuple(outs))
        assert got[i] is outs[i]
        label = f"{('dz', 'x')[holder]} holds the buffer, out[{i}] starts " + \
            ("before" if out_first else "after")
        np.testing.assert_array_equal(got[0], expected[0], err_msg=label)
        np.testing.assert_array_equal(got[1], expected[1], err_msg=label)


@pytest.mark.parametrize("name,sign", [("add", 1), ("subtract", -1)])
def test_bias_gradient_into_a_buffer(name, sign, dtype, rng):
    """The column-sum fast path of a bias (x + b) honours out: db lands in out[1], dz passes
    through as dx unless out[0] asks for a copy."""
    dz = randn(rng, (64, 33), dtype)
    bwd = getattr(ops, name + "_backward")
    db = np.full(33, np.nan, dtype)
    dx, got = bwd(dz, (64, 33), (33,), out=(None, db))
    assert dx is dz and got is db
    # NumPy's column sums are the oracle (not sum_to_shape, which is the code under test)
    assert_sum_to_close(db, sign * dz.astype(np.float64), (33,), dtype)
    first = db.copy()
    dx_buf = np.empty_like(dz)
    db[:] = np.nan
    dx, got = bwd(dz, (64, 33), (33,), out=(dx_buf, db))
    assert dx is dx_buf and got is db
    np.testing.assert_array_equal(dx_buf, dz)
    np.testing.assert_array_equal(db, first)


def test_matmul_backward_out_with_transposed_operands(dtype, rng):
    """Fortran-ordered and reversed operands into C-contiguous gradient buffers."""
    a = np.asfortranarray(randn(rng, (37, 29), dtype))
    b = randn(rng, (29, 41), dtype)[::-1]
    dc = randn(rng, (37, 41), dtype)
    expected = ops.matmul_backward(dc, a, b)
    da, db = np.empty((37, 29), dtype), np.empty((29, 41), dtype)
    got = ops.matmul_backward(dc, a, b, out=(da, db))
    assert got[0] is da and got[1] is db
    np.testing.assert_array_equal(da, expected[0])
    np.testing.assert_array_equal(db, expected[1])
