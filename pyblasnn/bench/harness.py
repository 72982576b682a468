"""Command line and driver: run the cases, gate each on correctness, time, report.

``python -m pyblasnn.bench [--quick] [--only PATTERN] [--threads N[,M...]] [--repeats N]
[--out DIR] [--no-plots] [--no-epoch]``. Exit code 1 when any row FAILED its check against
NumPy, 0 otherwise (skipped rows — a piece of pyblasnn not merged yet, torch missing — are
not failures).

Every competitor runs in a worker process of its own (workers.py), started once per run;
this process only schedules their samples and compares their results.
"""
import argparse
import fnmatch
import os
import sys
import time
import traceback

from . import cases as cases_mod
from . import discover, machine, report, workers
from .check import assert_close
from .machine import cores, describe, load_average, machine_info
from .timing import (MIN_SAMPLE_S, SETTLE_S, SETTLED_SAMPLE_S, have_threadpoolctl,
                     set_blas_threads, time_interleaved)
from .workers import JobError, WorkerFailed

DEFAULT_REPEATS = {"full": 7, "quick": 3, "tiny": 2}
#: Repeats for pure-Python loops (each sample takes up to seconds).
PYTHON_REPEATS = 3
#: Seconds of each FMA-loop peak measurement (machine.measure_peaks) per mode.
PEAK_SECONDS = {"full": 0.2, "quick": 0.2, "tiny": 0.05}
PROCESS_MODEL = ("each library timed in a worker process of its own (spawn, one per "
                 "competitor for the whole run), samples interleaved across the workers")


def _thread_list(text):
    try:
        vals = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threads: expected N or N,M,..., got {text!r}")
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"--threads: thread counts must be >= 1, got {text!r}")
    return sorted(set(vals))


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m pyblasnn.bench",
        description="Benchmark pyblasnn's kernels against NumPy (and pure Python, PyTorch).")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, few repeats: a smoke test that finishes in < 1 minute")
    p.add_argument("--tiny", action="store_true",
                   help="the quick mode on minimal sizes (used by the test suite)")
    p.add_argument("--only", metavar="PATTERN", action="append", default=[],
                   help="run only kernels whose name contains PATTERN or matches it as a glob "
                        "(repeatable or comma-separated; 'epoch' selects the MNIST epoch)")
    p.add_argument("--threads", type=_thread_list, metavar="N[,M...]",
                   help="thread counts for every row (default: all cores for every row, "
                        "plus 1, 2, 4, ... for the heavy kernels' scaling rows)")
    p.add_argument("--repeats", type=int, metavar="N",
                   help="timed samples per competitor (default 7; quick 3)")
    p.add_argument("--out", default=os.path.join("bench", "results"), metavar="DIR",
                   help="directory for the JSON, markdown and PNG outputs (default bench/results)")
    p.add_argument("--name", metavar="STEM",
                   help="file stem of the outputs (default: latest for a full unfiltered run, "
                        "else quick / partial)")
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--no-epoch", action="store_true", help="skip the end-to-end MNIST epochs (Sequential.fit and the from-scratch listing)")
    p.add_argument("--no-contended", action="store_true",
                   help="skip the contended section (epoch and kernel rows on 1 and 2 threads "
                        "with a busy process, or NumPy calls, competing for the cores)")
    p.add_argument("--worker-timeout", type=float, default=workers.DEFAULT_TIMEOUT_S,
                   metavar="S", help="seconds a worker process may take to start or to answer "
                   "one step (default %(default)g); one that does not is killed and its row "
                   "FAILED")
    p.add_argument("--mnist", metavar="PATH",
                   help="MNIST file passed to pyblasnn.datasets.mnist.load_data (default: its "
                        "own search: caches, then download)")
    args = p.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.worker_timeout <= 0:
        p.error("--worker-timeout must be > 0")
    return args


def _patterns(only):
    return [s.strip() for item in only for s in item.split(",") if s.strip()]


def selected(name, patterns):
    if not patterns:
        return True
    return any(p in name or fnmatch.fnmatchcase(name, p) for p in patterns)


class Progress:
    """One progress line on stderr (rewritten in place on a terminal)."""

    def __init__(self, total, stream=sys.stderr):
        self.total, self.done, self.stream = total, 0, stream
        self.t0 = time.perf_counter()
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def __call__(self, what, advance=False):
        if advance:
            self.done += 1
        line = f"[{self.done:3d}/{self.total}] {time.perf_counter() - self.t0:6.1f}s {what}"
        if self.tty:
            self.stream.write("\r\033[K" + line[:150])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _base_row(case, nt):
    return {"section": case.section, "kernel": case.kernel, "shape": case.shape,
            "dtype": case.dtype, "threads": nt, "group": case.group, "size": case.size,
            "flops": case.flops, "note": case.note, "extra": dict(case.extra), "times": {}}


