"""Gradient rules: every differentiable op as a forward and a vector-Jacobian product.

One table (``RULES``, op name -> ``Rule``) serves both ways of computing gradients: the
``GradientTape`` records ``Rule`` applications and walks them backwards, and the Keras-style
layers call the same ``forward`` / ``vjp`` functions with their preallocated buffers.
Everything here works on plain ndarrays and is built on ``pyblasnn.ops`` / ``pyblasnn.fused``
(and their ``*_backward``); the tape and the layers add no arithmetic of their own.

Contract of a rule:

- ``forward(*inputs, **attrs) -> (value, saved)``: the op's result and what its vjp needs
  (inputs, the output, shapes) — nothing is recomputed in the backward pass.
- ``vjp(g, saved, needs, out=None) -> tuple``: one gradient per input, each already reduced
  to that input's shape; ``needs[i]`` False means input ``i`` leads to no source and its
  gradient is not computed (``None`` in its place). ``out`` is None or a tuple of buffers,
  one per input (entries may be None), that the gradient is written into.
"""
import numpy as np

from .. import fused, ops

__all__ = ["Rule", "RULES", "rule", "ACTIVATIONS", "activation_forward", "activation_vjp"]


class Rule:
    """``forward`` and ``vjp`` of one op (see the module docstring for the contract)."""

    __slots__ = ("name", "forward", "vjp", "returns_view")

    def __init__(self, name, forward, vjp, returns_view=False):
        self.name, self.forward, self.vjp = name, forward, vjp
        self.returns_view = returns_view    # forward may return a view of an input

    def __repr__(self):
        return f"Rule({self.name!r})"


RULES = {}


def rule(name, forward, vjp, returns_view=False):
    """Register (or replace) the rule for op ``name`` and return it."""
    RULES[name] = r = Rule(name, forward, vjp, returns_view)
    return r


def _out(out, i):
    return None if out is None else out[i]


def _into(value, out):
    """value, written into ``out`` when a buffer is given."""
    if out is None or value is out:
        return value
    np.copyto(out, value)
    return out


def _dense_g(g):
    """g with no zero strides (a broadcast gradient from a reduction) for the GEMM kernels."""
    return g if 0 not in g.strides or g.size <= 1 else np.ascontiguousarray(g)


# --------------------------------------------------------------------------- activations
def _relu_forward(x):
    y = ops.relu(x)
    return y, y


def _relu_vjp(g, y, needs, out=None):
    """dx = g * (y > 0): relu's output marks where its input was positive."""
    return (ops.relu_backward(g, y, out=_out(out, 0)),)


def _sigmoid_forward(x):
    # 1 / (1 + exp(-x)) without overflow: exp(-log(1 + exp(-x)))
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    y = np.exp(-np.logaddexp(dtype.type(0), -x, dtype=dtype))
    return y, y


def _sigmoid_vjp(g, y, needs, out=None):
    """dx = g * y * (1 - y)."""
    dx = ops.multiply(g, ops.multiply(y, ops.subtract(1, y)), out=_out(out, 0))
    return (dx,)


def _tanh_forward(x):
    x = np.asarray(x)
    y = np.tanh(x, dtype=x.dtype if x.dtype.kind == "f" else np.float64)
    return y, y


def _tanh_vjp(g, y, needs, out=None):
    """dx = g * (1 - y**2)."""
    return (ops.multiply(g, ops.subtract(1, ops.multiply(y, y)), out=_out(out, 0)),)


def _softmax_forward(x, axis=-1):
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("softmax: needs at least one axis, got a scalar")
    moved = np.moveaxis(x, axis, -1)
    flat = np.ascontiguousarray(moved).reshape(-1, moved.shape[-1]) if moved.size else \
        moved.reshape(0, moved.shape[-1])
    y = np.moveaxis(fused.softmax(flat).reshape(moved.shape), -1, axis)
    return y, (y, axis)


def _softmax_vjp(g, saved, needs, out=None):
    """dx = y * (g - sum(g * y, axis, keepdims=True))."""
    y, axis = saved
    ym = np.ascontiguousarray(np.moveaxis(y, axis, -1))
    gm = np.ascontiguousarray(np.moveaxis(np.asarray(g, y.dtype), axis, -1))
    n = ym.shape[-1]
    dx = fused.softmax_backward(gm.reshape(-1, n), ym.reshape(-1, n)).reshape(ym.shape)
    return (_into(np.moveaxis(dx, -1, axis), _out(out, 0)),)


