"""The optimizer step fused into the product that makes the gradient.

``fused.matmul_sgd_update`` (and through it ``Optimizer.apply(product=...)`` and ``fit``'s
first layer) must give the bits of the unfused step, ``ops.matmul`` then the update loop,
whether or not the zero-skipping product takes the step into its epilogue, on every SIMD
ISA and thread count. Also here: the zero-skipping product's row groups (rows sharing one
column list) never let one row's result depend on the other rows of its group.
"""
import numpy as np
import pytest

from pyblasnn import fused, keras, ops
from pyblasnn._kernels import linalg as _la

SIMD = [isa for isa in ("avx512", "avx2") if isa in _la.supported_isas()]


def _fuses():
    """Whether the ISA in use (PYBLASNN_ISA may pick portable) has the zero-skipping path."""
    return _la.kernel_name() != "portable"


@pytest.fixture(autouse=True)
def _restore_isa():
    yield
    _la.set_isa(_la.default_isa())


def _sparse(rng, shape, density, dtype=np.float32):
    a = rng.standard_normal(shape).astype(dtype)
    a[rng.random(shape) >= density] = 0.0
    return a


def _unfused(a, b, w, v, lr, momentum, nesterov):
    w, v = w.copy(), None if v is None else v.copy()
    g = ops.matmul(a, b)
    if momentum > 0:
        fused.sgd_momentum_update(w, v, g, lr, momentum, nesterov)
    else:
        fused.sgd_update(w, g, lr)
    return w, v


def _fused(a, b, w, v, lr, momentum, nesterov, n_threads):
    w, v = w.copy(), None if v is None else v.copy()
    done = fused.matmul_sgd_update(a, b, w, lr, momentum, v, nesterov, n_threads=n_threads)
    return done, w, v


def _same(x, y):
    return x is None and y is None or np.array_equal(x.view(np.uint8), y.view(np.uint8))


@pytest.mark.parametrize("rule", ["sgd", "momentum", "nesterov"])
@pytest.mark.parametrize("m, k, n, transposed", [
    (784, 128, 512, True),     # MNIST's x.T @ dh
    (100, 37, 65, True),       # a partial column block, a last row group of 4
    (33, 300, 40, False),      # contiguous rows of A, n below one column block
    (7, 64, 200, False),
])
def test_fused_step_has_the_unfused_bits(rule, m, k, n, transposed):
    rng = np.random.default_rng(m + k + n)
    a = _sparse(rng, (k, m) if transposed else (m, k), 0.2)
    a = a.T if transposed else a
    b = rng.standard_normal((k, n)).astype(np.float32)
    w = rng.standard_normal((m, n)).astype(np.float32)
    momentum = 0.0 if rule == "sgd" else 0.9
    v = rng.standard_normal((m, n)).astype(np.float32) if momentum else None
    refs = []
    for isa in SIMD + ["portable"]:
        _la.set_isa(isa)
        ref_w, ref_v = _unfused(a, b, w, v, 0.01, momentum, rule == "nesterov")
        assert not np.array_equal(ref_w, w)
        refs.append(ref_w)
        for nt in (1, 2):
            done, fw, fv = _fused(a, b, w, v, 0.01, momentum, rule == "nesterov", nt)
            assert done == (isa != "portable"), (isa, nt)   # the zero-skipping path fused it
            assert _same(fw, ref_w) and _same(fv, ref_v), (isa, nt)
    assert all(_same(r, refs[0]) for r in refs[:len(SIMD)])   # avx512 and avx2 agree


@pytest.mark.parametrize("case", ["dense", "float64", "one row", "inf in b"])
def test_unfusable_products_fall_back_with_the_same_bits(case):
    rng = np.random.default_rng(5)
    dtype = np.float64 if case == "float64" else np.float32
    m = 1 if case == "one row" else 50
    a = _sparse(rng, (m, 80), 1.0 if case == "dense" else 0.2, dtype)
    b = rng.standard_normal((80, 64)).astype(dtype)
    if case == "inf in b":
        b[3, 3] = np.inf
        a[:, 3] = 0.0          # 0 * inf: NaN in every row, as the dense product gives
    w = rng.standard_normal((m, 64)).astype(dtype)
    v = np.zeros_like(w)
    grad = np.empty_like(w)
    with np.errstate(invalid="ignore"):
        ref_w, ref_v = _unfused(a, b, w, v, 0.1, 0.5, False)
        fw, fv = w.copy(), v.copy()
        assert fused.matmul_sgd_update(a, b, fw, 0.1, 0.5, fv, grad=grad) is False
    assert _same(fw, ref_w) and _same(fv, ref_v)
    np.testing.assert_array_equal(grad, ops.matmul(a, b))   # the workspace got a @ b
    if case == "inf in b":
        assert np.isnan(fw).all(axis=0)[3]


