"""Pure-Python reference loops for the tensor operations of *Deep Learning with Python*
(2nd ed., chapter 2, "Tensor operations").

These are the slow, obviously-correct versions the compiled kernels are measured against
(in bench/) and checked against (in tests/). Each takes NumPy arrays, asserts the ranks and
shapes it needs, loops element by element in Python and returns a new array; the inputs
are never modified.
"""
import numpy as np

__all__ = ["naive_relu", "naive_add", "naive_add_matrix_and_vector", "naive_vector_dot",
           "naive_matrix_vector_dot", "naive_matrix_dot"]


def naive_relu(x):
    """z[i, j] = max(x[i, j], 0) for a 2-D x."""
    assert len(x.shape) == 2, f"naive_relu expects a 2-D array, got shape {x.shape}"
    z = np.array(x, copy=True)
    rows, cols = z.shape
    for i in range(rows):
        for j in range(cols):
            z[i, j] = max(z[i, j], 0)
    return z


def naive_add(x, y):
    """z[i, j] = x[i, j] + y[i, j] for 2-D x and y of one shape."""
    assert len(x.shape) == 2, f"naive_add expects 2-D x, got shape {x.shape}"
    assert x.shape == y.shape, f"naive_add: x.shape {x.shape} != y.shape {y.shape}"
    z = np.array(x, copy=True)
    rows, cols = z.shape
    for i in range(rows):
        for j in range(cols):
            z[i, j] += y[i, j]
    return z


def naive_add_matrix_and_vector(x, y):
    """z[i, j] = x[i, j] + y[j]: a (n, d) matrix plus a (d,) vector (manual broadcasting)."""
    assert len(x.shape) == 2, f"expects a 2-D x, got shape {x.shape}"
    assert len(y.shape) == 1, f"expects a 1-D y, got shape {y.shape}"
    assert x.shape[1] == y.shape[0], f"x.shape[1] {x.shape[1]} != y.shape[0] {y.shape[0]}"
    z = np.array(x, copy=True)
    rows, cols = z.shape
    for i in range(rows):
        for j in range(cols):
            z[i, j] += y[j]
    return z


def naive_vector_dot(x, y):
    """z = sum_i x[i] * y[i] for 1-D x and y of one length (a scalar)."""
    assert len(x.shape) == 1, f"expects a 1-D x, got shape {x.shape}"
    assert len(y.shape) == 1, f"expects a 1-D y, got shape {y.shape}"
    assert x.shape[0] == y.shape[0], f"x.shape[0] {x.shape[0]} != y.shape[0] {y.shape[0]}"
    z = 0.
    for i in range(x.shape[0]):
        z += x[i] * y[i]
    return z


def naive_matrix_vector_dot(x, y):
    """z[i] = sum_j x[i, j] * y[j]: each entry is a vector dot of a row of x with y."""
    assert len(x.shape) == 2, f"expects a 2-D x, got shape {x.shape}"
    assert len(y.shape) == 1, f"expects a 1-D y, got shape {y.shape}"
    assert x.shape[1] == y.shape[0], f"x.shape[1] {x.shape[1]} != y.shape[0] {y.shape[0]}"
    z = np.zeros(x.shape[0])
    for i in range(x.shape[0]):
        z[i] = naive_vector_dot(x[i, :], y)
    return z


def naive_matrix_dot(x, y):
    """z[i, j] = sum_p x[i, p] * y[p, j]: row i of x dotted with column j of y."""
    assert len(x.shape) == 2, f"expects a 2-D x, got shape {x.shape}"
    assert len(y.shape) == 2, f"expects a 2-D y, got shape {y.shape}"
    assert x.shape[1] == y.shape[0], f"x.shape[1] {x.shape[1]} != y.shape[0] {y.shape[0]}"
    z = np.zeros((x.shape[0], y.shape[1]))
    for i in range(x.shape[0]):
        for j in range(y.shape[1]):
            z[i, j] = naive_vector_dot(x[i, :], y[:, j])
    return z
