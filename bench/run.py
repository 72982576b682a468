"""Thin wrapper: ``python bench/run.py ARGS`` == ``python -m pyblasnn.bench ARGS``.

Run from the repository root after ``python setup.py build_ext --inplace``.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from pyblasnn.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
