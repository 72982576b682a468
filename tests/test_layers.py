"""Dense against a NumPy reference: forward, backward, initialisation, bad input."""
import numpy as np
import pytest

from pyblasnn import fused, layers

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-4, np.float64: 1e-11}     # float32: sums over up to 129 terms
SHAPES = [(1, 1, 1), (7, 5, 3), (33, 17, 11), (129, 64, 10)]   # (batch, in, units)


def ref_forward(x, w, b, activation):
    z = x.astype(np.float64) @ w + (0 if b is None else b)
    if activation == "relu":
        return np.maximum(z, 0), z
    if activation == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True), z
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-z)), z
    if activation == "tanh":
        return np.tanh(z), z
    return z, z


def ref_backward(dy, x, w, y, z, activation):
    if activation == "relu":
        dz = dy * (z > 0)
    elif activation == "softmax":
        dz = y * (dy - (dy * y).sum(axis=1, keepdims=True))
    elif activation == "sigmoid":
        dz = dy * y * (1 - y)
    elif activation == "tanh":
        dz = dy * (1 - y * y)
    else:
        dz = dy
    return x.T.astype(np.float64) @ dz, dz.sum(axis=0), dz @ w.T


def make_layer(batch, n_in, units, dtype, activation, use_bias=True, seed=0):
    layer = layers.Dense(units, activation=activation, use_bias=use_bias, dtype=dtype)
    layer.build(n_in, rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    if use_bias:
        layer.bias[...] = rng.standard_normal(units)
    x = rng.standard_normal((batch, n_in)).astype(dtype)
    dy = rng.standard_normal((batch, units)).astype(dtype)
    return layer, x, dy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", [None, "linear", "relu", "softmax", "sigmoid", "tanh"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_forward_backward_match_numpy(shape, dtype, activation, use_bias):
    batch, n_in, units = shape
    layer, x, dy = make_layer(batch, n_in, units, dtype, activation, use_bias)
    y = np.empty((batch, units), dtype=dtype)
    layer.forward(x, y)
    ref_y, z = ref_forward(x, layer.kernel, layer.bias, activation)
    assert y.shape == (batch, units) and y.dtype == dtype
    np.testing.assert_allclose(y, ref_y, rtol=RTOL[dtype], atol=RTOL[dtype])

    dx = np.empty_like(x)
    ref_dw, ref_db, ref_dx = ref_backward(dy.astype(np.float64), x, layer.kernel, ref_y, z,
                                          activation)
    layer.backward(dy.copy(), x, y, dx)
    assert layer.dkernel.shape == layer.kernel.shape and layer.dkernel.dtype == dtype
    np.testing.assert_allclose(layer.dkernel, ref_dw, rtol=RTOL[dtype], atol=RTOL[dtype])
    np.testing.assert_allclose(dx, ref_dx, rtol=RTOL[dtype], atol=RTOL[dtype])
    if use_bias:
        np.testing.assert_allclose(layer.dbias, ref_db, rtol=RTOL[dtype], atol=RTOL[dtype])
    else:
        assert layer.bias is None and len(layer.weights) == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_output_with_fused_gradient(dtype):
    """split_activation: the part before the softmax, whose logits the fused loss takes."""
    layer, x, _ = make_layer(9, 6, 4, dtype, "softmax")
    pre, activation = layer.split_activation()
    assert activation == "softmax" and pre is not layer
    labels = np.arange(9) % 4
    logits = np.empty((9, 4), dtype=dtype)
    pre.forward(x, logits)
    _, z = ref_forward(x, layer.kernel, layer.bias, None)
    np.testing.assert_allclose(logits, z, rtol=RTOL[dtype], atol=RTOL[dtype])
    dz = np.empty_like(logits)
    fused.sparse_softmax_cross_entropy(logits, labels, out=dz)
    assert pre.backward(dz, x, logits, None) is None
    p = fused.softmax(logits)
    ref_dw = x.T.astype(np.float64) @ ((p - np.eye(4)[labels]) / 9)
    np.testing.assert_allclose(layer.dkernel, ref_dw, rtol=RTOL[dtype], atol=RTOL[dtype])


def test_call_builds_lazily_with_glorot_uniform_and_zero_bias():
    layer = layers.Dense(300, activation="relu")
    assert not layer.built and layer.weights == []
    x = np.random.default_rng(0).random((5, 200))
    y = layer(x)
    assert layer.built and y.shape == (5, 300) and y.dtype == np.float32
    assert layer.kernel.shape == (200, 300) and layer.kernel.dtype == np.float32
    limit = np.sqrt(6 / (200 + 300))
    assert np.abs(layer.kernel).max() <= limit
    assert np.abs(layer.kernel).max() > 0.95 * limit        # really uniform over the range
    assert abs(layer.kernel.std() - limit / np.sqrt(3)) < 0.02 * limit
    np.testing.assert_array_equal(layer.bias, 0)
    assert layer.count_params() == 200 * 300 + 300
    np.testing.assert_allclose(y, np.maximum(x.astype(np.float32) @ layer.kernel, 0),
                               rtol=1e-5, atol=1e-6)


def test_seeded_build_is_reproducible_and_repr_is_one_line():
    a, b = layers.Dense(8, name="a"), layers.Dense(8, name="b")
    a.build(5, rng=np.random.default_rng(42))
    b.build(5, rng=np.random.default_rng(42))
    np.testing.assert_array_equal(a.kernel, b.kernel)
    assert repr(layers.Dense(10, activation="softmax", name="out")) == \
        "Dense(10, activation='softmax', name='out')"
    names = [layers.Dense(1).name for _ in range(2)]
    assert names[0] != names[1] and all(n.startswith("dense") for n in names)


def test_custom_initializer_and_he_uniform():
    layer = layers.Dense(3, kernel_initializer=lambda shape, dtype, rng: np.ones(shape, dtype))
    layer.build(2)
    np.testing.assert_array_equal(layer.kernel, 1)
    he = layers.Dense(50, kernel_initializer="he_uniform")
    he.build(24)
    assert np.abs(he.kernel).max() <= np.sqrt(6 / 24)


BAD = [
    (lambda: layers.Dense(0), ValueError, "units must be a positive int"),
    (lambda: layers.Dense(2.5), ValueError, "units must be a positive int"),
    (lambda: layers.Dense(4, activation="gelu"), ValueError, "unknown activation 'gelu'"),
    (lambda: layers.Dense(4, kernel_initializer="orthogonal"), ValueError,
     "unknown initializer 'orthogonal'"),
    (lambda: layers.Dense(4, dtype="int32"), TypeError, "float32 or float64"),
    (lambda: layers.Dense(4)(np.zeros(3)), ValueError, "input must be 2-D"),
    (lambda: layers.Dense(4, input_dim=3)(np.zeros((2, 5))), ValueError,
     "expected input with 3 features"),
    (lambda: layers.Dense(4, kernel_initializer=lambda s, d, r: np.zeros((1, 1))).build(3),
     ValueError, "kernel_initializer returned shape (1, 1)"),
    (lambda: layers.Input(shape=(28, 0)), ValueError, "shape must be a tuple of positive ints"),
    (lambda: layers.Dense(4).build((28, 28)), ValueError, "flatten it first"),
    (lambda: layers.Dropout(1.0), ValueError, "rate must be in [0, 1)"),
]


@pytest.mark.parametrize("call, exc, fragment", BAD)
def test_bad_input(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value)


def test_called_layer_rejects_wrong_feature_count_after_build():
    layer = layers.Dense(4)
    layer(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="expected input with 3 features"):
        layer(np.zeros((2, 5)))
