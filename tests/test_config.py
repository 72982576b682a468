"""Public names, show_config and thread settings."""
import io
import re
import os

import numpy as np
import pytest

import pyblasnn
from pyblasnn import _config, ops
from pyblasnn._kernels import linalg as _la

PUBLIC_OPS = ["relu", "relu_backward", "add", "add_backward", "subtract", "subtract_backward",
              "multiply", "multiply_backward", "divide", "divide_backward", "maximum",
              "maximum_backward", "dot", "dot_backward", "matmul", "matmul_backward",
              "sum_to_shape", "dense", "take_rows"]


#: pyblasnn.<name> of these dispatches: arrays to ops.<name>, tensors to the autodiff op
DISPATCHING = {"add", "subtract", "multiply", "divide", "maximum", "matmul"}


@pytest.mark.parametrize("name", PUBLIC_OPS)
def test_public_names_importable(name):
    assert callable(getattr(ops, name))
    expected = pyblasnn.autodiff if name in DISPATCHING else ops
    assert getattr(pyblasnn, name) is getattr(expected, name)
    assert name in ops.__all__
    assert "n_threads" in getattr(ops, name).__code__.co_varnames
    assert getattr(ops, name).__doc__


def test_all_lists_exactly_the_public_ops():
    assert sorted(ops.__all__) == sorted(PUBLIC_OPS)


@pytest.mark.parametrize("name", [n for n in PUBLIC_OPS if not n.endswith("_backward")]
                         + ["relu_backward"])
def test_forward_ops_take_out(name):
    assert "out" in getattr(ops, name).__code__.co_varnames


def test_show_config_reports_build_facts():
    buf = io.StringIO()
    assert pyblasnn.show_config(file=buf) is None
    text = buf.getvalue()
    info = pyblasnn._config.config_info()
    assert text.startswith(f"pyblasnn {pyblasnn.__version__}\n")
    assert re.search(r"OpenMP:\s+(on|off)", text)
    assert ("on" if info["openmp"] else "off") in re.search(r"OpenMP:.*", text).group(0)
    assert re.search(rf"threads:\s+{pyblasnn.get_num_threads()} \(of {info['processors']} ", text)
    assert _la.kernel_name() in text and info["gemm_kernel"] == _la.kernel_name()
    assert f"GEMM paths:   {_la.gemm_paths()}" in text and info["gemm_paths"] == _la.gemm_paths()
    assert f"NumPy:        {np.__version__} (BLAS: " in text
    assert info["numpy"] == np.__version__


def test_show_config_prints_to_stdout_and_follows_thread_setting(capsys):
    old = pyblasnn.get_num_threads()
    try:
        pyblasnn.set_num_threads(1)
        pyblasnn.show_config()
    finally:
        pyblasnn.set_num_threads(old)
    out = capsys.readouterr().out
    assert re.search(r"threads:\s+1 \(of", out)
    assert "GEMM kernel:" in out


def test_force_portable_switches_kernel_name():
    default, default_paths = _la.kernel_name(), _la.gemm_paths()
    try:
        _la.force_portable(True)
        forced, forced_paths = _la.kernel_name(), _la.gemm_paths()
    finally:
        _la.force_portable(False)
    assert (_la.kernel_name(), _la.gemm_paths()) == (default, default_paths)
    assert forced in ("portable", "reference")
    assert forced_paths.startswith("portable") and "sparse" not in forced_paths


def test_set_num_threads_accepts_numpy_ints():
    old = pyblasnn.get_num_threads()
    try:
        pyblasnn.set_num_threads(np.int32(1))
        assert pyblasnn.get_num_threads() == 1
    finally:
        pyblasnn.set_num_threads(old)


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def test_ci_build_has_openmp_and_the_expected_simd_path():
    """In CI (CI is set) a serial build or a portable GEMM on an AVX2 + FMA CPU is a failure,
    not a warning: both would silently make every product several times slower."""
    if not os.environ.get("CI"):
        pytest.skip("CI is not set: a build without OpenMP or AVX2 is allowed (with a warning)")
    info = _config.config_info()
    assert info["openmp"] is True, "CI build without OpenMP (setup.py printed why)"
    flags = _cpu_flags()
    if flags is not None and {"avx2", "fma"} <= flags:
        assert info["gemm_kernel"].startswith(("avx2", "avx512")), (
            f"CPU has avx2+fma but the GEMM uses {info['gemm_kernel']!r}")
    if flags is not None and {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags \
            and not os.environ.get("PYBLASNN_ISA"):
        assert info["gemm_isa"] == "avx512", (
            f"CPU has AVX-512 but the GEMM uses {info['gemm_isa']!r}")
