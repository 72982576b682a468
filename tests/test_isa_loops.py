"""Runtime ISA dispatch of the element-wise, loss and optimizer loops, and bitwise
reproducibility across ISAs.

Those loops are compiled once per ISA (avx512, avx2, portable; kernels/pbn_variants.h) and
picked per call by the ISA in use, the same choice the GEMM engine makes. Every kernel
below runs under every ISA this CPU has, on 1 and 2 threads, on float32 and float64, on
sizes below and above the parallel threshold and of odd lengths (vector tails), with NaN,
+-inf, -0.0 and subnormals in the data: all results must be the same bits. Each run also
reads which compiled variants ran (each variant records its ISA when it runs), so a switch
that did not reach a module, or a dispatch that picked the wrong copy, fails here instead
of comparing a loop with itself.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import pyblasnn
from pyblasnn import _config, fused, ops, optimizers
from pyblasnn._kernels import elementwise as _ew
from pyblasnn._kernels import linalg as _la
from pyblasnn._kernels import loss as _loss
from pyblasnn._kernels import optim as _optim

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

ISAS = _la.supported_isas()                 # best first; always ends with "portable"
VARIANTS = _ew.variant_isas()               # the ISAs with their own compiled copy
PARALLEL = _config.kernel_constants()["parallel_min_elements"]
DTYPES = [np.float32, np.float64]
DT_IDS = ["f32", "f64"]


def _variant_of(isa):
    """The compiled copy that must run when `isa` is in use."""
    return isa if isa in VARIANTS else "portable"


@pytest.fixture(autouse=True)
def _back_to_the_import_choice():
    backoff = _config.thread_backoff()["enabled"]
    _config.set_thread_backoff(False)       # a 2-thread call must really run on 2 threads
    yield
    _config.set_thread_backoff(backoff)
    _config._simulate_cpu(None)
    _config.set_isa(_la.default_isa())


def _arrays(out):
    out = out if isinstance(out, tuple) else (out,)
    return tuple(np.array(a, copy=True) for a in out)


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _same_bits_but_nan(a, b):
    """Bit for bit, except that a NaN matches any NaN. An operation on two NaNs returns one
    of them (x86: the first operand), and which operand comes first is the compiler's
    choice in each copy of a loop: a sum meeting NaN and the -NaN of inf - inf may end in
    either. IEEE 754 leaves that sign and payload open, as NumPy does."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind != "f":
        return _same_bits(a, b)
    nan = np.isnan(a)
    return bool(np.array_equal(nan, np.isnan(b))
                and np.array_equal(a[~nan].view(np.uint8), b[~nan].view(np.uint8)))


def _same_bits_on_every_isa(run, loops):
    """run(n_threads) under every ISA of this CPU and on 1 and 2 threads: every result the
    same bits (NaN: any NaN), and each run ran `loops` (at least) in the variant of the ISA
    in use and no other variant. Returns the first result."""
    results = {}
    for isa in ISAS:
        _config.set_isa(isa)
        assert set(_config.kernel_isas().values()) == {isa}
        for nt in (1, 2):
            _config.reset_variants()
            results[(isa, nt)] = _arrays(run(nt))
            ran = _config.variants_ran()
            missing = set(loops) - set(ran)
            assert not missing, f"{isa}, {nt} threads: {sorted(missing)} did not run ({ran})"
            wrong = {loop: v for loop, v in ran.items() if v != [_variant_of(isa)]}
            assert not wrong, f"{isa}, {nt} threads: other variants ran: {wrong}"
    (key0, first), *rest = results.items()
    for key, res in rest:
        for i, (a, b) in enumerate(zip(first, res)):
            if not _same_bits_but_nan(a, b):
                diff = np.count_nonzero(a.reshape(-1).view(np.uint8) != b.reshape(-1).view(np.uint8))
                raise AssertionError(f"result {i}: {key} differs from {key0} ({diff} bytes)")
    return first


