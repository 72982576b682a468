"""Fused training kernels: softmax + cross-entropy and the optimizer updates (alone, or fed
by the product that makes the gradient: ``matmul_sgd_update``).

Each function validates its input (``pyblasnn/_validation.py``), allocates missing outputs,
then makes one call into the compiled kernel (``kernels/loss.pyx``, ``kernels/optim.pyx``),
which releases the GIL.

Overlapping memory, as in ``pyblasnn.ops``: an ``out`` that overlaps an input in a way the
kernel cannot take gets the result through a temporary (copied into it afterwards); exact
in-place (the very same array) is written directly where the kernel supports it, as each
docstring says. Two outputs that overlap each other are refused: no order of writes makes
both right. A gradient that is one of the state arrays an update writes before its last
read of the gradient is copied first.
"""
import numpy as np

from . import _validation as _v
from ._kernels import linalg as _la
from ._kernels import loss as _loss
from ._kernels import optim as _optim

__all__ = [
    "sparse_softmax_cross_entropy", "sparse_cross_entropy", "softmax", "softmax_backward",
    "sgd_update", "sgd_momentum_update", "rmsprop_update", "matmul_sgd_update",
]


def _threads(op, n_threads):
    return _v.n_threads(op, n_threads)


def _target(out, inputs, in_place=()):
    """The buffer a kernel should write for ``out``: out itself, unless it may share memory
    with one of ``inputs`` and is not exactly one of ``in_place`` (inputs the kernel reads
    element by element before writing that element), then a new array like out."""
    for arr in inputs:
        if np.may_share_memory(out, arr) and not any(
                a is arr and _v.same_layout(out, a) for a in in_place):
            return np.empty_like(out)
    return out


def _land(buf, out):
    """Copy a temporary result into the caller's out (no-op when the kernel wrote out)."""
    if buf is not out:
        np.copyto(out, buf)
    return out


def _loss_buffers(op, x, labels, out, row_loss, out_in_place):
    """Validated (x, labels, out buffer, row_loss buffer). The buffers are the caller's arrays
    or temporaries when those overlap the inputs (see _target); ``out_in_place``: the kernel
    can write ``out`` over ``x`` itself."""
    x = _v.check_float_matrix(op, "logits" if "softmax" in op else "probs", x)
    n, c = x.shape
    labels = _v.check_sparse_labels(op, labels, n, c)
    out_buf = None
    if out is not None:
        _v.check_out(op, out, x.shape, x.dtype)
        out_buf = _target(out, (x, labels), in_place=(x,) if out_in_place else ())
    if row_loss is None:
        rows_buf = np.empty(n, dtype=np.float64)
    else:
        _v.check_out(op, row_loss, (n,), np.dtype(np.float64), name="row_loss")
        if out is not None and np.shares_memory(out, row_loss):
            raise ValueError(f"{op}: out and row_loss overlap in memory (each output needs "
                             "its own buffer)")
        rows_buf = _target(row_loss, (x, labels))
    return x, labels, out_buf, rows_buf


def _land_losses(out_buf, out, rows_buf, row_loss):
    if out is not None:
        _land(out_buf, out)
    if row_loss is not None:
        _land(rows_buf, row_loss)


def sparse_softmax_cross_entropy(logits, labels, out=None, row_loss=None, n_threads=None):
    """Mean sparse categorical cross-entropy of softmax(logits), and its gradient, in one pass.

    loss = mean_i(logsumexp(logits_i) - logits_i[labels_i]); ``out`` (if given) receives
    dlogits = (softmax(logits) - onehot(labels)) / n. Numerically stable (max-subtraction).
    ``row_loss`` is an optional float64 (n,) workspace for the per-row losses. ``out`` may be
    ``logits`` itself (each row is read whole before its gradient is written).

    Returns ``(loss, n_correct)`` where n_correct counts rows with argmax(logits) == label.
    """
    op = "sparse_softmax_cross_entropy"
    # The lean path computes only when out and row_loss are disjoint from every input and
    # from each other; any overlap returns None and is handled below.
    done = _loss.try_sparse_softmax_cross_entropy(
        logits, labels, out, row_loss, n_threads)
    if done is not None:
        return done
    logits, labels, out_buf, rows_buf = _loss_buffers(op, logits, labels, out, row_loss,
                                                      out_in_place=True)
    loss, correct = _loss.sparse_softmax_cross_entropy(logits, labels, out_buf, rows_buf,
                                                       _threads(op, n_threads))
    _land_losses(out_buf, out, rows_buf, row_loss)
    return float(loss), int(correct)


