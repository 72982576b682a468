"""Every check of user input, in one place.

Each function takes the public op's name first so that messages read
``matmul: shapes (3, 4) and (5, 2) not aligned: ...``. TypeError for a bad type or dtype,
ValueError for a bad shape or value. The kernels assume what these functions prove.

Dtype policy (documented in README): float32 and float64 are computed in their own
precision and mixed inputs follow NumPy's promotion (float32 with float64 -> float64;
Python scalars are "weak" and take the array's dtype). Integer and bool inputs are
promoted to float64, as NumPy's true division does. Complex, object, string, bytes,
datetime and other dtypes raise TypeError.
"""
import operator

import numpy as np

from ._kernels import threads as _threads

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT32, _FLOAT64 = FLOAT_DTYPES


def _describe(x):
    if isinstance(x, np.ndarray):
        return f"array of dtype {x.dtype} and shape {x.shape}"
    return f"{type(x).__name__} {x!r}"[:80]


def as_array(op, name, x):
    """x as an ndarray (no copy when it already is one); TypeError for non-numeric input."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        if x is None or isinstance(x, (str, bytes, dict, set)):
            raise TypeError(f"{op}: {name} must be an array-like of numbers, got {_describe(x)}")
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{op}: {name} must be an array-like of numbers ({exc})") from None
    kind = arr.dtype.kind
    if kind not in "fiub" or arr.dtype.itemsize > 8:
        raise TypeError(f"{op}: {name} has unsupported dtype {arr.dtype}; "
                        f"pyblasnn computes in float32 or float64 (ints and bools are "
                        f"promoted to float64)")
    return arr


def result_dtype(op, *arrays_and_scalars):
    """The float dtype the op computes in: NumPy promotion, integers/bools -> float64."""
    dt = np.result_type(*arrays_and_scalars)
    if dt == _FLOAT32 or dt == _FLOAT64:
        return dt
    if dt.kind in "iub":
        return _FLOAT64
    if dt.kind == "f":  # float16 computes in float32, longdouble is not supported
        if dt.itemsize < 4:
            return _FLOAT32
    raise TypeError(f"{op}: unsupported dtype {dt}; pyblasnn computes in float32 or float64")


def as_float(op, name, x, dtype):
    """x as an ndarray of exactly ``dtype`` (converting a copy only when needed)."""
    arr = as_array(op, name, x)
    if arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


def check_out(op, out, shape, dtype, name="out"):
    """A user-supplied output must be a writeable C-contiguous ndarray of the exact result."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{op}: {name} has dtype {out.dtype}, the result has dtype {dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{op}: {name} has shape {out.shape}, the result has shape {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError(f"{op}: {name} is read-only")
    if not out.flags.c_contiguous:
        raise ValueError(f"{op}: {name} must be C-contiguous")
    return out


def same_layout(a, b):
    """True when a and b are the same elements in the same memory (a safe in-place pair)."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.strides == b.strides and a.shape == b.shape)


#: The most threads a kernel may be asked for (kernels/pbn_runtime.h, PBN_MAX_THREADS).
MAX_THREADS = _threads.MAX_THREADS


def thread_count(op, name, n):
    """An explicit thread count: a positive int up to MAX_THREADS, or -1 (every processor,
    at most MAX_THREADS). Named ``name`` in the messages."""
    if isinstance(n, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be an int or None, got bool {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or None, got {type(n).__name__}") from None
    if n == -1:
        return min(_threads.num_procs(), MAX_THREADS)
    if n < 1:
        raise ValueError(f"{op}: {name} must be a positive int or -1 (all processors), got {n}")
    if n > MAX_THREADS:
        raise ValueError(f"{op}: {name}={n} is above the maximum of {MAX_THREADS} threads")
    return n


def n_threads(op, n):
    """Resolve a per-call thread count: None -> current setting, -1 -> all processors.

    The kernels apply their thread policy on top (kernels/pbn_runtime.h): in a forked child
    every kernel runs on one thread whatever is asked."""
    if type(n) is int and 0 < n <= MAX_THREADS:  # the common explicit case, first
        return n
    if n is None:
        return _threads.max_threads()
    return thread_count(op, "n_threads", n)


def broadcast_shape(op, *shapes):
    """NumPy's broadcast of the shapes, or ValueError naming the op and every shape."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        shown = " and ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{op}: operands could not be broadcast together with shapes {shown}") from None


