"""Fused training kernels: softmax + cross-entropy and the optimizer updates.

Each function validates its input (``pyblasnn/_validation.py``), allocates missing outputs,
then makes one call into the compiled kernel (``kernels/loss.pyx``, ``kernels/optim.pyx``),
which releases the GIL.
"""
import numpy as np

from . import _validation as _v
from ._kernels import loss as _loss
from ._kernels import optim as _optim

__all__ = [
    "sparse_softmax_cross_entropy", "sparse_cross_entropy", "softmax", "softmax_backward",
    "sgd_update", "sgd_momentum_update", "rmsprop_update",
]


def _threads(op, n_threads):
    return _v.n_threads(op, n_threads)


def _loss_buffers(op, x, labels, out, row_loss):
    x = _v.check_float_matrix(op, "logits" if "softmax" in op else "probs", x)
    n, c = x.shape
    labels = _v.check_sparse_labels(op, labels, n, c)
    if out is not None:
        _v.check_out(op, out, x.shape, x.dtype)
    if row_loss is None:
        row_loss = np.empty(n, dtype=np.float64)
    else:
        _v.check_out(op, row_loss, (n,), np.dtype(np.float64), name="row_loss")
    return x, labels, row_loss


def sparse_softmax_cross_entropy(logits, labels, out=None, row_loss=None, n_threads=None):
    """Mean sparse categorical cross-entropy of softmax(logits), and its gradient, in one pass.

    loss = mean_i(logsumexp(logits_i) - logits_i[labels_i]); ``out`` (if given) receives
    dlogits = (softmax(logits) - onehot(labels)) / n. Numerically stable (max-subtraction).
    ``row_loss`` is an optional float64 (n,) workspace for the per-row losses.

    Returns ``(loss, n_correct)`` where n_correct counts rows with argmax(logits) == label.
    """
    op = "sparse_softmax_cross_entropy"
    done = _loss.try_sparse_softmax_cross_entropy(
        logits, labels, out, row_loss, n_threads)
    if done is not None:
        return done
    logits, labels, row_loss = _loss_buffers(op, logits, labels, out, row_loss)
    loss, correct = _loss.sparse_softmax_cross_entropy(logits, labels, out, row_loss,
                                                       _threads(op, n_threads))
    return float(loss), int(correct)


def sparse_cross_entropy(probs, labels, out=None, row_loss=None, epsilon=1e-7, n_threads=None):
    """Mean sparse categorical cross-entropy of probabilities (``from_logits=False``).

    loss = mean_i(-log(clip(probs_i[labels_i], eps, 1 - eps))); ``out`` (if given) receives
    dprobs, zero except dprobs[i, labels_i] = -1 / (n probs_i[labels_i]) inside the clip range.

    Returns ``(loss, n_correct)`` where n_correct counts rows with argmax(probs) == label.
    """
    op = "sparse_cross_entropy"
    probs, labels, row_loss = _loss_buffers(op, probs, labels, out, row_loss)
    epsilon = _v.check_positive_float(op, "epsilon", epsilon, upper=0.5)
    loss, correct = _loss.sparse_cross_entropy_probs(probs, labels, out, row_loss, epsilon,
                                                     _threads(op, n_threads))
    return float(loss), int(correct)


def softmax(x, out=None, n_threads=None):
    """Row-wise softmax of a 2-D array: exp(x - max) / sum(exp(x - max)); ``out`` may be ``x``."""
    x = _v.check_float_matrix("softmax", "x", x)
    if out is None:
        out = np.empty_like(x)
    else:
        _v.check_out("softmax", out, x.shape, x.dtype)
    _loss.softmax(x, out, _threads("softmax", n_threads))
    return out


def softmax_backward(dy, y, out=None, n_threads=None):
    """Gradient through a row-wise softmax: dx = y * (dy - sum(dy * y, axis=1, keepdims=True)).

    ``y`` is softmax's output; ``out`` may be ``dy``.
    """
    op = "softmax_backward"
    y = _v.check_float_matrix(op, "y", y)
    dy = _v.check_float_matrix(op, "dy", dy)
    _v.check_same(op, "dy", dy, "y", y)
    if out is None:
        out = np.empty_like(y)
    else:
        _v.check_out(op, out, y.shape, y.dtype)
    _loss.softmax_backward(dy, y, out, _threads(op, n_threads))
    return out


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
