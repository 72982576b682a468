"""Pictures of chapter 2: digits, training curves, the confusion matrix (needs matplotlib).

``show_digits(images, labels, predictions, probabilities)``: a grid of digits drawn like the
book's ``plt.imshow(digit, cmap=plt.cm.binary)``, each titled with its label and, given
predictions, the predicted class and its probability; misclassified digits get a red title.
``plot_history(history)``: loss and accuracy per epoch, training and validation (a
``History``, a dict of lists, or a dict naming several runs). ``plot_confusion(y_true,
y_pred)``: the counts of each (true, predicted) pair. ``write_report_figures(...)`` writes all
of them for a trained model into a directory.

Each function returns a matplotlib ``Figure`` and, given ``path=``, also writes a PNG there
atomically (readers see the old file or the new one, never a part). matplotlib is an
optional extra (``pip install -e ".[plot]"``) imported only when a function is called:
importing pyblasnn never imports it. When the caller has imported ``matplotlib.pyplot``
(a notebook, an interactive session) the figures are pyplot figures, shown by
``plt.show()`` or inline; otherwise they are standalone figures drawn by the Agg canvas,
which needs no display and leaves pyplot's global state alone.
"""
from __future__ import annotations

import io
import math
import os
import sys
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

PathLike = Union[str, "os.PathLike[str]"]

from . import _validation as _v
from ._atomic import atomic_write

__all__ = ["show_digits", "plot_history", "plot_confusion", "write_report_figures"]

#: Title colours of correctly and wrongly classified digits.
CORRECT_COLOR = "black"
WRONG_COLOR = "red"

_INSTALL_HINT = ('pyblasnn.plot needs matplotlib, which is not installed: '
                 'pip install -e ".[plot]" (from a checkout) or pip install matplotlib')


def _matplotlib():
    try:
        import matplotlib
        import matplotlib.figure  # noqa: F401
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return matplotlib


def _new_figure(figsize):
    """A pyplot figure when the caller uses pyplot, else a standalone Agg figure."""
    _matplotlib()
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        return plt.figure(figsize=figsize)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=100):
    """Write ``fig`` as a PNG to ``path`` atomically (rendered by Agg, display or not)."""
    if path is None:
        return
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)      # PNG goes through Agg, display or not
    data = buf.getvalue()
    atomic_write(os.fspath(path), lambda f: f.write(data))


def _close(fig):
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)


# ----------------------------------------------------------------------------- digits
def _as_images(images):
    arr = np.asarray(images)
    if arr.ndim == 2 and arr.shape[1] == 28 * 28:
        arr = arr.reshape(-1, 28, 28)
    elif arr.ndim == 2 and arr.shape == (28, 28):
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"show_digits: images must have shape (n, 28, 28), (n, 784), "
                         f"(28, 28) or (n, height, width), got {np.shape(images)}")
    return arr


