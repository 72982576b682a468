"""Derived figures (ratios, GFLOP/s, share of peak), the console table, latest.md and the
JSON file.

Columns of the kernel table: kernel | shape | dtype | threads | pyblasnn ms | NumPy ms |
x NumPy (NumPy time / pyblasnn time: > 1 means pyblasnn is faster) | GFLOP/s (pyblasnn /
NumPy, dot family only: 2mnk / median time) | % peak (dot family: pyblasnn's GFLOP/s / the
measured peak at the row's dtype and thread count) | spread ((max - min) / median of the
samples, pyblasnn / NumPy).
"""
import json
import os

from .machine import describe
from .._atomic import atomic_write

NAMES = {"pyblasnn": "pyblasnn", "numpy": "NumPy", "python": "pure Python", "pytorch": "PyTorch",
         "jax": "JAX", "scipy": "scipy.sparse"}
#: The epoch table's trainers, and those it gives ratios to (x NumPy, x PyTorch, x JAX).
TRAINERS = ("pyblasnn", "numpy", "pytorch", "jax")
EPOCH_REFERENCES = ("numpy", "pytorch", "jax")


def derive(row):
    """Add x_numpy, x_python, x_scipy and gflops to a row from its median times (an epoch row: for
    each trainer, x_numpy / x_pytorch / x_jax = that trainer's seconds / this one's)."""
    t = row.get("times") or {}
    med = {k: v["median_ms"] for k, v in t.items() if v.get("median_ms")}
    if row.get("section") == "epoch":
        for ref in EPOCH_REFERENCES:
            if ref in med:
                row[f"x_{ref}"] = {k: med[ref] / v for k, v in med.items()}
        return row
    pb = med.get("pyblasnn")
    if pb:
        if "numpy" in med:
            row["x_numpy"] = med["numpy"] / pb
        if "python" in med:
            row["x_python"] = med["python"] / pb
        if "scipy" in med:
            row["x_scipy"] = med["scipy"] / pb
    if row.get("flops"):
        row["gflops"] = {k: row["flops"] / (v * 1e-3) / 1e9 for k, v in med.items()}
    return row


def share_of_peak(rows, peaks):
    """Add peak_gflops and pct_peak to every timed dot-family kernel row: pyblasnn's GFLOP/s
    as a percentage of the measured peak (``{dtype: {str(threads): GFLOP/s}}``) at the
    row's dtype and thread count. Returns the rows."""
    for r in rows:
        rate = (r.get("gflops") or {}).get("pyblasnn")
        peak = ((peaks or {}).get(r.get("dtype")) or {}).get(str(r.get("threads")))
        if r.get("section") == "kernels" and rate and peak:
            r["peak_gflops"] = peak
            r["pct_peak"] = 100.0 * rate / peak
    return rows


def fmt_pct(v):
    if v is None:
        return "-"
    return f"{v:.1f}%" if v < 10 else f"{v:.0f}%"


def fmt_ms(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}" if v >= 0.001 else f"{v:.2e}"


def fmt_x(v):
    if v is None:
        return "-"
    return f"{v:.0f}x" if v >= 100 else f"{v:.1f}x" if v >= 10 else f"{v:.2f}x"


def _spread(stats):
    if not stats or not stats.get("median_ms"):
        return "-"
    return f"{(stats['max_ms'] - stats['min_ms']) / stats['median_ms'] * 100:.0f}%"


def _cell(row, who):
    if row["status"] != "ok":
        return row["status"]
    return fmt_ms(row["times"].get(who, {}).get("median_ms"))


def kernel_rows(result, section="kernels"):
    return [r for r in result["rows"] if r.get("section") == section]


def kernel_table(result):
    head = ["kernel", "shape", "dtype", "threads", "pyblasnn ms", "NumPy ms", "x NumPy",
            "GFLOP/s", "% peak", "spread"]
    body = []
    for r in kernel_rows(result):
        g = r.get("gflops") or {}
        gf = (f"{g['pyblasnn']:.1f} / {g.get('numpy', float('nan')):.1f}"
              if r["status"] == "ok" and "pyblasnn" in g else "-")
        t = r.get("times") or {}
        spread = (f"{_spread(t.get('pyblasnn'))}/{_spread(t.get('numpy'))}"
                  if r["status"] == "ok" else "-")
        body.append([r["kernel"], r["shape"], r["dtype"], str(r["threads"]), _cell(r, "pyblasnn"),
                     _cell(r, "numpy"), fmt_x(r.get("x_numpy")), gf, fmt_pct(r.get("pct_peak")),
                     spread])
    return head, body


