"""Fused softmax + sparse categorical cross-entropy against a NumPy reference."""
import numpy as np
import pytest

from pyblasnn import fused, losses

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
ATOL = {np.float32: 1e-6, np.float64: 1e-14}
# (n, classes): empty, single, odd, prime, the book's batch, above the parallel threshold
# the narrow kernel (<= 16 classes, blocks of 128 rows) and the wide one (stack scratch up to
# 2048 classes, heap beyond)
SHAPES = [(0, 3), (1, 1), (1, 10), (7, 3), (13, 11), (128, 10), (300, 10), (129, 16), (5, 17),
          (4001, 17), (3, 2049)]


def ref_softmax(z):
    z = z.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ref_softmax_xent(z, y):
    """(mean loss, dlogits, n_correct) in float64."""
    n, c = z.shape
    p = ref_softmax(z)
    loss = -np.log(p[np.arange(n), y]).mean() if n else 0.0
    grad = (p - np.eye(c)[y]) / max(n, 1)
    return loss, grad, int((z.argmax(axis=1) == y).sum()) if n else 0


def make(n, c, dtype, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, c)) * scale).astype(dtype)
    y = rng.integers(0, c, size=n)
    return z, y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_sparse_softmax_cross_entropy_matches_numpy(shape, dtype):
    z, y = make(*shape, dtype)
    dz = np.full_like(z, np.nan)
    loss, correct = fused.sparse_softmax_cross_entropy(z, y, out=dz)
    assert dz.shape == z.shape and dz.dtype == z.dtype
    ref_loss, ref_grad, ref_correct = ref_softmax_xent(z, y)
    assert loss == pytest.approx(ref_loss, rel=RTOL[dtype], abs=ATOL[dtype])
    np.testing.assert_allclose(dz, ref_grad, rtol=RTOL[dtype], atol=ATOL[dtype])
    assert correct == ref_correct


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_sparse_cross_entropy_on_probabilities(shape, dtype):
    z, y = make(*shape, dtype)
    p = ref_softmax(z).astype(dtype)
    dp = np.full_like(p, np.nan)
    loss, correct = fused.sparse_cross_entropy(p, y, out=dp)
    n = shape[0]
    picked = np.clip(p[np.arange(n), y].astype(np.float64), 1e-7, 1 - 1e-7)
    ref_loss = -np.log(picked).mean() if n else 0.0
    ref_grad = np.zeros(p.shape)
    inside = (picked > 1e-7) & (picked < 1 - 1e-7)
    ref_grad[np.arange(n), y] = np.where(inside, -1.0 / (max(n, 1) * picked), 0.0)
    assert loss == pytest.approx(ref_loss, rel=RTOL[dtype], abs=ATOL[dtype])
    np.testing.assert_allclose(dp, ref_grad, rtol=RTOL[dtype], atol=ATOL[dtype])
    assert correct == (int((p.argmax(axis=1) == y).sum()) if n else 0)


def test_probability_clip_gives_finite_loss_and_zero_gradient():
    p = np.array([[0.0, 1.0], [1.0, 0.0]])
    dp = np.empty_like(p)
    loss, correct = fused.sparse_cross_entropy(p, np.array([0, 0]), out=dp)
    assert loss == pytest.approx((-np.log(1e-7) - np.log(1 - 1e-7)) / 2)
    assert correct == 1
    np.testing.assert_array_equal(dp, 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_logits_give_no_nan(dtype):
    big = np.finfo(dtype).max
    z = np.array([[big, 0.0, -big], [1e30, 1e30, -1e30], [-big, -big, -big]], dtype=dtype)
    y = np.array([0, 2, 1])
    dz = np.empty_like(z)
    loss, _ = fused.sparse_softmax_cross_entropy(z, y, out=dz)
    assert np.isfinite(loss) and np.all(np.isfinite(dz))
    # row 0: p = (1, 0, 0), label 0 -> loss 0; row 1: label 2 has p = 0 -> loss 2e30 (exact
    # logsumexp - z_y); row 2: uniform -> log 3
    assert loss == pytest.approx((0.0 + (np.log(2.0) + 2e30) + np.log(3.0)) / 3, rel=1e-6)
    np.testing.assert_allclose(dz[0], [0, 0, 0], atol=1e-7)
    np.testing.assert_allclose(dz[1], np.array([0.5, 0.5, -1.0]) / 3, rtol=1e-6)
    probs = fused.softmax(z)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_float32_exp_is_faithful():
    """The vectorised float32 exp is within 1 ulp of exp (float64 reference) everywhere."""
    from pyblasnn._kernels.loss import exp_float32
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-110, 90, 2_000_000), np.linspace(-104, -87, 100_001),
                        np.linspace(-1, 1, 100_001), [0.0, -0.0, 88.72, 88.73, -103.97]])
    x = x.astype(np.float32)
    y = np.empty_like(x)
    exp_float32(x, y)
    ref = np.exp(x.astype(np.float64))
    finite = ref < np.finfo(np.float32).max
    ulp = np.spacing(ref[finite].astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(y[finite] - ref[finite]) / ulp) <= 1.0
    assert np.all(np.isinf(y[~finite]))
    special = np.array([np.nan, -np.inf, np.inf, -200, 200], np.float32)
    exp_float32(special, out := np.empty_like(special))
    np.testing.assert_array_equal(out, [np.nan, 0, np.inf, 0, np.inf])


