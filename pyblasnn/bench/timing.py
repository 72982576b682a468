"""Interleaved timing of competitors in their worker processes: warm-up, loop calibration,
median and spread.

Each competitor runs in a worker process of its own (workers.py) and leaves the callable to
time in its worker's ``state["fn"]``; the parent asks every worker in turn for a sample,
in the order A B A B ... so that a slow phase of the machine (frequency drop, a noisy
neighbour) hits all of them alike. A *sample* is ``loops`` back-to-back calls timed with
``time.perf_counter`` inside the worker (the pipe is not timed); ``loops`` is chosen per
competitor so that one sample lasts at least ``min_sample_s`` (fast ops would otherwise be
dominated by timer resolution and call overhead).
"""
import math
import statistics
import time

try:
    from threadpoolctl import threadpool_limits as _threadpool_limits
except ImportError:  # the harness works without it, but cannot pin NumPy's BLAS threads
    _threadpool_limits = None

#: Sample length the loop count is calibrated to (spec: each sample >= ~2 ms).
MIN_SAMPLE_S = 2e-3
#: Pause before each sample of a multi-threaded case. Idle thread pools busy-wait after a
#: call before they sleep (OpenBLAS ~2^28 cycles, about 0.1 s here; libgomp much less): a
#: sample that starts while the *other* library's threads still spin (in its own process
#: too) finds a core taken and stalls for a scheduler tick (4 ms), which showed up as
#: pyblasnn and NumPy alike taking ~4.0 ms for 1 ms products. Letting the previous
#: competitor's pool go quiet times each library as a user sees it when it runs alone.
SETTLE_S = 0.12
#: Sample length for multi-threaded cases that settle: the first call after a pause also
#: wakes the sleeping workers, so a longer sample keeps that one-off cost small.
SETTLED_SAMPLE_S = 20e-3
#: Upper bound on the wall time spent timing one case; repeats are reduced (never below
#: MIN_REPEATS) when a single call is so slow that the requested repeats would exceed it.
MAX_CASE_S = 20.0
MIN_REPEATS = 3


def have_threadpoolctl():
    return _threadpool_limits is not None


def set_blas_threads(n):
    """Limit this process's BLAS to n threads from now on (a worker's setting; no-op
    without threadpoolctl or for n None)."""
    if _threadpool_limits is not None and n is not None:
        _threadpool_limits(limits=n, user_api="blas")


def _time_loop(fn, loops):
    t0 = time.perf_counter()
    for _ in range(loops):
        fn()
    return time.perf_counter() - t0


def calibrate(fn, min_sample_s=MIN_SAMPLE_S, max_loops=100_000):
    """(loops, seconds per call) so that ``loops`` calls take at least ``min_sample_s``."""
    loops = 1
    while True:
        t = _time_loop(fn, loops)
        if t >= min_sample_s or loops >= max_loops:
            return loops, t / loops
        # aim a little past the target so the next try usually ends the search
        grow = 10 if t <= 0 else min(10.0, 1.2 * min_sample_s / t)
        loops = min(max_loops, max(loops + 1, int(math.ceil(loops * grow))))


def summarize(samples):
    """Median / min / max of per-call seconds, in milliseconds."""
    return {
        "median_ms": statistics.median(samples) * 1e3,
        "min_ms": min(samples) * 1e3,
        "max_ms": max(samples) * 1e3,
    }


# Jobs, run in a competitor's worker on the callable its prepare job left in state["fn"].
def time_calls(state, loops):
    """Seconds per call of ``loops`` back-to-back calls."""
    return _time_loop(state["fn"], loops) / loops


def calibrate_calls(state, min_sample_s):
    """(loops, seconds per call) for samples of at least ``min_sample_s``."""
    return calibrate(state["fn"], min_sample_s)


def time_interleaved(call, names, repeats, min_sample_s=MIN_SAMPLE_S, warmup=1,
                     max_case_s=MAX_CASE_S, single_call=(), single_call_repeats=MIN_REPEATS,
                     settle_s=0.0):
    """Time the competitors ``names`` interleaved; return {name: stats}.

    ``call(name, job, *args)`` runs a job in competitor `name`'s worker (Workers.call).
    stats: median_ms, min_ms, max_ms (per call), loops (calls per sample), repeats.
    Names in ``single_call`` (pure-Python loops that take seconds) get no warm-up, one call
    per sample, and only the first ``single_call_repeats`` rounds. ``settle_s``: pause
    before every sample (see SETTLE_S), not counted in the times.
    """
    slow = set()  # one call already lasts a whole sample: no loop to calibrate
    for _ in range(warmup):
        for name in names:
            if name not in single_call and call(name, time_calls, 1) >= min_sample_s:
                slow.add(name)
    loops, per_call = {}, {}
    for name in names:
        if name in single_call:
            loops[name], per_call[name] = 1, None
        elif name in slow:
            loops[name], per_call[name] = 1, call(name, time_calls, 1)
        else:
            loops[name], per_call[name] = call(name, calibrate_calls, min_sample_s)
    # keep the whole case inside max_case_s by trimming repeats for very slow calls
    est = sum(loops[n] * (per_call[n] or 0.0) for n in names)
    reps = repeats
    if est > 0 and est * repeats > max_case_s:
        reps = max(min(repeats, MIN_REPEATS), int(max_case_s // est))
    samples = {name: [] for name in names}
    for r in range(reps):
        for name in names:
            if name in single_call and r >= single_call_repeats:
                continue
            if settle_s:
                time.sleep(settle_s)
            samples[name].append(call(name, time_calls, loops[name]))
    out = {}
    for name in names:
        stats = summarize(samples[name])
        stats.update(loops=loops[name], repeats=len(samples[name]))
        out[name] = stats
    return out
