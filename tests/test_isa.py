"""Runtime ISA dispatch of the GEMM engine and bitwise reproducibility across ISAs.

Every GEMM path (packed, unpacked small/skinny, swapped C^T = B^T A^T, n <= 16 dot,
matrix-vector, batched tiny and blocked, zero-skipping sparse, bias / relu / accumulate
epilogues, transposed, strided, negatively strided and gathered operands, edge sizes
around every ISA's register tile and the shared KC) runs under avx512 and avx2 on 1 and 2
threads, and all four results must be the same bits: each C element is summed in the same
order with FMA on both ISAs. The portable path only has to match NumPy within rounding.
Forcing an ISA the CPU lacks is a ValueError (simulated on a CPU that has them all).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import pyblasnn
from pyblasnn import _config, ops
from pyblasnn._kernels import linalg as _la

from conftest import eps

SIMD_ISAS = ("avx512", "avx2")
TABLE = _la.block_table()


def _require(*isas):
    have = _la.supported_isas()
    missing = [i for i in isas if i not in have]
    if missing:
        pytest.skip(f"this CPU lacks {', '.join(missing)} (it has: {', '.join(have)})")


@pytest.fixture(autouse=True)
def _restore_isa():
    yield
    _la._simulate_cpu(None)
    _la.set_isa(_la.default_isa())


def _bits(x):
    x = np.ascontiguousarray(x)
    return x.view(np.uint8).reshape(-1) if x.size else x.view(np.uint8)


def _same_bits_everywhere(run, isas=SIMD_ISAS, threads=(1, 2)):
    """run(n_threads) under every (isa, threads); all results bitwise equal. Returns one."""
    _require(*isas)
    results = {}
    for isa in isas:
        _la.set_isa(isa)
        for nt in threads:
            results[(isa, nt)] = np.array(run(nt), copy=True)
    first_key = next(iter(results))
    first = results[first_key]
    for key, r in results.items():
        assert r.shape == first.shape and r.dtype == first.dtype
        if not np.array_equal(_bits(r), _bits(first)):
            diff = np.count_nonzero(r != first)
            raise AssertionError(f"{key} differs from {first_key} in {diff} of {r.size} elements")
    return first


def _gemm_runner(a, b, c0, accumulate=False, bias=None, relu=False, rows=None):
    def run(nt):
        c = c0.copy() if c0.flags.c_contiguous else _strided_copy(c0)
        _la.gemm(a, b, c, accumulate, bias, relu, rows, nt)
        return c
    return run


def _strided_copy(c0):
    """A copy of c0 with c0's (non-contiguous) layout, so strided C stays strided."""
    big = np.zeros((c0.shape[0], 2 * c0.shape[1]), c0.dtype)
    c = big[:, ::2]
    c[...] = c0
    return c


def _check_close(c, a, b, c0=None, accumulate=False, bias=None, relu=False):
    """c matches float64 NumPy within the rounding bound of a k-term FMA sum."""
    dt = c.dtype
    ref = a.astype(np.float64) @ b.astype(np.float64)
    mag = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    if accumulate:
        ref, mag = ref + c0, mag + np.abs(c0)
    if bias is not None:
        ref, mag = ref + bias, mag + np.abs(bias)
    if relu:
        ref = np.maximum(ref, 0)
    bound = 2 * (a.shape[1] + 3) * eps(dt) * mag + 1e-30
    assert np.all(np.abs(c - ref) <= bound)


def _randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


DTYPES = [np.float32, np.float64]
DT_IDS = ["f32", "f64"]


def _edge_sizes(key):
    """Sizes around every ISA's tile / block edges (read from the engine's table)."""
    sizes = set()
    for isa in TABLE.values():
        for b in isa.values():
            v = b[key]
            sizes |= {v - 1, v, v + 1}
    return sorted(s for s in sizes if s > 0)


# ------------------------------------------------------------------ the table itself
def test_block_table_shares_kc_and_matches_block_sizes():
    assert set(TABLE) == {"avx512", "avx2", "portable"}
    for dt in ("float32", "float64"):
        assert len({TABLE[i][dt]["KC"] for i in TABLE}) == 1, "KC differs between ISAs"
        for i in TABLE:
            b = TABLE[i][dt]
            assert b["MC"] % b["MR"] == 0 and b["NC"] % b["NR"] == 0
    assert _la.block_sizes() == TABLE[_la.isa()]
    assert _config.kernel_constants()["gemm_block_sizes"] == TABLE[_la.isa()]


