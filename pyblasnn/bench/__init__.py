"""pyblasnn's benchmark harness: ``python -m pyblasnn.bench --help``.

Times every kernel against NumPy (and the book's pure-Python loops, PyTorch for the MNIST
epoch), after checking its result against NumPy. See bench/README.md for what each column
means and how to make a fair run.
"""


def main(argv=None):
    """Run the benchmark; returns the process exit code (1 when a row FAILED)."""
    from .harness import main as _main
    return _main(argv)


__all__ = ["main"]
