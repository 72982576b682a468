"""Public functional API: validate, allocate, call a compiled kernel.

Every op accepts array-likes, computes float32 inputs in float32 and float64 inputs in
float64 (mixed inputs follow NumPy's promotion; integers and bools become float64), and
takes ``out=`` (a C-contiguous ndarray of the result's shape and dtype) and
``n_threads=None`` (the current ``pyblasnn.get_num_threads()``; -1 means all processors).

Forward and backward ops come in pairs named ``f`` / ``f_backward``. A backward takes the
upstream gradient first and returns one gradient per input, each already reduced to that
input's shape. add_backward, subtract_backward, multiply_backward, divide_backward and
matmul_backward also take ``out=(dx_out, dy_out)``: per-input buffers (or None) that
receive the gradients, so a training step can run without allocating.
"""
import numpy as np

from . import _validation as V
from ._kernels import elementwise as _ew
from ._kernels import linalg as _la

__all__ = [
    "relu", "relu_backward", "add", "add_backward", "subtract", "subtract_backward",
    "multiply", "multiply_backward", "divide", "divide_backward", "maximum",
    "maximum_backward", "sum_to_shape", "dot", "dot_backward", "matmul", "matmul_backward",
    "dense", "take_rows",
]

_OPS = _ew.BINARY_OPS  # the kernel's codes of its binary operations, by name
_OP_MULTIPLY, _OP_DIVIDE = _OPS["multiply"], _OPS["divide"]


# ------------------------------------------------------------------------------ helpers
def _operand(op, name, x, dtype):
    """x as an aligned ndarray of ``dtype`` whose strides are whole elements."""
    arr = V.as_float(op, name, x, dtype)
    item = arr.itemsize
    if not arr.flags.aligned or any(s % item for s in arr.strides):
        arr = np.ascontiguousarray(arr)
    return arr


def _contiguous_operand(op, name, x, dtype):
    arr = V.as_float(op, name, x, dtype)
    return arr if arr.flags.c_contiguous and arr.flags.aligned else np.ascontiguousarray(arr)


def _unary_dtype(op, x):
    arr = V.as_array(op, "x", x)
    return arr, V.result_dtype(op, arr)


def _output(op, out, shape, dtype, *inputs, elementwise=True):
    """(buffer the kernel writes, array returned to the caller).

    A fresh array when out is None; out itself when it is safe to write; a temporary that
    is copied into out afterwards when out overlaps an input in a way that would corrupt
    the result. Writing over an input of the same layout is safe only for element-wise
    kernels (each output element reads just its own input element); GEMM and gathers
    read other elements after writing, so for them any overlap takes the temporary.
    """
    if out is None:
        buf = np.empty(shape, dtype)
        return buf, buf
    V.check_out(op, out, shape, dtype)
    for arr in inputs:
        if np.may_share_memory(out, arr) and not (elementwise and V.same_layout(out, arr)):
            return np.empty(shape, dtype), out
    return out, out


def _prod(shape):
    """Number of elements of shape, as a Python int (1 for ())."""
    n = 1
    for s in shape:
        n *= s
    return n


def _finish(buf, out):
    if buf is not out:
        np.copyto(out, buf)
    return out