# ------------------------------------------------------------------ bitwise: the paths
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("mnk", [(300, 200, 900), (145, 129, 385), (1, 1, 1), (2, 300, 3),
                                 (64, 65, 64), (200, 513, 100)])
def test_packed_path_bitwise(dtype, mnk):
    m, n, k = mnk
    rng = np.random.default_rng(m + 7 * n + 13 * k)
    a, b = _randn(rng, (m, k), dtype), _randn(rng, (k, n), dtype)
    c = _same_bits_everywhere(_gemm_runner(a, b, np.zeros((m, n), dtype)))
    _check_close(c, a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("mnk", [(128, 64, 784), (100, 40, 500), (12, 500, 300), (13, 33, 5),
                                 (7, 17, 257), (37, 64, 1000)])
def test_unpacked_small_skinny_bitwise(dtype, mnk):
    m, n, k = mnk
    rng = np.random.default_rng(m * n + k)
    a, b = _randn(rng, (m, k), dtype), _randn(rng, (k, n), dtype)
    _la.reset_path_counters()
    c = _same_bits_everywhere(_gemm_runner(a, b, np.zeros((m, n), dtype)))
    assert _la.path_counters().get("gemm.packed", (0, 0))[0] > 0
    _check_close(c, a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("n", [1, 3, 10, 15, 16])
def test_small_n_paths_bitwise(dtype, n):
    """n <= 16: the f32 dot path (A rows contiguous, k >= 64), the swapped path (A = x.T),
    and the broadcast kernel otherwise."""
    rng = np.random.default_rng(n)
    m, k = 128, 512
    a, b = _randn(rng, (m, k), dtype), _randn(rng, (k, n), dtype)
    bias = _randn(rng, n, dtype)
    c0 = _randn(rng, (m, n), dtype)
    c = _same_bits_everywhere(_gemm_runner(a, b, c0, True, bias, True))
    _check_close(c, a, b, c0, True, bias, True)
    at = np.ascontiguousarray(a.T).T                                     # unit row stride
    _la.reset_path_counters()
    c = _same_bits_everywhere(_gemm_runner(at, b, np.zeros((m, n), dtype)))
    if 1 < n < 16:                                                       # n < 16 only
        assert _la.path_counters().get("gemm.swap", (0, 0))[0] > 0
    _check_close(c, a, b)
    bt = np.ascontiguousarray(b.T).T                                     # B = W.T
    c = _same_bits_everywhere(_gemm_runner(a, bt, np.zeros((m, n), dtype), bias=bias))
    _check_close(c, a, b, bias=bias)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape", [(1, 513, 300), (300, 1, 513), (1, 1, 100003), (700, 1, 200)])
def test_gemv_bitwise(dtype, shape):
    m, n, k = shape
    rng = np.random.default_rng(m + n + k)
    a, b = _randn(rng, (m, k), dtype), _randn(rng, (k, n), dtype)
    _la.reset_path_counters()
    c = _same_bits_everywhere(_gemm_runner(a, b, np.zeros((m, n), dtype)))
    assert _la.path_counters().get("gemm.gemv", (0, 0))[0] > 0
    _check_close(c, a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("mnk", [(16, 16, 16), (32, 32, 32), (64, 64, 64), (8, 8, 8), (5, 16, 7),
                                 (20, 20, 20), (70, 40, 65)])
def test_batched_bitwise(dtype, mnk):
    m, n, k = mnk
    rng = np.random.default_rng(m * 3 + n + k)
    a, b = _randn(rng, (37, m, k), dtype), _randn(rng, (37, k, n), dtype)
    c = _same_bits_everywhere(lambda nt: ops.matmul(a, b, n_threads=nt))
    ref = np.einsum("bik,bkj->bij", a.astype(np.float64), b.astype(np.float64))
    mag = np.einsum("bik,bkj->bij", np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    assert np.all(np.abs(c - ref) <= 2 * (k + 2) * eps(dtype) * mag + 1e-30)
    at = np.swapaxes(np.ascontiguousarray(np.swapaxes(a, 1, 2)), 1, 2)   # transposed A
    _same_bits_everywhere(lambda nt: ops.matmul(at, b[:1], n_threads=nt))


@pytest.mark.parametrize("mkn", [(128, 784, 512), (33, 100, 40), (300, 784, 64)])
def test_sparse_path_bitwise(mkn):
    m, k, n = mkn
    rng = np.random.default_rng(m + k + n)
    a = _randn(rng, (m, k), np.float32)
    a[rng.random((m, k)) >= 0.2] = 0.0
    b = _randn(rng, (k, n), np.float32)
    bias = _randn(rng, n, np.float32)
    before = _la.sparse_products()
    c = _same_bits_everywhere(_gemm_runner(a, b, np.zeros((m, n), np.float32), bias=bias, relu=True))
    if _la.best_isa() != "portable":
        assert _la.sparse_products() > before
    _check_close(c, a, b, bias=bias, relu=True)
    rows = rng.permutation(m)[: max(1, m // 2)].astype(np.intp)
    _same_bits_everywhere(_gemm_runner(a, b, np.zeros((len(rows), n), np.float32), rows=rows))
    _same_bits_everywhere(_gemm_runner(a.T, rng.standard_normal((m, n)).astype(np.float32),
                                       np.zeros((k, n), np.float32)))


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("mnk", [(97, 131, 800), (13, 45, 769), (128, 10, 512), (6, 200, 1)])
def test_epilogue_bitwise(dtype, mnk):
    """bias, relu and accumulate, alone and together, and k spanning several KC slices."""
    m, n, k = mnk
    rng = np.random.default_rng(m + n * 11 + k)
    a, b = _randn(rng, (m, k), dtype), _randn(rng, (k, n), dtype)
    bias, c0 = _randn(rng, n, dtype), _randn(rng, (m, n), dtype)
    for acc, bi, relu in [(False, bias, False), (False, None, True), (True, None, False),
                          (True, bias, True)]:
        c = _same_bits_everywhere(_gemm_runner(a, b, c0, acc, bi, relu))
        _check_close(c, a, b, c0, acc, bi, relu)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_layouts_bitwise(dtype):
    """Transposed, Fortran-ordered, step-2, negatively strided, gathered and strided C."""
    rng = np.random.default_rng(5)
    m, n, k = 75, 90, 400
    base_a, base_b = _randn(rng, (2 * m, 2 * k), dtype), _randn(rng, (2 * k, 2 * n), dtype)
    layouts_a = {"c": base_a[:m, :k].copy(), "t": np.ascontiguousarray(base_a[:m, :k].T).T,
                 "step": base_a[::2, ::2][:m, :k], "neg": base_a[::-2, ::-2][:m, :k]}
    layouts_b = {"c": base_b[:k, :n].copy(), "t": np.ascontiguousarray(base_b[:k, :n].T).T,
                 "step": base_b[::2, ::2][:k, :n], "neg": base_b[::-2, ::-2][:k, :n]}
    for la_, a in layouts_a.items():
        for lb, b in layouts_b.items():
            c = _same_bits_everywhere(_gemm_runner(a, b, np.zeros((m, n), dtype)))
            _check_close(c, a, b)
    a, b = layouts_a["c"], layouts_b["c"]
    c = _same_bits_everywhere(_gemm_runner(a, b, _strided_copy(np.zeros((m, n), dtype)), relu=True))
    _check_close(c, a, b, relu=True)
    rows = rng.integers(0, m, size=2 * m).astype(np.intp)
    c = _same_bits_everywhere(_gemm_runner(a, b, np.zeros((2 * m, n), dtype), rows=rows))
    _check_close(c, a[rows], b)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_edge_sizes_bitwise(dtype):
    """Sizes around every ISA's MR, NR, MC and the shared KC, in one sweep."""
    rng = np.random.default_rng(17)
    kc = TABLE["avx2"][np.dtype(dtype).name]["KC"]
    ms = sorted(set(_edge_sizes("MR")) | {1, 145})
    ns = sorted(set(_edge_sizes("NR")) | {1, 65})
    ks = [1, kc - 1, kc, kc + 1, 2 * kc + 1]
    for i, m in enumerate(ms):
        for j, n in enumerate(ns):
            k = ks[(i + j) % len(ks)]
            a, b = _randn(rng, (m, k), dtype), _randn(rng, (k, n), dtype)
            bias = _randn(rng, n, dtype)
            c = _same_bits_everywhere(_gemm_runner(a, b, np.zeros((m, n), dtype), bias=bias))
            _check_close(c, a, b, bias=bias)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_special_values_bitwise(dtype):
    """NaN, inf and -0.0 come out the same on both ISAs (relu keeps NaN, -0.0 stays)."""
    rng = np.random.default_rng(3)
    m, n, k = 40, 70, 90
    a, b = _randn(rng, (m, k), dtype), _randn(rng, (k, n), dtype)
    a[3, 5], a[7, :] = np.nan, 0.0
    b[2, 9] = np.inf
    b[:, 11] = -0.0
    with np.errstate(invalid="ignore"):
        c = _same_bits_everywhere(_gemm_runner(a, b, np.zeros((m, n), dtype), relu=True))
    assert np.all(np.isnan(c[3]))


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_random_shapes_bitwise(dtype):
    rng = np.random.default_rng(99)
    for _ in range(25):
        m, n, k = (int(x) for x in rng.integers(1, 300, size=3))
        a = _randn(rng, (k, m), dtype).T if rng.random() < 0.5 else _randn(rng, (m, k), dtype)
        b = _randn(rng, (n, k), dtype).T if rng.random() < 0.5 else _randn(rng, (k, n), dtype)
        c = _same_bits_everywhere(_gemm_runner(a, b, np.zeros((m, n), dtype)))
        _check_close(c, a, b)


def test_training_step_products_bitwise():
    """The MLP's products through the public ops: forward with bias + relu, both backwards."""
    rng = np.random.default_rng(8)
    x = _randn(rng, (128, 784), np.float32)
    x[rng.random(x.shape) < 0.8] = 0.0
    w1, b1 = _randn(rng, (784, 512), np.float32) * 0.05, _randn(rng, 512, np.float32)
    w2 = _randn(rng, (512, 10), np.float32) * 0.05
    h = _same_bits_everywhere(lambda nt: ops.matmul(x, w1, n_threads=nt))
    dy = _randn(rng, (128, 10), np.float32)
    _same_bits_everywhere(lambda nt: ops.matmul(h, w2, n_threads=nt))
    _same_bits_everywhere(lambda nt: np.concatenate(
        [g.ravel() for g in ops.matmul_backward(dy, h, w2, n_threads=nt)]))
    dh = _randn(rng, (128, 512), np.float32)
    _same_bits_everywhere(lambda nt: np.concatenate(
        [g.ravel() for g in ops.matmul_backward(dh, x, w1, n_threads=nt)]))
    assert b1.shape == (512,)


# ------------------------------------------------------------------ portable vs NumPy
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("mnk", [(1, 1, 1), (13, 33, 385), (145, 65, 257), (128, 10, 512),
                                 (200, 300, 100)])
def test_portable_matches_numpy(dtype, mnk):
    m, n, k = mnk
    rng = np.random.default_rng(m + n + k)
    a, b = _randn(rng, (m, k), dtype), _randn(rng, (k, n), dtype)
    bias, c0 = _randn(rng, n, dtype), _randn(rng, (m, n), dtype)
    _la.set_isa("portable")
    assert _la.isa() == "portable" and _la.kernel_name() == "portable"
    c = c0.copy()
    _la.gemm(a, b, c, True, bias, True, None, 2)
    _check_close(c, a, b, c0, True, bias, True)
    r = ops.matmul(_randn(rng, (9, m, k), dtype), _randn(rng, (9, k, n), dtype))
    assert r.shape == (9, m, n)


# ------------------------------------------------------------------ the switch itself
def test_set_isa_and_names():
    for isa in _la.supported_isas():
        _la.set_isa(isa)
        assert _la.isa() == isa
        assert _la.kernel_name().startswith({"avx512": "avx512", "avx2": "avx2",
                                             "portable": "portable"}[isa])
        assert _la.block_sizes() == TABLE[isa]
    assert _la.supported_isas()[-1] == "portable"
    assert _la.supported_isas()[0] == _la.best_isa()
    with pytest.raises(ValueError, match="set_isa: isa must be one of .*got 'sse'"):
        _la.set_isa("sse")
    with pytest.raises(TypeError, match="set_isa: isa must be a str, got int"):
        _la.set_isa(2)


def test_force_portable_still_works():
    _la.force_portable(True)
    assert _la.isa() == "portable"
    _la.force_portable(False)
    assert _la.isa() == _la.default_isa()


def test_unsupported_isa_is_a_clear_error_simulated():
    """On a CPU without AVX-512 (simulated), forcing it is a ValueError naming what the CPU
    has; the engine falls back to what it can run and keeps computing."""
    _require("avx512")
    _la.set_isa("avx512")
    _la._simulate_cpu("avx2")
    assert _la.isa() == "avx2" and _la.supported_isas() == ["avx2", "portable"]
    with pytest.raises(ValueError, match=r"does not support 'avx512'; it has: avx2, portable"):
        _la.set_isa("avx512")
    msg = _la._isa_env_error("avx512")
    assert "PYBLASNN_ISA=avx512" in msg and "it has: avx2, portable" in msg
    assert _la._isa_env_error("avx2") is None
    a = np.ones((20, 30), np.float32)
    np.testing.assert_array_equal(ops.matmul(a, a.T), np.full((20, 20), 30, np.float32))
    _la._simulate_cpu("portable")
    with pytest.raises(ValueError, match=r"does not support 'avx2'; it has: portable"):
        _la.set_isa("avx2")
    _la._simulate_cpu(None)
    assert _la.supported_isas()[0] == _la.best_isa()


def _import_with_env(value, code="from pyblasnn._kernels import linalg as la; print(la.isa())"):
    env = dict(os.environ, PYBLASNN_ISA=value)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


def test_env_var_unknown_name_is_a_value_error_at_import():
    r = _import_with_env("avx3")
    assert r.returncode != 0
    assert "ValueError: PYBLASNN_ISA=avx3 is not one of avx512, avx2, portable" in r.stderr
    assert "this CPU has: " + ", ".join(_la.supported_isas()) in r.stderr


@pytest.mark.parametrize("isa", ["avx512", "avx2", "portable"])
def test_env_var_selects_the_isa(isa):
    r = _import_with_env(isa, "import pyblasnn; from pyblasnn._kernels import linalg as la; "
                              "print(la.isa(), la.default_isa()); pyblasnn.show_config()")
    if isa in _la.supported_isas():
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == f"{isa} {isa}"
        assert f"PYBLASNN_ISA={isa}" in r.stdout
    else:   # a CPU without it: refused at import, never SIGILL
        assert r.returncode == 1 and f"PYBLASNN_ISA={isa}: this CPU" in r.stderr


def test_show_config_prints_isa_and_paths(capsys):
    pyblasnn.show_config()
    out = capsys.readouterr().out
    assert f"GEMM ISA:     {_la.isa()}" in out
    assert "GEMM paths:" in out and _la.gemm_paths() in out
    info = _config.config_info()
    assert info["gemm_isa"] == _la.isa() and info["gemm_isas"] == _la.supported_isas()
    if _la.isa() == "avx512":
        assert "avx512 12x32" in info["gemm_paths"] and "vcompressps" in info["gemm_paths"]


# ------------------------------------------------------------------ the measured peak
def test_peak_gflops_measures_each_supported_isa():
    """The benchmark's yardstick: a positive rate for every ISA this CPU has, the widest
    vectors at least as fast as plain C (loose: the machine may be busy), and clear errors."""
    rates = {isa: _la.peak_gflops(isa, "float32", 1, 0.02) for isa in _la.supported_isas()}
    assert all(r > 0 for r in rates.values()), rates
    assert _la.peak_gflops(None, "float64", 2, 0.02) > 0
    with pytest.raises(ValueError, match="peak_gflops: isa must be one of"):
        _la.peak_gflops("sse")
    with pytest.raises(ValueError, match="peak_gflops: dtype must be 'float32' or 'float64'"):
        _la.peak_gflops(None, "float16")
    with pytest.raises(ValueError, match="peak_gflops: n_threads must be a positive int"):
        _la.peak_gflops(None, "float32", 0)
    with pytest.raises(ValueError, match="peak_gflops: seconds must be positive"):
        _la.peak_gflops(None, "float32", 1, 0)
    if "avx2" in rates:
        _la._simulate_cpu("portable")
        with pytest.raises(ValueError, match="peak_gflops: this CPU .* does not support 'avx2'"):
            _la.peak_gflops("avx2")
