"""One table of bad inputs for every public function: (call, exception, message fragment).

Errors must be TypeError for a bad type or dtype, ValueError for a bad shape or value,
and name the op (and what was received) -- never a crash or a silently wrong result.
"""
import numpy as np
import pytest

import pyblasnn
from pyblasnn import ops

f32 = np.ones((3, 4), np.float32)
f64 = np.ones((3, 4))
v4 = np.ones(4)
m45 = np.ones((4, 5))
ro = np.ones((3, 4))
ro.setflags(write=False)
ro35 = np.ones((3, 5))
ro35.setflags(write=False)
noncontig_out = np.ones((3, 8))[:, ::2]
cplx = np.ones((3, 4), np.complex128)
objs = np.array([[1, "a"]], dtype=object)
strs = np.array(["1.0", "2.0"])
dates = np.array(["2020-01-01"], dtype="datetime64[D]")
longd = np.ones(3, np.longdouble) if np.dtype(np.longdouble).itemsize > 8 else np.ones(3, np.complex64)

# one valid call per public op: (callable, args, kwargs) -- the n_threads rows build on these
VALID = {
    "relu": (ops.relu, (f64,), {}),
    "relu_backward": (ops.relu_backward, (f64, f64), {}),
    "add": (ops.add, (f64, v4), {}),
    "add_backward": (ops.add_backward, (f64, (3, 4), (4,)), {}),
    "subtract": (ops.subtract, (f64, v4), {}),
    "subtract_backward": (ops.subtract_backward, (f64, (3, 4), (4,)), {}),
    "multiply": (ops.multiply, (f64, v4), {}),
    "multiply_backward": (ops.multiply_backward, (f64, f64, v4), {}),
    "divide": (ops.divide, (f64, v4), {}),
    "divide_backward": (ops.divide_backward, (f64, f64, v4), {}),
    "maximum": (ops.maximum, (f64, v4), {}),
    "maximum_backward": (ops.maximum_backward, (f64, f64, v4), {}),
    "sum_to_shape": (ops.sum_to_shape, (f64, (4,)), {}),
    "dot": (ops.dot, (f64, m45), {}),
    "dot_backward": (ops.dot_backward, (np.ones((3, 5)), f64, m45), {}),
    "matmul": (ops.matmul, (f64, m45), {}),
    "matmul_backward": (ops.matmul_backward, (np.ones((3, 5)), f64, m45), {}),
    "dense": (ops.dense, (f64, m45), {}),
    "take_rows": (ops.take_rows, (f64, [0, 2]), {}),
}

