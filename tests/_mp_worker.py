"""Worker functions for the multiprocessing tests (test_threads.py): a module of its own so
that spawn and forkserver workers can import them by name."""
import numpy as np


def kernels_in_worker(seed):
    """Run multi-threaded kernels; return their results with the worker's thread facts."""
    import pyblasnn
    from pyblasnn import _config, ops
    from pyblasnn._kernels import threads
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(100_000)
    a = rng.standard_normal((150, 300))
    b = rng.standard_normal((300, 120))
    _config.reset_path_counters()
    r = ops.relu(x, n_threads=2)
    m = ops.matmul(a, b, n_threads=2)
    s = ops.add(a, b[:1, :1].repeat(300, 1)[:, :300][:150], n_threads=3)
    counters = _config.path_counters()
    return {
        "relu_ok": bool(np.array_equal(r, np.maximum(x, 0))),
        "matmul": m, "a": a, "b": b, "add_ok": bool(np.array_equal(s, a + b[0, 0])),
        "threads": pyblasnn.get_num_threads(),
        "forked_child": threads.forked_child(),
        "parallel_entries": sum(p for _, p in counters.values()),
    }