def _element_strides(arr, shape):
    """Strides (in elements) of arr broadcast to shape: 0 on broadcast axes."""
    pad = len(shape) - arr.ndim
    item = arr.itemsize
    strides = [0] * pad
    for size, dim, stride in zip(shape[pad:], arr.shape, arr.strides):
        strides.append(0 if dim == 1 and size != 1 else stride // item)
    return strides


def _coalesce(shape, *stride_lists):
    """Merge adjacent axes that every operand (and the C-contiguous output) walks as one.

    Returns (shape, strides...) with at least one axis; size-1 axes are dropped.
    """
    dims = [d for d in range(len(shape)) if shape[d] != 1]
    if not dims:
        return [1], *([0] for _ in stride_lists)
    new_shape = [shape[dims[0]]]
    new_strides = [[s[dims[0]]] for s in stride_lists]
    for d in dims[1:]:
        size = shape[d]
        if all(ns[-1] == s[d] * size for ns, s in zip(new_strides, stride_lists)):
            new_shape[-1] *= size
            for ns, s in zip(new_strides, stride_lists):
                ns[-1] = s[d]
        else:
            new_shape.append(size)
            for ns, s in zip(new_strides, stride_lists):
                ns.append(s[d])
    return new_shape, *new_strides


# ------------------------------------------------------------------------ relu, add, maximum
# relu, relu_backward and the binary ops are compiled front doors (kernels/elementwise.pyx):
# plain float arrays take the lean path in C; every other call lands in the validated
# implementations below, which the front doors receive through register_validated.
relu, relu_backward = _ew.relu, _ew.relu_backward
add, subtract, multiply, divide, maximum = (_ew.add, _ew.subtract, _ew.multiply, _ew.divide,
                                            _ew.maximum)


def _relu_validated(x, out, n_threads):
    nt = V.n_threads("relu", n_threads)
    x, dtype = _unary_dtype("relu", x)
    x = _contiguous_operand("relu", "x", x, dtype)
    buf, res = _output("relu", out, x.shape, dtype, x)
    if x.size:
        _ew.relu_into(x, buf, nt)
    return _finish(buf, res)


def _relu_backward_validated(dy, x, out, n_threads):
    op = "relu_backward"
    nt = V.n_threads(op, n_threads)
    dy_arr = V.as_array(op, "dy", dy)
    x_arr = V.as_array(op, "x", x)
    if dy_arr.shape != x_arr.shape:
        raise ValueError(f"{op}: dy.shape {dy_arr.shape} != x.shape {x_arr.shape}")
    dtype = V.result_dtype(op, dy_arr, x_arr)
    dy_arr = _contiguous_operand(op, "dy", dy_arr, dtype)
    x_arr = _contiguous_operand(op, "x", x_arr, dtype)
    buf, res = _output(op, out, x_arr.shape, dtype, dy_arr, x_arr)
    if x_arr.size:
        _ew.relu_backward_into(dy_arr, x_arr, buf, nt)
    return _finish(buf, res)


# ------------------------------------------------- add / subtract / multiply / divide / maximum
def _weak(value, arr):
    """What dtype promotion sees: a Python scalar stays "weak" (NumPy's NEP 50), anything
    else counts as its array."""
    return value if type(value) in (int, float, bool) else arr


def _binary_into(code, x, y, shape, buf, nt):
    """buf := x (op) y for validated operands of buf's dtype, broadcast to shape (buf
    C-contiguous, and safe to write: see _output)."""
    if buf.size:
        layout = _coalesce(shape, _element_strides(x, shape), _element_strides(y, shape))
        _ew.binary(code, layout[0], layout[1], layout[2], x, y, buf, nt)
    return buf


def _binary(op, x, y, out, n_threads):
    """The validated path of the binary ops (after their lean path declined)."""
    nt = V.n_threads(op, n_threads)
    x_arr = V.as_array(op, "x", x)
    y_arr = V.as_array(op, "y", y)
    dtype = V.result_dtype(op, _weak(x, x_arr), _weak(y, y_arr))
    x_arr = _operand(op, "x", x_arr, dtype)
    y_arr = _operand(op, "y", y_arr, dtype)
    shape = x_arr.shape if x_arr.shape == y_arr.shape else V.broadcast_shape(op, x_arr.shape, y_arr.shape)
    buf, res = _output(op, out, shape, dtype, x_arr, y_arr)
    return _finish(_binary_into(_OPS[op], x_arr, y_arr, shape, buf, nt), res)


_ew.register_validated(
    relu=_relu_validated, relu_backward=_relu_backward_validated,
    **{name: (lambda x, y, out, n_threads, name=name: _binary(name, x, y, out, n_threads))
       for name in _OPS})


# ------------------------------------------------------------- out= of the backward ops
# A backward takes out=None or a tuple (dx_out, dy_out): each entry None (a new array, or
# the gradient passed through) or a writeable C-contiguous array of that input's shape and
# the computed dtype, which receives the gradient and is returned.
def _grad_outs(op, out, shapes, dtype, names):
    """The validated entries of a backward's out (a pair, each None or a checked array)."""
    if out is None:
        return None, None
    spelled = f"({names[0]}_out, {names[1]}_out)"
    if type(out) is not tuple:
        raise TypeError(f"{op}: out must be None or a tuple {spelled}, got {V._describe(out)}")
    if len(out) != 2:
        raise ValueError(f"{op}: out must be None or a tuple {spelled}, got a tuple of "
                         f"{len(out)} entries")
    for entry, shape, name in zip(out, shapes, names):
        if entry is not None:
            V.check_out(op, entry, shape, dtype, name=f"{name}_out")
    if out[0] is not None and out[1] is not None and np.may_share_memory(out[0], out[1]):
        raise ValueError(f"{op}: {names[0]}_out and {names[1]}_out overlap in memory (each "
                         f"gradient needs its own buffer)")
    return out


def _staged(target, *later_reads):
    """Where the first of two gradients goes: target, or None (a new array, copied into
    target by _land at the end) when target overlaps an input the second one still reads."""
    if target is not None and any(np.may_share_memory(target, a) for a in later_reads):
        return None
    return target


def _land(grad, target):
    """The gradient in target (when one was given), else as computed."""
    if target is None or grad is target:
        return grad
    np.copyto(target, grad)
    return target


def _reduce_into(full, shape, target, nt):
    """full summed to shape, into target when given (else full itself when no axis is summed)."""
    if target is None:
        return _reduce_to(full, shape, nt)
    return sum_to_shape(full, shape, out=target, n_threads=nt)


def _apply(op, code, a, b, shape, dtype, target, nt):
    """a (op) b in the broadcast shape (that of a), into target when given (shaped so)."""
    z = _ew.try_binary(code, a, b, target, nt)
    if z is not None:
        return z
    if not isinstance(b, np.ndarray):
        b = np.asarray(b, dtype)
    buf, res = _output(op, target, shape, dtype, a, b)
    return _finish(_binary_into(code, a, b, shape, buf, nt), res)


def _gradient(op, code, dz, v, shape, grad_shape, dtype, target, nt):
    """dz (op) v, summed to grad_shape; computed straight into target when nothing is summed."""
    if tuple(grad_shape) == shape:
        return _apply(op, code, dz, v, shape, dtype, target, nt)
    full = _apply(op, code, dz, v, shape, dtype, None, nt)
    return _reduce_into(full, grad_shape, target, nt)


def _negate(a, nt):
    """a := -a in place, exactly (a times -1: signed zeros and infinities flip)."""
    if _ew.try_binary(_OP_MULTIPLY, a, -1.0, a, nt) is None:
        _binary_into(_OP_MULTIPLY, a, np.asarray(-1.0, a.dtype), a.shape, a,
                     V.n_threads("negate", nt))
    return a


# ----------------------------------------------------------------- add / subtract backward
def _sum_backward(op, negate_y, dz, x_shape, y_shape, out, n_threads):
    """(dx, dy) for z = x + y (or x - y: negate_y), dz summed over each operand's broadcast
    axes. An operand that was not broadcast gets dz itself unless out asks otherwise."""
    if (type(dz) is np.ndarray and type(x_shape) is tuple and x_shape == dz.shape
            and all(type(s) is int for s in x_shape)
            and (out is None or (type(out) is tuple and len(out) == 2 and out[0] is None))):
        # x + bias row: dz passes through, dy is its column sums (into out[1] when given)
        dy = _ew.try_column_sum(dz, y_shape, None if out is None else out[1], n_threads)
        if dy is not None:
            return dz, (_negate(dy, n_threads) if negate_y else dy)
    x_shape = V.shape_tuple(op, "x_shape", x_shape)
    y_shape = V.shape_tuple(op, "y_shape", y_shape)
    dz_arr = V.as_array(op, "dz", dz)
    z_shape = V.broadcast_shape(op, x_shape, y_shape)
    if dz_arr.shape != z_shape:
        raise ValueError(f"{op}: dz.shape {dz_arr.shape} != broadcast shape {z_shape} "
                         f"of x_shape {x_shape} and y_shape {y_shape}")
    nt = V.n_threads(op, n_threads)
    dtype = V.result_dtype(op, dz_arr)
    dx_out, dy_out = _grad_outs(op, out, (x_shape, y_shape), dtype, ("dx", "dy"))
    dz_arr = V.as_float(op, "dz", dz_arr, dtype)
    dx_target = _staged(dx_out, dz_arr)
    dx = _reduce_into(dz_arr, x_shape, dx_target, nt)
    if dx is dz_arr and dy_out is not None and np.may_share_memory(dy_out, dz_arr):
        dx = dz_arr.copy()  # dz itself would change when dy is written
    if not negate_y:
        dy = _reduce_into(dz_arr, y_shape, dy_out, nt)
        if dy is dz_arr and dx_out is not None and dx_target is None:
            dy = dz_arr.copy()  # dx is copied into dx_out, which overlaps dz, below
    elif y_shape == z_shape:
        dy = _apply(op, _OP_MULTIPLY, dz_arr, -1.0, z_shape, dtype, dy_out, nt)
    else:
        dy = _negate(_reduce_into(dz_arr, y_shape, dy_out, nt), nt)
    return _land(dx, dx_out), dy


def add_backward(dz, x_shape, y_shape, out=None, n_threads=None):
    """(dx, dy) for z = x + y: dz summed over the axes each operand was broadcast along.

    An operand that was not broadcast gets dz itself (as an array of the computed dtype,
    not a copy), the way autograd engines pass an addition's gradient through.
    out: None or a tuple (dx_out, dy_out), each None or a C-contiguous array of that
    operand's shape that receives its gradient (then dz is copied, not passed through).
    """
    return _sum_backward("add_backward", False, dz, x_shape, y_shape, out, n_threads)


def subtract_backward(dz, x_shape, y_shape, out=None, n_threads=None):
    """(dx, dy) for z = x - y: dx = dz and dy = -dz, each summed over its broadcast axes.

    dx passes dz itself through when x was not broadcast (no copy), as add_backward does;
    dy is always a new array (or dy_out). out: as add_backward.
    """
    return _sum_backward("subtract_backward", True, dz, x_shape, y_shape, out, n_threads)


# --------------------------------------------------------------- multiply / divide backward
def _product_operands(op, dz, x, y, out):
    """dz, x, y as arrays of the computed dtype, the broadcast shape and the out entries."""
    x_arr = V.as_array(op, "x", x)
    y_arr = V.as_array(op, "y", y)
    dz_arr = V.as_array(op, "dz", dz)
    dtype = V.result_dtype(op, _weak(x, x_arr), _weak(y, y_arr), dz_arr)
    x_arr = _operand(op, "x", x_arr, dtype)
    y_arr = _operand(op, "y", y_arr, dtype)
    shape = V.broadcast_shape(op, x_arr.shape, y_arr.shape)
    if dz_arr.shape != shape:
        raise ValueError(f"{op}: dz.shape {dz_arr.shape} != broadcast shape {shape} of "
                         f"x {x_arr.shape} and y {y_arr.shape}")
    dz_arr = _operand(op, "dz", dz_arr, dtype)
    outs = _grad_outs(op, out, (x_arr.shape, y_arr.shape), dtype, ("dx", "dy"))
    return dz_arr, x_arr, y_arr, shape, dtype, outs


def multiply_backward(dz, x, y, out=None, n_threads=None):
    """(dx, dy) for z = x * y: dx = dz * y and dy = dz * x, each summed to its operand's shape.

    Python scalars are weak as in multiply (a float32 dz with x a float keeps float32); a
    scalar operand's gradient is 0-d. out: None or a tuple (dx_out, dy_out) as in
    add_backward. Both gradients are always computed (nothing is passed through).
    """
    op = "multiply_backward"
    nt = V.n_threads(op, n_threads)
    dz_arr, x_arr, y_arr, shape, dtype, (dx_out, dy_out) = _product_operands(op, dz, x, y, out)
    dx = _gradient(op, _OP_MULTIPLY, dz_arr, y_arr, shape, x_arr.shape, dtype,
                   _staged(dx_out, dz_arr, x_arr), nt)
    dy = _gradient(op, _OP_MULTIPLY, dz_arr, x_arr, shape, y_arr.shape, dtype, dy_out, nt)
    return _land(dx, dx_out), dy


def divide_backward(dz, x, y, out=None, n_threads=None):
    """(dx, dy) for z = x / y: dx = dz / y and dy = -(dz * x) / (y * y), each summed to its
    operand's shape.

    dy is computed as (dz * x) / -(y * y), which IEEE arithmetic makes equal bit for bit.
    Python scalars and out as in multiply_backward.
    """
    op = "divide_backward"
    nt = V.n_threads(op, n_threads)
    dz_arr, x_arr, y_arr, shape, dtype, (dx_out, dy_out) = _product_operands(op, dz, x, y, out)
    dx = _gradient(op, _OP_DIVIDE, dz_arr, y_arr, shape, x_arr.shape, dtype,
                   _staged(dx_out, dz_arr, x_arr, y_arr), nt)
    neg_yy = _negate(_apply(op, _OP_MULTIPLY, y_arr, y_arr, y_arr.shape, dtype, None, nt), nt)
    no_sum = y_arr.shape == shape
    t = _apply(op, _OP_MULTIPLY, dz_arr, x_arr, shape, dtype, dy_out if no_sum else None, nt)
    t = _apply(op, _OP_DIVIDE, t, neg_yy, shape, dtype, t, nt)
    dy = t if no_sum else _reduce_into(t, y_arr.shape, dy_out, nt)
    return _land(dx, dx_out), dy


def maximum_backward(dz, x, y, out=None, n_threads=None):
    """(dx, dy) for z = maximum(x, y): dz goes to the operand that was picked.

    maximum returns x where x > y or x is NaN and y otherwise (ties included, as NumPy
    does), and the gradient follows that choice.
    Each gradient is summed back to its operand's shape. out: None or a tuple
    (dx_out, dy_out) as in add_backward; an operand that was not broadcast has its
    gradient written straight into its out entry.
    """
    op = "maximum_backward"
    x_arr = V.as_array(op, "x", x)
    y_arr = V.as_array(op, "y", y)
    dz_arr = V.as_array(op, "dz", dz)
    dtype = V.result_dtype(op, x_arr, y_arr, dz_arr)
    x_arr = _operand(op, "x", x_arr, dtype)
    y_arr = _operand(op, "y", y_arr, dtype)
    shape = V.broadcast_shape(op, x_arr.shape, y_arr.shape)
    if dz_arr.shape != shape:
        raise ValueError(f"{op}: dz.shape {dz_arr.shape} != broadcast shape {shape} of "
                         f"x {x_arr.shape} and y {y_arr.shape}")
    dz_arr = _contiguous_operand(op, "dz", dz_arr, dtype)
    nt = V.n_threads(op, n_threads)
    dx_out, dy_out = _grad_outs(op, out, (x_arr.shape, y_arr.shape), dtype, ("dx", "dy"))

    def full(target, grad_shape):
        # the mask kernel fills both gradients while it reads x, y and dz: an out entry is
        # its destination only when nothing is summed and it overlaps none of them
        if grad_shape == shape and _staged(target, x_arr, y_arr, dz_arr) is not None:
            return target
        return np.empty(shape, dtype)
    dx_full = full(dx_out, x_arr.shape)
    dy_full = full(dy_out, y_arr.shape)
    if dz_arr.size:
        layout = _coalesce(shape, _element_strides(x_arr, shape), _element_strides(y_arr, shape))
        _ew.maximum_mask(layout[0], layout[1], layout[2], x_arr, y_arr, dz_arr,
                         dx_full, dy_full, nt)
    return (_reduce_into(dx_full, x_arr.shape, _unless(dx_out, dx_full), nt),
            _reduce_into(dy_full, y_arr.shape, _unless(dy_out, dy_full), nt))


def _unless(target, full):
    """target, or None when the gradient was already computed in it."""
    return None if target is full else target


def _reduce_to(full, shape, nt):
    """A gradient computed in the broadcast shape, summed to ``shape`` (no copy when equal)."""
    return full if full.shape == tuple(shape) else sum_to_shape(full, shape, n_threads=nt)


def sum_to_shape(dz, shape, out=None, n_threads=None):
    """dz summed over broadcast axes so it has ``shape`` (the reverse of broadcasting).

    (n, d) -> (d,) is the bias gradient; (5, 3, 4) -> (3, 1) sums axes 0 and 2.
    ``shape`` must broadcast to dz.shape. Summation order is fixed (deterministic).
    """
    op = "sum_to_shape"
    res = _ew.try_column_sum(dz, shape, out, n_threads)      # (n, d) -> (d,): a bias gradient
    if res is not None:
        return res
    shape = V.shape_tuple(op, "shape", shape)
    dz_arr = V.as_array(op, "dz", dz)
    dtype = V.result_dtype(op, dz_arr)
    pad = dz_arr.ndim - len(shape)
    if pad < 0 or any(s != 1 and s != d for s, d in zip(shape, dz_arr.shape[pad:])):
        raise ValueError(f"{op}: shape {shape} does not broadcast to dz.shape {dz_arr.shape}")
    dz_arr = _contiguous_operand(op, "dz", dz_arr, dtype)
    nt = V.n_threads(op, n_threads)
    buf, res = _output(op, out, shape, dtype, dz_arr)
    if dz_arr.shape == shape:
        np.copyto(buf, dz_arr)
        return _finish(buf, res)
    buf.fill(0)
    if dz_arr.size == 0:
        return _finish(buf, res)
    full = (1,) * pad + shape
    out_strides = _element_strides(buf.reshape(full), dz_arr.shape)
    red_shape, red_strides, dz_strides = _coalesce(
        dz_arr.shape, out_strides, _element_strides(dz_arr, dz_arr.shape))
    if len(red_shape) == 2 and red_strides == [0, 1]:
        _ew.column_sum(dz_arr.reshape(red_shape), buf.reshape(-1), nt)
    else:
        _ew.scatter_add(red_shape, red_strides, dz_arr, buf)
    return _finish(buf, res)


# ------------------------------------------------------------------------ matmul family
def _float_pair(op, a, b, names=("a", "b")):
    a_arr = V.as_array(op, names[0], a)
    b_arr = V.as_array(op, names[1], b)
    dtype = V.result_dtype(op, a_arr, b_arr)
    return _operand(op, names[0], a_arr, dtype), _operand(op, names[1], b_arr, dtype), dtype


def _rows_view(a):
    """a (..., m, k) as one (rows, k) matrix without a copy, or None when its row axes
    cannot be walked with a single stride.

    A size-1 axis contributes nothing to addressing, and NumPy leaves any stride on it (a
    slice such as base[:, ::2] of a length-2 axis keeps the step's stride), so size-1 axes
    are dropped before the strides of the remaining row axes are compared, and the row
    stride is that of the innermost remaining one. Comparing each axis with its neighbour
    including size-1 ones let a (3, 1, 2, 3) view with strides (96, 96, 24, 8) through as
    a matrix of row stride 24: rows of the wrong batch, and reads past the buffer.
    """
    k = a.shape[-1]
    if a.ndim == 2:
        return a
    rows = _prod(a.shape[:-1])
    if rows == 0:
        return a.reshape(0, k)
    axes = [d for d in range(a.ndim - 1) if a.shape[d] != 1]
    for outer, inner in zip(axes, axes[1:]):
        if a.strides[outer] != a.strides[inner] * a.shape[inner]:
            return None
    row_stride = a.strides[axes[-1]] if axes else 0
    return np.lib.stride_tricks.as_strided(a, (rows, k), (row_stride, a.strides[-1]),
                                           writeable=False)


def _rows_matrix(a):
    """a (..., m, k) as one (rows, k) matrix: a view when one exists, else a copy."""
    view = _rows_view(a)
    return view if view is not None else np.ascontiguousarray(a).reshape(-1, a.shape[-1])


def _batch_offsets(arr, batch_shape):
    """Element offsets of each matrix of arr broadcast to batch_shape + arr.shape[-2:]."""
    if arr.ndim == 3 and arr.shape[0] == batch_shape[0] and len(batch_shape) == 1:
        # one batch axis, not broadcast: the offsets are a plain arithmetic sequence
        step = arr.strides[0] // arr.itemsize if arr.shape[0] > 1 else 0
        return arr, np.arange(arr.shape[0], dtype=np.intp) * step
    view = np.broadcast_to(arr, tuple(batch_shape) + arr.shape[-2:])
    off = np.zeros(batch_shape, np.intp)
    for d, size in enumerate(batch_shape):
        step = view.strides[d] // arr.itemsize
        if step and size > 1:
            shape = [1] * len(batch_shape)
            shape[d] = size
            off += (np.arange(size, dtype=np.intp) * step).reshape(shape)
    return view, np.ascontiguousarray(off.reshape(-1))


def _matmul_into(a, b, c, nt, accumulate=False):
    """c := [c +] a @ b for a (..., m, k), b (..., k, n), c (batch..., m, n) C-contiguous."""
    if a.ndim == 2 and b.ndim == 2:
        _la.gemm(a, b, c.reshape(c.shape[-2:]) if c.ndim != 2 else c, accumulate, None, False, None, nt)
        return
    k, n = b.shape[-2:]
    m = a.shape[-2]
    if b.ndim == 2 and not accumulate:
        # every batch shares b (and a is not broadcast): one GEMM over all rows of a
        a2 = _rows_view(a)
        if a2 is not None:
            _la.gemm(a2, b, c.reshape(a2.shape[0], n), False, None, False, None, nt)
            return
    batch_shape = c.shape[:-2]
    a_view, a_off = _batch_offsets(a, batch_shape)
    b_view, b_off = _batch_offsets(b, batch_shape)
    c_off = np.arange(a_off.size, dtype=np.intp) * (m * n)
    if c_off.size:
        _la.gemm_batched(a_view, a_off, b_view, b_off, c, c_off, nt)


def matmul(a, b, out=None, n_threads=None):
    """c = a @ b with numpy.matmul semantics.

    (m, k) @ (k, n) -> (m, n); 1-D operands are promoted and the added axis removed;
    (batch..., m, k) @ (batch..., k, n) -> (batch..., m, n) with broadcast batch axes.
    """
    op = "matmul"
    c = _la.try_gemm(a, b, out, None, False, n_threads, True, True)
    if c is not None:
        return c
    nt = V.n_threads(op, n_threads)
    a, b, dtype = _float_pair(op, a, b)
    shape = V.matmul_shapes(op, a.shape, b.shape)
    buf, res = _output(op, out, shape, dtype, a, b, elementwise=False)
    a2 = a if a.ndim >= 2 else a.reshape(1, -1)
    b2 = b if b.ndim >= 2 else b.reshape(-1, 1)
    batch = shape[:len(shape) - (a.ndim >= 2) - (b.ndim >= 2)]  # the broadcast batch axes
    c2 = buf.reshape(batch + (a2.shape[-2], b2.shape[-1]))
    _matmul_into(a2, b2, c2, nt)
    if res.ndim == 0 and out is None:  # vector @ vector is a scalar, as in numpy.matmul
        return res[()]
    return _finish(buf, res)


def matmul_backward(dc, a, b, out=None, n_threads=None):
    """(da, db) for c = a @ b: da = dc @ b^T, db = a^T @ dc, each summed to its shape.

    out: None or a tuple (da_out, db_out), each None or a C-contiguous array of that
    operand's shape and the computed dtype; a GEMM writes the gradient straight into it
    when no batch axis is summed.
    """
    op = "matmul_backward"
    a, b, dtype = _float_pair(op, a, b)
    c_shape = V.matmul_shapes(op, a.shape, b.shape)
    dc_arr = V.as_array(op, "dc", dc)
    if dc_arr.shape != c_shape:
        raise ValueError(f"{op}: dc.shape {dc_arr.shape} != shape of a @ b {c_shape}")
    dc_arr = _operand(op, "dc", dc_arr, dtype)
    nt = V.n_threads(op, n_threads)
    da_out, db_out = (None, None) if out is None else \
        _grad_outs(op, out, (a.shape, b.shape), dtype, ("da", "db"))
    a2 = a if a.ndim >= 2 else a.reshape(1, -1)
    b2 = b if b.ndim >= 2 else b.reshape(-1, 1)
    batch = c_shape[:len(c_shape) - (a.ndim >= 2) - (b.ndim >= 2)]
    dc2 = dc_arr.reshape(batch + (a2.shape[-2], b2.shape[-1]))
    bt = np.swapaxes(b2, -1, -2)
    at = np.swapaxes(a2, -1, -2)
    # da first: it goes to a new array when da_out overlaps a or dc, which db still reads
    # (no out: plain new arrays, without the helpers' calls)
    da_target = None if da_out is None else _staged(da_out, a, dc_arr)
    da_full, da_buf = (np.empty(batch + a2.shape[-2:], dtype), None) if da_target is None else \
        _gemm_output(op, da_target, batch + a2.shape[-2:], a2.shape, a.shape, dtype, dc_arr, b)
    _matmul_into(dc2, bt, da_full, nt)
    da = _reduce_to(da_full, a2.shape, nt).reshape(a.shape) if da_target is None else \
        _gemm_result(da_full, da_target, da_buf, a2.shape, a.shape, nt)
    if b2.ndim == 2 and a2.ndim > 2:
        # every batch shares b: db = sum over the batch of a_i^T @ dc_i, as one GEMM
        # (b is 2-D, so a carries the whole batch: a2.shape[:-2] == batch)
        k, n = b2.shape
        db_full, db_buf = (np.empty((k, n), dtype), None) if db_out is None else \
            _gemm_output(op, db_out, (k, n), b2.shape, b.shape, dtype, a, dc_arr)
        _la.gemm(_rows_matrix(a2).T, _rows_matrix(dc2), db_full, False, None, False, None, nt)
    else:
        db_full, db_buf = (np.empty(batch + b2.shape[-2:], dtype), None) if db_out is None else \
            _gemm_output(op, db_out, batch + b2.shape[-2:], b2.shape, b.shape, dtype, a, dc_arr)
        _matmul_into(at, dc2, db_full, nt)
    db = _reduce_to(db_full, b2.shape, nt).reshape(b.shape) if db_out is None else \
        _gemm_result(db_full, db_out, db_buf, b2.shape, b.shape, nt)
    return (da, db) if da_out is None else (_land(da, da_out), db)


def _gemm_output(op, target, full_shape, shape2, shape, dtype, *inputs):
    """Where a GEMM writes a gradient: (full, buf).

    full is the array of full_shape the GEMM fills. When target is given and nothing is
    summed afterwards, full is a view of buf: target itself or, when target overlaps an
    input, a temporary that _gemm_result copies into it. Otherwise full is new, buf None."""
    if target is None or full_shape != shape2:
        return np.empty(full_shape, dtype), None
    buf, _ = _output(op, target, shape, dtype, *inputs, elementwise=False)
    return buf.reshape(full_shape), buf


def _gemm_result(full, target, buf, shape2, shape, nt):
    """The gradient of shape from _gemm_output's arrays: full summed over the broadcast
    batch axes (shape2 is shape with 1-D operands made 2-D), in target when given."""
    if target is None:
        return _reduce_to(full, shape2, nt).reshape(shape)
    if buf is not None:
        return _finish(buf, target)
    sum_to_shape(full, shape2, out=target.reshape(shape2), n_threads=nt)
    return target


def dot(x, y, out=None, n_threads=None):
    """numpy.dot: sum over the last axis of x and the second-to-last of y (the only of 1-D y).

    (d,).(d,) -> scalar; (m, d).(d,) -> (m,); (m, d).(d, n) -> (m, n);
    (a, b, c, d).(d,) -> (a, b, c); (a, b, c, d).(d, e) -> (a, b, c, e);
    (p, d).(j, d, e) -> (p, j, e). Scalars (0-d) are not supported: use multiplication.
    """
    op = "dot"
    z = _la.try_gemm(x, y, out, None, False, n_threads, True)   # 1-D / 2-D: as matmul
    if z is not None:
        return z
    x, y, dtype = _float_pair(op, x, y, ("x", "y"))
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"{op}: scalar operands (shapes {x.shape} and {y.shape}) are not "
                         f"supported; multiply instead")
    shape = V.dot_shapes(op, x.shape, y.shape)
    nt = V.n_threads(op, n_threads)
    buf, res = _output(op, out, shape, dtype, x, y, elementwise=False)
    d = x.shape[-1]
    # explicit row counts: reshape(-1, d) is ambiguous (an error) when d == 0
    x2 = x.reshape(_prod(x.shape[:-1]), d) if x.ndim != 2 else x
    if y.ndim <= 2:
        y2 = y if y.ndim == 2 else y.reshape(d, 1)
        _la.gemm(x2, y2, buf.reshape(x2.shape[0], y2.shape[1]), False, None, False, None, nt)
    else:
        e = y.shape[-1]
        y3 = y.reshape(_prod(y.shape[:-2]), d, e)
        c = buf.reshape(x2.shape[0], y3.shape[0], e).transpose(1, 0, 2)
        a_off = np.zeros(y3.shape[0], np.intp)
        b_off = np.arange(y3.shape[0], dtype=np.intp) * (y3.strides[0] // y3.itemsize)
        c_off = np.arange(y3.shape[0], dtype=np.intp) * e
        if c_off.size:
            _la.gemm_batched(x2, a_off, y3, b_off, c, c_off, nt)
    if res.ndim == 0 and out is None:
        return res[()]
    return _finish(buf, res)


def dot_backward(dz, x, y, n_threads=None):
    """(dx, dy) for z = dot(x, y), with the shapes of x and y."""
    op = "dot_backward"
    x, y, dtype = _float_pair(op, x, y, ("x", "y"))
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"{op}: scalar operands (shapes {x.shape} and {y.shape}) are not supported")
    z_shape = V.dot_shapes(op, x.shape, y.shape)
    dz_arr = V.as_array(op, "dz", dz)
    if dz_arr.shape != z_shape:
        raise ValueError(f"{op}: dz.shape {dz_arr.shape} != shape of dot(x, y) {z_shape}")
    dz_arr = _contiguous_operand(op, "dz", dz_arr, dtype)
    nt = V.n_threads(op, n_threads)
    d = x.shape[-1]
    x2 = x.reshape(_prod(x.shape[:-1]), d) if x.ndim != 2 else x
    p = x2.shape[0]
    if y.ndim <= 2:
        y2 = y if y.ndim == 2 else y.reshape(d, 1)
        dz2 = dz_arr.reshape(p, y2.shape[1])
        dx = np.empty((p, d), dtype)
        dy = np.empty(y2.shape, dtype)
        _la.gemm(dz2, y2.T, dx, False, None, False, None, nt)
        _la.gemm(x2.T, dz2, dy, False, None, False, None, nt)
        return dx.reshape(x.shape), dy.reshape(y.shape)
    e = y.shape[-1]
    y3 = y.reshape(_prod(y.shape[:-2]), d, e)
    dz3 = dz_arr.reshape(p, y3.shape[0], e)
    dx = np.zeros((p, d), dtype)
    dy = np.empty(y3.shape, dtype)
    for j in range(y3.shape[0]):  # fixed order over j: deterministic accumulation
        _la.gemm(dz3[:, j, :], y3[j].T, dx, True, None, False, None, nt)
        _la.gemm(x2.T, dz3[:, j, :], dy[j], False, None, False, None, nt)
    return dx.reshape(x.shape), dy.reshape(y.shape)


