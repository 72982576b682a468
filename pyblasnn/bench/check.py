"""Correctness gate: every timed result is compared with NumPy before it is timed.

A fast wrong kernel must not look good, so a mismatch turns the row into FAILED (and the
harness's exit code non-zero) instead of producing a timing.
"""
import math

import numpy as np

#: Relative tolerance per dtype for results without long reductions.
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
#: Base relative tolerance per dtype for reductions (dot family, sums); grows with log2(k).
RTOL_REDUCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def tolerance(dtype, k=1):
    """(rtol, atol-scale) for results whose elements are sums of k terms."""
    dtype = np.dtype(dtype)
    if k <= 1:
        return RTOL.get(dtype, 1e-5)
    return RTOL_REDUCE.get(dtype, 1e-4) * max(1.0, math.log2(k) / 4)


def _items(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def assert_close(got, want, dtype, k=1, what="result"):
    """Raise AssertionError unless got matches want (shape, dtype, values within tolerance).

    ``atol`` is ``rtol * max|want|`` so that elements near zero after cancellation in a
    reduction are judged against the scale of the whole result.
    """
    rtol = tolerance(dtype, k)
    got_items, want_items = _items(got), _items(want)
    if len(got_items) != len(want_items):
        raise AssertionError(f"{what}: {len(got_items)} outputs, expected {len(want_items)}")
    for i, (g, w) in enumerate(zip(got_items, want_items)):
        g = np.asarray(g)
        w = np.asarray(w)
        label = f"{what}[{i}]" if len(want_items) > 1 else what
        if g.shape != w.shape:
            raise AssertionError(f"{label}: shape {g.shape}, expected {w.shape}")
        if np.issubdtype(w.dtype, np.floating) and g.dtype != w.dtype:
            raise AssertionError(f"{label}: dtype {g.dtype}, expected {w.dtype}")
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale, err_msg=label)
