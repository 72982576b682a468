"""GradientTape, Tensor and Variable: TensorFlow's semantics on pyblasnn's gradient rules.

Gradients are checked against central finite differences in float64 and, for the book's
model, bit for bit against the Keras-style model that runs the same rules.
"""
import numpy as np
import pytest

import pyblasnn as tf
from pyblasnn.autodiff import rules

from conftest import central_difference


def numeric_grad(fn, x0):
    """d fn(x) / dx by central differences, fn taking and returning plain float64 arrays."""
    return central_difference(lambda x: float(np.sum(np.asarray(fn(tf.constant(x))))), x0)


# ---------------------------------------------------------------------- the book's examples
def test_book_scalar_example():
    x = tf.Variable(0.)
    with tf.GradientTape() as tape:
        y = 2 * x + 3
    grad = tape.gradient(y, x)
    assert isinstance(grad, tf.Tensor) and grad.shape == () and grad.dtype == np.float32
    assert float(grad) == 2.0


def test_book_matrix_example():
    x = tf.Variable(tf.random.uniform((2, 2)))
    with tf.GradientTape() as tape:
        y = 2 * x + 3
    grad = tape.gradient(y, x)
    assert grad.shape == (2, 2) and grad.dtype == np.float32
    np.testing.assert_array_equal(grad.numpy(), np.full((2, 2), 2, np.float32))


def test_book_matmul_example():
    W = tf.Variable(tf.random.uniform((2, 2)))
    b = tf.Variable(tf.zeros((2,)))
    x = tf.random.uniform((2, 2))
    with tf.GradientTape() as tape:
        y = tf.matmul(x, W) + b
    grad_W, grad_b = tape.gradient(y, [W, b])
    assert grad_W.shape == (2, 2) and grad_b.shape == (2,)
    np.testing.assert_array_equal(grad_b.numpy(), [2, 2])
    # d sum(x @ W) / dW[i, j] = sum_r x[r, i]
    np.testing.assert_allclose(grad_W.numpy(), np.repeat(x.numpy().sum(0)[:, None], 2, 1),
                               rtol=1e-6)


# ------------------------------------------------------------------------- compositions
def test_value_used_several_times_sums_its_gradients():
    x = tf.Variable(np.array([1.5, -2.0, 3.0]))
    with tf.GradientTape() as tape:
        y = x * x + x + tf.square(x) * 0.5
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), 3 * x.numpy() + 1, rtol=1e-12)


@pytest.mark.parametrize("xs,ys", [((3, 1), (1, 4)), ((4,), (2, 3, 4)), ((), (2, 2)),
                                   ((2, 1, 3), (5, 1))])
