"""PNG plots of a benchmark result (matplotlib is optional: without it, say so and go on).

- matmul_gflops.png: GFLOP/s vs n for square float32 matmul, pyblasnn vs NumPy's BLAS, with
  the measured float32 peak (pyblasnn's FMA loop on the ISA in use) at the plotted thread
  counts as lines.
- elementwise_speedup.png: x NumPy vs element count for the element-wise kernels.
- batched_speedup.png: x NumPy vs matrix size for batched matmul, one line per batch count.
- epoch_time.png: seconds per MNIST epoch for pyblasnn / NumPy / PyTorch / JAX.
"""
import os

from .report import NAMES, TRAINERS


def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _ok(result, section, **match):
    """The result's ok rows of one section (kernels / epoch / contended ...) matching `match`:
    the sections reuse kernel names (an mnist_epoch row under load is not the epoch plot's)."""
    return [r for r in result["rows"] if r["status"] == "ok" and r.get("section") == section
            and all(r.get(k) == v for k, v in match.items())]


def _main_threads(result):
    return max(result["settings"]["threads"])


def _fname(out_dir, stem, name):
    return os.path.join(out_dir, (name if stem == "latest" else f"{stem}-{name}") + ".png")


def _title_suffix(result):
    m = result["machine"]
    return f"{m['cpu_model']}, {_main_threads(result)} threads, {m['date'][:10]}"


def plot_matmul(plt, result, path):
    nt = _main_threads(result)
    rows = sorted((r for r in _ok(result, "kernels", kernel="matmul", dtype="float32", threads=nt)
                   if r.get("extra", {}).get("square")), key=lambda r: r["size"])
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    n = [r["size"] for r in rows]
    for who, style in (("pyblasnn", "o-"), ("numpy", "s--")):
        ax.plot(n, [r["gflops"][who] for r in rows], style,
                label=(NAMES[who] if who != "numpy" else "NumPy (" + _blas_name(result) + ")")
                + f", {nt} threads")
    ones = sorted((r for r in _ok(result, "kernels", kernel="matmul", dtype="float32", threads=1)
                   if r.get("extra", {}).get("square")), key=lambda r: r["size"]) if nt != 1 else []
    for who, style in (("pyblasnn", "o:"), ("numpy", "s:")):
        if ones:  # the thread-scaling rows: 1 thread, for comparison
            ax.plot([r["size"] for r in ones], [r["gflops"][who] for r in ones], style,
                    alpha=0.5, label=("pyblasnn" if who == "pyblasnn" else "NumPy") + ", 1 thread")
    measured = (result["machine"].get("measured_peak_gflops") or {}).get("float32") or {}
    isa = result["machine"].get("isa")
    for threads, style in [(nt, ":")] + ([(1, "-.")] if ones else []):
        peak = measured.get(str(threads))
        if peak:
            ax.axhline(peak, color="gray", ls=style,
                       label=f"measured fp32 peak {peak:.0f} GFLOP/s ({threads} thread"
                             f"{'s' * (threads > 1)}, {isa} FMA loop)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("n  (n x n @ n x n, float32)")
    ax.set_ylabel("GFLOP/s  (2n^3 / t)")
    ax.set_title(f"matmul throughput — {_title_suffix(result)}", fontsize=9)
    return _save(plt, fig, ax, path)


def _save(plt, fig, ax, path):
    """Grid, legend, tight layout, write the PNG, free the figure."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _blas_name(result):
    for b in result["machine"].get("blas") or []:
        if b.get("user_api") == "blas":
            return f"{b.get('internal_api')} {b.get('architecture')}"
    return "BLAS"


def plot_elementwise(plt, result, path):
    nt = _main_threads(result)
    kernels = ["relu", "relu_backward", "add", "maximum", "maximum_backward", "dot_vec"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for k in kernels:
        rows = sorted(_ok(result, "kernels", kernel=k, threads=nt), key=lambda r: r["size"])
        rows = [r for r in rows if r.get("x_numpy")]
        if rows:
            ax.plot([r["size"] for r in rows], [r["x_numpy"] for r in rows], "o-", label=k)
            drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.axhline(1.0, color="gray", ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")  # ratios: 0.1x and 10x are equally far from parity
    ax.set_xlabel("elements (float32)")
    ax.set_ylabel("speedup over NumPy (NumPy time / pyblasnn time)")
    ax.set_title(f"element-wise kernels — {_title_suffix(result)}", fontsize=9)
    return _save(plt, fig, ax, path)


def plot_batched(plt, result, path):
    nt = _main_threads(result)
    rows = _ok(result, "kernels", kernel="matmul_batched", threads=nt)
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for count in sorted({r["extra"]["batch"] for r in rows}):
        sel = sorted((r for r in rows if r["extra"]["batch"] == count), key=lambda r: r["size"])
        ax.plot([r["size"] for r in sel], [r["x_numpy"] for r in sel], "o-",
                label=f"batch of {count}")
    ax.axhline(1.0, color="gray", ls=":")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("matrix size n  (batch x (n,n) @ (n,n), float32)")
    ax.set_ylabel("speedup over numpy.matmul")
    ax.set_title(f"batched matmul — {_title_suffix(result)}", fontsize=9)
    return _save(plt, fig, ax, path)


def plot_epoch(plt, result, path):
    rows = _ok(result, "epoch", kernel="mnist_epoch")
    if not rows or not rows[-1]["times"]:
        return False
    r = rows[-1]
    who = [w for w in TRAINERS if w in r["times"]]
    secs = [r["times"][w]["median_ms"] / 1e3 for w in who]
    err_lo = [s - r["times"][w]["min_ms"] / 1e3 for s, w in zip(secs, who)]
    err_hi = [r["times"][w]["max_ms"] / 1e3 - s for s, w in zip(secs, who)]
    fig, ax = plt.subplots(figsize=(6, 4))
    bars = ax.bar([NAMES[w] for w in who], secs, yerr=[err_lo, err_hi], capsize=4,
                  color=["tab:blue", "tab:orange", "tab:green", "tab:red"][:len(who)])
    for b, w, s in zip(bars, who, secs):
        acc = r.get("accuracy", {}).get(w)
        ax.annotate(f"{s:.2f} s" + (f"\nacc {acc:.4f}" if acc is not None else ""),
                    (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 3), textcoords="offset points")
    ax.set_ylabel("seconds per epoch")
    ax.set_ylim(0, max(secs) * 1.3)
    ax.set_title(f"MNIST epoch 784-512-10, batch 128 — {r['threads']} threads\n"
                 f"{_title_suffix(result)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_plots(result, out_dir, stem):
    """([paths written], reason or None): the plots the result has data for."""
    plt = _plt()
    if plt is None:
        return [], "matplotlib not installed, no PNG plots (pip install matplotlib)"
    os.makedirs(out_dir, exist_ok=True)
    made = []
    for name, fn in (("matmul_gflops", plot_matmul), ("elementwise_speedup", plot_elementwise),
                     ("batched_speedup", plot_batched), ("epoch_time", plot_epoch)):
        path = _fname(out_dir, stem, name)
        if fn(plt, result, path):
            made.append(path)
    return made, None
