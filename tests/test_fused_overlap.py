"""pyblasnn.fused with outputs that overlap their inputs: NumPy's answer or a clear refusal.

Every case is computed twice: once on fresh, disjoint arrays (the reference) and once with
``out`` / ``row_loss`` laid over the inputs' memory (shifted by one element, by one row, or
the very same array), from the same input values.
"""
import numpy as np
import pytest

from pyblasnn import fused

DTYPES = [np.float32, np.float64]
N, C = 37, 10


def _raw(nbytes):
    """A zeroed byte buffer, 64-byte aligned, to lay several arrays over."""
    raw = np.zeros(nbytes + 64, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + nbytes]


def _view(raw, byte_offset, dtype, shape):
    count = int(np.prod(shape))
    itemsize = np.dtype(dtype).itemsize
    return raw[byte_offset:byte_offset + count * itemsize].view(dtype).reshape(shape)


def _values(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# shift in elements of out relative to the input inside one buffer (0 = the same array)
SHIFTS = [0, 1, -1, C, -C, 3 * C + 7, N * C - 1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shift", SHIFTS)
def test_softmax_out_overlapping_x(dtype, shift):
    values = _values((N, C), dtype, 1)
    ref = fused.softmax(values.copy())
    item = np.dtype(dtype).itemsize
    raw = _raw((N * C + 2 * abs(shift)) * item)
    base = abs(shift)
    x = _view(raw, base * item, dtype, (N, C))
    out = _view(raw, (base + shift) * item, dtype, (N, C))
    x[...] = values
    got = fused.softmax(x, out=out)
    assert got is out
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("over", ["dy", "y"])
def test_softmax_backward_out_overlapping_an_input(dtype, shift, over):
    y_values = fused.softmax(_values((N, C), dtype, 2))
    dy_values = _values((N, C), dtype, 3)
    ref = fused.softmax_backward(dy_values.copy(), y_values.copy())
    item = np.dtype(dtype).itemsize
    raw = _raw((N * C + 2 * abs(shift)) * item)
    base = abs(shift)
    shared = _view(raw, base * item, dtype, (N, C))
    out = _view(raw, (base + shift) * item, dtype, (N, C))
    if over == "dy":
        dy, y = shared, y_values.copy()
    else:
        dy, y = dy_values.copy(), shared
    shared[...] = dy_values if over == "dy" else y_values
    got = fused.softmax_backward(dy, y, out=out)
    assert got is out
    np.testing.assert_array_equal(out, ref)


def _labels(seed=4):
    return np.random.default_rng(seed).integers(0, C, N).astype(np.intp)


def _loss_fn(kind):
    if kind == "logits":
        return lambda x, y, **kw: fused.sparse_softmax_cross_entropy(x, y, **kw)
    return lambda x, y, **kw: fused.sparse_cross_entropy(x, y, **kw)


def _inputs(kind, dtype):
    z = _values((N, C), dtype, 5)
    return (z if kind == "logits" else fused.softmax(z)), _labels()


@pytest.mark.parametrize("kind", ["logits", "probs"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shift", SHIFTS)
def test_loss_out_overlapping_the_scores(kind, dtype, shift):
    fn = _loss_fn(kind)
    x_values, labels = _inputs(kind, dtype)
    ref_out, ref_rows = np.empty_like(x_values), np.empty(N)
    ref = fn(x_values.copy(), labels, out=ref_out, row_loss=ref_rows)
    item = np.dtype(dtype).itemsize
    raw = _raw((N * C + 2 * abs(shift)) * item)
    base = abs(shift)
    x = _view(raw, base * item, dtype, (N, C))
    out = _view(raw, (base + shift) * item, dtype, (N, C))
    x[...] = x_values
    rows = np.empty(N)
    assert fn(x, labels, out=out, row_loss=rows) == ref
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(rows, ref_rows)


@pytest.mark.parametrize("kind", ["logits", "probs"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("byte_shift", [0, 8, 8 * C, -8 * C, 8 * (N * C // 2)])
def test_loss_row_loss_overlapping_the_scores(kind, dtype, byte_shift):
    fn = _loss_fn(kind)
    x_values, labels = _inputs(kind, dtype)
    ref_out, ref_rows = np.empty_like(x_values), np.empty(N)
    ref = fn(x_values.copy(), labels, out=ref_out, row_loss=ref_rows)
    nbytes = N * C * np.dtype(dtype).itemsize + 2 * abs(byte_shift) + 8 * N
    raw = _raw(nbytes)
    base = abs(byte_shift)
    x = _view(raw, base, dtype, (N, C))
    rows = _view(raw, base + byte_shift, np.float64, (N,))
    x[...] = x_values
    out = np.empty_like(x_values)
    assert fn(x, labels, out=out, row_loss=rows) == ref
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(rows, ref_rows)


@pytest.mark.parametrize("kind", ["logits", "probs"])
@pytest.mark.parametrize("which", ["out", "row_loss"])
def test_loss_outputs_overlapping_the_labels(kind, which):
    fn = _loss_fn(kind)
    x_values, label_values = _inputs(kind, np.float64)
    ref_out, ref_rows = np.empty_like(x_values), np.empty(N)
    ref = fn(x_values, label_values, out=ref_out, row_loss=ref_rows)
    raw = _raw(8 * N * C + 8 * N)
    labels = _view(raw, 8 * 3, np.intp, (N,))  # inside the output's bytes
    if which == "out":
        out, rows = _view(raw, 0, np.float64, (N, C)), np.empty(N)
    else:
        out, rows = np.empty_like(x_values), _view(raw, 0, np.float64, (N,))
    labels[...] = label_values
    assert fn(x_values, labels, out=out, row_loss=rows) == ref
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(rows, ref_rows)


@pytest.mark.parametrize("kind", ["logits", "probs"])
def test_loss_out_and_row_loss_overlapping_each_other_is_refused(kind):
    fn = _loss_fn(kind)
    x, labels = _inputs(kind, np.float64)
    raw = _raw(8 * N * C)
    out = _view(raw, 0, np.float64, (N, C))
    rows = _view(raw, 8 * 5, np.float64, (N,))
    with pytest.raises(ValueError, match="out and row_loss overlap in memory"):
        fn(x, labels, out=out, row_loss=rows)


# ----------------------------------------------------------------------- optimizer updates
def _state(n, seed, positive=False):
    a = np.random.default_rng(seed).standard_normal(n)
    return np.abs(a) + 0.1 if positive else a


UPDATES = {
    "sgd": (lambda w, g, s: fused.sgd_update(w, g, 0.1), 0),
    "momentum": (lambda w, g, s: fused.sgd_momentum_update(w, s[0], g, 0.1, 0.9), 1),
    "nesterov": (lambda w, g, s: fused.sgd_momentum_update(w, s[0], g, 0.1, 0.9,
                                                           nesterov=True), 1),
    "rmsprop": (lambda w, g, s: fused.rmsprop_update(w, s[0], g, 0.1, 0.9, 1e-7), 1),
    "rmsprop_momentum": (lambda w, g, s: fused.rmsprop_update(
        w, s[0], g, 0.1, 0.9, 1e-7, momentum=0.5, momentum_buffer=s[1]), 2),
}


ALIASES = [(rule, grad_is) for rule, (_, n_states) in UPDATES.items()
           for grad_is in ["param"] + [f"state{i}" for i in range(n_states)]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [100, 40000])      # serial and parallel spans
@pytest.mark.parametrize("rule, grad_is", ALIASES)
def test_update_with_grad_being_an_updated_array(rule, grad_is, n, dtype):
    """grad may be the parameter or a state array itself: the update uses grad's values as
    they were at the call, as if it had been a separate array."""
    call, n_states = UPDATES[rule]
    w0 = _state(n, 1).astype(dtype)
    s0 = [_state(n, 2 + i, positive=True).astype(dtype) for i in range(n_states)]
    alias = w0 if grad_is == "param" else s0[int(grad_is[-1])]
    w_ref, s_ref = w0.copy(), [s.copy() for s in s0]
    call(w_ref, alias.copy(), s_ref)
    w, s = w0.copy(), [x.copy() for x in s0]
    grad = w if grad_is == "param" else s[int(grad_is[-1])]
    call(w, grad, s)
    np.testing.assert_array_equal(w, w_ref)
    for got, ref in zip(s, s_ref):
        np.testing.assert_array_equal(got, ref)
    # a view of the same memory (not the same object) is the same case
    w, s = w0.copy(), [x.copy() for x in s0]
    grad = (w if grad_is == "param" else s[int(grad_is[-1])])[:]
    call(w, grad, s)
    np.testing.assert_array_equal(w, w_ref)


@pytest.mark.parametrize("rule", list(UPDATES))
def test_update_partial_overlaps_are_refused(rule):
    call, n_states = UPDATES[rule]
    buf = np.zeros(400)
    w = buf[:100]
    for grad in (buf[1:101], buf[50:150]):          # grad partly over param
        with pytest.raises(ValueError, match="overlap in memory"):
            call(w, grad, [np.ones(100) for _ in range(n_states)])
    if n_states:
        states = [buf[99:199]] + [np.ones(100) for _ in range(n_states - 1)]
        with pytest.raises(ValueError, match="overlap in memory"):
            call(w, np.ones(100), states)           # state partly over param
        states = [buf[200:300]] + [np.ones(100) for _ in range(n_states - 1)]
        with pytest.raises(ValueError, match="overlap in memory"):
            call(w, buf[201:301], states)           # grad partly over a state