def test_a_fused_step_leaves_the_workspace_alone():
    if not _fuses():
        pytest.skip("the portable ISA has no zero-skipping path to fuse into")
    rng = np.random.default_rng(6)
    a, b = _sparse(rng, (128, 784), 0.2).T, rng.standard_normal((128, 512)).astype(np.float32)
    w = rng.standard_normal((784, 512)).astype(np.float32)
    grad = np.full_like(w, 7.0)
    assert fused.matmul_sgd_update(a, b, w, 0.1, grad=grad) is True
    assert (grad == 7.0).all()


def test_a_rows_result_does_not_depend_on_its_group():
    """Rows share a column list with up to five others; the listed zeros of a row add
    exactly nothing, so changing every other row leaves each row's bits alone."""
    rng = np.random.default_rng(8)
    a = _sparse(rng, (128, 784), 0.19)
    b = rng.standard_normal((784, 512)).astype(np.float32)
    before = _la.sparse_products()
    c = ops.matmul(a, b)
    other = _sparse(rng, (128, 784), 0.19)
    for keep in (0, 5, 6, 127):
        a2 = other.copy()
        a2[keep] = a[keep]
        c2 = ops.matmul(a2, b)
        assert np.array_equal(c2[keep].view(np.uint32), c[keep].view(np.uint32)), keep
    if _fuses():
        assert _la.sparse_products() >= before + 5


def _mnist_like(rng, n):
    x = np.clip(rng.standard_normal((n, 784)), 0, None).astype(np.float32)
    x[rng.random((n, 784)) < 0.6] = 0.0           # ~80% zeros, as MNIST's pixels
    return x, rng.integers(0, 10, n)


def _train(optimizer, factored, x, y):
    model = keras.Sequential([keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model._factored_first = factored          # what compile planned, or the unfused step
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, seed=3)
    return model


@pytest.mark.parametrize("make", [lambda: keras.optimizers.SGD(0.05, momentum=0.9),
                                  lambda: keras.optimizers.SGD(0.05),
                                  lambda: keras.optimizers.SGD(0.05, 0.9, nesterov=True),
                                  lambda: keras.optimizers.RMSprop(0.001),
                                  lambda: keras.optimizers.Adam(0.001)],
                         ids=["momentum", "sgd", "nesterov", "rmsprop", "adam"])
def test_fit_with_the_product_handed_to_the_optimizer_has_the_same_bits(make, monkeypatch):
    rng = np.random.default_rng(9)
    x, y = _mnist_like(rng, 256)
    taken = []
    real = fused.matmul_sgd_update

    def spy(*args, **kw):
        taken.append(real(*args, **kw))
        return taken[-1]
    monkeypatch.setattr(fused, "matmul_sgd_update", spy)
    plain = _train(make(), False, x, y)
    assert not taken
    handed = _train(make(), True, x, y)
    assert plain._factored_first is False and handed._factored_first is True
    for w1, w2 in zip(plain.get_weights(), handed.get_weights()):
        assert np.array_equal(w1, w2)
    assert plain.history.history["loss"] == handed.history.history["loss"]
    if isinstance(handed.optimizer, keras.optimizers.SGD):
        assert len(taken) == 16 and all(taken) == _fuses()   # 8 steps an epoch, each fused
    else:
        assert not taken                                        # matmul + its own update


def test_compile_plans_the_handover_for_a_first_dense_layer():
    model = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert model._factored_first
    model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert not model._factored_first               # Flatten has no kernel to hand over


def test_optimizer_apply_with_a_product():
    rng = np.random.default_rng(10)
    a, b = _sparse(rng, (30, 20), 0.2), rng.standard_normal((20, 40)).astype(np.float32)
    for make in (lambda: keras.optimizers.SGD(0.1, momentum=0.5),
                 lambda: keras.optimizers.Adam(0.01)):
        params = [rng.standard_normal((30, 40)).astype(np.float32),
                  rng.standard_normal(40).astype(np.float32)]
        grads = [np.empty_like(params[0]), rng.standard_normal(40).astype(np.float32)]
        ref_params = [p.copy() for p in params]
        ref, opt = make(), make()
        for _ in range(3):
            ref.apply(ref_params, [ops.matmul(a, b), grads[1]])
            opt.apply(params, grads, product=(0, a, b))
        assert opt.iterations == ref.iterations == 3
        for p, q in zip(params, ref_params):
            assert np.array_equal(p, q)