def test_float32_log1p_is_accurate():
    """The float32 log1p of (row sum - 1) the softmax loss takes: within 2 ulp, and a
    confident row keeps its tiny loss (log of a float32 sum would round it to 0)."""
    from pyblasnn._kernels.loss import log1p_float32
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.uniform(0, 1000, 1_000_000), np.exp(rng.uniform(-100, 88, 1_000_000)),
                        np.linspace(0.40, 0.43, 10_001), np.linspace(0, 1e-3, 10_001),
                        [0.0, 1e-30, 1.0, 9.0, np.finfo(np.float32).tiny, 1e38]])
    x = x.astype(np.float32)
    y = np.empty_like(x)
    log1p_float32(x, y)
    ref = np.log1p(x.astype(np.float64))
    ulp = np.spacing(ref.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(y - ref) / ulp) <= 2.0
    special = np.array([np.inf, np.nan], np.float32)
    log1p_float32(special, out := np.empty_like(special))
    np.testing.assert_array_equal(out, [np.inf, np.nan])
    z = np.array([[0.0, -40.0, -45.0]], np.float32)          # p(label 0) = 1 - 4.3e-18
    loss, _ = fused.sparse_softmax_cross_entropy(z, np.array([0]))
    assert loss == pytest.approx(np.exp(-40.0) + np.exp(-45.0), rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_argmax_count_follows_numpy_with_nan_and_ties(dtype):
    z = np.array([[1, np.nan, 3, np.nan], [2, 5, 5, 1], [np.inf, 0, np.inf, 1]], dtype=dtype)
    y = np.array([1, 1, 0])
    loss, correct = fused.sparse_softmax_cross_entropy(z, y)
    assert correct == int((z.argmax(axis=1) == y).sum()) == 3
    assert np.isnan(loss)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lean_and_validated_paths_agree(dtype):
    z, y = make(300, 10, dtype, seed=5)
    lean_out, slow_out = np.empty_like(z), np.empty_like(z)
    rows = np.empty(300)
    lean = fused.sparse_softmax_cross_entropy(z, y.astype(np.intp), out=lean_out, row_loss=rows)
    slow = fused.sparse_softmax_cross_entropy(z, y.tolist(), out=slow_out)
    assert lean == slow
    np.testing.assert_array_equal(lean_out, slow_out)
    assert rows.mean() == pytest.approx(lean[0], rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_kernel_is_bitwise_thread_invariant(dtype):
    z, y = make(20011, 10, dtype, seed=3)      # 200k logits: the parallel path
    out1, out2 = np.empty_like(z), np.empty_like(z)
    r1 = fused.sparse_softmax_cross_entropy(z, y, out=out1, n_threads=1)
    r2 = fused.sparse_softmax_cross_entropy(z, y, out=out2, n_threads=2)
    assert r1 == r2                             # same float bits, same count
    np.testing.assert_array_equal(out1, out2)
    p = fused.softmax(z, n_threads=1)
    np.testing.assert_array_equal(p, fused.softmax(z, n_threads=2))
    assert fused.sparse_cross_entropy(p, y, n_threads=1) == \
        fused.sparse_cross_entropy(p, y, n_threads=2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 4), (1, 1), (5, 7), (4001, 17)])