def sparse_cross_entropy(probs, labels, out=None, row_loss=None, epsilon=1e-7, n_threads=None):
    """Mean sparse categorical cross-entropy of probabilities (``from_logits=False``).

    loss = mean_i(-log(clip(probs_i[labels_i], eps, 1 - eps))); ``out`` (if given) receives
    dprobs, zero except dprobs[i, labels_i] = -1 / (n probs_i[labels_i]) inside the clip range.

    Returns ``(loss, n_correct)`` where n_correct counts rows with argmax(probs) == label.
    """
    op = "sparse_cross_entropy"
    # Not in place: the kernel takes a row's argmax after writing its gradient row.
    probs, labels, out_buf, rows_buf = _loss_buffers(op, probs, labels, out, row_loss,
                                                     out_in_place=False)
    epsilon = _v.check_positive_float(op, "epsilon", epsilon, upper=0.5)
    loss, correct = _loss.sparse_cross_entropy_probs(probs, labels, out_buf, rows_buf, epsilon,
                                                     _threads(op, n_threads))
    _land_losses(out_buf, out, rows_buf, row_loss)
    return float(loss), int(correct)


def softmax(x, out=None, n_threads=None):
    """Row-wise softmax of a 2-D array: exp(x - max) / sum(exp(x - max)); ``out`` may be ``x``."""
    x = _v.check_float_matrix("softmax", "x", x)
    if out is None:
        out = buf = np.empty_like(x)
    else:
        _v.check_out("softmax", out, x.shape, x.dtype)
        buf = _target(out, (x,), in_place=(x,))
    _loss.softmax(x, buf, _threads("softmax", n_threads))
    return _land(buf, out)


def softmax_backward(dy, y, out=None, n_threads=None):
    """Gradient through a row-wise softmax: dx = y * (dy - sum(dy * y, axis=1, keepdims=True)).

    ``y`` is softmax's output; ``out`` may be ``dy`` or ``y`` (a row's dot product is taken
    before the row is written, then each element reads its own dy and y first).
    """
    op = "softmax_backward"
    y = _v.check_float_matrix(op, "y", y)
    dy = _v.check_float_matrix(op, "dy", dy)
    _v.check_same(op, "dy", dy, "y", y)
    if out is None:
        out = buf = np.empty_like(y)
    else:
        _v.check_out(op, out, y.shape, y.dtype)
        buf = _target(out, (dy, y), in_place=(dy, y))
    _loss.softmax_backward(dy, y, buf, _threads(op, n_threads))
    return _land(buf, out)


def sgd_update(param, grad, learning_rate, n_threads=None):
    """In place: param -= learning_rate * grad."""
    op = "sgd_update"
    if _optim.try_sgd(param, grad, learning_rate, n_threads) is not None:
        return
    p, g = _v.check_param_and_state(op, param, grad)
    lr = _v.check_positive_float(op, "learning_rate", learning_rate, allow_zero=True)
    _optim.sgd(p, g, lr, _threads(op, n_threads))


def sgd_momentum_update(param, velocity, grad, learning_rate, momentum, nesterov=False,
                        n_threads=None):
    """In place (Keras rule): velocity = momentum*velocity - lr*grad; param += velocity
    (nesterov: param += momentum*velocity - lr*grad)."""
    op = "sgd_momentum_update"
    if _optim.try_sgd_momentum(param, velocity, grad, learning_rate, momentum, bool(nesterov),
                               n_threads) is not None:
        return
    p, g, v = _v.check_param_and_state(op, param, grad, velocity=velocity)
    lr = _v.check_positive_float(op, "learning_rate", learning_rate, allow_zero=True)
    m = _v.check_unit_interval(op, "momentum", momentum)
    _optim.sgd_momentum(p, v, g, lr, m, bool(nesterov), _threads(op, n_threads))