BAD = [
    # ---- relu
    ("relu", ops.relu, (None,), {}, TypeError, "relu: x"),
    ("relu", ops.relu, ("abc",), {}, TypeError, "relu: x"),
    ("relu", ops.relu, (b"ab",), {}, TypeError, "relu: x"),
    ("relu", ops.relu, ({"a": 1},), {}, TypeError, "relu: x"),
    ("relu", ops.relu, (cplx,), {}, TypeError, "complex128"),
    ("relu", ops.relu, (objs,), {}, TypeError, "object"),
    ("relu", ops.relu, (strs,), {}, TypeError, "unsupported dtype"),
    ("relu", ops.relu, (dates,), {}, TypeError, "datetime64"),
    ("relu", ops.relu, (longd,), {}, TypeError, "unsupported dtype"),
    ("relu", ops.relu, ([[1.0, 2.0], [3.0]],), {}, TypeError, "relu: x"),
    ("relu", ops.relu, (f64,), {"out": np.empty((3, 5))}, ValueError, "shape (3, 5)"),
    ("relu", ops.relu, (f64,), {"out": np.empty((3, 4), np.float32)}, TypeError, "dtype float32"),
    ("relu", ops.relu, (f32,), {"out": np.empty((3, 4))}, TypeError, "dtype float64"),
    ("relu", ops.relu, (f64,), {"out": ro}, ValueError, "read-only"),
    ("relu", ops.relu, (f64,), {"out": noncontig_out}, ValueError, "C-contiguous"),
    ("relu", ops.relu, (f64,), {"out": [0.0] * 12}, TypeError, "numpy.ndarray"),
    ("relu", ops.relu, (f64,), {"out": np.empty((4, 3)).T}, ValueError, "C-contiguous"),
    # ---- relu_backward
    ("relu_backward", ops.relu_backward, (f64, np.ones((4, 3))), {}, ValueError, "(3, 4)"),
    ("relu_backward", ops.relu_backward, (None, f64), {}, TypeError, "relu_backward: dy"),
    ("relu_backward", ops.relu_backward, (f64, "x"), {}, TypeError, "relu_backward: x"),
    ("relu_backward", ops.relu_backward, (cplx, f64), {}, TypeError, "complex"),
    ("relu_backward", ops.relu_backward, (f64, f64), {"out": ro}, ValueError, "read-only"),
    # ---- add / maximum
    ("add", ops.add, (f64, np.ones(5)), {}, ValueError, "add: operands could not be broadcast together with shapes (3, 4) and (5,)"),
    ("add", ops.add, (np.ones((5, 1, 4)), np.ones((3, 2))), {}, ValueError, "(5, 1, 4) and (3, 2)"),
    ("add", ops.add, (f64, None), {}, TypeError, "add: y"),
    ("add", ops.add, ("a", f64), {}, TypeError, "add: x"),
    ("add", ops.add, (f64, cplx), {}, TypeError, "complex"),
    ("add", ops.add, (f64, 1j), {}, TypeError, "complex"),
    ("add", ops.add, (f64, objs), {}, TypeError, "object"),
    ("add", ops.add, (f64, v4), {"out": np.empty(4)}, ValueError, "shape (4,)"),
    ("add", ops.add, (f64, v4), {"out": np.empty((3, 4), np.float32)}, TypeError, "dtype"),
    ("add", ops.add, (f64, v4), {"out": ro}, ValueError, "read-only"),
    ("add", ops.add, (f64, v4), {"out": noncontig_out}, ValueError, "C-contiguous"),
    ("maximum", ops.maximum, (f64, np.ones((2, 4))), {}, ValueError, "maximum: operands could not be broadcast"),
    ("maximum", ops.maximum, (f64, "1"), {}, TypeError, "maximum: y"),
    ("maximum", ops.maximum, (f64, dates), {}, TypeError, "datetime64"),
    ("maximum", ops.maximum, (f64, v4), {"out": ro}, ValueError, "read-only"),
    # ---- add_backward
    ("add_backward", ops.add_backward, (f64, (3, 4), (5,)), {}, ValueError, "add_backward: operands could not be broadcast"),
    ("add_backward", ops.add_backward, (f64, (3, 4), (3,)), {}, ValueError, "(3, 4) and (3,)"),
    ("add_backward", ops.add_backward, (f64, (2, 4), (4,)), {}, ValueError, "dz.shape (3, 4)"),
    ("add_backward", ops.add_backward, (f64, (3, -4), (4,)), {}, ValueError, "negative"),
    ("add_backward", ops.add_backward, (f64, "34", (4,)), {}, TypeError, "x_shape"),
    ("add_backward", ops.add_backward, (f64, (3, 4), None), {}, TypeError, "y_shape"),
    ("add_backward", ops.add_backward, (f64, (3.0, 4), (4,)), {}, TypeError, "x_shape"),
    ("add_backward", ops.add_backward, (None, (3, 4), (4,)), {}, TypeError, "add_backward: dz"),
    # ---- maximum_backward
    ("maximum_backward", ops.maximum_backward, (np.ones((3, 5)), f64, v4), {}, ValueError, "dz.shape (3, 5)"),
    ("maximum_backward", ops.maximum_backward, (f64, f64, np.ones(3)), {}, ValueError, "(3, 4) and (3,)"),
    ("maximum_backward", ops.maximum_backward, (f64, None, v4), {}, TypeError, "maximum_backward: x"),
    ("maximum_backward", ops.maximum_backward, (cplx, f64, v4), {}, TypeError, "complex"),
    # ---- sum_to_shape
    ("sum_to_shape", ops.sum_to_shape, (f64, (5,)), {}, ValueError, "(5,) does not broadcast to dz.shape (3, 4)"),
    ("sum_to_shape", ops.sum_to_shape, (f64, (2, 3, 4)), {}, ValueError, "does not broadcast"),
    ("sum_to_shape", ops.sum_to_shape, (f64, "4"), {}, TypeError, "shape"),
    ("sum_to_shape", ops.sum_to_shape, (f64, None), {}, TypeError, "shape"),
    ("sum_to_shape", ops.sum_to_shape, (f64, (-4,)), {}, ValueError, "negative"),
    ("sum_to_shape", ops.sum_to_shape, (f64, (4,)), {"out": np.empty(5)}, ValueError, "shape"),
    ("sum_to_shape", ops.sum_to_shape, (f64, (4,)), {"out": np.empty(4, np.float32)}, TypeError, "dtype"),
    # ---- dot
    ("dot", ops.dot, (f64, np.ones((5, 2))), {}, ValueError, "dot: shapes (3, 4) and (5, 2) not aligned: x.shape[-1]=4 != y.shape[-2]=5"),
    ("dot", ops.dot, (f64, np.ones(3)), {}, ValueError, "x.shape[-1]=4 != y.shape[0]=3"),
    ("dot", ops.dot, (np.ones((2, 3, 4)), np.ones((5, 4, 2))[:, :3]), {}, ValueError, "not aligned"),
    ("dot", ops.dot, (f64, 2.0), {}, ValueError, "scalar"),
    ("dot", ops.dot, (None, m45), {}, TypeError, "dot: x"),
    ("dot", ops.dot, (f64, "m"), {}, TypeError, "dot: y"),
    ("dot", ops.dot, (cplx, m45), {}, TypeError, "complex"),
    ("dot", ops.dot, (f64, m45), {"out": np.empty((3, 4))}, ValueError, "shape (3, 4)"),
    ("dot", ops.dot, (f64, m45), {"out": np.empty((3, 5), np.float32)}, TypeError, "dtype"),
    ("dot", ops.dot, (f64, m45), {"out": np.ones((5, 3)).T}, ValueError, "C-contiguous"),
    # ---- dot_backward
    ("dot_backward", ops.dot_backward, (np.ones((3, 4)), f64, m45), {}, ValueError, "dz.shape (3, 4)"),
    ("dot_backward", ops.dot_backward, (np.ones((3, 5)), f64, np.ones((3, 5))), {}, ValueError, "not aligned"),
    ("dot_backward", ops.dot_backward, (None, f64, m45), {}, TypeError, "dot_backward: dz"),
    ("dot_backward", ops.dot_backward, (1.0, 1.0, m45), {}, ValueError, "scalar"),
    # ---- matmul
    ("matmul", ops.matmul, (np.ones((3, 4)), np.ones((5, 2))), {}, ValueError, "matmul: shapes (3, 4) and (5, 2) not aligned: a.shape[-1]=4 != b.shape[-2]=5"),
    ("matmul", ops.matmul, (np.ones((2, 3, 4)), np.ones((3, 4, 5))), {}, ValueError, "(2,) and (3,)"),
    ("matmul", ops.matmul, (f64, np.ones(5)), {}, ValueError, "b.shape[0]=5"),
    ("matmul", ops.matmul, (2.0, m45), {}, ValueError, "at least one dimension"),
    ("matmul", ops.matmul, (f64, None), {}, TypeError, "matmul: b"),
    ("matmul", ops.matmul, ("ab", m45), {}, TypeError, "matmul: a"),
    ("matmul", ops.matmul, (f64, m45.astype(np.complex64)), {}, TypeError, "complex64"),
    ("matmul", ops.matmul, (f64, m45), {"out": np.empty((3, 4))}, ValueError, "shape (3, 4)"),
    ("matmul", ops.matmul, (f64, m45), {"out": np.empty((3, 5), np.float32)}, TypeError, "dtype float32"),
    ("matmul", ops.matmul, (f64, m45), {"out": np.ones((3, 5))[::-1]}, ValueError, "C-contiguous"),
    ("matmul", ops.matmul, (f64, m45), {"out": np.ones((3, 5)).__array__()[:0]}, ValueError, "shape"),
    # ---- matmul_backward
    ("matmul_backward", ops.matmul_backward, (np.ones((3, 4)), f64, m45), {}, ValueError, "dc.shape (3, 4)"),
    ("matmul_backward", ops.matmul_backward, (np.ones((3, 5)), f64, np.ones((3, 5))), {}, ValueError, "not aligned"),
    ("matmul_backward", ops.matmul_backward, ("x", f64, m45), {}, TypeError, "matmul_backward: dc"),
    ("matmul_backward", ops.matmul_backward, (np.ones((3, 5)), f64, objs), {}, TypeError, "object"),
    # ---- dense
    ("dense", ops.dense, (f64, np.ones((5, 2))), {}, ValueError, "dense: shapes (3, 4) and (5, 2) not aligned"),
    ("dense", ops.dense, (v4, m45), {}, ValueError, "2-D"),
    ("dense", ops.dense, (f64, m45, np.ones(4)), {}, ValueError, "bias.shape (4,)"),
    ("dense", ops.dense, (f64, m45), {"activation": "tanh"}, ValueError, "activation"),
    ("dense", ops.dense, (f64, m45), {"rows": [0, 3]}, IndexError, "out of range"),
    ("dense", ops.dense, (f64, m45), {"rows": [0.5]}, TypeError, "integers"),
    ("dense", ops.dense, (f64, m45), {"rows": [[0]]}, ValueError, "1-D"),
    ("dense", ops.dense, (None, m45), {}, TypeError, "dense: x"),
    ("dense", ops.dense, (f64, m45, "b"), {}, TypeError, "dense: bias"),
    ("dense", ops.dense, (f64, m45), {"out": np.empty((3, 4))}, ValueError, "shape"),
    ("dense", ops.dense, (f64, m45), {"out": np.empty((3, 5))[:, ::-1]}, ValueError, "C-contiguous"),
    ("dense", ops.dense, (f64, m45), {"out": ro35}, ValueError, "read-only"),
    ("matmul", ops.matmul, (f64, m45), {"out": ro35}, ValueError, "read-only"),
    ("dot", ops.dot, (f64, m45), {"out": ro35}, ValueError, "read-only"),
    # ---- take_rows
    ("take_rows", ops.take_rows, (f64, [3]), {}, IndexError, "take_rows: indices out of range for 3 rows"),
    ("take_rows", ops.take_rows, (f64, [-4]), {}, IndexError, "out of range"),
    ("take_rows", ops.take_rows, (f64, [0.0]), {}, TypeError, "integers"),
    ("take_rows", ops.take_rows, (f64, np.array([True, False, True])), {}, TypeError, "integers"),
    ("take_rows", ops.take_rows, (f64, None), {}, TypeError, "integers"),
    ("take_rows", ops.take_rows, (v4, [0]), {}, ValueError, "2-D"),
    ("take_rows", ops.take_rows, (f64, [0]), {"out": np.empty((2, 4))}, ValueError, "shape"),
    ("take_rows", ops.take_rows, ("abc", [0]), {}, TypeError, "take_rows: x"),
    # ---- thread control and config
    ("set_num_threads", pyblasnn.set_num_threads, (0,), {}, ValueError, "set_num_threads: n must be a positive int or -1, got 0"),
    ("set_num_threads", pyblasnn.set_num_threads, (-2,), {}, ValueError, "got -2"),
    ("set_num_threads", pyblasnn.set_num_threads, (1.5,), {}, TypeError, "float"),
    ("set_num_threads", pyblasnn.set_num_threads, ("2",), {}, TypeError, "str"),
    ("set_num_threads", pyblasnn.set_num_threads, (True,), {}, TypeError, "bool"),
    ("set_num_threads", pyblasnn.set_num_threads, (None,), {}, TypeError, "NoneType"),
    ("get_num_threads", pyblasnn.get_num_threads, (1,), {}, TypeError, "argument"),
    ("show_config", pyblasnn.show_config, (), {"file": "not a file"}, AttributeError, "write"),
]