def test_softmax_and_backward_match_numpy(shape, dtype):
    z, _ = make(*shape, dtype)
    p = fused.softmax(z)
    assert p.shape == z.shape and p.dtype == z.dtype
    np.testing.assert_allclose(p, ref_softmax(z), rtol=RTOL[dtype], atol=ATOL[dtype])
    dy = make(*shape, dtype, seed=9)[0]
    dx = fused.softmax_backward(dy, p)
    ref = p * (dy - (dy.astype(np.float64) * p).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(dx, ref, rtol=10 * RTOL[dtype], atol=10 * ATOL[dtype])
    inplace = z.copy()
    fused.softmax(inplace, out=inplace)
    np.testing.assert_array_equal(inplace, p)


def test_softmax_backward_central_differences():
    rng = np.random.default_rng(1)
    z, w = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    f = lambda z: float((ref_softmax(z) * w).sum())     # noqa: E731
    num = np.zeros_like(z)
    h = 1e-6
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        num[idx] = (f(zp) - f(zm)) / (2 * h)
    np.testing.assert_allclose(fused.softmax_backward(w, fused.softmax(z)), num, atol=1e-8)


def test_fused_gradient_central_differences():
    z, y = make(6, 4, np.float64, seed=5)
    dz = np.empty_like(z)
    fused.sparse_softmax_cross_entropy(z, y, out=dz)
    h = 1e-6
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        num = (fused.sparse_softmax_cross_entropy(zp, y)[0]
               - fused.sparse_softmax_cross_entropy(zm, y)[0]) / (2 * h)
        assert dz[idx] == pytest.approx(num, abs=1e-8)


def test_loss_class_probabilities_and_logits():
    z, y = make(9, 4, np.float32)
    p = ref_softmax(z).astype(np.float32)
    ref = ref_softmax_xent(z, y)[0]
    assert losses.SparseCategoricalCrossentropy()(y, p) == pytest.approx(ref, rel=1e-5)
    assert losses.SparseCategoricalCrossentropy(from_logits=True)(y, z) == \
        pytest.approx(ref, rel=1e-5)
    per_sample = losses.sparse_categorical_crossentropy(y.reshape(-1, 1), p)
    assert per_sample.shape == (9,) and per_sample.dtype == np.float32
    assert float(np.mean(per_sample)) == pytest.approx(ref, rel=1e-5)
    from_logits = np.asarray(losses.sparse_categorical_crossentropy(y, z, from_logits=True))
    np.testing.assert_allclose(from_logits, np.asarray(per_sample), rtol=2e-5)
    assert isinstance(losses.get("sparse_categorical_crossentropy"),
                      losses.SparseCategoricalCrossentropy)
    assert repr(losses.SparseCategoricalCrossentropy(True)) == \
        "SparseCategoricalCrossentropy(from_logits=True)"


Z = np.zeros((3, 4), dtype=np.float32)
BAD = [
    # (call, exception, message fragment)
    (lambda: fused.sparse_softmax_cross_entropy(Z, [0, 1, 4]), ValueError, "label 4 out of range"),
    (lambda: fused.sparse_softmax_cross_entropy(Z, [0, -1, 2]), ValueError, "labels must be >= 0"),
    (lambda: fused.sparse_softmax_cross_entropy(Z, np.array([0, -1, 2])), ValueError,
     "label -1 out of range"),
    (lambda: fused.sparse_softmax_cross_entropy(Z, [0.0, 1.5, 2.0]), ValueError, "non-integer"),
    (lambda: fused.sparse_softmax_cross_entropy(Z, ["a", "b", "c"]), ValueError,
     "integer class indices"),
    (lambda: fused.sparse_softmax_cross_entropy(Z, [0, 1]), ValueError, "got 2 labels for 3"),
    (lambda: fused.sparse_softmax_cross_entropy(Z, [[0, 1, 2]]), ValueError, "1-D"),
    (lambda: fused.sparse_softmax_cross_entropy(Z.astype(int), [0, 1, 2]), TypeError,
     "float32 or float64"),
    (lambda: fused.sparse_softmax_cross_entropy(Z[0], [0]), ValueError, "must be 2-D"),
    (lambda: fused.sparse_softmax_cross_entropy(np.zeros((4, 3), np.float32).T, [0, 1, 2]),
     ValueError, "C-contiguous"),
    (lambda: fused.sparse_softmax_cross_entropy(Z.tolist(), [0, 1, 2]), TypeError,
     "numpy.ndarray"),
    (lambda: fused.sparse_softmax_cross_entropy(Z, [0, 1, 2], out=np.empty((3, 4))),
     TypeError, "the result has dtype float32"),
    (lambda: fused.sparse_softmax_cross_entropy(Z, [0, 1, 2], out=np.empty((4, 3), np.float32)),
     ValueError, "the result has shape (3, 4)"),
    (lambda: fused.sparse_softmax_cross_entropy(Z, [0, 1, 2], n_threads=0), ValueError,
     "n_threads must be a positive int"),
    (lambda: fused.sparse_cross_entropy(Z, [0, 1, 2], epsilon=0), ValueError, "epsilon"),
    (lambda: fused.softmax_backward(Z, np.zeros((3, 5), np.float32)), ValueError,
     "shapes differ"),
    (lambda: losses.SparseCategoricalCrossentropy()([0, 1, 9], Z), ValueError, "out of range"),
    (lambda: losses.get("mse"), ValueError, "unknown loss 'mse'"),
]


@pytest.mark.parametrize("call, exc, fragment", BAD)
def test_bad_input(call, exc, fragment):
    with pytest.raises(exc, match=None) as info:
        call()
    assert fragment in str(info.value)