def test_broadcasting_on_both_sides(xs, ys, rng):
    x0, y0 = rng.standard_normal(xs), 0.5 + rng.random(ys)
    x, y = tf.Variable(x0), tf.Variable(y0)

    def f(a, b):
        return (a * b - a / b + (a + b)) * (a - 2.0)
    with tf.GradientTape() as tape:
        z = tf.reduce_sum(f(x, y))
    gx, gy = tape.gradient(z, [x, y])
    assert gx.shape == xs and gy.shape == ys
    np.testing.assert_allclose(gx.numpy(), numeric_grad(lambda a: f(a, y0), x0), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(gy.numpy(), numeric_grad(lambda b: f(x0, b), y0), rtol=1e-6,
                               atol=1e-8)


def test_scalars_on_the_left():
    x = tf.Variable(np.array([0.5, 2.0]))
    with tf.GradientTape(persistent=True) as tape:
        terms = {"1+x": 1 + x, "1-x": 1 - x, "3*x": 3 * x, "2/x": 2 / x, "-x": -x,
                 "x**3": x ** 3, "x**2": x ** 2}
    v = x.numpy()
    expected = {"1+x": 1 + 0 * v, "1-x": -1 + 0 * v, "3*x": 3 + 0 * v, "2/x": -2 / v ** 2,
                "-x": -1 + 0 * v, "x**3": 3 * v ** 2, "x**2": 2 * v}
    for name, t in terms.items():
        np.testing.assert_allclose(tape.gradient(t, x).numpy(), expected[name], rtol=1e-12,
                                   err_msg=name)


def test_numpy_arrays_on_the_left_stay_on_the_tape():
    w = tf.Variable(np.ones((3, 2)))
    a = np.arange(6.0).reshape(2, 3)
    with tf.GradientTape() as tape:
        y = a @ w + np.ones(2) * w[0]
    assert isinstance(y, tf.Tensor)
    g = tape.gradient(y, w).numpy()
    expected = np.repeat(a.sum(0)[:, None], 2, 1)
    expected[0] += 2
    np.testing.assert_allclose(g, expected)


def test_a_chain_of_10000_ops_needs_no_recursion():
    x = tf.Variable(1.0, dtype="float64")
    with tf.GradientTape() as tape:
        y = x
        for _ in range(10_000):
            y = y * 1.0001
    assert float(tape.gradient(y, x)) == pytest.approx(1.0001 ** 10_000, rel=1e-9)


def test_persistent_tape_and_nested_sources():
    a, b, c = tf.Variable(1.0), tf.Variable(2.0), tf.Variable(3.0)
    with tf.GradientTape(persistent=True) as tape:
        y = a * b * c
    got = tape.gradient(y, [a, [b, (c,)], {"k": a}])
    assert isinstance(got, list) and isinstance(got[1], list) and isinstance(got[1][1], tuple)
    assert [float(got[0]), float(got[1][0]), float(got[1][1][0]), float(got[2]["k"])] == \
        [6.0, 3.0, 2.0, 6.0]
    assert float(tape.gradient(y, b)) == 3.0      # a persistent tape answers again


def test_unconnected_sources_get_none_or_zeros():
    x, unused = tf.Variable(2.0), tf.Variable(np.ones((2, 3), np.float32))
    with tf.GradientTape(persistent=True) as tape:
        y = x * x
    assert tape.gradient(y, [x, unused])[1] is None
    zero = tape.gradient(y, unused, unconnected_gradients="zero")
    assert zero.shape == (2, 3) and not np.any(zero.numpy())


def test_only_paths_to_sources_are_differentiated(monkeypatch):
    """No gradient is computed for the input images of the book's first layer."""
    calls = []
    matmul_rule = rules.RULES["matmul"]
    original = matmul_rule.vjp

    def spy(g, saved, needs, out=None):
        calls.append(tuple(needs))
        return original(g, saved, needs, out)
    monkeypatch.setattr(matmul_rule, "vjp", spy)
    images = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    W = tf.Variable(np.ones((6, 3), np.float32))
    other = tf.Variable(np.ones((3, 3), np.float32))
    with tf.GradientTape() as tape:
        h = tf.matmul(images, W)
        tf.matmul(h, other)                          # recorded, but not on the target's path
        y = tf.reduce_sum(h)
    assert tape.gradient(y, W).shape == (6, 3)
    assert calls == [(False, True)]


def test_gradient_inside_the_with_block_and_watch():
    c = tf.constant([1.0, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(c)
        y = tf.reduce_sum(c * c)
        g = tape.gradient(y, c)
    np.testing.assert_array_equal(g.numpy(), [2.0, 4.0])


def test_constants_are_not_watched_unless_asked():
    c = tf.constant(3.0)
    with tf.GradientTape() as tape:
        y = c * c
    assert tape.gradient(y, c) is None


def test_untrainable_variables_and_stop_recording():
    frozen = tf.Variable(2.0, trainable=False)
    x = tf.Variable(3.0)
    with tf.GradientTape(persistent=True) as tape:
        y = frozen * x
        with tape.stop_recording():
            z = x * x
    assert tape.gradient(y, frozen) is None and float(tape.gradient(y, x)) == 2.0
    assert tape.gradient(z, x) is None
    assert tape.watched_variables() == [x]


def test_output_gradients_and_list_targets():
    x = tf.Variable(np.array([1.0, 2.0]))
    with tf.GradientTape(persistent=True) as tape:
        y = x * 3.0
        z = x * x
    np.testing.assert_array_equal(
        tape.gradient(y, x, output_gradients=np.array([1.0, 10.0])).numpy(), [3.0, 30.0])
    np.testing.assert_array_equal(tape.gradient([y, z], x).numpy(), [5.0, 7.0])


def test_softmax_then_cross_entropy_uses_the_fused_kernel(rng):
    """The loss of a softmax output is computed from its logits: stable for huge logits
    (a probability of 0 would give an infinite log) and the gradient is (p - onehot) / n."""
    z0 = np.array([[1000.0, 0.0, -1000.0], [0.0, 1.0, 2.0]], np.float32)
    labels = np.array([2, 1])
    z = tf.Variable(z0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
            labels, tf.nn.softmax(z)))
    p = np.exp(z0 - z0.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    lse = np.log(np.exp(z0[1] - 2).sum()) + 2
    assert float(loss) == pytest.approx((2000.0 + lse - 1.0) / 2, rel=1e-6)
    onehot = np.eye(3, dtype=np.float32)[labels]
    np.testing.assert_allclose(tape.gradient(loss, z).numpy(), (p - onehot) / 2, atol=1e-7)


def test_weighted_cross_entropy_gradient(rng):
    z0 = rng.standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    weights = rng.random(5)

    def f(z):
        return tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(
            labels, tf.nn.softmax(z)) * weights)
    z = tf.Variable(z0)
    with tf.GradientTape() as tape:
        y = f(z)
    np.testing.assert_allclose(tape.gradient(y, z).numpy(), numeric_grad(f, z0), rtol=1e-6,
                               atol=1e-9)


def test_layout_ops_and_indexing(rng):
    x0 = rng.standard_normal((2, 3, 4))

    def f(x):
        t = tf.transpose(tf.reshape(x, (6, 4)))           # (4, 6)
        return tf.reduce_mean(t[1:3] * t[0], axis=0, keepdims=True) + tf.reduce_sum(
            tf.maximum(x[0, :, 0], 0.1))
    x = tf.Variable(x0)
    with tf.GradientTape() as tape:
        y = f(x)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), numeric_grad(f, x0), rtol=1e-6,
                               atol=1e-9)