# ---- subtract / multiply / divide: the same checks as add, each naming its op
for _name in ("subtract", "multiply", "divide"):
    _fn = getattr(ops, _name)
    BAD += [
        (_name, _fn, (f64, np.ones(5)), {}, ValueError,
         f"{_name}: operands could not be broadcast together with shapes (3, 4) and (5,)"),
        (_name, _fn, (np.ones((5, 1, 4)), np.ones((3, 2))), {}, ValueError, "(5, 1, 4) and (3, 2)"),
        (_name, _fn, (f64, None), {}, TypeError, f"{_name}: y"),
        (_name, _fn, ("a", f64), {}, TypeError, f"{_name}: x"),
        (_name, _fn, (None, 2.0), {}, TypeError, f"{_name}: x"),
        (_name, _fn, (1.0, "b"), {}, TypeError, f"{_name}: y"),
        (_name, _fn, (f64, cplx), {}, TypeError, "complex"),
        (_name, _fn, (1j, f64), {}, TypeError, "complex"),
        (_name, _fn, (f64, objs), {}, TypeError, "object"),
        (_name, _fn, (dates, f64), {}, TypeError, "datetime64"),
        (_name, _fn, (f64, v4), {"out": np.empty(4)}, ValueError, f"{_name}: out has shape (4,)"),
        (_name, _fn, (f64, 2.0), {"out": np.empty((3, 4), np.float32)}, TypeError, "dtype float32"),
        (_name, _fn, (f32, 0.5), {"out": np.empty((3, 4))}, TypeError, "dtype float64"),
        (_name, _fn, (f64, v4), {"out": ro}, ValueError, "read-only"),
        (_name, _fn, (2.0, f64), {"out": ro}, ValueError, "read-only"),
        (_name, _fn, (f64, v4), {"out": noncontig_out}, ValueError, "C-contiguous"),
        (_name, _fn, (f64, v4), {"out": [0.0] * 12}, TypeError, "numpy.ndarray"),
    ]