def _data(rng, shape, dtype, specials=True, positive=False):
    """Normal numbers, and (specials) about 1 in 25 replaced by NaN, +-inf, +-0.0, the
    largest finite number or a subnormal."""
    a = rng.standard_normal(shape).astype(dtype)
    if positive:
        a = np.abs(a) + dtype(0.5)
    if specials and a.size:
        fi = np.finfo(dtype)
        values = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, fi.max, -fi.smallest_subnormal,
                           fi.smallest_subnormal], dtype)
        flat = a.reshape(-1)
        idx = rng.choice(flat.size, size=max(1, flat.size // 25), replace=False)
        flat[idx] = values[rng.integers(0, values.size, idx.size)]
    return a


# sizes: one element, odd tails below the threshold, and an odd size above it
SIZES = [1, 7, 33, 1029, PARALLEL + 37]
# (rows, columns) below and above the threshold, odd widths
MATRICES = [(5, 7), (331, 101)]


def test_every_loop_module_follows_one_switch():
    assert set(_config.kernel_isas()) == {"elementwise", "linalg", "loss", "optim"}
    assert set(_config.kernel_isas().values()) == {_la.default_isa()}
    for isa in ISAS:
        _config.set_isa(isa)
        assert _config.kernel_isas() == dict.fromkeys(_config.kernel_isas(), isa)
        assert _config.config_info()["loop_isa"] == isa
    # one module's own switch reaches that module only (the GEMM tests use linalg's)
    _config.set_isa("portable")
    _la.set_isa(ISAS[0])
    assert _config.kernel_isas()["linalg"] == ISAS[0] and _ew.isa() == "portable"
    assert all(m.variant_isas() == VARIANTS for m in (_ew, _loss, _optim))


def test_bad_isa_names_are_clear_errors():
    for set_isa in (_config.set_isa, _ew.set_isa, _loss.set_isa, _optim.set_isa):
        with pytest.raises(TypeError, match="set_isa: isa must be a str, got int"):
            set_isa(2)
        with pytest.raises(ValueError, match="set_isa: isa must be one of .*got 'sse'"):
            set_isa("sse")
    assert set(_config.kernel_isas().values()) == {_la.default_isa()}


def test_an_isa_the_cpu_lacks_is_refused_by_every_module_simulated():
    """On a CPU without AVX-512 (simulated), forcing it is a ValueError naming what the CPU
    has; every module drops to what it can run and keeps computing."""
    if "avx512" not in ISAS:
        pytest.skip(f"this CPU lacks avx512 (it has: {', '.join(ISAS)})")
    _config.set_isa("avx512")
    _config._simulate_cpu("avx2")
    assert set(_config.kernel_isas().values()) == {"avx2"}
    for set_isa in (_config.set_isa, _ew.set_isa, _loss.set_isa, _optim.set_isa):
        with pytest.raises(ValueError, match=r"set_isa: this CPU \(or its OS\) does not "
                                             r"support 'avx512'; it has: avx2, portable"):
            set_isa("avx512")
    _config.reset_variants()
    x = np.array([-1.0, 2.0, np.nan], np.float32)
    np.testing.assert_array_equal(ops.relu(x), np.maximum(x, 0))
    assert _config.variants_ran() == {"relu": [_variant_of("avx2")]}


def test_sizes_above_the_threshold_really_run_on_two_threads():
    """The 2-thread runs of the tests below split the large sizes over a team, on every ISA
    (otherwise "1 and 2 threads agree" would compare one thread with itself)."""
    if not _config.config_info()["openmp"]:
        pytest.skip("serial build (no OpenMP)")
    n = PARALLEL + 37
    x = np.linspace(-1, 1, n, dtype=np.float32)
    z, labels = x[:n - n % 10].reshape(-1, 10), np.zeros((n - n % 10) // 10, np.intp)
    calls = {"relu": lambda: ops.relu(x, n_threads=2),
             "binary.flat": lambda: ops.add(x, x, n_threads=2),
             "softmax_xent": lambda: fused.sparse_softmax_cross_entropy(z, labels, n_threads=2),
             "optim.update": lambda: fused.sgd_update(x.copy(), x, 0.5, n_threads=2)}
    for isa in ISAS:
        _config.set_isa(isa)
        for path, call in calls.items():
            _config.reset_path_counters()
            call()
            assert _config.path_counters()[path][1] == 1, (isa, path, _config.path_counters())


# ----------------------------------------------------------------------- element-wise
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("n", SIZES)
def test_relu_and_backward_bitwise(dtype, n):
    rng = np.random.default_rng(n)
    x, dy = _data(rng, n, dtype), _data(rng, n, dtype)
    y = _same_bits_on_every_isa(lambda nt: ops.relu(x, n_threads=nt), ["relu"])[0]
    assert _same_bits(y, np.maximum(x, 0))
    dx = _same_bits_on_every_isa(lambda nt: ops.relu_backward(dy, x, n_threads=nt),
                                 ["relu_backward"])[0]
    assert _same_bits(dx, np.where(x > 0, dy, dtype(0)))


BINARY = ["add", "subtract", "multiply", "divide", "maximum"]
NUMPY = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
         "divide": np.divide, "maximum": np.maximum}


def _operands(rng, layout, shape, dtype):
    """x, y for a broadcasting layout of an output of `shape`."""
    rows, cols = shape
    full = _data(rng, shape, dtype)
    if layout == "same":
        return full.reshape(-1), _data(rng, rows * cols, dtype)
    if layout == "row":            # (rows, cols) op (cols,): a bias
        return full, _data(rng, cols, dtype)
    if layout == "column":         # (rows, cols) op (rows, 1)
        return full, _data(rng, (rows, 1), dtype)
    if layout == "outer":          # (1, cols) op (rows, 1)
        return _data(rng, (1, cols), dtype), _data(rng, (rows, 1), dtype)
    if layout == "scalar_right":
        return full, -2.5
    return 0.75, full              # scalar_left


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape", MATRICES, ids=["small", "parallel"])
@pytest.mark.parametrize("layout", ["same", "row", "column", "outer", "scalar_right",
                                    "scalar_left"])
@pytest.mark.parametrize("op", BINARY)
def test_binary_ops_with_broadcasting_bitwise(op, layout, shape, dtype):
    rng = np.random.default_rng(len(op) + 7 * len(layout) + shape[0])
    x, y = _operands(rng, layout, shape, dtype)
    fn = getattr(ops, op)
    z = _same_bits_on_every_isa(lambda nt: fn(x, y, n_threads=nt), [op])[0]
    assert _same_bits(z, NUMPY[op](x, y).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape", MATRICES, ids=["small", "parallel"])
@pytest.mark.parametrize("layout", ["same", "row", "column", "outer"])
@pytest.mark.parametrize("op", BINARY)
def test_binary_backwards_bitwise(op, layout, shape, dtype):
    """Each backward, its gradients reduced to the operands' shapes (column sums for a
    bias, row sums for a column, both for an outer broadcast)."""
    rng = np.random.default_rng(3 * len(op) + len(layout) + shape[1])
    x, y = _operands(rng, layout, shape, dtype)
    z_shape = np.broadcast_shapes(np.shape(x), np.shape(y))
    dz = _data(rng, z_shape, dtype)
    backward = getattr(ops, op + "_backward")
    if op in ("add", "subtract"):
        def run(nt):
            return backward(dz, np.shape(x), np.shape(y), n_threads=nt)
    else:
        def run(nt):
            return backward(dz, x, y, n_threads=nt)
    # the op's own loop (add passes dz through; subtract negates it) and the reductions
    main = {"add": [], "subtract": ["multiply"], "multiply": ["multiply"],
            "divide": ["divide", "multiply"], "maximum": ["maximum_backward"]}[op]
    reduce = {"same": [], "row": ["add"], "column": ["sum"], "outer": ["add", "sum"]}[layout]
    dx, dy = _same_bits_on_every_isa(run, main + reduce)
    assert dx.shape == np.shape(x) and dy.shape == np.shape(y)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shapes", [((331, 101), (101,)), ((5, 7), (7,)), ((331, 101), (331, 1)),
                                    ((9, 331, 13), (331, 1)), ((1029,), (1,)),
                                    ((PARALLEL + 37,), ())],
                         ids=["columns", "columns-small", "rows", "3d", "all-small", "all"])
def test_sum_to_shape_bitwise(shapes, dtype):
    """Column sums (the bias gradient: add loops over rows) and row / whole sums (the fixed
    order sum loop)."""
    full, shape = shapes
    rng = np.random.default_rng(len(full) + full[0])
    dz = _data(rng, full, dtype)
    loop = "add" if len(shape) == 1 and shape[0] == full[-1] and shape[0] > 1 else "sum"
    s = _same_bits_on_every_isa(lambda nt: ops.sum_to_shape(dz, shape, n_threads=nt), [loop])[0]
    assert s.shape == shape


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("rows", [7, 4000])
def test_take_rows_bitwise(rows, dtype):
    """A gather is a copy: no arithmetic and no per-ISA loop, the same bits everywhere."""
    rng = np.random.default_rng(rows)
    x = _data(rng, (rows, 13), dtype)
    idx = rng.integers(0, rows, rows).astype(np.intp)
    out = _same_bits_on_every_isa(lambda nt: ops.take_rows(x, idx, n_threads=nt), [])[0]
    assert _same_bits(out, x[idx])


# ------------------------------------------------------------------------------- loss
LOGITS = [(128, 10), (3301, 10), (131, 37), (1001, 37)]   # narrow / wide rows, both sides of
LOGIT_IDS = ["mlp", "narrow-parallel", "wide", "wide-parallel"]   # the parallel threshold


def _logits(rng, shape, dtype):
    z = (3 * rng.standard_normal(shape)).astype(dtype)
    z[1, :] = np.nan                       # a row of NaN, a row with one, rows with +-inf
    z[2, 3] = np.nan
    z[3, 0], z[4, 1], z[5, :2] = np.inf, -np.inf, -0.0
    return z


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape", LOGITS, ids=LOGIT_IDS)
def test_softmax_cross_entropy_forward_backward_bitwise(shape, dtype):
    rng = np.random.default_rng(shape[0] + shape[1])
    z = _logits(rng, shape, dtype)
    labels = rng.integers(0, shape[1], shape[0]).astype(np.intp)

    def run(nt):
        dz, rows = np.empty_like(z), np.empty(shape[0])
        loss, correct = fused.sparse_softmax_cross_entropy(z, labels, out=dz, row_loss=rows,
                                                           n_threads=nt)
        return np.float64(loss), np.intp(correct), dz, rows

    def forward(nt):
        return _arrays(fused.sparse_softmax_cross_entropy(z, labels, n_threads=nt))

    loops = ["softmax_xent", "exp", "log1p"]
    loss, _, dz, rows = _same_bits_on_every_isa(run, loops)
    finite = np.isfinite(z).all(axis=1)
    assert np.isfinite(rows[finite]).all() and np.isfinite(dz[finite]).all()
    assert _same_bits(_same_bits_on_every_isa(forward, loops)[0], loss)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape", LOGITS, ids=LOGIT_IDS)
def test_cross_entropy_of_probabilities_bitwise(shape, dtype):
    rng = np.random.default_rng(shape[0] * shape[1])
    p = rng.random(shape).astype(dtype)
    p /= p.sum(axis=1, keepdims=True)
    p[1, :], p[2, 0], p[3, 1], p[4, 2] = np.nan, 0.0, 1.0, -0.0     # NaN, both clip ends
    labels = rng.integers(0, shape[1], shape[0]).astype(np.intp)
    labels[2:5] = [0, 1, 2]

    def run(nt):
        dp, rows = np.empty_like(p), np.empty(shape[0])
        loss, correct = fused.sparse_cross_entropy(p, labels, out=dp, row_loss=rows, n_threads=nt)
        return np.float64(loss), np.intp(correct), dp, rows

    _same_bits_on_every_isa(run, ["xent_probs"])


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape", LOGITS, ids=LOGIT_IDS)
def test_softmax_and_backward_bitwise(shape, dtype):
    rng = np.random.default_rng(shape[0] - shape[1])
    x = _logits(rng, shape, dtype)
    y = _same_bits_on_every_isa(lambda nt: fused.softmax(x, n_threads=nt), ["softmax"])[0]
    dy = _data(rng, shape, dtype)
    _same_bits_on_every_isa(lambda nt: fused.softmax_backward(dy, y, n_threads=nt),
                            ["softmax_backward"])


def test_exp_and_log1p_hooks_follow_the_isa():
    x = np.linspace(-110, 95, 4099, dtype=np.float32)
    x[::97] = np.nan
    def run_exp(nt):
        out = np.empty_like(x)
        _loss.exp_float32(x, out)
        return out

    def run_log1p(nt):
        t = np.abs(x)
        out = np.empty_like(t)
        _loss.log1p_float32(t, out)
        return out

    _same_bits_on_every_isa(run_exp, ["exp"])
    _same_bits_on_every_isa(run_log1p, ["log1p"])


# -------------------------------------------------------------------------- optimizers
def _update_runner(rule, n, dtype):
    rng = np.random.default_rng(n + len(rule))
    w0 = _data(rng, n, dtype, specials=False)
    grads = [_data(rng, n, dtype) for _ in range(3)]
    s0 = _data(rng, n, dtype, specials=False, positive=True)

    def run(nt):
        w, s1, s2 = w0.copy(), s0.copy(), s0.copy()
        for g in grads:                    # three steps, so the state carries over
            if rule == "sgd":
                fused.sgd_update(w, g, 0.01, n_threads=nt)
            elif rule in ("momentum", "nesterov"):
                fused.sgd_momentum_update(w, s1, g, 0.01, 0.9, nesterov=rule == "nesterov",
                                          n_threads=nt)
            elif rule == "rmsprop":
                fused.rmsprop_update(w, s1, g, 0.001, 0.9, 1e-7, n_threads=nt)
            else:
                fused.rmsprop_update(w, s1, g, 0.001, 0.9, 1e-7, momentum=0.5,
                                     momentum_buffer=s2, n_threads=nt)
        return w, s1, s2
    return run


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("n", SIZES + [407_050])
@pytest.mark.parametrize("rule", ["sgd", "momentum", "nesterov", "rmsprop", "rmsprop_momentum"])
def test_optimizer_updates_bitwise(rule, n, dtype):
    _same_bits_on_every_isa(_update_runner(rule, n, dtype), [rule])


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_adam_bitwise(dtype):
    """Adam's step is NumPy's in-place arithmetic (no pyblasnn loop, so nothing for the ISA
    switch to pick); it must still give the same bits whatever the switch says."""
    rng = np.random.default_rng(5)
    w0 = [_data(rng, (PARALLEL + 37,), dtype, specials=False), _data(rng, (7, 3), dtype)]
    grads = [[_data(rng, w.shape, dtype) for w in w0] for _ in range(3)]

    def run(nt):
        ws = [w.copy() for w in w0]
        opt = optimizers.Adam()
        for g in grads:
            opt.apply(ws, g)
        return tuple(ws)

    _same_bits_on_every_isa(run, [])


# --------------------------------------------------------------- PYBLASNN_ISA at import
_CHILD = """
import numpy as np, pyblasnn
from pyblasnn import _config, fused
_config.reset_variants()
x = np.linspace(-3, 3, 40001, dtype=np.float32)
pyblasnn.relu(pyblasnn.ops.add(x, 1.0))
fused.sparse_softmax_cross_entropy(x[:40000].reshape(4000, 10), np.zeros(4000, np.intp))
fused.sgd_momentum_update(x, np.zeros_like(x), x.copy(), 0.01, 0.9)
print(sorted(set(_config.kernel_isas().values())))
print(sorted({i for v in _config.variants_ran().values() for i in v}))
pyblasnn.show_config()
"""


def _run_with_isa_env(value, code):
    env = dict(os.environ, PYBLASNN_ISA=value)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("isa", ["portable", "avx2", "avx512"])
def test_env_var_reaches_every_loop_module(isa):
    r = _run_with_isa_env(isa, _CHILD)
    if isa not in ISAS:     # a CPU without it: refused at import, never SIGILL
        assert r.returncode == 1 and f"PYBLASNN_ISA={isa}: this CPU" in r.stderr
        return
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"['{isa}']"
    assert lines[1] == f"['{_variant_of(isa)}']"
    assert f"loop ISA:     {isa} (element-wise, loss and optimizer loops" in r.stdout
    assert f"PYBLASNN_ISA={isa}" in r.stdout


@pytest.mark.parametrize("module", ["elementwise", "loss", "optim"])
def test_env_var_unknown_name_is_a_value_error_at_each_module_import(module):
    r = _run_with_isa_env("avx3", f"from pyblasnn._kernels import {module}")
    assert r.returncode != 0
    assert "ValueError: PYBLASNN_ISA=avx3 is not one of avx512, avx2, portable" in r.stderr


def test_show_config_reports_the_loop_isa(capsys):
    _config.set_isa(ISAS[-1])
    pyblasnn.show_config()
    out = capsys.readouterr().out
    assert f"loop ISA:     {ISAS[-1]} (element-wise, loss and optimizer loops; compiled for " \
           f"{', '.join(VARIANTS)})" in out
    if len(ISAS) > 1:
        _loss.set_isa(ISAS[0])
        assert _config.config_info()["loop_isa"] == (f"element-wise {ISAS[-1]}, loss "
                                                     f"{ISAS[0]}, optimizer {ISAS[-1]}")
