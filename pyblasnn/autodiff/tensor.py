"""``Tensor`` (an immutable array that ops on variables return) and ``Variable`` (mutable).

Both wrap a NumPy array. Arithmetic operators, ``@`` and indexing go through the gradient
rules (``rules.py``) via ``tape.apply``, so they are recorded by a ``GradientTape`` that
watches an operand. ``np.asarray(t)`` / ``t.numpy()`` give the array (a tensor's own array,
a copy for a variable), so NumPy functions such as ``np.argmax(t, axis=1)`` work directly.
"""
import numpy as np

__all__ = ["Tensor", "Variable", "as_value", "to_array", "FLOAT_DTYPES"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_PY_SCALARS = (int, float, bool)


def as_value(x):
    """The array behind a Tensor/Variable; anything else unchanged."""
    return x._value if isinstance(x, Tensor) else x


def to_array(op, x, dtype=None):
    """x as an ndarray with TensorFlow's defaults: Python floats (and lists of them) are
    float32, Python ints int32; NumPy arrays keep their dtype unless ``dtype`` is given."""
    if isinstance(x, Tensor):
        arr = x._value
    elif isinstance(x, np.ndarray):
        arr = x
    else:
        if x is None or isinstance(x, (str, bytes, dict, set)):
            raise TypeError(f"{op}: expected a number, a nested list of numbers, an array or a "
                            f"tensor, got {type(x).__name__}")
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{op}: cannot convert {type(x).__name__} to a tensor: {exc}") \
                from None
        if dtype is None:
            if arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            elif arr.dtype == np.int64:
                arr = arr.astype(np.int32)
    if arr.dtype.kind not in "fiub" or arr.dtype.itemsize > 8:
        raise TypeError(f"{op}: unsupported dtype {arr.dtype}; tensors hold float32/float64 "
                        f"(or integer/bool data that is not differentiated)")
    if dtype is not None:
        dtype = np.dtype(dtype)
        if arr.dtype != dtype:
            arr = arr.astype(dtype)
    return arr


class Tensor:
    """An immutable n-dimensional array: ``.numpy()``, ``.shape``, ``.dtype``, ``.ndim``,
    operators ``+ - * / @ **`` and unary ``-`` (NumPy broadcasting, Python scalars on either
    side), indexing. Build one with ``pyblasnn.constant(value)``."""

    __slots__ = ("_value", "_logits", "__weakref__")
    # NumPy defers to our operators (ndarray + Tensor -> Tensor.__radd__) and ufuncs
    # other than the arithmetic ones see plain arrays
    __array_priority__ = 1000

    def __init__(self, value, dtype=None):
        self._value = to_array("Tensor", value, dtype)
        self._logits = None

    @classmethod
    def _wrap(cls, value):
        t = object.__new__(Tensor)
        t._value = value if type(value) is np.ndarray else np.asarray(value)
        t._logits = None
        return t

    # -- array protocol -------------------------------------------------------------------
    def numpy(self):
        """The values as a NumPy array (the tensor's own array: do not write into it)."""
        return self._value

    def __array__(self, dtype=None, copy=None):
        a = self._value
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = _UFUNCS.get(ufunc) if method == "__call__" and not kwargs else None
        if fn is not None:
            return fn(*inputs)
        inputs = tuple(as_value(x) for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(as_value(x) for x in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    @property
    def shape(self):
        return self._value.shape

    @property
    def dtype(self):
        return self._value.dtype

    @property
    def ndim(self):
        return self._value.ndim

    def __len__(self):
        if self._value.ndim == 0:
            raise TypeError("len() of a scalar (rank-0) tensor")
        return self._value.shape[0]

    def __iter__(self):
        if self._value.ndim == 0:
            raise TypeError("iteration over a scalar (rank-0) tensor")
        return (self[i] for i in range(self._value.shape[0]))

    def __bool__(self):
        return bool(self._value)

    def _one_number(self, call):
        """The value of a one-element tensor (a loss, a metric) for ``float()`` / ``int()``."""
        if self._value.size != 1:
            raise TypeError(f"{call}: needs a tensor holding one number, got one of shape "
                            f"{self.shape}; reduce it first (reduce_mean, reduce_sum)")
        return self._value.reshape(())

    def __float__(self):
        return float(self._one_number("float()"))

    def __int__(self):
        return int(self._one_number("int()"))

    def __index__(self):
        if self._value.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, got {self.dtype}")
        return int(self._value)

    def __format__(self, spec):
        if self._value.ndim == 0:
            return format(self._value.item(), spec)
        if spec:
            raise TypeError(f"unsupported format string {spec!r} for a tensor of shape "
                            f"{self.shape}; format its elements instead")
        return str(self)

    def __repr__(self):
        v = self._value
        body = repr(v.item()) if v.ndim == 0 else "\n" + repr(v)
        return f"<pyblasnn.Tensor: shape={v.shape}, dtype={v.dtype.name}, numpy={body}>"

    def __str__(self):
        return (f"pyblasnn.Tensor({np.array2string(self._value)}, shape={self.shape}, "
                f"dtype={self.dtype.name})")

    # -- operators (recorded) ---------------------------------------------------------------
    def __add__(self, other):
        return _f.add(self, other)

    def __radd__(self, other):
        return _f.add(other, self)

    def __sub__(self, other):
        return _f.subtract(self, other)

    def __rsub__(self, other):
        return _f.subtract(other, self)

    def __mul__(self, other):
        return _f.multiply(self, other)

    def __rmul__(self, other):
        return _f.multiply(other, self)

    def __truediv__(self, other):
        return _f.divide(self, other)

    def __rtruediv__(self, other):
        return _f.divide(other, self)

    def __matmul__(self, other):
        return _f.matmul(self, other)

    def __rmatmul__(self, other):
        return _f.matmul(other, self)

    def __pow__(self, exponent):
        return _f.pow(self, exponent)

    def __neg__(self):
        return _f.negative(self)

    def __pos__(self):
        return self

    def __getitem__(self, key):
        return _f.getitem(self, key)

    # -- comparisons (not differentiable: boolean tensors) ----------------------------------
    def _compare(self, other, fn):
        return Tensor._wrap(fn(self._value, as_value(other)))

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    __hash__ = object.__hash__      # identity, so tensors can key dicts and sets


class Variable(Tensor):
    """A mutable tensor holding model state (TensorFlow's ``tf.Variable``).

    ``Variable(initial_value, trainable=True, name=None, dtype=None)``: the value is copied;
    Python floats become float32. Variables hold float32 or float64. ``assign``,
    ``assign_add`` and ``assign_sub`` write in place (the shape and dtype must match; a Python
    number broadcasts); a trainable variable is watched by every recording GradientTape.
    """

    __slots__ = ("name", "trainable", "_version")

    def __init__(self, initial_value, trainable=True, name=None, dtype=None):
        if callable(initial_value):
            initial_value = initial_value()
        value = to_array("Variable", initial_value, dtype)
        if value.dtype.kind in "iu" and dtype is None and not isinstance(initial_value,
                                                                          np.ndarray):
            value = value.astype(np.float32)    # Variable(3) holds 3.0, not an int
        if value.dtype not in FLOAT_DTYPES:
            raise TypeError(f"Variable: dtype {value.dtype} is not supported; variables hold "
                            f"float32 or float64 (pass dtype='float32')")
        self._value = np.array(value, order="C", copy=True)
        self._logits = None
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Variable: name must be a str, got {type(name).__name__}")
        self.name = f"{name or 'Variable'}:0"
        self.trainable = bool(trainable)
        self._version = 0

    def __repr__(self):
        v = self._value
        body = repr(v.item()) if v.ndim == 0 else "\n" + repr(v)
        return (f"<pyblasnn.Variable {self.name!r} shape={v.shape} dtype={v.dtype.name}, "
                f"numpy={body}>")

    def numpy(self):
        """A copy of the current value (later assignments do not change it)."""
        return self._value.copy()

    def value(self):
        """The current value as a Tensor (a snapshot)."""
        return Tensor._wrap(self._value.copy())

    read_value = value

    # -- in-place updates -------------------------------------------------------------------
    def _checked(self, op, value):
        if isinstance(value, _PY_SCALARS) and not isinstance(value, bool):
            return value
        arr = as_value(value)
        if isinstance(arr, np.ndarray):
            if arr.dtype != self._value.dtype:
                raise TypeError(f"Variable.{op}: value has dtype {arr.dtype}, the variable "
                                f"{self.name!r} holds {self._value.dtype}; cast it first")
        else:
            arr = to_array(f"Variable.{op}", value, self._value.dtype)
        if arr.shape != self._value.shape:
            raise ValueError(f"Variable.{op}: value has shape {arr.shape}, the variable "
                             f"{self.name!r} has shape {self._value.shape}")
        return arr

    def assign(self, value, read_value=True):
        """self := value (in place)."""
        v = self._checked("assign", value)
        np.copyto(self._value, v)
        self._updated()
        return self if read_value else None

    def assign_add(self, delta, read_value=True):
        """self := self + delta (in place)."""
        _ops.add(self._value, self._checked("assign_add", delta), out=self._value)
        self._updated()
        return self if read_value else None

    def assign_sub(self, delta, read_value=True):
        """self := self - delta (in place)."""
        _ops.subtract(self._value, self._checked("assign_sub", delta), out=self._value)
        self._updated()
        return self if read_value else None

    # -- the optimizer protocol (pyblasnn.optimizers.Optimizer.apply_gradients) -------------
    def _parameter(self):
        """The live array an optimizer updates in place."""
        return self._value

    def _updated(self):
        """Called after every in-place change: tapes that saw the old value refuse to use it."""
        self._version += 1


# late imports: the functional API builds on Tensor
from .. import ops as _ops  # noqa: E402
from . import functions as _f  # noqa: E402

_UFUNCS = {np.add: _f.add, np.subtract: _f.subtract, np.multiply: _f.multiply,
           np.true_divide: _f.divide, np.matmul: _f.matmul, np.negative: _f.negative,
           np.square: _f.square, np.maximum: _f.maximum}
