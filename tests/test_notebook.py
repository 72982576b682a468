"""examples/chapter2.ipynb: stored clean, built on the example scripts, runnable as a script
(examples/chapter2.py), and run end to end.

The static checks and the tests of examples/listing.py and examples/chapter2.py need nothing
beyond the standard library (the figure test, matplotlib). Executing the notebook (its short setting, PYBLASNN_NOTEBOOK_QUICK=1) needs the
[notebook] extra (nbclient, nbformat, ipykernel, matplotlib) and real MNIST
(``pyblasnn.datasets.mnist.load_data()``); it is skipped without the extra, unless
PYBLASNN_REQUIRE_NOTEBOOK=1 (CI sets it) turns the skip into a failure.
"""
import ast
import importlib.util
import json
import os
import re
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "examples")
NOTEBOOK = os.path.join(EXAMPLES, "chapter2.ipynb")

sys.path.insert(0, EXAMPLES)
import chapter2  # noqa: E402  (examples/chapter2.py: the notebook run as a script)
from listing import Listing, show_markdown  # noqa: E402

sys.path.remove(EXAMPLES)


@pytest.fixture(scope="module")
def notebook():
    with open(NOTEBOOK, encoding="utf-8") as f:
        return json.load(f)


def _code(nb):
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"] if c["cell_type"] == "code"]


# ------------------------------------------------------------------------ stored form
def test_stored_without_outputs(notebook):
    code_cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert len(code_cells) > 40
    for cell in code_cells:
        assert cell["outputs"] == [], cell["source"]
        assert cell["execution_count"] is None, cell["source"]
    assert notebook["nbformat"] == 4


def test_parameter_cell_comes_first(notebook):
    first = notebook["cells"][[c["cell_type"] for c in notebook["cells"]].index("code")]
    source = "".join(first["source"])
    assert "parameters" in first["metadata"].get("tags", [])
    assert 'os.environ.get("PYBLASNN_NOTEBOOK_QUICK"' in source
    for name in ("TRAIN_SAMPLES", "KERAS_EPOCHS", "SCRATCH_EPOCHS"):
        assert re.search(rf"^{name} = ", source, re.M), name


def test_listings_are_run_not_copied(notebook):
    """The scripts' code lives in the scripts: the notebook runs it through Listing."""
    code = "\n".join(_code(notebook))
    assert 'Listing("book_mnist.py"' in code and 'Listing("from_scratch.py"' in code
    code = re.sub(r'run_through\(".*?"', "", code)          # the step names themselves
    for copied in ("class NaiveDense", "class NaiveSequential", "class BatchGenerator",
                   "model.compile(", "def fit(", "optimizers.SGD(", "keras.Sequential("):
        assert copied not in code, copied


@pytest.mark.parametrize("script", ["book_mnist.py", "from_scratch.py"])
def test_every_step_the_notebook_names_exists_in_order(notebook, script):
    """Each run_through target is found, in the notebook's order, and the last runs the rest
    (a changed script fails here, in milliseconds, rather than in the executed notebook)."""
    code = "\n".join(_code(notebook))
    var = re.search(rf'(\w+) = Listing\("{re.escape(script)}"', code).group(1)
    steps = re.findall(rf"\b{var}\.(run_through\((\".*?\")|run_rest\(\))", code)
    listing = Listing(os.path.join(EXAMPLES, script), {})
    for call, text in steps:
        if text:
            listing.position = listing._find(json.loads(text)) + 1
        else:
            listing.position = len(listing.statements)
    assert listing.done and steps[-1][0] == "run_rest()"


def test_every_code_cell_is_plain_python(notebook):
    """examples/chapter2.py runs the cells without IPython: no magics, no IPython names
    (Markdown tables go through listing.show_markdown)."""
    for source in _code(notebook):
        ast.parse(source)                                  # a %magic or !shell fails here
        for name in ("IPython", "get_ipython", "display("):
            assert name not in source, source


# -------------------------------------------------------- the notebook as a script
NOTEBOOK_JSON = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
    {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n", "text, not shown\n",
                                                         "## Section"]},
    {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
     "source": ["x = 6\n", "x * 7"]},
    {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
     "source": "x + 1;"},
    {"cell_type": "raw", "metadata": {}, "source": "not run"},
    {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
     "source": "from listing import show_markdown\nshow_markdown('| a |')\ny = x"},
]}


def test_chapter2_script_runs_cells_in_order_and_shows_what_a_notebook_would(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(NOTEBOOK_JSON))
    shown = []
    namespace = chapter2.run(str(path), out=shown.append)
    assert namespace["y"] == 6
    # headings only; the last expression's repr, unless the cell ends with ";"
    assert shown == ["\n# Title\n", "\n## Section\n", "42"]