def prepare_competitor(state, mode, index, n_threads, who):
    """Job: make competitor `who` of case `index` of all_cases(mode) this worker's timed
    callable (state["fn"]) at n_threads; return its value for the correctness gate."""
    if state.get("case_key") != (mode, index):
        case = cases_mod.all_cases(mode)[index]
        data = case.setup(cases_mod.case_rng(index))
        state.update(case_key=(mode, index), case=case, data=data)
    set_blas_threads(n_threads)
    fns = state["case"].make(state["data"], n_threads)
    state["fn"] = fns[who]
    return fns.get("_values", {}).get(who, fns[who])()


def _time_row(case, index, mode, nt, repeats, pool, settle_s):
    """Times of one row: every competitor's value checked against NumPy's, then timed."""
    names = case.competitors
    values = {who: pool.call(who, prepare_competitor, mode, index, nt, who)
              for who in ["numpy"] + [n for n in names if n != "numpy"]}
    for who in names:
        if who != "numpy":
            assert_close(values[who], values["numpy"], case.dtype, k=case.k, what=who)
    single = {"python"} & set(names)
    settle = settle_s if nt > 1 else 0.0
    return time_interleaved(pool.call, names, repeats,
                            SETTLED_SAMPLE_S if settle else MIN_SAMPLE_S, single_call=single,
                            single_call_repeats=min(repeats, PYTHON_REPEATS), settle_s=settle)


def run_case(case, index, mode, thread_counts, repeats, pool, progress, settle_s=SETTLE_S):
    """Rows (one per thread count) for case `index` of all_cases(mode): skipped, FAILED or
    timed."""
    rows = []
    for nt in thread_counts:
        row = _base_row(case, nt)
        progress(f"{case.kernel} {case.shape} {case.dtype} threads={nt}")
        try:
            stats = _time_row(case, index, mode, nt, repeats, pool, settle_s)
        except discover.Unavailable as exc:
            rows.append(dict(row, status="skipped", reason=str(exc)))
            continue
        except (AssertionError, JobError, WorkerFailed) as exc:
            # wrong values or shape, the kernel raised, or its worker died or hung
            rows.append(dict(row, status="FAILED", reason=workers.reason(exc)))
            continue
        scale = case.extra.get("rounds", 1) / case.extra.get("python_rounds", 1)
        if "python" in stats and scale != 1:
            for key in ("median_ms", "min_ms", "max_ms"):
                stats["python"][key] *= scale
            stats["python"]["extrapolated_x"] = scale
        row.update(times=stats, status="ok",
                   workers={who: pool.pid(who) for who in case.competitors})
        rows.append(report.derive(row))
    return rows


def _ask(pool, info, error_key, who, job, *args):
    """``pool.call(who, job, *args)``, or None with the reason in ``info[error_key]``."""
    try:
        return pool.call(who, job, *args)
    except (discover.Unavailable, JobError, WorkerFailed) as exc:
        info[error_key] = workers.reason(exc)
        return None


def _worker_records(pool, info, peak_threads, seconds):
    """Into the machine record: the BLAS of the NumPy worker (what the timed NumPy runs),
    and from the pyblasnn worker the ISA in use and the measured peaks."""
    blas = _ask(pool, info, "blas_error", "numpy", machine.blas_in_worker)
    if blas:
        info.update(blas=blas["blas"], blas_from=f"numpy worker (pid {blas['pid']})")
    peak = _ask(pool, info, "peak_error", "pyblasnn", machine.measure_peaks, peak_threads,
                seconds)
    if peak:
        info.update(isa=peak["isa"], measured_peak_gflops=peak["gflops"],
                    measured_peak_seconds=seconds)


def _end_to_end_rows(run_epoch, run_tape, nt, mode, mnist_path, pool, progress, settle_s):
    """The MNIST epoch row and the from-scratch listing's row (each trainer in its worker)."""
    from .epoch import run_epochs
    from .tape_epoch import run_tape_epochs
    rows = []
    end_to_end = [("mnist_epoch", "epoch", "mnist epochs", run_epochs, run_epoch),
                  ("from_scratch_epoch", "tape", "from-scratch listing epochs", run_tape_epochs,
                   run_tape)]
    for kernel, section, label, runner, wanted in end_to_end:
        if not wanted:
            continue
        progress(label)
        try:
            row = runner(nt, mode, mnist_path, progress=progress, pool=pool,
                         settle_s=settle_s if nt > 1 else 0.0)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            row = {"section": section, "kernel": kernel, "shape": "784-512-10",
                   "dtype": "float32", "threads": nt, "group": section, "times": {},
                   "status": "FAILED", "reason": workers.reason(exc)}
        rows.append(report.derive(row))
        progress(f"{label} done", advance=True)
    return rows