def _per_image(name, values, n, ndims=(1,)):
    """values as an array with one entry per image (and ndim in ``ndims``), or None."""
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.ndim not in ndims:
        shapes = " or ".join(["(n,)", "(n, classes)"][:max(ndims)])
        raise ValueError(f"show_digits: {name} must have shape {shapes}, one entry per "
                         f"image, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"show_digits: {name} has {arr.shape[0]} entries for {n} images")
    return arr


def show_digits(images: ArrayLike, labels: Optional[ArrayLike] = None,
                predictions: Optional[ArrayLike] = None,
                probabilities: Optional[ArrayLike] = None, ncols: int = 10,
                path: Optional[PathLike] = None, title: Optional[str] = None,
                size: float = 1.2) -> Any:
    """A grid of digits, ``ncols`` per row, drawn with ``cmap="binary"`` (ink dark on white).

    images: (n, 28, 28) or (n, 784) (uint8 0-255 or float). Each digit is titled with its
    label; with ``predictions`` (class per image) also the predicted class, and with
    ``probabilities`` its probability: either one number per image (the probability of the
    predicted class) or a (n, classes) matrix (then ``predictions`` defaults to its
    argmax). A digit whose prediction differs from its label gets a red title. Returns the
    Figure; ``path=`` also writes it as a PNG.
    """
    imgs = _as_images(images)
    n = imgs.shape[0]
    labels_ = _per_image("labels", labels, n)
    probs = _per_image("probabilities", probabilities, n, ndims=(1, 2))
    preds = _per_image("predictions", predictions, n)
    if probs is not None and probs.ndim == 2:
        if preds is None:
            preds = probs.argmax(axis=1)
        probs = probs[np.arange(n), np.asarray(preds, dtype=np.intp)]
    ncols = max(1, min(_v.positive_int("show_digits", "ncols", ncols), n))
    nrows = max(1, math.ceil(n / ncols))
    text_lines = (labels_ is not None) + (preds is not None)
    fig = _new_figure((size * ncols, (size + 0.18 * text_lines) * nrows + (0.4 if title else 0)))
    for i in range(n):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(imgs[i], cmap="binary")
        ax.set_xticks([])
        ax.set_yticks([])
        lines = []
        if labels_ is not None:
            lines.append(f"label {labels_[i]}")
        color = CORRECT_COLOR
        if preds is not None:
            line = f"pred {preds[i]}"
            if probs is not None:
                line += f" ({float(probs[i]):.1%})"
            lines.append(line)
            if labels_ is not None and preds[i] != labels_[i]:
                color = WRONG_COLOR
        if lines:
            ax.set_title("\n".join(lines), fontsize=8, color=color)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    return fig


# ---------------------------------------------------------------------------- history
def _history_dict(history):
    """A History (or anything with .history) or a dict of lists -> dict of float lists."""
    h = getattr(history, "history", history)
    if not isinstance(h, dict):
        raise TypeError(f"plot_history: expected a History or a dict of lists, got "
                        f"{type(history).__name__}")
    return {k: [float(v) for v in vals] for k, vals in h.items()}


def _is_runs(history):
    """True for {"run name": History or dict, ...} (several runs to compare)."""
    return (isinstance(history, dict) and bool(history)
            and all(hasattr(v, "history") or isinstance(v, dict) for v in history.values()))


def plot_history(history: Any, path: Optional[PathLike] = None,
                 title: Optional[str] = None) -> Any:
    """Loss (left) and accuracy (right) per epoch, training solid and validation dashed.

    history: the ``History`` that ``fit`` returns, a dict of lists (``{"loss": [...],
    "accuracy": [...], "val_loss": [...], ...}``), or a dict of such, named by run, to draw
    several runs on the same axes. A metric no run has leaves its panel out. Returns the
    Figure; ``path=`` also writes it as a PNG.
    """
    runs = history if _is_runs(history) else {None: history}
    runs = {name: _history_dict(h) for name, h in runs.items()}
    metrics = [m for m in ("loss", "accuracy")
               if any(m in h or f"val_{m}" in h for h in runs.values())]
    if not metrics:
        raise ValueError("plot_history: the history has no 'loss' or 'accuracy' entries")
    fig = _new_figure((5 * len(metrics), 3.8))
    for j, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), j + 1)
        for k, (name, h) in enumerate(runs.items()):
            color = f"C{k}"
            for key, style, what in ((metric, "o-", "training"),
                                     (f"val_{metric}", "s--", "validation")):
                if key in h:
                    epochs = np.arange(1, len(h[key]) + 1)
                    label = what if name is None else f"{name}, {what}"
                    ax.plot(epochs, h[key], style, color=color, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        longest = max((len(h[k]) for h in runs.values() for k in (metric, f"val_{metric}")
                       if k in h), default=0)
        if longest <= 20:
            ax.set_xticks(range(1, longest + 1))         # one tick per epoch
        else:
            from matplotlib.ticker import MaxNLocator
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    return fig


# -------------------------------------------------------------------------- confusion
def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike,
                     num_classes: Optional[int] = None) -> np.ndarray:
    """counts[i, j] = number of samples of class i predicted as class j.

    y_true, y_pred: class indices (integers >= 0, below ``num_classes`` when given; the
    largest label + 1 classes otherwise)."""
    op = "confusion_matrix"
    if num_classes is not None:
        num_classes = _v.positive_int(op, "num_classes", num_classes)
    true: np.ndarray = _v.as_sparse_labels(op, y_true, n_classes=num_classes, name="y_true")
    pred: np.ndarray = _v.as_sparse_labels(op, y_pred, n_classes=num_classes, name="y_pred")
    if true.shape != pred.shape:
        raise ValueError(f"{op}: y_true has {true.size} labels, y_pred {pred.size}")
    if num_classes is None:
        num_classes = int(max(true.max(initial=-1), pred.max(initial=-1))) + 1
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (true, pred), 1)
    return counts