# ------------------------------------------------------------------ fused layer helpers
def dense(x, kernel, bias=None, activation=None, out=None, rows=None, n_threads=None):
    """y = act(x[rows] @ kernel + bias), fused in one GEMM pass (act: None or "relu").

    x: (N, d); kernel: (d, units); bias: (units,) or None; rows: optional (n,) row
    indices into x (a minibatch gather that is never copied); y: (n or N, units).
    The layer computes in the dtype of x @ kernel; a bias of another dtype is cast to it.
    """
    op = "dense"
    if activation not in (None, "linear", "relu"):
        raise ValueError(f"{op}: activation must be None, 'linear' or 'relu', got {activation!r}")
    if rows is None:
        y = _la.try_gemm(x, kernel, out, bias, activation == "relu", n_threads)
        if y is not None:
            return y
    nt = V.n_threads(op, n_threads)
    x, kernel, dtype = _float_pair(op, x, kernel, ("x", "kernel"))
    if x.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"{op}: x and kernel must be 2-D, got shapes {x.shape} and {kernel.shape}")
    if x.shape[1] != kernel.shape[0]:
        raise ValueError(f"{op}: shapes {x.shape} and {kernel.shape} not aligned: "
                         f"x.shape[1]={x.shape[1]} != kernel.shape[0]={kernel.shape[0]}")
    units = kernel.shape[1]
    if bias is not None:
        bias = _contiguous_operand(op, "bias", V.as_array(op, "bias", bias), dtype)
        if bias.shape != (units,):
            raise ValueError(f"{op}: bias.shape {bias.shape} != (units,) = ({units},)")
    if rows is not None:
        rows = V.rows_index(op, "rows", rows, x.shape[0])
    n = x.shape[0] if rows is None else rows.shape[0]
    buf, res = _output(op, out, (n, units), dtype, x, kernel,
                       *([bias] if bias is not None else []), elementwise=False)
    _la.gemm(x, kernel, buf, False, bias, activation == "relu", rows, nt)
    return _finish(buf, res)


def take_rows(x, indices, out=None, n_threads=None):
    """out = x[indices] for a 2-D x: a minibatch gather into a reusable buffer."""
    op = "take_rows"
    x_arr = V.as_array(op, "x", x)
    dtype = V.result_dtype(op, x_arr)
    x_arr = V.as_float(op, "x", x_arr, dtype)
    if x_arr.ndim != 2:
        raise ValueError(f"{op}: x must be 2-D, got shape {x_arr.shape}")
    if x_arr.strides[1] != x_arr.itemsize or not x_arr.flags.aligned or x_arr.strides[0] % x_arr.itemsize:
        x_arr = np.ascontiguousarray(x_arr)
    idx = V.rows_index(op, "indices", indices, x_arr.shape[0])
    nt = V.n_threads(op, n_threads)
    buf, res = _output(op, out, (idx.shape[0], x_arr.shape[1]), dtype, x_arr, elementwise=False)
    if buf.size:
        _ew.take_rows(x_arr, idx, buf, nt)
    return _finish(buf, res)