# ---- subtract_backward (takes shapes, as add_backward), multiply_backward, divide_backward
BAD += [
    ("subtract_backward", ops.subtract_backward, (f64, (3, 4), (5,)), {}, ValueError,
     "subtract_backward: operands could not be broadcast"),
    ("subtract_backward", ops.subtract_backward, (f64, (2, 4), (4,)), {}, ValueError, "dz.shape (3, 4)"),
    ("subtract_backward", ops.subtract_backward, (f64, (3, -4), (4,)), {}, ValueError, "negative"),
    ("subtract_backward", ops.subtract_backward, (f64, "34", (4,)), {}, TypeError, "x_shape"),
    ("subtract_backward", ops.subtract_backward, (f64, (3, 4), None), {}, TypeError, "y_shape"),
    ("subtract_backward", ops.subtract_backward, (None, (3, 4), (4,)), {}, TypeError, "subtract_backward: dz"),
    ("subtract_backward", ops.subtract_backward, (cplx, (3, 4), (4,)), {}, TypeError, "complex"),
]
for _name in ("multiply_backward", "divide_backward"):
    _fn = getattr(ops, _name)
    BAD += [
        (_name, _fn, (np.ones((3, 5)), f64, v4), {}, ValueError,
         f"{_name}: dz.shape (3, 5) != broadcast shape (3, 4)"),
        (_name, _fn, (f64, f64, np.ones(3)), {}, ValueError, "(3, 4) and (3,)"),
        (_name, _fn, (f64, None, v4), {}, TypeError, f"{_name}: x"),
        (_name, _fn, (f64, f64, "y"), {}, TypeError, f"{_name}: y"),
        (_name, _fn, (None, f64, v4), {}, TypeError, f"{_name}: dz"),
        (_name, _fn, (cplx, f64, v4), {}, TypeError, "complex"),
        (_name, _fn, (f64, f64, 1j), {}, TypeError, "complex"),
        (_name, _fn, (np.ones(()), 2.0, v4), {}, ValueError, "dz.shape ()"),
    ]