def _contended_rows(mode, mnist_path, progress):
    """The contended section (pyblasnn alone, with a load it starts itself; run here, after
    the workers are gone)."""
    from .contended import run_contended
    progress("contended section")
    try:
        rows = run_contended(mode, mnist_path, progress=progress)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        rows = [{"section": "contended", "kernel": "contended", "shape": "-",
                 "dtype": "float32", "threads": 0, "load": "-", "group": "contended",
                 "times": {}, "status": "FAILED", "reason": workers.reason(exc)}]
    progress("contended section done", advance=True)
    return rows


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    repeats = args.repeats or DEFAULT_REPEATS[mode]
    n_cores = cores()
    if args.threads:
        main_threads = scaling = args.threads
    else:
        main_threads = [n_cores]
        scaling = sorted({1, n_cores} | {t for t in (2, 4, 8, 16, 32, 64) if t <= n_cores})
        if mode == "tiny":
            scaling = main_threads
    patterns = _patterns(args.only)
    stem = args.name or ("latest" if mode == "full" and not patterns else
                         ("partial" if patterns else "quick"))

    info = machine_info()
    _, naive_source = discover.naive_module()
    notes = []
    if not have_threadpoolctl():
        notes.append("threadpoolctl not installed: NumPy's BLAS thread count was NOT limited "
                     "(pip install threadpoolctl)")
    busy = info.get("load_average_start")
    if busy is not None and busy > 0.5:
        notes.append(f"load average {busy} at start: other processes share the "
                     f"{n_cores} cores, timings are noisier and may be skewed")
    if any(info["env"].get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")):
        notes.append("OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE set: NumPy may run a slower OpenBLAS "
                     "kernel (fair run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...)")

    todo = [(i, c) for i, c in enumerate(cases_mod.all_cases(mode))
            if selected(c.kernel, patterns)]
    run_epoch = not args.no_epoch and selected("mnist_epoch", patterns)
    run_tape = not args.no_epoch and selected("from_scratch_epoch", patterns)
    run_contended = (not args.no_epoch and not args.no_contended
                     and selected("contended", patterns))
    total = (sum(len(scaling if c.heavy else main_threads) for _, c in todo) + int(run_epoch)
             + int(run_tape) + int(run_contended))
    progress = Progress(total)
    settle_s = SETTLE_S if mode == "full" else 0.0
    peak_threads = sorted({1} | set(main_threads) | set(scaling))
    rows = []
    with workers.Workers(args.worker_timeout) as pool:
        _worker_records(pool, info, peak_threads, PEAK_SECONDS[mode])
        for line in describe(info):
            print(line, file=sys.stderr)
        for index, case in todo:
            counts = scaling if case.heavy else main_threads
            try:
                new = run_case(case, index, mode, counts, repeats, pool, progress, settle_s)
            except Exception as exc:  # a bug in a case must not lose the whole run
                traceback.print_exc(file=sys.stderr)
                new = [dict(_base_row(case, nt), status="FAILED", reason=workers.reason(exc))
                       for nt in counts]
            for r in new:
                progress(f"{r['kernel']} {r['shape']} t={r['threads']} {r['status']}",
                         advance=True)
            rows.extend(new)
        rows += _end_to_end_rows(run_epoch, run_tape, max(main_threads), mode, args.mnist,
                                 pool, progress, settle_s)
    if run_contended:
        rows += _contended_rows(mode, args.mnist, progress)
    progress.close()
    info["load_average_end"] = load_average()

    result = {
        "schema": 1,
        "mode": mode,
        # file arguments by name only: a full path would record this machine's directories
        "argv": [os.path.basename(a) if os.sep in str(a) else a
                 for a in (sys.argv[1:] if argv is None else argv)],
        "settings": {"repeats": repeats, "min_sample_s": MIN_SAMPLE_S, "threads": main_threads,
                     "scaling_threads": scaling, "only": patterns,
                     "numpy_threads_limited": have_threadpoolctl(),
                     "naive_source": naive_source, "separate_processes": True,
                     "process_model": PROCESS_MODEL, "worker_timeout_s": args.worker_timeout},
        "machine": info,
        "notes": notes,
        "rows": report.share_of_peak(rows, info.get("measured_peak_gflops")),
        "failed": sum(r["status"] == "FAILED" for r in rows),
        "skipped": sum(r["status"] == "skipped" for r in rows),
    }
    paths = []
    if not args.no_plots:
        from . import plots
        paths, why = plots.write_plots(result, args.out, stem)
        if why:
            print(f"plots: {why}", file=sys.stderr)
    result["duration_s"] = round(time.perf_counter() - t_start, 1)
    paths = report.write_outputs(result, args.out, stem) + paths
    print(report.console(result))
    print(f"\nwrote: {', '.join(paths)}  ({result['duration_s']:.0f} s)")
    return 1 if result["failed"] else 0
