"""The TensorFlow-style functions: each applies one gradient rule and returns a ``Tensor``.

``pyblasnn.matmul``, ``add``, ``subtract``, ``multiply``, ``divide`` and ``maximum`` dispatch:
plain arrays in, a NumPy array out (``pyblasnn.ops``, with ``out=`` and ``n_threads=``);
a Tensor or Variable among the operands, a Tensor out, recorded by a GradientTape.
"""
import numpy as np

from .. import _validation as _v
from .. import ops
from .rules import RULES
from .tape import apply
from .tensor import Tensor, as_value, to_array

__all__ = [
    "constant", "convert_to_tensor", "zeros", "ones", "zeros_like", "ones_like",
    "add", "subtract", "multiply", "divide", "maximum", "negative", "square", "pow",
    "matmul", "dense", "reduce_sum", "reduce_mean", "reshape", "transpose", "cast",
    "argmax", "relu", "softmax", "sigmoid", "tanh", "sparse_categorical_crossentropy",
    "getitem",
]

_R = RULES


def _operand(op, x):
    """x checked for ``op``: Tensors as they are, Python and NumPy numbers stay weak scalars
    (they take the tensor's dtype), arrays and lists become checked arrays (lists float32)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float)) or (np.isscalar(x) and not isinstance(x, (str, bytes))):
        return x
    return to_array(op, x)


# ----------------------------------------------------------------------------- creation
def constant(value, dtype=None, shape=None, name=None):
    """A Tensor of ``value`` (copied); Python floats -> float32, ints -> int32."""
    arr = np.array(to_array("constant", value, dtype), copy=True)
    if shape is not None:
        shape = tuple(shape) if not isinstance(shape, int) else (shape,)
        arr = np.broadcast_to(arr, shape).copy() if arr.size == 1 else arr.reshape(shape)
    return Tensor._wrap(arr)


def convert_to_tensor(value, dtype=None):
    """``value`` as a Tensor (a Tensor of the requested dtype is returned as it is)."""
    if isinstance(value, Tensor) and (dtype is None or value.dtype == np.dtype(dtype)):
        return value
    return Tensor._wrap(to_array("convert_to_tensor", value, dtype))


def _shape(op, shape):
    shape = as_value(shape)
    if isinstance(shape, np.ndarray):
        shape = shape.tolist()
    try:
        shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: shape must be an int or a sequence of ints, got {shape!r}") \
            from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{op}: shape {shape} has a negative size")
    return shape


def zeros(shape, dtype="float32"):
    """A Tensor of zeros (float32 by default)."""
    return Tensor._wrap(np.zeros(_shape("zeros", shape), dtype))


def ones(shape, dtype="float32"):
    """A Tensor of ones (float32 by default)."""
    return Tensor._wrap(np.ones(_shape("ones", shape), dtype))


def _tensor_dtype(op, dtype):
    """``dtype`` as a NumPy dtype a tensor can hold (float, int, uint or bool)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "fiub" or dtype.itemsize > 8:
        raise TypeError(f"{op}: unsupported dtype {dtype}; tensors hold float32/float64 "
                        f"(or integer/bool data that is not differentiated)")
    return dtype


def zeros_like(x, dtype=None):
    """Zeros of x's shape and (unless ``dtype`` is given) its dtype."""
    arr = to_array("zeros_like", x)
    return Tensor._wrap(np.zeros(arr.shape, arr.dtype if dtype is None
                                 else _tensor_dtype("zeros_like", dtype)))


def ones_like(x, dtype=None):
    """Ones of x's shape and (unless ``dtype`` is given) its dtype."""
    arr = to_array("ones_like", x)
    return Tensor._wrap(np.ones(arr.shape, arr.dtype if dtype is None
                                else _tensor_dtype("ones_like", dtype)))


# -------------------------------------------------------------------------- arithmetic
def _binary(name, plain):
    rule = _R[name]

    def fn(x, y, out=None, n_threads=None):
        if isinstance(x, Tensor) or isinstance(y, Tensor):
            if out is not None or n_threads is not None:
                raise TypeError(f"{name}: out= and n_threads= are for NumPy arrays; on "
                                f"tensors {name} returns a new Tensor")
            return apply(rule, (_operand(name, x), _operand(name, y)))
        return plain(x, y, out=out, n_threads=n_threads)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"{name}(x, y) with NumPy broadcasting. Arrays in: ``pyblasnn.ops.{name}`` "
                  f"(NumPy array out, ``out=``, ``n_threads=``); a Tensor or Variable in: a "
                  f"Tensor out, recorded by GradientTape.")
    return fn


add = _binary("add", ops.add)
subtract = _binary("subtract", ops.subtract)
multiply = _binary("multiply", ops.multiply)
divide = _binary("divide", ops.divide)
maximum = _binary("maximum", ops.maximum)


def negative(x):
    """-x."""
    return apply(_R["negative"], (_operand("negative", x),))


def square(x):
    """x * x."""
    return apply(_R["square"], (_operand("square", x),))


def pow(x, y):  # noqa: A001 - TensorFlow's name
    """x ** y for a Python-number exponent y."""
    y = as_value(y)
    if isinstance(y, np.ndarray) and y.ndim == 0:
        y = y.item()
    if not isinstance(y, (int, float)) or isinstance(y, bool):
        raise TypeError(f"pow: the exponent must be a Python number, got {type(y).__name__}")
    if y == 2:
        return square(x)
    return apply(_R["power"], (_operand("pow", x),), {"exponent": y})


