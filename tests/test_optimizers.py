"""Fused optimizer updates against NumPy references of the Keras rules."""
import numpy as np
import pytest

from pyblasnn import fused, optimizers

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 2e-5, np.float64: 1e-12}
SHAPES = [(0,), (1,), (7, 3), (13,), (300, 200)]     # the last is above the parallel threshold
STEPS = 5


def params_and_grads(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(dtype)
    gs = [rng.standard_normal(shape).astype(dtype) for _ in range(STEPS)]
    return w, gs


def ref_sgd(w, gs, lr, momentum, nesterov):
    w, v = w.astype(np.float64), np.zeros(w.shape)
    for g in gs:
        if momentum == 0:
            w = w - lr * g
            continue
        v = momentum * v - lr * g
        w = w + (momentum * v - lr * g if nesterov else v)
    return w, v


def ref_rmsprop(w, gs, lr, rho, momentum, eps):
    w, a, m = w.astype(np.float64), np.zeros(w.shape), np.zeros(w.shape)
    for g in gs:
        g = g.astype(np.float64)
        a = rho * a + (1 - rho) * g * g
        d = lr * g / (np.sqrt(a) + eps)
        if momentum > 0:
            m = momentum * m + d
            d = m
        w = w - d
    return w, a


def run(opt, w, gs):
    for g in gs:
        opt.apply([w], [g])
    return w


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_reference(shape, dtype, momentum, nesterov):
    w, gs = params_and_grads(shape, dtype)
    ref_w, ref_v = ref_sgd(w, gs, 0.1, momentum, nesterov)
    opt = optimizers.SGD(learning_rate=0.1, momentum=momentum, nesterov=nesterov)
    ptr = w.__array_interface__["data"][0]
    out = run(opt, w, gs)
    assert out.dtype == dtype and out.shape == shape
    assert out.__array_interface__["data"][0] == ptr          # updated in place
    np.testing.assert_allclose(out, ref_w, rtol=RTOL[dtype], atol=RTOL[dtype])
    if momentum:
        np.testing.assert_allclose(opt.get_state()["velocity"][0], ref_v,
                                   rtol=RTOL[dtype], atol=RTOL[dtype])
    assert opt.iterations == STEPS


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop_matches_reference(shape, dtype, momentum):
    w, gs = params_and_grads(shape, dtype, seed=1)
    ref_w, ref_a = ref_rmsprop(w, gs, 1e-2, 0.9, momentum, 1e-7)
    opt = optimizers.RMSprop(learning_rate=1e-2, momentum=momentum)
    out = run(opt, w, gs)
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_allclose(out, ref_w, rtol=RTOL[dtype], atol=RTOL[dtype])
    np.testing.assert_allclose(opt.get_state()["accumulator"][0], ref_a,
                               rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_updates_are_bitwise_thread_invariant(dtype):
    w, gs = params_and_grads((401, 512), dtype)
    for update in (
        lambda p, s, g, t: fused.sgd_update(p, g, 0.1, n_threads=t),
        lambda p, s, g, t: fused.sgd_momentum_update(p, s, g, 0.1, 0.9, True, n_threads=t),
        lambda p, s, g, t: fused.rmsprop_update(p, s, g, 1e-3, 0.9, 1e-7, n_threads=t),
    ):
        results = []
        for t in (1, 2):
            p, s = w.copy(), np.zeros_like(w)
            for g in gs:
                update(p, s, g, t)
            results.append((p, s))
        np.testing.assert_array_equal(results[0][0], results[1][0])
        np.testing.assert_array_equal(results[0][1], results[1][1])


def test_several_parameters_keep_separate_state():
    rng = np.random.default_rng(2)
    ws = [rng.standard_normal((4, 3)), rng.standard_normal(3)]
    gs = [np.ones((4, 3)), 2 * np.ones(3)]
    refs = [ref_sgd(w, [g, g], 0.1, 0.9, False)[0] for w, g in zip(ws, gs)]
    opt = optimizers.SGD(0.1, momentum=0.9)
    opt.apply(ws, gs)
    opt.apply(ws, gs)
    for w, r in zip(ws, refs):
        np.testing.assert_allclose(w, r, rtol=1e-12)
    with pytest.raises(ValueError, match="parameters changed"):
        opt.apply(ws[:1], gs[:1])


def test_defaults_repr_and_get():
    sgd, rms = optimizers.SGD(), optimizers.RMSprop()
    assert (sgd.learning_rate, sgd.momentum, sgd.nesterov) == (0.01, 0.0, False)
    assert (rms.learning_rate, rms.rho, rms.momentum, rms.epsilon) == (0.001, 0.9, 0.0, 1e-7)
    assert repr(sgd) == "SGD(learning_rate=0.01, momentum=0, nesterov=False)"
    assert repr(rms) == "RMSprop(learning_rate=0.001, rho=0.9, momentum=0, epsilon=1e-07)"
    assert "\n" not in repr(sgd) + repr(rms)
    assert "w = w + v" in optimizers.SGD.__doc__
    assert "sqrt(a) + epsilon" in optimizers.RMSprop.__doc__
    assert isinstance(optimizers.get("rmsprop"), optimizers.RMSprop)
    assert isinstance(optimizers.get("SGD"), optimizers.SGD)
    assert optimizers.get(sgd) is sgd


W = np.zeros(3)
W32 = np.zeros(3, np.float32)
BUF = np.zeros(4, np.float32)
BAD = [
    (lambda: optimizers.SGD(learning_rate=0), ValueError, "learning_rate must be > 0"),
    (lambda: optimizers.SGD(learning_rate=-0.1), ValueError, "learning_rate must be > 0"),
    (lambda: optimizers.SGD(learning_rate=float("nan")), ValueError, "must be finite"),
    (lambda: optimizers.SGD(learning_rate="0.1"), TypeError, "learning_rate must be a real"),
    (lambda: optimizers.SGD(momentum=1.0), ValueError, "momentum must be in [0, 1)"),
    (lambda: optimizers.SGD(momentum=-0.5), ValueError, "momentum must be in [0, 1)"),
    (lambda: optimizers.SGD(nesterov="yes"), TypeError, "nesterov must be a bool"),
    (lambda: optimizers.RMSprop(rho=1.5), ValueError, "rho must be in [0, 1)"),
    (lambda: optimizers.RMSprop(epsilon=0), ValueError, "epsilon must be > 0"),
    (lambda: optimizers.RMSprop(momentum=2), ValueError, "momentum must be in [0, 1)"),
    (lambda: optimizers.get("adagrad"), ValueError, "unknown optimizer 'adagrad'"),
    (lambda: optimizers.SGD().apply([W], []), ValueError, "1 params but 0 grads"),
    (lambda: fused.sgd_update(W, np.zeros(4), 0.1), ValueError, "grad shape (4,)"),
    (lambda: fused.sgd_update(W, np.zeros(3, np.float32), 0.1), TypeError, "grad dtype float32"),
    (lambda: fused.sgd_update(W.astype(int), W, 0.1), TypeError, "float32 or float64"),
    (lambda: fused.sgd_update(np.zeros((3, 2))[:, 0], W, 0.1), ValueError, "C-contiguous"),
    (lambda: fused.sgd_momentum_update(W, np.zeros(2), W, 0.1, 0.9), ValueError,
     "velocity shape (2,)"),
    (lambda: fused.rmsprop_update(W, W.copy(), W, 0.1, 0.9, 1e-7, momentum=0.5), ValueError,
     "needs a momentum_buffer"),
    # plain float32 arrays with bad float hyperparameters (the lean path hands them over)
    (lambda: fused.sgd_update(W32, W32.copy(), -0.1), ValueError, "learning_rate must be >= 0"),
    (lambda: fused.sgd_momentum_update(W32, W32.copy(), W32.copy(), 0.1, 1.0), ValueError,
     "momentum must be in [0, 1)"),
    (lambda: fused.sgd_momentum_update(W32, W32.copy(), W32.copy(), float("inf"), 0.5),
     ValueError, "must be finite"),
    (lambda: fused.rmsprop_update(W32, W32.copy(), W32.copy(), 0.1, 1.0, 1e-7), ValueError,
     "rho must be in [0, 1)"),
    (lambda: fused.rmsprop_update(W32, W32.copy(), W32.copy(), 0.1, 0.9, 0.0), ValueError,
     "epsilon must be > 0"),
    (lambda: fused.sgd_momentum_update(W32, W32, W32.copy(), 0.1, 0.9), ValueError,
     "param and velocity overlap"),
    (lambda: fused.sgd_momentum_update(BUF[:-1], BUF[1:], W32.copy(), 0.1, 0.9), ValueError,
     "param and velocity overlap"),
    (lambda: fused.sgd_update(BUF[:-1], BUF[1:], 0.1), ValueError, "param and grad overlap"),
]


@pytest.mark.parametrize("call, exc, fragment", BAD)
def test_bad_input(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_may_be_the_updated_array(dtype):
    """grad aliasing the parameter (or velocity) exactly is an element-wise update: allowed."""
    w = np.arange(1.0, 6.0, dtype=dtype)
    fused.sgd_update(w, w, 0.5)
    np.testing.assert_array_equal(w, np.arange(1.0, 6.0, dtype=dtype) / 2)
    v = np.ones(5, dtype)
    fused.sgd_momentum_update(w, v, v, 0.5, 0.5)   # v = 0.5 v - 0.5 v = 0; w += 0
    np.testing.assert_array_equal(v, 0.0)
    np.testing.assert_array_equal(w, np.arange(1.0, 6.0, dtype=dtype) / 2)


def test_read_only_parameter_is_rejected():
    w = np.zeros(3)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="param must be writeable"):
        fused.sgd_update(w, np.zeros(3), 0.1)