def _identity_forward(x):
    return x, None


def _identity_vjp(g, saved, needs, out=None):
    return (_into(g, _out(out, 0)),)


#: name -> (forward, vjp) of the element-wise activations a Dense layer can apply.
ACTIVATIONS = {
    None: (_identity_forward, _identity_vjp),
    "linear": (_identity_forward, _identity_vjp),
    "relu": (_relu_forward, _relu_vjp),
    "sigmoid": (_sigmoid_forward, _sigmoid_vjp),
    "tanh": (_tanh_forward, _tanh_vjp),
    "softmax": (_softmax_forward, _softmax_vjp),
}


def activation_forward(name, x):
    """(y, saved) of activation ``name`` (None, 'linear', 'relu', 'sigmoid', 'tanh', 'softmax')."""
    return ACTIVATIONS[name][0](x)


def activation_vjp(name, g, saved, out=None):
    """dx of activation ``name`` given its forward's ``saved``; written into ``out`` if given."""
    return ACTIVATIONS[name][1](g, saved, (True,), None if out is None else (out,))[0]


rule("relu", _relu_forward, _relu_vjp)
rule("sigmoid", _sigmoid_forward, _sigmoid_vjp)
rule("tanh", _tanh_forward, _tanh_vjp)
rule("softmax", _softmax_forward, _softmax_vjp)
rule("identity", _identity_forward, _identity_vjp, returns_view=True)


# ----------------------------------------------------------------- broadcasting binaries
def _shapes(x, y):
    return np.shape(x), np.shape(y)


def _add_forward(x, y):
    return ops.add(x, y), _shapes(x, y)


def _add_vjp(g, shapes, needs, out=None):
    return ops.add_backward(g, *shapes, out=out)


def _subtract_forward(x, y):
    return ops.subtract(x, y), _shapes(x, y)


def _subtract_vjp(g, shapes, needs, out=None):
    return ops.subtract_backward(g, *shapes, out=out)


def _multiply_forward(x, y):
    return ops.multiply(x, y), (x, y)


def _multiply_vjp(g, saved, needs, out=None):
    x, y = saved
    return ops.multiply_backward(g, x, y, out=out)


def _divide_forward(x, y):
    return ops.divide(x, y), (x, y)


def _divide_vjp(g, saved, needs, out=None):
    x, y = saved
    return ops.divide_backward(g, x, y, out=out)


def _maximum_forward(x, y):
    return ops.maximum(x, y), (x, y)


def _maximum_vjp(g, saved, needs, out=None):
    x, y = saved
    return ops.maximum_backward(g, x, y, out=out)


rule("add", _add_forward, _add_vjp)
rule("subtract", _subtract_forward, _subtract_vjp)
rule("multiply", _multiply_forward, _multiply_vjp)
rule("divide", _divide_forward, _divide_vjp)
rule("maximum", _maximum_forward, _maximum_vjp)


def _negative_forward(x):
    return ops.multiply(x, -1), None


def _negative_vjp(g, saved, needs, out=None):
    return (ops.multiply(g, -1, out=_out(out, 0)),)


def _square_forward(x):
    return ops.multiply(x, x), x


def _square_vjp(g, x, needs, out=None):
    """dx = 2 x g."""
    return (ops.multiply(ops.multiply(x, 2), g, out=_out(out, 0)),)


def _power_forward(x, exponent):
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    y = np.power(x, dtype.type(exponent), dtype=dtype)
    return y, (x, exponent)


def _power_vjp(g, saved, needs, out=None):
    """dx = p x**(p - 1) g."""
    x, p = saved
    local = np.power(x, x.dtype.type(p - 1)) if p != 1 else np.ones_like(x)
    return (ops.multiply(ops.multiply(local, p), g, out=_out(out, 0)),)


rule("negative", _negative_forward, _negative_vjp)
rule("square", _square_forward, _square_vjp)
rule("power", _power_forward, _power_vjp)


# ------------------------------------------------------------------------- products
def _matmul_forward(a, b):
    return ops.matmul(a, b), (a, b)