@pytest.mark.parametrize("activation", [tf.nn.relu, tf.nn.sigmoid, tf.nn.tanh, tf.nn.softmax])
def test_activations_through_the_tape(activation, rng):
    x0 = rng.standard_normal((3, 5)) + 0.1
    w = rng.standard_normal((3, 5))
    x = tf.Variable(x0)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(activation(x) * w)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(),
                               numeric_grad(lambda v: activation(v) * w, x0), rtol=1e-6,
                               atol=1e-9)


# ------------------------------------------------------------- the book's model, both paths
def test_tape_gradients_equal_the_keras_models_bit_for_bit(rng):
    x = (rng.random((64, 784)) < 0.2).astype(np.float32) * rng.random((64, 784), np.float32)
    labels = rng.integers(0, 10, 64)
    model = tf.Sequential([tf.layers.Dense(512, activation="relu"),
                           tf.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=tf.optimizers.SGD(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy")
    model.build((None, 784))
    start = [w.copy() for w in model.get_weights()]
    W1, b1, W2, b2 = (tf.Variable(w) for w in start)
    with tf.GradientTape() as tape:
        h = tf.nn.relu(tf.matmul(x, W1) + b1)
        p = tf.nn.softmax(tf.matmul(h, W2) + b2)
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, p))
    tape_grads = tape.gradient(loss, [W1, b1, W2, b2])
    keras_loss = model.train_on_batch(x, labels)
    assert float(loss) == pytest.approx(keras_loss, rel=1e-6)
    for i, (g, kg) in enumerate(zip(tape_grads, model.gradients)):
        np.testing.assert_array_equal(g.numpy(), kg, err_msg=f"gradient {i}")


# ---------------------------------------------------------------- Tensor and Variable API
def test_tensor_protocols():
    t = tf.constant([[1.0, 5.0], [7.0, 2.0]])
    assert t.dtype == np.float32 and t.shape == (2, 2) and t.ndim == 2 and len(t) == 2
    np.testing.assert_array_equal(np.argmax(t, axis=1), [1, 0])
    s = tf.reduce_mean(t)
    assert f"{s:.2f}" == "3.75" and float(s) == 3.75
    assert repr(tf.constant(2.0)) == "<pyblasnn.Tensor: shape=(), dtype=float32, numpy=2.0>"
    assert "shape=(2, 2)" in repr(t) and "dtype=float32" in str(t)
    np.testing.assert_array_equal((t > 3).numpy(), [[False, True], [True, False]])
    assert [row.shape for row in t] == [(2,), (2,)]
    assert isinstance(np.exp(t), np.ndarray)          # other ufuncs see a plain array


def test_dtype_defaults_are_tensorflows():
    assert tf.constant(1.5).dtype == np.float32
    assert tf.constant([1, 2]).dtype == np.int32
    assert tf.constant(np.arange(3.0)).dtype == np.float64      # NumPy arrays keep theirs
    assert tf.zeros((2,)).dtype == tf.ones(3).dtype == np.float32
    assert tf.random.uniform((2,)).dtype == tf.random.normal((2,)).dtype == np.float32
    assert tf.Variable(0.).dtype == np.float32 and tf.Variable(3).dtype == np.float32
    assert (tf.constant(1.5) * 2).dtype == np.float32


def test_random_is_seeded_and_in_range():
    tf.random.set_seed(7)
    a = tf.random.uniform((1000,), minval=0, maxval=1e-1).numpy()
    b = tf.random.normal((2, 3), mean=1.0, stddev=0.0).numpy()
    tf.random.set_seed(7)
    np.testing.assert_array_equal(tf.random.uniform((1000,), minval=0, maxval=1e-1).numpy(), a)
    assert a.min() >= 0 and a.max() < 0.1 and a.std() > 0.02
    np.testing.assert_array_equal(b, np.ones((2, 3), np.float32))
    first = tf.random.uniform((4,), seed=3).numpy()
    assert not np.array_equal(first, tf.random.uniform((4,), seed=3).numpy())


def test_variable_assign_family():
    v = tf.Variable(np.zeros((2, 2), np.float32), name="w")
    assert v.assign(np.ones((2, 2), np.float32)) is v
    v.assign_add(tf.constant(np.full((2, 2), 2.0, np.float32)))
    v.assign_sub(tf.ones((2, 2)) * 0.5)
    np.testing.assert_array_equal(v.numpy(), np.full((2, 2), 2.5))
    snapshot = v.numpy()
    v.assign_sub(1.0)                                   # a Python number broadcasts
    assert snapshot[0, 0] == 2.5 and v.numpy()[0, 0] == 1.5
    assert repr(v).startswith("<pyblasnn.Variable 'w:0' shape=(2, 2) dtype=float32")


def test_plain_arrays_in_plain_arrays_out():
    a = np.ones((2, 3), np.float32)
    for fn in (tf.add, tf.subtract, tf.multiply, tf.divide, tf.maximum):
        assert type(fn(a, a)) is np.ndarray
    assert type(tf.matmul(a, a.T)) is np.ndarray and type(tf.relu(a)) is np.ndarray
    out = np.empty((2, 3), np.float32)
    assert tf.add(a, a, out=out) is out


def test_keras_namespace_resolves_to_pyblasnn_objects():
    import importlib
    from pyblasnn.keras import optimizers
    from pyblasnn.keras.datasets import mnist
    assert optimizers is tf.optimizers and mnist is tf.datasets.mnist
    assert tf.keras.Sequential is tf.Sequential and tf.keras.layers.Dense is tf.layers.Dense
    assert importlib.import_module("pyblasnn.keras.losses") is tf.losses
    assert tf.keras.losses.sparse_categorical_crossentropy is \
        tf.losses.sparse_categorical_crossentropy


# ---------------------------------------------------------------------------- misuse
def _second_gradient():
    x = tf.Variable(1.0)
    with tf.GradientTape() as tape:
        y = x * x
    tape.gradient(y, x)
    tape.gradient(y, x)


def _modified_before_gradient():
    x = tf.Variable(1.0)
    with tf.GradientTape() as tape:
        y = x * x
    x.assign(2.0)
    tape.gradient(y, x)


BAD = [
    (_second_gradient, RuntimeError, "only once"),
    (_modified_before_gradient, RuntimeError, "was modified"),
    (lambda: tf.Variable(np.zeros(2)).assign(np.zeros(3)), ValueError,
     "Variable.assign: value has shape (3,)"),
    (lambda: tf.Variable(np.zeros(2, np.float32)).assign_sub(np.zeros(2)), TypeError,
     "Variable.assign_sub: value has dtype float64"),
    (lambda: tf.Variable(np.zeros(2, np.int64)), TypeError, "Variable: dtype int64"),
    (lambda: tf.Variable("abc"), TypeError, "Variable"),
    (lambda: tf.GradientTape().watch(np.ones(2)), TypeError, "GradientTape.watch"),
    (lambda: tf.GradientTape().gradient(tf.constant(1.0), np.ones(2)), TypeError,
     "GradientTape.gradient: sources"),
    (lambda: tf.GradientTape().gradient(3.0, tf.Variable(1.0)), TypeError,
     "GradientTape.gradient: target"),
    (lambda: tf.GradientTape().gradient(tf.constant([1, 2]), tf.Variable(1.0)), TypeError,
     "only float tensors"),
    (lambda: tf.GradientTape().gradient(tf.constant([1.0, 2.0]), tf.Variable(1.0),
                                        output_gradients=np.ones(3)), ValueError,
     "output_gradients has shape (3,)"),
    (lambda: tf.GradientTape().gradient(tf.constant(1.0), tf.Variable(1.0),
                                        unconnected_gradients="nan"), ValueError,
     "unconnected_gradients"),
    (lambda: tf.add(tf.constant(1.0), 2.0, out=np.empty(())), TypeError, "add: out="),
    (lambda: tf.constant({"a": 1}), TypeError, "constant"),
    (lambda: tf.reduce_sum(tf.ones((2, 3)), axis=2), ValueError, "reduce_sum: axis 2"),
    (lambda: tf.reshape(tf.ones((2, 3)), (4, 2)), ValueError, "reshape"),
    (lambda: tf.matmul(tf.ones((2, 3)), tf.ones((2, 3))), ValueError, "matmul"),
    (lambda: tf.random.uniform((2,), minval=1, maxval=1), ValueError, "random.uniform"),
    (lambda: tf.random.normal((2,), dtype="int32"), TypeError, "random.normal: dtype"),
    (lambda: tf.keras.losses.sparse_categorical_crossentropy([0, 5], tf.ones((2, 3))),
     ValueError, "label 5 out of range"),
    (lambda: tf.keras.losses.sparse_categorical_crossentropy([0], tf.ones((3,))), ValueError,
     "must be 2-D"),
    (lambda: tf.pow(tf.ones(2), tf.ones(2)), TypeError, "pow: the exponent"),
    (lambda: f"{tf.ones(2):.2f}", TypeError, "format"),
    (lambda: float(tf.ones(2)), TypeError, "float(): needs a tensor holding one number, got "
     "one of shape (2,)"),
    (lambda: int(tf.ones((2, 3))), TypeError, "int(): needs a tensor holding one number"),
]


@pytest.mark.parametrize("call,exc,fragment", BAD, ids=[b[2] for b in BAD])
def test_misuse_raises_a_clear_error(call, exc, fragment):
    with pytest.raises(exc, match=None) as info:
        call()
    assert fragment in str(info.value), str(info.value)


def test_enter_twice_is_an_error():
    tape = tf.GradientTape()
    with tape:
        pass
    with pytest.raises(RuntimeError, match="entered once"):
        with tape:
            pass


def test_views_of_a_variable_are_snapshots():
    v = tf.Variable(np.arange(6.0).reshape(2, 3))
    row, flat, t = v[0], tf.reshape(v, (6,)), tf.transpose(v)
    v.assign(np.zeros((2, 3)))
    np.testing.assert_array_equal(row.numpy(), [0.0, 1.0, 2.0])
    assert flat.numpy()[5] == 5.0 and t.numpy()[2, 1] == 5.0
