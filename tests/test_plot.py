"""pyblasnn.plot: the figures' content (axes, titles, image data, colours) with the Agg canvas.

Tests that draw are skipped when matplotlib is missing; the import-hint and lazy-import
tests run either way.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from pyblasnn import plot
from pyblasnn.callbacks import History

needs_mpl = pytest.mark.skipif(
    __import__("importlib").util.find_spec("matplotlib") is None,
    reason="matplotlib is not installed (pip install -e \".[plot]\")")


def _digits(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def _rgba(color):
    from matplotlib.colors import to_rgba
    return to_rgba(color)


# ------------------------------------------------------------------- without matplotlib
def test_import_does_not_import_matplotlib():
    code = ("import sys, pyblasnn, pyblasnn.plot; "
            "assert 'matplotlib' not in sys.modules, sorted(m for m in sys.modules "
            "if m.startswith('matplotlib'))")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("call", [
    lambda: plot.show_digits(_digits(2)),
    lambda: plot.plot_history({"loss": [1.0, 0.5]}),
    lambda: plot.plot_confusion([0, 1], [0, 1]),
    lambda: plot.write_report_figures(None, {}, None, None, "unused"),
])
def test_missing_matplotlib_names_the_extra(monkeypatch, call):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib -> ImportError
    with pytest.raises(ImportError, match=r'pip install -e "\.\[plot\]"'):
        call()


# ------------------------------------------------------------------------ show_digits
@needs_mpl
@pytest.mark.parametrize("shape", [(7, 28, 28), (7, 784)])
def test_show_digits_draws_each_digit_binary(shape):
    images = _digits(7).reshape(shape)
    fig = plot.show_digits(images, ncols=3)
    axes = _image_axes(fig)
    assert len(axes) == 7
    geometry = axes[0].get_subplotspec().get_geometry()[:2]
    assert geometry == (3, 3)                           # 7 digits, 3 per row -> 3 rows
    for ax, digit in zip(axes, images.reshape(7, 28, 28)):
        (im,) = ax.images
        np.testing.assert_array_equal(np.asarray(im.get_array()), digit)
        assert im.get_cmap().name == "binary"
        assert ax.get_title() == ""


@needs_mpl
def test_show_digits_titles_and_misclassified_in_red():
    images = _digits(4)
    labels = np.array([3, 1, 4, 1])
    preds = np.array([3, 7, 4, 2])
    probs = np.array([0.99, 0.6, 0.875, 0.5])
    fig = plot.show_digits(images, labels, preds, probs)
    axes = _image_axes(fig)
    titles = [ax.title.get_text() for ax in axes]
    assert titles == ["label 3\npred 3 (99.0%)", "label 1\npred 7 (60.0%)",
                      "label 4\npred 4 (87.5%)", "label 1\npred 2 (50.0%)"]
    colors = [ax.title.get_color() for ax in axes]
    assert [_rgba(c) for c in colors] == [_rgba(plot.CORRECT_COLOR), _rgba(plot.WRONG_COLOR),
                                          _rgba(plot.CORRECT_COLOR), _rgba(plot.WRONG_COLOR)]
    assert plot.WRONG_COLOR == "red"


@needs_mpl
def test_show_digits_probability_matrix_gives_predictions():
    rng = np.random.default_rng(1)
    p = rng.random((5, 10))
    p /= p.sum(axis=1, keepdims=True)
    labels = p.argmax(axis=1)
    labels[2] = (labels[2] + 1) % 10
    fig = plot.show_digits(_digits(5), labels, probabilities=p)
    axes = _image_axes(fig)
    for i, ax in enumerate(axes):
        k = p[i].argmax()
        assert ax.get_title() == f"label {labels[i]}\npred {k} ({p[i, k]:.1%})"
    assert _rgba(axes[2].title.get_color()) == _rgba("red")
    assert _rgba(axes[0].title.get_color()) == _rgba("black")


@needs_mpl
def test_show_digits_labels_only():
    fig = plot.show_digits(_digits(3), labels=[5, 0, 4])
    assert [ax.get_title() for ax in _image_axes(fig)] == ["label 5", "label 0", "label 4"]


@pytest.mark.parametrize("images, kwargs, exc, match", [
    (np.zeros((3, 100)), {}, ValueError, r"\(n, 28, 28\), \(n, 784\).*got \(3, 100\)"),
    (np.zeros((3, 28, 28, 2)), {}, ValueError, "got \\(3, 28, 28, 2\\)"),
    (np.zeros((3, 28, 28)), {"labels": [1, 2]}, ValueError, "labels has 2 entries for 3 images"),
    (np.zeros((3, 28, 28)), {"labels": 5}, ValueError,
     r"show_digits: labels must have shape \(n,\), one entry per image, got shape \(\)"),
    (np.zeros((3, 28, 28)), {"predictions": np.ones((3, 2))}, ValueError,
     r"predictions must have shape \(n,\),.*got shape \(3, 2\)"),
    (np.zeros((3, 28, 28)), {"probabilities": np.ones((3, 10, 2))}, ValueError,
     r"probabilities must have shape \(n,\) or \(n, classes\)"),
    (np.zeros((3, 28, 28)), {"ncols": 0}, ValueError, "show_digits: ncols must be >= 1, got 0"),
    (np.zeros((3, 28, 28)), {"ncols": 2.5}, TypeError, "show_digits: ncols must be an int, got float"),
    (np.zeros((3, 28, 28)), {"ncols": "3"}, TypeError, "ncols must be an int, got str"),
    (np.zeros((3, 28, 28)), {"ncols": None}, TypeError, "ncols must be an int, got NoneType"),
])
def test_show_digits_bad_input(images, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        plot.show_digits(images, **kwargs)


# ----------------------------------------------------------------------- plot_history
def _lines(ax):
    return {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}


@needs_mpl
def test_plot_history_from_history_object():
    h = History()
    for epoch, logs in enumerate([{"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6,
                                   "val_accuracy": 0.75},
                                  {"loss": 0.3, "accuracy": 0.9, "val_loss": 0.4,
                                   "val_accuracy": 0.85}]):
        h.on_epoch_end(epoch, logs)
    fig = plot.plot_history(h)
    assert len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_title() == "loss" and acc_ax.get_title() == "accuracy"
    assert _lines(loss_ax) == {"training": [0.5, 0.3], "validation": [0.6, 0.4]}
    assert _lines(acc_ax) == {"training": [0.8, 0.9], "validation": [0.75, 0.85]}
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2]
    assert list(loss_ax.get_xticks()) == [1, 2]                   # whole epochs only


@needs_mpl
def test_plot_history_dict_without_accuracy_has_one_panel():
    fig = plot.plot_history({"loss": [1.0, 0.7, 0.6]})
    assert len(fig.axes) == 1
    assert _lines(fig.axes[0]) == {"training": [1.0, 0.7, 0.6]}


@needs_mpl
def test_plot_history_compares_named_runs():
    fig = plot.plot_history({"keras": {"loss": [0.3, 0.1], "accuracy": [0.9, 0.97]},
                             "scratch": {"loss": [2.0, 1.0]}})
    loss_ax, acc_ax = fig.axes
    assert _lines(loss_ax) == {"keras, training": [0.3, 0.1], "scratch, training": [2.0, 1.0]}
    assert _lines(acc_ax) == {"keras, training": [0.9, 0.97]}


def test_plot_history_rejects_other_types():
    with pytest.raises(TypeError, match="History or a dict"):
        plot.plot_history([0.5, 0.4])


# --------------------------------------------------------------------- plot_confusion
def test_confusion_matrix_counts():
    y_true = [0, 1, 2, 2, 1, 0, 2]
    y_pred = [0, 2, 2, 2, 1, 1, 0]
    counts = plot.confusion_matrix(y_true, y_pred)
    expected = np.zeros((3, 3), int)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    np.testing.assert_array_equal(counts, expected)
    assert plot.confusion_matrix([1], [1], num_classes=10).shape == (10, 10)
    np.testing.assert_array_equal(plot.confusion_matrix(np.array([1.0, 0.0]), [1, 1]),
                                  [[0, 1], [0, 1]])       # whole-number floats are labels


@pytest.mark.parametrize("y_true, y_pred, kwargs, exc, match", [
    ([0, 1], [-1, 1], {}, ValueError, "confusion_matrix: y_pred must be >= 0, got -1"),
    ([0.5, 1], [0, 1], {}, ValueError, "confusion_matrix: y_true must be integer class indices"),
    (["a", "b"], [0, 1], {}, ValueError, "y_true must be integer class indices, got dtype <U1"),
    ([0, 5], [0, 1], {"num_classes": 3}, ValueError,
     r"confusion_matrix: label 5 in y_true out of range for 3 classes"),
    ([0, 1], [0, 3], {"num_classes": 3}, ValueError, "label 3 in y_pred out of range"),
    ([0, 1, 2], [0, 1], {}, ValueError, "confusion_matrix: y_true has 3 labels, y_pred 2"),
    ([[0, 1]], [0, 1], {}, ValueError, r"y_true must be a 1-D array of class indices"),
    ([0], [0], {"num_classes": 0}, ValueError, "confusion_matrix: num_classes must be >= 1"),
    ([0], [0], {"num_classes": 2.0}, TypeError, "confusion_matrix: num_classes must be an int"),
])
def test_confusion_matrix_bad_input(y_true, y_pred, kwargs, exc, match):
    """A label outside [0, classes) is refused, not counted in another cell (a -1 was
    counted as the last class, 0.5 as class 0)."""
    with pytest.raises(exc, match=match):
        plot.confusion_matrix(y_true, y_pred, **kwargs)


@needs_mpl
def test_plot_confusion_image_and_text():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 10, 500)
    y_pred = np.where(rng.random(500) < 0.8, y_true, rng.integers(0, 10, 500))
    fig = plot.plot_confusion(y_true, y_pred)
    ax = _image_axes(fig)[0]
    expected = plot.confusion_matrix(y_true, y_pred, 10)
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), expected)
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert f"accuracy {np.mean(y_true == y_pred):.4f}" in ax.get_title()
    texts = {(t.get_position(), t.get_text()) for t in ax.texts}
    assert ((3, 3), str(expected[3, 3])) in texts
    assert len(ax.texts) == np.count_nonzero(expected)


# -------------------------------------------------------------------- saving, report
@needs_mpl
def test_path_writes_png_atomically(tmp_path):
    path = tmp_path / "sub" / "digits.png"
    plot.show_digits(_digits(3), [1, 2, 3], path=path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(path.parent)) == ["digits.png"]      # no temporary left
    plot.plot_confusion([0, 1], [1, 1], path=path)                 # replaced in place
    assert path.read_bytes() != data
    assert sorted(os.listdir(path.parent)) == ["digits.png"]


@needs_mpl
def test_figures_stay_off_pyplot_unless_the_caller_uses_it(tmp_path):
    code = ("import sys, pyblasnn.plot as p; import numpy as np; "
            "f = p.plot_confusion([0, 1], [0, 1], path=sys.argv[1]); "
            "assert 'matplotlib.pyplot' not in sys.modules; "
            "assert type(f.canvas).__name__ == 'FigureCanvasAgg'; "
            "import matplotlib.pyplot as plt; g = p.plot_confusion([0], [0]); "
            "assert plt.fignum_exists(g.number)")
    env = dict(os.environ, MPLBACKEND="Agg")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.png")], check=True, env=env,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert (tmp_path / "c.png").stat().st_size > 0


class _FixedModel:
    """predict returns fixed probabilities (what a trained Sequential would)."""

    def __init__(self, probs):
        self.probs = probs
        self.seen = None

    def predict(self, x, verbose=0):
        self.seen = x
        return self.probs[:len(x)]


@needs_mpl
def test_write_report_figures(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    n = 40
    x = rng.random((n, 784)).astype(np.float32)
    y = rng.integers(0, 10, n)
    probs = rng.random((n, 10))
    probs /= probs.sum(axis=1, keepdims=True)
    pred = probs.argmax(axis=1)
    y[:20] = pred[:20]                                  # half right, half (mostly) wrong
    history = {"loss": [0.4, 0.2], "accuracy": [0.9, 0.95]}
    drawn = []
    real = plot.show_digits
    monkeypatch.setattr(plot, "show_digits", lambda *a, **k: drawn.append((a, k)) or real(*a, **k))
    paths = plot.write_report_figures(_FixedModel(probs), history, x, y, tmp_path / "r",
                                      count=6)
    names = [os.path.basename(p) for p in paths]
    assert names == ["history.png", "test_digits.png", "confident_errors.png", "confusion.png"]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    (first, _), (errors, _) = drawn
    np.testing.assert_array_equal(first[0], x[:6])
    np.testing.assert_array_equal(first[2], pred[:6])
    conf = probs[np.arange(n), pred]
    wrong = np.flatnonzero(pred != y)
    expected = wrong[np.argsort(-conf[wrong])][:6]
    np.testing.assert_array_equal(errors[0], x[expected])
    np.testing.assert_array_equal(errors[2], pred[expected])
    assert np.all(errors[1] != errors[2])               # every one of them is wrong
    assert np.all(np.diff(errors[3]) <= 0)              # most confident first
