"""Thread control and build introspection.

Thread counts are read from and written to the OpenMP runtime the kernels are linked
against, so ``OMP_NUM_THREADS`` and ``threadpoolctl.threadpool_limits(n, user_api="openmp")``
apply to pyblasnn exactly as to any other OpenMP library.
"""
import operator
import platform
import sys

import numpy as np

from ._kernels import linalg as _la
from ._kernels import threads as _threads


def get_num_threads():
    """Threads a pyblasnn kernel uses when called with n_threads=None."""
    return _threads.max_threads()


def set_num_threads(n):
    """Set the default thread count for pyblasnn kernels (and this thread's OpenMP).

    n: a positive int, or -1 for every processor available.
    """
    try:
        if isinstance(n, (bool, np.bool_)):
            raise TypeError
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}") from None
    if n == -1:
        n = _threads.num_procs()
    if n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int or -1, got {n}")
    _threads.set_max_threads(n)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def config_info():
    """The facts show_config prints, as a dict (used by the benchmark's machine record)."""
    from . import __version__
    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")
        dep = cfg.get("Build Dependencies", {}).get("blas", {})
        blas = f"{dep.get('name', '?')} {dep.get('version', '')}".strip()
    except Exception:  # show_config's structure is not a stable API
        pass
    return {
        "pyblasnn": __version__,
        "openmp": _threads.openmp_enabled(),
        "threads": get_num_threads(),
        "processors": _threads.num_procs(),
        "gemm_kernel": _la.kernel_name(),
        "gemm_paths": _la.gemm_paths(),
        "cpu": _cpu_model(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numpy_blas": blas,
    }


def show_config(file=None):
    """Print version, OpenMP on/off, threads, the SIMD path in use and NumPy's BLAS."""
    info = config_info()
    lines = [
        f"pyblasnn {info['pyblasnn']}",
        f"  OpenMP:       {'on' if info['openmp'] else 'off (serial build)'}",
        f"  threads:      {info['threads']} (of {info['processors']} processors)",
        f"  GEMM kernel:  {info['gemm_kernel']}",
        f"  GEMM paths:   {info['gemm_paths']}",
        f"  CPU:          {info['cpu']}",
        f"  Python:       {info['python']}",
        f"  NumPy:        {info['numpy']} (BLAS: {info['numpy_blas']})",
    ]
    print("\n".join(lines), file=file or sys.stdout)
