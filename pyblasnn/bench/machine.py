"""What the numbers were measured on: CPU, SIMD flags, threads, versions, BLAS, compiler.

The harness records OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as it finds them and never changes
them (see bench/README.md for a fair run), plus the core threadpoolctl says OpenBLAS uses in
the NumPy worker (blas_in_worker), and the ISA and measured FMA peak of pyblasnn's kernels in
the pyblasnn worker (measure_peaks): the yardstick of each GEMM row's "% peak".
"""
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig

import numpy as np

#: SIMD flags of /proc/cpuinfo worth knowing for these kernels.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "neon", "asimd")
#: fp32 FLOP per cycle per core the theoretical peak assumes (2 FMA units x 8 lanes x 2).
FP32_FLOP_PER_CYCLE = 32
PEAK_DTYPES = ("float32", "float64")
#: Measurements of each peak; the best is kept.
PEAK_TRIES = 3
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "PYBLASNN_OPENMP")


def _cpuinfo():
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def _field(text, name):
    m = re.search(r"^" + re.escape(name) + r"\s*:\s*(.*)$", text, re.M)
    return m.group(1).strip() if m else None


def cpu_mhz(text=None):
    """Mean 'cpu MHz' over the processors of /proc/cpuinfo, or None."""
    text = _cpuinfo() if text is None else text
    vals = [float(v) for v in re.findall(r"^cpu MHz\s*:\s*([0-9.]+)", text, re.M)]
    return sum(vals) / len(vals) if vals else None


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def peak_gflops(n_cores=None, mhz=None):
    """Theoretical fp32 peak: cores x clock x 32 FLOP/cycle (None when the clock is unknown)."""
    n_cores = cores() if n_cores is None else n_cores
    mhz = cpu_mhz() if mhz is None else mhz
    if not mhz:
        return None
    return n_cores * mhz * 1e-3 * FP32_FLOP_PER_CYCLE


def _compiler():
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    version = None
    if cc and shutil.which(cc[0]):
        try:
            res = subprocess.run(cc + ["--version"], capture_output=True, text=True, timeout=10)
            version = (res.stdout or res.stderr).splitlines()[0].strip()
        except (OSError, subprocess.SubprocessError, IndexError):
            pass
    return {"cc": " ".join(cc), "version": version}


def _blas_info():
    try:
        import threadpoolctl
    except ImportError:
        return None
    # the library's file name, not its path: a path names this machine's directories
    keep = ("user_api", "internal_api", "prefix", "version", "num_threads",
            "threading_layer", "architecture")
    return [dict({k: d.get(k) for k in keep}, file=os.path.basename(d.get("filepath") or ""))
            for d in threadpoolctl.threadpool_info()]


def _pyblasnn_info():
    try:
        from pyblasnn._config import config_info
        return config_info()
    except Exception as exc:  # the record must not break the benchmark
        return {"error": f"{type(exc).__name__}: {exc}"}


def _version(dist):
    """The installed version of a distribution (torch, jax), or None."""
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return None


def blas_in_worker(state):
    """Job (NumPy worker): its pid and the BLAS threadpoolctl sees there, with the kernel
    (``architecture``) OpenBLAS chose in the process that times NumPy."""
    return {"pid": os.getpid(), "blas": _blas_info()}


def measure_peaks(state, thread_counts, seconds, tries=PEAK_TRIES):
    """Job (pyblasnn worker): the ISA in use and the measured FMA-chain peak GFLOP/s,
    ``{dtype: {str(threads): GFLOP/s}}``, of pyblasnn._kernels.linalg.peak_gflops: the best
    of ``tries`` measurements (other work on the machine can only lower one)."""
    from .discover import Unavailable
    try:
        from pyblasnn._kernels import linalg
        isa, peak = linalg.isa, linalg.peak_gflops
    except (ImportError, AttributeError) as exc:
        raise Unavailable(f"no measured peak: pyblasnn._kernels.linalg.peak_gflops/isa "
                          f"not available ({exc})") from None
    return {"isa": isa(),
            "gflops": {dt: {str(n): round(max(peak(dtype=dt, n_threads=n, seconds=seconds)
                                              for _ in range(tries)), 1)
                            for n in thread_counts} for dt in PEAK_DTYPES}}


