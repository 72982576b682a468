"""The examples of *Deep Learning with Python* (2nd ed.), chapter 2, sections "Data
representations for neural networks" and "Tensor operations", as tests: NumPy facts the
book states, the book's naive Python loops (pyblasnn.naive), and pyblasnn's ops agreeing
with both."""
import numpy as np
import pytest

from pyblasnn import naive, ops


@pytest.fixture(scope="module")
def train_images():
    """Stand-in with MNIST's x_train layout: (60000, 28, 28) uint8 (no dataset download)."""
    rng = np.random.default_rng(2)
    return rng.integers(0, 256, size=(60000, 28, 28), dtype=np.uint8)


# ---------------------------------------------------------------- data representations
def test_scalars_vectors_matrices_rank3():
    x = np.array(12)
    assert x.ndim == 0 and x.shape == ()
    x = np.array([12, 3, 6, 14, 7])
    assert x.ndim == 1 and x.shape == (5,)
    x = np.array([[5, 78, 2, 34, 0], [6, 79, 3, 35, 1], [7, 80, 4, 36, 2]])
    assert x.ndim == 2 and x.shape == (3, 5)
    x = np.array([[[5, 78, 2, 34, 0], [6, 79, 3, 35, 1], [7, 80, 4, 36, 2]],
                  [[5, 78, 2, 34, 0], [6, 79, 3, 35, 1], [7, 80, 4, 36, 2]],
                  [[5, 78, 2, 34, 0], [6, 79, 3, 35, 1], [7, 80, 4, 36, 2]]])
    assert x.ndim == 3 and x.shape == (3, 3, 5)
    # integer tensors go through pyblasnn as float64 (the documented promotion)
    r = ops.relu(x - 40)
    assert r.dtype == np.float64 and r.shape == (3, 3, 5)
    np.testing.assert_array_equal(r, np.maximum(x - 40, 0))


def test_mnist_slicing_and_batches(train_images):
    assert train_images.ndim == 3
    assert train_images.shape == (60000, 28, 28)
    assert train_images.dtype == np.uint8
    digit = train_images[4]
    assert digit.shape == (28, 28)
    my_slice = train_images[10:100]
    assert my_slice.shape == (90, 28, 28)
    np.testing.assert_array_equal(train_images[10:100, :, :], my_slice)
    np.testing.assert_array_equal(train_images[10:100, 0:28, 0:28], my_slice)
    assert train_images[:, 14:, 14:].shape == (60000, 14, 14)
    assert train_images[:, 7:-7, 7:-7].shape == (60000, 14, 14)
    batch = train_images[:128]
    assert batch.shape == (128, 28, 28)
    n = 3
    batch = train_images[128 * n:128 * (n + 1)]
    assert batch.shape == (128, 28, 28)
    np.testing.assert_array_equal(batch[0], train_images[384])


def test_mnist_reshape_and_first_layer(train_images):
    flat = train_images.reshape((60000, 28 * 28))
    assert flat.shape == (60000, 784)
    x = flat.astype("float32") / 255
    assert x.dtype == np.float32
    batch = x[:128]
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((784, 512)) * 0.05).astype(np.float32)
    b = np.zeros(512, np.float32)
    # output = relu(dot(input, W) + b), the book's Dense(512, activation="relu")
    out = ops.relu(ops.add(ops.dot(batch, w), b))
    fused = ops.dense(x, w, b, activation="relu", rows=np.arange(128))
    expected = np.maximum(batch.astype(np.float64) @ w + b, 0)
    assert out.shape == fused.shape == (128, 512)
    assert out.dtype == fused.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused, expected, rtol=1e-4, atol=1e-4)


def test_reshape_examples():
    x = np.array([[0., 1.], [2., 3.], [4., 5.]])
    assert x.shape == (3, 2)
    x6 = x.reshape((6, 1))
    np.testing.assert_array_equal(x6, [[0.], [1.], [2.], [3.], [4.], [5.]])
    x23 = x.reshape((2, 3))
    np.testing.assert_array_equal(x23, [[0., 1., 2.], [3., 4., 5.]])
    x = np.zeros((300, 20))
    x = np.transpose(x)
    assert x.shape == (20, 300)
    # pyblasnn reads the transposed view in place
    y = np.arange(6000.).reshape(300, 20).T
    np.testing.assert_array_equal(ops.relu(y - 3000), np.maximum(y - 3000, 0))