def shape_tuple(op, name, shape):
    """A shape argument (tuple/list of non-negative ints, or one int) as a tuple."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"{op}: {name} must be a tuple of ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{op}: {name} has a negative dimension: {shape}")
    return shape


def _check_contraction(op, a_shape, b_shape, a, b):
    """a's last axis must match b's second-to-last (its only one when b is 1-D)."""
    ka = a_shape[-1]
    kb = b_shape[-2] if len(b_shape) >= 2 else b_shape[0]
    if ka != kb:
        which = f"{b}.shape[-2]" if len(b_shape) >= 2 else f"{b}.shape[0]"
        raise ValueError(f"{op}: shapes {tuple(a_shape)} and {tuple(b_shape)} not aligned: "
                         f"{a}.shape[-1]={ka} != {which}={kb}")


def matmul_shapes(op, a_shape, b_shape):
    """Output shape of numpy.matmul, with a clear error for mismatched operands."""
    if len(a_shape) == 0 or len(b_shape) == 0:
        raise ValueError(f"{op}: operands must have at least one dimension, got shapes "
                         f"{tuple(a_shape)} and {tuple(b_shape)} (use multiply for scalars)")
    _check_contraction(op, a_shape, b_shape, "a", "b")
    batch = broadcast_shape(op, a_shape[:-2], b_shape[:-2]) if (len(a_shape) > 2 or len(b_shape) > 2) else ()
    out = list(batch)
    if len(a_shape) >= 2:
        out.append(a_shape[-2])
    if len(b_shape) >= 2:
        out.append(b_shape[-1])
    return tuple(out)


def dot_shapes(op, x_shape, y_shape):
    """Output shape of numpy.dot, with a clear error for mismatched operands."""
    if len(x_shape) == 0 or len(y_shape) == 0:
        return tuple(x_shape) + tuple(y_shape)
    _check_contraction(op, x_shape, y_shape, "x", "y")
    return tuple(x_shape[:-1]) + tuple(y_shape[:-2]) + tuple(y_shape[-1:] if len(y_shape) >= 2 else ())


def rows_index(op, name, indices, n_rows):
    """Row indices as a contiguous intp array, each in [0, n_rows) (negatives wrap).

    The range is checked on the values as given, before any conversion: a uint64 index of
    2**64 - 1 cast to intp first would wrap to -1 and select the last row. Out-of-range
    indices raise IndexError, as x[indices] does in NumPy."""
    idx = np.asarray(indices)
    if idx.size == 0 and not isinstance(indices, np.ndarray):
        idx = idx.astype(np.intp)  # [] is float64 to numpy, but x[[]] is a valid gather
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be integers, got dtype {idx.dtype}")
    if idx.ndim != 1:
        raise ValueError(f"{op}: {name} must be 1-D, got shape {idx.shape}")
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())   # Python ints: exact for every dtype
        if lo < -n_rows or hi >= n_rows:
            bad = hi if hi >= n_rows else lo
            raise IndexError(f"{op}: {name} out of range for {n_rows} rows: index {bad} is "
                             f"out of bounds for axis 0 with size {n_rows}")
        idx = np.ascontiguousarray(idx, dtype=np.intp)  # every value now fits in intp
        if lo < 0:
            idx = np.where(idx < 0, idx + n_rows, idx)
    else:
        idx = np.ascontiguousarray(idx, dtype=np.intp)
    return idx


# =======================================================================================
# Frontend checks: fused loss / optimizer kernels (pyblasnn/fused.py) and the Keras-style
# layers, losses, optimizers and models. Messages start with the op name, name the argument
# and show what was received; TypeError for a bad type/dtype, ValueError for a bad value.
# =======================================================================================
import numbers as _numbers

import numpy as _np

_FLOATS = (_np.dtype(_np.float32), _np.dtype(_np.float64))


def check_float_matrix(op, name, x):
    """A C-contiguous float32/float64 2-D ndarray (not converted: the kernels work in place)."""
    if not isinstance(x, _np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in _FLOATS:
        raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{op}: {name} must be 2-D (samples, classes), got shape {x.shape}")
    if not x.flags.c_contiguous:
        raise ValueError(f"{op}: {name} must be C-contiguous (use numpy.ascontiguousarray)")
    return x


def check_same(op, name_a, a, name_b, b):
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: {name_a} and {name_b} dtypes differ: {a.dtype} != {b.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"{op}: {name_a} and {name_b} shapes differ: {a.shape} != {b.shape}")


def as_sparse_labels(op, labels, n=None, n_classes=None, name="labels"):
    """Integer class labels as a C-contiguous intp (n,) array (copied only if needed).

    Accepts shape (n,) or (n, 1), any integer dtype, or floats holding whole numbers.
    ``name``: what the messages call the argument (``y_true``, ``y_pred``, ...).
    """
    if not isinstance(labels, _np.ndarray):
        try:
            labels = _np.asarray(labels)
        except Exception as exc:  # ragged lists and such
            raise ValueError(f"{op}: {name} could not be read as an array: {exc}") from None
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.reshape(-1)
    if labels.ndim != 1:
        raise ValueError(f"{op}: {name} must be a 1-D array of class indices, "
                         f"got shape {labels.shape}")
    if n is not None and labels.shape[0] != n:
        raise ValueError(f"{op}: got {labels.shape[0]} {name} for {n} samples")
    kind = labels.dtype.kind
    if kind == "f":
        if labels.size and not _np.all(_np.isfinite(labels) & (labels == _np.floor(labels))):
            raise ValueError(f"{op}: {name} must be integer class indices, "
                             f"got non-integer values in a {labels.dtype} array")
    elif kind not in "iu":
        raise ValueError(f"{op}: {name} must be integer class indices, got dtype {labels.dtype}")
    if labels.size:
        lo, hi = labels.min(), labels.max()
        if lo < 0:
            raise ValueError(f"{op}: {name} must be >= 0, got {lo}")
        if n_classes is not None and hi >= n_classes:
            where = "" if name == "labels" else f" in {name}"
            raise ValueError(f"{op}: label {hi}{where} out of range for {n_classes} classes "
                             f"(labels must be in [0, {n_classes}))")
    if labels.dtype == _np.intp and labels.flags.c_contiguous:
        return labels
    return _np.ascontiguousarray(labels, dtype=_np.intp)


def check_sparse_labels(op, labels, n, n_classes):
    """Fast path for the kernels: intp C-contiguous labels pass after a range check."""
    if (isinstance(labels, _np.ndarray) and labels.dtype == _np.intp and labels.ndim == 1
            and labels.flags.c_contiguous and labels.shape[0] == n):
        if n and (labels.min() < 0 or labels.max() >= n_classes):
            lo, hi = labels.min(), labels.max()
            bad = lo if lo < 0 else hi
            raise ValueError(f"{op}: label {bad} out of range for {n_classes} classes "
                             f"(labels must be in [0, {n_classes}))")
        return labels
    return as_sparse_labels(op, labels, n, n_classes)


def positive_int(op, name, value):
    """An int >= 1 (not a bool): TypeError for another type, ValueError below 1."""
    if isinstance(value, (bool, _np.bool_)) or not isinstance(value, (int, _np.integer)):
        raise TypeError(f"{op}: {name} must be an int, got {_describe(value)}")
    if value < 1:
        raise ValueError(f"{op}: {name} must be >= 1, got {value}")
    return int(value)


def _check_real(op, name, value):
    if isinstance(value, bool) or not isinstance(value, _numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{op}: {name} must be finite, got {value}")
    return value


def check_positive_float(op, name, value, allow_zero=False, upper=None):
    """A finite float > 0 (>= 0 with allow_zero), optionally < upper."""
    value = _check_real(op, name, value)
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{op}: {name} must be {bound}, got {value}")
    if upper is not None and value >= upper:
        raise ValueError(f"{op}: {name} must be < {upper}, got {value}")
    return value


def check_unit_interval(op, name, value):
    """A float in [0, 1)."""
    value = _check_real(op, name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{op}: {name} must be in [0, 1), got {value}")
    return value


def check_param_and_state(op, param, grad, **state):
    """Flat 1-D views of a parameter, its gradient and its optimizer state arrays.

    All must be C-contiguous ndarrays of one float dtype and one shape; the parameter and
    state must be writeable (they are updated in place).
    """
    arrays = {"param": param, "grad": grad, **state}
    for name, a in arrays.items():
        if not isinstance(a, _np.ndarray):
            raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(a).__name__}")
        if a.dtype not in _FLOATS:
            raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {a.dtype}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{op}: {name} must be C-contiguous")
        if name != "grad" and not a.flags.writeable:
            raise ValueError(f"{op}: {name} must be writeable (it is updated in place)")
        if a.dtype != param.dtype:
            raise TypeError(f"{op}: {name} dtype {a.dtype} != param dtype {param.dtype}")
        if a.shape != param.shape:
            raise ValueError(f"{op}: {name} shape {a.shape} != param shape {param.shape}")
    _check_update_overlap(op, arrays)
    return [a.reshape(-1) for a in arrays.values()]


def _check_update_overlap(op, arrays):
    """Arrays updated in place share no memory; grad may be one of them, exactly."""
    names = list(arrays)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            a, b = arrays[first], arrays[second]
            if not _np.shares_memory(a, b):
                continue
            if "grad" in (first, second) and a.__array_interface__ == b.__array_interface__:
                continue
            raise ValueError(f"{op}: {first} and {second} overlap in memory (each array "
                             "updated in place needs its own buffer)")