def plot_confusion(y_true: ArrayLike, y_pred: ArrayLike, path: Optional[PathLike] = None,
                   num_classes: Optional[int] = None, title: Optional[str] = None) -> Any:
    """The confusion matrix of y_pred against y_true: rows true class, columns predicted,
    each cell's count written in it. Returns the Figure; ``path=`` also writes a PNG."""
    counts = confusion_matrix(y_true, y_pred, num_classes)
    k = counts.shape[0]
    fig = _new_figure((0.55 * k + 2.5, 0.55 * k + 1.8))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(counts, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = counts.sum()
    acc = np.trace(counts) / total if total else float("nan")
    ax.set_title(title or f"confusion matrix ({total:,} samples, accuracy {acc:.4f})",
                 fontsize=10)
    threshold = counts.max() / 2 if counts.size else 0
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if counts[i, j] > threshold else "black")
    fig.tight_layout()
    _save(fig, path)
    return fig


# ----------------------------------------------------------------------------- report
def _probabilities(model, x):
    predict = getattr(model, "predict", None)
    out = predict(x, verbose=0) if predict is not None else model(x)
    return np.asarray(out.numpy() if hasattr(out, "numpy") else out)


def write_report_figures(model: Any, history: Any, x_test: np.ndarray, y_test: np.ndarray,
                         directory: PathLike, count: int = 30,
                         batch_size: Optional[int] = None) -> list[str]:
    """Write the report's four PNGs for a trained model into ``directory``; return their paths.

    ``history.png`` (training curves), ``test_digits.png`` (the first ``count`` test digits
    with their predictions), ``confident_errors.png`` (the ``count`` misclassified test
    digits the model was most sure of) and ``confusion.png``. ``model`` has ``predict``
    (a ``Sequential``) or is a callable returning class probabilities; ``x_test`` is what
    it takes, (n, 784) float for the book's network.
    """
    _matplotlib()
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    if batch_size is None:
        probs = _probabilities(model, x_test)
    else:
        probs = np.concatenate([_probabilities(model, x_test[i:i + batch_size])
                                for i in range(0, len(x_test), batch_size)])
    y_test = np.asarray(y_test)
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(len(pred)), pred]
    wrong = np.flatnonzero(pred != y_test)
    worst = wrong[np.argsort(-conf[wrong], kind="stable")][:count]
    acc = float(np.mean(pred == y_test))
    paths = []

    def emit(name, make):
        path = os.path.join(directory, name)
        fig = make(path)
        _close(fig)
        paths.append(path)

    emit("history.png", lambda p: plot_history(history, path=p, title="training curves"))
    first = np.arange(min(count, len(pred)))
    emit("test_digits.png", lambda p: show_digits(
        x_test[first], y_test[first], pred[first], conf[first], path=p,
        title=f"first {len(first)} test digits (test accuracy {acc:.4f})"))
    emit("confident_errors.png", lambda p: show_digits(
        x_test[worst], y_test[worst], pred[worst], conf[worst], path=p,
        title=f"the {len(worst)} most confidently wrong of {len(wrong)} misclassified"))
    emit("confusion.png", lambda p: plot_confusion(y_test, pred, path=p,
                                                   num_classes=probs.shape[1]))
    return paths