# ---- out= of the backward ops: None or a tuple (dx_out, dy_out) of checked arrays
_OUT_PAIR = {"add_backward": ("dx", "dy"), "subtract_backward": ("dx", "dy"),
             "multiply_backward": ("dx", "dy"), "divide_backward": ("dx", "dy"),
             "maximum_backward": ("dx", "dy"), "matmul_backward": ("da", "db")}
_ro4 = np.ones(4)
_ro4.setflags(write=False)
for _name, (_a, _b) in _OUT_PAIR.items():
    _fn, _args, _ = VALID[_name]
    _good_y = np.empty((4, 5)) if _name == "matmul_backward" else np.empty(4)
    _pair = f"({_a}_out, {_b}_out)"
    BAD += [
        (_name, _fn, _args, {"out": np.empty((3, 4))}, TypeError,
         f"{_name}: out must be None or a tuple {_pair}, got array of dtype float64"),
        (_name, _fn, _args, {"out": [None, None]}, TypeError, f"out must be None or a tuple {_pair}, got list"),
        (_name, _fn, _args, {"out": (None,)}, ValueError, "got a tuple of 1 entries"),
        (_name, _fn, _args, {"out": (None, None, None)}, ValueError, "got a tuple of 3 entries"),
        (_name, _fn, _args, {"out": (np.empty((4, 3)), None)}, ValueError,
         f"{_name}: {_a}_out has shape (4, 3), the result has shape (3, 4)"),
        (_name, _fn, _args, {"out": (None, np.empty(7))}, ValueError, f"{_b}_out has shape (7,)"),
        (_name, _fn, _args, {"out": (np.empty((3, 4), np.float32), None)}, TypeError,
         f"{_a}_out has dtype float32, the result has dtype float64"),
        (_name, _fn, _args, {"out": (ro, None)}, ValueError, f"{_a}_out is read-only"),
        (_name, _fn, _args, {"out": (None, np.ones((5, 4)).T if _name == "matmul_backward" else _ro4)},
         ValueError, f"{_b}_out"),
        (_name, _fn, _args, {"out": (noncontig_out, None)}, ValueError, f"{_a}_out must be C-contiguous"),
        (_name, _fn, _args, {"out": ([0.0] * 12, None)}, TypeError, f"{_a}_out must be a numpy.ndarray"),
        (_name, _fn, _args, {"out": (None, _good_y.tolist())}, TypeError, f"{_b}_out must be a numpy.ndarray"),
    ]
_shared = np.empty(40)
BAD += [
    ("add_backward", ops.add_backward, (f64, (3, 4), (3, 4)), {"out": (_shared[:12].reshape(3, 4), _shared[8:20].reshape(3, 4))},
     ValueError, "add_backward: dx_out and dy_out overlap in memory"),
    ("multiply_backward", ops.multiply_backward, (f64, f64, f64), {"out": (ro.copy(),) * 2},
     ValueError, "dx_out and dy_out overlap"),
    ("matmul_backward", ops.matmul_backward, (np.ones((4, 4)), np.ones((4, 4)), np.ones((4, 4))),
     {"out": (_shared[:16].reshape(4, 4), _shared[15:31].reshape(4, 4))}, ValueError, "da_out and db_out overlap"),
    ("add_backward", ops.add_backward, (f32, (3, 4), (4,)), {"out": (None, np.empty(4))}, TypeError,
     "dy_out has dtype float64, the result has dtype float32"),
]