def _matmul_vjp(g, saved, needs, out=None):
    """da = g @ b^T, db = a^T @ g (each summed to its operand's shape); only what is needed."""
    a, b = saved
    g = _dense_g(np.asarray(g))
    if np.ndim(a) == 2 and np.ndim(b) == 2:
        # transposed operands are read through their strides, never copied
        da = ops.matmul(g, b.T, out=_out(out, 0)) if needs[0] else None
        db = ops.matmul(a.T, g, out=_out(out, 1)) if needs[1] else None
        return da, db
    return ops.matmul_backward(g, a, b, out=out)


rule("matmul", _matmul_forward, _matmul_vjp)


def dense_forward(x, kernel, bias=None, activation=None, out=None, rows=None):
    """y = act(x[rows] @ kernel + bias): relu (and None) fused into the GEMM epilogue.

    Returns (y, saved); y is ``out`` when given. ``saved`` holds what ``dense_vjp`` needs.
    """
    fused_act = activation if activation in (None, "linear", "relu") else None
    y = ops.dense(x, kernel, bias, activation=fused_act, out=out, rows=rows)
    if fused_act is None and activation not in (None, "linear"):
        y, _ = activation_forward(activation, y)
        if out is not None and y is not out:
            np.copyto(out, y)
            y = out
    return y, (x if rows is None else None, kernel, y, activation, bias is not None)


def dense_vjp(g, saved, needs, out=None, x=None, pre_activation_grad=False):
    """(dx, dkernel, dbias) of y = act(x @ kernel + bias) from g = dL/dy.

    ``out`` = (dx, dkernel, dbias) buffers (entries may be None); ``g`` is overwritten with
    dL/d(pre-activation) only when it is not a buffer the caller still needs: the layers pass
    their own gradient workspace. ``pre_activation_grad``: g already is dL/d(x @ kernel + bias)
    (a softmax fused into the loss). ``x``: the layer input when the forward gathered rows.
    """
    x_saved, kernel, y, activation, has_bias = saved
    x = x_saved if x is None else x
    g = dense_pre_activation_grad(g, activation, y, pre_activation_grad)
    dkernel = ops.matmul(x.T, g, out=_out(out, 1)) if needs[1] else None
    dbias = None
    if has_bias and needs[2]:
        dbias = ops.sum_to_shape(g, (kernel.shape[1],), out=_out(out, 2))
    dx = ops.matmul(g, kernel.T, out=_out(out, 0)) if needs[0] else None
    return dx, dkernel, dbias


def dense_pre_activation_grad(g, activation, y, pre_activation_grad=False):
    """dL/d(x @ kernel + bias) from g = dL/dy of y = act(x @ kernel + bias) (in g's memory
    when g is writeable and contiguous); ``pre_activation_grad``: g already is that."""
    if not pre_activation_grad and activation not in (None, "linear"):
        g = activation_vjp(activation, g, y if activation != "softmax" else (y, -1),
                           out=g if g.flags.writeable and g.flags.c_contiguous else None)
    return _dense_g(g)


def _dense_rule_forward(x, kernel, bias=None, activation=None):
    return dense_forward(x, kernel, bias, activation)


def _dense_rule_vjp(g, saved, needs, out=None):
    # the tape's g belongs to the tape: never overwrite it
    g = np.array(g, dtype=saved[2].dtype, copy=True) if saved[3] not in (None, "linear") else g
    grads = dense_vjp(g, saved, tuple(needs) + (False,) * (3 - len(needs)), out)
    return grads[:len(needs)]


rule("dense", _dense_rule_forward, _dense_rule_vjp)


# ------------------------------------------------------------------------- reductions
def _axes(op, ndim, axis):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    norm = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {axis!r} is out of range for a tensor of rank {ndim}")
        norm.append(int(a) % ndim if ndim else 0)
    if len(set(norm)) != len(norm):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(norm))


def _reduce_sum(op, x, axis, keepdims):
    x = np.asarray(x)
    axes = _axes(op, x.ndim, axis)
    kept = tuple(1 if d in axes else s for d, s in enumerate(x.shape))
    total = ops.sum_to_shape(x, kept) if axes else ops.sum_to_shape(x, x.shape)
    shape = kept if keepdims else tuple(s for d, s in enumerate(x.shape) if d not in axes)
    return total.reshape(shape), (x.shape, kept, axes)


def _reduce_sum_forward(x, axis=None, keepdims=False):
    total, saved = _reduce_sum("reduce_sum", x, axis, keepdims)
    return total, saved + (1,)


