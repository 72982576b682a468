"""Fused in-place optimizer updates: one pass over each parameter and its state.

Each element's update is independent, so the result is identical for any thread count.
Hyperparameters are rounded to the parameter's dtype first, so a float32 model is updated
in float32 arithmetic, as Keras does.

The ``def`` wrappers release the GIL and do not validate: ``pyblasnn/fused.py`` proves that
parameter, gradient and state arrays are C-contiguous, of one dtype and of one size.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

# Below this many elements an update stays on one thread (the 512 x 10 kernel and every
# bias of the book's model; the 784 x 512 kernel is split).
cdef Py_ssize_t PARALLEL_MIN_ELEMENTS = 32768


cdef inline int _threads_for(Py_ssize_t elements, int n_threads) noexcept nogil:
    if n_threads < 1 or elements < PARALLEL_MIN_ELEMENTS:
        return 1
    return n_threads


cdef void _sgd(floating* w, const floating* g, Py_ssize_t n, floating lr,
               int n_threads) noexcept nogil:
    """w := w - lr * g   OUT w; IN g"""
    cdef Py_ssize_t i
    for i in prange(n, nogil=True, schedule="static", num_threads=_threads_for(n, n_threads)):
        w[i] = w[i] - lr * g[i]


cdef void _sgd_momentum(floating* w, floating* v, const floating* g, Py_ssize_t n, floating lr,
                        floating momentum, bint nesterov, int n_threads) noexcept nogil:
    """v := m*v - lr*g;  w := w + v  (nesterov: w := w + m*v - lr*g)   OUT w, v; IN g"""
    cdef Py_ssize_t i
    cdef floating vi
    for i in prange(n, nogil=True, schedule="static", num_threads=_threads_for(n, n_threads)):
        vi = momentum * v[i] - lr * g[i]
        v[i] = vi
        if nesterov:
            w[i] = w[i] + (momentum * vi - lr * g[i])
        else:
            w[i] = w[i] + vi


cdef void _rmsprop(floating* w, floating* a, floating* mom, const floating* g, Py_ssize_t n,
                   floating lr, floating rho, floating momentum, floating eps,
                   int n_threads) noexcept nogil:
    """a := rho*a + (1-rho)*g^2;  d := lr*g / (sqrt(a) + eps);
    w := w - d, or with momentum  mom := m*mom + d;  w := w - mom   OUT w, a, mom (or NULL); IN g"""
    cdef Py_ssize_t i
    cdef floating ai, di
    cdef floating one_minus_rho = 1 - rho
    for i in prange(n, nogil=True, schedule="static", num_threads=_threads_for(n, n_threads)):
        ai = rho * a[i] + one_minus_rho * g[i] * g[i]
        a[i] = ai
        di = lr * g[i] / (<floating>sqrt(ai) + eps)
        if mom != NULL:
            di = momentum * mom[i] + di
            mom[i] = di
        w[i] = w[i] - di


# ---------------------------------------------------------------------------------------
# Python-facing wrappers: release the GIL, no validation (see pyblasnn/fused.py).
# Arrays are passed flattened (1-D C-contiguous views of the parameters).

def sgd(floating[::1] w, const floating[::1] g, double learning_rate, int n_threads):
    """w -= learning_rate * g, in place."""
    if w.shape[0] == 0:
        return
    with nogil:
        _sgd(&w[0], &g[0], w.shape[0], <floating>learning_rate, n_threads)


def sgd_momentum(floating[::1] w, floating[::1] v, const floating[::1] g, double learning_rate,
                 double momentum, bint nesterov, int n_threads):
    """v = momentum*v - learning_rate*g; w += v (nesterov: w += momentum*v - lr*g), in place."""
    if w.shape[0] == 0:
        return
    with nogil:
        _sgd_momentum(&w[0], &v[0], &g[0], w.shape[0], <floating>learning_rate,
                      <floating>momentum, nesterov, n_threads)


def rmsprop(floating[::1] w, floating[::1] a, floating[::1] mom, const floating[::1] g,
            double learning_rate, double rho, double momentum, double epsilon, int n_threads):
    """a = rho*a + (1-rho)*g**2; w -= lr*g/(sqrt(a)+eps) (through mom when mom is not None)."""
    cdef floating* mom_ptr = NULL
    if w.shape[0] == 0:
        return
    if mom is not None:
        mom_ptr = &mom[0]
    with nogil:
        _rmsprop(&w[0], &a[0], mom_ptr, &g[0], w.shape[0], <floating>learning_rate,
                 <floating>rho, <floating>momentum, <floating>epsilon, n_threads)