# every op rejects bad n_threads the same way
for _name, (_fn, _args, _kw) in VALID.items():
    BAD += [
        (_name, _fn, _args, dict(_kw, n_threads=0), ValueError, f"{_name}: n_threads must be a positive int or -1"),
        (_name, _fn, _args, dict(_kw, n_threads=-2), ValueError, "got -2"),
        (_name, _fn, _args, dict(_kw, n_threads=-100), ValueError, "got -100"),
        (_name, _fn, _args, dict(_kw, n_threads=1.0), TypeError, f"{_name}: n_threads must be an int or None"),
        (_name, _fn, _args, dict(_kw, n_threads="2"), TypeError, "got str"),
        (_name, _fn, _args, dict(_kw, n_threads=True), TypeError, "got bool"),
    ]


def test_every_public_function_has_bad_inputs():
    public = set(ops.__all__) | {"get_num_threads", "set_num_threads", "show_config"}
    assert public <= {row[0] for row in BAD}
    assert set(VALID) == set(ops.__all__)


@pytest.mark.parametrize("name,fn,args,kwargs,exc,fragment", BAD,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(BAD)])
def test_bad_input(name, fn, args, kwargs, exc, fragment):
    snapshot = [a.copy() for a in args if isinstance(a, np.ndarray)]
    out = kwargs.get("out")
    out_before = out.copy() if isinstance(out, np.ndarray) else None
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert fragment in str(info.value), f"message {str(info.value)!r} lacks {fragment!r}"
    # a rejected call leaves its inputs and out untouched
    for before, a in zip(snapshot, [a for a in args if isinstance(a, np.ndarray)]):
        np.testing.assert_array_equal(a, before)
    if out_before is not None:
        np.testing.assert_array_equal(out, out_before)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_baseline_calls_succeed(name):
    """The calls the n_threads rows mutate are themselves valid (so the table can fail)."""
    fn, args, kw = VALID[name]
    fn(*args, **kw)
    fn(*args, n_threads=1, **kw)
    fn(*args, n_threads=-1, **kw)


# ---- pyblasnn.fused: the fused loss / softmax / optimizer kernels -------------------------
from pyblasnn import autodiff as ad  # noqa: E402
from pyblasnn import fused  # noqa: E402

_logits = np.ones((4, 3), np.float32)
_a4, _b3 = np.zeros((4, 5), np.float32), np.ones((5, 3), np.float32)   # matmul_sgd_update
_w43, _v43, _w33 = (np.zeros(s, np.float32) for s in ((4, 3), (4, 3), (3, 3)))
_labels = np.array([0, 1, 2, 0])
_w5 = np.ones(5)

