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


# -- Adam -------------------------------------------------------------------------------------

def ref_adam(w, gs, lr, b1, b2, eps):
    """Keras' Adam in float64: bias-corrected step size, then m / (sqrt(v) + eps)."""
    w, m, v = w.astype(np.float64), np.zeros(w.shape), np.zeros(w.shape)
    for t, g in enumerate(gs, start=1):
        g = g.astype(np.float64)
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr_t * m / (np.sqrt(v) + eps)
    return w, m, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("hyper", [{}, {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.9,
                                        "epsilon": 1e-3}])
def test_adam_matches_keras_rule(shape, dtype, hyper):
    w, gs = params_and_grads(shape, dtype, seed=3)
    full = {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, **hyper}
    ref_w, ref_m, ref_v = ref_adam(w, gs, *full.values())
    opt = optimizers.Adam(**hyper)
    out = run(opt, w, gs)
    assert out.dtype == dtype and out.shape == shape and opt.iterations == STEPS
    rtol = {np.float32: 1e-5, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(out, ref_w, rtol=rtol, atol=rtol)
    state = opt.get_state()
    np.testing.assert_allclose(state["momentum"][0], ref_m, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(state["velocity"][0], ref_v, rtol=rtol, atol=rtol)
    if w.size:          # the first step moves every weight by about lr (the bias correction)
        w1 = params_and_grads(shape, dtype, seed=3)[0]
        optimizers.Adam(**hyper).apply([w1], [gs[0]])
        step = np.abs(w1.astype(np.float64) - params_and_grads(shape, dtype, seed=3)[0])
        assert np.median(step) == pytest.approx(full["learning_rate"], rel=0.05)


def test_adam_defaults_repr_docstring_and_save_load(tmp_path):
    import pyblasnn
    from pyblasnn import layers, models
    adam = optimizers.get("adam")
    assert isinstance(adam, optimizers.Adam)
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999,
                                                                            1e-7)
    assert repr(adam) == "Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07)"
    assert "sqrt(1 - beta_2**t) / (1 - beta_1**t)" in optimizers.Adam.__doc__
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.intp)
    model = pyblasnn.Sequential([layers.Dense(8, activation="tanh"),
                                 layers.Dense(2, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, seed=0)
    model.save(tmp_path / "adam.npz")
    loaded = models.load_model(tmp_path / "adam.npz")
    assert repr(loaded.optimizer) == repr(model.optimizer)
    assert loaded.optimizer.iterations == model.optimizer.iterations == 14
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, seed=1)
    loaded.fit(x, y, epochs=1, batch_size=32, verbose=0, seed=1)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)     # state restored: the next steps are the same


# -- apply_gradients --------------------------------------------------------------------------

class DuckVariable:
    """What apply_gradients needs of a variable: the live array and a change notice."""

    def __init__(self, value):
        self.value = value
        self.updates = 0

    def _parameter(self):
        return self.value

    def _updated(self):
        self.updates += 1


class DuckTensor:
    """A gradient read through numpy() (no copy), as pyblasnn's Tensor is."""

    def __init__(self, value):
        self.value = value

    def numpy(self):
        return self.value


class ArrayLike:
    def __init__(self, value):
        self.value = value

    def __array__(self, dtype=None, copy=None):
        return self.value


@pytest.mark.parametrize("make", [
    lambda: optimizers.SGD(0.1),
    lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    lambda: optimizers.RMSprop(0.01, momentum=0.5),
    lambda: optimizers.Adam(0.01),
])
def test_apply_gradients_equals_apply_for_arrays_and_duck_variables(make):
    rng = np.random.default_rng(4)
    shapes = [(5, 3), (3,), (3, 2), (2,)]
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    steps = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(4)]
    ref = [w.copy() for w in w0]
    ref_opt = make()
    for gs in steps:
        ref_opt.apply(ref, gs)
    arrays = [w.copy() for w in w0]
    opt = make()
    ducks = [DuckVariable(w.copy()) for w in w0]
    duck_opt = make()
    for gs in steps:
        assert opt.apply_gradients(zip(gs, arrays)) == opt.iterations
        grads = [DuckTensor(gs[0]), ArrayLike(gs[1]), gs[2].tolist(), gs[3]]
        grads[2] = np.asarray(grads[2], np.float32)
        duck_opt.apply_gradients(zip(grads, ducks))
    assert opt.iterations == duck_opt.iterations == 4
    for r, a, d in zip(ref, arrays, ducks):
        np.testing.assert_array_equal(a, r)
        np.testing.assert_array_equal(d.value, r)
        assert d.updates == 4
    state = opt.get_state()          # one state set per variable, reused across the calls
    assert all(len(arrays_) == 4 for slot, arrays_ in state.items() if slot != "iterations")


def test_apply_gradients_keeps_state_per_variable_and_skips_none():
    a, b = np.zeros(3), np.zeros(2)
    opt = optimizers.SGD(0.1, momentum=0.9)
    opt.apply_gradients([(np.ones(3), a), (None, b)])
    np.testing.assert_array_equal(b, 0)                    # None: left alone
    opt.apply_gradients([(np.ones(2), b), (np.ones(3), a)])   # new variable, other order
    np.testing.assert_allclose(a, -0.1 - (0.9 * 0.1 + 0.1))   # a's velocity carried over
    np.testing.assert_allclose(b, -0.1)                        # b's starts at zero
    assert opt.iterations == 2
    with pytest.raises(ValueError, match="apply_gradients: no gradients provided"):
        opt.apply_gradients([(None, a), (None, b)])
    assert opt.iterations == 2


def test_apply_gradients_rejects_bad_pairs_before_updating_anything():
    a, b = np.zeros(3, np.float32), np.zeros(2, np.float32)
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match=r"apply_gradients: gradient shape \(3,\) does not "
                                         r"match its variable's shape \(2,\)"):
        opt.apply_gradients([(np.ones(3, np.float32), a), (np.ones(3, np.float32), b)])
    np.testing.assert_array_equal(a, 0)                    # checked first, nothing moved
    with pytest.raises(TypeError, match="apply_gradients: gradient dtype float64"):
        opt.apply_gradients([(np.ones(3), a)])
    with pytest.raises(TypeError, match="apply_gradients: expected .gradient, variable. pairs"):
        opt.apply_gradients([np.ones(3, np.float32)])
    with pytest.raises(TypeError, match="must be an ndarray or have _parameter"):
        opt.apply_gradients([(np.ones(3, np.float32), [0.0, 0.0, 0.0])])
    with pytest.raises(ValueError, match="C-contiguous and writeable"):
        opt.apply_gradients([(np.ones(3, np.float32), np.zeros((3, 2), np.float32)[:, 0])])
    assert opt.iterations == 0


def test_apply_gradients_with_pyblasnn_variables_and_tape():
    import pyblasnn
    if not hasattr(pyblasnn, "GradientTape"):
        pytest.skip("pyblasnn.GradientTape not available")
    w = pyblasnn.Variable(np.ones((3, 2), np.float32))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    opt = optimizers.SGD(0.5)
    with pyblasnn.GradientTape() as tape:
        loss = pyblasnn.reduce_sum(pyblasnn.matmul(x, w))
    grads = tape.gradient(loss, [w])
    opt.apply_gradients(zip(grads, [w]))
    np.testing.assert_allclose(w.numpy(), 1 - 0.5 * x.sum(axis=0)[:, None] * np.ones((3, 2)))