def scaling_table(result):
    """pyblasnn and NumPy time per thread count for kernels timed at several counts."""
    groups = {}
    for r in kernel_rows(result):
        if r["status"] == "ok":
            groups.setdefault((r["kernel"], r["shape"], r["dtype"]), {})[r["threads"]] = r
    counts = sorted({n for g in groups.values() for n in g if len(g) > 1})
    if not counts:
        return None
    lo = counts[0]
    head = (["kernel", "shape", "dtype"] + [f"pyblasnn ms @{n}" for n in counts]
            + [f"NumPy ms @{n}" for n in counts]
            + [f"pyblasnn speedup @{n}" for n in counts[1:]]
            + [f"NumPy speedup @{n}" for n in counts[1:]])
    body = []
    for (kernel, shape, dtype), g in groups.items():
        if len(g) < 2:
            continue
        med = lambda n, who: g[n]["times"][who]["median_ms"] if n in g else None
        line = [kernel, shape, dtype]
        line += [fmt_ms(med(n, "pyblasnn")) for n in counts]
        line += [fmt_ms(med(n, "numpy")) for n in counts]
        for who in ("pyblasnn", "numpy"):
            for n in counts[1:]:
                a, b = med(lo, who), med(n, who)
                line.append(fmt_x(a / b) if a and b else "-")
        body.append(line)
    return head, body


def scipy_table(result):
    """The rows that also time scipy.sparse (the zero-skipping path on MNIST batches)."""
    head = ["kernel", "shape", "threads", "pyblasnn ms", "NumPy ms", "scipy.sparse ms",
            "x NumPy", "x scipy.sparse"]
    body = [[r["kernel"], r["shape"], str(r["threads"]), _cell(r, "pyblasnn"), _cell(r, "numpy"),
             _cell(r, "scipy"), fmt_x(r.get("x_numpy")), fmt_x(r.get("x_scipy"))]
            for r in kernel_rows(result) if "scipy" in (r.get("times") or {})]
    return (head, body) if body else None


def python_table(result):
    head = ["kernel", "shape", "dtype", "threads", "pure Python ms", "NumPy ms", "pyblasnn ms",
            "x pure Python", "x NumPy"]
    body = []
    for r in kernel_rows(result, "pure_python"):
        py = _cell(r, "python")
        if r["status"] == "ok" and r["times"].get("python", {}).get("extrapolated_x"):
            py += " (extrapolated)"
        body.append([r["kernel"], r["shape"], r["dtype"], str(r["threads"]), py,
                     _cell(r, "numpy"), _cell(r, "pyblasnn"), fmt_x(r.get("x_python")),
                     fmt_x(r.get("x_numpy"))])
    return head, body


def epoch_table(result):
    refs = [f"x {NAMES[ref]}" for ref in EPOCH_REFERENCES]
    head = ["trainer", "threads", "s / epoch", "min-max s", "epochs", "test accuracy"] + refs
    body = []
    for r in kernel_rows(result, "epoch"):
        if r["status"] != "ok":
            body.append(["all", str(r["threads"]), r["status"], "-", "-", "-"] + ["-"] * len(refs))
            continue
        for who in TRAINERS:
            s = r["times"].get(who)
            if s is None:
                body.append([NAMES[who], str(r["threads"]), "skipped", "-", "-", "-"]
                            + ["-"] * len(refs))
                continue
            acc = (r.get("accuracy") or {}).get(who)
            body.append([NAMES[who], str(r["threads"]), f"{s['median_ms'] / 1e3:.3f}",
                         f"{s['min_ms'] / 1e3:.3f}-{s['max_ms'] / 1e3:.3f}", str(s["repeats"]),
                         f"{acc:.4f}" if acc is not None else "-"]
                        + [fmt_x((r.get(f"x_{ref}") or {}).get(who)) for ref in EPOCH_REFERENCES])
    return head, body


def problems(result):
    """Lines listing FAILED and skipped rows with their reasons (skips grouped by reason)."""
    lines = []
    for r in result["rows"]:
        if r["status"] == "FAILED":
            lines.append(f"FAILED {r['kernel']} {r['shape']} {r['dtype']} threads={r['threads']}: "
                         f"{r.get('reason', '')}")
    by_reason = {}
    for r in result["rows"]:
        if r["status"] == "skipped":
            by_reason.setdefault(r.get("reason", ""), []).append(r["kernel"])
        for who, why in (r.get("unavailable") or {}).items():
            by_reason.setdefault(why, []).append(f"{r['kernel']}[{NAMES.get(who, who)}]")
    for why, kernels in by_reason.items():
        names = ", ".join(dict.fromkeys(kernels))
        lines.append(f"skipped {names}: {why}")
    return lines


def _render(head, body, markdown):
    if markdown:
        out = ["| " + " | ".join(head) + " |",
               "|" + "|".join("---" if i < 3 else "---:" for i in range(len(head))) + "|"]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in body]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h)
              for i, h in enumerate(head)]
    fmt = lambda cells: " | ".join(c.ljust(w) if i < 3 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(head), "-+-".join("-" * w for w in widths)] + [fmt(b) for b in body])