FUSED_BAD = [
    ("sparse_softmax_cross_entropy", fused.sparse_softmax_cross_entropy, (None, _labels), {},
     TypeError, "sparse_softmax_cross_entropy: logits must be a numpy.ndarray, got NoneType"),
    ("sparse_softmax_cross_entropy", fused.sparse_softmax_cross_entropy,
     (_logits, np.array([0, 1, 5, 0])), {}, ValueError, "label 5 out of range for 3 classes"),
    ("sparse_softmax_cross_entropy", fused.sparse_softmax_cross_entropy, (_logits, _labels[:3]),
     {}, ValueError, "got 3 labels for 4 samples"),
    ("sparse_cross_entropy", fused.sparse_cross_entropy, (None, _labels), {}, TypeError,
     "sparse_cross_entropy: probs must be a numpy.ndarray"),
    ("sparse_cross_entropy", fused.sparse_cross_entropy, (_logits, _labels[:3]), {}, ValueError,
     "sparse_cross_entropy: got 3 labels for 4 samples"),
    ("softmax", fused.softmax, (None,), {}, TypeError, "softmax: x must be a numpy.ndarray"),
    ("softmax", fused.softmax, (np.ones(3),), {}, ValueError,
     "softmax: x must be 2-D (samples, classes), got shape (3,)"),
    ("softmax_backward", fused.softmax_backward, (None, _logits), {}, TypeError,
     "softmax_backward: dy must be a numpy.ndarray"),
    ("softmax_backward", fused.softmax_backward, (np.ones((4, 3)), _logits), {}, TypeError,
     "softmax_backward: dy and y dtypes differ: float64 != float32"),
    ("sgd_update", fused.sgd_update, (None, np.ones(5), 0.1), {}, TypeError,
     "sgd_update: param must be a numpy.ndarray"),
    ("sgd_update", fused.sgd_update, (_w5, np.ones(4), 0.1), {}, ValueError,
     "sgd_update: grad shape (4,) != param shape (5,)"),
    ("sgd_update", fused.sgd_update, (_w5, np.ones(5), -0.1), {}, ValueError,
     "sgd_update: learning_rate must be >= 0, got -0.1"),
    ("sgd_momentum_update", fused.sgd_momentum_update, (_w5, np.zeros(5), np.ones(5), 0.1, 1.5),
     {}, ValueError, "sgd_momentum_update: momentum must be in [0, 1), got 1.5"),
    ("sgd_momentum_update", fused.sgd_momentum_update, (_w5, np.zeros(4), np.ones(5), 0.1, 0.5),
     {}, ValueError, "sgd_momentum_update: velocity shape (4,) != param shape (5,)"),
    ("rmsprop_update", fused.rmsprop_update, (_w5, np.zeros(5), np.ones(5), 0.1, 1.5, 1e-7), {},
     ValueError, "rmsprop_update: rho must be in [0, 1), got 1.5"),
    ("rmsprop_update", fused.rmsprop_update, (_w5, np.zeros(4), np.ones(5), 0.1, 0.9, 1e-7), {},
     ValueError, "rmsprop_update: accumulator shape (4,) != param shape (5,)"),
    ("rmsprop_update", fused.rmsprop_update, (_w5, np.zeros(5), np.ones(5), 0.1, 0.9, -1.0), {},
     ValueError, "rmsprop_update: epsilon must be > 0, got -1.0"),
    *[("matmul_sgd_update", fused.matmul_sgd_update, args, kwargs, exc,
       f"matmul_sgd_update: {fragment}") for args, kwargs, exc, fragment in [
        ((_a4, _b3, _w43, 0.1, 0.9), {}, ValueError, "momentum=0.9 > 0 needs a velocity"),
        ((_a4, _b3, _w43, -1.0), {}, ValueError, "learning_rate must be >= 0, got -1.0"),
        ((_a4, _b3, _w43, 0.1, 1.5, _v43), {}, ValueError, "momentum must be in [0, 1)"),
        ((_a4.tolist(), _b3, _w43, 0.1), {}, TypeError, "a must be a numpy.ndarray, got list"),
        ((_a4, _b3.astype(np.float64), _w43, 0.1), {}, TypeError,
         "b must have param's dtype float32, got float64"),
        ((_a4[0], _b3, _w43, 0.1), {}, ValueError, "a must be 2-D, got shape (5,)"),
        ((_a4, _b3, np.zeros((4, 2), np.float32), 0.1), {}, ValueError,
         "a (4, 5) @ b (5, 3) does not give param's shape (4, 2)"),
        ((_a4, _b3, np.zeros((3, 4), np.float32).T, 0.1), {}, ValueError,
         "param must be C-contiguous"),
        ((_a4, _b3, [[0.0]], 0.1), {}, TypeError, "param must be a numpy.ndarray, got list"),
        ((_a4, _b3, _w43, 0.1, 0.9, _v43[:2]), {}, ValueError,
         "velocity shape (2, 3) != param shape (4, 3)"),
        ((_a4[:3, :3], _w33, _w33, 0.1), {}, ValueError, "param and b overlap in memory"),
        ((_a4, _b3, _w43, 0.1), {"grad": _w43}, ValueError, "grad and param overlap in memory"),
        ((_a4, _b3, _w43, 0.1, 0.9, _w43), {}, ValueError, "param and velocity overlap"),
    ]],
]


@pytest.mark.parametrize("name,fn,args,kwargs,exc,fragment", FUSED_BAD,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(FUSED_BAD)])
def test_fused_bad_input(name, fn, args, kwargs, exc, fragment):
    test_bad_input(name, fn, args, kwargs, exc, fragment)


# ---- pyblasnn.autodiff: tensors, tape and the TensorFlow-style functions ------------------
_T = ad.constant(np.ones((2, 3), np.float32))
_T4 = ad.constant(np.ones((4,), np.float32))


