"""Fused softmax + sparse categorical cross-entropy kernels.

Forward and backward in one pass over each row: the loss of a row and its gradient row are
computed together, so training never materialises the probabilities.

Determinism: rows are independent; each thread writes its rows' losses into ``row_loss`` and
the mean is summed sequentially afterwards, so 1 and N threads give bitwise-equal losses and
gradients. The correct-prediction count is an integer reduction (order-independent).

The ``def`` wrappers release the GIL and do not validate: ``pyblasnn/fused.py`` proves shapes,
dtypes, contiguity and label range first.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, expf, log, INFINITY

# Below this many logits a parallel region costs more than it saves (one MLP minibatch of
# 128 x 10 stays serial).
cdef Py_ssize_t PARALLEL_MIN_ELEMENTS = 32768


cdef inline int _threads_for(Py_ssize_t elements, int n_threads) noexcept nogil:
    if n_threads < 1 or elements < PARALLEL_MIN_ELEMENTS:
        return 1
    return n_threads


cdef inline Py_ssize_t _argmax_row(const floating* z, Py_ssize_t c) noexcept nogil:
    """first j with z[j] == max(z) (NumPy's argmax tie rule)"""
    cdef Py_ssize_t j, best = 0
    cdef floating m = z[0]
    for j in range(1, c):
        if z[j] > m:
            m = z[j]
            best = j
    return best


cdef inline double _exp_shifted(floating z, double m) noexcept nogil:
    """exp(z - m) in the input's precision (expf for float32: 2-3x cheaper than exp)"""
    if floating is float:
        return expf(z - <float>m)
    else:
        return exp(z - m)


cdef inline double _softmax_xent_row(const floating* z, Py_ssize_t c, Py_ssize_t label,
                              floating* dz, double scale) noexcept nogil:
    """loss = logsumexp(z) - z[label];  dz := (softmax(z) - onehot(label)) * scale (if dz)"""
    cdef Py_ssize_t j
    cdef double m = -INFINITY
    cdef double s = 0.0
    cdef double e, inv_s
    for j in range(c):                       # max-subtraction: exp never overflows
        if z[j] > m:
            m = z[j]
    if dz != NULL:
        for j in range(c):
            e = _exp_shifted(z[j], m)
            dz[j] = <floating>e
            s += e
        inv_s = scale / s
        for j in range(c):
            dz[j] = <floating>(dz[j] * inv_s)
        dz[label] = <floating>(dz[label] - scale)
    else:
        for j in range(c):
            s += _exp_shifted(z[j], m)
    return log(s) - (<double>z[label] - m)


cdef double _sparse_softmax_xent(const floating* logits, Py_ssize_t n, Py_ssize_t c,
                                 const Py_ssize_t* labels, floating* dlogits,
                                 double* row_loss, Py_ssize_t* n_correct,
                                 int n_threads) noexcept nogil:
    """mean_i(logsumexp(Z_i) - Z_i[y_i]);  dZ := (softmax(Z) - onehot(y)) / n
    IN logits (n, c), labels (n,) in [0, c); OUT dlogits (n, c) or NULL, row_loss (n,),
    n_correct (count of argmax(Z_i) == y_i)."""
    cdef Py_ssize_t i
    cdef Py_ssize_t correct = 0
    cdef double total = 0.0
    cdef double scale = 1.0 / n if n > 0 else 0.0
    cdef int nt = _threads_for(n * c, n_threads)
    for i in prange(n, nogil=True, schedule="static", num_threads=nt):
        row_loss[i] = _softmax_xent_row(logits + i * c, c, labels[i],
                                        dlogits + i * c if dlogits != NULL else NULL, scale)
        if _argmax_row(logits + i * c, c) == labels[i]:
            correct += 1
    for i in range(n):                       # sequential: same sum for any thread count
        total += row_loss[i]
    n_correct[0] = correct
    return total * scale


cdef inline double _xent_probs_row(const floating* p_row, Py_ssize_t c, Py_ssize_t label,
                                   floating* dp, double scale, double eps) noexcept nogil:
    """loss = -log(clip(p[label], eps, 1 - eps));  dp := -scale / p[label] at label, else 0"""
    cdef Py_ssize_t j
    cdef double p = p_row[label]
    if dp != NULL:
        for j in range(c):
            dp[j] = 0
        if p > eps and p < 1.0 - eps:        # the clip's gradient is 0 outside its range
            dp[label] = <floating>(-scale / p)
    if p < eps:
        p = eps
    elif p > 1.0 - eps:
        p = 1.0 - eps
    return -log(p)


cdef double _sparse_xent_probs(const floating* probs, Py_ssize_t n, Py_ssize_t c,
                               const Py_ssize_t* labels, floating* dprobs, double* row_loss,
                               double eps, Py_ssize_t* n_correct,
                               int n_threads) noexcept nogil:
    """mean_i(-log(clip(P_i[y_i], eps, 1 - eps)));  dP[i, y_i] := -1 / (n P_i[y_i]) inside the
    clip range, every other dP := 0
    IN probs (n, c), labels (n,); OUT dprobs (n, c) or NULL, row_loss (n,), n_correct."""
    cdef Py_ssize_t i
    cdef Py_ssize_t correct = 0
    cdef double total = 0.0
    cdef double scale = 1.0 / n if n > 0 else 0.0
    cdef int nt = _threads_for(n * c, n_threads)
    for i in prange(n, nogil=True, schedule="static", num_threads=nt):
        row_loss[i] = _xent_probs_row(probs + i * c, c, labels[i],
                                      dprobs + i * c if dprobs != NULL else NULL, scale, eps)
        if _argmax_row(probs + i * c, c) == labels[i]:
            correct += 1
    for i in range(n):
        total += row_loss[i]
    n_correct[0] = correct
    return total * scale


cdef inline void _softmax_row(const floating* x, Py_ssize_t c, floating* y) noexcept nogil:
    """y := exp(x - max x) / sum(exp(x - max x))"""
    cdef Py_ssize_t j
    cdef double m = -INFINITY
    cdef double s = 0.0
    cdef double e
    for j in range(c):
        if x[j] > m:
            m = x[j]
    for j in range(c):
        e = exp(<double>x[j] - m)
        y[j] = <floating>e
        s += e
    s = 1.0 / s
    for j in range(c):
        y[j] = <floating>(y[j] * s)


cdef void _softmax(const floating* x, Py_ssize_t n, Py_ssize_t c, floating* y,
                   int n_threads) noexcept nogil:
    """Y_i := exp(X_i - max X_i) / sum(exp(X_i - max X_i))   IN x (n, c); OUT y (n, c), may be x"""
    cdef Py_ssize_t i
    cdef int nt = _threads_for(n * c, n_threads)
    for i in prange(n, nogil=True, schedule="static", num_threads=nt):
        _softmax_row(x + i * c, c, y + i * c)


cdef inline void _softmax_backward_row(const floating* dy, const floating* y, Py_ssize_t c,
                                       floating* dx) noexcept nogil:
    """dx := y * (dy - <dy, y>)"""
    cdef Py_ssize_t j
    cdef double dot = 0.0
    for j in range(c):
        dot += <double>dy[j] * y[j]
    for j in range(c):
        dx[j] = <floating>(y[j] * (dy[j] - dot))


cdef void _softmax_backward(const floating* dy, const floating* y, Py_ssize_t n, Py_ssize_t c,
                            floating* dx, int n_threads) noexcept nogil:
    """dX_i := Y_i * (dY_i - <dY_i, Y_i>)   IN dy, y (n, c); OUT dx (n, c), may be dy"""
    cdef Py_ssize_t i
    cdef int nt = _threads_for(n * c, n_threads)
    for i in prange(n, nogil=True, schedule="static", num_threads=nt):
        _softmax_backward_row(dy + i * c, y + i * c, c, dx + i * c)


# ---------------------------------------------------------------------------------------
# Python-facing wrappers: release the GIL, no validation (see pyblasnn/fused.py).

def sparse_softmax_cross_entropy(const floating[:, ::1] logits, const Py_ssize_t[::1] labels,
                                 floating[:, ::1] dlogits, double[::1] row_loss,
                                 int n_threads):
    """Return (mean loss, n_correct); fills dlogits (unless None) and row_loss."""
    cdef Py_ssize_t n = logits.shape[0], c = logits.shape[1]
    cdef Py_ssize_t correct = 0
    cdef double loss = 0.0
    cdef floating* dz = NULL
    if n == 0:
        return 0.0, 0
    if dlogits is not None:
        dz = &dlogits[0, 0]
    with nogil:
        loss = _sparse_softmax_xent(&logits[0, 0], n, c, &labels[0], dz, &row_loss[0],
                                    &correct, n_threads)
    return loss, correct


def sparse_cross_entropy_probs(const floating[:, ::1] probs, const Py_ssize_t[::1] labels,
                               floating[:, ::1] dprobs, double[::1] row_loss, double eps,
                               int n_threads):
    """Return (mean loss, n_correct); fills dprobs (unless None) and row_loss."""
    cdef Py_ssize_t n = probs.shape[0], c = probs.shape[1]
    cdef Py_ssize_t correct = 0
    cdef double loss = 0.0
    cdef floating* dp = NULL
    if n == 0:
        return 0.0, 0
    if dprobs is not None:
        dp = &dprobs[0, 0]
    with nogil:
        loss = _sparse_xent_probs(&probs[0, 0], n, c, &labels[0], dp, &row_loss[0], eps,
                                  &correct, n_threads)
    return loss, correct


def softmax(const floating[:, ::1] x, floating[:, ::1] out, int n_threads):
    """out := softmax(x) along the last axis (out may be x)."""
    if x.shape[0] == 0 or x.shape[1] == 0:
        return
    with nogil:
        _softmax(&x[0, 0], x.shape[0], x.shape[1], &out[0, 0], n_threads)


def softmax_backward(const floating[:, ::1] dy, const floating[:, ::1] y,
                     floating[:, ::1] out, int n_threads):
    """out := y * (dy - sum(dy * y, axis=-1, keepdims=True)) (out may be dy)."""
    if y.shape[0] == 0 or y.shape[1] == 0:
        return
    with nogil:
        _softmax_backward(&dy[0, 0], &y[0, 0], y.shape[0], y.shape[1], &out[0, 0], n_threads)
