"""Chapter 2 without Jupyter: the code cells of examples/chapter2.ipynb, run as a script.

    python examples/chapter2.py                   # the book's settings, as the notebook
    python examples/chapter2.py --quick           # its short setting (what CI runs)
    python examples/chapter2.py --figures DIR     # also write each picture as a PNG

The notebook is the only copy of the chapter's code: this file reads it (JSON, standard
library only), prints each section heading, runs the code cells in order in one namespace
and prints what the notebook shows under a cell (the value of its last expression, unless
the cell ends with ";"). The two listings it walks through are examples/book_mnist.py and
examples/from_scratch.py, run by examples/listing.py in both cases. Needs matplotlib
(pip install -e ".[plot]").
"""
import argparse
import ast
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOK = os.path.join(HERE, "chapter2.ipynb")


def cells(path=NOTEBOOK):
    """(cell type, source) of every cell of the notebook at ``path``."""
    with open(path, encoding="utf-8") as f:
        notebook = json.load(f)
    for cell in notebook["cells"]:
        source = cell["source"]
        yield cell["cell_type"], "".join(source) if isinstance(source, list) else source


def save_figures(directory, prefix):
    """Write every open pyplot figure to directory/prefix-k.png, then close them all."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    paths = []
    if directory is not None:
        for k, number in enumerate(plt.get_fignums()):
            paths.append(os.path.join(directory, f"{prefix}-{k}.png"))
            plt.figure(number).savefig(paths[-1])
    plt.close("all")
    return paths


def run(path=NOTEBOOK, figures=None, out=print):
    """Run the notebook's code cells in order; pictures go to ``figures`` (a directory) or
    are discarded. Returns the namespace the cells ran in."""
    here = os.path.dirname(os.path.abspath(path))
    if here not in sys.path:
        sys.path.insert(0, here)          # the cells import listing.py from there
    from listing import run_statements
    if figures is not None:
        os.makedirs(figures, exist_ok=True)
    namespace = {"__name__": "__chapter2__"}
    for number, (kind, source) in enumerate(cells(path)):
        if kind == "markdown":
            for line in source.splitlines():
                if line.startswith("#"):
                    out(f"\n{line}\n")
            continue
        if kind != "code":
            continue
        value = run_statements(ast.parse(source).body, namespace, f"{path}, cell {number}")
        if value is not None and not source.rstrip().endswith(";"):
            out(repr(value))
        for saved in save_figures(figures, f"cell{number:02d}"):
            out(f"[figure: {saved}]")
    return namespace


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="the short setting (PYBLASNN_NOTEBOOK_QUICK=1)")
    parser.add_argument("--figures", metavar="DIR",
                        help="write each picture (and the report figures) into DIR")
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["PYBLASNN_NOTEBOOK_QUICK"] = "1"
    if args.figures:
        os.environ["PYBLASNN_NOTEBOOK_FIGURES"] = os.path.abspath(args.figures)
    os.environ.setdefault("MPLBACKEND", "Agg")
    run(figures=args.figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