AUTODIFF_BAD = [
    ("Tensor", lambda: ad.Tensor("abc"), TypeError, "Tensor: expected a number"),
    ("Tensor", lambda: ad.Tensor(object()), TypeError, "Tensor: unsupported dtype object"),
    ("Variable", lambda: ad.Variable(None), TypeError, "Variable: expected a number"),
    ("GradientTape", lambda: ad.GradientTape().watch(np.ones(2)), TypeError,
     "GradientTape.watch: expects pyblasnn tensors or variables, got ndarray"),
    ("constant", lambda: ad.constant("abc"), TypeError, "constant: expected a number"),
    ("constant", lambda: ad.constant([1.0, 2.0, 3.0], shape=(2, 2)), ValueError,
     "cannot reshape array of size 3"),
    ("convert_to_tensor", lambda: ad.convert_to_tensor("abc"), TypeError,
     "convert_to_tensor: expected a number"),
    ("zeros", lambda: ad.zeros((-1, 2)), ValueError, "zeros: shape (-1, 2) has a negative size"),
    ("zeros", lambda: ad.zeros("ab"), TypeError, "zeros: shape must be an int or a sequence"),
    ("ones", lambda: ad.ones((-1, 2)), ValueError, "ones: shape (-1, 2) has a negative size"),
    ("zeros_like", lambda: ad.zeros_like(_T, dtype="nope"), TypeError, "not understood"),
    ("zeros_like", lambda: ad.zeros_like(object()), TypeError,
     "zeros_like: unsupported dtype object"),
    ("zeros_like", lambda: ad.zeros_like(_T, dtype=object), TypeError,
     "zeros_like: unsupported dtype object"),
    ("ones_like", lambda: ad.ones_like(_T, dtype="nope"), TypeError, "not understood"),
    ("ones_like", lambda: ad.ones_like("abc"), TypeError, "ones_like: expected a number"),
    ("add", lambda: ad.add(_T, _T4), ValueError, "add: operands could not be broadcast"),
    ("subtract", lambda: ad.subtract(_T, _T4), ValueError, "subtract: operands could not be"),
    ("multiply", lambda: ad.multiply(_T, _T4), ValueError, "multiply: operands could not be"),
    ("divide", lambda: ad.divide(_T, _T4), ValueError, "divide: operands could not be"),
    ("maximum", lambda: ad.maximum(_T, _T4), ValueError, "maximum: operands could not be"),
    ("negative", lambda: ad.negative("abc"), TypeError, "negative: expected a number"),
    ("negative", lambda: ad.negative(np.array([object()])), TypeError,
     "negative: unsupported dtype object"),
    ("square", lambda: ad.square(object()), TypeError, "square: unsupported dtype object"),
    ("add", lambda: ad.add(_T, "abc"), TypeError, "add: expected a number"),
    ("pow", lambda: ad.pow(_T, _T), TypeError, "pow: the exponent must be a Python number"),
    ("matmul", lambda: ad.matmul(_T, _T), ValueError, "matmul: shapes (2, 3) and (2, 3) not aligned"),
    ("dense", lambda: ad.dense(_T, ad.constant(np.ones((4, 2), np.float32))), ValueError,
     "dense: shapes (2, 3) and (4, 2) not aligned"),
    ("reduce_sum", lambda: ad.reduce_sum(_T, axis=2), ValueError,
     "reduce_sum: axis 2 is out of range for a tensor of rank 2"),
    ("reduce_mean", lambda: ad.reduce_mean(_T, axis=5), ValueError,
     "reduce_mean: axis 5 is out of range"),
    ("reshape", lambda: ad.reshape(_T, (4, 2)), ValueError,
     "reshape: cannot reshape array of size 6 into shape (4,2)"),
    ("transpose", lambda: ad.transpose(_T, (0, 0)), ValueError, "repeated axis"),
    ("cast", lambda: ad.cast(_T, "notadtype"), TypeError, "not understood"),
    ("cast", lambda: ad.cast(_T, object), TypeError, "cast: unsupported dtype object"),
    ("argmax", lambda: ad.argmax(_T, axis=3), ValueError, "axis 3 is out of bounds"),
    ("argmax", lambda: ad.argmax("abc"), TypeError, "argmax: expected a number"),
    ("relu", lambda: ad.relu(object()), TypeError, "relu: unsupported dtype object"),
    ("softmax", lambda: ad.softmax(_T, axis=4), ValueError, "axis 4 is out of bounds"),
    ("sigmoid", lambda: ad.sigmoid(object()), TypeError, "sigmoid: unsupported dtype object"),
    ("tanh", lambda: ad.tanh(object()), TypeError, "tanh: unsupported dtype object"),
    ("sparse_categorical_crossentropy", lambda: ad.sparse_categorical_crossentropy([0, 5], _T),
     ValueError, "sparse_categorical_crossentropy: label 5 out of range for 3 classes"),
    ("getitem", lambda: ad.getitem(_T, 7), IndexError, "index 7 is out of bounds"),
    ("getitem", lambda: ad.getitem(_T, (0, 0, 0)), IndexError, "too many indices"),
]


@pytest.mark.parametrize("name,call,exc,fragment", AUTODIFF_BAD,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(AUTODIFF_BAD)])
def test_autodiff_bad_input(name, call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value), f"message {str(info.value)!r} lacks {fragment!r}"


def test_every_public_name_has_a_bad_input_row():
    """Every function and class in ops.__all__, fused.__all__ and autodiff.__all__ (modules
    such as autodiff.random are namespaces, not callables) has a row that must raise."""
    import types
    ops_rows = {row[0] for row in BAD}
    fused_rows = {row[0] for row in FUSED_BAD}
    autodiff_rows = {row[0] for row in AUTODIFF_BAD}
    missing = sorted(set(ops.__all__) - ops_rows)
    missing += sorted(f"fused.{n}" for n in set(fused.__all__) - fused_rows)
    callables = {n for n in ad.__all__ if not isinstance(getattr(ad, n), types.ModuleType)}
    missing += sorted(f"autodiff.{n}" for n in callables - autodiff_rows)
    assert not missing, f"public names without a bad-input row: {missing}"