def rmsprop_update(param, accumulator, grad, learning_rate, rho, epsilon, momentum=0.0,
                   momentum_buffer=None, n_threads=None):
    """In place: a = rho*a + (1-rho)*grad**2; param -= lr*grad / (sqrt(a) + eps).

    With momentum > 0 (``momentum_buffer`` required): mom = momentum*mom + lr*grad/(sqrt(a)+eps);
    param -= mom.
    """
    op = "rmsprop_update"
    if _optim.try_rmsprop(param, accumulator, momentum_buffer, grad, learning_rate, rho, momentum,
                          epsilon, n_threads) is not None:
        return
    lr = _v.check_positive_float(op, "learning_rate", learning_rate, allow_zero=True)
    rho = _v.check_unit_interval(op, "rho", rho)
    eps = _v.check_positive_float(op, "epsilon", epsilon)
    m = _v.check_unit_interval(op, "momentum", momentum)
    if m > 0 and momentum_buffer is None:
        raise ValueError(f"{op}: momentum={m} > 0 needs a momentum_buffer")
    state = {"accumulator": accumulator}
    if m > 0:
        state["momentum_buffer"] = momentum_buffer
    p, g, a, *mom = _v.check_param_and_state(op, param, grad, **state)
    _optim.rmsprop(p, a, mom[0] if mom else None, g, lr, rho, m, eps, _threads(op, n_threads))


def _product_operand(op, name, x, dtype):
    """A 2-D float operand of the product, any strides (copied only when its strides are not
    whole elements or it is misaligned)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype != dtype:
        raise TypeError(f"{op}: {name} must have param's dtype {dtype}, got {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{op}: {name} must be 2-D, got shape {x.shape}")
    if not x.flags.aligned or any(s % x.itemsize for s in x.strides):
        x = np.ascontiguousarray(x)
    return x


def matmul_sgd_update(a, b, param, learning_rate, momentum=0.0, velocity=None, nesterov=False,
                      grad=None, n_threads=None):
    """One SGD step on ``param`` whose gradient is ``a @ b``; returns True when fused.

    The result is bit for bit ``sgd_update(param, a @ b, lr)`` (momentum 0, ``velocity``
    unused) or ``sgd_momentum_update(param, velocity, a @ b, lr, momentum, nesterov)``.
    a: (m, k), b: (k, n), any strides (``x.T`` for a layer's input x); param, velocity and
    grad: (m, n) C-contiguous, of a's dtype. Where the product takes the zero-skipping path
    (float32, ``a`` mostly zeros: the first layer's ``x.T @ dh`` on MNIST), the gradient is
    never stored: each tile of it updates param (and velocity) while it is in registers,
    which saves writing and re-reading m * n floats. Otherwise ``a @ b`` is computed into
    ``grad`` (a new array when None) and the update runs on it. After a fused step ``grad``
    is left as it was.
    """
    op = "matmul_sgd_update"
    lr = _v.check_positive_float(op, "learning_rate", learning_rate, allow_zero=True)
    m = _v.check_unit_interval(op, "momentum", momentum)
    if m > 0 and velocity is None:
        raise ValueError(f"{op}: momentum={m} > 0 needs a velocity")
    state = {"velocity": velocity} if m > 0 else {}
    if not isinstance(param, np.ndarray):
        raise TypeError(f"{op}: param must be a numpy.ndarray, got {type(param).__name__}")
    if grad is None:
        grad = np.empty_like(param, order="C")
    _v.check_param_and_state(op, param, grad, **state)
    a, b = (_product_operand(op, name, x, param.dtype) for name, x in (("a", a), ("b", b)))
    if param.ndim != 2 or a.shape[1] != b.shape[0] or param.shape != (a.shape[0], b.shape[1]):
        raise ValueError(f"{op}: a {a.shape} @ b {b.shape} does not give param's shape "
                         f"{param.shape}")
    arrays = {"a": a, "b": b, "param": param, "grad": grad, **state}
    written = ("param", "grad", *state)
    pairs = [(w, r) for w in written for r in ("a", "b")] + [("grad", s) for s in ("param", *state)]
    for first, second in pairs:
        if np.shares_memory(arrays[first], arrays[second]):
            raise ValueError(f"{op}: {first} and {second} overlap in memory ({first} is written "
                             f"while {second} is still needed)")
    nt = _threads(op, n_threads)
    if param.dtype == np.float32 and _la.gemm_sgd(a, b, param, state.get("velocity"), lr, m,
                                                  bool(nesterov), nt):
        return True
    _la.gemm(a, b, grad, False, None, False, None, nt)
    if m > 0:
        _optim.sgd_momentum(param.reshape(-1), state["velocity"].reshape(-1), grad.reshape(-1),
                            lr, m, bool(nesterov), nt)
    else:
        _optim.sgd(param.reshape(-1), grad.reshape(-1), lr, nt)
    return False
