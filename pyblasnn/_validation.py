
# =======================================================================================
# Frontend checks: fused loss / optimizer kernels (pyblasnn/fused.py) and the Keras-style
# layers, losses, optimizers and models. Messages start with the op name, name the argument
# and show what was received; TypeError for a bad type/dtype, ValueError for a bad value.
# =======================================================================================
import numbers as _numbers

import numpy as _np

_FLOATS = (_np.dtype(_np.float32), _np.dtype(_np.float64))


def check_n_threads(op, n_threads):
    """n_threads must be a positive int."""
    if isinstance(n_threads, bool) or not isinstance(n_threads, _numbers.Integral):
        raise TypeError(f"{op}: n_threads must be a positive int or None, got {n_threads!r}")
    if n_threads < 1:
        raise ValueError(f"{op}: n_threads must be >= 1, got {n_threads}")
    return int(n_threads)


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


def check_out(op, out, shape, dtype, name="out"):
    """out must be a writeable C-contiguous ndarray of exactly this shape and dtype."""
    if not isinstance(out, _np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{op}: {name} must have dtype {dtype}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{op}: {name} must be a writeable C-contiguous array")
    return out


def check_same(op, name_a, a, name_b, b):
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: {name_a} and {name_b} dtypes differ: {a.dtype} != {b.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"{op}: {name_a} and {name_b} shapes differ: {a.shape} != {b.shape}")


def as_sparse_labels(op, labels, n=None, n_classes=None):
    """Integer class labels as a C-contiguous intp (n,) array (copied only if needed).

    Accepts shape (n,) or (n, 1), any integer dtype, or floats holding whole numbers.
    """
    if not isinstance(labels, _np.ndarray):
        try:
            labels = _np.asarray(labels)
        except Exception as exc:  # ragged lists and such
            raise ValueError(f"{op}: labels could not be read as an array: {exc}") from None
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.reshape(-1)
    if labels.ndim != 1:
        raise ValueError(f"{op}: labels must be a 1-D array of class indices, "
                         f"got shape {labels.shape}")
    if n is not None and labels.shape[0] != n:
        raise ValueError(f"{op}: got {labels.shape[0]} labels for {n} samples")
    kind = labels.dtype.kind
    if kind == "f":
        if labels.size and not _np.all(_np.isfinite(labels) & (labels == _np.floor(labels))):
            raise ValueError(f"{op}: labels must be integer class indices, "
                             f"got non-integer values in a {labels.dtype} array")
    elif kind not in "iu":
        raise ValueError(f"{op}: labels must be integer class indices, got dtype {labels.dtype}")
    if labels.size:
        lo, hi = labels.min(), labels.max()
        if lo < 0:
            raise ValueError(f"{op}: labels must be >= 0, got {lo}")
        if n_classes is not None and hi >= n_classes:
            raise ValueError(f"{op}: label {hi} out of range for {n_classes} classes "
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
    return [a.reshape(-1) for a in arrays.values()]