def matmul(a, b, out=None, n_threads=None, transpose_a=False, transpose_b=False):
    """a @ b (numpy.matmul semantics). Arrays in: ``pyblasnn.ops.matmul`` (NumPy array out);
    a Tensor or Variable in: a Tensor out, recorded. ``transpose_a/b`` swap the last two axes
    of an operand first (read through strides, never copied)."""
    if transpose_a:
        a = transpose(a, _swap_last(a)) if isinstance(a, Tensor) else np.swapaxes(a, -1, -2)
    if transpose_b:
        b = transpose(b, _swap_last(b)) if isinstance(b, Tensor) else np.swapaxes(b, -1, -2)
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if out is not None or n_threads is not None:
            raise TypeError("matmul: out= and n_threads= are for NumPy arrays; on tensors "
                            "matmul returns a new Tensor")
        return apply(_R["matmul"], (_operand("matmul", a), _operand("matmul", b)))
    return ops.matmul(a, b, out=out, n_threads=n_threads)


def _swap_last(t):
    perm = list(range(t.ndim))
    perm[-2:] = perm[-1], perm[-2]
    return perm


def dense(x, kernel, bias=None, activation=None):
    """act(x @ kernel + bias) as one recorded op: relu fused into the GEMM epilogue."""
    inputs = ((_operand("dense", x), _operand("dense", kernel))
              + ((_operand("dense", bias),) if bias is not None else ()))
    return apply(_R["dense"], inputs, {"activation": activation})


# -------------------------------------------------------------------------- reductions
def reduce_sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (int, tuple or None for all axes)."""
    return apply(_R["reduce_sum"], (_operand("reduce_sum", x),), {"axis": axis, "keepdims": keepdims})


def reduce_mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (int, tuple or None for all axes)."""
    return apply(_R["reduce_mean"], (_operand("reduce_mean", x),), {"axis": axis, "keepdims": keepdims})


# ------------------------------------------------------------------------------ layout
def reshape(x, shape):
    """x with a new shape (one entry may be -1)."""
    try:
        return apply(_R["reshape"], (_operand("reshape", x),), {"shape": _shape_with_minus(shape)})
    except ValueError as exc:
        raise ValueError(f"reshape: {exc}") from None


def _shape_with_minus(shape):
    shape = as_value(shape)
    return (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in np.ravel(shape))


def transpose(x, perm=None):
    """Axes permuted by ``perm`` (default: reversed)."""
    return apply(_R["transpose"], (_operand("transpose", x),), {"perm": perm})


def getitem(x, key):
    """x[key] (basic and advanced NumPy indexing); the gradient scatters back."""
    if isinstance(key, tuple):
        key = tuple(as_value(k) for k in key)
    else:
        key = as_value(key)
    return apply(_R["getitem"], (x,), {"key": key})


def cast(x, dtype):
    """x converted to ``dtype`` (not differentiated)."""
    return Tensor._wrap(to_array("cast", x).astype(_tensor_dtype("cast", dtype)))


def argmax(x, axis=0):
    """Index of the largest value along ``axis`` (int64 tensor, as TensorFlow)."""
    return Tensor._wrap(np.argmax(to_array("argmax", x), axis=axis).astype(np.int64))


# ------------------------------------------------------------------------- activations
def relu(x):
    """max(x, 0) element-wise."""
    return apply(_R["relu"], (_operand("relu", x),))


def sigmoid(x):
    """1 / (1 + exp(-x)) element-wise."""
    return apply(_R["sigmoid"], (_operand("sigmoid", x),))


def tanh(x):
    """tanh(x) element-wise."""
    return apply(_R["tanh"], (_operand("tanh", x),))


def softmax(logits, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``. The result remembers its logits, so a
    cross-entropy taken of it runs the fused, stable softmax + cross-entropy kernel."""
    logits = _operand("softmax", logits)
    out = apply(_R["softmax"], (logits,), {"axis": axis})
    if axis in (-1, 1) and np.ndim(as_value(logits)) == 2:
        out._logits = logits
    return out


# ------------------------------------------------------------------------------ losses
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    """Per-sample cross-entropy of integer labels ``y_true`` (n,) and class scores ``y_pred``
    (n, classes): a Tensor of n losses. ``from_logits=False``: y_pred holds probabilities
    (when it is the output of ``softmax``, the loss is computed from softmax's logits in one
    stable kernel pass); ``from_logits=True``: y_pred holds logits."""
    op = "sparse_categorical_crossentropy"
    if axis not in (-1, 1):
        raise ValueError(f"{op}: only the last axis holds classes (axis=-1), got {axis!r}")
    scores = y_pred
    if not from_logits and isinstance(y_pred, Tensor) and y_pred._logits is not None:
        scores, from_logits = y_pred._logits, True
    scores = _operand(op, scores)
    values = as_value(scores)
    if np.ndim(values) != 2:
        raise ValueError(f"{op}: y_pred must be 2-D (samples, classes), got shape "
                         f"{np.shape(values)}")
    if np.asarray(values).dtype.kind != "f":
        raise TypeError(f"{op}: y_pred must hold floats, got dtype {np.asarray(values).dtype}")
    n, classes = np.shape(values)
    labels = _v.as_sparse_labels(op, as_value(y_true), n, classes)
    return apply(_R["sparse_categorical_crossentropy"], (labels, scores),
                 {"from_logits": bool(from_logits)})