def _header(result):
    s = result["settings"]
    return describe(result["machine"]) + [
        f"mode: {result['mode']} | repeats: {s['repeats']} (median of interleaved samples, "
        f"each >= {s['min_sample_s'] * 1e3:.0f} ms) | threads: {s['threads']} "
        f"(scaling rows: {s['scaling_threads']}) | duration: {result.get('duration_s', 0):.0f} s",
        f"processes: {s['process_model']}" if s.get("separate_processes") else
        "processes: every library timed in the harness process",
    ] + [f"note: {n}" for n in result.get("notes", [])]


def _document(result, markdown):
    parts = []
    title = (lambda t: f"\n### {t}\n") if markdown else (lambda t: f"\n== {t} ==")
    header = _header(result)
    parts.append("\n".join(("- " + h if markdown else h) for h in header))
    parts.append(title("Kernels: pyblasnn vs NumPy (x NumPy = NumPy time / pyblasnn time; "
                       "GFLOP/s = pyblasnn / NumPy; % peak = pyblasnn's share of the measured "
                       "peak)"))
    parts.append(_render(*kernel_table(result), markdown))
    sc = scaling_table(result)
    if sc:
        parts.append(title("Thread scaling (median ms per thread count; speedup vs fewest threads)"))
        parts.append(_render(*sc, markdown))
    sp = scipy_table(result)
    if sp:
        parts.append(title("Zero-skipping on real MNIST batches vs scipy.sparse (CSR built "
                           "from the batch in every call; x = their time / pyblasnn's)"))
        parts.append(_render(*sp, markdown))
    if kernel_rows(result, "pure_python"):
        parts.append(title("The book's pure-Python loops vs NumPy vs pyblasnn "
                           "(x pure Python = pure Python time / pyblasnn time)"))
        parts.append(_render(*python_table(result), markdown))
        notes = {r["note"] for r in kernel_rows(result, "pure_python") if r.get("note")}
        parts += [("- " if markdown else "") + n for n in sorted(notes)]
    if kernel_rows(result, "epoch"):
        from .epoch import LEARNING_RATE, MOMENTUM
        parts.append(title(f"End to end: one MNIST epoch (784-512-10, batch 128, SGD momentum "
                           f"{MOMENTUM}, lr {LEARNING_RATE}; x NumPy = NumPy s / trainer s, "
                           f"likewise x PyTorch and x JAX)"))
        parts.append(_render(*epoch_table(result), markdown))
        for r in kernel_rows(result, "epoch"):
            parts.append(("- " if markdown else "") + f"data: {r['shape']}"
                         + (f"; {r['note']}" if r.get("note") else ""))
    if kernel_rows(result, "tape"):
        from .tape_epoch import TARGET_RATIO, tape_table
        parts.append(title(f"The book's from-scratch listing (GradientTape) vs Sequential.fit, "
                           f"same model, optimizer and batch (target: <= {TARGET_RATIO}x fit's "
                           f"time)"))
        parts.append(_render(*tape_table(kernel_rows(result, "tape")), markdown))
        for r in kernel_rows(result, "tape"):
            parts.append(("- " if markdown else "") + f"data: {r['shape']}"
                         + (f"; {r['note']}" if r.get("note") else ""))
    if kernel_rows(result, "contended"):
        from .contended import contended_table
        parts.append(title("Contended: the cores shared with one busy process, or with NumPy "
                           "calls between pyblasnn's (median ms; 2t / 1t <= 1 is the target)"))
        parts.append(_render(*contended_table(kernel_rows(result, "contended")), markdown))
        notes = {r["note"] for r in kernel_rows(result, "contended") if r.get("note")}
        parts += [("- " if markdown else "") + n for n in sorted(notes)]
    probs = problems(result)
    if probs:
        parts.append(title("Skipped and failed rows"))
        parts += [("- " if markdown else "") + p for p in probs]
    return "\n".join(parts) + "\n"


def console(result):
    return _document(result, markdown=False)


def markdown(result):
    return "## pyblasnn benchmark\n\n" + _document(result, markdown=True)


def _atomic_write(path, text):
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        return x.item()
    return x


def write_outputs(result, out_dir, stem):
    """Write <stem>.json (every figure) and <stem>.md atomically; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    jpath = os.path.join(out_dir, stem + ".json")
    mpath = os.path.join(out_dir, stem + ".md")
    _atomic_write(jpath, json.dumps(_jsonable(result), indent=1, sort_keys=False) + "\n")
    _atomic_write(mpath, markdown(result))
    return [jpath, mpath]
