"""Thread control and build introspection.

Thread counts are read from and written to the OpenMP runtime the kernels are linked
against, so ``OMP_NUM_THREADS`` and ``threadpoolctl.threadpool_limits(n, user_api="openmp")``
apply to pyblasnn exactly as to any other OpenMP library.
"""
import operator
import os
import platform
import sys

import numpy as np

from ._kernels import linalg as _la
from ._kernels import threads as _threads


#: The most threads any kernel uses; set_num_threads and n_threads= above it raise
#: ValueError (defined once, in kernels/pbn_runtime.h).
MAX_THREADS = _threads.MAX_THREADS


def get_num_threads():
    """Threads a pyblasnn kernel uses when called with n_threads=None.

    The OpenMP runtime's setting (OMP_NUM_THREADS, set_num_threads, threadpoolctl), at most
    MAX_THREADS; 1 in a child created by fork() after pyblasnn was imported, where every
    kernel runs serially (the OpenMP thread pool does not survive a fork).
    """
    return _threads.max_threads()


def set_num_threads(n):
    """Set the default thread count for pyblasnn kernels (and this thread's OpenMP).

    n: an int in 1..MAX_THREADS, or -1 for every processor available. In a forked child
    the setting is kept but kernels still run on one thread.
    """
    try:
        if isinstance(n, (bool, np.bool_)):
            raise TypeError
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}") from None
    if n == -1:
        n = min(_threads.num_procs(), MAX_THREADS)
    if n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int or -1, got {n}")
    if n > MAX_THREADS:
        raise ValueError(f"set_num_threads: n={n} is above the maximum of {MAX_THREADS} threads")
    _threads.set_max_threads(n)


def _kernel_modules():
    from ._kernels import elementwise, linalg, loss, optim
    return (elementwise, linalg, loss, optim)


def _loop_modules():
    """The modules whose loops are compiled once per ISA, by the names show_config uses."""
    from ._kernels import elementwise, loss, optim
    return {"element-wise": elementwise, "loss": loss, "optimizer": optim}


def path_counters():
    """{kernel path: (calls, parallel entries)} since the last reset_path_counters().

    Each kernel counts its calls and the calls that ran a parallel region of more than one
    thread (per path: "gemm.packed", "gemm.dot", "relu", "binary.rows", ...). Paths not
    reached are absent. Tests use it to prove which paths were exercised.
    """
    res = {}
    for mod in _kernel_modules():
        for name, (calls, parallel) in mod.path_counters().items():
            c, p = res.get(name, (0, 0))
            res[name] = (c + calls, p + parallel)
    return res


def reset_path_counters():
    """Set every kernel path counter to zero."""
    for mod in _kernel_modules():
        mod.reset_path_counters()


def set_thread_backoff(on):
    """Turn the contention back-off of the kernels on (the default) or off.

    On: a parallel region whose team members started late or kept the caller waiting at its
    end, by more than the region's ordinary imbalance (another process, or another library's
    thread pool, holds the cores) makes every kernel run on one thread for a while (20 ms,
    doubling while it lasts, up to 1.3 s), then try the team again. The state is the
    process's: the kernel modules share it. Results are bitwise the same either way. Off:
    every kernel uses the threads it is given. PYBLASNN_THREAD_BACKOFF=0 turns it off at
    import.
    """
    if not isinstance(on, (bool, np.bool_)):
        raise TypeError(f"set_thread_backoff: on must be a bool, got {type(on).__name__}")
    from ._kernels import linalg
    linalg.set_backoff(bool(on))


def thread_backoff():
    """{"enabled", "contended_regions", "backing_off"}: whether the back-off is on, how many
    contended parallel regions it has seen, and whether the kernels run on one thread now
    because of one (one state for the process, shared by the kernel modules)."""
    from ._kernels import linalg
    return linalg.backoff_state()


def set_isa(isa):
    """Run every kernel on this instruction set from now on: "avx512", "avx2" or "portable".

    Each kernel module (the GEMM engine and the element-wise, loss and optimizer loops) keeps
    its own copy of the choice; this sets all of them, so they stay together. PYBLASNN_ISA
    makes the same choice for all of them at import; this is the switch for tests, which
    compare the ISAs' results bit for bit. TypeError for a non-str, ValueError for an
    unknown name or one this CPU lacks (then nothing changes).
    """
    for mod in _kernel_modules():
        mod.set_isa(isa)


def kernel_isas():
    """{kernel module: the ISA it uses now} for the GEMM engine ("linalg") and the
    element-wise, loss and optimizer modules."""
    return {mod.__name__.rsplit(".", 1)[1]: mod.isa() for mod in _kernel_modules()}


