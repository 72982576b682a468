"""Property-based tests (hypothesis): broadcasting arithmetic and matmul agree with NumPy on
random compatible shapes, including zero sizes, broadcast batch axes and 1-D operands."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pyblasnn import ops

from conftest import assert_matmul_close

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = st.sampled_from([np.float32, np.float64])


def _layout(draw, arr):
    """The same values as C order, Fortran order, reversed, or a step-2 view."""
    kind = draw(st.sampled_from(["c", "f", "rev", "step"]))
    if arr.ndim == 0 or kind == "c":
        return arr
    if kind == "f":
        return np.asfortranarray(arr)
    if kind == "rev":
        return np.ascontiguousarray(arr[..., ::-1])[..., ::-1]
    big = np.zeros(arr.shape[:-1] + (2 * arr.shape[-1],), arr.dtype)
    big[..., ::2] = arr
    return big[..., ::2]


@st.composite
def broadcast_pair(draw):
    dtype = draw(DTYPES)
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=5,
                                                    min_side=0, max_side=6))
    elems = st.floats(width=32)  # includes NaN, +-Inf, -0.0 and values that overflow
    x = draw(hnp.arrays(dtype, shapes.input_shapes[0], elements=elems))
    y = draw(hnp.arrays(dtype, shapes.input_shapes[1], elements=elems))
    return _layout(draw, x), _layout(draw, y), shapes.result_shape


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide"])
@SETTINGS
@given(pair=broadcast_pair())
def test_arithmetic_broadcasting_matches_numpy(name, pair):
    x, y, shape = pair
    got = getattr(ops, name)(x, y)
    with np.errstate(all="ignore"):
        expected = getattr(np, name)(x, y)
    assert got.shape == shape == expected.shape
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.signbit(got) | np.isnan(got),
                                  np.signbit(expected) | np.isnan(expected))


@SETTINGS
@given(broadcast_pair())
def test_add_backward_sums_broadcast_axes(pair):
    x, y, shape = pair
    dz = np.ones(shape, x.dtype)
    dx, dy = ops.add_backward(dz, x.shape, y.shape)
    assert dx.shape == x.shape and dy.shape == y.shape
    # d(sum(x + y))/dx counts how many output elements each x element feeds: an exact integer
    fan_x = np.prod(shape, dtype=np.int64) // max(1, np.prod(x.shape, dtype=np.int64)) if x.size else 0
    fan_y = np.prod(shape, dtype=np.int64) // max(1, np.prod(y.shape, dtype=np.int64)) if y.size else 0
    np.testing.assert_array_equal(dx, np.full(x.shape, fan_x, x.dtype))
    np.testing.assert_array_equal(dy, np.full(y.shape, fan_y, x.dtype))


@st.composite
def matmul_pair(draw):
    """Compatible operands: 1-D or (batch..., m, k) @ (batch..., k, n) with broadcast batches.

    Shapes are what hypothesis explores (and shrinks); values come from a drawn seed.
    """
    dtype = draw(DTYPES)
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2,
                                                   min_side=0, max_side=3))
    sides = st.one_of(st.integers(0, 20), st.sampled_from([5, 6, 7, 8, 9, 15, 16, 17, 33]))
    m, n, k = draw(sides), draw(sides), draw(sides)
    a_1d = draw(st.booleans()) and not batch.input_shapes[0]
    b_1d = draw(st.booleans()) and not batch.input_shapes[1]
    a_shape = (k,) if a_1d else batch.input_shapes[0] + (m, k)
    b_shape = (k,) if b_1d else batch.input_shapes[1] + (k, n)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    a = rng.uniform(-4, 4, a_shape).astype(dtype)
    b = rng.uniform(-4, 4, b_shape).astype(dtype)
    return _layout(draw, a), _layout(draw, b), np.matmul(a, b).shape


@SETTINGS
@given(matmul_pair())
def test_matmul_matches_numpy(pair):
    a, b, shape = pair
    got = ops.matmul(a, b)
    assert np.shape(got) == shape == np.matmul(a, b).shape
    assert_matmul_close(got, a, b, a.dtype)


@SETTINGS
@given(matmul_pair(), st.sampled_from([1, 2, 3]))
def test_matmul_thread_count_invariant(pair, n_threads):
    a, b, _ = pair
    one = np.asarray(ops.matmul(a, b, n_threads=1))
    other = np.asarray(ops.matmul(a, b, n_threads=n_threads))
    assert one.tobytes() == other.tobytes()


@pytest.mark.parametrize("seed", range(3))
def test_large_random_batched_matmul(seed):
    """A few bigger random shapes than hypothesis draws: batch x tile-edge sizes."""
    rng = np.random.default_rng(seed)
    m, n, k = rng.integers(1, 300, size=3)
    batch = tuple(int(v) for v in rng.integers(1, 4, size=rng.integers(0, 3)))
    a = rng.standard_normal(batch + (int(m), int(k))).astype(np.float32)
    b = rng.standard_normal((int(k), int(n))).astype(np.float32)
    assert_matmul_close(ops.matmul(a, b), a, b, np.float32)