def test_chapter2_script_saves_each_figure(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = {**NOTEBOOK_JSON, "cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.figure()\n"
                   "plt.imshow([[0, 1]]);"}]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    shown = []
    chapter2.run(str(path), figures=str(tmp_path / "figs"), out=shown.append)
    names = sorted(os.listdir(tmp_path / "figs"))
    assert names == ["cell00-0.png", "cell00-1.png"]
    assert shown == [f"[figure: {tmp_path / 'figs' / n}]" for n in names]
    import matplotlib.pyplot as plt
    assert plt.get_fignums() == []                         # closed after saving
    assert (tmp_path / "figs" / names[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_show_markdown_prints_outside_a_notebook(capsys):
    show_markdown("| a | b |")
    assert capsys.readouterr().out == "| a | b |\n"


# ---------------------------------------------------------------------------- Listing
SCRIPT = '''"""A docstring that is not run."""
import math

# a comment above the value
value = math.sqrt(16)


def train(epochs, rate=0.1):
    return epochs * rate


train(epochs=3, rate=0.5)
result = train(epochs=10)   # trailing comment
'''


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "script.py"
    path.write_text(SCRIPT)
    return str(path)


def test_listing_runs_steps_in_a_namespace(script, capsys):
    ns = {}
    listing = Listing(script, ns)
    assert listing.run_through("value =") is None
    assert ns["value"] == 4.0 and "train" not in ns
    shown = capsys.readouterr().out
    assert "# a comment above the value" in shown and "docstring" not in shown
    assert listing.run_through("train(epochs=3") == 1.5      # an expression's value
    assert listing.run_rest() is None
    assert ns["result"] == 1.0 and listing.done
    assert "# trailing comment" in capsys.readouterr().out


def test_listing_overrides_keywords_and_notes_changes(script, capsys):
    ns = {}
    listing = Listing(script, ns)
    assert listing.run_through("train(epochs=3", epochs=2) == 1.0
    assert "# run here with epochs=2" in capsys.readouterr().out
    listing.run_rest(epochs=10)                       # the script's own value: no note
    assert ns["result"] == 1.0
    assert "run here with" not in capsys.readouterr().out
    assert "epochs=3" in listing.segment(0, len(listing.statements))   # file unchanged


def test_listing_errors(script):
    listing = Listing(script, {}, show=False)
    with pytest.raises(LookupError, match="no statement containing 'missing'"):
        listing.run_through("missing")
    with pytest.raises(LookupError, match="no call with keyword"):
        listing.run_through("value =", batch_size=1)
    assert listing.position == 0
    listing.run_through("result =")
    with pytest.raises(LookupError, match="after statement"):
        listing.run_through("value =")                # already run: steps go forward only


# ---------------------------------------------------------------------------- execute
_NEEDS = ("nbclient", "nbformat", "ipykernel", "matplotlib")


@pytest.mark.slow
def test_notebook_runs_in_its_short_setting(tmp_path, monkeypatch):
    missing = [m for m in _NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        message = f"needs {', '.join(missing)}: pip install -e \".[notebook]\""
        if os.environ.get("PYBLASNN_REQUIRE_NOTEBOOK") == "1":
            pytest.fail(message)
        pytest.skip(message)
    import nbclient
    import nbformat

    # a kernel spec of this interpreter
    spec_dir = tmp_path / "jupyter" / "kernels" / "pyblasnn-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "pyblasnn test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    import pyblasnn     # the kernel imports the pyblasnn under test (installed or in-place)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(pyblasnn.__file__)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [package_parent] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.setenv("PYBLASNN_NOTEBOOK_QUICK", "1")
    figures = tmp_path / "figures"
    monkeypatch.setenv("PYBLASNN_NOTEBOOK_FIGURES", str(figures))

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="pyblasnn-test",
                                     resources={"metadata": {"path": EXAMPLES}})
    client.execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert "QUICK=True" in text
    assert "Epoch 1/1" in text and "79/79 [==============================]" in text
    assert "loss at batch 0:" in text
    keras_acc = float(re.search(r"Keras listing: test accuracy (\d\.\d+)", text).group(1))
    scratch_acc = float(re.search(r"from scratch: +test accuracy (\d\.\d+)", text).group(1))
    assert keras_acc > 0.75, keras_acc       # 1 epoch on 10,000 images: about 0.83
    assert 0.0 < scratch_acc <= 1.0
    assert len(images) == 9                  # each picture once (no duplicate displays)
    assert sorted(os.listdir(figures)) == ["confident_errors.png", "confusion.png",
                                           "history.png", "test_digits.png"]