def variants_ran():
    """{loop: [ISAs whose compiled variant of it ran]} over the element-wise, loss and
    optimizer modules since reset_variants(): the proof that an ISA's code really ran."""
    res = {}
    for mod in _loop_modules().values():
        for loop, isas in mod.variants_ran().items():
            res[loop] = [i for i in ("avx512", "avx2", "portable")
                         if i in isas or i in res.get(loop, ())]
    return res


def reset_variants():
    """Forget which loop variants ran."""
    for mod in _loop_modules().values():
        mod.reset_variants()


def _simulate_cpu(best):
    """Test hook: every kernel module behaves as if this CPU supported at most `best`
    ("avx2", "portable", ...; None: what it really has)."""
    for mod in _kernel_modules():
        mod._simulate_cpu(best)


def _loop_isa_summary():
    """The loops' ISA in words: one name when every module agrees, else each module's."""
    isas = {name: mod.isa() for name, mod in _loop_modules().items()}
    if len(set(isas.values())) == 1:
        return next(iter(isas.values()))
    return ", ".join(f"{name} {isa}" for name, isa in isas.items())


def kernel_constants():
    """The kernels' size constants as compiled: GEMM block sizes per dtype, the parallel
    thresholds and the thread bound (tests read these, never a copy)."""
    return {
        "gemm_block_sizes": _la.block_sizes(),
        "gemm_parallel_min_flops": _la.parallel_thresholds()["gemm_flops"],
        "gemv_parallel_min_elements": _la.parallel_thresholds()["gemv_elements"],
        "sparse_parallel_min_mnk": _la.parallel_thresholds()["sparse_mnk"],
        "parallel_min_elements": _threads.PARALLEL_MIN_ELEMENTS,
        "max_threads": MAX_THREADS,
        "late_us": _threads.LATE_US,
        "slack_div": _threads.SLACK_DIV,
        "idle_us": _threads.IDLE_US,
        "wake_us": _threads.WAKE_US,
        "solo_us": _threads.SOLO_US,
        "solo_max_shift": _threads.SOLO_MAX_SHIFT,
    }


def _idle_spin():
    """How long the OpenMP pool threads spin idle, as this process chose it."""
    from . import _kernels
    if _kernels.SPINCOUNT_DEFAULTED:
        return f"GOMP_SPINCOUNT={_kernels.DEFAULT_SPINCOUNT} (pyblasnn's default)"
    for var in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if var in os.environ:
            return f"{var}={os.environ[var]}"
    return "the OpenMP runtime's default"


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
        "max_threads": MAX_THREADS,
        "forked_child": _threads.forked_child(),
        "thread_backoff": thread_backoff()["enabled"],
        "idle_spin": _idle_spin(),
        "gemm_isa": _la.isa(),
        "gemm_isas": _la.supported_isas(),
        "gemm_isa_env": os.environ.get("PYBLASNN_ISA") or None,
        "gemm_kernel": _la.kernel_name(),
        "gemm_paths": _la.gemm_paths(),
        "loop_isa": _loop_isa_summary(),
        "loop_variants": _loop_modules()["element-wise"].variant_isas(),
        "constants": kernel_constants(),
        "cpu": _cpu_model(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numpy_blas": blas,
    }


def show_config(file=None):
    """Print version, OpenMP on/off, threads, the ISA and paths in use (GEMM and the other
    loops) and NumPy's BLAS."""
    info = config_info()
    lines = [
        f"pyblasnn {info['pyblasnn']}",
        f"  OpenMP:       {'on' if info['openmp'] else 'off (serial build)'}",
        f"  threads:      {info['threads']} (of {info['processors']} processors, at most "
        f"{info['max_threads']})" + ("; forked child: kernels run serially"
                                     if info["forked_child"] else ""),
        f"  back-off:     {'on' if info['thread_backoff'] else 'off'} (one thread while "
        f"the cores are contended); idle spin: {info['idle_spin']}",
        f"  GEMM ISA:     {info['gemm_isa']} (this CPU: {', '.join(info['gemm_isas'])}; "
        + (f"PYBLASNN_ISA={info['gemm_isa_env']})" if info["gemm_isa_env"]
           else "PYBLASNN_ISA unset: the best one)"),
        f"  GEMM kernel:  {info['gemm_kernel']}",
        f"  GEMM paths:   {info['gemm_paths']}",
        f"  loop ISA:     {info['loop_isa']} (element-wise, loss and optimizer loops; "
        f"compiled for {', '.join(info['loop_variants'])})",
        f"  CPU:          {info['cpu']}",
        f"  Python:       {info['python']}",
        f"  NumPy:        {info['numpy']} (BLAS: {info['numpy_blas']})",
    ]
    print("\n".join(lines), file=file or sys.stdout)
