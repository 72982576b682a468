"""Public functional API: validate, allocate, call a compiled kernel.

Every op accepts array-likes, computes float32 inputs in float32 and float64 inputs in
float64 (mixed inputs follow NumPy's promotion; integers and bools become float64), and
takes ``out=`` (a C-contiguous ndarray of the result's shape and dtype) and
``n_threads=None`` (the current ``pyblasnn.get_num_threads()``; -1 means all processors).

Forward and backward ops come in pairs named ``f`` / ``f_backward``. A backward takes the
upstream gradient first and returns one gradient per input, each already reduced to that
input's shape.
"""
import numpy as np

from . import _validation as V
from ._kernels import elementwise as _ew
from ._kernels import linalg as _la

__all__ = [
    "relu", "relu_backward", "add", "add_backward", "subtract", "multiply", "divide",
    "maximum", "maximum_backward", "sum_to_shape", "dot", "dot_backward", "matmul",
    "matmul_backward", "dense", "take_rows",
]

_OPS = _ew.BINARY_OPS  # the kernel's codes of its binary operations, by name


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


def add_backward(dz, x_shape, y_shape, n_threads=None):
    """(dx, dy) for z = x + y: dz summed over the axes each operand was broadcast along.

    An operand that was not broadcast gets dz itself (as an array of the computed dtype,
    not a copy), the way autograd engines pass an addition's gradient through.
    """
    op = "add_backward"
    if (type(dz) is np.ndarray and type(x_shape) is tuple and x_shape == dz.shape
            and all(type(s) is int for s in x_shape)):
        dy = _ew.try_column_sum(dz, y_shape, None, n_threads)   # x + bias row
        if dy is not None:
            return dz, dy
    x_shape = V.shape_tuple(op, "x_shape", x_shape)
    y_shape = V.shape_tuple(op, "y_shape", y_shape)
    dz_arr = V.as_array(op, "dz", dz)
    z_shape = V.broadcast_shape(op, x_shape, y_shape)
    if dz_arr.shape != z_shape:
        raise ValueError(f"{op}: dz.shape {dz_arr.shape} != broadcast shape {z_shape} "
                         f"of x_shape {x_shape} and y_shape {y_shape}")
    nt = V.n_threads(op, n_threads)
    dz_arr = V.as_float(op, "dz", dz_arr, V.result_dtype(op, dz_arr))
    return _reduce_to(dz_arr, x_shape, nt), _reduce_to(dz_arr, y_shape, nt)


def maximum_backward(dz, x, y, n_threads=None):
    """(dx, dy) for z = maximum(x, y): dz goes to the operand that was picked.

    maximum returns x where x > y or x is NaN and y otherwise (ties included, as NumPy
    does), and the gradient follows that choice.
    Each gradient is summed back to its operand's shape.
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
    dx_full = np.empty(shape, dtype)
    dy_full = np.empty(shape, dtype)
    if dz_arr.size:
        layout = _coalesce(shape, _element_strides(x_arr, shape), _element_strides(y_arr, shape))
        _ew.maximum_mask(layout[0], layout[1], layout[2], x_arr, y_arr, dz_arr,
                         dx_full, dy_full, nt)
    return _reduce_to(dx_full, x_arr.shape, nt), _reduce_to(dy_full, y_arr.shape, nt)


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


def _rows_collapsible(a):
    """True when every axis but the last can be merged into one row axis without a copy."""
    return all(a.shape[d] == 1 or a.strides[d] == a.strides[d + 1] * a.shape[d + 1]
               for d in range(a.ndim - 2))


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
    if b.ndim == 2 and _rows_collapsible(a) and not accumulate:
        rows = c.size // n if n else int(np.prod(c.shape[:-1]))
        a2 = np.lib.stride_tricks.as_strided(a, (rows, k), (a.strides[-2], a.strides[-1])) \
            if a.ndim > 2 and rows else a.reshape(rows, k)
        _la.gemm(a2, b, c.reshape(rows, n), False, None, False, None, nt)
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
    c = _la.try_gemm(a, b, out, None, False, n_threads, True)
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


def matmul_backward(dc, a, b, n_threads=None):
    """(da, db) for c = a @ b: da = dc @ b^T, db = a^T @ dc, each summed to its shape."""
    op = "matmul_backward"
    a, b, dtype = _float_pair(op, a, b)
    c_shape = V.matmul_shapes(op, a.shape, b.shape)
    dc_arr = V.as_array(op, "dc", dc)
    if dc_arr.shape != c_shape:
        raise ValueError(f"{op}: dc.shape {dc_arr.shape} != shape of a @ b {c_shape}")
    dc_arr = _operand(op, "dc", dc_arr, dtype)
    nt = V.n_threads(op, n_threads)
    a2 = a if a.ndim >= 2 else a.reshape(1, -1)
    b2 = b if b.ndim >= 2 else b.reshape(-1, 1)
    batch = c_shape[:len(c_shape) - (a.ndim >= 2) - (b.ndim >= 2)]
    dc2 = dc_arr.reshape(batch + (a2.shape[-2], b2.shape[-1]))
    bt = np.swapaxes(b2, -1, -2)
    at = np.swapaxes(a2, -1, -2)
    da_full = np.empty(batch + a2.shape[-2:], dtype)
    _matmul_into(dc2, bt, da_full, nt)
    if b2.ndim == 2 and a2.ndim > 2:
        # every batch shares b: db = sum over the batch of a_i^T @ dc_i, as one GEMM
        k, n = b2.shape
        rows = int(np.prod(batch)) * a2.shape[-2]
        a_full = np.ascontiguousarray(np.broadcast_to(a2, batch + a2.shape[-2:])).reshape(rows, k)
        db_full = np.empty((k, n), dtype)
        _la.gemm(a_full.T, np.ascontiguousarray(dc2).reshape(rows, n), db_full,
                 False, None, False, None, nt)
    else:
        db_full = np.empty(batch + b2.shape[-2:], dtype)
        _matmul_into(at, dc2, db_full, nt)
    return _reduce_to(da_full, a2.shape, nt).reshape(a.shape), \
        _reduce_to(db_full, b2.shape, nt).reshape(b.shape)


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