def load_average():
    """1-minute load average (None where unsupported): other work on the machine skews timings."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def git_revision():
    """'<short sha>[-dirty]' of the checkout pyblasnn is imported from, or None.

    Changes under bench/results (the previous run's own outputs) do not make it dirty."""
    import pyblasnn
    root = os.path.dirname(os.path.dirname(os.path.abspath(pyblasnn.__file__)))
    try:
        sha = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        if sha.returncode:
            return None
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no",
                                "--", ".", ":(exclude)bench/results"],
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info():
    """A dict describing this machine and software stack (stored in the JSON)."""
    text = _cpuinfo()
    flags = set((_field(text, "flags") or _field(text, "Features") or "").split())
    info = _pyblasnn_info()
    mhz = cpu_mhz(text)
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu_model": _field(text, "model name") or platform.processor() or platform.machine(),
        "cpu_mhz": round(mhz, 1) if mhz else None,
        "cores": cores(),
        "logical_cpus": os.cpu_count(),
        "simd": {f: (f in flags) for f in SIMD_FLAGS if flags},
        "peak_fp32_gflops": peak_gflops(cores(), mhz),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "blas": _blas_info(),
        "pyblasnn": info,
        "pyblasnn_git": git_revision(),
        "compiler": _compiler(),
        "torch": _version("torch"),
        "jax": _version("jax"),
        "env": {k: os.environ.get(k) for k in ENV_VARS},
        "load_average_start": load_average(),
    }


def _peak_line(info):
    measured = info.get("measured_peak_gflops")
    theory = info.get("peak_fp32_gflops")
    theory_s = (f"theoretical fp32 {theory:.0f} GFLOP/s (cores x clock x "
                f"{FP32_FLOP_PER_CYCLE} FLOP/cycle)" if theory else "")
    if not measured:
        return (f"peak: not measured ({info.get('peak_error', 'no record')})"
                + (f" | {theory_s}" if theory_s else ""))
    parts = [f"{dt} " + ", ".join(f"{n}t {v:.0f}" for n, v in by_threads.items())
             for dt, by_threads in measured.items()]
    return (f"peak: ISA {info.get('isa')} | measured FMA peak GFLOP/s: " + " | ".join(parts)
            + (f" | {theory_s}" if theory_s else ""))


def describe(info):
    """A few human lines summarising machine_info() (printed above the table)."""
    blas = info.get("blas") or []
    blas_s = ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
                       f"{b.get('threading_layer')})" for b in blas if b.get("user_api") == "blas")
    if blas_s and info.get("blas_from"):
        blas_s += f" as seen in the {info['blas_from']}"
    pb = info.get("pyblasnn") or {}
    simd = ",".join(k for k, v in (info.get("simd") or {}).items() if v) or "?"
    env = ", ".join(f"{k}={v}" for k, v in info["env"].items() if v is not None) or "none set"
    clock = f" @ {info['cpu_mhz']} MHz" if info.get("cpu_mhz") else ""
    return [
        f"machine: {info['cpu_model']} | {info['cores']} cores{clock} | SIMD {simd}",
        f"software: Python {info['python']} | NumPy {info['numpy']} with {blas_s or 'unknown BLAS'}"
        f" | pyblasnn {pb.get('pyblasnn', '?')}"
        + (f" @ {info['pyblasnn_git']}" if info.get("pyblasnn_git") else "") + f" (OpenMP {'on' if pb.get('openmp') else 'off'}, "
        f"GEMM kernel {pb.get('gemm_kernel', '?')}) | {info['compiler']['version'] or info['compiler']['cc']}"
        + (f" | torch {info['torch']}" if info.get("torch") else "")
        + (f" | jax {info['jax']}" if info.get("jax") else ""),
        _peak_line(info),
        f"env: {env} | {info['date']} | load average at start {info.get('load_average_start')}"
        + (f", at end {info['load_average_end']}" if info.get("load_average_end") is not None
           else ""),
    ]