# ----------------------------------------------------------------------- tensor ops
def test_naive_relu_and_add_agree_with_ops():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 100))
    y = rng.standard_normal((20, 100))
    np.testing.assert_array_equal(naive.naive_relu(x), np.maximum(x, 0.))
    np.testing.assert_array_equal(naive.naive_relu(x), ops.relu(x))
    np.testing.assert_array_equal(naive.naive_add(x, y), x + y)
    np.testing.assert_array_equal(naive.naive_add(x, y), ops.add(x, y))
    # z = x + y; z = np.maximum(z, 0.)
    z = ops.maximum(ops.add(x, y), 0.)
    np.testing.assert_array_equal(z, np.maximum(x + y, 0.))
    assert z.shape == (20, 100)


def test_naive_functions_do_not_modify_inputs_and_check_shapes():
    x = np.array([[-1.0, 2.0], [3.0, -4.0]])
    before = x.copy()
    naive.naive_relu(x)
    naive.naive_add(x, x)
    naive.naive_add_matrix_and_vector(x, x[0])
    np.testing.assert_array_equal(x, before)
    with pytest.raises(AssertionError):
        naive.naive_relu(x[0])
    with pytest.raises(AssertionError):
        naive.naive_add(x, x[:1])
    with pytest.raises(AssertionError):
        naive.naive_add_matrix_and_vector(x, np.ones(3))
    with pytest.raises(AssertionError):
        naive.naive_vector_dot(np.ones(2), np.ones(3))
    with pytest.raises(AssertionError):
        naive.naive_matrix_vector_dot(np.ones((2, 3)), np.ones(2))
    with pytest.raises(AssertionError):
        naive.naive_matrix_dot(np.ones((2, 3)), np.ones((2, 3)))


def test_broadcasting_32x10_plus_10():
    rng = np.random.default_rng(3)
    X = rng.random((32, 10))
    y = rng.random((10,))
    y1 = np.expand_dims(y, axis=0)
    assert y1.shape == (1, 10)
    Y = np.concatenate([y1] * 32, axis=0)
    assert Y.shape == (32, 10)
    z = ops.add(X, y)
    assert z.shape == (32, 10) and z.dtype == np.float64
    np.testing.assert_array_equal(z, X + Y)
    np.testing.assert_array_equal(z, naive.naive_add_matrix_and_vector(X, y))


def test_maximum_broadcasts_64_3_32_10_with_32_10():
    rng = np.random.default_rng(4)
    x = rng.random((64, 3, 32, 10))
    y = rng.random((32, 10))
    z = ops.maximum(x, y)
    assert z.shape == (64, 3, 32, 10)
    np.testing.assert_array_equal(z, np.maximum(x, y))


def test_tensor_product_and_naive_dots():
    rng = np.random.default_rng(5)
    x = rng.random((32,))
    y = rng.random((32,))
    z = ops.dot(x, y)
    assert np.ndim(z) == 0
    np.testing.assert_allclose(z, np.dot(x, y), rtol=1e-12)
    np.testing.assert_allclose(naive.naive_vector_dot(x, y), np.dot(x, y), rtol=1e-12)
    m = rng.random((7, 32))
    np.testing.assert_allclose(naive.naive_matrix_vector_dot(m, y), m @ y, rtol=1e-12)
    np.testing.assert_allclose(ops.dot(m, y), naive.naive_matrix_vector_dot(m, y), rtol=1e-12)
    n = rng.random((32, 5))
    np.testing.assert_allclose(naive.naive_matrix_dot(m, n), m @ n, rtol=1e-12)
    np.testing.assert_allclose(ops.dot(m, n), naive.naive_matrix_dot(m, n), rtol=1e-12)
    assert naive.naive_matrix_dot(m, n).shape == (7, 5)


@pytest.mark.parametrize("x_shape,y_shape,z_shape", [
    ((32,), (32,), ()), ((7, 32), (32,), (7,)), ((7, 32), (32, 5), (7, 5)),
    ((2, 3, 4, 5), (5,), (2, 3, 4)), ((2, 3, 4, 5), (5, 6), (2, 3, 4, 6)),
])
def test_dot_shapes_from_the_book(x_shape, y_shape, z_shape):
    rng = np.random.default_rng(6)
    x = rng.random(x_shape)
    y = rng.random(y_shape)
    z = ops.dot(x, y)
    assert np.shape(z) == z_shape == np.dot(x, y).shape
    np.testing.assert_allclose(z, np.dot(x, y), rtol=1e-12)