def _reduce_mean_forward(x, axis=None, keepdims=False):
    total, saved = _reduce_sum("reduce_mean", x, axis, keepdims)
    count = 1
    for d in saved[2]:
        count *= saved[0][d]
    # the mean of no elements is NaN, as in NumPy and TensorFlow
    return ops.divide(total, count) if count else total * np.nan, saved + (count,)


def _reduce_vjp(g, saved, needs, out=None):
    """dx = g / count broadcast back over the reduced axes (a zero-stride view, no copy)."""
    x_shape, kept, axes, count = saved
    g = np.asarray(g)
    if count != 1:
        g = ops.divide(g, count)
    dx = np.broadcast_to(g.reshape(kept), x_shape)
    return (_into(dx, _out(out, 0)),)


rule("reduce_sum", _reduce_sum_forward, _reduce_vjp)
rule("reduce_mean", _reduce_mean_forward, _reduce_vjp)


# ---------------------------------------------------------------------------- layout
def _reshape_forward(x, shape):
    x = np.asarray(x)
    return np.reshape(x, shape), x.shape


def _reshape_vjp(g, x_shape, needs, out=None):
    return (_into(np.reshape(g, x_shape), _out(out, 0)),)


def _transpose_forward(x, perm=None):
    x = np.asarray(x)
    perm = tuple(range(x.ndim))[::-1] if perm is None else tuple(perm)
    return np.transpose(x, perm), perm


def _transpose_vjp(g, perm, needs, out=None):
    return (_into(np.transpose(g, np.argsort(perm)), _out(out, 0)),)


def _getitem_forward(x, key):
    x = np.asarray(x)
    return x[key], (x.shape, x.dtype, key)


def _getitem_vjp(g, saved, needs, out=None):
    """dx: zeros with g scattered (and summed, for repeated indices) back at ``key``."""
    shape, dtype, key = saved
    dx = np.zeros(shape, dtype) if out is None else out
    if out is not None:
        dx.fill(0)
    np.add.at(dx, key, g)
    return (dx,)


rule("reshape", _reshape_forward, _reshape_vjp, returns_view=True)
rule("transpose", _transpose_forward, _transpose_vjp, returns_view=True)
rule("getitem", _getitem_forward, _getitem_vjp, returns_view=True)


# ------------------------------------------------------------------------------ losses
def _uniform_value(g):
    """The common value of g when it is one number broadcast (a mean's gradient), else None."""
    if g.ndim == 1 and g.strides == (0,) and g.size:
        return g[0]
    return None


def _sparse_ce_forward(labels, scores, from_logits=False):
    """Per-sample cross-entropy of integer labels and scores (samples, classes).

    from_logits: scores are logits (a softmax's input: the frontend hands the logits of a
    softmax output here), and the fused softmax + cross-entropy kernel computes the losses
    with a stable log-sum-exp, and their gradient, in one pass. Else scores are
    probabilities: -log(clip(p[label], 1e-7, 1 - 1e-7)).
    """
    scores = np.ascontiguousarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"sparse_categorical_crossentropy: y_pred must be 2-D (samples, "
                         f"classes), got shape {scores.shape}")
    n = scores.shape[0]
    grad = np.empty_like(scores)
    row_loss = np.empty(n, np.float64)
    if from_logits:
        fused.sparse_softmax_cross_entropy(scores, labels, out=grad, row_loss=row_loss)
    else:
        fused.sparse_cross_entropy(scores, labels, out=grad, row_loss=row_loss)
    return row_loss.astype(scores.dtype), (grad, n)


def _sparse_ce_vjp(g, saved, needs, out=None):
    """d(scores) = g_i * dloss_i/d(scores_i); the forward kept the mean's gradient
    (dloss_i / n), so a mean over the batch (g = 1/n everywhere) takes it as it is — the same
    bits as the Keras-style training step."""
    grad_mean, n = saved
    g = np.asarray(g, grad_mean.dtype)
    c = _uniform_value(g)
    if c is not None and c == grad_mean.dtype.type(1) / grad_mean.dtype.type(n):
        return None, _into(grad_mean, _out(out, 1))
    scale = ops.multiply(g, n).reshape(-1, 1)
    return None, ops.multiply(grad_mean, scale, out=_out(out, 1))


rule("sparse_categorical_crossentropy", _sparse_ce_forward, _sparse_ce_vjp)
